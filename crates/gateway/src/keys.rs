//! API keys for clients: created with a recognisable prefix, shown once, stored only as a SHA-256 hash,
//! scoped to models and route classes, with expiry, rotation and revocation.
//!
//! A key reads `aeg_<id>_<secret>`: the id (`k` + 10 alphanumerics) is the table's primary key and is not
//! secret (it appears in listings and the audit log); the 40-character secret carries ≈238 bits, so a plain
//! SHA-256 of the whole key is a sufficient verifier (no password stretching is needed for random secrets).
//!
//! [`authenticate`] looks the key up in the database on every call. The request path uses [`KeyCache`]
//! instead, which keeps key records (never secrets: only their stored hash) in memory and is kept honest by
//! a `keys_version` counter in `settings`: every mutation of `api_keys` here bumps it in the same transaction,
//! and each replica polls it ([`KeyCache::spawn_watcher`]) and drops its cache when it moves. A revocation
//! therefore takes effect at once in the process that made it ([`KeyCache::invalidate`]) and within one poll
//! interval (plus one query) at every other replica. A cache whose watcher has not succeeded recently stops
//! answering from memory ([`KEY_CACHE_MAX_STALENESS`]), so a stalled watcher cannot stretch that window.
//! Anything else that edits `api_keys` by SQL must call [`bump_keys_version`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::config::{check_name, KeyDefaults};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::util::{constant_time_eq, random_token, sha256_hex};

/// The prefix of every key, so leaked keys are recognisable by secret scanners.
pub const KEY_PREFIX: &str = "aeg_";
/// Random characters in a key id after its leading `k`.
const ID_RANDOM_LEN: usize = 10;
/// Random characters in a key's secret part.
const SECRET_LEN: usize = 40;
/// Longest presented key we parse at all.
const MAX_PRESENTED_LEN: usize = 256;
/// Most entries in a key's model or route scope.
const MAX_SCOPE_ENTRIES: usize = 256;

/// The kind of route a request uses, for key scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteClass {
    /// `POST /v1/models/{m}/predict`.
    Predict,
    /// `POST /v2/models/{m}/infer` (KServe / Triton V2).
    Infer,
    /// `POST /v1/chat/completions` (OpenAI).
    Chat,
    /// `POST /v1/completions` (OpenAI).
    Completions,
    /// `POST /v1/embeddings` (OpenAI).
    Embeddings,
    /// `/upstream/{name}/…` (plain proxy to a `predict` upstream).
    Proxy,
}

impl RouteClass {
    /// Every route class.
    pub const ALL: [RouteClass; 6] = [
        RouteClass::Predict,
        RouteClass::Infer,
        RouteClass::Chat,
        RouteClass::Completions,
        RouteClass::Embeddings,
        RouteClass::Proxy,
    ];

    /// The name used in scopes, configuration and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Predict => "predict",
            RouteClass::Infer => "infer",
            RouteClass::Chat => "chat",
            RouteClass::Completions => "completions",
            RouteClass::Embeddings => "embeddings",
            RouteClass::Proxy => "proxy",
        }
    }
}

impl fmt::Display for RouteClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RouteClass {
    type Err = Error;

    fn from_str(s: &str) -> Result<RouteClass> {
        RouteClass::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown route class {s:?} (expected predict, infer, chat, completions, embeddings, proxy or *)"
                ))
            })
    }
}

/// A stored API key (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiKey {
    /// Public identifier (`k…`), the middle part of the key.
    pub id: String,
    /// Operator-chosen label.
    pub name: String,
    /// The user or client the key belongs to.
    pub owner: String,
    /// Model (or upstream) names the key may use; `*` = all.
    pub models: Vec<String>,
    /// Route classes the key may use ([`RouteClass::as_str`] names); `*` = all.
    pub routes: Vec<String>,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Expiry, Unix seconds; 0 = never.
    pub expires: i64,
    /// Revoked keys are refused.
    pub revoked: bool,
    /// Sustained requests per second.
    pub rate_per_sec: f64,
    /// Requests allowed at once above the sustained rate.
    pub burst: i64,
    /// Requests per UTC day; 0 = unlimited.
    pub daily_budget: i64,
    /// Requests per UTC month; 0 = unlimited.
    pub monthly_budget: i64,
    /// The key that replaced this one by rotation.
    pub replaced_by: Option<String>,
}

impl ApiKey {
    /// Whether this key's scopes cover `model` through `route` (validity — revocation, expiry — is checked by
    /// [`authenticate`]).
    pub fn allows(&self, model: &str, route: RouteClass) -> bool {
        let model_ok = self.models.iter().any(|m| m == "*" || m == model);
        let route_ok = self.routes.iter().any(|r| r == "*" || r == route.as_str());
        model_ok && route_ok
    }

    /// Whether the key has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires != 0 && now >= self.expires
    }
}

/// What a new key should be allowed to do.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    /// Label (a [`check_name`] name).
    pub name: String,
    /// Owner (user or client name).
    pub owner: String,
    /// Model scope (`*` = all).
    pub models: Vec<String>,
    /// Route scope (route class names, `*` = all).
    pub routes: Vec<String>,
    /// Days until expiry; 0 = never.
    pub expires_days: i64,
    /// Sustained requests per second (> 0).
    pub rate_per_sec: f64,
    /// Burst size (≥ 1).
    pub burst: i64,
    /// Requests per UTC day (0 = unlimited).
    pub daily_budget: i64,
    /// Requests per UTC month (0 = unlimited).
    pub monthly_budget: i64,
}

impl NewKey {
    /// A key for `models` on every route, with the configured default limits.
    pub fn from_defaults(name: &str, owner: &str, models: Vec<String>, d: &KeyDefaults) -> NewKey {
        NewKey {
            name: name.to_string(),
            owner: owner.to_string(),
            models,
            routes: vec!["*".to_string()],
            expires_days: d.expires_days,
            rate_per_sec: d.rate_per_sec,
            burst: d.burst,
            daily_budget: d.daily_budget,
            monthly_budget: d.monthly_budget,
        }
    }

    /// What this key would be granted beyond `ceilings` (empty when within them): a rate, burst or lifetime
    /// above the ceiling, no expiry, or every model.
    pub fn beyond(&self, ceilings: &crate::config::KeyCeilings) -> Vec<String> {
        let mut beyond = Vec::new();
        if self.rate_per_sec > ceilings.max_rate_per_sec {
            beyond.push(format!(
                "rate {} /s above the ceiling of {}",
                self.rate_per_sec, ceilings.max_rate_per_sec
            ));
        }
        if self.burst > ceilings.max_burst {
            beyond.push(format!(
                "burst {} above the ceiling of {}",
                self.burst, ceilings.max_burst
            ));
        }
        if self.expires_days == 0 {
            beyond.push("never expires".to_string());
        } else if self.expires_days > ceilings.max_expires_days {
            beyond.push(format!(
                "lifetime {} days above the ceiling of {}",
                self.expires_days, ceilings.max_expires_days
            ));
        }
        if self.models.iter().any(|m| m == "*") {
            beyond.push("every model (*)".to_string());
        }
        beyond
    }

