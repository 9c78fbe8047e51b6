//! A merge's deletes into SQLite (`deletes = apply`): the target's rows whose key the
//! source no longer has, matched by rowid. A single integer key is compared as numbers,
//! both sides sorted; any other key by the hash of its canonical text.

use super::local::{
    key_columns, only_keys, open_read_only, source_rows, sqlite_err, target_rows, Hasher,
};
use super::{Vanished, VerifyError};
use crate::connect::Abandon;
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
) -> Result<Vanished, VerifyError> {
    let keys = key_columns(source.columns(), key);
    let rowid = super::local::rowid_alias(source.columns())?;
    let (gone, target_rows, source_rows) = match keys.as_slice() {
        [k] if matches!(k.ty, SqlType::Int { .. }) => gone_numbers(plan, t, k, rowid)?,
        _ => gone_hashed(plan, t, &keys, key, rowid)?,
    };
    Ok(Vanished {
        rows: gone.len() as u64,
        conditions: super::in_lists(rowid, &gone),
        source_rows,
        target_rows,
        how: "the source's keys streamed and the file's",
        chunks: 1,
        differing_chunks: u64::from(!gone.is_empty()),
        seconds: 0.0,
    })
}

/// Rowids of the file's rows whose key hash the source lacks; the file's rows, and the
/// source's keys.
fn gone_hashed(
    plan: &Plan,
    t: &SqliteTable,
    keys: &[SourceColumn],
    key: &[String],
    rowid: &str,
) -> Result<(Vec<i64>, u64, u64), VerifyError> {
    let mut hasher = Hasher::new(keys, t, Some(key));
    let mut present = HashSet::new();
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
            only_keys(plan, keys)?,
            plan.zero_dates,
            &mut hasher,
            |h, _| {
                present.insert(h.key_hash());
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
    Ok((gone, held.len() as u64, present.len() as u64))
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
) -> Result<(Vec<i64>, u64, u64), VerifyError> {
    let mut present: Vec<i128> = Vec::new();
    let mut failed = None;
    let source = only_keys(plan, std::slice::from_ref(key))?;
    // The file's keys are read on a thread of their own while the source's stream.
    let (read, held) = std::thread::scope(|scope| {
        let held = scope.spawn(|| file_keys(t, &key.name, rowid));
        let read = source.read(
            &mut |batch| match ColumnView::new(batch.column(0)) {
                Ok(view) => {
                    present.extend((0..batch.num_rows()).filter_map(|r| number(view.cell(r))));
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
    let keys: Vec<i128> = held.iter().map(|h| h.0).collect();
    let gone = super::sorted::absent(&present, &keys);
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
    Ok((ids, held.len() as u64, present.len() as u64))
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
