//! Limits: a depth bomb and an over-size page are refused while the query is parsed and
//! validated — before the token is looked up, so with a wrong token the answer is the limit,
//! not UNAUTHENTICATED: no database work was done.

use serde_json::json;

use crate::helpers::{code, spawn_apps};

fn wrong_token() -> String {
    format!("pdo_{}", "f".repeat(64))
}

#[tokio::test]
async fn a_depth_bomb_is_refused_before_any_database_work() {
    for app in spawn_apps().await {
        let mut query = String::from("id");
        for _ in 0..20 {
            query = format!("submissions {{ instance {{ {query} }} }}");
        }
        let query = format!("{{ instance(id: \"x\") {{ {query} }} }}");
        let response = app.gql(Some(&wrong_token()), &query, json!({})).await;
        assert_eq!(
            code(&response),
            "BAD_USER_INPUT",
            "[{}] {response:#}",
            app.backend
        );
        assert!(
            response["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nested too deep")),
            "{response:#}"
        );
        assert!(response.get("data").is_none_or(|d| d.is_null()));
    }
}

#[tokio::test]
async fn an_over_size_page_is_refused_before_any_database_work() {
    for app in spawn_apps().await {
        let literal = app
            .gql(
                Some(&wrong_token()),
                "{ instances(first: 1000) { edges { node { id } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            code(&literal),
            "BAD_USER_INPUT",
            "[{}] {literal:#}",
            app.backend
        );
        assert!(
            literal["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("pagina troppo grande")),
            "{literal:#}"
        );
        let variable = app
            .gql(
                Some(&wrong_token()),
                "query($n: Int) { instances(first: $n) { edges { node { id } } } }",
                json!({ "n": 101 }),
            )
            .await;
        assert_eq!(code(&variable), "BAD_USER_INPUT", "{variable:#}");
        // At the cap, with a valid token, it is fine.
        app.ok(
            &app.tokens.rup,
            "{ instances(first: 100) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    }
}

#[tokio::test]
async fn an_over_size_body_is_refused() {
    let limits = procedo::api::Limits {
        max_body_bytes: 4 * 1024,
        ..procedo::api::Limits::default()
    };
    for app in crate::helpers::spawn_apps_with(limits).await {
        let padding = "x".repeat(8 * 1024);
        let response = reqwest::Client::new()
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&app.tokens.rup)
            .json(&json!({ "query": "{ me { personId } }", "variables": { "padding": padding } }))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 413, "[{}]", app.backend);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(code(&body), "BAD_USER_INPUT");
    }
}

#[tokio::test]
async fn introspection_can_be_switched_off() {
    let limits = procedo::api::Limits {
        introspection: false,
        ..procedo::api::Limits::default()
    };
    for app in crate::helpers::spawn_apps_with(limits).await {
        let response = app
            .gql(
                Some(&app.tokens.rup),
                "{ __schema { types { name } } }",
                json!({}),
            )
            .await;
        assert!(
            response.get("errors").is_some() || response["data"]["__schema"].is_null(),
            "[{}] {response:#}",
            app.backend
        );
        app.ok(&app.tokens.rup, "{ me { personId } }", json!({}))
            .await;
    }
}
