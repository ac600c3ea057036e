//! Sessions: one volume, its prompts and its last result. One thread at a time, except
//! `vxp_session_cancel`, which any thread may call.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::engine::vxp_engine;
use super::error::{boundary, fail, null_arg, set_last_error};
use super::handle::try_ref;
use super::result::vxp_result;
use super::volume::{view, vxp_volume};
use crate::engine::Engine;
use crate::pipeline::propagate::{self, BoxIjk, Object};
use crate::volume::intensity::{self, map_to_u8};
use crate::volume::{Geometry, U8Volume};

/// Stages reported to a progress callback.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum vxp_stage {
    /// Encoding and decoding slices, propagating through the volume.
    Segment = 1,
}

/// Progress callback: `stage` is a `vxp_stage`, `fraction` in [0, 1]. Return false to cancel; the run then
/// returns `VXP_RESULT_CANCELLED`. Called on the thread that runs the session.
pub type vxp_progress_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, stage: u32, fraction: f32) -> bool>;

/// A segmentation session over one volume. Create with `vxp_session_new`, release with
/// `vxp_session_free`.
pub struct vxp_session {
    engine: Arc<Engine>,
    image: U8Volume,
    geometry: Geometry,
    objects: Mutex<Vec<Object>>,
    cancel: AtomicBool,
}

fn get<'a>(s: *const vxp_session) -> Result<&'a vxp_session, vxp_result> {
    // SAFETY: NULL or a live handle, per every caller's contract.
    unsafe { try_ref(s, "session") }
}

/// Creates a session: validates the descriptor, maps the volume's intensities (as `volume->intensity`
/// says) and keeps that 8-bit copy; the host buffer is not referenced after the call. `engine` stays
/// owned by the caller and may be freed before the session.
///
/// On `VXP_RESULT_OK`, `*out` receives a handle the caller owns (`vxp_session_free`). Otherwise `*out` is
/// untouched: `VXP_RESULT_NULL_ARGUMENT`, `VXP_RESULT_INVALID_ARGUMENT` (struct_size, intensity),
/// `VXP_RESULT_UNSUPPORTED_DTYPE`, `VXP_RESULT_INVALID_VOLUME` (zero or overflowing dims, strides outside the
/// buffer, NaN/Inf voxels, constant intensity, bad spacing or matrix), `VXP_RESULT_PANIC`. The engine may
/// be used by other threads meanwhile.
///
/// # Safety
/// `engine` a live handle; `volume` a valid descriptor whose buffer is readable as described; `out` NULL
/// or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_new(
    engine: *const vxp_engine,
    volume: *const vxp_volume,
    out: *mut *mut vxp_session,
) -> vxp_result {
    boundary(|| {
        // SAFETY: NULL or live handles / descriptors, per the contract.
        let (e, v) = match unsafe { (try_ref(engine, "engine"), try_ref(volume, "volume")) } {
            (Ok(e), Ok(v)) => (e, v),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        if out.is_null() {
            return null_arg("out");
        }
        // SAFETY: the descriptor's buffer contract is the caller's.
        let (vv, mapping, auto) = match unsafe { view(v) } {
            Ok(x) => x,
            Err(r) => return r,
        };
        let mapping = if auto { intensity::auto(&vv) } else { mapping };
        let image = match map_to_u8(&vv, mapping) {
            Ok(i) => i,
            Err(err) => return fail(err),
        };
        let s = Box::new(vxp_session {
            engine: e.inner.clone(),
            image,
            geometry: *vv.geometry(),
            objects: Mutex::new(Vec::new()),
            cancel: AtomicBool::new(false),
        });
        // SAFETY: out checked non-null.
        unsafe { *out = Box::into_raw(s) };
        vxp_result::Ok
    })
}

/// Releases a session. NULL is fine. No run may be in progress on it.
///
/// # Safety
/// `session` must be NULL or a live handle from `vxp_session_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_free(session: *mut vxp_session) {
    let _ = boundary(|| {
        if !session.is_null() {
            // SAFETY: a live handle, per the contract.
            drop(unsafe { Box::from_raw(session) });
        }
        vxp_result::Ok
    });
}

fn add_object(s: &vxp_session, label: u32, bbox: BoxIjk) -> vxp_result {
    if !(1..=255).contains(&label) {
        set_last_error(format!("label {label} is not in 1..=255"));
        return vxp_result::InvalidPrompt;
    }
    if let Err(e) = bbox.validate(s.image.dims) {
        return fail(e);
    }
    let mut objects = s.objects.lock();
    if objects.iter().any(|o| o.label as u32 == label) {
        set_last_error(format!("label {label} already has a box; remove the object first"));
        return vxp_result::InvalidPrompt;
    }
    objects.push(Object { label: label as u8, bbox });
    vxp_result::Ok
}

