//! Questions on a notice: an ETS asks, the Ufficio di Piano answers; a public answer is read by
//! every ETS without naming who asked, a private one only by the asker.

use serde_json::json;

use crate::helpers::{code, spawn_apps};

#[tokio::test]
async fn a_public_answer_reaches_every_ets_and_a_private_one_only_the_asker() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let ask = "mutation($id: ID!, $text: String!) { askQuestion(instanceId: $id, text: $text) { id mine } }";
        let public_q = app
            .ok(
                &app.tokens.ets_a,
                ask,
                json!({ "id": avviso, "text": "Il budget include l'IVA?" }),
            )
            .await["askQuestion"]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let private_q = app
            .ok(
                &app.tokens.ets_a,
                ask,
                json!({ "id": avviso, "text": "Possiamo allegare il bilancio 2025?" }),
            )
            .await["askQuestion"]["id"]
            .as_str()
            .expect("id")
            .to_string();

        let list = "query($id: ID!) { questions(instanceId: $id) { id text answer public mine askedBy { id } } }";
        let before = app
            .ok(&app.tokens.ets_b, list, json!({ "id": avviso }))
            .await;
        assert_eq!(
            before["questions"],
            json!([]),
            "[{}] unanswered questions of others are not shown",
            app.backend
        );

        let answer = "mutation($id: ID!, $public: Boolean!) { answerQuestion(id: $id, answer: \"Sì.\", public: $public) { answer public } }";
        let refused = app
            .gql(
                Some(&app.tokens.ets_b),
                answer,
                json!({ "id": public_q, "public": true }),
            )
            .await;
        assert_eq!(
            code(&refused),
            "NOT_FOUND",
            "an ETS cannot even see another's unanswered question"
        );
        app.ok(
            &app.tokens.rup,
            answer,
            json!({ "id": public_q, "public": true }),
        )
        .await;
        app.ok(
            &app.tokens.rup,
            answer,
            json!({ "id": private_q, "public": false }),
        )
        .await;

        let other = app
            .ok(&app.tokens.ets_b, list, json!({ "id": avviso }))
            .await;
        let other = other["questions"].as_array().expect("list");
        assert_eq!(
            other.len(),
            1,
            "[{}] only the public one: {other:?}",
            app.backend
        );
        assert_eq!(other[0]["id"], public_q.as_str());
        assert_eq!(other[0]["askedBy"], json!(null));
        assert_eq!(other[0]["mine"], false);
        let asker = app
            .ok(&app.tokens.ets_a, list, json!({ "id": avviso }))
            .await;
        assert_eq!(asker["questions"].as_array().map(Vec::len), Some(2));
        let staff = app.ok(&app.tokens.rup, list, json!({ "id": avviso })).await;
        assert_eq!(staff["questions"][0]["askedBy"]["id"], "ets-aurora");
    }
}
