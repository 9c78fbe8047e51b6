//! The command line. Each field's doc comment is its `--help` text.

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Copy the result of a MySQL query into a SQLite file or Azure Database for MySQL,
/// replacing the target table atomically: it holds either yesterday's rows or all of
/// today's, never a half-loaded table.
///
/// Exit codes: 0 copied from the primary source; 3 copied from (or kept) the fallback
/// SQLite table because the primary was unreachable; 1 failed, target unchanged;
/// 2 usage or config error, nothing touched; 4 another run holds the target, nothing
/// touched; 5 --verify found differences; 130 / 143 interrupted by SIGINT / SIGTERM, target unchanged. A job of many
/// tables ([general] tables) exits with its worst table's code, in this order: 130/143,
/// 2, 1, 4, 5, 3, 0.
#[derive(Debug, Parser)]
#[command(name = "dbsync", version)]
pub struct Cli {
    /// Path of the config file (the Python tool's config.ini format).
    #[arg(long, short = 'c', value_name = "PATH", default_value = "config.ini")]
    pub config: PathBuf,

    /// Where to write, overriding [general] default_target; allowed only when
    /// [general] target_argument_enabled is true.
    #[arg(long, short = 't', value_enum)]
    pub target: Option<crate::target::TargetKind>,

    /// Print what would be done (source, fallback, target, table, column types) and change
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// With [general] strategy = append or merge: reload the whole table this once (a
    /// replace that reads every row), e.g. weekly, to drop rows deleted at the source.
    #[arg(long)]
    pub full_refresh: bool,

    /// Write one JSON object describing the run (source used, target, table, rows, seconds,
    /// rows/s, exit code, error) to PATH, or to stdout with `-`.
    #[arg(long, value_name = "PATH")]
    pub summary_json: Option<PathBuf>,

    /// More log output (-v debug, -vv trace). RUST_LOG, when set, takes precedence.
    #[arg(long, short = 'v', action = ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only warnings and errors on stderr; no progress line.
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Progress: `auto` (an updating line on a terminal, nothing otherwise), `log` (a plain
    /// log line every few seconds, for cron logs), `off`.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressArg,

    /// Also append the run's log, with timestamps, to this file (overrides [general]
    /// log_file). Rotation is left to logrotate.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// With [general] tables: copy only these tables of the job (comma-separated), e.g.
    /// the one that failed, again in the morning.
    #[arg(long, value_name = "NAME[,NAME...]", value_delimiter = ',')]
    pub only: Option<Vec<String>>,

    /// Compare each target table with its source query, now, and change nothing: equal or
    /// differs, row counts, the key ranges and keys that differ (exit 5 when any differs).
    #[arg(long, conflicts_with_all = ["dry_run", "full_refresh"])]
    pub verify: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What dbsync prints about itself instead of running the job.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the completion script for SHELL to stdout, e.g.
    /// `dbsync completions bash > /etc/bash_completion.d/dbsync`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to stdout, e.g. `dbsync man > /usr/local/share/man/man1/dbsync.1`.
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    Auto,
    Log,
    Off,
}
