//! Interactive-session costs in one invocation (`cargo bench --bench session`, needs `make setup`):
//! 1. refinement latency per touched slice after point clicks (goal < 50 ms on 2 cores);
//! 2. three objects in one session against the reference pipeline, which re-encodes every slice per object
//!    (run here as one fresh session per object), as a wall-clock ratio, with the voxel agreement;
//! 3. peak RSS while segmenting a 512×512×300 int16 CT volume (pyradiomics lung2 stacked five times in z and
//!    cut to 300 slices) with the default 1 GiB embedding budget (goal < 1.5 GB).
#![allow(clippy::needless_range_loop)] // loops over the three axes read best indexed

mod common;

use std::sync::Arc;
use std::time::Instant;

use voxprompt::engine::{Engine, EngineOptions};
use voxprompt::io::read_volume;
use voxprompt::model::SessionConfig;
use voxprompt::ops::mask::interior_point_2d;
use voxprompt::pipeline::policy::Policy;
use voxprompt::prompt::PointIjk;
use voxprompt::session::{Session, SessionOptions};
use voxprompt::volume::intensity::{map_to_u8, IntensityMapping};
use voxprompt::volume::{BoxIjk, DType, Volume};

fn peak_rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn label_box(labels: &[f64], dims: [usize; 3], value: f64) -> BoxIjk {
    BoxIjk::of_label(labels, dims, value).expect("label present").0
}

