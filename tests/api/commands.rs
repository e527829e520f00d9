//! Start and fire through the API: idempotency keys, engine refusals, Relay pagination.

use serde_json::json;

use crate::helpers::{code, spawn_apps};

#[tokio::test]
async fn the_same_fire_with_the_same_idempotency_key_twice_has_one_effect() {
    for app in spawn_apps().await {
        let avviso = app.draft_avviso().await;
        let fire = "mutation($id: ID!, $key: String) { fire(instanceId: $id, event: \"pubblica\", input: {data_pubblicazione: \"2026-11-27\", atto_criteri: \"determina n. 12 del 26/11/2026\"}, idempotencyKey: $key) { seq replayed instance { state { id } version } } }";
        let first = app
            .ok(
                &app.tokens.rup,
                fire,
                json!({ "id": avviso, "key": "pubblica-42" }),
            )
            .await;
        let second = app
            .ok(
                &app.tokens.rup,
                fire,
                json!({ "id": avviso, "key": "pubblica-42" }),
            )
            .await;
        assert_eq!(first["fire"]["replayed"], false);
        assert_eq!(
            second["fire"]["replayed"], true,
            "[{}] {second:#}",
            app.backend
        );
        assert_eq!(first["fire"]["seq"], second["fire"]["seq"]);
        assert_eq!(
            second["fire"]["instance"]["version"], 2,
            "one step, not two"
        );
        let history = app
            .ok(
                &app.tokens.rup,
                "query($id: ID!) { instance(id: $id) { history { seq event } } }",
                json!({ "id": avviso }),
            )
            .await;
        assert_eq!(
            history["instance"]["history"].as_array().map(Vec::len),
            Some(2),
            "[{}] avvio + one pubblica",
            app.backend
        );
        // Without the key, the same fire is refused by the engine: the state has moved.
        let again = app
            .gql(
                Some(&app.tokens.rup),
                fire,
                json!({ "id": avviso, "key": null }),
            )
            .await;
        assert_eq!(code(&again), "BAD_USER_INPUT");
    }
}

#[tokio::test]
async fn engine_refusals_are_bad_user_input_with_the_field() {
    for app in spawn_apps().await {
        let avviso = app.draft_avviso().await;
        let missing = app
            .gql(
                Some(&app.tokens.rup),
                "mutation($id: ID!) { fire(instanceId: $id, event: \"pubblica\") { seq } }",
                json!({ "id": avviso }),
            )
            .await;
        assert_eq!(
            code(&missing),
            "BAD_USER_INPUT",
            "[{}] {missing:#}",
            app.backend
        );
        assert_eq!(
            missing["errors"][0]["extensions"]["field"],
            "data_pubblicazione"
        );
        let unknown = app
            .gql(
                Some(&app.tokens.rup),
                "mutation { fire(instanceId: \"nope\", event: \"pubblica\") { seq } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&unknown), "NOT_FOUND");
        let unknown_procedure = app
            .gql(
                Some(&app.tokens.rup),
                "mutation { startInstance(procedureId: \"nope\") { seq } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&unknown_procedure), "NOT_FOUND");
    }
}

#[tokio::test]
async fn instances_page_with_relay_cursors() {
    for app in spawn_apps().await {
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(app.draft_avviso().await);
        }
        ids.sort();
        let query = "query($after: String) { instances(first: 2, after: $after, state: \"bozza\") { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }";
        let mut seen = Vec::new();
        let mut after = serde_json::Value::Null;
        loop {
            let data = app
                .ok(&app.tokens.rup, query, json!({ "after": after }))
                .await;
            let page = &data["instances"];
            seen.extend(
                page["edges"]
                    .as_array()
                    .expect("edges")
                    .iter()
                    .filter_map(|e| e["node"]["id"].as_str().map(String::from)),
            );
            if page["pageInfo"]["hasNextPage"] != true {
                break;
            }
            after = page["pageInfo"]["endCursor"].clone();
        }
        assert_eq!(seen, ids, "[{}]", app.backend);
    }
}

#[tokio::test]
async fn definitions_come_with_their_mermaid_graph_and_terms_are_computed() {
    for app in spawn_apps().await {
        let data = app
            .ok(
                &app.tokens.ets_a,
                "{ definition(id: \"avviso_coprogettazione\") { id version acceptsSubmissions mermaid states { id } } computeTerm(input: {start: \"2026-11-27\", days: 30, at: \"12:00\"}) { expiry deadline trace } }",
                json!({}),
            )
            .await;
        assert!(
            data["definition"]["mermaid"]
                .as_str()
                .is_some_and(|m| m.starts_with("stateDiagram-v2"))
        );
        assert_eq!(data["definition"]["acceptsSubmissions"], true);
        assert_eq!(data["computeTerm"]["expiry"], "2026-12-28");
        assert_eq!(data["computeTerm"]["deadline"], "2026-12-28T12:00:00+01:00");
        let bad = app
            .gql(
                Some(&app.tokens.ets_a),
                "{ computeTerm(input: {start: \"2026-11-27\"}) { expiry } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&bad), "BAD_USER_INPUT");
    }
}

#[tokio::test]
async fn upcoming_deadlines_show_visible_timers_with_their_trace() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        app.draft_avviso().await;
        let query = "{ upcomingDeadlines(from: \"2026-11-26T00:00:00Z\", to: \"2027-01-31T00:00:00Z\") { instanceId variable at timer event trace } }";
        let data = app.ok(&app.tokens.ets_a, query, json!({})).await;
        let list = data["upcomingDeadlines"].as_array().expect("list");
        assert!(!list.is_empty(), "[{}]", app.backend);
        assert!(
            list.iter()
                .all(|d| d["instanceId"] == avviso.as_str() && d["variable"] == "scadenza_domande"),
            "{list:#?}"
        );
        let fire = list
            .iter()
            .find(|d| d["event"] == "chiudi_domande")
            .expect("the closing timer");
        assert_eq!(fire["at"], "2026-12-28T11:00:00+00:00");
        assert!(fire["trace"].as_array().is_some_and(|t| !t.is_empty()));
        let too_wide = app.gql(Some(&app.tokens.ets_a), "{ upcomingDeadlines(from: \"2026-01-01T00:00:00Z\", to: \"2028-01-01T00:00:00Z\") { at } }", json!({})).await;
        assert_eq!(code(&too_wide), "BAD_USER_INPUT");
    }
}
