//! A merge's deletes into SQLite (`deletes = apply`): the target's rows whose key the
//! source no longer has, matched by rowid. A single integer key is compared as numbers,
//! both sides sorted; any other key by the hash of its canonical text.

use super::local::{
    key_columns, only_keys, open_read_only, source_rows, sqlite_err, target_rows, Hasher,
};
use super::{Vanished, VerifyError};
use crate::connect::Abandon;
use crate::incremental::Filter;
use crate::plan::Plan;
use crate::source::Source;
use crate::target::SqliteTable;
use crate::transform::{quote_sqlite, Cell, ColumnView, SourceColumn, SqlType};
use rusqlite::types::ValueRef;
use std::collections::HashSet;

/// The target's rows whose key the source no longer has: the source's key columns
/// streamed, the file's keys read with their rowids.
pub(super) fn vanished(
    plan: &Plan,
    t: &SqliteTable,
    source: &crate::source::mysql::MySqlSource,
    key: &[String],
    read: Option<&Filter>,
) -> Result<Vanished, VerifyError> {
    let keys = key_columns(source.columns(), key);
    let rowid = super::local::rowid_alias(source.columns())?;
    let found = match keys.as_slice() {
        [k] if matches!(k.ty, SqlType::Int { .. }) => gone_numbers(plan, t, k, rowid, read)?,
        _ => gone_hashed(plan, t, &keys, key, rowid, read)?,
    };
    Ok(Vanished {
        rows: found.gone.len() as u64,
        conditions: super::in_lists(rowid, &found.gone),
        source_rows: found.source_rows,
        target_rows: found.target_rows,
        how: "the source's keys streamed and the file's",
        chunks: 1,
        differing_chunks: u64::from(!found.gone.is_empty()),
        seconds: 0.0,
        unread_lacking: found.unread_lacking,
    })
}

/// What the two sides' keys tell.
struct Found {
    /// Rowids of the file's rows whose key the source lacks.
    gone: Vec<i64>,
    target_rows: u64,
    source_rows: u64,
    /// The source's rows outside the merge's read whose key the file lacks.
    unread_lacking: u64,
}

/// The file's rows whose key hash the source lacks, and the source's unread rows whose
/// key hash the file lacks.
fn gone_hashed(
    plan: &Plan,
    t: &SqliteTable,
    keys: &[SourceColumn],
    key: &[String],
    rowid: &str,
    read: Option<&Filter>,
) -> Result<Found, VerifyError> {
    let mut hasher = Hasher::new(keys, t, Some(key));
    if read.is_some() {
        hasher.mark_by(keys.len());
    }
    let (mut present, mut unread) = (HashSet::new(), Vec::new());
    // The file's keys are read on a thread of their own while the source's stream.
    let (read, held) = std::thread::scope(|scope| {
        let held = scope.spawn(|| {
            let mut hasher = Hasher::new(keys, t, Some(key));
            let mut held = Vec::new();
            target_rows(t, keys, &mut hasher, Some(rowid), |id, h| {
                held.push((id, h.key_hash()));
                true
            })
            .map(|()| held)
        });
        let read = source_rows(
            only_keys(plan, keys, read)?,
            plan.zero_dates,
            &mut hasher,
            |h, marked| {
                let k = h.key_hash();
                present.insert(k);
                if marked {
                    unread.push(k);
                }
            },
        );
        Ok::<_, VerifyError>((read, held.join().expect("the file's read does not panic")))
    })?;
    read?;
    let held = held?;
    let gone = held
        .iter()
        .filter(|(_, k)| !present.contains(k))
        .map(|(id, _)| *id)
        .collect();
    let file: HashSet<u64> = held.iter().map(|(_, k)| *k).collect();
    Ok(Found {
        gone,
        target_rows: held.len() as u64,
        source_rows: present.len() as u64,
        unread_lacking: unread.iter().filter(|k| !file.contains(k)).count() as u64,
    })
}

