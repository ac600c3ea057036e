//! NIfTI-1 single files, plain or gzip: the header is parsed by the `nifti` crate, the voxel data read here
//! from `vox_offset` under the volume limits; geometry from the sform, else the qform, else pixdim.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use nifti::NiftiHeader;

use super::files::{self, Limits};
use super::output;
use crate::error::{Error, Result};
use crate::volume::{DType, Geometry, U8Volume, Volume};

fn dtype_of(code: i16) -> Option<DType> {
    Some(match code {
        2 => DType::U8,
        256 => DType::I8,
        512 => DType::U16,
        4 => DType::I16,
        768 => DType::U32,
        8 => DType::I32,
        16 => DType::F32,
        64 => DType::F64,
        _ => return None,
    })
}

/// The header's IJK → RAS matrix (NIfTI world space is RAS).
pub fn geometry(h: &NiftiHeader) -> Geometry {
    let spacing = [h.pixdim[1].abs() as f64, h.pixdim[2].abs() as f64, h.pixdim[3].abs() as f64].map(|s| {
        if s > 0.0 {
            s
        } else {
            1.0
        }
    });
    let mut m = Geometry::default().ijk_to_ras;
    if h.sform_code > 0 {
        for (r, row) in [h.srow_x, h.srow_y, h.srow_z].iter().enumerate() {
            for c in 0..4 {
                m[r][c] = row[c] as f64;
            }
        }
    } else if h.qform_code > 0 {
        let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let r = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ];
        let sc = [spacing[0], spacing[1], spacing[2] * qfac];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = r[i][j] * sc[j];
            }
        }
        m[0][3] = h.quatern_x as f64;
        m[1][3] = h.quatern_y as f64;
        m[2][3] = h.quatern_z as f64;
    } else {
        for a in 0..3 {
            m[a][a] = spacing[a];
        }
    }
    Geometry { spacing, ijk_to_ras: m }
}

/// Voxel data may start at most this far after the header: extensions hold DICOM headers or provenance,
/// a few MiB at most, and a larger `vox_offset` in a compressed file would make the reader inflate it all.
const MAX_EXTENSION_BYTES: u64 = 64 << 20;
/// What a compressed file may hold after its voxel data; it is inflated (never kept) to check the gzip
/// checksum, so a file that claims little and holds gigabytes is refused instead of read for minutes.
const MAX_TRAILING_BYTES: u64 = 64 << 20;
const HEADER_BYTES: usize = 348;

/// Reads a 3D NIfTI-1 file (a 4th axis of length 1 is accepted) under the default `Limits`.
pub fn read(path: &Path) -> Result<(Volume, NiftiHeader)> {
    read_with(path, &Limits::default())
}

/// Reads a 3D NIfTI-1 file, single-file (`n+1`), plain or gzip-compressed (told by its first bytes, not by
/// its name). The voxel data is taken from `vox_offset`, its declared size is checked against `limits`
/// before anything is reserved, and a compressed file is inflated to its end so that its checksum is
/// verified. `scl_slope`/`scl_inter` are applied (the volume becomes floating point) as every NIfTI reader
/// does, so CT stored as unsigned integers with an intercept keeps its Hounsfield units.
pub fn read_with(path: &Path, limits: &Limits) -> Result<(Volume, NiftiHeader)> {
    let (file, len) = files::open_regular(path)?;
    read_from(BufReader::new(file), len, path, limits)
}

/// `read_with` over bytes already open: `len` is the source's length, `path` names it in messages. Hosts
/// with a file in memory and the fuzzing harness (`fuzz/`) come in here, past the file checks.
pub fn read_from(mut file: impl BufRead, len: u64, path: &Path, limits: &Limits) -> Result<(Volume, NiftiHeader)> {
    let gz = file.fill_buf().map_err(|e| Error::io(path, files::plain(&e)))?.starts_with(&[0x1f, 0x8b]);
    if gz {
        let mut r = MultiGzDecoder::new(file);
        let out = decode(&mut r, None, path, limits)?;
        // Inflating the rest verifies the CRC-32 and length in the gzip trailer.
        let rest = std::io::copy(&mut (&mut r).take(MAX_TRAILING_BYTES + 1), &mut std::io::sink())
            .map_err(|e| Error::io(path, format!("gzip data is corrupt or truncated: {}", files::plain(&e))))?;
        if rest > MAX_TRAILING_BYTES {
            return Err(Error::io(path, format!("holds more than {MAX_TRAILING_BYTES} bytes after its voxel data")));
        }
        Ok(out)
    } else {
        decode(&mut file, Some(len), path, limits)
    }
}

