//! People's identity in the gateway: users and roles, argon2id passwords, the TOTP second factor with recovery
//! codes, lockout with exponential backoff, signed revocable sessions, and the one-time bootstrap of the first
//! admin (there is no default password anywhere).
//!
//! Everything lives in the database (`users`, `recovery_codes`, `sessions`, `settings`), so replicas agree on
//! lockouts, used TOTP steps and revocations. Every check that must not race is one conditional `UPDATE`: a
//! login attempt claims its place in the failure counter before the password is checked (so a burst of parallel
//! guesses cannot exceed the threshold), a TOTP step is stored only if it is newer than the last one, and a
//! recovery code is spent only if unused. Errors a client sees ([`LoginError`]) never say whether a username
//! exists. TOTP secrets are stored as hex in `users.totp_secret`: whoever reads the database can mint codes, so
//! the database file deserves the protection of a key file.

mod bootstrap;
mod password;
mod sessions;
pub mod throttle;
pub mod totp;

pub use bootstrap::{bootstrap, bootstrap_code, BOOTSTRAP_TTL_SECS};
pub use password::{check_password_policy, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
pub use sessions::{
    authenticate_session, logout, Principal, Session, SessionKey,
    TOKEN_PREFIX as SESSION_TOKEN_PREFIX,
};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use zeroize::Zeroizing;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::util::{random_bytes, random_token, sha256_hex};

/// Consecutive failures after which an account locks.
pub const LOCKOUT_THRESHOLD: i64 = 5;
/// Lock length at the threshold; it doubles with each further failure.
pub const LOCKOUT_BASE_SECS: i64 = 30;
/// Longest lock.
pub const LOCKOUT_MAX_SECS: i64 = 3600;
/// Recovery codes issued per enrollment.
pub const RECOVERY_CODES: usize = 10;
/// Characters per recovery code (≈119 bits).
pub const RECOVERY_CODE_CHARS: usize = 20;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation for SHA-1).
const TOTP_SECRET_BYTES: usize = 20;

/// What a person may do. Checked server-side on every admin route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including users.
    Admin,
    /// Models, keys, policies.
    Operator,
    /// Read the audit log, alerts and reports.
    Auditor,
    /// Inference on granted models.
    Client,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Auditor, Role::Client];

    /// The lower-case name stored in the database and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::Client => "client",
        }
    }

    /// Whether a login in this role must pass a second factor (admins only).
    pub fn requires_totp(self) -> bool {
        matches!(self, Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown role {s:?}: expected admin, operator, auditor or client"
                ))
            })
    }
}

/// A user as listed to administrators (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Whether logins and sessions are refused.
    pub disabled: bool,
    /// Whether a TOTP secret is enrolled.
    pub totp_enabled: bool,
    /// Unix seconds of creation.
    pub created: i64,
    /// Unix seconds until which logins are refused (0 or past: not locked).
    pub locked_until: i64,
}

/// A fresh TOTP enrollment, shown to its user once: the secret (for the authenticator app, also as an
/// `otpauth://` URI for a QR code) and the recovery codes. Debug output hides all of it.
#[derive(Clone, Serialize)]
pub struct Enrollment {
    /// The secret, base32 without padding.
    pub secret_base32: String,
    /// `otpauth://totp/ISSUER:USER?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`.
    pub otpauth_uri: String,
    /// Single-use codes that stand in for a TOTP code.
    pub recovery_codes: Vec<String>,
}

impl fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrollment")
            .field("secret_base32", &"***")
            .field("otpauth_uri", &"***")
            .field(
                "recovery_codes",
                &format_args!("[***; {}]", self.recovery_codes.len()),
            )
            .finish()
    }
}

/// Why a login was refused. Messages are short and safe to show a client; none says whether the user exists.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown user or wrong password (deliberately the same).
    #[error("invalid username or password")]
    BadCredentials,
    /// Too many failures: try again later.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    Locked {
        /// Seconds until the lock ends.
        retry_after_secs: i64,
    },
    /// The password is right but a TOTP code or recovery code is needed (or, for an admin, TOTP must be
    /// enrolled first).
    #[error("a second factor is required")]
    SecondFactorRequired,
    /// The TOTP or recovery code is wrong.
    #[error("invalid second factor")]
    SecondFactorInvalid,
    /// The TOTP code was already used; wait for the next one.
    #[error("second factor already used; wait for the next code")]
    SecondFactorReplayed,
    /// The account is disabled.
    #[error("account disabled")]
    Disabled,
    /// The server failed (the detail is for the log, not the client).
    #[error("internal error")]
    Internal(#[from] Error),
}

/// Check a username with the same rule as every other name in the gateway.
fn check_username(username: &str) -> Result<()> {
    crate::config::check_name(username).map_err(|e| Error::Invalid(format!("user {e}")))
}

/// Check a TOTP issuer (shown by authenticator apps).
fn check_issuer(issuer: &str) -> Result<()> {
    if issuer.is_empty() || issuer.chars().count() > 64 || issuer.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "issuer must be 1–64 characters without control characters".into(),
        ));
    }
    Ok(())
}

/// Create a user. The username follows [`crate::config::check_name`], the password [`check_password_policy`];
/// an existing username is [`Error::Invalid`].
pub async fn create_user(db: &Db, username: &str, password: &str, role: Role) -> Result<()> {
    check_username(username)?;
    check_password_policy(password, username)?;
    let hash = password::hash(password).await?;
    if !insert_user(db, username, &hash, role, crate::util::now_secs(), false).await? {
        return Err(Error::Invalid(format!("user {username} already exists")));
    }
    Ok(())
}

