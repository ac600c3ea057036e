//! Pointer checks shared by every export (rustls-ffi's try_ref!/try_mut! in function form).

use std::ffi::{c_char, CStr};

use super::error::{null_arg, set_last_error};
use super::result::vxp_result;

/// Borrows `*p`, or reports which argument was NULL.
///
/// # Safety
/// `p` must be NULL or point to a live `T` for the returned lifetime.
pub(crate) unsafe fn try_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, vxp_result> {
    // SAFETY: forwarded to the caller.
    unsafe { p.as_ref() }.ok_or_else(|| null_arg(name))
}

/// Reads a NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` must be NULL or a valid NUL-terminated string.
pub(crate) unsafe fn try_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, vxp_result> {
    if p.is_null() {
        return Err(null_arg(name));
    }
    // SAFETY: non-null, NUL-terminated per the contract.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| {
        set_last_error(format!("{name} is not valid UTF-8"));
        vxp_result::InvalidArgument
    })
}

/// Copies `s` into a caller buffer the way `vxp_last_error` does; `needed` gets the length without NUL.
///
/// # Safety
/// `buf` valid for `len` bytes (or NULL with len 0); `needed` NULL or valid.
pub(crate) unsafe fn copy_out(s: &str, buf: *mut c_char, len: usize, needed: *mut usize) -> vxp_result {
    if buf.is_null() && len > 0 {
        return null_arg("buf");
    }
    if !needed.is_null() {
        // SAFETY: non-null per check; caller guarantees writability.
        unsafe { *needed = s.len() };
    }
    if len == 0 {
        set_last_error(format!("a buffer of {} bytes is needed", s.len() + 1));
        return vxp_result::BufferTooSmall;
    }
    if s.len() + 1 > len {
        set_last_error(format!("a buffer of {} bytes is needed, {len} given", s.len() + 1));
        return vxp_result::BufferTooSmall;
    }
    // SAFETY: buf holds at least s.len() + 1 bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(s.as_ptr(), buf.cast::<u8>(), s.len());
        *buf.add(s.len()) = 0;
    }
    vxp_result::Ok
}

/// Reads the `N` values a caller's array pointer holds, or reports which argument was NULL.
///
/// # Safety
/// `p` must be NULL or valid for reading `N` values of `T`.
pub(crate) unsafe fn try_array<T: Copy, const N: usize>(p: *const T, name: &str) -> Result<[T; N], vxp_result> {
    if p.is_null() {
        return Err(null_arg(name));
    }
    // SAFETY: non-null; the caller guarantees N readable values (no alignment is assumed).
    Ok(std::array::from_fn(|i| unsafe { p.add(i).read_unaligned() }))
}