fn main() {
    let ort = common::ort_lib();
    let engine = Arc::new(
        Engine::new(&EngineOptions {
            ort_library: Some(ort),
            model_dirs: vec![common::root().join("models/litemedsam")],
            session: SessionConfig { threads: 2, ..Default::default() },
        })
        .expect("engine"),
    );
    let parts = std::env::var("VXP_PARTS").unwrap_or_else(|_| "rss,refine,objects".into());
    let want = |p: &str| parts.split(',').any(|x| x == p);
    // First, so that the process's high-water mark is this case's own.
    if want("rss") {
        println!("  engine loaded: RSS high-water mark {:.0} MB", peak_rss_mb());
        rss(&engine);
    }
    let v = read_volume(&common::root().join("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap().volume;
    let labels =
        read_volume(&common::root().join("tests/fixtures/data/example_seg.nii.gz")).unwrap().volume.to_f64().unwrap();
    let image = map_to_u8(&v.view().unwrap(), IntensityMapping::CT).unwrap();
    let dims = image.dims;
    let n = dims[0] * dims[1];

    if want("refine") {
        // 1. Refinement latency: TotalSegmentator label 32 from a box grown by 20 %, then clicks where it is wrong.
        let t = label_box(&labels, dims, 32.0);
        let mut b = t;
        for a in 0..3 {
            let pad = (((t.max[a] - t.min[a] + 1) as f64) * 0.1).round() as usize;
            b.min[a] = t.min[a].saturating_sub(pad);
            b.max[a] = (t.max[a] + pad).min(dims[a] - 1);
        }
        let mut s = Session::new(engine.models.clone(), image.clone(), v.geometry, SessionOptions::default()).unwrap();
        s.add_box(1, b).unwrap();
        let first = s.run(None).unwrap();
        println!(
            "# refinement (TotalSegmentator A, label 32, grown box, policy {}): first run {:.2} s, {} slices encoded",
            s.options().policy.name(),
            first.time.as_secs_f64(),
            first.slices_encoded
        );
        let (mut touched, mut total) = (0usize, 0.0f64);
        for click in 0..6 {
            let (mask, _) = s.compose(false);
            let negative = click % 2 == 0;
            let (z, err) = (0..dims[2])
                .map(|z| {
                    let e: Vec<u8> = (0..n)
                        .map(|i| {
                            let (ours, truth) = (mask.data[z * n + i] == 1, labels[z * n + i] == 32.0);
                            (if negative { ours && !truth } else { truth && !ours }) as u8
                        })
                        .collect();
                    (z, e)
                })
                .max_by_key(|(_, e)| e.iter().map(|&x| x as usize).sum::<usize>())
                .unwrap();
            let Some((x, y)) = interior_point_2d(&err, dims[0], dims[1]) else { continue };
            if s.add_point(1, PointIjk { ijk: [x, y, z], positive: !negative }).is_err() {
                continue;
            }
            let r = s.run(None).unwrap();
            let ms = r.time.as_secs_f64() * 1e3;
            touched += r.slices_decoded;
            total += ms;
            let st = &r.stats;
            println!(
                "  click {click} ({}, slice {z}): {ms:7.1} ms, {} slices re-decoded, {} encoded, {:.1} ms per touched slice \
                 (decoder {:.1}, pre {:.1}, post {:.1} ms per slice)",
                if negative { "negative" } else { "positive" },
                r.slices_decoded,
                r.slices_encoded,
                ms / r.slices_decoded.max(1) as f64,
                st.decode.as_secs_f64() * 1e3 / r.slices_decoded.max(1) as f64,
                st.preprocess.as_secs_f64() * 1e3 / r.slices_decoded.max(1) as f64,
                st.postprocess.as_secs_f64() * 1e3 / r.slices_decoded.max(1) as f64,
            );
        }
        println!("refinement latency per touched slice: {:.1} ms (goal < 50 ms)\n", total / touched.max(1) as f64);
    }
    if want("objects") {
        // 2. Three objects in one session vs the reference's re-encoding per object.
        let objs = [5.0, 1.0, 3.0].map(|l| label_box(&labels, dims, l));
        let opts = SessionOptions::default().with_policy(Policy::Reference);
        let t0 = Instant::now();
        let mut separate = voxprompt::volume::U8Volume::zeros(dims);
        let mut encodes = 0;
        for (k, o) in objs.iter().enumerate() {
            let mut s = Session::new(engine.models.clone(), image.clone(), v.geometry, opts).unwrap();
            s.add_box(1, *o).unwrap();
            encodes += s.run(None).unwrap().slices_encoded;
            for (dst, &m) in separate.data.iter_mut().zip(&s.compose(false).0.data) {
                if m > 0 {
                    *dst = (k + 1) as u8;
                }
            }
        }
        let per_object = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let mut s = Session::new(engine.models.clone(), image.clone(), v.geometry, opts).unwrap();
        for (k, o) in objs.iter().enumerate() {
            s.add_box((k + 1) as u8, *o).unwrap();
        }
        let r = s.run(None).unwrap();
        let together = t0.elapsed().as_secs_f64();
        // Masks agree up to the reference's own quirk: an object's working mask holds its 1-based position,
        // which changes INTER_AREA rounding of its box (METHODS §0.4b), and alone every object is number 1.
        let together_mask = s.compose(false).0;
        let agree = together_mask.data.iter().zip(&separate.data).filter(|(a, b)| a == b).count() as f64
            / separate.data.len() as f64;
        println!("# three objects (liver, spleen, kidney_left; reference policy)");
        println!(
            "  one session per object (the reference re-encodes per object): {per_object:.2} s, {encodes} encoder runs"
        );
        println!(
            "  one session, shared embeddings, batched decoder: {together:.2} s, {} encoder runs, {} decoder batches for {} prompts",
            r.slices_encoded, r.stats.decoder_batches, r.stats.decoder_runs
        );
        println!("  speed-up {:.2}x, voxel agreement {agree:.6}\n", per_object / together);
    }
}

/// Peak RSS on a 512×512×300 int16 volume.
fn rss(engine: &Arc<Engine>) {
    let lung = read_volume(&common::root().join("data/pyradiomics/lung2_image.nrrd")).unwrap().volume;
    let ll = read_volume(&common::root().join("data/pyradiomics/lung2_label.nrrd")).unwrap().volume.to_f64().unwrap();
    assert_eq!(lung.dtype, DType::I16);
    let [w, h, d] = lung.dims;
    let slice_bytes = w * h * 2;
    let depth = 300;
    let mut data = Vec::with_capacity(slice_bytes * depth);
    for z in 0..depth {
        let src = z % d;
        data.extend_from_slice(&lung.data[src * slice_bytes..(src + 1) * slice_bytes]);
    }
    drop(lung);
    let big = Volume { data, dtype: DType::I16, dims: [w, h, depth], geometry: Default::default() };
    let tb = label_box(&ll, [w, h, d], 1.0);
    let before = peak_rss_mb();
    let t0 = Instant::now();
    let mut opts = SessionOptions::default();
    if let Some(mb) = std::env::var("VXP_CACHE_MB").ok().and_then(|s| s.parse::<usize>().ok()) {
        opts.cache_budget = mb << 20;
    }
    let mut s = engine.open_session(&big.view().unwrap(), IntensityMapping::CT, opts).unwrap();
    drop(big);
    // The tumour's in-plane box over every slice: all 300 slices are visited.
    s.add_box(1, BoxIjk { min: [tb.min[0], tb.min[1], 0], max: [tb.max[0], tb.max[1], depth - 1] }).unwrap();
    let r = s.run(None).unwrap();
    // As the C ABI does: the confidence stays one byte per voxel until it reaches the host's buffer.
    let (mask, conf) = s.compose_coded(true);
    println!("# {w}×{h}×{depth} int16 CT, one object over all {depth} slices (policy {})", s.options().policy.name());
    println!(
        "  {:.1} s, {} slices encoded, cache {} embeddings / {} MiB (budget {} MiB, {} evicted), {} voxels labelled",
        t0.elapsed().as_secs_f64(),
        r.slices_encoded,
        r.cache.entries,
        r.cache.bytes >> 20,
        s.cache_stats().bytes.max(s.options().cache_budget) >> 20,
        r.cache.evicted,
        mask.data.iter().filter(|&&m| m > 0).count()
    );
    drop(conf);
    println!("  peak RSS {:.0} MB (before the volume: {before:.0} MB; goal < 1500 MB)", peak_rss_mb());
}
