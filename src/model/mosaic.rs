//! `kind = "mosaic"`: a prompt-free 2D model that segments a canvas of tiled slices (SFR, METHODS §4.3: SAM
//! with its LoRA merged into the encoder and a 2-token decoder, exported as one graph).
//!
//! Contract: graph `model`, input `image` [1, C, S, S] f32, output `logits` [1, K, O, O] f32, with K = 2
//! (background, foreground). What the canvas holds and how the logits become probabilities is the
//! pipeline's (`pipeline::mosaic::run`), so a fine-tuned SFR package runs unchanged.

use ort::session::Session;
use ort::value::TensorRef;
use parking_lot::Mutex;

use super::contract::{self, session_io};
use super::manifest::{ModelKind, Normalize, Package};
use super::providers::{build_sessions, Provider, SessionConfig, SessionJob};
use super::traits::{CanvasModel, Worker};
use crate::error::{Error, Result};
use crate::runtime::Runtime;

const MODEL_IN: [&str; 1] = ["image"];
const MODEL_OUT: [&str; 1] = ["logits"];

pub struct Mosaic {
    pub name: String,
    /// One session per worker, so two canvases can run at once.
    sessions: Vec<Mutex<Session>>,
    pub input_size: usize,
    pub output_size: usize,
    pub channels: usize,
    pub foreground: usize,
    pub normalize: Normalize,
    pub provider: Provider,
    pub fallback_reasons: Vec<String>,
}

impl Mosaic {
    pub fn load(rt: &Runtime, package: &Package, cfg: &SessionConfig) -> Result<Mosaic> {
        let m = &package.manifest;
        if m.kind != ModelKind::Mosaic {
            return Err(Error::ModelContract(format!("package {} is of kind \"{}\", not \"mosaic\"", m.name, m.kind)));
        }
        let sec = m.mosaic()?;
        let what = format!("{} model", m.name);
        if sec.classes != 2 || sec.foreground >= sec.classes {
            return Err(Error::ModelContract(format!(
                "{}: classes = {}, foreground = {}; a mosaic model gives 2 classes (background, foreground)",
                m.name, sec.classes, sec.foreground
            )));
        }
        if sec.input_size == 0 || sec.output_size == 0 || sec.channels == 0 || sec.output_size > sec.input_size {
            return Err(Error::ModelContract(format!(
                "{}: input_size {}, output_size {} and channels {} must be positive, the output no larger than the \
                 input",
                m.name, sec.input_size, sec.output_size, sec.channels
            )));
        }
        let spec = package.graph("model")?;
        let (s, o, c, k) = (sec.input_size as i64, sec.output_size as i64, sec.channels as i64, sec.classes as i64);
        for (dir, specs, name, want) in
            [("input", &spec.inputs, MODEL_IN[0], [1, c, s, s]), ("output", &spec.outputs, MODEL_OUT[0], [1, k, o, o])]
        {
            let t = contract::declared(&what, specs, name)?;
            if t.shape != want || t.dtype != super::manifest::ElementType::F32 {
                return Err(Error::ModelContract(format!(
                    "{what}: {dir} {name:?} is {} {:?}; [mosaic] says f32 {want:?}",
                    t.dtype.name(),
                    t.shape
                )));
            }
        }
        let bytes = package.verified_bytes("model")?;
        let workers = cfg.worker_count();
        let jobs: Vec<SessionJob<'_>> = (0..workers)
            .map(|_| SessionJob { bytes: &bytes, what: "model", threads: cfg.session_threads(), spin: false })
            .collect();
        let built = build_sessions(rt, cfg, &jobs)?;
        let (ins, outs) = session_io(&built[0].session);
        contract::check(&what, spec, (&ins, &outs), (&MODEL_IN, &MODEL_OUT))?;
        let (provider, fallback_reasons) = (built[0].provider, built[0].fallback_reasons.clone());
        Ok(Mosaic {
            name: m.name.clone(),
            sessions: built.into_iter().map(|b| Mutex::new(b.session)).collect(),
            input_size: sec.input_size,
            output_size: sec.output_size,
            channels: sec.channels,
            foreground: sec.foreground,
            normalize: sec.normalize,
            provider,
            fallback_reasons,
        })
    }
}

impl CanvasModel for Mosaic {
    fn input_size(&self) -> usize {
        self.input_size
    }
    fn output_size(&self) -> usize {
        self.output_size
    }
    fn channels(&self) -> usize {
        self.channels
    }
    fn foreground(&self) -> usize {
        self.foreground
    }
    fn workers(&self) -> usize {
        self.sessions.len()
    }

    fn segment(&self, worker: Worker, image: &[f32], logits: &mut [f32]) -> Result<()> {
        let (c, s, o) = (self.channels, self.input_size, self.output_size);
        if image.len() != c * s * s || logits.len() != 2 * o * o {
            return Err(Error::ShapeMismatch(format!(
                "the mosaic model wants {} input and {} output values, got {} and {}",
                c * s * s,
                2 * o * o,
                image.len(),
                logits.len()
            )));
        }
        let input = TensorRef::from_array_view(([1usize, c, s, s], image))?;
        let i = match worker {
            Worker::Index(n) => n % self.sessions.len(),
            Worker::Wide => 0,
        };
        let mut session = self.sessions[i].lock();
        let outputs = session.run(ort::inputs![MODEL_IN[0] => input])?;
        let (_, out) = outputs[MODEL_OUT[0]].try_extract_tensor::<f32>()?;
        if out.len() != logits.len() {
            return Err(Error::ModelContract(format!(
                "the mosaic model produced {} values, expected {}",
                out.len(),
                logits.len()
            )));
        }
        logits.copy_from_slice(out);
        Ok(())
    }
}
