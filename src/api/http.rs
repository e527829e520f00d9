//! The HTTP side: routes, the GraphQL handler (rate limit, body limit, multipart uploads,
//! bearer token), GraphiQL, the WebSocket endpoint, document downloads, health and metrics;
//! one tracing span and one metrics count per request. Tokens and bodies are never logged.
//!
//! A WebSocket authenticates at `connection_init`; each operation on it is then admitted by
//! the rate limit and resolves its caller again (see `context`), and a watchdog checks the
//! token every `token_recheck`: when it is no longer valid the server closes the socket with
//! code 4403, without waiting for the client.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_graphql::http::{MultipartOptions, WebSocketProtocols, WsMessage};
use async_graphql::{Data, ParseRequestError};
use async_graphql_axum::GraphQLResponse;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tracing::Instrument;

use super::ApiState;
use super::access;
use super::context::{Auth, SocketCredentials, authenticate, bearer_of};
use super::error::ApiError;
use crate::identity;

/// The close code of `graphql-transport-ws` for a connection the server no longer admits.
const CLOSE_FORBIDDEN: u16 = 4403;

/// The routes.
pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/graphql", get(super::graphiql::page).post(graphql))
        .merge(super::graphiql::routes())
        .route("/graphql/ws", get(websocket))
        .route("/documents/{submission}/{sha256}", get(document))
        .route("/protocollo/{instance}/{sha256}", get(protocol_document))
        .route("/report/{instance}", get(report_page))
        .route("/calendario/{file}", get(calendar_feed))
        .route("/albo", get(albo_page))
        .route("/albo.json", get(albo_json))
        .route("/albo.atom", get(albo_atom))
        .route("/albo/documenti/{sha256}", get(albo_document))
        .route("/trasparente", get(trasparente_page))
        .route("/trasparente.json", get(trasparente_json))
        .route(
            "/risposta/{token}",
            get(super::rsvp::page).post(super::rsvp::answer),
        )
        .route("/accesso/ets", get(super::oidc::start))
        .route("/oidc/callback", get(super::oidc::callback))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// One span and one metrics count per request.
async fn observe(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| p.as_str())
        .to_string();
    let span = tracing::info_span!("http", method = %request.method(), route = %route, request_id = %uuid::Uuid::new_v4().simple(), status = tracing::field::Empty);
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    state
        .shared
        .metrics
        .count_request(&route, response.status().as_u16(), started.elapsed());
    response
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_of)
}

/// `{"errors":[{"message", "extensions":{"code"}}]}` with an HTTP status, for failures outside
/// GraphQL execution.
fn error_response(status: StatusCode, error: &ApiError) -> Response {
    let extensions = serde_json::to_value(error.extensions())
        .unwrap_or_else(|_| json!({ "code": error.code() }));
    (
        status,
        axum::Json(
            json!({ "errors": [{ "message": error.to_string(), "extensions": extensions }] }),
        ),
    )
        .into_response()
}

/// The client's address: the peer of the connection, or the first `X-Forwarded-For` entry
/// when the limits say a reverse proxy sets it.
fn client_address(state: &ApiState, request: &Request) -> Option<IpAddr> {
    if state.shared.limits.trust_forwarded_for
        && let Some(forwarded) = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|first| IpAddr::from_str(first.trim()).ok())
    {
        return Some(forwarded);
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// Admits a request by the rate limit, before anything else is done for it: `None`, or the
/// refusal to send (429 with `Retry-After`).
fn refusal(state: &ApiState, bearer: Option<&str>, address: Option<IpAddr>) -> Option<Response> {
    let hash = bearer.map(identity::hash_secret);
    state
        .shared
        .rate
        .admit(hash.as_deref(), address)
        .err()
        .map(|limited| {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                &ApiError::RateLimited {
                    retry_after_seconds: limited.retry_after_seconds,
                },
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(limited.retry_after_seconds),
            );
            state.shared.metrics.count_error("RATE_LIMITED");
            response
        })
}

