//! What would make replacing the target table wrong, found before anything is loaded: a
//! view under that name, or other tables' foreign keys pointing at it (InnoDB would move
//! them along to the renamed old table, and its DROP would then fail after the swap).

use crate::transform::mysql_literal;
use mysql::prelude::Queryable;
use mysql::Conn;

/// Whether `table` exists, and why it cannot be replaced (`None` when it can).
pub fn find(
    conn: &mut Conn,
    database: &str,
    table: &str,
) -> Result<(bool, Option<String>), mysql::Error> {
    let (db, t) = (mysql_literal(database), mysql_literal(table));
    let kind: Option<String> = conn.query_first(format!(
        "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db} AND TABLE_NAME = {t}"
    ))?;
    if kind.is_none() {
        return Ok((false, None));
    }
    if kind.as_deref() == Some("VIEW") {
        return Ok((true, Some(format!(
            "`{table}` is a view: dbsync replaces tables (point [azure_mysql_db] table_name at a table)"
        ))));
    }
    let referencing: Vec<(String, String, String)> = conn.query(format!(
        "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
         WHERE UNIQUE_CONSTRAINT_SCHEMA = {db} AND REFERENCED_TABLE_NAME = {t} AND NOT (CONSTRAINT_SCHEMA = {db} AND TABLE_NAME = {t})"
    ))?;
    if referencing.is_empty() {
        return Ok((true, None));
    }
    let names: Vec<String> = referencing
        .iter()
        .map(|(db, t, c)| format!("`{db}`.`{t}` ({c})"))
        .collect();
    Ok((
        true,
        Some(format!(
        "`{table}` is referenced by the foreign keys of {}: replacing it would leave them pointing \
         at the old table; drop those foreign keys, or load into another table",
        names.join(", ")
    )),
    ))
}
