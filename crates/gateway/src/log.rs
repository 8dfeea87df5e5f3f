//! Structured server logs: one JSON object per line on stderr.
//!
//! Callers pass named fields, never whole requests, so a key, a password, a TOTP code or a request body cannot
//! reach the log by accident: the only request data logged are the route, status, latency, request id and key
//! *id*.

use serde_json::{Map, Value};

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    /// Per-request access lines (only with `access_log = true`).
    Info,
    /// Something an operator should look at.
    Warn,
    /// A failure.
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The line for an event: `{"ts":…, "level":…, "event":…, …fields}`.
pub(crate) fn line(level: Level, event: &str, fields: &[(&str, Value)]) -> String {
    let mut map = Map::new();
    map.insert("ts_ms".into(), Value::from(crate::util::now_ms()));
    map.insert("level".into(), Value::from(level.as_str()));
    map.insert("event".into(), Value::from(event));
    for (k, v) in fields {
        map.insert((*k).to_string(), v.clone());
    }
    Value::Object(map).to_string()
}

/// Write an event to stderr.
pub(crate) fn emit(level: Level, event: &str, fields: &[(&str, Value)]) {
    eprintln!("{}", line(level, event, fields));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_single_json_objects_with_escaped_values() {
        let l = line(
            Level::Warn,
            "upstream",
            &[("detail", Value::from("a\nb\"c"))],
        );
        assert!(!l.contains('\n'));
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["detail"], "a\nb\"c");
    }
}
