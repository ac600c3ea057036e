//! Concepts: what a phrase names, and the vocabulary for completion, as JSON.

use std::ffi::c_char;

use super::engine::vxp_engine;
use super::error::{boundary, fail};
use super::handle::{copy_out, try_handle, try_str};
use super::result::vxp_result;
use crate::concept::report::{concepts_json, resolution_json};
use crate::concept::Domain;

/// Looks up what `phrase` names ("left kidney", "tumour of the liver", "HCC", "kidnye") and writes a JSON
/// object into `buf`: `text`, `name` (display), `concepts` (one, or a left/right pair when no side was
/// said; each with `id`, `name`, `side`, `region`, `parent`, `atlas`, `labels`, `snomed` {category, type,
/// modifier with meanings} and `color`), `lesion` (null or "lesion" | "tumor" | "nodule" | "cyst" |
/// "metastasis": then `concepts` is the organ it lies in), `modifiers` ("upper pole"…), `method` ("exact" |
/// "typo" | "embedding"), `score` and `alternatives`. Sides come from the words, never from a guess.
/// The buffer follows `vxp_last_error`'s rules: `*needed` (if not NULL) receives the length without the NUL.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT`, `VXP_RESULT_INVALID_ARGUMENT` (an empty or
/// blank phrase, or not UTF-8), `VXP_RESULT_UNKNOWN_CONCEPT` (the phrase names no known structure; the
/// message from `vxp_last_error` names the three closest concepts), `VXP_RESULT_BUFFER_TOO_SMALL` (buf
/// untouched) or `VXP_RESULT_INFERENCE` (the text encoder failed). Thread-safe.
///
/// # Safety
/// `engine` a live handle; `phrase` a NUL-terminated string; `buf` valid for `len` bytes (NULL with len 0
/// queries the size); `needed` NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn vxp_engine_lookup_concept(
    engine: *const vxp_engine,
    phrase: *const c_char,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> vxp_result {
    boundary(|| {
        // SAFETY: NULL or a live handle; NULL or a C string.
        let (e, text) = match unsafe { (try_handle(engine, "engine"), try_str(phrase, "phrase")) } {
            (Ok(e), Ok(t)) => (e, t),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        match e.inner.resolve(text, Domain::Any) {
            // SAFETY: forwarded buffer contract.
            Ok(r) => unsafe { copy_out(&resolution_json(&r, &e.inner.resolver.vocab), buf, len, needed) },
            Err(err) => fail(err),
        }
    })
}

/// Lists at most `limit` concepts whose display name or a term starts with `prefix` (case and accents
/// ignored; "" lists the vocabulary from the start), as a JSON array of the concept objects
/// `vxp_engine_lookup_concept` describes, display-name matches first: for a text field's completion.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT`, `VXP_RESULT_INVALID_ARGUMENT` (not UTF-8) or
/// `VXP_RESULT_BUFFER_TOO_SMALL` (buf untouched). Thread-safe.
///
/// # Safety
/// As `vxp_engine_lookup_concept`.
#[no_mangle]
pub unsafe extern "C" fn vxp_engine_complete_concepts(
    engine: *const vxp_engine,
    prefix: *const c_char,
    limit: u32,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> vxp_result {
    boundary(|| {
        // SAFETY: as above.
        let (e, p) = match unsafe { (try_handle(engine, "engine"), try_str(prefix, "prefix")) } {
            (Ok(e), Ok(t)) => (e, t),
            (Err(r), _) | (_, Err(r)) => return r,
        };
        let json = concepts_json(e.inner.resolver.vocab.complete(p, limit as usize));
        // SAFETY: forwarded buffer contract.
        unsafe { copy_out(&json, buf, len, needed) }
    })
}
