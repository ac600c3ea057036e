//! Pointer checks shared by every export (rustls-ffi's try_ref!/try_mut! in function form).

use std::collections::HashSet;
use std::ffi::{c_char, CStr};

use parking_lot::Mutex;

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

/// The kinds of opaque handle, so an engine passed as a session is refused too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Options,
    Engine,
    Session,
}

/// A type handed to hosts as an opaque handle.
pub(crate) trait Handle {
    const KIND: Kind;
}

/// Every live handle, by address and kind. A handle is entered when made and removed when freed, so a
/// second free, a freed handle used again, or a pointer that never was a handle is refused with
/// `VXP_RESULT_INVALID_HANDLE` before it is dereferenced, instead of aborting or hanging the host. What
/// cannot be told: an address the allocator has handed to a new handle of the same kind is live again, and
/// a handle freed on one thread while another thread is inside a call on it is still the host's bug.
static LIVE: Mutex<Option<HashSet<(usize, Kind)>>> = Mutex::new(None);

/// Hands `b` to the host as a raw pointer, registered as live.
pub(crate) fn register<T: Handle>(b: Box<T>) -> *mut T {
    let p = Box::into_raw(b);
    LIVE.lock().get_or_insert_with(HashSet::new).insert((p as usize, T::KIND));
    p
}

fn is_live<T: Handle>(p: *const T) -> bool {
    LIVE.lock().as_ref().is_some_and(|s| s.contains(&(p as usize, T::KIND)))
}

fn not_live(name: &str) -> vxp_result {
    set_last_error(format!("{name} is not a live handle: freed already, or never made by this library"));
    vxp_result::InvalidHandle
}

/// Borrows a live handle, or reports NULL or a handle that is not live.
///
/// # Safety
/// A live `p` must stay live for the returned lifetime (no free on another thread meanwhile).
pub(crate) unsafe fn try_handle<'a, T: Handle>(p: *const T, name: &str) -> Result<&'a T, vxp_result> {
    if p.is_null() {
        return Err(null_arg(name));
    }
    if !is_live(p) {
        return Err(not_live(name));
    }
    // SAFETY: registered, so it points to a live T made by `register`.
    Ok(unsafe { &*p })
}

/// `try_handle` for a handle the call changes.
///
/// # Safety
/// As `try_handle`, and no other reference to `*p` may exist for the returned lifetime.
pub(crate) unsafe fn try_handle_mut<'a, T: Handle>(p: *mut T, name: &str) -> Result<&'a mut T, vxp_result> {
    // SAFETY: forwarded; the pointer is live and exclusive per the contract.
    unsafe { try_handle(p, name) }?;
    Ok(unsafe { &mut *p })
}

/// Takes a handle back from the host to drop it: NULL is ignored; a handle that is not live (a second free)
/// is left alone, with the reason as the thread's last error.
///
/// # Safety
/// A live `p` must not be in use on another thread.
pub(crate) unsafe fn release<T: Handle>(p: *mut T, name: &str) -> Option<Box<T>> {
    if p.is_null() {
        return None;
    }
    let removed = LIVE.lock().as_mut().is_some_and(|s| s.remove(&(p as usize, T::KIND)));
    if !removed {
        not_live(name);
        log::warn!("{name} freed twice, or never made by this library: ignored");
        return None;
    }
    // SAFETY: it was registered, so it came from Box::into_raw in `register`, and is now unregistered.
    Some(unsafe { Box::from_raw(p) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::engine::{vxp_engine, vxp_engine_free, vxp_engine_provider};
    use crate::ffi::error::vxp_last_error;
    use crate::ffi::options::{vxp_options, vxp_options_free, vxp_options_new, vxp_options_set_threads};
    use crate::ffi::session::{vxp_session, vxp_session_cancel, vxp_session_free};

    fn last_error() -> String {
        let mut buf = [0 as c_char; 256];
        // SAFETY: a 256-byte buffer.
        unsafe { vxp_last_error(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()) };
        // SAFETY: vxp_last_error NUL-terminates what it writes.
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn d14_double_free_stale_junk_and_wrong_kind_handles_are_refused() {
        let mut o: *mut vxp_options = std::ptr::null_mut();
        // SAFETY: every pointer below is either live, or stale/junk on purpose: the library must not touch it.
        unsafe {
            assert_eq!(vxp_options_new(&mut o), vxp_result::Ok);
            assert_eq!(vxp_options_set_threads(o, 2), vxp_result::Ok);
            // Another kind's handle is not an engine.
            let mut n = 0usize;
            assert_eq!(
                vxp_engine_provider(o.cast::<vxp_engine>(), std::ptr::null_mut(), 0, &mut n),
                vxp_result::InvalidHandle
            );
            vxp_options_free(o);
            // Used after free, and freed twice: refused and ignored, never dereferenced.
            assert_eq!(vxp_options_set_threads(o, 2), vxp_result::InvalidHandle);
            assert!(last_error().contains("not a live handle"), "{}", last_error());
            vxp_options_free(o);
            // A pointer that never was a handle.
            let junk = 0x41usize as *mut vxp_session;
            assert_eq!(vxp_session_cancel(junk), vxp_result::InvalidHandle);
            vxp_session_free(junk);
            vxp_engine_free(0x41usize as *mut vxp_engine);
        }
    }
}
