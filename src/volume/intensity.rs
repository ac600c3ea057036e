//! Whole-volume intensity mapping to u8, exactly as the reference preprocessing (`pre_CT_MR.py`, METHODS
//! §0.4c) does it in float64 with numpy: clip, min-max over the clipped volume, ×255, truncate.

use super::{U8Volume, VolumeView};
use crate::error::{Error, Result};

/// How a volume's intensities become the model's uint8 range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IntensityMapping {
    /// Clip to [level − width/2, level + width/2] (the reference uses level 40, width 400 for CT).
    Window { level: f64, width: f64 },
    /// Clip to the `lower` and `upper` percentiles of the voxels > 0; voxels that were 0 stay 0 (MR).
    Percentile { lower: f64, upper: f64 },
    /// The reference mapping that fits the data, chosen by [`auto`] when the volume is mapped.
    Auto,
}

impl IntensityMapping {
    /// The reference's CT soft-tissue window.
    pub const CT: IntensityMapping = IntensityMapping::Window { level: 40.0, width: 400.0 };
    /// The reference's MR mapping.
    pub const MR: IntensityMapping = IntensityMapping::Percentile { lower: 0.5, upper: 99.5 };

    /// The mapping `map_to_u8` applies to `view`: `Auto` becomes what [`auto`] picks, others stay.
    pub fn resolve(self, view: &VolumeView<'_>) -> IntensityMapping {
        match self {
            IntensityMapping::Auto => auto(view),
            m => m,
        }
    }
}

/// The reference mapping that fits the data: CT when the volume holds values below −500 (Hounsfield air),
/// else MR.
pub fn auto(view: &VolumeView<'_>) -> IntensityMapping {
    let mut min = f64::INFINITY;
    view.for_each(|v| min = min.min(v));
    if min < -500.0 {
        IntensityMapping::CT
    } else {
        IntensityMapping::MR
    }
}

/// Statistics of one pass over a volume.
struct Scan {
    min: f64,
    max: f64,
    positive: Vec<f64>,
}

fn scan(view: &VolumeView<'_>, keep_positive: bool) -> Result<Scan> {
    let mut s = Scan { min: f64::INFINITY, max: f64::NEG_INFINITY, positive: Vec::new() };
    let mut bad = 0usize;
    view.for_each(|v| {
        if !v.is_finite() {
            bad += 1;
            return;
        }
        s.min = s.min.min(v);
        s.max = s.max.max(v);
        if keep_positive && v > 0.0 {
            s.positive.push(v);
        }
    });
    if bad > 0 {
        return Err(Error::InvalidVolume(format!("{bad} voxels are NaN or infinite")));
    }
    Ok(s)
}

