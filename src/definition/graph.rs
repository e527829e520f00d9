//! The state machine of a procedure as a picture: Mermaid (default) or Graphviz dot. A
//! participant's lifecycle is drawn as a nested machine; an event with alternatives shows the
//! condition of each.

use std::fmt::Write;

use indexmap::IndexMap;

use super::model::{Procedure, State, StateId, Transition};

fn label(text: &str) -> String {
    text.replace('"', "'")
}

/// The condition of a transition, when the event has alternatives from that state.
fn condition(transitions: &[Transition], t: &Transition, from: &StateId) -> String {
    let alternatives = transitions
        .iter()
        .filter(|o| o.event == t.event && o.from.contains(from))
        .count();
    if alternatives < 2 || t.guard.is_empty() {
        return String::new();
    }
    let sources: Vec<&str> = t.guard.iter().map(|g| g.source.as_str()).collect();
    format!(" se {}", label(&sources.join(" e ")))
}

/// Mermaid `stateDiagram-v2` source.
pub fn mermaid(p: &Procedure) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    let _ = writeln!(out, "    %% {} v{}: {}", p.id, p.version, label(&p.title));
    mermaid_machine(
        &mut out,
        "    ",
        "",
        &p.states,
        &p.transitions,
        |from, event| p.timer_fires(from, event),
    );
    if let Some(def) = &p.participant {
        let _ = writeln!(
            out,
            "    state \"{} (per ogni partecipante, ruolo {})\" as partecipante {{",
            label(&def.title),
            def.role
        );
        mermaid_machine(
            &mut out,
            "        ",
            "p_",
            &def.states,
            &def.transitions,
            |from, event| def.timer_fires(from, event),
        );
        let _ = writeln!(out, "    }}");
    }
    out
}

fn mermaid_machine(
    out: &mut String,
    indent: &str,
    prefix: &str,
    states: &IndexMap<StateId, State>,
    transitions: &[Transition],
    timer_fires: impl Fn(&str, &str) -> bool,
) {
    for s in states.values() {
        let _ = writeln!(
            out,
            "{indent}state \"{}\" as {prefix}{}",
            label(&s.title),
            s.id
        );
        if s.initial {
            let _ = writeln!(out, "{indent}[*] --> {prefix}{}", s.id);
        }
        if s.is_final {
            let _ = writeln!(out, "{indent}{prefix}{} --> [*]", s.id);
        }
    }
    for t in transitions {
        let who = t
            .roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let during = if t.while_in.is_empty() {
            String::new()
        } else {
            format!(
                " (in {})",
                t.while_in
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        for from in &t.from {
            let timer = if timer_fires(from.as_str(), t.event.as_str()) {
                " ⏰"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{indent}{prefix}{} --> {prefix}{}: {}{}{}{} [{}]",
                from,
                t.to,
                t.event,
                timer,
                condition(transitions, t, from),
                during,
                who
            );
        }
    }
}

/// Graphviz `digraph` source.
pub fn dot(p: &Procedure) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", p.id);
    let _ = writeln!(out, "    label=\"{} (v{})\";", label(&p.title), p.version);
    let _ = writeln!(out, "    rankdir=LR;");
    dot_machine(&mut out, "", &p.states, &p.transitions, |from, event| {
        p.timer_fires(from, event)
    });
    if let Some(def) = &p.participant {
        let _ = writeln!(out, "    subgraph cluster_partecipante {{");
        let _ = writeln!(
            out,
            "    label=\"{} (per ogni partecipante)\";",
            label(&def.title)
        );
        dot_machine(
            &mut out,
            "p_",
            &def.states,
            &def.transitions,
            |from, event| def.timer_fires(from, event),
        );
        let _ = writeln!(out, "    }}");
    }
    out.push_str("}\n");
    out
}

fn dot_machine(
    out: &mut String,
    prefix: &str,
    states: &IndexMap<StateId, State>,
    transitions: &[Transition],
    timer_fires: impl Fn(&str, &str) -> bool,
) {
    let _ = writeln!(out, "    __{prefix}start [shape=point];");
    for s in states.values() {
        let shape = if s.is_final { "doublecircle" } else { "box" };
        let _ = writeln!(
            out,
            "    {prefix}{} [label=\"{}\", shape={shape}];",
            s.id,
            label(&s.title)
        );
        if s.initial {
            let _ = writeln!(out, "    __{prefix}start -> {prefix}{};", s.id);
        }
    }
    for t in transitions {
        for from in &t.from {
            let style = if timer_fires(from.as_str(), t.event.as_str()) {
                ", style=dashed"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {prefix}{} -> {prefix}{} [label=\"{}{}\"{style}];",
                from,
                t.to,
                t.event,
                condition(transitions, t, from)
            );
        }
    }
}
