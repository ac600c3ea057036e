//! Prompts: boxes, points, seed masks and (reserved) text, per object label, on a session.

use std::ffi::c_char;

use super::buffer::Strided;
use super::error::{boundary, fail, null_arg, set_last_error};
use super::handle::{try_array, try_str};
use super::result::vxp_result;
use super::session::{done, vxp_session, with_session};
use crate::prompt::PointIjk;
use crate::session::Session;
use crate::volume::BoxIjk;

fn label_u8(label: u32) -> Result<u8, vxp_result> {
    if (1..=255).contains(&label) {
        Ok(label as u8)
    } else {
        set_last_error(format!("label {label} is not in 1..=255"));
        Err(vxp_result::InvalidPrompt)
    }
}

/// `with_session` for a call on object `label`: the session is checked first, then the label (1–255).
fn with_object(session: *mut vxp_session, label: u32, f: impl FnOnce(&mut Session, u8) -> vxp_result) -> vxp_result {
    with_session(session, |s| match label_u8(label) {
        Ok(l) => f(s, l),
        Err(r) => r,
    })
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
        // SAFETY: the caller guarantees 6 readable values.
        let b: [i64; 6] = match unsafe { try_array(r#box, "box") } {
            Ok(b) => b,
            Err(r) => return r,
        };
        with_object(session, label, |s, l| {
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
        // SAFETY: the caller guarantees 6 readable values.
        let b: [f64; 6] = match unsafe { try_array(r#box, "box") } {
            Ok(b) => b,
            Err(r) => return r,
        };
        with_object(session, label, |s, l| {
            match s.geometry().ras_box_to_ijk([b[0], b[1], b[2]], [b[3], b[4], b[5]], s.dims()) {
                Ok(bbox) => done(s.add_box(l, bbox)),
                Err(e) => fail(e),
            }
        })
    })
}

/// Adds a point prompt `ijk = {i, j, k}` (voxel indices) to object `label`: `positive` marks the object,
/// otherwise the point marks background (e.g. where the mask leaks). An object may be started from one
/// positive click alone: at the next run the object around it is grown on the click's slice (in the
/// click's local intensity window, bounded by the organ when the object's text names one, thin bridges
/// cut), the box is fitted to what the model finds in it, and the object is propagated outward from that
/// slice until it ends. Removing that click removes the grown box. After a run, adding or removing points
/// and running again refines the object: only the touched slices are decoded again and propagation re-runs
/// only as far as the mask changes.
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
        // SAFETY: the caller guarantees 3 readable values.
        let p: [i64; 3] = match unsafe { try_array(ijk, "ijk") } {
            Ok(p) => p,
            Err(r) => return r,
        };
        with_object(session, label, |s, l| {
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
        // SAFETY: the caller guarantees 3 readable values.
        let p: [f64; 3] = match unsafe { try_array(ras, "ras") } {
            Ok(p) => p,
            Err(r) => return r,
        };
        with_object(session, label, |s, l| {
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
        // SAFETY: the caller guarantees 3 readable values.
        let p: [i64; 3] = match unsafe { try_array(ijk, "ijk") } {
            Ok(p) => p,
            Err(r) => return r,
        };
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
        if mask.is_null() {
            return null_arg("mask");
        }
        // SAFETY: 3 readable values each, per the contract.
        let (d, st) = match unsafe { (try_array::<usize, 3>(dims, "dims"), try_array::<i64, 3>(strides, "strides")) } {
            (Ok(d), Ok(st)) => (d, st),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        with_object(session, label, |s, l| {
            let vd = s.dims();
            if d != vd {
                set_last_error(format!("seed mask dims {d:?} differ from the volume's {vd:?}"));
                return vxp_result::ShapeMismatch;
            }
            let layout = match Strided::check(vd, st, 1, mask_len) {
                Ok(l) => l,
                Err(r) => return r,
            };
            // SAFETY: the layout was checked against [mask, mask + mask_len), readable per the contract.
            let m = unsafe { layout.read(mask) };
            done(s.set_seed(l, m))
        })
    })
}

/// Names object `label` (1–255) in words: "left kidney", "liver", "spleen", "kidneys" (both, one object),
/// "tumour of the liver"… The phrase is resolved now (as `vxp_engine_lookup_concept` does), the structure's
/// anatomical prior is found in this volume from body-relative rules (CT: body, lungs, bones, landmarks, a
/// cranio-caudal coordinate; left and right from the IJK→RAS matrix), and the object gets the prompts it
/// derives: a box and a seed mask (unless the object already has the host's own box or seed: then the
/// host's prompt leads) and the region its result is cut to. A text-only object then runs like any other,
/// except the lungs, which the CT soft-tissue window maps to black: their prior is the result (no model runs
/// for them; confidence 0.5 inside, "prior only" in `vxp_session_report`).
/// A lesion phrase ("liver tumour", "lung nodule") needs the host's click or box on the lesion first: the
/// organ of origin is found and becomes the region (holes filled, so a nodule inside the lungs' air is in
/// it), and a click is grown as a lesion inside it. On MR, which has no body prior yet, a phrase names an
/// object the host has already started (click, box or seed) and bounds nothing, except brain structures
/// ("left hippocampus", "caudate", "lateral ventricles"): with a brain atlas (`vxp_options_set_brain_atlas`)
/// its template is registered onto the volume at the first such phrase (about a second) and the
/// structure's atlas labels, carried through world coordinates, are the result (no model runs for it).
/// One phrase per object.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT`, `VXP_RESULT_INVALID_ARGUMENT` (empty or blank text,
/// not UTF-8), `VXP_RESULT_UNKNOWN_CONCEPT` (the phrase names no known structure; the message names the
/// three closest), `VXP_RESULT_INVALID_PROMPT` (label out of range, the object already named by text, or
/// the structure is not in this volume: nothing fits its prior, e.g. "left kidney" on a slab holding only
/// the right one), `VXP_RESULT_UNSUPPORTED` (a structure without a prior in this version: brain structures
/// without a brain atlas or on CT, lesions with no click or box on them, small structures; or an MR volume
/// for an object not started) or `VXP_RESULT_INVALID_VOLUME` (no body found in the volume, or the brain
/// atlas could not be registered). Nothing is added on error.
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
        // SAFETY: NULL or a C string, per the contract.
        let t = match unsafe { try_str(text, "text") } {
            Ok(t) => t,
            Err(r) => return r,
        };
        with_object(session, label, |s, l| done(s.add_text(l, t).map(|_| ())))
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
