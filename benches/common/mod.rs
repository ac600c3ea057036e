//! What every benchmark needs: the repository root, the ONNX Runtime library and the machine's name, which
//! every printed figure carries (our machines change kind between sessions: compare ratios, not seconds).
#![allow(dead_code)]

use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `VXP_ORT_LIB`, else the copy `make setup` fetches.
pub fn ort_lib() -> PathBuf {
    std::env::var_os("VXP_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".deps/onnxruntime/lib/libonnxruntime.so.1.32.0"))
}

/// "AMD EPYC, 2 logical CPUs": lscpu's model name and the CPUs this process may use.
pub fn machine() -> String {
    let out = std::process::Command::new("lscpu").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let name = out
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{name}, {} logical CPUs", std::thread::available_parallelism().map_or(0, |n| n.get()))
}

/// A DATA.md volume with its reference labels, and the structures a benchmark measures on it.
pub struct Case {
    pub id: &'static str,
    pub image: &'static str,
    pub labels: &'static str,
    pub mapping: voxprompt::volume::intensity::IntensityMapping,
    /// (label, name).
    pub structures: &'static [(u8, &'static str)],
}

const ORGANS_A: &[(u8, &str)] = &[(5, "liver"), (1, "spleen"), (2, "kidney R"), (3, "kidney L"), (6, "stomach")];
const ORGANS_B: &[(u8, &str)] = &[(5, "liver"), (1, "spleen"), (6, "stomach"), (52, "aorta")];
const LESION: &[(u8, &str)] = &[(1, "lesion")];

const fn case(
    id: &'static str,
    image: &'static str,
    labels: &'static str,
    ct: bool,
    structures: &'static [(u8, &'static str)],
) -> Case {
    use voxprompt::volume::intensity::IntensityMapping;
    Case { id, image, labels, mapping: if ct { IntensityMapping::CT } else { IntensityMapping::MR }, structures }
}

/// The DATA.md cases with reference masks: TotalSegmentator A at 3 mm (112 slices) and B (its DICOM series),
/// and the pyradiomics lesions.
pub const DATA_CASES: &[Case] = &[
    case(
        "tsA-full",
        "data/totalsegmentator/example_ct.nii.gz",
        "data/totalsegmentator/example_seg_fast_force_split.nii.gz",
        true,
        ORGANS_A,
    ),
    case(
        "tsB",
        "data/totalsegmentator/example_ct_dicom",
        "data/totalsegmentator/example_seg_dicom.nii.gz",
        true,
        ORGANS_B,
    ),
    case("lung1", "data/pyradiomics/lung1_image.nrrd", "data/pyradiomics/lung1_label.nrrd", true, LESION),
    case("lung2", "data/pyradiomics/lung2_image.nrrd", "data/pyradiomics/lung2_label.nrrd", true, LESION),
    case("brain1", "data/pyradiomics/brain1_image.nrrd", "data/pyradiomics/brain1_label.nrrd", false, LESION),
    case("brain2", "data/pyradiomics/brain2_image.nrrd", "data/pyradiomics/brain2_label.nrrd", false, LESION),
    case("breast1", "data/pyradiomics/breast1_image.nrrd", "data/pyradiomics/breast1_label.nrrd", false, LESION),
];

/// An engine over the LiteMedSAM package with two threads, as the accuracy benchmarks run it.
pub fn litemedsam_engine() -> voxprompt::engine::Engine {
    voxprompt::engine::Engine::new(&voxprompt::engine::EngineOptions {
        ort_library: Some(ort_lib()),
        model_dirs: vec![root().join("models/litemedsam")],
        session: voxprompt::model::SessionConfig { threads: 2, ..Default::default() },
        brain_atlas: None,
    })
    .expect("engine over ONNX Runtime and models/litemedsam")
}

/// A DATA.md volume whose every label is a target (the policy and precision benchmarks).
pub struct Labelled {
    pub id: &'static str,
    pub image: &'static str,
    pub labels: &'static str,
    pub mapping: voxprompt::volume::intensity::IntensityMapping,
}

/// A `Labelled` volume read and mapped to 8 bits, with its label map as numbers and the label values present.
pub struct LoadedLabels {
    pub geometry: voxprompt::volume::Geometry,
    pub labels: Vec<f64>,
    pub image: voxprompt::volume::U8Volume,
    pub values: Vec<f64>,
}

