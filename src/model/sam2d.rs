//! `kind = "sam2d"`: a SAM-style image encoder plus a prompt-encoder/mask-decoder graph (LiteMedSAM).
//!
//! Decoder contract (METHODS §0.5): `point_coords` [B,N,2] in the model's input frame without SAM's +0.5
//! (the graph adds it), `point_labels` [B,N] (1 positive, 0 negative, 2/3 box corners, −1 padding),
//! `mask_input` [B,1,S,S], `has_mask_input` [B] → `low_res_logits` [B,1,S,S], `iou_predictions` [B,1].
//! Padding tokens change the logits, so prompts are only batched with prompts of the same token count and a
//! box is never padded.

use std::collections::BTreeMap;

use ort::session::Session;
use ort::value::TensorRef;
use parking_lot::Mutex;

use super::manifest::{Package, TensorSpec};
use super::providers::{build_session, build_session_with_threads, Provider, SessionConfig};
use crate::error::{Error, Result};
use crate::runtime::Runtime;

const ENCODER_IN: [&str; 1] = ["image"];
const ENCODER_OUT: [&str; 1] = ["image_embeddings"];
const DECODER_IN: [&str; 5] = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"];
const DECODER_OUT: [&str; 2] = ["low_res_logits", "iou_predictions"];

/// One prompt for one object on one slice, in the model's input frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt2d {
    /// (x, y, label) with label 1 = positive, 0 = negative.
    pub points: Vec<(f32, f32, f32)>,
    /// x0, y0, x1, y1.
    pub bbox: Option<[f32; 4]>,
    /// Previous low-res logits (S×S).
    pub mask: Option<Vec<f32>>,
}

impl Prompt2d {
    pub fn from_box(b: [f32; 4]) -> Self {
        Prompt2d { bbox: Some(b), ..Default::default() }
    }

    /// Tokens exactly as the reference prompt encoder sees them: points first, then the two box corners;
    /// a points-only prompt gets the one (0,0) padding token the reference adds when there is no box.
    fn tokens(&self) -> Vec<(f32, f32, f32)> {
        let mut t = self.points.clone();
        match self.bbox {
            Some([x0, y0, x1, y1]) => {
                t.push((x0, y0, 2.0));
                t.push((x1, y1, 3.0));
            }
            None => t.push((0.0, 0.0, -1.0)),
        }
        t
    }
}

/// Decoder output for one prompt.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// S×S low-resolution logits.
    pub logits: Vec<f32>,
    pub iou: f32,
}

pub struct Sam2d {
    /// One encoder and one decoder session per worker, so independent slices can run concurrently.
    encoders: Vec<Mutex<Session>>,
    decoders: Vec<Mutex<Session>>,
    /// A decoder with every thread, for work that runs alone (interactive refinement), when the workers'
    /// decoders have fewer.
    decoder_wide: Option<Mutex<Session>>,
    /// Model input side (256 for LiteMedSAM).
    pub input_size: usize,
    pub embedding_size: usize,
    pub embedding_dim: usize,
    pub box_shift: i64,
    pub provider: Provider,
    pub fallback_reasons: Vec<String>,
}

fn check_io(
    session: &Session,
    specs_in: &[TensorSpec],
    specs_out: &[TensorSpec],
    want_in: &[&str],
    want_out: &[&str],
    what: &str,
) -> Result<()> {
    let names = |v: &[TensorSpec]| v.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    let sess_in: Vec<String> = session.inputs().iter().map(|o| o.name().to_owned()).collect();
    let sess_out: Vec<String> = session.outputs().iter().map(|o| o.name().to_owned()).collect();
    for (want, manifest, graph, dir) in
        [(want_in, names(specs_in), &sess_in, "input"), (want_out, names(specs_out), &sess_out, "output")]
    {
        for w in want {
            if !manifest.iter().any(|m| m == w) || !graph.iter().any(|g| g == w) {
                return Err(Error::ModelContract(format!(
                    "{what}: {dir} {w:?} is required; manifest declares {manifest:?}, graph has {graph:?}"
                )));
            }
        }
    }
    Ok(())
}

