//! Model package manifests (`models/<name>/manifest.toml`): what a package is, where it came from, what its
//! graphs expect, and the sha256 of every file, checked before anything is loaded.
//!
//! The manifest is tagged by `kind`; each kind has its own section (`[preprocess]` for `sam2d`, `[text]`
//! for `text_encoder`, `[mosaic]` for `mosaic`) and a package may hold only its own kind's section. Unknown fields are refused, so a
//! manifest field is either used by the engine or the package does not load.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Manifest contract versions this build understands.
pub const CONTRACT_VERSIONS: std::ops::RangeInclusive<u32> = 1..=1;

/// What a package is. Kinds that a later build will run are declared now so a manifest naming one is
/// refused with a clear message instead of a parse error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// A SAM-style 2D image encoder plus prompt decoder, lifted to 3D slice by slice (LiteMedSAM).
    Sam2d,
    /// A sentence encoder that turns a phrase into an embedding (MiniLM).
    TextEncoder,
    /// SAM2-style video model with a memory bank (declared; not run by this build).
    Sam2Memory,
    /// A native 3D promptable model on patches (declared; not run by this build).
    Volumetric,
    /// A prompt-free 2D model over slice mosaics with 2-class logits (SFR, METHODS §4.3).
    Mosaic,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Sam2d => "sam2d",
            ModelKind::TextEncoder => "text_encoder",
            ModelKind::Sam2Memory => "sam2_memory",
            ModelKind::Volumetric => "volumetric",
            ModelKind::Mosaic => "mosaic",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub kind: ModelKind,
    pub contract_version: u32,
    pub license: String,
    #[serde(default)]
    pub description: String,
    pub source: BTreeMap<String, String>,
    /// `sam2d` only.
    #[serde(default)]
    pub preprocess: Option<Preprocess>,
    /// `text_encoder` only.
    #[serde(default)]
    pub text: Option<TextSection>,
    /// `mosaic` only.
    #[serde(default)]
    pub mosaic: Option<MosaicSection>,
    /// `sam2d` only: decoder inputs beyond the prompt encoder's that the engine feeds per prompt.
    #[serde(default)]
    pub conditioning: Option<Conditioning>,
    pub graphs: BTreeMap<String, Graph>,
}

/// How a `sam2d` model wants its slices and what its decoder output means.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// The square input side S (the longest side of a slice is resized to it).
    pub input_size: usize,
    /// The side of the encoder's embedding.
    pub embedding_size: usize,
    /// Image channels the encoder takes (the grey slice repeated).
    pub channels: usize,
    /// A pixel is inside where its upsampled logit exceeds this.
    #[serde(default)]
    pub mask_threshold: f32,
    /// Propagation grows the previous mask's box by this many pixels of the input frame.
    #[serde(default = "default_box_shift")]
    pub box_shift: i64,
}

fn default_box_shift() -> i64 {
    3
}

/// How a `mosaic` model takes its canvases and what its output means (SFR's contract, METHODS §4.2–4.3):
/// one graph `model`, input `image` [1, channels, S, S] (the stack's slices tiled onto the canvas, z-scored
/// over the whole volume, 0 outside the slices, the grey canvas repeated), output `logits`
/// [1, classes, O, O], upsampled bilinearly to S and softmaxed over the classes; a pixel is foreground where
/// class `foreground` has the highest probability.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MosaicSection {
    /// The canvas side S (1024 for SAM ViT-B).
    pub input_size: usize,
    /// The side O of the logits (256 for SAM's mask decoder).
    pub output_size: usize,
    pub channels: usize,
    /// Logit channels: SFR's decoder gives 2 (background, foreground).
    pub classes: usize,
    #[serde(default = "default_foreground")]
    pub foreground: usize,
    /// How the volume's intensities become the canvas's: only SFR's `zscore` (`dataset.py`:
    /// (x − mean) / std over the whole volume).
    pub normalize: Normalize,
}

fn default_foreground() -> usize {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    Zscore,
}

/// Extra decoder inputs of a text- or anatomy-conditioned `sam2d` model (TAGS-style, METHODS §3), fed for
/// every prompt of a batch: the embedding of the object's concept name by the named text encoder
/// (`text_input`, shape [B, D]) and the object's anatomical region on the slice, in the model frame
/// (`anatomy_input`, shape [B, 1, S, S], 0..1). An object without text or without a region gets zeros.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Conditioning {
    /// The `name` of the `text_encoder` package whose embeddings the model was trained with.
    #[serde(default)]
    pub text_encoder: Option<String>,
    /// The decoder input that takes the text embedding.
    #[serde(default)]
    pub text_input: Option<String>,
    /// The decoder input that takes the anatomy mask.
    #[serde(default)]
    pub anatomy_input: Option<String>,
}

