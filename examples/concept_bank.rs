//! Builds the concept bank of a text-encoder package: every side-free phrase of the built-in vocabulary
//! embedded once, written next to the graph. Run after changing concepts/*.toml, then put the printed sha256
//! into the package's manifest ([text] concept_bank_sha256); tests/concepts.rs fails on a stale bank.
//!
//!     cargo run --release --example concept_bank -- models/minilm

use std::path::PathBuf;
use std::time::Instant;

use sha2::{Digest, Sha256};
use voxprompt::concept::{self, Bank};
use voxprompt::model::manifest::Package;
use voxprompt::model::text_encoder::TextEncoder;
use voxprompt::model::SessionConfig;

fn main() -> voxprompt::Result<()> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "models/minilm".into()));
    let rt = voxprompt::runtime::runtime(std::env::var_os("VXP_ORT_LIB").map(PathBuf::from).as_deref())?;
    let package = Package::open(&dir)?;
    let enc = TextEncoder::load(rt, &package, &SessionConfig::default())?;
    let vocab = concept::builtin()?;
    let t = Instant::now();
    let bank = Bank::build(&vocab, &enc.name, |batch| enc.embed_batch(batch))?;
    let bytes = bank.to_bytes();
    let out = dir.join("concept_bank.bin");
    std::fs::write(&out, &bytes).map_err(|e| voxprompt::Error::InvalidArgument(format!("{}: {e}", out.display())))?;
    let sha: String = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    println!(
        "{}: {} phrases × {} in {:.1} s, {} bytes\nconcept_bank = \"concept_bank.bin\"\nconcept_bank_sha256 = \"{sha}\"",
        out.display(),
        bank.len(),
        bank.dim,
        t.elapsed().as_secs_f64(),
        bytes.len()
    );
    Ok(())
}
