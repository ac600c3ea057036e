//! Which part of a prompt-free model's answer is an object. The model finds what it was trained for
//! everywhere; an object's prompts pick from it:
//! - boxes: what lies inside any of them (none: the whole stack);
//! - a seed mask: what lies inside the seed's bounding box;
//! - positive points: only the 3D components (6-connected) of that which hold one; negative points
//!   remove the components that hold them;
//! - a limit (a text prompt's region) cuts the result afterwards, as for every model kind.
//!
//! Voxels inside the object's region keep the model's probability; those outside it, and the components
//! left out, get probability 0, so the object claims nothing there.

use super::run::StackOut;
use crate::pipeline::result::{ObjectSlices, SliceOut};
use crate::prompt::resolve::Spatial;
use crate::volume::reslice::Orientation;
use crate::volume::BoxIjk;

/// The object's slices along the stack `found` was computed on (None: a slice its region does not reach).
pub fn object_slices(found: &StackOut, p: &Spatial, orientation: Orientation) -> ObjectSlices {
    let [w, h, d] = found.dims;
    let n = w * h;
    let mut region: Vec<BoxIjk> = p.boxes.iter().chain(&p.starts).map(|b| orientation.box_to_stack(b)).collect();
    if let Some(seed) = &p.seed {
        let grid = orientation.grid_dims(found.dims);
        if let Some(b) = seed_box(seed, grid) {
            region.push(orientation.box_to_stack(&b));
        }
    }
    let inside = |x: usize, y: usize, z: usize| {
        region.is_empty()
            || region.iter().any(|b| {
                (b.min[0]..=b.max[0]).contains(&x)
                    && (b.min[1]..=b.max[1]).contains(&y)
                    && (b.min[2]..=b.max[2]).contains(&z)
            })
    };
    let mut keep: Vec<u8> = vec![0; n * d];
    for z in 0..d {
        for y in 0..h {
            for x in 0..w {
                let i = z * n + y * w + x;
                keep[i] = (found.mask[i] == 1 && inside(x, y, z)) as u8;
            }
        }
    }
    let points: Vec<([usize; 3], bool)> = p.points.iter().map(|q| (orientation.to_stack(q.ijk), q.positive)).collect();
    if points.iter().any(|&(_, positive)| positive) {
        // 2 marks a voxel reached from a positive point; what stays 1 is left out.
        for &(at, _) in points.iter().filter(|q| q.1) {
            flood(&mut keep, found.dims, at, 1, 2);
        }
        for v in keep.iter_mut() {
            *v = (*v == 2) as u8;
        }
    }
    for &(at, _) in points.iter().filter(|q| !q.1) {
        flood(&mut keep, found.dims, at, 1, 0);
    }
    (0..d)
        .map(|z| {
            // A slice the region reaches is kept even when empty: the model looked there, and the
            // confidence map says how sure it was of nothing.
            if !region.is_empty() && !region.iter().any(|b| (b.min[2]..=b.max[2]).contains(&z)) {
                return None;
            }
            let kept = &keep[z * n..(z + 1) * n];
            let area = kept.iter().filter(|&&v| v == 1).count();
            let mut out = SliceOut { mask: kept.to_vec(), prob: vec![0; n], iou: 0.0, area };
            for y in 0..h {
                for x in 0..w {
                    let i = y * w + x;
                    let g = z * n + i;
                    // Inside the region the model's probability stands, except on what was left out.
                    if inside(x, y, z) && (kept[i] == 1 || found.mask[g] == 0) {
                        out.prob[i] = found.prob[g];
                    }
                }
            }
            Some(out)
        })
        .collect()
}

/// The bounding box of a seed mask on the grid (i fastest).
fn seed_box(seed: &[u8], grid: [usize; 3]) -> Option<BoxIjk> {
    let (mut min, mut max) = ([usize::MAX; 3], [0usize; 3]);
    for (g, _) in seed.iter().enumerate().filter(|(_, &v)| v != 0) {
        let ijk = [g % grid[0], (g / grid[0]) % grid[1], g / (grid[0] * grid[1])];
        for a in 0..3 {
            min[a] = min[a].min(ijk[a]);
            max[a] = max[a].max(ijk[a]);
        }
    }
    (min[0] != usize::MAX).then_some(BoxIjk { min, max })
}

