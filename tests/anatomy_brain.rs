//! Brain-MR prior end to end on the real MNI template and covale's FreeSurfer aseg labels (`make setup`):
//! the template is moved by known random affines, degraded in intensity and written to NIfTI with its
//! own geometry; `BrainAtlas::register` must find the motion well enough that the carried labels match
//! the labels carried by the known motion.
#![allow(clippy::needless_range_loop)] // three-axis loops read best indexed

mod common;

use std::path::PathBuf;
use std::time::Instant;

use voxprompt::anatomy::brain::{BrainAtlas, Fit};
use voxprompt::io::{nifti, read_volume};
use voxprompt::ops::register::{register, Affine, Image, Mat4, Pyramid, RegisterOptions};
use voxprompt::volume::{DType, Geometry, Volume};

const TEMPLATE: &str = "data/mni/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz";
const ASEG: &str = "data/covale/aseg-auto.nii.gz";

/// FreeSurfer aseg values, checked against covale's registry.json (`aseg-auto:<value>` display names).
/// The structures are named by text: `masks` resolves each phrase to its concept and uses the concept's
/// atlas values, which must be these.
const STRUCTURES: [(&str, i32); 10] = [
    ("left caudate", 11),
    ("right caudate", 50),
    ("left putamen", 12),
    ("right putamen", 51),
    ("left thalamus", 10),
    ("right thalamus", 49),
    ("left hippocampus", 17),
    ("right hippocampus", 53),
    ("left lateral ventricle", 4),
    ("right lateral ventricle", 43),
];

/// SplitMix64: seeded, so every run draws the same cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(1e-12, 1.0), self.uniform(0.0, 1.0));
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    fn unit(&mut self) -> [f64; 3] {
        loop {
            let v = [self.normal(), self.normal(), self.normal()];
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            if n > 1e-6 {
                return v.map(|x| x / n);
            }
        }
    }
}

/// `x ↦ R·S·(x − c) + c + t`, built here (Rodrigues) independently of the registration's parametrisation.
fn motion(axis: [f64; 3], degrees: f64, scale: [f64; 3], shift: [f64; 3], c: [f64; 3]) -> Affine {
    let (s, co) = degrees.to_radians().sin_cos();
    let [x, y, z] = axis;
    let r = [
        [co + x * x * (1.0 - co), x * y * (1.0 - co) - z * s, x * z * (1.0 - co) + y * s],
        [y * x * (1.0 - co) + z * s, co + y * y * (1.0 - co), y * z * (1.0 - co) - x * s],
        [z * x * (1.0 - co) - y * s, z * y * (1.0 - co) + x * s, co + z * z * (1.0 - co)],
    ];
    let mut m = Affine::IDENTITY.0;
    for a in 0..3 {
        for b in 0..3 {
            m[a][b] = r[a][b] * scale[b];
        }
        m[a][3] = c[a] + shift[a] - (0..3).map(|b| m[a][b] * c[b]).sum::<f64>();
    }
    Affine(m)
}

struct Case {
    name: String,
    /// Subject world → template world, the truth.
    truth: Affine,
    dims: [usize; 3],
    grid: Mat4,
    degrees: f64,
    shift_mm: f64,
    gamma: f64,
}

/// A case: a random motion on the template grid (even cases) or on a 1.2 mm grid over the same field of
/// view (odd cases), so the transform lives both in the resampling and in the affine.
fn draw(rng: &mut Rng, n: usize, template: &Image, centre: [f64; 3]) -> Case {
    let degrees = rng.uniform(5.0, 15.0);
    let axis = rng.unit();
    let scale = [0, 1, 2].map(|_| rng.uniform(0.9, 1.1));
    let dir = rng.unit();
    let shift_mm = rng.uniform(5.0, 20.0);
    let truth = motion(axis, degrees, scale, dir.map(|d| d * shift_mm), centre);
    let tg = template.ijk_to_ras().0;
    let (dims, grid) = if n.is_multiple_of(2) {
        (template.dims(), tg)
    } else {
        let mut g = tg;
        for r in 0..3 {
            for c in 0..3 {
                g[r][c] *= 1.2;
            }
        }
        (template.dims().map(|d| (d as f64 / 1.2).ceil() as usize), g)
    };
    Case { name: format!("case{n}"), truth, dims, grid, degrees, shift_mm, gamma: rng.uniform(0.7, 1.5) }
}

