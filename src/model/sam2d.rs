//! `kind = "sam2d"`: a SAM-style image encoder plus a prompt-encoder/mask-decoder graph (LiteMedSAM).
//!
//! Decoder contract (METHODS §0.5): `point_coords` [B,N,2] in the model's input frame without SAM's +0.5
//! (the graph adds it), `point_labels` [B,N] (1 positive, 0 negative, 2/3 box corners, −1 padding),
//! `mask_input` [B,1,S,S], `has_mask_input` [B] → `low_res_logits` [B,1,S,S], `iou_predictions` [B,1].
//! Padding tokens change the logits, so prompts are only batched with prompts of the same token count and a
//! box is never padded.

use std::borrow::Cow;
use std::collections::BTreeMap;

use ort::session::Session;
use ort::value::TensorRef;
use parking_lot::Mutex;

use super::contract::{self, session_io};
use super::manifest::{Graph, ModelKind, Package};
use super::openvino::OvEncoder;
use super::providers::{build_sessions, BuiltSession, Provider, SessionConfig, SessionJob};
use super::traits::{Conditioned, Decoded, Embedding, EmbeddingLayout, Prompt2d, SliceModel, Worker};
use crate::error::{Error, Result};
use crate::runtime::Runtime;

const ENCODER_IN: [&str; 1] = ["image"];
const ENCODER_OUT: [&str; 1] = ["image_embeddings"];
const DECODER_IN: [&str; 5] = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"];
const DECODER_OUT: [&str; 2] = ["low_res_logits", "iou_predictions"];

/// The frame builds the grey slice repeated into this many channels (the reference's RGB copy).
const CHANNELS: usize = 3;

/// Tokens exactly as the reference prompt encoder sees them: points first, then the two box corners; a
/// points-only prompt gets the one (0,0) padding token the reference adds when there is no box.
fn tokens(p: &Prompt2d) -> Vec<(f32, f32, f32)> {
    let mut t = p.points.clone();
    match p.bbox {
        Some([x0, y0, x1, y1]) => {
            t.push((x0, y0, 2.0));
            t.push((x1, y1, 3.0));
        }
        None => t.push((0.0, 0.0, -1.0)),
    }
    t
}

/// The decoder's conditioning inputs as `[conditioning]` names them, checked against the decoder's declared
/// inputs: the text input is [B, D] with D fixed, the anatomy input [B, 1, S, S].
#[allow(clippy::type_complexity)]
fn conditioning_inputs(
    what: &str,
    m: &super::manifest::Manifest,
    dec: &super::manifest::Graph,
    s: i64,
) -> Result<(Option<(String, usize)>, Option<String>)> {
    let Some(c) = &m.conditioning else { return Ok((None, None)) };
    let mut text = None;
    if let Some(name) = &c.text_input {
        let t = contract::declared(what, &dec.inputs, name)?;
        match t.shape.as_slice() {
            [_, d] if *d > 0 && t.dtype == super::manifest::ElementType::F32 => {
                text = Some((name.clone(), *d as usize))
            }
            other => {
                return Err(Error::ModelContract(format!(
                    "{what}: text input {name:?} is {} {other:?}; [conditioning] needs f32 [B, D] with D fixed",
                    t.dtype.name()
                )))
            }
        }
    }
    if let Some(name) = &c.anatomy_input {
        let a = contract::declared(what, &dec.inputs, name)?;
        if a.shape.len() != 4 || a.shape[1..] != [1, s, s] || a.dtype != super::manifest::ElementType::F32 {
            return Err(Error::ModelContract(format!(
                "{what}: anatomy input {name:?} is {} {:?}; [conditioning] needs f32 [B, 1, {s}, {s}]",
                a.dtype.name(),
                a.shape
            )));
        }
    }
    Ok((text, c.anatomy_input.clone()))
}

/// Which graph of the package ran on which provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphProvider {
    pub graph: &'static str,
    pub provider: Provider,
}

/// The image encoder of each worker: ONNX Runtime sessions, or one OpenVINO model with a request per worker.
enum Encoders {
    Ort(Vec<Mutex<Session>>),
    OpenVino(OvEncoder),
}

impl Encoders {
    fn workers(&self) -> usize {
        match self {
            Encoders::Ort(s) => s.len(),
            Encoders::OpenVino(e) => e.workers(),
        }
    }
}

