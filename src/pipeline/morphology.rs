//! Binary-mask morphology on `u8` volumes: connected components, small-component removal, hole filling,
//! the interior point used to place a positive point prompt, bounding boxes and Dice.
//!
//! Volumes are `[w, h, d]` with `i` fastest (`index = (k*h + j)*w + i`); a voxel is foreground when it
//! is nonzero. Component work is run-length based: each row is cut into maximal runs, runs of adjacent
//! rows are merged with union-find, and results are painted back run by run. Cost therefore follows the
//! number of runs rather than voxels × neighbours, and no per-voxel label map is built unless the caller
//! asks for one (`components_*`), which matters for 512×512×300 masks (a `u32` map alone is 300 MiB).

/// Which neighbours touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    /// Shared face: 6 neighbours in 3D, 4 in 2D.
    Faces,
    /// Shared face, edge or corner: 26 neighbours in 3D, 8 in 2D.
    Full,
}

/// Connected components of a mask.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Components {
    /// Per voxel: 0 for background, `1..=n` for components, numbered in memory order of each
    /// component's first voxel.
    pub labels: Vec<u32>,
    /// `sizes[c - 1]` is the voxel count of component `c`.
    pub sizes: Vec<usize>,
}

/// Labels the nonzero voxels of a `[w, h, d]` volume.
///
/// # Panics
/// If `mask.len() != w * h * d`, or the mask has more than `u32::MAX` runs.
pub fn components_3d(mask: &[u8], dims: [usize; 3], conn: Connectivity) -> Components {
    check_len(mask, dims);
    let mut rl = RunLabels::default();
    rl.label::<true>(mask, dims, conn);
    rl.resolve();
    let mut labels = vec![0u32; mask.len()];
    rl.for_each_run(dims[0], |x, span| labels[span].fill(rl.comp[x] + 1));
    Components { labels, sizes: rl.sizes }
}

