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

/// A notice with participants, for the checks of the participant's constructs.
const WITH_PARTICIPANTS: &str = r#"id: prova
version: 1
title: "Prova"
roles:
  rup: "RUP"
  ets: "ETS"
variables:
  data_pubblicazione: { type: date }
  scadenza_domande:
    type: datetime
    term: { from: data_pubblicazione, days: 30, at: "12:00" }
participant:
  role: ets
  variables:
    esito: { type: text }
    voto: { type: number }
  states:
    ricevuta: { initial: true }
    ammessa: {}
    esclusa: { final: true }
  transitions:
    - event: decidi
      from: ricevuta
      to: ammessa
      roles: [rup]
      inputs: { esito: required }
      guard: [ { when: 'esito == "ammessa"' } ]
    - event: decidi
      from: ricevuta
      to: esclusa
      roles: [rup]
      inputs: { esito: required }
states:
  aperto: { initial: true }
  istruttoria: {}
  chiuso: { final: true }
transitions:
  - event: chiudi
    from: aperto
    to: istruttoria
    roles: [rup]
  - event: concludi
    from: istruttoria
    to: chiuso
    roles: [rup]
    guard:
      - when: 'all(participants, state != "ricevuta") and sum(participants, voto) >= 0'
submissions:
  deadline: scadenza_domande
  while: aperto
"#;

#[test]
fn a_participant_lifecycle_with_alternatives_and_aggregates_validates() {
    let p = validate("prova.yaml", WITH_PARTICIPANTS, &Environment::default())
        .unwrap_or_else(|d| panic!("{d:#?}"));
    let def = p.participant.as_ref().expect("participant");
    assert_eq!(def.candidates("ricevuta", "decidi").count(), 2);
    let m = graph::mermaid(&p);
    assert!(
        m.contains("state \"Partecipante (per ogni partecipante, ruolo ets)\" as partecipante {"),
        "{m}"
    );
    assert!(
        m.contains("p_ricevuta --> p_ammessa: decidi se esito == 'ammessa' [rup]"),
        "{m}"
    );
}

#[test]
fn mistakes_in_the_new_constructs_are_located() {
    let cases: &[(&str, &str, &str)] = &[
        // An unguarded alternative before another: the second is never taken.
        (
            "      guard: [ { when: 'esito == \"ammessa\"' } ]\n",
            "",
            "evento 'decidi' duplicato dallo stato 'ricevuta'",
        ),
        // An aggregate over a name participants do not have.
        (
            "sum(participants, voto)",
            "sum(participants, punti)",
            "variabile non dichiarata 'punti'",
        ),
        // A participant variable named like one of the procedure.
        (
            "    voto: { type: number }\n",
            "    voto: { type: number }\n    data_pubblicazione: { type: date }\n",
            "stesso nome di una variabile della procedura",
        ),
        // A message to the participants' role at large from inside a participant.
        (
            "      inputs: { esito: required }\n      guard",
            "      inputs: { esito: required }\n      actions: [ { notify: { role: ets, template: t } } ]\n      guard",
            "andrebbe a tutti: usare to: participant",
        ),
        // `to: participant` outside a participant.
        (
            "    roles: [rup]\n    guard:",
            "    roles: [rup]\n    actions: [ { notify: { to: participant, template: t } } ]\n    guard:",
            "to: participant vale solo nelle azioni di un partecipante",
        ),
        // `for_each_participant` inside a participant.
        (
            "      inputs: { esito: required }\n      guard",
            "      inputs: { esito: required }\n      actions: [ { for_each_participant: { actions: [] } } ]\n      guard",
            "for_each_participant non si usa dentro le azioni di un partecipante",
        ),
        // A proroga of a variable that is not a term.
        (
            "    roles: [rup]\n    guard:",
            "    roles: [rup]\n    inputs: { data_pubblicazione: required }\n    actions: [ { proroga: { term: data_pubblicazione, to: data_pubblicazione, act: data_pubblicazione } } ]\n    guard:",
            "non è calcolata da un termine: non si può prorogare",
        ),
        // `when:` that is not a condition.
        (
            "    roles: [rup]\n    guard:",
            "    roles: [rup]\n    actions: [ { set: { data_pubblicazione: today }, when: 'data_pubblicazione' } ]\n    guard:",
            "non è vera o falsa",
        ),
        // Rounding nobody knows.
        (
            "roles:\n",
            "numbers: { decimals: 2, rounding: a_caso }\nroles:\n",
            "numbers.rounding 'a_caso' sconosciuto",
        ),
        // A length from a variable that is not a number.
        (
            "term: { from: data_pubblicazione, days: 30, at: \"12:00\" }",
            "term: { from: data_pubblicazione, days: 30, at: \"12:00\", length_var: data_pubblicazione }",
            "length_var: 'data_pubblicazione' è di tipo date, serve number",
        ),
        // A PEC consegna into a variable that is not a date.
        (
            "      inputs: { esito: required }\n      guard",
            "      inputs: { esito: required }\n      actions: [ { notify: { to: participant, template: t, channel: pec, consegna: voto } } ]\n      guard",
            "consegna: 'voto' deve essere una variabile date o datetime",
        ),
        // A consegna without the PEC channel: no receipt would ever set it.
        (
            "      inputs: { esito: required }\n      guard",
            "      inputs: { esito: required }\n      actions: [ { notify: { to: participant, template: t, consegna: esito } } ]\n      guard",
            "consegna: vale solo con channel: pec",
        ),
        // A channel nobody knows.
        (
            "      inputs: { esito: required }\n      guard",
            "      inputs: { esito: required }\n      actions: [ { notify: { to: participant, template: t, channel: raccomandata } } ]\n      guard",
            "channel 'raccomandata' non valido (email oppure pec)",
        ),
        // A consegna variable the participant does not have.
        (
            "      inputs: { esito: required }\n      guard",
            "      inputs: { esito: required }\n      actions: [ { notify: { to: participant, template: t, channel: pec, consegna: data_consegna } } ]\n      guard",
            "consegna: 'data_consegna' non è una variabile del partecipante",
        ),
        // The albo shows public variables only.
        (
            "submissions:\n",
            "albo:\n  - { id: avviso, title: Avviso, from: data_pubblicazione, until: scadenza_domande }\nsubmissions:\n",
            "albo: 'data_pubblicazione' non è pubblica",
        ),
        // An albo document no protocollo action registers: nothing to publish.
        (
            "submissions:\n",
            "albo:\n  - { id: avviso, title: Avviso, from: data_pubblicazione, until: scadenza_domande, document: avviso_pubblico }\nsubmissions:\n",
            "albo: il documento 'avviso_pubblico' non è registrato",
        ),
        // The signed verbale needs a meeting that records it.
        (
            "submissions:\n",
            "albo:\n  - { id: verbale, title: Verbale, from: data_pubblicazione, until: scadenza_domande, document: verbale_firmato }\nsubmissions:\n",
            "albo: il documento 'verbale_firmato' non è registrato",
        ),
        // `while:` naming a state the procedure does not have.
        (
            "      inputs: { esito: required }\n      guard",
            "      while: valutazione\n      inputs: { esito: required }\n      guard",
            "stato della procedura sconosciuto 'valutazione'",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(WITH_PARTICIPANTS.contains(from), "bad case: {from}");
        let text = WITH_PARTICIPANTS.replacen(from, to, 1);
        let diagnostics = check(&text);
        assert!(
            diagnostics
                .iter()
                .any(|d| d.message.contains(expected) && d.line > 0),
            "expected «{expected}» with a line:\n{diagnostics:#?}"
        );
    }
}

#[test]
fn aggregates_need_participants() {
    let bad = GOOD.replace(
        "    to: chiuso\n    roles: [rup]\n",
        "    to: chiuso\n    roles: [rup]\n    guard: [ { when: \"count(participants) > 0\" } ]\n",
    );
    let msgs: Vec<String> = check(&bad).into_iter().map(|d| d.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("la procedura non dichiara i partecipanti")),
        "{msgs:?}"
    );
}

