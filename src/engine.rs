//! The engine: the ONNX Runtime and the loaded model packages with their sessions. Shareable across threads
//! (ONNX Runtime sessions are locked only around `run`); it opens segmentation sessions over volumes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::anatomy::brain::BrainAtlas;
use crate::anatomy::grid::HuGrid;
use crate::concept::{self, Domain, Resolution, Resolver};
use crate::error::Result;
use crate::model::{Models, Provider, SessionConfig};
use crate::runtime::{self, Runtime};
use crate::session::text::{self, TextContext};
use crate::session::{Session, SessionOptions};
use crate::volume::intensity::{self, IntensityMapping};
use crate::volume::VolumeView;

/// Everything needed to build an engine.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// ONNX Runtime library; else `VXP_ORT_LIB`, else next to libvoxprompt.so / the executable.
    pub ort_library: Option<PathBuf>,
    /// Model package folders (each holding a manifest.toml): one spatial model, optionally a text encoder.
    pub model_dirs: Vec<PathBuf>,
    pub session: SessionConfig,
    /// The brain atlas for text prompts naming brain structures on MR: a T1 template (nilearn's MNI ICBM152
    /// 2009a) and a label volume on the atlas grid (covale's FreeSurfer aseg), both NIfTI. None: brain
    /// structures are `Unsupported` by text.
    pub brain_atlas: Option<BrainAtlasFiles>,
}

/// The two files of a brain atlas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrainAtlasFiles {
    pub template: PathBuf,
    pub labels: PathBuf,
}

impl BrainAtlasFiles {
    /// The files as `scripts/setup-data` installs them under `data` (nilearn's template in `mni/`,
    /// covale's aseg in `covale/`), when both are there.
    pub fn under(data: &Path) -> Option<BrainAtlasFiles> {
        let f = BrainAtlasFiles {
            template: data.join("mni/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"),
            labels: data.join("covale/aseg-auto.nii.gz"),
        };
        (f.template.is_file() && f.labels.is_file()).then_some(f)
    }
}

pub struct Engine {
    pub runtime: &'static Runtime,
    pub models: Arc<Models>,
    /// Text → concept, over the built-in vocabulary (shared with the sessions).
    pub resolver: Arc<Resolver>,
    /// The brain atlas, loaded once, shared by every session's brain text prompts.
    pub brain: Option<Arc<BrainAtlas>>,
    /// Time spent loading the runtime and building sessions.
    pub load_time: Duration,
}

impl Engine {
    pub fn new(opts: &EngineOptions) -> Result<Engine> {
        let t = Instant::now();
        let runtime = runtime::runtime(opts.ort_library.as_deref())?;
        let models = Arc::new(Models::load(runtime, &opts.model_dirs, &opts.session)?);
        let resolver = Arc::new(concept::resolver_for(models.text.as_ref())?);
        let brain = match &opts.brain_atlas {
            Some(f) => Some(Arc::new(BrainAtlas::load(&f.template, &f.labels)?)),
            None => None,
        };
        Ok(Engine { runtime, models, resolver, brain, load_time: t.elapsed() })
    }

    /// The execution provider that really runs the spatial model's encoder.
    pub fn provider(&self) -> Provider {
        self.models.segmenter.provider().0
    }

    /// The element type the spatial model's encoder computes in ("f32"; "bf16" in fast mode on OpenVINO).
    pub fn encoder_precision(&self) -> &str {
        match &self.models.segmenter {
            crate::model::Segmenter::Slice(m) => &m.encoder_precision,
            crate::model::Segmenter::Mosaic(_) => "f32",
        }
    }

    /// Why requested execution providers were not used, for every graph of the spatial model.
    pub fn fallback_reasons(&self) -> &[String] {
        self.models.segmenter.provider().1
    }

    /// What `text` names, or `Error::UnknownConcept` with the closest concepts.
    pub fn resolve(&self, text: &str, domain: Domain) -> Result<Resolution> {
        self.resolver.resolve(text, domain)
    }

    /// Maps the volume's intensities and opens an interactive session over it (the mapped 8-bit copy is
    /// kept; `volume` is not referenced afterwards).
    pub fn open_session(
        &self,
        volume: &VolumeView<'_>,
        mapping: IntensityMapping,
        opts: SessionOptions,
    ) -> Result<Session> {
        let limits = crate::io::Limits { max_voxels: opts.max_voxels, max_bytes: u64::MAX };
        limits.check("volume", &volume.dims().map(|d| d as u64), 1)?;
        let resolved = mapping.resolve(volume);
        let image = intensity::map_to_u8(volume, resolved)?;
        // A CT keeps a coarse HU copy for the body prior of text prompts (about 1/27 of a 1 mm volume); the
        // mapped image has lost air and bone to the soft-tissue window.
        let hu = match resolved {
            IntensityMapping::Window { .. } => Some(HuGrid::from_view(volume, text::COARSE_MM)?),
            _ => None,
        };
        let session = Session::new(self.models.clone(), image, *volume.geometry(), opts)?;
        Ok(session.with_text(TextContext::new(self.resolver.clone(), hu, self.brain.clone())))
    }
}
