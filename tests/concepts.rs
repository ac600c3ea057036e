//! Text resolution on the phrase table of tests/fixtures/concepts: every phrasing with its expected
//! concept, and phrases that name no structure, which must be refused with UNKNOWN_CONCEPT.

mod common;

use std::sync::Arc;

use voxprompt::concept::{Domain, Resolver, Vocabulary};
use voxprompt::ErrorCode;

struct Row {
    phrase: String,
    expected: String,
    domain: Domain,
    /// Written to be outside the vocabulary (for the text encoder), not looked up to be in it.
    paraphrase: bool,
}

fn table() -> Vec<Row> {
    let text = std::fs::read_to_string(common::data("tests/fixtures/concepts/phrases.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let domain = match f.get(2).copied() {
                Some("body") => Domain::Body,
                Some("brain") => Domain::Brain,
                _ => Domain::Any,
            };
            Row {
                phrase: f[0].to_string(),
                expected: f[1].to_string(),
                domain,
                paraphrase: f.get(3) == Some(&"paraphrase"),
            }
        })
        .collect()
}

fn refusals() -> Vec<String> {
    let text = std::fs::read_to_string(common::data("tests/fixtures/concepts/refusals.txt")).unwrap();
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(str::to_string).collect()
}

/// "kidney_left+kidney_right:tumor" as the resolver reports it.
fn got(r: &Resolver, row: &Row) -> String {
    match r.resolve(&row.phrase, row.domain) {
        Ok(res) => {
            let mut s = res.concepts.join("+");
            if let Some(k) = res.lesion {
                s.push(':');
                s.push_str(k.name());
            }
            s
        }
        Err(e) => format!("<{:?}: {e}>", e.code()),
    }
}

/// Top-1 accuracy on the table and the refusal rate, with every miss printed.
fn score(r: &Resolver, paraphrases: bool) -> (f64, f64) {
    let rows: Vec<Row> = table().into_iter().filter(|row| paraphrases || !row.paraphrase).collect();
    assert!(rows.len() >= 300, "the table holds {} phrasings", rows.len());
    let mut misses = Vec::new();
    let mut paraphrase_hits = (0, 0);
    for row in &rows {
        let g = got(r, row);
        if row.paraphrase {
            paraphrase_hits.1 += 1;
            paraphrase_hits.0 += (g == row.expected) as usize;
        }
        if g != row.expected {
            misses.push(format!(
                "  {}{:?}: expected {}, got {g}",
                if row.paraphrase { "(paraphrase) " } else { "" },
                row.phrase,
                row.expected
            ));
        }
    }
    println!("paraphrases outside the vocabulary: {} of {} right", paraphrase_hits.0, paraphrase_hits.1);
    let neg = refusals();
    assert!(neg.len() >= 30);
    let mut accepted = Vec::new();
    for p in &neg {
        match r.resolve(p, Domain::Any) {
            Err(e) if e.code() == ErrorCode::UnknownConcept => {}
            Err(e) => accepted.push(format!("  {p:?}: refused with {:?} instead: {e}", e.code())),
            Ok(res) => accepted.push(format!("  {p:?}: accepted as {:?} ({:.2})", res.concepts, res.score)),
        }
    }
    let top1 = 1.0 - misses.len() as f64 / rows.len() as f64;
    let refused = 1.0 - accepted.len() as f64 / neg.len() as f64;
    println!(
        "resolver (encoder: {}): top-1 {:.1} % of {} phrasings, {} misses:\n{}\nrefused {:.1} % of {} non-structures:\n{}",
        r.has_encoder(),
        100.0 * top1,
        rows.len(),
        misses.len(),
        misses.join("\n"),
        100.0 * refused,
        neg.len(),
        accepted.join("\n")
    );
    (top1, refused)
}

/// The engine's resolver with the real MiniLM package and its bank.
fn with_minilm() -> Arc<Resolver> {
    let e = voxprompt::engine::Engine::new(&voxprompt::engine::EngineOptions {
        ort_library: Some(common::ort_lib()),
        model_dirs: vec![common::model_dir(), common::root().join("models/minilm")],
        session: voxprompt::model::SessionConfig { threads: 2, ..Default::default() },
        brain_atlas: None,
    })
    .expect("engine with LiteMedSAM and MiniLM");
    assert!(e.resolver.has_encoder(), "models/minilm ships a concept bank for this vocabulary");
    e.resolver
}

/// A stale bank (vocabulary changed, bank not rebuilt) is refused at load, so this also guards the file.
#[test]
fn resolution_with_minilm_for_other_phrasings() {
    let r = with_minilm();
    let (top1, refused) = score(&r, true);
    assert!(top1 >= 0.95, "top-1 {top1}");
    assert!(refused >= 0.95, "refused {refused}");
}

#[test]
fn lexical_resolution_of_the_phrase_table() {
    // The paraphrases are the text encoder's: without it they are refused, as they should be.
    let r = Resolver::lexical(Arc::new(Vocabulary::builtin().unwrap()));
    let (top1, refused) = score(&r, false);
    assert!(top1 >= 0.95, "top-1 {top1}");
    assert!(refused >= 0.95, "refused {refused}");
}