/// numpy's default ("linear") percentile, including its two-sided lerp.
fn percentile(sorted_or_not: &mut [f64], q: f64) -> f64 {
    let n = sorted_or_not.len();
    let vi = (n - 1) as f64 * (q / 100.0);
    let (prev, next) = if vi >= (n - 1) as f64 {
        (n - 1, n - 1)
    } else if vi < 0.0 {
        (0, 0)
    } else {
        let p = vi.floor() as usize;
        (p, (p + 1).min(n - 1))
    };
    let gamma = vi - prev as f64;
    let (_, &mut a, upper) = sorted_or_not.select_nth_unstable_by(prev, f64::total_cmp);
    let b = if next == prev { a } else { upper.iter().copied().fold(f64::INFINITY, f64::min) };
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// Maps a volume to u8 in storage order (i fastest).
pub fn map_to_u8(view: &VolumeView<'_>, mapping: IntensityMapping) -> Result<U8Volume> {
    let dims = view.dims();
    let (lo, hi, zero_keeps_zero) = match mapping {
        IntensityMapping::Window { level, width } => {
            if !(width.is_finite() && width > 0.0 && level.is_finite()) {
                return Err(Error::InvalidArgument(format!("window level {level} width {width} is not usable")));
            }
            (level - width / 2.0, level + width / 2.0, false)
        }
        IntensityMapping::Percentile { lower, upper } => {
            if !(0.0..=100.0).contains(&lower) || !(0.0..=100.0).contains(&upper) || lower >= upper {
                return Err(Error::InvalidArgument(format!("percentiles {lower}..{upper} are not usable")));
            }
            (f64::NAN, f64::NAN, true)
        }
        // `auto` picks one of the two reference mappings, never `Auto` itself.
        IntensityMapping::Auto => return map_to_u8(view, mapping.resolve(view)),
    };
    let mut s = scan(view, zero_keeps_zero)?;
    let (lo, hi) = if let IntensityMapping::Percentile { lower, upper } = mapping {
        if s.positive.is_empty() {
            return Err(Error::InvalidVolume("no voxel is > 0, so MR percentiles are undefined".into()));
        }
        let l = percentile(&mut s.positive, lower);
        let u = percentile(&mut s.positive, upper);
        drop(std::mem::take(&mut s.positive));
        (l, u)
    } else {
        (lo, hi)
    };
    // Clipping is monotone, so the clipped volume's extrema are the clipped raw extrema.
    let cmin = s.min.clamp(lo, hi);
    let cmax = s.max.clamp(lo, hi);
    let range = cmax - cmin;
    if range <= 0.0 {
        return Err(Error::InvalidVolume(format!(
            "constant intensity after clipping to [{lo}, {hi}] (volume range {}..{}): nothing to segment",
            s.min, s.max
        )));
    }
    let mut out = U8Volume::zeros([dims[0], dims[1], dims[2]]);
    let mut it = out.data.iter_mut();
    view.for_each(|v| {
        let o = it.next().expect("same voxel count");
        *o = if zero_keeps_zero && v == 0.0 { 0 } else { ((v.clamp(lo, hi) - cmin) / range * 255.0) as u8 };
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{DType, Geometry};

    #[test]
    fn percentile_matches_numpy() {
        // np.percentile([1,2,3,4,10], [0.5, 50, 99.5]) = [1.02, 3.0, 9.88]
        let mut v = vec![10.0, 3.0, 1.0, 4.0, 2.0];
        assert!((percentile(&mut v, 0.5) - 1.02).abs() < 1e-12);
        assert_eq!(percentile(&mut v, 50.0), 3.0);
        assert!((percentile(&mut v, 99.5) - 9.88).abs() < 1e-12);
    }

    #[test]
    fn ct_window_truncates_like_numpy() {
        let vals: Vec<i16> = vec![-1000, -160, 0, 40, 239, 240, 1000, 100];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_ne_bytes()).collect();
        let view = VolumeView::contiguous(&bytes, DType::I16, [8, 1, 1], Geometry::default()).unwrap();
        let out = map_to_u8(&view, IntensityMapping::CT).unwrap();
        // (x + 160) / 400 * 255, truncated
        assert_eq!(out.data, vec![0, 0, 102, 127, 254, 255, 255, 165]);
    }

    #[test]
    fn auto_maps_like_the_mapping_it_picks() {
        let ct: Vec<u8> = [-1000i16, -160, 0, 40, 239, 1000].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let ct = VolumeView::contiguous(&ct, DType::I16, [6, 1, 1], Geometry::default()).unwrap();
        assert_eq!(auto(&ct), IntensityMapping::CT);
        assert_eq!(map_to_u8(&ct, IntensityMapping::Auto).unwrap().data, vec![0, 0, 102, 127, 254, 255]);
        let mr: Vec<u8> = [0.0f32, 10.0, 20.0, 30.0, 40.0, 50.0].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let mr = VolumeView::contiguous(&mr, DType::F32, [6, 1, 1], Geometry::default()).unwrap();
        assert_eq!(auto(&mr), IntensityMapping::MR);
        assert_eq!(
            map_to_u8(&mr, IntensityMapping::Auto).unwrap().data,
            map_to_u8(&mr, IntensityMapping::MR).unwrap().data
        );
    }

    #[test]
    fn constant_and_nan_volumes_are_errors() {
        let bytes: Vec<u8> = [5.0f32; 8].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let view = VolumeView::contiguous(&bytes, DType::F32, [2, 2, 2], Geometry::default()).unwrap();
        let e = map_to_u8(&view, IntensityMapping::MR).unwrap_err();
        assert!(e.to_string().contains("constant intensity"), "{e}");
        let bytes: Vec<u8> = [1.0f32, f32::NAN].iter().flat_map(|v| v.to_ne_bytes()).collect();
        let view = VolumeView::contiguous(&bytes, DType::F32, [2, 1, 1], Geometry::default()).unwrap();
        let e = map_to_u8(&view, IntensityMapping::CT).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
    }
}
