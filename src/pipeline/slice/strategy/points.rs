//! Objects given only points (and the start boxes grown from clicks): each slice with positive points or a
//! start box is decoded from them, then walks outward under the stop rule (LiteMedSAM was trained on boxes,
//! so a point alone is a weak start: the session grows a start box from a click unless told not to).

use std::sync::Arc;

use super::super::sweep::{sweep_both, Conditioning, FramePoints, Scratch, SlicePrompts, Stack, StopRule, Walk};
use super::StackPrompts;
use crate::error::Result;
use crate::model::{Prompt2d, SliceModel, Worker};
use crate::pipeline::result::{ObjectSlices, SliceOut};

/// Rounds of fitting a start box to its own mask on its slice, the margin (a fraction of the mask's size on
/// each side, plus the model's box shift) and the box IoU at which the fit holds.
const FIT_ROUNDS: usize = 3;
const FIT_MARGIN: f64 = 0.15;
const FIT_IOU: f64 = 0.9;

/// Objects given only points and start boxes: each slice with positive points or a start box is decoded
/// from them, then walks outward under the stop rule.
pub fn points_only<M: SliceModel>(
    stack: &Stack<'_, M>,
    ks: &[usize],
    sp: &[StackPrompts],
    prompts: &SlicePrompts,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<ObjectSlices>> {
    let d = stack.volume.dims[2];
    // Not the re-seeding policy's stop rule: that one is strict because it walks from reliable key slices;
    // the first walk from a click has no such slice yet, and the re-seeding pass that follows judges it.
    let rule = StopRule::default();
    let mut out = Vec::new();
    let mut resized = Vec::new();
    for &k in ks {
        let mut slices: ObjectSlices = vec![None; d];
        let mut zs: Vec<usize> = sp[k].points.iter().filter(|p| p.positive).map(|p| p.z).collect();
        zs.extend(sp[k].starts.iter().map(|b| (b.max[2] - b.min[2]) / 2 + b.min[2]));
        zs.sort_unstable();
        zs.dedup();
        for &z in &zs {
            let pts = prompts.points.get(&(k, z)).cloned().unwrap_or_default();
            let mut bbox = prompts.boxes.get(&(k, z)).copied();
            let mut o = decode_start(stack, z, &pts, bbox, prompts.conditioning.get(&k), &mut scratch[0])?;
            // A start box grown from a click is a guess: it is fitted to what the model finds in it (the
            // mask's box with a margin, so an object cut by too small a box can grow) until it holds.
            for _ in 0..FIT_ROUNDS {
                let (Some(b), Some(m)) = (bbox, stack.frame.mask_box(&o.mask, 0, &mut resized)) else { break };
                let s = stack.frame.s as i64;
                let margin = |lo: i64, hi: i64| ((hi - lo) as f64 * FIT_MARGIN).ceil() as i64 + stack.model.box_shift();
                let (mx, my) = (margin(m[0], m[2]), margin(m[1], m[3]));
                let next = [(m[0] - mx).max(0), (m[1] - my).max(0), (m[2] + mx).min(s), (m[3] + my).min(s)];
                if box_iou(next, b) >= FIT_IOU {
                    break;
                }
                bbox = Some(next);
                o = decode_start(stack, z, &pts, bbox, prompts.conditioning.get(&k), &mut scratch[0])?;
            }
            slices[z] = Some(o);
        }
        let (lo, hi) = (zs[0], *zs.last().expect("a positive point or a start"));
        let seeds: Vec<Option<Arc<Vec<u8>>>> =
            slices.iter().map(|s| s.as_ref().map(|s| Arc::new(s.mask.clone()))).collect();
        let mk = |first: usize, last: usize, from: usize, stop: bool| Walk {
            object: k,
            value: 1,
            first,
            last,
            seed: seeds[from].clone(),
            fallback: None,
            stop: stop.then_some((rule, from)),
            anchor: from,
        };
        let mut up: Vec<Walk> = if hi + 1 < d { vec![mk(hi + 1, d - 1, hi, true)] } else { vec![] };
        let down: Vec<Walk> = if lo > 0 { vec![mk(lo - 1, 0, lo, true)] } else { vec![] };
        // Slices between two pointed slices: walk up from the lower one.
        for win in zs.windows(2) {
            if win[1] > win[0] + 1 {
                up.push(mk(win[0] + 1, win[1] - 1, win[0], false));
            }
        }
        let (u, dn) = sweep_both(stack, &up, &down, prompts, scratch, tick)?;
        for st in u.into_iter().chain(dn).flatten() {
            slices[st.z] = Some(st.out);
        }
        out.push(slices);
    }
    Ok(out)
}

/// One start slice decoded from its points and box (frame coordinates).
fn decode_start<M: SliceModel>(
    stack: &Stack<'_, M>,
    z: usize,
    points: &FramePoints,
    bbox: Option<[i64; 4]>,
    conditioning: Option<&Conditioning>,
    scratch: &mut Scratch,
) -> Result<SliceOut> {
    let mut p = Prompt2d { points: points.clone(), bbox: bbox.map(|b| b.map(|v| v as f32)), ..Default::default() };
    stack.condition(conditioning, z, &mut p, scratch);
    Ok(stack.decode(Worker::Index(0), z, std::slice::from_ref(&p), scratch)?.remove(0))
}

fn box_iou(a: [i64; 4], b: [i64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0) as f64;
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0) as f64;
    let area = |x: [i64; 4]| ((x[2] - x[0]) * (x[3] - x[1])) as f64;
    let inter = w * h;
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        1.0
    }
}
