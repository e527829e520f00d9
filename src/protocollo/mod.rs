//! The protocollo: the immutable register of the documents the Ufficio di Piano receives and
//! sends (DPR 445/2000 artt. 53-57, 63), kept in procedo or in the ente's protocol system
//! behind one port (`register`), with the segnatura of outgoing documents (`segnatura`), the
//! registro giornaliero handed to conservation (`registro`, `conservazione`), files stored by
//! SHA-256 (`files`), and the tamper check over the register and its files (`verify`).
//!
//! Every registration goes through [`Protocollo::register`]: its files are stored first, then
//! the port numbers it in one transaction (number, date, correspondents, impronte, segnatura,
//! hash chain). When the ente's system cannot be reached the registration goes to procedo's
//! emergency register, and [`Protocollo::reconcile`] links it to its definitive number later.
//!
//! What the procedures ask for arrives through the outbox (`dispatch`): `protocollo` rows of
//! a step (outgoing acts), `protocollo_in` rows (an ETS's application or soccorso answer,
//! registered as incoming with its receipt instant), `protocol_register` (the daily register
//! job) and `protocol_reconcile`.

pub mod conservazione;
pub mod dispatch;
pub mod files;
pub mod register;
pub mod registro;
pub mod segnatura;
pub mod verbale;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, NaiveTime, Utc};
use serde_json::json;
use tracing::{info, warn};

pub use conservazione::{Conservazione, FolderConservazione, HttpConservazione, Package};
pub use dispatch::{ProtocolloDispatch, install};
pub use files::{FileCheck, FileStore};
pub use register::{HttpRegister, LocalRegister, PortError, ProtocolSystem};
pub use segnatura::{Aoo, Signer};

use crate::engine::local_instant;
use crate::service::Service;
use crate::store::{
    self, AmendmentKind, Correspondent, DailyRegisterRow, Direction, DocumentRole,
    EMERGENCY_REGISTER, NewAmendment, NewDailyRegister, NewProtocolDocument,
    NewProtocolRegistration, PROTOCOL_REGISTER, ProtocolAmendment, ProtocolFilter,
    ProtocolRegistration, Refusal, Registered, Source,
};
use crate::terms::ROME;

/// Why the protocollo failed or refused. Italian: an operator reads it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The register refused an annulment or correction.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The port failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// A file could not be stored or read.
    #[error("archivio dei file ({path}): {reason}")]
    Files {
        /// The folder.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// No such registration.
    #[error("registrazione {0} inesistente")]
    NotFound(String),
    /// A request that makes no sense (a bad register code, an empty subject…).
    #[error("{0}")]
    Invalid(String),
    /// The configuration is unusable.
    #[error("configurazione del protocollo: {0}")]
    Config(String),
}

