//! `spawn_apps()`: the real server on 127.0.0.1:0 over a fresh database per backend, with a
//! manual clock, a seeded Ambito (staff, a comune with its sindaco, two ETS) and a token per
//! person; plus a GraphQL client that speaks JSON and multipart uploads.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use async_graphql::futures_util::{SinkExt, StreamExt};
use chrono::Duration;
use procedo::api::{self, ApiState, Limits};
use procedo::catalog;
use procedo::clock::ManualClock;
use procedo::identity;
use procedo::service::Service;
use procedo::store::{NewOrganisation, NewPerson, NewToken, OrganisationKind, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common::{self, Scratch};

/// The instant every test starts at: Thursday 26 November 2026, 09:00 in Rome.
pub const START: &str = "2026-11-26T09:00:00+01:00";
/// The avviso's deadline once published on 27/11/2026 (30 days, at 12:00).
pub const DEADLINE: &str = "2026-12-28T12:00:00+01:00";

/// The bearer secrets of the seeded people.
pub struct Tokens {
    /// RUP of the Ambito.
    pub rup: String,
    /// The same person, acting as Ufficio di Piano.
    pub ufficio: String,
    /// Auditor (read only).
    pub auditor: String,
    /// First ETS.
    pub ets_a: String,
    /// Second ETS.
    pub ets_b: String,
    /// Mayor of a comune.
    pub sindaco: String,
    /// The system administrator.
    pub admin: String,
    /// A revoked token of the first ETS.
    pub revoked: String,
    /// An expired token of the first ETS.
    pub expired: String,
}

/// A running server.
pub struct TestApp {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The service clock.
    pub clock: ManualClock,
    /// The API state (to publish probe events).
    pub state: ApiState,
    /// Secrets.
    pub tokens: Tokens,
    client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    _scratch: Scratch,
    _files: tempfile::TempDir,
}

impl TestApp {
    /// The database URL (to check what the database itself refuses).
    pub fn database_url(&self) -> &str {
        &self._scratch.url
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
    }
}

/// One app per backend, default limits.
pub async fn spawn_apps() -> Vec<TestApp> {
    spawn_apps_with(Limits::default()).await
}

/// One app per backend.
pub async fn spawn_apps_with(limits: Limits) -> Vec<TestApp> {
    let mut apps = Vec::new();
    for (backend, store, scratch) in common::scratch_stores().await {
        apps.push(spawn_app(backend, store, scratch, limits.clone()).await);
    }
    apps
}

/// The key personal links are signed with in these tests.
pub const LINK_KEY: &[u8] = b"chiave di prova dei collegamenti personali, 32+";

async fn spawn_app(backend: String, store: Store, scratch: Scratch, limits: Limits) -> TestApp {
    let clock = ManualClock::new(common::at(START));
    let service = Service::new(store, Arc::new(clock.clone()));
    let (catalog, diags) = catalog::load(&[std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workflows"
    ))]);
    assert!(
        diags.is_empty(),
        "shipped workflows must validate: {diags:?}"
    );
    service
        .install(&catalog.expect("catalog"))
        .await
        .expect("install");
    let tokens = seed(service.store(), &clock).await;
    let files = tempfile::tempdir().expect("files dir");
    let mut settings = procedo::protocollo::Settings::local("Ambito territoriale 7");
    settings.files_dir = files.path().join("files");
    settings.conservation_dir = files.path().join("conservazione");
    let protocollo =
        procedo::protocollo::Protocollo::new(service.clone(), &settings).expect("protocollo");
    let state = ApiState::new(service, limits)
        .with_protocollo(protocollo)
        .with_links(LINK_KEY.to_vec())
        .with_workflows(std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/workflows"
        )));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("address"));
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(api::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    TestApp {
        backend,
        address,
        clock,
        state,
        tokens,
        client: reqwest::Client::new(),
        shutdown: Some(shutdown),
        _scratch: scratch,
        _files: files,
    }
}

