//! Sources: something that knows its columns and can stream its rows as Arrow batches.

pub mod mysql;
pub mod sqlite;

use crate::connect::{Abandon, ConnectError};
use crate::transform::SourceColumn;
use arrow::record_batch::RecordBatch;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SourceError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("the query in [{section}] query failed on the server: {message}")]
    Query {
        section: &'static str,
        message: String,
    },
    #[error(
        "the query returns column `{0}` more than once: give each column a distinct alias (AS ...)"
    )]
    DuplicateColumn(String),
    #[error("column {index} of the query has no name: give it an alias (AS ...)")]
    UnnamedColumn { index: usize },
    #[error("column `{column}` has type {ty}, which dbsync cannot copy: {fix}")]
    Unsupported {
        column: String,
        ty: String,
        fix: String,
    },
    #[error("reading the query result failed after {rows} rows (batch {batch}): {message}")]
    Read {
        rows: u64,
        batch: u64,
        message: String,
    },
    #[error("row {row} (batch {batch}), column `{column}`: the value {value:?} is a zero or partial date; {fix}")]
    Value {
        column: String,
        row: u64,
        batch: u64,
        value: String,
        fix: String,
    },
    #[error("cannot read in partitions by [external_db] partition_column = {column}: {why}")]
    Partition { column: String, why: String },
    #[error("cannot read the fallback table {table} in {path}: {message}")]
    Fallback {
        path: String,
        table: String,
        message: String,
    },
    /// A source connection that went silent or was cut under a statement (not the server
    /// refusing it): what waited, how long, under which setting.
    #[error("[{section}]: {message}")]
    Connection {
        section: &'static str,
        message: String,
    },
}

/// A batch ends at this many bytes of text and binary values even before its row count:
/// memory in flight is a few batches, so rows of a MiB must not come thousands at a time.
pub const MAX_BATCH_BYTES: usize = 8 << 20;

/// Where a source's rows go; `false` means the receiver has stopped and reading may end.
pub type Emit<'a> = dyn FnMut(RecordBatch) -> bool + 'a;

pub trait Source: Send {
    /// What the source says about itself in logs and the summary.
    fn describe(&self) -> String;
    fn columns(&self) -> &[SourceColumn];
    /// The keys a target table of these rows may have (none unless the source knows).
    fn keys(&self) -> crate::transform::keys::Keys {
        Default::default()
    }
    /// Reads only the rows `filter` lets through (an incremental run).
    fn restrict(&mut self, filter: &crate::incremental::Filter);
    /// The filter `restrict` was given, if the source reads by it.
    fn restriction(&self) -> Option<&crate::incremental::Filter> {
        None
    }
    /// What the source tells of an incremental run's start (see `StartView`), asked of it
    /// in one bounded statement: what tells a run that would never read new rows. Sources
    /// that cannot tell, or a check that fails, say nothing.
    fn look_at_start(
        &mut self,
        _ask: &crate::incremental::StartQuestions,
    ) -> crate::incremental::StartView {
        Default::default()
    }
    /// Reads the rows on the connection of a job's `snapshot` (a source that has none reads
    /// as it would, at its own moment).
    fn read_in(&mut self, _snapshot: &mysql::Snapshot) {}
    /// The server's plan for the read, one line per step (`--dry-run`), if it has one.
    fn explain(&self) -> Result<Vec<String>, SourceError> {
        Ok(Vec::new())
    }
    /// The query as configured, for sources that run one.
    fn query_text(&self) -> Option<&str> {
        None
    }
    /// About how many rows the read will return, when the server can tell cheaply (its
    /// plan's estimate for a read of one table), for a progress bar's percent and ETA.
    fn estimate(&self) -> Option<u64> {
        None
    }
    /// Streams every row through `emit`; returns how many rows were read. `abandon` ends
    /// the read from another thread (a failure or a signal elsewhere).
    fn read(self: Box<Self>, emit: &mut Emit<'_>, abandon: &Abandon) -> Result<u64, SourceError>;
}
