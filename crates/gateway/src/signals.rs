//! Live signals as findings: what the gateway notices while serving (a drift window that alerts, a key whose
//! queries raise the model-extraction alarm) is recorded in the findings store against the served model's asset,
//! so it is triaged and notified like a check's finding instead of ending as a log line.
//!
//! Drift findings are per feature (and `prediction`), so 500 drifting windows are one finding seen 500 times,
//! notified once; a window that no longer drifts resolves them. An extraction alarm is per API key and model.

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

/// The rules the gateway's live signals report.
pub fn rules() -> Vec<&'static RuleDoc> {
    vec![&EXTRACTION_ALARM]
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
    record(sinks, model, "drift", &findings, true).await;
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
    record(sinks, model, "extraction", &[finding], false).await;
}

async fn record(sinks: Sinks<'_>, model: &str, source: &str, findings: &[Finding], clean: bool) {
    let result = async {
        let Some(asset) = sinks.store.find_asset(model).await? else {
            return Ok(());
        };
        sinks
            .store
            .record_signal(&asset, source, findings, clean)
            .await
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
