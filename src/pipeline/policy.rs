//! Propagation policies beyond the reference: reliable-slice re-seeding and confidence-driven fusion
//! (SAM2Med3D-style, METHODS §1.3). The paper's criteria are not public, so every rule here is a
//! parameterised engineering default ([INF] in METHODS), measured against the reference (BENCHMARKS.md).
//!
//! Stages for one object, after the coarse pass (the reference walks, a user seed mask, or another model):
//! 1. score every coarse slice with a `SliceReliability` scorer and pick key slices (`select_key_slices`);
//! 2. re-seed propagation from each key slice in both directions (the key slice keeps its coarse mask, as
//!    SAM2 keeps a mask prompt as that frame's output), past the prompt's slice range while a `StopRule`
//!    holds;
//! 3. fuse coarse and re-propagated predictions per voxel with a `Fusion` rule, which also yields the
//!    confidence map;
//! 4. post-process (largest 3D component by default).

use super::postprocess::PostprocessOptions;
use super::result::{masks, SliceOut};
use super::slice::sweep::{Step, StopRule};
use crate::ops::mask::{count_components_2d, dice, foreground, largest_component_area_per_slice, Connectivity};

/// How an object's 3D mask is made from its prompts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Policy {
    /// The CVPR24 LiteMedSAM middle-out pipeline, voxel for voxel.
    Reference,
    /// Reference coarse pass, then reliable-slice re-seeding and confidence fusion.
    Reseed(ReseedOptions),
}

impl Policy {
    /// The measured best policy (BENCHMARKS.md, "Policies"): the default of the CLI and the ABI.
    pub fn best() -> Policy {
        Policy::Reseed(ReseedOptions::default())
    }

    /// Re-seeding that never goes past the prompts' slice range: for a box known to span the object, where
    /// walking on can only enter a look-alike neighbour (BENCHMARKS.md, "where the tight-box loss comes from").
    pub fn reseed_in_box() -> Policy {
        Policy::Reseed(ReseedOptions::default().with_extend(false))
    }

    pub fn name(&self) -> &'static str {
        match self {
            Policy::Reference => "reference",
            Policy::Reseed(o) if !o.extend => "reseed-in-box",
            Policy::Reseed(_) => "reseed",
        }
    }

    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "reference" => Some(Policy::Reference),
            "reseed" => Some(Policy::best()),
            "reseed-in-box" => Some(Policy::reseed_in_box()),
            _ => None,
        }
    }
}

/// Parameters of re-seeding and fusion (METHODS §1.3 defaults unless measured otherwise).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ReseedOptions {
    /// Key slices per object (K).
    pub key_slices: usize,
    /// Minimum distance between key slices (Δ).
    pub min_gap: usize,
    /// Key slices lie at least this far inside the coarse mask's slice extent (partial-volume ends).
    pub edge: usize,
    /// A key slice needs at least this fraction of the largest coarse area.
    pub min_relative_area: f32,
    /// Propagate past the prompt's slice range while `stop` holds.
    pub extend: bool,
    pub stop: StopRule,
    /// Apply `stop` from the key slices outward, also inside the prompt's range (an over-long box).
    pub stop_inside: bool,
    /// At most this many slices past the prompt's range on each side, as a multiple of the range's length.
    pub max_extension: f32,
    /// Extend past an end of the prompt's range only when the coarse mask there still has this fraction of
    /// its largest area (the object was cut by the prompt rather than ending inside it).
    pub extend_min_area: f32,
    pub fusion: ConfidenceFusion,
    /// Keep only the 3D component that overlaps the key slices most (drift into a neighbour detaches).
    pub keep_main: bool,
    pub postprocess: PostprocessOptions,
}

impl Default for ReseedOptions {
    fn default() -> Self {
        ReseedOptions {
            key_slices: 3,
            min_gap: 8,
            edge: 2,
            min_relative_area: 0.25,
            extend: true,
            // Past the prompt's range only while the decoder is sure (0.6 leaked into neighbours; measured in
            // BENCHMARKS.md "Policies").
            stop: StopRule { min_iou: 0.9, ..StopRule::default() },
            stop_inside: false,
            max_extension: 1.0,
            // 0.35 let a mask that had already slid into the next vertebra inside a tight box walk on past it;
            // 0.7, picked on TotalSegmentator A and checked on A-full (BENCHMARKS.md "Policies"), keeps every
            // middle-third gain.
            extend_min_area: 0.7,
            fusion: ConfidenceFusion::default(),
            keep_main: true,
            postprocess: PostprocessOptions::new(),
        }
    }
}

impl ReseedOptions {
    pub fn with_key_slices(mut self, k: usize) -> Self {
        self.key_slices = k.max(1);
        self
    }
    pub fn with_extend(mut self, on: bool) -> Self {
        self.extend = on;
        self
    }
    pub fn with_stop(mut self, stop: StopRule) -> Self {
        self.stop = stop;
        self
    }
    pub fn with_stop_inside(mut self, on: bool) -> Self {
        self.stop_inside = on;
        self
    }
    pub fn with_fusion(mut self, f: ConfidenceFusion) -> Self {
        self.fusion = f;
        self
    }
    pub fn with_postprocess(mut self, p: PostprocessOptions) -> Self {
        self.postprocess = p;
        self
    }
}

