//! DICOM series in (#15): TotalSegmentator case B, a real scanner series of 20 JPEG 2000 lossless slices,
//! read exactly as pydicom reads it, on its real geometry; the same slices as one multi-frame instance read
//! the same; broken series refused with the file named.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
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
    // A file of the other series cut in its pixel data: each file is read once, whole, yet one whose series
    // is not wanted counts by its header only, as before; its own series is refused naming it.
    let other = two.join(format!("1-{}", case_b_files()[5].file_name().unwrap().to_string_lossy()));
    let bytes = std::fs::read(&other).unwrap();
    std::fs::write(&other, &bytes[..bytes.len() - 1000]).unwrap();
    let v = dicom::read_series(std::slice::from_ref(&two), Some(uids[0]), &Limits::default()).unwrap();
    let digest: String = Sha256::digest(&v.data).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, CASE_B_SHA256);
    let e = err_of(&two, Some(uids[1]));
    assert!(e.to_string().contains(&other.display().to_string()), "{e}");

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

/// Case B's slices in position order (the series' k): each file's ImagePositionPatient, its one JPEG 2000
/// fragment, and its stored values (HU + 1024, as the files store them under slope 1, intercept −1024).
struct Frames {
    positions: Vec<[f64; 3]>,
    fragments: Vec<Vec<u8>>,
    stored: Vec<Vec<u16>>,
}

fn case_b_frames() -> Frames {
    let (series, source) = dicom::read_series_with_source(&[data(CASE_B)], None, &Limits::default()).unwrap();
    let n = series.dims[0] * series.dims[1];
    let hu: Vec<i16> = series.data.chunks_exact(2).map(|b| i16::from_ne_bytes([b[0], b[1]])).collect();
    let by_uid: std::collections::HashMap<String, Vec<u8>> = case_b_files()
        .iter()
        .map(|p| {
            let obj = dicom_object::open_file(p).unwrap();
            let uid = obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_owned();
            let fragments = obj.element(tags::PIXEL_DATA).unwrap().value().fragments().unwrap().to_vec();
            assert_eq!(fragments.len(), 1, "{}", p.display());
            (uid, fragments.into_iter().next().unwrap())
        })
        .collect();
    Frames {
        positions: source.instances.iter().map(|i| i.position).collect(),
        fragments: source.instances.iter().map(|i| by_uid[&i.sop_instance_uid].clone()).collect(),
        stored: hu.chunks_exact(n).map(|s| s.iter().map(|&v| (v + 1024) as u16).collect()).collect(),
    }
}

/// How one multi-frame test file is made from case B.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Enhanced CT, native pixels, rescale shared, frames shuffled with their positions per frame.
    EnhancedNative,
    /// Enhanced CT, case B's JPEG 2000 fragments one per frame, rescale per frame, frames shuffled.
    EnhancedJ2k,
    /// A legacy multi-frame: one ImagePositionPatient (the first frame's), SpacingBetweenSlices, frames in
    /// position order.
    Legacy,
}

/// The file position `f` holds series slice `order(f)`: 7 is prime to 20, so every slice once.
fn order(f: usize, n: usize) -> usize {
    (f * 7 + 3) % n
}

