//! Prompts: everything a host (or, later, the concept resolver) says about one object, each prompt with its
//! source and weight, so a result can report which prompt contributed what.
//!
//! Spatial prompts (boxes, points, seed masks) are in voxel indices of the input grid. Text and anatomical
//! hints are declared here and kept with the object; `resolve` turns an object's prompts into the spatial
//! prompts the model drivers take.

pub mod resolve;

use std::sync::Arc;

pub use crate::volume::BoxIjk;

/// A point prompt in voxel indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointIjk {
    pub ijk: [usize; 3],
    pub positive: bool,
}

/// Which side of the body, in patient (RAS) terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

/// An anatomical hint: where to look, not what to look for.
#[derive(Debug, Clone, PartialEq)]
pub enum Hint {
    /// The organ the object lies in (TAGS' organ of origin).
    Organ(String),
    /// The side of the body the object lies on.
    Side(Side),
    /// The object is a lesion inside its organ (`in_air`: an air-filled organ, the lungs): a click on it is
    /// grown as a lesion, not as an organ.
    Lesion { in_air: bool },
    /// The structure is found by its anatomical prior alone: its seed mask is the result, no model runs
    /// for it (the lungs, which the CT soft-tissue window maps to black, where LiteMedSAM finds nothing).
    PriorOnly,
}

/// What a prompt says.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptKind {
    /// A 3D box, inclusive (a box on one slice has equal min and max along the propagation axis).
    Box(BoxIjk),
    Point(PointIjk),
    /// A coarse mask on the input grid (1 = inside, i fastest), shared between checkpoints.
    Seed(Arc<Vec<u8>>),
    /// Free text naming the object ("left kidney"), kept for the report once resolved into derived prompts.
    Text(String),
    Hint(Hint),
    /// Where the object may lie (0/1 on the input grid, e.g. the dilated anatomical prior): the result is cut
    /// to it. The latest one set applies.
    Limit(Arc<Vec<u8>>),
    /// The object's concept name embedded by the text encoder that a text-conditioned model names (its
    /// package's `[conditioning]`); fed to the decoder with every prompt of the object.
    TextEmbedding(Arc<Vec<f32>>),
}

/// Where a prompt came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The host placed or typed it.
    User,
    /// Derived from a text prompt resolved to `concept` with similarity `score`.
    Text { concept: String, score: f32 },
    /// Derived from an anatomical prior of `concept`.
    Anatomy { concept: String },
    /// Grown from the host's positive click at `click` (a box for an object that had no other start).
    Growth { click: [usize; 3] },
}

/// One prompt with its source and weight (1 for the host's own prompts).
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub kind: PromptKind,
    pub source: Source,
    pub weight: f32,
}

impl Prompt {
    /// A prompt the host gave.
    pub fn user(kind: PromptKind) -> Prompt {
        Prompt { kind, source: Source::User, weight: 1.0 }
    }
}

/// Everything said about one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectPrompts {
    pub label: u8,
    /// In the order given: the first box seeds the reference walk.
    pub prompts: Vec<Prompt>,
}

impl ObjectPrompts {
    pub fn new(label: u8) -> ObjectPrompts {
        ObjectPrompts { label, prompts: Vec::new() }
    }

    pub fn boxes(&self) -> impl Iterator<Item = &BoxIjk> + '_ {
        self.prompts.iter().filter_map(|p| match &p.kind {
            PromptKind::Box(b) => Some(b),
            _ => None,
        })
    }

    pub fn points(&self) -> impl Iterator<Item = &PointIjk> + '_ {
        self.prompts.iter().filter_map(|p| match &p.kind {
            PromptKind::Point(q) => Some(q),
            _ => None,
        })
    }

    /// The seed mask (the latest one set).
    pub fn seed(&self) -> Option<&Arc<Vec<u8>>> {
        self.prompts.iter().rev().find_map(|p| match &p.kind {
            PromptKind::Seed(m) => Some(m),
            _ => None,
        })
    }

    /// The region the result is cut to (the latest one set).
    pub fn limit(&self) -> Option<&Arc<Vec<u8>>> {
        self.prompts.iter().rev().find_map(|p| match &p.kind {
            PromptKind::Limit(m) => Some(m),
            _ => None,
        })
    }

    /// Whether anything can start the object: a box, a seed mask or a positive point.
    pub fn has_start(&self) -> bool {
        self.boxes().next().is_some() || self.seed().is_some() || self.points().any(|p| p.positive)
    }

    /// Adds a prompt; a seed mask or a limit replaces the previous one.
    pub fn push(&mut self, p: Prompt) {
        if matches!(p.kind, PromptKind::Seed(_)) {
            self.prompts.retain(|q| !matches!(q.kind, PromptKind::Seed(_)));
        }
        if matches!(p.kind, PromptKind::Limit(_)) {
            self.prompts.retain(|q| !matches!(q.kind, PromptKind::Limit(_)));
        }
        self.prompts.push(p);
    }

    pub fn contains(&self, kind: &PromptKind) -> bool {
        self.prompts.iter().any(|p| &p.kind == kind)
    }

    /// Whether `o` is a lesion (and, if so, in an air-filled organ).
    pub fn lesion(&self) -> Option<bool> {
        self.prompts.iter().find_map(|p| match p.kind {
            PromptKind::Hint(Hint::Lesion { in_air }) => Some(in_air),
            _ => None,
        })
    }

    /// Removes the most recent point at `ijk`, and the box grown from it; false when there is none.
    pub fn remove_point(&mut self, ijk: [usize; 3]) -> bool {
        match self.prompts.iter().rposition(|p| matches!(p.kind, PromptKind::Point(q) if q.ijk == ijk)) {
            Some(i) => {
                self.prompts.remove(i);
                if !self.points().any(|q| q.ijk == ijk) {
                    self.prompts.retain(|p| p.source != Source::Growth { click: ijk });
                }
                true
            }
            None => false,
        }
    }
}

