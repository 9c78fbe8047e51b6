//! The local target: a table in a SQLite file (`[local_db]`), which is also the fallback
//! source's table.

mod busy;
mod lock;
pub mod preflight;
mod sink;

pub use lock::lock;
pub use sink::{index_name, swap_all, SqliteSink};

use crate::config::known::Section;
use crate::config::{ConfigError, RawConfig};
use crate::transform::DecimalMode;
use std::fmt;
use std::path::PathBuf;

/// Whether the file holds a `kind` of object (`table`, `view`) named `name`, the name
/// compared as SQLite compares names: without case.
pub fn holds(conn: &rusqlite::Connection, kind: &str, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = ?1 AND name = ?2 COLLATE NOCASE",
        [kind, name],
        |r| r.get(0),
    )
}

/// The config section of this target (and of the fallback source).
pub const LOCAL_DB: &str = "local_db";

/// Its keys.
pub const SECTION: Section = Section {
    name: LOCAL_DB,
    server: false,
    keys: &["db_path", "table_name", "journal_mode", "decimal"],
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteTable {
    pub path: PathBuf,
    pub table: String,
    /// journal_mode WAL (the default) rather than DELETE (`[local_db] journal_mode`).
    pub wal: bool,
    /// How DECIMAL columns are stored (`[local_db] decimal`).
    pub decimal: DecimalMode,
}

impl fmt::Display for SqliteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SQLite {} table {}", self.path.display(), self.table)
    }
}

impl SqliteTable {
    /// `[local_db]`: the local target, and the fallback source.
    pub fn from_config(raw: &RawConfig) -> Result<SqliteTable, ConfigError> {
        let path = raw.require(LOCAL_DB, "db_path")?;
        Ok(SqliteTable {
            path: PathBuf::from(path.trim()),
            table: raw.require(LOCAL_DB, "table_name")?.trim().to_string(),
            wal: raw
                .parsed(LOCAL_DB, "journal_mode", "wal or delete", |s| {
                    match s.to_ascii_lowercase().as_str() {
                        "wal" => Some(true),
                        "delete" => Some(false),
                        _ => None,
                    }
                })?
                .unwrap_or(true),
            decimal: raw
                .parsed(
                    LOCAL_DB,
                    "decimal",
                    "auto, real or text",
                    DecimalMode::parse,
                )?
                .unwrap_or(DecimalMode::Auto),
        })
    }
}
