//! The reference middle-out propagation (CVPR24_LiteMedSAM_infer.py, LiteMedSAM branch; METHODS §0.4b),
//! for several objects, with each slice encoded at most once per run.
//!
//! Per object (in the order given; its 1-based position `idx` is the value its working mask holds, as in
//! the reference, because INTER_AREA rounding of the previous mask depends on that value):
//! 1. z_mid = ⌊(z_max − z_min)/2⌋ + z_min; the slice box is the 3D box's in-plane extent.
//! 2. Upward z = z_mid … z_max: at z_mid the user box, else the box of the previous slice's mask (resized
//!    into the frame, grown by `box_shift`, clipped to [0, S]), falling back to the user box when empty.
//! 3. Downward z = z_mid − 1 … z_min, the same using slice z + 1.
//! 4. The object's voxels are written into the output with its label; later objects overwrite earlier.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::frame::Frame;
use crate::error::{Error, Result};
use crate::model::sam2d::{Prompt2d, Sam2d};
use crate::volume::U8Volume;

pub use crate::volume::BoxIjk;

/// One object to segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Object {
    pub label: u8,
    pub bbox: BoxIjk,
}

/// Work counters and time per stage.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub slices_encoded: usize,
    pub decoder_runs: usize,
    pub preprocess: Duration,
    pub encode: Duration,
    pub decode: Duration,
    pub postprocess: Duration,
    /// Per object: (label, slices visited, mean predicted IoU).
    pub objects: Vec<(u8, usize, f32)>,
}

/// Progress report: fraction of slices done; returning false cancels.
pub type Progress<'a> = &'a mut dyn FnMut(f32) -> bool;

/// Per-worker state: scratch buffers, spare embedding buffers and counters.
struct Worker {
    id: usize,
    image: Vec<f32>,
    scratch: Vec<u8>,
    spare: Vec<Vec<f32>>,
    stats: Stats,
    iou_sum: f32,
}

impl Worker {
    fn new(id: usize, s: usize) -> Worker {
        Worker {
            id,
            image: vec![0f32; 3 * s * s],
            scratch: Vec::new(),
            spare: Vec::new(),
            stats: Stats::default(),
            iou_sum: 0.0,
        }
    }
}

/// What one slice step needs to know about its object.
struct Step<'a> {
    model: &'a Sam2d,
    frame: &'a Frame,
    volume: &'a U8Volume,
    user_box: [i64; 4],
    idx: u8,
}

impl Step<'_> {
    /// Encodes slice `z` unless cached, prompts it with the box of `prev` (or the user box), paints `out`.
    fn run(
        &self,
        w: &mut Worker,
        z: usize,
        prev: Option<&[u8]>,
        cache: &mut Option<Vec<f32>>,
        pending: &mut usize,
        out: &mut [u8],
    ) -> Result<()> {
        let model = self.model;
        if cache.is_none() {
            let t = Instant::now();
            self.frame.encoder_input(self.volume.slice(z), &mut w.scratch, &mut w.image);
            w.stats.preprocess += t.elapsed();
            let t = Instant::now();
            let mut emb = w.spare.pop().unwrap_or_else(|| vec![0f32; model.embedding_len()]);
            model.encode_on(w.id, &w.image, &mut emb)?;
            w.stats.encode += t.elapsed();
            w.stats.slices_encoded += 1;
            *cache = Some(emb);
        }
        let t = Instant::now();
        let b = prev.and_then(|p| self.frame.mask_box(p, model.box_shift, &mut w.scratch)).unwrap_or(self.user_box);
        w.stats.preprocess += t.elapsed();
        let t = Instant::now();
        let prompt = Prompt2d::from_box(b.map(|v| v as f32));
        let dec = model.decode_on(w.id, cache.as_ref().expect("encoded above"), std::slice::from_ref(&prompt))?;
        w.stats.decode += t.elapsed();
        w.stats.decoder_runs += 1;
        let t = Instant::now();
        self.frame.paint_mask(&dec[0].logits, self.idx, out);
        w.stats.postprocess += t.elapsed();
        w.iou_sum += dec[0].iou;
        *pending -= 1;
        if *pending == 0 {
            w.spare.extend(cache.take());
        }
        Ok(())
    }
}

