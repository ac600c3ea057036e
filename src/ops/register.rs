//! Intensity-based affine registration of two volumes that carry their own IJK → RAS geometry.
//!
//! Stage order: both volumes become `f32` [`Image`]s → [`Pyramid`]s of block means at the same physical
//! spacings (default 4 mm, then 2 mm) → centre-of-mass initialisation → at the coarsest level a rigid stage
//! (6 dof), then an affine stage (12 dof) at every level, each one a step-halving gradient ascent on the
//! normalised cross-correlation (NCC) of fixed samples against the trilinearly interpolated moving image.
//!
//! Everything happens in world (RAS, mm) coordinates: the result maps a fixed-image world point to the
//! moving-image world point that matches it, so either grid may be oblique, flipped or anisotropic.
//! NCC is invariant to a linear intensity change and tolerates gamma, noise and a smooth bias field; it
//! assumes positively related contrasts (T1 against T1), not T1 against T2.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::volume::{Geometry, VolumeView};

/// A row-major 4×4 matrix.
pub type Mat4 = [[f64; 4]; 4];

/// A 3D affine map (row-major 4×4, last row `0 0 0 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub Mat4);

impl Affine {
    pub const IDENTITY: Affine =
        Affine([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]);

    /// `self ∘ other`: applies `other` first.
    pub fn then_after(&self, other: &Affine) -> Affine {
        let (a, b) = (&self.0, &other.0);
        let mut m = [[0.0; 4]; 4];
        for r in 0..4 {
            for c in 0..4 {
                m[r][c] = (0..4).map(|t| a[r][t] * b[t][c]).sum();
            }
        }
        Affine(m)
    }

    pub fn apply(&self, p: [f64; 3]) -> [f64; 3] {
        let m = &self.0;
        let mut out = [0.0; 3];
        for (r, o) in out.iter_mut().enumerate() {
            *o = m[r][0] * p[0] + m[r][1] * p[1] + m[r][2] * p[2] + m[r][3];
        }
        out
    }

    /// The inverse, or `None` when the linear part is singular.
    pub fn inverse(&self) -> Option<Affine> {
        Geometry { spacing: [1.0; 3], ijk_to_ras: self.0 }.ras_to_ijk().map(Affine)
    }

    /// The linear part's columns' lengths: the voxel spacing when this is an IJK → RAS matrix.
    pub fn column_norms(&self) -> [f64; 3] {
        let m = &self.0;
        [0, 1, 2].map(|c| (m[0][c] * m[0][c] + m[1][c] * m[1][c] + m[2][c] * m[2][c]).sqrt())
    }

    /// Builds `T(c + t) · Rz·Ry·Rx · S · H · T(−c)` from [`Params`]: rotation about, and scaling from, the
    /// centre `c`, so translation and the other parameters barely interact during the search.
    pub fn from_params(p: &Params, centre: [f64; 3]) -> Affine {
        let [tx, ty, tz, ax, ay, az, lx, ly, lz, hxy, hxz, hyz] = p.0;
        let (sx, cx) = ax.sin_cos();
        let (sy, cy) = ay.sin_cos();
        let (sz, cz) = az.sin_cos();
        let rx = [[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]];
        let ry = [[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]];
        let rz = [[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]];
        let sh = [[lx.exp(), 0.0, 0.0], [0.0, ly.exp(), 0.0], [0.0, 0.0, lz.exp()]];
        let h = [[1.0, hxy, hxz], [0.0, 1.0, hyz], [0.0, 0.0, 1.0]];
        let lin = mul3(&mul3(&mul3(&rz, &ry), &mul3(&rx, &sh)), &h);
        let mut m = Affine::IDENTITY.0;
        let t = [tx, ty, tz];
        for r in 0..3 {
            m[r][..3].copy_from_slice(&lin[r]);
            m[r][3] = centre[r] + t[r] - (0..3).map(|k| lin[r][k] * centre[k]).sum::<f64>();
        }
        Affine(m)
    }
}

fn mul3(a: &[[f64; 3]; 3], b: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut m = [[0.0; 3]; 3];
    for r in 0..3 {
        for c in 0..3 {
            m[r][c] = (0..3).map(|t| a[r][t] * b[t][c]).sum();
        }
    }
    m
}

/// The 12 affine parameters: translation (mm), rotations about x, y, z (rad), log-scales, shears xy, xz, yz.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Params(pub [f64; 12]);

