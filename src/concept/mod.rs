//! Text → concept: which structure a phrase names ("left kidney", "tumour of the liver", "HCC", "kidnye"),
//! or a refusal with the closest concepts. The vocabulary is data (`concepts/*.toml`).
//!
//! A lexical pass leads, because a sentence encoder barely tells left from right and does not know
//! abbreviations: normalise, take out sides, lesion words and noise, look the rest up as a bag of words,
//! then with organ adjectives as nouns, singular forms, places within a structure taken out, and
//! single-word typos corrected. Only a phrase that still names nothing goes to the text encoder, whose
//! nearest vocabulary phrase is accepted above a similarity threshold and a margin over the runner-up.
//! Sides always come from the words, never from the encoder.

pub mod bank;
pub mod report;
pub mod text;
pub mod vocab;

use std::sync::Arc;

use once_cell::sync::OnceCell;

pub use bank::Bank;
pub use text::{LesionKind, SideWord};
pub use vocab::{Concept, Laterality, Region, Snomed, Vocabulary};

use crate::error::{Error, Result};
use text::{bag, edit_distance, Parsed};

/// The built-in vocabulary, parsed once per process.
pub fn builtin() -> Result<Arc<Vocabulary>> {
    static VOCAB: OnceCell<Arc<Vocabulary>> = OnceCell::new();
    VOCAB.get_or_try_init(|| Vocabulary::builtin().map(Arc::new)).cloned()
}

/// Embeds a phrase into the bank's space (the text encoder; a stand-in in tests).
pub trait Embedder: Send + Sync {
    fn embed(&self, text: &str) -> Result<Vec<f32>>;
    /// The name the bank was built with.
    fn name(&self) -> &str;
}

impl Embedder for crate::model::text_encoder::TextEncoder {
    fn embed(&self, text: &str) -> Result<Vec<f32>> {
        crate::model::text_encoder::TextEncoder::embed(self, text)
    }
    fn name(&self) -> &str {
        &self.name
    }
}

/// The resolver for a model set: lexical, plus the text encoder when it ships a concept bank.
pub fn resolver_for(text: Option<&Arc<crate::model::text_encoder::TextEncoder>>) -> Result<Resolver> {
    let vocab = builtin()?;
    match text {
        Some(t) if t.has_tokenizer() => match &t.concept_bank {
            Some(bytes) => Resolver::with_encoder(vocab, Bank::parse(bytes)?, t.clone()),
            None => {
                log::warn!("text encoder {} has no concept bank: phrases are matched lexically only", t.name);
                Ok(Resolver::lexical(vocab))
            }
        },
        _ => Ok(Resolver::lexical(vocab)),
    }
}

/// Which vocabulary a phrase is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Domain {
    /// Both; a term in both (rare) goes to the body.
    #[default]
    Any,
    Body,
    Brain,
}

impl Domain {
    fn admits(self, r: Region) -> bool {
        match self {
            Domain::Any => true,
            Domain::Body => r == Region::Body,
            Domain::Brain => r == Region::Brain,
        }
    }
}

/// How a phrase was matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// A term, synonym or abbreviation, in any word order.
    Exact,
    /// After correcting `edits` letters.
    Typo { edits: usize },
    /// The text encoder's nearest phrase.
    Embedding,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Typo { .. } => "typo",
            Method::Embedding => "embedding",
        }
    }
}

/// A runner-up, for the report and for refusals.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    pub id: String,
    pub name: String,
    pub score: f32,
}

/// What a phrase names.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub text: String,
    /// The structures: one, or a left/right pair when no side was said ("kidneys"). For a lesion, the
    /// organ it lies in.
    pub concepts: Vec<String>,
    pub lesion: Option<LesionKind>,
    /// Places within the structure the phrase named ("upper pole"), and a side said of a structure that
    /// has none ("left liver": the left lobe).
    pub modifiers: Vec<String>,
    pub method: Method,
    /// 1 for an exact match, 1 − 0.05 per corrected letter, the cosine for an embedding match.
    pub score: f32,
    /// The best other concepts (embedding matches only), best first.
    pub alternatives: Vec<Alternative>,
}

impl Resolution {
    /// A display name: "left kidney", "kidneys", "liver tumor".
    pub fn name(&self, vocab: &Vocabulary) -> String {
        let base = match vocab.get(&self.concepts[0]) {
            Some(c) => structure_name(c, self.concepts.len() == 2),
            None => String::new(),
        };
        match self.lesion {
            Some(k) => format!("{base} {}", k.name()),
            None => base,
        }
    }
}

