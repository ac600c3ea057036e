//! `voxprompt batch`: `segment` over many cases with one engine.
//!
//! A case list is a folder (each NIfTI/NRRD volume and each DICOM series subfolder is a case, with the
//! prompts of the command line), a CSV file or a JSON list (per-case prompts). The whole list is checked
//! before anything runs. Each case is claimed atomically under `OUTDIR/.claims/<id>`, run through
//! `prepare` and `run_case` (what `segment` runs), and its `<id>.json` report is written last as the mark
//! that it is done, so several processes (or a job array with `--shard`) can share a list, and a rerun
//! skips what is done.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use voxprompt::engine::Engine;
use voxprompt::{Error, Result};

use super::{engine_options, parse_list, parse_point, prepare, run_case, CaseOptions, SegmentArgs};

#[derive(clap::Args)]
pub(crate) struct BatchArgs {
    /// The cases: a folder (every .nii, .nii.gz, .nrrd, .nhdr file and every DICOM series subfolder, the
    /// prompts given here), a .csv file or a .json list. CSV columns (header row; any order; only `input`
    /// is required): id, input, box_ijk, points_ijk, text, reference, reference_label, seed_mask; several
    /// objects of a case are `;`-separated (box_ijk "x0,y0,z0,x1,y1,z1;…", points_ijk "x,y,z,+,OBJECT;…",
    /// text "liver;spleen", reference_label "2;3"). A case whose only prompt is reference_label gets its
    /// boxes from the reference (segment's --box-from-reference); otherwise reference_label is for Dice.
    /// The id defaults to the input's name without its extension. A JSON list holds objects with the same
    /// keys (a value is a string as in the CSV, a number, or an array of one value per object). Relative
    /// paths resolve against the list's folder.
    list: PathBuf,
    /// Output folder (created): `<id>.<format>`, `<id>.json` (segment's --json report, written last),
    /// `batch-report.json` and `.claims/`.
    #[arg(short, long, value_name = "OUTDIR")]
    output: PathBuf,
    /// Mask format: nii.gz, nii, nrrd, seg.nrrd or dcm (a DICOM SEG, as segment writes it: a case whose input
    /// is not a DICOM series fails, and the others run).
    #[arg(long, default_value = "nii.gz")]
    format: String,
    /// Also write `<id>.confidence.nii.gz` (`.nrrd` for the NRRD formats).
    #[arg(long)]
    confidence: bool,
    /// Also write `<id>.png`, a montage of the labelled slices.
    #[arg(long)]
    png: bool,
    /// Run only shard I of N (0-based): the cases whose index in the list (a folder's in name order) is I
    /// modulo N. A job array runs one shard per task.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Seconds after which another process's claim on a case is taken over even if its process may live
    /// (a claim of a process gone on this host is taken over at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 6 * 3600)]
    claim_timeout: u64,
    /// For a folder: a box for every case (see segment). Repeat for several objects.
    #[arg(long = "box-ijk", value_name = "X0,Y0,Z0,X1,Y1,Z1")]
    box_ijk: Vec<String>,
    /// For a folder: a point for every case (see segment).
    #[arg(long = "point-ijk", value_name = "X,Y,Z[,+|-[,OBJECT]]")]
    point_ijk: Vec<String>,
    /// For a folder: an object named in words for every case (see segment).
    #[arg(long = "text", value_name = "PHRASE")]
    text: Vec<String>,
    #[command(flatten)]
    opts: CaseOptions,
}

/// What `batch --help` says of the options it shares with `segment` where "As for segment" (the rest) is not
/// all a batch user needs to know. No final full stop: clap drops it from a doc comment's one sentence.
const SHARED_HELP: [(&str, &str); 3] = [
    ("model", "Model package folder; loaded once for all cases"),
    ("threads", "As for segment (the cases run one after another)"),
    (
        "pseudo_labels",
        "As for segment: unsure slices labelled 255 (ignore), unsure cases rejected (status \"rejected\", no mask \
         written, their report kept so a resumed run does not try again)",
    ),
];

