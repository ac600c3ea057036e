//! Model sets and the package contract: an engine holding LiteMedSAM and a text encoder at once, and each
//! way a package can disagree with its graph refused at load with a message naming the mismatch. The text
//! encoder is a generated 4-wide graph (tests/fixtures/models/tiny-text): it tests the contract only.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use voxprompt::engine::{Engine, EngineOptions};
use voxprompt::model::{ModelKind, SessionConfig};
use voxprompt::ErrorCode;

/// sha256 of the bytes `not an onnx graph`.
const JUNK_SHA: &str = "565b36ceaa9cefaeac431e0ee73b4a20f627663da0934eb9d34627892e81cea5";

fn tiny_text() -> PathBuf {
    root().join("tests/fixtures/models/tiny-text")
}

fn engine(dirs: &[PathBuf]) -> voxprompt::Result<Engine> {
    Engine::new(&EngineOptions {
        ort_library: Some(ort_lib()),
        model_dirs: dirs.to_vec(),
        session: SessionConfig { threads: 2, ..Default::default() },
    })
}

/// A copy of the tiny text package whose manifest is `edit(manifest)`.
fn variant(name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vxp-models-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(tiny_text().join("encoder.onnx"), d.join("encoder.onnx")).unwrap();
    let m = std::fs::read_to_string(tiny_text().join("manifest.toml")).unwrap();
    let changed = edit(&m);
    assert_ne!(changed, m, "{name}: the edit changed nothing");
    std::fs::write(d.join("manifest.toml"), changed).unwrap();
    d
}

fn refused(dirs: &[PathBuf]) -> (ErrorCode, String) {
    match engine(dirs) {
        Ok(_) => panic!("{dirs:?} loaded"),
        Err(e) => (e.code(), e.to_string()),
    }
}

/// What the tiny graph gives for `ids`: mean over tokens of ids·W + B (token types are fed as zeros),
/// L2-normalised.
fn expected(ids: &[i64]) -> Vec<f32> {
    let m = ids.iter().sum::<i64>() as f64 / ids.len() as f64;
    let v = [m, 2.0 * m, -m, 0.5 * m + 1.0];
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| (x / n) as f32).collect()
}

#[test]
fn an_engine_holds_a_spatial_model_and_a_text_encoder_at_once() {
    let e = engine(&[model_dir(), tiny_text()]).unwrap();
    assert_eq!(e.models.packages.len(), 2);
    assert_eq!(e.models.segmenter.kind(), ModelKind::Sam2d);
    assert_eq!(e.models.spatial_package().manifest.name, "litemedsam");
    let text = e.models.text.as_ref().expect("the text encoder is loaded");
    assert_eq!((text.name.as_str(), text.dim, text.max_tokens), ("tiny-text", 4, 16));
    for ids in [vec![2i64, 4], vec![7], vec![1, 2, 3, 4, 5]] {
        let got = text.embed_ids(&ids).unwrap();
        let want = expected(&ids);
        let d = max_abs_diff(&got, &want);
        assert!(d < 1e-6, "{ids:?}: {got:?} vs {want:?}");
    }
    let e0 = text.embed_ids(&[]).err().unwrap();
    assert_eq!(e0.code(), ErrorCode::InvalidArgument, "{e0}");
    let long = text.embed_ids(&[1; 17]).err().unwrap();
    assert!(long.to_string().contains("17 tokens"), "{long}");

    // The order of the folders does not matter, and the spatial model still segments.
    let e = engine(&[tiny_text(), model_dir()]).unwrap();
    assert!(e.models.text.is_some());
    let v = voxprompt::io::read_volume(&data("tests/fixtures/data/example_ct_sm.nii.gz")).unwrap().volume;
    let mut s = e
        .open_session(
            &v.view().unwrap(),
            voxprompt::volume::intensity::IntensityMapping::CT,
            voxprompt::session::SessionOptions::default(),
        )
        .unwrap();
    s.add_box(1, voxprompt::volume::BoxIjk { min: [23, 27, 10], max: [44, 49, 12] }).unwrap();
    let r = s.run(None).unwrap();
    assert!(r.slices_encoded >= 3 && s.compose(false).0.data.contains(&1));
}

