//! The body frame of a CT volume: body, lung and bone masks, the midline, landmarks along the body axis and
//! the normalised cranio-caudal coordinate, all on the `HuGrid`'s RAS-ordered coarse grid.
//!
//! Order: body (HU > −500, largest component, holes filled per axial slice) → bone (HU > 200 inside it) →
//! midline (the spine's column, found from the bone profile of the back half of the body) → per-slice
//! extents → lungs (air inside the body that looks like lung) → landmarks (lung base and apex, iliac crest)
//! → cc anchors.

use crate::anatomy::grid::HuGrid;
use crate::error::{Error, Result};
use crate::ops::mask::{components_3d, dilate_box, erode_box, fill_holes_slices, prune_3d, Connectivity};

const BODY_HU: i16 = -500;
const BONE_HU: i16 = 200;
const AIR_HU: i16 = -400;
/// A slice has lung (or pelvic bone on one side) when it holds at least this much of it.
const LANDMARK_AREA_MM2: f64 = 300.0;
/// Typical adult distances used when a landmark lies outside the scan.
const CREST_BELOW_LUNG_BASE_MM: f64 = 160.0;
const APEX_ABOVE_LUNG_BASE_MM: f64 = 250.0;

/// Extents of the body on one axial (coarse z) slice, in coarse voxel indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceFrame {
    /// The midline (spine centre) along R.
    pub mid_x: f64,
    /// Half the body's width: the larger of midline→right wall and midline→left wall, so a scan whose
    /// field of view cuts one flank still measures the other.
    pub half_width: f64,
    /// Back (lowest A index) and front of the body.
    pub y_back: f64,
    pub y_front: f64,
}

/// Landmarks along the body axis, as coarse z indices (fractional); None when outside the scan.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Landmarks {
    pub lung_apex: Option<f64>,
    pub lung_base: Option<f64>,
    pub iliac_crest: Option<f64>,
}

/// Masks, per-slice extents and landmarks of one CT volume (coarse RAS grid, R fastest).
#[derive(Debug, Clone)]
pub struct BodyFrame {
    dims: [usize; 3],
    spacing: [f64; 3],
    /// 1 inside the body.
    pub body: Vec<u8>,
    /// 1 in the lungs (both sides, airways included where they touch).
    pub lungs: Vec<u8>,
    /// 1 in bone-dense voxels inside the body (enhanced vessels above 200 HU included).
    pub bone: Vec<u8>,
    slices: Vec<Option<SliceFrame>>,
    pub landmarks: Landmarks,
    /// Coarse z of cc = 0 (crest), 1 (lung base), 2 (lung apex); measured or placed at typical distances.
    anchors: Option<[f64; 3]>,
}

impl BodyFrame {
    /// Builds the frame from a coarse HU grid.
    pub fn compute(grid: &HuGrid) -> Result<BodyFrame> {
        let dims = grid.dims();
        let spacing = grid.spacing();
        let hu = grid.hu();
        let [nx, ny, nz] = dims;
        let plane = nx * ny;
        let px_mm2 = spacing[0] * spacing[1];

        let mut body: Vec<u8> = hu.iter().map(|&v| u8::from(v > BODY_HU)).collect();
        prune_3d(&mut body, dims, Connectivity::Faces, 0, true);
        fill_holes_slices(&mut body, dims, 1);
        if !body.contains(&1) {
            return Err(Error::InvalidVolume(format!(
                "no body found: no voxel above {BODY_HU} HU (is this a CT in Hounsfield units?)"
            )));
        }
        let bone: Vec<u8> = hu.iter().zip(&body).map(|(&v, &b)| u8::from(b == 1 && v > BONE_HU)).collect();

        // Extents per slice, before the midline is known.
        let mut ext: Vec<Option<[usize; 4]>> = vec![None; nz];
        for (z, e) in ext.iter_mut().enumerate() {
            let s = &body[z * plane..(z + 1) * plane];
            *e = crate::ops::mask::bbox_2d(s, nx, ny).map(|[x0, y0, x1, y1]| [x0, x1, y0, y1]);
        }
        let mid = midline(&bone, &ext, dims);

        let mut slices = vec![None; nz];
        for z in 0..nz {
            if let (Some([x0, x1, y0, y1]), Some(m)) = (ext[z], mid[z]) {
                let half_width = (x1 as f64 - m).max(m - x0 as f64).max(1.0);
                slices[z] = Some(SliceFrame { mid_x: m, half_width, y_back: y0 as f64, y_front: y1 as f64 });
            }
        }

        let lungs = lungs(hu, &body, dims, spacing);

        let lung_area: Vec<f64> = (0..nz)
            .map(|z| lungs[z * plane..(z + 1) * plane].iter().filter(|&&v| v == 1).count() as f64 * px_mm2)
            .collect();
        let with_lung: Vec<usize> = (0..nz).filter(|&z| lung_area[z] >= LANDMARK_AREA_MM2).collect();
        // A landmark on the first or last slice is where the scan stops, not where the lung does.
        let lung_base = with_lung.first().filter(|&&z| z > 0).map(|&z| z as f64);
        let lung_apex = with_lung.last().filter(|&&z| z + 1 < nz).map(|&z| z as f64);
        let iliac_crest =
            iliac_crest(&bone, &slices, dims, spacing, lung_base.or(with_lung.first().map(|&z| z as f64)));
        let landmarks = Landmarks { lung_apex, lung_base, iliac_crest };

        let dz = spacing[2];
        let base = lung_base
            .or_else(|| iliac_crest.map(|c| c + CREST_BELOW_LUNG_BASE_MM / dz))
            .or_else(|| lung_apex.map(|a| a - APEX_ABOVE_LUNG_BASE_MM / dz));
        let anchors = base.map(|b| {
            let crest = iliac_crest.filter(|&c| c < b - 1.0).unwrap_or(b - CREST_BELOW_LUNG_BASE_MM / dz);
            let apex = lung_apex.filter(|&a| a > b + 1.0).unwrap_or(b + APEX_ABOVE_LUNG_BASE_MM / dz);
            [crest, b, apex]
        });
        Ok(BodyFrame { dims, spacing, body, lungs, bone, slices, landmarks, anchors })
    }

