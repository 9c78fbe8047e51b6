//! The SQL of a verification on MySQL, the same on the source and on the target so both
//! servers print and hash each value alike: each column's canonical value, the row's
//! text and hash (see `canon`), the chunk a row falls in, and the statements that sum
//! chunks and list the rows of the chunks that differ.

mod time;
mod unread;

pub use time::is_time;
pub use unread::{among, unread, unread_bits, unread_keys};

use crate::source::mysql::query::{self, Dialect};
use crate::source::mysql::MySqlSource;
use crate::transform::{quote_mysql, SourceColumn, SqlType, ZeroDates};

/// The name the source's query goes by in verification statements.
pub const SOURCE_ALIAS: &str = "dbsync_verify";

/// Rows a chunk aims at: small enough that a differing chunk's keys are read quickly,
/// large enough that the chunk sums of 1M rows are a few hundred lines.
pub const CHUNK_ROWS: u64 = 4096;

/// Which side a statement runs on: the source's query (its zero dates as the copy treats
/// them), or the target's table.
#[derive(Debug, Clone)]
pub enum Side {
    Source {
        query: String,
        dialect: Dialect,
        zero_dates: ZeroDates,
    },
    Target {
        table: String,
    },
}

/// How rows are grouped into chunks.
#[derive(Debug, Clone)]
pub enum Chunking {
    /// A single integer key, by ranges of `width` values (`key DIV width`).
    Range { column: String, width: i128 },
    /// A single DATE, DATETIME or TIMESTAMP key, by ranges of `width` seconds of its
    /// position (see `time`).
    Time { key: SourceColumn, width: i128 },
    /// Any other key, by a hash of its canonical text into `buckets`.
    KeyHash { columns: Vec<String>, buckets: u64 },
    /// No usable key: the rows are a multiset, grouped by their own hash.
    RowHash { buckets: u64 },
}

/// A column's value as both servers print it, before it is made bytes.
fn value(col: &SourceColumn, side: &Side) -> String {
    let q = quote_mysql(&col.name);
    let source = matches!(side, Side::Source { .. });
    let nulled = matches!(
        side,
        Side::Source {
            zero_dates: ZeroDates::Null,
            ..
        }
    );
    match col.ty {
        SqlType::Float | SqlType::Double => format!("{q} + 0e0"),
        SqlType::Bit { .. } => format!("{q} + 0"),
        SqlType::Date | SqlType::DateTime { .. } if nulled => {
            format!("IF(YEAR({q}) = 0 OR MONTH({q}) = 0 OR DAYOFMONTH({q}) = 0, NULL, {q})")
        }
        // The instant, whatever either session's time zone (see `transform::read_expr`).
        SqlType::Timestamp { .. } if nulled => {
            format!("NULLIF(COALESCE(UNIX_TIMESTAMP({q}), {q} + 0), 0)")
        }
        SqlType::Timestamp { .. } => format!("COALESCE(UNIX_TIMESTAMP({q}), {q} + 0)"),
        // Text as UTF-8 bytes: a utf8mb4 column as it is (no conversion to pay for).
        SqlType::Text { .. } | SqlType::Enum | SqlType::Set | SqlType::Json
            if col
                .collation
                .as_ref()
                .is_some_and(|k| k.charset == "utf8mb4") =>
        {
            q
        }
        SqlType::Text { .. } | SqlType::Enum | SqlType::Set | SqlType::Json => {
            format!("CONVERT({q} USING utf8mb4)")
        }
        SqlType::Null => format!("CAST({q} AS CHAR)"),
        // The target holds the WKB the copy read.
        // ST_AsBinary gives no binary string on MariaDB: in CONCAT_WS its bytes would be
        // converted as text.
        SqlType::Geometry if source => format!("CAST(ST_AsBinary({q}) AS BINARY)"),
        _ => q,
    }
}

/// A column's canonical value: its bytes, or NULL.
pub fn canonical(col: &SourceColumn, side: &Side) -> String {
    format!("CAST(({}) AS BINARY)", value(col, side))
}

/// One value of the canonical text (`LEN:BYTES` or `N`) from a canonical expression.
fn piece(e: &str) -> String {
    format!("COALESCE(CONCAT(LENGTH({e}), ':', {e}), 'N')")
}

/// The first 16 hex digits of `text`'s SHA-256 as an unsigned integer. SHA-256, not MD5:
/// MariaDB 10.11 spent 0.9 s on a million MD5s and 0.1 s on as many SHA-256s (the CPU's
/// SHA instructions), measured here on the 1M-row fixture.
fn hash_of(text: &str) -> String {
    format!("CAST(CONV(SUBSTR(SHA2({text}, 256), 1, 16), 16, 10) AS UNSIGNED)")
}

