//! The protocol register of the AOO (DPR 445/2000 artt. 53-57) and its repertori: every
//! registration gets, in one transaction, the next number of its register and year (the
//! civil year in Europe/Rome: numbering restarts on 1 January), written with at least seven
//! digits (`0000042`), with its correspondents, classification, fascicolo, documents and their
//! SHA-256 impronta, and its place in the hash chain (`chain.rs`).
//!
//! Invariant: numbers of a register and year run 1..n without gaps or repeats. The number is
//! taken and the row written in one write transaction under one lock (the write lock on
//! SQLite, a transaction-scoped advisory lock on PostgreSQL), and `UNIQUE(register, year,
//! number)` backs it. A registration with an idempotency key is made once: the same key
//! again gets the first registration back.
//!
//! Invariant: nothing here updates or deletes a registration, a document or an amendment
//! (the database refuses to). An annulment, a correction of a typed field or the
//! reconciliation of an emergency registration is a new amendment row; the original stays
//! readable. The one update the guards allow seals a row carried over from the former
//! counter into the chain, once.

mod chain;
mod daily;

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::{Deserialize, Serialize};

pub use chain::{
    GENESIS, canonical_amendment, canonical_registration, next as next_chain, sha256_hex,
};
pub use daily::{ConservationStatus, DailyRegisterRow, NewDailyRegister};

use super::entities::{protocol_amendment, protocol_document, protocol_registration};
use super::{
    Error, Result, Store, from_json, instant, is_unique_violation, rollback, settle, to_json,
};
use crate::terms::ROME;

/// The code of the protocol register (repertori have codes of their own).
pub const PROTOCOL_REGISTER: &str = "protocollo";
/// The code of the emergency register (art. 63 DPR 445/2000).
pub const EMERGENCY_REGISTER: &str = "emergenza";

/// Attempts when a concurrent writer took the number or the key first.
const ATTEMPTS: usize = 5;

/// Direction of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received (in ingresso).
    Entrata,
    /// Sent (in uscita).
    Uscita,
    /// Between offices of the AOO.
    Interno,
}

impl Direction {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Entrata => "entrata",
            Direction::Uscita => "uscita",
            Direction::Interno => "interno",
        }
    }

    /// Parses a column value.
    pub fn parse(text: &str) -> Option<Direction> {
        match text {
            "entrata" => Some(Direction::Entrata),
            "uscita" => Some(Direction::Uscita),
            "interno" => Some(Direction::Interno),
            _ => None,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a registration's number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// procedo's own register.
    Locale,
    /// The ente's protocol system (this row mirrors its registration).
    Esterno,
    /// procedo's emergency register, while the ente's system was unreachable.
    Emergenza,
}

impl Source {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Locale => "locale",
            Source::Esterno => "esterno",
            Source::Emergenza => "emergenza",
        }
    }

    fn parse(text: &str) -> Option<Source> {
        match text {
            "locale" => Some(Source::Locale),
            "esterno" => Some(Source::Esterno),
            "emergenza" => Some(Source::Emergenza),
            _ => None,
        }
    }
}

/// What kind of party a correspondent is (the segnatura's `SoggettoType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrespondentKind {
    /// A public administration (a comune, the Ambito).
    Pa,
    /// A legal person (an ETS).
    PersonaGiuridica,
    /// A natural person.
    PersonaFisica,
}

/// A sender or a recipient of a registered document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correspondent {
    /// What kind of party.
    pub kind: CorrespondentKind,
    /// Its name (denominazione, or name and surname).
    pub name: String,
    /// Codice fiscale or partita IVA, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codice_fiscale: Option<String>,
    /// Email or PEC address, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The organisation in procedo, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation_id: Option<String>,
    /// The person in procedo, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person_id: Option<String>,
    /// The person who acts for an organisation (the capofila's legal representative, the
    /// mayor of a comune), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referente: Option<String>,
}

/// Primary document or attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocumentRole {
    /// The document registered.
    Primario,
    /// An attachment.
    Allegato,
}

impl DocumentRole {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentRole::Primario => "primario",
            DocumentRole::Allegato => "allegato",
        }
    }
}

/// A document of a registration: the file itself is in the file store, by SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolDocument {
    /// 1, 2, … in the order given.
    pub position: i32,
    /// Primary or attachment.
    pub role: DocumentRole,
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the content (the impronta; the segnatura writes it in base64).
    pub sha256: String,
}

/// A document to register with its registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProtocolDocument {
    /// Primary or attachment.
    pub role: DocumentRole,
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Hex SHA-256 of the content.
    pub sha256: String,
}

/// A number given by another system (the ente's protocol), to record as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssignedNumber {
    /// Its year.
    pub year: i32,
    /// Its number.
    pub number: i64,
    /// When that system registered it.
    pub at: DateTime<Utc>,
}

