//! Optional per-object mask clean-up after propagation: drop small components, keep the largest, fill
//! holes. All of it is off by default because the reference pipeline does none of it, and turning any
//! step on changes results relative to the reference.

use crate::ops::mask::{fill_holes_slices, prune_3d, Connectivity};
use crate::pipeline::result::SliceOut;

/// Mask clean-up applied per object after propagation (all off by default: the reference does none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PostprocessOptions {
    /// Keep only the largest 26-connected component.
    pub keep_largest: bool,
    /// Fill background enclosed by the object.
    pub fill_holes: bool,
    /// Remove 26-connected components with fewer voxels than this (0 and 1 remove nothing).
    pub min_size: usize,
}

/// What `PostprocessOptions::apply` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PostprocessReport {
    /// Foreground voxels set to 0 (small components and non-largest components).
    pub removed: usize,
    /// Background voxels set to the object value by hole filling.
    pub filled: usize,
}

impl PostprocessOptions {
    /// All steps off.
    pub fn new() -> Self {
        Self::default()
    }

    #[must_use]
    pub fn with_keep_largest(mut self, on: bool) -> Self {
        self.keep_largest = on;
        self
    }

    #[must_use]
    pub fn with_fill_holes(mut self, on: bool) -> Self {
        self.fill_holes = on;
        self
    }

    #[must_use]
    pub fn with_min_size(mut self, voxels: usize) -> Self {
        self.min_size = voxels;
        self
    }

    /// True when `apply` cannot change any mask.
    pub fn is_noop(&self) -> bool {
        !self.keep_largest && !self.fill_holes && self.min_size <= 1
    }

    /// Applies the steps to a binary (0/1 or 0/v) object mask in order: remove components < min_size,
    /// keep the largest 3D component (26-connectivity), fill holes (per slice along k, then 3D).
    /// Filled voxels receive `value`.
    ///
    /// Removal runs before filling so a small ring cannot grow past `min_size` by having its hole
    /// filled. The 3D fill pass is implied rather than run: every hole enclosed in 3D is also enclosed
    /// in its k-slice, so the slice pass has already filled it (see `ops::mask::fill_holes_slices`).
    ///
    /// # Panics
    /// If `mask.len() != w * h * d`.
    pub fn apply(&self, mask: &mut [u8], dims: [usize; 3], value: u8) -> PostprocessReport {
        let mut report = PostprocessReport::default();
        if self.min_size > 1 || self.keep_largest {
            // One labelling serves both steps; the result equals running them one after the other.
            report.removed = prune_3d(mask, dims, Connectivity::Full, self.min_size, self.keep_largest);
        }
        if self.fill_holes {
            report.filled = fill_holes_slices(mask, dims, value);
        }
        report
    }
}

/// Applies post-processing to an object's slices as one 3D mask; probabilities follow the mask.
pub fn postprocess_slices(slices: &mut [Option<SliceOut>], w: usize, h: usize, p: &PostprocessOptions) {
    let d = slices.len();
    let n = w * h;
    let mut vol = crate::ops::mask::slices_to_dense(&crate::pipeline::result::masks(slices), n);
    p.apply(&mut vol, [w, h, d], 1);
    for (z, s) in slices.iter_mut().enumerate() {
        let new = &vol[z * n..(z + 1) * n];
        match s {
            Some(s) => {
                for i in 0..n {
                    match (s.mask[i], new[i]) {
                        (1, 0) => s.prob[i] = s.prob[i].min(127),
                        (0, 1) => s.prob[i] = s.prob[i].max(128),
                        _ => {}
                    }
                }
                s.mask.copy_from_slice(new);
                s.area = new.iter().map(|&m| m as usize).sum();
            }
            None if new.iter().any(|&m| m > 0) => {
                let mut o = SliceOut::empty(n);
                for i in 0..n {
                    o.mask[i] = new[i];
                    o.prob[i] = if new[i] > 0 { 128 } else { 0 };
                }
                o.area = new.iter().map(|&m| m as usize).sum();
                *s = Some(o);
            }
            None => {}
        }
    }
}

