//! The worker: what makes checks run by themselves.
//!
//! Every second a worker recovers jobs whose worker died, queues the checks whose schedule is due, reopens
//! findings whose risk acceptance expired, claims due jobs within its concurrency (heavy checks, which run model
//! inference or audit a whole table, one at a time so serving stays fast), and sends due notifications. A claimed
//! job runs on a blocking thread while the async side renews its lease and records progress. The same code runs
//! one job to completion for `aegis check run --wait`, so the CLI and the server behave alike.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::Row;
use tokio::sync::Semaphore;

use crate::assets::{Asset, AssetKind, Relation, Version};
use crate::checks::{self, CheckKind, CheckSettings, DataInput, Outcome, Prepared, Progress};
use crate::cron::Cron;
use crate::findings::{IngestOutcome, VexState};
use crate::notify::{Backoff, Event};
use crate::queue::{Job, Run, RunStatus};
use crate::{now_secs, objects, Error, Result, Store};

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// What the checks share.
    pub settings: CheckSettings,
    /// Checks running at once on this node.
    pub concurrency: usize,
    /// Heavy checks running at once on this node.
    pub heavy: usize,
    /// Pause between passes when there is nothing to do.
    pub poll: Duration,
    /// Notification retries.
    pub backoff: Backoff,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            settings: CheckSettings::default(),
            concurrency: 2,
            heavy: 1,
            poll: Duration::from_secs(1),
            backoff: Backoff::default(),
        }
    }
}

/// A schedule as shown.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    /// Which check.
    pub check: CheckKind,
    /// Seconds between runs (0: by cron or only on new versions).
    pub every_secs: i64,
    /// Cron expression, if any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cron: String,
    /// Next run (Unix seconds).
    pub next_due: i64,
    /// Off schedules do not run.
    pub enabled: bool,
}

impl Store {
    /// A new version arrived: queue every check that applies (and, for a dataset, the checks of the models that
    /// use it), and give the asset its default schedules. Returns the queued job ids.
    pub async fn on_new_version(&self, asset: &Asset, version: &Version) -> Result<Vec<String>> {
        let now = now_secs();
        let mut jobs = Vec::new();
        for &kind in CheckKind::for_kind(asset.kind) {
            jobs.push(
                self.enqueue(&asset.id, &version.id, kind, "new_version", now)
                    .await?,
            );
            let every = kind.default_interval();
            if every > 0 {
                self.ensure_schedule(&asset.id, kind, every, now + every)
                    .await?;
            }
        }
        if asset.kind == AssetKind::Dataset {
            for model in self.linked_models(&asset.id).await? {
                if let Some(v) = &model.latest {
                    for kind in [
                        CheckKind::Robustness,
                        CheckKind::Privacy,
                        CheckKind::Extraction,
                    ] {
                        jobs.push(
                            self.enqueue(&model.id, &v.id, kind, "data_changed", now)
                                .await?,
                        );
                    }
                }
            }
        }
        Ok(jobs)
    }

