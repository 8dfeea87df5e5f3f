//! The operating model behind `aegis serve`: what the company's AI assets are, which checks ran on which
//! version with what result, every finding with its triage, and who is told when something happens.
//!
//! The pillar crates answer one question about one file and forget; this crate remembers. It keeps
//! - [`assets`]: models, datasets and endpoints with SHA-256 versions, owners, tags and links, their files stored
//!   content-addressed in the data directory ([`objects`]);
//! - [`queue`]: checks (one pillar on one version) queued as jobs in the database, claimed exactly once by one
//!   worker of any replica, executed as runs with status, progress and the full report;
//! - [`findings`]: every finding under a stable fingerprint (rule, asset, location; never the message), resolved
//!   when a later run of its check no longer reports it, reopened when it comes back, triaged with the CycloneDX
//!   VEX states and risk acceptance that expires;
//! - [`notify`]: signed webhooks and SMTP mail, routed by severity and tag, digested, retried, failures visible;
//! - [`posture`]: per model, the latest result of each check and its open findings.
//!
//! [`checks`] runs the pillars in-process (never the CLI as a subprocess) and [`worker`] drives the queue and the
//! schedules. SQL is written once for SQLite and PostgreSQL through sqlx's `Any` driver, in the dialect the
//! gateway's `db` module describes: `$n` placeholders, `BIGINT` Unix seconds, `TEXT` JSON, no auto-increment.
#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod assets;
pub mod checks;
mod cron;
mod error;
pub mod findings;
mod ids;
pub mod notify;
pub mod objects;
pub mod posture;
pub mod queue;
mod schema;
mod smtp;
mod webhook;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{Error, Result};
pub use findings::{TrackedFinding, Triage, VexState};
use sqlx::AnyPool;

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (one node).
    Sqlite,
    /// PostgreSQL (shared by replicas).
    Postgres,
}

/// The store: a pool on the gateway's database plus the data directory that holds the objects.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    data_dir: PathBuf,
    /// SQLite has one writer at a time; this process's writers queue here instead of in SQLite's busy handler.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    /// Objects are encrypted at rest with this key, when configured.
    at_rest: Option<objects::AtRest>,
}

impl Store {
    /// Open the store on `pool` (whose tables are created or upgraded here) with its files under `data_dir`.
    pub async fn open(pool: AnyPool, backend: Backend, data_dir: &Path) -> Result<Store> {
        schema::migrate(&pool).await?;
        Ok(Store {
            pool,
            backend,
            data_dir: data_dir.to_path_buf(),
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            at_rest: None,
        })
    }

    /// Share a process-wide SQLite write lock (the gateway's), so the store's writers and the gateway's queue
    /// in one line instead of meeting in SQLite's busy handler.
    pub fn with_write_lock(mut self, lock: Arc<tokio::sync::Mutex<()>>) -> Store {
        self.write_lock = lock;
        self
    }

    /// Encrypt new objects at rest with the age identity in `key_file` (created owner-only when absent), and
    /// decrypt encrypted ones for checks.
    pub fn with_encryption(mut self, key_file: &Path) -> Result<Store> {
        self.at_rest = Some(objects::AtRest::load_or_create(key_file)?);
        Ok(self)
    }

    /// The encryption at rest, if configured.
    pub fn at_rest(&self) -> Option<&objects::AtRest> {
        self.at_rest.as_ref()
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The data directory (objects live in `objects/` under it).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Serialise this process's writers on SQLite (PostgreSQL: no-op, row locks do the work).
    pub(crate) async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.lock().await),
            Backend::Postgres => None,
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Microseconds since the epoch, made strictly increasing within this process so events of one second keep
/// their order.
pub(crate) fn now_micros() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}
