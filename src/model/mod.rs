//! Model packages and one module per model kind.

pub mod manifest;
pub mod providers;
pub mod sam2d;

pub use manifest::{Manifest, Package};
pub use providers::{Provider, SessionConfig};
