//! A single DATE, DATETIME or TIMESTAMP key chunked by ranges of its position: the whole
//! seconds of the canonical value both sides hash (`TO_SECONDS` of a date or datetime, a
//! TIMESTAMP's instant), so a row falls in the same chunk on both sides whenever its key
//! reads alike there. A zero or partial date has no seconds: its position is -1, in
//! chunk 0, where no real date falls (year 1 is 31 million seconds after year 0) unless
//! a chunk spans that much.

use super::{bounds, ranges, value, Chunking, Side};
use crate::transform::temporal::civil_from_march;
use crate::transform::{quote_mysql, SourceColumn, SqlType};
use crate::verify::canon::show;

/// Whether a key's values are chunked as times.
pub fn is_time(ty: &SqlType) -> bool {
    matches!(
        ty,
        SqlType::Date | SqlType::DateTime { .. } | SqlType::Timestamp { .. }
    )
}

/// A row's position, from the canonical value both sides hash.
pub fn position(col: &SourceColumn, side: &Side) -> String {
    let v = value(col, side);
    match col.ty {
        SqlType::Timestamp { .. } => format!("COALESCE(FLOOR({v}), -1)"),
        // MariaDB's TO_SECONDS of a partial date ('2024-05-00') is NULL, MySQL 8's a
        // number: both sides must agree, whichever server each is.
        _ => {
            format!("IF(MONTH({v}) = 0 OR DAYOFMONTH({v}) = 0, -1, COALESCE(TO_SECONDS({v}), -1))")
        }
    }
}

/// The target's smallest and largest positions over its real dates (a zero date would
/// stretch the chunks over two thousand years), each read from the key's index, and the
/// condition naming those dates.
pub fn extent_of(col: &SourceColumn) -> (String, String, String) {
    let q = quote_mysql(&col.name);
    let (of, real) = match col.ty {
        SqlType::Timestamp { .. } => ("FLOOR(UNIX_TIMESTAMP", format!("{q} > 0")),
        _ => ("(TO_SECONDS", format!("{q} >= '0001-01-01'")),
    };
    (format!("{of}(MIN({q})))"), format!("{of}(MAX({q})))"), real)
}

/// `TO_SECONDS` back to a datetime literal, for a position at or after 0000-03-01.
pub fn literal(seconds: i128) -> Option<String> {
    let days = u64::try_from(seconds.div_euclid(86_400)).ok()?;
    let (y, m, d) = civil_from_march(days.checked_sub(60)?);
    let s = seconds.rem_euclid(86_400);
    Some(format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    ))
}

/// Ranges of the key's own values around the chunks `chunks` (sorted), which its index
/// serves: a DATE or DATETIME key whose chunks hold no zero date, each run of consecutive
/// chunks as one range, or past `RANGES` runs their span. None where there are none: a
/// TIMESTAMP compares as its session's local time, which a daylight-saving fold makes
/// run backwards, so its chunks are read by their positions alone.
pub fn prefilter(col: &SourceColumn, chunks: &[i128], width: i128) -> Option<String> {
    if matches!(col.ty, SqlType::Timestamp { .. }) || chunks.first().is_none_or(|c| *c <= 0) {
        return None;
    }
    // A span's other chunks are left out by the chunks' own test.
    let (ranges, _) = ranges(chunks);
    let q = quote_mysql(&col.name);
    let ranges: Option<Vec<String>> = ranges
        .into_iter()
        .map(|(first, last)| {
            // Three days early: an invalid date a server allows ('2024-02-30', under
            // ALLOW_INVALID_DATES) has the seconds of a later day ('2024-03-01') but sorts
            // before it.
            let lo = literal(bounds(first, width).0 - INVALID_DAYS * 86_400)?;
            let hi = literal(bounds(last, width).1)?;
            Some(format!("({q} BETWEEN '{lo}' AND '{hi}.999999')"))
        })
        .collect();
    Some(ranges?.join(" OR "))
}

