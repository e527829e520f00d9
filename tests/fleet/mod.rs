//! Helpers for the tests that run `procedo scheduler run` as child processes: a one-timer
//! procedure, many due timers created in bulk, children started, killed and stopped, and the
//! check that every timer's transition is in the history exactly once.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use procedo::catalog;
use procedo::engine::{self, Actor};
use procedo::store::{StartRecord, Store, TimerStatus};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::{Map, Value};

/// One datetime, one timer that fires one transition.
pub const PROCEDURE: &str = r#"
id: scadenza
version: 1
title: "Scadenza"
roles:
  ufficio_di_piano: "Ufficio di Piano"
variables:
  termine: { type: datetime, required: true }
states:
  attesa: { initial: true }
  scaduta: { final: true }
transitions:
  - event: scade
    from: attesa
    to: scaduta
    roles: [ufficio_di_piano]
timers:
  - id: scadenza
    while: attesa
    at: termine
    fires: scade
"#;

/// A workflows folder holding `PROCEDURE`.
pub fn workflows(dir: &Path) -> PathBuf {
    let workflows = dir.join("workflows");
    std::fs::create_dir_all(&workflows).expect("cartella workflows");
    std::fs::write(workflows.join("scadenza.yaml"), PROCEDURE).expect("procedura");
    workflows
}

/// Installs the procedure and starts `count` instances whose timers are due at `fire_at`.
pub async fn arm_due_timers(store: &Store, workflows: &Path, count: usize, fire_at: DateTime<Utc>) {
    let (catalog, diags) = catalog::load(&[workflows.to_path_buf()]);
    assert!(diags.is_empty(), "{diags:?}");
    let catalog = catalog.expect("catalogo");
    let service = procedo::service::Service::new(
        store.clone(),
        std::sync::Arc::new(procedo::clock::SystemClock),
    );
    service.install(&catalog).await.expect("installazione");
    let procedure = service
        .procedure("scadenza", None)
        .await
        .expect("procedura");
    let actor = Actor {
        id: "test".into(),
        role: "ufficio_di_piano".into(),
    };
    let now = Utc::now();
    let mut planned = Vec::with_capacity(count);
    for _ in 0..count {
        let mut vars = Map::new();
        vars.insert("termine".into(), Value::String(fire_at.to_rfc3339()));
        let id = uuid::Uuid::new_v4().to_string();
        let step = engine::start(&procedure, &id, &vars, &actor, now).expect("avvio");
        planned.push((id, step, Value::Object(vars)));
    }
    for chunk in planned.chunks(5_000) {
        let records: Vec<StartRecord<'_>> = chunk
            .iter()
            .map(|(id, step, payload)| StartRecord {
                instance_id: id,
                definition_id: &procedure.id,
                definition_version: procedure.version,
                parent_id: None,
                actor: &actor,
                step,
                payload,
                idempotency_key: None,
                at: now,
            })
            .collect();
        store
            .commit_starts(&records)
            .await
            .expect("avvio in blocco");
    }
    assert_eq!(
        store
            .count_timers(TimerStatus::Pending)
            .await
            .expect("count"),
        count as u64
    );
}

/// Starts `procedo scheduler run` on a database.
pub fn spawn_scheduler(url: &str, workflows: &Path, worker: &str, lease_seconds: u64) -> Child {
    spawn_scheduler_with(
        url,
        workflows,
        worker,
        &["--lease", &lease_seconds.to_string()],
        &[],
    )
}

/// Starts `procedo scheduler run` on a database, with more arguments and environment.
pub fn spawn_scheduler_with(
    url: &str,
    workflows: &Path,
    worker: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_procedo"));
    command
        .args(["scheduler", "run", "--database", url, "--workflows"])
        .arg(workflows)
        .args(["--worker", worker, "--batch", "200", "--poll-ms", "50"])
        .args(args)
        .env(
            "PROCEDO_LOG",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into()),
        )
        .env_remove("PROCEDO_SMTP_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("avvio di procedo scheduler run")
}

/// Sends SIGTERM and waits for a clean exit.
pub fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success(), "kill -TERM non riuscito");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("stato del figlio") {
            assert!(
                status.success(),
                "procedo scheduler run è uscito con {status}"
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("procedo scheduler run non si è fermato entro 30 s da SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `count` every 20 ms until it reaches `target`; panics after `timeout`.
pub async fn wait_for(store: &Store, status: TimerStatus, target: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let n = store.count_timers(status).await.expect("count");
        if n >= target {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "{n} timer {status} dopo {timeout:?}, attesi {target}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every instance of the procedure has exactly one `scade` step in its history, and there are
/// `count` of them: each timer fired exactly once. Returns how many each worker fired.
pub async fn assert_each_fired_once(url: &str, count: usize) -> Vec<(String, i64)> {
    let db = Database::connect(url).await.expect("connessione");
    let backend = db.get_database_backend();
    let query = |sql: &str| Statement::from_string(backend, sql.to_string());
    let total = db
        .query_one_raw(query(
            "SELECT COUNT(*) AS n FROM history WHERE event = 'scade'",
        ))
        .await
        .expect("conteggio")
        .expect("una riga")
        .try_get::<i64>("", "n")
        .expect("n");
    assert_eq!(total, count as i64, "transizioni 'scade' nella storia");
    let twice = db
        .query_all_raw(query("SELECT instance_id FROM history WHERE event = 'scade' GROUP BY instance_id HAVING COUNT(*) <> 1"))
        .await
        .expect("doppioni");
    assert!(
        twice.is_empty(),
        "{} istanze con più di una transizione 'scade'",
        twice.len()
    );
    let waiting = db
        .query_one_raw(query(
            "SELECT COUNT(*) AS n FROM instances WHERE state <> 'scaduta'",
        ))
        .await
        .expect("conteggio")
        .expect("una riga")
        .try_get::<i64>("", "n")
        .expect("n");
    assert_eq!(waiting, 0, "istanze non scadute");
    let by_worker = db
        .query_all_raw(query("SELECT claimed_by, COUNT(*) AS n FROM timers WHERE status = 'done' GROUP BY claimed_by ORDER BY claimed_by"))
        .await
        .expect("per processo")
        .into_iter()
        .map(|row| (row.try_get::<Option<String>>("", "claimed_by").ok().flatten().unwrap_or_default(), row.try_get::<i64>("", "n").unwrap_or(0)))
        .collect();
    db.close().await.expect("chiusura");
    by_worker
}