/// When an embedding match is accepted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acceptance {
    /// Least cosine with the nearest vocabulary phrase.
    pub similarity: f32,
    /// Least lead of the best concept over the runner-up.
    pub margin: f32,
}

impl Default for Acceptance {
    fn default() -> Self {
        Acceptance { similarity: 0.62, margin: 0.03 }
    }
}

/// The vocabulary with, optionally, the text encoder and its bank.
pub struct Resolver {
    pub vocab: Arc<Vocabulary>,
    semantic: Option<(Bank, Arc<dyn Embedder>)>,
    pub acceptance: Acceptance,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("concepts", &self.vocab.concepts.len())
            .field("encoder", &self.semantic.as_ref().map(|(b, _)| b.encoder.as_str()))
            .finish()
    }
}

/// One candidate structure: a concept and, when no side was said, its twin.
type Pick = Vec<usize>;

impl Resolver {
    /// Lexical matching only.
    pub fn lexical(vocab: Arc<Vocabulary>) -> Resolver {
        Resolver { vocab, semantic: None, acceptance: Acceptance::default() }
    }

    /// With the text encoder for phrases the lexical pass does not know. The bank must have been built
    /// from this vocabulary by this encoder.
    pub fn with_encoder(vocab: Arc<Vocabulary>, bank: Bank, encoder: Arc<dyn Embedder>) -> Result<Resolver> {
        if !bank.matches(&vocab) {
            return Err(Error::ModelContract(format!(
                "the concept bank ({} rows) was not built from this vocabulary ({} phrases): rebuild it",
                bank.len(),
                vocab.phrases().len()
            )));
        }
        if bank.encoder != encoder.name() {
            return Err(Error::ModelContract(format!(
                "the concept bank was built by {:?}, not by {:?}",
                bank.encoder,
                encoder.name()
            )));
        }
        Ok(Resolver { vocab, semantic: Some((bank, encoder)), acceptance: Acceptance::default() })
    }

    pub fn has_encoder(&self) -> bool {
        self.semantic.is_some()
    }

    /// What `text` names, or `Error::UnknownConcept` naming the three closest concepts.
    pub fn resolve(&self, text: &str, domain: Domain) -> Result<Resolution> {
        if text.trim().is_empty() {
            return Err(Error::InvalidArgument("an empty text prompt".into()));
        }
        let v = &*self.vocab;
        let p = v.grammar.parse_query(text);
        if p.words.is_empty() && p.lesion_organ.is_none() {
            return Err(Error::UnknownConcept(match p.lesion {
                Some(k) => format!(
                    "{text:?} names a {} but not the organ it is in: say which (\"liver {}\")",
                    k.name(),
                    k.name()
                ),
                None => format!("{text:?} names no structure"),
            }));
        }
        let mut r = match self.lexical_pass(&p, domain) {
            Some((pick, method, modifiers)) => self.finish(text, &p, pick, method, 1.0, modifiers, Vec::new())?,
            None => self.semantic_pass(text, &p, domain)?,
        };
        if r.score.is_nan() {
            r.score = 0.0;
        }
        Ok(r)
    }

    /// The lexical candidates for `p`'s words, trying each rewrite in turn.
    fn lexical_pass(&self, p: &Parsed, domain: Domain) -> Option<(Pick, Method, Vec<String>)> {
        let v = &*self.vocab;
        let mut base = p.words.clone();
        if let Some(organ) = &p.lesion_organ {
            base.extend(v.grammar.tokens(organ));
        }
        let variants = |words: &[String]| -> Vec<(Vec<String>, Vec<String>)> {
            let mut out = vec![(words.to_vec(), Vec::new())];
            out.push((v.grammar.adjectives_to_nouns(words), Vec::new()));
            out.push((singular(v, words), Vec::new()));
            let mut stripped = singular(v, &v.grammar.adjectives_to_nouns(words));
            let mods = v.grammar.strip_modifiers(&mut stripped);
            if !mods.is_empty() {
                out.push((stripped, mods));
            }
            out
        };
        for (words, mods) in variants(&base) {
            if let Some(pick) = self.pick(&words, p, domain) {
                return Some((pick, Method::Exact, mods));
            }
        }
        let (fixed, edits) = self.correct(&base);
        if edits > 0 {
            for (words, mods) in variants(&fixed) {
                if let Some(pick) = self.pick(&words, p, domain) {
                    return Some((pick, Method::Typo { edits }, mods));
                }
            }
        }
        None
    }

