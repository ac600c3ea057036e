//! Pipeline stages, in data-flow order, per model family:
//! - slice models (`slice`): preprocess into the model frame (`slice::frame`) → encode, once per slice and
//!   session (`slice::cache`) → decode and propagate slice by slice (`slice::sweep`) under a 3D strategy
//!   (`slice::strategy`: reference, points, reseed, refine) → score and fuse (`policy`);
//! - then, for every family: postprocess per object (`postprocess`) → compose the label mask and the
//!   confidence map (`compose`). What a driver hands back is in `result`.

pub mod compose;
pub mod mosaic;
pub mod policy;
pub mod postprocess;
pub mod pseudo;
pub mod result;
pub mod slice;
