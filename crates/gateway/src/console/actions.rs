//! What the console's forms do. Each action checks, in order: a signed-in visitor, a same-origin request, the
//! session's CSRF token, and the role the same action needs on the JSON API; then it calls the same library
//! function the API calls, audits it under the console route, and redirects to the page that shows the result
//! (so a reload does not repeat it). A new API key's secret is the exception: it is shown once, in the answer.

use aegis_core::Severity;
use aegis_store::assets::{AssetKind, AssetSettings, NewAsset};
use aegis_store::objects::{ObjectWriter, StoredFile};
use aegis_store::Triage;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::auth::{self, Visitor};
use super::views::{base, encode, failure, FindingQuery};
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
    let mut chars = text.chars();
    let text = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    };
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
    while fingerprints.len() <= 5000 {
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
    if fingerprints.len() > 5000 {
        return refused(
            &state,
            &v,
            ctx,
            "More than 5,000 findings match these filters; narrow them (a model, a check, a severity) and apply again."
                .into(),
        );
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
    let mut what = Vec::new();
    if let Some(s) = t.state {
        what.push(format!("state {}", s.as_str()));
    }
    if let Some(o) = &t.owner {
        what.push(format!("owner {o}"));
    }
    if let Some(d) = t.accept_days {
        what.push(format!("risk accepted for {d} days"));
    }
    let detail = format!(
        "bulk triage of {changed} finding(s) matching \"{}\": {}; comment: {}",
        q.query_string(),
        what.join(", "),
        t.comment
    );
    let path = format!("/findings?{}&done=bulk&n={changed}", q.query_string());
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

/// A refusal's text, or what to do when the form itself was wrong (its token came after the file).
fn or_resend(text: String) -> String {
    if text.is_empty() {
        "Send the form again from the console's page.".into()
    } else {
        text
    }
}

/// What an upload is for, checked before a byte of the file is stored.
enum Purpose<'a> {
    /// A new asset named in the form.
    NewAsset,
    /// A new version of this asset.
    Version(&'a str),
}

/// Most bytes of a text field of an upload form.
const MAX_FIELD: usize = 4096;

/// Read one text field of a multipart form, at most [`MAX_FIELD`] bytes.
async fn small_field(
    field: &mut axum::extract::multipart::Field<'_>,
    name: &str,
) -> Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| format!("the form broke off: {e}"))?
    {
        if bytes.len() + chunk.len() > MAX_FIELD {
            return Err(format!(
                "the field {name} is too long (at most {MAX_FIELD} bytes)"
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| format!("the field {name} is not text"))
}

/// Read a multipart upload. The form's fields come before its one file (the console's forms put them first),
/// so the visitor, the same-origin check, the CSRF token, the role and what the upload is for are all checked
/// before a byte of the file is stored. Returns the fields read (with the token, for the caller's refusal) and
/// whether the upload is acceptable.
async fn read_upload(
    state: &Shared,
    v: &Visitor,
    headers: &HeaderMap,
    purpose: Purpose<'_>,
    mut parts: Multipart,
) -> (Upload, Result<(), String>) {
    let mut up = Upload::default();
    // The file's writer stays unfinished until the whole form is read: an error drops it, and dropping
    // removes its temporary file, so a refused upload leaves nothing in the store.
    let mut pending: Option<(String, ObjectWriter)> = None;
    let result = async {
        while let Some(mut field) = parts
            .next_field()
            .await
            .map_err(|e| format!("the upload broke off: {e}"))?
        {
            let name = field.name().unwrap_or_default().to_string();
            if pending.is_some() {
                return Err("The file must be the form's last field; send the form from the console's page.".to_string());
            }
            if name != "file" {
                let text = small_field(&mut field, &name).await?;
                match name.as_str() {
                    "csrf" => up.csrf = text,
                    "name" => up.name = text.trim().to_string(),
                    "kind" => up.kind = text,
                    "owner" => up.owner = text.trim().to_string(),
                    "label" => up.label = text.trim().to_string(),
                    _ => {}
                }
                continue;
            }
            if !auth::same_origin(headers) || !auth::token_matches(v, &up.csrf) || !v.can_change() {
                // The caller refuses with the reason (cross-site, token or role).
                return Err(String::new());
            }
            check_purpose(state, &purpose, &up).await?;
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
            pending = Some((filename, writer));
        }
        let Some((filename, writer)) = pending.take() else {
            return Err("Choose a file to upload.".into());
        };
        if writer.written() == 0 {
            return Err(format!("{filename} is empty; choose the model or data file itself."));
        }
        let (sha, size) = writer.finish().map_err(|e| e.to_string())?;
        up.file = Some((filename, sha, size));
        Ok(())
    }
    .await;
    (up, result)
}

/// Refuse an upload whose target is wrong before its file is stored: a new asset needs a valid, unused name
/// and a known kind; a new version needs its asset.
async fn check_purpose(state: &Shared, purpose: &Purpose<'_>, up: &Upload) -> Result<(), String> {
    match purpose {
        Purpose::NewAsset => {
            aegis_store::assets::check_name(&up.name).map_err(|e| e.to_string())?;
            if !matches!(
                up.kind.as_str(),
                "model" | "training" | "test" | "reference"
            ) {
                return Err(format!(
                    "unknown kind {:?}: choose a model or a dataset",
                    up.kind
                ));
            }
            match state.store.find_asset(&up.name).await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err(format!(
                    "{} exists already; open it to upload a new version, or choose another name",
                    up.name
                )),
                Err(e) => Err(e.to_string()),
            }
        }
        Purpose::Version(name) => state
            .store
            .asset(name)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
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
    let (up, read) = read_upload(&state, &v, &headers, Purpose::NewAsset, parts).await;
    let (v, ctx) = allowed!(state, headers, &up.csrf, Needs::Change, "/assets");
    if let Err(text) = read {
        return refused(&state, &v, ctx, or_resend(text));
    }
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
    let (up, read) = read_upload(&state, &v, &headers, Purpose::Version(&name), parts).await;
    let (v, ctx) = allowed!(
        state,
        headers,
        &up.csrf,
        Needs::Change,
        "/assets/{name}/versions"
    );
    if let Err(text) = read {
        return refused(&state, &v, ctx, or_resend(text));
    }
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

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LinkForm {
    csrf: String,
    dataset: String,
    relation: String,
}

/// `POST /assets/{name}/links`: link a dataset to a model, then run the model's checks again with it.
pub(super) async fn link_dataset(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<LinkForm>,
) -> Response {
    let (v, ctx) = allowed!(
        state,
        headers,
        &form.csrf,
        Needs::Change,
        "/assets/{name}/links"
    );
    let store = &state.store;
    let linked = async {
        let relation = aegis_store::assets::Relation::parse(&form.relation)?;
        let model = store.asset(&name).await?;
        let data = store.asset(&form.dataset).await?;
        store.link(&model, relation, &data).await?;
        let jobs = if model.latest.is_some() {
            store.check_now(&model, &[]).await?
        } else {
            Vec::new()
        };
        Ok::<_, aegis_store::Error>(format!(
            "{} {} {} (console); {} check(s) queued",
            model.name,
            relation.as_str(),
            data.name,
            jobs.len()
        ))
    }
    .await;
    match linked {
        Ok(detail) => done(
            back(&state, &format!("/assets/{}", encode(&name)), "linked"),
            ctx,
            "asset.link",
            detail,
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
    let name = form.username.trim();
    if let Err(e) = crate::identity::create_user(&state.db, name, &form.password, role).await {
        return refused(&state, &v, ctx, e.to_string());
    }
    // Administrators must sign in with a second factor: enrol it now and show it once, as the CLI does.
    if role.requires_totp() {
        match crate::identity::enroll_totp(&state.db, name, "Aegis").await {
            Ok(e) => {
                let enrolment = super::enrolment_view(name, &e);
                let shown = super::once::Shown::enrolment(enrolment);
                let now = util::now_secs();
                if let Err(e) =
                    super::once::put(&state.db, &v.principal.session_id, shown, now).await
                {
                    return refused(&state, &v, ctx, e.to_string());
                }
            }
            Err(e) => return refused(&state, &v, ctx, e.to_string()),
        }
    }
    let detail = format!("{name} as {role}");
    done(back(&state, "/gateway", "user"), ctx, "user.create", detail)
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

/// Keep `id`'s secret for this session's next gateway page and go there: the answer to the form is a redirect,
/// so a reload creates nothing twice and the secret is shown once.
async fn with_secret(state: &Shared, v: &Visitor, id: String, secret: String) -> Response {
    let shown = super::once::Shown::key(id, secret);
    match super::once::put(&state.db, &v.principal.session_id, shown, util::now_secs()).await {
        Ok(()) => back(state, "/gateway", "key"),
        Err(e) => failure(
            state,
            v,
            StatusCode::INTERNAL_SERVER_ERROR,
            "The key exists, but its secret could not be kept for you",
            format!("{e}. Rotate the key to get a new secret."),
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
    let known: Vec<String> = state
        .models
        .names()
        .into_iter()
        .chain(state.upstreams.list().into_iter().map(|u| u.name))
        .collect();
    if let Some(unknown) = models.iter().find(|m| *m != "*" && !known.contains(m)) {
        return refused(
            &state,
            &v,
            ctx,
            format!(
                "No model is served under the name {unknown:?}. The names are: {}.",
                known.join(", ")
            ),
        );
    }
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
    match state.store.channels().await {
        Ok(existing) if existing.iter().any(|c| c.name == form.name.trim()) => {
            return refused(
                &state,
                &v,
                ctx,
                format!(
                    "A channel named {} exists already; remove it first or choose another name.",
                    form.name.trim()
                ),
            )
        }
        Err(e) => return refused(&state, &v, ctx, e.to_string()),
        Ok(_) => {}
    }
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
