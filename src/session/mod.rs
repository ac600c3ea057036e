//! A segmentation session: one volume, its objects and their prompts, the embedding cache they share, the
//! last result of every object, and the undo/redo history. One thread at a time.
//!
//! `run` brings every object's result up to date with its prompts, doing only the work that changed
//! (`plan`):
//! - an object with no result, or whose boxes or seed mask changed, or a new policy or axis, is propagated
//!   in full (the policy's passes);
//! - an object whose only change is added or removed points is *refined*: the touched slices are decoded
//!   again and propagation re-runs outward from them only as long as the mask keeps changing;
//! - embeddings come from the session cache (memory, then its spill file), so no slice is encoded twice
//!   while the budgets hold them.
//!
//! The state after every successful `run` is a checkpoint (`history`); `undo` returns to the previous
//! checkpoint (prompts and masks, exactly; prompt edits not yet run are dropped), `redo` goes forward again.

mod history;
mod objects;
mod plan;
pub mod report;
pub mod text;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::anatomy::click::{self, GrowOptions, Target};
use crate::error::{Error, Result};
use crate::model::{CanvasModel, Models, Segmenter, SliceModel};
use crate::pipeline::compose::{self, ObjectSummary, Overlap};
use crate::pipeline::mosaic;
use crate::pipeline::policy::Policy;
use crate::pipeline::postprocess::{self, PostprocessOptions};
use crate::pipeline::result::{SliceOut, StackResult, Stats};
use crate::pipeline::slice::cache::{CacheStats, EmbeddingCache};
use crate::pipeline::slice::frame::Frame;
use crate::pipeline::slice::spill::Spill;
use crate::pipeline::slice::strategy::{self, refine, Settings};
use crate::pipeline::slice::sweep::{Scratch, Stack};
use crate::prompt::resolve::{self, Spatial};
use crate::prompt::{PointIjk, Prompt, PromptKind, Source};
use crate::volume::reslice::Orientation;
use crate::volume::{BoxIjk, Geometry, U8Volume};
use history::History;
use objects::{ObjectResult, Objects};
use plan::Plan;

/// Session settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct SessionOptions {
    pub policy: Policy,
    /// Propagation axis: 2 = along k (axial for most CT), 1 = along j, 0 = along i.
    pub axis: u8,
    /// Embedding cache budget in memory, in bytes (LRU beyond it, into the spill tier).
    pub cache_budget: usize,
    /// Disk budget, in bytes, for the embeddings memory evicts: an anonymous temporary file in `TMPDIR`,
    /// gone with the session (or the process). 0: no spill; evicted slices are encoded again when needed.
    pub spill_budget: usize,
    /// `Engine::open_session` refuses a volume of more voxels with `TOO_LARGE` before it allocates anything
    /// for it (default: `io::Limits::default().max_voxels`, a sixteenth of physical memory).
    pub max_voxels: u64,
    /// None: the policy's default (Overwrite for the reference, else Keep).
    pub overlap: Option<Overlap>,
    /// Applied to every object after its policy.
    pub postprocess: PostprocessOptions,
    /// Refinement stops propagating once a re-decoded slice agrees with the old one to this Dice.
    pub refine_tolerance: f64,
    /// Checkpoints kept for undo.
    pub history: usize,
    /// An object whose only start is a click gets a box grown from it (`anatomy::click`); off, the click
    /// alone is decoded (LiteMedSAM was trained on boxes: that mostly gives nothing).
    pub click_growth: bool,
}

