//! DICOM series in (#15): TotalSegmentator case B, a real scanner series of 20 JPEG 2000 lossless slices,
//! read exactly as pydicom reads it, on its real geometry; broken series refused with the file named.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use sha2::{Digest, Sha256};
use voxprompt::io::{self, dicom, Limits};
use voxprompt::volume::DType;
use voxprompt::ErrorCode;

const CASE_B: &str = "data/totalsegmentator/example_ct_dicom";

/// sha256 of case B as int16 HU, i fastest, slices by position along the normal, as pydicom 3.0.2 with
/// pylibjpeg-openjpeg 2.6.0 decodes it (`pixel_array * RescaleSlope + RescaleIntercept`, files sorted by
/// ImagePositionPatient · normal; run once in a throwaway venv, not in CI).
const CASE_B_SHA256: &str = "0d9f62d8433a424e582d5a4478ba5af0eff3f5c3589fc90af21b0c448fd0ff5e";

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vxp-dicom-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn case_b_files() -> Vec<PathBuf> {
    let mut f: Vec<PathBuf> = std::fs::read_dir(data(CASE_B)).unwrap().map(|e| e.unwrap().path()).collect();
    f.sort();
    f
}

/// A copy of case B with `edit` applied to the list of (name, bytes).
fn copy_with(tag: &str, edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> PathBuf {
    let mut files: Vec<(String, Vec<u8>)> = case_b_files()
        .iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(p).unwrap()))
        .collect();
    edit(&mut files);
    let d = scratch(tag);
    for (name, bytes) in files {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    d
}

fn err_of(dir: &Path, series: Option<&str>) -> voxprompt::Error {
    match dicom::read_series(&[dir.to_path_buf()], series, &Limits::default()) {
        Ok(v) => panic!("{}: read {:?}, expected a refusal", dir.display(), v.dims),
        Err(e) => e,
    }
}

#[test]
fn case_b_is_read_as_pydicom_reads_it_on_the_masks_grid() {
    let v = io::read_volume(&data(CASE_B)).unwrap().volume;
    assert_eq!((v.dims, v.dtype), ([512, 512, 20], DType::I16));
    let digest: String = Sha256::digest(&v.data).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, CASE_B_SHA256, "voxels differ from pydicom's");
    // LPS row direction +x and column direction +y become RAS −R and −A; slices 2 mm apart, upward.
    let m = v.geometry.ijk_to_ras;
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
    assert!(close(m[0][0], -0.9765625) && close(m[1][1], -0.9765625) && close(m[2][2], 2.0), "{m:?}");
    assert!(close(m[0][3], 249.51171875) && close(m[1][3], 437.51171875) && close(m[2][3], -804.5), "{m:?}");
    assert_eq!(v.geometry.spacing, [0.9765625, 0.9765625, 2.0]);
    // TotalSegmentator's mask of this series is the same grid with its rows reversed: it moves onto the
    // series' order exactly, and the liver (5) keeps its voxel count.
    let mask = volume("data/totalsegmentator/example_seg_dicom.nii.gz");
    let moved = voxprompt::volume::regrid::onto_grid(&mask, v.dims, &v.geometry).unwrap();
    let count = |x: &voxprompt::volume::Volume| x.to_f64().unwrap().iter().filter(|&&l| l == 5.0).count();
    assert_eq!(count(&moved), count(&mask));
    assert!(count(&mask) > 300_000);
    // One file of the series names the whole series, read from its folder.
    let one = io::read_volume(&case_b_files()[7]).unwrap().volume;
    assert_eq!(one.data, v.data);
    let listed = dicom::list_series(&[data(CASE_B)]).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].files, listed[0].modality.as_str()), (20, "CT"));
    // Anonymised: no SeriesInstanceUID, so its files make the one series of the empty UID.
    assert_eq!(listed[0].uid, "", "{:?}", listed[0]);
}

