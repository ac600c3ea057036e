//! The C ABI's descriptor checks, called as a host calls them: a volume descriptor, a seed-mask layout, a box
//! and output layouts built from the fuzzer's bytes over buffers of exactly the length they claim. The
//! library must refuse with a code, or read only inside the buffers (ASan sees any byte past them), never
//! panic (libFuzzer aborts on any panic, caught or not) and leave an output buffer untouched on every error.
//! Runs are cancelled by their first progress call, so no inference is done: the checks are what is fuzzed.

use std::ffi::{c_void, CString};
use std::sync::OnceLock;

use crate::Reached;

use voxprompt::ffi::engine::{vxp_engine, vxp_engine_new};
use voxprompt::ffi::options::*;
use voxprompt::ffi::prompt::{vxp_session_add_box_ijk, vxp_session_set_seed_mask};
use voxprompt::ffi::result::vxp_result;
use voxprompt::ffi::session::{vxp_session, vxp_session_free, vxp_session_new, vxp_session_run_confidence};
use voxprompt::ffi::volume::vxp_volume;

/// Small volumes only: a session on one is built in microseconds, and a larger one is refused by the limit.
const MAX_VOXELS: u64 = 1 << 16;

struct Engine(*mut vxp_engine);
// SAFETY: the engine is documented thread-safe; the fuzzer runs one input at a time anyway.
unsafe impl Send for Engine {}
unsafe impl Sync for Engine {}

/// One engine for the whole run, on the real LiteMedSAM package and the ONNX Runtime named by VXP_ORT_LIB.
fn engine() -> *mut vxp_engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            // The repository root, whether this file is built in `fuzz/` or included by the main crate's test.
            let dir = env!("CARGO_MANIFEST_DIR");
            let root = if env!("CARGO_PKG_NAME") == "voxprompt" { dir.to_string() } else { format!("{dir}/..") };
            let ort = std::env::var("VXP_ORT_LIB")
                .unwrap_or_else(|_| format!("{root}/.deps/onnxruntime/lib/libonnxruntime.so.1.32.0"));
            let models = format!("{root}/models/litemedsam");
            let (ort, models) = (CString::new(ort).unwrap(), CString::new(models).unwrap());
            let mut o = std::ptr::null_mut();
            let mut e = std::ptr::null_mut();
            // SAFETY: live handles and NUL-terminated strings, as the header asks.
            unsafe {
                assert_eq!(vxp_options_new(&mut o), vxp_result::Ok);
                assert_eq!(vxp_options_set_ort_library(o, ort.as_ptr()), vxp_result::Ok);
                assert_eq!(vxp_options_set_model_dir(o, models.as_ptr()), vxp_result::Ok);
                assert_eq!(vxp_options_set_threads(o, 1), vxp_result::Ok);
                assert_eq!(vxp_options_set_max_voxels(o, MAX_VOXELS), vxp_result::Ok);
                assert_eq!(vxp_engine_new(o, &mut e), vxp_result::Ok, "the fuzz engine did not start");
                vxp_options_free(o);
            }
            Engine(e)
        })
        .0
}

/// Reads the fuzzer's bytes as fields; past the end every field is zero.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn i32(&mut self) -> i32 {
        i32::from_le_bytes(self.take())
    }
    fn f64(&mut self) -> f64 {
        f64::from_le_bytes(self.take())
    }
    /// A stride: mostly small, sometimes an extreme.
    fn stride(&mut self) -> i64 {
        match self.u8() {
            0 => i64::MIN,
            1 => i64::MAX,
            2 => i64::from(u32::MAX),
            _ => i64::from(self.i32()),
        }
    }
    fn strides(&mut self) -> [i64; 3] {
        [self.stride(), self.stride(), self.stride()]
    }
    /// A length: mostly up to 64 KiB, sometimes huge (the check must not trust it to allocate).
    fn len(&mut self) -> usize {
        match self.u8() {
            0 => usize::MAX,
            _ => usize::from(self.u16()),
        }
    }
}

/// A buffer of exactly `len` bytes (so ASan flags any access past it), or none for an absurd length.
fn buffer(len: usize, fill: u8) -> Option<Vec<u8>> {
    (len <= 1 << 20).then(|| vec![fill; len])
}

/// Counts its calls in `*user` and says stop.
extern "C" fn stop(user: *mut c_void, _: u32, _: f32) -> bool {
    // SAFETY: `user` is the `u32` counter `session` passes.
    unsafe { *user.cast::<u32>() += 1 };
    false
}

