//! Sessions: one volume, its objects and prompts, their results and the undo history (`crate::session`).
//! One thread at a time, except `vxp_session_cancel`, which any thread may call.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use super::engine::vxp_engine;
use super::error::{boundary, fail, null_arg, set_last_error};
use super::handle::try_ref;
use super::result::vxp_result;
use super::volume::{view, vxp_volume};
use crate::pipeline::policy::Policy;
use crate::pipeline::postprocess::PostprocessOptions;
use crate::session::{Overlap, PointIjk, RunReport, Session, SessionOptions};
use crate::volume::intensity::{self, map_to_u8};
use crate::volume::BoxIjk;

/// Stages reported to a progress callback.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum vxp_stage {
    /// Encoding and decoding slices, propagating through the volume.
    Segment = 1,
}

/// Propagation policies for `vxp_session_set_policy`.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum vxp_policy {
    /// The CVPR24 LiteMedSAM middle-out pipeline, voxel for voxel (later objects overwrite earlier ones).
    Reference = 1,
    /// Reliable-slice re-seeding and confidence fusion (the default; objects never overwrite each other).
    Reseed = 2,
    /// RESEED that never propagates past the prompts' slice range: for a box known to span the whole object.
    ReseedInBox = 3,
}

/// Where objects overlap, for `vxp_session_set_overlap`.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum vxp_overlap {
    /// The policy's default: OVERWRITE for the reference policy, KEEP otherwise.
    Default = 0,
    /// Later objects overwrite earlier ones.
    Overwrite = 1,
    /// A voxel keeps the first object that claimed it.
    Keep = 2,
    /// The object with the higher probability wins.
    Confidence = 3,
}

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

/// Progress callback: `stage` is a `vxp_stage`, `fraction` in [0, 1]. Return false to cancel; the run then
/// returns `VXP_RESULT_CANCELLED`. Called on the thread that runs the session.
pub type vxp_progress_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, stage: u32, fraction: f32) -> bool>;

/// A segmentation session over one volume: its objects and prompts, the embedding cache they share, the
/// last result and the undo history. Create with `vxp_session_new`, release with `vxp_session_free`.
pub struct vxp_session {
    inner: Mutex<Session>,
    last: Mutex<RunReport>,
    cancel: Arc<AtomicBool>,
}

fn get<'a>(s: *const vxp_session) -> Result<&'a vxp_session, vxp_result> {
    // SAFETY: NULL or a live handle, per every caller's contract.
    unsafe { try_ref(s, "session") }
}

fn done(r: crate::Result<()>) -> vxp_result {
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
/// buffer, NaN/Inf voxels, constant intensity, bad spacing or matrix), `VXP_RESULT_BUDGET_TOO_SMALL` (the
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
        let opts = SessionOptions::default().with_cache_budget(e.cache_budget);
        let session = match Session::new(e.inner.models.clone(), image, *vv.geometry(), opts) {
            Ok(s) => s,
            Err(err) => return fail(err),
        };
        let s = Box::new(vxp_session {
            cancel: session.cancel_flag(),
            inner: Mutex::new(session),
            last: Mutex::new(RunReport::default()),
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

fn label_u8(label: u32) -> Result<u8, vxp_result> {
    if (1..=255).contains(&label) {
        Ok(label as u8)
    } else {
        set_last_error(format!("label {label} is not in 1..=255"));
        Err(vxp_result::InvalidPrompt)
    }
}

fn with_session(session: *mut vxp_session, f: impl FnOnce(&mut Session) -> vxp_result) -> vxp_result {
    match get(session) {
        Ok(s) => f(&mut s.inner.lock()),
        Err(r) => r,
    }
}

/// Adds a box prompt in voxel indices to object `label` (1–255, the value written into the mask),
/// creating the object on first use: `box = {i0, j0, k0, i1, j1, k1}`, inclusive, i the column axis, k the
/// slice axis. An object may have several boxes (e.g. on different slices: a box on one slice has
/// k0 = k1); its first box seeds the propagation, later ones re-prompt their own middle slice. Under
/// `VXP_POLICY_REFERENCE` an object whose only box lies on one slice is segmented on that slice alone (a 2D
/// run); the reseed policy may continue past it while the model stays sure.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT`, or `VXP_RESULT_INVALID_PROMPT` (label out of range,
/// the same box again, box inverted, negative or outside the volume, e.g. a slice range past the last
/// slice; nothing is added).
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
        if r#box.is_null() {
            return null_arg("box");
        }
        // SAFETY: the caller guarantees 6 readable values.
        let b = unsafe { std::slice::from_raw_parts(r#box, 6) };
        with_session(session, |s| {
            let l = match label_u8(label) {
                Ok(l) => l,
                Err(r) => return r,
            };
            if b.iter().any(|&v| v < 0) {
                set_last_error(format!("box {b:?} has a negative index: outside the volume"));
                return vxp_result::InvalidPrompt;
            }
            let u = |v: i64| v as usize;
            done(s.add_box(l, BoxIjk { min: [u(b[0]), u(b[1]), u(b[2])], max: [u(b[3]), u(b[4]), u(b[5])] }))
        })
    })
}

/// Adds a box given by two opposite RAS corners in millimetres, `box = {r0, a0, s0, r1, a1, s1}`, to object
/// `label`. The enclosing voxel box (corners rounded to the nearest voxel, clipped to the volume) is used.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT`, `VXP_RESULT_INVALID_PROMPT` (entirely outside the
/// volume, non-finite values, label out of range, a duplicate) or `VXP_RESULT_INVALID_VOLUME` (singular
/// matrix).
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
        if r#box.is_null() {
            return null_arg("box");
        }
        // SAFETY: the caller guarantees 6 readable values.
        let b = unsafe { std::slice::from_raw_parts(r#box, 6) };
        with_session(session, |s| {
            let l = match label_u8(label) {
                Ok(l) => l,
                Err(r) => return r,
            };
            match s.geometry().ras_box_to_ijk([b[0], b[1], b[2]], [b[3], b[4], b[5]], s.dims()) {
                Ok(bbox) => done(s.add_box(l, bbox)),
                Err(e) => fail(e),
            }
        })
    })
}

