//! `voxprompt`: the command-line host of the engine (DESIGN §6).
#![allow(clippy::needless_range_loop)]

// The crate root looks for modules beside itself (src/bin/batch.rs would be a binary of its own).
#[path = "voxprompt/batch.rs"]
mod batch;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{FromArgMatches, Parser, Subcommand};
use voxprompt::engine::{Engine, EngineOptions};
use voxprompt::io;
use voxprompt::io::segnrrd::{Code, Segment, Terminology};
use voxprompt::io::OutputFormat;
use voxprompt::model::{Provider, SessionConfig};
use voxprompt::ops::mask::dice;
use voxprompt::pipeline::policy::Policy;
use voxprompt::pipeline::postprocess::PostprocessOptions;
use voxprompt::prompt::PointIjk;
use voxprompt::session::SessionOptions;
use voxprompt::volume::intensity::IntensityMapping;
use voxprompt::volume::{BoxIjk, Geometry};
use voxprompt::{Error, Result};

#[derive(Parser)]
#[command(
    name = "voxprompt",
    version,
    about = "Prompt-driven 3D medical image segmentation (LiteMedSAM on ONNX Runtime)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Segment objects in a volume from boxes, points, seed masks or text (a prompt-free model needs none) and
    /// write a label mask on the input grid.
    Segment(Box<SegmentArgs>),
    /// Segment every case of a folder, CSV or JSON list with one engine, resumably and in shards (several
    /// processes may share a list): `<id>.nii.gz` and `<id>.json` per case, `batch-report.json`.
    Batch(Box<batch::BatchArgs>),
    /// Say what each phrase names (one JSON object per line), or list concepts for completion.
    Concept(ConceptArgs),
    /// What this installation has: library and ABI version, the ONNX Runtime found, its execution providers
    /// (and why others are not there), the model packages and whether their files are intact.
    Info(InfoArgs),
}

#[derive(clap::Args)]
struct InfoArgs {
    /// Model package folders to check (default: the spatial model and the text encoder the other
    /// subcommands would load).
    #[arg(long, value_name = "DIR")]
    model: Vec<PathBuf>,
    /// ONNX Runtime library (else VXP_ORT_LIB, else next to the executable).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text.
    #[arg(long)]
    json: bool,
}

/// Prints everything it finds, then exits with the first problem's code: a missing or broken runtime or
/// package is what a user runs `info` to learn about, so one problem never hides the rest.
fn info(a: InfoArgs) -> Result<()> {
    use voxprompt::ffi::version::{VXP_ABI_VERSION_MAJOR, VXP_ABI_VERSION_MINOR};
    use voxprompt::model::providers::{self, ALL};
    let mut first_err: Option<Error> = None;
    let library = format!("voxprompt {}", env!("CARGO_PKG_VERSION"));
    let abi = format!("{VXP_ABI_VERSION_MAJOR}.{VXP_ABI_VERSION_MINOR}");
    let runtime = match voxprompt::runtime::runtime(a.ort_lib.as_deref()) {
        Ok(rt) => {
            let provs: Vec<serde_json::Value> = ALL
                .iter()
                .map(|&p| match providers::availability(p) {
                    Ok(()) => serde_json::json!({ "name": p.name(), "available": true }),
                    Err(why) => serde_json::json!({ "name": p.name(), "available": false, "reason": why }),
                })
                .collect();
            serde_json::json!({ "version": rt.version, "path": rt.path, "providers": provs })
        }
        Err(e) => {
            let v = serde_json::json!({ "error": e.code().variant_name(), "message": e.to_string() });
            first_err.get_or_insert(e);
            v
        }
    };
    let dirs = if a.model.is_empty() {
        std::iter::once(default_model_dir()).chain(text_model_dir(&None, false)).collect()
    } else {
        a.model.clone()
    };
    let models: Vec<serde_json::Value> = dirs
        .iter()
        .map(|dir| std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()))
        .map(|dir| match voxprompt::model::Package::open(&dir) {
            Ok(pkg) => {
                let files: Vec<serde_json::Value> = pkg
                    .files()
                    .into_iter()
                    .map(|(what, file, sha)| match pkg.verified_file(file, sha) {
                        Ok(bytes) => {
                            serde_json::json!({ "what": what, "file": file, "bytes": bytes.len(), "intact": true })
                        }
                        Err(e) => {
                            let v = serde_json::json!({
                                "what": what, "file": file, "intact": false,
                                "error": e.code().variant_name(), "message": e.to_string(),
                            });
                            first_err.get_or_insert(e);
                            v
                        }
                    })
                    .collect();
                let m = &pkg.manifest;
                let tensors = |ts: &[voxprompt::model::manifest::TensorSpec]| -> Vec<serde_json::Value> {
                    ts.iter()
                        .map(|t| serde_json::json!({ "name": t.name, "dtype": t.dtype.name(), "shape": t.shape }))
                        .collect()
                };
                let graphs: serde_json::Map<String, serde_json::Value> = m
                    .graphs
                    .iter()
                    .map(|(k, g)| {
                        let v = serde_json::json!({
                            "file": g.file, "inputs": tensors(&g.inputs), "outputs": tensors(&g.outputs),
                        });
                        (k.clone(), v)
                    })
                    .collect();
                let conditioning = m.conditioning.as_ref().map(|c| {
                    serde_json::json!({
                        "text_encoder": c.text_encoder, "text_input": c.text_input, "anatomy_input": c.anatomy_input,
                    })
                });
                serde_json::json!({
                    "dir": dir, "name": m.name, "kind": m.kind.name(), "contract_version": m.contract_version,
                    "license": m.license, "files": files, "graphs": graphs, "conditioning": conditioning,
                })
            }
            Err(e) => {
                let v = serde_json::json!({ "dir": dir, "error": e.code().variant_name(), "message": e.to_string() });
                first_err.get_or_insert(e);
                v
            }
        })
        .collect();
    let report = serde_json::json!({ "library": library, "abi": abi, "onnxruntime": runtime, "models": models });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    } else {
        print!("{}", info_text(&report));
    }
    first_err.map_or(Ok(()), Err)
}