/// Insert a user row; with `only_if_none`, only while the table is empty. Returns whether a row was inserted.
async fn insert_user(
    db: &Db,
    username: &str,
    password_hash: &str,
    role: Role,
    now: i64,
    only_if_none: bool,
) -> Result<bool> {
    let sql = if only_if_none {
        "INSERT INTO users (username, password_hash, role, created)
         SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM users)"
    } else {
        "INSERT INTO users (username, password_hash, role, created) VALUES ($1, $2, $3, $4)
         ON CONFLICT (username) DO NOTHING"
    };
    let done = sqlx::query(sql)
        .bind(username)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now)
        .execute(db.pool())
        .await
        .map_err(Error::db("create a user"))?;
    Ok(done.rows_affected() == 1)
}

/// Whether no user exists yet.
async fn no_users(db: &Db) -> Result<bool> {
    let row = sqlx::query("SELECT username FROM users LIMIT 1")
        .fetch_optional(db.pool())
        .await
        .map_err(Error::db("count users"))?;
    Ok(row.is_none())
}

/// Every user, by username.
pub async fn list_users(db: &Db) -> Result<Vec<User>> {
    const OP: &str = "list users";
    let rows = sqlx::query(
        "SELECT username, role, disabled, created, locked_until,
                CAST(CASE WHEN totp_secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS totp_enabled
         FROM users ORDER BY username",
    )
    .fetch_all(db.pool())
    .await
    .map_err(Error::db(OP))?;
    rows.iter()
        .map(|row| {
            let username: String = row.try_get("username").map_err(Error::db(OP))?;
            let role: String = row.try_get("role").map_err(Error::db(OP))?;
            let role = role
                .parse()
                .map_err(|_| Error::Corrupt(format!("user {username} has an unknown role")))?;
            Ok(User {
                role,
                disabled: row.try_get::<i64, _>("disabled").map_err(Error::db(OP))? != 0,
                totp_enabled: row
                    .try_get::<i64, _>("totp_enabled")
                    .map_err(Error::db(OP))?
                    != 0,
                created: row.try_get("created").map_err(Error::db(OP))?,
                locked_until: row.try_get("locked_until").map_err(Error::db(OP))?,
                username,
            })
        })
        .collect()
}

/// Disable or re-enable a user. Disabling also revokes every session of theirs. Unknown: [`Error::NotFound`].
pub async fn set_disabled(db: &Db, username: &str, disabled: bool) -> Result<()> {
    let done = sqlx::query("UPDATE users SET disabled = $1 WHERE username = $2")
        .bind(i64::from(disabled))
        .bind(username)
        .execute(db.pool())
        .await
        .map_err(Error::db("disable a user"))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("user {username}")));
    }
    if disabled {
        sessions::revoke_all(db, username).await?;
    }
    Ok(())
}

/// Clear a user's failed-login count and lock (`aegis user unlock`), so an owner locked out by someone
/// guessing at their name can sign in again at once. Unknown: [`Error::NotFound`].
pub async fn unlock(db: &Db, username: &str) -> Result<()> {
    let done =
        sqlx::query(
            "UPDATE users SET failed_logins = 0, locked_until = 0, factor_failures = 0 WHERE username = $1",
        )
            .bind(username)
            .execute(db.pool())
            .await
            .map_err(Error::db("unlock a user"))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("user {username}")));
    }
    Ok(())
}

/// Replace a user's password (policy-checked). Clears any lockout and revokes the user's sessions, so a
/// stolen session does not outlive a password reset. Unknown: [`Error::NotFound`].
pub async fn set_password(db: &Db, username: &str, password: &str) -> Result<()> {
    check_password_policy(password, username)?;
    let hash = password::hash(password).await?;
    let done = sqlx::query(
        "UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = 0, factor_failures = 0
         WHERE username = $2",
    )
    .bind(&hash)
    .bind(username)
    .execute(db.pool())
    .await
    .map_err(Error::db("set a password"))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("user {username}")));
    }
    sessions::revoke_all(db, username).await
}

/// Change a user's role; open sessions see the new role at their next request. Unknown: [`Error::NotFound`].
pub async fn set_role(db: &Db, username: &str, role: Role) -> Result<()> {
    let done = sqlx::query("UPDATE users SET role = $1 WHERE username = $2")
        .bind(role.as_str())
        .bind(username)
        .execute(db.pool())
        .await
        .map_err(Error::db("set a role"))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("user {username}")));
    }
    Ok(())
}

/// Enroll (or re-enroll) TOTP for a user: a new 20-byte secret and 10 new recovery codes, replacing the old
/// ones in one transaction. From now on logins of this user need a second factor. Unknown: [`Error::NotFound`].
pub async fn enroll_totp(db: &Db, username: &str, issuer: &str) -> Result<Enrollment> {
    check_issuer(issuer)?;
    let secret = Zeroizing::new(random_bytes(TOTP_SECRET_BYTES)?);
    // Stored sealed under the secrets key file: a copy of the database alone cannot produce codes.
    let sealed = db.secrets()?.seal(username, &secret)?;
    let mut recovery_codes = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        recovery_codes.push(random_token(RECOVERY_CODE_CHARS)?);
    }
    const OP: &str = "enroll TOTP";
    let mut tx = db.begin().await.map_err(Error::db(OP))?;
    let done = sqlx::query("UPDATE users SET totp_secret = $1 WHERE username = $2")
        .bind(sealed.as_str())
        .bind(username)
        .execute(&mut *tx)
        .await
        .map_err(Error::db(OP))?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound(format!("user {username}")));
    }
    sqlx::query("DELETE FROM recovery_codes WHERE username = $1")
        .bind(username)
        .execute(&mut *tx)
        .await
        .map_err(Error::db(OP))?;
    for code in &recovery_codes {
        sqlx::query("INSERT INTO recovery_codes (username, code_hash) VALUES ($1, $2)")
            .bind(username)
            .bind(sha256_hex(code.as_bytes()))
            .execute(&mut *tx)
            .await
            .map_err(Error::db(OP))?;
    }
    tx.commit().await.map_err(Error::db(OP))?;
    let secret_base32 = totp::base32_encode(&secret);
    let otpauth_uri = format!(
        "otpauth://totp/{}:{}?secret={secret_base32}&issuer={}&algorithm=SHA1&digits=6&period=30",
        crate::util::percent_encode(issuer),
        crate::util::percent_encode(username),
        crate::util::percent_encode(issuer),
    );
    Ok(Enrollment {
        secret_base32,
        otpauth_uri,
        recovery_codes,
    })
}

