//! The cloud target: a table on MySQL (Azure Database for MySQL), replaced by loading a
//! staging table and swapping it in with one atomic `RENAME TABLE`.
//!
//! MySQL DDL commits on its own, so nothing here can be rolled back: instead the old
//! table is not touched until the staging table is complete and its row count checked.
//! Rows go in as multi-row INSERTs sized in bytes under `max_allowed_packet`, encoded in
//! parallel (rayon) and sent by several connections at once.

use super::{Sink, SinkError};
use crate::connect::{ConnectError, Endpoint, TlsMode};
use crate::plan::MySqlTarget;
use crate::transform::{self, quote_mysql, Cell, ColumnView, SourceColumn};
use arrow::record_batch::RecordBatch;
use mysql::prelude::Queryable;
use mysql::Conn;
use rayon::prelude::*;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Upper bound for one INSERT, even when the server allows more: beyond this, bigger
/// statements stop paying off and only hold more memory.
const MAX_STATEMENT_BYTES: usize = 4 << 20;
/// Rows one encoding task takes from a batch.
const ROWS_PER_TASK: usize = 2048;

pub struct MySqlSink {
    target: MySqlTarget,
    staging: String,
    old: String,
    control: Option<Conn>,
    mode: TlsMode,
    statement_limit: usize,
    max_packet: usize,
    tx: Option<SyncSender<String>>,
    writers: Vec<JoinHandle<Result<(), String>>>,
    failure: Arc<Mutex<Option<String>>>,
    insert_head: String,
    batches: u64,
    column_names: Vec<String>,
}

/// `name` with `suffix`, shortened with a hash when it would pass MySQL's 64-character limit.
fn derived_name(name: &str, suffix: &str) -> String {
    let full = format!("{name}{suffix}");
    if full.chars().count() <= 64 {
        return full;
    }
    let hash = name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let keep: String = name.chars().take(64 - suffix.len() - 9).collect();
    format!("{keep}_{:08x}{suffix}", hash as u32)
}

impl MySqlSink {
    pub fn new(target: &MySqlTarget) -> Self {
        MySqlSink {
            staging: derived_name(&target.table, "__dbsync_new"),
            old: derived_name(&target.table, "__dbsync_old"),
            target: target.clone(),
            control: None,
            mode: target.endpoint.tls.mode,
            statement_limit: MAX_STATEMENT_BYTES,
            max_packet: 0,
            tx: None,
            writers: Vec::new(),
            failure: Arc::new(Mutex::new(None)),
            insert_head: String::new(),
            batches: 0,
            column_names: Vec::new(),
        }
    }

    fn ep(&self) -> &Endpoint {
        &self.target.endpoint
    }

    fn err(&self, action: &str, e: impl std::fmt::Display) -> SinkError {
        let mut message = crate::report::redact(&e.to_string(), self.ep());
        if message.contains("IoError") {
            message = format!("the connection to the server was lost ({message})");
        }
        let hint = if message.contains("command denied") || message.contains("Access denied") {
            format!(
                " (the user needs CREATE, DROP, ALTER and INSERT on `{}`: GRANT them, or use another [azure_mysql_db] user)",
                self.ep().database
            )
        } else {
            String::new()
        };
        SinkError::Mysql {
            where_: self.ep().describe(),
            action: action.to_string(),
            message: format!("{message}{hint}"),
        }
    }

    fn control(&mut self) -> &mut Conn {
        self.control.as_mut().expect("begin() connected")
    }

    fn exec(&mut self, action: &str, sql: &str) -> Result<(), SinkError> {
        log::debug!("target: {sql}");
        let r = self.control().query_drop(sql);
        r.map_err(|e| self.err(action, e))
    }

