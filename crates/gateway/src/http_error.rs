//! What an HTTP client is told when a request fails: a status, a stable machine code, a short reason and the
//! request id, as JSON. Never internals: the operator finds those in the server log under the same request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::audit_trail::AuditCtx;

/// A failed request, ready to render.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable reason (`rate_limited`, `invalid_input`, …); also the metrics denial label.
    pub code: &'static str,
    /// Short client-safe explanation.
    pub message: String,
    /// Seconds the client should wait (429, 503).
    pub retry_after: Option<u64>,
    /// What the audit log records about this refusal, when it is audited.
    pub audit: Option<Box<AuditCtx>>,
}

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            audit: None,
        }
    }

    /// 400 with a reason naming the field.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 for a failure the client cannot fix; the cause goes to the server log only.
    pub fn internal(cause: &dyn std::fmt::Display) -> ApiError {
        crate::log::emit(
            crate::log::Level::Error,
            "internal_error",
            &[
                ("request_id", crate::server::current_request_id().into()),
                ("cause", cause.to_string().into()),
            ],
        );
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the operator can find it in the server log by request id",
        )
    }

    /// With a Retry-After value.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// With the audit context of the refused request.
    pub fn audited(mut self, ctx: AuditCtx) -> ApiError {
        self.audit = Some(Box::new(ctx));
        self
    }
}

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> ApiError {
        ApiError::internal(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The request id comes from the envelope's task-local (the same id as the x-request-id header).
        let body = serde_json::json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "request_id": crate::server::current_request_id(),
            }
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response.extensions_mut().insert(ErrorCode(self.code));
        if let Some(mut ctx) = self.audit {
            if ctx.decision.is_empty() {
                ctx.decision = format!("denied:{}", self.code);
            }
            response.extensions_mut().insert(*ctx);
        }
        response
    }
}

/// The machine code of an error response, read back by the middleware for metrics.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);
