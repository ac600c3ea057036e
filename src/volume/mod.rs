//! Typed, strided views of a host's volume, and the geometry that goes with it.
//!
//! Axis convention everywhere in the engine: i is the fastest axis of the stored array (columns of a slice),
//! j the rows, k the slices. A slice k is the 2D image with rows = j and columns = i, as the reference
//! pipeline sees it (METHODS §0.4c).

pub mod intensity;
pub mod regrid;
pub mod reslice;

use crate::error::{Error, Result};

/// Voxel types a host may hand over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    F64,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::F64 => 8,
        }
    }
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
}

/// Grid geometry: voxel spacing (mm) and the 4×4 IJK → RAS matrix (row-major).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub spacing: [f64; 3],
    pub ijk_to_ras: [[f64; 4]; 4],
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            spacing: [1.0; 3],
            ijk_to_ras: [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]],
        }
    }
}

impl Geometry {
    /// RAS coordinates of a continuous voxel index.
    pub fn ijk_to_ras(&self, ijk: [f64; 3]) -> [f64; 3] {
        let m = &self.ijk_to_ras;
        let mut out = [0.0; 3];
        for (r, o) in out.iter_mut().enumerate() {
            *o = m[r][0] * ijk[0] + m[r][1] * ijk[1] + m[r][2] * ijk[2] + m[r][3];
        }
        out
    }
}

impl Geometry {
    /// The inverse of the IJK → RAS matrix, or `None` when it is singular.
    pub fn ras_to_ijk(&self) -> Option<[[f64; 4]; 4]> {
        let m = &self.ijk_to_ras;
        let a = |r: usize, c: usize| m[r][c];
        let det = a(0, 0) * (a(1, 1) * a(2, 2) - a(1, 2) * a(2, 1)) - a(0, 1) * (a(1, 0) * a(2, 2) - a(1, 2) * a(2, 0))
            + a(0, 2) * (a(1, 0) * a(2, 1) - a(1, 1) * a(2, 0));
        if !det.is_finite() || det.abs() < 1e-12 {
            return None;
        }
        let mut inv = [[0.0; 4]; 4];
        for r in 0..3 {
            for c in 0..3 {
                let (r1, r2, c1, c2) = ((c + 1) % 3, (c + 2) % 3, (r + 1) % 3, (r + 2) % 3);
                inv[r][c] = (a(r1, c1) * a(r2, c2) - a(r1, c2) * a(r2, c1)) / det;
            }
        }
        for r in 0..3 {
            inv[r][3] = -(inv[r][0] * m[0][3] + inv[r][1] * m[1][3] + inv[r][2] * m[2][3]);
        }
        inv[3][3] = 1.0;
        Some(inv)
    }

    /// The voxel box enclosing a box given by two opposite RAS corners (mm), corners rounded to the nearest
    /// voxel and clipped to `dims`.
    pub fn ras_box_to_ijk(&self, p0: [f64; 3], p1: [f64; 3], dims: [usize; 3]) -> Result<BoxIjk> {
        // One corner twice is a point (vxp_session_add_point_ras); the message names what the host gave.
        let what = if p0.map(f64::to_bits) == p1.map(f64::to_bits) {
            format!("RAS point {}", mm(p0))
        } else {
            format!("RAS box {}..{}", mm(p0), mm(p1))
        };
        if p0.iter().chain(&p1).any(|v| !v.is_finite()) {
            return Err(Error::InvalidPrompt(format!("{what} has a non-finite coordinate")));
        }
        let inv = self.ras_to_ijk().ok_or_else(|| Error::InvalidVolume("the IJK→RAS matrix is singular".into()))?;
        let (mut lo, mut hi) = ([f64::INFINITY; 3], [f64::NEG_INFINITY; 3]);
        for corner in 0..8 {
            let p = [
                if corner & 1 == 0 { p0[0] } else { p1[0] },
                if corner & 2 == 0 { p0[1] } else { p1[1] },
                if corner & 4 == 0 { p0[2] } else { p1[2] },
            ];
            for a in 0..3 {
                let v = inv[a][0] * p[0] + inv[a][1] * p[1] + inv[a][2] * p[2] + inv[a][3];
                lo[a] = lo[a].min(v);
                hi[a] = hi[a].max(v);
            }
        }
        let mut b = BoxIjk { min: [0; 3], max: [0; 3] };
        for a in 0..3 {
            let (l, h) = (lo[a].round(), hi[a].round());
            if h < 0.0 || l > (dims[a] - 1) as f64 {
                return Err(Error::InvalidPrompt(format!(
                    "{what} lies outside the volume on axis {a} (voxels {}..{} of {})",
                    short(l),
                    short(h),
                    dims[a]
                )));
            }
            b.min[a] = l.max(0.0) as usize;
            b.max[a] = (h as usize).min(dims[a] - 1);
        }
        Ok(b)
    }
}

