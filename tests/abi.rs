//! Drives the built libvoxprompt.so through its C ABI with libloading, exactly as a host does: every
//! export, the error paths, and out-parameters left untouched on error.

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use libloading::{Library, Symbol};
use voxprompt::io::read_volume;
use voxprompt::volume::Volume;

const OK: u32 = 0;
const NULL_ARGUMENT: u32 = 100;
const INVALID_ARGUMENT: u32 = 101;
const UNSUPPORTED_DTYPE: u32 = 103;
const BUFFER_TOO_SMALL: u32 = 104;
const INVALID_VOLUME: u32 = 105;
const INVALID_PROMPT: u32 = 106;
const UNSUPPORTED: u32 = 108;
const UNKNOWN_CONCEPT: u32 = 107;
const NOTHING_TO_UNDO: u32 = 109;
const SHAPE_MISMATCH: u32 = 102;
const MODEL_NOT_FOUND: u32 = 200;
const BUDGET_TOO_SMALL: u32 = 403;
const CANCELLED: u32 = 400;
const PROVIDER_UNAVAILABLE: u32 = 303;

#[repr(C)]
#[derive(Clone, Copy)]
struct VxpVolume {
    struct_size: u32,
    dtype: u32,
    data: *const c_void,
    data_len: usize,
    data_offset: usize,
    dims: [usize; 3],
    strides: [i64; 3],
    spacing: [f64; 3],
    ijk_to_ras: [f64; 16],
    intensity: u32,
    window_level: f64,
    window_width: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct VxpRunStats {
    struct_size: u32,
    slices_encoded: u64,
    slices_decoded: u64,
    decoder_runs: u64,
    objects_full: u32,
    objects_refined: u32,
    objects_unchanged: u32,
    cache_entries: u64,
    cache_bytes: u64,
    seconds: f64,
}

type Opaque = c_void;
type ProgressFn = Option<unsafe extern "C" fn(*mut c_void, u32, f32) -> bool>;

struct Api {
    _lib: &'static Library,
    version: Symbol<'static, unsafe extern "C" fn() -> *const c_char>,
    abi_version: Symbol<'static, unsafe extern "C" fn(*mut u32, *mut u32) -> u32>,
    last_error: Symbol<'static, unsafe extern "C" fn(*mut c_char, usize, *mut usize) -> u32>,
    result_str: Symbol<'static, unsafe extern "C" fn(u32) -> *const c_char>,
    options_new: Symbol<'static, unsafe extern "C" fn(*mut *mut Opaque) -> u32>,
    options_free: Symbol<'static, unsafe extern "C" fn(*mut Opaque)>,
    options_set_ort_library: Symbol<'static, unsafe extern "C" fn(*mut Opaque, *const c_char) -> u32>,
    options_set_model_dir: Symbol<'static, unsafe extern "C" fn(*mut Opaque, *const c_char) -> u32>,
    options_add_model_dir: Symbol<'static, unsafe extern "C" fn(*mut Opaque, *const c_char) -> u32>,
    options_set_providers: Symbol<'static, unsafe extern "C" fn(*mut Opaque, *const c_char) -> u32>,
    options_set_threads: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32) -> u32>,
    engine_new: Symbol<'static, unsafe extern "C" fn(*const Opaque, *mut *mut Opaque) -> u32>,
    engine_free: Symbol<'static, unsafe extern "C" fn(*mut Opaque)>,
    engine_provider: Symbol<'static, unsafe extern "C" fn(*const Opaque, *mut c_char, usize, *mut usize) -> u32>,
    session_new: Symbol<'static, unsafe extern "C" fn(*const Opaque, *const VxpVolume, *mut *mut Opaque) -> u32>,
    session_free: Symbol<'static, unsafe extern "C" fn(*mut Opaque)>,
    add_box_ijk: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32, *const i64) -> u32>,
    add_box_ras: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32, *const f64) -> u32>,
    add_point_ijk: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32, *const i64, bool) -> u32>,
    add_text: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32, *const c_char) -> u32>,
    remove_object: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32) -> u32>,
    clear_prompts: Symbol<'static, unsafe extern "C" fn(*mut Opaque) -> u32>,
    cancel: Symbol<'static, unsafe extern "C" fn(*const Opaque) -> u32>,
    run: Symbol<'static, unsafe extern "C" fn(*mut Opaque, ProgressFn, *mut c_void, *mut u8, usize, *const i64) -> u32>,
    #[allow(clippy::type_complexity)]
    run_confidence: Symbol<
        'static,
        unsafe extern "C" fn(
            *mut Opaque,
            ProgressFn,
            *mut c_void,
            *mut u8,
            usize,
            *const i64,
            *mut f32,
            usize,
            *const i64,
        ) -> u32,
    >,
    options_set_cache_budget: Symbol<'static, unsafe extern "C" fn(*mut Opaque, usize) -> u32>,
    add_point_ras: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32, *const f64, bool) -> u32>,
    remove_point_ijk: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32, *const i64) -> u32>,
    set_seed_mask:
        Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32, *const u8, usize, *const usize, *const i64) -> u32>,
    set_policy: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32) -> u32>,
    set_axis: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32) -> u32>,
    set_overlap: Symbol<'static, unsafe extern "C" fn(*mut Opaque, u32) -> u32>,
    set_postprocess: Symbol<'static, unsafe extern "C" fn(*mut Opaque, bool, bool, u64) -> u32>,
    undo: Symbol<'static, unsafe extern "C" fn(*mut Opaque) -> u32>,
    redo: Symbol<'static, unsafe extern "C" fn(*mut Opaque) -> u32>,
    last_stats: Symbol<'static, unsafe extern "C" fn(*const Opaque, *mut VxpRunStats) -> u32>,
    result_name: Symbol<'static, unsafe extern "C" fn(u32) -> *const c_char>,
    options_set_cpu_fallback: Symbol<'static, unsafe extern "C" fn(*mut Opaque, bool) -> u32>,
    lookup_concept:
        Symbol<'static, unsafe extern "C" fn(*const Opaque, *const c_char, *mut c_char, usize, *mut usize) -> u32>,
    #[allow(clippy::type_complexity)]
    complete_concepts:
        Symbol<'static, unsafe extern "C" fn(*const Opaque, *const c_char, u32, *mut c_char, usize, *mut usize) -> u32>,
}

