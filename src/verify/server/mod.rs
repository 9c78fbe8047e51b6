//! Verification into a MySQL target: both servers sum their rows' hashes per chunk of the
//! key, at once, each on its own connection; only the chunks whose count or sum differ
//! are read again, key and hash, on both sides.

mod gone;

pub(super) use gone::vanished;

use super::canon::{push_value, show};
use super::sql::{self, Chunking, Side, CHUNK_ROWS};
use super::{Tally, Verdict, VerifyError};
use crate::connect::Session;
use crate::plan::Plan;
use crate::source::mysql::MySqlSource;
use crate::source::Source;
use crate::target::MySqlTarget;
use crate::transform::{quote_mysql, SourceColumn, SqlType};
use mysql::prelude::Queryable;
use std::collections::HashMap;
use std::time::Duration;

/// Chunks named in one statement that reads their rows.
const CHUNKS_PER_READ: usize = 256;

/// Per chunk: rows and the sum of their hashes modulo 2^64.
type Sums = HashMap<i128, (u64, u64)>;

/// One side: its connection, what it reads, and its name in errors.
struct Server {
    session: Session,
    side: Side,
    name: &'static str,
    timeout: Duration,
    /// What `rows` selects beside each row: whether it is newer than the load (the
    /// source's side, for an incremental table), or (a merge's deletes) not read by the
    /// merge; `0` otherwise.
    flag: String,
    /// A key of several rows is flagged when all of them are (a merge's unread rows: one
    /// read row brings the key), not when any is (a row newer than the load).
    flag_all: bool,
}

impl Server {
    fn run<T>(
        &mut self,
        sql: &str,
        f: impl FnOnce(mysql::QueryResult<'_, '_, '_, mysql::Text>) -> mysql::Result<T>,
    ) -> Result<T, VerifyError> {
        log::debug!("verify on the {}: {sql}", self.name);
        let name = self.name;
        self.session
            .with_timeout(self.timeout, |c| c.query_iter(sql).and_then(f))
            .map_err(|e| match e {
                mysql::Error::MySqlError(ref m) if m.code == 1146 && name == "target" => {
                    VerifyError::NoTarget(format!("the target table ({})", m.message))
                }
                e => VerifyError::Query {
                    side: name,
                    message: e.to_string(),
                },
            })
    }

    fn sums(&mut self, chunking: &Chunking, columns: &[SourceColumn]) -> Result<Sums, VerifyError> {
        let sql = chunking.sums(columns, &self.side);
        self.run(&sql, |rows| {
            let mut sums = Sums::new();
            for row in rows {
                let row = row?;
                let c = text(&row, 0)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(i128::MIN);
                let n = text(&row, 1).and_then(|n| n.parse().ok()).unwrap_or(0);
                let sum: u128 = text(&row, 2).and_then(|s| s.parse().ok()).unwrap_or(0);
                sums.insert(c, (n, sum as u64));
            }
            Ok(sums)
        })
    }

    /// The rows of `chunks`: canonical key text → row hash.
    fn keyed(
        &mut self,
        chunking: &Chunking,
        columns: &[SourceColumn],
        chunks: &[i128],
    ) -> Result<HashMap<Vec<u8>, (u64, bool)>, VerifyError> {
        let sql = chunking.rows(columns, &self.side, chunks, &self.flag);
        let all = self.flag_all;
        self.run(&sql, |rows| {
            let mut out = HashMap::new();
            for row in rows {
                let row = row?;
                let n = row.len() - 2;
                let mut key = Vec::new();
                for i in 0..n {
                    push_value(&mut key, bytes(&row, i));
                }
                let h = text(&row, n).and_then(|h| h.parse().ok()).unwrap_or(0);
                let flag = text(&row, n + 1) == Some("1");
                out.entry(key)
                    .and_modify(|e: &mut (u64, bool)| {
                        *e = (h, if all { e.1 && flag } else { e.1 || flag })
                    })
                    .or_insert((h, flag));
            }
            Ok(out)
        })
    }

    /// The first value of the first row a statement returns, as text.
    fn first(&mut self, sql: &str) -> Result<Option<String>, VerifyError> {
        self.run(sql, |mut r| {
            let row = r.next().transpose()?;
            Ok(row.as_ref().and_then(|r| text(r, 0)).map(str::to_string))
        })
    }

    /// The rows of `chunks` without a key: row hash → rows.
    fn multiset(
        &mut self,
        chunking: &Chunking,
        columns: &[SourceColumn],
        chunks: &[i128],
    ) -> Result<HashMap<u64, i64>, VerifyError> {
        let sql = chunking.rows(columns, &self.side, chunks, "0");
        self.run(&sql, |rows| {
            let mut out = HashMap::new();
            for row in rows {
                let row = row?;
                let h = text(&row, 0).and_then(|h| h.parse().ok()).unwrap_or(0);
                out.insert(h, text(&row, 1).and_then(|n| n.parse().ok()).unwrap_or(0));
            }
            Ok(out)
        })
    }
}

fn bytes(row: &mysql::Row, i: usize) -> Option<&[u8]> {
    match row.as_ref(i) {
        Some(mysql::Value::Bytes(b)) => Some(b),
        _ => None,
    }
}

fn text(row: &mysql::Row, i: usize) -> Option<&str> {
    bytes(row, i).and_then(|b| std::str::from_utf8(b).ok())
}

/// The target's rows (its statistics', or counted when they know fewer than `at_least`)
/// and, for a key chunked by range, its smallest and largest positions.
fn extent(
    target: &mut Server,
    ranged: Option<&SourceColumn>,
    at_least: u64,
) -> Result<(u64, Option<i128>, Option<i128>), VerifyError> {
    let Side::Target { table } = target.side.clone() else {
        unreachable!("the extent is the target's")
    };
    let (rows, lo, hi) = target.run(&sql::extent(&table, ranged), |mut r| {
        let row = r.next().transpose()?;
        let get = |i| {
            row.as_ref()
                .and_then(|r| text(r, i))
                .and_then(|s| s.parse::<i128>().ok())
        };
        Ok((get(0).unwrap_or(0), get(1), get(2)))
    })?;
    // A table's statistics may not know its rows yet (just loaded): counted then.
    let rows = match rows < at_least as i128 {
        true => target
            .first(&format!("SELECT COUNT(*) FROM {}", quote_mysql(&table)))?
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        false => rows as u64,
    };
    Ok((rows, lo, hi))
}

/// A single integer key's column.
fn int_key<'a>(columns: &'a [SourceColumn], key: Option<&[String]>) -> Option<&'a SourceColumn> {
    ranged_key(columns, key).filter(|c| matches!(c.ty, SqlType::Int { .. }))
}

