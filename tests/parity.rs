//! Parity with the PyTorch reference pipeline (CVPR24_LiteMedSAM_infer.py), from fixtures recorded once by
//! scripts/reference/record_parity.py (tests/fixtures/parity/README.md). Torch is not needed here.

mod common;

use common::*;
use ndarray::{Array1, Array2, Array3};
use serde_json::Value;
use voxprompt::io::read_volume;
use voxprompt::model::{Prompt2d, SliceModel, Worker};
use voxprompt::pipeline::slice::frame::Frame;
use voxprompt::volume::intensity::{map_to_u8, IntensityMapping};
use voxprompt::volume::BoxIjk;

fn index() -> Value {
    let p = root().join("tests/fixtures/parity/index.json");
    serde_json::from_str(&std::fs::read_to_string(&p).expect("index.json")).expect("valid json")
}

fn fixture(name: &str) -> std::path::PathBuf {
    root().join("tests/fixtures/parity").join(name)
}

fn mapping(modality: &str) -> IntensityMapping {
    match modality {
        "CT" => IntensityMapping::CT,
        "MR" => IntensityMapping::MR,
        m => panic!("modality {m}"),
    }
}

fn u(v: &Value) -> usize {
    v.as_u64().expect("unsigned") as usize
}

#[test]
fn intensity_mapping_is_bit_identical() {
    for vol in index()["volumes"].as_array().unwrap() {
        let loaded = read_volume(&data(vol["source"].as_str().unwrap())).unwrap().volume;
        let ours = map_to_u8(&loaded.view().unwrap(), mapping(vol["modality"].as_str().unwrap())).unwrap();
        let want: Array3<u8> = npz(&fixture(vol["file"].as_str().unwrap())).by_name("vol").unwrap();
        let z0 = u(&vol["stored_z_range"][0]);
        let n = ours.slice_len();
        let got = &ours.data[z0 * n..z0 * n + want.len()];
        let diff = got.iter().zip(want.iter()).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 0, "{}: {diff} voxels differ from the reference uint8 volume", vol["id"]);
    }
}

struct Slice {
    id: String,
    frame: Frame,
    arrays: ndarray_npy::NpzReader<std::fs::File>,
    meta: Value,
}

fn slices() -> Vec<Slice> {
    index()["slices2d"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let hw = &s["original_hw"];
            Slice {
                id: s["id"].as_str().unwrap().to_string(),
                frame: Frame::new(u(&hw[0]), u(&hw[1]), 256),
                arrays: npz(&fixture(s["file"].as_str().unwrap())),
                meta: s.clone(),
            }
        })
        .collect()
}

#[test]
fn slice_preprocessing_matches_reference() {
    for mut s in slices() {
        let image: Array2<u8> = s.arrays.by_name("image_u8").unwrap();
        let resized: Array2<u8> = s.arrays.by_name("resized_u8").unwrap();
        let enc_in: Array3<f32> = s.arrays.by_name("encoder_input").unwrap();
        assert_eq!((s.frame.new_h, s.frame.new_w), resized.dim(), "{}: resized size", s.id);
        let mut ours = vec![0u8; resized.len()];
        s.frame.resize_u8(image.as_slice().unwrap(), &mut ours);
        assert_eq!(ours.as_slice(), resized.as_slice().unwrap(), "{}: INTER_AREA resize differs", s.id);
        let mut scratch = Vec::new();
        let mut input = vec![0f32; 3 * 256 * 256];
        s.frame.encoder_input(image.as_slice().unwrap(), &mut scratch, &mut input);
        let d = max_abs_diff(&input, enc_in.as_slice().unwrap());
        assert!(d <= 1e-6, "{}: encoder input max |Δ| {d}", s.id);
    }
}

fn prompt_from_tokens(coords: &Array2<f32>, labels: &Array1<f32>) -> Prompt2d {
    let mut p = Prompt2d::default();
    let mut corners = [0f32; 4];
    for (c, &l) in coords.outer_iter().zip(labels.iter()) {
        match l as i32 {
            0 | 1 => p.points.push((c[0], c[1], l)),
            2 => corners[..2].copy_from_slice(&[c[0], c[1]]),
            3 => {
                corners[2..].copy_from_slice(&[c[0], c[1]]);
                p.bbox = Some(corners);
            }
            -1 => {}
            other => panic!("label {other}"),
        }
    }
    p
}

