//! Generates include/voxprompt.h from src/ffi with cbindgen (pinned exactly in Cargo.toml). The header is
//! committed; CI rebuilds and fails if it changed.

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml");
    // Only src/ffi is the ABI; parsing the whole crate would export core constants too.
    let mut builder = cbindgen::Builder::new().with_config(config);
    let mut files: Vec<_> = std::fs::read_dir(format!("{crate_dir}/src/ffi"))
        .expect("src/ffi")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for f in files {
        builder = builder.with_src(f);
    }
    match builder.generate() {
        Ok(bindings) => {
            bindings.write_to_file(format!("{crate_dir}/include/voxprompt.h"));
        }
        // A half-edited src/ffi must not break the build of everything else; the header diff check catches it.
        Err(e) => println!("cargo:warning=header not regenerated: {e}"),
    }
}