async fn seed(store: &Store, clock: &ManualClock) -> Tokens {
    let now = procedo::clock::Clock::now(clock);
    for (id, name, kind) in [
        (
            "ambito-7",
            "Ambito territoriale 7",
            OrganisationKind::Ambito,
        ),
        ("comune-lago", "Comune di Lago", OrganisationKind::Comune),
        (
            "ets-aurora",
            "Cooperativa sociale Aurora",
            OrganisationKind::Ets,
        ),
        ("ets-borea", "Associazione Borea", OrganisationKind::Ets),
    ] {
        store
            .add_organisation(&NewOrganisation {
                id: id.into(),
                name: name.into(),
                kind,
                codice_fiscale: None,
                runts: None,
                pec: None,
                at: now,
            })
            .await
            .expect("org");
    }
    for (id, org, roles) in [
        ("maria.rossi", "ambito-7", vec!["rup", "ufficio_di_piano"]),
        ("ada.verdi", "ambito-7", vec!["auditor"]),
        ("luca.bianchi", "ets-aurora", vec!["ets"]),
        ("sara.neri", "ets-borea", vec!["ets"]),
        ("sindaco.lago", "comune-lago", vec!["sindaco"]),
        ("ivo.admin", "ambito-7", vec!["amministratore"]),
    ] {
        store
            .add_person(&NewPerson {
                id: id.into(),
                name: id.replace('.', " "),
                email: format!("{id}@example.org"),
                organisation_id: org.into(),
                roles: roles.into_iter().map(String::from).collect(),
                digest: "immediato".into(),
                at: now,
            })
            .await
            .expect("person");
    }
    let token = |person: &'static str, role: &'static str, expires: Option<Duration>| async move {
        let secret = identity::new_secret();
        let expires_at = expires.map(|d| now + d);
        store
            .add_token(&NewToken {
                id: identity::new_token_id(),
                person_id: person.into(),
                role: role.into(),
                hash: secret.hash,
                at: now,
                expires_at,
            })
            .await
            .expect("token");
        secret.secret
    };
    let revoked_secret = identity::new_secret();
    let revoked = store
        .add_token(&NewToken {
            id: identity::new_token_id(),
            person_id: "luca.bianchi".into(),
            role: "ets".into(),
            hash: revoked_secret.hash.clone(),
            at: now,
            expires_at: None,
        })
        .await
        .expect("token");
    store.revoke_token(&revoked.id, now).await.expect("revoke");
    Tokens {
        rup: token("maria.rossi", "rup", None).await,
        ufficio: token("maria.rossi", "ufficio_di_piano", None).await,
        auditor: token("ada.verdi", "auditor", None).await,
        ets_a: token("luca.bianchi", "ets", Some(Duration::days(365))).await,
        ets_b: token("sara.neri", "ets", None).await,
        sindaco: token("sindaco.lago", "sindaco", None).await,
        admin: token("ivo.admin", "amministratore", None).await,
        revoked: revoked_secret.secret,
        expired: token("luca.bianchi", "ets", Some(Duration::seconds(-1))).await,
    }
}

/// A document to upload.
pub struct Upload<'a> {
    /// Name.
    pub name: &'a str,
    /// Media type.
    pub media_type: &'a str,
    /// Content.
    pub content: &'a [u8],
}

