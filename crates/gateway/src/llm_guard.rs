//! The LLM guard on OpenAI-compatible upstreams: every prompt is screened for injection and jailbreaks, personal
//! data and secrets are found (and redacted or refused) in prompts and answers, and a per-request canary in the
//! system prompt shows when an answer leaks it, streamed or not.
//!
//! The screening itself is `aegis_guard` (the same code as `aegis llm screen`); this module holds the
//! configuration (`[upstream.llm_guard]`), decides per request with the mode of the model and the key, writes
//! the verdict into the audit record (score, layer, rules; the prompt only when `audit_prompts` is on), counts it
//! in the metrics, and records findings (at most one a minute per rule, key and model, so an attack does not
//! flood the store). The default for an `openai` upstream is on: injections blocked, answers' secrets redacted,
//! canaries cut; `mode = "shadow"` or `"alert"` lets an operator calibrate first.

use std::sync::Arc;

use aegis_core::{Finding, Location};
use aegis_guard::canary::{Canary, Leak};
use aegis_guard::openai::{self, AnswerPolicy, Event, StreamFilter};
use aegis_guard::pii::{self, Action, Kind};
use aegis_guard::Verdict;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use crate::audit_trail::AuditCtx;
use crate::http_error::ApiError;
use crate::keys::ApiKey;
use crate::state::Shared;

pub use crate::llm_policy::{
    CanaryMode, GuardMode, LlmGuardConfig, LlmGuards, PiiMode, UpstreamGuard,
};

/// What the guard decided about a request that goes on.
pub(crate) struct Passed {
    /// The body to send (rewritten when a canary was added or data redacted).
    pub body: Bytes,
    /// What to look for in the answer.
    pub answer: Option<AnswerPolicy>,
}

