//! What each object's result owes to each of its prompts, for hosts that show why a mask is what it is.
//!
//! Every prompt is listed with its source (the host, a text prompt's concept and score, an anatomical prior,
//! a click's growth) and weight, and with what can be measured of its part in the result as the host sees it
//! (the composed label mask): for a box, seed or limit, how much of the result lies inside it and how much of
//! it the result covers; for a point, whether the result honours it; for text, the resolution (concept,
//! score, alternatives). The object's confidence and mean predicted IoU come with it.

use std::fmt::Write;

use super::Session;
use crate::concept::report::{quote, resolution_json};
use crate::concept::{Domain, Resolution};
use crate::pipeline::compose::ObjectSummary;
use crate::prompt::{Hint, PromptKind, Source};
use crate::volume::{BoxIjk, U8Volume};

/// What one prompt did.
#[derive(Debug, Clone, PartialEq)]
pub enum Contribution {
    /// A box, seed mask or limit: its voxels, the share of the result inside it, the share of it the result
    /// covers.
    Region {
        voxels: usize,
        result_inside: f64,
        covered: f64,
    },
    /// A point: whether the result holds it (positive) or leaves it out (negative).
    Point {
        positive: bool,
        satisfied: bool,
    },
    /// Text: what it resolved to (None if it no longer resolves, e.g. the vocabulary changed).
    Text {
        phrase: String,
        resolution: Option<Resolution>,
    },
    /// A text embedding fed to a conditioned model.
    Embedding {
        dim: usize,
    },
    Hint(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PromptReport {
    pub kind: &'static str,
    pub source: Source,
    pub weight: f32,
    pub contribution: Contribution,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectReport {
    pub label: u8,
    /// Voxels of the object in the composed mask (after overlaps between objects).
    pub voxels: usize,
    /// Whether the object has a result (it ran).
    pub ran: bool,
    pub slices: usize,
    pub mean_iou: f32,
    pub confidence: f32,
    pub prompts: Vec<PromptReport>,
}

/// The share `part / whole`, 0 for an empty whole.
fn share(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl Session {
    /// One report per object, in the session's order, against the mask `compose` gives now.
    pub fn reports(&self) -> Vec<ObjectReport> {
        let (mask, _) = self.compose(false);
        self.reports_with(&mask, &self.summaries())
    }

    /// `reports` against the `mask` and `summaries` that `compose` and `summaries` give now, for a host that
    /// has them already: composing and summarising again would cost a pass over every object's slices.
    pub fn reports_with(&self, mask: &U8Volume, summaries: &[ObjectSummary]) -> Vec<ObjectReport> {
        let [w, h, _] = self.image.dims;
        let mut counts = [0usize; 256];
        for &v in &mask.data {
            counts[v as usize] += 1;
        }
        let mut out = Vec::new();
        for o in &self.objects.list {
            let label = o.prompts.label;
            let mine = |i: usize| mask.data[i] == label;
            let voxels = counts[label as usize];
            let region = |inside: usize, size: usize| Contribution::Region {
                voxels: size,
                result_inside: share(inside, voxels),
                covered: share(inside, size),
            };
            let in_box = |b: &BoxIjk| {
                let mut inside = 0;
                for k in b.min[2]..=b.max[2] {
                    for j in b.min[1]..=b.max[1] {
                        let row = (k * h + j) * w;
                        inside += (b.min[0]..=b.max[0]).filter(|&i| mine(row + i)).count();
                    }
                }
                let size = (0..3).map(|a| b.max[a] - b.min[a] + 1).product();
                region(inside, size)
            };
            let in_mask = |m: &[u8]| {
                let (mut inside, mut size) = (0, 0);
                for (i, &v) in m.iter().enumerate() {
                    if v != 0 {
                        size += 1;
                        inside += mine(i) as usize;
                    }
                }
                region(inside, size)
            };
            let prompts = o
                .prompts
                .prompts
                .iter()
                .map(|p| {
                    let (kind, contribution) = match &p.kind {
                        PromptKind::Box(b) => ("box", in_box(b)),
                        PromptKind::Seed(m) => ("seed", in_mask(m)),
                        PromptKind::Limit(m) => ("limit", in_mask(m)),
                        PromptKind::Point(q) => {
                            let i = (q.ijk[2] * h + q.ijk[1]) * w + q.ijk[0];
                            ("point", Contribution::Point { positive: q.positive, satisfied: mine(i) == q.positive })
                        }
                        PromptKind::Text(t) => {
                            let resolution = self.text.as_ref().and_then(|c| c.resolver.resolve(t, Domain::Any).ok());
                            ("text", Contribution::Text { phrase: t.clone(), resolution })
                        }
                        PromptKind::TextEmbedding(e) => ("text_embedding", Contribution::Embedding { dim: e.len() }),
                        PromptKind::Hint(h) => ("hint", Contribution::Hint(hint_name(h))),
                    };
                    PromptReport { kind, source: p.source.clone(), weight: p.weight, contribution }
                })
                .collect();
            let s = summaries.iter().find(|s| s.label == label);
            out.push(ObjectReport {
                label,
                voxels,
                ran: o.result.is_some(),
                slices: s.map_or(0, |s| s.slices),
                mean_iou: s.map_or(0.0, |s| s.mean_iou),
                confidence: s.map_or(0.0, |s| s.confidence),
                prompts,
            });
        }
        out
    }

    /// `reports` as a JSON array (the C ABI's and the CLI's form; see `vxp_session_report`).
    pub fn reports_json(&self) -> String {
        let (mask, _) = self.compose(false);
        self.reports_json_with(&mask, &self.summaries())
    }

    /// `reports_json` from `reports_with`.
    pub fn reports_json_with(&self, mask: &U8Volume, summaries: &[ObjectSummary]) -> String {
        let vocab = self.text.as_ref().map(|c| c.resolver.vocab.clone());
        let objects: Vec<String> = self
            .reports_with(mask, summaries)
            .iter()
            .map(|r| {
                let prompts: Vec<String> = r.prompts.iter().map(|p| prompt_json(p, vocab.as_deref())).collect();
                format!(
                    "{{\"label\":{},\"ran\":{},\"voxels\":{},\"slices\":{},\"mean_iou\":{},\"confidence\":{},\"prompts\":[{}]}}",
                    r.label,
                    r.ran,
                    r.voxels,
                    r.slices,
                    num(r.mean_iou as f64),
                    num(r.confidence as f64),
                    prompts.join(",")
                )
            })
            .collect();
        format!("[{}]", objects.join(","))
    }
}

fn hint_name(h: &Hint) -> String {
    match h {
        Hint::Organ(o) => format!("organ {o}"),
        Hint::Side(s) => format!("side {s:?}").to_lowercase(),
        Hint::Lesion { in_air: true } => "lesion in an air-filled organ".into(),
        Hint::Lesion { in_air: false } => "lesion".into(),
        Hint::PriorOnly => "prior only".into(),
    }
}

/// A finite number with 4 decimals (JSON has no NaN).
fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "null".into()
    }
}

fn prompt_json(p: &PromptReport, vocab: Option<&crate::concept::Vocabulary>) -> String {
    let source = match &p.source {
        Source::User => "{\"from\":\"user\"}".to_string(),
        Source::Text { concept, score } => {
            format!("{{\"from\":\"text\",\"concept\":{},\"score\":{}}}", quote(concept), num(*score as f64))
        }
        Source::Anatomy { concept } => format!("{{\"from\":\"anatomy\",\"concept\":{}}}", quote(concept)),
        Source::Growth { click } => {
            format!("{{\"from\":\"growth\",\"click\":[{},{},{}]}}", click[0], click[1], click[2])
        }
    };
    let mut c = String::new();
    match &p.contribution {
        Contribution::Region { voxels, result_inside, covered } => {
            let _ = write!(
                c,
                "{{\"voxels\":{voxels},\"result_inside\":{},\"covered\":{}}}",
                num(*result_inside),
                num(*covered)
            );
        }
        Contribution::Point { positive, satisfied } => {
            let _ = write!(c, "{{\"positive\":{positive},\"satisfied\":{satisfied}}}");
        }
        Contribution::Text { phrase, resolution } => {
            let r = match (resolution, vocab) {
                (Some(r), Some(v)) => resolution_json(r, v),
                _ => "null".into(),
            };
            let _ = write!(c, "{{\"phrase\":{},\"resolution\":{r}}}", quote(phrase));
        }
        Contribution::Embedding { dim } => {
            let _ = write!(c, "{{\"dim\":{dim}}}");
        }
        Contribution::Hint(h) => {
            let _ = write!(c, "{{\"hint\":{}}}", quote(h));
        }
    }
    format!("{{\"kind\":\"{}\",\"source\":{source},\"weight\":{},\"contribution\":{c}}}", p.kind, num(p.weight as f64))
}
