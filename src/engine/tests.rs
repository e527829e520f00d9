//! Table-driven tests of the interpreter: a procedure, a list of commands, what must happen.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};

use super::*;
use crate::definition::{Environment, Procedure, validate};

const MEETING: &str = r#"
id: seduta
version: 1
title: "Seduta"
roles:
  presidente: "Presidente"
  sindaco: "Sindaci"
variables:
  organo: { type: text, required: true }
  data_seduta: { type: datetime, required: true }
  termine_convocazione:
    type: date
    term: { from: data_seduta, days: 5, backward: true }
  presenti: { type: parties }
  nota: { type: text }
states:
  bozza: { initial: true }
  convocata:
    on_enter:
      - notify: { role: sindaco, template: convocazione, urgent: true }
  chiusa: { final: true }
transitions:
  - event: convoca
    from: bozza
    to: convocata
    roles: [presidente]
    guard:
      - when: "today <= termine_convocazione"
        message: "Preavviso non rispettato."
  - event: sposta
    from: convocata
    to: convocata
    roles: [presidente]
    inputs: { data_seduta: required }
  - event: chiudi
    from: convocata
    to: chiusa
    roles: [presidente]
    inputs: { presenti: required, nota: optional }
    guard:
      - when: "count(presenti) >= 2"
        message: "Quorum non raggiunto."
  - event: scade
    from: convocata
    to: chiusa
    roles: [presidente]
timers:
  - id: seduta
    while: convocata
    at: data_seduta
    fires: scade
    reminders:
      - { days_before: 7, notify: { role: sindaco, template: promemoria_scadenza } }
      - { hours_before: 2, notify: { role: sindaco, template: promemoria_scadenza } }
"#;

fn procedure(yaml: &str) -> Procedure {
    match validate("test.yaml", yaml, &Environment::default()) {
        Ok(p) => p,
        Err(d) => panic!("invalid test procedure: {d:?}"),
    }
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid instant")
}

