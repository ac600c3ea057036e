//! NRRD (.nrrd with attached data, .nhdr with a detached `data file`): raw or gzip encoding, 3D, with
//! `space directions` / `space origin` geometry converted to RAS. No maintained Rust crate reads NRRD.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::volume::{DType, Geometry, Volume};

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

/// Reads a 3D NRRD volume.
pub fn read(path: &Path) -> Result<Volume> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: String| Error::io(path, m);
    if !bytes.starts_with(b"NRRD000") {
        return Err(bad("not a NRRD file (no NRRD000x magic)".into()));
    }
    // The header ends at the first empty line.
    let mut pos = 0;
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut header_done = false;
    while pos < bytes.len() {
        let end = bytes[pos..].iter().position(|&b| b == b'\n').map(|e| pos + e).unwrap_or(bytes.len());
        let line = String::from_utf8_lossy(&bytes[pos..end]).trim_end_matches('\r').to_string();
        pos = (end + 1).min(bytes.len());
        if line.is_empty() {
            header_done = true;
            break;
        }
        if line.starts_with('#') || line.starts_with("NRRD") {
            continue;
        }
        if let Some((k, v)) = line.split_once(": ") {
            fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    let dtype_s = get("type").ok_or_else(|| bad("no 'type' field".into()))?;
    let dtype = dtype_of(dtype_s).ok_or_else(|| bad(format!("NRRD type {dtype_s:?} is not supported")))?;
    let dimension: usize =
        get("dimension").and_then(|d| d.parse().ok()).ok_or_else(|| bad("no valid 'dimension' field".into()))?;
    let sizes: Vec<usize> = get("sizes")
        .ok_or_else(|| bad("no 'sizes' field".into()))?
        .split_whitespace()
        .map(|s| s.parse().map_err(|_| bad(format!("bad size {s:?}"))))
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
    let encoding = get("encoding").unwrap_or("raw").to_ascii_lowercase();
    let endian_big = get("endian").is_some_and(|e| e.eq_ignore_ascii_case("big"));
    let count: usize = dims.iter().product();
    let want = count.checked_mul(dtype.size()).ok_or_else(|| bad("dims overflow".into()))?;

    let payload: Vec<u8> = match get("data file").or_else(|| get("datafile")) {
        Some(f) => {
            let p: PathBuf = path.parent().unwrap_or(Path::new(".")).join(f);
            std::fs::read(&p).map_err(|e| Error::io(&p, e))?
        }
        None => {
            if !header_done {
                return Err(bad("header has no terminating blank line".into()));
            }
            bytes[pos..].to_vec()
        }
    };
    let mut data = match encoding.as_str() {
        "raw" => {
            if payload.len() < want {
                return Err(bad(format!("truncated: {} data bytes, {want} needed", payload.len())));
            }
            payload[payload.len() - want..].to_vec()
        }
        "gzip" | "gz" => {
            let mut out = Vec::with_capacity(want);
            flate2::read::MultiGzDecoder::new(payload.as_slice())
                .take(want as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| bad(format!("gzip data is corrupt or truncated: {e}")))?;
            if out.len() != want {
                return Err(bad(format!("truncated: gzip data holds {} bytes, {want} needed", out.len())));
            }
            out
        }
        other => return Err(bad(format!("NRRD encoding {other:?} is not supported (raw or gzip)"))),
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
