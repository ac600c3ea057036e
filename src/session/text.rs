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
use crate::anatomy::grid::HuGrid;
use crate::anatomy::organs::Region;
use crate::anatomy::prompts::{derive_prompts, lesion_limit};
use crate::concept::{Domain, Region as ConceptRegion, Resolution, Resolver};
use crate::error::{Error, Result};
use crate::prompt::{Hint, ObjectPrompts, Prompt, PromptKind, Source};

/// The coarse voxel size of the HU copy a session keeps for the body prior (mm).
pub const COARSE_MM: f64 = 3.0;

/// What a session needs for text prompts: the resolver and, for CT, a coarse copy of the volume in HU
/// (the session's own image is already mapped to the model's 8-bit window, which clips air and bone).
pub struct TextContext {
    pub resolver: Arc<Resolver>,
    hu: Option<HuGrid>,
    /// The body frame, computed on the first text prompt and kept (an error is kept too: it will not change).
    frame: OnceCell<std::result::Result<BodyFrame, String>>,
}

impl TextContext {
    pub fn new(resolver: Arc<Resolver>, hu: Option<HuGrid>) -> TextContext {
        TextContext { resolver, hu, frame: OnceCell::new() }
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

/// Resolves `text` and derives the prompts `o` gets from it, on a volume of `dims` propagated along `axis`.
pub fn prompts_for(
    ctx: &TextContext,
    o: &ObjectPrompts,
    text: &str,
    dims: [usize; 3],
    axis: usize,
) -> Result<(Vec<Prompt>, TextOutcome)> {
    let resolution = ctx.resolver.resolve(text, Domain::Any)?;
    let vocab = &ctx.resolver.vocab;
    let name = resolution.name(vocab);
    let first = vocab.get(&resolution.concepts[0]).expect("resolved concepts exist");
    if first.region == ConceptRegion::Brain {
        return Err(Error::Unsupported(format!(
            "{text:?} names {name}, a brain structure: sessions do not register the brain atlas yet \
             (anatomy::brain does; see the issue notes)"
        )));
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