/// The default memory budget of the embedding cache: 32 LiteMedSAM slices. With the spill tier behind it,
/// a slice memory evicted is read back in about a millisecond, so a larger budget buys little and costs the
/// host memory (a 512×512×300 CT has 1.2 GB of embeddings).
pub const DEFAULT_CACHE_BUDGET: usize = 128 << 20;
/// The memory budget used instead of the default one when the spill file cannot be made (a read-only or
/// full temporary directory): the budget of releases before the spill tier.
pub const NO_SPILL_CACHE_BUDGET: usize = 1 << 30;
/// The default disk budget of the spill tier: 1024 LiteMedSAM slices, two axes of a 512-slice volume.
pub const DEFAULT_SPILL_BUDGET: usize = 4 << 30;

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            policy: Policy::best(),
            axis: 2,
            cache_budget: DEFAULT_CACHE_BUDGET,
            spill_budget: DEFAULT_SPILL_BUDGET,
            max_voxels: crate::io::Limits::default().max_voxels,
            overlap: None,
            postprocess: PostprocessOptions::new(),
            refine_tolerance: 0.99,
            history: 64,
            click_growth: true,
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
    pub fn with_spill_budget(mut self, bytes: usize) -> Self {
        self.spill_budget = bytes;
        self
    }
    pub fn with_max_voxels(mut self, voxels: u64) -> Self {
        self.max_voxels = voxels;
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
    pub fn with_click_growth(mut self, on: bool) -> Self {
        self.click_growth = on;
        self
    }
    pub fn overlap_rule(&self) -> Overlap {
        self.overlap.unwrap_or(match self.policy {
            Policy::Reference => Overlap::Overwrite,
            _ => Overlap::Keep,
        })
    }
    fn settings(&self) -> Settings {
        Settings { policy: self.policy, postprocess: self.postprocess, refine_tolerance: self.refine_tolerance }
    }
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

pub struct Session {
    models: Arc<Models>,
    image: U8Volume,
    geometry: Geometry,
    /// Stacks for axes 0 and 1 (slices along i or j), made on first use.
    stacks: [Option<U8Volume>; 2],
    cache: EmbeddingCache,
    objects: Objects,
    opts: SessionOptions,
    history: History,
    cancel: Arc<AtomicBool>,
    /// Text prompts: the resolver and the volume's coarse HU copy (set by the engine).
    text: Option<text::TextContext>,
    /// What a mosaic model found along each axis, computed once: its prompts only choose from it.
    mosaic: [Option<Arc<mosaic::run::StackOut>>; 3],
}

impl Session {
    /// A session over an already intensity-mapped volume (i fastest).
    pub fn new(models: Arc<Models>, image: U8Volume, geometry: Geometry, opts: SessionOptions) -> Result<Session> {
        Orientation::new(opts.axis)?;
        let layout = match &models.segmenter {
            Segmenter::Slice(m) => m.embedding_layout().clone(),
            // A mosaic model keeps no per-slice embeddings (an empty layout makes no spill file).
            Segmenter::Mosaic(_) => crate::model::EmbeddingLayout { tensors: Vec::new() },
        };
        let cache = embedding_cache(&opts, layout)?;
        Ok(Session {
            models,
            image,
            geometry,
            stacks: [None, None],
            cache,
            objects: Objects::default(),
            opts,
            history: History::default(),
            cancel: Arc::new(AtomicBool::new(false)),
            text: None,
            mosaic: [None, None, None],
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
    /// and spill budgets cannot change after creation.
    pub fn set_options(&mut self, opts: SessionOptions) -> Result<()> {
        Orientation::new(opts.axis)?;
        if (opts.cache_budget, opts.spill_budget) != (self.opts.cache_budget, self.opts.spill_budget) {
            return Err(Error::InvalidArgument(
                "the embedding cache and spill budgets are fixed when the session is made".into(),
            ));
        }
        self.opts = opts;
        self.history.touch();
        Ok(())
    }

    /// Lets the session take text prompts.
    pub fn with_text(mut self, ctx: text::TextContext) -> Session {
        self.text = Some(ctx);
        self
    }

    /// Names object `label` in words ("left kidney"): resolved now, so an unknown phrase fails here with
    /// `UnknownConcept`; the structure's anatomical prior is found in this volume and becomes the object's
    /// boxes and seed (unless it already has the host's own) and the limit its result is cut to. A structure
    /// that is not in the volume (outside the scan, or not on the side named) is `InvalidPrompt`.
    pub fn add_text(&mut self, label: u8, phrase: &str) -> Result<text::TextOutcome> {
        let ctx = self.text.as_ref().ok_or_else(|| {
            Error::Unsupported("this session takes no text prompts: open it through an engine".into())
        })?;
        if label == 0 {
            return Err(Error::InvalidPrompt("label 0 is the background".into()));
        }
        let current = self.objects.prompts_of(label);
        if current.prompts.iter().any(|p| matches!(p.kind, PromptKind::Text(_))) {
            return Err(Error::InvalidPrompt(format!(
                "object {label} is already named by text; remove it to rename it"
            )));
        }
        let (mut prompts, outcome) =
            text::prompts_for(ctx, &current, phrase, &self.image, &self.geometry, self.opts.axis as usize)?;
        // A text-conditioned model takes the concept's name as its text encoder embeds it: the name, not the
        // phrase, so "livr" and "the liver" condition it alike.
        let name = outcome.resolution.name(&ctx.resolver.vocab);
        if let Some(e) = self.models.conditioning_embedding(&name)? {
            let source =
                Source::Text { concept: outcome.resolution.concepts.join("+"), score: outcome.resolution.score };
            prompts.push(Prompt { kind: PromptKind::TextEmbedding(Arc::new(e)), source, weight: 1.0 });
        }
        self.history.touch();
        self.objects.push_all(label, prompts)?;
        Ok(outcome)
    }

    /// The region object `label`'s result is cut to (the dilated prior of the structure its text names),
    /// on the input grid, i fastest; None without one.
    pub fn limit_of(&self, label: u8) -> Option<&[u8]> {
        self.objects.list.iter().find(|o| o.prompts.label == label)?.prompts.limit().map(|l| l.as_slice())
    }

    /// Adds a 3D box (inclusive voxel indices) to object `label`, creating the object if needed.
    pub fn add_box(&mut self, label: u8, b: BoxIjk) -> Result<()> {
        b.validate(self.image.dims)?;
        self.history.touch();
        self.objects.add_box(label, b)
    }

    /// Adds a positive or negative point to object `label`.
    pub fn add_point(&mut self, label: u8, p: PointIjk) -> Result<()> {
        let d = self.image.dims;
        if (0..3).any(|a| p.ijk[a] >= d[a]) {
            return Err(Error::InvalidPrompt(format!("point {:?} lies outside the volume of dims {d:?}", p.ijk)));
        }
        self.history.touch();
        self.objects.add_point(label, p)
    }

    /// Removes the point of `label` at `ijk` (the most recent one if several).
    pub fn remove_point(&mut self, label: u8, ijk: [usize; 3]) -> Result<()> {
        self.history.touch();
        self.objects.remove_point(label, ijk)
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
        self.history.touch();
        self.objects.set_seed(label, Arc::new(mask.into_iter().map(|v| (v != 0) as u8).collect()))
    }

    pub fn remove_object(&mut self, label: u8) -> Result<()> {
        self.history.touch();
        self.objects.remove(label)
    }

    pub fn clear(&mut self) {
        self.history.touch();
        self.objects.clear();
    }

    pub fn can_undo(&self) -> bool {
        self.history.can_undo()
    }
    pub fn can_redo(&self) -> bool {
        self.history.can_redo()
    }

    /// Drops prompt edits not yet run, returning to the last run's result; without such edits, returns to
    /// the result of the run before (prompts and masks exactly).
    pub fn undo(&mut self) -> Result<()> {
        self.objects = self.history.undo()?;
        Ok(())
    }

    /// Goes forward again to the result that `undo` left.
    pub fn redo(&mut self) -> Result<()> {
        self.objects = self.history.redo()?;
        Ok(())
    }

    /// Brings every object's result up to date; see the module docs for what is recomputed.
    pub fn run(&mut self, progress: Option<&mut dyn FnMut(f32) -> bool>) -> Result<RunReport> {
        if self.objects.list.is_empty() {
            return Err(Error::InvalidPrompt("no objects: add a box, point or seed mask first".into()));
        }
        for o in &self.objects.list {
            if !o.prompts.has_start() {
                return Err(Error::InvalidPrompt(format!(
                    "object {} has no box, seed mask or positive point to start from",
                    o.prompts.label
                )));
            }
        }
        // A mosaic model's clicks pick components of what it found; no box is grown for them.
        if self.opts.click_growth && matches!(self.models.segmenter, Segmenter::Slice(_)) {
            self.grow_clicks()?;
        }
        let r = self.run_inner(progress);
        // A cancel request ends with the run it reached (or that failed meanwhile).
        self.cancel.store(false, Ordering::SeqCst);
        r
    }

    /// Gives every object whose only start is a click the box grown from its first positive click, kept
    /// with its prompts (source `Growth`): later clicks refine that result, and removing the click removes
    /// the box. A lesion (named by text) is grown as one, and a limit (the organ text named) bounds it.
    fn grow_clicks(&mut self) -> Result<()> {
        let axis = self.opts.axis as usize;
        for o in &mut self.objects.list {
            let p = &mut o.prompts;
            if p.boxes().next().is_some() || p.seed().is_some() {
                continue;
            }
            let Some(first) = p.points().find(|q| q.positive).copied() else { continue };
            let target = match p.lesion() {
                None => Target::Organ,
                Some(false) => Target::Lesion,
                Some(true) => Target::LesionInAir,
            };
            let bound = p.limit().cloned();
            let opts = GrowOptions::for_target(target);
            let grown = click::grow(
                &self.image,
                self.geometry.spacing,
                first.ijk,
                axis,
                bound.as_deref().map(|b| b.as_slice()),
                target,
                &opts,
            )
            .ok_or_else(|| {
                Error::InvalidPrompt(format!(
                    "object {}: the click at {:?} lies outside the structure its text names",
                    p.label, first.ijk
                ))
            })?;
            p.push(Prompt {
                kind: PromptKind::Box(grown.bbox),
                source: Source::Growth { click: first.ijk },
                weight: 1.0,
            });
        }
        Ok(())
    }

    fn run_inner(&mut self, progress: Option<&mut dyn FnMut(f32) -> bool>) -> Result<RunReport> {
        let models = self.models.clone();
        match &models.segmenter {
            Segmenter::Slice(m) => self.run_slices(m, progress),
            Segmenter::Mosaic(m) => self.run_mosaic(m, progress),
        }
    }

    /// The mosaic-model driver: the model runs once per axis over the whole stack (SFR's prompt-free
    /// segmentation); every object whose prompts changed takes its share of it (`mosaic::select`).
    fn run_mosaic<M: CanvasModel>(
        &mut self,
        model: &M,
        progress: Option<&mut dyn FnMut(f32) -> bool>,
    ) -> Result<RunReport> {
        let t0 = Instant::now();
        let orientation = Orientation::new(self.opts.axis)?;
        let spatial: Vec<Spatial> =
            self.objects.list.iter().map(|o| resolve::spatial(&o.prompts)).collect::<Result<_>>()?;
        let plan = Plan::of(&self.objects.list, orientation.axis(), self.opts.policy, self.opts.postprocess);
        let mut report = RunReport { unchanged: plan.unchanged.clone(), ..Default::default() };
        let mut todo: Vec<usize> = plan.full.iter().chain(&plan.refine).copied().collect();
        todo.sort_unstable();
        let cancel = self.cancel.clone();
        let mut user_progress = progress;
        let axis = orientation.axis() as usize;
        if !todo.is_empty() && self.mosaic[axis].is_none() {
            let volume = stack_of(&self.image, &mut self.stacks, orientation);
            let mut tick = |done: usize, total: usize| {
                !cancel.load(Ordering::Relaxed)
                    && user_progress.as_mut().is_none_or(|p| p((done as f32 / total.max(1) as f32).min(0.99)))
            };
            let found = mosaic::run::segment_stack(model, volume, &mut tick)?;
            report.slices_encoded = found.dims[2];
            report.stats.slices_encoded = found.dims[2];
            report.stats.encode = found.model;
            report.stats.postprocess = found.other;
            self.mosaic[axis] = Some(Arc::new(found));
        }
        if let Some(p) = user_progress.as_mut() {
            if cancel.load(Ordering::Relaxed) || !p(1.0) {
                return Err(Error::Cancelled);
            }
        }
        if todo.is_empty() {
            report.time = t0.elapsed();
            return Ok(report);
        }
        let found = self.mosaic[axis].clone().expect("computed above");
        let [w, h, _] = found.dims;
        let grid = self.image.dims;
        let mut results = Vec::with_capacity(todo.len());
        for &k in &todo {
            let p = &spatial[k];
            let mut slices = if p.prior_only {
                strategy::prior_seed_slices(p.seed.as_deref().map(|s| s.as_slice()), orientation, found.dims)
            } else {
                mosaic::select::object_slices(&found, p, orientation)
            };
            if !self.opts.postprocess.is_noop() {
                postprocess::postprocess_slices(&mut slices, w, h, &self.opts.postprocess);
            }
            let mut slices: Vec<_> = slices.into_iter().map(|s| s.map(Arc::new)).collect();
            if let Some(limit) = &p.limit {
                postprocess::cut_to_limit(&mut slices, limit, orientation, grid);
            }
            report.slices_decoded += slices.iter().flatten().count();
            results.push(slices);
        }
        for (&k, slices) in todo.iter().zip(results) {
            report.full.push(self.install(k, orientation, slices));
        }
        self.history.checkpoint(self.objects.clone(), self.opts.history);
        report.cache = self.cache.stats();
        report.time = t0.elapsed();
        Ok(report)
    }

    /// The slice-model driver: resolve the prompts, plan, run the strategies, install and checkpoint.
    fn run_slices<M: SliceModel>(
        &mut self,
        model: &M,
        progress: Option<&mut dyn FnMut(f32) -> bool>,
    ) -> Result<RunReport> {
        let t0 = Instant::now();
        let before_cache = self.cache.stats();
        let orientation = Orientation::new(self.opts.axis)?;
        let spatial: Vec<Spatial> =
            self.objects.list.iter().map(|o| resolve::spatial(&o.prompts)).collect::<Result<_>>()?;
        let plan = Plan::of(&self.objects.list, orientation.axis(), self.opts.policy, self.opts.postprocess);
        let mut report = RunReport { unchanged: plan.unchanged.clone(), ..Default::default() };
        if plan.is_empty() {
            // Nothing to do: no checkpoint, and redo stays possible. The host still sees its progress end.
            if let Some(p) = progress {
                if self.cancel.load(Ordering::Relaxed) || !p(1.0) {
                    return Err(Error::Cancelled);
                }
            }
            report.cache = self.cache.stats();
            report.time = t0.elapsed();
            return Ok(report);
        }

        let volume = stack_of(&self.image, &mut self.stacks, orientation);
        let [w, h, d] = volume.dims;
        let (run_cancel, done) = (AtomicBool::new(false), AtomicUsize::new(0));
        let stack = Stack {
            model,
            volume,
            frame: Frame::new(h, w, model.input_size()),
            cache: &self.cache,
            orientation,
            cancel: &run_cancel,
            done: &done,
        };
        let mut scratch = [Scratch::new(model), Scratch::new(model)];
        let settings = self.opts.settings();
        let full_specs: Vec<Spatial> = plan.full.iter().map(|&k| spatial[k].clone()).collect();
        let expected =
            strategy::full_work(&full_specs, settings.policy, orientation.axis(), d) + plan.refine.len() * refine::WORK;
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

        let full_results = strategy::run_full(&stack, &full_specs, &settings, &mut scratch, &mut tick)?;
        let mut refined_results = Vec::new();
        for &k in &plan.refine {
            if spatial[k].prior_only {
                refined_results.push(strategy::prior_slices(&stack, &spatial[k], &settings));
                continue;
            }
            let r = self.objects.list[k].result.as_ref().expect("refinements have a result");
            let before = resolve::spatial(&r.prompts)?;
            let slices = &r.stack.slices;
            refined_results.push(refine::refine_object(
                &stack,
                k,
                &spatial[k],
                &before,
                slices,
                &settings,
                &mut scratch,
                &mut tick,
            )?);
        }
        // The last call may cancel too, as the header says of every call: a run with a single step of work
        // (found by the fuzzer: a one-row volume) otherwise finished with OK after its host said stop.
        if let Some(p) = user_progress.as_mut() {
            if cancel.load(Ordering::Relaxed) || !p(1.0) {
                return Err(Error::Cancelled);
            }
        }
        let grid = self.image.dims;
        let mut full_results = full_results;
        for (&k, slices) in
            plan.full.iter().zip(full_results.iter_mut()).chain(plan.refine.iter().zip(refined_results.iter_mut()))
        {
            if let Some(limit) = &spatial[k].limit {
                postprocess::cut_to_limit(slices, limit, orientation, grid);
            }
        }

        // Everything succeeded: install the new results, then checkpoint them.
        for (&k, slices) in plan.full.iter().zip(full_results) {
            report.full.push(self.install(k, orientation, slices));
        }
        for (&k, slices) in plan.refine.iter().zip(refined_results) {
            let o = &mut self.objects.list[k];
            let r = o.result.as_mut().expect("refined");
            r.stack.slices = slices;
            r.prompts = o.prompts.clone();
            report.refined.push(o.prompts.label);
        }
        self.history.checkpoint(self.objects.clone(), self.opts.history);
        for sc in &scratch {
            report.stats.add_sweeps(&sc.stats);
            report.slices_decoded += sc.stats.decoded_slices;
        }
        report.cache = self.cache.stats();
        report.slices_encoded = report.cache.encoded - before_cache.encoded;
        report.stats.slices_encoded = report.slices_encoded;
        report.time = t0.elapsed();
        Ok(report)
    }

    /// Makes `slices` object `k`'s new result, computed under the current options; returns its label.
    fn install(&mut self, k: usize, orientation: Orientation, slices: Vec<Option<Arc<SliceOut>>>) -> u8 {
        let o = &mut self.objects.list[k];
        o.result = Some(ObjectResult {
            policy: self.opts.policy,
            postprocess: self.opts.postprocess,
            prompts: o.prompts.clone(),
            stack: StackResult { orientation, slices },
        });
        o.prompts.label
    }

    fn results(&self) -> Vec<(u8, &StackResult)> {
        self.objects.list.iter().filter_map(|o| o.result.as_ref().map(|r| (o.prompts.label, &r.stack))).collect()
    }

    /// The label mask on the input grid (i fastest) and, when asked, the confidence map: for a labelled
    /// voxel |2p − 1| of the object that holds it; for a background voxel the lowest |2p − 1| among the
    /// objects that looked at it (how sure the engine is that nothing is there), 1 where none did.
    pub fn compose(&self, with_confidence: bool) -> (U8Volume, Option<Vec<f32>>) {
        let (mask, coded) = self.compose_coded(with_confidence);
        (mask, coded.map(|c| c.into_iter().map(compose::confidence_of).collect()))
    }

    /// `compose` with the confidence kept as its byte code (`compose::confidence_of` turns it into the
    /// value): a quarter of the memory, for callers that convert voxel by voxel into their own buffer.
    pub fn compose_coded(&self, with_confidence: bool) -> (U8Volume, Option<Vec<u8>>) {
        compose::compose_coded(self.image.dims, &self.results(), self.opts.overlap_rule(), with_confidence)
    }

    /// Per-object summaries of the current results.
    pub fn summaries(&self) -> Vec<ObjectSummary> {
        self.results().into_iter().map(|(label, r)| compose::summary(label, r)).collect()
    }
}

/// The session's embedding cache: `opts.cache_budget` in memory over a spill file of `opts.spill_budget`.
/// A spill file that cannot be made is not an error (the session works without it, encoding evicted slices
/// again); with the default memory budget the cache then holds as much as it did before the tier existed.
fn embedding_cache(opts: &SessionOptions, layout: crate::model::EmbeddingLayout) -> Result<EmbeddingCache> {
    let (spill, failed) = match Spill::create(opts.spill_budget, layout.bytes()) {
        Ok(spill) => (spill, false),
        Err(e) => {
            let dir = std::env::temp_dir();
            log::warn!("no embedding spill file in {} ({e}): evicted slices will be encoded again", dir.display());
            (None, true)
        }
    };
    let budget =
        if failed && opts.cache_budget == DEFAULT_CACHE_BUDGET { NO_SPILL_CACHE_BUDGET } else { opts.cache_budget };
    EmbeddingCache::with_spill(budget, spill, layout)
}

/// The stack of `image` along `o` (slices along its axis), resliced into `stacks` on first use. A free
/// function over the two fields, so the session's cache can be borrowed next to it.
fn stack_of<'a>(image: &'a U8Volume, stacks: &'a mut [Option<U8Volume>; 2], o: Orientation) -> &'a U8Volume {
    if o.is_native() {
        return image;
    }
    stacks[o.axis() as usize].get_or_insert_with(|| o.reslice(image))
}
