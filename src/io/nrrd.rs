//! NRRD (.nrrd with attached data, .nhdr with a detached `data file`): raw or gzip encoding, 3D, with
//! `space directions` / `space origin` geometry converted to RAS. No maintained Rust crate reads NRRD.
//!
//! Written as 3D Slicer writes a volume: attached data, `space: left-posterior-superior`, the IJK→LPS
//! columns as `space directions` and the first voxel's centre as `space origin` (RAS with x and y negated,
//! the reader's conversion undone), `kinds: domain domain domain`, and any `key:=value` pairs after the
//! fields (a Slicer segmentation's metadata, `io::segnrrd`).

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use super::files::{self, Limits};
use crate::error::{Error, Result};
use crate::volume::{DType, Geometry, U8Volume, Volume};

fn dtype_of(t: &str) -> Option<DType> {
    Some(match t {
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => DType::U8,
        "signed char" | "int8" | "int8_t" => DType::I8,
        "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => DType::U16,
        "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => DType::I16,
        "uint" | "unsigned int" | "uint32" | "uint32_t" => DType::U32,
        "int" | "signed int" | "int32" | "int32_t" => DType::I32,
        "float" => DType::F32,
        "double" => DType::F64,
        _ => return None,
    })
}

fn parse_vector(s: &str) -> Option<[f64; 3]> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    let v: Vec<f64> = inner.split(',').map(|p| p.trim().parse::<f64>()).collect::<std::result::Result<_, _>>().ok()?;
    (v.len() == 3).then(|| [v[0], v[1], v[2]])
}

/// A NRRD header ends within this many bytes, or the file is not one.
const MAX_HEADER_BYTES: u64 = 1 << 20;
/// What gzip data may hold after the voxels; inflated (not kept) so its checksum is verified.
const MAX_TRAILING_BYTES: u64 = 64 << 20;

/// Reads a 3D NRRD volume under the default `Limits`.
pub fn read(path: &Path) -> Result<Volume> {
    read_with(path, &Limits::default())
}

/// Reads a 3D NRRD volume: the declared size is checked against `limits` before anything is reserved, a
/// detached `data file` must be a regular file in the header's folder (or below it), and every read is
/// bounded by what the header declares.
pub fn read_with(path: &Path, limits: &Limits) -> Result<Volume> {
    let (file, file_len) = files::open_regular(path)?;
    read_from(BufReader::new(file), file_len, path, limits)
}