/// Hex SHA-256.
pub fn sha256(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

impl TestApp {
    /// A GraphQL request; returns the JSON response (`data` and/or `errors`).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        response.json().await.expect("JSON response")
    }

    /// A GraphQL request as sent over HTTP, for its status and headers.
    pub async fn post(&self, token: Option<&str>, query: &str) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({ "query": query }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// A WebSocket on `/graphql/ws` (graphql-transport-ws) initialised with `token`, after
    /// its `connection_ack`.
    pub async fn socket(&self, token: &str) -> Socket {
        let url = format!("{}/graphql/ws", self.address.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        socket
            .send(Message::Text(
                json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })
                    .to_string()
                    .into(),
            ))
            .await
            .expect("init");
        let ack = next_json(&mut socket, StdDuration::from_secs(5))
            .await
            .expect("ack");
        assert_eq!(ack["type"], "connection_ack", "[{}] {ack}", self.backend);
        socket
    }

    /// A GraphQL request that must succeed; returns `data`.
    pub async fn ok(&self, token: &str, query: &str, variables: Value) -> Value {
        let response = self.gql(Some(token), query, variables).await;
        assert!(
            response.get("errors").is_none(),
            "[{}] unexpected errors: {response:#}",
            self.backend
        );
        response["data"].clone()
    }

    /// A GraphQL multipart request: `files` fill `variables.documents.N.file`.
    pub async fn gql_upload(
        &self,
        token: &str,
        query: &str,
        mut variables: Value,
        files: &[Upload<'_>],
    ) -> Value {
        let mut documents = Vec::new();
        let mut map = serde_json::Map::new();
        for (i, f) in files.iter().enumerate() {
            documents.push(json!({ "name": f.name, "mediaType": f.media_type, "size": f.content.len(), "sha256": sha256(f.content), "file": null }));
            map.insert(
                i.to_string(),
                json!([format!("variables.documents.{i}.file")]),
            );
        }
        variables["documents"] = Value::Array(documents);
        self.gql_multipart(
            token,
            json!({ "query": query, "variables": variables }),
            Value::Object(map),
            files,
        )
        .await
    }

    /// A raw GraphQL multipart request (operations and map as given).
    pub async fn gql_multipart(
        &self,
        token: &str,
        operations: Value,
        map: Value,
        files: &[Upload<'_>],
    ) -> Value {
        let mut form = reqwest::multipart::Form::new()
            .text("operations", operations.to_string())
            .text("map", map.to_string());
        for (i, f) in files.iter().enumerate() {
            let part = reqwest::multipart::Part::bytes(f.content.to_vec())
                .file_name(f.name.to_string())
                .mime_str(f.media_type)
                .expect("media type");
            form = form.part(i.to_string(), part);
        }
        let response = self
            .client
            .post(format!("{}/graphql", self.address))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("request");
        response.json().await.expect("JSON response")
    }

    /// A GET with an optional bearer token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request")
    }

    /// Starts an avviso (as the RUP) and publishes it on 27/11/2026: submissions open until
    /// [`DEADLINE`]. Returns its id.
    pub async fn published_avviso(&self) -> String {
        let id = self.draft_avviso().await;
        self.ok(
            &self.tokens.rup,
            "mutation($id: ID!) { fire(instanceId: $id, event: \"pubblica\", input: {data_pubblicazione: \"2026-11-27\", atto_criteri: \"determina n. 12 del 26/11/2026\"}) { instance { state { id } } } }",
            json!({ "id": id }),
        )
        .await;
        id
    }

    /// An avviso of version 3 (scores typed in by the commissione, no `evaluation:`),
    /// stored as a running Ambito would still have it, started and published on 27/11/2026.
    pub async fn published_avviso_v3(&self) -> String {
        let source = include_str!("../fixtures/avviso_coprogettazione_v3.yaml");
        let assets = json!({});
        self.state
            .service()
            .store()
            .save_definition(&procedo::store::NewDefinition {
                id: "avviso_coprogettazione".into(),
                version: 3,
                title: "Avviso pubblico di co-progettazione (versione 3)".into(),
                content_hash: procedo::definition::content_hash(source, &assets.to_string()),
                source: source.into(),
                assets,
                loaded_at: procedo::clock::Clock::now(&self.clock),
            })
            .await
            .expect("version 3 stored");
        let data = self
            .ok(
                &self.tokens.rup,
                "mutation { startInstance(procedureId: \"avviso_coprogettazione\", version: 3, variables: {oggetto: \"Servizi per la disabilità\"}) { instance { id } } }",
                json!({}),
            )
            .await;
        let id = data["startInstance"]["instance"]["id"]
            .as_str()
            .expect("id")
            .to_string();
        self.ok(
            &self.tokens.rup,
            "mutation($id: ID!) { fire(instanceId: $id, event: \"pubblica\", input: {data_pubblicazione: \"2026-11-27\"}) { instance { state { id } } } }",
            json!({ "id": id }),
        )
        .await;
        id
    }

    /// Starts an avviso in draft (as the RUP). Returns its id.
    pub async fn draft_avviso(&self) -> String {
        let data = self
            .ok(
                &self.tokens.rup,
                "mutation { startInstance(procedureId: \"avviso_coprogettazione\", variables: {oggetto: \"Servizi per la disabilità\"}) { instance { id } } }",
                json!({}),
            )
            .await;
        data["startInstance"]["instance"]["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// Submits an application with documents; returns the whole response.
    pub async fn submit(&self, token: &str, instance_id: &str, files: &[Upload<'_>]) -> Value {
        self.gql_upload(
            token,
            "mutation($id: ID!, $documents: [DocumentInput!]!) { submitApplication(instanceId: $id, note: \"Proposta progettuale\", documents: $documents) { id status submittedAt documents { name mediaType size sha256 url } } }",
            json!({ "id": instance_id }),
            files,
        )
        .await
    }
}

/// A client WebSocket.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON message on a socket (pings skipped), or `None` after `wait` or at its end.
pub async fn next_json(socket: &mut Socket, wait: StdDuration) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(wait, socket.next())
            .await
            .ok()??
            .ok()?;
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).ok()?;
            if value["type"] == "ping" {
                continue;
            }
            return Some(value);
        }
    }
}

/// Sends one operation on a socket and returns the first answer to it (`next` or `error`).
pub async fn operation(socket: &mut Socket, id: &str, query: &str) -> Value {
    socket
        .send(Message::Text(
            json!({ "id": id, "type": "subscribe", "payload": { "query": query } })
                .to_string()
                .into(),
        ))
        .await
        .expect("subscribe");
    loop {
        let message = next_json(socket, StdDuration::from_secs(10))
            .await
            .expect("an answer to the operation");
        if message["id"] == id && message["type"] != "complete" {
            return message;
        }
    }
}

/// The `extensions.code` of the first error.
pub fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {response:#}"))
}