/// How an object's prompts changed between two states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    None,
    /// Only points were added or removed: the result can be refined where they lie.
    Points,
    /// Boxes, the seed mask, text or hints changed: the object starts over.
    Start,
}

/// What changed from `old` to `new`.
pub fn diff(old: &ObjectPrompts, new: &ObjectPrompts) -> Change {
    let others = |o: &ObjectPrompts| -> Vec<Prompt> {
        o.prompts.iter().filter(|p| !matches!(p.kind, PromptKind::Point(_))).cloned().collect()
    };
    if others(old) != others(new) {
        return Change::Start;
    }
    if old.points().eq(new.points()) {
        Change::None
    } else {
        Change::Points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bx(k: usize) -> PromptKind {
        PromptKind::Box(BoxIjk { min: [0, 0, k], max: [4, 4, k + 2] })
    }
    fn pt(i: usize, positive: bool) -> PromptKind {
        PromptKind::Point(PointIjk { ijk: [i, 1, 1], positive })
    }

    #[test]
    fn typed_views_keep_the_order_given_and_a_seed_replaces_the_last() {
        let mut o = ObjectPrompts::new(3);
        for k in [bx(0), pt(1, true), bx(5), pt(2, false)] {
            o.push(Prompt::user(k));
        }
        assert_eq!(o.boxes().map(|b| b.min[2]).collect::<Vec<_>>(), vec![0, 5]);
        assert_eq!(o.points().map(|p| (p.ijk[0], p.positive)).collect::<Vec<_>>(), vec![(1, true), (2, false)]);
        o.push(Prompt::user(PromptKind::Seed(Arc::new(vec![1]))));
        o.push(Prompt::user(PromptKind::Seed(Arc::new(vec![0, 1]))));
        assert_eq!(o.seed().map(|s| s.len()), Some(2));
        assert_eq!(o.prompts.len(), 5);
        assert!(o.remove_point([1, 1, 1]) && !o.remove_point([1, 1, 1]));
        // A box grown from a click goes with the click (and not before its last copy).
        let grown = Prompt { kind: bx(9), source: Source::Growth { click: [2, 1, 1] }, weight: 1.0 };
        o.push(grown.clone());
        o.push(Prompt::user(pt(2, true)));
        assert!(o.remove_point([2, 1, 1]) && o.contains(&grown.kind));
        assert!(o.remove_point([2, 1, 1]) && !o.contains(&grown.kind));
        assert!(o.has_start());
        let only_negative = ObjectPrompts { label: 1, prompts: vec![Prompt::user(pt(1, false))] };
        assert!(!only_negative.has_start());
    }

    #[test]
    fn the_diff_tells_points_from_everything_else() {
        let mut a = ObjectPrompts::new(1);
        a.push(Prompt::user(bx(0)));
        let mut b = a.clone();
        assert_eq!(diff(&a, &b), Change::None);
        b.push(Prompt::user(pt(2, true)));
        assert_eq!(diff(&a, &b), Change::Points);
        let mut c = b.clone();
        c.push(Prompt::user(PromptKind::Text("liver".into())));
        assert_eq!(diff(&b, &c), Change::Start);
        let mut d = a.clone();
        d.prompts[0] = Prompt::user(bx(1));
        assert_eq!(diff(&a, &d), Change::Start);
        // The same box from another source is another prompt.
        let mut e = a.clone();
        e.prompts[0].source = Source::Anatomy { concept: "liver".into() };
        assert_eq!(diff(&a, &e), Change::Start);
    }
}
