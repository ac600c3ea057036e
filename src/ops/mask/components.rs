//! Connected components of binary masks, and the clean-ups built on them.

use super::check_len;
use super::runs::RunLabels;

/// Which neighbours touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Shared face: 6 neighbours in 3D, 4 in 2D.
    Faces,
    /// Shared face, edge or corner: 26 neighbours in 3D, 8 in 2D.
    Full,
}

/// Connected components of a mask.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Components {
    /// Per voxel: 0 for background, `1..=n` for components, numbered in memory order of each
    /// component's first voxel.
    pub labels: Vec<u32>,
    /// `sizes[c - 1]` is the voxel count of component `c`.
    pub sizes: Vec<usize>,
}

/// Labels the nonzero voxels of a `[w, h, d]` volume.
///
/// # Panics
/// If `mask.len() != w * h * d`, or the mask has more than `u32::MAX` runs.
pub fn components_3d(mask: &[u8], dims: [usize; 3], conn: Connectivity) -> Components {
    check_len(mask, dims);
    let mut rl = RunLabels::default();
    rl.label::<true>(mask, dims, conn);
    rl.resolve();
    let mut labels = vec![0u32; mask.len()];
    rl.for_each_run(dims[0], |x, span| labels[span].fill(rl.comp[x] + 1));
    Components { labels, sizes: rl.sizes }
}

/// Labels the nonzero pixels of a `w × h` image.
///
/// # Panics
/// If `mask.len() != w * h`.
pub fn components_2d(mask: &[u8], w: usize, h: usize, conn: Connectivity) -> Components {
    components_3d(mask, [w, h, 1], conn)
}

/// Number of connected components of the nonzero pixels of a `w × h` image.
///
/// # Panics
/// If `mask.len() != w * h`.
pub fn count_components_2d(mask: &[u8], w: usize, h: usize, conn: Connectivity) -> usize {
    let dims = [w, h, 1];
    check_len(mask, dims);
    let mut rl = RunLabels::default();
    rl.label::<true>(mask, dims, conn);
    rl.resolve()
}

/// Zeroes every component but the largest (ties: the first in memory order); returns voxels removed.
///
/// # Panics
/// If `mask.len() != w * h * d`.
pub fn keep_largest_3d(mask: &mut [u8], dims: [usize; 3], conn: Connectivity) -> usize {
    prune_3d(mask, dims, conn, 0, true)
}

/// Zeroes components with fewer than `min_voxels` voxels; returns voxels removed.
///
/// # Panics
/// If `mask.len() != w * h * d`.
pub fn remove_small_3d(mask: &mut [u8], dims: [usize; 3], min_voxels: usize, conn: Connectivity) -> usize {
    prune_3d(mask, dims, conn, min_voxels, false)
}

/// `remove_small_3d` then, if `keep_largest`, `keep_largest_3d`, from a single labelling (removing small
/// components never changes the other components, so one pass decides both); returns voxels removed.
pub(crate) fn prune_3d(
    mask: &mut [u8],
    dims: [usize; 3],
    conn: Connectivity,
    min_voxels: usize,
    keep_largest: bool,
) -> usize {
    check_len(mask, dims);
    if min_voxels <= 1 && !keep_largest {
        return 0;
    }
    let mut rl = RunLabels::default();
    rl.label::<true>(mask, dims, conn);
    let n = rl.resolve();
    let mut largest = None;
    if keep_largest {
        // Ids follow memory order, so a strict `>` leaves ties with the earliest component.
        for c in 0..n {
            if largest.is_none_or(|l: usize| rl.sizes[c] > rl.sizes[l]) {
                largest = Some(c);
            }
        }
    }
    let doomed = |c: usize| rl.sizes[c] < min_voxels || largest.is_some_and(|l| l != c);
    if !(0..n).any(doomed) {
        return 0;
    }
    let mut removed = 0;
    rl.for_each_run(dims[0], |x, span| {
        if doomed(rl.comp[x] as usize) {
            removed += span.len();
            mask[span].fill(0);
        }
    });
    removed
}

#[cfg(test)]
mod tests {
    use super::super::testing::{count, fill_box};
    use super::super::{fill_holes_3d, fill_holes_slices};
    use super::*;
    #[test]
    fn two_blobs_keep_largest() {
        let dims = [10, 10, 10];
        let mut m = vec![0u8; 1000];
        fill_box(&mut m, dims, [0, 0, 0], [3, 3, 3], 1); // 27
        fill_box(&mut m, dims, [6, 6, 6], [8, 8, 8], 1); // 8
        let c = components_3d(&m, dims, Connectivity::Full);
        assert_eq!(c.sizes, vec![27, 8]);
        assert_eq!(c.labels[0], 1);
        assert_eq!(c.labels[(6 * 10 + 6) * 10 + 6], 2);
        assert_eq!(c.labels[999], 0);

        assert_eq!(keep_largest_3d(&mut m, dims, Connectivity::Full), 8);
        assert_eq!(count(&m, 1), 27);
        assert_eq!(m[(7 * 10 + 7) * 10 + 7], 0);
        assert_eq!(keep_largest_3d(&mut m, dims, Connectivity::Full), 0);
    }

