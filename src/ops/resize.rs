//! Bit-exact port of OpenCV's `cv2.resize(img, (neww, newh), interpolation=cv2.INTER_AREA)` for
//! single-channel `u8` images (METHODS.md §0.4b step 2, `resize_longest_side`).
//!
//! Ported from `modules/imgproc/src/resize.cpp` (`cv::resize` / `cv::hal::resize`) and verified
//! against opencv-python-headless 5.0.0.93 goldens (`tests/fixtures/resize/`). The IPP HAL does not
//! take INTER_AREA (it maps to `ippSuper`, which OpenCV only uses with "not exact" IPP enabled), so
//! OpenCV's own code paths are what the reference runs:
//!
//! * `dsize == ssize` → plain copy.
//! * `scale_x >= 1 && scale_y >= 1` (down-scale or equal on both axes):
//!   * both scales integral (`|scale - cvRound(scale)| < DBL_EPSILON`) → `resizeAreaFast_`:
//!     2×2 uses `(a+b+c+d+2) >> 2`; any other k×l uses `cvRound((float)sum * (1.f/(k*l)))`
//!     (round half to even, in `f32`).
//!   * otherwise → `resizeArea_<uchar, float>`: `computeResizeAreaTab` weights (`f32`), per-row
//!     horizontal accumulation, vertical `sum += beta*buf` in `f32`, `cvRound` + saturate.
//! * otherwise (up-scale on at least one axis, incl. mixed) → the generic linear resize in "area
//!   mode": `sx = cvFloor(dx*scale_x)`, `fx = (float)((dx+1) - (sx+1)*inv_scale_x)`,
//!   `fx = fx <= 0 ? 0 : fx - cvFloor(fx)`, coefficients `saturate_cast<short>(c * 2048)`,
//!   horizontal pass `S[sx]*a0 + S[sx+1]*a1` (right border: `S[sx]*2048`), rows clamped to the
//!   image (BORDER_REPLICATE), vertical pass
//!   `(((b0*(S0>>4))>>16) + ((b1*(S1>>4))>>16) + 2) >> 2` — OpenCV's `VResizeLinear` for `uchar`
//!   (its SIMD and scalar variants compute the same thing).
//!
//! The 3-channel image the reference resizes (`np.repeat(gray[:,:,None], 3, -1)`) gives each
//! channel equal to this single-channel result (asserted when the goldens are recorded).

/// OpenCV `INTER_RESIZE_COEF_BITS`.
const COEF_BITS: u32 = 11;
/// OpenCV `INTER_RESIZE_COEF_SCALE` (2048).
const COEF_SCALE: i32 = 1 << COEF_BITS;

/// `saturate_cast<uchar>(float)`: `cvRound` (round half to even) then clamp to 0..=255.
#[inline]
fn sat_u8_from_f32(v: f32) -> u8 {
    if v.is_nan() {
        // cvRound(NaN) is INT_MIN on x86, which saturates to 0.
        return 0;
    }
    let r = v.round_ties_even();
    if r <= 0.0 {
        0
    } else if r >= 255.0 {
        255
    } else {
        r as u8
    }
}

/// `saturate_cast<short>(float)`.
#[inline]
fn sat_i16_from_f32(v: f32) -> i32 {
    let r = v.round_ties_even();
    r.clamp(i16::MIN as f32, i16::MAX as f32) as i32
}

/// `cvFloor(float)` / `cvFloor(double)` for the (small, finite) values used here.
#[inline]
fn floor_i64(v: f64) -> i64 {
    v.floor() as i64
}

/// The reference's `resize_longest_side` target size:
/// `(new_h, new_w) = (int(H*s+0.5), int(W*s+0.5))` with `s = target/max(H,W)` in `f64`.
pub fn longest_side_size(h: usize, w: usize, target: usize) -> (usize, usize) {
    assert!(h > 0 && w > 0, "longest_side_size: empty image {h}x{w}");
    let scale = target as f64 * 1.0 / h.max(w) as f64;
    let nh = (h as f64 * scale + 0.5) as usize;
    let nw = (w as f64 * scale + 0.5) as usize;
    (nh, nw)
}

