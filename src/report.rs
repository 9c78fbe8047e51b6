//! What a run tells its caller: the exit code, the one-line result on stderr, and the
//! `--summary-json` object for scripts.

use serde_json::json;
use std::io::Write;
use std::path::Path;

/// Exit codes. Fixed once chosen: scripts depend on them (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Rows came from the primary source and the target holds them.
    Ok = 0,
    /// The run failed; the target is as it was before the run.
    Failed = 1,
    /// The command line or the config is wrong; nothing was touched.
    Usage = 2,
    /// The primary source was unreachable; the fallback served (the target holds the
    /// fallback's rows, or it is the fallback table itself and was kept as it was).
    Fallback = 3,
    /// Another run holds the target; nothing was touched.
    Locked = 4,
    /// `--verify` (or `verify = after`) found the target differing from its source.
    Differs = 5,
    /// Stopped by SIGINT (128 + 2); the target is unchanged.
    Sigint = 130,
    /// Stopped by SIGTERM (128 + 15); the target is unchanged.
    Sigterm = 143,
}

impl Exit {
    /// How bad an outcome is, for a job's worst: 130/143 over 2 over 1 over 4 over 5
    /// (verify found differences) over 3 over 0.
    pub fn rank(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Fallback => 1,
            Exit::Differs => 2,
            Exit::Locked => 3,
            Exit::Failed => 4,
            Exit::Usage => 5,
            Exit::Sigint | Exit::Sigterm => 6,
        }
    }

    /// The exit code for a run stopped by `sig`.
    pub fn interrupted(sig: i32) -> Exit {
        if sig == libc::SIGINT {
            Exit::Sigint
        } else {
            Exit::Sigterm
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceUsed {
    Primary,
    Fallback,
    None,
}

impl SourceUsed {
    fn as_str(self) -> &'static str {
        match self {
            SourceUsed::Primary => "primary",
            SourceUsed::Fallback => "fallback",
            SourceUsed::None => "none",
        }
    }
}

/// Everything the summary says about one run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub source: SourceUsed,
    pub target: String,
    pub table: String,
    /// `replaced`, `appended`, `merged`, `kept` (fallback onto itself), `planned` (dry
    /// run) or `none` (failed).
    pub action: &'static str,
    /// `replace`, `append` or `merge`: the configured strategy.
    pub strategy: &'static str,
    /// Where an incremental run started: the key's value it read from (the target's
    /// maximum, less the lookback for a merge).
    pub incremental_from: Option<String>,
    /// Rows read from the source.
    pub rows: u64,
    /// Rows added and rows replaced by an incremental run.
    pub inserted: Option<u64>,
    pub updated: Option<u64>,
    /// Rows a merge deleted because the source no longer has them (`deletes = apply`).
    pub deleted: Option<u64>,
    /// Rows the source query and the target table hold after the run, where that is known
    /// without counting (a replace, a verification).
    pub source_rows: Option<u64>,
    pub target_rows: Option<u64>,
    /// Zero or partial dates met in the source (see `[external_db] zero_dates`).
    pub zero_dates: u64,
    /// When the fallback's rows were loaded (UTC), when the fallback served and knows it.
    pub fallback_loaded_at: Option<String>,
    pub fallback_age_seconds: Option<u64>,
    pub seconds: f64,
    /// Attempts made (1 unless a transient failure was retried).
    pub attempts: u32,
    /// Why each earlier attempt failed.
    pub retried: Vec<String>,
    /// Every warning the run logged.
    pub warnings: Vec<String>,
    /// What a verification found (`verify::Verdict::to_json`), or why none ran.
    pub verify: Option<serde_json::Value>,
    pub exit: Exit,
    pub error: Option<String>,
}

impl Summary {
    pub fn new(target: &str, table: &str) -> Self {
        Summary {
            source: SourceUsed::None,
            target: target.to_string(),
            table: table.to_string(),
            action: "none",
            strategy: "replace",
            incremental_from: None,
            rows: 0,
            inserted: None,
            updated: None,
            deleted: None,
            source_rows: None,
            target_rows: None,
            zero_dates: 0,
            fallback_loaded_at: None,
            fallback_age_seconds: None,
            seconds: 0.0,
            attempts: 1,
            retried: Vec::new(),
            warnings: Vec::new(),
            verify: None,
            exit: Exit::Failed,
            error: None,
        }
    }

    pub fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.rows as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "source": self.source.as_str(),
            "target": self.target,
            "table": self.table,
            "action": self.action,
            "strategy": self.strategy,
            "incremental_from": self.incremental_from,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "deleted": self.deleted,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "zero_dates": self.zero_dates,
            "fallback_loaded_at": self.fallback_loaded_at,
            "fallback_age_seconds": self.fallback_age_seconds,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "rows_per_second": self.rows_per_second().round(),
            "attempts": self.attempts,
            "retried": self.retried,
            "warnings": self.warnings,
            "verify": self.verify,
            "exit_code": self.exit as i32,
            "error": self.error,
        })
    }

    /// Writes the JSON object to `path` (atomically), or to stdout for `-`.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        write_value(path, &self.to_json())
    }
}

