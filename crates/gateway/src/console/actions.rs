//! What the console's forms do. Each action checks, in order: a signed-in visitor, a same-origin request, the
//! session's CSRF token, and the role the same action needs on the JSON API; then it calls the same library
//! function the API calls, audits it under the console route, and redirects to the page that shows the result
//! (so a reload does not repeat it). A new API key's secret is the exception: it is shown once, in the answer.

use aegis_core::Severity;
use aegis_store::assets::{AssetKind, AssetSettings, NewAsset};
use aegis_store::objects::{ObjectWriter, StoredFile};
use aegis_store::Triage;
use aegis_web as web;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::auth::{self, Visitor};
use super::views::{base, chrome, encode, failure, FindingQuery};
use crate::admin_request::done;
use crate::audit_trail::AuditCtx;
use crate::keys::{self, NewKey};
use crate::state::Shared;
use crate::util;

/// Who may do what: the same sets as the API's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Needs {
    /// Admins and operators.
    Change,
    /// Admins.
    Admin,
}

/// The visitor, if the request is theirs, from the console, and allowed; otherwise the refusal (audited).
async fn allowed(
    state: &Shared,
    headers: &HeaderMap,
    token: &str,
    needs: Needs,
    route: &str,
) -> Result<(Visitor, AuditCtx), Response> {
    let v = auth::visitor(state, headers, &base(state)).await?;
    let mut ctx = AuditCtx::admin(route);
    ctx.actor = v.principal.username.clone();
    if !auth::same_origin(headers) || !auth::token_matches(&v, token) {
        ctx.kind = "auth".into();
        let r = failure(
            state,
            &v,
            StatusCode::FORBIDDEN,
            "Refused: this request did not come from the console",
            "Aegis only accepts changes sent from its own pages, in the session that opened them. Reload the page \
             and try again."
                .into(),
        );
        return Err(done(
            r,
            ctx,
            "csrf",
            "refused: missing or wrong CSRF token or cross-site request".into(),
        ));
    }
    let ok = match needs {
        Needs::Change => v.can_change(),
        Needs::Admin => v.is_admin(),
    };
    if !ok {
        let r = failure(
            state,
            &v,
            StatusCode::FORBIDDEN,
            "Not for your role",
            format!(
                "A {} may look but not change this. Ask an administrator.",
                v.principal.role
            ),
        );
        return Err(done(
            r,
            ctx,
            "role",
            format!("refused: role {}", v.principal.role),
        ));
    }
    Ok((v, ctx))
}

