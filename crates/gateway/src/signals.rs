//! Live signals as findings: what the gateway notices while serving (a drift window that alerts, a key whose
//! queries raise the model-extraction alarm) is recorded in the findings store against the served model's asset,
//! so it is triaged and notified like a check's finding instead of ending as a log line.
//!
//! Drift findings are per feature (and `prediction`), so 500 drifting windows are one finding seen 500 times,
//! notified once; a window that no longer drifts resolves them. A window is also a `drift` run of the model (at
//! most one an hour unless the verdict changes), which the posture shows. An extraction alarm is per API key and model.
//! Sign-in lockouts and a broken audit chain are recorded against the gateway's own asset, `aegis-gateway`.

use aegis_core::{Finding, Location, RuleDoc, Severity};
use aegis_monitor::drift::{COLUMN_DRIFT, PREDICTION_DRIFT};
use aegis_monitor::window::WindowReport;
use serde_json::json;

use crate::sinks::Sinks;

/// A key's queries look like a model-extraction attack (PRADA alarm).
pub const EXTRACTION_ALARM: RuleDoc = RuleDoc {
    id: "AEG-GW-001",
    name: "extraction-alarm",
    severity: Severity::High,
    summary: "An API key's queries raised the model-extraction (PRADA) alarm.",
    why: "Queries whose distances to each other stop looking like natural traffic are what a model-stealing \
          attack sends: a competitor or fraudster copying the model, or building a white-box stand-in to craft \
          evasions against it.",
    fix: "Find out who holds the key (its owner in `aegis key list`); throttle or revoke it if the traffic is not \
          explained, and serve the model with a coarser output policy. Clear the alarm with `DELETE \
          /admin/extraction/{key_id}` once resolved.",
    atlas: &["AML.T0024.002"],
    cwe: &[200],
};

/// Sign-ins were locked out after repeated failures.
pub const LOGIN_LOCKOUT: RuleDoc = RuleDoc {
    id: "AEG-GW-002",
    name: "login-lockout",
    severity: Severity::Medium,
    summary: "Sign-ins to the gateway were locked out after repeated failed attempts.",
    why: "Repeated wrong passwords or second factors against the console and admin API are what password \
          guessing and credential stuffing look like; the lockout slows them down, but someone is trying.",
    fix: "Check the evidence for the account and source address; if nobody on the team mistyped, block the \
          address upstream, make sure every admin has MFA, and rotate the account's password.",
    atlas: &[],
    cwe: &[307],
};

/// The audit chain failed verification.
pub const AUDIT_CHAIN_BROKEN: RuleDoc = RuleDoc {
    id: "AEG-GW-003",
    name: "audit-chain-broken",
    severity: Severity::Critical,
    summary: "The gateway's hash-chained audit log failed verification: a record was edited, removed or reordered.",
    why: "The audit log is the record of who used and changed what; a chain that no longer verifies means \
          someone with database access rewrote history, or the database was damaged.",
    fix: "Keep the database as it is for investigation; compare with a backup and with the head hash copied \
          earlier (`aegis audit-log verify` prints it); find who had write access; restore and rotate credentials.",
    atlas: &[],
    cwe: &[354],
};

/// A prompt to an LLM upstream read as prompt injection or a jailbreak.
pub const PROMPT_INJECTION: RuleDoc = RuleDoc {
    id: "AEG-GW-004",
    name: "prompt-injection",
    severity: Severity::High,
    summary: "A prompt sent to an LLM through the gateway reads as prompt injection or a jailbreak.",
    why: "Text that tells the model to ignore its instructions, reveal its system prompt, adopt an unrestricted \
          persona or send data elsewhere is how chatbots and RAG apps are turned against their owners; in a tool \
          result or retrieved document it is indirect injection, planted for the model to find.",
    fix: "Look at the key and rule in the evidence. If the traffic is an attack, revoke or throttle the key and set \
          the upstream's `llm_guard.mode = \"block\"`; if it is a false positive, add the phrase to \
          `llm_guard.allow_phrases` (calibrate with `aegis llm screen`).",
    atlas: &["AML.T0051", "AML.T0054"],
    cwe: &[77],
};

