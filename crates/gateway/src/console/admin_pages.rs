//! The pages that run the gateway rather than the models: users and API keys, the audit log with its chain
//! verification and export, and the settings (notification channels, schedules, limits).

use aegis_web as web;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::views::{base, chrome, encode, failure, notice, store_failure, Done};
use crate::state::Shared;
use crate::util;
use aegis_store::posture::when;

// ----------------------------------------------------------------------------------------------- gateway

/// `GET /gateway` (admins and operators: keys; admins: people).
pub(super) async fn gateway(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(d): Query<Done>,
) -> Response {
    let v = visitor!(state, headers);
    if !v.can_change() {
        return failure(
            &state,
            &v,
            StatusCode::FORBIDDEN,
            "Not for your role",
            "Only administrators and operators manage API keys; only administrators manage people."
                .into(),
        );
    }
    let mut chrome = chrome(&state, &v, "gateway");
    chrome.notice = notice(&d.done).to_string();
    let shown = super::once::peek(&state.db, &v.principal.session_id, util::now_secs()).await;
    let had_secret = shown.key.is_some() || shown.enrolment.is_some();
    match gateway_page(&state, chrome, shown).await {
        Ok(p) => {
            let html = web::render(&p);
            if had_secret {
                super::once::forget(&state.db, &v.principal.session_id).await;
            }
            super::page(StatusCode::OK, html)
        }
        Err(e) => failure(
            &state,
            &v,
            StatusCode::INTERNAL_SERVER_ERROR,
            "This page could not be read",
            e.to_string(),
        ),
    }
}