#[test]
fn the_shipped_avviso_evaluation_is_checked_sums_tie_and_names() {
    let text = include_str!("../../workflows/avviso_coprogettazione.yaml").to_string();
    let p = validate("avviso.yaml", &text, &Environment::default()).expect("valid");
    let ev = p.evaluation.expect("evaluation");
    assert_eq!(ev.total, rust_decimal::Decimal::from(100));
    assert_eq!(Criterion::leaves(&ev.criteria).len(), 4);

    // A sub-criterion that breaks its parent's sum, a tie on an unknown criterion, a
    // threshold over the total, a result variable of the wrong type: each at its line.
    let bad = text
        .replace(
            "{ id: metodologia, title: \"Metodologia e organizzazione delle attività\", max: 20 }",
            "{ id: metodologia, title: \"Metodologia e organizzazione delle attività\", max: 25 }",
        )
        .replace(
            "tie: [qualita, esperienza, presentazione]",
            "tie: [qualita, sorteggio]",
        )
        .replace("threshold: 60", "threshold: 120")
        .replace("complete: valutazione_completa", "complete: punteggio");
    let d = match validate("avviso.yaml", &bad, &Environment::default()) {
        Ok(_) => panic!("the mutated avviso validates"),
        Err(d) => d,
    };
    let text_of = |needle: &str| {
        d.iter()
            .find(|x| x.message.contains(needle))
            .unwrap_or_else(|| panic!("no '{needle}' in {d:#?}"))
    };
    assert!(text_of("sottocriteri di 'qualita' sommano 45").line > 0);
    assert!(text_of("'sorteggio' non è un criterio").line > 0);
    assert!(text_of("la soglia 120 supera il totale 100").line > 0);
    assert!(text_of("evaluation.results.complete: 'punteggio' è di tipo").line > 0);

    // The approving event must ask for the determina.
    let no_number = text.replace(
        "inputs: { numero_determina_graduatoria: required, data_graduatoria: required }",
        "inputs: { data_graduatoria: required }",
    );
    let d = match validate("avviso.yaml", &no_number, &Environment::default()) {
        Ok(_) => panic!("validates without the determina"),
        Err(d) => d,
    };
    assert!(
        d.iter().any(|x| x
            .message
            .contains("deve chiedere 'numero_determina_graduatoria'")),
        "{d:#?}"
    );
}
