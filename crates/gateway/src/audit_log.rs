//! The hash-chained, append-only audit log: who did what, when, to which model, and what the gateway decided.
//!
//! Every record carries the SHA-256 of its predecessor (`prev_hash`) and its own hash over an unambiguous,
//! length-prefixed encoding of its sequence number, time and every field ([`record_hash`]), so editing,
//! removing or reordering a stored record breaks the chain and [`verify`] names the first bad record. The
//! `audit_head` row (id 1) holds the last sequence number and hash; it also catches a removed tail.
//!
//! Writes happen off the request path: handlers call [`AuditLog::record`], which only queues the event on a
//! bounded channel (waiting for room when it is full: backpressure, never a dropped record), and one writer task
//! per process appends batches with [`append`]. Each batch is one transaction whose first statement updates the
//! head row, which takes SQLite's write lock or PostgreSQL's row lock, so several writers (replicas sharing a
//! PostgreSQL database, or two processes on one SQLite file) serialise and extend one chain. Any failure rolls the
//! whole batch back, so a crash mid-write leaves the previous, consistent chain; the writer retries the batch with
//! backoff instead of dropping it.
//!
//! Limits of the design: someone with write access to the database who recomputes every hash after an edit (and
//! the head) is not detected by the chain alone; export the head hash elsewhere (a log shipper, a signed report) to
//! anchor it. Events still queued in memory when the process is killed are lost (a clean shutdown flushes them).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use tokio::sync::{mpsc, watch};

use crate::db::Db;
use crate::error::{Error, Result};

pub use crate::db::GENESIS_HASH;

/// Events the in-memory queue holds before [`AuditLog::record`] waits for the writer.
pub const QUEUE_CAPACITY: usize = 16_384;
/// Most events appended in one transaction.
/// How long the writer waits after the first event of a batch for more to arrive.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

const MAX_BATCH: usize = 512;
/// Rows per multi-row `INSERT` (14 parameters each; well under SQLite's and PostgreSQL's limits).
const INSERT_CHUNK: usize = 64;
/// Rows per page when verifying.
const VERIFY_PAGE: i64 = 10_000;
/// Most rows [`list`] returns at once.
const MAX_LIST: i64 = 10_000;
/// Longest stored text field, in bytes (longer values are truncated before hashing).
const MAX_FIELD_BYTES: usize = 1024;
/// Longest stored `detail`, in bytes.
const MAX_DETAIL_BYTES: usize = 8192;
/// Write attempts for one batch once shutdown was asked for (before that, the writer retries forever).
const SHUTDOWN_ATTEMPTS: u32 = 5;
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The `audit_log` columns in declaration order (a macro so statements stay `&'static str`).
macro_rules! columns {
    () => {
        "seq, ts_ms, kind, actor, key_id, model, route, input_digest, decision, status, latency_us, detail, \
         prev_hash, hash"
    };
}

/// One thing that happened, as handlers report it (the writer adds sequence number, time and hashes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// `inference`, `admin`, `auth`, `model`, `denied`, `extraction` (a key raised the model-extraction alarm) or
    /// `drift` (a live drift window alerted).
    pub kind: String,
    /// Who: a username, or the key's owner for inference.
    pub actor: String,
    /// The API key's id (never its secret), or empty.
    pub key_id: String,
    /// The model concerned, or empty.
    pub model: String,
    /// The route (path template or admin action).
    pub route: String,
    /// `sha256:<hex>` of the request body ([`input_digest`]), or empty.
    pub input_digest: String,
    /// What the gateway decided (`allow`, `deny:rate_limit`, `create_key` …).
    pub decision: String,
    /// HTTP status returned.
    pub status: u16,
    /// Time spent answering, in microseconds.
    pub latency_us: u64,
    /// Free text (no secrets, no request bodies).
    pub detail: String,
}

/// A stored record: an event with its place in the chain. Its JSON is flat (the event's fields beside `seq`,
/// `ts_ms` and the hashes), and it dereferences to its event, so `record.decision` reads the event's field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When the event was recorded (Unix milliseconds).
    pub ts_ms: i64,
    /// What happened.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Hash of the previous record ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// [`record_hash`] of this record.
    pub hash: String,
}

impl std::ops::Deref for AuditRecord {
    type Target = AuditEvent;

    fn deref(&self) -> &AuditEvent {
        &self.event
    }
}

impl AuditRecord {
    /// The event this record holds.
    pub fn event(&self) -> AuditEvent {
        self.event.clone()
    }
}

/// `sha256:` and the hex SHA-256 of a request body: what the log keeps instead of the body.
pub fn input_digest(body: &[u8]) -> String {
    format!("sha256:{}", crate::util::sha256_hex(body))
}

