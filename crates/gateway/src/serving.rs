//! The serving policy: what the gateway does with a model whose asset has open findings.
//!
//! Per `[[model]]`, `warn_findings` (default `high`) adds an `x-aegis-findings` header to every answer while
//! open findings at or above that severity exist, and `refuse_findings` withholds the model (503 naming the
//! policy) until they are fixed, dismissed or accepted as a risk. The verdicts are recomputed from the findings
//! store every few seconds, off the request path; each change is written to the audit log.

use std::collections::HashMap;
use std::sync::RwLock;

use aegis_core::Severity;
use aegis_store::findings::FindingFilter;

use crate::audit_log::{AuditEvent, AuditLog};
use crate::config::Config;

/// What to do with one model now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Withhold the model.
    pub(crate) refuse: bool,
    /// The header value to add to answers (open findings by severity), if any.
    pub(crate) warning: Option<String>,
}

/// The current verdict of every local model.
#[derive(Debug, Default)]
pub(crate) struct Serving {
    verdicts: RwLock<HashMap<String, Verdict>>,
}

impl Serving {
    /// The verdict of `model` (none: serve as usual).
    pub(crate) fn get(&self, model: &str) -> Option<Verdict> {
        self.verdicts.read().ok()?.get(model).cloned()
    }

    /// Recompute every verdict from the store; audit the ones that changed.
    pub(crate) async fn refresh(
        &self,
        store: &aegis_store::Store,
        config: &Config,
        models: &[String],
        audit: &AuditLog,
    ) {
        for name in models {
            let (warn_at, refuse_at) = thresholds(config, name);
            let Some(lowest) = [warn_at, refuse_at].into_iter().flatten().min() else {
                continue;
            };
            let filter = FindingFilter {
                asset: Some(name.clone()),
                severity: Some(lowest),
                limit: Some(500),
                ..FindingFilter::default()
            };
            let open = match store.list_findings(&filter).await {
                Ok(page) => page.findings,
                // An asset that is not registered (an encrypted model) or was removed has no findings to act on.
                Err(_) => {
                    if let Ok(mut map) = self.verdicts.write() {
                        map.remove(name);
                    }
                    continue;
                }
            };
            let count = |at: Option<Severity>| {
                at.map_or(0, |a| {
                    open.iter().filter(|f| f.finding.severity >= a).count()
                })
            };
            let refuse = count(refuse_at) > 0;
            let warned = count(warn_at);
            let verdict = Verdict {
                refuse,
                warning: (warned > 0 || refuse).then(|| {
                    let worst = open
                        .iter()
                        .map(|f| f.finding.severity)
                        .max()
                        .unwrap_or(lowest);
                    format!(
                        "{} open finding(s), worst {worst}; see `aegis findings list --asset {name}`",
                        open.len()
                    )
                }),
            };
            let changed = {
                let Ok(mut map) = self.verdicts.write() else {
                    continue;
                };
                let before = map.insert(name.clone(), verdict.clone());
                before.as_ref() != Some(&verdict) && (before.is_some() || verdict.warning.is_some())
            };
            if changed {
                audit
                    .record(AuditEvent {
                        kind: "policy".into(),
                        actor: "aegis".into(),
                        model: name.clone(),
                        route: "serving".into(),
                        decision: if verdict.refuse {
                            "withhold".into()
                        } else if verdict.warning.is_some() {
                            "serve_with_warning".into()
                        } else {
                            "serve".into()
                        },
                        detail: verdict
                            .warning
                            .clone()
                            .unwrap_or_else(|| "no open finding at the policy's severity".into()),
                        ..AuditEvent::default()
                    })
                    .await;
            }
        }
    }
}

/// `(warn at, refuse at)` of a model: its `[[model]]` settings; the demo model warns at high.
fn thresholds(config: &Config, name: &str) -> (Option<Severity>, Option<Severity>) {
    match config.models.iter().find(|m| m.name == name) {
        Some(m) => (m.warn_findings, m.refuse_findings),
        None => (Some(Severity::High), None),
    }
}
