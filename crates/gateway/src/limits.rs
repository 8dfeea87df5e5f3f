//! Per-key rate limits (burst + sustained) and daily/monthly query budgets, enforced in the database so every
//! replica sees the same counters and they survive restarts.
//!
//! The rate limit is GCRA (the generic cell rate algorithm, a leaky bucket as a single timestamp): each key has a
//! "theoretical arrival time" `tat`; a request at `now` is admitted when `max(tat, now) + T − now ≤ τ`, with
//! `T = 1 / rate` and tolerance `τ = burst · T`, and then `tat` becomes `max(tat, now) + T`. The test and the
//! update are one conditional `UPDATE … RETURNING` statement, so concurrent requests on any number of replicas
//! can never admit more than the limit (PostgreSQL re-evaluates the condition on the locked row; SQLite has
//! one writer). Budgets are counters per key and UTC period (`d:YYYY-MM-DD`, `m:YYYY-MM`) incremented by an
//! `INSERT … ON CONFLICT DO UPDATE … WHERE count < limit RETURNING`, again one atomic statement.
//!
//! The three checks run in one transaction, rate first, then day, then month; a request refused by any of them
//! is rolled back whole, so a denied request consumes neither rate nor budget. A key without budgets skips the
//! transaction and the usage rows: its rate limit is the one statement.
//!
//! **Leases** ([`RateLeases`], [`admit_leased`]): a busy key would otherwise cost one database write per request.
//! A gateway instead charges the database for a small batch of `n` tokens at once (the same atomic GCRA
//! statement with `n·T`) and hands them out from memory until they run out or the lease's short life ends. The
//! database has already counted every leased token, so replicas together never admit more than the limit; an
//! unused remainder is simply dropped (a slight under-admission), and a lease lives at most one second (tokens
//! used later than charged can let one short window see up to one lease more). The batch is at most 1/8 of the burst and
//! 50 ms of the sustained rate, so a typical key (burst 20, 10/s) still pays one write per request, while a key
//! allowed thousands per second pays one per few hundred. Keys with budgets are always charged per request.

use std::fmt;

use sqlx::Row;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::keys::{get_f64, ApiKey};

/// Why a request was refused by a limit. `Display` is clear and safe to send to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denial {
    /// Too many requests too fast: try again after `retry_after_secs` (the `Retry-After` header).
    RateLimited {
        /// Seconds until a request would be admitted (at least 1).
        retry_after_secs: u64,
    },
    /// The key's daily or monthly budget is used up.
    BudgetExhausted {
        /// `"day"` or `"month"`.
        period: &'static str,
        /// The budget.
        limit: i64,
        /// Seconds until the period resets (next 00:00 UTC, or the 1st of next month at 00:00 UTC).
        retry_after_secs: u64,
    },
}

impl Denial {
    /// Seconds the client should wait (for `Retry-After`).
    pub(crate) fn retry_after_secs(&self) -> u64 {
        match self {
            Denial::RateLimited { retry_after_secs }
            | Denial::BudgetExhausted {
                retry_after_secs, ..
            } => *retry_after_secs,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::RateLimited { retry_after_secs } => write!(
                f,
                "rate limit exceeded; retry after {retry_after_secs} s"
            ),
            Denial::BudgetExhausted {
                period: "day",
                limit,
                ..
            } => write!(
                f,
                "daily budget of {limit} requests exhausted; resets at 00:00 UTC"
            ),
            Denial::BudgetExhausted { limit, .. } => write!(
                f,
                "monthly budget of {limit} requests exhausted; resets on the 1st of next month at 00:00 UTC"
            ),
        }
    }
}

/// What an admitted request has used so far in the current periods (this request included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Admitted {
    /// Requests today (UTC).
    pub day_used: i64,
    /// Requests this month (UTC).
    pub month_used: i64,
}

/// The UTC periods containing `secs`: `("d:YYYY-MM-DD", "m:YYYY-MM")` and the seconds until each ends.
fn periods(secs: i64) -> ((String, u64), (String, u64)) {
    let days = secs.div_euclid(86_400);
    let (y, m, d) = aegis_core::civil_from_days(days);
    let to_next_day = (days + 1) * 86_400 - secs;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let to_next_month = aegis_core::days_from_civil(ny, nm, 1) * 86_400 - secs;
    (
        (format!("d:{y:04}-{m:02}-{d:02}"), to_next_day.max(1) as u64),
        (format!("m:{y:04}-{m:02}"), to_next_month.max(1) as u64),
    )
}

