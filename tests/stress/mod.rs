//! The concurrency stress run (issue #16), shared by `tests/concurrency.rs` and the AddressSanitizer build in
//! `fuzz/` (the `stress` binary, `make stress-asan`): many threads × several sessions on one engine through
//! the C ABI, with cancels from other threads, sessions created and freed while others run, and the engine
//! freed while its sessions are still running. Every finished run must give the mask a serial run gives;
//! a cancelled run must leave its buffer untouched; nothing may hang (a watchdog ends the process).

use std::ffi::CString;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use voxprompt::ffi::engine::{vxp_engine, vxp_engine_free, vxp_engine_new};
use voxprompt::ffi::options::*;
use voxprompt::ffi::prompt::{vxp_session_add_box_ijk, vxp_session_clear_prompts};
use voxprompt::ffi::result::vxp_result;
use voxprompt::ffi::session::*;
use voxprompt::ffi::settings::vxp_session_set_policy;
use voxprompt::ffi::volume::vxp_volume;
use voxprompt::volume::Volume;

/// The prompts one run carries: label 1 from a box on two slices of TotalSegmentator case A (kidney, liver
/// and spleen regions), under the reference policy, which segments the box's slices only: two slice encodes
/// a run, so cancels land between slices and the test stays short.
const JOBS: [[i64; 6]; 3] = [[23, 27, 10, 44, 49, 11], [50, 20, 14, 90, 60, 15], [20, 55, 8, 40, 80, 9]];
const REFERENCE: u32 = 1;
/// Sessions the churn thread opens and frees during the runs.
const CHURN: u64 = 6;

pub struct Config {
    pub threads: usize,
    pub sessions_per_thread: usize,
    pub rounds: usize,
    /// Cancels the canceller sends at most (then the runs finish undisturbed).
    pub cancels: usize,
    /// The whole run must end within this, or the process is aborted as deadlocked.
    pub deadline: Duration,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub runs_ok: u64,
    pub runs_cancelled: u64,
    pub sessions_churned: u64,
    pub seconds: f64,
}

struct Ptr<T>(*mut T);
/// The descriptor, read by every thread that opens a session; its buffer is the caller's volume, alive and
/// unchanged for the whole run.
struct Desc(vxp_volume);
// SAFETY: only read, and the buffer it points to outlives the run.
unsafe impl Sync for Desc {}
// SAFETY: the ABI's handles may be used from any thread; each use below follows its documented contract.
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}

fn descriptor(v: &Volume) -> vxp_volume {
    let s = v.dtype.size() as i64;
    let m = v.geometry.ijk_to_ras;
    vxp_volume {
        struct_size: std::mem::size_of::<vxp_volume>() as u32,
        dtype: 4, // I16
        data: v.data.as_ptr().cast(),
        data_len: v.data.len(),
        data_offset: 0,
        dims: v.dims,
        strides: [s, s * v.dims[0] as i64, s * (v.dims[0] * v.dims[1]) as i64],
        spacing: v.geometry.spacing,
        ijk_to_ras: [m[0], m[1], m[2], m[3]].concat().try_into().unwrap(),
        intensity: 1, // CT
        window_level: 0.0,
        window_width: 0.0,
    }
}

fn engine(ort: &str, models: &str) -> *mut vxp_engine {
    let (ort, models) = (CString::new(ort).unwrap(), CString::new(models).unwrap());
    let (mut o, mut e) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: live handles, NUL-terminated strings.
    unsafe {
        assert_eq!(vxp_options_new(&mut o), vxp_result::Ok);
        assert_eq!(vxp_options_set_ort_library(o, ort.as_ptr()), vxp_result::Ok);
        assert_eq!(vxp_options_set_model_dir(o, models.as_ptr()), vxp_result::Ok);
        assert_eq!(vxp_options_set_threads(o, 1), vxp_result::Ok);
        assert_eq!(vxp_engine_new(o, &mut e), vxp_result::Ok);
        vxp_options_free(o);
    }
    e
}

fn session(e: *const vxp_engine, d: &vxp_volume) -> *mut vxp_session {
    let mut s = ptr::null_mut();
    // SAFETY: a live engine; the descriptor's buffer outlives the call.
    unsafe {
        assert_eq!(vxp_session_new(e, d, &mut s), vxp_result::Ok);
        assert_eq!(vxp_session_set_policy(s, REFERENCE), vxp_result::Ok);
    }
    s
}

/// Sets job `j` as the session's only prompt.
fn prompt(s: *mut vxp_session, j: usize) {
    // SAFETY: a live session; 6 readable values.
    unsafe {
        assert_eq!(vxp_session_clear_prompts(s), vxp_result::Ok);
        assert_eq!(vxp_session_add_box_ijk(s, 1, JOBS[j].as_ptr()), vxp_result::Ok);
    }
}

fn run(s: *mut vxp_session, mask: &mut [u8], dims: [usize; 3]) -> vxp_result {
    let strides = [1i64, dims[0] as i64, (dims[0] * dims[1]) as i64];
    // SAFETY: a live session, used by this thread alone; the mask holds every voxel.
    unsafe { vxp_session_run(s, None, ptr::null_mut(), mask.as_mut_ptr(), mask.len(), strides.as_ptr()) }
}

