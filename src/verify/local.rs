//! Verification into SQLite: dbsync compares both sides itself. The source's rows are
//! streamed, as a copy reads them, while the file is read on a thread of its own; each
//! side's rows become canonical texts (`canon`), paired off as they come (`pair`), and the
//! rows left unpaired are hashed and merged by key (`sorted`).

use super::canon::{self, show, Canon};
use super::pair::{self, Pairing};
use super::{sorted, Tally, Verdict, VerifyError};
use crate::connect::Abandon;
use crate::incremental::Filter;
use crate::plan::Plan;
use crate::source::mysql::query;
use crate::source::Source;
use crate::target::SqliteTable;
use crate::transform::{
    self, quote_sqlite, sqlite_decl, Cell, ColumnView, SourceColumn, ZeroDates,
};
use arrow::record_batch::RecordBatch;
use rusqlite::types::Value;
use std::collections::{HashMap, HashSet};

/// One row's canonical text, and on demand the hash of its key's text (of the row's when
/// there is no key) and of its whole text.
pub(super) struct Hasher {
    canons: Vec<Canon>,
    key: Vec<usize>,
    text: Vec<u8>,
    key_text: Vec<u8>,
    scratch: Vec<u8>,
    /// The incremental key's column and the target's largest value of it: a source row
    /// above it was written after the load (or see `mark_by`).
    newer: Option<(usize, Value)>,
}

impl Hasher {
    pub(super) fn new(columns: &[SourceColumn], t: &SqliteTable, key: Option<&[String]>) -> Hasher {
        let canons = columns
            .iter()
            .map(|c| match sqlite_decl(&c.ty, t.decimal) {
                d if d.starts_with("DECIMAL") => Canon::Decimal15,
                _ => Canon::Stored,
            })
            .collect();
        let key = key
            .unwrap_or_default()
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.name == k))
            .collect();
        Hasher {
            canons,
            key,
            text: Vec::new(),
            key_text: Vec::new(),
            scratch: Vec::new(),
            newer: None,
        }
    }

    /// The row's text, `push` filling each column `i` in turn.
    fn fill(&mut self, mut push: impl FnMut(usize, Canon, &mut Vec<u8>, &mut Vec<u8>)) {
        self.text.clear();
        for (i, canon) in self.canons.iter().enumerate() {
            push(i, *canon, &mut self.scratch, &mut self.text);
        }
    }

    /// The row's canonical text.
    pub(super) fn text(&self) -> &[u8] {
        &self.text
    }

    /// The hash of the row's key; its text is then `key_text`.
    pub(super) fn key_hash(&mut self) -> u64 {
        canon::key_hash(&self.text, &self.key, &mut self.key_text)
    }

    pub(super) fn key_text(&self) -> &[u8] {
        &self.key_text
    }

    /// Makes the mark `source_rows` gives each row whether its column `i` (0 or 1, past
    /// the hashed ones) is 1.
    pub(super) fn mark_by(&mut self, i: usize) {
        self.newer = Some((i, Value::Integer(0)));
    }
}

/// The file, read only, on a connection of this thread's (no SQLite mutex), waiting up to
/// 30 s for a writer's lock.
pub(super) fn open_read_only(t: &SqliteTable) -> Result<rusqlite::Connection, VerifyError> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        rusqlite::Connection::open_with_flags(&t.path, flags).map_err(|e| sqlite_err(t, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| sqlite_err(t, e))?;
    Ok(conn)
}

pub(super) fn sqlite_err(t: &SqliteTable, e: rusqlite::Error) -> VerifyError {
    VerifyError::Sqlite(t.to_string(), e.to_string())
}

/// The name the table's rowid answers to: `rowid`, `_rowid_` or `oid`, whichever no column
/// of the table takes (a column of that name hides the rowid, and deleting by it would
/// delete other rows).
pub(super) fn rowid_alias(columns: &[SourceColumn]) -> Result<&'static str, VerifyError> {
    ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|a| !columns.iter().any(|c| c.name.eq_ignore_ascii_case(a)))
        .ok_or_else(|| VerifyError::Query {
            side: "target",
            message: "the table has columns named rowid, _rowid_ and oid, which hide its \
                      rowid"
                .to_string(),
        })
}

/// Every row of the target table through `each` (with `rowid`, the row's rowid, read by
/// that name; the hasher holding the row's text), until `each` says stop.
pub(super) fn target_rows(
    t: &SqliteTable,
    columns: &[SourceColumn],
    hasher: &mut Hasher,
    rowid: Option<&str>,
    mut each: impl FnMut(i64, &mut Hasher) -> bool,
) -> Result<(), VerifyError> {
    let conn = open_read_only(t)?;
    let exists =
        crate::target::sqlite::holds(&conn, "table", &t.table).map_err(|e| sqlite_err(t, e))?;
    if !exists {
        return Err(VerifyError::NoTarget(t.to_string()));
    }
    let first = usize::from(rowid.is_some());
    let list: Vec<String> = (rowid.map(str::to_string).into_iter())
        .chain(columns.iter().map(|c| quote_sqlite(&c.name)))
        .collect();
    let sql = format!("SELECT {} FROM {}", list.join(", "), quote_sqlite(&t.table));
    let mut stmt = conn.prepare(&sql).map_err(|e| sqlite_err(t, e))?;
    let mut rows = stmt.query([]).map_err(|e| sqlite_err(t, e))?;
    while let Some(row) = rows.next().map_err(|e| sqlite_err(t, e))? {
        hasher.fill(|i, canon, scratch, out| {
            let v = row
                .get_ref(first + i)
                .unwrap_or(rusqlite::types::ValueRef::Null);
            canon.push_sqlite(v, scratch, out);
        });
        let id = match rowid {
            Some(_) => row.get(0).map_err(|e| sqlite_err(t, e))?,
            None => 0,
        };
        if !each(id, hasher) {
            break;
        }
    }
    Ok(())
}

