//! Words: normalisation (case, accents, punctuation, spelling) and the grammar of `concepts/grammar.toml`,
//! which says which words are sides, lesions, organ adjectives, places within a structure, or noise.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::error::{Error, Result};

/// A side word's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SideWord {
    Left,
    Right,
    Both,
}

/// What kind of lesion a phrase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LesionKind {
    Lesion,
    Tumor,
    Nodule,
    Cyst,
    Metastasis,
}

impl LesionKind {
    pub fn name(self) -> &'static str {
        match self {
            LesionKind::Lesion => "lesion",
            LesionKind::Tumor => "tumor",
            LesionKind::Nodule => "nodule",
            LesionKind::Cyst => "cyst",
            LesionKind::Metastasis => "metastasis",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrammarFile {
    spelling: HashMap<String, String>,
    side: HashMap<String, SideWord>,
    lesion: HashMap<String, LesionKind>,
    lesion_names: HashMap<String, (LesionKind, String)>,
    adjectives: HashMap<String, String>,
    modifiers: Vec<String>,
    stopwords: Vec<String>,
}

#[derive(Debug)]
pub struct Grammar {
    spelling: HashMap<String, String>,
    side: HashMap<String, SideWord>,
    lesion: HashMap<String, LesionKind>,
    /// Phrase (as tokens) → lesion kind and organ term.
    lesion_names: Vec<(Vec<String>, LesionKind, String)>,
    adjectives: HashMap<String, String>,
    /// Longest first, as tokens.
    modifiers: Vec<Vec<String>>,
    stopwords: HashSet<String>,
}

/// What the words around a structure's name said.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The words left for the structure's name, in order.
    pub words: Vec<String>,
    pub side: Option<SideWord>,
    pub lesion: Option<LesionKind>,
    /// The organ a lesion name implied ("hcc" → "liver").
    pub lesion_organ: Option<String>,
}

/// The bag of words of `tokens`: sorted and space-joined, so word order does not matter.
pub fn bag(tokens: &[String]) -> String {
    let mut t: Vec<&str> = tokens.iter().map(String::as_str).collect();
    t.sort_unstable();
    t.join(" ")
}

impl Grammar {
    pub fn parse(text: &str) -> Result<Grammar> {
        let f: GrammarFile =
            toml::from_str(text).map_err(|e| Error::InvalidArgument(format!("concept grammar: {e}")))?;
        let split = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        let mut modifiers: Vec<Vec<String>> = f.modifiers.iter().map(|m| split(m)).collect();
        modifiers.sort_by_key(|m| std::cmp::Reverse(m.len()));
        let mut lesion_names: Vec<_> =
            f.lesion_names.into_iter().map(|(k, (kind, organ))| (split(&k), kind, organ)).collect();
        lesion_names.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Ok(Grammar {
            spelling: f.spelling,
            side: f.side,
            lesion: f.lesion,
            lesion_names,
            adjectives: f.adjectives,
            modifiers,
            stopwords: f.stopwords.into_iter().collect(),
        })
    }

    /// Lower case, accents folded, everything but letters and digits a space, words respelled.
    pub fn normalise(&self, text: &str) -> String {
        let mut s = String::with_capacity(text.len());
        for ch in text.chars().flat_map(char::to_lowercase) {
            match fold(ch) {
                Some(c) if c.is_ascii_alphanumeric() => s.push(c),
                // Split letters from digits only where the vocabulary does ("l1" stays, "rib12" → "rib 12").
                _ => s.push(' '),
            }
        }
        s.split_whitespace()
            .map(|w| self.spelling.get(w).map(String::as_str).unwrap_or(w))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The normalised words of a vocabulary term, stopwords dropped.
    pub fn tokens(&self, text: &str) -> Vec<String> {
        self.normalise(text)
            .split(' ')
            .filter(|w| !w.is_empty() && !self.stopwords.contains(*w))
            .map(str::to_string)
            .collect()
    }

    pub fn is_stopword(&self, w: &str) -> bool {
        self.stopwords.contains(w)
    }

    /// Splits a query into side, lesion, modifiers and the words naming the structure. Modifiers are only
    /// taken out by [`Grammar::strip_modifiers`], because "lower lobe" is itself a structure.
    pub fn parse_query(&self, text: &str) -> Parsed {
        let norm = self.normalise(text);
        let all: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
        let mut p = Parsed::default();
        let mut rest: Vec<String> = Vec::with_capacity(all.len());
        for (i, w) in all.iter().enumerate() {
            // "l 1" is a vertebra, not a side.
            let before_number = all.get(i + 1).is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
            let w = &self.grammar_word(w);
            match self.side.get(w.as_str()) {
                Some(s) if !(w.len() == 1 && before_number) => {
                    p.side = Some(match (p.side, *s) {
                        (Some(a), b) if a != b => SideWord::Both,
                        (_, b) => b,
                    });
                }
                _ if self.stopwords.contains(w.as_str()) => {}
                _ => rest.push(w.to_string()),
            }
        }
        // Lesion names that also say the organ ("hcc", "lung nodule").
        for (name, kind, organ) in &self.lesion_names {
            if let Some(at) = find(&rest, name) {
                rest.drain(at..at + name.len());
                p.lesion = Some(*kind);
                p.lesion_organ = Some(organ.clone());
                break;
            }
        }
        rest.retain(|w| match self.lesion.get(w.as_str()) {
            Some(k) => {
                p.lesion.get_or_insert(*k);
                false
            }
            None => true,
        });
        p.words = rest;
        p
    }

    /// A misspelt side or lesion word ("lfet", "tumuor") as the word it is one edit from; words under 4
    /// letters and words within reach of two grammar words stay as they are.
    fn grammar_word(&self, w: &str) -> String {
        if w.len() < 4 || self.side.contains_key(w) || self.lesion.contains_key(w) || self.stopwords.contains(w) {
            return w.to_string();
        }
        let mut hit: Option<&str> = None;
        for k in self.side.keys().chain(self.lesion.keys()).filter(|k| k.len() >= 4) {
            if edit_distance(w, k, 1) <= 1 {
                if hit.is_some() {
                    return w.to_string();
                }
                hit = Some(k);
            }
        }
        hit.unwrap_or(w).to_string()
    }

    /// Replaces organ adjectives by their organ ("renal" → "kidney") when they stand for it.
    pub fn adjectives_to_nouns(&self, words: &[String]) -> Vec<String> {
        words
            .iter()
            .flat_map(|w| match self.adjectives.get(w) {
                Some(n) => n.split(' ').map(str::to_string).collect::<Vec<_>>(),
                None => vec![w.clone()],
            })
            .collect()
    }

    /// Takes the place-within-a-structure phrases out of `words`, returning them.
    pub fn strip_modifiers(&self, words: &mut Vec<String>) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.modifiers {
            while let Some(at) = find(words, m) {
                words.drain(at..at + m.len());
                out.push(m.join(" "));
            }
        }
        out
    }
}

/// Where `needle` occurs as consecutive words of `hay`.
fn find(hay: &[String], needle: &[String]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&i| hay[i..i + needle.len()] == *needle)
}

