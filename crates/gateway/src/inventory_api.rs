//! The JSON API of the asset store: assets and versions (with streamed uploads), checks and runs, findings and
//! triage, posture, notification channels and deliveries, report import.
//!
//! Roles as everywhere in the admin API: staff (admin, operator, auditor) read; operators and admins change
//! things. An auditor sees everything and can change nothing. Every change is recorded in the hash-chained audit
//! log with the acting user, triage included.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;

use aegis_store::assets::{AssetKind, AssetSettings, NewAsset, Relation};
use aegis_store::checks::CheckKind;
use aegis_store::findings::{FindingFilter, Triage};
use aegis_store::notify::Channel;
use aegis_store::objects::{ObjectWriter, StoredFile};

use crate::admin_request::{admin_error, done, json_body, require_session, OPERATORS, STAFF};
use crate::audit_trail::AuditCtx;
use crate::http_error::ApiError;
use crate::state::Shared;

/// The store's routes (merged into the admin router).
pub(crate) fn routes() -> Router<Shared> {
    Router::new()
        .route("/admin/assets", get(list_assets).post(create_asset))
        .route(
            "/admin/assets/{name}",
            get(show_asset).delete(remove_asset).patch(update_asset),
        )
        .route("/admin/assets/{name}/versions", put(upload_version))
        .route("/admin/assets/{name}/links", post(link_asset))
        .route("/admin/assets/{name}/checks", post(run_checks))
        .route("/admin/assets/{name}/schedules/{check}", put(set_schedule))
        .route("/admin/assets/{name}/reports", post(import_report))
        .route("/admin/runs/{id}", get(show_run))
        .route("/admin/findings", get(list_findings))
        .route("/admin/findings/{fingerprint}", get(show_finding))
        .route("/admin/findings/{fingerprint}/triage", post(triage))
        .route("/admin/posture", get(posture))
        .route("/admin/channels", get(list_channels).post(put_channel))
        .route(
            "/admin/channels/{name}",
            axum::routing::delete(remove_channel),
        )
        .route("/admin/channels/{name}/test", post(test_channel))
        .route("/admin/deliveries", get(deliveries))
}

fn query<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request("malformed", format!("query string: {}", e.body_text())))
}

fn ctx(route: &str, actor: &str) -> AuditCtx {
    let mut ctx = AuditCtx::admin(route);
    ctx.actor = actor.to_string();
    ctx
}

// ---------------------------------------------------------------------------------------------------- assets

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KindQuery {
    kind: Option<AssetKind>,
}

async fn list_assets(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, STAFF).await?;
    let q: KindQuery = query(&uri)?;
    let assets = state
        .store
        .list_assets(q.kind)
        .await
        .map_err(crate::Error::from)?;
    Ok(Json(assets).into_response())
}

async fn create_asset(
    State(state): State<Shared>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/assets", &p.username);
    let new: NewAsset = json_body(&state, request, &ctx).await?;
    let asset = state
        .store
        .create_asset(new)
        .await
        .map_err(|e| admin_error(e.into(), &ctx))?;
    let detail = format!("asset {} ({}) created", asset.name, asset.kind.as_str());
    Ok(done(
        (StatusCode::CREATED, Json(&asset)).into_response(),
        ctx,
        "asset.create",
        detail,
    ))
}

async fn show_asset(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, STAFF).await?;
    let store = &state.store;
    let run = async {
        let asset = store.asset(&name).await?;
        let versions = store.versions(&asset.id).await?;
        let links: Vec<serde_json::Value> = store
            .links(&asset.id)
            .await?
            .into_iter()
            .map(|(r, a)| json!({"relation": r.as_str(), "asset": a.name}))
            .collect();
        let runs = store.runs(&asset.id, None, 50).await?;
        let schedules = store.schedules(&asset.id).await?;
        let posture = store.posture(Some(&asset.id)).await?;
        Ok::<_, aegis_store::Error>(json!({
            "asset": asset, "versions": versions, "links": links, "runs": runs,
            "schedules": schedules, "posture": posture.first(),
        }))
    };
    Ok(Json(run.await.map_err(crate::Error::from)?).into_response())
}

