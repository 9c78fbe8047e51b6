//! Incremental loads (`[general] strategy = append | merge`): where a run starts, read
//! from the target itself (no state file), and the filter that reads only the rows past it.
//!
//! The start is the largest `incremental_key` the target holds. `append` reads the rows
//! above it; `merge` reads the rows at or above it (less `incremental_lookback`) and
//! replaces the target's rows that share their primary key. Every comparison is exact:
//! integers as integers, DATE/DATETIME as MySQL compares them, TIMESTAMP as instants (both
//! targets hold TIMESTAMP in UTC).

pub mod decide;

use crate::transform::{SourceColumn, SqlType};
use chrono::{NaiveDate, NaiveDateTime};
use std::fmt;
use std::time::Duration;

/// Where a query wants the start value: `WHERE updated_at >= {incremental_value}`.
pub const PLACEHOLDER: &str = "{incremental_value}";

/// `[general] strategy`, `incremental_key` and `incremental_lookback`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incremental {
    /// `merge` (true) or `append`.
    pub merge: bool,
    pub key: String,
    pub lookback: Lookback,
    /// `incremental_lookback` as written, for messages.
    pub lookback_text: String,
}

impl Incremental {
    pub fn strategy(&self) -> &'static str {
        if self.merge {
            "merge"
        } else {
            "append"
        }
    }
}

/// How far below the target's maximum a merge reads again (rows that commit late).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookback {
    None,
    /// For an integer key: this many values.
    Steps(u64),
    /// For a date or time key: this long.
    Span(Duration),
}

impl fmt::Display for Lookback {
    /// As the setting would be written: `0`, `500`, `2h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookback::None => write!(f, "0"),
            Lookback::Steps(n) => write!(f, "{n}"),
            Lookback::Span(d) => {
                let s = d.as_secs();
                match [(86_400, "d"), (3600, "h"), (60, "m")]
                    .into_iter()
                    .find(|(unit, _)| s % unit == 0 && s > 0)
                {
                    Some((unit, name)) => write!(f, "{}{name}", s / unit),
                    None => write!(f, "{s}s"),
                }
            }
        }
    }
}

impl Lookback {
    /// `0`, a whole number (integer keys) or an age with units (`2h`, `1d`, date keys).
    pub fn parse(s: &str) -> Option<Lookback> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return Some(if n == 0 {
                Lookback::None
            } else {
                Lookback::Steps(n)
            });
        }
        crate::config::parse_age(s).map(Lookback::Span)
    }

    /// Refuses a lookback of the other kind than the key.
    pub fn fits(&self, kind: KeyKind) -> Result<(), String> {
        match (self, kind) {
            (Lookback::Span(_), KeyKind::Int) => Err(
                "incremental_lookback is a time span, but incremental_key is an integer: give a \
                 number of values (e.g. 1000)"
                    .into(),
            ),
            (Lookback::Steps(_), KeyKind::Date | KeyKind::DateTime | KeyKind::Timestamp) => Err(
                "incremental_lookback is a number, but incremental_key is a date: give a span \
                 with a unit (e.g. 2h or 1d)"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

/// What a sink does with the rows once they are all in and counted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Apply {
    /// Swap them in for the whole table.
    #[default]
    Replace,
    /// Add them to the table.
    Append,
    /// Replace the table's rows that share their key (these columns), add the others.
    Merge(Vec<String>),
}

/// What an applied load changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub inserted: u64,
    /// Existing rows replaced by the source's (merge), changed or not.
    pub updated: u64,
    /// Rows whose key the source no longer has, deleted (merge, `deletes = apply`).
    pub deleted: u64,
}

/// The largest key value in the target, as the target gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetMax {
    Int(i128),
    Text(String),
}

/// The index dbsync gives the incremental key, so each run's maximum is cheap (SQLite's
/// index names are per file: the table's name keeps them apart).
pub fn key_index_name(table: &str, key: &str) -> String {
    crate::transform::derived_name(&format!("{table}_{key}"), "__dbsync_key")
}

/// What an existing target table holds, read before the source is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    pub columns: Vec<String>,
    /// Its primary key, or else its first UNIQUE key of NOT NULL columns (empty: none).
    pub primary_key: Vec<String>,
    /// `None`: the table has no rows, or only NULL keys, or it was not read (a full refresh).
    pub max: Option<TargetMax>,
    /// Whether it holds any row (with a key or not).
    pub has_rows: bool,
    /// How its primary key columns compare text, where the target says (SQLite: `BINARY`,
    /// `RTRIM`, ...); a MySQL target keeps the source's collations and says nothing.
    pub key_collations: Vec<(String, String)>,
}

