//! The HTTP surface: the router, the request envelope (request id, overhead header, metrics, audit), and the
//! inference handlers for local models, V2 and OpenAI-compatible upstreams and generic predict proxies.
//!
//! Every inference route runs the same gauntlet in the same order: authenticate the key, check its scope,
//! charge its rate limit and budgets (atomically, in the database), read the body within the size and time
//! limits, validate it, and only then touch a model. Each refusal is a typed [`ApiError`] that carries its audit
//! context, so refused requests are recorded exactly like served ones.

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};

use crate::audit_log;
use crate::audit_trail::AuditCtx;
use crate::body::{read_body, too_large};
use crate::context::{current_peer, current_request_id, PEER, REQUEST_ID, ROUTE};
use crate::extraction::{self, Gate};
use crate::guard::{self, ModelGuard};
use crate::http_error::{ApiError, ErrorCode};
use crate::keys::{self, ApiKey, KeyRejection, RouteClass};
use crate::limits::{self, Denial};
use crate::models;
use crate::state::{AppState, Shared};
use crate::upstream;
use crate::util;

/// Time spent waiting for a model or an upstream, attached to responses so the envelope can report the
/// gateway's own overhead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamTime(pub Duration);

/// The whole router.
pub(crate) fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(crate::admin::openapi))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{name}/predict", post(predict))
        .route("/v2/models/{name}", get(v2_metadata))
        .route("/v2/models/{name}/infer", post(v2_infer))
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/completions", post(openai_completions))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/upstream/{name}/{*rest}", any(proxy))
        .merge(crate::admin::routes())
        .merge(crate::console::routes(&state.config.server.console_path))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            envelope,
        ));
    api.fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::body::settle_unread,
        ))
        .with_state(state)
}

async fn method_not_allowed(State(state): State<Shared>) -> Response {
    let id = state.next_request_id();
    let mut response = REQUEST_ID
        .scope(id.clone(), async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method",
                "method not allowed on this route; see /openapi.json",
            )
            .into_response()
        })
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

/// Request id, overhead header, security headers, metrics and the audit record, around every matched route.
async fn envelope(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let id = state.next_request_id();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    // The client's address (behind trusted proxies, the one they report), for sampling refusals per source.
    let source = upstream::client_address(
        request.headers(),
        peer.map(|p| p.ip()),
        &state.config.server.trusted_proxies,
    );
    let mut response = REQUEST_ID
        .scope(
            id.clone(),
            ROUTE.scope(route.clone(), PEER.scope(peer, next.run(request))),
        )
        .await;
    let total = start.elapsed();
    let upstream = response
        .extensions()
        .get::<UpstreamTime>()
        .map(|u| u.0)
        .unwrap_or_default();
    let overhead = total.saturating_sub(upstream);
    let status = response.status().as_u16();
    let headers = response.headers_mut();
    envelope_headers(headers, &id, state.tls);
    if let Ok(v) = HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1e3)) {
        headers.insert("x-aegis-overhead-ms", v);
    }
    state
        .metrics
        .observe_request(&route, status, total, overhead);
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        state.metrics.denial(code.0);
    }
    let ctx = response.extensions_mut().remove::<AuditCtx>();
    if state.config.server.access_log {
        access_log(&id, &route, status, total, overhead, ctx.as_ref());
    }
    if let Some(ctx) = ctx {
        let event = ctx.into_event(status, total);
        if status == 401 && event.actor.is_empty() {
            // Without a valid identity (no key, an unknown or revoked key, no session): one full record per
            // source and window, the rest summarised. A failed sign-in names an account and keeps its record.
            state.metrics.add_counter(
                "aegis_unauthenticated_refusals_total",
                "Requests refused for want of a valid API key or session.",
                &[],
                1.0,
            );
            let (record, closed) = state.refusals.admit(source, &route, Instant::now());
            if let Some(summary) = closed {
                state.audit.record(summary).await;
            }
            if record {
                state.audit.record(event).await;
            }
        } else if state.audit.record_durable(event).await.is_err() {
            // The answer is sent only once its record is committed; what cannot be recorded is not answered.
            state.metrics.add_counter(
                "aegis_audit_withheld_total",
                "Answers replaced by 503 because their audit record could not be written.",
                &[],
                1.0,
            );
            return withheld(&id, &state);
        }
    }
    response
}