pub fn volume(data: &[u8]) -> Reached {
    let e = engine();
    let mut b = Bytes(data);
    let size = std::mem::size_of::<vxp_volume>() as u32;
    let struct_size = match b.u8() {
        0 => size - 1,
        1 => 0,
        _ => size,
    };
    let dtype = u32::from(b.u8() % 10);
    let Some(mut buf) = buffer(usize::from(b.u16()), 0) else { return Reached::Nothing };
    // Varied voxels, so an MR mapping has something to map.
    for (i, v) in buf.iter_mut().enumerate() {
        *v = ((i * 131 + i / 7) % 251) as u8;
    }
    let data_offset = usize::from(b.u16());
    let dims = [usize::from(b.u16()), usize::from(b.u16()), usize::from(b.u16())];
    let strides = b.strides();
    let (spacing, ijk_to_ras) = if b.u8() & 1 == 0 {
        let s = [1.0, 1.0, 2.5];
        let mut m = [0.0; 16];
        (m[0], m[5], m[10], m[15]) = (s[0], s[1], s[2], 1.0);
        (s, m)
    } else {
        let s = [b.f64(), b.f64(), b.f64()];
        let mut m = [0.0; 16];
        m.iter_mut().for_each(|v| *v = b.f64());
        (s, m)
    };
    let intensity = u32::from(b.u8() % 5);
    let (window_level, window_width) = (b.f64(), b.f64());
    // The descriptor may point anywhere in the buffer; past its end only with a length of 0, where a host's
    // pointer arithmetic would stop.
    let base = buf.as_ptr().wrapping_add(data_offset.min(buf.len()));
    let v = vxp_volume {
        struct_size,
        dtype,
        data: base.cast(),
        data_len: buf.len(),
        data_offset: data_offset.min(buf.len()),
        dims,
        strides,
        spacing,
        ijk_to_ras,
        intensity,
        window_level,
        window_width,
    };
    let mut s: *mut vxp_session = std::ptr::null_mut();
    // SAFETY: the descriptor's buffer is readable for data_len bytes from data - data_offset.
    let r = unsafe { vxp_session_new(e, &v, &mut s) };
    assert_ne!(r, vxp_result::Panic);
    if r != vxp_result::Ok {
        assert!(s.is_null(), "vxp_session_new wrote its out-parameter on error {r:?}");
        return Reached::Refused;
    }
    let reached = session(s, &mut b, dims);
    // SAFETY: a live handle, freed once.
    unsafe { vxp_session_free(s) };
    reached
}

fn session(s: *mut vxp_session, b: &mut Bytes, dims: [usize; 3]) -> Reached {
    let label = u32::from(b.u8() % 4);
    let mask_dims = if b.u8() & 1 == 0 { dims } else { [dims[0], dims[1], dims[2] ^ 1] };
    let mask_len = b.len();
    let mask_strides = b.strides();
    if let Some(mask) = buffer(mask_len, 1) {
        // SAFETY: `mask` readable for its length, dims and strides 3 values each.
        let r = unsafe {
            vxp_session_set_seed_mask(s, label, mask.as_ptr(), mask.len(), mask_dims.as_ptr(), mask_strides.as_ptr())
        };
        assert_ne!(r, vxp_result::Panic);
    }
    let bx = [0; 6].map(|_: i32| i64::from(b.u16() as i16));
    // SAFETY: 6 readable values.
    assert_ne!(unsafe { vxp_session_add_box_ijk(s, label, bx.as_ptr()) }, vxp_result::Panic);

    let (out_len, out_strides) = (b.len(), b.strides());
    let with_conf = b.u8() & 1 == 1;
    let (conf_len, conf_strides) = (b.len(), b.strides());
    let (Some(mut out), Some(mut conf)) = (buffer(out_len, 0xAB), buffer(conf_len, 0xCD)) else {
        return Reached::Refused;
    };
    let (cptr, clen) =
        if with_conf { (conf.as_mut_ptr().cast::<f32>(), conf.len()) } else { (std::ptr::null_mut(), 0) };
    // SAFETY: both buffers writable for their lengths (the float one only through unaligned writes, which
    // the library does), the stride arrays readable.
    let mut calls = 0u32;
    let r = unsafe {
        vxp_session_run_confidence(
            s,
            Some(stop),
            (&mut calls as *mut u32).cast(),
            out.as_mut_ptr(),
            out.len(),
            out_strides.as_ptr(),
            cptr,
            clen,
            conf_strides.as_ptr(),
        )
    };
    assert_ne!(r, vxp_result::Panic);
    if r == vxp_result::Ok {
        // Only a run with no slice to compute (a seed mask taken as it is, say) may end without asking.
        assert_eq!(calls, 0, "a run whose first progress call said stop succeeded");
        return Reached::Run(r);
    }
    assert!(out.iter().all(|&v| v == 0xAB), "the mask buffer was written on error {r:?}");
    assert!(conf.iter().all(|&v| v == 0xCD), "the confidence buffer was written on error {r:?}");
    Reached::Run(r)
}
