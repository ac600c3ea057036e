//! Measures of masks: bounding boxes and agreement.

use super::check_len;

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

/// Dice coefficient `2|A∩B| / (|A| + |B|)` of two binary masks given as parallel iterators (for `u8` masks,
/// `foreground`); 1.0 when both are empty.
///
/// # Panics
/// If the two iterators differ in length.
pub fn dice(a: impl ExactSizeIterator<Item = bool>, b: impl ExactSizeIterator<Item = bool>) -> f64 {
    assert_eq!(a.len(), b.len(), "dice: masks differ in length");
    let (mut na, mut nb, mut both) = (0usize, 0usize, 0usize);
    for (x, y) in a.zip(b) {
        let (x, y) = (usize::from(x), usize::from(y));
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

/// The foreground flags (`v != 0`) of a `u8` mask, the form `dice` takes.
pub fn foreground(mask: &[u8]) -> impl ExactSizeIterator<Item = bool> + '_ {
    mask.iter().map(|&v| v != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn dice_values() {
        assert_eq!(dice(foreground(&[0, 0, 0]), foreground(&[0, 0, 0])), 1.0);
        assert_eq!(dice(foreground(&[1, 1, 0, 0]), foreground(&[0, 0, 1, 1])), 0.0);
        assert_eq!(dice(foreground(&[1, 2, 0, 0]), foreground(&[3, 0, 0, 0])), 2.0 / 3.0);
        assert_eq!(dice(foreground(&[5, 5]), foreground(&[1, 9])), 1.0);
        assert_eq!(dice(foreground(&[]), foreground(&[])), 1.0);
        let a = [true, true, false, false];
        let b = [true, false, true, false];
        assert_eq!(dice(a.into_iter(), b.into_iter()), 0.5);
    }

    #[test]
    #[should_panic(expected = "differ in length")]
    fn dice_length_mismatch_panics() {
        dice(foreground(&[1, 0]), foreground(&[1]));
    }
}