/// Degrees of freedom of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dof {
    /// Translation and rotation (6).
    Rigid,
    /// Rigid plus scales and shears (12).
    Affine,
}

impl Dof {
    fn count(self) -> usize {
        match self {
            Dof::Rigid => 6,
            Dof::Affine => 12,
        }
    }
}

/// A dense `f32` volume (i fastest) with its IJK → RAS matrix.
#[derive(Debug, Clone)]
pub struct Image {
    data: Vec<f32>,
    dims: [usize; 3],
    ijk_to_ras: Affine,
    ras_to_ijk: Affine,
}

impl Image {
    pub fn new(data: Vec<f32>, dims: [usize; 3], ijk_to_ras: Mat4) -> Result<Image> {
        if dims.iter().any(|&d| d < 2) {
            return Err(Error::InvalidVolume(format!("dims {dims:?}: registration needs at least 2 voxels per axis")));
        }
        if data.len() != dims.iter().product::<usize>() {
            return Err(Error::ShapeMismatch(format!("{} values for dims {dims:?}", data.len())));
        }
        let ijk_to_ras = Affine(ijk_to_ras);
        let ras_to_ijk = ijk_to_ras
            .inverse()
            .ok_or_else(|| Error::InvalidVolume(format!("the IJK→RAS matrix {:?} is singular", ijk_to_ras.0)))?;
        Ok(Image { data, dims, ijk_to_ras, ras_to_ijk })
    }

