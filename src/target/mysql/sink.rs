//! The cloud target: a table on MySQL (Azure Database for MySQL), replaced by loading a
//! staging table and swapping it in with one atomic `RENAME TABLE`.
//!
//! MySQL DDL commits on its own, so nothing here can be rolled back: instead the old
//! table is not touched until the staging table is complete and its row count checked.
//! Rows go in as prepared multi-row INSERTs sized in bytes under `max_allowed_packet`,
//! encoded in parallel (rayon) and sent by several connections at once.

use super::MySqlTarget;
mod apply;
mod begin;
mod inspect;
mod keep;

use super::{encode, failure, load, swap, writers};
use crate::connect::{self, Endpoint, Session, Setup, TlsMode};
use crate::incremental::{Applied, Apply, TargetState};
use crate::target::{Load, Sink, SinkError};
use crate::transform::keys::Index;
use crate::transform::{derived_name, mysql_literal, quote_mysql, ColumnView, SourceColumn};
use arrow::record_batch::RecordBatch;
use encode::Encoding;
use failure::Bound;
use mysql::prelude::Queryable;
use rayon::prelude::*;
use writers::{Piece, Statements, Writers};

/// Upper bound for one INSERT, even when the server allows more: beyond this, bigger
/// statements stop paying off and only hold more memory.
pub(super) const MAX_STATEMENT_BYTES: usize = 16 << 20;
/// Rows one encoding task takes from a batch.
const ROWS_PER_TASK: usize = 2048;
/// Most parameters one prepared statement may have.
const MAX_PARAMS: usize = 65_535;

pub struct MySqlSink {
    pub(super) target: MySqlTarget,
    pub(super) staging: String,
    pub(super) old: String,
    pub(super) control: Option<Session>,
    pub(super) mode: TlsMode,
    pub(super) statement_limit: usize,
    pub(super) max_packet: usize,
    pub(super) writers: Option<Writers>,
    pub(super) statements: Option<Statements>,
    /// How each column goes into a LOAD DATA stream.
    pub(super) fields: Vec<load::Field>,
    /// Secondary indexes, built on the staging table before the swap.
    pub(super) indexes: Vec<Index>,
    pub(super) batches: u64,
    pub(super) column_names: Vec<String>,
    /// Give the staging table the existing target's column definitions (a fallback run:
    /// the SQLite rows know only integers, reals, text and blobs).
    pub(super) keep_definitions: bool,
    /// Swap the staging table in, or apply its rows to the table.
    pub(super) apply: Apply,
    /// The incremental key, when `inspect` found no index that leads with it: an
    /// incremental run adds one (a full replace builds it with the table).
    pub(super) unindexed_key: Option<String>,
    /// The staging table's primary key columns.
    pub(super) primary: Option<Vec<String>>,
    /// What the load changed, once staged (an apply commits then; a swap comes after).
    pub(super) applied: Option<Applied>,
    /// What lookups already told (each is a round trip to a possibly remote server).
    pub(super) database_known: bool,
    pub(super) target_exists: Option<bool>,
    pub(super) local_infile: Option<i64>,
    /// Staged now, swapped later with a job's other tables (`Load::staged_apart`).
    pub(super) staged_apart: bool,
    /// The control session went back to the job's pool while the staging table waits for
    /// the swap: a swap or an abort takes one again.
    pub(super) released: bool,
    /// A swap whose answer was lost was settled (and cleaned up) on a fresh connection:
    /// nothing is left for `abort` to drop.
    pub(super) settled: bool,
    /// Rows a merge also deletes (`deletes = apply`).
    pub(super) deletion: crate::target::Deletion,
}

