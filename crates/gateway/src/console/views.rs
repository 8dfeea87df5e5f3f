//! The pages people read: each handler checks the visitor, gathers what the page shows from the store and the
//! gateway's tables, turns it into plain words, and renders the template.

use aegis_core::Severity;
use aegis_store::assets::{Asset, AssetKind};
use aegis_store::findings::FindingFilter;
use aegis_store::posture::{when, AssetPosture};
use aegis_store::queue::Run;
use aegis_store::TrackedFinding;
use aegis_web as web;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::auth::Visitor;
use crate::state::Shared;
use crate::util;

pub(super) fn base(state: &Shared) -> String {
    state.config.server.console_path.clone()
}

/// The menu and session part of a page.
pub(super) fn chrome(state: &Shared, v: &Visitor, section: &'static str) -> web::Chrome {
    web::Chrome {
        base: base(state),
        user: v.principal.username.clone(),
        role: v.principal.role.to_string(),
        csrf: v.csrf.clone(),
        section,
        can_change: v.can_change(),
        is_admin: v.is_admin(),
        can_audit: v.can_audit(),
        notice: String::new(),
        problem: String::new(),
    }
}

/// A page saying what went wrong (a store or database failure), with the visitor's menu.
pub(super) fn failure(
    state: &Shared,
    v: &Visitor,
    status: StatusCode,
    title: &str,
    text: String,
) -> Response {
    super::page(
        status,
        web::render(&web::Message {
            chrome: chrome(state, v, ""),
            title: title.to_string(),
            text,
            next: Some(("Go to the overview".into(), format!("{}/", base(state)))),
        }),
    )
}

pub(super) fn store_failure(state: &Shared, v: &Visitor, e: aegis_store::Error) -> Response {
    match e {
        aegis_store::Error::NotFound(what) => failure(
            state,
            v,
            StatusCode::NOT_FOUND,
            "Not found",
            format!("{what}. It may have been removed; the lists show what exists."),
        ),
        other => failure(
            state,
            v,
            StatusCode::INTERNAL_SERVER_ERROR,
            "This page could not be read",
            format!("{other}. Try again; if it keeps failing, look at the server's log."),
        ),
    }
}

/// A message from the last action, chosen by code so no link can make the console say arbitrary words.
pub(super) fn notice(code: &str) -> &'static str {
    match code {
        "triaged" => "Saved. The finding's history records who changed what.",
        "bulk" => "Saved for every matching finding.",
        "uploaded" => {
            "Uploaded. The file is being scanned for hidden code before any other check reads it."
        }
        "same" => "That file is the same as the latest version; nothing changed.",
        "added" => "Added. Its checks are starting: the first is a scan for hidden code.",
        "queued" => "The checks are queued; this page shows their progress.",
        "linked" => "Linked. The model's checks run again with this data; this page shows their progress.",
        "user" => "Saved. A new administrator's authenticator key is shown below, once; other roles sign in with their password.",
        "key" => "The key is created. Copy its secret now: it is shown only on this page, this once.",
        "revoked" => "The key is revoked: requests with it are refused from now on.",
        "channel" => "The channel is saved.",
        "removed" => "Removed.",
        "sent" => "The test message was sent. Check that it arrived.",
        _ => "",
    }
}

#[derive(Deserialize, Default)]
pub(super) struct Done {
    #[serde(default)]
    pub(super) done: String,
    /// `0`: do not refresh the page's live parts.
    #[serde(default)]
    pub(super) live: String,
}

// ----------------------------------------------------------------------------------------------- overview

/// `GET /`: the overview.
pub(super) async fn overview(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let v = visitor!(state, headers);
    match overview_page(&state, &v).await {
        Ok(p) => super::page(StatusCode::OK, web::render(&p)),
        Err(e) => store_failure(&state, &v, e),
    }
}

