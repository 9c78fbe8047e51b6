//! The local target: a table in a SQLite file, replaced inside one transaction.
//!
//! The new rows go into a fresh table (`<table>__dbsync_new`), which SQLite appends at the
//! end of the file, so those pages need no rollback journal; at commit the old table is
//! dropped and the new one renamed, still inside the same transaction. A failure, or a
//! kill at any instant, leaves the old table as it was.

use super::{Sink, SinkError};
use crate::transform::{self, quote_sqlite, Cell, ColumnView, SourceColumn};
use arrow::record_batch::RecordBatch;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most rows one INSERT binds; SQLite allows 32766 parameters per statement.
const MAX_ROWS_PER_INSERT: usize = 64;
const MAX_PARAMS: usize = 32_766;

pub struct SqliteSink {
    path: PathBuf,
    table: String,
    staging: String,
    conn: Option<Connection>,
    ncols: usize,
    rows_per_insert: usize,
    batches: u64,
    rows: u64,
}

impl SqliteSink {
    pub fn new(path: &Path, table: &str) -> Self {
        SqliteSink {
            path: path.to_path_buf(),
            table: table.to_string(),
            staging: format!("{table}__dbsync_new"),
            conn: None,
            ncols: 0,
            rows_per_insert: 1,
            batches: 0,
            rows: 0,
        }
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

    fn insert_sql(&self, rows: usize) -> String {
        let one = format!("({})", vec!["?"; self.ncols].join(","));
        format!(
            "INSERT INTO {} VALUES {}",
            quote_sqlite(&self.staging),
            vec![one.as_str(); rows].join(",")
        )
    }

    fn insert_rows(
        &self,
        views: &[ColumnView<'_>],
        start: usize,
        n: usize,
    ) -> Result<(), SinkError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&self.insert_sql(n))
            .map_err(|e| self.err("preparing INSERT", e))?;
        let mut idx = 1;
        for row in start..start + n {
            for view in views {
                let r = stmt.raw_bind_parameter(idx, SqliteCell(view.cell(row)));
                r.map_err(|e| self.err(format!("binding row {row} of batch {}", self.batches), e))?;
                idx += 1;
            }
        }
        stmt.raw_execute().map_err(|e| {
            self.err(
                format!(
                    "inserting rows {start}..{} of batch {}",
                    start + n,
                    self.batches
                ),
                e,
            )
        })?;
        Ok(())
    }
}

/// A value as SQLite stores it; see `transform::sqlite_type` for why each lands where.
struct SqliteCell<'a>(Cell<'a>);

impl rusqlite::ToSql for SqliteCell<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Cell::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Cell::Int(i) => ToSqlOutput::Owned(Value::Integer(i)),
            Cell::UInt(u) => match i64::try_from(u) {
                Ok(i) => ToSqlOutput::Owned(Value::Integer(i)),
                // Above SQLite's INTEGER range: kept exact as its decimal text.
                Err(_) => ToSqlOutput::Owned(Value::Text(u.to_string())),
            },
            Cell::Float(f) => ToSqlOutput::Owned(Value::Real(f)),
            Cell::Float32(f) => ToSqlOutput::Owned(Value::Real(transform::float_as_shown(f))),
            Cell::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Cell::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl Sink for SqliteSink {
    fn describe(&self) -> String {
        format!("SQLite {} table {}", self.path.display(), self.table)
    }

    fn begin(&mut self, columns: &[SourceColumn]) -> Result<(), SinkError> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SinkError::Dir {
                path: self.path.display().to_string(),
                source,
            })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn =
            Connection::open_with_flags(&self.path, flags).map_err(|e| self.err("opening", e))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| self.err("setting busy_timeout", e))?;
        // A large page cache keeps the writer from spilling (and so from taking the
        // exclusive lock) early; legacy_alter_table keeps the final RENAME from re-checking
        // views that name the table while it is briefly absent.
        conn.execute_batch("PRAGMA cache_size = -32768; PRAGMA legacy_alter_table = ON;")
            .map_err(|e| self.err("setting pragmas", e))?;
        self.conn = Some(conn);
        self.ncols = columns.len();
        self.rows_per_insert = (MAX_PARAMS / self.ncols.max(1)).clamp(1, MAX_ROWS_PER_INSERT);
        let defs: Vec<String> = columns
            .iter()
            .map(|c| {
                let ty = transform::sqlite_type(&c.ty);
                format!("{} {ty}", quote_sqlite(&c.name))
                    .trim_end()
                    .to_string()
            })
            .collect();
        let sql = format!(
            "BEGIN IMMEDIATE; DROP TABLE IF EXISTS {staging}; CREATE TABLE {staging} ({defs});",
            staging = quote_sqlite(&self.staging),
            defs = defs.join(", ")
        );
        self.conn()
            .execute_batch(&sql)
            .map_err(|e| self.err("creating the new table", e))
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
        let mut start = 0;
        while start < n {
            let take = self.rows_per_insert.min(n - start);
            self.insert_rows(&views, start, take)?;
            start += take;
        }
        self.rows += n as u64;
        Ok(())
    }

    fn commit(&mut self, rows_read: u64) -> Result<(), SinkError> {
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
        let sql = format!(
            "DROP TABLE IF EXISTS {table}; ALTER TABLE {staging} RENAME TO {table}; COMMIT;",
            table = quote_sqlite(&self.table),
            staging = quote_sqlite(&self.staging)
        );
        self.conn()
            .execute_batch(&sql)
            .map_err(|e| self.err("swapping in the new table", e))
    }

    fn abort(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
}