async fn graphql(State(state): State<ApiState>, request: Request) -> Response {
    let address = client_address(&state, &request);
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let bearer = bearer(&headers);
    if let Some(refused) = refusal(&state, bearer.as_deref(), address) {
        return refused;
    }
    let limits = &state.shared.limits;
    let Ok(bytes) = axum::body::to_bytes(body, limits.max_body_bytes).await else {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &ApiError::bad_input(format!(
                "richiesta troppo grande: al massimo {} byte",
                limits.max_body_bytes
            )),
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let options = MultipartOptions::default()
        .max_file_size(limits.max_upload_bytes)
        .max_num_files(limits.max_files);
    let request = match async_graphql::http::receive_body(
        content_type,
        async_graphql::futures_util::io::Cursor::new(bytes),
        options,
    )
    .await
    {
        Ok(request) => request,
        Err(ParseRequestError::PayloadTooLarge) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &ApiError::bad_input(format!(
                    "documento troppo grande: al massimo {} byte",
                    limits.max_upload_bytes
                )),
            );
        }
        Err(e) => {
            tracing::debug!(error = %e, "richiesta GraphQL non leggibile");
            return error_response(
                StatusCode::BAD_REQUEST,
                &ApiError::bad_input("richiesta GraphQL non leggibile (JSON o multipart attesi)"),
            );
        }
    };
    let request = request.data(Auth::bearer(bearer, address));
    GraphQLResponse::from(state.schema.execute(request).await).into_response()
}

/// Subscriptions and operations over WebSocket. The token comes from the upgrade request's
/// `Authorization` header or from the `connection_init` payload (`{"Authorization": "Bearer
/// …"}` or `{"token": "…"}`).
async fn websocket(State(state): State<ApiState>, request: Request) -> Response {
    let address = client_address(&state, &request);
    let (mut parts, _) = request.into_parts();
    let header_bearer = bearer(&parts.headers);
    let protocol = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|protocols| {
            protocols
                .split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        });
    let Some(protocol) = protocol else {
        return error_response(
            StatusCode::BAD_REQUEST,
            &ApiError::bad_input(
                "protocollo WebSocket mancante: graphql-transport-ws o graphql-ws",
            ),
        );
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .protocols([protocol.sec_websocket_protocol()])
        .on_upgrade(move |socket| serve_socket(state, socket, protocol, header_bearer, address))
}

/// Runs one WebSocket: the GraphQL protocol, and beside it the watchdog of its token.
async fn serve_socket(
    state: ApiState,
    socket: WebSocket,
    protocol: WebSocketProtocols,
    header_bearer: Option<String>,
    address: Option<IpAddr>,
) {
    let (mut sink, stream) = socket.split();
    let input = stream
        .take_while(|message| std::future::ready(message.is_ok()))
        .filter_map(|message| {
            std::future::ready(match message {
                Ok(Message::Text(text)) => Some(text.as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            })
        });
    // The token the connection opened with, once `connection_init` accepted it.
    let opened: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let init = {
        let state = state.clone();
        let opened = opened.clone();
        move |payload: serde_json::Value| async move {
            let from_payload = ["Authorization", "authorization"]
                .iter()
                .find_map(|k| payload.get(*k).and_then(|v| v.as_str()).and_then(bearer_of))
                .or_else(|| {
                    payload
                        .get("token")
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                });
            let bearer = header_bearer.or(from_payload);
            let limited = |limited: super::rate::Limited| {
                async_graphql::Error::new(
                    ApiError::RateLimited {
                        retry_after_seconds: limited.retry_after_seconds,
                    }
                    .to_string(),
                )
            };
            let hash = bearer.as_deref().map(identity::hash_secret);
            state
                .shared
                .rate
                .admit(hash.as_deref(), address)
                .map_err(limited)?;
            match authenticate(&state.shared.service, bearer.as_deref()).await {
                Ok(_) => {
                    let bearer = bearer.unwrap_or_default();
                    let _ = opened.set(bearer.clone());
                    let mut data = Data::default();
                    data.insert(SocketCredentials { bearer, address });
                    Ok(data)
                }
                Err(e) => {
                    if e == ApiError::Unauthenticated && bearer.is_some() {
                        state.shared.rate.refused(address);
                    }
                    Err(async_graphql::Error::new(e.to_string()))
                }
            }
        }
    };
    let outgoing = async_graphql::http::WebSocket::new(state.schema.clone(), input, protocol)
        .on_connection_init(init)
        .map(|message| match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        });
    let mut outgoing = std::pin::pin!(outgoing);
    let mut recheck = tokio::time::interval(state.shared.limits.token_recheck);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = outgoing.next() => {
                let Some(message) = message else { break };
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            _ = recheck.tick() => {
                let Some(bearer) = opened.get() else { continue };
                if let Err(ApiError::Unauthenticated) =
                    authenticate(&state.shared.service, Some(bearer)).await
                {
                    tracing::info!("token non più valido: connessione WebSocket chiusa");
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code: CLOSE_FORBIDDEN,
                            reason: "token revocato, scaduto o non più valido".into(),
                        })))
                        .await;
                    // The closing handshake: what the client sent meanwhile is read (and
                    // answered by nothing) until it closes too, for a second at most.
                    // Dropped unread, it would make the kernel reset the connection, and
                    // the client could lose the close frame and its code to the reset.
                    let drain = async { while outgoing.next().await.is_some() {} };
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
                    break;
                }
            }
        }
    }
}

