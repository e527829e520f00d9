//! Raw YAML → validated `Procedure`, collecting every problem with its line and column.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt;

use indexmap::IndexMap;
use serde::Serialize;
use serde_saphyr::{Location, Spanned};

use super::expr::{self, Expr};
use super::model::*;
use super::raw::*;
use crate::terms;

/// One problem in a workflow file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// The file, as named by the caller.
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// 1-based column (0 when unknown).
    pub column: u64,
    /// What is wrong, in Italian.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// Names that every notification context provides besides the procedure's variables.
pub const CONTEXT_NAMES: &[&str] = &[
    "procedura",
    "istanza",
    "destinatario",
    "ambito",
    "protocollo",
];
/// Names a reminder's context adds.
pub const REMINDER_NAMES: &[&str] = &["scadenza"];

/// What validation may look up outside the file. Reading is injected: validation does no I/O.
pub struct Environment<'a> {
    /// Message kinds with the top-level names each template reads; `None` skips template checks.
    pub templates: Option<&'a BTreeMap<String, BTreeSet<String>>>,
    /// Reads a closures file named in `calendar.closures` (path as written in the file).
    pub read_closures: &'a dyn Fn(&str) -> Result<String, String>,
    /// Ids of known procedures, for `start:` actions; `None` skips the check.
    pub procedures: Option<&'a BTreeSet<String>>,
    /// Roles people can hold (tokens, `person add`); `None` skips the check.
    pub known_roles: Option<&'a [&'a str]>,
}

impl Default for Environment<'_> {
    fn default() -> Self {
        Environment {
            templates: None,
            read_closures: &|path| Err(format!("nessun lettore per '{path}'")),
            procedures: None,
            known_roles: None,
        }
    }
}

struct Ctx<'a> {
    file: &'a str,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn at(&mut self, loc: &Location, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            line: loc.line(),
            column: loc.column(),
            message: message.into(),
        });
    }
}

fn loc<T>(s: &Spanned<T>) -> Location {
    s.referenced
}

/// Validates one workflow file.
pub fn validate(
    file: &str,
    text: &str,
    env: &Environment<'_>,
) -> Result<Procedure, Vec<Diagnostic>> {
    let raw: RawProcedure = match serde_saphyr::from_str(text) {
        Ok(raw) => raw,
        Err(err) => {
            let (line, column) = err
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            let message = first_line(&err.to_string());
            return Err(vec![Diagnostic {
                file: file.to_string(),
                line,
                column,
                message,
            }]);
        }
    };
    let mut ctx = Ctx {
        file,
        diags: Vec::new(),
    };
    let procedure = build(&mut ctx, raw, env);
    if ctx.diags.is_empty() {
        Ok(procedure)
    } else {
        ctx.diags.sort();
        ctx.diags.dedup();
        Err(ctx.diags)
    }
}

