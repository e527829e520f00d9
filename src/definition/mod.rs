//! Workflow definitions: YAML files → validated `Procedure`. PURE: reading files is the
//! caller's job (see `load`), so every check here is a function of text.

pub mod body;
pub mod expr;
pub mod graph;
pub mod model;
mod raw;
pub mod validate;

pub use model::*;
pub use validate::{Diagnostic, Environment, validate};

use sha2::{Digest, Sha256};

/// SHA-256 of a definition's source and of the assets it read, hex: the content hash that pins
/// an instance to exactly what it started with.
pub fn content_hash(source: &str, assets: &str) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0u8]);
    h.update(assets.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests;