/// The caller of a document route, or the response refusing it.
async fn document_caller(
    state: &ApiState,
    request: Request,
) -> Result<crate::api::policy::Caller, Response> {
    let address = client_address(state, &request);
    let bearer = bearer(request.headers());
    drop(request);
    if let Some(refused) = refusal(state, bearer.as_deref(), address) {
        return Err(refused);
    }
    match authenticate(&state.shared.service, bearer.as_deref()).await {
        Ok(caller) => Ok(caller),
        Err(e @ ApiError::Unauthenticated) => {
            if bearer.is_some() {
                state.shared.rate.refused(address);
            }
            Err(error_response(StatusCode::UNAUTHORIZED, &e))
        }
        Err(e) => Err(error_response(StatusCode::INTERNAL_SERVER_ERROR, &e)),
    }
}

/// The report of a procedure (staff and the amministratore): an HTML page under a strict
/// Content-Security-Policy (no script, no other origin).
async fn report_page(
    State(state): State<ApiState>,
    Path(instance): Path<String>,
    request: Request,
) -> Response {
    let caller = match document_caller(&state, request).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    if !crate::api::policy::allows(&caller, &crate::api::policy::Subject::Deliveries) {
        return document_not_found();
    }
    let service = &state.shared.service;
    match crate::report::load(service, &instance).await {
        Ok(report) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            crate::report::html(&report, service.now()),
        )
            .into_response(),
        Err(crate::service::Error::UnknownInstance { .. }) => document_not_found(),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::from(e)),
    }
}

/// A personal calendar feed (`/calendario/SECRET.ics`), and the same events as a page
/// (`/calendario/SECRET`, what the person sees opening the link): no token, the secret is the
/// credential; an unknown or revoked one is 404. Rate-limited as an anonymous request.
async fn calendar_feed(
    State(state): State<ApiState>,
    Path(file): Path<String>,
    request: Request,
) -> Response {
    let address = client_address(&state, &request);
    drop(request);
    if let Some(refused) = refusal(&state, None, address) {
        return refused;
    }
    let not_found = || {
        error_response(
            StatusCode::NOT_FOUND,
            &ApiError::NotFound { what: "calendario" },
        )
    };
    let (secret, page) = match file.strip_suffix(".ics") {
        Some(secret) => (secret, false),
        None => (file.as_str(), true),
    };
    let service = &state.shared.service;
    let hash = crate::identity::hash_secret(secret);
    let feed = match service.store().calendar_feed_by_hash(&hash).await {
        Ok(Some(feed)) => feed,
        Ok(None) => {
            state.shared.rate.refused(address);
            return not_found();
        }
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::from(e)),
    };
    let person = match service.store().person(&feed.person_id).await {
        Ok(Some(person)) => person,
        Ok(None) => return not_found(),
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::from(e)),
    };
    let domain = state
        .shared
        .mail_domain
        .read()
        .map(|d| d.clone())
        .unwrap_or_else(|_| "procedo.local".to_owned());
    let now = service.now();
    let events = match crate::calendar::events(service, &person, &domain, now).await {
        Ok(events) => events,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::from(e)),
    };
    if page {
        let ics = format!("/calendario/{secret}.ics");
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            crate::calendar::html(
                &person.name,
                &events,
                &ics,
                &crate::api::calendar::public_url(),
                now,
            ),
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        crate::notify::invite::feed_ics(&format!("procedo – {}", person.name), &events, now),
    )
        .into_response()
}