fn vars(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn cmd(event: &str, role: &str, payload: Value) -> Command {
    Command {
        event: event.into(),
        actor: Actor {
            id: "p1".into(),
            role: role.into(),
        },
        payload: vars(payload),
        participant: None,
    }
}

fn started(p: &Procedure, now: DateTime<Utc>) -> Step {
    let v = vars(
        json!({"organo": "Assemblea dei Sindaci", "data_seduta": "2026-12-31T10:00:00+01:00"}),
    );
    start(
        p,
        "i1",
        &v,
        &Actor {
            id: "p1".into(),
            role: "presidente".into(),
        },
        now,
    )
    .expect("start")
}

/// Started on 1 Dec and convened on 2 Dec 2026 (meeting on 31 Dec at 10:00).
fn convened(p: &Procedure) -> Step {
    let s = started(p, at(2026, 12, 1, 9));
    next(
        p,
        &s,
        cmd("convoca", "presidente", json!({})),
        at(2026, 12, 2, 9),
    )
    .expect("convoca")
}

fn next(p: &Procedure, step: &Step, c: Command, now: DateTime<Utc>) -> Result<Step, Error> {
    fire(
        p,
        &Snapshot {
            id: "i1",
            state: &step.to,
            data: &step.data,
        },
        &c,
        now,
    )
}

#[test]
fn start_computes_the_backward_term_with_its_trace() {
    let p = procedure(MEETING);
    let s = started(&p, at(2026, 12, 1, 9));
    assert_eq!(s.to, "bozza");
    // 31 Dec − 5 = 26 Dec (Santo Stefano) → 25 Dec (Natale) → 24 Dec.
    assert_eq!(
        s.data.variables["termine_convocazione"],
        json!("2026-12-24")
    );
    let record = &s.data.terms["termine_convocazione"];
    assert!(!record.trace.is_empty());
    assert!(
        s.effects.is_empty(),
        "no timers armed in bozza: {:?}",
        s.effects
    );
}

#[test]
fn entering_a_state_arms_its_timers_and_sends_its_notifications() {
    let p = procedure(MEETING);
    let s = convened(&p);
    let kinds: Vec<&str> = s.effects.iter().map(Effect::kind).collect();
    assert_eq!(
        kinds,
        vec![
            "notify",
            "schedule_timer",
            "schedule_timer",
            "schedule_timer"
        ]
    );
    let Effect::ScheduleTimer(deadline) = s
        .effects
        .iter()
        .find(|e| matches!(e, Effect::ScheduleTimer(t) if t.key == "seduta"))
        .expect("deadline timer")
    else {
        unreachable!()
    };
    assert_eq!(deadline.fire_at, at(2026, 12, 31, 9));
    let Effect::ScheduleTimer(week) = &s.effects[2] else {
        panic!("timer expected")
    };
    // 7 civil days before 31 Dec 10:00 Rome.
    assert_eq!(week.key, "seduta#promemoria-1");
    assert_eq!(week.fire_at, at(2026, 12, 24, 9));
}

#[test]
fn moving_the_meeting_replaces_timers_and_skips_reminders_already_past() {
    let p = procedure(MEETING);
    let s = convened(&p);
    // On 30 Dec the meeting moves to 2 Jan 2027 at 10:00: the 7-day reminder (26 Dec) has passed.
    let moved = next(
        &p,
        &s,
        cmd(
            "sposta",
            "presidente",
            json!({"data_seduta": "2027-01-02T10:00:00+01:00"}),
        ),
        at(2026, 12, 30, 9),
    )
    .expect("sposta");
    let mut keys: Vec<(String, &str)> = moved
        .effects
        .iter()
        .map(|e| match e {
            Effect::ScheduleTimer(t) => (t.key.clone(), "schedule"),
            Effect::CancelTimer { key } => (key.clone(), "cancel"),
            other => (other.kind().to_string(), "other"),
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            ("seduta".to_string(), "schedule"),
            ("seduta#promemoria-1".to_string(), "cancel"),
            ("seduta#promemoria-2".to_string(), "schedule"),
        ]
    );
}

#[test]
fn leaving_the_state_cancels_its_timers() {
    let p = procedure(MEETING);
    let s = convened(&p);
    let closed = next(
        &p,
        &s,
        cmd("chiudi", "presidente", json!({"presenti": ["a", "b"]})),
        at(2026, 12, 31, 12),
    )
    .expect("chiudi");
    assert!(closed.is_final);
    let cancelled: Vec<&str> = closed
        .effects
        .iter()
        .filter_map(|e| {
            if let Effect::CancelTimer { key } = e {
                Some(key.as_str())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        cancelled,
        vec!["seduta", "seduta#promemoria-1", "seduta#promemoria-2"]
    );
}

#[test]
fn refusals_are_typed_and_change_nothing() {
    let p = procedure(MEETING);
    let s = started(&p, at(2026, 12, 1, 9));
    let before = s.clone();
    // wrong role
    let e = next(
        &p,
        &s,
        cmd("convoca", "sindaco", json!({})),
        at(2026, 12, 2, 9),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }), "{e}");
    assert!(e.to_string().contains("sindaco"));
    // wrong state
    let e = next(
        &p,
        &s,
        cmd("chiudi", "presidente", json!({"presenti": []})),
        at(2026, 12, 2, 9),
    )
    .unwrap_err();
    assert!(matches!(e, Error::WrongState { .. }), "{e}");
    // unknown event
    let e = next(
        &p,
        &s,
        cmd("vola", "presidente", json!({})),
        at(2026, 12, 2, 9),
    )
    .unwrap_err();
    assert!(matches!(e, Error::UnknownEvent { .. }));
    // guard: too late to convene
    let e = next(
        &p,
        &s,
        cmd("convoca", "presidente", json!({})),
        at(2026, 12, 28, 9),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "Preavviso non rispettato.");
    let s = next(
        &p,
        &s,
        cmd("convoca", "presidente", json!({})),
        at(2026, 12, 2, 9),
    )
    .expect("convoca");
    // missing input
    let e = next(
        &p,
        &s,
        cmd("chiudi", "presidente", json!({})),
        at(2026, 12, 31, 12),
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::MissingInput {
            field: "presenti".into()
        }
    );
    // wrong input type
    let e = next(
        &p,
        &s,
        cmd("chiudi", "presidente", json!({"presenti": 3})),
        at(2026, 12, 31, 12),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }));
    // input the transition does not take
    let e = next(
        &p,
        &s,
        cmd(
            "chiudi",
            "presidente",
            json!({"presenti": ["a","b"], "organo": "x"}),
        ),
        at(2026, 12, 31, 12),
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::UnexpectedInput {
            field: "organo".into()
        }
    );
    // quorum guard
    let e = next(
        &p,
        &s,
        cmd("chiudi", "presidente", json!({"presenti": ["a"]})),
        at(2026, 12, 31, 12),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "Quorum non raggiunto.");
    assert_eq!(before.data, started(&p, at(2026, 12, 1, 9)).data);
}

