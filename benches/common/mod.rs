//! What every benchmark needs: the repository root, the ONNX Runtime library and the machine's name, which
//! every printed figure carries (our machines change kind between sessions: compare ratios, not seconds).
#![allow(dead_code)]

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `VXP_ORT_LIB`, else the copy `make setup` fetches.
pub fn ort_lib() -> PathBuf {
    std::env::var_os("VXP_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".deps/onnxruntime/lib/libonnxruntime.so.1.32.0"))
}

/// "AMD EPYC, 2 logical CPUs": lscpu's model name and the CPUs this process may use.
pub fn machine() -> String {
    let out = std::process::Command::new("lscpu").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let name = out
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{name}, {} logical CPUs", std::thread::available_parallelism().map_or(0, |n| n.get()))
}