async fn remove_asset(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/assets/{name}", &p.username);
    let asset = state
        .store
        .remove_asset(&name)
        .await
        .map_err(|e| admin_error(e.into(), &ctx))?;
    let detail = format!("asset {} removed (history kept)", asset.name);
    Ok(done(
        Json(json!({"removed": asset.name})).into_response(),
        ctx,
        "asset.remove",
        detail,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    owner: Option<String>,
    tags: Option<Vec<String>>,
    settings: Option<AssetSettings>,
}

async fn update_asset(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/assets/{name}", &p.username);
    let body: UpdateBody = json_body(&state, request, &ctx).await?;
    let asset = state
        .store
        .update_asset(&name, body.owner, body.tags, body.settings)
        .await
        .map_err(|e| admin_error(e.into(), &ctx))?;
    let detail = format!("asset {} updated", asset.name);
    Ok(done(
        Json(&asset).into_response(),
        ctx,
        "asset.update",
        detail,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    filename: String,
}

/// `PUT /admin/assets/{name}/versions?filename=model.onnx`: the body is the file, streamed to the object store
/// under a size bound and hashed on the way; nothing reads it before its checks (the scan first) run.
async fn upload_version(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    uri: axum::http::Uri,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/assets/{name}/versions", &p.username);
    let q: UploadQuery = query(&uri)?;
    let filename = q.filename.trim().to_string();
    if filename.is_empty()
        || filename.len() > 255
        || filename.contains(['/', '\\', '\0'])
        || filename == "."
        || filename == ".."
    {
        return Err(ApiError::bad_request(
            "invalid",
            "filename must be a plain file name such as model.onnx",
        )
        .audited(ctx));
    }
    let asset = state
        .store
        .asset(&name)
        .await
        .map_err(|e| admin_error(e.into(), &ctx))?;
    let (sha, size) = stream_to_store(&state, request.into_body())
        .await
        .map_err(|e| admin_error(e, &ctx))?;
    let files = vec![StoredFile {
        path: filename.clone(),
        sha256: sha.clone(),
        size,
    }];
    let store = &state.store;
    let (version, new) = store
        .add_version(
            &asset,
            &sha,
            &filename,
            files,
            None,
            &format!("upload by {}", p.username),
        )
        .await
        .map_err(|e| admin_error(e.into(), &ctx))?;
    let jobs = if new {
        store
            .on_new_version(&asset, &version)
            .await
            .map_err(|e| admin_error(e.into(), &ctx))?
    } else {
        Vec::new()
    };
    let detail = format!(
        "asset {} version {} uploaded ({size} bytes, sha256 {sha}){}",
        asset.name,
        version.seq,
        if new {
            ""
        } else {
            ": same content as the latest version"
        }
    );
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(done(
        (
            status,
            Json(json!({"version": version, "new": new, "jobs": jobs})),
        )
            .into_response(),
        ctx,
        "asset.version",
        detail,
    ))
}

async fn stream_to_store(
    state: &crate::state::AppState,
    body: Body,
) -> crate::Result<(String, u64)> {
    let mut writer = ObjectWriter::new(
        state.store.data_dir(),
        state.config.checks.max_bytes(),
        state.store.at_rest(),
    )?;
    let mut stream = body.into_data_stream();
    let idle = std::time::Duration::from_millis(state.config.server.body_timeout_ms.max(1000));
    loop {
        let next = tokio::time::timeout(idle, stream.next())
            .await
            .map_err(|_| crate::Error::Invalid("the upload stalled; send the file again".into()))?;
        match next {
            Some(Ok(chunk)) => writer.write(&chunk)?,
            Some(Err(e)) => {
                return Err(crate::Error::Invalid(format!("the upload broke off: {e}")))
            }
            None => break,
        }
    }
    Ok(writer.finish()?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    relation: String,
    dataset: String,
}

async fn link_asset(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/assets/{name}/links", &p.username);
    let body: LinkBody = json_body(&state, request, &ctx).await?;
    let store = &state.store;
    let linked = async {
        let relation = Relation::parse(&body.relation)?;
        let model = store.asset(&name).await?;
        let data = store.asset(&body.dataset).await?;
        store.link(&model, relation, &data).await?;
        Ok::<_, aegis_store::Error>(format!(
            "{} {} {}",
            model.name,
            relation.as_str(),
            data.name
        ))
    }
    .await
    .map_err(|e| admin_error(e.into(), &ctx))?;
    Ok(done(
        Json(json!({"linked": linked})).into_response(),
        ctx,
        "asset.link",
        linked,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ChecksBody {
    checks: Vec<String>,
}

async fn run_checks(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/assets/{name}/checks", &p.username);
    let body: ChecksBody = json_body(&state, request, &ctx).await?;
    let store = &state.store;
    let jobs = async {
        let kinds = body
            .checks
            .iter()
            .map(|c| CheckKind::parse(c))
            .collect::<aegis_store::Result<Vec<_>>>()?;
        let asset = store.asset(&name).await?;
        store.check_now(&asset, &kinds).await
    }
    .await
    .map_err(|e| admin_error(e.into(), &ctx))?;
    let detail = format!("{} check(s) of {name} queued on demand", jobs.len());
    Ok(done(
        (StatusCode::ACCEPTED, Json(json!({"jobs": jobs}))).into_response(),
        ctx,
        "check.run",
        detail,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct ScheduleBody {
    every_secs: i64,
    cron: Option<String>,
}

async fn set_schedule(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((name, check)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/assets/{name}/schedules/{check}", &p.username);
    let body: ScheduleBody = json_body(&state, request, &ctx).await?;
    let store = &state.store;
    let schedule = async {
        let kind = CheckKind::parse(&check)?;
        let asset = store.asset(&name).await?;
        store
            .set_schedule(&asset, kind, body.every_secs, body.cron.as_deref())
            .await
    }
    .await
    .map_err(|e| admin_error(e.into(), &ctx))?;
    let detail = format!(
        "schedule of {check} on {name}: every {} s, cron {:?}",
        schedule.every_secs, schedule.cron
    );
    Ok(done(
        Json(&schedule).into_response(),
        ctx,
        "check.schedule",
        detail,
    ))
}

async fn import_report(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/assets/{name}/reports", &p.username);
    let report: aegis_core::Report = json_body(&state, request, &ctx).await?;
    let store = &state.store;
    let run = async {
        let asset = store.asset(&name).await?;
        store
            .import_report(&asset, report, &format!("import by {}", p.username))
            .await
    }
    .await
    .map_err(|e| admin_error(e.into(), &ctx))?;
    let detail = format!(
        "{} report imported for {name}: {}",
        run.kind.as_str(),
        run.summary
    );
    Ok(done(
        (StatusCode::CREATED, Json(&run)).into_response(),
        ctx,
        "report.import",
        detail,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RunQuery {
    report: bool,
}

async fn show_run(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, STAFF).await?;
    let q: RunQuery = query(&uri)?;
    let run = state
        .store
        .run(&id, q.report)
        .await
        .map_err(crate::Error::from)?;
    Ok(Json(run).into_response())
}

// -------------------------------------------------------------------------------------------------- findings

async fn list_findings(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, STAFF).await?;
    let filter: FindingFilter = query(&uri)?;
    let page = state
        .store
        .list_findings(&filter)
        .await
        .map_err(crate::Error::from)?;
    Ok(Json(page).into_response())
}

async fn show_finding(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(fp): Path<String>,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, STAFF).await?;
    let store = &state.store;
    let out = async {
        let finding = store.finding(&fp).await?;
        let history = store.finding_events(&fp).await?;
        Ok::<_, aegis_store::Error>(json!({"finding": finding, "history": history}))
    }
    .await
    .map_err(crate::Error::from)?;
    Ok(Json(out).into_response())
}

async fn triage(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(fp): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/findings/{fingerprint}/triage", &p.username);
    let body: Triage = json_body(&state, request, &ctx).await?;
    let (before, after) = state
        .store
        .triage(&fp, &body, &p.username)
        .await
        .map_err(|e| admin_error(e.into(), &ctx))?;
    let detail = aegis_store::findings::triage_summary(&before, &after, &body.comment);
    Ok(done(
        Json(&after).into_response(),
        ctx,
        "finding.triage",
        detail,
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct PostureQuery {
    asset: Option<String>,
    format: Option<String>,
}

async fn posture(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, STAFF).await?;
    let q: PostureQuery = query(&uri)?;
    let postures = state
        .store
        .posture(q.asset.as_deref())
        .await
        .map_err(crate::Error::from)?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(postures).into_response()),
        Some("html") => Ok((
            [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
            aegis_store::posture::html(&postures),
        )
            .into_response()),
        Some(other) => Err(ApiError::bad_request(
            "invalid",
            format!("format {other:?}: use json or html"),
        )),
    }
}

// --------------------------------------------------------------------------------------------- notifications

async fn list_channels(
    State(state): State<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, STAFF).await?;
    let channels: Vec<Channel> = state
        .store
        .channels()
        .await
        .map_err(crate::Error::from)?
        .iter()
        .map(Channel::redacted)
        .collect();
    Ok(Json(channels).into_response())
}

async fn put_channel(
    State(state): State<Shared>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/channels", &p.username);
    let channel: Channel = json_body(&state, request, &ctx).await?;
    state
        .store
        .put_channel(&channel)
        .await
        .map_err(|e| admin_error(e.into(), &ctx))?;
    let detail = format!(
        "notification channel {} saved (min severity {}, tags {:?}, digest {} s)",
        channel.name, channel.min_severity, channel.tags, channel.digest_secs
    );
    Ok(done(
        Json(channel.redacted()).into_response(),
        ctx,
        "channel.save",
        detail,
    ))
}

async fn remove_channel(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/channels/{name}", &p.username);
    state
        .store
        .remove_channel(&name)
        .await
        .map_err(|e| admin_error(e.into(), &ctx))?;
    let detail = format!("notification channel {name} removed");
    Ok(done(
        Json(json!({"removed": name})).into_response(),
        ctx,
        "channel.remove",
        detail,
    ))
}

async fn test_channel(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let p = require_session(&state, &headers, OPERATORS).await?;
    let ctx = ctx("/admin/channels/{name}/test", &p.username);
    let result = state.store.test_channel(&name).await;
    let (body, decision) = match &result {
        Ok(()) => (json!({"delivered": true}), "channel.test"),
        Err(aegis_store::Error::NotFound(_)) => {
            return Err(admin_error(result.unwrap_err().into(), &ctx));
        }
        Err(e) => (
            json!({"delivered": false, "error": e.to_string()}),
            "channel.test_failed",
        ),
    };
    let detail = format!("test message to channel {name}: {body}");
    Ok(done(Json(body).into_response(), ctx, decision, detail))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct DeliveryQuery {
    state: Option<String>,
    limit: Option<i64>,
}

async fn deliveries(
    State(state): State<Shared>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    require_session(&state, &headers, STAFF).await?;
    let q: DeliveryQuery = query(&uri)?;
    let list = state
        .store
        .deliveries(q.state.as_deref(), q.limit.unwrap_or(100))
        .await
        .map_err(crate::Error::from)?;
    Ok(Json(list).into_response())
}

/// The OpenAPI path items of these routes (`op(summary, security, has_body)` builds one operation).
pub(crate) fn openapi_paths(
    op: &dyn Fn(&str, &serde_json::Value, bool) -> serde_json::Value,
    session: &serde_json::Value,
) -> Vec<(String, serde_json::Value)> {
    let p = |names: &[&str]| -> serde_json::Value {
        names
            .iter()
            .map(|n| json!({"name": n, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect()
    };
    let q = |names: &[&str]| -> Vec<serde_json::Value> {
        names
            .iter()
            .map(|n| json!({"name": n, "in": "query", "required": false, "schema": {"type": "string"}}))
            .collect()
    };
    let with_query = |mut o: serde_json::Value, names: &[&str]| {
        o["parameters"] = serde_json::Value::Array(q(names));
        o
    };
    let s = session;
    vec![
        (
            "/admin/assets".into(),
            json!({
            "get": with_query(op("list assets with their latest version (staff)", s, false), &["kind"]),
            "post": op("register an asset: {name, kind: model|dataset|endpoint, role?, owner?, tags?, settings?: {label?, drop?}} (operator)", s, true)}),
        ),
        (
            "/admin/assets/{name}".into(),
            json!({"parameters": p(&["name"]),
            "get": op("one asset: versions, links, runs, schedules, posture (staff)", s, false),
            "patch": op("change owner, tags or settings (operator)", s, true),
            "delete": op("remove from the inventory; history is kept (operator)", s, false)}),
        ),
        (
            "/admin/assets/{name}/versions".into(),
            json!({"parameters": p(&["name"]),
            "put": with_query(op("upload a new version: the body is the file, streamed under [checks] max_upload_mib; its checks are queued (operator)", s, true), &["filename"])}),
        ),
        (
            "/admin/assets/{name}/links".into(),
            json!({"parameters": p(&["name"]),
            "post": op("link a model to a dataset: {relation: trained_on|evaluated_on|reference, dataset} (operator)", s, true)}),
        ),
        (
            "/admin/assets/{name}/checks".into(),
            json!({"parameters": p(&["name"]),
            "post": op("queue checks of the latest version now: {checks?: [scan, signature, schema, audit, robustness, privacy]} (operator)", s, true)}),
        ),
        (
            "/admin/assets/{name}/schedules/{check}".into(),
            json!({"parameters": p(&["name", "check"]),
            "put": op("when a check runs by itself: {every_secs} or {cron}; neither: only on new versions (operator)", s, true)}),
        ),
        (
            "/admin/assets/{name}/reports".into(),
            json!({"parameters": p(&["name"]),
            "post": op("import a report a CLI command wrote (--format json) as a run with its findings (operator)", s, true)}),
        ),
        (
            "/admin/runs/{id}".into(),
            json!({"parameters": p(&["id"]),
            "get": with_query(op("one run; ?report=true adds its full report (staff)", s, false), &["report"])}),
        ),
        (
            "/admin/findings".into(),
            json!({
            "get": with_query(op("findings, worst first, a page at a time (pass `next` as cursor) (staff)", s, false),
                              &["asset", "source", "severity", "state", "owner", "limit", "cursor"])}),
        ),
        (
            "/admin/findings/{fingerprint}".into(),
            json!({"parameters": p(&["fingerprint"]),
            "get": op("one finding with its history (staff)", s, false)}),
        ),
        (
            "/admin/findings/{fingerprint}/triage".into(),
            json!({"parameters": p(&["fingerprint"]),
            "post": op("triage: {state?, justification?, comment, owner?, accept_days?}; audited (operator)", s, true)}),
        ),
        (
            "/admin/posture".into(),
            json!({
            "get": with_query(op("per asset, the latest result of each check and open findings; ?format=html for a page (staff)", s, false), &["asset", "format"])}),
        ),
        (
            "/admin/channels".into(),
            json!({
            "get": op("notification channels, secrets hidden (staff)", s, false),
            "post": op("add or replace a channel: {name, transport: {kind: webhook, url, secret} | {kind: email, server, from, to, security?}, min_severity?, tags?, digest_secs?} (operator)", s, true)}),
        ),
        (
            "/admin/channels/{name}".into(),
            json!({"parameters": p(&["name"]),
            "delete": op("remove a channel (operator)", s, false)}),
        ),
        (
            "/admin/channels/{name}/test".into(),
            json!({"parameters": p(&["name"]),
            "post": op("send a test message now; says whether it was delivered (operator)", s, false)}),
        ),
        (
            "/admin/deliveries".into(),
            json!({
            "get": with_query(op("messages sent, waiting or failed, newest first (staff)", s, false), &["state", "limit"])}),
        ),
    ]
}