    /// Copies a host view (any dtype, any strides) into `f32`, keeping its geometry.
    pub fn from_view(view: &VolumeView<'_>) -> Result<Image> {
        let mut data = Vec::with_capacity(view.dims().iter().product());
        view.for_each(|v| data.push(v as f32));
        Image::new(data, view.dims(), view.geometry().ijk_to_ras)
    }

    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }
    pub fn ijk_to_ras(&self) -> &Affine {
        &self.ijk_to_ras
    }
    pub fn spacing(&self) -> [f64; 3] {
        self.ijk_to_ras.column_norms()
    }

    /// Block means over whole-voxel factors `round(target / spacing)` per axis, so each level is an
    /// anti-aliased copy whose voxel centres stay exactly where the blocks' centres are in world space.
    pub fn downsample(&self, target_mm: f64) -> Image {
        let sp = self.spacing();
        let f = [0, 1, 2].map(|a| ((target_mm / sp[a]).round() as usize).clamp(1, (self.dims[a] / 2).max(1)));
        if f == [1, 1, 1] {
            return self.clone();
        }
        let nd = [0, 1, 2].map(|a| (self.dims[a] / f[a]).max(2));
        let mut sum = vec![0f32; nd[0] * nd[1] * nd[2]];
        let mut count = vec![0u16; sum.len()];
        let [w, h, _] = self.dims;
        for k in 0..(nd[2] * f[2]).min(self.dims[2]) {
            let kk = (k / f[2]).min(nd[2] - 1);
            for j in 0..(nd[1] * f[1]).min(self.dims[1]) {
                let jj = (j / f[1]).min(nd[1] - 1);
                let row = &self.data[(k * h + j) * w..(k * h + j) * w + w];
                let out = (kk * nd[1] + jj) * nd[0];
                for (i, &v) in row.iter().enumerate().take(nd[0] * f[0]) {
                    let ii = (i / f[0]).min(nd[0] - 1);
                    sum[out + ii] += v;
                    count[out + ii] += 1;
                }
            }
        }
        for (s, &c) in sum.iter_mut().zip(&count) {
            *s /= f32::from(c.max(1));
        }
        let m = &self.ijk_to_ras.0;
        let mut g = Affine::IDENTITY.0;
        for r in 0..3 {
            for c in 0..3 {
                g[r][c] = m[r][c] * f[c] as f64;
            }
            g[r][3] = m[r][3] + (0..3).map(|c| m[r][c] * (f[c] as f64 - 1.0) / 2.0).sum::<f64>();
        }
        Image::new(sum, nd, g).expect("a downsampled grid keeps an invertible matrix")
    }

    /// This image seen on another grid: voxel v of the result takes the trilinear value at world point
    /// `map(grid(v))` of this image (0 outside).
    pub fn resample(&self, dims: [usize; 3], ijk_to_ras: Mat4, map: &Affine) -> Result<Image> {
        let n = self.ras_to_ijk.then_after(map).then_after(&Affine(ijk_to_ras)).0;
        let mut data = vec![0f32; dims.iter().product()];
        let mut at = 0;
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                let base = [0, 1, 2].map(|r| n[r][1] * j as f64 + n[r][2] * k as f64 + n[r][3]);
                for i in 0..dims[0] {
                    let u = [0, 1, 2].map(|r| base[r] + n[r][0] * i as f64);
                    data[at] = self.sample(u).unwrap_or(0.0);
                    at += 1;
                }
            }
        }
        Image::new(data, dims, ijk_to_ras)
    }

    /// World centroid of the voxels brighter than the image mean: a start point that ignores dark
    /// background and its noise.
    pub fn bright_centroid(&self) -> [f64; 3] {
        let mean = self.data.iter().map(|&v| f64::from(v)).sum::<f64>() / self.data.len() as f64;
        let (mut acc, mut n) = ([0.0; 3], 0usize);
        let [w, h, _] = self.dims;
        for (idx, _) in self.data.iter().enumerate().filter(|(_, &v)| f64::from(v) > mean) {
            let ijk = [idx % w, (idx / w) % h, idx / (w * h)];
            for a in 0..3 {
                acc[a] += ijk[a] as f64;
            }
            n += 1;
        }
        let c = acc.map(|s| s / n.max(1) as f64);
        self.ijk_to_ras.apply(c)
    }

    /// Corner indices and fractions of the trilinear cell holding index-space point `u`.
    #[inline]
    fn cell(&self, u: [f64; 3]) -> Option<([usize; 3], [f32; 3])> {
        let mut i0 = [0usize; 3];
        let mut fr = [0f32; 3];
        for a in 0..3 {
            let hi = (self.dims[a] - 1) as f64;
            if !(u[a] >= 0.0 && u[a] <= hi) {
                return None;
            }
            let fl = u[a].floor().min(hi - 1.0);
            i0[a] = fl as usize;
            fr[a] = (u[a] - fl) as f32;
        }
        Some((i0, fr))
    }

    #[inline]
    fn corners(&self, i0: [usize; 3]) -> [f32; 8] {
        let [w, h, _] = self.dims;
        let b = (i0[2] * h + i0[1]) * w + i0[0];
        let (sy, sz) = (w, w * h);
        let d = &self.data;
        [d[b], d[b + 1], d[b + sy], d[b + sy + 1], d[b + sz], d[b + sz + 1], d[b + sz + sy], d[b + sz + sy + 1]]
    }

    /// Trilinear value at index-space point `u`; `None` outside the grid.
    #[inline]
    pub fn sample(&self, u: [f64; 3]) -> Option<f32> {
        let (i0, [fx, fy, fz]) = self.cell(u)?;
        let c = self.corners(i0);
        let x00 = c[0] + fx * (c[1] - c[0]);
        let x10 = c[2] + fx * (c[3] - c[2]);
        let x01 = c[4] + fx * (c[5] - c[4]);
        let x11 = c[6] + fx * (c[7] - c[6]);
        let y0 = x00 + fy * (x10 - x00);
        let y1 = x01 + fy * (x11 - x01);
        Some(y0 + fz * (y1 - y0))
    }

    /// Trilinear value and its exact index-space gradient at `u`.
    #[inline]
    fn sample_grad(&self, u: [f64; 3]) -> Option<(f32, [f32; 3])> {
        let (i0, [fx, fy, fz]) = self.cell(u)?;
        let c = self.corners(i0);
        let (gy, gz) = (1.0 - fy, 1.0 - fz);
        let x00 = c[0] + fx * (c[1] - c[0]);
        let x10 = c[2] + fx * (c[3] - c[2]);
        let x01 = c[4] + fx * (c[5] - c[4]);
        let x11 = c[6] + fx * (c[7] - c[6]);
        let y0 = x00 + fy * (x10 - x00);
        let y1 = x01 + fy * (x11 - x01);
        let dx = gy * gz * (c[1] - c[0]) + fy * gz * (c[3] - c[2]) + gy * fz * (c[5] - c[4]) + fy * fz * (c[7] - c[6]);
        let dy = gz * (x10 - x00) + fz * (x11 - x01);
        let dz = y1 - y0;
        Some((y0 + fz * (y1 - y0), [dx, dy, dz]))
    }
}

/// An image at several physical spacings, coarse to fine.
#[derive(Debug, Clone)]
pub struct Pyramid {
    levels: Vec<Image>,
    levels_mm: Vec<f64>,
}

