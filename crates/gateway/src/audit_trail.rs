//! What a request leaves in the audit log. Handlers (and refusals) attach an [`AuditCtx`] to their response;
//! the request envelope adds status and latency and hands the event to the chain writer, so every audited route
//! is recorded in one place, after the response is built and without waiting for the database.

use crate::audit_log::AuditEvent;

/// The audit facts a handler knows about its request.
#[derive(Debug, Clone, Default)]
pub struct AuditCtx {
    /// `inference`, `admin`, `auth`, `denied`.
    pub kind: &'static str,
    /// Who: the key's owner or the session's user (empty when unauthenticated).
    pub actor: String,
    /// The API key id (never the secret).
    pub key_id: String,
    /// The model or upstream.
    pub model: String,
    /// The route template (`/v1/models/{name}/predict`).
    pub route: String,
    /// `sha256:` digest of the request body.
    pub input_digest: String,
    /// `allowed`, `denied:<code>`, or an admin action (`key.create`).
    pub decision: String,
    /// Free text without secrets (row count, target of an admin action).
    pub detail: String,
}

impl AuditCtx {
    /// The context of an inference request on `route` for `model`.
    pub fn inference(route: &str, model: &str) -> AuditCtx {
        AuditCtx {
            kind: "inference",
            model: model.to_string(),
            route: route.to_string(),
            ..AuditCtx::default()
        }
    }

    /// The context of an administrative request.
    pub fn admin(route: &str) -> AuditCtx {
        AuditCtx {
            kind: "admin",
            route: route.to_string(),
            ..AuditCtx::default()
        }
    }

    /// The event for the chain, with the response's status and the request's latency.
    pub fn into_event(self, status: u16, latency: std::time::Duration) -> AuditEvent {
        let kind = if self.decision.starts_with("denied") && self.kind == "inference" {
            "denied"
        } else {
            self.kind
        };
        AuditEvent {
            kind: kind.to_string(),
            actor: self.actor,
            key_id: self.key_id,
            model: self.model,
            route: self.route,
            input_digest: self.input_digest,
            decision: self.decision,
            status,
            latency_us: latency.as_micros().min(u64::MAX as u128) as u64,
            detail: self.detail,
        }
    }
}