/// The batch subcommand with `SHARED_HELP`'s texts on the options of `CaseOptions`: each is described once,
/// under segment.
pub(crate) fn with_shared_help(c: clap::Command) -> clap::Command {
    let shared = <CaseOptions as clap::Args>::augment_args(clap::Command::new("case-options"));
    shared.get_arguments().map(|a| a.get_id().as_str().to_owned()).fold(c, |c, id| {
        let help = SHARED_HELP.iter().find(|(i, _)| *i == id).map_or("As for segment", |(_, h)| *h);
        c.mut_arg(&id, |a| a.help(help).long_help(None))
    })
}

/// The list's columns (and a JSON entry's keys).
const COLUMNS: [&str; 8] =
    ["id", "input", "box_ijk", "points_ijk", "text", "reference", "reference_label", "seed_mask"];

/// One case of the list, checked.
struct Case {
    /// Where it comes from, for messages: `list.csv:4`, `list.json: entry 3` or the volume's path.
    at: String,
    id: String,
    input: PathBuf,
    boxes: Vec<String>,
    points: Vec<String>,
    text: Vec<String>,
    reference: Option<PathBuf>,
    reference_label: Vec<u32>,
    seed_mask: Option<PathBuf>,
}

pub(crate) fn batch(a: BatchArgs) -> Result<ExitCode> {
    let t_all = Instant::now();
    let bad = |m: String| Error::InvalidArgument(m);
    let (ext, conf_ext) = match a.format.to_ascii_lowercase().trim_start_matches('.') {
        "nii.gz" => ("nii.gz", "nii.gz"),
        "nii" => ("nii", "nii"),
        "nrrd" => ("nrrd", "nrrd"),
        "seg.nrrd" => ("seg.nrrd", "nrrd"),
        // A confidence map is no segmentation: DICOM SEG has no place for it.
        "dcm" => ("dcm", "nii.gz"),
        other => return Err(bad(format!("--format {other:?}: expected nii.gz, nii, nrrd, seg.nrrd or dcm"))),
    };
    let shard = match &a.shard {
        None => None,
        Some(s) => Some(parse_shard(s)?),
    };
    let cases = read_list(&a)?;
    // Options are checked once, before the model loads: the first case's prepare would find them anyway.
    super::choose_mapping(&a.opts)?;
    std::fs::create_dir_all(a.output.join(".claims")).map_err(|e| io_err(&a.output, e))?;
    let any_text = cases.iter().any(|c| !c.text.is_empty());
    let engine = Engine::new(&engine_options(&a.opts, any_text)?)?;

    let mine: Vec<&Case> = match shard {
        Some((i, n)) => cases.iter().enumerate().filter(|(k, _)| k % n == i).map(|(_, c)| c).collect(),
        None => cases.iter().collect(),
    };
    let report_path = match shard {
        Some((i, n)) => a.output.join(format!("batch-report-{i}-of-{n}.json")),
        None => a.output.join("batch-report.json"),
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(mine.len() as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} cases, {elapsed} elapsed, ETA {eta}")
                .unwrap(),
        );
        b
    });
    let say = |line: String| match &bar {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    };
    let mut entries: Vec<serde_json::Value> = Vec::new();
    let (mut done, mut skipped, mut failed, mut rejected) = (0usize, 0usize, 0usize, 0usize);
    let mut dice: Vec<f64> = Vec::new();
    for (k, case) in mine.iter().enumerate() {
        let head = format!("[{}/{}] {}", k + 1, mine.len(), case.id);
        let mask = a.output.join(format!("{}.{ext}", case.id));
        let json = a.output.join(format!("{}.json", case.id));
        let mut wanted = vec![mask.clone()];
        let confidence = a.confidence.then(|| a.output.join(format!("{}.confidence.{conf_ext}", case.id)));
        let png = a.png.then(|| a.output.join(format!("{}.png", case.id)));
        wanted.extend(confidence.iter().chain(&png).cloned());
        // Done: its report is there with its outputs, or it says the case was rejected (no outputs).
        let is_done = || json.exists() && (wanted.iter().all(|p| p.exists()) || was_rejected(&json));
        let t = Instant::now();
        let mut entry = serde_json::json!({ "id": case.id, "input": case.input });
        let claim = if is_done() { Claim::Done } else { claim(&a.output, &case.id, a.claim_timeout, &is_done)? };
        match claim {
            Claim::Done | Claim::Busy(_) => {
                let (reason, objects) = match claim {
                    Claim::Busy(by) => (format!("claimed by {by}"), Vec::new()),
                    _ => ("done before".to_owned(), done_objects(&json)),
                };
                dice.extend(objects.iter().filter_map(|o| o["dice"].as_f64()));
                say(format!("{head}: skipped ({reason})"));
                entry["status"] = "skipped".into();
                entry["reason"] = reason.into();
                entry["objects"] = objects.into();
                skipped += 1;
            }
            Claim::Mine(file) => {
                // A report whose outputs are gone marks nothing done any more.
                let _ = std::fs::remove_file(&json);
                let args = SegmentArgs {
                    input: case.input.clone(),
                    series: None,
                    output: mask.clone(),
                    box_ijk: case.boxes.clone(),
                    box_ras: Vec::new(),
                    reference: case.reference.clone(),
                    reference_label: case.reference_label.clone(),
                    box_from_reference: !case.reference_label.is_empty()
                        && case.boxes.is_empty()
                        && case.text.is_empty()
                        && case.seed_mask.is_none(),
                    png: png.clone(),
                    json: false,
                    point_ijk: case.points.clone(),
                    text: case.text.clone(),
                    seed_mask: case.seed_mask.clone(),
                    confidence: confidence.clone(),
                    opts: a.opts.clone(),
                };
                let run = prepare(&args).and_then(|p| run_case(&args, p, &engine, false)).and_then(|report| {
                    let text = serde_json::to_string_pretty(&report).expect("json");
                    voxprompt::io::output::write_file(&json, |w| {
                        w.write_all(text.as_bytes()).map_err(|e| io_err(&json, e))
                    })?;
                    Ok(report)
                });
                match run {
                    Ok(report) if report["pseudo_labels"]["accepted"] == false => {
                        // Decided, not failed: the report is the done mark, so a resumed run skips it.
                        let p = &report["pseudo_labels"];
                        say(format!(
                            "{head}: rejected: case confidence {:.3} < {}",
                            p["case_confidence"].as_f64().unwrap_or(0.0),
                            p["min_case"]
                        ));
                        entry["status"] = "rejected".into();
                        entry["pseudo_labels"] = p.clone();
                        rejected += 1;
                    }
                    Ok(report) => {
                        let objects = objects_of(&report);
                        dice.extend(objects.iter().filter_map(|o| o["dice"].as_f64()));
                        say(format!("{head}: {}", case_line(&report)));
                        entry["status"] = "ok".into();
                        entry["pseudo_labels"] = report["pseudo_labels"].clone();
                        entry["timings_ms"] = report["timings_ms"].clone();
                        entry["slices_encoded"] = report["slices_encoded"].clone();
                        entry["objects"] = objects.into();
                        done += 1;
                    }
                    Err(e) => {
                        // A failed case is free for the next run to try again.
                        let _ = std::fs::remove_file(&file);
                        say(format!("{head}: failed: {}: {e}", e.code().variant_name()));
                        entry["status"] = "failed".into();
                        entry["error"] = e.code().variant_name().into();
                        entry["message"] = e.to_string().into();
                        failed += 1;
                    }
                }
            }
        }
        entry["wall_ms"] = ms(t.elapsed()).into();
        entries.push(entry);
        if let Some(b) = &bar {
            b.inc(1);
        }
        write_report(&report_path, &a, shard, cases.len(), &entries, t_all)?;
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    write_report(&report_path, &a, shard, cases.len(), &entries, t_all)?;
    let of = match shard {
        Some((i, n)) => format!(" (shard {i}/{n} of {} cases)", cases.len()),
        None => String::new(),
    };
    eprintln!("batch {}: {} cases{of}", a.list.display(), mine.len());
    eprintln!("  done     {done:>6}");
    eprintln!("  skipped  {skipped:>6}");
    eprintln!("  failed   {failed:>6}");
    if a.opts.pseudo_labels {
        eprintln!("  rejected {rejected:>6}");
    }
    eprintln!("  time     {:>8.1} s", t_all.elapsed().as_secs_f64());
    if !dice.is_empty() {
        let mean = dice.iter().sum::<f64>() / dice.len() as f64;
        eprintln!("  mean Dice {mean:.4} over {} objects", dice.len());
    }
    eprintln!("report: {}", report_path.display());
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn parse_shard(s: &str) -> Result<(usize, usize)> {
    let parsed = s.split_once('/').and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((i, n)) if i < n => Ok((i, n)),
        _ => Err(Error::InvalidArgument(format!("--shard {s:?}: expected I/N with 0 <= I < N"))),
    }
}

