//! Rows into the staging table: prepared multi-row INSERTs owned outside rusqlite, each
//! column of a batch bound straight from its Arrow array (no copy of the values).

use super::SqliteSink;
use crate::target::SinkError;
use crate::transform::{self, quote_sqlite, ColumnView};
use arrow::array::Array;
use rusqlite::ffi;
use std::ffi::{c_int, CString};

/// Most rows one INSERT binds; SQLite allows 32766 parameters per statement.
pub(super) const MAX_ROWS_PER_INSERT: usize = 128;
pub(super) const MAX_PARAMS: usize = 32_766;

/// A prepared INSERT owned outside rusqlite, so values can be bound without a copy
/// (SQLITE_STATIC: the batch outlives the statement's step).
pub(super) struct RawInsert {
    pub(super) stmt: *mut ffi::sqlite3_stmt,
    pub(super) rows: usize,
}

// SAFETY: a statement is only used through its sink, on the connection it was prepared on,
// and moves with it. rusqlite's Connection is Send: SQLite (built thread-safe, the
// connection opened NO_MUTEX) lets a connection and its statements pass between threads as
// long as one thread at a time uses them, which `&mut self` on every use ensures.
unsafe impl Send for RawInsert {}

impl Drop for RawInsert {
    fn drop(&mut self) {
        // SAFETY: `stmt` came from sqlite3_prepare_v2 and is finalized exactly once; the
        // sink drops its statements before its connection (field order).
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

impl SqliteSink {
    pub(super) fn insert_sql(&self, rows: usize) -> String {
        let one = format!("({})", vec!["?"; self.ncols].join(","));
        format!(
            "INSERT INTO {} VALUES {}",
            quote_sqlite(&self.staging),
            vec![one.as_str(); rows].join(",")
        )
    }

    pub(super) fn sqlite_error(&self, action: String) -> SinkError {
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

    pub(super) fn prepare(&self, rows: usize) -> Result<RawInsert, SinkError> {
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
    pub(super) fn insert_rows(
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
