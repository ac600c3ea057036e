//! A PNG montage of slices with the mask overlaid, for a person to look at.
//!
//! Drawn from world geometry, whatever the array's order: axial slices (the array axis closest to S),
//! in radiological convention (the patient's right on the image's left, anterior up), square pixels,
//! ordered from inferior to superior, each tile labelled with its slice and the R/L/A/P sides.

use std::path::Path;

use crate::error::{Error, Result};
use crate::volume::{Geometry, U8Volume};

/// The most pixels a tile side is stretched to for square pixels: a thick-slab axis is not blown up
/// without bound.
const MAX_STRETCHED_SIDE: usize = 1024;

/// How the array's axes are shown. `h` runs along the screen's x (the axis closest to R), `v` along its y
/// (closest to A), `slice` across tiles (closest to S); `*_rev` says the index grows the other way on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenAxes {
    pub slice: usize,
    pub h: usize,
    pub v: usize,
    h_rev: bool,
    v_rev: bool,
    slice_rev: bool,
}

impl ScreenAxes {
    /// Radiological display for `g`: each world axis (R, A, S) gets the array axis whose direction is
    /// closest to it (the permutation with the largest summed cosine, so an oblique scan still gets one
    /// axis each); the identity where the matrix says nothing (zero or non-finite columns).
    pub fn radiological(g: &Geometry) -> ScreenAxes {
        let m = &g.ijk_to_ras;
        let cos = |a: usize, w: usize| {
            let n = (0..3).map(|r| m[r][a] * m[r][a]).sum::<f64>().sqrt();
            let c = m[w][a] / n;
            if c.is_finite() {
                c
            } else {
                0.0
            }
        };
        const PERMS: [[usize; 3]; 6] = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        let score = |p: &[usize; 3]| (0..3).map(|w| cos(p[w], w).abs()).sum::<f64>();
        // The first best wins, so ties keep the array's own order.
        let mut best = PERMS[0];
        for p in &PERMS[1..] {
            if score(p) > score(&best) + 1e-9 {
                best = *p;
            }
        }
        let [h, v, slice] = best;
        // Screen x grows toward the patient's left (R decreasing), screen y downward (A decreasing), tiles
        // toward superior (S increasing).
        ScreenAxes { slice, h, v, h_rev: cos(h, 0) > 0.0, v_rev: cos(v, 1) > 0.0, slice_rev: cos(slice, 2) < 0.0 }
    }

    /// The tile's size in pixels for `dims` with `spacing`: the finer in-plane spacing becomes one pixel,
    /// the coarser axis is stretched to match (at most to `MAX_STRETCHED_SIDE`).
    pub fn tile_size(&self, dims: [usize; 3], spacing: [f64; 3]) -> (usize, usize) {
        let (nh, nv) = (dims[self.h], dims[self.v]);
        let (sh, sv) = (spacing[self.h], spacing[self.v]);
        if !(sh.is_finite() && sv.is_finite() && sh > 0.0 && sv > 0.0) {
            return (nh, nv);
        }
        let px = sh.min(sv);
        let side = |n: usize, s: f64| ((n as f64 * s / px).round() as usize).clamp(n, n.max(MAX_STRETCHED_SIDE));
        (side(nh, sh), side(nv, sv))
    }
}

/// For each of `screen` pixels along one side, the index among `n` voxels it shows (nearest, centred),
/// counted from the other end when `reversed`.
fn screen_to_array(screen: usize, n: usize, reversed: bool) -> Vec<usize> {
    (0..screen)
        .map(|x| {
            let a = ((x * n + n / 2) / screen).min(n - 1);
            if reversed {
                n - 1 - a
            } else {
                a
            }
        })
        .collect()
}

/// Slices (along `o.slice`) to show: up to `max` evenly spaced slices among those holding any label, else
/// the middle one; ordered from inferior to superior.
pub fn pick_slices(mask: &U8Volume, o: &ScreenAxes, max: usize) -> Vec<usize> {
    let d = mask.dims;
    let n = d[o.slice];
    let mut labelled = vec![false; n];
    let strides = [1, d[0], d[0] * d[1]];
    for (idx, &v) in mask.data.iter().enumerate() {
        if v > 0 {
            labelled[(idx / strides[o.slice]) % n] = true;
        }
    }
    let mut pool: Vec<usize> = (0..n).filter(|&s| labelled[s]).collect();
    if pool.is_empty() {
        pool.push(n / 2);
    }
    if o.slice_rev {
        pool.reverse();
    }
    if pool.len() <= max {
        return pool;
    }
    (0..max).map(|i| pool[i * (pool.len() - 1) / (max - 1).max(1)]).collect()
}