async fn overview_page(state: &Shared, v: &Visitor) -> aegis_store::Result<web::Overview> {
    let base = base(state);
    let now = util::now_secs();
    let store = &state.store;
    let postures = store.posture(None).await?;
    let open = store
        .list_findings(&FindingFilter {
            limit: Some(500),
            ..FindingFilter::default()
        })
        .await?
        .findings;
    let counts = store.open_by_severity().await?;
    let count = |s: Severity| {
        counts
            .iter()
            .find(|(sev, _)| *sev == s)
            .map_or(0, |(_, n)| *n as usize)
    };
    let (critical, high) = (count(Severity::Critical), count(Severity::High));
    let served: Vec<String> = state.models.names();
    let served_postures: Vec<&AssetPosture> = postures
        .iter()
        .filter(|p| served.contains(&p.asset))
        .collect();
    let unsigned = served_postures
        .iter()
        .filter(|p| p.signature != "verified")
        .count();
    let alerts = store.alerts_since(now - 86_400).await?;
    let users = crate::identity::list_users(&state.db)
        .await
        .unwrap_or_default();
    // The bundled demo model (served when aegis.toml has no [[model]]) is not the company's own.
    let demo = state.config.models.is_empty();
    let models: Vec<&AssetPosture> = postures
        .iter()
        .filter(|p| p.kind == AssetKind::Model && !(demo && p.asset == "demo-fraud"))
        .collect();
    let checklist = vec![
        web::Step {
            done: users
                .iter()
                .any(|u| u.role == crate::identity::Role::Admin && u.totp_enabled),
            title: "Create the administrator, with two-factor sign-in".into(),
            text: "Done from the one-time link aegis serve prints on its first start.".into(),
            href: format!("{base}/gateway"),
        },
        web::Step {
            done: models.iter().any(|p| p.version > 0),
            title: "Add a model".into(),
            text: "Upload the model file; Aegis scans it for hidden code before anything loads it.".into(),
            href: format!("{base}/assets"),
        },
        web::Step {
            done: models.iter().any(|p| p.signature == "verified"),
            title: "Sign it".into(),
            text: "aegis vault sign MODEL --key KEY, then add the new version: a signed model cannot be swapped unnoticed."
                .into(),
            href: format!("{base}/assets"),
        },
        web::Step {
            done: !state.config.models.is_empty() || !state.upstreams.list().is_empty(),
            title: "Serve it through Aegis".into(),
            text: "Add a [[model]] to aegis.toml and restart: applications then call it with an API key, and Aegis watches its traffic."
                .into(),
            href: format!("{base}/monitor"),
        },
        web::Step {
            done: models
                .iter()
                .any(|p| p.checks.iter().any(|c| c.status == "done")),
            title: "Read the first report".into(),
            text: "Open a model to see what each check found and what to do.".into(),
            href: format!("{base}/assets"),
        },
    ];
    let attention = postures.iter().filter(|p| p.verdict == "attention").count();
    let tone = |n: usize, bad: &'static str| if n > 0 { bad } else { "good" };
    let tiles = vec![
        web::Tile {
            label: "open critical findings".into(),
            value: critical.to_string(),
            tone: tone(critical, "bad"),
            note: if critical > 0 {
                "Deal with these today.".into()
            } else {
                "None.".into()
            },
            href: format!("{base}/findings?severity=critical"),
        },
        web::Tile {
            label: "open high findings".into(),
            value: high.to_string(),
            tone: tone(high, "bad"),
            note: if high > 0 {
                "Decide on each this week.".into()
            } else {
                "None.".into()
            },
            href: format!("{base}/findings?severity=high"),
        },
        web::Tile {
            label: if demo {
                "models served (the demo)".into()
            } else {
                "models served".into()
            },
            value: served.len().to_string(),
            tone: "neutral",
            note: match state.upstreams.list().len() {
                0 => "No upstream proxied.".into(),
                1 => "1 upstream proxied too.".into(),
                n => format!("{n} upstreams proxied too."),
            },
            href: format!("{base}/monitor"),
        },
        web::Tile {
            label: "served models not signed".into(),
            value: unsigned.to_string(),
            tone: tone(unsigned, "warn"),
            note: if unsigned > 0 {
                "Sign them so a swapped file is caught.".into()
            } else {
                "All signed.".into()
            },
            href: format!("{base}/assets"),
        },
        web::Tile {
            label: "alerts in the last 24 h".into(),
            value: alerts.len().to_string(),
            tone: tone(alerts.len(), "warn"),
            note: "New or returning findings.".into(),
            href: format!("{base}/findings"),
        },
        web::Tile {
            label: "models or data needing attention".into(),
            value: attention.to_string(),
            tone: tone(attention, "bad"),
            note: format!("of {} registered.", postures.len()),
            href: format!("{base}/assets"),
        },
    ];
    // Severity first, then the oldest: what has waited longest at the top severity.
    let mut first: Vec<&TrackedFinding> = open.iter().collect();
    first.sort_by_key(|f| {
        (
            std::cmp::Reverse(aegis_store::findings::severity_rank(f.finding.severity)),
            f.first_seen,
        )
    });
    let first = first
        .into_iter()
        .take(8)
        .map(|f| finding_row(f, now))
        .collect();
    Ok(web::Overview {
        chrome: chrome(state, v, "overview"),
        checklist,
        tiles,
        first,
        timeline: timeline(&alerts, now),
    })
}