/// Resize a single-channel u8 image (row-major, `src_w` columns × `src_h` rows, tightly packed)
/// into `dst` (`dst_w` × `dst_h`, tightly packed), bit-identical to OpenCV's INTER_AREA.
pub fn resize_area_u8(src: &[u8], src_w: usize, src_h: usize, dst: &mut [u8], dst_w: usize, dst_h: usize) {
    assert!(src_w > 0 && src_h > 0, "resize_area_u8: empty source {src_w}x{src_h}");
    assert!(dst_w > 0 && dst_h > 0, "resize_area_u8: empty destination {dst_w}x{dst_h}");
    assert_eq!(src.len(), src_w * src_h, "resize_area_u8: source buffer length");
    assert_eq!(dst.len(), dst_w * dst_h, "resize_area_u8: destination buffer length");
    assert!(
        src_w <= i32::MAX as usize
            && src_h <= i32::MAX as usize
            && dst_w <= i32::MAX as usize
            && dst_h <= i32::MAX as usize,
        "resize_area_u8: size exceeds OpenCV's int range"
    );

    // cv::resize: same size -> copy.
    if src_w == dst_w && src_h == dst_h {
        dst.copy_from_slice(src);
        return;
    }

    // cv::resize computes inv_scale from dsize/ssize; hal::resize takes reciprocals.
    let inv_scale_x = dst_w as f64 / src_w as f64;
    let inv_scale_y = dst_h as f64 / src_h as f64;
    let scale_x = 1.0 / inv_scale_x;
    let scale_y = 1.0 / inv_scale_y;
    // saturate_cast<int>(double) == cvRound (half to even).
    let iscale_x = scale_x.round_ties_even();
    let iscale_y = scale_y.round_ties_even();
    let is_area_fast = (scale_x - iscale_x).abs() < f64::EPSILON && (scale_y - iscale_y).abs() < f64::EPSILON;

    if scale_x >= 1.0 && scale_y >= 1.0 {
        if is_area_fast {
            area_fast(src, src_w, src_h, dst, dst_w, dst_h, iscale_x as usize, iscale_y as usize);
        } else {
            area_general(src, src_w, src_h, dst, dst_w, dst_h, scale_x, scale_y);
        }
    } else {
        linear_area_mode(src, src_w, src_h, dst, dst_w, dst_h, scale_x, scale_y, inv_scale_x, inv_scale_y);
    }
}

/// `resizeAreaFast_<uchar, int, ResizeAreaFastVec<uchar, ...>>` for one channel (integral scales).
#[allow(clippy::too_many_arguments)]
fn area_fast(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize, scale_x: usize, scale_y: usize) {
    let area = scale_x * scale_y;
    let scale = 1.0f32 / area as f32;
    let dwidth1 = (sw / scale_x).min(dw);
    let fast_mode = scale_x == 2 && scale_y == 2;

    for dy in 0..dh {
        let drow = &mut dst[dy * dw..(dy + 1) * dw];
        let sy0 = dy * scale_y;
        if sy0 >= sh {
            drow.fill(0);
            continue;
        }
        let w = if sy0 + scale_y <= sh { dwidth1 } else { 0 };

        if fast_mode {
            let s0 = &src[sy0 * sw..(sy0 + 1) * sw];
            let s1 = &src[(sy0 + 1) * sw..(sy0 + 2) * sw];
            for (dx, d) in drow[..w].iter_mut().enumerate() {
                let i = dx * 2;
                let sum = s0[i] as u32 + s0[i + 1] as u32 + s1[i] as u32 + s1[i + 1] as u32;
                *d = ((sum + 2) >> 2) as u8;
            }
        } else {
            for (dx, d) in drow[..w].iter_mut().enumerate() {
                let sx0 = dx * scale_x;
                let mut sum: i32 = 0;
                for r in 0..scale_y {
                    let row = &src[(sy0 + r) * sw + sx0..(sy0 + r) * sw + sx0 + scale_x];
                    for &v in row {
                        sum += v as i32;
                    }
                }
                *d = sat_u8_from_f32(sum as f32 * scale);
            }
        }

        // Partial cells at the right/bottom border (only reachable if sizes are not exact multiples).
        for (dx, d) in drow.iter_mut().enumerate().skip(w) {
            let sx0 = dx * scale_x;
            let mut sum: i32 = 0;
            let mut count: i32 = 0;
            for sy in 0..scale_y {
                if sy0 + sy >= sh {
                    break;
                }
                let row = &src[(sy0 + sy) * sw..(sy0 + sy + 1) * sw];
                for sx in 0..scale_x {
                    if sx0 + sx >= sw {
                        break;
                    }
                    sum += row[sx0 + sx] as i32;
                    count += 1;
                }
            }
            *d = if count == 0 { 0 } else { sat_u8_from_f32(sum as f32 / count as f32) };
        }
    }
}

