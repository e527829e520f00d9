//! The one authorization policy: `decide(caller, subject)` says whether a caller may read or
//! do something with one object. Every resolver asks it — to load an object, to filter a list,
//! to hide a variable — so no field checks permissions by hand.
//!
//! The policy is pure: the resolver layer loads the facts (the instance row, its procedure,
//! whether the caller's organisation submitted to it) and the policy only reads them.
//!
//! The rules:
//! - **staff** (`ufficio_di_piano`, `rup`, `commissione`, `auditor`) read every procedure of the
//!   Ambito with all its variables, history and submissions; the auditor changes nothing; only
//!   `ufficio_di_piano` and `rup` start procedures and answer questions; `commissione` (with
//!   them) records outcomes. Where a commissione evaluates (`evaluation:`), the
//!   `commissione` role reads the proposals only as a member with a clean declaration
//!   (before it: the applicants' names); an ETS reads scores only after the graduatoria is
//!   approved, and only its own.
//! - an **ETS** sees published notices (procedures with a `submissions:` section, past their
//!   initial state) and the instances it is a party to (listed in a `parties` variable, or it
//!   submitted). It reads public variables, and the variables visible to `ets` only where it is
//!   a party; its own submissions, questions and outcomes; public answers. Another ETS's
//!   submission is *hidden*: the same `NOT_FOUND` as an id that does not exist.
//! - a **sindaco** sees, past their initial state, the instances of procedures in which the
//!   role `sindaco` appears — only those listing them (person or comune) when the instance has
//!   a non-empty `parties` variable — and the variables visible to `sindaco` or public.
//! - anyone may fire a transition only if the definition lists their role for that event (the
//!   engine checks again, with the state).
//! - a **participant** (an ETS's application in its own lifecycle) is read by staff and by its
//!   own organisation only — its state, its variables visible to its role, its terms, its
//!   history rows; anyone else gets `NOT_FOUND`. Its events are fired by the roles its
//!   transitions list, and by an ETS only on its own participant.

use serde_json::Value;

use super::error::ApiError;
use crate::definition::{Procedure, VarType, Variable, Visibility};
use crate::engine::ParticipantData;
use crate::identity::Role;
use crate::store::{InstanceRow, ProtocolRegistration, QuestionRow, SubmissionRow};

/// Who is calling: resolved from the bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The person.
    pub person_id: String,
    /// Their name.
    pub person_name: String,
    /// The organisation they act for.
    pub organisation_id: String,
    /// Its name.
    pub organisation_name: String,
    /// The role the token acts in.
    pub role: Role,
    /// The token's public id (for audit; never the secret).
    pub token_id: String,
}

impl Caller {
    /// The actor recorded in the history for this caller.
    pub fn actor(&self) -> crate::engine::Actor {
        crate::engine::Actor {
            id: self.person_id.clone(),
            role: self.role.as_str().to_string(),
        }
    }
}

/// What the policy knows about an instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceFacts<'a> {
    /// Its pinned procedure.
    pub procedure: &'a Procedure,
    /// The row.
    pub row: &'a InstanceRow,
    /// The caller's organisation has submitted to it (in any status).
    pub submitted: bool,
}

