//! `[general] log_file` / `--log-file`: the run's log also appended, with timestamps, to a
//! file (the Python tool meant to, and never did). Log lines go to stderr as before and,
//! once the file is open, to it too. Rotation is left to logrotate (see README). dbsync's
//! own warnings are also kept for the run's summary (`warnings`).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

static FILE: Mutex<Option<File>> = Mutex::new(None);
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Opens `path` for appending (creating it and its directory); later log lines go to it.
pub fn open(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    *FILE.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    Ok(())
}

/// Appends one line, with a timestamp, to the log file only (for what main prints itself).
pub fn line(text: &str) {
    if let Some(f) = FILE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        let _ = writeln!(f, "[{now}] {text}");
    }
}

/// The log's destination: stderr, and the file when one is open.
pub struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().write_all(buf)?;
        if let Some(f) = FILE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = f.write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A logger that also keeps every warning dbsync logs, whatever the level shown.
pub struct Capture<L>(pub L);

fn ours(meta: &log::Metadata<'_>) -> bool {
    meta.level() == log::Level::Warn && meta.target().starts_with("dbsync")
}

impl<L: log::Log> log::Log for Capture<L> {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        ours(meta) || self.0.enabled(meta)
    }

    fn log(&self, record: &log::Record<'_>) {
        if ours(record.metadata()) {
            let mut kept = WARNINGS.lock().unwrap_or_else(|p| p.into_inner());
            kept.push(record.args().to_string());
        }
        if self.0.enabled(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// The warnings logged so far in this run.
pub fn warnings() -> Vec<String> {
    WARNINGS.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