/// `info`'s report as lines a person reads.
fn info_text(r: &serde_json::Value) -> String {
    use std::fmt::Write;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    let mut out = format!("{} (C ABI {})\n", s(&r["library"]), s(&r["abi"]));
    let rt = &r["onnxruntime"];
    if rt["error"].is_string() {
        let _ = writeln!(out, "ONNX Runtime: not loaded: {}", s(&rt["message"]));
    } else {
        let _ = writeln!(out, "ONNX Runtime {}: {}", s(&rt["version"]), s(&rt["path"]));
        for p in rt["providers"].as_array().into_iter().flatten() {
            match p["available"].as_bool() {
                Some(true) => {
                    let _ = writeln!(out, "  provider {}: available", s(&p["name"]));
                }
                _ => {
                    let _ = writeln!(out, "  provider {}: not available: {}", s(&p["name"]), s(&p["reason"]));
                }
            }
        }
    }
    for m in r["models"].as_array().into_iter().flatten() {
        if m["error"].is_string() {
            let _ = writeln!(out, "model {}: {}", s(&m["dir"]), s(&m["message"]));
            continue;
        }
        let files = m["files"].as_array().map_or(&[][..], Vec::as_slice);
        let broken: Vec<String> = files.iter().filter(|f| f["intact"] != true).map(|f| s(&f["message"])).collect();
        let state = if broken.is_empty() {
            format!("{} files intact", files.len())
        } else {
            format!("{} of {} files broken: {}", broken.len(), files.len(), broken.join("; "))
        };
        let _ = writeln!(
            out,
            "model {} ({}, contract {}, {}): {}: {state}",
            s(&m["name"]),
            s(&m["kind"]),
            m["contract_version"],
            s(&m["license"]),
            s(&m["dir"])
        );
        let shapes = |ts: &serde_json::Value| -> String {
            let one = |t: &serde_json::Value| format!("{} {} {}", s(&t["name"]), s(&t["dtype"]), t["shape"]);
            ts.as_array().into_iter().flatten().map(one).collect::<Vec<_>>().join(", ")
        };
        for (name, g) in m["graphs"].as_object().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  graph {name} ({}): {} -> {}",
                s(&g["file"]),
                shapes(&g["inputs"]),
                shapes(&g["outputs"])
            );
        }
        let c = &m["conditioning"];
        if c.is_object() {
            let _ = writeln!(
                out,
                "  conditioned on: text {} (from text encoder {}), anatomy {}",
                c["text_input"], c["text_encoder"], c["anatomy_input"]
            );
        }
    }
    out
}

#[derive(clap::Args)]
struct ConceptArgs {
    /// Phrases to look up ("left kidney", "tumour of the liver", "HCC").
    phrase: Vec<String>,
    /// List the concepts whose name or a term starts with this prefix instead.
    #[arg(long, value_name = "PREFIX")]
    complete: Option<String>,
    /// At most this many concepts for --complete.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Text-encoder package for phrasings outside the vocabulary (default: the installed minilm).
    #[arg(long, value_name = "DIR")]
    text_model: Option<PathBuf>,
    /// Match phrases lexically only.
    #[arg(long)]
    no_text_model: bool,
    /// ONNX Runtime library (else VXP_ORT_LIB, else next to the executable).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
}

