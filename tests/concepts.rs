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
            Row { phrase: f[0].to_string(), expected: f[1].to_string(), domain }
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
fn score(r: &Resolver) -> (f64, f64) {
    let rows = table();
    assert!(rows.len() >= 300, "the table holds {} phrasings", rows.len());
    let mut misses = Vec::new();
    for row in &rows {
        let g = got(r, row);
        if g != row.expected {
            misses.push(format!("  {:?}: expected {}, got {g}", row.phrase, row.expected));
        }
    }
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

#[test]
fn lexical_resolution_of_the_phrase_table() {
    let r = Resolver::lexical(Arc::new(Vocabulary::builtin().unwrap()));
    let (top1, refused) = score(&r);
    assert!(top1 >= 0.95, "top-1 {top1}");
    assert!(refused >= 0.95, "refused {refused}");
}