/// The package with `encoder_export` (the graph as exported from PyTorch) in the `encoder` slot.
fn export_graph_package() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vxp-parity-{}-export", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let src = model_dir();
    for f in ["encoder.onnx", "encoder-fused.onnx", "decoder.onnx"] {
        std::os::unix::fs::symlink(src.join(f), d.join(f)).unwrap();
    }
    let manifest = std::fs::read_to_string(src.join("manifest.toml")).unwrap();
    let swapped = manifest
        .replace("[graphs.encoder]", "[graphs.encoder_fused]")
        .replace("[graphs.encoder_export]", "[graphs.encoder]")
        .replace("derived_from = \"encoder_export\"", "derived_from = \"encoder\"");
    assert!(swapped.contains("[graphs.encoder_fused]") && swapped.contains("file = \"encoder.onnx\""));
    std::fs::write(d.join("manifest.toml"), swapped).unwrap();
    d
}

/// The engine runs `encoder-fused.onnx`, rewritten from the export by models/litemedsam/export/fuse_encoder.py;
/// the rewrite only moves data, so every embedding must be the export's, bit for bit.
#[test]
fn fused_encoder_is_bit_identical_to_the_export() {
    let export = voxprompt::engine::Engine::new(&voxprompt::engine::EngineOptions {
        ort_library: Some(ort_lib()),
        model_dirs: vec![export_graph_package()],
        session: voxprompt::model::SessionConfig { threads: 2, ..Default::default() },
        brain_atlas: None,
    })
    .unwrap();
    let (fused, export) = (sam2d(&ENGINE), sam2d(&export));
    let mut n = 0;
    for mut s in slices() {
        let enc_in: Array3<f32> = s.arrays.by_name("encoder_input").unwrap();
        let (mut ea, mut eb) = (fused.embedding_layout().zeros(), export.embedding_layout().zeros());
        fused.encode(Worker::Index(0), enc_in.as_slice().unwrap(), &mut ea).unwrap();
        export.encode(Worker::Index(0), enc_in.as_slice().unwrap(), &mut eb).unwrap();
        let (a, b) = (&ea.tensors[0], &eb.tensors[0]);
        let differ = a.iter().zip(b.iter()).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
        println!(
            "{}: fused vs export: {differ} of {} values differ, max |Δ| {:.2e}",
            s.id,
            a.len(),
            max_abs_diff(a, b)
        );
        assert_eq!(differ, 0, "{}: the fused encoder is not bit-identical to the export", s.id);
        n += 1;
    }
    assert!(n >= 4, "only {n} fixture slices");
}

#[test]
fn encoder_and_decoder_match_torch() {
    let model = sam2d(&ENGINE);
    for mut s in slices() {
        let enc_in: Array3<f32> = s.arrays.by_name("encoder_input").unwrap();
        let mut emb = model.embedding_layout().zeros();
        model.encode(Worker::Index(0), enc_in.as_slice().unwrap(), &mut emb).unwrap();
        if s.meta["has_embedding"].as_bool().unwrap() {
            let want: Array3<f32> = s.arrays.by_name("embedding_torch").unwrap();
            let d = max_abs_diff(&emb.tensors[0], want.as_slice().unwrap());
            println!("{}: embedding max |Δ| vs torch {d:.2e}", s.id);
            assert!(d <= 1e-4, "{}: embedding max |Δ| {d}", s.id);
        }
        for p in s.meta["prompts"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            let coords: Array2<f32> = s.arrays.by_name(&format!("{name}_coords")).unwrap();
            let labels: Array1<f32> = s.arrays.by_name(&format!("{name}_labels")).unwrap();
            let mut prompt = prompt_from_tokens(&coords, &labels);
            if p["has_mask_input"].as_f64().unwrap() > 0.0 {
                let m: Array2<f32> = s.arrays.by_name(p["mask_input"].as_str().unwrap()).unwrap();
                prompt.mask = Some(m.into_raw_vec_and_offset().0);
            }
            let out = &model.decode(Worker::Index(0), &emb, std::slice::from_ref(&prompt)).unwrap()[0];
            let want: Array2<f32> = s.arrays.by_name(&format!("{name}_logits")).unwrap();
            let d = max_abs_diff(&out.logits, want.as_slice().unwrap());
            let iou: Array1<f32> = s.arrays.by_name(&format!("{name}_iou")).unwrap();
            let want_mask: Array2<u8> = s.arrays.by_name(&format!("{name}_mask")).unwrap();
            let mut mask = vec![0u8; want_mask.len()];
            s.frame.paint_mask(&out.logits, 1, &mut mask);
            let agree = agreement(&mask, want_mask.as_slice().unwrap());
            println!(
                "{} {name}: logits max |Δ| {d:.2e}, IoU Δ {:.1e}, mask agreement {agree:.6}",
                s.id,
                (out.iou - iou[0]).abs()
            );
            assert!(d <= 1e-3, "{} {name}: logits max |Δ| {d}", s.id);
            assert!((out.iou - iou[0]).abs() <= 1e-3, "{} {name}: IoU {} vs {}", s.id, out.iou, iou[0]);
            assert!(agree >= 0.999, "{} {name}: 2D mask agreement {agree}", s.id);
        }
    }
}