/// Sets every voxel equal to `from` that is 6-connected to `at` through such voxels to `to`.
fn flood(vol: &mut [u8], [w, h, d]: [usize; 3], at: [usize; 3], from: u8, to: u8) {
    let idx = |[x, y, z]: [usize; 3]| (z * h + y) * w + x;
    if at[0] >= w || at[1] >= h || at[2] >= d || vol[idx(at)] != from {
        return;
    }
    let mut todo = vec![at];
    vol[idx(at)] = to;
    while let Some([x, y, z]) = todo.pop() {
        let mut visit = |q: [usize; 3]| {
            if vol[idx(q)] == from {
                vol[idx(q)] = to;
                todo.push(q);
            }
        };
        if x > 0 {
            visit([x - 1, y, z]);
        }
        if x + 1 < w {
            visit([x + 1, y, z]);
        }
        if y > 0 {
            visit([x, y - 1, z]);
        }
        if y + 1 < h {
            visit([x, y + 1, z]);
        }
        if z > 0 {
            visit([x, y, z - 1]);
        }
        if z + 1 < d {
            visit([x, y, z + 1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::PointIjk;
    use std::time::Duration;

    /// Two 2×2×2 blobs on an 8×4×4 stack: x 0..2 and x 5..7.
    fn two_blobs() -> StackOut {
        let dims = [8, 4, 4];
        let mut mask = vec![0u8; 8 * 4 * 4];
        for z in 1..3 {
            for y in 1..3 {
                for x in [0, 1, 5, 6] {
                    mask[(z * 4 + y) * 8 + x] = 1;
                }
            }
        }
        let prob = mask.iter().map(|&m| if m == 1 { 230 } else { 20 }).collect();
        StackOut { mask, prob, dims, canvases: 1, model: Duration::ZERO, other: Duration::ZERO }
    }

    fn voxels(s: &ObjectSlices) -> usize {
        s.iter().flatten().map(|s| s.area).sum()
    }

    #[test]
    fn prompts_pick_boxes_components_and_drop_what_a_negative_point_touches() {
        let found = two_blobs();
        let o = Orientation::new(2).unwrap();
        let all = object_slices(&found, &Spatial::default(), o);
        assert_eq!(voxels(&all), 16);
        assert!(all.iter().all(Option::is_some), "with no region the model looked at every slice");
        let low = Spatial { boxes: vec![BoxIjk { min: [0, 0, 0], max: [7, 3, 1] }], ..Default::default() };
        let low = object_slices(&found, &low, o);
        assert!(low[0].is_some() && low[2].is_none() && voxels(&low) == 8);
        let boxed = Spatial { boxes: vec![BoxIjk { min: [4, 0, 0], max: [7, 3, 3] }], ..Default::default() };
        let right = object_slices(&found, &boxed, o);
        assert_eq!(voxels(&right), 8);
        let s = right[1].as_ref().unwrap();
        assert_eq!((s.prob[8 + 1], s.prob[8 + 3], s.prob[8 + 5], s.prob[8 + 4]), (0, 0, 230, 20), "outside the box: 0");
        let click = |x, positive| PointIjk { ijk: [x, 1, 1], positive };
        let left = Spatial { points: vec![click(1, true)], ..Default::default() };
        let picked = object_slices(&found, &left, o);
        assert_eq!(voxels(&picked), 8);
        assert_eq!(picked[1].as_ref().unwrap().prob[8 + 5], 0, "the component left out claims nothing");
        let not_left = Spatial { points: vec![click(0, false)], ..Default::default() };
        assert_eq!(voxels(&object_slices(&found, &not_left, o)), 8);
        let missed = Spatial { points: vec![click(3, true)], ..Default::default() };
        assert_eq!(voxels(&object_slices(&found, &missed, o)), 0, "a click on background picks nothing");
        // Along another axis the same prompts pick the same voxels.
        let o0 = Orientation::new(0).unwrap();
        let mut stacked = found.clone();
        let grid = [8, 4, 4];
        stacked.dims = o0.stack_dims(grid);
        for z in 0..4 {
            for y in 0..4 {
                for x in 0..8 {
                    let [sx, sy, sz] = o0.to_stack([x, y, z]);
                    let si = (sz * stacked.dims[1] + sy) * stacked.dims[0] + sx;
                    stacked.mask[si] = found.mask[(z * 4 + y) * 8 + x];
                }
            }
        }
        assert_eq!(voxels(&object_slices(&stacked, &left, o0)), 8);
    }
}
