//! Generates include/voxprompt.h from src/ffi with cbindgen (pinned exactly in Cargo.toml). The header is
//! committed; CI rebuilds and fails if it changed.

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // The SONAME carries the ABI major (src/ffi/version.rs VXP_ABI_VERSION_MAJOR).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvoxprompt.so.0");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml");
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
