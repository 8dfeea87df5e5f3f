//! The `aegis serve` gateway: the front door of a small business's models.
//!
//! One process terminates TLS, authenticates people (argon2id passwords, TOTP, sessions) and clients (scoped,
//! hashed API keys), enforces per-key rate limits and budgets atomically in the database (so replicas agree),
//! validates inputs against the model's schema before anything reaches a model, serves local ONNX models and
//! proxies upstream model servers (streaming answers through as they arrive), and writes every decision to a
//! hash-chained, append-only audit log off the request path. State lives in embedded SQLite or in PostgreSQL.
//!
//! Layout: [`config`] (`aegis.toml`), [`db`] (pool and schema), [`identity`] (users, MFA, sessions),
//! [`keys`] and [`limits`] (API keys, rate limits, budgets), [`audit_log`] (the chain and its verifier),
//! [`metrics`] (Prometheus text), [`models`] (local models and input validation), [`upstream`] (the proxy),
//! [`tls`] and [`listener`] (certificates, accept loop, header timeouts), [`server`] and [`admin`] (the routes),
//! [`serve`] (start and stop), [`offline`] (the CLI's direct database access), [`guard`] and [`extraction`]
//! (output hardening, model-extraction detection per key, live drift monitoring of local models).
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod admin;
mod admin_request;
pub mod audit_log;
mod audit_trail;
mod body;
pub mod config;
mod connections;
mod console;
mod context;
pub mod db;
mod error;
mod extraction;
mod guard;
mod http_error;
pub mod identity;
mod inventory;
mod inventory_api;
pub mod keys;
mod limits;
mod listener;
pub mod llm_guard;
mod llm_policy;
mod log;
mod metrics;
pub mod models;
pub mod offline;
mod provenance;
mod refusals;
pub mod secrets;
pub mod serve;
mod server;
mod serving;
pub mod signals;
mod sinks;
mod state;
mod tls;
mod upstream;
pub mod util;

pub use admin::openapi_document;
pub use config::Config;
pub use db::Db;
pub use error::{Error, Result};
pub use guard::ModelGuard;
pub use limits::usage;
pub use provenance::signature_path;
pub use state::AppState;
pub use upstream::{canonical_path, openai_model};