impl Sam2d {
    pub fn load(rt: &Runtime, package: &Package, cfg: &SessionConfig) -> Result<Sam2d> {
        let m = &package.manifest;
        if m.kind != "sam2d" {
            return Err(Error::ModelContract(format!("package {} is of kind {:?}, not \"sam2d\"", m.name, m.kind)));
        }
        let enc_spec = package.graph("encoder")?;
        let dec_spec = package.graph("decoder")?;
        let (enc_bytes, dec_bytes) = (package.verified_bytes("encoder")?, package.verified_bytes("decoder")?);
        let mut encoders = Vec::new();
        let mut decoders = Vec::new();
        for _ in 1..cfg.worker_count() {
            encoders.push(Mutex::new(build_session(rt, &enc_bytes, cfg, "encoder")?.session));
            decoders.push(Mutex::new(build_session(rt, &dec_bytes, cfg, "decoder")?.session));
        }
        let decoder_wide = if cfg.worker_count() > 1 {
            let s = build_session_with_threads(rt, &dec_bytes, cfg, "decoder", cfg.total_threads(), true)?;
            Some(Mutex::new(s.session))
        } else {
            None
        };
        let enc = build_session(rt, &enc_bytes, cfg, "encoder")?;
        let dec = build_session(rt, &dec_bytes, cfg, "decoder")?;
        check_io(&enc.session, &enc_spec.inputs, &enc_spec.outputs, &ENCODER_IN, &ENCODER_OUT, "encoder")?;
        check_io(&dec.session, &dec_spec.inputs, &dec_spec.outputs, &DECODER_IN, &DECODER_OUT, "decoder")?;
        let emb_shape = &enc_spec.outputs.iter().find(|o| o.name == ENCODER_OUT[0]).expect("checked").shape;
        let embedding_dim = match emb_shape.as_slice() {
            [1, c, h, w] if *c > 0 && *h as usize == m.preprocess.embedding_size && h == w => *c as usize,
            other => {
                return Err(Error::ModelContract(format!(
                    "encoder output shape {other:?} is not [1, C, {e}, {e}]",
                    e = m.preprocess.embedding_size
                )))
            }
        };
        let mut reasons = enc.fallback_reasons;
        reasons.extend(dec.fallback_reasons);
        Ok(Sam2d {
            encoders: std::iter::once(Mutex::new(enc.session)).chain(encoders).collect(),
            decoders: std::iter::once(Mutex::new(dec.session)).chain(decoders).collect(),
            decoder_wide,
            input_size: m.preprocess.input_size,
            embedding_size: m.preprocess.embedding_size,
            embedding_dim,
            box_shift: m.preprocess.box_shift,
            provider: enc.provider,
            fallback_reasons: reasons,
        })
    }

    pub fn embedding_len(&self) -> usize {
        self.embedding_dim * self.embedding_size * self.embedding_size
    }

    /// Encodes one preprocessed image (3×S×S, CHW) into `out` (C×E×E).
    pub fn encode_into(&self, image: &[f32], out: &mut [f32]) -> Result<()> {
        self.encode_on(0, image, out)
    }

    /// How many slices can be encoded and decoded concurrently (`encode_on` / `decode_on` workers).
    pub fn workers(&self) -> usize {
        self.encoders.len()
    }

    /// `encode_into` on the sessions of `worker` (modulo the worker count).
    pub fn encode_on(&self, worker: usize, image: &[f32], out: &mut [f32]) -> Result<()> {
        let s = self.input_size;
        if image.len() != 3 * s * s || out.len() != self.embedding_len() {
            return Err(Error::ShapeMismatch(format!(
                "encoder wants {} input and {} output values, got {} and {}",
                3 * s * s,
                self.embedding_len(),
                image.len(),
                out.len()
            )));
        }
        let input = TensorRef::from_array_view(([1usize, 3, s, s], image))?;
        let mut enc = self.encoders[worker % self.encoders.len()].lock();
        let outputs = enc.run(ort::inputs![ENCODER_IN[0] => input])?;
        let (_, emb) = outputs[ENCODER_OUT[0]].try_extract_tensor::<f32>()?;
        if emb.len() != out.len() {
            return Err(Error::ModelContract(format!("encoder produced {} values, expected {}", emb.len(), out.len())));
        }
        out.copy_from_slice(emb);
        Ok(())
    }