/// A writer's and the apply's SQL mode: strict, so a value the column cannot hold fails the
/// run instead of being bent; without NO_ZERO_DATE/NO_ZERO_IN_DATE, so zero dates arrive as
/// the source has them; NO_AUTO_VALUE_ON_ZERO, so an id 0 stays 0.
pub(super) const SQL_MODE: &str = "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION";

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
            writers: None,
            statements: None,
            fields: Vec::new(),
            indexes: Vec::new(),
            batches: 0,
            column_names: Vec::new(),
            keep_definitions: false,
            apply: Apply::Replace,
            unindexed_key: None,
            primary: None,
            applied: None,
            database_known: false,
            target_exists: None,
            local_infile: None,
            staged_apart: false,
            released: false,
            settled: false,
            deletion: Default::default(),
        }
    }

    /// Connects the control session (once).
    pub(super) fn connect(&mut self) -> Result<(), SinkError> {
        if self.control.is_some() {
            return Ok(());
        }
        if let Some((conn, mode)) = self.target.pool.as_ref().and_then(|p| p.take_control()) {
            self.control = Some(conn);
            self.mode = mode;
            return Ok(());
        }
        let (conn, mode) = self
            .ep()
            .connect_with(false, None, &Setup::staying_open())
            .map_err(|e| self.err("connecting", e))?;
        self.control = Some(conn);
        // An earlier attempt's given-up sessions may hold what this one needs.
        let ep = self.target.endpoint.clone();
        connect::cleanup::end_given_up(self.control(), &ep);
        self.mode = mode;
        if mode == TlsMode::Required {
            log::warn!(
                "[{}] ssl_mode = {}: the connection is encrypted but the server's certificate is not verified; \
                 set ssl_mode = verify_identity and ssl_ca to the CA bundle (see README, Connecting to Azure)",
                self.ep().section,
                self.ep().tls.mode.as_str()
            );
        }
        Ok(())
    }

    /// Whether the target table exists (known since `begin`, which runs under the run's
    /// lock, so no other dbsync run creates or drops it meanwhile; anyone else doing so
    /// makes the final RENAME fail, which keeps the target as it is).
    pub(super) fn target_exists(&mut self) -> Result<bool, SinkError> {
        match self.target_exists {
            Some(known) => Ok(known),
            None => self.table_exists(&self.target.table.clone()),
        }
    }

    /// A writer's failure; a key the staging table already holds (1062) means the query
    /// returns that key more than once, which the user fixes in the query or primary_key.
    pub(super) fn rows_error(&self, e: String) -> SinkError {
        match (first_code(&e), &self.primary) {
            (Some(1062), Some(key)) => SinkError::DuplicateKey {
                key: key.join(", "),
                detail: crate::connect::redact(&e, self.ep()),
            },
            _ => self.err("inserting rows", e),
        }
    }

    pub(super) fn ep(&self) -> &Endpoint {
        &self.target.endpoint
    }

    pub(super) fn err(&self, action: &str, e: impl std::fmt::Display) -> SinkError {
        let mut message = crate::connect::redact(&e.to_string(), self.ep());
        if message.contains("IoError") {
            message = format!("the connection to the server was lost ({message})");
        }
        let hint = if message.contains("command denied") || message.contains("Access denied") {
            format!(
                " (the user needs SELECT, INSERT, CREATE, DROP and ALTER on `{}`: GRANT them, or use another [azure_mysql_db] user)",
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

    pub(super) fn control(&mut self) -> &mut Session {
        self.control.as_mut().expect("begin() connected")
    }

    pub(super) fn table_exists(&mut self, name: &str) -> Result<bool, SinkError> {
        let sql = format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {}",
            mysql_literal(&self.ep().database),
            mysql_literal(name)
        );
        let r: Result<Option<u64>, _> = self.control().query_first(sql);
        r.map(|n| n.unwrap_or(0) > 0)
            .map_err(|e| self.fail("looking up the table", e, Bound::Read))
    }

    /// Gives the control session to the job's pool (its table staged or swapped in, by a
    /// replace: an apply leaves settings of its own on its session).
    pub(super) fn release_control(&mut self) {
        let Some(pool) = &self.target.pool else {
            return;
        };
        if self.apply != Apply::Replace {
            return;
        }
        if let Some(conn) = self.control.take() {
            pool.give_control(conn, self.mode);
            self.released = true;
        }
    }

    pub(super) fn failed(&self) -> Option<String> {
        self.writers.as_ref().and_then(Writers::failed)
    }

    /// Waits for the writers; the first failure, if any.
    pub(super) fn join_writers(&mut self) -> Option<String> {
        self.writers.as_mut().and_then(Writers::join)
    }
}

impl MySqlSink {
    /// The rows the writers put in the staging table. A LOAD DATA stream's OK packet says
    /// how many rows the server stored (a count that costs nothing); INSERTs are counted on
    /// the table.
    fn staged_rows(&mut self) -> Result<u64, SinkError> {
        if let Some(e) = self.join_writers() {
            return Err(self.rows_error(e));
        }
        if let (Some(pool), Some(w)) = (&self.target.pool, self.writers.as_mut()) {
            for session in w.take_sessions() {
                pool.give_writer(session);
            }
        }
        if let Some(Statements::LoadData { .. }) = self.statements {
            return Ok(self.writers.as_ref().map_or(0, Writers::loaded));
        }
        let sql = format!("SELECT COUNT(*) FROM {}", quote_mysql(&self.staging));
        let timeout = self.target.statement_timeout;
        let r: Result<Option<u64>, _> =
            self.control().with_timeout(timeout, |c| c.query_first(sql));
        let staged = r.map_err(|e| self.fail("counting the staging table", e, Bound::Statement))?;
        Ok(staged.unwrap_or(0))
    }

    /// The staging table in the target's place: one RENAME of both tables when the target
    /// exists (readers see the old table or the new one, never neither), then the old one
    /// dropped.
    fn swap_in(&mut self) -> Result<(), SinkError> {
        let (part, old) = self.rename_part()?;
        let olds: Vec<String> = old.into_iter().collect();
        let name = self.target.table.clone();
        self.rename_together(&[part], &olds, &name)
    }

    /// This table's part of a RENAME: `t TO old, new TO t`, or `new TO t` when there is no
    /// table yet; and the old table it leaves, to drop.
    pub(super) fn rename_part(&mut self) -> Result<(String, Option<String>), SinkError> {
        let (table, staging, old) = (
            quote_mysql(&self.target.table),
            quote_mysql(&self.staging),
            quote_mysql(&self.old),
        );
        Ok(match self.target_exists()? {
            true => (format!("{table} TO {old}, {staging} TO {table}"), Some(old)),
            false => (format!("{staging} TO {table}"), None),
        })
    }

    /// One RENAME of these parts (one table's, or a job's tables'), all or nothing, then a
    /// DROP of the old tables; `names`: the tables, for messages. An answer lost on the
    /// way is settled on a fresh connection from this sink's own table (the RENAME moved
    /// all of them or none).
    pub(super) fn rename_together(
        &mut self,
        parts: &[String],
        olds: &[String],
        names: &str,
    ) -> Result<(), SinkError> {
        self.connect()?;
        let sql = format!("RENAME TABLE {}", parts.join(", "));
        if olds.is_empty() {
            log::debug!("target: {sql}");
            let answer = self.ep().read_timeout;
            return match self.control().shielded(answer, |c| c.query_drop(sql)) {
                Ok(()) => Ok(()),
                // Lost on the way: settled as a swap's is (the staging table is there, or
                // the target is).
                Err(e) => match self.given_up(e, answer, &self.ep().read_timeout_setting()) {
                    Ok(why) => self.settle_swap(why),
                    Err(e) => Err(self.err("renaming the new table", e)),
                },
            };
        }
        // Short tries: while the RENAME waits, new readers of the table queue behind it,
        // and a stop is only acted on before a try (see `swap`).
        let wait = self.ep().read_timeout.min(swap::LOCK_WAIT);
        let name = names.to_string();
        let answer = self.ep().read_timeout;
        let drop = format!("DROP TABLE {}", olds.join(", "));
        let swapped = swap::rename(self.control(), &sql, &drop, &name, wait, answer);
        let given_up = |sink: &mut MySqlSink, e| {
            let setting = sink.swap_setting(wait);
            sink.given_up(e, wait + answer, &setting)
                .unwrap_or_else(|e| e.to_string())
        };
        match swapped {
            Ok(swap::Swapped::Yes) => Ok(()),
            // The new table is in place: a failing DROP of the old one is a leftover for the
            // next run to clean, not a failed run.
            Ok(swap::Swapped::OldKept(e)) => {
                let why = given_up(self, e);
                log::warn!(
                    "the target was replaced, but the old table ({}) could not be dropped, or \
                     its DROP did not answer in time, and may be left behind; the next run \
                     drops it (or drop it by hand): {}",
                    olds.join(", "),
                    crate::connect::redact(&why, self.ep())
                );
                Ok(())
            }
            Err(swap::Failed::Refused(e)) => Err(self.err("swapping in the new table", e)),
            Err(swap::Failed::NotTried(why)) => Err(SinkError::Refused {
                target: self.describe(),
                why,
            }),
            Err(swap::Failed::Unknown(e)) => {
                let why = given_up(self, e);
                self.settle_swap(why)
            }
        }
    }

    /// A swap whose answer was lost, settled on a fresh connection (see `swap::settle`):
    /// swapped is a success, not swapped a failure with the target unchanged (worth a
    /// retry), and unknown a failure that is not retried at once.
    fn settle_swap(&mut self, why: String) -> Result<(), SinkError> {
        let why = crate::connect::redact(&why, self.ep());
        self.settled = true;
        let (table, staging, old) = (&self.target.table, &self.staging, &self.old);
        match swap::settle(self.ep(), table, staging, old) {
            swap::Settled::Swapped => {
                log::warn!(
                    "the swap's answer was lost ({why}), but a fresh connection confirmed that it \
                     happened: the target holds the new rows"
                );
                Ok(())
            }
            swap::Settled::NotSwapped => Err(self.err(
                "swapping in the new table (the RENAME's answer was lost, and a fresh connection \
                 found the staging table still in place after the run's session was ended: the \
                 swap did not happen, the target is unchanged)",
                why,
            )),
            swap::Settled::Unknown(unsettled) => Err(SinkError::SwapUnknown {
                target: self.describe(),
                message: why,
                why: unsettled,
            }),
        }
    }
}

/// The first server error or warning code in a writer's failure (`ERROR 1062 (23000): …`,
/// or the first of LOAD DATA's `Warning 1062: …`).
fn first_code(e: &str) -> Option<u32> {
    ["ERROR ", "Warning ", "Error "]
        .iter()
        .flat_map(|tag| e.match_indices(tag).map(move |(at, _)| at + tag.len()))
        .filter_map(|at| {
            let digits: String = e[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok().map(|code| (at, code))
        })
        .min()
        .map(|(_, code)| code)
}

impl Sink for MySqlSink {
    fn inspect(&mut self, key: &str, read_max: bool) -> Result<Option<TargetState>, SinkError> {
        self.inspect_table(key, read_max)
    }

    fn describe(&self) -> String {
        format!("MySQL {} table {}", self.ep().describe(), self.target.table)
    }

    fn begin(&mut self, columns: &[SourceColumn], load: &Load) -> Result<(), SinkError> {
        self.prepare(columns, load)
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.batches += 1;
        if let Some(e) = self.failed() {
            return Err(self.rows_error(e));
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
            limit: self.statement_limit,
            max_rows: MAX_PARAMS / self.column_names.len().max(1),
            max_packet: self.max_packet,
            batch: self.batches,
            names: &self.column_names,
        };
        let pieces: Vec<Result<Vec<Piece>, SinkError>> = match &self.statements {
            Some(Statements::LoadData { .. }) => {
                let value_error = |row, col, m| ctx.value_error(row, col, m);
                tasks
                    .par_iter()
                    .map(|&(s, e)| {
                        load::encode(&views, &self.fields, s, e, &value_error)
                            .map(|text| vec![Piece::Text(text)])
                    })
                    .collect()
            }
            _ => tasks
                .par_iter()
                .map(|&(s, e)| {
                    ctx.encode(&views, s, e)
                        .map(|chunks| chunks.into_iter().map(Piece::Rows).collect())
                })
                .collect(),
        };
        let writers = self.writers.as_ref().expect("begin() started the writers");
        'send: for piece in pieces {
            for p in piece? {
                if !writers.send(p) {
                    break 'send;
                }
            }
        }
        match self.failed() {
            Some(e) => Err(self.rows_error(e)),
            None => Ok(()),
        }
    }

    fn target_rows(&mut self) -> Result<Option<u64>, SinkError> {
        if !self.target_exists()? {
            return Ok(None);
        }
        let sql = format!("SELECT COUNT(*) FROM {}", quote_mysql(&self.target.table));
        let timeout = self.target.statement_timeout;
        let r = self.control().with_timeout(timeout, |c| c.query_first(sql));
        r.map_err(|e| self.fail("counting the target's rows", e, Bound::Statement))
    }

    fn stage(&mut self, rows_read: u64) -> Result<(), SinkError> {
        let staged = self.staged_rows()?;
        if staged != rows_read {
            return Err(SinkError::Count {
                staged,
                read: rows_read,
            });
        }
        if self.apply != Apply::Replace {
            // Committed here: MySQL's DDL (a job's RENAME) could not take it back anyway.
            let (applied, tidy) = self.apply_staged(staged)?;
            match self.unindexed_key.take() {
                Some(key) if tidy => self.index_key(&key),
                Some(key) => log::info!("`{key}` is not indexed yet: the next run tries"),
                None => {}
            }
            self.applied = Some(applied);
            return Ok(());
        }
        self.build_indexes()?;
        self.applied = Some(Applied {
            inserted: staged,
            ..Applied::default()
        });
        if self.staged_apart {
            self.release_control();
        }
        Ok(())
    }

    fn swap(&mut self) -> Result<Applied, SinkError> {
        if self.apply == Apply::Replace {
            self.swap_in()?;
            self.release_control();
        }
        Ok(self.applied.unwrap_or_default())
    }

    fn delete_too(&mut self, deletion: crate::target::Deletion) {
        self.deletion = deletion;
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }

    fn abort(&mut self) {
        if self.released && self.control.is_none() && !self.settled {
            // Its staging table waits for a swap that will not come: dropped on a session
            // of the pool (or a new one). Not on a link known to be down: a login per
            // staged table would cost a timeout each; the next run drops it.
            if crate::connect::cleanup::link_down(self.ep()) {
                log::warn!(
                    "the staging table `{}` is left for the next run to drop: the link is down",
                    self.staging
                );
                return;
            }
            if let Err(e) = self.connect() {
                log::warn!(
                    "could not drop the staging table `{}` (the next run will): {e}",
                    self.staging
                );
                return;
            }
        }
        self.abandon_load();
    }
}

#[cfg(test)]
mod tests {
    use super::first_code;

    #[test]
    fn the_first_code_of_a_writer_failure_decides() {
        let insert = "MySqlError { ERROR 1062 (23000): Duplicate entry '2' for key 'PRIMARY' }";
        assert_eq!(first_code(insert), Some(1062));
        let load = "LOAD DATA reported 2 warning(s), which under LOCAL stand for values the \
                    server bent or dropped, so the load is refused: Warning 1265: Data truncated \
                    for column 'v' at row 1; Warning 1062: Duplicate entry '2' for key 'PRIMARY'";
        assert_eq!(first_code(load), Some(1265));
        assert_eq!(first_code("the connection was lost"), None);
    }
}