/// One multi-frame object of case B's 20 slices; `edit` may change it before it is written to `path`.
fn write_multiframe(frames: &Frames, kind: Kind, path: &Path, edit: impl FnOnce(&mut InMemDicomObject)) {
    use dicom_core::value::{DataSetSequence, PixelFragmentSequence, PrimitiveValue, Value};
    use dicom_core::{DataElement, VR};
    let n = frames.positions.len();
    let el = |tag, vr, v: PrimitiveValue| DataElement::new(tag, vr, v);
    let strs = |v: &[f64]| PrimitiveValue::Strs(v.iter().map(|x| x.to_string()).collect());
    let seq = |tag, items: Vec<InMemDicomObject>| DataElement::new(tag, VR::SQ, DataSetSequence::from(items));
    let item = |e: Vec<DataElement<InMemDicomObject>>| InMemDicomObject::from_element_iter(e);
    let shuffled: Vec<usize> = (0..n).map(|f| if kind == Kind::Legacy { f } else { order(f, n) }).collect();
    let rescale = || {
        item(vec![
            el(tags::RESCALE_INTERCEPT, VR::DS, "-1024".into()),
            el(tags::RESCALE_SLOPE, VR::DS, "1".into()),
            el(tags::RESCALE_TYPE, VR::LO, "HU".into()),
        ])
    };
    let (sop_class, ts) = match kind {
        Kind::Legacy => ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1"),
        Kind::EnhancedNative => ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.1.2.1"),
        Kind::EnhancedJ2k => ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.1.2.4.90"),
    };
    let mut obj = item(vec![
        el(tags::SOP_CLASS_UID, VR::UI, sop_class.into()),
        el(tags::SOP_INSTANCE_UID, VR::UI, "2.25.1501".into()),
        el(tags::MODALITY, VR::CS, "CT".into()),
        el(tags::SERIES_INSTANCE_UID, VR::UI, "2.25.1502".into()),
        el(tags::NUMBER_OF_FRAMES, VR::IS, n.to_string().into()),
        el(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16)),
        el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2".into()),
        el(tags::ROWS, VR::US, PrimitiveValue::from(512u16)),
        el(tags::COLUMNS, VR::US, PrimitiveValue::from(512u16)),
        el(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16)),
        el(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16)),
        el(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16)),
        el(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0u16)),
    ]);
    let orientation = strs(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    let spacing = strs(&[0.9765625, 0.9765625]);
    if kind == Kind::Legacy {
        obj.put(el(tags::IMAGE_POSITION_PATIENT, VR::DS, strs(&frames.positions[0])));
        obj.put(el(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, orientation));
        obj.put(el(tags::PIXEL_SPACING, VR::DS, spacing));
        obj.put(el(tags::SPACING_BETWEEN_SLICES, VR::DS, "2".into()));
        obj.put(el(tags::RESCALE_INTERCEPT, VR::DS, "-1024".into()));
        obj.put(el(tags::RESCALE_SLOPE, VR::DS, "1".into()));
    } else {
        let mut shared = vec![
            seq(
                tags::PIXEL_MEASURES_SEQUENCE,
                vec![item(vec![
                    el(tags::PIXEL_SPACING, VR::DS, spacing),
                    el(tags::SLICE_THICKNESS, VR::DS, "3".into()),
                ])],
            ),
            seq(
                tags::PLANE_ORIENTATION_SEQUENCE,
                vec![item(vec![el(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, orientation)])],
            ),
        ];
        if kind == Kind::EnhancedNative {
            shared.push(seq(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, vec![rescale()]));
        }
        obj.put(seq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![item(shared)]));
        let per_frame = shuffled
            .iter()
            .map(|&k| {
                let mut groups = vec![seq(
                    tags::PLANE_POSITION_SEQUENCE,
                    vec![item(vec![el(tags::IMAGE_POSITION_PATIENT, VR::DS, strs(&frames.positions[k]))])],
                )];
                if kind == Kind::EnhancedJ2k {
                    groups.push(seq(tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE, vec![rescale()]));
                }
                item(groups)
            })
            .collect();
        obj.put(seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, per_frame));
    }
    if kind == Kind::EnhancedJ2k {
        let fragments: Vec<Vec<u8>> = shuffled.iter().map(|&k| frames.fragments[k].clone()).collect();
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            Value::PixelSequence(PixelFragmentSequence::new(Vec::<u32>::new(), fragments)),
        ));
    } else {
        let values: Vec<u16> = shuffled.iter().flat_map(|&k| frames.stored[k].iter().copied()).collect();
        obj.put(el(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(values.into())));
    }
    edit(&mut obj);
    let meta = dicom_object::meta::FileMetaTableBuilder::new().transfer_syntax(ts);
    obj.with_meta(meta).unwrap().write_to_file(path).unwrap();
}

