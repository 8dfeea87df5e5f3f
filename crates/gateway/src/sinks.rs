//! Where detectors that run beside a request (extraction, drift) record what they find: the database, the
//! Prometheus metrics, the audit chain and the findings store, without a handle on the whole server state.

use crate::audit_log::AuditLog;
use crate::db::Db;
use crate::metrics::Metrics;

/// The database, the metrics and the audit chain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sinks<'a> {
    /// The database.
    pub(crate) db: &'a Db,
    /// The findings store (live signals become findings).
    pub(crate) store: &'a aegis_store::Store,
    /// Prometheus metrics.
    pub(crate) metrics: &'a Metrics,
    /// The audit chain writer.
    pub(crate) audit: &'a AuditLog,
}