/// `read_with` over a source already open: `file_len` is its length, `path` names it in messages and
/// locates a detached `data file`, which is still opened under the same checks. Hosts with a file in memory
/// and the fuzzing harness (`fuzz/`) come in here.
pub fn read_from(mut reader: impl BufRead + Seek, file_len: u64, path: &Path, limits: &Limits) -> Result<Volume> {
    let bad = |m: String| Error::io(path, m);
    // The header ends at the first empty line.
    let mut consumed = 0u64;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut header_done = false;
    let mut first = true;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_HEADER_BYTES - consumed)
            .read_until(b'\n', &mut line)
            .map_err(|e| bad(files::plain(&e)))?;
        if n == 0 {
            break;
        }
        consumed += n as u64;
        if first {
            if !line.starts_with(b"NRRD000") {
                return Err(bad("not a NRRD file (no NRRD000x magic)".into()));
            }
            first = false;
            continue;
        }
        if !line.ends_with(b"\n") && consumed >= MAX_HEADER_BYTES {
            return Err(bad(format!("no end of the header within its first {MAX_HEADER_BYTES} bytes")));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            header_done = true;
            break;
        }
        if text.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = text.split_once(": ") {
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    if first {
        return Err(bad("not a NRRD file (empty)".into()));
    }
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    let dtype_s = get("type").ok_or_else(|| bad("no 'type' field".into()))?;
    let dtype = dtype_of(dtype_s).ok_or_else(|| bad(format!("NRRD type {dtype_s:?} is not supported")))?;
    let dimension: usize =
        get("dimension").and_then(|d| d.parse().ok()).ok_or_else(|| bad("no valid 'dimension' field".into()))?;
    let sizes: Vec<usize> = get("sizes")
        .ok_or_else(|| bad("no 'sizes' field".into()))?
        .split_whitespace()
        .map(|s| {
            s.parse()
                .ok()
                .filter(|&n: &usize| n > 0)
                .ok_or_else(|| bad(format!("size {s:?} is not a positive integer")))
        })
        .collect::<Result<_>>()?;
    if sizes.len() != dimension || !(2..=4).contains(&dimension) {
        return Err(bad(format!("sizes {sizes:?} for dimension {dimension}: only 2D/3D volumes are supported")));
    }
    // A leading non-spatial axis of length 1 (e.g. one segmentation layer) is allowed.
    let dirs_raw: Vec<String> =
        get("space directions").map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
    let (spatial, skip_first) = if dimension == 4 {
        if sizes[0] != 1 {
            return Err(bad(format!("a 4D NRRD with {} components per voxel is not a scalar volume", sizes[0])));
        }
        (sizes[1..].to_vec(), true)
    } else {
        (sizes.clone(), false)
    };
    let mut dims = [1usize; 3];
    dims[..spatial.len()].copy_from_slice(&spatial);
    limits.check(&path.display().to_string(), &dims.map(|d| d as u64), dtype.size() as u64)?;
    let want = dims.iter().product::<usize>() as u64 * dtype.size() as u64;
    let encoding = get("encoding").unwrap_or("raw").to_ascii_lowercase();
    let endian_big = get("endian").is_some_and(|e| e.eq_ignore_ascii_case("big"));
    let byte_skip: i64 = match get("byte skip").or_else(|| get("byteskip")) {
        None => 0,
        Some(v) => v
            .parse()
            .ok()
            .filter(|&b: &i64| b >= -1)
            .ok_or_else(|| bad(format!("byte skip {v:?} is not -1 or more")))?,
    };
    if get("line skip").or_else(|| get("lineskip")).is_some_and(|v| v.trim() != "0") {
        return Err(Error::Unsupported(format!("{}: 'line skip' is not supported", path.display())));
    }

    let mut data = match get("data file").or_else(|| get("datafile")) {
        Some(f) => {
            let p = detached_path(path, f)?;
            let (file, len) = files::open_regular(&p)?;
            read_payload(BufReader::new(file), len, 0, &encoding, byte_skip, want, &p)?
        }
        None => {
            if !header_done {
                return Err(bad("header has no terminating blank line".into()));
            }
            read_payload(reader, file_len, consumed, &encoding, byte_skip, want, path)?
        }
    };
    if endian_big != cfg!(target_endian = "big") && dtype.size() > 1 {
        for v in data.chunks_exact_mut(dtype.size()) {
            v.reverse();
        }
    }

    // Geometry: columns of the IJK→space matrix are the space directions.
    let mut g = Geometry::default();
    let dirs: Vec<Option<[f64; 3]>> = dirs_raw.iter().map(|d| parse_vector(d)).collect();
    let dirs: Vec<[f64; 3]> = dirs.into_iter().skip(usize::from(skip_first && dirs_raw.len() == 4)).flatten().collect();
    if dirs.len() == 3 {
        let space = get("space").unwrap_or("").to_ascii_lowercase();
        let lps = matches!(space.as_str(), "left-posterior-superior" | "lps");
        let flip = if lps { [-1.0, -1.0, 1.0] } else { [1.0, 1.0, 1.0] };
        let origin = get("space origin").and_then(parse_vector).unwrap_or([0.0; 3]);
        for a in 0..3 {
            for r in 0..3 {
                g.ijk_to_ras[r][a] = dirs[a][r] * flip[r];
            }
            g.spacing[a] = (dirs[a][0].powi(2) + dirs[a][1].powi(2) + dirs[a][2].powi(2)).sqrt();
        }
        for r in 0..3 {
            g.ijk_to_ras[r][3] = origin[r] * flip[r];
        }
    } else if let Some(sp) = get("spacings") {
        let v: Vec<f64> = sp.split_whitespace().filter_map(|s| s.parse().ok()).collect();
        for a in 0..v.len().min(3) {
            g.spacing[a] = v[a];
            g.ijk_to_ras[a][a] = v[a];
        }
    }
    Ok(Volume { data, dtype, dims, geometry: g })
}

