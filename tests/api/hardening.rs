//! What a hostile client tries: a thousand aliased lookups in one request, bursts over the
//! rate limit, token guessing, and a token revoked or expired while its WebSocket stays open.
//! Over HTTP and over the socket alike.

use std::time::Duration as StdDuration;

use async_graphql::futures_util::{SinkExt, StreamExt};
use chrono::Duration;
use procedo::api::Limits;
use procedo::api::limits::Rate;
use procedo::clock::Clock;
use procedo::identity;
use procedo::store::NewToken;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Socket, TestApp, code, operation, spawn_apps, spawn_apps_with};

/// A well-formed token nobody holds.
fn wrong_token() -> String {
    format!("pdo_{}", "f".repeat(64))
}

/// `{ a0: instance(id: "x") { id } a1: … }` with `n` aliases of `field`.
fn aliased(n: usize, field: &str) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: {field}")).collect();
    format!("{{ {} }}", fields.join(" "))
}

/// The errors of an answer on a socket: an `error` message, or a `next` with errors.
fn errors_of(answer: &Value) -> Vec<Value> {
    let errors = if answer["type"] == "error" {
        &answer["payload"]
    } else {
        &answer["payload"]["errors"]
    };
    errors.as_array().cloned().unwrap_or_default()
}

fn message(response: &Value) -> &str {
    response["errors"][0]["message"].as_str().unwrap_or("")
}

#[tokio::test]
async fn a_thousand_aliased_lookups_are_refused_before_any_database_work() {
    for app in spawn_apps().await {
        for field in [
            "instance(id: \"x\") { id }",
            "questions(instanceId: \"x\") { id }",
        ] {
            let query = aliased(1_000, field);
            // With a wrong token the answer is the limit, not UNAUTHENTICATED: the token was
            // not even looked up.
            let response = app.gql(Some(&wrong_token()), &query, json!({})).await;
            assert_eq!(code(&response), "BAD_USER_INPUT", "[{}]", app.backend);
            assert!(
                message(&response).contains("alias"),
                "[{}] {}",
                app.backend,
                message(&response)
            );
            assert!(response.get("data").is_none_or(Value::is_null));

            // Over a socket, as an ETS.
            let mut socket = app.socket(&app.tokens.ets_a).await;
            let answer = operation(&mut socket, "1", &query).await;
            assert!(
                errors_of(&answer)[0]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("alias")),
                "[{}] {answer}",
                app.backend
            );
            assert!(
                answer["payload"]["data"].is_null(),
                "[{}] {answer}",
                app.backend
            );
            let _ = socket.close(None).await;
        }

        // Under the alias cap, still too many lookups at the top of one operation.
        let limits = Limits::default();
        let fragments = format!(
            "query {{ ...A ...A ...A }} fragment A on Query {{ {} }}",
            (0..limits.max_root_fields)
                .map(|_| "instance(id: \"x\") { id }")
                .collect::<Vec<_>>()
                .join(" ")
        );
        let response = app.gql(Some(&wrong_token()), &fragments, json!({})).await;
        assert_eq!(code(&response), "BAD_USER_INPUT", "[{}]", app.backend);
        assert!(
            message(&response).contains("troppi campi alla radice"),
            "[{}] {}",
            app.backend,
            message(&response)
        );

        // A field that reads the database costs more than a plain one: 150 lookups nested in
        // a page exceed the complexity budget.
        let nested = "{ instances(first: 100) { edges { node { history { seq } submissions { id } questions { id } } } } }";
        let response = app.gql(Some(&wrong_token()), nested, json!({})).await;
        assert_eq!(code(&response), "BAD_USER_INPUT", "[{}]", app.backend);
        assert!(
            message(&response).contains("complex"),
            "[{}] {}",
            app.backend,
            message(&response)
        );
    }
}

/// The query graphql-js (and so GraphiQL) sends to learn the schema.
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) {
    name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason
  }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}
"#;

