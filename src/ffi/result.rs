//! Result codes. `vxp_result` is the core's code table, `crate::error::ErrorCode`, under its C name: the
//! values, names and descriptions are written once there (build.rs hands that table to cbindgen renamed,
//! see cbindgen.toml), so the ABI, the core and `vxp_result_str` cannot drift apart.

pub use crate::error::ErrorCode as vxp_result;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    // `vxp_result` and `ErrorCode` are one type now, so `from` is the identity; the test still pins that.
    #[allow(clippy::useless_conversion)]
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
            InvalidHandle,
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
            TooLarge,
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

    #[test]
    fn every_table_converts_each_value_both_ways() {
        use crate::ffi::{callback, settings, volume};
        fn check<T: Copy + std::fmt::Debug + Eq + TryFrom<u32, Error = u32>>(all: &[T], value: impl Fn(T) -> u32) {
            let mut seen = std::collections::HashSet::new();
            for &v in all {
                assert!(seen.insert(value(v)), "{v:?} reuses a value");
                assert_eq!(T::try_from(value(v)), Ok(v));
            }
            assert_eq!(T::try_from(12345), Err(12345));
        }
        check(vxp_result::ALL, |v| v as u32);
        check(callback::vxp_log_level::ALL, |v| v as u32);
        check(callback::vxp_stage::ALL, |v| v as u32);
        check(volume::vxp_dtype::ALL, |v| v as u32);
        check(volume::vxp_intensity::ALL, |v| v as u32);
        check(settings::vxp_policy::ALL, |v| v as u32);
        check(settings::vxp_overlap::ALL, |v| v as u32);
        assert_eq!(vxp_result::ALL.len(), 26);
        assert_eq!(settings::vxp_policy::Reseed.describe().to_str().unwrap().split(' ').next(), Some("Reliable-slice"));
    }

    #[test]
    fn result_names_are_the_header_enumerators() {
        use crate::ffi::error::vxp_result_name;
        // SAFETY: vxp_result_name returns NULL or a static NUL-terminated string.
        let name = |v: u32| unsafe { std::ffi::CStr::from_ptr(vxp_result_name(v)) }.to_str().unwrap();
        assert_eq!(name(106), "VXP_RESULT_INVALID_PROMPT");
        assert_eq!(name(0), "VXP_RESULT_OK");
        assert_eq!(name(402), "VXP_RESULT_IO");
        assert_eq!(name(303), "VXP_RESULT_PROVIDER_UNAVAILABLE");
        assert!(vxp_result_name(12345).is_null());
        for &r in vxp_result::ALL {
            assert!(name(r as u32).starts_with("VXP_RESULT_"), "{r:?}");
            assert!(!r.describe().is_empty() && !r.describe().to_bytes().starts_with(b" "), "{r:?}");
        }
    }
}
