//! Generates include/voxprompt.h from src/ffi with cbindgen (pinned exactly in Cargo.toml). The header is
//! committed; CI rebuilds and fails if it changed.

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // The SONAME carries the ABI major (src/ffi/version.rs VXP_ABI_VERSION_MAJOR).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvoxprompt.so.0");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
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
    // Only src/ffi is the ABI (cbindgen follows its `mod` items); parsing the whole crate would export core
    // constants too.
    let builder = cbindgen::Builder::new().with_config(config).with_src(format!("{crate_dir}/src/ffi/mod.rs"));
    match builder.generate() {
        Ok(bindings) => {
            bindings.write_to_file(format!("{crate_dir}/include/voxprompt.h"));
        }
        // A half-edited src/ffi must not break the build of everything else; the header diff check catches it.
        Err(e) => println!("cargo:warning=header not regenerated: {e}"),
    }
}