/// Alerts per hour over the last 24 hours, high and critical apart from the rest.
fn timeline(alerts: &[(i64, Severity)], now: i64) -> web::Chart {
    let hour_now = now / 3600;
    let mut severe = vec![0.0; 24];
    let mut other = vec![0.0; 24];
    for (ts, s) in alerts {
        let age = hour_now - ts / 3600;
        if (0..24).contains(&age) {
            let i = (23 - age) as usize;
            if *s >= Severity::High {
                severe[i] += 1.0;
            } else {
                other[i] += 1.0;
            }
        }
    }
    let labels: Vec<String> = (0..24)
        .map(|i| {
            let h = (hour_now - 23 + i) * 3600;
            when(h).get(11..16).unwrap_or_default().to_string()
        })
        .collect();
    let total = alerts.len();
    let severe_n: f64 = severe.iter().sum();
    let caption = if total == 0 {
        "No new or returning finding in the last 24 hours.".to_string()
    } else {
        format!(
            "{total} {} in the last 24 hours, {severe_n:.0} of them high or critical.",
            if total == 1 { "alert" } else { "alerts" }
        )
    };
    let rows = labels
        .iter()
        .zip(severe.iter().zip(&other))
        .map(|(l, (a, b))| vec![format!("{l} UTC"), format!("{a:.0}"), format!("{b:.0}")])
        .collect();
    web::Chart {
        svg: aegis_report::charts::columns(
            "Alerts per hour, last 24 hours (UTC)",
            &labels,
            &[
                ("high or critical", "#b91c1c", severe),
                ("medium, low or info", "#0b5e73", other),
            ],
            "alerts",
        ),
        caption,
        columns: vec!["hour".into(), "high or critical".into(), "other".into()],
        rows,
    }
}

pub(super) fn finding_row(f: &TrackedFinding, now: i64) -> web::FindingRow {
    web::FindingRow {
        fingerprint: f.fingerprint.clone(),
        severity: f.finding.severity.as_str().to_string(),
        rule: f.finding.rule.to_string(),
        title: f.finding.title.clone(),
        asset: f.asset.clone(),
        source: f.source.clone(),
        state: if f.accepted_until > now && f.state.is_open() {
            "risk accepted".to_string()
        } else {
            web::plain_state(f.state.as_str()).to_string()
        },
        accepted: if f.accepted_until > now {
            when(f.accepted_until)
        } else {
            String::new()
        },
        owner: f.owner.clone(),
        age: web::ago(f.first_seen, now),
    }
}

// ----------------------------------------------------------------------------------------------- findings

#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct FindingQuery {
    pub(super) asset: String,
    pub(super) source: String,
    pub(super) severity: String,
    pub(super) state: String,
    pub(super) owner: String,
    pub(super) cursor: String,
    pub(super) done: String,
    pub(super) n: Option<u32>,
}

impl FindingQuery {
    /// The store's filter (page size `limit`).
    pub(super) fn filter(&self, limit: i64) -> Result<FindingFilter, String> {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let severity = match some(&self.severity) {
            None => None,
            Some(s) => Some(s.parse::<Severity>().map_err(|_| {
                format!("unknown severity {s:?}: use critical, high, medium, low or info")
            })?),
        };
        Ok(FindingFilter {
            asset: some(&self.asset),
            source: some(&self.source),
            severity,
            state: some(&self.state),
            owner: some(&self.owner),
            limit: Some(limit),
            cursor: some(&self.cursor),
        })
    }

    /// The filter as a query string, without the cursor.
    pub(super) fn query_string(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("asset", &self.asset),
            ("source", &self.source),
            ("severity", &self.severity),
            ("state", &self.state),
            ("owner", &self.owner),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", encode(v)));
            }
        }
        parts.join("&")
    }
}

/// Percent-encode a query value.
pub(super) use crate::util::percent_encode as encode;

