//! From an object's prompts to the spatial prompts a model driver takes. Boxes, points, seed masks and the
//! limit pass through in the order given; a box grown from a click is a start, not a 3D box. A text prompt
//! is resolved when it is added (the session turns it into derived boxes, a seed and a limit, each with its
//! `Source`), so here it is only carried, as is the lesion hint the session grows clicks by; an organ or
//! side hint has no resolver yet and is refused by name rather than ignored.

use std::sync::Arc;

use super::{BoxIjk, ObjectPrompts, PointIjk, PromptKind, Source};
use crate::error::{Error, Result};

/// The spatial prompts of one object, in input-grid voxel indices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spatial {
    pub label: u8,
    /// The first box seeds the reference walk; later ones re-prompt their own middle slice.
    pub boxes: Vec<BoxIjk>,
    /// Boxes on one slice each (grown from a click) from which the object walks outward until it ends;
    /// used only by an object with no box and no seed.
    pub starts: Vec<BoxIjk>,
    pub points: Vec<PointIjk>,
    pub seed: Option<Arc<Vec<u8>>>,
    /// The result is cut to this region (input grid, 0/1); a model that takes an anatomy input sees it.
    pub limit: Option<Arc<Vec<u8>>>,
    /// The text embedding a text-conditioned model takes.
    pub text_embedding: Option<Arc<Vec<f32>>>,
    /// The seed is the result: no model runs for this object.
    pub prior_only: bool,
}

/// The spatial prompts of `o`.
pub fn spatial(o: &ObjectPrompts) -> Result<Spatial> {
    let mut s = Spatial { label: o.label, ..Default::default() };
    for p in &o.prompts {
        match &p.kind {
            PromptKind::Box(b) if matches!(p.source, Source::Growth { .. }) => s.starts.push(*b),
            PromptKind::Box(b) => s.boxes.push(*b),
            PromptKind::Point(q) => s.points.push(*q),
            PromptKind::Seed(m) => s.seed = Some(m.clone()),
            PromptKind::Limit(m) => s.limit = Some(m.clone()),
            PromptKind::TextEmbedding(e) => s.text_embedding = Some(e.clone()),
            PromptKind::Hint(crate::prompt::Hint::PriorOnly) => s.prior_only = true,
            PromptKind::Text(_) | PromptKind::Hint(crate::prompt::Hint::Lesion { .. }) => {}
            PromptKind::Hint(h) => {
                return Err(Error::Unsupported(format!(
                    "object {}: the anatomical hint {h:?} cannot be resolved by this build",
                    o.label
                )))
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::Prompt;

    #[test]
    fn spatial_prompts_pass_through_in_order_text_is_carried_and_hints_refused() {
        let b = |k| BoxIjk { min: [0, 0, k], max: [2, 2, k] };
        let mut o = ObjectPrompts::new(4);
        o.push(Prompt::user(PromptKind::Box(b(3))));
        o.push(Prompt {
            kind: PromptKind::Box(b(1)),
            source: Source::Anatomy { concept: "liver".into() },
            weight: 0.5,
        });
        o.push(Prompt::user(PromptKind::Point(PointIjk { ijk: [1, 1, 1], positive: false })));
        o.push(Prompt { kind: PromptKind::Box(b(2)), source: Source::Growth { click: [1, 1, 2] }, weight: 1.0 });
        let s = spatial(&o).unwrap();
        assert_eq!((s.label, s.boxes, s.starts, s.points.len(), s.seed), (4, vec![b(3), b(1)], vec![b(2)], 1, None));
        // Text is carried (its derived prompts are already there); a hint is refused by name.
        o.push(Prompt::user(PromptKind::Text("left kidney".into())));
        assert_eq!(spatial(&o).unwrap().boxes.len(), 2);
        o.push(Prompt::user(PromptKind::Hint(crate::prompt::Hint::Organ("liver".into()))));
        let e = spatial(&o).err().unwrap();
        assert_eq!(e.code(), crate::ErrorCode::Unsupported);
        assert!(e.to_string().contains("liver"), "{e}");
    }
}
