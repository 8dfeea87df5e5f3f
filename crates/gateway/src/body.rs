//! Reading a request body within the configured size and time limits, for every route that takes one.
//!
//! A slow or oversized body is refused with its own status (408, 413) and audited like any other refusal.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;

use crate::audit_trail::AuditCtx;
use crate::http_error::ApiError;
use crate::state::AppState;

/// Read the body within the configured size and time limits.
pub(crate) async fn read_body(
    state: &AppState,
    body: Body,
    ctx: &AuditCtx,
) -> Result<Bytes, ApiError> {
    let limit = state.config.server.max_body_bytes;

    let timeout = Duration::from_millis(state.config.server.body_timeout_ms);
    let collect = http_body_util::Limited::new(body, limit).collect();
    match tokio::time::timeout(timeout, collect).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "request body not received within {} ms",
                timeout.as_millis()
            ),
        )
        .audited(ctx.clone())),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(state, ctx)),
        Ok(Err(_)) => Err(
            ApiError::bad_request("malformed", "request body could not be read")
                .audited(ctx.clone()),
        ),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// 413 naming the limit.
pub(crate) fn too_large(state: &AppState, ctx: &AuditCtx) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!(
            "request body is larger than {} bytes",
            state.config.server.max_body_bytes
        ),
    )
    .audited(ctx.clone())
}
