//! Regressions for the defects of `../shared/PROBE.md` (issue #16), each named after its number. Every
//! hostile input is crafted here; each test failed before its fix. D14 (handle misuse) is tested next to the
//! handle registry, in `src/ffi/handle.rs`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;
use voxprompt::io::{self, Limits};
use voxprompt::volume::{Geometry, U8Volume};
use voxprompt::ErrorCode;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vxp-hard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_voxprompt"));
    c.env("VXP_ORT_LIB", ort_lib()).env("VXP_MODEL_DIR", model_dir());
    c
}

/// An uncompressed NIfTI-1 file of a 4×3×2 u8 ramp (value = index), as the library writes it.
fn ramp_nii() -> Vec<u8> {
    let mut m = U8Volume::zeros([4, 3, 2]);
    for (i, v) in m.data.iter_mut().enumerate() {
        *v = i as u8 + 1;
    }
    let mut out = Vec::new();
    io::nifti::write_mask_to(&mut out, false, &m, None, &Geometry::default()).unwrap();
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn put_f32(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_i16(b: &mut [u8], at: usize, v: i16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

fn read_err(path: &Path, limits: &Limits) -> voxprompt::Error {
    let t = Instant::now();
    let e = io::read_volume_with(path, limits).err().unwrap_or_else(|| panic!("{} was accepted", path.display()));
    assert!(t.elapsed().as_secs_f64() < 2.0, "{}: refused only after {:?}", path.display(), t.elapsed());
    e
}

#[test]
fn d01_uncompressed_output_is_written_where_asked() {
    let d = scratch("d01");
    let out = d.join("out.nii");
    let o = cli()
        .args(["segment", data("tests/fixtures/data/example_ct_sm.nii.gz").to_str().unwrap(), "-o"])
        .arg(&out)
        .args(["--box-ijk", "70,29,9,92,51,9", "--policy", "reseed-in-box", "--threads", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listing(&d), ["out.nii"]);
    let m = io::read_volume(&out).unwrap().volume;
    assert_eq!(m.dims, [122, 101, 30]);
    assert!(m.data.iter().filter(|&&v| v == 1).count() > 100);
    // A name with no NIfTI extension is refused before anything runs.
    let o = cli()
        .args(["segment", "in.nii.gz", "-o"])
        .arg(d.join("mask"))
        .args(["--box-ijk", "0,0,0,1,1,0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(listing(&d), ["out.nii"]);
}

#[test]
fn d02_voxels_are_read_from_vox_offset() {
    let d = scratch("d02");
    let plain = ramp_nii();
    let mut padded = plain[..352].to_vec();
    put_f32(&mut padded, 108, 368.0);
    padded.extend_from_slice(&[0xEE; 16]);
    padded.extend_from_slice(&plain[352..]);
    for (name, bytes) in [("pad.nii", padded.clone()), ("pad.nii.gz", gz(&padded))] {
        std::fs::write(d.join(name), bytes).unwrap();
        let v = io::read_volume(&d.join(name)).unwrap().volume;
        assert_eq!(v.data, (1..=24).collect::<Vec<u8>>(), "{name}");
    }
    // Offsets no reader could honour are refused, not read from 352.
    for off in [100.0, -1.0, f32::NAN, 360.5] {
        let mut b = plain.clone();
        put_f32(&mut b, 108, off);
        std::fs::write(d.join("bad.nii"), &b).unwrap();
        assert!(read_err(&d.join("bad.nii"), &Limits::default()).to_string().contains("vox_offset"), "{off}");
    }
}

#[test]
fn d03_a_declared_size_over_the_limit_is_refused_before_reading() {
    let d = scratch("d03");
    let mut b = ramp_nii();
    for (a, n) in [(42, 2200), (44, 2200), (46, 2200)] {
        put_i16(&mut b, a, n);
    }
    let f = d.join("bomb.nii.gz");
    std::fs::write(&f, gz(&b)).unwrap();
    let limits = Limits { max_voxels: 1 << 30, max_bytes: 1 << 30 };
    let e = read_err(&f, &limits);
    assert_eq!(e.code(), ErrorCode::TooLarge, "{e}");
    assert!(e.to_string().contains("[2200, 2200, 2200]"), "{e}");
    // Under the limit but short: refused as truncated, having held only what the stream holds.
    let e = read_err(&f, &Limits { max_voxels: u64::MAX, max_bytes: u64::MAX });
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn d04_the_extension_loop_bomb_is_refused() {
    let d = scratch("d04");
    let mut b = ramp_nii()[..352].to_vec();
    put_f32(&mut b, 108, 1e30);
    b[348] = 1;
    b.extend(std::iter::repeat_n(0u8, 8 << 20));
    let f = d.join("ext.nii.gz");
    std::fs::write(&f, gz(&b)).unwrap();
    let e = read_err(&f, &Limits::default());
    assert!(e.to_string().contains("vox_offset"), "{e}");
}

fn nrrd(dir: &Path, name: &str, header: &str, payload: &[u8]) -> PathBuf {
    let p = dir.join(name);
    let mut b = header.as_bytes().to_vec();
    b.extend_from_slice(payload);
    std::fs::write(&p, b).unwrap();
    p
}

#[test]
fn d05_nrrd_gzip_with_huge_sizes_is_refused_not_aborted() {
    let d = scratch("d05");
    for sizes in ["100000 100000 100000", "2800 2800 2800"] {
        let h = format!("NRRD0004\ntype: short\ndimension: 3\nsizes: {sizes}\nencoding: gzip\n\n");
        let f = nrrd(&d, "huge.nrrd", &h, &gz(&[0u8; 1000]));
        let e = read_err(&f, &Limits { max_voxels: 1 << 30, max_bytes: 1 << 30 });
        assert_eq!(e.code(), ErrorCode::TooLarge, "{e}");
    }
    let f = nrrd(&d, "zero.nrrd", "NRRD0004\ntype: short\ndimension: 3\nsizes: 0 101 30\nencoding: raw\n\n", &[0; 8]);
    assert!(read_err(&f, &Limits::default()).to_string().contains("size \"0\""));
}

#[test]
fn d06_nrrd_data_files_stay_in_the_header_folder_and_are_regular() {
    let d = scratch("d06");
    let h =
        |f: &str| format!("NRRD0004\ntype: short\ndimension: 3\nsizes: 122 101 30\nencoding: raw\ndata file: {f}\n\n");
    for f in ["/dev/zero", "../../../../etc/passwd"] {
        let p = nrrd(&d, "x.nhdr", &h(f), &[]);
        assert!(read_err(&p, &Limits::default()).to_string().contains("header's folder"), "{f}");
    }
    assert!(Command::new("mkfifo").arg(d.join("fifo.raw")).status().unwrap().success());
    let p = nrrd(&d, "x.nhdr", &h("fifo.raw"), &[]);
    assert!(read_err(&p, &Limits::default()).to_string().contains("not a regular file"));
    // A genuine detached file next to its header still reads.
    std::fs::write(d.join("ok.raw"), vec![0u8; 122 * 101 * 30 * 2]).unwrap();
    let p = nrrd(&d, "ok.nhdr", &h("ok.raw"), &[]);
    assert_eq!(io::read_volume(&p).unwrap().volume.dims, [122, 101, 30]);
}

#[test]
fn d07_a_seed_mask_of_many_values_is_refused_while_counting() {
    let d = scratch("d07");
    let input = data("tests/fixtures/data/example_ct_sm.nii.gz");
    let v = io::read_volume(&input).unwrap();
    // Every voxel a different value: 369 660 objects.
    let values: Vec<u8> = (0..v.volume.data.len() / 2).flat_map(|i| ((i % 30000) as i16 + 1).to_ne_bytes()).collect();
    let seed = voxprompt::volume::Volume { data: values, ..v.volume };
    assert_eq!(seed.dtype, voxprompt::volume::DType::I16);
    let mut bytes = Vec::new();
    // The library writes u8 and f32 only: take its header and make it int16 by hand.
    let mut h = v.nifti_header.clone().unwrap();
    h.datatype = 4;
    h.bitpix = 16;
    let mask = U8Volume::zeros(seed.dims);
    io::nifti::write_mask_to(&mut bytes, false, &mask, Some(&h), &seed.geometry).unwrap();
    let mut b = bytes[..352].to_vec();
    put_i16(&mut b, 70, 4);
    put_i16(&mut b, 72, 16);
    b.extend_from_slice(&seed.data);
    std::fs::write(d.join("seed.nii"), b).unwrap();
    let t = Instant::now();
    let o = cli()
        .args(["segment", input.to_str().unwrap(), "-o"])
        .arg(d.join("o.nii.gz"))
        .arg("--seed-mask")
        .arg(d.join("seed.nii"))
        .args(["--model", "/nonexistent"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("more than 255 distinct"), "{err}");
    assert!(t.elapsed().as_secs_f64() < 5.0, "{:?}", t.elapsed());
    assert_eq!(listing(&d), ["seed.nii"]);
}

#[test]
fn d08_a_planted_link_is_never_written_through() {
    let d = scratch("d08");
    std::fs::write(d.join("victim.txt"), "VICTIM").unwrap();
    std::os::unix::fs::symlink(d.join("victim.txt"), d.join("out.nii.gz")).unwrap();
    io::nifti::write_mask(&d.join("out.nii.gz"), &U8Volume::zeros([2, 2, 2]), None, &Geometry::default()).unwrap();
    assert_eq!(std::fs::read_to_string(d.join("victim.txt")).unwrap(), "VICTIM");
    assert!(std::fs::symlink_metadata(d.join("out.nii.gz")).unwrap().is_file(), "the link is replaced, not followed");
    assert_eq!(listing(&d), ["out.nii.gz", "victim.txt"]);
}

#[test]
fn d09_a_bad_output_fails_before_anything_is_read_and_leaves_nothing() {
    let d = scratch("d09");
    std::fs::create_dir(d.join("cdir")).unwrap();
    for (flag, name) in [("--confidence", "cdir"), ("--png", "cdir"), ("-o", "cdir")] {
        let mut c = cli();
        c.args(["segment", data("tests/fixtures/data/example_ct_sm.nii.gz").to_str().unwrap()]);
        if flag != "-o" {
            c.arg("-o").arg(d.join("out.nii.gz"));
        }
        let o = c.arg(flag).arg(d.join(name)).args(["--box-ijk", "70,29,9,92,51,9"]).output().unwrap();
        assert_ne!(o.status.code(), Some(0));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(listing(&d), ["cdir"], "{flag}: {err}");
    }
}

#[test]
fn d10_model_files_stay_inside_their_package() {
    let d = scratch("d10");
    let pkg = d.join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    let text = std::fs::read_to_string(model_dir().join("manifest.toml")).unwrap();
    std::fs::write(pkg.join("manifest.toml"), &text).unwrap();
    let p = voxprompt::model::Package::open(&pkg).unwrap();
    for f in ["../outside.onnx", "/etc/passwd", "/dev/zero"] {
        let e = p.verified_file(f, "00").unwrap_err();
        assert_eq!(e.code(), ErrorCode::ModelContract, "{f}: {e}");
        assert!(!e.to_string().contains("sha256 is"), "no hash oracle: {e}");
    }
    std::os::unix::fs::symlink("/dev/zero", pkg.join("zero.onnx")).unwrap();
    assert!(Command::new("mkfifo").arg(pkg.join("fifo.onnx")).status().unwrap().success());
    for f in ["zero.onnx", "fifo.onnx"] {
        let e = p.verified_file(f, "00").unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{f}: {e}");
    }
    // D13d: a broken manifest is one line.
    std::fs::write(pkg.join("manifest.toml"), &text[..500]).unwrap();
    let e = voxprompt::model::Package::open(&pkg).err().unwrap().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
fn d11_the_gzip_checksum_is_verified() {
    let d = scratch("d11");
    let good = gz(&ramp_nii());
    let n = good.len();
    let mut crc = good.clone();
    crc[n - 8] ^= 1;
    let mut size = good.clone();
    size[n - 2] ^= 1;
    for (name, bytes) in [("cut.nii.gz", good[..n - 8].to_vec()), ("crc.nii.gz", crc), ("isize.nii.gz", size)] {
        std::fs::write(d.join(name), bytes).unwrap();
        let e = read_err(&d.join(name), &Limits::default());
        assert!(e.to_string().contains("gzip"), "{name}: {e}");
    }
    std::fs::write(d.join("good.nii.gz"), &good).unwrap();
    assert!(io::read_volume(&d.join("good.nii.gz")).is_ok());
}

#[test]
fn d13_names_codes_and_messages() {
    let d = scratch("d13");
    // (a) an upper-case name reads.
    std::fs::copy(data("tests/fixtures/data/example_ct_sm.nii.gz"), d.join("CT.NII.GZ")).unwrap();
    assert_eq!(io::read_volume(&d.join("CT.NII.GZ")).unwrap().volume.dims, [122, 101, 30]);
    // (e) dim[1] = 0 is called dim[1], with no Rust Debug text.
    let mut b = ramp_nii();
    put_i16(&mut b, 42, 0);
    std::fs::write(d.join("dim.nii"), &b).unwrap();
    let e = read_err(&d.join("dim.nii"), &Limits::default()).to_string();
    assert!(e.contains("dim[1] = 0") && !e.contains("Custom {"), "{e}");
    // (c) a header with an infinite spacing is a file problem (exit 1), like any other bad header.
    let mut b = ramp_nii();
    put_f32(&mut b, 80, f32::INFINITY);
    put_i16(&mut b, 254, 0);
    std::fs::write(d.join("inf.nii"), &b).unwrap();
    assert_eq!(read_err(&d.join("inf.nii"), &Limits::default()).code(), ErrorCode::Io);
    // (b) --cache-mb 0 is a bad argument: exit 2.
    let o = cli()
        .args(["segment", data("tests/fixtures/data/example_ct_sm.nii.gz").to_str().unwrap(), "-o"])
        .arg(d.join("o.nii.gz"))
        .args(["--box-ijk", "70,29,9,92,51,9", "--cache-mb", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn d12_onnx_runtime_records_no_telemetry() {
    let d = scratch("d12");
    // The text encoder loads ONNX Runtime and runs it: any telemetry file would land under the cache dir.
    let o = cli()
        .args(["concept", "liver", "left kiddney"])
        .env("XDG_CACHE_HOME", d.join("cache"))
        .env("HOME", &d)
        .env_remove("ORT_DISABLE_TELEMETRY")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let files: Vec<_> = walk(&d);
    assert!(files.is_empty(), "telemetry written: {files:?}");
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn scl_slope_and_inter_are_applied() {
    let d = scratch("scl");
    let mut b = ramp_nii();
    put_f32(&mut b, 112, 2.0);
    put_f32(&mut b, 116, -1024.0);
    std::fs::write(d.join("s.nii"), &b).unwrap();
    let v = io::read_volume(&d.join("s.nii")).unwrap().volume;
    assert_eq!(v.to_f64().unwrap()[..3], [-1022.0, -1020.0, -1018.0]);
}
