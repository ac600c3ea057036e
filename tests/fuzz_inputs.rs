//! The fuzzing harness's inputs replayed in the ordinary test run (issue #16): the seeds made from the real
//! fixtures must reach what they were made for (a volume read, a run cancelled by its progress callback),
//! and every input the fuzzer ever found to crash (`fuzz/regressions/<target>/`) must now be handled.

mod common;

#[path = "../fuzz/src/lib.rs"]
mod harness;

use harness::Reached;
use voxprompt::ffi::result::vxp_result;

fn inputs(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_else(|_| Vec::new())
        .into_iter()
        .filter(|p: &std::path::PathBuf| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    v
}

fn run(target: &str, data: &[u8]) -> Reached {
    match target {
        "nifti" => harness::nifti(data),
        "nrrd" => harness::nrrd(data),
        "dicom" => harness::dicom(data),
        _ => harness::abi::volume(data),
    }
}

#[test]
fn the_seeds_from_the_fixtures_reach_the_readers_and_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let made = harness::seeds::write_all(&common::data("tests/fixtures/data"), tmp.path());
    assert_eq!(made, [("nifti", 6), ("nrrd", 12), ("dicom", 2), ("volume_abi", 4)]);
    for (target, _) in made {
        for (name, data) in inputs(&tmp.path().join(target)) {
            let want = if target == "volume_abi" { Reached::Run(vxp_result::Cancelled) } else { Reached::Volume };
            assert_eq!(run(target, &data), want, "{name}");
        }
    }
}

#[test]
fn every_input_the_fuzzer_found_is_handled() {
    let root = common::root().join("fuzz/regressions");
    let mut n = 0;
    for target in ["nifti", "nrrd", "dicom", "volume_abi"] {
        for (name, data) in inputs(&root.join(target)) {
            // Refused or read, but returned: a panic or an out-of-bounds access fails here.
            let r = run(target, &data);
            assert_ne!(r, Reached::Nothing, "{name}");
            n += 1;
        }
    }
    eprintln!("{n} regression inputs replayed");
    // Out-of-memory finds must not take the memory now: the process stays far below what they asked for
    // (4 GB); a model run in the other test of this binary needs well under 1 GB.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let mb = hwm.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024;
    assert!(mb < 2048, "peak RSS {mb} MB after the replay");
}