/// A registration to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProtocolRegistration {
    /// `protocollo`, `emergenza` or a repertorio's code.
    pub register: String,
    /// In, out or internal.
    pub direction: Direction,
    /// The subject (oggetto).
    pub subject: String,
    /// The sender (incoming) or the recipients (outgoing).
    pub correspondents: Vec<Correspondent>,
    /// The titolario classification.
    pub classification: Option<String>,
    /// The fascicolo (the instance's, for a procedure's documents).
    pub fascicolo: Option<String>,
    /// The instance it belongs to.
    pub instance_id: Option<String>,
    /// Idempotency key: the same key registers once.
    pub key: Option<String>,
    /// The sender's own protocol number (incoming).
    pub sender_reference: Option<String>,
    /// The sender's date (incoming).
    pub sender_date: Option<NaiveDate>,
    /// When the document was received (incoming): what timeliness is judged on.
    pub received_at: Option<DateTime<Utc>>,
    /// How it arrived or left: `piattaforma`, `pec`, `email`, `procedura`, `sportello`.
    pub channel: String,
    /// Who registers (a person id, or `sistema`).
    pub operator: String,
    /// Whose number it is.
    pub source: Source,
    /// The documents, primary first (their files already in the file store).
    pub documents: Vec<NewProtocolDocument>,
    /// When it is registered (its Europe/Rome year picks the numbering), unless `assigned`.
    pub at: DateTime<Utc>,
    /// A number given by another system, recorded as is.
    pub assigned: Option<AssignedNumber>,
}

/// What an amendment does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AmendmentKind {
    /// The whole registration is annulled (art. 54).
    Annullamento,
    /// A typed field is annulled and renewed with a new value.
    Correzione,
    /// An emergency registration is linked to its number in the protocol register.
    Riconciliazione,
}

impl AmendmentKind {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            AmendmentKind::Annullamento => "annullamento",
            AmendmentKind::Correzione => "correzione",
            AmendmentKind::Riconciliazione => "riconciliazione",
        }
    }

    fn parse(text: &str) -> Option<AmendmentKind> {
        match text {
            "annullamento" => Some(AmendmentKind::Annullamento),
            "correzione" => Some(AmendmentKind::Correzione),
            "riconciliazione" => Some(AmendmentKind::Riconciliazione),
            _ => None,
        }
    }
}

/// The fields an operator typed, which a correction may renew.
pub const CORRECTABLE_FIELDS: [&str; 4] = [
    "oggetto",
    "corrispondenti",
    "classificazione",
    "riferimento_mittente",
];

/// An amendment as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolAmendment {
    /// Row id.
    pub id: i64,
    /// Position in the chain.
    pub log_seq: i64,
    /// The registration amended.
    pub registration_id: i64,
    /// What it does.
    pub kind: AmendmentKind,
    /// The field corrected.
    pub field: Option<String>,
    /// The value before (a correction).
    pub previous: Option<String>,
    /// The new value, or the definitive number (a reconciliation).
    pub value: Option<String>,
    /// Why.
    pub reason: String,
    /// The authorising act (provvedimento).
    pub act: Option<String>,
    /// Who.
    pub operator: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Its place in the chain.
    pub chain: String,
}

/// An amendment to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAmendment {
    /// What it does.
    pub kind: AmendmentKind,
    /// The field corrected (a correction).
    pub field: Option<String>,
    /// The new value (a correction), or the definitive number (a reconciliation).
    pub value: Option<String>,
    /// Why.
    pub reason: String,
    /// The authorising act.
    pub act: Option<String>,
    /// Who.
    pub operator: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A registration as recorded, with its documents and amendments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolRegistration {
    /// Row id.
    pub id: i64,
    /// Position in the chain.
    pub log_seq: i64,
    /// Its register.
    pub register: String,
    /// The year of its numbering.
    pub year: i32,
    /// Its number within the year, from 1.
    pub number: i64,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// In, out or internal.
    pub direction: Direction,
    /// The subject as registered (see `effective` for corrections).
    pub subject: String,
    /// Sender or recipients as registered.
    pub correspondents: Vec<Correspondent>,
    /// Classification as registered.
    pub classification: Option<String>,
    /// The fascicolo.
    pub fascicolo: Option<String>,
    /// The instance.
    pub instance_id: Option<String>,
    /// Its idempotency key.
    pub key: Option<String>,
    /// The sender's number.
    pub sender_reference: Option<String>,
    /// The sender's date.
    pub sender_date: Option<NaiveDate>,
    /// When it was received.
    pub received_at: Option<DateTime<Utc>>,
    /// How it travelled.
    pub channel: String,
    /// Who registered it.
    pub operator: String,
    /// Whose number it is.
    pub source: Source,
    /// The segnatura XML (outgoing documents).
    pub segnatura: Option<String>,
    /// Its place in the chain (`None` only for a carried-over row not sealed yet).
    pub chain: Option<String>,
    /// Its documents, in order.
    pub documents: Vec<ProtocolDocument>,
    /// Its amendments, in order.
    pub amendments: Vec<ProtocolAmendment>,
}

