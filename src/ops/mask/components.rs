//! Connected components of binary masks, and the clean-ups built on them.

use super::check_len;
use super::runs::RunLabels;

/// Which neighbours touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Shared face: 6 neighbours in 3D, 4 in 2D.
    Faces,
    /// Shared face, edge or corner: 26 neighbours in 3D, 8 in 2D.
    Full,
}

/// Connected components of a mask, with a label per voxel (the tests' reference, and the anatomy prior's
/// labelling on its coarse grids, where a per-voxel map is small; the mask clean-ups work on runs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Components {
    /// Per voxel: 0 for background, `1..=n` for components, numbered in memory order of each
    /// component's first voxel.
    pub(crate) labels: Vec<u32>,
    /// `sizes[c - 1]` is the voxel count of component `c`.
    pub(crate) sizes: Vec<usize>,
}

/// Labels the nonzero voxels of a `[w, h, d]` volume.
///
/// # Panics
/// If `mask.len() != w * h * d`, or the mask has more than `u32::MAX` runs.
pub(crate) fn components_3d(mask: &[u8], dims: [usize; 3], conn: Connectivity) -> Components {
    check_len(mask, dims);
    let mut rl = RunLabels::default();
    rl.label::<true>(mask, dims, conn);
    rl.resolve();
    let mut labels = vec![0u32; mask.len()];
    rl.for_each_run(dims[0], |x, span| labels[span].fill(rl.comp[x] + 1));
    Components { labels, sizes: rl.sizes }
}

/// Number of connected components of the nonzero pixels of a `w × h` image.
///
/// # Panics
/// If `mask.len() != w * h`.
pub fn count_components_2d(mask: &[u8], w: usize, h: usize, conn: Connectivity) -> usize {
    let dims = [w, h, 1];
    check_len(mask, dims);
    let mut rl = RunLabels::default();
    rl.label::<true>(mask, dims, conn);
    rl.resolve()
}

/// Zeroes the components with fewer than `min_voxels` voxels, then, if `keep_largest`, every component but
/// the largest (ties: the first in memory order), from a single labelling (removing small components never
/// changes the other components, so one pass decides both); returns voxels removed.
///
/// # Panics
/// If `mask.len() != w * h * d`.
pub(crate) fn prune_3d(
    mask: &mut [u8],
    dims: [usize; 3],
    conn: Connectivity,
    min_voxels: usize,
    keep_largest: bool,
) -> usize {
    check_len(mask, dims);
    if min_voxels <= 1 && !keep_largest {
        return 0;
    }
    let mut rl = RunLabels::default();
    rl.label::<true>(mask, dims, conn);
    let n = rl.resolve();
    let mut largest = None;
    if keep_largest {
        // Ids follow memory order, so a strict `>` leaves ties with the earliest component.
        for c in 0..n {
            if largest.is_none_or(|l: usize| rl.sizes[c] > rl.sizes[l]) {
                largest = Some(c);
            }
        }
    }
    let doomed = |c: usize| rl.sizes[c] < min_voxels || largest.is_some_and(|l| l != c);
    if !(0..n).any(doomed) {
        return 0;
    }
    let mut removed = 0;
    rl.for_each_run(dims[0], |x, span| {
        if doomed(rl.comp[x] as usize) {
            removed += span.len();
            mask[span].fill(0);
        }
    });
    removed
}

/// A run of pixels `span` (indices into slice `z`'s own `w × h` mask).
pub type SliceSpan = (usize, std::ops::Range<usize>);

