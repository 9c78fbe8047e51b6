//! The source columns' own definitions (`information_schema.COLUMNS`): COLUMN_TYPE,
//! character set and collation, which result metadata does not carry (it reports every
//! text column in the connection's `utf8mb4`), so a MySQL target can declare
//! `enum('a','b')`, `decimal(65,30)` or `varchar(20000) CHARACTER SET latin1 COLLATE
//! latin1_bin` exactly.

use super::lost::Probe;
use crate::source::SourceError;
use crate::transform::{Collation, SourceColumn, SqlType};
use mysql::prelude::Queryable;
use mysql::{Column, Conn};
use std::collections::HashMap;

/// (schema, table, column) a result column comes from.
pub type Origin = (String, String, String);

/// What `information_schema.COLUMNS` says of one table column.
#[derive(Debug, Clone)]
pub struct Exact {
    pub column_type: String,
    pub collation: Option<Collation>,
}

pub fn origin(col: &Column) -> Option<Origin> {
    let (s, t, c) = (col.schema_str(), col.org_table_str(), col.org_name_str());
    if s.is_empty() || t.is_empty() || c.is_empty() {
        return None;
    }
    Some((s.into_owned(), t.into_owned(), c.into_owned()))
}

pub fn is_spatial(column_type: &str) -> bool {
    let t = column_type.to_ascii_lowercase();
    [
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
        "geomcollection",
    ]
    .contains(&t.as_str())
}

/// The definitions of every table the result's columns come from. Best effort: what
/// cannot be read is left out (see `warn_lost`).
pub(super) fn exact_types(
    conn: &mut Conn,
    meta: &[Column],
    probe: &Probe,
) -> Result<HashMap<Origin, Exact>, SourceError> {
    let mut tables: Vec<(String, String)> = meta
        .iter()
        .filter_map(origin)
        .map(|(s, t, _)| (s, t))
        .collect();
    tables.sort();
    tables.dedup();
    let mut out = HashMap::new();
    for (schema, table) in tables {
        type Row = (String, String, Option<String>, Option<String>);
        let rows: Result<Vec<Row>, _> = conn.exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME, COLLATION_NAME \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&schema, &table),
        );
        let rows = match rows {
            Ok(rows) => rows,
            // A broken connection stops here: nothing waits on it again.
            Err(e) => match probe.lost("looking up the columns' definitions", &e) {
                Some(lost) => return Err(lost),
                None => {
                    log::debug!("no column definitions for {schema}.{table}: {e}");
                    continue;
                }
            },
        };
        for (col, column_type, charset, name) in rows {
            let collation = charset
                .zip(name)
                .map(|(charset, name)| Collation { charset, name });
            let exact = Exact {
                column_type,
                collation,
            };
            out.insert((schema.clone(), table.clone(), col), exact);
        }
    }
    Ok(out)
}

/// True when a COLUMN_TYPE can be the definition of a result column of type `ty`. A
/// derived table or CTE is reported under its alias, which may also be a real table's
/// name: its columns must not take that table's definitions (a `decimal(10,0)` declared for
/// a `DECIMAL(10,2)` result would silently round every value).
pub fn agrees(column_type: &str, ty: &SqlType) -> bool {
    let t = column_type.to_ascii_lowercase();
    let base = t.split(['(', ' ']).next().unwrap_or("");
    let unsigned = t.contains("unsigned");
    match *ty {
        SqlType::Int { bytes, unsigned: u } => int_bytes(base) == Some(bytes) && u == unsigned,
        SqlType::Bool => base == "tinyint" || base == "bool" || base == "boolean",
        SqlType::Float => base == "float",
        SqlType::Double => base == "double" || base == "real",
        SqlType::Decimal {
            precision: p,
            scale: s,
            unsigned: u,
        } => {
            (base == "decimal" || base == "numeric")
                && scale(&t) == s
                && first_number(&t) == Some(u64::from(p))
                && u == unsigned
        }
        SqlType::Date => base == "date",
        SqlType::DateTime { fsp: f } => base == "datetime" && fsp(&t) == f,
        SqlType::Timestamp { fsp: f } => base == "timestamp" && fsp(&t) == f,
        SqlType::Time { fsp: f } => base == "time" && fsp(&t) == f,
        SqlType::Year => base == "year",
        // A CHAR or VARCHAR of another length is another column.
        SqlType::Text { max_chars, .. } if base == "char" || base == "varchar" => {
            first_number(&t) == Some(max_chars)
        }
        SqlType::Text { .. } => [
            "tinytext",
            "text",
            "mediumtext",
            "longtext",
            "json",
            "inet4",
            "inet6",
            "uuid",
        ]
        .contains(&base),
        SqlType::Binary { .. } => {
            [
                "binary",
                "varbinary",
                "tinyblob",
                "blob",
                "mediumblob",
                "longblob",
            ]
            .contains(&base)
                || is_spatial(base)
        }
        SqlType::Bit { .. } => base == "bit",
        SqlType::Json => base == "json" || base == "longtext",
        SqlType::Enum => base == "enum",
        SqlType::Set => base == "set",
        SqlType::Geometry => is_spatial(base),
        SqlType::Null => false,
    }
}

