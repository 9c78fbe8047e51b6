//! Verification into a MySQL target: both servers sum their rows' hashes per chunk of the
//! key, at once, each on its own connection; only the chunks whose count or sum differ
//! are read again, key and hash, on both sides.

use super::canon::{push_value, show};
use super::sql::{self, Chunking, Side, CHUNK_ROWS};
use super::{Tally, Vanished, Verdict, VerifyError};
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
/// Rows a chunk of a merge's key checksums aims at (`deletes = apply`, a single integer
/// key): a chunk's sum is
/// a line of about 30 bytes, and its keys are read when one of its rows is gone, so deletes
/// spread over the table (0.1% of the rows, every thousandth) read about an eighth of the
/// keys, where chunks of `CHUNK_ROWS` read them all. The server's work is the same
/// (measured: 1.08–1.10 s a side for 1M keys, at 128 to 33,000 rows a chunk).
const KEY_CHUNK_ROWS: u64 = 128;
/// Keys one DELETE names.
const DELETE_KEYS: usize = 1000;

/// Per chunk: rows and the sum of their hashes modulo 2^64.
type Sums = HashMap<i128, (u64, u64)>;

/// One side: its connection, what it reads, and its name in errors.
struct Server {
    session: Session,
    side: Side,
    name: &'static str,
    timeout: Duration,
    /// What `rows` selects beside each row: whether it is newer than the load (the
    /// source's side, for an incremental table; `0` otherwise).
    flag: String,
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
                out.insert(key, (h, text(&row, n + 1) == Some("1")));
            }
            Ok(out)
        })
    }

    /// The integer values a statement returns, sorted.
    fn numbers(&mut self, sql: &str) -> Result<Vec<i128>, VerifyError> {
        self.run(sql, |rows| {
            let mut out = Vec::new();
            for row in rows {
                let row = row?;
                out.extend(text(&row, 0).and_then(|v| v.parse::<i128>().ok()));
            }
            out.sort_unstable();
            Ok(out)
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

/// How to chunk, for chunks of about `per_chunk` rows: an integer key by ranges sized from
/// the target's extent, anything else by hash buckets sized from its row count.
fn chunking(
    target: &mut Server,
    columns: &[SourceColumn],
    key: Option<&[String]>,
    per_chunk: u64,
) -> Result<Chunking, VerifyError> {
    let int_key = key
        .filter(|k| k.len() == 1)
        .and_then(|k| columns.iter().find(|c| c.name == k[0]))
        .filter(|c| matches!(c.ty, SqlType::Int { .. }));
    let Side::Target { table } = target.side.clone() else {
        unreachable!("chunks are sized on the target")
    };
    let sql = sql::extent(&table, int_key.map(|c| c.name.as_str()));
    let (rows, lo, hi) = target.run(&sql, |mut r| {
        let row = r.next().transpose()?;
        let get = |i| {
            row.as_ref()
                .and_then(|r| text(r, i))
                .and_then(|s| s.parse::<i128>().ok())
        };
        Ok((get(0).unwrap_or(0), get(1), get(2)))
    })?;
    // A table's statistics may not know its rows yet (just loaded): counted then.
    let rows = match rows < per_chunk as i128 {
        true => target.run(
            &format!("SELECT COUNT(*) FROM {}", quote_mysql(&table)),
            |mut r| {
                let row = r.next().transpose()?;
                Ok(row
                    .as_ref()
                    .and_then(|r| text(r, 0))
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0))
            },
        )?,
        false => rows,
    };
    let chunks = (rows as u64).div_ceil(per_chunk).max(1);
    Ok(match (int_key, key, lo, hi) {
        (Some(c), _, Some(lo), Some(hi)) => Chunking::Range {
            column: c.name.clone(),
            // Within a signed BIGINT: MariaDB refuses `DIV` by a larger one (ER 1690).
            width: ((hi - lo + 1) / chunks as i128).clamp(1, i128::from(i64::MAX)),
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
    })
}

/// The source's and the target's servers, connected.
fn servers(
    plan: &Plan,
    target: &MySqlTarget,
    source: &MySqlSource,
) -> Result<(Server, Server), VerifyError> {
    let (query, dialect) = source.full_query();
    let src = Server {
        session: plan.source.connect(true, None)?.0,
        side: Side::Source {
            query: query.to_string(),
            dialect,
            zero_dates: plan.zero_dates,
        },
        name: "source",
        timeout: plan.statement_timeout,
        flag: "0".into(),
    };
    let tgt = Server {
        session: target.endpoint.connect(true, None)?.0,
        side: Side::Target {
            table: target.table.clone(),
        },
        name: "target",
        timeout: plan.statement_timeout,
        flag: "0".into(),
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
        let max = tgt.run(&sql::largest(col, &tgt.side), |mut r| {
            let row = r.next().transpose()?;
            Ok(row.as_ref().and_then(|r| text(r, 0)).map(str::to_string))
        })?;
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

/// The target's keys the source no longer has, found by checksums of the keys alone: only
/// the chunks whose key sums differ are read, on both sides.
pub(super) fn vanished(
    plan: &Plan,
    target: &MySqlTarget,
    source: &MySqlSource,
    key: &[String],
) -> Result<Vanished, VerifyError> {
    let keys: Vec<SourceColumn> = key
        .iter()
        .filter_map(|k| source.columns().iter().find(|c| &c.name == k).cloned())
        .collect();
    let (mut src, mut tgt) = servers(plan, target, source)?;
    // Small chunks only where a chunk's keys are read by an index range: hash buckets are
    // read by a scan of the table, one per statement.
    let per_chunk = match keys.as_slice() {
        [k] if matches!(k.ty, SqlType::Int { .. }) => KEY_CHUNK_ROWS,
        _ => CHUNK_ROWS,
    };
    let chunking = chunking(&mut tgt, &keys, Some(key), per_chunk)?;
    let (_, target_rows, chunks, differing) = differing(&mut src, &mut tgt, &chunking, &keys)?;
    let (mut rows, mut conditions) = (0, Vec::new());
    for part in differing.chunks(CHUNKS_PER_READ) {
        let (n, found) = match &chunking {
            Chunking::Range { column, .. } => {
                gone_numbers(&mut src, &mut tgt, &chunking, column, part)?
            }
            _ => gone_hashed(&mut src, &mut tgt, &chunking, &keys, part)?,
        };
        rows += n;
        conditions.extend(found);
    }
    Ok(Vanished {
        rows: rows as u64,
        conditions,
        target_rows,
        chunks,
        differing_chunks: differing.len() as u64,
        seconds: 0.0,
    })
}

/// The target's integer keys in `chunks` that the source lacks: their values, sorted on
/// both sides (16 bytes each); how many, and the DELETE conditions naming them.
fn gone_numbers(
    src: &mut Server,
    tgt: &mut Server,
    chunking: &Chunking,
    column: &str,
    chunks: &[i128],
) -> Result<(usize, Vec<String>), VerifyError> {
    let (s, t) = both(src, tgt, |side| {
        let sql = chunking.key_values(&side.side, chunks).unwrap_or_default();
        side.numbers(&sql)
    })?;
    let gone = super::sorted::absent(&s, &t);
    let conditions = gone
        .chunks(DELETE_KEYS)
        .map(|ids| {
            let ids: Vec<String> = ids.iter().map(i128::to_string).collect();
            format!("{} IN ({})", quote_mysql(column), ids.join(", "))
        })
        .collect();
    Ok((gone.len(), conditions))
}

/// As `gone_numbers`, for any other key: by its canonical text.
fn gone_hashed(
    src: &mut Server,
    tgt: &mut Server,
    chunking: &Chunking,
    keys: &[SourceColumn],
    chunks: &[i128],
) -> Result<(usize, Vec<String>), VerifyError> {
    let (s, t) = both(src, tgt, |side| side.keyed(chunking, keys, chunks))?;
    let gone: Vec<Vec<u8>> = t.into_keys().filter(|k| !s.contains_key(k)).collect();
    let conditions = gone
        .chunks(DELETE_KEYS)
        .map(|part| chunking.key_in(keys, &tgt.side, part))
        .collect();
    Ok((gone.len(), conditions))
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
