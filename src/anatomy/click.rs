//! From one click to a box. LiteMedSAM was trained on boxes: a positive point alone gives it nothing to
//! work with, so the object around the click is grown first and its extent on the click's slice becomes
//! the box the 3D engine starts from (it walks outward from that slice until the object ends).
//!
//! The growth runs on the click's slice of the session's 8-bit model image (CT under its window, MR after
//! its percentile mapping), inside a disc of `radius_mm` around the click:
//! 1. the intensity window is the click neighbourhood's median ± a multiple of its robust spread (MAD),
//!    clamped to `tolerance`, or, for a lesion in an air-filled organ, "anything denser than air";
//! 2. a 4-connected flood fill from the click within the window (and within `bound`, the organ it must
//!    stay in, when there is one);
//! 3. an opening of `open_mm` (or the largest one the click survives) cuts the thin bridges through which
//!    a fill leaks into a neighbour of the same intensity; the part that holds the click is kept.

use crate::anatomy::organs::bbox_3d;
use crate::ops::mask::{dilate_box, erode_box};
use crate::volume::{BoxIjk, U8Volume};

/// What is being grown: an organ, or a lesion (smaller and usually darker or brighter than what holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Organ,
    Lesion,
    /// A lesion inside air (a lung nodule): everything denser than air around the click.
    LesionInAir,
}

/// Growth settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrowOptions {
    /// The disc the growth stays in (mm from the click).
    pub radius_mm: f64,
    /// Half-width of the intensity window, in 8-bit levels: the click's robust spread × `spread`, clamped
    /// to these.
    pub tolerance: [u8; 2],
    pub spread: f64,
    /// The opening that cuts bridges (mm, per axis rounded to voxels).
    pub open_mm: f64,
    /// The neighbourhood whose median and spread set the window (mm).
    pub sample_mm: f64,
}

impl GrowOptions {
    pub fn for_target(t: Target) -> GrowOptions {
        match t {
            Target::Organ => {
                GrowOptions { radius_mm: 90.0, tolerance: [16, 40], spread: 4.0, open_mm: 4.0, sample_mm: 4.0 }
            }
            Target::Lesion | Target::LesionInAir => {
                GrowOptions { radius_mm: 45.0, tolerance: [12, 40], spread: 3.0, open_mm: 2.0, sample_mm: 2.5 }
            }
        }
    }
}

/// The 8-bit level below which a voxel counts as air under the CT soft-tissue window (level 40, width
/// 400 maps −160 HU to 0; −130 HU is about 19).
pub const AIR_LEVEL: u8 = 19;

/// A grown object.
#[derive(Debug, Clone, PartialEq)]
pub struct Grown {
    /// The box to prompt with (input grid, inclusive).
    pub bbox: BoxIjk,
    /// Voxels grown.
    pub voxels: usize,
    /// The intensity window used, inclusive.
    pub window: [u8; 2],
}

