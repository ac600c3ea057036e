//! Text prompts through a session, as hosts use them: a phrase alone (no box, no click) on the real CT
//! volumes of shared/DATA.md, next to the box-prompt Dice of the same structure; text + box against box
//! alone; and sides: the same kidney after the array is flipped with its affine adjusted, and "left
//! kidney" refused on a slab that holds only the right one.

mod common;

use common::*;
use voxprompt::ops::mask::dice;
use voxprompt::session::{Session, SessionOptions};
use voxprompt::volume::intensity::IntensityMapping;
use voxprompt::volume::{BoxIjk, Volume};
use voxprompt::ErrorCode;

/// One organ: its phrase, the reference label values that make it up, and the least text-alone Dice
/// measured here (minus a margin), so a regression fails.
struct Case {
    phrase: &'static str,
    labels: &'static [u32],
    min_text: f64,
}

fn open(v: &Volume) -> Session {
    ENGINE.open_session(&v.view().unwrap(), IntensityMapping::CT, SessionOptions::default()).unwrap()
}

/// The mask of object 1 from `prompt` alone, and its Dice against `labels` of `reference`. The session's
/// earlier objects are cleared first; its embeddings stay, so a slice an earlier prompt encoded is not
/// encoded again (the encoder is deterministic: the masks are those of a fresh session).
fn run(s: &mut Session, reference: &[f64], labels: &[u32], prompt: impl FnOnce(&mut Session)) -> f64 {
    s.clear();
    prompt(s);
    s.run(None).unwrap();
    let mask = s.compose(false).0;
    dice(mask.data.iter().map(|&m| m == 1), reference.iter().map(|&r| labels.contains(&(r as u32))))
}

/// The tight box of the reference structure, as `make demo` prompts it.
fn reference_box(reference: &[f64], dims: [usize; 3], labels: &[u32]) -> BoxIjk {
    let only: Vec<f64> = reference.iter().map(|&r| if labels.contains(&(r as u32)) { 1.0 } else { 0.0 }).collect();
    BoxIjk::of_label(&only, dims, 1.0).unwrap().0
}

/// Text alone, box alone and text + box for each case of one volume; returns the rows.
fn table(name: &str, image: &str, seg: &str, cases: &[Case]) -> Vec<(String, f64, f64, f64)> {
    let v = volume(image);
    let reference = volume(seg).to_f64().unwrap();
    let mut s = open(&v);
    let mut rows = Vec::new();
    for c in cases {
        let text = run(&mut s, &reference, c.labels, |s| {
            s.add_text(1, c.phrase).unwrap_or_else(|e| panic!("{name} {:?}: {e}", c.phrase));
        });
        let b = reference_box(&reference, v.dims, c.labels);
        let boxed = run(&mut s, &reference, c.labels, |s| s.add_box(1, b).unwrap());
        let both = run(&mut s, &reference, c.labels, |s| {
            s.add_box(1, b).unwrap();
            s.add_text(1, c.phrase).unwrap();
        });
        println!("{name:<8} {:<14} text {text:.3}   box {boxed:.3}   text+box {both:.3}", c.phrase);
        assert!(text >= c.min_text, "{name} {:?}: text-alone Dice {text:.3} < {}", c.phrase, c.min_text);
        rows.push((c.phrase.to_string(), text, boxed, both));
    }
    rows
}

#[test]
fn text_alone_finds_the_large_organs_of_the_ct_cases() {
    let mut rows = table(
        "A-full",
        "data/totalsegmentator/example_ct.nii.gz",
        "data/totalsegmentator/example_seg_fast_force_split.nii.gz",
        &[
            Case { phrase: "liver", labels: &[5], min_text: 0.88 },
            Case { phrase: "spleen", labels: &[1], min_text: 0.80 },
            Case { phrase: "left kidney", labels: &[3], min_text: 0.90 },
            Case { phrase: "right kidney", labels: &[2], min_text: 0.88 },
        ],
    );
    rows.extend(table(
        "A",
        "tests/fixtures/data/example_ct_sm.nii.gz",
        "tests/fixtures/data/example_seg.nii.gz",
        &[
            Case { phrase: "liver", labels: &[5], min_text: 0.85 },
            Case { phrase: "left kidney", labels: &[3], min_text: 0.90 },
        ],
    ));
    let n = rows.len() as f64;
    let mean = |f: fn(&(String, f64, f64, f64)) -> f64| rows.iter().map(f).sum::<f64>() / n;
    let (t, b, tb) = (mean(|r| r.1), mean(|r| r.2), mean(|r| r.3));
    println!("mean over {} structures: text alone {t:.3}, box {b:.3}, text + box {tb:.3}", rows.len());
    assert!(t >= 0.80, "mean text-alone Dice {t:.3}");
    // The text's limit only cuts what lies far outside the structure: it never costs a box prompt.
    assert!(tb >= b - 0.002, "text + box {tb:.3} vs box {b:.3}");
}