/// Screen a request for `model` on `guard`'s upstream: refuse it, or return the body to send and what to look
/// for in the answer. The verdict goes into `ctx` (the audit record).
pub(crate) async fn screen_request(
    state: &Shared,
    guard: &Arc<UpstreamGuard>,
    key: &ApiKey,
    model: &str,
    route: &str,
    body: Bytes,
    ctx: &mut AuditCtx,
) -> Result<Passed, ApiError> {
    let mode = guard.mode_for(model, &key.id, &key.name);
    // What the guard cannot read, it does not let through: the upstream may read it differently.
    let value = serde_json::from_slice::<Value>(&body).map_err(|e| {
        ApiError::bad_request(
            "malformed",
            format!("the request body is not JSON the LLM guard can read ({e}); send plain JSON"),
        )
        .audited(ctx.clone())
    })?;
    if mode != GuardMode::Off && openai::has_token_prompts(&value) {
        return Err(ApiError::bad_request(
            "unscreenable",
            "prompts given as token ids cannot be screened by the gateway's LLM policy; send text",
        )
        .audited(ctx.clone()));
    }
    let up = guard.upstream.as_str();
    let prompt_action = guard.config.pii_prompts.action();
    // The learned layer costs milliseconds of CPU per message: off the async threads.
    let Inspection {
        mut value,
        verdict,
        flagged_text,
        found,
        mut changed,
    } = {
        // Screening is CPU work (milliseconds with the learned layer): off the async threads.
        let guard = Arc::clone(guard);
        tokio::task::spawn_blocking(move || inspect(&guard, mode, value))
            .await
            .map_err(|_| ApiError::internal(&crate::Error::Invalid("screening failed".into())))?
    };
    let mut detail = Vec::new();
    if let Some((v, role)) = &verdict {
        let outcome = if v.flagged {
            "flagged"
        } else if v.layer == aegis_guard::Layer::AllowList {
            "allowed"
        } else {
            "clean"
        };
        state.metrics.add_counter(
            "aegis_llm_guard_verdicts_total",
            "Prompts screened by the LLM guard, by upstream, mode and outcome (clean, flagged, allowed).",
            &[("upstream", up), ("mode", mode.as_str()), ("outcome", outcome)],
            1.0,
        );
        detail.push(format!(
            "llm_guard mode={} score={:.2} layer={} flagged={}",
            mode.as_str(),
            v.score,
            v.layer.as_str(),
            v.flagged
        ));
        if !v.hits.is_empty() {
            detail.push(format!("rules={} role={role}", v.rule_ids()));
        }
        if v.flagged && guard.config.audit_prompts {
            detail.push(format!("prompt={}", Value::String(flagged_text.clone())));
        }
    }
    if !found.is_empty() {
        let kinds = kind_list(&found);
        for k in &found {
            state.metrics.add_counter(
                "aegis_llm_pii_total",
                "Personal data and secrets the LLM guard found, by upstream, direction and kind.",
                &[
                    ("upstream", up),
                    ("direction", "prompt"),
                    ("kind", k.as_str()),
                ],
                1.0,
            );
        }
        detail.push(format!("pii_prompt={kinds}"));
    }
    ctx.detail = join_detail(&ctx.detail, &detail);

    if let Some((v, role)) = verdict.filter(|(v, _)| v.flagged) {
        if matches!(mode, GuardMode::Alert | GuardMode::Block) {
            let finding = Finding::new(
                &crate::signals::PROMPT_INJECTION,
                Location::Route {
                    route: route.to_string(),
                    key: Some(key.id.clone()),
                },
                format!(
                    "a {role} message to {model} through key {} (owner {}) scored {:.2} ({})",
                    key.id,
                    key.owner,
                    v.score,
                    v.rule_ids()
                ),
            )
            .with_evidence(json!({
                "key_id": key.id, "owner": key.owner, "model": model, "role": role, "score": v.score,
                "layer": v.layer.as_str(), "rules": v.hits.iter().map(|h| h.rule).collect::<Vec<_>>(),
                "views": v.hits.iter().map(|h| h.channel.as_str()).collect::<Vec<_>>(),
                "mode": mode.as_str(),
            }));
            record(state, up, "llm_injection", &key.id, finding);
        }
        if mode == GuardMode::Block {
            return Err(refuse(
                ctx,
                "prompt_injection",
                format!(
                    "The gateway's LLM policy for upstream `{up}` blocked this request: a {role} message reads as prompt \
                     injection (score {:.2} ≥ {:.2}; {}). If this is a mistake, ask the operator to allow the \
                     phrase (llm_guard.allow_phrases) or to review the threshold.",
                    v.score,
                    guard.screener.threshold(),
                    match v.hits.first() {
                        Some(h) => format!("rules {}, matching \"{}\"", v.rule_ids(), h.excerpt),
                        None => "the learned layer".to_string(),
                    }
                ),
            ));
        }
    }
    if !found.is_empty() && mode != GuardMode::Off {
        record_pii(
            state, up, &key.id, &key.owner, model, route, "prompt", &found,
        );
    }
    if !found.is_empty() && prompt_action == Some(Action::Block) {
        return Err(refuse(
            ctx,
            "sensitive_data",
            format!(
                "The gateway's LLM policy for upstream `{up}` refuses prompts that carry {} (llm_guard.pii_prompts = \
                 \"block\"). Remove it from the prompt and try again.",
                kind_list(&found)
            ),
        ));
    }

    let mut canary = None;
    if guard.config.canary != CanaryMode::Off && route == "/v1/chat/completions" {
        let mut bytes = [0u8; 10];
        if getrandom::fill(&mut bytes).is_ok() {
            let c = Canary::from_random(bytes);
            if openai::add_canary(&mut value, &c) {
                changed = true;
                canary = Some(c);
            }
        }
    }
    let answer_action = guard.config.pii_answers.action();
    let answer = (route != "/v1/embeddings")
        .then(|| AnswerPolicy {
            canary,
            cut_on_canary: guard.config.canary == CanaryMode::Cut,
            pii: if answer_action.is_some() {
                guard.kinds.clone()
            } else {
                Vec::new()
            },
            pii_action: answer_action.unwrap_or(Action::Log),
        })
        .filter(AnswerPolicy::is_active);
    let body = if changed {
        Bytes::from(serde_json::to_vec(&value).unwrap_or_else(|_| body.to_vec()))
    } else {
        body
    };
    Ok(Passed { body, answer })
}

/// What screening a request body found.
struct Inspection {
    value: Value,
    /// The worst verdict and the role of the message it came from.
    verdict: Option<(Verdict, String)>,
    /// The first 2,000 characters of that message (for `audit_prompts`).
    flagged_text: String,
    /// Kinds of personal data and secrets in the prompts.
    found: Vec<Kind>,
    /// Whether `value` was rewritten (redactions).
    changed: bool,
}

/// Screen every text of a request body (`mode` off: only personal data), redacting as the policy says.
fn inspect(guard: &UpstreamGuard, mode: GuardMode, mut value: Value) -> Inspection {
    let mut verdict: Option<(Verdict, String)> = None;
    let mut flagged_text = String::new();
    let mut found: Vec<Kind> = Vec::new();
    let mut changed = false;
    let prompt_action = guard.config.pii_prompts.action();
    openai::visit_request(&mut value, &mut |role, text| {
        if mode != GuardMode::Off {
            let v = guard.screener.screen(text, openai::role_source(role));
            let worse = verdict.as_ref().is_none_or(|(w, _)| {
                v.score > w.score
                    || (v.score == w.score
                        && w.layer == aegis_guard::Layer::None
                        && v.layer != w.layer)
            });
            if worse {
                if v.flagged && guard.config.audit_prompts {
                    flagged_text = text.chars().take(2000).collect();
                }
                verdict = Some((v, role.to_string()));
            }
        }
        if let Some(action) = prompt_action {
            let spans = pii::find(text, &guard.kinds);
            if !spans.is_empty() {
                found.extend(spans.iter().map(|s| s.kind));
                if matches!(action, Action::Redact | Action::Mask) {
                    *text = pii::rewrite(text, &spans, action);
                    changed = true;
                }
            }
        }
    });
    Inspection {
        value,
        verdict,
        flagged_text,
        found,
        changed,
    }
}