/// Whether the case report `json` says the pseudo-label rule rejected the case.
fn was_rejected(json: &std::path::Path) -> bool {
    std::fs::read(json)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|r| r["pseudo_labels"]["accepted"] == false)
}

/// The per-object fields the batch report keeps of a case's report.
fn objects_of(report: &serde_json::Value) -> Vec<serde_json::Value> {
    report["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            serde_json::json!({
                "label": o["label"], "name": object_name(report, o), "voxels": o["voxels"],
                "slices": o["slices"], "dice": o["dice"], "reference_label": o["reference_label"],
            })
        })
        .collect()
}

/// A done case's objects, from its report (none when it cannot be read).
fn done_objects(json: &Path) -> Vec<serde_json::Value> {
    std::fs::read(json)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|r| objects_of(&r))
        .unwrap_or_default()
}

/// What an object is called on a case's line: the concept its text named, else its reference label, else
/// its label.
fn object_name(report: &serde_json::Value, o: &serde_json::Value) -> String {
    let named = report["text_prompts"].as_array().into_iter().flatten().find(|t| t["label"] == o["label"]);
    match (named.and_then(|t| t["name"].as_str()), o["reference_label"].as_u64()) {
        (Some(n), _) => n.to_owned(),
        (None, Some(r)) => format!("label {r}"),
        (None, None) => format!("object {}", o["label"]),
    }
}