impl ProtocolRegistration {
    /// The number as written on documents: at least seven digits, e.g. `0000042`.
    pub fn padded_number(&self) -> String {
        format!("{:07}", self.number)
    }

    /// `registro/anno/numero`, how amendments name it in the chain.
    pub fn reference(&self) -> String {
        format!("{}/{}/{}", self.register, self.year, self.padded_number())
    }

    /// The civil date of the registration in Europe/Rome.
    pub fn date(&self) -> NaiveDate {
        self.registered_at.with_timezone(&ROME).date_naive()
    }

    /// The annulment, if the registration was annulled.
    pub fn annulment(&self) -> Option<&ProtocolAmendment> {
        self.amendments
            .iter()
            .find(|a| a.kind == AmendmentKind::Annullamento)
    }

    /// The reconciliation of an emergency registration, if made.
    pub fn reconciliation(&self) -> Option<&ProtocolAmendment> {
        self.amendments
            .iter()
            .find(|a| a.kind == AmendmentKind::Riconciliazione)
    }

    /// The value of a typed field now: as registered, or as last corrected.
    pub fn effective(&self, field: &str) -> Option<String> {
        if let Some(last) = self
            .amendments
            .iter()
            .rev()
            .find(|a| a.kind == AmendmentKind::Correzione && a.field.as_deref() == Some(field))
        {
            return last.value.clone();
        }
        self.registered_value(field)
    }

    /// The value of a typed field as registered.
    fn registered_value(&self, field: &str) -> Option<String> {
        match field {
            "oggetto" => Some(self.subject.clone()),
            "corrispondenti" => serde_json::to_string(&self.correspondents).ok(),
            "classificazione" => self.classification.clone(),
            "riferimento_mittente" => self.sender_reference.clone(),
            _ => None,
        }
    }

    /// The correspondents now (as corrected).
    pub fn effective_correspondents(&self) -> Vec<Correspondent> {
        self.effective("corrispondenti")
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| self.correspondents.clone())
    }
}

impl fmt::Display for ProtocolRegistration {
    /// `0000042/2026`, with the register's name when it is not the protocol.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.register == PROTOCOL_REGISTER {
            write!(f, "{}/{}", self.padded_number(), self.year)
        } else {
            write!(
                f,
                "{} {}/{}",
                self.register,
                self.padded_number(),
                self.year
            )
        }
    }
}

/// What `register_protocol` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// A new number was taken.
    New(ProtocolRegistration),
    /// The key was already registered: its first registration.
    Existing(ProtocolRegistration),
}

impl Registered {
    /// The registration, new or not.
    pub fn registration(&self) -> &ProtocolRegistration {
        match self {
            Registered::New(r) | Registered::Existing(r) => r,
        }
    }
}

/// Which registrations to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProtocolFilter {
    /// Only this register.
    pub register: Option<String>,
    /// Registered in `[from, until)`.
    pub between: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Only this instance's.
    pub instance_id: Option<String>,
}

/// Why a registration or an amendment was refused. Italian: an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The registration is annulled: nothing more can be done to it.
    #[error("la registrazione {0} è annullata: non si modifica più")]
    Annulled(String),
    /// Not a field an operator typed.
    #[error("il campo '{field}' non si corregge (correggibili: {})", CORRECTABLE_FIELDS.join(", "))]
    NotCorrectable {
        /// The field asked.
        field: String,
    },
    /// An annulment or correction needs its authorising act and a reason.
    #[error("annullamenti e correzioni richiedono il motivo e l'atto che li autorizza")]
    Unauthorised,
    /// The new value equals the current one.
    #[error("il campo '{0}' ha già questo valore")]
    Unchanged(String),
    /// A reconciliation of a registration that is not in the emergency register, or twice.
    #[error("la registrazione {0} non è una registrazione di emergenza da riconciliare")]
    NotReconcilable(String),
}

fn parse_date(text: Option<String>, id: i64) -> Result<Option<NaiveDate>> {
    text.map(|t| {
        NaiveDate::parse_from_str(&t, "%Y-%m-%d").map_err(|_| {
            Error::Corrupt(format!(
                "protocol_registrations.sender_date '{t}' della registrazione {id}"
            ))
        })
    })
    .transpose()
}

fn document_from_model(m: protocol_document::Model) -> Result<ProtocolDocument> {
    let role = match m.role.as_str() {
        "primario" => DocumentRole::Primario,
        "allegato" => DocumentRole::Allegato,
        other => {
            return Err(Error::Corrupt(format!(
                "protocol_documents.role '{other}' del documento {}",
                m.id
            )));
        }
    };
    Ok(ProtocolDocument {
        position: m.position,
        role,
        name: m.name,
        media_type: m.media_type,
        size: u64::try_from(m.size).unwrap_or(0),
        sha256: m.sha256,
    })
}