/// Adds an object with a box prompt in voxel indices: `box = {i0, j0, k0, i1, j1, k1}`, inclusive, i the
/// column axis, k the slice axis. Objects are segmented in the order added; where they overlap, the later
/// one wins (as the reference pipeline). `label` (1–255) is the value written into the mask.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT`, or `VXP_RESULT_INVALID_PROMPT` (label out of range
/// or already used, box inverted or outside the volume; nothing is added).
///
/// # Safety
/// `session` a live handle; `box` NULL or valid for reading 6 `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_add_box_ijk(
    session: *mut vxp_session,
    label: u32,
    r#box: *const i64,
) -> vxp_result {
    boundary(|| {
        let s = match get(session) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if r#box.is_null() {
            return null_arg("box");
        }
        // SAFETY: the caller guarantees 6 readable values.
        let b = unsafe { std::slice::from_raw_parts(r#box, 6) };
        if b.iter().any(|&v| v < 0) {
            set_last_error(format!("box {b:?} has a negative index: outside the volume"));
            return vxp_result::InvalidPrompt;
        }
        let u = |v: i64| v as usize;
        add_object(s, label, BoxIjk { min: [u(b[0]), u(b[1]), u(b[2])], max: [u(b[3]), u(b[4]), u(b[5])] })
    })
}

/// Adds an object with a box given by two opposite RAS corners in millimetres: `box = {r0, a0, s0, r1, a1,
/// s1}`. The enclosing voxel box (corners rounded to the nearest voxel, clipped to the volume) is used.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT`, `VXP_RESULT_INVALID_PROMPT` (entirely outside the
/// volume, non-finite values, label out of range or used) or `VXP_RESULT_INVALID_VOLUME` (singular matrix).
///
/// # Safety
/// `session` a live handle; `box` NULL or valid for reading 6 `double`.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_add_box_ras(
    session: *mut vxp_session,
    label: u32,
    r#box: *const f64,
) -> vxp_result {
    boundary(|| {
        let s = match get(session) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if r#box.is_null() {
            return null_arg("box");
        }
        // SAFETY: the caller guarantees 6 readable values.
        let b = unsafe { std::slice::from_raw_parts(r#box, 6) };
        match s.geometry.ras_box_to_ijk([b[0], b[1], b[2]], [b[3], b[4], b[5]], s.image.dims) {
            Ok(bbox) => add_object(s, label, bbox),
            Err(e) => fail(e),
        }
    })
}

/// Point prompts are not part of the reference 3D pipeline; they arrive with interactive refinement.
/// Always returns `VXP_RESULT_UNSUPPORTED` in this version (or `VXP_RESULT_NULL_ARGUMENT`).
///
/// # Safety
/// `session` a live handle; `ijk` NULL or valid for reading 3 `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_add_point_ijk(
    session: *mut vxp_session,
    label: u32,
    ijk: *const i64,
    positive: bool,
) -> vxp_result {
    boundary(|| {
        if session.is_null() || ijk.is_null() {
            return null_arg(if session.is_null() { "session" } else { "ijk" });
        }
        let _ = (label, positive);
        set_last_error("point prompts are not supported by this version (box prompts only)");
        vxp_result::Unsupported
    })
}

/// Text prompts ("left kidney") are not supported by this version: always `VXP_RESULT_UNSUPPORTED` (or
/// `VXP_RESULT_NULL_ARGUMENT`).
///
/// # Safety
/// `session` a live handle; `text` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_add_text(
    session: *mut vxp_session,
    label: u32,
    text: *const c_char,
) -> vxp_result {
    boundary(|| {
        if session.is_null() || text.is_null() {
            return null_arg(if session.is_null() { "session" } else { "text" });
        }
        let _ = label;
        set_last_error("text prompts are not supported by this version");
        vxp_result::Unsupported
    })
}

/// Removes the object with `label` and its prompts.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (no such object).
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_remove_object(session: *mut vxp_session, label: u32) -> vxp_result {
    boundary(|| {
        let s = match get(session) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let mut objects = s.objects.lock();
        let before = objects.len();
        objects.retain(|o| o.label as u32 != label);
        if objects.len() == before {
            set_last_error(format!("no object has label {label}"));
            return vxp_result::InvalidArgument;
        }
        vxp_result::Ok
    })
}

/// Removes every object and prompt. Returns `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_clear_prompts(session: *mut vxp_session) -> vxp_result {
    boundary(|| match get(session) {
        Ok(s) => {
            s.objects.lock().clear();
            vxp_result::Ok
        }
        Err(r) => r,
    })
}