/// How a column's value is written into the servers' row text.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Form {
    /// Bytes of any value (BINARY, BLOB, WKB): their length, then the bytes.
    Bytes,
    /// UTF-8 text (`value` converts every other character set): as it is, since valid
    /// UTF-8 never holds the separator's byte (0xFF) nor the NULL mark's (0xFE).
    Text,
    /// The characters of a number, date or time: never a separator, never `N`.
    Plain,
}

fn form(ty: &SqlType) -> Form {
    match ty {
        SqlType::Binary { .. } | SqlType::Geometry => Form::Bytes,
        SqlType::Text { .. } | SqlType::Json | SqlType::Enum | SqlType::Set | SqlType::Null => {
            Form::Text
        }
        _ => Form::Plain,
    }
}

/// The row hash of the columns' text as the servers write it: `CONCAT_WS` with the byte
/// 0xFF between tokens, a text value as it is (NULL as the byte 0xFE), a binary value as
/// its byte length then its bytes (NULL as `N`), any other value as its text (NULL as
/// `N`; CONCAT_WS skips NULL itself). Unambiguous: a token ends at the first 0xFF but for
/// a binary value's bytes, whose length comes first. No length before a text either
/// (`LENGTH` and its conversion to text cost the server about 0.1 s per column and
/// million rows, measured), and each value is converted to text once.
pub fn row_hash(columns: &[SourceColumn], side: &Side) -> String {
    let mut tokens = Vec::new();
    for c in columns {
        let v = value(c, side);
        // A NOT NULL column needs no mark, but for a date or time: a zero date may be NULL
        // (on the source as `zero_dates = null` reads it, in the target's column made
        // nullable for it), and both sides must mark it alike.
        let temporal = matches!(
            c.ty,
            SqlType::Date | SqlType::DateTime { .. } | SqlType::Timestamp { .. }
        );
        let nullable = c.nullable || temporal;
        match (form(&c.ty), nullable) {
            (Form::Bytes, true) => tokens.extend([format!("IFNULL(LENGTH({v}), 'N')"), v]),
            (Form::Bytes, false) => tokens.extend([format!("LENGTH({v})"), v]),
            (Form::Text, true) => tokens.push(format!("IFNULL({v}, {NULL_TEXT})")),
            (Form::Plain, true) => tokens.push(format!("IFNULL({v}, 'N')")),
            (Form::Text | Form::Plain, false) => tokens.push(v),
        }
    }
    // The separator is binary, so the whole text is: no character set conversion, and
    // the text columns' bytes as they are.
    hash_of(&format!("CONCAT_WS({SEPARATOR}, {})", tokens.join(", ")))
}

/// Between the tokens of a row's text: a byte no UTF-8 text holds.
const SEPARATOR: &str = "CAST(X'FF' AS BINARY)";
/// A NULL text value: a byte no UTF-8 text holds.
const NULL_TEXT: &str = "CAST(X'FE' AS BINARY)";

/// Per group of 64 consecutive values of a single integer key (`key >> 6`, on the value's
/// 64 bits as two's complement; NULL for a NULL key): the group, its rows, and the values
/// it holds as the bits of one unsigned integer (`BIT_OR`). Exact, where a sum of hashes
/// is a checksum, and cheaper: no hash (0.45 s against 1.2 s for 1M keys on MariaDB
/// 10.11 here). Nothing else is computed per row: each expression added costs the server
/// about 0.03-0.06 s a million rows (measured); which of the values the merge did not
/// read is asked apart, of the few the target lacks (`unread_bits`).
pub fn key_bits(column: &str, side: &Side) -> String {
    bits_of(&side.select(&format!("{} AS k", quote_mysql(column)), None))
}

/// Per group of 64 of the values `k` that `keys` selects: the group, its rows, its bits.
fn bits_of(keys: &str) -> String {
    format!("SELECT y.k >> 6 AS c, COUNT(*), BIT_OR(1 << (y.k & 63)) FROM ({keys}) AS y GROUP BY c")
}

impl Side {
    /// The source's side: its query as the copy runs it, its zero dates as the copy reads
    /// them.
    pub fn of_source(source: &MySqlSource, zero_dates: ZeroDates) -> Side {
        let (query, dialect) = source.full_query();
        Side::Source {
            query: query.to_string(),
            dialect,
            zero_dates,
        }
    }