    #[test]
    fn keep_largest_tie_keeps_first_in_memory_order() {
        let dims = [8, 1, 1];
        let mut m = vec![0, 2, 2, 0, 0, 3, 3, 0];
        assert_eq!(keep_largest_3d(&mut m, dims, Connectivity::Faces), 2);
        assert_eq!(m, vec![0, 2, 2, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn diagonal_pair_faces_vs_full() {
        let dims = [2, 2, 2];
        let mut m = vec![0u8; 8];
        m[0] = 1; // (0,0,0)
        m[7] = 1; // (1,1,1)
        assert_eq!(components_3d(&m, dims, Connectivity::Faces).sizes, vec![1, 1]);
        assert_eq!(components_3d(&m, dims, Connectivity::Full).sizes, vec![2]);

        // 2D: (0,0) and (1,1).
        let m2 = [1u8, 0, 0, 1];
        assert_eq!(count_components_2d(&m2, 2, 2, Connectivity::Faces), 2);
        assert_eq!(count_components_2d(&m2, 2, 2, Connectivity::Full), 1);
        // Anti-diagonal in 2D and across slices (the (j+1, k-1) direction).
        let m3 = [0u8, 1, 1, 0];
        assert_eq!(count_components_2d(&m3, 2, 2, Connectivity::Full), 1);
        let mut m4 = vec![0u8; 8];
        m4[2] = 1; // (0,1,0)
        m4[5] = 1; // (1,0,1)
        assert_eq!(components_3d(&m4, dims, Connectivity::Full).sizes, vec![2]);
        assert_eq!(components_3d(&m4, dims, Connectivity::Faces).sizes, vec![1, 1]);
    }

    #[test]
    fn components_2d_labels_in_memory_order() {
        #[rustfmt::skip]
        let m = [
            0, 0, 1, 1,
            1, 0, 0, 1,
            1, 0, 1, 0,
        ];
        let c = components_2d(&m, 4, 3, Connectivity::Faces);
        assert_eq!(c.labels, vec![0, 0, 1, 1, 2, 0, 0, 1, 2, 0, 3, 0]);
        assert_eq!(c.sizes, vec![3, 2, 1]);
        let c8 = components_2d(&m, 4, 3, Connectivity::Full);
        assert_eq!(c8.sizes, vec![4, 2]);
        // A U shape whose arms are joined only at the bottom: the later row merges two roots.
        #[rustfmt::skip]
        let u = [
            1, 0, 1,
            1, 0, 1,
            1, 1, 1,
        ];
        let cu = components_2d(&u, 3, 3, Connectivity::Faces);
        assert_eq!(cu.sizes, vec![7]);
        assert!(cu.labels.iter().zip(&u).all(|(&l, &v)| l == u32::from(v)));
    }

    #[test]
    fn remove_small_exact_count() {
        let dims = [12, 12, 3];
        let mut m = vec![0u8; 12 * 12 * 3];
        fill_box(&mut m, dims, [0, 0, 0], [4, 4, 2], 1); // 32
        fill_box(&mut m, dims, [6, 6, 0], [8, 8, 1], 1); // 4
        fill_box(&mut m, dims, [10, 10, 2], [11, 11, 3], 1); // 1
        assert_eq!(remove_small_3d(&mut m, dims, 1, Connectivity::Full), 0);
        assert_eq!(remove_small_3d(&mut m, dims, 5, Connectivity::Full), 5);
        assert_eq!(count(&m, 1), 32);
        assert_eq!(remove_small_3d(&mut m, dims, 32, Connectivity::Full), 0);
        assert_eq!(remove_small_3d(&mut m, dims, 33, Connectivity::Full), 32);
        assert_eq!(count(&m, 0), m.len());
    }

    #[test]
    fn empty_and_degenerate_dims() {
        let mut e: Vec<u8> = Vec::new();
        assert_eq!(components_3d(&e, [0, 4, 4], Connectivity::Full).sizes, Vec::<usize>::new());
        assert_eq!(keep_largest_3d(&mut e, [4, 0, 4], Connectivity::Full), 0);
        assert_eq!(fill_holes_slices(&mut e, [4, 4, 0], 1), 0);
        assert_eq!(fill_holes_3d(&mut e, [0, 0, 0], 1), 0);
        let mut z = vec![0u8; 27];
        assert_eq!(keep_largest_3d(&mut z, [3, 3, 3], Connectivity::Faces), 0);
        assert_eq!(fill_holes_3d(&mut z, [3, 3, 3], 1), 0);
    }

    #[test]
    #[should_panic(expected = "does not match dims")]
    fn wrong_length_panics() {
        components_3d(&[0u8; 5], [2, 2, 2], Connectivity::Full);
    }

    /// `cargo test --release --lib ops::mask::components::tests::large -- --ignored --nocapture`
    #[test]
    #[ignore = "large volume; timing check"]
    fn large_volume_timing() {
        let dims = [512usize, 512, 300];
        let [w, h, d] = dims;
        let mut m = vec![0u8; w * h * d];
        // A hollow ball (radius 120, shell 10) and a small blob.
        let (cx, cy, cz) = (256i64, 256i64, 150i64);
        for k in 0..d {
            for j in 0..h {
                for i in 0..w {
                    let (x, y, z) = (i as i64 - cx, j as i64 - cy, k as i64 - cz);
                    let r2 = x * x + y * y + z * z;
                    if (110 * 110..120 * 120).contains(&r2) {
                        m[(k * h + j) * w + i] = 1;
                    }
                }
            }
        }
        fill_box(&mut m, dims, [10, 10, 10], [15, 15, 15], 1);
        let t = std::time::Instant::now();
        let removed = keep_largest_3d(&mut m, dims, Connectivity::Full);
        let t_keep = t.elapsed();
        let t = std::time::Instant::now();
        let filled = fill_holes_slices(&mut m, dims, 1);
        let t_fill = t.elapsed();
        let t = std::time::Instant::now();
        let filled3 = fill_holes_3d(&mut m, dims, 1);
        let t_fill3 = t.elapsed();
        eprintln!("keep_largest {t_keep:?}, fill slices {t_fill:?}, fill 3d {t_fill3:?}");
        assert_eq!(removed, 125);
        assert!(filled > 0);
        assert_eq!(filled3, 0);
    }
}
