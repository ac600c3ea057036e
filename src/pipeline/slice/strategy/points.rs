//! Objects given only points: each slice with positive points is decoded from its points alone, then
//! walks outward under the stop rule (LiteMedSAM was trained on boxes, so a point alone is a weak start).

use std::sync::Arc;

use super::super::sweep::{sweep_both, Scratch, SlicePrompts, Stack, StopRule, Walk};
use super::StackPrompts;
use crate::error::Result;
use crate::model::{Prompt2d, SliceModel, Worker};
use crate::pipeline::policy::Policy;
use crate::pipeline::result::ObjectSlices;

/// Objects given only points: each slice with positive points is decoded from its points alone, then
/// walks outward under the stop rule.
pub fn points_only<M: SliceModel>(
    stack: &Stack<'_, M>,
    ks: &[usize],
    sp: &[StackPrompts],
    prompts: &SlicePrompts,
    policy: Policy,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<ObjectSlices>> {
    let d = stack.volume.dims[2];
    let rule = match policy {
        Policy::Reseed(ro) => ro.stop,
        Policy::Reference => StopRule::default(),
    };
    let mut out = Vec::new();
    for &k in ks {
        let mut slices: ObjectSlices = vec![None; d];
        let mut zs: Vec<usize> = sp[k].points.iter().filter(|p| p.positive).map(|p| p.z).collect();
        zs.sort_unstable();
        zs.dedup();
        for &z in &zs {
            let pts = prompts.points.get(&(k, z)).cloned().unwrap_or_default();
            let p = Prompt2d { points: pts, ..Default::default() };
            let o = stack.decode(Worker::Index(0), z, std::slice::from_ref(&p), &mut scratch[0])?.remove(0);
            slices[z] = Some(o);
        }
        let (lo, hi) = (zs[0], *zs.last().expect("a positive point"));
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
