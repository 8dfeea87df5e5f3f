//! Model-extraction detection per API key: PRADA (Juuti et al., 2019) run on every row a key sends to a local
//! model, with its state in the database so replicas sharing it extend one detector per (key, model).
//!
//! Each (key, model) has one `extraction_state` row: the serialised [`PradaState`], a `version`, and the
//! alarm flag and time. A request reads the small columns first ([`gate`]) to enforce the configured action on
//! a key already alarmed (`throttle`: one answer per `throttle_secs`, claimed atomically in the database;
//! `block`: 403). After the model answered, [`observe`] feeds every row to the detector and writes the state
//! back with optimistic concurrency: the update only applies when the version is still the one the state was
//! read at; otherwise the state is read again and the rows observed again, at most [`MAX_ATTEMPTS`] times. An
//! in-process cache keyed by version saves reading the (larger) state when this replica wrote it last. The
//! first version of a row is the current time in milliseconds, so a cleared and re-created row never reuses
//! a version another replica still caches.
//!
//! The first alarm of a (key, model) is audited (kind `extraction`), counted
//! (`aegis_extraction_alarms_total{model}`) and logged, once across replicas: only the writer whose update
//! flips the stored flag reports it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use aegis_monitor::prada::PradaState;
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
/// Most (key, model) states cached in memory (beyond, the cache is emptied: a cache miss costs one read).
const MAX_CACHED: usize = 10_000;

/// States this process wrote last, by (key id, model), with their version.
#[derive(Debug)]
pub struct StateCache {
    map: Mutex<HashMap<(String, String), (i64, PradaState)>>,
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

    fn get(&self, key_id: &str, model: &str, version: i64) -> Option<PradaState> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&(key_id.to_string(), model.to_string())) {
            Some((v, state)) if *v == version => Some(state.clone()),
            _ => None,
        }
    }

    /// The version of the cached state of a (key, model), if any.
    fn version(&self, key_id: &str, model: &str) -> Option<i64> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(key_id.to_string(), model.to_string()))
            .map(|(v, _)| *v)
    }

    fn put(&self, key_id: &str, model: &str, version: i64, state: PradaState) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert((key_id.to_string(), model.to_string()), (version, state));
    }

    /// Forget every state of a key (after an admin cleared it).
    pub fn forget_key(&self, key_id: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(k, _), _| k != key_id);
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

/// Feed `n` rows (`x`, `n_features` wide) and the model's full probabilities to the key's detector and store
/// the state; reports a new alarm (audit, metrics, log).
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
    // Rows as f64 and their out-of-distribution flags, once for all attempts.
    let rows: Arc<Vec<f64>> = Arc::new(x.iter().map(|v| f64::from(*v)).collect());
    let ood: Arc<Vec<bool>> = Arc::new(
        rows.chunks_exact(n_features)
            .map(|r| guard.out_of_distribution(r))
            .collect(),
    );
    let proba: Arc<Vec<f32>> = Arc::new(proba.to_vec());
    let _serial = cache.stripe(key_id, model).lock().await;
    let mut known = version;
    for attempt in 0..MAX_ATTEMPTS {
        let (current_version, mut prada) = if known == 0 {
            (0, PradaState::default())
        } else if let Some(cached) = cache.get(key_id, model, known) {
            (known, cached)
        } else {
            load(db, key_id, model).await?
        };
        let was_alarmed = prada.alarmed;
        // CPU work (distances to every representative, a Shapiro–Wilk test per row): off the async workers.
        let (rows, ood, proba, config) = (
            Arc::clone(&rows),
            Arc::clone(&ood),
            Arc::clone(&proba),
            settings.prada.clone(),
        );
        let (prada, w, text) = tokio::task::spawn_blocking(move || {
            let mut w = None;
            for ((row, p), out) in rows
                .chunks_exact(n_features)
                .zip(proba.chunks_exact(n_classes))
                .zip(ood.iter())
            {
                let verdict = prada.observe(&config, row, p, *out);
                if verdict.w.is_some() {
                    w = verdict.w;
                }
            }
            let text = serde_json::to_string(&prada);
            (prada, w, text)
        })
        .await
        .map_err(|e| Error::Internal(format!("extraction detector task failed: {e}")))?;
        let text = text.map_err(|e| Error::Internal(format!("serialise extraction state: {e}")))?;
        let now_ms = crate::util::now_ms();
        let alarmed = i64::from(prada.alarmed);
        let written = {
            let _guard = db.write_guard().await;
            if current_version == 0 {
                let first = now_ms.max(1);
                let done = sqlx::query(
                    "INSERT INTO extraction_state
                     (key_id, model, state, version, alarmed, alarm_ts, next_allowed_ms, updated)
                     VALUES ($1, $2, $3, $4, $5, $6, 0, $7) ON CONFLICT (key_id, model) DO NOTHING",
                )
                .bind(key_id)
                .bind(model)
                .bind(&text)
                .bind(first)
                .bind(alarmed)
                .bind(if prada.alarmed { now_ms / 1000 } else { 0 })
                .bind(now_ms / 1000)
                .execute(db.pool())
                .await
                .map_err(Error::db("write extraction state"))?
                .rows_affected()
                    == 1;
                done.then_some(first)
            } else {
                let next = current_version.saturating_add(1);
                let done = sqlx::query(
                    "UPDATE extraction_state SET state = $1, version = $2, alarmed = $3,
                     alarm_ts = CASE WHEN alarm_ts = 0 THEN $4 ELSE alarm_ts END, updated = $5
                     WHERE key_id = $6 AND model = $7 AND version = $8",
                )
                .bind(&text)
                .bind(next)
                .bind(alarmed)
                .bind(if prada.alarmed { now_ms / 1000 } else { 0 })
                .bind(now_ms / 1000)
                .bind(key_id)
                .bind(model)
                .bind(current_version)
                .execute(db.pool())
                .await
                .map_err(Error::db("write extraction state"))?
                .rows_affected()
                    == 1;
                done.then_some(next)
            }
        };
        match written {
            Some(new_version) => {
                let new_alarm = prada.alarmed && !was_alarmed;
                let observed = Observed {
                    queries: prada.queries,
                    new_alarm,
                    w,
                };
                cache.put(key_id, model, new_version, prada);
                if new_alarm {
                    report_alarm(sinks, settings, key_id, owner, model, &observed).await;
                }
                return Ok(Some(observed));
            }
            None => {
                // Another replica wrote first: back off a little (growing, jittered), read its state and
                // observe these rows again.
                let jitter = u64::from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.subsec_nanos())
                        % 3,
                );
                let wait = (attempt as u64 + 1) * (1 + jitter);
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                known = current_version_of(db, key_id, model).await?;
            }
        }
    }
    crate::log::emit(
        crate::log::Level::Warn,
        "extraction_state_contended",
        &[
            ("key_id", key_id.into()),
            ("model", model.into()),
            ("attempts", MAX_ATTEMPTS.into()),
        ],
    );
    Ok(None)
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

async fn current_version_of(db: &Db, key_id: &str, model: &str) -> Result<i64> {
    let row = sqlx::query("SELECT version FROM extraction_state WHERE key_id = $1 AND model = $2")
        .bind(key_id)
        .bind(model)
        .fetch_optional(db.pool())
        .await
        .map_err(Error::db("read extraction state"))?;
    match row {
        Some(r) => r
            .try_get("version")
            .map_err(Error::db("read extraction state")),
        None => Ok(0),
    }
}

async fn report_alarm(
    sinks: Sinks<'_>,
    settings: &ExtractionSettings,
    key_id: &str,
    owner: &str,
    model: &str,
    observed: &Observed,
) {
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
