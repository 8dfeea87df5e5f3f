//! The hash-chained, append-only audit log: who did what, when, to which model, and what the gateway decided.
//!
//! Every record carries the SHA-256 of its predecessor (`prev_hash`) and its own hash over an unambiguous,
//! length-prefixed encoding of its sequence number, time and every field ([`record_hash`]), so editing,
//! removing or reordering a stored record breaks the chain and [`verify`] names the first bad record. The
//! `audit_head` row (id 1) holds the last sequence number and hash; it also catches a removed tail.
//!
//! One writer task per process appends batches with [`append`]; each batch is one transaction whose first
//! statement updates the head row, which takes SQLite's write lock or PostgreSQL's row lock, so several writers
//! (replicas sharing a PostgreSQL database, or two processes on one SQLite file) serialise and extend one chain.
//! Any failure rolls the whole batch back, so a crash mid-write leaves the previous, consistent chain.
//!
//! **The guarantee**: an answer is sent only after its record is committed. The request envelope calls
//! [`AuditLog::record_durable`], which waits for the batch holding its record (group commit: whatever queued
//! while the previous batch was written goes in the next one, so throughput stays high). When a batch cannot be
//! written (a full disk, a database outage) its requests are answered 503 instead, the writer keeps trying, and
//! once it can write again its first record says what happened (kind `audit_outage`: since when, the error, how
//! many answers were withheld). Records that carry no answer ([`AuditLog::record`]: administration, alarms,
//! sampled refusals) are kept and retried until written.
//!
//! **Gaps**: every record of a running gateway carries its boot id and a per-boot sequence number, assigned in
//! queue order; the first record of a boot is a `boot` record and a clean stop writes a `shutdown` record. So
//! [`verify`] can tell, per boot, how many records were queued (the highest number) against how many are stored
//! plus how many an outage record declared withheld, and names a boot whose records are missing; a boot without a
//! `shutdown` record was killed (or is still running), which loses nothing that was answered.
//!
//! Limits of the design: someone with write access to the database who recomputes every hash after an edit (and
//! the head) is not detected by the chain alone; export the head hash elsewhere (a log shipper, a signed report) to
//! anchor it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use tokio::sync::{mpsc, oneshot, watch};

use crate::db::Db;
use crate::error::{Error, Result};

pub use crate::db::GENESIS_HASH;

/// Events the in-memory queue holds before [`AuditLog::record`] waits for the writer.
pub const QUEUE_CAPACITY: usize = 16_384;
/// Most events appended in one transaction.
const MAX_BATCH: usize = 512;
/// Times the writer yields to other tasks to gather a batch before writing it.
const GATHER_YIELDS: usize = 8;
/// Most records without an answer held for retry while the database cannot be written; beyond it the oldest
/// are reported on stderr and dropped (the outage record counts them).
const MAX_CARRIED: usize = 65_536;
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
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The `audit_log` columns in declaration order (a macro so statements stay `&'static str`).
macro_rules! columns {
    () => {
        "seq, ts_ms, kind, actor, key_id, model, route, input_digest, decision, status, latency_us, detail, \
         prev_hash, hash, boot, boot_seq"
    };
}
/// How many columns [`columns!`] names.
const N_COLUMNS: usize = 16;

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
    /// The gateway run that wrote it (empty for records written by offline commands).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub boot: String,
    /// Its number within that run, from 1 (the `boot` record), in the order records were queued.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub boot_seq: i64,
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

