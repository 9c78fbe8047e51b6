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
use std::collections::HashMap;

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
    // Each source key: whether a read row has it, an unread row, the file.
    let mut present: HashMap<u64, u8> = HashMap::new();
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
                let seen = if marked { UNREAD } else { READ };
                *present.entry(h.key_hash()).or_default() |= seen;
            },
        );
        Ok::<_, VerifyError>((read, held.join().expect("the file's read does not panic")))
    })?;
    read?;
    let held = held?;
    let mut gone = Vec::new();
    for (id, k) in &held {
        match present.get_mut(k) {
            Some(p) => *p |= IN_FILE,
            None => gone.push(*id),
        }
    }
    let unread_lacking = present.values().filter(|p| **p == UNREAD).count();
    Ok(Found {
        gone,
        target_rows: held.len() as u64,
        source_rows: present.len() as u64,
        unread_lacking: unread_lacking as u64,
    })
}

/// What `gone_hashed` saw of a key: a row the merge read, one it did not, the file's.
const READ: u8 = 1;
const UNREAD: u8 = 2;
const IN_FILE: u8 = 4;

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
/// merged (no hashing, 16 bytes a key: the source's `k` as `2k + 1` when its row is
/// unread, else `2k`, so the mark costs no memory and the order is the keys').
fn gone_numbers(
    plan: &Plan,
    t: &SqliteTable,
    key: &SourceColumn,
    rowid: &str,
    read: Option<&Filter>,
) -> Result<Found, VerifyError> {
    let mut present: Vec<i128> = Vec::new();
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
                        let unread = marks.as_ref().is_some_and(|m| number(m.cell(r)) == Some(1));
                        present.push(2 * k + i128::from(unread));
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
    held.sort_unstable();
    let (gone, unread_lacking) = merged(&present, &held);
    Ok(Found {
        gone,
        target_rows: held.len() as u64,
        source_rows: present.len() as u64,
        unread_lacking,
    })
}

/// From the source's marked keys (`2k + unread`) and the file's (key, rowid), both sorted:
/// the rowids of the file's keys the source lacks (a key held twice is deleted twice),
/// and how many keys the file lacks only unread rows have (a read row's key is in the
/// target after the merge).
fn merged(present: &[i128], held: &[(i128, i64)]) -> (Vec<i64>, u64) {
    let mut gone = Vec::new();
    let mut i = 0;
    for &(k, id) in held {
        while i < present.len() && present[i] >> 1 < k {
            i += 1;
        }
        if present.get(i).map(|p| p >> 1) != Some(k) {
            gone.push(id);
        }
    }
    let (mut lacking, mut j) = (0, 0);
    for (i, p) in present.iter().enumerate() {
        // A key's rows sort read first: the first of them tells.
        let first = i == 0 || present[i - 1] >> 1 != p >> 1;
        if p & 1 == 0 || !first {
            continue;
        }
        while j < held.len() && held[j].0 < p >> 1 {
            j += 1;
        }
        lacking += u64::from(held.get(j).map(|h| h.0) != Some(p >> 1));
    }
    (gone, lacking)
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

#[cfg(test)]
mod tests {
    use super::merged;

    #[test]
    fn merging_marked_keys_finds_the_gone_and_the_unread_lacking() {
        let mark = |k: i128, unread: bool| 2 * k + i128::from(unread);
        // The source: -3 (unread), 0, 5 (read and unread), 7 (unread twice), 9 (unread);
        // the file: -3, 2, 2, 9.
        let mut present = vec![
            mark(5, true),
            mark(-3, true),
            mark(0, false),
            mark(5, false),
        ];
        present.extend([mark(9, true), mark(7, true), mark(7, true)]);
        present.sort_unstable();
        let held = [(-3, 10), (2, 11), (2, 12), (9, 13)];
        // 2 is gone (twice); of the keys the file lacks, 0 and 5 have a read row: only 7
        // (once) is unread.
        assert_eq!(merged(&present, &held), (vec![11, 12], 1));
        // The largest unsigned key and the smallest signed one keep their order.
        let edges = [
            mark(i128::from(i64::MIN), true),
            mark(i128::from(u64::MAX), true),
        ];
        assert_eq!(merged(&edges, &[(i128::from(u64::MAX), 1)]), (vec![], 1));
    }
}
