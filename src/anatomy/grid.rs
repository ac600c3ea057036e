//! A coarse copy of a CT volume in Hounsfield units, in patient axes.
//!
//! The copy is block-averaged to roughly `target_mm` voxels and stored with its axes permuted and flipped so
//! that coarse axis `a` follows RAS axis `a` and a larger index is further Right (0), Anterior (1) or
//! Superior (2). Every rule downstream then reads "right", "anterior" and "superior" off the index, and
//! none of them can mistake an array column for a side: the permutation comes from the IJK→RAS matrix
//! alone. Each input axis goes to the RAS axis its direction is closest to, so an oblique volume is read as
//! its nearest axis-aligned one (a few degrees of tilt do not move an organ by a coarse voxel).

use crate::error::{Error, Result};
use crate::volume::{BoxIjk, Geometry, VolumeView};

/// HU values are clamped to this range before averaging: padding values below −1024 and metal above
/// 3071 would otherwise drag block means away from the tissue they sit in.
const HU_RANGE: (f64, f64) = (-1024.0, 3071.0);

/// A coarse HU grid in RAS-ordered axes, with its mapping to and from the input grid.
#[derive(Debug, Clone)]
pub struct HuGrid {
    /// Block-mean HU, coarse axis 0 fastest.
    hu: Vec<i16>,
    dims: [usize; 3],
    /// Coarse voxel size (mm) along each RAS axis.
    spacing: [f64; 3],
    input_dims: [usize; 3],
    /// `axis[a]`: the input axis that runs along RAS axis `a`.
    axis: [usize; 3],
    /// `flip[a]`: the input index grows toward −RAS along `a` (Left, Posterior or Inferior).
    flip: [bool; 3],
    /// Input voxels per coarse voxel along RAS axis `a`.
    step: [usize; 3],
    geometry: Geometry,
}

impl HuGrid {
    /// Block-averages `view` (HU, any dtype) to voxels of about `target_mm` (never finer than the input).
    pub fn from_view(view: &VolumeView<'_>, target_mm: f64) -> Result<HuGrid> {
        if !(target_mm.is_finite() && target_mm > 0.0) {
            return Err(Error::InvalidArgument(format!("coarse voxel size {target_mm} mm is not a positive number")));
        }
        let geometry = *view.geometry();
        let input_dims = view.dims();
        let (axis, flip) = ras_axes(&geometry)?;
        let mut step = [1; 3];
        let mut dims = [0; 3];
        let mut spacing = [0.0; 3];
        for a in 0..3 {
            let p = axis[a];
            step[a] = ((target_mm / geometry.spacing[p]).round() as usize).clamp(1, input_dims[p]);
            dims[a] = input_dims[p].div_ceil(step[a]);
            spacing[a] = geometry.spacing[p] * step[a] as f64;
        }
        // Flat coarse offset contributed by each input index, per input axis: the per-voxel work is then
        // three table reads and an add.
        let strides = [1, dims[0], dims[0] * dims[1]];
        let mut offset: [Vec<usize>; 3] = Default::default();
        for a in 0..3 {
            let p = axis[a];
            offset[p] = (0..input_dims[p])
                .map(|n| {
                    let m = if flip[a] { input_dims[p] - 1 - n } else { n };
                    (m / step[a]) * strides[a]
                })
                .collect();
        }
        let n = dims.iter().product();
        let mut sum = vec![0i32; n];
        let mut count = vec![0u16; n];
        let (mut i, mut j, mut k) = (0, 0, 0);
        let (oi, oj, ok) = (&offset[0], &offset[1], &offset[2]);
        view.for_each(|v| {
            let at = oi[i] + oj[j] + ok[k];
            let v = if v.is_nan() { HU_RANGE.0 } else { v.clamp(HU_RANGE.0, HU_RANGE.1) };
            sum[at] += v as i32;
            count[at] += 1;
            i += 1;
            if i == input_dims[0] {
                i = 0;
                j += 1;
                if j == input_dims[1] {
                    j = 0;
                    k += 1;
                }
            }
        });
        let hu = sum.iter().zip(&count).map(|(&s, &c)| (s as f64 / f64::from(c.max(1))).round() as i16).collect();
        Ok(HuGrid { hu, dims, spacing, input_dims, axis, flip, step, geometry })
    }

    /// Coarse dims along R, A, S.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }
    /// Coarse voxel size (mm) along R, A, S.
    pub fn spacing(&self) -> [f64; 3] {
        self.spacing
    }
    /// Block-mean HU, coarse axis 0 (Right) fastest.
    pub fn hu(&self) -> &[i16] {
        &self.hu
    }
    /// Dims of the input volume.
    pub fn input_dims(&self) -> [usize; 3] {
        self.input_dims
    }
    /// Geometry of the input volume.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    /// Volume of one coarse voxel in millilitres.
    pub fn voxel_ml(&self) -> f64 {
        self.spacing.iter().product::<f64>() / 1000.0
    }
    /// Input voxel size (mm) along each input axis.
    pub fn input_spacing(&self) -> [f64; 3] {
        self.geometry.spacing
    }

    /// The coarse voxel holding input voxel `ijk` (clamped into the volume).
    pub fn coarse_of(&self, ijk: [usize; 3]) -> [usize; 3] {
        let mut c = [0; 3];
        for a in 0..3 {
            let p = self.axis[a];
            let n = ijk[p].min(self.input_dims[p] - 1);
            let m = if self.flip[a] { self.input_dims[p] - 1 - n } else { n };
            c[a] = m / self.step[a];
        }
        c
    }

