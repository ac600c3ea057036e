//! A segmentation session: one volume, its objects and their prompts, the embedding cache they share, the
//! last result of every object, and the undo/redo history. One thread at a time.
//!
//! `run` brings every object's result up to date with its prompts, doing only the work that changed:
//! - an object with no result, or whose boxes or seed mask changed, or a new policy or axis, is propagated
//!   in full (the policy's passes);
//! - an object whose only change is added or removed points is *refined*: the touched slices are decoded
//!   again and propagation re-runs outward from them only as long as the mask keeps changing;
//! - embeddings come from the session cache, so no slice is encoded twice while the budget holds them.
//!
//! The state after every successful `run` is a checkpoint; `undo` returns to the previous checkpoint
//! (prompts and masks, exactly; prompt edits not yet run are dropped), `redo` goes forward again. Slices are shared between checkpoints, so a refinement's
//! checkpoint costs only the slices it changed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::sam2d::Sam2d;
use crate::ops::mask::{bbox_2d, dice, foreground};
use crate::pipeline::cache::{CacheStats, EmbeddingCache};
use crate::pipeline::frame::Frame;
use crate::pipeline::policy::{self, Fusion, Policy, ReseedOptions, SliceContext};
use crate::pipeline::postprocess::PostprocessOptions;
use crate::pipeline::propagate::{self, Object, Stats};
use crate::pipeline::sweep::{sweep_both, Scratch, SliceOut, SlicePrompts, Stack, Step, StopRule, Walk};
use crate::volume::{BoxIjk, Geometry, U8Volume};

/// A point prompt in voxel indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointIjk {
    pub ijk: [usize; 3],
    pub positive: bool,
}

/// Everything the host said about one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectPrompts {
    pub label: u8,
    /// 3D boxes (a box on one slice has k0 = k1). The first one's middle slice seeds the reference walk.
    pub boxes: Vec<BoxIjk>,
    pub points: Vec<PointIjk>,
    /// A coarse mask on the input grid (nonzero = inside), i fastest.
    pub seed: Option<Arc<Vec<u8>>>,
}

/// Which objects win where masks overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Later objects overwrite earlier ones (what the reference does).
    Overwrite,
    /// A voxel keeps the first object that claimed it: objects never overwrite each other.
    Keep,
    /// The object with the higher probability wins.
    Confidence,
}

/// Session settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SessionOptions {
    pub policy: Policy,
    /// Propagation axis: 2 = along k (axial for most CT), 1 = along j, 0 = along i.
    pub axis: u8,
    /// Embedding cache budget in bytes (LRU beyond it).
    pub cache_budget: usize,
    /// None: the policy's default (Overwrite for the reference, else Keep).
    pub overlap: Option<Overlap>,
    /// Applied to every object after its policy.
    pub postprocess: PostprocessOptions,
    /// Refinement stops propagating once a re-decoded slice agrees with the old one to this Dice.
    pub refine_tolerance: f64,
    /// Checkpoints kept for undo.
    pub history: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            policy: Policy::best(),
            axis: 2,
            cache_budget: 1 << 30,
            overlap: None,
            postprocess: PostprocessOptions::new(),
            refine_tolerance: 0.99,
            history: 64,
        }
    }
}

impl SessionOptions {
    pub fn with_policy(mut self, p: Policy) -> Self {
        self.policy = p;
        self
    }
    pub fn with_axis(mut self, a: u8) -> Self {
        self.axis = a;
        self
    }
    pub fn with_cache_budget(mut self, bytes: usize) -> Self {
        self.cache_budget = bytes;
        self
    }
    pub fn with_overlap(mut self, o: Overlap) -> Self {
        self.overlap = Some(o);
        self
    }
    pub fn with_postprocess(mut self, p: PostprocessOptions) -> Self {
        self.postprocess = p;
        self
    }
    pub fn overlap_rule(&self) -> Overlap {
        self.overlap.unwrap_or(match self.policy {
            Policy::Reference => Overlap::Overwrite,
            _ => Overlap::Keep,
        })
    }
}

/// One object's result along its stack.
#[derive(Debug, Clone)]
struct ObjectResult {
    axis: u8,
    policy: Policy,
    postprocess: PostprocessOptions,
    /// The prompts it was computed from.
    prompts: ObjectPrompts,
    slices: Vec<Option<Arc<SliceOut>>>,
}

#[derive(Debug, Clone)]
struct ObjectState {
    prompts: ObjectPrompts,
    result: Option<ObjectResult>,
}

/// What the last `run` did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub stats: Stats,
    /// Slices encoded during this run (0 for a pure refinement).
    pub slices_encoded: usize,
    /// Slices decoded during this run (all objects).
    pub slices_decoded: usize,
    /// Objects propagated in full / refined / left as they were.
    pub full: Vec<u8>,
    pub refined: Vec<u8>,
    pub unchanged: Vec<u8>,
    pub cache: CacheStats,
    pub time: Duration,
}

