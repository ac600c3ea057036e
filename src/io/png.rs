//! A PNG montage of slices with the mask overlaid, for a person to look at.

use std::path::Path;

use crate::error::{Error, Result};
use crate::volume::U8Volume;

const PALETTE: [[u8; 3]; 8] = [
    [255, 64, 64],
    [64, 200, 255],
    [255, 220, 0],
    [80, 255, 80],
    [255, 96, 255],
    [255, 160, 32],
    [160, 120, 255],
    [0, 255, 200],
];

/// Slices (k) to show: up to `max` evenly spaced slices among those holding any label, else the middle.
pub fn pick_slices(mask: &U8Volume, max: usize) -> Vec<usize> {
    let labelled: Vec<usize> = (0..mask.dims[2]).filter(|&k| mask.slice(k).iter().any(|&v| v > 0)).collect();
    let pool = if labelled.is_empty() { vec![mask.dims[2] / 2] } else { labelled };
    if pool.len() <= max {
        return pool;
    }
    (0..max).map(|i| pool[i * (pool.len() - 1) / (max - 1).max(1)]).collect()
}

/// Writes a grid of `slices` of `image` (u8, i fastest) with `mask` labels blended in colour. Rows are
/// flipped so that increasing j points up, the usual radiological display for RAS/LPS-stored data. With
/// `confidence` (one value in [0, 1] per voxel), each slice gets a second panel to its right: the
/// confidence as a heat map (dark red = unsure, yellow-white = sure) with the mask outline in blue.
pub fn write_montage(
    path: &Path,
    image: &U8Volume,
    mask: &U8Volume,
    confidence: Option<&[f32]>,
    slices: &[usize],
) -> Result<()> {
    super::output::write_file(path, |w| write_montage_to(w, image, mask, confidence, slices))
}

/// `write_montage` into any writer.
pub fn write_montage_to(
    out: &mut dyn std::io::Write,
    image: &U8Volume,
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
    let [w, h, _] = image.dims;
    let panels = if confidence.is_some() { 2 } else { 1 };
    let n = slices.len().max(1);
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (cw, ch) = (cols * w * panels, rows * h);
    let mut rgb = vec![0u8; cw * ch * 3];
    for (t, &k) in slices.iter().enumerate() {
        let (tx, ty) = ((t % cols) * w * panels, (t / cols) * h);
        let (img, m) = (image.slice(k), mask.slice(k));
        let n_slice = w * h;
        for y in 0..h {
            let src_row = h - 1 - y;
            for x in 0..w {
                let i = src_row * w + x;
                let g = img[i];
                let l = m[i];
                let px = [g; 3];
                let out = if l > 0 {
                    let c = PALETTE[(l as usize - 1) % PALETTE.len()];
                    [0, 1, 2].map(|i| ((px[i] as u16 + c[i] as u16) / 2) as u8)
                } else {
                    px
                };
                let o = ((ty + y) * cw + tx + x) * 3;
                rgb[o..o + 3].copy_from_slice(&out);
                if let Some(conf) = confidence {
                    let c = conf[k * n_slice + i].clamp(0.0, 1.0);
                    let edge = l > 0
                        && (x == 0
                            || x + 1 == w
                            || src_row == 0
                            || src_row + 1 == h
                            || m[i - 1] != l
                            || m[i + 1] != l
                            || m[i - w] != l
                            || m[i + w] != l);
                    let heat = if edge {
                        [40, 120, 255]
                    } else {
                        [(80.0 + 175.0 * c) as u8, (255.0 * c * c) as u8, (200.0 * c.powi(4)) as u8]
                    };
                    let o = o + w * 3;
                    rgb[o..o + 3].copy_from_slice(&heat);
                }
            }
        }
    }
    encode(out, cw, ch, &rgb).map_err(|e| Error::io("PNG output", e))
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
