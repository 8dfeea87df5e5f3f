//! Model-extraction detection per API key: PRADA (Juuti et al., 2019) run on every row a key sends to a local
//! model, with its state in the database so replicas sharing it extend one detector per (key, model).
//!
//! Each (key, model) has one `extraction_state` row: the serialised [`PradaState`], a `version`, and the
//! alarm flag and time. A request reads the small columns first ([`gate`]) to enforce the configured action on
//! a key already alarmed (`throttle`: one answer per `throttle_secs`, claimed atomically in the database;
//! `block`: 403). After the model answered, [`observe`] feeds every row to the detector kept in this process's
//! cache.
//!
//! **Write-behind.** The state (about 20 KiB) used to be rewritten on every request. Now it is written when due:
//! at most every [`WRITE_EVERY`] per (key, model), or once [`MAX_UNWRITTEN_ROWS`] rows are pending, and at once
//! when the alarm flips (so `gate` on every replica sees an alarm as soon as it is raised) and for the first
//! state. Writes use optimistic concurrency: the update only applies when the version is still the one this
//! process's state derives from; otherwise the stored state is read and the rows not yet written are observed
//! again on top of it, at most [`MAX_ATTEMPTS`] times. A task writes what waited [`WRITE_EVERY`] when a key
//! stops sending ([`StateCache::flush_due`]) and a clean shutdown writes what is pending
//! ([`StateCache::flush`]); a killed process loses at most about [`WRITE_EVERY`] of observations. The
//! first version of a row is the current time in milliseconds, so a cleared and re-created row never reuses a
//! version another replica still caches.
//!
//! The first alarm of a (key, model) is audited (kind `extraction`), counted
//! (`aegis_extraction_alarms_total{model}`) and logged, once across replicas: only the writer whose update
//! flips the stored flag reports it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use aegis_monitor::prada::{PradaConfig, PradaState};
use serde::Serialize;
use sqlx::Row;

use crate::audit_log::AuditEvent;
use crate::config::ExtractionAction;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::guard::{ExtractionSettings, ModelGuard};
use crate::sinks::Sinks;

/// Attempts to write a state before giving up on one request's observations.
pub(crate) const MAX_ATTEMPTS: usize = 8;
/// Locks striped over (key, model): requests of one key to one model in this process observe one at a time,
/// so version conflicts only arise between replicas.
const STRIPES: usize = 64;
/// Most (key, model) states cached in memory (beyond, clean entries are dropped: a cache miss costs one read).
const MAX_CACHED: usize = 10_000;
/// A state is written back at most this often per (key, model), unless its alarm flips (written at once).
pub(crate) const WRITE_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// … or once this many rows are observed and not yet written.
pub(crate) const MAX_UNWRITTEN_ROWS: usize = 1024;

/// Rows observed since the state was last written, kept to observe them again on top of another replica's
/// state when the write finds that the stored state moved on.
#[derive(Debug, Clone, Default)]
struct Unwritten {
    rows: Vec<f64>,
    proba: Vec<f32>,
    ood: Vec<bool>,
    n_features: usize,
    n_classes: usize,
}

impl Unwritten {
    fn len(&self) -> usize {
        self.ood.len()
    }

    fn push(
        &mut self,
        rows: &[f64],
        proba: &[f32],
        ood: &[bool],
        n_features: usize,
        n_classes: usize,
    ) {
        if self.n_features != n_features || self.n_classes != n_classes {
            // A model reloaded with another shape: what came before no longer applies.
            *self = Unwritten {
                n_features,
                n_classes,
                ..Unwritten::default()
            };
        }
        self.rows.extend_from_slice(rows);
        self.proba.extend_from_slice(proba);
        self.ood.extend_from_slice(ood);
    }

    /// Observe every row on `prada`; the last W computed.
    fn replay(&self, prada: &mut PradaState, config: &PradaConfig) -> Option<f64> {
        let mut w = None;
        if self.n_features == 0 || self.n_classes == 0 {
            return w;
        }
        for ((row, p), out) in self
            .rows
            .chunks_exact(self.n_features)
            .zip(self.proba.chunks_exact(self.n_classes))
            .zip(self.ood.iter())
        {
            let verdict = prada.observe(config, row, p, *out);
            if verdict.w.is_some() {
                w = verdict.w;
            }
        }
        w
    }
}

