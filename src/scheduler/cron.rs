//! Recurring jobs: a cron expression (the `cron` crate's syntax, seconds first) read on the
//! Europe/Rome wall clock, and the job it runs. A job runs once per due instant across
//! replicas and restarts: the scheduler computes the latest due instant at or before `now`,
//! claims that run in the store (`claim_cron`), and records it with its outbox row in one
//! transaction (`complete_cron`). A job missed N times (procedo was down) therefore runs once,
//! for the latest instant, and says how many runs it stands for.
//!
//! # Daylight saving time
//!
//! Schedules are evaluated on the civil (wall-clock) time of Europe/Rome, and every civil time
//! a schedule names runs exactly once, mapped to an instant as `engine::local_instant` maps the
//! deadlines of the procedures:
//!
//! - **March** (last Sunday, 02:00 → 03:00): a job at 02:30 names a time that does not exist.
//!   The `cron` crate alone would *skip* it (no run that day); procedo runs it at 03:30 CEST,
//!   the instant 02:30 would have been without the change (01:30 UTC). A daily job still runs
//!   daily.
//! - **October** (last Sunday, 03:00 → 02:00): 02:30 happens twice. The `cron` crate alone
//!   would run the job *twice* (00:30 and 01:30 UTC); procedo runs it once, at the first
//!   02:30 (CEST, 00:30 UTC).
//!
//! Both behaviours of the crate are pinned by the tests below, so an upgrade that changes them
//! shows up. A job that runs every hour follows the same rule: in October the repeated hour
//! runs once, in March the missing hour runs at the start of the next.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Offset, SubsecRound, TimeZone, Utc};
use serde_json::json;

use super::Error;
use crate::definition::Procedure;
use crate::engine::{Effect, NotificationPlan, local_instant};
use crate::terms::ROME;

/// What a recurring job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// Queues the daily digest (an outbox row of kind `digest`); the notification side
    /// renders it per recipient with the `riepilogo_giornaliero` template.
    Digest,
    /// Queues the production of the registro giornaliero of every day not produced yet, up
    /// to the civil day that just ended, and its hand-over to conservation (an outbox row of
    /// kind `protocol_register`).
    ProtocolRegister,
    /// Queues the reconciliation of the emergency register with the ente's protocol system
    /// (an outbox row of kind `protocol_reconcile`).
    ProtocolReconcile,
    /// Queues the referti di pubblicazione of the acts whose albo window has ended (an outbox
    /// row of kind `albo_referto`).
    AlboReferto,
    /// Queues the hand-over to the ente capofila's albo of every act it does not have in its
    /// current version (an outbox row of kind `albo_capofila`).
    AlboCapofila,
}

/// The recurring jobs every scheduling process runs unless configured otherwise: the daily
/// digest at 08:00, the daily protocol register at 00:05 and the reconciliation of the
/// emergency register every ten minutes, the referti di pubblicazione at 00:10 and the
/// hand-over of acts to the capofila's albo every ten minutes (Europe/Rome).
pub fn default_jobs() -> Vec<CronJob> {
    [
        ("riepilogo_giornaliero", "0 0 8 * * *", "digest"),
        ("registro_protocollo", "0 5 0 * * *", "protocol_register"),
        (
            "riconciliazione_protocollo",
            "0 */10 * * * *",
            "protocol_reconcile",
        ),
        ("referto_albo", "0 10 0 * * *", "albo_referto"),
        ("consegna_albo_capofila", "0 */10 * * * *", "albo_capofila"),
    ]
    .iter()
    .filter_map(|(id, schedule, job)| CronJob::new(id, schedule, job).ok())
    .collect()
}

impl JobKind {
    /// Every job a schedule may name.
    pub const ALL: [JobKind; 5] = [
        JobKind::Digest,
        JobKind::ProtocolRegister,
        JobKind::ProtocolReconcile,
        JobKind::AlboReferto,
        JobKind::AlboCapofila,
    ];