#[test]
fn a_multiframe_instance_reads_as_the_series_it_holds() {
    let frames = case_b_frames();
    let series = io::read_volume(&data(CASE_B)).unwrap().volume;
    let dir = scratch("multiframe");
    for (kind, name) in [(Kind::EnhancedNative, "native"), (Kind::EnhancedJ2k, "j2k"), (Kind::Legacy, "legacy")] {
        // Each file alone in its folder: a series of one instance, read as the CLI reads an input file.
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        let file = sub.join("multiframe.dcm");
        write_multiframe(&frames, kind, &file, |_| {});
        let loaded = io::read_volume(&file).unwrap();
        let v = loaded.volume;
        assert_eq!((v.dims, v.dtype), (series.dims, DType::I16), "{name}");
        let digest: String = Sha256::digest(&v.data).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, CASE_B_SHA256, "{name}: voxels differ from the series'");
        for r in 0..4 {
            for c in 0..4 {
                let (a, b) = (v.geometry.ijk_to_ras[r][c], series.geometry.ijk_to_ras[r][c]);
                assert!((a - b).abs() < 1e-6, "{name}: affine [{r}][{c}] {a} vs {b}");
            }
        }
        // What a DICOM SEG derived from it references: the one instance, frame by frame.
        let source = loaded.dicom.unwrap();
        assert!(source.instances.iter().all(|i| i.sop_instance_uid == "2.25.1501"), "{name}");
        let numbers: Vec<u32> = source.instances.iter().map(|i| i.frame.unwrap()).collect();
        let expected: Vec<u32> = (0..20)
            .map(|k| if kind == Kind::Legacy { k } else { (0..20).position(|f| order(f, 20) == k).unwrap() } as u32 + 1)
            .collect();
        assert_eq!(numbers, expected, "{name}");
        let listed = dicom::list_series(std::slice::from_ref(&sub)).unwrap();
        assert_eq!((listed.len(), listed[0].files), (1, 1), "{name}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn broken_multiframe_instances_are_refused_with_the_file_and_frame() {
    let frames = case_b_frames();
    let dir = scratch("multiframe-broken");
    let err = |kind, name: &str, edit: &dyn Fn(&mut InMemDicomObject)| {
        let file = dir.join(name);
        write_multiframe(&frames, kind, &file, edit);
        let e = dicom::read_series(std::slice::from_ref(&file), None, &Limits::default()).unwrap_err();
        let m = e.to_string();
        assert!(m.contains(name), "{m}");
        m
    };
    // Frame 5's position removed: the file and the frame named.
    let m = err(Kind::EnhancedNative, "no-position.dcm", &|obj| {
        let mut groups = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).unwrap().items().unwrap().to_vec();
        groups[4].remove_element(tags::PLANE_POSITION_SEQUENCE);
        obj.put(dicom_core::DataElement::new(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            dicom_core::VR::SQ,
            dicom_core::value::DataSetSequence::from(groups),
        ));
    });
    assert!(m.contains("frame 5: no ImagePositionPatient"), "{m}");
    // More frames declared than the pixel data holds, native and compressed: refused before decoding.
    let more = |obj: &mut InMemDicomObject| {
        obj.put_str(tags::NUMBER_OF_FRAMES, dicom_core::VR::IS, "21");
        // A 21st frame's groups, 2 mm above case B's top slice.
        let mut groups = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).unwrap().items().unwrap().to_vec();
        let mut extra = groups[0].clone();
        let top = InMemDicomObject::from_element_iter([dicom_core::DataElement::new(
            tags::IMAGE_POSITION_PATIENT,
            dicom_core::VR::DS,
            dicom_core::value::PrimitiveValue::Strs(
                ["-249.51171875", "-437.51171875", "-764.5"].map(String::from).into_iter().collect(),
            ),
        )]);
        extra.put(dicom_core::DataElement::new(
            tags::PLANE_POSITION_SEQUENCE,
            dicom_core::VR::SQ,
            dicom_core::value::DataSetSequence::from(vec![top]),
        ));
        groups.push(extra);
        obj.put(dicom_core::DataElement::new(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            dicom_core::VR::SQ,
            dicom_core::value::DataSetSequence::from(groups),
        ));
    };
    let m = err(Kind::EnhancedNative, "short-native.dcm", &more);
    assert!(m.contains("pixel data holds 10485760 bytes; 21 frame(s)"), "{m}");
    let m = err(Kind::EnhancedJ2k, "short-j2k.dcm", &more);
    assert!(m.contains("21 frame(s) in 20 fragment(s)"), "{m}");
    // A legacy multi-frame without SpacingBetweenSlices: where its frames lie is not stated.
    let m = err(Kind::Legacy, "no-step.dcm", &|obj| {
        obj.remove_element(tags::SPACING_BETWEEN_SLICES);
    });
    assert!(m.contains("no positive SpacingBetweenSlices"), "{m}");
    // Two frames at one position: named by file and frame.
    let m = err(Kind::EnhancedNative, "twice.dcm", &|obj| {
        let mut groups = obj.get(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).unwrap().items().unwrap().to_vec();
        groups[1] = groups[0].clone();
        obj.put(dicom_core::DataElement::new(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            dicom_core::VR::SQ,
            dicom_core::value::DataSetSequence::from(groups),
        ));
    });
    assert!(m.contains("lies at the position of") && m.contains("frame"), "{m}");
    std::fs::remove_dir_all(dir).unwrap();
}