/// The 503 sent instead of an answer whose audit record could not be written.
fn withheld(id: &str, state: &AppState) -> Response {
    let mut response = ApiError::storage_unavailable().into_response();
    envelope_headers(response.headers_mut(), id, state.tls);
    response
}

/// The request id and the security headers every answer of a matched route carries.
fn envelope_headers(headers: &mut HeaderMap, id: &str, tls: bool) {
    if let Ok(v) = HeaderValue::from_str(id) {
        headers.insert("x-request-id", v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
}

/// One access-log line: ids, route, status and timings only (never headers or bodies).
fn access_log(
    id: &str,
    route: &str,
    status: u16,
    total: Duration,
    overhead: Duration,
    ctx: Option<&AuditCtx>,
) {
    use serde_json::Value;
    crate::log::emit(
        crate::log::Level::Info,
        "request",
        &[
            ("request_id", Value::from(id)),
            ("route", Value::from(route)),
            ("status", Value::from(status)),
            ("latency_ms", Value::from(total.as_secs_f64() * 1e3)),
            ("overhead_ms", Value::from(overhead.as_secs_f64() * 1e3)),
            (
                "key_id",
                Value::from(ctx.map(|c| c.key_id.as_str()).unwrap_or("")),
            ),
            (
                "model",
                Value::from(ctx.map(|c| c.model.as_str()).unwrap_or("")),
            ),
            (
                "decision",
                Value::from(ctx.map(|c| c.decision.as_str()).unwrap_or("")),
            ),
        ],
    );
}

async fn fallback(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let id = state.next_request_id();
    state
        .metrics
        .observe_request("unmatched", 404, Duration::ZERO, Duration::ZERO);
    // A browser navigating to a page gets a page that leads back to the console; API clients get JSON.
    let wants_html = headers
        .get("sec-fetch-dest")
        .is_some_and(|v| v.as_bytes() == b"document")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.trim_start().starts_with("text/html"));
    let mut response = if wants_html {
        crate::console::not_found(&state.config.server.console_path)
    } else {
        REQUEST_ID
            .scope(id.clone(), async {
                ApiError::not_found("no such route; see /openapi.json").into_response()
            })
            .await
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}

// ---------------------------------------------------------------------------------------------------------
// The gauntlet: authenticate, authorise, charge, read.

/// Authenticate the API key on the request; the context learns who it is.
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    ctx: &mut AuditCtx,
) -> Result<ApiKey, ApiError> {
    let presented = keys::presented_key(headers);
    let outcome = state
        .key_cache
        .authenticate(&state.db, presented, util::now_secs())
        .await
        .map_err(|e| ApiError::internal(&e).audited(ctx.clone()))?;
    match outcome {
        Ok(key) => {
            ctx.key_id = key.id.clone();
            ctx.actor = key.owner.clone();
            Ok(key)
        }
        Err(rejection) => {
            let code = match rejection {
                KeyRejection::Missing => "no_key",
                KeyRejection::Malformed | KeyRejection::Unknown => "bad_key",
                KeyRejection::Revoked => "revoked",
                KeyRejection::Expired => "expired",
            };
            let mut e = ApiError::unauthorized(code, rejection.to_string()).audited(ctx.clone());
            if matches!(rejection, KeyRejection::Missing) {
                e.message
                    .push_str("; send it as `Authorization: Bearer aeg_…`");
            }
            Err(e)
        }
    }
}

/// Check the key's scope for `model` on `class` routes.
fn authorize(key: &ApiKey, model: &str, class: RouteClass, ctx: &AuditCtx) -> Result<(), ApiError> {
    if key.allows(model, class) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "scope",
            format!(
                "key {} may not use model `{model}` on {} routes",
                key.id,
                class.as_str()
            ),
        )
        .audited(ctx.clone()))
    }
}

