//! Sessions: signed, expiring, revocable tokens for people who logged in.
//!
//! A token is `ses_<id>.<mac>`, where `id` is 32 random alphanumerics (the `sessions` row) and `mac` is
//! base64url(HMAC-SHA256(session key, id)). The MAC is checked first, in constant time, so forged or guessed
//! tokens cost no database read; then the row decides: not revoked, not expired, user not disabled. The role comes
//! from `users` at each request, so demotions apply at once, and revocation is a row update every replica sees.
//! The session key is generated on first start and shared by replicas through the `settings` table.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use sqlx::Row;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::Role;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::util::random_token;

/// Prefix of every session token.
pub const TOKEN_PREFIX: &str = "ses_";
/// Characters of a session id.
const ID_CHARS: usize = 32;
/// Longest token accepted for checking (anything longer is refused without work).
const MAX_TOKEN_LEN: usize = 128;

/// The 32-byte HMAC key that signs session tokens; zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionKey([u8; 32]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl SessionKey {
    /// Load the key from the `session_key` setting, creating it on first start (the first replica's key wins).
    pub async fn load_or_create(db: &Db) -> Result<SessionKey> {
        Ok(SessionKey(db.secrets()?.session_key()))
    }

    fn mac(&self, id: &str) -> Result<Hmac<Sha256>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0)
            .map_err(|_| Error::Internal("session key length".into()))?;
        mac.update(id.as_bytes());
        Ok(mac)
    }

    /// A value bound to this key, derived for `purpose` from `data` (hex HMAC-SHA256): the console's CSRF token
    /// is `derive("csrf", session_id)`, so it needs no storage and dies with the session.
    pub(crate) fn derive(&self, purpose: &str, data: &str) -> String {
        match self.mac(purpose) {
            Ok(mut mac) => {
                mac.update(b"\0");
                mac.update(data.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> SessionKey {
        SessionKey(bytes)
    }
}

/// A session just opened by a login. `token` is the bearer secret: give it to the client once, never log it.
#[derive(Clone, Serialize)]
pub struct Session {
    /// `ses_<id>.<mac>`.
    pub token: String,
    /// Who logged in.
    pub username: String,
    /// Their role at login (requests re-read it).
    pub role: Role,
    /// Unix seconds after which the token is refused.
    pub expires: i64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token", &"***")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("expires", &self.expires)
            .finish()
    }
}

/// Who is behind an authenticated session token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The user.
    pub username: String,
    /// Their current role (read from `users` at each request).
    pub role: Role,
    /// The session id (the row, not the token: useless without the MAC), for logout and audit.
    pub session_id: String,
}

/// Open a session for `username` lasting `ttl_secs` from `now`.
pub(crate) async fn create(
    db: &Db,
    key: &SessionKey,
    username: &str,
    role: Role,
    ttl_secs: i64,
    now: i64,
) -> Result<Session> {
    if ttl_secs <= 0 {
        return Err(Error::Internal("session lifetime must be positive".into()));
    }
    let id = random_token(ID_CHARS)?;
    let tag = key.mac(&id)?.finalize().into_bytes();
    let token = format!("{TOKEN_PREFIX}{id}.{}", URL_SAFE_NO_PAD.encode(tag));
    let expires = now.saturating_add(ttl_secs);
    sqlx::query("INSERT INTO sessions (id, username, created, expires) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(username)
        .bind(now)
        .bind(expires)
        .execute(db.pool())
        .await
        .map_err(Error::db("create a session"))?;
    Ok(Session {
        token,
        username: username.to_string(),
        role,
        expires,
    })
}

/// The session id inside `token` when its MAC is right (constant-time check), else `None`.
fn checked_id<'t>(key: &SessionKey, token: &'t str) -> Option<&'t str> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (id, tag) = token.strip_prefix(TOKEN_PREFIX)?.split_once('.')?;
    if id.len() != ID_CHARS || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    key.mac(id).ok()?.verify_slice(&tag).ok()?;
    Some(id)
}