/// What a `text_encoder` graph returns and how its token states become one embedding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextSection {
    /// Width D of the hidden states and of the pooled embedding.
    pub dim: usize,
    /// The longest token sequence the graph takes.
    pub max_tokens: usize,
    /// How token states become one embedding, which is then L2-normalised.
    pub pooling: Pooling,
    /// A Hugging Face `tokenizer.json` in the package, so the engine embeds text and not only token ids.
    /// Its own padding and truncation settings are replaced at load (none, and `max_tokens`).
    #[serde(default)]
    pub tokenizer: Option<String>,
    #[serde(default)]
    pub tokenizer_sha256: Option<String>,
    /// The vocabulary's phrases embedded by this encoder (`concept::Bank`), so only the user's phrase is
    /// embedded at run time; built by `cargo run --example concept_bank`.
    #[serde(default)]
    pub concept_bank: Option<String>,
    #[serde(default)]
    pub concept_bank_sha256: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The mean of the token states over the attention mask (sentence-transformers: MiniLM).
    Mean,
    /// The state of the last real token (CLIP's end-of-text token, the last one with padding off; export
    /// the text projection applied to every token state so this is CLIP's `text_embeds`).
    Last,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// Element types a manifest may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    F32,
    F16,
    F64,
    I64,
    I32,
    I8,
    U8,
    Bool,
}

impl ElementType {
    pub fn name(self) -> &'static str {
        match self {
            ElementType::F32 => "f32",
            ElementType::F16 => "f16",
            ElementType::F64 => "f64",
            ElementType::I64 => "i64",
            ElementType::I32 => "i32",
            ElementType::I8 => "i8",
            ElementType::U8 => "u8",
            ElementType::Bool => "bool",
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: ElementType,
    /// -1 for a dimension that varies between runs.
    pub shape: Vec<i64>,
}

/// A manifest together with the folder it was read from.
#[derive(Debug, Clone)]
pub struct Package {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Package {
    /// Reads `dir/manifest.toml` and checks its contract version, its kind's section and its graph
    /// references (files are verified separately, when loaded).
    pub fn open(dir: &Path) -> Result<Package> {
        let path = dir.join("manifest.toml");
        let bytes = crate::io::files::read_regular(&path, MAX_MANIFEST_BYTES).map_err(|e| match e {
            Error::Io { message, .. } => Error::ModelNotFound(format!("{}: {message}", path.display())),
            other => other,
        })?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::ModelContract(format!("{}: not UTF-8 text", path.display())))?;
        let manifest = Manifest::parse(&text).map_err(|e| match e {
            Error::ModelContract(m) => Error::ModelContract(format!("{}: {m}", path.display())),
            other => other,
        })?;
        Ok(Package { dir: dir.to_path_buf(), manifest })
    }

    pub fn graph(&self, name: &str) -> Result<&Graph> {
        self.manifest
            .graphs
            .get(name)
            .ok_or_else(|| Error::ModelContract(format!("package {} has no graph named {name:?}", self.manifest.name)))
    }

    /// Every file the manifest names with its sha256, as (what it is, file, sha256): the graphs, then the
    /// text section's tokenizer and concept bank.
    pub fn files(&self) -> Vec<(String, &str, &str)> {
        let mut out: Vec<(String, &str, &str)> = self
            .manifest
            .graphs
            .iter()
            .map(|(k, g)| (format!("graph {k}"), g.file.as_str(), g.sha256.as_str()))
            .collect();
        if let Some(t) = &self.manifest.text {
            let pairs = [
                ("tokenizer", &t.tokenizer, &t.tokenizer_sha256),
                ("concept bank", &t.concept_bank, &t.concept_bank_sha256),
            ];
            for (what, file, sha) in pairs {
                if let (Some(f), Some(h)) = (file, sha) {
                    out.push((what.to_owned(), f.as_str(), h.as_str()));
                }
            }
        }
        out
    }

    /// Reads a graph's file and checks its sha256 against the manifest; returns the verified bytes so the
    /// session is built from exactly what was checked.
    pub fn verified_bytes(&self, graph: &str) -> Result<Vec<u8>> {
        let g = self.graph(graph)?;
        self.verified_file(&g.file, &g.sha256)
    }