/// `liver 0.943 (Dice), label 3 1234 voxels 38 slices 12.1 s`.
fn case_line(report: &serde_json::Value) -> String {
    let objects: Vec<String> = report["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| match o["dice"].as_f64() {
            Some(d) => format!("{} {d:.3} (Dice)", object_name(report, o)),
            None => format!("{} {} voxels", object_name(report, o), o["voxels"]),
        })
        .collect();
    // A text prompt encodes its slices before the run, which then counts none: the objects' slices show.
    let slices = report["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["slices"].as_u64())
        .chain(report["slices_encoded"].as_u64())
        .max()
        .unwrap_or(0);
    format!(
        "{} {slices} slices {:.1} s",
        objects.join(", "),
        report["timings_ms"]["total"].as_f64().unwrap_or(0.0) / 1e3
    )
}

fn write_report(
    path: &Path,
    a: &BatchArgs,
    shard: Option<(usize, usize)>,
    total: usize,
    entries: &[serde_json::Value],
    t_all: Instant,
) -> Result<()> {
    let count = |s: &str| entries.iter().filter(|e| e["status"] == s).count();
    let dice: Vec<f64> = entries
        .iter()
        .flat_map(|e| e["objects"].as_array().cloned().unwrap_or_default())
        .filter_map(|o| o["dice"].as_f64())
        .collect();
    let report = serde_json::json!({
        "list": a.list, "output": a.output,
        "shard": shard.map(|(i, n)| serde_json::json!({"index": i, "count": n})),
        "cases_in_list": total,
        "done": count("ok"), "skipped": count("skipped"), "failed": count("failed"), "rejected": count("rejected"),
        "mean_dice": (!dice.is_empty()).then(|| dice.iter().sum::<f64>() / dice.len() as f64),
        "total_ms": ms(t_all.elapsed()),
        "cases": entries,
    });
    let text = serde_json::to_string_pretty(&report).expect("json");
    voxprompt::io::output::write_file(path, |w| w.write_all(text.as_bytes()).map_err(|e| io_err(path, e)))
}

// ---------------------------------------------------------------------------------------------------------
// Claims

