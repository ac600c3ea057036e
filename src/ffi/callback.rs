//! The host's log callback: the library logs through the `log` crate, and this bridge hands every record at
//! or above the host's level to the callback. The `log` crate has one logger per process, so the callback is
//! process-wide.

use std::ffi::{c_char, c_void, CString};

use parking_lot::RwLock;

use super::error::{boundary, set_last_error};
use super::result::vxp_result;

/// Log levels for `vxp_set_log_callback`.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum vxp_log_level {
    /// Nothing is logged.
    Off = 0,
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

/// Log callback: `level` is a `vxp_log_level`, `message` a NUL-terminated UTF-8 string valid only during
/// the call. May be called from any thread the library uses, concurrently.
pub type vxp_log_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, level: u32, message: *const c_char)>;

struct Sink {
    callback: vxp_log_fn,
    user_data: usize,
}

static SINK: RwLock<Sink> = RwLock::new(Sink { callback: None, user_data: 0 });

struct Bridge;

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level() && SINK.read().callback.is_some()
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let sink = SINK.read();
        let Some(cb) = sink.callback else { return };
        let text = format!("{}: {}", record.target(), record.args()).replace('\0', " ");
        let level = match record.level() {
            log::Level::Error => vxp_log_level::Error,
            log::Level::Warn => vxp_log_level::Warn,
            log::Level::Info => vxp_log_level::Info,
            log::Level::Debug => vxp_log_level::Debug,
            log::Level::Trace => vxp_log_level::Trace,
        };
        let msg = CString::new(text).expect("NULs replaced");
        // SAFETY: the host's callback with the host's user_data, per vxp_set_log_callback's contract.
        unsafe { cb(sink.user_data as *mut c_void, level as u32, msg.as_ptr()) };
    }

    fn flush(&self) {}
}

/// Routes the library's log messages at `level` and more severe to `callback` (process-wide: it replaces an
/// earlier callback; NULL or `VXP_LOG_LEVEL_OFF` stops logging). Messages include ONNX Runtime's own, the
/// execution providers that were not used and why, and warnings about input files. `user_data` is passed
/// back unchanged. If the host process already installed another Rust logger, the callback cannot be set
/// and `VXP_RESULT_UNSUPPORTED` is returned.
///
/// Returns `VXP_RESULT_OK`, `VXP_RESULT_INVALID_ARGUMENT` (level > 5) or `VXP_RESULT_UNSUPPORTED`. Safe to
/// call from any thread.
///
/// # Safety
/// `callback`, when not NULL, must stay callable with `user_data` from any thread until it is replaced.
#[no_mangle]
pub unsafe extern "C" fn vxp_set_log_callback(level: u32, callback: vxp_log_fn, user_data: *mut c_void) -> vxp_result {
    boundary(|| {
        let filter = match level {
            0 => log::LevelFilter::Off,
            1 => log::LevelFilter::Error,
            2 => log::LevelFilter::Warn,
            3 => log::LevelFilter::Info,
            4 => log::LevelFilter::Debug,
            5 => log::LevelFilter::Trace,
            l => {
                set_last_error(format!("log level {l} is not a vxp_log_level"));
                return vxp_result::InvalidArgument;
            }
        };
        static INSTALLED: once_cell::sync::OnceCell<bool> = once_cell::sync::OnceCell::new();
        if !*INSTALLED.get_or_init(|| log::set_logger(&Bridge).is_ok()) {
            set_last_error("another logger is already installed in this process");
            return vxp_result::Unsupported;
        }
        *SINK.write() = Sink { callback, user_data: user_data as usize };
        log::set_max_level(if callback.is_some() { filter } else { log::LevelFilter::Off });
        vxp_result::Ok
    })
}