/// Labels the nonzero pixels of a `w × h` image.
///
/// # Panics
/// If `mask.len() != w * h`.
pub fn components_2d(mask: &[u8], w: usize, h: usize, conn: Connectivity) -> Components {
    components_3d(mask, [w, h, 1], conn)
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

/// Zeroes every component but the largest (ties: the first in memory order); returns voxels removed.
///
/// # Panics
/// If `mask.len() != w * h * d`.
pub fn keep_largest_3d(mask: &mut [u8], dims: [usize; 3], conn: Connectivity) -> usize {
    prune_3d(mask, dims, conn, 0, true)
}

/// Zeroes components with fewer than `min_voxels` voxels; returns voxels removed.
///
/// # Panics
/// If `mask.len() != w * h * d`.
pub fn remove_small_3d(mask: &mut [u8], dims: [usize; 3], min_voxels: usize, conn: Connectivity) -> usize {
    prune_3d(mask, dims, conn, min_voxels, false)
}

/// `remove_small_3d` then, if `keep_largest`, `keep_largest_3d`, from a single labelling (removing small
/// components never changes the other components, so one pass decides both); returns voxels removed.
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

/// Sets background pixels that are not 4-connected to the image border to `value`; returns pixels
/// filled. `value` should be nonzero, or the holes stay background.
///
/// # Panics
/// If `mask.len() != w * h`.
pub fn fill_holes_2d(mask: &mut [u8], w: usize, h: usize, value: u8) -> usize {
    let dims = [w, h, 1];
    check_len(mask, dims);
    fill_holes(&mut RunLabels::default(), mask, dims, value, false)
}

/// `fill_holes_2d` on every k-slice; returns voxels filled.
///
/// Every 3D hole is also a hole of its slice (an in-slice path to the slice border is a path to the
/// volume border), so this fills a superset of what `fill_holes_3d` fills, and `fill_holes_3d` run
/// afterwards finds nothing.
///
/// # Panics
/// If `mask.len() != w * h * d`.
pub fn fill_holes_slices(mask: &mut [u8], dims: [usize; 3], value: u8) -> usize {
    check_len(mask, dims);
    let [w, h, _] = dims;
    let slice = w * h;
    if slice == 0 {
        return 0;
    }
    let mut rl = RunLabels::default();
    mask.chunks_exact_mut(slice).map(|s| fill_holes(&mut rl, s, [w, h, 1], value, false)).sum()
}

/// Sets background voxels that are not 6-connected to the volume border to `value`; returns voxels
/// filled.
///
/// # Panics
/// If `mask.len() != w * h * d`.
pub fn fill_holes_3d(mask: &mut [u8], dims: [usize; 3], value: u8) -> usize {
    check_len(mask, dims);
    fill_holes(&mut RunLabels::default(), mask, dims, value, true)
}

/// The foreground pixel farthest (exact Euclidean distance) from the background, with everything
/// outside the image counted as background; ties go to the first in memory order. `None` if the image
/// has no foreground.
///
/// Meijster's two-phase distance transform keeps this exact in integers, so ties are real ties and not
/// rounding artefacts of a chamfer metric.
///
/// # Panics
/// If `mask.len() != w * h`.
pub fn interior_point_2d(mask: &[u8], w: usize, h: usize) -> Option<(usize, usize)> {
    check_len(mask, [w, h, 1]);
    if !mask.iter().any(|&v| v != 0) {
        return None;
    }
    // Phase 1: per column, distance to the nearest background pixel in that column, with virtual
    // background rows at j = -1 and j = h. Row-at-a-time so memory is walked in order.
    let mut g = vec![0u32; mask.len()];
    for j in 0..h {
        let row = j * w..(j + 1) * w;
        if j == 0 {
            for (gv, &m) in g[row.clone()].iter_mut().zip(&mask[row]) {
                *gv = u32::from(m != 0);
            }
        } else {
            let (above, cur) = g.split_at_mut(j * w);
            let above = &above[(j - 1) * w..];
            for ((gv, &a), &m) in cur[..w].iter_mut().zip(above).zip(&mask[row]) {
                *gv = if m != 0 { a + 1 } else { 0 };
            }
        }
    }
    for gv in &mut g[(h - 1) * w..] {
        *gv = (*gv).min(1);
    }
    for j in (0..h - 1).rev() {
        let (cur, below) = g.split_at_mut((j + 1) * w);
        for (gv, &b) in cur[j * w..].iter_mut().zip(&below[..w]) {
            *gv = (*gv).min(b + 1);
        }
    }
    // Phase 2: per row, lower envelope of parabolas over columns -1..=w (the outer two are the
    // virtual background columns), shifted by one so indices stay unsigned.
    let m = w + 2;
    let mut col = vec![0i64; m];
    let mut s = vec![0usize; m];
    let mut t = vec![0usize; m];
    let mut best: Option<(i64, usize, usize)> = None;
    for j in 0..h {
        for (c, &gv) in col[1..=w].iter_mut().zip(&g[j * w..(j + 1) * w]) {
            *c = i64::from(gv);
        }
        let f = |x: usize, i: usize| {
            let dx = x as i64 - i as i64;
            dx * dx + col[i] * col[i]
        };
        let sep = |i: usize, u: usize| {
            let (ii, uu) = (i as i64, u as i64);
            (uu * uu - ii * ii + col[u] * col[u] - col[i] * col[i]).div_euclid(2 * (uu - ii))
        };
        let mut q: isize = 0;
        s[0] = 0;
        t[0] = 0;
        for u in 1..m {
            while q >= 0 && f(t[q as usize], s[q as usize]) > f(t[q as usize], u) {
                q -= 1;
            }
            if q < 0 {
                q = 0;
                s[0] = u;
            } else {
                let sw = 1 + sep(s[q as usize], u);
                if sw < m as i64 {
                    q += 1;
                    s[q as usize] = u;
                    t[q as usize] = sw as usize;
                }
            }
        }
        // The backward sweep yields columns right to left; remember the leftmost maximum of the row.
        let mut row_best: Option<(i64, usize)> = None;
        for u in (0..m).rev() {
            let qu = q as usize;
            if (1..=w).contains(&u) && mask[j * w + u - 1] != 0 {
                let dt = f(u, s[qu]);
                if row_best.is_none_or(|(bd, _)| dt >= bd) {
                    row_best = Some((dt, u - 1));
                }
            }
            if u == t[qu] {
                q -= 1;
            }
        }
        if let Some((dt, i)) = row_best {
            if best.is_none_or(|(bd, _, _)| dt > bd) {
                best = Some((dt, i, j));
            }
        }
    }
    best.map(|(_, i, j)| (i, j))
}

/// `[x0, y0, x1, y1]`, inclusive, of the nonzero pixels; `None` if there are none.
///
/// # Panics
/// If `mask.len() != w * h`.
pub fn bbox_2d(mask: &[u8], w: usize, h: usize) -> Option<[usize; 4]> {
    check_len(mask, [w, h, 1]);
    let mut bb: Option<[usize; 4]> = None;
    for (j, row) in mask.chunks_exact(w.max(1)).enumerate() {
        let Some(first) = row.iter().position(|&v| v != 0) else { continue };
        let last = row.iter().rposition(|&v| v != 0).unwrap_or(first);
        bb = Some(match bb {
            None => [first, j, last, j],
            Some([x0, y0, x1, _]) => [x0.min(first), y0, x1.max(last), j],
        });
    }
    bb
}

/// Dice coefficient `2|A∩B| / (|A| + |B|)` of the nonzero sets; 1.0 when both are empty.
///
/// # Panics
/// If `a.len() != b.len()`.
pub fn dice_u8(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len(), "dice_u8: masks differ in length");
    let (mut na, mut nb, mut both) = (0usize, 0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (usize::from(x != 0), usize::from(y != 0));
        na += x;
        nb += y;
        both += x & y;
    }
    if na + nb == 0 {
        1.0
    } else {
        2.0 * both as f64 / (na + nb) as f64
    }
}

