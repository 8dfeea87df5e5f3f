//! The one dialect for a cell's text: what counts as a number, a boolean or a timestamp.
//!
//! Type inference in the CSV reader, the typed column builders, the schema's per-value check (`aegis schema
//! check`) and the gateway's request validation all parse cells here, so a value one of them takes as a number
//! is a number for all of them. Numbers are finite `f64` (`NaN` and infinities are not numbers); booleans are
//! `true/false`, `yes/no`, `t/f`, `y/n`, `1/0` in any case (inference tries numbers first, so a 0/1 column stays
//! numeric); timestamps are integer seconds since the Unix epoch or ISO 8601 dates and date-times
//! (`2024-01-31`, `2024-01-31T12:00:00Z`, a space instead of `T`, fractional seconds dropped, `Z`, `±HH:MM` or
//! `±HHMM` offsets), in UTC. Surrounding spaces are ignored.

use aegis_core::days_from_civil;
pub use aegis_core::format_timestamp;

/// A finite number, or `None`.
pub fn parse_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|x| x.is_finite())
}

/// A boolean: `true/false`, `yes/no`, `t/f`, `y/n`, `1/0`, in any case; `None` for anything else.
pub fn parse_bool(text: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["true", "yes", "t", "y", "1"];
    const FALSE: [&str; 5] = ["false", "no", "f", "n", "0"];
    let t = text.trim();
    if t.len() > 5 {
        None
    } else if TRUE.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|w| w.eq_ignore_ascii_case(t)) {
        Some(false)
    } else {
        None
    }
}

/// `n` ASCII digits at the start of `s` as a number, and the rest.
fn digits(s: &[u8], n: usize) -> Option<(i64, &[u8])> {
    if s.len() < n || !s[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s[..n]
        .iter()
        .fold(0i64, |acc, &b| acc * 10 + i64::from(b - b'0'));
    Some((v, &s[n..]))
}

/// Seconds since the Unix epoch (UTC) of an integer epoch-seconds cell or an ISO 8601 date
/// `YYYY-MM-DD` or date-time `YYYY-MM-DD[T ]HH:MM[:SS[.fff]][Z|±HH:MM|±HHMM]`; `None` for anything else.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.len() <= 18 && unsigned.bytes().all(|b| b.is_ascii_digit())
    {
        return text.parse().ok();
    }
    let s = text.as_bytes();
    let (y, s) = digits(s, 4)?;
    let s = s.strip_prefix(b"-")?;
    let (m, s) = digits(s, 2)?;
    let s = s.strip_prefix(b"-")?;
    let (d, s) = digits(s, 2)?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > month_days {
        return None;
    }
    let date = days_from_civil(y, m, d) * 86_400;
    let Some((&sep, s)) = s.split_first() else {
        return Some(date);
    };
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    let (hh, s) = digits(s, 2)?;
    let s = s.strip_prefix(b":")?;
    let (mm, mut s) = digits(s, 2)?;
    let mut ss = 0;
    if let Some(rest) = s.strip_prefix(b":") {
        let (v, rest) = digits(rest, 2)?;
        ss = v;
        s = rest;
        if let Some(rest) = s.strip_prefix(b".") {
            let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 || n > 9 {
                return None;
            }
            s = &rest[n..];
        }
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let offset = match s {
        [] | [b'Z'] | [b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, rest) = digits(rest, 2)?;
            let rest = rest.strip_prefix(b":").unwrap_or(rest);
            let (om, rest) = digits(rest, 2)?;
            if !rest.is_empty() || oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    Some(date + hh * 3600 + mm * 60 + ss - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_strictly_and_round_trip() {
        assert_eq!(parse_timestamp("1970-01-01"), Some(0));
        assert_eq!(parse_timestamp("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_timestamp("-5"), Some(-5));
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(1));
        assert_eq!(parse_timestamp("1970-01-01T01:00-01:00"), Some(7200));
        assert_eq!(parse_timestamp("1970-01-01T01:00-0100"), Some(7200));
        assert_eq!(parse_timestamp("1969-12-31T23:59:59"), Some(-1));
        assert_eq!(parse_timestamp(" 2024-02-29 12:30 "), Some(1_709_209_800));
        assert_eq!(
            parse_timestamp("2024-02-29T14:30:00.250+02:00"),
            Some(1_709_209_800)
        );
        assert_eq!(
            parse_timestamp("2024-03-01T10:30:15.123456789Z"),
            Some(1_709_289_015)
        );
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            "2024-01-01T24:00",
            "2024-01-01T10:60",
            "2024-01-01T10",
            "2024-01-01X10:00",
            "2024-01-01T10:00+02",
            "2024-01-01T10:00:00.",
            "2024-01-01T10:00:00.1234567890",
            "yesterday",
            "12.5",
            "",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        for secs in [
            -86_400 * 400 * 366,
            -62_135_596_800,
            -1,
            0,
            1,
            951_782_400,
            4_102_444_800,
        ] {
            assert_eq!(parse_timestamp(&format_timestamp(secs)), Some(secs));
        }
    }

    #[test]
    fn numbers_and_booleans_parse_strictly() {
        assert_eq!(parse_number(" 0.95 "), Some(0.95));
        assert_eq!(parse_number("-1e3"), Some(-1000.0));
        for bad in ["NaN", "inf", "-infinity", "12abc", "", "1,5"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
        for (text, value) in [
            ("Yes", true),
            ("f", false),
            ("TRUE", true),
            ("0", false),
            ("y", true),
        ] {
            assert_eq!(parse_bool(text), Some(value), "{text}");
        }
        for bad in ["maybe", "2", "", "truee"] {
            assert_eq!(parse_bool(bad), None, "{bad}");
        }
    }
}