/// What this process knows of one (key, model): the stored version its state derives from, the state with every
/// row observed here (written or not), the rows not yet written, and when it last wrote.
#[derive(Debug, Clone)]
struct Entry {
    version: i64,
    state: PradaState,
    unwritten: Unwritten,
    written_at: Option<std::time::Instant>,
    /// Whether the stored state `version` names was alarmed.
    stored_alarmed: bool,
    config: PradaConfig,
}

/// States this process observed, by (key id, model): write-behind, so a busy key costs one database write per
/// [`WRITE_EVERY`] instead of one per request.
#[derive(Debug)]
pub struct StateCache {
    map: Mutex<HashMap<(String, String), Entry>>,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl Default for StateCache {
    fn default() -> Self {
        StateCache {
            map: Mutex::new(HashMap::new()),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
}

impl StateCache {
    /// An empty cache.
    pub fn new() -> StateCache {
        StateCache::default()
    }

    /// The in-process lock of a (key, model).
    fn stripe(&self, key_id: &str, model: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (key_id, model).hash(&mut h);
        &self.stripes[(h.finish() % STRIPES as u64) as usize]
    }

    fn take(&self, key_id: &str, model: &str) -> Option<Entry> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&(key_id.to_string(), model.to_string()))
    }

    /// The version of the cached state of a (key, model), if any.
    fn version(&self, key_id: &str, model: &str) -> Option<i64> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(key_id.to_string(), model.to_string()))
            .map(|e| e.version)
    }

    fn put(&self, key_id: &str, model: &str, entry: Entry) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_CACHED {
            // Clean entries can be read again; unwritten rows stay.
            map.retain(|_, e| e.unwritten.len() > 0);
        }
        map.insert((key_id.to_string(), model.to_string()), entry);
    }

    /// Forget every state of a key (after an admin cleared it), written or not.
    pub fn forget_key(&self, key_id: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(k, _), _| k != key_id);
    }

    /// Rows observed and not yet written, over every (key, model).
    pub fn unwritten_rows(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|e| e.unwritten.len())
            .sum()
    }

    /// Write every state with unwritten rows (on shutdown). Returns how many (key, model) states were written.
    pub async fn flush(&self, db: &Db) -> Result<usize> {
        self.write_pending(db, false).await
    }

    /// Write the states whose unwritten rows have waited [`WRITE_EVERY`] (a key that stopped sending), so other
    /// replicas see them; run every [`WRITE_EVERY`] by the server.
    pub async fn flush_due(&self, db: &Db) -> Result<usize> {
        self.write_pending(db, true).await
    }

    async fn write_pending(&self, db: &Db, only_due: bool) -> Result<usize> {
        let dirty: Vec<(String, String)> = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, e)| {
                e.unwritten.len() > 0
                    && (!only_due || e.written_at.is_none_or(|t| t.elapsed() >= WRITE_EVERY))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut written = 0;
        for (key_id, model) in dirty {
            let _serial = self.stripe(&key_id, &model).lock().await;
            let Some(entry) = self.take(&key_id, &model) else {
                continue;
            };
            if entry.unwritten.len() == 0 {
                self.put(&key_id, &model, entry);
                continue;
            }
            if let Some(done) = write_back(db, &key_id, &model, entry).await? {
                self.put(&key_id, &model, done.entry);
                written += 1;
            }
        }
        Ok(written)
    }
}

/// What [`gate`] decided for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Answer it; `version` is the stored state's version (0: none yet).
    Allow {
        /// Version read.
        version: i64,
    },
    /// Throttled: try again after this many seconds.
    Throttled {
        /// Seconds until the next answer.
        retry_after_secs: u64,
    },
    /// The key is blocked on this model.
    Blocked,
}