    /// Decodes several prompts against one embedding. Prompts with the same token count share one run.
    pub fn decode(&self, embedding: &[f32], prompts: &[Prompt2d]) -> Result<Vec<Decoded>> {
        self.decode_on(0, embedding, prompts)
    }

    /// The worker index whose decoder uses every thread (for a caller that runs alone).
    pub const WIDE: usize = usize::MAX;

    /// `decode` on the sessions of `worker` (modulo the worker count; `Sam2d::WIDE` for the all-threads
    /// decoder when there is one).
    pub fn decode_on(&self, worker: usize, embedding: &[f32], prompts: &[Prompt2d]) -> Result<Vec<Decoded>> {
        let (e, c, s) = (self.embedding_size, self.embedding_dim, self.input_size);
        if embedding.len() != self.embedding_len() {
            return Err(Error::ShapeMismatch(format!(
                "embedding has {} values, expected {}",
                embedding.len(),
                self.embedding_len()
            )));
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let tokens: Vec<_> = prompts.iter().map(Prompt2d::tokens).collect();
        for (i, t) in tokens.iter().enumerate() {
            if let Some(m) = &prompts[i].mask {
                if m.len() != s * s {
                    return Err(Error::ShapeMismatch(format!(
                        "mask prompt has {} values, expected {}",
                        m.len(),
                        s * s
                    )));
                }
            }
            groups.entry(t.len()).or_default().push(i);
        }
        let mut out: Vec<Option<Decoded>> = vec![None; prompts.len()];
        let emb = TensorRef::from_array_view(([1usize, c, e, e], embedding))?;
        for (n, members) in groups {
            let b = members.len();
            let mut coords = Vec::with_capacity(b * n * 2);
            let mut labels = Vec::with_capacity(b * n);
            let mut masks = vec![0f32; b * s * s];
            let mut has_mask = vec![0f32; b];
            for (slot, &i) in members.iter().enumerate() {
                for &(x, y, l) in &tokens[i] {
                    coords.extend_from_slice(&[x, y]);
                    labels.push(l);
                }
                if let Some(m) = &prompts[i].mask {
                    masks[slot * s * s..(slot + 1) * s * s].copy_from_slice(m);
                    has_mask[slot] = 1.0;
                }
            }
            let mut dec = match (&self.decoder_wide, worker) {
                (Some(wide), Sam2d::WIDE) => wide.lock(),
                _ => self.decoders[worker % self.decoders.len()].lock(),
            };
            let outputs = dec.run(ort::inputs![
                DECODER_IN[0] => emb.view(),
                DECODER_IN[1] => TensorRef::from_array_view(([b, n, 2], coords.as_slice()))?,
                DECODER_IN[2] => TensorRef::from_array_view(([b, n], labels.as_slice()))?,
                DECODER_IN[3] => TensorRef::from_array_view(([b, 1, s, s], masks.as_slice()))?,
                DECODER_IN[4] => TensorRef::from_array_view(([b], has_mask.as_slice()))?,
            ])?;
            let (_, logits) = outputs[DECODER_OUT[0]].try_extract_tensor::<f32>()?;
            let (_, iou) = outputs[DECODER_OUT[1]].try_extract_tensor::<f32>()?;
            if logits.len() != b * s * s || iou.len() != b {
                return Err(Error::ModelContract(format!(
                    "decoder produced {} logits and {} IoU values for a batch of {b}",
                    logits.len(),
                    iou.len()
                )));
            }
            for (slot, &i) in members.iter().enumerate() {
                out[i] = Some(Decoded { logits: logits[slot * s * s..(slot + 1) * s * s].to_vec(), iou: iou[slot] });
            }
        }
        Ok(out.into_iter().map(|d| d.expect("every prompt is in one group")).collect())
    }
}