/// Charge the key's rate limit and budgets.
async fn charge(state: &AppState, key: &ApiKey, ctx: &AuditCtx) -> Result<(), ApiError> {
    let outcome = limits::admit_leased(&state.db, &state.leases, key, util::now_f64())
        .await
        .map_err(|e| ApiError::internal(&e).audited(ctx.clone()))?;
    match outcome {
        Ok(used) => {
            if key.daily_budget > 0 {
                state
                    .metrics
                    .budget_use(&key.id, "day", used.day_used, key.daily_budget);
            }
            if key.monthly_budget > 0 {
                state
                    .metrics
                    .budget_use(&key.id, "month", used.month_used, key.monthly_budget);
            }
            Ok(())
        }
        Err(denial) => {
            let code = match &denial {
                Denial::RateLimited { .. } => "rate_limit",
                Denial::BudgetExhausted { .. } => "budget",
            };
            let secs = denial.retry_after_secs();
            Err(
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, denial.to_string())
                    .retry_after(secs)
                    .audited(ctx.clone()),
            )
        }
    }
}

/// All three steps for a route whose model is known from the path (`exists`: whether it is served; a missing
/// model is a 404 after the scope check and before anything is charged).
async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    model: &str,
    class: RouteClass,
    exists: bool,
    ctx: &mut AuditCtx,
) -> Result<ApiKey, ApiError> {
    let key = authenticate(state, headers, ctx).await?;
    authorize(&key, model, class, ctx)?;
    if !exists {
        return Err(ApiError::not_found(format!("no model `{model}`")).audited(ctx.clone()));
    }
    charge(state, &key, ctx).await?;
    Ok(key)
}

/// A batch costs one unit per row: the first was charged on admission, the rest are charged here, all or none,
/// before the model runs. A batch above `server.max_rows_per_request`, or above what the key may spend at once
/// (its burst), is refused with what to do.
async fn charge_rows(
    state: &AppState,
    key: &ApiKey,
    rows: usize,
    ctx: &AuditCtx,
) -> Result<(), ApiError> {
    let cap = state.config.server.max_rows_per_request.max(1);
    if rows > cap {
        return Err(ApiError::bad_request(
            "too_many_rows",
            format!("{rows} rows in one request; at most {cap}: send smaller batches"),
        )
        .audited(ctx.clone()));
    }
    if rows <= 1 {
        return Ok(());
    }
    if rows as i64 > key.burst {
        return Err(ApiError::bad_request(
            "too_many_rows",
            format!(
                "{rows} rows in one request; key {} may spend at most {} rows at once (its burst): send smaller \
                 batches or ask for a key with a larger burst",
                key.id, key.burst
            ),
        )
        .audited(ctx.clone()));
    }
    let extra = u32::try_from(rows - 1).unwrap_or(u32::MAX);
    let outcome = limits::admit_n(&state.db, key, util::now_f64(), extra)
        .await
        .map_err(|e| ApiError::internal(&e).audited(ctx.clone()))?;
    match outcome {
        Ok(_) => Ok(()),
        Err(denial) => {
            let code = match &denial {
                Denial::RateLimited { .. } => "rate_limit",
                Denial::BudgetExhausted { .. } => "budget",
            };
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                code,
                format!("{denial} ({rows} rows cost {rows} units)"),
            )
            .retry_after(denial.retry_after_secs())
            .audited(ctx.clone()))
        }
    }
}

fn declared_too_large(state: &AppState, headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > state.config.server.max_body_bytes as u64)
}

fn finish(mut response: Response, mut ctx: AuditCtx, waited: Duration) -> Response {
    if ctx.decision.is_empty() {
        ctx.decision = "allowed".into();
    }
    response.extensions_mut().insert(UpstreamTime(waited));
    response.extensions_mut().insert(ctx);
    response
}

