//! Model package manifests (`models/<name>/manifest.toml`): what a package is, where it came from, what its
//! graphs expect, and the sha256 of every file, checked before anything is loaded.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Manifest contract versions this build understands.
pub const CONTRACT_VERSIONS: std::ops::RangeInclusive<u32> = 1..=1;

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub kind: String,
    pub contract_version: u32,
    pub license: String,
    #[serde(default)]
    pub description: String,
    pub source: BTreeMap<String, String>,
    pub preprocess: Preprocess,
    pub graphs: BTreeMap<String, Graph>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Preprocess {
    pub input_size: usize,
    pub embedding_size: usize,
    pub channels: usize,
    #[serde(default)]
    pub mask_threshold: f32,
    #[serde(default = "default_box_shift")]
    pub box_shift: i64,
}

fn default_box_shift() -> i64 {
    3
}

#[derive(Debug, Clone, Deserialize)]
pub struct Graph {
    pub file: String,
    pub sha256: String,
    /// The graph this one was rewritten from (a key of `graphs`), with the same arithmetic: provenance only,
    /// the engine loads what it names, never both.
    #[serde(default)]
    pub derived_from: Option<String>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

/// A manifest together with the folder it was read from.
#[derive(Debug, Clone)]
pub struct Package {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Package {
    /// Reads `dir/manifest.toml` and checks its contract version (files are verified separately).
    pub fn open(dir: &Path) -> Result<Package> {
        let path = dir.join("manifest.toml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::ModelNotFound(format!("{}: {e}", path.display())))?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| Error::ModelContract(format!("{}: {e}", path.display())))?;
        if !CONTRACT_VERSIONS.contains(&manifest.contract_version) {
            return Err(Error::ModelContract(format!(
                "{}: contract_version {} is not in the supported range {}..={}",
                path.display(),
                manifest.contract_version,
                CONTRACT_VERSIONS.start(),
                CONTRACT_VERSIONS.end()
            )));
        }
        for (name, g) in &manifest.graphs {
            if let Some(from) = &g.derived_from {
                if from == name || !manifest.graphs.contains_key(from) {
                    return Err(Error::ModelContract(format!(
                        "{}: graph {name:?} is derived_from {from:?}, which is not another graph of the package",
                        path.display()
                    )));
                }
            }
        }
        Ok(Package { dir: dir.to_path_buf(), manifest })
    }

    pub fn graph(&self, name: &str) -> Result<&Graph> {
        self.manifest
            .graphs
            .get(name)
            .ok_or_else(|| Error::ModelContract(format!("package {} has no graph named {name:?}", self.manifest.name)))
    }

    /// Reads a graph's file and checks its sha256 against the manifest; returns the verified bytes so the
    /// session is built from exactly what was checked.
    pub fn verified_bytes(&self, graph: &str) -> Result<Vec<u8>> {
        let g = self.graph(graph)?;
        let path = self.dir.join(&g.file);
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| Error::ModelNotFound(format!("{}: {e}", path.display())))?;
        let digest = hex(&Sha256::digest(&bytes));
        if !digest.eq_ignore_ascii_case(g.sha256.trim()) {
            return Err(Error::ModelIntegrity(format!(
                "{}: sha256 is {digest}, the manifest says {}",
                path.display(),
                g.sha256
            )));
        }
        Ok(bytes)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