/// Writes a grid of `slices` of `image` (u8, i fastest, on `geometry`) with `mask` labels blended in
/// colour. With `confidence` (one value in [0, 1] per voxel), each slice gets a second panel to its right:
/// the confidence as a heat map (dark red = unsure, yellow-white = sure) with the mask outline in blue.
pub fn write_montage(
    path: &Path,
    image: &U8Volume,
    geometry: &Geometry,
    mask: &U8Volume,
    confidence: Option<&[f32]>,
    slices: &[usize],
) -> Result<()> {
    super::output::write_file(path, |w| write_montage_to(w, image, geometry, mask, confidence, slices))
}

/// `write_montage` into any writer.
pub fn write_montage_to(
    out: &mut dyn std::io::Write,
    image: &U8Volume,
    geometry: &Geometry,
    mask: &U8Volume,
    confidence: Option<&[f32]>,
    slices: &[usize],
) -> Result<()> {
    if image.dims != mask.dims {
        return Err(Error::ShapeMismatch(format!("image dims {:?} vs mask dims {:?}", image.dims, mask.dims)));
    }
    if let Some(c) = confidence {
        if c.len() != mask.data.len() {
            return Err(Error::ShapeMismatch(format!("{} confidence values for {} voxels", c.len(), mask.data.len())));
        }
    }
    let o = ScreenAxes::radiological(geometry);
    let d = image.dims;
    if let Some(&s) = slices.iter().find(|&&s| s >= d[o.slice]) {
        return Err(Error::InvalidArgument(format!("slice {s} is outside the {} slices", d[o.slice])));
    }
    let (w, h) = o.tile_size(d, geometry.spacing);
    let (nh, nv) = (d[o.h], d[o.v]);
    let strides = [1, d[0], d[0] * d[1]];
    // Array index along h (v) of each screen column (row), so the per-pixel work is two lookups.
    let cols_src = screen_to_array(w, nh, o.h_rev);
    let rows_src = screen_to_array(h, nv, o.v_rev);
    let panels = if confidence.is_some() { 2 } else { 1 };
    let n = slices.len().max(1);
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (cw, ch) = (cols * w * panels, rows * h);
    let mut rgb = vec![0u8; cw * ch * 3];
    let (sh, sv) = (strides[o.h], strides[o.v]);
    for (t, &s) in slices.iter().enumerate() {
        let (tx, ty) = ((t % cols) * w * panels, (t / cols) * h);
        let base = s * strides[o.slice];
        for (y, &b) in rows_src.iter().enumerate() {
            for (x, &a) in cols_src.iter().enumerate() {
                let i = base + a * sh + b * sv;
                let (g, l) = (image.data[i], mask.data[i]);
                let px = if l > 0 {
                    let c = super::label_color(l);
                    [0, 1, 2].map(|i| ((g as u16 + c[i] as u16) / 2) as u8)
                } else {
                    [g; 3]
                };
                let at = ((ty + y) * cw + tx + x) * 3;
                rgb[at..at + 3].copy_from_slice(&px);
                if let Some(conf) = confidence {
                    let c = conf[i].clamp(0.0, 1.0);
                    // An edge on screen: a neighbouring pixel shows another label, or the tile ends.
                    let other = |xx: usize, yy: usize| mask.data[base + cols_src[xx] * sh + rows_src[yy] * sv] != l;
                    let edge = l > 0
                        && (x == 0
                            || y == 0
                            || x + 1 == w
                            || y + 1 == h
                            || other(x - 1, y)
                            || other(x + 1, y)
                            || other(x, y - 1)
                            || other(x, y + 1));
                    let heat = if edge {
                        [40, 120, 255]
                    } else {
                        [(80.0 + 175.0 * c) as u8, (255.0 * c * c) as u8, (200.0 * c.powi(4)) as u8]
                    };
                    let at = at + w * 3;
                    rgb[at..at + 3].copy_from_slice(&heat);
                }
            }
        }
        let canvas = Canvas { rgb: &mut rgb, width: cw, x0: tx, y0: ty, w, h };
        label_tile(canvas, &o, geometry, d, s);
    }
    encode(out, cw, ch, &rgb).map_err(|e| Error::io("PNG output", e))
}

/// One tile of the montage's pixel buffer.
struct Canvas<'a> {
    rgb: &'a mut [u8],
    width: usize,
    x0: usize,
    y0: usize,
    w: usize,
    h: usize,
}