// ---------------------------------------------------------------------------------------------------------
// Local models.

async fn predict(
    State(state): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let mut ctx = AuditCtx::inference("/v1/models/{name}/predict", &name);
    let key = admit(
        &state,
        &headers,
        &name,
        RouteClass::Predict,
        state.models.get(&name).is_some(),
        &mut ctx,
    )
    .await?;
    let model = state.models.get(&name).ok_or_else(|| {
        ApiError::not_found(format!("no local model `{name}`")).audited(ctx.clone())
    })?;
    let guard = state.guards.get(&name);
    let version = gate_local(&state, guard.as_deref(), &key, &name, &ctx).await?;
    let body = read_body(&state, request.into_body(), &ctx).await?;
    ctx.input_digest = audit_log::input_digest(&body);
    let x = models::parse_predict(&model, &body)
        .map_err(|e| ApiError::bad_request("schema", e.to_string()).audited(ctx.clone()))?;
    let n = x.len() / model.schema.features.len().max(1);
    charge_rows(&state, &key, n, &ctx).await?;
    let (proba, waited) =
        infer_local(&state, &model, guard.as_deref(), &key, version, x, n, &ctx).await?;
    ctx.detail = format!("{n} rows");
    let mut response = Json(models::predict_response(&model, &proba, n)).into_response();
    findings_header(&state, &name, &mut response);
    Ok(finish(response, ctx, waited))
}

/// `x-aegis-findings` on an answer of a model whose asset has open findings at its policy's severity.
fn findings_header(state: &AppState, model: &str, response: &mut Response) {
    if let Some(text) = state.serving.get(model).and_then(|v| v.warning) {
        if let Ok(value) = axum::http::HeaderValue::from_str(&text) {
            response.headers_mut().insert("x-aegis-findings", value);
        }
    }
}

/// Enforce the extraction detector's action on a key already alarmed on a local model: throttle (429 with
/// Retry-After) or block (403). Returns the detector state's version for [`infer_local`].
async fn gate_local(
    state: &AppState,
    guard: Option<&ModelGuard>,
    key: &ApiKey,
    model: &str,
    ctx: &AuditCtx,
) -> Result<i64, ApiError> {
    if let Some(verdict) = state.serving.get(model).filter(|v| v.refuse) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "model_withheld",
            format!(
                "model `{model}` is withheld by its serving policy (refuse_findings): {}",
                verdict.warning.unwrap_or_default()
            ),
        )
        .audited(ctx.clone()));
    }
    let Some(settings) = guard.and_then(|g| g.extraction.as_ref()) else {
        return Ok(0);
    };
    let now_ms = util::now_ms();
    let gate = extraction::gate(
        &state.db,
        &state.extraction_cache,
        settings,
        &key.id,
        model,
        now_ms,
    )
    .await
    .map_err(|e| ApiError::internal(&e).audited(ctx.clone()))?;
    match gate {
        Gate::Allow { version } => Ok(version),
        Gate::Throttled { retry_after_secs } => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "extraction_throttle",
            format!(
                "key {} is throttled on model `{model}`: its queries raised the model-extraction alarm; one \
                 answer per {} s",
                key.id, settings.throttle_secs
            ),
        )
        .retry_after(retry_after_secs)
        .audited(ctx.clone())),
        Gate::Blocked => Err(ApiError::forbidden(
            "extraction_block",
            format!(
                "key {} is blocked on model `{model}`: its queries raised the model-extraction alarm \
                 (PRADA); an administrator can clear it",
                key.id
            ),
        )
        .audited(ctx.clone())),
    }
}