/// A coordinate for a message: plain when it is of a sensible size, else in scientific notation (1e300
/// would print as 301 digits).
fn short(v: f64) -> String {
    if v.is_finite() && v.abs() < 1e7 {
        format!("{}", (v * 1000.0).round() / 1000.0)
    } else {
        format!("{v:.3e}")
    }
}

fn mm(p: [f64; 3]) -> String {
    format!("({}, {}, {})", short(p[0]), short(p[1]), short(p[2]))
}

/// An inclusive voxel box: i (x), j (y), k (z).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxIjk {
    pub min: [usize; 3],
    pub max: [usize; 3],
}

impl BoxIjk {
    /// The tight box of the voxels of a label map (i fastest) equal to `value`, and how many there are;
    /// None when there are none.
    pub fn of_label(labels: &[f64], dims: [usize; 3], value: f64) -> Option<(BoxIjk, usize)> {
        let mut b = BoxIjk { min: [usize::MAX; 3], max: [0; 3] };
        let mut n = 0;
        for (idx, _) in labels.iter().enumerate().filter(|(_, &v)| v == value) {
            let ijk = [idx % dims[0], (idx / dims[0]) % dims[1], idx / (dims[0] * dims[1])];
            for (a, &c) in ijk.iter().enumerate() {
                b.min[a] = b.min[a].min(c);
                b.max[a] = b.max[a].max(c);
            }
            n += 1;
        }
        (n > 0).then_some((b, n))
    }

    /// Checks the box against the volume's dims.
    pub fn validate(&self, dims: [usize; 3]) -> Result<()> {
        for a in 0..3 {
            if self.min[a] > self.max[a] {
                return Err(Error::InvalidPrompt(format!(
                    "box {:?}..{:?} is inverted on axis {a} ({} > {})",
                    self.min, self.max, self.min[a], self.max[a]
                )));
            }
            if self.max[a] >= dims[a] {
                return Err(Error::InvalidPrompt(format!(
                    "box {:?}..{:?} reaches index {} on axis {a}, outside the volume of dims {dims:?}",
                    self.min, self.max, self.max[a]
                )));
            }
        }
        Ok(())
    }
}

/// A borrowed, validated view of a host volume: every voxel's bytes lie inside `data`.
#[derive(Debug, Clone, Copy)]
pub struct VolumeView<'a> {
    data: &'a [u8],
    offset: usize,
    dtype: DType,
    dims: [usize; 3],
    strides: [isize; 3],
    geometry: Geometry,
}