/// Cuts an object's slices (along `orientation`'s stack of a `grid`-sized volume) to `limit` (0/1 on the
/// grid): what lies outside is background with probability 0. Slices that lose nothing are left shared.
pub fn cut_to_limit(
    slices: &mut [Option<std::sync::Arc<SliceOut>>],
    limit: &[u8],
    orientation: crate::volume::reslice::Orientation,
    grid: [usize; 3],
) {
    for (z, slot) in slices.iter_mut().enumerate() {
        let Some(s) = slot else { continue };
        let mut outside = false;
        orientation.for_each_in_slice(grid, z, |i, g| outside |= (s.mask[i] | s.prob[i]) != 0 && limit[g] == 0);
        if !outside {
            continue;
        }
        let s = std::sync::Arc::make_mut(s);
        orientation.for_each_in_slice(grid, z, |i, g| {
            if limit[g] == 0 {
                s.mask[i] = 0;
                s.prob[i] = 0;
            }
        });
        s.area = s.mask.iter().filter(|&&m| m != 0).count();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill_box(mask: &mut [u8], dims: [usize; 3], lo: [usize; 3], hi: [usize; 3], v: u8) {
        for k in lo[2]..hi[2] {
            for j in lo[1]..hi[1] {
                let row = (k * dims[1] + j) * dims[0];
                mask[row + lo[0]..row + hi[0]].fill(v);
            }
        }
    }

    fn count(mask: &[u8], v: u8) -> usize {
        mask.iter().filter(|&&x| x == v).count()
    }

    #[test]
    fn defaults_and_builders() {
        let o = PostprocessOptions::new();
        assert_eq!(o, PostprocessOptions::default());
        assert_eq!(o, PostprocessOptions { keep_largest: false, fill_holes: false, min_size: 0 });
        assert!(o.is_noop());
        assert!(o.with_min_size(1).is_noop());
        assert!(!o.with_min_size(2).is_noop());
        assert!(!o.with_keep_largest(true).is_noop());
        assert!(!o.with_fill_holes(true).is_noop());
        let all = o.with_keep_largest(true).with_fill_holes(true).with_min_size(7);
        assert_eq!(all, PostprocessOptions { keep_largest: true, fill_holes: true, min_size: 7 });
        assert!(all.with_keep_largest(false).with_fill_holes(false).with_min_size(0).is_noop());
    }

    #[test]
    fn noop_leaves_mask_alone() {
        let dims = [4, 4, 2];
        let mut m: Vec<u8> = (0..32).map(|i| u8::from(i % 3 == 0)).collect();
        let before = m.clone();
        assert_eq!(PostprocessOptions::new().apply(&mut m, dims, 1), PostprocessReport::default());
        assert_eq!(m, before);
    }

    /// Blobs of 27, 8 and 1 voxels, value 3.
    fn three_blobs() -> (Vec<u8>, [usize; 3]) {
        let dims = [10, 10, 10];
        let mut m = vec![0u8; 1000];
        fill_box(&mut m, dims, [0, 0, 0], [3, 3, 3], 3);
        fill_box(&mut m, dims, [5, 5, 5], [7, 7, 7], 3);
        fill_box(&mut m, dims, [9, 9, 9], [10, 10, 10], 3);
        (m, dims)
    }

    #[test]
    fn min_size_removal() {
        let (mut m, dims) = three_blobs();
        let r = PostprocessOptions::new().with_min_size(8).apply(&mut m, dims, 3);
        assert_eq!(r, PostprocessReport { removed: 1, filled: 0 });
        assert_eq!(count(&m, 3), 35);
        let r = PostprocessOptions::new().with_min_size(9).apply(&mut m, dims, 3);
        assert_eq!(r, PostprocessReport { removed: 8, filled: 0 });
        assert_eq!(count(&m, 3), 27);
    }

    #[test]
    fn keep_largest_uses_26_connectivity() {
        // Two cubes touching only at a corner are one 26-connected component.
        let dims = [6, 6, 6];
        let mut m = vec![0u8; 216];
        fill_box(&mut m, dims, [0, 0, 0], [2, 2, 2], 1);
        fill_box(&mut m, dims, [2, 2, 2], [4, 4, 4], 1);
        m[215] = 1;
        let r = PostprocessOptions::new().with_keep_largest(true).apply(&mut m, dims, 1);
        assert_eq!(r, PostprocessReport { removed: 1, filled: 0 });
        assert_eq!(count(&m, 1), 16);
    }

    #[test]
    fn min_size_then_keep_largest() {
        let (mut m, dims) = three_blobs();
        let o = PostprocessOptions::new().with_min_size(5).with_keep_largest(true);
        assert_eq!(o.apply(&mut m, dims, 3), PostprocessReport { removed: 9, filled: 0 });
        assert_eq!(count(&m, 3), 27);

        // When even the largest is below min_size, nothing survives.
        let (mut m, dims) = three_blobs();
        let o = PostprocessOptions::new().with_min_size(28).with_keep_largest(true);
        assert_eq!(o.apply(&mut m, dims, 3), PostprocessReport { removed: 36, filled: 0 });
        assert_eq!(count(&m, 0), 1000);
    }

    #[test]
    fn removal_before_filling() {
        // A 3×3 ring (8 voxels, 1-voxel hole) next to a 5×5 ring (16 voxels, 9-voxel hole) in one slice.
        // With min_size 9 the small ring goes first; filled first it would have reached 9 and stayed.
        let dims = [12, 7, 1];
        let mut m = vec![0u8; 84];
        fill_box(&mut m, dims, [1, 1, 0], [4, 4, 1], 2);
        fill_box(&mut m, dims, [2, 2, 0], [3, 3, 1], 0);
        fill_box(&mut m, dims, [6, 1, 0], [11, 6, 1], 2);
        fill_box(&mut m, dims, [7, 2, 0], [10, 5, 1], 0);
        let o = PostprocessOptions::new().with_min_size(9).with_fill_holes(true);
        assert_eq!(o.apply(&mut m, dims, 2), PostprocessReport { removed: 8, filled: 9 });
        assert_eq!(count(&m, 2), 25);
        assert_eq!(m[12 + 2], 0);
        assert_eq!(m[3 * 12 + 8], 2);
    }

    #[test]
    fn fill_holes_3d_cavity_with_value() {
        // Hollow 5×5×5 cube stored as 0/1, filled with value 4.
        let dims = [7, 7, 7];
        let mut m = vec![0u8; 343];
        fill_box(&mut m, dims, [1, 1, 1], [6, 6, 6], 1);
        fill_box(&mut m, dims, [2, 2, 2], [5, 5, 5], 0);
        let o = PostprocessOptions::new().with_fill_holes(true).with_keep_largest(true);
        assert_eq!(o.apply(&mut m, dims, 4), PostprocessReport { removed: 0, filled: 27 });
        assert_eq!(count(&m, 4), 27);
        assert_eq!(count(&m, 1), 98);
        // Same result as an explicit 3D fill, and nothing left for one afterwards.
        let mut again = m.clone();
        assert_eq!(crate::ops::mask::fill_holes_3d(&mut again, dims, 4), 0);
    }

    #[test]
    fn open_hole_kept() {
        // A ring with a gap to the slice border stays as is.
        let dims = [5, 5, 1];
        let mut m = vec![1u8; 25];
        fill_box(&mut m, dims, [1, 1, 0], [4, 4, 1], 0);
        m[2 * 5] = 0;
        let before = m.clone();
        let o = PostprocessOptions::new().with_fill_holes(true);
        assert_eq!(o.apply(&mut m, dims, 1), PostprocessReport::default());
        assert_eq!(m, before);
    }
}