fn amendment_from_model(m: protocol_amendment::Model) -> Result<ProtocolAmendment> {
    Ok(ProtocolAmendment {
        kind: AmendmentKind::parse(&m.kind).ok_or_else(|| {
            Error::Corrupt(format!(
                "protocol_amendments.kind '{}' della riga {}",
                m.kind, m.id
            ))
        })?,
        id: m.id,
        log_seq: m.log_seq,
        registration_id: m.registration_id,
        field: m.field,
        previous: m.previous,
        value: m.value,
        reason: m.reason,
        act: m.act,
        operator: m.operator,
        at: m.at,
        chain: m.chain,
    })
}

fn registration_from_model(
    m: protocol_registration::Model,
    documents: Vec<ProtocolDocument>,
    amendments: Vec<ProtocolAmendment>,
) -> Result<ProtocolRegistration> {
    let correspondents = from_json(
        &m.correspondents,
        format_args!(
            "protocol_registrations.correspondents della registrazione {}",
            m.id
        ),
    )?;
    Ok(ProtocolRegistration {
        direction: Direction::parse(&m.direction).ok_or_else(|| {
            Error::Corrupt(format!(
                "protocol_registrations.direction '{}' della registrazione {}",
                m.direction, m.id
            ))
        })?,
        source: Source::parse(&m.source).ok_or_else(|| {
            Error::Corrupt(format!(
                "protocol_registrations.source '{}' della registrazione {}",
                m.source, m.id
            ))
        })?,
        sender_date: parse_date(m.sender_date, m.id)?,
        id: m.id,
        log_seq: m.log_seq,
        register: m.register,
        year: m.year,
        number: m.number,
        registered_at: m.registered_at,
        subject: m.subject,
        correspondents,
        classification: m.classification,
        fascicolo: m.fascicolo,
        instance_id: m.instance_id,
        key: m.idempotency_key,
        sender_reference: m.sender_reference,
        received_at: m.received_at,
        channel: m.channel,
        operator: m.operator,
        segnatura: m.segnatura,
        chain: m.chain,
        documents,
        amendments,
    })
}

/// Loads registrations with their documents and amendments (three queries).
async fn complete<C: ConnectionTrait>(
    conn: &C,
    models: Vec<protocol_registration::Model>,
) -> Result<Vec<ProtocolRegistration>> {
    if models.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = models.iter().map(|m| m.id).collect();
    let mut documents: std::collections::HashMap<i64, Vec<ProtocolDocument>> =
        std::collections::HashMap::new();
    let mut amendments: std::collections::HashMap<i64, Vec<ProtocolAmendment>> =
        std::collections::HashMap::new();
    for chunk in ids.chunks(500) {
        for d in protocol_document::Entity::find()
            .filter(protocol_document::Column::RegistrationId.is_in(chunk.iter().copied()))
            .order_by_asc(protocol_document::Column::RegistrationId)
            .order_by_asc(protocol_document::Column::Position)
            .all(conn)
            .await?
        {
            let registration = d.registration_id;
            documents
                .entry(registration)
                .or_default()
                .push(document_from_model(d)?);
        }
        for a in protocol_amendment::Entity::find()
            .filter(protocol_amendment::Column::RegistrationId.is_in(chunk.iter().copied()))
            .order_by_asc(protocol_amendment::Column::LogSeq)
            .all(conn)
            .await?
        {
            let registration = a.registration_id;
            amendments
                .entry(registration)
                .or_default()
                .push(amendment_from_model(a)?);
        }
    }
    models
        .into_iter()
        .map(|m| {
            let id = m.id;
            registration_from_model(
                m,
                documents.remove(&id).unwrap_or_default(),
                amendments.remove(&id).unwrap_or_default(),
            )
        })
        .collect()
}

async fn one<C: ConnectionTrait>(
    conn: &C,
    condition: Condition,
) -> Result<Option<ProtocolRegistration>> {
    let Some(model) = protocol_registration::Entity::find()
        .filter(condition)
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(complete(conn, vec![model]).await?.pop())
}

/// Serializes the writers of the register until the transaction ends (PostgreSQL; on SQLite
/// the write transaction holds the database's write lock already).
async fn lock(txn: &DatabaseTransaction, backend: super::Backend) -> Result<()> {
    if backend == super::Backend::Postgres {
        txn.execute_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext('procedo.protocollo'))",
        ))
        .await?;
    }
    Ok(())
}

