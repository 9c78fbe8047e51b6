//! The local target: a table in a SQLite file, replaced inside one transaction.
//!
//! The new rows go into a fresh table (`<table>__dbsync_new`), which SQLite appends at the
//! end of the file, so those pages need no rollback journal; at commit the old table is
//! dropped and the new one renamed, still inside the same transaction. A failure, or a
//! kill at any instant, leaves the old table as it was.

use crate::freshness;
use crate::incremental::{Applied, Apply, TargetMax, TargetState};
use crate::target::{Load, Sink, SinkError};
use crate::transform::keys::{self, Index};
use crate::transform::{self, quote_sqlite, ColumnView, DecimalMode, SourceColumn, SqlType};
use arrow::array::Array;
use arrow::record_batch::RecordBatch;
use rusqlite::{ffi, Connection, OpenFlags};
use std::ffi::{c_int, CString};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Most rows one INSERT binds; SQLite allows 32766 parameters per statement.
const MAX_ROWS_PER_INSERT: usize = 128;
const MAX_PARAMS: usize = 32_766;

/// A prepared INSERT owned outside rusqlite, so values can be bound without a copy
/// (SQLITE_STATIC: the batch outlives the statement's step).
struct RawInsert {
    stmt: *mut ffi::sqlite3_stmt,
    rows: usize,
}

