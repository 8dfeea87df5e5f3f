//! The persistent job queue and the runs it produces.
//!
//! A **job** asks for one check on one asset version. Workers of any replica claim jobs with one atomic
//! statement: on PostgreSQL the candidate row is picked `FOR UPDATE SKIP LOCKED`, so two replicas never claim
//! the same job and neither waits for the other; on SQLite the database has one writer, which makes the same
//! statement atomic. The claim is guarded by `state = 'queued'` as well, so even a stale candidate cannot be
//! claimed twice. A claimed job holds a **lease** its worker renews; a worker that crashes or is restarted stops
//! renewing, and [`Store::recover`] marks its run failed with the reason and puts the job back in the queue (at
//! most [`MAX_ATTEMPTS`] times), so nothing is lost and nothing stays "running".
//!
//! A **run** is one execution: status, progress, timings, the full report as the CLI would write it, and a
//! one-line summary.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::checks::CheckKind;
use crate::{now_secs, Backend, Error, Result, Store};

/// How many times a job is tried before it is left failed.
pub const MAX_ATTEMPTS: i64 = 3;
/// How long a claim lasts without renewal, in seconds.
pub const LEASE_SECS: i64 = 60;

/// A claimed job.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Job id.
    pub id: String,
    /// Asset id.
    pub asset_id: String,
    /// Version id.
    pub version_id: String,
    /// Which check.
    pub kind: CheckKind,
    /// Why it runs: `new_version`, `on_demand`, `schedule`, `retry`.
    pub cause: String,
    /// 1 on the first try.
    pub attempt: i64,
}

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// In progress.
    Running,
    /// Finished; its findings are in the report.
    Done,
    /// Could not run to the end; `error` says why.
    Failed,
    /// Not applicable to this asset yet (missing inputs); `error` says what to add.
    Skipped,
}

impl RunStatus {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Failed => "failed",
            RunStatus::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Result<RunStatus> {
        Ok(match s {
            "running" => RunStatus::Running,
            "done" => RunStatus::Done,
            "failed" => RunStatus::Failed,
            "skipped" => RunStatus::Skipped,
            other => return Err(Error::Corrupt(format!("unknown run status {other:?}"))),
        })
    }
}

/// One execution of a check.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Run id.
    pub id: String,
    /// The job it executes.
    pub job_id: String,
    /// Asset id.
    pub asset_id: String,
    /// Version id.
    pub version_id: String,
    /// Which check.
    pub kind: CheckKind,
    /// Why it ran.
    pub cause: String,
    /// Status.
    pub status: RunStatus,
    /// 0 to 1.
    pub progress: f64,
    /// What it is doing now.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stage: String,
    /// Unix seconds.
    pub started: i64,
    /// Unix seconds (0 while running).
    pub finished: i64,
    /// Wall time.
    pub duration_ms: i64,
    /// The worker that ran it.
    pub worker: String,
    /// One line: the findings by severity, or what went wrong.
    pub summary: String,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    /// The full report (the CLI's JSON), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
}

/// Counts of jobs by state, for `/metrics` and the console.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueCounts {
    /// Waiting.
    pub queued: i64,
    /// Claimed.
    pub running: i64,
    /// Finished.
    pub done: i64,
    /// Given up.
    pub failed: i64,
}

const RUN_COLUMNS: &str =
    "id, job_id, asset_id, version_id, kind, cause, status, progress, stage, started, \
                           finished, duration_ms, worker, summary, error";