/// Decide whether a key may query a model now, given its alarm state and the configured action. With action
/// `alert` nothing is refused, so nothing is read: the version comes from this process's cache (a stale or
/// missing one only costs [`observe`] a retry).
pub(crate) async fn gate(
    db: &Db,
    cache: &StateCache,
    settings: &ExtractionSettings,
    key_id: &str,
    model: &str,
    now_ms: i64,
) -> Result<Gate> {
    if settings.action == ExtractionAction::Alert {
        return Ok(Gate::Allow {
            version: cache.version(key_id, model).unwrap_or(0),
        });
    }
    let row = sqlx::query(
        "SELECT version, alarmed, next_allowed_ms FROM extraction_state WHERE key_id = $1 AND model = $2",
    )
    .bind(key_id)
    .bind(model)
    .fetch_optional(db.pool())
    .await
    .map_err(Error::db("read extraction state"))?;
    let Some(row) = row else {
        return Ok(Gate::Allow { version: 0 });
    };
    let read =
        |r: std::result::Result<i64, sqlx::Error>| r.map_err(Error::db("read extraction state"));
    let version = read(row.try_get("version"))?;
    let alarmed = read(row.try_get("alarmed"))? != 0;
    let next_allowed = read(row.try_get("next_allowed_ms"))?;
    if !alarmed {
        return Ok(Gate::Allow { version });
    }
    match settings.action {
        ExtractionAction::Alert => Ok(Gate::Allow { version }),
        ExtractionAction::Block => Ok(Gate::Blocked),
        ExtractionAction::Throttle => {
            let period = i64::try_from(settings.throttle_secs)
                .unwrap_or(i64::MAX / 2)
                .saturating_mul(1000);
            let claimed = if next_allowed <= now_ms {
                let _guard = db.write_guard().await;
                sqlx::query(
                    "UPDATE extraction_state SET next_allowed_ms = $1
                     WHERE key_id = $2 AND model = $3 AND next_allowed_ms <= $4",
                )
                .bind(now_ms.saturating_add(period))
                .bind(key_id)
                .bind(model)
                .bind(now_ms)
                .execute(db.pool())
                .await
                .map_err(Error::db("claim a throttled answer"))?
                .rows_affected()
                    == 1
            } else {
                false
            };
            if claimed {
                // The state's version is unchanged by the claim.
                Ok(Gate::Allow { version })
            } else {
                // Another request claimed the slot first when the stored time had passed.
                let wait_ms = if next_allowed > now_ms {
                    next_allowed - now_ms
                } else {
                    period
                };
                Ok(Gate::Throttled {
                    retry_after_secs: u64::try_from((wait_ms + 999) / 1000).unwrap_or(1).max(1),
                })
            }
        }
    }
}

/// What one request's observations concluded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Observed {
    /// Queries of this key on this model so far.
    pub queries: u64,
    /// These rows raised the alarm (first time for this key and model).
    pub new_alarm: bool,
    /// The last Shapiro–Wilk W computed, if any.
    pub w: Option<f64>,
}

/// Feed `n` rows (`x`, `n_features` wide) and the model's full probabilities to the key's detector, and store
/// the state when due ([`WRITE_EVERY`], [`MAX_UNWRITTEN_ROWS`], the first state, or an alarm that flips: at
/// once); reports a new alarm (audit, metrics, log).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn observe(
    sinks: Sinks<'_>,
    cache: &StateCache,
    guard: &ModelGuard,
    settings: &ExtractionSettings,
    key_id: &str,
    owner: &str,
    version: i64,
    x: &[f32],
    n_features: usize,
    proba: &[f32],
) -> Result<Option<Observed>> {
    let model = guard.model.as_str();
    let db = sinks.db;
    let n = x.len().checked_div(n_features).unwrap_or(0);
    let n_classes = proba.len().checked_div(n).unwrap_or(0);
    if n == 0 || n_classes == 0 {
        return Ok(None);
    }
    let rows: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
    let ood: Vec<bool> = rows
        .chunks_exact(n_features)
        .map(|r| guard.out_of_distribution(r))
        .collect();
    let _serial = cache.stripe(key_id, model).lock().await;
    let mut entry = match cache.take(key_id, model) {
        Some(e) => e,
        None => {
            let (version, state) = if version == 0 {
                (0, PradaState::default())
            } else {
                load(db, key_id, model).await?
            };
            Entry {
                version,
                stored_alarmed: state.alarmed,
                state,
                unwritten: Unwritten::default(),
                written_at: None,
                config: settings.prada.clone(),
            }
        }
    };
    let mut fresh = Unwritten::default();
    fresh.push(&rows, proba, &ood, n_features, n_classes);
    let was_alarmed = entry.state.alarmed;
    // CPU work (distances to every representative, a Shapiro–Wilk test per row): off the async workers.
    let (state, w, fresh) = {
        let (mut state, config) = (entry.state, entry.config.clone());
        tokio::task::spawn_blocking(move || {
            let w = fresh.replay(&mut state, &config);
            (state, w, fresh)
        })
        .await
        .map_err(|e| Error::Internal(format!("extraction detector task failed: {e}")))?
    };
    entry.state = state;
    entry
        .unwritten
        .push(&fresh.rows, &fresh.proba, &fresh.ood, n_features, n_classes);
    if !due(&entry, was_alarmed) {
        let observed = Observed {
            queries: entry.state.queries,
            new_alarm: false,
            w,
        };
        cache.put(key_id, model, entry);
        return Ok(Some(observed));
    }
    let Some(done) = write_back(db, key_id, model, entry).await? else {
        return Ok(None);
    };
    let observed = Observed {
        queries: done.entry.state.queries,
        new_alarm: done.new_alarm,
        w: done.w.or(w),
    };
    cache.put(key_id, model, done.entry);
    if observed.new_alarm {
        report_alarm(sinks, settings, key_id, owner, model, &observed).await;
    }
    Ok(Some(observed))
}

