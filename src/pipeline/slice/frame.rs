//! The model's square input frame: a slice resized so its longest side is S (OpenCV INTER_AREA on uint8),
//! min-max normalised, zero-padded bottom/right (METHODS §0.4b steps 2-5), and the exact inverse for masks
//! (crop, bilinear upsampling with align_corners=False, threshold).

use crate::ops::resize::{longest_side_size, resize_area_u8};

/// How a slice of `h`×`w` maps into the S×S frame: its resized size is `new_h`×`new_w`, top-left aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub h: usize,
    pub w: usize,
    pub new_h: usize,
    pub new_w: usize,
    pub s: usize,
}

impl Frame {
    pub fn new(h: usize, w: usize, s: usize) -> Frame {
        let (new_h, new_w) = longest_side_size(h, w, s);
        Frame { h, w, new_h, new_w, s }
    }

    /// The reference's `resize_box_to_256`: each coordinate × (S / max(H, W)), truncated.
    pub fn box_to_frame(&self, b: [i64; 4]) -> [i64; 4] {
        let ratio = self.s as f64 / self.h.max(self.w) as f64;
        b.map(|v| (v as f64 * ratio) as i64)
    }

    /// Resizes a uint8 slice into the frame size (no padding): `out` is `new_h`×`new_w`.
    pub fn resize_u8(&self, slice: &[u8], out: &mut [u8]) {
        resize_area_u8(slice, self.w, self.h, out, self.new_w, self.new_h);
    }

    /// Fills the encoder input (3×S×S, CHW) from a uint8 slice, reusing `scratch` for the resized slice.
    pub fn encoder_input(&self, slice: &[u8], scratch: &mut Vec<u8>, out: &mut [f32]) {
        let (s, nh, nw) = (self.s, self.new_h, self.new_w);
        assert_eq!(out.len(), 3 * s * s);
        scratch.resize(nh * nw, 0);
        self.resize_u8(slice, scratch);
        let (mn, mx) = scratch.iter().fold((u8::MAX, u8::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        // numpy: (img - min) / clip(max - min, 1e-8) in float64, then .float()
        let range = if mx > mn { (mx - mn) as f64 } else { 1e-8 };
        let plane = &mut out[..s * s];
        plane.fill(0.0);
        for y in 0..nh {
            let src = &scratch[y * nw..(y + 1) * nw];
            let dst = &mut plane[y * s..y * s + nw];
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = ((v - mn) as f64 / range) as f32;
            }
        }
        let (first, rest) = out.split_at_mut(s * s);
        rest[..s * s].copy_from_slice(first);
        rest[s * s..].copy_from_slice(first);
    }

    /// The reference's `get_bbox256` on the previous slice's mask: resize the h×w mask into the frame,
    /// take the tight box of nonzero pixels, grow it by `shift`, clip to [0, S]. `None` when the resized
    /// mask is empty (thin structures can vanish in INTER_AREA).
    pub fn mask_box(&self, mask: &[u8], shift: i64, scratch: &mut Vec<u8>) -> Option<[i64; 4]> {
        let (nh, nw) = (self.new_h, self.new_w);
        scratch.resize(nh * nw, 0);
        self.resize_u8(mask, scratch);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0usize, 0usize);
        for y in 0..nh {
            let row = &scratch[y * nw..(y + 1) * nw];
            if let (Some(a), Some(b)) = (row.iter().position(|&v| v > 0), row.iter().rposition(|&v| v > 0)) {
                x0 = x0.min(a);
                x1 = x1.max(b);
                y0 = y0.min(y);
                y1 = y;
            }
        }
        if x0 == usize::MAX {
            return None;
        }
        let s = self.s as i64;
        Some([
            (x0 as i64 - shift).max(0),
            (y0 as i64 - shift).max(0),
            (x1 as i64 + shift).min(s),
            (y1 as i64 + shift).min(s),
        ])
    }