fn api() -> &'static Api {
    static API: once_cell::sync::OnceCell<Api> = once_cell::sync::OnceCell::new();
    API.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let so = exe.parent().unwrap().parent().unwrap().join("libvoxprompt.so");
        // SAFETY: loading our own library.
        let lib: &'static Library =
            Box::leak(Box::new(unsafe { Library::new(&so) }.unwrap_or_else(|e| panic!("{}: {e}", so.display()))));
        macro_rules! sym {
            ($n:literal) => {
                // SAFETY: the signatures mirror include/voxprompt.h.
                unsafe { lib.get(concat!($n, "\0").as_bytes()) }.expect($n)
            };
        }
        Api {
            _lib: lib,
            version: sym!("vxp_version"),
            abi_version: sym!("vxp_abi_version"),
            last_error: sym!("vxp_last_error"),
            result_str: sym!("vxp_result_str"),
            options_new: sym!("vxp_options_new"),
            options_free: sym!("vxp_options_free"),
            options_set_ort_library: sym!("vxp_options_set_ort_library"),
            options_set_model_dir: sym!("vxp_options_set_model_dir"),
            options_add_model_dir: sym!("vxp_options_add_model_dir"),
            options_set_providers: sym!("vxp_options_set_providers"),
            options_set_threads: sym!("vxp_options_set_threads"),
            engine_new: sym!("vxp_engine_new"),
            engine_free: sym!("vxp_engine_free"),
            engine_provider: sym!("vxp_engine_provider"),
            session_new: sym!("vxp_session_new"),
            session_free: sym!("vxp_session_free"),
            add_box_ijk: sym!("vxp_session_add_box_ijk"),
            add_box_ras: sym!("vxp_session_add_box_ras"),
            add_point_ijk: sym!("vxp_session_add_point_ijk"),
            add_text: sym!("vxp_session_add_text"),
            remove_object: sym!("vxp_session_remove_object"),
            clear_prompts: sym!("vxp_session_clear_prompts"),
            cancel: sym!("vxp_session_cancel"),
            run: sym!("vxp_session_run"),
            run_confidence: sym!("vxp_session_run_confidence"),
            options_set_cache_budget: sym!("vxp_options_set_cache_budget"),
            add_point_ras: sym!("vxp_session_add_point_ras"),
            remove_point_ijk: sym!("vxp_session_remove_point_ijk"),
            set_seed_mask: sym!("vxp_session_set_seed_mask"),
            set_policy: sym!("vxp_session_set_policy"),
            set_axis: sym!("vxp_session_set_axis"),
            set_overlap: sym!("vxp_session_set_overlap"),
            set_postprocess: sym!("vxp_session_set_postprocess"),
            undo: sym!("vxp_session_undo"),
            redo: sym!("vxp_session_redo"),
            last_stats: sym!("vxp_session_last_stats"),
            result_name: sym!("vxp_result_name"),
            options_set_cpu_fallback: sym!("vxp_options_set_cpu_fallback"),
            lookup_concept: sym!("vxp_engine_lookup_concept"),
            complete_concepts: sym!("vxp_engine_complete_concepts"),
        }
    })
}

