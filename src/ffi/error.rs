//! The thread-local last-error message and the one panic boundary every export goes through.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::sync::OnceLock;

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
    e.code()
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
    match vxp_result::try_from(result) {
        Ok(r) => r.describe().as_ptr(),
        Err(_) => c"unknown result code".as_ptr(),
    }
}

/// The C name of a result code, e.g. "VXP_RESULT_INVALID_PROMPT" for 106: a static, NUL-terminated string,
/// or NULL for a value that is no `vxp_result`. For hosts that map codes to their own symbols (exception
/// classes, log keys) without copying this header's table. Safe to call from any thread.
#[no_mangle]
pub extern "C" fn vxp_result_name(result: u32) -> *const c_char {
    static NAMES: OnceLock<Vec<(vxp_result, CString)>> = OnceLock::new();
    std::panic::catch_unwind(|| {
        let names = NAMES
            .get_or_init(|| vxp_result::ALL.iter().map(|&r| (r, c_name("VXP_RESULT_", r.variant_name()))).collect());
        match vxp_result::try_from(result) {
            Ok(r) => names.iter().find(|(n, _)| *n == r).map_or(std::ptr::null(), |(_, s)| s.as_ptr()),
            Err(_) => std::ptr::null(),
        }
    })
    .unwrap_or(std::ptr::null())
}

/// `prefix` + the variant name in SCREAMING_SNAKE_CASE, as cbindgen's `rename_variants` writes it.
pub(crate) fn c_name(prefix: &str, variant: &str) -> CString {
    let mut s = String::from(prefix);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_uppercase());
    }
    CString::new(s).expect("identifiers hold no NUL")
}
