//! Policies against the reference, on every labelled target of the DATA.md volumes, in one invocation:
//! Dice of the reference middle-out pipeline and of re-seeding + fusion from the same prompt, for a tight
//! box (the reference mask's 3D box), a box grown by 20 % and a box covering only the middle third of the
//! slices; and the error rate per confidence decile of the new policy.
//!
//! `cargo bench --bench policies` (needs `make setup`). `VXP_CASES=tsA,brain1` limits the volumes,
//! `VXP_MIN_VOXELS` (default 50) skips smaller targets, `VXP_LABELS=27,31` keeps only those label values,
//! `VXP_TRACE=1` prints every target's per-slice areas (R, S, reference mask, R and S within it) to stderr. One session per
//! volume: every slice is encoded once and shared by all targets, prompts and policies.
#![allow(clippy::needless_range_loop)] // index loops over the three axes read best here

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use common::{box_kind, BOX_KINDS as VARIANTS, LABELLED as CASES};
use voxprompt::engine::{Engine, EngineOptions};
use voxprompt::model::SessionConfig;
use voxprompt::pipeline::policy::Policy;
use voxprompt::session::{Session, SessionOptions};
use voxprompt::volume::BoxIjk;

fn dice(mask: &[u8], label: u8, labels: &[f64], value: f64) -> f64 {
    voxprompt::ops::mask::dice(mask.iter().map(|&m| m == label), labels.iter().map(|&l| l == value))
}

/// The default reseed options, with `VXP_RESEED="extend=0,min_iou=0.85,…"` overrides for experiments.
fn reseed_from_env() -> Policy {
    let Policy::Reseed(mut o) = Policy::best() else { unreachable!() };
    if let Ok(spec) = std::env::var("VXP_RESEED") {
        for kv in spec.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').expect("key=value");
            let f: f32 = v.parse().expect("number");
            match k {
                "extend" => o.extend = f != 0.0,
                "min_iou" => o.stop.min_iou = f,
                "min_continuity" => o.stop.min_continuity = f,
                "max_growth" => o.stop.max_growth = f,
                "extend_min_area" => o.extend_min_area = f,
                "max_extension" => o.max_extension = f,
                "keep_main" => o.keep_main = f != 0.0,
                "key_slices" => o.key_slices = f as usize,
                "lambda" => o.fusion.lambda = f,
                _ => panic!("unknown VXP_RESEED key {k}"),
            }
        }
        eprintln!("reseed options: {o:?}");
    }
    Policy::Reseed(o)
}

