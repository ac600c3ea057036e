//! Model packages and one module per model kind, behind the traits the pipeline drives (`traits`).
//!
//! An engine holds a `Models` set: exactly one spatial model (the segmenter) and at most one text encoder.
//! Every package is checked against its graphs when it loads (`contract`).

pub mod contract;
pub mod manifest;
pub mod mosaic;
pub mod openvino;
pub mod providers;
pub mod sam2d;
pub mod text_encoder;
pub mod traits;

use std::path::PathBuf;
use std::sync::Arc;

pub use manifest::{Manifest, ModelKind, Package};
pub use providers::{Precision, Provider, SessionConfig};
pub use traits::{
    CanvasModel, Conditioned, Decoded, Embedding, EmbeddingLayout, PatchModel, Prompt2d, Prompt3d, SliceModel, Worker,
};

use crate::error::{Error, Result};
use crate::runtime::Runtime;
use mosaic::Mosaic;
use sam2d::Sam2d;
use text_encoder::TextEncoder;

/// The spatial model of a model set, by family. Each arm has its own pipeline driver; `Session::run`
/// dispatches on it once.
// One per engine, never moved in a loop: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Segmenter {
    /// A 2D promptable model lifted to 3D slice by slice.
    Slice(Sam2d),
    /// A prompt-free 2D model over slice mosaics; the object's prompts select from what it finds.
    Mosaic(Mosaic),
}

impl Segmenter {
    pub fn kind(&self) -> ModelKind {
        match self {
            Segmenter::Slice(_) => ModelKind::Sam2d,
            Segmenter::Mosaic(_) => ModelKind::Mosaic,
        }
    }
    /// The provider of the graph where the time goes, and why requested providers were skipped.
    pub fn provider(&self) -> (Provider, &[String]) {
        match self {
            Segmenter::Slice(m) => (m.provider(), &m.fallback_reasons),
            Segmenter::Mosaic(m) => (m.provider, &m.fallback_reasons),
        }
    }
}

/// The loaded packages of one engine.
pub struct Models {
    pub segmenter: Segmenter,
    pub text: Option<Arc<TextEncoder>>,
    /// Every package, in the order given.
    pub packages: Vec<Package>,
}

impl Models {
    /// Opens and loads every package folder: exactly one spatial model and at most one text encoder. Kinds
    /// this build declares but does not run are refused by name.
    pub fn load(rt: &Runtime, dirs: &[PathBuf], cfg: &SessionConfig) -> Result<Models> {
        if dirs.is_empty() {
            return Err(Error::InvalidArgument("no model package given".into()));
        }
        let packages = dirs.iter().map(|d| Package::open(d)).collect::<Result<Vec<_>>>()?;
        let mut segmenter = None;
        let mut text = None;
        let second = |p: &Package, role: &str| {
            Error::InvalidArgument(format!(
                "{}: package {} would be a second {role}; an engine holds one",
                p.dir.display(),
                p.manifest.name
            ))
        };
        for p in &packages {
            let m = &p.manifest;
            match m.kind {
                ModelKind::Sam2d | ModelKind::Mosaic if segmenter.is_some() => return Err(second(p, "spatial model")),
                ModelKind::Sam2d => segmenter = Some(Segmenter::Slice(Sam2d::load(rt, p, cfg)?)),
                ModelKind::Mosaic => segmenter = Some(Segmenter::Mosaic(Mosaic::load(rt, p, cfg)?)),
                ModelKind::TextEncoder if text.is_some() => return Err(second(p, "text encoder")),
                ModelKind::TextEncoder => text = Some(Arc::new(TextEncoder::load(rt, p, cfg)?)),
                k @ (ModelKind::Sam2Memory | ModelKind::Volumetric) => {
                    return Err(Error::Unsupported(format!(
                        "{}: package {} is of kind \"{k}\", which this build declares but cannot run yet",
                        p.dir.display(),
                        m.name
                    )))
                }
            }
        }
        let segmenter = segmenter.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no spatial model among the packages {:?} (kinds {:?}): add a sam2d or mosaic package",
                packages.iter().map(|p| p.manifest.name.as_str()).collect::<Vec<_>>(),
                packages.iter().map(|p| p.manifest.kind.name()).collect::<Vec<_>>()
            ))
        })?;
        if let Segmenter::Slice(m) = &segmenter {
            check_text_encoder(m, text.as_deref())?;
        }
        Ok(Models { segmenter, text, packages })
    }

    /// The text embedding the spatial model takes for a concept named `name`, when it takes one.
    pub fn conditioning_embedding(&self, name: &str) -> Result<Option<Vec<f32>>> {
        let Segmenter::Slice(m) = &self.segmenter else { return Ok(None) };
        match (m.conditioned().text_dim, &self.text) {
            (Some(_), Some(t)) => Ok(Some(t.embed(name)?)),
            _ => Ok(None),
        }
    }

    /// The package of the spatial model.
    pub fn spatial_package(&self) -> &Package {
        let kind = self.segmenter.kind();
        self.packages.iter().find(|p| p.manifest.kind == kind).expect("the segmenter came from a package")
    }
}

/// A text-conditioned slice model must come with the text encoder it names, of its width.
fn check_text_encoder(m: &Sam2d, text: Option<&TextEncoder>) -> Result<()> {
    let (Some(want), Some(dim)) = (&m.text_encoder, m.conditioned().text_dim) else { return Ok(()) };
    match text {
        Some(t) if &t.name == want && t.dim == dim => Ok(()),
        Some(t) => Err(Error::ModelContract(format!(
            "package {} takes the {dim}-wide embeddings of text encoder {want:?}; the text encoder given is {:?} \
             ({} wide)",
            m.name, t.name, t.dim
        ))),
        None => Err(Error::ModelContract(format!(
            "package {} takes the embeddings of text encoder {want:?}: add that package to the model folders",
            m.name
        ))),
    }
}
