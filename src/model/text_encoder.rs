//! `kind = "text_encoder"`: a sentence encoder (all-MiniLM-L6-v2 and its kin) that turns a phrase into one
//! L2-normalised embedding, for matching free text against concept embeddings.
//!
//! Graph contract: `input_ids` and `attention_mask` (i64, [B, T]), optionally `token_type_ids` (i64, [B, T],
//! fed zeros), → `last_hidden_state` (f32, [B, T, D]). Token states are pooled as `[text] pooling` says —
//! averaged over the attention mask as sentence-transformers does (`mean`), or the last real token's
//! (`last`, CLIP's end-of-text token) — and L2-normalised. A manifest that fixes B to 1 gets one phrase per
//! run.
//!
//! Text goes through the package's own `tokenizer.json` (`[text] tokenizer`, sha256-checked like a graph).
//! Its padding is switched off, so a phrase is run on its real tokens only, and its truncation is set to
//! `[text] max_tokens`, special tokens included. A package without a tokenizer takes token ids only.

use ort::session::Session;
use ort::value::TensorRef;
use parking_lot::Mutex;
use tokenizers::{PostProcessor, Tokenizer, TruncationParams};

use super::contract::{self, session_io};
use super::manifest::{ModelKind, Package, Pooling, TextSection};
use super::providers::{build_session_with_threads, Provider, SessionConfig};
use crate::error::{Error, Result};
use crate::runtime::Runtime;

const INPUTS: [&str; 2] = ["input_ids", "attention_mask"];
const TOKEN_TYPES: &str = "token_type_ids";
const OUTPUTS: [&str; 1] = ["last_hidden_state"];
/// Sequences per run in `embed_batch`: bounds the hidden states of one run (32 × 256 × 384 f32 = 12.6 MB for
/// MiniLM) however many phrases a caller passes.
const MAX_BATCH: usize = 32;

pub struct TextEncoder {
    pub name: String,
    session: Mutex<Session>,
    tokenizer: Option<Tokenizer>,
    /// Width of the embedding (also `dim()`).
    pub dim: usize,
    /// The longest token sequence, special tokens included; longer text is truncated to it.
    pub max_tokens: usize,
    token_types: bool,
    /// Whether the graph takes more than one sequence per run.
    batched: bool,
    pooling: Pooling,
    pub provider: Provider,
    pub fallback_reasons: Vec<String>,
    /// The package's concept bank, sha256-checked (parsed by `concept::Bank`).
    pub concept_bank: Option<Vec<u8>>,
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
        let ids = contract::declared(&what, &spec.inputs, INPUTS[0])?;
        let batched = ids.shape.first() != Some(&1);
        // The tokenizer is checked before the graph is built: a broken package fails fast and cheaply.
        let tokenizer = load_tokenizer(package, text)?;
        let concept_bank = match (&text.concept_bank, &text.concept_bank_sha256) {
            (Some(f), Some(sha)) => Some(package.verified_file(f, sha)?),
            _ => None,
        };
        let bytes = package.verified_bytes("encoder")?;
        // A phrase is a few tokens: one session with every thread, run rarely.
        let built = build_session_with_threads(rt, &bytes, cfg, "text encoder", cfg.total_threads(), false)?;
        let (ins, outs) = session_io(&built.session);
        contract::check(&what, spec, (&ins, &outs), (&INPUTS, &OUTPUTS))?;
        Ok(TextEncoder {
            name: m.name.clone(),
            session: Mutex::new(built.session),
            tokenizer,
            dim: text.dim,
            max_tokens: text.max_tokens,
            token_types: spec.inputs.iter().any(|i| i.name == TOKEN_TYPES),
            batched,
            pooling: text.pooling,
            provider: built.provider,
            fallback_reasons: built.fallback_reasons,
            concept_bank,
        })
    }

    /// Width of the embeddings.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether the package has a tokenizer, so `embed` and `tokenize` work (else only `embed_ids`).
    pub fn has_tokenizer(&self) -> bool {
        self.tokenizer.is_some()
    }

    /// The token ids the encoder runs for `text`, special tokens included, truncated to `max_tokens`.
    pub fn tokenize(&self, text: &str) -> Result<Vec<i64>> {
        let tokenizer = self.tokenizer.as_ref().ok_or_else(|| {
            Error::Unsupported(format!(
                "text encoder {} has no tokenizer ([text] tokenizer); it embeds token ids only",
                self.name
            ))
        })?;
        if text.trim().is_empty() {
            return Err(Error::InvalidArgument(format!(
                "a text prompt is empty or whitespace only ({:?}); give a phrase such as \"left kidney\"",
                text
            )));
        }
        let enc = tokenizer
            .encode(text, true)
            .map_err(|e| Error::Inference(format!("{}: the tokenizer failed on {text:?}: {e}", self.name)))?;
        // Text the normaliser drops entirely (control characters, a lone combining accent, U+200B) would
        // otherwise embed as the special tokens alone, a vector that resembles every other short phrase.
        if enc.get_special_tokens_mask().iter().all(|&s| s == 1) {
            return Err(Error::InvalidArgument(format!(
                "{}: the text prompt {text:?} has no characters the tokenizer keeps",
                self.name
            )));
        }
        Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
    }

    /// The pooled, L2-normalised embedding of one phrase.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        self.embed_ids(&self.tokenize(text)?)
    }

    /// The embeddings of several phrases, in order: runs of up to 32 phrases, the shorter sequences padded
    /// and masked, so each equals `embed` of that phrase alone (to float rounding). Any empty or
    /// whitespace-only text fails the whole call, naming its index; an empty slice gives no embeddings.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        // Tokenized one by one, not with the tokenizer's encode_batch: that would start rayon's global
        // pool inside the host for a few microseconds of work. With padding off, encode never touches rayon.
        let seqs = texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                self.tokenize(t).map_err(|e| match e {
                    Error::InvalidArgument(m) => Error::InvalidArgument(format!("text {i} of {}: {m}", texts.len())),
                    other => other,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if !self.batched {
            return seqs.iter().map(|ids| self.embed_ids(ids)).collect();
        }
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(MAX_BATCH) {
            out.extend(self.embed_padded(chunk)?);
        }
        Ok(out)
    }

    /// One run over `seqs` padded to the longest of them.
    fn embed_padded(&self, seqs: &[Vec<i64>]) -> Result<Vec<Vec<f32>>> {
        let (n, t) = (seqs.len(), seqs.iter().map(Vec::len).max().unwrap_or(0));
        // Padding id 0 is never looked at: the mask hides it from attention and from pooling.
        let mut ids = vec![0i64; n * t];
        let mut mask = vec![0i64; n * t];
        for (row, seq) in seqs.iter().enumerate() {
            ids[row * t..row * t + seq.len()].copy_from_slice(seq);
            mask[row * t..row * t + seq.len()].fill(1);
        }
        let hidden = self.run(&ids, &mask, [n, t])?;
        Ok(hidden
            .chunks_exact(t * self.dim)
            .zip(mask.chunks_exact(t))
            .map(|(h, m)| pool_normalised(self.pooling, h, m, self.dim))
            .collect())
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
        let hidden = self.run(ids, &mask, [1, t])?;
        Ok(pool_normalised(self.pooling, &hidden, &mask, self.dim))
    }

    /// Runs the graph on `shape` = [sequences, tokens] and returns `last_hidden_state`, checked for size.
    fn run(&self, ids: &[i64], mask: &[i64], shape: [usize; 2]) -> Result<Vec<f32>> {
        let types = vec![0i64; ids.len()];
        let mut s = self.session.lock();
        let ids_t = TensorRef::from_array_view((shape, ids))?;
        let mask_t = TensorRef::from_array_view((shape, mask))?;
        let outputs = if self.token_types {
            let types_t = TensorRef::from_array_view((shape, types.as_slice()))?;
            s.run(ort::inputs![INPUTS[0] => ids_t, INPUTS[1] => mask_t, TOKEN_TYPES => types_t])?
        } else {
            s.run(ort::inputs![INPUTS[0] => ids_t, INPUTS[1] => mask_t])?
        };
        let (_, hidden) = outputs[OUTPUTS[0]].try_extract_tensor::<f32>()?;
        if hidden.len() != ids.len() * self.dim {
            return Err(Error::ModelContract(format!(
                "{}: the encoder produced {} values for {shape:?} tokens of width {}",
                self.name,
                hidden.len(),
                self.dim
            )));
        }
        Ok(hidden.to_vec())
    }
}

