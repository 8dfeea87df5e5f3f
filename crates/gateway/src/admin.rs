//! The authenticated JSON admin API (`/admin/…`) and the OpenAPI document that describes every route.
//!
//! People authenticate with a password and, for admins (or anyone enrolled), a TOTP code, and get a signed,
//! expiring, revocable session token. Every route checks the caller's role on the server; every change is
//! audited with the acting user. Roles: `admin` everything; `operator` models and keys; `auditor` the audit log,
//! its verification and metrics; `client` nothing here (clients use API keys on inference routes).

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::admin_request::{
    admin_error, done, json_body, require_session, ADMINS, AUDITORS, OPERATORS, STAFF,
};
use crate::audit_log;
use crate::audit_trail::AuditCtx;
use crate::http_error::ApiError;
use crate::identity::{self, LoginError, Role};
use crate::keys::{self, NewKey};
use crate::state::{AppState, Shared};
use crate::util;

/// The admin routes (merged into the main router by [`crate::server::router`]).
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/admin/bootstrap", post(bootstrap))
        .route("/admin/login", post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/me", get(me))
        .route("/admin/totp", post(enroll_totp))
        .route("/admin/users", get(list_users).post(create_user))
        .route("/admin/users/{name}/disable", post(disable_user))
        .route("/admin/users/{name}/enable", post(enable_user))
        .route("/admin/keys", get(list_keys).post(create_key))
        .route("/admin/keys/{id}/revoke", post(revoke_key))
        .route("/admin/keys/{id}/rotate", post(rotate_key))
        .route("/admin/models", get(list_models))
        .route("/admin/audit", get(read_audit))
        .route("/admin/audit/verify", get(verify_audit))
        .route("/admin/extraction", get(list_extraction))
        .route("/admin/extraction/{key_id}", delete(clear_extraction))
        .route("/admin/drift", get(list_drift))
        .merge(crate::inventory_api::routes())
}

// ----------------------------------------------------------------------------------------------- sign-in

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapBody {
    code: String,
    username: String,
    password: String,
}