/// Whether `entry` must be written now: its first state, an alarm that flipped (`was_alarmed` before these rows),
/// too many unwritten rows, or its last write [`WRITE_EVERY`] ago.
fn due(entry: &Entry, was_alarmed: bool) -> bool {
    entry.version == 0
        || entry.state.alarmed != was_alarmed
        || entry.unwritten.len() >= MAX_UNWRITTEN_ROWS
        || entry.written_at.is_none_or(|t| t.elapsed() >= WRITE_EVERY)
}

/// A state written back.
struct Written {
    entry: Entry,
    /// The stored state was not alarmed and the written one is.
    new_alarm: bool,
    /// The last W computed while observing unwritten rows again, if that happened.
    w: Option<f64>,
}

/// Write `entry`'s state with optimistic concurrency: when another replica wrote first, read its state, observe
/// the unwritten rows again on top of it, and try again (at most [`MAX_ATTEMPTS`] times; then the rows are
/// dropped with a warning and `None`).
async fn write_back(
    db: &Db,
    key_id: &str,
    model: &str,
    mut entry: Entry,
) -> Result<Option<Written>> {
    let mut stored_alarmed = entry.stored_alarmed;
    let mut replay_w = None;
    for attempt in 0..MAX_ATTEMPTS {
        let text = serde_json::to_string(&entry.state)
            .map_err(|e| Error::Internal(format!("serialise extraction state: {e}")))?;
        let now_ms = crate::util::now_ms();
        let alarmed = entry.state.alarmed;
        let written = write_state(db, key_id, model, entry.version, &text, alarmed, now_ms).await?;
        if let Some(new_version) = written {
            entry.version = new_version;
            entry.stored_alarmed = alarmed;
            entry.unwritten = Unwritten::default();
            entry.written_at = Some(std::time::Instant::now());
            return Ok(Some(Written {
                new_alarm: alarmed && !stored_alarmed,
                w: replay_w,
                entry,
            }));
        }
        // Another replica wrote first: back off a little (growing, jittered), read its state and observe the
        // unwritten rows again.
        let jitter = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
                % 3,
        );
        tokio::time::sleep(std::time::Duration::from_millis(
            (attempt as u64 + 1) * (1 + jitter),
        ))
        .await;
        let (version, mut state) = load(db, key_id, model).await?;
        stored_alarmed = state.alarmed;
        let (unwritten, config) = (entry.unwritten.clone(), entry.config.clone());
        let (state, w) = tokio::task::spawn_blocking(move || {
            let w = unwritten.replay(&mut state, &config);
            (state, w)
        })
        .await
        .map_err(|e| Error::Internal(format!("extraction detector task failed: {e}")))?;
        entry.version = version;
        entry.state = state;
        replay_w = w.or(replay_w);
    }
    crate::log::emit(
        crate::log::Level::Warn,
        "extraction_state_contended",
        &[
            ("key_id", key_id.into()),
            ("model", model.into()),
            ("attempts", MAX_ATTEMPTS.into()),
            ("rows_dropped", entry.unwritten.len().into()),
        ],
    );
    Ok(None)
}

