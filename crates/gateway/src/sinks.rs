//! Where detectors that run beside a request (extraction, drift) record what they find: the database, the
//! Prometheus metrics and the audit chain, without a handle on the whole server state.

use crate::audit_log::AuditLog;
use crate::db::Db;
use crate::metrics::Metrics;

/// The database, the metrics and the audit chain.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sinks<'a> {
    /// The database.
    pub(crate) db: &'a Db,
    /// Prometheus metrics.
    pub(crate) metrics: &'a Metrics,
    /// The audit chain writer.
    pub(crate) audit: &'a AuditLog,
}