/// Everything the summary says about a job of many tables: each table's summary, and the
/// job's outcome (its exit code the worst of its tables').
#[derive(Debug, Clone, Default)]
pub struct JobSummary {
    pub tables: Vec<Summary>,
    pub error: Option<String>,
    pub seconds: f64,
    pub attempts: u32,
    pub retried: Vec<String>,
    pub warnings: Vec<String>,
}

impl JobSummary {
    /// The job's exit code: the worst of its tables' and of its own failure's.
    pub fn exit(&self, own: Option<Exit>) -> Exit {
        self.tables
            .iter()
            .map(|t| t.exit)
            .chain(own)
            .max_by_key(|e| e.rank())
            .unwrap_or(Exit::Ok)
    }

    pub fn to_json(&self, exit: Exit) -> serde_json::Value {
        json!({
            "tables": self.tables.iter().map(Summary::to_json).collect::<Vec<_>>(),
            "exit_code": exit as i32,
            "error": self.error,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "attempts": self.attempts,
            "retried": self.retried,
            "warnings": self.warnings,
        })
    }
}

/// What a run tells its caller: one table's summary, or a job's.
// One per run: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Outcome {
    One(Summary),
    Job(JobSummary, Exit),
}

impl Outcome {
    pub fn exit(&self) -> Exit {
        match self {
            Outcome::One(s) => s.exit,
            Outcome::Job(_, exit) => *exit,
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::One(s) => s.error.as_deref(),
            Outcome::Job(j, _) => j.error.as_deref(),
        }
    }

    /// The run's length and its warnings, once it ended.
    pub fn finish(&mut self, seconds: f64, warnings: Vec<String>) {
        match self {
            Outcome::One(s) => {
                s.seconds = seconds;
                s.warnings = warnings;
            }
            Outcome::Job(j, _) => {
                // Each table keeps its own (a table's log lines begin with its name).
                for t in &mut j.tables {
                    let tag = format!("[{}] ", t.table);
                    t.warnings = warnings
                        .iter()
                        .filter(|w| w.starts_with(&tag))
                        .cloned()
                        .collect();
                }
                j.seconds = seconds;
                j.warnings = warnings;
            }
        }
    }

    /// Writes the summary to `path` (atomically), or to stdout for `-`.
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        match self {
            Outcome::One(s) => s.write_json(path),
            Outcome::Job(j, exit) => write_value(path, &j.to_json(*exit)),
        }
    }
}

/// Writes `value` to `path` (atomically), or to stdout for `-`.
fn write_value(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    if path == Path::new("-") {
        let mut text = serde_json::to_string(value).expect("summary serialises");
        text.push('\n');
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    } else {
        replace_file(path, value)
    }
}

/// Replaces the summary file with a record saying a run is under way, so a run that is
/// killed leaves that, never the previous run's result.
pub fn write_running(path: &Path) -> std::io::Result<()> {
    let started = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let value = json!({
        "action": "running",
        "pid": std::process::id(),
        "started_at": started,
        "exit_code": null,
        "error": "the run has not finished (or was killed)",
    });
    replace_file(path, &value)
}

/// Writes `value` to a temp file beside `path`, then renames it over `path`: readers see
/// the old file or the new one, never half of one.
fn replace_file(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    let mut text = serde_json::to_string(value).expect("summary serialises");
    text.push('\n');
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    // Readable as a file the run wrote itself would be (temp files start private).
    let mode = std::fs::metadata(path).map_or(0o644, |m| {
        std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777
    });
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    tmp.write_all(text.as_bytes())?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_exits_with_its_worst_in_the_documented_order() {
        let order = [
            Exit::Ok,
            Exit::Fallback,
            Exit::Differs,
            Exit::Locked,
            Exit::Failed,
            Exit::Usage,
            Exit::Sigterm,
        ];
        for pair in order.windows(2) {
            assert!(pair[0].rank() < pair[1].rank(), "{pair:?}");
        }
        let job = |exits: &[Exit]| JobSummary {
            tables: exits
                .iter()
                .map(|e| Summary {
                    exit: *e,
                    ..Summary::new("", "")
                })
                .collect(),
            ..JobSummary::default()
        };
        assert_eq!(
            job(&[Exit::Ok, Exit::Differs, Exit::Fallback]).exit(None),
            Exit::Differs
        );
        assert_eq!(job(&[Exit::Differs, Exit::Locked]).exit(None), Exit::Locked);
        assert_eq!(Exit::Differs as u8, 5);
    }
}
