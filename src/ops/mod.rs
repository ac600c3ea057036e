//! Pure image and mask operations: no model, no session, no I/O.

pub mod mask;
pub mod register;
pub mod resize;
