//! The local target: a table in a SQLite file, replaced inside one transaction.
//!
//! The new rows go into a fresh table (`<table>__dbsync_new`), which SQLite appends at the
//! end of the file, so those pages need no rollback journal; at commit the old table is
//! dropped and the new one renamed, still inside the same transaction. A failure, or a
//! kill at any instant, leaves the old table as it was.

mod apply;
mod bind;
mod inspect;
mod job;

use super::busy;
use crate::target::staging::{self, SQLITE};

pub use apply::index_name;
use bind::{RawInsert, MAX_PARAMS, MAX_ROWS_PER_INSERT};
pub use job::swap_all;

use crate::freshness;
use crate::incremental::{Applied, Apply, TargetState};
use crate::target::{Load, Sink, SinkError};
use crate::transform::keys::{self, Index, Keys};
use crate::transform::{quote_sqlite, ColumnView, DecimalMode, SourceColumn};
use arrow::record_batch::RecordBatch;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub struct SqliteSink {
    path: PathBuf,
    table: String,
    staging: String,
    /// Declared before `conn`: statements are finalized before the connection closes.
    full: Option<RawInsert>,
    tail: Option<RawInsert>,
    conn: Option<Connection>,
    ncols: usize,
    rows_per_insert: usize,
    batches: u64,
    rows: u64,
    /// Where the rows come from and when they were read, for the load record.
    origin: Option<(String, SystemTime)>,
    /// journal_mode WAL (default) or DELETE (`[local_db] journal_mode`).
    wal: bool,
    /// How DECIMAL columns are declared (`[local_db] decimal`).
    decimal: DecimalMode,
    /// Secondary indexes, built once the rows are in.
    indexes: Vec<Index>,
    /// Swap the new table in, or add (merge) its rows to the table.
    apply: Apply,
    columns: Vec<String>,
    /// The incremental key, when `inspect` found no index that leads with it: an
    /// incremental run adds one (a full replace builds it with the table).
    unindexed_key: Option<String>,
    /// The primary key's columns, and those of them declared COLLATE RTRIM (see `begin`).
    primary: Vec<String>,
    rtrim_keys: Vec<String>,
    /// Staged now, swapped later with other tables (`Load::staged_apart`).
    staged_apart: bool,
    /// Rows a merge also deletes (`deletes = apply`).
    deletion: crate::target::Deletion,
}

impl SqliteSink {
    pub fn new(path: &Path, table: &str) -> Self {
        SqliteSink {
            path: path.to_path_buf(),
            table: table.to_string(),
            staging: format!("{table}__dbsync_new"),
            full: None,
            tail: None,
            conn: None,
            ncols: 0,
            rows_per_insert: 1,
            batches: 0,
            rows: 0,
            origin: None,
            wal: true,
            decimal: DecimalMode::Auto,
            indexes: Vec::new(),
            apply: Apply::Replace,
            deletion: Default::default(),
            columns: Vec::new(),
            unindexed_key: None,
            primary: Vec::new(),
            rtrim_keys: Vec::new(),
            staged_apart: false,
        }
    }

    /// journal_mode WAL (true) or DELETE.
    pub fn with_wal(mut self, wal: bool) -> Self {
        self.wal = wal;
        self
    }

    /// How DECIMAL columns are declared (`[local_db] decimal`).
    pub fn with_decimal(mut self, decimal: DecimalMode) -> Self {
        self.decimal = decimal;
        self
    }

    fn err(&self, action: impl Into<String>, source: rusqlite::Error) -> SinkError {
        let hint = match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::CannotOpen)
            | Some(rusqlite::ErrorCode::ReadOnly)
            | Some(rusqlite::ErrorCode::PermissionDenied) => {
                " (check that [local_db] db_path is a writable file in a writable directory)"
            }
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
                " (another process holds a write lock on the file; retry when it is done)"
            }
            Some(rusqlite::ErrorCode::DiskFull) => " (the disk is full)",
            _ => "",
        };
        SinkError::Sqlite {
            path: self.path.display().to_string(),
            action: action.into(),
            source: Box::new(source),
            hint,
        }
    }

    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("begin() opened the connection")
    }
}

