//! A PNG montage of slices with the mask overlaid, for a person to look at.

use std::io::BufWriter;
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
/// flipped so that increasing j points up, the usual radiological display for RAS/LPS-stored data.
pub fn write_montage(path: &Path, image: &U8Volume, mask: &U8Volume, slices: &[usize]) -> Result<()> {
    if image.dims != mask.dims {
        return Err(Error::ShapeMismatch(format!("image dims {:?} vs mask dims {:?}", image.dims, mask.dims)));
    }
    let [w, h, _] = image.dims;
    let n = slices.len().max(1);
    let cols = (n as f64).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (cw, ch) = (cols * w, rows * h);
    let mut rgb = vec![0u8; cw * ch * 3];
    for (t, &k) in slices.iter().enumerate() {
        let (tx, ty) = ((t % cols) * w, (t / cols) * h);
        let (img, m) = (image.slice(k), mask.slice(k));
        for y in 0..h {
            let src_row = h - 1 - y;
            for x in 0..w {
                let g = img[src_row * w + x];
                let l = m[src_row * w + x];
                let px = [g; 3];
                let out = if l > 0 {
                    let c = PALETTE[(l as usize - 1) % PALETTE.len()];
                    [0, 1, 2].map(|i| ((px[i] as u16 + c[i] as u16) / 2) as u8)
                } else {
                    px
                };
                let o = ((ty + y) * cw + tx + x) * 3;
                rgb[o..o + 3].copy_from_slice(&out);
            }
        }
    }
    super::write_atomically(path, "png", |tmp| {
        let file = std::fs::File::create(tmp).map_err(|e| Error::io(path, e))?;
        let mut enc = png::Encoder::new(BufWriter::new(file), cw as u32, ch as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(|e| Error::io(path, e))?;
        writer.write_image_data(&rgb).map_err(|e| Error::io(path, e))?;
        writer.finish().map_err(|e| Error::io(path, e))
    })
}
