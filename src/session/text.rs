//! Text prompts in a session: a phrase is resolved to its concept when it is added, the concept's
//! anatomical prior is found in this volume, and the object receives the prompts derived from it — boxes
//! and a seed mask (source `Text`/`Anatomy`, so the report can say where they came from) and the limit its
//! result is cut to. A phrase added to an object that already has the host's own box, seed or click only
//! adds the limit: the host's prompt leads, the prior bounds it (on MR, which has no body prior, it only
//! names the object). A lesion phrase ("liver tumour") needs the host's click or box on the lesion: the
//! organ of origin is located and becomes the limit, with its holes filled, and a click is grown as a lesion.
//! The lungs, black under the CT soft-tissue window, are their prior: the object gets the hint `PriorOnly`.

use std::sync::Arc;

use once_cell::sync::OnceCell;

use crate::anatomy::body::BodyFrame;
use crate::anatomy::brain::{BrainAtlas, Fit};
use crate::anatomy::grid::HuGrid;
use crate::anatomy::organs::Region;
use crate::anatomy::prompts::{derive_prompts, lesion_limit};
use crate::concept::{Domain, Region as ConceptRegion, Resolution, Resolver};
use crate::error::{Error, Result};
use crate::ops::mask::dilate_box;
use crate::prompt::{Hint, ObjectPrompts, Prompt, PromptKind, Source};
use crate::volume::{DType, Geometry, U8Volume, VolumeView};

/// The coarse voxel size of the HU copy a session keeps for the body prior (mm).
pub const COARSE_MM: f64 = 3.0;

/// What a session needs for text prompts: the resolver and, for CT, a coarse copy of the volume in HU
/// (the session's own image is already mapped to the model's 8-bit window, which clips air and bone).
pub struct TextContext {
    pub resolver: Arc<Resolver>,
    hu: Option<HuGrid>,
    /// The body frame, computed on the first text prompt and kept (an error is kept too: it will not change).
    frame: OnceCell<std::result::Result<BodyFrame, String>>,
    brain: Option<Arc<BrainAtlas>>,
    /// The atlas registered onto this volume, on the first brain text prompt (an error is kept too).
    fit: OnceCell<std::result::Result<Fit, String>>,
}

/// How far a brain structure's limit reaches beyond its carried atlas region (mm): about the registration's
/// error at the brain's centre and more (tests/anatomy_brain.rs).
const BRAIN_LIMIT_MM: f64 = 4.0;

impl TextContext {
    pub fn new(resolver: Arc<Resolver>, hu: Option<HuGrid>, brain: Option<Arc<BrainAtlas>>) -> TextContext {
        TextContext { resolver, hu, frame: OnceCell::new(), brain, fit: OnceCell::new() }
    }

    /// The atlas registered onto the session's image (its 8-bit MR mapping: the registration's
    /// normalised cross-correlation does not mind the window).
    fn fit(&self, image: &U8Volume, geometry: &Geometry) -> Result<&Fit> {
        let atlas = self.brain.as_ref().ok_or_else(|| {
            Error::Unsupported(
                "brain structures by text need a brain atlas: give the engine one (EngineOptions::brain_atlas, \
                 vxp_options_set_brain_atlas, voxprompt --brain-atlas DIR)"
                    .into(),
            )
        })?;
        let fit = self.fit.get_or_init(|| {
            VolumeView::contiguous(&image.data, DType::U8, image.dims, *geometry)
                .and_then(|v| atlas.register(&v))
                .map_err(|e| e.to_string())
        });
        fit.as_ref().map_err(|e| Error::InvalidVolume(format!("the brain atlas could not be registered: {e}")))
    }

    fn frame(&self) -> Result<(&HuGrid, &BodyFrame)> {
        let hu = self.hu.as_ref().ok_or_else(|| {
            Error::Unsupported(
                "text prompts for body structures need a CT volume (Hounsfield units); this one was mapped as MR"
                    .into(),
            )
        })?;
        match self.frame.get_or_init(|| BodyFrame::compute(hu).map_err(|e| e.to_string())) {
            Ok(f) => Ok((hu, f)),
            Err(e) => Err(Error::InvalidVolume(format!("the body frame could not be computed: {e}"))),
        }
    }
}

