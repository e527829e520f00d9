//! A meeting of the Assemblea dei Sindaci through the API, on the shipped
//! `convocazione_assemblea` and its body (`organi/assemblea_sindaci.yaml`: three comuni with
//! quotas 52.4, 31.1, 16.5; quorum: more than half of the quotas; decisions by quota among the
//! present and voting): the convocation goes to the members only, each answers for its own
//! comune (one delegation), the register counts a seat once, a vote passes by quota, a
//! departure makes a later vote lack its quorum, an item is postponed, the approved item is a
//! deliberazione and the verbale is registered when the session closes.

use procedo::clock::Clock;
use procedo::engine::Effect;
use procedo::identity;
use procedo::store::{NewOrganisation, NewPerson, NewToken, OrganisationKind};
use serde_json::json;

use crate::common;
use crate::helpers::{LINK_KEY, TestApp, code, spawn_apps};

/// Adds a comune of the body with its sindaco; returns the sindaco's token.
pub(crate) async fn comune(app: &TestApp, id: &str, name: &str) -> String {
    let store = app.state.service().store();
    let now = app.clock.now();
    store
        .add_organisation(&NewOrganisation {
            id: id.into(),
            name: name.into(),
            kind: OrganisationKind::Comune,
            codice_fiscale: None,
            runts: None,
            pec: None,
            at: now,
        })
        .await
        .expect("comune");
    let person = format!("sindaco.{id}");
    store
        .add_person(&NewPerson {
            id: person.clone(),
            name: format!("Sindaco di {name}"),
            email: format!("{person}@example.org"),
            organisation_id: id.into(),
            roles: vec!["sindaco".into()],
            digest: "immediato".into(),
            at: now,
        })
        .await
        .expect("sindaco");
    let secret = identity::new_secret();
    store
        .add_token(&NewToken {
            id: identity::new_token_id(),
            person_id: person,
            role: "sindaco".into(),
            hash: secret.hash,
            at: now,
            expires_at: None,
        })
        .await
        .expect("token");
    secret.secret
}

const MEETING: &str = "query($id: ID!) { instance(id: $id) { state { id } meeting { body seats { id weight } answers { seat answer delegate capacity } register { seat name capacity left } quorum { heads weight met trace } items { number outcome count { favorevoli contrari favorevoliQuote contrariQuote } trace publication { from to trace } } } } }";