#[test]
fn reference_3d_pipeline_matches_torch_on_real_targets() {
    let idx = index();
    let cases = idx["cases"].as_array().unwrap();
    assert!(cases.len() >= 4, "need at least four real targets");
    let mut rows = Vec::new();
    for c in cases {
        let id = c["id"].as_str().unwrap();
        let vol_meta = idx["volumes"].as_array().unwrap().iter().find(|v| v["id"] == c["volume"]).unwrap();
        let volume = read_volume(&data(vol_meta["source"].as_str().unwrap())).unwrap().volume;
        let labels = read_volume(&data(c["label"].as_str().unwrap())).unwrap().volume.to_f64().unwrap();
        let b: Vec<usize> = c["box3d"].as_array().unwrap().iter().map(u).collect();
        let objects = [(1, BoxIjk { min: [b[0], b[1], b[2]], max: [b[3], b[4], b[5]] })];
        let (mask, report) =
            segment_reference(&volume.view().unwrap(), mapping(c["modality"].as_str().unwrap()), &objects, None)
                .unwrap();
        let torch = &c["runs"]["torch"];
        let want: Array3<u8> = npz(&fixture(torch["file"].as_str().unwrap())).by_name("mask").unwrap();
        let agree = agreement(
            &mask.data.iter().map(|&v| (v > 0) as u8).collect::<Vec<_>>(),
            &want.iter().map(|&v| (v > 0) as u8).collect::<Vec<_>>(),
        );
        let value = c["label_value"].as_f64().unwrap();
        let ours = dice(mask.data.iter().map(|&v| v > 0), labels.iter().map(|&l| l == value));
        let theirs = torch["dice"].as_f64().unwrap();
        assert_eq!(report.stats.slices_encoded, u(&c["slices"]), "{id}: one encoder run per slice");
        rows.push(format!(
            "{id:<16} {:<3} slices {:>3}  agreement {agree:.6}  Dice {ours:.4} (torch {theirs:.4})",
            c["modality"].as_str().unwrap(),
            u(&c["slices"])
        ));
        assert!(agree >= 0.999, "{id}: voxel agreement with the PyTorch reference {agree}");
        assert!(ours >= theirs - 0.002, "{id}: Dice {ours} < reference Dice {theirs} − 0.002");
    }
    println!("target           mod slices   vs PyTorch reference\n{}", rows.join("\n"));
}

#[test]
fn several_objects_match_the_reference_with_each_slice_encoded_once() {
    // scripts/reference/record_multi.py: the reference re-encodes every slice per object.
    let mut z = npz(&fixture("multi_tsA_torch.npz"));
    let want: Array3<u8> = z.by_name("mask").unwrap();
    let boxes: Array2<i64> = z.by_name("boxes").unwrap();
    let objects: Vec<(u8, BoxIjk)> = boxes
        .outer_iter()
        .enumerate()
        .map(|(n, b)| {
            let bbox = BoxIjk {
                min: [b[0] as usize, b[1] as usize, b[2] as usize],
                max: [b[3] as usize, b[4] as usize, b[5] as usize],
            };
            ((n + 1) as u8, bbox)
        })
        .collect();
    let volume = read_volume(&data("data/totalsegmentator/example_ct_sm.nii.gz")).unwrap().volume;
    let (mask, report) = segment_reference(&volume.view().unwrap(), IntensityMapping::CT, &objects, None).unwrap();
    let diff = mask.data.iter().zip(want.iter()).filter(|(a, b)| a != b).count();
    assert_eq!(diff, 0, "{diff} voxels differ from the multi-object reference");
    let union: std::collections::BTreeSet<usize> = objects.iter().flat_map(|o| o.1.min[2]..=o.1.max[2]).collect();
    let visits: usize = objects.iter().map(|o| o.1.max[2] - o.1.min[2] + 1).sum();
    assert_eq!(report.stats.slices_encoded, union.len(), "each slice encoded once");
    assert_eq!(report.stats.decoder_runs, visits);
    println!("{} objects: {} encoder runs instead of the reference's {visits}", objects.len(), union.len());
}

#[test]
fn progress_can_cancel() {
    let volume = read_volume(&data("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap().volume;
    let objects = [(1, BoxIjk { min: [41, 25, 0], max: [105, 86, 29] })];
    let mut calls = 0;
    let mut stop_after_two = |_f: f32| {
        calls += 1;
        calls <= 2
    };
    let e = segment_reference(&volume.view().unwrap(), IntensityMapping::CT, &objects, Some(&mut stop_after_two))
        .err()
        .unwrap();
    assert_eq!(e.code(), voxprompt::ErrorCode::Cancelled);
    assert_eq!(calls, 3);
}