/// Gamma, gain, a smooth multiplicative bias field (±~25 %) and Gaussian noise (3 % of the range).
fn degrade(rng: &mut Rng, img: &Image, gamma: f64) -> Vec<f32> {
    let max = img.data().iter().cloned().fold(0f32, f32::max) as f64;
    let gain = rng.uniform(0.3, 3.0);
    let b = [0, 1, 2, 3, 4].map(|_| rng.uniform(-0.25, 0.25));
    let sigma = 0.03 * gain * max;
    let [w, h, _] = img.dims();
    let g = img.ijk_to_ras();
    img.data()
        .iter()
        .enumerate()
        .map(|(idx, &v)| {
            let x = g.apply([(idx % w) as f64, ((idx / w) % h) as f64, (idx / (w * h)) as f64]).map(|c| c / 90.0);
            let bias = (b[0] * x[0] + b[1] * x[1] + b[2] * x[2] + b[3] * x[0] * x[1] + b[4] * x[2] * x[2]).exp();
            let clean = max * (f64::from(v).max(0.0) / max).powf(gamma);
            (gain * clean * bias + sigma * rng.normal()) as f32
        })
        .collect()
}

fn tmp_dir() -> PathBuf {
    let d = common::root().join("target/tmp/anatomy_brain");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes the subject to NIfTI with its own sform and reads it back, as a host's file would arrive.
/// Gzipped, because `io::nifti`'s atomic writer loses an uncompressed `.nii` (the nifti crate renames
/// its temporary file to `.<name>.nii.nii`).
fn through_nifti(name: &str, data: &[f32], dims: [usize; 3], grid: Mat4) -> Volume {
    let path = tmp_dir().join(format!("{name}.nii.gz"));
    let spacing = Affine(grid).column_norms();
    nifti::write_f32(&path, data, dims, None, &Geometry { spacing, ijk_to_ras: grid }).unwrap();
    let v = read_volume(&path).unwrap().volume;
    let _ = std::fs::remove_file(&path);
    v
}

fn dice(a: &[u8], b: &[u8]) -> f64 {
    common::dice(a.iter().map(|&v| v > 0), b.iter().map(|&v| v > 0))
}

/// The largest displacement between two maps over points 60 mm around `c` (the brain's extent).
fn max_disagreement(a: &Affine, b: &Affine, c: [f64; 3]) -> f64 {
    let mut worst: f64 = 0.0;
    for d in [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.577, 0.577, 0.577], [-0.577, 0.577, -0.577]] {
        for s in [-60.0, 60.0] {
            let p = [0, 1, 2].map(|k| c[k] + s * d[k]);
            let (x, y) = (a.apply(p), b.apply(p));
            worst = worst.max((0..3).map(|k| (x[k] - y[k]).powi(2)).sum::<f64>().sqrt());
        }
    }
    worst
}

fn load() -> (BrainAtlas, Image) {
    let atlas = BrainAtlas::load(&common::data(TEMPLATE), &common::data(ASEG)).expect("template and aseg load");
    let (t, _) = nifti::read(&common::data(TEMPLATE)).unwrap();
    (atlas, Image::from_view(&t.view().unwrap()).unwrap())
}

/// Text alone: each phrase → its concept (lexical resolver) → the concept's aseg values → the carried mask.
fn masks(fit: &Fit, dims: [usize; 3]) -> Vec<Vec<u8>> {
    let r = voxprompt::concept::Resolver::lexical(voxprompt::concept::builtin().unwrap());
    STRUCTURES
        .iter()
        .map(|(phrase, v)| {
            let res = r.resolve(phrase, voxprompt::concept::Domain::Brain).unwrap();
            assert_eq!(res.concepts.len(), 1, "{phrase}: {res:?}");
            let c = r.vocab.get(&res.concepts[0]).unwrap();
            assert_eq!((c.atlas.as_deref(), c.labels.as_slice()), (Some("aseg-auto"), &[*v][..]), "{phrase}");
            fit.region_mask(&c.labels, dims).unwrap()
        })
        .collect()
}

#[test]
fn aseg_values_are_the_freesurfer_ones() {
    let (atlas, _) = load();
    for (name, v) in STRUCTURES {
        assert!(atlas.label_values().contains(&v), "{name} = {v} not in {:?}", atlas.label_values());
    }
    println!("aseg values in the volume: {:?}", atlas.label_values());
    // covale's registry names 42 aseg regions; the volume may hold a few unnamed ones besides.
    assert!(atlas.label_values().len() >= 42, "{:?}", atlas.label_values());
}

