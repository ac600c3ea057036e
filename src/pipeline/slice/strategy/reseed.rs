//! Re-seeding from reliable key slices and confidence fusion with the coarse slices (SAM2Med3D, seed 000;
//! the scorer, key-slice choice and fusion are the policy module's).

use std::sync::Arc;

use super::super::sweep::{sweep_both, Scratch, SlicePrompts, Stack, Step, Walk};
use super::StackPrompts;
use crate::error::Result;
use crate::model::SliceModel;
use crate::pipeline::policy::{self, Fusion, Policy, ReseedOptions, SliceContext};
use crate::pipeline::result::{ObjectSlices, SliceOut};

/// Decoding passes a full run makes over an object's slices: the reference's, plus re-propagation.
pub fn passes(policy: Policy) -> usize {
    match policy {
        Policy::Reference => 1,
        Policy::Reseed(_) => 2,
    }
}

/// Re-seeding from reliable key slices and confidence fusion with the coarse slices (policy module docs).
pub fn reseed<M: SliceModel>(
    stack: &Stack<'_, M>,
    sp: &[StackPrompts],
    coarse: Vec<ObjectSlices>,
    prompts: &SlicePrompts,
    ro: &ReseedOptions,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<ObjectSlices>> {
    let [w, h, d] = stack.volume.dims;
    let scorer = policy::default_scorer();
    let mut up = Vec::new();
    let mut down = Vec::new();
    let mut keys_of = Vec::new();
    for (k, c) in coarse.iter().enumerate() {
        let main = policy::main_overlap(c, w, h);
        let max_area = c.iter().flatten().map(|s| s.area).max().unwrap_or(0);
        let ctx = SliceContext { slices: c, main_overlap: &main, w, h, max_area };
        let keys = policy::select_key_slices(&ctx, &scorer, ro);
        // The prompt's own slice range: walks beyond it are ended by the stop rule.
        let (r0, r1) = match (sp[k].boxes.iter().map(|b| b.min[2]).min(), sp[k].boxes.iter().map(|b| b.max[2]).max()) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                let present: Vec<usize> = (0..d).filter(|&z| c[z].is_some()).collect();
                (*present.first().unwrap_or(&0), *present.last().unwrap_or(&0))
            }
        };
        let ext = ((r1 - r0 + 1) as f32 * ro.max_extension).ceil() as usize;
        // Past an end of the range only where the object was cut there, not where it tapers off.
        let cut =
            |z: usize| ro.extend && c[z].as_ref().map_or(0, |s| s.area) as f32 >= ro.extend_min_area * max_area as f32;
        let lo = if cut(r0) { r0.saturating_sub(ext) } else { r0 };
        let hi = if cut(r1) { (r1 + ext).min(d - 1) } else { r1 };
        let seed = |z: usize| c[z].as_ref().map(|s| Arc::new(s.mask.clone()));
        let walk = |first: usize, last: usize, anchor: usize, guard: usize, stop: bool| Walk {
            object: k,
            value: 1,
            first,
            last,
            seed: seed(anchor),
            fallback: None,
            stop: stop.then_some((ro.stop, guard)),
            anchor,
        };
        if let (Some(&k0), Some(&k1)) = (keys.first(), keys.last()) {
            if k0 > lo {
                down.push(walk(k0 - 1, lo, k0, if ro.stop_inside { k0 } else { r0.min(k0) }, true));
            }
            if k1 < hi {
                up.push(walk(k1 + 1, hi, k1, if ro.stop_inside { k1 } else { r1.max(k1) }, true));
            }
            for pair in keys.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if b > a + 1 {
                    up.push(walk(a + 1, b - 1, a, a, false));
                    down.push(walk(b - 1, a + 1, b, b, false));
                }
            }
        }
        keys_of.push(keys);
    }
    let (up_steps, down_steps) = sweep_both(stack, &up, &down, prompts, scratch, tick)?;
    let mut refined: Vec<Vec<Vec<Step>>> = vec![vec![Vec::new(); d]; coarse.len()];
    for (walk, steps) in up.iter().zip(up_steps).chain(down.iter().zip(down_steps)) {
        for s in steps {
            refined[walk.object][s.z].push(s);
        }
    }
    let fusion: &dyn Fusion = &ro.fusion;
    let mut out = Vec::new();
    for (k, mut c) in coarse.into_iter().enumerate() {
        let mut slices: ObjectSlices = vec![None; d];
        for z in 0..d {
            // Each slice's inputs are dropped as soon as it is fused: on a 512×512×300 volume the coarse
            // slices and the steps hold about 150 and 300 MB.
            let (cz, steps) = (c[z].take(), std::mem::take(&mut refined[k][z]));
            let r: Vec<&Step> = steps.iter().collect();
            let is_key = keys_of[k].contains(&z);
            slices[z] = match (cz, r.is_empty(), is_key) {
                (Some(cz), _, true) => Some(cz),
                (None, true, _) => None,
                (cz, _, _) => fusion.fuse(cz.as_ref(), &r),
            };
        }
        if ro.keep_main {
            keep_main_component(&mut slices, &keys_of[k], w, h);
        }
        out.push(slices);
    }
    Ok(out)
}

/// Zeroes every 3D component except the one holding most voxels on the key slices (the prompt's own
/// structure), so a walk that drifted into a neighbour and detached from it is dropped even when larger.
fn keep_main_component(slices: &mut [Option<SliceOut>], keys: &[usize], w: usize, h: usize) {
    use crate::ops::mask::{keep_component_touching, Connectivity};
    let mut masks: Vec<Option<&mut [u8]>> = slices.iter_mut().map(|s| s.as_mut().map(|s| &mut s.mask[..])).collect();
    let removed = keep_component_touching(&mut masks, [w, h], keys, Connectivity::Full);
    if removed.is_empty() {
        return;
    }
    for (z, span) in removed {
        let prob = &mut slices[z].as_mut().expect("removed from a present slice").prob[span];
        prob.iter_mut().for_each(|p| *p = (*p).min(127));
    }
    for s in slices.iter_mut().flatten() {
        s.area = s.mask.iter().map(|&m| m as usize).sum();
    }
}