/// The voxels of `v` with i in `lo..hi`, with the affine moved so they stay where they were.
fn slab_i(v: &Volume, lo: usize, hi: usize) -> Volume {
    let [nx, ny, nz] = v.dims;
    let s = v.dtype.size();
    let w = hi - lo;
    let mut data = Vec::with_capacity(w * ny * nz * s);
    for k in 0..nz {
        for j in 0..ny {
            let row = ((k * ny + j) * nx + lo) * s;
            data.extend_from_slice(&v.data[row..row + w * s]);
        }
    }
    let mut g = v.geometry;
    for r in 0..3 {
        g.ijk_to_ras[r][3] += g.ijk_to_ras[r][0] * lo as f64;
    }
    Volume { data, dtype: v.dtype, dims: [w, ny, nz], geometry: g }
}

#[test]
fn sides_come_from_the_affine_not_the_array() {
    let v = volume("tests/fixtures/data/example_ct_sm.nii.gz");
    let reference = volume("tests/fixtures/data/example_seg.nii.gz");
    let r = reference.to_f64().unwrap();
    let straight = run(&mut open(&v), &r, &[3], |s| {
        s.add_text(1, "left kidney").unwrap();
    });
    let fv = mirrored_i(&v);
    let fr = mirrored_i(&reference).to_f64().unwrap();
    let flipped = run(&mut open(&fv), &fr, &[3], |s| {
        s.add_text(1, "left kidney").unwrap();
    });
    println!("left kidney: Dice {straight:.3} as stored, {flipped:.3} with the array flipped along i");
    assert!(straight > 0.9 && flipped > 0.9, "{straight:.3} / {flipped:.3}");

    // The half of the columns that holds the right kidney (found from the reference, in array terms).
    let [nx, ny, nz] = v.dims;
    let mut right_i = 0usize;
    let mut count = 0usize;
    for (at, &l) in r.iter().enumerate() {
        if l as u32 == 2 {
            right_i += at % nx;
            count += 1;
        }
    }
    let right_i = right_i / count;
    let (lo, hi) = if right_i < nx / 2 { (0, nx / 2) } else { (nx / 2, nx) };
    let slab = slab_i(&v, lo, hi);
    let slab_ref = slab_i(&reference, lo, hi).to_f64().unwrap();
    assert!(!slab_ref.iter().any(|&l| l as u32 == 3), "the slab must hold no left kidney");
    let mut s = open(&slab);
    let e = s.add_text(1, "left kidney").unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidPrompt, "{e}");
    assert!(e.to_string().contains("not in this volume"), "{e}");
    let right = run(&mut s, &slab_ref, &[2], |s| {
        s.add_text(1, "right kidney").unwrap();
    });
    println!(
        "slab of {} of {nx} columns ({ny}x{nz}): \"left kidney\" refused ({e}); right kidney Dice {right:.3}",
        hi - lo
    );
    assert!(right > 0.85, "right kidney on its slab: {right:.3}");
}

#[test]
fn the_lungs_are_found_by_their_prior_alone_with_no_model_run() {
    // LiteMedSAM finds nothing of the lungs under the CT soft-tissue window, from any box: the prior (air
    // inside the body, split by side) is the result, without a slice encoded. Least Dice: the prior's own,
    // measured in tests/anatomy_body.rs (0.847 and 0.592), less a margin.
    let v = volume("tests/fixtures/data/example_ct_sm.nii.gz");
    let reference = volume("tests/fixtures/data/example_seg.nii.gz").to_f64().unwrap();
    let mut s = open(&v);
    for (phrase, labels, least) in [("right lung", &[12u32, 13, 14][..], 0.81), ("left lung", &[10, 11][..], 0.55)] {
        s.clear();
        s.add_text(1, phrase).unwrap();
        let r = s.run(None).unwrap();
        let mask = s.compose(true);
        let d = dice(mask.0.data.iter().map(|&m| m == 1), reference.iter().map(|&r| labels.contains(&(r as u32))));
        println!("A {phrase:<11} prior alone {d:.3}, {} slices encoded", r.slices_encoded);
        assert!(d >= least, "{phrase}: Dice {d:.3} < {least}");
        assert_eq!((r.slices_encoded, r.slices_decoded), (0, 0), "{phrase}: the model ran");
        // No model confirmed it: confidence 0.5 inside.
        let conf = mask.1.unwrap();
        let inside: Vec<f32> = conf.iter().zip(&mask.0.data).filter(|(_, &m)| m == 1).map(|(&c, _)| c).collect();
        assert!(!inside.is_empty() && inside.iter().all(|&c| (c - 0.498).abs() < 0.01), "{:?}", &inside[..3]);
        let report: serde_json::Value = serde_json::from_str(&s.reports_json()).unwrap();
        let hints: Vec<&serde_json::Value> =
            report[0]["prompts"].as_array().unwrap().iter().filter(|p| p["kind"] == "hint").collect();
        assert_eq!(hints[0]["contribution"]["hint"], "prior only", "{report}");
        // A click on it refines nothing a model made: the result stays the prior, still without the model.
        let i = mask.0.data.iter().position(|&m| m == 1).unwrap();
        let [w, h, _] = v.dims;
        s.add_point(1, voxprompt::prompt::PointIjk { ijk: [i % w, (i / w) % h, i / (w * h)], positive: true }).unwrap();
        let r = s.run(None).unwrap();
        assert_eq!((r.refined.as_slice(), r.slices_encoded, r.slices_decoded), (&[1u8][..], 0, 0));
        assert_eq!(s.compose(false).0.data, mask.0.data);
    }
}
