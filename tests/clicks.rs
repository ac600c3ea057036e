//! Clicks as hosts give them: one positive click and nothing else on each large organ of TotalSegmentator
//! case A (the box is grown from the click), and on each pyradiomics lesion one click alone against the
//! same click with the lesion's text ("lung nodule", "brain tumour", "breast lesion"), whose organ bounds
//! it. The click is the reference mask's most interior voxel on its widest slice, as a user aims.

mod common;

use common::*;
use voxprompt::ops::mask::{dice, interior_point_2d};
use voxprompt::prompt::PointIjk;
use voxprompt::session::{Session, SessionOptions};
use voxprompt::volume::intensity::IntensityMapping;
use voxprompt::volume::Volume;

/// The most interior voxel of `mask` (nonzero = inside, i fastest) on its widest k-slice.
fn click_in(mask: &[bool], dims: [usize; 3]) -> [usize; 3] {
    let [w, h, d] = dims;
    let area = |k: usize| mask[k * w * h..(k + 1) * w * h].iter().filter(|&&m| m).count();
    let k = (0..d).max_by_key(|&k| (area(k), std::cmp::Reverse(k))).unwrap();
    let slice: Vec<u8> = mask[k * w * h..(k + 1) * w * h].iter().map(|&m| m as u8).collect();
    let (i, j) = interior_point_2d(&slice, w, h).expect("a non-empty slice");
    [i, j, k]
}

fn open(v: &Volume, mapping: IntensityMapping) -> Session {
    ENGINE.open_session(&v.view().unwrap(), mapping, SessionOptions::default()).unwrap()
}

/// Object 1's mask after `prompt` alone and a run under `opts`. The session's earlier objects are cleared
/// first; its embeddings stay, so no slice is encoded twice across the cases of one volume (the encoder is
/// deterministic: the masks are those of a fresh session).
fn mask_of(s: &mut Session, opts: SessionOptions, prompt: impl FnOnce(&mut Session)) -> Vec<bool> {
    s.clear();
    s.set_options(opts).unwrap();
    prompt(s);
    s.run(None).unwrap();
    s.compose(false).0.data.iter().map(|&m| m == 1).collect()
}

fn dice_of(a: &[bool], b: &[bool]) -> f64 {
    dice(a.iter().copied(), b.iter().copied())
}

#[test]
fn one_click_alone_gives_each_large_organ_of_case_a() {
    let v = volume("tests/fixtures/data/example_ct_sm.nii.gz");
    let reference = volume("tests/fixtures/data/example_seg.nii.gz").to_f64().unwrap();
    // (name, labels, least Dice measured here less a margin)
    // (name, labels, least Dice: measured here less 0.05). The misses: the lungs are black under the CT
    // soft-tissue window (LiteMedSAM finds nothing there from any box), and on this 3 mm case the aorta's
    // and the gallbladder's grown boxes take in their neighbours.
    let organs: &[(&str, &[u32], f64)] = &[
        ("liver", &[5], 0.88),
        ("spleen", &[1], 0.29),
        ("kidney_right", &[2], 0.27),
        ("kidney_left", &[3], 0.88),
        ("stomach", &[6], 0.60),
        ("gallbladder", &[4], 0.0),
        ("pancreas", &[7], 0.26),
        ("aorta", &[52], 0.0),
        ("inferior_vena_cava", &[63], 0.76),
        ("lung_left (lower lobe)", &[11], 0.0),
        ("lung_right (lower lobe)", &[14], 0.0),
    ];
    let mut s = open(&v, IntensityMapping::CT);
    let mut sum = [0.0; 2];
    println!("{:<24} {:>13} {:>10} {:>8}", "case A, one click", "click", "grown", "point only");
    for (name, labels, least) in organs {
        let truth: Vec<bool> = reference.iter().map(|&r| labels.contains(&(r as u32))).collect();
        let at = click_in(&truth, v.dims);
        let click = |s: &mut Session| s.add_point(1, PointIjk { ijk: at, positive: true }).unwrap();
        let grown = mask_of(&mut s, SessionOptions::default(), click);
        let bare = mask_of(&mut s, SessionOptions::default().with_click_growth(false), click);
        let (dg, db) = (dice_of(&grown, &truth), dice_of(&bare, &truth));
        println!("{name:<24} {at:>13?} {dg:>10.3} {db:>8.3}");
        assert!(grown.iter().any(|&m| m), "{name}: the click at {at:?} gave an empty mask");
        assert!(dg >= *least, "{name}: Dice {dg:.3} < {least}");
        sum[0] += dg;
        sum[1] += db;
    }
    let n = organs.len() as f64;
    println!("{:<24} {:>13} {:>10.3} {:>8.3}", "mean", "", sum[0] / n, sum[1] / n);
    // Measured: 0.394 grown, 0.000 from the click alone as LiteMedSAM takes it.
    assert!(sum[0] / n >= 0.35 && sum[1] / n < 0.05, "means {:.3} / {:.3}", sum[0] / n, sum[1] / n);
}

