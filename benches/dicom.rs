//! DICOM decoding cost in one invocation (`cargo bench --bench dicom`, needs `make setup`): TotalSegmentator
//! case B (20 slices of 512 × 512, JPEG 2000 lossless) read as a series, against its headers alone and
//! against reading the NIfTI mask of the same grid (uint8, gzip). Median of 5 runs each; ms per slice and
//! ratios.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use voxprompt::io::{self, dicom, Limits};

fn median(mut f: impl FnMut()) -> Duration {
    let mut t: Vec<Duration> = (0..5)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed()
        })
        .collect();
    t.sort();
    t[2]
}

fn main() {
    let series = common::root().join("data/totalsegmentator/example_ct_dicom");
    let mask = common::root().join("data/totalsegmentator/example_seg_dicom.nii.gz");
    assert!(series.exists() && mask.exists(), "case B is missing: run `make setup` first");
    let inputs: Vec<PathBuf> = vec![series];
    let n = dicom::list_series(&inputs).unwrap()[0].files as f64;
    let limits = Limits::default();
    let whole = median(|| {
        std::hint::black_box(dicom::read_series(&inputs, None, &limits).unwrap());
    });
    let headers = median(|| {
        std::hint::black_box(dicom::list_series(&inputs).unwrap());
    });
    let nifti = median(|| {
        std::hint::black_box(io::read_volume(&mask).unwrap());
    });
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("machine: {}", common::machine());
    println!("case B: {n} slices of 512 x 512, JPEG 2000 lossless; median of 5");
    println!("  read as a series (headers, decode, rescale): {:8.1} ms, {:6.2} ms per slice", ms(whole), ms(whole) / n);
    println!(
        "  headers only (list_series):                  {:8.1} ms, {:6.2} ms per slice",
        ms(headers),
        ms(headers) / n
    );
    println!("  the same grid as NIfTI (uint8 .nii.gz):      {:8.1} ms, {:6.2} ms per slice", ms(nifti), ms(nifti) / n);
    println!(
        "  ratios: series / headers {:.1}x, series / NIfTI {:.1}x",
        whole.as_secs_f64() / headers.as_secs_f64(),
        whole.as_secs_f64() / nifti.as_secs_f64()
    );
}
