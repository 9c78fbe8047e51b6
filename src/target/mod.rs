//! The targets a run writes, each kind in its own folder: its settings and their parsing,
//! its sink, its SQL for staging, applying and inspecting, its lock. What the rest of the
//! run needs of a target goes through `Target`'s methods; a new kind is a folder, an arm
//! of `Target` and `TargetKind`, and its tests (see CONTRIBUTING.md, "Adding a target").

pub mod lock;
pub mod mysql;
pub mod schema;
pub mod sink;
pub mod sqlite;
pub mod staging;

pub use lock::{LockError, TargetLock};
pub use mysql::{LoadMethod, MySqlTarget};
pub use sink::{Deletion, FindDeletion, Load, Sink, SinkError};
pub use sqlite::SqliteTable;

use crate::config::known::Section;
use crate::config::{ConfigError, RawConfig, GENERAL};
use crate::connect::Endpoint;
use std::time::Duration;

/// The config sections of the targets, with their keys.
pub const SECTIONS: &[Section] = &[sqlite::SECTION, mysql::SECTION];

/// Which target a run writes (`[general] default_target`, `--target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    /// [azure_mysql_db]: Azure Database for MySQL (any MySQL/MariaDB server).
    Azure,
    /// [local_db]: the SQLite file.
    #[value(name = "local_sqlite")]
    LocalSqlite,
}

impl TargetKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "azure" => Some(TargetKind::Azure),
            "local_sqlite" => Some(TargetKind::LocalSqlite),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Azure => "azure",
            TargetKind::LocalSqlite => "local_sqlite",
        }
    }
}

/// The target kind of a run: `[general] default_target`, or `--target` where
/// `target_argument_enabled` allows it.
pub fn kind(raw: &RawConfig, cli: Option<TargetKind>) -> Result<TargetKind, ConfigError> {
    let default = raw.require(GENERAL, "default_target")?;
    let default_kind = TargetKind::parse(&default).ok_or_else(|| ConfigError::Invalid {
        section: GENERAL.into(),
        key: "default_target".into(),
        value: default.clone(),
        expected: "azure or local_sqlite".into(),
    })?;
    match cli {
        None => Ok(default_kind),
        Some(kind) => {
            if kind != default_kind && !raw.bool(GENERAL, "target_argument_enabled", false)? {
                return Err(ConfigError::TargetArgumentDisabled {
                    requested: kind.as_str().to_string(),
                });
            }
            Ok(kind)
        }
    }
}

/// One thing `--dry-run` checked about writing the target: what it found, and whether the
/// run could go ahead there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub ok: bool,
    pub line: String,
}

impl Check {
    pub fn ok(line: String) -> Check {
        Check { ok: true, line }
    }
    pub fn failed(line: String) -> Check {
        Check { ok: false, line }
    }
}

// One per run: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite(SqliteTable),
    MySql(MySqlTarget),
}

