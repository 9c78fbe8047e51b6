//! The fallback source: the `[local_db]` table in the SQLite file, read with rusqlite.
//!
//! SQLite columns can hold any storage class in any row, so the column types are decided
//! from what the table actually holds (one scan before reading): only integers → BIGINT,
//! reals (with or without integers) → DOUBLE, any text → text (numbers rendered as SQLite
//! renders them), any blob → bytes. A column of only NULLs follows its declared type.
//! A column declared `DECIMAL(p,s)` (dbsync's, `[local_db] decimal`) that holds only
//! numbers is DECIMAL(p,s) again, each value printed at its scale.

use super::{Emit, Source, SourceError};
use crate::connect::Abandon;
use crate::freshness;
use crate::incremental::{Bound, Filter};
use crate::source::MAX_BATCH_BYTES;
use crate::target::SqliteTable;
use crate::transform::{quote_sqlite, SourceColumn, SqlType};
use arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, LargeBinaryBuilder, LargeStringBuilder,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::sync::Arc;

pub struct SqliteSource {
    table: SqliteTable,
    conn: Connection,
    columns: Vec<SourceColumn>,
    batch_rows: usize,
    /// ` WHERE ...` of an incremental run.
    filter: String,
}

/// A failure reading the fallback table `t`.
fn fallback_error(t: &SqliteTable, message: impl ToString) -> SourceError {
    SourceError::Fallback {
        path: t.path.display().to_string(),
        table: t.table.clone(),
        message: message.to_string(),
    }
}

/// Opens the file for reading. Read-write (never creating) when the file allows it: a
/// load killed mid-way leaves a hot journal (or an unfinished WAL) that only a connection
/// that may write can roll back, as SQLite does on the next open; nothing here writes.
fn open_read_only(t: &SqliteTable) -> Result<Connection, SourceError> {
    let err = |message: String| fallback_error(t, message);
    let conn = open_file(t)?;
    let exists: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?1 COLLATE NOCASE",
            [&t.table],
            |r| r.get(0),
        )
        .map_err(|e| err(e.to_string()))?;
    if !exists {
        return Err(err(
            "no such table (check [local_db] table_name; a first successful run creates it)".into(),
        ));
    }
    Ok(conn)
}

/// The fallback file opened, whatever tables it holds.
fn open_file(t: &SqliteTable) -> Result<Connection, SourceError> {
    let err = |message: String| fallback_error(t, message);
    if !t.path.exists() {
        return Err(err(
            "the file does not exist (check [local_db] db_path)".into()
        ));
    }
    let conn = Connection::open_with_flags(&t.path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .or_else(|_| Connection::open_with_flags(&t.path, OpenFlags::SQLITE_OPEN_READ_ONLY))
        .map_err(|e| err(e.to_string()))?;
    // A load into the same file may hold a lock for a moment (its commit).
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| err(e.to_string()))?;
    Ok(conn)
}

/// Rows in the fallback table; fails, naming the setting, when the file or table is missing.
pub fn count_rows(t: &SqliteTable) -> Result<u64, SourceError> {
    let conn = open_read_only(t)?;
    conn.query_row(
        &format!("SELECT count(*) FROM {}", quote_sqlite(&t.table)),
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as u64)
    .map_err(|e| fallback_error(t, e))
}

/// The tables of the fallback file (not dbsync's own: staging tables, load records).
pub fn tables(t: &SqliteTable) -> Result<Vec<String>, SourceError> {
    let conn = open_file(t)?;
    let names: Result<Vec<String>, _> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name NOT LIKE '%\\_\\_dbsync\\_%' ESCAPE '\\' AND name <> 'dbsync_loads' \
             ORDER BY name",
        )
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    names.map_err(|e| fallback_error(t, e))
}

/// The fallback table's load record (`freshness`), `None` when the file has none.
pub fn load_record(t: &SqliteTable) -> Result<Option<freshness::LoadRecord>, SourceError> {
    let conn = open_read_only(t)?;
    freshness::read(&conn, &t.table).map_err(|e| fallback_error(t, e))
}

