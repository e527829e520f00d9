//! Where numbers come from — the port. An Ambito either keeps procedo's own register
//! (`LocalRegister`) or is a client of the ente capofila's protocol system (`HttpRegister`, a
//! configurable HTTP/JSON adapter). Both record the registration in procedo's store, so that
//! the instance, its emails and the API show the number; a number given by the ente's system
//! is recorded as is (`Source::Esterno`).
//!
//! The HTTP contract (JSON, `Authorization: Bearer` when a token is configured):
//! - `POST {base}/registrazioni` with `{chiave, registro, direzione, oggetto,
//!   corrispondenti, classificazione, fascicolo, riferimento_mittente, data_mittente,
//!   ricevuto_il, canale, documenti: [{ruolo, nome, mime, dimensione, sha256}]}` and the header
//!   `Idempotency-Key: chiave`; the same key must give back the same registration. Answer
//!   `{numero, anno, registrato_il}`.
//! - `GET {base}/registrazioni?chiave=…`: the registration made for a key, or 404.
//!
//! A timeout is ambiguous — the other side may have registered — so before any new attempt
//! the adapter asks by key: a timeout followed by success leaves one number, not two. A system
//! that cannot be reached (refused connection, DNS, 5xx) is `Unavailable`: the caller then
//! registers in the emergency register (art. 63 DPR 445/2000) and reconciles later.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::store::{
    self, AssignedNumber, NewProtocolRegistration, ProtocolRegistration, Registered, Source, Store,
};

/// Builds the segnatura of a numbered record (inside the registration's transaction).
pub type SegnaturaFn =
    dyn Fn(&ProtocolRegistration) -> Result<Option<String>, String> + Send + Sync;

/// Why a registration did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The protocol system cannot be reached: register in the emergency register.
    #[error("sistema di protocollo non raggiungibile: {0}")]
    Unavailable(String),
    /// The outcome is unknown (a timeout, and the system did not answer the question by key
    /// either): try again later with the same key.
    #[error("esito della registrazione incerto: {0}")]
    Ambiguous(String),
    /// The protocol system refused the registration (retrying will not help).
    #[error("registrazione rifiutata dal sistema di protocollo: {0}")]
    Refused(String),
    /// procedo's store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// A register that gives numbers.
#[async_trait]
pub trait ProtocolSystem: Send + Sync + std::fmt::Debug {
    /// Registers `new` (idempotent by its key) and records it in the store.
    async fn register(
        &self,
        new: &NewProtocolRegistration,
        segnatura: &SegnaturaFn,
    ) -> Result<Registered, PortError>;

    /// What it is, for logs and `procedo protocollo`.
    fn describe(&self) -> String;
}

/// procedo's own register.
#[derive(Debug, Clone)]
pub struct LocalRegister {
    store: Store,
}

impl LocalRegister {
    /// The register in `store`.
    pub fn new(store: Store) -> LocalRegister {
        LocalRegister { store }
    }
}

#[async_trait]
impl ProtocolSystem for LocalRegister {
    async fn register(
        &self,
        new: &NewProtocolRegistration,
        segnatura: &SegnaturaFn,
    ) -> Result<Registered, PortError> {
        let mut new = new.clone();
        new.source = Source::Locale;
        new.assigned = None;
        Ok(self.store.register_protocol(&new, segnatura).await?)
    }

    fn describe(&self) -> String {
        "registro di protocollo di procedo".to_owned()
    }
}