fn refuse(ctx: &AuditCtx, code: &'static str, message: String) -> ApiError {
    let mut ctx = ctx.clone();
    ctx.decision = format!("denied:{code}");
    ApiError::forbidden(code, message).audited(ctx)
}

fn join_detail(existing: &str, parts: &[String]) -> String {
    let mut all: Vec<&str> = Vec::new();
    if !existing.is_empty() {
        all.push(existing);
    }
    all.extend(parts.iter().map(String::as_str));
    all.join(" ")
}

fn kind_list(kinds: &[Kind]) -> String {
    let mut names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names.join(",")
}

/// Record a finding in the background, at most one a minute per rule, upstream and key.
fn record(state: &Shared, upstream: &str, source: &'static str, key_id: &str, finding: Finding) {
    if !state
        .llm_guards
        // Not the model: with `models = ["*"]` the client names it, and could use that to get past the limit.
        .may_record(format!("{source}\u{0}{upstream}\u{0}{key_id}"))
    {
        return;
    }
    let state = state.clone();
    let upstream = upstream.to_string();
    tokio::spawn(async move {
        crate::signals::llm_guard(&state.store, &upstream, source, finding).await;
    });
}

#[allow(clippy::too_many_arguments)]
fn record_pii(
    state: &Shared,
    upstream: &str,
    key_id: &str,
    owner: &str,
    model: &str,
    route: &str,
    direction: &str,
    kinds: &[Kind],
) {
    let list = kind_list(kinds);
    let finding = Finding::new(
        &crate::signals::SENSITIVE_DATA,
        Location::Route {
            route: format!("{route} ({direction})"),
            key: Some(key_id.to_string()),
        },
        format!("{direction} of {model} through key {key_id} (owner {owner}) carried {list}"),
    )
    .with_evidence(json!({
        "key_id": key_id, "owner": owner, "model": model, "direction": direction,
        "kinds": list.split(',').collect::<Vec<_>>(),
        "secrets": kinds.iter().any(|k| k.is_secret()),
    }));
    record(state, upstream, "llm_pii", key_id, finding);
}

/// Who an answer is for, to report what is found in it.
#[derive(Clone)]
pub(crate) struct AnswerContext {
    pub state: Shared,
    pub upstream: String,
    pub model: String,
    pub key_id: String,
    pub owner: String,
    pub route: &'static str,
    /// Whether a leaked canary cuts the answer.
    pub cut_on_canary: bool,
}

impl AnswerContext {
    fn report(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut kinds = Vec::new();
        for e in events {
            match e {
                Event::Pii(k) => {
                    self.state.metrics.add_counter(
                        "aegis_llm_pii_total",
                        "Personal data and secrets the LLM guard found, by upstream, direction and kind.",
                        &[("upstream", &self.upstream), ("direction", "answer"), ("kind", k.as_str())],
                        1.0,
                    );
                    kinds.push(k);
                }
                Event::Canary(how) => self.canary_leak(how),
            }
        }
        if !kinds.is_empty() {
            self.audit(
                "answer_pii",
                format!(
                    "llm_guard upstream={} pii_answer={}",
                    self.upstream,
                    kind_list(&kinds)
                ),
            );
            record_pii(
                &self.state,
                &self.upstream,
                &self.key_id,
                &self.owner,
                &self.model,
                self.route,
                "answer",
                &kinds,
            );
        }
    }

    /// An audit record for what an answer carried (the request's own record was written when it was answered).
    fn audit(&self, decision: &str, detail: String) {
        let state = self.state.clone();
        let event = crate::audit_log::AuditEvent {
            kind: "llm_guard".into(),
            actor: self.owner.clone(),
            key_id: self.key_id.clone(),
            model: self.model.clone(),
            route: self.route.to_string(),
            decision: decision.into(),
            detail,
            ..Default::default()
        };
        tokio::spawn(async move { state.audit.record(event).await });
    }

