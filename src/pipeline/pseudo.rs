//! Pseudo-labels for training sets (after SFR/SFR+, METHODS §4.5: only confident labels reach re-training):
//! the per-voxel confidence |2p − 1| is summarised per object slice and per case, slices below a threshold are
//! marked `IGNORE` (the loss skips them) and a case below a threshold is rejected whole.
//!
//! The rule and its defaults are ours, not the paper's (SFR+'s selection criteria are known from its abstract
//! only): a slice where any object's mask averages a confidence below `min_slice` becomes `IGNORE` across the
//! whole slice — its background is as unsure as its labels, since the object may be missing there — and a case
//! whose objects' voxel-weighted mean confidence is below `min_case`, or that has no labelled voxel, is
//! rejected.

use super::compose::ObjectSummary;
use crate::volume::U8Volume;

/// The label value of voxels a training loss must ignore (objects are numbered 1–254 then).
pub const IGNORE: u8 = 255;

/// When a slice is ignored and a case rejected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// A slice whose object mask averages |2p − 1| below this is written as `IGNORE`.
    pub min_slice: f32,
    /// A case whose voxel-weighted mean |2p − 1| is below this is rejected.
    pub min_case: f32,
}

impl Default for Rule {
    /// Our defaults: 0.8 per slice (a mean probability of 0.9 inside the mask) and 0.8 per case. The slice
    /// threshold was read off case A (tests/session.rs, BENCHMARKS.md "Pseudo-labels"): the lowest at which the
    /// rule ignores anything there, and there the ignored slices' Dice is 0.63 against the kept ones' 0.89.
    fn default() -> Self {
        Rule { min_slice: 0.8, min_case: 0.8 }
    }
}

/// What the rule decided for one case.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Voxel-weighted mean confidence of the objects (0 without labelled voxels).
    pub case_confidence: f32,
    pub accepted: bool,
    /// Slices (along the propagation axis) written as `IGNORE`, ascending.
    pub ignored_slices: Vec<usize>,
}

/// Applies `rule` to the label `mask` of objects `summaries` propagated along `axis` (0, 1 or 2): marks the
/// unsure slices `IGNORE` in place and decides the case.
///
/// # Panics
/// If `axis > 2` or a summary's slice lies outside the mask.
pub fn apply(mask: &mut U8Volume, summaries: &[ObjectSummary], axis: usize, rule: &Rule) -> Decision {
    assert!(axis < 3, "axis {axis}");
    let voxels: usize = summaries.iter().map(|s| s.voxels).sum();
    let weighted: f64 = summaries.iter().map(|s| s.confidence as f64 * s.voxels as f64).sum();
    let case_confidence = if voxels > 0 { (weighted / voxels as f64) as f32 } else { 0.0 };
    let mut ignored: Vec<usize> = summaries
        .iter()
        .flat_map(|s| s.per_slice.iter())
        .filter(|p| p.area > 0 && p.confidence < rule.min_slice)
        .map(|p| p.slice)
        .collect();
    ignored.sort_unstable();
    ignored.dedup();
    let [w, h, d] = mask.dims;
    for &z in &ignored {
        match axis {
            2 => mask.data[z * w * h..(z + 1) * w * h].fill(IGNORE),
            1 => (0..d).for_each(|k| mask.data[(k * h + z) * w..(k * h + z + 1) * w].fill(IGNORE)),
            _ => (0..d * h).for_each(|row| mask.data[row * w + z] = IGNORE),
        }
    }
    Decision { case_confidence, accepted: voxels > 0 && case_confidence >= rule.min_case, ignored_slices: ignored }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::compose::SliceSummary;

    fn object(voxels: usize, confidence: f32, slices: &[(usize, f32)]) -> ObjectSummary {
        ObjectSummary {
            label: 1,
            voxels,
            slices: slices.len(),
            mean_iou: 0.9,
            confidence,
            per_slice: slices
                .iter()
                .map(|&(slice, confidence)| SliceSummary { slice, area: 1, iou: 0.9, confidence })
                .collect(),
        }
    }

    #[test]
    fn unsure_slices_are_ignored_whole_along_their_axis_and_the_case_is_weighed_by_voxels() {
        let rule = Rule { min_slice: 0.7, min_case: 0.8 };
        for axis in 0..3 {
            let mut m = U8Volume { data: vec![0; 3 * 4 * 5], dims: [3, 4, 5] };
            m.data[0] = 1;
            // Slice 1 of the first object is unsure (0.5); 0.7 itself passes.
            let objs = [object(300, 0.9, &[(0, 0.9), (1, 0.5), (2, 0.7)]), object(100, 0.6, &[(1, 0.95)])];
            let d = apply(&mut m, &objs, axis, &rule);
            assert_eq!(d.ignored_slices, vec![1]);
            assert!((d.case_confidence - 0.825).abs() < 1e-6, "{}", d.case_confidence);
            assert!(d.accepted);
            let [w, h, _] = m.dims;
            for (i, &v) in m.data.iter().enumerate() {
                let at = [i % w, (i / w) % h, i / (w * h)][axis];
                assert_eq!(v == IGNORE, at == 1, "axis {axis}, voxel {i}");
            }
            assert_eq!(m.data[0], 1, "a label off the ignored slice stays");
        }
        let mut m = U8Volume { data: vec![0; 8], dims: [2, 2, 2] };
        let d = apply(&mut m, &[object(10, 0.79, &[])], 2, &rule);
        assert!(!d.accepted && (d.case_confidence - 0.79).abs() < 1e-6);
        assert!(!apply(&mut m, &[], 2, &rule).accepted, "nothing labelled is rejected");
    }
}