/// The columns a login needs.
struct LoginRow {
    password_hash: String,
    role: Role,
    disabled: bool,
    totp_secret: Option<Zeroizing<String>>,
    totp_last_step: i64,
    failed_logins: i64,
    locked_until: i64,
    factor_failures: i64,
}

async fn login_row(db: &Db, username: &str) -> Result<Option<LoginRow>> {
    const OP: &str = "read a user";
    let row = sqlx::query(
        "SELECT password_hash, role, disabled, totp_secret, totp_last_step, failed_logins, locked_until,
                factor_failures
         FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(db.pool())
    .await
    .map_err(Error::db(OP))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let role: String = row.try_get("role").map_err(Error::db(OP))?;
    Ok(Some(LoginRow {
        password_hash: row.try_get("password_hash").map_err(Error::db(OP))?,
        role: role
            .parse()
            .map_err(|_| Error::Corrupt(format!("user {username} has an unknown role")))?,
        disabled: row.try_get::<i64, _>("disabled").map_err(Error::db(OP))? != 0,
        totp_secret: row
            .try_get::<Option<String>, _>("totp_secret")
            .map_err(Error::db(OP))?
            .map(Zeroizing::new),
        totp_last_step: row.try_get("totp_last_step").map_err(Error::db(OP))?,
        failed_logins: row.try_get("failed_logins").map_err(Error::db(OP))?,
        locked_until: row.try_get("locked_until").map_err(Error::db(OP))?,
        factor_failures: row.try_get("factor_failures").map_err(Error::db(OP))?,
    }))
}

/// Lock length after `failures` consecutive failures: 30 s × 2^(failures − 5), at most an hour.
fn lock_secs(failures: i64) -> i64 {
    lock_secs_after(failures, LOCKOUT_THRESHOLD)
}

/// Lock length after `failures` failures against a `threshold`: 30 s, doubling per further failure, at most 1 h.
fn lock_secs_after(failures: i64, threshold: i64) -> i64 {
    let doublings = (failures - threshold).clamp(0, 16) as u32;
    (LOCKOUT_BASE_SECS << doublings).min(LOCKOUT_MAX_SECS)
}

/// Count this attempt as a failure before checking anything (success resets the count), locking the account
/// when it reaches the threshold. Compare-and-swap, so parallel attempts each get their own number.
async fn claim_attempt(
    db: &Db,
    username: &str,
    now: i64,
    mut failed: i64,
    mut locked_until: i64,
) -> Result<(), LoginError> {
    for _ in 0..16 {
        if locked_until > now {
            return Err(LoginError::Locked {
                retry_after_secs: locked_until - now,
            });
        }
        let n = failed.saturating_add(1);
        let new_lock = if n >= LOCKOUT_THRESHOLD {
            now.saturating_add(lock_secs(n))
        } else {
            locked_until
        };
        let done = sqlx::query(
            "UPDATE users SET failed_logins = $1, locked_until = $2
             WHERE username = $3 AND failed_logins = $4 AND locked_until = $5",
        )
        .bind(n)
        .bind(new_lock)
        .bind(username)
        .bind(failed)
        .bind(locked_until)
        .execute(db.pool())
        .await
        .map_err(Error::db("count a login attempt"))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        // Another attempt got in first: read the counter again.
        let row = sqlx::query("SELECT failed_logins, locked_until FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(db.pool())
            .await
            .map_err(Error::db("count a login attempt"))?;
        let Some(row) = row else {
            return Err(LoginError::BadCredentials);
        };
        failed = row
            .try_get("failed_logins")
            .map_err(Error::db("count a login attempt"))?;
        locked_until = row
            .try_get("locked_until")
            .map_err(Error::db("count a login attempt"))?;
    }
    Err(LoginError::Locked {
        retry_after_secs: 1,
    })
}

/// Check a TOTP code (six digits) or, otherwise, a recovery code, spending it.
async fn check_second_factor(
    db: &Db,
    username: &str,
    sealed: &str,
    last_step: i64,
    code: &str,
    now: i64,
) -> Result<(), LoginError> {
    let code = code.trim();
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        let secret = db.secrets()?.open(username, sealed)?;
        let Some(step) = totp::verify(&secret, code, now, last_step) else {
            return Err(if totp::verify(&secret, code, now, i64::MIN).is_some() {
                LoginError::SecondFactorReplayed
            } else {
                LoginError::SecondFactorInvalid
            });
        };
        // Store the step only if it is newer than the stored one: a parallel login with the same code loses.
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE username = $2 AND totp_last_step < $1",
        )
        .bind(step)
        .bind(username)
        .execute(db.pool())
        .await
        .map_err(Error::db("record a TOTP step"))?;
        if done.rows_affected() == 0 {
            return Err(LoginError::SecondFactorReplayed);
        }
        return Ok(());
    }
    let done = sqlx::query(
        "UPDATE recovery_codes SET used = 1 WHERE username = $1 AND code_hash = $2 AND used = 0",
    )
    .bind(username)
    .bind(sha256_hex(code.as_bytes()))
    .execute(db.pool())
    .await
    .map_err(Error::db("use a recovery code"))?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(LoginError::SecondFactorInvalid)
    }
}