/// On a stack of `w × h` slice masks (`None`: an all-background slice), zeroes every 3D component but the
/// one with the most voxels on the slices `keys` (a key listed twice counts twice; keys past the stack
/// count nothing); ties, and no key voxels at all, go to the larger component, then to the later one in
/// memory order. Returns the runs it zeroed, so callers can update data that follows the mask; empty when
/// the stack has at most one component.
///
/// Works on runs and never builds a per-voxel label map (on 512×512×300, components_3d's map is 300 MiB
/// plus a 75 MiB dense copy of the stack).
///
/// # Panics
/// If a present slice's length is not `w * h`, or the stack has more than `u32::MAX` runs.
pub fn keep_component_touching(
    slices: &mut [Option<&mut [u8]>],
    [w, h]: [usize; 2],
    keys: &[usize],
    conn: Connectivity,
) -> Vec<SliceSpan> {
    let n = w * h;
    let mut rl = RunLabels::default();
    {
        let view: Vec<Option<&[u8]>> = slices.iter().map(|s| s.as_deref()).collect();
        check_slices(&view, n);
        rl.label_slices::<true>(&view, [w, h], conn);
    }
    let count = rl.resolve();
    if count <= 1 {
        return Vec::new();
    }
    let mut on_keys = vec![0usize; count];
    for &z in keys.iter().filter(|&&z| z < slices.len()) {
        for r in z * h..(z + 1) * h {
            for x in rl.row_first[r]..rl.row_first[r + 1] {
                let run = rl.runs[x];
                on_keys[rl.comp[x] as usize] += (run.end - run.start) as usize;
            }
        }
    }
    // `>=` so that, as `Iterator::max_by_key` does, the last of equal candidates wins.
    let mut main = 0;
    for c in 1..count {
        if (on_keys[c], rl.sizes[c]) >= (on_keys[main], rl.sizes[main]) {
            main = c;
        }
    }
    let mut removed = Vec::new();
    rl.for_each_run(w, |x, span| {
        if rl.comp[x] as usize != main {
            let z = span.start / n;
            let span = span.start - z * n..span.end - z * n;
            slices[z].as_deref_mut().expect("a run lies in a present slice")[span.clone()].fill(0);
            removed.push((z, span));
        }
    });
    removed
}

/// Per slice of a stack of `w × h` slice masks (`None`: an all-background slice), the voxels of the
/// largest 3D component (ties: the first in memory order); all zero when the stack is empty. Works on runs,
/// without a per-voxel label map.
///
/// # Panics
/// If a present slice's length is not `w * h`, or the stack has more than `u32::MAX` runs.
pub fn largest_component_area_per_slice(
    slices: &[Option<&[u8]>],
    [w, h]: [usize; 2],
    conn: Connectivity,
) -> Vec<usize> {
    let n = w * h;
    check_slices(slices, n);
    let mut per_slice = vec![0; slices.len()];
    let mut rl = RunLabels::default();
    rl.label_slices::<true>(slices, [w, h], conn);
    let count = rl.resolve();
    // Strict `>`: ids follow memory order, so ties stay with the earliest component.
    let Some(largest) = (0..count).reduce(|a, c| if rl.sizes[c] > rl.sizes[a] { c } else { a }) else {
        return per_slice;
    };
    rl.for_each_run(w, |x, span| {
        if rl.comp[x] as usize == largest {
            per_slice[span.start / n] += span.len();
        }
    });
    per_slice
}

fn check_slices(slices: &[Option<&[u8]>], n: usize) {
    for (z, s) in slices.iter().enumerate() {
        if let Some(s) = s {
            assert_eq!(s.len(), n, "slice {z} has {} pixels, not {n}", s.len());
        }
    }
}

/// The stack of `slice_len`-pixel slice masks as one dense `[w, h, d]` volume, absent slices all zero.
///
/// # Panics
/// If a present slice's length is not `slice_len`.
pub fn slices_to_dense(slices: &[Option<&[u8]>], slice_len: usize) -> Vec<u8> {
    check_slices(slices, slice_len);
    let mut vol = vec![0u8; slice_len * slices.len()];
    for (z, s) in slices.iter().enumerate() {
        if let Some(s) = s {
            vol[z * slice_len..(z + 1) * slice_len].copy_from_slice(s);
        }
    }
    vol
}

#[cfg(test)]
mod tests {
    use super::super::testing::{count, fill_box, noise};
    use super::super::{fill_holes_3d, fill_holes_slices};
    use super::*;

