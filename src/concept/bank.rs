//! The embedding bank: every side-free phrase of the vocabulary embedded once, offline, by the text encoder
//! (VoxTell's idea), so at run time the encoder embeds only the user's phrase.
//!
//! File layout (little endian): `VXPBANK1`, u32 dim, u32 rows, 32-byte sha256 of the phrases (one per line,
//! in `Vocabulary::phrases` order), u16 length + UTF-8 name of the encoder, then per row an f32 scale and
//! `dim` i8 values (value = scale × i8). int8 keeps the bank small; the cosine error it adds (< 1e-3) is far
//! below the acceptance margin.

use sha2::{Digest, Sha256};

use super::vocab::Vocabulary;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"VXPBANK1";

#[derive(Debug, Clone)]
pub struct Bank {
    pub encoder: String,
    pub dim: usize,
    /// Unit vectors, row-major.
    rows: Vec<f32>,
    phrases_sha256: [u8; 32],
}

/// The sha256 that ties a bank to the vocabulary it was built from.
pub fn phrases_sha256(vocab: &Vocabulary) -> [u8; 32] {
    let mut h = Sha256::new();
    for (p, _) in vocab.phrases() {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    h.finalize().into()
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

impl Bank {
    /// Embeds every phrase of `vocab` with `embed` (called on batches of phrases).
    pub fn build(
        vocab: &Vocabulary,
        encoder: &str,
        mut embed: impl FnMut(&[&str]) -> Result<Vec<Vec<f32>>>,
    ) -> Result<Bank> {
        let phrases: Vec<&str> = vocab.phrases().iter().map(|(p, _)| p.as_str()).collect();
        let mut rows = Vec::new();
        let mut dim = 0;
        for chunk in phrases.chunks(32) {
            for mut v in embed(chunk)? {
                if dim == 0 {
                    dim = v.len();
                }
                if v.len() != dim || dim == 0 {
                    return Err(Error::InvalidArgument(format!(
                        "the encoder gave vectors of {} and {dim} values",
                        v.len()
                    )));
                }
                unit(&mut v);
                rows.extend(v);
            }
        }
        if rows.len() != phrases.len() * dim {
            return Err(Error::InvalidArgument("the encoder gave fewer vectors than phrases".into()));
        }
        Ok(Bank { encoder: encoder.to_string(), dim, rows, phrases_sha256: phrases_sha256(vocab) })
    }

    pub fn len(&self) -> usize {
        self.rows.len().checked_div(self.dim).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.rows[i * self.dim..(i + 1) * self.dim]
    }

    /// Whether the bank was built from this vocabulary's phrases.
    pub fn matches(&self, vocab: &Vocabulary) -> bool {
        self.phrases_sha256 == phrases_sha256(vocab) && self.len() == vocab.phrases().len()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.encoder.len() + self.len() * (4 + self.dim));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.phrases_sha256);
        out.extend_from_slice(&(self.encoder.len() as u16).to_le_bytes());
        out.extend_from_slice(self.encoder.as_bytes());
        for i in 0..self.len() {
            let r = self.row(i);
            let scale = r.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            out.extend_from_slice(&scale.to_le_bytes());
            out.extend(r.iter().map(|v| if scale > 0.0 { (v / scale).round() as i8 as u8 } else { 0 }));
        }
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Bank> {
        let bad = |what: &str| Error::ModelContract(format!("concept bank: {what}"));
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8]> {
            let s = bytes.get(at..at + n).ok_or_else(|| bad("truncated"))?;
            at += n;
            Ok(s)
        };
        if take(8)? != MAGIC {
            return Err(bad("not a VXPBANK1 file"));
        }
        let u32_at = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize;
        let dim = u32_at(take(4)?);
        let n = u32_at(take(4)?);
        let mut sha = [0u8; 32];
        sha.copy_from_slice(take(32)?);
        let name_len = {
            let s = take(2)?;
            u16::from_le_bytes([s[0], s[1]]) as usize
        };
        let encoder = std::str::from_utf8(take(name_len)?).map_err(|_| bad("encoder name is not UTF-8"))?.to_string();
        if dim == 0 || dim > 65_536 || n > 1_000_000 {
            return Err(bad(&format!("{n} rows of {dim} values")));
        }
        let mut rows = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let s = take(4)?;
            let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            if !scale.is_finite() {
                return Err(bad("a row's scale is not finite"));
            }
            let start = rows.len();
            rows.extend(take(dim)?.iter().map(|&b| b as i8 as f32 * scale));
            unit(&mut rows[start..]);
        }
        if at != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(Bank { encoder, dim, rows, phrases_sha256: sha })
    }

    /// Cosine of `q` (any length-`dim` vector) with every row.
    pub fn cosines(&self, q: &[f32]) -> Result<Vec<f32>> {
        if q.len() != self.dim {
            return Err(Error::InvalidArgument(format!(
                "a query vector of {} values against a bank of {}",
                q.len(),
                self.dim
            )));
        }
        let n = q.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
        Ok((0..self.len()).map(|i| self.row(i).iter().zip(q).map(|(a, b)| a * b).sum::<f32>() / n).collect())
    }
}
