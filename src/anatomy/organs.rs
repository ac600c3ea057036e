//! From a structure name to a candidate region: the HU window and the location prior in the body frame,
//! an opening that cuts thin bridges to neighbours, then the connected component that fits the prior best.

use crate::anatomy::body::BodyFrame;
use crate::anatomy::grid::HuGrid;
use crate::anatomy::priors::{self, Kind, Prior, Side};
use crate::error::{Error, Result};
use crate::ops::mask::{components_3d, dilate_box, erode_box, fill_holes_slices, Connectivity};
use crate::volume::BoxIjk;

/// A candidate region for one structure.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub structure: String,
    /// On the input grid, i fastest, 1 = inside.
    pub mask: Vec<u8>,
    /// Tight box of `mask` on the input grid.
    pub bbox: BoxIjk,
    /// Voxels of `mask`.
    pub voxels: usize,
    /// 0..1: how well the region fits the prior (location membership × volume plausibility).
    pub score: f32,
    /// The same region on the grid's coarse RAS grid (for prompt derivation without touching every input
    /// voxel again).
    pub coarse: Vec<u8>,
}

impl Region {
    /// Whether the structure is air-filled (the lungs): black under the CT soft-tissue window.
    pub fn air_filled(&self) -> bool {
        priors::get(&self.structure).is_some_and(|p| p.kind == Kind::Lung)
    }
}

/// Below this score a region is not returned: it is what a wrong guess looks like.
pub const MIN_SCORE: f32 = 0.15;

impl BodyFrame {
    /// Whether `structure` (a TotalSegmentator `total` class name) has a prior.
    pub fn knows(structure: &str) -> bool {
        priors::get(structure).is_some()
    }

    /// The candidate region of `structure`, or None when nothing in the volume fits its prior (outside the
    /// scan, or on the wrong side). An unknown name is `Error::InvalidArgument`.
    pub fn locate(&self, grid: &HuGrid, structure: &str) -> Result<Option<Region>> {
        let prior = priors::get(structure).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no body prior for structure {structure:?}; known: {}",
                priors::all().keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        if grid.dims() != self.dims() {
            return Err(Error::ShapeMismatch(format!(
                "body frame of coarse dims {:?} does not belong to the grid of coarse dims {:?}",
                self.dims(),
                grid.dims()
            )));
        }
        let Some(coarse) = self.candidate(grid, prior, true) else { return Ok(None) };
        let (coarse, score) = coarse;
        if score < MIN_SCORE {
            return Ok(None);
        }
        let mask = grid.to_input(&coarse);
        let voxels = mask.iter().filter(|&&v| v == 1).count();
        let Some(bbox) = bbox_3d(&mask, grid.input_dims()) else { return Ok(None) };
        Ok(Some(Region { structure: structure.to_string(), mask, bbox, voxels, score, coarse }))
    }

    /// Per coarse voxel, the prior's location membership (0 outside the ranges, 1 at their centres).
    fn membership(&self, prior: &Prior, x: usize, y: usize, z: usize) -> f32 {
        let (Some(f), Some(cc)) = (self.slice(z), self.cc(z as f64)) else { return 0.0 };
        let lateral = (x as f64 - f.mid_x) / f.half_width;
        let depth = (f.y_front - f.y_back).max(1.0);
        let ap = (y as f64 - f.y_back) / depth;
        (tent(cc, prior.cc) * tent(lateral, prior.lateral) * tent(ap, prior.ap)) as f32
    }