/// `GET /findings`.
pub(super) async fn findings(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<FindingQuery>,
) -> Response {
    let v = visitor!(state, headers);
    let filter = match q.filter(50) {
        Ok(f) => f,
        Err(text) => {
            return failure(
                &state,
                &v,
                StatusCode::BAD_REQUEST,
                "That filter does not work",
                text,
            )
        }
    };
    let now = util::now_secs();
    let page = match state.store.list_findings(&filter).await {
        Ok(p) => p,
        Err(aegis_store::Error::Invalid(text)) => {
            return failure(
                &state,
                &v,
                StatusCode::BAD_REQUEST,
                "That filter does not work",
                text,
            )
        }
        Err(e) => return store_failure(&state, &v, e),
    };
    let assets = match state.store.list_assets(None).await {
        Ok(a) => a.into_iter().map(|a| a.name).collect(),
        Err(e) => return store_failure(&state, &v, e),
    };
    let query = q.query_string();
    let next = page
        .next
        .map(|c| format!("{}/findings?{query}&cursor={}", base(&state), encode(&c)))
        .unwrap_or_default();
    let mut chrome = chrome(&state, &v, "findings");
    chrome.notice = match (q.done.as_str(), q.n) {
        ("bulk", Some(n)) => format!("Saved for {n} finding{}.", if n == 1 { "" } else { "s" }),
        (code, _) => notice(code).to_string(),
    };
    let sources = [
        "scan",
        "signature",
        "schema",
        "audit",
        "robustness",
        "privacy",
        "extraction",
        "drift",
        "gateway",
        "extraction_alarm",
        "import",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let page = web::Findings {
        chrome,
        filter: web::FindingFilterView {
            asset: q.asset.clone(),
            source: q.source.clone(),
            severity: q.severity.clone(),
            state: q.state.clone(),
            owner: q.owner.clone(),
        },
        assets,
        sources,
        rows: page.findings.iter().map(|f| finding_row(f, now)).collect(),
        next,
        query,
    };
    super::page(StatusCode::OK, web::render(&page))
}

/// Every rule's documentation: the checks' and the gateway's signals.
pub(super) fn rule_doc(id: &str) -> Option<&'static aegis_core::RuleDoc> {
    crate::signals::catalogue().into_iter().find(|r| r.id == id)
}

/// `AML.T0010` as "MITRE ATLAS AML.T0010", `CWE-502` as itself.
fn reference_label(id: &str) -> String {
    if id.starts_with("AML.") {
        format!("MITRE ATLAS {id}")
    } else {
        id.to_string()
    }
}

fn references(doc: &aegis_core::RuleDoc) -> Vec<(String, String)> {
    let mut refs: Vec<(String, String)> = doc
        .atlas
        .iter()
        .map(|t| {
            let technique = t.split('.').take(2).collect::<Vec<_>>().join(".");
            (
                format!("MITRE ATLAS {t}"),
                format!("https://atlas.mitre.org/techniques/{technique}"),
            )
        })
        .collect();
    refs.extend(doc.cwe.iter().map(|c| {
        (
            format!("CWE-{c}"),
            format!("https://cwe.mitre.org/data/definitions/{c}.html"),
        )
    }));
    refs
}

/// `GET /findings/{fingerprint}`.
pub(super) async fn finding(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(fp): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    let v = visitor!(state, headers);
    let (f, events) = match async {
        Ok::<_, aegis_store::Error>((
            state.store.finding(&fp).await?,
            state.store.finding_events(&fp).await?,
        ))
    }
    .await
    {
        Ok(x) => x,
        Err(e) => return store_failure(&state, &v, e),
    };
    let now = util::now_secs();
    let doc = rule_doc(f.finding.rule.as_str());
    let evidence = aegis_report::evidence_rows(&f.finding.evidence);
    // The finding's own references first, then the rule's that it does not already name.
    let mut refs: Vec<(String, String)> = f
        .finding
        .refs
        .iter()
        .filter(|r| r.url.starts_with("https://") || r.url.starts_with("http://"))
        .map(|r| (reference_label(&r.id), r.url.clone()))
        .collect();
    for (label, href) in doc.map(references).unwrap_or_default() {
        if !refs.iter().any(|(l, _)| *l == label) {
            refs.push((label, href));
        }
    }
    let history = events
        .iter()
        .rev()
        .map(|e| web::EventRow {
            when: when(e.ts),
            actor: e.actor.clone(),
            what: event_words(e),
            comment: e.comment.clone(),
        })
        .collect();
    let mut chrome = chrome(&state, &v, "findings");
    chrome.notice = notice(&d.done).to_string();
    let page = web::FindingDetail {
        chrome,
        row: finding_row(&f, now),
        message: f.finding.message.clone(),
        location: f.finding.location.to_string(),
        evidence,
        why: doc.map(|d| d.why.to_string()).unwrap_or_default(),
        fix: f
            .finding
            .remediation
            .clone()
            .filter(|r| !r.is_empty())
            .or_else(|| doc.map(|d| d.fix.to_string()))
            .unwrap_or_default(),
        refs,
        occurrences: format!(
            "{} {}; first {}, last {}",
            f.occurrences,
            if f.occurrences == 1 { "time" } else { "times" },
            when(f.first_seen),
            when(f.last_seen)
        ),
        history,
        state_value: f.state.as_str().to_string(),
        justification: f.justification.clone(),
        run_href: if f.last_run.is_empty() {
            String::new()
        } else {
            format!("{}/runs/{}", base(&state), f.last_run)
        },
    };
    super::page(StatusCode::OK, web::render(&page))
}

