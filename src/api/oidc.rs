//! Signing in an ETS's legal representative through OpenID Connect (the protocol of the SPID
//! and CIE gateways; the provider is configuration): `GET /accesso/ets?ente=ID` sends the
//! browser to the provider, `GET /oidc/callback` takes the code back, checks the ID token
//! (signature against the provider's keys, issuer, audience, expiry, nonce) and then either
//! records the request for the office to confirm (the first time) or shows, once, a token for
//! the ETS's GraphQL client. The state travels signed with the installation's key.

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::ApiState;
use super::rsvp::{escape, html as page};
use crate::admin::{self, Representation};
use crate::identity::{links, oidc};

/// Where the provider is and who procedo is to it.
#[derive(Clone)]
pub struct OidcSettings {
    /// The issuer (its discovery document is at `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// procedo's client id at the provider.
    pub client_id: String,
    /// procedo's client secret.
    pub client_secret: String,
    /// procedo's public address (the callback is `{public_url}/oidc/callback`).
    pub public_url: String,
    /// The key the state is signed with.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl OidcSettings {
    /// From `PROCEDO_OIDC_ISSUER`, `PROCEDO_OIDC_CLIENT_ID`, `PROCEDO_OIDC_CLIENT_SECRET`,
    /// `PROCEDO_PUBLIC_URL` and `PROCEDO_LINK_KEY`; `None` when the issuer is not set.
    ///
    /// # Errors
    ///
    /// The variable that is missing or too short, named.
    pub fn from_env() -> Result<Option<OidcSettings>, String> {
        let Ok(issuer) = std::env::var("PROCEDO_OIDC_ISSUER") else {
            return Ok(None);
        };
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("{name}: necessario con PROCEDO_OIDC_ISSUER"))
        };
        let key = var("PROCEDO_LINK_KEY")?;
        if key.len() < 32 {
            return Err("PROCEDO_LINK_KEY: servono almeno 32 caratteri casuali".into());
        }
        Ok(Some(OidcSettings {
            issuer: issuer.trim_end_matches('/').to_string(),
            client_id: var("PROCEDO_OIDC_CLIENT_ID")?,
            client_secret: var("PROCEDO_OIDC_CLIENT_SECRET")?,
            public_url: var("PROCEDO_PUBLIC_URL")?.trim_end_matches('/').to_string(),
            key: key.into_bytes(),
        }))
    }

    fn callback(&self) -> String {
        format!("{}/oidc/callback", self.public_url)
    }
}

/// How long a sign-in may take, from the redirect to the callback.
const SIGN_IN_SECONDS: i64 = 600;

fn not_configured() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Accesso con identità digitale non attivo",
        "<p>Questa installazione non accetta l'accesso con identità digitale: rivolgersi all'Ufficio di Piano per le credenziali del client.</p>",
    )
}

fn failed(why: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Accesso non riuscito",
        &format!(
            "<p>{}</p><p>Riprovare dall'inizio; se il problema persiste, rivolgersi all'Ufficio di Piano.</p>",
            escape(why)
        ),
    )
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("fornitore di identità non raggiungibile ({url}): {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "il fornitore di identità risponde {} a {url}",
            response.status()
        ));
    }
    response
        .json()
        .await
        .map_err(|e| format!("risposta non valida da {url}: {e}"))
}

fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("client HTTP: {e}"))
}

async fn discovery(client: &reqwest::Client, settings: &OidcSettings) -> Result<Value, String> {
    get_json(
        client,
        &format!("{}/.well-known/openid-configuration", settings.issuer),
    )
    .await
}

/// `?ente=ID`.
#[derive(Debug, Deserialize)]
pub(crate) struct Start {
    ente: String,
}

/// Sends the browser to the provider to sign in for an ETS.
pub(crate) async fn start(State(state): State<ApiState>, Query(q): Query<Start>) -> Response {
    let Some(settings) = state.shared.oidc.clone() else {
        return not_configured();
    };
    let result = async {
        let client = client()?;
        let config = discovery(&client, &settings).await?;
        let authorize = config["authorization_endpoint"]
            .as_str()
            .ok_or("il fornitore non indica authorization_endpoint")?;
        let mut nonce = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let nonce = hex::encode(nonce);
        let expires = state.shared.service.now().timestamp() + SIGN_IN_SECONDS;
        let signed = links::sign(&settings.key, &format!("oidc:{}", q.ente), &nonce, expires);
        let url = reqwest::Url::parse_with_params(
            authorize,
            &[
                ("response_type", "code"),
                ("client_id", settings.client_id.as_str()),
                ("redirect_uri", settings.callback().as_str()),
                ("scope", "openid profile email"),
                ("state", signed.as_str()),
                ("nonce", nonce.as_str()),
            ],
        )
        .map_err(|e| format!("authorization_endpoint non valido: {e}"))?;
        Ok::<_, String>(url.to_string())
    }
    .await;
    match result {
        Ok(url) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, url),
                (header::CACHE_CONTROL, "no-store".into()),
            ],
        )
            .into_response(),
        Err(why) => {
            tracing::warn!(%why, "accesso con identità digitale non avviato");
            failed(&why)
        }
    }
}