/// Adds a point prompt `ijk = {i, j, k}` (voxel indices) to object `label`: `positive` marks the object,
/// otherwise the point marks background (e.g. where the mask leaks). An object may be started from
/// positive points alone. After a run, adding or removing points and running again refines the object:
/// only the touched slices are decoded again and propagation re-runs only as far as the mask changes.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_PROMPT` (point outside the
/// volume, label out of range; nothing is added).
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
        if ijk.is_null() {
            return null_arg("ijk");
        }
        // SAFETY: the caller guarantees 3 readable values.
        let p = unsafe { std::slice::from_raw_parts(ijk, 3) };
        with_session(session, |s| {
            let l = match label_u8(label) {
                Ok(l) => l,
                Err(r) => return r,
            };
            if p.iter().any(|&v| v < 0) {
                set_last_error(format!("point {p:?} has a negative index: outside the volume"));
                return vxp_result::InvalidPrompt;
            }
            done(s.add_point(l, PointIjk { ijk: [p[0] as usize, p[1] as usize, p[2] as usize], positive }))
        })
    })
}

/// Adds a point given in RAS millimetres `ras = {r, a, s}` (rounded to the nearest voxel) to object
/// `label`. Results as `vxp_session_add_point_ijk`, plus `VXP_RESULT_INVALID_VOLUME` (singular matrix).
///
/// # Safety
/// `session` a live handle; `ras` NULL or valid for reading 3 `double`.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_add_point_ras(
    session: *mut vxp_session,
    label: u32,
    ras: *const f64,
    positive: bool,
) -> vxp_result {
    boundary(|| {
        if ras.is_null() {
            return null_arg("ras");
        }
        // SAFETY: the caller guarantees 3 readable values.
        let p = unsafe { std::slice::from_raw_parts(ras, 3) };
        with_session(session, |s| {
            let l = match label_u8(label) {
                Ok(l) => l,
                Err(r) => return r,
            };
            match s.geometry().ras_box_to_ijk([p[0], p[1], p[2]], [p[0], p[1], p[2]], s.dims()) {
                Ok(b) => done(s.add_point(l, PointIjk { ijk: b.min, positive })),
                Err(e) => fail(e),
            }
        })
    })
}

/// Removes the most recent point of object `label` at `ijk`.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (no such object or
/// point).
///
/// # Safety
/// `session` a live handle; `ijk` NULL or valid for reading 3 `int64_t`.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_remove_point_ijk(
    session: *mut vxp_session,
    label: u32,
    ijk: *const i64,
) -> vxp_result {
    boundary(|| {
        if ijk.is_null() {
            return null_arg("ijk");
        }
        // SAFETY: the caller guarantees 3 readable values.
        let p = unsafe { std::slice::from_raw_parts(ijk, 3) };
        with_session(session, |s| {
            let (Ok(l), true) = (label_u8(label), p.iter().all(|&v| v >= 0)) else {
                set_last_error(format!("object {label} has no point at {p:?}"));
                return vxp_result::InvalidArgument;
            };
            done(s.remove_point(l, [p[0] as usize, p[1] as usize, p[2] as usize]))
        })
    })
}