/// Run a local model on validated rows; feed the extraction detector and the drift window with the full
/// probabilities, and return what the client may see (watermark, then output policy) and the time spent
/// waiting for the model.
#[allow(clippy::too_many_arguments)]
async fn infer_local(
    state: &AppState,
    model: &models::LocalModel,
    guard: Option<&ModelGuard>,
    key: &ApiKey,
    version: i64,
    x: Vec<f32>,
    n: usize,
    ctx: &AuditCtx,
) -> Result<(Vec<f32>, Duration), ApiError> {
    let Some(guard) = guard else {
        let started = Instant::now();
        let proba = model
            .predict(x, n)
            .await
            .map_err(|e| ApiError::internal(&e).audited(ctx.clone()))?;
        return Ok((proba, started.elapsed()));
    };
    let started = Instant::now();
    let proba = model
        .predict(x.clone(), n)
        .await
        .map_err(|e| ApiError::internal(&e).audited(ctx.clone()))?;
    let waited = started.elapsed();
    let (nf, k) = (model.n_features(), model.n_classes());
    if let Some(settings) = &guard.extraction {
        // A detector failure is logged, not turned into a refusal: the answer itself is fine.
        if let Err(e) = extraction::observe(
            state.sinks(),
            &state.extraction_cache,
            guard,
            settings,
            &key.id,
            &key.owner,
            version,
            &x,
            nf,
            &proba,
        )
        .await
        {
            crate::log::emit(
                crate::log::Level::Error,
                "extraction_detector_failed",
                &[
                    ("request_id", current_request_id().into()),
                    ("model", model.name.as_str().into()),
                    ("cause", e.to_string().into()),
                ],
            );
        }
    }
    let reports = guard.push_drift(&x, nf, &proba, k);
    if !reports.is_empty() {
        guard::record_drift(state.sinks(), &model.name, reports).await;
    }
    Ok((guard.harden(&x, nf, &proba, k), waited))
}

async fn v2_metadata(
    State(state): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut ctx = AuditCtx::inference("/v2/models/{name}", &name);
    let exists = state.models.get(&name).is_some() || state.upstreams.for_v2_model(&name).is_some();
    admit(&state, &headers, &name, RouteClass::Infer, exists, &mut ctx).await?;
    if let Some(model) = state.models.get(&name) {
        return Ok(finish(
            Json(models::v2_metadata(&model)).into_response(),
            ctx,
            Duration::ZERO,
        ));
    }
    if let Some(up) = state.upstreams.for_v2_model(&name) {
        let path = format!("/v2/models/{name}");
        return forward(&state, up, Method::GET, &path, &headers, Bytes::new(), ctx).await;
    }
    Err(ApiError::not_found(format!("no model `{name}`")).audited(ctx))
}

async fn v2_infer(
    State(state): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let mut ctx = AuditCtx::inference("/v2/models/{name}/infer", &name);
    let exists = state.models.get(&name).is_some() || state.upstreams.for_v2_model(&name).is_some();
    let key = admit(&state, &headers, &name, RouteClass::Infer, exists, &mut ctx).await?;
    // Local models only: proxied V2 models keep their hot path.
    let guard = match state.models.get(&name) {
        Some(_) => state.guards.get(&name),
        None => None,
    };
    let version = gate_local(&state, guard.as_deref(), &key, &name, &ctx).await?;
    if declared_too_large(&state, &headers) {
        return Err(too_large(&state, &ctx));
    }
    let body = read_body(&state, request.into_body(), &ctx).await?;
    ctx.input_digest = audit_log::input_digest(&body);
    if let Some(model) = state.models.get(&name) {
        let (x, n, id) = models::parse_v2(&model, &body)
            .map_err(|e| ApiError::bad_request("schema", e.to_string()).audited(ctx.clone()))?;
        charge_rows(&state, &key, n, &ctx).await?;
        let (proba, waited) =
            infer_local(&state, &model, guard.as_deref(), &key, version, x, n, &ctx).await?;
        ctx.detail = format!("{n} rows");
        let mut response = Json(models::v2_response(&model, &proba, n, id)).into_response();
        findings_header(&state, &name, &mut response);
        return Ok(finish(response, ctx, waited));
    }
    if let Some(up) = state.upstreams.for_v2_model(&name) {
        let path = format!("/v2/models/{name}/infer");
        return forward(&state, up, Method::POST, &path, &headers, body, ctx).await;
    }
    Err(ApiError::not_found(format!("no model `{name}`")).audited(ctx))
}

