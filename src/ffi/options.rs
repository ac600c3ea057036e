//! Engine options: built with setters, then frozen into an engine by `vxp_engine_new`.

use std::ffi::c_char;
use std::path::PathBuf;

use super::error::{boundary, fail, null_arg};
use super::handle::{register, release, try_handle_mut, try_str, Handle, Kind};
use super::result::vxp_result;
use crate::model::{Precision, Provider};

/// Options for `vxp_engine_new`. Create with `vxp_options_new`, release with `vxp_options_free`.
/// One thread at a time.
pub struct vxp_options {
    pub(crate) ort_library: Option<PathBuf>,
    /// The spatial model's package first (set), then further packages (added).
    pub(crate) model_dirs: Vec<PathBuf>,
    pub(crate) providers: Vec<Provider>,
    pub(crate) threads: usize,
    pub(crate) cache_budget: usize,
    pub(crate) spill_budget: usize,
    pub(crate) max_voxels: u64,
    pub(crate) cpu_fallback: bool,
    pub(crate) brain_atlas: Option<crate::engine::BrainAtlasFiles>,
    pub(crate) precision: Precision,
    pub(crate) openvino_library: Option<PathBuf>,
}

impl Handle for vxp_options {
    const KIND: Kind = Kind::Options;
}

/// Creates options with the defaults: ONNX Runtime from `VXP_ORT_LIB` or next to libvoxprompt.so, no model
/// directory (must be set), providers "cpu" with CPU fallback on, all cores, and per session an embedding
/// cache of 128 MiB in memory over a spill file of up to 4 GiB.
///
/// On `VXP_RESULT_OK`, `*out` receives a new handle the caller owns and must release with
/// `vxp_options_free`. Returns `VXP_RESULT_NULL_ARGUMENT` if `out` is NULL (nothing written).
///
/// # Safety
/// `out` must be NULL or valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_new(out: *mut *mut vxp_options) -> vxp_result {
    boundary(|| {
        if out.is_null() {
            return null_arg("out");
        }
        let o = Box::new(vxp_options {
            ort_library: None,
            model_dirs: Vec::new(),
            providers: vec![Provider::Cpu],
            threads: 0,
            cache_budget: crate::session::SessionOptions::default().cache_budget,
            spill_budget: crate::session::SessionOptions::default().spill_budget,
            max_voxels: crate::session::SessionOptions::default().max_voxels,
            cpu_fallback: true,
            brain_atlas: None,
            precision: Precision::Exact,
            openvino_library: None,
        });
        // SAFETY: out checked non-null.
        unsafe { *out = register(o) };
        vxp_result::Ok
    })
}

/// Releases options. NULL is fine. The pointer must not be used afterwards: a second free is ignored and
/// other calls with it return `VXP_RESULT_INVALID_HANDLE`.
///
/// # Safety
/// `options` must be NULL or a handle from `vxp_options_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_free(options: *mut vxp_options) {
    let _ = boundary(|| {
        // SAFETY: NULL, or a handle not in use elsewhere, per the contract.
        drop(unsafe { release(options, "options") });
        vxp_result::Ok
    });
}

unsafe fn with_options(options: *mut vxp_options, f: impl FnOnce(&mut vxp_options) -> vxp_result) -> vxp_result {
    boundary(|| {
        // SAFETY: NULL, stale or a live handle, per the callers' contracts.
        match unsafe { try_handle_mut(options, "options") } {
            Ok(o) => f(o),
            Err(r) => r,
        }
    })
}

/// Sets the absolute path of the ONNX Runtime library (`libonnxruntime.so.1.*`, version ≥ 1.31). NULL
/// restores the default search (`VXP_ORT_LIB`, then next to libvoxprompt.so). The string is copied.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` (options NULL) or `VXP_RESULT_INVALID_ARGUMENT`
/// (not UTF-8).
///
/// # Safety
/// `options` must be a live handle; `path` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_ort_library(options: *mut vxp_options, path: *const c_char) -> vxp_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_options(options, |o| {
            if path.is_null() {
                o.ort_library = None;
                return vxp_result::Ok;
            }
            match try_str(path, "path") {
                Ok(p) => {
                    o.ort_library = Some(PathBuf::from(p));
                    vxp_result::Ok
                }
                Err(r) => r,
            }
        })
    }
}