/// An answer contained the canary placed in the system prompt.
pub const CANARY_LEAK: RuleDoc = RuleDoc {
    id: "AEG-GW-005",
    name: "system-prompt-leak",
    severity: Severity::High,
    summary: "An LLM answer contained the canary token the gateway placed in the system prompt: the system prompt leaked.",
    why: "The canary is only in the system prompt, so an answer that repeats it (even reversed, spaced out or \
          encoded) has disclosed the instructions, and with them any business logic or secrets they hold.",
    fix: "Set `llm_guard.canary = \"cut\"` so such answers are withheld; keep secrets out of system prompts; look \
          at the key's other prompts for the extraction attempt, and revoke it if it is not explained.",
    atlas: &["AML.T0056"],
    cwe: &[200],
};

/// Personal data or a secret in a prompt or an answer.
pub const SENSITIVE_DATA: RuleDoc = RuleDoc {
    id: "AEG-GW-006",
    name: "sensitive-data-in-llm-traffic",
    severity: Severity::Medium,
    summary: "A prompt or an answer through the gateway carried personal data or a secret (card, IBAN, e-mail, phone, API key, private key).",
    why: "Card numbers and credentials sent to a model provider leave the company's control; the same data in \
          answers means the model or its retrieval leaks what it was given or trained on.",
    fix: "Set `llm_guard.pii_prompts` and `pii_answers` to `redact` (or `block`) for the upstream, and find which \
          application sends the data (the key in the evidence).",
    atlas: &["AML.T0057"],
    cwe: &[359],
};

/// The rules the gateway's live signals report.
pub fn rules() -> Vec<&'static RuleDoc> {
    vec![
        &EXTRACTION_ALARM,
        &LOGIN_LOCKOUT,
        &AUDIT_CHAIN_BROKEN,
        &PROMPT_INJECTION,
        &CANARY_LEAK,
        &SENSITIVE_DATA,
    ]
}

/// Every rule a finding in `aegis serve`'s store can cite: the checks' and the gateway's own signals.
pub fn catalogue() -> Vec<&'static RuleDoc> {
    let mut all = aegis_store::checks::rules();
    all.extend(rules());
    all
}

/// The asset the gateway's own signals (sign-in lockouts, the audit chain) are recorded against.
pub const GATEWAY_ASSET: &str = "aegis-gateway";

/// Record a sign-in lockout: one finding for the sign-in route, seen again by every lockout. Refused sign-ins
/// come unauthenticated and fast, so at most one is written per minute per gateway (`last` holds when).
pub(crate) async fn lockout(
    store: &aegis_store::Store,
    last: &std::sync::atomic::AtomicI64,
    username: &str,
    source: &str,
) {
    use std::sync::atomic::Ordering;
    let now = aegis_store::now_secs();
    let before = last.load(Ordering::Relaxed);
    if now - before < 60
        || last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let finding = Finding::new(
        &LOGIN_LOCKOUT,
        Location::Route {
            route: "/admin/login".into(),
            key: None,
        },
        format!("sign-ins as {username:?} from {source} were locked out after repeated failures"),
    )
    .with_evidence(json!({"username": username, "source": source}));
    record_on(store, GATEWAY_ASSET, "gateway", &[finding], false).await;
}

/// Record the result of an audit-chain verification: a broken chain is a finding; an intact one resolves it.
pub async fn audit_chain(
    store: &aegis_store::Store,
    verification: &crate::audit_log::Verification,
) {
    let findings: Vec<Finding> = verification
        .problem
        .iter()
        .map(|p| {
            Finding::new(
                &AUDIT_CHAIN_BROKEN,
                Location::Route {
                    route: "/admin/audit/verify".into(),
                    key: None,
                },
                format!("the audit chain breaks at record {}: {}", p.seq, p.reason),
            )
            .with_evidence(
                json!({"seq": p.seq, "reason": p.reason, "records": verification.records}),
            )
        })
        .collect();
    record_on(store, GATEWAY_ASSET, "audit_chain", &findings, true).await;
}

