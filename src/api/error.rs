//! The one mapping from what can go wrong to what a GraphQL client reads: every error carries
//! `extensions.code` (`UNAUTHENTICATED`, `FORBIDDEN`, `NOT_FOUND`, `BAD_USER_INPUT`,
//! `CONFLICT`, `DEADLINE_PASSED`, `RATE_LIMITED` or `INTERNAL_SERVER_ERROR`), an Italian
//! message, and never a stack trace, SQL or a database message.
//!
//! Resolvers return `Result<T, ApiError>`; async-graphql keeps the `ApiError` as the error's
//! source, and the [`ErrorCodes`] extension turns it into the code and extra fields on every
//! response (HTTP and WebSocket alike). Errors raised by async-graphql itself (parse,
//! validation, limits, argument coercion) get `BAD_USER_INPUT`.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe,
};
use async_graphql::futures_util::StreamExt;
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::{ErrorExtensionValues, Response, ServerError, Value};
use chrono::{DateTime, FixedOffset};

use super::metrics::Metrics;
use crate::{engine, service, store};

/// An error as the API reports it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// No token, or a token that is unknown, expired or revoked.
    #[error("autenticazione richiesta: token assente, non valido, scaduto o revocato")]
    Unauthenticated,
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing the caller may see has this id (whether or not it exists).
    #[error("{what} inesistente")]
    NotFound {
        /// What was looked for (Italian: "istanza", "domanda"…).
        what: &'static str,
    },
    /// The request is wrong: a refused event, a missing or invalid input, a broken limit.
    #[error("{message}")]
    BadUserInput {
        /// What is wrong.
        message: String,
        /// The input field at fault, if one.
        field: Option<String>,
    },
    /// Someone else changed the object first, or the object is already in that condition.
    #[error("{0}")]
    Conflict(String),
    /// The term for this act has expired (or the window is closed).
    #[error("{message}")]
    DeadlinePassed {
        /// What is closed, in Italian.
        message: String,
        /// The deadline, when the procedure has one.
        deadline: Option<DateTime<FixedOffset>>,
        /// The computation of the deadline, one Italian line per step.
        trace: Vec<String>,
    },
    /// Too many requests for this token or address: try again after the given seconds.
    #[error(
        "troppe richieste: limite di frequenza superato, riprovare tra {retry_after_seconds} secondi"
    )]
    RateLimited {
        /// Seconds to wait (the `Retry-After` header over HTTP).
        retry_after_seconds: u64,
    },
    /// Something failed inside; logged where it happened, never described to the client.
    #[error("errore interno: riprovare più tardi")]
    Internal,
}

impl ApiError {
    /// The `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound { .. } => "NOT_FOUND",
            ApiError::BadUserInput { .. } => "BAD_USER_INPUT",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::DeadlinePassed { .. } => "DEADLINE_PASSED",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::Internal => "INTERNAL_SERVER_ERROR",
        }
    }

    /// A bad input, naming no field.
    pub fn bad_input(message: impl Into<String>) -> ApiError {
        ApiError::BadUserInput {
            message: message.into(),
            field: None,
        }
    }

    /// A bad input in a field.
    pub fn bad_field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::BadUserInput {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// An internal failure: logs what happened (server side only) and hides it.
    pub fn internal(what: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %what, "errore interno dell'API");
        ApiError::Internal
    }

    /// The error as async-graphql carries it, already dressed with its code (for errors
    /// raised outside a resolver, e.g. while a request is prepared).
    pub(crate) fn into_server_error(self) -> ServerError {
        let mut error = ServerError::new(self.to_string(), None);
        error.extensions = Some(self.extensions());
        error.source = Some(Arc::new(self));
        error
    }

    /// The extensions this error adds to a GraphQL error.
    pub(crate) fn extensions(&self) -> ErrorExtensionValues {
        let mut ext = ErrorExtensionValues::default();
        ext.set("code", self.code());
        match self {
            ApiError::BadUserInput {
                field: Some(field), ..
            } => ext.set("field", field.as_str()),
            ApiError::DeadlinePassed {
                deadline, trace, ..
            } => {
                if let Some(deadline) = deadline {
                    ext.set("deadline", deadline.to_rfc3339());
                }
                ext.set(
                    "trace",
                    Value::List(trace.iter().map(|l| Value::String(l.clone())).collect()),
                );
            }
            ApiError::RateLimited {
                retry_after_seconds,
            } => ext.set("retryAfter", *retry_after_seconds),
            _ => {}
        }
        ext
    }
}

impl From<service::Error> for ApiError {
    fn from(err: service::Error) -> Self {
        match err {
            service::Error::Engine(e) => e.into(),
            service::Error::Store(e) => e.into(),
            service::Error::UnknownProcedure { .. } => ApiError::NotFound { what: "procedura" },
            service::Error::UnknownInstance { .. } => ApiError::NotFound { what: "istanza" },
            e @ service::Error::Definition(_) => ApiError::internal(e),
        }
    }
}

