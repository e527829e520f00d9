//! The GraphQL API (async-graphql served by axum): the only module that knows GraphQL and
//! HTTP. ETS partners and the Ufficio di Piano use the same schema; what each caller sees is
//! decided by one policy (`policy.rs`) and every error is mapped to a code in one place
//! (`error.rs`).
//!
//! Routes: `POST /graphql` (JSON or GraphQL multipart upload), `GET /graphql` (GraphiQL),
//! `GET /graphql/assets/{name}` (GraphiQL's pinned files),
//! `GET /graphql/ws` (subscriptions and operations, `graphql-transport-ws` and `graphql-ws`),
//! `GET /documents/{submission}/{sha256}` (a document's content), `GET /healthz`,
//! `GET /metrics`.
//!
//! Architecture Invariant: resolvers read and write through `Service` and `Store` methods only;
//! no SQL here. They read "now" from the service clock, never from the machine.

mod access;
mod admin;
pub mod calendar;
mod context;
mod deliveries;
pub mod error;
mod evaluation;
mod export;
mod graphiql;
mod http;
pub mod limits;
mod meeting;
pub mod metrics;
mod migrate;
mod mutation;
pub mod oidc;
pub mod policy;
mod query;
mod rate;
mod rsvp;
mod subscription;
mod types;
mod uploads;
mod window;

use std::future::Future;
use std::sync::Arc;

use async_graphql::Schema;
use tokio::sync::broadcast;

pub use context::authenticate;
pub use error::ApiError;
pub use limits::Limits;
pub use policy::Caller;
pub use types::event::InstanceEvent;

use crate::service::Service;

/// The executable schema.
pub(crate) type ProcedoSchema =
    Schema<query::QueryRoot, mutation::MutationRoot, subscription::SubscriptionRoot>;

/// How many committed events a slow subscriber may lag behind before it skips some.
const EVENT_BUFFER: usize = 1024;

/// What every resolver reaches through the schema data.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The one path to start and fire.
    pub service: Service,
    /// The limits in force.
    pub limits: Limits,
    /// Counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// Committed events, for subscriptions.
    pub events: broadcast::Sender<InstanceEvent>,
    /// Events already published, so the history tail and the mutations publish each once.
    pub published: std::sync::Mutex<subscription::Published>,
    /// Requests per token and per address.
    pub rate: rate::RateLimiter,
    /// The protocollo, to register an application at once (else the scheduler does).
    pub protocollo: Option<crate::protocollo::Protocollo>,
    /// The key personal links are signed with (answers to convocations without login).
    pub links: Option<Arc<Vec<u8>>>,
    /// The workflows folder a deployed definition reads its files from (bodies, closures)
    /// and whose templates it is checked against (the built-in ones without it).
    pub workflows: Option<std::path::PathBuf>,
    /// The OpenID Connect provider ETS representatives sign in with.
    pub oidc: Option<oidc::OidcSettings>,
    /// The domain of the mail sender: calendar feeds name meetings' UIDs with it, as the
    /// invites do.
    pub mail_domain: std::sync::RwLock<String>,
}

