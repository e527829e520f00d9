//! Tests of the whole calculator: the worked examples of procedures.md §2.5, holiday chains, DST,
//! windows, free days, suspensions, errors, and properties over 2026–2030.

use super::*;
use chrono::{Datelike, Days, Months, NaiveDate, Timelike, Weekday};
use proptest::prelude::*;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
}

fn days(count: i64) -> RuleSpec {
    RuleSpec {
        days: Some(count),
        ..RuleSpec::default()
    }
}

fn on_calendar(spec: RuleSpec, start: NaiveDate, calendar: &Calendar) -> Term {
    let rule = Rule::new(spec).expect("valid rule");
    compute(&rule, start, calendar, &[]).expect("computable term")
}

fn national(spec: RuleSpec, start: NaiveDate) -> Term {
    on_calendar(spec, start, &Calendar::national())
}

fn suspended(spec: RuleSpec, start: NaiveDate, suspensions: &[(NaiveDate, NaiveDate)]) -> Term {
    let rule = Rule::new(spec).expect("valid rule");
    let suspensions: Vec<Suspension> = suspensions
        .iter()
        .map(|&(from, to)| Suspension { from, to })
        .collect();
    compute(&rule, start, &Calendar::national(), &suspensions).expect("computable term")
}

fn milano() -> Calendar {
    Calendar {
        comune: Some("Milano".into()),
        closures: vec![Closure {
            date: date(2026, 12, 7),
            reason: "Sant'Ambrogio".into(),
        }],
    }
}

// --- §2.5 worked examples -------------------------------------------------------------------

#[test]
fn thirty_days_from_27_november_2026_expire_monday_28_december_with_the_whole_trace() {
    let term = national(days(30), date(2026, 11, 27));
    assert_eq!(term.expiry, date(2026, 12, 28));
    assert_eq!(term.deadline.to_rfc3339(), "2026-12-28T23:59:59+01:00");
    assert_eq!(
        term.trace,
        [
            "dies a quo 27/11/2026 escluso",
            "+30 giorni → 27/12/2026 (domenica)",
            "27/12/2026 domenica: festivo",
            "28/12/2026 lunedì: primo giorno non festivo",
            "scadenza: lunedì 28/12/2026 ore 23:59:59 (Europe/Rome)",
        ]
    );
}

#[test]
fn sant_ambrogio_closes_the_offices_but_moves_the_term_only_when_the_rule_says_so() {
    let legal = on_calendar(days(15), date(2026, 11, 22), &milano());
    assert_eq!(legal.expiry, date(2026, 12, 7));
    assert!(
        legal.trace.contains(
            &"07/12/2026 lunedì: giorno non festivo, nessuno spostamento (la chiusura degli uffici (Sant'Ambrogio) non sposta questo termine)"
                .to_owned()
        ),
        "{:#?}",
        legal.trace
    );

    let with_closures = RuleSpec {
        closures_shift: true,
        ..days(15)
    };
    let shifted = on_calendar(with_closures, date(2026, 11, 22), &milano());
    assert_eq!(shifted.expiry, date(2026, 12, 9));
    assert_eq!(shifted.expiry.weekday(), Weekday::Wed);
    assert_eq!(
        shifted.trace[2..5],
        [
            "07/12/2026 lunedì: chiusura degli uffici (Sant'Ambrogio)",
            "08/12/2026 martedì: Immacolata Concezione",
            "09/12/2026 mercoledì: primo giorno lavorativo",
        ]
    );
}

#[test]
fn ten_days_from_28_december_2026_expire_thursday_7_january() {
    let term = national(days(10), date(2026, 12, 28));
    assert_eq!(term.expiry, date(2027, 1, 7));
    assert_eq!(
        term.trace[2],
        "07/01/2027 giovedì: giorno non festivo, nessuno spostamento"
    );
}

#[test]
fn pasquetta_2027_moves_a_term_to_tuesday_30_march() {
    let term = national(days(10), date(2027, 3, 19));
    assert_eq!(term.expiry, date(2027, 3, 30));
    assert!(
        term.trace
            .contains(&"29/03/2027 lunedì: Lunedì dell'Angelo".to_owned())
    );
}