    fn table_exists(&mut self, name: &str) -> Result<bool, SinkError> {
        let db = self.ep().database.clone();
        let r: Result<Option<u64>, _> = self.control().exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, name),
        );
        r.map(|n| n.unwrap_or(0) > 0)
            .map_err(|e| self.err("looking up the table", e))
    }

    fn connect_writer(&self) -> Result<Conn, SinkError> {
        let opts = self
            .ep()
            .opts(self.mode, true)
            .map_err(|e| self.err("opening a writer connection", e))?;
        let mut conn = Conn::new(opts).map_err(|e| {
            let e: ConnectError = crate::connect::classify(self.ep(), e);
            self.err("opening a writer connection", e)
        })?;
        // Strict, so a value the column cannot hold fails the run instead of being bent;
        // without NO_ZERO_DATE/NO_ZERO_IN_DATE, so zero dates arrive as the source has them.
        conn.query_drop(
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION', \
             unique_checks = 0, foreign_key_checks = 0",
        )
        .map_err(|e| self.err("setting up a writer connection", e))?;
        Ok(conn)
    }

    fn start_writers(&mut self) -> Result<(), SinkError> {
        let (tx, rx) = sync_channel::<String>(self.target.writers * 2);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..self.target.writers {
            let conn = self.connect_writer()?;
            let rx = Arc::clone(&rx);
            let failure = Arc::clone(&self.failure);
            let ep = self.ep().clone();
            let handle = std::thread::Builder::new()
                .name(format!("dbsync-writer-{i}"))
                .spawn(move || writer(conn, &rx, &failure, &ep))
                .expect("spawning a writer thread");
            self.writers.push(handle);
        }
        self.tx = Some(tx);
        Ok(())
    }

    fn failed(&self) -> Option<String> {
        self.failure.lock().expect("failure lock").clone()
    }

    /// Waits for the writers; the first failure, if any.
    fn join_writers(&mut self) -> Option<String> {
        self.tx = None;
        for h in self.writers.drain(..) {
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    let mut f = self.failure.lock().expect("failure lock");
                    f.get_or_insert(e);
                }
                Err(p) => {
                    let mut f = self.failure.lock().expect("failure lock");
                    f.get_or_insert(crate::source::mysql::panic_message(p.as_ref()));
                }
            }
        }
        self.failed()
    }
}

/// One writer connection: executes statements until the channel closes or one fails.
fn writer(
    mut conn: Conn,
    rx: &Mutex<Receiver<String>>,
    failure: &Mutex<Option<String>>,
    ep: &Endpoint,
) -> Result<(), String> {
    loop {
        let next = rx.lock().expect("receiver lock").recv();
        let Ok(sql) = next else { return Ok(()) };
        if failure.lock().expect("failure lock").is_some() {
            return Ok(());
        }
        if let Err(e) = conn.query_drop(&sql) {
            let msg = crate::report::redact(&e.to_string(), ep);
            failure
                .lock()
                .expect("failure lock")
                .get_or_insert(msg.clone());
            return Err(msg);
        }
    }
}

impl Sink for MySqlSink {
    fn describe(&self) -> String {
        format!("MySQL {} table {}", self.ep().describe(), self.target.table)
    }

