//! Binary-mask operations on `u8` volumes: connected components (`components`), small-component removal,
//! hole filling (`holes`), box dilation and erosion (`morph`), the interior point used to simulate a
//! positive click (`distance`), bounding boxes and Dice (`measure`), all over the run-length labelling in
//! `runs`.
//!
//! Volumes are `[w, h, d]` with `i` fastest (`index = (k*h + j)*w + i`); a voxel is foreground when it
//! is nonzero. Component work is run-length based: each row is cut into maximal runs, runs of adjacent
//! rows are merged with union-find, and results are painted back run by run. Cost therefore follows the
//! number of runs rather than voxels × neighbours, and no per-voxel label map is built (the tests'
//! reference `components_3d` builds one), which matters for 512×512×300 masks (a `u32` map alone is 300 MiB).

mod components;
mod distance;
mod holes;
mod measure;
mod morph;
mod runs;

pub(crate) use components::components_3d;
pub(crate) use components::prune_3d;
pub use components::{
    count_components_2d, keep_component_touching, largest_component_area_per_slice, slices_to_dense, Connectivity,
    SliceSpan,
};
pub use distance::interior_point_2d;
#[cfg(test)]
pub(crate) use holes::fill_holes_3d;
pub use holes::fill_holes_slices;
pub use measure::{bbox_2d, dice, foreground};
pub use morph::{dilate_box, erode_box};

pub(crate) fn check_len(mask: &[u8], [w, h, d]: [usize; 3]) {
    let n = w.checked_mul(h).and_then(|wh| wh.checked_mul(d)).expect("mask dims overflow usize");
    assert_eq!(mask.len(), n, "mask length {} does not match dims [{w}, {h}, {d}]", mask.len());
}

/// Masks for the unit tests of the submodules.
#[cfg(test)]
pub(crate) mod testing {
    /// Sets the voxels of the box `lo..hi` (per axis, exclusive) to `v`.
    pub(crate) fn fill_box(mask: &mut [u8], dims: [usize; 3], lo: [usize; 3], hi: [usize; 3], v: u8) {
        for k in lo[2]..hi[2] {
            for j in lo[1]..hi[1] {
                let row = (k * dims[1] + j) * dims[0];
                mask[row + lo[0]..row + hi[0]].fill(v);
            }
        }
    }

    pub(crate) fn count(mask: &[u8], v: u8) -> usize {
        mask.iter().filter(|&&x| x == v).count()
    }

    /// Deterministic pseudo-random mask with roughly `percent`% foreground.
    pub(crate) fn noise(n: usize, percent: u64, mut seed: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                u8::from((seed >> 33) % 100 < percent)
            })
            .collect()
    }
}
