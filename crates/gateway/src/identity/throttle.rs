//! Failed sign-ins counted per source address, and per username for names that are not accounts.
//!
//! An account's own counter (in the database, shared by replicas) locks it after repeated failures. Alone, that
//! lets anyone lock the admin out with six bad passwords, and the lock showed only for names that exist. Two
//! counters here complete it:
//! - **per source address**: an address that keeps failing, whatever names it tries, is refused (429) for a
//!   while before any password is checked, so guessing is slowed where it comes from rather than only at the
//!   account it targets;
//! - **per unknown username** ("phantom" accounts): the same thresholds and lock lengths as real accounts, so a
//!   name that does not exist locks and answers exactly like one that does.
//!
//! Both live in memory, bounded ([`MAX_ENTRIES`] each; the least recently failing entry goes first), and forget a
//! counter after [`FORGET_AFTER_SECS`] without failures.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// Failures from one address before it is refused for a while.
pub const SOURCE_THRESHOLD: i64 = 20;
/// Entries kept per counter kind.
pub const MAX_ENTRIES: usize = 65_536;
/// A counter with no failure for this long starts again from zero.
pub const FORGET_AFTER_SECS: i64 = 3600;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: i64,
    locked_until: i64,
    last: i64,
}

#[derive(Debug)]
struct Counters<K> {
    map: HashMap<K, Entry>,
    threshold: i64,
}

impl<K: Hash + Eq + Clone> Counters<K> {
    fn new(threshold: i64) -> Self {
        Counters {
            map: HashMap::new(),
            threshold,
        }
    }

    fn locked(&self, key: &K, now: i64) -> Option<i64> {
        self.map
            .get(key)
            .filter(|e| e.locked_until > now)
            .map(|e| e.locked_until - now)
    }

    fn fail(&mut self, key: &K, now: i64) {
        if self.map.len() >= MAX_ENTRIES && !self.map.contains_key(key) {
            self.map.retain(|_, e| now - e.last < FORGET_AFTER_SECS);
            if self.map.len() >= MAX_ENTRIES {
                if let Some(oldest) = self
                    .map
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(k, _)| k.clone())
                {
                    self.map.remove(&oldest);
                }
            }
        }
        let e = self.map.entry(key.clone()).or_default();
        if now - e.last >= FORGET_AFTER_SECS {
            *e = Entry::default();
        }
        e.failures += 1;
        e.last = now;
        if e.failures >= self.threshold {
            e.locked_until = now.saturating_add(super::lock_secs_after(e.failures, self.threshold));
        }
    }
}

/// The in-memory counters of one gateway.
#[derive(Debug)]
pub struct LoginThrottle {
    sources: Mutex<Counters<IpAddr>>,
    phantoms: Mutex<Counters<String>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        LoginThrottle {
            sources: Mutex::new(Counters::new(SOURCE_THRESHOLD)),
            phantoms: Mutex::new(Counters::new(super::LOCKOUT_THRESHOLD)),
        }
    }
}

impl LoginThrottle {
    /// Seconds until `source` may try again, when it is refused now.
    pub fn source_locked(&self, source: IpAddr, now: i64) -> Option<i64> {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .locked(&source, now)
    }

    /// Count a failure from `source`.
    pub fn source_failed(&self, source: IpAddr, now: i64) {
        self.sources
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fail(&source, now);
    }

    /// For a username that is no account: seconds until its (phantom) lock ends, when it is locked.
    pub(crate) fn phantom_locked(&self, username: &str, now: i64) -> Option<i64> {
        self.phantoms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .locked(&username.to_string(), now)
    }

    /// Count a failure for a username that is no account.
    pub(crate) fn phantom_failed(&self, username: &str, now: i64) {
        self.phantoms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fail(&username.to_string(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_refused_after_its_threshold_and_forgotten_later() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..SOURCE_THRESHOLD - 1 {
            t.source_failed(ip, 100);
        }
        assert_eq!(t.source_locked(ip, 100), None);
        t.source_failed(ip, 100);
        assert_eq!(t.source_locked(ip, 100), Some(30));
        assert_eq!(t.source_locked(other, 100), None);
        assert_eq!(t.source_locked(ip, 130), None);
        // Another failure after the lock: twice as long.
        t.source_failed(ip, 131);
        assert_eq!(t.source_locked(ip, 131), Some(60));
        // An hour without failures: a fresh start.
        t.source_failed(ip, 131 + FORGET_AFTER_SECS);
        assert_eq!(t.source_locked(ip, 131 + FORGET_AFTER_SECS), None);
    }

    #[test]
    fn phantoms_lock_like_accounts_and_the_map_stays_bounded() {
        let t = LoginThrottle::default();
        for _ in 0..super::super::LOCKOUT_THRESHOLD {
            t.phantom_failed("ghost", 10);
        }
        assert_eq!(t.phantom_locked("ghost", 10), Some(30));
        assert_eq!(t.phantom_locked("ghost", 40), None);
        for i in 0..MAX_ENTRIES + 10 {
            t.phantom_failed(&format!("n{i}"), 10 + i as i64 / 1000);
        }
        assert!(t.phantoms.lock().unwrap().map.len() <= MAX_ENTRIES);
    }
}
