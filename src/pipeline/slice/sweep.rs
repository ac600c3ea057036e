//! Slice-by-slice propagation ("walks") over a stack of slices, with decoder calls batched per slice.
//!
//! A walk belongs to one object and runs in one direction from a start slice; each step prompts the next
//! slice with the box of the previous slice's mask (the reference's `get_bbox256`, grown by the model's box
//! shift), plus any user points and boxes the object has on that slice. A sweep advances every walk of one
//! direction slice by slice, so walks of different objects that stand on the same slice share one
//! embedding and one batched decoder run. The up and down sweeps are independent and run on two workers.
//!
//! What a slice step needs from the previous one is only its mask, so a walk is a pure function of its
//! seed, the embeddings and the prompts: that is what lets interactive refinement stop re-propagating as
//! soon as a slice comes out unchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::cache::EmbeddingCache;
use super::frame::Frame;
use crate::error::{Error, Result};
use crate::model::{Embedding, Prompt2d, SliceModel, Worker};
use crate::pipeline::result::{SliceOut, SweepStats};
use crate::volume::reslice::Orientation;
use crate::volume::U8Volume;

/// Ends a walk beyond its guaranteed range, where the object may have ended (degraded or partial boxes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StopRule {
    /// Stop when the predicted IoU falls below this.
    pub min_iou: f32,
    /// Stop when the area grows by more than this factor from one slice to the next (a leak).
    pub max_growth: f32,
    /// Stop when the area falls below this fraction of the largest area seen in the walk.
    pub min_area_fraction: f32,
    /// Stop when the mask's Dice with the previous slice's mask falls below this (it jumped to another
    /// structure).
    pub min_continuity: f32,
}

impl Default for StopRule {
    fn default() -> Self {
        StopRule { min_iou: 0.6, max_growth: 1.6, min_area_fraction: 0.02, min_continuity: 0.5 }
    }
}

/// Why a `StopRule` ended a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The mask is empty.
    Empty,
    /// The predicted IoU is below `min_iou`.
    Unsure,
    /// The area grew by more than `max_growth` from the previous slice.
    Grew,
    /// The area fell below `min_area_fraction` of the walk's largest.
    Shrank,
    /// The Dice with the previous slice's mask is below `min_continuity`.
    Jumped,
}

impl StopRule {
    /// Whether a walk ends at `out`, given the previous slice's 0/1 mask (None: the walk has no previous
    /// mask) and the largest area the walk has seen; the first reason in `Stop`'s order, or None to go on.
    pub fn stop(&self, out: &SliceOut, prev: Option<&[u8]>, max_area: usize) -> Option<Stop> {
        use crate::ops::mask::{dice, foreground};
        let prev_area = prev.map(|p| p.iter().map(|&m| m as usize).sum::<usize>());
        let grew = prev_area.is_some_and(|a| a > 0 && out.area as f32 > self.max_growth * a as f32);
        let shrank = (out.area as f32) < self.min_area_fraction * max_area as f32;
        let jumped = prev.is_some_and(|p| (dice(foreground(p), foreground(&out.mask)) as f32) < self.min_continuity);
        [
            (out.area == 0, Stop::Empty),
            (out.iou < self.min_iou, Stop::Unsure),
            (grew, Stop::Grew),
            (shrank, Stop::Shrank),
            (jumped, Stop::Jumped),
        ]
        .into_iter()
        .find_map(|(hit, why)| hit.then_some(why))
    }
}

/// One walk: `first..=last` in its direction.
#[derive(Debug, Clone)]
pub struct Walk {
    /// Index of the object (into the prompt tables).
    pub object: usize,
    /// The value the object's working mask holds when its box is taken (the reference's 1-based object
    /// position: INTER_AREA rounding of the mask depends on it).
    pub value: u8,
    pub first: usize,
    pub last: usize,
    /// The mask of the slice before `first` (None: the first step needs a prompt of its own).
    pub seed: Option<Arc<Vec<u8>>>,
    /// Frame box used when the previous mask gives none. None: the walk ends there instead.
    pub fallback: Option<[i64; 4]>,
    /// Applies to slices beyond `guard` (in walk order, exclusive): within it the walk always continues.
    pub stop: Option<(StopRule, usize)>,
    /// Distance counted from this slice (the anchor), reported with each output.
    pub anchor: usize,
}