fn is_zero(n: &i64) -> bool {
    *n == 0
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

/// The hash of a record written by a running gateway: as [`record_hash`] under its own domain tag, with the
/// boot id and per-boot number after the time. A record without a boot id hashes as [`record_hash`], so records
/// written before boots existed still verify.
pub fn record_hash_booted(
    prev_hash: &str,
    seq: i64,
    ts_ms: i64,
    boot: &str,
    boot_seq: i64,
    e: &AuditEvent,
) -> String {
    if boot.is_empty() {
        return record_hash(prev_hash, seq, ts_ms, e);
    }
    let mut h = Sha256::new();
    h.update(b"aegis-audit-v2\0");
    h.update(record_hash(prev_hash, seq, ts_ms, e).as_bytes());
    h.update((boot.len() as u64).to_be_bytes());
    h.update(boot.as_bytes());
    h.update(boot_seq.to_be_bytes());
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

/// One event stamped for the chain: its time (Unix milliseconds), and the boot and per-boot number of the gateway
/// run that queued it (empty and 0 for offline commands).
#[derive(Debug, Clone)]
struct Stamped {
    ts_ms: i64,
    boot: String,
    boot_seq: i64,
    event: AuditEvent,
}

/// Append `events` (each with its time in Unix milliseconds) to the chain in one transaction.
///
/// The first statement updates the head row, so concurrent writers (tasks, processes, replicas) wait for each
/// other; then each record gets the next sequence number and the previous record's hash, and the head moves to
/// the last one. Any failure rolls everything back, leaving the chain as it was.
pub async fn append(db: &Db, events: &[(i64, AuditEvent)]) -> Result<()> {
    let stamped: Vec<Stamped> = events
        .iter()
        .map(|(ts_ms, event)| Stamped {
            ts_ms: *ts_ms,
            boot: String::new(),
            boot_seq: 0,
            event: event.clone(),
        })
        .collect();
    append_stamped(db, &stamped).await
}

async fn append_stamped(db: &Db, events: &[Stamped]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let _guard = db.write_guard().await;
    // A failed batch closes its connection rather than pooling it (see `db::Transaction`).
    let mut tx = db
        .begin()
        .await
        .map_err(Error::db("begin an audit write"))?;
    match append_in(&mut tx, events).await {
        Ok(()) => tx.commit().await.map_err(Error::db("commit audit records")),
        Err(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
    }
}

/// The body of [`append`], inside a transaction the caller owns.
async fn append_in(conn: &mut AnyConnection, events: &[Stamped]) -> Result<()> {
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
    for stamped in events {
        let event = normalise(&stamped.event);
        seq = seq
            .checked_add(1)
            .ok_or_else(|| Error::Corrupt("audit sequence overflow".into()))?;
        let hash = record_hash_booted(
            &prev,
            seq,
            stamped.ts_ms,
            &stamped.boot,
            stamped.boot_seq,
            &event,
        );
        let prev_hash = std::mem::replace(&mut prev, hash.clone());
        records.push((seq, stamped, event, prev_hash, hash));
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
            for j in 0..N_COLUMNS {
                if j > 0 {
                    sql.push(',');
                }
                if positional {
                    sql.push('?');
                } else {
                    sql.push_str(&format!("${}", i * N_COLUMNS + j + 1));
                }
            }
            sql.push(')');
        }
        // Built from constants and parameter numbers only: nothing from an event reaches the SQL text.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, stamped, e, prev_hash, hash) in chunk {
            query = query
                .bind(*seq)
                .bind(stamped.ts_ms)
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
                .bind(hash.as_str())
                .bind(stamped.boot.as_str())
                .bind(stamped.boot_seq);
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

/// What the writer task receives: a stamped event, and whom to tell once it is committed (or could not be).
struct Queued {
    stamped: Stamped,
    ack: Option<oneshot::Sender<bool>>,
}

/// The record could not be committed, so its answer must not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit record could not be written")]
pub struct Unrecorded;

/// A cheap, cloneable handle for queuing audit events; one writer task appends them.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Queued>,
    boot: std::sync::Arc<Boot>,
}

/// This run's identity and the next per-boot number (the lock also keeps queue order equal to number order).
#[derive(Debug)]
struct Boot {
    id: String,
    next: std::sync::Mutex<i64>,
    writable: std::sync::atomic::AtomicBool,
}

/// Owns the writer task; [`AuditWriterHandle::shutdown`] flushes the queue.
#[derive(Debug)]
pub struct AuditWriterHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl AuditLog {
    /// Start the writer task on the current tokio runtime (queue of [`QUEUE_CAPACITY`] events), for a run
    /// identified by `boot` (random, unique per start); the caller records the `boot` event first.
    pub fn spawn(db: Db, boot: String) -> (AuditLog, AuditWriterHandle) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (stop, stop_rx) = watch::channel(false);
        let boot = std::sync::Arc::new(Boot {
            id: boot,
            next: std::sync::Mutex::new(1),
            writable: std::sync::atomic::AtomicBool::new(true),
        });
        let task = tokio::spawn(writer(db, rx, stop_rx, boot.clone()));
        (AuditLog { tx, boot }, AuditWriterHandle { stop, task })
    }

    /// This run's boot id.
    pub fn boot_id(&self) -> &str {
        &self.boot.id
    }

    /// Queue `event`, stamped with the current time and the next per-boot number. Waits while the queue is full
    /// (so a slow database slows the gateway down rather than losing records).
    async fn enqueue(&self, event: AuditEvent, ack: Option<oneshot::Sender<bool>>) -> bool {
        let Ok(permit) = self.tx.reserve().await else {
            eprintln!(
                "aegis: audit writer stopped; record lost: kind={} actor={} key={} route={} status={}",
                event.kind, event.actor, event.key_id, event.route, event.status
            );
            return false;
        };
        let mut next = self
            .boot
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let boot_seq = *next;
        *next += 1;
        permit.send(Queued {
            stamped: Stamped {
                ts_ms: crate::util::now_ms(),
                boot: self.boot.id.clone(),
                boot_seq,
                event,
            },
            ack,
        });
        true
    }

    /// Queue `event` for the chain without waiting for it to be written; it is kept and retried until it is.
    /// For records that do not stand for an answer (administration, alarms, sampled refusals).
    pub async fn record(&self, event: AuditEvent) {
        self.enqueue(event, None).await;
    }

    /// Queue `event` and wait until it is committed. `Err` means it was not (the database cannot be written):
    /// the answer it stands for must not be sent.
    pub async fn record_durable(&self, event: AuditEvent) -> Result<(), Unrecorded> {
        let (tx, rx) = oneshot::channel();
        if !self.enqueue(event, Some(tx)).await {
            return Err(Unrecorded);
        }
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(Unrecorded),
        }
    }

    /// Events queued and not yet written (for the `aegis_audit_queue_depth` gauge).
    pub fn queue_depth(&self) -> i64 {
        (self.tx.max_capacity() - self.tx.capacity()) as i64
    }

    /// Whether the last write succeeded (for the `aegis_audit_writable` gauge).
    pub fn writable(&self) -> bool {
        self.boot
            .writable
            .load(std::sync::atomic::Ordering::Relaxed)
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

/// An episode during which nothing could be written.
struct Outage {
    since_ms: i64,
    cause: String,
    /// Answers withheld (records with an acknowledgement that failed).
    withheld: u64,
    /// Records without an answer dropped because too many were held.
    dropped: u64,
}

/// The writer loop: take whatever is queued (up to [`MAX_BATCH`]) and append it in one transaction; tell each
/// waiting request whether its record is in.
async fn writer(
    db: Db,
    mut rx: mpsc::Receiver<Queued>,
    mut stop: watch::Receiver<bool>,
    boot: std::sync::Arc<Boot>,
) -> Result<()> {
    let mut listening = true;
    // Records without an answer that failed to be written, retried first.
    let mut carried: std::collections::VecDeque<Stamped> = std::collections::VecDeque::new();
    let mut outage: Option<Outage> = None;
    let mut delay = BACKOFF_FIRST;
    let mut failures_stopping = 0u32;
    loop {
        let mut batch: Vec<Queued> = Vec::new();
        if carried.is_empty() {
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
        }
        // Group commit: let the tasks that are about to queue a record run first (a few yields, no timer: the
        // requests waiting on this batch are not delayed by more than their neighbours' work), then take all.
        for round in 0..=GATHER_YIELDS {
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(event) => batch.push(event),
                    Err(_) => break,
                }
            }
            if round == GATHER_YIELDS || batch.len() >= MAX_BATCH || !listening {
                break;
            }
            tokio::task::yield_now().await;
        }
        if listening && *stop.borrow() {
            listening = false;
            rx.close();
        }
        // What goes in: the outage's own record (when one just ended), then carried records, then the batch.
        let mut stamped: Vec<Stamped> = carried.iter().cloned().collect();
        stamped.extend(batch.iter().map(|q| q.stamped.clone()));
        let outage_record = outage.as_ref().map(|o| outage_event(&boot, o));
        if let Some(record) = &outage_record {
            stamped.insert(0, record.clone());
        }
        match append_stamped(&db, &stamped).await {
            Ok(()) => {
                carried.clear();
                if let Some(o) = outage.take() {
                    crate::log::emit(
                        crate::log::Level::Info,
                        "audit_recovered",
                        &[
                            ("withheld", o.withheld.into()),
                            ("since_ms", o.since_ms.into()),
                        ],
                    );
                }
                boot.writable
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                delay = BACKOFF_FIRST;
                for q in batch {
                    if let Some(ack) = q.ack {
                        let _ = ack.send(true);
                    }
                }
            }
            Err(e) => {
                boot.writable
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                let o = outage.get_or_insert_with(|| {
                    crate::log::emit(
                        crate::log::Level::Error,
                        "audit_unwritable",
                        &[("cause", e.to_string().into())],
                    );
                    Outage {
                        since_ms: crate::util::now_ms(),
                        cause: e.to_string(),
                        withheld: 0,
                        dropped: 0,
                    }
                });
                for q in batch {
                    match q.ack {
                        Some(ack) => {
                            o.withheld += 1;
                            let _ = ack.send(false);
                        }
                        None => carried.push_back(q.stamped),
                    }
                }
                while carried.len() > MAX_CARRIED {
                    if let Some(lost) = carried.pop_front() {
                        o.dropped += 1;
                        eprintln!(
                            "aegis: audit record dropped after the database stayed unwritable: kind={} route={} boot_seq={}",
                            lost.event.kind, lost.event.route, lost.boot_seq
                        );
                    }
                }
                if !listening {
                    failures_stopping += 1;
                    if failures_stopping >= SHUTDOWN_ATTEMPTS {
                        let mut lost = carried.len();
                        while rx.try_recv().is_ok() {
                            lost += 1;
                        }
                        eprintln!(
                            "aegis: audit writer gave up while shutting down; {lost} records not written: {e}"
                        );
                        return Err(e);
                    }
                }
                // Until the next attempt, answers waiting on a record are refused at once rather than held.
                let pause = tokio::time::sleep(delay);
                tokio::pin!(pause);
                loop {
                    tokio::select! {
                        biased;
                        () = &mut pause => break,
                        queued = rx.recv(), if listening => match queued {
                            Some(q) => match q.ack {
                                Some(ack) => {
                                    o.withheld += 1;
                                    let _ = ack.send(false);
                                }
                                None => carried.push_back(q.stamped),
                            },
                            None => break,
                        },
                    }
                }
                delay = (delay * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// The record that ends an outage: what happened and how many records of this boot will never be stored (so
/// [`verify`] can account for their numbers). It has no number of its own (0): it is built anew on every attempt
/// and stands for no answer.
fn outage_event(boot: &Boot, o: &Outage) -> Stamped {
    let lasted = crate::util::now_ms().saturating_sub(o.since_ms);
    Stamped {
        ts_ms: crate::util::now_ms(),
        boot: boot.id.clone(),
        boot_seq: 0,
        event: AuditEvent {
            kind: OUTAGE_KIND.into(),
            route: "audit".into(),
            decision: "recovered".into(),
            detail: format!(
                "{} records withheld: the audit log could not be written for {lasted} ms ({}); {} answers were \
                 refused with 503 instead of sent unrecorded{}",
                o.withheld + o.dropped,
                o.cause,
                o.withheld,
                if o.dropped > 0 {
                    format!(", and {} records without an answer were dropped", o.dropped)
                } else {
                    String::new()
                }
            ),
            ..AuditEvent::default()
        },
    }
}

/// Kind of the record that ends an outage.
pub const OUTAGE_KIND: &str = "audit_outage";
/// Kind of the first record of a gateway run.
pub const BOOT_KIND: &str = "boot";
/// Kind of the last record of a cleanly stopped gateway run.
pub const SHUTDOWN_KIND: &str = "shutdown";

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Records read (up to the head).
    pub records: i64,
    /// The head's sequence number: how many records the chain should have.
    pub head_seq: i64,
    /// The head's hash: copy it somewhere an attacker cannot write, and compare later (a rewritten chain
    /// with a rewritten head is otherwise consistent).
    pub head_hash: String,
    /// The first problem found, if any.
    pub problem: Option<ChainProblem>,
    /// Gateway runs that wrote records.
    pub runs: usize,
    /// Runs with no `shutdown` record: killed (which loses nothing that was answered) or still running.
    pub unstopped: Vec<String>,
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
    boot: String,
    boot_seq: i64,
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
            boot: text("boot")?,
            boot_seq: int("boot_seq")?,
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
            boot: self.boot,
            boot_seq: self.boot_seq,
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
    boots: Boots,
}

/// Per gateway run: the highest number queued, records stored, numbers an outage record declared withheld, and
/// whether it stopped cleanly.
#[derive(Default)]
struct Boots {
    runs: std::collections::BTreeMap<String, Run>,
    order: Vec<String>,
}

#[derive(Default)]
struct Run {
    first_seq: i64,
    highest: i64,
    stored: i64,
    withheld: i64,
    stopped: bool,
}

impl Boots {
    fn see(&mut self, r: &AuditRecord) {
        if r.boot.is_empty() {
            return;
        }
        if !self.runs.contains_key(&r.boot) {
            self.order.push(r.boot.clone());
        }
        let run = self.runs.entry(r.boot.clone()).or_insert_with(|| Run {
            first_seq: r.seq,
            ..Run::default()
        });
        if r.kind == OUTAGE_KIND {
            run.withheld += r
                .detail
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0);
        }
        if r.kind == SHUTDOWN_KIND {
            run.stopped = true;
        }
        if r.boot_seq > 0 {
            run.stored += 1;
            run.highest = run.highest.max(r.boot_seq);
        }
    }

    /// The first run with numbers neither stored nor declared withheld.
    fn gap(&self) -> Option<(i64, String)> {
        self.order.iter().find_map(|id| {
            let run = &self.runs[id];
            let missing = run.highest - run.stored - run.withheld;
            (missing > 0).then(|| {
                (
                    run.first_seq,
                    format!(
                        "gateway run {id} queued {} records but {} are stored and {} were declared withheld: {missing} \
                         records missing (removed, or answered without being recorded)",
                        run.highest, run.stored, run.withheld
                    ),
                )
            })
        })
    }

    /// Runs without a `shutdown` record (killed, or still running).
    fn unstopped(&self) -> Vec<String> {
        self.order
            .iter()
            .filter(|id| !self.runs[*id].stopped)
            .cloned()
            .collect()
    }
}

impl Verifier {
    fn new() -> Verifier {
        Verifier {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            records: 0,
            problem: None,
            boots: Boots::default(),
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
        let hash = record_hash_booted(
            &record.prev_hash,
            record.seq,
            record.ts_ms,
            &record.boot,
            record.boot_seq,
            &record.event,
        );
        if hash != record.hash {
            self.fail(
                expected,
                "hash does not match the record's contents (edited)".to_string(),
            );
            return;
        }
        self.expected_seq += 1;
        self.boots.see(&record);
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
            head_hash: String::new(),
            problem: Some(ChainProblem {
                seq: 0,
                reason: "the audit_head row is missing".into(),
            }),
            runs: 0,
            unstopped: Vec::new(),
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
    if verifier.problem.is_none() {
        if let Some((seq, reason)) = verifier.boots.gap() {
            verifier.fail(seq, reason);
        }
    }

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
        head_hash: head_hash.clone(),
        problem: verifier.problem,
        runs: verifier.boots.runs.len(),
        unstopped: verifier.boots.unstopped(),
    })
}

/// Up to `limit` (at most 10 000) of the newest records with `after_seq < seq < before_seq`, newest first.
pub async fn list_newest(
    db: &Db,
    after_seq: i64,
    before_seq: i64,
    limit: i64,
) -> Result<Vec<AuditRecord>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM audit_log WHERE seq > $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
    );
    page(db, sql, after_seq, before_seq, limit).await
}

/// Up to `limit` (at most 10 000) records with `seq > after_seq`, in order.
pub async fn list(db: &Db, after_seq: i64, limit: i64) -> Result<Vec<AuditRecord>> {
    let sql = concat!(
        "SELECT ",
        columns!(),
        " FROM audit_log WHERE seq > $1 AND seq < $2 ORDER BY seq LIMIT $3"
    );
    page(db, sql, after_seq, i64::MAX, limit).await
}

/// One page of records by `sql` (bound to after, before and limit), decoded.
async fn page(
    db: &Db,
    sql: &'static str,
    after_seq: i64,
    before_seq: i64,
    limit: i64,
) -> Result<Vec<AuditRecord>> {
    let rows = sqlx::query(sql)
        .bind(after_seq)
        .bind(before_seq)
        .bind(limit.clamp(0, MAX_LIST))
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

    /// A clean verification of records written without a gateway run (any head hash).
    fn clean(records: i64, head_seq: i64) -> Verification {
        Verification {
            records,
            head_seq,
            head_hash: String::new(),
            problem: None,
            runs: 0,
            unstopped: Vec::new(),
        }
    }

    /// `v` without its head hash, to compare with [`clean`]; the hash is the chain's last record's.
    fn unhashed(mut v: Verification) -> Verification {
        assert_eq!(
            v.head_hash.len(),
            if v.head_seq == 0 {
                v.head_hash.len()
            } else {
                64
            }
        );
        v.head_hash.clear();
        v
    }

    /// No problem, `records` records and head, written by `runs` (none stopped cleanly).
    fn assert_runs(v: &Verification, records: i64, runs: &[&str]) {
        assert_eq!(v.problem, None);
        assert_eq!((v.records, v.head_seq), (records, records));
        assert_eq!(v.runs, runs.len());
        let mut unstopped = v.unstopped.clone();
        unstopped.sort();
        assert_eq!(unstopped, runs);
    }

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
        assert_eq!(unhashed(v), clean(100, 100));
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
        assert_eq!(unhashed(verify(&empty).await.unwrap()), clean(0, 0));
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
             status, latency_us, detail, hash, hash, boot, boot_seq FROM audit_log WHERE seq = 20",
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
        let mut tx = db.begin().await.unwrap();
        let stamped: Vec<Stamped> = events(10, 5)
            .into_iter()
            .map(|(ts_ms, event)| Stamped {
                ts_ms,
                boot: String::new(),
                boot_seq: 0,
                event,
            })
            .collect();
        append_in(&mut tx, &stamped).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(unhashed(verify(&db).await.unwrap()), clean(10, 10));

        // A failure in the middle of a batch (a row already holds seq 12): the first records are not kept.
        exec(
            &db,
            "INSERT INTO audit_log SELECT 12, ts_ms, kind, actor, key_id, model, route, input_digest, decision, \
             status, latency_us, detail, prev_hash, hash, boot, boot_seq FROM audit_log WHERE seq = 10",
        )
        .await;
        let err = append(&db, &events(10, 3)).await.unwrap_err();
        assert!(err.to_string().contains("insert audit records"), "{err}");
        assert_eq!(count(&db).await.unwrap(), 11);
        exec(&db, "DELETE FROM audit_log WHERE seq = 12").await;
        assert_eq!(unhashed(verify(&db).await.unwrap()), clean(10, 10));
        append(&db, &events(10, 3)).await.unwrap();
        assert_eq!(unhashed(verify(&db).await.unwrap()), clean(13, 13));
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
        let (log, writer) = AuditLog::spawn(db.clone(), "run-a".into());
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
        assert_runs(&verify(&db).await.unwrap(), 10_000, &["run-a"]);
    }

    #[tokio::test]
    async fn two_replicas_on_one_database_extend_one_chain() {
        let (db_a, dir) = temp_db().await;
        let db_b = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        let (log_a, writer_a) = AuditLog::spawn(db_a.clone(), "run-a".into());
        let (log_b, writer_b) = AuditLog::spawn(db_b.clone(), "run-b".into());
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
        assert_runs(&verify(&db_b).await.unwrap(), 4000, &["run-a", "run-b"]);
    }

    #[tokio::test]
    async fn the_writer_retries_through_a_database_outage_without_losing_records() {
        let (db, _dir) = temp_db().await;
        exec(&db, "ALTER TABLE audit_log RENAME TO audit_log_away").await;
        let (log, writer) = AuditLog::spawn(db.clone(), "run-a".into());
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
        // The 50 records and the outage's own, which declares nothing withheld (none stood for an answer).
        let v = verify(&db).await.unwrap();
        assert_runs(&v, 51, &["run-a"]);
        let all = list(&db, 0, 100).await.unwrap();
        assert_eq!(all[0].kind, OUTAGE_KIND);
        assert!(
            all[0].detail.starts_with("0 records withheld"),
            "{}",
            all[0].detail
        );
        assert_eq!(
            all[1..].iter().map(|r| r.boot_seq).collect::<Vec<_>>(),
            (1..=50).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn durable_records_are_refused_during_an_outage_and_the_outage_accounts_for_them() {
        let (db, _dir) = temp_db().await;
        let (log, writer) = AuditLog::spawn(db.clone(), "run-a".into());
        log.record_durable(event(0)).await.unwrap();
        assert!(log.writable());
        exec(&db, "ALTER TABLE audit_log RENAME TO audit_log_away").await;
        assert_eq!(log.record_durable(event(1)).await, Err(Unrecorded));
        assert_eq!(log.record_durable(event(2)).await, Err(Unrecorded));
        assert!(!log.writable());
        exec(&db, "ALTER TABLE audit_log_away RENAME TO audit_log").await;
        // Once the table is back, the next record goes in after the outage's.
        let mut ok = false;
        for _ in 0..100 {
            if log.record_durable(event(3)).await.is_ok() {
                ok = true;
                break;
            }
            // Between attempts the writer refuses at once; its next attempt comes within a second.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ok && log.writable());
        writer.shutdown(log).await.unwrap();
        let all = list(&db, 0, 100).await.unwrap();
        let outage = all.iter().find(|r| r.kind == OUTAGE_KIND).unwrap();
        assert!(outage.detail.contains("503"), "{}", outage.detail);
        let withheld: i64 = outage
            .detail
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(withheld >= 2, "{}", outage.detail);
        // The numbers of the withheld records are missing, and declared: the run verifies.
        assert_eq!(verify(&db).await.unwrap().problem, None);
    }

    #[tokio::test]
    async fn a_record_missing_from_a_run_is_named_even_when_the_chain_was_rebuilt() {
        let (db, _dir) = temp_db().await;
        let stamp = |boot_seq: i64, kind: &str| Stamped {
            ts_ms: 1,
            boot: "run-x".into(),
            boot_seq,
            event: AuditEvent {
                kind: kind.into(),
                ..event(boot_seq as usize)
            },
        };
        // A consistent chain, as someone who recomputed every hash would leave it, but number 3 of the run is
        // gone: an answered request without its record.
        let rows = vec![
            stamp(1, BOOT_KIND),
            stamp(2, "inference"),
            stamp(4, "inference"),
            stamp(5, SHUTDOWN_KIND),
        ];
        append_stamped(&db, &rows).await.unwrap();
        let v = verify(&db).await.unwrap();
        let p = v.problem.expect("the gap is found");
        assert!(p.reason.contains("1 records missing"), "{}", p.reason);
        assert!(p.reason.contains("run-x"), "{}", p.reason);
        assert!(v.unstopped.is_empty());

        // The same run with all its numbers verifies, and a run without a shutdown record is listed.
        let (db, _dir) = temp_db().await;
        append_stamped(&db, &rows[..2]).await.unwrap();
        let v = verify(&db).await.unwrap();
        assert_eq!(v.problem, None);
        assert_eq!(v.unstopped, vec!["run-x".to_string()]);
    }

    #[tokio::test]
    async fn a_writer_that_cannot_write_reports_it_at_shutdown_and_later_records_are_refused() {
        let (db, _dir) = temp_db().await;
        exec(&db, "DROP TABLE audit_log").await;
        let (log, writer) = AuditLog::spawn(db.clone(), "run-a".into());
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
        let (log_a, writer_a) = AuditLog::spawn(db_a.clone(), "run-a".into());
        let (log_b, writer_b) = AuditLog::spawn(db_b.clone(), "run-b".into());
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
        let intact = verify(&db_a).await.unwrap();
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
        assert_runs(&intact, 4000, &["run-a", "run-b"]);
        assert_eq!(tampered.problem.unwrap().seq, 1234);
    }
}