    /// `SELECT list FROM <the side's rows> WHERE cond`.
    fn select(&self, list: &str, cond: Option<&str>) -> String {
        let tail = cond.map(|c| format!(" WHERE {c}")).unwrap_or_default();
        match self {
            Side::Source { query, dialect, .. } => {
                // Nested in the statements that sum, group or count its rows.
                query::wrap_nested(query, *dialect, list, SOURCE_ALIAS, &tail)
            }
            Side::Target { table } => format!("SELECT {list} FROM {}{tail}", quote_mysql(table)),
        }
    }
}

impl Chunking {
    /// The key columns selected beside the hash, as `k0, k1, ...` (the integer key itself,
    /// or the canonical key values).
    fn keys(&self, columns: &[SourceColumn], side: &Side) -> Vec<String> {
        let col = |name: &str| columns.iter().find(|c| c.name == name);
        match self {
            Chunking::Range { column, .. } => vec![quote_mysql(column)],
            Chunking::Time { key, .. } => vec![canonical(key, side)],
            Chunking::KeyHash { columns: keys, .. } => keys
                .iter()
                .filter_map(|k| col(k))
                .map(|c| canonical(c, side))
                .collect(),
            Chunking::RowHash { .. } => Vec::new(),
        }
    }

    /// The chunk of a row of the inner select `y`.
    fn chunk(&self, nkeys: usize) -> String {
        match self {
            Chunking::Range { width, .. } => format!("y.k0 DIV {width}"),
            Chunking::Time { width, .. } => format!("y.p DIV {width}"),
            Chunking::KeyHash { buckets, .. } => {
                let pieces: Vec<String> = (0..nkeys).map(|i| piece(&format!("y.k{i}"))).collect();
                // A bucket needs no cryptographic hash, only the same one on both sides.
                format!("CRC32(CONCAT({})) MOD {buckets}", pieces.join(", "))
            }
            Chunking::RowHash { buckets } => format!("y.h MOD {buckets}"),
        }
    }

    /// The keys and hash of every row of `side` (restricted by `cond`), and `flag`, as `y`.
    fn inner(
        &self,
        columns: &[SourceColumn],
        side: &Side,
        cond: Option<&str>,
        flag: &str,
    ) -> (String, usize) {
        let keys = self.keys(columns, side);
        let mut list: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} AS k{i}"))
            .collect();
        if let Chunking::Time { key, .. } = self {
            list.push(format!("{} AS p", time::position(key, side)));
        }
        list.push(format!("{} AS h", row_hash(columns, side)));
        list.push(format!("{flag} AS n"));
        (side.select(&list.join(", "), cond), keys.len())
    }

    /// Each chunk's number, row count and sum of row hashes (as decimal text).
    pub fn sums(&self, columns: &[SourceColumn], side: &Side) -> String {
        let (inner, n) = self.inner(columns, side, None, "0");
        format!(
            "SELECT {} AS c, COUNT(*), CAST(SUM(y.h) AS CHAR) FROM ({inner}) AS y GROUP BY c",
            self.chunk(n)
        )
    }

    /// The rows of `chunks`: their keys, hash and `flag` (see `above`); without a key,
    /// each hash and its count.
    pub fn rows(
        &self,
        columns: &[SourceColumn],
        side: &Side,
        chunks: &[i128],
        flag: &str,
    ) -> String {
        let list: Vec<String> = chunks.iter().map(i128::to_string).collect();
        let cond = match self {
            // The key's own ranges, which an index on it serves.
            Chunking::Range { column, width } => {
                Some(chunks_cond(&quote_mysql(column), chunks, *width))
            }
            // Ranges of the key's values around the chunks, where it has them; the
            // chunks' own test follows.
            Chunking::Time { key, width } => time::prefilter(key, chunks, *width),
            _ => None,
        };
        let (inner, n) = self.inner(columns, side, cond.as_deref(), flag);
        let keys: Vec<String> = (0..n).map(|i| format!("y.k{i}")).collect();
        let chunk = self.chunk(n);
        match self {
            Chunking::RowHash { .. } => format!(
                "SELECT y.h, COUNT(*) FROM ({inner}) AS y WHERE {chunk} IN ({}) GROUP BY y.h",
                list.join(", ")
            ),
            _ => format!(
                "SELECT {}, y.h, y.n FROM ({inner}) AS y WHERE {chunk} IN ({})",
                keys.join(", "),
                list.join(", ")
            ),
        }
    }

    /// A WHERE matching the rows of these keys (canonical key texts, as `rows` read them)
    /// on the target: a date or datetime key by its values (its index serves), any other
    /// by its canonical text. (An integer key's are named by `key_values`' numbers.)
    pub fn key_in(&self, keys: &[SourceColumn], side: &Side, texts: &[Vec<u8>]) -> String {
        if let Some(cond) = time::key_in(self, texts) {
            return cond;
        }
        let pieces: Vec<String> = keys.iter().map(|c| piece(&canonical(c, side))).collect();
        let hex: Vec<String> = texts
            .iter()
            .map(|t| {
                format!(
                    "X'{}'",
                    t.iter().map(|b| format!("{b:02x}")).collect::<String>()
                )
            })
            .collect();
        format!("CONCAT({}) IN ({})", pieces.join(", "), hex.join(", "))
    }

    /// The values of a single integer key (range chunks only) in `chunks`, each with `flag`.
    pub fn key_values(&self, side: &Side, chunks: &[i128], flag: &str) -> Option<String> {
        let Chunking::Range { column, width } = self else {
            return None;
        };
        let q = quote_mysql(column);
        let list = format!("{q}, {flag}");
        Some(side.select(&list, Some(&chunks_cond(&q, chunks, *width))))
    }

    /// A chunk as the log shows it.
    pub fn describe(&self, chunk: i128) -> String {
        match self {
            Chunking::Range { column, width } => {
                let (lo, hi) = bounds(chunk, *width);
                format!("{column} {lo}..{hi}")
            }
            Chunking::Time { key, width } => time::describe(key, chunk, *width),
            Chunking::KeyHash { buckets, .. } | Chunking::RowHash { buckets } => {
                format!("hash bucket {chunk} of {buckets}")
            }
        }
    }
}