/// One conditional write of a state: insert the first version, or update the version read. The new version, or
/// `None` when another writer got there first.
async fn write_state(
    db: &Db,
    key_id: &str,
    model: &str,
    version: i64,
    text: &str,
    alarmed: bool,
    now_ms: i64,
) -> Result<Option<i64>> {
    let _guard = db.write_guard().await;
    if version == 0 {
        let first = now_ms.max(1);
        let done = sqlx::query(
            "INSERT INTO extraction_state
             (key_id, model, state, version, alarmed, alarm_ts, next_allowed_ms, updated)
             VALUES ($1, $2, $3, $4, $5, $6, 0, $7) ON CONFLICT (key_id, model) DO NOTHING",
        )
        .bind(key_id)
        .bind(model)
        .bind(text)
        .bind(first)
        .bind(i64::from(alarmed))
        .bind(if alarmed { now_ms / 1000 } else { 0 })
        .bind(now_ms / 1000)
        .execute(db.pool())
        .await
        .map_err(Error::db("write extraction state"))?
        .rows_affected()
            == 1;
        return Ok(done.then_some(first));
    }
    let next = version.saturating_add(1);
    let done = sqlx::query(
        "UPDATE extraction_state SET state = $1, version = $2, alarmed = $3,
         alarm_ts = CASE WHEN alarm_ts = 0 THEN $4 ELSE alarm_ts END, updated = $5
         WHERE key_id = $6 AND model = $7 AND version = $8",
    )
    .bind(text)
    .bind(next)
    .bind(i64::from(alarmed))
    .bind(if alarmed { now_ms / 1000 } else { 0 })
    .bind(now_ms / 1000)
    .bind(key_id)
    .bind(model)
    .bind(version)
    .execute(db.pool())
    .await
    .map_err(Error::db("write extraction state"))?
    .rows_affected()
        == 1;
    Ok(done.then_some(next))
}

/// The stored state and its version ((0, empty) when there is none).
async fn load(db: &Db, key_id: &str, model: &str) -> Result<(i64, PradaState)> {
    let row =
        sqlx::query("SELECT state, version FROM extraction_state WHERE key_id = $1 AND model = $2")
            .bind(key_id)
            .bind(model)
            .fetch_optional(db.pool())
            .await
            .map_err(Error::db("read extraction state"))?;
    let Some(row) = row else {
        return Ok((0, PradaState::default()));
    };
    let text: String = row
        .try_get("state")
        .map_err(Error::db("read extraction state"))?;
    let version: i64 = row
        .try_get("version")
        .map_err(Error::db("read extraction state"))?;
    let state = serde_json::from_str(&text)
        .map_err(|e| Error::Corrupt(format!("extraction state of {key_id}/{model}: {e}")))?;
    Ok((version, state))
}

async fn report_alarm(
    sinks: Sinks<'_>,
    settings: &ExtractionSettings,
    key_id: &str,
    owner: &str,
    model: &str,
    observed: &Observed,
) {
    crate::signals::extraction_alarm(sinks, model, key_id, owner, observed.queries).await;
    sinks.metrics.add_counter(
        "aegis_extraction_alarms_total",
        "API keys whose queries raised the model-extraction (PRADA) alarm, by model.",
        &[("model", model)],
        1.0,
    );
    let w = observed
        .w
        .map(|w| format!("{w:.4}"))
        .unwrap_or_else(|| "-".into());
    crate::log::emit(
        crate::log::Level::Warn,
        "extraction_alarm",
        &[
            ("key_id", key_id.into()),
            ("model", model.into()),
            ("queries", observed.queries.into()),
            ("action", settings.action.as_str().into()),
            ("request_id", crate::context::current_request_id().into()),
        ],
    );
    sinks
        .audit
        .record(AuditEvent {
            kind: "extraction".into(),
            actor: owner.to_string(),
            key_id: key_id.to_string(),
            model: model.to_string(),
            route: crate::context::current_route(),
            decision: "alarm".into(),
            detail: format!(
                "PRADA model-extraction alarm after {} queries (Shapiro-Wilk W {w} < delta {}); action {}",
                observed.queries,
                settings.prada.delta,
                settings.action.as_str()
            ),
            ..AuditEvent::default()
        })
        .await;
}

