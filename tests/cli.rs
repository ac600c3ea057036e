//! The `voxprompt` CLI as scripts use it (DESIGN §6): real volumes in, masks on the input grid out, a JSON
//! report, one-line errors, no partial files.

mod common;

use std::process::Command;

use common::*;
use voxprompt::io::read_volume;

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_voxprompt"));
    c.env("VXP_ORT_LIB", ort_lib()).env("VXP_MODEL_DIR", model_dir());
    c
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vxp-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn segments_kidney_and_reports_json() {
    let out = tmp("kidney.nii.gz");
    let png = tmp("kidney.png");
    let o = cli()
        .args([
            "segment",
            data("tests/fixtures/data/example_ct_sm.nii.gz").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--reference", data("tests/fixtures/data/example_seg.nii.gz").to_str().unwrap()])
        .args([
            "--reference-label",
            "3",
            "--box-from-reference",
            "--json",
            "--threads",
            "2",
            "--png",
            png.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(r["provider"], "cpu");
    assert_eq!(r["slices_encoded"], 23);
    let dice = r["objects"][0]["dice"].as_f64().unwrap();
    // The PyTorch reference pipeline's Dice on this target is 0.9360 (tests/fixtures/parity).
    assert!(dice >= 0.9360 - 0.002, "Dice {dice}");
    for k in ["encode", "decode", "preprocess", "postprocess", "total"] {
        assert!(r["timings_ms"][k].as_f64().is_some(), "timing {k}");
    }
    let input = read_volume(&data("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap().volume;
    let mask = read_volume(&out).unwrap().volume;
    assert_eq!(mask.dims, input.dims);
    assert_eq!(mask.geometry, input.geometry, "mask keeps the input geometry");
    assert_eq!(mask.data.iter().filter(|&&v| v == 1).count() as u64, r["objects"][0]["voxels"].as_u64().unwrap());
    // The montage is radiological: the left kidney, on the patient's left, is on the image's right half
    // (before, the picture followed the array and showed it on the left). Tiles: one per labelled slice up
    // to 16, an image panel and a confidence panel each.
    let mut reader =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap())).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let tiles = r["objects"][0]["slices"].as_u64().unwrap().min(16) as f64;
    let cols = tiles.sqrt().ceil() as usize;
    let tile_w = info.width as usize / (2 * cols);
    let (mut sum, mut n) = (0.0, 0usize);
    for y in 0..info.height as usize {
        for x in 0..info.width as usize {
            let p = &buf[(y * info.width as usize + x) * 3..][..3];
            // Overlay of label 1 ((grey + [255, 64, 64]) / 2): red well above green, green = blue.
            if x % (2 * tile_w) < tile_w && p[0] as i32 - p[1] as i32 > 60 && p[1] == p[2] {
                sum += (x % (2 * tile_w)) as f64 / tile_w as f64;
                n += 1;
            }
        }
    }
    assert!(n > 100, "{n} overlay pixels");
    assert!(sum / n as f64 > 0.55, "left kidney at {:.2} of the tile's width", sum / n as f64);
}

#[test]
fn several_objects_share_slice_embeddings() {
    let out = tmp("two.nii.gz");
    let o = cli()
        .args([
            "segment",
            data("tests/fixtures/data/example_ct_sm.nii.gz").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--reference", data("tests/fixtures/data/example_seg.nii.gz").to_str().unwrap()])
        .args(["--reference-label", "5", "--reference-label", "3", "--box-from-reference", "--json", "--threads", "2"])
        .args(["--policy", "reference"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // liver spans z 0..29 and kidney_left z 0..22: 30 distinct slices, 53 decoder runs.
    assert_eq!(r["slices_encoded"], 30);
    assert_eq!(r["decoder_runs"], 53);
    let d1 = r["objects"][0]["dice"].as_f64().unwrap();
    let d2 = r["objects"][1]["dice"].as_f64().unwrap();
    assert!(d1 > 0.9 && d2 > 0.9, "Dice {d1} {d2}");
}

#[test]
fn nrrd_input_is_segmented_on_its_grid() {
    let out = tmp("breast.nii.gz");
    let o = cli()
        .args([
            "segment",
            data("tests/fixtures/data/breast1_image.nrrd").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--box-ijk", "21,64,8,29,75,10", "--modality", "mr", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let input = read_volume(&data("tests/fixtures/data/breast1_image.nrrd")).unwrap().volume;
    let mask = read_volume(&out).unwrap().volume;
    assert_eq!(mask.dims, input.dims);
    for r in 0..3 {
        for c in 0..4 {
            let (a, b) = (mask.geometry.ijk_to_ras[r][c], input.geometry.ijk_to_ras[r][c]);
            assert!((a - b).abs() < 1e-4, "ijk_to_ras[{r}][{c}] {a} vs {b}");
        }
    }
}

#[test]
fn errors_are_one_line_with_no_partial_output() {
    let input = data("tests/fixtures/data/example_ct_sm.nii.gz");
    let out = tmp("never.nii.gz");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--box-ijk".into(), "10,10,5,5,50,20".into()], "inverted"),
        (vec!["--box-ijk".into(), "10,10,5,200,50,20".into()], "outside the volume"),
        (vec!["--box-ijk".into(), "1,2,3".into()], "expected 6"),
        (
            vec![
                "--box-ijk".into(),
                "10,10,5,50,50,20".into(),
                "--ort-lib".into(),
                "/nonexistent/libonnxruntime.so.1".into(),
            ],
            "/nonexistent/libonnxruntime.so.1",
        ),
        (
            vec!["--box-ijk".into(), "10,10,5,50,50,20".into(), "--model".into(), "/nonexistent/model".into()],
            "/nonexistent/model",
        ),
    ];
    for (extra, needle) in cases {
        let o = cli()
            .args(["segment", input.to_str().unwrap(), "-o", out.to_str().unwrap()])
            .args(&extra)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{extra:?} succeeded");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{extra:?}: {err}");
        assert!(!out.exists(), "{extra:?} left an output file");
    }
    // Unwritable output location and unreadable input.
    let o = cli()
        .args(["segment", input.to_str().unwrap(), "-o", "/nonexistent-dir/m.nii.gz", "--box-ijk", "10,10,5,50,50,20"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent-dir/m.nii.gz"));
    let o = cli()
        .args(["segment", "/nonexistent/in.nii.gz", "-o", out.to_str().unwrap(), "--box-ijk", "1,1,1,2,2,2"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/in.nii.gz"));
    assert!(!out.exists());
}

#[test]
fn unavailable_gpu_provider_falls_back_to_cpu_with_a_reason() {
    let out = tmp("fallback.nii.gz");
    let o = cli()
        .args([
            "segment",
            data("tests/fixtures/data/breast1_image.nrrd").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--box-ijk", "21,64,8,29,75,10", "--modality", "mr", "--json", "--providers", "tensorrt,cuda,cpu"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The CPU build of ONNX Runtime has neither GPU provider; each refusal is reported, CPU runs.
    assert_eq!(r["provider"], "cpu");
    let reasons: Vec<String> =
        r["provider_fallbacks"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert!(reasons.iter().any(|m| m.starts_with("tensorrt:")), "{reasons:?}");
    assert!(reasons.iter().any(|m| m.starts_with("cuda:")), "{reasons:?}");
}

#[test]
fn one_thread_walks_sequentially_with_the_same_mask() {
    let run = |threads: &str, name: &str| {
        let out = tmp(name);
        let o = cli()
            .args([
                "segment",
                data("tests/fixtures/data/example_ct_sm.nii.gz").to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .args(["--box-ijk", "23,27,0,44,49,22", "--modality", "ct", "--json", "--threads", threads])
            .args(["--policy", "reference"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        read_volume(&out).unwrap().volume.data
    };
    let one = run("1", "kidney-1thread.nii.gz");
    let two = run("2", "kidney-2threads.nii.gz");
    // 4010 voxels: the reference pipeline's kidney_left mask (tests/fixtures/parity).
    assert_eq!(one.iter().filter(|&&v| v == 1).count(), 4010);
    assert_eq!(one, two, "one worker and two workers give the identical mask");
}

#[test]
fn default_policy_writes_confidence_and_takes_points_and_seed_masks() {
    let input = data("tests/fixtures/data/example_ct_sm.nii.gz");
    let reference = data("tests/fixtures/data/example_seg.nii.gz");
    let (out, conf, png) = (tmp("reseed.nii.gz"), tmp("reseed-conf.nii.gz"), tmp("reseed.png"));
    let o = cli()
        .args(["segment", input.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .args(["--confidence", conf.to_str().unwrap(), "--png", png.to_str().unwrap()])
        .args(["--reference", reference.to_str().unwrap(), "--box-from-reference", "--reference-label", "5"])
        .args(["--reference-label", "3", "--point-ijk", "33,38,11,+,2", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["policy"], "reseed");
    assert_eq!(r["axis"], "k");
    for obj in r["objects"].as_array().unwrap() {
        assert!(obj["dice"].as_f64().unwrap() > 0.9, "{obj}");
        let c = obj["confidence"].as_f64().unwrap();
        assert!(c > 0.5 && c <= 1.0, "object confidence {c}");
        let slices = obj["per_slice"].as_array().unwrap();
        assert_eq!(slices.len() as u64, obj["slices"].as_u64().unwrap());
        assert!(slices.iter().all(|s| s["confidence"].as_f64().is_some() && s["iou_pred"].as_f64().is_some()));
    }
    let m = read_volume(&out).unwrap().volume;
    let c = read_volume(&conf).unwrap().volume;
    assert_eq!((c.dims, c.dtype), (m.dims, voxprompt::volume::DType::F32));
    assert_eq!(c.geometry, m.geometry);
    let values: Vec<f32> = c.data.chunks(4).map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert!(values.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(values.iter().any(|&v| v < 0.5), "some voxels are uncertain");
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");

    // A seed mask (here the lesion's own label map) becomes one object per label value.
    let seeded = tmp("seeded.nii.gz");
    let lesion = data("tests/fixtures/data/breast1_label.nrrd");
    let o = cli()
        .args(["segment", data("tests/fixtures/data/breast1_image.nrrd").to_str().unwrap()])
        .args(["-o", seeded.to_str().unwrap(), "--json", "--modality", "mr"])
        .args(["--seed-mask", lesion.to_str().unwrap(), "--reference", lesion.to_str().unwrap()])
        .args(["--reference-label", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["objects"].as_array().unwrap().len(), 1);
    let d = r["objects"][0]["dice"].as_f64().unwrap();
    assert!(d > 0.8, "a seed is kept where it is certain: Dice {d}");

    // Bad policy, axis, point and seed: exit 2, one line, no output.
    let never = tmp("never-reseed.nii.gz");
    let breast = data("tests/fixtures/data/breast1_image.nrrd");
    for (args, needle) in [
        (vec!["--box-ijk", "10,10,5,50,50,20", "--policy", "best"], "--policy"),
        (vec!["--box-ijk", "10,10,5,50,50,20", "--axis", "x"], "--axis"),
        (vec!["--point-ijk", "10,10,99"], "outside the volume"),
        (vec!["--point-ijk", "10,10,5,?"], "sign"),
        (vec!["--seed-mask", breast.to_str().unwrap()], "seed mask dims"),
    ] {
        let o = cli()
            .args(["segment", input.to_str().unwrap(), "-o", never.to_str().unwrap()])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle) && err.trim().lines().count() == 1, "{args:?}: {err}");
        assert!(!never.exists());
    }
}

#[test]
fn concept_lookup_prints_json_and_exits_2_on_an_unknown_phrase() {
    let out = cli()
        .args(["concept", "--text-model"])
        .arg(common::root().join("models/minilm"))
        .args(["tumour of the left kidney", "heart muscle"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        (lines[0]["concepts"][0]["id"].as_str(), lines[0]["lesion"].as_str()),
        (Some("kidney_left"), Some("tumor"))
    );
    // Outside the vocabulary: MiniLM's nearest phrase, above the threshold and margin.
    assert_eq!(
        (lines[1]["concepts"][0]["id"].as_str(), lines[1]["method"].as_str()),
        (Some("heart"), Some("embedding"))
    );

    let out = cli().args(["concept", "--no-text-model", "coffee mug"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    assert_eq!(v["error"], "UnknownConcept");
    assert!(v["message"].as_str().unwrap().contains("closest:"), "{v}");
}

#[test]
fn info_reports_runtime_providers_and_packages_and_names_a_broken_file() {
    let out = cli().args(["info", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let (major, minor) =
        (voxprompt::ffi::version::VXP_ABI_VERSION_MAJOR, voxprompt::ffi::version::VXP_ABI_VERSION_MINOR);
    assert_eq!(r["abi"], format!("{major}.{minor}"));
    assert_eq!(r["onnxruntime"]["version"], "1.32.0");
    let provs = r["onnxruntime"]["providers"].as_array().unwrap();
    let names: Vec<_> = provs.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cpu", "cuda", "tensorrt", "openvino"]);
    assert_eq!(provs[0]["available"], true);
    // OpenVINO where make setup put it (the Makefile names it in VXP_OPENVINO_LIB), else the variable to set.
    match std::env::var_os("VXP_OPENVINO_LIB").filter(|p| std::path::Path::new(p).exists()) {
        Some(_) => assert_eq!(provs[3]["available"], true, "{}", provs[3]),
        None => assert!(provs[3]["reason"].as_str().unwrap().contains("VXP_OPENVINO_LIB"), "{}", provs[3]),
    }
    // The CPU wheel has no GPU provider, and says so.
    for p in &provs[1..3] {
        assert_eq!(p["available"], false, "{p}");
        assert!(p["reason"].as_str().unwrap().contains("has no"), "{p}");
    }
    // The default spatial model (VXP_MODEL_DIR) and the text encoder found next to it, every file intact.
    let models = r["models"].as_array().unwrap();
    let kinds: Vec<_> = models.iter().map(|m| (m["name"].as_str().unwrap(), m["kind"].as_str().unwrap())).collect();
    assert_eq!(kinds, [("litemedsam", "sam2d"), ("minilm", "text_encoder")]);
    for m in models {
        let files = m["files"].as_array().unwrap();
        assert!(!files.is_empty() && files.iter().all(|f| f["intact"] == true), "{m}");
    }

    // A copy of the package with one graph changed by a byte: that file is named, the others stay intact,
    // and the exit code is the integrity error's (3), after the whole report.
    let pkg = tmp("info-pkg");
    let _ = std::fs::remove_dir_all(&pkg);
    std::fs::create_dir_all(&pkg).unwrap();
    for f in ["manifest.toml", "encoder.onnx", "encoder-fused.onnx"] {
        std::fs::copy(model_dir().join(f), pkg.join(f)).unwrap();
    }
    let mut dec = std::fs::read(model_dir().join("decoder.onnx")).unwrap();
    let last = dec.len() - 1;
    dec[last] ^= 1;
    std::fs::write(pkg.join("decoder.onnx"), dec).unwrap();
    let out = cli().args(["info", "--model"]).arg(&pkg).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("ONNX Runtime 1.32.0"), "{text}");
    let line = text.lines().find(|l| l.starts_with("model litemedsam")).expect(&text);
    assert!(line.contains("1 of ") && line.contains("decoder.onnx: sha256 is"), "{line}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    std::fs::remove_dir_all(&pkg).unwrap();

    // No runtime: the packages are still checked, and the exit code is the runtime's (3).
    let out = cli().args(["info", "--json", "--ort-lib", "/nonexistent/libonnxruntime.so"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["onnxruntime"]["error"], "RuntimeLoad");
    assert_eq!(r["models"].as_array().unwrap().len(), 2);
}

/// TotalSegmentator case B: 20 JPEG 2000 lossless slices.
const CASE_B: &str = "data/totalsegmentator/example_ct_dicom";

/// `segment` on case B into `out` with `--json`, boxes from the reference labels `extra` names: its reference
/// mask is a NIfTI with the rows reversed, moved onto the series' order exactly (volume::regrid) for the
/// boxes and the Dice.
fn case_b(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    cli()
        .arg("segment")
        .arg(data(CASE_B))
        .arg("-o")
        .arg(out)
        .arg("--reference")
        .arg(data("data/totalsegmentator/example_seg_dicom.nii.gz"))
        .args(["--box-from-reference", "--json", "--modality", "ct", "--threads", "2"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_dicom_series_is_segmented_on_its_own_grid_against_a_mask_stored_the_other_way_up() {
    let series = data(CASE_B);
    let out = tmp("case_b.nii.gz");
    let o = case_b(&out, &["--reference-label", "5", "--reference-label", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let dice: Vec<f64> = r["objects"].as_array().unwrap().iter().map(|o| o["dice"].as_f64().unwrap()).collect();
    // Measured 0.9732 (liver) and 0.9618 (spleen), default policy.
    assert!(dice[0] > 0.965 && dice[1] > 0.955, "Dice {dice:?}");
    let input = read_volume(&series).unwrap().volume;
    let mask = read_volume(&out).unwrap().volume;
    assert_eq!((mask.dims, mask.geometry), (input.dims, input.geometry), "the mask is on the series' grid");

    // --series names a series the folder lacks: exit 2, and the series it has are listed.
    let mut c = cli();
    c.arg("segment").arg(&series).arg("-o").arg(&out).args(["--series", "1.2.3", "--box-ijk", "1,1,1,9,9,9"]);
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("no series \"1.2.3\"; found: (no SeriesInstanceUID) (20 files, \"CT Body 3.0\")"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_text_conditioned_package_gets_its_text_encoder_and_names_its_inputs_in_info() {
    let tiny = root().join("tests/fixtures/models/tiny-conditioned");
    let run = |text: Option<&str>| {
        let out = tmp(&format!("conditioned-{}.nii.gz", text.is_some()));
        let mut c = cli();
        c.args(["segment", data("tests/fixtures/data/example_ct_sm.nii.gz").to_str().unwrap()])
            .args(["-o", out.to_str().unwrap(), "--model", tiny.to_str().unwrap(), "--policy", "reference"])
            .args(["--reference", data("tests/fixtures/data/example_seg.nii.gz").to_str().unwrap()])
            .args(["--reference-label", "5", "--box-from-reference", "--json"]);
        if let Some(t) = text {
            c.args(["--text", t]);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("JSON on stdout")
    };
    // The package names minilm: the CLI loads it without --text too. The tiny decoder's mask is the region
    // fed, so the box alone gives nothing and the box named "liver" gives the liver's prior.
    let (alone, named) = (run(None), run(Some("liver")));
    assert_eq!(alone["objects"][0]["voxels"], 0, "{alone}");
    assert_eq!(named["text_prompts"][0]["name"], "liver");
    let dice = named["objects"][0]["dice"].as_f64().unwrap();
    assert!(dice > 0.6 && named["objects"][0]["voxels"].as_u64().unwrap() > 1000, "{dice}");

    let o = cli().args(["info", "--json", "--model", tiny.to_str().unwrap()]).output().unwrap();
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = &r["models"][0];
    assert_eq!(m["conditioning"]["text_encoder"], "minilm");
    assert_eq!(m["conditioning"]["anatomy_input"], "anatomy_mask");
    let dec = m["graphs"]["decoder"]["inputs"].as_array().unwrap();
    assert_eq!(dec.len(), 7);
    assert_eq!(dec[5]["shape"], serde_json::json!([-1, 384]));
}

/// The header's `key:=value` pairs of a NRRD file (a Slicer segmentation's metadata).
fn nrrd_pairs(path: &std::path::Path) -> Vec<(String, String)> {
    let bytes = std::fs::read(path).unwrap();
    let end = bytes.windows(2).position(|w| w == b"\n\n").expect("a NRRD header ends at a blank line");
    let header = String::from_utf8(bytes[..end].to_vec()).unwrap();
    header.lines().filter_map(|l| l.split_once(":=")).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn the_output_name_chooses_nifti_nrrd_or_a_slicer_segmentation_with_the_same_voxels() {
    let run = |out: &std::path::Path, conf: Option<&std::path::Path>| {
        let mut c = cli();
        c.args(["segment", data("tests/fixtures/data/example_ct_sm.nii.gz").to_str().unwrap(), "-o"]).arg(out);
        if let Some(conf) = conf {
            c.arg("--confidence").arg(conf);
        }
        let o = c
            .args(["--reference", data("tests/fixtures/data/example_seg.nii.gz").to_str().unwrap()])
            .args(["--box-from-reference", "--reference-label", "2", "--json", "--threads", "2"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}: {}", out.display(), String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let (nii, nii_conf) = (tmp("formats.nii.gz"), tmp("formats-conf.nii.gz"));
    let (seg, nrrd_conf, nrrd) = (tmp("formats.seg.nrrd"), tmp("formats-conf.nrrd"), tmp("formats.nrrd"));
    let r = run(&nii, Some(&nii_conf));
    run(&seg, Some(&nrrd_conf));
    run(&nrrd, None);
    let want = read_volume(&nii).unwrap().volume;
    let voxels = want.data.iter().filter(|&&v| v == 1).count();
    assert_eq!(voxels as u64, r["objects"][0]["voxels"].as_u64().unwrap());
    assert!(voxels > 2000, "{voxels} voxels of the right kidney");
    for path in [&seg, &nrrd] {
        let got = read_volume(path).unwrap().volume;
        let p = path.display();
        assert_eq!((got.dtype, got.dims), (voxprompt::volume::DType::U8, want.dims), "{p}");
        assert!(got.data == want.data, "{p}: the voxels differ from the .nii.gz run's");
        assert_eq!(got.geometry.ijk_to_ras, want.geometry.ijk_to_ras, "{p}: IJK->RAS");
        for a in 0..3 {
            assert!((got.geometry.spacing[a] - want.geometry.spacing[a]).abs() < 1e-9, "{p}: {:?}", got.geometry);
        }
    }
    let (c_nii, c_nrrd) = (read_volume(&nii_conf).unwrap().volume, read_volume(&nrrd_conf).unwrap().volume);
    assert_eq!((c_nrrd.dtype, c_nrrd.dims), (voxprompt::volume::DType::F32, want.dims));
    assert!(c_nrrd.data == c_nii.data, "the confidence maps differ");
    assert_eq!(c_nrrd.geometry.ijk_to_ras, c_nii.geometry.ijk_to_ras);

    // One segment, named after its reference label, in Slicer's keys; the plain .nrrd has no such keys.
    let pairs = nrrd_pairs(&seg);
    let get = |k: &str| pairs.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    assert_eq!(get("Segment0_ID"), Some("Segment_1"));
    assert_eq!(get("Segment0_LabelValue"), Some("1"));
    assert_eq!(get("Segment0_Name"), Some("reference label 2"));
    assert_eq!(get("Segment0_Layer"), Some("0"));
    assert_eq!(get("Segment0_Extent"), Some("0 121 0 100 0 29"));
    assert_eq!(get("Segment0_Color"), Some("1 0.25098 0.25098"), "label 1's montage colour");
    assert!(get("Segment0_Tags").unwrap().contains("~SCT^85756007^Tissue~SCT^85756007^Tissue~"));
    assert_eq!(get("Segmentation_MasterRepresentation"), Some("Binary labelmap"));
    assert_eq!(get("Segment1_ID"), None);
    assert!(nrrd_pairs(&nrrd).is_empty());
}

#[test]
fn other_output_names_are_refused_before_the_input_is_read() {
    let d = tmp("names");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for (flag, name, needle) in [
        ("-o", "m.nhdr", "-o"),
        ("--confidence", "c.seg.nrrd", "--confidence"),
        ("--confidence", "c.png", "--confidence"),
    ] {
        let mut c = cli();
        // A missing input: a name refused first is refused before the input is looked at.
        c.args(["segment", "/nonexistent/in.nii.gz", "--box-ijk", "1,1,1,2,2,2"]);
        if flag != "-o" {
            c.arg("-o").arg(d.join("m.nii.gz"));
        }
        let o = c.arg(flag).arg(d.join(name)).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(needle) && err.contains(name) && err.trim_end().lines().count() == 1, "{name}: {err}");
        if flag == "-o" {
            assert!(err.contains(".nii, .nii.gz, .nrrd, .seg.nrrd or .dcm (a DICOM SEG of a DICOM series)"), "{err}");
        } else {
            assert!(err.contains(".nii, .nii.gz or .nrrd"), "{err}");
        }
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "{name}: a file was left");
    }
}

#[test]
fn brain_structures_by_text_use_the_atlas_under_data_and_a_missing_one_is_named() {
    let template = data("data/mni/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz");
    let out = tmp("thalamus.nii.gz");
    let run = |extra: &[&str]| {
        cli()
            .args(["segment", template.to_str().unwrap(), "-o", out.to_str().unwrap(), "--modality", "mr"])
            .args(["--text", "right thalamus", "--no-text-model", "--json"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&["--brain-atlas", root().join("data").to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let voxels = r["objects"][0]["voxels"].as_u64().unwrap();
    assert!((4000..12000).contains(&voxels), "thalamus of {voxels} voxels at 1 mm");
    assert_eq!(r["slices_encoded"], 0);
    let o = run(&["--brain-atlas", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--brain-atlas /nonexistent") && err.contains("aseg-auto.nii.gz"), "{err}");
}

#[test]
fn a_dicom_series_is_written_as_a_dicom_seg_that_references_its_instances() {
    use dicom_dictionary_std::tags;
    // Case B's liver from its reference box, one object with the reference policy (cheap).
    let series = data(CASE_B);
    let out = tmp("case_b.dcm");
    let o = case_b(&out, &["--reference-label", "5", "--policy", "reference"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let voxels = r["objects"][0]["voxels"].as_u64().unwrap();
    assert!(voxels > 300_000, "{voxels} voxels of liver");

    let text = |o: &dicom_object::InMemDicomObject, tag| {
        o.element(tag).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_string()
    };
    let seg = dicom_object::open_file(&out).unwrap();
    assert_eq!(seg.meta().transfer_syntax().trim_end_matches('\0'), "1.2.840.10008.1.2.1");
    assert_eq!(text(&seg, tags::SOP_CLASS_UID), "1.2.840.10008.5.1.4.1.1.66.4");
    assert_eq!((text(&seg, tags::MODALITY), text(&seg, tags::SEGMENTATION_TYPE)), ("SEG".into(), "BINARY".into()));
    let segments = seg.element(tags::SEGMENT_SEQUENCE).unwrap().items().unwrap();
    assert_eq!(segments.len(), 1);
    assert_eq!(text(&segments[0], tags::SEGMENT_LABEL), "reference label 5");
    // The source: each file's SOP Instance UID (case B is anonymised: its file meta group names it) and IPP.
    let mut source = std::collections::BTreeMap::new();
    for f in std::fs::read_dir(&series).unwrap() {
        let d = dicom_object::open_file(f.unwrap().path()).unwrap();
        let ipp = d.element(tags::IMAGE_POSITION_PATIENT).unwrap().to_multi_float64().unwrap();
        source.insert(d.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string(), ipp);
        assert_eq!(text(&seg, tags::FRAME_OF_REFERENCE_UID), text(&d, tags::FRAME_OF_REFERENCE_UID));
    }
    assert_eq!(source.len(), 20);
    let referenced: std::collections::BTreeSet<String> =
        seg.element(tags::REFERENCED_SERIES_SEQUENCE).unwrap().items().unwrap()[0]
            .element(tags::REFERENCED_INSTANCE_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()
            .iter()
            .map(|i| text(i, tags::REFERENCED_SOP_INSTANCE_UID))
            .collect();
    assert!(referenced.iter().eq(source.keys()), "every source instance is referenced, and only those");
    // One frame per slice holding liver, each on its source slice's position; the set bits are the voxels.
    let frames: usize = text(&seg, tags::NUMBER_OF_FRAMES).parse().unwrap();
    assert_eq!(frames as u64, r["objects"][0]["slices"].as_u64().unwrap());
    let per_frame = seg.element(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE).unwrap().items().unwrap();
    assert_eq!(per_frame.len(), frames);
    let mut seen = std::collections::BTreeSet::new();
    for f in per_frame {
        let derivation = &f.element(tags::DERIVATION_IMAGE_SEQUENCE).unwrap().items().unwrap()[0];
        let uid = text(
            &derivation.element(tags::SOURCE_IMAGE_SEQUENCE).unwrap().items().unwrap()[0],
            tags::REFERENCED_SOP_INSTANCE_UID,
        );
        let position = &f.element(tags::PLANE_POSITION_SEQUENCE).unwrap().items().unwrap()[0];
        let ipp = position.element(tags::IMAGE_POSITION_PATIENT).unwrap().to_multi_float64().unwrap();
        assert_eq!(Some(&ipp), source.get(&uid), "frame of {uid}: the source slice's position");
        assert!(seen.insert(uid), "one frame per slice");
    }
    let pixels = seg.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    assert_eq!(pixels.len(), (512 * 512 * frames).div_ceil(8).next_multiple_of(2));
    assert_eq!(pixels.iter().map(|b| u64::from(b.count_ones())).sum::<u64>(), voxels);
}

#[test]
fn a_dicom_seg_of_a_volume_that_is_not_a_dicom_series_is_refused_with_nothing_left() {
    let d = tmp("seg-of-nifti");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    let o = cli()
        .args([
            "segment",
            data("tests/fixtures/data/example_ct_sm.nii.gz").to_str().unwrap(),
            "--box-ijk",
            "1,1,1,9,9,9",
        ])
        .arg("-o")
        .arg(d.join("m.dcm"))
        .arg("--confidence")
        .arg(d.join("c.nii.gz"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("a DICOM SEG needs a DICOM source series") && err.trim_end().lines().count() == 1, "{err}");
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "a file was left");
}

/// A fresh folder holding the small CT under each of `names` and its reference as seg.nii.gz.
fn batch_dir(test: &str, names: &[&str]) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("vxp-batch-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for n in names {
        std::fs::copy(data("tests/fixtures/data/example_ct_sm.nii.gz"), d.join(n)).unwrap();
    }
    std::fs::copy(data("tests/fixtures/data/example_seg.nii.gz"), d.join("seg.nii.gz")).unwrap();
    d
}

fn batch(list: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    cli()
        .args(["batch", list.to_str().unwrap(), "-o", out.to_str().unwrap(), "--policy", "reference"])
        .args(["--threads", "2"])
        .args(extra)
        .output()
        .unwrap()
}

fn json_file(p: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// The report's cases with this status, by id.
fn with_status(report: &serde_json::Value, status: &str) -> Vec<String> {
    let cases = report["cases"].as_array().unwrap();
    cases.iter().filter(|c| c["status"] == status).map(|c| c["id"].as_str().unwrap().to_owned()).collect()
}

/// Two small boxes' worth of slices per case keeps a case at a few seconds.
const SMALL_BOX: &str = "70,29,8,92,51,9";

#[test]
fn batch_runs_a_csv_list_on_one_engine_with_the_masks_segment_writes() {
    let d = batch_dir("csv", &["k2.nii.gz", "k3.nii.gz", "liver.nii.gz"]);
    std::fs::write(
        d.join("list.csv"),
        "id,input,text,reference,reference_label\n\
         kidney_r,k2.nii.gz,,seg.nii.gz,2\n\
         kidney_l,k3.nii.gz,,seg.nii.gz,3\n\
         liver,liver.nii.gz,liver,seg.nii.gz,5\n",
    )
    .unwrap();
    let out = d.join("out");
    let o = batch(&d.join("list.csv"), &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("[3/3] liver: liver 0.9"), "{stderr}");
    assert!(stderr.contains("[2/3] kidney_l: label 3 0.9"), "{stderr}");
    let r = json_file(&out.join("batch-report.json"));
    assert_eq!(with_status(&r, "ok"), ["kidney_r", "kidney_l", "liver"]);
    assert_eq!((r["done"].as_u64(), r["skipped"].as_u64(), r["failed"].as_u64()), (Some(3), Some(0), Some(0)));
    for (case, id) in r["cases"].as_array().unwrap().iter().zip(["kidney_r", "kidney_l", "liver"]) {
        // Each case's report is segment's --json report; the batch report carries its Dice.
        let own = json_file(&out.join(format!("{id}.json")));
        let d = case["objects"][0]["dice"].as_f64().unwrap();
        assert_eq!(own["objects"][0]["dice"].as_f64(), Some(d), "{id}");
        assert!(d > 0.8, "{id}: Dice {d}");
        assert!(own["objects"][0]["slices"].as_u64().unwrap() > 10, "{id}");
    }
    let mean = r["mean_dice"].as_f64().unwrap();
    assert!(stderr.contains(&format!("mean Dice {mean:.4} over 3 objects")), "{stderr}");
    // Voxel for voxel what segment writes for the same arguments (one kidney by its reference box, the
    // liver by text).
    let seg = d.join("seg.nii.gz");
    for (id, extra) in [
        ("kidney_r", vec!["--reference-label", "2", "--box-from-reference"]),
        ("liver", vec!["--text", "liver", "--reference-label", "5"]),
    ] {
        let single = d.join(format!("{id}-segment.nii.gz"));
        let o = cli()
            .args([
                "segment",
                d.join(format!("{}.nii.gz", if id == "liver" { "liver" } else { "k2" })).to_str().unwrap(),
            ])
            .args(["-o", single.to_str().unwrap(), "--reference", seg.to_str().unwrap(), "--policy", "reference"])
            .args(["--threads", "2"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let (a, b) = (read_volume(&out.join(format!("{id}.nii.gz"))).unwrap(), read_volume(&single).unwrap());
        assert_eq!(a.volume.data, b.volume.data, "{id}: batch and segment masks differ");
        assert_eq!(a.volume.geometry, b.volume.geometry);
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn batch_resumes_skipping_finished_cases_and_reruns_one_whose_report_is_gone() {
    let d = batch_dir("resume", &["a.nii.gz", "b.nii.gz"]);
    let list = d.join("list.json");
    std::fs::write(
        &list,
        format!(r#"[{{"id": "a", "input": "a.nii.gz", "box_ijk": "{SMALL_BOX}"}}, {{"input": "b.nii.gz", "box_ijk": [[70, 29, 8, 92, 51, 9]]}}]"#),
    )
    .unwrap();
    let out = d.join("out");
    let o = batch(&list, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(with_status(&json_file(&out.join("batch-report.json")), "ok"), ["a", "b"]);
    let files = ["a.nii.gz", "a.json", "b.nii.gz", "b.json"];
    let mtimes = || files.map(|f| std::fs::metadata(out.join(f)).unwrap().modified().unwrap());
    let before = mtimes();
    std::thread::sleep(std::time::Duration::from_millis(20));

    let o = batch(&list, &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let r = json_file(&out.join("batch-report.json"));
    assert_eq!(with_status(&r, "skipped"), ["a", "b"], "{stderr}");
    assert!(stderr.contains("[1/2] a: skipped (done before)"), "{stderr}");
    assert_eq!(mtimes(), before, "a skipped case is not rewritten");

    std::fs::remove_file(out.join("b.json")).unwrap();
    let o = batch(&list, &out, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let r = json_file(&out.join("batch-report.json"));
    assert_eq!((with_status(&r, "skipped"), with_status(&r, "ok")), (vec!["a".to_owned()], vec!["b".to_owned()]));
    let after = mtimes();
    assert_eq!(after[..2], before[..2], "a untouched");
    assert!(after[2] > before[2] && after[3] > before[3], "b ran again");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn batch_shards_of_a_folder_run_at_once_cover_each_case_exactly_once() {
    let names = ["c0.nii.gz", "c1.nii.gz", "c2.nrrd.missing", "c3.nii.gz", "c4.nii.gz"];
    let d = batch_dir("shards", &names);
    std::fs::remove_file(d.join("seg.nii.gz")).unwrap();
    let out = d.join("out");
    let spawn = |shard: &str| {
        cli()
            .args(["batch", d.to_str().unwrap(), "-o", out.to_str().unwrap(), "--policy", "reference"])
            .args(["--threads", "1", "--box-ijk", SMALL_BOX, "--shard", shard])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (p0, p1) = (spawn("0/2"), spawn("1/2"));
    let pids = [p0.id(), p1.id()];
    for p in [p0, p1] {
        let o = p.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    }
    // The folder's volumes in name order (not the file of another extension) are split by index modulo 2.
    let mut all = Vec::new();
    for (i, want) in [(0, ["c0", "c3"]), (1, ["c1", "c4"])] {
        let r = json_file(&out.join(format!("batch-report-{i}-of-2.json")));
        assert_eq!(with_status(&r, "ok"), want);
        assert_eq!(r["cases"].as_array().unwrap().len(), 2);
        for id in want {
            let claim = json_file(&out.join(".claims").join(id));
            assert_eq!(claim["pid"].as_u64(), Some(pids[i] as u64), "{id} was claimed by shard {i}'s process");
            assert!(out.join(format!("{id}.nii.gz")).exists() && out.join(format!("{id}.json")).exists());
            all.push(id);
        }
    }
    all.sort();
    assert_eq!(all, ["c0", "c1", "c3", "c4"], "each case once");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn batch_reports_a_failing_case_by_its_code_and_runs_the_others() {
    let d = batch_dir("fail", &["good.nii.gz", "bad.nii.gz"]);
    let list = d.join("list.csv");
    std::fs::write(
        &list,
        format!("id,input,box_ijk\ngood,good.nii.gz,\"{SMALL_BOX}\"\nbad,bad.nii.gz,\"0,0,0,500,9,9\"\n"),
    )
    .unwrap();
    let out = d.join("out");
    let o = batch(&list, &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[2/2] bad: failed: InvalidPrompt: "), "{stderr}");
    let r = json_file(&out.join("batch-report.json"));
    assert_eq!((with_status(&r, "ok"), with_status(&r, "failed")), (vec!["good".to_owned()], vec!["bad".to_owned()]));
    let bad = &r["cases"][1];
    assert_eq!(bad["error"], "InvalidPrompt");
    assert!(bad["message"].as_str().unwrap().contains("outside the volume"), "{bad}");
    assert!(!out.join("bad.nii.gz").exists() && !out.join("bad.json").exists());
    assert!(!out.join(".claims/bad").exists(), "a failed case's claim is released for the next run");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn batch_refuses_a_bad_list_naming_its_line_before_running_anything() {
    let d = batch_dir("badlist", &["a.nii.gz"]);
    let out = d.join("out");
    for (name, text, says) in [
        ("cols.csv", "id,input,box\na,a.nii.gz,1\n", "cols.csv:1: unknown column \"box\""),
        (
            "dup.csv",
            "id,input,box_ijk\n# a comment\na,a.nii.gz,\"1,1,1,2,2,2\"\na,a.nii.gz,\"1,1,1,3,3,3\"\n",
            "dup.csv:4: duplicate id \"a\" (first at ",
        ),
        ("missing.csv", "input,text\na.nii.gz,liver\nnone.nii.gz,liver\n", "missing.csv:3: "),
        ("keys.json", r#"[{"input": "a.nii.gz", "txt": "liver"}]"#, "keys.json: entry 1: unknown key \"txt\""),
    ] {
        std::fs::write(d.join(name), text).unwrap();
        let o = batch(&d.join(name), &out, &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(says) && stderr.lines().count() == 1, "{name}: {stderr}");
        assert!(!out.exists(), "{name}: nothing is run or written");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn batch_pseudo_labels_ignore_unsure_slices_and_reject_unsure_cases() {
    // Measured here: the right kidney's reference-box case averages |2p-1| 0.889 (Dice 0.82), the left one's
    // 0.899 (Dice 0.94), whose last slice is its only one below 0.8 (0.758). The rule's thresholds are set
    // between those values to see it act; its defaults (0.8, 0.8) are our own choice.
    let d = batch_dir("pseudo", &["k2.nii.gz", "k3.nii.gz"]);
    std::fs::write(
        d.join("list.csv"),
        "id,input,reference,reference_label\nkidney_r,k2.nii.gz,seg.nii.gz,2\nkidney_l,k3.nii.gz,seg.nii.gz,3\n",
    )
    .unwrap();
    let out = d.join("out");
    let args = ["--pseudo-labels", "--ignore-slices-below", "0.8", "--reject-case-below", "0.8935"];
    let o = batch(&d.join("list.csv"), &out, &args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "a rejection is a decision, not a failure: {stderr}");
    let r = json_file(&out.join("batch-report.json"));
    assert_eq!(
        (with_status(&r, "rejected"), with_status(&r, "ok")),
        (vec!["kidney_r".into()], vec!["kidney_l".into()])
    );
    assert!(
        stderr.contains("kidney_r: rejected: case confidence 0.88") && stderr.contains("rejected      1"),
        "{stderr}"
    );
    assert!(!out.join("kidney_r.nii.gz").exists(), "a rejected case writes no label");

    // The accepted case: exactly its slices below 0.8 are 255 across the whole slice; the rest is its mask.
    let own = json_file(&out.join("kidney_l.json"));
    let unsure: Vec<u64> = own["objects"][0]["per_slice"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["area"].as_u64() > Some(0) && p["confidence"].as_f64().unwrap() < 0.8)
        .map(|p| p["slice"].as_u64().unwrap())
        .collect();
    assert!(!unsure.is_empty(), "the test needs an unsure slice");
    assert_eq!(own["pseudo_labels"]["ignored_slices"], serde_json::json!(unsure));
    let mask = read_volume(&out.join("kidney_l.nii.gz")).unwrap().volume.to_f64().unwrap();
    let plain = batch(&d.join("list.csv"), &d.join("plain"), &[]);
    assert!(plain.status.success());
    let plain = read_volume(&d.join("plain/kidney_l.nii.gz")).unwrap().volume.to_f64().unwrap();
    let [w, h, _] = read_volume(&out.join("kidney_l.nii.gz")).unwrap().volume.dims;
    for (i, (&m, &p)) in mask.iter().zip(&plain).enumerate() {
        let k = (i / (w * h)) as u64;
        assert_eq!(m, if unsure.contains(&k) { 255.0 } else { p }, "voxel {i} (slice {k})");
    }
    // Resumed, neither case runs again: the rejected one's report is its done mark.
    let again = batch(&d.join("list.csv"), &out, &args);
    assert!(again.status.success());
    assert_eq!(with_status(&json_file(&out.join("batch-report.json")), "skipped"), ["kidney_r", "kidney_l"]);
}

#[test]
fn batch_killed_mid_run_and_restarted_ends_as_one_clean_run() {
    let names = ["a.nii.gz", "b.nii.gz", "c.nii.gz"];
    let d = batch_dir("kill", &names);
    std::fs::remove_file(d.join("seg.nii.gz")).unwrap();
    let out = d.join("out");
    let start = || {
        cli()
            .args(["batch", d.to_str().unwrap(), "-o", out.to_str().unwrap(), "--policy", "reference"])
            .args(["--threads", "2", "--box-ijk", SMALL_BOX])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // SIGKILL once the first case is done (its report is the done mark), while the second runs.
    let mut child = start();
    let t = std::time::Instant::now();
    while !out.join("a.json").exists() {
        assert!(t.elapsed().as_secs() < 300, "the first case never finished");
        assert!(child.try_wait().unwrap().is_none(), "the batch ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.join("c.json").exists(), "killed too late to test anything");
    // Nothing half-written is left as an output: only complete masks under their final names.
    for e in std::fs::read_dir(&out).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(n.starts_with('.') || n.ends_with(".nii.gz") || n.ends_with(".json"), "left behind: {n}");
    }
    let o = start().wait_with_output().unwrap();
    assert!(o.status.success());
    let r = json_file(&out.join("batch-report.json"));
    assert_eq!(with_status(&r, "skipped"), ["a"]);
    assert_eq!(with_status(&r, "ok"), ["b", "c"], "the case in flight and the one after it ran");

    // The same as one clean run: the same masks and the same per-case reports' objects.
    let clean = d.join("clean");
    let o = cli()
        .args(["batch", d.to_str().unwrap(), "-o", clean.to_str().unwrap(), "--policy", "reference"])
        .args(["--threads", "2", "--box-ijk", SMALL_BOX])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(with_status(&json_file(&clean.join("batch-report.json")), "ok"), ["a", "b", "c"]);
    for id in ["a", "b", "c"] {
        let (x, y) = (out.join(format!("{id}.nii.gz")), clean.join(format!("{id}.nii.gz")));
        assert_eq!(read_volume(&x).unwrap().volume.data, read_volume(&y).unwrap().volume.data, "{id}");
        let (rx, ry) = (json_file(&out.join(format!("{id}.json"))), json_file(&clean.join(format!("{id}.json"))));
        assert_eq!(rx["objects"], ry["objects"], "{id}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_prompt_free_mosaic_package_segments_the_whole_volume_without_a_prompt() {
    // The generated SFR-contract package (tests/models.rs checks its every voxel): with no prompt the CLI
    // makes one object of the whole volume; a box picks what lies inside it.
    let model = data("tests/fixtures/models/tiny-mosaic");
    let out = tmp("mosaic.nii.gz");
    let run = |extra: &[&str]| {
        let o = cli()
            .arg("segment")
            .arg(data("tests/fixtures/data/example_ct_sm.nii.gz"))
            .arg("-o")
            .arg(&out)
            .arg("--model")
            .arg(&model)
            .args(["--modality", "ct", "--json"])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        r["objects"][0]["voxels"].as_u64().unwrap()
    };
    assert_eq!(run(&[]), 137_564, "the whole volume: what the model finds along k");
    let half = run(&["--box-ijk", "0,0,0,121,100,14"]);
    assert!(half > 10_000 && half < 137_564, "{half}");
    let _ = std::fs::remove_file(&out);
}

#[test]
fn every_input_format_to_every_output_format_keeps_the_inputs_grid_and_the_reference_dice() {
    // (input, reference, label, modality, Dice floor): a NIfTI, an NRRD and a DICOM series, each written as
    // .nii.gz, .nrrd and .seg.nrrd; each output read back is compared with the reference on the input's grid.
    // (The NIfTI's three outputs are the same voxels: the_output_name_chooses_… checks that, so it runs once.)
    // Measured (default policy): case A's right kidney 0.824, breast1's lesion 0.673, case B's liver 0.97.
    let cases = [
        ("tests/fixtures/data/example_ct_sm.nii.gz", "tests/fixtures/data/example_seg.nii.gz", "2", "ct", 0.78),
        ("tests/fixtures/data/breast1_image.nrrd", "tests/fixtures/data/breast1_label.nrrd", "1", "mr", 0.6),
        ("data/totalsegmentator/example_ct_dicom", "data/totalsegmentator/example_seg_dicom.nii.gz", "5", "ct", 0.95),
    ];
    for (input, reference, label, modality, floor) in cases {
        let source = read_volume(&data(input)).unwrap().volume;
        let truth = read_volume(&data(reference)).unwrap().volume;
        let truth = voxprompt::volume::regrid::onto_grid(&truth, source.dims, &source.geometry).unwrap();
        let truth = truth.to_f64().unwrap();
        let formats: &[&str] = if input.ends_with(".nii.gz") { &["nii.gz"] } else { &["nii.gz", "nrrd", "seg.nrrd"] };
        for ext in formats {
            let out = tmp(&format!("matrix-{label}.{ext}"));
            let o = cli()
                .arg("segment")
                .arg(data(input))
                .arg("-o")
                .arg(&out)
                .arg("--reference")
                .arg(data(reference))
                .args(["--box-from-reference", "--reference-label", label, "--modality", modality, "--threads", "2"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{input} → {ext}: {}", String::from_utf8_lossy(&o.stderr));
            let got = read_volume(&out).unwrap().volume;
            assert_eq!(got.dims, source.dims, "{input} → {ext}");
            for r in 0..3 {
                for c in 0..4 {
                    let (a, b) = (got.geometry.ijk_to_ras[r][c], source.geometry.ijk_to_ras[r][c]);
                    assert!((a - b).abs() < 1e-4, "{input} → {ext}: ijk_to_ras[{r}][{c}] {a} vs {b}");
                }
            }
            let want: f64 = label.parse().unwrap();
            let d = voxprompt::ops::mask::dice(got.data.iter().map(|&m| m == 1), truth.iter().map(|&t| t == want));
            eprintln!("{input} → {ext}: Dice {d:.4}");
            assert!(d > floor, "{input} → {ext}: Dice {d:.4}");
            std::fs::remove_file(&out).unwrap();
        }
    }
}

#[test]
fn batch_writes_a_dicom_seg_per_dicom_series_and_fails_a_case_that_is_not_one() {
    use dicom_dictionary_std::tags;
    let d = batch_dir("dcm", &["a.nii.gz"]);
    let (series, seg) = (data(CASE_B), data("data/totalsegmentator/example_seg_dicom.nii.gz"));
    std::fs::write(
        d.join("list.csv"),
        format!(
            "id,input,box_ijk,reference,reference_label\na,a.nii.gz,\"{SMALL_BOX}\",,\nb,{},,{},5\n",
            series.display(),
            seg.display()
        ),
    )
    .unwrap();
    let out = d.join("out");
    let o = batch(&d.join("list.csv"), &out, &["--format", "dcm", "--confidence"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("[1/2] a: failed: InvalidArgument: ") && stderr.contains("needs a DICOM source series"),
        "{stderr}"
    );
    let r = json_file(&out.join("batch-report.json"));
    assert_eq!((with_status(&r, "failed"), with_status(&r, "ok")), (vec!["a".to_owned()], vec!["b".to_owned()]));
    let left: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("a."))
        .collect();
    assert!(left.is_empty(), "the refused case left {left:?}");

    // The series' case: a DICOM SEG of its liver (the confidence map beside it as NIfTI, on the series' grid).
    let own = json_file(&out.join("b.json"));
    let (voxels, slices) = (own["objects"][0]["voxels"].as_u64().unwrap(), own["objects"][0]["slices"].as_u64());
    assert!(voxels > 300_000, "{voxels} voxels of liver");
    let text = |o: &dicom_object::InMemDicomObject, tag| {
        o.element(tag).unwrap().to_str().unwrap().trim_end_matches(['\0', ' ']).to_string()
    };
    let dcm = dicom_object::open_file(out.join("b.dcm")).unwrap();
    assert_eq!(text(&dcm, tags::SOP_CLASS_UID), "1.2.840.10008.5.1.4.1.1.66.4");
    let segments = dcm.element(tags::SEGMENT_SEQUENCE).unwrap().items().unwrap();
    assert_eq!(text(&segments[0], tags::SEGMENT_LABEL), "reference label 5");
    let referenced = dcm.element(tags::REFERENCED_SERIES_SEQUENCE).unwrap().items().unwrap()[0]
        .element(tags::REFERENCED_INSTANCE_SEQUENCE)
        .unwrap()
        .items()
        .unwrap()
        .len();
    assert_eq!(referenced, 20);
    assert_eq!(text(&dcm, tags::NUMBER_OF_FRAMES).parse::<u64>().ok(), slices);
    let pixels = dcm.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    assert_eq!(pixels.iter().map(|b| u64::from(b.count_ones())).sum::<u64>(), voxels);
    let input = read_volume(&series).unwrap().volume;
    let conf = read_volume(&out.join("b.confidence.nii.gz")).unwrap().volume;
    assert_eq!((conf.dims, conf.geometry), (input.dims, input.geometry));
    std::fs::remove_dir_all(&d).unwrap();
}