/// What is asked about.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// Read a procedure definition.
    Definition(&'a Procedure),
    /// Read an instance (state, its public face).
    Instance(InstanceFacts<'a>),
    /// Read one variable of an instance (and its term trace).
    Variable(InstanceFacts<'a>, &'a Variable),
    /// Read who did what in the history (actor ids, payloads).
    HistoryDetail(InstanceFacts<'a>),
    /// Start an instance of a procedure.
    Start(&'a Procedure),
    /// Fire an event on an instance.
    Fire(InstanceFacts<'a>, &'a str),
    /// Read a submission (with its documents and outcome).
    Submission(&'a SubmissionRow),
    /// Submit an application to an instance.
    Submit(InstanceFacts<'a>),
    /// Withdraw a submission or answer a soccorso on it: its own ETS only.
    ManageSubmission(&'a SubmissionRow),
    /// Record the outcome of a submission.
    RecordOutcome(&'a SubmissionRow),
    /// Ask a question on an instance.
    Ask(InstanceFacts<'a>),
    /// Read a question (and its answer).
    Question(&'a QuestionRow),
    /// Answer a question.
    Answer(&'a QuestionRow),
    /// Read the ranking of an instance.
    Ranking(InstanceFacts<'a>),
    /// Read a protocol registration (of an instance the caller may see).
    ProtocolRegistration(&'a ProtocolRegistration),
    /// Read a participant (its state, terms and history).
    Participant(InstanceFacts<'a>, &'a ParticipantData),
    /// Read one variable of a participant.
    ParticipantVariable(InstanceFacts<'a>, &'a ParticipantData, &'a Variable),
    /// Fire an event on a participant.
    FireParticipant(InstanceFacts<'a>, &'a ParticipantData, &'a str),
    /// Administer the Ambito: deploy and migrate definitions, manage people, organisations
    /// and tokens, read the audit log.
    Administration,
    /// Read the deliveries and the outbox (who received which message, failures).
    Deliveries,
    /// Re-queue a failed delivery.
    Requeue,
}

impl Subject<'_> {
    /// What to call the object when it is hidden.
    fn what(&self) -> &'static str {
        match self {
            Subject::Definition(_) | Subject::Start(_) => "procedura",
            Subject::Instance(_)
            | Subject::Variable(..)
            | Subject::HistoryDetail(_)
            | Subject::Fire(..)
            | Subject::Submit(_)
            | Subject::Ask(_)
            | Subject::Ranking(_) => "istanza",
            Subject::Submission(_) | Subject::ManageSubmission(_) | Subject::RecordOutcome(_) => {
                "domanda"
            }
            Subject::Question(_) | Subject::Answer(_) => "quesito",
            Subject::ProtocolRegistration(_) => "registrazione di protocollo",
            Subject::Participant(..)
            | Subject::ParticipantVariable(..)
            | Subject::FireParticipant(..) => "domanda",
            Subject::Administration => "amministrazione",
            Subject::Deliveries | Subject::Requeue => "consegna",
        }
    }
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// The caller may see the object but not do this (the reason, Italian).
    Forbidden(&'static str),
    /// The caller may not know the object exists.
    Hidden,
}

/// Decides whether `caller` may read or do `subject`.
pub fn decide(caller: &Caller, subject: &Subject<'_>) -> Decision {
    use Decision::{Allow, Forbidden, Hidden};
    let role = caller.role;
    match *subject {
        Subject::Administration => match role {
            Role::Amministratore => Allow,
            _ => Forbidden("riservato all'amministratore di sistema (ruolo amministratore)"),
        },
        Subject::Deliveries => match role {
            Role::Amministratore | Role::UfficioDiPiano | Role::Rup | Role::Auditor => Allow,
            _ => Forbidden("le consegne sono lette dall'Ufficio di Piano e dall'amministratore"),
        },
        Subject::Requeue => match role {
            Role::Amministratore | Role::UfficioDiPiano => Allow,
            _ => Forbidden(
                "una consegna fallita è rimessa in coda dall'Ufficio di Piano o dall'amministratore",
            ),
        },
        Subject::Definition(_) => Allow,
        Subject::Instance(facts) => instance(caller, facts),
        Subject::Variable(facts, variable) => match instance(caller, facts) {
            Allow if role.is_staff() => Allow,
            Allow => match &variable.visibility {
                Visibility::Public => Allow,
                Visibility::Roles(roles)
                    if roles.iter().any(|r| r.as_str() == role.as_str())
                        && (role != Role::Ets || is_party(caller, facts)) =>
                {
                    Allow
                }
                _ => Hidden,
            },
            other => other,
        },
        Subject::HistoryDetail(facts) => match instance(caller, facts) {
            Allow if role.is_staff() => Allow,
            Allow => Forbidden("il dettaglio dello storico è riservato all'Ufficio di Piano"),
            other => other,
        },
        Subject::Start(_) => match role {
            Role::UfficioDiPiano | Role::Rup => Allow,
            _ => Forbidden("solo l'Ufficio di Piano e il RUP avviano procedimenti"),
        },
        Subject::Fire(facts, event) => match instance(caller, facts) {
            Allow if !role.may_write() => Forbidden("il ruolo auditor è in sola lettura"),
            Allow => {
                let mut with_event = facts
                    .procedure
                    .transitions
                    .iter()
                    .filter(|t| t.event.as_str() == event)
                    .peekable();
                if with_event.peek().is_none() {
                    // Unknown event: the engine names it in a BAD_USER_INPUT.
                    Allow
                } else if with_event.any(|t| t.roles.iter().any(|r| r.as_str() == role.as_str())) {
                    Allow
                } else {
                    Forbidden("il vostro ruolo non può eseguire questo evento")
                }
            }
            other => other,
        },
        Subject::Submission(s) => {
            if role.is_staff() || (role == Role::Ets && s.organisation_id == caller.organisation_id)
            {
                Allow
            } else {
                Hidden
            }
        }
        Subject::Submit(facts) => match instance(caller, facts) {
            Allow if role == Role::Ets => Allow,
            Allow => Forbidden("solo un ETS presenta domande"),
            other => other,
        },
        Subject::ManageSubmission(s) => {
            if role == Role::Ets && s.organisation_id == caller.organisation_id {
                Allow
            } else if role.is_staff() {
                Forbidden("solo l'ETS che l'ha presentata può ritirare o integrare una domanda")
            } else {
                Hidden
            }
        }
        Subject::RecordOutcome(s) => match role {
            Role::UfficioDiPiano | Role::Rup | Role::Commissione => Allow,
            Role::Auditor => Forbidden("il ruolo auditor è in sola lettura"),
            Role::Ets if s.organisation_id == caller.organisation_id => {
                Forbidden("l'esito è registrato dall'Ufficio di Piano")
            }
            _ => Hidden,
        },
        Subject::Ask(facts) => match instance(caller, facts) {
            Allow if role == Role::Ets => Allow,
            Allow => Forbidden("solo un ETS pone quesiti"),
            other => other,
        },
        Subject::Question(q) => {
            if role.is_staff()
                || (role == Role::Ets
                    && (q.organisation_id == caller.organisation_id
                        || (q.public && q.answer.is_some())))
            {
                Allow
            } else {
                Hidden
            }
        }
        Subject::Answer(q) => match role {
            Role::UfficioDiPiano | Role::Rup => Allow,
            Role::Commissione | Role::Auditor => {
                Forbidden("i quesiti sono risposti dall'Ufficio di Piano o dal RUP")
            }
            Role::Ets if q.organisation_id == caller.organisation_id => {
                Forbidden("i quesiti sono risposti dall'Ufficio di Piano o dal RUP")
            }
            _ => Hidden,
        },
        Subject::ProtocolRegistration(r) => {
            // Staff read the register; anyone else only what it sent or what was addressed
            // to its organisation.
            if role.is_staff()
                || r.correspondents
                    .iter()
                    .any(|c| c.organisation_id.as_deref() == Some(caller.organisation_id.as_str()))
            {
                Allow
            } else {
                Hidden
            }
        }
        Subject::Ranking(facts) => instance(caller, facts),
        Subject::Participant(facts, part) => participant(caller, facts, part),
        Subject::ParticipantVariable(facts, part, variable) => {
            match participant(caller, facts, part) {
                Allow if role.is_staff() => Allow,
                Allow => match &variable.visibility {
                    Visibility::Public => Allow,
                    Visibility::Roles(roles)
                        if roles.iter().any(|r| r.as_str() == role.as_str()) =>
                    {
                        Allow
                    }
                    _ => Hidden,
                },
                other => other,
            }
        }
        Subject::FireParticipant(facts, part, event) => match participant(caller, facts, part) {
            Allow if !role.may_write() => Forbidden("il ruolo auditor è in sola lettura"),
            Allow => {
                let transitions = facts
                    .procedure
                    .participant
                    .iter()
                    .flat_map(|d| d.transitions.iter())
                    .filter(|t| t.event.as_str() == event)
                    .collect::<Vec<_>>();
                if transitions.is_empty()
                    || transitions
                        .iter()
                        .any(|t| t.roles.iter().any(|r| r.as_str() == role.as_str()))
                {
                    Allow
                } else {
                    Forbidden("il vostro ruolo non può eseguire questo evento")
                }
            }
            other => other,
        },
    }
}

/// A participant is the business of staff and of its own organisation (the capofila of a
/// group) only.
/// Whether the caller may read the proposals of an instance: staff may, except that where
/// a commissione evaluates, the `commissione` role reads them only as a member who declared
/// no conflict and no conviction (before that, the applicants' names only).
pub fn reads_proposals(caller: &Caller, facts: InstanceFacts<'_>) -> bool {
    match caller.role {
        Role::UfficioDiPiano | Role::Rup | Role::Auditor => true,
        Role::Commissione => {
            facts.procedure.evaluation.is_none()
                || facts
                    .row
                    .data
                    .evaluation
                    .as_ref()
                    .and_then(|ev| ev.commission.as_ref())
                    .and_then(|c| c.member(&caller.person_id))
                    .is_some_and(|m| m.status() == crate::engine::evaluation::MemberStatus::Active)
        }
        _ => false,
    }
}

/// Whether the caller may read a history row with this event: the scores and the sessions of
/// the commissione are read by who reads the proposals.
pub fn reads_step(caller: &Caller, facts: InstanceFacts<'_>, event: &str) -> bool {
    !crate::engine::evaluation::STAFF_ONLY_EVENTS.contains(&event) || reads_proposals(caller, facts)
}

fn participant(caller: &Caller, facts: InstanceFacts<'_>, part: &ParticipantData) -> Decision {
    match instance(caller, facts) {
        Decision::Allow if caller.role == Role::Commissione && !reads_proposals(caller, facts) => {
            Decision::Hidden
        }
        Decision::Allow if caller.role.is_staff() => Decision::Allow,
        Decision::Allow
            if part.organisation_id == caller.organisation_id
                && facts
                    .procedure
                    .participant
                    .as_ref()
                    .is_some_and(|d| d.role.as_str() == caller.role.as_str()) =>
        {
            Decision::Allow
        }
        Decision::Allow => Decision::Hidden,
        other => other,
    }
}

/// `decide`, as a result: `Hidden` becomes `NOT_FOUND`, `Forbidden` becomes `FORBIDDEN`.
pub fn authorize(caller: &Caller, subject: &Subject<'_>) -> Result<(), ApiError> {
    match decide(caller, subject) {
        Decision::Allow => Ok(()),
        Decision::Forbidden(reason) => Err(ApiError::Forbidden(reason.to_string())),
        Decision::Hidden => Err(ApiError::NotFound {
            what: subject.what(),
        }),
    }
}

/// Whether `decide` allows it.
pub fn allows(caller: &Caller, subject: &Subject<'_>) -> bool {
    decide(caller, subject) == Decision::Allow
}

fn instance(caller: &Caller, facts: InstanceFacts<'_>) -> Decision {
    let p = facts.procedure;
    let published = facts.row.state != p.initial_state().id.as_str();
    let visible = match caller.role {
        role if role.is_staff() => true,
        Role::Ets => is_party(caller, facts) || (p.submissions.is_some() && published),
        Role::Sindaco | Role::Tecnico => {
            let declares = p.roles.keys().any(|r| r.as_str() == caller.role.as_str());
            let listed = listed_parties(p, facts.row);
            declares
                && published
                && (listed.is_empty()
                    || listed
                        .iter()
                        .any(|id| *id == caller.person_id || *id == caller.organisation_id))
        }
        _ => false,
    };
    if visible {
        Decision::Allow
    } else {
        Decision::Hidden
    }
}

/// The caller's organisation is a party: it submitted, or a `parties` variable lists it.
fn is_party(caller: &Caller, facts: InstanceFacts<'_>) -> bool {
    facts.submitted
        || listed_parties(facts.procedure, facts.row)
            .iter()
            .any(|id| *id == caller.organisation_id || *id == caller.person_id)
}

/// Ids listed in the instance's `parties` variables (each an id or an object with an `id`).
pub fn listed_parties<'a>(p: &Procedure, row: &'a InstanceRow) -> Vec<&'a str> {
    let mut out = Vec::new();
    for var in p.variables.values().filter(|v| v.kind == VarType::Parties) {
        if let Some(Value::Array(items)) = row.data.variables.get(var.name.as_str()) {
            for item in items {
                match item {
                    Value::String(id) => out.push(id.as_str()),
                    Value::Object(map) => {
                        if let Some(Value::String(id)) = map.get("id") {
                            out.push(id.as_str());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::InstanceData;
    use crate::store::SubmissionStatus;
    use chrono::Utc;

    fn avviso() -> Procedure {
        let (catalog, diags) = crate::catalog::load(&[std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/workflows"
        ))]);
        assert!(diags.is_empty(), "{diags:?}");
        catalog
            .and_then(|c| {
                c.latest("avviso_coprogettazione")
                    .map(|l| l.procedure.clone())
            })
            .expect("avviso")
    }

    fn row(state: &str) -> InstanceRow {
        InstanceRow {
            id: "i".into(),
            definition_id: "avviso_coprogettazione".into(),
            definition_version: 1,
            parent_id: None,
            state: state.into(),
            is_final: false,
            data: InstanceData::default(),
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn caller(role: Role, org: &str) -> Caller {
        Caller {
            person_id: format!("p-{org}"),
            person_name: "x".into(),
            organisation_id: org.into(),
            organisation_name: org.into(),
            role,
            token_id: "tok".into(),
        }
    }

    fn submission(org: &str) -> SubmissionRow {
        SubmissionRow {
            id: "s".into(),
            instance_id: "i".into(),
            organisation_id: org.into(),
            person_id: "p".into(),
            status: SubmissionStatus::Submitted,
            note: None,
            submitted_at: Utc::now(),
            withdrawn_at: None,
            outcome: None,
            score: None,
            outcome_at: None,
        }
    }

    #[test]
    fn an_ets_sees_published_notices_but_not_drafts() {
        let p = avviso();
        let ets = caller(Role::Ets, "ets-a");
        let draft = row("bozza");
        let published = row("pubblicato");
        assert_eq!(
            decide(
                &ets,
                &Subject::Instance(InstanceFacts {
                    procedure: &p,
                    row: &draft,
                    submitted: false
                })
            ),
            Decision::Hidden
        );
        assert_eq!(
            decide(
                &ets,
                &Subject::Instance(InstanceFacts {
                    procedure: &p,
                    row: &published,
                    submitted: false
                })
            ),
            Decision::Allow
        );
    }

    #[test]
    fn a_participant_and_its_variables_are_for_staff_and_its_own_ets_only() {
        let p = avviso();
        let mut r = row("valutazione");
        r.data.participants.insert(
            "s-b".into(),
            ParticipantData {
                organisation_id: "ets-b".into(),
                name: "Ente B".into(),
                members: Vec::new(),
                state: "ammessa".into(),
                variables: serde_json::Map::new(),
                terms: Default::default(),
                suspensions: Default::default(),
                joined_at: Utc::now(),
                withdrawn: false,
                consegne: Default::default(),
                pec: None,
            },
        );
        let part = &r.data.participants["s-b"];
        let outsider = InstanceFacts {
            procedure: &p,
            row: &r,
            submitted: false,
        };
        let party = InstanceFacts {
            procedure: &p,
            row: &r,
            submitted: true,
        };
        let (ets_a, ets_b) = (caller(Role::Ets, "ets-a"), caller(Role::Ets, "ets-b"));
        let punteggio = p.participant_variable("punteggio").expect("var");
        let oggetto = p.variable("oggetto").expect("var");
        assert!(allows(&ets_a, &Subject::Variable(outsider, oggetto)));
        assert_eq!(
            decide(&ets_a, &Subject::Participant(outsider, part)),
            Decision::Hidden
        );
        assert_eq!(
            decide(
                &ets_a,
                &Subject::ParticipantVariable(outsider, part, punteggio)
            ),
            Decision::Hidden
        );
        let esito = p.participant_variable("esito").expect("var");
        assert!(allows(
            &ets_b,
            &Subject::ParticipantVariable(party, part, esito)
        ));
        // The score is the commissione's until the graduatoria publishes it.
        assert!(!allows(
            &ets_b,
            &Subject::ParticipantVariable(party, part, punteggio)
        ));
        assert!(allows(
            &caller(Role::Auditor, "ambito"),
            &Subject::ParticipantVariable(outsider, part, punteggio)
        ));
        // Another ETS may not know the application exists; its own ETS fires only its events.
        assert_eq!(
            decide(&ets_a, &Subject::FireParticipant(outsider, part, "integra")),
            Decision::Hidden
        );
        assert_eq!(
            decide(&ets_b, &Subject::FireParticipant(party, part, "integra")),
            Decision::Allow
        );
        assert!(matches!(
            decide(&ets_b, &Subject::FireParticipant(party, part, "valuta")),
            Decision::Forbidden(_)
        ));
        assert!(matches!(
            decide(
                &caller(Role::Auditor, "ambito"),
                &Subject::FireParticipant(party, part, "valuta")
            ),
            Decision::Forbidden(_)
        ));
    }

    #[test]
    fn another_ets_submission_is_hidden_not_forbidden() {
        let theirs = submission("ets-b");
        assert_eq!(
            decide(&caller(Role::Ets, "ets-a"), &Subject::Submission(&theirs)),
            Decision::Hidden
        );
        assert_eq!(
            decide(&caller(Role::Ets, "ets-b"), &Subject::Submission(&theirs)),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &caller(Role::Sindaco, "comune"),
                &Subject::Submission(&theirs)
            ),
            Decision::Hidden
        );
        assert_eq!(
            decide(
                &caller(Role::Commissione, "ambito"),
                &Subject::Submission(&theirs)
            ),
            Decision::Allow
        );
        assert!(matches!(
            authorize(
                &caller(Role::Ets, "ets-a"),
                &Subject::ManageSubmission(&theirs)
            ),
            Err(ApiError::NotFound { .. })
        ));
    }

    #[test]
    fn firing_needs_a_role_the_definition_lists_and_the_auditor_never_fires() {
        let p = avviso();
        let r = row("pubblicato");
        let facts = InstanceFacts {
            procedure: &p,
            row: &r,
            submitted: false,
        };
        assert_eq!(
            decide(
                &caller(Role::Rup, "ambito"),
                &Subject::Fire(facts, "chiudi_domande")
            ),
            Decision::Allow
        );
        assert!(matches!(
            decide(
                &caller(Role::Commissione, "ambito"),
                &Subject::Fire(facts, "chiudi_domande")
            ),
            Decision::Forbidden(_)
        ));
        assert!(matches!(
            decide(
                &caller(Role::Auditor, "ambito"),
                &Subject::Fire(facts, "chiudi_domande")
            ),
            Decision::Forbidden(_)
        ));
        assert!(matches!(
            decide(
                &caller(Role::Ets, "ets-a"),
                &Subject::Fire(facts, "annulla")
            ),
            Decision::Forbidden(_)
        ));
    }
}