    /// Crops S×S logits to the resized region, upsamples them bilinearly (align_corners=False, as
    /// `F.interpolate`) to h×w, and writes `value` where the probability exceeds 0.5 (logit > 0).
    /// Returns the number of pixels written.
    pub fn paint_mask(&self, logits: &[f32], value: u8, out: &mut [u8]) -> usize {
        let mut n = 0;
        self.upsample(logits, |idx, v| {
            if v > 0.0 {
                out[idx] = value;
                n += 1;
            }
        });
        n
    }

    /// Bilinear upsampling of the cropped logits to h×w, calling `f(pixel index, value)` per output pixel.
    pub fn upsample(&self, logits: &[f32], mut f: impl FnMut(usize, f32)) {
        let (s, h, w) = (self.s, self.h, self.w);
        assert_eq!(logits.len(), s * s);
        let xs = Axis::new(self.new_w, w);
        let ys = Axis::new(self.new_h, h);
        for y in 0..h {
            let (y0, y1, wy0, wy1) = ys.at(y);
            let r0 = &logits[y0 * s..y0 * s + s];
            let r1 = &logits[y1 * s..y1 * s + s];
            for x in 0..w {
                let (x0, x1, wx0, wx1) = xs.at(x);
                // PyTorch's CPU kernel: per axis fma(a, w0, b * w1), width first, then height.
                let t0 = r0[x0].mul_add(wx0, r0[x1] * wx1);
                let t1 = r1[x0].mul_add(wx0, r1[x1] * wx1);
                let v = t0.mul_add(wy0, t1 * wy1);
                f(y * w + x, v);
            }
        }
    }
}

/// PyTorch's linear source-index computation for one axis (align_corners=False, float arithmetic).
struct Axis {
    idx0: Vec<usize>,
    idx1: Vec<usize>,
    w0: Vec<f32>,
    w1: Vec<f32>,
}

impl Axis {
    fn new(input: usize, output: usize) -> Axis {
        let scale = input as f32 / output as f32;
        let mut a = Axis {
            idx0: Vec::with_capacity(output),
            idx1: Vec::with_capacity(output),
            w0: Vec::with_capacity(output),
            w1: Vec::with_capacity(output),
        };
        for o in 0..output {
            let real = (scale * (o as f32 + 0.5) - 0.5).max(0.0);
            let i0 = real as usize;
            let off = usize::from(i0 < input - 1);
            let l1 = (real - i0 as f32).clamp(0.0, 1.0);
            a.idx0.push(i0);
            a.idx1.push(i0 + off);
            a.w0.push(1.0 - l1);
            a.w1.push(l1);
        }
        a
    }
    #[inline]
    fn at(&self, o: usize) -> (usize, usize, f32, f32) {
        (self.idx0[o], self.idx1[o], self.w0[o], self.w1[o])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_to_frame_truncates_like_the_reference() {
        // H=101, W=122: ratio 256/122
        let f = Frame::new(101, 122, 256);
        assert_eq!((f.new_h, f.new_w), (212, 256));
        assert_eq!(f.box_to_frame([10, 20, 121, 100]), [20, 41, 253, 209]);
    }

    #[test]
    fn mask_box_grows_and_clips() {
        let f = Frame::new(256, 256, 256);
        let mut m = vec![0u8; 256 * 256];
        m[256 + 2] = 1;
        m[254 * 256 + 255] = 1;
        let mut scratch = Vec::new();
        assert_eq!(f.mask_box(&m, 3, &mut scratch), Some([0, 0, 256, 256]));
        assert_eq!(f.mask_box(&vec![0u8; 256 * 256], 3, &mut scratch), None);
    }

    #[test]
    fn identity_upsample_keeps_values() {
        let f = Frame::new(256, 256, 256);
        let logits: Vec<f32> = (0..256 * 256).map(|i| if i % 3 == 0 { 1.0 } else { -1.0 }).collect();
        let mut out = vec![0u8; 256 * 256];
        let n = f.paint_mask(&logits, 7, &mut out);
        assert_eq!(n, logits.iter().filter(|&&v| v > 0.0).count());
        assert!(out.iter().zip(&logits).all(|(&o, &l)| (o == 7) == (l > 0.0)));
    }
}