pub struct Sam2d {
    pub name: String,
    /// One encoder and one decoder session per worker, so independent slices can run concurrently.
    encoders: Encoders,
    decoders: Vec<Mutex<Session>>,
    /// A decoder with every thread, for work that runs alone (interactive refinement), when the workers'
    /// decoders have fewer.
    decoder_wide: Option<Mutex<Session>>,
    /// Model input side (256 for LiteMedSAM).
    pub input_size: usize,
    pub embedding_size: usize,
    pub embedding_dim: usize,
    pub box_shift: i64,
    pub mask_threshold: f32,
    layout: EmbeddingLayout,
    /// The provider of each graph (encoder first).
    pub providers: Vec<GraphProvider>,
    /// The element type the encoder computes in: "f32", or what OpenVINO reports it compiled ("bf16" in
    /// fast mode on a CPU with bf16).
    pub encoder_precision: String,
    pub fallback_reasons: Vec<String>,
    /// The decoder's conditioning inputs (`[conditioning]`): the text input's name and width, the
    /// anatomy input's name, and the text encoder package the embeddings must come from.
    text_input: Option<(String, usize)>,
    anatomy_input: Option<String>,
    pub text_encoder: Option<String>,
}

/// ONNX Runtime encoder sessions, checked against the manifest's encoder contract, with the provider that runs
/// them and why others did not.
fn ort_encoders(what: &str, spec: &Graph, built: Vec<BuiltSession>) -> Result<(Encoders, Provider, Vec<String>)> {
    let (ins, outs) = session_io(&built[0].session);
    contract::check(what, spec, (&ins, &outs), (&ENCODER_IN, &ENCODER_OUT))?;
    let (provider, reasons) = (built[0].provider, built[0].fallback_reasons.clone());
    Ok((Encoders::Ort(built.into_iter().map(|b| Mutex::new(b.session)).collect()), provider, reasons))
}

/// The encoder for a provider list with `openvino` at `at`: an ONNX Runtime GPU provider listed before it
/// wins when it registers; then OpenVINO on the package's standard-op graph; then the providers after it (the
/// CPU when none), unless `strict`. Returns the encoders, the provider that runs them and why others did not.
fn openvino_or_fallback(
    rt: &Runtime,
    package: &Package,
    cfg: &SessionConfig,
    at: usize,
    job: &SessionJob<'_>,
    (what, spec): (&str, &Graph),
    image_shape: [usize; 4],
) -> Result<(Encoders, Provider, Vec<String>)> {
    let workers = cfg.worker_count();
    let ort = |providers: &[Provider], strict: bool| -> Result<(Encoders, Provider, Vec<String>)> {
        let c = SessionConfig { providers: providers.to_vec(), strict, ..cfg.clone() };
        ort_encoders(what, spec, build_sessions(rt, &c, &vec![job.clone(); workers])?)
    };
    let mut reasons = Vec::new();
    let before = &cfg.providers[..at];
    if !before.is_empty() {
        match ort(before, true) {
            Ok(done) => return Ok(done),
            Err(e) => reasons.push(e.to_string()),
        }
    }
    let graph = if package.manifest.graphs.contains_key("encoder_export") { "encoder_export" } else { "encoder" };
    let bytes = package.verified_bytes(graph)?;
    let threads = cfg.total_threads();
    match OvEncoder::load(cfg.openvino_library.as_deref(), &bytes, image_shape, workers, threads, cfg.precision) {
        Ok(e) => {
            log::info!("encoder on OpenVINO ({graph}, {} inference precision, {workers} streams)", e.precision);
            return Ok((Encoders::OpenVino(e), Provider::OpenVino, reasons));
        }
        Err(why) => {
            log::warn!("encoder: execution provider not used: {why}");
            reasons.push(why);
        }
    }
    let after = &cfg.providers[at + 1..];
    if cfg.strict && !after.iter().any(|p| p.is_ort()) {
        return Err(Error::ProviderUnavailable(format!(
            "encoder: none of the requested providers registered: {}",
            reasons.join("; ")
        )));
    }
    let (encoders, provider, more) = ort(if after.is_empty() { &[Provider::Cpu] } else { after }, cfg.strict)?;
    reasons.extend(more);
    Ok((encoders, provider, reasons))
}

