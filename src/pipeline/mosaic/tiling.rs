//! Slice mosaics (seed 003, SFR: METHODS §4.2): a stack's slices tiled into square S×S canvases for a 2D model,
//! and the exact inverse.
//!
//! The geometry is SFR's `Spread_bs_*`, generalised so that nothing is lost:
//! - a grid of `rows × cols` tiles with `rows = S / h`, `cols = S / w` (a slice is h rows of w pixels, as the
//!   stack stores it: SFR's axis swap puts the same row axis first);
//! - each slice padded to a tile of `h + 2·ph` × `w + 2·pw`, with `ph = round((S/rows − h)/2)` (banker's
//!   rounding, as Python's `round`), and the grid centred on the canvas (offset `(S − tiles)/2`, floored,
//!   possibly negative: the outer tiles' padding is then clipped);
//! - slices go into tiles row-major, centred among the tiles of their canvas (SFR's `ps` empty tiles before
//!   them) — but where SFR drops the slices beyond one canvas, they go to further canvases here, each centred
//!   on its own;
//! - where SFR's rounding would clip a slice's own pixels (not only padding), the padding is floored instead,
//!   so every pixel of every slice is on a canvas exactly once. On SFR's worked geometries (112×112×80 at
//!   1024 and the others of METHODS §4.2) the two agree.

use crate::error::{Error, Result};

/// Where one slice lies on its canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub slice: usize,
    pub canvas: usize,
    /// The tile's index on its canvas (row-major).
    pub tile: usize,
    /// The canvas pixel of the slice's first pixel (its padding excluded).
    pub y: usize,
    pub x: usize,
}

/// The tiling of one stack's slices onto S×S canvases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MosaicTiling {
    pub s: usize,
    /// Slice size: h rows of w pixels, and the stack depth.
    pub h: usize,
    pub w: usize,
    pub d: usize,
    pub rows: usize,
    pub cols: usize,
    /// Padding of a slice inside its tile, on each side.
    pub ph: usize,
    pub pw: usize,
    /// Where the tile grid starts on the canvas (negative: its outer padding is clipped).
    pub oy: i64,
    pub ox: i64,
    /// One per slice, in slice order.
    pub placements: Vec<Placement>,
    pub canvases: usize,
}

/// Python's `round` for a non-negative half-integer grid: half to even.
fn round_half_even(v: f64) -> usize {
    let f = v.floor();
    let r = if v - f > 0.5 || (v - f == 0.5 && (f as i64) % 2 == 1) { f + 1.0 } else { f };
    r.max(0.0) as usize
}

impl MosaicTiling {
    /// The tiling of `d` slices of `h`×`w` onto `s`×`s` canvases; a slice larger than a canvas is refused (it
    /// would have to be resized first).
    pub fn new(h: usize, w: usize, d: usize, s: usize) -> Result<MosaicTiling> {
        if h == 0 || w == 0 || d == 0 || s == 0 {
            return Err(Error::InvalidArgument(format!("a mosaic of {d} slices of {h}×{w} on {s}×{s}")));
        }
        if h > s || w > s {
            return Err(Error::InvalidArgument(format!(
                "a {h}×{w} slice does not fit a {s}×{s} canvas: resize the slices to at most {s} first"
            )));
        }
        let (rows, cols) = (s / h, s / w);
        // SFR's padding, floored where its rounding would push a slice's own pixels off the canvas.
        let pad = |n: usize, size: usize| -> (usize, i64) {
            let sfr = round_half_even((s as f64 / n as f64 - size as f64) / 2.0);
            let offset = |p: usize| (s as i64 - ((size + 2 * p) * n) as i64).div_euclid(2);
            let p = if offset(sfr) + (sfr as i64) < 0 { (s / n - size) / 2 } else { sfr };
            (p, offset(p))
        };
        let ((ph, oy), (pw, ox)) = (pad(rows, h), pad(cols, w));
        let per = rows * cols;
        let canvases = d.div_ceil(per);
        let (th, tw) = (h + 2 * ph, w + 2 * pw);
        let mut placements = Vec::with_capacity(d);
        for c in 0..canvases {
            let first = c * per;
            let here = (d - first).min(per);
            let lead = (per - here) / 2;
            for k in 0..here {
                let tile = lead + k;
                let (r, q) = (tile / cols, tile % cols);
                let y = oy + (r * th + ph) as i64;
                let x = ox + (q * tw + pw) as i64;
                debug_assert!(y >= 0 && x >= 0 && y as usize + h <= s && x as usize + w <= s);
                placements.push(Placement { slice: first + k, canvas: c, tile, y: y as usize, x: x as usize });
            }
        }
        Ok(MosaicTiling { s, h, w, d, rows, cols, ph, pw, oy, ox, placements, canvases })
    }