/// Sets the seed (coarse) mask of object `label`, creating the object on first use: `mask` holds one byte
/// per voxel (nonzero = inside) at byte offset `i*strides[0] + j*strides[1] + k*strides[2]`, over `dims`,
/// which must equal the session volume's dims. The mask is copied. The reseed policy keeps its reliable
/// slices and re-propagates from them; the reference policy uses its 3D bounding box as the box prompt.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT`, `VXP_RESULT_SHAPE_MISMATCH` (dims differ from the
/// volume's), `VXP_RESULT_INVALID_ARGUMENT` (negative strides), `VXP_RESULT_BUFFER_TOO_SMALL` (the layout
/// does not fit `mask_len` bytes) or `VXP_RESULT_INVALID_PROMPT` (empty mask, label out of range).
///
/// # Safety
/// `session` a live handle; `mask` valid for reading `mask_len` bytes; `dims` and `strides` NULL or valid
/// for reading 3 values.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_set_seed_mask(
    session: *mut vxp_session,
    label: u32,
    mask: *const u8,
    mask_len: usize,
    dims: *const usize,
    strides: *const i64,
) -> vxp_result {
    boundary(|| {
        if mask.is_null() || dims.is_null() || strides.is_null() {
            return null_arg(if mask.is_null() {
                "mask"
            } else if dims.is_null() {
                "dims"
            } else {
                "strides"
            });
        }
        // SAFETY: 3 readable values each, per the contract.
        let (d, st) = unsafe { (std::slice::from_raw_parts(dims, 3), std::slice::from_raw_parts(strides, 3)) };
        with_session(session, |s| {
            let l = match label_u8(label) {
                Ok(l) => l,
                Err(r) => return r,
            };
            let vd = s.dims();
            if d != vd {
                set_last_error(format!("seed mask dims {d:?} differ from the volume's {vd:?}"));
                return vxp_result::ShapeMismatch;
            }
            let st = match check_output(vd, st, 1, mask_len) {
                Ok(st) => st,
                Err(r) => return r,
            };
            // SAFETY: check_output proved every read byte lies in [mask, mask + mask_len).
            let src = unsafe { std::slice::from_raw_parts(mask, mask_len) };
            let mut m = vec![0u8; vd.iter().product()];
            for k in 0..vd[2] {
                for j in 0..vd[1] {
                    let base = k * st[2] + j * st[1];
                    for i in 0..vd[0] {
                        m[(k * vd[1] + j) * vd[0] + i] = src[base + i * st[0]];
                    }
                }
            }
            done(s.set_seed(l, m))
        })
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
        with_session(session, |s| match u8::try_from(label) {
            Ok(l) => done(s.remove_object(l)),
            Err(_) => {
                set_last_error(format!("no object has label {label}"));
                vxp_result::InvalidArgument
            }
        })
    })
}

/// Removes every object and prompt (undo brings them back once a run has checkpointed them). Returns
/// `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_clear_prompts(session: *mut vxp_session) -> vxp_result {
    boundary(|| {
        with_session(session, |s| {
            s.clear();
            vxp_result::Ok
        })
    })
}

fn set_opts(session: *mut vxp_session, f: impl FnOnce(&mut SessionOptions) -> Result<(), String>) -> vxp_result {
    with_session(session, |s| {
        let mut o = *s.options();
        if let Err(msg) = f(&mut o) {
            set_last_error(msg);
            return vxp_result::InvalidArgument;
        }
        done(s.set_options(o))
    })
}

/// Chooses the propagation policy (a `vxp_policy`) for the next runs; objects computed under another
/// policy are recomputed by the next run.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (unknown policy).
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_set_policy(session: *mut vxp_session, policy: u32) -> vxp_result {
    boundary(|| {
        set_opts(session, |o| {
            o.policy = match policy {
                1 => Policy::Reference,
                2 => Policy::best(),
                3 => Policy::reseed_in_box(),
                p => return Err(format!("policy {p} is not a vxp_policy")),
            };
            Ok(())
        })
    })
}

/// Chooses the propagation axis for the next runs: 2 = slices along k (the default, as the reference), 1 =
/// along j, 0 = along i (sagittal or coronal acquisitions). Prompts stay in voxel indices of the volume.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (axis > 2).
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_set_axis(session: *mut vxp_session, axis: u32) -> vxp_result {
    boundary(|| {
        set_opts(session, |o| {
            if axis > 2 {
                return Err(format!("propagation axis {axis} is not 0, 1 or 2"));
            }
            o.axis = axis as u8;
            Ok(())
        })
    })
}

/// Chooses which object wins where masks overlap (a `vxp_overlap`).
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (unknown rule).
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_set_overlap(session: *mut vxp_session, rule: u32) -> vxp_result {
    boundary(|| {
        set_opts(session, |o| {
            o.overlap = match rule {
                0 => None,
                1 => Some(Overlap::Overwrite),
                2 => Some(Overlap::Keep),
                3 => Some(Overlap::Confidence),
                r => return Err(format!("overlap rule {r} is not a vxp_overlap")),
            };
            Ok(())
        })
    })
}