impl Labelled {
    pub fn load(&self) -> LoadedLabels {
        let img = voxprompt::io::read_volume(&root().join(self.image)).expect("image").volume;
        let lab = voxprompt::io::read_volume(&root().join(self.labels)).expect("labels").volume;
        assert_eq!(img.dims, lab.dims, "{}: label grid", self.id);
        let labels = lab.to_f64().unwrap();
        let image = voxprompt::volume::intensity::map_to_u8(&img.view().unwrap(), self.mapping).unwrap();
        let mut values: Vec<f64> = labels.iter().copied().filter(|&v| v > 0.0).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        LoadedLabels { geometry: img.geometry, labels, image, values }
    }
}

/// Every DATA.md volume with a label map: TotalSegmentator A (30 and 112 slices) and C, the pyradiomics lesions.
pub const LABELLED: &[Labelled] = &[
    Labelled {
        id: "tsA",
        image: "data/totalsegmentator/example_ct_sm.nii.gz",
        labels: "data/totalsegmentator/example_seg.nii.gz",
        mapping: voxprompt::volume::intensity::IntensityMapping::CT,
    },
    Labelled {
        id: "tsA-full",
        image: "data/totalsegmentator/example_ct.nii.gz",
        labels: "data/totalsegmentator/example_seg_fast_force_split.nii.gz",
        mapping: voxprompt::volume::intensity::IntensityMapping::CT,
    },
    Labelled {
        id: "tsC",
        image: "data/totalsegmentator/aorta_report_example_ct.nii.gz",
        labels: "data/totalsegmentator/heart.nii.gz",
        mapping: voxprompt::volume::intensity::IntensityMapping::CT,
    },
    Labelled {
        id: "brain1",
        image: "data/pyradiomics/brain1_image.nrrd",
        labels: "data/pyradiomics/brain1_label.nrrd",
        mapping: voxprompt::volume::intensity::IntensityMapping::MR,
    },
    Labelled {
        id: "brain2",
        image: "data/pyradiomics/brain2_image.nrrd",
        labels: "data/pyradiomics/brain2_label.nrrd",
        mapping: voxprompt::volume::intensity::IntensityMapping::MR,
    },
    Labelled {
        id: "breast1",
        image: "data/pyradiomics/breast1_image.nrrd",
        labels: "data/pyradiomics/breast1_label.nrrd",
        mapping: voxprompt::volume::intensity::IntensityMapping::MR,
    },
    Labelled {
        id: "lung1",
        image: "data/pyradiomics/lung1_image.nrrd",
        labels: "data/pyradiomics/lung1_label.nrrd",
        mapping: voxprompt::volume::intensity::IntensityMapping::CT,
    },
    Labelled {
        id: "lung2",
        image: "data/pyradiomics/lung2_image.nrrd",
        labels: "data/pyradiomics/lung2_label.nrrd",
        mapping: voxprompt::volume::intensity::IntensityMapping::CT,
    },
];

/// The prompts of the accuracy tables: the reference mask's tight 3D box, that box grown by 20 % (10 % per
/// side and axis), and the tight box cut to the middle third of its slices.
pub const BOX_KINDS: [&str; 3] = ["tight", "grown20", "mid-third"];

#[allow(clippy::needless_range_loop)] // the three axes index four arrays
pub fn box_kind(b: voxprompt::volume::BoxIjk, dims: [usize; 3], v: &str) -> voxprompt::volume::BoxIjk {
    match v {
        "grown20" => {
            let mut g = b;
            for a in 0..3 {
                let ext = (b.max[a] - b.min[a] + 1) as f64;
                let pad = (ext * 0.1).round() as usize;
                g.min[a] = b.min[a].saturating_sub(pad);
                g.max[a] = (b.max[a] + pad).min(dims[a] - 1);
            }
            g
        }
        "mid-third" => {
            let n = b.max[2] - b.min[2] + 1;
            let mut g = b;
            g.min[2] = b.min[2] + n / 3;
            g.max[2] = (b.min[2] + (2 * n) / 3).saturating_sub(1).max(g.min[2]);
            g
        }
        _ => b,
    }
}