fn check_len(mask: &[u8], [w, h, d]: [usize; 3]) {
    let n = w.checked_mul(h).and_then(|wh| wh.checked_mul(d)).expect("mask dims overflow usize");
    assert_eq!(mask.len(), n, "mask length {} does not match dims [{w}, {h}, {d}]", mask.len());
}

/// Fills the background components of `mask` that do not touch the border. The border is the
/// i/j edges of every slice, plus the first and last slice when `z_border`.
fn fill_holes(rl: &mut RunLabels, mask: &mut [u8], dims: [usize; 3], value: u8, z_border: bool) -> usize {
    let [w, h, d] = dims;
    rl.label::<false>(mask, dims, Connectivity::Faces);
    let n = rl.resolve();
    if n == 0 {
        return 0;
    }
    rl.open.clear();
    rl.open.resize(n, false);
    for r in 0..rl.row_first.len() - 1 {
        let (j, k) = (r % h, r / h);
        let edge_row = j == 0 || j + 1 == h || (z_border && (k == 0 || k + 1 == d));
        for x in rl.row_first[r]..rl.row_first[r + 1] {
            let run = rl.runs[x];
            if edge_row || run.start == 0 || run.end as usize == w {
                rl.open[rl.comp[x] as usize] = true;
            }
        }
    }
    if rl.open.iter().all(|&o| o) {
        return 0;
    }
    let mut filled = 0;
    let (comp, open) = (&rl.comp, &rl.open);
    rl.for_each_run(w, |x, span| {
        if !open[comp[x] as usize] {
            filled += span.len();
            mask[span].fill(value);
        }
    });
    filled
}

/// A maximal run `[start, end)` of selected voxels within one row.
#[derive(Debug, Clone, Copy)]
struct Run {
    start: u32,
    end: u32,
}

/// Run-length component labelling; kept as a struct so per-slice callers reuse its buffers.
#[derive(Debug, Default)]
struct RunLabels {
    runs: Vec<Run>,
    /// `row_first[r]..row_first[r + 1]` are the runs of row `r = k*h + j`.
    row_first: Vec<usize>,
    /// During labelling: union-find parent per run, always `<=` the run's own index, so each root is
    /// the earliest run of its set. After `resolve`: the run's 0-based component id.
    comp: Vec<u32>,
    /// Voxel count per component, valid after `resolve`.
    sizes: Vec<usize>,
    /// Scratch flag per component for `fill_holes`.
    open: Vec<bool>,
}

impl RunLabels {
    /// Builds runs of voxels with `(v != 0) == NONZERO` and unions runs that touch under `conn`.
    fn label<const NONZERO: bool>(&mut self, vol: &[u8], [w, h, d]: [usize; 3], conn: Connectivity) {
        self.runs.clear();
        self.row_first.clear();
        self.comp.clear();
        let rows = h * d;
        if w == 0 {
            self.row_first.resize(rows + 1, 0);
            return;
        }
        assert!(u32::try_from(w).is_ok(), "row width {w} exceeds u32");
        // Runs `a` (this row) and `b` (an earlier row) touch when `a`, widened by `slack` on both
        // sides, overlaps `b`; widening by one is what adds the diagonal neighbours.
        let slack = u32::from(conn == Connectivity::Full);
        self.row_first.reserve(rows + 1);
        for (r, row) in vol.chunks_exact(w).enumerate() {
            let first = self.runs.len();
            self.row_first.push(first);
            push_runs::<NONZERO>(row, &mut self.runs);
            let cur = first..self.runs.len();
            if cur.is_empty() {
                continue;
            }
            assert!(u32::try_from(cur.end).is_ok(), "more than u32::MAX runs");
            self.comp.extend(first as u32..cur.end as u32);
            let (j, k) = (r % h, r / h);
            // Only rows already scanned: the 2 (faces) or 4 (full) of the 13 backward neighbour
            // directions that lie in other rows; the in-row one is inside the maximal run.
            if j > 0 {
                self.merge(r - 1, cur.clone(), slack);
            }
            if k > 0 {
                let below = r - h;
                self.merge(below, cur.clone(), slack);
                if conn == Connectivity::Full {
                    if j > 0 {
                        self.merge(below - 1, cur.clone(), slack);
                    }
                    if j + 1 < h {
                        self.merge(below + 1, cur, slack);
                    }
                }
            }
        }
        self.row_first.push(self.runs.len());
    }

