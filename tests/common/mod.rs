//! Shared helpers for the integration tests: a fresh database per test (SQLite in a temporary
//! directory, plus PostgreSQL when `PROCEDO_TEST_DATABASE_URL` is set), instants, and logs
//! when `TEST_LOG` is set.
//!
//! Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::Once;
use std::time::Duration;

use chrono::{DateTime, Utc};
use procedo::store::Store;
use sea_orm::{ConnectOptions, ConnectionTrait, Database};

/// The variable naming a PostgreSQL server to test against, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`. Each test creates (and drops) its own database
/// there. When it is set and the server is unreachable, tests fail: they never skip silently.
pub const POSTGRES_URL_VAR: &str = "PROCEDO_TEST_DATABASE_URL";

/// Keeps a scratch database alive; dropping it removes the database.
pub struct Scratch {
    /// The URL to reconnect with (e.g. to test a reopen).
    pub url: String,
    dir: Option<tempfile::TempDir>,
    postgres: Option<PostgresDatabase>,
}

/// A database created on the PostgreSQL test server.
struct PostgresDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on itself: drop the database
        // from a thread with its own runtime. WITH (FORCE) ends the test's pool connections.
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let db = Database::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                db.execute_unprepared(&sql)
                    .await
                    .map_err(|e| e.to_string())?;
                db.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("database di test {} non eliminato: {e}", self.name),
            Err(_) => eprintln!(
                "database di test {} non eliminato: thread fallito",
                self.name
            ),
        }
    }
}

/// Turns on logs (`TEST_LOG=debug`, or any `RUST_LOG`-style filter) once per test binary.
pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

/// A fresh, migrated SQLite store in a temporary directory.
pub async fn scratch_store() -> (Store, Scratch) {
    let scratch = empty_sqlite();
    let store = Store::connect(&scratch.url)
        .await
        .expect("apertura di SQLite");
    (store, scratch)
}

/// A new SQLite file, not migrated yet.
pub fn empty_sqlite() -> Scratch {
    init_tracing();
    let dir = tempfile::tempdir().expect("cartella temporanea");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("procedo.db").display()
    );
    Scratch {
        url,
        dir: Some(dir),
        postgres: None,
    }
}

/// Every backend, each with an empty database, not migrated yet.
pub async fn empty_databases() -> Vec<(String, Scratch)> {
    let mut out = vec![("sqlite".to_string(), empty_sqlite())];
    if let Some(admin_url) = postgres_url() {
        out.push(("postgres".to_string(), empty_postgres(&admin_url).await));
    }
    out
}

/// A fresh, migrated PostgreSQL store in a new database on the server named by
/// `PROCEDO_TEST_DATABASE_URL`. Panics if the server is unreachable.
pub async fn scratch_postgres(admin_url: &str) -> (Store, Scratch) {
    let scratch = empty_postgres(admin_url).await;
    let store = Store::connect(&scratch.url)
        .await
        .unwrap_or_else(|e| panic!("apertura di {}: {e}", scratch.url));
    (store, scratch)
}

/// A new database on the PostgreSQL test server, not migrated yet.
pub async fn empty_postgres(admin_url: &str) -> Scratch {
    init_tracing();
    let mut options = ConnectOptions::new(admin_url);
    options
        .acquire_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(5));
    let admin = Database::connect(options).await.unwrap_or_else(|e| {
        panic!(
            "{POSTGRES_URL_VAR}={admin_url} è impostata ma PostgreSQL non risponde: {e}\n\
             (avviarlo con `pg_ctlcluster 15 main start`, o togliere la variabile)"
        )
    });
    let name = format!("procedo_t_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} su {admin_url}: {e}"));
    admin
        .close()
        .await
        .expect("chiusura della connessione amministrativa");
    let postgres = PostgresDatabase {
        admin_url: admin_url.to_string(),
        name: name.clone(),
    };
    let url = with_database(admin_url, &name);
    Scratch {
        url,
        dir: None,
        postgres: Some(postgres),
    }
}

/// Every backend to run a test on, each with a fresh store: SQLite always, PostgreSQL too
/// when `PROCEDO_TEST_DATABASE_URL` is set.
pub async fn scratch_stores() -> Vec<(String, Store, Scratch)> {
    let mut out = Vec::new();
    let (store, scratch) = scratch_store().await;
    out.push(("sqlite".to_string(), store, scratch));
    if let Some(admin_url) = postgres_url() {
        let (store, scratch) = scratch_postgres(&admin_url).await;
        out.push(("postgres".to_string(), store, scratch));
    }
    out
}

/// The PostgreSQL test server, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// `postgres://user@host:port/db?opts` with another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// An instant from RFC 3339 text (a fixture: panics on a typo).
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("istante di test '{text}' non valido: {e}"))
        .with_timezone(&Utc)
}

/// The shipped workflows, which must validate.
pub fn shipped_catalog() -> procedo::catalog::Catalog {
    let (catalog, diags) = procedo::catalog::load(&[std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/workflows"
    ))]);
    assert!(
        diags.is_empty(),
        "shipped workflows must validate: {diags:?}"
    );
    catalog.expect("catalog")
}

/// An ETS applies through the service, as the API does.
pub async fn apply(service: &procedo::service::Service, avviso: &str, ets: &str) -> String {
    let store = service.store();
    if store.organisation(ets).await.expect("read").is_none() {
        store
            .add_organisation(&procedo::store::NewOrganisation {
                id: ets.into(),
                name: format!("Ente {ets}"),
                kind: procedo::store::OrganisationKind::Ets,
                codice_fiscale: None,
                runts: None,
                pec: None,
                at: service.now(),
            })
            .await
            .expect("organisation");
        store
            .add_person(&procedo::store::NewPerson {
                id: format!("referente-{ets}"),
                name: format!("Referente di {ets}"),
                email: format!("referente@{ets}.example.org"),
                organisation_id: ets.into(),
                roles: vec!["ets".into()],
                digest: "immediato".into(),
                at: service.now(),
            })
            .await
            .expect("person");
    }
    let id = uuid::Uuid::new_v4().to_string();
    let new = procedo::store::NewSubmission {
        id: id.clone(),
        instance_id: avviso.into(),
        organisation_id: ets.into(),
        person_id: format!("referente-{ets}"),
        note: None,
        documents: Vec::new(),
        at: service.now(),
    };
    let actor = procedo::engine::Actor {
        id: new.person_id.clone(),
        role: "ets".into(),
    };
    match service
        .submit(&new, &procedo::service::Group::default(), &actor)
        .await
        .expect("submit")
    {
        procedo::store::Submitted::Created(row) => assert_eq!(row.id, id),
        other => panic!("not created: {other:?}"),
    }
    id
}
