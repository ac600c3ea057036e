//! Sessions: one volume, its objects, their results and the undo history (`crate::session`); runs, cancel
//! and run statistics. Prompts are in `prompt.rs`, settings in `settings.rs`. One thread at a time, except
//! `vxp_session_cancel`, which any thread may call.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::buffer::Strided;
use super::callback::{vxp_progress_fn, vxp_stage};
use super::engine::vxp_engine;
use super::error::{boundary, fail, null_arg, set_last_error};
use super::handle::{register, release, try_array, try_handle, try_ref, Handle, Kind};
use super::result::vxp_result;
use super::volume::{view, vxp_volume};
use crate::session::{RunReport, Session, SessionOptions};

/// What the last successful run did. Pass `struct_size = sizeof(vxp_run_stats)`; fields added later are
/// only written when the caller's struct is large enough.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct vxp_run_stats {
    pub struct_size: u32,
    /// Slices encoded by the run (0 when every embedding came from the session cache).
    pub slices_encoded: u64,
    /// Slices decoded by the run, all objects together.
    pub slices_decoded: u64,
    /// Decoder prompts run (one per object and slice).
    pub decoder_runs: u64,
    /// Objects propagated in full, refined, and left unchanged.
    pub objects_full: u32,
    pub objects_refined: u32,
    pub objects_unchanged: u32,
    /// Embeddings and bytes held by the session cache after the run.
    pub cache_entries: u64,
    pub cache_bytes: u64,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
}

/// A segmentation session over one volume: its objects and prompts, the embedding cache they share, the
/// last result and the undo history. Create with `vxp_session_new`, release with `vxp_session_free`.
pub struct vxp_session {
    inner: Mutex<Session>,
    last: Mutex<RunReport>,
    cancel: Arc<AtomicBool>,
}

impl Handle for vxp_session {
    const KIND: Kind = Kind::Session;
}

fn get<'a>(s: *const vxp_session) -> Result<&'a vxp_session, vxp_result> {
    // SAFETY: NULL or a live handle, per every caller's contract.
    unsafe { try_handle(s, "session") }
}

pub(crate) fn done(r: crate::Result<()>) -> vxp_result {
    match r {
        Ok(()) => vxp_result::Ok,
        Err(e) => fail(e),
    }
}

/// Creates a session: validates the descriptor, maps the volume's intensities (as `volume->intensity`
/// says) and keeps that 8-bit copy; the host buffer is not referenced after the call. `engine` stays
/// owned by the caller and may be freed before the session. The session starts with the best measured
/// policy (`VXP_POLICY_RESEED`), propagation along k, and the engine's embedding cache budget.
///
/// On `VXP_RESULT_OK`, `*out` receives a handle the caller owns (`vxp_session_free`). Otherwise `*out` is
/// untouched: `VXP_RESULT_NULL_ARGUMENT`, `VXP_RESULT_INVALID_ARGUMENT` (struct_size, intensity),
/// `VXP_RESULT_UNSUPPORTED_DTYPE`, `VXP_RESULT_INVALID_VOLUME` (zero or overflowing dims, strides outside the
/// buffer, NaN/Inf voxels, constant intensity, bad spacing or matrix), `VXP_RESULT_TOO_LARGE` (more voxels
/// than `vxp_options_set_max_voxels` allows), `VXP_RESULT_BUDGET_TOO_SMALL` (the
/// engine's cache budget cannot hold one embedding), `VXP_RESULT_PANIC`. The engine may
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
        let (e, v) = match unsafe { (try_handle(engine, "engine"), try_ref(volume, "volume")) } {
            (Ok(e), Ok(v)) => (e, v),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        if out.is_null() {
            return null_arg("out");
        }
        // SAFETY: the descriptor's buffer contract is the caller's.
        let (vv, mapping) = match unsafe { view(v) } {
            Ok(x) => x,
            Err(r) => return r,
        };
        let opts = SessionOptions::default()
            .with_cache_budget(e.cache_budget)
            .with_spill_budget(e.spill_budget)
            .with_max_voxels(e.max_voxels);
        let session = match e.inner.open_session(&vv, mapping, opts) {
            Ok(s) => s,
            Err(err) => return fail(err),
        };
        let s = Box::new(vxp_session {
            cancel: session.cancel_flag(),
            inner: Mutex::new(session),
            last: Mutex::new(RunReport::default()),
        });
        // SAFETY: out checked non-null.
        unsafe { *out = register(s) };
        vxp_result::Ok
    })
}