/// The parser's message without its own "error: line L column C:" prefix (the diagnostic
/// already carries the position).
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message).trim();
    let rest = line.strip_prefix("error:").unwrap_or(line).trim_start();
    match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((position, text)) if position.contains("column") => text.to_string(),
        _ => rest.to_string(),
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn build(ctx: &mut Ctx<'_>, raw: RawProcedure, env: &Environment<'_>) -> Procedure {
    if !is_identifier(&raw.id.value) {
        ctx.at(
            &loc(&raw.id),
            format!(
                "id '{}' non valido: usare minuscole, cifre e _",
                raw.id.value
            ),
        );
    }
    let version = match u32::try_from(raw.version.value) {
        Ok(v) if v >= 1 => v,
        _ => {
            ctx.at(&loc(&raw.version), "version deve essere un intero ≥ 1");
            1
        }
    };

    // Calendar
    let mut calendar = CalendarSettings::default();
    if let Some(cal) = raw.calendar {
        let cal_loc = loc(&cal);
        let cal = cal.value;
        calendar.calendar.comune = cal.comune;
        calendar.saturday_shift = cal.saturday_shift;
        calendar.closures_shift = cal.closures_shift;
        if let Some(path) = cal.closures {
            match (env.read_closures)(&path.value) {
                Ok(text) => match terms::parse_closures(&text) {
                    Ok(closures) => calendar.calendar.closures = closures,
                    Err(e) => ctx.at(
                        &loc(&path),
                        format!("calendario chiusure '{}': {e}", path.value),
                    ),
                },
                Err(e) => ctx.at(
                    &loc(&path),
                    format!("calendario chiusure '{}' non leggibile: {e}", path.value),
                ),
            }
            calendar.closures_file = Some(path.value);
        } else if cal.closures_shift {
            ctx.at(&cal_loc, "closures_shift richiede un file 'closures'");
        }
    }

    // Roles
    let mut roles = IndexMap::new();
    for (name, label) in raw.roles {
        if !is_identifier(&name) || name == SYSTEM_ROLE {
            ctx.at(&loc(&label), format!("nome di ruolo '{name}' non valido"));
        } else if let Some(known) = env.known_roles
            && !known.contains(&name.as_str())
        {
            ctx.at(
                &loc(&label),
                format!(
                    "ruolo '{name}' non assegnabile a nessuna persona (ammessi: {})",
                    known.join(", ")
                ),
            );
        }
        roles.insert(RoleName(name), label.value);
    }
    let role_ok = |name: &str| roles.contains_key(name) || name == SYSTEM_ROLE;

    // Variables (types first, so terms and expressions can refer to any of them)
    let mut var_types: BTreeMap<String, VarType> = BTreeMap::new();
    for (name, var) in &raw.variables {
        match VarType::parse(&var.value.kind.value) {
            Some(t) => {
                var_types.insert(name.clone(), t);
            }
            None => ctx.at(
                &loc(&var.value.kind),
                format!(
                    "tipo '{}' sconosciuto per la variabile '{name}' (ammessi: date, datetime, text, number, bool, parties, list)",
                    var.value.kind.value
                ),
            ),
        }
        if !is_identifier(name)
            || CONTEXT_NAMES.contains(&name.as_str())
            || REMINDER_NAMES.contains(&name.as_str())
        {
            ctx.at(
                &loc(var),
                format!("nome di variabile '{name}' non valido o riservato"),
            );
        }
    }
    let lookup = |name: &str| var_types.get(name).copied();
    let declared_terms: BTreeSet<String> = raw
        .variables
        .iter()
        .filter(|(_, v)| v.value.term.is_some())
        .map(|(n, _)| n.clone())
        .collect();
    let mut variables = IndexMap::new();
    for (name, var) in raw.variables {
        let var_loc = loc(&var);
        let v = var.value;
        let kind = lookup(&name).unwrap_or(VarType::Text);
        let mut visibility = Visibility::Staff;
        let mut visible_roles = Vec::new();
        for who in v.visible_to {
            if who.value == "public" {
                visibility = Visibility::Public;
            } else if roles.contains_key(who.value.as_str()) {
                visible_roles.push(RoleName(who.value));
            } else {
                ctx.at(
                    &loc(&who),
                    format!("ruolo sconosciuto '{}' in visible_to", who.value),
                );
            }
        }
        if visibility != Visibility::Public && !visible_roles.is_empty() {
            visibility = Visibility::Roles(visible_roles);
        }
        let term = v.term.and_then(|term| {
            let term_loc = loc(&term);
            let t = term.value;
            if !matches!(kind, VarType::Date | VarType::DateTime) {
                ctx.at(&term_loc, format!("la variabile '{name}' ha un termine ma è di tipo {kind}: serve date o datetime"));
            }
            match lookup(&t.from.value) {
                Some(VarType::Date | VarType::DateTime) => {}
                Some(other) => ctx.at(&loc(&t.from), format!("il termine parte da '{}' che è di tipo {other}: serve date o datetime", t.from.value)),
                None => ctx.at(&loc(&t.from), format!("variabile non dichiarata '{}' in term.from", t.from.value)),
            }
            if t.from.value == name {
                ctx.at(&loc(&t.from), "un termine non può partire dalla sua stessa variabile");
            }
            let mut spec = t.rule;
            // A publication window never moves: the procedure's shifts apply to the other terms.
            if spec.window.is_none() {
                spec.saturday_shift |= calendar.saturday_shift;
                spec.closures_shift |= calendar.closures_shift;
            }
            match terms::Rule::new(spec) {
                Ok(rule) => Some(TermDef { from: VarName(t.from.value), rule }),
                Err(e) => {
                    ctx.at(&term_loc, format!("termine non valido per '{name}': {e}"));
                    None
                }
            }
        });
        if term.is_some() && v.required {
            ctx.at(
                &var_loc,
                format!("'{name}' è calcolata da un termine: non può essere required"),
            );
        }
        variables.insert(
            VarName(name.clone()),
            Variable {
                name: VarName(name),
                kind,
                label: v.label,
                required: v.required,
                visibility,
                term,
            },
        );
    }
    check_term_cycles(ctx, &variables);

    let known_templates = env.templates;
    let check_notify = |ctx: &mut Ctx<'_>, at: &Location, n: RawNotify, reminder: bool| -> Notify {
        if !roles.contains_key(n.role.value.as_str()) {
            ctx.at(
                &loc(&n.role),
                format!("ruolo sconosciuto '{}'", n.role.value),
            );
        }
        if let Some(templates) = known_templates {
            match templates.get(&n.template.value) {
                None => ctx.at(
                    &loc(&n.template),
                    format!("template sconosciuto '{}'", n.template.value),
                ),
                Some(names) => {
                    for used in names {
                        let provided = var_types.contains_key(used)
                            || CONTEXT_NAMES.contains(&used.as_str())
                            || (reminder && REMINDER_NAMES.contains(&used.as_str()));
                        if !provided {
                            ctx.at(
                                &loc(&n.template),
                                format!("il template '{}' usa '{used}', che questa notifica non fornisce", n.template.value),
                            );
                        }
                    }
                }
            }
        }
        let _ = at;
        let invite = n.invite.and_then(|m| match m.value.as_str() {
            "request" => Some(InviteMethod::Request),
            "cancel" => Some(InviteMethod::Cancel),
            other => {
                ctx.at(
                    &loc(&m),
                    format!("invite '{other}' non valido (request oppure cancel)"),
                );
                None
            }
        });
        if invite.is_some() && !var_types.contains_key("data_seduta") {
            ctx.at(
                &loc(&n.template),
                "un invito di calendario richiede la variabile 'data_seduta' (datetime)",
            );
        }
        Notify {
            role: RoleName(n.role.value),
            template: n.template.value,
            urgent: n.urgent,
            invite,
        }
    };

    let check_expr = |ctx: &mut Ctx<'_>, src: &Spanned<String>| -> Option<Expr> {
        match expr::parse(&src.value) {
            Ok(e) => match e.check(&lookup) {
                Ok(_) => Some(e),
                Err(msg) => {
                    ctx.at(&loc(src), format!("espressione '{}': {msg}", src.value));
                    None
                }
            },
            Err(err) => {
                ctx.at(&loc(src), format!("espressione '{}': {err}", src.value));
                None
            }
        }
    };

    let actions_of = |ctx: &mut Ctx<'_>, raw_actions: Vec<Spanned<RawAction>>| -> Vec<Action> {
        let mut out = Vec::new();
        for action in raw_actions {
            let at = loc(&action);
            let a = action.value;
            let count = [
                a.notify.is_some(),
                a.protocollo.is_some(),
                a.set.is_some(),
                a.start.is_some(),
                a.suspend.is_some(),
                a.resume.is_some(),
            ]
            .iter()
            .filter(|x| **x)
            .count();
            if count != 1 {
                ctx.at(&at, "ogni azione deve avere esattamente una chiave tra notify, protocollo, set, start, suspend, resume");
                continue;
            }
            if let Some(n) = a.notify {
                out.push(Action::Notify(check_notify(ctx, &at, n, false)));
            } else if let Some(p) = a.protocollo {
                let direction = match p.direction.value.as_str() {
                    "entrata" => Direction::Entrata,
                    "uscita" => Direction::Uscita,
                    "interno" => Direction::Interno,
                    other => {
                        ctx.at(&loc(&p.direction), format!("direzione di protocollo '{other}' sconosciuta (entrata, uscita, interno)"));
                        Direction::Interno
                    }
                };
                let register = p.register.map(|r| {
                    let code = r.value.trim().to_owned();
                    let valid = (1..=16).contains(&code.len())
                        && code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
                    if !valid {
                        ctx.at(&loc(&r), format!("registro '{}' non valido: lettere, cifre, _ . -, al massimo 16 caratteri", r.value));
                    }
                    code
                });
                let to = p.to.map(|t| {
                    if !roles.contains_key(t.value.as_str()) {
                        ctx.at(&loc(&t), format!("ruolo sconosciuto '{}'", t.value));
                    }
                    RoleName(t.value)
                });
                let document = p.document.map(|d| {
                    if let Some(templates) = known_templates
                        && !templates.contains_key(&d.value)
                    {
                        ctx.at(
                            &loc(&d),
                            format!(
                                "template sconosciuto '{}' come documento da protocollare",
                                d.value
                            ),
                        );
                    }
                    d.value
                });
                if direction == Direction::Uscita && to.is_none() && document.is_some() {
                    ctx.at(&at, "un documento in uscita da protocollare richiede i destinatari: aggiungere to: <ruolo>");
                }
                let classification = p
                    .classificazione
                    .map(|c| c.value.trim().to_owned())
                    .filter(|c| !c.is_empty());
                out.push(Action::Protocollo(Protocollo {
                    direction,
                    subject: p.subject.value,
                    register,
                    to,
                    document,
                    classification,
                }));
            } else if let Some(assignments) = a.set {
                let mut list = Vec::new();
                for (name, value) in assignments {
                    let Some(target) = lookup(&name) else {
                        ctx.at(
                            &loc(&value),
                            format!("set: variabile non dichiarata '{name}'"),
                        );
                        continue;
                    };
                    if variables
                        .get(name.as_str())
                        .is_some_and(|v| v.term.is_some())
                    {
                        ctx.at(
                            &loc(&value),
                            format!("set: '{name}' è calcolata da un termine e non si assegna"),
                        );
                    }
                    if let Some(e) = check_expr(ctx, &value) {
                        if let Ok(expr::ExprType::Of(t)) = e.check(&lookup)
                            && t != target
                        {
                            ctx.at(
                                &loc(&value),
                                format!(
                                    "set: '{name}' è di tipo {target}, il valore è di tipo {t}"
                                ),
                            );
                        }
                        list.push((VarName(name), e));
                    }
                }
                out.push(Action::Set(list));
            } else if let Some(s) = a.start {
                if let Some(known) = env.procedures
                    && !known.contains(&s.procedure.value)
                {
                    ctx.at(
                        &loc(&s.procedure),
                        format!("procedura sconosciuta '{}'", s.procedure.value),
                    );
                }
                let mut vars = Vec::new();
                for (name, value) in s.variables {
                    if let Some(e) = check_expr(ctx, &value) {
                        vars.push((name, e));
                    }
                }
                out.push(Action::Start {
                    procedure: s.procedure.value,
                    variables: vars,
                });
            } else if let Some(v) = a.suspend.or(a.resume.clone()) {
                let is_suspend = a.resume.is_none();
                match variables.get(v.value.as_str()) {
                    // A variable whose term is broken was reported already; no cascade.
                    Some(var)
                        if var.term.is_some() || declared_terms.contains(v.value.as_str()) => {}
                    Some(_) => ctx.at(
                        &loc(&v),
                        format!(
                            "'{}' non è calcolata da un termine: non si può sospendere",
                            v.value
                        ),
                    ),
                    None => ctx.at(&loc(&v), format!("variabile non dichiarata '{}'", v.value)),
                }
                let name = VarName(v.value);
                out.push(if is_suspend {
                    Action::Suspend(name)
                } else {
                    Action::Resume(name)
                });
            }
        }
        out
    };

    // States
    let mut states = IndexMap::new();
    let mut state_locs: BTreeMap<String, Location> = BTreeMap::new();
    let mut initial = Vec::new();
    for (id, state) in raw.states {
        let st_loc = loc(&state);
        let s = state.value;
        if !is_identifier(&id) {
            ctx.at(&st_loc, format!("nome di stato '{id}' non valido"));
        }
        if s.initial {
            initial.push(st_loc);
        }
        state_locs.insert(id.clone(), st_loc);
        if s.initial && s.is_final {
            ctx.at(
                &st_loc,
                format!("lo stato '{id}' non può essere insieme iniziale e finale"),
            );
        }
        let on_enter = actions_of(ctx, s.on_enter);
        states.insert(
            StateId(id.clone()),
            State {
                title: s.title.unwrap_or_else(|| id.replace('_', " ")),
                id: StateId(id),
                initial: s.initial,
                is_final: s.is_final,
                on_enter,
            },
        );
    }
    match initial.len() {
        1 => {}
        0 => ctx.at(&loc(&raw.id), "manca lo stato iniziale (initial: true)"),
        _ => {
            for at in &initial[1..] {
                ctx.at(at, "più di uno stato iniziale");
            }
        }
    }
    if states.is_empty() {
        ctx.at(&loc(&raw.id), "nessuno stato definito");
    } else if !states.values().any(|s| s.is_final) {
        ctx.at(&loc(&raw.id), "nessuno stato finale (final: true)");
    }

    // Transitions
    let mut transitions = Vec::new();
    let mut seen: BTreeMap<(String, String), Location> = BTreeMap::new();
    // A transition to or from an unknown state makes reachability meaningless: report the
    // unknown state, not the cascade it causes.
    let mut graph_is_sound = true;
    for tr in raw.transitions {
        let tr_loc = loc(&tr);
        let t = tr.value;
        if !is_identifier(&t.event.value) {
            ctx.at(
                &loc(&t.event),
                format!("nome di evento '{}' non valido", t.event.value),
            );
        }
        let mut from = Vec::new();
        for f in t.from.into_vec() {
            if !states.contains_key(f.value.as_str()) {
                graph_is_sound = false;
                ctx.at(&loc(&f), format!("stato sconosciuto '{}'", f.value));
            } else if states.get(f.value.as_str()).is_some_and(|s| s.is_final) {
                ctx.at(
                    &loc(&f),
                    format!(
                        "lo stato '{}' è finale: nessuna transizione può uscirne",
                        f.value
                    ),
                );
            }
            let key = (f.value.clone(), t.event.value.clone());
            if let Some(first) = seen.get(&key) {
                let (line, column) = (first.line(), first.column());
                ctx.at(&loc(&t.event), format!("evento '{}' duplicato dallo stato '{}' (già definito a riga {line}, colonna {column})", t.event.value, f.value));
            } else {
                seen.insert(key, loc(&t.event));
            }
            from.push(StateId(f.value));
        }
        if !states.contains_key(t.to.value.as_str()) {
            graph_is_sound = false;
            ctx.at(&loc(&t.to), format!("stato sconosciuto '{}'", t.to.value));
        }
        let mut tr_roles = Vec::new();
        for r in t.roles {
            if !role_ok(&r.value) {
                ctx.at(&loc(&r), format!("ruolo sconosciuto '{}'", r.value));
            }
            tr_roles.push(RoleName(r.value));
        }
        let mut inputs = Vec::new();
        for (name, mode) in t.inputs {
            let required = match mode.value.as_str() {
                "required" => true,
                "optional" => false,
                other => {
                    ctx.at(
                        &loc(&mode),
                        format!("input '{name}': '{other}' non valido (required oppure optional)"),
                    );
                    false
                }
            };
            match variables.get(name.as_str()) {
                None => ctx.at(
                    &loc(&mode),
                    format!("input '{name}': variabile non dichiarata"),
                ),
                Some(v) if v.term.is_some() => ctx.at(
                    &loc(&mode),
                    format!("input '{name}': la variabile è calcolata da un termine"),
                ),
                Some(_) => {}
            }
            inputs.push(Input {
                variable: VarName(name),
                required,
            });
        }
        let mut guard = Vec::new();
        for g in t.guard {
            let g_loc = loc(&g);
            let g = g.value;
            if let Some(e) = check_expr(ctx, &g.when) {
                if !matches!(e.check(&lookup), Ok(expr::ExprType::Of(VarType::Bool))) {
                    ctx.at(
                        &g_loc,
                        format!("la condizione '{}' non è vera o falsa", g.when.value),
                    );
                }
                guard.push(Guard {
                    message: g
                        .message
                        .unwrap_or_else(|| format!("condizione non soddisfatta: {}", g.when.value)),
                    source: g.when.value,
                    expr: e,
                });
            }
        }
        if tr_roles.is_empty() {
            ctx.at(
                &tr_loc,
                format!(
                    "la transizione '{}' non indica chi può eseguirla (roles)",
                    t.event.value
                ),
            );
        }
        let actions = actions_of(ctx, t.actions);
        transitions.push(Transition {
            title: t.title.unwrap_or_else(|| t.event.value.replace('_', " ")),
            event: EventName(t.event.value),
            from,
            to: StateId(t.to.value),
            roles: tr_roles,
            inputs,
            guard,
            actions,
        });
    }

    // Timers
    let mut timers = Vec::new();
    let mut timer_ids = HashSet::new();
    for tm in raw.timers {
        let t = tm.value;
        if !timer_ids.insert(t.id.value.clone()) {
            ctx.at(&loc(&t.id), format!("timer '{}' duplicato", t.id.value));
        }
        let mut while_in = Vec::new();
        for s in t.while_in.into_vec() {
            if !states.contains_key(s.value.as_str()) {
                ctx.at(&loc(&s), format!("stato sconosciuto '{}'", s.value));
            }
            while_in.push(StateId(s.value));
        }
        match lookup(&t.at.value) {
            Some(VarType::Date | VarType::DateTime) => {}
            Some(other) => ctx.at(
                &loc(&t.at),
                format!(
                    "il timer usa '{}' che è di tipo {other}: serve date o datetime",
                    t.at.value
                ),
            ),
            None => ctx.at(
                &loc(&t.at),
                format!("variabile non dichiarata '{}'", t.at.value),
            ),
        }
        let fires = t.fires.map(|event| {
            let taken = while_in.iter().any(|s| transitions.iter().any(|tr| tr.event.as_str() == event.value && tr.from.contains(s)));
            if !taken {
                ctx.at(&loc(&event), format!("il timer '{}' genera l'evento '{}' ma nessuna transizione lo accetta dagli stati in cui è attivo", t.id.value, event.value));
            }
            EventName(event.value)
        });
        let mut reminders = Vec::new();
        for r in t.reminders {
            let r_loc = loc(&r);
            let r = r.value;
            let before = match (r.days_before, r.hours_before) {
                (Some(d), None) if d > 0 => u32::try_from(d).ok().map(Offset::Days),
                (None, Some(h)) if h > 0 => u32::try_from(h).ok().map(Offset::Hours),
                _ => None,
            };
            let Some(before) = before else {
                ctx.at(
                    &r_loc,
                    "un promemoria vuole esattamente uno tra days_before e hours_before, positivo",
                );
                continue;
            };
            let notify = check_notify(ctx, &r_loc, r.notify, true);
            reminders.push(Reminder { before, notify });
        }
        if fires.is_none() && reminders.is_empty() {
            ctx.at(
                &loc(&t.id),
                format!("il timer '{}' non genera eventi né promemoria", t.id.value),
            );
        }
        timers.push(Timer {
            id: t.id.value,
            while_in,
            at: VarName(t.at.value),
            fires,
            reminders,
        });
    }

    // Cron jobs
    let mut cron = Vec::new();
    for job in raw.cron {
        let j = job.value;
        if let Err(e) = j.schedule.value.parse::<cron::Schedule>() {
            ctx.at(
                &loc(&j.schedule),
                format!("espressione cron '{}' non valida: {e}", j.schedule.value),
            );
        }
        if !JOB_KINDS.contains(&j.job.value.as_str()) {
            ctx.at(
                &loc(&j.job),
                format!(
                    "lavoro '{}' sconosciuto (ammessi: {})",
                    j.job.value,
                    JOB_KINDS.join(", ")
                ),
            );
        }
        if cron.iter().any(|c: &CronJob| c.id == j.id.value) {
            ctx.at(
                &loc(&j.id),
                format!("lavoro pianificato '{}' duplicato", j.id.value),
            );
        }
        cron.push(CronJob {
            id: j.id.value,
            schedule: j.schedule.value,
            job: j.job.value,
        });
    }

    let submissions = raw.submissions.map(|sub| {
        let s = sub.value;
        match lookup(&s.deadline.value) {
            Some(VarType::DateTime) => {}
            Some(other) => ctx.at(
                &loc(&s.deadline),
                format!(
                    "submissions.deadline: '{}' è di tipo {other}, serve datetime",
                    s.deadline.value
                ),
            ),
            None => ctx.at(
                &loc(&s.deadline),
                format!("variabile non dichiarata '{}'", s.deadline.value),
            ),
        }
        let mut states_of = |list: OneOrMany| -> Vec<StateId> {
            list.into_vec()
                .into_iter()
                .map(|st| {
                    if !states.contains_key(st.value.as_str()) {
                        ctx.at(&loc(&st), format!("stato sconosciuto '{}'", st.value));
                    }
                    StateId(st.value)
                })
                .collect()
        };
        let while_in = states_of(s.while_in);
        let questions_while = s
            .questions_while
            .map(&mut states_of)
            .unwrap_or_else(|| while_in.clone());
        let soccorso_while = s.soccorso_while.map(&mut states_of).unwrap_or_default();
        let ranking_while = s.ranking_while.map(&mut states_of).unwrap_or_default();
        Submissions {
            deadline: VarName(s.deadline.value),
            while_in,
            questions_while,
            soccorso_while,
            ranking_while,
        }
    });

    let procedure = Procedure {
        submissions,
        id: raw.id.value,
        version,
        title: raw.title.value,
        description: raw.description,
        calendar,
        roles,
        variables,
        states,
        transitions,
        timers,
        cron,
    };
    if graph_is_sound {
        check_graph(ctx, &procedure, &state_locs);
    }
    procedure
}

