//! The body-CT anatomical prior's cost next to one LiteMedSAM run it saves the user a box for
//! (`cargo bench --bench anatomy`, needs `make setup`): TotalSegmentator case A-full resampled (nearest
//! neighbour) to 512×512×300 int16; HuGrid::from_view + BodyFrame::compute + locate("liver"), then one
//! LiteMedSAM box-prompt run (default policy) from the found region's box, as a wall-clock ratio. First, on
//! case A-full itself, a whole text-only run ("liver": open, add_text, run) next to the box-prompt run of the
//! same organ from its reference box (goal ≤ 1.3×). `VXP_BENCH_SKIP_BIG=1` skips the 512×512×300 part.
#![allow(clippy::needless_range_loop)] // loops over the three axes read best indexed

mod common;

use std::time::Instant;

use voxprompt::anatomy::{BodyFrame, HuGrid};
use voxprompt::engine::{Engine, EngineOptions};
use voxprompt::io::read_volume;
use voxprompt::model::SessionConfig;
use voxprompt::session::SessionOptions;
use voxprompt::volume::intensity::IntensityMapping;
use voxprompt::volume::{DType, Volume};

/// Case A-full on a 512×512×300 grid covering the same field of view.
fn big_volume() -> Volume {
    let v = read_volume(&common::root().join("data/totalsegmentator/example_ct.nii.gz")).expect("make setup").volume;
    let src = v.to_f64().unwrap();
    let (sd, dd) = (v.dims, [512usize, 512, 300]);
    let mut data = Vec::with_capacity(dd.iter().product::<usize>() * 2);
    for k in 0..dd[2] {
        let sk = k * sd[2] / dd[2];
        for j in 0..dd[1] {
            let sj = j * sd[1] / dd[1];
            for i in 0..dd[0] {
                let si = i * sd[0] / dd[0];
                let hu = src[(sk * sd[1] + sj) * sd[0] + si].clamp(-1024.0, 3071.0) as i16;
                data.extend_from_slice(&hu.to_ne_bytes());
            }
        }
    }
    let mut g = v.geometry;
    for a in 0..3 {
        let f = sd[a] as f64 / dd[a] as f64;
        g.spacing[a] *= f;
        for r in 0..3 {
            g.ijk_to_ras[r][a] *= f;
        }
    }
    Volume { data, dtype: DType::I16, dims: dd, geometry: g }
}

fn main() {
    let ort = common::ort_lib();
    let engine = Engine::new(&EngineOptions {
        ort_library: Some(ort),
        model_dirs: vec![common::root().join("models/litemedsam")],
        session: SessionConfig { threads: 2, ..Default::default() },
        brain_atlas: None,
    })
    .expect("engine");
    text_vs_box(&engine);
    if std::env::var_os("VXP_BENCH_SKIP_BIG").is_some() {
        return;
    }
    let vol = big_volume();
    let view = vol.view().unwrap();
    let mut best = f64::INFINITY;
    let mut region = None;
    let (mut t_grid, mut t_frame) = (0.0, 0.0);
    for _ in 0..3 {
        let t = Instant::now();
        let grid = HuGrid::from_view(&view, 3.0).unwrap();
        let tg = t.elapsed().as_secs_f64();
        let frame = BodyFrame::compute(&grid).unwrap();
        let tf = t.elapsed().as_secs_f64() - tg;
        let r = frame.locate(&grid, "liver").unwrap();
        let total = t.elapsed().as_secs_f64();
        if total < best {
            (best, t_grid, t_frame) = (total, tg, tf);
        }
        region = r;
    }
    let region = region.expect("a liver in case A-full");
    let t = Instant::now();
    let mut s = engine.open_session(&view, IntensityMapping::CT, SessionOptions::default()).unwrap();
    s.add_box(1, region.bbox).unwrap();
    let r = s.run(None).unwrap();
    let sam = t.elapsed().as_secs_f64();
    println!(
        "# anatomy prior vs one LiteMedSAM box run, {:?} int16 (case A-full resampled), {}",
        vol.dims,
        common::machine()
    );
    println!(
        "  prior (best of 3): {best:.3} s = grid {t_grid:.3} + frame {t_frame:.3} + locate(liver) {:.3} (goal < 3 s)",
        best - t_grid - t_frame
    );
    println!(
        "  LiteMedSAM from the prior's box {:?}..{:?}: {sam:.2} s ({} slices encoded)",
        region.bbox.min, region.bbox.max, r.slices_encoded
    );
    println!("  prior / model run = {:.3}", best / sam);
}

/// One text-only run against one box run of the same organ, whole (session open included), on case A-full.
fn text_vs_box(engine: &Engine) {
    let v = read_volume(&common::root().join("data/totalsegmentator/example_ct.nii.gz")).expect("make setup").volume;
    let seg =
        read_volume(&common::root().join("data/totalsegmentator/example_seg_fast_force_split.nii.gz")).unwrap().volume;
    let labels = seg.to_f64().unwrap();
    let (b, _) = voxprompt::volume::BoxIjk::of_label(&labels, v.dims, 5.0).expect("liver in the reference");
    let view = v.view().unwrap();
    let run = |text: bool| {
        let t = Instant::now();
        let mut s = engine.open_session(&view, IntensityMapping::CT, SessionOptions::default()).unwrap();
        if text {
            s.add_text(1, "liver").unwrap();
        } else {
            s.add_box(1, b).unwrap();
        }
        let r = s.run(None).unwrap();
        (t.elapsed().as_secs_f64(), r.slices_encoded)
    };
    let (tb, nb) = run(false);
    let (tt, nt) = run(true);
    println!("# text-only vs box run, liver of case A-full {:?}, {}", v.dims, common::machine());
    println!("  box (reference box): {tb:.2} s, {nb} slices encoded");
    println!("  text \"liver\" alone: {tt:.2} s, {nt} slices encoded");
    println!("  text / box = {:.3} (goal <= 1.3)", tt / tb);
}
