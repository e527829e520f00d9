//! An ETS's legal representative signs in through OpenID Connect against a local provider the
//! test starts (discovery, authorization, token and JWKS endpoints; RS256 ID tokens signed with
//! a key made by openssl). The first sign-in is recorded for the office; once the Ufficio di
//! Piano confirms, the next sign-in shows a token that acts for that ETS only. A tampered
//! state, a token for another client or a comune instead of an ETS gets a clear page.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use procedo::api::oidc::OidcSettings;
use ring::signature::RsaKeyPair;
use serde_json::{Value, json};

use crate::helpers::{TestApp, code, spawn_apps};

const CLIENT_ID: &str = "procedo-ambito";
const CLIENT_SECRET: &str = "segreto-del-client";
const FISCAL: &str = "RSSMRA80A01H501U";

struct Provider {
    issuer: String,
    key: RsaKeyPair,
    codes: Mutex<HashMap<String, String>>,
    audience: Mutex<String>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Provider {
    fn id_token(&self, nonce: &str) -> String {
        let header = b64(json!({ "alg": "RS256", "kid": "k1", "typ": "JWT" })
            .to_string()
            .as_bytes());
        let now = chrono::Utc::now().timestamp();
        let audience = self.audience.lock().expect("lock").clone();
        let claims = b64(json!({
            "iss": self.issuer,
            "aud": audience,
            "sub": "soggetto-opaco-42",
            "fiscal_number": format!("TINIT-{FISCAL}"),
            "given_name": "Mario",
            "family_name": "Rossi",
            "email": "mario.rossi@aurora.example.org",
            "nonce": nonce,
            "iat": now,
            "exp": now + 3_600_000_000,
        })
        .to_string()
        .as_bytes());
        let message = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .expect("sign");
        format!("{message}.{}", b64(&signature))
    }
}

async fn discovery(State(p): State<Arc<Provider>>) -> Json<Value> {
    Json(json!({
        "issuer": p.issuer,
        "authorization_endpoint": format!("{}/authorize", p.issuer),
        "token_endpoint": format!("{}/token", p.issuer),
        "jwks_uri": format!("{}/jwks", p.issuer),
    }))
}

async fn authorize(
    State(p): State<Arc<Provider>>,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    assert_eq!(q.get("client_id").map(String::as_str), Some(CLIENT_ID));
    let code = format!("codice-{}", p.codes.lock().expect("lock").len());
    p.codes
        .lock()
        .expect("lock")
        .insert(code.clone(), q.get("nonce").cloned().unwrap_or_default());
    let back = reqwest::Url::parse_with_params(
        q.get("redirect_uri").expect("redirect_uri"),
        &[
            ("code", code.as_str()),
            ("state", q.get("state").expect("state").as_str()),
        ],
    )
    .expect("url");
    Redirect::to(back.as_str())
}

async fn token(
    State(p): State<Arc<Provider>>,
    Form(f): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    if f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        );
    }
    let nonce = f
        .get("code")
        .and_then(|c| p.codes.lock().expect("lock").remove(c));
    match nonce {
        Some(nonce) => (
            axum::http::StatusCode::OK,
            Json(
                json!({ "access_token": "x", "token_type": "Bearer", "id_token": p.id_token(&nonce) }),
            ),
        ),
        None => (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({ "error": "invalid_grant" })),
        ),
    }
}

async fn jwks(State(p): State<Arc<Provider>>) -> Json<Value> {
    let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(p.key.public());
    Json(
        json!({ "keys": [{ "kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": b64(&public.n), "e": b64(&public.e) }] }),
    )
}