/// What a text prompt became.
#[derive(Debug, Clone)]
pub struct TextOutcome {
    pub resolution: Resolution,
    /// Per structure found: its id, prior score and voxels.
    pub regions: Vec<(String, f32, usize)>,
    /// Whether boxes and a seed were added (false: the object already had the host's start).
    pub prompted: bool,
}

/// The TotalSegmentator-class structures whose priors make up `id` (a group is its members).
fn structures(vocab: &crate::concept::Vocabulary, id: &str) -> Vec<String> {
    if BodyFrame::knows(id) {
        return vec![id.to_string()];
    }
    match vocab.get(id) {
        Some(c) if !c.members.is_empty() => c.members.iter().filter(|m| BodyFrame::knows(m)).cloned().collect(),
        _ => Vec::new(),
    }
}

/// Resolves `text` and derives the prompts `o` gets from it, on the session's `image` propagated along
/// `axis`.
pub fn prompts_for(
    ctx: &TextContext,
    o: &ObjectPrompts,
    text: &str,
    image: &U8Volume,
    geometry: &Geometry,
    axis: usize,
) -> Result<(Vec<Prompt>, TextOutcome)> {
    let dims = image.dims;
    let resolution = ctx.resolver.resolve(text, Domain::Any)?;
    let vocab = &ctx.resolver.vocab;
    let name = resolution.name(vocab);
    let first = vocab.get(&resolution.concepts[0]).expect("resolved concepts exist");
    if first.region == ConceptRegion::Brain {
        return brain_prompts(ctx, o, text, resolution, image, geometry);
    }
    if let Some(k) = resolution.lesion {
        if !o.has_start() {
            return Err(Error::Unsupported(format!(
                "{text:?} names a {} in the {}: searching an organ for a lesion is not in this version; \
                 click the lesion (or box it) first, then name it",
                k.name(),
                first.name
            )));
        }
    }
    let text_prompt = Prompt { kind: PromptKind::Text(text.to_string()), source: Source::User, weight: 1.0 };
    if ctx.hu.is_none() && o.has_start() {
        // MR: no body prior to bound the host's prompt with; the text names the object (and makes a click a
        // lesion's), the host's prompt does the rest.
        let mut out = vec![text_prompt];
        if resolution.lesion.is_some() {
            out.push(Prompt::user(PromptKind::Hint(Hint::Lesion { in_air: false })));
        }
        return Ok((out, TextOutcome { resolution, regions: Vec::new(), prompted: false }));
    }
    let (hu, frame) = ctx.frame()?;
    let mut regions: Vec<Region> = Vec::new();
    let mut unknown = Vec::new();
    for id in &resolution.concepts {
        let parts = structures(vocab, id);
        if parts.is_empty() {
            unknown.push(vocab.get(id).map(|c| c.name.clone()).unwrap_or_else(|| id.clone()));
        }
        for s in parts {
            if let Some(r) = frame.locate(hu, &s)? {
                regions.push(r);
            }
        }
    }
    if !unknown.is_empty() {
        return Err(Error::Unsupported(format!(
            "{text:?} names {name}; VoxPrompt has no anatomical prior for {} yet: prompt it with a box or a seed",
            unknown.join(", ")
        )));
    }
    if regions.is_empty() {
        return Err(Error::InvalidPrompt(format!(
            "{text:?} names {name}, which is not in this volume: nothing fits its location and intensity prior \
             (outside the scanned range, or not on that side)"
        )));
    }
    let score = resolution.score;
    let concept = resolution.concepts.join("+");
    let from_text = Source::Text { concept: concept.clone(), score };
    let from_anatomy = Source::Anatomy { concept: concept.clone() };
    let mut out = vec![text_prompt];
    let n: usize = dims.iter().product();
    let mut seed = vec![0u8; n];
    let mut limit = vec![0u8; n];
    let prompted = !o.has_start();
    let lesion = resolution.lesion.is_some();
    let mut in_air = false;
    let mut prior_only = false;
    for r in &regions {
        if lesion {
            // The lesion is grown from the host's click; the organ only bounds it, holes included.
            in_air |= r.air_filled();
            limit.iter_mut().zip(&lesion_limit(r, hu)).for_each(|(a, &b)| *a |= b);
            continue;
        }
        let d = derive_prompts(r, hu, axis);
        // Under the CT soft-tissue window air is black and LiteMedSAM finds nothing from any box: the prior
        // (air inside the body, split by side) is the answer itself.
        prior_only |= prompted && !d.use_model;
        if prompted && !d.use_model {
            if let Some(s) = &d.seed {
                seed.iter_mut().zip(s).for_each(|(a, &b)| *a |= b);
            }
        } else if prompted {
            for b in d.boxes {
                out.push(Prompt { kind: PromptKind::Box(b), source: from_text.clone(), weight: r.score });
            }
            if let Some(s) = &d.seed {
                seed.iter_mut().zip(s).for_each(|(a, &b)| *a |= b);
            }
        }
        limit.iter_mut().zip(&d.limit).for_each(|(a, &b)| *a |= b);
    }
    if prompted {
        out.push(Prompt { kind: PromptKind::Seed(Arc::new(seed)), source: from_anatomy.clone(), weight: 1.0 });
    }
    if prior_only {
        out.push(Prompt { kind: PromptKind::Hint(Hint::PriorOnly), source: from_anatomy.clone(), weight: 1.0 });
    }
    if lesion {
        out.push(Prompt { kind: PromptKind::Hint(Hint::Lesion { in_air }), source: from_anatomy.clone(), weight: 1.0 });
    }
    out.push(Prompt { kind: PromptKind::Limit(Arc::new(limit)), source: from_anatomy, weight: 1.0 });
    let regions = regions.iter().map(|r| (r.structure.clone(), r.score, r.voxels)).collect();
    Ok((out, TextOutcome { resolution, regions, prompted }))
}