/// What a run asks the source of its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartQuestions {
    pub key: String,
    /// Whether a row with this key value is still there (append by an integer key).
    pub holds: Option<i128>,
    /// Whether rows with a zero date as key are there (date keys).
    pub zero_dates: bool,
}

/// What the source tells of a run's start, for the warnings about a run that would read
/// nothing new for good.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartView {
    /// The source server's clock, in UTC.
    pub now_utc: Option<NaiveDateTime>,
    /// Whether the source still holds a row at the target's largest key.
    pub holds_max: Option<bool>,
    /// Whether the source holds rows whose key is a zero date (`0000-00-00`), which sort
    /// below every start.
    pub zero_keys: Option<bool>,
}

/// The kinds of column an incremental key may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Int,
    Date,
    DateTime,
    /// An instant: compared in UTC, whatever the source session's zone.
    Timestamp,
}

/// Whether `col` can be an incremental key: a maximum over it must order the rows as the
/// source does, and no row may hide behind a NULL.
pub fn key_kind(col: &SourceColumn) -> Result<KeyKind, String> {
    let kind = match col.ty {
        SqlType::Int { .. } | SqlType::Year => KeyKind::Int,
        SqlType::Date => KeyKind::Date,
        SqlType::DateTime { .. } => KeyKind::DateTime,
        SqlType::Timestamp { .. } => KeyKind::Timestamp,
        ref other => {
            return Err(format!(
                "`{}` is {other}: the key must be a NOT NULL integer, YEAR, DATE, DATETIME or \
                 TIMESTAMP column (a maximum over decimals or times kept as text would be wrong)",
                col.name
            ))
        }
    };
    if col.nullable {
        return Err(format!(
            "`{}` may be NULL, and rows with a NULL key would never be read: declare it NOT \
             NULL, or use COALESCE(...) AS an alias in the query and name that",
            col.name
        ));
    }
    Ok(kind)
}

/// The start value of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Bound {
    Int(i128),
    /// A date and time (UTC for TIMESTAMP keys).
    Instant(NaiveDateTime),
}

impl Bound {
    /// Reads the target's maximum as a value of `kind`.
    pub fn from_target(max: &TargetMax, kind: KeyKind) -> Result<Bound, String> {
        let unreadable = |v: &dyn fmt::Display| {
            format!("the target's largest key value {v} is not a {kind:?} value")
        };
        match (max, kind) {
            (TargetMax::Int(n), KeyKind::Int) => Ok(Bound::Int(*n)),
            (TargetMax::Text(t), KeyKind::Int) => t
                .trim()
                .parse::<i128>()
                .map(Bound::Int)
                .map_err(|_| unreadable(t)),
            (TargetMax::Text(t), _) => parse_instant(t)
                .map(Bound::Instant)
                .ok_or_else(|| unreadable(t)),
            (TargetMax::Int(n), _) => Err(unreadable(n)),
        }
    }

    /// The same, when only the target's value tells the kind (the fallback's columns are
    /// SQLite's integers and text).
    pub fn guess(max: &TargetMax) -> Result<Bound, String> {
        match max {
            TargetMax::Int(n) => Ok(Bound::Int(*n)),
            TargetMax::Text(t) => Bound::from_target(max, KeyKind::Int)
                .or_else(|_| Bound::from_target(max, KeyKind::DateTime))
                .map_err(|_| {
                    format!("the target's largest key value {t} is neither an integer nor a date")
                }),
        }
    }

    /// `lookback` below this one.
    pub fn back(self, lookback: Lookback) -> Result<Bound, String> {
        match (self, lookback) {
            (b, Lookback::None) => Ok(b),
            (Bound::Int(n), Lookback::Steps(s)) => Ok(Bound::Int(n - s as i128)),
            (Bound::Instant(t), Lookback::Span(d)) => chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| t.checked_sub_signed(d))
                .map(Bound::Instant)
                .ok_or_else(|| "incremental_lookback reaches before year 1".to_string()),
            (Bound::Int(_), l) => l.fits(KeyKind::Int).map(|()| self),
            (Bound::Instant(_), l) => l.fits(KeyKind::DateTime).map(|()| self),
        }
    }

    /// As MySQL and dbsync's SQLite files render it (6 fraction digits when it has any).
    pub fn text(&self) -> String {
        match self {
            Bound::Int(n) => n.to_string(),
            Bound::Instant(t) => instant_text(t),
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bound::Int(n) => write!(f, "{n}"),
            Bound::Instant(_) => write!(f, "'{}'", self.text()),
        }
    }
}