    #[test]
    fn two_blobs_keep_largest() {
        let dims = [10, 10, 10];
        let mut m = vec![0u8; 1000];
        fill_box(&mut m, dims, [0, 0, 0], [3, 3, 3], 1); // 27
        fill_box(&mut m, dims, [6, 6, 6], [8, 8, 8], 1); // 8
        let c = components_3d(&m, dims, Connectivity::Full);
        assert_eq!(c.sizes, vec![27, 8]);
        assert_eq!(c.labels[0], 1);
        assert_eq!(c.labels[(6 * 10 + 6) * 10 + 6], 2);
        assert_eq!(c.labels[999], 0);

        assert_eq!(prune_3d(&mut m, dims, Connectivity::Full, 0, true), 8);
        assert_eq!(count(&m, 1), 27);
        assert_eq!(m[(7 * 10 + 7) * 10 + 7], 0);
        assert_eq!(prune_3d(&mut m, dims, Connectivity::Full, 0, true), 0);
    }

    #[test]
    fn keep_largest_tie_keeps_first_in_memory_order() {
        let dims = [8, 1, 1];
        let mut m = vec![0, 2, 2, 0, 0, 3, 3, 0];
        assert_eq!(prune_3d(&mut m, dims, Connectivity::Faces, 0, true), 2);
        assert_eq!(m, vec![0, 2, 2, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn diagonal_pair_faces_vs_full() {
        let dims = [2, 2, 2];
        let mut m = vec![0u8; 8];
        m[0] = 1; // (0,0,0)
        m[7] = 1; // (1,1,1)
        assert_eq!(components_3d(&m, dims, Connectivity::Faces).sizes, vec![1, 1]);
        assert_eq!(components_3d(&m, dims, Connectivity::Full).sizes, vec![2]);

        // 2D: (0,0) and (1,1).
        let m2 = [1u8, 0, 0, 1];
        assert_eq!(count_components_2d(&m2, 2, 2, Connectivity::Faces), 2);
        assert_eq!(count_components_2d(&m2, 2, 2, Connectivity::Full), 1);
        // Anti-diagonal in 2D and across slices (the (j+1, k-1) direction).
        let m3 = [0u8, 1, 1, 0];
        assert_eq!(count_components_2d(&m3, 2, 2, Connectivity::Full), 1);
        let mut m4 = vec![0u8; 8];
        m4[2] = 1; // (0,1,0)
        m4[5] = 1; // (1,0,1)
        assert_eq!(components_3d(&m4, dims, Connectivity::Full).sizes, vec![2]);
        assert_eq!(components_3d(&m4, dims, Connectivity::Faces).sizes, vec![1, 1]);
    }

    #[test]
    fn components_of_an_image_label_in_memory_order() {
        #[rustfmt::skip]
        let m = [
            0, 0, 1, 1,
            1, 0, 0, 1,
            1, 0, 1, 0,
        ];
        let c = components_3d(&m, [4, 3, 1], Connectivity::Faces);
        assert_eq!(c.labels, vec![0, 0, 1, 1, 2, 0, 0, 1, 2, 0, 3, 0]);
        assert_eq!(c.sizes, vec![3, 2, 1]);
        let c8 = components_3d(&m, [4, 3, 1], Connectivity::Full);
        assert_eq!(c8.sizes, vec![4, 2]);
        // A U shape whose arms are joined only at the bottom: the later row merges two roots.
        #[rustfmt::skip]
        let u = [
            1, 0, 1,
            1, 0, 1,
            1, 1, 1,
        ];
        let cu = components_3d(&u, [3, 3, 1], Connectivity::Faces);
        assert_eq!(cu.sizes, vec![7]);
        assert!(cu.labels.iter().zip(&u).all(|(&l, &v)| l == u32::from(v)));
    }

    #[test]
    fn remove_small_exact_count() {
        let dims = [12, 12, 3];
        let mut m = vec![0u8; 12 * 12 * 3];
        fill_box(&mut m, dims, [0, 0, 0], [4, 4, 2], 1); // 32
        fill_box(&mut m, dims, [6, 6, 0], [8, 8, 1], 1); // 4
        fill_box(&mut m, dims, [10, 10, 2], [11, 11, 3], 1); // 1
        assert_eq!(prune_3d(&mut m, dims, Connectivity::Full, 1, false), 0);
        assert_eq!(prune_3d(&mut m, dims, Connectivity::Full, 5, false), 5);
        assert_eq!(count(&m, 1), 32);
        assert_eq!(prune_3d(&mut m, dims, Connectivity::Full, 32, false), 0);
        assert_eq!(prune_3d(&mut m, dims, Connectivity::Full, 33, false), 32);
        assert_eq!(count(&m, 0), m.len());
    }

    #[test]
    fn empty_and_degenerate_dims() {
        let mut e: Vec<u8> = Vec::new();
        assert_eq!(components_3d(&e, [0, 4, 4], Connectivity::Full).sizes, Vec::<usize>::new());
        assert_eq!(prune_3d(&mut e, [4, 0, 4], Connectivity::Full, 0, true), 0);
        assert_eq!(fill_holes_slices(&mut e, [4, 4, 0], 1), 0);
        assert_eq!(fill_holes_3d(&mut e, [0, 0, 0], 1), 0);
        let mut z = vec![0u8; 27];
        assert_eq!(prune_3d(&mut z, [3, 3, 3], Connectivity::Faces, 0, true), 0);
        assert_eq!(fill_holes_3d(&mut z, [3, 3, 3], 1), 0);
    }

    #[test]
    #[should_panic(expected = "does not match dims")]
    fn wrong_length_panics() {
        components_3d(&[0u8; 5], [2, 2, 2], Connectivity::Full);
    }

    /// `cargo test --release --lib ops::mask::components::tests::large -- --ignored --nocapture`
    #[test]
    #[ignore = "large volume; timing check"]
    fn large_volume_timing() {
        let dims = [512usize, 512, 300];
        let [w, h, d] = dims;
        let mut m = vec![0u8; w * h * d];
        // A hollow ball (radius 120, shell 10) and a small blob.
        let (cx, cy, cz) = (256i64, 256i64, 150i64);
        for k in 0..d {
            for j in 0..h {
                for i in 0..w {
                    let (x, y, z) = (i as i64 - cx, j as i64 - cy, k as i64 - cz);
                    let r2 = x * x + y * y + z * z;
                    if (110 * 110..120 * 120).contains(&r2) {
                        m[(k * h + j) * w + i] = 1;
                    }
                }
            }
        }
        fill_box(&mut m, dims, [10, 10, 10], [15, 15, 15], 1);
        let t = std::time::Instant::now();
        let removed = prune_3d(&mut m, dims, Connectivity::Full, 0, true);
        let t_keep = t.elapsed();
        let t = std::time::Instant::now();
        let filled = fill_holes_slices(&mut m, dims, 1);
        let t_fill = t.elapsed();
        let t = std::time::Instant::now();
        let filled3 = fill_holes_3d(&mut m, dims, 1);
        let t_fill3 = t.elapsed();
        eprintln!("keep_largest {t_keep:?}, fill slices {t_fill:?}, fill 3d {t_fill3:?}");
        assert_eq!(removed, 125);
        assert!(filled > 0);
        assert_eq!(filled3, 0);
    }

    /// A stack of slice masks, and what keeping one component left of it plus the (slice, pixel) zeroed.
    type Kept = (Vec<Option<Vec<u8>>>, Vec<(usize, usize)>);

    /// The dense implementation `keep_component_touching` replaced (`session.rs` `keep_main_component`
    /// before this module had it), kept as its oracle: returns the kept masks and the zeroed voxels as
    /// (slice, pixel).
    fn keep_touching_dense(slices: &[Option<Vec<u8>>], [w, h]: [usize; 2], keys: &[usize], conn: Connectivity) -> Kept {
        let (n, d) = (w * h, slices.len());
        let mut vol = vec![0u8; n * d];
        for (z, s) in slices.iter().enumerate() {
            if let Some(s) = s {
                vol[z * n..(z + 1) * n].copy_from_slice(s);
            }
        }
        let comps = components_3d(&vol, [w, h, d], conn);
        let mut out = slices.to_vec();
        if comps.sizes.len() <= 1 {
            return (out, Vec::new());
        }
        let mut on_keys = vec![0usize; comps.sizes.len() + 1];
        for &z in keys {
            for &l in &comps.labels[z * n..(z + 1) * n] {
                on_keys[l as usize] += 1;
            }
        }
        on_keys[0] = 0;
        let main = (1..on_keys.len()).max_by_key(|&c| (on_keys[c], comps.sizes[c - 1])).unwrap() as u32;
        let mut removed = Vec::new();
        for (z, s) in out.iter_mut().enumerate() {
            let Some(s) = s else { continue };
            let labels = &comps.labels[z * n..(z + 1) * n];
            for i in 0..n {
                if s[i] > 0 && labels[i] != main {
                    s[i] = 0;
                    removed.push((z, i));
                }
            }
        }
        (out, removed)
    }

    /// The dense implementation `largest_component_area_per_slice` replaced (`policy::main_overlap`).
    fn largest_area_dense(slices: &[Option<Vec<u8>>], [w, h]: [usize; 2], conn: Connectivity) -> Vec<usize> {
        let d = slices.len();
        let mut vol = vec![0u8; w * h * d];
        for (z, s) in slices.iter().enumerate() {
            if let Some(s) = s {
                vol[z * w * h..(z + 1) * w * h].copy_from_slice(s);
            }
        }
        let comps = components_3d(&vol, [w, h, d], conn);
        let Some((best, _)) = comps.sizes.iter().enumerate().max_by_key(|(i, &s)| (s, std::cmp::Reverse(*i))) else {
            return vec![0; d];
        };
        let best = best as u32 + 1;
        (0..d).map(|z| comps.labels[z * w * h..(z + 1) * w * h].iter().filter(|&&l| l == best).count()).collect()
    }

    /// Runs `keep_component_touching` on a copy of `slices` and expands its spans to (slice, pixel).
    fn keep_touching_runs(slices: &[Option<Vec<u8>>], wh: [usize; 2], keys: &[usize], conn: Connectivity) -> Kept {
        let mut out = slices.to_vec();
        let mut view: Vec<Option<&mut [u8]>> = out.iter_mut().map(|s| s.as_deref_mut()).collect();
        let spans = keep_component_touching(&mut view, wh, keys, conn);
        let removed = spans.into_iter().flat_map(|(z, span)| span.map(move |i| (z, i))).collect();
        (out, removed)
    }

    fn views(slices: &[Option<Vec<u8>>]) -> Vec<Option<&[u8]>> {
        slices.iter().map(|s| s.as_deref()).collect()
    }

    /// A deterministic stream for the random cases.
    struct Lcg(u64);
    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    fn check_against_dense(slices: &[Option<Vec<u8>>], wh: [usize; 2], keys: &[usize], what: &str) {
        for conn in [Connectivity::Faces, Connectivity::Full] {
            let want = keep_touching_dense(slices, wh, keys, conn);
            let got = keep_touching_runs(slices, wh, keys, conn);
            assert_eq!(got, want, "{what} {wh:?} keys {keys:?} {conn:?}");
            let want = largest_area_dense(slices, wh, conn);
            assert_eq!(largest_component_area_per_slice(&views(slices), wh, conn), want, "{what} {wh:?} {conn:?}");
        }
    }

    #[test]
    fn run_level_stack_ops_match_dense_on_random_masks() {
        let mut rng = Lcg(7);
        let mut cases = 0;
        for (w, h, d) in [(1, 1, 1), (1, 9, 6), (9, 1, 6), (13, 11, 7), (16, 16, 12), (70, 5, 4), (5, 5, 40)] {
            for percent in [2, 15, 35, 55, 80] {
                for absent in [0, 30] {
                    let slices: Vec<Option<Vec<u8>>> = (0..d)
                        .map(|z| {
                            (rng.below(100) >= absent).then(|| {
                                let m = noise(w * h, percent, rng.below(1 << 40) + z as u64);
                                // Any nonzero value is foreground.
                                m.into_iter().map(|v| v * (1 + rng.below(255) as u8)).collect()
                            })
                        })
                        .collect();
                    let keys: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(d as u64) as usize).collect();
                    check_against_dense(&slices, [w, h], &keys, &format!("{percent}% absent {absent}%"));
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 70);
    }

    #[test]
    fn run_level_stack_ops_match_dense_on_structured_masks() {
        let (w, h, d) = (12, 10, 9);
        let stack = |boxes: &[([usize; 3], [usize; 3])], absent: &[usize]| -> Vec<Option<Vec<u8>>> {
            let mut vol = vec![0u8; w * h * d];
            for &(lo, hi) in boxes {
                fill_box(&mut vol, [w, h, d], lo, hi, 1);
            }
            (0..d).map(|z| (!absent.contains(&z)).then(|| vol[z * w * h..(z + 1) * w * h].to_vec())).collect()
        };
        let big = ([0, 0, 0], [5, 5, 9]); // 225 voxels on every slice
        let small = ([8, 6, 3], [11, 9, 6]); // 27 voxels on slices 3..6
        let diagonal = ([5, 5, 0], [7, 7, 2]); // touches `big` only across an edge
        for (boxes, absent) in [
            (vec![], vec![]),
            (vec![big], vec![]),
            (vec![big, small], vec![]),
            (vec![big, small], vec![4]),
            (vec![big, small, diagonal], vec![]),
            (vec![small, ([0, 0, 0], [3, 3, 3])], vec![1, 2]),
        ] {
            for keys in [vec![], vec![0], vec![4], vec![4, 4], vec![3, 4, 5], vec![8]] {
                check_against_dense(&stack(&boxes, &absent), [w, h], &keys, &format!("{boxes:?} absent {absent:?}"));
            }
        }
        // On key slice 4 `big` has 25 voxels and `small` 9: `small` goes.
        let s = stack(&[big, small], &[]);
        let (kept, removed) = keep_touching_runs(&s, [w, h], &[4], Connectivity::Full);
        assert_eq!(removed.len(), 27);
        assert_eq!(kept[3].as_ref().unwrap().iter().filter(|&&v| v != 0).count(), 25);
        // The main component is the one on the key slices, even when smaller.
        let only_small = stack(&[([0, 0, 0], [5, 5, 2]), small], &[]);
        let (_, removed) = keep_touching_runs(&only_small, [w, h], &[4], Connectivity::Full);
        assert_eq!(removed.len(), 50, "no key voxels on the larger one: it goes");
        assert_eq!(largest_component_area_per_slice(&views(&only_small), [w, h], Connectivity::Full)[0], 25);
    }

    #[test]
    fn keep_component_touching_ties() {
        // Two 1×1×2 columns, one key slice each: key counts tie and sizes tie, so the later one stays.
        let (w, h) = (3, 1);
        let slices = vec![Some(vec![1u8, 0, 1]), Some(vec![1, 0, 1])];
        let (kept, removed) = keep_touching_runs(&slices, [w, h], &[0], Connectivity::Faces);
        assert_eq!(kept, vec![Some(vec![0, 0, 1]), Some(vec![0, 0, 1])]);
        assert_eq!(removed, vec![(0, 0), (1, 0)]);
        // Equal key counts, the first one larger: it stays.
        let slices = vec![Some(vec![1u8, 0, 1]), Some(vec![1, 0, 0])];
        let (kept, _) = keep_touching_runs(&slices, [w, h], &[0], Connectivity::Faces);
        assert_eq!(kept, vec![Some(vec![1, 0, 0]), Some(vec![1, 0, 0])]);
        // One component, or none: nothing to do.
        let one = vec![Some(vec![1u8, 1, 1]), None];
        assert!(keep_touching_runs(&one, [w, h], &[1], Connectivity::Faces).1.is_empty());
        assert!(keep_touching_runs(&[None, None], [w, h], &[0], Connectivity::Full).1.is_empty());
        // Largest per slice: size ties keep the first in memory order.
        let pair = vec![Some(vec![1u8, 0, 1]), None];
        assert_eq!(largest_component_area_per_slice(&views(&pair), [w, h], Connectivity::Faces), vec![1, 0]);
        assert_eq!(largest_component_area_per_slice(&[None, None], [w, h], Connectivity::Full), vec![0, 0]);
        assert_eq!(largest_component_area_per_slice(&[], [w, h], Connectivity::Full), Vec::<usize>::new());
    }

    #[test]
    fn slices_to_dense_zero_fills_absent_slices() {
        let a = [1u8, 2, 3, 4];
        assert_eq!(slices_to_dense(&[None, Some(&a), None], 4), vec![0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0]);
        assert_eq!(slices_to_dense(&[], 4), Vec::<u8>::new());
    }

    #[test]
    #[should_panic(expected = "slice 1 has 3 pixels, not 4")]
    fn stack_slice_of_wrong_length_panics() {
        largest_component_area_per_slice(&[None, Some(&[1, 1, 1])], [2, 2], Connectivity::Full);
    }
}