/// The storage size of an integer type's name.
fn int_bytes(base: &str) -> Option<u8> {
    match base {
        "tinyint" => Some(1),
        "smallint" => Some(2),
        "mediumint" => Some(3),
        "int" | "integer" => Some(4),
        "bigint" => Some(8),
        _ => None,
    }
}

/// The fraction digits of a temporal type: `datetime(6)` → 6, `datetime` → 0.
fn fsp(t: &str) -> u8 {
    t.split_once('(')
        .and_then(|(_, r)| r.trim_end_matches(')').parse::<u8>().ok())
        .unwrap_or(0)
}

/// The first number in parentheses: VARCHAR(n), CHAR(n), DECIMAL(p,s).
fn first_number(t: &str) -> Option<u64> {
    t.split_once('(').and_then(|(_, r)| {
        r.split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse::<u64>().ok())
    })
}

/// The scale of DECIMAL(p,s).
fn scale(t: &str) -> u8 {
    t.split_once(',')
        .and_then(|(_, s)| {
            s.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Table columns whose definitions could not be read and whose meaning a MySQL target
/// would lose: ENUM/SET members, character sets and collations of text.
pub fn lost(meta: &[Column], columns: &[SourceColumn]) -> Vec<String> {
    meta.iter()
        .zip(columns)
        .filter(|(m, c)| {
            origin(m).is_some()
                && c.exact_mysql_type.is_none()
                && matches!(
                    c.ty,
                    SqlType::Text { .. } | SqlType::Enum | SqlType::Set | SqlType::Json
                )
        })
        .map(|(m, c)| format!("`{}` (from `{}`)", c.name, m.org_table_str()))
        .collect()
}

/// Warns (for a MySQL target) about the columns `lost` found.
pub fn warn_lost(lost: &[String]) {
    if lost.is_empty() {
        return;
    }
    log::warn!(
        "the definitions of {} cannot be read from information_schema (a derived table or CTE, \
         or no rights on the table): a MySQL target declares them from the result metadata, \
         so ENUM/SET members, character sets and collations are not kept (select the table's \
         columns directly to keep them)",
        lost.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_agree_only_with_their_own_kind_of_result() {
        let dec = |scale| SqlType::Decimal {
            precision: 10,
            scale,
            unsigned: false,
        };
        assert!(agrees("decimal(10,2)", &dec(2)));
        assert!(agrees(
            "decimal(10,2) unsigned",
            &SqlType::Decimal {
                precision: 10,
                scale: 2,
                unsigned: true
            }
        ));
        assert!(
            !agrees("decimal(10,0)", &dec(2)),
            "rounding would be silent"
        );
        assert!(agrees("decimal(10,0)", &dec(0)));
        let int = |bytes, unsigned| SqlType::Int { bytes, unsigned };
        assert!(agrees("int(11)", &int(4, false)));
        assert!(agrees("bigint(20) unsigned", &int(8, true)));
        assert!(!agrees("bigint(20)", &int(8, true)));
        assert!(!agrees("int(11)", &int(8, false)));
        let text = SqlType::Text {
            max_chars: 10,
            fixed: false,
        };
        assert!(agrees("varchar(10)", &text));
        let wider = SqlType::Text {
            max_chars: 50,
            fixed: false,
        };
        assert!(
            !agrees("varchar(10)", &wider),
            "another length, another column"
        );
        assert!(!agrees(
            "decimal(5,2)",
            &SqlType::Decimal {
                precision: 12,
                scale: 2,
                unsigned: false
            }
        ));
        assert!(!agrees("enum('a')", &text));
        assert!(agrees("enum('a','b')", &SqlType::Enum));
        assert!(agrees(
            "point",
            &SqlType::Binary {
                max_bytes: 10,
                fixed: false
            }
        ));
        assert!(agrees("datetime(6)", &SqlType::DateTime { fsp: 6 }));
        assert!(!agrees("timestamp", &SqlType::DateTime { fsp: 0 }));
        assert!(
            !agrees("datetime", &SqlType::DateTime { fsp: 6 }),
            "fraction kept"
        );
    }
}
