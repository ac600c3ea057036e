//! Box-shaped dilation and erosion, separable per axis.

use super::check_len;

/// Dilates the nonzero voxels of a `[w, h, d]` mask by a box of half-sizes `radius` (voxels per axis), in
/// place, leaving 0/1 values. Separable: one pass per axis, each linear in the line length whatever the
/// radius, so a 10 mm margin on a fine grid costs the same as a 1-voxel one.
///
/// # Panics
/// If `mask.len() != w * h * d`.
pub fn dilate_box(mask: &mut [u8], dims: [usize; 3], radius: [usize; 3]) {
    check_len(mask, dims);
    for v in mask.iter_mut() {
        *v = u8::from(*v != 0);
    }
    let strides = [1, dims[0], dims[0] * dims[1]];
    let mut line = Vec::new();
    for a in 0..3 {
        let (n, s, r) = (dims[a], strides[a], radius[a]);
        if r == 0 || n < 2 {
            continue;
        }
        let (b, c) = ((a + 1) % 3, (a + 2) % 3);
        for u in 0..dims[b] {
            for t in 0..dims[c] {
                let start = u * strides[b] + t * strides[c];
                line.clear();
                line.extend((0..n).map(|x| mask[start + x * s] != 0));
                // Distance to the nearest set voxel before and after, so each line is two sweeps.
                let mut last: Option<usize> = None;
                for x in 0..n {
                    if line[x] {
                        last = Some(x);
                    }
                    mask[start + x * s] = u8::from(last.is_some_and(|l| x - l <= r));
                }
                let mut next: Option<usize> = None;
                for x in (0..n).rev() {
                    if line[x] {
                        next = Some(x);
                    }
                    if next.is_some_and(|l| l - x <= r) {
                        mask[start + x * s] = 1;
                    }
                }
            }
        }
    }
}

/// Erodes the nonzero voxels of a `[w, h, d]` mask by a box of half-sizes `radius`, in place, leaving 0/1
/// values. Outside the volume counts as foreground, so a mask touching the border is not eaten from there.
///
/// # Panics
/// If `mask.len() != w * h * d`.
pub fn erode_box(mask: &mut [u8], dims: [usize; 3], radius: [usize; 3]) {
    for v in mask.iter_mut() {
        *v = u8::from(*v == 0);
    }
    dilate_box(mask, dims, radius);
    for v in mask.iter_mut() {
        *v = 1 - *v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dilation_and_erosion_of_a_point_and_a_box() {
        let dims = [7, 6, 5];
        let mut m = vec![0u8; 7 * 6 * 5];
        m[(2 * 6 + 3) * 7 + 3] = 1;
        dilate_box(&mut m, dims, [2, 1, 0]);
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 5 * 3);
        assert_eq!(m[(2 * 6 + 2) * 7 + 1], 1);
        assert_eq!(m[(2 * 6 + 2) * 7], 0);
        erode_box(&mut m, dims, [2, 1, 0]);
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 1);
        assert_eq!(m[(2 * 6 + 3) * 7 + 3], 1);
        let mut full = vec![1u8; 7 * 6 * 5];
        erode_box(&mut full, dims, [1, 1, 1]);
        assert!(full.iter().all(|&v| v == 1));
    }
}