impl Pyramid {
    /// Each level is a block-mean of the full image (not of the previous level), so a 1.2 mm grid gives
    /// 3.6 mm and 2.4 mm levels for the default 4 and 2 mm.
    pub fn new(image: &Image, levels_mm: &[f64]) -> Result<Pyramid> {
        if levels_mm.is_empty() || levels_mm.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(Error::InvalidArgument(format!("pyramid spacings {levels_mm:?} must be positive mm")));
        }
        Ok(Pyramid { levels: levels_mm.iter().map(|&s| image.downsample(s)).collect(), levels_mm: levels_mm.to_vec() })
    }
    pub fn levels(&self) -> &[Image] {
        &self.levels
    }
    pub fn levels_mm(&self) -> &[f64] {
        &self.levels_mm
    }
}

/// How [`register`] searches.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RegisterOptions {
    /// Pyramid spacings, coarse to fine (mm); used by callers building both pyramids.
    pub levels_mm: Vec<f64>,
    /// A rigid stage at the coarsest level before the affine ones.
    pub rigid_first: bool,
    /// Cap on accepted-or-rejected steps per stage.
    pub max_iterations: usize,
    /// Cap on fixed-image samples per level (picked pseudo-randomly, seeded, so runs repeat exactly).
    pub samples: usize,
    /// Worker threads for the metric (0: all available cores).
    pub threads: usize,
    /// Bound on each axis's scale change, as a factor (scales stay in [1/f, f]): a brain template fitted
    /// to a whole head, skull and scalp included, otherwise shrinks the head onto the brain.
    pub max_scale: f64,
    /// Bound on each shear parameter.
    pub max_shear: f64,
}

impl Default for RegisterOptions {
    fn default() -> Self {
        RegisterOptions {
            levels_mm: vec![4.0, 2.0],
            rigid_first: true,
            max_iterations: 200,
            samples: 60_000,
            threads: 0,
            max_scale: 1.25,
            max_shear: 0.2,
        }
    }
}

impl RegisterOptions {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_levels_mm(mut self, levels: &[f64]) -> Self {
        self.levels_mm = levels.to_vec();
        self
    }
    pub fn with_rigid_first(mut self, yes: bool) -> Self {
        self.rigid_first = yes;
        self
    }
    pub fn with_max_iterations(mut self, n: usize) -> Self {
        self.max_iterations = n;
        self
    }
    pub fn with_samples(mut self, n: usize) -> Self {
        self.samples = n;
        self
    }
    pub fn with_threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }
    pub fn with_bounds(mut self, max_scale: f64, max_shear: f64) -> Self {
        self.max_scale = max_scale;
        self.max_shear = max_shear;
        self
    }
}

/// What one stage did.
#[derive(Debug, Clone, PartialEq)]
pub struct StageReport {
    /// The pyramid spacing the stage ran at (mm).
    pub level_mm: f64,
    pub dof: Dof,
    /// Metric evaluations (each one value and gradient).
    pub evaluations: usize,
    pub samples: usize,
    /// NCC at the stage's end.
    pub ncc: f64,
    pub elapsed: Duration,
}

/// The result of [`register`].
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// Maps a fixed-image world point (RAS mm) to the moving-image world point matching it.
    pub fixed_to_moving: Affine,
    pub params: Params,
    /// The rotation/scale centre of `params` (the fixed image's bright centroid).
    pub centre: [f64; 3],
    /// NCC at the finest level.
    pub ncc: f64,
    pub stages: Vec<StageReport>,
    pub elapsed: Duration,
}