fn instant_text(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS` or with a fraction, as MySQL and SQLite files hold them.
pub(crate) fn parse_instant(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// The rows a run reads: those whose `column` is past `bound` (or at it, `inclusive`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub column: String,
    pub kind: KeyKind,
    pub bound: Bound,
    pub inclusive: bool,
}

impl Filter {
    pub fn op(&self) -> &'static str {
        if self.inclusive {
            ">="
        } else {
            ">"
        }
    }
}

/// True when `a` and `b` name the same columns in the same order (MySQL and SQLite compare
/// column names without case).
pub fn same_columns(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: SqlType, nullable: bool) -> SourceColumn {
        SourceColumn {
            name: "k".into(),
            ty,
            nullable,
            exact_mysql_type: None,
            collation: None,
        }
    }

    #[test]
    fn keys_must_order_and_never_be_null() {
        let int = SqlType::Int {
            bytes: 8,
            unsigned: true,
        };
        assert_eq!(key_kind(&col(int.clone(), false)), Ok(KeyKind::Int));
        assert_eq!(
            key_kind(&col(SqlType::DateTime { fsp: 6 }, false)),
            Ok(KeyKind::DateTime)
        );
        assert!(key_kind(&col(SqlType::DateTime { fsp: 0 }, true))
            .unwrap_err()
            .contains("NULL"));
        let dec = SqlType::Decimal {
            precision: 10,
            scale: 2,
            unsigned: false,
        };
        assert!(key_kind(&col(dec, false)).unwrap_err().contains("integer"));
        assert!(key_kind(&col(SqlType::Time { fsp: 0 }, false)).is_err());
    }

    #[test]
    fn bounds_read_what_targets_hold() {
        let t = TargetMax::Text("2024-03-01 10:00:00.5".into());
        let b = Bound::from_target(&t, KeyKind::DateTime).unwrap();
        assert_eq!(b.text(), "2024-03-01 10:00:00.500000");
        let d = Bound::from_target(&TargetMax::Text("2024-03-01".into()), KeyKind::Date).unwrap();
        assert_eq!(d.text(), "2024-03-01 00:00:00.000000");
        let big = TargetMax::Text("18446744073709551615".into());
        assert_eq!(
            Bound::from_target(&big, KeyKind::Int),
            Ok(Bound::Int(18446744073709551615))
        );
        assert!(Bound::from_target(&TargetMax::Int(3), KeyKind::DateTime).is_err());
        assert!(Bound::from_target(&TargetMax::Text("0000-00-00".into()), KeyKind::Date).is_err());
        assert_eq!(
            Bound::guess(&TargetMax::Text("12".into())),
            Ok(Bound::Int(12))
        );
        assert_eq!(Bound::guess(&t), Ok(b));
    }

    #[test]
    fn lookback_matches_the_key() {
        assert_eq!(Lookback::parse("0"), Some(Lookback::None));
        assert_eq!(Lookback::parse("500"), Some(Lookback::Steps(500)));
        assert_eq!(
            Lookback::parse("2h"),
            Some(Lookback::Span(Duration::from_secs(7200)))
        );
        assert_eq!(Lookback::parse("2 apples"), None);
        assert_eq!(Bound::Int(10).back(Lookback::Steps(3)), Ok(Bound::Int(7)));
        assert!(Bound::Int(10)
            .back(Lookback::Span(Duration::from_secs(1)))
            .is_err());
        let t = Bound::from_target(
            &TargetMax::Text("2024-03-01 01:00:00".into()),
            KeyKind::DateTime,
        )
        .unwrap();
        assert_eq!(
            t.back(Lookback::Span(Duration::from_secs(7200)))
                .unwrap()
                .text(),
            "2024-02-29 23:00:00.000000"
        );
        assert!(t.back(Lookback::Steps(1)).is_err());
    }
}