/// What scorers see: one object's coarse slices along the stack.
pub struct SliceContext<'a> {
    pub slices: &'a [Option<SliceOut>],
    /// Per slice, the number of that slice's coarse pixels inside the main 3D component.
    pub main_overlap: &'a [usize],
    pub w: usize,
    pub h: usize,
    pub max_area: usize,
}

impl SliceContext<'_> {
    fn area(&self, z: usize) -> usize {
        self.slices.get(z).and_then(|s| s.as_ref()).map_or(0, |s| s.area)
    }
}

/// A slice-reliability score in [0, 1]; higher is more reliable. The paper's filter can be dropped in here.
pub trait SliceReliability: Send + Sync {
    fn name(&self) -> &'static str;
    fn score(&self, c: &SliceContext<'_>, z: usize) -> f32;
}

/// The decoder's own predicted IoU.
pub struct PredictedIou;
/// Mean Dice with the neighbouring slices' masks (area continuity).
pub struct AreaContinuity;
/// Share of the slice's mask inside the main 3D connected component.
pub struct MainComponentOverlap;
/// Mean certainty |2p − 1| over the slice's mask pixels.
pub struct Certainty;
/// Area relative to the largest slice area.
pub struct RelativeArea;
/// The product of several scores.
pub struct Product(pub Vec<Box<dyn SliceReliability>>);

impl SliceReliability for PredictedIou {
    fn name(&self) -> &'static str {
        "predicted_iou"
    }
    fn score(&self, c: &SliceContext<'_>, z: usize) -> f32 {
        c.slices[z].as_ref().map_or(0.0, |s| s.iou.clamp(0.0, 1.0))
    }
}

impl SliceReliability for AreaContinuity {
    fn name(&self) -> &'static str {
        "area_continuity"
    }
    fn score(&self, c: &SliceContext<'_>, z: usize) -> f32 {
        let Some(s) = c.slices[z].as_ref() else { return 0.0 };
        let mut sum = 0.0;
        for nz in [z.wrapping_sub(1), z + 1] {
            sum += match c.slices.get(nz).and_then(|n| n.as_ref()) {
                Some(n) => dice(foreground(&s.mask), foreground(&n.mask)) as f32,
                None => 0.0,
            };
        }
        sum / 2.0
    }
}

impl SliceReliability for MainComponentOverlap {
    fn name(&self) -> &'static str {
        "main_component_overlap"
    }
    fn score(&self, c: &SliceContext<'_>, z: usize) -> f32 {
        let a = c.area(z);
        if a == 0 {
            0.0
        } else {
            c.main_overlap[z] as f32 / a as f32
        }
    }
}

impl SliceReliability for Certainty {
    fn name(&self) -> &'static str {
        "certainty"
    }
    fn score(&self, c: &SliceContext<'_>, z: usize) -> f32 {
        let Some(s) = c.slices[z].as_ref() else { return 0.0 };
        let (mut sum, mut n) = (0u64, 0u64);
        for (&m, &p) in s.mask.iter().zip(&s.prob) {
            if m > 0 {
                sum += (2 * p as i32 - 255).unsigned_abs() as u64;
                n += 1;
            }
        }
        if n == 0 {
            0.0
        } else {
            sum as f32 / (255.0 * n as f32)
        }
    }
}

impl SliceReliability for RelativeArea {
    fn name(&self) -> &'static str {
        "relative_area"
    }
    fn score(&self, c: &SliceContext<'_>, z: usize) -> f32 {
        c.area(z) as f32 / c.max_area.max(1) as f32
    }
}

impl SliceReliability for Product {
    fn name(&self) -> &'static str {
        "product"
    }
    fn score(&self, c: &SliceContext<'_>, z: usize) -> f32 {
        self.0.iter().map(|s| s.score(c, z)).product()
    }
}

/// The default scorer: certainty × continuity × relative area × predicted IoU × main-component overlap.
pub fn default_scorer() -> Product {
    Product(vec![
        Box::new(Certainty),
        Box::new(AreaContinuity),
        Box::new(RelativeArea),
        Box::new(PredictedIou),
        Box::new(MainComponentOverlap),
    ])
}

