//! Secrets shown once: a new API key's secret or a new administrator's authenticator key is kept here, for the
//! session that created it, until the next page that shows it (at most five minutes). The form's answer is a
//! redirect, so reloading that page shows nothing and creates nothing twice.

use std::collections::HashMap;
use std::sync::Mutex;

/// How long a secret waits for its page.
const TTL_SECS: i64 = 300;

/// What one session has to be shown once.
#[derive(Debug, Clone, Default)]
pub(crate) struct Shown {
    /// A new key: (key id, secret).
    pub(crate) key: Option<(String, String)>,
    /// A new user's authenticator enrolment.
    pub(crate) enrolment: Option<aegis_web::Enrolment>,
}

/// Secrets waiting for their page, per session id.
#[derive(Debug, Default)]
pub(crate) struct OnceSecrets {
    waiting: Mutex<HashMap<String, (Shown, i64)>>,
}

impl OnceSecrets {
    /// Keep `shown` for the session `session_id` (replacing what waited).
    pub(crate) fn put(&self, session_id: &str, shown: Shown, now: i64) {
        if let Ok(mut w) = self.waiting.lock() {
            w.retain(|_, (_, t)| *t > now);
            w.insert(session_id.to_string(), (shown, now + TTL_SECS));
        }
    }

    /// Take what waits for `session_id`, if it has not expired; it is gone afterwards.
    pub(crate) fn take(&self, session_id: &str, now: i64) -> Shown {
        self.waiting
            .lock()
            .ok()
            .and_then(|mut w| w.remove(session_id))
            .filter(|(_, t)| *t > now)
            .map(|(s, _)| s)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_shown_once_to_its_session_and_expires() {
        let once = OnceSecrets::default();
        let key = Shown {
            key: Some(("k1".into(), "aeg_secret".into())),
            enrolment: None,
        };
        once.put("s1", key.clone(), 100);
        assert!(once.take("s2", 100).key.is_none(), "another session");
        assert_eq!(once.take("s1", 101).key, key.key);
        assert!(once.take("s1", 102).key.is_none(), "only once");
        once.put("s1", key, 100);
        assert!(once.take("s1", 100 + TTL_SECS).key.is_none(), "expired");
    }
}