/// The key values of a chunk of `key DIV width` (truncating: chunk 0 spans both signs).
/// Saturating: a chunk that is no number (a NULL key's, read as i128::MIN) must not
/// overflow.
fn bounds(chunk: i128, width: i128) -> (i128, i128) {
    let at = chunk.saturating_mul(width);
    match chunk {
        0 => (-(width - 1), width - 1),
        c if c > 0 => (at, at.saturating_add(width - 1)),
        _ => (at.saturating_sub(width - 1), at),
    }
}

/// The ranges of chunks a statement names for `chunks` (sorted), first and last chunk of
/// each: each run of consecutive chunks, or past `RANGES` runs the span of them all (true
/// then: the span holds chunks that are not in the list).
fn ranges(chunks: &[i128]) -> (Vec<(i128, i128)>, bool) {
    let mut runs: Vec<(i128, i128)> = Vec::new();
    for &c in chunks {
        match runs.last_mut() {
            Some(run) if run.1.checked_add(1) == Some(c) => run.1 = c,
            _ => runs.push((c, c)),
        }
    }
    match (runs.first(), runs.last()) {
        (Some(first), Some(last)) if runs.len() > RANGES => (vec![(first.0, last.1)], true),
        _ => (runs, false),
    }
}

/// Runs of consecutive chunks a statement names as ranges of the key, at most.
const RANGES: usize = 16;

/// A WHERE for the rows of the range chunks `chunks` (sorted), which an index on the key
/// serves: each run of consecutive chunks as one range; past `RANGES` runs, the span of
/// them all with each row's chunk looked up in the list. The server tests every range
/// of an OR on every row it reads: 253 ranges over 1M keys took 3.0 s here, against
/// 0.3 s for reading the keys alone.
fn chunks_cond(q: &str, chunks: &[i128], width: i128) -> String {
    let (ranges, spanned) = ranges(chunks);
    let ranges: Vec<String> = ranges
        .into_iter()
        .map(|(first, last)| {
            let (lo, hi) = (bounds(first, width).0, bounds(last, width).1);
            format!("({q} BETWEEN {lo} AND {hi})")
        })
        .collect();
    match spanned {
        true => {
            let list: Vec<String> = chunks.iter().map(i128::to_string).collect();
            format!("{} AND {q} DIV {width} IN ({})", ranges[0], list.join(", "))
        }
        false => ranges.join(" OR "),
    }
}

/// An incremental key's value as both servers compare it (TIMESTAMP as its instant).
fn newer_value(col: &SourceColumn) -> String {
    let q = quote_mysql(&col.name);
    match col.ty {
        SqlType::Timestamp { .. } => format!("UNIX_TIMESTAMP({q})"),
        _ => q,
    }
}

/// The target's largest value of an incremental key, as text.
pub fn largest(col: &SourceColumn, side: &Side) -> String {
    side.select(&format!("CAST(MAX({}) AS CHAR)", newer_value(col)), None)
}