#[test]
fn the_new_4_october_holiday_moves_a_2027_term_to_tuesday_5_october() {
    let term = national(days(10), date(2027, 9, 24));
    assert_eq!(term.expiry, date(2027, 10, 5));
    assert!(
        term.trace
            .contains(&"04/10/2027 lunedì: San Francesco d'Assisi, patrono d'Italia".to_owned())
    );
}

#[test]
fn a_saturday_expiry_stays_unless_the_procedure_adopts_the_saturday_rule() {
    let term = national(days(30), date(2026, 1, 22));
    assert_eq!(term.expiry, date(2026, 2, 21));
    assert_eq!(
        term.trace[2],
        "21/02/2026 sabato: giorno non festivo, nessuno spostamento (il sabato resta lavorativo)"
    );

    let saturday_rule = RuleSpec {
        saturday_shift: true,
        ..days(30)
    };
    let term = national(saturday_rule, date(2026, 1, 22));
    assert_eq!(term.expiry, date(2026, 2, 23));
    assert_eq!(
        term.trace[2..4],
        [
            "21/02/2026 sabato: non lavorativo per la regola del sabato",
            "22/02/2026 domenica: festivo",
        ]
    );
}

#[test]
fn five_days_before_a_meeting_on_31_december_2026_anticipate_to_thursday_24() {
    let rule = RuleSpec {
        backward: true,
        ..days(5)
    };
    let term = national(rule, date(2026, 12, 31));
    assert_eq!(term.expiry, date(2026, 12, 24));
    assert_eq!(
        term.trace,
        [
            "dies a quo 31/12/2026 escluso (termine a ritroso)",
            "−5 giorni → 26/12/2026 (sabato)",
            "26/12/2026 sabato: Santo Stefano",
            "25/12/2026 venerdì: Natale",
            "24/12/2026 giovedì: primo giorno non festivo precedente",
            "scadenza: giovedì 24/12/2026 ore 23:59:59 (Europe/Rome)",
        ]
    );
}

#[test]
fn five_free_days_before_31_december_2026_exclude_both_ends_then_anticipate() {
    let rule = RuleSpec {
        backward: true,
        free: true,
        ..days(5)
    };
    let term = national(rule, date(2026, 12, 31));
    assert_eq!(term.expiry, date(2026, 12, 24));
    assert_eq!(
        term.trace[1..4],
        [
            "−5 giorni liberi → 26/12/2026 (sabato)",
            "giorni liberi: escluso anche il dies ad quem → 25/12/2026 (venerdì)",
            "25/12/2026 venerdì: Natale",
        ]
    );
}

#[test]
fn two_months_from_31_december_end_on_the_last_day_of_february() {
    let months = |n| RuleSpec {
        months: Some(n),
        ..RuleSpec::default()
    };
    // 28/02/2027 is a Sunday: the calendar gives 28 Feb, the holiday rule 1 March.
    let term = national(months(2), date(2026, 12, 31));
    assert_eq!(
        term.trace[1],
        "+2 mesi secondo il calendario → il 31/02/2027 non esiste: ultimo giorno del mese, 28/02/2027 (domenica)"
    );
    assert_eq!(term.expiry, date(2027, 3, 1));
    // Leap year: 29/02/2028, a Tuesday.
    let term = national(months(2), date(2027, 12, 31));
    assert_eq!(term.expiry, date(2028, 2, 29));
    // 31 January + 1 month.
    assert_eq!(
        national(months(1), date(2026, 1, 31)).expiry,
        date(2026, 2, 28)
    );
    assert_eq!(
        national(months(1), date(2028, 1, 31)).expiry,
        date(2028, 2, 29)
    );
    // A day that exists is kept.
    let term = national(months(1), date(2026, 1, 15));
    assert_eq!(term.expiry, date(2026, 2, 16)); // 15/02/2026 is a Sunday
    assert_eq!(
        term.trace[1],
        "+1 mese secondo il calendario → 15/02/2026 (domenica)"
    );
}

// --- Holidays in action -------------------------------------------------------------------

#[test]
fn easter_mondays_2026_to_2030_move_an_expiry_to_tuesday() {
    for easter_monday in [
        date(2026, 4, 6),
        date(2027, 3, 29),
        date(2028, 4, 17),
        date(2029, 4, 2),
        date(2030, 4, 22),
    ] {
        let start = easter_monday - Days::new(10);
        let term = national(days(10), start);
        assert_eq!(term.expiry, easter_monday + Days::new(1), "{easter_monday}");
        assert_eq!(term.expiry.weekday(), Weekday::Tue);
    }
}

