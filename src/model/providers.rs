//! Execution providers: requested in order, registered explicitly, the winner reported.

use std::fmt;

use ort::ep::{self, ExecutionProvider};
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights, SessionBuilder};
use ort::session::Session;

use crate::error::{Error, Result};
use crate::runtime::Runtime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Cpu,
    Cuda,
    TensorRt,
    /// OpenVINO's CPU plugin for the image encoder (not an ONNX Runtime provider: the other graphs stay on
    /// ONNX Runtime's CPU provider).
    OpenVino,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::TensorRt => "tensorrt",
            Provider::OpenVino => "openvino",
        }
    }
    /// Whether this is one of ONNX Runtime's execution providers.
    pub fn is_ort(self) -> bool {
        self != Provider::OpenVino
    }
    pub fn parse(s: &str) -> Result<Provider> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Provider::Cpu),
            "cuda" => Ok(Provider::Cuda),
            "tensorrt" | "trt" => Ok(Provider::TensorRt),
            "openvino" | "ov" => Ok(Provider::OpenVino),
            other => Err(Error::InvalidArgument(format!(
                "unknown execution provider {other:?} (expected cpu, cuda, tensorrt or openvino)"
            ))),
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How exactly the encoder computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// fp32 everywhere: the masks of the reference.
    #[default]
    Exact,
    /// Lower precision where the provider offers it (OpenVINO: bf16 on CPUs with it), opt-in and measured
    /// against exact mode by the accuracy gate (#18, `cargo bench --bench precision`), which bf16 does not
    /// pass on every target; providers without a faster precision run exact.
    Fast,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Exact => "exact",
            Precision::Fast => "fast",
        }
    }
    pub fn parse(s: &str) -> Result<Precision> {
        match s.trim().to_ascii_lowercase().as_str() {
            "exact" => Ok(Precision::Exact),
            "fast" => Ok(Precision::Fast),
            other => Err(Error::InvalidArgument(format!("unknown precision {other:?} (expected exact or fast)"))),
        }
    }
}

/// How sessions are built.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Providers in order of preference; CPU is always the last resort unless `strict` is set.
    pub providers: Vec<Provider>,
    /// Threads for the whole engine (0 = all cores). With two or more, the slices above and below the middle
    /// slice are processed concurrently by two workers, each with its own single-threaded sessions; on two
    /// cores that beats one two-threaded session.
    pub threads: usize,
    /// Fail instead of falling back to CPU when no requested GPU provider registers.
    pub strict: bool,
    pub precision: Precision,
    /// OpenVINO's C library for the `openvino` provider (else `VXP_OPENVINO_LIB`, else next to the library).
    pub openvino_library: Option<std::path::PathBuf>,
}

impl SessionConfig {
    pub fn total_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// Concurrent workers: 2 when at least two threads are available, else 1.
    pub fn worker_count(&self) -> usize {
        if self.total_threads() >= 2 {
            2
        } else {
            1
        }
    }

    /// Intra-op threads of each session.
    pub fn session_threads(&self) -> usize {
        (self.total_threads() / self.worker_count()).max(1)
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            providers: vec![Provider::Cpu],
            threads: 0,
            strict: false,
            precision: Precision::Exact,
            openvino_library: None,
        }
    }
}

/// A built session and the provider that really runs it, with the reasons others were not used.
pub struct BuiltSession {
    pub session: Session,
    pub provider: Provider,
    pub fallback_reasons: Vec<String>,
}

/// TensorRT's options. Until the ABI has options of its own for them, two environment variables that
/// `scripts/device-check` sets: `VXP_TRT_CACHE_DIR` keeps built engines and timings on disk there (the
/// first session builds for minutes, later ones load), `VXP_TRT_FP16=1` lets TensorRT use fp16 (opt-in:
/// its masks must pass the accuracy gate of #18 first).
fn tensorrt() -> ep::TensorRT {
    let mut trt = ep::TensorRT::default();
    if let Some(dir) = std::env::var_os("VXP_TRT_CACHE_DIR") {
        let dir = dir.to_string_lossy().into_owned();
        trt = trt
            .with_engine_cache(true)
            .with_engine_cache_path(&dir)
            .with_timing_cache(true)
            .with_timing_cache_path(dir);
    }
    if std::env::var_os("VXP_TRT_FP16").is_some_and(|v| v == "1") {
        trt = trt.with_fp16(true);
    }
    trt
}

/// Whether the loaded ONNX Runtime has provider `p`: `Err` says why not. Having it does not promise that it
/// registers (CUDA also needs the GPU's libraries and a device); sessions report that when they are built.
pub fn availability(p: Provider) -> std::result::Result<(), String> {
    let available = match p {
        Provider::Cpu => return Ok(()),
        Provider::Cuda => ep::CUDA::is_available(),
        Provider::TensorRt => ep::TensorRT::is_available(),
        Provider::OpenVino => return crate::runtime::openvino(None).map(|_| ()),
    };
    match available {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("this ONNX Runtime build has no {p} provider")),
        Err(e) => Err(e.to_string()),
    }
}

/// Every provider this build knows, in the order `--provider` lists them.
pub const ALL: [Provider; 4] = [Provider::Cpu, Provider::Cuda, Provider::TensorRt, Provider::OpenVino];

