//! The GraphQL object types, one file per theme. Objects that hold a caller decide what to
//! show through the policy; plain data objects are `SimpleObject`s.

pub(crate) mod caller;
pub(crate) mod definition;
pub mod event;
pub(crate) mod instance;
pub(crate) mod participant;
pub(crate) mod protocol;
pub(crate) mod question;
pub(crate) mod submission;
pub(crate) mod term;
