//! Refusals without a valid identity (a 401: no key, a wrong or revoked key, no session) are sampled in the
//! audit log instead of written one row each.
//!
//! Anyone can send them, as fast as the network allows: one client sending 18,500 a second would add about
//! 338 GiB a day to the chain. So, per source address, the first refusal of each window is recorded in full
//! and the rest of the window are counted; when the window ends, one summary record says how many refusals
//! were not recorded one by one, from which address, on which route and over which period. Authenticated
//! traffic keeps one record per request. Memory is bounded: at most [`MAX_SOURCES`] addresses are tracked, and
//! refusals from further addresses are counted under one bucket with no address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::audit_log::AuditEvent;

/// Source addresses tracked at once; refusals from more share one bucket.
pub(crate) const MAX_SOURCES: usize = 4096;

/// One source's current window.
#[derive(Debug)]
struct Window {
    started: Instant,
    route: String,
    suppressed: u64,
}

/// Per-source windows of refusals without a valid identity.
#[derive(Debug)]
pub(crate) struct RefusalSampler {
    window: Duration,
    sources: Mutex<HashMap<Option<IpAddr>, Window>>,
}

impl RefusalSampler {
    /// A sampler that records one refusal per source per `window`.
    pub(crate) fn new(window: Duration) -> Self {
        RefusalSampler {
            window: window.max(Duration::from_millis(1)),
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Decide for one refusal from `source` on `route` at `now`: whether to record it in full, and the summary
    /// of the source's previous window when this refusal closed it.
    pub(crate) fn admit(
        &self,
        source: Option<IpAddr>,
        route: &str,
        now: Instant,
    ) -> (bool, Option<AuditEvent>) {
        let mut sources = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = if sources.contains_key(&source) || sources.len() < MAX_SOURCES {
            source
        } else {
            None
        };
        match sources.get_mut(&key) {
            Some(w) if now.duration_since(w.started) < self.window => {
                w.suppressed += 1;
                (false, None)
            }
            _ => {
                let fresh = Window {
                    started: now,
                    route: route.to_owned(),
                    suppressed: 0,
                };
                let ended = sources.insert(key, fresh);
                (true, ended.and_then(|w| summary(key, &w, now)))
            }
        }
    }

    /// Close the windows that ended before `now` (all of them with `all`): their summaries, to be recorded.
    pub(crate) fn drain(&self, now: Instant, all: bool) -> Vec<AuditEvent> {
        let mut sources = self
            .sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ended: Vec<Option<IpAddr>> = sources
            .iter()
            .filter(|(_, w)| all || now.duration_since(w.started) >= self.window)
            .map(|(k, _)| *k)
            .collect();
        ended
            .into_iter()
            .filter_map(|k| sources.remove(&k).and_then(|w| summary(k, &w, now)))
            .collect()
    }
}

/// The record for a window's refusals that were counted but not recorded (none when there were none).
fn summary(source: Option<IpAddr>, w: &Window, now: Instant) -> Option<AuditEvent> {
    (w.suppressed > 0).then(|| AuditEvent {
        kind: "denied".into(),
        route: w.route.clone(),
        decision: "denied:unauthenticated".into(),
        status: 401,
        detail: format!(
            "{} more refusals without a valid key or session from {} within {:.0} s of the one recorded, \
             counted here instead of one record each",
            w.suppressed,
            source.map_or_else(|| "other addresses".to_string(), |ip| ip.to_string()),
            now.duration_since(w.started).as_secs_f64().ceil()
        ),
        ..AuditEvent::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_per_source_per_window_then_a_summary() {
        let s = RefusalSampler::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let b: Option<IpAddr> = Some("192.0.2.2".parse().unwrap());
        assert_eq!(s.admit(a, "/predict", t0), (true, None));
        for i in 1..=99 {
            assert_eq!(
                s.admit(a, "/predict", t0 + Duration::from_millis(i)),
                (false, None)
            );
        }
        // Another source has its own window.
        assert_eq!(s.admit(b, "/admin/me", t0), (true, None));
        // After the window, the next refusal is recorded and closes the previous window with a summary.
        let (record, closed) = s.admit(a, "/predict", t0 + Duration::from_secs(61));
        assert!(record);
        let closed = closed.unwrap();
        assert_eq!((closed.kind.as_str(), closed.status), ("denied", 401));
        assert!(
            closed.detail.starts_with("99 more refusals") && closed.detail.contains("192.0.2.1")
        );
        // A window with nothing suppressed leaves no summary; drain closes what ended.
        assert!(s.drain(t0 + Duration::from_secs(62), false).is_empty());
        assert!(s.admit(b, "/admin/me", t0 + Duration::from_secs(63)).0);
        assert!(!s.admit(b, "/admin/me", t0 + Duration::from_secs(64)).0);
        let drained = s.drain(t0 + Duration::from_secs(200), true);
        assert_eq!(drained.len(), 1);
        assert!(drained[0].detail.contains("192.0.2.2"));
        assert!(s.drain(t0 + Duration::from_secs(300), true).is_empty());
    }

    #[test]
    fn sources_beyond_the_bound_share_one_bucket() {
        let s = RefusalSampler::new(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES as u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0A00_0000 + i));
            assert!(s.admit(Some(ip), "/", t0).0);
        }
        let late = |n: u32| Some(IpAddr::from(std::net::Ipv4Addr::from(0xC000_0200 + n)));
        assert!(
            s.admit(late(1), "/", t0).0,
            "the overflow bucket's first refusal is recorded"
        );
        assert!(!s.admit(late(2), "/", t0).0, "then counted");
        assert!(s.sources.lock().unwrap().len() <= MAX_SOURCES + 1);
        let drained = s.drain(t0, true);
        assert_eq!(drained.len(), 1);
        assert!(
            drained[0].detail.contains("other addresses"),
            "{}",
            drained[0].detail
        );
    }
}
