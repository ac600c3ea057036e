//! Pipeline stages: preprocess (`frame`) → encode/decode (`model::sam2d`) → propagate → postprocess.

pub mod frame;
pub mod propagate;
pub mod resize;