    /// Coarse dims (R, A, S).
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }
    /// Coarse voxel size (mm).
    pub fn spacing(&self) -> [f64; 3] {
        self.spacing
    }
    /// The body's extents on coarse slice `z`, None where the slice holds no body.
    pub fn slice(&self, z: usize) -> Option<&SliceFrame> {
        self.slices.get(z).and_then(|s| s.as_ref())
    }
    /// The normalised cranio-caudal coordinate of coarse slice `z` (0 = iliac crest, 1 = lung base,
    /// 2 = lung apex), or None when the scan shows neither lungs nor pelvis.
    pub fn cc(&self, z: f64) -> Option<f64> {
        let [c, b, a] = self.anchors?;
        Some(if z < b { (z - c) / (b - c) } else { 1.0 + (z - b) / (a - b) })
    }
    /// Coarse z anchors of cc 0, 1 and 2.
    pub fn anchors(&self) -> Option<[f64; 3]> {
        self.anchors
    }
}

/// Per slice, the R index of the spine's centre. The spine is the one bone present in the back half of the
/// body on every slice, so the count of slices with back-half bone in each column peaks there (ribs and
/// pelvis reach a column on some slices only); each slice then takes the centroid of its back-half bone
/// near that peak, smoothed along z. Slices without spine bone nearby use the peak itself.
fn midline(bone: &[u8], ext: &[Option<[usize; 4]>], [nx, ny, nz]: [usize; 3]) -> Vec<Option<f64>> {
    let plane = nx * ny;
    let mut profile = vec![0usize; nx];
    let mut seen = vec![false; nx];
    for z in 0..nz {
        let Some([_, _, y0, y1]) = ext[z] else { continue };
        let y_mid = (y0 + y1) / 2;
        seen.fill(false);
        for y in y0..=y_mid {
            let row = &bone[z * plane + y * nx..z * plane + (y + 1) * nx];
            for (s, &b) in seen.iter_mut().zip(row) {
                *s |= b == 1;
            }
        }
        for (p, &s) in profile.iter_mut().zip(&seen) {
            *p += s as usize;
        }
    }
    // Smooth over ~5 columns so one dense rib column does not win over the vertebral body.
    let smooth: Vec<usize> = (0..nx).map(|x| profile[x.saturating_sub(2)..(x + 3).min(nx)].iter().sum()).collect();
    let peak = smooth.iter().enumerate().max_by_key(|(x, &v)| (v, std::cmp::Reverse(*x))).map(|(x, _)| x);
    let mut raw = vec![None; nz];
    for z in 0..nz {
        let Some([x0, x1, y0, y1]) = ext[z] else { continue };
        let fallback = match peak {
            Some(p) if smooth[p] > 0 => p as f64,
            _ => (x0 + x1) as f64 / 2.0,
        };
        let reach = ((x1 - x0) / 10).max(2) as f64;
        let y_mid = (y0 + y1) / 2;
        let (mut sx, mut n) = (0.0, 0usize);
        for y in y0..=y_mid {
            for x in x0..=x1 {
                if bone[z * plane + y * nx + x] == 1 && (x as f64 - fallback).abs() <= reach {
                    sx += x as f64;
                    n += 1;
                }
            }
        }
        raw[z] = Some(if n >= 3 { sx / n as f64 } else { fallback });
    }
    // Median over 7 slices: a rib head or the aorta on one slice does not bend the midline.
    (0..nz)
        .map(|z| {
            raw[z]?;
            let mut w: Vec<f64> = raw[z.saturating_sub(3)..(z + 4).min(nz)].iter().flatten().copied().collect();
            w.sort_by(f64::total_cmp);
            Some(w[w.len() / 2])
        })
        .collect()
}

