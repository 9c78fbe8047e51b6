//! Partitioned reads: the query split into ranges of an integer column, read on several
//! connections at once (`[external_db] partition_column`, `partitions`). Each partition
//! runs the query anew, so a query whose rows may differ between runs is refused.

use super::query::{self, Dialect};
use super::SourceError;
use crate::plan::Partitioning;
use crate::transform::{quote_mysql, SourceColumn, SqlType};
use mysql::prelude::Queryable;
use mysql::Conn;

/// The read queries: `read_query` (the user's `query` as read) split into ranges of the
/// partition column, or as it is.
pub fn split(
    conn: &mut Conn,
    dialect: Dialect,
    query: &str,
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
    if let Some((token, why)) = unstable(query, dialect) {
        return Err(refuse(format!(
            "the query uses {token}, {}; each partition runs the query anew, so rows could be \
             lost or read twice. Make the query deterministic, or read it in one piece \
             (remove partitions and partition_column)",
            why.why()
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

/// Why a query's rows may differ between two runs of it; a partitioned read runs it once
/// per partition, so it could lose or repeat rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unstable {
    /// Picks or numbers rows in an order ties leave open (LIMIT, ROW_NUMBER()).
    Order,
    /// Reads the clock, which moves on between the partitions' statements.
    Clock,
    /// Gives a new value on every call (RAND(), UUID(), sequences).
    Random,
    /// Belongs to one connection, and each partition has its own.
    Session,
}

impl Unstable {
    pub fn why(self) -> &'static str {
        match self {
            Unstable::Order => "which may pick or number the rows differently on each run",
            Unstable::Clock => "whose value moves on between the partitions' statements",
            Unstable::Random => "which gives a new value each time it runs",
            Unstable::Session => "which belongs to one connection, and each partition has its own",
        }
    }
}

/// Words that make a query unstable wherever they stand (reserved words, never a bare name).
const UNSTABLE_WORDS: [(&str, Unstable); 10] = [
    ("LIMIT", Unstable::Order),
    ("FETCH", Unstable::Order),
    ("CURRENT_DATE", Unstable::Clock),
    ("CURRENT_TIME", Unstable::Clock),
    ("CURRENT_TIMESTAMP", Unstable::Clock),
    ("LOCALTIME", Unstable::Clock),
    ("LOCALTIMESTAMP", Unstable::Clock),
    ("UTC_DATE", Unstable::Clock),
    ("UTC_TIME", Unstable::Clock),
    ("UTC_TIMESTAMP", Unstable::Clock),
];

/// Functions that make a query unstable when called (followed by `(`).
const UNSTABLE_CALLS: [(&str, Unstable); 24] = [
    ("ROWNUM", Unstable::Order),
    ("ROW_NUMBER", Unstable::Order),
    ("NTILE", Unstable::Order),
    ("LAG", Unstable::Order),
    ("LEAD", Unstable::Order),
    ("FIRST_VALUE", Unstable::Order),
    ("LAST_VALUE", Unstable::Order),
    ("NTH_VALUE", Unstable::Order),
    ("NOW", Unstable::Clock),
    ("SYSDATE", Unstable::Clock),
    ("CURDATE", Unstable::Clock),
    ("CURTIME", Unstable::Clock),
    ("RAND", Unstable::Random),
    ("UUID", Unstable::Random),
    ("UUID_SHORT", Unstable::Random),
    ("SYS_GUID", Unstable::Random),
    ("RANDOM_BYTES", Unstable::Random),
    ("NEXTVAL", Unstable::Random),
    ("LASTVAL", Unstable::Random),
    ("SETVAL", Unstable::Random),
    ("LAST_INSERT_ID", Unstable::Session),
    ("FOUND_ROWS", Unstable::Session),
    ("ROW_COUNT", Unstable::Session),
    ("CONNECTION_ID", Unstable::Session),
];

/// The first token of `q` (outside strings and comments; inside executable comments, which
/// run) that may make two runs of it differ, as it reads in the message, and why. A token
/// check, so it errs on the side of refusing: a LIMIT in a subquery counts too. Stored
/// functions are not looked into.
fn unstable(q: &str, d: Dialect) -> Option<(String, Unstable)> {
    let toks = query::significant(q, d);
    for (i, t) in toks.iter().enumerate() {
        let next = |k: usize| toks.get(i + k).copied();
        if t.is_punct(':') && next(1).is_some_and(|n| n.is_punct('=')) {
            // `@n := @n + 1`, the row-numbering idiom.
            return Some((":=".into(), Unstable::Order));
        }
        if t.is_punct('@')
            && next(1).is_some_and(|n| n.is_punct('@'))
            && next(2).is_some_and(|n| n.is_word("timestamp"))
        {
            // The clock read as a system variable.
            return Some(("@@timestamp".into(), Unstable::Clock));
        }
        // A name after a dot is a column or table (`t.limit`), not a keyword.
        if !t.is_bare_word() || (i > 0 && toks[i - 1].is_punct('.')) {
            continue;
        }
        let word = t.text.to_ascii_uppercase();
        let called = next(1).is_some_and(|n| n.is_punct('('));
        if let Some((_, why)) = UNSTABLE_WORDS.iter().find(|(w, _)| *w == word) {
            return Some((word, *why));
        }
        if let Some((_, why)) = UNSTABLE_CALLS.iter().find(|(w, _)| *w == word) {
            if called {
                return Some((format!("{word}()"), *why));
            }
        }
        // UNIX_TIMESTAMP(col) is a value of the row; UNIX_TIMESTAMP() is the clock.
        if word == "UNIX_TIMESTAMP" && called && next(2).is_some_and(|n| n.is_punct(')')) {
            return Some(("UNIX_TIMESTAMP()".into(), Unstable::Clock));
        }
        // MariaDB's sequences: NEXT VALUE FOR s, PREVIOUS VALUE FOR s.
        if (word == "NEXT" || word == "PREVIOUS") && next(1).is_some_and(|n| n.is_word("VALUE")) {
            return Some((format!("{word} VALUE FOR"), Unstable::Random));
        }
    }
    None
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

    #[test]
    fn unstable_tokens_are_found_outside_strings_and_comments() {
        let found = |q: &str| unstable(q, Dialect::default()).map(|(t, _)| t);
        assert_eq!(
            found("SELECT * FROM t ORDER BY id LIMIT 10"),
            Some("LIMIT".into())
        );
        assert_eq!(
            found("SELECT * FROM t WHERE d > now ()"),
            Some("NOW()".into())
        );
        assert_eq!(found("SELECT *, Rand() r FROM t"), Some("RAND()".into()));
        assert_eq!(
            found("SELECT CURRENT_TIMESTAMP"),
            Some("CURRENT_TIMESTAMP".into())
        );
        assert_eq!(
            found("SELECT * FROM t WHERE ts < FROM_UNIXTIME(@@timestamp)"),
            Some("@@timestamp".into())
        );
        assert_eq!(
            found("SELECT UNIX_TIMESTAMP( )"),
            Some("UNIX_TIMESTAMP()".into())
        );
        assert_eq!(found("SELECT @n := @n + 1 AS k FROM t"), Some(":=".into()));
        assert_eq!(
            found("SELECT NEXT VALUE FOR s"),
            Some("NEXT VALUE FOR".into())
        );
        assert_eq!(found("SELECT /*!40001 UUID() */ 1"), Some("UUID()".into()));
        for stable in [
            "SELECT 'LIMIT 1', \"NOW()\" FROM t -- LIMIT 2\n# RAND()\n/* UUID() */",
            "SELECT t.limit, `rand`(x), now, UNIX_TIMESTAMP(ts), `LIMIT` FROM t",
            "SELECT a FROM t WHERE a = 'x\\' LIMIT'",
        ] {
            assert_eq!(found(stable), None, "{stable}");
        }
    }
}
