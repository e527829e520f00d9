//! Throughput of the term calculator: a few million mixed terms on one thread, printed as
//! "terms per second: N". Run with `cargo bench --bench terms`.

use chrono::{Datelike, Days, NaiveDate};
use procedo::terms::{self, Calendar, Closure, Rule, RuleSpec, Suspension};
use std::hint::black_box;
use std::time::Instant;

const TERMS: usize = 3_000_000;
/// Days from 1 January 2026 to 31 December 2030.
const START_SPAN: u64 = 1_826;

fn main() {
    let rules = rules();
    let calendar = milano_calendar();
    let first_day = NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date");
    let starts: Vec<NaiveDate> = (0..START_SPAN)
        .map(|offset| first_day + Days::new(offset))
        .collect();
    let suspension = [Suspension {
        from: NaiveDate::from_ymd_opt(2027, 1, 11).expect("valid date"),
        to: NaiveDate::from_ymd_opt(2027, 1, 20).expect("valid date"),
    }];

    let run = |count: usize| {
        let mut checksum = 0_i64;
        for index in 0..count {
            let rule = &rules[index % rules.len()];
            // A stride coprime with the span visits every start in a scattered order.
            let start = starts[(index * 7_919) % starts.len()];
            let suspensions: &[Suspension] = if index % 16 == 0 { &suspension } else { &[] };
            let term = terms::compute(
                black_box(rule),
                black_box(start),
                black_box(&calendar),
                black_box(suspensions),
            )
            .expect("every benchmark term is computable");
            checksum += i64::from(term.expiry.num_days_from_ce()) + term.trace.len() as i64;
            black_box(&term);
        }
        checksum
    };

    black_box(run(TERMS / 20));
    let began = Instant::now();
    let checksum = run(TERMS);
    let elapsed = began.elapsed();
    black_box(checksum);
    let per_second = TERMS as f64 / elapsed.as_secs_f64();
    println!(
        "{TERMS} mixed terms (days, backward, free, months, years, windows; 2026-2030) in {:.3} s",
        elapsed.as_secs_f64()
    );
    println!("terms per second: {per_second:.0}");
}

fn rules() -> Vec<Rule> {
    let days = |count| RuleSpec {
        days: Some(count),
        ..RuleSpec::default()
    };
    let specs = [
        days(30),
        RuleSpec {
            at: Some("12:00".into()),
            ..days(10)
        },
        RuleSpec {
            saturday_shift: true,
            closures_shift: true,
            ..days(15)
        },
        RuleSpec {
            backward: true,
            ..days(5)
        },
        RuleSpec {
            backward: true,
            free: true,
            ..days(10)
        },
        RuleSpec {
            free: true,
            ..days(20)
        },
        RuleSpec {
            months: Some(2),
            ..RuleSpec::default()
        },
        RuleSpec {
            years: Some(1),
            ..RuleSpec::default()
        },
        RuleSpec {
            window: Some(15),
            ..RuleSpec::default()
        },
        RuleSpec {
            window: Some(30),
            at: Some("02:30".into()),
            ..RuleSpec::default()
        },
    ];
    specs
        .into_iter()
        .map(|spec| Rule::new(spec).expect("valid benchmark rule"))
        .collect()
}

fn milano_calendar() -> Calendar {
    let mut closures = Vec::new();
    for year in 2026..=2031 {
        for (month, day, reason) in [
            (12, 7, "Sant'Ambrogio"),
            (12, 24, "Vigilia di Natale"),
            (12, 31, "San Silvestro"),
            (8, 14, "chiusura estiva"),
        ] {
            let date = NaiveDate::from_ymd_opt(year, month, day).expect("valid date");
            closures.push(Closure {
                date,
                reason: reason.into(),
            });
        }
    }
    Calendar {
        comune: Some("Milano".into()),
        closures,
    }
}