/// The API's state: the schema and what it serves from. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    shared: Arc<Shared>,
    schema: ProcedoSchema,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The API over a service, with these limits.
    pub fn new(service: Service, limits: Limits) -> ApiState {
        ApiState::build(service, limits, None, None, None, None)
    }

    /// Names meetings' UIDs in calendar feeds with the mail sender's domain (as the invites).
    #[must_use]
    pub fn with_mail_domain(self, domain: &str) -> ApiState {
        if let Ok(mut current) = self.shared.mail_domain.write() {
            *current = domain.to_owned();
        }
        self
    }

    fn mail_domain(&self) -> String {
        self.shared
            .mail_domain
            .read()
            .map(|d| d.clone())
            .unwrap_or_else(|_| "procedo.local".to_owned())
    }

    /// The API registering applications in `protocollo` as they arrive (without it they are
    /// registered by the scheduler, from the outbox).
    #[must_use]
    pub fn with_protocollo(self, protocollo: crate::protocollo::Protocollo) -> ApiState {
        let domain = self.mail_domain();
        ApiState::build(
            self.shared.service.clone(),
            self.shared.limits.clone(),
            Some(protocollo),
            self.shared.links.clone(),
            self.shared.workflows.clone(),
            self.shared.oidc.clone(),
        )
        .with_mail_domain(&domain)
    }

    /// The API serving the personal links signed with `key` (`/risposta/…`: a member answers
    /// a convocation from the email).
    #[must_use]
    pub fn with_links(self, key: Vec<u8>) -> ApiState {
        let domain = self.mail_domain();
        ApiState::build(
            self.shared.service.clone(),
            self.shared.limits.clone(),
            self.shared.protocollo.clone(),
            Some(Arc::new(key)),
            self.shared.workflows.clone(),
            self.shared.oidc.clone(),
        )
        .with_mail_domain(&domain)
    }

    /// The API deploying definitions that read their files (bodies, closures) from `dir`,
    /// checked against its templates.
    #[must_use]
    pub fn with_workflows(self, dir: std::path::PathBuf) -> ApiState {
        let domain = self.mail_domain();
        ApiState::build(
            self.shared.service.clone(),
            self.shared.limits.clone(),
            self.shared.protocollo.clone(),
            self.shared.links.clone(),
            Some(dir),
            self.shared.oidc.clone(),
        )
        .with_mail_domain(&domain)
    }

    /// The API letting ETS representatives sign in through this OpenID Connect provider
    /// (`/accesso/ets`, `/oidc/callback`).
    #[must_use]
    pub fn with_oidc(self, settings: oidc::OidcSettings) -> ApiState {
        let domain = self.mail_domain();
        ApiState::build(
            self.shared.service.clone(),
            self.shared.limits.clone(),
            self.shared.protocollo.clone(),
            self.shared.links.clone(),
            self.shared.workflows.clone(),
            Some(settings),
        )
        .with_mail_domain(&domain)
    }

    fn build(
        service: Service,
        limits: Limits,
        protocollo: Option<crate::protocollo::Protocollo>,
        links: Option<Arc<Vec<u8>>>,
        workflows: Option<std::path::PathBuf>,
        oidc: Option<oidc::OidcSettings>,
    ) -> ApiState {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let metrics = Arc::new(metrics::Metrics::default());
        let shared = Arc::new(Shared {
            service,
            limits: limits.clone(),
            metrics: metrics.clone(),
            events,
            published: std::sync::Mutex::new(subscription::Published::default()),
            rate: rate::RateLimiter::new(limits.rate, limits.anonymous_rate, limits.refused_rate),
            protocollo,
            links,
            workflows,
            oidc,
            mail_domain: std::sync::RwLock::new("procedo.local".to_owned()),
        });
        let schema = schema_builder(&limits, metrics)
            .data(shared.clone())
            .finish();
        ApiState { shared, schema }
    }

    /// The service behind the API.
    pub fn service(&self) -> &Service {
        &self.shared.service
    }

    /// The protocollo the API registers in, if any.
    pub fn protocollo(&self) -> Option<&crate::protocollo::Protocollo> {
        self.shared.protocollo.as_ref()
    }

    /// Follows the history of every instance and publishes the steps this process did not
    /// commit itself (timers fired by any scheduler, commands of other replicas or of the
    /// CLI), every `every`, until `shutdown`.
    pub fn spawn_history_tail(
        &self,
        every: std::time::Duration,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        subscription::spawn_history_tail(self.shared.clone(), every, shutdown)
    }

    /// Publishes an event to subscribers (the API does so after each start and fire it
    /// commits; the scheduler may call it for the steps it commits).
    pub fn publish(&self, event: InstanceEvent) {
        subscription::send(&self.shared, event);
    }
}

fn schema_builder(
    limits: &Limits,
    metrics: Arc<metrics::Metrics>,
) -> async_graphql::SchemaBuilder<
    query::QueryRoot,
    mutation::MutationRoot,
    subscription::SubscriptionRoot,
> {
    let mut builder = Schema::build(
        query::QueryRoot::default(),
        mutation::MutationRoot::default(),
        subscription::SubscriptionRoot::default(),
    )
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_recursive_depth(64)
    .limit_directives(16)
    .extension(error::ErrorCodes::new(metrics))
    .extension(limits::DocumentGuard::new(limits))
    .extension(context::SocketOperations);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder
}

/// The served schema in SDL (what `graphql/schema.graphql` holds).
pub fn schema_sdl() -> String {
    schema_builder(&Limits::default(), Arc::new(metrics::Metrics::default()))
        .finish()
        .sdl()
}

/// The routes.
pub fn router(state: ApiState) -> axum::Router {
    http::router(state)
}

/// Serves the API on `listener` until `shutdown` completes, then finishes the requests in
/// flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