#[test]
fn the_christmas_chain_24_to_27_december_2026() {
    // Forward from Christmas day: 25 Fri, 26 Sat, 27 Sun → Monday 28.
    let term = national(days(10), date(2026, 12, 15));
    assert_eq!(term.expiry, date(2026, 12, 28));
    assert_eq!(
        term.trace[2..6],
        [
            "25/12/2026 venerdì: Natale",
            "26/12/2026 sabato: Santo Stefano",
            "27/12/2026 domenica: festivo",
            "28/12/2026 lunedì: primo giorno non festivo",
        ]
    );
    // Christmas Eve is a working day unless the ente closes and the rule honours closures.
    let closed_eve = Calendar {
        comune: None,
        closures: vec![Closure {
            date: date(2026, 12, 24),
            reason: "chiusura natalizia".into(),
        }],
    };
    assert_eq!(term_on(&closed_eve, false, 9).expiry, date(2026, 12, 24));
    assert_eq!(term_on(&closed_eve, true, 9).expiry, date(2026, 12, 28));
    // Backward from Monday 28: 27, 26, 25 are holidays → 24, or 23 when the eve is closed.
    let backward = |closures_shift| RuleSpec {
        backward: true,
        closures_shift,
        ..days(1)
    };
    assert_eq!(
        on_calendar(backward(false), date(2026, 12, 28), &closed_eve).expiry,
        date(2026, 12, 24)
    );
    assert_eq!(
        on_calendar(backward(true), date(2026, 12, 28), &closed_eve).expiry,
        date(2026, 12, 23)
    );

    fn term_on(calendar: &Calendar, closures_shift: bool, count: i64) -> Term {
        let spec = RuleSpec {
            closures_shift,
            ..days(count)
        };
        on_calendar(spec, date(2026, 12, 15), calendar)
    }
}

#[test]
fn four_october_2025_is_a_working_saturday_2026_a_named_sunday_2027_a_holiday_monday() {
    let term_2025 = national(days(10), date(2025, 9, 24));
    assert_eq!(term_2025.expiry, date(2025, 10, 4));
    let term_2026 = national(days(10), date(2026, 9, 24));
    assert_eq!(term_2026.expiry, date(2026, 10, 5));
    assert_eq!(
        term_2026.trace[2],
        "04/10/2026 domenica: San Francesco d'Assisi, patrono d'Italia"
    );
    let term_2027 = national(days(10), date(2027, 9, 24));
    assert_eq!(term_2027.expiry, date(2027, 10, 5));
}

#[test]
fn twenty_ninth_of_june_moves_a_term_only_in_rome() {
    let start = date(2027, 6, 19); // + 10 = Tuesday 29 June 2027
    assert_eq!(national(days(10), start).expiry, date(2027, 6, 29));
    let roma = Calendar {
        comune: Some("roma".into()),
        closures: vec![],
    };
    let term = on_calendar(days(10), start, &roma);
    assert_eq!(term.expiry, date(2027, 6, 30));
    assert_eq!(
        term.trace[2],
        "29/06/2027 martedì: Santi Pietro e Paolo, patroni di Roma"
    );
}

#[test]
fn leap_year_2028_is_counted_day_by_day_and_by_the_calendar() {
    assert_eq!(
        national(days(10), date(2028, 2, 20)).expiry,
        date(2028, 3, 1)
    );
    let years = |n| RuleSpec {
        years: Some(n),
        ..RuleSpec::default()
    };
    // 29/02/2028 + 1 year → 28/02/2029, a Wednesday.
    let term = national(years(1), date(2028, 2, 29));
    assert_eq!(term.expiry, date(2029, 2, 28));
    assert!(
        term.trace[1].contains("il 29/02/2029 non esiste"),
        "{:?}",
        term.trace
    );
    // 28/02/2027 + 1 year → 28/02/2028, a Monday.
    assert_eq!(
        national(years(1), date(2027, 2, 28)).expiry,
        date(2028, 2, 28)
    );
}

// --- Time of day and DST ------------------------------------------------------------------

fn at(spec: RuleSpec, time: &str) -> RuleSpec {
    RuleSpec {
        at: Some(time.into()),
        ..spec
    }
}