/// What one column holds, from the scan.
#[derive(Default, Debug)]
struct Holds {
    integer: bool,
    real: bool,
    text: bool,
    blob: bool,
    max_len: u64,
}

impl SqliteSource {
    pub fn open(t: &SqliteTable, batch_rows: usize) -> Result<Self, SourceError> {
        let conn = open_read_only(t)?;
        let err = |e: rusqlite::Error| fallback_error(t, e);
        let table = quote_sqlite(&t.table);
        let (names, decls): (Vec<String>, Vec<String>) = {
            let stmt = conn
                .prepare(&format!("SELECT * FROM {table}"))
                .map_err(err)?;
            stmt.columns()
                .iter()
                .map(|c| {
                    (
                        c.name().to_string(),
                        c.decl_type().unwrap_or("").to_string(),
                    )
                })
                .unzip()
        };
        let scan: Vec<String> = names
            .iter()
            .map(|n| {
                let q = quote_sqlite(n);
                format!(
                    "max(typeof({q}) = 'integer'), max(typeof({q}) = 'real'), \
                     max(typeof({q}) = 'text'), max(typeof({q}) = 'blob'), max(length(CAST({q} AS BLOB)))"
                )
            })
            .collect();
        let holds: Vec<Holds> = conn
            .query_row(
                &format!("SELECT {} FROM {table}", scan.join(", ")),
                [],
                |r| {
                    (0..names.len())
                        .map(|i| {
                            let flag =
                                |k: usize| r.get::<_, Option<i64>>(i * 5 + k).map(|v| v == Some(1));
                            Ok(Holds {
                                integer: flag(0)?,
                                real: flag(1)?,
                                text: flag(2)?,
                                blob: flag(3)?,
                                max_len: r.get::<_, Option<i64>>(i * 5 + 4)?.unwrap_or(0) as u64,
                            })
                        })
                        .collect()
                },
            )
            .map_err(err)?;
        let columns = names
            .into_iter()
            .zip(decls.iter().zip(&holds))
            .map(|(name, (decl, h))| SourceColumn {
                name,
                ty: column_type(decl, h),
                nullable: true,
                exact_mysql_type: None,
                collation: None,
            })
            .collect();
        Ok(SqliteSource {
            table: t.clone(),
            conn,
            columns,
            batch_rows,
            filter: String::new(),
        })
    }
}

fn column_type(decl: &str, h: &Holds) -> SqlType {
    let text = SqlType::Text {
        max_chars: h.max_len.max(1),
        fixed: false,
    };
    let binary = SqlType::Binary {
        max_bytes: u64::from(u32::MAX),
        fixed: false,
    };
    match (h.integer, h.real, h.text, h.blob) {
        (_, _, _, true) => binary,
        (_, _, false, false) if declared_decimal(decl).is_some() => {
            let (precision, scale) = declared_decimal(decl).expect("matched above");
            SqlType::Decimal {
                precision,
                scale,
                unsigned: false,
            }
        }
        (_, _, true, false) => text,
        (_, true, false, false) => SqlType::Double,
        (true, false, false, false) => SqlType::Int {
            bytes: 8,
            unsigned: false,
        },
        // Only NULLs: the declared type's affinity decides.
        _ => {
            let d = decl.to_ascii_uppercase();
            if d.contains("INT") {
                SqlType::Int {
                    bytes: 8,
                    unsigned: false,
                }
            } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
                SqlType::Double
            } else if d.contains("BLOB") {
                binary
            } else {
                text
            }
        }
    }
}

/// `(p, s)` of a declared `DECIMAL(p,s)` or `NUMERIC(p,s)`.
fn declared_decimal(decl: &str) -> Option<(u8, u8)> {
    let d = decl.trim().to_ascii_uppercase();
    let args = d
        .strip_prefix("DECIMAL")
        .or_else(|| d.strip_prefix("NUMERIC"))?
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?;
    let (p, s) = args.split_once(',')?;
    let (p, s): (u8, u8) = (p.trim().parse().ok()?, s.trim().parse().ok()?);
    ((1..=65).contains(&p) && s <= 30 && s <= p).then_some((p, s))
}

