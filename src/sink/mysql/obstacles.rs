//! What would make replacing the target table wrong, found before anything is loaded: a
//! view under that name, or other tables' foreign keys pointing at it (InnoDB would move
//! them along to the renamed old table, and its DROP would then fail after the swap).

use mysql::prelude::Queryable;
use mysql::Conn;

/// Why `table` cannot be replaced, or `None` when it can (or does not exist yet).
pub fn find(conn: &mut Conn, database: &str, table: &str) -> Result<Option<String>, mysql::Error> {
    let kind: Option<String> = conn.exec_first(
        "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        (database, table),
    )?;
    if kind.as_deref() == Some("VIEW") {
        return Ok(Some(format!(
            "`{table}` is a view: dbsync replaces tables (point [azure_mysql_db] table_name at a table)"
        )));
    }
    let referencing: Vec<(String, String, String)> = conn.exec(
        "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
         WHERE UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ? AND NOT (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?)",
        (database, table, database, table),
    )?;
    if referencing.is_empty() {
        return Ok(None);
    }
    let names: Vec<String> = referencing
        .iter()
        .map(|(db, t, c)| format!("`{db}`.`{t}` ({c})"))
        .collect();
    Ok(Some(format!(
        "`{table}` is referenced by the foreign keys of {}: replacing it would leave them pointing \
         at the old table; drop those foreign keys, or load into another table",
        names.join(", ")
    )))
}
