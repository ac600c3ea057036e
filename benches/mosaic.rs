//! Slice mosaics against per-slice mode for LiteMedSAM (`cargo bench --bench mosaic`, needs `make setup`):
//! our own box-per-tile mode (`pipeline::mosaic::boxes`), g×g slices per 256 canvas, one encoder run per
//! canvas, against g = 1, which is the per-slice frame exactly. Every slice of a structure gets the tight
//! box of its reference label on that slice (the 2D MedSAM evaluation), so the modes differ only in how
//! many pixels a slice gets: Dice in 3D against the reference, and time per slice, in one invocation.
//! Each structure is run on its own in both modes (no embedding shared between structures).

mod common;

use std::time::{Duration, Instant};

use voxprompt::io::read_volume;
use voxprompt::model::Segmenter;
use voxprompt::pipeline::mosaic::boxes::segment_boxes;
use voxprompt::volume::intensity::map_to_u8;

/// The cases of the mosaic table in BENCHMARKS.md (lung2 and brain2 were not in that run).
const CASES: [&str; 5] = ["tsA-full", "tsB", "lung1", "brain1", "breast1"];

const GRIDS: [usize; 3] = [1, 2, 3];

fn main() {
    let engine = common::litemedsam_engine();
    let Segmenter::Slice(model) = &engine.models.segmenter else { unreachable!("litemedsam is a sam2d package") };
    println!("# slice mosaics vs per-slice, LiteMedSAM, per-slice reference boxes ({})", common::machine());
    println!(
        "{:<9} {:<9} {:>6} | {}",
        "case",
        "structure",
        "slices",
        GRIDS.map(|g| format!("{:>6} {:>5} {:>7}", format!("Dice{g}"), "canv", "ms/sl")).join(" | ")
    );
    let mut dice_sum = [0f64; GRIDS.len()];
    let mut time = [Duration::ZERO; GRIDS.len()];
    let (mut rows, mut slices_total) = (0usize, 0usize);
    for case in common::DATA_CASES.iter().filter(|c| CASES.contains(&c.id)) {
        let img = read_volume(&common::root().join(case.image)).expect("image").volume;
        let lab = read_volume(&common::root().join(case.labels)).expect("labels").volume;
        // Case B's mask is stored with its rows reversed: moved onto the series' grid exactly.
        let lab = voxprompt::volume::regrid::onto_grid(&lab, img.dims, &img.geometry).expect("label grid");
        let labels = lab.to_f64().unwrap();
        let image = map_to_u8(&img.view().unwrap(), case.mapping).unwrap();
        let [w, h, d] = image.dims;
        for &(value, name) in case.structures {
            let truth: Vec<bool> = labels.iter().map(|&l| l == value as f64).collect();
            let boxes: Vec<Option<[i64; 4]>> = (0..d)
                .map(|z| {
                    let s = &truth[z * w * h..(z + 1) * w * h];
                    voxprompt::ops::mask::bbox_2d(&s.iter().map(|&b| b as u8).collect::<Vec<_>>(), w, h)
                        .map(|[x0, y0, x1, y1]| [x0 as i64, y0 as i64, x1 as i64, y1 as i64])
                })
                .collect();
            let n = boxes.iter().flatten().count();
            if n == 0 {
                continue;
            }
            let mut cells = Vec::new();
            for (gi, &g) in GRIDS.iter().enumerate() {
                let t = Instant::now();
                let (slices, run) = segment_boxes(model, &image, &boxes, g).expect("segment");
                time[gi] += t.elapsed();
                let mut got = vec![false; w * h * d];
                for (z, s) in slices.iter().enumerate() {
                    if let Some(s) = s {
                        for (i, &m) in s.mask.iter().enumerate() {
                            got[z * w * h + i] = m == 1;
                        }
                    }
                }
                let dice = voxprompt::ops::mask::dice(got.into_iter(), truth.iter().copied());
                dice_sum[gi] += dice;
                cells.push(format!(
                    "{dice:>6.3} {:>5} {:>7.0}",
                    run.canvases,
                    t.elapsed().as_secs_f64() * 1e3 / n as f64
                ));
            }
            rows += 1;
            slices_total += n;
            println!("{:<9} {:<9} {:>6} | {}", case.id, name, n, cells.join(" | "));
        }
    }
    println!("\n{rows} structures, {slices_total} slices");
    for (gi, g) in GRIDS.iter().enumerate() {
        println!(
            "grid {g}×{g}: mean Dice {:.3}, {:.1} s in all, {:.0} ms per slice, {:.2}x the per-slice mode's speed",
            dice_sum[gi] / rows as f64,
            time[gi].as_secs_f64(),
            time[gi].as_secs_f64() * 1e3 / slices_total as f64,
            time[0].as_secs_f64() / time[gi].as_secs_f64()
        );
    }
}