enum Claim {
    /// Finished (by this process earlier or by another).
    Done,
    /// Another live process holds it: who.
    Busy(String),
    /// This process holds it: the claim file.
    Mine(PathBuf),
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Claims case `id`: creates `OUTDIR/.claims/<id>` exclusively, holding this process's pid, host and start
/// time. A claim whose process is gone (same host) or older than `timeout` seconds is taken over: it is
/// renamed aside (only one process's rename succeeds), and if what was renamed is not the claim judged
/// stale (a third process took it over meanwhile) it is put back and the case left to that process.
fn claim(outdir: &Path, id: &str, timeout: u64, is_done: &dyn Fn() -> bool) -> Result<Claim> {
    let path = outdir.join(".claims").join(id);
    let mine = serde_json::json!({ "pid": std::process::id(), "host": host(), "started": now_s() }).to_string();
    for _ in 0..3 {
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut f) => {
                f.write_all(mine.as_bytes()).map_err(|e| io_err(&path, e))?;
                // Another process may have finished it between our look and our claim.
                return Ok(if is_done() { Claim::Done } else { Claim::Mine(path) });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&path, e)),
        }
        let Ok(held) = std::fs::read_to_string(&path) else { continue };
        let v: serde_json::Value = serde_json::from_str(&held).unwrap_or_default();
        // A claim being written is still empty: its age is its file's.
        let mtime = || {
            let m = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
            m.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
        };
        let (pid, their_host) = (v["pid"].as_u64(), v["host"].as_str().unwrap_or(""));
        let started = v["started"].as_u64().or_else(mtime);
        let gone = their_host == host() && pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
        let old = started.is_none_or(|s| now_s().saturating_sub(s) > timeout);
        if !(gone || old) {
            return Ok(Claim::Busy(format!("pid {} on {their_host}", pid.unwrap_or(0))));
        }
        if is_done() {
            return Ok(Claim::Done);
        }
        let aside = path.with_file_name(format!("{id}.stale-{}", std::process::id()));
        if std::fs::rename(&path, &aside).is_err() {
            continue;
        }
        let taken = std::fs::read_to_string(&aside).unwrap_or_default();
        if taken != held {
            let _ = std::fs::hard_link(&aside, &path);
            let _ = std::fs::remove_file(&aside);
            return Ok(Claim::Busy("another process that took over a stale claim".into()));
        }
        let _ = std::fs::remove_file(&aside);
    }
    Ok(Claim::Busy("other processes (the claim changed hands three times)".into()))
}

// ---------------------------------------------------------------------------------------------------------
// Lists

fn read_list(a: &BatchArgs) -> Result<Vec<Case>> {
    let list = &a.list;
    let is_dir = std::fs::metadata(list).map_err(|e| io_err(list, e))?.is_dir();
    let cli_prompts = !(a.box_ijk.is_empty() && a.point_ijk.is_empty() && a.text.is_empty());
    let cases = if is_dir {
        folder_cases(a)?
    } else {
        if cli_prompts {
            return Err(Error::InvalidArgument(format!(
                "{}: --box-ijk, --point-ijk and --text are for a folder; a list gives each case's prompts",
                list.display()
            )));
        }
        let text = std::fs::read_to_string(list).map_err(|e| io_err(list, e))?;
        let name = list.to_string_lossy().to_ascii_lowercase();
        let rows = if name.ends_with(".json") { json_rows(list, &text)? } else { csv_rows(list, &text)? };
        let base = list.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        rows.into_iter().map(|(at, fields)| row_case(at, &fields, base)).collect::<Result<Vec<_>>>()?
    };
    let mut seen: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for c in &cases {
        if let Some(first) = seen.insert(&c.id, &c.at) {
            return Err(Error::InvalidArgument(format!("{}: duplicate id {:?} (first at {first})", c.at, c.id)));
        }
    }
    if cases.is_empty() {
        return Err(Error::InvalidArgument(format!("{}: no cases", list.display())));
    }
    Ok(cases)
}

const VOLUME_EXTS: [&str; 4] = [".nii.gz", ".nii", ".nrrd", ".nhdr"];