fn decode(r: &mut impl Read, file_len: Option<u64>, path: &Path, limits: &Limits) -> Result<(Volume, NiftiHeader)> {
    let bad = |m: String| Error::io(path, m);
    let mut raw = [0u8; HEADER_BYTES];
    r.read_exact(&mut raw).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            bad(format!("truncated: shorter than the {HEADER_BYTES}-byte NIfTI-1 header"))
        }
        _ => bad(format!("cannot read the NIfTI-1 header: {}", files::plain(&e))),
    })?;
    match &raw[344..348] {
        b"n+1\0" => {}
        b"ni1\0" => {
            return Err(bad("a NIfTI-1 header with its voxels in a separate .img file is not supported".into()))
        }
        m if m.starts_with(b"n+2") || m.starts_with(b"ni2") => {
            return Err(bad("NIfTI-2 is not supported (NIfTI-1 only)".into()))
        }
        _ if raw[4..8] == *b"n+2\0" => return Err(bad("NIfTI-2 is not supported (NIfTI-1 only)".into())),
        _ => return Err(bad("not a NIfTI-1 file (no n+1 magic at byte 344)".into())),
    }
    let header = NiftiHeader::from_reader(&raw[..]).map_err(|e| bad(format!("bad NIfTI-1 header: {e}")))?;
    if header.sizeof_hdr != HEADER_BYTES as i32 {
        return Err(bad(format!("sizeof_hdr is {}, not {HEADER_BYTES}", header.sizeof_hdr)));
    }
    let nd = header.dim[0] as usize;
    if !(1..=7).contains(&nd) {
        return Err(bad(format!("dim[0] = {nd} is not a valid NIfTI dimensionality (1 to 7)")));
    }
    if let Some(a) = (1..=nd).find(|&a| header.dim[a] as i16 <= 0) {
        return Err(bad(format!("dim[{a}] = {} is not a positive size", header.dim[a] as i16)));
    }
    if (4..=nd).any(|a| header.dim[a] > 1) {
        return Err(bad(format!("a {nd}-D image with dims {:?}: only 3D volumes are supported", &header.dim[1..=nd])));
    }
    let mut dims = [1usize; 3];
    for a in 0..nd.min(3) {
        dims[a] = header.dim[a + 1] as usize;
    }
    let dtype = dtype_of(header.datatype)
        .ok_or_else(|| bad(format!("NIfTI datatype code {} is not supported", header.datatype)))?;
    if header.bitpix as usize != dtype.size() * 8 {
        return Err(bad(format!(
            "bitpix {} does not match datatype {dtype:?} ({} bits)",
            header.bitpix,
            dtype.size() * 8
        )));
    }
    limits.check(&path.display().to_string(), &dims.map(|d| d as u64), dtype.size() as u64)?;
    let nbytes = dims.iter().product::<usize>() as u64 * dtype.size() as u64;
    let offset = voxel_offset(header.vox_offset).map_err(bad)?;
    if let Some(len) = file_len {
        if len < offset + nbytes {
            return Err(bad(format!(
                "truncated: {len} bytes, but voxel data of {nbytes} bytes from byte {offset} need {}",
                offset + nbytes
            )));
        }
    }
    let skip = offset - HEADER_BYTES as u64;
    let skipped = std::io::copy(&mut r.take(skip), &mut std::io::sink())
        .map_err(|e| bad(format!("cannot read the header extensions: {}", files::plain(&e))))?;
    if skipped < skip {
        return Err(bad(format!("truncated: ends before vox_offset {offset}")));
    }
    let mut data = files::read_exactly(r, nbytes, path, "voxel data")?;
    if header.endianness != nifti::Endianness::native() && dtype.size() > 1 {
        for v in data.chunks_exact_mut(dtype.size()) {
            v.reverse();
        }
    }
    let geometry = geometry(&header);
    let volume = Volume { data, dtype, dims, geometry };
    let (slope, inter) = (header.scl_slope as f64, header.scl_inter as f64);
    // The standard's rule: a slope of 0 (or one that is not finite) means the stored values are the values.
    if !slope.is_finite() || slope == 0.0 || (slope == 1.0 && inter == 0.0) || !inter.is_finite() {
        return Ok((volume, header));
    }
    Ok((scaled(&volume, slope, inter)?, header))
}

