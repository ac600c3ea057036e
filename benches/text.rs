//! Text-prompt latency (`cargo bench --bench text`): one short phrase through models/minilm (goal < 30 ms),
//! next to the tokenizer alone, so a regression can be placed in the tokenizer or in the graph. Also a batch
//! of eight phrases against eight single calls. `VXP_THREADS` sets the session's threads (default 2).
//! On a small shared machine `cargo bench --bench text --profile dev` (opt-level 2 everywhere) skips the
//! fat-LTO release build; nearly all the time is in ONNX Runtime's kernels, which no profile changes.

mod common;

use std::time::{Duration, Instant};

use voxprompt::model::text_encoder::TextEncoder;
use voxprompt::model::{Package, SessionConfig};

/// Median and 90th percentile of `n` timed calls, after a few untimed ones.
fn time(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..5 {
        f();
    }
    let mut t: Vec<Duration> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    (t[n / 2], t[n * 9 / 10])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let ort = common::ort_lib();
    let threads = std::env::var("VXP_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let rt = voxprompt::runtime::runtime(Some(&ort)).expect("ONNX Runtime");
    let package = Package::open(&common::root().join("models/minilm")).expect("models/minilm");
    let started = Instant::now();
    let enc = TextEncoder::load(rt, &package, &SessionConfig { threads, ..Default::default() }).expect("text encoder");
    println!("machine: {}; ONNX Runtime {}, {threads} session threads", common::machine(), rt.version);
    println!("load (sha256 of graph and tokenizer, session build): {:.0} ms", ms(started.elapsed()));

    let phrase = "left kidney";
    let (tok, tok90) = time(2000, || {
        enc.tokenize(phrase).unwrap();
    });
    let (emb, emb90) = time(200, || {
        enc.embed(phrase).unwrap();
    });
    let verdict = if ms(emb) < 30.0 { "meets" } else { "misses" };
    println!(
        "embed({phrase:?}, {} tokens): median {:.2} ms (p90 {:.2}), {verdict} the 30 ms goal",
        enc.tokenize(phrase).unwrap().len(),
        ms(emb),
        ms(emb90)
    );
    println!(
        "tokenize only: median {:.4} ms (p90 {:.4}); the embedding costs {:.0}x the tokenizer",
        ms(tok),
        ms(tok90),
        emb.as_secs_f64() / tok.as_secs_f64()
    );

    let texts = [
        "liver",
        "left kidney",
        "right kidney",
        "spleen",
        "hepatocellular carcinoma",
        "inferior vena cava",
        "portal vein thrombosis",
        "left adrenal gland",
    ];
    let (batch, _) = time(50, || {
        enc.embed_batch(&texts).unwrap();
    });
    let (singles, _) = time(50, || {
        for t in texts {
            enc.embed(t).unwrap();
        }
    });
    println!(
        "{} phrases: embed_batch {:.2} ms, one by one {:.2} ms ({:.2}x)",
        texts.len(),
        ms(batch),
        ms(singles),
        singles.as_secs_f64() / batch.as_secs_f64()
    );

    // Text → concept, as the engine does it: the lexical pass alone, and a phrase outside the vocabulary
    // that goes through the encoder and the bank's 1231 cosines. Ratios are against one embed().
    let vocab = voxprompt::concept::builtin().expect("vocabulary");
    let bank = voxprompt::concept::Bank::parse(enc.concept_bank.as_deref().expect("models/minilm ships a bank"))
        .expect("bank");
    let enc = std::sync::Arc::new(enc);
    let resolver = voxprompt::concept::Resolver::with_encoder(vocab, bank, enc.clone()).expect("resolver");
    let any = voxprompt::concept::Domain::Any;
    for (what, phrase) in [
        ("lexical", "tumour of the upper pole of the left kidnye"),
        ("lexical", "left hippocampus"),
        ("MiniLM", "cardiac muscle"),
    ] {
        let (t, t90) = time(200, || {
            resolver.resolve(phrase, any).unwrap();
        });
        let r = resolver.resolve(phrase, any).unwrap();
        println!(
            "resolve {phrase:?} ({what}, {}): median {:.4} ms (p90 {:.4}) = {:.3}x one embed(); goal {}",
            r.method.name(),
            ms(t),
            ms(t90),
            t.as_secs_f64() / emb.as_secs_f64(),
            if what == "lexical" { "< 1 ms" } else { "< 30 ms" }
        );
    }
}
