//! The C ABI. Only marshalling lives here; the full handle-based API (engines, sessions, prompts, results)
//! is built on this module.

use std::ffi::c_char;

/// Returns the library version and what it was built against, e.g.
/// "voxprompt 0.1.0 (ort 2.0.0-rc.15, ONNX Runtime API 31)".
///
/// The string is static and NUL-terminated: do not free it. Safe to call from any thread, at any time.
#[no_mangle]
pub extern "C" fn vxp_version() -> *const c_char {
    concat!("voxprompt ", env!("CARGO_PKG_VERSION"), " (ort 2.0.0-rc.15, ONNX Runtime API 31)\0").as_ptr().cast()
}