    fn begin(&mut self, columns: &[SourceColumn]) -> Result<(), SinkError> {
        let (conn, mode) = self
            .ep()
            .connect(false)
            .map_err(|e| self.err("connecting", e))?;
        self.control = Some(conn);
        self.mode = mode;
        if mode == TlsMode::Required {
            log::warn!(
                "[{}] ssl_mode = {}: the connection is encrypted but the server's certificate is not verified; \
                 set ssl_mode = verify_identity and ssl_ca to the CA bundle (see README, Connecting to Azure)",
                self.ep().section,
                self.ep().tls.mode.as_str()
            );
        }
        let db = quote_mysql(&self.ep().database);
        let created = self.control().query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS {db} CHARACTER SET utf8mb4"
        ));
        if let Err(e) = created {
            return Err(self.err(
                &format!(
                    "database `{}` does not exist and could not be created (create it, or check [azure_mysql_db] database)",
                    self.ep().database
                ),
                e,
            ));
        }
        self.exec("selecting the database", &format!("USE {db}"))?;
        let packet: Option<u64> = self
            .control()
            .query_first("SELECT @@max_allowed_packet")
            .map_err(|e| self.err("reading max_allowed_packet", e))?;
        self.max_packet = packet.unwrap_or(4 << 20) as usize;
        // Room for the packet header and the statement's own overhead.
        self.statement_limit = MAX_STATEMENT_BYTES
            .min(self.max_packet.saturating_sub(1024))
            .max(1024);

        for leftover in [self.staging.clone(), self.old.clone()] {
            if self.table_exists(&leftover)? {
                log::warn!("dropping `{leftover}`, left by an earlier run that did not finish");
                self.exec(
                    "dropping a leftover staging table",
                    &format!("DROP TABLE {}", quote_mysql(&leftover)),
                )?;
            }
        }
        let defs: Vec<String> = columns
            .iter()
            .map(|c| {
                let ty = transform::mysql_target_type(c);
                let null = match (c.nullable, &c.ty) {
                    (false, _) => " NOT NULL",
                    // Explicit, or servers without explicit_defaults_for_timestamp would
                    // make the column NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE ...
                    (true, transform::SqlType::Timestamp { .. }) => " NULL DEFAULT NULL",
                    (true, _) => "",
                };
                format!("{} {ty}{}{null}", quote_mysql(&c.name), charset_clause(&ty))
            })
            .collect();
        let ddl = format!(
            "CREATE TABLE {} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            quote_mysql(&self.staging),
            defs.join(", ")
        );
        self.exec("creating the staging table", &ddl)?;
        self.insert_head = format!("INSERT INTO {} VALUES ", quote_mysql(&self.staging));
        self.column_names = columns.iter().map(|c| c.name.clone()).collect();
        self.start_writers()
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.batches += 1;
        if let Some(e) = self.failed() {
            return Err(self.err("inserting rows", e));
        }
        let views = batch
            .columns()
            .iter()
            .map(ColumnView::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| SinkError::Value {
                batch: self.batches,
                row: 0,
                column: String::new(),
                message,
            })?;
        let n = batch.num_rows();
        let tasks: Vec<(usize, usize)> = (0..n)
            .step_by(ROWS_PER_TASK)
            .map(|s| (s, (s + ROWS_PER_TASK).min(n)))
            .collect();
        let ctx = Encoding {
            head: &self.insert_head,
            limit: self.statement_limit,
            max_packet: self.max_packet,
            batch: self.batches,
            names: &self.column_names,
        };
        let encoded: Vec<Result<Vec<String>, SinkError>> = tasks
            .par_iter()
            .map(|&(s, e)| ctx.encode(&views, s, e))
            .collect();
        let tx = self.tx.clone().expect("begin() started the writers");
        for statements in encoded {
            for sql in statements? {
                if tx.send(sql).is_err() {
                    break;
                }
            }
        }
        match self.failed() {
            Some(e) => Err(self.err("inserting rows", e)),
            None => Ok(()),
        }
    }

    fn commit(&mut self, rows_read: u64) -> Result<(), SinkError> {
        if let Some(e) = self.join_writers() {
            return Err(self.err("inserting rows", e));
        }
        let staged: Option<u64> = {
            let sql = format!("SELECT COUNT(*) FROM {}", quote_mysql(&self.staging));
            let r = self.control().query_first(sql);
            r.map_err(|e| self.err("counting the staging table", e))?
        };
        let staged = staged.unwrap_or(0);
        if staged != rows_read {
            return Err(SinkError::Count {
                staged,
                read: rows_read,
            });
        }
        let (table, staging, old) = (
            quote_mysql(&self.target.table),
            quote_mysql(&self.staging),
            quote_mysql(&self.old),
        );
        if self.table_exists(&self.target.table.clone())? {
            // One statement, so readers see the old table or the new one, never neither.
            self.exec(
                "swapping in the new table",
                &format!("RENAME TABLE {table} TO {old}, {staging} TO {table}"),
            )?;
            self.exec("dropping the old table", &format!("DROP TABLE {old}"))
        } else {
            self.exec(
                "renaming the new table",
                &format!("RENAME TABLE {staging} TO {table}"),
            )
        }
    }

    fn abort(&mut self) {
        self.join_writers();
        if self.control.is_some() {
            let sql = format!("DROP TABLE IF EXISTS {}", quote_mysql(&self.staging));
            if let Err(e) = self.control().query_drop(sql) {
                log::warn!(
                    "could not drop the staging table `{}` (the next run will): {e}",
                    self.staging
                );
            }
        }
    }
}

/// ` CHARACTER SET utf8mb4` for text column types, so every source text fits.
fn charset_clause(ty: &str) -> &'static str {
    let t = ty.to_ascii_lowercase();
    let texty = ["char", "text", "enum", "set("]
        .iter()
        .any(|k| t.contains(k))
        && !t.contains("binary");
    if texty && !t.contains("character set") {
        " CHARACTER SET utf8mb4"
    } else {
        ""
    }
}

/// What encoding needs to know, shared by the rayon tasks of one batch.
struct Encoding<'a> {
    head: &'a str,
    limit: usize,
    max_packet: usize,
    batch: u64,
    names: &'a [String],
}

