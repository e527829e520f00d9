//! `procedo bench applications`: how an avviso with many applications behaves. Every
//! application is a participant kept in the instance's data, so each step about one of them
//! rewrites that data and is serialised with the others on the instance's version: this
//! measures the cost as the number of applications grows. It publishes the shipped avviso,
//! registers `--count` ETS (setup, not timed), then times: each ETS applying through
//! `Service::submit` (`--concurrency` at a time, conflicts recomputed by the service), a
//! soccorso requested of every application, and the step that reads all of them
//! (`ammetti`, an aggregate over the participants) after every application is decided.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::catalog;
use crate::clock::ManualClock;
use crate::engine::{Actor, Command};
use crate::service::{Group, Service};
use crate::store::{NewOrganisation, NewPerson, NewSubmission, OrganisationKind, Store};

/// Options of `procedo bench applications`.
#[derive(clap::Args, Debug)]
pub struct ApplicationsArgs {
    /// How many ETS apply.
    #[arg(long, default_value_t = 500)]
    pub count: usize,
    /// Applications sent at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Database URL (default: a scratch SQLite file, removed at the end).
    #[arg(long)]
    pub database: Option<String>,
    /// Folder of workflow files (the shipped avviso).
    #[arg(long, default_value = "workflows")]
    pub workflows: PathBuf,
}

fn percentile(sorted: &[StdDuration], p: f64) -> StdDuration {
    if sorted.is_empty() {
        return StdDuration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(what: &str, mut times: Vec<StdDuration>, total: StdDuration) {
    times.sort();
    let n = times.len();
    println!(
        "{what}: {n} in {:.2} s — {:.0}/s; latenza p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64().max(f64::EPSILON),
        percentile(&times, 50.0).as_secs_f64() * 1000.0,
        percentile(&times, 99.0).as_secs_f64() * 1000.0,
        times.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
}

fn at(text: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc))
}

/// Runs the benchmark.
pub async fn applications(args: ApplicationsArgs) -> anyhow::Result<()> {
    if args.count == 0 || args.concurrency == 0 {
        bail!("--count e --concurrency devono essere almeno 1");
    }
    let dir = std::env::temp_dir().join(format!(
        "procedo-bench-domande-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creazione di {}", dir.display()))?;
    let result = run(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(args: &ApplicationsArgs, dir: &std::path::Path) -> anyhow::Result<()> {
    let url = match &args.database {
        Some(url) => url.clone(),
        None => format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
    };
    let store = Store::connect(&url)
        .await
        .with_context(|| format!("apertura del database {}", crate::cli::db::redact(&url)))?;
    let clock = ManualClock::new(at("2026-11-26T09:00:00+01:00")?);
    let service = Service::new(store.clone(), Arc::new(clock.clone()));
    let (catalog, diags) = catalog::load(std::slice::from_ref(&args.workflows));
    if !diags.is_empty() {
        bail!("procedure non valide in {}", args.workflows.display());
    }
    service.install(&catalog.context("catalogo")?).await?;
    let rup = Actor {
        id: "bench".into(),
        role: "rup".into(),
    };
    let command = |event: &str, payload: Value, participant: Option<String>| Command {
        event: event.into(),
        actor: rup.clone(),
        payload: payload.as_object().cloned().unwrap_or_default(),
        participant,
    };
    let mut vars = Map::new();
    vars.insert("oggetto".into(), json!("Benchmark"));
    let avviso = service
        .start("avviso_coprogettazione", None, vars, &rup, None)
        .await?
        .instance
        .id;
    service
        .fire(
            &avviso,
            &command(
                "pubblica",
                json!({"data_pubblicazione": "2026-11-27", "atto_criteri": "determina n. 12 del 26/11/2026"}),
                None,
            ),
            None,
        )
        .await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    for i in 0..args.count {
        let org = format!("bench-{run_id}-{i}");
        store
            .add_organisation(&NewOrganisation {
                id: org.clone(),
                name: format!("Ente n. {i}"),
                kind: OrganisationKind::Ets,
                codice_fiscale: None,
                runts: None,
                pec: None,
                at: crate::clock::Clock::now(&clock),
            })
            .await?;
        store
            .add_person(&NewPerson {
                id: org.clone(),
                name: format!("Referente {i}"),
                email: format!("referente{i}@bench.example.org"),
                organisation_id: org,
                roles: vec!["ets".into()],
                digest: "immediato".into(),
                at: crate::clock::Clock::now(&clock),
            })
            .await?;
    }
    clock.set(at("2026-12-10T10:00:00+01:00")?);

    // Applications, `concurrency` at a time.
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(args.count);
    let mut ids = Vec::with_capacity(args.count);
    for chunk in (0..args.count).collect::<Vec<_>>().chunks(args.concurrency) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let service = service.clone();
            let avviso = avviso.clone();
            let org = format!("bench-{run_id}-{i}");
            tasks.push(tokio::spawn(async move {
                let new = NewSubmission {
                    id: crate::store::new_row_id(service.now()),
                    instance_id: avviso,
                    organisation_id: org.clone(),
                    person_id: org.clone(),
                    note: None,
                    documents: Vec::new(),
                    at: service.now(),
                };
                let actor = Actor {
                    id: org,
                    role: "ets".into(),
                };
                let t = Instant::now();
                service
                    .submit(&new, &Group::default(), &actor)
                    .await
                    .map(|_| (new.id, t.elapsed()))
            }));
        }
        for task in tasks {
            let (id, took) = task.await??;
            ids.push(id);
            latencies.push(took);
        }
    }
    report("domande presentate", latencies, started.elapsed());

    clock.set(at("2026-12-28T12:00:01+01:00")?);
    service
        .fire(&avviso, &command("chiudi_domande", json!({}), None), None)
        .await?;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(ids.len());
    for id in &ids {
        let t = Instant::now();
        service
            .fire(
                &avviso,
                &command(
                    "richiedi_soccorso",
                    json!({"documenti_mancanti": ["DURC"]}),
                    Some(id.clone()),
                ),
                None,
            )
            .await?;
        latencies.push(t.elapsed());
    }
    report("soccorsi richiesti", latencies, started.elapsed());
    let size = store
        .instance(&avviso)
        .await?
        .map(|row| serde_json::to_string(&row.data).map_or(0, |s| s.len()))
        .unwrap_or_default();
    println!(
        "dati dell'avviso con {} domande e i loro termini: {:.1} KiB",
        ids.len(),
        size as f64 / 1024.0
    );

    // Every ETS answers, every application is decided, then the aggregate step.
    clock.set(at("2027-01-05T09:00:00+01:00")?);
    for (i, id) in ids.iter().enumerate() {
        let ets = Actor {
            id: format!("bench-{run_id}-{i}"),
            role: "ets".into(),
        };
        service
            .fire(
                &avviso,
                &Command {
                    actor: ets,
                    ..command("integra", json!({}), Some(id.clone()))
                },
                None,
            )
            .await?;
    }
    for id in &ids {
        service
            .fire(
                &avviso,
                &command(
                    "decidi_ammissione",
                    json!({"esito": "ammessa", "requisiti_verificati": true}),
                    Some(id.clone()),
                ),
                None,
            )
            .await?;
    }
    let t = Instant::now();
    service
        .fire(&avviso, &command("ammetti", json!({}), None), None)
        .await?;
    println!(
        "ammetti (all/count su {} domande): {:.1} ms",
        ids.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    Ok(())
}