impl Walk {
    /// Whether the walk, going up when `up` (else down), visits slice `z`.
    pub fn covers(&self, up: bool, z: usize) -> bool {
        if up {
            self.first <= z && z <= self.last
        } else {
            self.last <= z && z <= self.first
        }
    }
}

/// Points in the model frame: (x, y, label 1 positive / 0 negative).
pub type FramePoints = Vec<(f32, f32, f32)>;

/// Prompts the user placed on single slices, in frame coordinates.
#[derive(Debug, Clone, Default)]
pub struct SlicePrompts {
    /// (object, slice) → points.
    pub points: HashMap<(usize, usize), FramePoints>,
    /// (object, slice) → a box that replaces the propagated box there.
    pub boxes: HashMap<(usize, usize), [i64; 4]>,
    /// object → what a conditioned model takes with each of its prompts.
    pub conditioning: HashMap<usize, Conditioning>,
}

/// What a text- or anatomy-conditioned decoder takes with every prompt of one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conditioning {
    pub text: Option<Arc<Vec<f32>>>,
    /// The object's region on the input grid (0/1), sliced along the stack and resized into the frame.
    pub anatomy: Option<Arc<Vec<u8>>>,
}

impl Conditioning {
    pub fn of(p: &crate::prompt::resolve::Spatial) -> Option<Conditioning> {
        let c = Conditioning { text: p.text_embedding.clone(), anatomy: p.limit.clone() };
        (c.text.is_some() || c.anatomy.is_some()).then_some(c)
    }
}

/// Everything a slice step reads: the model, the slice stack and its frame, the shared embedding cache.
pub struct Stack<'a, M> {
    pub model: &'a M,
    pub volume: &'a U8Volume,
    pub frame: Frame,
    pub cache: &'a EmbeddingCache,
    /// How the stack lies in the input grid; its axis is the cache key namespace.
    pub orientation: Orientation,
    pub cancel: &'a AtomicBool,
    /// Slices decoded so far (for progress).
    pub done: &'a AtomicUsize,
}

/// Scratch buffers of one worker.
pub struct Scratch {
    image: Vec<f32>,
    resized: Vec<u8>,
    valued: Vec<u8>,
    pub stats: SweepStats,
}

impl Scratch {
    pub fn new(model: &impl SliceModel) -> Scratch {
        let s = model.input_size();
        Scratch {
            image: vec![0f32; model.channels() * s * s],
            resized: Vec::new(),
            valued: Vec::new(),
            stats: SweepStats::default(),
        }
    }
}