#[tokio::test]
async fn an_assemblea_answers_sits_votes_by_quota_and_loses_its_quorum_when_a_mayor_leaves() {
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let borgo = comune(&app, "comune-borgo-fiorito", "Borgo Fiorito").await;
        let castelverde = comune(&app, "comune-castelverde", "Castelverde").await;
        let _lorenzo = comune(&app, "comune-san-lorenzo", "San Lorenzo al Lago").await;
        let started = app
            .ok(
                &app.tokens.ufficio,
                "mutation { startInstance(procedureId: \"convocazione_assemblea\", variables: {organo: \"Assemblea dei Sindaci\", ordine_del_giorno: [\"Piano di Zona 2027\", \"Bilancio preventivo\", \"Varie ed eventuali\"], luogo: \"Sala consiliare di Borgo Fiorito\", data_seduta: \"2026-12-15T17:00:00+01:00\", membri: [\"comune-borgo-fiorito\", \"comune-castelverde\", \"comune-san-lorenzo\"]}) { instance { id } } }",
                json!({}),
            )
            .await;
        let id = started["startInstance"]["instance"]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let fire = "mutation($id: ID!, $event: String!, $input: JSON) { fire(instanceId: $id, event: $event, input: $input) { seq } }";
        app.ok(
            &app.tokens.ufficio,
            fire,
            json!({ "id": id, "event": "convoca" }),
        )
        .await;

        // Only members see it: the sindaco of Lago is not convened.
        let hidden = app
            .gql(Some(&app.tokens.sindaco), MEETING, json!({ "id": id }))
            .await;
        assert_eq!(code(&hidden), "NOT_FOUND", "[{backend}] {hidden:#}");

        // Each answers for its own comune; Castelverde delegates an assessore.
        let answer = "mutation($id: ID!, $answer: ConvocationAnswer!, $delegate: String, $capacity: SeatCapacity, $seat: ID) { answerConvocation(instanceId: $id, answer: $answer, delegate: $delegate, capacity: $capacity, seat: $seat) { seq } }";
        app.ok(&borgo, answer, json!({ "id": id, "answer": "PARTECIPA" }))
            .await;
        app.ok(
            &castelverde,
            answer,
            json!({ "id": id, "answer": "DELEGA", "delegate": "Marco Verdi", "capacity": "ASSESSORE" }),
        )
        .await;
        let other = app
            .gql(
                Some(&castelverde),
                answer,
                json!({ "id": id, "answer": "NON_PARTECIPA", "seat": "comune-san-lorenzo" }),
            )
            .await;
        assert_eq!(code(&other), "FORBIDDEN", "[{backend}] {other:#}");
        let no_name = app
            .gql(
                Some(&borgo),
                answer,
                json!({ "id": id, "answer": "DELEGA" }),
            )
            .await;
        assert_eq!(code(&no_name), "BAD_USER_INPUT", "[{backend}] {no_name:#}");

        // The day: the register. A seat counts once; the Responsabile attends without a vote.
        app.clock.set(common::at("2026-12-15T16:55:00+01:00"));
        let presence = "mutation($id: ID!, $seat: ID, $name: String!, $capacity: SeatCapacity!, $note: String) { recordPresence(instanceId: $id, seat: $seat, name: $name, capacity: $capacity, note: $note) { seq } }";
        app.ok(
            &app.tokens.ufficio,
            presence,
            json!({ "id": id, "seat": "comune-borgo-fiorito", "name": "Anna Rossi", "capacity": "SINDACO" }),
        )
        .await;
        app.ok(
            &app.tokens.ufficio,
            presence,
            json!({ "id": id, "name": "Paolo Galli", "capacity": "NON_INDICATA", "note": "responsabile dell'Ufficio di Piano" }),
        )
        .await;
        let twice = app
            .gql(
                Some(&app.tokens.ufficio),
                presence,
                json!({ "id": id, "seat": "comune-borgo-fiorito", "name": "Luisa Bianchi", "capacity": "ASSESSORE" }),
            )
            .await;
        assert_eq!(code(&twice), "BAD_USER_INPUT", "[{backend}] {twice:#}");
        assert!(
            twice.to_string().contains("un seggio conta una volta"),
            "{twice}"
        );
        let by_mayor = app
            .gql(
                Some(&borgo),
                presence,
                json!({ "id": id, "seat": "comune-borgo-fiorito", "name": "X", "capacity": "SINDACO" }),
            )
            .await;
        assert_eq!(code(&by_mayor), "FORBIDDEN", "[{backend}] {by_mayor:#}");

        // 52.4 of 100 quotas: more than half, the session opens.
        app.clock.set(common::at("2026-12-15T17:00:00+01:00"));
        app.ok(
            &app.tokens.ufficio,
            fire,
            json!({ "id": id, "event": "apri_seduta" }),
        )
        .await;
        app.ok(
            &app.tokens.ufficio,
            presence,
            json!({ "id": id, "seat": "comune-castelverde", "name": "Marco Verdi", "capacity": "ASSESSORE" }),
        )
        .await;

        // Item 1: Borgo Fiorito for (52.4), Castelverde against (31.1): approved by quota,
        // though one head against one. San Lorenzo is absent: its ballot is refused.
        let vote = "mutation($id: ID!, $item: Int!, $ballots: [SeatBallot!], $outcome: ItemOutcome) { recordVote(instanceId: $id, item: $item, ballots: $ballots, outcome: $outcome) { seq } }";
        let absent = app
            .gql(
                Some(&app.tokens.ufficio),
                vote,
                json!({ "id": id, "item": 1, "ballots": [{ "seat": "comune-san-lorenzo", "ballot": "FAVOREVOLE" }] }),
            )
            .await;
        assert!(
            absent.to_string().contains("non è presente"),
            "[{backend}] {absent:#}"
        );
        app.ok(
            &app.tokens.ufficio,
            vote,
            json!({ "id": id, "item": 1, "ballots": [
                { "seat": "comune-borgo-fiorito", "ballot": "FAVOREVOLE" },
                { "seat": "comune-castelverde", "ballot": "CONTRARIO" }] }),
        )
        .await;

        // The sindaco of Borgo Fiorito leaves: 31.1 quotas, no quorum for item 2.
        app.clock.set(common::at("2026-12-15T17:40:00+01:00"));
        app.ok(
            &app.tokens.ufficio,
            "mutation($id: ID!) { recordDeparture(instanceId: $id, name: \"Anna Rossi\") { seq } }",
            json!({ "id": id }),
        )
        .await;
        app.clock.set(common::at("2026-12-15T17:45:00+01:00"));
        app.ok(
            &app.tokens.ufficio,
            vote,
            json!({ "id": id, "item": 2, "ballots": [{ "seat": "comune-castelverde", "ballot": "FAVOREVOLE" }] }),
        )
        .await;
        app.ok(
            &app.tokens.ufficio,
            "mutation($id: ID!) { postponeItem(instanceId: $id, item: 3) { seq } }",
            json!({ "id": id }),
        )
        .await;
        let again = app
            .gql(
                Some(&app.tokens.ufficio),
                vote,
                json!({ "id": id, "item": 1, "outcome": "APPROVATO" }),
            )
            .await;
        assert!(
            again.to_string().contains("già stato trattato"),
            "[{backend}] {again:#}"
        );

        let seen = app.ok(&castelverde, MEETING, json!({ "id": id })).await;
        let meeting = &seen["instance"]["meeting"];
        let items = meeting["items"].as_array().expect("items");
        assert_eq!(items[0]["outcome"], "APPROVATO", "[{backend}] {meeting:#}");
        assert_eq!(items[0]["count"]["favorevoliQuote"], 52.4);
        assert_eq!(items[0]["count"]["contrariQuote"], 31.1);
        assert_eq!(items[0]["count"]["favorevoli"], 1);
        // A deliberazione goes to the albo on its own: fifteen consecutive days from the day it
        // was adopted, the first counted, without waiting for the verbale.
        assert_eq!(
            items[0]["publication"]["from"], "2026-12-15",
            "[{backend}] {meeting:#}"
        );
        assert_eq!(items[0]["publication"]["to"], "2026-12-29");
        assert!(
            items[0]["publication"]["trace"]
                .to_string()
                .contains("15 giorni consecutivi"),
            "[{backend}] {meeting:#}"
        );
        assert!(
            items[1]["publication"].is_null(),
            "[{backend}] no deliberazione"
        );
        assert_eq!(
            items[1]["outcome"], "MANCANZA_NUMERO_LEGALE",
            "[{backend}] {meeting:#}"
        );
        assert!(
            items[1]["trace"]
                .as_array()
                .expect("trace")
                .iter()
                .any(|l| l
                    .as_str()
                    .is_some_and(|l| l.contains("quote: non raggiunto"))),
            "[{backend}] {meeting:#}"
        );
        assert_eq!(items[2]["outcome"], "RINVIATO");
        assert_eq!(meeting["quorum"]["met"], false);
        let answers = meeting["answers"].as_array().expect("answers");
        assert!(
            answers.iter().any(|a| a["seat"] == "comune-castelverde"
                && a["answer"] == "DELEGA"
                && a["delegate"] == "Marco Verdi"),
            "[{backend}] {answers:?}"
        );

        // Closing registers the verbale; the approved item is a deliberazione in its repertorio.
        app.ok(
            &app.tokens.ufficio,
            fire,
            json!({ "id": id, "event": "chiudi_seduta", "input": { "verbalizzante": "Paolo Galli" } }),
        )
        .await;
        let rows = app
            .state
            .service()
            .store()
            .outbox_rows(None)
            .await
            .expect("outbox");
        let registrations: Vec<(Option<String>, String, Option<String>)> = rows
            .iter()
            .filter(|r| r.instance_id.as_deref() == Some(id.as_str()) && r.kind == "protocollo")
            .filter_map(|r| match &r.payload {
                Effect::RegisterProtocol {
                    register,
                    subject,
                    document,
                    ..
                } => Some((register.clone(), subject.clone(), document.clone())),
                _ => None,
            })
            .collect();
        assert!(
            registrations
                .iter()
                .any(|(register, subject, document)| register.as_deref()
                    == Some("deliberazioni")
                    && subject.contains("punto 1: Piano di Zona 2027")
                    // Its text, outcome and votes: the document published at the albo.
                    && document.as_deref() == Some("deliberazione")),
            "[{backend}] {registrations:#?}"
        );
        assert_eq!(
            registrations
                .iter()
                .filter(|(register, _, _)| register.as_deref() == Some("deliberazioni"))
                .count(),
            1,
            "[{backend}] only the approved item"
        );
        assert!(
            registrations
                .iter()
                .any(|(_, _, document)| document.as_deref() == Some("verbale_seduta")),
            "[{backend}] {registrations:#?}"
        );

        // What is published is the verbale signed outside procedo, uploaded back.
        let publish = json!({ "id": id, "event": "pubblica_verbale", "input": { "data_pubblicazione_verbale": "2026-12-18", "link_verbale": "https://ambito.example.it/albo/verbale" } });
        let early = app
            .gql(Some(&app.tokens.ufficio), fire, publish.clone())
            .await;
        assert!(
            early.to_string().contains("caricarlo prima"),
            "[{backend}] {early:#}"
        );
        let upload = |name: &'static str, media: &'static str, content: &'static [u8]| {
            let operations = json!({
                "query": "mutation($id: ID!, $document: DocumentInput!) { uploadSignedVerbale(instanceId: $id, document: $document) }",
                "variables": { "id": id, "document": { "name": name, "mediaType": media, "size": content.len(), "sha256": crate::helpers::sha256(content), "file": null } },
            });
            let files = [crate::helpers::Upload {
                name,
                media_type: media,
                content,
            }];
            let app = &app;
            async move {
                app.gql_multipart(
                    &app.tokens.ufficio,
                    operations,
                    json!({ "0": ["variables.document.file"] }),
                    &files,
                )
                .await
            }
        };
        let word = upload(
            "verbale.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            b"PK not signed",
        )
        .await;
        assert_eq!(code(&word), "BAD_USER_INPUT", "[{backend}] {word:#}");
        assert!(word.to_string().contains("PAdES"), "[{backend}] {word:#}");
        let signed = upload(
            "verbale-firmato.pdf",
            "application/pdf",
            b"%PDF-1.7 verbale firmato (PAdES)",
        )
        .await;
        let number = signed["data"]["uploadSignedVerbale"]
            .as_str()
            .unwrap_or_else(|| panic!("[{backend}] {signed:#}"))
            .to_string();
        assert!(number.ends_with("/2026"), "[{backend}] {number}");
        app.ok(&app.tokens.ufficio, fire, publish).await;
    }
}