/// Latin letters with diacritics to their base letter ("tumör" → "tumor"); other characters pass.
fn fold(c: char) -> Option<char> {
    if c.is_ascii() {
        return Some(c);
    }
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' => 'a',
        'ç' | 'č' | 'ć' => 'c',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ě' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' => 'i',
        'ñ' | 'ń' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' => 'o',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' => 'u',
        'ý' | 'ÿ' => 'y',
        'š' | 'ś' => 's',
        'ž' | 'ź' | 'ż' => 'z',
        'ß' => 's',
        'æ' => 'e',
        'œ' => 'e',
        _ => return None,
    })
}

/// Damerau–Levenshtein distance (adjacent transpositions count one), bounded: anything above `max` is
/// reported as `max + 1` without finishing the table.
pub fn edit_distance(a: &str, b: &str, max: usize) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > max {
        return max + 1;
    }
    let w = b.len() + 1;
    let mut prev2 = vec![0usize; w];
    let mut prev: Vec<usize> = (0..w).collect();
    let mut cur = vec![0usize; w];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
            row_min = row_min.min(d);
        }
        if row_min > max {
            return max + 1;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()].min(max + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Grammar {
        Grammar::parse(include_str!("../../concepts/grammar.toml")).unwrap()
    }

    #[test]
    fn normalisation_folds_case_accents_punctuation_and_spelling() {
        assert_eq!(g().normalise("  Left-sided KIDNEY, tumör!"), "left sided kidney tumor");
        assert_eq!(g().normalise("Oesophagus / TUMOUR"), "esophagus tumor");
    }

    #[test]
    fn a_query_splits_into_side_lesion_and_name() {
        let p = g().parse_query("Tumour of the left kidney");
        assert_eq!(
            (p.side, p.lesion, p.words.clone()),
            (Some(SideWord::Left), Some(LesionKind::Tumor), vec!["kidney".to_string()])
        );
        let p = g().parse_query("HCC");
        assert_eq!((p.lesion, p.lesion_organ.as_deref(), p.words.len()), (Some(LesionKind::Tumor), Some("liver"), 0));
        // A single letter before a number is a vertebra's name, not a side.
        assert_eq!(g().parse_query("L 1").words, vec!["l".to_string(), "1".to_string()]);
        assert_eq!(g().parse_query("left and right lung").side, Some(SideWord::Both));
        let mut w = g().parse_query("upper pole of the right kidney").words;
        assert_eq!(g().strip_modifiers(&mut w), vec!["upper pole".to_string()]);
        assert_eq!(w, vec!["kidney".to_string()]);
    }

    #[test]
    fn edit_distance_counts_transpositions_once_and_stops_early() {
        assert_eq!(edit_distance("kidney", "kidney", 2), 0);
        assert_eq!(edit_distance("kindey", "kidney", 2), 1);
        assert_eq!(edit_distance("livr", "liver", 2), 1);
        assert_eq!(edit_distance("spleen", "pancreas", 2), 3);
        assert_eq!(edit_distance("", "abc", 5), 3);
    }
}
