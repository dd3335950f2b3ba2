//! Cairn's HTTP API: everything between a socket and the tenant databases.
//!
//! Brief overview:
//! - [`Server`] binds the listener, opens storage in the background (WAL
//!   replay; `/ready` answers 503 until it is done) and serves the router
//!   until a shutdown signal, then flushes every tenant's WAL.
//! - [`auth`] authenticates each request (mode `none`, or basic auth against
//!   a reloaded users file) into an [`auth::AuthContext`].
//! - [`tenant`] turns request headers and that context into a validated
//!   [`cairn_model::TenantId`] the caller may use (401/403 otherwise).
//! - [`tls`] serves HTTPS (rustls, certificate reloaded on change, optional
//!   mTLS, HTTP/2 and HTTP/1.1).
//! - [`push`] is the remote-write endpoint: size-capped body, decode,
//!   validate, append to the tenant's WAL and head, answer.
//! - [`query`] is the Prometheus HTTP read API (query, query_range, series,
//!   labels, label values, metadata, exemplars, status) with Prometheus's
//!   parameter rules and JSON envelope.
//! - [`remote_read`] is remote read (`/api/v1/read`, `SAMPLES` responses).
//! - `flush` is Mimir's `/ingester/flush` (admin): heads written into blocks now.
//! - [`error::ApiError`] is the one place where errors become HTTP statuses.
//! - [`metrics`] owns Cairn's own `/metrics`.
//! - [`limits`] holds per-tenant limits: defaults from the config and
//!   runtime overrides re-read from a file (`GET /runtime_config`).
//! - `admin`: series deletion (Prometheus's `admin/tsdb/delete_series`,
//!   `clean_tombstones`) and tenant deletion (Mimir's
//!   `/compactor/delete_tenant`), admin users only.

pub mod auth;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod push;
pub mod query;
pub mod remote_read;
pub mod tenant;
pub mod tls;

mod admin;
mod app;
mod flush;
mod router;

pub use app::{ServeError, Server, ServerOptions};
