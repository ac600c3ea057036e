//! Engines: the ONNX Runtime plus one loaded model package. Shareable across threads.

use std::ffi::c_char;
use std::sync::Arc;

use super::error::{boundary, fail, null_arg, set_last_error};
use super::handle::{copy_out, register, release, try_handle, Handle, Kind};
use super::options::vxp_options;
use super::result::vxp_result;
use crate::engine::{Engine, EngineOptions};
use crate::model::SessionConfig;

/// A loaded engine. Create with `vxp_engine_new`, release with `vxp_engine_free`. Every function taking a
/// `const vxp_engine *` is safe to call from several threads at once; sessions keep the engine alive.
pub struct vxp_engine {
    pub(crate) inner: Arc<Engine>,
    /// Embedding cache budgets (memory, spill file) of each session made from this engine.
    pub(crate) cache_budget: usize,
    pub(crate) spill_budget: usize,
    /// The largest volume a session takes on, in voxels.
    pub(crate) max_voxels: u64,
}

impl Handle for vxp_engine {
    const KIND: Kind = Kind::Engine;
}

/// Builds an engine from `options`: loads ONNX Runtime (first engine of the process only; a later engine
/// must name the same library), verifies every model package's sha256 sums, checks each graph against its
/// manifest (names, element types, fixed dimensions) and creates its sessions. This
/// takes a fraction of a second on CPU. `options` is only read and stays owned by the caller.
///
/// On `VXP_RESULT_OK`, `*out` receives a handle the caller owns (`vxp_engine_free`). Otherwise `*out` is
/// untouched and the result is one of `VXP_RESULT_NULL_ARGUMENT`, `VXP_RESULT_INVALID_ARGUMENT` (no model
/// directory set; not exactly one spatial model, or two text encoders), `VXP_RESULT_UNSUPPORTED` (a package
/// of a kind this build declares but cannot run), `VXP_RESULT_RUNTIME_LOAD`, `VXP_RESULT_RUNTIME_VERSION`, `VXP_RESULT_RUNTIME_MISMATCH`,
/// `VXP_RESULT_MODEL_NOT_FOUND`, `VXP_RESULT_MODEL_INTEGRITY`, `VXP_RESULT_MODEL_CONTRACT`,
/// `VXP_RESULT_PROVIDER_UNAVAILABLE` (no requested provider registered and CPU fallback is off),
/// `VXP_RESULT_INFERENCE`, `VXP_RESULT_PANIC`. Thread-safe.
///
/// # Safety
/// `options` must be a live handle; `out` NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn vxp_engine_new(options: *const vxp_options, out: *mut *mut vxp_engine) -> vxp_result {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let o = match unsafe { try_handle(options, "options") } {
            Ok(o) => o,
            Err(r) => return r,
        };
        if out.is_null() {
            return null_arg("out");
        }
        if o.model_dirs.is_empty() {
            set_last_error("no model directory: call vxp_options_set_model_dir first");
            return vxp_result::InvalidArgument;
        }
        let opts = EngineOptions {
            ort_library: o.ort_library.clone(),
            model_dirs: o.model_dirs.clone(),
            session: SessionConfig {
                providers: o.providers.clone(),
                threads: o.threads,
                strict: !o.cpu_fallback,
                precision: o.precision,
                openvino_library: o.openvino_library.clone(),
            },
            brain_atlas: o.brain_atlas.clone(),
        };
        match Engine::new(&opts) {
            Ok(e) => {
                let h = Box::new(vxp_engine {
                    inner: Arc::new(e),
                    cache_budget: o.cache_budget,
                    spill_budget: o.spill_budget,
                    max_voxels: o.max_voxels,
                });
                // SAFETY: out checked non-null.
                unsafe { *out = register(h) };
                vxp_result::Ok
            }
            Err(e) => fail(e),
        }
    })
}

/// Releases an engine handle. NULL is fine. Sessions created from it stay valid until freed. An engine freed
/// already is ignored, and every later call with it returns `VXP_RESULT_INVALID_HANDLE`.
///
/// # Safety
/// `engine` must be NULL or a live handle from `vxp_engine_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn vxp_engine_free(engine: *mut vxp_engine) {
    let _ = boundary(|| {
        // SAFETY: NULL, or a handle not in use elsewhere, per the contract.
        drop(unsafe { release(engine, "engine") });
        vxp_result::Ok
    });
}

/// Copies a description of the execution provider that really runs the model into `buf`: its name ("cpu",
/// "cuda", "tensorrt" or "openvino"), then " (bf16)" when its encoder computes below f32 (fast mode), then,
/// when requested providers were skipped, "; " and each reason.
/// `*needed` (if not NULL) receives the full length without the NUL, also when the buffer is too small.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_BUFFER_TOO_SMALL` (buf untouched).
/// Thread-safe.
///
/// # Safety
/// `engine` a live handle; `buf` valid for `len` bytes (NULL with len 0 queries the size); `needed` NULL or
/// valid.
#[no_mangle]
pub unsafe extern "C" fn vxp_engine_provider(
    engine: *const vxp_engine,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> vxp_result {
    boundary(|| {
        // SAFETY: NULL or a live handle.
        let e = match unsafe { try_handle(engine, "engine") } {
            Ok(e) => e,
            Err(r) => return r,
        };
        let mut s = e.inner.provider().name().to_string();
        if e.inner.encoder_precision() != "f32" {
            s.push_str(&format!(" ({})", e.inner.encoder_precision()));
        }
        for r in e.inner.fallback_reasons() {
            s.push_str("; ");
            s.push_str(r);
        }
        // SAFETY: forwarded buffer contract.
        unsafe { copy_out(&s, buf, len, needed) }
    })
}
