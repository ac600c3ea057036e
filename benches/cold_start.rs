//! Cold start (`cargo bench --bench cold_start`, needs `make setup`): from a fresh process to a session ready
//! on the small CT (case A, 3 mm), as `vxp_engine_new` + `vxp_session_new` do it, each of `VXP_COLD_RUNS`
//! (default 5) runs in a child process of its own so that every one loads ONNX Runtime and the model from
//! scratch (the files stay in the page cache, as on a host that started before). Each child then times the
//! parts again with the runtime loaded: reading and hashing the graphs, and one encoder and one decoder
//! session built. Goal (#18): < 0.5 s.

mod common;

use std::time::Instant;

use voxprompt::engine::{Engine, EngineOptions};
use voxprompt::io::read_volume;
use voxprompt::model::manifest::Package;
use voxprompt::model::providers::build_session;
use voxprompt::model::SessionConfig;
use voxprompt::session::SessionOptions;
use voxprompt::volume::intensity::IntensityMapping;

fn child() {
    let v = read_volume(&common::root().join("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap().volume;
    let dir = common::root().join("models/litemedsam");
    let cfg = SessionConfig::default();
    let t = Instant::now();
    voxprompt::runtime::runtime(Some(&common::ort_lib())).expect("runtime");
    let t_runtime = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let engine = Engine::new(&EngineOptions {
        ort_library: Some(common::ort_lib()),
        model_dirs: vec![dir.clone()],
        session: cfg.clone(),
        brain_atlas: None,
    })
    .expect("engine");
    let t_engine = t.elapsed().as_secs_f64() + t_runtime;
    let t = Instant::now();
    let s = engine.open_session(&v.view().unwrap(), IntensityMapping::CT, SessionOptions::default()).unwrap();
    let t_session = t.elapsed().as_secs_f64();
    drop(s);
    let t = Instant::now();
    let package = Package::open(&dir).unwrap();
    let (enc, dec) = (package.verified_bytes("encoder").unwrap(), package.verified_bytes("decoder").unwrap());
    let t_hash = t.elapsed().as_secs_f64();
    let t = Instant::now();
    drop(build_session(engine.runtime, &enc, &cfg, "encoder").unwrap());
    let t_enc = t.elapsed().as_secs_f64();
    let t = Instant::now();
    drop(build_session(engine.runtime, &dec, &cfg, "decoder").unwrap());
    let t_dec = t.elapsed().as_secs_f64();
    println!(
        "RESULT runtime= {t_runtime:.4} engine= {t_engine:.4} session= {t_session:.4} hash= {t_hash:.4} encoder= {t_enc:.4} decoder= {t_dec:.4} \
         workers= {}",
        cfg.worker_count()
    );
}

fn main() {
    if std::env::var_os("VXP_COLD_CHILD").is_some() {
        child();
        return;
    }
    let runs: usize = std::env::var("VXP_COLD_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    println!("# cold start, {} ({runs} fresh processes)", common::machine());
    let keys = ["engine=", "session=", "hash=", "encoder=", "decoder=", "runtime="];
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); keys.len()];
    let mut workers = String::new();
    for _ in 0..runs {
        let out = std::process::Command::new(std::env::current_exe().expect("own path"))
            .env("VXP_COLD_CHILD", "1")
            .output()
            .expect("the bench runs itself");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().find(|l| l.starts_with("RESULT")).expect("a RESULT line").to_owned();
        let field = |key: &str| -> String {
            let at = line.find(key).expect(key) + key.len();
            line[at..].split_whitespace().next().unwrap().to_owned()
        };
        for (k, v) in keys.iter().zip(all.iter_mut()) {
            v.push(field(k).parse().unwrap());
        }
        workers = field("workers=");
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let m: Vec<f64> = all.iter_mut().map(median).collect();
    println!(
        "  vxp_engine_new equivalent: {:.0} ms (median), of which loading ONNX Runtime {:.0} ms, then {workers} workers' \
         sessions",
        m[0] * 1e3,
        m[5] * 1e3
    );
    println!("  vxp_session_new equivalent (small CT, 3 mm): {:.0} ms", m[1] * 1e3);
    println!("  cold start: {:.0} ms (goal < 500 ms)", (m[0] + m[1]) * 1e3);
    println!(
        "  parts, runtime loaded: graphs read + sha256 {:.0} ms, one encoder session {:.0} ms, one decoder session {:.0} ms",
        m[2] * 1e3,
        m[3] * 1e3,
        m[4] * 1e3
    );
}
