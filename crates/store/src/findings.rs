//! One store for every finding of every pillar and every live signal.
//!
//! A finding is kept under a **fingerprint**: SHA-256 of its rule, its asset and its location with the parts
//! that change without the problem changing left out (byte offsets, the version's own file name). The message
//! is never part of it, so rewording a message or re-running a check does not make a new finding.
//!
//! [`Store::ingest`] takes one run's findings for one `(asset, source)`:
//! - a fingerprint not seen before is a new finding, `in_triage`;
//! - one seen before counts another occurrence; if it had been resolved, it is **reopened**;
//! - an open finding of the same asset and source that this run no longer reports is **resolved**.
//!
//! Triage follows the CycloneDX VEX analysis states. Dismissal (`false_positive`, `not_affected`) needs a
//! comment, `not_affected` a VEX justification; accepting a risk needs a comment and an expiry, after which
//! [`Store::expire_acceptances`] reopens the finding. Every change is an event in `finding_events`; the caller
//! also appends it to the gateway's hash-chained audit log.

use aegis_core::{Location, Severity};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{now_secs, Error, Result, Store};

/// CycloneDX VEX analysis states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VexState {
    /// New or reopened: somebody needs to look.
    InTriage,
    /// Confirmed real.
    Exploitable,
    /// Not a real problem (needs a comment).
    FalsePositive,
    /// Real in general, not for this asset (needs a justification and a comment).
    NotAffected,
    /// Fixed, or no longer reported by its check.
    Resolved,
}

impl VexState {
    /// Every state.
    pub const ALL: [VexState; 5] = [
        VexState::InTriage,
        VexState::Exploitable,
        VexState::FalsePositive,
        VexState::NotAffected,
        VexState::Resolved,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            VexState::InTriage => "in_triage",
            VexState::Exploitable => "exploitable",
            VexState::FalsePositive => "false_positive",
            VexState::NotAffected => "not_affected",
            VexState::Resolved => "resolved",
        }
    }

    /// Parse a name.
    pub fn parse(s: &str) -> Result<VexState> {
        VexState::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown state {s:?}: use in_triage, exploitable, false_positive, not_affected or resolved"
                ))
            })
    }

    /// Still needs attention (unless its risk is accepted).
    pub fn is_open(self) -> bool {
        matches!(self, VexState::InTriage | VexState::Exploitable)
    }
}

/// CycloneDX VEX justifications for `not_affected`.
pub const JUSTIFICATIONS: &[&str] = &[
    "code_not_present",
    "code_not_reachable",
    "requires_configuration",
    "requires_dependency",
    "requires_environment",
    "protected_by_compiler",
    "protected_at_runtime",
    "protected_at_perimeter",
    "protected_by_mitigating_control",
];

/// Longest risk acceptance, in days: a year, so every accepted risk is looked at again.
pub const MAX_ACCEPT_DAYS: i64 = 365;

/// A finding as the store keeps it: the pillar's finding plus where it belongs and its triage.
#[derive(Debug, Clone, Serialize)]
pub struct TrackedFinding {
    /// Stable id.
    pub fingerprint: String,
    /// The asset's id.
    pub asset_id: String,
    /// The asset's name (empty for a removed asset).
    pub asset: String,
    /// The version it was last seen on.
    pub version_id: String,
    /// Which check or live signal reports it (`scan`, `signature`, `robustness`, `drift`, `gateway` …).
    pub source: String,
    /// The finding as last reported.
    pub finding: aegis_core::Finding,
    /// Triage state.
    pub state: VexState,
    /// VEX justification (for `not_affected`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub justification: String,
    /// Who deals with it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub owner: String,
    /// Accepted as a risk until this Unix time (0: not accepted).
    pub accepted_until: i64,
    /// Unix seconds.
    pub first_seen: i64,
    /// Unix seconds.
    pub last_seen: i64,
    /// Unix seconds (0: not resolved).
    pub resolved_at: i64,
    /// How many times runs reported it.
    pub occurrences: i64,
    /// The last run that reported it.
    pub last_run: String,
}

impl TrackedFinding {
    /// Open, and not an accepted risk at `now`.
    pub fn needs_attention(&self, now: i64) -> bool {
        self.state.is_open() && self.accepted_until <= now
    }
}