fn last_error() -> String {
    let a = api();
    let mut buf = vec![0 as c_char; 4096];
    let mut needed = 0usize;
    // SAFETY: buffer of 4096 bytes.
    unsafe { (a.last_error)(buf.as_mut_ptr(), buf.len(), &mut needed) };
    // SAFETY: NUL-terminated by the library.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A sentinel that no real handle has: out-params must keep it on error.
const SENTINEL: *mut Opaque = 0x5a5a_5a50 as *mut Opaque;

fn engine() -> *mut Opaque {
    static ENGINE_PTR: once_cell::sync::OnceCell<usize> = once_cell::sync::OnceCell::new();
    *ENGINE_PTR.get_or_init(|| {
        let a = api();
        let mut o = ptr::null_mut();
        unsafe {
            assert_eq!((a.options_new)(&mut o), OK);
            assert_eq!((a.options_set_ort_library)(o, cstr(ort_lib().to_str().unwrap()).as_ptr()), OK);
            assert_eq!((a.options_set_model_dir)(o, cstr(model_dir().to_str().unwrap()).as_ptr()), OK);
            assert_eq!((a.options_set_threads)(o, 2), OK);
            let mut e = SENTINEL;
            assert_eq!((a.engine_new)(o, &mut e), OK, "{}", last_error());
            (a.options_free)(o);
            e as usize
        }
    }) as *mut Opaque
}

fn descriptor(v: &Volume) -> VxpVolume {
    let s = v.dtype.size() as i64;
    let m = v.geometry.ijk_to_ras;
    VxpVolume {
        struct_size: std::mem::size_of::<VxpVolume>() as u32,
        dtype: 4, // I16
        data: v.data.as_ptr().cast(),
        data_len: v.data.len(),
        data_offset: 0,
        dims: v.dims,
        strides: [s, s * v.dims[0] as i64, s * (v.dims[0] * v.dims[1]) as i64],
        spacing: v.geometry.spacing,
        ijk_to_ras: [m[0], m[1], m[2], m[3]].concat().try_into().unwrap(),
        intensity: 1, // CT
        window_level: 0.0,
        window_width: 0.0,
    }
}

#[test]
fn versions_and_error_strings() {
    let a = api();
    unsafe {
        let v = CStr::from_ptr((a.version)()).to_str().unwrap();
        assert!(v.starts_with("voxprompt 0.1.0"), "{v}");
        let (mut major, mut minor) = (77u32, 77u32);
        assert_eq!((a.abi_version)(ptr::null_mut(), &mut minor), NULL_ARGUMENT);
        assert_eq!(minor, 77, "untouched on error");
        assert_eq!((a.abi_version)(&mut major, &mut minor), OK);
        assert_eq!((major, minor), (0, voxprompt::ffi::version::VXP_ABI_VERSION_MINOR));
        assert_eq!(CStr::from_ptr((a.result_str)(INVALID_PROMPT)).to_str().unwrap(), "invalid prompt");
        assert_eq!(CStr::from_ptr((a.result_str)(12345)).to_str().unwrap(), "unknown result code");
        // last_error: size query, truncation, NULL buffer.
        assert_eq!((a.options_new)(ptr::null_mut()), NULL_ARGUMENT);
        let mut needed = 0usize;
        assert_eq!((a.last_error)(ptr::null_mut(), 0, &mut needed), BUFFER_TOO_SMALL);
        assert_eq!(needed, "out is NULL".len());
        let mut small = [0x7f as c_char; 4];
        assert_eq!((a.last_error)(small.as_mut_ptr(), 4, ptr::null_mut()), BUFFER_TOO_SMALL);
        assert_eq!(CStr::from_ptr(small.as_ptr()).to_str().unwrap(), "out");
        assert_eq!((a.last_error)(ptr::null_mut(), 5, ptr::null_mut()), NULL_ARGUMENT);
    }
}

#[test]
fn options_and_engine_errors_leave_out_params_untouched() {
    let a = api();
    unsafe {
        let mut o = ptr::null_mut();
        assert_eq!((a.options_new)(&mut o), OK);
        assert_eq!((a.options_set_providers)(o, cstr("cpu,quantum").as_ptr()), INVALID_ARGUMENT);
        assert!(last_error().contains("quantum"), "{}", last_error());
        assert_eq!((a.options_set_providers)(ptr::null_mut(), cstr("cpu").as_ptr()), NULL_ARGUMENT);
        assert_eq!((a.options_set_model_dir)(o, ptr::null()), NULL_ARGUMENT);
        let mut e = SENTINEL;
        assert_eq!((a.engine_new)(o, &mut e), INVALID_ARGUMENT);
        assert!(last_error().contains("model directory"), "{}", last_error());
        assert_eq!(e, SENTINEL);
        assert_eq!((a.options_set_ort_library)(o, cstr(ort_lib().to_str().unwrap()).as_ptr()), OK);
        assert_eq!((a.options_set_model_dir)(o, cstr("/nonexistent/model").as_ptr()), OK);
        assert_eq!((a.engine_new)(o, &mut e), MODEL_NOT_FOUND);
        assert!(last_error().contains("/nonexistent/model"), "{}", last_error());
        assert_eq!(e, SENTINEL);
        assert_eq!((a.engine_new)(ptr::null(), &mut e), NULL_ARGUMENT);
        assert_eq!((a.engine_new)(o, ptr::null_mut()), NULL_ARGUMENT);
        (a.options_free)(o);
        (a.options_free)(ptr::null_mut());
        (a.engine_free)(ptr::null_mut());
        (a.session_free)(ptr::null_mut());

        let mut buf = [0 as c_char; 64];
        let mut needed = 0;
        assert_eq!((a.engine_provider)(engine(), buf.as_mut_ptr(), buf.len(), &mut needed), OK);
        assert_eq!(CStr::from_ptr(buf.as_ptr()).to_str().unwrap(), "cpu");
        assert_eq!(needed, 3);
        assert_eq!((a.engine_provider)(engine(), buf.as_mut_ptr(), 2, &mut needed), BUFFER_TOO_SMALL);
    }
}

#[test]
fn result_names_are_the_header_enumerators() {
    let a = api();
    unsafe {
        assert_eq!(CStr::from_ptr((a.result_name)(INVALID_PROMPT)).to_str().unwrap(), "VXP_RESULT_INVALID_PROMPT");
        assert_eq!(CStr::from_ptr((a.result_name)(CANCELLED)).to_str().unwrap(), "VXP_RESULT_CANCELLED");
        assert!((a.result_name)(12345).is_null());
    }
}

#[test]
fn without_cpu_fallback_an_unavailable_provider_fails_the_engine() {
    let a = api();
    unsafe {
        let mut o = ptr::null_mut();
        assert_eq!((a.options_new)(&mut o), OK);
        assert_eq!((a.options_set_ort_library)(o, cstr(ort_lib().to_str().unwrap()).as_ptr()), OK);
        assert_eq!((a.options_set_model_dir)(o, cstr(model_dir().to_str().unwrap()).as_ptr()), OK);
        assert_eq!((a.options_set_threads)(o, 1), OK);
        assert_eq!((a.options_set_providers)(o, cstr("cuda").as_ptr()), OK);
        assert_eq!((a.options_set_cpu_fallback)(ptr::null_mut(), false), NULL_ARGUMENT);
        // The default falls back to CPU (on a machine or ONNX Runtime build without CUDA).
        let mut e = SENTINEL;
        assert_eq!((a.engine_new)(o, &mut e), OK, "{}", last_error());
        let mut buf = [0 as c_char; 512];
        assert_eq!((a.engine_provider)(e, buf.as_mut_ptr(), buf.len(), ptr::null_mut()), OK);
        let provider = CStr::from_ptr(buf.as_ptr()).to_str().unwrap().to_string();
        (a.engine_free)(e);
        assert_eq!((a.options_set_cpu_fallback)(o, false), OK);
        let mut strict = SENTINEL;
        let r = (a.engine_new)(o, &mut strict);
        if provider.starts_with("cpu") {
            assert!(provider.contains("cuda"), "the reason CUDA was skipped: {provider}");
            assert_eq!(r, PROVIDER_UNAVAILABLE, "{}", last_error());
            assert!(last_error().contains("cuda"), "{}", last_error());
            assert_eq!(strict, SENTINEL, "untouched on error");
        } else {
            // CUDA registered, so nothing had to fall back.
            assert_eq!(r, OK, "{}", last_error());
            (a.engine_free)(strict);
        }
        // CPU in the list is a requested provider, not a fallback.
        assert_eq!((a.options_set_providers)(o, cstr("cuda,cpu").as_ptr()), OK);
        let mut listed = SENTINEL;
        assert_eq!((a.engine_new)(o, &mut listed), OK, "{}", last_error());
        assert_ne!(listed, SENTINEL);
        (a.engine_free)(listed);
        (a.options_free)(o);
    }
}

#[test]
fn bad_volumes_are_refused() {
    let a = api();
    let v = read_volume(&data("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap().volume;
    let good = descriptor(&v);
    let mut nan = [0f32; 8];
    nan[3] = f32::NAN;
    let cases: Vec<(VxpVolume, u32, &str)> = vec![
        (VxpVolume { struct_size: 8, ..good }, INVALID_ARGUMENT, "struct_size"),
        (VxpVolume { dtype: 99, ..good }, UNSUPPORTED_DTYPE, "dtype 99"),
        (VxpVolume { dims: [0, 101, 30], ..good }, INVALID_VOLUME, "zero-sized"),
        (VxpVolume { dims: [usize::MAX / 2, 4, 4], ..good }, INVALID_VOLUME, "overflow"),
        (VxpVolume { data_len: good.data_len - 2, ..good }, INVALID_VOLUME, "outside the buffer"),
        (VxpVolume { strides: [2, 244, 99999], ..good }, INVALID_VOLUME, "outside the buffer"),
        (VxpVolume { data: ptr::null(), ..good }, NULL_ARGUMENT, "data"),
        (VxpVolume { intensity: 9, ..good }, INVALID_ARGUMENT, "intensity 9"),
        (VxpVolume { spacing: [0.0, 1.0, 1.0], ..good }, INVALID_VOLUME, "spacing"),
        (
            VxpVolume {
                dtype: 7,
                data: nan.as_ptr().cast(),
                data_len: 32,
                dims: [2, 2, 2],
                strides: [4, 8, 16],
                ..good
            },
            INVALID_VOLUME,
            "NaN",
        ),
    ];
    for (d, code, needle) in cases {
        let mut s = SENTINEL;
        let r = unsafe { (a.session_new)(engine(), &d, &mut s) };
        assert_eq!(r, code, "{needle}: {}", last_error());
        assert!(last_error().contains(needle), "{needle}: {}", last_error());
        assert_eq!(s, SENTINEL, "{needle}: out untouched");
    }
}

unsafe extern "C" fn count_progress(user: *mut c_void, stage: u32, f: f32) -> bool {
    assert_eq!(stage, 1);
    assert!((0.0..=1.0).contains(&f));
    let n = unsafe { &*(user as *const std::sync::atomic::AtomicUsize) };
    n.fetch_add(1, Ordering::SeqCst);
    true
}

unsafe extern "C" fn stop_progress(_user: *mut c_void, _stage: u32, _f: f32) -> bool {
    false
}

#[test]
fn segments_a_real_volume_through_the_abi() {
    let a = api();
    let v = read_volume(&data("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap().volume;
    let labels = read_volume(&data("tests/fixtures/data/example_seg.nii.gz")).unwrap().volume.to_f64().unwrap();
    let d = descriptor(&v);
    unsafe {
        let mut s = SENTINEL;
        assert_eq!((a.session_new)(engine(), &d, &mut s), OK, "{}", last_error());
        let n = v.dims.iter().product::<usize>();
        let strides = [1i64, v.dims[0] as i64, (v.dims[0] * v.dims[1]) as i64];

        // Prompts: errors first, nothing added.
        for (b, needle) in [
            ([23i64, 27, 0, 44, 49, 30], "outside the volume"),
            ([44, 27, 0, 23, 49, 22], "inverted"),
            ([-1, 27, 0, 44, 49, 22], "negative"),
        ] {
            assert_eq!((a.add_box_ijk)(s, 3, b.as_ptr()), INVALID_PROMPT);
            assert!(last_error().contains(needle), "{}", last_error());
        }
        assert_eq!((a.add_box_ijk)(s, 0, [23i64, 27, 0, 44, 49, 22].as_ptr()), INVALID_PROMPT);
        assert_eq!((a.add_box_ijk)(s, 3, ptr::null()), NULL_ARGUMENT);
        assert_eq!((a.add_point_ijk)(s, 3, [30i64, 30, 40].as_ptr(), true), INVALID_PROMPT, "point outside");
        assert_eq!((a.add_point_ijk)(s, 3, [30i64, -1, 10].as_ptr(), true), INVALID_PROMPT);
        assert_eq!((a.add_point_ijk)(s, 3, ptr::null(), true), NULL_ARGUMENT);
        assert_eq!((a.add_text)(s, 3, cstr("banana bread").as_ptr()), UNKNOWN_CONCEPT);
        assert!(last_error().contains("closest:"), "{}", last_error());
        assert_eq!((a.add_text)(s, 3, cstr("").as_ptr()), INVALID_ARGUMENT);
        // A lesion with no click on it would have to be searched inside its organ: not in this version.
        assert_eq!((a.add_text)(s, 3, cstr("liver tumour").as_ptr()), UNSUPPORTED);
        assert_eq!((a.add_box_ras)(s, 3, [1e6, 1e6, 1e6, 2e6, 2e6, 2e6].as_ptr()), INVALID_PROMPT);
        let mut mask = vec![0xABu8; n];
        assert_eq!(
            (a.run)(s, None, ptr::null_mut(), mask.as_mut_ptr(), n, strides.as_ptr()),
            INVALID_PROMPT,
            "no objects"
        );

        // kidney_left (3): the box of the reference label, as the parity fixtures use.
        assert_eq!((a.add_box_ijk)(s, 3, [23i64, 27, 0, 44, 49, 22].as_ptr()), OK);
        assert_eq!((a.add_box_ijk)(s, 3, [23i64, 27, 0, 44, 49, 22].as_ptr()), INVALID_PROMPT, "the same box again");
        assert_eq!((a.add_box_ijk)(s, 9, [1i64, 1, 1, 5, 5, 5].as_ptr()), OK);
        assert_eq!((a.remove_object)(s, 9), OK);
        assert_eq!((a.remove_object)(s, 9), INVALID_ARGUMENT);

        // Output buffer errors leave it untouched.
        assert_eq!((a.run)(s, None, ptr::null_mut(), mask.as_mut_ptr(), n - 1, strides.as_ptr()), BUFFER_TOO_SMALL);
        assert_eq!((a.run)(s, None, ptr::null_mut(), mask.as_mut_ptr(), n, [0i64, 1, 1].as_ptr()), INVALID_ARGUMENT);
        assert_eq!((a.run)(s, None, ptr::null_mut(), ptr::null_mut(), n, strides.as_ptr()), NULL_ARGUMENT);
        // Cancelled before the first slice: CANCELLED, buffer untouched, the session stays usable.
        assert_eq!((a.cancel)(s), OK);
        assert_eq!((a.run)(s, None, ptr::null_mut(), mask.as_mut_ptr(), n, strides.as_ptr()), CANCELLED);
        assert_eq!((a.run)(s, Some(stop_progress), ptr::null_mut(), mask.as_mut_ptr(), n, strides.as_ptr()), CANCELLED);
        assert!(mask.iter().all(|&m| m == 0xAB), "nothing written on error");

        // The reference policy: the Dice the PyTorch reference pipeline reaches.
        assert_eq!((a.set_policy)(s, 1), OK);
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let r =
            (a.run)(s, Some(count_progress), &calls as *const _ as *mut c_void, mask.as_mut_ptr(), n, strides.as_ptr());
        assert_eq!(r, OK, "{}", last_error());
        assert!(calls.load(Ordering::SeqCst) >= 23);
        let dice = dice(mask.iter().map(|&m| m == 3), labels.iter().map(|&l| l == 3.0));
        // The reference pipeline's Dice on this target is 0.9360 (tests/fixtures/parity).
        assert!(dice >= 0.9360 - 0.002, "Dice {dice}");
        assert!(mask.iter().all(|&m| m == 0 || m == 3));

        // The same result into a k-fastest (transposed) output layout.
        let mut t = vec![0u8; n];
        let ts = [(v.dims[2] * v.dims[1]) as i64, v.dims[2] as i64, 1];
        assert_eq!((a.run)(s, None, ptr::null_mut(), t.as_mut_ptr(), n, ts.as_ptr()), OK);
        for k in 0..v.dims[2] {
            for j in 0..v.dims[1] {
                for i in 0..v.dims[0] {
                    assert_eq!(
                        t[i * ts[0] as usize + j * ts[1] as usize + k],
                        mask[(k * v.dims[1] + j) * v.dims[0] + i]
                    );
                }
            }
        }
        assert_eq!((a.clear_prompts)(s), OK);
        (a.session_free)(s);
    }
}

#[test]
fn points_seeds_policies_confidence_and_undo_through_the_abi() {
    let a = api();
    let v = read_volume(&data("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap().volume;
    let labels = read_volume(&data("tests/fixtures/data/example_seg.nii.gz")).unwrap().volume.to_f64().unwrap();
    let d = descriptor(&v);
    let dims = v.dims;
    let n = dims.iter().product::<usize>();
    let strides = [1i64, dims[0] as i64, (dims[0] * dims[1]) as i64];
    let fstrides = [4i64, 4 * dims[0] as i64, 4 * (dims[0] * dims[1]) as i64];
    unsafe {
        // A budget that cannot hold one embedding: BUDGET_TOO_SMALL, out untouched.
        let mut o = ptr::null_mut();
        assert_eq!((a.options_new)(&mut o), OK);
        assert_eq!((a.options_set_ort_library)(o, cstr(ort_lib().to_str().unwrap()).as_ptr()), OK);
        assert_eq!((a.options_set_model_dir)(o, cstr(model_dir().to_str().unwrap()).as_ptr()), OK);
        assert_eq!((a.options_set_cache_budget)(o, 1024), OK);
        assert_eq!((a.options_set_cache_budget)(ptr::null_mut(), 1024), NULL_ARGUMENT);
        let mut tiny = SENTINEL;
        assert_eq!((a.engine_new)(o, &mut tiny), OK, "{}", last_error());
        (a.options_free)(o);
        let mut s = SENTINEL;
        assert_eq!((a.session_new)(tiny, &d, &mut s), BUDGET_TOO_SMALL);
        assert!(last_error().contains("cannot hold one embedding"), "{}", last_error());
        assert_eq!(s, SENTINEL);
        (a.engine_free)(tiny);

        assert_eq!((a.session_new)(engine(), &d, &mut s), OK, "{}", last_error());
        // Settings: unknown values are INVALID_ARGUMENT.
        assert_eq!((a.set_policy)(s, 7), INVALID_ARGUMENT);
        assert_eq!((a.set_policy)(s, 4), INVALID_ARGUMENT, "the first value past the last vxp_policy");
        for p in 1..=3 {
            assert_eq!((a.set_policy)(s, p), OK, "vxp_policy {p}: {}", last_error());
        }
        assert_eq!((a.set_axis)(s, 3), INVALID_ARGUMENT);
        assert_eq!((a.set_overlap)(s, 9), INVALID_ARGUMENT);
        assert_eq!((a.set_postprocess)(s, false, false, 0), OK);
        assert_eq!((a.undo)(s), NOTHING_TO_UNDO, "nothing to undo yet");
        assert_eq!((a.redo)(s), NOTHING_TO_UNDO);

        // Seed masks: wrong dims and too-small buffers are refused; nothing is added.
        let liver: Vec<u8> = labels.iter().map(|&l| (l == 5.0) as u8).collect();
        let bad_dims = [dims[0], dims[1], dims[2] + 1];
        assert_eq!((a.set_seed_mask)(s, 2, liver.as_ptr(), n, bad_dims.as_ptr(), strides.as_ptr()), SHAPE_MISMATCH);
        assert_eq!((a.set_seed_mask)(s, 2, liver.as_ptr(), n - 1, dims.as_ptr(), strides.as_ptr()), BUFFER_TOO_SMALL);
        assert_eq!((a.set_seed_mask)(s, 2, ptr::null(), n, dims.as_ptr(), strides.as_ptr()), NULL_ARGUMENT);
        let empty = vec![0u8; n];
        assert_eq!((a.set_seed_mask)(s, 2, empty.as_ptr(), n, dims.as_ptr(), strides.as_ptr()), INVALID_PROMPT);
        assert_eq!((a.remove_point_ijk)(s, 2, [1i64, 1, 1].as_ptr()), INVALID_ARGUMENT, "no such object");

        // Kidney from a box, default policy (reseed), with confidence.
        assert_eq!((a.add_box_ijk)(s, 3, [23i64, 27, 0, 44, 49, 22].as_ptr()), OK);
        let mut mask = vec![0xABu8; n];
        let mut conf = vec![-1.0f32; n];
        // A confidence layout that does not fit: BUFFER_TOO_SMALL and neither buffer is written.
        let r = (a.run_confidence)(
            s,
            None,
            ptr::null_mut(),
            mask.as_mut_ptr(),
            n,
            strides.as_ptr(),
            conf.as_mut_ptr(),
            4 * n - 1,
            fstrides.as_ptr(),
        );
        assert_eq!(r, BUFFER_TOO_SMALL);
        let r = (a.run_confidence)(
            s,
            None,
            ptr::null_mut(),
            mask.as_mut_ptr(),
            n,
            strides.as_ptr(),
            conf.as_mut_ptr(),
            4 * n,
            ptr::null(),
        );
        assert_eq!(r, NULL_ARGUMENT);
        assert!(mask.iter().all(|&m| m == 0xAB) && conf.iter().all(|&c| c == -1.0), "nothing half-written");
        let r = (a.run_confidence)(
            s,
            None,
            ptr::null_mut(),
            mask.as_mut_ptr(),
            n,
            strides.as_ptr(),
            conf.as_mut_ptr(),
            4 * n,
            fstrides.as_ptr(),
        );
        assert_eq!(r, OK, "{}", last_error());
        let kd = dice(mask.iter().map(|&m| m == 3), labels.iter().map(|&l| l == 3.0));
        assert!(kd > 0.9, "kidney Dice {kd}");
        assert!(conf.iter().all(|&c| (0.0..=1.0).contains(&c)), "confidence in [0, 1]");
        let inside: Vec<f32> = (0..n).filter(|&i| mask[i] == 3).map(|i| conf[i]).collect();
        assert!(inside.iter().sum::<f32>() / inside.len() as f32 > 0.5);
        let mut st = VxpRunStats { struct_size: std::mem::size_of::<VxpRunStats>() as u32, ..Default::default() };
        assert_eq!((a.last_stats)(s, &mut st), OK);
        assert!(st.slices_encoded >= 23 && st.slices_decoded >= 23 && st.objects_full == 1, "{st:?}");
        let mut short = VxpRunStats { struct_size: 2, ..Default::default() };
        assert_eq!((a.last_stats)(s, &mut short), INVALID_ARGUMENT);
        assert_eq!(short.slices_encoded, 0, "untouched on error");
        let first = mask.clone();

        // A negative point refines without encoding; undo restores the mask exactly.
        let (i, j, k) = (30i64, 40i64, 11i64);
        assert_eq!((a.add_point_ijk)(s, 3, [i, j, k].as_ptr(), false), OK);
        assert_eq!((a.add_point_ijk)(s, 3, [i, j, k].as_ptr(), false), INVALID_PROMPT, "the same point again");
        assert_eq!((a.run)(s, None, ptr::null_mut(), mask.as_mut_ptr(), n, strides.as_ptr()), OK);
        assert_eq!((a.last_stats)(s, &mut st), OK);
        assert_eq!((st.slices_encoded, st.objects_refined, st.objects_full), (0, 1, 0), "{st:?}");
        assert!(st.slices_decoded >= 1 && st.slices_decoded < 23, "{st:?}");
        let refined = mask.clone();
        assert_eq!((a.undo)(s), OK);
        assert_eq!((a.run)(s, None, ptr::null_mut(), mask.as_mut_ptr(), n, strides.as_ptr()), OK);
        assert_eq!(mask, first, "undo restores the previous mask exactly");
        assert_eq!((a.last_stats)(s, &mut st), OK);
        assert_eq!((st.slices_encoded, st.slices_decoded), (0, 0));
        assert_eq!((a.redo)(s), OK);
        assert_eq!((a.run)(s, None, ptr::null_mut(), mask.as_mut_ptr(), n, strides.as_ptr()), OK);
        assert_eq!(mask, refined);
        assert_eq!((a.redo)(s), NOTHING_TO_UNDO);
        assert_eq!((a.remove_point_ijk)(s, 3, [i, j, k].as_ptr()), OK);

        // A RAS point outside the volume, and the liver from a seed mask as a second object.
        assert_eq!((a.add_point_ras)(s, 4, [1e6, 1e6, 1e6].as_ptr(), true), INVALID_PROMPT);
        assert_eq!((a.set_seed_mask)(s, 2, liver.as_ptr(), n, dims.as_ptr(), strides.as_ptr()), OK);
        assert_eq!((a.run)(s, None, ptr::null_mut(), mask.as_mut_ptr(), n, strides.as_ptr()), OK);
        let ld = dice(mask.iter().map(|&m| m == 2), labels.iter().map(|&l| l == 5.0));
        assert!(ld > 0.9, "liver from its own mask as seed: Dice {ld}");
        assert_eq!((a.last_stats)(s, &mut st), OK);
        assert_eq!(st.objects_full, 1, "only the new object is computed: {st:?}");
        (a.session_free)(s);
    }
}

#[test]
fn a_strided_host_layout_gives_the_same_mask_and_cancel_works_from_another_thread() {
    let a = api();
    let v = read_volume(&data("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap().volume;
    let [w, h, d] = v.dims;
    // Store the volume k-fastest with one padding voxel per row, as a host might.
    let row = d + 1;
    let mut buf = vec![0i16; w * h * row];
    for k in 0..d {
        for j in 0..h {
            for i in 0..w {
                let src = 2 * ((k * h + j) * w + i);
                buf[(i * h + j) * row + k] = i16::from_ne_bytes([v.data[src], v.data[src + 1]]);
            }
        }
    }
    let mut desc = descriptor(&v);
    desc.data = buf.as_ptr().cast();
    desc.data_len = buf.len() * 2;
    desc.strides = [2 * (h * row) as i64, 2 * row as i64, 2];
    let n = w * h * d;
    let strides = [1i64, w as i64, (w * h) as i64];
    unsafe {
        let (mut s1, mut s2) = (ptr::null_mut(), ptr::null_mut());
        assert_eq!((a.session_new)(engine(), &descriptor(&v), &mut s1), OK);
        assert_eq!((a.session_new)(engine(), &desc, &mut s2), OK, "{}", last_error());
        for s in [s1, s2] {
            assert_eq!((a.add_box_ijk)(s, 1, [23i64, 27, 10, 44, 49, 14].as_ptr()), OK);
        }
        let (mut m1, mut m2) = (vec![0u8; n], vec![0u8; n]);
        assert_eq!((a.run)(s1, None, ptr::null_mut(), m1.as_mut_ptr(), n, strides.as_ptr()), OK);
        assert_eq!((a.run)(s2, None, ptr::null_mut(), m2.as_mut_ptr(), n, strides.as_ptr()), OK);
        assert!(m1.contains(&1));
        assert_eq!(m1, m2, "strided input gives the identical mask");

        // Cancel from another thread once the run has started (a new box, so the run has work to do).
        assert_eq!((a.clear_prompts)(s2), OK);
        assert_eq!((a.add_box_ijk)(s2, 1, [23i64, 27, 10, 44, 49, 14].as_ptr()), OK);
        let started = Arc::new(AtomicBool::new(false));
        unsafe extern "C" fn mark(user: *mut c_void, _s: u32, _f: f32) -> bool {
            unsafe { &*(user as *const AtomicBool) }.store(true, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(50));
            true
        }
        let s2u = s2 as usize;
        let flag = started.clone();
        let canceller = std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            while !flag.load(Ordering::SeqCst) {
                assert!(t0.elapsed().as_secs() < 120, "the progress callback never ran");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            (api().cancel)(s2u as *const Opaque)
        });
        let mut m3 = vec![7u8; n];
        let r = (a.run)(s2, Some(mark), Arc::as_ptr(&started) as *mut c_void, m3.as_mut_ptr(), n, strides.as_ptr());
        assert_eq!(canceller.join().unwrap(), OK);
        assert_eq!(r, CANCELLED);
        assert!(m3.iter().all(|&x| x == 7));
        // Usable after cancel.
        assert_eq!((a.run)(s2, None, ptr::null_mut(), m3.as_mut_ptr(), n, strides.as_ptr()), OK);
        assert_eq!(m3, m1);
        (a.session_free)(s1);
        (a.session_free)(s2);
    }
}

#[cfg(feature = "test-panic")]
#[test]
fn a_panic_inside_the_library_comes_back_as_a_result() {
    let a = api();
    // SAFETY: the test-only export takes no arguments.
    let panic_fn: Symbol<'static, unsafe extern "C" fn() -> u32> = unsafe { a._lib.get(b"vxp_test_panic\0") }.unwrap();
    for _ in 0..2 {
        assert_eq!(unsafe { panic_fn() }, 900, "VXP_RESULT_PANIC");
        assert!(last_error().contains("deliberate panic"), "{}", last_error());
    }
    // The library keeps working after a caught panic.
    let (mut major, mut minor) = (0u32, 0u32);
    assert_eq!(unsafe { (a.abi_version)(&mut major, &mut minor) }, OK);
}

static LOGGED: parking_lot::Mutex<Vec<(u32, String)>> = parking_lot::Mutex::new(Vec::new());

unsafe extern "C" fn on_log(user: *mut c_void, level: u32, msg: *const c_char) {
    assert_eq!(user as usize, 0x1234, "user_data comes back unchanged");
    // SAFETY: a NUL-terminated string valid during the call.
    let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy().into_owned();
    LOGGED.lock().push((level, text));
}

#[test]
fn log_messages_reach_the_host_callback() {
    let a = api();
    // SAFETY: the signature mirrors include/voxprompt.h.
    type SetLog =
        unsafe extern "C" fn(u32, Option<unsafe extern "C" fn(*mut c_void, u32, *const c_char)>, *mut c_void) -> u32;
    let set_log: Symbol<'static, SetLog> = unsafe { a._lib.get(b"vxp_set_log_callback\0") }.unwrap();
    unsafe {
        assert_eq!(set_log(6, Some(on_log), 0x1234 as *mut c_void), INVALID_ARGUMENT);
        assert_eq!(set_log(2, Some(on_log), 0x1234 as *mut c_void), OK);
        // An engine asked for CUDA first on a machine without it: the fallback is logged as a warning.
        let mut o = ptr::null_mut();
        assert_eq!((a.options_new)(&mut o), OK);
        assert_eq!((a.options_set_ort_library)(o, cstr(ort_lib().to_str().unwrap()).as_ptr()), OK);
        assert_eq!((a.options_set_model_dir)(o, cstr(model_dir().to_str().unwrap()).as_ptr()), OK);
        assert_eq!((a.options_set_providers)(o, cstr("cuda,cpu").as_ptr()), OK);
        let mut e = ptr::null_mut();
        assert_eq!((a.engine_new)(o, &mut e), OK, "{}", last_error());
        (a.options_free)(o);
        (a.engine_free)(e);
        assert_eq!(set_log(0, None, ptr::null_mut()), OK);
    }
    let logged = LOGGED.lock();
    assert!(
        logged.iter().any(|(l, m)| *l == 2 && m.contains("cuda") && m.contains("not used")),
        "warnings seen: {logged:?}"
    );
    assert!(logged.iter().all(|(l, _)| (1..=2).contains(l)), "nothing below the requested level: {logged:?}");
}

#[test]
fn a_box_on_one_slice_under_the_reference_policy_segments_that_slice_alone() {
    let a = api();
    let v = read_volume(&data("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap().volume;
    let d = descriptor(&v);
    let n = v.dims.iter().product::<usize>();
    let strides = [1i64, v.dims[0] as i64, (v.dims[0] * v.dims[1]) as i64];
    unsafe {
        let mut s = ptr::null_mut();
        assert_eq!((a.session_new)(engine(), &d, &mut s), OK);
        assert_eq!((a.set_policy)(s, 1), OK);
        assert_eq!((a.add_box_ijk)(s, 3, [23i64, 27, 11, 44, 49, 11].as_ptr()), OK);
        let mut mask = vec![0u8; n];
        assert_eq!((a.run)(s, None, ptr::null_mut(), mask.as_mut_ptr(), n, strides.as_ptr()), OK);
        let per_slice = v.dims[0] * v.dims[1];
        let on: Vec<usize> =
            (0..v.dims[2]).filter(|&k| mask[k * per_slice..(k + 1) * per_slice].contains(&3)).collect();
        assert_eq!(on, vec![11], "only the prompted slice");
        let mut st = VxpRunStats { struct_size: std::mem::size_of::<VxpRunStats>() as u32, ..Default::default() };
        assert_eq!((a.last_stats)(s, &mut st), OK);
        assert_eq!((st.slices_encoded, st.slices_decoded, st.decoder_runs), (1, 1, 1));
        (a.session_free)(s);
    }
}

#[test]
fn every_session_call_refuses_a_null_handle() {
    let a = api();
    let (b6, f6, i3, f3) = ([1i64; 6], [1.0f64; 6], [1i64; 3], [1.0f64; 3]);
    let (dims, strides) = ([1usize; 3], [1i64; 3]);
    let mut byte = 0u8;
    let null = ptr::null_mut();
    unsafe {
        let results = [
            (a.add_box_ijk)(null, 1, b6.as_ptr()),
            (a.add_box_ras)(null, 1, f6.as_ptr()),
            (a.add_point_ijk)(null, 1, i3.as_ptr(), true),
            (a.add_point_ras)(null, 1, f3.as_ptr(), true),
            (a.remove_point_ijk)(null, 1, i3.as_ptr()),
            (a.set_seed_mask)(null, 1, &byte, 1, dims.as_ptr(), strides.as_ptr()),
            (a.add_text)(null, 1, cstr("liver").as_ptr()),
            (a.remove_object)(null, 1),
            (a.clear_prompts)(null),
            (a.set_policy)(null, 1),
            (a.set_axis)(null, 2),
            (a.set_overlap)(null, 0),
            (a.set_postprocess)(null, true, false, 0),
            (a.undo)(null),
            (a.redo)(null),
            (a.cancel)(null),
            (a.run)(null, None, ptr::null_mut(), &mut byte, 1, strides.as_ptr()),
            (a.run_confidence)(
                null,
                None,
                ptr::null_mut(),
                &mut byte,
                1,
                strides.as_ptr(),
                ptr::null_mut(),
                0,
                ptr::null(),
            ),
            (a.last_stats)(null, &mut VxpRunStats::default()),
            (a.options_set_cache_budget)(null, 1 << 30),
        ];
        for (n, r) in results.iter().enumerate() {
            assert_eq!(*r, NULL_ARGUMENT, "call {n}");
        }
        assert_eq!(byte, 0, "nothing written");
    }
}

#[test]
fn a_second_package_of_another_kind_is_added_next_to_the_spatial_model() {
    let a = api();
    let text = root().join("tests/fixtures/models/tiny-text");
    unsafe {
        let mut o = ptr::null_mut();
        assert_eq!((a.options_new)(&mut o), OK);
        assert_eq!((a.options_set_ort_library)(o, cstr(ort_lib().to_str().unwrap()).as_ptr()), OK);
        assert_eq!((a.options_add_model_dir)(ptr::null_mut(), cstr("x").as_ptr()), NULL_ARGUMENT);
        assert_eq!((a.options_add_model_dir)(o, ptr::null()), NULL_ARGUMENT);
        // A text encoder alone cannot segment.
        assert_eq!((a.options_add_model_dir)(o, cstr(text.to_str().unwrap()).as_ptr()), OK);
        let mut e = SENTINEL;
        assert_eq!((a.engine_new)(o, &mut e), INVALID_ARGUMENT);
        assert!(last_error().contains("no spatial model"), "{}", last_error());
        assert_eq!(e, SENTINEL);
        // set replaces everything; add appends.
        assert_eq!((a.options_set_model_dir)(o, cstr(model_dir().to_str().unwrap()).as_ptr()), OK);
        assert_eq!((a.options_add_model_dir)(o, cstr(text.to_str().unwrap()).as_ptr()), OK);
        assert_eq!((a.engine_new)(o, &mut e), OK);
        assert_ne!(e, SENTINEL);
        (a.engine_free)(e);
        assert_eq!((a.options_add_model_dir)(o, cstr(text.to_str().unwrap()).as_ptr()), OK);
        let mut e = SENTINEL;
        assert_eq!((a.engine_new)(o, &mut e), INVALID_ARGUMENT);
        assert!(last_error().contains("second text encoder"), "{}", last_error());
        assert_eq!(e, SENTINEL);
        (a.options_free)(o);
    }
}

/// A JSON answer through the size-query protocol: NULL/0 first, then a buffer of exactly that size.
fn json_out(call: impl Fn(*mut c_char, usize, *mut usize) -> u32) -> Result<String, (u32, String)> {
    let mut needed = usize::MAX;
    let r = call(ptr::null_mut(), 0, &mut needed);
    if r != BUFFER_TOO_SMALL {
        return Err((r, last_error()));
    }
    let mut buf = vec![0 as c_char; needed + 1];
    let mut again = 0usize;
    assert_eq!(call(buf.as_mut_ptr(), buf.len(), &mut again), OK, "{}", last_error());
    assert_eq!(again, needed);
    // SAFETY: NUL-terminated by the library.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

#[test]
fn concepts_are_looked_up_and_completed_with_documented_codes() {
    let a = api();
    let e = engine();
    let lookup = |t: &str| {
        let t = cstr(t);
        // SAFETY: a live engine, a C string and buffers as the protocol says.
        json_out(|b, l, n| unsafe { (a.lookup_concept)(e, t.as_ptr(), b, l, n) })
    };
    let v: serde_json::Value = serde_json::from_str(&lookup("tumour of the LEFT kidnye").unwrap()).unwrap();
    assert_eq!(v["concepts"][0]["id"], "kidney_left");
    assert_eq!(v["concepts"][0]["snomed"]["modifier"], "7771000");
    assert_eq!((v["lesion"].as_str(), v["method"].as_str()), (Some("tumor"), Some("typo")));
    let pair: serde_json::Value = serde_json::from_str(&lookup("kidneys").unwrap()).unwrap();
    assert_eq!(pair["concepts"].as_array().unwrap().len(), 2);
    let (code, msg) = lookup("banana bread").unwrap_err();
    assert_eq!(code, UNKNOWN_CONCEPT, "{msg}");
    assert!(msg.contains("closest:"), "{msg}");
    assert_eq!(lookup("   ").unwrap_err().0, INVALID_ARGUMENT);
    let mut n = 0usize;
    unsafe {
        assert_eq!((a.lookup_concept)(e, ptr::null(), ptr::null_mut(), 0, &mut n), NULL_ARGUMENT);
        assert_eq!((a.lookup_concept)(ptr::null(), cstr("liver").as_ptr(), ptr::null_mut(), 0, &mut n), NULL_ARGUMENT);
    }
    let p = cstr("kid");
    // SAFETY: as above.
    let list: serde_json::Value =
        serde_json::from_str(&json_out(|b, l, n| unsafe { (a.complete_concepts)(e, p.as_ptr(), 5, b, l, n) }).unwrap())
            .unwrap();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids[..2], ["kidney_right", "kidney_left"], "{ids:?}");
    assert!(ids.len() <= 5);
}