/// Sets the brain atlas that text prompts naming brain structures on MR use: `template` a T1 template
/// (nilearn's MNI ICBM152 2009a, `mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz`) and `labels` a label
/// volume on the atlas grid (covale's FreeSurfer `aseg-auto.nii.gz`), both NIfTI, read by `vxp_engine_new`.
/// The template is registered onto a session's volume at its first brain text prompt. Both NULL removes the
/// atlas (the default: brain structures are then `VXP_RESULT_UNSUPPORTED` by text). The strings are copied.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` (options NULL, or one path NULL and not the other) or
/// `VXP_RESULT_INVALID_ARGUMENT` (not UTF-8).
///
/// # Safety
/// `options` must be a live handle; `template` and `labels` NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_brain_atlas(
    options: *mut vxp_options,
    template: *const c_char,
    labels: *const c_char,
) -> vxp_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_options(options, |o| {
            if template.is_null() && labels.is_null() {
                o.brain_atlas = None;
                return vxp_result::Ok;
            }
            match (try_str(template, "template"), try_str(labels, "labels")) {
                (Ok(t), Ok(l)) => {
                    o.brain_atlas =
                        Some(crate::engine::BrainAtlasFiles { template: PathBuf::from(t), labels: PathBuf::from(l) });
                    vxp_result::Ok
                }
                (Err(r), _) | (_, Err(r)) => r,
            }
        })
    }
}

/// Sets the model package directory (the folder holding `manifest.toml`), replacing every package set or
/// added before. The string is copied.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (not UTF-8).
///
/// # Safety
/// `options` must be a live handle; `dir` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_model_dir(options: *mut vxp_options, dir: *const c_char) -> vxp_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_options(options, |o| match try_str(dir, "dir") {
            Ok(d) => {
                o.model_dirs = vec![PathBuf::from(d)];
                vxp_result::Ok
            }
            Err(r) => r,
        })
    }
}

/// Adds one more model package directory to those `vxp_options_set_model_dir` set, e.g. a text encoder
/// next to the spatial model. An engine takes exactly one spatial model (kind `sam2d`) and at most one
/// text encoder (kind `text_encoder`); `vxp_engine_new` refuses any other set with
/// `VXP_RESULT_INVALID_ARGUMENT`, and a kind this build declares but cannot run with
/// `VXP_RESULT_UNSUPPORTED`. The string is copied. Since ABI 0.5.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (not UTF-8).
///
/// # Safety
/// `options` must be a live handle; `dir` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_add_model_dir(options: *mut vxp_options, dir: *const c_char) -> vxp_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_options(options, |o| match try_str(dir, "dir") {
            Ok(d) => {
                o.model_dirs.push(PathBuf::from(d));
                vxp_result::Ok
            }
            Err(r) => r,
        })
    }
}

/// Sets the execution providers in order of preference, comma-separated: "cpu", "cuda", "tensorrt",
/// "openvino" (e.g. "tensorrt,cuda,cpu"). A provider that cannot be used is skipped with a reason the engine
/// reports (`vxp_engine_provider`); when none registers, the engine runs on CPU unless
/// `vxp_options_set_cpu_fallback` turned that off. "openvino" (ABI 0.10) runs the image encoder on
/// OpenVINO's CPU plugin (`vxp_options_set_openvino_library`) and the other graphs on ONNX Runtime's CPU
/// provider; it is used only where it is faster at the same masks, which BENCHMARKS.md measures.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (unknown name;
/// the options are unchanged).
///
/// # Safety
/// `options` must be a live handle; `providers` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_providers(options: *mut vxp_options, providers: *const c_char) -> vxp_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_options(options, |o| match try_str(providers, "providers") {
            Ok(s) => match s.split(',').map(Provider::parse).collect::<crate::Result<Vec<_>>>() {
                Ok(v) => {
                    o.providers = v;
                    vxp_result::Ok
                }
                Err(e) => fail(e),
            },
            Err(r) => r,
        })
    }
}

/// Sets how exactly the encoder computes: "exact" (the default: fp32, the reference's masks) or "fast"
/// (lower precision where the provider has it: bf16 on OpenVINO on CPUs with bf16; other providers run
/// exact). Fast mode changes masks: BENCHMARKS.md measures it against exact mode, and on bf16 it does not
/// keep every target within the accuracy gate, so it is experimental. `vxp_engine_provider` says " (bf16)"
/// after the provider's name when that is what runs. Added in ABI 0.10.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_NULL_ARGUMENT` or `VXP_RESULT_INVALID_ARGUMENT` (unknown name;
/// the options are unchanged).
///
/// # Safety
/// `options` must be a live handle; `precision` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_precision(options: *mut vxp_options, precision: *const c_char) -> vxp_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_options(options, |o| match try_str(precision, "precision") {
            Ok(s) => match Precision::parse(s) {
                Ok(p) => {
                    o.precision = p;
                    vxp_result::Ok
                }
                Err(e) => fail(e),
            },
            Err(r) => r,
        })
    }
}

