//! The interpreter. PURE: same (procedure, instance, command, now) → same result. It reads no
//! clock and writes nothing; effects come back as data.

pub mod effect;
pub mod step;
pub mod value;

pub use effect::*;
pub use step::{
    Actor, Command, START_EVENT, Snapshot, Step, available, desired_timers, fire, local_instant,
    reminder_notification, start,
};

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
}

#[cfg(test)]
mod tests;