impl SqliteSink {
    /// The file opened for the load (created, with its directory, if missing), set up for
    /// bulk writes; refuses a view under the table's name.
    fn open(&self) -> Result<Connection, SinkError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SinkError::Dir {
                path: self.path.display().to_string(),
                source,
            })?;
        }
        // One thread uses this connection: SQLite's own locking would only cost time.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|e| self.err("opening", e))?;
        busy::install(&conn).map_err(|e| self.err("setting the busy handler", e))?;
        // page_size only takes effect in a new (empty) file: 64 KiB pages cut the writer's
        // work per row for bulk loads (measured: about a tenth of the wall time at 1M rows).
        // A 16 MiB cache measured as fast as larger ones. legacy_alter_table keeps the final
        // RENAME from re-checking views that name the table while it is briefly absent.
        conn.execute_batch(
            "PRAGMA page_size = 65536; PRAGMA cache_size = -16384; PRAGMA legacy_alter_table = ON;",
        )
        .map_err(|e| self.err("setting pragmas", e))?;
        self.journal_mode(&conn)?;
        if self.has(&conn, "view")? {
            return Err(SinkError::Refused {
                target: self.describe(),
                why: format!(
                    "`{}` is a view: dbsync replaces tables (point [local_db] table_name at a table)",
                    self.table
                ),
            });
        }
        Ok(conn)
    }

    /// WAL: readers keep reading the old table during the load and its commit, and a long
    /// reader cannot make the commit fail (see README, "SQLite target").
    fn journal_mode(&self, conn: &Connection) -> Result<(), SinkError> {
        let wanted = if self.wal { "wal" } else { "delete" };
        let mode: String = conn
            .query_row(&format!("PRAGMA journal_mode = {wanted}"), [], |r| r.get(0))
            .map_err(|e| self.err("setting journal_mode", e))?;
        if !mode.eq_ignore_ascii_case(wanted) {
            log::warn!(
                "{}: journal_mode is {mode}, not {wanted} (the file system may not allow it)",
                self.path.display()
            );
        }
        Ok(())
    }

    /// The write transaction begun, and the staging table made in it with the columns'
    /// declared types and the primary key.
    fn create_staging(&mut self, columns: &[SourceColumn], keys: &Keys) -> Result<(), SinkError> {
        self.primary = keys.primary.clone().unwrap_or_default();
        // A text key the source compares ignoring trailing spaces (PAD SPACE) is compared so
        // here too: else a merge would keep 'abc' and 'abc ' as two rows.
        self.rtrim_keys = columns
            .iter()
            .filter(|c| {
                keys::pads_trailing_spaces(c)
                    && self.primary.iter().any(|k| k.eq_ignore_ascii_case(&c.name))
            })
            .map(|c| c.name.clone())
            .collect();
        let types = self.declared_types(columns)?;
        let defs: Vec<String> = columns
            .iter()
            .zip(&types)
            .map(|(c, ty)| {
                let rtrim = self.rtrim_keys.contains(&c.name);
                let collate = if rtrim { " COLLATE RTRIM" } else { "" };
                format!("{} {ty}", quote_sqlite(&c.name))
                    .trim_end()
                    .to_string()
                    + collate
            })
            .collect();
        let pk = SQLITE
            .primary_key(keys)
            .map_or(String::new(), |pk| format!(", {pk}"));
        self.indexes = staging::indexes(&self.apply, keys);
        self.columns = columns.iter().map(|c| c.name.clone()).collect();
        let sql = format!(
            "BEGIN IMMEDIATE; DROP TABLE IF EXISTS {staging}; CREATE TABLE {staging} ({defs}{pk});",
            staging = quote_sqlite(&self.staging),
            defs = defs.join(", ")
        );
        // Another run's writes may hold the file all along (its staging of a large table).
        self.conn()
            .execute_batch(&sql)
            .map_err(|e| self.busy_or_err(e, super::busy::FILE_WAIT, "creating the new table"))
    }

    /// A write that waited `waited` for the file and did not get it: the file is in use, as
    /// when its lock is (exit 4), not a failure of this run; any other error as `err`.
    pub(super) fn busy_or_err(
        &self,
        e: rusqlite::Error,
        waited: std::time::Duration,
        action: &str,
    ) -> SinkError {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy) => SinkError::Busy {
                target: format!("SQLite {}", self.path.display()),
                waited: waited.as_secs(),
            },
            _ => self.err(action, e),
        }
    }
}

impl SqliteSink {
    /// Puts the staged rows in place inside the transaction under way: the staging table
    /// renamed over the table (and its indexes built), or applied to it; and the load
    /// recorded.
    pub(super) fn swap_in_place(&mut self) -> Result<Applied, SinkError> {
        let rows_read = self.rows;
        let applied = match self.apply {
            Apply::Replace => {
                let sql = format!(
                    "DROP TABLE IF EXISTS {table}; ALTER TABLE {staging} RENAME TO {table};",
                    table = quote_sqlite(&self.table),
                    staging = quote_sqlite(&self.staging)
                );
                self.conn()
                    .execute_batch(&sql)
                    .map_err(|e| self.err("swapping in the new table", e))?;
                self.build_indexes()?;
                Applied {
                    inserted: rows_read,
                    ..Applied::default()
                }
            }
            _ => self.apply_staged(rows_read)?,
        };
        if let Some((source, loaded_at)) = self.origin.clone() {
            // What the table holds now (an incremental run added to it).
            let rows = match self.apply {
                Apply::Replace => rows_read,
                _ => self.target_rows()?.unwrap_or(rows_read),
            };
            let record = freshness::LoadRecord {
                loaded_at,
                rows,
                source,
            };
            freshness::write(self.conn(), &self.table, &record)
                .map_err(|e| self.err("writing the load record", e))?;
        }
        Ok(applied)
    }