/// Where the voxel data starts: `vox_offset` (0 means right after the header, as nibabel reads it).
fn voxel_offset(v: f32) -> std::result::Result<u64, String> {
    let first = HEADER_BYTES as u64 + 4;
    if v == 0.0 {
        return Ok(first);
    }
    if !v.is_finite() || v.fract() != 0.0 || (v as f64) < first as f64 {
        return Err(format!("vox_offset {} is not a byte offset of at least {first}", short(v)));
    }
    if v as f64 > (first + MAX_EXTENSION_BYTES) as f64 {
        return Err(format!(
            "vox_offset {} puts the voxel data more than {MAX_EXTENSION_BYTES} bytes after the header",
            short(v)
        ));
    }
    Ok(v as u64)
}

/// A header number for a message: 1e30 in scientific notation, not as 31 digits.
fn short(v: f32) -> String {
    if v.abs() < 1e9 || !v.is_finite() {
        v.to_string()
    } else {
        format!("{v:e}")
    }
}

/// `value × slope + inter` in floating point: f64 where f32 would round the stored values, else f32.
fn scaled(v: &Volume, slope: f64, inter: f64) -> Result<Volume> {
    let wide = matches!(v.dtype, DType::F64 | DType::I32 | DType::U32);
    let dtype = if wide { DType::F64 } else { DType::F32 };
    let mut data = Vec::with_capacity(v.data.len() / v.dtype.size() * dtype.size());
    v.view()?.for_each(|x| {
        let y = x * slope + inter;
        if wide {
            data.extend_from_slice(&y.to_ne_bytes());
        } else {
            data.extend_from_slice(&(y as f32).to_ne_bytes());
        }
    });
    Ok(Volume { data, dtype, dims: v.dims, geometry: v.geometry })
}

/// Writes a uint8 label mask on the input grid (i fastest) to `path`, atomically; gzip-compressed when the
/// name ends in `.gz` (any case). With `reference`, the input's header is reused (its sform/qform, pixdim
/// and units); otherwise an sform is written from `geometry`.
pub fn write_mask(path: &Path, mask: &U8Volume, reference: Option<&NiftiHeader>, geometry: &Geometry) -> Result<()> {
    output::write_file(path, |w| write_mask_to(w, is_gz(path), mask, reference, geometry))
}

/// Writes a float32 map (a confidence map in [0, 1]) on the input grid, with the geometry of `write_mask`.
pub fn write_f32(
    path: &Path,
    data: &[f32],
    dims: [usize; 3],
    reference: Option<&NiftiHeader>,
    geometry: &Geometry,
) -> Result<()> {
    output::write_file(path, |w| write_f32_to(w, is_gz(path), data, dims, reference, geometry))
}

/// Whether an output name asks for compression.
pub fn is_gz(path: &Path) -> bool {
    path.to_string_lossy().to_ascii_lowercase().ends_with(".gz")
}

/// Whether `path` names a NIfTI file (.nii or .nii.gz, any case).
pub fn is_nifti_name(path: &Path) -> bool {
    let n = path.to_string_lossy().to_ascii_lowercase();
    n.ends_with(".nii") || n.ends_with(".nii.gz")
}

/// `write_mask` into any writer.
pub fn write_mask_to(
    w: &mut dyn Write,
    gz: bool,
    mask: &U8Volume,
    reference: Option<&NiftiHeader>,
    geometry: &Geometry,
) -> Result<()> {
    write_array(w, gz, &mask.data, mask.dims, reference, geometry, 2)
}

/// `write_f32` into any writer.
pub fn write_f32_to(
    w: &mut dyn Write,
    gz: bool,
    data: &[f32],
    dims: [usize; 3],
    reference: Option<&NiftiHeader>,
    geometry: &Geometry,
) -> Result<()> {
    write_array(w, gz, data, dims, reference, geometry, 16)
}