/// One entry of OpenCV's `DecimateAlpha` table (`cn == 1`).
#[derive(Clone, Copy, Debug)]
struct DecimateAlpha {
    si: usize,
    di: usize,
    alpha: f32,
}

/// `computeResizeAreaTab(ssize, dsize, cn = 1, scale, tab)`.
fn compute_resize_area_tab(ssize: usize, dsize: usize, scale: f64, tab: &mut Vec<DecimateAlpha>) {
    tab.clear();
    let ssize_i = ssize as i64;
    for dx in 0..dsize {
        let fsx1 = dx as f64 * scale;
        let fsx2 = fsx1 + scale;
        let rem = ssize as f64 - fsx1;
        // std::min(scale, ssize - fsx1) == (b < a) ? b : a
        let cell_width = if rem < scale { rem } else { scale };

        let mut sx1 = fsx1.ceil() as i64;
        let mut sx2 = fsx2.floor() as i64;
        sx2 = sx2.min(ssize_i - 1);
        sx1 = sx1.min(sx2);

        if sx1 as f64 - fsx1 > 1e-3 {
            tab.push(DecimateAlpha {
                di: dx,
                si: (sx1 - 1) as usize,
                alpha: ((sx1 as f64 - fsx1) / cell_width) as f32,
            });
        }
        for sx in sx1..sx2 {
            tab.push(DecimateAlpha { di: dx, si: sx as usize, alpha: (1.0 / cell_width) as f32 });
        }
        if fsx2 - sx2 as f64 > 1e-3 {
            let a = fsx2 - sx2 as f64;
            let a = if 1.0 < a { 1.0 } else { a };
            let a = if cell_width < a { cell_width } else { a };
            tab.push(DecimateAlpha { di: dx, si: sx2 as usize, alpha: (a / cell_width) as f32 });
        }
    }
}

/// `resizeArea_<uchar, float>` (`ResizeArea_Invoker`) for one channel.
#[allow(clippy::too_many_arguments)]
fn area_general(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize, scale_x: f64, scale_y: f64) {
    let mut xtab = Vec::with_capacity(sw * 2);
    let mut ytab = Vec::with_capacity(sh * 2);
    compute_resize_area_tab(sw, dw, scale_x, &mut xtab);
    compute_resize_area_tab(sh, dh, scale_y, &mut ytab);
    debug_assert!(ytab.first().is_some_and(|e| e.di == 0));

    let mut buf = vec![0f32; dw];
    let mut sum = vec![0f32; dw];
    let mut prev_dy = ytab[0].di;

    let store = |sum: &[f32], dst: &mut [u8], dy: usize| {
        for (d, &s) in dst[dy * dw..(dy + 1) * dw].iter_mut().zip(sum) {
            *d = sat_u8_from_f32(s);
        }
    };

    for e in &ytab {
        let beta = e.alpha;
        let dy = e.di;
        let srow = &src[e.si * sw..(e.si + 1) * sw];

        buf.fill(0.0);
        for x in &xtab {
            buf[x.di] += srow[x.si] as f32 * x.alpha;
        }

        if dy != prev_dy {
            store(&sum, dst, prev_dy);
            for (s, &b) in sum.iter_mut().zip(&buf) {
                *s = beta * b;
            }
            prev_dy = dy;
        } else {
            for (s, &b) in sum.iter_mut().zip(&buf) {
                *s += beta * b;
            }
        }
    }
    store(&sum, dst, prev_dy);
}

/// `clip(x, a, b)` from resize.cpp: `x >= a ? (x < b ? x : b-1) : a`.
#[inline]
fn clip_row(x: i64, a: i64, b: i64) -> usize {
    (if x >= a {
        if x < b {
            x
        } else {
            b - 1
        }
    } else {
        a
    }) as usize
}