fn window(count: i64) -> RuleSpec {
    RuleSpec {
        window: Some(count),
        ..RuleSpec::default()
    }
}

#[test]
fn a_noon_deadline_keeps_noon_local_across_the_march_2026_dst_change() {
    let before = national(at(days(10), "12:00"), date(2026, 3, 18));
    assert_eq!(before.deadline.to_rfc3339(), "2026-03-28T12:00:00+01:00");
    // 19/03 + 10 = Sunday 29/03, the DST day → Monday 30/03, summer time.
    let after = national(at(days(10), "12:00"), date(2026, 3, 19));
    assert_eq!(after.deadline.to_rfc3339(), "2026-03-30T12:00:00+02:00");
    assert_eq!(
        after.trace.last().map(String::as_str),
        Some("scadenza: lunedì 30/03/2026 ore 12:00 (Europe/Rome)")
    );
    // On the DST day itself (a window does not move).
    let on_the_day = national(at(window(10), "12:00"), date(2026, 3, 20));
    assert_eq!(
        on_the_day.deadline.to_rfc3339(),
        "2026-03-29T12:00:00+02:00"
    );
    let end_of_day = national(window(10), date(2026, 3, 20));
    assert_eq!(
        end_of_day.deadline.to_rfc3339(),
        "2026-03-29T23:59:59+02:00"
    );
}

#[test]
fn a_noon_deadline_keeps_noon_local_across_the_october_2026_dst_change() {
    let before = national(at(days(10), "12:00"), date(2026, 10, 14));
    assert_eq!(before.deadline.to_rfc3339(), "2026-10-24T12:00:00+02:00");
    // 15/10 + 10 = Sunday 25/10, the day summer time ends → Monday 26/10, winter time.
    let after = national(at(days(10), "12:00"), date(2026, 10, 15));
    assert_eq!(after.deadline.to_rfc3339(), "2026-10-26T12:00:00+01:00");
    let on_the_day = national(at(window(10), "12:00"), date(2026, 10, 16));
    assert_eq!(
        on_the_day.deadline.to_rfc3339(),
        "2026-10-25T12:00:00+01:00"
    );
}

#[test]
fn a_nonexistent_local_time_is_read_with_the_offset_before_the_gap() {
    let term = national(at(window(10), "02:30"), date(2026, 3, 20));
    assert_eq!(term.expiry, date(2026, 3, 29));
    assert_eq!(term.deadline.to_rfc3339(), "2026-03-29T03:30:00+02:00");
    assert!(
        term.trace.contains(
            &"le ore 02:30 del 29/03/2026 non esistono (cambio dell'ora): si usa lo scarto precedente al salto, cioè le 03:30+02:00"
                .to_owned()
        ),
        "{:#?}",
        term.trace
    );
    // 02:00 is the first nonexistent minute.
    let term = national(at(window(10), "02:00"), date(2026, 3, 20));
    assert_eq!(term.deadline.to_rfc3339(), "2026-03-29T03:00:00+02:00");
}

#[test]
fn an_ambiguous_local_time_is_the_later_instant() {
    let term = national(at(window(10), "02:30"), date(2026, 10, 16));
    assert_eq!(term.expiry, date(2026, 10, 25));
    assert_eq!(term.deadline.to_rfc3339(), "2026-10-25T02:30:00+01:00");
    assert!(
        term.trace
            .iter()
            .any(|line| line.contains("ricorrono due volte"))
    );
}

#[test]
fn the_deadline_is_the_same_instant_whatever_the_machine_zone() {
    // compute never reads the local zone: the same input always gives this exact instant.
    let term = national(at(days(30), "12:00"), date(2026, 11, 27));
    assert_eq!(term.deadline.to_rfc3339(), "2026-12-28T12:00:00+01:00");
    assert_eq!(term.deadline.timestamp(), 1_798_455_600);
    assert_eq!(
        serde_json::to_value(&term)
            .expect("serializable")
            .get("deadline")
            .and_then(|value| value.as_str()),
        Some("2026-12-28T12:00:00+01:00")
    );
}

