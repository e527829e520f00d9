//! End-to-end tests of the GraphQL API: each test starts the real server on a random loopback
//! port over a fresh database (SQLite, and PostgreSQL when `PROCEDO_TEST_DATABASE_URL` is set)
//! and talks HTTP (and WebSocket) to it. `TEST_LOG=debug` shows the server's logs.

#[path = "../common/mod.rs"]
mod common;

mod helpers;

mod admin;
mod albo;
mod auth;
mod browser;
mod commands;
mod graphiql;
mod hardening;
mod limits;
mod meetings;
mod oidc;
mod operations;
mod protocollo;
mod questions;
mod schema;
mod submissions;
mod subscriptions;
