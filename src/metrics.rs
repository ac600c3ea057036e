//! Agreement measures between masks.

/// Dice coefficient of two binary masks given as parallel iterators; 1.0 when both are empty.
pub fn dice(a: impl Iterator<Item = bool>, b: impl Iterator<Item = bool>) -> f64 {
    let (mut inter, mut na, mut nb) = (0u64, 0u64, 0u64);
    for (x, y) in a.zip(b) {
        na += x as u64;
        nb += y as u64;
        inter += (x && y) as u64;
    }
    if na + nb == 0 {
        1.0
    } else {
        2.0 * inter as f64 / (na + nb) as f64
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dice_values() {
        let a = [true, true, false, false];
        let b = [true, false, true, false];
        assert_eq!(super::dice(a.into_iter(), b.into_iter()), 0.5);
        assert_eq!(super::dice([false].into_iter(), [false].into_iter()), 1.0);
    }
}
