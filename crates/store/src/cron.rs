//! Five-field cron expressions (minute hour day-of-month month day-of-week, UTC), for schedules that must run
//! at a time of day rather than every N hours.
//!
//! Each field takes `*`, a number, a range `a-b`, a list `a,b`, and a step `*/n` or `a-b/n`; day-of-week is 0–6
//! from Sunday (7 is Sunday too). As in Vixie cron, when both day fields are restricted a day matching either
//! one matches.

use crate::{Error, Result};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cron {
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
    days_any: bool,
    weekdays_any: bool,
}

fn field(text: &str, lo: u32, hi: u32, name: &str) -> Result<Vec<bool>> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "cron {name} field {text:?}: {why} (allowed {lo}-{hi}, `*`, lists, ranges, `/step`)"
        ))
    };
    let mut set = vec![false; hi as usize + 1];
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().map_err(|_| bad("bad step"))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(bad("step 0"));
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                a.parse().map_err(|_| bad("bad number"))?,
                b.parse().map_err(|_| bad("bad number"))?,
            )
        } else {
            let v: u32 = range.parse().map_err(|_| bad("bad number"))?;
            (v, if part.contains('/') { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return Err(bad("out of range"));
        }
        let mut v = a;
        while v <= b {
            set[v as usize] = true;
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    Ok(set)
}

impl Cron {
    /// Parse `m h dom mon dow`.
    pub(crate) fn parse(text: &str) -> Result<Cron> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(Error::Invalid(format!(
                "cron expression {text:?} needs 5 fields: minute hour day-of-month month day-of-week, \
                 e.g. \"30 2 * * *\" for 02:30 UTC every day"
            )));
        }
        let mut weekdays = field(parts[4], 0, 7, "day-of-week")?;
        if weekdays[7] {
            weekdays[0] = true;
        }
        Ok(Cron {
            minutes: field(parts[0], 0, 59, "minute")?,
            hours: field(parts[1], 0, 23, "hour")?,
            days: field(parts[2], 1, 31, "day-of-month")?,
            months: field(parts[3], 1, 12, "month")?,
            weekdays,
            days_any: parts[2] == "*",
            weekdays_any: parts[4] == "*",
        })
    }

    /// The first matching minute strictly after `after` (Unix seconds), within about four years.
    pub(crate) fn next_after(&self, after: i64) -> Option<i64> {
        let mut t = (after.div_euclid(60) + 1) * 60;
        let limit = t + 4 * 366 * 86_400;
        while t < limit {
            let dt = time::OffsetDateTime::from_unix_timestamp(t).ok()?;
            if !self.months[dt.month() as usize] {
                // Jump to the first day of the next month.
                let (y, m) = if dt.month() == time::Month::December {
                    (dt.year() + 1, time::Month::January)
                } else {
                    (dt.year(), dt.month().next())
                };
                let date = time::Date::from_calendar_date(y, m, 1).ok()?;
                t = date.midnight().assume_utc().unix_timestamp();
                continue;
            }
            let dom = self.days[dt.day() as usize];
            let dow = self.weekdays[dt.weekday().number_days_from_sunday() as usize];
            let day_ok = match (self.days_any, self.weekdays_any) {
                (true, true) => true,
                (false, true) => dom,
                (true, false) => dow,
                (false, false) => dom || dow,
            };
            if !day_ok {
                t = (t.div_euclid(86_400) + 1) * 86_400;
                continue;
            }
            if !self.hours[dt.hour() as usize] {
                t = (t.div_euclid(3_600) + 1) * 3_600;
                continue;
            }
            if self.minutes[dt.minute() as usize] {
                return Some(t);
            }
            t += 60;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-07 15:00:00 UTC, a Monday.
    const MON_15H: i64 = 1_796_655_600;

    #[test]
    fn next_times() {
        let daily = Cron::parse("30 2 * * *").unwrap();
        assert_eq!(
            daily.next_after(MON_15H),
            Some(MON_15H + 11 * 3600 + 30 * 60)
        );
        let every15 = Cron::parse("*/15 * * * *").unwrap();
        assert_eq!(every15.next_after(MON_15H), Some(MON_15H + 15 * 60));
        // Sundays at midnight: the next is 2026-12-13.
        let sunday = Cron::parse("0 0 * * 0").unwrap();
        assert_eq!(
            sunday.next_after(MON_15H),
            Some(MON_15H - 15 * 3600 + 6 * 86_400)
        );
        // First of the month in March only.
        let march = Cron::parse("0 6 1 3 *").unwrap();
        let t = march.next_after(MON_15H).unwrap();
        let dt = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
        assert_eq!(
            (dt.year(), dt.month() as u8, dt.day(), dt.hour()),
            (2027, 3, 1, 6)
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in [
            "* * * *",
            "61 * * * *",
            "*/0 * * * *",
            "a * * * *",
            "5-1 * * * *",
        ] {
            let err = Cron::parse(bad).unwrap_err().to_string();
            assert!(err.contains("cron"), "{bad}: {err}");
        }
    }
}