fn main() {
    let ort = common::ort_lib();
    let engine = Arc::new(
        Engine::new(&EngineOptions {
            ort_library: Some(ort),
            model_dirs: vec![common::root().join("models/litemedsam")],
            session: SessionConfig { threads: 2, ..Default::default() },
            brain_atlas: None,
        })
        .expect("engine"),
    );
    let only: Option<Vec<String>> = std::env::var("VXP_CASES").ok().map(|s| s.split(',').map(str::to_owned).collect());
    let only_labels: Option<Vec<f64>> =
        std::env::var("VXP_LABELS").ok().map(|s| s.split(',').filter_map(|v| v.parse().ok()).collect());
    let min_voxels: usize = std::env::var("VXP_MIN_VOXELS").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let policies = [Policy::Reference, reseed_from_env()];
    let trace = std::env::var_os("VXP_TRACE").is_some();
    println!(
        "# policies vs reference (LiteMedSAM, {} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<10} {:>5} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
        "case", "label", "voxels", "slices", "tight:R", "S", "Δ", "grow:R", "S", "Δ", "third:R", "S", "Δ"
    );
    // sums[variant][policy], and per-decile (errors, voxels) for the new policy.
    let mut sums = [[0.0f64; 2]; 3];
    let mut wins = [[0usize; 3]; 3]; // per variant: new better / equal / worse
    let mut rows = 0usize;
    let mut deciles: BTreeMap<&str, [(u64, u64); 10]> = BTreeMap::new();
    let t_all = Instant::now();
    for case in CASES {
        if only.as_ref().is_some_and(|o| !o.iter().any(|c| c == case.id)) {
            continue;
        }
        let common::LoadedLabels { geometry, labels, image, values } = case.load();
        let dims = image.dims;
        let mut session =
            Session::new(engine.models.clone(), image, geometry, SessionOptions::default().with_cache_budget(8 << 30))
                .unwrap();
        let t = Instant::now();
        for &value in &values {
            let (tb, n) = BoxIjk::of_label(&labels, dims, value).expect("a value that occurs");
            if n < min_voxels || only_labels.as_ref().is_some_and(|l| !l.contains(&value)) {
                continue;
            }
            let mut d = [[0.0f64; 2]; 3];
            for (vi, v) in VARIANTS.iter().enumerate() {
                let b = box_kind(tb, dims, v);
                let mut areas = vec![[0usize; 5]; dims[2]];
                for (pi, p) in policies.iter().enumerate() {
                    session.clear();
                    let mut o = *session.options();
                    o.policy = *p;
                    session.set_options(o).unwrap();
                    session.add_box(1, b).unwrap();
                    session.run(None).unwrap();
                    let (mask, conf) = session.compose(pi == 1);
                    d[vi][pi] = dice(&mask.data, 1, &labels, value);
                    if trace {
                        let n_slice = dims[0] * dims[1];
                        for (z, a) in areas.iter_mut().enumerate() {
                            let r = z * n_slice..(z + 1) * n_slice;
                            a[pi] = mask.data[r.clone()].iter().filter(|&&m| m == 1).count();
                            a[2] = labels[r.clone()].iter().filter(|&&l| l == value).count();
                            a[3 + pi] = mask.data[r.clone()]
                                .iter()
                                .zip(&labels[r])
                                .filter(|(&m, &l)| m == 1 && l == value)
                                .count();
                        }
                    }
                    if let Some(conf) = conf {
                        // Error rate per confidence decile over the slices the object visited.
                        let n_slice = dims[0] * dims[1];
                        let (z0, z1) = (0..dims[2])
                            .filter(|&z| mask.data[z * n_slice..(z + 1) * n_slice].iter().any(|&m| m > 0))
                            .fold((usize::MAX, 0), |(a, bz), z| (a.min(z), bz.max(z)));
                        let (z0, z1) = (z0.min(b.min[2]), z1.max(b.max[2]));
                        let entry = deciles.entry(v).or_insert([(0, 0); 10]);
                        for i in z0 * n_slice..(z1 + 1) * n_slice {
                            let bin = ((conf[i] * 10.0) as usize).min(9);
                            let err = (mask.data[i] == 1) != (labels[i] == value);
                            entry[bin].0 += err as u64;
                            entry[bin].1 += 1;
                        }
                    }
                }
                if trace {
                    // Per slice: areas of R, S and the reference mask; '|' marks the prompt's slices.
                    for (z, a) in areas.iter().enumerate().filter(|(_, a)| a.iter().any(|&x| x > 0)) {
                        let inside = if (b.min[2]..=b.max[2]).contains(&z) { '|' } else { ' ' };
                        eprintln!(
                            "  {} {value} {v:<9} z {z:>3} {inside} R {:>6} S {:>6} truth {:>6} R∩ {:>6} S∩ {:>6}",
                            case.id, a[0], a[1], a[2], a[3], a[4]
                        );
                    }
                }
                sums[vi][0] += d[vi][0];
                sums[vi][1] += d[vi][1];
                let delta = d[vi][1] - d[vi][0];
                wins[vi][if delta > 1e-4 {
                    0
                } else if delta < -1e-4 {
                    2
                } else {
                    1
                }] += 1;
            }
            rows += 1;
            println!(
                "{:<10} {:>5} {:>7} {:>7} | {:>7.4} {:>7.4} {:>+7.4} | {:>7.4} {:>7.4} {:>+7.4} | {:>7.4} {:>7.4} {:>+7.4}",
                case.id,
                value,
                n,
                tb.max[2] - tb.min[2] + 1,
                d[0][0],
                d[0][1],
                d[0][1] - d[0][0],
                d[1][0],
                d[1][1],
                d[1][1] - d[1][0],
                d[2][0],
                d[2][1],
                d[2][1] - d[2][0]
            );
        }
        let c = session.cache_stats();
        eprintln!(
            "{}: {:.1} s, {} slices encoded once ({} cache hits)",
            case.id,
            t.elapsed().as_secs_f64(),
            c.encoded,
            c.hits
        );
    }
    let r = rows.max(1) as f64;
    println!("\nmean Dice over {rows} targets (R = reference, S = reseed + fusion, the default):");
    for (vi, v) in VARIANTS.iter().enumerate() {
        println!(
            "  {v:<10} R {:.4}  S {:.4}  Δ {:+.4}   S better on {}, equal on {}, worse on {}",
            sums[vi][0] / r,
            sums[vi][1] / r,
            (sums[vi][1] - sums[vi][0]) / r,
            wins[vi][0],
            wins[vi][1],
            wins[vi][2]
        );
    }
    println!("\nerror rate per confidence decile (S; voxels on the slices each object spans):");
    println!(
        "  {:<10} {}",
        "prompt",
        (0..10).map(|i| format!("{:>9}", format!("{}-{}", i * 10, i * 10 + 10))).collect::<String>()
    );
    for (v, bins) in &deciles {
        let cells: String = bins
            .iter()
            .map(
                |&(e, n)| if n == 0 { format!("{:>9}", "-") } else { format!("{:>8.2}%", 100.0 * e as f64 / n as f64) },
            )
            .collect();
        println!("  {v:<10} {cells}");
        let share = |lo: usize, hi: usize| {
            let e: u64 = bins[lo..hi].iter().map(|b| b.0).sum();
            let all: u64 = bins.iter().map(|b| b.0).sum();
            100.0 * e as f64 / all.max(1) as f64
        };
        println!(
            "  {:<10} share of all errors in the lowest 50 % confidence: {:.1} %, in the top decile: {:.1} %",
            "",
            share(0, 5),
            share(9, 10)
        );
    }
    println!("\ntotal {:.1} s", t_all.elapsed().as_secs_f64());
}
