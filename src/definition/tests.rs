//! Validator tests: every problem reported, each at its line and column.

use super::*;

const GOOD: &str = r#"id: prova
version: 1
title: "Prova"
roles:
  rup: "RUP"
variables:
  data_pubblicazione: { type: date }
  scadenza_domande:
    type: datetime
    term: { from: data_pubblicazione, days: 30, at: "12:00" }
states:
  bozza: { initial: true }
  aperto: {}
  chiuso: { final: true }
transitions:
  - event: pubblica
    from: bozza
    to: aperto
    roles: [rup]
    inputs: { data_pubblicazione: required }
  - event: chiudi
    from: aperto
    to: chiuso
    roles: [rup]
timers:
  - id: scadenza
    while: aperto
    at: scadenza_domande
    fires: chiudi
"#;

fn check(text: &str) -> Vec<Diagnostic> {
    match validate("prova.yaml", text, &Environment::default()) {
        Ok(_) => Vec::new(),
        Err(d) => d,
    }
}

#[test]
fn a_good_file_validates() {
    assert_eq!(check(GOOD), Vec::<Diagnostic>::new());
}

#[test]
fn three_planted_mistakes_give_three_errors_with_positions() {
    let bad = GOOD
        .replace("    to: chiuso\n", "    to: chiusa\n") // unknown state, line 23
        .replace(
            "roles: [rup]\n    inputs",
            "roles: [segreteria]\n    inputs",
        ) // unknown role, line 19
        .replace("days: 30", "days: -30"); // malformed term, line 10
    let d = check(&bad);
    assert_eq!(d.len(), 3, "{d:#?}");
    assert_eq!((d[0].line, d[0].column), (10, 11));
    assert!(
        d[0].message.contains("termine non valido"),
        "{}",
        d[0].message
    );
    assert_eq!(d[1].line, 19);
    assert!(d[1].message.contains("ruolo sconosciuto 'segreteria'"));
    assert_eq!((d[2].line, d[2].column), (23, 9));
    assert!(d[2].message.contains("stato sconosciuto 'chiusa'"));
    assert_eq!(
        d[2].to_string(),
        "prova.yaml:23:9: stato sconosciuto 'chiusa'"
    );
}

#[test]
fn graph_problems_are_found() {
    // 'aperto' loses its way out; a new state nobody reaches.
    let bad = GOOD
        .replace(
            "  - event: chiudi\n    from: aperto",
            "  - event: chiudi\n    from: bozza",
        )
        .replace(
            "  chiuso: { final: true }",
            "  chiuso: { final: true }\n  orfano: {}",
        );
    let msgs: Vec<String> = check(&bad).into_iter().map(|d| d.message).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("'aperto' non è finale e non ha transizioni")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("'orfano' non è raggiungibile")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("nessuna transizione lo accetta")),
        "{msgs:?}"
    );
}

#[test]
fn duplicate_events_and_undefined_variables_are_found() {
    let bad = GOOD.replace(
        "  - event: chiudi\n",
        "  - event: pubblica\n    from: bozza\n    to: chiuso\n    roles: [rup]\n    guard: [ { when: \"fantasma > 1\" } ]\n  - event: chiudi\n",
    );
    let msgs: Vec<String> = check(&bad).into_iter().map(|d| d.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("evento 'pubblica' duplicato dallo stato 'bozza'")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("variabile non dichiarata 'fantasma'")),
        "{msgs:?}"
    );
}

#[test]
fn unknown_templates_and_template_variables_are_found() {
    let with_notify = GOOD.replace("  aperto: {}", "  aperto:\n    on_enter:\n      - notify: { role: rup, template: inesistente }\n      - notify: { role: rup, template: avviso }");
    let mut templates = std::collections::BTreeMap::new();
    templates.insert(
        "avviso".to_string(),
        ["procedura", "scadenza_domande", "sconosciuta"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    );
    let env = Environment {
        templates: Some(&templates),
        ..Environment::default()
    };
    let d = validate("prova.yaml", &with_notify, &env).unwrap_err();
    let msgs: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("template sconosciuto 'inesistente'")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("usa 'sconosciuta'")),
        "{msgs:?}"
    );
    assert!(
        !msgs.iter().any(|m| m.contains("usa 'scadenza_domande'")),
        "a variable of the procedure: {msgs:?}"
    );
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let d = check("id: x\nversion: 1\ntitle: [unclosed\n");
    assert_eq!(d.len(), 1);
    assert!(d[0].line >= 3, "{:?}", d[0]);
}

#[test]
fn unknown_fields_are_refused() {
    let d = check(&GOOD.replace(
        "    roles: [rup]\n    inputs",
        "    role: [rup]\n    inputs",
    ));
    assert!(!d.is_empty());
    assert!(d[0].message.contains("role"), "{:?}", d[0]);
}

#[test]
fn graph_outputs_name_every_transition() {
    let p = validate("prova.yaml", GOOD, &Environment::default()).expect("valid");
    let m = graph::mermaid(&p);
    assert!(m.starts_with("stateDiagram-v2"));
    assert!(m.contains("[*] --> bozza"));
    assert!(m.contains("aperto --> chiuso: chiudi ⏰ [rup]"), "{m}");
    let d = graph::dot(&p);
    assert!(
        d.contains("aperto -> chiuso [label=\"chiudi\", style=dashed];"),
        "{d}"
    );
}

#[test]
fn roles_nobody_can_hold_are_refused_when_the_roles_are_known() {
    let known = ["rup", "ets"];
    let env = Environment {
        known_roles: Some(&known),
        ..Environment::default()
    };
    assert!(validate("prova.yaml", GOOD, &env).is_ok());
    let bad = GOOD.replace(
        "  rup: \"RUP\"",
        "  rup: \"RUP\"\n  presidente: \"Presidente\"",
    );
    let d = validate("prova.yaml", &bad, &env).unwrap_err();
    assert!(
        d[0].message.contains("ruolo 'presidente' non assegnabile"),
        "{d:?}"
    );
}

#[test]
fn a_procedure_wide_saturday_rule_leaves_publication_windows_alone() {
    let with_window = GOOD
        .replace("roles:\n", "calendar: { saturday_shift: true }\nroles:\n")
        .replace(
            "states:\n",
            "  fine_albo:\n    type: date\n    term: { from: data_pubblicazione, window: 15 }\nstates:\n",
        );
    let p = validate("prova.yaml", &with_window, &Environment::default()).expect("valid");
    assert!(
        !p.variables["fine_albo"]
            .term
            .as_ref()
            .expect("term")
            .rule
            .spec()
            .saturday_shift
    );
    assert!(
        p.variables["scadenza_domande"]
            .term
            .as_ref()
            .expect("term")
            .rule
            .spec()
            .saturday_shift
    );
}