async fn bootstrap(State(state): State<Shared>, request: Request) -> Result<Response, ApiError> {
    let mut ctx = AuditCtx::admin("/admin/bootstrap");
    ctx.kind = "auth".into();
    let body: BootstrapBody = json_body(&state, request, &ctx).await?;
    ctx.actor = body.username.clone();
    let enrollment = identity::bootstrap(
        &state.db,
        &body.code,
        &body.username,
        &body.password,
        "Aegis",
        util::now_secs(),
    )
    .await
    .map_err(|e| match e {
        crate::Error::Denied(reason) => {
            ApiError::forbidden("bootstrap", reason).audited(ctx.clone())
        }
        other => admin_error(other, &ctx),
    })?;
    let response = (StatusCode::CREATED, Json(enrollment)).into_response();
    Ok(done(
        response,
        ctx,
        "user.bootstrap",
        "first admin created".into(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// The client's address for the sign-in throttle (behind trusted proxies, the one they report).
pub(crate) fn login_source(state: &AppState, headers: &HeaderMap) -> Option<std::net::IpAddr> {
    crate::upstream::client_address(
        headers,
        crate::context::current_peer().map(|p| p.ip()),
        &state.config.server.trusted_proxies,
    )
}

async fn login(State(state): State<Shared>, request: Request) -> Result<Response, ApiError> {
    let mut ctx = AuditCtx::admin("/admin/login");
    ctx.kind = "auth".into();
    let source = login_source(&state, request.headers());
    let source_text = source.map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
    let body: LoginBody = json_body(&state, request, &ctx).await?;
    ctx.actor = body.username.clone();
    let attempt = identity::Attempt {
        username: &body.username,
        password: &body.password,
        second_factor: body.totp.as_deref(),
        source,
    };
    let result = identity::login(
        &state.db,
        &state.session_key,
        &state.login_throttle,
        attempt,
        state.config.server.session_ttl_secs,
        util::now_secs(),
    )
    .await;
    match result {
        Ok(session) => {
            let response = Json(serde_json::json!({
                "token": session.token,
                "username": session.username,
                "role": session.role,
                "expires": session.expires,
            }))
            .into_response();
            Ok(done(response, ctx, "login", String::new()))
        }
        Err(LoginError::Internal(e)) => Err(ApiError::internal(&e)),
        Err(LoginError::Locked { retry_after_secs }) => {
            crate::signals::lockout(
                &state.store,
                &state.lockout_signal,
                &body.username,
                &source_text,
            )
            .await;
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "lockout",
                LoginError::Locked { retry_after_secs }.to_string(),
            )
            .retry_after(retry_after_secs.max(1) as u64)
            .audited(ctx))
        }
        Err(e) => Err(ApiError::unauthorized("login", e.to_string()).audited(ctx)),
    }
}

async fn logout(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let principal = require_session(
        &state,
        &headers,
        &[Role::Admin, Role::Operator, Role::Auditor, Role::Client],
    )
    .await?;
    identity::logout(&state.db, &principal.session_id).await?;
    let mut ctx = AuditCtx::admin("/admin/logout");
    ctx.kind = "auth".into();
    ctx.actor = principal.username;
    Ok(done(
        StatusCode::NO_CONTENT.into_response(),
        ctx,
        "logout",
        String::new(),
    ))
}

async fn me(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    let p = require_session(
        &state,
        &headers,
        &[Role::Admin, Role::Operator, Role::Auditor, Role::Client],
    )
    .await?;
    Ok(Json(serde_json::json!({"username": p.username, "role": p.role})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReauthBody {
    password: String,
    #[serde(default)]
    totp: Option<String>,
}

/// (Re-)enroll TOTP for the signed-in user. A session alone is not enough: the current password (and the
/// current second factor, when one is enrolled) must be given again, so a stolen session token cannot take
/// over the account's second factor.
async fn enroll_totp(
    State(state): State<Shared>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(
        &state,
        &headers,
        &[Role::Admin, Role::Operator, Role::Auditor, Role::Client],
    )
    .await?;
    let mut ctx = AuditCtx::admin("/admin/totp");
    ctx.kind = "auth".into();
    ctx.actor = p.username.clone();
    let source = login_source(&state, request.headers());
    let body: ReauthBody = json_body(&state, request, &ctx).await?;
    // Re-authenticate through the login path (throttle, lockout and replay rules included), then drop that
    // session.
    let attempt = identity::Attempt {
        username: &p.username,
        password: &body.password,
        second_factor: body.totp.as_deref(),
        source,
    };
    let check = identity::login(
        &state.db,
        &state.session_key,
        &state.login_throttle,
        attempt,
        60,
        util::now_secs(),
    )
    .await;
    match check {
        Ok(session) => {
            if let Some(id) = session
                .token
                .strip_prefix("ses_")
                .and_then(|t| t.split('.').next())
            {
                identity::logout(&state.db, id).await?;
            }
        }
        Err(LoginError::Internal(e)) => return Err(ApiError::internal(&e)),
        Err(e) => {
            return Err(ApiError::unauthorized("reauth", e.to_string()).audited(ctx));
        }
    }
    let enrollment = identity::enroll_totp(&state.db, &p.username, "Aegis")
        .await
        .map_err(|e| admin_error(e, &ctx))?;
    Ok(done(
        Json(enrollment).into_response(),
        ctx,
        "totp.enroll",
        String::new(),
    ))
}

// ----------------------------------------------------------------------------------------------- users

async fn list_users(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_session(&state, &headers, ADMINS).await?;
    Ok(Json(identity::list_users(&state.db).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    username: String,
    password: String,
    role: String,
}

async fn create_user(
    State(state): State<Shared>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, ADMINS).await?;
    let mut ctx = AuditCtx::admin("/admin/users");
    ctx.actor = p.username;
    let body: NewUserBody = json_body(&state, request, &ctx).await?;
    let role: Role = body.role.parse().map_err(|e| admin_error(e, &ctx))?;
    identity::create_user(&state.db, &body.username, &body.password, role)
        .await
        .map_err(|e| admin_error(e, &ctx))?;
    let enrollment = if role.requires_totp() {
        Some(
            identity::enroll_totp(&state.db, &body.username, "Aegis")
                .await
                .map_err(|e| admin_error(e, &ctx))?,
        )
    } else {
        None
    };
    let response = (
        StatusCode::CREATED,
        Json(serde_json::json!({"username": body.username, "role": role, "totp": enrollment})),
    )
        .into_response();
    Ok(done(
        response,
        ctx,
        "user.create",
        format!("{} as {role}", body.username),
    ))
}

async fn set_disabled(
    state: Shared,
    headers: HeaderMap,
    name: String,
    disabled: bool,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, ADMINS).await?;
    let route = if disabled {
        "/admin/users/{name}/disable"
    } else {
        "/admin/users/{name}/enable"
    };
    let mut ctx = AuditCtx::admin(route);
    ctx.actor = p.username;
    identity::set_disabled(&state.db, &name, disabled)
        .await
        .map_err(|e| admin_error(e, &ctx))?;
    let decision = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    Ok(done(
        StatusCode::NO_CONTENT.into_response(),
        ctx,
        decision,
        name,
    ))
}

async fn disable_user(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    set_disabled(state, headers, name, true).await
}

async fn enable_user(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    set_disabled(state, headers, name, false).await
}

// ----------------------------------------------------------------------------------------------- keys

async fn list_keys(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_session(&state, &headers, OPERATORS).await?;
    Ok(Json(keys::list_keys(&state.db).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKeyBody {
    name: String,
    owner: String,
    models: Vec<String>,
    #[serde(default)]
    routes: Option<Vec<String>>,
    #[serde(default)]
    expires_days: Option<i64>,
    #[serde(default)]
    rate_per_sec: Option<f64>,
    #[serde(default)]
    burst: Option<i64>,
    #[serde(default)]
    daily_budget: Option<i64>,
    #[serde(default)]
    monthly_budget: Option<i64>,
    /// Beyond the configured ceilings: admins only, and only when asked for.
    #[serde(default)]
    unbounded: bool,
}

async fn create_key(
    State(state): State<Shared>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let mut ctx = AuditCtx::admin("/admin/keys");
    ctx.actor = p.username;
    let body: NewKeyBody = json_body(&state, request, &ctx).await?;
    let mut new =
        NewKey::from_defaults(&body.name, &body.owner, body.models, &state.config.defaults);
    if let Some(r) = body.routes {
        new.routes = r;
    }
    if let Some(v) = body.expires_days {
        new.expires_days = v;
    }
    if let Some(v) = body.rate_per_sec {
        new.rate_per_sec = v;
    }
    if let Some(v) = body.burst {
        new.burst = v;
    }
    if let Some(v) = body.daily_budget {
        new.daily_budget = v;
    }
    if let Some(v) = body.monthly_budget {
        new.monthly_budget = v;
    }
    let beyond = new.beyond(&state.config.key_ceilings);
    if !beyond.is_empty() {
        let refusal = if p.role != crate::identity::Role::Admin {
            Some(format!(
                "an operator may not grant this key: {}; ask an admin, or stay within the ceilings \
                 ([key_ceilings] in aegis.toml)",
                beyond.join("; ")
            ))
        } else if !body.unbounded {
            Some(format!(
                "this key is beyond the ceilings: {}; send \"unbounded\": true to create it anyway (audited)",
                beyond.join("; ")
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            return Err(ApiError::forbidden("ceiling", reason).audited(ctx));
        }
    }
    let (key, secret) = keys::create_key(&state.db, &new, util::now_secs())
        .await
        .map_err(|e| admin_error(e, &ctx))?;
    ctx.key_id = key.id.clone();
    let mut detail = format!("{} for {} on {}", key.id, key.owner, key.models.join(","));
    if !beyond.is_empty() {
        detail.push_str(&format!("; UNBOUNDED by admin: {}", beyond.join("; ")));
    }
    let response = (
        StatusCode::CREATED,
        Json(serde_json::json!({"key": key, "secret": secret.expose(), "note": "shown once; store it now"})),
    )
        .into_response();
    Ok(done(response, ctx, "key.create", detail))
}

async fn revoke_key(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let mut ctx = AuditCtx::admin("/admin/keys/{id}/revoke");
    ctx.actor = p.username;
    ctx.key_id = id.clone();
    keys::revoke_key(&state.db, &id, util::now_secs())
        .await
        .map_err(|e| admin_error(e, &ctx))?;
    state.key_cache.invalidate();
    state.leases.forget(&id);
    Ok(done(
        StatusCode::NO_CONTENT.into_response(),
        ctx,
        "key.revoke",
        id,
    ))
}

async fn rotate_key(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let mut ctx = AuditCtx::admin("/admin/keys/{id}/rotate");
    ctx.actor = p.username;
    ctx.key_id = id.clone();
    let (key, secret) = keys::rotate_key(&state.db, &id, util::now_secs())
        .await
        .map_err(|e| admin_error(e, &ctx))?;
    state.key_cache.invalidate();
    state.leases.forget(&id);
    let detail = format!("{id} replaced by {}", key.id);
    let response = Json(serde_json::json!({"key": key, "secret": secret.expose(), "note": "shown once; store it now"}))
        .into_response();
    Ok(done(response, ctx, "key.rotate", detail))
}

// ----------------------------------------------------------------------------------------------- theft, drift

/// Keys whose queries raised the model-extraction alarm (admins and auditors).
async fn list_extraction(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, AUDITORS).await?;
    let alarms = crate::extraction::list_alarms(&state.db).await?;
    Ok(Json(serde_json::json!({ "alarms": alarms })).into_response())
}

/// Forget every extraction-detector state of a key, lifting a throttle or block (admins; audited).
async fn clear_extraction(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, ADMINS).await?;
    let mut ctx = AuditCtx::admin("/admin/extraction/{key_id}");
    ctx.actor = p.username;
    ctx.key_id = key_id.clone();
    let removed = crate::extraction::clear_key(&state.db, &key_id)
        .await
        .map_err(|e| admin_error(e, &ctx))?;
    state.extraction_cache.forget_key(&key_id);
    let response =
        Json(serde_json::json!({ "key_id": key_id, "cleared": removed })).into_response();
    Ok(done(
        response,
        ctx,
        "extraction.clear",
        format!("{removed} detector state(s) cleared"),
    ))
}

/// The last closed drift window of each local model (admins, operators, auditors).
async fn list_drift(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    require_session(&state, &headers, STAFF).await?;
    let reports = crate::guard::list_reports(&state.db).await?;
    Ok(Json(serde_json::json!({ "reports": reports })).into_response())
}

// ----------------------------------------------------------------------------------------------- models, audit

async fn list_models(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, STAFF).await?;
    Ok(Json(serde_json::json!({
        "local": state.models.list(),
        "upstreams": state.upstreams.list(),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    100
}

async fn read_audit(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, AUDITORS).await?;
    // The query is parsed after authentication, into a JSON error with the request id.
    let Query(q) = Query::<AuditQuery>::try_from_uri(&uri).map_err(|e| {
        ApiError::bad_request("malformed", format!("query string: {}", e.body_text()))
    })?;
    let records = audit_log::list(&state.db, q.after.max(0), q.limit.clamp(1, 1000)).await?;
    Ok(Json(records).into_response())
}

async fn verify_audit(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, AUDITORS).await?;
    let verification = audit_log::verify(&state.db).await?;
    crate::signals::audit_chain(&state.store, &verification).await;
    Ok(Json(verification).into_response())
}

// ----------------------------------------------------------------------------------------------- OpenAPI

/// `GET /openapi.json`: the OpenAPI 3.1 description of every route.
pub(crate) async fn openapi() -> Response {
    Json(openapi_document()).into_response()
}

/// The OpenAPI document (also written by `aegis serve --openapi`).
pub fn openapi_document() -> serde_json::Value {
    use serde_json::json;
    let err = json!({"$ref": "#/components/responses/Error"});
    let key = json!([{"apiKey": []}]);
    let session = json!([{"session": []}]);
    let op = |summary: &str, security: &serde_json::Value, body: bool| {
        let mut o = json!({
            "summary": summary,
            "security": security,
            "responses": {"200": {"description": "OK"}, "400": err, "401": err, "403": err, "429": err}
        });
        if body {
            o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        o
    };
    let name =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "Aegis gateway", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Authenticated, rate-limited, audited inference gateway. Errors carry a request id."},
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "API key `aeg_…` (or header x-api-key)"},
                "session": {"type": "http", "scheme": "bearer", "description": "session token `ses_…` from /admin/login"}
            },
            "responses": {"Error": {"description": "error with request id", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"error": {"type": "object", "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": "null"}, "request_id": {"type": "string"}}}}}}}}}
        },
        "paths": {
            "/healthz": {"get": {"summary": "liveness", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": op("Prometheus metrics (operator, auditor or admin session)", &session, false)},
            "/openapi.json": {"get": {"summary": "this document", "security": [], "responses": {"200": {"description": "OpenAPI"}}}},
            "/v1/models": {"get": op("models the key may use", &key, false)},
            "/v1/models/{name}/predict": {"parameters": name, "post": op("predict with a local model: {\"rows\":[{…}]}, {\"instances\":[[…]]} or {\"columns\":{…}}", &key, true)},
            "/v2/models/{name}": {"parameters": name, "get": op("V2 model metadata", &key, false)},
            "/v2/models/{name}/infer": {"parameters": name, "post": op("KServe/Triton V2 inference (local or upstream)", &key, true)},
            "/v1/chat/completions": {"post": op("OpenAI-compatible chat, proxied (streams pass through)", &key, true)},
            "/v1/completions": {"post": op("OpenAI-compatible completions, proxied", &key, true)},
            "/v1/embeddings": {"post": op("OpenAI-compatible embeddings, proxied", &key, true)},
            "/upstream/{name}/{rest}": {"parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                                                       {"name": "rest", "in": "path", "required": true, "schema": {"type": "string"}}],
                                        "post": op("any JSON predict API, proxied", &key, true)},
            "/admin/bootstrap": {"post": op("create the first admin with the one-time code printed at first start", &json!([]), true)},
            "/admin/login": {"post": op("sign in: {username, password, totp?} → session token", &json!([]), true)},
            "/admin/logout": {"post": op("revoke the current session", &session, false)},
            "/admin/me": {"get": op("the signed-in user", &session, false)},
            "/admin/totp": {"post": op("enroll (or re-enroll) TOTP for the signed-in user: {password, totp?} again", &session, true)},
            "/admin/users": {"get": op("list users (admin)", &session, false), "post": op("create a user (admin)", &session, true)},
            "/admin/users/{name}/disable": {"parameters": name, "post": op("disable a user (admin)", &session, false)},
            "/admin/users/{name}/enable": {"parameters": name, "post": op("enable a user (admin)", &session, false)},
            "/admin/keys": {"get": op("list API keys (operator)", &session, false), "post": op("create an API key; the secret is shown once (operator)", &session, true)},
            "/admin/keys/{id}/revoke": {"parameters": id, "post": op("revoke a key, at once on every replica (operator)", &session, false)},
            "/admin/keys/{id}/rotate": {"parameters": id, "post": op("replace a key by a new one with the same scope (operator)", &session, false)},
            "/admin/models": {"get": op("local models with scan results, upstreams (operator, auditor)", &session, false)},
            "/admin/audit": {"get": op("audit records after a sequence number (auditor)", &session, false)},
            "/admin/audit/verify": {"get": op("verify the audit chain (auditor)", &session, false)},
            "/admin/extraction": {"get": op("API keys whose queries raised the model-extraction alarm (admin, auditor)", &session, false)},
            "/admin/extraction/{key_id}": {"parameters": [{"name": "key_id", "in": "path", "required": true, "schema": {"type": "string"}}],
                                           "delete": op("clear a key's extraction-detector states, lifting a throttle or block (admin)", &session, false)},
            "/admin/drift": {"get": op("the last closed drift window of each local model (operator, auditor)", &session, false)}
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        for (path, item) in crate::inventory_api::openapi_paths(&op, &session) {
            paths.insert(path, item);
        }
    }
    doc
}
