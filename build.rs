//! Generates include/voxprompt.h from src/ffi with cbindgen (pinned exactly in Cargo.toml). The header is
//! committed; CI rebuilds and fails if it changed.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // The SONAME carries the ABI major (src/ffi/version.rs VXP_ABI_VERSION_MAJOR).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvoxprompt.so.0");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml");
    // Version macros derive from Cargo.toml, so they cannot drift (tests/header.rs checks them).
    let v = |k: &str| std::env::var(k).expect("cargo sets the package version");
    config.after_includes = Some(format!(
        "\n/** Library version this header belongs to (see vxp_version() for the loaded library). */\n\
         #define VXP_VERSION_MAJOR {}\n#define VXP_VERSION_MINOR {}\n#define VXP_VERSION_PATCH {}\n\
         /** The version as one comparable number: MAJOR * 10000 + MINOR * 100 + PATCH. */\n\
         #define VXP_VERSION_NUMBER (VXP_VERSION_MAJOR * 10000 + VXP_VERSION_MINOR * 100 + VXP_VERSION_PATCH)\n",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH")
    ));
    // cbindgen does not expand macros, so it parses a copy of src/ffi in which each `u32_enum!` table
    // (src/error.rs) is the plain enum it wraps, plus the core's result-code table (ErrorCode, renamed
    // vxp_result in cbindgen.toml). Only src/ffi is the ABI otherwise: parsing the whole crate would export
    // core constants too.
    let src = Path::new(&out_dir).join("header-src");
    let ffi = src.join("ffi");
    std::fs::create_dir_all(&ffi).expect("OUT_DIR is writable");
    for entry in std::fs::read_dir(format!("{crate_dir}/src/ffi")).expect("src/ffi") {
        let path = entry.expect("src/ffi entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("readable source");
            std::fs::write(ffi.join(path.file_name().expect("a file")), unwrap_tables(&text, false))
                .expect("OUT_DIR is writable");
        }
    }
    let codes = src.join("codes.rs");
    let error_rs = std::fs::read_to_string(format!("{crate_dir}/src/error.rs")).expect("src/error.rs");
    std::fs::write(&codes, unwrap_tables(&error_rs, true)).expect("OUT_DIR is writable");
    let builder = cbindgen::Builder::new().with_config(config).with_src(ffi.join("mod.rs")).with_src(codes);
    match builder.generate() {
        Ok(bindings) => {
            bindings.write_to_file(format!("{crate_dir}/include/voxprompt.h"));
        }
        // A half-edited src/ffi must not break the build of everything else; the header diff check catches it.
        Err(e) => println!("cargo:warning=header not regenerated: {e}"),
    }
}

/// `text` with every `u32_enum! {` … `}` table replaced by the enum it wraps (the macro line and its
/// closing `}` stand alone at the start of a line, see src/error.rs). With `only_tables`, everything
/// outside the tables is dropped.
fn unwrap_tables(text: &str, only_tables: bool) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if !inside && line == "u32_enum! {" {
            inside = true;
        } else if inside && line == "}" {
            inside = false;
        } else if inside || !only_tables {
            out.push_str(line.strip_prefix("    ").filter(|_| inside).unwrap_or(line));
            out.push('\n');
        }
    }
    assert!(!inside, "a u32_enum! table has no closing `}}` at the start of a line");
    out
}