async fn list_models(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut ctx = AuditCtx::inference("/v1/models", "");
    let key = authenticate(&state, &headers, &mut ctx).await?;
    let mut data = Vec::new();
    for m in state.models.list() {
        if key.allows(&m.name, RouteClass::Predict) || key.allows(&m.name, RouteClass::Infer) {
            data.push(serde_json::json!({"id": m.name, "object": "model", "owned_by": "aegis", "local": m}));
        }
    }
    for up in state.upstreams.list() {
        for model in &up.models {
            if key.allows(model, RouteClass::Chat)
                || key.allows(model, RouteClass::Completions)
                || key.allows(model, RouteClass::Embeddings)
                || key.allows(model, RouteClass::Infer)
            {
                data.push(serde_json::json!({"id": model, "object": "model", "owned_by": up.name}));
            }
        }
    }
    // Listing is not charged and not audited: it reveals only what the key may already use.
    Ok(Json(serde_json::json!({"object": "list", "data": data})).into_response())
}

// ---------------------------------------------------------------------------------------------------------
// Upstreams.

async fn openai_chat(
    state: State<Shared>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    openai(
        state,
        headers,
        request,
        "/v1/chat/completions",
        RouteClass::Chat,
    )
    .await
}

async fn openai_completions(
    state: State<Shared>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    openai(
        state,
        headers,
        request,
        "/v1/completions",
        RouteClass::Completions,
    )
    .await
}

async fn openai_embeddings(
    state: State<Shared>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    openai(
        state,
        headers,
        request,
        "/v1/embeddings",
        RouteClass::Embeddings,
    )
    .await
}

/// OpenAI-compatible routes: the model is named in the body, so the body is read (bounded) before the scope
/// check; the answer, streamed or not, is passed through as it arrives.
async fn openai(
    State(state): State<Shared>,
    headers: HeaderMap,
    request: Request,
    route: &'static str,
    class: RouteClass,
) -> Result<Response, ApiError> {
    let mut ctx = AuditCtx::inference(route, "");
    let key = authenticate(&state, &headers, &mut ctx).await?;
    let body = read_body(&state, request.into_body(), &ctx).await?;
    ctx.input_digest = audit_log::input_digest(&body);
    let (model, stream) = upstream::openai_model(&body)
        .map_err(|reason| ApiError::bad_request("malformed", reason).audited(ctx.clone()))?;
    ctx.model = model.clone();
    authorize(&key, &model, class, &ctx)?;
    charge(&state, &key, &ctx).await?;
    let up = state.upstreams.for_openai_model(&model).ok_or_else(|| {
        ApiError::not_found(format!("no upstream serves model `{model}`")).audited(ctx.clone())
    })?;
    if stream {
        ctx.detail = "stream".into();
    }
    let Some(guard) = state.llm_guards.get(&up.name) else {
        return forward(&state, up, Method::POST, route, &headers, body, ctx).await;
    };
    let passed =
        crate::llm_guard::screen_request(&state, &guard, &key, &model, route, body, &mut ctx)
            .await?;
    let headers = crate::llm_guard::upstream_headers(&headers);
    let response = forward(&state, up, Method::POST, route, &headers, passed.body, ctx).await?;
    let Some(policy) = passed.answer else {
        return Ok(response);
    };
    let who = crate::llm_guard::AnswerContext {
        state: state.clone(),
        upstream: up.name.clone(),
        model,
        key_id: key.id.clone(),
        owner: key.owner.clone(),
        route,
        cut_on_canary: policy.cut_on_canary,
    };
    Ok(crate::llm_guard::filter_response(response, policy, who).await)
}

/// Methods the generic proxy forwards; anything else (`TRACE`, `CONNECT`, extension methods) is refused.
const PROXY_METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

