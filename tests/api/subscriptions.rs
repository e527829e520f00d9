//! Subscriptions over WebSocket (graphql-transport-ws): an ETS receives the events of the
//! instances it may see, and not those of drafts.

use std::time::Duration as StdDuration;

use async_graphql::futures_util::{SinkExt, StreamExt};
use chrono::Duration;
use procedo::api::InstanceEvent;
use procedo::clock::Clock;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::common;
use crate::helpers::{DEADLINE, Socket, next_json, spawn_apps};
use procedo::scheduler::{Options, Outcome, Scheduler};

/// Opens a subscription to every visible instance as the first ETS and waits until it is live
/// (a probe event on `avviso` comes through), then drains the probes.
async fn live_subscription(app: &crate::helpers::TestApp, avviso: &str) -> Socket {
    let mut socket = app.socket(&app.tokens.ets_a).await;
    socket
        .send(Message::Text(json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { instanceEvents { instanceId event toState actorRole participantId } }" } }).to_string().into()))
        .await
        .expect("subscribe");
    let probe = InstanceEvent {
        instance_id: avviso.to_string().into(),
        definition_id: "avviso_coprogettazione".into(),
        seq: 0,
        event: "sonda".into(),
        from_state: None,
        to_state: "pubblicato".into(),
        at: common::at(DEADLINE),
        actor_role: "rup".into(),
        participant_id: None,
        participant_from: None,
        participant_to: None,
    };
    let mut live = false;
    for _ in 0..100 {
        app.state.publish(probe.clone());
        if let Some(message) = next_json(&mut socket, StdDuration::from_millis(50)).await {
            assert_eq!(
                message["payload"]["data"]["instanceEvents"]["event"], "sonda",
                "{message}"
            );
            live = true;
            break;
        }
    }
    assert!(live, "[{}] the subscription never went live", app.backend);
    while next_json(&mut socket, StdDuration::from_millis(100))
        .await
        .is_some()
    {}
    socket
}

#[tokio::test]
async fn an_ets_subscriber_receives_events_of_instances_it_may_see_only() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let mut socket = live_subscription(&app, &avviso).await;

        let draft = app.draft_avviso().await; // invisible to an ETS: no event
        app.clock.set(common::at(DEADLINE) + Duration::seconds(1));
        app.ok(
            &app.tokens.rup,
            "mutation($id: ID!) { fire(instanceId: $id, event: \"chiudi_domande\") { seq } }",
            json!({ "id": avviso }),
        )
        .await;
        let message = next_json(&mut socket, StdDuration::from_secs(5))
            .await
            .expect("event");
        let event = &message["payload"]["data"]["instanceEvents"];
        assert_eq!(
            event["instanceId"],
            avviso.as_str(),
            "[{}] not the draft {draft}: {message}",
            app.backend
        );
        assert_eq!(event["event"], "chiudi_domande");
        // Nobody applied: the notice is deserted.
        assert_eq!(event["toState"], "deserto");

        let _ = socket.close(None).await;
    }
}

#[tokio::test]
async fn a_step_fired_by_the_scheduler_reaches_subscribers_once() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let tail = app
            .state
            .spawn_history_tail(StdDuration::from_millis(50), std::future::pending());
        let mut socket = live_subscription(&app, &avviso).await;

        // The deadline passes; the scheduler (not the API) fires the timer's event.
        app.clock.set(common::at(DEADLINE) + Duration::seconds(1));
        let scheduler = Scheduler::new(
            app.state.service().clone(),
            Options {
                worker_id: "test".into(),
                ..Options::default()
            },
        )
        .expect("scheduler");
        while matches!(
            scheduler.tick().await.expect("tick"),
            Outcome::Progressed(_)
        ) {}

        let message = next_json(&mut socket, StdDuration::from_secs(5))
            .await
            .expect("the scheduler's step reaches the subscriber");
        let event = &message["payload"]["data"]["instanceEvents"];
        assert_eq!(
            event["instanceId"],
            avviso.as_str(),
            "[{}] {message}",
            app.backend
        );
        assert_eq!(event["event"], "chiudi_domande");
        assert_eq!(event["actorRole"], "system");
        // Published once, though the tail reads the same rows again.
        assert!(
            next_json(&mut socket, StdDuration::from_millis(400))
                .await
                .is_none(),
            "[{}] a second copy of the event",
            app.backend
        );
        tail.abort();
        let _ = socket.close(None).await;
    }
}