macro_rules! allowed {
    ($state:expr, $headers:expr, $token:expr, $needs:expr, $route:expr) => {
        match allowed(&$state, &$headers, $token, $needs, $route).await {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
}

fn back(state: &Shared, path: &str, code: &str) -> Response {
    Redirect::to(&format!("{}{path}?done={code}", base(state))).into_response()
}

/// The page for an action the store refused, with its reason (already written for people) and the way back.
fn refused(state: &Shared, v: &Visitor, ctx: AuditCtx, text: String) -> Response {
    let r = failure(
        state,
        v,
        StatusCode::BAD_REQUEST,
        "That did not work",
        text.clone(),
    );
    done(r, ctx, "refused", text)
}

fn optional(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn days(s: &str) -> Result<Option<i64>, String> {
    match optional(s) {
        None => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("{t:?} is not a number of days")),
    }
}

// ----------------------------------------------------------------------------------------------- findings

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct TriageForm {
    csrf: String,
    state: String,
    justification: String,
    owner: String,
    comment: String,
    accept_days: String,
}

impl TriageForm {
    fn triage(&self, keep_owner: bool) -> Result<Triage, String> {
        let state = match optional(&self.state) {
            None => None,
            Some(s) => Some(aegis_store::VexState::parse(&s).map_err(|e| e.to_string())?),
        };
        Ok(Triage {
            state,
            justification: optional(&self.justification),
            comment: self.comment.trim().to_string(),
            owner: if keep_owner {
                optional(&self.owner)
            } else {
                Some(self.owner.trim().to_string())
            },
            accept_days: days(&self.accept_days)?,
        })
    }
}

/// `POST /findings/{fingerprint}/triage`.
pub(super) async fn triage(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(fp): Path<String>,
    Form(form): Form<TriageForm>,
) -> Response {
    let (v, ctx) = allowed!(
        state,
        headers,
        &form.csrf,
        Needs::Change,
        "/findings/{fingerprint}/triage"
    );
    let mut t = match form.triage(false) {
        Ok(t) => t,
        Err(text) => return refused(&state, &v, ctx, text),
    };
    // Unchanged fields are not changes: the history should say what the person did.
    if let Ok(current) = state.store.finding(&fp).await {
        if t.state == Some(current.state)
            && t.accept_days.is_none()
            && t.justification.as_deref().unwrap_or("") == current.justification
        {
            t.state = None;
            t.justification = None;
        }
        if t.owner.as_deref() == Some(current.owner.as_str()) {
            t.owner = None;
        }
    }
    if t.state.is_none() && t.owner.is_none() && t.accept_days.is_none() && t.comment.is_empty() {
        return back(&state, &format!("/findings/{fp}"), "triaged");
    }
    match state.store.triage(&fp, &t, &v.principal.username).await {
        Ok((before, after)) => {
            let detail = aegis_store::findings::triage_summary(&before, &after, &t.comment);
            done(
                back(&state, &format!("/findings/{fp}"), "triaged"),
                ctx,
                "finding.triage",
                detail,
            )
        }
        Err(e) => refused(&state, &v, ctx, e.to_string()),
    }
}

/// `POST /findings/bulk?FILTER`: the same decision for every finding the filter matches (at most 5 000).
pub(super) async fn bulk_triage(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<FindingQuery>,
    Form(form): Form<TriageForm>,
) -> Response {
    let (v, ctx) = allowed!(state, headers, &form.csrf, Needs::Change, "/findings/bulk");
    let t = match form.triage(true) {
        Ok(t) => t,
        Err(text) => return refused(&state, &v, ctx, text),
    };
    if t.state.is_none() && t.owner.is_none() && t.accept_days.is_none() {
        return refused(
            &state,
            &v,
            ctx,
            "Choose a new state, an owner or a number of days to accept the risk.".into(),
        );
    }
    // Collect first, then change: changing while paging would move findings between pages.
    let mut fingerprints = Vec::new();
    let mut filter = match q.filter(500) {
        Ok(f) => f,
        Err(text) => return refused(&state, &v, ctx, text),
    };
    while fingerprints.len() < 5000 {
        match state.store.list_findings(&filter).await {
            Ok(page) => {
                fingerprints.extend(page.findings.into_iter().map(|f| f.fingerprint));
                match page.next {
                    Some(next) => filter.cursor = Some(next),
                    None => break,
                }
            }
            Err(e) => return refused(&state, &v, ctx, e.to_string()),
        }
    }
    let mut changed = 0;
    for fp in &fingerprints {
        if let Err(e) = state.store.triage(fp, &t, &v.principal.username).await {
            let text = format!(
                "{changed} of {} findings were changed; then: {e}",
                fingerprints.len()
            );
            return refused(&state, &v, ctx, text);
        }
        changed += 1;
    }
    let detail = format!(
        "bulk triage of {changed} finding(s) matching {:?}: state {:?}, owner {:?}, accept {:?} days; {}",
        q.query_string(),
        t.state.map(|s| s.as_str()),
        t.owner,
        t.accept_days,
        t.comment
    );
    let path = format!("/findings?{}&done=bulk", q.query_string());
    done(
        Redirect::to(&format!("{}{path}", base(&state))).into_response(),
        ctx,
        "finding.triage",
        detail,
    )
}

// ----------------------------------------------------------------------------------------------- assets

/// The fields of an upload form, with the file streamed into the object store as it arrives.
#[derive(Default)]
struct Upload {
    csrf: String,
    name: String,
    kind: String,
    owner: String,
    label: String,
    file: Option<(String, String, u64)>,
}

/// Read a multipart upload. The CSRF token must come before the file (the forms put it first), so a
/// forged upload is refused before a byte of it is stored.
async fn read_upload(
    state: &Shared,
    v: &Visitor,
    headers: &HeaderMap,
    mut parts: Multipart,
) -> Result<Upload, String> {
    let mut up = Upload::default();
    while let Some(mut field) = parts
        .next_field()
        .await
        .map_err(|e| format!("the upload broke off: {e}"))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            if !auth::same_origin(headers) || !auth::token_matches(v, &up.csrf) {
                return Err("csrf".into());
            }
            let filename = field.file_name().unwrap_or_default().trim().to_string();
            let filename = filename
                .rsplit(['/', '\\'])
                .next()
                .unwrap_or_default()
                .to_string();
            if filename.is_empty() || filename == "." || filename == ".." || filename.len() > 255 {
                return Err("Choose a file to upload.".into());
            }
            let mut writer = ObjectWriter::new(
                state.store.data_dir(),
                state.config.checks.max_bytes(),
                state.store.at_rest(),
            )
            .map_err(|e| e.to_string())?;
            let idle =
                std::time::Duration::from_millis(state.config.server.body_timeout_ms.max(1000));
            loop {
                let chunk = tokio::time::timeout(idle, field.chunk())
                    .await
                    .map_err(|_| "the upload stalled; send the file again".to_string())?
                    .map_err(|e| format!("the upload broke off: {e}"))?;
                match chunk {
                    Some(bytes) => writer.write(&bytes).map_err(|e| e.to_string())?,
                    None => break,
                }
            }
            let (sha, size) = writer.finish().map_err(|e| e.to_string())?;
            if size == 0 {
                return Err(format!(
                    "{filename} is empty; choose the model or data file itself."
                ));
            }
            up.file = Some((filename, sha, size));
        } else {
            let text = field
                .text()
                .await
                .map_err(|e| format!("the form broke off: {e}"))?;
            if text.len() > 4096 {
                return Err(format!("the field {name} is too long"));
            }
            match name.as_str() {
                "csrf" => up.csrf = text,
                "name" => up.name = text.trim().to_string(),
                "kind" => up.kind = text,
                "owner" => up.owner = text.trim().to_string(),
                "label" => up.label = text.trim().to_string(),
                _ => {}
            }
        }
    }
    if up.file.is_none() {
        return Err("Choose a file to upload.".into());
    }
    Ok(up)
}