/// Releases a session. NULL is fine. No run may be in progress on it. A session freed already (or a
/// pointer that never was one) is ignored, and every later call with it returns `VXP_RESULT_INVALID_HANDLE`.
///
/// # Safety
/// `session` must be NULL or a live handle from `vxp_session_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_free(session: *mut vxp_session) {
    let _ = boundary(|| {
        // SAFETY: NULL, or a handle not in use elsewhere, per the contract.
        drop(unsafe { release(session, "session") });
        vxp_result::Ok
    });
}

pub(crate) fn with_session(session: *mut vxp_session, f: impl FnOnce(&mut Session) -> vxp_result) -> vxp_result {
    match get(session) {
        Ok(s) => f(&mut s.inner.lock()),
        Err(r) => r,
    }
}

/// Returns to the state before the last successful run: prompts and masks exactly as they were (prompt
/// edits made since that run are dropped). The next `vxp_session_run` writes that state without any
/// inference.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_NOTHING_TO_UNDO`.
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_undo(session: *mut vxp_session) -> vxp_result {
    boundary(|| with_session(session, |s| done(s.undo())))
}

/// Re-applies the state that the last `vxp_session_undo` left.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_NOTHING_TO_UNDO` (nothing to redo).
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_redo(session: *mut vxp_session) -> vxp_result {
    boundary(|| with_session(session, |s| done(s.redo())))
}

/// Requests cancellation of the run in progress on `session` (or of the next run, if none is). The run
/// returns `VXP_RESULT_CANCELLED` at the next slice boundary, leaves the output buffers untouched, and the
/// session stays usable with its previous results. Safe to call from any thread while another thread
/// runs the session.
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

/// Brings every object up to date with its prompts (full propagation, refinement, or nothing, as needed)
/// and writes the label mask into the caller's buffer: voxel (i, j, k) at byte
/// `i*mask_strides[0] + j*mask_strides[1] + k*mask_strides[2]` (non-negative strides), 0 = background.
/// `progress` may be NULL. Same as `vxp_session_run_confidence` without a confidence buffer.
///
/// Returns `VXP_RESULT_OK` (mask written), or, with the mask buffer untouched: `VXP_RESULT_NULL_ARGUMENT`,
/// `VXP_RESULT_INVALID_ARGUMENT` (strides), `VXP_RESULT_BUFFER_TOO_SMALL`, `VXP_RESULT_INVALID_PROMPT` (no
/// objects, or an object with nothing to start from), `VXP_RESULT_CANCELLED`, `VXP_RESULT_INFERENCE`,
/// `VXP_RESULT_PANIC`. One thread at a time per session; sessions of one engine may run on different
/// threads concurrently.
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
    // SAFETY: forwarded contract; no confidence buffer.
    unsafe {
        vxp_session_run_confidence(
            session,
            progress,
            user_data,
            mask,
            mask_len,
            mask_strides,
            std::ptr::null_mut(),
            0,
            std::ptr::null(),
        )
    }
}