/// On failure the builder comes back (boxed, it is large) with the reason.
fn try_register(
    builder: SessionBuilder,
    p: Provider,
) -> std::result::Result<SessionBuilder, Box<(SessionBuilder, String)>> {
    let dispatch = match p {
        Provider::Cpu | Provider::OpenVino => return Ok(builder),
        Provider::Cuda => ep::CUDA::default().build().error_on_failure(),
        Provider::TensorRt => tensorrt().build().error_on_failure(),
    };
    if let Err(why) = availability(p) {
        return Err(Box::new((builder, format!("{p}: {why}"))));
    }
    builder.with_execution_providers([dispatch]).map_err(|e| {
        let msg = format!("{p}: {e}");
        Box::new((e.recover(), msg))
    })
}

/// One session for `build_sessions`: the graph's verified bytes, what it is (for messages), its intra-op
/// threads and whether they spin.
#[derive(Clone)]
pub struct SessionJob<'a> {
    pub bytes: &'a [u8],
    pub what: &'a str,
    pub threads: usize,
    pub spin: bool,
}

/// Builds every job's session, in order, on up to `cfg.total_threads()` threads at once. Building is mostly
/// ONNX Runtime's single-threaded graph optimisation, and an engine builds five sessions (two workers'
/// encoders and decoders, the refinement decoder), so this is most of the engine's cold start (#18).
pub fn build_sessions(rt: &Runtime, cfg: &SessionConfig, jobs: &[SessionJob<'_>]) -> Result<Vec<BuiltSession>> {
    let width = cfg.total_threads().clamp(1, jobs.len().max(1));
    // One container for the weights the CPU kernels repack at load: the second session of a graph takes
    // the first one's instead of packing (and holding) its own.
    let packed = PrepackedWeights::new();
    let build = |j: &SessionJob<'_>| build_with(rt, j.bytes, cfg, j.what, j.threads, j.spin, Some(&packed));
    if width == 1 {
        return jobs.iter().map(build).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: Vec<parking_lot::Mutex<Option<Result<BuiltSession>>>> =
        jobs.iter().map(|_| parking_lot::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..width {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(j) = jobs.get(i) else { break };
                *done[i].lock() = Some(build(j));
            });
        }
    });
    done.into_iter().map(|d| d.into_inner().expect("every job ran")).collect()
}

/// Builds one session from verified model bytes.
pub fn build_session(rt: &Runtime, bytes: &[u8], cfg: &SessionConfig, what: &str) -> Result<BuiltSession> {
    build_session_with_threads(rt, bytes, cfg, what, cfg.session_threads(), false)
}

/// `build_session` with an explicit intra-op thread count, and spinning threads for a session that never
/// runs next to another one.
pub fn build_session_with_threads(
    rt: &Runtime,
    bytes: &[u8],
    cfg: &SessionConfig,
    what: &str,
    threads: usize,
    spin: bool,
) -> Result<BuiltSession> {
    build_with(rt, bytes, cfg, what, threads, spin, None)
}

fn build_with(
    rt: &Runtime,
    bytes: &[u8],
    cfg: &SessionConfig,
    what: &str,
    threads: usize,
    spin: bool,
    packed: Option<&PrepackedWeights>,
) -> Result<BuiltSession> {
    let ort_err = |e: ort::Error<SessionBuilder>| Error::Inference(format!("{what}: {e}"));
    let mut builder = Session::builder(&rt.env)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(ort_err)?
        // Encoder and decoder sessions alternate; spinning threads of one starve the other (METHODS §0.8).
        // Only a session that runs alone (the all-threads decoder of refinement) spins.
        .with_intra_op_spinning(spin && threads > 1)
        .map_err(ort_err)?;
    builder = builder.with_intra_threads(threads).map_err(ort_err)?;
    if let Some(p) = packed {
        builder = builder.with_prepacked_weights(p).map_err(ort_err)?;
    }
    // The memory pattern plans one block for a run's intermediates, which the arena then holds next to the
    // blocks of the first (unplanned) run: 280 MB more per encoder session for no measured gain.
    builder = builder.with_memory_pattern(false).map_err(ort_err)?;
    // Diagnostics: ONNX Runtime's per-node profile, one JSON file per session, under this prefix.
    if let Some(prefix) = std::env::var_os("VXP_ORT_PROFILE") {
        let mut p = prefix;
        p.push(format!("-{what}-{threads}t"));
        builder = builder.with_profiling(p).map_err(ort_err)?;
    }
    let mut reasons = Vec::new();
    let mut chosen = None;
    // OpenVINO runs only encoders (`model::openvino`); asked for alone, the other graphs run on the CPU.
    let ort_providers: Vec<Provider> = cfg.providers.iter().copied().filter(|p| p.is_ort()).collect();
    if ort_providers.is_empty() {
        chosen = Some(Provider::Cpu);
    }
    for &p in &ort_providers {
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
    // The bytes passed their sha256 check, so a graph ONNX Runtime cannot load is a broken package, not a
    // failed inference.
    let session = builder
        .commit_from_memory(bytes)
        .map_err(|e| Error::ModelContract(format!("{what}: ONNX Runtime cannot load the graph: {e}")))?;
    Ok(BuiltSession { session, provider, fallback_reasons: reasons })
}
