//! The one owner of ONNX Runtime in the process.
//!
//! ort 2.0.0-rc.15 loads the library lazily on the first API call and panics if that fails, allows one
//! environment per process, and silently keeps the first library when `init_from` is called again with
//! another path. So: resolve an absolute path ourselves, preflight it (dlopen → `OrtGetApiBase` → version),
//! only then hand it to ort, keep the environment for the life of the process, and report a different
//! path on a later request as an error instead of ignoring it.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// The oldest ONNX Runtime minor version the pinned ort (API 31) can drive.
pub const MIN_ORT_MINOR: u32 = 31;
/// Environment variable naming the ONNX Runtime library.
pub const ORT_LIB_ENV: &str = "VXP_ORT_LIB";
const ORT_LIB_NAME: &str = "libonnxruntime.so.1";

/// The loaded runtime: the library path, its version and the process-wide ort environment.
pub struct Runtime {
    pub path: PathBuf,
    pub version: String,
    pub(crate) env: ort::environment::Environment,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// Returns the process runtime, loading it on first use.
///
/// `requested` wins over `VXP_ORT_LIB`, which wins over a library next to `libvoxprompt.so` (or next to the
/// executable for the CLI).
pub fn runtime(requested: Option<&Path>) -> Result<&'static Runtime> {
    let _guard = INIT.lock();
    let path = resolve_library(requested)?;
    if let Some(rt) = RUNTIME.get().filter(|rt| rt.path == path) {
        return Ok(rt);
    }
    disable_telemetry();
    // Preflight first, so a broken or old library is reported as such even after another one was loaded.
    let version = preflight(&path)?;
    if let Some(rt) = RUNTIME.get() {
        return Err(Error::RuntimeMismatch(format!(
            "ONNX Runtime {} is already loaded from {} in this process; {} ({version}) cannot be loaded as well",
            rt.version,
            rt.path.display(),
            path.display()
        )));
    }
    let builder = ort::init_from(&path).map_err(|e| Error::RuntimeLoad(e.to_string()))?;
    let logger: ort::logging::LoggerFunction = Arc::new(|level, category, _id, location, message| {
        use ort::logging::LogLevel;
        let lvl = match level {
            LogLevel::Verbose => log::Level::Trace,
            LogLevel::Info => log::Level::Debug,
            LogLevel::Warning => log::Level::Warn,
            LogLevel::Error | LogLevel::Fatal => log::Level::Error,
        };
        log::log!(target: "onnxruntime", lvl, "[{category}] {message} ({location})");
    });
    let env = builder
        .with_name("voxprompt")
        .with_telemetry(false)
        .with_logger(logger)
        .build()
        .map_err(|e| Error::RuntimeLoad(format!("{}: {e}", path.display())))?;
    log::info!("ONNX Runtime {version} loaded from {}", path.display());
    Ok(RUNTIME.get_or_init(|| Runtime { path, version, env }))
}

/// Environment variable naming OpenVINO's C library (`libopenvino_c.so.*`), for the `openvino` provider.
pub const OPENVINO_LIB_ENV: &str = "VXP_OPENVINO_LIB";
const OPENVINO_LIB_NAMES: [&str; 2] = ["libopenvino_c.so.2640", "libopenvino_c.so"];

static OPENVINO: OnceLock<PathBuf> = OnceLock::new();

/// Loads OpenVINO's C API for the process, once: `requested` wins over `VXP_OPENVINO_LIB`, which wins over a
/// library next to `libvoxprompt.so` (or the executable). Like ONNX Runtime's, the bindings keep the first
/// library for the life of the process, so a later request for another one is an error, not ignored.
/// `Err` says why OpenVINO cannot be used, for the provider's fallback report.
pub fn openvino(requested: Option<&Path>) -> std::result::Result<&'static Path, String> {
    let _guard = INIT.lock();
    let candidate = match (requested, std::env::var_os(OPENVINO_LIB_ENV).filter(|p| !p.is_empty())) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(p)) => PathBuf::from(p),
        (None, None) => {
            let dirs =
                [own_library_dir(), std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf))];
            dirs.into_iter()
                .flatten()
                .flat_map(|dir| OPENVINO_LIB_NAMES.map(|name| dir.join(name)))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    format!(
                        "no OpenVINO library given: set {OPENVINO_LIB_ENV} (scripts/setup-openvino installs one) or \
                         put {} next to libvoxprompt.so",
                        OPENVINO_LIB_NAMES[0]
                    )
                })?
        }
    };
    let path = std::fs::canonicalize(&candidate).map_err(|e| format!("{}: {e}", candidate.display()))?;
    if let Some(loaded) = OPENVINO.get() {
        return if *loaded == path {
            Ok(loaded)
        } else {
            Err(format!(
                "OpenVINO is already loaded from {} in this process; {} cannot be loaded as well",
                loaded.display(),
                path.display()
            ))
        };
    }
    let version = preflight_openvino(&path)?;
    openvino_sys::library::load_from(path.clone())?;
    log::info!("OpenVINO {version} loaded from {}", path.display());
    Ok(OPENVINO.get_or_init(|| path))
}