fn check_term_cycles(ctx: &mut Ctx<'_>, variables: &IndexMap<VarName, Variable>) {
    for (name, var) in variables {
        let mut seen = BTreeSet::new();
        let mut current = var.term.as_ref().map(|t| t.from.clone());
        while let Some(next) = current {
            if next == *name {
                ctx.at(
                    &Location::UNKNOWN,
                    format!("i termini delle variabili formano un ciclo che passa per '{name}'"),
                );
                break;
            }
            if !seen.insert(next.clone()) {
                break;
            }
            current = variables
                .get(next.as_str())
                .and_then(|v| v.term.as_ref().map(|t| t.from.clone()));
        }
    }
}

fn check_graph(ctx: &mut Ctx<'_>, p: &Procedure, locations: &BTreeMap<String, Location>) {
    let Some(initial) = p.states.values().find(|s| s.initial) else {
        return;
    };
    let mut reached = BTreeSet::new();
    let mut queue = VecDeque::from([initial.id.as_str()]);
    while let Some(state) = queue.pop_front() {
        if !reached.insert(state) {
            continue;
        }
        for t in p.transitions_from(state) {
            queue.push_back(t.to.as_str());
        }
    }
    for s in p.states.values() {
        let at = locations
            .get(s.id.as_str())
            .copied()
            .unwrap_or(Location::UNKNOWN);
        if !reached.contains(s.id.as_str()) {
            ctx.at(
                &at,
                format!(
                    "lo stato '{}' non è raggiungibile dallo stato iniziale",
                    s.id
                ),
            );
        }
        if !s.is_final && p.transitions_from(s.id.as_str()).next().is_none() {
            ctx.at(
                &at,
                format!(
                    "lo stato '{}' non è finale e non ha transizioni in uscita",
                    s.id
                ),
            );
        }
    }
}