    /// The canvases of `stack` (d slices of h×w, slice-major, row-major): every pixel outside a slice is `pad`.
    pub fn stitch<T: Copy>(&self, stack: &[T], pad: T) -> Vec<Vec<T>> {
        assert_eq!(stack.len(), self.h * self.w * self.d, "stack size");
        let s = self.s;
        let mut out = vec![vec![pad; s * s]; self.canvases];
        for p in &self.placements {
            let src = &stack[p.slice * self.h * self.w..(p.slice + 1) * self.h * self.w];
            let dst = &mut out[p.canvas];
            for r in 0..self.h {
                let at = (p.y + r) * s + p.x;
                dst[at..at + self.w].copy_from_slice(&src[r * self.w..(r + 1) * self.w]);
            }
        }
        out
    }

    /// The stack back from its canvases (the model's output on them): the exact inverse of `stitch`.
    pub fn unstitch<T: Copy + Default>(&self, canvases: &[Vec<T>]) -> Vec<T> {
        assert_eq!(canvases.len(), self.canvases, "canvas count");
        let s = self.s;
        let mut out = vec![T::default(); self.h * self.w * self.d];
        for p in &self.placements {
            let src = &canvases[p.canvas];
            let dst = &mut out[p.slice * self.h * self.w..(p.slice + 1) * self.h * self.w];
            for r in 0..self.h {
                let at = (p.y + r) * s + p.x;
                dst[r * self.w..(r + 1) * self.w].copy_from_slice(&src[at..at + self.w]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sfr_worked_geometries() {
        // METHODS §4.2's table: (H×W×D) → grid, tile, leading empty tiles, grid offset.
        let la = MosaicTiling::new(112, 112, 80, 1024).unwrap();
        assert_eq!((la.rows, la.cols, la.ph, la.pw, la.oy, la.ox, la.canvases), (9, 9, 1, 1, -1, -1, 1));
        assert_eq!(la.placements[0].tile, 0, "80 slices in 81 tiles: ps = 0");
        assert_eq!((la.placements[0].y, la.placements[0].x), (0, 0), "the clipped pixel is padding");
        let t = MosaicTiling::new(128, 128, 64, 1024).unwrap();
        assert_eq!((t.rows, t.ph, t.oy, t.canvases, t.placements[0].tile), (8, 0, 0, 1, 0));
        let t = MosaicTiling::new(96, 96, 96, 1024).unwrap();
        assert_eq!((t.rows, t.ph, t.oy, t.canvases, t.placements[0].tile), (10, 3, 2, 1, 2), "ps = 2");
        // SFR drops half of a 128³ crop; here it takes two canvases.
        let t = MosaicTiling::new(128, 128, 128, 1024).unwrap();
        assert_eq!((t.canvases, t.placements[64].canvas, t.placements[64].tile), (2, 1, 0));
    }

    #[test]
    fn rounding_that_would_clip_a_slice_is_floored() {
        // 29 rows at 256: 8 tiles, SFR pads 2 (1.5 rounds to 2), 8 × 33 = 264 > 256: offset −4 would cut
        // two rows of the outer slices; floored, the padding is 1 and the grid fits.
        let t = MosaicTiling::new(29, 29, 64, 256).unwrap();
        assert_eq!((t.rows, t.ph, t.oy), (8, 1, 4));
        assert!(MosaicTiling::new(300, 10, 1, 256).is_err());
        assert!(MosaicTiling::new(10, 10, 0, 256).is_err());
    }

    /// SplitMix64, so the property cases are the same on every run.
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn stitch_then_unstitch_is_the_identity_and_each_slice_is_placed_once_apart_from_the_others() {
        let mut rng = 0x5F_2026u64;
        for case in 0..400 {
            let s = [64usize, 256, 1024][case % 3];
            let h = 1 + (next(&mut rng) as usize) % s;
            let w = 1 + (next(&mut rng) as usize) % (s.min(200));
            let d = 1 + (next(&mut rng) as usize) % 150;
            let t = MosaicTiling::new(h, w, d, s).unwrap();
            assert_eq!(t.placements.len(), d);
            assert!(t.placements.iter().enumerate().all(|(k, p)| p.slice == k), "{h}×{w}×{d}@{s}");
            // Within a canvas, slices never overlap and lie inside it.
            let mut owner = vec![vec![u32::MAX; s * s]; t.canvases];
            for p in &t.placements {
                assert!(p.y + h <= s && p.x + w <= s, "{h}×{w}×{d}@{s}: slice {} off the canvas", p.slice);
                for r in 0..h {
                    for c in 0..w {
                        let o = &mut owner[p.canvas][(p.y + r) * s + p.x + c];
                        assert_eq!(*o, u32::MAX, "{h}×{w}×{d}@{s}: slices overlap");
                        *o = p.slice as u32;
                    }
                }
            }
            let stack: Vec<u32> = (0..h * w * d).map(|i| (i as u32).wrapping_mul(2654435761) | 1).collect();
            let canvases = t.stitch(&stack, 0);
            assert_eq!(t.unstitch(&canvases), stack, "{h}×{w}×{d}@{s}");
            // Everything not a slice pixel is padding.
            let placed: usize = canvases.iter().flatten().filter(|&&v| v != 0).count();
            assert_eq!(placed, h * w * d);
        }
    }
}
