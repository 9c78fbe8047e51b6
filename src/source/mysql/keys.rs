//! The source table's keys, for a query that reads one table without multiplying its rows:
//! every result column comes from that table (result metadata), and the server's plan
//! reads that one table once (EXPLAIN shows a single SIMPLE step; a join whose select
//! list names one table's columns shows more). Anything else gets no keys, unless
//! `[general] primary_key` names them.

use super::exact::Origin;
use super::lost::Probe;
use crate::source::SourceError;
use crate::transform::keys::{Index, KeyPart, Keys};
use crate::transform::SourceColumn;
use mysql::prelude::Queryable;
use mysql::Conn;
use std::collections::{BTreeMap, HashSet};

/// Best effort: what cannot be read leaves the keys out; only a broken connection fails
/// (nothing waits on it again).
pub(super) fn discover(
    conn: &mut Conn,
    query: &str,
    origins: &[Option<Origin>],
    columns: &[SourceColumn],
    local: &HashSet<String>,
    probe: &Probe,
) -> Result<Keys, SourceError> {
    let Some((schema, table)) = the_table(conn, query, origins, local, probe)? else {
        return Ok(Keys::default());
    };
    let stats: Vec<KeyPart> = match conn.exec(
        "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
         ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        (&schema, &table),
    ) {
        Ok(s) => s,
        Err(e) => {
            if let Some(lost) = probe.lost("looking up the source table's keys", &e) {
                return Err(lost);
            }
            log::debug!("keys: no index list for {schema}.{table}: {e}");
            return Ok(Keys::default());
        }
    };
    let mut keys = keys_of(&table, &stats, origins, columns);
    promote_unique(&mut keys, columns);
    Ok(keys)
}

/// The (schema, table) whose keys the result may take: every result column comes from it,
/// it is not a name the query defines itself, and the server's plan reads it once.
fn the_table(
    conn: &mut Conn,
    query: &str,
    origins: &[Option<Origin>],
    local: &HashSet<String>,
    probe: &Probe,
) -> Result<Option<(String, String)>, SourceError> {
    let Some((schema, table)) = one_table(origins) else {
        log::debug!("keys: the result's columns do not all come from one table");
        return Ok(None);
    };
    if local.contains(&table.to_lowercase()) {
        return Ok(None);
    }
    match single_step(conn, query) {
        Ok(true) => Ok(Some((schema, table))),
        Ok(false) => {
            log::info!(
                "the query reads more than `{table}`, so the target gets none of its keys \
                 ([general] primary_key can name one)"
            );
            Ok(None)
        }
        Err(e) => match probe.lost("explaining the query (for its table's keys)", &e) {
            Some(lost) => Err(lost),
            None => {
                log::debug!("keys: EXPLAIN failed: {e}");
                Ok(None)
            }
        },
    }
}

/// The table's B-tree indexes whose every column is in the result, by result names.
fn keys_of(
    table: &str,
    stats: &[KeyPart],
    origins: &[Option<Origin>],
    columns: &[SourceColumn],
) -> Keys {
    // Result name of each source column of the table.
    let result_name = |source_col: &str| {
        origins
            .iter()
            .zip(columns)
            .find(|(o, _)| {
                o.as_ref()
                    .is_some_and(|o| o.2.eq_ignore_ascii_case(source_col))
            })
            .map(|(_, c)| c)
    };
    // Index name → (unique, its columns in the result if present, index type).
    type Found<'c> = (bool, Vec<Option<(&'c SourceColumn, Option<u64>)>>, String);
    let mut by_index: BTreeMap<String, Found> = BTreeMap::new();
    for (name, non_unique, col, sub_part, kind) in stats {
        let entry =
            by_index
                .entry(name.clone())
                .or_insert((*non_unique == 0, Vec::new(), kind.clone()));
        // A part on an expression (no column) is in no result: its index is not copied.
        entry
            .1
            .push(col.as_deref().and_then(result_name).map(|c| (c, *sub_part)));
    }
    let mut keys = Keys::default();
    for (name, (unique, cols, kind)) in by_index {
        // Every column of the index must be in the result.
        let Some(cols) = cols.into_iter().collect::<Option<Vec<_>>>() else {
            continue;
        };
        if kind != "BTREE" && kind != "HASH" {
            log::info!(
                "the source's {kind} index `{name}` on `{table}` is not copied: dbsync copies \
                 B-tree indexes only (SQLite has no {kind} index, and spatial columns travel \
                 as WKB bytes)"
            );
            continue;
        }
        if name == "PRIMARY" {
            keys.primary = Some(cols.iter().map(|(c, _)| c.name.clone()).collect());
            continue;
        }
        keys.indexes.push(Index {
            name,
            unique,
            columns: cols.iter().map(|(c, p)| (c.name.clone(), *p)).collect(),
        });
    }
    keys
}

/// Without a primary key, a UNIQUE key over NOT NULL whole columns identifies rows as one
/// would; one over a nullable column never does.
fn promote_unique(keys: &mut Keys, columns: &[SourceColumn]) {
    if keys.primary.is_some() {
        return;
    }
    let pos = keys.indexes.iter().position(|i| {
        i.unique
            && i.columns
                .iter()
                .all(|(n, p)| p.is_none() && columns.iter().any(|c| &c.name == n && !c.nullable))
    });
    if let Some(pos) = pos {
        let promoted = keys.indexes.remove(pos);
        keys.primary = Some(promoted.columns.into_iter().map(|(n, _)| n).collect());
    }
}

/// (schema, table) when every result column comes from the same table.
fn one_table(origins: &[Option<Origin>]) -> Option<(String, String)> {
    let first = origins.first()?.as_ref()?;
    origins
        .iter()
        .all(|o| o.as_ref().is_some_and(|o| o.0 == first.0 && o.1 == first.1))
        .then(|| (first.0.clone(), first.1.clone()))
}

/// True when the server's plan reads one table once.
fn single_step(conn: &mut Conn, query: &str) -> Result<bool, mysql::Error> {
    let rows: Vec<mysql::Row> = conn.query(format!("EXPLAIN {query}"))?;
    let simple = rows
        .first()
        .and_then(|r| r.get::<Option<String>, _>("select_type"))
        .flatten();
    Ok(rows.len() == 1 && simple.as_deref() == Some("SIMPLE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::SqlType;

    #[test]
    fn an_index_on_an_expression_is_not_copied_and_the_others_are() {
        let col = |name: &str| SourceColumn {
            name: name.into(),
            ty: SqlType::Bool,
            nullable: false,
            exact_mysql_type: None,
            collation: None,
        };
        let origin = |c: &str| Some(("db".to_string(), "t".to_string(), c.to_string()));
        let part = |i: &str, c: Option<&str>| {
            (
                i.to_string(),
                1,
                c.map(String::from),
                None,
                "BTREE".to_string(),
            )
        };
        // MySQL 8 lists a functional key part with a NULL COLUMN_NAME.
        let stats = [
            (
                "PRIMARY".to_string(),
                0,
                Some("ID".to_string()),
                None,
                "BTREE".to_string(),
            ),
            part("by_expr", None),
            part("by_name", Some("name")),
        ];
        let keys = keys_of(
            "t",
            &stats,
            &[origin("id"), origin("name")],
            &[col("id"), col("name")],
        );
        assert_eq!(keys.primary, Some(vec!["id".to_string()]));
        let names: Vec<&str> = keys.indexes.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["by_name"]);
    }
}