    /// Queue checks of an asset's latest version now (`kinds` empty: every check that applies).
    pub async fn check_now(&self, asset: &Asset, kinds: &[CheckKind]) -> Result<Vec<String>> {
        let version = asset.latest.as_ref().ok_or_else(|| {
            Error::Invalid(format!(
                "{} has no version to check yet; add one with `aegis asset add {} PATH`",
                asset.name, asset.name
            ))
        })?;
        let applicable = CheckKind::for_kind(asset.kind);
        let mut kinds: Vec<CheckKind> = if kinds.is_empty() {
            applicable.to_vec()
        } else {
            kinds.to_vec()
        };
        // The scan first: checks that load the model wait for it.
        kinds.sort_by_key(|k| !matches!(k, CheckKind::Scan));
        kinds.dedup();
        let mut jobs = Vec::new();
        for kind in kinds {
            if !applicable.contains(&kind) {
                return Err(Error::Invalid(format!(
                    "the {} check does not apply to a {}; use one of {}",
                    kind.as_str(),
                    asset.kind.as_str(),
                    applicable
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            jobs.push(
                self.enqueue(&asset.id, &version.id, kind, "on_demand", now_secs())
                    .await?,
            );
        }
        Ok(jobs)
    }

    async fn ensure_schedule(
        &self,
        asset_id: &str,
        kind: CheckKind,
        every: i64,
        due: i64,
    ) -> Result<()> {
        let _guard = self.write_guard().await;
        sqlx::query(
            "INSERT INTO schedules (asset_id, kind, interval_secs, next_due) VALUES ($1, $2, $3, $4)
             ON CONFLICT (asset_id, kind) DO NOTHING",
        )
        .bind(asset_id)
        .bind(kind.as_str())
        .bind(every)
        .bind(due)
        .execute(&self.pool)
        .await
        .map_err(Error::db("save a schedule"))?;
        Ok(())
    }

    /// Set when a check of an asset runs by itself: every `every_secs`, by a `cron` expression (UTC), or never
    /// (`every_secs` 0 and no cron: only on new versions and on demand).
    pub async fn set_schedule(
        &self,
        asset: &Asset,
        kind: CheckKind,
        every_secs: i64,
        cron: Option<&str>,
    ) -> Result<Schedule> {
        if !CheckKind::for_kind(asset.kind).contains(&kind) {
            return Err(Error::Invalid(format!(
                "the {} check does not apply to a {}",
                kind.as_str(),
                asset.kind.as_str()
            )));
        }
        let now = now_secs();
        let (next, cron_text) = match cron {
            Some(text) => {
                let c = Cron::parse(text)?;
                (c.next_after(now).unwrap_or(i64::MAX), text.to_string())
            }
            None if every_secs > 0 => {
                if every_secs < 60 {
                    return Err(Error::Invalid(
                        "schedule checks at most once a minute".into(),
                    ));
                }
                (now + every_secs, String::new())
            }
            None => (i64::MAX, String::new()),
        };
        let enabled = next != i64::MAX;
        let _guard = self.write_guard().await;
        sqlx::query(
            "INSERT INTO schedules (asset_id, kind, interval_secs, cron, next_due, enabled) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (asset_id, kind) DO UPDATE SET interval_secs = excluded.interval_secs, cron = excluded.cron,
               next_due = excluded.next_due, enabled = excluded.enabled",
        )
        .bind(&asset.id)
        .bind(kind.as_str())
        .bind(if cron.is_some() { 0 } else { every_secs })
        .bind(&cron_text)
        .bind(next)
        .bind(i64::from(enabled))
        .execute(&self.pool)
        .await
        .map_err(Error::db("save a schedule"))?;
        Ok(Schedule {
            check: kind,
            every_secs: if cron.is_some() { 0 } else { every_secs },
            cron: cron_text,
            next_due: next,
            enabled,
        })
    }

    /// An asset's schedules.
    pub async fn schedules(&self, asset_id: &str) -> Result<Vec<Schedule>> {
        let rows = sqlx::query(
            "SELECT kind, interval_secs, cron, next_due, enabled FROM schedules WHERE asset_id = $1 ORDER BY kind",
        )
        .bind(asset_id)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("read schedules"))?;
        rows.iter()
            .map(|r| {
                Ok(Schedule {
                    check: CheckKind::parse(
                        &r.try_get::<String, _>("kind")
                            .map_err(Error::db("read schedules"))?,
                    )?,
                    every_secs: r
                        .try_get("interval_secs")
                        .map_err(Error::db("read schedules"))?,
                    cron: r.try_get("cron").map_err(Error::db("read schedules"))?,
                    next_due: r.try_get("next_due").map_err(Error::db("read schedules"))?,
                    enabled: r
                        .try_get::<i64, _>("enabled")
                        .map_err(Error::db("read schedules"))?
                        != 0,
                })
            })
            .collect()
    }

    /// Queue the checks whose schedule is due; each schedule advances once even with several replicas.
    pub async fn enqueue_scheduled(&self, now: i64) -> Result<usize> {
        let rows = sqlx::query(
            "SELECT asset_id, kind, interval_secs, cron, next_due FROM schedules WHERE enabled = 1 AND next_due <= $1",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("read schedules"))?;
        let mut queued = 0;
        for r in rows {
            let s = |n: &str| {
                r.try_get::<String, _>(n)
                    .map_err(Error::db("read schedules"))
            };
            let (asset_id, kind, cron) = (s("asset_id")?, s("kind")?, s("cron")?);
            let every: i64 = r
                .try_get("interval_secs")
                .map_err(Error::db("read schedules"))?;
            let due: i64 = r.try_get("next_due").map_err(Error::db("read schedules"))?;
            let next = if cron.is_empty() {
                // Skip missed periods (a server that was down for a week runs the check once, not seven times).
                let periods = ((now - due) / every.max(60)) + 1;
                due + periods * every.max(60)
            } else {
                Cron::parse(&cron)
                    .ok()
                    .and_then(|c| c.next_after(now))
                    .unwrap_or(i64::MAX)
            };
            let advanced = {
                let _guard = self.write_guard().await;
                sqlx::query("UPDATE schedules SET next_due = $1 WHERE asset_id = $2 AND kind = $3 AND next_due = $4")
                    .bind(next)
                    .bind(&asset_id)
                    .bind(&kind)
                    .bind(due)
                    .execute(&self.pool)
                    .await
                    .map_err(Error::db("advance a schedule"))?
                    .rows_affected()
                    == 1
            };
            if !advanced {
                continue;
            }
            let Some(asset) = self.find_asset(&asset_id).await? else {
                continue;
            };
            if let Some(v) = &asset.latest {
                self.enqueue(&asset.id, &v.id, CheckKind::parse(&kind)?, "schedule", now)
                    .await?;
                queued += 1;
            }
        }
        Ok(queued)
    }

    /// Notify what an ingest changed: its new findings and the ones that came back.
    async fn notify_findings(&self, tags: &[String], outcome: &IngestOutcome) -> Result<()> {
        let events: Vec<Event> = outcome
            .new
            .iter()
            .map(|f| Event::for_finding("finding_new", f, tags))
            .chain(
                outcome
                    .reopened
                    .iter()
                    .map(|f| Event::for_finding("finding_reopened", f, tags)),
            )
            .collect();
        self.notify(&events).await.map(|_| ())
    }

    /// Record findings of `source` on the asset's latest version (or on the asset, when it has none) and
    /// notify what changed; with `resolve_missing`, open findings of that source it does not report resolve.
    async fn ingest_and_notify(
        &self,
        asset: &Asset,
        source: &str,
        run_id: &str,
        findings: &[aegis_core::Finding],
        resolve_missing: bool,
    ) -> Result<()> {
        let (version, root) = asset
            .latest
            .as_ref()
            .map(|v| (v.id.as_str(), v.filename.as_str()))
            .unwrap_or_default();
        let outcome = self
            .ingest(
                &asset.id,
                version,
                root,
                source,
                run_id,
                findings,
                resolve_missing,
            )
            .await?;
        self.notify_findings(&asset.tags, &outcome).await
    }

    /// Why a version must not be loaded by a check, if it must not: the server has not scanned it (an imported
    /// report does not count), or its latest scan reported high or critical findings that are still open (not
    /// dismissed, not accepted).
    pub async fn unsafe_to_load(&self, asset: &Asset, version: &Version) -> Result<Option<String>> {
        let scan = self
            .runs(&asset.id, Some(&version.id), 1000)
            .await?
            .into_iter()
            .find(|r| {
                r.kind == CheckKind::Scan && r.status == RunStatus::Done && r.cause != "import"
            });
        let Some(scan) = scan else {
            return Ok(Some(format!(
                "not loaded: version {} has not been scanned by this server yet; `aegis check run {} --check scan` first",
                version.seq, asset.name
            )));
        };
        let report: aegis_core::Report = match self.run(&scan.id, true).await?.report {
            Some(value) => serde_json::from_value(value)
                .map_err(|e| Error::Corrupt(format!("scan report of run {}: {e}", scan.id)))?,
            None => return Ok(Some("not loaded: the scan's report is missing".into())),
        };
        let now = now_secs();
        let mut blocking = Vec::new();
        for f in report
            .findings
            .iter()
            .filter(|f| f.severity >= aegis_core::Severity::High)
        {
            let fp = crate::findings::fingerprint(
                f.rule.as_str(),
                &asset.id,
                &f.location,
                &version.filename,
            );
            // Only a judgement about this finding lets the bytes load: dismissed, or an accepted risk. A finding
            // resolved because a later version no longer has it is still in this version's bytes.
            let open = match self.finding(&fp).await {
                Ok(tracked) => {
                    !matches!(
                        tracked.state,
                        VexState::FalsePositive | VexState::NotAffected
                    ) && tracked.accepted_until <= now
                }
                Err(Error::NotFound(_)) => true,
                Err(e) => return Err(e),
            };
            if open && !blocking.contains(&f.rule.as_str()) {
                blocking.push(f.rule.as_str());
            }
        }
        if blocking.is_empty() {
            return Ok(None);
        }
        Ok(Some(format!(
            "not loaded: the scan of version {} found open high or critical findings ({}); fix them, or triage \
             them as false_positive or not_affected, then run this check again",
            version.seq,
            blocking.join(", ")
        )))
    }

    /// Record a closed drift window of a served model's live traffic as a `drift` run of the model (cause
    /// `live`), at most one an hour unless the window's verdict changed (alerting or clean), so the posture has
    /// the model's drift "check" and its history without a run per window. The findings are recorded either way.
    pub async fn record_live_drift(
        &self,
        asset: &Asset,
        report: aegis_core::Report,
        alert: bool,
    ) -> Result<()> {
        let Some(version) = asset.latest.clone() else {
            return Ok(());
        };
        let previous = self
            .latest_runs(&asset.id)
            .await?
            .into_iter()
            .find(|r| r.kind == CheckKind::Drift);
        let was_alerting = previous
            .as_ref()
            .is_some_and(|r| r.summary != "no findings");
        let due = previous
            .as_ref()
            .is_none_or(|r| now_secs() - r.started >= 3600 || was_alerting != alert);
        if !due {
            return self
                .record_signal(asset, CheckKind::Drift.as_str(), &report.findings, true)
                .await;
        }
        let summary = checks::summary(&report.findings);
        let run_id = self
            .record_finished(
                &asset.id,
                &version.id,
                CheckKind::Drift,
                "live",
                "gateway",
                &summary,
                &report,
            )
            .await?;
        self.ingest_and_notify(
            asset,
            CheckKind::Drift.as_str(),
            &run_id,
            &report.findings,
            true,
        )
        .await
    }

    /// Record findings a live signal (drift alert, extraction alarm, lockout) raised for an asset, and notify.
    /// Signals never resolve findings by absence; their own source does, with a later clean report.
    pub async fn record_signal(
        &self,
        asset: &Asset,
        source: &str,
        findings: &[aegis_core::Finding],
        clean: bool,
    ) -> Result<()> {
        self.ingest_and_notify(asset, source, "", findings, clean)
            .await
    }
}

impl Store {
    /// Record a report made elsewhere (`aegis scan --format json` in a CI pipeline) as a finished run of the
    /// asset's latest version: its findings are tracked like those of a run the server made. The check is read
    /// from the report's `command`; paths naming the version's file are shortened to its name so findings keep
    /// the same fingerprint as the server's own runs.
    pub async fn import_report(
        &self,
        asset: &Asset,
        mut report: aegis_core::Report,
        actor: &str,
    ) -> Result<Run> {
        let kind = match report.command.as_str() {
            "scan" => CheckKind::Scan,
            "vault verify" => CheckKind::Signature,
            "schema check" => CheckKind::Schema,
            "audit" => CheckKind::Audit,
            "assess robustness" => CheckKind::Robustness,
            "assess privacy" => CheckKind::Privacy,
            "assess extraction" => CheckKind::Extraction,
            "drift" => CheckKind::Drift,
            other => {
                return Err(Error::Invalid(format!(
                    "a report of `aegis {other}` cannot be imported; import reports of scan, vault verify,                      schema check, audit, assess robustness or assess privacy"
                )))
            }
        };
        if !CheckKind::for_kind(asset.kind).contains(&kind) {
            return Err(Error::Invalid(format!(
                "this {} report does not apply to {}, which is a {}",
                kind.as_str(),
                asset.name,
                asset.kind.as_str()
            )));
        }
        let version = asset.latest.clone().ok_or_else(|| {
            Error::Invalid(format!(
                "{} has no version yet: add the file the report is about first (aegis asset add {} PATH)",
                asset.name, asset.name
            ))
        })?;
        let about = |t: &String| {
            t == &version.filename
                || t.ends_with(&format!("/{}", version.filename))
                || t.ends_with(&format!("/{}/", version.filename))
        };
        if !report.target.iter().any(about) {
            return Err(Error::Invalid(format!(
                "the report is about {}, but {}'s latest version is {}: import it for the asset it is about, \
                 or add that file as a new version first",
                report.target.join(", "),
                asset.name,
                version.filename
            )));
        }
        shorten_paths(&mut report, &version.filename);
        let summary = checks::summary(&report.findings);
        let run_id = self
            .record_finished(
                &asset.id,
                &version.id,
                kind,
                "import",
                actor,
                &summary,
                &report,
            )
            .await?;
        // Imports add and reopen findings; they never resolve one by leaving it out.
        self.ingest_and_notify(asset, kind.as_str(), &run_id, &report.findings, false)
            .await?;
        self.run(&run_id, false).await
    }
}

/// Paths whose last component (or an archive member path) starts at the version's file name are cut to start
/// there: `/ci/build/models/fraud.onnx` becomes `fraud.onnx`.
fn shorten_paths(report: &mut aegis_core::Report, filename: &str) {
    let cut = |path: &mut String| {
        let needle = format!("/{filename}");
        if let Some(i) = path.rfind(&needle) {
            let rest = &path[i + 1..];
            if rest == filename || rest.starts_with(&format!("{filename}/")) {
                *path = rest.to_string();
            }
        }
    };
    for f in &mut report.findings {
        match &mut f.location {
            aegis_core::Location::File { path, .. }
            | aegis_core::Location::Dataset { path, .. } => cut(path),
            _ => {}
        }
    }
}

/// This machine's name (`HOSTNAME`, else `/etc/hostname`, else `localhost`), which worker ids start with.
pub fn node_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into())
}

/// A worker on one node.
#[derive(Debug, Clone)]
pub struct Worker {
    store: Store,
    id: String,
    prefix: String,
    config: WorkerConfig,
    slots: Arc<Semaphore>,
    heavy: Arc<Semaphore>,
}

impl Worker {
    /// A worker named `prefix` plus a fresh boot id. Jobs held by earlier workers of the same prefix are
    /// recovered at once at start (they died with the previous process).
    pub fn new(store: Store, prefix: &str, config: WorkerConfig) -> Worker {
        let id = format!("{prefix}{}", crate::ids::new_id("boot"));
        Worker {
            store,
            prefix: prefix.to_string(),
            slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
            heavy: Arc::new(Semaphore::new(config.heavy.max(1))),
            config,
            id,
        }
    }