/// Whether a source row's incremental key is above the target's largest `max`: a row
/// written at the source after the load. None is when the target holds no key: an empty
/// (or emptied) target excuses nothing, or it would pass for equal to any source.
pub fn above(col: &SourceColumn, max: Option<&str>) -> String {
    match max {
        None => "0".into(),
        Some(m) if m.parse::<f64>().is_ok() => format!("({} > {m})", newer_value(col)),
        Some(m) => format!(
            "({} > {})",
            newer_value(col),
            crate::transform::mysql_literal(m)
        ),
    }
}

/// About how many rows the target table holds (the server's estimate: it only sizes the
/// chunks) and, for an integer key, its smallest and largest values (read from its index):
/// no scan of the table.
pub fn extent(table: &str, key: Option<&SourceColumn>) -> String {
    let rows = format!(
        "(SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() \
         AND TABLE_NAME = {})",
        crate::transform::mysql_literal(table)
    );
    match key {
        Some(k) if is_time(&k.ty) => {
            let (lo, hi, real) = time::extent_of(k);
            format!(
                "SELECT {rows}, CAST({lo} AS CHAR), CAST({hi} AS CHAR) FROM {} WHERE {real}",
                quote_mysql(table)
            )
        }
        Some(k) => {
            let q = quote_mysql(&k.name);
            format!(
                "SELECT {rows}, CAST(MIN({q}) AS CHAR), CAST(MAX({q}) AS CHAR) FROM {}",
                quote_mysql(table)
            )
        }
        // FROM the table all the same: a missing one says so here.
        None => format!(
            "SELECT {rows}, NULL, NULL FROM {} LIMIT 1",
            quote_mysql(table)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: SqlType) -> SourceColumn {
        SourceColumn {
            name: name.into(),
            ty,
            nullable: true,
            exact_mysql_type: None,
            collation: None,
        }
    }

    #[test]
    fn ranges_cover_every_key_once() {
        assert_eq!(bounds(0, 10), (-9, 9));
        assert_eq!(bounds(1, 10), (10, 19));
        assert_eq!(bounds(-1, 10), (-19, -10));
        // -19 DIV 10 = -1, 19 DIV 10 = 1, as MySQL truncates.
        assert_eq!(-19 / 10, -1);
    }

    #[test]
    fn consecutive_chunks_are_one_range_and_many_are_looked_up() {
        assert_eq!(
            chunks_cond("`id`", &[-1, 0, 1, 5], 10),
            "(`id` BETWEEN -19 AND 19) OR (`id` BETWEEN 50 AND 59)"
        );
        let spread: Vec<i128> = (0..40).map(|c| c * 2).collect();
        let cond = chunks_cond("`id`", &spread, 10);
        assert!(
            cond.starts_with("(`id` BETWEEN -9 AND 789) AND `id` DIV 10 IN (0, 2, 4, "),
            "{cond}"
        );
    }

    #[test]
    fn a_text_is_delimited_and_bytes_have_their_length() {
        let mut strict = col(
            "n",
            SqlType::Int {
                bytes: 4,
                unsigned: false,
            },
        );
        strict.nullable = false;
        let text = SqlType::Text {
            max_chars: 9,
            fixed: false,
        };
        let bytes = SqlType::Binary {
            max_bytes: 9,
            fixed: false,
        };
        let cols = [
            strict,
            col("t", text),
            col("b", bytes),
            col("d", SqlType::Date),
        ];
        let table = Side::Target { table: "x".into() };
        let h = row_hash(&cols, &table);
        let want = "CONCAT_WS(CAST(X'FF' AS BINARY), `n`, \
                    IFNULL(CONVERT(`t` USING utf8mb4), CAST(X'FE' AS BINARY)), \
                    IFNULL(LENGTH(`b`), 'N'), `b`, IFNULL(`d`, 'N'))";
        assert!(h.contains(want), "{h}");
    }

    #[test]
    fn identifiers_are_quoted_and_geometry_is_wkb_on_the_source() {
        let c = col("g`x", SqlType::Geometry);
        let table = Side::Target {
            table: "t`1".into(),
        };
        let source = Side::Source {
            query: "SELECT 1".into(),
            dialect: Dialect::default(),
            zero_dates: ZeroDates::Keep,
        };
        assert_eq!(canonical(&c, &table), "CAST((`g``x`) AS BINARY)");
        assert_eq!(
            canonical(&c, &source),
            "CAST((CAST(ST_AsBinary(`g``x`) AS BINARY)) AS BINARY)"
        );
        let sums = Chunking::RowHash { buckets: 3 }.sums(&[c], &table);
        assert!(sums.contains("FROM `t``1`"), "{sums}");
    }
}
