//! The accuracy gate of fast mode (#18), and the OpenVINO provider against ONNX Runtime's CPU provider, in
//! one invocation: every labelled target of the DATA.md volumes (`common::LABELLED`), with the tight, grown
//! and middle-third boxes, under the default policy. Exact mode on the CPU provider is the baseline; each
//! candidate engine runs the same prompts, and the table gives per target and box its Dice next to the
//! baseline's, the change, and the voxels where the two masks differ.
//!
//! The gate, per candidate: mean Dice within 0.002 of the baseline, no target worse by more than 0.01, and
//! ≥ 99.5 % voxel agreement, counted over the voxels either mask holds (a whole-volume count would be
//! ~100 % for any mask); the smallest per-target agreement is printed too. Time: the sum of the session runs
//! per engine (encoding included: each engine encodes every slice once per volume).
//!
//! `cargo bench --bench precision` (needs `make setup`). `VXP_CASES=tsA,brain1` limits the volumes,
//! `VXP_MIN_VOXELS` (default 50) skips smaller targets, `VXP_CANDIDATES=openvino,fast` chooses the candidates
//! (default both: OpenVINO at f32, and OpenVINO in fast mode).

mod common;

use std::time::{Duration, Instant};

use common::{box_kind, BOX_KINDS, LABELLED};
use voxprompt::engine::{Engine, EngineOptions};
use voxprompt::model::{Precision, Provider, SessionConfig};
use voxprompt::pipeline::policy::Policy;
use voxprompt::session::{Session, SessionOptions};
use voxprompt::volume::BoxIjk;

fn engine(providers: Vec<Provider>, precision: Precision) -> Engine {
    Engine::new(&EngineOptions {
        ort_library: Some(common::ort_lib()),
        model_dirs: vec![common::root().join("models/litemedsam")],
        session: SessionConfig { providers, threads: 2, strict: true, precision, openvino_library: None },
        brain_atlas: None,
    })
    .expect("engine (OpenVINO from VXP_OPENVINO_LIB: run `make setup`)")
}

/// One candidate's tallies over every (target, box) row.
#[derive(Default)]
struct Tally {
    dice_sum: f64,
    worst: (f64, String),
    differ: u64,
    union: u64,
    min_agree: (f64, String),
    identical_rows: usize,
    time: Duration,
}

