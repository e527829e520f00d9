//! Applications: an ETS submits with a document and reads it back; another ETS cannot read it
//! nor learn that it exists; the deadline is enforced to the second, with its trace.

use chrono::Duration;
use serde_json::json;

use crate::common;
use crate::helpers::{DEADLINE, Upload, code, sha256, spawn_apps};

const PDF: &[u8] = b"%PDF-1.7\n% proposta progettuale della Cooperativa Aurora\n%%EOF\n";

#[tokio::test]
async fn an_ets_submits_an_application_with_a_document_and_reads_it_back() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let response = app
            .submit(
                &app.tokens.ets_a,
                &avviso,
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
        let submission = &response["data"]["submitApplication"];
        assert_eq!(submission["status"], "SUBMITTED");
        let id = submission["id"].as_str().expect("id");

        let data = app
            .ok(
                &app.tokens.ets_a,
                "query($id: ID!) { submission(id: $id) { id status organisation { id } instance { id state { id } } documents { name mediaType size sha256 url } } }",
                json!({ "id": id }),
            )
            .await;
        let read = &data["submission"];
        assert_eq!(read["organisation"]["id"], "ets-aurora");
        assert_eq!(read["instance"]["id"], avviso.as_str());
        assert_eq!(read["documents"][0]["name"], "proposta.pdf");
        assert_eq!(read["documents"][0]["mediaType"], "application/pdf");
        assert_eq!(read["documents"][0]["size"], PDF.len());
        assert_eq!(read["documents"][0]["sha256"], sha256(PDF));

        let url = read["documents"][0]["url"].as_str().expect("url");
        let download = app.get(url, Some(&app.tokens.ets_a)).await;
        assert_eq!(download.status(), 200, "[{}]", app.backend);
        assert_eq!(download.headers()["content-type"], "application/pdf");
        assert_eq!(
            download.bytes().await.expect("body").as_ref(),
            PDF,
            "[{}] the content reads back byte for byte",
            app.backend
        );

        // The ETS's own list and the RUP's list both have it.
        let mine = app
            .ok(
                &app.tokens.ets_a,
                "query($id: ID!) { submissions(instanceId: $id) { id } }",
                json!({ "id": avviso }),
            )
            .await;
        assert_eq!(mine["submissions"].as_array().map(Vec::len), Some(1));
        let staff = app.ok(&app.tokens.rup, "query($id: ID!) { instance(id: $id) { submissions { id organisation { name } } } }", json!({ "id": avviso })).await;
        assert_eq!(staff["instance"]["submissions"][0]["id"], id);
    }
}

#[tokio::test]
async fn a_second_ets_gets_not_found_for_a_submission_and_cannot_learn_it_exists() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let response = app
            .submit(
                &app.tokens.ets_a,
                &avviso,
                &[Upload {
                    name: "proposta.pdf",
                    media_type: "application/pdf",
                    content: PDF,
                }],
            )
            .await;
        let id = response["data"]["submitApplication"]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let url = response["data"]["submitApplication"]["documents"][0]["url"]
            .as_str()
            .expect("url")
            .to_string();

        let query = "query($id: ID!) { submission(id: $id) { id note } }";
        let theirs = app
            .gql(Some(&app.tokens.ets_b), query, json!({ "id": id }))
            .await;
        let random = app
            .gql(
                Some(&app.tokens.ets_b),
                query,
                json!({ "id": uuid::Uuid::new_v4().to_string() }),
            )
            .await;
        assert_eq!(code(&theirs), "NOT_FOUND", "[{}] {theirs:#}", app.backend);
        // Same answer as for an id that does not exist: nothing to tell them apart.
        assert_eq!(
            theirs["errors"][0]["message"],
            random["errors"][0]["message"]
        );
        assert_eq!(
            theirs["errors"][0]["extensions"],
            random["errors"][0]["extensions"]
        );
        assert!(theirs["data"].is_null());

        for mutation in [
            "mutation($id: ID!) { withdrawSubmission(id: $id) { id } }",
            "mutation($id: ID!) { respondToSoccorso(submissionId: $id, note: \"x\") { id } }",
        ] {
            let response = app
                .gql(Some(&app.tokens.ets_b), mutation, json!({ "id": id }))
                .await;
            assert_eq!(
                code(&response),
                "NOT_FOUND",
                "[{}] {mutation}: {response:#}",
                app.backend
            );
        }

        let lists = app.ok(&app.tokens.ets_b, "query($id: ID!) { submissions(instanceId: $id) { id } instance(id: $id) { submissions { id } } ranking(instanceId: $id) { entries { position } } }", json!({ "id": avviso })).await;
        assert_eq!(lists["submissions"], json!([]));
        assert_eq!(lists["instance"]["submissions"], json!([]));
        assert_eq!(lists["ranking"]["entries"], json!([]));

        // The document: 404 for them, the same 404 as for a random submission.
        let theirs = app.get(&url, Some(&app.tokens.ets_b)).await;
        assert_eq!(theirs.status(), 404, "[{}]", app.backend);
        let theirs_body = theirs.text().await.expect("body");
        let random = app
            .get(
                &format!("/documents/{}/{}", uuid::Uuid::new_v4(), sha256(PDF)),
                Some(&app.tokens.ets_b),
            )
            .await;
        assert_eq!(random.status(), 404);
        assert_eq!(theirs_body, random.text().await.expect("body"));
        // And without a token, 401.
        assert_eq!(app.get(&url, None).await.status(), 401);
    }
}

