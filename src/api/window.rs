//! When ETS may act on a notice: submissions and withdrawals while the instance is in one of
//! the `submissions.while_in` states and not after the deadline variable's instant; questions
//! in `questions_while` states, also not after the deadline; soccorso answers in
//! `soccorso_while` states. A closed window is `DEADLINE_PASSED` with the deadline and the
//! trace of its computation.

use chrono::{DateTime, FixedOffset, Utc};

use super::error::ApiError;
use crate::definition::{StateId, Submissions};
use crate::store::InstanceRow;

use crate::definition::Procedure;

/// What an ETS is trying to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// Submit an application.
    Submit,
    /// Withdraw an application.
    Withdraw,
    /// Ask a question.
    Ask,
    /// Answer a soccorso istruttorio.
    Soccorso,
}

/// Ok if the act is open at `now`, else the refusal.
pub(crate) fn check(
    p: &Procedure,
    row: &InstanceRow,
    act: Act,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let Some(s) = &p.submissions else {
        return Err(ApiError::bad_input(
            "questa procedura non riceve domande tramite l'API",
        ));
    };
    let states: &[StateId] = match act {
        Act::Submit | Act::Withdraw => &s.while_in,
        Act::Ask => &s.questions_while,
        Act::Soccorso => &s.soccorso_while,
    };
    let in_state = states.iter().any(|st| st.as_str() == row.state);
    if act == Act::Soccorso {
        return if in_state {
            Ok(())
        } else {
            Err(closed(s, row, "il soccorso istruttorio non è aperto"))
        };
    }
    let what = match act {
        Act::Submit => "il termine per presentare le domande è scaduto",
        Act::Withdraw => "il termine per ritirare la domanda è scaduto",
        _ => "il termine per porre quesiti è scaduto",
    };
    match deadline(s, row) {
        Some(deadline) if in_state && now <= deadline => Ok(()),
        Some(_) => Err(closed(s, row, what)),
        None if in_state => Err(closed(s, row, "il termine non è ancora fissato")),
        None => Err(closed(s, row, what)),
    }
}

/// The deadline variable's instant, if set.
pub(crate) fn deadline(s: &Submissions, row: &InstanceRow) -> Option<DateTime<FixedOffset>> {
    row.data
        .variables
        .get(s.deadline.as_str())
        .and_then(|v| v.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
}

fn closed(s: &Submissions, row: &InstanceRow, what: &str) -> ApiError {
    let deadline = deadline(s, row);
    let trace = row
        .data
        .terms
        .get(s.deadline.as_str())
        .map(|t| t.trace.clone())
        .unwrap_or_default();
    let message = match deadline {
        Some(d) => format!("{what} (scadenza: {})", d.to_rfc3339()),
        None => what.to_string(),
    };
    ApiError::DeadlinePassed {
        message,
        deadline,
        trace,
    }
}