pub(super) async fn gateway_page(
    state: &Shared,
    chrome: web::Chrome,
    shown: super::once::Shown,
) -> crate::Result<web::Gateway> {
    let now = util::now_secs();
    let users = if chrome.is_admin {
        crate::identity::list_users(&state.db)
            .await?
            .into_iter()
            .map(|u| web::UserRow {
                name: u.username.clone(),
                role: u.role.to_string(),
                mfa: if u.totp_enabled {
                    "enrolled".into()
                } else {
                    "not enrolled".into()
                },
                state: if u.disabled {
                    "disabled".into()
                } else if u.locked_until > now {
                    "locked for now (too many failed sign-ins)".into()
                } else {
                    "active".into()
                },
                disabled: u.disabled,
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut keys = Vec::new();
    for k in crate::keys::list_keys(&state.db).await? {
        let used = crate::limits::usage(&state.db, &k.id, now as f64)
            .await
            .ok();
        keys.push({
            let active = !k.revoked && !k.is_expired(now);
            let models = if k.models.iter().any(|m| m == "*") {
                "every model".to_string()
            } else {
                k.models.join(", ")
            };
            let routes = if k.routes.iter().any(|r| r == "*") {
                String::new()
            } else {
                format!(" (routes: {})", k.routes.join(", "))
            };
            let budget = |n: i64, per: &str| {
                if n > 0 {
                    format!("{n} per {per}")
                } else {
                    format!("no {per}ly cap")
                }
            };
            web::KeyRow {
                id: k.id.clone(),
                name: k.name.clone(),
                scopes: format!("{models}{routes}"),
                usage: format!(
                    "{} today, {} this month · at most {} requests/min, bursts of {}; {}; {}",
                    used.as_ref().map_or(0, |u| u.day_used),
                    used.as_ref().map_or(0, |u| u.month_used),
                    (k.rate_per_sec * 60.0).round(),
                    k.burst,
                    budget(k.daily_budget, "day"),
                    budget(k.monthly_budget, "month")
                ),
                state: if k.revoked {
                    match &k.replaced_by {
                        Some(r) => format!("replaced by {r}"),
                        None => "revoked".into(),
                    }
                } else if k.is_expired(now) {
                    "expired".into()
                } else if k.expires > 0 {
                    format!("active until {}", when(k.expires))
                } else {
                    "active".into()
                },
                active,
            }
        });
    }
    let mut models: Vec<Vec<String>> = state
        .models
        .names()
        .into_iter()
        .map(|name| {
            let mc = state.config.models.iter().find(|m| m.name == name);
            let policy = match state.serving.get(&name) {
                Some(v) if v.refuse => {
                    "withheld now: it has open findings at the refusal level".to_string()
                }
                Some(v) if v.warning.is_some() => {
                    "served; answers carry a findings warning".to_string()
                }
                _ => "served".to_string(),
            };
            let levels = mc.map_or(String::new(), |m| {
                format!(
                    " · warns from {}, withholds from {}",
                    m.warn_findings.map_or("never".into(), |s| s.to_string()),
                    m.refuse_findings.map_or("never".into(), |s| s.to_string())
                )
            });
            vec![name, "local model".into(), format!("{policy}{levels}")]
        })
        .collect();
    models.extend(state.upstreams.list().into_iter().map(|u| {
        vec![
            u.name.clone(),
            "upstream (proxied)".into(),
            format!("to {}", u.url),
        ]
    }));
    models.sort();
    Ok(web::Gateway {
        chrome,
        users,
        keys,
        secret: shown.key,
        enrolment: shown.enrolment,
        default_expiry_days: state.config.defaults.expires_days,
        models,
        roles: ["operator", "auditor", "admin", "client"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    })
}

// ----------------------------------------------------------------------------------------------- audit

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct AuditQuery {
    actor: String,
    kind: String,
    decision: String,
    before: i64,
}

impl AuditQuery {
    fn keeps(&self, e: &crate::audit_log::AuditEvent) -> bool {
        let has = |field: &str, want: &str| {
            want.is_empty() || field.to_lowercase().contains(&want.trim().to_lowercase())
        };
        has(&e.actor, &self.actor) && has(&e.kind, &self.kind) && has(&e.decision, &self.decision)
    }

    fn query_string(&self) -> String {
        [
            ("actor", &self.actor),
            ("kind", &self.kind),
            ("decision", &self.decision),
        ]
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// Up to `want` records matching `q`, newest first, and the sequence number to continue below.
async fn audit_records(
    state: &Shared,
    q: &AuditQuery,
    want: usize,
) -> crate::Result<(Vec<crate::audit_log::AuditRecord>, i64)> {
    let mut before = if q.before > 0 { q.before } else { i64::MAX };
    let mut out = Vec::new();
    // Read pages until enough match or 20 000 records were scanned (a filter on a huge log stays bounded).
    for _ in 0..20 {
        let page = crate::audit_log::list_newest(&state.db, 0, before, 1000).await?;
        let Some(last) = page.last() else {
            return Ok((out, 0));
        };
        before = last.seq;
        for r in page {
            if q.keeps(&r.event) {
                out.push(r);
                if out.len() >= want {
                    let next = out.last().map_or(0, |r| r.seq);
                    return Ok((out, next));
                }
            }
        }
    }
    Ok((out, before))
}

/// `GET /audit`.
pub(super) async fn audit(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let v = visitor!(state, headers);
    if !v.can_audit() {
        return failure(
            &state,
            &v,
            StatusCode::FORBIDDEN,
            "Not for your role",
            "Only administrators and auditors read the audit log.".into(),
        );
    }
    // Verifying reads the whole chain: on the first page only (older pages were verified with it).
    let (verified, text) = if q.before > 0 {
        (
            true,
            "Older records. The chain is verified on the first page.".to_string(),
        )
    } else {
        let verification = crate::audit_log::verify(&state.db).await;
        if let Ok(ver) = &verification {
            crate::signals::audit_chain(&state.store, ver).await;
        }
        match &verification {
            Ok(ver) => match &ver.problem {
                None => (
                    true,
                    format!(
                        "Chain verified: OK ({} records, none changed or missing).",
                        ver.records
                    ),
                ),
                Some(p) => (
                    false,
                    format!(
                        "Chain BROKEN at record {}: {}. Somebody or something changed the log; keep a copy and investigate.",
                        p.seq, p.reason
                    ),
                ),
            },
            Err(e) => (false, format!("The chain could not be verified: {e}")),
        }
    };
    let (records, next) = match audit_records(&state, &q, 100).await {
        Ok(x) => x,
        Err(e) => {
            return failure(
                &state,
                &v,
                StatusCode::INTERNAL_SERVER_ERROR,
                "The audit log could not be read",
                e.to_string(),
            )
        }
    };
    let rows = records
        .iter()
        .map(|r| {
            let e = &r.event;
            vec![
                r.seq.to_string(),
                when(r.ts_ms / 1000),
                if e.actor.is_empty() {
                    e.key_id.clone()
                } else {
                    e.actor.clone()
                },
                e.kind.clone(),
                e.route.clone(),
                e.decision.clone(),
                e.status.to_string(),
                e.detail.clone(),
            ]
        })
        .collect();
    let query = q.query_string();
    let older = if next > 1 {
        format!("{}/audit?{query}&before={next}", base(&state))
    } else {
        String::new()
    };
    super::page(
        StatusCode::OK,
        web::render(&web::Audit {
            chrome: chrome(&state, &v, "audit"),
            verified,
            verification: text,
            actor: q.actor.clone(),
            kind: q.kind.clone(),
            decision: q.decision.clone(),
            rows,
            older,
            query,
        }),
    )
}

/// `GET /audit/export`: the matching records as JSON Lines (up to 10 000), with their hashes.
pub(super) async fn audit_export(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let v = visitor!(state, headers);
    if !v.can_audit() {
        return failure(
            &state,
            &v,
            StatusCode::FORBIDDEN,
            "Not for your role",
            "Only administrators and auditors read the audit log.".into(),
        );
    }
    match audit_records(&state, &q, 10_000).await {
        Ok((records, _)) => {
            let mut body = String::new();
            for r in &records {
                body.push_str(&serde_json::to_string(r).unwrap_or_default());
                body.push('\n');
            }
            (
                [
                    (header::CONTENT_TYPE, "application/x-ndjson"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"aegis-audit.jsonl\"",
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => failure(
            &state,
            &v,
            StatusCode::INTERNAL_SERVER_ERROR,
            "The audit log could not be read",
            e.to_string(),
        ),
    }
}

// ----------------------------------------------------------------------------------------------- settings

/// `GET /settings`.
pub(super) async fn settings(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(d): Query<Done>,
) -> Response {
    let v = visitor!(state, headers);
    let now = util::now_secs();
    let store = &state.store;
    let data = async {
        let channels = store.channels().await?;
        let deliveries = store.deliveries(None, 20).await?;
        let mut schedules = Vec::new();
        for a in store.list_assets(None).await? {
            for s in store.schedules(&a.id).await? {
                schedules.push(vec![
                    a.name.clone(),
                    s.check.as_str().to_string(),
                    if !s.enabled {
                        "off".into()
                    } else if !s.cron.is_empty() {
                        format!("cron {}", s.cron)
                    } else if s.every_secs > 0 {
                        every_words(s.every_secs)
                    } else {
                        "on new versions only".into()
                    },
                    if s.enabled && s.next_due > 0 {
                        when(s.next_due)
                    } else {
                        "—".into()
                    },
                ]);
            }
        }
        Ok::<_, aegis_store::Error>((channels, deliveries, schedules))
    }
    .await;
    let (channels, deliveries, schedules) = match data {
        Ok(x) => x,
        Err(e) => return store_failure(&state, &v, e),
    };
    let channel_rows = channels
        .iter()
        .map(|c| {
            let c = c.redacted();
            let (kind, target) = match &c.transport {
                aegis_store::notify::Transport::Webhook(w) => ("webhook", w.url.clone()),
                aegis_store::notify::Transport::Email(e) => ("e-mail", e.to.join(", ")),
            };
            vec![
                c.name.clone(),
                kind.to_string(),
                target,
                c.min_severity.to_string(),
                if c.tags.is_empty() {
                    "any".into()
                } else {
                    c.tags.join(", ")
                },
            ]
        })
        .collect();
    let deliveries = deliveries
        .iter()
        .map(|d| {
            vec![
                web::ago(d.created, now),
                d.channel.clone(),
                format!("{} event(s)", d.events),
                d.state.clone(),
                d.last_error.clone(),
            ]
        })
        .collect();
    let c = &state.config;
    let retention = vec![
        (
            "Largest upload".to_string(),
            format!("{} MiB", c.checks.max_upload_mib),
        ),
        (
            "Rows read per dataset check".to_string(),
            c.checks.max_rows.to_string(),
        ),
        (
            "Checks run at once".to_string(),
            c.checks.concurrency.to_string(),
        ),
        (
            "Stored files encrypted".to_string(),
            if c.checks.encrypt_objects {
                "yes (age)".into()
            } else {
                "no".into()
            },
        ),
        (
            "Sessions last".to_string(),
            duration_words(c.server.session_ttl_secs),
        ),
        (
            "Audit log".to_string(),
            "kept forever (append-only, hash-chained)".into(),
        ),
        (
            "Findings and runs".to_string(),
            "kept forever; resolved findings stay with their history".into(),
        ),
    ];
    let mut chrome = chrome(&state, &v, "settings");
    chrome.notice = notice(&d.done).to_string();
    super::page(
        StatusCode::OK,
        web::render(&web::Settings {
            chrome,
            channels: channel_rows,
            channel_names: channels.iter().map(|c| c.name.clone()).collect(),
            schedules,
            retention,
            deliveries,
        }),
    )
}

/// A duration as people say it: `1 day`, `8 hours`, `90 s`.
fn duration_words(secs: i64) -> String {
    let unit = |n: i64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    match secs {
        s if s > 0 && s % 86_400 == 0 => unit(s / 86_400, "day"),
        s if s > 0 && s % 3600 == 0 => unit(s / 3600, "hour"),
        s if s > 0 && s % 60 == 0 => unit(s / 60, "minute"),
        s => format!("{s} s"),
    }
}

/// A period as people say it: `every day`, `every 6 hours`.
fn every_words(secs: i64) -> String {
    let d = duration_words(secs);
    match d.strip_prefix("1 ") {
        Some(one) => format!("every {one}"),
        None => format!("every {d}"),
    }
}
