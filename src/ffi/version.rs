//! Version queries.

use std::ffi::c_char;

use super::result::vxp_result;

/// ABI major version: bumped on any incompatible change; the SONAME carries it.
pub const VXP_ABI_VERSION_MAJOR: u32 = 0;
/// ABI minor version: bumped when functions or fields are added compatibly (4: `vxp_result_name`,
/// `vxp_options_set_cpu_fallback`; 6: `vxp_engine_lookup_concept`, `vxp_engine_complete_concepts`; 7:
/// `vxp_options_set_max_voxels`, `VXP_RESULT_TOO_LARGE`; 8: `vxp_options_set_spill_budget`; 9:
/// `vxp_session_report`, `vxp_options_set_brain_atlas`; 10: the "openvino" provider,
/// `vxp_options_set_precision`, `vxp_options_set_openvino_library`).
pub const VXP_ABI_VERSION_MINOR: u32 = 10;

/// Returns the library version and what it was built against, e.g.
/// "voxprompt 0.1.0 (ort 2.0.0-rc.15, ONNX Runtime API 31)".
///
/// The string is static and NUL-terminated: do not free it. Safe to call from any thread, at any time.
#[no_mangle]
pub extern "C" fn vxp_version() -> *const c_char {
    concat!("voxprompt ", env!("CARGO_PKG_VERSION"), " (ort 2.0.0-rc.15, ONNX Runtime API 31)\0").as_ptr().cast()
}

/// Writes the ABI version of the loaded library to `*major` and `*minor`, so a host can refuse a library
/// whose major differs from `VXP_ABI_VERSION_MAJOR` in the header it was compiled with.
///
/// Returns `VXP_RESULT_OK`, or `VXP_RESULT_NULL_ARGUMENT` (nothing written). Safe to call from any thread.
///
/// # Safety
/// `major` and `minor` must be NULL or valid for one `uint32_t` each.
#[no_mangle]
pub unsafe extern "C" fn vxp_abi_version(major: *mut u32, minor: *mut u32) -> vxp_result {
    super::error::boundary(|| {
        if major.is_null() || minor.is_null() {
            return super::error::null_arg(if major.is_null() { "major" } else { "minor" });
        }
        // SAFETY: both checked non-null; the caller guarantees writability.
        unsafe {
            *major = VXP_ABI_VERSION_MAJOR;
            *minor = VXP_ABI_VERSION_MINOR;
        }
        vxp_result::Ok
    })
}

/// Test-only (built with the `test-panic` cargo feature): panics inside the library on purpose and must
/// return `VXP_RESULT_PANIC`, with the panic message in `vxp_last_error`, leaving the host running.
#[cfg(feature = "test-panic")]
#[no_mangle]
pub extern "C" fn vxp_test_panic() -> vxp_result {
    super::error::boundary(|| panic!("vxp_test_panic: a deliberate panic"))
}