/// Which public section a page shows.
#[derive(Clone, Copy)]
enum Section {
    /// The acts in publication today.
    Albo,
    /// The acts kept five years in Amministrazione trasparente.
    Trasparente,
}

/// The acts of `section` today, or the refusal of an over-rate anonymous request.
async fn section_acts(
    state: &ApiState,
    request: Request,
    section: Section,
) -> Result<(Vec<crate::albo::Publication>, chrono::NaiveDate), Response> {
    let address = client_address(state, &request);
    drop(request);
    if let Some(refused) = refusal(state, None, address) {
        return Err(refused);
    }
    let service = &state.shared.service;
    let today = service
        .now()
        .with_timezone(&crate::terms::ROME)
        .date_naive();
    let acts = match section {
        Section::Albo => crate::albo::in_publication(service, today).await,
        Section::Trasparente => crate::albo::trasparente(service, today).await,
    };
    acts.map(|acts| (acts, today))
        .map_err(|e| error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::from(e)))
}

fn ambito_name() -> String {
    std::env::var(crate::notify::delivery::AMBITO_VARIABLE)
        .unwrap_or_else(|_| crate::notify::delivery::DEFAULT_AMBITO.to_owned())
}

/// A public section as a page (no script, nothing from elsewhere).
async fn section_page(state: &ApiState, request: Request, section: Section) -> Response {
    match section_acts(state, request, section).await {
        Ok((acts, today)) => {
            let ambito = ambito_name();
            let page = match section {
                Section::Albo => crate::albo::html(&ambito, today, &acts),
                Section::Trasparente => crate::albo::trasparente_html(&ambito, today, &acts),
            };
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (
                        header::CONTENT_SECURITY_POLICY,
                        "default-src 'none'; style-src 'unsafe-inline'",
                    ),
                ],
                page,
            )
                .into_response()
        }
        Err(refused) => refused,
    }
}

/// A public section as JSON.
async fn section_json(state: &ApiState, request: Request, section: Section) -> Response {
    match section_acts(state, request, section).await {
        Ok((acts, _)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(&acts).unwrap_or_else(|_| "[]".to_owned()),
        )
            .into_response(),
        Err(refused) => refused,
    }
}

/// The albo online (public): the acts in publication today.
async fn albo_page(State(state): State<ApiState>, request: Request) -> Response {
    section_page(&state, request, Section::Albo).await
}

/// The albo online as JSON.
async fn albo_json(State(state): State<ApiState>, request: Request) -> Response {
    section_json(&state, request, Section::Albo).await
}

/// Amministrazione trasparente (public).
async fn trasparente_page(State(state): State<ApiState>, request: Request) -> Response {
    section_page(&state, request, Section::Trasparente).await
}

/// Amministrazione trasparente as JSON.
async fn trasparente_json(State(state): State<ApiState>, request: Request) -> Response {
    section_json(&state, request, Section::Trasparente).await
}

/// The albo online as an Atom feed.
async fn albo_atom(State(state): State<ApiState>, request: Request) -> Response {
    match section_acts(&state, request, Section::Albo).await {
        Ok((acts, _)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
            crate::albo::atom(
                &ambito_name(),
                &crate::api::calendar::public_url(),
                &acts,
                state.shared.service.now(),
            ),
        )
            .into_response(),
        Err(refused) => refused,
    }
}