#[tokio::test]
async fn a_submission_one_second_after_the_deadline_is_refused_with_the_deadline_and_its_trace() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let doc = [Upload {
            name: "proposta.pdf",
            media_type: "application/pdf",
            content: PDF,
        }];

        // At the deadline itself: still in time.
        app.clock.set(common::at(DEADLINE));
        let in_time = app.submit(&app.tokens.ets_b, &avviso, &doc).await;
        assert!(
            in_time.get("errors").is_none(),
            "[{}] at the deadline: {in_time:#}",
            app.backend
        );

        app.clock.advance(Duration::seconds(1));
        let late = app.submit(&app.tokens.ets_a, &avviso, &doc).await;
        assert_eq!(code(&late), "DEADLINE_PASSED", "[{}] {late:#}", app.backend);
        let ext = &late["errors"][0]["extensions"];
        assert_eq!(ext["deadline"], DEADLINE);
        let trace: Vec<&str> = ext["trace"]
            .as_array()
            .expect("trace")
            .iter()
            .filter_map(|l| l.as_str())
            .collect();
        assert!(trace.len() >= 2, "{trace:?}");
        assert!(
            trace.last().is_some_and(|l| l.contains("28/12/2026")),
            "the trace ends with the expiry: {trace:?}"
        );
        assert!(
            late["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("scaduto"))
        );

        // Nothing was stored for the late ETS; withdrawing after the deadline is refused too.
        let mine = app
            .ok(&app.tokens.ets_a, "{ submissions { id } }", json!({}))
            .await;
        assert_eq!(mine["submissions"], json!([]));
        let id = in_time["data"]["submitApplication"]["id"]
            .as_str()
            .expect("id");
        let withdraw = app
            .gql(
                Some(&app.tokens.ets_b),
                "mutation($id: ID!) { withdrawSubmission(id: $id) { status } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(
            code(&withdraw),
            "DEADLINE_PASSED",
            "[{}] {withdraw:#}",
            app.backend
        );
    }
}

#[tokio::test]
async fn a_document_whose_size_or_hash_does_not_match_is_refused() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let query = "mutation($id: ID!, $documents: [DocumentInput!]!) { submitApplication(instanceId: $id, documents: $documents) { id } }";
        let operations = json!({ "query": query, "variables": { "id": avviso, "documents": [{ "name": "proposta.pdf", "mediaType": "application/pdf", "size": PDF.len(), "sha256": sha256(b"something else"), "file": null }] } });
        let map = json!({ "0": ["variables.documents.0.file"] });
        let response = app
            .gql_multipart(
                &app.tokens.ets_a,
                operations,
                map,
                &[Upload {
                    name: "proposta.pdf",
                    media_type: "application/pdf",
                    content: PDF,
                }],
            )
            .await;
        assert_eq!(
            code(&response),
            "BAD_USER_INPUT",
            "[{}] {response:#}",
            app.backend
        );
        assert_eq!(
            response["errors"][0]["extensions"]["field"],
            "documents[0].sha256"
        );
        let mine = app
            .ok(&app.tokens.ets_a, "{ submissions { id } }", json!({}))
            .await;
        assert_eq!(mine["submissions"], json!([]), "nothing stored");
    }
}

#[tokio::test]
async fn an_ets_withdraws_before_the_deadline_and_may_submit_again_but_not_twice() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let doc = [Upload {
            name: "proposta.pdf",
            media_type: "application/pdf",
            content: PDF,
        }];
        let first = app.submit(&app.tokens.ets_a, &avviso, &doc).await;
        let id = first["data"]["submitApplication"]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let twice = app.submit(&app.tokens.ets_a, &avviso, &doc).await;
        assert_eq!(code(&twice), "CONFLICT", "[{}] {twice:#}", app.backend);
        let withdrawn = app
            .ok(
                &app.tokens.ets_a,
                "mutation($id: ID!) { withdrawSubmission(id: $id) { status withdrawnAt } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(withdrawn["withdrawSubmission"]["status"], "WITHDRAWN");
        let again = app.submit(&app.tokens.ets_a, &avviso, &doc).await;
        assert!(again.get("errors").is_none(), "[{}] {again:#}", app.backend);
    }
}