#[test]
fn the_order_of_files_does_not_matter_and_non_dicom_files_are_skipped() {
    // Names reversed against the positions, and a README beside them.
    let n = case_b_files().len();
    let d = copy_with("order", |f| {
        for (i, (name, _)) in f.iter_mut().enumerate() {
            *name = format!("slice{:03}.dcm", n - i);
        }
        f.push(("README.txt".into(), b"not a DICOM file".to_vec()));
    });
    let v = dicom::read_series(std::slice::from_ref(&d), None, &Limits::default()).unwrap();
    let digest: String = Sha256::digest(&v.data).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, CASE_B_SHA256);
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn broken_series_are_refused_with_the_file_and_the_problem() {
    // An empty folder, and one with no DICOM file in it.
    let empty = scratch("empty");
    assert!(err_of(&empty, None).to_string().contains("no DICOM files found"));
    std::fs::write(empty.join("notes.txt"), "hello").unwrap();
    assert!(err_of(&empty, None).to_string().contains("no DICOM files found"));

    // A slice missing in the middle: the gap is named, with the files on both sides.
    let gap = copy_with("gap", |f| {
        f.remove(10);
    });
    let e = err_of(&gap, None);
    assert_eq!(e.code(), ErrorCode::Io);
    assert!(e.to_string().contains("1 slice(s) missing"), "{e}");

    // A truncated file: named, nothing read.
    let cut = copy_with("cut", |f| {
        let half = f[3].1.len() / 2;
        f[3].1.truncate(half);
    });
    let e = err_of(&cut, None);
    assert!(e.to_string().contains(&case_b_files()[3].file_name().unwrap().to_string_lossy().into_owned()), "{e}");

    // Two series in one folder (the series twice, rewritten with two SeriesInstanceUIDs; case B has none):
    // without a choice the message lists both; with one, that one is read; an unknown one is refused with
    // the list.
    let two = scratch("two");
    let uids = ["1.2.826.0.1.3680043.10.1", "1.2.826.0.1.3680043.10.2"];
    for (n, uid) in uids.iter().enumerate() {
        for p in case_b_files() {
            let mut obj = dicom_object::open_file(&p).unwrap();
            obj.put_str(dicom_dictionary_std::tags::SERIES_INSTANCE_UID, dicom_core::VR::UI, *uid);
            obj.write_to_file(two.join(format!("{n}-{}", p.file_name().unwrap().to_string_lossy()))).unwrap();
        }
    }
    let e = err_of(&two, None);
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    let m = e.to_string();
    assert!(m.contains("2 series") && m.contains(uids[0]) && m.contains(uids[1]) && m.contains("--series"), "{m}");
    let v = dicom::read_series(std::slice::from_ref(&two), Some(uids[1]), &Limits::default()).unwrap();
    let digest: String = Sha256::digest(&v.data).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, CASE_B_SHA256);
    let e = err_of(&two, Some("1.2.3"));
    assert!(e.to_string().contains("no series \"1.2.3\""), "{e}");

    // Too large for the limits: refused from the headers, before any pixel is decoded.
    let small = Limits { max_voxels: 1 << 20, max_bytes: 1 << 30 };
    let e = dicom::read_series(&[data(CASE_B)], None, &small).unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooLarge);
    // An element that declares 4 GB in a file of 150 kB (found by the fuzzer, also kept in
    // fuzz/regressions/dicom/): dicom-parser would reserve and zero the 4 GB before reading; refused first.
    let mut bomb = std::fs::read(&case_b_files()[0]).unwrap();
    let pixel_data = bomb.windows(6).rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00, b'O', b'B']).unwrap();
    bomb.truncate(pixel_data);
    bomb.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0]);
    bomb.extend_from_slice(&0xFFFF_0000u32.to_le_bytes());
    bomb.extend_from_slice(&[0; 16]);
    let e = dicom::read_instance_from(&bomb, Path::new("bomb.dcm"), &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("element (7FE0,0010) declares 4294901760 bytes, 16 remain"), "{e}");
    let found = std::fs::read(common::root().join("fuzz/regressions/dicom/oom-element-declares-4g")).unwrap();
    let e = dicom::read_instance_from(&found, Path::new("found.dcm"), &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("declares"), "{e}");
    let peak = peak_rss_mb();
    assert!(peak < 1000, "peak RSS {peak} MB");

    for d in [empty, gap, cut, two] {
        std::fs::remove_dir_all(d).unwrap();
    }
}

/// This process's peak RSS (VmHWM), in MB.
fn peak_rss_mb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find(|l| l.starts_with("VmHWM:")).unwrap().split_whitespace().nth(1).unwrap().parse::<u64>().unwrap()
        / 1024
}