    /// The structure `words` name under `p`'s side, if any concept has them as a term.
    fn pick(&self, words: &[String], p: &Parsed, domain: Domain) -> Option<Pick> {
        if words.is_empty() {
            return None;
        }
        let cands: Vec<usize> = self
            .vocab
            .lookup(&bag(words))
            .iter()
            .copied()
            .filter(|&i| domain.admits(self.vocab.concepts[i].region))
            .collect();
        self.choose(&cands, p, words)
    }

    /// Among concepts sharing a term, the one structure the phrase means.
    fn choose(&self, cands: &[usize], p: &Parsed, words: &[String]) -> Option<Pick> {
        let v = &*self.vocab;
        if cands.is_empty() {
            return None;
        }
        let want = p.side;
        let phrase = words.join(" ");
        // A concept whose own name is the phrase beats one that merely lists it; then body before brain;
        // then file order.
        let rank = |&i: &usize| (v.name_key(i) != phrase, v.concepts[i].region == Region::Brain, i);
        let mut sorted = cands.to_vec();
        sorted.sort_by_key(rank);
        for &i in &sorted {
            let c = &v.concepts[i];
            let lateral = matches!(c.side, Some(Laterality::Left | Laterality::Right));
            match (want, lateral) {
                (Some(SideWord::Left), true) if c.side != Some(Laterality::Left) => continue,
                (Some(SideWord::Right), true) if c.side != Some(Laterality::Right) => continue,
                (None | Some(SideWord::Both), true) => {
                    let mut pair = vec![i];
                    // Only a term both sides share names both ("lul" is the left upper lobe alone).
                    if let Some(j) = c.twin.as_deref().and_then(|t| v.index_of(t)).filter(|j| cands.contains(j)) {
                        pair.push(j);
                        pair.sort_unstable_by_key(|&k| v.concepts[k].side != Some(Laterality::Left));
                    }
                    return Some(pair);
                }
                _ => return Some(vec![i]),
            }
        }
        None
    }

    /// Each word not in the vocabulary replaced by the one vocabulary word within reach (1 edit for short
    /// words, 2 from 7 letters); a tie leaves the word as it is.
    fn correct(&self, words: &[String]) -> (Vec<String>, usize) {
        let known = self.vocab.words();
        let mut edits = 0;
        let fixed = words
            .iter()
            .map(|w| {
                if w.len() < 4 || known.binary_search(w).is_ok() || w.bytes().any(|b| b.is_ascii_digit()) {
                    return w.clone();
                }
                let max = if w.len() >= 7 { 2 } else { 1 };
                let mut best: Option<(&String, usize)> = None;
                let mut tie = false;
                for k in known {
                    let d = edit_distance(w, k, max);
                    if d > max {
                        continue;
                    }
                    match best {
                        Some((_, bd)) if d > bd => {}
                        Some((_, bd)) if d == bd => tie = true,
                        _ => {
                            best = Some((k, d));
                            tie = false;
                        }
                    }
                }
                match best {
                    Some((k, d)) if !tie => {
                        edits += d;
                        k.clone()
                    }
                    _ => w.clone(),
                }
            })
            .collect();
        (fixed, edits)
    }