/// Registers `moving` onto `fixed`: both pyramids must have been built with the same spacings.
pub fn register(fixed: &Pyramid, moving: &Pyramid, opts: &RegisterOptions) -> Result<Registration> {
    let start = Instant::now();
    if fixed.levels_mm != moving.levels_mm {
        return Err(Error::InvalidArgument(format!(
            "pyramid spacings differ: fixed {:?} mm, moving {:?} mm",
            fixed.levels_mm, moving.levels_mm
        )));
    }
    if !(opts.max_scale >= 1.0 && opts.max_shear >= 0.0) {
        return Err(Error::InvalidArgument(format!(
            "bounds max_scale {} (must be >= 1) and max_shear {} (must be >= 0)",
            opts.max_scale, opts.max_shear
        )));
    }
    if opts.samples < 100 {
        return Err(Error::InvalidArgument(format!("{} samples per level is too few (at least 100)", opts.samples)));
    }
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let finest = fixed.levels.last().expect("a pyramid has a level");
    let centre = finest.bright_centroid();
    let target = moving.levels.last().expect("a pyramid has a level").bright_centroid();
    let mut p = Params::default();
    for a in 0..3 {
        p.0[a] = target[a] - centre[a];
    }
    let mut stages = Vec::new();
    let mut ncc = f64::NAN;
    for (level, (f, m)) in fixed.levels.iter().zip(&moving.levels).enumerate() {
        let samples = Samples::pick(f, opts.samples, level as u64);
        let radius = samples.radius(centre);
        let mut dofs = vec![Dof::Affine];
        if level == 0 && opts.rigid_first {
            dofs.insert(0, Dof::Rigid);
        }
        for dof in dofs {
            let t0 = Instant::now();
            let bounds = (opts.max_scale.ln(), opts.max_shear);
            let problem = Problem { samples: &samples, moving: m, centre, radius, threads, bounds };
            let step = fixed.levels_mm[level];
            let (best, value, evaluations) = problem.ascend(p, dof, step, opts.max_iterations)?;
            p = best;
            ncc = value;
            stages.push(StageReport {
                level_mm: step,
                dof,
                evaluations,
                samples: samples.points.len(),
                ncc,
                elapsed: t0.elapsed(),
            });
        }
    }
    Ok(Registration {
        fixed_to_moving: Affine::from_params(&p, centre),
        params: p,
        centre,
        ncc,
        stages,
        elapsed: start.elapsed(),
    })
}

/// Fixed-image sample points: world position and value.
struct Samples {
    points: Vec<[f64; 4]>,
}

impl Samples {
    fn pick(image: &Image, cap: usize, seed: u64) -> Samples {
        let n = image.data.len();
        // A fixed-point threshold on a xorshift stream: every voxel is kept with probability cap/n,
        // without the aliasing a regular stride would have against the anatomy.
        let keep = if n <= cap { u64::MAX } else { ((cap as f64 / n as f64) * u64::MAX as f64) as u64 };
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xA24B_AED4_963E_E407);
        let [w, h, _] = image.dims;
        let mut points = Vec::with_capacity(cap.min(n) + cap / 8);
        for (idx, &v) in image.data.iter().enumerate() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state > keep {
                continue;
            }
            let ijk = [(idx % w) as f64, ((idx / w) % h) as f64, (idx / (w * h)) as f64];
            let x = image.ijk_to_ras.apply(ijk);
            points.push([x[0], x[1], x[2], f64::from(v)]);
        }
        Samples { points }
    }

    /// RMS distance of the samples from `c`: the lever arm that converts rotations, log-scales and shears
    /// into millimetres of displacement, so one step length fits every parameter.
    fn radius(&self, c: [f64; 3]) -> f64 {
        let s: f64 = self.points.iter().map(|p| (0..3).map(|a| (p[a] - c[a]).powi(2)).sum::<f64>()).sum();
        (s / self.points.len().max(1) as f64).sqrt().max(1.0)
    }
}

/// Running sums of one metric evaluation; `g*` hold, per entry (r, c) of the 3×4 affine, the
/// sample's moving-image world gradient r times its homogeneous fixed coordinate c.
#[derive(Clone, Copy)]
struct Sums {
    n: f64,
    f: f64,
    m: f64,
    ff: f64,
    mm: f64,
    fm: f64,
    g: [f64; 12],
    fg: [f64; 12],
    mg: [f64; 12],
}

impl Sums {
    const ZERO: Sums =
        Sums { n: 0.0, f: 0.0, m: 0.0, ff: 0.0, mm: 0.0, fm: 0.0, g: [0.0; 12], fg: [0.0; 12], mg: [0.0; 12] };

    fn add(&mut self, o: &Sums) {
        self.n += o.n;
        self.f += o.f;
        self.m += o.m;
        self.ff += o.ff;
        self.mm += o.mm;
        self.fm += o.fm;
        for e in 0..12 {
            self.g[e] += o.g[e];
            self.fg[e] += o.fg[e];
            self.mg[e] += o.mg[e];
        }
    }

