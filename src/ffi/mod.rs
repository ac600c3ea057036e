//! The C ABI. Only marshalling lives here; the full handle-based API is built on top of this module.

use std::ffi::c_char;

/// Version of the library and what it was built with, as a static NUL-terminated string.
#[no_mangle]
pub extern "C" fn vxp_version() -> *const c_char {
    concat!("voxprompt ", env!("CARGO_PKG_VERSION"), " (ort 2.0.0-rc.15, ONNX Runtime API 31)\0").as_ptr().cast()
}
