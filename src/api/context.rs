//! What a resolver reads from the request: the shared state and the caller. The caller is
//! resolved from the bearer token lazily, on the first resolver that needs it — after the
//! query has been parsed and validated, so a refused query costs no database work — and once
//! per operation: an operation on a WebSocket resolves its caller again from the token the
//! connection opened with ([`SocketCredentials`]), so a token revoked meanwhile stops working
//! at once.

use std::net::IpAddr;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::{Context, Request, ServerResult};
use tokio::sync::OnceCell;

use super::Shared;
use super::error::ApiError;
use super::policy::Caller;
use crate::identity::{self, Role};
use crate::service::Service;

/// The request's credentials and, once resolved, its caller.
pub(crate) struct Auth {
    bearer: Option<String>,
    /// The client's address, to count refused tokens against it.
    address: Option<IpAddr>,
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
    pub(crate) fn bearer(bearer: Option<String>, address: Option<IpAddr>) -> Auth {
        Auth {
            bearer,
            address,
            caller: OnceCell::new(),
        }
    }

    /// The bearer secret, for a stream that checks it again later.
    pub(crate) fn secret(&self) -> Option<&str> {
        self.bearer.as_deref()
    }
}

/// The token a WebSocket connection opened with, kept as connection data: every operation on
/// the socket is admitted by the rate limit and resolves its caller from it again.
#[derive(Clone)]
pub(crate) struct SocketCredentials {
    /// The bearer secret.
    pub bearer: String,
    /// The client's address.
    pub address: Option<IpAddr>,
}

impl std::fmt::Debug for SocketCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketCredentials")
            .field("bearer", &"<nascosto>")
            .field("address", &self.address)
            .finish()
    }
}

/// Gives each operation on a WebSocket fresh credentials (a caller resolved for it alone)
/// after the rate limit admitted it. HTTP requests bring their own and are left alone.
pub(crate) struct SocketOperations;

impl ExtensionFactory for SocketOperations {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SocketOperations)
    }
}

#[async_trait::async_trait]
impl Extension for SocketOperations {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let Some(socket) = ctx.data_opt::<SocketCredentials>() else {
            return next.run(ctx, request).await;
        };
        if let Some(shared) = ctx.data_opt::<Arc<Shared>>() {
            let hash = identity::hash_secret(&socket.bearer);
            shared
                .rate
                .admit(Some(&hash), socket.address)
                .map_err(|limited| {
                    ApiError::RateLimited {
                        retry_after_seconds: limited.retry_after_seconds,
                    }
                    .into_server_error()
                })?;
        }
        let request = request.data(Auth::bearer(Some(socket.bearer.clone()), socket.address));
        next.run(ctx, request).await
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
            let resolved = authenticate(&shared.service, auth.bearer.as_deref()).await;
            if auth.bearer.is_some() && resolved == Err(ApiError::Unauthenticated) {
                shared.rate.refused(auth.address);
            }
            resolved.map(Arc::new)
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
