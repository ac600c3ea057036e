//! Our own mosaic mode for a promptable slice model, not SFR's (SFR's model is prompt-free, METHODS §6):
//! g×g slices share one canvas, each resized into a cell of S/g the way the model frame resizes a slice
//! into S (longest side, INTER_AREA, min-max normalised, top-left in its cell, zeros elsewhere); the
//! encoder runs once per canvas and every slice's box is decoded against it in one batch. With g = 1 it is
//! the per-slice frame exactly, so the two modes are measured on the same code.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::model::{Prompt2d, SliceModel, Worker};
use crate::pipeline::result::{ObjectSlices, SliceOut};
use crate::pipeline::slice::frame::Frame;
use crate::volume::U8Volume;

/// Work done by one `segment_boxes`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BoxRun {
    pub canvases: usize,
    pub slices: usize,
    pub encode: Duration,
    pub decode: Duration,
}

/// Segments every slice of `stack` that has a box (x0, y0, x1, y1 in slice pixels, inclusive of x0/y0 as
/// the reference's boxes are) with `grid`×`grid` slices per canvas.
pub fn segment_boxes<M: SliceModel>(
    model: &M,
    stack: &U8Volume,
    boxes: &[Option<[i64; 4]>],
    grid: usize,
) -> Result<(ObjectSlices, BoxRun)> {
    let [w, h, d] = stack.dims;
    let s = model.input_size();
    if grid == 0 || grid > s || boxes.len() != d {
        return Err(Error::InvalidArgument(format!(
            "a mosaic of {grid}×{grid} cells on {s} pixels, {} boxes for {d} slices",
            boxes.len()
        )));
    }
    let cell = s / grid;
    let tile = Frame::new(h, w, cell);
    // The per-slice frame at S, for turning a cell's logits back into the slice.
    let back = Frame { s, ..tile };
    let todo: Vec<usize> = (0..d).filter(|&z| boxes[z].is_some()).collect();
    let per = grid * grid;
    let mut out: ObjectSlices = vec![None; d];
    let mut run = BoxRun { slices: todo.len(), ..Default::default() };
    let mut image = vec![0f32; model.channels() * s * s];
    let mut embedding = model.embedding_layout().zeros();
    let (mut resized, mut shifted) = (Vec::new(), vec![0f32; s * s]);
    for group in todo.chunks(per) {
        image.fill(0.0);
        let mut prompts = Vec::with_capacity(group.len());
        for (c, &z) in group.iter().enumerate() {
            let (oy, ox) = ((c / grid) * cell, (c % grid) * cell);
            resized.resize(tile.new_h * tile.new_w, 0);
            tile.resize_u8(stack.slice(z), &mut resized);
            let (mn, mx) = resized.iter().fold((u8::MAX, u8::MIN), |(a, b), &v| (a.min(v), b.max(v)));
            let range = if mx > mn { (mx - mn) as f64 } else { 1e-8 };
            for y in 0..tile.new_h {
                let row = &mut image[(oy + y) * s + ox..(oy + y) * s + ox + tile.new_w];
                for (dst, &v) in row.iter_mut().zip(&resized[y * tile.new_w..(y + 1) * tile.new_w]) {
                    *dst = ((v - mn) as f64 / range) as f32;
                }
            }
            let b = tile.box_to_frame(boxes[z].expect("only slices with a box"));
            prompts.push(Prompt2d::from_box([
                (b[0] + ox as i64) as f32,
                (b[1] + oy as i64) as f32,
                (b[2] + ox as i64) as f32,
                (b[3] + oy as i64) as f32,
            ]));
        }
        let (first, rest) = image.split_at_mut(s * s);
        for ch in rest.chunks_exact_mut(s * s) {
            ch.copy_from_slice(first);
        }
        let t = Instant::now();
        model.encode(Worker::Wide, &image, &mut embedding)?;
        run.encode += t.elapsed();
        let t = Instant::now();
        let decoded = model.decode(Worker::Wide, &embedding, &prompts)?;
        run.decode += t.elapsed();
        run.canvases += 1;
        let threshold = model.mask_threshold();
        for (c, (&z, dec)) in group.iter().zip(&decoded).enumerate() {
            let (oy, ox) = ((c / grid) * cell, (c % grid) * cell);
            // The cell's logits moved to the top-left, where the per-slice frame has its slice.
            shifted.fill(0.0);
            for y in 0..tile.new_h {
                let src = &dec.logits[(oy + y) * s + ox..(oy + y) * s + ox + tile.new_w];
                shifted[y * s..y * s + tile.new_w].copy_from_slice(src);
            }
            let mut o = SliceOut::empty(w * h);
            o.iou = dec.iou;
            back.upsample(&shifted, |i, v| {
                if v > threshold {
                    o.mask[i] = 1;
                    o.area += 1;
                }
                o.prob[i] = (255.0 / (1.0 + (-v).exp())).round() as u8;
            });
            out[z] = Some(o);
        }
    }
    Ok((out, run))
}