/// A single key chunked by ranges: an integer, a date or a time.
fn ranged_key<'a>(columns: &'a [SourceColumn], key: Option<&[String]>) -> Option<&'a SourceColumn> {
    key.filter(|k| k.len() == 1)
        .and_then(|k| columns.iter().find(|c| c.name == k[0]))
        .filter(|c| matches!(c.ty, SqlType::Int { .. }) || sql::is_time(&c.ty))
}

/// How to chunk, for chunks of about `per_chunk` rows: an integer or temporal key by ranges
/// sized from the target's extent, anything else by hash buckets sized from its row count.
fn chunking(
    target: &mut Server,
    columns: &[SourceColumn],
    key: Option<&[String]>,
    per_chunk: u64,
) -> Result<Chunking, VerifyError> {
    let ranged = ranged_key(columns, key);
    let extent = extent(target, ranged, per_chunk)?;
    Ok(chunked(extent, ranged, key, per_chunk))
}

/// `chunking`, the target's extent known.
fn chunked(
    (rows, lo, hi): (u64, Option<i128>, Option<i128>),
    ranged: Option<&SourceColumn>,
    key: Option<&[String]>,
    per_chunk: u64,
) -> Chunking {
    let chunks = rows.div_ceil(per_chunk).max(1);
    // Within a signed BIGINT: MariaDB refuses `DIV` by a larger one (ER 1690).
    let width =
        |lo: i128, hi: i128| ((hi - lo + 1) / chunks as i128).clamp(1, i128::from(i64::MAX));
    match (ranged, key, lo, hi) {
        (Some(c), _, Some(lo), Some(hi)) if sql::is_time(&c.ty) => Chunking::Time {
            key: c.clone(),
            width: width(lo, hi),
        },
        (Some(c), _, Some(lo), Some(hi)) => Chunking::Range {
            column: c.name.clone(),
            width: width(lo, hi),
        },
        // No real date on the target to size ranges from (none, or only zero dates).
        (Some(c), Some(k), _, _) if sql::is_time(&c.ty) => Chunking::KeyHash {
            columns: k.to_vec(),
            buckets: chunks,
        },
        (Some(c), _, _, _) => Chunking::Range {
            column: c.name.clone(),
            width: per_chunk as i128,
        },
        (None, Some(k), _, _) => Chunking::KeyHash {
            columns: k.to_vec(),
            buckets: chunks,
        },
        (None, None, _, _) => Chunking::RowHash { buckets: chunks },
    }
}

