//! `stress [threads] [sessions per thread] [rounds] [cancels]`: the concurrency stress run of `tests/concurrency.rs`,
//! built here with AddressSanitizer (`make stress-asan`) so the library's own memory accesses under many
//! threads are checked, not only the host's.

#[path = "../../../tests/stress/mod.rs"]
mod stress;

fn main() {
    let arg = |i: usize, d: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let ort = std::env::var("VXP_ORT_LIB")
        .unwrap_or_else(|_| format!("{root}/.deps/onnxruntime/lib/libonnxruntime.so.1.32.0"));
    let v = voxprompt::io::read_volume(format!("{root}/tests/fixtures/data/example_ct_sm.nii.gz").as_ref())
        .expect("the fixture volume")
        .volume;
    let cfg = stress::Config {
        threads: arg(1, 4),
        sessions_per_thread: arg(2, 2),
        rounds: arg(3, 2),
        cancels: arg(4, 12),
        deadline: std::time::Duration::from_secs(1800),
    };
    let out = stress::stress(&ort, &format!("{root}/models/litemedsam"), &v, &cfg);
    println!(
        "stress: {} threads x {} sessions x {} rounds: {} runs identical to the serial masks, {} cancelled and rerun, \
         {} sessions created and freed meanwhile, {:.1} s",
        cfg.threads,
        cfg.sessions_per_thread,
        cfg.rounds,
        out.runs_ok,
        out.runs_cancelled,
        out.sessions_churned,
        out.seconds
    );
}