impl<'a> VolumeView<'a> {
    /// A view over `data`, voxel (0,0,0) at byte `offset`, byte `strides` per axis (may be negative).
    pub fn new(
        data: &'a [u8],
        offset: usize,
        dtype: DType,
        dims: [usize; 3],
        strides: [isize; 3],
        geometry: Geometry,
    ) -> Result<Self> {
        if dims.contains(&0) {
            return Err(Error::InvalidVolume(format!("dims {dims:?} contain a zero-sized axis")));
        }
        let count = dims[0].checked_mul(dims[1]).and_then(|n| n.checked_mul(dims[2]));
        if count.is_none_or(|n| n > isize::MAX as usize / 8) {
            return Err(Error::InvalidVolume(format!("dims {dims:?} overflow the addressable size")));
        }
        let (mut lo, mut hi) = (offset as i128, offset as i128);
        for a in 0..3 {
            let span = strides[a] as i128 * (dims[a] as i128 - 1);
            if span < 0 {
                lo += span;
            } else {
                hi += span;
            }
        }
        hi += dtype.size() as i128;
        if lo < 0 || hi > data.len() as i128 {
            return Err(Error::InvalidVolume(format!(
                "dims {dims:?} with byte strides {strides:?} and offset {offset} reach bytes [{lo}, {hi}) outside the buffer of {} bytes",
                data.len()
            )));
        }
        for a in 0..3 {
            if dims[a] > 1 && strides[a].unsigned_abs() < dtype.size() {
                return Err(Error::InvalidVolume(format!(
                    "stride {} of axis {a} is smaller than one {:?} voxel",
                    strides[a], dtype
                )));
            }
        }
        for (a, s) in geometry.spacing.iter().enumerate() {
            if !(s.is_finite() && *s > 0.0) {
                return Err(Error::InvalidVolume(format!("spacing {s} of axis {a} is not a positive number")));
            }
        }
        if geometry.ijk_to_ras.iter().flatten().any(|v| !v.is_finite()) {
            return Err(Error::InvalidVolume("the IJK→RAS matrix has a non-finite entry".into()));
        }
        Ok(VolumeView { data, offset, dtype, dims, strides, geometry })
    }

    /// A view over a tightly packed native-endian array with i fastest.
    pub fn contiguous(data: &'a [u8], dtype: DType, dims: [usize; 3], geometry: Geometry) -> Result<Self> {
        let s = dtype.size() as isize;
        let strides = [s, s * dims[0] as isize, s * dims[0] as isize * dims[1] as isize];
        Self::new(data, 0, dtype, dims, strides, geometry)
    }

    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Calls `f(value)` for every voxel in k, j, i order (i fastest), converting to f64 exactly.
    pub fn for_each(&self, mut f: impl FnMut(f64)) {
        macro_rules! walk {
            ($t:ty) => {{
                const N: usize = std::mem::size_of::<$t>();
                for k in 0..self.dims[2] {
                    for j in 0..self.dims[1] {
                        let row = self.offset as isize + k as isize * self.strides[2] + j as isize * self.strides[1];
                        for i in 0..self.dims[0] {
                            let at = (row + i as isize * self.strides[0]) as usize;
                            let mut b = [0u8; N];
                            b.copy_from_slice(&self.data[at..at + N]);
                            f(<$t>::from_ne_bytes(b) as f64);
                        }
                    }
                }
            }};
        }
        match self.dtype {
            DType::U8 => walk!(u8),
            DType::I8 => walk!(i8),
            DType::U16 => walk!(u16),
            DType::I16 => walk!(i16),
            DType::U32 => walk!(u32),
            DType::I32 => walk!(i32),
            DType::F32 => walk!(f32),
            DType::F64 => walk!(f64),
        }
    }
}

/// An owned volume as read from a file: native-endian, tightly packed, i fastest.
#[derive(Debug, Clone)]
pub struct Volume {
    pub data: Vec<u8>,
    pub dtype: DType,
    pub dims: [usize; 3],
    pub geometry: Geometry,
}

impl Volume {
    pub fn view(&self) -> Result<VolumeView<'_>> {
        VolumeView::contiguous(&self.data, self.dtype, self.dims, self.geometry)
    }

    /// Voxel values as f64 in storage order (used for label maps, which are small integers).
    pub fn to_f64(&self) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.dims.iter().product());
        self.view()?.for_each(|v| out.push(v));
        Ok(out)
    }
}

/// A dense u8 volume (the engine's working representation), i fastest.
#[derive(Debug, Clone, PartialEq)]
pub struct U8Volume {
    pub data: Vec<u8>,
    pub dims: [usize; 3],
}