/// Grows the object under the click `at` of `image` (voxel size `spacing` mm) on its slice across `axis`
/// (the propagation axis), staying inside `bound` (input grid, nonzero = allowed) when given; the box is
/// that slice's. None when the click lies outside `bound`.
///
/// # Panics
/// If `axis > 2`, `at` lies outside the image, or `bound` does not match it.
pub fn grow(
    image: &U8Volume,
    spacing: [f64; 3],
    at: [usize; 3],
    axis: usize,
    bound: Option<&[u8]>,
    target: Target,
    opts: &GrowOptions,
) -> Option<Grown> {
    let dims = image.dims;
    assert!(axis < 3, "propagation axis {axis} is not 0, 1 or 2");
    assert!((0..3).all(|a| at[a] < dims[a]), "click {at:?} outside dims {dims:?}");
    let n: usize = dims.iter().product();
    if let Some(b) = bound {
        assert_eq!(b.len(), n, "bound does not match the image");
    }
    let index = |p: [usize; 3]| (p[2] * dims[1] + p[1]) * dims[0] + p[0];
    if bound.is_some_and(|b| b[index(at)] == 0) {
        return None;
    }
    let spacing = spacing.map(|s| if s.is_finite() && s > 0.0 { s } else { 1.0 });
    // The sub-volume the disc fits in: one slice across the axis.
    let reach = |mm: f64| spacing.map(|s| (mm / s).floor() as usize);
    let mut r = reach(opts.radius_mm);
    r[axis] = 0;
    let lo: [usize; 3] = std::array::from_fn(|a| at[a].saturating_sub(r[a]));
    let hi: [usize; 3] = std::array::from_fn(|a| (at[a] + r[a]).min(dims[a] - 1));
    let sub: [usize; 3] = std::array::from_fn(|a| hi[a] - lo[a] + 1);

    let window = match target {
        Target::LesionInAir => [AIR_LEVEL + 1, u8::MAX],
        Target::Organ | Target::Lesion => {
            let mut s = reach(opts.sample_mm).map(|v| v.max(1));
            s[axis] = 0;
            let mut values = Vec::new();
            for k in at[2].saturating_sub(s[2])..=(at[2] + s[2]).min(dims[2] - 1) {
                for j in at[1].saturating_sub(s[1])..=(at[1] + s[1]).min(dims[1] - 1) {
                    for i in at[0].saturating_sub(s[0])..=(at[0] + s[0]).min(dims[0] - 1) {
                        values.push(image.data[index([i, j, k])]);
                    }
                }
            }
            let m = median(&mut values);
            let mut dev: Vec<u8> = values.iter().map(|&v| v.abs_diff(m)).collect();
            let mad = median(&mut dev) as f64 * 1.4826;
            let t = ((opts.spread * mad).round() as u8).clamp(opts.tolerance[0], opts.tolerance[1]);
            [m.saturating_sub(t), m.saturating_add(t)]
        }
    };

    // Allowed voxels of the sub-volume: in the window, the disc and the bound.
    let sn = sub.iter().product::<usize>();
    let mut allowed = vec![0u8; sn];
    let mut s = 0;
    for k in lo[2]..=hi[2] {
        for j in lo[1]..=hi[1] {
            let row = index([lo[0], j, k]);
            for (x, i) in (lo[0]..=hi[0]).enumerate() {
                let e = [i, j, k];
                let q: f64 = (0..3)
                    .map(|a| {
                        let d = (e[a] as f64 - at[a] as f64) * spacing[a] / opts.radius_mm;
                        d * d
                    })
                    .sum();
                let v = image.data[row + x];
                allowed[s] =
                    u8::from(q <= 1.0 && v >= window[0] && v <= window[1] && bound.is_none_or(|b| b[row + x] != 0));
                s += 1;
            }
        }
    }
    let local = [at[0] - lo[0], at[1] - lo[1], at[2] - lo[2]];
    let sidx = |p: [usize; 3]| (p[2] * sub[1] + p[1]) * sub[0] + p[0];
    let mut region = flood(&allowed, sub, local);
    // The opening: erode, keep what still holds the click, dilate back inside the grown region. When the
    // click sits on a part thinner than the opening (a vessel), the largest opening it survives is used.
    let full = spacing.map(|sp| (opts.open_mm / sp).round() as usize);
    let steps = (0..3).filter(|&a| a != axis).map(|a| full[a]).max().unwrap_or(0);
    for step in (1..=steps).rev() {
        let o: [usize; 3] =
            std::array::from_fn(|a| if a == axis { 0 } else { (full[a] * step).div_ceil(steps.max(1)) });
        let mut core = region.clone();
        erode_box(&mut core, sub, o);
        if core[sidx(local)] != 0 {
            let mut kept = flood(&core, sub, local);
            dilate_box(&mut kept, sub, o);
            region.iter_mut().zip(&kept).for_each(|(a, &b)| *a &= b);
            break;
        }
    }
    if region[sidx(local)] == 0 {
        // The click's own voxel is outside the window (an edge, noise): grow nothing, prompt a small box.
        region.fill(0);
        region[sidx(local)] = 1;
    }
    let voxels = region.iter().filter(|&&v| v != 0).count();

    let extent = bbox_3d(&region, sub).expect("the region holds the click");
    // A box at least 5 mm wide in plane: a one-voxel box gives LiteMedSAM nothing to see either.
    let min_half = reach(2.5);
    let mut bmin = [0usize; 3];
    let mut bmax = [0usize; 3];
    for a in 0..3 {
        let (g0, g1) = (extent.min[a] + lo[a], extent.max[a] + lo[a]);
        let c = (g0 + g1) / 2;
        bmin[a] = g0.min(c.saturating_sub(min_half[a]));
        bmax[a] = g1.max((c + min_half[a]).min(dims[a] - 1));
        if a == axis {
            (bmin[a], bmax[a]) = (at[a], at[a]);
        }
    }
    Some(Grown { bbox: BoxIjk { min: bmin, max: bmax }, voxels, window })
}

