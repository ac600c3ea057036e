//! Result codes. Values are explicit, grouped by family, and never reused; retired codes stay as comments.

use crate::error::ErrorCode;

/// The result of every `vxp_*` call that can fail. `VXP_RESULT_OK` is 0; anything else is an error whose
/// message `vxp_last_error` returns on the same thread. Values never change meaning between versions.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum vxp_result {
    Ok = 0,
    // caller mistakes
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
    // model packages
    ModelNotFound = 200,
    ModelIntegrity = 201,
    ModelContract = 202,
    // ONNX Runtime
    RuntimeLoad = 300,
    RuntimeVersion = 301,
    RuntimeMismatch = 302,
    ProviderUnavailable = 303,
    Inference = 304,
    // control flow and resources
    Cancelled = 400,
    OutOfMemory = 401,
    Io = 402,
    BudgetTooSmall = 403,
    // a bug in the library, caught at the boundary
    Panic = 900,
}

impl From<ErrorCode> for vxp_result {
    fn from(c: ErrorCode) -> Self {
        match c {
            ErrorCode::Ok => vxp_result::Ok,
            ErrorCode::NullArgument => vxp_result::NullArgument,
            ErrorCode::InvalidArgument => vxp_result::InvalidArgument,
            ErrorCode::ShapeMismatch => vxp_result::ShapeMismatch,
            ErrorCode::UnsupportedDtype => vxp_result::UnsupportedDtype,
            ErrorCode::BufferTooSmall => vxp_result::BufferTooSmall,
            ErrorCode::InvalidVolume => vxp_result::InvalidVolume,
            ErrorCode::InvalidPrompt => vxp_result::InvalidPrompt,
            ErrorCode::UnknownConcept => vxp_result::UnknownConcept,
            ErrorCode::Unsupported => vxp_result::Unsupported,
            ErrorCode::NothingToUndo => vxp_result::NothingToUndo,
            ErrorCode::BudgetTooSmall => vxp_result::BudgetTooSmall,
            ErrorCode::ModelNotFound => vxp_result::ModelNotFound,
            ErrorCode::ModelIntegrity => vxp_result::ModelIntegrity,
            ErrorCode::ModelContract => vxp_result::ModelContract,
            ErrorCode::RuntimeLoad => vxp_result::RuntimeLoad,
            ErrorCode::RuntimeVersion => vxp_result::RuntimeVersion,
            ErrorCode::RuntimeMismatch => vxp_result::RuntimeMismatch,
            ErrorCode::ProviderUnavailable => vxp_result::ProviderUnavailable,
            ErrorCode::Inference => vxp_result::Inference,
            ErrorCode::Cancelled => vxp_result::Cancelled,
            ErrorCode::OutOfMemory => vxp_result::OutOfMemory,
            ErrorCode::Io => vxp_result::Io,
            ErrorCode::Panic => vxp_result::Panic,
        }
    }
}

impl vxp_result {
    /// A short, static description of the code.
    pub(crate) fn describe(self) -> &'static std::ffi::CStr {
        match self {
            vxp_result::Ok => c"ok",
            vxp_result::NullArgument => c"a required pointer argument was NULL",
            vxp_result::InvalidArgument => c"invalid argument",
            vxp_result::ShapeMismatch => c"shape mismatch",
            vxp_result::UnsupportedDtype => c"unsupported data type",
            vxp_result::BufferTooSmall => c"buffer too small",
            vxp_result::InvalidVolume => c"invalid volume",
            vxp_result::InvalidPrompt => c"invalid prompt",
            vxp_result::UnknownConcept => c"unknown concept",
            vxp_result::Unsupported => c"not supported",
            vxp_result::NothingToUndo => c"nothing to undo or redo",
            vxp_result::BudgetTooSmall => c"memory budget too small",
            vxp_result::ModelNotFound => c"model package not found",
            vxp_result::ModelIntegrity => c"model file failed its integrity check",
            vxp_result::ModelContract => c"model does not fulfil its declared contract",
            vxp_result::RuntimeLoad => c"ONNX Runtime library could not be loaded",
            vxp_result::RuntimeVersion => c"ONNX Runtime library is too old",
            vxp_result::RuntimeMismatch => c"another ONNX Runtime library is already loaded",
            vxp_result::ProviderUnavailable => c"execution provider unavailable",
            vxp_result::Inference => c"inference failed",
            vxp_result::Cancelled => c"cancelled",
            vxp_result::OutOfMemory => c"out of memory",
            vxp_result::Io => c"input/output error",
            vxp_result::Panic => c"internal error (a bug in libvoxprompt); the host is unaffected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_code_keeps_its_value_and_has_a_description() {
        use ErrorCode::*;
        for c in [
            Ok,
            NullArgument,
            InvalidArgument,
            ShapeMismatch,
            UnsupportedDtype,
            BufferTooSmall,
            InvalidVolume,
            InvalidPrompt,
            UnknownConcept,
            Unsupported,
            NothingToUndo,
            ModelNotFound,
            ModelIntegrity,
            ModelContract,
            RuntimeLoad,
            RuntimeVersion,
            RuntimeMismatch,
            ProviderUnavailable,
            Inference,
            Cancelled,
            OutOfMemory,
            Io,
            BudgetTooSmall,
            Panic,
        ] {
            let r = vxp_result::from(c);
            assert_eq!(r as u32, c as u32, "{c:?}");
            // SAFETY: vxp_result_str returns a static NUL-terminated string.
            let s = unsafe { std::ffi::CStr::from_ptr(crate::ffi::error::vxp_result_str(r as u32)) };
            assert_eq!(s, r.describe(), "{c:?}");
            assert_ne!(s.to_bytes(), b"unknown result code");
        }
    }
}
