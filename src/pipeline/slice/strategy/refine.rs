//! Interactive refinement of one object after points were added or removed, without re-encoding: only
//! the touched slices are decoded again, and each change travels outward while the mask keeps changing.

use std::sync::Arc;

use super::super::sweep::{sweep, Conditioning, Scratch, SlicePrompts, Stack, Walk};
use super::reference::frame_box;
use super::{frame_points, stack_points, Settings};
use crate::error::{Error, Result};
use crate::model::{Prompt2d, SliceModel, Worker};
use crate::ops::mask::{dice, foreground};
use crate::pipeline::result::SliceOut;
use crate::prompt::resolve::Spatial;
use crate::volume::BoxIjk;

/// Slices a refinement is expected to decode, for progress.
pub const WORK: usize = 8;

/// Interactive refinement of one object: the slices whose points changed are decoded again (box from the
/// current mask there, plus all its points), and each change is propagated outward slice by slice until a
/// re-decoded slice agrees with the current one to `refine_tolerance` (Dice), or it ends.
#[allow(clippy::too_many_arguments)]
pub fn refine_object<M: SliceModel>(
    stack: &Stack<'_, M>,
    k: usize,
    now: &Spatial,
    before: &Spatial,
    old: &[Option<Arc<SliceOut>>],
    settings: &Settings,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<Option<Arc<SliceOut>>>> {
    let d = stack.volume.dims[2];
    let pts_now = stack_points(stack, now);
    let pts_old = stack_points(stack, before);
    let mut touched: Vec<usize> = pts_now
        .iter()
        .filter(|p| !pts_old.contains(p))
        .chain(pts_old.iter().filter(|p| !pts_now.contains(p)))
        .map(|p| p.z)
        .collect();
    touched.sort_unstable();
    touched.dedup();
    let mut slices = old.to_vec();
    let mut prompts = SlicePrompts::default();
    if let Some(c) = Conditioning::of(now) {
        prompts.conditioning.insert(k, c);
    }
    for p in &pts_now {
        prompts.points.entry((k, p.z)).or_insert_with(|| frame_points(&stack.frame, &pts_now, p.z));
    }
    let user_boxes: Vec<BoxIjk> = now.boxes.iter().map(|b| stack.orientation.box_to_stack(b)).collect();
    // Where propagation started: the first box's middle slice, else the middle of the object's extent.
    let anchor = match user_boxes.first() {
        Some(b) => (b.max[2] - b.min[2]) / 2 + b.min[2],
        None => {
            let present: Vec<usize> = (0..d).filter(|&z| slices[z].is_some()).collect();
            present.first().zip(present.last()).map_or(0, |(a, b)| (a + b) / 2)
        }
    };
    for &z in &touched {
        if !tick() {
            return Err(Error::Cancelled);
        }
        // The slice's own box: the user's box on it, else its current mask's, else the neighbours'.
        let cur = slices[z].clone();
        let b = user_boxes
            .iter()
            .find(|b| b.min[2] == z && b.max[2] == z)
            .map(|b| frame_box(&stack.frame, b))
            .or_else(|| cur.as_ref().and_then(|s| stack.mask_box(&s.mask, 1, &mut scratch[0])))
            .or_else(|| {
                [z.wrapping_sub(1), z + 1]
                    .iter()
                    .filter_map(|&n| slices.get(n).and_then(|s| s.clone()))
                    .find_map(|s| stack.mask_box(&s.mask, 1, &mut scratch[0]))
            });
        let pts = prompts.points.get(&(k, z)).cloned().unwrap_or_default();
        if b.is_none() && !pts.iter().any(|p| p.2 == 1.0) {
            // Nothing to prompt with (the last positive point went): the slice is left empty.
            slices[z] = None;
            continue;
        }
        let mut p = Prompt2d { points: pts, ..Default::default() };
        p.bbox = b.map(|b| b.map(|v| v as f32));
        stack.condition(prompts.conditioning.get(&k), z, &mut p, &mut scratch[0]);
        let out = stack.decode(Worker::Wide, z, std::slice::from_ref(&p), &mut scratch[0])?.remove(0);
        let seed = Arc::new(out.mask.clone());
        slices[z] = Some(Arc::new(out));
        // Outward, one slice at a time, while the mask keeps changing. Propagation ran away from the
        // object's anchor slice, so a slice only ever influenced the slices beyond it: a change travels
        // away from the anchor, never back toward it.
        let directions: &[bool] = match z.cmp(&anchor) {
            std::cmp::Ordering::Greater => &[true],
            std::cmp::Ordering::Less => &[false],
            std::cmp::Ordering::Equal => &[true, false],
        };
        for &up in directions {
            let mut prev = seed.clone();
            let mut z2 = z;
            loop {
                z2 = if up { z2 + 1 } else { z2.wrapping_sub(1) };
                if z2 >= d || touched.contains(&z2) {
                    break;
                }
                let Some(old_s) = slices[z2].clone() else { break };
                if !tick() {
                    return Err(Error::Cancelled);
                }
                let walk = Walk {
                    object: k,
                    value: 1,
                    first: z2,
                    last: z2,
                    seed: Some(prev.clone()),
                    fallback: None,
                    stop: None,
                    anchor: z,
                };
                let steps = sweep(stack, Worker::Wide, up, &[walk], &prompts, &mut scratch[0], &mut || true)?;
                let Some(st) = steps.into_iter().next().and_then(|s| s.into_iter().next()) else { break };
                let same = dice(foreground(&st.out.mask), foreground(&old_s.mask)) >= settings.refine_tolerance;
                prev = Arc::new(st.out.mask.clone());
                slices[z2] = Some(Arc::new(st.out));
                if same {
                    break;
                }
            }
        }
    }
    Ok(slices)
}
