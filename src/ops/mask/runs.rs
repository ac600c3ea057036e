//! Run-length component labelling: each row is cut into maximal runs of selected voxels and runs of
//! touching rows are merged with union-find.

use super::Connectivity;

/// A maximal run `[start, end)` of selected voxels within one row.
#[derive(Debug, Clone, Copy)]
pub(super) struct Run {
    pub(super) start: u32,
    pub(super) end: u32,
}

/// Run-length component labelling; kept as a struct so per-slice callers reuse its buffers.
#[derive(Debug, Default)]
pub(super) struct RunLabels {
    pub(super) runs: Vec<Run>,
    /// `row_first[r]..row_first[r + 1]` are the runs of row `r = k*h + j`.
    pub(super) row_first: Vec<usize>,
    /// During labelling: union-find parent per run, always `<=` the run's own index, so each root is
    /// the earliest run of its set. After `resolve`: the run's 0-based component id.
    pub(super) comp: Vec<u32>,
    /// Voxel count per component, valid after `resolve`.
    pub(super) sizes: Vec<usize>,
    /// Scratch flag per component for `fill_holes`.
    pub(super) open: Vec<bool>,
}

impl RunLabels {
    /// Builds runs of voxels with `(v != 0) == NONZERO` and unions runs that touch under `conn`.
    pub(super) fn label<const NONZERO: bool>(&mut self, vol: &[u8], dims: [usize; 3], conn: Connectivity) {
        self.label_rows::<NONZERO>(vol.chunks_exact(dims[0].max(1)).map(Some), dims, conn);
    }

    /// `label` over a stack of `w × h` slices, `None` standing for an all-background slice, so that no
    /// dense copy of the stack is needed. The caller checks the slice lengths.
    pub(super) fn label_slices<const NONZERO: bool>(
        &mut self,
        slices: &[Option<&[u8]>],
        [w, h]: [usize; 2],
        conn: Connectivity,
    ) {
        let rows = slices.iter().flat_map(|s| (0..h).map(move |j| s.map(|s| &s[j * w..(j + 1) * w])));
        self.label_rows::<NONZERO>(rows, [w, h, slices.len()], conn);
    }

    /// `label` over the `h * d` rows of a `[w, h, d]` volume in memory order; a `None` row is all background.
    fn label_rows<'a, const NONZERO: bool>(
        &mut self,
        rows_in: impl Iterator<Item = Option<&'a [u8]>>,
        [w, h, d]: [usize; 3],
        conn: Connectivity,
    ) {
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
        for (r, row) in rows_in.take(rows).enumerate() {
            let first = self.runs.len();
            self.row_first.push(first);
            match row {
                Some(row) => push_runs::<NONZERO>(row, &mut self.runs),
                None if !NONZERO => self.runs.push(Run { start: 0, end: w as u32 }),
                None => {}
            }
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
    pub(super) fn resolve(&mut self) -> usize {
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
    pub(super) fn for_each_run(&self, w: usize, mut f: impl FnMut(usize, std::ops::Range<usize>)) {
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
    use super::super::testing::noise;
    use super::super::{components_3d, Connectivity};
    use super::*;

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

    fn count_nonzero(m: &[u8]) -> usize {
        m.iter().filter(|&&v| v != 0).count()
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
}
