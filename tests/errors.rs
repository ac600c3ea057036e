//! Bad input: every case is a typed error whose message names the problem, never a panic.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use voxprompt::engine::{Engine, EngineOptions};
use voxprompt::io::read_volume;
use voxprompt::model::SessionConfig;
use voxprompt::runtime;
use voxprompt::volume::intensity::IntensityMapping;
use voxprompt::volume::{BoxIjk, DType, Geometry, VolumeView};
use voxprompt::ErrorCode;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vxp-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Builds a shared library that exports `OrtGetApiBase` reporting `version` (or no such symbol).
fn fake_ort(dir: &Path, version: Option<&str>) -> PathBuf {
    let src = dir.join("fake.c");
    let body = match version {
        Some(v) => format!(
            "typedef struct {{ const void* (*GetApi)(unsigned); const char* (*GetVersionString)(void); }} Base;\n\
             static const void* get_api(unsigned v) {{ (void)v; return 0; }}\n\
             static const char* ver(void) {{ return \"{v}\"; }}\n\
             static const Base base = {{ get_api, ver }};\n\
             const Base* OrtGetApiBase(void) {{ return &base; }}\n"
        ),
        None => "int not_onnxruntime(void) { return 1; }\n".to_string(),
    };
    std::fs::write(&src, body).unwrap();
    let lib = dir.join("libfakeort.so");
    let st =
        std::process::Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&lib).arg(&src).status().expect("cc");
    assert!(st.success());
    lib
}

#[test]
fn missing_runtime_library_is_reported() {
    let e = runtime::runtime(Some(Path::new("/nonexistent/libonnxruntime.so.1"))).err().unwrap();
    assert_eq!(e.code(), ErrorCode::RuntimeLoad);
    assert!(e.to_string().contains("/nonexistent/libonnxruntime.so.1"), "{e}");
}

#[test]
fn too_old_or_foreign_runtime_library_is_reported() {
    let d = tmpdir("oldort");
    let e = runtime::runtime(Some(&fake_ort(&d, Some("1.16.3")))).err().unwrap();
    assert_eq!(e.code(), ErrorCode::RuntimeVersion, "{e}");
    assert!(e.to_string().contains("1.16.3") && e.to_string().contains("1.31"), "{e}");
    let d = tmpdir("notort");
    let e = runtime::runtime(Some(&fake_ort(&d, None))).err().unwrap();
    assert_eq!(e.code(), ErrorCode::RuntimeLoad, "{e}");
    assert!(e.to_string().contains("OrtGetApiBase"), "{e}");
}

#[test]
fn a_second_runtime_library_is_a_reported_mismatch() {
    once_cell::sync::Lazy::force(&ENGINE);
    let d = tmpdir("secondort");
    let copy = d.join("libonnxruntime.so.1");
    std::fs::copy(ort_lib(), &copy).unwrap();
    let e = runtime::runtime(Some(&copy)).err().unwrap();
    assert_eq!(e.code(), ErrorCode::RuntimeMismatch, "{e}");
    assert!(e.to_string().contains("already loaded"), "{e}");
    // The loaded one keeps working.
    assert!(runtime::runtime(Some(&ort_lib())).is_ok());
}

fn engine_with_model(dir: &Path) -> voxprompt::Result<Engine> {
    Engine::new(&EngineOptions {
        ort_library: Some(ort_lib()),
        model_dirs: vec![dir.to_path_buf()],
        session: SessionConfig::default(),
        brain_atlas: None,
    })
}

#[test]
fn missing_model_package_is_reported() {
    let e = engine_with_model(Path::new("/nonexistent/model")).err().unwrap();
    assert_eq!(e.code(), ErrorCode::ModelNotFound);
    assert!(e.to_string().contains("/nonexistent/model/manifest.toml"), "{e}");
}

#[test]
fn tampered_model_file_is_refused() {
    let d = tmpdir("tamper");
    for f in ["manifest.toml", "encoder.onnx", "encoder-fused.onnx", "decoder.onnx"] {
        std::fs::copy(model_dir().join(f), d.join(f)).unwrap();
    }
    let mut bytes = std::fs::read(d.join("decoder.onnx")).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    std::fs::write(d.join("decoder.onnx"), bytes).unwrap();
    let e = engine_with_model(&d).err().unwrap();
    assert_eq!(e.code(), ErrorCode::ModelIntegrity);
    assert!(e.to_string().contains("decoder.onnx") && e.to_string().contains("sha256"), "{e}");

    // A graph that names a missing graph as its origin is a broken package.
    let manifest = std::fs::read_to_string(model_dir().join("manifest.toml")).unwrap();
    let broken = manifest.replace("derived_from = \"encoder_export\"", "derived_from = \"encoder_v0\"");
    assert_ne!(broken, manifest);
    std::fs::write(d.join("manifest.toml"), broken).unwrap();
    let e = engine_with_model(&d).err().unwrap();
    assert_eq!(e.code(), ErrorCode::ModelContract);
    assert!(e.to_string().contains("\"encoder_v0\""), "{e}");

    // A newer contract than this build understands is refused before any file is read.
    let manifest = std::fs::read_to_string(model_dir().join("manifest.toml")).unwrap();
    std::fs::write(d.join("manifest.toml"), manifest.replace("contract_version = 1", "contract_version = 99")).unwrap();
    let e = engine_with_model(&d).err().unwrap();
    assert_eq!(e.code(), ErrorCode::ModelContract);
    assert!(e.to_string().contains("contract_version 99"), "{e}");
}