#[tokio::test]
async fn a_personal_link_answers_for_its_comune_and_a_tampered_or_expired_one_gets_a_plain_page() {
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let id = convened(&app).await;
        let until = common::at("2026-12-15T17:00:00+01:00").timestamp();
        let token = procedo::identity::links::sign(LINK_KEY, &id, "comune-castelverde", until);
        let http = reqwest::Client::new();
        let url = format!("{}/risposta/{token}", app.address);

        let page = http.get(&url).send().await.expect("page");
        assert_eq!(page.status(), 200, "[{backend}]");
        assert!(
            page.headers()
                .get("content-security-policy")
                .is_some_and(|v| v.to_str().is_ok_and(|v| v.contains("default-src 'none'"))),
            "[{backend}]"
        );
        let text = page.text().await.expect("text");
        assert!(text.contains("Comune di Castelverde"), "[{backend}] {text}");
        assert!(text.contains("15/12/2026 alle 17:00"), "[{backend}] {text}");
        assert!(text.contains("Delego a"), "[{backend}] {text}");

        let answered = http
            .post(&url)
            .form(&[
                ("risposta", "delega"),
                ("delegato", "Luisa <Conti>"),
                ("carica", "assessore"),
            ])
            .send()
            .await
            .expect("answer");
        assert_eq!(answered.status(), 200, "[{backend}]");
        let text = answered.text().await.expect("text");
        assert!(text.contains("Risposta registrata"), "[{backend}] {text}");
        let seen = app
            .ok(&app.tokens.ufficio, MEETING, json!({ "id": id }))
            .await;
        let answers = seen["instance"]["meeting"]["answers"]
            .as_array()
            .expect("answers")
            .clone();
        assert_eq!(answers.len(), 1, "[{backend}] {answers:?}");
        assert_eq!(answers[0]["seat"], "comune-castelverde");
        assert_eq!(answers[0]["answer"], "DELEGA");
        assert_eq!(answers[0]["delegate"], "Luisa <Conti>");
        assert_eq!(answers[0]["capacity"], "ASSESSORE");
        // Shown back escaped.
        let again = http
            .get(&url)
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("text");
        assert!(
            again.contains("delega Luisa &lt;Conti&gt;"),
            "[{backend}] {again}"
        );

        // Another comune's link cannot be made from this one.
        let (body, mac) = token.split_once('.').expect("token");
        let other = procedo::identity::links::sign(LINK_KEY, &id, "comune-borgo-fiorito", until);
        let (other_body, _) = other.split_once('.').expect("token");
        for bad in [
            format!("{other_body}.{mac}"),
            format!("{body}.{}", "0".repeat(mac.len())),
            "niente".to_string(),
        ] {
            let refused = http
                .get(format!("{}/risposta/{bad}", app.address))
                .send()
                .await
                .expect("page");
            assert_eq!(refused.status(), 400, "[{backend}] {bad}");
            let text = refused.text().await.expect("text");
            assert!(
                text.contains("Collegamento non valido"),
                "[{backend}] {text}"
            );
            assert!(
                !text.contains("panicked") && !text.contains("Error"),
                "{text}"
            );
        }
        let posted = http
            .post(format!("{}/risposta/{other_body}.{mac}", app.address))
            .form(&[("risposta", "partecipa")])
            .send()
            .await
            .expect("post");
        assert_eq!(posted.status(), 400, "[{backend}]");

        // After the meeting the link has expired.
        app.clock.set(common::at("2026-12-15T17:00:01+01:00"));
        let late = http.get(&url).send().await.expect("page");
        assert_eq!(late.status(), 410, "[{backend}]");
        assert!(
            late.text()
                .await
                .expect("text")
                .contains("Collegamento scaduto")
        );
    }
}

/// Borgo Fiorito and Castelverde, convened (as the Ufficio di Piano) to an Assemblea on
/// 15/12/2026 at 17:00; returns the instance.
pub(crate) async fn convened(app: &TestApp) -> String {
    comune(app, "comune-borgo-fiorito", "Borgo Fiorito").await;
    comune(app, "comune-castelverde", "Castelverde").await;
    let started = app
        .ok(
            &app.tokens.ufficio,
            "mutation { startInstance(procedureId: \"convocazione_assemblea\", variables: {organo: \"Assemblea dei Sindaci\", ordine_del_giorno: [\"Piano di Zona 2027\"], luogo: \"Sala consiliare di Borgo Fiorito\", data_seduta: \"2026-12-15T17:00:00+01:00\", membri: [\"comune-borgo-fiorito\", \"comune-castelverde\"]}) { instance { id } } }",
            json!({}),
        )
        .await;
    let id = started["startInstance"]["instance"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    app.ok(
        &app.tokens.ufficio,
        "mutation($id: ID!) { fire(instanceId: $id, event: \"convoca\") { seq } }",
        json!({ "id": id }),
    )
    .await;
    id
}
