//! Running the Ambito without a shell: the amministratore creates an ETS, its person and a
//! token through the API (the token works at once and sees only its ETS; revoked, it stops at
//! once), deploys a new procedure version (validated as `procedo validate` does; the same
//! version with another content is refused), and every action is in the append-only audit
//! log. Nobody else may do any of it.

use sea_orm::{ConnectionTrait, Database};
use serde_json::json;

use crate::helpers::{code, spawn_apps};

const CREATE_ORG: &str = "mutation($input: OrganisationInput!) { createOrganisation(input: $input) { id name kind runts } }";
const CREATE_PERSON: &str = "mutation($input: PersonInput!) { createPerson(input: $input) { id name organisationId roles } }";
const CREATE_TOKEN: &str = "mutation($person: ID!, $role: String!) { createToken(personId: $person, role: $role, expiresInDays: 365) { secret token { id role expiresAt revokedAt } } }";
const REVOKE: &str = "mutation($id: ID!) { revokeToken(id: $id) { id revokedAt } }";
const AUDIT: &str = "{ adminAudit(limit: 50) { actorId role action subject detail } }";
const VALIDATE: &str = "mutation($yaml: String!) { validateDefinition(yaml: $yaml, name: \"nota.yaml\") { file line column message } }";
const DEPLOY: &str = "mutation($yaml: String!) { deployDefinition(yaml: $yaml, name: \"nota.yaml\") { id version title inserted mermaid } }";

const NOTA_V1: &str = "id: nota_interna
version: 1
title: \"Nota interna\"
roles:
  ufficio_di_piano: \"Ufficio di Piano\"