impl From<engine::Error> for ApiError {
    fn from(err: engine::Error) -> Self {
        use engine::Error as E;
        match &err {
            E::Forbidden { .. } => ApiError::Forbidden(err.to_string()),
            E::MissingInput { field }
            | E::InvalidInput { field, .. }
            | E::UnexpectedInput { field }
            | E::ComputedVariable { field } => ApiError::bad_field(field.clone(), err.to_string()),
            E::Term { variable, .. } => ApiError::bad_field(variable.clone(), err.to_string()),
            E::UnknownEvent { .. }
            | E::WrongState { .. }
            | E::GuardFailed { .. }
            | E::Concluded { .. }
            | E::NoParticipants
            | E::NotNow { .. }
            | E::ParticipantConcluded { .. }
            | E::ExtensionTooLate { .. }
            | E::ExtensionTooEarly { .. }
            | E::ExtensionNotLater { .. }
            | E::SubmissionsClosed { .. }
            | E::NoEvaluation
            | E::MeetingRefused { .. }
            | E::EvaluationRefused { .. } => ApiError::bad_input(err.to_string()),
            E::NotCommissioner { .. } => ApiError::Forbidden(err.to_string()),
            E::ScoresFrozen { .. } | E::EvaluationIncomplete { .. } => {
                ApiError::Conflict(err.to_string())
            }
            E::UnknownParticipant { .. } => ApiError::NotFound {
                what: "partecipante",
            },
            E::Withdrawn { .. } | E::AlreadyParticipant { .. } | E::TooManyWithdrawals { .. } => {
                ApiError::Conflict(err.to_string())
            }
            E::UnknownState { .. } => ApiError::internal(err),
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(err: store::Error) -> Self {
        match err {
            store::Error::Conflict { .. } => ApiError::Conflict(err.to_string()),
            store::Error::Busy | store::Error::AlreadyExists { .. } => {
                ApiError::Conflict(err.to_string())
            }
            store::Error::NotFound { what, .. } => ApiError::NotFound { what },
            other => ApiError::internal(other),
        }
    }
}

/// The extension that gives every error its code (see the module docs) and counts errors.
pub struct ErrorCodes {
    metrics: Arc<Metrics>,
}

impl ErrorCodes {
    /// The extension, counting into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> ErrorCodes {
        ErrorCodes { metrics }
    }
}

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension {
            metrics: self.metrics.clone(),
        })
    }
}

struct ErrorCodesExtension {
    metrics: Arc<Metrics>,
}

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        present(&mut response, &self.metrics);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let metrics = self.metrics.clone();
        next.run(ctx, stream)
            .map(move |mut response| {
                present(&mut response, &metrics);
                response
            })
            .boxed()
    }
}

/// Gives each error of a response its code and extra fields.
fn present(response: &mut Response, metrics: &Metrics) {
    for error in &mut response.errors {
        let code = dress(error);
        metrics.count_error(code);
    }
}

/// Sets code, message and extensions of one error; returns the code.
fn dress(error: &mut ServerError) -> &'static str {
    if let Some(api) = error.source::<ApiError>() {
        let api = api.clone();
        error.message = api.to_string();
        error.extensions = Some(api.extensions());
        return api.code();
    }
    // async-graphql's own errors: parse, validation and limits (no path), argument coercion.
    // Their messages describe the request, never the server.
    let mut ext = error.extensions.take().unwrap_or_default();
    ext.set("code", "BAD_USER_INPUT");
    error.extensions = Some(ext);
    "BAD_USER_INPUT"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_error_says_nothing_about_the_database() {
        let err: ApiError =
            store::Error::Database("near \"SELECT\": syntax error in SELECT * FROM tokens".into())
                .into();
        assert_eq!(err, ApiError::Internal);
        assert!(!err.to_string().contains("SELECT"));
    }

    #[test]
    fn engine_refusals_are_bad_input_or_forbidden() {
        let e: ApiError = engine::Error::Forbidden {
            role: "ets".into(),
            event: "pubblica".into(),
            allowed: vec!["rup".into()],
        }
        .into();
        assert_eq!(e.code(), "FORBIDDEN");
        let e: ApiError = engine::Error::MissingInput {
            field: "data_pubblicazione".into(),
        }
        .into();
        assert_eq!(e.code(), "BAD_USER_INPUT");
        let e: ApiError = store::Error::Conflict {
            instance_id: "x".into(),
            expected_version: 1,
        }
        .into();
        assert_eq!(e.code(), "CONFLICT");
        let e: ApiError = service::Error::UnknownInstance { id: "x".into() }.into();
        assert_eq!(e, ApiError::NotFound { what: "istanza" });
    }
}
