//! Secrets shown once: a new API key's secret or a new administrator's authenticator key waits, for the session
//! that created it, until the next page that shows it (at most five minutes). The form's answer is a redirect,
//! so reloading that page shows nothing and creates nothing twice.
//!
//! The secret waits in the database, sealed (ChaCha20-Poly1305 under the gateway's secrets key, bound to the
//! session id), so the redirect may land on any replica; it is deleted when the page that shows it is drawn.

use serde::{Deserialize, Serialize};

use crate::db::Db;

/// How long a secret waits for its page.
const TTL_SECS: i64 = 300;

/// What one session has to be shown once.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Shown {
    /// A new key: (key id, secret).
    pub(crate) key: Option<(String, String)>,
    /// A new user's authenticator enrolment.
    pub(crate) enrolment: Option<aegis_web::Enrolment>,
    /// Unix seconds after which it is not shown.
    #[serde(default)]
    expires: i64,
}

impl Shown {
    /// A key's secret.
    pub(crate) fn key(id: String, secret: String) -> Shown {
        Shown {
            key: Some((id, secret)),
            ..Shown::default()
        }
    }

    /// A user's authenticator enrolment.
    pub(crate) fn enrolment(e: aegis_web::Enrolment) -> Shown {
        Shown {
            enrolment: Some(e),
            ..Shown::default()
        }
    }
}

fn setting(session_id: &str) -> String {
    format!("console_once:{session_id}")
}

/// Keep `shown` for the session `session_id` (replacing what waited).
pub(crate) async fn put(
    db: &Db,
    session_id: &str,
    mut shown: Shown,
    now: i64,
) -> crate::Result<()> {
    shown.expires = now + TTL_SECS;
    let json = serde_json::to_vec(&shown).map_err(|e| crate::Error::Internal(e.to_string()))?;
    let sealed = db.secrets()?.seal(&setting(session_id), &json)?;
    db.set_setting(&setting(session_id), &sealed).await
}

/// What waits for `session_id`, if anything has not expired (it stays until [`forget`]).
pub(crate) async fn peek(db: &Db, session_id: &str, now: i64) -> Shown {
    let Ok(Some(sealed)) = db.setting(&setting(session_id)).await else {
        return Shown::default();
    };
    db.secrets()
        .ok()
        .and_then(|s| s.open(&setting(session_id), &sealed).ok())
        .and_then(|json| serde_json::from_slice::<Shown>(&json).ok())
        .filter(|s| s.expires > now)
        .unwrap_or_default()
}

/// Delete what waited for `session_id` (after the page that shows it was drawn).
pub(crate) async fn forget(db: &Db, session_id: &str) {
    let _ = sqlx::query("DELETE FROM settings WHERE name = $1")
        .bind(setting(session_id))
        .execute(db.pool())
        .await;
}