fn event_words(e: &aegis_store::findings::FindingEvent) -> String {
    let to = web::plain_state(&e.to_state);
    match e.action.as_str() {
        "detected" => "found".into(),
        "seen" => "seen again".into(),
        "resolved" => "no longer found: marked fixed".into(),
        "reopened" => "found again after it was fixed".into(),
        "accepted" => "risk accepted".into(),
        "acceptance_expired" => "risk acceptance ended".into(),
        "owner" => "owner changed".into(),
        "triaged" => format!("state changed to: {to}"),
        other => other.replace('_', " "),
    }
}

/// `GET /rules/{id}`: one rule's documentation.
pub(super) async fn rule(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = visitor!(state, headers);
    match rule_doc(&id) {
        Some(doc) => {
            let refs: Vec<String> = references(doc).into_iter().map(|(l, _)| l).collect();
            failure(
                &state,
                &v,
                StatusCode::OK,
                &format!("{}: {}", doc.id, doc.summary),
                format!(
                    "Why it matters: {} What to do: {} {}",
                    doc.why,
                    doc.fix,
                    if refs.is_empty() {
                        String::new()
                    } else {
                        format!("References: {}.", refs.join(", "))
                    }
                ),
            )
        }
        None => failure(
            &state,
            &v,
            StatusCode::NOT_FOUND,
            "No such rule",
            format!("Aegis has no rule {id}."),
        ),
    }
}

// ----------------------------------------------------------------------------------------------- assets

fn check_words(check: &str) -> &'static str {
    match check {
        "scan" => "hidden code in the file",
        "signature" => "a valid signature from a trusted key",
        "schema" => "columns and types as expected",
        "audit" => "poisoned, mislabelled or duplicated rows",
        "robustness" => "answers flipped by small input changes",
        "privacy" => "whether training records can be identified",
        "extraction" => "how easily the model can be copied",
        "drift" => "inputs that changed since the reference",
        _ => "",
    }
}

fn status_tone(status: &str, summary: &str) -> &'static str {
    match status {
        "done" if summary == "no findings" => "good",
        "done" => "warn",
        "failed" => "bad",
        "running" | "queued" => "neutral",
        _ => "neutral",
    }
}

