//! One grid stored in another array order. A label map made on the same scan is often saved with its
//! axes permuted or reversed (TotalSegmentator case B's mask has its rows reversed against the DICOM
//! series): its voxel centres are the same points, so its voxels can be moved exactly, with no
//! interpolation. Anything else (another spacing, a shift by part of a voxel, a rotation) is refused.

use super::{Geometry, Volume};
use crate::error::{Error, Result};

/// How far from an integer or from ±1 a matrix entry may be and still be one (in voxels).
const TOLERANCE: f64 = 1e-3;

/// `src`'s voxels in the array order of a grid of `dims` on `geometry`, when both are the same grid.
pub fn onto_grid(src: &Volume, dims: [usize; 3], geometry: &Geometry) -> Result<Volume> {
    if src.dims == dims && src.geometry == *geometry {
        return Ok(src.clone());
    }
    let inv = src
        .geometry
        .ras_to_ijk()
        .ok_or_else(|| Error::InvalidVolume("the volume's IJK → RAS matrix is singular".into()))?;
    // T = inv(src) · target: target index → source index.
    let g = &geometry.ijk_to_ras;
    let mut t = [[0.0; 4]; 3];
    for (r, row) in t.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = (0..4).map(|k| inv[r][k] * g[k][c]).sum::<f64>();
        }
    }
    let refuse = || {
        Error::ShapeMismatch(format!(
            "dims {:?} are not the grid of dims {dims:?} in another array order (spacing, origin or direction differ)",
            src.dims
        ))
    };
    // Each target axis c moves along exactly one source axis, by ±1 voxel.
    let mut axis = [0usize; 3];
    let mut sign = [0i64; 3];
    for c in 0..3 {
        let hits: Vec<usize> = (0..3).filter(|&r| (t[r][c].abs() - 1.0).abs() < TOLERANCE).collect();
        let zeros = (0..3).filter(|&r| t[r][c].abs() < TOLERANCE).count();
        if hits.len() != 1 || zeros != 2 {
            return Err(refuse());
        }
        axis[c] = hits[0];
        sign[c] = if t[hits[0]][c] > 0.0 { 1 } else { -1 };
    }
    if axis.iter().collect::<std::collections::BTreeSet<_>>().len() != 3 {
        return Err(refuse());
    }
    let mut offset = [0i64; 3];
    for r in 0..3 {
        let o = t[r][3];
        if (o - o.round()).abs() > TOLERANCE {
            return Err(refuse());
        }
        offset[r] = o.round() as i64;
    }
    // Every target voxel must land inside the source: the corners decide it.
    for c in 0..3 {
        let r = axis[c];
        let (a, b) = (offset[r], offset[r] + sign[c] * (dims[c] as i64 - 1));
        if a.min(b) < 0 || a.max(b) >= src.dims[r] as i64 || dims[c] != src.dims[r] {
            return Err(refuse());
        }
    }
    let w = src.dtype.size();
    let sstride = [w as i64, (w * src.dims[0]) as i64, (w * src.dims[0] * src.dims[1]) as i64];
    // Source byte offset of target (0, 0, 0) and its step per target axis.
    let start: i64 = (0..3).map(|r| offset[r] * sstride[r]).sum();
    let step: [i64; 3] = [0, 1, 2].map(|c| sign[c] * sstride[axis[c]]);
    let mut data = Vec::with_capacity(src.data.len());
    for k in 0..dims[2] as i64 {
        for j in 0..dims[1] as i64 {
            let row = start + k * step[2] + j * step[1];
            for i in 0..dims[0] as i64 {
                let at = (row + i * step[0]) as usize;
                data.extend_from_slice(&src.data[at..at + w]);
            }
        }
    }
    Ok(Volume { data, dtype: src.dtype, dims, geometry: *geometry })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::DType;

    fn vol(dims: [usize; 3], m: [[f64; 4]; 4]) -> Volume {
        let n: usize = dims.iter().product();
        let data = (0..n as u16).flat_map(|v| v.to_ne_bytes()).collect();
        Volume { data, dtype: DType::U16, dims, geometry: Geometry { spacing: [1.0, 2.0, 3.0], ijk_to_ras: m } }
    }

    #[test]
    fn rows_reversed_and_axes_swapped_are_moved_exactly_and_other_grids_refused() {
        let m = [[1.0, 0.0, 0.0, 10.0], [0.0, 2.0, 0.0, -5.0], [0.0, 0.0, 3.0, 7.0], [0.0, 0.0, 0.0, 1.0]];
        let src = vol([4, 3, 2], m);
        // Rows reversed: j' = 2 - j, so its origin moves to the last row.
        let flipped = [[1.0, 0.0, 0.0, 10.0], [0.0, -2.0, 0.0, -5.0 + 4.0], [0.0, 0.0, 3.0, 7.0], [0.0, 0.0, 0.0, 1.0]];
        let g = Geometry { spacing: [1.0, 2.0, 3.0], ijk_to_ras: flipped };
        let out = onto_grid(&src, [4, 3, 2], &g).unwrap();
        let at = |v: &Volume, i: usize, j: usize, k: usize| {
            let o = 2 * (i + v.dims[0] * (j + v.dims[1] * k));
            u16::from_ne_bytes([v.data[o], v.data[o + 1]])
        };
        for (i, j, k) in [(0, 0, 0), (3, 1, 1), (2, 2, 0)] {
            assert_eq!(at(&out, i, j, k), at(&src, i, 2 - j, k));
        }
        // Back again: the original.
        let back = onto_grid(&out, src.dims, &src.geometry).unwrap();
        assert_eq!((back.dims, &back.data), (src.dims, &src.data));
        // i and k swapped.
        let swapped = [[0.0, 0.0, 1.0, 10.0], [0.0, 2.0, 0.0, -5.0], [3.0, 0.0, 0.0, 7.0], [0.0, 0.0, 0.0, 1.0]];
        let out = onto_grid(&src, [2, 3, 4], &Geometry { spacing: [3.0, 2.0, 1.0], ijk_to_ras: swapped }).unwrap();
        assert_eq!(at(&out, 1, 2, 3), at(&src, 3, 2, 1));
        // Half a voxel off, another spacing, or too large: refused.
        for (dims, mm) in [
            ([4, 3, 2], [[1.0, 0.0, 0.0, 10.5], m[1], m[2], m[3]]),
            ([4, 3, 2], [[2.0, 0.0, 0.0, 10.0], m[1], m[2], m[3]]),
            ([5, 3, 2], m),
        ] {
            let g = Geometry { spacing: [1.0, 2.0, 3.0], ijk_to_ras: mm };
            assert_eq!(onto_grid(&src, dims, &g).unwrap_err().code(), crate::ErrorCode::ShapeMismatch);
        }
    }
}