/// The GCRA emission interval `T` and the tolerance passed to the database (`burst · T` plus a sliver of slack
/// so that floating-point rounding of large timestamps never refuses the last request of a burst).
fn gcra_params(key: &ApiKey) -> Result<(f64, f64)> {
    if !(key.rate_per_sec.is_finite() && key.rate_per_sec > 0.0) || key.burst < 1 {
        return Err(Error::Corrupt(format!(
            "API key {} has an invalid rate limit",
            key.id
        )));
    }
    let t = 1.0 / key.rate_per_sec;
    let slack = (t * 1e-3).max(1e-6).min(t * 0.5);
    Ok((t, key.burst as f64 * t + slack))
}

type Tx = crate::db::Transaction;

/// Charge one request to the rate limiter; `Ok(None)` when admitted, `Ok(Some(retry_after))` when refused.
async fn charge_rate(
    conn: &mut sqlx::AnyConnection,
    key: &ApiKey,
    now: f64,
) -> Result<Option<u64>> {
    charge_rate_n(conn, key, now, 1).await
}

/// Charge `n` tokens at once (all or none).
async fn charge_rate_n(
    conn: &mut sqlx::AnyConnection,
    key: &ApiKey,
    now: f64,
    n: u32,
) -> Result<Option<u64>> {
    let (t, tolerance) = gcra_params(key)?;
    let t_n = t * f64::from(n.max(1));
    for _ in 0..2 {
        let admitted = sqlx::query(
            "UPDATE rate_state SET tat = (CASE WHEN tat > $2 THEN tat ELSE $2 END) + $3
             WHERE key_id = $1 AND (CASE WHEN tat > $2 THEN tat ELSE $2 END) + $3 - $2 <= $4
             RETURNING tat",
        )
        .bind(&key.id)
        .bind(now)
        .bind(t_n)
        .bind(tolerance)
        .fetch_optional(&mut *conn)
        .await
        .map_err(Error::db("check a rate limit"))?;
        if admitted.is_some() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT tat FROM rate_state WHERE key_id = $1")
            .bind(&key.id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(Error::db("check a rate limit"))?;
        match row {
            Some(row) => {
                let tat = get_f64(&row, "tat")?;
                let wait = tat.max(now) + t - key.burst as f64 * t - now;
                // `as` saturates, so an absurd wait (a tiny rate) cannot overflow.
                return Ok(Some((wait.ceil() as u64).max(1)));
            }
            None => {
                // A key created without its rate row (older data): create it, then try once more.
                sqlx::query(
                    "INSERT INTO rate_state (key_id, tat) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
                )
                .bind(&key.id)
                .bind(0.0_f64)
                .execute(&mut *conn)
                .await
                .map_err(Error::db("create a rate state"))?;
            }
        }
    }
    Err(Error::Corrupt(format!(
        "the rate state of API key {} cannot be created",
        key.id
    )))
}

/// Count `cost` units in `period` unless that would pass `budget` (0 = unlimited); the new count, or `None` when
/// the budget cannot take them.
async fn charge_budget(
    tx: &mut Tx,
    key_id: &str,
    period: &str,
    budget: i64,
    cost: u32,
) -> Result<Option<i64>> {
    let limit = if budget <= 0 { i64::MAX } else { budget };
    let cost = i64::from(cost.max(1));
    if cost > limit {
        return Ok(None);
    }
    let row = sqlx::query(
        "INSERT INTO usage_counters (key_id, period, count) VALUES ($1, $2, $4)
         ON CONFLICT (key_id, period) DO UPDATE SET count = usage_counters.count + $4
         WHERE usage_counters.count <= $3 - $4
         RETURNING count",
    )
    .bind(key_id)
    .bind(period)
    .bind(limit)
    .bind(cost)
    .fetch_optional(&mut **tx)
    .await
    .map_err(Error::db("charge a budget"))?;
    row.map(|r| r.try_get::<i64, _>("count"))
        .transpose()
        .map_err(Error::db("charge a budget"))
}

/// Admit one request for `key` at `now` (Unix seconds, fractional), or say which limit refuses it. Atomic
/// across replicas; a refused request changes nothing.
pub(crate) async fn admit(db: &Db, key: &ApiKey, now: f64) -> Result<Result<Admitted, Denial>> {
    admit_n(db, key, now, 1).await
}

/// Charge `cost` units (rows of a batch) at once, all or none: `cost` tokens of the rate limit and `cost` of
/// each budget. A cost above the key's burst can never be admitted; callers refuse it before asking.
pub(crate) async fn admit_n(
    db: &Db,
    key: &ApiKey,
    now: f64,
    cost: u32,
) -> Result<Result<Admitted, Denial>> {
    if !now.is_finite() || now < 0.0 {
        return Err(Error::Internal(format!("invalid clock reading {now}")));
    }
    let ((day, to_next_day), (month, to_next_month)) = periods(now.floor() as i64);
    let _guard = db.write_guard().await;
    if key.daily_budget <= 0 && key.monthly_budget <= 0 {
        // No budget to charge: the rate limit alone is one atomic statement, no transaction needed (and no
        // usage rows: unlimited keys are counted by the request metrics instead).
        let mut conn = db
            .pool()
            .acquire()
            .await
            .map_err(Error::db("check limits"))?;
        return Ok(match charge_rate_n(&mut conn, key, now, cost).await? {
            Some(retry_after_secs) => Err(Denial::RateLimited { retry_after_secs }),
            None => Ok(Admitted {
                day_used: 0,
                month_used: 0,
            }),
        });
    }
    let mut tx = db.begin().await.map_err(Error::db("check limits"))?;
    let outcome = admit_in(
        &mut tx,
        key,
        now,
        cost,
        (&day, to_next_day),
        (&month, to_next_month),
    )
    .await;
    match outcome {
        Ok(Ok(admitted)) => {
            tx.commit().await.map_err(Error::db("check limits"))?;
            Ok(Ok(admitted))
        }
        other => {
            tx.rollback().await.map_err(Error::db("check limits"))?;
            other
        }
    }
}

async fn admit_in(
    tx: &mut Tx,
    key: &ApiKey,
    now: f64,
    cost: u32,
    (day, to_next_day): (&str, u64),
    (month, to_next_month): (&str, u64),
) -> Result<Result<Admitted, Denial>> {
    if let Some(retry_after_secs) = charge_rate_n(&mut *tx, key, now, cost).await? {
        return Ok(Err(Denial::RateLimited { retry_after_secs }));
    }
    let Some(day_used) = charge_budget(tx, &key.id, day, key.daily_budget, cost).await? else {
        return Ok(Err(Denial::BudgetExhausted {
            period: "day",
            limit: key.daily_budget,
            retry_after_secs: to_next_day,
        }));
    };
    let Some(month_used) = charge_budget(tx, &key.id, month, key.monthly_budget, cost).await?
    else {
        return Ok(Err(Denial::BudgetExhausted {
            period: "month",
            limit: key.monthly_budget,
            retry_after_secs: to_next_month,
        }));
    };
    Ok(Ok(Admitted {
        day_used,
        month_used,
    }))
}

/// Requests counted for `key_id` in the UTC day and month containing `now`.
pub async fn usage(db: &Db, key_id: &str, now: f64) -> Result<Admitted> {
    let secs = if now.is_finite() {
        now.floor() as i64
    } else {
        0
    };
    let ((day, _), (month, _)) = periods(secs);
    let count = |period: String| async move {
        let row = sqlx::query("SELECT count FROM usage_counters WHERE key_id = $1 AND period = $2")
            .bind(key_id)
            .bind(period)
            .fetch_optional(db.pool())
            .await
            .map_err(Error::db("read usage"))?;
        row.map(|r| r.try_get::<i64, _>("count"))
            .transpose()
            .map_err(Error::db("read usage"))
            .map(|c| c.unwrap_or(0))
    };
    Ok(Admitted {
        day_used: count(day).await?,
        month_used: count(month).await?,
    })
}

/// Most tokens one lease may hold.
const MAX_LEASE: u32 = 10_000;
/// Longest life of a lease, in seconds.
const MAX_LEASE_SECS: f64 = 1.0;

/// Rate-limit tokens this process has already charged to the database and may hand out from memory.
#[derive(Debug, Default)]
pub struct RateLeases {
    leases: std::sync::Mutex<std::collections::HashMap<String, Lease>>,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    tokens: u32,
    expires: f64,
}

impl RateLeases {
    /// No leases.
    pub fn new() -> RateLeases {
        RateLeases::default()
    }

    /// Take one leased token for `key_id`, if a fresh one is held.
    fn take(&self, key_id: &str, now: f64) -> bool {
        let Ok(mut leases) = self.leases.lock() else {
            return false;
        };
        match leases.get_mut(key_id) {
            Some(lease) if lease.tokens > 0 && now < lease.expires => {
                lease.tokens -= 1;
                true
            }
            Some(_) => {
                leases.remove(key_id);
                false
            }
            None => false,
        }
    }

    /// Keep `tokens` more for `key_id` until `expires`.
    fn store(&self, key_id: &str, tokens: u32, expires: f64) {
        if tokens == 0 {
            return;
        }
        if let Ok(mut leases) = self.leases.lock() {
            if leases.len() >= 100_000 {
                leases.clear();
            }
            let lease = leases
                .entry(key_id.to_string())
                .or_insert(Lease { tokens: 0, expires });
            lease.tokens = lease.tokens.saturating_add(tokens);
            lease.expires = lease.expires.max(expires);
        }
    }

    /// Drop the lease of `key_id` (after a revocation or a limit change).
    pub fn forget(&self, key_id: &str) {
        if let Ok(mut leases) = self.leases.lock() {
            leases.remove(key_id);
        }
    }
}

/// How many tokens to charge at once for `key`: at most 1/8 of the burst and 50 ms of the rate, at least 1.
fn lease_size(key: &ApiKey) -> u32 {
    let by_burst = key.burst as f64 / 8.0;
    let by_rate = key.rate_per_sec * 0.05;
    let n = by_burst.min(by_rate).floor();
    if n.is_finite() && n >= 1.0 {
        (n as u32).min(MAX_LEASE)
    } else {
        1
    }
}

/// [`admit`] with leases: keys without budgets are served from a lease when this process holds one, and charge
/// the database for a batch of tokens when it does not.
pub(crate) async fn admit_leased(
    db: &Db,
    leases: &RateLeases,
    key: &ApiKey,
    now: f64,
) -> Result<Result<Admitted, Denial>> {
    if key.daily_budget > 0 || key.monthly_budget > 0 {
        return admit(db, key, now).await;
    }
    if !now.is_finite() || now < 0.0 {
        return Err(Error::Internal(format!("invalid clock reading {now}")));
    }
    if leases.take(&key.id, now) {
        return Ok(Ok(Admitted {
            day_used: 0,
            month_used: 0,
        }));
    }
    let n = lease_size(key);
    let _guard = db.write_guard().await;
    let mut conn = db
        .pool()
        .acquire()
        .await
        .map_err(Error::db("check limits"))?;
    if n > 1 && charge_rate_n(&mut conn, key, now, n).await?.is_none() {
        // A lease lives one second whatever its size: a shorter life makes every busy gateway refill at once
        // (all requests in flight miss together). Tokens used later than they were charged can let one window
        // see up to one lease (≤ burst/8) more than the limit; over any longer span the database's count holds.
        leases.store(&key.id, n - 1, now + MAX_LEASE_SECS);
        return Ok(Ok(Admitted {
            day_used: 0,
            month_used: 0,
        }));
    }
    Ok(match charge_rate(&mut conn, key, now).await? {
        Some(retry_after_secs) => Err(Denial::RateLimited { retry_after_secs }),
        None => Ok(Admitted {
            day_used: 0,
            month_used: 0,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::temp_db;
    use crate::keys::{create_key, rotate_key, NewKey};

    /// 2025-10-09 08:53:20 UTC.
    const NOW: f64 = 1_760_000_000.0;

    fn spec(rate: f64, burst: i64, daily: i64, monthly: i64) -> NewKey {
        NewKey {
            name: "limited".into(),
            owner: "alice".into(),
            models: vec!["*".into()],
            routes: vec!["*".into()],
            expires_days: 0,
            rate_per_sec: rate,
            burst,
            daily_budget: daily,
            monthly_budget: monthly,
        }
    }

    async fn key(db: &Db, rate: f64, burst: i64, daily: i64, monthly: i64) -> ApiKey {
        create_key(db, &spec(rate, burst, daily, monthly), NOW as i64)
            .await
            .unwrap()
            .0
    }

    #[test]
    fn periods_are_utc_calendar_days_and_months() {
        let ((d, to_day), (m, to_month)) = periods(NOW as i64);
        assert_eq!((d.as_str(), m.as_str()), ("d:2025-10-09", "m:2025-10"));
        assert_eq!(to_day, 1_760_054_400 - 1_760_000_000);
        assert_eq!(to_month, 1_955_200);
        // The last second of a year rolls over into January.
        let ((d, to_day), (m, to_month)) = periods(1_767_225_599);
        assert_eq!((d.as_str(), m.as_str()), ("d:2025-12-31", "m:2025-12"));
        assert_eq!((to_day, to_month), (1, 1));
        let ((d, _), (m, _)) = periods(1_767_225_600);
        assert_eq!((d.as_str(), m.as_str()), ("d:2026-01-01", "m:2026-01"));
        let ((d, _), _) = periods(951_782_400); // 2000-02-29, a leap day
        assert_eq!(d, "d:2000-02-29");
    }

    #[tokio::test]
    async fn a_burst_is_admitted_then_refused_until_the_rate_allows_more() {
        let (db, _dir) = temp_db().await;
        let k = key(&db, 2.0, 3, 0, 0).await;
        for _ in 1..=3 {
            // Unlimited budgets: the rate limit alone, no usage rows.
            let a = admit(&db, &k, NOW).await.unwrap().unwrap();
            assert_eq!(a.day_used, 0);
        }
        let denied = admit(&db, &k, NOW).await.unwrap().unwrap_err();
        assert_eq!(
            denied,
            Denial::RateLimited {
                retry_after_secs: 1
            }
        );
        assert!(admit(&db, &k, NOW + 0.4).await.unwrap().is_err());
        assert!(admit(&db, &k, NOW + 0.5).await.unwrap().is_ok());
        assert!(admit(&db, &k, NOW + 0.5).await.unwrap().is_err());
        // Refused requests consumed no budget: 4 admitted in all.
        assert_eq!(
            usage(&db, &k.id, NOW).await.unwrap().day_used,
            0,
            "unlimited keys keep no usage rows"
        );

        // A slow key: one request per 10 s, burst 1, so Retry-After is 10 and is exact.
        let slow = key(&db, 0.1, 1, 0, 0).await;
        assert!(admit(&db, &slow, NOW).await.unwrap().is_ok());
        let denied = admit(&db, &slow, NOW).await.unwrap().unwrap_err();
        assert_eq!(denied.retry_after_secs(), 10);
        assert!(matches!(denied, Denial::RateLimited { .. }));
        assert!(denied.to_string().contains("rate limit"), "{denied}");
        assert_eq!(
            admit(&db, &slow, NOW + 9.0)
                .await
                .unwrap()
                .unwrap_err()
                .retry_after_secs(),
            1
        );
        assert!(admit(&db, &slow, NOW + 10.0).await.unwrap().is_ok());
        // Keys do not share limits.
        let other = key(&db, 0.1, 1, 0, 0).await;
        assert!(admit(&db, &other, NOW).await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn a_daily_budget_refuses_the_request_after_it_and_resets_the_next_day() {
        let (db, _dir) = temp_db().await;
        let k = key(&db, 1000.0, 1000, 3, 0).await;
        for i in 1..=3 {
            assert_eq!(
                admit(&db, &k, NOW + i as f64).await.unwrap().unwrap(),
                Admitted {
                    day_used: i,
                    month_used: i
                }
            );
        }
        let denied = admit(&db, &k, NOW + 4.0).await.unwrap().unwrap_err();
        assert_eq!(
            denied,
            Denial::BudgetExhausted {
                period: "day",
                limit: 3,
                retry_after_secs: 54_400 - 4
            }
        );
        assert!(matches!(
            denied,
            Denial::BudgetExhausted { period: "day", .. }
        ));
        assert_eq!(
            denied.to_string(),
            "daily budget of 3 requests exhausted; resets at 00:00 UTC"
        );
        assert_eq!(usage(&db, &k.id, NOW).await.unwrap().day_used, 3);
        let tomorrow = NOW + 86_400.0;
        assert_eq!(
            admit(&db, &k, tomorrow).await.unwrap().unwrap(),
            Admitted {
                day_used: 1,
                month_used: 4
            }
        );
    }

    #[tokio::test]
    async fn a_monthly_budget_holds_across_days_and_does_not_eat_the_daily_one() {
        let (db, _dir) = temp_db().await;
        let k = key(&db, 1000.0, 1000, 3, 5).await;
        for _ in 0..3 {
            assert!(admit(&db, &k, NOW).await.unwrap().is_ok());
        }
        let day2 = NOW + 86_400.0;
        for _ in 0..2 {
            assert!(admit(&db, &k, day2).await.unwrap().is_ok());
        }
        let denied = admit(&db, &k, day2).await.unwrap().unwrap_err();
        assert!(
            matches!(
                denied,
                Denial::BudgetExhausted {
                    period: "month",
                    limit: 5,
                    ..
                }
            ),
            "{denied:?}"
        );
        assert_eq!(denied.retry_after_secs(), 1_955_200 - 86_400);
        assert!(denied
            .to_string()
            .starts_with("monthly budget of 5 requests exhausted"));
        // The refused request was not counted against the day (2 of 3 used) nor the month.
        assert_eq!(
            usage(&db, &k.id, day2).await.unwrap(),
            Admitted {
                day_used: 2,
                month_used: 5
            }
        );
        // November 1st: a new month.
        let next_month = NOW + 1_955_200.0;
        assert_eq!(
            admit(&db, &k, next_month).await.unwrap().unwrap(),
            Admitted {
                day_used: 1,
                month_used: 1
            }
        );
    }

    #[tokio::test]
    async fn counters_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let k = {
            let db = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
            let k = key(&db, 0.001, 2, 3, 0).await;
            assert!(admit(&db, &k, NOW).await.unwrap().is_ok());
            assert!(admit(&db, &k, NOW).await.unwrap().is_ok());
            db.close().await;
            k
        };
        let db = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        assert_eq!(usage(&db, &k.id, NOW).await.unwrap().day_used, 2);
        // The rate state persisted too: the burst of 2 is spent.
        assert!(matches!(
            admit(&db, &k, NOW).await.unwrap(),
            Err(Denial::RateLimited { .. })
        ));
        // 1000 s later the rate allows one more, and the daily budget (2 of 3 used) allows exactly one.
        assert!(admit(&db, &k, NOW + 1000.0).await.unwrap().is_ok());
        assert!(matches!(
            admit(&db, &k, NOW + 3000.0).await.unwrap(),
            Err(Denial::BudgetExhausted { period: "day", .. })
        ));
    }

    #[tokio::test]
    async fn two_handles_on_one_database_share_the_counters() {
        let (a, dir) = temp_db().await;
        let b = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        let k = key(&a, 0.001, 4, 1_000_000, 0).await;
        assert!(admit(&a, &k, NOW).await.unwrap().is_ok());
        assert!(admit(&b, &k, NOW).await.unwrap().is_ok());
        assert!(admit(&a, &k, NOW).await.unwrap().is_ok());
        assert!(admit(&b, &k, NOW).await.unwrap().is_ok());
        assert!(admit(&a, &k, NOW).await.unwrap().is_err());
        assert!(admit(&b, &k, NOW).await.unwrap().is_err());
        assert_eq!(usage(&b, &k.id, NOW).await.unwrap().day_used, 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_requests_never_exceed_the_burst() {
        // Both paths: the rate limit alone (no budget) and inside the budget transaction.
        for budget in [0, 1_000_000] {
            concurrent_burst(budget).await;
        }
    }

    async fn concurrent_burst(budget: i64) {
        let (db, _dir) = temp_db().await;
        let k = key(&db, 1e-6, 50, budget, 0).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (db, k) = (db.clone(), k.clone());
            tasks.push(tokio::spawn(async move {
                let mut admitted = 0;
                for _ in 0..25 {
                    if admit(&db, &k, NOW).await.unwrap().is_ok() {
                        admitted += 1;
                    }
                }
                admitted
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert_eq!(total, 50);
        let counted = if budget > 0 { 50 } else { 0 };
        assert_eq!(usage(&db, &k.id, NOW).await.unwrap().day_used, counted);
    }

    #[tokio::test]
    async fn rotation_keeps_the_limits_already_used() {
        let (db, _dir) = temp_db().await;
        let k = key(&db, 0.001, 1, 2, 0).await;
        assert!(admit(&db, &k, NOW).await.unwrap().is_ok());
        let (new, _secret) = rotate_key(&db, &k.id, NOW as i64).await.unwrap();
        assert!(matches!(
            admit(&db, &new, NOW).await.unwrap(),
            Err(Denial::RateLimited { .. })
        ));
        assert_eq!(usage(&db, &new.id, NOW).await.unwrap().day_used, 1);
    }

    #[tokio::test]
    async fn a_missing_rate_row_is_created_on_first_use() {
        let (db, _dir) = temp_db().await;
        let k = key(&db, 1.0, 1, 0, 0).await;
        sqlx::query("DELETE FROM rate_state WHERE key_id = $1")
            .bind(&k.id)
            .execute(db.pool())
            .await
            .unwrap();
        assert!(admit(&db, &k, NOW).await.unwrap().is_ok());
        assert!(admit(&db, &k, NOW).await.unwrap().is_err());
    }
    #[tokio::test]
    async fn leases_batch_busy_keys_and_never_exceed_the_limit() {
        let (db, dir) = temp_db().await;
        // A busy key: burst 800, 1000/s → leases of 50 tokens.
        let k = key(&db, 1000.0, 800, 0, 0).await;
        assert_eq!(lease_size(&k), 50);
        let leases = RateLeases::new();
        let other = Db::open_data_dir(&dir.path().join("data")).await.unwrap();
        let other_leases = RateLeases::new();
        let mut admitted = 0;
        for i in 0..2000 {
            // Two "replicas" at the same instant: together they may admit the burst and no more.
            let (d, l) = if i % 2 == 0 {
                (&db, &leases)
            } else {
                (&other, &other_leases)
            };
            if admit_leased(d, l, &k, NOW).await.unwrap().is_ok() {
                admitted += 1;
            }
        }
        assert!(admitted <= 800, "admitted {admitted} > burst 800");
        assert!(
            admitted >= 700,
            "leases should waste little: admitted {admitted}"
        );
        // Refused once the burst is spent, with a Retry-After.
        let denied = admit_leased(&db, &RateLeases::new(), &k, NOW)
            .await
            .unwrap();
        assert!(matches!(denied, Err(Denial::RateLimited { .. })));
        // A typical key leases one token at a time (exact per request).
        let small = key(&db, 10.0, 20, 0, 0).await;
        assert_eq!(lease_size(&small), 1);
        let mut n = 0;
        for _ in 0..30 {
            if admit_leased(&db, &leases, &small, NOW)
                .await
                .unwrap()
                .is_ok()
            {
                n += 1;
            }
        }
        assert_eq!(n, 20);
    }

    #[tokio::test]
    async fn leases_expire_and_budget_keys_are_charged_per_request() {
        let (db, _dir) = temp_db().await;
        let k = key(&db, 1000.0, 800, 0, 0).await;
        let leases = RateLeases::new();
        assert!(admit_leased(&db, &leases, &k, NOW).await.unwrap().is_ok());
        assert!(
            leases.take(&k.id, NOW + 0.01),
            "a fresh lease hands out tokens"
        );
        assert!(!leases.take(&k.id, NOW + 5.0), "an old lease does not");
        leases.forget(&k.id);
        assert!(!leases.take(&k.id, NOW));
        // With a budget: every request is counted in the database, none from a lease.
        let b = key(&db, 1000.0, 800, 3, 0).await;
        for _ in 0..3 {
            assert!(admit_leased(&db, &leases, &b, NOW).await.unwrap().is_ok());
        }
        let denied = admit_leased(&db, &leases, &b, NOW).await.unwrap();
        assert!(matches!(
            denied,
            Err(Denial::BudgetExhausted { period: "day", .. })
        ));
        assert_eq!(usage(&db, &b.id, NOW).await.unwrap().day_used, 3);
    }
}
