//! The `openvino` provider (#18): the LiteMedSAM encoder on OpenVINO's CPU plugin, the decoder on ONNX
//! Runtime. Exact mode must give the CPU provider's masks; fast mode must say what it runs at; a missing
//! library must fall back (or fail, when asked) with the reason. Needs `scripts/setup-openvino` (make setup).

mod common;

use std::path::PathBuf;

use common::*;
use ndarray::Array3;
use once_cell::sync::Lazy;
use serde_json::Value;
use voxprompt::engine::{Engine, EngineOptions};
use voxprompt::io::read_volume;
use voxprompt::model::{Precision, Provider, SessionConfig, SliceModel, Worker};
use voxprompt::pipeline::policy::Policy;
use voxprompt::session::SessionOptions;
use voxprompt::volume::intensity::IntensityMapping;
use voxprompt::volume::BoxIjk;

fn openvino_lib() -> PathBuf {
    let p = std::env::var_os("VXP_OPENVINO_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".deps/openvino/lib/libopenvino_c.so.2640"));
    assert!(p.exists(), "{} is missing: run `make setup` (scripts/setup-openvino) first", p.display());
    p
}

fn engine(precision: Precision, library: PathBuf, strict: bool) -> voxprompt::Result<Engine> {
    Engine::new(&EngineOptions {
        ort_library: Some(ort_lib()),
        model_dirs: vec![model_dir()],
        session: SessionConfig {
            providers: vec![Provider::OpenVino],
            threads: 2,
            strict,
            precision,
            openvino_library: Some(library),
        },
        brain_atlas: None,
    })
}

static OPENVINO: Lazy<Engine> =
    Lazy::new(|| engine(Precision::Exact, openvino_lib(), true).expect("an engine with the encoder on OpenVINO"));

fn parity_index() -> Value {
    let p = root().join("tests/fixtures/parity/index.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The parity fixtures' preprocessed slices: (id, encoder input, PyTorch's embedding where recorded).
fn fixture_slices() -> Vec<(String, Array3<f32>, Option<Array3<f32>>)> {
    let idx = parity_index();
    idx["slices2d"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let file = root().join("tests/fixtures/parity").join(s["file"].as_str().unwrap());
            let mut z = npz(&file);
            let torch = (s["has_embedding"].as_bool() == Some(true)).then(|| z.by_name("embedding_torch").unwrap());
            (s["id"].as_str().unwrap().to_owned(), z.by_name("encoder_input").unwrap(), torch)
        })
        .collect()
}

#[test]
fn the_encoder_runs_on_openvino_at_f32_and_matches_the_cpu_provider_and_torch() {
    assert_eq!(OPENVINO.provider(), Provider::OpenVino, "{:?}", OPENVINO.fallback_reasons());
    assert_eq!(OPENVINO.encoder_precision(), "f32");
    assert!(OPENVINO.fallback_reasons().is_empty(), "{:?}", OPENVINO.fallback_reasons());
    let (ov, cpu) = (sam2d(&OPENVINO), sam2d(&ENGINE));
    let slices = fixture_slices();
    assert!(slices.len() >= 4, "only {} fixture slices", slices.len());
    for (id, input, torch) in slices {
        let (mut a, mut b) = (ov.embedding_layout().zeros(), cpu.embedding_layout().zeros());
        // Both of OpenVINO's requests: each must compute the same.
        for w in 0..2 {
            ov.encode(Worker::Index(w), input.as_slice().unwrap(), &mut a).unwrap();
            cpu.encode(Worker::Index(0), input.as_slice().unwrap(), &mut b).unwrap();
            let d_cpu = max_abs_diff(&a.tensors[0], &b.tensors[0]);
            let d_torch = torch.as_ref().map_or(0.0, |t| max_abs_diff(&a.tensors[0], t.as_slice().unwrap()));
            println!("{id} (request {w}): OpenVINO f32 embedding max |Δ| {d_cpu:.2e} vs the CPU provider, {d_torch:.2e} vs torch (0: none recorded)");
            assert!(d_cpu <= 1e-4 && d_torch <= 1e-4, "{id}: max |Δ| {d_cpu} vs CPU, {d_torch} vs torch");
        }
    }
}

/// The recorded 3D parity cases through the reference pipeline: OpenVINO's masks are ONNX Runtime's, voxel
/// for voxel (the masks the recording made with ONNX Runtime from Python).
#[test]
fn openvino_f32_gives_onnx_runtimes_masks_on_the_parity_cases() {
    let idx = parity_index();
    let mut rows = Vec::new();
    for c in idx["cases"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        let vol = idx["volumes"].as_array().unwrap().iter().find(|v| v["id"] == c["volume"]).unwrap();
        let volume = read_volume(&data(vol["source"].as_str().unwrap())).unwrap().volume;
        let b: Vec<usize> = c["box3d"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        let mapping = if c["modality"] == "CT" { IntensityMapping::CT } else { IntensityMapping::MR };
        let mut s = OPENVINO
            .open_session(&volume.view().unwrap(), mapping, SessionOptions::default().with_policy(Policy::Reference))
            .unwrap();
        s.add_box(1, BoxIjk { min: [b[0], b[1], b[2]], max: [b[3], b[4], b[5]] }).unwrap();
        s.run(None).unwrap();
        let mask = s.compose(false).0;
        let ort = &c["runs"]["ort"];
        let want: Array3<u8> =
            npz(&root().join("tests/fixtures/parity").join(ort["file"].as_str().unwrap())).by_name("mask").unwrap();
        let differ = mask.data.iter().zip(want.iter()).filter(|(a, b)| (**a > 0) != (**b > 0)).count();
        rows.push(format!("{id:<20} {differ} voxels differ of {}", want.len()));
        assert_eq!(differ, 0, "{id}: OpenVINO f32 changed the mask");
    }
    assert!(rows.len() >= 4);
    println!("{}", rows.join("\n"));
}

/// bf16 where the CPU has it (the CPU plugin's own test), f32 where it has not: fast mode never claims a
/// precision it does not run.
#[test]
fn fast_mode_reports_the_precision_it_runs_at() {
    let fast = engine(Precision::Fast, openvino_lib(), true).unwrap();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has_bf16 = cpuinfo.split_whitespace().any(|f| f == "avx512_bf16" || f == "amx_bf16");
    assert_eq!(fast.encoder_precision(), if has_bf16 { "bf16" } else { "f32" });
    let (id, input, _) = fixture_slices().remove(0);
    let (ov, cpu) = (sam2d(&fast), sam2d(&ENGINE));
    let (mut a, mut b) = (ov.embedding_layout().zeros(), cpu.embedding_layout().zeros());
    ov.encode(Worker::Index(0), input.as_slice().unwrap(), &mut a).unwrap();
    cpu.encode(Worker::Index(0), input.as_slice().unwrap(), &mut b).unwrap();
    let scale = b.tensors[0].iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = max_abs_diff(&a.tensors[0], &b.tensors[0]);
    println!("{id}: fast mode ({}) embedding max |Δ| {d:.3e} of max |e| {scale:.3}", fast.encoder_precision());
    // bf16 keeps 8 bits of mantissa: a bounded change, not garbage (the masks are the accuracy gate's job).
    assert!(d <= 0.25 * scale, "{id}: fast-mode embedding differs by {d} (scale {scale})");
    if !has_bf16 {
        assert!(d <= 1e-4);
    }
}

#[test]
fn a_missing_openvino_falls_back_to_the_cpu_with_the_reason_or_fails_when_strict() {
    let missing = std::env::temp_dir().join("vxp-no-such-openvino/libopenvino_c.so.2640");
    let e = engine(Precision::Exact, missing.clone(), false).expect("falls back to the CPU provider");
    assert_eq!(e.provider(), Provider::Cpu);
    let reasons = e.fallback_reasons().join("; ");
    assert!(reasons.contains(&missing.display().to_string()), "{reasons}");
    match engine(Precision::Exact, missing, true) {
        Err(voxprompt::Error::ProviderUnavailable(m)) => assert!(m.contains("vxp-no-such-openvino"), "{m}"),
        Err(e) => panic!("expected ProviderUnavailable, got {e}"),
        Ok(_) => panic!("a strict engine ran without its provider"),
    }
}