/// Per-object summary of the current result.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSummary {
    pub label: u8,
    pub voxels: usize,
    pub slices: usize,
    pub mean_iou: f32,
    /// Mean |2p − 1| over the object's voxels.
    pub confidence: f32,
    /// (slice along the axis, area, predicted IoU, mean |2p − 1| over the slice's mask, or 1 when empty).
    pub per_slice: Vec<(usize, usize, f32, f32)>,
}

pub struct Session {
    engine: Arc<Engine>,
    image: U8Volume,
    geometry: Geometry,
    /// Stacks for axes 0 and 1 (slices along i or j), made on first use.
    stacks: [Option<U8Volume>; 2],
    cache: EmbeddingCache,
    objects: Vec<ObjectState>,
    opts: SessionOptions,
    /// States after each successful run; `objects` equals `history[pos]` right after a run or undo/redo.
    history: Vec<Vec<ObjectState>>,
    pos: usize,
    /// Prompts or options changed since the last run, undo or redo.
    dirty: bool,
    cancel: Arc<AtomicBool>,
}

/// In-plane axes of a stack along `axis`: (columns, rows).
fn plane_axes(axis: u8) -> (usize, usize) {
    match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    }
}

impl Session {
    /// A session over an already intensity-mapped volume (i fastest).
    pub fn new(engine: Arc<Engine>, image: U8Volume, geometry: Geometry, opts: SessionOptions) -> Result<Session> {
        if opts.axis > 2 {
            return Err(Error::InvalidArgument(format!("propagation axis {} is not 0, 1 or 2", opts.axis)));
        }
        let cache = EmbeddingCache::new(opts.cache_budget, engine.model.embedding_len())?;
        Ok(Session {
            engine,
            image,
            geometry,
            stacks: [None, None],
            cache,
            objects: Vec::new(),
            opts,
            history: Vec::new(),
            pos: 0,
            dirty: false,
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    pub fn dims(&self) -> [usize; 3] {
        self.image.dims
    }
    pub fn image(&self) -> &U8Volume {
        &self.image
    }
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
    pub fn options(&self) -> &SessionOptions {
        &self.opts
    }
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }
    /// A flag any thread may set to cancel the run in progress, or the next one (cleared when a run ends).
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Changes policy, axis, overlap or post-processing; the next run recomputes what they affect. The cache
    /// budget cannot change after creation.
    pub fn set_options(&mut self, opts: SessionOptions) -> Result<()> {
        if opts.axis > 2 {
            return Err(Error::InvalidArgument(format!("propagation axis {} is not 0, 1 or 2", opts.axis)));
        }
        if opts.cache_budget != self.opts.cache_budget {
            return Err(Error::InvalidArgument("the embedding cache budget is fixed when the session is made".into()));
        }
        self.opts = opts;
        self.dirty = true;
        Ok(())
    }

    pub fn labels(&self) -> Vec<u8> {
        self.objects.iter().map(|o| o.prompts.label).collect()
    }

    fn object_mut(&mut self, label: u8) -> Result<&mut ObjectState> {
        self.dirty = true;
        if label == 0 {
            return Err(Error::InvalidPrompt("label 0 is the background".into()));
        }
        if let Some(i) = self.objects.iter().position(|o| o.prompts.label == label) {
            return Ok(&mut self.objects[i]);
        }
        if self.objects.len() >= 255 {
            return Err(Error::InvalidPrompt("at most 255 objects fit a u8 label mask".into()));
        }
        self.objects.push(ObjectState { prompts: ObjectPrompts { label, ..Default::default() }, result: None });
        Ok(self.objects.last_mut().expect("pushed"))
    }

    /// Adds a 3D box (inclusive voxel indices) to object `label`, creating the object if needed.
    pub fn add_box(&mut self, label: u8, b: BoxIjk) -> Result<()> {
        b.validate(self.image.dims)?;
        let o = self.object_mut(label)?;
        if o.prompts.boxes.contains(&b) {
            return Err(Error::InvalidPrompt(format!("object {label} already has the box {:?}..{:?}", b.min, b.max)));
        }
        o.prompts.boxes.push(b);
        Ok(())
    }

    /// Adds a positive or negative point to object `label`.
    pub fn add_point(&mut self, label: u8, p: PointIjk) -> Result<()> {
        let d = self.image.dims;
        if (0..3).any(|a| p.ijk[a] >= d[a]) {
            return Err(Error::InvalidPrompt(format!("point {:?} lies outside the volume of dims {d:?}", p.ijk)));
        }
        let o = self.object_mut(label)?;
        if o.prompts.points.contains(&p) {
            return Err(Error::InvalidPrompt(format!("object {label} already has this point at {:?}", p.ijk)));
        }
        o.prompts.points.push(p);
        Ok(())
    }

    /// Removes the point of `label` at `ijk` (the most recent one if several).
    pub fn remove_point(&mut self, label: u8, ijk: [usize; 3]) -> Result<()> {
        let o = self.existing(label)?;
        let i = o
            .prompts
            .points
            .iter()
            .rposition(|p| p.ijk == ijk)
            .ok_or_else(|| Error::InvalidArgument(format!("object {label} has no point at {ijk:?}")))?;
        o.prompts.points.remove(i);
        Ok(())
    }

    /// Sets the seed (coarse) mask of `label`: `mask` on the input grid, i fastest, nonzero = inside.
    pub fn set_seed(&mut self, label: u8, mask: Vec<u8>) -> Result<()> {
        let n: usize = self.image.dims.iter().product();
        if mask.len() != n {
            return Err(Error::ShapeMismatch(format!(
                "seed mask has {} voxels; the volume of dims {:?} has {n}",
                mask.len(),
                self.image.dims
            )));
        }
        if !mask.iter().any(|&v| v != 0) {
            return Err(Error::InvalidPrompt(format!("seed mask of object {label} is empty")));
        }
        self.object_mut(label)?.prompts.seed = Some(Arc::new(mask.into_iter().map(|v| (v != 0) as u8).collect()));
        Ok(())
    }

    fn existing(&mut self, label: u8) -> Result<&mut ObjectState> {
        self.dirty = true;
        self.objects
            .iter_mut()
            .find(|o| o.prompts.label == label)
            .ok_or_else(|| Error::InvalidArgument(format!("no object has label {label}")))
    }

    pub fn remove_object(&mut self, label: u8) -> Result<()> {
        let before = self.objects.len();
        self.dirty = true;
        self.objects.retain(|o| o.prompts.label != label);
        if self.objects.len() == before {
            return Err(Error::InvalidArgument(format!("no object has label {label}")));
        }
        Ok(())
    }

    pub fn clear(&mut self) {
        self.dirty = true;
        self.objects.clear();
    }

    pub fn can_undo(&self) -> bool {
        self.pos > 0 || (self.dirty && !self.history.is_empty())
    }
    pub fn can_redo(&self) -> bool {
        self.pos + 1 < self.history.len()
    }

    /// Drops prompt edits not yet run, returning to the last run's result; without such edits, returns to
    /// the result of the run before (prompts and masks exactly).
    pub fn undo(&mut self) -> Result<()> {
        if !self.can_undo() {
            return Err(Error::NothingToUndo("nothing to undo".into()));
        }
        if !self.dirty {
            self.pos -= 1;
        }
        self.dirty = false;
        self.objects = self.history[self.pos].clone();
        Ok(())
    }

    /// Goes forward again to the result that `undo` left.
    pub fn redo(&mut self) -> Result<()> {
        if !self.can_redo() {
            return Err(Error::NothingToUndo("nothing to redo".into()));
        }
        self.pos += 1;
        self.dirty = false;
        self.objects = self.history[self.pos].clone();
        Ok(())
    }

    /// The stack for `axis` (slices along it; columns and rows are the other axes in order).
    fn stack_volume(&mut self, axis: u8) -> &U8Volume {
        if axis == 2 {
            return &self.image;
        }
        let slot = axis as usize;
        if self.stacks[slot].is_none() {
            let d = self.image.dims;
            let (u, v) = plane_axes(axis);
            let a = axis as usize;
            let mut out = U8Volume::zeros([d[u], d[v], d[a]]);
            let mut ijk = [0usize; 3];
            for z in 0..d[a] {
                for y in 0..d[v] {
                    for x in 0..d[u] {
                        ijk[a] = z;
                        ijk[u] = x;
                        ijk[v] = y;
                        out.data[(z * d[v] + y) * d[u] + x] = self.image.data[(ijk[2] * d[1] + ijk[1]) * d[0] + ijk[0]];
                    }
                }
            }
            self.stacks[slot] = Some(out);
        }
        self.stacks[slot].as_ref().expect("made")
    }

    /// A box in stack coordinates: (x0, y0, x1, y1, z0, z1).
    fn stack_box(axis: u8, b: &BoxIjk) -> BoxIjk {
        let (u, v) = plane_axes(axis);
        let a = axis as usize;
        BoxIjk { min: [b.min[u], b.min[v], b.min[a]], max: [b.max[u], b.max[v], b.max[a]] }
    }

    fn stack_point(axis: u8, p: [usize; 3]) -> [usize; 3] {
        let (u, v) = plane_axes(axis);
        [p[u], p[v], p[axis as usize]]
    }

    /// Brings every object's result up to date; see the module docs for what is recomputed.
    pub fn run(&mut self, progress: Option<&mut dyn FnMut(f32) -> bool>) -> Result<RunReport> {
        if self.objects.is_empty() {
            return Err(Error::InvalidPrompt("no objects: add a box, point or seed mask first".into()));
        }
        for o in &self.objects {
            let p = &o.prompts;
            if p.boxes.is_empty() && p.seed.is_none() && !p.points.iter().any(|q| q.positive) {
                return Err(Error::InvalidPrompt(format!(
                    "object {} has no box, seed mask or positive point to start from",
                    p.label
                )));
            }
        }
        let r = self.run_inner(progress);
        // A cancel request ends with the run it reached (or that failed meanwhile).
        self.cancel.store(false, Ordering::SeqCst);
        r
    }

    fn run_inner(&mut self, progress: Option<&mut dyn FnMut(f32) -> bool>) -> Result<RunReport> {
        let t0 = Instant::now();
        let before_cache = self.cache.stats();
        let axis = self.opts.axis;
        self.stack_volume(axis);
        let engine = self.engine.clone();
        let model = &engine.model;
        let volume = if axis == 2 { &self.image } else { self.stacks[axis as usize].as_ref().expect("made") };
        let [w, h, d] = volume.dims;
        let (run_cancel, done) = (AtomicBool::new(false), AtomicUsize::new(0));
        let stack = Stack {
            model,
            volume,
            frame: Frame::new(h, w, model.input_size),
            cache: &self.cache,
            axis,
            cancel: &run_cancel,
            done: &done,
        };
        let mut scratch = [Scratch::new(model), Scratch::new(model)];

        // Sort objects into full runs, refinements and the unchanged.
        let mut full = Vec::new();
        let mut refine = Vec::new();
        let mut report = RunReport::default();
        for (k, o) in self.objects.iter().enumerate() {
            match &o.result {
                Some(r)
                    if r.axis == axis
                        && r.policy == self.opts.policy
                        && r.postprocess == self.opts.postprocess
                        && r.prompts.boxes == o.prompts.boxes
                        && r.prompts.seed == o.prompts.seed =>
                {
                    if r.prompts.points == o.prompts.points {
                        report.unchanged.push(o.prompts.label);
                    } else {
                        refine.push(k);
                    }
                }
                _ => full.push(k),
            }
        }
        if full.is_empty() && refine.is_empty() {
            // Nothing to do: no checkpoint, and redo stays possible. The host still sees its progress end.
            if let Some(p) = progress {
                if self.cancel.load(Ordering::Relaxed) || !p(1.0) {
                    return Err(Error::Cancelled);
                }
            }
            report.cache = self.cache.stats();
            report.stats.objects = self.summaries().iter().map(|s| (s.label, s.slices, s.mean_iou)).collect();
            report.time = t0.elapsed();
            return Ok(report);
        }
        let expected: usize = full
            .iter()
            .map(|&k| {
                self.objects[k]
                    .prompts
                    .boxes
                    .iter()
                    .map(|b| b.max[axis as usize] - b.min[axis as usize] + 1)
                    .sum::<usize>()
                    .max(d / 4)
            })
            .sum::<usize>()
            * match self.opts.policy {
                Policy::Reference => 1,
                _ => 2,
            }
            + refine.len() * 8;
        let mut user_progress = progress;
        let cancel = self.cancel.clone();
        let mut tick = || {
            if cancel.load(Ordering::Relaxed) {
                return false;
            }
            match user_progress.as_mut() {
                Some(p) => p((done.load(Ordering::Relaxed) as f32 / expected.max(1) as f32).min(0.99)),
                None => true,
            }
        };

        let specs: Vec<ObjectPrompts> = full.iter().map(|&k| self.objects[k].prompts.clone()).collect();
        let full_results = run_full(&stack, &specs, &self.opts, &mut scratch, &mut tick)?;
        let mut refined_results = Vec::new();
        for &k in &refine {
            let o = &self.objects[k];
            let r = o.result.as_ref().expect("refinements have a result");
            refined_results.push(refine_object(&stack, k, &o.prompts, r, &self.opts, &mut scratch, &mut tick)?);
        }
        if let Some(p) = user_progress.as_mut() {
            p(1.0);
        }

        // Everything succeeded: install the new results, then checkpoint them.
        for (&k, slices) in full.iter().zip(full_results) {
            let o = &mut self.objects[k];
            o.result = Some(ObjectResult {
                axis,
                policy: self.opts.policy,
                postprocess: self.opts.postprocess,
                prompts: o.prompts.clone(),
                slices,
            });
            report.full.push(o.prompts.label);
        }
        for (&k, slices) in refine.iter().zip(refined_results) {
            let o = &mut self.objects[k];
            let r = o.result.as_mut().expect("refined");
            r.slices = slices;
            r.prompts = o.prompts.clone();
            report.refined.push(o.prompts.label);
        }
        self.history.truncate(if self.history.is_empty() { 0 } else { self.pos + 1 });
        self.history.push(self.objects.clone());
        if self.history.len() > self.opts.history.max(1) {
            self.history.remove(0);
        }
        self.pos = self.history.len() - 1;
        self.dirty = false;
        for sc in &scratch {
            report.stats.add_sweeps(&sc.stats);
            report.slices_decoded += sc.stats.decoded_slices;
        }
        report.cache = self.cache.stats();
        report.slices_encoded = report.cache.encoded - before_cache.encoded;
        report.stats.slices_encoded = report.slices_encoded;
        report.stats.objects = self.summaries().iter().map(|s| (s.label, s.slices, s.mean_iou)).collect();
        report.time = t0.elapsed();
        Ok(report)
    }

    /// Maps stack coordinates of `axis` back to the input grid index.
    fn voxel_index(&self, axis: u8, x: usize, y: usize, z: usize) -> usize {
        let d = self.image.dims;
        let (u, v) = plane_axes(axis);
        let mut ijk = [0usize; 3];
        ijk[u] = x;
        ijk[v] = y;
        ijk[axis as usize] = z;
        (ijk[2] * d[1] + ijk[1]) * d[0] + ijk[0]
    }

    /// Calls `f(voxel index on the input grid, mask, prob)` for every visited voxel of an object result.
    fn for_each_voxel(&self, r: &ObjectResult, mut f: impl FnMut(usize, u8, u8)) {
        let d = self.image.dims;
        let (u, v) = plane_axes(r.axis);
        let (w, h) = (d[u], d[v]);
        for (z, s) in r.slices.iter().enumerate() {
            let Some(s) = s else { continue };
            if r.axis == 2 {
                let base = z * w * h;
                for (i, (&m, &p)) in s.mask.iter().zip(&s.prob).enumerate() {
                    f(base + i, m, p);
                }
            } else {
                for y in 0..h {
                    for x in 0..w {
                        let i = y * w + x;
                        f(self.voxel_index(r.axis, x, y, z), s.mask[i], s.prob[i]);
                    }
                }
            }
        }
    }

    /// The label mask on the input grid (i fastest) and, when asked, the confidence map: for a labelled
    /// voxel |2p − 1| of the object that holds it; for a background voxel the lowest |2p − 1| among the
    /// objects that looked at it (how sure the engine is that nothing is there), 1 where none did.
    pub fn compose(&self, with_confidence: bool) -> (U8Volume, Option<Vec<f32>>) {
        let (mask, coded) = self.compose_coded(with_confidence);
        (mask, coded.map(|c| c.into_iter().map(confidence_of).collect()))
    }

    /// `compose` with the confidence kept as its byte code (`confidence_of` turns it into the value): a
    /// quarter of the memory, for callers that convert voxel by voxel into their own buffer.
    pub fn compose_coded(&self, with_confidence: bool) -> (U8Volume, Option<Vec<u8>>) {
        let dims = self.image.dims;
        let n: usize = dims.iter().product();
        let mut mask = U8Volume::zeros(dims);
        let mut best = vec![0u8; if self.opts.overlap_rule() == Overlap::Confidence { n } else { 0 }];
        let mut conf = with_confidence.then(|| vec![u8::MAX; n]);
        let rule = self.opts.overlap_rule();
        for o in &self.objects {
            let Some(r) = &o.result else { continue };
            let label = o.prompts.label;
            self.for_each_voxel(r, |i, m, p| {
                let c = (2 * p as i16 - 255).unsigned_abs() as u8;
                if m > 0 {
                    let take = match rule {
                        Overlap::Overwrite => true,
                        Overlap::Keep => mask.data[i] == 0,
                        Overlap::Confidence => mask.data[i] == 0 || p > best[i],
                    };
                    if take {
                        mask.data[i] = label;
                        if rule == Overlap::Confidence {
                            best[i] = p;
                        }
                        if let Some(cv) = conf.as_mut() {
                            cv[i] = c;
                        }
                    }
                } else if let Some(cv) = conf.as_mut() {
                    if mask.data[i] == 0 {
                        cv[i] = cv[i].min(c);
                    }
                }
            });
        }
        (mask, conf)
    }

    /// Per-object summaries of the current results.
    pub fn summaries(&self) -> Vec<ObjectSummary> {
        let mut out = Vec::new();
        for o in &self.objects {
            let Some(r) = &o.result else { continue };
            let mut s = ObjectSummary {
                label: o.prompts.label,
                voxels: 0,
                slices: 0,
                mean_iou: 0.0,
                confidence: 0.0,
                per_slice: Vec::new(),
            };
            let mut conf_sum = 0.0f64;
            for (z, sl) in r.slices.iter().enumerate() {
                let Some(sl) = sl else { continue };
                s.slices += 1;
                s.mean_iou += sl.iou;
                let mut c = 0.0f64;
                for (&m, &p) in sl.mask.iter().zip(&sl.prob) {
                    if m > 0 {
                        c += (2.0 * p as f64 - 255.0).abs() / 255.0;
                    }
                }
                conf_sum += c;
                s.voxels += sl.area;
                let mean = if sl.area > 0 { (c / sl.area as f64) as f32 } else { 1.0 };
                s.per_slice.push((z, sl.area, sl.iou, mean));
            }
            s.mean_iou /= s.slices.max(1) as f32;
            s.confidence = if s.voxels > 0 { (conf_sum / s.voxels as f64) as f32 } else { 0.0 };
            out.push(s);
        }
        out
    }
}

/// Stack-coordinate prompts of one object.
struct StackPrompts {
    boxes: Vec<BoxIjk>,
    /// (z, x, y, positive)
    points: Vec<(usize, usize, usize, bool)>,
    seed: Option<Vec<Option<SliceOut>>>,
}

fn stack_prompts(stack: &Stack<'_>, p: &ObjectPrompts, dims: [usize; 3]) -> StackPrompts {
    let axis = stack.axis;
    let boxes = p.boxes.iter().map(|b| Session::stack_box(axis, b)).collect();
    let points = p
        .points
        .iter()
        .map(|q| {
            let s = Session::stack_point(axis, q.ijk);
            (s[2], s[0], s[1], q.positive)
        })
        .collect();
    let seed = p.seed.as_ref().map(|m| seed_slices(stack, m, dims));
    StackPrompts { boxes, points, seed }
}

/// A seed mask as coarse slices along the stack: probability 1 inside, 0 outside, IoU 1.
fn seed_slices(stack: &Stack<'_>, m: &[u8], dims: [usize; 3]) -> Vec<Option<SliceOut>> {
    let [w, h, d] = stack.volume.dims;
    let (u, v) = plane_axes(stack.axis);
    let a = stack.axis as usize;
    let mut out: Vec<Option<SliceOut>> = vec![None; d];
    let mut ijk = [0usize; 3];
    for z in 0..d {
        let mut s = SliceOut::empty(w * h);
        for y in 0..h {
            for x in 0..w {
                ijk[a] = z;
                ijk[u] = x;
                ijk[v] = y;
                let on = m[(ijk[2] * dims[1] + ijk[1]) * dims[0] + ijk[0]] != 0;
                s.mask[y * w + x] = on as u8;
                s.prob[y * w + x] = if on { 255 } else { 0 };
                s.area += on as usize;
            }
        }
        if s.area > 0 {
            s.iou = 1.0;
            out[z] = Some(s);
        }
    }
    out
}

/// The frame points of one object on slice z, as the decoder wants them.
fn frame_points(frame: &Frame, pts: &[(usize, usize, usize, bool)], z: usize) -> Vec<(f32, f32, f32)> {
    let ratio = frame.s as f32 / frame.h.max(frame.w) as f32;
    pts.iter()
        .filter(|p| p.0 == z)
        .map(|&(_, x, y, pos)| (x as f32 * ratio, y as f32 * ratio, if pos { 1.0 } else { 0.0 }))
        .collect()
}

/// Full propagation of several objects under the session's policy; returns each object's slices.
fn run_full(
    stack: &Stack<'_>,
    specs: &[ObjectPrompts],
    opts: &SessionOptions,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<Vec<Option<Arc<SliceOut>>>>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let [w, h, d] = stack.volume.dims;
    let dims3 = {
        // The input grid's dims, recovered from the stack's axis order.
        let (u, v) = plane_axes(stack.axis);
        let mut g = [0usize; 3];
        g[u] = w;
        g[v] = h;
        g[stack.axis as usize] = d;
        g
    };
    let sp: Vec<StackPrompts> = specs.iter().map(|p| stack_prompts(stack, p, dims3)).collect();

    // Coarse pass: the reference walks from each object's boxes (a seed mask, when given, is the coarse
    // result itself; points-only objects start from their positive points).
    let mut coarse: Vec<Vec<Option<SliceOut>>> = vec![Vec::new(); specs.len()];
    let mut ref_objects = Vec::new();
    let mut ref_index = Vec::new();
    for (k, s) in sp.iter().enumerate() {
        if let Some(seed) = &s.seed {
            if opts.policy == Policy::Reference && s.boxes.is_empty() {
                // The reference takes a box: the seed's 3D bounding box.
                ref_objects.push(Object { label: specs[k].label, bbox: seed_box(seed, w, h) });
                ref_index.push(k);
            } else {
                coarse[k] = seed.clone();
            }
        } else if let Some(b) = s.boxes.first() {
            ref_objects.push(Object { label: specs[k].label, bbox: *b });
            ref_index.push(k);
        }
    }
    let mut slice_prompts = SlicePrompts::default();
    for (k, s) in sp.iter().enumerate() {
        for &(z, ..) in &s.points {
            slice_prompts.points.entry((k, z)).or_insert_with(|| frame_points(&stack.frame, &s.points, z));
        }
        // Further boxes re-prompt their own middle slice.
        for b in s.boxes.iter().skip(1) {
            let z = (b.max[2] - b.min[2]) / 2 + b.min[2];
            slice_prompts.boxes.insert((k, z), propagate::frame_box(&stack.frame, b));
        }
    }
    if !ref_objects.is_empty() {
        let slices = reference_with_prompts(stack, &ref_objects, &ref_index, &sp, &slice_prompts, scratch, tick)?;
        for (i, s) in ref_index.iter().zip(slices) {
            coarse[*i] = s;
        }
    }
    // Points-only objects: seed walks from each slice with positive points.
    let pts_only: Vec<usize> = (0..sp.len()).filter(|&k| sp[k].seed.is_none() && sp[k].boxes.is_empty()).collect();
    if !pts_only.is_empty() {
        let slices = points_only(stack, &pts_only, &sp, &slice_prompts, opts, scratch, tick)?;
        for (k, s) in pts_only.iter().zip(slices) {
            coarse[*k] = s;
        }
    }

    let mut results: Vec<Vec<Option<SliceOut>>> = match opts.policy {
        Policy::Reference => coarse,
        Policy::Reseed(ro) => reseed(stack, &sp, coarse, &slice_prompts, &ro, scratch, tick)?,
    };
    for r in results.iter_mut() {
        let pp = match opts.policy {
            Policy::Reseed(ro) => Some(ro.postprocess),
            Policy::Reference => None,
        };
        for p in pp.into_iter().chain(std::iter::once(opts.postprocess)) {
            if !p.is_noop() {
                postprocess_slices(r, w, h, &p);
            }
        }
    }
    Ok(results.into_iter().map(|v| v.into_iter().map(|s| s.map(Arc::new)).collect()).collect())
}

fn seed_box(seed: &[Option<SliceOut>], w: usize, h: usize) -> BoxIjk {
    let mut b = BoxIjk { min: [usize::MAX; 3], max: [0; 3] };
    for (z, s) in seed.iter().enumerate() {
        let Some(s) = s else { continue };
        if let Some([x0, y0, x1, y1]) = bbox_2d(&s.mask, w, h) {
            b.min = [b.min[0].min(x0), b.min[1].min(y0), b.min[2].min(z)];
            b.max = [b.max[0].max(x1), b.max[1].max(y1), b.max[2].max(z)];
        }
    }
    b
}

/// The reference walks, with user points and extra boxes on their slices, over `objects` (stack coords).
fn reference_with_prompts(
    stack: &Stack<'_>,
    objects: &[Object],
    index: &[usize],
    sp: &[StackPrompts],
    prompts: &SlicePrompts,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<Vec<Option<SliceOut>>>> {
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
    }
    let mut ranged: Vec<Object> = objects.to_vec();
    for (n, &k) in index.iter().enumerate() {
        for b in &sp[k].boxes {
            ranged[n].bbox.min[2] = ranged[n].bbox.min[2].min(b.min[2]);
            ranged[n].bbox.max[2] = ranged[n].bbox.max[2].max(b.max[2]);
        }
    }
    propagate::reference_slices_with(stack, objects, &ranged, &local, scratch, tick)
}

/// Objects given only points: each slice with positive points is decoded from its points alone, then
/// walks outward under the stop rule.
fn points_only(
    stack: &Stack<'_>,
    ks: &[usize],
    sp: &[StackPrompts],
    prompts: &SlicePrompts,
    opts: &SessionOptions,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<Vec<Option<SliceOut>>>> {
    let d = stack.volume.dims[2];
    let rule = match opts.policy {
        Policy::Reseed(ro) => ro.stop,
        Policy::Reference => StopRule::default(),
    };
    let mut out = Vec::new();
    for &k in ks {
        let mut slices: Vec<Option<SliceOut>> = vec![None; d];
        let mut zs: Vec<usize> = sp[k].points.iter().filter(|p| p.3).map(|p| p.0).collect();
        zs.sort_unstable();
        zs.dedup();
        for &z in &zs {
            let pts = prompts.points.get(&(k, z)).cloned().unwrap_or_default();
            let p = crate::model::sam2d::Prompt2d { points: pts, ..Default::default() };
            let o = stack.decode(0, z, std::slice::from_ref(&p), &mut scratch[0])?.remove(0);
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

/// Re-seeding from reliable key slices and confidence fusion with the coarse slices (policy module docs).
fn reseed(
    stack: &Stack<'_>,
    sp: &[StackPrompts],
    coarse: Vec<Vec<Option<SliceOut>>>,
    prompts: &SlicePrompts,
    ro: &ReseedOptions,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<Vec<Option<SliceOut>>>> {
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
        let mut slices: Vec<Option<SliceOut>> = vec![None; d];
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

/// Applies post-processing to an object's slices as one 3D mask; probabilities follow the mask.
fn postprocess_slices(slices: &mut [Option<SliceOut>], w: usize, h: usize, p: &PostprocessOptions) {
    let d = slices.len();
    let n = w * h;
    let mut vol = crate::ops::mask::slices_to_dense(&policy::slice_masks(slices), n);
    p.apply(&mut vol, [w, h, d], 1);
    for (z, s) in slices.iter_mut().enumerate() {
        let new = &vol[z * n..(z + 1) * n];
        match s {
            Some(s) => {
                for i in 0..n {
                    match (s.mask[i], new[i]) {
                        (1, 0) => s.prob[i] = s.prob[i].min(127),
                        (0, 1) => s.prob[i] = s.prob[i].max(128),
                        _ => {}
                    }
                }
                s.mask.copy_from_slice(new);
                s.area = new.iter().map(|&m| m as usize).sum();
            }
            None if new.iter().any(|&m| m > 0) => {
                let mut o = SliceOut::empty(n);
                for i in 0..n {
                    o.mask[i] = new[i];
                    o.prob[i] = if new[i] > 0 { 128 } else { 0 };
                }
                o.area = new.iter().map(|&m| m as usize).sum();
                *s = Some(o);
            }
            None => {}
        }
    }
}

/// Interactive refinement of one object: the slices whose points changed are decoded again (box from the
/// current mask there, plus all its points), and each change is propagated outward slice by slice until a
/// re-decoded slice agrees with the current one to `refine_tolerance` (Dice), or it ends.
fn refine_object(
    stack: &Stack<'_>,
    k: usize,
    now: &ObjectPrompts,
    old: &ObjectResult,
    opts: &SessionOptions,
    scratch: &mut [Scratch; 2],
    tick: &mut dyn FnMut() -> bool,
) -> Result<Vec<Option<Arc<SliceOut>>>> {
    let d = stack.volume.dims[2];
    let axis = stack.axis;
    let to_stack = |p: &PointIjk| {
        let s = Session::stack_point(axis, p.ijk);
        (s[2], s[0], s[1], p.positive)
    };
    let pts_now: Vec<_> = now.points.iter().map(to_stack).collect();
    let pts_old: Vec<_> = old.prompts.points.iter().map(to_stack).collect();
    let mut touched: Vec<usize> = pts_now
        .iter()
        .filter(|p| !pts_old.contains(p))
        .chain(pts_old.iter().filter(|p| !pts_now.contains(p)))
        .map(|p| p.0)
        .collect();
    touched.sort_unstable();
    touched.dedup();
    let mut slices = old.slices.clone();
    let mut prompts = SlicePrompts::default();
    for &(z, ..) in &pts_now {
        prompts.points.entry((k, z)).or_insert_with(|| frame_points(&stack.frame, &pts_now, z));
    }
    let user_boxes: Vec<BoxIjk> = now.boxes.iter().map(|b| Session::stack_box(axis, b)).collect();
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
            .map(|b| propagate::frame_box(&stack.frame, b))
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
        let mut p = crate::model::sam2d::Prompt2d { points: pts, ..Default::default() };
        p.bbox = b.map(|b| b.map(|v| v as f32));
        let out = stack.decode(Sam2d::WIDE, z, std::slice::from_ref(&p), &mut scratch[0])?.remove(0);
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
                let steps = crate::pipeline::sweep::sweep(
                    stack,
                    Sam2d::WIDE,
                    up,
                    &[walk],
                    &prompts,
                    &mut scratch[0],
                    &mut || true,
                )?;
                let Some(st) = steps.into_iter().next().and_then(|s| s.into_iter().next()) else { break };
                let same = dice(foreground(&st.out.mask), foreground(&old_s.mask)) >= opts.refine_tolerance;
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

/// The confidence |2p − 1| that a `compose_coded` byte |2·255p − 255| stands for.
pub fn confidence_of(code: u8) -> f32 {
    code as f32 / 255.0
}