#[tokio::test]
async fn an_ets_reads_its_outcome_and_the_public_ranking_but_not_others_scores() {
    for app in spawn_apps().await {
        // Version 3 of the avviso, where the commissione typed each score: instances started
        // on it keep running after version 4 computes them (see tests/participants.rs).
        let avviso = app.published_avviso_v3().await;
        let doc = [Upload {
            name: "proposta.pdf",
            media_type: "application/pdf",
            content: PDF,
        }];
        let a =
            app.submit(&app.tokens.ets_a, &avviso, &doc).await["data"]["submitApplication"]["id"]
                .as_str()
                .expect("id")
                .to_string();
        let b =
            app.submit(&app.tokens.ets_b, &avviso, &doc).await["data"]["submitApplication"]["id"]
                .as_str()
                .expect("id")
                .to_string();
        let on = "mutation($id: ID!, $event: String!, $input: JSON) { fireOnSubmission(submissionId: $id, event: $event, input: $input) { seq submission { participant { state { id } } } } }";
        let fire = "mutation($id: ID!, $event: String!, $input: JSON) { fire(instanceId: $id, event: $event, input: $input) { seq } }";
        let ranking = "query($id: ID!) { ranking(instanceId: $id) { published entries { position organisation { id } outcome score mine } } }";
        // While submissions are open the ranking is not published.
        let open = app
            .ok(&app.tokens.ets_a, ranking, json!({ "id": avviso }))
            .await;
        assert_eq!(open["ranking"]["published"], false);
        assert_eq!(open["ranking"]["entries"], json!([]));

        app.clock.set(common::at(DEADLINE) + Duration::seconds(1));
        app.ok(
            &app.tokens.rup,
            fire,
            json!({ "id": avviso, "event": "chiudi_domande" }),
        )
        .await;
        for id in [&a, &b] {
            app.ok(
                &app.tokens.rup,
                on,
                json!({ "id": id, "event": "decidi_ammissione", "input": { "esito": "ammessa", "requisiti_verificati": true } }),
            )
            .await;
        }
        app.ok(
            &app.tokens.rup,
            fire,
            json!({ "id": avviso, "event": "ammetti" }),
        )
        .await;
        // An ETS does not score itself.
        let refused = app
            .gql(
                Some(&app.tokens.ets_a),
                on,
                json!({ "id": a, "event": "valuta", "input": { "punteggio": 100 } }),
            )
            .await;
        assert_eq!(code(&refused), "FORBIDDEN", "[{}] {refused:#}", app.backend);
        app.ok(
            &app.tokens.rup,
            on,
            json!({ "id": a, "event": "valuta", "input": { "punteggio": 71.5 } }),
        )
        .await;
        // During the evaluation the outcomes stay the commission's.
        let evaluating = app
            .ok(&app.tokens.ets_a, ranking, json!({ "id": avviso }))
            .await;
        assert_eq!(
            evaluating["ranking"]["published"], false,
            "[{}]",
            app.backend
        );
        assert_eq!(evaluating["ranking"]["entries"], json!([]));
        app.ok(
            &app.tokens.rup,
            on,
            json!({ "id": b, "event": "valuta", "input": { "punteggio": 88 } }),
        )
        .await;
        app.ok(
            &app.tokens.rup,
            fire,
            json!({ "id": avviso, "event": "approva_graduatoria", "input": { "data_graduatoria": "2027-01-15" } }),
        )
        .await;
        let data = app
            .ok(&app.tokens.ets_a, ranking, json!({ "id": avviso }))
            .await;
        let entries = &data["ranking"]["entries"];
        assert_eq!(data["ranking"]["published"], true);
        assert_eq!(entries[0]["organisation"]["id"], "ets-borea");
        assert_eq!(
            entries[0]["score"],
            json!(null),
            "[{}] another ETS's score is not shown",
            app.backend
        );
        assert_eq!(entries[1]["organisation"]["id"], "ets-aurora");
        assert_eq!(entries[1]["score"], 71.5);
        assert_eq!(entries[1]["mine"], true);
        assert_eq!(entries[1]["outcome"], "Valutata dalla commissione");
        let own = app
            .ok(
                &app.tokens.ets_a,
                "query($id: ID!) { submission(id: $id) { participant { state { id } variables { name value } } } }",
                json!({ "id": a }),
            )
            .await;
        let participant = &own["submission"]["participant"];
        assert_eq!(participant["state"]["id"], "valutata");
        // Its own score reaches it through the published ranking (above), not as a
        // variable: that is the commissione's while it evaluates.
        let names: Vec<&str> = participant["variables"]
            .as_array()
            .expect("variables")
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert!(!names.contains(&"punteggio"), "[{}] {names:?}", app.backend);
        // Another ETS's application is not there for it.
        let theirs = app
            .gql(
                Some(&app.tokens.ets_a),
                "query($id: ID!) { submission(id: $id) { participant { state { id } } } }",
                json!({ "id": b }),
            )
            .await;
        assert_eq!(code(&theirs), "NOT_FOUND", "[{}] {theirs:#}", app.backend);
    }
}
