//! Typed, strided views of a host's volume, and the geometry that goes with it.
//!
//! Axis convention everywhere in the engine: i is the fastest axis of the stored array (columns of a slice),
//! j the rows, k the slices. A slice k is the 2D image with rows = j and columns = i, as the reference
//! pipeline sees it (METHODS §0.4c).

pub mod intensity;
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
        if p0.iter().chain(&p1).any(|v| !v.is_finite()) {
            return Err(Error::InvalidPrompt(format!("RAS box {p0:?}..{p1:?} has a non-finite coordinate")));
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
                    "RAS box {p0:?}..{p1:?} lies outside the volume on axis {a} (voxels {l}..{h} of {})",
                    dims[a]
                )));
            }
            b.min[a] = l.max(0.0) as usize;
            b.max[a] = (h as usize).min(dims[a] - 1);
        }
        Ok(b)
    }
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