impl<M: SliceModel> Stack<'_, M> {
    pub fn slice_len(&self) -> usize {
        self.volume.slice_len()
    }

    /// The embedding of slice `z`, encoded by `worker` unless the cache (or another worker) has it.
    pub fn embedding(&self, worker: Worker, z: usize, sc: &mut Scratch) -> Result<Arc<Embedding>> {
        let (model, frame, volume) = (self.model, &self.frame, self.volume);
        let (mut pre, mut enc) = (Duration::ZERO, Duration::ZERO);
        let emb = self.cache.get_or_encode((self.orientation.axis(), z), |buf| {
            let t = Instant::now();
            frame.encoder_input(volume.slice(z), &mut sc.resized, &mut sc.image);
            pre = t.elapsed();
            let t = Instant::now();
            let r = model.encode(worker, &sc.image, buf);
            enc = t.elapsed();
            r
        })?;
        sc.stats.preprocess += pre;
        sc.stats.encode += enc;
        Ok(emb)
    }

    /// The frame box of a 0/1 mask as the reference takes it from a mask holding `value`.
    pub fn mask_box(&self, mask: &[u8], value: u8, sc: &mut Scratch) -> Option<[i64; 4]> {
        sc.valued.clear();
        sc.valued.extend(mask.iter().map(|&m| m * value));
        self.frame.mask_box(&sc.valued, self.model.box_shift(), &mut sc.resized)
    }

    /// Gives `p` what the model takes of the object's conditioning on slice `z` (nothing for a model that
    /// takes none): its text embedding, and its region on the slice resized into the frame as the image is.
    pub fn condition(&self, c: Option<&Conditioning>, z: usize, p: &mut Prompt2d, sc: &mut Scratch) {
        let (Some(c), wants) = (c, self.model.conditioned()) else { return };
        if wants.text_dim.is_some() {
            p.text = c.text.clone();
        }
        if let (true, Some(region)) = (wants.anatomy, &c.anatomy) {
            let f = &self.frame;
            let grid = self.orientation.grid_dims(self.volume.dims);
            sc.valued.clear();
            sc.valued.resize(self.slice_len(), 0);
            self.orientation.for_each_in_slice(grid, z, |i, g| sc.valued[i] = region[g] * 255);
            sc.resized.resize(f.new_h * f.new_w, 0);
            f.resize_u8(&sc.valued, &mut sc.resized);
            let mut plane = vec![0f32; f.s * f.s];
            for y in 0..f.new_h {
                for (d, &v) in plane[y * f.s..y * f.s + f.new_w].iter_mut().zip(&sc.resized[y * f.new_w..]) {
                    *d = v as f32 / 255.0;
                }
            }
            p.anatomy = Some(plane);
        }
    }

    /// Decodes `prompts` on slice `z` in one batched call per token layout and upsamples each answer.
    pub fn decode(&self, worker: Worker, z: usize, prompts: &[Prompt2d], sc: &mut Scratch) -> Result<Vec<SliceOut>> {
        let emb = self.embedding(worker, z, sc)?;
        let t = Instant::now();
        let dec = self.model.decode(worker, &emb, prompts)?;
        sc.stats.decode += t.elapsed();
        sc.stats.decoder_runs += prompts.len();
        sc.stats.decoder_batches += 1;
        let t = Instant::now();
        let n = self.slice_len();
        let threshold = self.model.mask_threshold();
        let outs = dec
            .iter()
            .map(|d| {
                let mut o = SliceOut { mask: vec![0; n], prob: vec![0; n], iou: d.iou, area: 0 };
                let mut area = 0;
                self.frame.upsample(&d.logits, |i, v| {
                    let fg = v > threshold;
                    o.mask[i] = fg as u8;
                    area += fg as usize;
                    o.prob[i] = (255.0 / (1.0 + (-v).exp()) + 0.5) as u8;
                });
                o.area = area;
                o
            })
            .collect();
        sc.stats.postprocess += t.elapsed();
        sc.stats.decoded_slices += 1;
        self.done.fetch_add(1, Ordering::Relaxed);
        Ok(outs)
    }
}

/// One output of a walk.
#[derive(Debug, Clone)]
pub struct Step {
    pub z: usize,
    pub out: SliceOut,
    /// Slices from the walk's anchor.
    pub distance: usize,
}

/// The result of one walk, in walk order.
pub type Steps = Vec<Step>;

/// Per-walk progress inside a sweep.
struct Live {
    next: usize,
    steps: Steps,
    stopped: bool,
    max_area: usize,
}

