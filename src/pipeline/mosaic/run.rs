//! A stack segmented through mosaics by a prompt-free canvas model, as SFR's `sam_test_tensor` does: the
//! volume z-scored as a whole, its slices tiled onto canvases (0 between them), the grey canvas repeated
//! into the model's channels, the logits upsampled bilinearly to the canvas (align_corners=False), softmaxed
//! over the 2 classes and argmaxed, and the canvases un-tiled back into the stack. Unlike SFR, no slice is
//! dropped (`tiling`).
//!
//! The session holds an 8-bit image (the modality's window mapped to 0..255), so the z-score is taken over
//! it: the mapping is affine inside the window, and a z-score does not change under an affine map, so the
//! canvas equals the raw volume's z-score wherever the window does not clip.

use std::time::{Duration, Instant};

use super::tiling::MosaicTiling;
use crate::error::{Error, Result};
use crate::model::{CanvasModel, Worker};
use crate::pipeline::slice::frame::Frame;
use crate::volume::U8Volume;

/// What the model found on every slice of a stack (i fastest within a slice, slice-major).
#[derive(Debug, Clone)]
pub struct StackOut {
    /// 1 where the foreground class wins the argmax.
    pub mask: Vec<u8>,
    /// round(255 · softmax foreground).
    pub prob: Vec<u8>,
    pub dims: [usize; 3],
    pub canvases: usize,
    /// Time in the model, and in tiling, upsampling and un-tiling.
    pub model: Duration,
    pub other: Duration,
}

/// The volume's z-score per 8-bit value, over every voxel (numpy's mean and population std); a constant
/// volume gets std 1, where SFR's division would give NaN.
fn zscore_table(data: &[u8]) -> [f32; 256] {
    let mut hist = [0u64; 256];
    for &v in data {
        hist[v as usize] += 1;
    }
    let n = data.len().max(1) as f64;
    let mean = hist.iter().enumerate().map(|(v, &c)| v as f64 * c as f64).sum::<f64>() / n;
    let var = hist.iter().enumerate().map(|(v, &c)| (v as f64 - mean).powi(2) * c as f64).sum::<f64>() / n;
    let std = if var > 0.0 { var.sqrt() } else { 1.0 };
    std::array::from_fn(|v| ((v as f64 - mean) / std) as f32)
}

/// Per worker: the canvas input, its logits, and the canvas's mask and probability.
struct Scratch {
    image: Vec<f32>,
    logits: Vec<f32>,
    up: [Vec<f32>; 2],
    mask: Vec<u8>,
    prob: Vec<u8>,
}

/// Segments `stack` (slices of `w`×`h`, i.e. h rows of w) canvas by canvas; `tick(done, total)` after each
/// group of canvases returns false to cancel.
pub fn segment_stack<M: CanvasModel>(
    model: &M,
    stack: &U8Volume,
    tick: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<StackOut> {
    let [w, h, d] = stack.dims;
    let (s, o, c) = (model.input_size(), model.output_size(), model.channels());
    if h > s || w > s {
        return Err(Error::Unsupported(format!(
            "the mosaic model's canvas is {s}×{s}; slices of {w}×{h} do not fit it (propagate along another axis, or \
             crop the volume)"
        )));
    }
    let tiling = MosaicTiling::new(h, w, d, s)?;
    let table = zscore_table(&stack.data);
    let up = Frame::new(s, s, o);
    let fg = model.foreground();
    let workers = model.workers().clamp(1, tiling.canvases);
    let mut scratch: Vec<Scratch> = (0..workers)
        .map(|_| Scratch {
            image: vec![0.0; c * s * s],
            logits: vec![0.0; 2 * o * o],
            up: [vec![0.0; s * s], vec![0.0; s * s]],
            mask: vec![0; s * s],
            prob: vec![0; s * s],
        })
        .collect();
    let mut out = StackOut {
        mask: vec![0; w * h * d],
        prob: vec![0; w * h * d],
        dims: stack.dims,
        canvases: tiling.canvases,
        model: Duration::ZERO,
        other: Duration::ZERO,
    };
    let run_one = |canvas: usize, sc: &mut Scratch| -> Result<Duration> {
        let plane = &mut sc.image[..s * s];
        plane.fill(0.0);
        for p in tiling.placements.iter().filter(|p| p.canvas == canvas) {
            let src = stack.slice(p.slice);
            for r in 0..h {
                let at = (p.y + r) * s + p.x;
                for (dst, &v) in plane[at..at + w].iter_mut().zip(&src[r * w..(r + 1) * w]) {
                    *dst = table[v as usize];
                }
            }
        }
        let (first, rest) = sc.image.split_at_mut(s * s);
        for ch in rest.chunks_exact_mut(s * s) {
            ch.copy_from_slice(first);
        }
        let t = Instant::now();
        model.segment(Worker::Index(canvas), &sc.image, &mut sc.logits)?;
        let spent = t.elapsed();
        for k in 0..2 {
            let dst = &mut sc.up[k];
            up.upsample(&sc.logits[k * o * o..(k + 1) * o * o], |i, v| dst[i] = v);
        }
        let (l_fg, l_bg) = (&sc.up[fg], &sc.up[1 - fg]);
        for i in 0..s * s {
            // torch.argmax takes the first of equal values.
            let wins = if fg == 0 { l_fg[i] >= l_bg[i] } else { l_fg[i] > l_bg[i] };
            let p = 1.0 / (1.0 + (l_bg[i] - l_fg[i]).exp());
            sc.mask[i] = wins as u8;
            sc.prob[i] = (p * 255.0).round() as u8;
        }
        Ok(spent)
    };
    let t0 = Instant::now();
    let mut done = 0;
    while done < tiling.canvases {
        let group: Vec<usize> = (done..(done + workers).min(tiling.canvases)).collect();
        let spent: Vec<Result<Duration>> = if group.len() == 1 {
            vec![run_one(group[0], &mut scratch[0])]
        } else {
            std::thread::scope(|sc| {
                let handles: Vec<_> = group
                    .iter()
                    .zip(scratch.iter_mut())
                    .map(|(&canvas, buf)| sc.spawn(move || run_one(canvas, buf)))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(Error::Inference("a mosaic worker panicked".into()))))
                    .collect()
            })
        };
        for (r, (&canvas, sc)) in spent.into_iter().zip(group.iter().zip(&scratch)) {
            out.model += r?;
            for p in tiling.placements.iter().filter(|p| p.canvas == canvas) {
                let base = p.slice * w * h;
                for r in 0..h {
                    let at = (p.y + r) * s + p.x;
                    out.mask[base + r * w..base + (r + 1) * w].copy_from_slice(&sc.mask[at..at + w]);
                    out.prob[base + r * w..base + (r + 1) * w].copy_from_slice(&sc.prob[at..at + w]);
                }
            }
        }
        done += group.len();
        if !tick(done, tiling.canvases) {
            return Err(Error::Cancelled);
        }
    }
    // The model's time is summed over workers; the rest is what the wall clock saw beyond it.
    out.other = t0.elapsed().saturating_sub(out.model / workers as u32);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zscore_is_numpys_over_every_voxel() {
        let data = [0u8, 0, 10, 30];
        let t = zscore_table(&data);
        // mean 10, population std sqrt((100 + 100 + 0 + 400) / 4) = sqrt(150)
        let std = 150f64.sqrt();
        assert!((t[0] as f64 + 10.0 / std).abs() < 1e-6);
        assert!((t[30] as f64 - 20.0 / std).abs() < 1e-6);
        assert_eq!(zscore_table(&[7, 7, 7])[7], 0.0, "a constant volume is all zeros, not NaN");
    }
}
