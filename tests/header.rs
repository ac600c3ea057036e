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
