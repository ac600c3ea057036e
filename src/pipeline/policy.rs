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
    fn score(&self, c: &SliceContext<'_>, z: usize) -> f32 {
        c.slices[z].as_ref().map_or(0.0, |s| s.iou.clamp(0.0, 1.0))
    }
}

impl SliceReliability for AreaContinuity {
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
    fn score(&self, c: &SliceContext<'_>, z: usize) -> f32 {
        c.area(z) as f32 / c.max_area.max(1) as f32
    }
}

impl SliceReliability for Product {
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
    /// The result's `prob` is P_f·255, `mask` its threshold; None when there is no prediction at all.
    fn fuse(&self, coarse: Option<&SliceOut>, refined: &[&Step]) -> Option<SliceOut>;
}

impl Fusion for ConfidenceFusion {
    fn fuse(&self, coarse: Option<&SliceOut>, refined: &[&Step]) -> Option<SliceOut> {
        let q: Vec<f32> =
            refined.iter().map(|s| s.out.iou.max(0.0) * (-(s.distance as f32) / self.lambda).exp()).collect();
        let q_max = q.iter().copied().fold(0.0, f32::max);
        match (coarse, refined) {
            (Some(c), []) => return Some(c.clone()),
            (None, [only]) => return Some(only.out.clone()),
            (None, []) => return None,
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
            return Some(SliceOut { mask: ms, prob: ps, iou, area });
        };
        if (dice(foreground(&ms), foreground(&c.mask)) as f32) < self.safeguard_dice && q_max < self.safeguard_q {
            return Some(c.clone());
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
        Some(out)
    }
}

/// Per slice, how many of its coarse pixels lie in the main (largest) 3D component of the coarse mask.
pub fn main_overlap(slices: &[Option<SliceOut>], w: usize, h: usize) -> Vec<usize> {
    largest_component_area_per_slice(&masks(slices), [w, h], Connectivity::Full)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: usize = 6;

    /// A 6×6 slice holding a `side`×`side` square at the origin, plus `extra` isolated pixels far from it.
    fn square(side: usize, extra: &[(usize, usize)]) -> SliceOut {
        let mut o = SliceOut::empty(W * W);
        for j in 0..side {
            o.mask[j * W..j * W + side].fill(1);
        }
        for &(i, j) in extra {
            o.mask[j * W + i] = 1;
        }
        for (p, &m) in o.prob.iter_mut().zip(&o.mask) {
            *p = if m > 0 { 230 } else { 10 };
        }
        o.area = o.mask.iter().map(|&m| m as usize).sum();
        o.iou = 0.9;
        o
    }

    /// Slices 3..=16 of 20 present, areas rising to 36 on slices 9 and 10; slice 12 has two components.
    fn stack() -> Vec<Option<SliceOut>> {
        let sides = [1, 2, 3, 4, 5, 5, 6, 6, 5, 4, 4, 3, 2, 1];
        let mut s: Vec<Option<SliceOut>> = vec![None; 20];
        for (z, &side) in (3..).zip(&sides) {
            s[z] = Some(square(side, if z == 12 { &[(5, 5)] } else { &[] }));
        }
        s
    }

    struct Table(Vec<f32>);
    impl SliceReliability for Table {
        fn score(&self, _: &SliceContext<'_>, z: usize) -> f32 {
            self.0[z]
        }
    }

    fn scores() -> Table {
        let mut t = vec![0.0; 20];
        for (z, v) in [(3, 0.99), (5, 0.5), (6, 0.2), (7, 0.8), (8, 0.3), (9, 0.1), (10, 0.95), (11, 0.4)] {
            t[z] = v;
        }
        for (z, v) in [(12, 1.0), (13, 0.6), (14, 0.7)] {
            t[z] = v;
        }
        Table(t)
    }

    fn keys(slices: &[Option<SliceOut>], o: &ReseedOptions) -> Vec<usize> {
        let main = main_overlap(slices, W, W);
        let max_area = slices.iter().flatten().map(|s| s.area).max().unwrap_or(0);
        let ctx = SliceContext { slices, main_overlap: &main, w: W, h: W, max_area };
        select_key_slices(&ctx, &scores(), o)
    }

    #[test]
    fn key_slices_start_at_the_largest_then_follow_the_score_at_min_gap() {
        let s = stack();
        let o = ReseedOptions::default();
        // Eligible: 5..=14 without 12 (two components). The largest is 9 (tied with 10: the lower wins);
        // nothing else is 8 slices from it.
        assert_eq!(keys(&s, &o), vec![9]);
        let o4 = ReseedOptions { min_gap: 4, ..o };
        // By score: 10 and 7 are too close to 9, 14 is taken, 13 is too close to 14, 5 is taken.
        assert_eq!(keys(&s, &o4), vec![5, 9, 14]);
        assert_eq!(keys(&s, &o4.with_key_slices(2)), vec![9, 14]);
        assert_eq!(keys(&s, &o4.with_key_slices(1)), vec![9]);
        // Slice 3 (score 0.99) becomes eligible with no edge margin and no area minimum.
        let open = ReseedOptions { edge: 0, min_relative_area: 0.0, ..o4 };
        assert_eq!(keys(&s, &open), vec![3, 9, 14]);
        // The area minimum: a quarter of 36 keeps sides >= 3; 0.5 keeps sides >= 5 (slices 7..=11).
        let half = ReseedOptions { min_relative_area: 0.5, min_gap: 2, ..o };
        assert_eq!(keys(&s, &half), vec![7, 9, 11]);
    }

    #[test]
    fn key_slices_fall_back_to_the_largest_slice_and_are_empty_without_a_mask() {
        let s = stack();
        let none_eligible = ReseedOptions { min_relative_area: 1.5, ..ReseedOptions::default() };
        assert_eq!(keys(&s, &none_eligible), vec![9]);
        // Too short for the edge margin: the largest slice still.
        let mut short: Vec<Option<SliceOut>> = vec![None; 20];
        short[4] = Some(square(2, &[]));
        short[5] = Some(square(3, &[]));
        assert_eq!(keys(&short, &ReseedOptions::default()), vec![5]);
        assert_eq!(keys(&vec![None; 20], &ReseedOptions::default()), Vec::<usize>::new());
        assert_eq!(keys(&[], &ReseedOptions::default()), Vec::<usize>::new());
    }

    fn slice(prob: &[u8], iou: f32) -> SliceOut {
        let mask: Vec<u8> = prob.iter().map(|&p| u8::from(p > 127)).collect();
        SliceOut { area: mask.iter().map(|&m| m as usize).sum(), mask, prob: prob.to_vec(), iou }
    }

    fn step(prob: &[u8], iou: f32, distance: usize) -> Step {
        Step { z: 0, out: slice(prob, iou), distance }
    }

    #[test]
    fn fuse_of_one_prediction_is_that_prediction_and_of_none_is_none() {
        let f = ConfidenceFusion::default();
        let c = slice(&[200, 10, 140], 0.7);
        let r = step(&[0, 255, 255], 0.2, 3);
        assert_eq!(f.fuse(Some(&c), &[]), Some(c.clone()));
        assert_eq!(f.fuse(None, &[&r]), Some(r.out.clone()));
        assert_eq!(f.fuse(None, &[]), None);
    }

    #[test]
    fn fuse_of_re_propagated_predictions_is_their_weighted_mean() {
        let f = ConfidenceFusion::default();
        // q = 1 and 0.5: P_s = (255·1 + 0·0.5) / 1.5 = 170 and (0·1 + 255·0.5) / 1.5 = 85.
        let (a, b) = (step(&[255, 0], 1.0, 0), step(&[0, 255], 0.5, 0));
        let o = f.fuse(None, &[&a, &b]).unwrap();
        assert_eq!((o.prob, o.mask, o.area, o.iou), (vec![170, 85], vec![1, 0], 1, 1.0));
        // q falls with distance from the key slice: exp(-10/10) for `far`, so `near` decides.
        let (far, near) = (step(&[255], 1.0, 10), step(&[0], 1.0, 0));
        let o = f.fuse(None, &[&far, &near]).unwrap();
        assert_eq!((o.prob, o.mask), (vec![69], vec![0])); // 255·e⁻¹ / (1 + e⁻¹) = 68.6
                                                           // Negative predicted IoUs weigh nothing.
        let o = f.fuse(None, &[&step(&[255], -0.5, 0), &near]).unwrap();
        assert_eq!(o.prob, vec![0]);
    }

    #[test]
    fn fuse_with_the_coarse_slice_weighs_by_certainty_unless_the_safeguard_keeps_it() {
        let f = ConfidenceFusion::default();
        let c = slice(&[60, 220, 51, 200], 0.6);
        // q_max = 0.75 (IoU 0.75 at the key slice). The masks disagree everywhere (Dice 0 < 0.3), but the
        // re-propagation is sure enough, so each voxel goes to the more certain side:
        // P_f = (c_s·P_s + c_c·P_c) / (c_s + c_c), c_s = 0.75·|2P_s − 1|, c_c = |2P_c − 1|.
        let r = step(&[230, 40, 255, 0], 0.75, 0);
        let o = f.fuse(Some(&c), &[&r]).unwrap();
        assert_eq!(o.prob, vec![151, 145, 164, 86]);
        assert_eq!(o.mask, vec![1, 1, 1, 0]);
        assert_eq!((o.area, o.iou), (3, 0.75));
        // q_max 0.4 < 0.5 with Dice < 0.3: the coarse slice stays as it was.
        let unsure = step(&[230, 40, 255, 0], 0.4, 0);
        assert_eq!(f.fuse(Some(&c), &[&unsure]), Some(c.clone()));
        // Agreeing masks are fused even when unsure (Dice 1 >= 0.3); the coarse IoU is kept when higher.
        let agree = step(&[60, 220, 51, 200], 0.4, 0);
        let o = f.fuse(Some(&c), &[&agree]).unwrap();
        assert_eq!((o.mask, o.iou), (c.mask.clone(), 0.6));
    }
}
