//! An incremental run's filter as MySQL reads it: exact on the key's values, and able to
//! use an index on the key.

use crate::incremental::{Bound, Filter, KeyKind};
use crate::transform::quote_mysql;
use chrono::NaiveDateTime;

/// Margin below a TIMESTAMP start for the index range: a zone's clock may repeat an
/// hour (or two) when it goes back, so the server's local rendering of an instant is not
/// monotonic there. The exact comparison on the instant applies on top.
const FOLD_MARGIN_SECS: i64 = 3 * 3600;

/// A MySQL condition on `qualifier`.`column`: exact, and able to use an index on it.
pub fn condition(f: &Filter, qualifier: &str) -> String {
    let col = format!("`{qualifier}`.{}", quote_mysql(&f.column));
    let op = f.op();
    match (f.kind, f.bound) {
        (KeyKind::Timestamp, Bound::Instant(t)) => {
            let (secs, micros) = epoch(&t);
            let exact = format!("UNIX_TIMESTAMP({col}) {op} {secs}.{micros:06}");
            if secs >= FOLD_MARGIN_SECS {
                format!(
                    "{col} >= FROM_UNIXTIME({}) AND {exact}",
                    secs - FOLD_MARGIN_SECS
                )
            } else {
                exact
            }
        }
        (_, b) => format!("{col} {op} {b}"),
    }
}

/// What `{incremental_value}` in the user's query becomes. For TIMESTAMP keys it stands
/// a few hours below the start (see `FOLD_MARGIN_SECS`); the exact condition is applied
/// on top in any case.
pub fn placeholder_value(f: &Filter) -> String {
    match (f.kind, f.bound) {
        (KeyKind::Timestamp, Bound::Instant(t)) => {
            let (secs, _) = epoch(&t);
            format!("FROM_UNIXTIME({})", (secs - FOLD_MARGIN_SECS).max(0))
        }
        (_, b) => b.to_string(),
    }
}

/// What `{incremental_value}` becomes in a full read: a value below every key.
pub fn placeholder_minimum(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Int => "-9223372036854775808",
        KeyKind::Date | KeyKind::DateTime | KeyKind::Timestamp => "'0000-00-00 00:00:00'",
    }
}

fn epoch(t: &NaiveDateTime) -> (i64, u32) {
    let u = t.and_utc();
    (u.timestamp(), u.timestamp_subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incremental::TargetMax;

    #[test]
    fn conditions_are_exact_and_indexable() {
        let at = Bound::from_target(
            &TargetMax::Text("2024-03-01 10:00:00.25".into()),
            KeyKind::Timestamp,
        )
        .unwrap();
        let f = Filter {
            column: "ts".into(),
            kind: KeyKind::Timestamp,
            bound: at,
            inclusive: true,
        };
        assert_eq!(
            condition(&f, "s"),
            "`s`.`ts` >= FROM_UNIXTIME(1709276400) AND UNIX_TIMESTAMP(`s`.`ts`) >= 1709287200.250000"
        );
        assert_eq!(placeholder_value(&f), "FROM_UNIXTIME(1709276400)");
        let f = Filter {
            kind: KeyKind::DateTime,
            inclusive: false,
            ..f
        };
        assert_eq!(
            condition(&f, "s"),
            "`s`.`ts` > '2024-03-01 10:00:00.250000'"
        );
        assert_eq!(
            crate::source::sqlite::condition(&f),
            "substr(\"ts\" || substr(' 00:00:00.000000', length(\"ts\") - 9), 1, 26) > '2024-03-01 10:00:00.250000'"
        );
        let f = Filter {
            column: "id".into(),
            kind: KeyKind::Int,
            bound: Bound::Int(9223372036854775808),
            inclusive: false,
        };
        assert!(crate::source::sqlite::condition(&f)
            .contains("length(\"id\") = 19 AND \"id\" > '9223372036854775808'"));
    }
}
