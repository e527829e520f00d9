//! Throughput of the PDF/A copy of an act: the sample verbale of an Assemblea rendered by its
//! template and written as PDF/A-1b, N times (the first render compresses the embedded fonts
//! once per process; it is timed apart).
//!
//! `cargo bench --bench pdfa` (N = `PROCEDO_BENCH_DOCUMENTS`, default 500). Prints documents
//! per second and the size of one.

use std::time::Instant;

use chrono::{TimeZone, Utc};
use procedo::notify::pdfa::{Meta, render};
use procedo::notify::{Templates, sample};

fn main() {
    let count: usize = std::env::var("PROCEDO_BENCH_DOCUMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let templates = Templates::builtin().unwrap_or_else(|_| panic!("built-in templates"));
    let context = sample::context("verbale_seduta").unwrap_or_else(|| panic!("sample"));
    let text = templates
        .render("verbale_seduta", &context)
        .unwrap_or_else(|e| panic!("{e}"))
        .text;
    let created = Utc
        .with_ymd_and_hms(2027, 1, 21, 18, 0, 0)
        .single()
        .unwrap_or_else(|| panic!("date"));
    let meta = Meta {
        title: "Verbale della seduta",
        author: "Ambito territoriale",
        subject: "Assemblea dei Sindaci",
        created,
    };
    let first = Instant::now();
    let size = render(&meta, &text).len();
    let first = first.elapsed();
    let start = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..count {
        bytes += render(&meta, &text).len();
    }
    let elapsed = start.elapsed();
    println!(
        "first document (fonts compressed once): {:.1} ms",
        first.as_secs_f64() * 1e3
    );
    println!(
        "documents per second: {:.0} ({count} in {:.2} s, {} bytes each, {:.1} MiB written)",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        size,
        bytes as f64 / (1024.0 * 1024.0)
    );
}