#[tokio::test]
async fn graphiqls_introspection_and_an_ets_dashboard_pass_the_limits() {
    for app in spawn_apps().await {
        let schema = app.gql(None, INTROSPECTION, json!({})).await;
        assert!(
            schema.get("errors").is_none(),
            "[{}] {schema:#}",
            app.backend
        );
        assert!(schema["data"]["__schema"]["types"].as_array().is_some());

        let avviso = app.published_avviso().await;
        app.ok(
            &app.tokens.ets_a,
            "query($id: ID!) { me { personId } instance(id: $id) { id state { id title } variables { name value } deadlines { variable at trace } submissionWindow { open deadline } submissions { id status } questions { id } } instances(first: 20) { edges { node { id title state { id } } } } }",
            json!({ "id": avviso }),
        )
        .await;
    }
}

fn tight(per_minute: u32, burst: u32) -> Rate {
    Rate { per_minute, burst }
}

/// Limits with a small burst per token and per address, and a fast token check.
fn strict() -> Limits {
    Limits {
        rate: tight(60, 5),
        anonymous_rate: tight(60, 3),
        refused_rate: tight(60, 3),
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_burst_over_the_rate_limit_is_refused_with_retry_after_over_http_and_websocket() {
    for app in spawn_apps_with(strict()).await {
        let me = "{ me { personId } }";
        for n in 0..5 {
            let response = app.post(Some(&app.tokens.ets_a), me).await;
            assert_eq!(response.status(), 200, "[{}] request {n}", app.backend);
        }
        let refused = app.post(Some(&app.tokens.ets_a), me).await;
        assert_eq!(refused.status(), 429, "[{}]", app.backend);
        let retry_after: u64 = refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let body: Value = refused.json().await.expect("JSON");
        assert_eq!(code(&body), "RATE_LIMITED", "[{}] {body}", app.backend);
        assert_eq!(body["errors"][0]["extensions"]["retryAfter"], retry_after);

        // Another token has its own budget.
        assert_eq!(
            app.post(Some(&app.tokens.ets_b), me).await.status(),
            200,
            "[{}]",
            app.backend
        );

        // Over a socket each operation counts against the same token.
        let mut socket = app.socket(&app.tokens.ets_b).await;
        let mut limited = None;
        for n in 0..10 {
            let answer = operation(&mut socket, &n.to_string(), me).await;
            if !errors_of(&answer).is_empty() {
                limited = Some(answer);
                break;
            }
            assert_eq!(
                answer["payload"]["data"]["me"]["personId"], "sara.neri",
                "[{}] {answer}",
                app.backend
            );
        }
        let limited = limited.expect("the socket's burst was limited");
        let errors = errors_of(&limited);
        assert_eq!(
            errors[0]["extensions"]["code"], "RATE_LIMITED",
            "[{}] {limited}",
            app.backend
        );
        assert!(errors[0]["extensions"]["retryAfter"].as_u64().is_some());
        let _ = socket.close(None).await;

        // Anonymous calls are limited per address.
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(app.post(None, "{ __typename }").await.status().as_u16());
        }
        assert_eq!(statuses, [200, 200, 200, 429, 429], "[{}]", app.backend);
    }
}

#[tokio::test]
async fn guessing_tokens_from_one_address_is_stopped_before_the_next_guess_is_looked_up() {
    for app in spawn_apps_with(strict()).await {
        let me = "{ me { personId } }";
        for guess in 0..3 {
            let token = format!("pdo_{}", format!("{guess:x}").repeat(64)[..64].to_owned());
            let body: Value = app.post(Some(&token), me).await.json().await.expect("JSON");
            assert_eq!(code(&body), "UNAUTHENTICATED", "[{}]", app.backend);
        }
        let fourth = app.post(Some(&wrong_token()), me).await;
        assert_eq!(fourth.status(), 429, "[{}]", app.backend);
        // Even a valid token from that address waits: the address is what guesses.
        assert_eq!(
            app.post(Some(&app.tokens.rup), me).await.status(),
            429,
            "[{}]",
            app.backend
        );
    }
}

/// Waits for the server to close the socket; returns the close code, `None` if the socket
/// stayed open for `wait`.
async fn closed_by_server(socket: &mut Socket, wait: StdDuration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => return None,
            Ok(None) => return Some(1006),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Some(frame.map_or(1005, |f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) => return Some(1006),
        }
    }
}