/// The lungs: components of air inside the body that are large, whose mean HU is that of aerated lung
/// tissue rather than of pure gas (bowel and stomach gas average near −1000 HU; lung parenchyma with its
/// vessels averages −700 to −900 HU at a few millimetres, and the eroded cores keep the gap), and that reach within 40 mm of the highest such
/// component's top (the lungs are the most superior air; colon and stomach gas lie below their bases).
fn lungs(hu: &[i16], body: &[u8], dims: [usize; 3], spacing: [f64; 3]) -> Vec<u8> {
    let voxel_ml = spacing.iter().product::<f64>() / 1000.0;
    let plane = dims[0] * dims[1];
    let air: Vec<u8> = hu.iter().zip(body).map(|(&v, &b)| u8::from(b == 1 && v < AIR_HU)).collect();
    // At a few millimetres the diaphragm between a lung base and the colon or stomach gas under it can
    // average below the air threshold, joining them; labelling the eroded air cuts such bridges.
    let mut core = air.clone();
    erode_box(&mut core, dims, [1, 1, 1]);
    let comps = components_3d(&core, dims, Connectivity::Faces);
    let n = comps.sizes.len();
    let (mut sum, mut top) = (vec![0i64; n], vec![0usize; n]);
    for (at, (&l, &v)) in comps.labels.iter().zip(hu).enumerate() {
        if l > 0 {
            sum[l as usize - 1] += i64::from(v);
            top[l as usize - 1] = at / plane;
        }
    }
    let lung_like: Vec<bool> = (0..n)
        .map(|c| {
            let mean = sum[c] as f64 / comps.sizes[c].max(1) as f64;
            let ok = comps.sizes[c] as f64 * voxel_ml >= 3.0 && (-950.0..=-600.0).contains(&mean);
            if comps.sizes[c] as f64 * voxel_ml >= 3.0 {
                log::debug!(
                    "air component {c}: {:.0} ml, mean {mean:.0} HU, top z {}, lung-like {ok}",
                    comps.sizes[c] as f64 * voxel_ml,
                    top[c]
                );
            }
            ok
        })
        .collect();
    let Some(highest) = (0..n).filter(|&c| lung_like[c]).map(|c| top[c]).max() else { return vec![0; hu.len()] };
    let reach = (40.0 / spacing[2]).round() as usize;
    let keep: Vec<bool> = (0..n).map(|c| lung_like[c] && top[c] + reach >= highest).collect();
    let mut lungs: Vec<u8> = comps.labels.iter().map(|&l| u8::from(l > 0 && keep[l as usize - 1])).collect();
    dilate_box(&mut lungs, dims, [1, 1, 1]);
    for (l, &a) in lungs.iter_mut().zip(&air) {
        *l &= a;
    }
    lungs
}

/// The iliac crest: the top of the lowest run of slices with pelvic bone on both sides of the midline,
/// well away from it (the iliac wings and, lower, the hips), with no such bone for 20 mm above the run
/// (lower ribs are lateral too, but they continue up to the chest), at least 80 mm below the lung base.
fn iliac_crest(
    bone: &[u8],
    slices: &[Option<SliceFrame>],
    [nx, ny, nz]: [usize; 3],
    spacing: [f64; 3],
    lung_base: Option<f64>,
) -> Option<f64> {
    let plane = nx * ny;
    let px_mm2 = spacing[0] * spacing[1];
    let lateral: Vec<bool> = (0..nz)
        .map(|z| {
            let Some(f) = slices[z] else { return false };
            let (mut right, mut left) = (0usize, 0usize);
            for (at, &b) in bone[z * plane..(z + 1) * plane].iter().enumerate() {
                if b == 1 {
                    let d = ((at % nx) as f64 - f.mid_x) / f.half_width;
                    if d > 0.3 {
                        right += 1;
                    } else if d < -0.3 {
                        left += 1;
                    }
                }
            }
            log::debug!("slice {z}: lateral bone {:.0} / {:.0} mm2", right as f64 * px_mm2, left as f64 * px_mm2);
            right.min(left) as f64 * px_mm2 >= LANDMARK_AREA_MM2
        })
        .collect();
    let gap = (20.0 / spacing[2]).ceil() as usize;
    let min_run = (15.0 / spacing[2]).ceil() as usize;
    let start = lateral.iter().position(|&l| l)?;
    let end = (start..nz).find(|&z| !lateral[z])?;
    let top = end - 1;
    if end - start < min_run || (end..(end + gap).min(nz)).any(|z| lateral[z]) || end + gap > nz {
        return None;
    }
    if lung_base.is_some_and(|b| (b - top as f64) * spacing[2] < 80.0) {
        return None;
    }
    Some(top as f64)
}