/// One change in a finding's history.
#[derive(Debug, Clone, Serialize)]
pub struct FindingEvent {
    /// Unix seconds.
    pub ts: i64,
    /// Who (a user, `cli:USER`, or `aegis` for the store itself).
    pub actor: String,
    /// `detected`, `seen`, `resolved`, `reopened`, `triaged`, `accepted`, `acceptance_expired`, `owner`.
    pub action: String,
    /// State before.
    pub from_state: String,
    /// State after.
    pub to_state: String,
    /// The comment given.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// The run that caused it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub run_id: String,
}

/// What a run or signal changed: the findings somebody should hear about.
#[derive(Debug, Clone, Default)]
pub struct IngestOutcome {
    /// New findings.
    pub new: Vec<TrackedFinding>,
    /// Findings that came back after being resolved.
    pub reopened: Vec<TrackedFinding>,
    /// Fingerprints resolved because the run no longer reports them.
    pub resolved: Vec<String>,
    /// Findings seen again (not new).
    pub seen: usize,
}

/// A triage request.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Triage {
    /// New state.
    pub state: Option<VexState>,
    /// VEX justification (required for `not_affected`).
    pub justification: Option<String>,
    /// Why (required to dismiss or accept).
    pub comment: String,
    /// New owner.
    pub owner: Option<String>,
    /// Accept the risk for this many days (1 to 365).
    pub accept_days: Option<i64>,
}

/// Filters for [`Store::list_findings`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FindingFilter {
    /// Asset name or id.
    pub asset: Option<String>,
    /// Source (pillar or signal).
    pub source: Option<String>,
    /// At least this severity.
    pub severity: Option<Severity>,
    /// `open` (default: needs attention), `accepted`, `all`, or a VEX state.
    pub state: Option<String>,
    /// Owner.
    pub owner: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub cursor: Option<String>,
}