/// Exits with the first refusal's code after printing every phrase's answer.
fn concept(a: ConceptArgs) -> Result<()> {
    use voxprompt::concept::{self, report, Domain, Resolver};
    let resolver = match text_model_dir(&a.text_model, a.no_text_model) {
        Some(dir) if a.complete.is_none() => {
            let rt = voxprompt::runtime::runtime(a.ort_lib.as_deref())?;
            let package = voxprompt::model::Package::open(&dir)?;
            let enc = voxprompt::model::text_encoder::TextEncoder::load(rt, &package, &SessionConfig::default())?;
            concept::resolver_for(Some(&Arc::new(enc)))?
        }
        _ => Resolver::lexical(concept::builtin()?),
    };
    if let Some(p) = &a.complete {
        println!("{}", report::concepts_json(resolver.vocab.complete(p, a.limit)));
        return Ok(());
    }
    if a.phrase.is_empty() {
        return Err(Error::InvalidArgument("give a phrase, or --complete PREFIX".into()));
    }
    let mut first_err = None;
    for p in &a.phrase {
        match resolver.resolve(p, Domain::Any) {
            Ok(r) => println!("{}", report::resolution_json(&r, &resolver.vocab)),
            Err(e) => {
                println!(
                    "{{\"text\":{},\"error\":{},\"message\":{}}}",
                    report::quote(p),
                    report::quote(e.code().variant_name()),
                    report::quote(&e.to_string())
                );
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

#[derive(clap::Args, Clone)]
struct SegmentArgs {
    /// Input volume: NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), or a DICOM series (a folder, or one of
    /// its .dcm files).
    input: PathBuf,
    /// The DICOM series to read from a folder holding several (its SeriesInstanceUID).
    #[arg(long, value_name = "UID")]
    series: Option<String>,
    /// Output label mask on the input grid with its geometry, in the format its name ends in: .nii, .nii.gz,
    /// .nrrd (gzip), .seg.nrrd (a 3D Slicer segmentation: names, colours and terminology per object) or .dcm
    /// (a DICOM SEG referencing the input series' instances, with the same descriptions; DICOM input only).
    #[arg(short, long)]
    output: PathBuf,
    /// A box as inclusive voxel indices x0,y0,z0,x1,y1,z1 (x = i, the fastest axis). Repeat for several
    /// objects; they get labels 1, 2, … in order.
    #[arg(long = "box-ijk", value_name = "X0,Y0,Z0,X1,Y1,Z1")]
    box_ijk: Vec<String>,
    /// A box as two RAS corners (mm) r0,a0,s0,r1,a1,s1; converted to the enclosing voxel box.
    #[arg(long = "box-ras", value_name = "R0,A0,S0,R1,A1,S1")]
    box_ras: Vec<String>,
    /// Reference label map, for Dice (and for --box-from-reference).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Label value in --reference for each object, in object order.
    #[arg(long = "reference-label", value_name = "L")]
    reference_label: Vec<u32>,
    /// Derive one object per --reference-label from the tight 3D box of that label in --reference.
    #[arg(long)]
    box_from_reference: bool,
    /// PNG montage of the labelled slices with the mask overlaid.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Print a JSON report on stdout.
    #[arg(long)]
    json: bool,
    /// A point prompt x,y,z[,+|-[,OBJECT]] in voxel indices: positive (+, the default) or negative (-), for
    /// object OBJECT (1-based, default 1). Repeat for several points.
    #[arg(long = "point-ijk", value_name = "X,Y,Z[,+|-[,OBJECT]]")]
    point_ijk: Vec<String>,
    /// Name an object in words ("left kidney", "liver"): the n-th --text names object n, so with boxes it adds
    /// the structure's anatomical limit to box n, and beyond them it is an object of its own, found from
    /// the text alone (CT). Repeat for several objects.
    #[arg(long = "text", value_name = "PHRASE")]
    text: Vec<String>,
    /// A coarse mask on the input grid (NIfTI/NRRD): each nonzero value becomes one more object, refined by
    /// the policy (reseed keeps its reliable slices and re-propagates from them).
    #[arg(long)]
    seed_mask: Option<PathBuf>,
    /// Confidence map output (float32 in [0, 1], |2p − 1| of the fused probability): .nii, .nii.gz or .nrrd.
    #[arg(long)]
    confidence: Option<PathBuf>,
    #[command(flatten)]
    opts: CaseOptions,
}

/// The options of how a case is segmented, which `batch` applies to every case as `segment` does to its one:
/// declared once, so that neither subcommand can have one the other lacks.
#[derive(clap::Args, Clone)]
struct CaseOptions {
    /// Intensity mapping to the model's 0..255 range: ct (window 40/400), mr (0.5/99.5 percentiles), auto.
    #[arg(long, default_value = "auto")]
    modality: String,
    /// CT window as LEVEL,WIDTH (overrides --modality).
    #[arg(long, value_name = "LEVEL,WIDTH")]
    window: Option<String>,
    /// Propagation policy: reseed (reliable-slice re-seeding + confidence fusion, the default), reseed-in-box
    /// (the same, never past the boxes' slice range: for a box known to span the object) or reference (the
    /// CVPR24 LiteMedSAM pipeline, voxel for voxel).
    #[arg(long, default_value = "reseed")]
    policy: String,
    /// Propagation axis: k (slices along the third array axis, as the reference), j or i.
    #[arg(long, default_value = "k")]
    axis: String,
    /// Keep only the largest 3D connected component of each object.
    #[arg(long)]
    keep_largest: bool,
    /// Fill holes in each object (per slice, then in 3D).
    #[arg(long)]
    fill_holes: bool,
    /// Remove 3D components smaller than this many voxels.
    #[arg(long, default_value_t = 0)]
    min_size: usize,
    /// Model package folder (holding manifest.toml).
    #[arg(long)]
    model: Option<PathBuf>,
    /// ONNX Runtime library (else VXP_ORT_LIB, else next to the executable).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Execution providers in order of preference: cpu, cuda, tensorrt, openvino (the image encoder on
    /// OpenVINO's CPU plugin, from --openvino-lib).
    #[arg(long, default_value = "cpu")]
    providers: String,
    /// exact (fp32, the reference's masks) or fast (bf16 on OpenVINO where the CPU has it: about 2.4× the
    /// encoder speed, but it fails the accuracy gate of BENCHMARKS.md; experimental).
    #[arg(long, default_value = "exact")]
    precision: String,
    /// OpenVINO's C library for --providers openvino (else VXP_OPENVINO_LIB, else next to the executable).
    #[arg(long, value_name = "PATH")]
    openvino_lib: Option<PathBuf>,
    /// Threads for the whole engine (0 = all cores): two workers with half of them each, all of them for
    /// refinement.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Fail instead of running on CPU when no requested GPU provider registers.
    #[arg(long)]
    no_cpu_fallback: bool,
    /// Text-encoder package for phrasings outside the vocabulary (default: the installed minilm).
    #[arg(long, value_name = "DIR")]
    text_model: Option<PathBuf>,
    /// Match --text phrases lexically only (no text encoder is loaded).
    #[arg(long)]
    no_text_model: bool,
    /// Brain atlas for --text naming brain structures on MR: a folder holding
    /// mni/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz and covale/aseg-auto.nii.gz (as `make setup`
    /// installs them under data/; the default when found there).
    #[arg(long, value_name = "DIR")]
    brain_atlas: Option<PathBuf>,
    /// Write pseudo-labels for training: slices where an object's mask is unsure (--ignore-slices-below) are
    /// labelled 255 ("ignore") whole, and a case whose mean confidence is below --reject-case-below is
    /// rejected: nothing is written, the report says why (exit 1; batch: status "rejected").
    #[arg(long)]
    pseudo_labels: bool,
    /// With --pseudo-labels: a slice whose object mask averages |2p-1| below this is ignored (our default).
    #[arg(long, value_name = "CONFIDENCE", default_value_t = voxprompt::pipeline::pseudo::Rule::default().min_slice)]
    ignore_slices_below: f32,
    /// With --pseudo-labels: a case whose voxel-weighted mean |2p-1| is below this is rejected (our default).
    #[arg(long, value_name = "CONFIDENCE", default_value_t = voxprompt::pipeline::pseudo::Rule::default().min_case)]
    reject_case_below: f32,
    /// Embedding cache budget in memory, in MiB (LRU beyond it, into the spill file; each LiteMedSAM slice
    /// embedding is 4 MiB).
    #[arg(long, default_value_t = voxprompt::session::DEFAULT_CACHE_BUDGET >> 20)]
    cache_mb: usize,
    /// Disk budget, in MiB, of the spill file that keeps the embeddings memory evicts (an unlinked file in
    /// TMPDIR, gone when the command ends); 0 turns it off, and evicted slices are encoded again.
    #[arg(long, default_value_t = voxprompt::session::DEFAULT_SPILL_BUDGET >> 20)]
    spill_mb: usize,
    /// The most voxels a volume may have (input, reference, seed mask); default a sixteenth of physical
    /// memory. Checked from the header, before anything is read.
    #[arg(long, value_name = "N")]
    max_voxels: Option<u64>,
    /// The most MiB of voxel data a file may declare; default a quarter of physical memory.
    #[arg(long, value_name = "MIB")]
    max_volume_mb: Option<u64>,
}

/// `segment --help` lists its options in this order (they read as a user looks for them, the case's own and
/// `CaseOptions` interleaved); an option missing here is listed after them, in declaration order.
const SEGMENT_HELP_ORDER: [&str; 37] = [
    "series",
    "output",
    "box_ijk",
    "box_ras",
    "reference",
    "reference_label",
    "box_from_reference",
    "modality",
    "window",
    "png",
    "json",
    "model",
    "ort_lib",
    "providers",
    "precision",
    "openvino_lib",
    "threads",
    "no_cpu_fallback",
    "point_ijk",
    "text",
    "text_model",
    "no_text_model",
    "brain_atlas",
    "seed_mask",
    "pseudo_labels",
    "ignore_slices_below",
    "reject_case_below",
    "policy",
    "confidence",
    "axis",
    "keep_largest",
    "fill_holes",
    "min_size",
    "cache_mb",
    "spill_mb",
    "max_voxels",
    "max_volume_mb",
];

/// The command line as clap derives it from `Cli`, with each subcommand's help laid out as its users know it.
fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
        .mut_subcommand("segment", |c| in_help_order(c, &SEGMENT_HELP_ORDER))
        .mut_subcommand("batch", batch::with_shared_help)
}

/// `c` with its options listed in `order`, then those `order` lacks.
fn in_help_order(c: clap::Command, order: &[&str]) -> clap::Command {
    let rest: Vec<String> = c
        .get_arguments()
        .filter(|a| !a.is_positional())
        .map(|a| a.get_id().as_str())
        .filter(|id| !order.contains(id))
        .map(str::to_owned)
        .collect();
    let c = order.iter().enumerate().fold(c, |c, (n, id)| c.mut_arg(*id, |a| a.display_order(n)));
    rest.iter().enumerate().fold(c, |c, (n, id)| c.mut_arg(id, |a| a.display_order(order.len() + n)))
}

fn parse_list<T: std::str::FromStr>(s: &str, n: usize, what: &str) -> Result<Vec<T>> {
    let v: Vec<T> = s
        .split(',')
        .map(|p| p.trim().parse::<T>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::InvalidArgument(format!("{what} {s:?}: expected {n} comma-separated numbers")))?;
    if v.len() != n {
        return Err(Error::InvalidArgument(format!("{what} {s:?}: expected {n} numbers, got {}", v.len())));
    }
    Ok(v)
}

fn parse_point(s: &str, dims: [usize; 3]) -> Result<(u8, PointIjk)> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if !(3..=5).contains(&parts.len()) {
        return Err(Error::InvalidArgument(format!("--point-ijk {s:?}: expected x,y,z[,+|-[,OBJECT]]")));
    }
    let xyz: Vec<usize> = parse_list(&parts[..3].join(","), 3, "--point-ijk")?;
    let positive = match parts.get(3).copied() {
        None | Some("+") | Some("1") => true,
        Some("-") | Some("0") => false,
        Some(o) => return Err(Error::InvalidArgument(format!("--point-ijk {s:?}: sign {o:?} is not + or -"))),
    };
    let label = match parts.get(4) {
        None => 1,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| Error::InvalidArgument(format!("--point-ijk {s:?}: object {l:?} is not in 1..=255")))?,
    };
    if (0..3).any(|a| xyz[a] >= dims[a]) {
        return Err(Error::InvalidPrompt(format!("--point-ijk {s:?} lies outside the volume of dims {dims:?}")));
    }
    Ok((label, PointIjk { ijk: [xyz[0], xyz[1], xyz[2]], positive }))
}

fn ras_box(s: &str, g: &Geometry, dims: [usize; 3]) -> Result<BoxIjk> {
    let v: Vec<f64> = parse_list(s, 6, "--box-ras")?;
    g.ras_box_to_ijk([v[0], v[1], v[2]], [v[3], v[4], v[5]], dims)
}

fn default_model_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("VXP_MODEL_DIR") {
        return PathBuf::from(p);
    }
    find_package("litemedsam").unwrap_or_else(|| PathBuf::from("models/litemedsam"))
}

