//! Slice mosaics (seed 003, SFR: METHODS §4.2–4.3): a stack's slices tiled onto square canvases
//! (`tiling`), a prompt-free canvas model run over them and its softmax un-tiled into the stack (`run`),
//! and each object's share of what the model found, chosen by its prompts (`select`). `boxes` is our own
//! mode for promptable models: one box per tile, so one encoder run serves several slices.

pub mod boxes;
pub mod run;
pub mod select;
pub mod tiling;

pub use tiling::{MosaicTiling, Placement};
