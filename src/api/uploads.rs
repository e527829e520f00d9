//! Documents sent with GraphQL multipart uploads: each comes with its declared name, media
//! type, size and SHA-256; the content must match both size and hash, or the whole request is
//! refused. Content is read off the async threads (async-graphql spools uploads to temporary
//! files).

use std::io::Read;

use async_graphql::{Context, InputObject, Upload};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use crate::store::AttachedDocument;

/// A document to attach.
#[derive(Debug, InputObject)]
pub(crate) struct DocumentInput {
    /// File name (no folders).
    pub name: String,
    /// Media type, e.g. `application/pdf`.
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
    /// The content (GraphQL multipart upload).
    pub file: Upload,
}

/// Reads and checks the uploads; `max_files` caps how many one request may carry.
pub(crate) async fn read(
    ctx: &Context<'_>,
    inputs: Vec<DocumentInput>,
    max_files: usize,
) -> Result<Vec<AttachedDocument>, ApiError> {
    if inputs.len() > max_files {
        return Err(ApiError::bad_field(
            "documents",
            format!("troppi documenti: al massimo {max_files}"),
        ));
    }
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let field = format!("documents[{i}]");
        let name = input.name.trim().to_string();
        if name.is_empty() || name.len() > 255 || name.contains(['/', '\\', '\0']) {
            return Err(ApiError::bad_field(
                format!("{field}.name"),
                "nome del documento non valido (vuoto, troppo lungo o con cartelle)",
            ));
        }
        let media_type = input.media_type.trim().to_ascii_lowercase();
        if media_type.is_empty()
            || media_type.len() > 127
            || !media_type.contains('/')
            || media_type.contains(char::is_whitespace)
        {
            return Err(ApiError::bad_field(
                format!("{field}.mediaType"),
                "tipo del documento non valido",
            ));
        }
        let declared_hash = input.sha256.trim().to_ascii_lowercase();
        if declared_hash.len() != 64 || !declared_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad_field(
                format!("{field}.sha256"),
                "sha256 deve avere 64 cifre esadecimali",
            ));
        }
        let value = input.file.value(ctx).map_err(|_| {
            ApiError::bad_field(
                format!("{field}.file"),
                "contenuto del documento assente o non leggibile",
            )
        })?;
        let content = tokio::task::spawn_blocking(move || {
            let mut content = Vec::new();
            value.into_read().read_to_end(&mut content).map(|_| content)
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|_| {
            ApiError::bad_field(
                format!("{field}.file"),
                "contenuto del documento non leggibile",
            )
        })?;
        if i64::try_from(content.len()).ok() != Some(input.size) {
            return Err(ApiError::bad_field(
                format!("{field}.size"),
                format!(
                    "dimensione dichiarata {} ma ricevuti {} byte",
                    input.size,
                    content.len()
                ),
            ));
        }
        let actual = hex::encode(Sha256::digest(&content));
        if actual != declared_hash {
            return Err(ApiError::bad_field(
                format!("{field}.sha256"),
                "lo SHA-256 dichiarato non corrisponde al contenuto ricevuto",
            ));
        }
        out.push(AttachedDocument {
            name,
            media_type,
            sha256: actual,
            content,
        });
    }
    Ok(out)
}
