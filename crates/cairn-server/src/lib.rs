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
//! - [`federation`] is what a read sees: one tenant's store, or several
//!   tenants merged with a `__tenant_id__` label (`X-Scope-OrgID: a|b`).
//! - [`push`] is the remote-write endpoint: size-capped body, decode,
//!   validate, append to the tenant's WAL and head, answer.
//! - [`query`] is the Prometheus HTTP read API (query, query_range, series,
//!   labels, label values, metadata, exemplars, status) with Prometheus's
//!   parameter rules and JSON envelope; its [`query::scheduler`] runs every
//!   storage read on bounded workers, tenants served round-robin.
//! - [`remote_read`] is remote read (`/api/v1/read`, `SAMPLES` responses).
//! - `flush` is Mimir's `/ingester/flush` (admin): heads written into blocks now.
//! - [`error::ApiError`] is the one place where errors become HTTP statuses.
//! - [`metrics`] owns Cairn's own `/metrics`.
//! - [`usage`] accounts per-tenant usage, records it into the internal
//!   tenant `__cairn_usage__` and serves `/api/v1/usage`.
//! - [`limits`] holds per-tenant limits: defaults from the config and
//!   runtime overrides re-read from a file (`GET /runtime_config`).
//! - `admin`: series deletion (Prometheus's `admin/tsdb/delete_series`,
//!   `clean_tombstones`) and tenant deletion (Mimir's
//!   `/compactor/delete_tenant`), admin users only.
//! - `tenant_stats` answers Mimir's `/api/v1/user_stats` and the admin
//!   tenants overview; `cardinality` answers Mimir's cardinality API.

pub mod auth;
mod cardinality;
pub mod error;
pub mod federation;
pub mod limits;
pub mod metrics;
pub mod push;
pub mod query;
pub mod remote_read;
pub mod tenant;
mod tenant_stats;
pub mod tls;
pub mod usage;

mod admin;
mod app;
mod flush;
mod router;

pub use app::{ServeError, Server, ServerOptions};