/// The protocol's configuration, from the environment (`PROCEDO_PROTOCOLLO_*`,
/// `PROCEDO_SEGNATURA_*`, `PROCEDO_CONSERVAZIONE_*`, `PROCEDO_ALBO_CAPOFILA_*`,
/// `PROCEDO_FILES_DIR`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The AOO.
    pub aoo: Aoo,
    /// The ente's protocol system (`PROCEDO_PROTOCOLLO_URL`); unset: procedo's own register.
    pub external_url: Option<String>,
    /// Bearer token for it.
    pub external_token: Option<String>,
    /// How long to wait for it.
    pub external_timeout: Duration,
    /// PEM certificate and key that sign segnature.
    pub signing: Option<(PathBuf, PathBuf)>,
    /// The file store's folder.
    pub files_dir: PathBuf,
    /// Conservation: an HTTP endpoint, or else this folder.
    pub conservation_url: Option<String>,
    /// Bearer token for the conservation endpoint.
    pub conservation_token: Option<String>,
    /// The conservation folder.
    pub conservation_dir: PathBuf,
    /// The HTTP endpoint of the ente capofila's albo, if any.
    pub albo_url: Option<String>,
    /// Its bearer token.
    pub albo_token: Option<String>,
    /// The folder the capofila's albo collects acts from (without an endpoint).
    pub albo_dir: PathBuf,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Settings {
    /// Settings with defaults: procedo's register, unsigned segnature, files in `data/files`,
    /// conservation folder `data/conservazione`.
    pub fn local(denominazione: &str) -> Settings {
        Settings {
            aoo: Aoo {
                codice_amministrazione: "ambito".to_owned(),
                codice_aoo: "udp".to_owned(),
                codice_registro: "PROTOCOLLO".to_owned(),
                denominazione: denominazione.to_owned(),
                codice_fiscale: "00000000000".to_owned(),
                email: None,
                default_classification: ("VII".to_owned(), "Servizi alla persona".to_owned()),
            },
            external_url: None,
            external_token: None,
            external_timeout: Duration::from_secs(10),
            signing: None,
            files_dir: PathBuf::from(files::DEFAULT_FILES_DIR),
            conservation_url: None,
            conservation_token: None,
            conservation_dir: PathBuf::from("data/conservazione"),
            albo_url: None,
            albo_token: None,
            albo_dir: PathBuf::from("data/albo-capofila"),
        }
    }

    /// Settings from the environment.
    pub fn from_env() -> Settings {
        let ambito = env(crate::notify::delivery::AMBITO_VARIABLE)
            .unwrap_or_else(|| crate::notify::delivery::DEFAULT_AMBITO.to_owned());
        let mut s = Settings::local(&env("PROCEDO_PROTOCOLLO_DENOMINAZIONE").unwrap_or(ambito));
        if let Some(v) = env("PROCEDO_PROTOCOLLO_AMMINISTRAZIONE") {
            s.aoo.codice_amministrazione = v;
        }
        if let Some(v) = env("PROCEDO_PROTOCOLLO_AOO") {
            s.aoo.codice_aoo = v;
        }
        if let Some(v) = env("PROCEDO_PROTOCOLLO_REGISTRO") {
            s.aoo.codice_registro = v;
        }
        if let Some(v) = env("PROCEDO_PROTOCOLLO_CF") {
            s.aoo.codice_fiscale = v;
        }
        s.aoo.email = env("PROCEDO_PROTOCOLLO_PEC");
        if let Some(v) = env("PROCEDO_PROTOCOLLO_CLASSIFICA") {
            let (code, name) = v.split_once(' ').map_or((v.clone(), v.clone()), |(c, n)| {
                (c.to_owned(), n.trim().to_owned())
            });
            s.aoo.default_classification = (code, name);
        }
        s.external_url = env("PROCEDO_PROTOCOLLO_URL");
        s.external_token = env("PROCEDO_PROTOCOLLO_TOKEN");
        if let Some(ms) = env("PROCEDO_PROTOCOLLO_TIMEOUT_MS").and_then(|v| v.parse().ok()) {
            s.external_timeout = Duration::from_millis(ms);
        }
        if let (Some(cert), Some(key)) =
            (env("PROCEDO_SEGNATURA_CERT"), env("PROCEDO_SEGNATURA_KEY"))
        {
            s.signing = Some((PathBuf::from(cert), PathBuf::from(key)));
        }
        if let Some(dir) = env(files::FILES_VARIABLE) {
            s.files_dir = PathBuf::from(dir);
        }
        s.conservation_url = env("PROCEDO_CONSERVAZIONE_URL");
        s.conservation_token = env("PROCEDO_CONSERVAZIONE_TOKEN");
        s.albo_url = env("PROCEDO_ALBO_CAPOFILA_URL");
        s.albo_token = env("PROCEDO_ALBO_CAPOFILA_TOKEN");
        if let Some(dir) = env("PROCEDO_ALBO_CAPOFILA_DIR") {
            s.albo_dir = PathBuf::from(dir);
        }
        if let Some(dir) = env("PROCEDO_CONSERVAZIONE_DIR") {
            s.conservation_dir = PathBuf::from(dir);
        }
        s
    }
}