#[test]
fn the_pure_core_never_reads_the_local_zone_the_clock_or_files() {
    let sources = [
        include_str!("mod.rs"),
        include_str!("calendar.rs"),
        include_str!("closures.rs"),
        include_str!("compute.rs"),
        include_str!("format.rs"),
        include_str!("rule.rs"),
    ];
    let forbidden = [
        ["Local", "::"].concat(),
        ["::", "now("].concat(),
        ["std::", "fs"].concat(),
        ["std::", "env"].concat(),
        ["tok", "io"].concat(),
        ["sea", "_orm"].concat(),
    ];
    for source in sources {
        assert!(source.starts_with("//!"), "every file opens with //!");
        for word in &forbidden {
            assert!(!source.contains(word.as_str()), "found {word}");
        }
    }
}

// --- Windows and free days ----------------------------------------------------------------

#[test]
fn a_publication_window_counts_its_first_day_and_never_moves() {
    let term = national(window(15), date(2026, 12, 1));
    assert_eq!(term.expiry, date(2026, 12, 15));
    assert_eq!(
        term.trace,
        [
            "primo giorno di pubblicazione 01/12/2026 compreso",
            "15 giorni consecutivi → ultimo giorno 15/12/2026 (martedì)",
            "finestra di pubblicazione: nessuno spostamento per festivi",
            "scadenza: martedì 15/12/2026 ore 23:59:59 (Europe/Rome)",
        ]
    );
    // Ending on Christmas, it still ends on Christmas.
    assert_eq!(
        national(window(15), date(2026, 12, 11)).expiry,
        date(2026, 12, 25)
    );
    assert_eq!(
        national(window(1), date(2026, 12, 25)).expiry,
        date(2026, 12, 25)
    );
}

#[test]
fn free_days_forward_exclude_both_ends_then_shift() {
    let free = RuleSpec {
        free: true,
        ..days(5)
    };
    // 01/12 + 5 = 06/12 last free day, the act on 07/12.
    let term = national(free.clone(), date(2026, 12, 1));
    assert_eq!(term.expiry, date(2026, 12, 7));
    let closing = RuleSpec {
        closures_shift: true,
        ..free
    };
    assert_eq!(term_of(closing), date(2026, 12, 9));

    fn term_of(spec: RuleSpec) -> NaiveDate {
        on_calendar(spec, date(2026, 12, 1), &milano()).expiry
    }
}

// --- Suspensions --------------------------------------------------------------------------

#[test]
fn a_suspension_inside_the_term_extends_it_by_its_length() {
    // 04/01/2027 + 30 = 03/02/2027; 10 suspended days → 13/02/2027 (a Saturday, working).
    let term = suspended(
        days(30),
        date(2027, 1, 4),
        &[(date(2027, 1, 11), date(2027, 1, 20))],
    );
    assert_eq!(term.expiry, date(2027, 2, 13));
    assert_eq!(
        term.trace[2],
        "sospensione dal 11/01/2027 al 20/01/2027 (10 giorni): il termine si allunga di 10 → 13/02/2027 (sabato)"
    );
}

#[test]
fn a_suspension_outside_the_term_changes_nothing() {
    let before = (date(2026, 12, 1), date(2026, 12, 20));
    let after = (date(2027, 3, 1), date(2027, 3, 5));
    let term = suspended(days(30), date(2027, 1, 4), &[before, after]);
    assert_eq!(term.expiry, date(2027, 2, 3));
    assert_eq!(
        term.trace[2],
        "sospensione dal 01/12/2026 al 20/12/2026: fuori dal termine, nessun effetto"
    );
}

#[test]
fn a_suspension_running_at_the_dies_a_quo_counts_only_its_later_days() {
    // Start 04/01, suspended 01/01–10/01: the count starts on 11/01 → 6 days more.
    let term = suspended(
        days(10),
        date(2027, 1, 4),
        &[(date(2027, 1, 1), date(2027, 1, 10))],
    );
    assert_eq!(term.expiry, date(2027, 1, 20));
    assert!(
        term.trace[2].contains("(10 giorni, di cui 6 nel termine)"),
        "{:?}",
        term.trace
    );
}

#[test]
fn a_suspension_reached_only_through_an_earlier_extension_counts_too() {
    // 04/01 + 10 = 14/01; 10–14 Jan → 19/01; then 17–18 Jan → 21/01.
    let term = suspended(
        days(10),
        date(2027, 1, 4),
        &[
            (date(2027, 1, 17), date(2027, 1, 18)),
            (date(2027, 1, 10), date(2027, 1, 14)),
        ],
    );
    assert_eq!(term.expiry, date(2027, 1, 21));
}

