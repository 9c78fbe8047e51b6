//! What a query returns, described from its metadata without reading its rows: each
//! column's name, type, NULL-ness and (for table columns) exact definition, and the keys
//! of the table it reads.

use super::lost::Probe;
use super::{exact, keys, query};
use crate::source::SourceError;
use crate::transform::keys::Keys;
use crate::transform::{quote_mysql, SourceColumn, SqlType};
use mysql::consts::{ColumnFlags, ColumnType};
use mysql::prelude::Queryable;
use mysql::{Column, Conn};
use std::collections::HashSet;

pub(super) fn describe(
    conn: &mut Conn,
    query: &str,
    dialect: query::Dialect,
    probe: &Probe,
) -> Result<(Vec<SourceColumn>, Vec<String>, Keys), SourceError> {
    let section = probe.section;
    let query_err = |e: mysql::Error| probe.query_error("describing the query", e);
    let meta: Vec<Column> = match conn.prep(query) {
        Ok(stmt) => {
            let cols = stmt.columns().to_vec();
            let _ = conn.close(stmt);
            cols
        }
        // 1295: this statement cannot be prepared; an empty run tells the columns instead.
        Err(mysql::Error::MySqlError(e)) if e.code == 1295 => {
            let probe = query::wrap(query, dialect, "*", "dbsync_probe", " LIMIT 0");
            let result = conn.query_iter(probe).map_err(query_err)?;
            result.columns().as_ref().to_vec()
        }
        Err(e) => return Err(query_err(e)),
    };
    if meta.is_empty() {
        return Err(SourceError::Query {
            section,
            message: "the statement returns no result set (it must be a SELECT)".into(),
        });
    }
    let exact = exact::exact_types(conn, &meta, probe)?;
    let local = query::local_names(query, dialect);
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(meta.len());
    for (i, col) in meta.iter().enumerate() {
        let name = col.name_str().to_string();
        if name.is_empty() {
            return Err(SourceError::UnnamedColumn { index: i + 1 });
        }
        if !seen.insert(name.to_lowercase()) {
            return Err(SourceError::DuplicateColumn(name));
        }
        let ty = sql_type(col).map_err(|ty| SourceError::Unsupported {
            column: name.clone(),
            ty,
            fix: format!(
                "select it as text instead, e.g. CAST({} AS CHAR) AS {}",
                quote_mysql(&name),
                quote_mysql(&name)
            ),
        })?;
        // A derived table or CTE named like a real table would find that table's columns:
        // only a definition that agrees with the result's own type is the column's.
        let known = exact::origin(col)
            .filter(|(_, table, _)| !local.contains(&table.to_lowercase()))
            .and_then(|k| exact.get(&k).cloned())
            .filter(|e| exact::agrees(&e.column_type, &ty));
        let (exact_type, collation) = match known {
            Some(e) => (Some(e.column_type), e.collation),
            None => (None, None),
        };
        // Some servers describe spatial columns as plain BLOBs; their own type says better.
        let ty = match &exact_type {
            Some(t) if exact::is_spatial(t) => SqlType::Geometry,
            _ => ty,
        };
        out.push(SourceColumn {
            name,
            ty,
            nullable: !col.flags().contains(ColumnFlags::NOT_NULL_FLAG),
            exact_mysql_type: exact_type,
            collation,
        });
    }
    let lost = exact::lost(&meta, &out);
    let origins: Vec<_> = meta.iter().map(exact::origin).collect();
    let keys = keys::discover(conn, query, &origins, &out, &local, probe)?;
    Ok((out, lost, keys))
}

/// Characters per byte of a result column's character set, to turn a byte length into the
/// declared length. Unknown sets count as 1, which can only make a VARCHAR longer.
fn mbmaxlen(charset: u16) -> u32 {
    match charset {
        45 | 46 | 224..=247 | 255..=323 => 4,
        33 | 83 | 192..=215 | 223 => 3,
        _ => 1,
    }
}

/// MySQL result metadata to [`SqlType`]; `Err` carries the type's name when unsupported.
pub fn sql_type(col: &Column) -> Result<SqlType, String> {
    use ColumnType::*;
    let flags = col.flags();
    let unsigned = flags.contains(ColumnFlags::UNSIGNED_FLAG);
    let len = col.column_length();
    let decimals = col.decimals();
    let fsp = if decimals > 6 { 6 } else { decimals };
    let binary = col.character_set() == 63;
    let int = |bytes| SqlType::Int { bytes, unsigned };
    Ok(match col.column_type() {
        MYSQL_TYPE_TINY if len == 1 && !unsigned => SqlType::Bool,
        MYSQL_TYPE_TINY => int(1),
        MYSQL_TYPE_SHORT => int(2),
        MYSQL_TYPE_INT24 => int(3),
        MYSQL_TYPE_LONG => int(4),
        MYSQL_TYPE_LONGLONG => int(8),
        MYSQL_TYPE_FLOAT => SqlType::Float,
        MYSQL_TYPE_DOUBLE => SqlType::Double,
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => {
            let scale = decimals.min(30);
            let overhead = u32::from(scale > 0) + u32::from(!unsigned);
            let precision = len.saturating_sub(overhead).clamp(1, 65) as u8;
            SqlType::Decimal {
                precision,
                scale,
                unsigned,
            }
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => SqlType::Date,
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => SqlType::DateTime { fsp },
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => SqlType::Timestamp { fsp },
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => SqlType::Time { fsp },
        MYSQL_TYPE_YEAR => SqlType::Year,
        MYSQL_TYPE_ENUM => SqlType::Enum,
        MYSQL_TYPE_SET => SqlType::Set,
        MYSQL_TYPE_JSON => SqlType::Json,
        MYSQL_TYPE_BIT => SqlType::Bit {
            bits: len.clamp(1, 64) as u8,
        },
        MYSQL_TYPE_GEOMETRY => SqlType::Geometry,
        MYSQL_TYPE_NULL => SqlType::Null,
        t @ (MYSQL_TYPE_STRING
        | MYSQL_TYPE_VAR_STRING
        | MYSQL_TYPE_VARCHAR
        | MYSQL_TYPE_TINY_BLOB
        | MYSQL_TYPE_BLOB
        | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB) => {
            let fixed = t == MYSQL_TYPE_STRING;
            if flags.contains(ColumnFlags::ENUM_FLAG) {
                SqlType::Enum
            } else if flags.contains(ColumnFlags::SET_FLAG) {
                SqlType::Set
            } else if binary {
                SqlType::Binary {
                    max_bytes: u64::from(len),
                    fixed,
                }
            } else {
                SqlType::Text {
                    max_chars: u64::from(len / mbmaxlen(col.character_set())),
                    fixed,
                }
            }
        }
        other => return Err(format!("{other:?}")),
    })
}