/// Runs the stress; panics on any wrong mask, untouched-buffer violation or unexpected code.
pub fn stress(ort: &str, models: &str, v: &Volume, cfg: &Config) -> Outcome {
    let t0 = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    {
        let (done, deadline) = (done.clone(), cfg.deadline);
        std::thread::spawn(move || {
            while t0.elapsed() < deadline {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            eprintln!("stress: not finished after {deadline:?}: deadlock");
            std::process::abort();
        });
    }
    let d = Desc(descriptor(v));
    let n: usize = v.dims.iter().product();
    let e = engine(ort, models);

    // Serial references, one fresh session per job.
    let expected: Vec<Vec<u8>> = (0..JOBS.len())
        .map(|j| {
            let s = session(e, &d.0);
            prompt(s, j);
            let mut m = vec![0u8; n];
            assert_eq!(run(s, &mut m, v.dims), vxp_result::Ok);
            assert!(m.contains(&1), "job {j} segments nothing");
            // SAFETY: a live session, freed once.
            unsafe { vxp_session_free(s) };
            m
        })
        .collect();

    // Sessions a canceller may reach: a session leaves this list (under the lock) before it is freed.
    let live: Arc<Mutex<Vec<usize>>> = Arc::default();
    let (ok, cancelled, churned) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let workers_left = Arc::new(AtomicUsize::new(cfg.threads));
    // Every worker has its sessions once this opens; the engine is freed then, while they run.
    let opened = Arc::new(Barrier::new(cfg.threads + 2));
    let e = Ptr(e);
    std::thread::scope(|scope| {
        let (dd, e) = (&d, &e);
        let churner = {
            let (opened, churned) = (opened.clone(), churned.clone());
            scope.spawn(move || {
                // Sessions created and freed (with a prompt) while the workers' first runs are under way.
                opened.wait();
                for _ in 0..CHURN {
                    let s = session(e.0, &dd.0);
                    prompt(s, 0);
                    // SAFETY: a live session, freed once.
                    unsafe { vxp_session_free(s) };
                    churned.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let canceller = {
            let (live, left, cancels) = (live.clone(), workers_left.clone(), cfg.cancels);
            scope.spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64;
                let mut sent = 0;
                while left.load(Ordering::SeqCst) > 0 && sent < cancels {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    {
                        let l = live.lock().unwrap();
                        if !l.is_empty() {
                            let s = l[(x % l.len() as u64) as usize];
                            // SAFETY: in the list, so not freed while the lock is held.
                            assert_eq!(unsafe { vxp_session_cancel(s as *const vxp_session) }, vxp_result::Ok);
                            sent += 1;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(100 + x % 400));
                }
            })
        };
        let workers: Vec<_> = (0..cfg.threads)
            .map(|t| {
                let (live, ok, cancelled, left, opened, expected) =
                    (live.clone(), ok.clone(), cancelled.clone(), workers_left.clone(), opened.clone(), &expected);
                scope.spawn(move || {
                    let sessions: Vec<Ptr<vxp_session>> =
                        (0..cfg.sessions_per_thread).map(|_| Ptr(session(e.0, &dd.0))).collect();
                    live.lock().unwrap().extend(sessions.iter().map(|s| s.0 as usize));
                    opened.wait();
                    let mut mask = vec![0u8; n];
                    for r in 0..cfg.rounds {
                        for (i, s) in sessions.iter().enumerate() {
                            let j = (t + i + r) % JOBS.len();
                            prompt(s.0, j);
                            loop {
                                mask.fill(0xEE);
                                match run(s.0, &mut mask, v.dims) {
                                    vxp_result::Ok => {
                                        assert!(
                                            mask == expected[j],
                                            "thread {t} session {i} job {j}: mask differs from the serial run"
                                        );
                                        ok.fetch_add(1, Ordering::SeqCst);
                                        break;
                                    }
                                    vxp_result::Cancelled => {
                                        assert!(mask.iter().all(|&m| m == 0xEE), "a cancelled run wrote the mask");
                                        cancelled.fetch_add(1, Ordering::SeqCst);
                                    }
                                    other => panic!("thread {t} session {i} job {j}: {other:?}"),
                                }
                            }
                        }
                    }
                    for s in sessions {
                        live.lock().unwrap().retain(|&x| x != s.0 as usize);
                        // SAFETY: out of the canceller's list, so no other thread holds it; freed once.
                        unsafe { vxp_session_free(s.0) };
                    }
                    left.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        opened.wait();
        // Once the churn is over, free the engine under the running sessions.
        churner.join().unwrap();
        // SAFETY: no thread uses the engine handle any more (sessions hold their own reference).
        unsafe { vxp_engine_free(e.0) };
        for w in workers {
            w.join().unwrap();
        }
        canceller.join().unwrap();
    });
    done.store(true, Ordering::SeqCst);
    Outcome {
        runs_ok: ok.load(Ordering::SeqCst),
        runs_cancelled: cancelled.load(Ordering::SeqCst),
        sessions_churned: churned.load(Ordering::SeqCst),
        seconds: t0.elapsed().as_secs_f64(),
    }
}