#[test]
fn overlapping_suspensions_are_counted_once() {
    let term = suspended(
        days(30),
        date(2027, 1, 4),
        &[
            (date(2027, 1, 11), date(2027, 1, 20)),
            (date(2027, 1, 15), date(2027, 1, 25)),
        ],
    );
    // 11–25 Jan = 15 days: 03/02 + 15 = 18/02/2027 (Thursday).
    assert_eq!(term.expiry, date(2027, 2, 18));
    assert_eq!(
        term.trace[2],
        "sospensioni sovrapposte riunite in 1 intervalli"
    );
}

#[test]
fn a_suspension_moves_a_backward_term_earlier() {
    let rule = RuleSpec {
        backward: true,
        ..days(10)
    };
    // 30/01/2027 − 10 = 20/01; suspended 22–24 Jan → 17/01/2027, a Sunday → Saturday 16.
    let term = suspended(
        rule,
        date(2027, 1, 30),
        &[(date(2027, 1, 22), date(2027, 1, 24))],
    );
    assert_eq!(term.expiry, date(2027, 1, 16));
}

#[test]
fn a_suspension_extends_month_terms_and_windows() {
    let months = RuleSpec {
        months: Some(1),
        ..RuleSpec::default()
    };
    // 15/01/2027 + 1 month = 15/02 (Monday); + 3 days → 18/02 (Thursday).
    let term = suspended(
        months,
        date(2027, 1, 15),
        &[(date(2027, 1, 20), date(2027, 1, 22))],
    );
    assert_eq!(term.expiry, date(2027, 2, 18));
    // A window's first day is counted, so a suspension on it counts.
    let term = suspended(
        window(15),
        date(2026, 12, 1),
        &[(date(2026, 12, 1), date(2026, 12, 2))],
    );
    assert_eq!(term.expiry, date(2026, 12, 17));
}

// --- Errors -------------------------------------------------------------------------------

#[test]
fn a_suspension_ending_before_it_starts_is_refused() {
    let rule = Rule::new(days(10)).expect("valid");
    let bad = Suspension {
        from: date(2027, 1, 10),
        to: date(2027, 1, 5),
    };
    let error = compute(&rule, date(2027, 1, 4), &Calendar::national(), &[bad])
        .expect_err("backwards suspension");
    assert_eq!(
        error.to_string(),
        "sospensione non valida: dal 10/01/2027 al 05/01/2027: termina prima di iniziare"
    );
}

#[test]
fn a_term_beyond_the_calendar_is_an_error_not_a_panic() {
    let calendar = Calendar::national();
    let forward = Rule::new(days(10)).expect("valid");
    let error = compute(&forward, NaiveDate::MAX, &calendar, &[]).expect_err("overflow");
    assert!(matches!(error, Error::OutOfRange(_)), "{error:?}");
    let backward = Rule::new(RuleSpec {
        backward: true,
        ..days(10)
    })
    .expect("valid");
    assert!(compute(&backward, NaiveDate::MIN, &calendar, &[]).is_err());
    let years = Rule::new(RuleSpec {
        years: Some(100),
        ..RuleSpec::default()
    })
    .expect("valid");
    assert!(compute(&years, NaiveDate::MAX - Days::new(400), &calendar, &[]).is_err());
    let window = Rule::new(window(1)).expect("valid");
    assert_eq!(
        compute(&window, NaiveDate::MAX, &calendar, &[])
            .expect("a one-day window ends where it starts")
            .expiry,
        NaiveDate::MAX
    );
}

#[test]
fn a_calendar_closed_for_a_whole_year_is_an_error() {
    let start = date(2027, 1, 1);
    let closures = (0..400)
        .map(|offset| Closure {
            date: start + Days::new(offset),
            reason: "chiuso".into(),
        })
        .collect();
    let calendar = Calendar {
        comune: None,
        closures,
    };
    let rule = Rule::new(RuleSpec {
        closures_shift: true,
        ..days(1)
    })
    .expect("valid");
    let error = compute(&rule, start, &calendar, &[]).expect_err("no working day");
    assert!(error.to_string().contains("nessun giorno utile"), "{error}");
}

// --- Properties ---------------------------------------------------------------------------