#[test]
fn a_click_on_each_lesion_alone_and_with_its_text_and_organ() {
    // (case, modality, phrase, least fused Dice: measured here less 0.05). MR has no organ prior yet: there
    // the text makes the click a lesion's (smaller reach, finer opening) and bounds nothing.
    let cases: &[(&str, IntensityMapping, &str, f64)] = &[
        ("lung1", IntensityMapping::CT, "lung nodule", 0.65),
        ("lung2", IntensityMapping::CT, "lung tumour", 0.80),
        ("brain1", IntensityMapping::MR, "brain tumour", 0.53),
        ("brain2", IntensityMapping::MR, "brain tumour", 0.31),
        ("breast1", IntensityMapping::MR, "breast lesion", 0.33),
    ];
    let mut sum = [0.0; 2];
    println!("{:<8} {:<14} {:>13} {:>7} {:>7} {:>9}", "lesion", "text", "click", "alone", "fused", "in organ");
    for (name, mapping, phrase, least) in cases {
        let v = volume(&format!("data/pyradiomics/{name}_image.nrrd"));
        let truth: Vec<bool> =
            volume(&format!("data/pyradiomics/{name}_label.nrrd")).to_f64().unwrap().iter().map(|&r| r > 0.0).collect();
        let at = click_in(&truth, v.dims);
        let click = PointIjk { ijk: at, positive: true };
        let mut s = open(&v, *mapping);
        let alone = mask_of(&mut s, SessionOptions::default(), |s| s.add_point(1, click).unwrap());
        let mut limit = None;
        let fused = mask_of(&mut s, SessionOptions::default(), |s| {
            s.add_point(1, click).unwrap();
            let outcome = s.add_text(1, phrase).unwrap_or_else(|e| panic!("{name} {phrase:?}: {e}"));
            assert!(outcome.resolution.lesion.is_some(), "{name}: {phrase:?} is a lesion phrase");
            limit = s.limit_of(1).map(|l| l.to_vec());
        });
        let (da, df) = (dice_of(&alone, &truth), dice_of(&fused, &truth));
        let inside = match &limit {
            Some(l) => fused.iter().zip(l).all(|(&m, &l)| !m || l != 0).to_string(),
            None => "no prior".into(),
        };
        println!("{name:<8} {phrase:<14} {at:>13?} {da:>7.3} {df:>7.3} {inside:>9}");
        if let Some(l) = &limit {
            assert!(fused.iter().zip(l).all(|(&m, &l)| !m || l != 0), "{name}: the lesion left its organ");
        }
        assert!(df >= *least, "{name}: fused Dice {df:.3} < {least}");
        sum[0] += da;
        sum[1] += df;
    }
    let n = cases.len() as f64;
    println!("{:<8} {:<14} {:>13} {:>7.3} {:>7.3}", "mean", "", "", sum[0] / n, sum[1] / n);
    // Measured: 0.515 alone, 0.580 fused.
    assert!(sum[1] > sum[0], "fused {:.3} must beat click-alone {:.3} on average", sum[1] / n, sum[0] / n);
}

#[test]
fn the_report_names_each_prompts_source_and_part_in_the_result() {
    let v = volume("data/pyradiomics/lung1_image.nrrd");
    let truth: Vec<bool> =
        volume("data/pyradiomics/lung1_label.nrrd").to_f64().unwrap().iter().map(|&r| r > 0.0).collect();
    let at = click_in(&truth, v.dims);
    let mut s = open(&v, IntensityMapping::CT);
    s.add_point(1, PointIjk { ijk: at, positive: true }).unwrap();
    s.add_text(1, "lung nodule").unwrap();
    let before: serde_json::Value = serde_json::from_str(&s.reports_json()).unwrap();
    assert_eq!(before[0]["ran"], false);
    s.run(None).unwrap();
    let mask = s.compose(false).0;
    let voxels = mask.data.iter().filter(|&&m| m == 1).count();
    let json = s.reports_json();
    // A host that composed the mask and summaries already gets the same report from them.
    assert_eq!(s.reports_json_with(&mask, &s.summaries()), json);
    let r: serde_json::Value = serde_json::from_str(&json).expect("the report is JSON");
    println!("{}", serde_json::to_string_pretty(&r).unwrap());
    let o = &r[0];
    assert_eq!(
        (o["label"].as_u64(), o["ran"].as_bool(), o["voxels"].as_u64()),
        (Some(1), Some(true), Some(voxels as u64))
    );
    assert!(o["confidence"].as_f64().unwrap() > 0.5 && o["slices"].as_u64().unwrap() > 0);
    let prompts = o["prompts"].as_array().unwrap();
    let of = |kind: &str| prompts.iter().find(|p| p["kind"] == kind).unwrap_or_else(|| panic!("no {kind}: {o}"));
    // The click is the host's and the result holds it.
    let point = of("point");
    assert_eq!(point["source"]["from"], "user");
    assert_eq!(point["contribution"]["satisfied"], true);
    // The phrase resolved to the lungs' lesion; the organ bounds the result: all of it lies inside.
    let text = of("text");
    assert_eq!(text["contribution"]["resolution"]["lesion"], "nodule");
    let limit = of("limit");
    assert_eq!(limit["source"]["from"], "anatomy");
    assert_eq!(limit["contribution"]["result_inside"].as_f64(), Some(1.0));
    let covered = limit["contribution"]["covered"].as_f64().unwrap();
    let want = voxels as f64 / limit["contribution"]["voxels"].as_f64().unwrap();
    assert!((covered - want).abs() < 1e-4, "covered {covered} vs {want}");
    // The box grown from the click (on the click's slice) says so, and the result fills most of it.
    let grown = of("box");
    assert_eq!(grown["source"]["from"], "growth");
    assert_eq!(grown["source"]["click"], serde_json::json!(at));
    assert!(grown["contribution"]["covered"].as_f64().unwrap() > 0.5, "{grown}");
    assert_eq!(of("hint")["contribution"]["hint"], "lesion in an air-filled organ");
}
