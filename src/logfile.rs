//! `[general] log_file` / `--log-file`: the run's log also appended, with timestamps, to a
//! file (the Python tool meant to, and never did), at its own level (`[general] log_level`,
//! default info), whatever `-q` or `-v` make the terminal show. Rotation is left to
//! logrotate (see README). dbsync's own warnings are also kept for the run's summary
//! (`warnings`).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

static FILE: Mutex<Option<(File, log::LevelFilter)>> = Mutex::new(None);
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Opens `path` for appending (creating it and its directory); later log lines of `level`
/// and above go to it.
pub fn open(path: &Path, level: log::LevelFilter) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    *FILE.lock().unwrap_or_else(|p| p.into_inner()) = Some((f, level));
    log::set_max_level(log::max_level().max(level));
    Ok(())
}

/// Appends one line, with a timestamp, to the log file only (for what main prints itself).
pub fn line(text: &str) {
    if let Some((f, _)) = FILE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        let _ = writeln!(f, "[{}] {text}", now());
    }
}

fn now() -> impl std::fmt::Display {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
}

/// Whether the file takes a record of dbsync's at this level.
fn to_file(meta: &log::Metadata<'_>) -> bool {
    meta.target().starts_with("dbsync")
        && FILE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|(_, level)| meta.level() <= *level)
}

std::thread_local! {
    /// The table of a job this thread works on: its log lines say `[table] ...`.
    static TABLE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Names (or, with `None`, stops naming) the job's table in this thread's log lines.
pub fn set_table(table: Option<String>) {
    TABLE.with(|t| *t.borrow_mut() = table);
}

/// `f`, with the job's `table` named in this thread's log lines meanwhile (the name it had
/// before comes back after, even when `f` returns early).
pub fn for_table<T>(table: &str, f: impl FnOnce() -> T) -> T {
    let before = TABLE.with(|t| t.replace(Some(table.to_string())));
    let out = f();
    set_table(before);
    out
}

/// The job's table this thread works on, if any.
pub fn table() -> Option<String> {
    TABLE.with(|t| t.borrow().clone())
}

/// The run's logger: the terminal's (`L`, at the terminal's level), the log file at its
/// own, and every warning of dbsync's kept for the summary; a job's table named in each.
pub struct Capture<L>(pub L);

fn ours(meta: &log::Metadata<'_>) -> bool {
    meta.level() == log::Level::Warn && meta.target().starts_with("dbsync")
}

impl<L: log::Log> log::Log for Capture<L> {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        ours(meta) || self.0.enabled(meta) || to_file(meta)
    }

    fn log(&self, record: &log::Record<'_>) {
        match table().filter(|_| record.target().starts_with("dbsync")) {
            Some(table) => self.log_as_is(
                &log::Record::builder()
                    .args(format_args!("[{table}] {}", record.args()))
                    .metadata(record.metadata().clone())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            ),
            None => self.log_as_is(record),
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

impl<L: log::Log> Capture<L> {
    fn log_as_is(&self, record: &log::Record<'_>) {
        if ours(record.metadata()) {
            let mut kept = WARNINGS.lock().unwrap_or_else(|p| p.into_inner());
            kept.push(record.args().to_string());
        }
        if self.0.enabled(record.metadata()) {
            self.0.log(record);
        }
        if to_file(record.metadata()) {
            if let Some((f, _)) = FILE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                let _ = writeln!(f, "[{} {:<5}] {}", now(), record.level(), record.args());
            }
        }
    }
}

/// The warnings logged so far in this run.
pub fn warnings() -> Vec<String> {
    WARNINGS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