/// Sets the path of OpenVINO's C library (`libopenvino_c.so.2640`, from the `openvino` wheel's `libs/`
/// folder; its core, CPU plugin, ONNX front end and oneTBB must lie next to it) for the "openvino" provider.
/// Default: `VXP_OPENVINO_LIB`, else the library next to libvoxprompt.so. One OpenVINO per process: an
/// engine asking for another one than the first falls back with that reason. Added in ABI 0.10.
///
/// Returns `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `options` must be a live handle; `path` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_openvino_library(
    options: *mut vxp_options,
    path: *const c_char,
) -> vxp_result {
    // SAFETY: forwarded contracts.
    unsafe {
        with_options(options, |o| match try_str(path, "path") {
            Ok(p) => {
                o.openvino_library = Some(PathBuf::from(p));
                vxp_result::Ok
            }
            Err(r) => r,
        })
    }
}

/// Sets the engine's total thread count (0 = all cores). With two or more, the engine runs two workers (the
/// slices above and below the middle slice concurrently), each with `threads / 2` intra-op threads; the
/// decoder that refines objects after new points runs alone, with all of them.
///
/// Returns `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `options` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_threads(options: *mut vxp_options, threads: u32) -> vxp_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_options(options, |o| {
            o.threads = threads as usize;
            vxp_result::Ok
        })
    }
}

/// Sets the memory budget of the embedding cache of each session made by engines built from these options,
/// in bytes (default 128 MiB; one LiteMedSAM slice embedding takes 4 MiB). Beyond it the least recently
/// used embeddings go to the session's spill file (`vxp_options_set_spill_budget`), or are dropped without
/// one and encoded again when needed. A budget too small for one embedding makes `vxp_session_new` fail
/// with `VXP_RESULT_BUDGET_TOO_SMALL`.
///
/// Returns `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `options` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_cache_budget(options: *mut vxp_options, bytes: usize) -> vxp_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_options(options, |o| {
            o.cache_budget = bytes;
            vxp_result::Ok
        })
    }
}

/// Sets the disk budget, in bytes, of each session's spill file: the embeddings the memory budget evicts
/// are written there and read back (about a millisecond per slice) instead of encoded again (one to two
/// seconds), so that no slice is encoded twice in a session while both budgets hold it. The file is created
/// already unlinked in the temporary directory (`TMPDIR`): nothing of it is left on disk when the session
/// ends, or when the process does, however it ends. Default 4 GiB (1024 LiteMedSAM slices); 0 turns the
/// spill file off. When the file cannot be made, sessions work without it; with the default memory budget
/// they then hold 1 GiB in memory instead. Added in ABI 0.8.
///
/// Returns `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `options` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_spill_budget(options: *mut vxp_options, bytes: usize) -> vxp_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_options(options, |o| {
            o.spill_budget = bytes;
            vxp_result::Ok
        })
    }
}

/// Sets the largest volume, in voxels, that sessions made by engines built from these options take on:
/// `vxp_session_new` refuses a larger one with `VXP_RESULT_TOO_LARGE` before it allocates anything for it.
/// A session keeps about ten bytes per voxel next to the host's array, so the default is a sixteenth of the
/// machine's physical memory in voxels (at least 64 Mi voxels). 0 restores the default. Added in ABI 0.7.
///
/// Returns `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `options` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_max_voxels(options: *mut vxp_options, voxels: u64) -> vxp_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_options(options, |o| {
            o.max_voxels = if voxels == 0 { crate::session::SessionOptions::default().max_voxels } else { voxels };
            vxp_result::Ok
        })
    }
}

/// Chooses what happens when none of the requested execution providers registers (e.g. "cuda" with an ONNX
/// Runtime build or a machine without CUDA): `true` (the default) runs on CPU and reports why
/// (`vxp_engine_provider`); `false` makes `vxp_engine_new` fail with `VXP_RESULT_PROVIDER_UNAVAILABLE`, for
/// hosts that would rather stop than run many times slower. "cpu" in the provider list always registers.
/// Added in ABI 0.4.
///
/// Returns `VXP_RESULT_OK` or `VXP_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `options` must be a live handle.
#[no_mangle]
pub unsafe extern "C" fn vxp_options_set_cpu_fallback(options: *mut vxp_options, fallback: bool) -> vxp_result {
    // SAFETY: forwarded contract.
    unsafe {
        with_options(options, |o| {
            o.cpu_fallback = fallback;
            vxp_result::Ok
        })
    }
}
