//! Throughput of the notification path: render N convocations (text, HTML, invite) and submit
//! them over real SMTP to an in-process receiver (mailin-embedded) on loopback.
//!
//! `cargo bench --bench notify` (N = `PROCEDO_BENCH_MESSAGES`, default 2000; concurrency =
//! `PROCEDO_BENCH_CONCURRENCY`, default 8). Prints `messages per second: X`.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use mailin_embedded::{Handler, Response, Server, response};
use procedo::notify::{
    Method, OutgoingEmail, SmtpSettings, Templates, Transport, invite_ics, message_id_for, sample,
};
use tokio::sync::Semaphore;

/// Counts accepted messages and their bytes; keeps nothing else.
#[derive(Clone)]
struct Counting {
    messages: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

impl Handler for Counting {
    fn data(&mut self, buffer: &[u8]) -> std::io::Result<()> {
        self.bytes.fetch_add(buffer.len(), Ordering::Relaxed);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.messages.fetch_add(1, Ordering::Relaxed);
        response::OK
    }
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|value| *value > 0)
        .unwrap_or(default)
}

fn compose(templates: &Templates, index: usize) -> Result<OutgoingEmail, procedo::notify::Error> {
    let name = format!("Sindaco {index}");
    let email = format!("sindaco{index}@comune{}.example.it", index % 40);
    let context = sample::context_for("convocazione", &name, &email).unwrap_or_default();
    let rendered = templates.render("convocazione", &context)?;
    let dtstamp = Utc
        .with_ymd_and_hms(2026, 12, 1, 9, 0, 0)
        .single()
        .unwrap_or_default();
    let meeting = sample::meeting(vec![(name.clone(), email.clone())], dtstamp);
    Ok(OutgoingEmail::new(
        message_id_for(&format!("bench-{index}"), "procedo.local"),
        "Ufficio di Piano <ufficiodipiano@borgofiorito.example.it>",
        format!("{name} <{email}>"),
        rendered,
    )
    .with_invite(Method::Request, invite_ics(&meeting, Method::Request)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total = setting("PROCEDO_BENCH_MESSAGES", 2000);
    let concurrency = setting("PROCEDO_BENCH_CONCURRENCY", 8);

    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let counting = Counting {
        messages: Arc::new(AtomicUsize::new(0)),
        bytes: Arc::new(AtomicUsize::new(0)),
    };
    let mut server = Server::new(counting.clone());
    server
        .with_name("ricevente.bench")
        .with_num_threads(u32::try_from(concurrency * 2 + 4)?)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        if let Err(error) = server.serve() {
            eprintln!("ricevente SMTP fermo: {error}");
        }
    });

    let templates = Arc::new(
        Templates::builtin()
            .map_err(|diagnostics| format!("modelli non validi: {diagnostics:?}"))?,
    );

    // Rendering alone, for reference.
    let render_started = Instant::now();
    for index in 0..total {
        compose(&templates, index)?;
    }
    let render_elapsed = render_started.elapsed();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (elapsed, failures) = runtime.block_on(async {
        let transport = Transport::smtp(&SmtpSettings {
            rate: None,
            url: format!("smtp://127.0.0.1:{port}?tls=none"),
            from: "Ufficio di Piano <ufficiodipiano@borgofiorito.example.it>".to_owned(),
            timeout: Some(Duration::from_secs(30)),
        })?;
        let permits = Arc::new(Semaphore::new(concurrency));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..total {
            let permit = Arc::clone(&permits).acquire_owned().await?;
            let transport = transport.clone();
            let templates = Arc::clone(&templates);
            tasks.spawn(async move {
                let _permit = permit;
                match compose(&templates, index) {
                    Ok(email) => transport.send(&email).await.is_ok(),
                    Err(_) => false,
                }
            });
        }
        let mut failures = 0usize;
        while let Some(outcome) = tasks.join_next().await {
            if !matches!(outcome, Ok(true)) {
                failures += 1;
            }
        }
        Ok::<_, Box<dyn std::error::Error>>((started.elapsed(), failures))
    })?;

    let received = counting.messages.load(Ordering::Relaxed);
    let bytes = counting.bytes.load(Ordering::Relaxed);
    println!(
        "messages: {total}, concurrency: {concurrency}, failures: {failures}, received: {received}"
    );
    println!(
        "render only (text + html + invite): {:.0} per second",
        total as f64 / render_elapsed.as_secs_f64()
    );
    println!("average message size: {} bytes", bytes / received.max(1));
    println!(
        "messages per second: {:.0}",
        total as f64 / elapsed.as_secs_f64()
    );
    if failures > 0 || received != total {
        return Err(format!("{failures} failures, {received} of {total} received").into());
    }
    Ok(())
}
