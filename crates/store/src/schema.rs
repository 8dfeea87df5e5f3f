//! The store's tables, created beside the gateway's in the same database.
//!
//! One statement per entry (PostgreSQL's extended protocol takes one at a time); `IF NOT EXISTS` everywhere so
//! replicas starting together and restarts are harmless. Times are Unix seconds, flags `BIGINT` 0/1, lists and
//! structured values JSON text.

use sqlx::AnyPool;

use crate::{Error, Result};

const SCHEMA: &[&str] = &[
    // A model, dataset or endpoint. `removed` hides it from lists without losing its history.
    "CREATE TABLE IF NOT EXISTS assets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        role TEXT NOT NULL DEFAULT '',
        owner TEXT NOT NULL DEFAULT '',
        tags TEXT NOT NULL DEFAULT '[]',
        endpoint TEXT NOT NULL DEFAULT '',
        settings TEXT NOT NULL DEFAULT '{}',
        created BIGINT NOT NULL,
        removed BIGINT NOT NULL DEFAULT 0)",
    "CREATE UNIQUE INDEX IF NOT EXISTS assets_name ON assets (name)",
    // One content version of an asset: its SHA-256 (of the file, or of the manifest of a directory).
    "CREATE TABLE IF NOT EXISTS asset_versions (
        id TEXT PRIMARY KEY,
        asset_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        filename TEXT NOT NULL,
        size BIGINT NOT NULL,
        files TEXT NOT NULL DEFAULT '[]',
        signature TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '',
        created BIGINT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS asset_versions_seq ON asset_versions (asset_id, seq)",
    // `trained_on`, `evaluated_on`, `reference`: from a model to a dataset.
    "CREATE TABLE IF NOT EXISTS asset_links (
        from_asset TEXT NOT NULL,
        relation TEXT NOT NULL,
        to_asset TEXT NOT NULL,
        PRIMARY KEY (from_asset, relation, to_asset))",
    // When each check of an asset runs by itself: every `interval_secs`, or by a cron expression.
    "CREATE TABLE IF NOT EXISTS schedules (
        asset_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        interval_secs BIGINT NOT NULL DEFAULT 0,
        cron TEXT NOT NULL DEFAULT '',
        next_due BIGINT NOT NULL,
        enabled BIGINT NOT NULL DEFAULT 1,
        PRIMARY KEY (asset_id, kind))",
    // The persistent queue. A job is claimed by one worker (state `running`, a lease it renews); a lease that
    // runs out means the worker died, and the job is requeued with its run marked failed.
    "CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        asset_id TEXT NOT NULL,
        version_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        cause TEXT NOT NULL,
        state TEXT NOT NULL,
        due BIGINT NOT NULL,
        created BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        worker TEXT NOT NULL DEFAULT '',
        lease_until BIGINT NOT NULL DEFAULT 0,
        run_id TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX IF NOT EXISTS jobs_due ON jobs (state, due)",
    "CREATE TABLE IF NOT EXISTS runs (
        id TEXT PRIMARY KEY,
        job_id TEXT NOT NULL,
        asset_id TEXT NOT NULL,
        version_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        cause TEXT NOT NULL,
        status TEXT NOT NULL,
        progress DOUBLE PRECISION NOT NULL DEFAULT 0,
        stage TEXT NOT NULL DEFAULT '',
        started BIGINT NOT NULL,
        started_us BIGINT NOT NULL,
        finished BIGINT NOT NULL DEFAULT 0,
        duration_ms BIGINT NOT NULL DEFAULT 0,
        worker TEXT NOT NULL DEFAULT '',
        summary TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '',
        report TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX IF NOT EXISTS runs_asset ON runs (asset_id, started_us)",
    // One row per fingerprint: the finding as last seen, its state and triage.
    "CREATE TABLE IF NOT EXISTS findings (
        fingerprint TEXT PRIMARY KEY,
        asset_id TEXT NOT NULL,
        version_id TEXT NOT NULL,
        source TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity BIGINT NOT NULL,
        title TEXT NOT NULL,
        message TEXT NOT NULL,
        location TEXT NOT NULL,
        evidence TEXT NOT NULL,
        remediation TEXT NOT NULL,
        refs TEXT NOT NULL,
        state TEXT NOT NULL,
        justification TEXT NOT NULL DEFAULT '',
        owner TEXT NOT NULL DEFAULT '',
        accepted_until BIGINT NOT NULL DEFAULT 0,
        first_seen BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        resolved_at BIGINT NOT NULL DEFAULT 0,
        occurrences BIGINT NOT NULL DEFAULT 1,
        last_run TEXT NOT NULL DEFAULT '',
        updated BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS findings_asset ON findings (asset_id, source)",
    // Every change of a finding: detected, resolved, reopened, triaged, accepted, expired.
    "CREATE TABLE IF NOT EXISTS finding_events (
        id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        ts BIGINT NOT NULL,
        at_us BIGINT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT '',
        run_id TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX IF NOT EXISTS finding_events_fp ON finding_events (fingerprint, at_us)",
    "CREATE TABLE IF NOT EXISTS channels (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        config TEXT NOT NULL,
        min_severity BIGINT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        digest_secs BIGINT NOT NULL DEFAULT 0,
        enabled BIGINT NOT NULL DEFAULT 1,
        created BIGINT NOT NULL)",
    // Messages waiting for a channel. A digest channel gathers events into one open message until it is due.
    "CREATE TABLE IF NOT EXISTS outbox (
        id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        state TEXT NOT NULL,
        created BIGINT NOT NULL,
        due BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        events TEXT NOT NULL,
        last_error TEXT NOT NULL DEFAULT '',
        sent BIGINT NOT NULL DEFAULT 0,
        claimed_until BIGINT NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, due)",
];

/// Create the store's tables when absent.
pub(crate) async fn migrate(pool: &AnyPool) -> Result<()> {
    for statement in SCHEMA {
        sqlx::query(sqlx::AssertSqlSafe(*statement))
            .execute(pool)
            .await
            .map_err(Error::db("create the store's tables"))?;
    }
    Ok(())
}
