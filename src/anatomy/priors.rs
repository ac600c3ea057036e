//! The per-structure location and appearance priors, read from `concepts/body_priors.toml` (compiled in).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::error::{Error, Result};

const PRIORS_TOML: &str = include_str!("../../concepts/body_priors.toml");

/// How a structure is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// HU window intersected with the location prior, then the best connected component.
    Organ,
    /// The frame's lung mask, one side of the midline.
    Lung,
}

/// The side of the patient a structure lies on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Left,
    Right,
}

/// One structure's prior; field meanings are documented in the TOML file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prior {
    pub kind: Kind,
    #[serde(default)]
    pub side: Option<Side>,
    pub hu: [f64; 2],
    pub cc: [f64; 2],
    pub lateral: [f64; 2],
    pub ap: [f64; 2],
    pub volume_ml: [f64; 2],
    pub open_mm: f64,
    /// Structures found first and removed from this one's candidates (a kidney touches the liver or the
    /// spleen at the same HU, and no opening radius separates them everywhere).
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn parse(text: &str) -> Result<BTreeMap<String, Prior>> {
    let map: BTreeMap<String, Prior> =
        toml::from_str(text).map_err(|e| Error::InvalidArgument(format!("body priors: {e}")))?;
    for (name, p) in &map {
        for (what, r) in [("hu", p.hu), ("cc", p.cc), ("lateral", p.lateral), ("ap", p.ap), ("volume_ml", p.volume_ml)]
        {
            if r[0].partial_cmp(&r[1]) != Some(std::cmp::Ordering::Less) {
                return Err(Error::InvalidArgument(format!("body prior {name}: {what} range {r:?} is empty")));
            }
        }
        if let Some(x) = p.exclude.iter().find(|x| !map.contains_key(x.as_str())) {
            return Err(Error::InvalidArgument(format!("body prior {name}: excludes unknown structure {x:?}")));
        }
        if !(p.open_mm.is_finite() && p.open_mm >= 0.0) {
            return Err(Error::InvalidArgument(format!("body prior {name}: open_mm {} is negative", p.open_mm)));
        }
    }
    Ok(map)
}

/// The compiled-in priors. The file is checked by a unit test, so a bad edit fails `cargo test`, never a host.
pub fn all() -> &'static BTreeMap<String, Prior> {
    static PRIORS: OnceLock<BTreeMap<String, Prior>> = OnceLock::new();
    PRIORS.get_or_init(|| parse(PRIORS_TOML).expect("concepts/body_priors.toml is checked by priors::tests"))
}

/// The prior of a TotalSegmentator class name, if there is one.
pub fn get(structure: &str) -> Option<&'static Prior> {
    all().get(structure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_priors_parse_and_are_consistent() {
        let map = parse(PRIORS_TOML).unwrap();
        for name in ["liver", "spleen", "kidney_left", "kidney_right", "aorta", "heart", "lung_left", "lung_right"] {
            assert!(map.contains_key(name), "{name} has no prior");
        }
        // A sided structure's lateral range must not lie wholly on the other side.
        for (name, p) in &map {
            match p.side {
                Some(Side::Right) => assert!(p.lateral[1] > 0.0, "{name}"),
                Some(Side::Left) => assert!(p.lateral[0] < 0.0, "{name}"),
                None => {}
            }
        }
    }

    #[test]
    fn bad_priors_are_reported() {
        let e = parse("[x]\nkind = \"organ\"\nhu = [5, 1]\ncc = [0, 1]\nlateral = [0, 1]\nap = [0, 1]\nvolume_ml = [1, 2]\nopen_mm = 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("hu range [5.0, 1.0] is empty"), "{e}");
        assert!(parse("[x]\nkind = \"bone\"\n").is_err());
    }
}