/// Record an uploaded file as a new version of `asset_name` and queue its checks (the scan first; the checks
/// that load a model wait for it). Returns the notice code.
async fn add_upload(
    state: &Shared,
    asset_name: &str,
    up: &Upload,
    who: &str,
) -> Result<(&'static str, String), aegis_store::Error> {
    let Some((filename, sha, size)) = &up.file else {
        return Err(aegis_store::Error::Invalid("no file".into()));
    };
    let store = &state.store;
    let asset = store.asset(asset_name).await?;
    let files = vec![StoredFile {
        path: filename.clone(),
        sha256: sha.clone(),
        size: *size,
    }];
    let (version, new) = store
        .add_version(
            &asset,
            sha,
            filename,
            files,
            None,
            &format!("console upload by {who}"),
        )
        .await?;
    if new {
        store.on_new_version(&asset, &version).await?;
    }
    let detail = format!(
        "asset {} version {} uploaded in the console ({size} bytes, sha256 {sha})",
        asset.name, version.seq
    );
    Ok((if new { "uploaded" } else { "same" }, detail))
}

/// `POST /assets`: register a model or dataset with its first file.
pub(super) async fn add_asset(
    State(state): State<Shared>,
    headers: HeaderMap,
    parts: Multipart,
) -> Response {
    let v = match auth::visitor(&state, &headers, &base(&state)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let up = read_upload(&state, &v, &headers, parts).await;
    let token = up.as_ref().map(|u| u.csrf.clone()).unwrap_or_default();
    let (v, ctx) = allowed!(state, headers, &token, Needs::Change, "/assets");
    let up = match up {
        Ok(u) => u,
        Err(text) => return refused(&state, &v, ctx, text),
    };
    let (kind, role) = match up.kind.as_str() {
        "model" => (AssetKind::Model, ""),
        "training" | "test" | "reference" => (AssetKind::Dataset, up.kind.as_str()),
        other => {
            return refused(
                &state,
                &v,
                ctx,
                format!("unknown kind {other:?}: choose a model or a dataset"),
            )
        }
    };
    let new = NewAsset {
        name: up.name.clone(),
        kind: Some(kind),
        role: role.to_string(),
        owner: up.owner.clone(),
        settings: AssetSettings {
            label: optional(&up.label),
            ..AssetSettings::default()
        },
        ..NewAsset::default()
    };
    if let Err(e) = state.store.create_asset(new).await {
        return refused(&state, &v, ctx, e.to_string());
    }
    match add_upload(&state, &up.name, &up, &v.principal.username).await {
        Ok((_, detail)) => done(
            back(&state, &format!("/assets/{}", encode(&up.name)), "added"),
            ctx,
            "asset.create",
            detail,
        ),
        Err(e) => {
            // Do not leave a registered asset without its file behind.
            let _ = state.store.remove_asset(&up.name).await;
            refused(&state, &v, ctx, e.to_string())
        }
    }
}

/// `POST /assets/{name}/versions`: a new version of an asset.
pub(super) async fn upload_version(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    parts: Multipart,
) -> Response {
    let v = match auth::visitor(&state, &headers, &base(&state)).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let up = read_upload(&state, &v, &headers, parts).await;
    let token = up.as_ref().map(|u| u.csrf.clone()).unwrap_or_default();
    let (v, ctx) = allowed!(
        state,
        headers,
        &token,
        Needs::Change,
        "/assets/{name}/versions"
    );
    let up = match up {
        Ok(u) => u,
        Err(text) => return refused(&state, &v, ctx, text),
    };
    match add_upload(&state, &name, &up, &v.principal.username).await {
        Ok((code, detail)) => done(
            back(&state, &format!("/assets/{}", encode(&name)), code),
            ctx,
            "asset.version",
            detail,
        ),
        Err(e) => refused(&state, &v, ctx, e.to_string()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct TokenForm {
    csrf: String,
}

/// `POST /assets/{name}/checks`: run every check of the asset again.
pub(super) async fn run_checks(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<TokenForm>,
) -> Response {
    let (v, ctx) = allowed!(
        state,
        headers,
        &form.csrf,
        Needs::Change,
        "/assets/{name}/checks"
    );
    let queued = async {
        let asset = state.store.asset(&name).await?;
        state.store.check_now(&asset, &[]).await
    }
    .await;
    match queued {
        Ok(jobs) => done(
            back(&state, &format!("/assets/{}", encode(&name)), "queued"),
            ctx,
            "check.run",
            format!("{} check(s) of {name} queued from the console", jobs.len()),
        ),
        Err(e) => refused(&state, &v, ctx, e.to_string()),
    }
}

// ----------------------------------------------------------------------------------------------- people and keys

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct UserForm {
    csrf: String,
    username: String,
    role: String,
    password: String,
}

/// `POST /gateway/users` (admins).
pub(super) async fn add_user(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<UserForm>,
) -> Response {
    let (v, ctx) = allowed!(state, headers, &form.csrf, Needs::Admin, "/gateway/users");
    let role = match form.role.parse::<crate::identity::Role>() {
        Ok(r) => r,
        Err(e) => return refused(&state, &v, ctx, e.to_string()),
    };
    match crate::identity::create_user(&state.db, form.username.trim(), &form.password, role).await
    {
        Ok(()) => {
            let detail = format!("{} as {role}", form.username.trim());
            done(back(&state, "/gateway", "user"), ctx, "user.create", detail)
        }
        Err(e) => refused(&state, &v, ctx, e.to_string()),
    }
}

/// `POST /gateway/users/{name}/{enable|disable}` (admins).
pub(super) async fn user_state(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<TokenForm>,
) -> Response {
    let (v, ctx) = allowed!(
        state,
        headers,
        &form.csrf,
        Needs::Admin,
        "/gateway/users/{name}/{action}"
    );
    let disabled = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return refused(&state, &v, ctx, format!("unknown action {action:?}")),
    };
    if disabled && name == v.principal.username {
        return refused(
            &state,
            &v,
            ctx,
            "You cannot disable yourself; ask another administrator.".into(),
        );
    }
    match crate::identity::set_disabled(&state.db, &name, disabled).await {
        Ok(()) => done(
            back(&state, "/gateway", "user"),
            ctx,
            if disabled {
                "user.disable"
            } else {
                "user.enable"
            },
            name,
        ),
        Err(e) => refused(&state, &v, ctx, e.to_string()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct KeyForm {
    csrf: String,
    name: String,
    models: String,
    rpm: String,
    days: String,
}

/// Render the gateway page with a secret shown once.
async fn with_secret(state: &Shared, v: &Visitor, id: String, secret: String) -> Response {
    match super::views::gateway_page(state, chrome(state, v, "gateway"), Some((id, secret))).await {
        Ok(p) => super::page(StatusCode::OK, web::render(&p)),
        Err(e) => failure(
            state,
            v,
            StatusCode::INTERNAL_SERVER_ERROR,
            "This page could not be read",
            e.to_string(),
        ),
    }
}

/// `POST /gateway/keys` (admins and operators), within the configured ceilings.
pub(super) async fn create_key(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<KeyForm>,
) -> Response {
    let (v, mut ctx) = allowed!(state, headers, &form.csrf, Needs::Change, "/gateway/keys");
    let models: Vec<String> = form
        .models
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    let models = if models.is_empty() {
        vec!["*".to_string()]
    } else {
        models
    };
    let mut new = NewKey::from_defaults(
        form.name.trim(),
        &v.principal.username,
        models,
        &state.config.defaults,
    );
    match optional(&form.rpm).map(|r| r.parse::<f64>()) {
        Some(Ok(rpm)) if rpm > 0.0 => new.rate_per_sec = rpm / 60.0,
        Some(_) => {
            return refused(
                &state,
                &v,
                ctx,
                format!("{:?} is not a number of requests per minute", form.rpm),
            )
        }
        None => {}
    }
    match days(&form.days) {
        Ok(Some(d)) => new.expires_days = d,
        Ok(None) => {}
        Err(text) => return refused(&state, &v, ctx, text),
    }
    let beyond = new.beyond(&state.config.key_ceilings);
    if !beyond.is_empty() {
        let text = format!(
            "This key is beyond the limits set in aegis.toml ([key_ceilings]): {}. Ask for less, or create it with the API as an administrator (audited).",
            beyond.join("; ")
        );
        return refused(&state, &v, ctx, text);
    }
    match keys::create_key(&state.db, &new, util::now_secs()).await {
        Ok((key, secret)) => {
            ctx.key_id = key.id.clone();
            let detail = format!("{} for {} on {}", key.id, key.owner, key.models.join(","));
            let r = with_secret(&state, &v, key.id.clone(), secret.expose().to_string()).await;
            done(r, ctx, "key.create", detail)
        }
        Err(e) => refused(&state, &v, ctx, e.to_string()),
    }
}

/// `POST /gateway/keys/{id}/{revoke|rotate}` (admins and operators).
pub(super) async fn key_action(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<TokenForm>,
) -> Response {
    let (v, mut ctx) = allowed!(
        state,
        headers,
        &form.csrf,
        Needs::Change,
        "/gateway/keys/{id}/{action}"
    );
    ctx.key_id = id.clone();
    let now = util::now_secs();
    match action.as_str() {
        "revoke" => match keys::revoke_key(&state.db, &id, now).await {
            Ok(()) => {
                state.key_cache.invalidate();
                state.leases.forget(&id);
                done(back(&state, "/gateway", "revoked"), ctx, "key.revoke", id)
            }
            Err(e) => refused(&state, &v, ctx, e.to_string()),
        },
        "rotate" => match keys::rotate_key(&state.db, &id, now).await {
            Ok((key, secret)) => {
                state.key_cache.invalidate();
                state.leases.forget(&id);
                let detail = format!("{id} replaced by {}", key.id);
                let r = with_secret(&state, &v, key.id.clone(), secret.expose().to_string()).await;
                done(r, ctx, "key.rotate", detail)
            }
            Err(e) => refused(&state, &v, ctx, e.to_string()),
        },
        _ => refused(&state, &v, ctx, format!("unknown action {action:?}")),
    }
}

// ----------------------------------------------------------------------------------------------- channels

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ChannelForm {
    csrf: String,
    name: String,
    url: String,
    secret: String,
    min_severity: String,
}

/// `POST /settings/channels`: add a webhook (admins and operators, as on the API).
pub(super) async fn add_channel(
    State(state): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<ChannelForm>,
) -> Response {
    let (v, ctx) = allowed!(
        state,
        headers,
        &form.csrf,
        Needs::Change,
        "/settings/channels"
    );
    let min_severity = match form.min_severity.parse::<Severity>() {
        Ok(s) => s,
        Err(_) => return refused(&state, &v, ctx, "choose a severity".into()),
    };
    let channel = aegis_store::notify::Channel {
        name: form.name.trim().to_string(),
        transport: aegis_store::notify::Transport::Webhook(aegis_store::notify::WebhookConfig {
            url: form.url.trim().to_string(),
            secret: form.secret.clone(),
            ca_file: None,
        }),
        min_severity,
        tags: Vec::new(),
        digest_secs: 0,
        enabled: true,
    };
    match state.store.put_channel(&channel).await {
        Ok(()) => {
            let detail = format!(
                "notification channel {} saved in the console (min severity {min_severity})",
                channel.name
            );
            done(
                back(&state, "/settings", "channel"),
                ctx,
                "channel.save",
                detail,
            )
        }
        Err(e) => refused(&state, &v, ctx, e.to_string()),
    }
}

/// `POST /settings/channels/{name}/{test|remove}`.
pub(super) async fn channel_action(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<TokenForm>,
) -> Response {
    let (v, ctx) = allowed!(
        state,
        headers,
        &form.csrf,
        Needs::Change,
        "/settings/channels/{name}/{action}"
    );
    match action.as_str() {
        "test" => match state.store.test_channel(&name).await {
            Ok(()) => done(
                back(&state, "/settings", "sent"),
                ctx,
                "channel.test",
                format!("test message to channel {name}"),
            ),
            Err(e) => refused(
                &state,
                &v,
                ctx,
                format!("The test message to {name} failed: {e}"),
            ),
        },
        "remove" => match state.store.remove_channel(&name).await {
            Ok(()) => done(
                back(&state, "/settings", "removed"),
                ctx,
                "channel.remove",
                format!("notification channel {name} removed"),
            ),
            Err(e) => refused(&state, &v, ctx, e.to_string()),
        },
        _ => refused(&state, &v, ctx, format!("unknown action {action:?}")),
    }
}