/// Walks away from the middle slice: `masks[i]` is the i-th slice from it, `mid` the middle slice's mask.
/// `zs[i]` is its slice index; cache and pending are indexed the same way as `masks`. `tick`, when given, runs
/// before each slice on this thread (progress and cancel for the single-worker walk).
#[allow(clippy::too_many_arguments)]
fn chain(
    step: &Step<'_>,
    w: &mut Worker,
    zs: &[usize],
    mid: &[u8],
    masks: &mut [u8],
    cache: &mut [&mut Option<Vec<f32>>],
    pending: &mut [&mut usize],
    done: &AtomicUsize,
    stop: &AtomicBool,
    mut tick: Option<&mut dyn FnMut() -> Result<()>>,
) -> Result<()> {
    let n = step.volume.slice_len();
    for (i, &z) in zs.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if let Some(t) = tick.as_mut() {
            t()?;
        }
        let (before, rest) = masks.split_at_mut(i * n);
        let prev = if i == 0 { mid } else { &before[(i - 1) * n..] };
        step.run(w, z, Some(&prev[..n]), cache[i], pending[i], &mut rest[..n])?;
        done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Runs the reference pipeline for `objects` on a uint8 volume (i fastest) and returns the label mask.
///
/// After each object's middle slice, the upward and downward walks are independent (each only reads its own
/// previous slice), so with two model workers they run concurrently; the result is the same either way.
/// `progress` is called on the calling thread only.
pub fn reference_middle_out(
    model: &Sam2d,
    volume: &U8Volume,
    objects: &[Object],
    mut progress: Option<Progress<'_>>,
) -> Result<(U8Volume, Stats)> {
    let [w, h, d] = volume.dims;
    for o in objects {
        o.bbox.validate(volume.dims)?;
        if o.label == 0 {
            return Err(Error::InvalidPrompt("object label 0 is the background".into()));
        }
    }
    if objects.len() > 255 {
        return Err(Error::InvalidPrompt(format!("{} objects; at most 255 fit a u8 label mask", objects.len())));
    }
    let frame = Frame::new(h, w, model.input_size);
    let n = w * h;
    let mut out = U8Volume::zeros(volume.dims);

    // Embeddings are kept only while another object still needs that slice.
    let mut pending = vec![0usize; d];
    for o in objects {
        for p in &mut pending[o.bbox.min[2]..=o.bbox.max[2]] {
            *p += 1;
        }
    }
    let total: usize = pending.iter().sum();
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let mut cache: Vec<Option<Vec<f32>>> = vec![None; d];
    let mut workers = [Worker::new(0, model.input_size), Worker::new(1, model.input_size)];
    let mut temp = U8Volume::zeros(volume.dims);
    let mut per_object = Vec::new();
    let report = |progress: &mut Option<Progress<'_>>| -> Result<()> {
        if let Some(p) = progress.as_mut() {
            if !p(done.load(Ordering::Relaxed) as f32 / total.max(1) as f32) {
                return Err(Error::Cancelled);
            }
        }
        Ok(())
    };

    for (k, o) in objects.iter().enumerate() {
        let (z_min, z_max) = (o.bbox.min[2], o.bbox.max[2]);
        let z_mid = (z_max - z_min) / 2 + z_min;
        let step = Step {
            model,
            frame: &frame,
            volume,
            user_box: frame.box_to_frame([
                o.bbox.min[0] as i64,
                o.bbox.min[1] as i64,
                o.bbox.max[0] as i64,
                o.bbox.max[1] as i64,
            ]),
            idx: (k + 1) as u8,
        };
        temp.data.fill(0);
        workers.iter_mut().for_each(|w| w.iou_sum = 0.0);
        report(&mut progress)?;
        step.run(&mut workers[0], z_mid, None, &mut cache[z_mid], &mut pending[z_mid], temp.slice_mut(z_mid))?;
        done.fetch_add(1, Ordering::Relaxed);

        // Split every per-slice array at the middle slice: below (walked downwards), middle, above.
        let (below, rest) = temp.data.split_at_mut(z_mid * n);
        let (mid, above) = rest.split_at_mut(n);
        let above = &mut above[..(z_max - z_mid) * n];
        // The downward walk visits z_mid − 1 … z_min: reverse the slab so index 0 is next to the middle.
        let mut below_rev: Vec<u8> = vec![0; (z_mid - z_min) * n];
        let (c_below, c_rest) = cache.split_at_mut(z_mid);
        let (p_below, p_rest) = pending.split_at_mut(z_mid);
        let mut c_up: Vec<&mut Option<Vec<f32>>> = c_rest[1..=z_max - z_mid].iter_mut().collect();
        let mut p_up: Vec<&mut usize> = p_rest[1..=z_max - z_mid].iter_mut().collect();
        let mut c_down: Vec<&mut Option<Vec<f32>>> = c_below[z_min..].iter_mut().rev().collect();
        let mut p_down: Vec<&mut usize> = p_below[z_min..].iter_mut().rev().collect();
        let z_up: Vec<usize> = (z_mid + 1..=z_max).collect();
        let z_down: Vec<usize> = (z_min..z_mid).rev().collect();
        let mid: &[u8] = mid;
        let [w0, w1] = &mut workers;
        if model.workers() >= 2 && !z_up.is_empty() && !z_down.is_empty() {
            let result = std::thread::scope(|scope| -> Result<()> {
                let up = scope.spawn(|| chain(&step, w0, &z_up, mid, above, &mut c_up, &mut p_up, &done, &stop, None));
                let down = scope.spawn(|| {
                    chain(&step, w1, &z_down, mid, &mut below_rev, &mut c_down, &mut p_down, &done, &stop, None)
                });
                let mut cancelled = Ok(());
                while !(up.is_finished() && down.is_finished()) {
                    if cancelled.is_ok() {
                        cancelled = report(&mut progress);
                        if cancelled.is_err() {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                let (a, b) = (up.join(), down.join());
                for r in [a, b] {
                    match r {
                        Ok(r) => r?,
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                cancelled
            });
            result?;
        } else {
            let mut tick = || report(&mut progress);
            chain(&step, w0, &z_up, mid, above, &mut c_up, &mut p_up, &done, &stop, Some(&mut tick))?;
            chain(&step, w0, &z_down, mid, &mut below_rev, &mut c_down, &mut p_down, &done, &stop, Some(&mut tick))?;
        }
        for (i, z) in (z_min..z_mid).rev().enumerate() {
            below[z * n..(z + 1) * n].copy_from_slice(&below_rev[i * n..(i + 1) * n]);
        }
        let t = Instant::now();
        for (dst, &src) in out.data.iter_mut().zip(&temp.data) {
            if src > 0 {
                *dst = o.label;
            }
        }
        workers[0].stats.postprocess += t.elapsed();
        let visited = z_max - z_min + 1;
        per_object.push((o.label, visited, workers.iter().map(|w| w.iou_sum).sum::<f32>() / visited as f32));
    }
    if let Some(p) = progress.as_mut() {
        p(1.0);
    }
    let mut stats = Stats { objects: per_object, ..Default::default() };
    for w in &workers {
        stats.slices_encoded += w.stats.slices_encoded;
        stats.decoder_runs += w.stats.decoder_runs;
        stats.preprocess += w.stats.preprocess;
        stats.encode += w.stats.encode;
        stats.decode += w.stats.decode;
        stats.postprocess += w.stats.postprocess;
    }
    Ok((out, stats))
}
