//! The port to the ente capofila's albo, the legally valid one (art. 32 L. 69/2009): every act
//! procedo publishes is handed over with its documents, and handed over again when what is
//! published changes (a proroga moves the window). Two implementations: a folder collected by
//! the capofila's albo software (the default), and an HTTP endpoint (a multipart POST of the
//! manifest and the documents; the answer's body is the receipt).
//!
//! A hand-over is recorded after the port accepted it; the port is told the act and its
//! digest (`Idempotency-Key`, the folder's name) so that a hand-over repeated after a crash
//! between the two replaces the same act instead of publishing it twice.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde_json::json;
use tracing::{info, warn};

use super::Publication;
use crate::store::{self, AlboHandover};

/// What is handed over for one act.
#[derive(Debug, Clone)]
pub struct Handover {
    /// The act's id (`<instance>:<entry>`).
    pub act_id: String,
    /// SHA-256 of the manifest: what identifies this version of the act.
    pub digest: String,
    /// The manifest (JSON): the act, its window, registration and documents with digests.
    pub manifest: String,
    /// The documents: (name, media type, content).
    pub files: Vec<(String, String, Vec<u8>)>,
}

/// The capofila's albo.
#[async_trait]
pub trait AlboCapofila: Send + Sync + std::fmt::Debug {
    /// Hands an act over; returns the receipt, or why it failed.
    async fn hand_over(&self, handover: &Handover) -> Result<String, String>;
    /// What it is.
    fn describe(&self) -> String;
}

/// A folder collected by the capofila's albo software: `<dir>/<act>/<digest>/`.
#[derive(Debug, Clone)]
pub struct FolderAlbo {
    dir: PathBuf,
}

impl FolderAlbo {
    /// Deposits under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> FolderAlbo {
        FolderAlbo { dir: dir.into() }
    }
}

/// A file name from an id: letters, digits and `-_.` kept, anything else `_`.
fn safe(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    cleaned.trim_start_matches('.').to_owned()
}

#[async_trait]
impl AlboCapofila for FolderAlbo {
    async fn hand_over(&self, handover: &Handover) -> Result<String, String> {
        let folder = self
            .dir
            .join(safe(&handover.act_id))
            .join(&handover.digest[..16.min(handover.digest.len())]);
        tokio::fs::create_dir_all(&folder)
            .await
            .map_err(|e| format!("{}: {e}", folder.display()))?;
        for (name, _, content) in &handover.files {
            let path = folder.join(safe(name));
            tokio::fs::write(&path, content)
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        // The manifest last: the collector takes a folder once its manifest is there.
        let manifest = folder.join("atto.json");
        tokio::fs::write(&manifest, handover.manifest.as_bytes())
            .await
            .map_err(|e| format!("{}: {e}", manifest.display()))?;
        Ok(format!("depositato in {}", folder.display()))
    }

    fn describe(&self) -> String {
        format!("cartella {}", self.dir.display())
    }
}

/// The HTTP endpoint of the capofila's albo.
#[derive(Debug, Clone)]
pub struct HttpAlbo {
    client: reqwest::Client,
    url: String,
    token: Option<String>,
}

impl HttpAlbo {
    /// Hands over by POST to `url`.
    pub fn new(url: &str, token: Option<String>, timeout: Duration) -> Result<HttpAlbo, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("client HTTP dell'albo del capofila: {e}"))?;
        Ok(HttpAlbo {
            client,
            url: url.to_owned(),
            token,
        })
    }
}

#[async_trait]
impl AlboCapofila for HttpAlbo {
    async fn hand_over(&self, handover: &Handover) -> Result<String, String> {
        let mut form = reqwest::multipart::Form::new().part(
            "atto",
            reqwest::multipart::Part::text(handover.manifest.clone())
                .file_name("atto.json")
                .mime_str("application/json")
                .map_err(|e| e.to_string())?,
        );
        for (name, media_type, content) in &handover.files {
            form = form.part(
                "documento",
                reqwest::multipart::Part::bytes(content.clone())
                    .file_name(name.clone())
                    .mime_str(media_type)
                    .map_err(|e| e.to_string())?,
            );
        }
        let request = self
            .client
            .post(&self.url)
            .header(
                "Idempotency-Key",
                format!("{}:{}", handover.act_id, handover.digest),
            )
            .multipart(form);
        crate::protocollo::conservazione::receipt(request, self.token.as_deref()).await
    }

    fn describe(&self) -> String {
        format!("albo dell'ente capofila {}", self.url)
    }
}

/// The manifest of an act: what the capofila publishes.
pub fn manifest(act: &Publication) -> String {
    json!({
        "id": act.id,
        "titolo": act.title,
        "procedura": act.procedure,
        "oggetto": act.oggetto,
        "dal": act.from,
        "al": act.until,
        "calcolo": act.trace,
        "testo": act.text,
        "registrazione": act.protocollo,
        "documenti": act.documents,
        "amministrazione_trasparente": act.trasparente,
    })
    .to_string()
}

/// Hands over every act not ended on `today` whose current version the capofila has not
/// received; a failure is retried at the next run and does not stop the others. Returns how
/// many were handed over now.
///
/// # Errors
///
/// The store's.
pub async fn hand_over_pending(
    protocollo: &crate::protocollo::Protocollo,
    today: NaiveDate,
) -> store::Result<usize> {
    let service = protocollo.service();
    let mut handed = 0;
    for (instance_id, acts) in super::not_ended(service, today).await? {
        let done = service.store().albo_handovers(&instance_id).await?;
        for act in acts {
            let manifest = manifest(&act);
            let digest = store::sha256_hex(manifest.as_bytes());
            if done
                .iter()
                .any(|h| h.act_id == act.id && h.digest == digest)
            {
                continue;
            }
            let mut files = Vec::with_capacity(act.documents.len());
            for doc in &act.documents {
                match protocollo.files().get(&doc.sha256).await {
                    Ok(Some(content)) => {
                        files.push((doc.name.clone(), doc.media_type.clone(), content));
                    }
                    Ok(None) | Err(_) => {
                        warn!(atto = %act.id, documento = %doc.name, "documento dell'atto mancante: consegna al capofila rinviata");
                    }
                }
            }
            if files.len() != act.documents.len() {
                continue;
            }
            let handover = Handover {
                act_id: act.id.clone(),
                digest: digest.clone(),
                manifest,
                files,
            };
            match protocollo.albo().hand_over(&handover).await {
                Ok(receipt) => {
                    service
                        .store()
                        .record_albo_handover(&AlboHandover {
                            act_id: act.id.clone(),
                            instance_id: instance_id.clone(),
                            digest,
                            receipt,
                            handed_at: service.now(),
                        })
                        .await?;
                    info!(atto = %act.id, "atto consegnato all'albo del capofila");
                    handed += 1;
                }
                Err(why) => {
                    warn!(atto = %act.id, error = %why, albo = %protocollo.albo().describe(), "consegna all'albo del capofila non riuscita: nuovo tentativo al prossimo giro");
                }
            }
        }
    }
    Ok(handed)
}