impl Sam2d {
    pub fn load(rt: &Runtime, package: &Package, cfg: &SessionConfig) -> Result<Sam2d> {
        let m = &package.manifest;
        if m.kind != ModelKind::Sam2d {
            return Err(Error::ModelContract(format!("package {} is of kind \"{}\", not \"sam2d\"", m.name, m.kind)));
        }
        let pre = m.preprocess()?;
        let what = |g: &str| format!("{} {g}", m.name);
        if pre.channels != CHANNELS {
            return Err(Error::ModelContract(format!(
                "{}: channels = {}, but the sam2d frame repeats the grey slice into {CHANNELS} channels",
                m.name, pre.channels
            )));
        }
        if !pre.mask_threshold.is_finite() {
            return Err(Error::ModelContract(format!(
                "{}: mask_threshold {} is not finite",
                m.name, pre.mask_threshold
            )));
        }
        if pre.box_shift < 0 || pre.input_size == 0 || pre.embedding_size == 0 {
            return Err(Error::ModelContract(format!(
                "{}: input_size {}, embedding_size {} and box_shift {} must be positive",
                m.name, pre.input_size, pre.embedding_size, pre.box_shift
            )));
        }
        let enc_spec = package.graph("encoder")?;
        let dec_spec = package.graph("decoder")?;
        // The manifest's shapes must agree with [preprocess] before the graphs are compared with them.
        let (s, e) = (pre.input_size as i64, pre.embedding_size as i64);
        let image = contract::declared(&what("encoder"), &enc_spec.inputs, ENCODER_IN[0])?;
        if image.shape != [1, CHANNELS as i64, s, s] {
            return Err(Error::ModelContract(format!(
                "{}: input {:?} has shape {:?}; [preprocess] says [1, {CHANNELS}, {s}, {s}]",
                what("encoder"),
                image.name,
                image.shape
            )));
        }
        let emb = contract::declared(&what("encoder"), &enc_spec.outputs, ENCODER_OUT[0])?;
        let embedding_dim = match emb.shape.as_slice() {
            [1, c, h, w] if *c > 0 && *h == e && *w == e => *c as usize,
            other => {
                return Err(Error::ModelContract(format!(
                    "{}: output {:?} has shape {other:?}, not [1, C, {e}, {e}] as [preprocess] says",
                    what("encoder"),
                    emb.name
                )))
            }
        };
        let logits = contract::declared(&what("decoder"), &dec_spec.outputs, DECODER_OUT[0])?;
        if logits.shape.len() != 4 || logits.shape[2..] != [s, s] {
            return Err(Error::ModelContract(format!(
                "{}: output {:?} has shape {:?}, not [B, 1, {s}, {s}]",
                what("decoder"),
                logits.name,
                logits.shape
            )));
        }
        let (text_input, anatomy_input) = conditioning_inputs(&what("decoder"), m, dec_spec, s)?;
        let mut needed: Vec<&str> = DECODER_IN.to_vec();
        needed.extend(text_input.iter().map(|(n, _)| n.as_str()).chain(anatomy_input.as_deref()));
        // The engine feeds exactly these; an input it does not know would fail at the first decode.
        if let Some(extra) = dec_spec.inputs.iter().find(|i| !needed.contains(&i.name.as_str())) {
            return Err(Error::ModelContract(format!(
                "{}: input {:?} is not one the engine feeds (the sam2d inputs {DECODER_IN:?}, and the [conditioning] \
                 text_input and anatomy_input)",
                what("decoder"),
                extra.name
            )));
        }
        let (enc_bytes, dec_bytes) = if cfg.total_threads() > 1 {
            // Reading and hashing the two graphs at once: a tenth of the cold start.
            std::thread::scope(|s| {
                let enc = s.spawn(|| package.verified_bytes("encoder"));
                let dec = package.verified_bytes("decoder");
                (enc.join().unwrap_or_else(|_| Err(Error::Inference("the hashing thread panicked".into()))), dec)
            })
        } else {
            (package.verified_bytes("encoder"), package.verified_bytes("decoder"))
        };
        let (enc_bytes, dec_bytes) = (enc_bytes?, dec_bytes?);
        // Each worker's encoder and decoder, then (with two workers or more) the refinement decoder over all
        // threads, which spins because it never runs next to another session.
        let workers = cfg.worker_count();
        let (threads, all) = (cfg.session_threads(), cfg.total_threads());
        let enc_job = SessionJob { bytes: &enc_bytes, what: "encoder", threads, spin: false };
        let dec_job = SessionJob { bytes: &dec_bytes, what: "decoder", threads, spin: false };
        let wide_job = SessionJob { bytes: &dec_bytes, what: "decoder", threads: all, spin: true };
        let mut jobs: Vec<SessionJob<'_>> = Vec::new();
        let openvino_at = cfg.providers.iter().position(|&p| p == Provider::OpenVino);
        if openvino_at.is_none() {
            jobs.extend((0..workers).map(|_| enc_job.clone()));
        }
        jobs.extend((0..workers).map(|_| dec_job.clone()));
        if workers > 1 {
            jobs.push(wide_job);
        }
        let mut built = build_sessions(rt, cfg, &jobs)?.into_iter();
        let (encoders, enc_provider, mut reasons) = match openvino_at {
            None => ort_encoders(&what("encoder"), enc_spec, built.by_ref().take(workers).collect())?,
            Some(at) => {
                let image_shape = [1, CHANNELS, pre.input_size, pre.input_size];
                openvino_or_fallback(rt, package, cfg, at, &enc_job, (&what("encoder"), enc_spec), image_shape)?
            }
        };
        let decs: Vec<BuiltSession> = built.by_ref().take(workers).collect();
        let decoder_wide = built.next().map(|b| Mutex::new(b.session));
        let (ins, outs) = session_io(&decs[0].session);
        contract::check(&what("decoder"), dec_spec, (&ins, &outs), (&needed, &DECODER_OUT))?;
        let dec_provider = decs[0].provider;
        reasons.extend(decs[0].fallback_reasons.iter().cloned());
        let decoders: Vec<_> = decs.into_iter().map(|b| Mutex::new(b.session)).collect();
        let side = pre.embedding_size;
        let encoder_precision = match &encoders {
            Encoders::Ort(_) => "f32".to_owned(),
            Encoders::OpenVino(e) => e.precision.clone(),
        };
        Ok(Sam2d {
            name: m.name.clone(),
            encoders,
            decoders,
            decoder_wide,
            input_size: pre.input_size,
            embedding_size: side,
            embedding_dim,
            box_shift: pre.box_shift,
            mask_threshold: pre.mask_threshold,
            layout: EmbeddingLayout { tensors: vec![(ENCODER_OUT[0].to_owned(), vec![embedding_dim, side, side])] },
            providers: vec![
                GraphProvider { graph: "encoder", provider: enc_provider },
                GraphProvider { graph: "decoder", provider: dec_provider },
            ],
            encoder_precision,
            fallback_reasons: reasons,
            text_input,
            anatomy_input,
            text_encoder: m.conditioning.as_ref().and_then(|c| c.text_encoder.clone()),
        })
    }