/// The C functions the `openvino` provider calls. The bindings look each one up lazily and panic on a missing
/// one, and they keep the first library they load for the process, so a library without them (the C++
/// `libopenvino.so`, another vendor's file) is refused here, before the bindings see it.
const OPENVINO_FUNCTIONS: [&str; 18] = [
    "ov_get_openvino_version",
    "ov_version_free",
    "ov_core_create",
    "ov_core_free",
    "ov_core_set_property",
    "ov_core_read_model_from_memory_buffer",
    "ov_core_compile_model",
    "ov_compiled_model_get_property",
    "ov_compiled_model_create_infer_request",
    "ov_compiled_model_free",
    "ov_model_free",
    "ov_shape_create",
    "ov_tensor_create",
    "ov_tensor_data",
    "ov_tensor_free",
    "ov_infer_request_set_input_tensor",
    "ov_infer_request_infer",
    "ov_infer_request_get_output_tensor_by_index",
];

/// Loads `path` on its own, checks that it is OpenVINO's C library with every function the provider calls and
/// a version the bindings can drive (2025.1 changed an enum they depend on), and returns its version.
fn preflight_openvino(path: &Path) -> std::result::Result<String, String> {
    #[repr(C)]
    struct Version {
        build_number: *const std::ffi::c_char,
        description: *const std::ffi::c_char,
    }
    // SAFETY: loading a shared library runs its initialisers; this is the library the host named.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))?;
    for name in OPENVINO_FUNCTIONS {
        // SAFETY: only the symbol's presence is checked; nothing is called through this type.
        if unsafe { lib.get::<unsafe extern "C" fn()>(name.as_bytes()) }.is_err() {
            return Err(format!(
                "{} does not export {name}: not OpenVINO's C library (libopenvino_c.so)",
                path.display()
            ));
        }
    }
    // SAFETY: both symbols exist (checked above) and have these C signatures in OpenVINO's C API; the status is
    // read as a plain int, so an unexpected value cannot be an invalid Rust enum.
    let (get, free) = unsafe {
        (
            lib.get::<unsafe extern "C" fn(*mut Version) -> i32>(b"ov_get_openvino_version\0"),
            lib.get::<unsafe extern "C" fn(*mut Version)>(b"ov_version_free\0"),
        )
    };
    let (get, free) = (get.map_err(|e| e.to_string())?, free.map_err(|e| e.to_string())?);
    let mut v = Version { build_number: std::ptr::null(), description: std::ptr::null() };
    // SAFETY: v is a valid out-struct; on success build_number is a NUL-terminated string the library owns until
    // ov_version_free.
    let version = unsafe {
        if get(&mut v) != 0 || v.build_number.is_null() {
            return Err(format!("{}: ov_get_openvino_version failed", path.display()));
        }
        let s = CStr::from_ptr(v.build_number).to_string_lossy().into_owned();
        free(&mut v);
        s
    };
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(y), Some(m)) if (y, m) >= (2025, 1) => Ok(version),
        _ => Err(format!("{} is OpenVINO {version}; 2025.1 or newer is required", path.display())),
    }
}

/// The variable ONNX Runtime reads when it creates its environment.
pub const TELEMETRY_ENV: &str = "ORT_DISABLE_TELEMETRY";

/// ONNX Runtime 1.32 records a telemetry event (executable path, CPU, memory, a persistent device id) in
/// `$XDG_CACHE_HOME/Microsoft/DeveloperTools/.onnxruntime` when its environment is created, before
/// `DisableTelemetryEvents` (ort's `with_telemetry(false)`) can be called. Only `ORT_DISABLE_TELEMETRY`,
/// read at that moment, stops it, so it is set here, before the library is first loaded, unless the host set
/// it. Setting a variable races with other threads reading the environment; a host that starts threads
/// before it creates its first engine can set `ORT_DISABLE_TELEMETRY=1` itself, and then nothing is set.
fn disable_telemetry() {
    if std::env::var_os(TELEMETRY_ENV).is_none() {
        std::env::set_var(TELEMETRY_ENV, "1");
    }
}

fn resolve_library(requested: Option<&Path>) -> Result<PathBuf> {
    resolve_library_with(requested, std::env::var_os(ORT_LIB_ENV))
}

