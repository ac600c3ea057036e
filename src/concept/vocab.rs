//! The vocabulary as data: concepts parsed from `concepts/*.toml`, checked for consistency, and indexed by
//! the bag of words of every term, so "lobe upper lung" finds "upper lobe of lung".

use std::collections::HashMap;

use serde::Deserialize;

use super::text::{bag, Grammar};
use crate::error::{Error, Result};

/// Which part of the body a concept belongs to (and which anatomical machinery can find it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// Trunk and limbs, found by the body-relative rules on CT.
    Body,
    /// Brain structures, found through an atlas registered to the volume.
    Brain,
}

impl Region {
    pub fn name(self) -> &'static str {
        match self {
            Region::Body => "body",
            Region::Brain => "brain",
        }
    }
}

/// A side of the body in patient terms; `Midline` structures have none to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Laterality {
    Left,
    Right,
    Midline,
}

/// SNOMED-CT codes of a concept, as DICOM SEG and Slicer's terminology carry them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snomed {
    pub category: String,
    pub category_meaning: String,
    #[serde(rename = "type")]
    pub type_code: String,
    pub type_meaning: String,
    pub modifier: Option<String>,
    pub modifier_meaning: Option<String>,
    /// For lesion classes: the anatomic region they lie in.
    pub region: Option<String>,
    pub region_meaning: Option<String>,
}

/// One structure the resolver can name.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    /// Stable identifier (TotalSegmentator class name; "brain." + covale region id).
    pub id: String,
    /// Display name, with the side.
    pub name: String,
    /// Names without the side, normalised.
    pub terms: Vec<String>,
    #[serde(default)]
    pub abbrev: Vec<String>,
    pub side: Option<Laterality>,
    /// The same structure on the other side.
    pub twin: Option<String>,
    /// The organ this structure lies in (a lobe in its lung).
    pub parent: Option<String>,
    /// covale's parent anatomy, by name (brain).
    pub parent_name: Option<String>,
    /// A group: the union of these concepts.
    #[serde(default)]
    pub members: Vec<String>,
    /// Label values in the concept's source (TotalSegmentator labels; covale atlas values).
    #[serde(default)]
    pub labels: Vec<i32>,
    /// The covale label volume holding `labels` (brain).
    pub atlas: Option<String>,
    pub structure_type: Option<String>,
    #[serde(default)]
    pub abnormality: bool,
    /// Whether a lesion can be named inside it.
    #[serde(default)]
    pub lesion_host: bool,
    pub snomed: Option<Snomed>,
    pub color: Option<[u8; 3]>,
    #[serde(skip, default = "body")]
    pub region: Region,
}

fn body() -> Region {
    Region::Body
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    concept: Vec<Concept>,
}

/// Every concept, with the index the lexical pass looks terms up in.
#[derive(Debug)]
pub struct Vocabulary {
    pub concepts: Vec<Concept>,
    pub grammar: Grammar,
    by_id: HashMap<String, usize>,
    /// Bag of words of a term (sorted, space-joined) → the concepts that have it, in file order.
    index: HashMap<String, Vec<usize>>,
    /// Every word of every term, for typo correction.
    words: Vec<String>,
    /// The distinct side-free phrases, each with its concepts (the embedding bank's rows).
    phrases: Vec<(String, Vec<usize>)>,
    /// Each concept's display name without side words, normalised (computed once: the resolver ranks by it
    /// for every bank row).
    name_keys: Vec<String>,
}