/// A provider on loopback with a fresh 2048-bit key.
async fn provider() -> (Arc<Provider>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let der = dir.path().join("key.der");
    // PKCS#1 DER (RSAPrivateKey), as ring reads it.
    let status = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(dir.path().join("key.pem"))
        .arg("2048")
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl genrsa");
    let status = std::process::Command::new("openssl")
        .args(["rsa", "-traditional", "-outform", "DER", "-in"])
        .arg(dir.path().join("key.pem"))
        .arg("-out")
        .arg(&der)
        .status()
        .expect("openssl runs");
    assert!(status.success(), "openssl rsa");
    let key = RsaKeyPair::from_der(&std::fs::read(&der).expect("key")).expect("RSA key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("address"));
    let provider = Arc::new(Provider {
        issuer,
        key,
        codes: Mutex::new(HashMap::new()),
        audience: Mutex::new(CLIENT_ID.into()),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/jwks", get(jwks))
        .with_state(provider.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (provider, dir)
}

/// procedo with the provider configured, on its own port over the app's database.
async fn procedo_with_oidc(app: &TestApp, issuer: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let public_url = format!("http://{}", listener.local_addr().expect("address"));
    let state = app.state.clone().with_oidc(OidcSettings {
        issuer: issuer.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        public_url: public_url.clone(),
        key: b"chiave dello stato di accesso, almeno 32 caratteri".to_vec(),
    });
    tokio::spawn(procedo::api::serve(listener, state, std::future::pending()));
    public_url
}

/// Follows the sign-in by hand (no automatic redirects): procedo → provider → procedo.
async fn sign_in(base: &str, ente: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut url = format!("{base}/accesso/ets?ente={ente}");
    for _ in 0..3 {
        let response = client.get(&url).send().await.expect("GET");
        if response.status().is_redirection() {
            url = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .expect("location")
                .to_string();
            continue;
        }
        let status = response.status().as_u16();
        return (status, response.text().await.expect("page"));
    }
    panic!("too many redirects");
}

fn token_in(page: &str) -> String {
    let start = page
        .find("<code id=\"token\">")
        .expect("the token on the page")
        + "<code id=\"token\">".len();
    let end = start + page[start..].find("</code>").expect("end");
    page[start..end].to_string()
}

#[tokio::test]
async fn an_ets_representative_signs_in_through_oidc_and_its_token_sees_only_its_ets() {
    let (provider, _keys) = provider().await;
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let base = procedo_with_oidc(&app, &provider.issuer).await;

        // First time: recorded for the office, no token.
        let (status, page) = sign_in(&base, "ets-aurora").await;
        assert_eq!(status, 202, "[{backend}] {page}");
        assert!(page.contains("Richiesta registrata"), "[{backend}] {page}");
        assert!(!page.contains("pdo_"), "[{backend}]");
        let pending = app
            .ok(
                &app.tokens.ufficio,
                "{ pendingRepresentatives { id name organisationId } }",
                json!({}),
            )
            .await;
        let person = format!("ets-aurora:{FISCAL}");
        assert_eq!(
            pending["pendingRepresentatives"][0]["id"], person,
            "[{backend}] {pending:#}"
        );
        assert_eq!(
            pending["pendingRepresentatives"][0]["name"], "Mario Rossi",
            "[{backend}]"
        );
        // An ETS may not confirm itself.
        let refused = app
            .gql(
                Some(&app.tokens.ets_a),
                "mutation($p: ID!) { confirmRepresentative(personId: $p) { id } }",
                json!({ "p": person }),
            )
            .await;
        assert_eq!(code(&refused), "FORBIDDEN", "[{backend}]");
        app.ok(
            &app.tokens.ufficio,
            "mutation($p: ID!) { confirmRepresentative(personId: $p) { roles } }",
            json!({ "p": person }),
        )
        .await;

        // Confirmed: the next sign-in shows a token, once, for this ETS only.
        let (status, page) = sign_in(&base, "ets-aurora").await;
        assert_eq!(status, 200, "[{backend}] {page}");
        let secret = token_in(&page);
        assert!(secret.starts_with("pdo_"), "[{backend}]");
        let me = app
            .ok(
                &secret,
                "{ me { personId role organisation { id } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            me["me"]["organisation"]["id"], "ets-aurora",
            "[{backend}] {me:#}"
        );
        assert_eq!(me["me"]["role"], "ets", "[{backend}]");
        let other = app.gql(Some(&secret), "{ people { id } }", json!({})).await;
        assert_eq!(code(&other), "FORBIDDEN", "[{backend}]");

        // A comune is not an ETS; a tampered state and a token for another client are refused.
        let (status, page) = sign_in(&base, "comune-lago").await;
        assert_eq!(status, 400, "[{backend}] {page}");
        assert!(
            page.contains("non è un ente del Terzo Settore"),
            "[{backend}] {page}"
        );
        let client = reqwest::Client::new();
        let tampered = client
            .get(format!("{base}/oidc/callback?code=x&state=e30.00"))
            .send()
            .await
            .expect("GET");
        assert_eq!(tampered.status(), 400, "[{backend}]");
        assert!(
            tampered.text().await.expect("page").contains("alterato"),
            "[{backend}]"
        );
        *provider.audience.lock().expect("lock") = "un-altro-client".into();
        let (status, page) = sign_in(&base, "ets-aurora").await;
        *provider.audience.lock().expect("lock") = CLIENT_ID.into();
        assert_eq!(status, 400, "[{backend}] {page}");
        assert!(page.contains("un altro client"), "[{backend}] {page}");

        let audit = app
            .ok(
                &app.tokens.admin,
                "{ adminAudit { action actorId } }",
                json!({}),
            )
            .await
            .to_string();
        for action in [
            "richiesta_rappresentanza",
            "conferma_rappresentante",
            "crea_token",
        ] {
            assert!(audit.contains(action), "[{backend}] {action}: {audit}");
        }
        assert!(!audit.contains(&secret), "[{backend}]");
    }
}