/// The hash of a record: lower-case hex SHA-256 over a domain tag, then `prev_hash`, `seq`, `ts_ms` and every
/// field of `e` in declaration order. Strings are prefixed with their byte length and integers are fixed-width
/// big-endian, so no two different records encode to the same bytes.
pub fn record_hash(prev_hash: &str, seq: i64, ts_ms: i64, e: &AuditEvent) -> String {
    fn text(h: &mut Sha256, s: &str) {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    }
    let mut h = Sha256::new();
    h.update(b"aegis-audit-v1\0");
    text(&mut h, prev_hash);
    h.update(seq.to_be_bytes());
    h.update(ts_ms.to_be_bytes());
    for s in [
        &e.kind,
        &e.actor,
        &e.key_id,
        &e.model,
        &e.route,
        &e.input_digest,
        &e.decision,
    ] {
        text(&mut h, s);
    }
    h.update(u64::from(e.status).to_be_bytes());
    h.update(e.latency_us.to_be_bytes());
    text(&mut h, &e.detail);
    hex::encode(h.finalize())
}

/// `s` without NUL characters (PostgreSQL `TEXT` refuses them, which would wedge the writer on one hostile
/// route name) and cut to at most `max` bytes on a character boundary.
fn clean_text(s: &str, max: usize) -> String {
    let mut out: String = s.replace('\0', "\u{fffd}");
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The event exactly as it will be stored (and hashed): texts cleaned and bounded, latency within `BIGINT`.
fn normalise(e: &AuditEvent) -> AuditEvent {
    AuditEvent {
        kind: clean_text(&e.kind, MAX_FIELD_BYTES),
        actor: clean_text(&e.actor, MAX_FIELD_BYTES),
        key_id: clean_text(&e.key_id, MAX_FIELD_BYTES),
        model: clean_text(&e.model, MAX_FIELD_BYTES),
        route: clean_text(&e.route, MAX_FIELD_BYTES),
        input_digest: clean_text(&e.input_digest, MAX_FIELD_BYTES),
        decision: clean_text(&e.decision, MAX_FIELD_BYTES),
        status: e.status,
        latency_us: e.latency_us.min(i64::MAX as u64),
        detail: clean_text(&e.detail, MAX_DETAIL_BYTES),
    }
}

/// Append `events` (each with its time in Unix milliseconds) to the chain in one transaction.
///
/// The first statement updates the head row, so concurrent writers (tasks, processes, replicas) wait for each
/// other; then each record gets the next sequence number and the previous record's hash, and the head moves to
/// the last one. Any failure rolls everything back, leaving the chain as it was.
pub async fn append(db: &Db, events: &[(i64, AuditEvent)]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let _guard = db.write_guard().await;
    let mut tx = db
        .pool()
        .begin()
        .await
        .map_err(Error::db("begin an audit write"))?;
    match append_in(&mut tx, events).await {
        Ok(()) => tx.commit().await.map_err(Error::db("commit audit records")),
        Err(e) => {
            // Dropping the transaction would also roll back; doing it here returns the connection clean.
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// The body of [`append`], inside a transaction the caller owns.
async fn append_in(conn: &mut AnyConnection, events: &[(i64, AuditEvent)]) -> Result<()> {
    let rows = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
        .fetch_all(&mut *conn)
        .await
        .map_err(Error::db("lock the audit head"))?;
    let head = rows
        .first()
        .ok_or_else(|| Error::Corrupt("the audit_head row is missing".into()))?;
    let mut seq: i64 = head
        .try_get("seq")
        .map_err(Error::db("read the audit head"))?;
    let mut prev: String = head
        .try_get("hash")
        .map_err(Error::db("read the audit head"))?;

    let mut records = Vec::with_capacity(events.len());
    for (ts_ms, event) in events {
        let event = normalise(event);
        seq = seq
            .checked_add(1)
            .ok_or_else(|| Error::Corrupt("audit sequence overflow".into()))?;
        let hash = record_hash(&prev, seq, *ts_ms, &event);
        let prev_hash = std::mem::replace(&mut prev, hash.clone());
        records.push((seq, *ts_ms, event, prev_hash, hash));
    }
    // `prev` is now the last record's hash: the new head.

    // SQLite looks a `$N` parameter up by name in a linear list, so binding a 64-row chunk by number is quadratic;
    // plain `?` parameters are positional there. PostgreSQL only takes `$N`.
    let positional = conn.backend_name().eq_ignore_ascii_case("sqlite");
    for chunk in records.chunks(INSERT_CHUNK) {
        let mut sql = String::from(concat!("INSERT INTO audit_log (", columns!(), ") VALUES "));
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for j in 0..14 {
                if j > 0 {
                    sql.push(',');
                }
                if positional {
                    sql.push('?');
                } else {
                    sql.push_str(&format!("${}", i * 14 + j + 1));
                }
            }
            sql.push(')');
        }
        // Built from constants and parameter numbers only: nothing from an event reaches the SQL text.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, ts_ms, e, prev_hash, hash) in chunk {
            query = query
                .bind(*seq)
                .bind(*ts_ms)
                .bind(e.kind.as_str())
                .bind(e.actor.as_str())
                .bind(e.key_id.as_str())
                .bind(e.model.as_str())
                .bind(e.route.as_str())
                .bind(e.input_digest.as_str())
                .bind(e.decision.as_str())
                .bind(i64::from(e.status))
                .bind(e.latency_us as i64)
                .bind(e.detail.as_str())
                .bind(prev_hash.as_str())
                .bind(hash.as_str());
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(Error::db("insert audit records"))?;
    }

    let done = sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(prev.as_str())
        .execute(&mut *conn)
        .await
        .map_err(Error::db("move the audit head"))?;
    if done.rows_affected() != 1 {
        return Err(Error::Corrupt("the audit_head row is missing".into()));
    }
    Ok(())
}

/// What the writer task receives.
type Queued = (i64, AuditEvent);

/// A cheap, cloneable handle for queuing audit events; one writer task appends them.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Queued>,
}

/// Owns the writer task; [`AuditWriterHandle::shutdown`] flushes the queue.
#[derive(Debug)]
pub struct AuditWriterHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl AuditLog {
    /// Start the writer task on the current tokio runtime (queue of [`QUEUE_CAPACITY`] events).
    pub fn spawn(db: Db) -> (AuditLog, AuditWriterHandle) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(writer(db, rx, stop_rx));
        (AuditLog { tx }, AuditWriterHandle { stop, task })
    }

    /// Queue `event`, stamped with the current time. Waits while the queue is full (so a slow database slows
    /// the gateway down rather than losing records). If the writer has stopped, the event is reported on stderr.
    pub async fn record(&self, event: AuditEvent) {
        let ts_ms = crate::util::now_ms();
        if let Err(mpsc::error::SendError((_, event))) = self.tx.send((ts_ms, event)).await {
            eprintln!(
                "aegis: audit writer stopped; record lost: kind={} actor={} key={} route={} status={} ts_ms={ts_ms}",
                event.kind, event.actor, event.key_id, event.route, event.status
            );
        }
    }

    /// Events queued and not yet written (for the `aegis_audit_queue_depth` gauge).
    pub fn queue_depth(&self) -> i64 {
        (self.tx.max_capacity() - self.tx.capacity()) as i64
    }
}

impl AuditWriterHandle {
    /// Stop accepting events, write everything already queued, and wait for the writer. `log` is dropped here;
    /// other clones still alive get their events refused (and reported on stderr) from now on. Returns the write
    /// error that made the writer give up, if any (it retries a few times once shutting down).
    pub async fn shutdown(self, log: AuditLog) -> Result<()> {
        drop(log);
        // Err only when the writer already ended; joining tells why.
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::Server(format!("audit writer task failed: {e}"))),
        }
    }
}