impl Store {
    /// Queue a check of a version, due at `due` (Unix seconds). A job for the same version and check that is
    /// already waiting is not queued twice; its id is returned instead.
    pub async fn enqueue(
        &self,
        asset_id: &str,
        version_id: &str,
        kind: CheckKind,
        cause: &str,
        due: i64,
    ) -> Result<String> {
        let _guard = self.write_guard().await;
        if let Some(row) = sqlx::query(
            "SELECT id FROM jobs WHERE asset_id = $1 AND version_id = $2 AND kind = $3 AND state = 'queued'",
        )
        .bind(asset_id)
        .bind(version_id)
        .bind(kind.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::db("read the queue"))?
        {
            return row.try_get("id").map_err(Error::db("read the queue"));
        }
        let id = crate::ids::new_id("job");
        sqlx::query(
            "INSERT INTO jobs (id, asset_id, version_id, kind, cause, state, due, created)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7)",
        )
        .bind(&id)
        .bind(asset_id)
        .bind(version_id)
        .bind(kind.as_str())
        .bind(cause)
        .bind(due)
        .bind(now_secs())
        .execute(&self.pool)
        .await
        .map_err(Error::db("queue a job"))?;
        Ok(id)
    }

    /// Claim the oldest due job for `worker` and open its run. `None` when nothing is due.
    pub async fn claim(&self, worker: &str) -> Result<Option<(Job, Run)>> {
        self.claim_where(worker, None).await
    }

    /// Claim one queued job, due or not (`aegis check run --wait`). `None` when it is no longer queued.
    pub async fn claim_job(&self, worker: &str, job_id: &str) -> Result<Option<(Job, Run)>> {
        self.claim_where(worker, Some(job_id)).await
    }

    async fn claim_where(&self, worker: &str, only: Option<&str>) -> Result<Option<(Job, Run)>> {
        let now = now_secs();
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let pick = if only.is_some() {
            "id = $4"
        } else {
            "due <= $3 AND $4 = ''"
        };
        // A check that loads the model waits for the scan of the same version: nothing loads a file the
        // scanner has not read.
        let after_scan = "NOT (kind IN ('robustness', 'privacy', 'extraction') AND EXISTS (SELECT 1 FROM jobs s \
             WHERE s.version_id = jobs.version_id AND s.kind = 'scan' AND s.state IN ('queued', 'running')))";
        let sql = format!(
            "UPDATE jobs SET state = 'running', worker = $1, lease_until = $2, attempts = attempts + 1, run_id = $5
             WHERE state = 'queued' AND id = (SELECT id FROM jobs WHERE state = 'queued' AND {pick}
                                             AND {after_scan} ORDER BY due, created LIMIT 1 {lock})
             RETURNING id, asset_id, version_id, kind, cause, attempts"
        );
        // The run id is part of the claim itself, so a stale execution of the same job can never match it.
        let run_id = crate::ids::new_id("run");
        let _guard = self.write_guard().await;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(worker)
            .bind(now + LEASE_SECS)
            .bind(now)
            .bind(only.unwrap_or(""))
            .bind(&run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db("claim a job"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let s = |n: &str| {
            row.try_get::<String, _>(n)
                .map_err(Error::db("claim a job"))
        };
        let job = Job {
            id: s("id")?,
            asset_id: s("asset_id")?,
            version_id: s("version_id")?,
            kind: CheckKind::parse(&s("kind")?)?,
            cause: s("cause")?,
            attempt: row.try_get("attempts").map_err(Error::db("claim a job"))?,
        };
        sqlx::query(
            "INSERT INTO runs (id, job_id, asset_id, version_id, kind, cause, status, started, started_us, worker)
             VALUES ($1, $2, $3, $4, $5, $6, 'running', $7, $9, $8)",
        )
        .bind(&run_id)
        .bind(&job.id)
        .bind(&job.asset_id)
        .bind(&job.version_id)
        .bind(job.kind.as_str())
        .bind(&job.cause)
        .bind(now)
        .bind(worker)
        .bind(crate::now_micros())
        .execute(&self.pool)
        .await
        .map_err(Error::db("open a run"))?;
        drop(_guard);
        let run = self.run(&run_id, false).await?;
        Ok(Some((job, run)))
    }

    /// Record a run made elsewhere (an imported report) as a finished job and run. Returns the run id.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_finished(
        &self,
        asset_id: &str,
        version_id: &str,
        kind: CheckKind,
        cause: &str,
        worker: &str,
        summary: &str,
        report: &aegis_core::Report,
    ) -> Result<String> {
        let now = now_secs();
        let job_id = crate::ids::new_id("job");
        let run_id = crate::ids::new_id("run");
        let _guard = self.write_guard().await;
        sqlx::query(
            "INSERT INTO jobs (id, asset_id, version_id, kind, cause, state, due, created, attempts, worker, run_id)
             VALUES ($1, $2, $3, $4, $5, 'done', $6, $6, 1, $7, $8)",
        )
        .bind(&job_id)
        .bind(asset_id)
        .bind(version_id)
        .bind(kind.as_str())
        .bind(cause)
        .bind(now)
        .bind(worker)
        .bind(&run_id)
        .execute(&self.pool)
        .await
        .map_err(Error::db("record an imported run"))?;
        sqlx::query(
            "INSERT INTO runs (id, job_id, asset_id, version_id, kind, cause, status, progress, started, started_us,
             finished, duration_ms, worker, summary, report)
             VALUES ($1, $2, $3, $4, $5, $6, 'done', 1.0, $7, $8, $7, $9, $10, $11, $12)",
        )
        .bind(&run_id)
        .bind(&job_id)
        .bind(asset_id)
        .bind(version_id)
        .bind(kind.as_str())
        .bind(cause)
        .bind(now)
        .bind(crate::now_micros())
        .bind(report.duration_ms as i64)
        .bind(worker)
        .bind(summary)
        .bind(serde_json::to_string(report).unwrap_or_default())
        .execute(&self.pool)
        .await
        .map_err(Error::db("record an imported run"))?;
        Ok(run_id)
    }