/// A package installed next to the executable (share/voxprompt/models), in the build tree, or under ./models.
fn find_package(name: &str) -> Option<PathBuf> {
    let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
    exe_dir
        .iter()
        .flat_map(|d| [d.join("../share/voxprompt/models").join(name), d.join("../../models").join(name)])
        .chain([PathBuf::from("models").join(name)])
        .find(|c| c.join("manifest.toml").exists())
}

/// Whether the spatial package in `dir` (the default one when None) takes text embeddings: the engine then
/// needs the text encoder even when no --text is given.
/// Whether the spatial model in `dir` (or the default one) is prompt-free (`mosaic`): it segments without a
/// prompt.
fn prompt_free(dir: Option<&Path>) -> bool {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(default_model_dir);
    voxprompt::model::Package::open(&dir).is_ok_and(|p| p.manifest.kind == voxprompt::model::ModelKind::Mosaic)
}

fn takes_text(dir: Option<&Path>) -> bool {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(default_model_dir);
    voxprompt::model::Package::open(&dir)
        .is_ok_and(|p| p.manifest.conditioning.is_some_and(|c| c.text_encoder.is_some()))
}

/// The brain atlas for --text: `--brain-atlas DIR`, else `VXP_BRAIN_ATLAS_DIR`, else the repository's
/// `data/` (as `make setup` fills it) next to the executable or in the working folder; none when not there.
fn brain_atlas(given: &Option<PathBuf>) -> Result<Option<voxprompt::engine::BrainAtlasFiles>> {
    use voxprompt::engine::BrainAtlasFiles;
    if let Some(d) = given.clone().or_else(|| std::env::var_os("VXP_BRAIN_ATLAS_DIR").map(PathBuf::from)) {
        return BrainAtlasFiles::under(&d).map(Some).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "--brain-atlas {}: no mni/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz and \
                 covale/aseg-auto.nii.gz under it",
                d.display()
            ))
        });
    }
    let exe_dir = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf));
    Ok(exe_dir
        .iter()
        .map(|d| d.join("../../data"))
        .chain([PathBuf::from("data")])
        .find_map(|d| BrainAtlasFiles::under(&d)))
}

