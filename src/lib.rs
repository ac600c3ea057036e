//! VoxPrompt: prompt-driven 3D segmentation with SAM-family models on ONNX Runtime.
//!
//! Layers, top to bottom: `ffi` (C ABI) → `engine` → `pipeline` stages → `model` (packages, ONNX Runtime
//! sessions) → `volume` (typed views, intensity mapping). `ops` holds the pure image and mask operations the
//! stages use. `io` reads and writes files for the CLI and tests.

// `unsafe` belongs to the C boundary (`ffi`) and the ONNX Runtime loader (`runtime`) only.
#![deny(unsafe_code)]
#![allow(clippy::needless_range_loop)] // index loops read best in the 3×3 / 4×4 geometry code

pub mod engine;
pub mod error;
pub mod io;
pub mod model;
pub mod ops;
pub mod pipeline;
#[allow(unsafe_code)]
pub mod runtime;
pub mod session;
pub mod volume;

pub use error::{Error, ErrorCode, Result};
#[allow(unsafe_code)]
pub mod ffi;
