//! Distance-transform queries on 2D masks.

use super::check_len;

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

#[cfg(test)]
mod tests {
    use super::super::testing::{fill_box, noise};
    use super::*;

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
}
