//! sea-orm entities, one per table. They mirror the migrations column for column and are
//! private to the store: JSON columns are text here and become typed values only in the row
//! types the store hands out.

pub(crate) mod admin_audit;
pub(crate) mod albo_handover;
pub(crate) mod calendar_feed;
pub(crate) mod command;
pub(crate) mod cron_run;
pub(crate) mod definition;
pub(crate) mod history;
pub(crate) mod instance;
pub(crate) mod outbox;
pub(crate) mod timer;
// Identity and ETS submissions (API).
pub(crate) mod document;
pub(crate) mod organisation;
pub(crate) mod person;
pub(crate) mod question;
pub(crate) mod soccorso_response;
pub(crate) mod submission;
pub(crate) mod submission_document;
pub(crate) mod token;
// Email deliveries.
pub(crate) mod delivery;
// PEC receipts and incoming messages.
pub(crate) mod pec_incoming;
pub(crate) mod pec_receipt;
// The protocol register.
pub(crate) mod protocol_amendment;
pub(crate) mod protocol_daily_register;
pub(crate) mod protocol_document;
pub(crate) mod protocol_registration;