/// Whether a source value of the incremental key is above the target's largest.
fn above(cell: Cell<'_>, max: &Value) -> bool {
    match (cell, max) {
        // The target holds no key (empty, or emptied): nothing is excused as newer.
        (_, Value::Null) => false,
        (Cell::Int(i), Value::Integer(m)) => i > *m,
        (Cell::UInt(u), Value::Integer(m)) => i128::from(u) > i128::from(*m),
        (Cell::Text(s), Value::Text(m)) => s > m.as_str(),
        _ => false,
    }
}

/// Each row of `batch` into `each` (the hasher holding its text; newer than the load).
fn each_row(
    batch: &RecordBatch,
    hasher: &mut Hasher,
    each: &mut impl FnMut(&mut Hasher, bool),
) -> Result<(), String> {
    let views: Vec<ColumnView<'_>> = batch
        .columns()
        .iter()
        .map(ColumnView::new)
        .collect::<Result<_, _>>()?;
    for r in 0..batch.num_rows() {
        hasher.fill(|i, canon, scratch, out| canon.push_cell(views[i].cell(r), scratch, out));
        let newer = match &hasher.newer {
            Some((i, max)) => above(views[*i].cell(r), max),
            None => false,
        };
        each(hasher, newer);
    }
    Ok(())
}

/// Every source row, as a copy reads it (zero dates as the copy treats them), through
/// `each` (the hasher holding its text; newer than the load); the number of rows. The
/// rows are written out on a thread of their own while the reader parses the next batch.
pub(super) fn source_rows(
    source: Box<dyn Source>,
    zero_dates: ZeroDates,
    hasher: &mut Hasher,
    mut each: impl FnMut(&mut Hasher, bool) + Send,
) -> Result<u64, VerifyError> {
    let columns = source.columns().to_vec();
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
    let mut failed = None;
    let (rows, hashed) = std::thread::scope(|scope| {
        let hashing = scope.spawn(move || {
            for batch in rx {
                each_row(&batch, hasher, &mut each)?;
            }
            Ok::<(), String>(())
        });
        let rows = source.read(
            &mut |batch| match transform::apply_zero_dates(batch, &columns, zero_dates) {
                Ok((b, _)) => tx.send(b).is_ok(),
                Err(r) => {
                    failed = Some(format!("a zero date in column `{}`: {}", r.column, r.value));
                    false
                }
            },
            &Abandon::default(),
        );
        drop(tx);
        let hashed = hashing.join().expect("hashing does not panic");
        (rows, hashed)
    });
    let rows = rows?;
    match failed.or(hashed.err()) {
        Some(message) => Err(VerifyError::Query {
            side: "source",
            message,
        }),
        None => Ok(rows),
    }
}

/// For an incremental table: its key's column and the file's largest value of it.
fn newer_than(
    plan: &Plan,
    t: &SqliteTable,
    columns: &[SourceColumn],
) -> Result<Option<(usize, Value)>, VerifyError> {
    let Some(i) = plan.incremental.as_ref().and_then(|inc| {
        columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(&inc.key))
    }) else {
        return Ok(None);
    };
    let conn = open_read_only(t)?;
    let sql = format!(
        "SELECT max({}) FROM {}",
        quote_sqlite(&columns[i].name),
        quote_sqlite(&t.table)
    );
    let max = conn
        .query_row(&sql, [], |r| r.get::<_, Value>(0))
        .map_err(|e| sqlite_err(t, e))?;
    Ok(Some((i, max)))
}

/// The key columns, in the order of the row (so a key's text is the same in every pass).
pub(super) fn key_columns(columns: &[SourceColumn], key: &[String]) -> Vec<SourceColumn> {
    columns
        .iter()
        .filter(|c| key.contains(&c.name))
        .cloned()
        .collect()
}