    fn canary_leak(&self, how: Leak) {
        let how_name = match how {
            Leak::Exact => "exact",
            Leak::Transformed => "transformed",
            Leak::Reversed => "reversed",
            Leak::Encoded => "encoded",
        };
        self.state.metrics.add_counter(
            "aegis_llm_canary_leaks_total",
            "Answers that contained the request's system-prompt canary, by upstream and how it was written.",
            &[("upstream", &self.upstream), ("how", how_name)],
            1.0,
        );
        self.audit(
            "canary_leak",
            format!(
                "llm_guard upstream={} canary={how_name} cut={}",
                self.upstream, self.cut_on_canary
            ),
        );
        crate::log::emit(
            crate::log::Level::Warn,
            "llm_canary_leak",
            &[
                ("upstream", self.upstream.as_str().into()),
                ("model", self.model.as_str().into()),
                ("key_id", self.key_id.as_str().into()),
                ("how", how_name.into()),
            ],
        );
        let finding = Finding::new(
            &crate::signals::CANARY_LEAK,
            Location::Route {
                route: self.route.to_string(),
                key: Some(self.key_id.clone()),
            },
            format!(
                "an answer of {} to key {} (owner {}) contained the system-prompt canary ({how_name})",
                self.model, self.key_id, self.owner
            ),
        )
        .with_evidence(json!({
            "key_id": self.key_id, "owner": self.owner, "model": self.model, "how": how_name,
        }));
        record(
            &self.state,
            &self.upstream,
            "llm_canary",
            &self.key_id,
            finding,
        );
    }
}

/// Largest whole (not streamed) answer the guard reads, in bytes; a larger one is cut off with an error.
const MAX_ANSWER_BYTES: usize = 32 << 20;

/// Apply `policy` to the upstream's answer: a streamed one (`text/event-stream`) is filtered as it passes, a
/// whole JSON one is read, filtered and re-encoded. Anything else (an error page, an encoded body) passes as is.
pub(crate) async fn filter_response(
    response: Response,
    policy: AnswerPolicy,
    who: AnswerContext,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity");
    if !parts.status.is_success() {
        return Response::from_parts(parts, body);
    }
    if encoded {
        // Asked for an unencoded answer (Accept-Encoding removed), the upstream compressed it anyway: the guard
        // cannot read it, so it does not pass it on.
        return upstream_unreadable("the upstream compressed its answer although asked not to");
    }
    if content_type.starts_with("text/event-stream") {
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, stream_body(body, policy, who));
    }
    if !content_type.contains("json") {
        return Response::from_parts(parts, body);
    }
    let bytes = match http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return axum::response::IntoResponse::into_response(ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "upstream",
                "the upstream's answer could not be read",
            ));
        }
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return upstream_unreadable("the upstream's JSON answer does not parse");
    };
    let events = openai::filter_answer(&mut value, &policy);
    if events.is_empty() {
        return Response::from_parts(parts, Body::from(bytes));
    }
    who.report(events);
    let out = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
    Response::from_parts(parts, Body::from(out))
}

/// 502 for an answer the guard cannot read (never passed on unread).
fn upstream_unreadable(why: &str) -> Response {
    crate::log::emit(
        crate::log::Level::Warn,
        "llm_answer_unreadable",
        &[("cause", why.into())],
    );
    axum::response::IntoResponse::into_response(ApiError::new(
        axum::http::StatusCode::BAD_GATEWAY,
        "upstream",
        "the upstream's answer could not be checked by the gateway's LLM policy",
    ))
}

/// A streamed answer passed through [`StreamFilter`].
fn stream_body(body: Body, policy: AnswerPolicy, who: AnswerContext) -> Body {
    struct Run {
        inner: axum::body::BodyDataStream,
        filter: StreamFilter,
        who: AnswerContext,
        done: bool,
    }
    let run = Run {
        inner: body.into_data_stream(),
        filter: StreamFilter::new(policy),
        who,
        done: false,
    };
    let stream = futures_util::stream::unfold(run, |mut run| async move {
        loop {
            if run.done {
                return None;
            }
            let out = match run.inner.next().await {
                Some(Ok(bytes)) => run.filter.push(&bytes),
                Some(Err(e)) => {
                    run.done = true;
                    run.who.report(run.filter.take_events());
                    return Some((Err(e), run));
                }
                None => {
                    run.done = true;
                    run.filter.finish()
                }
            };
            run.who.report(run.filter.take_events());
            if run.filter.stopped() {
                run.done = true;
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), run));
            }
        }
    });
    Body::from_stream(stream)
}

/// Headers for the request to a guarded upstream: without `Accept-Encoding`, so answers come unencoded and can
/// be read.
pub(crate) fn upstream_headers(headers: &axum::http::HeaderMap) -> axum::http::HeaderMap {
    let mut h = headers.clone();
    h.remove(header::ACCEPT_ENCODING);
    h
}
