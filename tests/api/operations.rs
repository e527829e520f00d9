//! Operating the service: `/healthz`, `/metrics`, GraphiQL, and no internals in errors.

use serde_json::json;

use crate::helpers::{code, spawn_apps};

#[tokio::test]
async fn healthz_metrics_and_graphiql_answer() {
    for app in spawn_apps().await {
        let health = app.get("/healthz", None).await;
        assert_eq!(health.status(), 200, "[{}]", app.backend);
        app.published_avviso().await;
        let _ = app.gql(None, "{ me { personId } }", json!({})).await;
        let metrics = app.get("/metrics", None).await.text().await.expect("body");
        for line in [
            "procedo_http_requests_total{route=\"/graphql\",status=\"200\"}",
            "procedo_graphql_errors_total{code=\"UNAUTHENTICATED\"} 1",
            "procedo_timers_due 0",
            "procedo_outbox_backlog",
            "procedo_store_up 1",
        ] {
            assert!(
                metrics.contains(line),
                "[{}] missing {line} in\n{metrics}",
                app.backend
            );
        }
        let graphiql = app.get("/graphql", None).await.text().await.expect("body");
        assert!(graphiql.contains("graphiql"), "GraphiQL page");
    }
}

#[tokio::test]
async fn a_malformed_request_is_bad_user_input_without_internals() {
    for app in spawn_apps().await {
        let response = app
            .gql(Some(&app.tokens.rup), "{ instance(id: ", json!({}))
            .await;
        assert_eq!(
            code(&response),
            "BAD_USER_INPUT",
            "[{}] {response:#}",
            app.backend
        );
        let text = response.to_string().to_lowercase();
        for leak in ["select", "sqlx", "panicked", "stack", "sea_orm"] {
            assert!(!text.contains(leak), "{leak} in {text}");
        }
    }
}