#[test]
fn the_scheduler_may_fire_only_the_events_of_its_timers() {
    let p = procedure(MEETING);
    let s = convened(&p);
    let snap = Snapshot {
        id: "i1",
        state: &s.to,
        data: &s.data,
    };
    let by_system = |event: &str| {
        fire(
            &p,
            &snap,
            &Command {
                event: event.into(),
                actor: Actor::system(),
                payload: Map::new(),
                participant: None,
            },
            at(2026, 12, 31, 9),
        )
    };
    let fired = by_system("scade").expect("the timer's own event");
    assert_eq!(fired.to, "chiusa");
    assert!(fired.is_final);
    // Leaving the state disarms the deadline and both reminders.
    let cancelled = fired
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::CancelTimer { .. }))
        .count();
    assert_eq!(cancelled, 3);
    assert!(matches!(by_system("chiudi"), Err(Error::Forbidden { .. })));
}

#[test]
fn a_concluded_instance_refuses_everything() {
    let p = procedure(MEETING);
    let s = convened(&p);
    let s = next(
        &p,
        &s,
        cmd("scade", "presidente", json!({})),
        at(2026, 12, 31, 9),
    )
    .expect("scade");
    let e = next(
        &p,
        &s,
        cmd("sposta", "presidente", json!({})),
        at(2026, 12, 31, 10),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Concluded { .. }));
}

#[test]
fn start_checks_required_and_typed_variables() {
    let p = procedure(MEETING);
    let actor = Actor {
        id: "p".into(),
        role: "presidente".into(),
    };
    let e = start(
        &p,
        "i",
        &vars(json!({"organo": "x"})),
        &actor,
        at(2026, 12, 1, 9),
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::MissingInput {
            field: "data_seduta".into()
        }
    );
    let e = start(
        &p,
        "i",
        &vars(json!({"organo": "x", "data_seduta": "domani"})),
        &actor,
        at(2026, 12, 1, 9),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }));
    let e = start(&p, "i", &vars(json!({"organo": "x", "data_seduta": "2026-12-31T10:00:00Z", "termine_convocazione": "2026-12-01"})), &actor, at(2026, 12, 1, 9)).unwrap_err();
    assert!(matches!(e, Error::ComputedVariable { .. }));
}

#[test]
fn the_same_inputs_give_the_same_step() {
    let p = procedure(MEETING);
    let a = started(&p, at(2026, 12, 1, 9));
    let b = started(&p, at(2026, 12, 1, 9));
    assert_eq!(a, b);
}

const SUSPENDED: &str = r#"
id: sospensione
version: 1
title: "Sospensione"
roles: { rup: "RUP" }
variables:
  data_domanda: { type: date, required: true }
  termine: { type: date, term: { from: data_domanda, days: 30 } }
states:
  aperta: { initial: true }
  sospesa: {}
  chiusa: { final: true }
transitions:
  - { event: sospendi, from: aperta, to: sospesa, roles: [rup], actions: [ { suspend: termine } ] }
  - { event: riprendi, from: sospesa, to: aperta, roles: [rup], actions: [ { resume: termine } ] }
  - { event: chiudi, from: [aperta, sospesa], to: chiusa, roles: [rup] }
timers:
  - id: termine
    while: [aperta, sospesa]
    at: termine
    fires: chiudi
"#;

#[test]
fn a_suspension_disarms_the_timer_and_extends_the_term_on_resume() {
    let p = procedure(SUSPENDED);
    let actor = Actor {
        id: "r".into(),
        role: "rup".into(),
    };
    let s = start(
        &p,
        "i1",
        &vars(json!({"data_domanda": "2027-01-11"})),
        &actor,
        at(2027, 1, 11, 9),
    )
    .expect("start");
    let original = s.data.variables["termine"].clone();
    let s = next(
        &p,
        &s,
        cmd("sospendi", "rup", json!({})),
        at(2027, 1, 15, 9),
    )
    .expect("sospendi");
    assert!(
        s.effects
            .iter()
            .any(|e| matches!(e, Effect::CancelTimer { key } if key == "termine"))
    );
    let s = next(
        &p,
        &s,
        cmd("riprendi", "rup", json!({})),
        at(2027, 1, 25, 9),
    )
    .expect("riprendi");
    assert_ne!(s.data.variables["termine"], original, "the term moved");
    assert!(
        s.effects
            .iter()
            .any(|e| matches!(e, Effect::ScheduleTimer(t) if t.key == "termine"))
    );
}
