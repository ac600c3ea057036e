//! Hole filling: background not connected to the border becomes foreground.

use super::check_len;
use super::runs::RunLabels;
use super::Connectivity;

/// On every k-slice, sets background pixels that are not 4-connected to the slice border to `value`;
/// returns voxels filled. `value` should be nonzero, or the holes stay background.
///
/// Every 3D hole is also a hole of its slice (an in-slice path to the slice border is a path to the
/// volume border), so this fills a superset of what `fill_holes_3d` fills, and `fill_holes_3d` run
/// afterwards finds nothing.
///
/// # Panics
/// If `mask.len() != w * h * d`.
pub fn fill_holes_slices(mask: &mut [u8], dims: [usize; 3], value: u8) -> usize {
    check_len(mask, dims);
    let [w, h, _] = dims;
    let slice = w * h;
    if slice == 0 {
        return 0;
    }
    let mut rl = RunLabels::default();
    mask.chunks_exact_mut(slice).map(|s| fill_holes(&mut rl, s, [w, h, 1], value, false)).sum()
}

/// Sets background voxels that are not 6-connected to the volume border to `value`; returns voxels
/// filled.
///
/// # Panics
/// If `mask.len() != w * h * d`.
#[cfg(test)]
pub(crate) fn fill_holes_3d(mask: &mut [u8], dims: [usize; 3], value: u8) -> usize {
    check_len(mask, dims);
    fill_holes(&mut RunLabels::default(), mask, dims, value, true)
}

/// Fills the background components of `mask` that do not touch the border. The border is the
/// i/j edges of every slice, plus the first and last slice when `z_border`.
fn fill_holes(rl: &mut RunLabels, mask: &mut [u8], dims: [usize; 3], value: u8, z_border: bool) -> usize {
    let [w, h, d] = dims;
    rl.label::<false>(mask, dims, Connectivity::Faces);
    let n = rl.resolve();
    if n == 0 {
        return 0;
    }
    rl.open.clear();
    rl.open.resize(n, false);
    for r in 0..rl.row_first.len() - 1 {
        let (j, k) = (r % h, r / h);
        let edge_row = j == 0 || j + 1 == h || (z_border && (k == 0 || k + 1 == d));
        for x in rl.row_first[r]..rl.row_first[r + 1] {
            let run = rl.runs[x];
            if edge_row || run.start == 0 || run.end as usize == w {
                rl.open[rl.comp[x] as usize] = true;
            }
        }
    }
    if rl.open.iter().all(|&o| o) {
        return 0;
    }
    let mut filled = 0;
    let (comp, open) = (&rl.comp, &rl.open);
    rl.for_each_run(w, |x, span| {
        if !open[comp[x] as usize] {
            filled += span.len();
            mask[span].fill(value);
        }
    });
    filled
}

#[cfg(test)]
mod tests {
    use super::super::testing::{count, fill_box, noise};
    use super::*;

    #[test]
    fn ring_slice_hole_filled() {
        // 5×5 ring in a 7×7 slice: the 3×3 inside is a hole.
        let (w, h) = (7, 7);
        let mut m = vec![0u8; w * h];
        fill_box(&mut m, [w, h, 1], [1, 1, 0], [6, 6, 1], 1);
        fill_box(&mut m, [w, h, 1], [2, 2, 0], [5, 5, 1], 0);
        assert_eq!(fill_holes_slices(&mut m, [w, h, 1], 5), 9);
        assert_eq!(count(&m, 5), 9);
        assert_eq!(m[3 * w + 3], 5);
        assert_eq!(count(&m, 0), 49 - 25);
        assert_eq!(fill_holes_slices(&mut m, [w, h, 1], 5), 0);
    }

    #[test]
    fn hole_touching_border_not_filled() {
        // A ring drawn on the image edge with a gap in its left side: the inside reaches the border.
        #[rustfmt::skip]
        let mut m = vec![
            1, 1, 1, 1, 1,
            1, 0, 0, 0, 1,
            0, 0, 0, 0, 1,
            1, 0, 0, 0, 1,
            1, 1, 1, 1, 1,
        ];
        let before = m.clone();
        assert_eq!(fill_holes_slices(&mut m, [5, 5, 1], 1), 0);
        assert_eq!(m, before);
        // Closing the gap turns the inside into a hole.
        m[10] = 1;
        assert_eq!(fill_holes_slices(&mut m, [5, 5, 1], 1), 9);
        // Touching border background only diagonally does not open a hole (4-connectivity).
        #[rustfmt::skip]
        let mut diag = vec![
            0, 1, 1, 1, 1,
            1, 0, 0, 0, 1,
            1, 0, 0, 0, 1,
            1, 0, 0, 0, 1,
            1, 1, 1, 1, 1,
        ];
        assert_eq!(fill_holes_slices(&mut diag, [5, 5, 1], 1), 9);
        assert_eq!(diag[0], 0);
    }

    #[test]
    fn hollow_cube_filled_3d() {
        let dims = [7, 7, 7];
        let mut m = vec![0u8; 343];
        fill_box(&mut m, dims, [1, 1, 1], [6, 6, 6], 1);
        fill_box(&mut m, dims, [2, 2, 2], [5, 5, 5], 0);
        let mut per_slice = m.clone();
        assert_eq!(fill_holes_3d(&mut m, dims, 2), 27);
        assert_eq!(count(&m, 2), 27);
        assert_eq!(m[(3 * 7 + 3) * 7 + 3], 2);
        assert_eq!(count(&m, 1), 125 - 27);
        // Each interior slice is a ring, so slice-wise filling finds the same 27.
        assert_eq!(fill_holes_slices(&mut per_slice, dims, 2), 27);
        assert_eq!(per_slice, m);
    }

    #[test]
    fn open_tube_filled_per_slice_only() {
        // A square tube along k through the whole volume: every slice is a ring, but in 3D the lumen
        // reaches the first and last slice, which are border.
        let dims = [5, 5, 4];
        let mut m = vec![0u8; 100];
        fill_box(&mut m, dims, [0, 0, 0], [5, 5, 4], 1);
        fill_box(&mut m, dims, [1, 1, 0], [4, 4, 4], 0);
        let mut slices = m.clone();
        assert_eq!(fill_holes_3d(&mut m, dims, 1), 0);
        assert_eq!(fill_holes_slices(&mut slices, dims, 1), 36);
        assert_eq!(count(&slices, 1), 100);
    }

    #[test]
    fn slice_filling_covers_3d_filling() {
        let dims = [23, 19, 11];
        for percent in [40, 55, 65] {
            let m = noise(dims.iter().product(), percent, percent);
            let (mut a, mut b) = (m.clone(), m.clone());
            let f3 = fill_holes_3d(&mut a, dims, 1);
            let fs = fill_holes_slices(&mut b, dims, 1);
            assert!(fs >= f3);
            assert!(a.iter().zip(&b).all(|(&x, &y)| x <= y), "3D fill not within slice fill");
            assert_eq!(fill_holes_3d(&mut b, dims, 1), 0);
        }
    }
}