/// `resolve_library` with the value of `VXP_ORT_LIB` passed in, so tests need not change the environment.
fn resolve_library_with(requested: Option<&Path>, env: Option<std::ffi::OsString>) -> Result<PathBuf> {
    let candidate = if let Some(p) = requested {
        p.to_path_buf()
    } else if let Some(p) = env.filter(|p| !p.is_empty()) {
        PathBuf::from(p)
    } else {
        let dirs = [own_library_dir(), std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf))];
        let found = dirs
            .into_iter()
            .flatten()
            .flat_map(|dir| [ORT_LIB_NAME, "libonnxruntime.so"].map(|name| dir.join(name)))
            .find(|p| p.exists());
        found.ok_or_else(|| {
            Error::RuntimeLoad(format!(
                "no ONNX Runtime library given: set the engine option, {ORT_LIB_ENV}, or put {ORT_LIB_NAME} next to libvoxprompt.so"
            ))
        })?
    };
    // Absolute, so ort never resolves it against the host executable's folder.
    std::fs::canonicalize(&candidate).map_err(|e| Error::RuntimeLoad(format!("{}: {e}", candidate.display())))
}

/// Loads the library on its own, checks it is an ONNX Runtime of a usable version, and unloads it.
fn preflight(path: &Path) -> Result<String> {
    // SAFETY: loading a shared library runs its initialisers; this is the library the host asked for.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| Error::RuntimeLoad(format!("{}: {e}", path.display())))?;
    // SAFETY: the symbol's type is the documented ONNX Runtime C entry point.
    let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
        unsafe { lib.get(b"OrtGetApiBase\0") }.map_err(|_| {
            Error::RuntimeLoad(format!("{} does not export OrtGetApiBase: not an ONNX Runtime library", path.display()))
        })?;
    // SAFETY: OrtGetApiBase takes no arguments and returns a pointer to a static table or NULL.
    let base = unsafe { get_base() };
    if base.is_null() {
        return Err(Error::RuntimeLoad(format!("{}: OrtGetApiBase returned NULL", path.display())));
    }
    // SAFETY: base is non-null and points to the library's static OrtApiBase; the string is static too.
    let version = unsafe { CStr::from_ptr(((*base).GetVersionString)()) }
        .to_str()
        .map_err(|_| Error::RuntimeLoad(format!("{}: malformed version string", path.display())))?
        .to_owned();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().flatten(), parts.next().flatten());
    match (major, minor) {
        (Some(1), Some(m)) if m >= MIN_ORT_MINOR => Ok(version),
        _ => Err(Error::RuntimeVersion(format!(
            "{} is ONNX Runtime {version}; version 1.{MIN_ORT_MINOR} or newer is required",
            path.display()
        ))),
    }
}

/// Folder of the shared object that contains this code (libvoxprompt.so, or the executable).
fn own_library_dir() -> Option<PathBuf> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let addr = own_library_dir as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables; info is a valid out-struct.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) }.to_str().ok()?;
    Path::new(name).parent().map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system temp dir holding a file `lib.so` and a link `link.so` to it.
    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vxp-runtime-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("lib.so"), b"not a library").unwrap();
        std::os::unix::fs::symlink(dir.join("lib.so"), dir.join("link.so")).unwrap();
        dir
    }

    #[test]
    fn resolve_library_prefers_the_request_then_the_environment_and_canonicalises() {
        let dir = scratch("order");
        let file = std::fs::canonicalize(dir.join("lib.so")).unwrap();
        let link = dir.join("link.so");
        // A link is resolved to its target, so ort never sees a path relative to the host's folder.
        assert_eq!(resolve_library_with(Some(&link), None).unwrap(), file);
        // The request wins over the environment, even when the environment names a missing file.
        assert_eq!(resolve_library_with(Some(&link), Some(dir.join("missing.so").into())).unwrap(), file);
        assert_eq!(resolve_library_with(None, Some(link.clone().into())).unwrap(), file);
        // A path with `..` and `.` components comes back clean and absolute.
        let dotted = dir.join(".").join("..").join(dir.file_name().unwrap()).join("lib.so");
        assert_eq!(resolve_library_with(None, Some(dotted.into())).unwrap(), file);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn preflight_refuses_what_is_not_openvinos_c_library() {
        let dir = scratch("openvino");
        let err = preflight_openvino(&dir.join("lib.so")).unwrap_err();
        assert!(err.starts_with(&dir.join("lib.so").display().to_string()), "{err}");
        // A real shared library without OpenVINO's C API: ONNX Runtime, where the tests have it.
        if let Some(ort) = std::env::var_os(ORT_LIB_ENV) {
            let err = preflight_openvino(Path::new(&ort)).unwrap_err();
            assert!(err.contains("does not export ov_get_openvino_version"), "{err}");
        }
        // OpenVINO itself, where make setup put it.
        if let Some(ov) = std::env::var_os(OPENVINO_LIB_ENV).filter(|p| Path::new(p).exists()) {
            assert!(preflight_openvino(Path::new(&ov)).unwrap().starts_with("2026.4"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolve_library_reports_a_missing_file_by_name() {
        let dir = scratch("missing");
        let missing = dir.join("nope.so");
        for r in [resolve_library_with(Some(&missing), None), resolve_library_with(None, Some(missing.clone().into()))]
        {
            match r {
                Err(Error::RuntimeLoad(m)) => assert!(m.starts_with(&missing.display().to_string()), "{m}"),
                other => panic!("expected RuntimeLoad, got {other:?}"),
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