    /// The name in definitions and configuration, and the kind of the outbox row it queues.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Digest => "digest",
            JobKind::ProtocolRegister => "protocol_register",
            JobKind::ProtocolReconcile => "protocol_reconcile",
            JobKind::AlboReferto => "albo_referto",
            JobKind::AlboCapofila => "albo_capofila",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s).ok_or(())
    }
}

/// A validated recurring job.
#[derive(Debug, Clone)]
pub struct CronJob {
    /// Unique name; the key of its row in `cron_runs`. Jobs of a definition are named
    /// `<procedure>.<id>`, so that a new version of the procedure keeps the run history.
    pub id: String,
    /// When it runs, on the Europe/Rome wall clock.
    pub schedule: cron::Schedule,
    /// What it does.
    pub job: JobKind,
    /// The procedure that declares it (`None` for configuration jobs).
    pub procedure: Option<String>,
}

impl CronJob {
    /// Checks a job as written in the configuration: the expression must parse and the job
    /// must be one procedo knows.
    pub fn new(id: &str, schedule: &str, job: &str) -> Result<CronJob, Error> {
        let parsed = cron::Schedule::from_str(schedule).map_err(|e| Error::InvalidSchedule {
            id: id.to_string(),
            schedule: schedule.to_string(),
            message: e.to_string(),
        })?;
        let kind = job.parse::<JobKind>().map_err(|()| Error::UnknownJob {
            id: id.to_string(),
            job: job.to_string(),
        })?;
        Ok(CronJob {
            id: id.to_string(),
            schedule: parsed,
            job: kind,
            procedure: None,
        })
    }

    /// The jobs a procedure declares in its `cron:` section.
    pub fn from_definition(procedure: &Procedure) -> Result<Vec<CronJob>, Error> {
        procedure
            .cron
            .iter()
            .map(|j| {
                let id = format!("{}.{}", procedure.id, j.id);
                let mut job = CronJob::new(&id, &j.schedule, &j.job)?;
                job.procedure = Some(procedure.id.clone());
                Ok(job)
            })
            .collect()
    }

    /// The outbox row this job queues for the run due at `due`, which stands for `runs` due
    /// instants (more than one after a downtime).
    pub fn effect(&self, due: DateTime<Utc>, runs: usize) -> Effect {
        let day = due.with_timezone(&ROME).date_naive();
        match self.job {
            JobKind::Digest => Effect::Notify(NotificationPlan {
                role: DIGEST_RECIPIENTS.to_string(),
                template: DIGEST_TEMPLATE.to_string(),
                urgent: false,
                context: json!({
                    "data_riepilogo": day.format("%Y-%m-%d").to_string(),
                    "lavoro": self.id,
                    "procedura": self.procedure,
                    "previsto_alle": due.to_rfc3339(),
                    "esecuzioni": runs,
                }),
                invite: None,
                protocol: None,
                organisations: None,
                public: false,
                participant: None,
                channel: Default::default(),
                consegna: None,
            }),
            JobKind::ProtocolReconcile | JobKind::AlboReferto | JobKind::AlboCapofila => {
                Effect::RegisterProtocol {
                    direction: "interno".to_string(),
                    subject: match self.job {
                        JobKind::AlboReferto => "Referti di pubblicazione dell'albo",
                        JobKind::AlboCapofila => "Consegna degli atti all'albo dell'ente capofila",
                        _ => "Riconciliazione del registro di emergenza",
                    }
                    .to_string(),
                    context: json!({
                        "lavoro": self.id,
                        "previsto_alle": due.to_rfc3339(),
                    }),
                    register: None,
                    to: None,
                    document: None,
                    classification: None,
                    organisations: None,
                    participant: None,
                }
            }
            JobKind::ProtocolRegister => {
                let register_day = day.pred_opt().unwrap_or(day);
                Effect::RegisterProtocol {
                    direction: "interno".to_string(),
                    subject: "Registro giornaliero di protocollo del {{data_registro}}".to_string(),
                    context: json!({
                        "data_registro": register_day.format("%Y-%m-%d").to_string(),
                        "lavoro": self.id,
                        "procedura": self.procedure,
                        "previsto_alle": due.to_rfc3339(),
                        "esecuzioni": runs,
                    }),
                    register: None,
                    to: None,
                    document: None,
                    classification: None,
                    organisations: None,
                    participant: None,
                }
            }
        }
    }
}

