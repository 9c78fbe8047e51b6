//! What the values of a key chunked by range count in: an integer key as itself, a
//! temporal key as the integer both servers compute from it (days, or microseconds), so
//! its chunks are ranges of dates and times that an index orders like the key.

use crate::transform::SqlType;

/// A range key's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// An integer key, as itself.
    Int,
    /// A DATE, in days (`TO_DAYS`).
    Days,
    /// A DATETIME, in microseconds from year 0 (`TO_SECONDS`, no time zone involved).
    Micros,
    /// A TIMESTAMP, in microseconds of its instant since 1970 (whatever each session's
    /// time zone).
    Instant,
}

/// `TO_DAYS` of 0001-01-01, the first day chrono counts.
const DAYS_TO_CE: i128 = 366;

impl Scale {
    /// The unit of a key column's type, when it is chunked by range.
    pub fn of(ty: &SqlType) -> Option<Scale> {
        match ty {
            SqlType::Int { .. } => Some(Scale::Int),
            SqlType::Date => Some(Scale::Days),
            SqlType::DateTime { .. } => Some(Scale::Micros),
            SqlType::Timestamp { .. } => Some(Scale::Instant),
            _ => None,
        }
    }

    /// The integer of the key `q` (a quoted column), in SQL both servers compute alike.
    pub fn position(self, q: &str) -> String {
        match self {
            Scale::Int => q.to_string(),
            Scale::Days => format!("TO_DAYS({q})"),
            Scale::Micros => format!("(TO_SECONDS({q}) * 1000000 + MICROSECOND({q}))"),
            Scale::Instant => format!("CAST(UNIX_TIMESTAMP({q}) * 1000000 AS SIGNED)"),
        }
    }

    /// A position as the log shows it: the number, or the date and time it stands for.
    pub fn show(self, p: i128) -> String {
        let day = |days: i128| {
            days.checked_sub(DAYS_TO_CE - 1)
                .and_then(|d| i32::try_from(d).ok())
                .and_then(chrono::NaiveDate::from_num_days_from_ce_opt)
        };
        let shown = match self {
            Scale::Int => None,
            Scale::Days => day(p).map(|d| d.to_string()),
            Scale::Micros => {
                let (secs, micros) = (p.div_euclid(1_000_000), p.rem_euclid(1_000_000));
                day(secs.div_euclid(86_400)).and_then(|d| {
                    let s = u32::try_from(secs.rem_euclid(86_400)).ok()?;
                    let t = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                        s,
                        u32::try_from(micros).ok()? * 1000,
                    )?;
                    Some(format!("{} {}", d, t.format("%H:%M:%S%.6f")))
                })
            }
            Scale::Instant => i64::try_from(p)
                .ok()
                .and_then(chrono::DateTime::from_timestamp_micros)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f UTC").to_string()),
        };
        shown.unwrap_or_else(|| p.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_show_as_the_dates_and_times_they_stand_for() {
        // TO_DAYS('2024-03-01') = 739311; TO_SECONDS('2024-03-01 10:20:30') = 63876507630.
        assert_eq!(Scale::Days.show(739311), "2024-03-01");
        assert_eq!(
            Scale::Micros.show(63_876_507_630 * 1_000_000 + 5),
            "2024-03-01 10:20:30.000005"
        );
        assert_eq!(
            Scale::Instant.show(1_709_288_430_000_000),
            "2024-03-01 10:20:30.000000 UTC"
        );
        assert_eq!(Scale::Int.show(-7), "-7");
        assert_eq!(Scale::Days.show(i128::MIN), i128::MIN.to_string());
    }
}