/// The face-connected component of `allowed` (`dims`, i fastest) holding `seed`, as 0/1 (4-connected on
/// a one-voxel-thick volume).
fn flood(allowed: &[u8], dims: [usize; 3], seed: [usize; 3]) -> Vec<u8> {
    let idx = |p: [usize; 3]| (p[2] * dims[1] + p[1]) * dims[0] + p[0];
    let mut out = vec![0u8; allowed.len()];
    if allowed[idx(seed)] == 0 {
        return out;
    }
    let mut stack = vec![seed];
    out[idx(seed)] = 1;
    while let Some(p) = stack.pop() {
        for a in 0..3 {
            for up in [false, true] {
                let mut q = p;
                if up {
                    if p[a] + 1 >= dims[a] {
                        continue;
                    }
                    q[a] += 1;
                } else {
                    if p[a] == 0 {
                        continue;
                    }
                    q[a] -= 1;
                }
                let x = idx(q);
                if allowed[x] != 0 && out[x] == 0 {
                    out[x] = 1;
                    stack.push(q);
                }
            }
        }
    }
    out
}

fn median(v: &mut [u8]) -> u8 {
    let mid = v.len() / 2;
    *v.select_nth_unstable(mid).1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bright ball of radius 6 (value 150) on a noisy-free background of 40, with a second ball joined
    /// to it by a one-voxel bridge.
    fn balls() -> U8Volume {
        let dims = [48, 32, 20];
        let mut v = U8Volume::zeros(dims);
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let d1 = (i as f64 - 12.0).powi(2) + (j as f64 - 16.0).powi(2) + (k as f64 - 10.0).powi(2);
                    let d2 = (i as f64 - 34.0).powi(2) + (j as f64 - 16.0).powi(2) + (k as f64 - 10.0).powi(2);
                    let bridge = (18..=28).contains(&i) && j == 16 && k == 10;
                    v.data[(k * dims[1] + j) * dims[0] + i] = if d1 <= 36.0 || d2 <= 36.0 || bridge { 150 } else { 40 };
                }
            }
        }
        v
    }

    #[test]
    fn the_ball_under_the_click_is_grown_and_the_bridge_cut() {
        let v = balls();
        let opts = GrowOptions { radius_mm: 40.0, tolerance: [12, 40], spread: 3.0, open_mm: 1.0, sample_mm: 1.0 };
        let g = grow(&v, [1.0; 3], [12, 16, 10], 2, None, Target::Organ, &opts).unwrap();
        // On the click's slice the ball spans 6..=18 in i and j; a 3×3 opening trims its one-voxel tips.
        assert_eq!(g.bbox, BoxIjk { min: [7, 11, 10], max: [17, 21, 10] });
        assert_eq!(g.window, [138, 162]);
        // Without the opening the fill runs over the bridge into the second ball.
        let leaky = GrowOptions { open_mm: 0.0, ..opts };
        let g = grow(&v, [1.0; 3], [12, 16, 10], 2, None, Target::Organ, &leaky).unwrap();
        assert_eq!((g.bbox.min[0], g.bbox.max[0]), (6, 40));
        // A bound stops it as well, and a click outside the bound grows nothing.
        let mut bound = vec![1u8; v.data.len()];
        for (x, b) in bound.iter_mut().enumerate() {
            if x % 48 >= 20 {
                *b = 0;
            }
        }
        let g = grow(&v, [1.0; 3], [12, 16, 10], 2, Some(&bound), Target::Organ, &leaky).unwrap();
        assert_eq!((g.bbox.min[0], g.bbox.max[0]), (6, 19));
        assert!(grow(&v, [1.0; 3], [34, 16, 10], 2, Some(&bound), Target::Organ, &leaky).is_none());
    }

    #[test]
    fn the_radius_and_the_axis_shape_the_box() {
        let v = balls();
        // A 3 mm disc on a 1 mm grid: the box is the disc's extent on the click's slice.
        let opts = GrowOptions { radius_mm: 3.0, tolerance: [12, 40], spread: 3.0, open_mm: 0.0, sample_mm: 1.0 };
        let g = grow(&v, [1.0; 3], [12, 16, 10], 2, None, Target::Organ, &opts).unwrap();
        assert_eq!((g.bbox, g.voxels), (BoxIjk { min: [9, 13, 10], max: [15, 19, 10] }, 29));
        // Along i: the slice is the click's i-slice.
        let g = grow(&v, [1.0; 3], [12, 16, 10], 0, None, Target::Organ, &opts).unwrap();
        assert_eq!(g.bbox, BoxIjk { min: [12, 13, 7], max: [12, 19, 13] });
        // A click on the dark background in "lesion in air" mode grows nothing but its small box (5 mm).
        let dark = U8Volume::zeros([20, 20, 20]);
        let g = grow(&dark, [1.0; 3], [10, 10, 10], 2, None, Target::LesionInAir, &opts).unwrap();
        assert_eq!((g.voxels, g.bbox), (1, BoxIjk { min: [8, 8, 10], max: [12, 12, 10] }));
    }
}