/// The ente's protocol system over HTTP/JSON.
#[derive(Debug, Clone)]
pub struct HttpRegister {
    store: Store,
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// What the ente's system answers for a registration.
#[derive(Debug, Deserialize)]
struct Answer {
    numero: serde_json::Value,
    anno: i32,
    registrato_il: DateTime<Utc>,
}

impl Answer {
    fn number(&self) -> Option<i64> {
        match &self.numero {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl HttpRegister {
    /// The adapter to `base` (e.g. `https://protocollo.ente.it/api`), recording in `store`.
    pub fn new(
        store: Store,
        base: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<HttpRegister, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| format!("client HTTP del protocollo: {e}"))?;
        Ok(HttpRegister {
            store,
            client,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn authorised(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    fn body(new: &NewProtocolRegistration) -> serde_json::Value {
        json!({
            "chiave": new.key,
            "registro": new.register,
            "direzione": new.direction.as_str(),
            "oggetto": new.subject,
            "corrispondenti": new.correspondents,
            "classificazione": new.classification,
            "fascicolo": new.fascicolo,
            "riferimento_mittente": new.sender_reference,
            "data_mittente": new.sender_date.map(|d| d.format("%Y-%m-%d").to_string()),
            "ricevuto_il": new.received_at,
            "canale": new.channel,
            "documenti": new.documents.iter().map(|d| json!({
                "ruolo": d.role.as_str(),
                "nome": d.name,
                "mime": d.media_type,
                "dimensione": d.size,
                "sha256": d.sha256,
            })).collect::<Vec<_>>(),
        })
    }

    /// Asks the registration made for `key`; `Ok(None)` when there is none.
    async fn lookup(&self, key: &str) -> Result<Option<Answer>, PortError> {
        let response = self
            .authorised(
                self.client
                    .get(format!("{}/registrazioni", self.base))
                    .query(&[("chiave", key)]),
            )
            .send()
            .await
            .map_err(|e| classify(&e))?;
        match response.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => response
                .json::<Answer>()
                .await
                .map(Some)
                .map_err(|e| PortError::Refused(format!("risposta illeggibile: {e}"))),
            status if status.is_server_error() => Err(PortError::Unavailable(format!(
                "ricerca per chiave: HTTP {status}"
            ))),
            status => Err(PortError::Refused(format!(
                "ricerca per chiave: HTTP {status}"
            ))),
        }
    }

    /// Records the number the ente's system gave.
    async fn record(
        &self,
        new: &NewProtocolRegistration,
        answer: &Answer,
        segnatura: &SegnaturaFn,
    ) -> Result<Registered, PortError> {
        let number = answer.number().ok_or_else(|| {
            PortError::Refused(format!(
                "numero di protocollo non valido: {}",
                answer.numero
            ))
        })?;
        let mut new = new.clone();
        new.source = Source::Esterno;
        new.assigned = Some(AssignedNumber {
            year: answer.anno,
            number,
            at: answer.registrato_il,
        });
        Ok(self.store.register_protocol(&new, segnatura).await?)
    }
}

/// How a failed request is classified: an unreachable system, or an unknown outcome.
fn classify(error: &reqwest::Error) -> PortError {
    if error.is_timeout() {
        PortError::Ambiguous(format!("nessuna risposta entro il tempo massimo ({error})"))
    } else if error.is_connect() || error.is_request() {
        PortError::Unavailable(error.to_string())
    } else {
        PortError::Ambiguous(error.to_string())
    }
}

#[async_trait]
impl ProtocolSystem for HttpRegister {
    async fn register(
        &self,
        new: &NewProtocolRegistration,
        segnatura: &SegnaturaFn,
    ) -> Result<Registered, PortError> {
        let key = new.key.clone().ok_or_else(|| {
            PortError::Refused(
                "una registrazione presso il sistema dell'ente richiede una chiave".to_owned(),
            )
        })?;
        // An earlier attempt may have registered (its answer lost): ask first.
        match self.lookup(&key).await {
            Ok(Some(answer)) => return self.record(new, &answer, segnatura).await,
            Ok(None) => {}
            Err(PortError::Ambiguous(_)) => {}
            Err(other) => return Err(other),
        }
        let sent = self
            .authorised(
                self.client
                    .post(format!("{}/registrazioni", self.base))
                    .header("Idempotency-Key", &key)
                    .json(&HttpRegister::body(new)),
            )
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                let failure = classify(&error);
                if let PortError::Ambiguous(why) = failure {
                    // Timed out: the other side may have registered. Ask once more.
                    return match self.lookup(&key).await {
                        Ok(Some(answer)) => self.record(new, &answer, segnatura).await,
                        Ok(None) | Err(_) => Err(PortError::Ambiguous(why)),
                    };
                }
                return Err(failure);
            }
        };
        let status = response.status();
        if status.is_success() {
            let answer = response
                .json::<Answer>()
                .await
                .map_err(|e| PortError::Ambiguous(format!("risposta illeggibile: {e}")))?;
            return self.record(new, &answer, segnatura).await;
        }
        let text = response.text().await.unwrap_or_default();
        let text: String = text.chars().take(300).collect();
        if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            Err(PortError::Unavailable(format!("HTTP {status}: {text}")))
        } else {
            Err(PortError::Refused(format!("HTTP {status}: {text}")))
        }
    }

    fn describe(&self) -> String {
        format!("sistema di protocollo dell'ente ({})", self.base)
    }
}
