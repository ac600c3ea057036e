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

/// Runs the reference pipeline for `objects` on a uint8 volume (i fastest) and returns the label mask.
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
    let s = model.input_size;
    let mut stats = Stats::default();
    let mut out = U8Volume::zeros(volume.dims);

    // Embeddings are kept only while another object still needs that slice.
    let mut pending = vec![0usize; d];
    for o in objects {
        for p in &mut pending[o.bbox.min[2]..=o.bbox.max[2]] {
            *p += 1;
        }
    }
    let total: usize = pending.iter().sum();
    let mut done = 0usize;
    let mut cache: Vec<Option<Vec<f32>>> = vec![None; d];
    // Embedding buffers no longer needed are reused instead of reallocated.
    let mut spare: Vec<Vec<f32>> = Vec::new();
    let mut image = vec![0f32; 3 * s * s];
    let mut scratch = Vec::new();
    let mut temp = U8Volume::zeros(volume.dims);

    for (n, o) in objects.iter().enumerate() {
        let idx = (n + 1) as u8;
        let (z_min, z_max) = (o.bbox.min[2], o.bbox.max[2]);
        let z_mid = (z_max - z_min) / 2 + z_min;
        let user_box = frame.box_to_frame([
            o.bbox.min[0] as i64,
            o.bbox.min[1] as i64,
            o.bbox.max[0] as i64,
            o.bbox.max[1] as i64,
        ]);
        temp.data.fill(0);
        let order = (z_mid..=z_max).chain((z_min..z_mid).rev());
        let mut iou_sum = 0f32;
        let mut visited = 0usize;
        for z in order {
            if let Some(p) = progress.as_mut() {
                if !p(done as f32 / total.max(1) as f32) {
                    return Err(Error::Cancelled);
                }
            }
            if cache[z].is_none() {
                let t = Instant::now();
                frame.encoder_input(volume.slice(z), &mut scratch, &mut image);
                stats.preprocess += t.elapsed();
                let t = Instant::now();
                let mut emb = spare.pop().unwrap_or_else(|| vec![0f32; model.embedding_len()]);
                model.encode_into(&image, &mut emb)?;
                stats.encode += t.elapsed();
                stats.slices_encoded += 1;
                cache[z] = Some(emb);
            }
            let t = Instant::now();
            let prev = if z == z_mid {
                None
            } else if z > z_mid {
                Some(z - 1)
            } else {
                Some(z + 1)
            };
            let b = prev.and_then(|p| frame.mask_box(temp.slice(p), model.box_shift, &mut scratch)).unwrap_or(user_box);
            stats.preprocess += t.elapsed();
            let t = Instant::now();
            let prompt = Prompt2d::from_box(b.map(|v| v as f32));
            let dec = model.decode(cache[z].as_ref().expect("encoded above"), std::slice::from_ref(&prompt))?;
            stats.decode += t.elapsed();
            stats.decoder_runs += 1;
            let t = Instant::now();
            frame.paint_mask(&dec[0].logits, idx, temp.slice_mut(z));
            stats.postprocess += t.elapsed();
            iou_sum += dec[0].iou;
            visited += 1;
            pending[z] -= 1;
            if pending[z] == 0 {
                spare.extend(cache[z].take());
            }
            done += 1;
        }
        let t = Instant::now();
        for (dst, &src) in out.data.iter_mut().zip(&temp.data) {
            if src > 0 {
                *dst = o.label;
            }
        }
        stats.postprocess += t.elapsed();
        stats.objects.push((o.label, visited, iou_sum / visited.max(1) as f32));
    }
    if let Some(p) = progress.as_mut() {
        p(1.0);
    }
    Ok((out, stats))
}
