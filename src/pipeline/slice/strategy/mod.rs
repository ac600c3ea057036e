//! The 3D strategies for slice models: how an object's prompts become walks over its stack.
//!
//! - `reference`: the CVPR24 middle-out walks from the first box (METHODS §0.4b), with the user's points
//!   and further boxes on their slices;
//! - `points`: objects with neither box nor seed start on each slice that has positive points or a box
//!   grown from a click (fitted to its own mask first);
//! - `reseed`: the reference result re-seeded from reliable key slices and fused by confidence (policy);
//! - `refine`: after points were added or removed, only the slices they touch are decoded again, and
//!   propagation re-runs outward from them while the mask keeps changing.
//!
//! Every strategy works in stack coordinates (`volume::reslice::Orientation`) and returns one slice list
//! per object; a strategy states its own work estimate, for progress.

pub mod points;
pub mod reference;
pub mod refine;
pub mod reseed;

use std::sync::Arc;

use super::frame::Frame;
use super::sweep::{Conditioning, FramePoints, Scratch, SlicePrompts, Stack};
use crate::error::Result;
use crate::model::SliceModel;
use crate::ops::mask::bbox_2d;
use crate::pipeline::policy::Policy;
use crate::pipeline::postprocess::{postprocess_slices, PostprocessOptions};
use crate::pipeline::result::{ObjectSlices, SliceOut};
use crate::prompt::resolve::Spatial;
use crate::volume::reslice::Orientation;
use crate::volume::BoxIjk;

/// What the strategies read from the session's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub policy: Policy,
    /// Applied to every object after its policy.
    pub postprocess: PostprocessOptions,
    /// Refinement stops propagating once a re-decoded slice agrees with the old one to this Dice.
    pub refine_tolerance: f64,
}

/// A point prompt in stack coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackPoint {
    pub z: usize,
    pub x: usize,
    pub y: usize,
    pub positive: bool,
}

/// Stack-coordinate prompts of one object.
pub struct StackPrompts {
    /// min and max are (x, y, z).
    pub boxes: Vec<BoxIjk>,
    /// One-slice start boxes (grown from clicks).
    pub starts: Vec<BoxIjk>,
    pub points: Vec<StackPoint>,
    pub seed: Option<ObjectSlices>,
}

/// The points of `p` in stack coordinates.
pub fn stack_points<M: SliceModel>(stack: &Stack<'_, M>, p: &Spatial) -> Vec<StackPoint> {
    p.points
        .iter()
        .map(|q| {
            let [x, y, z] = stack.orientation.to_stack(q.ijk);
            StackPoint { z, x, y, positive: q.positive }
        })
        .collect()
}

pub fn stack_prompts<M: SliceModel>(stack: &Stack<'_, M>, p: &Spatial) -> StackPrompts {
    let to_stack = |bs: &[BoxIjk]| bs.iter().map(|b| stack.orientation.box_to_stack(b)).collect();
    let seed = p.seed.as_ref().map(|m| seed_slices(stack, m));
    StackPrompts { boxes: to_stack(&p.boxes), starts: to_stack(&p.starts), points: stack_points(stack, p), seed }
}

/// The result of an object found by its prior alone: its seed, post-processed as any result. No model
/// confirmed it, so its probability inside is 0.75 (confidence 0.5) and the reported IoU is 0.
pub fn prior_slices<M: SliceModel>(
    stack: &Stack<'_, M>,
    p: &Spatial,
    settings: &Settings,
) -> Vec<Option<Arc<SliceOut>>> {
    let [w, h, _] = stack.volume.dims;
    let mut slices = prior_seed_slices(p.seed.as_deref().map(|m| m.as_slice()), stack.orientation, stack.volume.dims);
    if !settings.postprocess.is_noop() {
        postprocess_slices(&mut slices, w, h, &settings.postprocess);
    }
    slices.into_iter().map(|s| s.map(Arc::new)).collect()
}

/// A prior-only object's seed as slices along a stack of `stack_dims` (every model kind's, before its own
/// post-processing): probability 0.75 inside, IoU 0.
pub fn prior_seed_slices(seed: Option<&[u8]>, orientation: Orientation, stack_dims: [usize; 3]) -> ObjectSlices {
    let Some(m) = seed else { return vec![None; stack_dims[2]] };
    let mut slices = seed_slices_on(orientation, stack_dims, m, PRIOR_PROB);
    for s in slices.iter_mut().flatten() {
        s.iou = 0.0;
    }
    slices
}

/// The probability byte of a voxel inside a prior-only result: 0.75.
const PRIOR_PROB: u8 = 191;

/// A seed mask on the input grid as coarse slices along the stack: probability 1 inside, 0 outside, IoU 1.
fn seed_slices<M: SliceModel>(stack: &Stack<'_, M>, m: &[u8]) -> ObjectSlices {
    seed_slices_on(stack.orientation, stack.volume.dims, m, 255)
}

/// `seed_slices` along any stack of `stack_dims`, with probability byte `inside` inside the mask.
fn seed_slices_on(orientation: Orientation, stack_dims: [usize; 3], m: &[u8], inside: u8) -> ObjectSlices {
    let [w, h, d] = stack_dims;
    let grid = orientation.grid_dims(stack_dims);
    let mut out: ObjectSlices = vec![None; d];
    for (z, slot) in out.iter_mut().enumerate() {
        let mut s = SliceOut::empty(w * h);
        orientation.for_each_in_slice(grid, z, |i, g| {
            let on = m[g] != 0;
            s.mask[i] = on as u8;
            s.prob[i] = if on { inside } else { 0 };
            s.area += on as usize;
        });
        if s.area > 0 {
            s.iou = 1.0;
            *slot = Some(s);
        }
    }
    out
}