/// An integer key as a number, whatever form it arrived or is stored in.
fn number(cell: Cell<'_>) -> Option<i128> {
    match cell {
        Cell::Int(i) => Some(i.into()),
        Cell::UInt(u) => Some(u.into()),
        Cell::Text(s) => s.parse().ok(),
        _ => None,
    }
}

/// As `gone_hashed`, for one integer key: the values themselves, sorted on both sides and
/// merged (no hashing, 16 bytes a key).
fn gone_numbers(
    plan: &Plan,
    t: &SqliteTable,
    key: &SourceColumn,
    rowid: &str,
    read: Option<&Filter>,
) -> Result<Found, VerifyError> {
    let (mut present, mut unread): (Vec<i128>, Vec<i128>) = (Vec::new(), Vec::new());
    let mut failed = None;
    let source = only_keys(plan, std::slice::from_ref(key), read)?;
    // The file's keys are read on a thread of their own while the source's stream.
    let (read, held) = std::thread::scope(|scope| {
        let held = scope.spawn(|| file_keys(t, &key.name, rowid));
        let read = source.read(
            &mut |batch| match key_view(&batch) {
                Ok((keys, marks)) => {
                    for r in 0..batch.num_rows() {
                        let Some(k) = number(keys.cell(r)) else {
                            continue;
                        };
                        present.push(k);
                        if marks.as_ref().is_some_and(|m| number(m.cell(r)) == Some(1)) {
                            unread.push(k);
                        }
                    }
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            },
            &Abandon::default(),
        );
        (read, held.join().expect("the file's read does not panic"))
    });
    read?;
    if let Some(message) = failed {
        return Err(VerifyError::Query {
            side: "source",
            message,
        });
    }
    let mut held = held?;
    present.sort_unstable();
    unread.sort_unstable();
    held.sort_unstable();
    let keys: Vec<i128> = held.iter().map(|h| h.0).collect();
    let gone = super::sorted::absent(&present, &keys);
    let unread_lacking = super::sorted::absent(&keys, &unread).len() as u64;
    // Rowids of the absent keys (a key held twice is deleted twice).
    let mut ids = Vec::with_capacity(gone.len());
    let mut j = 0;
    for (k, id) in &held {
        while j < gone.len() && gone[j] < *k {
            j += 1;
        }
        if gone.get(j) == Some(k) {
            ids.push(*id);
        }
    }
    Ok(Found {
        gone: ids,
        target_rows: held.len() as u64,
        source_rows: present.len() as u64,
        unread_lacking,
    })
}

/// A batch of `only_keys` with one key: the key's column, and the marks' if read.
fn key_view(
    batch: &arrow::record_batch::RecordBatch,
) -> Result<(ColumnView<'_>, Option<ColumnView<'_>>), String> {
    let marks = match batch.num_columns() {
        2 => Some(ColumnView::new(batch.column(1))?),
        _ => None,
    };
    Ok((ColumnView::new(batch.column(0))?, marks))
}

/// The file's (key, rowid) pairs of an integer key.
fn file_keys(t: &SqliteTable, key: &str, rowid: &str) -> Result<Vec<(i128, i64)>, VerifyError> {
    let conn = open_read_only(t)?;
    let sql = format!(
        "SELECT {}, {rowid} FROM {}",
        quote_sqlite(key),
        quote_sqlite(&t.table)
    );
    let mut stmt = conn.prepare(&sql).map_err(|e| sqlite_err(t, e))?;
    let mut rows = stmt.query([]).map_err(|e| sqlite_err(t, e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| sqlite_err(t, e))? {
        let k = match row.get_ref(0).map_err(|e| sqlite_err(t, e))? {
            ValueRef::Integer(i) => i128::from(i),
            ValueRef::Text(s) => std::str::from_utf8(s)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(i128::MIN),
            // Not a key the source can have: deleted.
            _ => i128::MIN,
        };
        out.push((k, row.get(1).map_err(|e| sqlite_err(t, e))?));
    }
    Ok(out)
}