/// Generic fixed-point linear resize with INTER_AREA's "area mode" coefficients
/// (`resizeGeneric_<HResizeLinear<uchar,int,short,2048>, VResizeLinear<uchar,int,short,FixedPtCast<...,22>>>`).
#[allow(clippy::too_many_arguments)]
fn linear_area_mode(
    src: &[u8],
    sw: usize,
    sh: usize,
    dst: &mut [u8],
    dw: usize,
    dh: usize,
    scale_x: f64,
    scale_y: f64,
    inv_scale_x: f64,
    inv_scale_y: f64,
) {
    let sw_i = sw as i64;

    // Horizontal tables.
    let mut xofs = vec![0usize; dw];
    let mut alpha = vec![[0i32; 2]; dw];
    let mut xmax = dw;
    for dx in 0..dw {
        let mut sx = floor_i64(dx as f64 * scale_x);
        let mut fx = ((dx as i64 + 1) as f64 - (sx + 1) as f64 * inv_scale_x) as f32;
        fx = if fx <= 0.0 { 0.0 } else { fx - (fx.floor() as i32) as f32 };

        // ksize2 - 1 == 0
        if sx < 0 {
            fx = 0.0;
            sx = 0;
        }
        if sx + 1 >= sw_i {
            xmax = xmax.min(dx);
            if sx >= sw_i - 1 {
                fx = 0.0;
                sx = sw_i - 1;
            }
        }
        xofs[dx] = sx as usize;
        let c0 = 1.0f32 - fx;
        let c1 = fx;
        alpha[dx] = [sat_i16_from_f32(c0 * COEF_SCALE as f32), sat_i16_from_f32(c1 * COEF_SCALE as f32)];
    }

    // Vertical tables.
    let mut yofs = vec![0i64; dh];
    let mut beta = vec![[0i32; 2]; dh];
    for dy in 0..dh {
        let sy = floor_i64(dy as f64 * scale_y);
        let mut fy = ((dy as i64 + 1) as f64 - (sy + 1) as f64 * inv_scale_y) as f32;
        fy = if fy <= 0.0 { 0.0 } else { fy - (fy.floor() as i32) as f32 };
        yofs[dy] = sy;
        let c0 = 1.0f32 - fy;
        let c1 = fy;
        beta[dy] = [sat_i16_from_f32(c0 * COEF_SCALE as f32), sat_i16_from_f32(c1 * COEF_SCALE as f32)];
    }

    // HResizeLinear for one source row.
    let hresize = |row: &[u8], out: &mut [i32]| {
        for dx in 0..xmax {
            let sx = xofs[dx];
            let [a0, a1] = alpha[dx];
            out[dx] = row[sx] as i32 * a0 + row[sx + 1] as i32 * a1;
        }
        for dx in xmax..dw {
            out[dx] = row[xofs[dx]] as i32 * COEF_SCALE;
        }
    };

    // Two cached horizontally-resized rows (OpenCV reuses rows the same way; values are identical).
    let mut rows = [vec![0i32; dw], vec![0i32; dw]];
    let mut row_src: [Option<usize>; 2] = [None, None];
    let sh_i = sh as i64;

    for dy in 0..dh {
        let sy0 = yofs[dy];
        let want = [clip_row(sy0, 0, sh_i), clip_row(sy0 + 1, 0, sh_i)];
        for k in 0..2 {
            if row_src[k] == Some(want[k]) {
                continue;
            }
            // Reuse the other slot if it already holds this source row.
            let other = 1 - k;
            if row_src[other] == Some(want[k]) {
                let (a, b) = rows.split_at_mut(1);
                if k == 0 {
                    a[0].copy_from_slice(&b[0]);
                } else {
                    b[0].copy_from_slice(&a[0]);
                }
            } else {
                hresize(&src[want[k] * sw..(want[k] + 1) * sw], &mut rows[k]);
            }
            row_src[k] = Some(want[k]);
        }

        let [b0, b1] = beta[dy];
        let drow = &mut dst[dy * dw..(dy + 1) * dw];
        for ((d, &s0), &s1) in drow.iter_mut().zip(&rows[0]).zip(&rows[1]) {
            let v = (((b0 * (s0 >> 4)) >> 16) + ((b1 * (s1 >> 4)) >> 16) + 2) >> 2;
            *d = v.clamp(0, 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- deterministic source generator, mirrored from scripts/golden/record_resize.py ----

    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    fn mix64(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn rand_base(seed: u64, stream: u64) -> u64 {
        seed.wrapping_mul(0x0000_0100_0000_01B3).wrapping_add(stream.wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
    }

    /// `rand_stream(seed, stream, n)[i]`.
    fn rand_at(seed: u64, stream: u64, i: u64) -> u64 {
        mix64(rand_base(seed, stream).wrapping_add((i + 1).wrapping_mul(GAMMA)))
    }

    fn make_image(kind: i64, seed: u64, h: usize, w: usize) -> Vec<u8> {
        let (hi, wi) = (h as i64, w as i64);
        let mut img = vec![0u8; h * w];
        match kind {
            0 => {
                for (i, p) in img.iter_mut().enumerate() {
                    *p = (rand_at(seed, 0, i as u64) >> 56) as u8;
                }
            }
            1 => {
                for y in 0..hi {
                    for x in 0..wi {
                        let v = (x * 255 / (wi - 1).max(1) + y * 255 / (hi - 1).max(1)) / 2;
                        img[(y * wi + x) as usize] = v as u8;
                    }
                }
            }
            2 => {
                let c = 1 + (seed % 4) as i64;
                for y in 0..hi {
                    for x in 0..wi {
                        img[(y * wi + x) as usize] = (((x / c + y / c) % 2) * 255) as u8;
                    }
                }
            }
            3 => {
                for (i, p) in img.iter_mut().enumerate() {
                    let r = rand_at(seed, 0, i as u64);
                    *p = if r & 63 == 0 { (r >> 56) as u8 } else { 0 };
                }
            }
            4 => {
                let rs = |stream: u64, idx: u64| rand_at(seed, stream, idx);
                for d in 0..3u64 {
                    let cx = (rs(1, 3 * d) % w as u64) as i64;
                    let cy = (rs(1, 3 * d + 1) % h as u64) as i64;
                    let r = 1 + (rs(1, 3 * d + 2) % ((h.max(w) / 4 + 1) as u64)) as i64;
                    for y in 0..hi {
                        for x in 0..wi {
                            if (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r {
                                img[(y * wi + x) as usize] = 1;
                            }
                        }
                    }
                }
                let ry = (rs(2, 0) % h as u64) as usize;
                img[ry * w..(ry + 1) * w].fill(1);
                let cx = (rs(2, 1) % w as u64) as usize;
                for y in 0..h {
                    img[y * w + cx] = 1;
                }
                let off = (rs(2, 2) % (w + h) as u64) as i64;
                for y in 0..hi {
                    for x in 0..wi {
                        if x - y + hi == off {
                            img[(y * wi + x) as usize] = 1;
                        }
                    }
                }
            }
            5 => {
                let bw = w.div_ceil(8);
                for y in 0..h {
                    for x in 0..w {
                        let block = (rand_at(seed, 0, ((y / 8) * bw + x / 8) as u64) >> 56) as i64;
                        let noise = (rand_at(seed, 1, (y * w + x) as u64) >> 60) as i64;
                        img[y * w + x] = (block + noise - 8).clamp(0, 255) as u8;
                    }
                }
            }
            6 => {
                let (cx, cy) = (wi / 3, hi / 2);
                let div = 1 + (seed % 7) as i64;
                for y in 0..hi {
                    for x in 0..wi {
                        let d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
                        img[(y * wi + x) as usize] = ((d2 / div) % 256) as u8;
                    }
                }
            }
            7 => {
                for (i, p) in img.iter_mut().enumerate() {
                    *p = (rand_at(seed, 0, i as u64) >> 62) as u8;
                }
            }
            _ => panic!("unknown image kind {kind}"),
        }
        img
    }

    fn fnv1a(bytes: &[u8]) -> u64 {
        let mut h: u64 = 0xCBF2_9CE4_8422_2325;
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3);
        }
        h
    }

    fn resized(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
        let mut out = vec![0u8; dw * dh];
        resize_area_u8(src, sw, sh, &mut out, dw, dh);
        out
    }

    #[test]
    fn resize_goldens_match_opencv_bit_for_bit() {
        use ndarray::{Array2, Ix2, OwnedRepr};
        use ndarray_npy::NpzReader;

        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/resize/resize_goldens.npz");
        let file = std::fs::File::open(path).expect("open resize goldens");
        let mut npz = NpzReader::new(file).expect("read npz");
        let meta: Array2<i64> = npz.by_name::<OwnedRepr<i64>, Ix2>("meta").expect("meta");
        assert!(meta.nrows() >= 100, "expected >= 100 golden cases, got {}", meta.nrows());

        let mut failures = Vec::new();
        let mut total_px = 0usize;
        for (i, m) in meta.outer_iter().enumerate() {
            let (sh, sw, dh, dw) = (m[0] as usize, m[1] as usize, m[2] as usize, m[3] as usize);
            let (kind, seed, sum) = (m[4], m[5] as u64, m[6] as u64);
            let src = make_image(kind, seed, sh, sw);
            assert_eq!(fnv1a(&src), sum, "case {i}: source generator mismatch (kind {kind}, {sh}x{sw})");

            let want: Array2<u8> = npz.by_name::<OwnedRepr<u8>, Ix2>(&format!("out_{i:03}")).expect("golden output");
            assert_eq!(want.dim(), (dh, dw), "case {i}: golden shape");
            let want: Vec<u8> = want.iter().copied().collect();

            let got = resized(&src, sw, sh, dw, dh);
            total_px += got.len();
            let diff: Vec<usize> = (0..got.len()).filter(|&p| got[p] != want[p]).collect();
            if !diff.is_empty() {
                let p = diff[0];
                failures.push(format!(
                    "case {i} ({sh}x{sw} -> {dh}x{dw}, kind {kind}): {} of {} px differ; first at (y {}, x {}): got {} want {}",
                    diff.len(),
                    got.len(),
                    p / dw,
                    p % dw,
                    got[p],
                    want[p]
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} mismatching cases (of {}):\n{}",
            failures.len(),
            meta.nrows(),
            failures.join("\n")
        );
        assert!(total_px > 1_000_000);
    }

    #[test]
    fn longest_side_matches_reference_rule() {
        assert_eq!(longest_side_size(101, 122, 256), (212, 256));
        assert_eq!(longest_side_size(512, 512, 256), (256, 256));
        assert_eq!(longest_side_size(233, 197, 256), (256, 216));
        assert_eq!(longest_side_size(120, 45, 256), (256, 96));
        assert_eq!(longest_side_size(167, 233, 256), (183, 256));
        assert_eq!(longest_side_size(300, 400, 256), (192, 256));
        assert_eq!(longest_side_size(1000, 700, 256), (256, 179));
        assert_eq!(longest_side_size(7, 300, 256), (6, 256));
        assert_eq!(longest_side_size(1, 1, 256), (256, 256));
        assert_eq!(longest_side_size(1, 700, 256), (0, 256));
    }

    #[test]
    fn same_size_is_copy() {
        let src: Vec<u8> = (0..12).map(|v| (v * 21) as u8).collect();
        assert_eq!(resized(&src, 4, 3, 4, 3), src);
    }

    #[test]
    fn two_by_two_downscale_rounds_half_up() {
        // (1+2+3+4+2)>>2 = 3 (2.5 -> 3), (0+0+0+1+2)>>2 = 0 (0.25), (0+1+1+1+2)>>2 = 1 (0.75)
        let src = [1, 2, 0, 0, 3, 4, 0, 1];
        assert_eq!(resized(&src, 4, 2, 2, 1), vec![3, 0]);
        let src = [0, 1, 1, 1];
        assert_eq!(resized(&src, 2, 2, 1, 1), vec![1]);
    }

    #[test]
    fn integer_non_2x2_downscale_rounds_half_to_even() {
        // 2x1 area-fast (scale 0.5f): 1.5 -> 2, 2.5 -> 2, 0.5 -> 0.
        let src = [1, 2, 2, 3, 0, 1];
        assert_eq!(resized(&src, 6, 1, 3, 1), vec![2, 2, 0]);
    }

    #[test]
    fn upscale_of_single_pixel_is_constant() {
        for v in [0u8, 1, 127, 128, 254, 255] {
            assert!(resized(&[v], 1, 1, 256, 256).iter().all(|&p| p == v));
        }
    }

    #[test]
    fn constant_images_stay_constant() {
        for &(sw, sh, dw, dh) in &[(7, 5, 3, 2), (5, 7, 13, 3), (3, 3, 10, 10), (10, 4, 4, 9)] {
            let src = vec![200u8; sw * sh];
            assert!(resized(&src, sw, sh, dw, dh).iter().all(|&p| p == 200), "{sw}x{sh}->{dw}x{dh}");
        }
    }

    #[test]
    fn upscale_2x_area_mode_coefficients() {
        // 1x2 -> 1x4: area-mode fx for dx=0..3 with scale 0.5: sx=0,0,1,1;
        // fx = (dx+1) - (sx+1)*2 -> -1, 0, -1, 0 -> all 0: nearest-like, [a, a, b, b].
        assert_eq!(resized(&[10, 250], 2, 1, 4, 1), vec![10, 10, 250, 250]);
        // 1x2 -> 1x3 (scale 2/3): dx=1: sx=0, fx=2-1.5=0.5 -> (10+250)/2 = 130.
        assert_eq!(resized(&[10, 250], 2, 1, 3, 1), vec![10, 130, 250]);
    }
}