fn asset_row(state: &Shared, a: &Asset, p: Option<&AssetPosture>, now: i64) -> web::AssetRow {
    let check = |name: &str| p.and_then(|p| p.checks.iter().find(|c| c.check.as_str() == name));
    let scan = check("scan");
    let describe = |names: &[&str]| {
        let latest = names
            .iter()
            .filter_map(|n| check(n))
            .filter(|c| c.finished > 0)
            .max_by_key(|c| c.finished);
        match latest {
            Some(c) => format!(
                "{}: {} ({})",
                c.check.as_str(),
                c.summary,
                web::ago(c.finished, now)
            ),
            None if names.iter().any(|n| check(n).is_some()) => "not yet".into(),
            None => "—".into(),
        }
    };
    let served_as = a
        .settings
        .serves_as
        .clone()
        .unwrap_or_else(|| a.name.clone());
    let serving = if a.kind == AssetKind::Model && state.models.names().contains(&served_as) {
        match state.serving.get(&served_as) {
            Some(v) if v.refuse => "withheld: open findings".to_string(),
            Some(v) if v.warning.is_some() => "served, with a findings warning".to_string(),
            _ => "served".to_string(),
        }
    } else {
        "no".to_string()
    };
    web::AssetRow {
        name: a.name.clone(),
        kind: if a.role.is_empty() {
            a.kind.as_str().to_string()
        } else {
            format!("{} ({} data)", a.kind.as_str(), a.role)
        },
        owner: if a.owner.is_empty() {
            "nobody".into()
        } else {
            a.owner.clone()
        },
        version: a
            .latest
            .as_ref()
            .map_or("no file yet".into(), |v| format!("v{}", v.seq)),
        scan: match scan {
            None => "—".into(),
            Some(c) if c.status == "done" && c.summary == "no findings" => "clean".into(),
            Some(c) if c.status == "done" => c.summary.clone(),
            Some(c) => web::plain_status(&c.status).to_string(),
        },
        scan_tone: scan.map_or("neutral", |c| status_tone(&c.status, &c.summary)),
        signature: p.map_or(String::new(), |p| match p.signature.as_str() {
            "verified" => "signed and verified".into(),
            "unsigned" => "not signed".into(),
            "invalid" => "INVALID signature".into(),
            "unknown" => "not checked yet".into(),
            other => other.to_string(),
        }),
        serving,
        assessment: describe(&["robustness", "privacy", "extraction"]),
        audit: describe(&["audit", "schema"]),
        open: p.map_or("none".into(), |p| aegis_store::posture::open_line(&p.open)),
        verdict: p.map_or("unchecked".into(), |p| p.verdict.clone()),
    }
}

/// `GET /assets`.
pub(super) async fn assets(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(d): Query<Done>,
) -> Response {
    let v = visitor!(state, headers);
    let data = async {
        Ok::<_, aegis_store::Error>((
            state.store.list_assets(None).await?,
            state.store.posture(None).await?,
        ))
    }
    .await;
    let (assets, postures) = match data {
        Ok(x) => x,
        Err(e) => return store_failure(&state, &v, e),
    };
    let now = util::now_secs();
    let rows = assets
        .iter()
        .map(|a| asset_row(&state, a, postures.iter().find(|p| p.asset == a.name), now))
        .collect();
    let mut chrome = chrome(&state, &v, "assets");
    chrome.notice = notice(&d.done).to_string();
    super::page(
        StatusCode::OK,
        web::render(&web::Assets {
            chrome,
            rows,
            max_upload_mib: state.config.checks.max_upload_mib,
        }),
    )
}

/// The recent runs of an asset, refreshed every 2 s while a run is running or checks wait (unless `live` is off).
pub(super) fn runs_fragment(
    state: &Shared,
    asset: &str,
    runs: &[Run],
    pending: i64,
    live: bool,
    now: i64,
) -> String {
    let rows: Vec<web::RunRow> = runs
        .iter()
        .map(|r| web::RunRow {
            id: r.id.clone(),
            check: r.kind.as_str().to_string(),
            status: web::plain_status(r.status.as_str()).to_string(),
            tone: status_tone(r.status.as_str(), &r.summary),
            percent: (r.progress.clamp(0.0, 1.0) * 100.0).round() as u32,
            stage: r.stage.clone(),
            started: web::ago(r.started, now),
            summary: if r.error.is_empty() {
                r.summary.clone()
            } else {
                r.error.clone()
            },
            cause: r.cause.clone(),
        })
        .collect();
    let busy = pending > 0 || runs.iter().any(|r| r.status.as_str() == "running");
    web::render(&web::Runs {
        base: base(state),
        asset: asset.to_string(),
        rows,
        pending,
        active: busy && live,
        stopped: busy && !live,
    })
}