fn property_calendar(roma: bool) -> Calendar {
    let mut closures = Vec::new();
    for year in 2026..=2031 {
        for (month, day) in [(12, 7), (12, 24), (12, 31), (8, 14), (6, 24)] {
            closures.push(Closure {
                date: date(year, month, day),
                reason: "chiusura".into(),
            });
        }
    }
    Calendar {
        comune: roma.then(|| "Roma".to_owned()),
        closures,
    }
}

fn is_non_working(day: NaiveDate, rule: &Rule, calendar: &Calendar) -> bool {
    calendar.legal_holiday(day).is_some()
        || (rule.closures_shift() && calendar.closure(day).is_some())
        || (rule.saturday_shift() && day.weekday() == Weekday::Sat)
}

fn start_in_2026_2030() -> impl Strategy<Value = NaiveDate> {
    (0u64..1826).prop_map(|offset| date(2026, 1, 1) + Days::new(offset))
}

fn policy_spec(count: i64, backward: bool, free: bool, saturday: bool, closures: bool) -> RuleSpec {
    RuleSpec {
        backward,
        free,
        saturday_shift: saturday,
        closures_shift: closures,
        ..days(count)
    }
}

proptest! {
    #[test]
    fn a_forward_expiry_is_a_working_day_never_before_start_plus_n(
        start in start_in_2026_2030(),
        count in 1i64..400,
        free: bool,
        saturday: bool,
        closures: bool,
        roma: bool,
    ) {
        let calendar = property_calendar(roma);
        let rule = Rule::new(policy_spec(count, false, free, saturday, closures)).expect("valid");
        let term = compute(&rule, start, &calendar, &[]).expect("computable");
        let minimum = start + Days::new(count.unsigned_abs() + u64::from(free));
        prop_assert!(term.expiry >= minimum);
        prop_assert!(!is_non_working(term.expiry, &rule, &calendar));
        prop_assert!(term.expiry <= minimum + Days::new(8));
        prop_assert_eq!(term.deadline.with_timezone(&ROME).date_naive(), term.expiry);
    }

    #[test]
    fn a_backward_expiry_is_a_working_day_never_after_start_minus_n(
        start in start_in_2026_2030(),
        count in 1i64..400,
        free: bool,
        saturday: bool,
        closures: bool,
        roma: bool,
    ) {
        let calendar = property_calendar(roma);
        let rule = Rule::new(policy_spec(count, true, free, saturday, closures)).expect("valid");
        let term = compute(&rule, start, &calendar, &[]).expect("computable");
        let maximum = start - Days::new(count.unsigned_abs() + u64::from(free));
        prop_assert!(term.expiry <= maximum);
        prop_assert!(!is_non_working(term.expiry, &rule, &calendar));
        prop_assert!(term.expiry + Days::new(8) >= maximum);
    }

    #[test]
    fn a_month_expiry_is_the_calendar_day_or_the_next_working_one(
        start in start_in_2026_2030(),
        months in 1u32..60,
        saturday: bool,
    ) {
        let spec = RuleSpec {
            months: Some(i64::from(months)),
            saturday_shift: saturday,
            ..RuleSpec::default()
        };
        let rule = Rule::new(spec).expect("valid");
        let calendar = Calendar::national();
        let term = compute(&rule, start, &calendar, &[]).expect("computable");
        let raw = start.checked_add_months(Months::new(months)).expect("in range");
        prop_assert!(term.expiry >= raw);
        prop_assert!(term.expiry <= raw + Days::new(4));
        prop_assert!(!is_non_working(term.expiry, &rule, &calendar));
        prop_assert!(raw.day() == start.day() || raw.month() != (raw + Days::new(1)).month());
    }

    #[test]
    fn a_window_always_ends_on_its_last_counted_day(
        start in start_in_2026_2030(),
        count in 1i64..400,
    ) {
        let term = national(window(count), start);
        prop_assert_eq!(term.expiry, start + Days::new(count.unsigned_abs() - 1));
    }

    #[test]
    fn a_deadline_at_a_time_of_day_is_on_the_expiry_day(
        start in start_in_2026_2030(),
        count in 1i64..60,
        hour in 0u32..24,
        minute in 0u32..60,
    ) {
        let time = format!("{hour:02}:{minute:02}");
        let term = national(at(days(count), &time), start);
        let local = term.deadline.with_timezone(&ROME);
        prop_assert_eq!(local.date_naive(), term.expiry);
        // A days term never expires on a Sunday, so never inside a DST gap: the time is kept.
        prop_assert_eq!((local.hour(), local.minute()), (hour, minute));
    }

    #[test]
    fn suspended_days_are_simply_not_counted(
        start in start_in_2026_2030(),
        count in 1u64..120,
        intervals in proptest::collection::vec((0u64..200, 0u64..30), 0..4),
    ) {
        let suspensions: Vec<(NaiveDate, NaiveDate)> = intervals
            .iter()
            .map(|&(offset, length)| {
                let from = start - Days::new(20) + Days::new(offset);
                (from, from + Days::new(length))
            })
            .collect();
        let spec = days(i64::try_from(count).expect("small"));
        let term = suspended(spec, start, &suspensions);
        // Reference: walk day by day, counting only days in no suspension.
        let mut day = start;
        let mut counted = 0;
        while counted < count {
            day = day + Days::new(1);
            if !suspensions.iter().any(|&(from, to)| from <= day && day <= to) {
                counted += 1;
            }
        }
        while Calendar::national().legal_holiday(day).is_some() {
            day = day + Days::new(1);
        }
        prop_assert_eq!(term.expiry, day);
    }
}

