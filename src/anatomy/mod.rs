//! Anatomical priors for text prompts without a box or click: where a named structure lies in a CT volume
//! and what it looks like, from hand-written rules (no learned weights, no atlas).
//!
//! Data flow: `grid` (a coarse HU copy in RAS-ordered axes, built once per volume) → `body` (body, lungs,
//! bone, midline, landmarks, the normalised cranio-caudal coordinate) → `organs` (a structure's priors from
//! `priors`, i.e. `concepts/body_priors.toml`, turned into a candidate region) → `prompts` (box, seed and
//! limit for the 3D engine). Left and right come from the volume's IJK→RAS matrix only (`grid`).
//!
//! This module uses `volume` and `ops` only.

pub mod body;
pub mod grid;
pub mod organs;
pub mod priors;
pub mod prompts;

pub use body::{BodyFrame, Landmarks, SliceFrame};
pub use grid::HuGrid;
pub use organs::Region;
pub use prompts::{derive_prompts, Derived};