    /// The chosen component on the coarse grid and its score; with `exclusions`, the prior's excluded
    /// structures (found without their own exclusions, so the recursion stops there) are removed first.
    fn candidate(&self, grid: &HuGrid, prior: &Prior, exclusions: bool) -> Option<(Vec<u8>, f32)> {
        let dims = self.dims();
        let [nx, ny, nz] = dims;
        let hu = grid.hu();
        let (lo, hi) = (prior.hu[0], prior.hu[1]);
        let mut weight = vec![0f32; hu.len()];
        let mut cand = vec![0u8; hu.len()];
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let at = (z * ny + y) * nx + x;
                    let tissue = match prior.kind {
                        Kind::Lung => self.lungs[at] == 1,
                        Kind::Organ => {
                            let v = f64::from(hu[at]);
                            self.body[at] == 1 && self.lungs[at] == 0 && (lo..=hi).contains(&v)
                        }
                    };
                    if tissue {
                        let w = self.membership(prior, x, y, z);
                        if w > 0.0 {
                            weight[at] = w;
                            cand[at] = 1;
                        }
                    }
                }
            }
        }
        if exclusions {
            for other in prior.exclude.iter().filter_map(|x| priors::get(x)) {
                if let Some((taken, _)) = self.candidate(grid, other, false) {
                    for (c, &t) in cand.iter_mut().zip(&taken) {
                        *c &= 1 - t;
                    }
                }
            }
        }
        let sp = self.spacing();
        let radius = sp.map(|s| (prior.open_mm / s).round() as usize);
        let mut core = cand.clone();
        erode_box(&mut core, dims, radius);
        let comps = components_3d(&core, dims, Connectivity::Faces);
        if comps.sizes.is_empty() {
            return None;
        }
        let mut fit = vec![0f64; comps.sizes.len()];
        for (&l, &w) in comps.labels.iter().zip(&weight) {
            if l > 0 {
                fit[l as usize - 1] += f64::from(w);
            }
        }
        let best = (0..fit.len()).max_by(|&a, &b| fit[a].total_cmp(&fit[b]))?;
        // Grow the chosen core back by the opening radius (plus one voxel), inside the window and prior.
        let mut region: Vec<u8> = comps.labels.iter().map(|&l| u8::from(l as usize == best + 1)).collect();
        dilate_box(&mut region, dims, radius.map(|r| r + 1));
        for (r, &c) in region.iter_mut().zip(&cand) {
            *r &= c;
        }
        fill_holes_slices(&mut region, dims, 1);
        let (mut n, mut wsum, mut sx) = (0usize, 0f64, 0f64);
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let at = (z * ny + y) * nx + x;
                    if region[at] == 1 {
                        n += 1;
                        wsum += f64::from(weight[at]);
                        if let Some(f) = self.slice(z) {
                            sx += (x as f64 - f.mid_x) / f.half_width;
                        }
                    }
                }
            }
        }
        if n == 0 {
            return None;
        }
        // A sided structure whose best candidate sits across the midline is not there.
        let centre = sx / n as f64;
        match prior.side {
            Some(Side::Right) if centre <= 0.0 => return None,
            Some(Side::Left) if centre >= 0.0 => return None,
            _ => {}
        }
        let ml = n as f64 * grid.voxel_ml();
        let [vmin, vmax] = prior.volume_ml;
        let plausible = if ml < vmin {
            ml / vmin
        } else if ml > vmax {
            vmax / ml
        } else {
            1.0
        };
        let mean_w = wsum / n as f64;
        // Location membership is a product of three tents, so its mean over a well-placed organ is about
        // 0.3; scale it so that a well-placed organ of plausible size scores near 1.
        let score = ((mean_w / 0.3).min(1.0) * plausible) as f32;
        Some((region, score))
    }
}

/// 1 at the middle of `[lo, hi]`, falling linearly to 0.2 at the ends and 0 outside: every voxel inside the
/// ranges counts, the centre counts most.
fn tent(v: f64, [lo, hi]: [f64; 2]) -> f64 {
    if !(lo..=hi).contains(&v) {
        return 0.0;
    }
    let u = (v - lo) / (hi - lo);
    0.2 + 0.8 * (1.0 - (2.0 * u - 1.0).abs())
}

/// Tight box of the nonzero voxels of a `[w, h, d]` mask.
pub(crate) fn bbox_3d(mask: &[u8], [w, h, d]: [usize; 3]) -> Option<BoxIjk> {
    let mut b = BoxIjk { min: [usize::MAX; 3], max: [0; 3] };
    let mut any = false;
    for k in 0..d {
        for j in 0..h {
            let row = &mask[(k * h + j) * w..(k * h + j + 1) * w];
            let (Some(i0), Some(i1)) = (row.iter().position(|&v| v != 0), row.iter().rposition(|&v| v != 0)) else {
                continue;
            };
            any = true;
            for (a, (lo, hi)) in [(i0, i1), (j, j), (k, k)].into_iter().enumerate() {
                b.min[a] = b.min[a].min(lo);
                b.max[a] = b.max[a].max(hi);
            }
        }
    }
    any.then_some(b)
}