#[test]
fn registration_recovers_random_affines_and_carries_aseg_labels() {
    let (atlas, template) = load();
    let centre = template.bright_centroid();
    let mut rng = Rng(0x5EED_B4A1_2026);
    let cases = 6;
    let mut reg_dice = vec![vec![0.0; cases]; STRUCTURES.len()];
    let mut id_dice = vec![vec![0.0; cases]; STRUCTURES.len()];
    let mut lines = Vec::new();
    for n in 0..cases {
        let case = draw(&mut rng, n, &template, centre);
        let moved = template.resample(case.dims, case.grid, &case.truth).unwrap();
        let data = degrade(&mut rng, &moved, case.gamma);
        let vol = through_nifti(&case.name, &data, case.dims, case.grid);
        assert_eq!(vol.dtype, DType::F32);
        let view = vol.view().unwrap();
        let t0 = Instant::now();
        let fit = atlas.register(&view).unwrap();
        let wall = t0.elapsed();
        let truth = atlas.fit_with_transform(case.dims, &vol.geometry, case.truth).unwrap();
        let ident = atlas.fit_with_transform(case.dims, &vol.geometry, Affine::IDENTITY).unwrap();
        let (p, t, i) = (masks(&fit, case.dims), masks(&truth, case.dims), masks(&ident, case.dims));
        for s in 0..STRUCTURES.len() {
            assert!(t[s].iter().any(|&v| v > 0), "{}: truth mask of {} is empty", case.name, STRUCTURES[s].0);
            reg_dice[s][n] = dice(&p[s], &t[s]);
            id_dice[s][n] = dice(&i[s], &t[s]);
        }
        let subject_centre = case.truth.inverse().unwrap().apply(centre);
        let err = max_disagreement(&fit.subject_to_template, &case.truth, subject_centre);
        let reg = fit.registration.as_ref().unwrap();
        lines.push(format!(
            "{}: grid {:?} @ {:.1} mm, {:.1}° rotation, {:.1} mm shift, gamma {:.2} | register {:.2} s (prepare {:.2} s, optimise {:.2} s, {} evaluations), NCC {:.3}, max displacement error {:.2} mm",
            case.name,
            case.dims,
            Affine(case.grid).column_norms()[0],
            case.degrees,
            case.shift_mm,
            case.gamma,
            wall.as_secs_f64(),
            fit.timing.prepare.as_secs_f64(),
            fit.timing.optimise.as_secs_f64(),
            reg.stages.iter().map(|s| s.evaluations).sum::<usize>(),
            reg.ncc,
            err
        ));
        assert!(err < 3.0, "{}: registration is {err:.2} mm off the known motion; stages {:?}", case.name, reg.stages);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!("{}", lines.join("\n"));
    print!("\n{:<23}", "Dice (text alone)");
    for n in 0..cases {
        print!(" case{n}");
    }
    println!("  mean | identity");
    for s in 0..STRUCTURES.len() {
        print!("{:<23}", STRUCTURES[s].0);
        for n in 0..cases {
            print!(" {:.3}", reg_dice[s][n]);
        }
        println!("  {:.3} | {:.3}", mean(&reg_dice[s]), mean(&id_dice[s]));
    }
    let all: Vec<f64> = reg_dice.iter().flatten().copied().collect();
    let all_id: Vec<f64> = id_dice.iter().flatten().copied().collect();
    let (m, mi) = (mean(&all), mean(&all_id));
    println!("{:<23} {:>41}  {m:.3} | {mi:.3}", "mean", "");
    assert!(m >= 0.70, "mean Dice {m:.3} < 0.70");
    assert!(m - mi > 0.2, "registration ({m:.3}) must beat no registration ({mi:.3}) clearly");
    for s in 0..STRUCTURES.len() {
        assert!(mean(&reg_dice[s]) > 0.6, "{}: mean Dice {:.3}", STRUCTURES[s].0, mean(&reg_dice[s]));
    }
}

/// World x of a mask's centroid, and its mean array index i.
fn centroid(mask: &[u8], dims: [usize; 3], g: &Geometry) -> ([f64; 3], f64) {
    let (mut acc, mut n) = ([0.0; 3], 0.0);
    for (idx, _) in mask.iter().enumerate().filter(|(_, &v)| v > 0) {
        let ijk = [idx % dims[0], (idx / dims[0]) % dims[1], idx / (dims[0] * dims[1])];
        for a in 0..3 {
            acc[a] += ijk[a] as f64;
        }
        n += 1.0;
    }
    let ijk = acc.map(|s| s / n);
    (g.ijk_to_ras(ijk), ijk[0])
}

#[test]
fn laterality_follows_the_affine_not_the_array() {
    let (atlas, template) = load();
    let centre = template.bright_centroid();
    let truth = motion([0.0, 0.3, 0.95], 10.0, [1.05, 0.95, 1.0], [8.0, -5.0, 6.0], centre);
    let dims = template.dims();
    let grid = template.ijk_to_ras().0;
    let moved = template.resample(dims, grid, &truth).unwrap();
    // The same voxels with i reversed, and the affine adjusted so each voxel keeps its world position.
    let [w, h, d] = dims;
    let mut flipped = vec![0f32; moved.data().len()];
    for k in 0..d {
        for j in 0..h {
            for i in 0..w {
                flipped[(k * h + j) * w + (w - 1 - i)] = moved.data()[(k * h + j) * w + i];
            }
        }
    }
    let mut fgrid = grid;
    for r in 0..3 {
        fgrid[r][3] += (w - 1) as f64 * grid[r][0];
        fgrid[r][0] = -grid[r][0];
    }
    let plain = through_nifti("lat_plain", moved.data(), dims, grid);
    let flip = through_nifti("lat_flipped", &flipped, dims, fgrid);
    let mut left_masks = Vec::new();
    for (name, vol, left_at_low_i) in [("plain", &plain, true), ("flipped", &flip, false)] {
        let fit = atlas.register(&vol.view().unwrap()).unwrap();
        let l = fit.region_mask(&[17], dims).unwrap();
        let r = fit.region_mask(&[53], dims).unwrap();
        let (lc, li) = centroid(&l, dims, &vol.geometry);
        let (rc, ri) = centroid(&r, dims, &vol.geometry);
        println!(
            "{name}: left hippocampus at RAS x {:.1} mm (i {li:.0}), right at x {:.1} mm (i {ri:.0})",
            lc[0], rc[0]
        );
        assert!(lc[0] < -10.0 && rc[0] > 10.0, "{name}: left x {:.1}, right x {:.1}", lc[0], rc[0]);
        assert_eq!(li < (w / 2) as f64, left_at_low_i, "{name}: left hippocampus at array i {li:.0} of {w}");
        assert_eq!(ri < (w / 2) as f64, !left_at_low_i, "{name}: right hippocampus at array i {ri:.0} of {w}");
        left_masks.push(l);
    }
    // Unflipped, the flipped case's mask is the plain case's.
    let mut back = vec![0u8; left_masks[1].len()];
    for k in 0..d {
        for j in 0..h {
            for i in 0..w {
                back[(k * h + j) * w + i] = left_masks[1][(k * h + j) * w + (w - 1 - i)];
            }
        }
    }
    let agree = dice(&back, &left_masks[0]);
    assert!(agree > 0.9, "plain and flipped left hippocampus agree at Dice {agree:.3}");
}

/// A synthetic T1 from the aseg labels (white matter bright, grey matter mid, CSF dark), on covale's grid.
fn synthetic_t1(labels: &Volume) -> Image {
    let tone = |v: i32| -> f32 {
        match v {
            0 => 0.0,
            2 | 41 | 7 | 46 | 16 | 28 | 60 | 85 | 251..=255 => 1.0,
            13 | 52 => 0.85,
            10 | 49 => 0.8,
            11 | 12 | 50 | 51 | 26 | 58 => 0.65,
            4 | 5 | 14 | 15 | 24 | 43 | 44 | 31 | 63 => 0.2,
            _ => 0.55,
        }
    };
    let mut data = Vec::new();
    labels.view().unwrap().for_each(|v| data.push(tone(v as i32)));
    Image::new(data, labels.dims, labels.geometry.ijk_to_ras).unwrap()
}

/// The two MNI releases (nilearn's ICBM 2009a template, covale's FSL MNI152 grid) are measured against each
/// other once, by registering the template to a synthetic T1 built from the labels. The result is reported,
/// not applied: the tests' truth carries the labels with the identity between the two spaces.
#[test]
fn template_to_covale_offset_is_millimetres() {
    let (_, template) = load();
    let (labels, _) = nifti::read(&common::data(ASEG)).unwrap();
    assert_eq!(labels.dims, [182, 218, 182]);
    let g = labels.geometry.ijk_to_ras;
    assert_eq!(
        [g[0][0], g[0][3], g[1][3], g[2][3]],
        [-1.0, 90.0, -126.0, -72.0],
        "covale grid: LAS, origin (90,−126,−72)"
    );
    let synth = synthetic_t1(&labels);
    let opts = RegisterOptions::default();
    let fixed = Pyramid::new(&synth, &opts.levels_mm).unwrap();
    let moving = Pyramid::new(&template, &opts.levels_mm).unwrap();
    let reg = register(&fixed, &moving, &opts).unwrap();
    let a = reg.fixed_to_moving;
    let c = synth.bright_centroid();
    let at_c = a.apply(c);
    let shift: Vec<f64> = (0..3).map(|k| at_c[k] - c[k]).collect();
    let scales = a.column_norms();
    let worst = max_disagreement(&a, &Affine::IDENTITY, c);
    let bc = (template.bright_centroid(), c);
    println!(
        "covale world -> template world: shift at the brain centre {:?} mm, column scales {:.3?}, max displacement within 60 mm {:.2} mm, NCC {:.3}; bright-voxel centroids template {:.1?} vs synthetic {:.1?}",
        shift.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>(),
        scales,
        worst,
        reg.ncc,
        bc.0,
        bc.1
    );
    println!("matrix {:.4?}", a.0);
    assert!(reg.ncc > 0.7, "the synthetic T1 must resemble the template (NCC {:.3})", reg.ncc);
    assert!(worst < 8.0, "the two MNI releases differ by {worst:.2} mm: more than the mm-level expected");
}

#[test]
fn brain_structures_by_text_alone_through_a_session() {
    use voxprompt::engine::{BrainAtlasFiles, Engine, EngineOptions};
    use voxprompt::session::SessionOptions;
    use voxprompt::volume::intensity::IntensityMapping;

    let engine = Engine::new(&EngineOptions {
        ort_library: Some(common::ort_lib()),
        model_dirs: vec![common::model_dir()],
        session: voxprompt::model::SessionConfig { threads: 2, ..Default::default() },
        brain_atlas: Some(BrainAtlasFiles { template: common::data(TEMPLATE), labels: common::data(ASEG) }),
    })
    .unwrap();
    let (atlas, template) = load();
    let centre = template.bright_centroid();
    // Other draws than the registration test's, so the session path sees cases of its own.
    let mut rng = Rng(0xB4A1_5E55_2026);
    let cases = 5;
    let mut all = Vec::new();
    for n in 0..cases {
        let case = draw(&mut rng, n, &template, centre);
        let moved = template.resample(case.dims, case.grid, &case.truth).unwrap();
        let data = degrade(&mut rng, &moved, case.gamma);
        let vol = through_nifti(&format!("session-{}", case.name), &data, case.dims, case.grid);
        let truth = masks(&atlas.fit_with_transform(case.dims, &vol.geometry, case.truth).unwrap(), case.dims);
        let mut s = engine.open_session(&vol.view().unwrap(), IntensityMapping::MR, SessionOptions::default()).unwrap();
        let t0 = Instant::now();
        for (k, (phrase, _)) in STRUCTURES.iter().enumerate() {
            let o = s.add_text(k as u8 + 1, phrase).unwrap_or_else(|e| panic!("{phrase}: {e}"));
            assert!(o.prompted && o.regions[0].2 > 0, "{phrase}: {o:?}");
        }
        // The first phrase registers the atlas onto this session's image; the others reuse the fit.
        let texts = t0.elapsed();
        let r = s.run(None).unwrap();
        assert_eq!(r.slices_encoded, 0, "the prior is the answer: no model runs");
        let mask = s.compose(false).0;
        let d: Vec<f64> = (0..STRUCTURES.len())
            .map(|k| {
                let got: Vec<u8> = mask.data.iter().map(|&m| (m == k as u8 + 1) as u8).collect();
                dice(&got, &truth[k])
            })
            .collect();
        println!(
            "{}: 10 text prompts {:.2} s (one registration), Dice {}",
            case.name,
            texts.as_secs_f64(),
            d.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(" ")
        );
        all.extend(d);
    }
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    println!("mean Dice over {} structures × {cases} cases through sessions: {mean:.3}", STRUCTURES.len());
    assert!(mean >= 0.70, "mean {mean:.3}");
    // On a CT session, or without an atlas, a brain structure is refused with the reason.
    let v = common::volume("tests/fixtures/data/example_ct_sm.nii.gz");
    let mut ct = engine.open_session(&v.view().unwrap(), IntensityMapping::CT, SessionOptions::default()).unwrap();
    let e = ct.add_text(1, "left caudate").unwrap_err();
    assert!(e.to_string().contains("mapped as CT"), "{e}");
}
