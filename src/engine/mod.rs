//! The interpreter. PURE: same (procedure, instance, command, now) → same result. It reads no
//! clock and writes nothing; effects come back as data.

pub mod consegna;
pub mod effect;
pub mod evaluation;
pub mod expiry;
pub mod meeting;
pub mod migrate;
pub mod plan;
pub mod scope;
pub mod step;
pub mod terms;
pub mod value;

pub use effect::*;
pub use plan::desired_timers;
pub use step::{
    Actor, Command, JOIN_EVENT, Joining, ParticipantMove, ReminderTimer, START_EVENT, Snapshot,
    Step, WITHDRAW_EVENT, available, available_to_participant, fire, join, reminder_notifications,
    start, start_awaited, withdraw,
};
pub use value::local_instant;

/// Why the engine refused a command. Messages are Italian: a person reads them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The event exists nowhere in the procedure.
    #[error("l'evento '{event}' non esiste in questa procedura")]
    UnknownEvent {
        /// The event.
        event: String,
    },
    /// The event exists but not from the current state.
    #[error("l'evento '{event}' non è ammesso nello stato '{state}' (ammesso da: {})", allowed.join(", "))]
    WrongState {
        /// The event.
        event: String,
        /// Current state.
        state: String,
        /// States it may be fired from.
        allowed: Vec<String>,
    },
    /// The actor's role may not fire it.
    #[error("il ruolo '{role}' non può eseguire '{event}' (ruoli ammessi: {})", allowed.join(", "))]
    Forbidden {
        /// The actor's role.
        role: String,
        /// The event.
        event: String,
        /// Roles that may.
        allowed: Vec<String>,
    },
    /// A required input is missing.
    #[error("manca il campo obbligatorio '{field}'")]
    MissingInput {
        /// The field.
        field: String,
    },
    /// An input has the wrong type.
    #[error("il campo '{field}' deve essere {expected}")]
    InvalidInput {
        /// The field.
        field: String,
        /// What was expected.
        expected: String,
    },
    /// An input the transition does not take.
    #[error("il campo '{field}' non è previsto")]
    UnexpectedInput {
        /// The field.
        field: String,
    },
    /// A term-computed variable was given a value.
    #[error("il campo '{field}' è calcolato da un termine e non si può impostare")]
    ComputedVariable {
        /// The field.
        field: String,
    },
    /// A guard does not hold.
    #[error("{message}")]
    GuardFailed {
        /// The message of the guard.
        message: String,
        /// The condition as written.
        condition: String,
    },
    /// The instance is in a final state.
    #[error("il procedimento è concluso ({state}): nessuna azione è più possibile")]
    Concluded {
        /// Title of the final state.
        state: String,
    },
    /// The stored state is not in the pinned definition (a corrupted row).
    #[error("stato sconosciuto '{state}'")]
    UnknownState {
        /// The state.
        state: String,
    },
    /// A term could not be computed.
    #[error("termine '{variable}' non calcolabile: {message}")]
    Term {
        /// The variable.
        variable: String,
        /// Why.
        message: String,
    },
    /// The procedure has no participants.
    #[error("questa procedura non ha partecipanti")]
    NoParticipants,
    /// No such participant in the instance.
    #[error("partecipante sconosciuto '{id}'")]
    UnknownParticipant {
        /// The id asked for.
        id: String,
    },
    /// The participant withdrew its application.
    #[error("la domanda di {name} è stata ritirata")]
    Withdrawn {
        /// Its name.
        name: String,
    },
    /// The participant's lifecycle has ended.
    #[error("la domanda di {name} è conclusa ({state}): nessuna azione è più possibile")]
    ParticipantConcluded {
        /// Its name.
        name: String,
        /// Title of its final state.
        state: String,
    },
    /// The organisation already takes part.
    #[error(
        "{name} partecipa già a questa procedura: ritirare la domanda attiva per presentarne una nuova"
    )]
    AlreadyParticipant {
        /// Its name.
        name: String,
    },
    /// A participant's event the procedure's state does not allow now.
    #[error("l'evento '{event}' non è ammesso mentre la procedura è nello stato '{state}' (ammesso in: {})", allowed.join(", "))]
    NotNow {
        /// The event.
        event: String,
        /// The procedure's state.
        state: String,
        /// States of the procedure in which it is allowed.
        allowed: Vec<String>,
    },
    /// The meeting refuses the command, with why (Italian).
    #[error("{reason}")]
    MeetingRefused {
        /// Why.
        reason: String,
    },
    /// The procedure has no evaluation by a commissione.
    #[error("questa procedura non prevede una valutazione della commissione")]
    NoEvaluation,
    /// The evaluation refuses the command, with why (Italian).
    #[error("{reason}")]
    EvaluationRefused {
        /// Why.
        reason: String,
    },
    /// The graduatoria is approved: scores, criteria and commissione no longer change.
    #[error(
        "la graduatoria è approvata (determina n. {number} del {date}): punteggi, criteri e commissione non si modificano più"
    )]
    ScoresFrozen {
        /// The determina's number.
        number: String,
        /// Its date.
        date: String,
    },
    /// The person is not a member of the commissione.
    #[error("'{person}' non fa parte della commissione di questa procedura")]
    NotCommissioner {
        /// The person.
        person: String,
    },
    /// Proposals still to be scored in full.
    #[error("la valutazione non è completa per: {names}")]
    EvaluationIncomplete {
        /// Their names.
        names: String,
    },
    /// An organisation withdrew too many applications from one notice.
    #[error(
        "{name} ha già ritirato {count} domande su questo avviso: per presentarne un'altra rivolgersi all'Ufficio di Piano"
    )]
    TooManyWithdrawals {
        /// Its name.
        name: String,
        /// How many it withdrew.
        count: usize,
    },
    /// An application after the deadline.
    #[error("il termine per presentare le domande è scaduto ({deadline})")]
    SubmissionsClosed {
        /// The deadline.
        deadline: String,
    },
    /// A proroga after the term expired.
    #[error(
        "il termine '{term}' è scaduto ({deadline}): non si può più prorogare; occorre una riapertura dei termini, con un atto distinto"
    )]
    ExtensionTooLate {
        /// The term variable.
        term: String,
        /// Its expiry.
        deadline: String,
    },
    /// A riapertura before the term expired.
    #[error("il termine '{term}' non è ancora scaduto ({deadline}): si proroga, non si riapre")]
    ExtensionTooEarly {
        /// The term variable.
        term: String,
        /// Its expiry.
        deadline: String,
    },
    /// The new expiry is not later than the old one, or than now.
    #[error(
        "la nuova scadenza di '{term}' ({new}) deve essere successiva a quella attuale ({previous}) e a questo momento"
    )]
    ExtensionNotLater {
        /// The term variable.
        term: String,
        /// Its expiry before.
        previous: String,
        /// The expiry asked for.
        new: String,
    },
}

#[cfg(test)]
mod tests;
