//! Pipeline stages: preprocess (`frame`) → encode (`cache`, `model::sam2d`) → decode and propagate
//! (`sweep`, `propagate`) → score and fuse (`policy`) → postprocess (`postprocess`, over `ops::mask`).

pub mod cache;
pub mod frame;
pub mod policy;
pub mod postprocess;
pub mod propagate;
pub mod sweep;