/// One page of findings.
#[derive(Debug, Clone, Serialize)]
pub struct FindingPage {
    /// The findings, most severe first, then newest.
    pub findings: Vec<TrackedFinding>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The fingerprint of a finding of `rule` on `asset_id` at `location`, where `root` is the version's file or
/// directory name (left out, so a renamed upload is the same finding).
pub fn fingerprint(rule: &str, asset_id: &str, location: &Location, root: &str) -> String {
    let strip = |path: &str| -> String {
        let rest = if path == root {
            ""
        } else if let Some(rest) = path.strip_prefix(root).and_then(|r| r.strip_prefix('/')) {
            rest
        } else {
            path
        };
        rest.to_string()
    };
    let place = match location {
        Location::File { path, members, .. } => {
            serde_json::json!(["file", strip(path), members])
        }
        Location::Dataset { path, row, column } => {
            serde_json::json!(["dataset", strip(path), row, column])
        }
        Location::ModelInput { feature, .. } => serde_json::json!(["input", feature]),
        Location::Route { route, key } => serde_json::json!(["route", route, key]),
    };
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    h.update([0]);
    h.update(asset_id.as_bytes());
    h.update([0]);
    h.update(place.to_string().as_bytes());
    format!("fp_{}", &hex::encode(h.finalize())[..32])
}

const COLUMNS: &str = "f.fingerprint, f.asset_id, COALESCE(a.name, '') AS asset_name, f.version_id, f.source, \
     f.rule, f.severity, f.title, f.message, f.location, f.evidence, f.remediation, f.refs, f.state, \
     f.justification, f.owner, f.accepted_until, f.first_seen, f.last_seen, f.resolved_at, f.occurrences, f.last_run";

impl Store {
    /// Record one run's findings for `(asset, source)`; with `resolve_missing`, open findings of that pair the
    /// run did not report are resolved (a check's full result; live signals pass `false`).
    #[allow(clippy::too_many_arguments)]
    pub async fn ingest(
        &self,
        asset_id: &str,
        version_id: &str,
        root: &str,
        source: &str,
        run_id: &str,
        findings: &[aegis_core::Finding],
        resolve_missing: bool,
    ) -> Result<IngestOutcome> {
        let now = now_secs();
        // Duplicates within one run are one finding with several occurrences; the most severe copy is kept.
        let mut grouped: Vec<(String, aegis_core::Finding, i64)> = Vec::new();
        for f in findings {
            let fp = fingerprint(f.rule.as_str(), asset_id, &f.location, root);
            match grouped.iter_mut().find(|(g, _, _)| *g == fp) {
                Some((_, kept, n)) => {
                    *n += 1;
                    if f.severity > kept.severity {
                        *kept = f.clone();
                    }
                }
                None => grouped.push((fp, f.clone(), 1)),
            }
        }
        let mut out = IngestOutcome::default();
        for (fp, f, n) in &grouped {
            // Per finding, not around the loop: the lock is shared with the gateway's hot-path writers.
            let _guard = self.write_guard().await;
            let existing = self.finding_raw(fp).await?;
            let location = serde_json::to_string(&f.location).unwrap_or_default();
            let evidence = serde_json::to_string(&f.evidence).unwrap_or_default();
            let refs = serde_json::to_string(&f.refs).unwrap_or_default();
            // A replica (or a live signal) may insert the same new fingerprint at the same moment: the insert then
            // does nothing and the finding is treated as seen before.
            let inserted = existing.is_none()
                && sqlx::query(
                    "INSERT INTO findings (fingerprint, asset_id, version_id, source, rule, severity, title,
                     message, location, evidence, remediation, refs, state, first_seen, last_seen, occurrences,
                     last_run, updated)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'in_triage', $13, $13, $14, $15, $13)
                     ON CONFLICT (fingerprint) DO NOTHING",
                )
                    .bind(fp)
                    .bind(asset_id)
                    .bind(version_id)
                    .bind(source)
                    .bind(f.rule.as_str())
                    .bind(severity_rank(f.severity))
                    .bind(&f.title)
                    .bind(&f.message)
                    .bind(&location)
                    .bind(&evidence)
                    .bind(f.remediation.clone().unwrap_or_default())
                    .bind(&refs)
                    .bind(now)
                    .bind(*n)
                    .bind(run_id)
                    .execute(&self.pool)
                    .await
                    .map_err(Error::db("record a finding"))?
                    .rows_affected()
                    == 1;
            if inserted {
                self.event(fp, "aegis", "detected", "", "in_triage", "", run_id)
                    .await?;
                out.new.push(self.finding(fp).await?);
                continue;
            }
            let existing = match existing {
                Some(e) => Some(e),
                None => self.finding_raw(fp).await?,
            };
            match existing {
                None => {
                    return Err(Error::Corrupt(format!(
                        "finding {fp} was neither inserted nor found"
                    )))
                }
                Some(old) => {
                    let reopen = old.state == VexState::Resolved;
                    let state = if reopen {
                        VexState::InTriage
                    } else {
                        old.state
                    };
                    sqlx::query(
                        "UPDATE findings SET version_id = $1, severity = $2, title = $3, message = $4, location = $5,
                         evidence = $6, remediation = $7, refs = $8, state = $9, last_seen = $10,
                         occurrences = occurrences + $11, last_run = $12, resolved_at = $13, updated = $10,
                         accepted_until = CASE WHEN $15 = 1 THEN 0 ELSE accepted_until END
                         WHERE fingerprint = $14",
                    )
                    .bind(version_id)
                    .bind(severity_rank(f.severity))
                    .bind(&f.title)
                    .bind(&f.message)
                    .bind(location)
                    .bind(evidence)
                    .bind(f.remediation.clone().unwrap_or_default())
                    .bind(refs)
                    .bind(state.as_str())
                    .bind(now)
                    .bind(*n)
                    .bind(run_id)
                    .bind(if reopen { 0 } else { old.resolved_at })
                    .bind(fp)
                    .bind(i64::from(reopen))
                    .execute(&self.pool)
                    .await
                    .map_err(Error::db("update a finding"))?;
                    if reopen {
                        self.event(fp, "aegis", "reopened", "resolved", "in_triage", "", run_id)
                            .await?;
                        out.reopened.push(self.finding(fp).await?);
                    } else {
                        out.seen += 1;
                    }
                }
            }
        }
        if resolve_missing {
            let rows = sqlx::query(
                "SELECT fingerprint, state FROM findings WHERE asset_id = $1 AND source = $2
                 AND state IN ('in_triage', 'exploitable')",
            )
            .bind(asset_id)
            .bind(source)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db("read open findings"))?;
            for row in rows {
                let fp: String = row
                    .try_get("fingerprint")
                    .map_err(Error::db("read findings"))?;
                if grouped.iter().any(|(g, _, _)| *g == fp) {
                    continue;
                }
                let _guard = self.write_guard().await;
                let from: String = row.try_get("state").map_err(Error::db("read findings"))?;
                sqlx::query(
                    "UPDATE findings SET state = 'resolved', resolved_at = $1, updated = $1 WHERE fingerprint = $2",
                )
                .bind(now)
                .bind(&fp)
                .execute(&self.pool)
                .await
                .map_err(Error::db("resolve a finding"))?;
                self.event(
                    &fp,
                    "aegis",
                    "resolved",
                    &from,
                    "resolved",
                    "no longer reported by its check",
                    run_id,
                )
                .await?;
                out.resolved.push(fp);
            }
        }
        Ok(out)
    }

    /// One finding by fingerprint.
    pub async fn finding(&self, fingerprint: &str) -> Result<TrackedFinding> {
        self.finding_raw(fingerprint).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "no finding {fingerprint}; `aegis findings list --state all` shows them"
            ))
        })
    }

    async fn finding_raw(&self, fingerprint: &str) -> Result<Option<TrackedFinding>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM findings f LEFT JOIN assets a ON a.id = f.asset_id WHERE f.fingerprint = $1"
        )))
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::db("read a finding"))?;
        row.as_ref().map(finding_from_row).transpose()
    }

    /// A finding's history, oldest first.
    pub async fn finding_events(&self, fingerprint: &str) -> Result<Vec<FindingEvent>> {
        let rows = sqlx::query(
            "SELECT ts, actor, action, from_state, to_state, comment, run_id FROM finding_events
             WHERE fingerprint = $1 ORDER BY at_us, id",
        )
        .bind(fingerprint)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("read a finding's history"))?;
        rows.iter()
            .map(|r| {
                let s = |n: &str| r.try_get::<String, _>(n).map_err(Error::db("read history"));
                Ok(FindingEvent {
                    ts: r.try_get("ts").map_err(Error::db("read history"))?,
                    actor: s("actor")?,
                    action: s("action")?,
                    from_state: s("from_state")?,
                    to_state: s("to_state")?,
                    comment: s("comment")?,
                    run_id: s("run_id")?,
                })
            })
            .collect()
    }

    /// Findings matching `filter`, most severe first, then newest, a page at a time.
    pub async fn list_findings(&self, filter: &FindingFilter) -> Result<FindingPage> {
        let now = now_secs();
        let limit = filter.limit.unwrap_or(50).clamp(1, 500);
        let asset_id = match &filter.asset {
            Some(key) => self.asset(key).await?.id,
            None => String::new(),
        };
        let state = filter.state.as_deref().unwrap_or("open");
        let state_sql = match state {
            "open" => {
                "f.state IN ('in_triage', 'exploitable') AND f.accepted_until <= $5".to_string()
            }
            "accepted" => {
                "f.state IN ('in_triage', 'exploitable') AND f.accepted_until > $5".to_string()
            }
            "all" => "$5 = $5".to_string(),
            other => {
                let s = VexState::parse(other).map_err(|_| {
                    Error::Invalid(format!(
                        "unknown state filter {other:?}: use open, accepted, all, or a VEX state"
                    ))
                })?;
                format!("f.state = '{}' AND $5 = $5", s.as_str())
            }
        };
        let (c_sev, c_seen, c_fp) = match &filter.cursor {
            Some(c) => parse_cursor(c)?,
            None => (i64::MAX, i64::MAX, String::new()),
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM findings f LEFT JOIN assets a ON a.id = f.asset_id
             WHERE ($1 = '' OR f.asset_id = $1) AND ($2 = '' OR f.source = $2) AND f.severity >= $3
             AND ($4 = '' OR f.owner = $4) AND {state_sql}
             AND (f.severity < $6 OR (f.severity = $6 AND f.first_seen < $7)
                  OR (f.severity = $6 AND f.first_seen = $7 AND f.fingerprint > $8))
             ORDER BY f.severity DESC, f.first_seen DESC, f.fingerprint ASC LIMIT $9"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&asset_id)
            .bind(filter.source.clone().unwrap_or_default())
            .bind(filter.severity.map_or(0, severity_rank))
            .bind(filter.owner.clone().unwrap_or_default())
            .bind(now)
            .bind(c_sev)
            .bind(c_seen)
            .bind(c_fp)
            .bind(limit + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db("list findings"))?;
        let mut findings: Vec<TrackedFinding> =
            rows.iter().map(finding_from_row).collect::<Result<_>>()?;
        let next = if findings.len() as i64 > limit {
            findings.truncate(limit as usize);
            findings.last().map(|f| {
                format!(
                    "{}.{}.{}",
                    severity_rank(f.finding.severity),
                    f.first_seen,
                    f.fingerprint
                )
            })
        } else {
            None
        };
        Ok(FindingPage { findings, next })
    }

    /// Change a finding's state, owner or risk acceptance. Returns the finding before and after.
    pub async fn triage(
        &self,
        fingerprint: &str,
        triage: &Triage,
        actor: &str,
    ) -> Result<(TrackedFinding, TrackedFinding)> {
        let before = self.finding(fingerprint).await?;
        let comment = triage.comment.trim();
        if triage.state.is_none() && triage.owner.is_none() && triage.accept_days.is_none() {
            return Err(Error::Invalid(
                "nothing to change: give a state (--state), an owner (--owner) or a risk acceptance (--accept-days)"
                    .into(),
            ));
        }
        let state = triage.state.unwrap_or(before.state);
        let mut justification = before.justification.clone();
        if matches!(
            state,
            VexState::FalsePositive | VexState::NotAffected | VexState::Resolved
        ) && triage.state.is_some()
            && comment.is_empty()
        {
            return Err(Error::Invalid(format!(
                "closing a finding as {} needs a comment saying why (what was fixed, or why it does not apply)",
                state.as_str()
            )));
        }
        if triage.justification.is_some() && state != VexState::NotAffected {
            return Err(Error::Invalid(
                "a justification goes with the state not_affected only".into(),
            ));
        }
        if state == VexState::NotAffected {
            let j = triage.justification.as_deref().unwrap_or("");
            if !JUSTIFICATIONS.contains(&j) {
                return Err(Error::Invalid(format!(
                    "not_affected needs a justification{}: one of {}",
                    if j.is_empty() {
                        String::new()
                    } else {
                        format!(" ({j:?} is not one)")
                    },
                    JUSTIFICATIONS.join(", ")
                )));
            }
            justification = j.to_string();
        } else if triage.state.is_some() {
            justification.clear();
        }
        let now = now_secs();
        let mut accepted_until = before.accepted_until;
        if let Some(days) = triage.accept_days {
            if !(1..=MAX_ACCEPT_DAYS).contains(&days) {
                return Err(Error::Invalid(format!(
                    "accept a risk for 1 to {MAX_ACCEPT_DAYS} days, not {days}"
                )));
            }
            if comment.is_empty() {
                return Err(Error::Invalid(
                    "accepting a risk needs a comment saying why it is acceptable".into(),
                ));
            }
            if !state.is_open() {
                return Err(Error::Invalid(format!(
                    "only an open finding can be accepted as a risk; this one is {}",
                    state.as_str()
                )));
            }
            accepted_until = now + days * 86_400;
        } else if triage.state.is_some() && !state.is_open() {
            accepted_until = 0;
        }
        let owner = triage.owner.clone().unwrap_or_else(|| before.owner.clone());
        let resolved_at = if state == VexState::Resolved {
            if before.resolved_at > 0 {
                before.resolved_at
            } else {
                now
            }
        } else {
            0
        };
        let _guard = self.write_guard().await;
        sqlx::query(
            "UPDATE findings SET state = $1, justification = $2, owner = $3, accepted_until = $4,
             resolved_at = $5, updated = $6 WHERE fingerprint = $7",
        )
        .bind(state.as_str())
        .bind(&justification)
        .bind(&owner)
        .bind(accepted_until)
        .bind(resolved_at)
        .bind(now)
        .bind(fingerprint)
        .execute(&self.pool)
        .await
        .map_err(Error::db("triage a finding"))?;
        let action = if triage.accept_days.is_some() {
            "accepted"
        } else if triage.state.is_some() {
            "triaged"
        } else {
            "owner"
        };
        let mut note = comment.to_string();
        if triage.owner.is_some() && owner != before.owner {
            note = format!("owner: {owner}. {note}").trim().to_string();
        }
        self.event(
            fingerprint,
            actor,
            action,
            before.state.as_str(),
            state.as_str(),
            &note,
            "",
        )
        .await?;
        let after = self.finding(fingerprint).await?;
        Ok((before, after))
    }

    /// Reopen every finding whose risk acceptance ran out before `now`. Returns them.
    pub async fn expire_acceptances(&self, now: i64) -> Result<Vec<TrackedFinding>> {
        let rows = sqlx::query(
            "SELECT fingerprint, state FROM findings WHERE accepted_until > 0 AND accepted_until <= $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("read accepted risks"))?;
        let mut out = Vec::new();
        for row in rows {
            let _guard = self.write_guard().await;
            let fp: String = row
                .try_get("fingerprint")
                .map_err(Error::db("read findings"))?;
            let from: String = row.try_get("state").map_err(Error::db("read findings"))?;
            let to = if from == "resolved" {
                "resolved"
            } else {
                "in_triage"
            };
            // Only the writer that clears the acceptance records the event (replicas race here).
            let done = sqlx::query(
                "UPDATE findings SET accepted_until = 0, state = $1, updated = $2
                 WHERE fingerprint = $3 AND accepted_until > 0 AND accepted_until <= $2",
            )
            .bind(to)
            .bind(now)
            .bind(&fp)
            .execute(&self.pool)
            .await
            .map_err(Error::db("expire an accepted risk"))?;
            if done.rows_affected() == 1 {
                self.event(
                    &fp,
                    "aegis",
                    "acceptance_expired",
                    &from,
                    to,
                    "the risk acceptance expired",
                    "",
                )
                .await?;
                if to == "in_triage" {
                    out.push(self.finding(&fp).await?);
                }
            }
        }
        Ok(out)
    }

    /// Open findings (needing attention) of an asset per source and severity: `(source, severity, count)`.
    pub async fn open_counts(&self, asset_id: &str) -> Result<Vec<(String, Severity, i64)>> {
        let rows = sqlx::query(
            "SELECT source, severity, COUNT(*) AS n FROM findings
             WHERE asset_id = $1 AND state IN ('in_triage', 'exploitable') AND accepted_until <= $2
             GROUP BY source, severity",
        )
        .bind(asset_id)
        .bind(now_secs())
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("count findings"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>("source")
                        .map_err(Error::db("count findings"))?,
                    rank_severity(r.try_get("severity").map_err(Error::db("count findings"))?),
                    r.try_get::<i64, _>("n")
                        .map_err(Error::db("count findings"))?,
                ))
            })
            .collect()
    }

    /// Open findings (needing attention now) of every asset, by severity.
    pub async fn open_by_severity(&self) -> Result<Vec<(Severity, i64)>> {
        let rows = sqlx::query(
            "SELECT severity, COUNT(*) AS n FROM findings
             WHERE state IN ('in_triage', 'exploitable') AND accepted_until <= $1
             GROUP BY severity",
        )
        .bind(now_secs())
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("count findings"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    rank_severity(r.try_get("severity").map_err(Error::db("count findings"))?),
                    r.try_get::<i64, _>("n")
                        .map_err(Error::db("count findings"))?,
                ))
            })
            .collect()
    }

    /// When findings were detected or came back since `since` (Unix seconds), with their severity: the alerts
    /// of the console's timeline. At most 10 000, newest first.
    pub async fn alerts_since(&self, since: i64) -> Result<Vec<(i64, Severity)>> {
        let rows = sqlx::query(
            "SELECT e.ts AS ts, f.severity AS severity FROM finding_events e
             JOIN findings f ON f.fingerprint = e.fingerprint
             WHERE e.ts >= $1 AND e.action IN ('detected', 'reopened')
             ORDER BY e.ts DESC LIMIT 10000",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("read recent alerts"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("ts")
                        .map_err(Error::db("read recent alerts"))?,
                    rank_severity(
                        r.try_get("severity")
                            .map_err(Error::db("read recent alerts"))?,
                    ),
                ))
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    async fn event(
        &self,
        fingerprint: &str,
        actor: &str,
        action: &str,
        from: &str,
        to: &str,
        comment: &str,
        run_id: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO finding_events (id, fingerprint, ts, at_us, actor, action, from_state, to_state, comment, run_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(crate::ids::new_id("fev"))
        .bind(fingerprint)
        .bind(now_secs())
        .bind(crate::now_micros())
        .bind(actor)
        .bind(action)
        .bind(from)
        .bind(to)
        .bind(comment)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(Error::db("record a finding's history"))?;
        Ok(())
    }
}