/// The role of a digest row: everyone who chose the daily digest, resolved on delivery.
pub const DIGEST_RECIPIENTS: &str = "*";
/// The message kind of the digest.
pub const DIGEST_TEMPLATE: &str = "riepilogo_giornaliero";

/// How far apart the two instants a civil time can stand for may be (the DST shift).
const SHIFT: Duration = Duration::hours(1);

/// The instant a civil time of Europe/Rome stands for (see the module docs for DST).
fn instant_of(wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    local_instant(wall.date(), wall.time())
}

/// The civil time of Europe/Rome at an instant.
fn wall_of(at: DateTime<Utc>) -> NaiveDateTime {
    at.with_timezone(&ROME).naive_local()
}

/// True if Europe/Rome changes offset within three hours of `at`: only then can two civil
/// times map to instants out of order.
fn near_transition(at: DateTime<Utc>) -> bool {
    let offset = |t: DateTime<Utc>| ROME.offset_from_utc_datetime(&t.naive_utc()).fix();
    offset(at - Duration::hours(3)) != offset(at + Duration::hours(3))
}

/// The civil times of a schedule after `wall` (exclusive), counting down (`rev`) or up.
fn civil_times(schedule: &cron::Schedule, wall: NaiveDateTime) -> cron::ScheduleIterator<'_, Utc> {
    // The wall clock as if it were UTC: no gaps and no repeats, so the crate names every civil
    // time once; the mapping to instants happens in `instant_of`.
    schedule.after(&Utc.from_utc_datetime(&wall))
}

/// The latest instant at or before `now` at which the schedule is due, or `None` if it never
/// was.
pub fn latest_due(schedule: &cron::Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let near = near_transition(now);
    // `after` is exclusive: start one second past `now`, so a job due exactly now counts.
    // Near a transition a civil time up to an hour later may stand for an instant before
    // `now` (a skipped time moves forward), so start an hour later and compare instants.
    let start = wall_of(now).trunc_subsecs(0)
        + Duration::seconds(1)
        + if near { SHIFT } else { Duration::zero() };
    let mut best: Option<DateTime<Utc>> = None;
    let mut first_wall: Option<NaiveDateTime> = None;
    for candidate in civil_times(schedule, start).rev() {
        let wall = candidate.naive_utc();
        // Two civil times more than the shift apart map to instants in the same order, so
        // nothing earlier than this can beat the first valid candidate.
        if first_wall.is_some_and(|first| wall < first - SHIFT) {
            break;
        }
        let Some(at) = instant_of(wall) else { continue };
        if at <= now {
            first_wall.get_or_insert(wall);
            if best.is_none_or(|b| at > b) {
                best = Some(at);
            }
            if !near {
                break;
            }
        }
    }
    best
}

/// The first instant after `after` at which the schedule is due.
pub fn next_due(schedule: &cron::Schedule, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut best: Option<DateTime<Utc>> = None;
    let mut first_wall: Option<NaiveDateTime> = None;
    for candidate in civil_times(schedule, wall_of(after) - SHIFT - SHIFT) {
        let wall = candidate.naive_utc();
        if first_wall.is_some_and(|first| wall > first + SHIFT) {
            break;
        }
        let Some(at) = instant_of(wall) else { continue };
        if at > after {
            first_wall.get_or_insert(wall);
            if best.is_none_or(|b| at < b) {
                best = Some(at);
            }
        }
    }
    best
}