#[test]
fn the_sospensione_feriale_leaves_august_out_of_a_processual_term() {
    let feriale = RuleSpec {
        feriale: true,
        ..days(60)
    };
    // 15 July 2027 + 60: 16 days in July, then from 1 September → Thursday 14 October.
    let t = national(feriale.clone(), date(2027, 7, 15));
    assert_eq!(t.expiry, date(2027, 10, 14));
    assert!(
        t.trace.iter().any(|l| l.contains("sospensione feriale")),
        "{:?}",
        t.trace
    );
    // Without it, 13 September.
    assert_eq!(
        national(days(60), date(2027, 7, 15)).expiry,
        date(2027, 9, 13)
    );
    // A dies a quo in August: the count starts on 1 September, which counts (Ad. Plen. 4/2016).
    assert_eq!(
        national(feriale.clone(), date(2027, 8, 10)).expiry,
        date(2027, 10, 30)
    );
    // A term wholly outside August is unchanged.
    assert_eq!(
        national(feriale, date(2027, 1, 15)).expiry,
        national(days(60), date(2027, 1, 15)).expiry
    );
}

#[test]
fn the_sospensione_feriale_is_refused_where_it_does_not_apply() {
    assert!(
        Rule::new(RuleSpec {
            feriale: true,
            months: Some(2),
            ..RuleSpec::default()
        })
        .is_err()
    );
    assert!(
        Rule::new(RuleSpec {
            feriale: true,
            backward: true,
            ..days(5)
        })
        .is_err()
    );
}

#[test]
fn twenty_four_hours_before_a_meeting_are_real_hours_across_the_change_of_time() {
    let rule = Rule::new(RuleSpec {
        hours: Some(24),
        backward: true,
        ..RuleSpec::default()
    })
    .expect("rule");
    assert_eq!(rule.to_string(), "almeno 24 ore prima");
    // Sunday 25/10/2026 the clocks go back at 03:00: 17:00 CET is 16:00 UTC, and 24 hours
    // earlier is 16:00 UTC on Saturday, 18:00 CEST.
    let meeting = chrono::DateTime::parse_from_rfc3339("2026-10-25T17:00:00+01:00")
        .expect("instant")
        .with_timezone(&chrono::Utc);
    let term = compute_hours(&rule, meeting).expect("term");
    assert_eq!(term.deadline.to_rfc3339(), "2026-10-24T18:00:00+02:00");
    assert!(
        term.trace
            .iter()
            .any(|l| l.contains("nessuno spostamento per festivi")),
        "{:#?}",
        term.trace
    );
    // Hours are elapsed time: no time of day, no shifts.
    assert!(
        Rule::new(RuleSpec {
            hours: Some(24),
            at: Some("12:00".into()),
            ..RuleSpec::default()
        })
        .is_err()
    );
    // A calendar term cannot be computed as hours, nor hours from a date.
    let days = Rule::new(RuleSpec {
        days: Some(1),
        ..RuleSpec::default()
    })
    .expect("rule");
    assert!(compute_hours(&days, meeting).is_err());
}