/// The text encoder's package: `--text-model`, else `VXP_TEXT_MODEL_DIR`, else an installed `minilm`; none
/// with `--no-text-model`.
fn text_model_dir(given: &Option<PathBuf>, off: bool) -> Option<PathBuf> {
    if off {
        return None;
    }
    given
        .clone()
        .or_else(|| std::env::var_os("VXP_TEXT_MODEL_DIR").map(PathBuf::from))
        .or_else(|| find_package("minilm"))
}

fn choose_mapping(opts: &CaseOptions) -> Result<IntensityMapping> {
    if let Some(w) = &opts.window {
        let v: Vec<f64> = parse_list(w, 2, "--window")?;
        return Ok(IntensityMapping::Window { level: v[0], width: v[1] });
    }
    match opts.modality.to_ascii_lowercase().as_str() {
        "ct" => Ok(IntensityMapping::CT),
        "mr" | "mri" => Ok(IntensityMapping::MR),
        "auto" => Ok(IntensityMapping::Auto),
        other => Err(Error::InvalidArgument(format!("--modality {other:?}: expected ct, mr or auto"))),
    }
}

fn peak_rss_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The outputs' slots: every name is checked and every temporary file created before the input is read,
/// so a bad output fails in milliseconds, not after the inference, and nothing is left behind.
struct Outputs {
    set: io::output::OutputSet,
    mask: (io::output::Slot, OutputFormat),
    confidence: Option<(io::output::Slot, OutputFormat)>,
    png: Option<io::output::Slot>,
}

fn reserve_outputs(args: &SegmentArgs) -> Result<Outputs> {
    let mask_format = OutputFormat::of(&args.output).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "-o {}: the name must end in .nii, .nii.gz, .nrrd, .seg.nrrd or .dcm (a DICOM SEG of a DICOM series)",
            args.output.display()
        ))
    })?;
    let confidence_format = match &args.confidence {
        Some(c) => match OutputFormat::of(c) {
            Some(f @ (OutputFormat::Nifti { .. } | OutputFormat::Nrrd)) => Some(f),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "--confidence {}: the name must end in .nii, .nii.gz or .nrrd (a float map is no segmentation)",
                    c.display()
                )))
            }
        },
        None => None,
    };
    if let Some(p) = &args.png {
        if !p.to_string_lossy().to_ascii_lowercase().ends_with(".png") {
            return Err(Error::InvalidArgument(format!("--png {}: the name must end in .png", p.display())));
        }
    }
    let mut set = io::output::OutputSet::new();
    let mask = (set.reserve(&args.output)?, mask_format);
    let confidence = match (&args.confidence, confidence_format) {
        (Some(p), Some(f)) => Some((set.reserve(p)?, f)),
        _ => None,
    };
    let png = args.png.as_deref().map(|p| set.reserve(p)).transpose()?;
    Ok(Outputs { set, mask, confidence, png })
}

/// The Slicer segments of the objects, one per label. An object a text prompt named gets the concept's
/// display name, its DICOM colour and its SNOMED CT codes (a left/right pair such as "kidneys": the codes
/// without the side, the first one's colour). Otherwise it is named after its reference label
/// ("reference label 2") or, with none, "Segment_<label>" (Slicer's own placeholder, marked as generated),
/// and gets `io::LABEL_COLORS` (the montage's colour of that label) and Slicer's "Tissue" terminology. A
/// lesion ("liver tumor") gets its name but the placeholder's colour and terminology: the vocabulary has no
/// lesion codes.
fn slicer_segments(
    labels: &[u8],
    named: &[(u8, voxprompt::concept::Resolution)],
    reference_labels: &[u32],
    vocab: &voxprompt::concept::Vocabulary,
) -> Vec<Segment> {
    let terminology = |s: &voxprompt::concept::Snomed, side: bool| Terminology {
        category: Code::sct(&s.category, &s.category_meaning),
        kind: Code::sct(&s.type_code, &s.type_meaning),
        modifier: s
            .modifier
            .as_deref()
            .filter(|_| side)
            .map(|m| Code::sct(m, s.modifier_meaning.as_deref().unwrap_or(""))),
        region: s.region.as_deref().map(|r| Code::sct(r, s.region_meaning.as_deref().unwrap_or(""))),
        region_modifier: None,
    };
    labels
        .iter()
        .map(|&label| {
            let mut seg = Segment {
                label,
                name: format!("Segment_{label}"),
                name_auto_generated: true,
                color: io::label_color(label),
                color_auto_generated: true,
                terminology: Terminology::tissue(),
            };
            if let Some(&r) = reference_labels.get(label as usize - 1) {
                seg.name = format!("reference label {r}");
                seg.name_auto_generated = false;
            }
            let Some((_, res)) = named.iter().find(|(l, _)| *l == label) else {
                return seg;
            };
            seg.name = res.name(vocab);
            seg.name_auto_generated = false;
            let concepts: Vec<_> = res.concepts.iter().filter_map(|id| vocab.get(id)).collect();
            if res.lesion.is_some() || concepts.is_empty() {
                return seg;
            }
            let codes: Vec<_> = concepts.iter().filter_map(|c| c.snomed.as_ref()).collect();
            let same_kind = codes.len() == concepts.len()
                && codes.windows(2).all(|w| (&w[0].category, &w[0].type_code) == (&w[1].category, &w[1].type_code));
            if same_kind {
                seg.terminology = terminology(codes[0], concepts.len() == 1);
            }
            if let Some(c) = concepts[0].color {
                seg.color = c;
                seg.color_auto_generated = false;
            }
            seg
        })
        .collect()
}

/// One object per distinct nonzero value of a seed mask, in increasing order; more than 255 values are
/// refused while counting, before any object's mask is built.
fn seed_objects(values: &[f64], path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut distinct: Vec<f64> = Vec::new();
    for &x in values {
        if x != 0.0 {
            if let Err(at) = distinct.binary_search_by(|v| v.total_cmp(&x)) {
                if distinct.len() == 255 {
                    return Err(Error::InvalidPrompt(format!(
                        "{}: seed mask holds more than 255 distinct nonzero values; at most 255 objects fit a u8 label mask",
                        path.display()
                    )));
                }
                distinct.insert(at, x);
            }
        }
    }
    if distinct.is_empty() {
        return Err(Error::InvalidPrompt(format!("{}: seed mask is empty", path.display())));
    }
    Ok(distinct.iter().map(|&val| values.iter().map(|&x| (x == val) as u8).collect()).collect())
}