    /// NCC and its gradient with respect to the 12 entries of the affine's top 3 rows.
    fn ncc(&self) -> Option<(f64, [f64; 12])> {
        if self.n < 10.0 {
            return None;
        }
        let (fb, mb) = (self.f / self.n, self.m / self.n);
        let sff = self.ff - self.n * fb * fb;
        let smm = self.mm - self.n * mb * mb;
        let sfm = self.fm - self.n * fb * mb;
        if !(sff > 0.0 && smm > 0.0) {
            return None;
        }
        let norm = (sff * smm).sqrt();
        let v = sfm / norm;
        let mut grad = [0.0; 12];
        for e in 0..12 {
            grad[e] = (self.fg[e] - fb * self.g[e]) / norm - v * (self.mg[e] - mb * self.g[e]) / smm;
        }
        Some((v, grad))
    }
}

struct Problem<'a> {
    samples: &'a Samples,
    moving: &'a Image,
    centre: [f64; 3],
    radius: f64,
    threads: usize,
    /// Bounds on |log-scale| and |shear|.
    bounds: (f64, f64),
}

impl Problem<'_> {
    /// NCC at `p` and its gradient with respect to `p`; `None` when too few samples overlap.
    fn evaluate(&self, p: &Params, dof: Dof) -> Option<(f64, [f64; 12])> {
        let a = Affine::from_params(p, self.centre);
        let b = self.moving.ras_to_ijk.then_after(&a).0;
        let j = &self.moving.ras_to_ijk.0;
        let chunk = self.samples.points.len().div_ceil(self.threads.max(1)).max(1);
        let partial = |pts: &[[f64; 4]]| {
            let mut s = Sums::ZERO;
            for pt in pts {
                let u = [0, 1, 2].map(|r| b[r][0] * pt[0] + b[r][1] * pt[1] + b[r][2] * pt[2] + b[r][3]);
                let Some((mv, gi)) = self.moving.sample_grad(u) else { continue };
                let (f, m) = (pt[3], f64::from(mv));
                let gi = gi.map(f64::from);
                let gw = [0, 1, 2].map(|c| j[0][c] * gi[0] + j[1][c] * gi[1] + j[2][c] * gi[2]);
                s.n += 1.0;
                s.f += f;
                s.m += m;
                s.ff += f * f;
                s.mm += m * m;
                s.fm += f * m;
                let xh = [pt[0], pt[1], pt[2], 1.0];
                for r in 0..3 {
                    for c in 0..4 {
                        let g = gw[r] * xh[c];
                        s.g[r * 4 + c] += g;
                        s.fg[r * 4 + c] += f * g;
                        s.mg[r * 4 + c] += m * g;
                    }
                }
            }
            s
        };
        let mut total = Sums::ZERO;
        if self.threads <= 1 {
            total = partial(&self.samples.points);
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> =
                    self.samples.points.chunks(chunk).map(|c| scope.spawn(move || partial(c))).collect();
                for h in handles {
                    total.add(&h.join().expect("a metric worker does not panic"));
                }
            });
        }
        let (v, d_entries) = total.ncc()?;
        // Chain rule through the parametrisation, by central differences on the matrix alone (cheap:
        // no image access), so the parametrisation can change without re-deriving the gradient.
        let mut grad = [0.0; 12];
        for k in 0..dof.count() {
            let hstep = 1e-6;
            let (mut hi, mut lo) = (*p, *p);
            hi.0[k] += hstep;
            lo.0[k] -= hstep;
            let (ah, al) = (Affine::from_params(&hi, self.centre).0, Affine::from_params(&lo, self.centre).0);
            let mut d = 0.0;
            for r in 0..3 {
                for c in 0..4 {
                    d += d_entries[r * 4 + c] * (ah[r][c] - al[r][c]) / (2.0 * hstep);
                }
            }
            grad[k] = d;
        }
        Some((v, grad))
    }

    /// Step-halving gradient ascent in millimetre-scaled parameters: a step of length `step` moves sample
    /// points by about `step` mm whichever parameter it changes. Returns the best parameters, their NCC
    /// and the number of evaluations.
    fn ascend(&self, start: Params, dof: Dof, step: f64, max_iterations: usize) -> Result<(Params, f64, usize)> {
        let scale = |k: usize| if k < 3 { 1.0 } else { self.radius };
        let n = dof.count();
        let (mut value, mut grad) = self.evaluate(&start, dof).ok_or_else(|| {
            Error::InvalidVolume(
                "the volumes do not overlap at the initial alignment (or one of them is constant)".into(),
            )
        })?;
        let mut p = start;
        let mut length = step;
        let min_length = step * 0.01;
        let mut evaluations = 1;
        while evaluations < max_iterations && length >= min_length {
            let scaled: Vec<f64> = (0..n).map(|k| grad[k] / scale(k)).collect();
            let norm = scaled.iter().map(|g| g * g).sum::<f64>().sqrt();
            if norm == 0.0 || !norm.is_finite() {
                break;
            }
            let mut cand = p;
            for k in 0..n {
                cand.0[k] += length * scaled[k] / norm / scale(k);
                let bound = match k {
                    6..=8 => self.bounds.0,
                    9..=11 => self.bounds.1,
                    _ => f64::INFINITY,
                };
                cand.0[k] = cand.0[k].clamp(-bound, bound);
            }
            evaluations += 1;
            match self.evaluate(&cand, dof) {
                Some((v, g)) if v > value => {
                    p = cand;
                    value = v;
                    grad = g;
                    length = (length * 1.25).min(step);
                }
                _ => length *= 0.5,
            }
        }
        Ok((p, value, evaluations))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth blob with asymmetric lobes (so rotations are observable), on a 2 mm grid.
    fn blob(dims: [usize; 3], m: Mat4) -> Image {
        let g = Affine(m);
        let mut data = Vec::new();
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let x = g.apply([i as f64, j as f64, k as f64]);
                    let e = |c: [f64; 3], s: f64| {
                        (-((x[0] - c[0]).powi(2) + (x[1] - c[1]).powi(2) + (x[2] - c[2]).powi(2)) / (2.0 * s * s)).exp()
                    };
                    data.push(
                        (100.0 * e([0.0, 0.0, 0.0], 18.0) + 60.0 * e([14.0, 8.0, -4.0], 7.0)
                            - 40.0 * e([-10.0, -6.0, 9.0], 6.0)) as f32,
                    );
                }
            }
        }
        Image::new(data, dims, m).unwrap()
    }

    fn grid2mm() -> Mat4 {
        [[2.0, 0.0, 0.0, -40.0], [0.0, 2.0, 0.0, -40.0], [0.0, 0.0, 2.0, -40.0], [0.0, 0.0, 0.0, 1.0]]
    }

    #[test]
    fn params_build_rotations_about_the_centre() {
        let c = [10.0, -5.0, 3.0];
        assert_eq!(Affine::from_params(&Params::default(), c), Affine::IDENTITY);
        let mut p = Params::default();
        p.0[5] = std::f64::consts::FRAC_PI_2;
        let a = Affine::from_params(&p, c);
        // The centre stays put; a point 1 mm along +x from it goes to +y.
        let q = a.apply(c);
        let r = a.apply([11.0, -5.0, 3.0]);
        for (got, want) in [(q, c), (r, [10.0, -4.0, 3.0])] {
            for t in 0..3 {
                assert!((got[t] - want[t]).abs() < 1e-12, "{got:?} vs {want:?}");
            }
        }
        let inv = a.inverse().unwrap();
        let back = inv.apply(r);
        assert!((back[0] - 11.0).abs() < 1e-12);
    }

    #[test]
    fn trilinear_gradient_matches_finite_differences() {
        let img = blob([20, 18, 16], grid2mm());
        for u in [[5.3, 7.7, 3.2], [10.5, 2.25, 9.9], [1.01, 15.5, 14.4]] {
            let (v, g) = img.sample_grad(u).unwrap();
            assert!((v - img.sample(u).unwrap()).abs() < 1e-4);
            for a in 0..3 {
                let (mut hi, mut lo) = (u, u);
                hi[a] += 1e-3;
                lo[a] -= 1e-3;
                let fd = (img.sample(hi).unwrap() - img.sample(lo).unwrap()) / 2e-3;
                assert!((fd - g[a]).abs() < 1e-2 * (1.0 + fd.abs()), "axis {a}: {fd} vs {}", g[a]);
            }
        }
        assert_eq!(img.sample([-0.01, 0.0, 0.0]), None);
        assert_eq!(img.sample([19.0, 17.0, 15.0]), Some(*img.data.last().unwrap()));
    }

    #[test]
    fn downsampling_keeps_world_positions() {
        let img = blob([40, 40, 40], grid2mm());
        let half = img.downsample(4.0);
        assert_eq!(half.dims(), [20, 20, 20]);
        assert_eq!(half.spacing(), [4.0, 4.0, 4.0]);
        // The first coarse voxel is the mean of the 2×2×2 block whose centre is at world −39 mm.
        assert_eq!(half.ijk_to_ras().apply([0.0; 3]), [-39.0, -39.0, -39.0]);
        let c0 = img.bright_centroid();
        let c1 = half.bright_centroid();
        for a in 0..3 {
            assert!((c0[a] - c1[a]).abs() < 0.5, "{c0:?} vs {c1:?}");
        }
    }

    #[test]
    fn registration_recovers_a_known_rigid_motion_across_a_flipped_grid() {
        let moving = blob([40, 40, 40], grid2mm());
        // The fixed grid is LAS-stored (i runs right to left) at 2.5 mm: only world coordinates match.
        let fixed_grid = [[-2.5, 0.0, 0.0, 40.0], [0.0, 2.5, 0.0, -40.0], [0.0, 0.0, 2.5, -40.0], [0.0, 0.0, 0.0, 1.0]];
        let mut truth = Params::default();
        truth.0[..6].copy_from_slice(&[4.0, -3.0, 2.0, 0.12, -0.08, 0.15]);
        let t = Affine::from_params(&truth, [0.0; 3]);
        let fixed = moving.resample([32, 32, 32], fixed_grid, &t).unwrap();
        let opts = RegisterOptions::new().with_levels_mm(&[5.0, 2.5]).with_threads(2);
        let fp = Pyramid::new(&fixed, &opts.levels_mm).unwrap();
        let mp = Pyramid::new(&moving, &opts.levels_mm).unwrap();
        let reg = register(&fp, &mp, &opts).unwrap();
        let mut worst: f64 = 0.0;
        for p in [[20.0, 0.0, 0.0], [0.0, 20.0, 0.0], [0.0, 0.0, 20.0], [-15.0, 10.0, 5.0]] {
            let (a, b) = (reg.fixed_to_moving.apply(p), t.apply(p));
            worst = worst.max((0..3).map(|k| (a[k] - b[k]).powi(2)).sum::<f64>().sqrt());
        }
        assert!(worst < 1.0, "displacement error {worst} mm, stages {:?}", reg.stages);
        assert!(reg.ncc > 0.95, "{}", reg.ncc);
    }

    #[test]
    fn scale_bounds_hold_against_a_larger_motion() {
        let moving = blob([40, 40, 40], grid2mm());
        let mut truth = Params::default();
        truth.0[6..9].copy_from_slice(&[0.4f64.ln(), 0.0, 0.0]); // fixed x shrinks 2.5× into moving
        let t = Affine::from_params(&truth, [0.0; 3]);
        let fixed = moving.resample([40, 40, 40], grid2mm(), &t).unwrap();
        let opts = RegisterOptions::new().with_levels_mm(&[4.0]).with_threads(1);
        let (fp, mp) =
            (Pyramid::new(&fixed, &opts.levels_mm).unwrap(), Pyramid::new(&moving, &opts.levels_mm).unwrap());
        let reg = register(&fp, &mp, &opts).unwrap();
        let s = reg.fixed_to_moving.column_norms();
        // The optimum is outside the bounds, so the search must end on the bound, not beyond it.
        assert!(s[0] >= 1.0 / 1.25 - 1e-9 && s[0] < 0.85, "x scale {}", s[0]);
        let loose = opts.clone().with_bounds(4.0, 0.2);
        let reg = register(&fp, &mp, &loose).unwrap();
        assert!(reg.fixed_to_moving.column_norms()[0] < 0.6, "{:?}", reg.fixed_to_moving.column_norms());
        assert!(register(&fp, &mp, &opts.with_bounds(0.9, 0.0)).is_err());
    }

    #[test]
    fn mismatched_pyramids_and_degenerate_images_are_refused() {
        let img = blob([20, 20, 20], grid2mm());
        let a = Pyramid::new(&img, &[4.0]).unwrap();
        let b = Pyramid::new(&img, &[4.0, 2.0]).unwrap();
        let e = register(&a, &b, &RegisterOptions::default()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(ref m) if m.contains("differ")), "{e}");
        assert!(Image::new(vec![0.0; 20], [20, 1, 1], grid2mm()).is_err());
        assert!(Image::new(vec![0.0; 7], [2, 2, 2], grid2mm()).is_err());
        let flat = Image::new(vec![1.0; 8000], [20, 20, 20], grid2mm()).unwrap();
        let f = Pyramid::new(&flat, &[4.0]).unwrap();
        assert!(matches!(register(&f, &a, &RegisterOptions::default()), Err(Error::InvalidVolume(_))));
        assert!(Pyramid::new(&img, &[]).is_err());
    }
}