/// The audit record of a triage: which finding, from which state to which, owner, acceptance, and the comment.
pub fn triage_summary(before: &TrackedFinding, after: &TrackedFinding, comment: &str) -> String {
    let mut detail = format!(
        "finding {} ({} on {}): {} -> {}",
        after.fingerprint,
        after.finding.rule.as_str(),
        after.asset,
        before.state.as_str(),
        after.state.as_str()
    );
    if !after.justification.is_empty() {
        detail.push_str(&format!(", justification {}", after.justification));
    }
    if after.owner != before.owner {
        detail.push_str(&format!(", owner {}", after.owner));
    }
    if after.accepted_until != before.accepted_until && after.accepted_until > 0 {
        detail.push_str(&format!(
            ", risk accepted until {}",
            crate::posture::when(after.accepted_until)
        ));
    }
    if !comment.trim().is_empty() {
        detail.push_str(&format!(": {}", comment.trim()));
    }
    detail
}

/// Severity as stored (0 info … 4 critical), so SQL can compare and sort.
pub fn severity_rank(s: Severity) -> i64 {
    Severity::ALL.iter().position(|&x| x == s).unwrap_or(0) as i64
}

fn rank_severity(rank: i64) -> Severity {
    Severity::ALL
        .get(rank.clamp(0, 4) as usize)
        .copied()
        .unwrap_or(Severity::Info)
}