    pub fn embedding_len(&self) -> usize {
        self.embedding_dim * self.embedding_size * self.embedding_size
    }

    /// The provider of the encoder, where nearly all the time goes.
    pub fn provider(&self) -> Provider {
        self.providers[0].provider
    }

    fn encode_raw(&self, worker: Worker, image: &[f32], out: &mut [f32]) -> Result<()> {
        let s = self.input_size;
        if image.len() != CHANNELS * s * s || out.len() != self.embedding_len() {
            return Err(Error::ShapeMismatch(format!(
                "encoder wants {} input and {} output values, got {} and {}",
                CHANNELS * s * s,
                self.embedding_len(),
                image.len(),
                out.len()
            )));
        }
        let i = match worker {
            Worker::Index(n) => n,
            Worker::Wide => 0,
        };
        let sessions = match &self.encoders {
            Encoders::Ort(sessions) => sessions,
            Encoders::OpenVino(e) => return e.encode(i, image, out),
        };
        let input = TensorRef::from_array_view(([1usize, CHANNELS, s, s], image))?;
        let mut enc = sessions[i % sessions.len()].lock();
        let outputs = enc.run(ort::inputs![ENCODER_IN[0] => input])?;
        let (_, emb) = outputs[ENCODER_OUT[0]].try_extract_tensor::<f32>()?;
        if emb.len() != out.len() {
            return Err(Error::ModelContract(format!("encoder produced {} values, expected {}", emb.len(), out.len())));
        }
        out.copy_from_slice(emb);
        Ok(())
    }

