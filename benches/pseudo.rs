//! Pseudo-label confidence against Dice on the DATA.md volumes (`cargo bench --bench pseudo`, needs
//! `make setup`): every structure from its reference box under the default policy, one session per case.
//! For each labelled slice its confidence (mean |2p − 1| of its mask, what `--ignore-slices-below` reads)
//! and its Dice with the reference; per threshold, how many slices the rule keeps and ignores and their mean
//! Dice, per case and pooled; then each structure's case confidence (`--reject-case-below`) beside its 3D Dice.

mod common;

use voxprompt::io::read_volume;
use voxprompt::ops::mask::dice;
use voxprompt::session::SessionOptions;
use voxprompt::volume::BoxIjk;

const THRESHOLDS: [f32; 5] = [0.5, 0.6, 0.7, 0.8, 0.9];

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

fn row(id: &str, slices: &[(f32, f64)]) {
    let cells: Vec<String> = THRESHOLDS
        .iter()
        .map(|&t| {
            let kept = mean(slices.iter().filter(|s| s.0 >= t).map(|s| s.1));
            let ignored = mean(slices.iter().filter(|s| s.0 < t).map(|s| s.1));
            let n = slices.iter().filter(|s| s.0 < t).count();
            let f = |v: Option<f64>| v.map_or("    –".into(), |v| format!("{v:.3}"));
            format!("{} / {} ({n:>3})", f(kept), f(ignored))
        })
        .collect();
    println!("{id:<9} {:>6} | {}", slices.len(), cells.join(" | "));
}

fn main() {
    let engine = common::litemedsam_engine();
    println!("# pseudo-label confidence vs Dice, LiteMedSAM, default policy, reference boxes ({})", common::machine());
    println!(
        "{:<9} {:>6} | {}",
        "case",
        "slices",
        THRESHOLDS.map(|t| format!("Dice kept / ignored (n ignored) at {t}")).join(" | ")
    );
    let mut pooled = Vec::new();
    let mut structures = Vec::new();
    for case in common::DATA_CASES {
        let img = read_volume(&common::root().join(case.image)).expect("image").volume;
        let lab = read_volume(&common::root().join(case.labels)).expect("labels").volume;
        let lab = voxprompt::volume::regrid::onto_grid(&lab, img.dims, &img.geometry).expect("label grid");
        let labels = lab.to_f64().unwrap();
        let mut s = engine.open_session(&img.view().unwrap(), case.mapping, SessionOptions::default()).unwrap();
        let mut objects = Vec::new();
        for (k, &(value, name)) in case.structures.iter().enumerate() {
            let Some((b, _)) = BoxIjk::of_label(&labels, img.dims, value as f64) else { continue };
            s.add_box(k as u8 + 1, b).unwrap();
            objects.push((k as u8 + 1, value, name));
        }
        s.run(None).unwrap();
        let mask = s.compose(false).0;
        let [w, h, _] = mask.dims;
        let mut slices = Vec::new();
        for sum in s.summaries() {
            let &(label, value, name) = objects.iter().find(|o| o.0 == sum.label).unwrap();
            for p in sum.per_slice.iter().filter(|p| p.area > 0) {
                let range = p.slice * w * h..(p.slice + 1) * w * h;
                let got = mask.data[range.clone()].iter().map(|&m| m == label);
                let truth = labels[range].iter().map(|&l| l == value as f64);
                slices.push((p.confidence, dice(got, truth)));
            }
            let d3 = dice(mask.data.iter().map(|&m| m == label), labels.iter().map(|&l| l == value as f64));
            structures.push((case.id, name, sum.confidence, d3));
        }
        row(case.id, &slices);
        pooled.extend(slices);
    }
    row("all", &pooled);
    println!("\n{:<9} {:<9} {:>10} {:>7}", "case", "structure", "confidence", "Dice");
    structures.sort_by(|a, b| b.2.total_cmp(&a.2));
    for (case, name, c, d) in &structures {
        println!("{case:<9} {name:<9} {c:>10.3} {d:>7.3}");
    }
}
