//! One typed place for settings: defaults, then `PROCEDO_*` environment variables, then flags
//! (clap reads the environment for flags that have one).

use std::path::PathBuf;

/// The default database: a SQLite file beside the working directory, in WAL mode.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://procedo.db?mode=rwc";

/// Database and workflow location, shared by every command that touches the store.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Database URL: `sqlite://FILE?mode=rwc` (default) or `postgres://…`.
    #[arg(long = "database", env = "PROCEDO_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,
    /// Folder of workflow files (installed at start-up; new versions are added).
    #[arg(
        long = "workflows",
        env = "PROCEDO_WORKFLOWS",
        default_value = "workflows",
        global = true
    )]
    pub workflows: PathBuf,
}

/// How background workers (scheduler and email delivery) claim, keep and retry work; shared
/// by `procedo serve` and `procedo scheduler run`.
#[derive(clap::Args, Debug, Clone)]
pub struct WorkerArgs {
    /// Seconds a claim (timer, outbox row, email, recurring job) holds without renewal: a
    /// process killed mid-work delays what it held by at most this.
    #[arg(long = "lease", env = "PROCEDO_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
    /// Milliseconds between two renewals of the leases a live process holds (default: a third
    /// of the lease; at most half of it).
    #[arg(long = "heartbeat-ms", env = "PROCEDO_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Seconds before the first retry of a timer, outbox row or email that failed; it doubles,
    /// with jitter, at each attempt. Independent of the lease.
    #[arg(
        long = "retry-backoff",
        env = "PROCEDO_RETRY_BACKOFF_SECONDS",
        default_value_t = 30
    )]
    pub retry_backoff_seconds: u64,
    /// Longest pause, in seconds, between two attempts.
    #[arg(
        long = "retry-max-backoff",
        env = "PROCEDO_RETRY_MAX_BACKOFF_SECONDS",
        default_value_t = 3600
    )]
    pub retry_max_backoff_seconds: u64,
    /// Attempts after which an email that keeps failing transiently ends `failed`.
    #[arg(
        long = "mail-max-attempts",
        env = "PROCEDO_MAIL_MAX_ATTEMPTS",
        default_value_t = 12
    )]
    pub mail_max_attempts: u32,
}

/// Why worker settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum WorkerArgsError {
    /// A lease of zero seconds.
    #[error("--lease (PROCEDO_LEASE_SECONDS) deve essere almeno 1 secondo")]
    ZeroLease,
    /// A heartbeat too slow to keep the lease alive.
    #[error(
        "--heartbeat-ms (PROCEDO_HEARTBEAT_MS) = {heartbeat_ms} ms: deve essere al massimo metà della \
         presa in carico ({lease_seconds} s), altrimenti le prese in carico scadono mentre si lavora"
    )]
    SlowHeartbeat {
        /// The heartbeat asked for.
        heartbeat_ms: u64,
        /// The lease.
        lease_seconds: u64,
    },
}

impl WorkerArgs {
    /// The lease.
    pub fn lease(&self) -> Result<chrono::Duration, WorkerArgsError> {
        if self.lease_seconds == 0 {
            return Err(WorkerArgsError::ZeroLease);
        }
        Ok(chrono::Duration::seconds(
            i64::try_from(self.lease_seconds).unwrap_or(i64::MAX / 1_000),
        ))
    }

    /// The pause between renewals, if set, checked against the lease.
    pub fn heartbeat(&self) -> Result<Option<std::time::Duration>, WorkerArgsError> {
        match self.heartbeat_ms {
            None => Ok(None),
            Some(ms) if ms == 0 || ms > self.lease_seconds.saturating_mul(500) => {
                Err(WorkerArgsError::SlowHeartbeat {
                    heartbeat_ms: ms,
                    lease_seconds: self.lease_seconds,
                })
            }
            Some(ms) => Ok(Some(std::time::Duration::from_millis(ms))),
        }
    }

    /// The first retry delay.
    pub fn retry_backoff(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.retry_backoff_seconds)
    }

    /// The longest retry delay.
    pub fn retry_max_backoff(&self) -> std::time::Duration {
        std::time::Duration::from_secs(
            self.retry_max_backoff_seconds
                .max(self.retry_backoff_seconds),
        )
    }
}