fn write_array<T: bytemuck::Pod>(
    w: &mut dyn Write,
    gz: bool,
    data: &[T],
    dims: [usize; 3],
    reference: Option<&NiftiHeader>,
    geometry: &Geometry,
    datatype: i16,
) -> Result<()> {
    if data.len() != dims.iter().product::<usize>() {
        return Err(Error::ShapeMismatch(format!("{} values for volume dims {dims:?}", data.len())));
    }
    let mut h = match reference {
        Some(r) => r.clone(),
        None => {
            let mut hd = NiftiHeader::default();
            let m = &geometry.ijk_to_ras;
            hd.srow_x = [m[0][0] as f32, m[0][1] as f32, m[0][2] as f32, m[0][3] as f32];
            hd.srow_y = [m[1][0] as f32, m[1][1] as f32, m[1][2] as f32, m[1][3] as f32];
            hd.srow_z = [m[2][0] as f32, m[2][1] as f32, m[2][2] as f32, m[2][3] as f32];
            hd.sform_code = 2;
            hd.qform_code = 0;
            hd.pixdim = [
                1.0,
                geometry.spacing[0] as f32,
                geometry.spacing[1] as f32,
                geometry.spacing[2] as f32,
                0.0,
                0.0,
                0.0,
                0.0,
            ];
            hd.xyzt_units = 2;
            hd
        }
    };
    h.dim = [3, dims[0] as u16, dims[1] as u16, dims[2] as u16, 1, 1, 1, 1];
    if dims.iter().any(|&d| d > i16::MAX as usize) {
        return Err(Error::InvalidArgument(format!("dims {dims:?} do not fit a NIfTI-1 header (at most 32767)")));
    }
    h.datatype = datatype;
    h.bitpix = (std::mem::size_of::<T>() * 8) as i16;
    h.cal_min = 0.0;
    h.cal_max = 0.0;
    h.intent_code = 0;
    h.scl_slope = 1.0;
    h.scl_inter = 0.0;
    let header = encode_header(&h);
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let io = |e: std::io::Error| Error::io("NIfTI output", files::plain(&e));
    if gz {
        let mut enc = GzEncoder::new(w, Compression::fast());
        enc.write_all(&header).map_err(io)?;
        enc.write_all(bytes).map_err(io)?;
        enc.finish().map_err(io)?;
    } else {
        w.write_all(&header).map_err(io)?;
        w.write_all(bytes).map_err(io)?;
    }
    Ok(())
}

/// A NIfTI-1 single-file header in little-endian order, with an empty extension flag: voxels at 352.
fn encode_header(h: &NiftiHeader) -> [u8; 352] {
    let mut b = [0u8; 352];
    let mut at = 0usize;
    let mut put = |bytes: &[u8]| {
        b[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&348i32.to_le_bytes());
    put(&h.data_type);
    put(&h.db_name);
    put(&h.extents.to_le_bytes());
    put(&h.session_error.to_le_bytes());
    put(&[h.regular, h.dim_info]);
    for d in h.dim {
        put(&d.to_le_bytes());
    }
    for f in [h.intent_p1, h.intent_p2, h.intent_p3] {
        put(&f.to_le_bytes());
    }
    for v in [h.intent_code, h.datatype, h.bitpix, h.slice_start] {
        put(&v.to_le_bytes());
    }
    for f in h.pixdim {
        put(&f.to_le_bytes());
    }
    for f in [352.0f32, h.scl_slope, h.scl_inter] {
        put(&f.to_le_bytes());
    }
    put(&h.slice_end.to_le_bytes());
    put(&[h.slice_code, h.xyzt_units]);
    for f in [h.cal_max, h.cal_min, h.slice_duration, h.toffset] {
        put(&f.to_le_bytes());
    }
    put(&h.glmax.to_le_bytes());
    put(&h.glmin.to_le_bytes());
    let mut descrip = [0u8; 80];
    let n = h.descrip.len().min(79);
    descrip[..n].copy_from_slice(&h.descrip[..n]);
    put(&descrip);
    put(&h.aux_file);
    put(&h.qform_code.to_le_bytes());
    put(&h.sform_code.to_le_bytes());
    for f in [h.quatern_b, h.quatern_c, h.quatern_d, h.quatern_x, h.quatern_y, h.quatern_z] {
        put(&f.to_le_bytes());
    }
    for f in h.srow_x.iter().chain(&h.srow_y).chain(&h.srow_z) {
        put(&f.to_le_bytes());
    }
    put(&h.intent_name);
    put(b"n+1\0");
    debug_assert_eq!(at, 348);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_round_trip_compressed_and_uncompressed() {
        let dir = std::env::temp_dir().join(format!("vxp-nifti-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = U8Volume::zeros([3, 2, 2]);
        m.data[5] = 7;
        for name in ["m.nii.gz", "m.nii"] {
            let p = dir.join(name);
            write_mask(&p, &m, None, &Geometry::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (v, _) = read(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!((v.dims, v.to_f64().unwrap()[5]), ([3, 2, 2], 7.0), "{name}");
        }
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "temporary files left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