#[tokio::test]
async fn a_revoked_token_ends_its_subscription() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let mut socket = live_subscription(&app, &avviso).await;
        let store = app.state.service().store();
        for token in store.tokens(Some("luca.bianchi")).await.expect("tokens") {
            store
                .revoke_token(&token.id, app.clock.now())
                .await
                .expect("revoke");
        }
        app.state.publish(InstanceEvent {
            instance_id: avviso.clone().into(),
            definition_id: "avviso_coprogettazione".into(),
            seq: 0,
            event: "dopo_la_revoca".into(),
            from_state: None,
            to_state: "pubblicato".into(),
            at: common::at(DEADLINE),
            actor_role: "rup".into(),
            participant_id: None,
            participant_from: None,
            participant_to: None,
        });
        while let Some(message) = next_json(&mut socket, StdDuration::from_millis(500)).await {
            assert_ne!(
                message["payload"]["data"]["instanceEvents"]["event"], "dopo_la_revoca",
                "[{}] an event reached a revoked token: {message}",
                app.backend
            );
        }
        let _ = socket.close(None).await;
    }
}

#[tokio::test]
async fn a_websocket_without_a_valid_token_is_refused() {
    for app in spawn_apps().await {
        let url = format!("{}/graphql/ws", app.address.replace("http://", "ws://"));
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("connect");
        socket
            .send(Message::Text(
                json!({ "type": "connection_init", "payload": { "token": "pdo_nope" } })
                    .to_string()
                    .into(),
            ))
            .await
            .expect("init");
        let reply = tokio::time::timeout(StdDuration::from_secs(5), socket.next())
            .await
            .expect("reply");
        let acked = matches!(&reply, Some(Ok(Message::Text(t))) if t.contains("connection_ack"));
        assert!(!acked, "[{}] {reply:?}", app.backend);
    }
}

#[tokio::test]
async fn an_ets_subscriber_hears_of_its_own_application_and_not_of_another() {
    for app in spawn_apps().await {
        let avviso = app.published_avviso().await;
        let submit = "mutation($id: ID!) { submitApplication(instanceId: $id) { id } }";
        let mine = app
            .ok(&app.tokens.ets_a, submit, json!({ "id": avviso }))
            .await["submitApplication"]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let theirs = app
            .ok(&app.tokens.ets_b, submit, json!({ "id": avviso }))
            .await["submitApplication"]["id"]
            .as_str()
            .expect("id")
            .to_string();
        let mut socket = live_subscription(&app, &avviso).await;
        app.clock.set(common::at(DEADLINE) + Duration::seconds(1));
        app.ok(
            &app.tokens.rup,
            "mutation($id: ID!) { fire(instanceId: $id, event: \"chiudi_domande\") { seq } }",
            json!({ "id": avviso }),
        )
        .await;
        let closed = next_json(&mut socket, StdDuration::from_secs(5))
            .await
            .expect("the procedure's step");
        assert_eq!(
            closed["payload"]["data"]["instanceEvents"]["event"], "chiudi_domande",
            "[{}] {closed}",
            app.backend
        );
        let on = "mutation($id: ID!) { fireOnSubmission(submissionId: $id, event: \"richiedi_soccorso\", input: {documenti_mancanti: [\"DURC\"]}) { seq } }";
        app.ok(&app.tokens.rup, on, json!({ "id": theirs })).await;
        app.ok(&app.tokens.rup, on, json!({ "id": mine })).await;
        let next = next_json(&mut socket, StdDuration::from_secs(5))
            .await
            .expect("its own application's step");
        let event = &next["payload"]["data"]["instanceEvents"];
        assert_eq!(
            event["participantId"],
            mine.as_str(),
            "[{}] the other ETS's soccorso must not reach it: {next}",
            app.backend
        );
        assert!(
            next_json(&mut socket, StdDuration::from_millis(400))
                .await
                .is_none(),
            "[{}] nothing else",
            app.backend
        );
        let _ = socket.close(None).await;
    }
}