impl Target {
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::Sqlite(_) => TargetKind::LocalSqlite,
            Target::MySql(_) => TargetKind::Azure,
        }
    }
    pub fn table(&self) -> &str {
        match self {
            Target::Sqlite(t) => &t.table,
            Target::MySql(t) => &t.table,
        }
    }

    /// A sink writing this target's table.
    pub fn open_sink(&self) -> Box<dyn Sink> {
        match self {
            Target::Sqlite(t) => Box::new(
                sqlite::SqliteSink::new(&t.path, &t.table)
                    .with_wal(t.wal)
                    .with_decimal(t.decimal),
            ),
            Target::MySql(t) => Box::new(mysql::MySqlSink::new(t)),
        }
    }

    /// Whether a run could write the target (`--dry-run`), changing nothing: the login and
    /// rights, the directory and free space, a name another object holds, the run's lock.
    /// `merge`: the run deletes rows too.
    pub fn check_writable(&self, merge: bool) -> Vec<Check> {
        match self {
            Target::Sqlite(t) => sqlite::preflight::check(t),
            Target::MySql(t) => mysql::preflight::check(t, merge),
        }
    }

    /// Takes the target's lock, waiting up to `wait` for another run to finish.
    pub fn lock(&self, wait: Duration) -> Result<TargetLock, LockError> {
        match self {
            Target::Sqlite(t) => sqlite::lock(t, wait),
            Target::MySql(t) => mysql::lock(&t.endpoint, &t.table, wait),
        }
    }

    /// Takes the locks of a job's tables (all on one target), waiting up to `wait` for other
    /// runs: SQLite, one lock file per table; MySQL, every table's named lock on one
    /// connection. On failure, which table's lock could not be taken (a lock held by
    /// another run), and why.
    pub fn lock_all(
        targets: &[&Target],
        wait: Duration,
    ) -> Result<Vec<TargetLock>, (usize, LockError)> {
        let Some(Target::MySql(first)) = targets.first() else {
            return targets
                .iter()
                .enumerate()
                .map(|(i, t)| t.lock(wait).map_err(|e| (i, e)))
                .collect();
        };
        let tables: Vec<String> = targets.iter().map(|t| t.table().to_string()).collect();
        Ok(vec![mysql::lock_tables(&first.endpoint, &tables, wait)?])
    }

    /// Whether the target declares the source's own column definitions (MySQL), which a
    /// query's derived columns lack.
    pub fn keeps_source_definitions(&self) -> bool {
        matches!(self, Target::MySql(_))
    }

    /// Whether the target is this SQLite table.
    pub fn is_table(&self, table: &SqliteTable) -> bool {
        matches!(self, Target::Sqlite(t) if t == table)
    }

    /// The target, as the plan shows it.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(t) => t.to_string(),
            Target::MySql(t) => format!("MySQL {} table {}", t.endpoint.describe(), t.table),
        }
    }

    /// The column type the target declares for `c`, as the plan shows it.
    pub fn column_type(&self, c: &crate::transform::SourceColumn) -> String {
        match self {
            Target::Sqlite(t) => match crate::transform::sqlite_decl(&c.ty, t.decimal) {
                d if d.is_empty() => "(no declared type)".to_string(),
                d => d,
            },
            Target::MySql(_) => crate::transform::mysql_target_type(c),
        }
    }
    /// The target's settings, for `kind`.
    pub fn from_config(
        raw: &RawConfig,
        kind: TargetKind,
        statement_timeout: Duration,
    ) -> Result<Target, ConfigError> {
        Ok(match kind {
            TargetKind::LocalSqlite => Target::Sqlite(SqliteTable::from_config(raw)?),
            TargetKind::Azure => Target::MySql(MySqlTarget::from_config(raw, statement_timeout)?),
        })
    }

    /// The server the target is on, when it is one.
    pub fn endpoint(&self) -> Option<&Endpoint> {
        match self {
            Target::Sqlite(_) => None,
            Target::MySql(t) => Some(&t.endpoint),
        }
    }

    /// Puts every staged table of a job (`sinks`, all of this target) in place at once;
    /// another run on the same file is waited for up to `wait`.
    pub fn swap_all(
        &self,
        sinks: &mut [Box<dyn Sink>],
        wait: Duration,
    ) -> Result<Vec<crate::incremental::Applied>, SinkError> {
        match self {
            Target::Sqlite(_) => sqlite::swap_all(sinks, wait),
            Target::MySql(_) => mysql::swap_all(sinks),
        }
    }

    /// Makes the tables of a job (`targets`, all on this target) share their sessions: a
    /// server's logins are paid once, not once per table.
    pub fn share_sessions<'a>(targets: impl Iterator<Item = &'a mut Target>) {
        let mut first: Option<&mut MySqlTarget> = None;
        for target in targets {
            if let Target::MySql(t) = target {
                match first.as_deref_mut() {
                    None => first = Some(t),
                    Some(f) => t.share_sessions(f),
                }
            }
        }
    }

    /// Whether a load of these keys goes better knowing about how many rows will come
    /// (MySQL declares a small table's secondary indexes with it).
    pub fn wants_row_estimate(&self, keys: &crate::transform::keys::Keys) -> bool {
        matches!(self, Target::MySql(_)) && !keys.indexes.is_empty()
    }

    /// Whether the target compares text keys by collations of its own (SQLite: BINARY or
    /// RTRIM), rather than by the source's, which a MySQL target keeps.
    pub fn collates_keys_itself(&self) -> bool {
        matches!(self, Target::Sqlite(_))
    }
}
