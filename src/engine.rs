//! The engine: the ONNX Runtime, one loaded model package and its sessions. Shareable across threads
//! (sessions are locked only around `run`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::model::sam2d::Sam2d;
use crate::model::{Package, Provider, SessionConfig};
use crate::pipeline::propagate::{self, Object, Progress, Stats};
use crate::runtime::{self, Runtime};
use crate::session::{Session, SessionOptions};
use crate::volume::intensity::{self, IntensityMapping};
use crate::volume::{U8Volume, VolumeView};

/// Everything needed to build an engine.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// ONNX Runtime library; else `VXP_ORT_LIB`, else next to libvoxprompt.so / the executable.
    pub ort_library: Option<PathBuf>,
    /// Model package folder (holding manifest.toml).
    pub model_dir: PathBuf,
    pub session: SessionConfig,
}

pub struct Engine {
    pub runtime: &'static Runtime,
    pub package: Package,
    pub model: Sam2d,
    /// Time spent loading the runtime and building sessions.
    pub load_time: Duration,
}

/// A 3D result: the label mask (i fastest, input grid) and what it cost.
pub struct Segmentation {
    pub mask: U8Volume,
    /// The u8 volume the model saw (kept for overlays).
    pub image: U8Volume,
    pub stats: Stats,
    pub intensity_time: Duration,
}

impl Engine {
    pub fn new(opts: &EngineOptions) -> Result<Engine> {
        let t = Instant::now();
        let runtime = runtime::runtime(opts.ort_library.as_deref())?;
        let package = Package::open(&opts.model_dir)?;
        let model = Sam2d::load(runtime, &package, &opts.session)?;
        Ok(Engine { runtime, package, model, load_time: t.elapsed() })
    }

    /// The execution provider that really runs the model.
    pub fn provider(&self) -> Provider {
        self.model.provider
    }

    /// Maps intensities, then runs the reference middle-out pipeline for each object.
    pub fn segment_reference(
        &self,
        volume: &VolumeView<'_>,
        mapping: IntensityMapping,
        objects: &[Object],
        progress: Option<Progress<'_>>,
    ) -> Result<Segmentation> {
        for o in objects {
            o.bbox.validate(volume.dims())?;
        }
        let t = Instant::now();
        let image = intensity::map_to_u8(volume, mapping)?;
        let intensity_time = t.elapsed();
        let (mask, stats) = propagate::reference_middle_out(&self.model, &image, objects, progress)?;
        Ok(Segmentation { mask, image, stats, intensity_time })
    }

    /// Maps the volume's intensities and opens an interactive session over it (the mapped 8-bit copy is
    /// kept; `volume` is not referenced afterwards).
    pub fn open_session(
        self: &Arc<Self>,
        volume: &VolumeView<'_>,
        mapping: IntensityMapping,
        opts: SessionOptions,
    ) -> Result<Session> {
        let image = intensity::map_to_u8(volume, mapping)?;
        Session::new(self.clone(), image, *volume.geometry(), opts)
    }
}