impl U8Volume {
    pub fn zeros(dims: [usize; 3]) -> Self {
        U8Volume { data: vec![0; dims.iter().product()], dims }
    }
    pub fn slice_len(&self) -> usize {
        self.dims[0] * self.dims[1]
    }
    pub fn slice(&self, k: usize) -> &[u8] {
        let n = self.slice_len();
        &self.data[k * n..(k + 1) * n]
    }
    pub fn slice_mut(&mut self, k: usize) -> &mut [u8] {
        let n = self.slice_len();
        &mut self.data[k * n..(k + 1) * n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IJK → RAS for spacing (0.7, 0.9, 2.5) mm, rotated 30° about k and 10° about i, LPS-stored (the first two
    /// axes negated, as DICOM and ITK write them), origin (-120, 85.5, -40).
    fn oblique() -> Geometry {
        let (a, b) = (30f64.to_radians(), 10f64.to_radians());
        let rz = [[a.cos(), -a.sin(), 0.0], [a.sin(), a.cos(), 0.0], [0.0, 0.0, 1.0]];
        let rx = [[1.0, 0.0, 0.0], [0.0, b.cos(), -b.sin()], [0.0, b.sin(), b.cos()]];
        let flip = [-1.0, -1.0, 1.0];
        let spacing = [0.7, 0.9, 2.5];
        let origin = [-120.0, 85.5, -40.0];
        let mut m = [[0.0; 4]; 4];
        for r in 0..3 {
            for c in 0..3 {
                let rot: f64 = (0..3).map(|t| rz[r][t] * rx[t][c]).sum();
                m[r][c] = flip[r] * rot * spacing[c];
            }
            m[r][3] = origin[r];
        }
        m[3][3] = 1.0;
        Geometry { spacing, ijk_to_ras: m }
    }

    fn apply(m: &[[f64; 4]; 4], p: [f64; 3]) -> [f64; 3] {
        let mut out = [0.0; 3];
        for r in 0..3 {
            out[r] = m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3];
        }
        out
    }

    #[test]
    fn ras_to_ijk_inverts_an_oblique_anisotropic_lps_matrix() {
        let g = oblique();
        let inv = g.ras_to_ijk().expect("invertible");
        for ijk in [[0.0, 0.0, 0.0], [511.0, 0.0, 299.0], [17.25, 300.5, 42.0], [-3.0, 1e3, -7.5]] {
            let back = apply(&inv, g.ijk_to_ras(ijk));
            for a in 0..3 {
                assert!((back[a] - ijk[a]).abs() < 1e-9, "{ijk:?} -> {back:?}");
            }
        }
        // The product with the forward matrix is the identity, translation included.
        let m = &g.ijk_to_ras;
        for r in 0..4 {
            for c in 0..4 {
                let v: f64 = (0..4).map(|t| inv[r][t] * m[t][c]).sum();
                assert!((v - f64::from(u8::from(r == c))).abs() < 1e-12, "({r}, {c}) = {v}");
            }
        }
        assert_eq!(inv[3], [0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn ras_to_ijk_refuses_singular_and_non_finite_matrices() {
        let mut g = Geometry::default();
        g.ijk_to_ras[2] = [0.0, 0.0, 0.0, 5.0]; // k maps to nothing
        assert_eq!(g.ras_to_ijk(), None);
        let mut g = Geometry::default();
        g.ijk_to_ras[1] = g.ijk_to_ras[0]; // two equal rows
        assert_eq!(g.ras_to_ijk(), None);
        let mut g = Geometry::default();
        g.ijk_to_ras[0][0] = f64::NAN;
        assert_eq!(g.ras_to_ijk(), None);
        // The cut-off is on the determinant: 1 µm voxels (det 1e-9 mm³) invert, 10 nm ones (1e-15) do not.
        let scaled = |s: f64| {
            let mut g = Geometry::default();
            for a in 0..3 {
                g.ijk_to_ras[a][a] = s;
            }
            g.ras_to_ijk()
        };
        assert!((scaled(1e-3).unwrap()[1][1] - 1e3).abs() < 1e-9);
        assert_eq!(scaled(1e-5), None);
    }

    #[test]
    fn ras_box_round_trips_through_an_oblique_matrix() {
        let g = oblique();
        let dims = [64, 48, 20];
        // The RAS corners of voxel boxes come back as the same voxel boxes, whichever corner is given first.
        let f = |v: [usize; 3]| g.ijk_to_ras(v.map(|x| x as f64));
        assert_eq!(
            g.ras_box_to_ijk(f([5, 7, 2]), f([5, 7, 2]), dims).unwrap(),
            BoxIjk { min: [5, 7, 2], max: [5, 7, 2] }
        );
        for (lo, hi) in [([0usize, 0, 0], [63usize, 47, 19]), ([10, 3, 4], [30, 40, 11])] {
            let want = BoxIjk { min: lo, max: hi };
            // Under an oblique matrix the RAS box spanned by two voxel corners is larger than the voxel box in
            // voxel space, so the round trip must contain it (and stays clipped to the volume).
            let b = g.ras_box_to_ijk(f(lo), f(hi), dims).unwrap();
            assert_eq!(g.ras_box_to_ijk(f(hi), f(lo), dims).unwrap(), b);
            for a in 0..3 {
                assert!(b.min[a] <= want.min[a] && b.max[a] >= want.max[a], "{want:?} in {b:?}");
                assert!(b.max[a] < dims[a]);
            }
        }
        // An axis-aligned anisotropic LPS matrix maps boxes to boxes, so the round trip is exact.
        let mut g = Geometry { spacing: [0.8, 0.8, 3.0], ..Geometry::default() };
        g.ijk_to_ras = [[-0.8, 0.0, 0.0, 100.0], [0.0, -0.8, 0.0, 50.0], [0.0, 0.0, 3.0, -20.0], [0.0, 0.0, 0.0, 1.0]];
        let f = |v: [usize; 3]| g.ijk_to_ras(v.map(|x| x as f64));
        let b = g.ras_box_to_ijk(f([10, 3, 4]), f([30, 40, 11]), dims).unwrap();
        assert_eq!(b, BoxIjk { min: [10, 3, 4], max: [30, 40, 11] });
        // Corners round to the nearest voxel: 0.4 voxel short of 30 still reaches 30, 0.6 does not.
        let p = g.ijk_to_ras([29.6, 40.0, 11.0]);
        assert_eq!(g.ras_box_to_ijk(f([10, 3, 4]), p, dims).unwrap().max, [30, 40, 11]);
        let p = g.ijk_to_ras([29.4, 40.0, 11.0]);
        assert_eq!(g.ras_box_to_ijk(f([10, 3, 4]), p, dims).unwrap().max, [29, 40, 11]);
    }

    #[test]
    fn ras_box_outside_partly_outside_singular_and_nan() {
        let g = Geometry::default();
        let dims = [10, 10, 10];
        // Partly outside: clipped to the volume.
        let b = g.ras_box_to_ijk([-5.0, 2.0, 3.0], [4.0, 20.0, 9.4], dims).unwrap();
        assert_eq!(b, BoxIjk { min: [0, 2, 3], max: [4, 9, 9] });
        // Wholly outside on one axis, on either side.
        for (p0, p1) in [([0.0, 0.0, 10.6], [5.0, 5.0, 30.0]), ([-9.0, 0.0, 0.0], [-0.6, 5.0, 5.0])] {
            let e = g.ras_box_to_ijk(p0, p1, dims).unwrap_err();
            assert!(matches!(e, Error::InvalidPrompt(ref m) if m.contains("outside the volume")), "{e}");
        }
        // -0.4 rounds to voxel 0, so it is inside.
        assert_eq!(g.ras_box_to_ijk([-0.4; 3], [-0.4; 3], dims).unwrap(), BoxIjk { min: [0; 3], max: [0; 3] });
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let e = g.ras_box_to_ijk([0.0, bad, 0.0], [1.0; 3], dims).unwrap_err();
            assert!(matches!(e, Error::InvalidPrompt(ref m) if m.contains("non-finite")), "{e}");
            assert!(g.ras_box_to_ijk([1.0; 3], [0.0, 0.0, bad], dims).is_err());
        }
        let mut s = Geometry::default();
        s.ijk_to_ras[0] = [0.0; 4];
        let e = s.ras_box_to_ijk([0.0; 3], [1.0; 3], dims).unwrap_err();
        assert!(matches!(e, Error::InvalidVolume(ref m) if m.contains("singular")), "{e}");
        // D13f: a point is called a point, and 1e300 prints short.
        let e = g.ras_box_to_ijk([f64::NAN, 0.0, 0.0], [f64::NAN, 0.0, 0.0], dims).unwrap_err().to_string();
        assert!(e.contains("RAS point (NaN, 0, 0)"), "{e}");
        let e = g.ras_box_to_ijk([1e300, 0.0, 0.0], [1e300, 0.0, 0.0], dims).unwrap_err().to_string();
        assert!(e.contains("RAS point (1.000e300, 0, 0)") && e.len() < 160, "{e}");
    }

    fn bytes(values: &[i16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_ne_bytes()).collect()
    }

    fn read(v: &VolumeView<'_>) -> Vec<f64> {
        let mut out = Vec::new();
        v.for_each(|x| out.push(x));
        out
    }

    #[test]
    fn volume_view_accepts_exact_buffers_and_negative_strides() {
        let data = bytes(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        let g = Geometry::default();
        let v = VolumeView::contiguous(&data, DType::I16, [3, 2, 2], g).unwrap();
        assert_eq!(read(&v), (0..12).map(f64::from).collect::<Vec<_>>());
        // The same buffer walked with j and k flipped: voxel (0,0,0) is the last row's first element.
        let v = VolumeView::new(&data, 18, DType::I16, [3, 2, 2], [2, -6, -12], g).unwrap();
        assert_eq!(read(&v), [9.0, 10.0, 11.0, 6.0, 7.0, 8.0, 3.0, 4.0, 5.0, 0.0, 1.0, 2.0]);
        // Every other i, from a padded row pitch: only the bytes read must lie in the buffer.
        let v = VolumeView::new(&data, 0, DType::I16, [2, 3, 1], [4, 8, 0], g).unwrap();
        assert_eq!(read(&v), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        // A stride below the voxel size is fine on an axis of length 1.
        assert!(VolumeView::new(&data, 0, DType::I16, [6, 1, 1], [2, 1, 0], g).is_ok());
    }

    #[test]
    fn volume_view_bounds_checks() {
        let data = vec![0u8; 24];
        let g = Geometry::default();
        let err = |r: Result<VolumeView<'_>>| match r {
            Err(Error::InvalidVolume(m)) => m,
            other => panic!("expected InvalidVolume, got {other:?}"),
        };
        assert!(err(VolumeView::new(&data, 0, DType::I16, [3, 0, 2], [2, 6, 12], g)).contains("zero-sized"));
        assert!(err(VolumeView::new(&data, 0, DType::U8, [usize::MAX, 2, 1], [1, 1, 1], g)).contains("overflow"));
        assert!(err(VolumeView::new(&data, 0, DType::U8, [1 << 31, 1 << 31, 1], [1, 1, 1], g)).contains("overflow"));
        // One byte short, at the end and (through the offset) at the start.
        let short = &data[..23];
        assert!(err(VolumeView::contiguous(short, DType::I16, [3, 2, 2], g)).contains("[0, 24)"));
        assert!(err(VolumeView::new(&data, 2, DType::I16, [3, 2, 2], [2, 6, 12], g)).contains("[2, 26)"));
        assert!(err(VolumeView::new(&data, 16, DType::I16, [3, 2, 2], [2, 6, -12], g)).contains("[4, 28)"));
        assert!(err(VolumeView::new(&data, 0, DType::I16, [3, 2, 2], [-2, 6, 12], g)).contains("[-4, 20)"));
        // Overlapping voxels.
        assert!(err(VolumeView::new(&data, 0, DType::I16, [3, 2, 2], [1, 6, 12], g)).contains("smaller than one"));
        assert!(err(VolumeView::new(&data, 0, DType::I16, [3, 2, 2], [2, 6, 0], g)).contains("stride 0 of axis 2"));
        for s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let bad = Geometry { spacing: [1.0, s, 1.0], ..g };
            assert!(err(VolumeView::contiguous(&data, DType::I16, [3, 2, 2], bad)).contains("spacing"));
        }
        let mut bad = g;
        bad.ijk_to_ras[1][3] = f64::NAN;
        assert!(err(VolumeView::contiguous(&data, DType::I16, [3, 2, 2], bad)).contains("non-finite"));
    }
}