/// Picks key slices: eligible slices (inside the coarse extent by `edge`, relative area ≥ the minimum,
/// one 2D component) start with the largest-area one, then the best-scoring ones at least `min_gap` apart.
/// Falls back to the largest-area slice when none is eligible. Sorted ascending.
pub fn select_key_slices(c: &SliceContext<'_>, scorer: &dyn SliceReliability, o: &ReseedOptions) -> Vec<usize> {
    let present: Vec<usize> = (0..c.slices.len()).filter(|&z| c.area(z) > 0).collect();
    let (Some(&z0), Some(&z1)) = (present.first(), present.last()) else { return Vec::new() };
    let largest = *present.iter().max_by_key(|&&z| (c.area(z), std::cmp::Reverse(z))).expect("not empty");
    let eligible: Vec<(usize, f32)> = present
        .iter()
        .copied()
        .filter(|&z| z >= z0 + o.edge && z + o.edge <= z1)
        .filter(|&z| c.area(z) as f32 >= o.min_relative_area * c.max_area as f32)
        .filter(|&z| {
            let s = c.slices[z].as_ref().expect("present");
            count_components_2d(&s.mask, c.w, c.h, Connectivity::Full) == 1
        })
        .map(|z| (z, scorer.score(c, z)))
        .collect();
    let mut keys = Vec::new();
    if let Some(&(first, _)) = eligible.iter().max_by_key(|(z, _)| (c.area(*z), std::cmp::Reverse(*z))) {
        keys.push(first);
        let mut rest = eligible.clone();
        rest.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        for (z, _) in rest {
            if keys.len() >= o.key_slices {
                break;
            }
            if keys.iter().all(|&k: &usize| k.abs_diff(z) >= o.min_gap) {
                keys.push(z);
            }
        }
    } else {
        keys.push(largest);
    }
    keys.sort_unstable();
    keys
}

/// Per-voxel confidence fusion of coarse and re-propagated predictions (METHODS §1.3 step 5):
/// q = IoU_pred · exp(−d/λ) per re-propagated prediction (d = slices from its key slice);
/// P_s = q-weighted mean of their probabilities; c_s = q_max·|2P_s − 1|, c_c = |2P_c − 1|;
/// P_f = (c_s·P_s + c_c·P_c) / (c_s + c_c + ε); mask = P_f > 0.5. Slice safeguard: when
/// Dice(M_s, M_c) < `safeguard_dice` and q_max < `safeguard_q`, the coarse slice is kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfidenceFusion {
    pub lambda: f32,
    pub eps: f32,
    pub safeguard_dice: f32,
    pub safeguard_q: f32,
}

impl Default for ConfidenceFusion {
    fn default() -> Self {
        ConfidenceFusion { lambda: 10.0, eps: 1e-6, safeguard_dice: 0.3, safeguard_q: 0.5 }
    }
}

/// Combines the predictions one slice received into one answer.
pub trait Fusion: Send + Sync {
    /// `coarse` and `refined` may not both be empty; the result's `prob` is P_f·255, `mask` its threshold.
    fn fuse(&self, coarse: Option<&SliceOut>, refined: &[&Step]) -> SliceOut;
}

impl Fusion for ConfidenceFusion {
    fn fuse(&self, coarse: Option<&SliceOut>, refined: &[&Step]) -> SliceOut {
        let q: Vec<f32> =
            refined.iter().map(|s| s.out.iou.max(0.0) * (-(s.distance as f32) / self.lambda).exp()).collect();
        let q_max = q.iter().copied().fold(0.0, f32::max);
        match (coarse, refined) {
            (Some(c), []) => return c.clone(),
            (None, [only]) => return only.out.clone(),
            (None, []) => panic!("fuse needs at least one prediction"),
            _ => {}
        }
        let n = coarse.map(|c| c.mask.len()).unwrap_or_else(|| refined[0].out.mask.len());
        let q_sum: f32 = q.iter().sum::<f32>().max(self.eps);
        let mut ps = vec![0u8; n];
        let mut ms = vec![0u8; n];
        for i in 0..n {
            let p: f32 = refined.iter().zip(&q).map(|(s, &w)| w * s.out.prob[i] as f32).sum::<f32>() / q_sum;
            ps[i] = (p + 0.5) as u8;
            ms[i] = (p > 127.5) as u8;
        }
        let Some(c) = coarse else {
            let iou = refined.iter().map(|s| s.out.iou).fold(0.0, f32::max);
            let area = ms.iter().map(|&m| m as usize).sum();
            return SliceOut { mask: ms, prob: ps, iou, area };
        };
        if (dice(foreground(&ms), foreground(&c.mask)) as f32) < self.safeguard_dice && q_max < self.safeguard_q {
            return c.clone();
        }
        let mut out = SliceOut::empty(n);
        for i in 0..n {
            let (p_s, p_c) = (ps[i] as f32 / 255.0, c.prob[i] as f32 / 255.0);
            let c_s = q_max * (2.0 * p_s - 1.0).abs();
            let c_c = (2.0 * p_c - 1.0).abs();
            let p_f = if c_s + c_c > self.eps { (c_s * p_s + c_c * p_c) / (c_s + c_c) } else { 0.5 * (p_s + p_c) };
            out.prob[i] = (p_f * 255.0 + 0.5) as u8;
            let fg = p_f > 0.5;
            out.mask[i] = fg as u8;
            out.area += fg as usize;
        }
        out.iou = c.iou.max(q_max);
        out
    }
}

/// Per slice, how many of its coarse pixels lie in the main (largest) 3D component of the coarse mask.
pub fn main_overlap(slices: &[Option<SliceOut>], w: usize, h: usize) -> Vec<usize> {
    largest_component_area_per_slice(&masks(slices), [w, h], Connectivity::Full)
}
