//! The C ABI: opaque handles, argument checks, marshalling and the panic boundary. Nothing else lives here.
#![allow(non_camel_case_types)]

// In the order of the header's sections.
mod buffer;
pub mod callback;
pub mod concept;
pub mod engine;
pub mod error;
mod handle;
pub mod options;
pub mod prompt;
pub mod result;
pub mod session;
pub mod settings;
pub mod version;
pub mod volume;