    /// Renew the claim that opened run `run_id`; `false` when the job is no longer held by it (recovered, and
    /// perhaps claimed again by this or another worker).
    pub async fn renew(&self, job_id: &str, run_id: &str, worker: &str) -> Result<bool> {
        let _guard = self.write_guard().await;
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND worker = $3 AND state = 'running' AND run_id = $4",
        )
        .bind(now_secs() + LEASE_SECS)
        .bind(job_id)
        .bind(worker)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(Error::db("renew a job"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Record a running run's progress (0 to 1) and stage.
    pub async fn progress(&self, run_id: &str, fraction: f64, stage: &str) -> Result<()> {
        let _guard = self.write_guard().await;
        sqlx::query(
            "UPDATE runs SET progress = $1, stage = $2 WHERE id = $3 AND status = 'running'",
        )
        .bind(fraction.clamp(0.0, 1.0))
        .bind(stage)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(Error::db("record progress"))?;
        Ok(())
    }

    /// Close a run and its job. A job this worker no longer holds (its lease ran out and another replica
    /// recovered it) is left alone, and the run is recorded as failed for that reason.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        job: &Job,
        run_id: &str,
        worker: &str,
        status: RunStatus,
        summary: &str,
        error: &str,
        report: Option<&aegis_core::Report>,
    ) -> Result<bool> {
        let now = now_secs();
        let _guard = self.write_guard().await;
        let job_state = if status == RunStatus::Failed {
            "failed"
        } else {
            "done"
        };
        let held = sqlx::query(
            "UPDATE jobs SET state = $1, reason = $2
             WHERE id = $3 AND worker = $4 AND state = 'running' AND run_id = $5",
        )
        .bind(job_state)
        .bind(error)
        .bind(&job.id)
        .bind(worker)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(Error::db("close a job"))?
        .rows_affected()
            == 1;
        let (status, error) = if held {
            (status, error.to_string())
        } else {
            (
                RunStatus::Failed,
                "this worker lost the job's lease (it was too slow to renew it); the job was requeued".into(),
            )
        };
        let report = report
            .map(|r| serde_json::to_string(r).unwrap_or_default())
            .unwrap_or_default();
        sqlx::query(
            "UPDATE runs SET status = $1, progress = 1.0, finished = $2, duration_ms = ($2 - started) * 1000,
             summary = $3, error = $4, report = $5 WHERE id = $6 AND status = 'running'",
        )
        .bind(status.as_str())
        .bind(now)
        .bind(summary)
        .bind(&error)
        .bind(report)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(Error::db("close a run"))?;
        Ok(held)
    }

    /// Set a finished run's precise wall time (the row holds whole seconds from the clock otherwise).
    pub async fn set_duration(&self, run_id: &str, ms: i64) -> Result<()> {
        let _guard = self.write_guard().await;
        sqlx::query("UPDATE runs SET duration_ms = $1 WHERE id = $2")
            .bind(ms)
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(Error::db("close a run"))?;
        Ok(())
    }

    /// Jobs whose worker stopped renewing its lease before `now` (crash, restart, lost replica): their run is
    /// marked failed with the reason and the job goes back to the queue, or is left failed after
    /// [`MAX_ATTEMPTS`]. With `worker_prefix`, this process's own earlier incarnations (same prefix, another
    /// boot) are recovered at once, without waiting for their leases. Returns how many were recovered.
    pub async fn recover(&self, now: i64, worker_prefix: Option<&str>, me: &str) -> Result<usize> {
        let rows = sqlx::query(
            "SELECT id, run_id, attempts, worker, lease_until FROM jobs WHERE state = 'running'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("read running jobs"))?;
        let mut recovered = 0;
        for row in rows {
            let s = |n: &str| {
                row.try_get::<String, _>(n)
                    .map_err(Error::db("read running jobs"))
            };
            let (id, run_id, worker) = (s("id")?, s("run_id")?, s("worker")?);
            let attempts: i64 = row
                .try_get("attempts")
                .map_err(Error::db("read running jobs"))?;
            let lease: i64 = row
                .try_get("lease_until")
                .map_err(Error::db("read running jobs"))?;
            let mine_before = worker_prefix.is_some_and(|p| worker.starts_with(p)) && worker != me;
            if lease >= now && !mine_before {
                continue;
            }
            let requeue = attempts < MAX_ATTEMPTS;
            let reason = if mine_before {
                "aegis was restarted while this check ran"
            } else {
                "the worker running this check stopped answering (crash, restart or lost replica)"
            };
            let _guard = self.write_guard().await;
            // Guarded by the worker and lease read above: if the worker renewed in between, nothing changes.
            let done = sqlx::query(
                "UPDATE jobs SET state = $1, worker = '', lease_until = 0, due = $2, reason = $3, cause = $4
                 WHERE id = $5 AND state = 'running' AND worker = $6 AND lease_until = $7",
            )
            .bind(if requeue { "queued" } else { "failed" })
            .bind(now.min(now_secs()))
            .bind(reason)
            .bind(if requeue { "retry" } else { "gave_up" })
            .bind(&id)
            .bind(&worker)
            .bind(lease)
            .execute(&self.pool)
            .await
            .map_err(Error::db("recover a job"))?;
            if done.rows_affected() != 1 {
                continue;
            }
            let error = if requeue {
                format!(
                    "{reason}; the check was queued again (attempt {} of {MAX_ATTEMPTS})",
                    attempts + 1
                )
            } else {
                format!("{reason}; given up after {MAX_ATTEMPTS} attempts")
            };
            sqlx::query(
                "UPDATE runs SET status = 'failed', finished = $1, duration_ms = ($1 - started) * 1000,
                 summary = 'failed: interrupted', error = $2 WHERE id = $3 AND status = 'running'",
            )
            .bind(now)
            .bind(&error)
            .bind(&run_id)
            .execute(&self.pool)
            .await
            .map_err(Error::db("recover a run"))?;
            recovered += 1;
        }
        Ok(recovered)
    }

    /// One run, with its full report when `with_report`.
    pub async fn run(&self, id: &str, with_report: bool) -> Result<Run> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS}, report FROM runs WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::db("read a run"))?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no run {id}; `aegis check list ASSET` shows the runs"
            ))
        })?;
        run_from_row(&row, with_report)
    }

    /// The runs of an asset (of one version), newest first.
    pub async fn runs(
        &self,
        asset_id: &str,
        version_id: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Run>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE asset_id = $1 AND ($2 = '' OR version_id = $2)
             ORDER BY started_us DESC LIMIT $3"
        )))
        .bind(asset_id)
        .bind(version_id.unwrap_or(""))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await
        .map_err(Error::db("list runs"))?;
        rows.iter().map(|r| run_from_row(r, false)).collect()
    }

    /// The latest finished run of each check of an asset.
    pub async fn latest_runs(&self, asset_id: &str) -> Result<Vec<Run>> {
        let mut out: Vec<Run> = Vec::new();
        for kind in CheckKind::ALL {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE asset_id = $1 AND kind = $2 AND status <> 'running'
                 ORDER BY started_us DESC LIMIT 1"
            )))
            .bind(asset_id)
            .bind(kind.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db("list runs"))?;
            if let Some(row) = row {
                out.push(run_from_row(&row, false)?);
            }
        }
        Ok(out)
    }

    /// A job's state (`queued`, `running`, `done`, `failed`) and its latest run, if it has one.
    pub async fn job(&self, job_id: &str) -> Result<(String, Option<Run>)> {
        let row = sqlx::query("SELECT state, run_id FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::db("read a job"))?
            .ok_or_else(|| Error::NotFound(format!("no job {job_id}")))?;
        let state: String = row.try_get("state").map_err(Error::db("read a job"))?;
        let run_id: String = row.try_get("run_id").map_err(Error::db("read a job"))?;
        let run = if run_id.is_empty() {
            None
        } else {
            Some(self.run(&run_id, false).await?)
        };
        Ok((state, run))
    }

    /// Jobs of an asset still waiting or running.
    pub async fn pending_jobs(&self, asset_id: &str) -> Result<i64> {
        sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE asset_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(asset_id)
        .fetch_one(&self.pool)
        .await
        .and_then(|r| r.try_get("n"))
        .map_err(Error::db("count jobs"))
    }

    /// Jobs by state.
    pub async fn queue_counts(&self) -> Result<QueueCounts> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(Error::db("count jobs"))?;
        let mut c = QueueCounts::default();
        for r in rows {
            let n: i64 = r.try_get("n").map_err(Error::db("count jobs"))?;
            match r
                .try_get::<String, _>("state")
                .map_err(Error::db("count jobs"))?
                .as_str()
            {
                "queued" => c.queued = n,
                "running" => c.running = n,
                "done" => c.done = n,
                _ => c.failed += n,
            }
        }
        Ok(c)
    }
}

fn run_from_row(r: &AnyRow, with_report: bool) -> Result<Run> {
    let s = |n: &str| r.try_get::<String, _>(n).map_err(Error::db("read a run"));
    let i = |n: &str| r.try_get::<i64, _>(n).map_err(Error::db("read a run"));
    let report = if with_report {
        let text = s("report")?;
        (!text.is_empty())
            .then(|| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| Error::Corrupt(format!("run report: {e}")))?
    } else {
        None
    };
    Ok(Run {
        id: s("id")?,
        job_id: s("job_id")?,
        asset_id: s("asset_id")?,
        version_id: s("version_id")?,
        kind: CheckKind::parse(&s("kind")?)?,
        cause: s("cause")?,
        status: RunStatus::parse(&s("status")?)?,
        progress: r.try_get("progress").map_err(Error::db("read a run"))?,
        stage: s("stage")?,
        started: i("started")?,
        finished: i("finished")?,
        duration_ms: i("duration_ms")?,
        worker: s("worker")?,
        summary: s("summary")?,
        error: s("error")?,
        report,
    })
}