/// A document to register, with its content.
#[derive(Debug, Clone)]
pub struct RequestDocument {
    /// Primary or attachment.
    pub role: DocumentRole,
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Content.
    pub content: Vec<u8>,
}

/// What to register.
#[derive(Debug, Clone)]
pub struct Request {
    /// `protocollo` or a repertorio's code.
    pub register: String,
    /// In, out or internal.
    pub direction: Direction,
    /// The subject.
    pub subject: String,
    /// Sender (incoming) or recipients (outgoing).
    pub correspondents: Vec<Correspondent>,
    /// Titolario classification.
    pub classification: Option<String>,
    /// The fascicolo.
    pub fascicolo: Option<String>,
    /// The instance.
    pub instance_id: Option<String>,
    /// Idempotency key (required for the ente's system).
    pub key: Option<String>,
    /// The sender's number (incoming).
    pub sender_reference: Option<String>,
    /// The sender's date (incoming).
    pub sender_date: Option<NaiveDate>,
    /// When it was received (incoming).
    pub received_at: Option<DateTime<Utc>>,
    /// How it travelled.
    pub channel: String,
    /// Who registers.
    pub operator: String,
    /// The documents, primary first.
    pub documents: Vec<RequestDocument>,
}

/// The register and what surrounds it. Cheap to clone.
#[derive(Clone)]
pub struct Protocollo {
    service: Service,
    aoo: Arc<Aoo>,
    port: Arc<dyn ProtocolSystem>,
    signer: Option<Arc<Signer>>,
    files: FileStore,
    conservation: Arc<dyn Conservazione>,
    albo: Arc<dyn crate::albo::capofila::AlboCapofila>,
}

impl std::fmt::Debug for Protocollo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protocollo")
            .field("port", &self.port.describe())
            .field("signed", &self.signer.is_some())
            .field("files", &self.files.root())
            .field("conservation", &self.conservation.describe())
            .field("albo", &self.albo.describe())
            .finish()
    }
}