    fn check(&self) -> Result<()> {
        check_name(&self.name).map_err(Error::Invalid)?;
        if self.owner.is_empty()
            || self.owner.len() > 128
            || self.owner.chars().any(char::is_control)
        {
            return Err(Error::Invalid(
                "key owner must be 1–128 characters without control characters".into(),
            ));
        }
        if self.models.is_empty() || self.models.len() > MAX_SCOPE_ENTRIES {
            return Err(Error::Invalid(format!(
                "a key needs 1–{MAX_SCOPE_ENTRIES} models (or *)"
            )));
        }
        for m in &self.models {
            if m != "*" {
                check_name(m).map_err(Error::Invalid)?;
            }
        }
        if self.routes.is_empty() || self.routes.len() > MAX_SCOPE_ENTRIES {
            return Err(Error::Invalid(format!(
                "a key needs 1–{MAX_SCOPE_ENTRIES} route classes (or *)"
            )));
        }
        for r in &self.routes {
            if r != "*" {
                r.parse::<RouteClass>()?;
            }
        }
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0) {
            return Err(Error::Invalid(
                "rate_per_sec must be a positive number".into(),
            ));
        }
        if self.burst < 1 {
            return Err(Error::Invalid("burst must be at least 1".into()));
        }
        if self.daily_budget < 0 || self.monthly_budget < 0 {
            return Err(Error::Invalid(
                "budgets must be 0 (unlimited) or positive".into(),
            ));
        }
        if !(0..=36_500).contains(&self.expires_days) {
            return Err(Error::Invalid(
                "expires_days must be between 0 (never) and 36500".into(),
            ));
        }
        Ok(())
    }
}

/// A full key, shown to the operator once at creation. Its `Debug` prints `***` and it is zeroized on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct KeySecret(String);

impl KeySecret {
    /// The key text (`aeg_<id>_<secret>`), to print once or hand to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a presented key was refused. `Display` is short and safe to send to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRejection {
    /// No key in the request.
    Missing,
    /// Not shaped like an Aegis key.
    Malformed,
    /// No such key, or the secret does not match.
    Unknown,
    /// The key was revoked (or rotated away).
    Revoked,
    /// The key has expired.
    Expired,
}

impl KeyRejection {
    /// A stable short code for metrics and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyRejection::Missing => "missing",
            KeyRejection::Malformed => "malformed",
            KeyRejection::Unknown => "unknown",
            KeyRejection::Revoked => "revoked",
            KeyRejection::Expired => "expired",
        }
    }
}

impl fmt::Display for KeyRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyRejection::Missing => "API key missing",
            KeyRejection::Malformed => "API key malformed",
            KeyRejection::Unknown => "API key invalid",
            KeyRejection::Revoked => "API key revoked",
            KeyRejection::Expired => "API key expired",
        })
    }
}

fn key_from_row(row: &sqlx::any::AnyRow) -> Result<ApiKey> {
    let get_str = |c: &str| {
        row.try_get::<String, _>(c)
            .map_err(Error::db("read an API key"))
    };
    let get_i64 = |c: &str| {
        row.try_get::<i64, _>(c)
            .map_err(Error::db("read an API key"))
    };
    let list = |c: &str| -> Result<Vec<String>> {
        serde_json::from_str(&get_str(c)?).map_err(|e| Error::Corrupt(format!("api_keys.{c}: {e}")))
    };
    Ok(ApiKey {
        id: get_str("id")?,
        name: get_str("name")?,
        owner: get_str("owner")?,
        models: list("models")?,
        routes: list("routes")?,
        created: get_i64("created")?,
        expires: get_i64("expires")?,
        revoked: get_i64("revoked")? != 0,
        rate_per_sec: get_f64(row, "rate_per_sec")?,
        burst: get_i64("burst")?,
        daily_budget: get_i64("daily_budget")?,
        monthly_budget: get_i64("monthly_budget")?,
        replaced_by: row
            .try_get::<Option<String>, _>("replaced_by")
            .map_err(Error::db("read an API key"))?,
    })
}

/// A `DOUBLE PRECISION` column, accepting an integer where a backend stored one.
pub(crate) fn get_f64(row: &sqlx::any::AnyRow, col: &str) -> Result<f64> {
    match row.try_get::<f64, _>(col) {
        Ok(v) => Ok(v),
        Err(e) => row
            .try_get::<i64, _>(col)
            .map(|v| v as f64)
            .map_err(|_| Error::Db {
                op: "read a number",
                source: e,
            }),
    }
}

fn new_id() -> Result<String> {
    Ok(format!("k{}", random_token(ID_RANDOM_LEN)?))
}

fn new_secret(id: &str) -> Result<KeySecret> {
    let mut random = random_token(SECRET_LEN)?;
    let secret = KeySecret(format!("{KEY_PREFIX}{id}_{random}"));
    random.zeroize();
    Ok(secret)
}

/// Create a key; the returned [`KeySecret`] is the only copy of the full key anywhere.
pub async fn create_key(db: &Db, new: &NewKey, now: i64) -> Result<(ApiKey, KeySecret)> {
    new.check()?;
    let expires = if new.expires_days == 0 {
        0
    } else {
        now + new.expires_days * 86_400
    };
    let mut tx = db.begin().await.map_err(Error::db("create an API key"))?;
    bump_in(&mut tx).await?;
    let id = new_id()?;
    let created = insert_key(&mut tx, id, new, now, expires, 0.0).await?;
    tx.commit().await.map_err(Error::db("create an API key"))?;
    Ok(created)
}

/// Insert a key and its rate-limiter row (with `tat`) inside `tx`.
async fn insert_key(
    tx: &mut crate::db::Transaction,
    id: String,
    new: &NewKey,
    now: i64,
    expires: i64,
    tat: f64,
) -> Result<(ApiKey, KeySecret)> {
    let secret = new_secret(&id)?;
    let hash = sha256_hex(secret.expose().as_bytes());
    let to_json = |v: &Vec<String>| {
        serde_json::to_string(v).map_err(|e| Error::Internal(format!("key scope: {e}")))
    };
    sqlx::query(
        "INSERT INTO api_keys (id, secret_hash, name, owner, models, routes, created, expires, revoked,
             rate_per_sec, burst, daily_budget, monthly_budget, replaced_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $12, NULL)",
    )
    .bind(&id)
    .bind(&hash)
    .bind(&new.name)
    .bind(&new.owner)
    .bind(to_json(&new.models)?)
    .bind(to_json(&new.routes)?)
    .bind(now)
    .bind(expires)
    .bind(new.rate_per_sec)
    .bind(new.burst)
    .bind(new.daily_budget)
    .bind(new.monthly_budget)
    .execute(&mut **tx)
    .await
    .map_err(Error::db("create an API key"))?;
    sqlx::query("INSERT INTO rate_state (key_id, tat) VALUES ($1, $2)")
        .bind(&id)
        .bind(tat)
        .execute(&mut **tx)
        .await
        .map_err(Error::db("create an API key's rate state"))?;
    let key = ApiKey {
        id,
        name: new.name.clone(),
        owner: new.owner.clone(),
        models: new.models.clone(),
        routes: new.routes.clone(),
        created: now,
        expires,
        revoked: false,
        rate_per_sec: new.rate_per_sec,
        burst: new.burst,
        daily_budget: new.daily_budget,
        monthly_budget: new.monthly_budget,
        replaced_by: None,
    };
    Ok((key, secret))
}

