//! Interactive-session costs in one invocation (`cargo bench --bench session`, needs `make setup`):
//! 1. refinement latency per touched slice after point clicks (goal < 50 ms on 2 cores);
//! 2. three objects in one session against the reference pipeline, which re-encodes every slice per object
//!    (run here as one fresh session per object), as a wall-clock ratio, with the voxel agreement;
//! 3. peak RSS while segmenting a 512×512×300 int16 CT volume (pyradiomics lung2 stacked five times in z and
//!    cut to 300 slices) with the default budgets (goal < 1.5 GB), next to the defaults before the spill file
//!    (1 GiB in memory, no spill), each in a child process of its own so that each high-water mark is its own.
//!    `VXP_RSS_ONLY=default|before` runs one of the two here instead; `VXP_CACHE_MB` / `VXP_SPILL_MB` set the
//!    budgets of `default`.
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
            brain_atlas: None,
        })
        .expect("engine"),
    );
    let parts = std::env::var("VXP_PARTS").unwrap_or_else(|_| "rss,refine,objects".into());
    let want = |p: &str| parts.split(',').any(|x| x == p);
    // First, so that the process's high-water mark is this case's own.
    if let Ok(which) = std::env::var("VXP_RSS_ONLY") {
        println!("  engine loaded: RSS high-water mark {:.0} MB", peak_rss_mb());
        rss(&engine, &which);
        return;
    }
    if want("rss") {
        rss_before_and_after();
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

/// The 512×512×300 case under the budgets before the spill file, then under today's defaults, each in a
/// child process (this bench again, `VXP_RSS_ONLY`), with the ratios.
fn rss_before_and_after() {
    let mut got = Vec::new();
    for which in ["before", "default"] {
        let out = std::process::Command::new(std::env::current_exe().expect("own path"))
            .env("VXP_RSS_ONLY", which)
            .output()
            .expect("the bench runs itself");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{text}");
        assert!(out.status.success(), "{which}: {}", String::from_utf8_lossy(&out.stderr));
        let field = |key: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with("RESULT")).expect("a RESULT line");
            let at = line.find(key).expect(key) + key.len();
            line[at..].split_whitespace().next().unwrap().parse().unwrap()
        };
        got.push((field("seconds="), field("encoded="), field("peak_mb=")));
    }
    let (b, a) = (got[0], got[1]);
    println!(
        "  defaults vs before: peak RSS {:.0} -> {:.0} MB ({:.2}x), encoder runs {} -> {}, wall time {:.2}x\n",
        b.2,
        a.2,
        a.2 / b.2,
        b.1,
        a.1,
        b.0 / a.0
    );
}

/// Peak RSS on a 512×512×300 int16 volume, under the budgets before the spill file (`before`: 1 GiB in
/// memory, no spill file) or the defaults (`default`, or `VXP_CACHE_MB` / `VXP_SPILL_MB`).
fn rss(engine: &Arc<Engine>, which: &str) {
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
    let mb = |key: &str| std::env::var(key).ok().and_then(|s| s.parse::<usize>().ok()).map(|mb| mb << 20);
    let opts = match which {
        "before" => SessionOptions::default().with_cache_budget(1 << 30).with_spill_budget(0),
        _ => {
            let d = SessionOptions::default();
            d.with_cache_budget(mb("VXP_CACHE_MB").unwrap_or(d.cache_budget))
                .with_spill_budget(mb("VXP_SPILL_MB").unwrap_or(d.spill_budget))
        }
    };
    let mut s = engine.open_session(&big.view().unwrap(), IntensityMapping::CT, opts).unwrap();
    drop(big);
    // The tumour's in-plane box over every slice: all 300 slices are visited.
    s.add_box(1, BoxIjk { min: [tb.min[0], tb.min[1], 0], max: [tb.max[0], tb.max[1], depth - 1] }).unwrap();
    let r = s.run(None).unwrap();
    // As the C ABI does: the confidence stays one byte per voxel until it reaches the host's buffer.
    let (mask, conf) = s.compose_coded(true);
    let seconds = t0.elapsed().as_secs_f64();
    println!(
        "# {which}: {w}×{h}×{depth} int16 CT, one object over all {depth} slices (policy {}), budgets {} MiB in memory, \
         {} MiB spill",
        s.options().policy.name(),
        s.options().cache_budget >> 20,
        s.options().spill_budget >> 20
    );
    let labelled = mask.data.iter().filter(|&&m| m > 0).count();
    // A digest of the mask, so the two runs can be seen to agree voxel for voxel.
    let digest = mask.data.iter().fold(0xcbf29ce484222325u64, |h, &m| (h ^ u64::from(m)).wrapping_mul(0x100000001b3));
    println!(
        "  {seconds:.1} s, {} slices encoded, memory {} embeddings / {} MiB ({} evicted), spill file {} written / {} \
         read back / {} MiB, {labelled} voxels labelled, mask digest {digest:016x}",
        r.slices_encoded,
        r.cache.entries,
        r.cache.bytes >> 20,
        r.cache.evicted,
        r.cache.spilled,
        r.cache.restored,
        r.cache.spill_bytes >> 20,
    );
    drop(conf);
    let peak = peak_rss_mb();
    println!("  peak RSS {peak:.0} MB (before the volume: {before:.0} MB; goal < 1500 MB)");
    println!("RESULT seconds= {seconds:.2} encoded= {} peak_mb= {peak:.0}", r.slices_encoded);
}
