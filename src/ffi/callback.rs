//! The host's callbacks. Log: the library logs through the `log` crate, and this bridge hands every record
//! at or above the host's level to the callback; the `log` crate has one logger per process, so the
//! callback is process-wide. Progress: `vxp_progress_fn` with the `vxp_stage` it reports, per run.

use std::ffi::{c_char, c_void, CString};

use parking_lot::RwLock;

use super::error::{boundary, set_last_error};
use super::result::vxp_result;
use crate::error::u32_enum;

u32_enum! {
    /// Log levels for `vxp_set_log_callback`.
    #[repr(u32)]
    pub enum vxp_log_level {
        /// Nothing is logged.
        Off = 0,
        Error = 1,
        Warn = 2,
        Info = 3,
        Debug = 4,
        Trace = 5,
    }
}

impl From<vxp_log_level> for log::LevelFilter {
    fn from(l: vxp_log_level) -> Self {
        match l {
            vxp_log_level::Off => log::LevelFilter::Off,
            vxp_log_level::Error => log::LevelFilter::Error,
            vxp_log_level::Warn => log::LevelFilter::Warn,
            vxp_log_level::Info => log::LevelFilter::Info,
            vxp_log_level::Debug => log::LevelFilter::Debug,
            vxp_log_level::Trace => log::LevelFilter::Trace,
        }
    }
}

impl From<log::Level> for vxp_log_level {
    fn from(l: log::Level) -> Self {
        match l {
            log::Level::Error => vxp_log_level::Error,
            log::Level::Warn => vxp_log_level::Warn,
            log::Level::Info => vxp_log_level::Info,
            log::Level::Debug => vxp_log_level::Debug,
            log::Level::Trace => vxp_log_level::Trace,
        }
    }
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
        let level = vxp_log_level::from(record.level());
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
        let filter = match vxp_log_level::try_from(level) {
            Ok(l) => log::LevelFilter::from(l),
            Err(l) => {
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

u32_enum! {
    /// Stages reported to a progress callback.
    #[repr(u32)]
    pub enum vxp_stage {
        /// Encoding and decoding slices, propagating through the volume.
        Segment = 1,
    }
}

/// Progress callback: `stage` is a `vxp_stage`, `fraction` in [0, 1]. Return false to cancel; the run then
/// returns `VXP_RESULT_CANCELLED`. Called on the thread that runs the session.
pub type vxp_progress_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, stage: u32, fraction: f32) -> bool>;
