//! The volume descriptor hosts pass by value: numpy, ITK and VTK layouts work without a copy by the host.

use std::ffi::c_void;

use super::error::set_last_error;
use super::result::vxp_result;
use crate::error::u32_enum;
use crate::volume::intensity::IntensityMapping;
use crate::volume::{DType, Geometry, VolumeView};

u32_enum! {
    /// Voxel data types.
    #[repr(u32)]
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
}

impl From<vxp_dtype> for DType {
    fn from(d: vxp_dtype) -> Self {
        match d {
            vxp_dtype::U8 => DType::U8,
            vxp_dtype::I8 => DType::I8,
            vxp_dtype::U16 => DType::U16,
            vxp_dtype::I16 => DType::I16,
            vxp_dtype::U32 => DType::U32,
            vxp_dtype::I32 => DType::I32,
            vxp_dtype::F32 => DType::F32,
            vxp_dtype::F64 => DType::F64,
        }
    }
}

u32_enum! {
    /// How intensities are mapped to the model's 0..255 range.
    #[repr(u32)]
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
}

impl vxp_intensity {
    fn mapping(self, window_level: f64, window_width: f64) -> IntensityMapping {
        match self {
            vxp_intensity::Auto => IntensityMapping::Auto,
            vxp_intensity::Ct => IntensityMapping::CT,
            vxp_intensity::Mr => IntensityMapping::MR,
            vxp_intensity::Window => IntensityMapping::Window { level: window_level, width: window_width },
        }
    }
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

/// Validates a descriptor and borrows its buffer as a view.
///
/// # Safety
/// `v.data - v.data_offset` must be valid for reading `v.data_len` bytes for the returned lifetime.
pub(crate) unsafe fn view<'a>(v: &vxp_volume) -> Result<(VolumeView<'a>, IntensityMapping), vxp_result> {
    if (v.struct_size as usize) < std::mem::size_of::<vxp_volume>() {
        set_last_error(format!(
            "struct_size {} is smaller than this library's vxp_volume ({} bytes): set it to sizeof(vxp_volume)",
            v.struct_size,
            std::mem::size_of::<vxp_volume>()
        ));
        return Err(vxp_result::InvalidArgument);
    }
    let Ok(dt) = vxp_dtype::try_from(v.dtype) else {
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
    let view =
        VolumeView::new(bytes, v.data_offset, dt.into(), v.dims, strides, geometry).map_err(super::error::fail)?;
    let Ok(intensity) = vxp_intensity::try_from(v.intensity) else {
        set_last_error(format!("intensity {} is not a vxp_intensity", v.intensity));
        return Err(vxp_result::InvalidArgument);
    };
    Ok((view, intensity.mapping(v.window_level, v.window_width)))
}
