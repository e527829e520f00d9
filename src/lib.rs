//! procedo: workflow orchestration for the Uffici di Piano.
//!
//! The crate map (see ARCHITECTURE.md): `definition`, `engine` and `terms` are the pure core;
//! `store`, `scheduler`, `notify`, `api` and `cli` are adapters around it.

pub mod definition;
pub mod terms;
pub mod engine;
