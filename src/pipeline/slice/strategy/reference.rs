//! The reference middle-out propagation (CVPR24_LiteMedSAM_infer.py, LiteMedSAM branch; METHODS §0.4b),
//! for several objects, built from sweeps (`sweep`) so each slice is encoded at most once per run and
//! objects standing on the same slice share one batched decoder call.
//!
//! Per object (in the order given; its 1-based position `idx` is the value its working mask holds, as in
//! the reference, because INTER_AREA rounding of the previous mask depends on that value):
//! 1. z_mid = ⌊(z_max − z_min)/2⌋ + z_min; the slice box is the 3D box's in-plane extent.
//! 2. Upward z = z_mid … z_max: at z_mid the user box, else the box of the previous slice's mask (resized
//!    into the frame, grown by `box_shift`, clipped to [0, S]), falling back to the user box when empty.
//! 3. Downward z = z_mid − 1 … z_min, the same using slice z + 1.
//! 4. The object's voxels are written into the output with its label; later objects overwrite earlier.

use std::sync::Arc;

use super::super::frame::Frame;
use super::super::sweep::{sweep_both, sweep_both_ahead, Scratch, SlicePrompts, Stack, Steps, Walk};
use super::StackPrompts;
use crate::error::Result;
use crate::model::SliceModel;
use crate::pipeline::result::ObjectSlices;
use crate::volume::BoxIjk;

/// The reference's in-plane user box in the model frame.
pub fn frame_box(frame: &Frame, b: &BoxIjk) -> [i64; 4] {
    frame.box_to_frame([b.min[0] as i64, b.min[1] as i64, b.max[0] as i64, b.max[1] as i64])
}

/// The reference middle-out walks of every object over `stack` (boxes in stack coordinates), generalised
/// for interactive use: object n starts on the middle slice of `objects[n]` with that box, walks over the
/// slice range of `ranges[n]`, and takes the user's points and boxes on single slices from `prompts` (keyed
/// by n). With `ranges == objects` and no slice prompts this is the reference exactly. Objects on the same
/// slice are decoded in one batch; the up and down sweeps run concurrently.
pub fn reference_slices_with<M: SliceModel>(
    stack: &Stack<'_, M>,
    objects: &[BoxIjk],
    ranges: &[BoxIjk],
    prompts: &SlicePrompts,
    scratch: &mut [Scratch; 2],
    progress: &mut dyn FnMut() -> bool,
) -> Result<Vec<ObjectSlices>> {
    let d = stack.volume.dims[2];
    let mid = |o: &BoxIjk| (o.max[2] - o.min[2]) / 2 + o.min[2];
    let user: Vec<[i64; 4]> = objects.iter().map(|o| frame_box(&stack.frame, o)).collect();
    let mut seeds = prompts.clone();
    let mids: Vec<Walk> = objects
        .iter()
        .enumerate()
        .map(|(k, o)| {
            seeds.boxes.insert((k, mid(o)), user[k]);
            Walk {
                object: k,
                value: (k + 1) as u8,
                first: mid(o),
                last: mid(o),
                seed: None,
                fallback: None,
                stop: None,
                anchor: mid(o),
            }
        })
        .collect();
    // While the middle slices are encoded and decoded, the other worker encodes the slice above the
    // current one, which the up walks need next.
    let in_ranges = |z: usize| ranges.iter().any(|r| r.min[2] <= z && z <= r.max[2]);
    let (mid_steps, _) = sweep_both_ahead(stack, &mids, &[], &seeds, scratch, progress, &in_ranges)?;
    let mut up = Vec::new();
    let mut down = Vec::new();
    for (k, o) in objects.iter().enumerate() {
        let m = mid(o);
        let (lo, hi) = (ranges[k].min[2], ranges[k].max[2]);
        let seed = Some(Arc::new(mid_steps[k][0].out.mask.clone()));
        let walk = |first, last| Walk {
            object: k,
            value: (k + 1) as u8,
            first,
            last,
            seed: seed.clone(),
            fallback: Some(user[k]),
            stop: None,
            anchor: m,
        };
        if hi > m {
            up.push(walk(m + 1, hi));
        }
        if m > lo {
            down.push(walk(m - 1, lo));
        }
    }
    let (up_steps, down_steps) = sweep_both(stack, &up, &down, prompts, scratch, progress)?;
    let mut out: Vec<ObjectSlices> = vec![vec![None; d]; objects.len()];
    let mut place = |walks: &[Walk], steps: Vec<Steps>| {
        for (w, st) in walks.iter().zip(steps) {
            for s in st {
                out[w.object][s.z] = Some(s.out);
            }
        }
    };
    place(&mids, mid_steps);
    place(&up, up_steps);
    place(&down, down_steps);
    Ok(out)
}

/// The reference walks, with user points and extra boxes on their slices, over `objects` (stack coords).
pub fn with_prompts<M: SliceModel>(
    stack: &Stack<'_, M>,
    objects: &[BoxIjk],
    index: &[usize],
    sp: &[StackPrompts],
    prompts: &SlicePrompts,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<ObjectSlices>> {
    // Prompt tables are keyed by the session's object index; the reference walks number objects 0..n.
    let mut local = SlicePrompts::default();
    for (n, &k) in index.iter().enumerate() {
        for ((o, z), p) in &prompts.points {
            if *o == k {
                local.points.insert((n, *z), p.clone());
            }
        }
        for ((o, z), b) in &prompts.boxes {
            if *o == k {
                local.boxes.insert((n, *z), *b);
            }
        }
        if let Some(c) = prompts.conditioning.get(&k) {
            local.conditioning.insert(n, c.clone());
        }
    }
    let mut ranged: Vec<BoxIjk> = objects.to_vec();
    for (n, &k) in index.iter().enumerate() {
        for b in &sp[k].boxes {
            ranged[n].min[2] = ranged[n].min[2].min(b.min[2]);
            ranged[n].max[2] = ranged[n].max[2].max(b.max[2]);
        }
    }
    reference_slices_with(stack, objects, &ranged, &local, scratch, tick)
}
