//! What every admin handler does with a request: check the session and its role, read a JSON body, attach the
//! audit record to the response, and turn a library error into the right answer. Shared by [`crate::admin`]
//! and [`crate::inventory_api`].

use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::audit_trail::AuditCtx;
use crate::body::read_body;
use crate::http_error::ApiError;
use crate::identity::{self, Principal, Role};
use crate::state::AppState;
use crate::util;

/// The session on the request, if its role is one of `roles`; 401 without a valid session, 403 otherwise.
pub(crate) async fn require_session(
    state: &AppState,
    headers: &HeaderMap,
    roles: &[Role],
) -> Result<Principal, ApiError> {
    let mut ctx = AuditCtx::admin(&crate::context::current_route());
    ctx.kind = "auth".into();
    // The scheme is case-insensitive (RFC 9110 §11.1).
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest)
        })
        .map(str::trim)
        .filter(|t| t.starts_with("ses_"));
    let Some(token) = token else {
        return Err(ApiError::unauthorized(
            "no_session",
            "sign in first: POST /admin/login, then send `Authorization: Bearer ses_…`",
        )
        .audited(ctx));
    };
    let principal =
        identity::authenticate_session(&state.db, &state.session_key, token, util::now_secs())
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized("bad_session", "session invalid, expired or revoked")
                    .audited(ctx.clone())
            })?;
    if roles.contains(&principal.role) {
        Ok(principal)
    } else {
        ctx.kind = "admin".into();
        ctx.actor = principal.username.clone();
        Err(
            ApiError::forbidden("role", format!("role {} may not do this", principal.role))
                .audited(ctx),
        )
    }
}

pub(crate) const ADMINS: &[Role] = &[Role::Admin];
pub(crate) const OPERATORS: &[Role] = &[Role::Admin, Role::Operator];
pub(crate) const AUDITORS: &[Role] = &[Role::Admin, Role::Auditor];
pub(crate) const STAFF: &[Role] = &[Role::Admin, Role::Operator, Role::Auditor];

pub(crate) async fn json_body<T: DeserializeOwned>(
    state: &AppState,
    request: Request,
    ctx: &AuditCtx,
) -> Result<T, ApiError> {
    let body = read_body(state, request.into_body(), ctx).await?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("malformed", format!("request body: {e}")).audited(ctx.clone())
    })
}

pub(crate) fn done(
    mut response: Response,
    mut ctx: AuditCtx,
    decision: &str,
    detail: String,
) -> Response {
    ctx.decision = decision.to_string();
    ctx.detail = detail;
    response.extensions_mut().insert(ctx);
    response
}

/// The response for a failed admin operation (statuses by error type, see `From<Error> for ApiError`);
/// refusals the caller caused are audited.
pub(crate) fn admin_error(e: crate::Error, ctx: &AuditCtx) -> ApiError {
    let error = ApiError::from(e);
    if error.is_client_error() {
        error.audited(ctx.clone())
    } else {
        error
    }
}