/// Generic predict upstreams: `/upstream/{name}/{rest}` is forwarded to the upstream's base URL + `/{rest}`,
/// with `rest` taken from the raw request path and made canonical by [`upstream::canonical_path`] (an
/// encoded separator, dot segment, `%`, `?` or `#` is refused), so the upstream gets a path under its base
/// whatever it decodes again.
async fn proxy(
    State(state): State<Shared>,
    Path((name, _)): Path<(String, String)>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let mut ctx = AuditCtx::inference("/upstream/{name}/{*rest}", &name);
    if !PROXY_METHODS.contains(request.method()) {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
            format!(
                "method {} is not forwarded to upstreams; use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS",
                request.method()
            ),
        )
        .audited(ctx));
    }
    admit(
        &state,
        &headers,
        &name,
        RouteClass::Proxy,
        // Only `predict` upstreams: V2 and OpenAI upstreams are reached through their own routes, whose scope
        // checks name the model (here the scope is the upstream's name).
        state
            .upstreams
            .get(&name)
            .is_some_and(|u| u.protocol == crate::config::Protocol::Predict),
        &mut ctx,
    )
    .await?;
    let up = state
        .upstreams
        .get(&name)
        .filter(|u| u.protocol == crate::config::Protocol::Predict)
        .ok_or_else(|| ApiError::not_found(format!("no upstream `{name}`")).audited(ctx.clone()))?;
    let method = request.method().clone();
    // The raw path: `/upstream/{name}/{rest}` as the client encoded it (axum's `rest` is already decoded).
    let raw_rest = request
        .uri()
        .path()
        .strip_prefix("/upstream/")
        .and_then(|p| p.split_once('/'))
        .map_or("", |(_, rest)| rest);
    let rest = upstream::canonical_path(raw_rest).map_err(|why| {
        ApiError::bad_request("path", format!("invalid upstream path: {why}")).audited(ctx.clone())
    })?;
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let body = read_body(&state, request.into_body(), &ctx).await?;
    ctx.input_digest = audit_log::input_digest(&body);
    let path = format!("/{rest}{query}");
    forward(&state, up, method, &path, &headers, body, ctx).await
}

async fn forward(
    state: &AppState,
    up: &upstream::Upstream,
    method: Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
    ctx: AuditCtx,
) -> Result<Response, ApiError> {
    let origin = upstream::Origin {
        request_id: current_request_id(),
        peer: current_peer(),
        tls: state.tls,
        trusted_proxies: &state.config.server.trusted_proxies,
    };
    match state
        .upstreams
        .forward(up, method, path, headers, &origin, body)
        .await
    {
        Ok(forwarded) => Ok(finish(
            forwarded.response,
            ctx,
            forwarded.upstream_headers_time,
        )),
        Err(e) => {
            if let upstream::ProxyError::Unavailable(cause) = &e {
                crate::log::emit(
                    crate::log::Level::Warn,
                    "upstream_unavailable",
                    &[
                        ("request_id", current_request_id().into()),
                        ("upstream", up.name.as_str().into()),
                        ("cause", cause.as_str().into()),
                    ],
                );
            }
            let mut err = ApiError::new(e.status(), "upstream", e.client_reason());
            err.audit = Some(Box::new(AuditCtx {
                decision: "error:upstream".into(),
                ..ctx
            }));
            Err(err)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Metrics.

/// Prometheus metrics: for operator, auditor or admin sessions (or everyone with `metrics_public`).
async fn metrics(State(state): State<Shared>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !state.config.server.metrics_public {
        crate::admin_request::require_session(
            &state,
            &headers,
            &[
                crate::identity::Role::Admin,
                crate::identity::Role::Operator,
                crate::identity::Role::Auditor,
            ],
        )
        .await?;
    }
    state.metrics.audit_queue(state.audit.queue_depth());
    state.metrics.set_gauge(
        "aegis_audit_writable",
        "1 while the audit log can be written; 0 during an outage (answers are then refused with 503).",
        &[],
        if state.audit.writable() { 1.0 } else { 0.0 },
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response())
}