/// Compares the SQLite table with the source's rows, streamed: the file is read on a
/// thread of its own meanwhile, its rows' texts paired off with the source's as they come
/// (`pair`); the rows left unpaired are hashed, sorted and merged. The file's read keeps
/// pace with the source's, so its read transaction lasts as long: a writer to the same
/// file (journal_mode = delete) waits for it, and in WAL mode checkpoints do.
pub(super) fn compare(
    plan: &Plan,
    t: &SqliteTable,
    source: Box<dyn Source>,
    key: Option<&[String]>,
) -> Result<Verdict, VerifyError> {
    let columns = source.columns().to_vec();
    let mut hasher = Hasher::new(&columns, t, key);
    hasher.newer = newer_than(plan, t, &columns)?;
    let mut pairing = Pairing::new(&hasher.key);
    let (mut batches, file) = pair::channel();
    let (read, target_read) = std::thread::scope(|scope| {
        // Owned by this closure: should it unwind, the file's reader is let go too.
        let mut file = file;
        let target_read = scope.spawn(|| {
            let mut hasher = Hasher::new(&columns, t, key);
            let mut rows = 0u64;
            let read = target_rows(t, &columns, &mut hasher, None, |_, h| {
                rows += 1;
                batches.push(h.text())
            });
            // The end of `batches` (here, on success or not) is the end of the file's rows.
            batches.finish();
            read.map(|()| rows)
        });
        let read = source_rows(source, plan.zero_dates, &mut hasher, |h, newer| {
            pairing.step(h.text(), newer, file.next());
        });
        if read.is_ok() {
            while let Some(text) = file.next() {
                pairing.target_row(text);
            }
        }
        // The file's reader, if still reading, stops at its next batch.
        drop(file);
        let target_read = target_read.join().expect("the file's read does not panic");
        (read, target_read)
    });
    let mut verdict = Verdict {
        source_rows: read?,
        target_rows: target_read?,
        chunks: 1,
        ..Verdict::default()
    };
    let (mut src, mut tgt) = pairing.finish();
    let d = sorted::merge(&mut src, &mut tgt);
    drop((src, tgt));
    if key.is_none() {
        verdict.found.missing = d.missing.len() as u64;
        verdict.found.extra = d.extra.len() as u64;
        return Ok(verdict);
    }
    name_differences(
        plan,
        t,
        &columns,
        key.unwrap_or_default(),
        &d,
        &mut verdict.found,
    )?;
    Ok(verdict)
}

/// Counts the differences and names up to `KEPT` keys of each kind: the target's from a
/// second pass over the file, the source's (rows the file lacks) from its key columns.
fn name_differences(
    plan: &Plan,
    t: &SqliteTable,
    columns: &[SourceColumn],
    key: &[String],
    d: &sorted::Differences,
    found: &mut Tally,
) -> Result<(), VerifyError> {
    const KEPT: usize = 1000;
    let first = |v: &[u64]| v.iter().take(KEPT).copied().collect::<Vec<_>>();
    let in_target: HashSet<u64> = [&d.extra, &d.changed, &d.newer]
        .iter()
        .flat_map(|v| first(v))
        .collect();
    let in_source: HashSet<u64> = [&d.missing, &d.newer_added]
        .iter()
        .flat_map(|v| first(v))
        .collect();
    let keys = key_columns(columns, key);
    let mut names: HashMap<u64, String> = HashMap::new();
    if !in_target.is_empty() {
        let mut hasher = Hasher::new(&keys, t, Some(key));
        target_rows(t, &keys, &mut hasher, None, |_, h| {
            let k = h.key_hash();
            if in_target.contains(&k) {
                names.insert(k, show(h.key_text()));
            }
            true
        })?;
    }
    if !in_source.is_empty() {
        let mut hasher = Hasher::new(&keys, t, Some(key));
        source_rows(
            only_keys(plan, &keys, None)?,
            plan.zero_dates,
            &mut hasher,
            |h, _| {
                let k = h.key_hash();
                if in_source.contains(&k) {
                    names.insert(k, show(h.key_text()));
                }
            },
        )?;
    }
    let named = |v: &[u64]| -> Vec<String> {
        first(v)
            .iter()
            .filter_map(|h| names.get(h).cloned())
            .collect()
    };
    found.missing = d.missing.len() as u64;
    found.extra = d.extra.len() as u64;
    found.changed = d.changed.len() as u64;
    found.newer = (d.newer.len() + d.newer_added.len()) as u64;
    found.newer_added = d.newer_added.len() as u64;
    found.missing_keys = named(&d.missing);
    found.extra_keys = named(&d.extra);
    found.changed_keys = named(&d.changed);
    found.newer_keys = named(&d.newer);
    found.newer_keys.extend(named(&d.newer_added));
    Ok(())
}

/// The source's query reading only these (key) columns, and with `unread` (a merge's
/// filter) a last column, 1 for a row the merge did not read, else 0.
pub(super) fn only_keys(
    plan: &Plan,
    keys: &[SourceColumn],
    unread: Option<&Filter>,
) -> Result<Box<dyn Source>, VerifyError> {
    const ALIAS: &str = "dbsync_keys";
    let source = super::open_source(plan, &plan.query)?;
    let (query, dialect) = source.full_query();
    let list: Vec<String> = keys
        .iter()
        .map(|c| transform::quote_mysql(&c.name))
        // Named: a read that casts columns wraps this query again and names each column.
        .chain(unread.map(|f| format!("{} AS dbsync_unread", super::sql::unread(f, ALIAS))))
        .collect();
    let only_keys = query::wrap(query, dialect, &list.join(", "), ALIAS, "");
    Ok(Box::new(super::open_source(plan, &only_keys)?))
}
