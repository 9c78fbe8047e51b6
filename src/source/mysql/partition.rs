//! Partitioned reads: the query split into ranges of an integer column, read on several
//! connections at once (`[external_db] partition_column`, `partitions`).

use super::query::{self, Dialect};
use super::SourceError;
use crate::transform::{quote_mysql, SourceColumn, SqlType};
use mysql::prelude::Queryable;
use mysql::Conn;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitioning {
    pub column: String,
    pub partitions: usize,
}

/// The read queries: `read_query` split into ranges of the partition column, or as it is.
pub fn split(
    conn: &mut Conn,
    dialect: Dialect,
    read_query: &str,
    columns: &[SourceColumn],
    p: &Partitioning,
) -> Result<Vec<String>, SourceError> {
    if p.partitions <= 1 {
        return Ok(vec![read_query.to_string()]);
    }
    let refuse = |why: String| SourceError::Partition {
        column: p.column.clone(),
        why,
    };
    let col = columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(&p.column))
        .ok_or_else(|| refuse("the query returns no such column".into()))?;
    if !matches!(col.ty, SqlType::Int { .. } | SqlType::Year) {
        return Err(refuse(format!(
            "it is {}, and only integer columns can be split into ranges",
            col.ty
        )));
    }
    let q = quote_mysql(&col.name);
    // Text, so BIGINT UNSIGNED bounds arrive whole; i128 holds every integer type.
    let bounds: Option<(Option<String>, Option<String>)> = conn
        .query_first(query::wrap(
            read_query,
            dialect,
            &format!("CAST(MIN({q}) AS CHAR), CAST(MAX({q}) AS CHAR)"),
            "dbsync_bounds",
            "",
        ))
        .map_err(|e| refuse(format!("finding its range failed: {e}")))?;
    let parse = |s: Option<String>| s.and_then(|s| s.parse::<i128>().ok());
    let (Some(lo), Some(hi)) = bounds
        .map(|(a, b)| (parse(a), parse(b)))
        .unwrap_or((None, None))
    else {
        // No rows, or only NULLs: one read does it.
        return Ok(vec![read_query.to_string()]);
    };
    Ok(ranges(lo, hi, p.partitions)
        .into_iter()
        .enumerate()
        .map(|(i, (from, to))| {
            // NULLs (which no range holds) go with the first range, so no row is lost.
            let nulls = if i == 0 {
                format!(" OR {q} IS NULL")
            } else {
                String::new()
            };
            let range = format!(" WHERE ({q} >= {from} AND {q} <= {to}{nulls})");
            query::wrap(read_query, dialect, "*", "dbsync_part", &range)
        })
        .collect())
}

/// `n` contiguous, inclusive ranges covering `lo..=hi` (fewer when the span is short).
pub fn ranges(lo: i128, hi: i128, n: usize) -> Vec<(i128, i128)> {
    let span = hi - lo + 1;
    let n = (n as i128).min(span).max(1);
    let step = span / n;
    (0..n)
        .map(|i| {
            let from = lo + i * step;
            let to = if i == n - 1 { hi } else { from + step - 1 };
            (from, to)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_every_value_once() {
        for (lo, hi, n) in [
            (1, 1_000_000, 4),
            (-5, 5, 3),
            (7, 7, 4),
            (0, 2, 8),
            (i64::MIN as i128, i64::MAX as i128, 2),
            (0, u64::MAX as i128, 3),
        ] {
            let r = ranges(lo, hi, n);
            assert_eq!(r.first().unwrap().0, lo);
            assert_eq!(r.last().unwrap().1, hi);
            for w in r.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0, "{r:?}");
            }
            assert!(r.len() <= n);
        }
    }
}