impl Encoding<'_> {
    /// Rows `start..end` as INSERT statements of at most `limit` bytes each (a single
    /// larger row gets a statement of its own, if the server's packet allows it).
    fn encode(
        &self,
        views: &[ColumnView<'_>],
        start: usize,
        end: usize,
    ) -> Result<Vec<String>, SinkError> {
        let mut out = Vec::new();
        let mut sql = String::with_capacity(self.limit.min(1 << 20));
        let mut row_buf = String::new();
        for row in start..end {
            row_buf.clear();
            row_buf.push('(');
            for (i, v) in views.iter().enumerate() {
                if i > 0 {
                    row_buf.push(',');
                }
                push_value(&mut row_buf, v.cell(row))
                    .map_err(|message| self.value_error(row, i, message))?;
            }
            row_buf.push(')');
            if self.head.len() + row_buf.len() > self.max_packet.saturating_sub(1024) {
                return Err(self.row_too_big(views, row, self.head.len() + row_buf.len()));
            }
            if !sql.is_empty() && sql.len() + 1 + row_buf.len() > self.limit {
                out.push(std::mem::take(&mut sql));
            }
            if sql.is_empty() {
                sql.push_str(self.head);
            } else {
                sql.push(',');
            }
            sql.push_str(&row_buf);
        }
        if !sql.is_empty() {
            out.push(sql);
        }
        Ok(out)
    }

    fn value_error(&self, row: usize, col: usize, message: String) -> SinkError {
        SinkError::Value {
            batch: self.batch,
            row,
            column: self.names.get(col).cloned().unwrap_or_default(),
            message,
        }
    }

    fn row_too_big(&self, views: &[ColumnView<'_>], row: usize, bytes: usize) -> SinkError {
        let (col, size) = views
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut s = String::new();
                let _ = push_value(&mut s, v.cell(row));
                (i, s.len())
            })
            .max_by_key(|(_, n)| *n)
            .unwrap_or((0, 0));
        self.value_error(
            row,
            col,
            format!(
                "the row needs a {bytes}-byte INSERT (this column {size} bytes) but the server's max_allowed_packet is {} bytes; \
                 raise max_allowed_packet on the target server (on Azure: server parameters) or leave the column out of the query",
                self.max_packet
            ),
        )
    }
}

/// Appends one value as a MySQL literal.
fn push_value(out: &mut String, cell: Cell<'_>) -> Result<(), String> {
    use std::fmt::Write;
    match cell {
        Cell::Null => out.push_str("NULL"),
        Cell::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Cell::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        // The shortest form that reads back as the same single-precision value.
        Cell::Float32(f) if f.is_finite() => {
            let _ = write!(out, "{f:e}");
        }
        Cell::Float32(f) => {
            return Err(format!(
                "{f} cannot be stored in MySQL (no infinities or NaN)"
            ))
        }
        Cell::Float(f) if f.is_finite() => {
            // Rust's shortest round-trip form; `e` notation is valid MySQL.
            let _ = write!(out, "{f:e}");
        }
        Cell::Float(f) => {
            return Err(format!(
                "{f} cannot be stored in MySQL (no infinities or NaN)"
            ))
        }
        Cell::Text(s) => {
            out.push('\'');
            for ch in s.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '\0' => out.push_str("\\0"),
                    '\x1a' => out.push_str("\\Z"),
                    c => out.push(c),
                }
            }
            out.push('\'');
        }
        Cell::Bytes(b) => {
            if b.is_empty() {
                out.push_str("''");
            } else {
                out.push_str("X'");
                for byte in b {
                    let _ = write!(out, "{byte:02X}");
                }
                out.push('\'');
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(c: Cell<'_>) -> String {
        let mut s = String::new();
        push_value(&mut s, c).unwrap();
        s
    }

    #[test]
    fn literals_escape_what_mysql_needs() {
        assert_eq!(lit(Cell::Text("a'b\\c\0d")), "'a\\'b\\\\c\\0d'");
        assert_eq!(lit(Cell::Bytes(&[0, 255])), "X'00FF'");
        assert_eq!(lit(Cell::Bytes(&[])), "''");
        assert_eq!(lit(Cell::UInt(u64::MAX)), "18446744073709551615");
        assert_eq!(lit(Cell::Float(0.1)), "1e-1");
        assert!(push_value(&mut String::new(), Cell::Float(f64::NAN)).is_err());
    }

    #[test]
    fn derived_names_fit_mysql_limit() {
        assert_eq!(derived_name("t", "__dbsync_new"), "t__dbsync_new");
        let long = "x".repeat(64);
        let d = derived_name(&long, "__dbsync_new");
        assert_eq!(d.chars().count(), 64);
        assert_ne!(d, derived_name(&"y".repeat(64), "__dbsync_new"));
    }
}