fn main() {
    let wanted = std::env::var("VXP_CANDIDATES").unwrap_or_else(|_| "openvino,fast".into());
    let mut names = Vec::new();
    let mut engines = vec![engine(vec![Provider::Cpu], Precision::Exact)];
    for c in wanted.split(',').filter(|c| !c.is_empty()) {
        let (providers, precision) = match c {
            "openvino" => (vec![Provider::OpenVino], Precision::Exact),
            "fast" => (vec![Provider::OpenVino], Precision::Fast),
            other => panic!("unknown candidate {other} (openvino, fast)"),
        };
        engines.push(engine(providers, precision));
        names.push(c.to_owned());
    }
    let only: Option<Vec<String>> = std::env::var("VXP_CASES").ok().map(|s| s.split(',').map(str::to_owned).collect());
    let min_voxels: usize = std::env::var("VXP_MIN_VOXELS").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    println!("# precision gate: {} (release: {})", common::machine(), !cfg!(debug_assertions));
    for (n, e) in names.iter().zip(&engines[1..]) {
        println!("#   {n}: provider {}, encoder precision {}", e.provider(), e.encoder_precision());
    }
    print!("{:<9} {:>5} {:>7} {:<9} {:>7}", "case", "label", "voxels", "box", "exact");
    for n in &names {
        print!(" | {:>8} {:>7} {:>7}", n, "Δ", "differ");
    }
    println!();
    let mut tallies: Vec<Tally> = names
        .iter()
        .map(|_| Tally { worst: (f64::MAX, String::new()), min_agree: (1.0, String::new()), ..Default::default() })
        .collect();
    let (mut rows, mut exact_sum) = (0usize, 0f64);
    let mut exact_time = Duration::ZERO;
    for case in LABELLED {
        if only.as_ref().is_some_and(|o| !o.iter().any(|c| c == case.id)) {
            continue;
        }
        let common::LoadedLabels { geometry, labels, image, values } = case.load();
        let dims = image.dims;
        // One session per engine and volume: every slice is encoded once per engine.
        let mut sessions: Vec<Session> = engines
            .iter()
            .map(|e| {
                let opts = SessionOptions::default().with_cache_budget(8 << 30).with_policy(Policy::best());
                Session::new(e.models.clone(), image.clone(), geometry, opts).unwrap()
            })
            .collect();
        for &value in &values {
            let (tb, n) = BoxIjk::of_label(&labels, dims, value).expect("a value that occurs");
            if n < min_voxels {
                continue;
            }
            for kind in BOX_KINDS {
                let b = box_kind(tb, dims, kind);
                let mut masks = Vec::with_capacity(sessions.len());
                for (i, s) in sessions.iter_mut().enumerate() {
                    s.clear();
                    s.add_box(1, b).unwrap();
                    let t = Instant::now();
                    s.run(None).unwrap();
                    let dt = t.elapsed();
                    if i == 0 {
                        exact_time += dt;
                    } else {
                        tallies[i - 1].time += dt;
                    }
                    masks.push(s.compose(false).0.data);
                }
                let dice = |m: &[u8]| {
                    voxprompt::ops::mask::dice(m.iter().map(|&v| v == 1), labels.iter().map(|&l| l == value))
                };
                let d0 = dice(&masks[0]);
                exact_sum += d0;
                rows += 1;
                let id = format!("{} {value} {kind}", case.id);
                print!("{:<9} {:>5} {:>7} {:<9} {:>7.4}", case.id, value, n, kind, d0);
                for (t, m) in tallies.iter_mut().zip(&masks[1..]) {
                    let d = dice(m);
                    let (mut differ, mut union) = (0u64, 0u64);
                    for (&a, &b) in masks[0].iter().zip(m.iter()) {
                        let (a, b) = (a == 1, b == 1);
                        differ += (a != b) as u64;
                        union += (a || b) as u64;
                    }
                    let agree = if union == 0 { 1.0 } else { 1.0 - differ as f64 / union as f64 };
                    t.dice_sum += d;
                    t.differ += differ;
                    t.union += union;
                    t.identical_rows += (differ == 0) as usize;
                    if d - d0 < t.worst.0 {
                        t.worst = (d - d0, id.clone());
                    }
                    if agree < t.min_agree.0 {
                        t.min_agree = (agree, id.clone());
                    }
                    print!(" | {:>8.4} {:>+7.4} {:>7}", d, d - d0, differ);
                }
                println!();
            }
        }
        eprintln!("{}: done", case.id);
    }
    let r = rows.max(1) as f64;
    println!(
        "\n{rows} rows (targets × boxes); exact mode (CPU provider) mean Dice {:.4}, {:.1} s of runs",
        exact_sum / r,
        exact_time.as_secs_f64()
    );
    for (n, t) in names.iter().zip(&tallies) {
        let mean_delta = (t.dice_sum - exact_sum) / r;
        let pooled = if t.union == 0 { 1.0 } else { 1.0 - t.differ as f64 / t.union as f64 };
        let pass = mean_delta.abs() <= 0.002 && t.worst.0 >= -0.01 && pooled >= 0.995;
        println!(
            "{n:<9} mean Dice {:.4} (Δ {mean_delta:+.4}), worst Δ {:+.4} ({}), agreement {:.3} % pooled, {:.3} % at least ({}), \
             {} of {rows} rows identical; {:.1} s of runs = {:.2}× exact mode's speed; gate {}",
            t.dice_sum / r,
            t.worst.0,
            t.worst.1,
            100.0 * pooled,
            100.0 * t.min_agree.0,
            t.min_agree.1,
            t.identical_rows,
            t.time.as_secs_f64(),
            exact_time.as_secs_f64() / t.time.as_secs_f64().max(1e-9),
            if pass { "PASSED" } else { "FAILED" }
        );
    }
}
