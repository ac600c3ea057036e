//! The core error type. Every variant carries the offending values in its message and maps to exactly one
//! result code, so the C ABI (and the CLI's exit path) can report it without losing information.

use std::path::PathBuf;

/// One table per C ABI enum, in the spirit of rustls-ffi's `u32_enum_builder!`: each variant, its value
/// and its doc comment are written once, and what hosts' numbers need is derived from them here: the
/// `TryFrom<u32>` that turns an ABI value into a variant (the unknown value comes back as the error), the
/// list of every variant, each variant's name and its doc comment as a one-line static C string (for
/// `vxp_result` that is `vxp_result_str`'s text). The body is a plain `#[repr(u32)]` enum, so build.rs
/// hands it to cbindgen (which does not expand macros) by dropping the `u32_enum! {` line and its closing
/// `}`; both must stand alone at the start of a line.
macro_rules! u32_enum {
    (
        $(#[doc = $doc:literal])*
        #[repr(u32)]
        $vis:vis enum $name:ident {
            $(
                $(#[doc = $vdoc:literal])*
                $var:ident = $val:literal
            ),+ $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[doc = $vdoc])* $var = $val, )+
        }

        impl $name {
            /// Every variant, in the order of the table.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The variant's doc comment as one line.
            pub const fn describe(self) -> &'static ::std::ffi::CStr {
                match self {
                    $($name::$var => const { $crate::error::doc_line(concat!($($vdoc,)* "\0")) },)+
                }
            }

            /// The variant's name as written in the table (`InvalidPrompt`).
            pub const fn variant_name(self) -> &'static str {
                match self {
                    $($name::$var => stringify!($var),)+
                }
            }
        }

        impl TryFrom<u32> for $name {
            /// The value, which names no variant.
            type Error = u32;

            fn try_from(v: u32) -> ::std::result::Result<Self, u32> {
                match v {
                    $($val => Ok($name::$var),)+
                    other => Err(other),
                }
            }
        }
    };
}
pub(crate) use u32_enum;

