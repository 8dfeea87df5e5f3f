//! The first admin: with an empty `users` table the server prints a one-time code, and whoever holds it creates
//! the first admin account (with TOTP enrolled at once). There is no default password anywhere.
//!
//! Only the SHA-256 of the code is stored (setting `bootstrap_hash`, as `HASH:EXPIRES`), compared in constant
//! time; the code expires after an hour, a new one replaces the old, and it is consumed by a conditional
//! `DELETE` so two racing requests cannot both use it.

use super::{
    check_issuer, check_username, enroll_totp, insert_user, no_users, password, Enrollment, Role,
};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::util::{constant_time_eq, random_token, sha256_hex};

/// Settings row of the pending code.
const SETTING: &str = "bootstrap_hash";
/// How long a code stays valid.
pub const BOOTSTRAP_TTL_SECS: i64 = 3600;
/// Characters of a code (≈190 bits).
const CODE_CHARS: usize = 32;

fn refused() -> Error {
    Error::Denied("invalid or expired bootstrap code".into())
}

fn already() -> Error {
    Error::Denied("already bootstrapped".into())
}

/// A fresh bootstrap code when no user exists (replacing any earlier code), `None` once someone does.
pub async fn bootstrap_code(db: &Db, now: i64) -> Result<Option<String>> {
    if !no_users(db).await? {
        return Ok(None);
    }
    let code = random_token(CODE_CHARS)?;
    let expires = now.saturating_add(BOOTSTRAP_TTL_SECS);
    db.set_setting(
        SETTING,
        &format!("{}:{expires}", sha256_hex(code.as_bytes())),
    )
    .await?;
    Ok(Some(code))
}

/// Create the first admin with a valid, unexpired bootstrap code, and enroll their TOTP (the returned
/// enrollment is shown once). Refused with [`Error::Denied`] once any user exists ("already bootstrapped"),
/// for a wrong or expired code, or for a username or password that breaks the rules.
pub async fn bootstrap(
    db: &Db,
    code: &str,
    username: &str,
    password: &str,
    issuer: &str,
    now: i64,
) -> Result<Enrollment> {
    check_username(username)?;
    password::check_password_policy(password, username)?;
    check_issuer(issuer)?;
    if !no_users(db).await? {
        return Err(already());
    }
    let Some(stored) = db.setting(SETTING).await? else {
        return Err(refused());
    };
    let (hash, expires) = stored
        .split_once(':')
        .and_then(|(h, e)| Some((h, e.parse::<i64>().ok()?)))
        .ok_or_else(|| Error::Corrupt("setting bootstrap_hash is malformed".into()))?;
    let code_ok = constant_time_eq(
        sha256_hex(code.trim().as_bytes()).as_bytes(),
        hash.as_bytes(),
    );
    if !code_ok || expires <= now {
        return Err(refused());
    }
    let password_hash = password::hash(password).await?;
    let consumed = sqlx::query("DELETE FROM settings WHERE name = $1 AND value = $2")
        .bind(SETTING)
        .bind(&stored)
        .execute(db.pool())
        .await
        .map_err(Error::db("consume the bootstrap code"))?;
    if consumed.rows_affected() == 0 {
        return Err(refused());
    }
    if !insert_user(db, username, &password_hash, Role::Admin, now, true).await? {
        return Err(already());
    }
    enroll_totp(db, username, issuer).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::temp_db;
    use crate::identity::{login, totp, LoginError, SessionKey};

    const PW: &str = "correct horse battery";
    const NOW: i64 = 1_800_000_000;

    #[tokio::test]
    async fn the_first_admin_is_created_once_with_a_fresh_code() {
        let (db, _dir) = temp_db().await;
        let old = bootstrap_code(&db, NOW).await.unwrap().unwrap();
        let code = bootstrap_code(&db, NOW).await.unwrap().unwrap();
        assert_eq!(code.len(), CODE_CHARS);
        assert_ne!(old, code);
        let stored = db.setting(SETTING).await.unwrap().unwrap();
        assert!(!stored.contains(&code));

        // The replaced code, a wrong one and an expired one are refused; so are bad names and passwords.
        for (c, t) in [
            (old.as_str(), NOW),
            ("wrong", NOW),
            (code.as_str(), NOW + BOOTSTRAP_TTL_SECS),
        ] {
            let err = bootstrap(&db, c, "root", PW, "Aegis", t).await.unwrap_err();
            assert!(err.to_string().contains("invalid or expired"), "{err}");
        }
        assert!(bootstrap(&db, &code, "root", "short", "Aegis", NOW)
            .await
            .is_err());
        assert!(bootstrap(&db, &code, "bad name", PW, "Aegis", NOW)
            .await
            .is_err());

        let enrollment = bootstrap(&db, &code, "root", PW, "Aegis", NOW)
            .await
            .unwrap();
        let users = crate::identity::list_users(&db).await.unwrap();
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].role, Role::Admin);
        assert!(users[0].totp_enabled);
        assert_eq!(enrollment.recovery_codes.len(), 10);
        assert_eq!(db.setting(SETTING).await.unwrap(), None);

        // Works once; no new code once a user exists.
        let again = bootstrap(&db, &code, "root2", PW, "Aegis", NOW)
            .await
            .unwrap_err();
        assert!(
            again.to_string().contains("already bootstrapped"),
            "{again}"
        );
        assert_eq!(bootstrap_code(&db, NOW).await.unwrap(), None);

        // The new admin logs in with password and TOTP.
        let key = SessionKey::load_or_create(&db).await.unwrap();
        assert!(matches!(
            login(&db, &key, &Default::default(), attempt(None), 60, NOW).await,
            Err(LoginError::SecondFactorRequired)
        ));
        let secret = {
            use sqlx::Row;
            let row = sqlx::query("SELECT totp_secret FROM users WHERE username = 'root'")
                .fetch_one(db.pool())
                .await
                .unwrap();
            let sealed: String = row.try_get("totp_secret").unwrap();
            db.secrets()
                .unwrap()
                .open("root", &sealed)
                .unwrap()
                .to_vec()
        };
        let code = format!("{:06}", totp::code_at(&secret, (NOW / totp::PERIOD) as u64));
        login(
            &db,
            &key,
            &Default::default(),
            attempt(Some(&code)),
            60,
            NOW,
        )
        .await
        .unwrap();
    }

    /// root's sign-in with the test password.
    fn attempt(second_factor: Option<&str>) -> crate::identity::Attempt<'_> {
        crate::identity::Attempt {
            username: "root",
            password: PW,
            second_factor,
            source: None,
        }
    }

    #[tokio::test]
    async fn no_code_is_pending_on_a_populated_database() {
        let (db, _dir) = temp_db().await;
        let code = bootstrap_code(&db, NOW).await.unwrap().unwrap();
        crate::identity::create_user(&db, "ann", PW, Role::Client)
            .await
            .unwrap();
        assert_eq!(bootstrap_code(&db, NOW).await.unwrap(), None);
        let err = bootstrap(&db, &code, "root", PW, "Aegis", NOW)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("already bootstrapped"), "{err}");
        let (empty, _dir2) = temp_db().await;
        let err = bootstrap(&empty, "anything", "root", PW, "Aegis", NOW)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid or expired"), "{err}");
    }
}