/// The package's tokenizer, verified and set to what the encoder needs: no padding, truncation at
/// `max_tokens`. None when the manifest names none.
fn load_tokenizer(package: &Package, text: &TextSection) -> Result<Option<Tokenizer>> {
    let (Some(file), Some(sha)) = (&text.tokenizer, &text.tokenizer_sha256) else {
        return Ok(None);
    };
    let name = &package.manifest.name;
    let bytes = package.verified_file(file, sha)?;
    let broken = |e: &dyn std::fmt::Display| {
        Error::ModelContract(format!("{name}: {file} is not a tokenizer this build can read: {e}"))
    };
    let mut tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| broken(&e))?;
    let special = tokenizer.get_post_processor().map_or(0, |p| p.added_tokens(false));
    if text.max_tokens <= special {
        return Err(Error::ModelContract(format!(
            "{name}: [text] max_tokens = {} leaves no room for text next to the tokenizer's {special} special tokens",
            text.max_tokens
        )));
    }
    // tokenizer.json files exported for fixed-shape runtimes pad every phrase to one length (MiniLM's to
    // 128); run on real tokens only, and let the manifest, not the file, set the length limit.
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams { max_length: text.max_tokens, ..Default::default() }))
        .map_err(|e| broken(&e))?;
    Ok(Some(tokenizer))
}

/// The token states pooled by `pooling` over the tokens where `mask` is 1, scaled to unit length.
pub fn pool_normalised(pooling: Pooling, hidden: &[f32], mask: &[i64], dim: usize) -> Vec<f32> {
    match pooling {
        Pooling::Mean => mean_pool_normalised(hidden, mask, dim),
        Pooling::Last => {
            let last = mask.iter().rposition(|&m| m != 0).unwrap_or(0);
            let row = &hidden[last * dim..(last + 1) * dim];
            let norm = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            row.iter().map(|&v| if norm > 0.0 { (v as f64 / norm) as f32 } else { 0.0 }).collect()
        }
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

    #[test]
    fn last_pooling_takes_the_last_real_token() {
        // Tokens 0 and 1 are real, 2 is padding: token 1's state, normalised.
        let hidden = [9.0, 9.0, 0.0, 2.0, 100.0, 0.0];
        assert_eq!(pool_normalised(Pooling::Last, &hidden, &[1, 1, 0], 2), vec![0.0, 1.0]);
        let mean = pool_normalised(Pooling::Mean, &hidden, &[1, 1, 0], 2);
        let n = 4.5f32.hypot(5.5);
        assert!((mean[0] - 4.5 / n).abs() < 1e-6 && (mean[1] - 5.5 / n).abs() < 1e-6, "{mean:?}");
    }
}
