//! The cloud target: a table on MySQL (Azure Database for MySQL), `[azure_mysql_db]`.

mod ddl;
pub mod encode;
mod failure;
mod job;
mod load;
mod lock;
mod obstacles;
mod pool;
pub mod preflight;
mod sink;
mod swap;
mod writers;

pub use job::swap_all;
pub use lock::{lock, lock_tables, NamedLock};
pub use sink::MySqlSink;

use crate::config::known::Section;
use crate::config::{ConfigError, RawConfig};
use crate::connect::{Endpoint, TlsMode};
use std::time::Duration;

/// The config section of this target.
pub const AZURE_DB: &str = "azure_mysql_db";

/// Its keys, besides a server's.
pub const SECTION: Section = Section {
    name: AZURE_DB,
    server: true,
    keys: &["table_name", "writers", "load_method"],
};

#[derive(Debug, Clone)]
pub struct MySqlTarget {
    pub endpoint: Endpoint,
    pub table: String,
    /// Connections inserting at once.
    /// Connections loading at once (`writers`); unset: one LOAD DATA stream, or two
    /// connections of INSERTs (what measured fastest here for each).
    pub writers: Option<usize>,
    /// Bound for statements that compute before answering (the staging count).
    pub statement_timeout: Duration,
    /// How rows go in (`[azure_mysql_db] load_method`).
    pub load_method: LoadMethod,
    /// Sessions shared with the other tables of a job (`share_sessions`).
    pub pool: Option<std::sync::Arc<pool::Pool>>,
}

impl MySqlTarget {
    /// `[azure_mysql_db]`.
    pub fn from_config(
        raw: &RawConfig,
        statement_timeout: Duration,
    ) -> Result<MySqlTarget, ConfigError> {
        Ok(MySqlTarget {
            endpoint: Endpoint {
                // Its sessions are in UTC: TIMESTAMP values are written as the instants
                // they are (see `transform`).
                utc_session: true,
                ..Endpoint::from_config(raw, AZURE_DB, TlsMode::Required)?
            },
            table: raw.require(AZURE_DB, "table_name")?.trim().to_string(),
            writers: match raw.get(AZURE_DB, "writers") {
                Some(v) if !v.trim().is_empty() => {
                    Some(crate::config::connections(raw, AZURE_DB, "writers", 2)?)
                }
                _ => None,
            },
            statement_timeout,
            load_method: raw
                .parsed(
                    AZURE_DB,
                    "load_method",
                    "auto, load_data or insert",
                    LoadMethod::parse,
                )?
                .unwrap_or(LoadMethod::Auto),
            pool: None,
        })
    }

    /// This target's tables share their sessions with `other`'s (a job's tables), creating
    /// the pool if `other` has none yet.
    pub fn share_sessions(&mut self, other: &mut MySqlTarget) {
        let pool = other.pool.get_or_insert_with(Default::default);
        self.pool = Some(std::sync::Arc::clone(pool));
    }
}

/// `auto`: LOAD DATA LOCAL INFILE when the server allows it, INSERTs otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMethod {
    Auto,
    LoadData,
    Insert,
}

impl LoadMethod {
    pub fn parse(s: &str) -> Option<LoadMethod> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "auto" => Some(LoadMethod::Auto),
            "load_data" => Some(LoadMethod::LoadData),
            "insert" => Some(LoadMethod::Insert),
            _ => None,
        }
    }
}
