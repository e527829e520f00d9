//! Authentication and the policy: wrong, revoked and expired tokens; what an ETS, a sindaco
//! and an auditor may see and do.

use serde_json::json;

use crate::helpers::{code, spawn_apps};

#[tokio::test]
async fn a_wrong_token_gets_unauthenticated() {
    for app in spawn_apps().await {
        let query = "{ me { personId } }";
        let wrong = format!("pdo_{}", "0".repeat(64));
        for (what, token) in [
            ("wrong", Some(wrong.as_str())),
            ("garbage", Some("not-a-token")),
            ("none", None),
            ("revoked", Some(app.tokens.revoked.as_str())),
            ("expired", Some(app.tokens.expired.as_str())),
        ] {
            let response = app.gql(token, query, json!({})).await;
            assert_eq!(
                code(&response),
                "UNAUTHENTICATED",
                "[{}] {what}: {response:#}",
                app.backend
            );
            assert!(response["data"].is_null());
        }
        let me = app.ok(&app.tokens.ets_a, query, json!({})).await;
        assert_eq!(me["me"]["personId"], "luca.bianchi");
    }
}

#[tokio::test]
async fn an_ets_sees_published_avvisi_with_public_variables_only_and_no_drafts() {
    for app in spawn_apps().await {
        let published = app.published_avviso().await;
        let draft = app.draft_avviso().await;

        let list = app
            .ok(
                &app.tokens.ets_a,
                "{ instances(definition: \"avviso_coprogettazione\") { edges { node { id } } } }",
                json!({}),
            )
            .await;
        let ids: Vec<&str> = list["instances"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .filter_map(|e| e["node"]["id"].as_str())
            .collect();
        assert_eq!(
            ids,
            vec![published.as_str()],
            "[{}] the draft is not listed",
            app.backend
        );
        let hidden = app
            .gql(
                Some(&app.tokens.ets_a),
                "query($id: ID!) { instance(id: $id) { id } }",
                json!({ "id": draft }),
            )
            .await;
        assert_eq!(code(&hidden), "NOT_FOUND");

        let data = app
            .ok(&app.tokens.ets_a, "query($id: ID!) { instance(id: $id) { variables { name } history { event actorId payload } availableTransitions { event } deadlines { variable at trace } submissionWindow { open deadline trace } } }", json!({ "id": published }))
            .await;
        let instance = &data["instance"];
        let names: Vec<&str> = instance["variables"]
            .as_array()
            .expect("variables")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(
            names.contains(&"scadenza_domande") && names.contains(&"oggetto"),
            "{names:?}"
        );
        // Variables visible to `ets` are for ETS that are parties; staff-only ones never.
        assert!(
            !names.contains(&"punteggio") && !names.contains(&"data_richiesta_soccorso"),
            "{names:?}"
        );
        assert_eq!(instance["history"][1]["event"], "pubblica");
        assert_eq!(instance["history"][1]["actorId"], json!(null), "staff only");
        assert_eq!(instance["history"][1]["payload"], json!(null), "staff only");
        assert_eq!(instance["availableTransitions"], json!([]));
        assert_eq!(instance["deadlines"][0]["variable"], "scadenza_domande");
        assert!(
            instance["deadlines"][0]["trace"]
                .as_array()
                .is_some_and(|t| !t.is_empty())
        );
        assert_eq!(instance["submissionWindow"]["open"], true);

        let staff = app.ok(&app.tokens.rup, "query($id: ID!) { instance(id: $id) { history { actorId } availableTransitions { event } } }", json!({ "id": published })).await;
        assert_eq!(staff["instance"]["history"][1]["actorId"], "maria.rossi");
        let events: Vec<&str> = staff["instance"]["availableTransitions"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|t| t["event"].as_str())
            .collect();
        assert!(
            events.contains(&"chiudi_domande") && events.contains(&"annulla"),
            "{events:?}"
        );
    }
}

#[tokio::test]
async fn an_ets_and_an_auditor_cannot_fire_and_only_staff_start() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let fire = "mutation($id: ID!) { fire(instanceId: $id, event: \"annulla\", input: {motivazione: \"x\"}) { seq } }";
        for token in [&app.tokens.ets_a, &app.tokens.auditor] {
            let response = app.gql(Some(token), fire, json!({ "id": avviso })).await;
            assert_eq!(
                code(&response),
                "FORBIDDEN",
                "[{}] {response:#}",
                app.backend
            );
        }
        let start = "mutation { startInstance(procedureId: \"avviso_coprogettazione\", variables: {oggetto: \"x\"}) { seq } }";
        let response = app.gql(Some(&app.tokens.ets_a), start, json!({})).await;
        assert_eq!(code(&response), "FORBIDDEN");
        // The auditor reads everything.
        let read = app
            .ok(
                &app.tokens.auditor,
                "query($id: ID!) { instance(id: $id) { state { id } } }",
                json!({ "id": avviso }),
            )
            .await;
        assert_eq!(read["instance"]["state"]["id"], "pubblicato");
    }
}

#[tokio::test]
async fn a_sindaco_reads_convened_meetings_but_not_avvisi() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let started = app
            .ok(
                &app.tokens.rup,
                "mutation { startInstance(procedureId: \"convocazione_assemblea\", variables: {organo: \"Assemblea dei Sindaci\", ordine_del_giorno: [\"Piano di Zona\"], luogo: \"Sala consiliare\", data_seduta: \"2026-12-15T17:00:00+01:00\", membri: [\"comune-lago\"]}) { instance { id } } }",
                json!({}),
            )
            .await;
        let meeting = started["startInstance"]["instance"]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let query = "query($id: ID!) { instance(id: $id) { state { id } variables { name } } }";
        // In preparation the sindaco does not see it.
        assert_eq!(
            code(
                &app.gql(Some(&app.tokens.sindaco), query, json!({ "id": meeting }))
                    .await
            ),
            "NOT_FOUND"
        );
        app.ok(
            &app.tokens.ufficio,
            "mutation($id: ID!) { fire(instanceId: $id, event: \"convoca\") { seq } }",
            json!({ "id": meeting }),
        )
        .await;
        let data = app
            .ok(&app.tokens.sindaco, query, json!({ "id": meeting }))
            .await;
        assert_eq!(data["instance"]["state"]["id"], "convocata");
        let names: Vec<&str> = data["instance"]["variables"]
            .as_array()
            .expect("variables")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(
            names.contains(&"ordine_del_giorno") && !names.contains(&"termine_convocazione"),
            "{names:?}"
        );
        assert_eq!(
            code(
                &app.gql(Some(&app.tokens.sindaco), query, json!({ "id": avviso }))
                    .await
            ),
            "NOT_FOUND",
            "[{}]",
            app.backend
        );
        // An ETS does not see the meeting.
        assert_eq!(
            code(
                &app.gql(Some(&app.tokens.ets_a), query, json!({ "id": meeting }))
                    .await
            ),
            "NOT_FOUND"
        );
    }
}