    /// The input voxel range `[lo, hi]` (inclusive) along input axis `p` covered by coarse indices
    /// `c0..=c1` along the RAS axis that `p` follows.
    fn input_range(&self, a: usize, c0: usize, c1: usize) -> (usize, usize) {
        let p = self.axis[a];
        let last = self.input_dims[p] - 1;
        let lo = (c0 * self.step[a]).min(last);
        let hi = ((c1 + 1) * self.step[a] - 1).min(last);
        if self.flip[a] {
            (last - hi, last - lo)
        } else {
            (lo, hi)
        }
    }

    /// The input-grid box covering the coarse box `min..=max` (RAS-ordered coarse indices).
    pub fn input_box(&self, min: [usize; 3], max: [usize; 3]) -> BoxIjk {
        let mut b = BoxIjk { min: [0; 3], max: [0; 3] };
        for a in 0..3 {
            let p = self.axis[a];
            let (lo, hi) = self.input_range(a, min[a], max[a]);
            b.min[p] = lo;
            b.max[p] = hi;
        }
        b
    }

    /// A coarse mask (nonzero = inside) on the input grid, nearest neighbour, i fastest, values 0/1.
    pub fn to_input(&self, coarse: &[u8]) -> Vec<u8> {
        let d = self.input_dims;
        let strides = [1, self.dims[0], self.dims[0] * self.dims[1]];
        let mut offset: [Vec<usize>; 3] = Default::default();
        for a in 0..3 {
            let p = self.axis[a];
            offset[p] = (0..d[p])
                .map(|n| {
                    let m = if self.flip[a] { d[p] - 1 - n } else { n };
                    (m / self.step[a]) * strides[a]
                })
                .collect();
        }
        let mut out = vec![0u8; d.iter().product()];
        let mut at = 0;
        for k in 0..d[2] {
            for j in 0..d[1] {
                let base = offset[1][j] + offset[2][k];
                for &oi in &offset[0] {
                    out[at] = u8::from(coarse[base + oi] != 0);
                    at += 1;
                }
            }
        }
        out
    }
}

/// For each RAS axis, the input axis whose direction is closest to it and whether it points the other way.
fn ras_axes(g: &Geometry) -> Result<([usize; 3], [bool; 3])> {
    let m = &g.ijk_to_ras;
    let mut axis = [usize::MAX; 3];
    let mut flip = [false; 3];
    for p in 0..3 {
        let col = [m[0][p], m[1][p], m[2][p]];
        let norm = col.iter().map(|v| v * v).sum::<f64>().sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return Err(Error::InvalidVolume(format!("the IJK→RAS matrix has a zero column {p}")));
        }
        let a = (0..3).max_by(|&x, &y| col[x].abs().total_cmp(&col[y].abs())).expect("three axes");
        if axis[a] != usize::MAX {
            return Err(Error::InvalidVolume(format!(
                "input axes {} and {p} both run closest to RAS axis {a}; the IJK→RAS matrix {m:?} is too oblique to \
                 read as patient axes",
                axis[a]
            )));
        }
        axis[a] = p;
        flip[a] = col[a] < 0.0;
    }
    Ok((axis, flip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::DType;

    fn lps_geometry() -> Geometry {
        // i → Left, j → Posterior, k → Superior, 1 mm.
        let mut g = Geometry::default();
        g.ijk_to_ras[0][0] = -1.0;
        g.ijk_to_ras[1][1] = -1.0;
        g
    }

    #[test]
    fn axes_follow_the_matrix_not_the_array() {
        let dims = [4, 3, 2];
        let vals: Vec<i16> = (0..24).collect();
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let view = VolumeView::contiguous(&bytes, DType::I16, dims, lps_geometry()).unwrap();
        let g = HuGrid::from_view(&view, 1.0).unwrap();
        assert_eq!(g.dims(), [4, 3, 2]);
        // Coarse index 0 is the most negative RAS, Left and Posterior: input i = 3, j = 2.
        assert_eq!(g.hu()[0], vals[2 * 4 + 3]);
        assert_eq!(g.coarse_of([3, 2, 0]), [0, 0, 0]);
        assert_eq!(g.input_box([0, 0, 0], [1, 0, 1]), BoxIjk { min: [2, 2, 0], max: [3, 2, 1] });
        let mut m = vec![0u8; 24];
        m[0] = 1;
        let back = g.to_input(&m);
        assert_eq!(back.iter().position(|&v| v == 1), Some(2 * 4 + 3));
        assert_eq!(back.iter().filter(|&&v| v == 1).count(), 1);
    }

    #[test]
    fn blocks_average_and_cover_ragged_edges() {
        let dims = [5, 2, 1];
        let vals: Vec<i16> = vec![0, 10, 20, 30, 40, 0, 10, 20, 30, 40];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let view = VolumeView::contiguous(&bytes, DType::I16, dims, Geometry::default()).unwrap();
        let g = HuGrid::from_view(&view, 2.0).unwrap();
        assert_eq!(g.dims(), [3, 1, 1]);
        assert_eq!(g.hu(), &[5, 25, 40]);
        assert_eq!(g.input_box([2, 0, 0], [2, 0, 0]), BoxIjk { min: [4, 0, 0], max: [4, 1, 0] });
    }
}