/// Runs `walks` (all going up when `up`, else down) together, slice by slice. A walk whose first step has
/// no seed must have a user box on its first slice (`prompts.boxes`).
/// `tick` runs before each slice on this thread; returning false cancels.
pub fn sweep<M: SliceModel>(
    stack: &Stack<'_, M>,
    worker: Worker,
    up: bool,
    walks: &[Walk],
    prompts: &SlicePrompts,
    sc: &mut Scratch,
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<Steps>> {
    sweep_at(stack, worker, up, walks, prompts, sc, tick, None)
}

/// No slice (a sweep that has not started or has ended).
const NOWHERE: usize = usize::MAX;

/// `sweep` that publishes the slice it stands on in `frontier`, for a helper that encodes ahead of it.
#[allow(clippy::too_many_arguments)]
fn sweep_at<M: SliceModel>(
    stack: &Stack<'_, M>,
    worker: Worker,
    up: bool,
    walks: &[Walk],
    prompts: &SlicePrompts,
    sc: &mut Scratch,
    tick: &mut dyn FnMut() -> bool,
    frontier: Option<&AtomicUsize>,
) -> Result<Vec<Steps>> {
    let mut live: Vec<Live> =
        walks.iter().map(|w| Live { next: w.first, steps: Vec::new(), stopped: false, max_area: 0 }).collect();
    let before = |a: usize, b: usize| if up { a < b } else { a > b };
    let in_range = |w: &Walk, z: usize| w.covers(up, z);
    // Each round handles the slice every pending walk is heading to first.
    while let Some(z) = live
        .iter()
        .zip(walks)
        .filter(|(l, w)| !l.stopped && in_range(w, l.next))
        .map(|(l, _)| l.next)
        .reduce(|a, b| if before(a, b) { a } else { b })
    {
        if stack.cancel.load(Ordering::Relaxed) || !tick() {
            return Err(Error::Cancelled);
        }
        if let Some(f) = frontier {
            f.store(z, Ordering::Release);
        }
        let mut members = Vec::new();
        let mut batch = Vec::new();
        for (k, (l, w)) in live.iter_mut().zip(walks).enumerate() {
            if l.stopped || l.next != z || !in_range(w, z) {
                continue;
            }
            let prev: Option<&[u8]> = match l.steps.last() {
                Some(s) => Some(&s.out.mask),
                None => w.seed.as_deref().map(|v| v.as_slice()),
            };
            let t = Instant::now();
            let b = prompts
                .boxes
                .get(&(w.object, z))
                .copied()
                .or_else(|| prev.and_then(|p| stack.mask_box(p, w.value, sc)))
                .or(w.fallback);
            sc.stats.preprocess += t.elapsed();
            let Some(b) = b else {
                l.stopped = true;
                continue;
            };
            let mut p = Prompt2d::from_box(b.map(|v| v as f32));
            if let Some(pts) = prompts.points.get(&(w.object, z)) {
                p.points = pts.clone();
            }
            stack.condition(prompts.conditioning.get(&w.object), z, &mut p, sc);
            members.push(k);
            batch.push(p);
        }
        if batch.is_empty() {
            continue;
        }
        let outs = stack.decode(worker, z, &batch, sc)?;
        for (k, out) in members.into_iter().zip(outs) {
            let (l, w) = (&mut live[k], &walks[k]);
            let guarded = match w.stop {
                Some((_, guard)) => !before(guard, z),
                None => true,
            };
            if let (Some((rule, _)), false) = (w.stop, guarded) {
                let prev = l.steps.last().map(|s| &s.out.mask).or(w.seed.as_deref());
                if rule.stop(&out, prev.map(|p| p.as_slice()), l.max_area).is_some() {
                    l.stopped = true;
                    continue;
                }
            }
            l.max_area = l.max_area.max(out.area);
            l.steps.push(Step { z, out, distance: z.abs_diff(w.anchor) });
            l.next = if up { z + 1 } else { z.wrapping_sub(1) };
        }
    }
    Ok(live.into_iter().map(|l| l.steps).collect())
}

/// Encodes, on `worker`, the slice just past the one a sweep stands on (`frontier`, direction `up`) when
/// `wanted` says the sweep will need it and no one has it yet, until `finished`. The sweep then finds
/// it ready (or in flight: the cache makes it wait instead of encoding it twice), so a single walk keeps
/// both workers' encoders busy. At most one slice past a walk that stops early is encoded for nothing.
fn prefetch_ahead<M: SliceModel>(
    stack: &Stack<'_, M>,
    worker: Worker,
    up: bool,
    frontier: &AtomicUsize,
    wanted: &dyn Fn(usize) -> bool,
    finished: &AtomicBool,
    sc: &mut Scratch,
) -> Result<()> {
    let d = stack.volume.dims[2];
    while !finished.load(Ordering::Acquire) && !stack.cancel.load(Ordering::Relaxed) {
        let f = frontier.load(Ordering::Acquire);
        let next = match (f, up) {
            (NOWHERE, _) => None,
            (f, true) => (f + 1 < d).then_some(f + 1),
            (f, false) => f.checked_sub(1),
        };
        match next {
            Some(z) if wanted(z) && !stack.cache.known((stack.orientation.axis(), z)) => {
                stack.embedding(worker, z, sc)?;
            }
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    Ok(())
}

/// Runs an up sweep and a down sweep, concurrently when the model has two workers. `progress` is polled
/// on the calling thread (every 10 ms while workers run); returning false cancels.
pub fn sweep_both<M: SliceModel>(
    stack: &Stack<'_, M>,
    up: &[Walk],
    down: &[Walk],
    prompts: &SlicePrompts,
    scratch: &mut [Scratch; 2],
    progress: &mut dyn FnMut() -> bool,
) -> Result<(Vec<Steps>, Vec<Steps>)> {
    sweep_both_ahead(stack, up, down, prompts, scratch, progress, &|_| false)
}

/// `sweep_both` where a worker without a sweep of its own (none given, or its own done) encodes the next
/// slice ahead of the other one: a slice the other sweep's walks will visit, or one `also_wanted` names
/// (the walks that will follow this sweep).
pub fn sweep_both_ahead<M: SliceModel>(
    stack: &Stack<'_, M>,
    up: &[Walk],
    down: &[Walk],
    prompts: &SlicePrompts,
    scratch: &mut [Scratch; 2],
    progress: &mut dyn FnMut() -> bool,
    also_wanted: &(dyn Fn(usize) -> bool + Sync),
) -> Result<(Vec<Steps>, Vec<Steps>)> {
    let [s0, s1] = scratch;
    if stack.model.workers() < 2 || (up.is_empty() && down.is_empty()) {
        let a = sweep(stack, Worker::Index(0), true, up, prompts, s0, progress)?;
        let b = sweep(stack, Worker::Index(0), false, down, prompts, s0, progress)?;
        return Ok((a, b));
    }
    let want_up = |z: usize| up.iter().any(|w| w.covers(true, z)) || also_wanted(z);
    let want_down = |z: usize| down.iter().any(|w| w.covers(false, z)) || also_wanted(z);
    let frontiers = [AtomicUsize::new(NOWHERE), AtomicUsize::new(NOWHERE)];
    let finished = [AtomicBool::new(false), AtomicBool::new(false)];
    let failed = Mutex::new(None);
    // Worker `me` runs its own sweep (when it has walks), then helps the other one until that ends.
    let job = |me: usize, walks: &[Walk], sc: &mut Scratch| -> Result<Vec<Steps>> {
        let (dir_up, other) = (me == 0, 1 - me);
        let r = sweep_at(stack, Worker::Index(me), dir_up, walks, prompts, sc, &mut || true, Some(&frontiers[me]));
        finished[me].store(true, Ordering::Release);
        if r.is_err() {
            stack.cancel.store(true, Ordering::Relaxed);
            return r;
        }
        let wanted: &dyn Fn(usize) -> bool = if other == 0 { &want_up } else { &want_down };
        if let Err(e) =
            prefetch_ahead(stack, Worker::Index(me), !dir_up, &frontiers[other], wanted, &finished[other], sc)
        {
            stack.cancel.store(true, Ordering::Relaxed);
            return Err(e);
        }
        r
    };
    let r = std::thread::scope(|scope| {
        let a = scope.spawn(|| job(0, up, s0));
        let b = scope.spawn(|| job(1, down, s1));
        while !(a.is_finished() && b.is_finished()) {
            if failed.lock().is_none() && !progress() {
                *failed.lock() = Some(Error::Cancelled);
                stack.cancel.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<Vec<Steps>>>| match h.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        };
        let (ra, rb) = (join(a), join(b));
        // A real error wins over the Cancelled that it caused in the other worker.
        match (ra, rb) {
            (Err(e), _) | (_, Err(e)) if !matches!(e, Error::Cancelled) => Err(e),
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => Err(Error::Cancelled),
        }
    });
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slice of `n` pixels whose first `area` pixels are foreground.
    fn out(n: usize, area: usize, iou: f32) -> SliceOut {
        let mut o = SliceOut::empty(n);
        o.mask[..area].fill(1);
        o.area = area;
        o.iou = iou;
        o
    }

    #[test]
    fn stop_rule_conditions() {
        let rule = StopRule { min_iou: 0.6, max_growth: 1.5, min_area_fraction: 0.25, min_continuity: 0.5 };
        let prev = out(100, 40, 0.9).mask;
        // Within every limit: 50 pixels after 40 (growth 1.25, Dice 0.89), a quarter of 200 or more.
        assert_eq!(rule.stop(&out(100, 50, 0.9), Some(&prev), 200), None);
        assert_eq!(rule.stop(&out(100, 0, 0.9), Some(&prev), 40), Some(Stop::Empty));
        assert_eq!(rule.stop(&out(100, 50, 0.59), Some(&prev), 50), Some(Stop::Unsure));
        assert_eq!(rule.stop(&out(100, 50, 0.6), Some(&prev), 50), None, "min_iou itself passes");
        // 61 > 1.5 × 40 grew; 60 is exactly the limit and does not.
        assert_eq!(rule.stop(&out(100, 61, 0.9), Some(&prev), 61), Some(Stop::Grew));
        assert_eq!(rule.stop(&out(100, 60, 0.9), Some(&prev), 60), None);
        // 49 < 0.25 × 200 shrank (Dice with the previous 40 is 0.9, so nothing else fires).
        assert_eq!(rule.stop(&out(100, 49, 0.9), Some(&prev), 200), Some(Stop::Shrank));
        assert_eq!(rule.stop(&out(100, 50, 0.9), Some(&prev), 200), None);
        // Same area, other pixels: Dice 0 with the previous mask.
        let mut moved = out(100, 40, 0.9);
        moved.mask.rotate_right(50);
        assert_eq!(rule.stop(&moved, Some(&prev), 40), Some(Stop::Jumped));
        // Dice exactly 0.5 (20 of 40 shared) passes.
        let mut half = out(100, 40, 0.9);
        half.mask.rotate_right(20);
        assert_eq!(rule.stop(&half, Some(&prev), 40), None);
    }

    #[test]
    fn stop_rule_without_a_previous_mask_and_the_order_of_reasons() {
        let rule = StopRule::default();
        // Neither growth nor continuity can be judged without a previous mask (or from an empty one).
        assert_eq!(rule.stop(&out(100, 90, 0.9), None, 0), None);
        assert_eq!(rule.stop(&out(100, 90, 0.9), Some(&[0; 100]), 90), Some(Stop::Jumped));
        let empty_prev = SliceOut::empty(100).mask;
        assert_eq!(
            StopRule { min_continuity: 0.0, ..rule }.stop(&out(100, 90, 0.9), Some(&empty_prev), 90),
            None,
            "growth from nothing is not a leak"
        );
        // Several reasons at once: the first in `Stop`'s order is reported.
        assert_eq!(rule.stop(&out(100, 0, 0.1), Some(&out(100, 5, 0.9).mask), 100), Some(Stop::Empty));
        assert_eq!(rule.stop(&out(100, 90, 0.1), Some(&out(100, 5, 0.9).mask), 100), Some(Stop::Unsure));
        assert_eq!(rule.stop(&out(100, 90, 0.9), Some(&out(100, 5, 0.9).mask), 100), Some(Stop::Grew));
    }
}
