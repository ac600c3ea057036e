//! What the pipeline hands back: per-slice answers, an object's result along its stack, and the work a run
//! did. Shared by every driver, so the session and composition never look inside one.

use std::sync::Arc;
use std::time::Duration;

use crate::volume::reslice::Orientation;

/// The decoder's answer for one object on one slice, at the slice's own resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceOut {
    /// 0/1: logit > 0 after bilinear upsampling (the reference's `sigmoid > 0.5`).
    pub mask: Vec<u8>,
    /// round(255 · sigmoid(logit)) per pixel.
    pub prob: Vec<u8>,
    /// The decoder's predicted IoU.
    pub iou: f32,
    pub area: usize,
}

impl SliceOut {
    pub fn empty(n: usize) -> SliceOut {
        SliceOut { mask: vec![0; n], prob: vec![0; n], iou: 0.0, area: 0 }
    }
}

/// One object's per-slice answers along the stack (None where it was not visited).
pub type ObjectSlices = Vec<Option<SliceOut>>;

/// The masks of a stack of slices, as the stack operations of `ops::mask` take them.
pub fn masks(slices: &[Option<SliceOut>]) -> Vec<Option<&[u8]>> {
    slices.iter().map(|s| s.as_ref().map(|s| &s.mask[..])).collect()
}

/// One object's result: its slices along the stack of `orientation` (None where it was not visited).
#[derive(Debug, Clone)]
pub struct StackResult {
    pub orientation: Orientation,
    pub slices: Vec<Option<Arc<SliceOut>>>,
}

/// Counters for one or more sweeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct SweepStats {
    pub decoded_slices: usize,
    pub decoder_runs: usize,
    pub decoder_batches: usize,
    pub preprocess: Duration,
    pub encode: Duration,
    pub decode: Duration,
    pub postprocess: Duration,
}

/// Work counters and time per stage of one run, all workers together.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub slices_encoded: usize,
    pub decoder_runs: usize,
    pub decoder_batches: usize,
    pub preprocess: Duration,
    pub encode: Duration,
    pub decode: Duration,
    pub postprocess: Duration,
}

impl Stats {
    pub fn add_sweeps(&mut self, s: &SweepStats) {
        self.decoder_runs += s.decoder_runs;
        self.decoder_batches += s.decoder_batches;
        self.preprocess += s.preprocess;
        self.encode += s.encode;
        self.decode += s.decode;
        self.postprocess += s.postprocess;
    }
}