/// A register code: letters, digits, `_.-`, 1 to 16 (the segnatura's `CodiceRegistro`).
pub fn valid_register(code: &str) -> bool {
    (1..=16).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Protocollo {
    /// The protocollo of `service` with these settings.
    pub fn new(service: Service, settings: &Settings) -> Result<Protocollo, Error> {
        let store = service.store().clone();
        let port: Arc<dyn ProtocolSystem> = match &settings.external_url {
            Some(url) => Arc::new(
                HttpRegister::new(
                    store,
                    url,
                    settings.external_token.clone(),
                    settings.external_timeout,
                )
                .map_err(Error::Config)?,
            ),
            None => Arc::new(LocalRegister::new(store)),
        };
        let signer = match &settings.signing {
            Some((cert, key)) => {
                let read = |path: &PathBuf| {
                    std::fs::read(path)
                        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
                };
                Some(Arc::new(
                    Signer::from_pem(&read(cert)?, &read(key)?)
                        .map_err(|e| Error::Config(e.to_string()))?,
                ))
            }
            None => None,
        };
        let conservation: Arc<dyn Conservazione> = match &settings.conservation_url {
            Some(url) => Arc::new(
                HttpConservazione::new(
                    url,
                    settings.conservation_token.clone(),
                    Duration::from_secs(60),
                )
                .map_err(Error::Config)?,
            ),
            None => Arc::new(FolderConservazione::new(&settings.conservation_dir)),
        };
        let albo: Arc<dyn crate::albo::capofila::AlboCapofila> = match &settings.albo_url {
            Some(url) => Arc::new(
                crate::albo::capofila::HttpAlbo::new(
                    url,
                    settings.albo_token.clone(),
                    Duration::from_secs(60),
                )
                .map_err(Error::Config)?,
            ),
            None => Arc::new(crate::albo::capofila::FolderAlbo::new(&settings.albo_dir)),
        };
        Ok(Protocollo {
            service,
            aoo: Arc::new(settings.aoo.clone()),
            port,
            signer,
            files: FileStore::new(&settings.files_dir),
            conservation,
            albo,
        })
    }

    /// Replaces the port (tests, and an adapter built elsewhere).
    #[must_use]
    pub fn with_port(mut self, port: Arc<dyn ProtocolSystem>) -> Protocollo {
        self.port = port;
        self
    }

    /// Replaces the conservation system.
    #[must_use]
    pub fn with_conservation(mut self, conservation: Arc<dyn Conservazione>) -> Protocollo {
        self.conservation = conservation;
        self
    }

    /// Replaces the capofila's albo.
    #[must_use]
    pub fn with_albo(mut self, albo: Arc<dyn crate::albo::capofila::AlboCapofila>) -> Protocollo {
        self.albo = albo;
        self
    }

    /// The ente capofila's albo.
    pub fn albo(&self) -> &dyn crate::albo::capofila::AlboCapofila {
        self.albo.as_ref()
    }

    /// The service.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The AOO.
    pub fn aoo(&self) -> &Aoo {
        &self.aoo
    }

    /// The file store.
    pub fn files(&self) -> &FileStore {
        &self.files
    }

    /// What numbers registrations.
    pub fn describe(&self) -> String {
        self.port.describe()
    }

    /// Registers a request: stores its files, numbers it through the port (or in the
    /// emergency register when the ente's system cannot be reached), and returns the
    /// registration. The same key twice registers once.
    pub async fn register(&self, request: Request) -> Result<ProtocolRegistration, Error> {
        if !valid_register(&request.register) {
            return Err(Error::Invalid(format!(
                "codice di registro '{}' non valido: lettere, cifre, _ . -, al massimo 16",
                request.register
            )));
        }
        if request.subject.trim().is_empty() {
            return Err(Error::Invalid(
                "l'oggetto della registrazione è vuoto".to_owned(),
            ));
        }
        let store = self.service.store();
        if let Some(key) = &request.key
            && let Some(existing) = store.protocol_by_key(key).await?
        {
            return Ok(existing);
        }
        let mut documents = Vec::with_capacity(request.documents.len());
        for d in &request.documents {
            let sha256 = self.files.put(&d.content).await.map_err(|e| Error::Files {
                path: self.files.root().display().to_string(),
                reason: e.to_string(),
            })?;
            documents.push(NewProtocolDocument {
                role: d.role,
                name: d.name.clone(),
                media_type: d.media_type.clone(),
                size: d.content.len() as u64,
                sha256,
            });
        }
        let now = self.service.now();
        let new = NewProtocolRegistration {
            register: request.register.clone(),
            direction: request.direction,
            subject: request
                .subject
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            correspondents: request.correspondents.clone(),
            classification: request.classification.clone(),
            fascicolo: request.fascicolo.clone(),
            instance_id: request.instance_id.clone(),
            key: request.key.clone(),
            sender_reference: request.sender_reference.clone(),
            sender_date: request.sender_date,
            received_at: request.received_at,
            channel: request.channel.clone(),
            operator: request.operator.clone(),
            source: Source::Locale,
            documents,
            at: now,
            assigned: None,
        };
        let aoo = self.aoo.clone();
        let signer = self.signer.clone();
        let segnatura = move |record: &ProtocolRegistration| {
            segnatura::build(&aoo, record, signer.as_deref(), now).map_err(|e| e.to_string())
        };
        let registered = match self.port.register(&new, &segnatura).await {
            Ok(registered) => registered,
            Err(PortError::Unavailable(why)) if request.register == PROTOCOL_REGISTER => {
                warn!(reason = %why, "sistema di protocollo non raggiungibile: registro di emergenza");
                let mut emergency = new.clone();
                emergency.register = EMERGENCY_REGISTER.to_owned();
                emergency.source = Source::Emergenza;
                store.register_protocol(&emergency, &segnatura).await?
            }
            Err(other) => return Err(other.into()),
        };
        let registration = match registered {
            Registered::New(r) => {
                info!(numero = %r, direction = %r.direction, instance = r.instance_id.as_deref().unwrap_or("—"), "registrato al protocollo");
                r
            }
            Registered::Existing(r) => r,
        };
        Ok(registration)
    }

    /// Finds `number/year` (`0000042/2026` or `42/2026`) in `register`.
    pub async fn find(
        &self,
        register: &str,
        reference: &str,
    ) -> Result<ProtocolRegistration, Error> {
        let (number, year) = parse_reference(reference).ok_or_else(|| {
            Error::Invalid(format!(
                "riferimento '{reference}' non valido: scrivere NUMERO/ANNO, ad es. 0000042/2026"
            ))
        })?;
        self.service
            .store()
            .protocol_registration(register, year, number)
            .await?
            .ok_or_else(|| Error::NotFound(format!("{register} {reference}")))
    }

    /// Annuls a whole registration (art. 54): it stays readable, marked annulled with the
    /// reason, the authorising act and the operator.
    pub async fn annul(
        &self,
        registration: &ProtocolRegistration,
        reason: &str,
        act: &str,
        operator: &str,
    ) -> Result<ProtocolAmendment, Error> {
        Ok(self
            .service
            .store()
            .amend_protocol(
                registration.id,
                &NewAmendment {
                    kind: AmendmentKind::Annullamento,
                    field: None,
                    value: None,
                    reason: reason.to_owned(),
                    act: Some(act.to_owned()),
                    operator: operator.to_owned(),
                    at: self.service.now(),
                },
            )
            .await??)
    }

    /// Corrects a typed field (annulled and renewed): the old value stays readable.
    pub async fn correct(
        &self,
        registration: &ProtocolRegistration,
        field: &str,
        value: &str,
        reason: &str,
        act: &str,
        operator: &str,
    ) -> Result<ProtocolAmendment, Error> {
        Ok(self
            .service
            .store()
            .amend_protocol(
                registration.id,
                &NewAmendment {
                    kind: AmendmentKind::Correzione,
                    field: Some(field.to_owned()),
                    value: Some(value.to_owned()),
                    reason: reason.to_owned(),
                    act: Some(act.to_owned()),
                    operator: operator.to_owned(),
                    at: self.service.now(),
                },
            )
            .await??)
    }

    /// Sends the emergency registrations not yet reconciled to the ente's system and links
    /// each to its definitive number. Returns how many were reconciled; stops at the first
    /// failure (the system is still down: try again later).
    pub async fn reconcile(&self) -> Result<usize, Error> {
        let store = self.service.store();
        let mut reconciled = 0;
        for emergency in store.unreconciled_emergencies().await? {
            let key = format!(
                "{}@definitivo",
                emergency
                    .key
                    .clone()
                    .unwrap_or_else(|| format!("emergenza:{}", emergency.id))
            );
            let new = NewProtocolRegistration {
                register: PROTOCOL_REGISTER.to_owned(),
                direction: emergency.direction,
                subject: emergency.subject.clone(),
                correspondents: emergency.effective_correspondents(),
                classification: emergency.effective("classificazione"),
                fascicolo: emergency.fascicolo.clone(),
                instance_id: emergency.instance_id.clone(),
                key: Some(key),
                sender_reference: emergency.sender_reference.clone(),
                sender_date: emergency.sender_date,
                received_at: emergency.received_at,
                channel: emergency.channel.clone(),
                operator: emergency.operator.clone(),
                source: Source::Esterno,
                documents: emergency
                    .documents
                    .iter()
                    .map(|d| NewProtocolDocument {
                        role: d.role,
                        name: d.name.clone(),
                        media_type: d.media_type.clone(),
                        size: d.size,
                        sha256: d.sha256.clone(),
                    })
                    .collect(),
                at: self.service.now(),
                assigned: None,
            };
            let aoo = self.aoo.clone();
            let signer = self.signer.clone();
            let now = self.service.now();
            let segnatura = move |record: &ProtocolRegistration| {
                segnatura::build(&aoo, record, signer.as_deref(), now).map_err(|e| e.to_string())
            };
            let definitive = match self.port.register(&new, &segnatura).await {
                Ok(registered) => registered.registration().clone(),
                Err(PortError::Unavailable(why)) | Err(PortError::Ambiguous(why)) => {
                    info!(reason = %why, "riconciliazione del registro di emergenza rinviata");
                    break;
                }
                Err(other) => return Err(other.into()),
            };
            match store
                .amend_protocol(
                    emergency.id,
                    &NewAmendment {
                        kind: AmendmentKind::Riconciliazione,
                        field: None,
                        value: Some(format!("{} {}", definitive.register, definitive)),
                        reason: "registrazione di emergenza riportata nel registro di protocollo (art. 63 DPR 445/2000)".to_owned(),
                        act: None,
                        operator: "sistema".to_owned(),
                        at: self.service.now(),
                    },
                )
                .await?
            {
                Ok(_) => reconciled += 1,
                Err(Refusal::NotReconcilable(_)) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Ok(reconciled)
    }

    /// The registration cited for a key: the definitive one when an emergency registration
    /// was reconciled, the registration itself otherwise.
    pub async fn cited(&self, key: &str) -> Result<Option<ProtocolRegistration>, Error> {
        Ok(self.service.store().protocol_citation(key).await?)
    }

    /// Produces the registro giornaliero of every day from the first one missing up to
    /// yesterday (Europe/Rome) — each day once, also the days the service was down — and
    /// hands to conservation every register not handed over yet. Returns the days produced.
    pub async fn daily_registers(&self) -> Result<Vec<NaiveDate>, Error> {
        let store = self.service.store();
        let today = self.service.now().with_timezone(&ROME).date_naive();
        let recorded = store.daily_registers().await?;
        let start = match recorded.last() {
            Some(last) => last.day.succ_opt(),
            None => store.first_protocol_day().await?,
        };
        let mut produced = Vec::new();
        if let Some(mut day) = start {
            while day < today {
                if self.produce(day).await? {
                    produced.push(day);
                }
                let Some(next) = day.succ_opt() else { break };
                day = next;
            }
        }
        self.conserve_pending().await?;
        Ok(produced)
    }

    /// The day's register as files (CSV and HTML), with what it lists.
    pub async fn day_files(
        &self,
        day: NaiveDate,
    ) -> Result<(String, String, usize, usize, Option<String>), Error> {
        let (from, until) = day_bounds(day);
        let store = self.service.store();
        let registrations = store
            .protocol_registrations(&ProtocolFilter {
                between: Some((from, until)),
                ..ProtocolFilter::default()
            })
            .await?;
        let amendments = store.protocol_amendments_between(from, until).await?;
        let head = store.protocol_chain_head_before(until).await?;
        let listed = registro::Day {
            day,
            registrations: &registrations,
            amendments: &amendments,
            chain_head: head.as_deref(),
        };
        Ok((
            registro::csv(&listed),
            registro::html(&listed, &self.aoo.denominazione),
            registrations.len(),
            amendments.len(),
            head,
        ))
    }

    /// Produces one day's register, once; false if another worker did.
    async fn produce(&self, day: NaiveDate) -> Result<bool, Error> {
        let (csv, html, registrations, amendments, head) = self.day_files(day).await?;
        let files_error = |e: std::io::Error| Error::Files {
            path: self.files.root().display().to_string(),
            reason: e.to_string(),
        };
        let csv_sha256 = self.files.put(csv.as_bytes()).await.map_err(files_error)?;
        let html_sha256 = self.files.put(html.as_bytes()).await.map_err(files_error)?;
        let recorded = self
            .service
            .store()
            .record_daily_register(&NewDailyRegister {
                day,
                produced_at: self.service.now(),
                registrations: registrations as u32,
                amendments: amendments as u32,
                csv_sha256,
                html_sha256,
                chain_head: head,
            })
            .await?;
        if recorded {
            info!(giorno = %day, registrazioni = registrations, annotazioni = amendments, "registro giornaliero di protocollo prodotto");
        }
        Ok(recorded)
    }

    /// Hands over every produced register not yet handed over.
    async fn conserve_pending(&self) -> Result<(), Error> {
        let store = self.service.store();
        let mut failure = None;
        for row in store.daily_registers().await? {
            if row.conservation_status == store::ConservationStatus::Inviato {
                continue;
            }
            match self.conserve(&row).await {
                Ok(receipt) => {
                    store
                        .daily_register_conserved(row.day, &receipt, self.service.now())
                        .await?;
                    info!(giorno = %row.day, "registro giornaliero consegnato alla conservazione");
                }
                Err(why) => {
                    warn!(giorno = %row.day, error = %why, "registro giornaliero non consegnato alla conservazione: nuovo tentativo al prossimo giro");
                    store.daily_register_failed(row.day, &why).await?;
                    failure.get_or_insert(why);
                }
            }
        }
        match failure {
            Some(why) => Err(Error::Invalid(format!(
                "consegna alla conservazione non riuscita: {why}"
            ))),
            None => Ok(()),
        }
    }

    async fn conserve(&self, row: &DailyRegisterRow) -> Result<String, String> {
        let day = row.day.format("%Y-%m-%d").to_string();
        let mut files = Vec::new();
        for (sha256, name, media_type) in [
            (
                &row.csv_sha256,
                format!("registro-giornaliero-{day}.csv"),
                "text/csv",
            ),
            (
                &row.html_sha256,
                format!("registro-giornaliero-{day}.html"),
                "text/html",
            ),
        ] {
            let content = self
                .files
                .get(sha256)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("file {name} assente dall'archivio"))?;
            files.push(conservazione::PackageFile {
                name,
                media_type: media_type.to_owned(),
                content,
                sha256: sha256.clone(),
            });
        }
        let manifest = json!({
            "tipo": "registro giornaliero di protocollo",
            "amministrazione": self.aoo.codice_amministrazione,
            "aoo": self.aoo.codice_aoo,
            "giorno": day,
            "registrazioni": row.registrations,
            "annotazioni": row.amendments,
            "catena": row.chain_head,
            "file": files.iter().map(|f| json!({"nome": f.name, "sha256": f.sha256})).collect::<Vec<_>>(),
        })
        .to_string();
        self.conservation
            .deposit(&Package {
                day: row.day,
                files,
                manifest,
            })
            .await
    }

    /// Recomputes the chain and the digests of every file; see `verify`.
    pub async fn verify(&self) -> Result<verify::Report, Error> {
        verify::run(self.service.store(), &self.files).await
    }
}

/// `0000042/2026` → (42, 2026).
pub fn parse_reference(text: &str) -> Option<(i64, i32)> {
    let (number, year) = text.trim().split_once('/')?;
    Some((number.trim().parse().ok()?, year.trim().parse().ok()?))
}

/// The instants that bound a civil day in Europe/Rome: `[midnight, next midnight)`.
pub fn day_bounds(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = |d: NaiveDate| {
        local_instant(d, NaiveTime::MIN)
            .unwrap_or_else(|| d.and_time(NaiveTime::MIN).and_utc() - ChronoDuration::hours(1))
    };
    let next = day.succ_opt().unwrap_or(day);
    (start(day), start(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_reads_with_or_without_padding() {
        assert_eq!(parse_reference("0000042/2026"), Some((42, 2026)));
        assert_eq!(parse_reference(" 42 / 2026 "), Some((42, 2026)));
        assert_eq!(parse_reference("42-2026"), None);
    }

    #[test]
    fn a_register_code_fits_the_segnatura() {
        assert!(valid_register("protocollo"));
        assert!(valid_register("delibere.ass"));
        assert!(!valid_register(""));
        assert!(!valid_register("con spazi"));
        assert!(!valid_register("troppo-lungo-per-il-registro"));
    }

    #[test]
    fn a_day_in_rome_starts_at_local_midnight() {
        let (from, until) = day_bounds(NaiveDate::from_ymd_opt(2027, 1, 1).expect("valid"));
        assert_eq!(from.to_rfc3339(), "2026-12-31T23:00:00+00:00");
        assert_eq!(until.to_rfc3339(), "2027-01-01T23:00:00+00:00");
    }
}