impl Drop for RawInsert {
    fn drop(&mut self) {
        // SAFETY: `stmt` came from sqlite3_prepare_v2 and is finalized exactly once; the
        // sink drops its statements before its connection (field order).
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

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
            columns: Vec::new(),
            unindexed_key: None,
            primary: Vec::new(),
            rtrim_keys: Vec::new(),
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

    /// Each column's declared type. Rows added to an existing table keep its DECIMAL
    /// columns as they are declared there when that is TEXT (made before `decimal = auto`,
    /// or under `decimal = text`): until a full replace, which declares them anew.
    fn declared_types(&self, columns: &[SourceColumn]) -> Result<Vec<String>, SinkError> {
        let mut types: Vec<String> = columns
            .iter()
            .map(|c| transform::sqlite_decl(&c.ty, self.decimal))
            .collect();
        let wide: Vec<&str> = columns
            .iter()
            .filter(|c| {
                matches!(c.ty, SqlType::Decimal { precision, .. } if precision > transform::REAL_DIGITS)
            })
            .map(|c| c.name.as_str())
            .collect();
        if self.decimal == DecimalMode::Real && !wide.is_empty() {
            log::warn!(
                "[local_db] decimal = real: {} hold(s) more than {} digits, which SQLite's REAL \
                 rounds (decimal = auto keeps them exact, as text)",
                wide.join(", "),
                transform::REAL_DIGITS
            );
        }
        if self.apply == Apply::Replace || !self.has(self.conn(), "table")? {
            return Ok(types);
        }
        let have = self.table_types(&self.table)?;
        let mut kept = Vec::new();
        for (c, ty) in columns.iter().zip(types.iter_mut()) {
            let text = have
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&c.name))
                .is_some_and(|(_, t)| t.eq_ignore_ascii_case("TEXT"));
            if matches!(c.ty, SqlType::Decimal { .. }) && text && ty.as_str() != "TEXT" {
                kept.push(format!("`{}` (would be {ty})", c.name));
                *ty = "TEXT".into();
            }
        }
        if !kept.is_empty() {
            log::info!(
                "DECIMAL columns stay exact text in the existing table until a --full-refresh \
                 declares them as numbers: {}",
                kept.join(", ")
            );
        }
        Ok(types)
    }

    /// Each column's name and declared type.
    fn table_types(&self, table: &str) -> Result<Vec<(String, String)>, SinkError> {
        self.conn()
            .prepare(&format!("PRAGMA table_info({})", quote_sqlite(table)))
            .and_then(|mut st| st.query_map([], |r| Ok((r.get(1)?, r.get(2)?)))?.collect())
            .map_err(|e| self.err("reading the column types", e))
    }

    /// Puts the staged rows into the existing table, inside the load's transaction: a merge
    /// updates the rows whose key comes again (in place: cheaper than delete and insert) and
    /// adds the others. Drops the staging table.
    fn apply_staged(&self, staged: u64) -> Result<Applied, SinkError> {
        let (table, staging) = (quote_sqlite(&self.table), quote_sqlite(&self.staging));
        let cols: Vec<String> = self.columns.iter().map(|c| quote_sqlite(c)).collect();
        let cols = cols.join(", ");
        let (updated, only_new) = match &self.apply {
            Apply::Merge(key) => {
                // A key column compared without trailing spaces is set too: the source's
                // 'abc ' replaces the target's 'abc', as it does on MySQL.
                let is_key = |c: &String| {
                    key.iter().any(|k| k.eq_ignore_ascii_case(c))
                        && !self.rtrim_keys.iter().any(|k| k.eq_ignore_ascii_case(c))
                };
                let on: Vec<String> = key
                    .iter()
                    .map(|k| format!("{table}.{k} = {staging}.{k}", k = quote_sqlite(k)))
                    .collect();
                let on = on.join(" AND ");
                let set: Vec<String> = self
                    .columns
                    .iter()
                    .filter(|c| !is_key(c))
                    .map(|c| format!("{q} = {staging}.{q}", q = quote_sqlite(c)))
                    .collect();
                let updated = if set.is_empty() {
                    // Only key columns: a row that comes again is already there as it is.
                    let sql = format!(
                        "SELECT count(*) FROM {staging} WHERE EXISTS (SELECT 1 FROM {table} WHERE {on})"
                    );
                    self.conn()
                        .query_row(&sql, [], |r| r.get::<_, i64>(0))
                        .map(|n| n as usize)
                } else {
                    let sql = format!(
                        "UPDATE {table} SET {} FROM {staging} WHERE {on}",
                        set.join(", ")
                    );
                    self.conn().execute(&sql, [])
                }
                .map_err(|e| self.err("replacing the rows that came again", e))?;
                let only_new = format!(" WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {on})");
                (updated as u64, only_new)
            }
            _ => (0, String::new()),
        };
        let sql = format!("INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging}{only_new}");
        let inserted = self
            .conn()
            .execute(&sql, [])
            .map_err(|e| self.err("adding the new rows", e))? as u64;
        if inserted + updated != staged {
            return Err(SinkError::Count {
                staged: inserted + updated,
                read: staged,
            });
        }
        self.conn()
            .execute_batch(&format!("DROP TABLE {staging}"))
            .map_err(|e| self.err("dropping the staging table", e))?;
        Ok(Applied { inserted, updated })
    }

    /// Indexes the incremental key of a table made before it was one (under `replace`, or
    /// by another tool), inside the run's transaction: once, then every maximum is cheap.
    fn index_key(&self, key: &str) -> Result<(), SinkError> {
        let t0 = std::time::Instant::now();
        let name = crate::incremental::key_index_name(&self.table, key);
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
            quote_sqlite(&name),
            quote_sqlite(&self.table),
            quote_sqlite(key)
        );
        self.conn()
            .execute_batch(&sql)
            .map_err(|e| self.err(format!("indexing `{key}`"), e))?;
        log::info!(
            "indexed `{key}` ({name}) in {:.2} s, once: each run reads its largest value",
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Refuses to add rows to a table whose declared column types are not those the query's
    /// columns now get (the staging table's): SQLite would store them by another affinity.
    fn check_types(&self) -> Result<(), SinkError> {
        let (have, want) = (
            self.table_types(&self.table)?,
            self.table_types(&self.staging)?,
        );
        let differ = have
            .iter()
            .zip(&want)
            .find(|(h, w)| !h.0.eq_ignore_ascii_case(&w.0) || !h.1.eq_ignore_ascii_case(&w.1));
        match differ {
            None if have.len() == want.len() => Ok(()),
            None => Err(SinkError::Refused {
                target: self.describe(),
                why: "its columns are not the query's: run once with --full-refresh to replace it"
                    .into(),
            }),
            Some((h, w)) => Err(SinkError::Refused {
                target: self.describe(),
                why: format!(
                    "column `{}` is declared {:?} there, but the query's `{}` now gets {:?}: \
                     adding rows would store them otherwise; run once with --full-refresh",
                    h.0, h.1, w.0, w.1
                ),
            }),
        }
    }

    /// The largest value of `key` in the table. Integers above 2^63 are held as their
    /// digits (text, which SQLite orders after every integer): the longest, then largest.
    fn max_of(&self, conn: &Connection, key: &str) -> Result<Option<TargetMax>, SinkError> {
        let (t, k) = (quote_sqlite(&self.table), quote_sqlite(key));
        let err = |e| self.err("reading the largest incremental_key", e);
        let v: rusqlite::types::Value = conn
            .query_row(&format!("SELECT max({k}) FROM {t}"), [], |r| r.get(0))
            .map_err(err)?;
        use rusqlite::types::Value;
        Ok(match v {
            Value::Null => None,
            Value::Integer(n) => Some(TargetMax::Int(n.into())),
            Value::Real(f) => Some(TargetMax::Text(f.to_string())),
            Value::Text(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                let sql = format!(
                    "SELECT {k} FROM {t} WHERE typeof({k}) = 'text' ORDER BY length({k}) DESC, {k} DESC LIMIT 1"
                );
                let s: String = conn.query_row(&sql, [], |r| r.get(0)).map_err(err)?;
                Some(TargetMax::Text(s))
            }
            Value::Text(s) => Some(TargetMax::Text(s)),
            Value::Blob(b) => Some(TargetMax::Text(String::from_utf8_lossy(&b).into_owned())),
        })
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

    /// True when the file holds a `kind` ('table' or 'view') under the target's name
    /// (compared as SQLite compares names: without case).
    fn has(&self, conn: &Connection, kind: &str) -> Result<bool, SinkError> {
        conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = ?1 AND name = ?2 COLLATE NOCASE",
            [kind, self.table.as_str()],
            |r| r.get(0),
        )
        .map_err(|e| self.err("looking up the table", e))
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

    /// The secondary indexes, on the renamed table under their source names (SQLite's index
    /// names are per file: the old table's went with it), inside the load's transaction.
    fn build_indexes(&self) -> Result<(), SinkError> {
        let t0 = std::time::Instant::now();
        for i in &self.indexes {
            let cols: Vec<String> = i.columns.iter().map(|(c, _)| quote_sqlite(c)).collect();
            let sql = format!(
                "CREATE {}INDEX {} ON {} ({})",
                if i.unique { "UNIQUE " } else { "" },
                quote_sqlite(&index_name(&self.table, &i.name)),
                quote_sqlite(&self.table),
                cols.join(", ")
            );
            self.conn()
                .execute_batch(&sql)
                .map_err(|e| self.err(format!("building index {}", i.name), e))?;
        }
        if !self.indexes.is_empty() {
            log::info!(
                "{} indexes built in {:.2} s",
                self.indexes.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    fn sqlite_error(&self, action: String) -> SinkError {
        // SAFETY: the connection is open; errcode/errmsg read its last error.
        let (code, msg) = unsafe {
            let db = self.conn().handle();
            let msg = std::ffi::CStr::from_ptr(ffi::sqlite3_errmsg(db))
                .to_string_lossy()
                .into_owned();
            (ffi::sqlite3_extended_errcode(db), msg)
        };
        if code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY && !self.primary.is_empty() {
            return SinkError::DuplicateKey {
                key: self.primary.join(", "),
                detail: format!("{action}: {msg}"),
            };
        }
        self.err(
            action,
            rusqlite::Error::SqliteFailure(ffi::Error::new(code), Some(msg)),
        )
    }

    fn prepare(&self, rows: usize) -> Result<RawInsert, SinkError> {
        let sql = CString::new(self.insert_sql(rows)).expect("no NUL in quoted SQL");
        let mut stmt = std::ptr::null_mut();
        // SAFETY: a valid connection handle and NUL-terminated SQL; the statement is owned
        // by the returned RawInsert.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                self.conn().handle(),
                sql.as_ptr(),
                -1,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.sqlite_error("preparing INSERT".into()));
        }
        Ok(RawInsert { stmt, rows })
    }

    /// Inserts rows `start..start + ins.rows` with one execution of `ins`.
    fn insert_rows(
        &self,
        ins: &RawInsert,
        views: &[ColumnView<'_>],
        start: usize,
    ) -> Result<(), SinkError> {
        let ncols = views.len();
        let mut rc = ffi::SQLITE_OK;
        for (col, view) in views.iter().enumerate() {
            // SAFETY: `ins.stmt` is a live statement with ins.rows * ncols parameters; bound
            // text and blobs point into `views`' arrays, which outlive the step below.
            rc = unsafe { bind_column(ins.stmt, view, start, ins.rows, ncols, col) };
            if rc != ffi::SQLITE_OK {
                break;
            }
        }
        if rc == ffi::SQLITE_OK {
            // SAFETY: as above; reset makes the statement reusable.
            rc = unsafe { ffi::sqlite3_step(ins.stmt) };
            unsafe { ffi::sqlite3_reset(ins.stmt) };
            if rc == ffi::SQLITE_DONE {
                return Ok(());
            }
        }
        Err(self.sqlite_error(format!(
            "inserting rows {start}..{} of batch {}",
            start + ins.rows,
            self.batches
        )))
    }
}

/// The SQLite name of the source's index `index` on `table`. SQLite's index names are one
/// namespace per file, and schemas reuse names across tables (`idx_fk_film_id` on two of
/// them): the table's name keeps them apart, the same every run, and a replaced table's
/// old indexes go with it.
pub fn index_name(table: &str, index: &str) -> String {
    format!("{table}__{index}")
}

/// # Safety
/// `stmt` must be live; with SQLITE_STATIC, `s` must outlive the statement's next step.
unsafe fn bind_text(
    stmt: *mut ffi::sqlite3_stmt,
    i: c_int,
    s: &str,
    destructor: ffi::sqlite3_destructor_type,
) -> c_int {
    ffi::sqlite3_bind_text64(
        stmt,
        i,
        s.as_ptr().cast(),
        s.len() as u64,
        destructor,
        ffi::SQLITE_UTF8 as u8,
    )
}

/// Binds one column of rows `start..start + rows`; parameter of (row r, column c) is
/// `r * ncols + c + 1`. See `transform::sqlite_type` for why each value lands where it does.
///
/// # Safety
/// `stmt` must be a live statement with at least `rows * ncols` parameters, and the arrays
/// behind `view` must outlive its next step (values are bound SQLITE_STATIC).
unsafe fn bind_column(
    stmt: *mut ffi::sqlite3_stmt,
    view: &ColumnView<'_>,
    start: usize,
    rows: usize,
    ncols: usize,
    col: usize,
) -> c_int {
    let param = |r: usize| ((r - start) * ncols + col + 1) as c_int;
    macro_rules! each {
        ($arr:expr, |$i:ident, $v:ident| $bind:expr) => {{
            for r in start..start + rows {
                let $i = param(r);
                let rc = if $arr.is_null(r) {
                    ffi::sqlite3_bind_null(stmt, $i)
                } else {
                    let $v = $arr.value(r);
                    $bind
                };
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
            ffi::SQLITE_OK
        }};
    }
    let text = |i: c_int, s: &str| bind_text(stmt, i, s, ffi::SQLITE_STATIC());
    let blob = |i: c_int, b: &[u8]| {
        ffi::sqlite3_bind_blob64(
            stmt,
            i,
            b.as_ptr().cast(),
            b.len() as u64,
            ffi::SQLITE_STATIC(),
        )
    };
    match view {
        ColumnView::I8(a) => each!(a, |i, v| ffi::sqlite3_bind_int64(stmt, i, v as i64)),
        ColumnView::I16(a) => each!(a, |i, v| ffi::sqlite3_bind_int64(stmt, i, v as i64)),
        ColumnView::I32(a) => each!(a, |i, v| ffi::sqlite3_bind_int64(stmt, i, v as i64)),
        ColumnView::I64(a) => each!(a, |i, v| ffi::sqlite3_bind_int64(stmt, i, v)),
        ColumnView::U8(a) => each!(a, |i, v| ffi::sqlite3_bind_int64(stmt, i, v as i64)),
        ColumnView::U16(a) => each!(a, |i, v| ffi::sqlite3_bind_int64(stmt, i, v as i64)),
        ColumnView::U32(a) => each!(a, |i, v| ffi::sqlite3_bind_int64(stmt, i, v as i64)),
        ColumnView::U64(a) => each!(a, |i, v| match i64::try_from(v) {
            Ok(v) => ffi::sqlite3_bind_int64(stmt, i, v),
            // Above SQLite's INTEGER range: kept exact as its decimal text (copied).
            Err(_) => bind_text(stmt, i, &v.to_string(), ffi::SQLITE_TRANSIENT()),
        }),
        ColumnView::F32(a) => each!(a, |i, v| ffi::sqlite3_bind_double(
            stmt,
            i,
            transform::float_as_shown(v)
        )),
        ColumnView::F64(a) => each!(a, |i, v| ffi::sqlite3_bind_double(stmt, i, v)),
        ColumnView::Bool(a) => each!(a, |i, v| ffi::sqlite3_bind_int64(stmt, i, v as i64)),
        ColumnView::Utf8(a) => each!(a, |i, v| text(i, v)),
        ColumnView::LargeUtf8(a) => each!(a, |i, v| text(i, v)),
        ColumnView::Bin(a) => each!(a, |i, v| blob(i, v)),
        ColumnView::LargeBin(a) => each!(a, |i, v| blob(i, v)),
        ColumnView::AllNull(_) => {
            for r in start..start + rows {
                let rc = ffi::sqlite3_bind_null(stmt, param(r));
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
            }
            ffi::SQLITE_OK
        }
    }
}

impl Sink for SqliteSink {
    fn describe(&self) -> String {
        format!("SQLite {} table {}", self.path.display(), self.table)
    }

    fn inspect(&mut self, key: &str, read_max: bool) -> Result<Option<TargetState>, SinkError> {
        if !self.path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .or_else(|_| Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY))
            .map_err(|e| self.err("opening", e))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| self.err("setting busy_timeout", e))?;
        if !self.has(&conn, "table")? {
            return Ok(None);
        }
        let info: Vec<(String, i64)> = conn
            .prepare(&format!("PRAGMA table_info({})", quote_sqlite(&self.table)))
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))?
                    .collect()
            })
            .map_err(|e| self.err("reading the table's columns", e))?;
        let columns: Vec<String> = info.iter().map(|(n, _)| n.clone()).collect();
        let mut pk: Vec<&(String, i64)> = info.iter().filter(|(_, p)| *p > 0).collect();
        pk.sort_by_key(|(_, p)| *p);
        let has_key = columns.iter().any(|c| c.eq_ignore_ascii_case(key));
        let max = if has_key && read_max {
            self.max_of(&conn, key)?
        } else {
            None
        };
        // The first column of the primary key (the rowid, or a table ordered by it) or of
        // an index makes the maximum a lookup rather than a scan.
        let leads = pk.first().is_some_and(|(n, _)| n.eq_ignore_ascii_case(key))
            || conn
                .query_row(
                    "SELECT count(*) > 0 FROM pragma_index_list(?1) l, pragma_index_info(l.name) i \
                     WHERE l.partial = 0 AND i.seqno = 0 AND i.name = ?2 COLLATE NOCASE",
                    [self.table.as_str(), key],
                    |r| r.get::<_, bool>(0),
                )
                .map_err(|e| self.err("reading the table's indexes", e))?;
        self.unindexed_key = (has_key && !leads).then(|| key.to_string());
        let has_rows = match max {
            Some(_) => true,
            None => conn
                .query_row(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {})",
                        quote_sqlite(&self.table)
                    ),
                    [],
                    |r| r.get::<_, bool>(0),
                )
                .map_err(|e| self.err("reading whether the table has rows", e))?,
        };
        // The primary key's index (none for an INTEGER PRIMARY KEY) says how it compares.
        let key_collations: Vec<(String, String)> = conn
            .prepare(
                "SELECT i.name, i.coll FROM pragma_index_list(?1) l, pragma_index_xinfo(l.name) i \
                 WHERE l.origin = 'pk' AND i.key = 1 ORDER BY i.seqno",
            )
            .and_then(|mut st| {
                st.query_map([self.table.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(|e| self.err("reading the primary key's collations", e))?;
        Ok(Some(TargetState {
            columns,
            primary_key: pk.into_iter().map(|(n, _)| n.clone()).collect(),
            max,
            has_rows,
            key_collations,
        }))
    }

    fn begin(&mut self, columns: &[SourceColumn], load: &Load) -> Result<(), SinkError> {
        self.apply = load.apply.clone();
        self.origin = load.origin.clone();
        let keys = &load.keys;
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
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| self.err("setting busy_timeout", e))?;
        // page_size only takes effect in a new (empty) file: 64 KiB pages cut the writer's
        // work per row for bulk loads (measured: about a tenth of the wall time at 1M rows).
        // A 16 MiB cache measured as fast as larger ones. legacy_alter_table keeps the final
        // RENAME from re-checking views that name the table while it is briefly absent.
        conn.execute_batch(
            "PRAGMA page_size = 65536; PRAGMA cache_size = -16384; PRAGMA legacy_alter_table = ON;",
        )
        .map_err(|e| self.err("setting pragmas", e))?;
        // WAL: readers keep reading the old table during the load and its commit, and a
        // long reader cannot make the commit fail (see README, "SQLite target").
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
        if self.has(&conn, "view")? {
            return Err(SinkError::Refused {
                target: self.describe(),
                why: format!(
                    "`{}` is a view: dbsync replaces tables (point [local_db] table_name at a table)",
                    self.table
                ),
            });
        }
        self.conn = Some(conn);
        self.ncols = columns.len();
        self.rows_per_insert = (MAX_PARAMS / self.ncols.max(1)).clamp(1, MAX_ROWS_PER_INSERT);
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
        let pk = match &keys.primary {
            Some(cols) => {
                let cols: Vec<String> = cols.iter().map(|c| quote_sqlite(c)).collect();
                format!(", PRIMARY KEY ({})", cols.join(", "))
            }
            None => String::new(),
        };
        // Applied rows go into a table that has its indexes already.
        self.indexes = match self.apply {
            Apply::Replace => keys.indexes.clone(),
            _ => Vec::new(),
        };
        self.columns = columns.iter().map(|c| c.name.clone()).collect();
        let sql = format!(
            "BEGIN IMMEDIATE; DROP TABLE IF EXISTS {staging}; CREATE TABLE {staging} ({defs}{pk});",
            staging = quote_sqlite(&self.staging),
            defs = defs.join(", ")
        );
        self.conn()
            .execute_batch(&sql)
            .map_err(|e| self.err("creating the new table", e))?;
        if self.apply != Apply::Replace {
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

    fn commit(&mut self, rows_read: u64) -> Result<Applied, SinkError> {
        // Finalized first: a pending statement would block the DROP below.
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
                    updated: 0,
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
        Ok(applied)
    }

    fn abort(&mut self) {
        self.full = None;
        self.tail = None;
        if let Some(conn) = self.conn.take() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
        }
    }
}
