//! The driver for slice models (`model::SliceModel`): a volume is a stack of 2D slices along one axis;
//! each slice is encoded once per session, and objects are propagated from slice to slice.

pub mod cache;
pub mod frame;
pub mod spill;
pub mod strategy;
pub mod sweep;
