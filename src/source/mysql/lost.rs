//! A source connection that broke under a statement, in words: which connection, what it
//! waited for, how long and under which setting, never the driver's raw text (`os error
//! 11`) nor a blame on the server. The connection is given up at its first timeout: the
//! lookups after it (exact types, keys) do not wait on it again.

use super::{batch, MySqlSource};
use crate::connect::wait::{broken, secs, Waiting};
use crate::source::SourceError;
use std::time::Duration;

/// A connection's wait: who, how long, under which setting.
pub(super) struct Probe {
    pub who: &'static str,
    pub section: &'static str,
    pub bound: Duration,
    pub setting: String,
}

impl Probe {
    /// `[general] statement_timeout = 3600 s`.
    pub fn statement(who: &'static str, section: &'static str, bound: Duration) -> Probe {
        Probe {
            who,
            section,
            bound,
            setting: format!("[general] statement_timeout = {}", secs(bound)),
        }
    }

    /// The error for `e` under `what`, when the connection broke (`None`: the server
    /// refused the statement, and the caller says so).
    pub fn lost(&self, what: &str, e: &mysql::Error) -> Option<SourceError> {
        let how = broken(e)?;
        let message = Waiting {
            who: self.who,
            what,
            bound: self.bound,
            setting: &self.setting,
        }
        .failed(how);
        Some(SourceError::Connection {
            section: self.section,
            message,
        })
    }

    /// As `lost`, else the server's refusal as a failed query.
    pub fn query_error(&self, what: &str, e: mysql::Error) -> SourceError {
        self.lost(what, &e).unwrap_or_else(|| SourceError::Query {
            section: self.section,
            message: e.to_string(),
        })
    }
}

impl MySqlSource {
    /// A batch that could not be filled, in words: a connection that broke (what waited,
    /// how long, which setting), or a value that could not be read (its column and row).
    pub(super) fn fill_failure(
        &self,
        f: &batch::ReadFailure,
        rows: u64,
        batches: u64,
        row: usize,
        col: usize,
    ) -> SourceError {
        let ep = &self.endpoint;
        let text = crate::connect::redact(&f.to_string(), ep);
        if let Some(how) = f.broken() {
            // Before the first rows the server may compute for long (a sort).
            let (bound, setting) = match rows == 0 && row == 0 {
                true => (
                    self.statement_timeout,
                    "[general] statement_timeout".to_string(),
                ),
                false => (ep.read_timeout, format!("[{}] read_timeout", ep.section)),
            };
            let waiting = Waiting {
                who: READER,
                what: "reading the query's rows",
                bound,
                setting: &format!("{setting} = {}", secs(bound)),
            };
            let message = format!("after {rows} rows, {}", waiting.failed(how));
            return read_error(rows, batches + 1, message);
        }
        if f.is_connection() {
            let message = format!(
                "the connection failed after {rows} rows: {text} (silence longer than [{}] \
                 read_timeout = {} s counts as a failure)",
                ep.section,
                ep.read_timeout.as_secs()
            );
            return read_error(rows, batches + 1, message);
        }
        let column = self.column_name(col);
        let message = format!(
            "column `{column}`, row {}: {text}; if the value cannot be read as its type, select \
             the column as text (CAST(`{column}` AS CHAR))",
            rows + row as u64 + 1,
        );
        read_error(rows, batches + 1, message)
    }

    /// The reading connection's failure before its first rows (preparing, running the
    /// query): a broken connection in words, else the server's refusal as it is.
    pub(super) fn start_failure(&self, what: &str, e: mysql::Error) -> SourceError {
        let probe = Probe::statement(READER, self.endpoint.section, self.statement_timeout);
        match probe.lost(what, &e) {
            Some(lost) => lost,
            None => read_error(0, 0, crate::connect::redact(&e.to_string(), &self.endpoint)),
        }
    }
}

/// The connection that reads the rows.
pub(super) const READER: &str = "the source's reading connection";

pub(super) fn read_error(rows: u64, batch: u64, message: String) -> SourceError {
    SourceError::Read {
        rows,
        batch,
        message,
    }
}