fn folder_cases(a: &BatchArgs) -> Result<Vec<Case>> {
    let dir = &a.list;
    let abs = |p: &Path| std::fs::canonicalize(p).ok();
    if abs(dir).is_some() && abs(dir) == abs(&a.output) {
        return Err(Error::InvalidArgument(format!(
            "-o {}: give an output folder other than the cases'",
            dir.display()
        )));
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    entries.sort();
    let mut cases = Vec::new();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let id = if p.is_dir() {
            let series = abs(&p) != abs(&a.output)
                && std::fs::read_dir(&p).into_iter().flatten().filter_map(|e| e.ok()).any(|e| {
                    let f = e.path();
                    f.is_file()
                        && (f.to_string_lossy().to_ascii_lowercase().ends_with(".dcm")
                            || voxprompt::io::dicom::is_dicom(&f))
                });
            if !series {
                continue;
            }
            name
        } else {
            let lower = name.to_ascii_lowercase();
            match VOLUME_EXTS.iter().find(|e| lower.ends_with(*e)) {
                Some(e) => name[..name.len() - e.len()].to_owned(),
                None => continue,
            }
        };
        let at = p.display().to_string();
        check_id(&at, &id)?;
        let case = Case {
            at,
            id,
            input: p,
            boxes: a.box_ijk.clone(),
            points: a.point_ijk.clone(),
            text: a.text.clone(),
            reference: None,
            reference_label: Vec::new(),
            seed_mask: None,
        };
        check_prompts(&case)?;
        cases.push(case);
    }
    Ok(cases)
}

fn check_id(at: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 200
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!("{at}: id {id:?}: use letters, digits and . _ - + (not first .)")))
    }
}

/// Prompts are parsed as segment parses them; a point's bounds need the volume and wait for the case.
fn check_prompts(c: &Case) -> Result<()> {
    let at = |e: Error| Error::InvalidArgument(format!("{}: {e}", c.at));
    for b in &c.boxes {
        parse_list::<usize>(b, 6, "box_ijk").map_err(at)?;
    }
    for p in &c.points {
        parse_point(p, [usize::MAX; 3]).map_err(at)?;
    }
    let positive = c.points.iter().any(|p| parse_point(p, [usize::MAX; 3]).is_ok_and(|(_, p)| p.positive));
    if c.boxes.is_empty() && c.text.is_empty() && c.seed_mask.is_none() && c.reference_label.is_empty() && !positive {
        return Err(Error::InvalidArgument(format!(
            "{}: case {:?} has no prompt (box_ijk, points_ijk, text, seed_mask or reference_label)",
            c.at, c.id
        )));
    }
    if !c.reference_label.is_empty() && c.reference.is_none() {
        return Err(Error::InvalidArgument(format!("{}: reference_label without reference", c.at)));
    }
    for p in [&c.input].into_iter().chain(&c.reference).chain(&c.seed_mask) {
        if std::fs::metadata(p).is_err() {
            return Err(Error::InvalidArgument(format!("{}: {} does not exist", c.at, p.display())));
        }
    }
    Ok(())
}