/// One alarmed (key, model), as `GET /admin/extraction` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Alarm {
    /// The API key's id.
    pub key_id: String,
    /// The model.
    pub model: String,
    /// Queries seen from this key on this model.
    pub queries: u64,
    /// Query count at the alarm.
    pub alarm_at: Option<u64>,
    /// When the alarm was raised (Unix seconds).
    pub alarm_ts: i64,
    /// Last update (Unix seconds).
    pub updated: i64,
    /// Share of queries near the decision boundary.
    pub low_margin_rate: f64,
    /// Share of queries outside the reference data.
    pub out_of_distribution_rate: f64,
    /// The last Shapiro–Wilk W of the key's distance set.
    pub w: Option<f64>,
    /// The lowest W seen.
    pub min_w: Option<f64>,
}

/// Every alarmed (key, model), most recent first (at most 1000).
pub(crate) async fn list_alarms(db: &Db) -> Result<Vec<Alarm>> {
    let rows = sqlx::query(
        "SELECT key_id, model, state, alarm_ts, updated FROM extraction_state WHERE alarmed = 1
         ORDER BY alarm_ts DESC, key_id, model LIMIT 1000",
    )
    .fetch_all(db.pool())
    .await
    .map_err(Error::db("list extraction alarms"))?;
    let mut out = Vec::with_capacity(rows.len());
    let failed = |e| Error::db("list extraction alarms")(e);
    for row in rows {
        let key_id: String = row.try_get("key_id").map_err(&failed)?;
        let model: String = row.try_get("model").map_err(&failed)?;
        let text: String = row.try_get("state").map_err(&failed)?;
        let alarm_ts: i64 = row.try_get("alarm_ts").map_err(&failed)?;
        let updated: i64 = row.try_get("updated").map_err(&failed)?;
        let c = serde_json::from_str::<PradaState>(&text)
            .unwrap_or_default()
            .coverage();
        out.push(Alarm {
            key_id,
            model,
            queries: c.queries,
            alarm_at: c.alarm_at,
            alarm_ts,
            updated,
            low_margin_rate: c.low_margin_share,
            out_of_distribution_rate: c.out_of_distribution_share,
            w: c.w,
            min_w: c.min_w,
        });
    }
    Ok(out)
}