/// A WHERE naming these keys of a DATE or DATETIME key (canonical texts, as the target
/// printed them) by their own values, which its index serves; None for any other key, or a
/// text that is no date.
pub fn key_in(chunking: &Chunking, texts: &[Vec<u8>]) -> Option<String> {
    let Chunking::Time { key, .. } = chunking else {
        return None;
    };
    if matches!(key.ty, SqlType::Timestamp { .. }) {
        return None;
    }
    let date = |v: &String| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_digit() || b" -:.".contains(&b))
    };
    let values: Vec<String> = texts.iter().map(|t| show(t)).collect();
    if !values.iter().all(date) {
        return None;
    }
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    Some(format!(
        "{} IN ({})",
        quote_mysql(&key.name),
        quoted.join(", ")
    ))
}

/// A chunk as the log shows it: its span of times (a TIMESTAMP's in UTC), chunk 0 with
/// the zero dates.
pub fn describe(key: &SourceColumn, chunk: i128, width: i128) -> String {
    let (lo, hi) = bounds(chunk, width);
    let timestamp = matches!(key.ty, SqlType::Timestamp { .. });
    let show = |s: i128| match timestamp {
        true => literal(s + UNIX_EPOCH).map(|t| t + " UTC"),
        false => literal(s),
    };
    let zero = match timestamp {
        true => "zero timestamps",
        false => "zero or partial dates",
    };
    match (chunk, show(lo.max(0)), show(hi)) {
        (0, _, None) => format!("{} {zero}", key.name),
        (0, _, Some(hi)) => format!("{} {zero}, and up to {hi}", key.name),
        (_, Some(lo), Some(hi)) => format!("{} {lo}..{hi}", key.name),
        _ => format!("{} seconds {lo}..{hi}", key.name),
    }
}

/// Days an invalid date's seconds run past its text: a 31st in a 28-day February.
const INVALID_DAYS: i128 = 3;

/// `TO_SECONDS('1970-01-01')`: a TIMESTAMP's position is counted from there.
const UNIX_EPOCH: i128 = 719_528 * 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    fn col(ty: SqlType) -> SourceColumn {
        SourceColumn {
            name: "at".into(),
            ty,
            nullable: false,
            exact_mysql_type: None,
            collation: None,
        }
    }

    #[test]
    fn positions_read_back_as_their_dates() {
        // TO_SECONDS on MariaDB 10.11: '2024-01-01 00:00:00' and '2024-01-02 00:00:00'.
        assert_eq!(literal(63_871_286_400).unwrap(), "2024-01-01 00:00:00");
        assert_eq!(
            literal(63_871_372_800 + 3_661).unwrap(),
            "2024-01-02 01:01:01"
        );
        // TO_DAYS('1970-01-01') = 719528; '0000-03-01' is day 60.
        assert_eq!(literal(719_528 * 86_400).unwrap(), "1970-01-01 00:00:00");
        assert_eq!(literal(60 * 86_400).unwrap(), "0000-03-01 00:00:00");
        assert_eq!(literal(59 * 86_400), None);
        assert_eq!(literal(-1), None);
    }

    #[test]
    fn zero_dates_chunks_are_read_by_position_alone() {
        let at = col(SqlType::DateTime { fsp: 6 });
        assert_eq!(prefilter(&at, &[0, 3], 86_400), None);
        let range = prefilter(&at, &[739_251, 739_252, 739_260], 86_400).unwrap();
        assert_eq!(
            range,
            "(`at` BETWEEN '2023-12-29 00:00:00' AND '2024-01-02 23:59:59.999999') OR \
             (`at` BETWEEN '2024-01-07 00:00:00' AND '2024-01-10 23:59:59.999999')"
        );
        let many: Vec<i128> = (0..40).map(|c| 739_251 + 2 * c).collect();
        let span = prefilter(&at, &many, 86_400).unwrap();
        assert!(!span.contains(" OR "), "{span}");
        let ts = col(SqlType::Timestamp { fsp: 0 });
        assert_eq!(prefilter(&ts, &[5, 6], 100), None);
    }
}