/// A list row (column name → value) as a checked case.
fn row_case(at: String, fields: &[(String, String)], base: &Path) -> Result<Case> {
    let get = |k: &str| fields.iter().find(|(c, _)| c == k).map(|(_, v)| v.trim()).filter(|v| !v.is_empty());
    let many = |k: &str| -> Vec<String> {
        get(k)
            .map(|v| v.split(';').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    };
    let path = |k: &str| get(k).map(|v| base.join(v));
    let input = path("input").ok_or_else(|| Error::InvalidArgument(format!("{at}: no input")))?;
    let id = match get("id") {
        Some(id) => id.to_owned(),
        None => {
            let name = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let lower = name.to_ascii_lowercase();
            let ext = VOLUME_EXTS.iter().find(|e| lower.ends_with(*e)).map_or(0, |e| e.len());
            name[..name.len() - ext].to_owned()
        }
    };
    check_id(&at, &id)?;
    let reference_label = many("reference_label")
        .iter()
        .map(|l| {
            l.parse::<u32>().map_err(|_| Error::InvalidArgument(format!("{at}: reference_label {l:?} is no label")))
        })
        .collect::<Result<Vec<_>>>()?;
    let case = Case {
        id,
        input,
        boxes: many("box_ijk"),
        points: many("points_ijk"),
        text: many("text"),
        reference: path("reference"),
        reference_label,
        seed_mask: path("seed_mask"),
        at,
    };
    check_prompts(&case)?;
    Ok(case)
}

type Row = (String, Vec<(String, String)>);

/// CSV records (RFC 4180 quoting, `#` comment lines, blank lines skipped) under a header row naming
/// columns of `COLUMNS`; each row is located by the line it starts on.
fn csv_rows(list: &Path, text: &str) -> Result<Vec<Row>> {
    let mut records: Vec<(usize, Vec<String>)> = Vec::new();
    let (mut line, mut chars) = (1usize, text.chars().peekable());
    while chars.peek().is_some() {
        let start = line;
        if chars.peek() == Some(&'#') {
            for c in chars.by_ref() {
                if c == '\n' {
                    line += 1;
                    break;
                }
            }
            continue;
        }
        let (mut fields, mut field, mut quoted, mut was_quoted) = (Vec::new(), String::new(), false, false);
        loop {
            match chars.next() {
                None => break,
                Some('"') if quoted => {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                }
                Some('"') if field.trim().is_empty() && !was_quoted => {
                    field.clear();
                    quoted = true;
                    was_quoted = true;
                }
                Some('\n') if quoted => {
                    line += 1;
                    field.push('\n');
                }
                Some(c) if quoted => field.push(c),
                Some(',') => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                Some('\n') => {
                    line += 1;
                    break;
                }
                Some('\r') => {}
                Some(c) => field.push(c),
            }
        }
        if quoted {
            return Err(Error::InvalidArgument(format!("{}:{start}: a quote is never closed", list.display())));
        }
        fields.push(field);
        if fields.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        records.push((start, fields));
    }
    let mut records = records.into_iter();
    let (hline, header) =
        records.next().ok_or_else(|| Error::InvalidArgument(format!("{}: empty list", list.display())))?;
    let header: Vec<String> = header.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    for (n, h) in header.iter().enumerate() {
        if !COLUMNS.contains(&h.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "{}:{hline}: unknown column {h:?} (columns: {})",
                list.display(),
                COLUMNS.join(", ")
            )));
        }
        if header[..n].contains(h) {
            return Err(Error::InvalidArgument(format!("{}:{hline}: column {h:?} given twice", list.display())));
        }
    }
    records
        .map(|(l, fields)| {
            if fields.len() > header.len() {
                return Err(Error::InvalidArgument(format!(
                    "{}:{l}: {} fields for {} columns",
                    list.display(),
                    fields.len(),
                    header.len()
                )));
            }
            Ok((format!("{}:{l}", list.display()), header.iter().cloned().zip(fields).collect()))
        })
        .collect()
}

/// A JSON list's entries as rows: each value as the CSV writes it (an array: one value per object, `;`
/// between them; an array inside it, such as a box, comma-separated).
fn json_rows(list: &Path, text: &str) -> Result<Vec<Row>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::InvalidArgument(format!("{}:{}: {e}", list.display(), e.line())))?;
    let entries =
        v.as_array().ok_or_else(|| Error::InvalidArgument(format!("{}: expected a JSON list", list.display())))?;
    let scalar = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Null => Some(String::new()),
            _ => None,
        }
    };
    let mut rows = Vec::new();
    for (n, e) in entries.iter().enumerate() {
        let at = format!("{}: entry {}", list.display(), n + 1);
        let obj = e.as_object().ok_or_else(|| Error::InvalidArgument(format!("{at}: expected an object")))?;
        let mut fields = Vec::new();
        for (k, v) in obj {
            if !COLUMNS.contains(&k.as_str()) {
                return Err(Error::InvalidArgument(format!("{at}: unknown key {k:?} (keys: {})", COLUMNS.join(", "))));
            }
            let text = match v {
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        serde_json::Value::Array(xs) => {
                            xs.iter().map(scalar).collect::<Option<Vec<_>>>().map(|x| x.join(","))
                        }
                        other => scalar(other),
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(|x| x.join(";")),
                other => scalar(other),
            }
            .ok_or_else(|| Error::InvalidArgument(format!("{at}: {k}: expected a string, a number or a list")))?;
            fields.push((k.clone(), text));
        }
        rows.push((at, fields));
    }
    Ok(rows)
}

impl BatchArgs {
    /// The list (or folder), which error messages are named after.
    pub(crate) fn list_path(&self) -> &Path {
        &self.list
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io { path: path.to_path_buf(), message: e.to_string() }
}
