//! What a resolver reads from the request: the shared state and the caller. The caller is
//! resolved from the bearer token lazily, on the first resolver that needs it — after the
//! query has been parsed and validated, so a refused query costs no database work.

use std::sync::Arc;

use async_graphql::Context;
use tokio::sync::OnceCell;

use super::Shared;
use super::error::ApiError;
use super::policy::Caller;
use crate::identity::{self, Role};
use crate::service::Service;

/// The request's credentials and, once resolved, its caller.
pub(crate) struct Auth {
    bearer: Option<String>,
    caller: OnceCell<Result<Arc<Caller>, ApiError>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("Auth")
            .field("bearer", &self.bearer.as_ref().map(|_| "<nascosto>"))
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Credentials to resolve when needed.
    pub(crate) fn bearer(bearer: Option<String>) -> Auth {
        Auth {
            bearer,
            caller: OnceCell::new(),
        }
    }

    /// A caller resolved already (WebSocket connections authenticate once, at init).
    pub(crate) fn resolved(caller: Caller) -> Auth {
        Auth {
            bearer: None,
            caller: OnceCell::new_with(Some(Ok(Arc::new(caller)))),
        }
    }
}

/// The shared state.
pub(crate) fn shared<'a>(ctx: &Context<'a>) -> Result<&'a Arc<Shared>, ApiError> {
    ctx.data::<Arc<Shared>>()
        .map_err(|e| ApiError::internal(format!("stato dell'API assente: {}", e.message)))
}

/// The caller, or `UNAUTHENTICATED`.
pub(crate) async fn caller(ctx: &Context<'_>) -> Result<Arc<Caller>, ApiError> {
    let shared = shared(ctx)?;
    let Ok(auth) = ctx.data::<Auth>() else {
        return Err(ApiError::Unauthenticated);
    };
    auth.caller
        .get_or_init(|| async {
            authenticate(&shared.service, auth.bearer.as_deref())
                .await
                .map(Arc::new)
        })
        .await
        .clone()
}

/// The bearer secret of an `Authorization` header value.
pub(crate) fn bearer_of(header: &str) -> Option<String> {
    let (scheme, secret) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| secret.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Resolves a bearer secret to its caller: the token must exist, be neither expired nor
/// revoked (by the service clock), and its person must still hold its role.
pub async fn authenticate(service: &Service, bearer: Option<&str>) -> Result<Caller, ApiError> {
    let Some(secret) = bearer else {
        return Err(ApiError::Unauthenticated);
    };
    if !identity::looks_like_secret(secret) {
        return Err(ApiError::Unauthenticated);
    }
    let Some(credential) = service
        .store()
        .credential(&identity::hash_secret(secret))
        .await?
    else {
        return Err(ApiError::Unauthenticated);
    };
    if !credential.token.is_valid_at(service.now()) {
        return Err(ApiError::Unauthenticated);
    }
    let Ok(role) = credential.token.role.parse::<Role>() else {
        return Err(ApiError::Unauthenticated);
    };
    if !credential.person.roles.iter().any(|r| r == role.as_str()) {
        return Err(ApiError::Unauthenticated);
    }
    Ok(Caller {
        person_id: credential.person.id,
        person_name: credential.person.name,
        organisation_id: credential.organisation.id,
        organisation_name: credential.organisation.name,
        role,
        token_id: credential.token.id,
    })
}