/// A brain structure named by text: the atlas registered onto this MR carries the structure's labels onto
/// the volume; that region is the object's seed and, as the prior alone gives the answer the model was
/// never trained for, its result (`PriorOnly`), unless the host started the object: then the host's prompt
/// leads and the region, widened by `BRAIN_LIMIT_MM`, bounds it.
fn brain_prompts(
    ctx: &TextContext,
    o: &ObjectPrompts,
    text: &str,
    resolution: Resolution,
    image: &U8Volume,
    geometry: &Geometry,
) -> Result<(Vec<Prompt>, TextOutcome)> {
    let vocab = &ctx.resolver.vocab;
    let name = resolution.name(vocab);
    if resolution.lesion.is_some() {
        return Err(Error::Unsupported(format!(
            "{text:?} names a lesion of {name}: lesions inside brain structures are not searched in this version"
        )));
    }
    if ctx.hu.is_some() {
        return Err(Error::Unsupported(format!(
            "{text:?} names {name}, a brain structure: the brain atlas is registered to T1 MR, and this volume \
             was mapped as CT"
        )));
    }
    let mut labels = Vec::new();
    for id in &resolution.concepts {
        let c = vocab.get(id).expect("resolved concepts exist");
        match c.atlas.as_deref() {
            Some("aseg-auto") if !c.labels.is_empty() => labels.extend(c.labels.iter().copied()),
            other => {
                return Err(Error::Unsupported(format!(
                    "{text:?} names {}, which lies in covale's {} atlas; the brain atlas loaded is aseg-auto",
                    c.name,
                    other.unwrap_or("(no)")
                )))
            }
        }
    }
    let fit = ctx.fit(image, geometry)?;
    let region = fit.region_mask(&labels, image.dims)?;
    let voxels = region.iter().filter(|&&v| v != 0).count();
    if voxels == 0 {
        return Err(Error::InvalidPrompt(format!(
            "{text:?} names {name}, which is not in this volume: the registered atlas puts it outside the scan"
        )));
    }
    let mut limit = region.clone();
    let radius = geometry.spacing.map(|s| (BRAIN_LIMIT_MM / s).ceil() as usize);
    dilate_box(&mut limit, image.dims, radius);
    let concept = resolution.concepts.join("+");
    let from_anatomy = Source::Anatomy { concept: concept.clone() };
    let prompted = !o.has_start();
    let mut out = vec![Prompt { kind: PromptKind::Text(text.to_string()), source: Source::User, weight: 1.0 }];
    if prompted {
        out.push(Prompt { kind: PromptKind::Seed(Arc::new(region)), source: from_anatomy.clone(), weight: 1.0 });
        out.push(Prompt { kind: PromptKind::Hint(Hint::PriorOnly), source: from_anatomy.clone(), weight: 1.0 });
    }
    out.push(Prompt { kind: PromptKind::Limit(Arc::new(limit)), source: from_anatomy, weight: 1.0 });
    let regions = vec![(concept, 1.0, voxels)];
    Ok((out, TextOutcome { resolution, regions, prompted }))
}
