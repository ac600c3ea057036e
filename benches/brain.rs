//! Brain-prior registration cost in one invocation (`cargo bench --bench brain`, needs `make setup`): the
//! default 4 mm → 2 mm pyramid against a single full-resolution (1 mm) level with the same sample budget,
//! on the MNI template moved by a known 12° / 15 mm / 1.06× affine and degraded (gamma 0.8, bias field,
//! noise). Prints wall time per run (median of 3), the ratio, and how far each result is from the truth.
#![allow(clippy::needless_range_loop)]

mod common;

use std::time::{Duration, Instant};

use voxprompt::anatomy::brain::BrainAtlas;
use voxprompt::io::nifti;
use voxprompt::ops::register::{Affine, Image, Params, RegisterOptions};
use voxprompt::volume::{DType, Volume};

fn max_error(a: &Affine, b: &Affine, c: [f64; 3]) -> f64 {
    let mut worst: f64 = 0.0;
    for d in [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.577, 0.577, 0.577]] {
        for s in [-60.0, 60.0] {
            let p = [0, 1, 2].map(|k| c[k] + s * d[k]);
            let (x, y) = (a.apply(p), b.apply(p));
            worst = worst.max((0..3).map(|k| (x[k] - y[k]).powi(2)).sum::<f64>().sqrt());
        }
    }
    worst
}

fn main() {
    let template_path = common::root().join("data/mni/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz");
    let aseg_path = common::root().join("data/covale/aseg-auto.nii.gz");
    for p in [&template_path, &aseg_path] {
        assert!(p.exists(), "{} is missing: run `make setup` (scripts/setup-data) first", p.display());
    }
    let (template, _) = nifti::read(&template_path).unwrap();
    let timg = Image::from_view(&template.view().unwrap()).unwrap();
    let centre = timg.bright_centroid();
    let mut p = Params::default();
    p.0[..9].copy_from_slice(&[9.0, -10.0, 6.0, 0.12, -0.1, 0.14, 0.06, -0.04, 0.05]);
    let truth = Affine::from_params(&p, centre);
    let moved = timg.resample(timg.dims(), timg.ijk_to_ras().0, &truth).unwrap();
    let max = moved.data().iter().cloned().fold(0f32, f32::max);
    let [w, h, _] = moved.dims();
    let mut noise = 0x2545_F491_4F6C_DD1Du64;
    let data: Vec<u8> = moved
        .data()
        .iter()
        .enumerate()
        .flat_map(|(idx, &v)| {
            let x = (idx % w) as f32 / w as f32 - 0.5;
            let z = (idx / (w * h)) as f32 / w as f32 - 0.5;
            noise ^= noise << 13;
            noise ^= noise >> 7;
            noise ^= noise << 17;
            let n = ((noise >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.06 * max;
            let val = max * (v.max(0.0) / max).powf(0.8) * (1.0 + 0.3 * x - 0.2 * z) + n;
            val.to_ne_bytes()
        })
        .collect();
    let subject = Volume { data, dtype: DType::F32, dims: moved.dims(), geometry: template.geometry };
    let view = subject.view().unwrap();
    let subject_centre = truth.inverse().unwrap().apply(centre);

    println!("machine: {}", common::machine());
    println!("subject: {:?} at 1 mm (template moved by a known affine, degraded)", subject.dims);
    let runs: [(&str, RegisterOptions); 2] = [
        ("pyramid 4 -> 2 mm (default)", RegisterOptions::default()),
        ("single level, full resolution 1 mm (baseline)", RegisterOptions::default().with_levels_mm(&[1.0])),
    ];
    let mut medians = Vec::new();
    for (name, opts) in runs {
        let atlas = BrainAtlas::load(&template_path, &aseg_path).unwrap().with_options(&template, opts).unwrap();
        let mut times: Vec<Duration> = Vec::new();
        let mut last = None;
        for _ in 0..3 {
            let t0 = Instant::now();
            let fit = atlas.register(&view).unwrap();
            times.push(t0.elapsed());
            last = Some(fit);
        }
        times.sort();
        let fit = last.unwrap();
        let reg = fit.registration.as_ref().unwrap();
        let evals: usize = reg.stages.iter().map(|s| s.evaluations).sum();
        let err = max_error(&fit.subject_to_template, &truth, subject_centre);
        println!(
            "{name:<48} median {:>6.2} s  (runs {:?})  {evals} evaluations, NCC {:.3}, max displacement error {err:.2} mm",
            times[1].as_secs_f64(),
            times.iter().map(|t| (t.as_secs_f64() * 100.0).round() / 100.0).collect::<Vec<_>>(),
            reg.ncc
        );
        medians.push(times[1].as_secs_f64());
    }
    println!("ratio baseline / pyramid: {:.2}x", medians[1] / medians[0]);
}