/// A voxel type a NRRD output holds, with its `type` field.
pub trait NrrdType: bytemuck::Pod {
    const NAME: &'static str;
}

impl NrrdType for u8 {
    const NAME: &'static str = "unsigned char";
}

impl NrrdType for f32 {
    const NAME: &'static str = "float";
}

/// Writes a uint8 label mask on the input grid (i fastest) as a NRRD with attached data, gzip-compressed
/// when `gz` (the CLI always compresses, as Slicer does), with the geometry described in the module docs.
pub fn write_mask_to(w: &mut dyn Write, gz: bool, mask: &U8Volume, geometry: &Geometry) -> Result<()> {
    write_to(w, gz, &mask.data, mask.dims, geometry, &[])
}

/// Writes a float32 map (a confidence map in [0, 1]) on the input grid, as `write_mask_to`.
pub fn write_f32_to(w: &mut dyn Write, gz: bool, data: &[f32], dims: [usize; 3], geometry: &Geometry) -> Result<()> {
    write_to(w, gz, data, dims, geometry, &[])
}

/// Writes `data` (i fastest) with `pairs` as `key:=value` lines after the fields. A key holds no `:=` and
/// neither holds a line break, or the header would read back otherwise; the geometry must be finite.
pub fn write_to<T: NrrdType>(
    w: &mut dyn Write,
    gz: bool,
    data: &[T],
    dims: [usize; 3],
    geometry: &Geometry,
    pairs: &[(String, String)],
) -> Result<()> {
    if data.len() != dims.iter().product::<usize>() {
        return Err(Error::ShapeMismatch(format!("{} values for volume dims {dims:?}", data.len())));
    }
    let m = &geometry.ijk_to_ras;
    if m[..3].iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::InvalidVolume(format!("IJK->RAS matrix {m:?} is not finite: no NRRD geometry")));
    }
    for (k, v) in pairs {
        let breaks = |s: &str| s.contains(['\n', '\r']);
        if k.is_empty() || k.contains(":=") || breaks(k) || breaks(v) {
            return Err(Error::InvalidArgument(format!(
                "NRRD key/value {k:?}:={v:?}: a key is not empty and holds no ':=', neither holds a line break"
            )));
        }
    }
    // RAS -> LPS: x and y change sign; `+ 0.0` writes 0 for -0.
    let lps = |r: usize, v: f64| if r < 2 { -v + 0.0 } else { v + 0.0 };
    let vector = |c: usize| format!("({},{},{})", lps(0, m[0][c]), lps(1, m[1][c]), lps(2, m[2][c]));
    let mut h = String::from("NRRD0004\n");
    h += &format!("type: {}\ndimension: 3\nspace: left-posterior-superior\n", T::NAME);
    h += &format!("sizes: {} {} {}\n", dims[0], dims[1], dims[2]);
    h += &format!("space directions: {} {} {}\n", vector(0), vector(1), vector(2));
    h += "kinds: domain domain domain\n";
    if std::mem::size_of::<T>() > 1 {
        h += if cfg!(target_endian = "big") { "endian: big\n" } else { "endian: little\n" };
    }
    h += if gz { "encoding: gzip\n" } else { "encoding: raw\n" };
    h += &format!("space origin: {}\n", vector(3));
    for (k, v) in pairs {
        h += &format!("{k}:={v}\n");
    }
    h += "\n";
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let io = |e: std::io::Error| Error::io("NRRD output", files::plain(&e));
    w.write_all(h.as_bytes()).map_err(io)?;
    if gz {
        let mut enc = GzEncoder::new(w, Compression::fast());
        enc.write_all(bytes).map_err(io)?;
        enc.finish().map_err(io)?;
    } else {
        w.write_all(bytes).map_err(io)?;
    }
    Ok(())
}