/// What a sign-in presents, and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The account.
    pub username: &'a str,
    /// Its password.
    pub password: &'a str,
    /// A 6-digit TOTP code or a recovery code.
    pub second_factor: Option<&'a str>,
    /// The client's address (behind trusted proxies, the one they report), for the per-source throttle.
    pub source: Option<std::net::IpAddr>,
}

/// Log in with a password and, when the user has TOTP (or is an admin), a second factor: a 6-digit TOTP code
/// or an unused recovery code. Returns a session lasting `ttl_secs` from `now`.
///
/// Order, so that no answer or timing tells an existing name from an unknown one, and a lock is no weapon:
/// 1. a source address over its failure threshold is refused ([`LoginError::Locked`]) before anything else;
/// 2. the attempt is counted against the account (or, for an unknown name, its phantom in `throttle`), unless
///    it is locked already, and one argon2 verification runs either way (a dummy for unknown names);
/// 3. a wrong password (or unknown name) counts against the source and is [`LoginError::BadCredentials`], or
///    `Locked` while the account (or phantom) is locked;
/// 4. a locked account still lets its owner in with the right password **and** a valid second factor: the lock
///    stops guessing, not the person who holds the second factor; without one, `Locked`. That path closes once
///    a wrong second factor was sent with the right password (someone has the password and guesses codes) and
///    reopens at the next success or `aegis user unlock`;
/// 5. disabled → [`LoginError::Disabled`]; missing, wrong or replayed second factor → the matching error;
///    success resets the account's count.
///
/// Accounts lock after 5 failures for 30 s, doubling per further failure, at most 1 h; attempts while locked
/// do not extend the lock.
pub async fn login(
    db: &Db,
    key: &SessionKey,
    throttle: &throttle::LoginThrottle,
    attempt: Attempt<'_>,
    ttl_secs: i64,
    now: i64,
) -> Result<Session, LoginError> {
    let Attempt {
        username,
        password,
        second_factor,
        source,
    } = attempt;
    if let Some(retry_after_secs) = source.and_then(|ip| throttle.source_locked(ip, now)) {
        return Err(LoginError::Locked { retry_after_secs });
    }
    let row = login_row(db, username).await?;
    let (password_ok, locked) = match &row {
        Some(row) => {
            let locked = (row.locked_until > now).then(|| row.locked_until - now);
            if locked.is_none() {
                claim_attempt(db, username, now, row.failed_logins, row.locked_until).await?;
            }
            (
                password::verify(password, &row.password_hash).await?,
                locked,
            )
        }
        None => {
            let locked = throttle.phantom_locked(username, now);
            if locked.is_none() {
                throttle.phantom_failed(username, now);
            }
            password::verify_dummy(password).await;
            (false, locked)
        }
    };
    let refused = |e: LoginError| {
        if let Some(ip) = source {
            throttle.source_failed(ip, now);
        }
        e
    };
    let Some(row) = row.filter(|_| password_ok) else {
        return Err(refused(match locked {
            Some(retry_after_secs) => LoginError::Locked { retry_after_secs },
            None => LoginError::BadCredentials,
        }));
    };
    if row.disabled {
        return Err(LoginError::Disabled);
    }
    // Through a lock only with a second factor, and only when no second factor was guessed wrong since the last
    // success: someone who has the password and guesses codes stays locked out like any guesser.
    let factor_path_open = row.factor_failures == 0;
    match (&row.totp_secret, second_factor) {
        (None, _) | (_, None) if locked.is_some() => {
            return Err(refused(LoginError::Locked {
                retry_after_secs: locked.unwrap_or(1),
            }))
        }
        (None, _) if row.role.requires_totp() => return Err(LoginError::SecondFactorRequired),
        (None, _) => {}
        (Some(_), None) => return Err(LoginError::SecondFactorRequired),
        (Some(_), Some(_)) if locked.is_some() && !factor_path_open => {
            return Err(refused(LoginError::Locked {
                retry_after_secs: locked.unwrap_or(1),
            }))
        }
        (Some(secret), Some(code)) => {
            if let Err(e) =
                check_second_factor(db, username, secret, row.totp_last_step, code, now).await
            {
                if !matches!(e, LoginError::Internal(_)) {
                    sqlx::query(
                        "UPDATE users SET factor_failures = factor_failures + 1 WHERE username = $1",
                    )
                    .bind(username)
                    .execute(db.pool())
                    .await
                    .map_err(Error::db("count a wrong second factor"))?;
                }
                return Err(refused(e));
            }
        }
    }
    sqlx::query(
        "UPDATE users SET failed_logins = 0, locked_until = 0, factor_failures = 0 WHERE username = $1",
    )
        .bind(username)
        .execute(db.pool())
        .await
        .map_err(Error::db("reset login failures"))?;
    Ok(sessions::create(db, key, username, row.role, ttl_secs, now).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::temp_db;

    const PW: &str = "correct horse battery";
    /// A time in the middle of a TOTP step.
    const NOW: i64 = 56_666_667 * totp::PERIOD + 10;
    const TTL: i64 = 3600;

    async fn setup() -> (Db, tempfile::TempDir, SessionKey) {
        let (db, dir) = temp_db().await;
        let key = SessionKey::load_or_create(&db).await.unwrap();
        (db, dir, key)
    }

    async fn secret_of(db: &Db, username: &str) -> Vec<u8> {
        let row = sqlx::query("SELECT totp_secret FROM users WHERE username = $1")
            .bind(username)
            .fetch_one(db.pool())
            .await
            .unwrap();
        let sealed: String = row.try_get("totp_secret").unwrap();
        db.secrets()
            .unwrap()
            .open(username, &sealed)
            .unwrap()
            .to_vec()
    }

    fn code(secret: &[u8], now: i64, offset: i64) -> String {
        format!(
            "{:06}",
            totp::code_at(secret, (now / totp::PERIOD + offset) as u64)
        )
    }

    async fn login_at(
        db: &Db,
        key: &SessionKey,
        user: &str,
        pw: &str,
        second: Option<&str>,
        now: i64,
    ) -> Result<Session, LoginError> {
        // No source and a fresh throttle: the account rules alone (the throttle has tests of its own below).
        let t = throttle::LoginThrottle::default();
        let attempt = Attempt {
            username: user,
            password: pw,
            second_factor: second,
            source: None,
        };
        login(db, key, &t, attempt, TTL, now).await
    }

    #[test]
    fn roles_parse_print_and_serialize_lowercase() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(role.to_string(), role.as_str());
            assert_eq!(
                serde_json::to_string(&role).unwrap(),
                format!("\"{}\"", role.as_str())
            );
        }
        let err = "root".parse::<Role>().unwrap_err().to_string();
        assert!(err.contains("admin, operator, auditor or client"), "{err}");
        assert!("Admin".parse::<Role>().is_err());
        assert!(Role::Admin.requires_totp());
        assert!(!Role::Operator.requires_totp());
        assert!(!Role::Auditor.requires_totp());
        assert!(!Role::Client.requires_totp());
    }

    #[tokio::test]
    async fn users_are_created_listed_and_disabled() {
        let (db, _dir, _key) = setup().await;
        create_user(&db, "bob", PW, Role::Operator).await.unwrap();
        create_user(&db, "ann", PW, Role::Client).await.unwrap();
        let dup = create_user(&db, "bob", PW, Role::Client).await.unwrap_err();
        assert!(matches!(dup, Error::Invalid(_)), "{dup}");
        assert!(create_user(&db, "bad name", PW, Role::Client)
            .await
            .is_err());
        assert!(create_user(&db, "", PW, Role::Client).await.is_err());
        assert!(create_user(&db, "carl", "short", Role::Client)
            .await
            .is_err());
        let users = list_users(&db).await.unwrap();
        let names: Vec<_> = users.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(names, ["ann", "bob"]);
        assert_eq!(users[1].role, Role::Operator);
        assert!(!users[1].disabled && !users[1].totp_enabled);
        assert!(users[1].created > 0);
        let hash: String = sqlx::query("SELECT password_hash FROM users WHERE username = 'bob'")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get("password_hash")
            .unwrap();
        assert!(hash.starts_with("$argon2id$") && !hash.contains(PW));

        set_disabled(&db, "bob", true).await.unwrap();
        assert!(list_users(&db).await.unwrap()[1].disabled);
        let missing = set_disabled(&db, "nobody", true).await.unwrap_err();
        assert!(matches!(missing, Error::NotFound(_)), "{missing}");
        assert!(matches!(
            set_role(&db, "nobody", Role::Client).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            set_password(&db, "nobody", PW).await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn passwords_are_checked_without_revealing_which_users_exist() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "ann", PW, Role::Client).await.unwrap();
        let s = login_at(&db, &key, "ann", PW, None, NOW).await.unwrap();
        assert_eq!((s.username.as_str(), s.role), ("ann", Role::Client));
        assert_eq!(s.expires, NOW + TTL);
        let wrong = login_at(&db, &key, "ann", "wrong password!", None, NOW)
            .await
            .unwrap_err();
        let unknown = login_at(&db, &key, "zed", PW, None, NOW).await.unwrap_err();
        assert!(matches!(wrong, LoginError::BadCredentials));
        assert!(matches!(unknown, LoginError::BadCredentials));
        assert_eq!(wrong.to_string(), unknown.to_string());

        set_password(&db, "ann", "another good password")
            .await
            .unwrap();
        assert!(login_at(&db, &key, "ann", PW, None, NOW).await.is_err());
        login_at(&db, &key, "ann", "another good password", None, NOW)
            .await
            .unwrap();
        assert!(set_password(&db, "ann", "tiny").await.is_err());
    }

    #[tokio::test]
    async fn a_lock_stops_guessing_not_the_owner_with_a_second_factor() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "ada", PW, Role::Admin).await.unwrap();
        enroll_totp(&db, "ada", "Aegis").await.unwrap();
        let secret = secret_of(&db, "ada").await;
        let t = throttle::LoginThrottle::default();
        // Attackers from many addresses lock the account.
        for i in 0..6u8 {
            let attempt = Attempt {
                username: "ada",
                password: "wrong password!",
                second_factor: None,
                source: Some(std::net::IpAddr::from([192, 0, 2, i])),
            };
            let _ = login(&db, &key, &t, attempt, TTL, NOW).await;
        }
        let owner = |second_factor| Attempt {
            username: "ada",
            password: PW,
            second_factor,
            source: Some(std::net::IpAddr::from([198, 51, 100, 1])),
        };
        // The password alone does not open a locked account …
        assert!(matches!(
            login(&db, &key, &t, owner(None), TTL, NOW).await,
            Err(LoginError::Locked { .. })
        ));
        // … the password and a valid TOTP code do, and reset the count.
        let c = code(&secret, NOW, 0);
        let s = login(&db, &key, &t, owner(Some(c.as_str())), TTL, NOW)
            .await
            .unwrap();
        assert_eq!(s.username, "ada");
        assert_eq!(list_users(&db).await.unwrap()[0].locked_until, 0);
        // A wrong code while locked stays refused.
        for _ in 0..6 {
            let _ = login_at(&db, &key, "ada", "wrong password!", None, NOW + 60).await;
        }
        assert!(login(&db, &key, &t, owner(Some("000000")), TTL, NOW + 60)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn unknown_names_lock_and_answer_exactly_like_accounts() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "ann", PW, Role::Client).await.unwrap();
        let t = throttle::LoginThrottle::default();
        let mut answers = Vec::new();
        for name in ["ann", "zed"] {
            let mut seen = Vec::new();
            for i in 0..7 {
                let attempt = Attempt {
                    username: name,
                    password: "wrong password!",
                    second_factor: None,
                    source: None,
                };
                let r = login(&db, &key, &t, attempt, TTL, NOW + i).await;
                seen.push(r.unwrap_err().to_string());
            }
            answers.push(seen);
        }
        assert_eq!(answers[0], answers[1]);
        assert!(
            answers[0][5].contains("too many failed attempts"),
            "{:?}",
            answers[0]
        );
        assert!(
            answers[0][4].contains("invalid username or password"),
            "{:?}",
            answers[0]
        );
    }

    #[tokio::test]
    async fn a_source_that_keeps_failing_is_refused_whatever_name_it_tries() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "ann", PW, Role::Client).await.unwrap();
        let t = throttle::LoginThrottle::default();
        let attacker = std::net::IpAddr::from([203, 0, 113, 9]);
        for i in 0..throttle::SOURCE_THRESHOLD {
            let name = format!("user{i}");
            let attempt = Attempt {
                username: &name,
                password: "wrong password!",
                second_factor: None,
                source: Some(attacker),
            };
            let _ = login(&db, &key, &t, attempt, TTL, NOW).await;
        }
        let from = |source| Attempt {
            username: "ann",
            password: PW,
            second_factor: None,
            source: Some(source),
        };
        assert!(matches!(
            login(&db, &key, &t, from(attacker), TTL, NOW).await,
            Err(LoginError::Locked { .. })
        ));
        // Ann, from her own address, is not affected.
        login(
            &db,
            &key,
            &t,
            from(std::net::IpAddr::from([198, 51, 100, 2])),
            TTL,
            NOW,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn unlock_lets_a_locked_out_owner_sign_in_at_once() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "bo", PW, Role::Client).await.unwrap();
        for _ in 0..5 {
            let _ = login_at(&db, &key, "bo", "wrong password!", None, NOW).await;
        }
        assert!(matches!(
            login_at(&db, &key, "bo", PW, None, NOW).await,
            Err(LoginError::Locked { .. })
        ));
        unlock(&db, "bo").await.unwrap();
        login_at(&db, &key, "bo", PW, None, NOW).await.unwrap();
        // The failure count starts again from zero: one more failure does not lock.
        let _ = login_at(&db, &key, "bo", "wrong password!", None, NOW).await;
        login_at(&db, &key, "bo", PW, None, NOW).await.unwrap();
        assert!(matches!(
            unlock(&db, "nobody").await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn lockout_engages_after_five_failures_and_backs_off() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "ann", PW, Role::Client).await.unwrap();
        // Four failures then a success: the count resets, no lock.
        for _ in 0..4 {
            assert!(matches!(
                login_at(&db, &key, "ann", "wrong password!", None, NOW).await,
                Err(LoginError::BadCredentials)
            ));
        }
        login_at(&db, &key, "ann", PW, None, NOW).await.unwrap();
        for _ in 0..5 {
            assert!(matches!(
                login_at(&db, &key, "ann", "wrong password!", None, NOW).await,
                Err(LoginError::BadCredentials)
            ));
        }
        // Locked: even the right password is refused.
        match login_at(&db, &key, "ann", PW, None, NOW).await {
            Err(LoginError::Locked { retry_after_secs }) => assert_eq!(retry_after_secs, 30),
            other => panic!("{other:?}"),
        }
        match login_at(&db, &key, "ann", PW, None, NOW + 29).await {
            Err(LoginError::Locked { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(list_users(&db).await.unwrap()[0].locked_until, NOW + 30);
        // After the lock, one more failure locks for twice as long.
        let t = NOW + 30;
        assert!(matches!(
            login_at(&db, &key, "ann", "wrong password!", None, t).await,
            Err(LoginError::BadCredentials)
        ));
        match login_at(&db, &key, "ann", PW, None, t + 1).await {
            Err(LoginError::Locked { retry_after_secs }) => assert_eq!(retry_after_secs, 59),
            other => panic!("{other:?}"),
        }
        // After that lock the right password works and resets the count.
        let t = t + 60;
        login_at(&db, &key, "ann", PW, None, t).await.unwrap();
        for _ in 0..4 {
            let _ = login_at(&db, &key, "ann", "wrong password!", None, t).await;
        }
        login_at(&db, &key, "ann", PW, None, t).await.unwrap();
        // An administrator's password reset clears a lock.
        for _ in 0..5 {
            let _ = login_at(&db, &key, "ann", "wrong password!", None, t).await;
        }
        assert!(matches!(
            login_at(&db, &key, "ann", PW, None, t).await,
            Err(LoginError::Locked { .. })
        ));
        set_password(&db, "ann", PW).await.unwrap();
        login_at(&db, &key, "ann", PW, None, t).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_guesses_cannot_exceed_the_threshold() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "ann", PW, Role::Client).await.unwrap();
        let attempts = (0..12).map(|_| login_at(&db, &key, "ann", "wrong password!", None, NOW));
        let results = futures_util::future::join_all(attempts).await;
        let checked = results
            .iter()
            .filter(|r| matches!(r, Err(LoginError::BadCredentials)))
            .count();
        let locked = results
            .iter()
            .filter(|r| matches!(r, Err(LoginError::Locked { .. })))
            .count();
        assert_eq!((checked, locked), (5, 7), "{results:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_totp_code_wins_only_one_parallel_login() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "root", PW, Role::Admin).await.unwrap();
        enroll_totp(&db, "root", "Aegis").await.unwrap();
        let c = code(&secret_of(&db, "root").await, NOW, 0);
        let attempts = (0..4).map(|_| login_at(&db, &key, "root", PW, Some(&c), NOW));
        let results = futures_util::future::join_all(attempts).await;
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let replayed = results
            .iter()
            .filter(|r| matches!(r, Err(LoginError::SecondFactorReplayed)))
            .count();
        assert_eq!((ok, replayed), (1, 3), "{results:?}");
    }

    #[test]
    fn lock_length_doubles_and_is_capped() {
        assert_eq!(lock_secs(5), 30);
        assert_eq!(lock_secs(6), 60);
        assert_eq!(lock_secs(7), 120);
        assert_eq!(lock_secs(11), 1920);
        assert_eq!(lock_secs(12), 3600);
        assert_eq!(lock_secs(1000), 3600);
        assert_eq!(lock_secs(i64::MAX), 3600);
    }

    #[tokio::test]
    async fn admins_need_totp_and_codes_are_checked_once() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "root", PW, Role::Admin).await.unwrap();
        // No TOTP enrolled: refused even with a code.
        assert!(matches!(
            login_at(&db, &key, "root", PW, None, NOW).await,
            Err(LoginError::SecondFactorRequired)
        ));
        assert!(matches!(
            login_at(&db, &key, "root", PW, Some("123456"), NOW).await,
            Err(LoginError::SecondFactorRequired)
        ));
        let enrollment = enroll_totp(&db, "root", "Aegis Co").await.unwrap();
        assert!(list_users(&db).await.unwrap()[0].totp_enabled);
        let secret = secret_of(&db, "root").await;
        assert_eq!(totp::base32_encode(&secret), enrollment.secret_base32);
        assert_eq!(secret.len(), 20);
        assert_eq!(
            enrollment.otpauth_uri,
            format!(
                "otpauth://totp/Aegis%20Co:root?secret={}&issuer=Aegis%20Co&algorithm=SHA1&digits=6&period=30",
                enrollment.secret_base32
            )
        );
        let shown = format!("{enrollment:?}");
        assert!(!shown.contains(&enrollment.secret_base32), "{shown}");
        assert!(!shown.contains(&enrollment.recovery_codes[0]), "{shown}");

        assert!(matches!(
            login_at(&db, &key, "root", PW, None, NOW).await,
            Err(LoginError::SecondFactorRequired)
        ));
        let right = code(&secret, NOW, 0);
        let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert!(matches!(
            login_at(&db, &key, "root", PW, Some(&wrong), NOW).await,
            Err(LoginError::SecondFactorInvalid)
        ));
        // The right code works once; the same step again is a replay, even from another login.
        let s = login_at(&db, &key, "root", PW, Some(&right), NOW)
            .await
            .unwrap();
        assert_eq!(s.role, Role::Admin);
        assert!(matches!(
            login_at(&db, &key, "root", PW, Some(&right), NOW + 5).await,
            Err(LoginError::SecondFactorReplayed)
        ));
        // A wrong password with a right code is still bad credentials.
        let next = NOW + totp::PERIOD;
        assert!(matches!(
            login_at(
                &db,
                &key,
                "root",
                "wrong password!",
                Some(&code(&secret, next, 0)),
                next
            )
            .await,
            Err(LoginError::BadCredentials)
        ));
        // The previous step is older than the last used one: replay.
        assert!(matches!(
            login_at(&db, &key, "root", PW, Some(&code(&secret, next, -1)), next).await,
            Err(LoginError::SecondFactorReplayed)
        ));
    }

    #[tokio::test]
    async fn totp_accepts_one_step_of_skew_and_refuses_two() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "ops", PW, Role::Operator).await.unwrap();
        enroll_totp(&db, "ops", "Aegis").await.unwrap();
        let secret = secret_of(&db, "ops").await;
        // Operators with TOTP enrolled must give it too.
        assert!(matches!(
            login_at(&db, &key, "ops", PW, None, NOW).await,
            Err(LoginError::SecondFactorRequired)
        ));
        assert!(matches!(
            login_at(&db, &key, "ops", PW, Some(&code(&secret, NOW, -2)), NOW).await,
            Err(LoginError::SecondFactorInvalid)
        ));
        assert!(matches!(
            login_at(&db, &key, "ops", PW, Some(&code(&secret, NOW, 2)), NOW).await,
            Err(LoginError::SecondFactorInvalid)
        ));
        login_at(&db, &key, "ops", PW, Some(&code(&secret, NOW, -1)), NOW)
            .await
            .unwrap();
        login_at(&db, &key, "ops", PW, Some(&code(&secret, NOW, 1)), NOW)
            .await
            .unwrap();
        // Step +1 is used, so the current step (older) is now refused as a replay.
        assert!(matches!(
            login_at(&db, &key, "ops", PW, Some(&code(&secret, NOW, 0)), NOW).await,
            Err(LoginError::SecondFactorReplayed)
        ));
        // Second-factor failures (the replay above and four more) count toward the lockout.
        for _ in 0..4 {
            assert!(matches!(
                login_at(&db, &key, "ops", PW, Some("000000x"), NOW).await,
                Err(LoginError::SecondFactorInvalid)
            ));
        }
        assert!(matches!(
            login_at(&db, &key, "ops", PW, None, NOW).await,
            Err(LoginError::Locked { .. })
        ));
    }

    #[tokio::test]
    async fn recovery_codes_work_once_and_reenrollment_replaces_them() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "root", PW, Role::Admin).await.unwrap();
        let first = enroll_totp(&db, "root", "Aegis").await.unwrap();
        assert_eq!(first.recovery_codes.len(), RECOVERY_CODES);
        assert!(first
            .recovery_codes
            .iter()
            .all(|c| c.len() == RECOVERY_CODE_CHARS));
        let rc = first.recovery_codes[3].clone();
        login_at(&db, &key, "root", PW, Some(&rc), NOW)
            .await
            .unwrap();
        assert!(matches!(
            login_at(&db, &key, "root", PW, Some(&rc), NOW).await,
            Err(LoginError::SecondFactorInvalid)
        ));
        assert!(matches!(
            login_at(&db, &key, "root", PW, Some("not-a-recovery-code!"), NOW).await,
            Err(LoginError::SecondFactorInvalid)
        ));
        let stored: Vec<String> = sqlx::query("SELECT code_hash FROM recovery_codes")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("code_hash").unwrap())
            .collect();
        assert_eq!(stored.len(), RECOVERY_CODES);
        assert!(!stored.contains(&first.recovery_codes[0]));
        let second = enroll_totp(&db, "root", "Aegis").await.unwrap();
        assert_ne!(first.secret_base32, second.secret_base32);
        assert!(matches!(
            login_at(&db, &key, "root", PW, Some(&first.recovery_codes[0]), NOW).await,
            Err(LoginError::SecondFactorInvalid)
        ));
        login_at(&db, &key, "root", PW, Some(&second.recovery_codes[0]), NOW)
            .await
            .unwrap();
        assert!(matches!(
            enroll_totp(&db, "nobody", "Aegis").await,
            Err(Error::NotFound(_))
        ));
        assert!(enroll_totp(&db, "root", "").await.is_err());
    }

    #[tokio::test]
    async fn sessions_are_signed_expiring_and_revocable() {
        let (db, _dir, key) = setup().await;
        create_user(&db, "ann", PW, Role::Client).await.unwrap();
        let s = login_at(&db, &key, "ann", PW, None, NOW).await.unwrap();
        assert!(s.token.starts_with("ses_"));
        let p = authenticate_session(&db, &key, &s.token, NOW + 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((p.username.as_str(), p.role), ("ann", Role::Client));
        assert!(s.token.contains(&p.session_id));

        // Tampered MAC (last character changed) and a token signed by another key.
        let mut tampered = s.token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(authenticate_session(&db, &key, &tampered, NOW)
            .await
            .unwrap()
            .is_none());
        let (other_db, _other_dir) = temp_db().await;
        let other_key = SessionKey::load_or_create(&other_db).await.unwrap();
        assert!(authenticate_session(&db, &other_key, &s.token, NOW)
            .await
            .unwrap()
            .is_none());
        assert!(authenticate_session(&db, &key, "garbage", NOW)
            .await
            .unwrap()
            .is_none());

        // Expiry.
        assert!(authenticate_session(&db, &key, &s.token, NOW + TTL)
            .await
            .unwrap()
            .is_none());

        // Role changes apply at once.
        set_role(&db, "ann", Role::Auditor).await.unwrap();
        let p = authenticate_session(&db, &key, &s.token, NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.role, Role::Auditor);

        // Logout revokes this session only.
        let s2 = login_at(&db, &key, "ann", PW, None, NOW).await.unwrap();
        logout(&db, &p.session_id).await.unwrap();
        assert!(authenticate_session(&db, &key, &s.token, NOW)
            .await
            .unwrap()
            .is_none());
        assert!(authenticate_session(&db, &key, &s2.token, NOW)
            .await
            .unwrap()
            .is_some());
        logout(&db, "unknown").await.unwrap();

        // Disabling revokes every session and refuses logins (after the password check).
        set_disabled(&db, "ann", true).await.unwrap();
        assert!(authenticate_session(&db, &key, &s2.token, NOW)
            .await
            .unwrap()
            .is_none());
        assert!(matches!(
            login_at(&db, &key, "ann", PW, None, NOW).await,
            Err(LoginError::Disabled)
        ));
        assert!(matches!(
            login_at(&db, &key, "ann", "wrong password!", None, NOW).await,
            Err(LoginError::BadCredentials)
        ));
        set_disabled(&db, "ann", false).await.unwrap();
        let s3 = login_at(&db, &key, "ann", PW, None, NOW).await.unwrap();
        assert!(authenticate_session(&db, &key, &s3.token, NOW)
            .await
            .unwrap()
            .is_some());
        // A password reset revokes sessions too.
        set_password(&db, "ann", "a brand new password")
            .await
            .unwrap();
        assert!(authenticate_session(&db, &key, &s3.token, NOW)
            .await
            .unwrap()
            .is_none());
        assert!(login(
            &db,
            &key,
            &throttle::LoginThrottle::default(),
            Attempt {
                username: "ann",
                password: "a brand new password",
                second_factor: None,
                source: None,
            },
            0,
            NOW
        )
        .await
        .is_err());
    }
}