fn segment(args: SegmentArgs) -> Result<()> {
    let case = prepare(&args)?;
    let engine = Engine::new(&engine_options(&args.opts, !args.text.is_empty())?)?;
    let report = run_case(&args, case, &engine, std::io::stderr().is_terminal() && !args.json)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    }
    let p = &report["pseudo_labels"];
    if p["accepted"] == false {
        eprintln!(
            "voxprompt: {}: rejected as a pseudo-label: case confidence {:.3} < {}; nothing written",
            args.input.display(),
            p["case_confidence"].as_f64().unwrap_or(0.0),
            p["min_case"]
        );
        std::process::exit(1);
    }
    if !args.json {
        for o in report["objects"].as_array().unwrap() {
            let d = o["dice"].as_f64().map(|d| format!(", Dice {d:.4}")).unwrap_or_default();
            eprintln!("label {}: {} voxels on {} slices{d}", o["label"], o["voxels"], o["slices"]);
        }
        eprintln!(
            "{} slices encoded, {:.0} ms per slice ({}), total {:.1} s; wrote {}",
            report["slices_encoded"],
            report["ms_per_slice"].as_f64().unwrap_or(0.0),
            engine.provider(),
            report["timings_ms"]["total"].as_f64().unwrap_or(0.0) / 1e3,
            args.output.display()
        );
    }
    Ok(())
}

/// One case read and checked against its prompts: all `run_case` needs but the engine, so that a bad
/// input, reference or prompt fails before any model is loaded, and its outputs are reserved.
struct Prepared {
    t_all: Instant,
    outputs: Outputs,
    limits: io::Limits,
    loaded: io::Loaded,
    reference: Option<Vec<f64>>,
    read_time: std::time::Duration,
    boxes: Vec<BoxIjk>,
    points: Vec<(u8, PointIjk)>,
    seed_objects: Vec<Vec<u8>>,
    policy: Policy,
    axis: u8,
    mapping: IntensityMapping,
}

/// Reserves a case's outputs, reads its input, reference and seed mask, and parses and checks its prompts.
fn prepare(args: &SegmentArgs) -> Result<Prepared> {
    let t_all = Instant::now();
    let outputs = reserve_outputs(args)?;
    let mut limits = io::Limits::default();
    if let Some(v) = args.opts.max_voxels {
        limits.max_voxels = v;
    }
    if let Some(mb) = args.opts.max_volume_mb {
        limits.max_bytes = mb.saturating_mul(1 << 20);
    }
    let t = Instant::now();
    let loaded = io::read_input(&args.input, args.series.as_deref(), &limits)?;
    // A DICOM SEG references the instances it was derived from: only a DICOM series has them.
    if outputs.mask.1 == OutputFormat::DicomSeg && loaded.dicom.is_none() {
        return Err(Error::InvalidArgument(format!(
            "-o {}: a DICOM SEG needs a DICOM source series, and {} is not one; write .nii.gz, .nrrd or .seg.nrrd",
            args.output.display(),
            args.input.display()
        )));
    }
    let volume = &loaded.volume;
    let dims = volume.dims;
    let reference = match &args.reference {
        Some(r) => {
            // A reference stored in another array order of the input's grid (a DICOM series' mask saved as
            // NIfTI with its rows reversed) is moved onto the input's order exactly; another grid is refused.
            let rv = io::read_volume_with(r, &limits)?.volume;
            let rv = voxprompt::volume::regrid::onto_grid(&rv, dims, &volume.geometry).map_err(|e| match e {
                Error::ShapeMismatch(m) => {
                    Error::ShapeMismatch(format!("{}: the reference is not on the input's grid: {m}", r.display()))
                }
                other => other,
            })?;
            Some(rv.to_f64()?)
        }
        None => None,
    };
    let read_time = t.elapsed();

    let mut boxes = Vec::new();
    for b in &args.box_ijk {
        let v: Vec<usize> = parse_list(b, 6, "--box-ijk")?;
        boxes.push(BoxIjk { min: [v[0], v[1], v[2]], max: [v[3], v[4], v[5]] });
    }
    for b in &args.box_ras {
        boxes.push(ras_box(b, &volume.geometry, dims)?);
    }
    if args.box_from_reference {
        let labels = reference
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("--box-from-reference needs --reference".into()))?;
        for &l in &args.reference_label {
            boxes.push(BoxIjk::of_label(labels, dims, l as f64).map(|(b, _)| b).ok_or_else(|| {
                Error::InvalidPrompt(format!(
                    "label {l} does not occur in {}",
                    args.reference.as_ref().unwrap().display()
                ))
            })?);
        }
    }
    let mut points: Vec<(u8, PointIjk)> = Vec::new();
    for p in &args.point_ijk {
        points.push(parse_point(p, dims)?);
    }
    let seed_objects = match &args.seed_mask {
        Some(path) => {
            let m = io::read_volume_with(path, &limits)?.volume;
            if m.dims != dims {
                return Err(Error::ShapeMismatch(format!(
                    "{}: seed mask dims {:?} differ from the input's {:?}",
                    path.display(),
                    m.dims,
                    dims
                )));
            }
            seed_objects(&m.to_f64()?, path)?
        }
        None => Vec::new(),
    };
    let no_prompt =
        boxes.is_empty() && seed_objects.is_empty() && args.text.is_empty() && !points.iter().any(|(_, p)| p.positive);
    if no_prompt && prompt_free(args.opts.model.as_deref()) {
        // A prompt-free model finds its structure anywhere: one object, the whole volume.
        boxes.push(BoxIjk { min: [0; 3], max: dims.map(|d| d - 1) });
    } else if no_prompt {
        return Err(Error::InvalidPrompt(
            "no prompt: give --box-ijk, --box-ras, --box-from-reference, --seed-mask, --text or a positive --point-ijk"
                .into(),
        ));
    }
    let n_objects = (boxes.len() + seed_objects.len()).max(args.text.len()).max(1);
    if !args.reference_label.is_empty() && args.reference_label.len() != n_objects {
        return Err(Error::InvalidArgument(format!(
            "{} --reference-label values for {n_objects} objects",
            args.reference_label.len(),
        )));
    }
    if n_objects > 255 {
        return Err(Error::InvalidPrompt(format!("{n_objects} objects; at most 255 fit a u8 label mask")));
    }
    if args.opts.pseudo_labels && n_objects > 254 {
        return Err(Error::InvalidPrompt(format!("{n_objects} objects; with --pseudo-labels 255 means ignore")));
    }
    for (name, v) in
        [("--ignore-slices-below", args.opts.ignore_slices_below), ("--reject-case-below", args.opts.reject_case_below)]
    {
        if !(0.0..=1.0).contains(&v) {
            return Err(Error::InvalidArgument(format!("{name} {v}: a confidence in [0, 1]")));
        }
    }
    for b in &boxes {
        b.validate(dims)?;
    }
    let policy = Policy::parse(&args.opts.policy).ok_or_else(|| {
        Error::InvalidArgument(format!("--policy {:?}: expected reseed, reseed-in-box or reference", args.opts.policy))
    })?;
    let axis = match args.opts.axis.as_str() {
        "i" | "0" => 0,
        "j" | "1" => 1,
        "k" | "2" => 2,
        other => return Err(Error::InvalidArgument(format!("--axis {other:?}: expected i, j or k"))),
    };
    let mapping = choose_mapping(&args.opts)?;
    Ok(Prepared {
        t_all,
        outputs,
        limits,
        loaded,
        reference,
        read_time,
        boxes,
        points,
        seed_objects,
        policy,
        axis,
        mapping,
    })
}

