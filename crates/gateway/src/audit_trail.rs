//! What a request leaves in the audit log. Handlers (and refusals) attach their [`AuditEvent`] to the response
//! (as [`AuditCtx`]: the same type, status and latency still empty); the request envelope fills in status and
//! latency and hands it to the chain writer, so every audited route is recorded in one place, after the
//! response is built and without waiting for the database.

use crate::audit_log::AuditEvent;

/// The audit facts a handler knows about its request: an [`AuditEvent`] whose status and latency the envelope
/// fills in.
pub(crate) type AuditCtx = AuditEvent;

impl AuditEvent {
    /// The context of an inference request on `route` for `model`.
    pub fn inference(route: &str, model: &str) -> AuditEvent {
        AuditEvent {
            kind: "inference".into(),
            model: model.to_string(),
            route: route.to_string(),
            ..AuditEvent::default()
        }
    }

    /// The context of an administrative request.
    pub fn admin(route: &str) -> AuditEvent {
        AuditEvent {
            kind: "admin".into(),
            route: route.to_string(),
            ..AuditEvent::default()
        }
    }

    /// The event for the chain, with the response's status and the request's latency; a refused inference is
    /// recorded as kind `denied`.
    pub fn into_event(mut self, status: u16, latency: std::time::Duration) -> AuditEvent {
        if self.decision.starts_with("denied") && self.kind == "inference" {
            self.kind = "denied".into();
        }
        self.status = status;
        self.latency_us = latency.as_micros().min(u64::MAX as u128) as u64;
        self
    }
}