variables:
  oggetto: { type: text, required: true, label: \"Oggetto\" }
states:
  bozza: { initial: true, title: \"Bozza\" }
  chiusa: { final: true, title: \"Chiusa\" }
transitions:
  - event: chiudi
    title: \"Chiudi la nota\"
    from: bozza
    to: chiusa
    roles: [ufficio_di_piano]
";

#[tokio::test]
async fn an_administrator_runs_people_tokens_and_definitions_through_the_api() {
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let admin = app.tokens.admin.clone();

        // An ETS, its legal representative, a token: no shell involved.
        let org = app
            .ok(
                &admin,
                CREATE_ORG,
                json!({ "input": { "id": "ets-girasole", "name": "Cooperativa Il Girasole", "kind": "ets", "runts": "RUNTS-4711" } }),
            )
            .await;
        assert_eq!(org["createOrganisation"]["kind"], "ets", "[{backend}]");
        // A mayor's role does not fit an ETS: refused, nothing written.
        let misfit = app
            .gql(
                Some(&admin),
                CREATE_PERSON,
                json!({ "input": { "id": "x", "name": "X", "email": "x@example.org", "organisationId": "ets-girasole", "roles": ["sindaco"] } }),
            )
            .await;
        assert_eq!(code(&misfit), "BAD_USER_INPUT", "[{backend}] {misfit:#}");
        assert!(misfit.to_string().contains("non è ammesso"), "[{backend}]");
        let person = app
            .ok(
                &admin,
                CREATE_PERSON,
                json!({ "input": { "id": "gina.sole", "name": "Gina Sole", "email": "gina@girasole.example.org", "organisationId": "ets-girasole", "roles": ["ets"] } }),
            )
            .await;
        assert_eq!(
            person["createPerson"]["roles"],
            json!(["ets"]),
            "[{backend}]"
        );
        let again = app
            .gql(
                Some(&admin),
                CREATE_ORG,
                json!({ "input": { "id": "ets-girasole", "name": "Doppione", "kind": "ets" } }),
            )
            .await;
        assert_eq!(code(&again), "CONFLICT", "[{backend}] {again:#}");
        let issued = app
            .ok(
                &admin,
                CREATE_TOKEN,
                json!({ "person": "gina.sole", "role": "ets" }),
            )
            .await;
        let secret = issued["createToken"]["secret"]
            .as_str()
            .expect("the secret, once")
            .to_string();
        let token_id = issued["createToken"]["token"]["id"]
            .as_str()
            .expect("token id")
            .to_string();
        assert!(secret.starts_with("pdo_"), "[{backend}]");
        // The token works at once, as that ETS only.
        let me = app
            .ok(
                &secret,
                "{ me { personId role organisation { id } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            me["me"]["organisation"]["id"], "ets-girasole",
            "[{backend}] {me:#}"
        );
        assert_eq!(me["me"]["role"], "ets", "[{backend}] {me:#}");
        let other = app
            .gql(Some(&secret), "{ organisations { id } }", json!({}))
            .await;
        assert_eq!(code(&other), "FORBIDDEN", "[{backend}] {other:#}");
        // The secret is never listed again.
        let listed = app
            .ok(
                &admin,
                "query($p: ID) { tokens(personId: $p) { id role revokedAt } }",
                json!({ "p": "gina.sole" }),
            )
            .await;
        assert!(!listed.to_string().contains(&secret), "[{backend}]");
        // Revoked, it stops at once.
        app.ok(&admin, REVOKE, json!({ "id": token_id })).await;
        let after = app
            .gql(Some(&secret), "{ me { personId } }", json!({}))
            .await;
        assert_eq!(code(&after), "UNAUTHENTICATED", "[{backend}] {after:#}");

        // A definition: the diagnostics of `procedo validate`, with line and column.
        let broken = NOTA_V1.replace("to: chiusa", "to: archiviata");
        let diagnostics = app
            .ok(&app.tokens.rup, VALIDATE, json!({ "yaml": broken }))
            .await;
        let first = &diagnostics["validateDefinition"][0];
        assert_eq!(first["file"], "nota.yaml", "[{backend}] {diagnostics:#}");
        assert_eq!(first["line"], 15, "[{backend}] {diagnostics:#}");
        assert!(
            first["message"]
                .as_str()
                .is_some_and(|m| m.contains("archiviata")),
            "[{backend}] {diagnostics:#}"
        );
        let refused = app
            .gql(Some(&admin), DEPLOY, json!({ "yaml": broken }))
            .await;
        assert_eq!(code(&refused), "BAD_USER_INPUT", "[{backend}] {refused:#}");
        assert!(
            refused.to_string().contains("nota.yaml:15:"),
            "[{backend}] {refused:#}"
        );
        let valid = app
            .ok(&app.tokens.rup, VALIDATE, json!({ "yaml": NOTA_V1 }))
            .await;
        assert_eq!(valid["validateDefinition"], json!([]), "[{backend}]");
        let deployed = app.ok(&admin, DEPLOY, json!({ "yaml": NOTA_V1 })).await;
        assert_eq!(
            deployed["deployDefinition"]["inserted"], true,
            "[{backend}]"
        );
        assert!(
            deployed["deployDefinition"]["mermaid"]
                .as_str()
                .is_some_and(|m| m.contains("stateDiagram")),
            "[{backend}] {deployed:#}"
        );
        let same = app.ok(&admin, DEPLOY, json!({ "yaml": NOTA_V1 })).await;
        assert_eq!(same["deployDefinition"]["inserted"], false, "[{backend}]");
        let changed = NOTA_V1.replace("Chiudi la nota", "Archivia la nota");
        let conflict = app
            .gql(Some(&admin), DEPLOY, json!({ "yaml": changed }))
            .await;
        assert_eq!(code(&conflict), "CONFLICT", "[{backend}] {conflict:#}");
        let v2 = changed.replace("version: 1", "version: 2");
        let deployed = app.ok(&admin, DEPLOY, json!({ "yaml": v2 })).await;
        assert_eq!(deployed["deployDefinition"]["version"], 2, "[{backend}]");
        // Staff start the new version at once.
        let started = app
            .ok(
                &app.tokens.ufficio,
                "mutation { startInstance(procedureId: \"nota_interna\", variables: {oggetto: \"prova\"}) { instance { definitionVersion state { id } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            started["startInstance"]["instance"]["definitionVersion"], 2,
            "[{backend}] {started:#}"
        );

        // Nobody but the amministratore: an RUP, an ETS, a mayor, the auditor.
        for token in [
            &app.tokens.rup,
            &app.tokens.ets_a,
            &app.tokens.sindaco,
            &app.tokens.auditor,
        ] {
            for (query, variables) in [
                (
                    CREATE_ORG,
                    json!({ "input": { "id": "ets-abusivo", "name": "X", "kind": "ets" } }),
                ),
                (
                    CREATE_PERSON,
                    json!({ "input": { "name": "X", "email": "x@example.org", "organisationId": "ets-aurora", "roles": ["ets"] } }),
                ),
                (
                    CREATE_TOKEN,
                    json!({ "person": "luca.bianchi", "role": "ets" }),
                ),
                (REVOKE, json!({ "id": token_id })),
                (
                    DEPLOY,
                    json!({ "yaml": NOTA_V1.replace("version: 1", "version: 9") }),
                ),
                (AUDIT, json!({})),
                ("{ people { id email } }", json!({})),
            ] {
                let refused = app.gql(Some(token), query, variables).await;
                assert_eq!(
                    code(&refused),
                    "FORBIDDEN",
                    "[{backend}] {query}: {refused:#}"
                );
            }
        }
        let ets_validate = app
            .gql(
                Some(&app.tokens.ets_a),
                VALIDATE,
                json!({ "yaml": NOTA_V1 }),
            )
            .await;
        assert_eq!(code(&ets_validate), "FORBIDDEN", "[{backend}]");
        // No organisation was created by the refused calls.
        let orgs = app.ok(&admin, "{ organisations { id } }", json!({})).await;
        assert!(!orgs.to_string().contains("ets-abusivo"), "[{backend}]");

        // The audit log: each action, by whom, never a secret.
        let audit = app.ok(&admin, AUDIT, json!({})).await;
        let rows = audit["adminAudit"].as_array().expect("rows");
        let actions: Vec<&str> = rows.iter().filter_map(|r| r["action"].as_str()).collect();
        assert_eq!(
            actions,
            [
                "pubblica_definizione",
                "pubblica_definizione",
                "revoca_token",
                "crea_token",
                "crea_persona",
                "crea_organizzazione",
            ],
            "[{backend}] {audit:#}"
        );
        assert!(
            rows.iter().all(|r| r["actorId"] == "ivo.admin"),
            "[{backend}]"
        );
        assert!(!audit.to_string().contains(&secret), "[{backend}]");
        assert_eq!(rows[0]["subject"], "nota_interna@v2", "[{backend}]");

        // The log is append-only in the database itself.
        let db = Database::connect(app.database_url())
            .await
            .expect("connect");
        for sql in [
            "UPDATE admin_audit SET actor_id = 'altro'",
            "DELETE FROM admin_audit",
        ] {
            assert!(
                db.execute_unprepared(sql).await.is_err(),
                "[{backend}] {sql} was allowed"
            );
        }
        db.close().await.expect("close");
    }
}

const MIGRATE: &str = "mutation($ids: [ID!]!, $to: Int!, $dry: Boolean!, $map: [StateMapping!], $rettifica: String) { migrateInstances(instanceIds: $ids, toVersion: $to, dryRun: $dry, stateMap: $map, rettifica: $rettifica) { instanceId fromVersion toVersion fromState toState variablesAdded variablesDropped termsChanged { name } timersArmed { key at } timersCancelled lexSpecialis blockers moved } }";

const PRATICA_V1: &str = "id: pratica_interna
version: 1
title: \"Pratica interna\"
roles:
  ufficio_di_piano: \"Ufficio di Piano\"
variables:
  oggetto: { type: text, required: true, label: \"Oggetto\" }
  data_nota: { type: date, required: true, label: \"Data della nota\" }
  riservata: { type: text, label: \"Annotazione riservata\" }
states:
  bozza: { initial: true, title: \"Bozza\" }
  chiusa: { final: true, title: \"Chiusa\" }
transitions:
  - event: chiudi
    title: \"Chiudi\"
    from: bozza
    to: chiusa
    roles: [ufficio_di_piano]
";

const PRATICA_V2: &str = "id: pratica_interna
version: 2
title: \"Pratica interna\"
roles:
  ufficio_di_piano: \"Ufficio di Piano\"
variables:
  oggetto: { type: text, required: true, label: \"Oggetto\" }
  data_nota: { type: date, required: true, label: \"Data della nota\" }
  termine_risposta:
    type: date
    label: \"Termine per la risposta (10 giorni)\"
    term: { from: data_nota, days: 10 }
  note: { type: text, label: \"Note\" }
  link: { type: text, label: \"Pratica\" }
states:
  in_lavorazione: { initial: true, title: \"In lavorazione\" }
  chiusa: { final: true, title: \"Chiusa\" }
transitions:
  - event: chiudi
    title: \"Chiudi\"
    from: in_lavorazione
    to: chiusa
    roles: [ufficio_di_piano]
timers:
  - id: risposta
    while: in_lavorazione
    at: termine_risposta
    reminders:
      - { days_before: 2, notify: { role: ufficio_di_piano, template: promemoria_scadenza } }
";

/// Three running instances of version 1; version 2 renames a state, adds a term with a timer
/// and drops a variable. The dry run says what would happen to each (one, concluded, cannot
/// move) and changes nothing; the real run moves the two, each with a history row and its
/// timers armed, and the third stays pinned. A published avviso whose criteria the new
/// version changes needs the rettifica. Only the amministratore migrates.
#[tokio::test]
async fn a_migration_moves_running_instances_and_reports_the_one_that_cannot() {
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let admin = app.tokens.admin.clone();
        app.ok(&admin, DEPLOY, json!({ "yaml": PRATICA_V1 })).await;
        let start = |subject: &'static str| {
            let app = &app;
            async move {
                let started = app
                    .ok(
                        &app.tokens.ufficio,
                        "mutation($s: String!) { startInstance(procedureId: \"pratica_interna\", variables: {oggetto: $s, data_nota: \"2026-11-26\", riservata: \"appunto\"}) { instance { id } } }",
                        json!({ "s": subject }),
                    )
                    .await;
                started["startInstance"]["instance"]["id"]
                    .as_str()
                    .expect("id")
                    .to_string()
            }
        };
        let (a, b, c) = (start("a").await, start("b").await, start("c").await);
        app.ok(
            &app.tokens.ufficio,
            "mutation($id: ID!) { fire(instanceId: $id, event: \"chiudi\") { seq } }",
            json!({ "id": c }),
        )
        .await;
        app.ok(&admin, DEPLOY, json!({ "yaml": PRATICA_V2 })).await;
        let map = json!([{ "from": "bozza", "to": "in_lavorazione" }]);
        let ids = json!([a, b, c]);

        let dry = app
            .ok(
                &admin,
                MIGRATE,
                json!({ "ids": ids, "to": 2, "dry": true, "map": map }),
            )
            .await;
        let reports = dry["migrateInstances"].as_array().expect("reports");
        assert_eq!(reports.len(), 3, "[{backend}]");
        for r in &reports[..2] {
            assert_eq!(r["blockers"], json!([]), "[{backend}] {r:#}");
            assert_eq!(r["toState"], "in_lavorazione", "[{backend}]");
            assert_eq!(
                r["variablesAdded"],
                json!(["termine_risposta", "note", "link"]),
                "[{backend}]"
            );
            assert_eq!(r["variablesDropped"], json!(["riservata"]), "[{backend}]");
            assert_eq!(
                r["termsChanged"][0]["name"], "termine_risposta",
                "[{backend}]"
            );
            assert_eq!(
                r["timersArmed"][0]["key"], "risposta#promemoria-1",
                "[{backend}] {r:#}"
            );
            assert_eq!(r["moved"], false, "[{backend}]");
        }
        assert!(
            reports[2]["blockers"].to_string().contains("conclusa"),
            "[{backend}] {:#}",
            reports[2]
        );
        let version_of = |id: String| {
            let app = &app;
            async move {
                app.ok(
                    &app.tokens.ufficio,
                    "query($id: ID!) { instance(id: $id) { definitionVersion state { id } history { event } } }",
                    json!({ "id": id }),
                )
                .await["instance"]
                    .clone()
            }
        };
        assert_eq!(
            version_of(a.clone()).await["definitionVersion"],
            1,
            "[{backend}] a dry run changes nothing"
        );

        // Only the amministratore.
        for token in [
            &app.tokens.rup,
            &app.tokens.ufficio,
            &app.tokens.ets_a,
            &app.tokens.sindaco,
        ] {
            let refused = app
                .gql(
                    Some(token),
                    MIGRATE,
                    json!({ "ids": ids, "to": 2, "dry": true, "map": map }),
                )
                .await;
            assert_eq!(code(&refused), "FORBIDDEN", "[{backend}] {refused:#}");
        }

        let run = app
            .ok(
                &admin,
                MIGRATE,
                json!({ "ids": ids, "to": 2, "dry": false, "map": map }),
            )
            .await;
        let moved: Vec<bool> = run["migrateInstances"]
            .as_array()
            .expect("reports")
            .iter()
            .map(|r| r["moved"] == true)
            .collect();
        assert_eq!(moved, [true, true, false], "[{backend}] {run:#}");
        let after = version_of(a.clone()).await;
        assert_eq!(after["definitionVersion"], 2, "[{backend}]");
        assert_eq!(after["state"]["id"], "in_lavorazione", "[{backend}]");
        let events: Vec<&str> = after["history"]
            .as_array()
            .expect("history")
            .iter()
            .filter_map(|h| h["event"].as_str())
            .collect();
        assert_eq!(events, ["avvio", "migrazione"], "[{backend}]");
        assert_eq!(
            version_of(c.clone()).await["definitionVersion"],
            1,
            "[{backend}] stays pinned"
        );
        let timers = app
            .state
            .service()
            .store()
            .timers(&a)
            .await
            .expect("timers");
        assert!(
            timers.iter().any(|t| t.key == "risposta#promemoria-1"),
            "[{backend}] {timers:#?}"
        );
        // The moved instance runs on version 2.
        app.ok(
            &app.tokens.ufficio,
            "mutation($id: ID!) { fire(instanceId: $id, event: \"chiudi\") { seq } }",
            json!({ "id": a }),
        )
        .await;
        let audit = app.ok(&admin, AUDIT, json!({})).await;
        assert_eq!(
            audit["adminAudit"][0]["action"], "migra_istanze",
            "[{backend}]"
        );

        // A published avviso of version 3 moving to the shipped one, whose criteria differ:
        // its lex specialis changes, which needs the rettifica act.
        let avviso = app.published_avviso_v3().await;
        let latest = app
            .ok(
                &app.tokens.rup,
                "{ definition(id: \"avviso_coprogettazione\") { version } }",
                json!({}),
            )
            .await["definition"]["version"]
            .as_u64()
            .expect("version");
        let without = app
            .ok(
                &admin,
                MIGRATE,
                json!({ "ids": [avviso], "to": latest, "dry": true }),
            )
            .await;
        let report = &without["migrateInstances"][0];
        assert_eq!(report["lexSpecialis"], true, "[{backend}] {report:#}");
        assert!(
            report["blockers"].to_string().contains("rettifica"),
            "[{backend}] {report:#}"
        );
        let with = app
            .ok(
                &admin,
                MIGRATE,
                json!({ "ids": [avviso], "to": latest, "dry": true, "rettifica": "determina n. 7 del 28/11/2026" }),
            )
            .await;
        assert!(
            !with["migrateInstances"][0]["blockers"]
                .to_string()
                .contains("rettifica"),
            "[{backend}] {with:#}"
        );
    }
}

/// Bodies through the API: the amministratore writes a body's file after it is checked; staff
/// list the bodies; a broken file names its problem; nobody else writes one.
#[tokio::test]
async fn the_amministratore_publishes_a_body_that_staff_then_read() {
    for app in spawn_apps().await {
        let backend = app.backend.clone();
        let dir = tempfile::tempdir().expect("workflows dir");
        std::fs::create_dir(dir.path().join("organi")).expect("organi");
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/workflows/organi/assemblea_sindaci.yaml"
            ),
            dir.path().join("organi/assemblea_sindaci.yaml"),
        )
        .expect("copy");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}/graphql", listener.local_addr().expect("address"));
        let state = app.state.clone().with_workflows(dir.path().to_path_buf());
        tokio::spawn(procedo::api::serve(listener, state, std::future::pending()));
        let client = reqwest::Client::new();
        let gql = |token: &str, query: &str, variables: serde_json::Value| {
            let request = client
                .post(&base)
                .bearer_auth(token)
                .json(&json!({ "query": query, "variables": variables }));
            async move {
                request
                    .send()
                    .await
                    .expect("POST")
                    .json::<serde_json::Value>()
                    .await
                    .expect("JSON")
            }
        };
        const DEPLOY_BODY: &str = "mutation($n: String!, $y: String!) { deployBody(name: $n, yaml: $y) { id file seats { id weight } sha256 } }";
        let yaml = "id: consulta_terzo_settore\ntitle: \"Consulta del Terzo Settore\"\nseats:\n  - { id: ets-aurora, name: \"Cooperativa Aurora\", weight: 1 }\n  - { id: ets-borea, name: \"Associazione Borea\", weight: 1 }\n";
        let published = gql(
            &app.tokens.admin,
            DEPLOY_BODY,
            json!({ "n": "consulta", "y": yaml }),
        )
        .await;
        assert_eq!(
            published["data"]["deployBody"]["file"], "organi/consulta.yaml",
            "[{backend}] {published:#}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("organi/consulta.yaml")).expect("written"),
            yaml
        );
        let listed = gql(&app.tokens.rup, "{ bodies { id seats { id } } }", json!({})).await;
        let ids: Vec<&str> = listed["data"]["bodies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b["id"].as_str())
            .collect();
        assert_eq!(
            ids,
            ["assemblea_sindaci", "consulta_terzo_settore"],
            "[{backend}] {listed:#}"
        );
        let broken = gql(
            &app.tokens.admin,
            DEPLOY_BODY,
            json!({ "n": "rotto", "y": "id: x\ntitle: X\nseats: []\n" }),
        )
        .await;
        assert_eq!(code(&broken), "BAD_USER_INPUT", "[{backend}]");
        assert!(
            broken
                .to_string()
                .contains("organi/rotto.yaml: l'organo non ha seggi"),
            "[{backend}] {broken:#}"
        );
        let escape = gql(
            &app.tokens.admin,
            DEPLOY_BODY,
            json!({ "n": "../fuori", "y": yaml }),
        )
        .await;
        assert_eq!(code(&escape), "BAD_USER_INPUT", "[{backend}]");
        assert!(!dir.path().join("fuori.yaml").exists());
        for token in [&app.tokens.rup, &app.tokens.ets_a, &app.tokens.sindaco] {
            let refused = gql(token, DEPLOY_BODY, json!({ "n": "altro", "y": yaml })).await;
            assert_eq!(code(&refused), "FORBIDDEN", "[{backend}]");
        }
        let refused = gql(&app.tokens.ets_a, "{ bodies { id } }", json!({})).await;
        assert_eq!(code(&refused), "FORBIDDEN", "[{backend}]");
        let audit = app.ok(&app.tokens.admin, AUDIT, json!({})).await;
        assert_eq!(
            audit["adminAudit"][0]["action"], "pubblica_organo",
            "[{backend}]"
        );
    }
}
