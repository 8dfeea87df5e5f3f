//! Plain words for the states, statuses and times every page shows, so "not_affected" or a Unix time never
//! reaches a person who has not read the VEX specification.

use aegis_core::Severity;

/// A finding's triage state as a person says it.
pub fn plain_state(state: &str) -> &'static str {
    match state {
        "in_triage" => "new, not yet looked at",
        "exploitable" => "confirmed: needs fixing",
        "resolved" => "fixed",
        "false_positive" => "not a real problem",
        "not_affected" => "does not affect us",
        _ => "unknown",
    }
}

/// A run's status as a person says it.
pub fn plain_status(status: &str) -> &'static str {
    match status {
        "queued" => "waiting to start",
        "running" => "running",
        "done" => "finished",
        "failed" => "could not run",
        "skipped" => "skipped: something is missing",
        "never" => "never run",
        _ => "unknown",
    }
}

/// The one word for a severity, for people.
pub fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "Critical",
        Severity::High => "High",
        Severity::Medium => "Medium",
        Severity::Low => "Low",
        Severity::Info => "Info",
    }
}

/// How long ago `ts` was, relative to `now`: `just now`, `5 min ago`, `3 h ago`, `2 days ago`, `never`.
pub fn ago(ts: i64, now: i64) -> String {
    if ts <= 0 {
        return "never".into();
    }
    let d = (now - ts).max(0);
    match d {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", d / 60),
        3600..=86_399 => format!("{} h ago", d / 3600),
        86_400..=172_799 => "1 day ago".into(),
        _ => format!("{} days ago", d / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(ago(0, 100), "never");
        assert_eq!(ago(100, 130), "just now");
        assert_eq!(ago(100, 100 + 600), "10 min ago");
        assert_eq!(ago(100, 100 + 7200), "2 h ago");
        assert_eq!(ago(100, 100 + 86_400 * 3), "3 days ago");
        // A clock that went backwards is "just now", never a negative age.
        assert_eq!(ago(200, 100), "just now");
    }

    #[test]
    fn every_vex_state_has_plain_words() {
        for s in aegis_store::VexState::ALL {
            assert_ne!(plain_state(s.as_str()), "unknown", "{s:?}");
        }
    }
}