/// The engine `opts` ask for; `text` loads the text encoder and the brain atlas (some case names an object
/// in words).
fn engine_options(opts: &CaseOptions, text: bool) -> Result<EngineOptions> {
    let providers = opts.providers.split(',').map(Provider::parse).collect::<Result<Vec<_>>>()?;
    Ok(EngineOptions {
        ort_library: opts.ort_lib.clone(),
        model_dirs: [opts.model.clone().unwrap_or_else(default_model_dir)]
            .into_iter()
            .chain(if !text && !takes_text(opts.model.as_deref()) {
                None
            } else {
                text_model_dir(&opts.text_model, opts.no_text_model)
            })
            .collect(),
        session: SessionConfig {
            providers,
            threads: opts.threads,
            strict: opts.no_cpu_fallback,
            precision: voxprompt::model::Precision::parse(&opts.precision)?,
            openvino_library: opts.openvino_lib.clone(),
        },
        brain_atlas: if text { brain_atlas(&opts.brain_atlas)? } else { None },
    })
}

/// Runs a prepared case on `engine`, writes its outputs (all or none) and returns the report `segment
/// --json` prints. `bar` shows a progress bar on stderr.
fn run_case(args: &SegmentArgs, case: Prepared, engine: &Engine, bar: bool) -> Result<serde_json::Value> {
    let Prepared {
        t_all,
        mut outputs,
        limits,
        loaded,
        reference,
        read_time,
        boxes,
        points,
        seed_objects,
        policy,
        axis,
        mapping,
    } = case;
    let volume = &loaded.volume;
    let dims = volume.dims;
    let post = PostprocessOptions::new()
        .with_keep_largest(args.opts.keep_largest)
        .with_fill_holes(args.opts.fill_holes)
        .with_min_size(args.opts.min_size);
    let opts = SessionOptions::default()
        .with_policy(policy)
        .with_axis(axis)
        .with_postprocess(post)
        .with_cache_budget(args.opts.cache_mb.saturating_mul(1 << 20))
        .with_spill_budget(args.opts.spill_mb.saturating_mul(1 << 20))
        .with_max_voxels(limits.max_voxels);
    let view = volume.view()?;
    let t = Instant::now();
    let mut session = engine.open_session(&view, mapping, opts)?;
    let intensity_time = t.elapsed();
    for (n, b) in boxes.iter().enumerate() {
        session.add_box((n + 1) as u8, *b)?;
    }
    for (n, m) in seed_objects.into_iter().enumerate() {
        session.set_seed((boxes.len() + n + 1) as u8, m)?;
    }
    let mut texts = Vec::new();
    let mut named = Vec::new();
    for (n, phrase) in args.text.iter().enumerate() {
        let outcome = session.add_text((n + 1) as u8, phrase)?;
        texts.push(serde_json::json!({
            "label": n + 1, "text": phrase, "concepts": outcome.resolution.concepts,
            "name": outcome.resolution.name(&engine.resolver.vocab), "method": outcome.resolution.method.name(),
            "score": outcome.resolution.score, "prompted_from_text": outcome.prompted,
            "regions": outcome.regions.iter().map(|(s, score, v)| serde_json::json!({"structure": s, "prior_score": score, "voxels": v})).collect::<Vec<_>>(),
        }));
        named.push(((n + 1) as u8, outcome.resolution));
    }
    for (label, p) in &points {
        session.add_point(*label, *p)?;
    }

    let bar = bar.then(|| {
        let b = indicatif::ProgressBar::new(1000);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} segmenting [{bar:40}] {percent}% {elapsed}").unwrap(),
        );
        b
    });
    let mut report = |f: f32| {
        if let Some(b) = &bar {
            b.set_position((f * 1000.0) as u64);
        }
        true
    };
    let run = session.run(Some(&mut report))?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let (mut mask, confidence) = session.compose(args.confidence.is_some() || args.png.is_some());
    let summaries = session.summaries();
    // Of the mask as composed: what the prompts did, not what the pseudo-label rule then blanks out.
    let reports: serde_json::Value =
        serde_json::from_str(&session.reports_json_with(&mask, &summaries)).expect("the report is JSON");
    let pseudo = args.opts.pseudo_labels.then(|| {
        let rule = voxprompt::pipeline::pseudo::Rule {
            min_slice: args.opts.ignore_slices_below,
            min_case: args.opts.reject_case_below,
        };
        let d = voxprompt::pipeline::pseudo::apply(&mut mask, &summaries, axis as usize, &rule);
        serde_json::json!({
            "accepted": d.accepted, "case_confidence": d.case_confidence, "ignore_label": voxprompt::pipeline::pseudo::IGNORE,
            "ignored_slices": d.ignored_slices, "min_slice": rule.min_slice, "min_case": rule.min_case,
        })
    });
    let rejected = pseudo.as_ref().is_some_and(|p| p["accepted"] == false);

    let t = Instant::now();
    // A rejected case leaves no label for a training set: nothing is written, the reserved outputs go.
    if !rejected {
        let header = loaded.nifti_header.as_ref();
        let g = &volume.geometry;
        let (slot, format) = outputs.mask;
        match format {
            OutputFormat::Nifti { gz } => {
                outputs.set.write(slot, |w| io::nifti::write_mask_to(w, gz, &mask, header, g))?
            }
            OutputFormat::Nrrd => outputs.set.write(slot, |w| io::nrrd::write_mask_to(w, true, &mask, g))?,
            OutputFormat::SegNrrd => {
                let labels: Vec<u8> = summaries.iter().map(|s| s.label).collect();
                let segments = slicer_segments(&labels, &named, &args.reference_label, &engine.resolver.vocab);
                outputs.set.write(slot, |w| io::segnrrd::write_to(w, &mask, g, &segments))?
            }
            OutputFormat::DicomSeg => {
                let labels: Vec<u8> = summaries.iter().map(|s| s.label).collect();
                let segments = slicer_segments(&labels, &named, &args.reference_label, &engine.resolver.vocab);
                let source = loaded.dicom.as_ref().expect("checked after reading: the input is a DICOM series");
                let created = io::dicomseg::Created::now()?;
                outputs.set.write(slot, |w| io::dicomseg::write_to(w, &mask, source, &segments, &created))?
            }
        }
        if let (Some((slot, format)), Some(c)) = (outputs.confidence, &confidence) {
            match format {
                OutputFormat::Nifti { gz } => {
                    outputs.set.write(slot, |w| io::nifti::write_f32_to(w, gz, c, dims, header, g))?
                }
                _ => outputs.set.write(slot, |w| io::nrrd::write_f32_to(w, true, c, dims, g))?,
            }
        }
        if let Some(slot) = outputs.png {
            let g = &volume.geometry;
            let slices = io::png::pick_slices(&mask, &io::png::ScreenAxes::radiological(g), 16);
            let conf = confidence.as_deref();
            outputs.set.write(slot, |w| io::png::write_montage_to(w, session.image(), g, &mask, conf, &slices))?;
        }
        outputs.set.commit()?;
    }
    let write_time = t.elapsed();

    let st = &run.stats;
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e3 * 100.0).round() / 100.0;
    let prompts_of = |label: u8| {
        reports.as_array().into_iter().flatten().find(|r| r["label"] == label).map(|r| r["prompts"].clone())
    };
    let mut voxels = [0usize; 256];
    for &v in &mask.data {
        voxels[v as usize] += 1;
    }
    let mut objs = Vec::new();
    for s in &summaries {
        let n = s.label as usize - 1;
        let d = match (&reference, args.reference_label.get(n)) {
            (Some(r), Some(&l)) => {
                Some(dice(mask.data.iter().map(|&m| m == s.label), r.iter().map(|&v| v == l as f64)))
            }
            _ => None,
        };
        let per_slice: Vec<_> = s
            .per_slice
            .iter()
            .map(|p| serde_json::json!({"slice": p.slice, "area": p.area, "iou_pred": p.iou, "confidence": p.confidence}))
            .collect();
        objs.push(serde_json::json!({
            "label": s.label, "box_ijk": boxes.get(n).map(|b| [b.min, b.max]), "voxels": voxels[s.label as usize],
            "slices": s.slices, "mean_iou_pred": s.mean_iou, "confidence": s.confidence, "dice": d,
            "reference_label": args.reference_label.get(n), "per_slice": per_slice,
            "prompts": prompts_of(s.label),
        }));
    }
    let model_ms = st.preprocess + st.encode + st.decode + st.postprocess;
    let total = t_all.elapsed();
    let axis_name = ["i", "j", "k"][axis as usize];
    let report = serde_json::json!({
        "input": args.input, "output": args.output, "dims": dims,
        "policy": policy.name(), "axis": axis_name,
        "provider": engine.provider().name(),
        "encoder_precision": engine.encoder_precision(),
        "provider_fallbacks": engine.fallback_reasons(),
        "onnxruntime": { "version": engine.runtime.version, "path": engine.runtime.path },
        "intensity": format!("{:?}", mapping.resolve(&view)),
        "slices_encoded": run.slices_encoded, "slices_decoded": run.slices_decoded,
        "decoder_runs": st.decoder_runs, "decoder_batches": st.decoder_batches,
        "embedding_cache": {
            "in_memory": run.cache.entries, "evicted": run.cache.evicted,
            "spilled": run.cache.spilled, "read_back": run.cache.restored,
        },
        "timings_ms": {
            "read": ms(read_time), "load_model": ms(engine.load_time), "intensity": ms(intensity_time),
            "preprocess": ms(st.preprocess), "encode": ms(st.encode), "decode": ms(st.decode),
            "postprocess": ms(st.postprocess), "write": ms(write_time), "total": ms(total),
        },
        "ms_per_slice": if run.slices_decoded > 0 { ms(model_ms) / run.slices_decoded as f64 } else { 0.0 },
        "peak_rss_mb": peak_rss_mb(),
        "objects": objs,
        "text_prompts": texts,
        "pseudo_labels": pseudo,
    });
    Ok(report)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let mut cmd = command();
    let cli = Cli::from_arg_matches_mut(&mut cmd.get_matches_mut()).unwrap_or_else(|e| e.format(&mut cmd).exit());
    let (result, input) = match cli.command {
        Command::Segment(a) => {
            let input = a.input.clone();
            (segment(*a), input)
        }
        Command::Batch(a) => {
            let list = a.list_path().to_path_buf();
            match batch::batch(*a) {
                Ok(code) => return code,
                Err(e) => (Err(e), list),
            }
        }
        Command::Concept(a) => (concept(a), PathBuf::from("concept")),
        Command::Info(a) => (info(a), PathBuf::from("info")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A message that names its file already is not prefixed with the input's name.
            let named = e.to_string().contains(&input.display().to_string());
            match &e {
                Error::Io { .. } => eprintln!("voxprompt: error: {e}"),
                _ if named => eprintln!("voxprompt: error: {e}"),
                _ => eprintln!("voxprompt: error: {}: {e}", input.display()),
            }
            ExitCode::from(match e.code() as u32 {
                // A budget too small is a bad --cache-mb.
                100..=199 | 403 => 2,
                200..=399 => 3,
                _ => 1,
            })
        }
    }
}