#[test]
fn each_contract_mismatch_is_refused_with_its_message() {
    let mut cases: Vec<(&str, PathBuf, ErrorCode, &str)> = vec![
        (
            "input name",
            variant("name", |m| m.replace("name = \"attention_mask\"", "name = \"mask\"")),
            ErrorCode::ModelContract,
            "input \"attention_mask\" is required by the model kind",
        ),
        (
            "undeclared graph input",
            variant("undeclared", |m| {
                m.replace("  { name = \"token_type_ids\", dtype = \"i64\", shape = [1, -1] },\n", "")
            }),
            ErrorCode::ModelContract,
            "the graph has input \"token_type_ids\", which the manifest does not declare",
        ),
        (
            "dtype",
            variant("dtype", |m| {
                m.replace("{ name = \"input_ids\", dtype = \"i64\"", "{ name = \"input_ids\", dtype = \"i32\"")
            }),
            ErrorCode::ModelContract,
            "input \"input_ids\" is i32 in the manifest but i64 in the graph",
        ),
        (
            "static dim",
            variant("dim", |m| m.replace("shape = [1, -1, 4]", "shape = [1, -1, 8]").replace("dim = 4", "dim = 8")),
            ErrorCode::ModelContract,
            "output \"last_hidden_state\" dimension 2 is 8 in the manifest but 4 in the graph",
        ),
        (
            "rank",
            variant("rank", |m| {
                m.replace(
                    "{ name = \"input_ids\", dtype = \"i64\", shape = [1, -1] }",
                    "{ name = \"input_ids\", dtype = \"i64\", shape = [-1] }",
                )
            }),
            ErrorCode::ModelContract,
            "input \"input_ids\" has shape [-1] in the manifest but rank 2",
        ),
        (
            "section and shape disagree",
            variant("width", |m| m.replace("dim = 4", "dim = 5")),
            ErrorCode::ModelContract,
            "not [1, T, 5] as [text] dim says",
        ),
        (
            "unknown field",
            variant("field", |m| m.replace("pooling = \"mean\"", "pooling = \"mean\"\nnormalise = false")),
            ErrorCode::ModelContract,
            "unknown field `normalise`",
        ),
        (
            "unknown kind",
            variant("kind", |m| m.replace("kind = \"text_encoder\"", "kind = \"clip\"")),
            ErrorCode::ModelContract,
            "unknown variant `clip`",
        ),
        (
            "declared, unsupported kind",
            variant("volumetric", |m| {
                m.replace("kind = \"text_encoder\"", "kind = \"volumetric\"")
                    .replace("[text]\ndim = 4\nmax_tokens = 16\npooling = \"mean\"\n", "")
            }),
            ErrorCode::Unsupported,
            "is of kind \"volumetric\", which this build declares but cannot run yet",
        ),
        (
            "tampered graph",
            variant("sha", |m| m.replace("sha256 = \"6741", "sha256 = \"0741")),
            ErrorCode::ModelIntegrity,
            "sha256 is 6741",
        ),
    ];
    // A file that passes its sha256 check but is no ONNX graph is a broken package.
    let junk =
        variant("junk", |m| m.replace("6741d9b0688fb03cd98e27652f09ea11157aa75f0470dae459e80c93bc16e072", JUNK_SHA));
    std::fs::write(junk.join("encoder.onnx"), b"not an onnx graph").unwrap();
    cases.push((
        "a graph ONNX Runtime cannot load",
        junk,
        ErrorCode::ModelContract,
        "text encoder: ONNX Runtime cannot load the graph",
    ));
    for (what, dir, code, needle) in cases {
        let (got, msg) = refused(&[model_dir(), dir]);
        println!("{what}: {msg}");
        assert_eq!(got, code, "{what}: {msg}");
        assert!(msg.contains(needle), "{what}: {msg:?} lacks {needle:?}");
    }
}

#[test]
fn a_model_set_needs_exactly_one_spatial_model_and_at_most_one_text_encoder() {
    let (code, msg) = refused(&[tiny_text()]);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(msg.contains("no spatial model") && msg.contains("text_encoder"), "{msg}");
    let (code, msg) =
        refused(&[model_dir(), tiny_text(), variant("twin", |m| m.replace("name = \"tiny-text\"", "name = \"twin\""))]);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(msg.contains("package twin would be a second text encoder"), "{msg}");
    let (code, msg) = refused(&[model_dir(), model_dir()]);
    assert_eq!(code, ErrorCode::InvalidArgument);
    assert!(msg.contains("second spatial model"), "{msg}");
    let (code, _) = refused(&[]);
    assert_eq!(code, ErrorCode::InvalidArgument);
    let (code, msg) = refused(&[model_dir(), Path::new("/nonexistent/text").to_path_buf()]);
    assert_eq!(code, ErrorCode::ModelNotFound);
    assert!(msg.contains("/nonexistent/text/manifest.toml"), "{msg}");
}

#[test]
fn a_sam2d_package_whose_graph_disagrees_with_its_manifest_is_refused() {
    let d = std::env::temp_dir().join(format!("vxp-models-{}-sam", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for f in ["encoder.onnx", "encoder-fused.onnx", "decoder.onnx"] {
        std::os::unix::fs::symlink(model_dir().join(f), d.join(f)).unwrap();
    }
    let m = std::fs::read_to_string(model_dir().join("manifest.toml")).unwrap();
    for (what, edit, needle) in [
        (
            "channels",
            m.replace("channels = 3", "channels = 1"),
            "channels = 1, but the sam2d frame repeats the grey slice into 3 channels",
        ),
        (
            "embedding side",
            m.replace("embedding_size = 64", "embedding_size = 32"),
            "not [1, C, 32, 32] as [preprocess] says",
        ),
        (
            "decoder input dtype",
            m.replace("{ name = \"point_labels\", dtype = \"f32\"", "{ name = \"point_labels\", dtype = \"i64\""),
            "input \"point_labels\" is i64 in the manifest but f32 in the graph",
        ),
        (
            "a decoder input the kind needs",
            m.replace("  { name = \"has_mask_input\", dtype = \"f32\", shape = [-1] },\n", ""),
            "input \"has_mask_input\" is required by the model kind",
        ),
        (
            "unknown preprocess field",
            m.replace("box_shift = 3", "box_shift = 3\nresize = \"area\""),
            "unknown field `resize`",
        ),
    ] {
        assert_ne!(edit, m, "{what}: the edit changed nothing");
        std::fs::write(d.join("manifest.toml"), edit).unwrap();
        let (code, msg) = refused(std::slice::from_ref(&d));
        println!("{what}: {msg}");
        assert_eq!(code, ErrorCode::ModelContract, "{what}: {msg}");
        assert!(msg.contains(needle), "{what}: {msg:?} lacks {needle:?}");
    }
}