/// A detached data file, confined to the header's folder: relative, with no `..`, and one file (the
/// numbered-file and `LIST` forms are not supported).
fn detached_path(header: &Path, f: &str) -> Result<PathBuf> {
    let rel = Path::new(f);
    if f.split_whitespace().count() > 1 || f.eq_ignore_ascii_case("list") {
        return Err(Error::Unsupported(format!(
            "{}: data file {f:?}: only a single data file is supported",
            header.display()
        )));
    }
    if !files::stays_inside(f) {
        return Err(Error::io(
            header,
            format!("data file {f:?} must lie in the header's folder (no absolute path, no '..')"),
        ));
    }
    Ok(header.parent().unwrap_or(Path::new(".")).join(rel))
}

/// The voxel bytes of a payload that starts at byte `start` of a `len`-byte file.
fn read_payload<R: Read + Seek>(
    mut r: R,
    len: u64,
    start: u64,
    encoding: &str,
    byte_skip: i64,
    want: u64,
    path: &Path,
) -> Result<Vec<u8>> {
    let bad = |m: String| Error::io(path, m);
    match encoding {
        "raw" => {
            // byte skip -1: the voxels are the file's last bytes.
            let from = if byte_skip < 0 { len.saturating_sub(want).max(start) } else { start + byte_skip as u64 };
            if len < from + want {
                return Err(bad(format!("truncated: {} data bytes, {want} needed", len.saturating_sub(from))));
            }
            r.seek(SeekFrom::Start(from)).map_err(|e| bad(files::plain(&e)))?;
            files::read_exactly(&mut r, want, path, "voxel data")
        }
        "gzip" | "gz" => {
            if byte_skip < 0 {
                return Err(bad("byte skip -1 is only defined for raw data".into()));
            }
            r.seek(SeekFrom::Start(start)).map_err(|e| bad(files::plain(&e)))?;
            let mut z = MultiGzDecoder::new(r);
            let corrupt = |e: std::io::Error| bad(format!("gzip data is corrupt or truncated: {}", files::plain(&e)));
            let skipped = std::io::copy(&mut (&mut z).take(byte_skip as u64), &mut std::io::sink()).map_err(corrupt)?;
            if skipped < byte_skip as u64 {
                return Err(bad(format!("truncated: gzip data ends within its byte skip of {byte_skip}")));
            }
            let data = files::read_exactly(&mut z, want, path, "gzip data")?;
            let rest =
                std::io::copy(&mut (&mut z).take(MAX_TRAILING_BYTES + 1), &mut std::io::sink()).map_err(corrupt)?;
            if rest > MAX_TRAILING_BYTES {
                return Err(bad(format!("gzip data holds more than {MAX_TRAILING_BYTES} bytes after the voxels")));
            }
            Ok(data)
        }
        other => Err(bad(format!("NRRD encoding {other:?} is not supported (raw or gzip)"))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// An oblique LPS-stored grid: every matrix entry differs, none is a round number.
    fn oblique() -> Geometry {
        let m: [[f64; 4]; 4] =
            [[-0.6, 0.1, 0.0, 12.5], [0.8, 0.9, -0.3, -7.25], [0.0, 0.2, 2.5, 33.000000001], [0.0, 0.0, 0.0, 1.0]];
        let norm = |c: usize| (m[0][c] * m[0][c] + m[1][c] * m[1][c] + m[2][c] * m[2][c]).sqrt();
        Geometry { spacing: [norm(0), norm(1), norm(2)], ijk_to_ras: m }
    }

    fn read_back(bytes: Vec<u8>) -> Volume {
        let len = bytes.len() as u64;
        read_from(Cursor::new(bytes), len, Path::new("mem.nrrd"), &Limits::default()).unwrap()
    }

    #[test]
    fn masks_and_maps_round_trip_with_their_geometry_raw_and_gzip() {
        let g = oblique();
        let mut mask = U8Volume::zeros([4, 3, 2]);
        for (i, v) in mask.data.iter_mut().enumerate() {
            *v = (i * 7 % 5) as u8;
        }
        let map: Vec<f32> = (0..24).map(|i| i as f32 / 23.0).collect();
        for gz in [false, true] {
            let mut b = Vec::new();
            write_mask_to(&mut b, gz, &mask, &g).unwrap();
            let v = read_back(b);
            assert_eq!((v.dtype, v.dims, &v.data), (DType::U8, [4, 3, 2], &mask.data), "gz {gz}");
            assert_eq!(v.geometry.ijk_to_ras, g.ijk_to_ras, "gz {gz}: the matrix is written exactly");
            for a in 0..3 {
                assert!((v.geometry.spacing[a] - g.spacing[a]).abs() < 1e-12, "gz {gz}: {:?}", v.geometry.spacing);
            }
            let mut b = Vec::new();
            write_f32_to(&mut b, gz, &map, [4, 3, 2], &g).unwrap();
            let v = read_back(b);
            assert_eq!((v.dtype, v.dims), (DType::F32, [4, 3, 2]));
            assert_eq!(bytemuck::cast_slice::<u8, f32>(&v.data), &map[..]);
            assert_eq!(v.geometry.ijk_to_ras, g.ijk_to_ras);
        }
    }

    #[test]
    fn the_header_is_slicers_lps_form() {
        let g = Geometry {
            ijk_to_ras: [[3.0, 0.0, 0.0, -177.5], [0.0, 3.0, 0.0, 11.25], [0.0, 0.0, 3.0, 94.0], [0.0, 0.0, 0.0, 1.0]],
            ..Geometry::default()
        };
        let mut b = Vec::new();
        let pairs = [("Segment0_Name".to_string(), "left kidney".to_string())];
        write_to(&mut b, true, &[0u8; 8], [2, 2, 2], &g, &pairs).unwrap();
        let end = b.windows(2).position(|w| w == b"\n\n").unwrap();
        let header = std::str::from_utf8(&b[..end]).unwrap();
        assert_eq!(
            header,
            "NRRD0004\ntype: unsigned char\ndimension: 3\nspace: left-posterior-superior\nsizes: 2 2 2\n\
             space directions: (-3,0,0) (0,-3,0) (0,0,3)\nkinds: domain domain domain\nencoding: gzip\n\
             space origin: (177.5,-11.25,94)\nSegment0_Name:=left kidney"
        );
        assert_eq!(&b[end + 2..end + 4], [0x1f, 0x8b], "gzip data right after the blank line");
    }

    #[test]
    fn what_would_not_read_back_is_refused() {
        let g = Geometry::default();
        let mut b = Vec::new();
        let bad = [("Segment0_Name".to_string(), "two\nlines".to_string())];
        let e = write_to(&mut b, false, &[0u8; 1], [1, 1, 1], &g, &bad).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::InvalidArgument, "{e}");
        assert!(write_mask_to(&mut b, false, &U8Volume::zeros([2, 1, 1]), &g).is_ok());
        let e = write_f32_to(&mut Vec::new(), false, &[0.0; 3], [2, 1, 1], &g).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::ShapeMismatch, "{e}");
        let mut nan = g;
        nan.ijk_to_ras[1][3] = f64::NAN;
        assert!(write_mask_to(&mut Vec::new(), false, &U8Volume::zeros([1, 1, 1]), &nan).is_err());
    }
}
