//! The C ABI: opaque handles, argument checks, marshalling and the panic boundary. Nothing else lives here.
#![allow(non_camel_case_types)]

pub mod callback;
pub mod engine;
pub mod error;
mod handle;
pub mod options;
pub mod result;
pub mod session;
pub mod version;
pub mod volume;
