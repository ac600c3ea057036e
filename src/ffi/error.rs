//! The thread-local last-error message and the one panic boundary every export goes through.

use std::cell::RefCell;
use std::ffi::c_char;

use super::result::vxp_result;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

pub(crate) fn set_last_error(msg: impl Into<String>) {
    LAST_ERROR.with(|e| *e.borrow_mut() = msg.into());
}

/// Records a core error and returns its code.
pub(crate) fn fail(e: crate::Error) -> vxp_result {
    set_last_error(e.to_string());
    e.code().into()
}

pub(crate) fn null_arg(name: &str) -> vxp_result {
    set_last_error(format!("{name} is NULL"));
    vxp_result::NullArgument
}

/// Runs `f` inside the panic boundary: a panic becomes `VXP_RESULT_PANIC` with its message recorded, so no
/// unwinding ever reaches the host.
pub(crate) fn boundary(f: impl FnOnce() -> vxp_result) -> vxp_result {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => {
            if r == vxp_result::Ok {
                set_last_error("");
            }
            r
        }
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(format!("internal error (panic): {msg}"));
            vxp_result::Panic
        }
    }
}

/// Copies the calling thread's last error message into `buf` (NUL-terminated, truncated to `len - 1`
/// bytes) and writes its full length (without the NUL) to `*needed` when `needed` is not NULL.
///
/// `buf` may be NULL when `len` is 0, to query the size. The message describes the most recent failed call
/// on this thread; a successful call clears it. Safe to call from any thread.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` (buf NULL with len > 0), or
/// `VXP_RESULT_BUFFER_TOO_SMALL` (the message was truncated; `*needed` tells the size).
///
/// # Safety
/// `buf` must be valid for `len` bytes; `needed` must be NULL or valid for one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn vxp_last_error(buf: *mut c_char, len: usize, needed: *mut usize) -> vxp_result {
    std::panic::catch_unwind(|| {
        if buf.is_null() && len > 0 {
            return vxp_result::NullArgument;
        }
        LAST_ERROR.with(|e| {
            let e = e.borrow();
            let bytes = e.as_bytes();
            if !needed.is_null() {
                // SAFETY: checked non-null; the caller guarantees it is writable.
                unsafe { *needed = bytes.len() };
            }
            if len == 0 {
                return if bytes.is_empty() { vxp_result::Ok } else { vxp_result::BufferTooSmall };
            }
            let n = bytes.len().min(len - 1);
            // SAFETY: buf is valid for len bytes and n + 1 <= len.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
            if n < bytes.len() {
                vxp_result::BufferTooSmall
            } else {
                vxp_result::Ok
            }
        })
    })
    .unwrap_or(vxp_result::Panic)
}

/// A static, NUL-terminated description of a result code (never NULL; unknown values get a generic text).
/// Safe to call from any thread.
#[no_mangle]
pub extern "C" fn vxp_result_str(result: u32) -> *const c_char {
    let r = match result {
        0 => vxp_result::Ok,
        100 => vxp_result::NullArgument,
        101 => vxp_result::InvalidArgument,
        102 => vxp_result::ShapeMismatch,
        103 => vxp_result::UnsupportedDtype,
        104 => vxp_result::BufferTooSmall,
        105 => vxp_result::InvalidVolume,
        106 => vxp_result::InvalidPrompt,
        107 => vxp_result::UnknownConcept,
        108 => vxp_result::Unsupported,
        109 => vxp_result::NothingToUndo,
        200 => vxp_result::ModelNotFound,
        201 => vxp_result::ModelIntegrity,
        202 => vxp_result::ModelContract,
        300 => vxp_result::RuntimeLoad,
        301 => vxp_result::RuntimeVersion,
        302 => vxp_result::RuntimeMismatch,
        303 => vxp_result::ProviderUnavailable,
        304 => vxp_result::Inference,
        400 => vxp_result::Cancelled,
        401 => vxp_result::OutOfMemory,
        402 => vxp_result::Io,
        403 => vxp_result::BudgetTooSmall,
        900 => vxp_result::Panic,
        _ => return c"unknown result code".as_ptr(),
    };
    r.describe().as_ptr()
}
