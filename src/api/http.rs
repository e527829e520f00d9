//! The HTTP side: routes, the GraphQL handler (body limit, multipart uploads, bearer token),
//! GraphiQL, the WebSocket endpoint, document downloads, health and metrics; one tracing span
//! and one metrics count per request. Tokens and bodies are never logged.

use std::time::Instant;

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, MultipartOptions};
use async_graphql::{Data, ParseRequestError};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tracing::Instrument;

use super::ApiState;
use super::access;
use super::context::{Auth, authenticate, bearer_of};
use super::error::ApiError;

/// The routes.
pub(crate) fn router(state: ApiState) -> Router {
    Router::new()
        .route("/graphql", get(super::graphiql::page).post(graphql))
        .merge(super::graphiql::routes())
        .route("/graphql/ws", get(websocket))
        .route("/documents/{submission}/{sha256}", get(document))
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
    (status, axum::Json(json!({ "errors": [{ "message": error.to_string(), "extensions": { "code": error.code() } }] }))).into_response()
}

async fn graphql(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Response {
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
    let request = request.data(Auth::bearer(bearer(&headers)));
    GraphQLResponse::from(state.schema.execute(request).await).into_response()
}

/// Subscriptions. The token comes from the upgrade request's `Authorization` header or from
/// the `connection_init` payload (`{"Authorization": "Bearer …"}` or `{"token": "…"}`).
async fn websocket(
    State(state): State<ApiState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
    headers: HeaderMap,
) -> Response {
    let header_bearer = bearer(&headers);
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| async move {
            let service = state.shared.service.clone();
            GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
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
                    match authenticate(&service, bearer.as_deref()).await {
                        Ok(caller) => {
                            let mut data = Data::default();
                            data.insert(Auth::resolved(caller));
                            Ok(data)
                        }
                        Err(e) => Err(async_graphql::Error::new(e.to_string())),
                    }
                })
                .serve()
                .await;
        })
}

/// A document's content, for a caller who may read the submission carrying it.
async fn document(
    State(state): State<ApiState>,
    Path((submission, sha256)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let shared = &state.shared;
    let caller = match authenticate(&shared.service, bearer(&headers).as_deref()).await {
        Ok(caller) => caller,
        Err(e @ ApiError::Unauthenticated) => return error_response(StatusCode::UNAUTHORIZED, &e),
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let not_found = || {
        error_response(
            StatusCode::NOT_FOUND,
            &ApiError::NotFound { what: "documento" },
        )
    };
    match access::submission(shared, &caller, &submission).await {
        Ok(_) => {}
        Err(ApiError::NotFound { .. }) => return not_found(),
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
    let doc = match shared
        .service
        .store()
        .submission_document(&submission, &sha256.to_ascii_lowercase())
        .await
    {
        Ok(Some(doc)) => doc,
        Ok(None) => return not_found(),
        Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &ApiError::from(e)),
    };
    let media_type = HeaderValue::from_str(&doc.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{}\"", doc.sha256))
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
        doc.content,
    )
        .into_response()
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
