//! The state every handler shares: the database, the configuration, the audit chain writer, metrics, the
//! models, upstreams, caches and detectors, assembled once by [`crate::serve`].
//!
//! Kept apart from the router so that the modules handlers call (admin, extraction, guard) never need the
//! router, and the module graph has no cycles.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::audit_log::AuditLog;
use crate::config::Config;
use crate::db::Db;
use crate::extraction;
use crate::guard::Guards;
use crate::identity::SessionKey;
use crate::keys;
use crate::limits;
use crate::metrics::Metrics;
use crate::models::LocalModels;
use crate::refusals::RefusalSampler;
use crate::sinks::Sinks;
use crate::upstream::Upstreams;
use crate::util;

/// Everything a handler needs, shared by all requests.
#[derive(Debug)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Assets, checks, runs, findings and notifications (on the same database).
    pub store: aegis_store::Store,
    /// The configuration.
    pub config: Config,
    /// Signs session tokens.
    pub session_key: SessionKey,
    /// The audit chain writer.
    pub audit: AuditLog,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Local models.
    pub models: LocalModels,
    /// Upstream servers.
    pub upstreams: Upstreams,
    /// Whether the listener terminates TLS (for HSTS).
    pub tls: bool,
    /// Rate-limit tokens already charged to the database, handed out from memory.
    pub leases: limits::RateLeases,
    /// API keys recently read, cleared whenever a key changes anywhere (see [`keys::KeyCache`]).
    pub key_cache: Arc<keys::KeyCache>,
    /// Output hardening, extraction-detector settings and drift windows of the local models.
    pub guards: Guards,
    /// The LLM guards of the OpenAI upstreams (see [`crate::llm_guard`]).
    pub llm_guards: crate::llm_policy::LlmGuards,
    /// Extraction-detector states this process wrote last (see [`extraction`]).
    pub extraction_cache: extraction::StateCache,
    /// Refusals without a valid identity, sampled in the audit log (see [`crate::refusals`]).
    pub(crate) refusals: RefusalSampler,
    /// When a sign-in lockout was last recorded as a finding (Unix seconds; at most one a minute).
    pub(crate) lockout_signal: std::sync::atomic::AtomicI64,
    /// What to do with models whose assets have open findings (see [`crate::serving`]).
    pub(crate) serving: crate::serving::Serving,
    /// Failed sign-ins per source address and per unknown username.
    pub(crate) login_throttle: crate::identity::throttle::LoginThrottle,
    ids: RequestIds,
}

/// The shared state handed to handlers.
pub(crate) type Shared = Arc<AppState>;

impl AppState {
    /// A new request id: a random per-process prefix and a counter.
    pub(crate) fn next_request_id(&self) -> String {
        self.ids.next()
    }

    /// Where detectors record what they find.
    pub(crate) fn sinks(&self) -> Sinks<'_> {
        Sinks {
            db: &self.db,
            store: &self.store,
            metrics: &self.metrics,
            audit: &self.audit,
        }
    }

    /// Assemble the state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        db: Db,
        store: aegis_store::Store,
        config: Config,
        session_key: SessionKey,
        audit: AuditLog,
        models: LocalModels,
        upstreams: Upstreams,
        tls: bool,
        guards: Guards,
    ) -> crate::Result<AppState> {
        Ok(AppState {
            db,
            store,
            session_key,
            audit,
            metrics: Metrics::new(),
            models,
            upstreams,
            tls,
            leases: limits::RateLeases::new(),
            key_cache: Arc::new(keys::KeyCache::new()),
            guards,
            llm_guards: crate::llm_policy::LlmGuards::build(
                &config
                    .upstreams
                    .iter()
                    .filter(|u| u.protocol == crate::config::Protocol::Openai)
                    .map(|u| (u.name.clone(), u.llm_guard.clone()))
                    .collect::<Vec<_>>(),
            )
            .map_err(crate::Error::Invalid)?,
            extraction_cache: extraction::StateCache::new(),
            login_throttle: Default::default(),
            serving: Default::default(),
            lockout_signal: Default::default(),
            refusals: RefusalSampler::new(std::time::Duration::from_secs(
                config.server.refusal_summary_secs.max(1),
            )),
            ids: RequestIds::new()?,
            config,
        })
    }
}

/// Request ids: a random per-process prefix and a counter (unique across replicas, cheap per request).
#[derive(Debug)]
struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> crate::Result<RequestIds> {
        Ok(RequestIds {
            prefix: util::random_token(8)?,
            next: AtomicU64::new(1),
        })
    }

    fn next(&self) -> String {
        format!(
            "{}-{:x}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}