/// A document of an act that is public today (albo or Amministrazione trasparente), by its
/// SHA-256; anything else is 404, whether it exists or not.
async fn albo_document(
    State(state): State<ApiState>,
    Path(sha256): Path<String>,
    request: Request,
) -> Response {
    let address = client_address(&state, &request);
    drop(request);
    if let Some(refused) = refusal(&state, None, address) {
        return refused;
    }
    let sha256 = sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return document_not_found();
    }
    let Some(protocollo) = state.shared.protocollo.as_ref() else {
        return document_not_found();
    };
    let service = &state.shared.service;
    let today = service
        .now()
        .with_timezone(&crate::terms::ROME)
        .date_naive();
    let doc = match crate::albo::public_document(service, today, &sha256).await {
        Ok(Some(doc)) => doc,
        Ok(None) => return document_not_found(),
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::from(e)),
    };
    stored_file(protocollo, &doc.media_type, &doc.name, &doc.sha256).await
}

fn document_not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        &ApiError::NotFound { what: "documento" },
    )
}

/// A stored file as a download: never rendered in the API's origin.
fn file_response(media_type: &str, name: &str, content: Vec<u8>) -> Response {
    let media_type = HeaderValue::from_str(media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, media_type),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("sandbox"),
            ),
        ],
        content,
    )
        .into_response()
}

/// A document's content, for a caller who may read the submission carrying it.
async fn document(
    State(state): State<ApiState>,
    Path((submission, sha256)): Path<(String, String)>,
    request: Request,
) -> Response {
    let caller = match document_caller(&state, request).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let shared = &state.shared;
    match access::submission(shared, &caller, &submission).await {
        Ok(_) => {}
        Err(ApiError::NotFound { .. }) => return document_not_found(),
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
    let doc = match shared
        .service
        .store()
        .submission_document(&submission, &sha256.to_ascii_lowercase())
        .await
    {
        Ok(Some(doc)) => doc,
        Ok(None) => return document_not_found(),
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::from(e)),
    };
    file_response(&doc.media_type, &doc.sha256, doc.content)
}

/// A document registered in the protocollo for an instance (the verbale's PDF/A to sign, a
/// graduatoria), for a caller who may read that registration: the same rule as the
/// `protocolRegistrations` query.
async fn protocol_document(
    State(state): State<ApiState>,
    Path((instance, sha256)): Path<(String, String)>,
    request: Request,
) -> Response {
    let caller = match document_caller(&state, request).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let shared = &state.shared;
    match access::instance(shared, &caller, &instance).await {
        Ok(_) => {}
        Err(ApiError::NotFound { .. } | ApiError::Forbidden(_)) => {
            return document_not_found();
        }
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
    let Some(protocollo) = shared.protocollo.as_ref() else {
        return document_not_found();
    };
    let rows = match shared
        .service
        .store()
        .protocol_registrations(&crate::store::ProtocolFilter {
            instance_id: Some(instance.clone()),
            ..crate::store::ProtocolFilter::default()
        })
        .await
    {
        Ok(rows) => rows,
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::from(e)),
    };
    let sha256 = sha256.to_ascii_lowercase();
    let Some(doc) = rows
        .iter()
        .filter(|row| {
            crate::api::policy::allows(
                &caller,
                &crate::api::policy::Subject::ProtocolRegistration(row),
            )
        })
        .flat_map(|row| row.documents.iter())
        .find(|d| d.sha256 == sha256)
    else {
        return document_not_found();
    };
    stored_file(protocollo, &doc.media_type, &doc.name, &doc.sha256).await
}

/// A file of the protocollo's store as a download; 404 when the file is missing.
async fn stored_file(
    protocollo: &crate::protocollo::Protocollo,
    media_type: &str,
    name: &str,
    sha256: &str,
) -> Response {
    match protocollo.files().get(sha256).await {
        Ok(Some(content)) => file_response(media_type, name, content),
        Ok(None) => document_not_found(),
        Err(e) => {
            tracing::error!(error = %e, "documento di protocollo illeggibile");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::Internal)
        }
    }
}

/// 200 when the database answers, 503 otherwise.
async fn healthz(State(state): State<ApiState>) -> Response {
    match state.shared.service.store().instance("__healthz__").await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "database non raggiungibile");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "database non raggiungibile\n",
            )
                .into_response()
        }
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let text = state.shared.metrics.render(&state.shared.service).await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