/// A doc comment (`///` lines concatenated, each with its leading space, NUL-terminated) as one line.
pub(crate) const fn doc_line(doc: &'static str) -> &'static std::ffi::CStr {
    let bytes = match doc.as_bytes() {
        [b' ', rest @ ..] => rest,
        all => all,
    };
    match std::ffi::CStr::from_bytes_with_nul(bytes) {
        Ok(s) => s,
        Err(_) => panic!("a doc comment of a u32_enum! variant holds a NUL"),
    }
}

u32_enum! {
    /// Result codes, returned by every `vxp_*` call that can fail (`vxp_result` in C; in Rust `ErrorCode`,
    /// from `Error::code`). `VXP_RESULT_OK` is 0; anything else is an error whose message `vxp_last_error`
    /// returns on the same thread. Families: 1xx caller mistakes, 2xx model packages, 3xx ONNX Runtime,
    /// 4xx control flow and resources, 9xx bugs. Values never change meaning and are never reused.
    #[repr(u32)]
    pub enum ErrorCode {
        // Retired codes stay here as comments, so their values are never handed out again.
        /// ok
        Ok = 0,
        // --- caller mistakes (1xx)
        /// a required pointer argument was NULL
        NullArgument = 100,
        /// invalid argument
        InvalidArgument = 101,
        /// shape mismatch
        ShapeMismatch = 102,
        /// unsupported data type
        UnsupportedDtype = 103,
        /// buffer too small
        BufferTooSmall = 104,
        /// invalid volume
        InvalidVolume = 105,
        /// invalid prompt
        InvalidPrompt = 106,
        /// unknown concept
        UnknownConcept = 107,
        /// not supported
        Unsupported = 108,
        /// nothing to undo or redo
        NothingToUndo = 109,
        /// the handle is not live: freed already, freed twice, or never made by this library
        InvalidHandle = 110,
        // --- model packages (2xx)
        /// model package not found
        ModelNotFound = 200,
        /// model file failed its integrity check
        ModelIntegrity = 201,
        /// model does not fulfil its declared contract
        ModelContract = 202,
        // --- ONNX Runtime (3xx)
        /// ONNX Runtime library could not be loaded
        RuntimeLoad = 300,
        /// ONNX Runtime library is too old
        RuntimeVersion = 301,
        /// another ONNX Runtime library is already loaded
        RuntimeMismatch = 302,
        /// execution provider unavailable
        ProviderUnavailable = 303,
        /// inference failed
        Inference = 304,
        // --- control flow and resources (4xx)
        /// cancelled
        Cancelled = 400,
        /// out of memory
        OutOfMemory = 401,
        /// input/output error
        Io = 402,
        /// memory budget too small
        BudgetTooSmall = 403,
        /// volume or file larger than the configured limit
        TooLarge = 404,
        // --- a bug in the library, caught at the boundary (9xx)
        /// internal error (a bug in libvoxprompt); the host is unaffected
        Panic = 900,
    }
}

/// Every failure the library can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("invalid volume: {0}")]
    InvalidVolume(String),
    #[error("unsupported data type: {0}")]
    UnsupportedDtype(String),
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    #[error("invalid prompt: {0}")]
    InvalidPrompt(String),
    /// The message names the phrase and the closest concepts.
    #[error("unknown concept: {0}")]
    UnknownConcept(String),
    #[error("model package not found: {0}")]
    ModelNotFound(String),
    #[error("model integrity check failed: {0}")]
    ModelIntegrity(String),
    #[error("model contract violated: {0}")]
    ModelContract(String),
    #[error("ONNX Runtime library could not be loaded: {0}")]
    RuntimeLoad(String),
    #[error("ONNX Runtime library is too old: {0}")]
    RuntimeVersion(String),
    #[error("ONNX Runtime already initialised from another library: {0}")]
    RuntimeMismatch(String),
    #[error("execution provider unavailable: {0}")]
    ProviderUnavailable(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{0}")]
    NothingToUndo(String),
    #[error("memory budget too small: {0}")]
    BudgetTooSmall(String),
    /// The message names the source, what it declares and the limit.
    #[error("too large: {0}")]
    TooLarge(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::InvalidVolume(_) => ErrorCode::InvalidVolume,
            Error::UnsupportedDtype(_) => ErrorCode::UnsupportedDtype,
            Error::ShapeMismatch(_) => ErrorCode::ShapeMismatch,
            Error::InvalidPrompt(_) => ErrorCode::InvalidPrompt,
            Error::UnknownConcept(_) => ErrorCode::UnknownConcept,
            Error::ModelNotFound(_) => ErrorCode::ModelNotFound,
            Error::ModelIntegrity(_) => ErrorCode::ModelIntegrity,
            Error::ModelContract(_) => ErrorCode::ModelContract,
            Error::RuntimeLoad(_) => ErrorCode::RuntimeLoad,
            Error::RuntimeVersion(_) => ErrorCode::RuntimeVersion,
            Error::RuntimeMismatch(_) => ErrorCode::RuntimeMismatch,
            Error::ProviderUnavailable(_) => ErrorCode::ProviderUnavailable,
            Error::Inference(_) => ErrorCode::Inference,
            Error::Cancelled => ErrorCode::Cancelled,
            Error::Io { .. } => ErrorCode::Io,
            Error::Unsupported(_) => ErrorCode::Unsupported,
            Error::NothingToUndo(_) => ErrorCode::NothingToUndo,
            Error::BudgetTooSmall(_) => ErrorCode::BudgetTooSmall,
            Error::TooLarge(_) => ErrorCode::TooLarge,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, err: impl std::fmt::Display) -> Error {
        Error::Io { path: path.into(), message: err.to_string() }
    }
}

/// The single place where ONNX Runtime errors become ours.
impl From<ort::Error> for Error {
    fn from(e: ort::Error) -> Self {
        Error::Inference(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;