    /// Reads any file of the package and checks it against `sha256`. The file must lie inside the package
    /// (a relative path without `..`), be a regular file and hold at most 2 GiB (ONNX's protobuf limit).
    pub fn verified_file(&self, file: &str, sha256: &str) -> Result<Vec<u8>> {
        let rel = Path::new(file);
        if !crate::io::files::stays_inside(file) {
            return Err(Error::ModelContract(format!(
                "{}: file {file:?} must lie inside the package (a relative path without '..')",
                self.dir.join("manifest.toml").display()
            )));
        }
        let path = self.dir.join(rel);
        let bytes = crate::io::files::read_regular(&path, MAX_MODEL_FILE_BYTES).map_err(|e| match e {
            Error::Io { message, .. } => Error::ModelNotFound(format!("{}: {message}", path.display())),
            other => other,
        })?;
        let digest = hex(&Sha256::digest(&bytes));
        if !digest.eq_ignore_ascii_case(sha256.trim()) {
            return Err(Error::ModelIntegrity(format!(
                "{}: sha256 is {digest}, the manifest says {sha256}",
                path.display()
            )));
        }
        Ok(bytes)
    }
}

impl Manifest {
    /// Parses and checks a manifest's text: the contract version, the kind's own section (and no other
    /// kind's), and that `derived_from` names another graph.
    pub fn parse(text: &str) -> Result<Manifest> {
        // TOML errors draw the line with a caret over several lines; a host shows one.
        let m: Manifest = toml::from_str(text).map_err(|e| Error::ModelContract(one_line(&e.to_string())))?;
        if !CONTRACT_VERSIONS.contains(&m.contract_version) {
            return Err(Error::ModelContract(format!(
                "contract_version {} is not in the supported range {}..={}",
                m.contract_version,
                CONTRACT_VERSIONS.start(),
                CONTRACT_VERSIONS.end()
            )));
        }
        if m.conditioning.is_some() && m.kind != ModelKind::Sam2d {
            return Err(Error::ModelContract(format!(
                "a package of kind \"{}\" has no [conditioning] section (that is \"sam2d\"'s)",
                m.kind
            )));
        }
        if let Some(c) = &m.conditioning {
            if c.text_input.is_none() && c.anatomy_input.is_none() {
                return Err(Error::ModelContract(
                    "[conditioning] names neither a text_input nor an anatomy_input".into(),
                ));
            }
            if c.text_input.is_some() != c.text_encoder.is_some() {
                return Err(Error::ModelContract(
                    "[conditioning] text_input and text_encoder come together: an embedding means only what the \
                     encoder that made it says"
                        .into(),
                ));
            }
            if c.text_input.is_some() && c.text_input == c.anatomy_input {
                return Err(Error::ModelContract("[conditioning] text_input and anatomy_input are one input".into()));
            }
        }
        let sections = [
            ("preprocess", m.preprocess.is_some(), ModelKind::Sam2d),
            ("text", m.text.is_some(), ModelKind::TextEncoder),
            ("mosaic", m.mosaic.is_some(), ModelKind::Mosaic),
        ];
        for (section, present, owner) in sections {
            if present && m.kind != owner {
                return Err(Error::ModelContract(format!(
                    "a package of kind \"{}\" has no [{section}] section (that is \"{owner}\"'s)",
                    m.kind
                )));
            }
            if !present && m.kind == owner {
                return Err(Error::ModelContract(format!("a package of kind \"{owner}\" needs a [{section}] section")));
            }
        }
        if let Some(t) = &m.text {
            if t.tokenizer.is_some() != t.tokenizer_sha256.is_some() {
                return Err(Error::ModelContract(
                    "[text] tokenizer and tokenizer_sha256 come together: a tokenizer file is checked like a graph"
                        .into(),
                ));
            }
            if t.concept_bank.is_some() != t.concept_bank_sha256.is_some() {
                return Err(Error::ModelContract(
                    "[text] concept_bank and concept_bank_sha256 come together: the bank is checked like a graph"
                        .into(),
                ));
            }
            if t.concept_bank.is_some() && t.tokenizer.is_none() {
                return Err(Error::ModelContract("[text] concept_bank needs a tokenizer to embed queries".into()));
            }
        }
        for (name, g) in &m.graphs {
            if let Some(from) = &g.derived_from {
                if from == name || !m.graphs.contains_key(from) {
                    return Err(Error::ModelContract(format!(
                        "graph {name:?} is derived_from {from:?}, which is not another graph of the package"
                    )));
                }
            }
        }
        Ok(m)
    }