/// `vxp_session_run`, also writing the confidence map when `confidence` is not NULL: one `float` per voxel
/// in [0, 1] at byte offset `i*confidence_strides[0] + …` inside `confidence_len` bytes. For a labelled
/// voxel it is |2p − 1| of the fused probability p of the object holding it; for a background voxel the
/// lowest such certainty among the objects whose slices cover it; 1 where no object looked.
///
/// Returns what `vxp_session_run` returns; both buffers are written only on `VXP_RESULT_OK`.
///
/// # Safety
/// As `vxp_session_run`; `confidence` NULL or valid for writing `confidence_len` bytes, with
/// `confidence_strides` then valid for reading 3 `int64_t`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn vxp_session_run_confidence(
    session: *mut vxp_session,
    progress: vxp_progress_fn,
    user_data: *mut c_void,
    mask: *mut u8,
    mask_len: usize,
    mask_strides: *const i64,
    confidence: *mut f32,
    confidence_len: usize,
    confidence_strides: *const i64,
) -> vxp_result {
    boundary(|| {
        let s = match get(session) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if mask.is_null() || mask_strides.is_null() {
            return null_arg(if mask.is_null() { "mask" } else { "mask_strides" });
        }
        if !confidence.is_null() && confidence_strides.is_null() {
            return null_arg("confidence_strides");
        }
        let mut inner = s.inner.lock();
        let dims = inner.dims();
        // SAFETY: 3 readable values per the contract (checked non-null above).
        let strides = unsafe { try_array(mask_strides, "mask_strides") };
        let mask_out = match strides.and_then(|st| Strided::check(dims, st, 1, mask_len)) {
            Ok(l) => l,
            Err(r) => return r,
        };
        let conf_out = if confidence.is_null() {
            None
        } else {
            // SAFETY: 3 readable values per the contract (checked non-null above).
            let cs = unsafe { try_array(confidence_strides, "confidence_strides") };
            match cs.and_then(|cs| Strided::check(dims, cs, 4, confidence_len)) {
                Ok(l) => Some(l),
                Err(r) => return r,
            }
        };
        // Cancel requests are the core session's: it checks its flag between slices and clears it after
        // each run.
        let mut report = |f: f32| match progress {
            // SAFETY: the host's callback with the host's user_data.
            Some(cb) => unsafe { cb(user_data, vxp_stage::Segment as u32, f) },
            None => true,
        };
        let run = match inner.run(Some(&mut report)) {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
        let (labels, conf) = inner.compose_coded(conf_out.is_some());
        // SAFETY: both layouts were checked against their buffers, writable per the contract.
        unsafe {
            mask_out.write(mask, &labels.data, |v| v);
            if let (Some(o), Some(c)) = (&conf_out, &conf) {
                o.write(confidence, c, crate::pipeline::compose::confidence_of);
            }
        }
        *s.last.lock() = run;
        vxp_result::Ok
    })
}

/// Copies what the last successful run did into `*out` (`out->struct_size` must be set by the caller; only
/// fields that fit are written).
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (struct_size too
/// small for the first field); `*out` is untouched on error.
///
/// # Safety
/// `session` a live handle; `out` NULL or valid for reading `struct_size` and writing that many bytes.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_last_stats(session: *const vxp_session, out: *mut vxp_run_stats) -> vxp_result {
    boundary(|| {
        let s = match get(session) {
            Ok(s) => s,
            Err(r) => return r,
        };
        if out.is_null() {
            return null_arg("out");
        }
        // SAFETY: the caller's struct_size field is readable.
        let size = unsafe { std::ptr::addr_of!((*out).struct_size).read_unaligned() } as usize;
        if size < std::mem::size_of::<u32>() + std::mem::size_of::<u64>() {
            set_last_error(format!("vxp_run_stats.struct_size {size} is too small"));
            return vxp_result::InvalidArgument;
        }
        let r = s.last.lock();
        let st = vxp_run_stats {
            struct_size: std::mem::size_of::<vxp_run_stats>() as u32,
            slices_encoded: r.slices_encoded as u64,
            slices_decoded: r.slices_decoded as u64,
            decoder_runs: r.stats.decoder_runs as u64,
            objects_full: r.full.len() as u32,
            objects_refined: r.refined.len() as u32,
            objects_unchanged: r.unchanged.len() as u32,
            cache_entries: r.cache.entries as u64,
            cache_bytes: r.cache.bytes as u64,
            seconds: r.time.as_secs_f64(),
        };
        let n = size.min(std::mem::size_of::<vxp_run_stats>());
        // SAFETY: the caller's buffer holds `size` bytes; we copy at most that, keeping its struct_size.
        unsafe {
            let src = &st as *const vxp_run_stats as *const u8;
            std::ptr::copy_nonoverlapping(src.add(4), (out as *mut u8).add(4), n - 4);
        }
        vxp_result::Ok
    })
}

/// Writes a JSON array into `buf` with one entry per object of the session, in the order the objects were
/// made: `label`, `ran` (whether it has a result), `voxels` (in the label mask the last run returned, after
/// overlaps), `slices`, `mean_iou`, `confidence`, and `prompts`, each with `kind` ("box" | "point" | "seed" |
/// "text" | "limit" | "hint" | "text_embedding"), `source` (`{"from": "user"}`, `{"from": "text", "concept",
/// "score"}`, `{"from": "anatomy", "concept"}` or `{"from": "growth", "click": [i, j, k]}`), `weight` and
/// `contribution`: for a box, seed or limit `voxels`, `result_inside` (the share of the object's voxels inside
/// it) and `covered` (the share of it the object covers); for a point `positive` and `satisfied`; for text
/// the `phrase` and its `resolution` (as `vxp_engine_lookup_concept` writes it); for a text embedding its
/// `dim`; for a hint its name. The buffer follows `vxp_last_error`'s rules: `*needed` (if not NULL)
/// receives the length without the NUL.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_BUFFER_TOO_SMALL` (buf untouched).
///
/// # Safety
/// `session` a live handle; `buf` valid for `len` bytes (NULL with len 0 queries the size); `needed` NULL or
/// valid.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_report(
    session: *const vxp_session,
    buf: *mut std::ffi::c_char,
    len: usize,
    needed: *mut usize,
) -> vxp_result {
    boundary(|| {
        let s = match get(session) {
            Ok(s) => s,
            Err(r) => return r,
        };
        let json = s.inner.lock().reports_json();
        // SAFETY: forwarded buffer contract.
        unsafe { super::handle::copy_out(&json, buf, len, needed) }
    })
}