/// The principal behind `token` at time `now`, or `None` when the token is forged, malformed, unknown,
/// revoked or expired, or its user is disabled or gone. `Err` only for database failures.
pub async fn authenticate_session(
    db: &Db,
    key: &SessionKey,
    token: &str,
    now: i64,
) -> Result<Option<Principal>> {
    let Some(id) = checked_id(key, token) else {
        return Ok(None);
    };
    let row = sqlx::query(
        "SELECT s.username AS username, s.expires AS expires, s.revoked AS revoked,
                u.role AS role, u.disabled AS disabled
         FROM sessions s JOIN users u ON u.username = s.username
         WHERE s.id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await
    .map_err(Error::db("read a session"))?;
    let Some(row) = row else {
        return Ok(None);
    };
    const OP: &str = "read a session";
    let expires: i64 = row.try_get("expires").map_err(Error::db(OP))?;
    let revoked: i64 = row.try_get("revoked").map_err(Error::db(OP))?;
    let disabled: i64 = row.try_get("disabled").map_err(Error::db(OP))?;
    if revoked != 0 || disabled != 0 || expires <= now {
        return Ok(None);
    }
    let username: String = row.try_get("username").map_err(Error::db(OP))?;
    let role: String = row.try_get("role").map_err(Error::db(OP))?;
    let role = role
        .parse::<Role>()
        .map_err(|_| Error::Corrupt(format!("user {username} has an unknown role")))?;
    Ok(Some(Principal {
        username,
        role,
        session_id: id.to_string(),
    }))
}

/// Revoke a session (idempotent: an unknown or already revoked id is not an error).
pub async fn logout(db: &Db, session_id: &str) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked = 1 WHERE id = $1")
        .bind(session_id)
        .execute(db.pool())
        .await
        .map_err(Error::db("revoke a session"))?;
    Ok(())
}

/// Revoke every session of `username`.
pub(crate) async fn revoke_all(db: &Db, username: &str) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked = 1 WHERE username = $1")
        .bind(username)
        .execute(db.pool())
        .await
        .map_err(Error::db("revoke sessions"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key_and_token() {
        let key = SessionKey::from_bytes([7; 32]);
        assert_eq!(format!("{key:?}"), "***");
        let s = Session {
            token: "ses_secret.value".into(),
            username: "ann".into(),
            role: Role::Client,
            expires: 1,
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("ann"), "{shown}");
    }

    #[test]
    fn mac_check_refuses_tampering_and_garbage() {
        let key = SessionKey::from_bytes([7; 32]);
        let other = SessionKey::from_bytes([8; 32]);
        let id = "A".repeat(ID_CHARS);
        let tag = URL_SAFE_NO_PAD.encode(key.mac(&id).unwrap().finalize().into_bytes());
        let token = format!("ses_{id}.{tag}");
        assert_eq!(checked_id(&key, &token), Some(id.as_str()));
        assert_eq!(checked_id(&other, &token), None);
        let other_id = format!("B{}", &id[1..]);
        assert_eq!(checked_id(&key, &format!("ses_{other_id}.{tag}")), None);
        assert_eq!(checked_id(&key, &format!("ses_{id}.")), None);
        assert_eq!(checked_id(&key, &format!("ses_{id}")), None);
        assert_eq!(checked_id(&key, &format!("xxx_{id}.{tag}")), None);
        assert_eq!(checked_id(&key, &format!("ses_{id}.{tag}AA")), None);
        assert_eq!(checked_id(&key, ""), None);
    }

    #[tokio::test]
    async fn the_key_comes_from_the_secrets_file_not_the_database() {
        let (db, dir) = crate::db::tests::temp_db().await;
        let a = SessionKey::load_or_create(&db).await.unwrap();
        let b = SessionKey::load_or_create(&db).await.unwrap();
        assert_eq!(a.0, b.0);
        assert_ne!(a.0, [0; 32]);
        // Nothing in the database holds it.
        let settings = sqlx::query("SELECT value FROM settings")
            .fetch_all(db.pool())
            .await
            .unwrap();
        for row in settings {
            let v: String = sqlx::Row::try_get(&row, "value").unwrap();
            assert!(
                !v.contains(&hex::encode(a.0)),
                "session key stored in the database"
            );
        }
        // The same database without its key file loaded has no session key at all.
        let bare = Db::connect(&crate::db::sqlite_url(&dir.path().join("data/aegis.db")))
            .await
            .unwrap();
        assert!(SessionKey::load_or_create(&bare).await.is_err());
    }
}
