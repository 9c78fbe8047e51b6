//! A merge's deletes into SQLite (`deletes = apply`): the target's rows whose key the
//! source no longer has, matched by rowid. A single integer key is compared as numbers,
//! both sides sorted; any other key by the hash of its canonical text.

use super::local::{
    key_columns, only_keys, open_read_only, source_rows, sqlite_err, target_rows, Hasher,
};
use super::sql::{self, Side};
use super::{Vanished, VerifyError};
use crate::connect::Abandon;
use crate::incremental::Filter;
use crate::plan::Plan;
use crate::source::mysql::MySqlSource;
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
    source: &MySqlSource,
    key: &[String],
    read: Option<&Filter>,
) -> Result<Vanished, VerifyError> {
    let keys = key_columns(source.columns(), key);
    let rowid = super::local::rowid_alias(source.columns())?;
    let found = match keys.as_slice() {
        [k] if matches!(k.ty, SqlType::Int { .. }) => {
            gone_numbers(plan, t, (k, source), rowid, read)?
        }
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
/// merged (no hashing, 16 bytes a key). Which of the values the file lacks only unread
/// rows hold is asked of the source apart, among those values (`unread_among`), not
/// marked on every row streamed.
fn gone_numbers(
    plan: &Plan,
    t: &SqliteTable,
    (key, source): (&SourceColumn, &MySqlSource),
    rowid: &str,
    read: Option<&Filter>,
) -> Result<Found, VerifyError> {
    let keys = only_keys(plan, std::slice::from_ref(key), None)?;
    // The file's keys are read on a thread of their own while the source's stream.
    let (present, held) = std::thread::scope(|scope| {
        let held = scope.spawn(|| file_keys(t, &key.name, rowid));
        let present = numbers_of(keys);
        (
            present,
            held.join().expect("the file's read does not panic"),
        )
    });
    let (mut present, mut held) = (present?, held?);
    present.sort_unstable();
    held.sort_unstable();
    let (gone, lacking) = compared(&present, &held);
    let unread_lacking = match read {
        Some(f) if !lacking.is_empty() => unread_among(plan, source, key, f, &lacking, &held)?,
        _ => 0,
    };
    Ok(Found {
        gone,
        target_rows: held.len() as u64,
        source_rows: present.len() as u64,
        unread_lacking,
    })
}

/// Every integer the source's first column gives.
fn numbers_of(source: Box<dyn Source>) -> Result<Vec<i128>, VerifyError> {
    let (mut out, mut failed) = (Vec::new(), None);
    let read = source.read(
        &mut |batch| match ColumnView::new(batch.column(0)) {
            Ok(view) => {
                for r in 0..batch.num_rows() {
                    let cell = view.cell(r);
                    match number(cell) {
                        Some(k) => out.push(k),
                        None if cell == Cell::Null => {}
                        // Dropped, a source's key would make the file's row look gone.
                        None => {
                            failed = Some(format!("a key that is not an integer: {cell:?}"));
                            return false;
                        }
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
    read?;
    match failed {
        Some(message) => Err(VerifyError::Query {
            side: "source",
            message,
        }),
        None => Ok(out),
    }
}

/// From the source's keys and the file's (key, rowid), both sorted: the rowids of the
/// file's keys the source lacks (a key held twice is deleted twice), and the source's
/// values the file lacks, each once.
fn compared(present: &[i128], held: &[(i128, i64)]) -> (Vec<i64>, Vec<i128>) {
    let mut gone = Vec::new();
    let mut i = 0;
    for &(k, id) in held {
        while i < present.len() && present[i] < k {
            i += 1;
        }
        if present.get(i) != Some(&k) {
            gone.push(id);
        }
    }
    let mut lacking: Vec<i128> = Vec::new();
    let mut j = 0;
    for &k in present {
        while j < held.len() && held[j].0 < k {
            j += 1;
        }
        if held.get(j).map(|h| h.0) != Some(k) && lacking.last() != Some(&k) {
            lacking.push(k);
        }
    }
    (gone, lacking)
}

/// How many of `lacking` (values the file lacks, sorted) the source holds only on rows
/// the merge did not read (outside `f`), asked of the source.
fn unread_among(
    plan: &Plan,
    source: &MySqlSource,
    key: &SourceColumn,
    f: &Filter,
    lacking: &[i128],
    held: &[(i128, i64)],
) -> Result<u64, VerifyError> {
    let between = |a: i128, b: i128| {
        let i = held.partition_point(|h| h.0 <= a);
        held.get(i).is_some_and(|h| h.0 < b)
    };
    let within = sql::among(&key.name, lacking, between);
    let side = Side::of_source(source, plan.zero_dates);
    let unread = sql::unread(f, sql::SOURCE_ALIAS);
    let asked = sql::unread_keys(&key.name, &side, &within, &unread);
    let unread = numbers_of(Box::new(super::open_source(plan, &asked)?))?;
    let not_held = |v: &&i128| held.binary_search_by(|h| h.0.cmp(v)).is_err();
    Ok(unread.iter().filter(not_held).count() as u64)
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
    use super::compared;

    #[test]
    fn comparing_keys_finds_the_gone_and_the_lacking() {
        // The source: -3, 0, 5, 5, 7; the file: -3, 2, 2, 9.
        let present = [-3, 0, 5, 5, 7];
        let held = [(-3, 10), (2, 11), (2, 12), (9, 13)];
        // 2 is gone (twice), 9 once; 0, 5 (once) and 7 are lacking.
        assert_eq!(compared(&present, &held), (vec![11, 12, 13], vec![0, 5, 7]));
        // The largest unsigned key and the smallest signed one keep their order.
        let edges = [i128::from(i64::MIN), i128::from(u64::MAX)];
        let held = [(i128::from(u64::MAX), 1)];
        assert_eq!(
            compared(&edges, &held),
            (vec![], vec![i128::from(i64::MIN)])
        );
    }
}
