//! The committed header is the product: its version macros match Cargo.toml (including the derived one), and
//! every public item in it carries a doc comment.

mod common;

fn header() -> String {
    std::fs::read_to_string(common::root().join("include/voxprompt.h")).expect("include/voxprompt.h")
}

fn define(h: &str, name: &str) -> String {
    let prefix = format!("#define {name} ");
    h.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("{name} missing")).trim().to_string()
}

#[test]
fn version_macros_match_the_package() {
    let h = header();
    let major: u32 = define(&h, "VXP_VERSION_MAJOR").parse().unwrap();
    let minor: u32 = define(&h, "VXP_VERSION_MINOR").parse().unwrap();
    let patch: u32 = define(&h, "VXP_VERSION_PATCH").parse().unwrap();
    assert_eq!(major.to_string(), env!("CARGO_PKG_VERSION_MAJOR"));
    assert_eq!(minor.to_string(), env!("CARGO_PKG_VERSION_MINOR"));
    assert_eq!(patch.to_string(), env!("CARGO_PKG_VERSION_PATCH"));
    // The derived macro must use each component once, in its place (rustls-ffi once used MINOR twice).
    assert_eq!(
        define(&h, "VXP_VERSION_NUMBER"),
        "(VXP_VERSION_MAJOR * 10000 + VXP_VERSION_MINOR * 100 + VXP_VERSION_PATCH)"
    );
    let abi_major: u32 = define(&h, "VXP_ABI_VERSION_MAJOR").parse().unwrap();
    assert_eq!(abi_major, voxprompt::ffi::version::VXP_ABI_VERSION_MAJOR);
    assert_eq!(
        define(&h, "VXP_ABI_VERSION_MINOR").parse::<u32>().unwrap(),
        voxprompt::ffi::version::VXP_ABI_VERSION_MINOR
    );
}

#[test]
fn every_public_item_is_documented() {
    let h = header();
    let lines: Vec<&str> = h.lines().collect();
    let mut undocumented = Vec::new();
    let mut items = 0;
    for (n, line) in lines.iter().enumerate() {
        let declares =
            (line.starts_with("vxp_result ") || line.starts_with("const char *") || line.starts_with("void "))
                && line.contains("vxp_")
                || line.starts_with("typedef struct vxp_")
                || line.starts_with("typedef bool (*vxp_")
                || line.starts_with("enum vxp_")
                || (line.starts_with("#define VXP_")
                    && !line.starts_with("#define VXP_VERSION_M")
                    && !line.starts_with("#define VXP_VERSION_P"));
        if !declares {
            continue;
        }
        items += 1;
        let prev = lines[..n].iter().rev().find(|l| !l.trim().is_empty()).copied().unwrap_or("");
        if !prev.trim_end().ends_with("*/") {
            undocumented.push(line.to_string());
        }
    }
    assert!(items >= 30, "only {items} public items found: the scan is broken");
    assert!(undocumented.is_empty(), "undocumented items in include/voxprompt.h:\n{}", undocumented.join("\n"));
}

/// `(name, value)` of every `PREFIX*` enumerator in the header, with the doc text just above it.
fn enumerators(h: &str, prefix: &str) -> Vec<(String, u32, String)> {
    let lines: Vec<&str> = h.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some((name, value)) = line.trim().strip_suffix(',').and_then(|l| l.split_once(" = ")) else { continue };
        if !name.starts_with(prefix) {
            continue;
        }
        let doc = if lines[n - 1].trim() == "*/" { lines[n - 2].trim().trim_start_matches("* ") } else { "" };
        out.push((name.to_string(), value.parse().unwrap(), doc.to_string()));
    }
    out
}

fn screaming(prefix: &str, variant: &str) -> String {
    let mut s = prefix.to_string();
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push('_');
        }
        s.push(c.to_ascii_uppercase());
    }
    s
}

#[test]
fn every_table_is_in_the_header_with_its_values_and_result_texts() {
    use std::ffi::CStr;
    use voxprompt::ffi::{callback, error, result::vxp_result, settings, volume};
    let h = header();
    let results = enumerators(&h, "VXP_RESULT_");
    assert_eq!(results.len(), vxp_result::ALL.len());
    for (&r, (name, value, doc)) in vxp_result::ALL.iter().zip(&results) {
        // SAFETY: both return static NUL-terminated strings for a known code.
        let (c_name, text) =
            unsafe { (CStr::from_ptr(error::vxp_result_name(r as u32)), error::vxp_result_str(r as u32)) };
        assert_eq!((c_name.to_str().unwrap(), *value), (name.as_str(), r as u32));
        // SAFETY: as above.
        assert_eq!(unsafe { CStr::from_ptr(text) }.to_str().unwrap(), doc, "{name}: vxp_result_str and the header");
    }
    macro_rules! table {
        ($t:ty, $prefix:literal) => {{
            let found = enumerators(&h, $prefix);
            let expected: Vec<(String, u32)> =
                <$t>::ALL.iter().map(|&v| (screaming($prefix, v.variant_name()), v as u32)).collect();
            assert_eq!(found.into_iter().map(|(n, v, _)| (n, v)).collect::<Vec<_>>(), expected, $prefix);
        }};
    }
    table!(callback::vxp_log_level, "VXP_LOG_LEVEL_");
    table!(callback::vxp_stage, "VXP_STAGE_");
    table!(volume::vxp_dtype, "VXP_DTYPE_");
    table!(volume::vxp_intensity, "VXP_INTENSITY_");
    table!(settings::vxp_policy, "VXP_POLICY_");
    table!(settings::vxp_overlap, "VXP_OVERLAP_");
}