/// How many distinct due instants fall in `(after, until]`, counting at most `cap`: how many
/// runs one catch-up run stands for.
pub fn runs_between(
    schedule: &cron::Schedule,
    after: DateTime<Utc>,
    until: DateTime<Utc>,
    cap: usize,
) -> usize {
    let mut seen = std::collections::BTreeSet::new();
    for candidate in civil_times(schedule, wall_of(after) - SHIFT - SHIFT) {
        let wall = candidate.naive_utc();
        if wall > wall_of(until) + SHIFT + SHIFT || seen.len() >= cap {
            break;
        }
        if let Some(at) = instant_of(wall).filter(|at| *at > after && *at <= until) {
            seen.insert(at);
        }
    }
    seen.len()
}

/// The civil day (Europe/Rome) of an instant, for messages.
pub fn civil_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&ROME).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rome(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        match ROME.with_ymd_and_hms(y, m, d, h, min, 0) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                t.with_timezone(&Utc)
            }
            chrono::LocalResult::None => panic!("no such civil time"),
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("valid instant")
    }

    fn schedule(text: &str) -> cron::Schedule {
        cron::Schedule::from_str(text).expect("valid schedule")
    }

    #[test]
    fn the_cron_crate_alone_skips_the_march_night_and_repeats_the_october_one() {
        // What procedo corrects: pinned so that an upgrade of the crate shows up here.
        let at_0230 = schedule("0 30 2 * * *");
        let march: Vec<_> = at_0230
            .after(&rome(2025, 3, 29, 12, 0).with_timezone(&ROME))
            .take(2)
            .map(|t| t.with_timezone(&Utc))
            .collect();
        assert_eq!(
            march,
            vec![utc(2025, 3, 31, 0, 30), utc(2025, 4, 1, 0, 30)],
            "30 March is skipped"
        );
        let october: Vec<_> = at_0230
            .after(&rome(2025, 10, 25, 12, 0).with_timezone(&ROME))
            .take(3)
            .map(|t| t.with_timezone(&Utc))
            .collect();
        assert_eq!(
            october,
            vec![
                utc(2025, 10, 26, 0, 30),
                utc(2025, 10, 26, 1, 30),
                utc(2025, 10, 27, 1, 30)
            ],
            "26 October runs twice"
        );
    }

    #[test]
    fn a_job_at_0230_runs_at_0330_on_the_march_night() {
        let at_0230 = schedule("0 30 2 * * *");
        // 03:30 CEST = 01:30 UTC: the instant 02:30 CET would have been.
        assert_eq!(
            next_due(&at_0230, rome(2025, 3, 29, 12, 0)),
            Some(utc(2025, 3, 29, 1, 30) + Duration::days(1))
        );
        assert_eq!(
            next_due(&at_0230, utc(2025, 3, 30, 1, 30)),
            Some(utc(2025, 3, 31, 0, 30))
        );
        // At 03:10 CEST (01:10 UTC) the March run is not due yet; at 03:30 CEST it is.
        assert_eq!(
            latest_due(&at_0230, utc(2025, 3, 30, 1, 10)),
            Some(utc(2025, 3, 29, 1, 30))
        );
        assert_eq!(
            latest_due(&at_0230, utc(2025, 3, 30, 1, 30)),
            Some(utc(2025, 3, 30, 1, 30))
        );
        assert_eq!(
            runs_between(
                &at_0230,
                utc(2025, 3, 28, 12, 0),
                utc(2025, 4, 1, 12, 0),
                100
            ),
            4
        );
    }

    #[test]
    fn a_job_at_0230_runs_once_at_the_first_0230_on_the_october_night() {
        let at_0230 = schedule("0 30 2 * * *");
        assert_eq!(
            next_due(&at_0230, rome(2025, 10, 25, 12, 0)),
            Some(utc(2025, 10, 26, 0, 30))
        );
        assert_eq!(
            next_due(&at_0230, utc(2025, 10, 26, 0, 30)),
            Some(utc(2025, 10, 27, 1, 30))
        );
        // During the second 02:30 (01:30 UTC) the latest due is still the first one.
        assert_eq!(
            latest_due(&at_0230, utc(2025, 10, 26, 1, 45)),
            Some(utc(2025, 10, 26, 0, 30))
        );
        assert_eq!(
            runs_between(
                &at_0230,
                utc(2025, 10, 24, 12, 0),
                utc(2025, 10, 27, 12, 0),
                100
            ),
            3
        );
    }

    #[test]
    fn the_latest_due_instant_includes_now_and_ignores_the_future() {
        let digest = schedule("0 0 8 * * *");
        let eight = rome(2025, 6, 10, 8, 0);
        assert_eq!(latest_due(&digest, eight), Some(eight));
        assert_eq!(
            latest_due(&digest, eight - Duration::milliseconds(1)),
            Some(eight - Duration::days(1))
        );
        assert_eq!(latest_due(&digest, eight + Duration::hours(5)), Some(eight));
        assert_eq!(next_due(&digest, eight), Some(eight + Duration::days(1)));
        assert_eq!(
            runs_between(&digest, eight - Duration::days(5), eight, 100),
            5
        );
        assert_eq!(
            runs_between(&digest, eight - Duration::days(5), eight, 3),
            3
        );
    }

    #[test]
    fn an_hourly_job_has_one_run_per_civil_hour_across_both_changes() {
        let hourly = schedule("0 0 * * * *");
        // March: 02:00 does not exist and runs at 03:00 CEST together with 03:00: one instant.
        assert_eq!(
            runs_between(
                &hourly,
                rome(2025, 3, 30, 0, 30),
                rome(2025, 3, 30, 4, 30),
                100
            ),
            3
        );
        // October: 02:00 happens twice and runs once.
        assert_eq!(
            runs_between(
                &hourly,
                rome(2025, 10, 26, 0, 30),
                utc(2025, 10, 26, 3, 30),
                100
            ),
            4
        );
        let mut at = utc(2025, 10, 25, 20, 0);
        let mut seen = Vec::new();
        while at < utc(2025, 10, 26, 6, 0) {
            match next_due(&hourly, at) {
                Some(next) => {
                    assert!(next > at);
                    seen.push(next);
                    at = next;
                }
                None => break,
            }
        }
        assert!(seen.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn configuration_jobs_with_an_unknown_kind_or_a_broken_expression_are_refused() {
        assert!(CronJob::new("riepilogo", "0 0 8 * * *", "digest").is_ok());
        assert_eq!(default_jobs().len(), 5, "the default jobs are valid");
        assert!(CronJob::new("registro", "0 5 0 * * *", "protocol_register").is_ok());
        assert!(CronJob::new("referto", "0 10 0 * * *", "albo_referto").is_ok());
        let unknown = CronJob::new("pulizia", "0 0 3 * * *", "vacuum")
            .map(|_| ())
            .unwrap_err();
        assert!(
            unknown.to_string().contains("'vacuum'")
                && unknown.to_string().contains("digest, protocol_register"),
            "{unknown}"
        );
        let broken = CronJob::new("riepilogo", "ogni giorno", "digest")
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(broken, Error::InvalidSchedule { .. }), "{broken}");
    }

    #[test]
    fn the_protocol_register_covers_the_day_that_just_ended() {
        let job = CronJob::new("registro", "0 5 0 * * *", "protocol_register").expect("valid job");
        let Effect::RegisterProtocol { context, .. } = job.effect(rome(2025, 1, 1, 0, 5), 1) else {
            panic!("not a register")
        };
        assert_eq!(context["data_registro"], "2024-12-31");
    }
}