/// The writer loop: one event, then whatever else is already queued (up to [`MAX_BATCH`]), appended together.
async fn writer(
    db: Db,
    mut rx: mpsc::Receiver<Queued>,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut listening = true;
    let mut batch: Vec<Queued> = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = if listening {
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    listening = false;
                    if changed.is_ok() {
                        // No new events; those already queued are still received, then `recv` ends.
                        rx.close();
                    }
                    continue;
                }
                event = rx.recv() => event,
            }
        } else {
            rx.recv().await
        };
        let Some(first) = first else {
            return Ok(());
        };
        batch.push(first);
        if listening {
            // Linger a moment so a busy gateway writes a few large batches instead of one transaction per
            // request (which would compete with the request path for the database's write lock).
            tokio::time::sleep(LINGER).await;
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        if let Err(e) = write_with_retry(&db, &batch, &stop).await {
            rx.close();
            let mut lost = batch.len();
            while rx.try_recv().is_ok() {
                lost += 1;
            }
            eprintln!(
                "aegis: audit writer gave up while shutting down; {lost} records not written: {e}"
            );
            return Err(e);
        }
        batch.clear();
    }
}

/// [`append`] until it succeeds, backing off from 100 ms to 5 s; once shutdown was asked for, give up after a few
/// attempts so the process can exit.
async fn write_with_retry(db: &Db, batch: &[Queued], stop: &watch::Receiver<bool>) -> Result<()> {
    let mut delay = BACKOFF_FIRST;
    let mut failures = 0u32;
    loop {
        match append(db, batch).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                failures += 1;
                if *stop.borrow() && failures >= SHUTDOWN_ATTEMPTS {
                    return Err(e);
                }
                eprintln!(
                    "aegis: audit write failed (attempt {failures}, {} records held): {e}; retrying in {} ms",
                    batch.len(),
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Records read (up to the head).
    pub records: i64,
    /// The head's sequence number: how many records the chain should have.
    pub head_seq: i64,
    /// The first problem found, if any.
    pub problem: Option<ChainProblem>,
}

/// Where the chain breaks first, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    /// The first bad record's sequence number.
    pub seq: i64,
    /// What is wrong, for people.
    pub reason: String,
}

/// A row as stored, before its integers are checked.
struct StoredRow {
    seq: i64,
    ts_ms: i64,
    texts: [String; 8], // kind, actor, key_id, model, route, input_digest, decision, detail
    status: i64,
    latency_us: i64,
    prev_hash: String,
    hash: String,
}

impl StoredRow {
    fn read(row: &sqlx::any::AnyRow) -> Result<StoredRow> {
        let text = |name: &str| {
            row.try_get::<String, _>(name)
                .map_err(Error::db("read an audit record"))
        };
        let int = |name: &str| {
            row.try_get::<i64, _>(name)
                .map_err(Error::db("read an audit record"))
        };
        Ok(StoredRow {
            seq: int("seq")?,
            ts_ms: int("ts_ms")?,
            texts: [
                text("kind")?,
                text("actor")?,
                text("key_id")?,
                text("model")?,
                text("route")?,
                text("input_digest")?,
                text("decision")?,
                text("detail")?,
            ],
            status: int("status")?,
            latency_us: int("latency_us")?,
            prev_hash: text("prev_hash")?,
            hash: text("hash")?,
        })
    }

    /// The record, or `None` when an integer is out of its type's range (only possible after an edit).
    fn record(self) -> Option<AuditRecord> {
        let status = u16::try_from(self.status).ok()?;
        let latency_us = u64::try_from(self.latency_us).ok()?;
        let [kind, actor, key_id, model, route, input_digest, decision, detail] = self.texts;
        Some(AuditRecord {
            seq: self.seq,
            ts_ms: self.ts_ms,
            event: AuditEvent {
                kind,
                actor,
                key_id,
                model,
                route,
                input_digest,
                decision,
                status,
                latency_us,
                detail,
            },
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// The chain check, one record at a time in sequence order.
struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    records: i64,
    problem: Option<ChainProblem>,
}

impl Verifier {
    fn new() -> Verifier {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            records: 0,
            problem: None,
        }
    }

    fn fail(&mut self, seq: i64, reason: String) {
        self.problem = Some(ChainProblem { seq, reason });
    }

    fn check(&mut self, row: StoredRow) {
        self.records += 1;
        if self.problem.is_some() {
            return;
        }
        let expected = self.expected_seq;
        if row.seq != expected {
            if row.seq > expected {
                let removed = if row.seq - expected == 1 {
                    format!("record {expected} removed")
                } else {
                    format!("records {expected} to {} removed", row.seq - 1)
                };
                self.fail(
                    expected,
                    format!(
                        "sequence jumps from {} to {} ({removed})",
                        expected - 1,
                        row.seq
                    ),
                );
            } else {
                self.fail(
                    row.seq,
                    format!(
                        "unexpected sequence number {} (expected {expected})",
                        row.seq
                    ),
                );
            }
            return;
        }
        if row.prev_hash != self.prev_hash {
            let reason = if expected == 1 {
                "prev_hash is not the genesis hash (records removed or reordered)".to_string()
            } else {
                format!(
                    "prev_hash does not match record {} (removed or reordered)",
                    expected - 1
                )
            };
            self.fail(expected, reason);
            return;
        }
        let Some(record) = row.record() else {
            self.fail(
                expected,
                "a field holds an impossible value (edited)".to_string(),
            );
            return;
        };
        if record_hash(&record.prev_hash, record.seq, record.ts_ms, &record.event()) != record.hash
        {
            self.fail(
                expected,
                "hash does not match the record's contents (edited)".to_string(),
            );
            return;
        }
        self.expected_seq += 1;
        self.prev_hash = record.hash;
    }

    /// Compare the end of the log with the head.
    fn finish(&mut self, head_seq: i64, head_hash: &str) {
        if self.problem.is_some() {
            return;
        }
        let last = self.expected_seq - 1;
        if last < head_seq {
            self.fail(
                last + 1,
                format!("head says {head_seq} records, log ends at {last} (tail removed)"),
            );
        } else if head_hash != self.prev_hash {
            self.fail(
                head_seq,
                format!("the head's hash does not match record {head_seq} (edited)"),
            );
        }
    }
}

async fn read_head(db: &Db) -> Result<Option<(i64, String)>> {
    let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(db.pool())
        .await
        .map_err(Error::db("read the audit head"))?;
    row.map(|r| {
        Ok((
            r.try_get::<i64, _>("seq")
                .map_err(Error::db("read the audit head"))?,
            r.try_get::<String, _>("hash")
                .map_err(Error::db("read the audit head"))?,
        ))
    })
    .transpose()
}

/// Check the whole chain, streaming it in pages (memory stays bounded however long the log is). Records appended
/// while this runs are beyond the head it read first and are not checked, nor reported.
pub async fn verify(db: &Db) -> Result<Verification> {
    let Some((head_seq, head_hash)) = read_head(db).await? else {
        return Ok(Verification {
            records: 0,
            head_seq: 0,
            problem: Some(ChainProblem {
                seq: 0,
                reason: "the audit_head row is missing".into(),
            }),
        });
    };
    let mut verifier = Verifier::new();
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM audit_log WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3"
    );
    let mut after = i64::MIN;
    loop {
        let rows = sqlx::query(sql)
            .bind(after)
            .bind(head_seq)
            .bind(VERIFY_PAGE)
            .fetch_all(db.pool())
            .await
            .map_err(Error::db("read audit records"))?;
        let n = rows.len();
        for row in &rows {
            let row = StoredRow::read(row)?;
            after = row.seq;
            verifier.check(row);
        }
        if (n as i64) < VERIFY_PAGE {
            break;
        }
    }
    verifier.finish(head_seq, &head_hash);

    // A committed record beyond the head is only possible when written around the chain writer (which moves the
    // head in the same transaction). Re-read the head after seeing the row, so a concurrent append is not blamed.
    if verifier.problem.is_none() {
        let beyond = sqlx::query("SELECT seq FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT 1")
            .bind(head_seq)
            .fetch_optional(db.pool())
            .await
            .map_err(Error::db("read audit records"))?;
        if let Some(row) = beyond {
            let seq: i64 = row
                .try_get("seq")
                .map_err(Error::db("read audit records"))?;
            let now = read_head(db).await?.map(|h| h.0).unwrap_or(0);
            if seq > now {
                verifier.fail(
                    seq,
                    format!("record {seq} lies beyond the head ({now}): written outside the chain"),
                );
            }
        }
    }
    Ok(Verification {
        records: verifier.records,
        head_seq,
        problem: verifier.problem,
    })
}

/// Up to `limit` (at most 10 000) records with `seq > after_seq`, in order.
pub async fn list(db: &Db, after_seq: i64, limit: i64) -> Result<Vec<AuditRecord>> {
    let limit = limit.clamp(0, MAX_LIST);
    let rows = sqlx::query(concat!(
        "SELECT ",
        columns!(),
        " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
    ))
    .bind(after_seq)
    .bind(limit)
    .fetch_all(db.pool())
    .await
    .map_err(Error::db("list audit records"))?;
    rows.iter()
        .map(|row| {
            let stored = StoredRow::read(row)?;
            let seq = stored.seq;
            stored.record().ok_or_else(|| {
                Error::Corrupt(format!("audit record {seq} holds an impossible value"))
            })
        })
        .collect()
}

/// Records stored.
pub async fn count(db: &Db) -> Result<i64> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM audit_log")
        .fetch_one(db.pool())
        .await
        .map_err(Error::db("count audit records"))?;
    row.try_get::<i64, _>("n")
        .map_err(Error::db("count audit records"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::temp_db;

    fn event(i: usize) -> AuditEvent {
        AuditEvent {
            kind: "inference".into(),
            actor: format!("user{}", i % 7),
            key_id: format!("key{}", i % 5),
            model: "iris".into(),
            route: "/v1/models/iris/predict".into(),
            input_digest: input_digest(format!("body {i}").as_bytes()),
            decision: "allow".into(),
            status: 200,
            latency_us: 100 + i as u64,
            detail: String::new(),
        }
    }

    fn events(from: usize, n: usize) -> Vec<(i64, AuditEvent)> {
        (from..from + n)
            .map(|i| (1_700_000_000_000 + i as i64, event(i)))
            .collect()
    }

    /// A database holding a clean chain of `n` records, written in uneven batches.
    async fn chain(n: usize) -> (Db, tempfile::TempDir) {
        let (db, dir) = temp_db().await;
        let mut done = 0;
        let mut size = 1;
        while done < n {
            let take = size.min(n - done);
            append(&db, &events(done, take)).await.unwrap();
            done += take;
            size = size * 2 + 1;
        }
        (db, dir)
    }

    async fn exec(db: &Db, sql: &'static str) {
        sqlx::query(sql).execute(db.pool()).await.unwrap();
    }

    async fn problem(db: &Db) -> ChainProblem {
        verify(db)
            .await
            .unwrap()
            .problem
            .expect("tampering detected")
    }

    #[test]
    fn hashes_cover_every_field_unambiguously() {
        let base = event(1);
        let h = record_hash(GENESIS_HASH, 1, 5, &base);
        assert_eq!(h.len(), 64);
        assert_eq!(h, record_hash(GENESIS_HASH, 1, 5, &base.clone()));
        let mut variants = vec![
            record_hash("1", 1, 5, &base),
            record_hash(GENESIS_HASH, 2, 5, &base),
            record_hash(GENESIS_HASH, 1, 6, &base),
        ];
        let edits: Vec<fn(&mut AuditEvent)> = vec![
            |e| e.kind.push('x'),
            |e| e.actor.push('x'),
            |e| e.key_id.push('x'),
            |e| e.model.push('x'),
            |e| e.route.push('x'),
            |e| e.input_digest.push('x'),
            |e| e.decision.push('x'),
            |e| e.status += 1,
            |e| e.latency_us += 1,
            |e| e.detail.push('x'),
        ];
        for edit in edits {
            let mut e = base.clone();
            edit(&mut e);
            variants.push(record_hash(GENESIS_HASH, 1, 5, &e));
        }
        for v in &variants {
            assert_ne!(*v, h);
        }
        // Moving bytes from one field to the next changes the hash (length prefixes).
        let a = AuditEvent {
            actor: "ab".into(),
            key_id: "c".into(),
            ..AuditEvent::default()
        };
        let b = AuditEvent {
            actor: "a".into(),
            key_id: "bc".into(),
            ..AuditEvent::default()
        };
        assert_ne!(record_hash("", 1, 1, &a), record_hash("", 1, 1, &b));
        assert_eq!(
            input_digest(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn appended_batches_form_a_clean_chain() {
        let (db, _dir) = chain(100).await;
        append(&db, &[]).await.unwrap();
        let v = verify(&db).await.unwrap();
        assert_eq!(
            v,
            Verification {
                records: 100,
                head_seq: 100,
                problem: None
            }
        );
        assert_eq!(count(&db).await.unwrap(), 100);
        let page = list(&db, 10, 5).await.unwrap();
        assert_eq!(
            page.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![11, 12, 13, 14, 15]
        );
        assert_eq!(page[0].event(), event(10));
        assert_eq!(page[0].ts_ms, 1_700_000_000_010);
        assert_eq!(page[1].prev_hash, page[0].hash);
        let first = list(&db, 0, 1).await.unwrap();
        assert_eq!(first[0].prev_hash, GENESIS_HASH);
        assert!(list(&db, 100, 10).await.unwrap().is_empty());
        // An empty log verifies too.
        let (empty, _dir2) = temp_db().await;
        assert_eq!(
            verify(&empty).await.unwrap(),
            Verification {
                records: 0,
                head_seq: 0,
                problem: None
            }
        );
    }

    #[tokio::test]
    async fn an_edited_field_is_named() {
        let (db, _dir) = chain(30).await;
        exec(&db, "UPDATE audit_log SET decision = 'deny' WHERE seq = 17").await;
        let p = problem(&db).await;
        assert_eq!(p.seq, 17);
        assert!(p.reason.contains("edited"), "{}", p.reason);

        let (db, _dir) = chain(30).await;
        exec(&db, "UPDATE audit_log SET status = 99999 WHERE seq = 9").await;
        let p = problem(&db).await;
        assert_eq!(
            (p.seq, p.reason.contains("edited")),
            (9, true),
            "{}",
            p.reason
        );
        assert!(
            list(&db, 0, 100).await.is_err(),
            "an impossible status is refused"
        );

        let (db, _dir) = chain(30).await;
        exec(&db, "UPDATE audit_log SET ts_ms = ts_ms + 1 WHERE seq = 1").await;
        assert_eq!(problem(&db).await.seq, 1);
    }

    #[tokio::test]
    async fn a_removed_record_is_named() {
        let (db, _dir) = chain(30).await;
        exec(&db, "DELETE FROM audit_log WHERE seq = 17").await;
        let p = problem(&db).await;
        assert_eq!(p.seq, 17);
        assert_eq!(p.reason, "sequence jumps from 16 to 18 (record 17 removed)");

        // Removing a record and renumbering the rest to hide the gap breaks the hash links.
        let (db, _dir) = chain(30).await;
        exec(&db, "DELETE FROM audit_log WHERE seq = 12").await;
        exec(&db, "UPDATE audit_log SET seq = seq - 1 WHERE seq > 12").await;
        exec(&db, "UPDATE audit_head SET seq = 29").await;
        let p = problem(&db).await;
        assert_eq!(p.seq, 12);
        assert!(
            p.reason.contains("prev_hash does not match record 11"),
            "{}",
            p.reason
        );

        let (db, _dir) = chain(30).await;
        exec(&db, "DELETE FROM audit_log WHERE seq = 1").await;
        assert_eq!(problem(&db).await.seq, 1);
    }

    #[tokio::test]
    async fn reordered_records_are_named() {
        let (db, _dir) = chain(30).await;
        exec(&db, "UPDATE audit_log SET seq = -1 WHERE seq = 21").await;
        exec(&db, "UPDATE audit_log SET seq = 21 WHERE seq = 20").await;
        exec(&db, "UPDATE audit_log SET seq = 20 WHERE seq = -1").await;
        let p = problem(&db).await;
        assert_eq!(p.seq, 20);
        assert_eq!(
            p.reason,
            "prev_hash does not match record 19 (removed or reordered)"
        );
    }

    #[tokio::test]
    async fn a_removed_tail_and_records_beyond_the_head_are_named() {
        let (db, _dir) = chain(120).await;
        exec(&db, "DELETE FROM audit_log WHERE seq > 118").await;
        let v = verify(&db).await.unwrap();
        assert_eq!((v.records, v.head_seq), (118, 120));
        let p = v.problem.unwrap();
        assert_eq!(p.seq, 119);
        assert_eq!(
            p.reason,
            "head says 120 records, log ends at 118 (tail removed)"
        );

        // Rewinding the head as well: its hash no longer matches the last record's.
        let (db, _dir) = chain(20).await;
        exec(&db, "DELETE FROM audit_log WHERE seq > 18").await;
        exec(&db, "UPDATE audit_head SET seq = 18").await;
        assert_eq!(problem(&db).await.seq, 18);

        // A row slipped in after the head, around the writer.
        let (db, _dir) = chain(20).await;
        exec(
            &db,
            "INSERT INTO audit_log SELECT 21, ts_ms, kind, actor, key_id, model, route, input_digest, decision, \
             status, latency_us, detail, hash, hash FROM audit_log WHERE seq = 20",
        )
        .await;
        let p = problem(&db).await;
        assert_eq!(p.seq, 21);
        assert!(p.reason.contains("beyond the head"), "{}", p.reason);
    }

    #[tokio::test]
    async fn a_failed_append_leaves_the_chain_as_it_was() {
        let (db, _dir) = chain(10).await;
        // Rolled back after the inserts: nothing of it remains.
        let mut tx = db.pool().begin().await.unwrap();
        append_in(&mut tx, &events(10, 5)).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(
            verify(&db).await.unwrap(),
            Verification {
                records: 10,
                head_seq: 10,
                problem: None
            }
        );

        // A failure in the middle of a batch (a row already holds seq 12): the first records are not kept.
        exec(
            &db,
            "INSERT INTO audit_log SELECT 12, ts_ms, kind, actor, key_id, model, route, input_digest, decision, \
             status, latency_us, detail, prev_hash, hash FROM audit_log WHERE seq = 10",
        )
        .await;
        let err = append(&db, &events(10, 3)).await.unwrap_err();
        assert!(err.to_string().contains("insert audit records"), "{err}");
        assert_eq!(count(&db).await.unwrap(), 11);
        exec(&db, "DELETE FROM audit_log WHERE seq = 12").await;
        assert_eq!(
            verify(&db).await.unwrap(),
            Verification {
                records: 10,
                head_seq: 10,
                problem: None
            }
        );
        append(&db, &events(10, 3)).await.unwrap();
        assert_eq!(
            verify(&db).await.unwrap(),
            Verification {
                records: 13,
                head_seq: 13,
                problem: None
            }
        );
    }

    #[tokio::test]
    async fn hostile_text_is_stored_bounded_and_still_verifies() {
        let (db, _dir) = temp_db().await;
        let e = AuditEvent {
            route: "/x\0y".into(),
            detail: "é".repeat(10_000),
            latency_us: u64::MAX,
            ..AuditEvent::default()
        };
        append(&db, &[(1, e)]).await.unwrap();
        let r = &list(&db, 0, 1).await.unwrap()[0];
        assert_eq!(r.route, "/x\u{fffd}y");
        assert!(r.detail.len() <= MAX_DETAIL_BYTES && r.detail.len() > MAX_DETAIL_BYTES - 2);
        assert_eq!(r.latency_us, i64::MAX as u64);
        assert_eq!(verify(&db).await.unwrap().problem, None);
    }

    #[tokio::test]
    async fn ten_thousand_concurrent_records_are_all_written() {
        let (db, _dir) = temp_db().await;
        let (log, writer) = AuditLog::spawn(db.clone());
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..1250 {
                        log.record(event(t * 1250 + i)).await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        writer.shutdown(log).await.unwrap();
        assert_eq!(count(&db).await.unwrap(), 10_000);
        assert_eq!(
            verify(&db).await.unwrap(),
            Verification {
                records: 10_000,
                head_seq: 10_000,
                problem: None
            }
        );
    }

    #[tokio::test]
    async fn two_replicas_on_one_database_extend_one_chain() {
        let (db_a, dir) = temp_db().await;
        let db_b = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        let (log_a, writer_a) = AuditLog::spawn(db_a.clone());
        let (log_b, writer_b) = AuditLog::spawn(db_b.clone());
        let mut tasks = Vec::new();
        for t in 0..8 {
            let log = if t % 2 == 0 {
                log_a.clone()
            } else {
                log_b.clone()
            };
            tasks.push(tokio::spawn(async move {
                for i in 0..500 {
                    log.record(event(t * 500 + i)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (a, b) = tokio::join!(writer_a.shutdown(log_a), writer_b.shutdown(log_b));
        a.unwrap();
        b.unwrap();
        assert_eq!(
            verify(&db_b).await.unwrap(),
            Verification {
                records: 4000,
                head_seq: 4000,
                problem: None
            }
        );
    }

    #[tokio::test]
    async fn the_writer_retries_through_a_database_outage_without_losing_records() {
        let (db, _dir) = temp_db().await;
        exec(&db, "ALTER TABLE audit_log RENAME TO audit_log_away").await;
        let (log, writer) = AuditLog::spawn(db.clone());
        for i in 0..50 {
            log.record(event(i)).await;
        }
        // The writer fails and holds the batch; give it time to fail at least once, then restore the table.
        while log.queue_depth() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        exec(&db, "ALTER TABLE audit_log_away RENAME TO audit_log").await;
        writer.shutdown(log).await.unwrap();
        assert_eq!(
            verify(&db).await.unwrap(),
            Verification {
                records: 50,
                head_seq: 50,
                problem: None
            }
        );
    }

    #[tokio::test]
    async fn a_writer_that_cannot_write_reports_it_at_shutdown_and_later_records_are_refused() {
        let (db, _dir) = temp_db().await;
        exec(&db, "DROP TABLE audit_log").await;
        let (log, writer) = AuditLog::spawn(db.clone());
        let spare = log.clone();
        log.record(event(0)).await;
        // Once shutdown is asked for, the writer gives up after a few attempts (about 1.5 s of backoff).
        let err = writer.shutdown(log).await.unwrap_err();
        assert!(err.to_string().contains("audit"), "{err}");
        spare.record(event(1)).await; // reported on stderr, no panic, no hang
        assert_eq!(spare.queue_depth(), 0);
    }

    /// Against PostgreSQL when `AEGIS_TEST_POSTGRES` names a server (`.ci/run` sets it): two replicas (two pools,
    /// two writers) on a fresh database of their own extend one chain, and an edit is still caught.
    #[tokio::test]
    async fn postgres_replicas_extend_one_chain() {
        let Ok(url) = std::env::var("AEGIS_TEST_POSTGRES") else {
            eprintln!("AEGIS_TEST_POSTGRES not set: PostgreSQL audit test skipped");
            return;
        };
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&url).await.unwrap();
        let name = format!(
            "aegis_audit_{}",
            crate::util::random_token(12).unwrap().to_lowercase()
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        let base = url.split('?').next().unwrap();
        let own = format!("{}/{name}", &base[..base.rfind('/').unwrap()]);
        let db_a = Db::connect(&own).await.unwrap();
        let db_b = Db::connect(&own).await.unwrap();
        let (log_a, writer_a) = AuditLog::spawn(db_a.clone());
        let (log_b, writer_b) = AuditLog::spawn(db_b.clone());
        let mut tasks = Vec::new();
        for t in 0..8 {
            let log = if t % 2 == 0 {
                log_a.clone()
            } else {
                log_b.clone()
            };
            tasks.push(tokio::spawn(async move {
                for i in 0..500 {
                    let mut e = event(t * 500 + i);
                    e.detail = "a NUL \0 that TEXT refuses".into();
                    log.record(e).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let (a, b) = tokio::join!(writer_a.shutdown(log_a), writer_b.shutdown(log_b));
        a.unwrap();
        b.unwrap();
        let clean = verify(&db_a).await.unwrap();
        exec(
            &db_b,
            "UPDATE audit_log SET actor = 'mallory' WHERE seq = 1234",
        )
        .await;
        let tampered = verify(&db_b).await.unwrap();
        db_a.close().await;
        db_b.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        assert_eq!(
            clean,
            Verification {
                records: 4000,
                head_seq: 4000,
                problem: None
            }
        );
        assert_eq!(tampered.problem.unwrap().seq, 1234);
    }
}
