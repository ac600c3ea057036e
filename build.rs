//! Generates include/voxprompt.h from src/ffi with cbindgen (pinned exactly in Cargo.toml), then groups its
//! items into one banner-separated section per ffi module. The header is committed; CI rebuilds and fails
//! if it changed.

use std::collections::BTreeMap;
use std::path::Path;

/// The header's sections, in order, with the src/ffi modules each holds. The results come first because
/// every other section's functions return a `vxp_result`, which C needs declared before use.
const SECTIONS: &[(&str, &[&str])] = &[
    ("Results and errors", &["result", "error"]),
    ("Version", &["version"]),
    ("Callbacks", &["callback"]),
    ("Options", &["options"]),
    ("Engine", &["engine"]),
    ("Concepts", &["concept"]),
    ("Volume", &["volume"]),
    ("Session", &["session"]),
    ("Prompts", &["prompt"]),
    ("Settings", &["settings"]),
];

const EXTERN_C_OPEN: &str = "#ifdef __cplusplus\nextern \"C\" {\n#endif // __cplusplus\n";
const EXTERN_C_CLOSE: &str = "#ifdef __cplusplus\n}  // extern \"C\"\n#endif  // __cplusplus\n";

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/error.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    // The SONAME carries the ABI major (src/ffi/version.rs VXP_ABI_VERSION_MAJOR).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvoxprompt.so.0");
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).expect("cbindgen.toml");
    // Version macros derive from Cargo.toml, so they cannot drift (tests/header.rs checks them).
    let v = |k: &str| std::env::var(k).expect("cargo sets the package version");
    let version_macros = format!(
        "/** Library version this header belongs to (see vxp_version() for the loaded library). */\n\
         #define VXP_VERSION_MAJOR {}\n#define VXP_VERSION_MINOR {}\n#define VXP_VERSION_PATCH {}\n\
         /** The version as one comparable number: MAJOR * 10000 + MINOR * 100 + PATCH. */\n\
         #define VXP_VERSION_NUMBER (VXP_VERSION_MAJOR * 10000 + VXP_VERSION_MINOR * 100 + VXP_VERSION_PATCH)",
        v("CARGO_PKG_VERSION_MAJOR"),
        v("CARGO_PKG_VERSION_MINOR"),
        v("CARGO_PKG_VERSION_PATCH")
    );
    // cbindgen does not expand macros, so it parses a copy of src/ffi in which each `u32_enum!` table
    // (src/error.rs) is the plain enum it wraps, plus the core's result-code table (ErrorCode, renamed
    // vxp_result in cbindgen.toml). Only src/ffi is the ABI otherwise: parsing the whole crate would export
    // core constants too.
    let src = Path::new(&out_dir).join("header-src");
    let ffi = src.join("ffi");
    std::fs::create_dir_all(&ffi).expect("OUT_DIR is writable");
    // Which module declares each exported name, for the sections.
    let mut module_of = BTreeMap::new();
    let mut paths: Vec<_> = std::fs::read_dir(format!("{crate_dir}/src/ffi"))
        .expect("src/ffi")
        .map(|e| e.expect("src/ffi entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    paths.sort();
    for path in paths {
        let text = unwrap_tables(&std::fs::read_to_string(&path).expect("readable source"), false);
        let module = path.file_stem().expect("a file").to_string_lossy().into_owned();
        for name in declared_names(&text) {
            module_of.insert(name, module.clone());
        }
        std::fs::write(ffi.join(path.file_name().expect("a file")), text).expect("OUT_DIR is writable");
    }
    let codes = src.join("codes.rs");
    let error_rs = std::fs::read_to_string(format!("{crate_dir}/src/error.rs")).expect("src/error.rs");
    let codes_text = unwrap_tables(&error_rs, true);
    for name in declared_names(&codes_text) {
        module_of.insert(config.export.rename.get(&name).cloned().unwrap_or(name), "result".to_string());
    }
    std::fs::write(&codes, codes_text).expect("OUT_DIR is writable");
    let builder = cbindgen::Builder::new().with_config(config).with_src(ffi.join("mod.rs")).with_src(codes);
    match builder.generate() {
        Ok(bindings) => {
            let mut raw = Vec::new();
            bindings.write(&mut raw);
            let header =
                sectioned(&String::from_utf8(raw).expect("cbindgen writes UTF-8"), &module_of, &version_macros);
            let path = format!("{crate_dir}/include/voxprompt.h");
            // Rewritten only when it changed, so an unchanged header keeps its timestamp.
            if std::fs::read_to_string(&path).ok().as_deref() != Some(header.as_str()) {
                std::fs::write(&path, header).expect("include/ is writable");
            }
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

/// The names of the public items a Rust source declares: exported functions, types and constants.
fn declared_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let l = line.trim_start();
        let rest = [
            "pub unsafe extern \"C\" fn ",
            "pub extern \"C\" fn ",
            "pub enum ",
            "pub struct ",
            "pub type ",
            "pub const ",
        ]
        .iter()
        .find_map(|p| l.strip_prefix(p));
        if let Some(rest) = rest {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            names.push(name);
        }
    }
    names
}

/// The C name an item of cbindgen's output declares: a macro, enum, struct, typedef or function.
fn c_name(item: &str) -> Option<String> {
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    for line in item.lines() {
        if line.starts_with("/**") || line.starts_with(" *") || line.starts_with("#if") || line.starts_with("#endif") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("#define ").or_else(|| line.strip_prefix("enum ")) {
            return Some(ident(rest));
        }
        if let Some(rest) = line.strip_prefix("typedef struct ") {
            return Some(ident(rest));
        }
        if let Some((_, rest)) = line.split_once("(*") {
            return Some(ident(rest));
        }
        if let Some((head, _)) = line.split_once('(') {
            return Some(ident(head.rsplit([' ', '*']).next().unwrap_or(head)));
        }
    }
    None
}

/// Regroups cbindgen's output (macros, then types, then functions) into one banner-separated section per
/// entry of `SECTIONS`, each holding its modules' items in cbindgen's order, all inside one `extern "C"`.
fn sectioned(raw: &str, module_of: &BTreeMap<String, String>, version_macros: &str) -> String {
    let open = raw.find(EXTERN_C_OPEN).expect("cbindgen opens extern \"C\"");
    let close = raw.rfind(EXTERN_C_CLOSE).expect("cbindgen closes extern \"C\"");
    // The prelude ends with the includes; the first item follows the first blank line after them.
    let includes_end = raw[..open].rfind("#include").expect("includes");
    let body_start = includes_end + raw[includes_end..].find("\n\n").expect("a blank line after the includes");
    let (prelude, types, functions) =
        (&raw[..body_start], &raw[body_start..open], &raw[open + EXTERN_C_OPEN.len()..close]);
    let epilogue = &raw[close + EXTERN_C_CLOSE.len()..];
    let mut by_section: Vec<Vec<&str>> = vec![Vec::new(); SECTIONS.len()];
    for item in
        types.split("\n\n").chain(functions.split("\n\n")).map(|i| i.trim_matches('\n')).filter(|i| !i.is_empty())
    {
        let name = c_name(item).unwrap_or_else(|| panic!("no C name in header item:\n{item}"));
        let module = module_of.get(&name).unwrap_or_else(|| panic!("{name}: no src/ffi module declares it"));
        let section = SECTIONS
            .iter()
            .position(|(_, modules)| modules.contains(&module.as_str()))
            .unwrap_or_else(|| panic!("module {module} ({name}) has no section in build.rs SECTIONS"));
        by_section[section].push(item);
    }
    let mut out = format!("{}\n\n{EXTERN_C_OPEN}", prelude.trim_end());
    for ((title, _), items) in SECTIONS.iter().zip(&by_section) {
        let banner = format!("/* Section - {title} */");
        let rule = format!("/{}/", "*".repeat(banner.len() - 2));
        out.push_str(&format!("\n{rule}\n{banner}\n{rule}\n"));
        if *title == "Version" {
            out.push_str(&format!("\n{version_macros}\n"));
        }
        for item in items {
            out.push_str(&format!("\n{item}\n"));
        }
    }
    out.push_str(&format!("\n{EXTERN_C_CLOSE}{epilogue}"));
    out
}
