//! The core error type. Every variant carries the offending values in its message and maps to exactly one
//! result code, so the C ABI (and the CLI's exit path) can report it without losing information.

use std::path::PathBuf;

/// Result codes shared by the C ABI and the CLI. Values are explicit and never reused.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Ok = 0,
    // --- caller mistakes (1xx)
    NullArgument = 100,
    InvalidArgument = 101,
    ShapeMismatch = 102,
    UnsupportedDtype = 103,
    BufferTooSmall = 104,
    InvalidVolume = 105,
    InvalidPrompt = 106,
    UnknownConcept = 107,
    Unsupported = 108,
    NothingToUndo = 109,
    // --- model packages (2xx)
    ModelNotFound = 200,
    ModelIntegrity = 201,
    ModelContract = 202,
    // --- runtime (3xx)
    RuntimeLoad = 300,
    RuntimeVersion = 301,
    RuntimeMismatch = 302,
    ProviderUnavailable = 303,
    Inference = 304,
    // --- control flow and resources (4xx)
    Cancelled = 400,
    OutOfMemory = 401,
    Io = 402,
    BudgetTooSmall = 403,
    // --- bugs (9xx)
    Panic = 900,
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
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::InvalidVolume(_) => ErrorCode::InvalidVolume,
            Error::UnsupportedDtype(_) => ErrorCode::UnsupportedDtype,
            Error::ShapeMismatch(_) => ErrorCode::ShapeMismatch,
            Error::InvalidPrompt(_) => ErrorCode::InvalidPrompt,
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
