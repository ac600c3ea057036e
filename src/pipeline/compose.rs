//! Composition: every object's result written into one label mask on the input grid, with the confidence
//! map, and per-object summaries. Objects may have been propagated along different axes.

use super::result::StackResult;
use crate::volume::U8Volume;

/// Which objects win where masks overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Later objects overwrite earlier ones (what the reference does).
    Overwrite,
    /// A voxel keeps the first object that claimed it: objects never overwrite each other.
    Keep,
    /// The object with the higher probability wins.
    Confidence,
}

/// One slice of an object's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceSummary {
    /// The slice's index along the object's propagation axis.
    pub slice: usize,
    pub area: usize,
    /// The decoder's predicted IoU.
    pub iou: f32,
    /// Mean |2p − 1| over the slice's mask, 1 when it is empty.
    pub confidence: f32,
}

/// Per-object summary of the current result.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSummary {
    pub label: u8,
    pub voxels: usize,
    pub slices: usize,
    pub mean_iou: f32,
    /// Mean |2p − 1| over the object's voxels.
    pub confidence: f32,
    pub per_slice: Vec<SliceSummary>,
}

/// The confidence |2p − 1| that a `compose_coded` byte |2·255p − 255| stands for.
pub fn confidence_of(code: u8) -> f32 {
    code as f32 / 255.0
}

/// Calls `f(voxel index on the input grid, mask, prob)` for every visited voxel of an object result.
fn for_each_voxel(grid: [usize; 3], r: &StackResult, mut f: impl FnMut(usize, u8, u8)) {
    for (z, s) in r.slices.iter().enumerate() {
        let Some(s) = s else { continue };
        r.orientation.for_each_in_slice(grid, z, |i, g| f(g, s.mask[i], s.prob[i]));
    }
}

/// The label mask on the input grid (i fastest) and, when asked, the confidence map as byte codes
/// (`confidence_of`): for a labelled voxel |2p − 1| of the object that holds it; for a background voxel the
/// lowest |2p − 1| among the objects that looked at it (how sure the engine is that nothing is there), 1
/// where none did. Objects are written in the order given.
pub fn compose_coded(
    grid: [usize; 3],
    objects: &[(u8, &StackResult)],
    rule: Overlap,
    with_confidence: bool,
) -> (U8Volume, Option<Vec<u8>>) {
    let n: usize = grid.iter().product();
    let mut mask = U8Volume::zeros(grid);
    let mut best = vec![0u8; if rule == Overlap::Confidence { n } else { 0 }];
    let mut conf = with_confidence.then(|| vec![u8::MAX; n]);
    for &(label, r) in objects {
        for_each_voxel(grid, r, |i, m, p| {
            let c = (2 * p as i16 - 255).unsigned_abs() as u8;
            if m > 0 {
                let take = match rule {
                    Overlap::Overwrite => true,
                    Overlap::Keep => mask.data[i] == 0,
                    Overlap::Confidence => mask.data[i] == 0 || p > best[i],
                };
                if take {
                    mask.data[i] = label;
                    if rule == Overlap::Confidence {
                        best[i] = p;
                    }
                    if let Some(cv) = conf.as_mut() {
                        cv[i] = c;
                    }
                }
            } else if let Some(cv) = conf.as_mut() {
                if mask.data[i] == 0 {
                    cv[i] = cv[i].min(c);
                }
            }
        });
    }
    (mask, conf)
}

/// The summary of one object's result.
pub fn summary(label: u8, r: &StackResult) -> ObjectSummary {
    let mut s = ObjectSummary { label, voxels: 0, slices: 0, mean_iou: 0.0, confidence: 0.0, per_slice: Vec::new() };
    let mut conf_sum = 0.0f64;
    for (z, sl) in r.slices.iter().enumerate() {
        let Some(sl) = sl else { continue };
        s.slices += 1;
        s.mean_iou += sl.iou;
        let mut c = 0.0f64;
        for (&m, &p) in sl.mask.iter().zip(&sl.prob) {
            if m > 0 {
                c += (2.0 * p as f64 - 255.0).abs() / 255.0;
            }
        }
        conf_sum += c;
        s.voxels += sl.area;
        let confidence = if sl.area > 0 { (c / sl.area as f64) as f32 } else { 1.0 };
        s.per_slice.push(SliceSummary { slice: z, area: sl.area, iou: sl.iou, confidence });
    }
    s.mean_iou /= s.slices.max(1) as f32;
    s.confidence = if s.voxels > 0 { (conf_sum / s.voxels as f64) as f32 } else { 0.0 };
    s
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pipeline::result::SliceOut;
    use crate::volume::reslice::Orientation;

    /// An object on a 2×2×2 grid with one slice along `axis`: mask and prob per pixel.
    fn object(axis: u8, z: usize, mask: [u8; 4], prob: [u8; 4]) -> StackResult {
        let mut slices = vec![None, None];
        let area = mask.iter().map(|&m| m as usize).sum();
        slices[z] = Some(Arc::new(SliceOut { mask: mask.to_vec(), prob: prob.to_vec(), iou: 0.5, area }));
        StackResult { orientation: Orientation::new(axis).unwrap(), slices }
    }

    #[test]
    fn overlap_rules_and_confidence_codes() {
        let grid = [2, 2, 2];
        let a = object(2, 0, [1, 1, 0, 0], [255, 200, 100, 0]);
        let b = object(2, 0, [0, 1, 1, 0], [0, 250, 255, 127]);
        let objs = [(1, &a), (2, &b)];
        let (m, c) = compose_coded(grid, &objs, Overlap::Overwrite, true);
        assert_eq!(&m.data[..4], &[1, 2, 2, 0]);
        let c = c.unwrap();
        // Labelled: |2p − 255| of the holder; background: the lowest among those that looked; 255 elsewhere.
        assert_eq!(&c[..4], &[255, 245, 255, 1]);
        assert_eq!(&c[4..], &[255; 4]);
        assert_eq!(compose_coded(grid, &objs, Overlap::Keep, false).0.data[..4], [1, 1, 2, 0]);
        assert_eq!(compose_coded(grid, &objs, Overlap::Confidence, false).0.data[..4], [1, 2, 2, 0]);
        assert!((confidence_of(255) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn other_axes_land_on_the_grid_and_summaries_name_their_slices() {
        let grid = [2, 2, 2];
        // Along i, slice 1: pixels (x = j, y = k).
        let a = object(0, 1, [1, 0, 0, 1], [255, 0, 0, 255]);
        let (m, _) = compose_coded(grid, &[(3, &a)], Overlap::Keep, false);
        let on: Vec<usize> = (0..8).filter(|&i| m.data[i] == 3).collect();
        // (i, j, k) = (1, 0, 0) and (1, 1, 1).
        assert_eq!(on, vec![1, 7]);
        let s = summary(3, &a);
        assert_eq!((s.voxels, s.slices, s.confidence), (2, 1, 1.0));
        assert_eq!(s.per_slice, vec![SliceSummary { slice: 1, area: 2, iou: 0.5, confidence: 1.0 }]);
    }
}