/// `GET /assets/{name}`.
pub(super) async fn asset(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(d): Query<Done>,
) -> Response {
    let v = visitor!(state, headers);
    let store = &state.store;
    let data = async {
        let asset = store.asset(&name).await?;
        let versions = store.versions(&asset.id).await?;
        let links = store.links(&asset.id).await?;
        let runs = store.runs(&asset.id, None, 20).await?;
        let posture = store.posture(Some(&asset.id)).await?;
        let pending = store.pending_jobs(&asset.id).await?;
        let datasets = if asset.kind == AssetKind::Model {
            store
                .list_assets(Some(AssetKind::Dataset))
                .await?
                .into_iter()
                .map(|a| a.name)
                .collect()
        } else {
            Vec::new()
        };
        Ok::<_, aegis_store::Error>((asset, versions, links, runs, posture, pending, datasets))
    }
    .await;
    let (asset, versions, links, runs, posture, pending, datasets) = match data {
        Ok(x) => x,
        Err(e) => return store_failure(&state, &v, e),
    };
    let now = util::now_secs();
    let p = posture.first();
    let checks = p
        .map(|p| {
            p.checks
                .iter()
                .map(|c| web::CheckRow {
                    check: c.check.as_str().to_string(),
                    what: check_words(c.check.as_str()).to_string(),
                    status: web::plain_status(&c.status).to_string(),
                    tone: status_tone(&c.status, &c.summary),
                    when: web::ago(c.finished, now),
                    summary: c.summary.clone(),
                    report: if c.run_id.is_empty() {
                        String::new()
                    } else {
                        format!("{}/runs/{}", base(&state), c.run_id)
                    },
                })
                .collect()
        })
        .unwrap_or_default();
    let runs_html = runs_fragment(&state, &asset.name, &runs, pending, d.live != "0", now);
    let mut chrome = chrome(&state, &v, "assets");
    chrome.notice = notice(&d.done).to_string();
    let page = web::AssetDetail {
        chrome,
        row: asset_row(&state, &asset, p, now),
        tags: asset.tags.join(", "),
        links: links
            .iter()
            .map(|(r, a)| (r.as_str().replace('_', " "), a.name.clone()))
            .collect(),
        versions: versions
            .iter()
            .rev()
            .map(|ver| web::VersionRow {
                number: format!("v{}", ver.seq),
                filename: ver.filename.clone(),
                size: size_words(ver.size),
                sha256: ver.sha256.clone(),
                added: when(ver.created),
            })
            .collect(),
        checks,
        runs: runs_html,
        max_upload_mib: state.config.checks.max_upload_mib,
        label: asset.settings.label.clone().unwrap_or_default(),
        datasets,
    };
    super::page(StatusCode::OK, web::render(&page))
}

fn size_words(bytes: u64) -> String {
    match bytes {
        0..=1023 => format!("{bytes} B"),
        1024..=1_048_575 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// `GET /assets/{name}/runs`: the runs fragment htmx refreshes.
pub(super) async fn runs(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let v = visitor!(state, headers);
    let data = async {
        let asset = state.store.asset(&name).await?;
        let runs = state.store.runs(&asset.id, None, 20).await?;
        let pending = state.store.pending_jobs(&asset.id).await?;
        Ok::<_, aegis_store::Error>((asset, runs, pending))
    }
    .await;
    match data {
        Ok((asset, runs, pending)) => {
            let html = runs_fragment(&state, &asset.name, &runs, pending, true, util::now_secs());
            super::page(StatusCode::OK, html)
        }
        Err(e) => store_failure(&state, &v, e),
    }
}

/// `GET /runs/{id}`: a run's report, as the same HTML `--format html` writes (its stylesheet served as a file).
pub(super) async fn run_report(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let v = visitor!(state, headers);
    let run = match state.store.run(&id, true).await {
        Ok(r) => r,
        Err(e) => return store_failure(&state, &v, e),
    };
    let report = run
        .report
        .clone()
        .and_then(|r| serde_json::from_value::<aegis_core::Report>(r).ok());
    let Some(report) = report else {
        return failure(
            &state,
            &v,
            StatusCode::OK,
            &format!(
                "{} check: {}",
                run.kind.as_str(),
                web::plain_status(run.status.as_str())
            ),
            if run.error.is_empty() {
                format!("This run has no report yet. {}", run.summary)
            } else {
                run.error.clone()
            },
        );
    };
    let rules = crate::signals::catalogue();
    let html = aegis_report::html_linked(
        &report,
        &rules,
        &format!("{}/static/report.css", base(&state)),
    );
    // The way back to the console, and a policy stricter than the console's: a report (which may have been
    // imported) runs no script at all and submits no form.
    let html = html.replacen(
        "<body>\n",
        &format!(
            "<body>\n<p><a href=\"{}/assets\">← Back to the console</a></p>\n",
            base(&state)
        ),
        1,
    );
    let mut response = super::page(StatusCode::OK, html);
    response.headers_mut().insert(
        axum::http::header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; \
             frame-ancestors 'none'; form-action 'none'",
        ),
    );
    response
}