/// Sends one operation and returns its answer, or the close code if the server closes the
/// socket before answering.
async fn refused_or_closed(socket: &mut Socket, id: &str, query: &str) -> Result<Value, u16> {
    let sent = socket
        .send(Message::Text(
            json!({ "id": id, "type": "subscribe", "payload": { "query": query } })
                .to_string()
                .into(),
        ))
        .await;
    if sent.is_err() {
        return Err(closed_by_server(socket, StdDuration::from_secs(6))
            .await
            .unwrap_or(1006));
    }
    loop {
        match tokio::time::timeout(StdDuration::from_secs(10), socket.next()).await {
            Err(_) => panic!("no answer to operation {id} and no close"),
            Ok(None) | Ok(Some(Err(_))) => return Err(1006),
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Err(frame.map_or(1005, |f| u16::from(f.code)));
            }
            Ok(Some(Ok(Message::Text(text)))) => {
                let value: Value = serde_json::from_str(&text).expect("json");
                if value["id"] == id && value["type"] != "complete" {
                    return Ok(value);
                }
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

async fn fresh_token(
    app: &TestApp,
    person: &str,
    role: &str,
    expires: Option<Duration>,
) -> (String, String) {
    let store = app.state.service().store();
    let secret = identity::new_secret();
    let now = app.clock.now();
    let token = store
        .add_token(&NewToken {
            id: identity::new_token_id(),
            person_id: person.into(),
            role: role.into(),
            hash: secret.hash,
            at: now,
            expires_at: expires.map(|d| now + d),
        })
        .await
        .expect("token");
    (token.id, secret.secret)
}

#[tokio::test]
async fn a_token_revoked_while_its_socket_is_open_stops_working_and_the_server_closes_it() {
    for app in spawn_apps().await {
        let (token_id, secret) = fresh_token(&app, "maria.rossi", "rup", None).await;
        let mut socket = app.socket(&secret).await;
        let answer = operation(&mut socket, "1", "{ me { personId role } }").await;
        assert_eq!(
            answer["payload"]["data"]["me"]["personId"], "maria.rossi",
            "[{}] {answer}",
            app.backend
        );

        app.state
            .service()
            .store()
            .revoke_token(&token_id, app.clock.now())
            .await
            .expect("revoke");

        // The very next operation is refused: a query, and a mutation credited to the person.
        // The server's own check may close the socket first; then the close code must be 4403.
        let mut closed = None;
        for (id, query) in [
            ("2", "{ me { personId } }"),
            (
                "3",
                "mutation { startInstance(procedureId: \"avviso_coprogettazione\", variables: {oggetto: \"Dopo la revoca\"}) { instance { id } } }",
            ),
        ] {
            if closed.is_some() {
                break;
            }
            match refused_or_closed(&mut socket, id, query).await {
                Ok(answer) => assert_eq!(
                    answer["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
                    "[{}] {answer}",
                    app.backend
                ),
                Err(code) => closed = Some(code),
            }
        }
        let started = app
            .ok(
                &app.tokens.rup,
                "{ instances(definition: \"avviso_coprogettazione\") { edges { node { id } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            started["instances"]["edges"].as_array().map(Vec::len),
            Some(0),
            "[{}] nothing started by the revoked token",
            app.backend
        );

        // And the server closes the socket by itself, with the protocol's code.
        let code = match closed {
            Some(code) => Some(code),
            None => closed_by_server(&mut socket, StdDuration::from_secs(6)).await,
        };
        assert_eq!(code, Some(4403), "[{}]", app.backend);
    }
}

#[tokio::test]
async fn a_token_that_expires_while_its_socket_is_open_gets_the_socket_closed() {
    for app in spawn_apps().await {
        let (_, secret) = fresh_token(&app, "luca.bianchi", "ets", Some(Duration::hours(1))).await;
        let mut socket = app.socket(&secret).await;
        let answer = operation(&mut socket, "1", "{ me { personId } }").await;
        assert_eq!(answer["payload"]["data"]["me"]["personId"], "luca.bianchi");
        // Nothing happens while it is valid.
        assert_eq!(
            closed_by_server(&mut socket, StdDuration::from_millis(2500)).await,
            None,
            "[{}]",
            app.backend
        );
        app.clock.advance(Duration::hours(2));
        let code = closed_by_server(&mut socket, StdDuration::from_secs(6)).await;
        assert_eq!(code, Some(4403), "[{}]", app.backend);
    }
}