fn parse_cursor(c: &str) -> Result<(i64, i64, String)> {
    let bad = || Error::Invalid(format!("cursor {c:?} is not one this server gave out"));
    let mut parts = c.splitn(3, '.');
    let sev = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let seen = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    let fp = parts
        .next()
        .filter(|s| s.starts_with("fp_"))
        .ok_or_else(bad)?;
    Ok((sev, seen, fp.to_string()))
}

fn finding_from_row(r: &AnyRow) -> Result<TrackedFinding> {
    let s = |n: &str| {
        r.try_get::<String, _>(n)
            .map_err(Error::db("read a finding"))
    };
    let i = |n: &str| r.try_get::<i64, _>(n).map_err(Error::db("read a finding"));
    let corrupt = |what: &str, e: serde_json::Error| Error::Corrupt(format!("finding {what}: {e}"));
    let remediation = s("remediation")?;
    let finding = aegis_core::Finding {
        rule: aegis_core::RuleId(s("rule")?),
        severity: rank_severity(i("severity")?),
        title: s("title")?,
        message: s("message")?,
        location: serde_json::from_str(&s("location")?).map_err(|e| corrupt("location", e))?,
        evidence: serde_json::from_str(&s("evidence")?).map_err(|e| corrupt("evidence", e))?,
        remediation: (!remediation.is_empty()).then_some(remediation),
        refs: serde_json::from_str(&s("refs")?).map_err(|e| corrupt("refs", e))?,
    };
    Ok(TrackedFinding {
        fingerprint: s("fingerprint")?,
        asset_id: s("asset_id")?,
        asset: s("asset_name")?,
        version_id: s("version_id")?,
        source: s("source")?,
        finding,
        state: VexState::parse(&s("state")?)?,
        justification: s("justification")?,
        owner: s("owner")?,
        accepted_until: i("accepted_until")?,
        first_seen: i("first_seen")?,
        last_seen: i("last_seen")?,
        resolved_at: i("resolved_at")?,
        occurrences: i("occurrences")?,
        last_run: s("last_run")?,
    })
}
