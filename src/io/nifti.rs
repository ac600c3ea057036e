//! NIfTI-1 through the `nifti` crate; geometry from the sform, else the qform, else pixdim.

use std::path::Path;

use ndarray::ArrayView3;
use nifti::writer::WriterOptions;
use nifti::{NiftiHeader, NiftiObject, NiftiType, ReaderOptions};

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

/// Reads a 3D NIfTI file (a 4th axis of length 1 is accepted).
pub fn read(path: &Path) -> Result<(Volume, NiftiHeader)> {
    let obj = ReaderOptions::new().read_file(path).map_err(|e| Error::io(path, format!("cannot read NIfTI: {e}")))?;
    let header = obj.header().clone();
    let nd = header.dim[0] as usize;
    if !(1..=7).contains(&nd) {
        return Err(Error::io(path, format!("dim[0] = {nd} is not a valid NIfTI dimensionality")));
    }
    let mut dims = [1usize; 3];
    for a in 0..nd.min(3) {
        dims[a] = header.dim[a + 1] as usize;
    }
    if (4..=nd).any(|a| header.dim[a] > 1) {
        return Err(Error::io(
            path,
            format!("a {nd}-D image with dims {:?}: only 3D volumes are supported", &header.dim[1..=nd]),
        ));
    }
    let dtype = dtype_of(header.datatype)
        .ok_or_else(|| Error::io(path, format!("NIfTI datatype code {} is not supported", header.datatype)))?;
    let raw = obj.into_volume().into_raw_data();
    let count: usize = dims.iter().product();
    if raw.len() < count * dtype.size() {
        return Err(Error::io(path, format!("truncated: {} data bytes for {count} voxels of {dtype:?}", raw.len())));
    }
    let mut data = raw;
    data.truncate(count * dtype.size());
    if header.endianness != nifti::Endianness::native() && dtype.size() > 1 {
        for v in data.chunks_exact_mut(dtype.size()) {
            v.reverse();
        }
    }
    if header.scl_slope != 0.0 && (header.scl_slope != 1.0 || header.scl_inter != 0.0) {
        log::warn!(
            "{}: scl_slope/scl_inter ({}, {}) ignored; stored values are used",
            path.display(),
            header.scl_slope,
            header.scl_inter
        );
    }
    let geometry = geometry(&header);
    Ok((Volume { data, dtype, dims, geometry }, header))
}

/// Writes a uint8 label mask on the input grid (i fastest). With `reference`, the input's header is reused
/// (its sform/qform, pixdim and units); otherwise an sform is written from `geometry`.
pub fn write_mask(path: &Path, mask: &U8Volume, reference: Option<&NiftiHeader>, geometry: &Geometry) -> Result<()> {
    write_array(path, &mask.data, mask.dims, reference, geometry, NiftiType::Uint8)
}

/// Writes a float32 map (a confidence map in [0, 1]) on the input grid, with the geometry of `write_mask`.
pub fn write_f32(
    path: &Path,
    data: &[f32],
    dims: [usize; 3],
    reference: Option<&NiftiHeader>,
    geometry: &Geometry,
) -> Result<()> {
    write_array(path, data, dims, reference, geometry, NiftiType::Float32)
}

fn write_array<T>(
    path: &Path,
    data: &[T],
    dims: [usize; 3],
    reference: Option<&NiftiHeader>,
    geometry: &Geometry,
    ty: NiftiType,
) -> Result<()>
where
    T: bytemuck::Pod,
{
    let [w, h, d] = dims;
    let mut header = match reference {
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
    header.cal_min = 0.0;
    header.cal_max = 0.0;
    header.intent_code = 0;
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    let array = ArrayView3::from_shape((d, h, w), data)
        .map_err(|e| Error::ShapeMismatch(format!("volume dims {dims:?}: {e}")))?
        .reversed_axes();
    let compress = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    let ext = if compress { "nii.gz" } else { "nii" };
    super::write_atomically(path, ext, |tmp| {
        WriterOptions::new(tmp)
            .reference_header(&header)
            .compress(compress)
            .write_nifti_with_type(&array, ty)
            .map_err(|e| Error::io(path, format!("cannot write NIfTI: {e}")))
    })
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
