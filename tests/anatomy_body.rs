//! The body-CT anatomical prior on real volumes: text-only prompts (structure name → prior region → derived
//! prompts → LiteMedSAM) against the reference masks, next to LiteMedSAM from the reference box; laterality
//! from the IJK→RAS matrix (a mirrored array with its matrix mirrored too finds the same kidney; a volume
//! cut to the right half has no left kidney).
#![allow(clippy::needless_range_loop)] // loops over the three axes read best indexed

mod common;

use std::time::Instant;

use common::*;
use voxprompt::anatomy::organs::MIN_SCORE;
use voxprompt::anatomy::{derive_prompts, BodyFrame, HuGrid, Region};
use voxprompt::ops::mask::foreground;
use voxprompt::session::{Session, SessionOptions};
use voxprompt::volume::intensity::IntensityMapping;
use voxprompt::volume::{BoxIjk, DType, Volume, VolumeView};

const COARSE_MM: f64 = 3.0;

struct Case {
    name: &'static str,
    ct: &'static str,
    seg: &'static str,
    /// (structure, reference label ids whose union is the structure)
    structures: &'static [(&'static str, &'static [u8])],
}

const ABDOMEN: &[(&str, &[u8])] = &[
    ("liver", &[5]),
    ("spleen", &[1]),
    ("kidney_right", &[2]),
    ("kidney_left", &[3]),
    ("stomach", &[6]),
    ("aorta", &[52]),
    ("lung_right", &[12, 13, 14]),
    ("lung_left", &[10, 11]),
    ("urinary_bladder", &[21]),
    ("heart", &[51]),
    ("gallbladder", &[4]),
    ("pancreas", &[7]),
    ("inferior_vena_cava", &[63]),
];

const CASES: &[Case] = &[
    Case {
        name: "A",
        ct: "data/totalsegmentator/example_ct_sm.nii.gz",
        seg: "data/totalsegmentator/example_seg.nii.gz",
        structures: ABDOMEN,
    },
    Case {
        name: "A-full",
        ct: "data/totalsegmentator/example_ct.nii.gz",
        seg: "data/totalsegmentator/example_seg_fast_force_split.nii.gz",
        structures: ABDOMEN,
    },
    Case {
        name: "C",
        ct: "data/totalsegmentator/aorta_report_example_ct.nii.gz",
        seg: "data/totalsegmentator/heart.nii.gz",
        structures: &[("heart", &[1])],
    },
];

/// Structures smaller than this in the reference are not counted as "large organs present" (a lung base
/// clipped to a few slices, a bladder dome at the scan's edge).
const MIN_PRESENT_ML: f64 = 40.0;

/// Measured Dice minus a small margin, per (case, structure): (prior alone, LiteMedSAM from derived prompts).
/// The values are those measured on this machine (LiteMedSAM on CPU is deterministic here), less 0.03-0.04.
const FLOORS: &[(&str, &str, f64, f64)] = &[
    ("A", "liver", 0.88, 0.90),
    ("A", "spleen", 0.80, 0.80),
    ("A", "kidney_right", 0.89, 0.78),
    ("A", "kidney_left", 0.90, 0.90),
    ("A", "stomach", 0.13, 0.45),
    ("A", "lung_right", 0.81, 0.81),
    ("A", "lung_left", 0.55, 0.55),
    ("A-full", "liver", 0.88, 0.87),
    ("A-full", "spleen", 0.80, 0.81),
    ("A-full", "kidney_right", 0.88, 0.74),
    ("A-full", "kidney_left", 0.91, 0.91),
    ("A-full", "stomach", 0.13, 0.37),
    ("A-full", "aorta", 0.15, 0.13),
    ("A-full", "lung_right", 0.82, 0.82),
    ("A-full", "lung_left", 0.57, 0.57),
    ("A-full", "urinary_bladder", 0.75, 0.57),
    ("A-full", "inferior_vena_cava", 0.25, 0.60),
    ("C", "heart", 0.52, 0.65),
];

/// The text-only mean Dice over the large organs: measured 0.721 on 17 rows; the brief's floor of 0.70
/// holds, its goal of 0.80 does not (stomach, aorta and bladder rows).
const MEAN_FLOOR: f64 = 0.70;

/// Large organs the table's means run over (the small and thin structures are shown, not averaged).
const LARGE: &[&str] = &[
    "liver",
    "spleen",
    "kidney_right",
    "kidney_left",
    "stomach",
    "aorta",
    "lung_right",
    "lung_left",
    "urinary_bladder",
    "heart",
];

fn union_mask(labels: &[f64], ids: &[u8]) -> Vec<u8> {
    labels.iter().map(|&v| u8::from(ids.iter().any(|&id| v == f64::from(id)))).collect()
}