impl Vocabulary {
    /// Parses and checks the vocabulary files and the grammar.
    pub fn parse(files: &[(Region, &str, &str)], grammar: &str) -> Result<Vocabulary> {
        let grammar = Grammar::parse(grammar)?;
        let mut concepts = Vec::new();
        for &(region, name, text) in files {
            let f: File =
                toml::from_str(text).map_err(|e| Error::InvalidArgument(format!("concept vocabulary {name}: {e}")))?;
            concepts.extend(f.concept.into_iter().map(|mut c| {
                c.region = region;
                c
            }));
        }
        let mut by_id = HashMap::with_capacity(concepts.len());
        for (i, c) in concepts.iter().enumerate() {
            if by_id.insert(c.id.clone(), i).is_some() {
                return Err(Error::InvalidArgument(format!("concept vocabulary: id {:?} twice", c.id)));
            }
        }
        let bad = |c: &Concept, what: &str| Error::InvalidArgument(format!("concept {:?}: {what}", c.id));
        for c in &concepts {
            if c.terms.is_empty() {
                return Err(bad(c, "no terms"));
            }
            if let Some(t) = &c.twin {
                let twin = by_id.get(t).map(|&j| &concepts[j]).ok_or_else(|| bad(c, "twin does not exist"))?;
                if twin.twin.as_deref() != Some(c.id.as_str()) || twin.side == c.side {
                    return Err(bad(c, "twin is not its mirror"));
                }
            }
            for m in c.members.iter().chain(c.parent.iter()) {
                if !by_id.contains_key(m) {
                    return Err(bad(c, &format!("names {m:?}, which does not exist")));
                }
            }
        }
        let mut index: HashMap<String, Vec<usize>> = HashMap::new();
        let mut phrase_of: HashMap<String, usize> = HashMap::new();
        let mut phrases: Vec<(String, Vec<usize>)> = Vec::new();
        let mut words: Vec<String> = Vec::new();
        for (i, c) in concepts.iter().enumerate() {
            for t in c.terms.iter().chain(&c.abbrev) {
                let toks = grammar.tokens(t);
                if toks.is_empty() {
                    return Err(bad(c, &format!("term {t:?} is only stopwords")));
                }
                let e = index.entry(bag(&toks)).or_default();
                if !e.contains(&i) {
                    e.push(i);
                }
                let key = toks.join(" ");
                let row = *phrase_of.entry(key.clone()).or_insert_with(|| {
                    phrases.push((key, Vec::new()));
                    phrases.len() - 1
                });
                if !phrases[row].1.contains(&i) {
                    phrases[row].1.push(i);
                }
                words.extend(toks);
            }
        }
        words.sort();
        words.dedup();
        let name_keys = concepts
            .iter()
            .map(|c| {
                grammar
                    .tokens(&c.name)
                    .into_iter()
                    .filter(|w| !matches!(w.as_str(), "left" | "right"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        Ok(Vocabulary { concepts, grammar, by_id, index, words, phrases, name_keys })
    }

    /// The vocabulary shipped in the library: body (TotalSegmentator + lesion hosts) and brain (covale).
    pub fn builtin() -> Result<Vocabulary> {
        Vocabulary::parse(
            &[
                (Region::Body, "body.toml", include_str!("../../concepts/body.toml")),
                (Region::Brain, "brain.toml", include_str!("../../concepts/brain.toml")),
            ],
            include_str!("../../concepts/grammar.toml"),
        )
    }

    pub fn get(&self, id: &str) -> Option<&Concept> {
        self.by_id.get(id).map(|&i| &self.concepts[i])
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// The concepts whose term has this bag of words.
    pub fn lookup(&self, bag: &str) -> &[usize] {
        self.index.get(bag).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Concept `i`'s display name without side words, normalised.
    pub fn name_key(&self, i: usize) -> &str {
        &self.name_keys[i]
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The distinct side-free phrases with their concepts, in a fixed order (the bank's rows).
    pub fn phrases(&self) -> &[(String, Vec<usize>)] {
        &self.phrases
    }

    /// Concepts whose display name or a term starts with `prefix` (normalised), for completion: display
    /// names first, in file order, at most `limit`.
    pub fn complete(&self, prefix: &str, limit: usize) -> Vec<&Concept> {
        let p = self.grammar.normalise(prefix);
        let mut out: Vec<&Concept> = Vec::new();
        for pass in 0..2 {
            for c in &self.concepts {
                if out.len() >= limit {
                    return out;
                }
                let hit = if pass == 0 {
                    self.grammar.normalise(&c.name).starts_with(&p)
                } else {
                    c.terms.iter().any(|t| t.starts_with(&p))
                };
                if hit && !out.iter().any(|o| o.id == c.id) {
                    out.push(c);
                }
            }
        }
        out
    }
}
