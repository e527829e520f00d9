//! Protocol registrations as the API shows them: the citation of a registration (number,
//! date, "prot. n. … del …") on an application or a soccorso answer, and the registration
//! itself for `protocolRegistrations` — in full for staff; for an ETS or a comune only what
//! concerns its own organisation (other recipients, the operator and the segnatura, which
//! lists every recipient, are left out).

use std::sync::Arc;

use async_graphql::{Enum, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};

use crate::api::policy::Caller;
use crate::store::{self, AmendmentKind, CorrespondentKind};
use crate::terms::ROME;

/// How a registration is cited.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ProtocolReference {
    /// `protocollo`, `emergenza` or a repertorio.
    pub register: String,
    /// The number as written: at least seven digits.
    pub number: String,
    /// The year of the numbering.
    pub year: i32,
    /// The date of registration (Europe/Rome).
    pub date: NaiveDate,
    /// When it was registered.
    pub registered_at: DateTime<Utc>,
    /// How a letter cites it: "prot. n. 0000042 del 27/11/2026".
    pub citation: String,
    /// The registration was annulled.
    pub annulled: bool,
}

impl From<&store::ProtocolRegistration> for ProtocolReference {
    fn from(r: &store::ProtocolRegistration) -> ProtocolReference {
        let citation = crate::notify::delivery::citation_context(r)["riferimento"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        ProtocolReference {
            register: r.register.clone(),
            number: r.padded_number(),
            year: r.year,
            date: r.registered_at.with_timezone(&ROME).date_naive(),
            registered_at: r.registered_at,
            citation,
            annulled: r.annulment().is_some(),
        }
    }
}

/// In, out or internal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum ProtocolDirection {
    /// Received.
    Entrata,
    /// Sent.
    Uscita,
    /// Internal.
    Interno,
}

/// A sender or recipient.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ProtocolCorrespondent {
    /// `pa`, `persona_giuridica` or `persona_fisica`.
    pub kind: String,
    /// The name.
    pub name: String,
    /// The person acting for it.
    pub referente: Option<String>,
    /// The address.
    pub email: Option<String>,
}

/// A registered document, named by its SHA-256.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ProtocolDocument {
    /// `primario` or `allegato`.
    pub role: String,
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: i64,
    /// Hex SHA-256 (the impronta).
    pub sha256: String,
}

/// An annulment, a correction or a reconciliation.
#[derive(Debug, Clone, SimpleObject)]
pub(crate) struct ProtocolAmendment {
    /// `annullamento`, `correzione` or `riconciliazione`.
    pub kind: String,
    /// The field corrected.
    pub field: Option<String>,
    /// Its value before.
    pub previous: Option<String>,
    /// Its new value, or the definitive number.
    pub value: Option<String>,
    /// Why.
    pub reason: String,
    /// The authorising act.
    pub act: Option<String>,
    /// Who (staff only).
    pub operator: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A registration, as the caller may see it.
pub(crate) struct ProtocolRegistration {
    pub row: store::ProtocolRegistration,
    pub caller: Arc<Caller>,
}

impl ProtocolRegistration {
    fn full(&self) -> bool {
        self.caller.role.is_staff()
    }
}

#[Object]
impl ProtocolRegistration {
    /// Number, date and citation.
    async fn reference(&self) -> ProtocolReference {
        ProtocolReference::from(&self.row)
    }

    /// In, out or internal.
    async fn direction(&self) -> ProtocolDirection {
        match self.row.direction {
            store::Direction::Entrata => ProtocolDirection::Entrata,
            store::Direction::Uscita => ProtocolDirection::Uscita,
            store::Direction::Interno => ProtocolDirection::Interno,
        }
    }

    /// The subject, as last corrected.
    async fn subject(&self) -> String {
        self.row
            .effective("oggetto")
            .unwrap_or_else(|| self.row.subject.clone())
    }

    /// Sender or recipients, as last corrected (an ETS or a comune sees itself only).
    async fn correspondents(&self) -> Vec<ProtocolCorrespondent> {
        self.row
            .effective_correspondents()
            .into_iter()
            .filter(|c| {
                self.full()
                    || c.organisation_id.as_deref() == Some(self.caller.organisation_id.as_str())
            })
            .map(|c| ProtocolCorrespondent {
                kind: match c.kind {
                    CorrespondentKind::Pa => "pa",
                    CorrespondentKind::PersonaGiuridica => "persona_giuridica",
                    CorrespondentKind::PersonaFisica => "persona_fisica",
                }
                .to_owned(),
                name: c.name,
                referente: c.referente,
                email: c.email,
            })
            .collect()
    }

    /// Titolario classification, as last corrected.
    async fn classification(&self) -> Option<String> {
        self.row.effective("classificazione")
    }

    /// The fascicolo.
    async fn fascicolo(&self) -> Option<&str> {
        self.row.fascicolo.as_deref()
    }

    /// When an incoming document was received (what its timeliness is judged on).
    async fn received_at(&self) -> Option<DateTime<Utc>> {
        self.row.received_at
    }

    /// How it travelled: `piattaforma`, `procedura`, `pec`…
    async fn channel(&self) -> &str {
        &self.row.channel
    }

    /// Whose number: `locale`, `esterno` (the ente's system) or `emergenza`.
    async fn source(&self) -> &str {
        self.row.source.as_str()
    }

    /// The documents with their SHA-256.
    async fn documents(&self) -> Vec<ProtocolDocument> {
        self.row
            .documents
            .iter()
            .map(|d| ProtocolDocument {
                role: d.role.as_str().to_owned(),
                name: d.name.clone(),
                media_type: d.media_type.clone(),
                size: i64::try_from(d.size).unwrap_or(i64::MAX),
                sha256: d.sha256.clone(),
            })
            .collect()
    }

    /// Annulment, corrections and reconciliation, in order.
    async fn amendments(&self) -> Vec<ProtocolAmendment> {
        self.row
            .amendments
            .iter()
            .map(|a| ProtocolAmendment {
                kind: match a.kind {
                    AmendmentKind::Annullamento => "annullamento",
                    AmendmentKind::Correzione => "correzione",
                    AmendmentKind::Riconciliazione => "riconciliazione",
                }
                .to_owned(),
                field: a.field.clone(),
                previous: a.previous.clone(),
                value: a.value.clone(),
                reason: a.reason.clone(),
                act: a.act.clone(),
                operator: self.full().then(|| a.operator.clone()),
                at: a.at,
            })
            .collect()
    }

    /// The segnatura XML of an outgoing document (staff only: it lists every recipient).
    async fn segnatura(&self) -> Option<&str> {
        if self.full() {
            self.row.segnatura.as_deref()
        } else {
            None
        }
    }
}
