//! `procedo serve`: the whole service in one process — the GraphQL API on `PROCEDO_BIND`
//! (default 127.0.0.1:8080) and, unless `--no-scheduler`, the scheduler (timers, recurring
//! jobs, outbox) beside it; both stop gracefully on SIGTERM or ctrl-c. Also `procedo api
//! schema`, which prints the served schema's SDL (`graphql/schema.graphql`).

use anyhow::Context;
use tokio::sync::watch;

use crate::api::limits::Rate;
use crate::api::{self, ApiState, Limits};
use crate::app;
use crate::config::{StoreArgs, WorkerArgs};
use crate::scheduler::{Options, Scheduler};

/// Options of `procedo serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Store options.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "PROCEDO_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Do not run the scheduler in this process (run `procedo scheduler run` elsewhere).
    #[arg(long)]
    pub no_scheduler: bool,
    /// Leases, heartbeat and retries of the scheduler and of the email delivery.
    #[command(flatten)]
    pub work: WorkerArgs,
    /// Deepest query nesting.
    #[arg(long, env = "PROCEDO_API_MAX_DEPTH", default_value_t = Limits::default().max_depth)]
    pub max_depth: usize,
    /// Largest query complexity.
    #[arg(long, env = "PROCEDO_API_MAX_COMPLEXITY", default_value_t = Limits::default().max_complexity)]
    pub max_complexity: usize,
    /// Largest page (`first`).
    #[arg(long, env = "PROCEDO_API_MAX_PAGE_SIZE", default_value_t = Limits::default().max_page_size)]
    pub max_page_size: usize,
    /// Largest request body in bytes (uploads included).
    #[arg(long, env = "PROCEDO_API_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Largest uploaded document in bytes.
    #[arg(long, env = "PROCEDO_API_MAX_UPLOAD_BYTES", default_value_t = Limits::default().max_upload_bytes)]
    pub max_upload_bytes: usize,
    /// Most documents in one request.
    #[arg(long, env = "PROCEDO_API_MAX_FILES", default_value_t = Limits::default().max_files)]
    pub max_files: usize,
    /// Answer introspection queries (switch off in production: `--introspection false`).
    #[arg(long, env = "PROCEDO_API_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,
    /// Most fields at the top of one operation (aliases and fragments included).
    #[arg(long, env = "PROCEDO_API_MAX_ROOT_FIELDS", default_value_t = Limits::default().max_root_fields)]
    pub max_root_fields: usize,
    /// Most aliased fields in one request.
    #[arg(long, env = "PROCEDO_API_MAX_ALIASES", default_value_t = Limits::default().max_aliases)]
    pub max_aliases: usize,
    /// Requests per minute per token, sustained (HTTP requests and WebSocket operations; 0:
    /// no limit). Over it: HTTP 429 with `Retry-After`, `extensions.code` RATE_LIMITED.
    #[arg(long, env = "PROCEDO_API_RATE_PER_MINUTE", default_value_t = Limits::default().rate.per_minute)]
    pub rate_per_minute: u32,
    /// Requests per token that may come at once.
    #[arg(long, env = "PROCEDO_API_RATE_BURST", default_value_t = Limits::default().rate.burst)]
    pub rate_burst: u32,
    /// Requests per minute without a token, per client address (0: no limit).
    #[arg(long, env = "PROCEDO_API_ANONYMOUS_RATE_PER_MINUTE", default_value_t = Limits::default().anonymous_rate.per_minute)]
    pub anonymous_rate_per_minute: u32,
    /// Requests without a token per address that may come at once.
    #[arg(long, env = "PROCEDO_API_ANONYMOUS_BURST", default_value_t = Limits::default().anonymous_rate.burst)]
    pub anonymous_burst: u32,
    /// Refused tokens per minute per client address, before the next one is looked up (0: no
    /// limit).
    #[arg(long, env = "PROCEDO_API_REFUSED_TOKENS_PER_MINUTE", default_value_t = Limits::default().refused_rate.per_minute)]
    pub refused_tokens_per_minute: u32,
    /// Refused tokens per address that may come at once.
    #[arg(long, env = "PROCEDO_API_REFUSED_TOKENS_BURST", default_value_t = Limits::default().refused_rate.burst)]
    pub refused_tokens_burst: u32,
    /// Milliseconds between two checks of an open WebSocket's token; a token no longer valid
    /// closes the socket with code 4403.
    #[arg(long, env = "PROCEDO_API_TOKEN_RECHECK_MS", default_value_t = Limits::default().token_recheck.as_millis() as u64)]
    pub token_recheck_ms: u64,
    /// Take the client's address from the first `X-Forwarded-For` entry (set it only behind
    /// a reverse proxy that writes that header).
    #[arg(long, env = "PROCEDO_API_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_forwarded_for: bool,
}

