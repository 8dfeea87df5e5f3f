//! Posture: per asset, the latest result of each check with its date, and the open findings by severity, so
//! "is anything wrong with our models?" has one answer, as text, JSON or a self-contained HTML page.

use std::collections::BTreeMap;

use aegis_core::Severity;
use serde::Serialize;

use crate::assets::{Asset, AssetKind};
use crate::checks::CheckKind;
use crate::queue::{Run, RunStatus};
use crate::{Result, Store};

/// The latest result of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckState {
    /// Which check.
    pub check: CheckKind,
    /// `done`, `failed`, `skipped`, or `never` when it has not run.
    pub status: String,
    /// When it finished (Unix seconds, 0: never).
    pub finished: i64,
    /// The version it ran on (its sequence number, 0: never).
    pub version: i64,
    /// One line: findings by severity, why it failed or was skipped.
    pub summary: String,
    /// The run, to open its report.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub run_id: String,
}

/// One asset's posture.
#[derive(Debug, Clone, Serialize)]
pub struct AssetPosture {
    /// Name.
    pub asset: String,
    /// Kind.
    pub kind: AssetKind,
    /// Owner.
    pub owner: String,
    /// Latest version number (0: none).
    pub version: i64,
    /// Latest version's SHA-256.
    pub sha256: String,
    /// `verified`, `unsigned`, `invalid`, or `unknown` (never checked) for models.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub signature: String,
    /// Each check that applies.
    pub checks: Vec<CheckState>,
    /// Open findings (not accepted) by severity.
    pub open: BTreeMap<String, i64>,
    /// Checks waiting or running.
    pub pending: i64,
    /// `ok`, `attention` (open high or critical findings, or a failed check), or `unchecked`.
    pub verdict: String,
}

impl Store {
    /// The posture of one asset, or of every asset.
    pub async fn posture(&self, key: Option<&str>) -> Result<Vec<AssetPosture>> {
        let assets = match key {
            Some(k) => vec![self.asset(k).await?],
            None => self.list_assets(None).await?,
        };
        let mut out = Vec::with_capacity(assets.len());
        for asset in assets {
            out.push(self.asset_posture(&asset).await?);
        }
        Ok(out)
    }

    async fn asset_posture(&self, asset: &Asset) -> Result<AssetPosture> {
        let latest = self.latest_runs(&asset.id).await?;
        let mut seqs = BTreeMap::new();
        for v in self.versions(&asset.id).await? {
            seqs.insert(v.id.clone(), v.seq);
        }
        // A served model's drift is measured on its live traffic (runs with cause `live`), not queued.
        let mut kinds: Vec<CheckKind> = CheckKind::for_kind(asset.kind).to_vec();
        if asset.kind == AssetKind::Model {
            kinds.push(CheckKind::Drift);
        }
        let checks: Vec<CheckState> = kinds
            .iter()
            .map(|&kind| match latest.iter().find(|r| r.kind == kind) {
                Some(run) => state_of(run, seqs.get(&run.version_id).copied().unwrap_or(0)),
                None => CheckState {
                    check: kind,
                    status: "never".into(),
                    finished: 0,
                    version: 0,
                    summary: if kind == CheckKind::Drift && asset.kind == AssetKind::Model {
                        "measured on live traffic once the model is served with a reference".into()
                    } else {
                        "not run yet".into()
                    },
                    run_id: String::new(),
                },
            })
            .collect();
        let mut open = BTreeMap::new();
        for (_, severity, n) in self.open_counts(&asset.id).await? {
            *open.entry(severity.as_str().to_string()).or_insert(0) += n;
        }
        let signature = if asset.kind == AssetKind::Model {
            match latest.iter().find(|r| r.kind == CheckKind::Signature) {
                Some(run) => self
                    .run(&run.id, true)
                    .await?
                    .report
                    .and_then(|r| r["metrics"]["signature"].as_str().map(str::to_string))
                    .unwrap_or_else(|| "unknown".into()),
                None => "unknown".into(),
            }
        } else {
            String::new()
        };
        let serious =
            open.get("critical").copied().unwrap_or(0) + open.get("high").copied().unwrap_or(0);
        let verdict = if serious > 0 || checks.iter().any(|c| c.status == "failed") {
            "attention"
        } else if checks
            .iter()
            .filter(|c| c.check != CheckKind::Drift)
            .all(|c| c.status == "never")
        {
            "unchecked"
        } else {
            "ok"
        };
        Ok(AssetPosture {
            asset: asset.name.clone(),
            kind: asset.kind,
            owner: asset.owner.clone(),
            version: asset.latest.as_ref().map_or(0, |v| v.seq),
            sha256: asset
                .latest
                .as_ref()
                .map(|v| v.sha256.clone())
                .unwrap_or_default(),
            signature,
            checks,
            open,
            pending: self.pending_jobs(&asset.id).await?,
            verdict: verdict.into(),
        })
    }
}