    fn semantic_pass(&self, text: &str, p: &Parsed, domain: Domain) -> Result<Resolution> {
        let v = &*self.vocab;
        let Some((bank, encoder)) = &self.semantic else {
            return Err(Error::UnknownConcept(format!(
                "{text:?} is not in the vocabulary (no text encoder is loaded for other phrasings); closest: {}",
                self.closest_by_spelling(&p.words, domain)
            )));
        };
        let mut words = v.grammar.adjectives_to_nouns(&p.words);
        if let Some(o) = &p.lesion_organ {
            words.extend(v.grammar.tokens(o));
        }
        let query = encoder.embed(&words.join(" "))?;
        let cos = bank.cosines(&query)?;
        // Best cosine per structure (a structure and its twin are one).
        let mut best: Vec<(Pick, f32, usize)> = Vec::new();
        let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (row, &c) in cos.iter().enumerate() {
            let (phrase, cands) = &v.phrases()[row];
            let toks: Vec<String> = phrase.split(' ').map(str::to_string).collect();
            let cands: Vec<usize> = cands.iter().copied().filter(|&i| domain.admits(v.concepts[i].region)).collect();
            let Some(pick) = self.choose(&cands, p, &toks) else { continue };
            match at.entry(structure_key(v, pick[0])) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    let b = &mut best[*e.get()];
                    if c > b.1 {
                        *b = (pick, c, row);
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(best.len());
                    best.push((pick, c, row));
                }
            }
        }
        best.sort_by(|a, b| b.1.total_cmp(&a.1));
        let alternatives: Vec<Alternative> = best
            .iter()
            .take(4)
            .map(|(pick, s, _)| Alternative { id: v.concepts[pick[0]].id.clone(), name: display(v, pick), score: *s })
            .collect();
        let top = best.first().map(|b| b.1).unwrap_or(0.0);
        let second = best.get(1).map(|b| b.1).unwrap_or(0.0);
        if top < self.acceptance.similarity || top - second < self.acceptance.margin {
            let list = alternatives
                .iter()
                .take(3)
                .map(|a| format!("{} ({:.2})", a.name, a.score))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::UnknownConcept(format!(
                "{text:?} does not clearly name a known structure; closest: {list}"
            )));
        }
        let pick = best.swap_remove(0).0;
        self.finish(text, p, pick, Method::Embedding, top, Vec::new(), alternatives.into_iter().skip(1).collect())
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        text: &str,
        p: &Parsed,
        pick: Pick,
        method: Method,
        cosine: f32,
        mut modifiers: Vec<String>,
        alternatives: Vec<Alternative>,
    ) -> Result<Resolution> {
        let v = &*self.vocab;
        let c = &v.concepts[pick[0]];
        if let (Some(s @ (SideWord::Left | SideWord::Right)), false) =
            (p.side, matches!(c.side, Some(Laterality::Left | Laterality::Right)))
        {
            modifiers.push(if s == SideWord::Left { "left" } else { "right" }.to_string());
        }
        if let Some(k) = p.lesion {
            if !c.lesion_host && c.region == Region::Body {
                return Err(Error::UnknownConcept(format!(
                    "{text:?}: VoxPrompt does not look for a {} in the {}",
                    k.name(),
                    c.name
                )));
            }
        }
        let score = match method {
            Method::Exact => 1.0,
            Method::Typo { edits } => 1.0 - 0.05 * edits as f32,
            Method::Embedding => cosine,
        };
        Ok(Resolution {
            text: text.to_string(),
            concepts: pick.iter().map(|&i| v.concepts[i].id.clone()).collect(),
            lesion: p.lesion,
            modifiers,
            method,
            score,
            alternatives,
        })
    }

    /// The three vocabulary phrases closest in spelling, for a refusal without an encoder.
    fn closest_by_spelling(&self, words: &[String], domain: Domain) -> String {
        let v = &*self.vocab;
        let q = words.join(" ");
        let mut scored: Vec<(usize, &str)> = v
            .phrases()
            .iter()
            .filter(|(_, c)| c.iter().any(|&i| domain.admits(v.concepts[i].region)))
            .map(|(p, _)| (edit_distance(&q, p, 64), p.as_str()))
            .collect();
        scored.sort();
        let mut out: Vec<&str> = Vec::new();
        for (_, p) in scored {
            if !out.contains(&p) {
                out.push(p);
            }
            if out.len() == 3 {
                break;
            }
        }
        out.join(", ")
    }
}

/// One key for a structure and its twin.
fn structure_key(v: &Vocabulary, i: usize) -> String {
    let c = &v.concepts[i];
    match &c.twin {
        Some(t) if *t < c.id => t.clone(),
        _ => c.id.clone(),
    }
}

fn display(v: &Vocabulary, pick: &Pick) -> String {
    structure_name(&v.concepts[pick[0]], pick.len() == 2)
}

/// A structure's display name; for a left/right pair, its side-free term and "(both sides)".
fn structure_name(c: &Concept, pair: bool) -> String {
    if pair {
        format!("{} (both sides)", c.terms[0])
    } else {
        c.name.clone()
    }
}

/// Plural words made singular where the singular is a vocabulary word ("kidneys", "ribs", "hippocampi").
fn singular(v: &Vocabulary, words: &[String]) -> Vec<String> {
    words
        .iter()
        .map(|w| {
            let known = |s: &str| v.words().binary_search_by(|k| k.as_str().cmp(s)).is_ok();
            // Tried even for known words: "ventricles" is a vocabulary word, "lateral ventricles" a plural.
            for (suffix, repl) in [("ies", "y"), ("es", ""), ("s", ""), ("ae", "a"), ("i", "us")] {
                if let Some(stem) = w.strip_suffix(suffix) {
                    let s = format!("{stem}{repl}");
                    if known(&s) {
                        return s;
                    }
                }
            }
            w.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests;