impl ServeArgs {
    /// The limits these options describe.
    pub fn limits(&self) -> Limits {
        Limits {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            max_page_size: self.max_page_size.max(1),
            default_page_size: Limits::default()
                .default_page_size
                .min(self.max_page_size.max(1)),
            max_body_bytes: self.max_body_bytes,
            max_upload_bytes: self.max_upload_bytes,
            max_files: self.max_files,
            introspection: self.introspection,
            max_root_fields: self.max_root_fields.max(1),
            max_aliases: self.max_aliases,
            rate: Rate {
                per_minute: self.rate_per_minute,
                burst: self.rate_burst,
            },
            anonymous_rate: Rate {
                per_minute: self.anonymous_rate_per_minute,
                burst: self.anonymous_burst,
            },
            refused_rate: Rate {
                per_minute: self.refused_tokens_per_minute,
                burst: self.refused_tokens_burst,
            },
            token_recheck: std::time::Duration::from_millis(self.token_recheck_ms.max(100)),
            trust_forwarded_for: self.trust_forwarded_for,
        }
    }
}

/// `procedo api …`.
#[derive(clap::Subcommand, Debug)]
pub enum ApiCommand {
    /// Print the GraphQL schema (SDL): `procedo api schema > graphql/schema.graphql`.
    Schema,
}

/// Runs `procedo api …`.
pub fn run_api(cmd: &ApiCommand) -> std::process::ExitCode {
    match cmd {
        ApiCommand::Schema => {
            print!("{}", api::schema_sdl());
            std::process::ExitCode::SUCCESS
        }
    }
}

/// Runs `procedo serve` until SIGTERM or ctrl-c.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let (service, catalog) = app::open(&args.store, None).await?;
    let mut mail = crate::notify::MailSettings::from_env(catalog.templates)
        .context("configurazione della posta")?;
    let mut options = Options::default();
    crate::cli::scheduler::apply_worker_args(&args.work, &mut options, &mut mail)?;
    let listener = tokio::net::TcpListener::bind(&args.bind)
        .await
        .with_context(|| format!("impossibile ascoltare su {}", args.bind))?;
    let address = listener.local_addr().context("indirizzo locale")?;
    let protocollo = app::protocollo(&service)?;
    let mut state = ApiState::new(service.clone(), args.limits())
        .with_protocollo(protocollo.clone())
        .with_mail_domain(&mail.mail_domain())
        .with_workflows(args.store.workflows.clone());
    // ETS representatives sign in through the configured OpenID Connect provider.
    if let Some(oidc) = crate::api::oidc::OidcSettings::from_env().map_err(anyhow::Error::msg)? {
        state = state.with_oidc(oidc);
    }
    // Personal links in convocations are answered here, with the key that signed them.
    if let Some(links) = &mail.links {
        state = state.with_links(links.key.clone());
    }
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        crate::cli::scheduler::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let tail = state.spawn_history_tail(
        std::time::Duration::from_secs(1),
        crate::cli::scheduler::until_stopped(stopped.clone()),
    );
    let scheduler = if args.no_scheduler {
        None
    } else {
        let scheduler = crate::protocollo::install(
            crate::notify::install(Scheduler::new(service.clone(), options)?, &mail),
            &protocollo,
            &mail,
        );
        let delivery = crate::notify::spawn_delivery_worker(
            &service,
            &mail,
            crate::cli::scheduler::until_stopped(stopped.clone()),
        );
        let pec = crate::pec::ingest::from_env(&service, Some(protocollo.clone()))
            .context("configurazione della casella PEC")?
            .map(|(ingest, mailbox, every)| {
                eprintln!(
                    "casella PEC: {} ogni {} s",
                    mailbox.describe(),
                    every.as_secs()
                );
                crate::pec::ingest::spawn_poller(
                    ingest,
                    mailbox,
                    every,
                    crate::cli::scheduler::until_stopped(stopped.clone()),
                )
            });
        let stopped = stopped.clone();
        Some((
            tokio::spawn(async move {
                scheduler
                    .run(crate::cli::scheduler::until_stopped(stopped))
                    .await
            }),
            delivery,
            pec,
        ))
    };
    eprintln!(
        "procedo in ascolto su http://{address}/graphql{} (SIGTERM o ctrl-c per fermarlo)",
        if scheduler.is_some() {
            ", con il pianificatore"
        } else {
            ", senza pianificatore"
        }
    );
    let mut server_stopped = stopped.clone();
    api::serve(listener, state, async move {
        while server_stopped.changed().await.is_ok() && !*server_stopped.borrow() {}
    })
    .await
    .context("server HTTP")?;
    if let Some((handle, delivery, pec)) = scheduler {
        handle.await.context("pianificatore")??;
        delivery.await.context("consegna delle email")?;
        if let Some(pec) = pec {
            pec.await.context("lettura della casella PEC")?;
        }
    }
    tail.await.context("eventi per i sottoscrittori")?;
    service.store().clone().close().await?;
    eprintln!("procedo fermato");
    Ok(())
}
