//! The state machine of a procedure as a picture: Mermaid (default) or Graphviz dot.

use std::fmt::Write;

use super::model::Procedure;

fn label(text: &str) -> String {
    text.replace('"', "'")
}

/// Mermaid `stateDiagram-v2` source.
pub fn mermaid(p: &Procedure) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    let _ = writeln!(out, "    %% {} v{}: {}", p.id, p.version, label(&p.title));
    for s in p.states.values() {
        let _ = writeln!(out, "    state \"{}\" as {}", label(&s.title), s.id);
        if s.initial {
            let _ = writeln!(out, "    [*] --> {}", s.id);
        }
        if s.is_final {
            let _ = writeln!(out, "    {} --> [*]", s.id);
        }
    }
    for t in &p.transitions {
        let who = t
            .roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        for from in &t.from {
            let timer = if p.timer_fires(from.as_str(), t.event.as_str()) {
                " ⏰"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {} --> {}: {}{} [{}]",
                from, t.to, t.event, timer, who
            );
        }
    }
    out
}

/// Graphviz `digraph` source.
pub fn dot(p: &Procedure) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", p.id);
    let _ = writeln!(out, "    label=\"{} (v{})\";", label(&p.title), p.version);
    let _ = writeln!(out, "    rankdir=LR;");
    let _ = writeln!(out, "    __start [shape=point];");
    for s in p.states.values() {
        let shape = if s.is_final { "doublecircle" } else { "box" };
        let _ = writeln!(
            out,
            "    {} [label=\"{}\", shape={shape}];",
            s.id,
            label(&s.title)
        );
        if s.initial {
            let _ = writeln!(out, "    __start -> {};", s.id);
        }
    }
    for t in &p.transitions {
        for from in &t.from {
            let style = if p.timer_fires(from.as_str(), t.event.as_str()) {
                ", style=dashed"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    {} -> {} [label=\"{}\"{style}];",
                from, t.to, t.event
            );
        }
    }
    out.push_str("}\n");
    out
}