/// The source's and the target's servers, connected.
fn servers(
    plan: &Plan,
    target: &MySqlTarget,
    source: &MySqlSource,
) -> Result<(Server, Server), VerifyError> {
    let src = Server {
        session: plan.source.connect(true, None)?.0,
        side: Side::of_source(source, plan.zero_dates),
        name: "source",
        timeout: plan.statement_timeout,
        flag: "0".into(),
        flag_all: false,
    };
    let tgt = Server {
        session: target.endpoint.connect(true, None)?.0,
        side: Side::Target {
            table: target.table.clone(),
        },
        name: "target",
        timeout: plan.statement_timeout,
        flag: "0".into(),
        flag_all: false,
    };
    Ok((src, tgt))
}

/// `f` on both servers at once (the source's on a thread of its own).
fn both<T: Send>(
    src: &mut Server,
    tgt: &mut Server,
    f: impl Fn(&mut Server) -> Result<T, VerifyError> + Sync,
) -> Result<(T, T), VerifyError> {
    let (s, t) = std::thread::scope(|scope| {
        let s = scope.spawn(|| f(src));
        let t = f(tgt);
        (s.join().expect("the source's side does not panic"), t)
    });
    Ok((s?, t?))
}

/// Both sides' chunk sums: rows on each side, chunks in all, and the chunks that differ.
fn differing(
    src: &mut Server,
    tgt: &mut Server,
    chunking: &Chunking,
    columns: &[SourceColumn],
) -> Result<(u64, u64, u64, Vec<i128>), VerifyError> {
    let (s, t) = both(src, tgt, |side| side.sums(chunking, columns))?;
    let all: std::collections::BTreeSet<i128> = s.keys().chain(t.keys()).copied().collect();
    let differing = all
        .iter()
        .filter(|c| s.get(c) != t.get(c))
        .copied()
        .collect();
    let rows = |sums: &Sums| sums.values().map(|v| v.0).sum();
    Ok((rows(&s), rows(&t), all.len() as u64, differing))
}

/// Compares the target table with the source's query, both hashed by their servers.
pub(super) fn compare(
    plan: &Plan,
    target: &MySqlTarget,
    source: &MySqlSource,
    key: Option<&[String]>,
) -> Result<Verdict, VerifyError> {
    let columns = source.columns();
    let (mut src, mut tgt) = servers(plan, target, source)?;
    let incremental = plan
        .incremental
        .as_ref()
        .and_then(|i| columns.iter().find(|c| c.name.eq_ignore_ascii_case(&i.key)));
    if let Some(col) = incremental {
        let max = tgt.first(&sql::largest(col, &tgt.side))?;
        src.flag = sql::above(col, max.as_deref());
    }
    let chunking = chunking(&mut tgt, columns, key, CHUNK_ROWS)?;
    log::debug!("verify: chunks {chunking:?}");
    let (source_rows, target_rows, chunks, differing) =
        differing(&mut src, &mut tgt, &chunking, columns)?;
    let mut verdict = Verdict {
        source_rows,
        target_rows,
        chunks,
        differing_chunks: differing.iter().map(|c| chunking.describe(*c)).collect(),
        ..Verdict::default()
    };
    for part in differing.chunks(CHUNKS_PER_READ) {
        look_into(
            &mut src,
            &mut tgt,
            &chunking,
            columns,
            part,
            &mut verdict.found,
        )?;
    }
    Ok(verdict)
}

/// Reads the rows of differing chunks on both sides and tallies what differs.
fn look_into(
    src: &mut Server,
    tgt: &mut Server,
    chunking: &Chunking,
    columns: &[SourceColumn],
    chunks: &[i128],
    found: &mut Tally,
) -> Result<(), VerifyError> {
    if let Chunking::RowHash { .. } = chunking {
        let s = src.multiset(chunking, columns, chunks)?;
        let t = tgt.multiset(chunking, columns, chunks)?;
        found.multiset(s, t);
        return Ok(());
    }
    let (s, t) = both(src, tgt, |side| side.keyed(chunking, columns, chunks))?;
    found.keyed(s, t, &|k| show(k));
    Ok(())
}
