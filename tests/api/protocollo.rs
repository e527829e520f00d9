//! The protocollo through the API: an application comes back with its incoming number and
//! receipt instant; `protocolRegistrations` shows staff the whole register of an instance and
//! an ETS only what it sent or what was addressed to it.

use serde_json::{Value, json};

use crate::helpers::{TestApp, Upload, code, spawn_apps};

const PDF: &[u8] = b"%PDF-1.7 proposta progettuale";

async fn apply(app: &TestApp, token: &str, avviso: &str) -> Value {
    let response = app
        .submit(
            token,
            avviso,
            &[Upload {
                name: "proposta.pdf",
                media_type: "application/pdf",
                content: PDF,
            }],
        )
        .await;
    assert!(
        response.get("errors").is_none(),
        "[{}] {response:#}",
        app.backend
    );
    let id = response["data"]["submitApplication"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.ok(
        token,
        "query($id: ID!) { submission(id: $id) { id submittedAt protocol { register number year date citation annulled registeredAt } } }",
        json!({ "id": id }),
    )
    .await["submission"]
        .clone()
}

#[tokio::test]
async fn an_application_comes_back_with_its_incoming_protocol_number() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let submission = apply(&app, &app.tokens.ets_a, &avviso).await;
        let protocol = &submission["protocol"];
        assert_eq!(
            protocol["register"], "protocollo",
            "[{}] {submission:#}",
            app.backend
        );
        let number = protocol["number"].as_str().expect("number");
        assert!(
            number.len() >= 7 && number.bytes().all(|b| b.is_ascii_digit()),
            "{number}"
        );
        assert_eq!(protocol["year"], 2026);
        assert_eq!(protocol["date"], "2026-11-26");
        assert_eq!(
            protocol["citation"],
            format!("prot. n. {number} del 26/11/2026").as_str()
        );
        assert_eq!(protocol["annulled"], false);

        let register = app
            .ok(
                &app.tokens.rup,
                "query($id: ID!) { protocolRegistrations(instanceId: $id) { reference { number } direction subject receivedAt channel documents { name sha256 } correspondents { name kind } } }",
                json!({ "id": avviso }),
            )
            .await;
        let incoming: Vec<&Value> = register["protocolRegistrations"]
            .as_array()
            .expect("list")
            .iter()
            .filter(|r| r["direction"] == "ENTRATA")
            .collect();
        assert_eq!(incoming.len(), 1, "[{}] {register:#}", app.backend);
        let registration = incoming[0];
        // Timeliness is judged on the receipt instant: the platform's timestamp.
        assert_eq!(registration["receivedAt"], submission["submittedAt"]);
        assert_eq!(registration["channel"], "piattaforma");
        assert_eq!(registration["documents"][0]["name"], "proposta.pdf");
        assert_eq!(
            registration["documents"][0]["sha256"],
            crate::helpers::sha256(PDF).as_str()
        );
        assert_eq!(
            registration["correspondents"][0]["name"],
            "Cooperativa sociale Aurora"
        );
        assert_eq!(
            registration["correspondents"][0]["kind"],
            "persona_giuridica"
        );
    }
}

#[tokio::test]
async fn an_ets_reads_only_the_registrations_it_sent_and_staff_read_them_all() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        apply(&app, &app.tokens.ets_a, &avviso).await;
        apply(&app, &app.tokens.ets_b, &avviso).await;
        let query = "query($id: ID!) { protocolRegistrations(instanceId: $id) { reference { number } subject segnatura correspondents { name } amendments { operator } } }";
        let all = app
            .ok(&app.tokens.rup, query, json!({ "id": avviso }))
            .await;
        assert_eq!(
            all["protocolRegistrations"].as_array().map(Vec::len),
            Some(2),
            "[{}] {all:#}",
            app.backend
        );
        for (token, own) in [
            (&app.tokens.ets_a, "Cooperativa sociale Aurora"),
            (&app.tokens.ets_b, "Associazione Borea"),
        ] {
            let mine = app.ok(token, query, json!({ "id": avviso })).await;
            let list = mine["protocolRegistrations"].as_array().expect("list");
            assert_eq!(list.len(), 1, "[{}] {mine:#}", app.backend);
            assert!(
                list[0]["subject"].as_str().is_some_and(|s| s.contains(own)),
                "[{}] {mine:#}",
                app.backend
            );
            assert_eq!(list[0]["correspondents"][0]["name"], own);
        }
        // Someone who cannot see the instance learns nothing about its register.
        let sindaco = app
            .gql(Some(&app.tokens.sindaco), query, json!({ "id": avviso }))
            .await;
        assert_eq!(code(&sindaco), "NOT_FOUND", "[{}] {sindaco:#}", app.backend);
    }
}