/// Requests cancellation of the run in progress on `session` (or of the next run, if none is). The run
/// returns `VXP_RESULT_CANCELLED` at the next slice boundary, leaves the mask buffer untouched, and the
/// session stays usable. Safe to call from any thread while another thread runs the session.
///
/// Returns `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_cancel(session: *const vxp_session) -> vxp_result {
    boundary(|| match get(session) {
        Ok(s) => {
            s.cancel.store(true, Ordering::SeqCst);
            vxp_result::Ok
        }
        Err(r) => r,
    })
}

/// Checks that a caller-owned output layout fits its buffer (non-negative strides).
fn check_output(dims: [usize; 3], strides: &[i64], elem: usize, len: usize) -> Result<[usize; 3], vxp_result> {
    let mut s = [0usize; 3];
    let mut last = 0u128;
    for a in 0..3 {
        if strides[a] < elem as i64 && dims[a] > 1 {
            set_last_error(format!(
                "output stride {} of axis {a} is below one element ({elem} bytes) or negative",
                strides[a]
            ));
            return Err(vxp_result::InvalidArgument);
        }
        s[a] = strides[a].max(0) as usize;
        last += s[a] as u128 * (dims[a] as u128 - 1);
    }
    if last + elem as u128 > len as u128 {
        set_last_error(format!(
            "output buffer of {len} bytes is too small for dims {dims:?} with byte strides {strides:?} ({} bytes needed)",
            last + elem as u128
        ));
        return Err(vxp_result::BufferTooSmall);
    }
    Ok(s)
}

/// Segments every object of the session in 3D (the LiteMedSAM reference middle-out propagation, each
/// slice encoded once however many objects cover it) and writes the label mask into the caller's buffer:
/// voxel (i, j, k) at byte `i*mask_strides[0] + j*mask_strides[1] + k*mask_strides[2]` (non-negative
/// strides), 0 = background. `progress` may be NULL.
///
/// Returns `VXP_RESULT_OK` (mask written), or, with the mask buffer untouched: `VXP_RESULT_NULL_ARGUMENT`,
/// `VXP_RESULT_INVALID_ARGUMENT` (strides), `VXP_RESULT_BUFFER_TOO_SMALL`, `VXP_RESULT_INVALID_PROMPT` (no
/// objects), `VXP_RESULT_CANCELLED`, `VXP_RESULT_INFERENCE`, `VXP_RESULT_PANIC`. One thread at a time per
/// session; sessions of one engine may run on different threads concurrently.
///
/// # Safety
/// `session` a live handle; `mask` valid for writing `mask_len` bytes; `mask_strides` valid for reading 3
/// `int64_t`; `progress`, when not NULL, callable with `user_data`.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_run(
    session: *mut vxp_session,
    progress: vxp_progress_fn,
    user_data: *mut c_void,
    mask: *mut u8,
    mask_len: usize,
    mask_strides: *const i64,
) -> vxp_result {
    boundary(|| {
        let s = match get(session) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if mask.is_null() || mask_strides.is_null() {
            return null_arg(if mask.is_null() { "mask" } else { "mask_strides" });
        }
        // SAFETY: 3 readable values per the contract.
        let strides = unsafe { std::slice::from_raw_parts(mask_strides, 3) };
        let dims = s.image.dims;
        let st = match check_output(dims, strides, 1, mask_len) {
            Ok(st) => st,
            Err(r) => return r,
        };
        let objects = s.objects.lock().clone();
        if objects.is_empty() {
            set_last_error("no objects: add a box prompt first");
            return vxp_result::InvalidPrompt;
        }
        let mut report = |f: f32| {
            if s.cancel.swap(false, Ordering::SeqCst) {
                return false;
            }
            match progress {
                // SAFETY: the host's callback with the host's user_data.
                Some(cb) => unsafe { cb(user_data, vxp_stage::Segment as u32, f) },
                None => true,
            }
        };
        let (result, _stats) =
            match propagate::reference_middle_out(&s.engine.model, &s.image, &objects, Some(&mut report)) {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
        // SAFETY: check_output proved every written byte lies in [mask, mask + mask_len).
        let out = unsafe { std::slice::from_raw_parts_mut(mask, mask_len) };
        let [w, h, d] = dims;
        for k in 0..d {
            for j in 0..h {
                let src = &result.data[(k * h + j) * w..(k * h + j + 1) * w];
                let base = k * st[2] + j * st[1];
                for (i, &v) in src.iter().enumerate() {
                    out[base + i * st[0]] = v;
                }
            }
        }
        vxp_result::Ok
    })
}