enum Builder {
    Int(Int64Builder),
    Real(Float64Builder),
    Text(LargeStringBuilder),
    Bytes(LargeBinaryBuilder),
}

impl Builder {
    fn for_type(ty: &SqlType) -> Self {
        match ty {
            SqlType::Int { .. } => Builder::Int(Int64Builder::new()),
            SqlType::Double => Builder::Real(Float64Builder::new()),
            SqlType::Binary { .. } => Builder::Bytes(LargeBinaryBuilder::new()),
            _ => Builder::Text(LargeStringBuilder::new()),
        }
    }

    fn data_type(&self) -> DataType {
        match self {
            Builder::Int(_) => DataType::Int64,
            Builder::Real(_) => DataType::Float64,
            Builder::Text(_) => DataType::LargeUtf8,
            Builder::Bytes(_) => DataType::LargeBinary,
        }
    }

    /// Appends one value; the column type was chosen so that every value fits exactly.
    fn push(&mut self, v: ValueRef<'_>) {
        match (self, v) {
            (Builder::Int(b), ValueRef::Integer(i)) => b.append_value(i),
            (Builder::Real(b), ValueRef::Integer(i)) => b.append_value(i as f64),
            (Builder::Real(b), ValueRef::Real(f)) => b.append_value(f),
            (Builder::Text(b), ValueRef::Integer(i)) => b.append_value(i.to_string()),
            (Builder::Text(b), ValueRef::Real(f)) => b.append_value(render_real(f)),
            (Builder::Text(b), ValueRef::Text(t)) => b.append_value(String::from_utf8_lossy(t)),
            (Builder::Bytes(b), ValueRef::Integer(i)) => b.append_value(i.to_string()),
            (Builder::Bytes(b), ValueRef::Real(f)) => b.append_value(render_real(f)),
            (Builder::Bytes(b), ValueRef::Text(t)) => b.append_value(t),
            (Builder::Bytes(b), ValueRef::Blob(x)) => b.append_value(x),
            (Builder::Int(b), _) => b.append_null(),
            (Builder::Real(b), _) => b.append_null(),
            (Builder::Text(b), _) => b.append_null(),
            (Builder::Bytes(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Real(b) => Arc::new(b.finish()),
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Bytes(b) => Arc::new(b.finish()),
        }
    }
}

/// Not reached for columns read through `select_list`, which has SQLite render reals held
/// in text and blob columns itself; kept so a REAL is never silently dropped.
fn render_real(f: f64) -> String {
    let s = f.to_string();
    if f.is_finite() && !s.contains(['.', 'e', 'E']) {
        format!("{s}.0")
    } else {
        s
    }
}

/// The read's select list: text and blob columns get their REAL values as SQLite's own
/// text (`CAST(0.1 + 0.2 AS TEXT)` is `0.3`, as the sqlite3 shell and every SQLite reader
/// show it; Rust's shortest round-trip form would be `0.30000000000000004`).
fn select_list(columns: &[SourceColumn]) -> String {
    columns
        .iter()
        .map(|c| {
            let q = quote_sqlite(&c.name);
            match c.ty {
                SqlType::Text { .. } | SqlType::Binary { .. } => {
                    format!("CASE typeof({q}) WHEN 'real' THEN CAST({q} AS TEXT) ELSE {q} END")
                }
                // At its scale: 12 and 12.5 in DECIMAL(10,2) are 12.00 and 12.50.
                SqlType::Decimal { scale, .. } => {
                    format!("CASE WHEN {q} IS NULL THEN NULL ELSE printf('%.{scale}f', {q}) END")
                }
                _ => q,
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Source for SqliteSource {
    fn describe(&self) -> String {
        format!("fallback {}", self.table)
    }

    fn columns(&self) -> &[SourceColumn] {
        &self.columns
    }

    fn restrict(&mut self, filter: &crate::incremental::Filter) {
        self.filter = format!(" WHERE {}", condition(filter));
    }

    fn read(self: Box<Self>, emit: &mut Emit<'_>, _abandon: &Abandon) -> Result<u64, SourceError> {
        let err = |rows: u64, batch: u64, e: rusqlite::Error| SourceError::Read {
            rows,
            batch,
            message: format!("{}: {e}", self.table),
        };
        let mut builders: Vec<Builder> = self
            .columns
            .iter()
            .map(|c| Builder::for_type(&c.ty))
            .collect();
        let schema = Arc::new(Schema::new(
            self.columns
                .iter()
                .zip(&builders)
                .map(|(c, b)| Field::new(&c.name, b.data_type(), true))
                .collect::<Vec<_>>(),
        ));
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {} FROM {}{}",
                select_list(&self.columns),
                quote_sqlite(&self.table.table),
                self.filter
            ))
            .map_err(|e| err(0, 0, e))?;
        let mut rows = stmt.query([]).map_err(|e| err(0, 0, e))?;
        let (mut total, mut batch, mut in_batch) = (0u64, 0u64, 0usize);
        let mut in_batch_bytes = 0usize;
        let flush = |builders: &mut Vec<Builder>| {
            let arrays = builders.iter_mut().map(Builder::finish).collect();
            RecordBatch::try_new(schema.clone(), arrays).expect("arrays match the schema")
        };
        loop {
            let row = match rows.next() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => return Err(err(total, batch + 1, e)),
            };
            for (i, b) in builders.iter_mut().enumerate() {
                let v = row.get_ref(i).map_err(|e| err(total, batch + 1, e))?;
                if let ValueRef::Text(x) | ValueRef::Blob(x) = v {
                    in_batch_bytes += x.len();
                }
                b.push(v);
            }
            in_batch += 1;
            total += 1;
            // Cut by bytes too, so rows of a MiB do not come thousands at a time.
            if in_batch == self.batch_rows || in_batch_bytes >= MAX_BATCH_BYTES {
                batch += 1;
                in_batch = 0;
                in_batch_bytes = 0;
                if !emit(flush(&mut builders)) {
                    return Ok(total);
                }
            }
        }
        if in_batch > 0 {
            emit(flush(&mut builders));
        }
        Ok(total)
    }
}

/// A SQLite condition on `column` of the fallback table, where dbsync wrote integers
/// as integers (above 2^63 as their digits) and dates as MySQL's text.
pub fn condition(f: &Filter) -> String {
    let col = quote_sqlite(&f.column);
    let op = f.op();
    match f.bound {
        Bound::Int(n) if i64::try_from(n).is_ok() => format!("{col} {op} {n}"),
        // Only BIGINT UNSIGNED goes beyond: held as text, which SQLite orders after
        // every integer, so compare its digits by length first.
        Bound::Int(n) => {
            let d = n.to_string();
            format!(
                "(typeof({col}) = 'text' AND (length({col}) > {l} OR (length({col}) = {l} AND {col} {op} '{d}')))",
                l = d.len()
            )
        }
        // Padded to 26 characters, so '2024-01-01' and '... 00:00:00.000000' compare
        // as the same instant.
        Bound::Instant(t) => format!(
            "substr({col} || substr(' 00:00:00.000000', length({col}) - 9), 1, 26) {op} '{}'",
            Bound::Instant(t).text()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incremental::{Bound, KeyKind, TargetMax};

    #[test]
    fn the_sqlite_padding_orders_dates_and_datetimes_alike() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let f = Filter {
            column: "k".into(),
            kind: KeyKind::DateTime,
            bound: Bound::from_target(
                &TargetMax::Text("2024-03-01 00:00:00".into()),
                KeyKind::DateTime,
            )
            .unwrap(),
            inclusive: false,
        };
        conn.execute_batch(
            "CREATE TABLE t (k TEXT); INSERT INTO t VALUES ('2024-03-01'), ('2024-03-01 00:00:00'), \
             ('2024-03-01 00:00:00.000001'), ('2024-03-01 00:00:01'), ('2024-02-29 23:59:59.999999'), ('2024-03-02');",
        )
        .unwrap();
        let sql = format!("SELECT k FROM t WHERE {} ORDER BY k", condition(&f));
        let mut stmt = conn.prepare(&sql).unwrap();
        let got: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            got,
            [
                "2024-03-01 00:00:00.000001",
                "2024-03-01 00:00:01",
                "2024-03-02"
            ]
        );
    }
}
