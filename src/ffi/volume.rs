//! The volume descriptor hosts pass by value: numpy, ITK and VTK layouts work without a copy by the host.

use std::ffi::c_void;

use super::error::set_last_error;
use super::result::vxp_result;
use crate::volume::intensity::IntensityMapping;
use crate::volume::{DType, Geometry, VolumeView};

/// Voxel data types.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum vxp_dtype {
    U8 = 1,
    I8 = 2,
    U16 = 3,
    I16 = 4,
    U32 = 5,
    I32 = 6,
    F32 = 7,
    F64 = 8,
}

/// How intensities are mapped to the model's 0..255 range.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum vxp_intensity {
    /// CT when the volume holds values below −500 (Hounsfield air), else MR.
    Auto = 0,
    /// CT soft-tissue window, level 40, width 400 (the LiteMedSAM reference).
    Ct = 1,
    /// 0.5 and 99.5 percentiles of the voxels > 0; zeros stay zero (the LiteMedSAM reference for MR).
    Mr = 2,
    /// The window given by `window_level` and `window_width`.
    Window = 3,
}

/// A host volume. Set `struct_size = sizeof(vxp_volume)` so later versions can add fields.
///
/// Voxel (i, j, k) is at byte `data + i*strides[0] + j*strides[1] + k*strides[2]`; strides may be
/// negative, and every voxel must lie inside `[data, data + data_len)` when the strides are applied from
/// the lowest address the layout reaches. i is the in-slice column axis, j the row axis, k the slice axis.
/// The library reads the buffer only during the call that takes the descriptor and keeps no pointer to it.
#[repr(C)]
pub struct vxp_volume {
    /// `sizeof(vxp_volume)` as the host compiled it.
    pub struct_size: u32,
    /// A `vxp_dtype` value.
    pub dtype: u32,
    /// Address of voxel (0, 0, 0).
    pub data: *const c_void,
    /// Bytes readable from `data - data_offset`.
    pub data_len: usize,
    /// Bytes from the start of the readable buffer to voxel (0, 0, 0) (non-zero with negative strides).
    pub data_offset: usize,
    /// Voxels along i, j, k.
    pub dims: [usize; 3],
    /// Byte strides along i, j, k.
    pub strides: [i64; 3],
    /// Voxel spacing in mm along i, j, k.
    pub spacing: [f64; 3],
    /// Row-major 4×4 matrix from voxel indices (i, j, k, 1) to RAS millimetres.
    pub ijk_to_ras: [f64; 16],
    /// A `vxp_intensity` value.
    pub intensity: u32,
    pub window_level: f64,
    pub window_width: f64,
}

pub(crate) fn dtype(code: u32) -> Option<DType> {
    Some(match code {
        1 => DType::U8,
        2 => DType::I8,
        3 => DType::U16,
        4 => DType::I16,
        5 => DType::U32,
        6 => DType::I32,
        7 => DType::F32,
        8 => DType::F64,
        _ => return None,
    })
}

/// Validates a descriptor and borrows its buffer as a view.
///
/// # Safety
/// `v.data - v.data_offset` must be valid for reading `v.data_len` bytes for the returned lifetime.
pub(crate) unsafe fn view<'a>(v: &vxp_volume) -> Result<(VolumeView<'a>, IntensityMapping, bool), vxp_result> {
    if (v.struct_size as usize) < std::mem::size_of::<vxp_volume>() {
        set_last_error(format!(
            "struct_size {} is smaller than this library's vxp_volume ({} bytes): set it to sizeof(vxp_volume)",
            v.struct_size,
            std::mem::size_of::<vxp_volume>()
        ));
        return Err(vxp_result::InvalidArgument);
    }
    let Some(dt) = dtype(v.dtype) else {
        set_last_error(format!("dtype {} is not a vxp_dtype", v.dtype));
        return Err(vxp_result::UnsupportedDtype);
    };
    if v.data.is_null() {
        return Err(super::error::null_arg("volume->data"));
    }
    if v.data_offset > v.data_len {
        set_last_error(format!("data_offset {} exceeds data_len {}", v.data_offset, v.data_len));
        return Err(vxp_result::InvalidVolume);
    }
    let mut strides = [0isize; 3];
    for a in 0..3 {
        strides[a] = isize::try_from(v.strides[a]).map_err(|_| {
            set_last_error(format!("stride {} does not fit this platform", v.strides[a]));
            vxp_result::InvalidVolume
        })?;
    }
    let m = &v.ijk_to_ras;
    let geometry = Geometry {
        spacing: v.spacing,
        ijk_to_ras: [
            [m[0], m[1], m[2], m[3]],
            [m[4], m[5], m[6], m[7]],
            [m[8], m[9], m[10], m[11]],
            [m[12], m[13], m[14], m[15]],
        ],
    };
    // SAFETY: the caller guarantees the readable range.
    let bytes = unsafe { std::slice::from_raw_parts(v.data.cast::<u8>().sub(v.data_offset), v.data_len) };
    let view = VolumeView::new(bytes, v.data_offset, dt, v.dims, strides, geometry).map_err(super::error::fail)?;
    let (mapping, auto) = match v.intensity {
        0 => (IntensityMapping::CT, true),
        1 => (IntensityMapping::CT, false),
        2 => (IntensityMapping::MR, false),
        3 => (IntensityMapping::Window { level: v.window_level, width: v.window_width }, false),
        other => {
            set_last_error(format!("intensity {other} is not a vxp_intensity"));
            return Err(vxp_result::InvalidArgument);
        }
    };
    Ok((view, mapping, auto))
}