    /// Unions the runs `cur` of the current row with the touching runs of the earlier row `prev`.
    fn merge(&mut self, prev: usize, cur: std::ops::Range<usize>, slack: u32) {
        let (mut a, mut b) = (cur.start, self.row_first[prev]);
        let b_end = self.row_first[prev + 1];
        while a < cur.end && b < b_end {
            let (ra, rb) = (self.runs[a], self.runs[b]);
            if ra.start < rb.end + slack && rb.start < ra.end + slack {
                let (x, y) = (find(&mut self.comp, a as u32), find(&mut self.comp, b as u32));
                if x != y {
                    self.comp[x.max(y) as usize] = x.min(y);
                }
            }
            // Runs in a row are separated by at least one voxel, so the run that ends first cannot
            // touch anything further along the other row. Branch-free: on noisy masks this choice is
            // a coin flip the predictor would miss half the time.
            let a_first = usize::from(ra.end < rb.end);
            a += a_first;
            b += 1 - a_first;
        }
    }

    /// Turns parents into component ids numbered by first run (= memory order) and counts sizes;
    /// returns the number of components.
    fn resolve(&mut self) -> usize {
        self.sizes.clear();
        for x in 0..self.comp.len() {
            let p = self.comp[x] as usize;
            // `p < x` was already rewritten to its component id, which is also `x`'s.
            let id = if p == x {
                self.sizes.push(0);
                (self.sizes.len() - 1) as u32
            } else {
                self.comp[p]
            };
            self.comp[x] = id;
            let run = self.runs[x];
            self.sizes[id as usize] += (run.end - run.start) as usize;
        }
        self.sizes.len()
    }

    /// Calls `f(run index, voxel index range)` for every run.
    fn for_each_run(&self, w: usize, mut f: impl FnMut(usize, std::ops::Range<usize>)) {
        for r in 0..self.row_first.len().saturating_sub(1) {
            let base = r * w;
            for x in self.row_first[r]..self.row_first[r + 1] {
                let run = self.runs[x];
                f(x, base + run.start as usize..base + run.end as usize);
            }
        }
    }
}

/// Root of `x`, halving the path on the way (parents only ever point to smaller indices).
fn find(parent: &mut [u32], mut x: u32) -> u32 {
    loop {
        let p = parent[x as usize];
        if p == x {
            return x;
        }
        let g = parent[p as usize];
        parent[x as usize] = g;
        x = g;
    }
}

/// Appends the maximal runs of voxels with `(v != 0) == NONZERO` in `row`.
///
/// Works on 64-voxel bitmasks: uniform blocks (the bulk of any real mask) cost a few word operations,
/// and run edges inside mixed blocks come from `trailing_zeros` instead of a data-dependent branch per
/// voxel, which keeps noisy masks from being dominated by branch misses.
fn push_runs<const NONZERO: bool>(row: &[u8], runs: &mut Vec<Run>) {
    let mut inside = false;
    let mut start = 0;
    for (c, block) in row.chunks(64).enumerate() {
        let mut bits = nonzero_bits(block);
        if !NONZERO {
            let valid = if block.len() == 64 { u64::MAX } else { (1u64 << block.len()) - 1 };
            bits = !bits & valid;
        }
        if bits == if inside { u64::MAX } else { 0 } {
            continue;
        }
        // A set bit marks a voxel whose state differs from the voxel before it. Bits past a short
        // final block are unselected, so a run reaching the row end closes there.
        let mut edges = bits ^ ((bits << 1) | u64::from(inside));
        let base = c * 64;
        while edges != 0 {
            let at = base + edges.trailing_zeros() as usize;
            if inside {
                runs.push(Run { start: start as u32, end: at as u32 });
            } else {
                start = at;
            }
            inside = !inside;
            edges &= edges - 1;
        }
    }
    if inside {
        runs.push(Run { start: start as u32, end: row.len() as u32 });
    }
}