fn volume_i16(vals: &[i16]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_ne_bytes()).collect()
}

fn obj(min: [usize; 3], max: [usize; 3]) -> [(u8, BoxIjk); 1] {
    [(1, BoxIjk { min, max })]
}

#[test]
fn bad_boxes_are_invalid_prompts() {
    let bytes = volume_i16(&(0..8 * 8 * 4).map(|v| (v * 7 % 300) as i16 - 100).collect::<Vec<_>>());
    let view = VolumeView::contiguous(&bytes, DType::I16, [8, 8, 4], Geometry::default()).unwrap();
    for (boxes, needle) in [
        (obj([0, 0, 0], [8, 7, 3]), "outside the volume"),
        (obj([0, 0, 2], [7, 7, 9]), "outside the volume"),
        (obj([5, 0, 0], [2, 7, 3]), "inverted"),
        (obj([0, 0, 3], [7, 7, 1]), "inverted"),
    ] {
        let e = segment_reference(&view, IntensityMapping::CT, &boxes, None).err().unwrap();
        assert_eq!(e.code(), ErrorCode::InvalidPrompt, "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

#[test]
fn unusable_volumes_are_invalid() {
    let constant = volume_i16(&[40; 64]);
    let view = VolumeView::contiguous(&constant, DType::I16, [4, 4, 4], Geometry::default()).unwrap();
    let e = segment_reference(&view, IntensityMapping::CT, &obj([0, 0, 0], [3, 3, 3]), None).err().unwrap();
    assert_eq!(e.code(), ErrorCode::InvalidVolume);
    assert!(e.to_string().contains("constant intensity"), "{e}");

    let mut f: Vec<f32> = (0..64).map(|v| v as f32).collect();
    f[17] = f32::NAN;
    let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_ne_bytes()).collect();
    let view = VolumeView::contiguous(&bytes, DType::F32, [4, 4, 4], Geometry::default()).unwrap();
    let e = segment_reference(&view, IntensityMapping::MR, &obj([0, 0, 0], [3, 3, 3]), None).err().unwrap();
    assert_eq!(e.code(), ErrorCode::InvalidVolume);
    assert!(e.to_string().contains("NaN"), "{e}");

    let e = VolumeView::contiguous(&[], DType::U8, [0, 4, 4], Geometry::default()).err().unwrap();
    assert_eq!(e.code(), ErrorCode::InvalidVolume);
    assert!(e.to_string().contains("zero-sized"), "{e}");

    let e = VolumeView::new(&[0u8; 100], 0, DType::I16, [10, 10, 1], [2, 20, 200], Geometry::default()).err().unwrap();
    assert_eq!(e.code(), ErrorCode::InvalidVolume);
    assert!(e.to_string().contains("outside the buffer of 100 bytes"), "{e}");
}

#[test]
fn unreadable_and_truncated_files_are_io_errors() {
    let d = tmpdir("files");
    let e = read_volume(&d.join("missing.nii.gz")).err().unwrap();
    assert_eq!(e.code(), ErrorCode::Io);
    assert!(e.to_string().contains("missing.nii.gz"), "{e}");

    let src = std::fs::read(data("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap();
    let cut = d.join("cut.nii.gz");
    std::fs::write(&cut, &src[..src.len() / 2]).unwrap();
    let e = read_volume(&cut).err().unwrap();
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    assert!(e.to_string().contains("cut.nii.gz"), "{e}");

    let nrrd = std::fs::read(data("tests/fixtures/data/breast1_image.nrrd")).unwrap();
    let cut = d.join("cut.nrrd");
    std::fs::write(&cut, &nrrd[..nrrd.len() - 500]).unwrap();
    let e = read_volume(&cut).err().unwrap();
    assert_eq!(e.code(), ErrorCode::Io, "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");

    let junk = d.join("junk.nrrd");
    std::fs::write(&junk, b"hello").unwrap();
    let e = read_volume(&junk).err().unwrap();
    assert!(e.to_string().contains("not a NRRD file"), "{e}");
}
