//! Anatomical priors: where a named structure lies in a given volume and what it looks like, before any
//! model runs — for text prompts without a box or click.
//!
//! Body CT, from hand-written rules (no learned weights, no atlas): `grid` (a coarse HU copy in RAS-ordered
//! axes, built once per volume) → `body` (body, lungs, bone, midline, landmarks, the normalised
//! cranio-caudal coordinate) → `organs` (a structure's priors from `priors`, i.e.
//! `concepts/body_priors.toml`, turned into a candidate region) → `prompts` (box, seed and limit for the 3D
//! engine). Brain MR: `brain` registers an MNI template to the volume and carries atlas labels onto its grid
//! through world coordinates. Left and right come from the volume's IJK→RAS matrix only. A click with no
//! box becomes one in `click` (growth from the click, bounded by the organ when text named it).
//!
//! This module uses `volume`, `ops` and `io` only.

pub mod body;
pub mod brain;
pub mod click;
pub mod grid;
pub mod organs;
pub mod priors;
pub mod prompts;

pub use body::{BodyFrame, Landmarks, SliceFrame};
pub use grid::HuGrid;
pub use organs::Region;
pub use prompts::{derive_prompts, lesion_limit, Derived};