/// The last position in the chain and its value (`GENESIS` before the first row).
async fn chain_head<C: ConnectionTrait>(conn: &C) -> Result<(i64, String)> {
    let last_registration = protocol_registration::Entity::find()
        .order_by_desc(protocol_registration::Column::LogSeq)
        .one(conn)
        .await?;
    let last_amendment = protocol_amendment::Entity::find()
        .order_by_desc(protocol_amendment::Column::LogSeq)
        .one(conn)
        .await?;
    let from_registration = last_registration.map(|r| (r.log_seq, r.chain, r.id));
    let from_amendment = last_amendment.map(|a| (a.log_seq, Some(a.chain), a.id));
    let head = match (from_registration, from_amendment) {
        (Some(r), Some(a)) => Some(if r.0 > a.0 { r } else { a }),
        (r, a) => r.or(a),
    };
    match head {
        None => Ok((0, GENESIS.to_owned())),
        Some((seq, Some(chain), _)) => Ok((seq, chain)),
        Some((seq, None, id)) => Err(Error::Corrupt(format!(
            "la registrazione {id} (posizione {seq}) non è sigillata nella catena"
        ))),
    }
}

/// One attempt at registering inside `txn`; `None` if a concurrent writer took the number
/// or the key first (roll back and try again).
async fn register_in(
    txn: &DatabaseTransaction,
    backend: super::Backend,
    new: &NewProtocolRegistration,
    segnatura: &(
         dyn Fn(&ProtocolRegistration) -> std::result::Result<Option<String>, String> + Send + Sync
     ),
) -> Result<Option<Registered>> {
    lock(txn, backend).await?;
    if let Some(key) = &new.key
        && let Some(existing) = one(
            txn,
            Condition::all().add(protocol_registration::Column::IdempotencyKey.eq(key)),
        )
        .await?
    {
        return Ok(Some(Registered::Existing(existing)));
    }
    let (year, number, registered_at) = match new.assigned {
        Some(assigned) => (assigned.year, assigned.number, instant(assigned.at)),
        None => {
            let year = new.at.with_timezone(&ROME).year();
            let last: Option<i64> = protocol_registration::Entity::find()
                .select_only()
                .column_as(protocol_registration::Column::Number.max(), "last")
                .filter(protocol_registration::Column::Register.eq(new.register.as_str()))
                .filter(protocol_registration::Column::Year.eq(year))
                .into_tuple()
                .one(txn)
                .await?
                .flatten();
            (year, last.unwrap_or(0) + 1, instant(new.at))
        }
    };
    let (head_seq, head_chain) = chain_head(txn).await?;
    let documents: Vec<ProtocolDocument> = new
        .documents
        .iter()
        .enumerate()
        .map(|(index, d)| ProtocolDocument {
            position: i32::try_from(index + 1).unwrap_or(i32::MAX),
            role: d.role,
            name: d.name.clone(),
            media_type: d.media_type.clone(),
            size: d.size,
            sha256: d.sha256.to_ascii_lowercase(),
        })
        .collect();
    let mut record = ProtocolRegistration {
        id: 0,
        log_seq: head_seq + 1,
        register: new.register.clone(),
        year,
        number,
        registered_at,
        direction: new.direction,
        subject: new.subject.clone(),
        correspondents: new.correspondents.clone(),
        classification: new.classification.clone(),
        fascicolo: new.fascicolo.clone(),
        instance_id: new.instance_id.clone(),
        key: new.key.clone(),
        sender_reference: new.sender_reference.clone(),
        sender_date: new.sender_date,
        received_at: new.received_at.map(instant),
        channel: new.channel.clone(),
        operator: new.operator.clone(),
        source: new.source,
        segnatura: None,
        chain: None,
        documents,
        amendments: Vec::new(),
    };
    record.segnatura = segnatura(&record).map_err(Error::Corrupt)?;
    let link = chain::next(&head_chain, &canonical_registration(&record));
    record.chain = Some(link.clone());
    let row = protocol_registration::ActiveModel {
        id: NotSet,
        log_seq: Set(record.log_seq),
        register: Set(record.register.clone()),
        year: Set(record.year),
        number: Set(record.number),
        registered_at: Set(record.registered_at),
        direction: Set(record.direction.as_str().to_owned()),
        subject: Set(record.subject.clone()),
        correspondents: Set(to_json(&record.correspondents)?),
        classification: Set(record.classification.clone()),
        fascicolo: Set(record.fascicolo.clone()),
        instance_id: Set(record.instance_id.clone()),
        idempotency_key: Set(record.key.clone()),
        sender_reference: Set(record.sender_reference.clone()),
        sender_date: Set(record.sender_date.map(|d| d.format("%Y-%m-%d").to_string())),
        received_at: Set(record.received_at),
        channel: Set(record.channel.clone()),
        operator: Set(record.operator.clone()),
        source: Set(record.source.as_str().to_owned()),
        segnatura: Set(record.segnatura.clone()),
        chain: Set(Some(link)),
    };
    let inserted = match protocol_registration::Entity::insert(row).exec(txn).await {
        Ok(inserted) => inserted,
        Err(err) if is_unique_violation(&err) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    record.id = inserted.last_insert_id;
    if !record.documents.is_empty() {
        let rows: Vec<protocol_document::ActiveModel> = record
            .documents
            .iter()
            .map(|d| protocol_document::ActiveModel {
                id: NotSet,
                registration_id: Set(record.id),
                position: Set(d.position),
                role: Set(d.role.as_str().to_owned()),
                name: Set(d.name.clone()),
                media_type: Set(d.media_type.clone()),
                size: Set(i64::try_from(d.size).unwrap_or(i64::MAX)),
                sha256: Set(d.sha256.clone()),
            })
            .collect();
        protocol_document::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(Some(Registered::New(record)))
}

/// One attempt at amending inside `txn`.
async fn amend_in(
    txn: &DatabaseTransaction,
    backend: super::Backend,
    registration_id: i64,
    new: &NewAmendment,
) -> Result<std::result::Result<ProtocolAmendment, Refusal>> {
    lock(txn, backend).await?;
    let registration = one(
        txn,
        Condition::all().add(protocol_registration::Column::Id.eq(registration_id)),
    )
    .await?
    .ok_or_else(|| Error::NotFound {
        what: "registrazione di protocollo",
        id: registration_id.to_string(),
    })?;
    if registration.annulment().is_some() {
        return Ok(Err(Refusal::Annulled(registration.to_string())));
    }
    let previous = match new.kind {
        AmendmentKind::Annullamento => {
            if new.reason.trim().is_empty()
                || new.act.as_deref().is_none_or(|a| a.trim().is_empty())
            {
                return Ok(Err(Refusal::Unauthorised));
            }
            None
        }
        AmendmentKind::Correzione => {
            let field = new.field.clone().unwrap_or_default();
            if !CORRECTABLE_FIELDS.contains(&field.as_str()) {
                return Ok(Err(Refusal::NotCorrectable { field }));
            }
            if new.reason.trim().is_empty()
                || new.act.as_deref().is_none_or(|a| a.trim().is_empty())
            {
                return Ok(Err(Refusal::Unauthorised));
            }
            let previous = registration.effective(&field);
            if previous == new.value {
                return Ok(Err(Refusal::Unchanged(field)));
            }
            previous
        }
        AmendmentKind::Riconciliazione => {
            if registration.source != Source::Emergenza || registration.reconciliation().is_some() {
                return Ok(Err(Refusal::NotReconcilable(registration.to_string())));
            }
            None
        }
    };
    let (head_seq, head_chain) = chain_head(txn).await?;
    let mut amendment = ProtocolAmendment {
        id: 0,
        log_seq: head_seq + 1,
        registration_id,
        kind: new.kind,
        field: new.field.clone(),
        previous,
        value: new.value.clone(),
        reason: new.reason.clone(),
        act: new.act.clone(),
        operator: new.operator.clone(),
        at: instant(new.at),
        chain: String::new(),
    };
    amendment.chain = chain::next(
        &head_chain,
        &canonical_amendment(&amendment, &registration.reference()),
    );
    let row = protocol_amendment::ActiveModel {
        id: NotSet,
        log_seq: Set(amendment.log_seq),
        registration_id: Set(registration_id),
        kind: Set(amendment.kind.as_str().to_owned()),
        field: Set(amendment.field.clone()),
        previous: Set(amendment.previous.clone()),
        value: Set(amendment.value.clone()),
        reason: Set(amendment.reason.clone()),
        act: Set(amendment.act.clone()),
        operator: Set(amendment.operator.clone()),
        at: Set(amendment.at),
        chain: Set(amendment.chain.clone()),
    };
    amendment.id = protocol_amendment::Entity::insert(row)
        .exec(txn)
        .await?
        .last_insert_id;
    Ok(Ok(amendment))
}

/// One row of the register in chain order, for `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// A registration.
    Registration(ProtocolRegistration),
    /// An amendment, with the reference of the registration it amends.
    Amendment(ProtocolAmendment, String),
}

impl LogEntry {
    /// Its position in the chain.
    pub fn log_seq(&self) -> i64 {
        match self {
            LogEntry::Registration(r) => r.log_seq,
            LogEntry::Amendment(a, _) => a.log_seq,
        }
    }

    /// The chain value it stores.
    pub fn stored_chain(&self) -> Option<&str> {
        match self {
            LogEntry::Registration(r) => r.chain.as_deref(),
            LogEntry::Amendment(a, _) => Some(&a.chain),
        }
    }

    /// Its canonical form, recomputed from what the database holds now.
    pub fn canonical(&self) -> String {
        match self {
            LogEntry::Registration(r) => canonical_registration(r),
            LogEntry::Amendment(a, registration) => canonical_amendment(a, registration),
        }
    }
}

impl Store {
    /// Registers in `new.register` with the next number of its year (Europe/Rome), or with
    /// the number another system assigned, in one transaction with its documents and its
    /// place in the chain; `segnatura` builds the segnatura from the numbered record. With a
    /// key already registered, returns that registration (`Registered::Existing`).
    #[tracing::instrument(skip_all, fields(register = %new.register, key = new.key.as_deref()))]
    pub async fn register_protocol(
        &self,
        new: &NewProtocolRegistration,
        segnatura: &(
             dyn Fn(&ProtocolRegistration) -> std::result::Result<Option<String>, String>
                 + Send
                 + Sync
         ),
    ) -> Result<Registered> {
        for attempt in 1..=ATTEMPTS {
            let (txn, _turn) = self.begin_write().await?;
            match register_in(&txn, self.backend(), new, segnatura).await {
                Ok(None) => {
                    rollback(txn).await;
                    tracing::debug!(attempt, "numero o chiave contesi: nuovo tentativo");
                }
                Ok(Some(registered)) => return settle(txn, Ok(registered)).await,
                Err(err) => return settle(txn, Err(err)).await,
            }
        }
        Err(Error::Database(format!(
            "registro '{}' conteso per {ATTEMPTS} volte: riprovare",
            new.register
        )))
    }

    /// Appends an amendment to a registration (annulment, correction, reconciliation), in
    /// its place in the chain. The outer error is the database's; the inner one says why the
    /// amendment was refused (nothing written).
    #[tracing::instrument(skip_all, fields(registration_id, kind = new.kind.as_str()))]
    pub async fn amend_protocol(
        &self,
        registration_id: i64,
        new: &NewAmendment,
    ) -> Result<std::result::Result<ProtocolAmendment, Refusal>> {
        let (txn, _turn) = self.begin_write().await?;
        let outcome = amend_in(&txn, self.backend(), registration_id, new).await;
        match outcome {
            Ok(Ok(amendment)) => settle(txn, Ok(Ok(amendment))).await,
            Ok(Err(refusal)) => {
                rollback(txn).await;
                Ok(Err(refusal))
            }
            Err(err) => settle(txn, Err(err)).await,
        }
    }

    /// The registration `number/year` of `register`.
    pub async fn protocol_registration(
        &self,
        register: &str,
        year: i32,
        number: i64,
    ) -> Result<Option<ProtocolRegistration>> {
        one(
            &self.db,
            Condition::all()
                .add(protocol_registration::Column::Register.eq(register))
                .add(protocol_registration::Column::Year.eq(year))
                .add(protocol_registration::Column::Number.eq(number)),
        )
        .await
    }

    /// The registration made for an idempotency key, if any.
    pub async fn protocol_by_key(&self, key: &str) -> Result<Option<ProtocolRegistration>> {
        one(
            &self.db,
            Condition::all().add(protocol_registration::Column::IdempotencyKey.eq(key)),
        )
        .await
    }

    /// Registrations matching the filter, by register, year and number.
    pub async fn protocol_registrations(
        &self,
        filter: &ProtocolFilter,
    ) -> Result<Vec<ProtocolRegistration>> {
        let mut query = protocol_registration::Entity::find()
            .order_by_asc(protocol_registration::Column::Register)
            .order_by_asc(protocol_registration::Column::Year)
            .order_by_asc(protocol_registration::Column::Number);
        if let Some(register) = &filter.register {
            query = query.filter(protocol_registration::Column::Register.eq(register.as_str()));
        }
        if let Some((from, until)) = filter.between {
            query = query
                .filter(protocol_registration::Column::RegisteredAt.gte(instant(from)))
                .filter(protocol_registration::Column::RegisteredAt.lt(instant(until)));
        }
        if let Some(instance_id) = &filter.instance_id {
            query =
                query.filter(protocol_registration::Column::InstanceId.eq(instance_id.as_str()));
        }
        let models = query.all(&self.db).await?;
        complete(&self.db, models).await
    }

    /// Amendments made in `[from, until)` (on registrations of any day), in chain order, with
    /// the registration each amends.
    pub async fn protocol_amendments_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(ProtocolAmendment, ProtocolRegistration)>> {
        let amendments = protocol_amendment::Entity::find()
            .filter(protocol_amendment::Column::At.gte(instant(from)))
            .filter(protocol_amendment::Column::At.lt(instant(until)))
            .order_by_asc(protocol_amendment::Column::LogSeq)
            .all(&self.db)
            .await?
            .into_iter()
            .map(amendment_from_model)
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<i64> = amendments.iter().map(|a| a.registration_id).collect();
        let models = protocol_registration::Entity::find()
            .filter(protocol_registration::Column::Id.is_in(ids))
            .all(&self.db)
            .await?;
        let registrations = complete(&self.db, models).await?;
        Ok(amendments
            .into_iter()
            .filter_map(|a| {
                let r = registrations.iter().find(|r| r.id == a.registration_id)?;
                Some((a, r.clone()))
            })
            .collect())
    }

    /// Emergency registrations not yet reconciled with the protocol register.
    pub async fn unreconciled_emergencies(&self) -> Result<Vec<ProtocolRegistration>> {
        Ok(self
            .protocol_registrations(&ProtocolFilter {
                register: Some(EMERGENCY_REGISTER.to_owned()),
                ..ProtocolFilter::default()
            })
            .await?
            .into_iter()
            .filter(|r| r.reconciliation().is_none() && r.annulment().is_none())
            .collect())
    }

    /// The whole register in chain order (registrations and amendments), for `verify`.
    pub async fn protocol_log(&self) -> Result<Vec<LogEntry>> {
        let models = protocol_registration::Entity::find()
            .order_by_asc(protocol_registration::Column::LogSeq)
            .all(&self.db)
            .await?;
        let registrations = complete(&self.db, models).await?;
        let references: std::collections::HashMap<i64, String> = registrations
            .iter()
            .map(|r| (r.id, r.reference()))
            .collect();
        let mut log: Vec<LogEntry> = Vec::with_capacity(registrations.len());
        for r in &registrations {
            for a in &r.amendments {
                let reference = references
                    .get(&a.registration_id)
                    .cloned()
                    .unwrap_or_default();
                log.push(LogEntry::Amendment(a.clone(), reference));
            }
        }
        log.extend(registrations.into_iter().map(LogEntry::Registration));
        log.sort_by_key(LogEntry::log_seq);
        Ok(log)
    }

    /// The registration a message cites for `key`: the definitive one when an emergency
    /// registration was reconciled (`key@definitivo`), the registration itself otherwise.
    pub async fn protocol_citation(&self, key: &str) -> Result<Option<ProtocolRegistration>> {
        let Some(registration) = self.protocol_by_key(key).await? else {
            return Ok(None);
        };
        if registration.source == Source::Emergenza && registration.reconciliation().is_some() {
            let definitive = self.protocol_by_key(&format!("{key}@definitivo")).await?;
            return Ok(definitive.or(Some(registration)));
        }
        Ok(Some(registration))
    }

    /// The chain value of the last row of the register written before `until`.
    pub async fn protocol_chain_head_before(&self, until: DateTime<Utc>) -> Result<Option<String>> {
        let registration = protocol_registration::Entity::find()
            .filter(protocol_registration::Column::RegisteredAt.lt(instant(until)))
            .order_by_desc(protocol_registration::Column::LogSeq)
            .one(&self.db)
            .await?
            .map(|r| (r.log_seq, r.chain));
        let amendment = protocol_amendment::Entity::find()
            .filter(protocol_amendment::Column::At.lt(instant(until)))
            .order_by_desc(protocol_amendment::Column::LogSeq)
            .one(&self.db)
            .await?
            .map(|a| (a.log_seq, Some(a.chain)));
        Ok(match (registration, amendment) {
            (Some(r), Some(a)) => {
                if r.0 > a.0 {
                    r.1
                } else {
                    a.1
                }
            }
            (r, a) => r.or(a).and_then(|(_, chain)| chain),
        })
    }

    /// The registration day of the first registration (Europe/Rome), if any.
    pub async fn first_protocol_day(&self) -> Result<Option<NaiveDate>> {
        Ok(protocol_registration::Entity::find()
            .order_by_asc(protocol_registration::Column::RegisteredAt)
            .one(&self.db)
            .await?
            .map(|m| m.registered_at.with_timezone(&ROME).date_naive()))
    }

    /// Seals into the chain the registrations carried over from the former counter (those
    /// without a chain), in chain order. Run at every start-up; a no-op once done.
    pub(super) async fn seal_protocol(&self) -> Result<u64> {
        let (txn, _turn) = self.begin_write().await?;
        let outcome = async {
            lock(&txn, self.backend()).await?;
            let unsealed = protocol_registration::Entity::find()
                .filter(protocol_registration::Column::Chain.is_null())
                .order_by_asc(protocol_registration::Column::LogSeq)
                .all(&txn)
                .await?;
            if unsealed.is_empty() {
                return Ok(0);
            }
            let first = unsealed[0].log_seq;
            let mut previous = if first <= 1 {
                GENESIS.to_owned()
            } else {
                protocol_registration::Entity::find()
                    .filter(protocol_registration::Column::LogSeq.eq(first - 1))
                    .one(&txn)
                    .await?
                    .and_then(|m| m.chain)
                    .unwrap_or_else(|| GENESIS.to_owned())
            };
            let records = complete(&txn, unsealed).await?;
            let mut sealed = 0;
            for record in records {
                let link = chain::next(&previous, &canonical_registration(&record));
                protocol_registration::Entity::update_many()
                    .col_expr(
                        protocol_registration::Column::Chain,
                        sea_orm::sea_query::Expr::value(link.clone()),
                    )
                    .filter(protocol_registration::Column::Id.eq(record.id))
                    .filter(protocol_registration::Column::Chain.is_null())
                    .exec(&txn)
                    .await?;
                previous = link;
                sealed += 1;
            }
            Ok(sealed)
        }
        .await;
        let sealed = settle(txn, outcome).await?;
        if sealed > 0 {
            tracing::info!(
                sealed,
                "registrazioni precedenti sigillate nella catena del protocollo"
            );
        }
        Ok(sealed)
    }
}
