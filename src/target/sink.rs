//! Sinks: a target table that is replaced as a whole, or not at all.

use crate::incremental::{Applied, Apply, TargetState};
use crate::transform::keys::Keys;
use crate::transform::SourceColumn;
use arrow::record_batch::RecordBatch;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("SQLite {path}: {action}: {source}{hint}")]
    Sqlite {
        path: String,
        action: String,
        source: Box<rusqlite::Error>,
        hint: &'static str,
    },
    #[error("cannot create the directory for {path}: {source} (check [local_db] db_path)")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("MySQL target {where_}: {action}: {message}")]
    Mysql {
        where_: String,
        action: String,
        message: String,
    },
    #[error("row {row} of batch {batch}, column `{column}`: {message}")]
    Value {
        batch: u64,
        row: usize,
        column: String,
        message: String,
    },
    #[error("{target}: {why}; nothing was changed")]
    Refused { target: String, why: String },
    #[error(
        "{target}: the COMMIT of the new rows got no answer ({message}): whether they were \
         applied is unknown; the next run starts from what the target then holds, so it \
         neither loses nor repeats them"
    )]
    Unknown { target: String, message: String },
    #[error(
        "the query returns the same primary key ({key}) more than once ({detail}), and the \
         target holds each key once: a JOIN that repeats rows? Make the query return each key \
         once, or set [general] primary_key to the columns that identify a row; nothing was \
         changed"
    )]
    DuplicateKey { key: String, detail: String },
    #[error(
        "another run writes {target}: waited {waited} s for it ([general] lock_wait); the \
         staged tables are dropped, the target is as it was"
    )]
    Busy { target: String, waited: u64 },
    #[error("the staged table has {staged} rows but {read} were read; the old table is kept")]
    Count { staged: u64, read: u64 },
    #[error(
        "{target}: the swap's RENAME got no answer ({message}), and whether it happened could \
         not be settled ({why}): the target holds the old rows or the new ones, whole; not \
         retried (the next run drops whichever table is left over)"
    )]
    SwapUnknown {
        target: String,
        message: String,
        why: String,
    },
}

/// Rows a merge also deletes (`[general] deletes = apply`): each condition is the WHERE of
/// one DELETE on the target table, run in the merge's own transaction, before its rows go in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deletion {
    pub conditions: Vec<String>,
}

/// Finds a merge's deletions once all its rows are read (told how many): the source's keys
/// are read after the incremental read, never before (a row added in between would be
/// deleted).
#[derive(Clone)]
pub struct FindDeletion(
    pub std::sync::Arc<dyn Fn(u64) -> Result<Deletion, SinkError> + Send + Sync>,
);

impl std::fmt::Debug for FindDeletion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FindDeletion")
    }
}

/// What one load puts into the target, told to the sink at `begin`.
#[derive(Debug, Clone, Default)]
pub struct Load {
    /// The new table's keys.
    pub keys: Keys,
    /// How `commit` puts the rows in.
    pub apply: Apply,
    /// The rows come from the fallback table: keep the target's column definitions where
    /// they fit (SQLite knows only integers, reals, text and blobs).
    pub from_fallback: bool,
    /// Where the rows came from and when they were read, for a target that records it
    /// (`freshness`).
    pub origin: Option<(String, std::time::SystemTime)>,
    /// The table is put in place later, with others (a job's one swap): `stage` leaves
    /// the staged rows ready and durable (SQLite: committed as the staging table), and
    /// `swap`, or the target's swap of many tables, makes them visible.
    pub staged_apart: bool,
    /// About how many rows will come (the source's estimate), when the target asked for it
    /// (`Target::wants_row_estimate`).
    pub expected_rows: Option<u64>,
    /// What a replace does when the query's columns are no longer the table's
    /// (`[general] on_schema_change`).
    pub on_schema_change: super::schema::OnSchemaChange,
    /// A merge that also deletes the rows the source no longer has (`deletes = apply`).
    pub deletes: Option<FindDeletion>,
}

/// A target table being replaced: `begin` prepares a new table nobody sees yet, `write`
/// fills it, `commit` swaps it in whole (or applies it to the table, see `Load::apply`);
/// `abort` (or a crash) leaves the old one.
pub trait Sink: Send {
    fn describe(&self) -> String;
    /// What the target table holds, for an incremental run: its columns, key and largest
    /// `key` value (only when `read_max`: on a large table without an index on `key` it is a
    /// scan, which a full refresh does not need); `None` when it does not exist. Called
    /// before `begin`; changes nothing.
    fn inspect(&mut self, key: &str, read_max: bool) -> Result<Option<TargetState>, SinkError>;
    /// How `commit` puts the new rows in (default: `Apply::Replace`).
    /// Prepares the new table with these columns, for `load` (the primary key at once,
    /// secondary indexes built before `commit` swaps it in).
    fn begin(&mut self, columns: &[SourceColumn], load: &Load) -> Result<(), SinkError>;
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError>;
    /// Rows the target table holds now (`None` when it does not exist yet), for the
    /// empty and shrink guards; called after `begin`, before `commit`.
    fn target_rows(&mut self) -> Result<Option<u64>, SinkError>;
    /// Checks the staged row count against `rows_read` and readies the staged rows (indexes
    /// built); nothing is visible yet.
    fn stage(&mut self, rows_read: u64) -> Result<(), SinkError>;
    /// Makes the staged rows visible, all at once.
    fn swap(&mut self) -> Result<Applied, SinkError>;
    /// `stage`, then `swap`.
    fn commit(&mut self, rows_read: u64) -> Result<Applied, SinkError> {
        self.stage(rows_read)?;
        self.swap()
    }
    /// Rows to delete in the same transaction as the staged rows are applied (a merge
    /// under `deletes = apply`); called before `stage`.
    fn delete_too(&mut self, deletion: Deletion);
    /// For a target's swap of many of its own tables at once.
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
    fn abort(&mut self);
}
