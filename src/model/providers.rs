//! Execution providers: requested in order, registered explicitly, the winner reported.

use std::fmt;

use ort::ep::{self, ExecutionProvider};
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;

use crate::error::{Error, Result};
use crate::runtime::Runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
    TensorRt,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
        }
    }
    pub fn parse(s: &str) -> Result<Provider> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            "tensorrt" | "trt" => Ok(Provider::TensorRt),
            other => Err(Error::InvalidArgument(format!(
                "unknown execution provider {other:?} (expected cpu, cuda or tensorrt)"
            ))),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How sessions are built.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Providers in order of preference; CPU is always the last resort unless `strict` is set.
    pub providers: Vec<Provider>,
    /// Intra-op threads per session (0 = ONNX Runtime's default).
    pub threads: usize,
    /// Fail instead of falling back to CPU when no requested GPU provider registers.
    pub strict: bool,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig { providers: vec![Provider::Cpu], threads: 0, strict: false }
    }
}

/// A built session and the provider that really runs it, with the reasons others were not used.
pub struct BuiltSession {
    pub session: Session,
    pub provider: Provider,
    pub fallback_reasons: Vec<String>,
}

/// On failure the builder comes back (boxed, it is large) with the reason.
fn try_register(
    builder: SessionBuilder,
    p: Provider,
) -> std::result::Result<SessionBuilder, Box<(SessionBuilder, String)>> {
    let (available, dispatch) = match p {
        Provider::Cpu => return Ok(builder),
        Provider::Cuda => (ep::CUDA::is_available(), ep::CUDA::default().build().error_on_failure()),
        Provider::TensorRt => (ep::TensorRT::is_available(), ep::TensorRT::default().build().error_on_failure()),
    };
    match available {
        Ok(true) => {}
        Ok(false) => return Err(Box::new((builder, format!("{p}: this ONNX Runtime build has no {p} provider")))),
        Err(e) => return Err(Box::new((builder, format!("{p}: {e}")))),
    }
    builder.with_execution_providers([dispatch]).map_err(|e| {
        let msg = format!("{p}: {e}");
        Box::new((e.recover(), msg))
    })
}

/// Builds one session from verified model bytes.
pub fn build_session(rt: &Runtime, bytes: &[u8], cfg: &SessionConfig, what: &str) -> Result<BuiltSession> {
    let ort_err = |e: ort::Error<SessionBuilder>| Error::Inference(format!("{what}: {e}"));
    let mut builder = Session::builder(&rt.env)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(ort_err)?
        // Encoder and decoder sessions alternate; spinning threads of one starve the other (METHODS §0.8).
        .with_intra_op_spinning(false)
        .map_err(ort_err)?;
    if cfg.threads > 0 {
        builder = builder.with_intra_threads(cfg.threads).map_err(ort_err)?;
    }
    let mut reasons = Vec::new();
    let mut chosen = None;
    for &p in &cfg.providers {
        match try_register(builder, p) {
            Ok(b) => {
                builder = b;
                chosen = Some(p);
                break;
            }
            Err(failed) => {
                let (b, why) = *failed;
                log::warn!("{what}: execution provider not used: {why}");
                reasons.push(why);
                builder = b;
            }
        }
    }
    let provider = match chosen {
        Some(p) => p,
        None if cfg.strict => {
            return Err(Error::ProviderUnavailable(format!(
                "{what}: none of the requested providers registered: {}",
                reasons.join("; ")
            )))
        }
        None => {
            log::warn!("{what}: falling back to the CPU provider");
            Provider::Cpu
        }
    };
    let session = builder.commit_from_memory(bytes).map_err(|e| Error::Inference(format!("{what}: {e}")))?;
    Ok(BuiltSession { session, provider, fallback_reasons: reasons })
}