/// `?code=…&state=…` (or `?error=…`).
#[derive(Debug, Deserialize)]
pub(crate) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// The provider sends the browser back here.
pub(crate) async fn callback(State(state): State<ApiState>, Query(q): Query<Callback>) -> Response {
    let Some(settings) = state.shared.oidc.clone() else {
        return not_configured();
    };
    if let Some(error) = &q.error {
        return failed(&format!("il fornitore di identità ha risposto: {error}"));
    }
    let (Some(code), Some(signed)) = (q.code.as_deref(), q.state.as_deref()) else {
        return failed("richiesta incompleta: mancano il codice o lo stato");
    };
    let now = state.shared.service.now();
    let link = match links::verify(&settings.key, signed, now.timestamp()) {
        Ok(link) => link,
        Err(links::LinkError::Expired) => {
            return failed("l'accesso è durato troppo: la richiesta è scaduta");
        }
        Err(links::LinkError::Invalid) => {
            return failed("lo stato della richiesta non è valido o è stato alterato");
        }
    };
    let Some(ente) = link.instance_id.strip_prefix("oidc:").map(str::to_string) else {
        return failed("lo stato della richiesta non è valido o è stato alterato");
    };
    let identity = async {
        let client = client()?;
        let config = discovery(&client, &settings).await?;
        let token_endpoint = config["token_endpoint"]
            .as_str()
            .ok_or("il fornitore non indica token_endpoint")?;
        let jwks_uri = config["jwks_uri"]
            .as_str()
            .ok_or("il fornitore non indica jwks_uri")?;
        let issuer = config["issuer"]
            .as_str()
            .unwrap_or(&settings.issuer)
            .to_string();
        let response = client
            .post(token_endpoint)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", settings.callback().as_str()),
                ("client_id", settings.client_id.as_str()),
                ("client_secret", settings.client_secret.as_str()),
            ])
            .send()
            .await
            .map_err(|e| format!("fornitore di identità non raggiungibile: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "il fornitore di identità rifiuta il codice ({})",
                response.status()
            ));
        }
        let tokens: Value = response
            .json()
            .await
            .map_err(|e| format!("risposta del fornitore non valida: {e}"))?;
        let id_token = tokens["id_token"]
            .as_str()
            .ok_or("il fornitore non restituisce un id_token")?;
        let jwks = get_json(&client, jwks_uri).await?;
        oidc::verify_id_token(
            id_token,
            &jwks,
            &issuer,
            &settings.client_id,
            &link.seat,
            now.timestamp(),
        )
        .map_err(|e| e.to_string())
    }
    .await;
    let identity = match identity {
        Ok(identity) => identity,
        Err(why) => {
            tracing::warn!(%why, "accesso con identità digitale rifiutato");
            return failed(&why);
        }
    };
    match admin::sign_in_representative(state.shared.service.store(), &ente, &identity, now).await {
        Ok(Representation::Pending(person)) => page(
            StatusCode::ACCEPTED,
            "Richiesta registrata",
            &format!(
                "<p>{}, la sua richiesta di operare per l'ente <strong>{}</strong> è registrata. L'Ufficio di Piano verifica che lei ne sia il rappresentante; dopo la conferma, accedendo di nuovo riceverà le credenziali per il client dell'ente.</p>",
                escape(&person.name),
                escape(&ente)
            ),
        ),
        Ok(Representation::Granted(person, issued)) => page(
            StatusCode::OK,
            "Credenziali per il client dell'ente",
            &format!(
                "<p>{}, ecco il token per il client GraphQL di <strong>{}</strong>, valido fino al {}. È mostrato <strong>solo ora</strong>: lo conservi in modo sicuro.</p>\n<p><code id=\"token\">{}</code></p>\n<p>Il client lo invia come <code>Authorization: Bearer …</code>.</p>",
                escape(&person.name),
                escape(&ente),
                issued
                    .token
                    .expires_at
                    .map(|e| e
                        .with_timezone(&crate::terms::ROME)
                        .format("%d/%m/%Y")
                        .to_string())
                    .unwrap_or_default(),
                escape(&issued.secret)
            ),
        ),
        Err(admin::Error::NotFound { .. }) => {
            failed("l'ente indicato non è registrato presso l'Ambito")
        }
        Err(admin::Error::Invalid(why)) => failed(&why),
        Err(e) => {
            tracing::error!(error = %e, "accesso con identità digitale: errore interno");
            failed("errore interno: riprovare più tardi")
        }
    }
}