    /// The `[preprocess]` section of a `sam2d` package.
    pub fn preprocess(&self) -> Result<&Preprocess> {
        self.preprocess
            .as_ref()
            .ok_or_else(|| Error::ModelContract(format!("package {} has no [preprocess]", self.name)))
    }

    /// The `[mosaic]` section of a `mosaic` package.
    pub fn mosaic(&self) -> Result<&MosaicSection> {
        self.mosaic.as_ref().ok_or_else(|| Error::ModelContract(format!("package {} has no [mosaic]", self.name)))
    }

    /// The `[text]` section of a `text_encoder` package.
    pub fn text(&self) -> Result<&TextSection> {
        self.text.as_ref().ok_or_else(|| Error::ModelContract(format!("package {} has no [text]", self.name)))
    }
}

const MAX_MANIFEST_BYTES: u64 = 1 << 20;
const MAX_MODEL_FILE_BYTES: u64 = 2 << 30;

/// A multi-line message as one line: its lines trimmed and joined, the caret drawing left out.
fn one_line(s: &str) -> String {
    s.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "|").collect::<Vec<_>>().join(" ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAM: &str = r#"
name = "m"
kind = "sam2d"
contract_version = 1
license = "Apache-2.0"
[source]
package = "p"
[preprocess]
input_size = 256
embedding_size = 64
channels = 3
[graphs.encoder]
file = "e.onnx"
sha256 = "00"
inputs = [ { name = "image", dtype = "f32", shape = [1, 3, 256, 256] } ]
outputs = [ { name = "image_embeddings", dtype = "f32", shape = [1, 256, 64, 64] } ]
"#;

    fn err(text: &str) -> String {
        match Manifest::parse(text) {
            Err(Error::ModelContract(m)) => m,
            other => panic!("expected a contract error, got {other:?}"),
        }
    }

    #[test]
    fn a_sam2d_manifest_parses_with_its_defaults() {
        let m = Manifest::parse(SAM).unwrap();
        assert_eq!(m.kind, ModelKind::Sam2d);
        let p = m.preprocess().unwrap();
        assert_eq!((p.input_size, p.embedding_size, p.channels, p.mask_threshold, p.box_shift), (256, 64, 3, 0.0, 3));
        let g = &m.graphs["encoder"];
        assert_eq!(g.inputs[0].dtype, ElementType::F32);
        assert_eq!(g.outputs[0].shape, vec![1, 256, 64, 64]);
    }

    #[test]
    fn unknown_fields_kinds_and_dtypes_are_refused_by_name() {
        assert!(err(&SAM.replace("channels = 3", "channels = 3\ncolour = true")).contains("colour"));
        assert!(err(&SAM.replace("license = ", "licence = \"x\"\nlicense = ")).contains("licence"));
        let e = err(&SAM.replace("kind = \"sam2d\"", "kind = \"sam3d\""));
        assert!(e.contains("sam3d") && e.contains("text_encoder"), "{e}");
        assert!(
            err(&SAM.replace("dtype = \"f32\", shape = [1, 3", "dtype = \"float\", shape = [1, 3")).contains("float")
        );
        assert!(err(&SAM.replace("contract_version = 1", "contract_version = 7")).contains("contract_version 7"));
    }

    #[test]
    fn a_package_holds_only_its_own_kinds_section() {
        let text = SAM.replace("kind = \"sam2d\"", "kind = \"text_encoder\"");
        assert!(err(&text).contains("[preprocess]"));
        let text = text.replace("[preprocess]", "[text]\ndim = 4\nmax_tokens = 8\npooling = \"mean\"\n[unused]");
        // [unused] is an unknown table.
        assert!(err(&text).contains("unused"));
        let no_section = SAM.replace("[preprocess]\ninput_size = 256\nembedding_size = 64\nchannels = 3\n", "");
        assert!(err(&no_section).contains("needs a [preprocess]"));
    }

    #[test]
    fn a_tokenizer_needs_its_sha256() {
        let text = SAM
            .replace("kind = \"sam2d\"", "kind = \"text_encoder\"")
            .replace("[preprocess]\ninput_size = 256\nembedding_size = 64\nchannels = 3\n", "");
        let with = |extra: &str| {
            text.replace(
                "[graphs.encoder]",
                &format!("[text]\ndim = 4\nmax_tokens = 8\npooling = \"mean\"\n{extra}[graphs.encoder]"),
            )
        };
        assert!(err(&with("tokenizer = \"t.json\"\n")).contains("tokenizer_sha256"));
        assert!(err(&with("tokenizer_sha256 = \"00\"\n")).contains("tokenizer_sha256"));
        let t = Manifest::parse(&with("tokenizer = \"t.json\"\ntokenizer_sha256 = \"00\"\n")).unwrap();
        assert_eq!(t.text().unwrap().tokenizer.as_deref(), Some("t.json"));
        assert_eq!(Manifest::parse(&with("")).unwrap().text().unwrap().tokenizer, None);
    }

    #[test]
    fn conditioning_is_a_sam2d_section_with_its_encoder_named() {
        let with = |body: &str| SAM.replace("[graphs.encoder]", &format!("[conditioning]\n{body}[graphs.encoder]"));
        let c = Manifest::parse(&with("text_encoder = \"minilm\"\ntext_input = \"t\"\nanatomy_input = \"a\"\n"))
            .unwrap()
            .conditioning
            .unwrap();
        assert_eq!(
            (c.text_encoder.as_deref(), c.text_input.as_deref(), c.anatomy_input.as_deref()),
            (Some("minilm"), Some("t"), Some("a"))
        );
        assert!(Manifest::parse(&with("anatomy_input = \"a\"\n")).unwrap().conditioning.is_some());
        assert!(err(&with("")).contains("neither"));
        assert!(err(&with("text_input = \"t\"\n")).contains("text_encoder"));
        assert!(err(&with("text_encoder = \"m\"\nanatomy_input = \"a\"\n")).contains("come together"));
        assert!(err(&with("text_encoder = \"m\"\ntext_input = \"x\"\nanatomy_input = \"x\"\n")).contains("one input"));
        assert!(err(&with("anatomy = \"a\"\n")).contains("anatomy"));
        let text_kind = SAM
            .replace("kind = \"sam2d\"", "kind = \"text_encoder\"")
            .replace(
                "[preprocess]\ninput_size = 256\nembedding_size = 64\nchannels = 3\n",
                "[text]\ndim = 4\nmax_tokens = 8\npooling = \"mean\"\n",
            )
            .replace("[graphs.encoder]", "[conditioning]\nanatomy_input = \"a\"\n[graphs.encoder]");
        assert!(err(&text_kind).contains("[conditioning]"));
    }

    #[test]
    fn derived_from_must_name_another_graph() {
        let text = SAM.replace("sha256 = \"00\"", "sha256 = \"00\"\nderived_from = \"encoder\"");
        assert!(err(&text).contains("derived_from \"encoder\""));
    }

    #[test]
    fn declared_kinds_parse() {
        for (k, kind) in [("sam2_memory", ModelKind::Sam2Memory), ("volumetric", ModelKind::Volumetric)] {
            let text = SAM
                .replace("kind = \"sam2d\"", &format!("kind = \"{k}\""))
                .replace("[preprocess]\ninput_size = 256\nembedding_size = 64\nchannels = 3\n", "");
            assert_eq!(Manifest::parse(&text).unwrap().kind, kind);
            assert_eq!(kind.name(), k);
        }
    }

    #[test]
    fn a_mosaic_package_needs_its_own_section() {
        let bare = SAM
            .replace("kind = \"sam2d\"", "kind = \"mosaic\"")
            .replace("[preprocess]\ninput_size = 256\nembedding_size = 64\nchannels = 3\n", "");
        assert!(err(&bare).contains("needs a [mosaic] section"), "{}", err(&bare));
        let section =
            "[mosaic]\ninput_size = 1024\noutput_size = 256\nchannels = 3\nclasses = 2\nnormalize = \"zscore\"\n";
        let m = Manifest::parse(&bare.replace("[graphs.encoder]", &format!("{section}[graphs.encoder]"))).unwrap();
        assert_eq!(m.kind, ModelKind::Mosaic);
        let s = m.mosaic().unwrap();
        assert_eq!(
            (s.input_size, s.output_size, s.classes, s.foreground, s.normalize),
            (1024, 256, 2, 1, Normalize::Zscore)
        );
        let other =
            bare.replace("[graphs.encoder]", &format!("{}[graphs.encoder]", section.replace("zscore", "minmax")));
        assert!(err(&other).contains("minmax"), "{}", err(&other));
        let in_sam = SAM.replace("[graphs.encoder]", &format!("{section}[graphs.encoder]"));
        assert!(err(&in_sam).contains("no [mosaic] section"), "{}", err(&in_sam));
    }
}
