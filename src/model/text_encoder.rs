//! `kind = "text_encoder"`: a sentence encoder (all-MiniLM-L6-v2 and its kin) that turns a tokenized phrase
//! into one L2-normalised embedding, for matching free text against concept embeddings.
//!
//! Graph contract: `input_ids` and `attention_mask` (i64, [1, T]), optionally `token_type_ids` (i64, [1, T],
//! fed zeros), → `last_hidden_state` (f32, [1, T, D]). Token states are averaged over the attention mask
//! and L2-normalised, as sentence-transformers' mean pooling does. Tokenization is the caller's.

use ort::session::Session;
use ort::value::TensorRef;
use parking_lot::Mutex;

use super::contract::{self, session_io};
use super::manifest::{ModelKind, Package, Pooling};
use super::providers::{build_session_with_threads, Provider, SessionConfig};
use crate::error::{Error, Result};
use crate::runtime::Runtime;

const INPUTS: [&str; 2] = ["input_ids", "attention_mask"];
const TOKEN_TYPES: &str = "token_type_ids";
const OUTPUTS: [&str; 1] = ["last_hidden_state"];

pub struct TextEncoder {
    pub name: String,
    session: Mutex<Session>,
    /// Width of the embedding.
    pub dim: usize,
    pub max_tokens: usize,
    token_types: bool,
    pub provider: Provider,
    pub fallback_reasons: Vec<String>,
}

impl TextEncoder {
    pub fn load(rt: &Runtime, package: &Package, cfg: &SessionConfig) -> Result<TextEncoder> {
        let m = &package.manifest;
        if m.kind != ModelKind::TextEncoder {
            return Err(Error::ModelContract(format!(
                "package {} is of kind \"{}\", not \"text_encoder\"",
                m.name, m.kind
            )));
        }
        let text = m.text()?;
        let Pooling::Mean = text.pooling;
        if text.dim == 0 || text.max_tokens == 0 {
            return Err(Error::ModelContract(format!("{}: dim and max_tokens must be positive", m.name)));
        }
        let what = format!("{} encoder", m.name);
        let spec = package.graph("encoder")?;
        let hidden = contract::declared(&what, &spec.outputs, OUTPUTS[0])?;
        if hidden.shape.len() != 3 || hidden.shape[2] != text.dim as i64 {
            return Err(Error::ModelContract(format!(
                "{what}: output {:?} has shape {:?}, not [1, T, {}] as [text] dim says",
                hidden.name, hidden.shape, text.dim
            )));
        }
        let bytes = package.verified_bytes("encoder")?;
        // A phrase is a few tokens: one session with every thread, run rarely.
        let built = build_session_with_threads(rt, &bytes, cfg, "text encoder", cfg.total_threads(), false)?;
        let (ins, outs) = session_io(&built.session);
        contract::check(&what, spec, (&ins, &outs), (&INPUTS, &OUTPUTS))?;
        Ok(TextEncoder {
            name: m.name.clone(),
            session: Mutex::new(built.session),
            dim: text.dim,
            max_tokens: text.max_tokens,
            token_types: spec.inputs.iter().any(|i| i.name == TOKEN_TYPES),
            provider: built.provider,
            fallback_reasons: built.fallback_reasons,
        })
    }

    /// The pooled, L2-normalised embedding of one token sequence.
    pub fn embed_ids(&self, ids: &[i64]) -> Result<Vec<f32>> {
        let t = ids.len();
        if t == 0 || t > self.max_tokens {
            return Err(Error::InvalidArgument(format!(
                "a text prompt of {t} tokens; the encoder takes 1..={}",
                self.max_tokens
            )));
        }
        let mask = vec![1i64; t];
        let types = vec![0i64; t];
        let mut s = self.session.lock();
        let ids_t = TensorRef::from_array_view(([1usize, t], ids))?;
        let mask_t = TensorRef::from_array_view(([1usize, t], mask.as_slice()))?;
        let outputs = if self.token_types {
            let types_t = TensorRef::from_array_view(([1usize, t], types.as_slice()))?;
            s.run(ort::inputs![INPUTS[0] => ids_t, INPUTS[1] => mask_t, TOKEN_TYPES => types_t])?
        } else {
            s.run(ort::inputs![INPUTS[0] => ids_t, INPUTS[1] => mask_t])?
        };
        let (_, hidden) = outputs[OUTPUTS[0]].try_extract_tensor::<f32>()?;
        if hidden.len() != t * self.dim {
            return Err(Error::ModelContract(format!(
                "{}: the encoder produced {} values for {t} tokens of width {}",
                self.name,
                hidden.len(),
                self.dim
            )));
        }
        Ok(mean_pool_normalised(hidden, &mask, self.dim))
    }
}

/// Mean of the token states where `mask` is 1, scaled to unit length (a zero vector stays zero).
pub fn mean_pool_normalised(hidden: &[f32], mask: &[i64], dim: usize) -> Vec<f32> {
    let mut out = vec![0f64; dim];
    let mut n = 0usize;
    for (row, &m) in hidden.chunks_exact(dim).zip(mask) {
        if m != 0 {
            n += 1;
            for (o, &v) in out.iter_mut().zip(row) {
                *o += v as f64;
            }
        }
    }
    let n = n.max(1) as f64;
    let norm = out.iter().map(|v| (v / n) * (v / n)).sum::<f64>().sqrt();
    out.iter().map(|v| if norm > 0.0 { (v / n / norm) as f32 } else { 0.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_pooling_skips_masked_tokens_and_normalises() {
        let hidden = [3.0, 0.0, 100.0, 100.0, 0.0, 4.0];
        let v = mean_pool_normalised(&hidden, &[1, 0, 1], 2);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6, "{v:?}");
        assert_eq!(mean_pool_normalised(&[0.0, 0.0], &[1], 2), vec![0.0, 0.0]);
    }
}