    fn decode_raw(&self, worker: Worker, embedding: &[f32], prompts: &[Prompt2d]) -> Result<Vec<Decoded>> {
        let (e, c, s) = (self.embedding_size, self.embedding_dim, self.input_size);
        if embedding.len() != self.embedding_len() {
            return Err(Error::ShapeMismatch(format!(
                "embedding has {} values, expected {}",
                embedding.len(),
                self.embedding_len()
            )));
        }
        // Padding tokens change the logits, so only prompts with the same token count share a run.
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let tokens: Vec<_> = prompts.iter().map(tokens).collect();
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
                (Some(wide), Worker::Wide) => wide.lock(),
                (_, Worker::Index(i)) => self.decoders[i % self.decoders.len()].lock(),
                (None, Worker::Wide) => self.decoders[0].lock(),
            };
            // Conditioning rows: zeros for a prompt whose object has no text (or no region).
            let text = self.text_input.as_ref().map(|(_, dim)| {
                let mut t = vec![0f32; b * dim];
                for (slot, &i) in members.iter().enumerate() {
                    if let Some(e) = prompts[i].text.as_deref().filter(|e| e.len() == *dim) {
                        t[slot * dim..(slot + 1) * dim].copy_from_slice(e);
                    }
                }
                t
            });
            let anatomy = self.anatomy_input.as_ref().map(|_| {
                let mut a = vec![0f32; b * s * s];
                for (slot, &i) in members.iter().enumerate() {
                    if let Some(m) = prompts[i].anatomy.as_deref().filter(|m| m.len() == s * s) {
                        a[slot * s * s..(slot + 1) * s * s].copy_from_slice(m);
                    }
                }
                a
            });
            let mut inputs = ort::inputs![
                DECODER_IN[0] => emb.view(),
                DECODER_IN[1] => TensorRef::from_array_view(([b, n, 2], coords.as_slice()))?,
                DECODER_IN[2] => TensorRef::from_array_view(([b, n], labels.as_slice()))?,
                DECODER_IN[3] => TensorRef::from_array_view(([b, 1, s, s], masks.as_slice()))?,
                DECODER_IN[4] => TensorRef::from_array_view(([b], has_mask.as_slice()))?,
            ];
            if let (Some((name, dim)), Some(t)) = (&self.text_input, &text) {
                inputs.push((Cow::from(name.as_str()), TensorRef::from_array_view(([b, *dim], t.as_slice()))?.into()));
            }
            if let (Some(name), Some(a)) = (&self.anatomy_input, &anatomy) {
                inputs
                    .push((Cow::from(name.as_str()), TensorRef::from_array_view(([b, 1, s, s], a.as_slice()))?.into()));
            }
            let outputs = dec.run(inputs)?;
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

impl SliceModel for Sam2d {
    fn input_size(&self) -> usize {
        self.input_size
    }
    fn channels(&self) -> usize {
        CHANNELS
    }
    fn box_shift(&self) -> i64 {
        self.box_shift
    }
    fn mask_threshold(&self) -> f32 {
        self.mask_threshold
    }
    fn embedding_layout(&self) -> &EmbeddingLayout {
        &self.layout
    }
    fn workers(&self) -> usize {
        self.encoders.workers()
    }
    fn conditioned(&self) -> Conditioned {
        Conditioned { text_dim: self.text_input.as_ref().map(|(_, d)| *d), anatomy: self.anatomy_input.is_some() }
    }
    fn encode(&self, worker: Worker, image: &[f32], out: &mut Embedding) -> Result<()> {
        match out.tensors.as_mut_slice() {
            [emb] => self.encode_raw(worker, image, emb),
            other => Err(Error::ShapeMismatch(format!("a sam2d embedding has 1 tensor, got {}", other.len()))),
        }
    }
    fn decode(&self, worker: Worker, embedding: &Embedding, prompts: &[Prompt2d]) -> Result<Vec<Decoded>> {
        match embedding.tensors.as_slice() {
            [emb] => self.decode_raw(worker, emb, prompts),
            other => Err(Error::ShapeMismatch(format!("a sam2d embedding has 1 tensor, got {}", other.len()))),
        }
    }
}