    /// This worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Recover jobs of this node's earlier incarnations and any whose lease ran out.
    pub async fn recover(&self) -> Result<usize> {
        self.store
            .recover(now_secs(), Some(&self.prefix), &self.id)
            .await
    }

    /// Run until `stop` turns true: recover, schedule, expire acceptances, claim and run jobs, deliver.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if let Err(e) = self.recover().await {
            eprintln!("aegis worker: recovering interrupted checks: {e}");
        }
        let delivery = tokio::spawn(self.clone().deliver(stop.clone()));
        let mut last_recover = now_secs();
        loop {
            if *stop.borrow() {
                break;
            }
            let now = now_secs();
            if now - last_recover >= 15 {
                last_recover = now;
                if let Err(e) = self.store.recover(now, None, &self.id).await {
                    eprintln!("aegis worker: recovering interrupted checks: {e}");
                }
            }
            self.housekeeping(now).await;
            let mut started = false;
            while let Ok(permit) = self.slots.clone().try_acquire_owned() {
                match self.store.claim(&self.id).await {
                    Ok(Some((job, run))) => {
                        started = true;
                        let me = self.clone();
                        tokio::spawn(async move {
                            let _permit = permit;
                            if let Err(e) = me.execute(job, run).await {
                                eprintln!("aegis worker: {e}");
                            }
                        });
                    }
                    Ok(None) => break,
                    Err(e) => {
                        eprintln!("aegis worker: claiming a job: {e}");
                        break;
                    }
                }
            }
            if !started {
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), delivery).await;
        // Give running checks a moment to finish; one that does not is recovered by the next start (marked
        // failed with the reason and queued again), so stopping never waits for a long assessment.
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            self.slots
                .acquire_many(self.config.concurrency.max(1) as u32),
        )
        .await;
    }

    /// Schedules and expired risk acceptances; each step's failure is logged and the next still runs.
    async fn housekeeping(&self, now: i64) {
        if let Err(e) = self.store.enqueue_scheduled(now).await {
            eprintln!("aegis worker: queuing scheduled checks: {e}");
        }
        if let Err(e) = self.expire(now).await {
            eprintln!("aegis worker: expiring risk acceptances: {e}");
        }
    }

    /// Reopen expired risk acceptances and announce them together (one message per channel).
    async fn expire(&self, now: i64) -> Result<()> {
        let mut events = Vec::new();
        for f in self.store.expire_acceptances(now).await? {
            let tags = match self.store.find_asset(&f.asset_id).await? {
                Some(a) => a.tags,
                None => Vec::new(),
            };
            events.push(Event::for_finding("acceptance_expired", &f, &tags));
        }
        self.store.notify(&events).await.map(|_| ())
    }

    /// Send due notifications until `stop`: apart from the job loop, so a mail server that does not answer
    /// delays no check.
    async fn deliver(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            match self.store.deliver_due(self.config.backoff).await {
                Ok((_, failed)) if failed > 0 => eprintln!(
                    "aegis worker: {failed} notification(s) could not be delivered after retries; \
                     `aegis notify deliveries --state failed` shows why"
                ),
                Ok(_) => {}
                Err(e) => eprintln!("aegis worker: delivering notifications: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Claim one specific queued job and run it to the end (for `aegis check run --wait`). `None` when another
    /// worker has it already.
    pub async fn run_job_now(&self, job_id: &str) -> Result<Option<Run>> {
        let Some((job, run)) = self.store.claim_job(&self.id, job_id).await? else {
            return Ok(None);
        };
        let run_id = run.id.clone();
        self.execute(job, run).await?;
        self.store.run(&run_id, false).await.map(Some)
    }

    /// Execute a claimed job: lay out its inputs, run the check off the async threads while its lease is
    /// renewed and its progress recorded, close the run, and only if this worker still held the job, store the
    /// findings and notify (a run whose lease was lost and recovered counts for nothing).
    pub async fn execute(&self, job: Job, run: Run) -> Result<()> {
        // The lease is renewed from the claim on, also while waiting for the heavy slot.
        let _renewer = AbortOnDrop({
            let (store, job_id, run_id, me) = (
                self.store.clone(),
                job.id.clone(),
                run.id.clone(),
                self.id.clone(),
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(15)).await;
                    if !store.renew(&job_id, &run_id, &me).await.unwrap_or(true) {
                        eprintln!("aegis worker: lost the lease of job {job_id}; its result will not count");
                        return;
                    }
                }
            })
        });
        let heavy = if job.kind.is_heavy() {
            Some(
                self.heavy
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::Check(e.to_string()))?,
            )
        } else {
            None
        };
        let work = self.store.data_dir().join("work").join(&run.id);
        let result = self.execute_in(&job, &run, &work).await;
        let _ = std::fs::remove_dir_all(&work);
        drop(heavy);
        let (status, summary, error, report, done) = match result {
            Ok((Outcome::Done(report), asset, version)) => {
                let summary = checks::summary(&report.findings);
                (
                    RunStatus::Done,
                    summary,
                    String::new(),
                    Some(report),
                    Some((asset, version)),
                )
            }
            Ok((Outcome::Skipped(why), _, _)) => {
                (RunStatus::Skipped, "skipped".into(), why, None, None)
            }
            Err(e) => (
                RunStatus::Failed,
                "failed".into(),
                e.to_string(),
                None,
                None,
            ),
        };
        // Findings first, while the claim is still this run's: a run is `done` only once its findings are
        // stored, and a run that lost its lease stores nothing.
        let mut outcome = None;
        if let (Some(report), Some((asset, version))) = (&report, &done) {
            if self.store.renew(&job.id, &run.id, &self.id).await? {
                let o = self
                    .store
                    .ingest(
                        &asset.id,
                        &version.id,
                        &version.filename,
                        job.kind.as_str(),
                        &run.id,
                        &report.findings,
                        true,
                    )
                    .await?;
                outcome = Some((asset.tags.clone(), o));
            }
        }
        self.store
            .finish(
                &job,
                &run.id,
                &self.id,
                status,
                &summary,
                &error,
                report.as_ref(),
            )
            .await?;
        if let Some(r) = &report {
            self.store
                .set_duration(&run.id, r.duration_ms as i64)
                .await?;
        }
        if let Some((tags, o)) = outcome {
            self.store.notify_findings(&tags, &o).await?;
        }
        Ok(())
    }

    async fn execute_in(
        &self,
        job: &Job,
        run: &Run,
        work: &std::path::Path,
    ) -> Result<(Outcome, Asset, Version)> {
        let asset = self
            .store
            .find_asset(&job.asset_id)
            .await?
            .ok_or_else(|| Error::Check("the asset was removed before its check ran".into()))?;
        let version = self.store.version(&job.version_id).await?;
        if job.kind.loads_model() {
            if let Some(why) = self.store.unsafe_to_load(&asset, &version).await? {
                return Ok((Outcome::Skipped(why), asset, version));
            }
        }
        let prepared = self.prepare(&asset, &version, work).await?;
        let progress = Progress::default();
        let settings = self.config.settings.clone();
        let kind = job.kind;
        let bar = progress.clone();
        let mut task =
            tokio::task::spawn_blocking(move || checks::execute(kind, &prepared, &settings, &bar));
        let outcome = loop {
            tokio::select! {
                done = &mut task => {
                    break done.map_err(|e| Error::Check(format!("the check stopped: {e}")))??;
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    let (fraction, stage) = progress.get();
                    let _ = self.store.progress(&run.id, fraction, &stage).await;
                }
            }
        };
        Ok((outcome, asset, version))
    }

    /// Lay out the version, its signature and the linked data under `work`.
    async fn prepare(
        &self,
        asset: &Asset,
        version: &Version,
        work: &std::path::Path,
    ) -> Result<Prepared> {
        let data_dir = self.store.data_dir().to_path_buf();
        let _ = std::fs::remove_dir_all(work);
        std::fs::create_dir_all(work).map_err(Error::io("create", work))?;
        let path = work.join(&version.filename);
        let files = layout(version);
        objects::materialize(&data_dir, &files, work, self.store.at_rest())?;
        let signature = match &version.signature {
            Some(sig) => {
                objects::materialize(
                    &data_dir,
                    std::slice::from_ref(sig),
                    work,
                    self.store.at_rest(),
                )?;
                Some(work.join(&sig.path))
            }
            None => None,
        };
        let mut prepared = Prepared {
            asset: asset.clone(),
            version: version.clone(),
            work: work.to_path_buf(),
            path,
            signature,
            test: None,
            train: None,
            baseline: None,
        };
        // Linked data lies apart from the version's own files (which may be a directory named `test`).
        let lay_out = |dir: &str, asset: Asset, version: Version| -> Result<DataInput> {
            let sub = work.join(".aegis-inputs").join(dir);
            let files = layout(&version);
            objects::materialize(&data_dir, &files, &sub, self.store.at_rest())?;
            let path: PathBuf = sub.join(&version.filename);
            Ok(DataInput {
                asset,
                version,
                path,
            })
        };
        if asset.kind != AssetKind::Dataset {
            for (relation, data) in self.store.links(&asset.id).await? {
                let Some(v) = data.latest.clone() else {
                    continue;
                };
                match relation {
                    Relation::EvaluatedOn if prepared.test.is_none() => {
                        prepared.test = Some(lay_out("test", data, v)?);
                    }
                    Relation::TrainedOn if prepared.train.is_none() => {
                        prepared.train = Some(lay_out("train", data, v)?);
                    }
                    _ => {}
                }
            }
        } else if version.seq > 1 {
            if let Some(first) = self
                .store
                .versions(&asset.id)
                .await?
                .into_iter()
                .find(|v| v.seq == 1)
            {
                prepared.baseline = Some(lay_out("baseline", asset.clone(), first)?);
            }
        }
        Ok(prepared)
    }
}

/// A version's files as they are laid out under the work directory: a single file under its name, a
/// directory's files under the directory's name.
fn layout(version: &Version) -> Vec<objects::StoredFile> {
    if version.files.len() == 1 && version.files[0].path == version.filename {
        return version.files.clone();
    }
    version
        .files
        .iter()
        .map(|f| objects::StoredFile {
            path: format!("{}/{}", version.filename, f.path),
            ..f.clone()
        })
        .collect()
}

/// A task aborted when this handle is dropped, whichever way the scope that holds it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
