//! procedo: workflow orchestration for the Uffici di Piano.
//!
//! The crate map (see ARCHITECTURE.md): `definition`, `engine` and `terms` are the pure core;
//! `store`, `scheduler`, `notify`, `protocollo`, `api` and `cli` are adapters around it.

pub mod admin;
pub mod albo;
pub mod api;
pub mod app;
pub mod calendar;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod config;
pub mod definition;
pub mod engine;
pub mod export;
pub mod identity;
pub mod notify;
pub mod pec;
pub mod protocollo;
pub mod report;
pub mod scheduler;
pub mod service;
pub mod store;
pub mod terms;