/// Bit `b` set when `block[b] != 0`, for a block of at most 64 voxels.
#[inline]
fn nonzero_bits(block: &[u8]) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Moves bit 0 of byte m to bit 56 + m; the shifted copies never overlap, so no carries interfere.
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let mut bits = 0u64;
    let mut words = block.chunks_exact(8);
    for (n, word) in (&mut words).enumerate() {
        let v = u64::from_le_bytes(word.try_into().expect("chunk of 8"));
        // High bit of each byte set iff the byte is nonzero, without carries between bytes.
        let high = (((v & LOW7) + LOW7) | v) & HIGH;
        bits |= ((high >> 7).wrapping_mul(GATHER) >> 56) << (8 * n);
    }
    let done = block.len() - words.remainder().len();
    for (b, &v) in words.remainder().iter().enumerate() {
        bits |= u64::from(v != 0) << (done + b);
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets the voxels of the box `lo..hi` (per axis, exclusive) to `v`.
    fn fill_box(mask: &mut [u8], dims: [usize; 3], lo: [usize; 3], hi: [usize; 3], v: u8) {
        for k in lo[2]..hi[2] {
            for j in lo[1]..hi[1] {
                let row = (k * dims[1] + j) * dims[0];
                mask[row + lo[0]..row + hi[0]].fill(v);
            }
        }
    }

    fn count(mask: &[u8], v: u8) -> usize {
        mask.iter().filter(|&&x| x == v).count()
    }

    /// Deterministic pseudo-random mask with roughly `percent`% foreground.
    fn noise(n: usize, percent: u64, mut seed: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                u8::from((seed >> 33) % 100 < percent)
            })
            .collect()
    }

    /// Plain BFS labelling, as an independent check of the run-based one.
    fn reference_count(mask: &[u8], dims: [usize; 3], conn: Connectivity) -> (usize, Vec<usize>) {
        let [w, h, d] = dims;
        let mut seen = vec![false; mask.len()];
        let mut sizes = Vec::new();
        let mut queue = Vec::new();
        for start in 0..mask.len() {
            if mask[start] == 0 || seen[start] {
                continue;
            }
            seen[start] = true;
            queue.clear();
            queue.push(start);
            let mut head = 0;
            while head < queue.len() {
                let v = queue[head];
                head += 1;
                let (i, j, k) = ((v % w) as isize, ((v / w) % h) as isize, (v / (w * h)) as isize);
                for dk in -1isize..=1 {
                    for dj in -1isize..=1 {
                        for di in -1isize..=1 {
                            let manhattan = di.abs() + dj.abs() + dk.abs();
                            if manhattan == 0 || (conn == Connectivity::Faces && manhattan > 1) {
                                continue;
                            }
                            let (ni, nj, nk) = (i + di, j + dj, k + dk);
                            if ni < 0 || nj < 0 || nk < 0 || ni >= w as isize || nj >= h as isize || nk >= d as isize {
                                continue;
                            }
                            let nv = ((nk as usize * h + nj as usize) * w) + ni as usize;
                            if mask[nv] != 0 && !seen[nv] {
                                seen[nv] = true;
                                queue.push(nv);
                            }
                        }
                    }
                }
            }
            sizes.push(queue.len());
        }
        (sizes.len(), sizes)
    }

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

        assert_eq!(keep_largest_3d(&mut m, dims, Connectivity::Full), 8);
        assert_eq!(count(&m, 1), 27);
        assert_eq!(m[(7 * 10 + 7) * 10 + 7], 0);
        assert_eq!(keep_largest_3d(&mut m, dims, Connectivity::Full), 0);
    }

    #[test]
    fn keep_largest_tie_keeps_first_in_memory_order() {
        let dims = [8, 1, 1];
        let mut m = vec![0, 2, 2, 0, 0, 3, 3, 0];
        assert_eq!(keep_largest_3d(&mut m, dims, Connectivity::Faces), 2);
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
    fn components_2d_labels_in_memory_order() {
        #[rustfmt::skip]
        let m = [
            0, 0, 1, 1,
            1, 0, 0, 1,
            1, 0, 1, 0,
        ];
        let c = components_2d(&m, 4, 3, Connectivity::Faces);
        assert_eq!(c.labels, vec![0, 0, 1, 1, 2, 0, 0, 1, 2, 0, 3, 0]);
        assert_eq!(c.sizes, vec![3, 2, 1]);
        let c8 = components_2d(&m, 4, 3, Connectivity::Full);
        assert_eq!(c8.sizes, vec![4, 2]);
        // A U shape whose arms are joined only at the bottom: the later row merges two roots.
        #[rustfmt::skip]
        let u = [
            1, 0, 1,
            1, 0, 1,
            1, 1, 1,
        ];
        let cu = components_2d(&u, 3, 3, Connectivity::Faces);
        assert_eq!(cu.sizes, vec![7]);
        assert!(cu.labels.iter().zip(&u).all(|(&l, &v)| l == u32::from(v)));
    }

    #[test]
    fn run_labelling_matches_bfs() {
        for (seed, dims) in [
            (1u64, [17usize, 13, 9]),
            (2, [1, 20, 20]),
            (3, [33, 1, 7]),
            (4, [40, 40, 1]),
            (5, [130, 6, 4]),
            (6, [64, 5, 3]),
        ] {
            let n = dims.iter().product();
            for percent in [20, 45, 70] {
                let m = noise(n, percent, seed * 100 + percent);
                for conn in [Connectivity::Faces, Connectivity::Full] {
                    let (count, sizes) = reference_count(&m, dims, conn);
                    let c = components_3d(&m, dims, conn);
                    assert_eq!(c.sizes, sizes, "dims {dims:?} {percent}% {conn:?}");
                    assert_eq!(c.sizes.len(), count);
                    assert_eq!(c.labels.iter().filter(|&&l| l != 0).count(), count_nonzero(&m));
                }
            }
        }
    }

    #[test]
    fn push_runs_matches_naive() {
        fn naive(row: &[u8], nonzero: bool) -> Vec<(u32, u32)> {
            let mut out = Vec::new();
            let mut i = 0;
            while i < row.len() {
                if (row[i] != 0) == nonzero {
                    let s = i;
                    while i < row.len() && (row[i] != 0) == nonzero {
                        i += 1;
                    }
                    out.push((s as u32, i as u32));
                } else {
                    i += 1;
                }
            }
            out
        }
        let mut runs = Vec::new();
        for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 200] {
            for percent in [0, 3, 50, 97, 100] {
                // Values above 127 exercise the nonzero test's high-bit path.
                let row: Vec<u8> = noise(len, percent, len as u64 * 1000 + percent).iter().map(|&v| v * 200).collect();
                for nonzero in [true, false] {
                    runs.clear();
                    if nonzero {
                        push_runs::<true>(&row, &mut runs);
                    } else {
                        push_runs::<false>(&row, &mut runs);
                    }
                    let got: Vec<(u32, u32)> = runs.iter().map(|r| (r.start, r.end)).collect();
                    assert_eq!(got, naive(&row, nonzero), "len {len} {percent}% nonzero={nonzero}");
                }
            }
        }
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(nonzero_bits(&bytes[..64]), u64::MAX - 1);
        assert_eq!(nonzero_bits(&bytes[128..192]), u64::MAX);
    }

    fn count_nonzero(m: &[u8]) -> usize {
        m.iter().filter(|&&v| v != 0).count()
    }

    #[test]
    fn remove_small_exact_count() {
        let dims = [12, 12, 3];
        let mut m = vec![0u8; 12 * 12 * 3];
        fill_box(&mut m, dims, [0, 0, 0], [4, 4, 2], 1); // 32
        fill_box(&mut m, dims, [6, 6, 0], [8, 8, 1], 1); // 4
        fill_box(&mut m, dims, [10, 10, 2], [11, 11, 3], 1); // 1
        assert_eq!(remove_small_3d(&mut m, dims, 1, Connectivity::Full), 0);
        assert_eq!(remove_small_3d(&mut m, dims, 5, Connectivity::Full), 5);
        assert_eq!(count(&m, 1), 32);
        assert_eq!(remove_small_3d(&mut m, dims, 32, Connectivity::Full), 0);
        assert_eq!(remove_small_3d(&mut m, dims, 33, Connectivity::Full), 32);
        assert_eq!(count(&m, 0), m.len());
    }

    #[test]
    fn ring_slice_hole_filled() {
        // 5×5 ring in a 7×7 slice: the 3×3 inside is a hole.
        let (w, h) = (7, 7);
        let mut m = vec![0u8; w * h];
        fill_box(&mut m, [w, h, 1], [1, 1, 0], [6, 6, 1], 1);
        fill_box(&mut m, [w, h, 1], [2, 2, 0], [5, 5, 1], 0);
        assert_eq!(fill_holes_2d(&mut m, w, h, 5), 9);
        assert_eq!(count(&m, 5), 9);
        assert_eq!(m[3 * w + 3], 5);
        assert_eq!(count(&m, 0), 49 - 25);
        assert_eq!(fill_holes_2d(&mut m, w, h, 5), 0);
    }

    #[test]
    fn hole_touching_border_not_filled() {
        // A ring drawn on the image edge with a gap in its left side: the inside reaches the border.
        #[rustfmt::skip]
        let mut m = vec![
            1, 1, 1, 1, 1,
            1, 0, 0, 0, 1,
            0, 0, 0, 0, 1,
            1, 0, 0, 0, 1,
            1, 1, 1, 1, 1,
        ];
        let before = m.clone();
        assert_eq!(fill_holes_2d(&mut m, 5, 5, 1), 0);
        assert_eq!(m, before);
        // Closing the gap turns the inside into a hole.
        m[10] = 1;
        assert_eq!(fill_holes_2d(&mut m, 5, 5, 1), 9);
        // Touching border background only diagonally does not open a hole (4-connectivity).
        #[rustfmt::skip]
        let mut diag = vec![
            0, 1, 1, 1, 1,
            1, 0, 0, 0, 1,
            1, 0, 0, 0, 1,
            1, 0, 0, 0, 1,
            1, 1, 1, 1, 1,
        ];
        assert_eq!(fill_holes_2d(&mut diag, 5, 5, 1), 9);
        assert_eq!(diag[0], 0);
    }

    #[test]
    fn hollow_cube_filled_3d() {
        let dims = [7, 7, 7];
        let mut m = vec![0u8; 343];
        fill_box(&mut m, dims, [1, 1, 1], [6, 6, 6], 1);
        fill_box(&mut m, dims, [2, 2, 2], [5, 5, 5], 0);
        let mut per_slice = m.clone();
        assert_eq!(fill_holes_3d(&mut m, dims, 2), 27);
        assert_eq!(count(&m, 2), 27);
        assert_eq!(m[(3 * 7 + 3) * 7 + 3], 2);
        assert_eq!(count(&m, 1), 125 - 27);
        // Each interior slice is a ring, so slice-wise filling finds the same 27.
        assert_eq!(fill_holes_slices(&mut per_slice, dims, 2), 27);
        assert_eq!(per_slice, m);
    }

    #[test]
    fn open_tube_filled_per_slice_only() {
        // A square tube along k through the whole volume: every slice is a ring, but in 3D the lumen
        // reaches the first and last slice, which are border.
        let dims = [5, 5, 4];
        let mut m = vec![0u8; 100];
        fill_box(&mut m, dims, [0, 0, 0], [5, 5, 4], 1);
        fill_box(&mut m, dims, [1, 1, 0], [4, 4, 4], 0);
        let mut slices = m.clone();
        assert_eq!(fill_holes_3d(&mut m, dims, 1), 0);
        assert_eq!(fill_holes_slices(&mut slices, dims, 1), 36);
        assert_eq!(count(&slices, 1), 100);
    }

    #[test]
    fn slice_filling_covers_3d_filling() {
        let dims = [23, 19, 11];
        for percent in [40, 55, 65] {
            let m = noise(dims.iter().product(), percent, percent);
            let (mut a, mut b) = (m.clone(), m.clone());
            let f3 = fill_holes_3d(&mut a, dims, 1);
            let fs = fill_holes_slices(&mut b, dims, 1);
            assert!(fs >= f3);
            assert!(a.iter().zip(&b).all(|(&x, &y)| x <= y), "3D fill not within slice fill");
            assert_eq!(fill_holes_3d(&mut b, dims, 1), 0);
        }
    }

    #[test]
    fn interior_point_of_square() {
        let m = vec![1u8; 25];
        assert_eq!(interior_point_2d(&m, 5, 5), Some((2, 2)));
        // Offset inside a larger image.
        let (w, h) = (11, 9);
        let mut big = vec![0u8; w * h];
        fill_box(&mut big, [w, h, 1], [4, 3, 0], [9, 8, 1], 1);
        assert_eq!(interior_point_2d(&big, w, h), Some((6, 5)));
        assert_eq!(interior_point_2d(&[0u8; 12], 4, 3), None);
        assert_eq!(interior_point_2d(&[], 0, 0), None);
    }

    #[test]
    fn interior_point_ties_and_shapes() {
        // 4×2 bar: all pixels are one step from the outside; the first wins.
        let m = vec![1u8; 8];
        assert_eq!(interior_point_2d(&m, 4, 2), Some((0, 0)));
        // Single pixel.
        let mut p = vec![0u8; 12];
        p[7] = 1;
        assert_eq!(interior_point_2d(&p, 4, 3), Some((3, 1)));
        // L shape: thick vertical arm (3 wide) and thin horizontal foot; the point is in the arm.
        let (w, h) = (9, 9);
        let mut l = vec![0u8; w * h];
        fill_box(&mut l, [w, h, 1], [0, 0, 0], [3, 9, 1], 1);
        fill_box(&mut l, [w, h, 1], [0, 8, 0], [9, 9, 1], 1);
        let (i, j) = interior_point_2d(&l, w, h).unwrap();
        assert_eq!(i, 1);
        assert_eq!(j, 1);
    }

    #[test]
    fn interior_point_matches_brute_force() {
        for (seed, w, h) in [(5u64, 13usize, 7usize), (6, 1, 9), (7, 9, 1), (8, 20, 20)] {
            let m = noise(w * h, 75, seed);
            // Squared distance to the nearest background pixel, outside counted as background.
            let dist = |i: usize, j: usize| {
                let mut best = i64::MAX;
                for y in -1..=h as i64 {
                    for x in -1..=w as i64 {
                        let outside = x < 0 || y < 0 || x >= w as i64 || y >= h as i64;
                        if outside || m[y as usize * w + x as usize] == 0 {
                            let (dx, dy) = (x - i as i64, y - j as i64);
                            best = best.min(dx * dx + dy * dy);
                        }
                    }
                }
                best
            };
            let mut want = None;
            let mut best = 0;
            for j in 0..h {
                for i in 0..w {
                    if m[j * w + i] != 0 && dist(i, j) > best {
                        best = dist(i, j);
                        want = Some((i, j));
                    }
                }
            }
            assert_eq!(interior_point_2d(&m, w, h), want, "seed {seed} {w}×{h}");
        }
    }

    #[test]
    fn bbox() {
        #[rustfmt::skip]
        let m = [
            0, 0, 0, 0, 0,
            0, 0, 1, 0, 0,
            0, 1, 0, 0, 0,
            0, 0, 0, 1, 0,
        ];
        assert_eq!(bbox_2d(&m, 5, 4), Some([1, 1, 3, 3]));
        assert_eq!(bbox_2d(&[0u8; 6], 3, 2), None);
        assert_eq!(bbox_2d(&[7u8], 1, 1), Some([0, 0, 0, 0]));
        assert_eq!(bbox_2d(&[], 0, 5), None);
    }

    #[test]
    fn dice() {
        assert_eq!(dice_u8(&[0, 0, 0], &[0, 0, 0]), 1.0);
        assert_eq!(dice_u8(&[1, 1, 0, 0], &[0, 0, 1, 1]), 0.0);
        assert_eq!(dice_u8(&[1, 2, 0, 0], &[3, 0, 0, 0]), 2.0 / 3.0);
        assert_eq!(dice_u8(&[5, 5], &[1, 9]), 1.0);
        assert_eq!(dice_u8(&[], &[]), 1.0);
    }

    #[test]
    fn empty_and_degenerate_dims() {
        let mut e: Vec<u8> = Vec::new();
        assert_eq!(components_3d(&e, [0, 4, 4], Connectivity::Full).sizes, Vec::<usize>::new());
        assert_eq!(keep_largest_3d(&mut e, [4, 0, 4], Connectivity::Full), 0);
        assert_eq!(fill_holes_slices(&mut e, [4, 4, 0], 1), 0);
        assert_eq!(fill_holes_3d(&mut e, [0, 0, 0], 1), 0);
        let mut z = vec![0u8; 27];
        assert_eq!(keep_largest_3d(&mut z, [3, 3, 3], Connectivity::Faces), 0);
        assert_eq!(fill_holes_3d(&mut z, [3, 3, 3], 1), 0);
    }

    #[test]
    #[should_panic(expected = "does not match dims")]
    fn wrong_length_panics() {
        components_3d(&[0u8; 5], [2, 2, 2], Connectivity::Full);
    }

    /// `cargo test --release --lib morphology::tests::large -- --ignored --nocapture`
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
        let removed = keep_largest_3d(&mut m, dims, Connectivity::Full);
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
}