/// The slice ("K 12  S -34.5": array axis, index, and the tile centre's S in mm) top left, and the side
/// letters on the tile's edges.
fn label_tile(mut c: Canvas<'_>, o: &ScreenAxes, g: &Geometry, dims: [usize; 3], s: usize) {
    let scale = if c.w >= 160 && c.h >= 160 { 2 } else { 1 };
    let mut centre = dims.map(|n| (n as f64 - 1.0) / 2.0);
    centre[o.slice] = s as f64;
    let sup = g.ijk_to_ras(centre)[2];
    let text = format!("{} {s} S {sup:.1}", ["I", "J", "K"][o.slice]);
    let (gw, gh) = (4 * scale, 6 * scale);
    c.text(2, 2, &text, scale);
    let (mx, my) = (c.w / 2, c.h / 2);
    c.text(2, my.saturating_sub(gh / 2), "R", scale);
    c.text(c.w.saturating_sub(gw + 1), my.saturating_sub(gh / 2), "L", scale);
    c.text(mx.saturating_sub(gw / 2), 2 + gh + 2, "A", scale);
    c.text(mx.saturating_sub(gw / 2), c.h.saturating_sub(gh + 1), "P", scale);
}

impl Canvas<'_> {
    /// White 3×5 glyphs with a dark shadow, clipped to the tile.
    fn text(&mut self, x: usize, y: usize, s: &str, scale: usize) {
        for (n, ch) in s.chars().enumerate() {
            let rows = glyph(ch);
            for (shadow, colour) in [(1, [0u8; 3]), (0, [255u8; 3])] {
                for (r, bits) in rows.iter().enumerate() {
                    for col in 0..3 {
                        if bits >> (2 - col) & 1 == 0 {
                            continue;
                        }
                        for dy in 0..scale {
                            for dx in 0..scale {
                                let px = x + n * 4 * scale + col * scale + dx + shadow;
                                let py = y + r * scale + dy + shadow;
                                if px < self.w && py < self.h {
                                    let at = ((self.y0 + py) * self.width + self.x0 + px) * 3;
                                    self.rgb[at..at + 3].copy_from_slice(&colour);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Rows of a 3×5 glyph, most significant bit on the left; blank for characters the labels never use.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '-' => [0, 0, 7, 0, 0],
        '.' => [0, 0, 0, 0, 2],
        'A' => [2, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'P' => [6, 5, 6, 4, 4],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        _ => [0; 5],
    }
}

fn encode(
    w: &mut dyn std::io::Write,
    width: usize,
    height: usize,
    rgb: &[u8],
) -> std::result::Result<(), png::EncodingError> {
    let mut enc = png::Encoder::new(w, width as u32, height as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object defined in world space (a marker in the patient's right-anterior-superior corner, a bar
    /// along R), sampled onto a grid whose array axis `a` runs along world axis `axes[a]` with sign
    /// `signs[a]`; returns the image, the mask and the grid's geometry.
    fn grid(axes: [usize; 3], signs: [f64; 3], world: [usize; 3], spacing: [f64; 3]) -> (U8Volume, U8Volume, Geometry) {
        let dims = [world[axes[0]], world[axes[1]], world[axes[2]]];
        let mut m = [[0.0; 4]; 4];
        m[3][3] = 1.0;
        for a in 0..3 {
            let w = axes[a];
            m[w][a] = signs[a] * spacing[w];
            // Array index 0 sits at the world grid's low or high end.
            if signs[a] < 0.0 {
                m[w][3] += spacing[w] * (world[w] - 1) as f64;
            }
        }
        let g = Geometry { spacing: [spacing[axes[0]], spacing[axes[1]], spacing[axes[2]]], ijk_to_ras: m };
        let (mut image, mut mask) = (U8Volume::zeros(dims), U8Volume::zeros(dims));
        for k in 0..dims[2] {
            for j in 0..dims[1] {
                for i in 0..dims[0] {
                    let ras = g.ijk_to_ras([i as f64, j as f64, k as f64]);
                    let p = [0, 1, 2].map(|w| (ras[w] / spacing[w]).round() as usize);
                    let idx = i + dims[0] * (j + dims[1] * k);
                    image.data[idx] = (p[0] * 9 + p[1] * 5 + p[2] * 3) as u8;
                    if p[0] + 2 >= world[0] && p[1] + 2 >= world[1] {
                        mask.data[idx] = 1 + (p[2] % 2) as u8;
                    }
                }
            }
        }
        (image, mask, g)
    }

    /// The montage as (width, tile height, RGB pixels).
    fn render(v: &(U8Volume, U8Volume, Geometry)) -> (u32, usize, Vec<u8>) {
        let o = ScreenAxes::radiological(&v.2);
        let slices = pick_slices(&v.1, &o, 16);
        let conf: Vec<f32> = v.1.data.iter().map(|&l| l as f32 / 2.0).collect();
        let mut out = Vec::new();
        write_montage_to(&mut out, &v.0, &v.2, &v.1, Some(&conf), &slices).unwrap();
        let (w, buf) = decode(out);
        (w, o.tile_size(v.0.dims, v.2.spacing).1, buf)
    }

    fn decode(png_bytes: Vec<u8>) -> (u32, Vec<u8>) {
        let mut reader = png::Decoder::new(std::io::Cursor::new(png_bytes)).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info.width, buf)
    }

    #[test]
    fn the_same_world_object_gives_the_same_picture_whatever_the_array_order() {
        let (world, sp) = ([20, 14, 6], [1.0, 1.0, 2.5]);
        let (width, tile_h, reference) = render(&grid([0, 1, 2], [1.0, 1.0, 1.0], world, sp));
        assert_eq!(tile_h, 14);
        let layouts = [
            ([0, 1, 2], [-1.0, -1.0, 1.0]), // LPS (DICOM, ITK)
            ([0, 1, 2], [-1.0, 1.0, -1.0]), // LAI
            ([1, 0, 2], [1.0, -1.0, 1.0]),  // rows and columns swapped
            ([2, 0, 1], [1.0, 1.0, -1.0]),  // stored sagittally: i = S, j = R, k = A
        ];
        for (axes, signs) in layouts {
            let (w, _, pic) = render(&grid(axes, signs, world, sp));
            assert_eq!((w, pic.len()), (width, reference.len()), "axes {axes:?} signs {signs:?}");
            // Every pixel but each tile's first 9 rows, where the label names the array axis and index.
            let row = width as usize * 3;
            for (y, (a, b)) in pic.chunks(row).zip(reference.chunks(row)).enumerate() {
                if y % tile_h >= 9 {
                    assert_eq!(a, b, "axes {axes:?} signs {signs:?}: row {y}");
                }
            }
        }
    }

    #[test]
    fn the_patients_right_is_on_the_left_anterior_up_and_thick_axes_are_stretched() {
        let (world, sp) = ([20, 14, 6], [1.0, 2.0, 2.5]);
        let v = grid([0, 1, 2], [1.0, 1.0, 1.0], world, sp);
        let o = ScreenAxes::radiological(&v.2);
        assert_eq!((o.h, o.v, o.slice), (0, 1, 2));
        // 14 rows of 2 mm become 28 pixels of 1 mm.
        assert_eq!(o.tile_size(v.0.dims, v.2.spacing), (20, 28));
        let mut out = Vec::new();
        write_montage_to(&mut out, &v.0, &v.2, &v.1, None, &[3]).unwrap();
        let (width, buf) = decode(out);
        assert_eq!((width, buf.len()), (20, 20 * 28 * 3));
        // The marker (labels 1/2, reddish/bluish tints: R ≠ G) lies in the most right and most anterior voxels:
        // on screen, the top-left corner, away from the drawn letters.
        let tinted: Vec<(usize, usize)> = (0..28)
            .flat_map(|y| (0..20).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let p = &buf[(y * 20 + x) * 3..][..3];
                p[0] != p[1] && p != [0, 0, 0] && p != [255, 255, 255]
            })
            .collect();
        assert!(!tinted.is_empty());
        assert!(tinted.iter().all(|&(x, y)| x < 2 && y < 4), "{tinted:?}");
    }

    #[test]
    fn slices_run_from_inferior_to_superior_and_bad_slices_are_refused() {
        let v = grid([0, 1, 2], [1.0, 1.0, -1.0], [20, 14, 6], [1.0, 1.0, 1.0]);
        let o = ScreenAxes::radiological(&v.2);
        // k grows toward inferior here, so the first tile is the highest k.
        assert_eq!(pick_slices(&v.1, &o, 16), vec![5, 4, 3, 2, 1, 0]);
        assert_eq!(pick_slices(&v.1, &o, 3), vec![5, 3, 0]);
        let err = write_montage_to(&mut Vec::new(), &v.0, &v.2, &v.1, None, &[6]).unwrap_err();
        assert_eq!(err.code(), crate::ErrorCode::InvalidArgument);
    }
}