/// Every key, oldest first.
pub async fn list_keys(db: &Db) -> Result<Vec<ApiKey>> {
    let rows = sqlx::query(
        "SELECT id, name, owner, models, routes, created, expires, revoked, rate_per_sec, burst,
             daily_budget, monthly_budget, replaced_by FROM api_keys ORDER BY created, id",
    )
    .fetch_all(db.pool())
    .await
    .map_err(Error::db("list API keys"))?;
    rows.iter().map(key_from_row).collect()
}

/// One key by id.
pub async fn get_key(db: &Db, id: &str) -> Result<Option<ApiKey>> {
    Ok(fetch_key(db, id).await?.map(|(key, _)| key))
}

/// A key and its stored hash.
async fn fetch_key(db: &Db, id: &str) -> Result<Option<(ApiKey, String)>> {
    let row = sqlx::query(
        "SELECT id, secret_hash, name, owner, models, routes, created, expires, revoked, rate_per_sec,
             burst, daily_budget, monthly_budget, replaced_by FROM api_keys WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await
    .map_err(Error::db("read an API key"))?;
    match row {
        None => Ok(None),
        Some(row) => {
            let hash = row
                .try_get::<String, _>("secret_hash")
                .map_err(Error::db("read an API key"))?;
            Ok(Some((key_from_row(&row)?, hash)))
        }
    }
}

/// Revoke a key: every replica refuses it from its next request on. Revoking twice is not an error.
/// `now` is accepted for symmetry with the other administrative calls (the schema keeps no revocation time).
/// The `keys_version` bump commits with the revocation; revoking an unknown id rolls both back (no bump).
pub async fn revoke_key(db: &Db, id: &str, now: i64) -> Result<()> {
    let _ = now;
    let mut tx = db.begin().await.map_err(Error::db("revoke an API key"))?;
    bump_in(&mut tx).await?;
    let done = sqlx::query("UPDATE api_keys SET revoked = 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(Error::db("revoke an API key"))?;
    if done.rows_affected() == 0 {
        tx.rollback()
            .await
            .map_err(Error::db("revoke an API key"))?;
        return Err(Error::NotFound(format!("API key {id}")));
    }
    tx.commit().await.map_err(Error::db("revoke an API key"))?;
    Ok(())
}

/// Replace a live key by a new one with the same name, owner, scopes, limits and expiry length; the old key is
/// revoked (with `replaced_by` set) in the same transaction. The new key inherits the old one's rate-limiter
/// state and usage counters, so rotating never resets a client's limits or budgets.
pub async fn rotate_key(db: &Db, id: &str, now: i64) -> Result<(ApiKey, KeySecret)> {
    let old = get_key(db, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("API key {id}")))?;
    if old.revoked {
        return Err(Error::Invalid(format!(
            "API key {id} is revoked and cannot be rotated"
        )));
    }
    let expires = if old.expires == 0 {
        0
    } else {
        now + (old.expires - old.created).max(1)
    };
    let new = NewKey {
        name: old.name.clone(),
        owner: old.owner.clone(),
        models: old.models.clone(),
        routes: old.routes.clone(),
        expires_days: 0,
        rate_per_sec: old.rate_per_sec,
        burst: old.burst,
        daily_budget: old.daily_budget,
        monthly_budget: old.monthly_budget,
    };
    let mut tx = db.begin().await.map_err(Error::db("rotate an API key"))?;
    // Bump the version, then revoke, conditionally: of two concurrent rotations (or a rotation racing a
    // revocation) only one finds the key live. (A write first also makes SQLite take its write lock up front.)
    bump_in(&mut tx).await?;
    let new_id = new_id()?;
    let done = sqlx::query(
        "UPDATE api_keys SET revoked = 1, replaced_by = $2 WHERE id = $1 AND revoked = 0",
    )
    .bind(id)
    .bind(&new_id)
    .execute(&mut *tx)
    .await
    .map_err(Error::db("rotate an API key"))?;
    if done.rows_affected() != 1 {
        tx.rollback()
            .await
            .map_err(Error::db("rotate an API key"))?;
        return Err(Error::Invalid(format!(
            "API key {id} is revoked and cannot be rotated"
        )));
    }
    let tat = sqlx::query("SELECT tat FROM rate_state WHERE key_id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(Error::db("rotate an API key"))?
        .map(|row| get_f64(&row, "tat"))
        .transpose()?
        .unwrap_or(0.0);
    let (key, secret) = insert_key(&mut tx, new_id, &new, now, expires, tat).await?;
    sqlx::query(
        "INSERT INTO usage_counters (key_id, period, count)
         SELECT $1, period, count FROM usage_counters WHERE key_id = $2",
    )
    .bind(&key.id)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(Error::db("rotate an API key's usage"))?;
    tx.commit().await.map_err(Error::db("rotate an API key"))?;
    Ok((key, secret))
}

/// Split `aeg_<id>_<secret>` into id and whole key, or `None` when it is not shaped like one.
fn parse_presented(presented: &str) -> Option<&str> {
    if presented.len() > MAX_PRESENTED_LEN {
        return None;
    }
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let alnum = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    let id_ok = id.len() >= 2 && id.len() <= 64 && id.starts_with('k') && alnum(id);
    let secret_ok = secret.len() >= 20 && alnum(secret);
    (id_ok && secret_ok).then_some(id)
}

/// Check a presented key: `Ok(Ok(key))` for a live key, `Ok(Err(why))` for a refusal, `Err` when the database
/// failed. Revocation and expiry are only reported to someone who holds the right secret.
pub async fn authenticate(
    db: &Db,
    presented: Option<&str>,
    now: i64,
) -> Result<Result<ApiKey, KeyRejection>> {
    let Some(presented) = presented else {
        return Ok(Err(KeyRejection::Missing));
    };
    let Some(id) = parse_presented(presented) else {
        return Ok(Err(KeyRejection::Malformed));
    };
    let found = fetch_key(db, id).await?;
    Ok(judge(
        found.as_ref().map(|(k, h)| (k, h.as_str())),
        presented,
        now,
    ))
}

/// The verdict on a presented (well-formed) key given its stored record and hash, if the id exists.
fn judge(
    found: Option<(&ApiKey, &str)>,
    presented: &str,
    now: i64,
) -> Result<ApiKey, KeyRejection> {
    let hash = sha256_hex(presented.as_bytes());
    let Some((key, stored)) = found else {
        // Compare anyway, so an unknown id costs the same as a wrong secret.
        let _ = constant_time_eq(hash.as_bytes(), &[b'0'; 64]);
        return Err(KeyRejection::Unknown);
    };
    if !constant_time_eq(hash.as_bytes(), stored.as_bytes()) {
        return Err(KeyRejection::Unknown);
    }
    if key.revoked {
        return Err(KeyRejection::Revoked);
    }
    if key.is_expired(now) {
        return Err(KeyRejection::Expired);
    }
    Ok(key.clone())
}

/// The `settings` row counting mutations of `api_keys`.
pub const KEYS_VERSION_SETTING: &str = "keys_version";
/// Most key records a [`KeyCache`] holds; it is cleared when full.
pub const KEY_CACHE_MAX_ENTRIES: usize = 100_000;
/// How long after the start of its last successful [`KeyCache::refresh`] a cache still answers from memory.
/// Past that (watcher stalled, dead or never started) every lookup goes to the database.
pub const KEY_CACHE_MAX_STALENESS: Duration = Duration::from_secs(2);

/// Increment `keys_version` (creating it at 1), inside a key mutation's transaction. An upsert rather than a
/// plain `UPDATE`, so a database where the row was never created still counts the change.
async fn bump_in(tx: &mut crate::db::Transaction) -> Result<()> {
    sqlx::query(BUMP_SQL)
        .execute(&mut **tx)
        .await
        .map_err(Error::db("bump the API key version"))?;
    Ok(())
}

/// Runs unchanged on SQLite (≥ 3.24) and PostgreSQL.
const BUMP_SQL: &str = "INSERT INTO settings (name, value) VALUES ('keys_version', '1')
     ON CONFLICT (name) DO UPDATE SET value = CAST(CAST(settings.value AS BIGINT) + 1 AS TEXT)";

/// Tell every replica's [`KeyCache`] that `api_keys` changed: call it after editing keys by SQL outside this
/// module (in the same transaction when there is one — then use the same statement on it).
pub async fn bump_keys_version(db: &Db) -> Result<()> {
    sqlx::query(BUMP_SQL)
        .execute(db.pool())
        .await
        .map_err(Error::db("bump the API key version"))?;
    Ok(())
}

/// The current `keys_version` (0 when the row does not exist yet).
pub async fn keys_version(db: &Db) -> Result<i64> {
    match db.setting(KEYS_VERSION_SETTING).await? {
        None => Ok(0),
        Some(v) => v.trim().parse::<i64>().map_err(|_| {
            Error::Corrupt(format!("setting {KEYS_VERSION_SETTING} is not an integer"))
        }),
    }
}

/// A cached key record with its stored hash (a SHA-256 of a high-entropy key, not the key itself).
struct Cached {
    key: ApiKey,
    secret_hash: String,
}

/// An in-memory cache of key records in front of [`authenticate`], shared by every request of one process
/// (`Arc<KeyCache>`).
///
/// Answers are those of [`authenticate`]: only existing ids are cached (a new key works at once), the
/// presented secret is compared in constant time on every hit, and revocation and expiry are judged from the
/// record against the `now` of each call. What can be stale is a record changed by *another* process: until
/// this process's next [`refresh`](KeyCache::refresh) sees `keys_version` move (every `every` of
/// [`spawn_watcher`](KeyCache::spawn_watcher)). A miss that read the database before a change cannot put the
/// old record back after the clear that change causes (a generation counter guards the insert).
pub struct KeyCache {
    entries: RwLock<HashMap<String, Cached>>,
    /// Last `keys_version` seen by `refresh`; `i64::MIN` before the first.
    version: AtomicI64,
    /// Incremented (under the write lock) by every clear; a miss inserts only if it has not moved.
    generation: AtomicU64,
    /// Milliseconds since `origin` until which hits may be served.
    fresh_until_ms: AtomicU64,
    origin: Instant,
    max_staleness: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("entries", &self.len())
            .field("version", &self.version.load(Ordering::Relaxed))
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .field("hits", &self.hits.load(Ordering::Relaxed))
            .field("misses", &self.misses.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for KeyCache {
    fn default() -> KeyCache {
        KeyCache::new()
    }
}

impl KeyCache {
    /// An empty cache with [`KEY_CACHE_MAX_STALENESS`]. It serves no hits until its first successful
    /// [`refresh`](KeyCache::refresh).
    pub fn new() -> KeyCache {
        KeyCache::with_max_staleness(KEY_CACHE_MAX_STALENESS)
    }

    /// An empty cache that answers from memory only within `max_staleness` of the start of its last successful
    /// refresh (`Duration::ZERO`: never, every lookup reads the database).
    pub fn with_max_staleness(max_staleness: Duration) -> KeyCache {
        KeyCache {
            entries: RwLock::new(HashMap::new()),
            version: AtomicI64::new(i64::MIN),
            generation: AtomicU64::new(0),
            fresh_until_ms: AtomicU64::new(0),
            origin: Instant::now(),
            max_staleness,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Number of cached key records.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the cache holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lookups answered from memory and from the database so far (well-formed keys only).
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// [`authenticate`], answered from memory when the id's record is cached and the cache is fresh.
    pub async fn authenticate(
        &self,
        db: &Db,
        presented: Option<&str>,
        now: i64,
    ) -> Result<Result<ApiKey, KeyRejection>> {
        let Some(presented) = presented else {
            return Ok(Err(KeyRejection::Missing));
        };
        let Some(id) = parse_presented(presented) else {
            return Ok(Err(KeyRejection::Malformed));
        };
        if self.elapsed_ms() < self.fresh_until_ms.load(Ordering::Acquire) {
            let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(c) = entries.get(id) {
                let verdict = judge(Some((&c.key, c.secret_hash.as_str())), presented, now);
                drop(entries);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(verdict);
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Read the generation before the database: a clear between the two means the record may predate a
        // change this cache has already been told about, so it is used for this answer but not kept.
        let generation = self.generation.load(Ordering::Acquire);
        let found = fetch_key(db, id).await?;
        let verdict = judge(found.as_ref().map(|(k, h)| (k, h.as_str())), presented, now);
        if let Some((key, secret_hash)) = found {
            self.insert_if_current(generation, key, secret_hash);
        }
        Ok(verdict)
    }

    /// Cache a record read from the database, unless the cache was cleared since `generation` was read before
    /// that read (the record may then predate the change that caused the clear). Returns whether it was kept.
    fn insert_if_current(&self, generation: u64, key: ApiKey, secret_hash: String) -> bool {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) != generation {
            return false;
        }
        if entries.len() >= KEY_CACHE_MAX_ENTRIES && !entries.contains_key(&key.id) {
            entries.clear();
        }
        entries.insert(key.id.clone(), Cached { key, secret_hash });
        true
    }

    /// Forget every record (call after this process changed a key, so the change applies at once here).
    pub fn invalidate(&self) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Read `keys_version`; clear the cache when it differs from the last one seen (always on the first call).
    /// Returns whether it cleared. Success also keeps the cache fresh for [`KEY_CACHE_MAX_STALENESS`] (or the
    /// cache's own bound) from the moment this call started.
    pub async fn refresh(&self, db: &Db) -> Result<bool> {
        let started = self.elapsed_ms();
        let version = keys_version(db).await?;
        let previous = self.version.swap(version, Ordering::AcqRel);
        let changed = previous != version;
        if changed {
            self.invalidate();
        }
        let limit = u64::try_from(self.max_staleness.as_millis()).unwrap_or(u64::MAX);
        self.fresh_until_ms
            .fetch_max(started.saturating_add(limit), Ordering::AcqRel);
        Ok(changed)
    }

    /// Poll [`refresh`](KeyCache::refresh) every `every` until the cache is dropped (or the task aborted).
    /// A failed refresh is logged and clears the cache, so nothing stale outlives a database outage.
    pub fn spawn_watcher(self: &Arc<Self>, db: Db, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let every = every.max(Duration::from_millis(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(cache) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = cache.refresh(&db).await {
                    cache.invalidate();
                    crate::log::emit(
                        crate::log::Level::Warn,
                        "key_cache_refresh_failed",
                        &[("error", serde_json::Value::from(e.to_string()))],
                    );
                }
            }
        })
    }
}

/// The key a request presents: `Authorization: Bearer <key>` or `x-api-key: <key>`.
pub fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        if let Ok(text) = value.to_str() {
            let text = text.trim();
            if let Some((scheme, token)) = text.split_once(' ') {
                if scheme.eq_ignore_ascii_case("bearer") {
                    let token = token.trim();
                    if !token.is_empty() {
                        return Some(token);
                    }
                }
            }
        }
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::temp_db;

    const NOW: i64 = 1_760_000_000;

    fn new_key(models: &[&str], routes: &[&str]) -> NewKey {
        NewKey {
            name: "client-a".into(),
            owner: "alice".into(),
            models: models.iter().map(|s| s.to_string()).collect(),
            routes: routes.iter().map(|s| s.to_string()).collect(),
            expires_days: 30,
            rate_per_sec: 5.0,
            burst: 10,
            daily_budget: 100,
            monthly_budget: 1000,
        }
    }

    #[tokio::test]
    async fn a_created_key_authenticates_and_has_the_documented_shape() {
        let (db, _dir) = temp_db().await;
        let (key, secret) = create_key(&db, &new_key(&["fraud"], &["*"]), NOW)
            .await
            .unwrap();
        let text = secret.expose();
        assert!(text.starts_with(&format!("aeg_{}_", key.id)), "{key:?}");
        assert_eq!(text.len(), 4 + 11 + 1 + 40);
        assert!(key.id.starts_with('k') && key.id.len() == 11);
        assert_eq!(key.expires, NOW + 30 * 86_400);
        let got = authenticate(&db, Some(text), NOW).await.unwrap().unwrap();
        assert_eq!(got, key);
        assert_eq!(get_key(&db, &key.id).await.unwrap().unwrap(), key);
        assert_eq!(list_keys(&db).await.unwrap(), vec![key]);
        assert_eq!(format!("{secret:?}"), "***");
    }

    #[tokio::test]
    async fn the_secret_is_stored_only_as_a_hash() {
        let (db, dir) = temp_db().await;
        let (key, secret) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(&key.id)
            .fetch_one(db.pool())
            .await
            .unwrap();
        let random_part = &secret.expose()[16..];
        assert_eq!(random_part.len(), 40);
        let mut checked = 0;
        for col in ["id", "secret_hash", "name", "owner", "models", "routes"] {
            let v: String = row.try_get(col).unwrap();
            assert!(!v.contains(random_part), "{col} holds the secret");
            checked += 1;
        }
        assert_eq!(checked, 6);
        let stored: String = row.try_get("secret_hash").unwrap();
        assert_eq!(stored, sha256_hex(secret.expose().as_bytes()));
        // The whole database file does not contain the secret either.
        db.close().await;
        for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes
                .windows(random_part.len())
                .any(|w| w == random_part.as_bytes()));
        }
    }

    #[tokio::test]
    async fn every_kind_of_bad_key_is_refused_with_its_reason() {
        let (db, dir) = temp_db().await;
        let (key, secret) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        let text = secret.expose().to_string();
        let reject = |r: Result<Result<ApiKey, KeyRejection>>| r.unwrap().unwrap_err();
        assert_eq!(
            reject(authenticate(&db, None, NOW).await),
            KeyRejection::Missing
        );
        for bad in [
            "",
            "hello",
            "aeg_",
            "aeg_kabc",
            "aeg_kabc_short",
            "Bearer aeg_x",
            &format!("aeg_{}_{}!", key.id, "a".repeat(40)),
            &format!("{text}{}", "a".repeat(300)),
        ] {
            assert_eq!(
                reject(authenticate(&db, Some(bad), NOW).await),
                KeyRejection::Malformed,
                "{bad}"
            );
        }
        // Wrong secret for a real id, and a well-formed key with an unknown id.
        let mut wrong = text.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'a' { 'b' } else { 'a' });
        assert_eq!(
            reject(authenticate(&db, Some(&wrong), NOW).await),
            KeyRejection::Unknown
        );
        let unknown = format!("aeg_kZZZZZZZZZZ_{}", &text[16..]);
        assert_eq!(
            reject(authenticate(&db, Some(&unknown), NOW).await),
            KeyRejection::Unknown
        );
        // Expiry: valid the second before, refused from the expiry second on.
        assert!(authenticate(&db, Some(&text), key.expires - 1)
            .await
            .unwrap()
            .is_ok());
        assert_eq!(
            reject(authenticate(&db, Some(&text), key.expires).await),
            KeyRejection::Expired
        );
        // Revocation takes effect at once, through another handle on the same database (another replica).
        let other = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        assert!(authenticate(&other, Some(&text), NOW)
            .await
            .unwrap()
            .is_ok());
        revoke_key(&db, &key.id, NOW).await.unwrap();
        assert_eq!(
            reject(authenticate(&other, Some(&text), NOW).await),
            KeyRejection::Revoked
        );
        // A wrong secret for a revoked key learns nothing about its state.
        assert_eq!(
            reject(authenticate(&db, Some(&wrong), NOW).await),
            KeyRejection::Unknown
        );
        revoke_key(&db, &key.id, NOW).await.unwrap();
        assert!(matches!(
            revoke_key(&db, "knope", NOW).await,
            Err(Error::NotFound(_))
        ));
        assert_eq!(KeyRejection::Revoked.to_string(), "API key revoked");
        assert_eq!(KeyRejection::Missing.to_string(), "API key missing");
    }

    #[tokio::test]
    async fn keys_that_never_expire_stay_valid() {
        let (db, _dir) = temp_db().await;
        let mut nk = new_key(&["*"], &["*"]);
        nk.expires_days = 0;
        let (key, secret) = create_key(&db, &nk, NOW).await.unwrap();
        assert_eq!(key.expires, 0);
        assert!(authenticate(&db, Some(secret.expose()), i64::MAX / 2)
            .await
            .unwrap()
            .is_ok());
    }

    #[tokio::test]
    async fn rotation_replaces_the_key_with_the_same_scopes() {
        let (db, _dir) = temp_db().await;
        let (old, old_secret) = create_key(&db, &new_key(&["fraud", "churn"], &["predict"]), NOW)
            .await
            .unwrap();
        let later = NOW + 1000;
        let (new, new_secret) = rotate_key(&db, &old.id, later).await.unwrap();
        assert_ne!(new.id, old.id);
        assert_eq!(
            authenticate(&db, Some(old_secret.expose()), later)
                .await
                .unwrap()
                .unwrap_err(),
            KeyRejection::Revoked
        );
        let got = authenticate(&db, Some(new_secret.expose()), later)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, new);
        assert_eq!(
            (&new.name, &new.owner, &new.models, &new.routes),
            (&old.name, &old.owner, &old.models, &old.routes)
        );
        assert_eq!(
            (
                new.rate_per_sec,
                new.burst,
                new.daily_budget,
                new.monthly_budget
            ),
            (
                old.rate_per_sec,
                old.burst,
                old.daily_budget,
                old.monthly_budget
            )
        );
        assert_eq!(new.expires - new.created, old.expires - old.created);
        let old_now = get_key(&db, &old.id).await.unwrap().unwrap();
        assert!(old_now.revoked);
        assert_eq!(old_now.replaced_by.as_deref(), Some(new.id.as_str()));
        // A revoked (already rotated) or unknown key cannot be rotated.
        assert!(rotate_key(&db, &old.id, later).await.is_err());
        assert!(matches!(
            rotate_key(&db, "knope", later).await,
            Err(Error::NotFound(_))
        ));
        assert_eq!(list_keys(&db).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn invalid_new_keys_are_refused() {
        let (db, _dir) = temp_db().await;
        let good = new_key(&["fraud"], &["predict", "chat"]);
        assert!(create_key(&db, &good, NOW).await.is_ok());
        let cases = vec![
            NewKey {
                name: "../x".into(),
                ..good.clone()
            },
            NewKey {
                models: vec![],
                ..good.clone()
            },
            NewKey {
                models: vec!["a b".into()],
                ..good.clone()
            },
            NewKey {
                routes: vec!["admin".into()],
                ..good.clone()
            },
            NewKey {
                rate_per_sec: 0.0,
                ..good.clone()
            },
            NewKey {
                rate_per_sec: f64::NAN,
                ..good.clone()
            },
            NewKey {
                burst: 0,
                ..good.clone()
            },
            NewKey {
                daily_budget: -1,
                ..good.clone()
            },
            NewKey {
                monthly_budget: -1,
                ..good.clone()
            },
            NewKey {
                expires_days: -1,
                ..good.clone()
            },
        ];
        for bad in cases {
            assert!(
                matches!(create_key(&db, &bad, NOW).await, Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
        assert_eq!(list_keys(&db).await.unwrap().len(), 1);
        let d = KeyDefaults::default();
        let from = NewKey::from_defaults("ci", "bob", vec!["*".into()], &d);
        assert_eq!(from.routes, vec!["*".to_string()]);
        assert_eq!(from.burst, d.burst);
        assert!(create_key(&db, &from, NOW).await.is_ok());
    }

    /// Both answers for one presented key: the cache's and the database's.
    async fn both_ways(
        cache: &KeyCache,
        db: &Db,
        presented: Option<&str>,
        now: i64,
    ) -> Result<ApiKey, KeyRejection> {
        let direct = authenticate(db, presented, now).await.unwrap();
        let cached = cache.authenticate(db, presented, now).await.unwrap();
        assert_eq!(cached, direct, "{presented:?}");
        cached
    }

    #[tokio::test]
    async fn the_cache_answers_exactly_like_the_database_on_hits_and_misses() {
        let (db, _dir) = temp_db().await;
        let (live, live_s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        let (revoked, revoked_s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        revoke_key(&db, &revoked.id, NOW).await.unwrap();
        let live_text = live_s.expose().to_string();
        let mut wrong = live_text.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'a' { 'b' } else { 'a' });
        let unknown = format!("aeg_kZZZZZZZZZZ_{}", &live_text[16..]);
        let cases: Vec<(Option<&str>, i64, Result<(), KeyRejection>)> = vec![
            (Some(live_text.as_str()), NOW, Ok(())),
            (Some(wrong.as_str()), NOW, Err(KeyRejection::Unknown)),
            (Some(unknown.as_str()), NOW, Err(KeyRejection::Unknown)),
            (Some("aeg_kabc_short"), NOW, Err(KeyRejection::Malformed)),
            (None, NOW, Err(KeyRejection::Missing)),
            (Some(revoked_s.expose()), NOW, Err(KeyRejection::Revoked)),
            (
                Some(live_text.as_str()),
                live.expires,
                Err(KeyRejection::Expired),
            ),
            (Some(live_text.as_str()), live.expires - 1, Ok(())),
        ];
        let cache = KeyCache::new();
        assert!(
            cache.refresh(&db).await.unwrap(),
            "the first refresh clears"
        );
        assert!(!cache.refresh(&db).await.unwrap());
        // First pass: misses (the wrong secret comes second, so its miss caches the live record); second
        // pass: hits for both existing ids. Same answers throughout.
        for pass in 0..2 {
            for (presented, now, want) in &cases {
                let got = both_ways(&cache, &db, *presented, *now).await;
                assert_eq!(got.clone().map(|_| ()), *want, "pass {pass}: {presented:?}");
                if let Ok(k) = got {
                    assert_eq!(k, live);
                }
            }
        }
        // Only the two existing ids are cached; unknown, malformed and missing never are.
        assert_eq!(cache.len(), 2);
        let (hits, misses) = cache.stats();
        assert_eq!(
            misses,
            2 + 1 + 1,
            "live, unknown twice, revoked: {hits} {misses}"
        );
        assert_eq!(hits, 12 - misses);
        // A wrong secret on a hit is still refused and changes nothing for the right one.
        assert_eq!(
            both_ways(&cache, &db, Some(&wrong), NOW).await,
            Err(KeyRejection::Unknown)
        );
        assert!(both_ways(&cache, &db, Some(&live_text), NOW).await.is_ok());
        // A key created after the cache filled works at once.
        let (_, fresh) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        assert!(both_ways(&cache, &db, Some(fresh.expose()), NOW)
            .await
            .is_ok());
        assert!(!format!("{cache:?}").contains(&live_text[16..]));
    }

    #[tokio::test]
    async fn another_replicas_revocation_is_seen_after_refresh_or_invalidate() {
        let (db, dir) = temp_db().await;
        let other = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        let (a, a_s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        let (b, b_s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        let cache = KeyCache::new();
        cache.refresh(&db).await.unwrap();
        for s in [&a_s, &b_s] {
            assert!(cache
                .authenticate(&db, Some(s.expose()), NOW)
                .await
                .unwrap()
                .is_ok());
        }
        // The other replica (or the CLI) revokes a: the cache is stale until its next refresh (the window)…
        revoke_key(&other, &a.id, NOW).await.unwrap();
        let a_now = cache
            .authenticate(&db, Some(a_s.expose()), NOW)
            .await
            .unwrap();
        assert!(a_now.is_ok(), "documented window: still served from memory");
        // …and the refresh sees the version move and drops the record.
        assert!(cache.refresh(&db).await.unwrap());
        assert_eq!(
            cache
                .authenticate(&db, Some(a_s.expose()), NOW)
                .await
                .unwrap(),
            Err(KeyRejection::Revoked)
        );
        assert!(!cache.refresh(&db).await.unwrap(), "no change, no clear");
        assert_eq!(cache.len(), 1, "the revoked record is cached again");
        // A revocation made through this process's own admin API is immediate after invalidate.
        assert!(cache
            .authenticate(&db, Some(b_s.expose()), NOW)
            .await
            .unwrap()
            .is_ok());
        revoke_key(&db, &b.id, NOW).await.unwrap();
        cache.invalidate();
        assert!(cache.is_empty());
        assert_eq!(
            cache
                .authenticate(&db, Some(b_s.expose()), NOW)
                .await
                .unwrap(),
            Err(KeyRejection::Revoked)
        );
    }

    #[tokio::test]
    async fn rotation_elsewhere_is_seen_after_refresh_and_the_new_key_works_at_once() {
        let (db, dir) = temp_db().await;
        let other = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        let (old, old_s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        let cache = KeyCache::new();
        cache.refresh(&db).await.unwrap();
        assert!(cache
            .authenticate(&db, Some(old_s.expose()), NOW)
            .await
            .unwrap()
            .is_ok());
        let (new, new_s) = rotate_key(&other, &old.id, NOW).await.unwrap();
        // The new key was never cached as unknown, so it works before any refresh.
        assert_eq!(
            cache
                .authenticate(&db, Some(new_s.expose()), NOW)
                .await
                .unwrap(),
            Ok(new)
        );
        assert!(cache
            .authenticate(&db, Some(old_s.expose()), NOW)
            .await
            .unwrap()
            .is_ok());
        assert!(cache.refresh(&db).await.unwrap());
        assert_eq!(
            cache
                .authenticate(&db, Some(old_s.expose()), NOW)
                .await
                .unwrap(),
            Err(KeyRejection::Revoked)
        );
        // Rotation in this process + invalidate: immediate.
        let (newer, newer_s) = rotate_key(&db, &new_s.expose()[4..15], NOW).await.unwrap();
        cache.invalidate();
        assert_eq!(
            cache
                .authenticate(&db, Some(new_s.expose()), NOW)
                .await
                .unwrap(),
            Err(KeyRejection::Revoked)
        );
        assert_eq!(
            cache
                .authenticate(&db, Some(newer_s.expose()), NOW)
                .await
                .unwrap(),
            Ok(newer)
        );
    }

    #[tokio::test]
    async fn expiry_is_judged_from_the_cached_record_at_every_call() {
        let (db, _dir) = temp_db().await;
        let (key, s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        let cache = KeyCache::new();
        cache.refresh(&db).await.unwrap();
        assert!(cache
            .authenticate(&db, Some(s.expose()), NOW)
            .await
            .unwrap()
            .is_ok());
        let (hits, _) = cache.stats();
        assert!(cache
            .authenticate(&db, Some(s.expose()), key.expires - 1)
            .await
            .unwrap()
            .is_ok());
        assert_eq!(
            cache
                .authenticate(&db, Some(s.expose()), key.expires)
                .await
                .unwrap(),
            Err(KeyRejection::Expired)
        );
        assert_eq!(cache.stats().0, hits + 2, "both answered from memory");
    }

    #[tokio::test]
    async fn every_mutation_bumps_the_version_in_its_own_transaction() {
        let (db, _dir) = temp_db().await;
        assert_eq!(keys_version(&db).await.unwrap(), 0);
        let (key, _) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        assert_eq!(keys_version(&db).await.unwrap(), 1);
        // A refused creation writes nothing, so bumps nothing.
        let mut bad = new_key(&["*"], &["*"]);
        bad.burst = 0;
        assert!(create_key(&db, &bad, NOW).await.is_err());
        assert_eq!(keys_version(&db).await.unwrap(), 1);
        // The bump runs first in each transaction: a revocation of an unknown id rolls it back.
        assert!(matches!(
            revoke_key(&db, "knope", NOW).await,
            Err(Error::NotFound(_))
        ));
        assert_eq!(keys_version(&db).await.unwrap(), 1);
        let (new, _) = rotate_key(&db, &key.id, NOW).await.unwrap();
        assert_eq!(keys_version(&db).await.unwrap(), 2);
        // Rotating a revoked key fails after its bump ran: rolled back with it.
        assert!(rotate_key(&db, &key.id, NOW).await.is_err());
        assert_eq!(keys_version(&db).await.unwrap(), 2);
        revoke_key(&db, &new.id, NOW).await.unwrap();
        assert_eq!(keys_version(&db).await.unwrap(), 3);
        // Revoking again succeeds and bumps harmlessly (one extra cache clear).
        revoke_key(&db, &new.id, NOW).await.unwrap();
        assert_eq!(keys_version(&db).await.unwrap(), 4);
        bump_keys_version(&db).await.unwrap();
        assert_eq!(keys_version(&db).await.unwrap(), 5);
        db.set_setting(KEYS_VERSION_SETTING, "x").await.unwrap();
        assert!(matches!(keys_version(&db).await, Err(Error::Corrupt(_))));
    }

    #[tokio::test]
    async fn a_miss_that_raced_a_clear_is_not_kept() {
        let (db, _dir) = temp_db().await;
        let (key, s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        let (_, hash) = fetch_key(&db, &key.id).await.unwrap().unwrap();
        let cache = KeyCache::new();
        cache.refresh(&db).await.unwrap();
        // A miss read the record, then a refresh or invalidate cleared the cache before it inserted: dropped.
        let before_read = cache.generation.load(Ordering::Acquire);
        cache.invalidate();
        assert!(!cache.insert_if_current(before_read, key.clone(), hash.clone()));
        assert!(cache.is_empty());
        // No clear in between: kept, and then answered from memory.
        let before_read = cache.generation.load(Ordering::Acquire);
        assert!(cache.insert_if_current(before_read, key, hash));
        assert!(cache
            .authenticate(&db, Some(s.expose()), NOW)
            .await
            .unwrap()
            .is_ok());
        assert_eq!(cache.stats(), (1, 0));
    }

    #[tokio::test]
    async fn a_cache_without_a_recent_refresh_reads_the_database() {
        let (db, dir) = temp_db().await;
        let other = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        let (key, s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        // Never refreshed: no hits at all.
        let cold = KeyCache::new();
        for _ in 0..2 {
            assert!(cold
                .authenticate(&db, Some(s.expose()), NOW)
                .await
                .unwrap()
                .is_ok());
        }
        assert_eq!(cold.stats(), (0, 2));
        // Zero staleness allowed: even after a refresh, a revocation elsewhere is seen at once.
        let strict = KeyCache::with_max_staleness(Duration::ZERO);
        strict.refresh(&db).await.unwrap();
        assert!(strict
            .authenticate(&db, Some(s.expose()), NOW)
            .await
            .unwrap()
            .is_ok());
        revoke_key(&other, &key.id, NOW).await.unwrap();
        assert_eq!(
            strict
                .authenticate(&db, Some(s.expose()), NOW)
                .await
                .unwrap(),
            Err(KeyRejection::Revoked)
        );
        assert_eq!(strict.stats().0, 0);
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let (db, _dir) = temp_db().await;
        let (key, s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        let cache = KeyCache::new();
        cache.refresh(&db).await.unwrap();
        {
            let mut entries = cache.entries.write().unwrap();
            for i in 0..KEY_CACHE_MAX_ENTRIES {
                let mut k = key.clone();
                k.id = format!("kfill{i}");
                entries.insert(
                    k.id.clone(),
                    Cached {
                        key: k,
                        secret_hash: String::new(),
                    },
                );
            }
        }
        assert_eq!(cache.len(), KEY_CACHE_MAX_ENTRIES);
        // One more id: the cache is cleared before it is added.
        assert!(cache
            .authenticate(&db, Some(s.expose()), NOW)
            .await
            .unwrap()
            .is_ok());
        assert_eq!(cache.len(), 1);
        // Below the bound nothing is dropped.
        let (_, s2) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        assert!(cache
            .authenticate(&db, Some(s2.expose()), NOW)
            .await
            .unwrap()
            .is_ok());
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn the_watcher_refreshes_and_stops_with_the_cache() {
        let (db, dir) = temp_db().await;
        let other = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        let (key, s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
            .await
            .unwrap();
        let cache = Arc::new(KeyCache::new());
        let task = cache.spawn_watcher(db.clone(), Duration::from_millis(5));
        // Wait (bounded) for the first refresh, then cache the key.
        let mut ok = false;
        for _ in 0..400 {
            assert!(cache
                .authenticate(&db, Some(s.expose()), NOW)
                .await
                .unwrap()
                .is_ok());
            if cache.stats().0 > 0 {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(ok, "the watcher never refreshed");
        revoke_key(&other, &key.id, NOW).await.unwrap();
        let mut seen = false;
        for _ in 0..400 {
            if cache
                .authenticate(&db, Some(s.expose()), NOW)
                .await
                .unwrap()
                == Err(KeyRejection::Revoked)
            {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(seen, "the watcher never saw the revocation");
        drop(cache);
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
    }

    /// The version bump, its rollback and a cross-replica refresh on PostgreSQL, in a throwaway database
    /// (skipped unless `AEGIS_TEST_POSTGRES` names an admin URL).
    #[tokio::test]
    async fn postgres_counts_versions_and_replicas_see_revocations() {
        use sqlx::{Connection, Executor};
        let Ok(admin) = std::env::var("AEGIS_TEST_POSTGRES") else {
            return;
        };
        sqlx::any::install_default_drivers();
        let name = format!(
            "aegis_k_{}",
            crate::util::random_token(12).unwrap().to_lowercase()
        );
        let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let base = &admin[..admin.rfind('/').unwrap()];
        let url = format!("{base}/{name}");
        let outcome = async move {
            let db = Db::connect(&url).await.unwrap();
            let other = Db::connect(&url).await.unwrap();
            assert_eq!(keys_version(&db).await.unwrap(), 0);
            let (key, s) = create_key(&db, &new_key(&["*"], &["*"]), NOW)
                .await
                .unwrap();
            assert_eq!(keys_version(&db).await.unwrap(), 1);
            assert!(revoke_key(&db, "knope", NOW).await.is_err());
            assert_eq!(keys_version(&db).await.unwrap(), 1);
            let cache = KeyCache::new();
            cache.refresh(&db).await.unwrap();
            assert!(cache
                .authenticate(&db, Some(s.expose()), NOW)
                .await
                .unwrap()
                .is_ok());
            let (new, new_s) = rotate_key(&other, &key.id, NOW).await.unwrap();
            assert_eq!(keys_version(&db).await.unwrap(), 2);
            assert!(rotate_key(&other, &key.id, NOW).await.is_err());
            assert_eq!(keys_version(&db).await.unwrap(), 2);
            assert!(cache.refresh(&db).await.unwrap());
            assert_eq!(
                cache
                    .authenticate(&db, Some(s.expose()), NOW)
                    .await
                    .unwrap(),
                Err(KeyRejection::Revoked)
            );
            revoke_key(&other, &new.id, NOW).await.unwrap();
            bump_keys_version(&other).await.unwrap();
            assert_eq!(keys_version(&db).await.unwrap(), 4);
            assert!(cache.refresh(&db).await.unwrap());
            assert_eq!(
                cache
                    .authenticate(&db, Some(new_s.expose()), NOW)
                    .await
                    .unwrap(),
                Err(KeyRejection::Revoked)
            );
            db.close().await;
            other.close().await;
        };
        let result = tokio::spawn(outcome).await;
        let _ = conn
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
        let _ = conn.close().await;
        result.unwrap();
    }

    #[test]
    fn scopes_cover_exactly_the_named_models_and_routes() {
        let mut key = ApiKey {
            id: "kx".into(),
            name: "n".into(),
            owner: "o".into(),
            models: vec!["fraud".into()],
            routes: vec!["predict".into(), "infer".into()],
            created: 0,
            expires: 0,
            revoked: false,
            rate_per_sec: 1.0,
            burst: 1,
            daily_budget: 0,
            monthly_budget: 0,
            replaced_by: None,
        };
        assert!(key.allows("fraud", RouteClass::Predict));
        assert!(key.allows("fraud", RouteClass::Infer));
        assert!(!key.allows("fraud", RouteClass::Chat));
        assert!(!key.allows("churn", RouteClass::Predict));
        assert!(!key.allows("*", RouteClass::Predict));
        assert!(!key.allows("frau", RouteClass::Predict));
        key.models = vec!["*".into()];
        assert!(key.allows("churn", RouteClass::Infer));
        assert!(!key.allows("churn", RouteClass::Proxy));
        key.routes = vec!["*".into()];
        assert!(key.allows("churn", RouteClass::Proxy));
        key.models = vec!["llm".into()];
        assert!(key.allows("llm", RouteClass::Embeddings));
        assert!(!key.allows("churn", RouteClass::Embeddings));
    }

    #[test]
    fn route_classes_round_trip_through_text_and_serde() {
        for r in RouteClass::ALL {
            assert_eq!(r.as_str().parse::<RouteClass>().unwrap(), r);
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
        assert!("Predict".parse::<RouteClass>().is_err());
        assert!("*".parse::<RouteClass>().is_err());
    }

    #[test]
    fn presented_keys_are_read_from_bearer_or_x_api_key() {
        let mut h = http::HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", "aeg_k1_abc".parse().unwrap());
        assert_eq!(presented_key(&h), Some("aeg_k1_abc"));
        h.insert("authorization", "Bearer aeg_k2_def".parse().unwrap());
        assert_eq!(presented_key(&h), Some("aeg_k2_def"));
        h.insert("authorization", "bearer  aeg_k3 ".parse().unwrap());
        assert_eq!(presented_key(&h), Some("aeg_k3"));
        let mut basic = http::HeaderMap::new();
        basic.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
        assert_eq!(presented_key(&basic), None);
    }
}
