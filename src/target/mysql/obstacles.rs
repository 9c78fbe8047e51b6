//! What would make replacing the target table wrong, found before anything is loaded: a
//! view under that name, or other tables' foreign keys pointing at it (InnoDB would move
//! them along to the renamed old table, and its DROP would then fail after the swap).

use crate::transform::mysql_literal;

/// The two lookups `judge` reads: the table's type, and the foreign keys of other tables
/// that reference it.
pub fn lookups(database: &str, table: &str) -> [String; 2] {
    let (db, t) = (mysql_literal(database), mysql_literal(table));
    [
        format!(
            "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db} AND TABLE_NAME = {t}"
        ),
        format!(
            "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS \
             WHERE UNIQUE_CONSTRAINT_SCHEMA = {db} AND REFERENCED_TABLE_NAME = {t} AND NOT (CONSTRAINT_SCHEMA = {db} AND TABLE_NAME = {t})"
        ),
    ]
}

/// Whether `table` exists, and why it cannot be replaced (`None` when it can), from what
/// `lookups` found.
pub fn judge(
    table: &str,
    kind: Option<String>,
    referencing: &[(String, String, String)],
) -> (bool, Option<String>) {
    match kind.as_deref() {
        None => return (false, None),
        Some("VIEW") => {
            return (
                true,
                Some(format!(
                    "`{table}` is a view: dbsync replaces tables (point [azure_mysql_db] table_name at a table)"
                )),
            )
        }
        Some(_) => {}
    }
    if referencing.is_empty() {
        return (true, None);
    }
    let names: Vec<String> = referencing
        .iter()
        .map(|(db, t, c)| format!("`{db}`.`{t}` ({c})"))
        .collect();
    (
        true,
        Some(format!(
            "`{table}` is referenced by the foreign keys of {}: replacing it would leave them pointing \
             at the old table; drop those foreign keys, or load into another table",
            names.join(", ")
        )),
    )
}
