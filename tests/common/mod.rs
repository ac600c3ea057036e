//! Shared set-up for the integration tests: one engine per test binary over the real runtime and model.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use once_cell::sync::Lazy;
use voxprompt::engine::{Engine, EngineOptions};
use voxprompt::model::sam2d::Sam2d;
use voxprompt::model::{Segmenter, SessionConfig};
use voxprompt::pipeline::policy::Policy;
use voxprompt::session::{RunReport, SessionOptions};
use voxprompt::volume::intensity::IntensityMapping;
use voxprompt::volume::{BoxIjk, U8Volume, VolumeView};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn ort_lib() -> PathBuf {
    std::env::var_os("VXP_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".deps/onnxruntime/lib/libonnxruntime.so.1.32.0"))
}

pub fn model_dir() -> PathBuf {
    root().join("models/litemedsam")
}

/// A file under the repository root that `scripts/setup-data` (or the fixtures) must provide.
pub fn data(rel: &str) -> PathBuf {
    let p = root().join(rel);
    assert!(p.exists(), "{} is missing: run `make setup` (scripts/setup-data) first", p.display());
    p
}

/// A volume under the repository root (see `data`).
pub fn volume(rel: &str) -> voxprompt::volume::Volume {
    voxprompt::io::read_volume(&data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}")).volume
}

/// The same volume as its array mirrored along i, with the IJK→RAS matrix mirrored too: the same patient,
/// other columns.
pub fn mirrored_i(v: &voxprompt::volume::Volume) -> voxprompt::volume::Volume {
    let [w, h, d] = v.dims;
    let s = v.dtype.size();
    let mut data = vec![0u8; v.data.len()];
    for row in 0..h * d {
        for i in 0..w {
            let (src, dst) = ((row * w + i) * s, (row * w + (w - 1 - i)) * s);
            data[dst..dst + s].copy_from_slice(&v.data[src..src + s]);
        }
    }
    let mut g = v.geometry;
    for r in 0..3 {
        g.ijk_to_ras[r][3] += g.ijk_to_ras[r][0] * (w - 1) as f64;
        g.ijk_to_ras[r][0] = -g.ijk_to_ras[r][0];
    }
    voxprompt::volume::Volume { data, dtype: v.dtype, dims: v.dims, geometry: g }
}

pub static ENGINE: Lazy<Engine> = Lazy::new(|| {
    Engine::new(&EngineOptions {
        ort_library: Some(ort_lib()),
        model_dirs: vec![model_dir()],
        session: SessionConfig { threads: 2, ..Default::default() },
        brain_atlas: None,
    })
    .expect("engine over the real ONNX Runtime and the LiteMedSAM package")
});

/// The engine's LiteMedSAM model.
pub fn sam2d(engine: &Engine) -> &Sam2d {
    match &engine.models.segmenter {
        Segmenter::Slice(m) => m,
        Segmenter::Mosaic(_) => panic!("the shared engine holds LiteMedSAM"),
    }
}

/// The reference pipeline (CVPR24 middle-out, later objects overwrite earlier ones) for `(label, box)`
/// objects, run as a session under `Policy::Reference`: the label mask and what the run did.
pub fn segment_reference(
    volume: &VolumeView<'_>,
    mapping: IntensityMapping,
    objects: &[(u8, BoxIjk)],
    progress: Option<&mut dyn FnMut(f32) -> bool>,
) -> voxprompt::Result<(U8Volume, RunReport)> {
    let mut s = ENGINE.open_session(volume, mapping, SessionOptions::default().with_policy(Policy::Reference))?;
    for &(label, b) in objects {
        s.add_box(label, b)?;
    }
    let report = s.run(progress)?;
    Ok((s.compose(false).0, report))
}

pub fn npz(path: &Path) -> ndarray_npy::NpzReader<std::fs::File> {
    ndarray_npy::NpzReader::new(std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn agreement(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[allow(unused_imports)]
pub use voxprompt::ops::mask::dice;