/// Post-processing of every object after its policy: keep only the largest 3D connected component
/// (26-connected), fill holes (per slice, then in 3D), remove 3D components smaller than `min_size` voxels
/// (0 = off). All off by default beyond what the policy itself does.
///
/// Returns `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `session` a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_session_set_postprocess(
    session: *mut vxp_session,
    keep_largest: bool,
    fill_holes: bool,
    min_size: u64,
) -> vxp_result {
    boundary(|| {
        set_opts(session, |o| {
            o.postprocess = PostprocessOptions::new()
                .with_keep_largest(keep_largest)
                .with_fill_holes(fill_holes)
                .with_min_size(min_size as usize);
            Ok(())
        })
    })
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

/// Checks that a caller-owned layout of `elem`-byte values fits its buffer (non-negative byte strides).
fn check_output(dims: [usize; 3], strides: &[i64], elem: usize, len: usize) -> Result<[usize; 3], vxp_result> {
    let mut s = [0usize; 3];
    let mut last = 0u128;
    for a in 0..3 {
        if strides[a] < elem as i64 && dims[a] > 1 {
            set_last_error(format!(
                "stride {} of axis {a} is below one element ({elem} bytes) or negative",
                strides[a]
            ));
            return Err(vxp_result::InvalidArgument);
        }
        s[a] = strides[a].max(0) as usize;
        last += s[a] as u128 * (dims[a] as u128 - 1);
    }
    if last + elem as u128 > len as u128 {
        set_last_error(format!(
            "buffer of {len} bytes is too small for dims {dims:?} with byte strides {strides:?} ({} bytes needed)",
            last + elem as u128
        ));
        return Err(vxp_result::BufferTooSmall);
    }
    Ok(s)
}

/// A caller's output buffer, checked.
struct Output<T> {
    ptr: *mut T,
    strides: [usize; 3],
}

impl<T: Copy> Output<T> {
    /// Writes `src` (i fastest, `dims`) through the checked strides.
    ///
    /// SAFETY: `check_output` proved every written byte lies inside the caller's buffer.
    unsafe fn write(&self, dims: [usize; 3], src: &[T]) {
        // SAFETY: as for `write_with`.
        unsafe { self.write_with(dims, src, |v| v) }
    }

    /// `write` of `f(v)` for every `v` of `src`.
    ///
    /// SAFETY: `check_output` proved every written byte lies inside the caller's buffer.
    unsafe fn write_with<S: Copy>(&self, dims: [usize; 3], src: &[S], f: impl Fn(S) -> T) {
        let base = self.ptr as *mut u8;
        let [w, h, d] = dims;
        for k in 0..d {
            for j in 0..h {
                let row = &src[(k * h + j) * w..(k * h + j + 1) * w];
                let off = k * self.strides[2] + j * self.strides[1];
                for (i, &v) in row.iter().enumerate() {
                    // SAFETY: inside the checked buffer; unaligned hosts' strides are allowed.
                    unsafe { (base.add(off + i * self.strides[0]) as *mut T).write_unaligned(f(v)) };
                }
            }
        }
    }
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
        // SAFETY: 3 readable values per the contract.
        let strides = unsafe { std::slice::from_raw_parts(mask_strides, 3) };
        let mask_out = match check_output(dims, strides, 1, mask_len) {
            Ok(st) => Output { ptr: mask, strides: st },
            Err(r) => return r,
        };
        let conf_out = if confidence.is_null() {
            None
        } else {
            // SAFETY: 3 readable values per the contract.
            let cs = unsafe { std::slice::from_raw_parts(confidence_strides, 3) };
            match check_output(dims, cs, 4, confidence_len) {
                Ok(st) => Some(Output { ptr: confidence, strides: st }),
                Err(r) => return r,
            }
        };
        let cancel = s.cancel.clone();
        let mut report = |f: f32| {
            if cancel.load(Ordering::SeqCst) {
                return false;
            }
            match progress {
                // SAFETY: the host's callback with the host's user_data.
                Some(cb) => unsafe { cb(user_data, vxp_stage::Segment as u32, f) },
                None => true,
            }
        };
        // A cancel that arrived before the run cancels it (the session clears the flag as it starts).
        if s.cancel.swap(false, Ordering::SeqCst) {
            set_last_error("cancelled");
            return vxp_result::Cancelled;
        }
        let run = match inner.run(Some(&mut report)) {
            Ok(r) => r,
            Err(e) => {
                s.cancel.store(false, Ordering::SeqCst);
                return fail(e);
            }
        };
        let (labels, conf) = inner.compose_coded(conf_out.is_some());
        // SAFETY: check_output proved both layouts fit their buffers.
        unsafe {
            mask_out.write(dims, &labels.data);
            if let (Some(o), Some(c)) = (&conf_out, &conf) {
                o.write_with(dims, c, crate::session::confidence_of);
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