    /// Commits the transaction the swap ran in, and checkpoints the WAL.
    pub(super) fn finish(&self) -> Result<(), SinkError> {
        self.conn()
            .execute_batch("COMMIT")
            .map_err(|e| self.err("committing", e))?;
        if self.wal {
            // Moves the load from the WAL into the file and empties the WAL, so it does not
            // keep the table's size on disk twice. Without waiting: a reader still on the old
            // rows only makes this do less (the last connection to close finishes it).
            let _ = self.conn().busy_timeout(Duration::ZERO);
            if let Err(e) = self
                .conn()
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            {
                log::debug!("checkpoint after the load: {e}");
            }
        }
        Ok(())
    }
}

impl Sink for SqliteSink {
    fn inspect(&mut self, key: &str, read_max: bool) -> Result<Option<TargetState>, SinkError> {
        self.inspect_table(key, read_max)
    }

    fn describe(&self) -> String {
        format!("SQLite {} table {}", self.path.display(), self.table)
    }

    fn begin(&mut self, columns: &[SourceColumn], load: &Load) -> Result<(), SinkError> {
        self.apply = load.apply.clone();
        self.origin = load.origin.clone();
        self.staged_apart = load.staged_apart;
        self.conn = Some(self.open()?);
        if self.staged_apart && self.wal {
            // The staging table's commit need not wait for the disk (safe from corruption
            // in WAL mode): a crash before the swap only loses a staging table the next run
            // drops, and the swap's own commit syncs the log with it.
            self.conn()
                .execute_batch("PRAGMA synchronous = NORMAL")
                .map_err(|e| self.err("setting synchronous", e))?;
        }
        self.ncols = columns.len();
        self.rows_per_insert = (MAX_PARAMS / self.ncols.max(1)).clamp(1, MAX_ROWS_PER_INSERT);
        self.create_staging(columns, &load.keys)?;
        if self.apply == Apply::Replace {
            self.judge_schema_change(columns, load.on_schema_change)?;
        } else {
            self.check_types()?;
            if let Some(key) = self.unindexed_key.clone() {
                self.index_key(&key)?;
            }
        }
        self.full = Some(self.prepare(self.rows_per_insert)?);
        Ok(())
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.batches += 1;
        let views = batch
            .columns()
            .iter()
            .zip(batch.schema().fields())
            .map(|(a, f)| {
                ColumnView::new(a).map_err(|message| SinkError::Value {
                    batch: self.batches,
                    row: 0,
                    column: f.name().clone(),
                    message,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = batch.num_rows();
        let full = self.full.as_ref().expect("begin() prepared the INSERT");
        let mut start = 0;
        while start + full.rows <= n {
            self.insert_rows(full, &views, start)?;
            start += full.rows;
        }
        if start < n {
            let rest = n - start;
            if self.tail.as_ref().map(|t| t.rows) != Some(rest) {
                self.tail = Some(self.prepare(rest)?);
            }
            self.insert_rows(self.tail.as_ref().expect("prepared above"), &views, start)?;
        }
        self.rows += n as u64;
        Ok(())
    }

    fn target_rows(&mut self) -> Result<Option<u64>, SinkError> {
        // Inside the write transaction begun in `begin`, so no other writer can change it
        // before the swap.
        let conn = self.conn();
        if !self.has(conn, "table")? {
            return Ok(None);
        }
        let sql = format!("SELECT count(*) FROM {}", quote_sqlite(&self.table));
        let n: i64 = conn
            .query_row(&sql, [], |r| r.get(0))
            .map_err(|e| self.err("counting the table's rows", e))?;
        Ok(Some(n as u64))
    }

    fn stage(&mut self, rows_read: u64) -> Result<(), SinkError> {
        // Finalized first: a pending statement would block the DROP of the swap.
        self.full = None;
        self.tail = None;
        let staged: i64 = self
            .conn()
            .query_row(
                &format!("SELECT count(*) FROM {}", quote_sqlite(&self.staging)),
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err("counting the new table", e))?;
        if staged as u64 != rows_read || self.rows != rows_read {
            return Err(SinkError::Count {
                staged: staged as u64,
                read: rows_read,
            });
        }
        if self.staged_apart {
            // Kept as the staging table; the target is untouched until the swap. The
            // connection stays open (closing the last one would checkpoint the log after
            // each table) but gives back its cache while the other tables load.
            self.conn()
                .execute_batch("COMMIT; PRAGMA shrink_memory")
                .map_err(|e| self.err("committing the staging table", e))?;
        }
        Ok(())
    }

    fn swap(&mut self) -> Result<Applied, SinkError> {
        if self.staged_apart {
            self.conn()
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| self.err("beginning the swap", e))?;
        }
        let applied = self.swap_in_place()?;
        self.finish()?;
        Ok(applied)
    }

    fn delete_too(&mut self, deletion: crate::target::Deletion) {
        self.deletion = deletion;
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn abort(&mut self) {
        self.full = None;
        self.tail = None;
        if let Some(conn) = self.conn.take() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            if self.staged_apart {
                // A committed staging table is dropped; a kill leaves it for the next run.
                let drop = format!("DROP TABLE IF EXISTS {}", quote_sqlite(&self.staging));
                if let Err(e) = conn.execute_batch(&drop) {
                    log::warn!(
                        "could not drop the staging table `{}` (the next run will): {e}",
                        self.staging
                    );
                }
            }
        }
    }
}