fn state_of(run: &Run, version: i64) -> CheckState {
    let status = match run.status {
        RunStatus::Done => "done",
        RunStatus::Failed => "failed",
        RunStatus::Skipped => "skipped",
        RunStatus::Running => "running",
    };
    CheckState {
        check: run.kind,
        status: status.into(),
        finished: run.finished,
        version,
        summary: if run.error.is_empty() {
            run.summary.clone()
        } else {
            run.error.clone()
        },
        run_id: run.id.clone(),
    }
}

/// The open findings of a posture as `2 critical, 1 high` (most severe first), or `none`.
pub fn open_line(open: &BTreeMap<String, i64>) -> String {
    let parts: Vec<String> = Severity::ALL
        .iter()
        .rev()
        .filter_map(|s| open.get(s.as_str()).map(|n| format!("{n} {s}")))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// A UTC date and time for people: `2026-12-07 15:04 UTC`, or `never`.
pub fn when(ts: i64) -> String {
    if ts <= 0 {
        return "never".into();
    }
    match time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => ts.to_string(),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// One self-contained HTML page (no script, no external resource) of the postures.
pub fn html(postures: &[AssetPosture]) -> String {
    let mut rows = String::new();
    for p in postures {
        let badge = match p.verdict.as_str() {
            "attention" => "bad",
            "ok" => "good",
            _ => "unknown",
        };
        rows.push_str(&format!(
            "<section><h2>{} <small>{} v{} · owner {}</small> <span class=\"badge {badge}\">{}</span></h2>\
             <p>Open findings: <b>{}</b>{}{}</p><table><tr><th>check</th><th>result</th><th>version</th><th>when</th><th>summary</th></tr>",
            esc(&p.asset),
            p.kind.as_str(),
            p.version,
            esc(if p.owner.is_empty() { "nobody" } else { &p.owner }),
            esc(&p.verdict),
            esc(&open_line(&p.open)),
            if p.signature.is_empty() { String::new() } else { format!(" · signature: <b>{}</b>", esc(&p.signature)) },
            if p.pending > 0 { format!(" · {} check(s) pending", p.pending) } else { String::new() },
        ));
        for c in &p.checks {
            rows.push_str(&format!(
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.status),
                c.check.as_str(),
                esc(&c.status),
                if c.version > 0 {
                    format!("v{}", c.version)
                } else {
                    "–".into()
                },
                esc(&when(c.finished)),
                esc(&c.summary)
            ));
        }
        rows.push_str("</table></section>");
    }
    if postures.is_empty() {
        rows.push_str("<p>No assets are registered yet: <code>aegis model add NAME FILE</code> adds the first.</p>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Aegis posture</title>\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>\
         body{{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1b1f24;padding:0 1rem}}\
         h1{{font-size:1.6rem}}h2{{font-size:1.15rem;margin:1.6rem 0 .4rem}}small{{color:#57606a;font-weight:400}}\
         table{{border-collapse:collapse;width:100%}}th,td{{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #d0d7de}}\
         th{{background:#f6f8fa}}td:nth-child(4){{white-space:nowrap}}tr.failed td{{color:#a40e26}}tr.skipped td,tr.never td{{color:#57606a}}\
         .badge{{border-radius:1rem;padding:.1rem .6rem;font-size:.85rem}}.bad{{background:#ffebe9;color:#a40e26}}\
         .good{{background:#dafbe1;color:#116329}}.unknown{{background:#eaeef2;color:#57606a}}\
         </style></head><body><h1>Aegis posture</h1><p>Generated {}. For each asset: the latest result of each \
         check and the findings still open (accepted risks excluded).</p>{rows}</body></html>",
        esc(&when(crate::now_secs()))
    )
}
