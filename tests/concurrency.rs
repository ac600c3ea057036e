//! Many threads × several sessions on one engine through the C ABI, cancels and frees from other threads
//! (issue #16). The same run is built with AddressSanitizer by `make stress-asan`.

mod common;
mod stress;

use std::time::Duration;

use common::*;

#[test]
fn threads_and_sessions_on_one_engine_give_the_serial_masks_under_cancels_and_frees() {
    let v = volume("tests/fixtures/data/example_ct_sm.nii.gz");
    let cfg = stress::Config {
        threads: 3,
        sessions_per_thread: 2,
        rounds: 1,
        cancels: 6,
        deadline: Duration::from_secs(600),
    };
    let out = stress::stress(ort_lib().to_str().unwrap(), model_dir().to_str().unwrap(), &v, &cfg);
    eprintln!("stress: {out:?} in {:.1} s", out.seconds);
    assert_eq!(out.runs_ok, 3 * 2, "every job finished once, with the serial run's mask");
    assert!(out.runs_cancelled > 0, "some runs were cancelled from the other thread and rerun");
    assert!(out.sessions_churned > 0, "sessions were created and freed during the runs");
}