/// The frame points of one object on slice z, as the decoder wants them.
pub fn frame_points(frame: &Frame, pts: &[StackPoint], z: usize) -> FramePoints {
    let ratio = frame.s as f32 / frame.h.max(frame.w) as f32;
    pts.iter()
        .filter(|p| p.z == z)
        .map(|p| (p.x as f32 * ratio, p.y as f32 * ratio, if p.positive { 1.0 } else { 0.0 }))
        .collect()
}

/// The 3D bounding box of a stack of slices (stack coordinates).
fn slices_box(slices: &[Option<SliceOut>], w: usize, h: usize) -> BoxIjk {
    let mut b = BoxIjk { min: [usize::MAX; 3], max: [0; 3] };
    for (z, s) in slices.iter().enumerate() {
        let Some(s) = s else { continue };
        if let Some([x0, y0, x1, y1]) = bbox_2d(&s.mask, w, h) {
            b.min = [b.min[0].min(x0), b.min[1].min(y0), b.min[2].min(z)];
            b.max = [b.max[0].max(x1), b.max[1].max(y1), b.max[2].max(z)];
        }
    }
    b
}

/// Slices a full run of `objects` is expected to decode, for progress: each object's box extents along
/// the stack (at least a quarter of it), twice under re-seeding (coarse pass, then re-propagation).
pub fn full_work(objects: &[Spatial], policy: Policy, axis: u8, depth: usize) -> usize {
    let per_pass: usize = objects
        .iter()
        .map(|o| o.boxes.iter().map(|b| b.max[axis as usize] - b.min[axis as usize] + 1).sum::<usize>().max(depth / 4))
        .sum();
    per_pass * reseed::passes(policy)
}

/// Full propagation of several objects under `settings`; returns each object's slices.
pub fn run_full<M: SliceModel>(
    stack: &Stack<'_, M>,
    specs: &[Spatial],
    settings: &Settings,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<Vec<Option<Arc<SliceOut>>>>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    if specs.iter().any(|p| p.prior_only) {
        // Objects found by their prior alone take no part in walks, re-seeding or the model's batches.
        let modelled: Vec<Spatial> = specs.iter().filter(|p| !p.prior_only).cloned().collect();
        let mut from_model = run_full(stack, &modelled, settings, scratch, tick)?.into_iter();
        return Ok(specs
            .iter()
            .map(|p| if p.prior_only { prior_slices(stack, p, settings) } else { from_model.next().expect("one each") })
            .collect());
    }
    let [w, h, _] = stack.volume.dims;
    let sp: Vec<StackPrompts> = specs.iter().map(|p| stack_prompts(stack, p)).collect();

    // Coarse pass: the reference walks from each object's boxes (a seed mask, when given, is the coarse
    // result itself; points-only objects start from their positive points).
    let mut coarse: Vec<ObjectSlices> = vec![Vec::new(); specs.len()];
    let mut ref_objects = Vec::new();
    let mut ref_index = Vec::new();
    for (k, s) in sp.iter().enumerate() {
        if let Some(seed) = &s.seed {
            if settings.policy == Policy::Reference && s.boxes.is_empty() {
                // The reference takes a box: the seed's 3D bounding box.
                ref_objects.push(slices_box(seed, w, h));
                ref_index.push(k);
            } else {
                coarse[k] = seed.clone();
            }
        } else if let Some(b) = s.boxes.first() {
            ref_objects.push(*b);
            ref_index.push(k);
        }
    }
    let mut slice_prompts = SlicePrompts::default();
    for (k, p) in specs.iter().enumerate() {
        if let Some(c) = Conditioning::of(p) {
            slice_prompts.conditioning.insert(k, c);
        }
    }
    for (k, s) in sp.iter().enumerate() {
        for p in &s.points {
            slice_prompts.points.entry((k, p.z)).or_insert_with(|| frame_points(&stack.frame, &s.points, p.z));
        }
        // Further boxes re-prompt their own middle slice; start boxes prompt theirs.
        let starts = if s.boxes.is_empty() && s.seed.is_none() { &s.starts[..] } else { &[] };
        for b in s.boxes.iter().skip(1).chain(starts) {
            let z = (b.max[2] - b.min[2]) / 2 + b.min[2];
            slice_prompts.boxes.insert((k, z), reference::frame_box(&stack.frame, b));
        }
    }
    if !ref_objects.is_empty() {
        let slices = reference::with_prompts(stack, &ref_objects, &ref_index, &sp, &slice_prompts, scratch, tick)?;
        for (i, s) in ref_index.iter().zip(slices) {
            coarse[*i] = s;
        }
    }
    // Objects with neither box nor seed: walks from each slice with positive points or a start box.
    let pts_only: Vec<usize> = (0..sp.len()).filter(|&k| sp[k].seed.is_none() && sp[k].boxes.is_empty()).collect();
    if !pts_only.is_empty() {
        let slices = points::points_only(stack, &pts_only, &sp, &slice_prompts, scratch, tick)?;
        for (k, s) in pts_only.iter().zip(slices) {
            coarse[*k] = s;
        }
    }

    let mut results: Vec<ObjectSlices> = match settings.policy {
        Policy::Reference => coarse,
        Policy::Reseed(ro) => reseed::reseed(stack, &sp, coarse, &slice_prompts, &ro, scratch, tick)?,
    };
    for r in results.iter_mut() {
        let pp = match settings.policy {
            Policy::Reseed(ro) => Some(ro.postprocess),
            Policy::Reference => None,
        };
        for p in pp.into_iter().chain(std::iter::once(settings.postprocess)) {
            if !p.is_noop() {
                postprocess_slices(r, w, h, &p);
            }
        }
    }
    Ok(results.into_iter().map(|v| v.into_iter().map(|s| s.map(Arc::new)).collect()).collect())
}
