//! What an HTTP client is told when a request fails: a status, a stable machine code, a short reason and the
//! request id, as JSON. Never internals: the operator finds those in the server log under the same request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::audit_trail::AuditCtx;

/// A failed request, ready to render.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
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
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            audit: None,
        }
    }

    /// 400 with a reason naming the field.
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401.
    pub(crate) fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403.
    pub(crate) fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 for a failure the client cannot fix; the cause goes to the server log only.
    pub(crate) fn internal<E: std::fmt::Display + 'static>(cause: &E) -> ApiError {
        let storage = (cause as &dyn std::any::Any)
            .downcast_ref::<crate::Error>()
            .is_some_and(crate::Error::is_storage_unavailable);
        crate::log::emit(
            crate::log::Level::Error,
            if storage {
                "storage_unavailable"
            } else {
                "internal_error"
            },
            &[
                ("request_id", crate::context::current_request_id().into()),
                ("cause", cause.to_string().into()),
            ],
        );
        if storage {
            return ApiError::storage_unavailable();
        }
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the operator can find it in the server log by request id",
        )
    }

    /// 503: the gateway cannot store what this request needs (its charge, its audit record) right now, so it
    /// answers nothing rather than answer unrecorded.
    pub(crate) fn storage_unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage",
            "the gateway cannot write to its database right now (disk full or database unreachable), so it \
             answers nothing it cannot record; retry later",
        )
        .retry_after(STORAGE_RETRY_SECS)
    }

    /// With a Retry-After value.
    pub(crate) fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// With the audit context of the refused request.
    pub(crate) fn audited(mut self, ctx: AuditCtx) -> ApiError {
        self.audit = Some(Box::new(ctx));
        self
    }
}

/// By variant, never by message: the caller's own mistakes are told to the caller, anything else is an
/// internal error whose text only the server log sees.
/// Retry-After of a [`ApiError::storage_unavailable`] answer.
const STORAGE_RETRY_SECS: u64 = 5;

impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> ApiError {
        match e {
            crate::Error::Invalid(reason) => ApiError::bad_request("invalid", reason),
            crate::Error::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            crate::Error::Denied(reason) => ApiError::forbidden("denied", reason),
            crate::Error::Store(aegis_store::Error::Invalid(reason)) => {
                ApiError::bad_request("invalid", reason)
            }
            crate::Error::Store(aegis_store::Error::NotFound(what)) => ApiError::not_found(what),
            other => ApiError::internal(&other),
        }
    }
}

impl ApiError {
    /// True for a refusal the caller caused (4xx), which is audited with the request.
    pub(crate) fn is_client_error(&self) -> bool {
        self.status.is_client_error()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // The request id comes from the envelope's task-local (the same id as the x-request-id header).
        // The OpenAI error shape (`message`, `type`, `param`, `code`), so OpenAI SDKs report it as it is, plus
        // the request id.
        let body = serde_json::json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "type": error_type(self.status),
                "param": null,
                "request_id": crate::context::current_request_id(),
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

/// The OpenAI error `type` of a status.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The machine code of an error response, read back by the middleware for metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorCode(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_error_type_and_internals_stay_in_the_log() {
        let cases = [
            (
                crate::Error::Invalid("weak password".into()),
                400,
                "weak password",
            ),
            (
                crate::Error::NotFound("user bob".into()),
                404,
                "user bob not found",
            ),
            (
                crate::Error::Denied("already bootstrapped".into()),
                403,
                "already bootstrapped",
            ),
        ];
        for (error, status, message) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.status.as_u16(), status);
            assert_eq!(api.message, message);
            assert!(api.is_client_error());
        }
        for error in [
            crate::Error::Internal("password hashing: salt: secret detail".into()),
            crate::Error::Corrupt("row 7".into()),
            crate::Error::Server("bind".into()),
        ] {
            let api = ApiError::from(error);
            assert_eq!(api.status.as_u16(), 500);
            assert!(!api.is_client_error());
            assert!(!api.message.contains("secret") && !api.message.contains("row 7"));
        }
    }
}
