//! VoxPrompt: prompt-driven 3D segmentation with SAM-family models on ONNX Runtime.
//!
//! Data flows through the modules in this order, and no module imports one listed after it:
//! `volume` (typed views, geometry, reslicing, intensity mapping) → `prompt` (boxes, points, seed masks,
//! text and hints, with their sources) → `model` (packages, contracts, ONNX Runtime sessions, one module
//! per model kind) → `pipeline` (the drivers that lift models to 3D, then composition) → `session` (one
//! volume, its objects, plan, history) → `engine` (the runtime and the model set; opens sessions) → `ffi`
//! (the C ABI) and the `voxprompt` CLI. `ops` holds pure image and mask operations any stage may use,
//! `runtime` loads ONNX Runtime, and `io` reads and writes files for the CLI and tests.

// `unsafe` belongs to the C boundary (`ffi`) and the ONNX Runtime loader (`runtime`) only.
#![deny(unsafe_code)]
#![allow(clippy::needless_range_loop)] // index loops read best in the 3×3 / 4×4 geometry code

pub mod anatomy;
pub mod engine;
pub mod error;
pub mod io;
pub mod model;
pub mod ops;
pub mod pipeline;
pub mod prompt;
#[allow(unsafe_code)]
pub mod runtime;
pub mod session;
pub mod volume;

pub use error::{Error, ErrorCode, Result};
#[allow(unsafe_code)]
pub mod ffi;