/// Record a closed drift window: its drifted features become findings; a clean window resolves them.
pub(crate) async fn drift_window(sinks: Sinks<'_>, model: &str, report: &WindowReport) {
    let findings: Vec<Finding> = report
        .features
        .iter()
        .filter(|f| f.drifted)
        .map(|f| {
            let rule = if f.name == "prediction" {
                &PREDICTION_DRIFT
            } else {
                &COLUMN_DRIFT
            };
            Finding::new(
                rule,
                Location::ModelInput {
                    model: model.to_string(),
                    feature: f.name.clone(),
                },
                format!(
                    "{} drifted in live traffic to {model}: PSI {:.3}, corrected p-value {:.2e}, over a window of {} rows",
                    f.name, f.psi, f.pvalue, report.rows
                ),
            )
            .with_evidence(json!({"psi": f.psi, "pvalue": f.pvalue, "statistic": f.statistic, "rows": report.rows}))
        })
        .collect();
    let mut run = aegis_core::Report::new("drift", vec![format!("live traffic to {model}")]);
    run.findings = findings;
    run.metrics.insert("rows".into(), report.rows.into());
    run.metrics.insert(
        "window".into(),
        serde_json::to_value(report).unwrap_or_default(),
    );
    let result = async {
        match sinks.store.find_asset(model).await? {
            Some(asset) => {
                sinks
                    .store
                    .record_live_drift(&asset, run, report.alert)
                    .await
            }
            None => Ok(()),
        }
    }
    .await;
    if let Err(e) = result {
        crate::log::emit(
            crate::log::Level::Warn,
            "signal_not_recorded",
            &[
                ("model", model.into()),
                ("source", "drift".into()),
                ("cause", e.to_string().into()),
            ],
        );
    }
}

/// Record an extraction alarm of `key_id` on `model`.
pub(crate) async fn extraction_alarm(
    sinks: Sinks<'_>,
    model: &str,
    key_id: &str,
    owner: &str,
    queries: u64,
) {
    let finding = Finding::new(
        &EXTRACTION_ALARM,
        Location::Route {
            route: format!("/v1/models/{model}/predict"),
            key: Some(key_id.to_string()),
        },
        format!("key {key_id} (owner {owner}) raised the extraction alarm on {model} after {queries} queries"),
    )
    .with_evidence(json!({"key_id": key_id, "owner": owner, "queries": queries}));
    // Not `extraction`: that is the offline assessment, whose runs would resolve live alarms.
    record(sinks, model, "extraction_alarm", &[finding], false).await;
}

/// Record what the LLM guard found on `upstream` (its endpoint asset). `source` names the signal
/// (`llm_injection`, `llm_canary`, `llm_pii`) so one never resolves another's findings.
pub(crate) async fn llm_guard(
    store: &aegis_store::Store,
    upstream: &str,
    source: &str,
    finding: Finding,
) {
    record_on(store, upstream, source, &[finding], false).await;
}

async fn record(sinks: Sinks<'_>, model: &str, source: &str, findings: &[Finding], clean: bool) {
    record_on(sinks.store, model, source, findings, clean).await;
}

async fn record_on(
    store: &aegis_store::Store,
    model: &str,
    source: &str,
    findings: &[Finding],
    clean: bool,
) {
    let result = async {
        let Some(asset) = store.find_asset(model).await? else {
            return Ok(());
        };
        store.record_signal(&asset, source, findings, clean).await
    }
    .await;
    if let Err(e) = result {
        crate::log::emit(
            crate::log::Level::Warn,
            "signal_not_recorded",
            &[
                ("model", model.into()),
                ("source", source.into()),
                ("cause", e.to_string().into()),
            ],
        );
    }
}