fn dice_u8(a: &[u8], b: &[u8]) -> f64 {
    dice(foreground(a), foreground(b))
}

fn bbox_of(mask: &[u8], dims: [usize; 3]) -> Option<BoxIjk> {
    let as_f64: Vec<f64> = mask.iter().map(|&v| f64::from(v)).collect();
    BoxIjk::of_label(&as_f64, dims, 1.0).map(|(b, _)| b)
}

struct Prior {
    grid: HuGrid,
    frame: BodyFrame,
    seconds: f64,
}

fn prior_of(view: &VolumeView<'_>) -> Prior {
    let _ = env_logger::builder().is_test(true).try_init();
    let t = Instant::now();
    let grid = HuGrid::from_view(view, COARSE_MM).unwrap();
    let frame = BodyFrame::compute(&grid).unwrap();
    Prior { grid, frame, seconds: t.elapsed().as_secs_f64() }
}

/// One object for `segment`: its boxes, an optional seed mask and an optional limit region.
type Object<'a> = (Vec<BoxIjk>, Option<Vec<u8>>, Option<&'a [u8]>);

/// LiteMedSAM (default policy) for one object per entry, each a list of boxes and an optional seed; the
/// per-object masks, each cut to its `limit` when one is given. The session's earlier objects are cleared
/// first; its embeddings stay, so the text-prompted and the reference-box objects of one case share their
/// encoded slices (the encoder is deterministic: the masks are those of a fresh session).
fn segment(s: &mut Session, objects: &[Object<'_>]) -> Vec<Vec<u8>> {
    s.clear();
    for (n, (boxes, seed, _)) in objects.iter().enumerate() {
        let label = (n + 1) as u8;
        for b in boxes {
            s.add_box(label, *b).unwrap();
        }
        if let Some(seed) = seed {
            s.set_seed(label, seed.clone()).unwrap();
        }
    }
    s.run(None).unwrap();
    let composed = s.compose(false).0;
    objects
        .iter()
        .enumerate()
        .map(|(n, (_, _, limit))| {
            let label = (n + 1) as u8;
            composed
                .data
                .iter()
                .enumerate()
                .map(|(at, &v)| u8::from(v == label && limit.is_none_or(|l| l[at] != 0)))
                .collect()
        })
        .collect()
}

#[test]
fn text_only_prompts_against_reference_box_prompts() {
    let with_seed = std::env::var("VXP_ANATOMY_SEED").is_ok_and(|v| v == "1");
    println!(
        "{:<7} {:<19} {:>8} {:>7} {:>6} {:>7} {:>7} {:>7}",
        "case", "structure", "ref ml", "score", "prior", "text", "refbox", "t_prior"
    );
    let mut rows: Vec<(&str, &str, f64, f64, f64)> = Vec::new();
    let mut misses: Vec<String> = Vec::new();
    for case in CASES {
        let ct = volume(case.ct);
        let labels = volume(case.seg).to_f64().unwrap();
        let view = ct.view().unwrap();
        let dims = ct.dims;
        let voxel_ml = ct.geometry.spacing.iter().product::<f64>() / 1000.0;
        let p = prior_of(&view);
        let lm = p.frame.landmarks;
        println!(
            "# case {}: dims {dims:?}, coarse {:?}, landmarks (coarse z) apex {:?} base {:?} crest {:?}, anchors {:?}, \
             grid + frame {:.3} s",
            case.name,
            p.grid.dims(),
            lm.lung_apex,
            lm.lung_base,
            lm.iliac_crest,
            p.frame.anchors(),
            p.seconds
        );
        let mut present = Vec::new();
        for &(name, ids) in case.structures {
            let truth = union_mask(&labels, ids);
            let ml = truth.iter().filter(|&&v| v == 1).count() as f64 * voxel_ml;
            if ml < MIN_PRESENT_ML {
                continue;
            }
            let t = Instant::now();
            let region: Option<Region> = p.frame.locate(&p.grid, name).unwrap();
            let t_locate = t.elapsed().as_secs_f64();
            present.push((name, truth, ml, region, t_locate));
        }
        let derived: Vec<_> =
            present.iter().map(|(_, _, _, r, _)| r.as_ref().map(|r| derive_prompts(r, &p.grid, 2))).collect();
        let text_objects: Vec<_> = derived
            .iter()
            .flatten()
            .filter(|d| d.use_model)
            .map(|d| (d.boxes.clone(), if with_seed { d.seed.clone() } else { None }, Some(d.limit.as_slice())))
            .collect();
        let mut s = ENGINE.open_session(&view, IntensityMapping::CT, SessionOptions::default()).unwrap();
        let text_masks = segment(&mut s, &text_objects);
        let ref_objects: Vec<_> =
            present.iter().map(|(_, truth, _, _, _)| (vec![bbox_of(truth, dims).unwrap()], None, None)).collect();
        let ref_masks = segment(&mut s, &ref_objects);
        let mut text_iter = text_masks.iter();
        for (n, (name, truth, ml, region, t_locate)) in present.iter().enumerate() {
            let (score, d_prior, d_text) = match (region, &derived[n]) {
                (Some(r), Some(d)) => {
                    // Without the model (lungs), the text path's answer is the prior region itself.
                    let text = if d.use_model { text_iter.next().unwrap() } else { &r.mask };
                    (r.score, dice_u8(&r.mask, truth), dice_u8(text, truth))
                }
                _ => (0.0, 0.0, 0.0),
            };
            let d_ref = dice_u8(&ref_masks[n], truth);
            println!(
                "{:<7} {:<19} {ml:>8.0} {score:>7.2} {d_prior:>6.3} {d_text:>7.3} {d_ref:>7.3} {:>6.0}ms",
                case.name,
                name,
                (p.seconds + t_locate) * 1e3
            );
            if region.is_none() {
                misses.push(format!("{} {name}: no region found", case.name));
            }
            if let Some(&(_, _, fp, ft)) = FLOORS.iter().find(|f| f.0 == case.name && f.1 == *name) {
                assert!(d_prior >= fp, "{} {name}: prior Dice {d_prior:.3} below its floor {fp}", case.name);
                assert!(d_text >= ft, "{} {name}: text-prompted Dice {d_text:.3} below its floor {ft}", case.name);
            }
            rows.push((case.name, name, d_prior, d_text, d_ref));
        }
    }
    let large: Vec<_> = rows.iter().filter(|r| LARGE.contains(&r.1)).collect();
    let mean = |f: fn(&&(&str, &str, f64, f64, f64)) -> f64| large.iter().map(f).sum::<f64>() / large.len() as f64;
    let (mp, mt, mr) = (mean(|r| r.2), mean(|r| r.3), mean(|r| r.4));
    println!("mean over {} large organs: prior {mp:.3}, text-prompted {mt:.3}, reference box {mr:.3}", large.len());
    for m in &misses {
        println!("miss: {m}");
    }
    assert!(mt >= MEAN_FLOOR, "text-only mean Dice {mt:.3} over the large organs is below {MEAN_FLOOR}");
}

fn unmirror_i(mask: &[u8], [w, h, d]: [usize; 3]) -> Vec<u8> {
    let mut out = vec![0u8; mask.len()];
    for row in 0..h * d {
        for i in 0..w {
            out[row * w + (w - 1 - i)] = mask[row * w + i];
        }
    }
    out
}

#[test]
fn mirrored_array_with_mirrored_matrix_finds_the_same_kidneys() {
    let ct = volume("data/totalsegmentator/example_ct.nii.gz");
    let labels = volume("data/totalsegmentator/example_seg_fast_force_split.nii.gz").to_f64().unwrap();
    let flipped = mirrored_i(&ct);
    let (a, b) = (prior_of(&ct.view().unwrap()), prior_of(&flipped.view().unwrap()));
    for (name, id) in [("kidney_left", 3u8), ("kidney_right", 2)] {
        let truth = union_mask(&labels, &[id]);
        let ra = a.frame.locate(&a.grid, name).unwrap().expect("found in the original");
        let rb = b.frame.locate(&b.grid, name).unwrap().expect("found in the mirrored array");
        let back = unmirror_i(&rb.mask, ct.dims);
        let same = dice_u8(&ra.mask, &back);
        let (da, db) = (dice_u8(&ra.mask, &truth), dice_u8(&back, &truth));
        println!("{name}: original vs mirrored-back Dice {same:.3}; vs reference {da:.3} / {db:.3}");
        assert!(same > 0.95, "{name}: the mirrored volume finds a different region (Dice {same:.3})");
        assert!(da > 0.5 && db > 0.5, "{name}: the region is not the kidney ({da:.3}, {db:.3})");
    }
    // The mirrored array with the original matrix is a mirrored patient: its "left kidney" is where the
    // patient's right kidney lies in the array, which is what reading sides off the matrix must give.
    let lied = Volume { geometry: ct.geometry, ..flipped };
    let c = prior_of(&lied.view().unwrap());
    let r = c.frame.locate(&c.grid, "kidney_left").unwrap().expect("a left kidney in the mirrored patient");
    let right_in_array = unmirror_i(&union_mask(&labels, &[2]), ct.dims);
    let d = dice_u8(&r.mask, &right_in_array);
    println!("mirrored array, original matrix: kidney_left vs the mirrored right kidney Dice {d:.3}");
    assert!(d > 0.5, "kidney_left should follow the matrix, Dice {d:.3}");
}

#[test]
fn left_kidney_is_not_found_in_the_right_half() {
    let ct = volume("data/totalsegmentator/example_ct.nii.gz");
    let labels = volume("data/totalsegmentator/example_seg_fast_force_split.nii.gz").to_f64().unwrap();
    assert_eq!(ct.dtype, DType::I32);
    let dims = ct.dims;
    let (bl, br) =
        (bbox_of(&union_mask(&labels, &[3]), dims).unwrap(), bbox_of(&union_mask(&labels, &[2]), dims).unwrap());
    // Case A-full's i runs toward the patient's Right (+x), so the right half is the high i: cut halfway
    // between the kidneys, through the spine, so that no voxel of the left kidney remains.
    assert!(ct.geometry.ijk_to_ras[0][0] > 0.0 && bl.max[0] < br.min[0]);
    let i0 = (bl.max[0] + br.min[0]) / 2;
    let s = ct.dtype.size() as isize;
    let strides = [s, s * dims[0] as isize, s * (dims[0] * dims[1]) as isize];
    let mut g = ct.geometry;
    for r in 0..3 {
        g.ijk_to_ras[r][3] += g.ijk_to_ras[r][0] * i0 as f64;
    }
    let cut = [dims[0] - i0, dims[1], dims[2]];
    let view = VolumeView::new(&ct.data, i0 * s as usize, ct.dtype, cut, strides, g).unwrap();
    let p = prior_of(&view);
    println!("right half: landmarks {:?}, slice 80 {:?}", p.frame.landmarks, p.frame.slice(80));
    assert!(p.frame.anchors().is_some(), "the right half keeps its landmarks, so a miss is the side's doing");
    let left = p.frame.locate(&p.grid, "kidney_left").unwrap();
    println!("right half: kidney_left -> {:?}", left.as_ref().map(|r| (r.voxels, r.score)));
    assert!(left.is_none_or(|r| r.score < MIN_SCORE), "a left kidney was found in the patient's right half");
    let right = p.frame.locate(&p.grid, "kidney_right").unwrap().expect("the right kidney is in the right half");
    let truth: Vec<u8> = (0..cut.iter().product::<usize>())
        .map(|at| {
            let (i, rest) = (at % cut[0], at / cut[0]);
            u8::from(labels[rest * dims[0] + i + i0] == 2.0)
        })
        .collect();
    let d = dice_u8(&right.mask, &truth);
    println!("right half: kidney_right Dice {d:.3}");
    assert!(d > 0.5, "kidney_right in the right half: Dice {d:.3}");
}

/// The prior alone (no model) on every case: where the landmarks and regions are, next to the reference.
#[test]
fn prior_regions_next_to_the_reference() {
    for case in CASES {
        let ct = volume(case.ct);
        let labels = volume(case.seg).to_f64().unwrap();
        let p = prior_of(&ct.view().unwrap());
        let lm = p.frame.landmarks;
        println!(
            "# {}: coarse {:?}, apex {:?} base {:?} crest {:?}, anchors {:?}, {:.3} s",
            case.name,
            p.grid.dims(),
            lm.lung_apex,
            lm.lung_base,
            lm.iliac_crest,
            p.frame.anchors(),
            p.seconds
        );
        let (body, lungs) =
            (p.frame.body.iter().filter(|&&v| v == 1).count(), p.frame.lungs.iter().filter(|&&v| v == 1).count());
        println!("  body {:.0} ml, lungs {:.0} ml", body as f64 * p.grid.voxel_ml(), lungs as f64 * p.grid.voxel_ml());
        for z in (0..p.grid.dims()[2]).step_by(8) {
            println!(
                "  z {z}: cc {:?} {:?}",
                p.frame.cc(z as f64).map(|c| (c * 100.0).round() / 100.0),
                p.frame.slice(z)
            );
        }
        for &(name, ids) in case.structures {
            let truth = union_mask(&labels, ids);
            let Some(tb) = bbox_of(&truth, ct.dims) else { continue };
            let r = p.frame.locate(&p.grid, name).unwrap();
            let mut inside: Vec<f64> = Vec::new();
            let mut at = 0;
            ct.view().unwrap().for_each(|v| {
                if truth[at] == 1 {
                    inside.push(v);
                }
                at += 1;
            });
            inside.sort_by(f64::total_cmp);
            let q = |f: f64| inside[((inside.len() - 1) as f64 * f) as usize];
            println!("  {name}: reference HU p10 {} p50 {} p90 {}", q(0.1), q(0.5), q(0.9));
            let d = r.as_ref().map_or(0.0, |r| dice_u8(&r.mask, &truth));
            println!(
                "  {name:<19} dice {d:.3} score {:?} ref {:?}..{:?} found {:?}",
                r.as_ref().map(|r| r.score),
                tb.min,
                tb.max,
                r.as_ref().map(|r| (r.bbox.min, r.bbox.max))
            );
        }
    }
}