/// Delete every detector state of a key (all models); returns how many were removed.
pub(crate) async fn clear_key(db: &Db, key_id: &str) -> Result<u64> {
    let _guard = db.write_guard().await;
    let done = sqlx::query("DELETE FROM extraction_state WHERE key_id = $1")
        .bind(key_id)
        .execute(db.pool())
        .await
        .map_err(Error::db("clear extraction state"))?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_monitor::prada::PradaConfig;

    fn settings(action: ExtractionAction) -> ExtractionSettings {
        ExtractionSettings {
            prada: PradaConfig::default(),
            action,
            throttle_secs: 10,
        }
    }

    async fn alarmed_row(db: &Db, key: &str, model: &str) {
        sqlx::query(
            "INSERT INTO extraction_state
             (key_id, model, state, version, alarmed, alarm_ts, next_allowed_ms, updated)
             VALUES ($1, $2, '{}', 7, 1, 1, 0, 1)",
        )
        .bind(key)
        .bind(model)
        .execute(db.pool())
        .await
        .unwrap();
    }

    /// An entry with `n` one-feature rows observed and unwritten, based on `version`.
    fn entry_with(version: i64, n: usize, offset: f64) -> Entry {
        let config = PradaConfig::default();
        let mut unwritten = Unwritten::default();
        for i in 0..n {
            unwritten.push(&[offset + i as f64], &[0.9, 0.1], &[false], 1, 2);
        }
        let mut state = PradaState::default();
        unwritten.replay(&mut state, &config);
        Entry {
            version,
            state,
            unwritten,
            written_at: None,
            stored_alarmed: false,
            config,
        }
    }

    #[test]
    fn states_are_due_at_first_on_an_alarm_on_many_rows_or_after_a_while() {
        let mut e = entry_with(0, 3, 0.0);
        assert!(due(&e, false), "first state");
        e.version = 5;
        e.written_at = Some(std::time::Instant::now());
        assert!(!due(&e, false), "written just now, few rows");
        e.state.alarmed = true;
        assert!(due(&e, false), "the alarm flipped");
        e.state.alarmed = false;
        e.written_at = Some(std::time::Instant::now() - WRITE_EVERY);
        assert!(due(&e, false), "written long enough ago");
        let mut many = entry_with(5, MAX_UNWRITTEN_ROWS, 0.0);
        many.written_at = Some(std::time::Instant::now());
        assert!(due(&many, false), "too many unwritten rows");
    }

    #[tokio::test]
    async fn a_write_that_lost_the_race_observes_its_rows_again_on_the_winners_state() {
        let (db, _dir) = crate::db::tests::temp_db().await;
        // Replica B writes its first state (10 rows); replica A, based on nothing, has 7 rows unwritten.
        let b = write_back(&db, "k", "m", entry_with(0, 10, 0.0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.entry.state.queries, 10);
        let a = write_back(&db, "k", "m", entry_with(0, 7, 100.0))
            .await
            .unwrap()
            .unwrap();
        // A read B's state and observed its own rows again: every query counted once.
        assert_eq!(a.entry.state.queries, 17);
        assert_eq!(a.entry.unwritten.len(), 0);
        let (version, stored) = load(&db, "k", "m").await.unwrap();
        assert_eq!(stored.queries, 17);
        assert_eq!(version, a.entry.version);
        // B, still based on its own version, loses the next race the same way.
        let mut b_next = entry_with(b.entry.version, 0, 0.0);
        b_next.state = b.entry.state.clone();
        let extra = entry_with(0, 5, 200.0);
        b_next.unwritten = extra.unwritten;
        b_next.state.queries += 5;
        let b2 = write_back(&db, "k", "m", b_next).await.unwrap().unwrap();
        assert_eq!(b2.entry.state.queries, 22);
        assert_eq!(load(&db, "k", "m").await.unwrap().1.queries, 22);
    }

    #[tokio::test]
    async fn throttle_answers_once_per_period_and_block_refuses() {
        let (db, _dir) = crate::db::tests::temp_db().await;
        let cache = StateCache::new();
        let throttle = settings(ExtractionAction::Throttle);
        // No state yet: allowed, version 0.
        assert_eq!(
            gate(&db, &cache, &throttle, "k1", "m", 1_000)
                .await
                .unwrap(),
            Gate::Allow { version: 0 }
        );
        alarmed_row(&db, "k1", "m").await;
        let at = |t| gate(&db, &cache, &throttle, "k1", "m", t);
        assert_eq!(at(1_000).await.unwrap(), Gate::Allow { version: 7 });
        assert_eq!(
            at(2_000).await.unwrap(),
            Gate::Throttled {
                retry_after_secs: 9
            }
        );
        assert_eq!(at(11_000).await.unwrap(), Gate::Allow { version: 7 });
        assert_eq!(
            at(11_001).await.unwrap(),
            Gate::Throttled {
                retry_after_secs: 10
            }
        );
        // Another model, or another key, is not affected.
        assert_eq!(
            gate(&db, &cache, &throttle, "k1", "other", 11_002)
                .await
                .unwrap(),
            Gate::Allow { version: 0 }
        );
        let block = settings(ExtractionAction::Block);
        assert_eq!(
            gate(&db, &cache, &block, "k1", "m", 50_000).await.unwrap(),
            Gate::Blocked
        );
        assert_eq!(
            gate(&db, &cache, &block, "k2", "m", 50_000).await.unwrap(),
            Gate::Allow { version: 0 }
        );
        // Alert refuses nothing and reads nothing.
        let alert = settings(ExtractionAction::Alert);
        assert_eq!(
            gate(&db, &cache, &alert, "k1", "m", 50_000).await.unwrap(),
            Gate::Allow { version: 0 }
        );
        // Clearing the key removes its state: allowed again.
        assert_eq!(clear_key(&db, "k1").await.unwrap(), 1);
        assert_eq!(
            gate(&db, &cache, &block, "k1", "m", 60_000).await.unwrap(),
            Gate::Allow { version: 0 }
        );
        assert!(list_alarms(&db).await.unwrap().is_empty());
    }
}
