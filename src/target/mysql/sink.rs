//! The cloud target: a table on MySQL (Azure Database for MySQL), replaced by loading a
//! staging table and swapping it in with one atomic `RENAME TABLE`.
//!
//! MySQL DDL commits on its own, so nothing here can be rolled back: instead the old
//! table is not touched until the staging table is complete and its row count checked.
//! Rows go in as prepared multi-row INSERTs sized in bytes under `max_allowed_packet`,
//! encoded in parallel (rayon) and sent by several connections at once.

use super::MySqlTarget;
use super::{ddl, encode, failure, load, obstacles, swap, writers};
use crate::connect::{self, Endpoint, Session, Setup, TlsMode};
use crate::incremental::{Applied, Apply, TargetMax, TargetState};
use crate::target::{Load, Sink, SinkError};
use crate::transform::keys::Index;
use crate::transform::{self, derived_name, mysql_literal, quote_mysql, ColumnView, SourceColumn};
use arrow::record_batch::RecordBatch;
use encode::Encoding;
use failure::Bound;
use mysql::prelude::Queryable;
use rayon::prelude::*;
use writers::{Piece, Statements, Writers};

/// Upper bound for one INSERT, even when the server allows more: beyond this, bigger
/// statements stop paying off and only hold more memory.
const MAX_STATEMENT_BYTES: usize = 16 << 20;
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
    /// What lookups already told (each is a round trip to a possibly remote server).
    pub(super) database_known: bool,
    pub(super) target_exists: Option<bool>,
    pub(super) local_infile: Option<i64>,
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
            database_known: false,
            target_exists: None,
            local_infile: None,
        }
    }

    /// Connects the control session (once).
    pub(super) fn connect(&mut self) -> Result<(), SinkError> {
        if self.control.is_some() {
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

    /// The target's largest `key`, read as text (MySQL renders dates as they compare).
    pub(super) fn max_of(&mut self, key: &str) -> Result<Option<TargetMax>, SinkError> {
        let sql = format!(
            "SELECT MAX({}) FROM {}.{}",
            quote_mysql(key),
            quote_mysql(&self.ep().database),
            quote_mysql(&self.target.table)
        );
        let timeout = self.target.statement_timeout;
        let r = self
            .control()
            .with_timeout(timeout, |c| c.query_first::<mysql::Value, _>(sql));
        let v =
            r.map_err(|e| self.fail("reading the largest incremental_key", e, Bound::Statement))?;
        Ok(match v {
            None | Some(mysql::Value::NULL) => None,
            Some(mysql::Value::Int(n)) => Some(TargetMax::Int(n.into())),
            Some(mysql::Value::UInt(n)) => Some(TargetMax::Int(n.into())),
            Some(mysql::Value::Bytes(b)) => {
                Some(TargetMax::Text(String::from_utf8_lossy(&b).into_owned()))
            }
            Some(other) => Some(TargetMax::Text(
                other.as_sql(true).trim_matches('\'').to_string(),
            )),
        })
    }

    /// Refuses to apply rows to a target whose column types are not those the source's
    /// columns now get (the staging table's): INSERT ... SELECT would convert them quietly,
    /// e.g. cut DATETIME(6) to whole seconds.
    pub(super) fn check_types(&mut self) -> Result<(), SinkError> {
        type Def = (String, String, Option<String>);
        // One `=` lookup per table (`IN` would match names that differ in case).
        let lookup = |i: u8, table: &str| {
            format!(
                "SELECT {i} AS which, ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE, CHARACTER_SET_NAME \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} \
                 AND EXTRA NOT LIKE '%INVISIBLE%'",
                mysql_literal(&self.ep().database),
                mysql_literal(table)
            )
        };
        // And the target's storage engine, in the same round trip.
        let sql = format!(
            "{} UNION ALL {} UNION ALL SELECT 2, 0, COALESCE(ENGINE, ''), '', NULL \
             FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} \
             ORDER BY which, ORDINAL_POSITION",
            lookup(0, &self.target.table),
            lookup(1, &self.staging),
            mysql_literal(&self.ep().database),
            mysql_literal(&self.target.table)
        );
        type Row = (u8, u64, String, String, Option<String>);
        let rows: Result<Vec<Row>, _> = self.control().query(sql);
        let rows = rows.map_err(|e| self.fail("reading the column types", e, Bound::Read))?;
        let mut defs: [Vec<Def>; 2] = Default::default();
        let mut engine = None;
        for (which, _, name, ty, charset) in rows {
            match which {
                2 => engine = Some(name),
                _ => defs[usize::from(which)].push((name, ty, charset)),
            }
        }
        // Only InnoDB rolls the apply back as a whole if any part of it fails.
        if let Some(engine) = engine.filter(|e| !e.eq_ignore_ascii_case("InnoDB")) {
            return Err(SinkError::Refused {
                target: self.describe(),
                why: format!(
                    "its storage engine is {engine}, which cannot undo a half-done apply, so a \
                     failed run could leave it half-changed: convert it (ALTER TABLE ... \
                     ENGINE=InnoDB), or run once with --full-refresh, which makes an InnoDB table"
                ),
            });
        }
        let differ = defs[0].iter().zip(&defs[1]).find(|(t, s)| {
            !t.0.eq_ignore_ascii_case(&s.0) || !t.1.eq_ignore_ascii_case(&s.1) || t.2 != s.2
        });
        let Some((t, s)) = differ else {
            if defs[0].len() == defs[1].len() {
                return Ok(());
            }
            return Err(SinkError::Refused {
                target: self.describe(),
                why: "its columns are not the query's: run once with --full-refresh to replace it"
                    .into(),
            });
        };
        // Types and character sets: a collation orders and compares, but keeps every value.
        let show = |d: &Def| match &d.2 {
            Some(c) => format!("{} CHARACTER SET {c}", d.1),
            None => d.1.clone(),
        };
        Err(SinkError::Refused {
            target: self.describe(),
            why: format!(
                "column `{}` is {} there, but the query's `{}` is now {}: adding rows would convert \
                 them; run once with --full-refresh to replace the table",
                t.0,
                show(t),
                s.0,
                show(s)
            ),
        })
    }

    /// Indexes the incremental key of a table made before it was one (under `replace`, or
    /// by another tool), so that each later run's maximum is cheap. Best effort, after the
    /// rows were committed: InnoDB builds it online (readers and writers go on), but the
    /// ALTER needs a brief exclusive metadata lock at its start and end, which waits only a
    /// few seconds for other sessions (else new readers would queue behind it). A failure
    /// is logged and the next run tries again; the run itself succeeded.
    pub(super) fn index_key(&mut self, key: &str) {
        let t0 = std::time::Instant::now();
        let name = crate::incremental::key_index_name(&self.target.table, key);
        let wait = self
            .ep()
            .read_timeout
            .min(std::time::Duration::from_secs(3));
        let statements = [
            format!("SET SESSION lock_wait_timeout = {}", wait.as_secs().max(1)),
            format!(
                "ALTER TABLE {}.{} ADD INDEX {} ({}), ALGORITHM=INPLACE, LOCK=NONE",
                quote_mysql(&self.ep().database),
                quote_mysql(&self.target.table),
                quote_mysql(&name),
                quote_mysql(key)
            ),
            "SET SESSION lock_wait_timeout = DEFAULT".to_string(),
        ];
        let timeout = self.target.statement_timeout + wait;
        let (_, failed) = self
            .control()
            .with_timeout(timeout, |c| connect::batch_until_error(c, &statements));
        let why = match failed {
            None => {
                log::info!(
                    "indexed `{key}` ({name}) in {:.2} s, once: each run reads its largest value",
                    t0.elapsed().as_secs_f64()
                );
                return;
            }
            // Duplicate key name: another run (or a person) added it meanwhile.
            Some(mysql::Error::MySqlError(e)) if e.code == 1061 => return,
            Some(e @ mysql::Error::MySqlError(_)) => {
                let _ = self
                    .control()
                    .query_drop("SET SESSION lock_wait_timeout = DEFAULT");
                e.to_string()
            }
            Some(e) => {
                let setting = format!(
                    "[general] statement_timeout = {} plus a {} lock wait (the server may still \
                     be building it)",
                    connect::wait::secs(self.target.statement_timeout),
                    connect::wait::secs(wait)
                );
                self.given_up(e, timeout, &setting)
                    .unwrap_or_else(|e| e.to_string())
            }
        };
        log::warn!(
            "the rows were applied, but `{key}` could not be indexed; the next run tries again \
             (or add it yourself: ALTER TABLE {} ADD INDEX ({})): {}",
            quote_mysql(&self.target.table),
            quote_mysql(key),
            crate::connect::redact(&why, self.ep())
        );
    }

    /// Puts the staged rows into the target in one transaction: a merge first deletes the
    /// rows whose key comes again. The target is untouched unless all of it holds. With what
    /// was applied, whether the staging table's DROP answered too (else the connection may be
    /// out of step, and nothing more is sent on it).
    pub(super) fn apply_staged(&mut self, staged: u64) -> Result<(Applied, bool), SinkError> {
        let (t, s) = (quote_mysql(&self.target.table), quote_mysql(&self.staging));
        let cols: Vec<String> = self.column_names.iter().map(|c| quote_mysql(c)).collect();
        let cols = cols.join(", ");
        let delete = match &self.apply {
            Apply::Merge(key) => {
                let on: Vec<String> = key
                    .iter()
                    .map(|k| format!("{t}.{k} = {s}.{k}", k = quote_mysql(k)))
                    .collect();
                Some(format!(
                    "DELETE {t} FROM {t} JOIN {s} ON {}",
                    on.join(" AND ")
                ))
            }
            _ => None,
        };
        let insert = format!("INSERT INTO {t} ({cols}) SELECT {cols} FROM {s}");
        // One round trip for the transaction's statements (the server stops at the first
        // that fails), one for COMMIT and the staging table's DROP.
        let mut statements = vec![
            format!("SET SESSION sql_mode = '{SQL_MODE}'"),
            "START TRANSACTION".to_string(),
        ];
        let merge = delete.is_some();
        statements.extend(delete);
        statements.push(insert);
        let timeout = self.target.statement_timeout;
        let t0 = std::time::Instant::now();
        let (changed, failed) = self
            .control()
            .with_timeout(timeout, |c| connect::batch_changes(c, &statements));
        if let Some(e) = failed {
            // Before anything else on this connection: DDL would commit the half. A broken
            // connection is not waited on: its session rolls back as it ends.
            if connect::wait::broken(&e).is_none() {
                let _ = self.control().query_drop("ROLLBACK");
            }
            return Err(self.fail("applying the new rows", e, Bound::Statement));
        }
        // Every statement answered (else `failed`): what the INSERT added, and what the
        // DELETE before it (a merge) took away.
        let inserted = changed.last().copied().unwrap_or(0);
        let updated = if merge { changed[2] } else { 0 };
        if inserted != staged {
            let _ = self.control().query_drop("ROLLBACK");
            return Err(SinkError::Count {
                staged: inserted,
                read: staged,
            });
        }
        // Its outcome must be known: a COMMIT cut off mid-way may still happen. The DROP
        // runs only if the COMMIT succeeded.
        let finish = ["COMMIT".to_string(), format!("DROP TABLE IF EXISTS {s}")];
        let answer = self.ep().read_timeout;
        let (done, failed) = self
            .control()
            .shielded(answer, |c| connect::batch_changes(c, &finish));
        let tidy = match (done.len(), failed) {
            (_, None) => true,
            // Committed; the staging table stays for the next run to drop. A server's answer
            // leaves the connection in step; silence or a cut does not.
            (1, Some(e)) => {
                let in_step = matches!(e, mysql::Error::MySqlError(_));
                let setting = self.ep().read_timeout_setting();
                let why = self
                    .given_up(e, answer, &setting)
                    .unwrap_or_else(|e| e.to_string());
                log::warn!(
                    "the rows were applied, but the staging table `{}` could not be dropped; the next run drops it: {}",
                    self.staging,
                    crate::connect::redact(&why, self.ep())
                );
                in_step
            }
            // The server answered the COMMIT: the transaction is rolled back, the target
            // unchanged.
            (_, Some(e @ mysql::Error::MySqlError(_))) => {
                return Err(self.err("committing the new rows", e))
            }
            (_, Some(e)) => {
                let setting = self.ep().read_timeout_setting();
                let why = self
                    .given_up(e, answer, &setting)
                    .unwrap_or_else(|e| e.to_string());
                return Err(SinkError::Unknown {
                    target: self.describe(),
                    message: crate::connect::redact(&why, self.ep()),
                });
            }
        };
        log::debug!("applied in {:.2} s", t0.elapsed().as_secs_f64());
        let applied = Applied {
            inserted: staged - updated.min(staged),
            updated,
        };
        Ok((applied, tidy))
    }

    /// The columns to create: the source's, or, when keeping definitions and the target has
    /// exactly these columns (same names, same order), the target's own types, NULL-ness,
    /// character sets and collations.
    pub(super) fn definitions(
        &mut self,
        columns: &[SourceColumn],
    ) -> Result<Vec<SourceColumn>, SinkError> {
        let mut out = columns.to_vec();
        if !self.keep_definitions || !self.target_exists()? {
            return Ok(out);
        }
        type Def = (String, String, String, Option<String>, Option<String>);
        let sql = format!(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} \
             AND EXTRA NOT LIKE '%INVISIBLE%' ORDER BY ORDINAL_POSITION",
            mysql_literal(&self.ep().database),
            mysql_literal(&self.target.table)
        );
        let defs: Result<Vec<Def>, _> = self.control().query(sql);
        let defs = defs.map_err(|e| self.fail("reading the target's columns", e, Bound::Read))?;
        let same = defs.len() == out.len()
            && defs
                .iter()
                .zip(&out)
                .all(|(d, c)| d.0.eq_ignore_ascii_case(&c.name));
        if !same {
            log::warn!(
                "the fallback's columns differ from those of the target table `{}`: its column types \
                 are derived from the fallback's values instead",
                self.target.table
            );
            return Ok(out);
        }
        for (c, (_, ty, nullable, charset, collation)) in out.iter_mut().zip(defs) {
            c.exact_mysql_type = Some(ty);
            c.nullable = nullable.eq_ignore_ascii_case("YES");
            c.collation = charset
                .zip(collation)
                .map(|(charset, name)| transform::Collation { charset, name });
        }
        log::info!(
            "the new table keeps the column definitions of `{}`",
            self.target.table
        );
        Ok(out)
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

    pub(super) fn exec(&mut self, action: &str, sql: &str) -> Result<(), SinkError> {
        log::debug!("target: {sql}");
        let r = self.control().query_drop(sql);
        r.map_err(|e| self.fail(action, e, Bound::Read))
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

    /// Secondary indexes, in one ALTER on the staging table, so readers never see the new
    /// table without them; UNIQUE ones are checked as they are built.
    pub(super) fn build_indexes(&mut self) -> Result<(), SinkError> {
        if self.indexes.is_empty() {
            return Ok(());
        }
        let adds: Vec<String> = self
            .indexes
            .iter()
            .map(|i| {
                let cols: Vec<String> = i
                    .columns
                    .iter()
                    .map(|(c, p)| match p {
                        Some(n) => format!("{}({n})", quote_mysql(c)),
                        None => quote_mysql(c),
                    })
                    .collect();
                let kind = if i.unique { "UNIQUE INDEX" } else { "INDEX" };
                format!("ADD {kind} {} ({})", quote_mysql(&i.name), cols.join(", "))
            })
            .collect();
        let sql = format!(
            "ALTER TABLE {} {}",
            quote_mysql(&self.staging),
            adds.join(", ")
        );
        let t0 = std::time::Instant::now();
        let timeout = self.target.statement_timeout;
        let r = self.control().with_timeout(timeout, |c| c.query_drop(sql));
        r.map_err(|e| self.fail("building the indexes", e, Bound::Statement))?;
        log::info!(
            "{} indexes built in {:.2} s",
            self.indexes.len(),
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    pub(super) fn failed(&self) -> Option<String> {
        self.writers.as_ref().and_then(Writers::failed)
    }

    /// Waits for the writers; the first failure, if any.
    pub(super) fn join_writers(&mut self) -> Option<String> {
        self.writers.as_mut().and_then(Writers::join)
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
    fn describe(&self) -> String {
        format!("MySQL {} table {}", self.ep().describe(), self.target.table)
    }

    fn inspect(&mut self, key: &str, read_max: bool) -> Result<Option<TargetState>, SinkError> {
        self.connect()?;
        // One lookup: the visible columns, each with its place in the primary key.
        // Both sides by the names themselves: a join on the columns would match tables whose
        // names differ only in case (information_schema compares without case) and read
        // every table's statistics.
        // With each row, whether an index leads with the key (its maximum is then cheap).
        let sql = format!(
            "SELECT c.COLUMN_NAME, s.SEQ_IN_INDEX, (SELECT COUNT(*) > 0 FROM information_schema.STATISTICS k \
             WHERE k.TABLE_SCHEMA = {db} AND k.TABLE_NAME = {t} AND k.SEQ_IN_INDEX = 1 \
             AND k.COLUMN_NAME = {key}) FROM information_schema.COLUMNS c \
             LEFT JOIN information_schema.STATISTICS s ON s.TABLE_SCHEMA = {db} AND s.TABLE_NAME = {t} \
             AND s.COLUMN_NAME = c.COLUMN_NAME AND s.INDEX_NAME = 'PRIMARY' \
             WHERE c.TABLE_SCHEMA = {db} AND c.TABLE_NAME = {t} AND c.EXTRA NOT LIKE '%INVISIBLE%' \
             ORDER BY c.ORDINAL_POSITION",
            db = mysql_literal(&self.ep().database),
            t = mysql_literal(&self.target.table),
            key = mysql_literal(key)
        );
        let rows: Result<Vec<(String, Option<u64>, bool)>, _> = self.control().query(sql);
        let rows = rows.map_err(|e| self.fail("reading the target's columns", e, Bound::Read))?;
        if rows.is_empty() {
            return Ok(None);
        }
        let has_key = rows.iter().any(|r| r.0.eq_ignore_ascii_case(key));
        self.unindexed_key = (has_key && !rows[0].2).then(|| key.to_string());
        let rows: Vec<(String, Option<u64>)> = rows.into_iter().map(|r| (r.0, r.1)).collect();
        self.database_known = true;
        let mut pk: Vec<&(String, Option<u64>)> = rows.iter().filter(|r| r.1.is_some()).collect();
        pk.sort_by_key(|r| r.1);
        let primary_key = pk.into_iter().map(|r| r.0.clone()).collect();
        let columns: Vec<String> = rows.into_iter().map(|r| r.0).collect();
        let max = if has_key && read_max {
            self.max_of(key)?
        } else {
            None
        };
        let has_rows = match max {
            Some(_) => true,
            None => {
                let sql = format!(
                    "SELECT EXISTS (SELECT 1 FROM {}.{})",
                    quote_mysql(&self.ep().database),
                    quote_mysql(&self.target.table)
                );
                let timeout = self.target.statement_timeout;
                let r = self
                    .control()
                    .with_timeout(timeout, |c| c.query_first::<bool, _>(sql));
                let r = r.map_err(|e| {
                    self.fail("reading whether the table has rows", e, Bound::Statement)
                })?;
                r.unwrap_or(false)
            }
        };
        Ok(Some(TargetState {
            columns,
            primary_key,
            max,
            has_rows,
            // The staging table takes the source's collations, which the merge compares by.
            key_collations: Vec::new(),
        }))
    }

    fn begin(&mut self, columns: &[SourceColumn], load: &Load) -> Result<(), SinkError> {
        self.apply = load.apply.clone();
        self.keep_definitions = load.from_fallback;
        let keys = &load.keys;
        self.connect()?;
        let (db_name, table) = (self.ep().database.clone(), self.target.table.clone());
        // Every lookup in one round trip (a remote link makes each felt); the request for
        // explicit TIMESTAMP defaults last, as the server may refuse it.
        let db = mysql_literal(&db_name);
        let lookup = |name: &str| {
            format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db} AND TABLE_NAME = {}",
                mysql_literal(name)
            )
        };
        let [kind, referencing] = obstacles::lookups(&db_name, &table);
        let mut statements = vec![
            format!("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {db}"),
            "SELECT @@max_allowed_packet, @@local_infile".to_string(),
            kind,
            referencing,
            format!("{} UNION ALL {}", lookup(&self.staging), lookup(&self.old)),
        ];
        const ACTIONS: [&str; 5] = [
            "looking up the database",
            "reading max_allowed_packet and local_infile",
            "looking up the target table",
            "looking up the target table's foreign keys",
            "looking up tables left by an earlier run",
        ];
        let server_from = statements.len();
        statements.extend(ddl::Server::lookups(columns));
        statements.push(ddl::EXPLICIT_DEFAULTS.to_string());
        let (rows, failed) = connect::batch_until_error(self.control(), &statements);
        let explicit_set = match failed {
            None => true,
            // The server refused the SET (an error of its own, not a lost connection).
            Some(mysql::Error::MySqlError(_)) if rows.len() == statements.len() - 1 => false,
            Some(e) => {
                let action = ACTIONS
                    .get(rows.len())
                    .unwrap_or(&"reading the server's settings");
                return Err(self.fail(action, e, Bound::Read));
            }
        };
        type Answers = (
            Option<String>,
            Option<(u64, i64)>,
            Option<String>,
            Vec<(String, String, String)>,
            Vec<String>,
        );
        let answers = || -> Result<Answers, mysql::FromRowError> {
            fn all<T: mysql::prelude::FromRow>(
                rows: &[mysql::Row],
            ) -> Result<Vec<T>, mysql::FromRowError> {
                rows.iter().cloned().map(mysql::from_row_opt).collect()
            }
            let first =
                |i: usize| all::<Option<String>>(&rows[i]).map(|v| v.into_iter().flatten().next());
            Ok((
                first(0)?,
                all(&rows[1])?.into_iter().next(),
                first(2)?,
                all(&rows[3])?,
                all(&rows[4])?,
            ))
        };
        let (schema, vars, kind, referencing, left) =
            answers().map_err(|e| self.err("reading the server's answers", e))?;
        self.database_known = schema.is_some();
        let (packet, local_infile) = vars.unwrap_or((4 << 20, 0));
        self.max_packet = packet as usize;
        self.local_infile = Some(local_infile);
        // Room for the packet header and the statement's own overhead.
        self.statement_limit = MAX_STATEMENT_BYTES
            .min(self.max_packet.saturating_sub(1024))
            .max(1024);
        let (exists, obstacle) = obstacles::judge(&table, kind, &referencing);
        self.target_exists = Some(exists);
        if let Some(why) = obstacle {
            return Err(SinkError::Refused {
                target: self.describe(),
                why,
            });
        }
        let server_rows = rows[server_from..].to_vec();

        // Then the database (created if missing), the leftovers dropped, in one round trip
        // with the staging table's creation below.
        let mut setup: Vec<(String, String)> = Vec::new();
        if !self.database_known {
            setup.push((
                format!(
                    "CREATE DATABASE IF NOT EXISTS {} CHARACTER SET utf8mb4",
                    quote_mysql(&db_name)
                ),
                format!(
                    "database `{db_name}` does not exist and could not be created (create it, or check [azure_mysql_db] database)"
                ),
            ));
        }
        setup.push((
            format!("USE {}", quote_mysql(&db_name)),
            "selecting the database".to_string(),
        ));
        // A dead run's session may still hold a leftover (its flow dropped, the server not
        // told): each DROP waits briefly for it, then fails naming the lock wait.
        let wait = self.ep().read_timeout.min(swap::LOCK_WAIT);
        let mut drops = Vec::new();
        for leftover in [self.staging.clone(), self.old.clone()] {
            // Without case: under lower_case_table_names the server lists them in lower case.
            if left.iter().any(|l| l.eq_ignore_ascii_case(&leftover)) {
                log::warn!("dropping `{leftover}`, left by an earlier run");
                // IF EXISTS: a dead run's session may still drop it as its last act.
                let sql = format!("DROP TABLE IF EXISTS {}", quote_mysql(&leftover));
                let action = format!(
                    "dropping `{leftover}`, left by an earlier run (drop it by hand: {sql}; \
                     the target itself is intact)"
                );
                drops.push((sql, action));
            }
        }
        if !drops.is_empty() {
            let secs = wait.as_secs().max(1);
            let limit = format!("SET SESSION lock_wait_timeout = {secs}");
            setup.push((limit, "limiting the lock wait".into()));
            setup.append(&mut drops);
            let reset = "SET SESSION lock_wait_timeout = DEFAULT".to_string();
            setup.push((reset, "resetting the lock wait".into()));
        }
        let columns = self.definitions(columns)?;
        let server = ddl::Server::settle(self.control(), &columns, &server_rows, explicit_set)
            .map_err(|e| self.fail("reading the server's settings", e, Bound::Read))?;
        let mut defs: Vec<String> = columns.iter().map(|c| server.column_def(c)).collect();
        self.primary = keys.primary.clone();
        match &keys.primary {
            Some(cols) => {
                let cols: Vec<String> = cols.iter().map(|c| quote_mysql(c)).collect();
                defs.push(format!("PRIMARY KEY ({})", cols.join(", ")));
            }
            None if server.requires_primary_key => {
                return Err(SinkError::Refused {
                    target: self.describe(),
                    why: "the server requires a primary key on every table \
                          (sql_require_primary_key / innodb_force_primary_key) and none is known \
                          for this query: set [general] primary_key = column[, column]"
                        .into(),
                });
            }
            None => {}
        }
        // Applied rows go into a table that has its indexes already.
        self.indexes = match self.apply {
            Apply::Replace => keys.indexes.clone(),
            _ => Vec::new(),
        };
        let ddl = format!(
            "CREATE TABLE {} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            quote_mysql(&self.staging),
            defs.join(", ")
        );
        setup.push((ddl, "creating the staging table".to_string()));
        let statements: Vec<String> = setup.iter().map(|(sql, _)| sql.clone()).collect();
        let answer = self.ep().read_timeout + wait;
        let r = self
            .control()
            .with_timeout(answer, |c| connect::batch(c, &statements));
        if let Err((i, e)) = r {
            let action = setup.get(i).map_or("creating the staging table", |s| &s.1);
            return Err(self.fail(action, e, Bound::Read));
        }
        self.database_known = true;
        self.column_names = columns.iter().map(|c| c.name.clone()).collect();
        if self.apply != Apply::Replace {
            self.check_types()?;
        }
        self.start_writers(&columns)
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

    fn commit(&mut self, rows_read: u64) -> Result<Applied, SinkError> {
        if let Some(e) = self.join_writers() {
            return Err(self.rows_error(e));
        }
        // A LOAD DATA stream's OK packet says how many rows the server stored (a count that
        // costs nothing); INSERTs are counted on the table.
        let loaded = match self.statements {
            Some(Statements::LoadData { .. }) => self.writers.as_ref().map(Writers::loaded),
            _ => None,
        };
        let staged: Option<u64> = if loaded.is_some() {
            loaded
        } else {
            let sql = format!("SELECT COUNT(*) FROM {}", quote_mysql(&self.staging));
            let timeout = self.target.statement_timeout;
            let r = self.control().with_timeout(timeout, |c| c.query_first(sql));
            r.map_err(|e| self.fail("counting the staging table", e, Bound::Statement))?
        };
        let staged = staged.unwrap_or(0);
        if staged != rows_read {
            return Err(SinkError::Count {
                staged,
                read: rows_read,
            });
        }
        if self.apply != Apply::Replace {
            let (applied, tidy) = self.apply_staged(staged)?;
            match self.unindexed_key.take() {
                Some(key) if tidy => self.index_key(&key),
                Some(key) => log::info!("`{key}` is not indexed yet: the next run tries"),
                None => {}
            }
            return Ok(applied);
        }
        self.build_indexes()?;
        let replaced = Applied {
            inserted: staged,
            updated: 0,
        };
        let (table, staging, old) = (
            quote_mysql(&self.target.table),
            quote_mysql(&self.staging),
            quote_mysql(&self.old),
        );
        if self.target_exists()? {
            // One statement, so readers see the old table or the new one, never neither.
            let sql = format!("RENAME TABLE {table} TO {old}, {staging} TO {table}");
            // Short tries: while the RENAME waits, new readers of the table queue behind it,
            // and a signal is only acted on between tries (see `swap`).
            let wait = self.ep().read_timeout.min(swap::LOCK_WAIT);
            let name = self.target.table.clone();
            let answer = self.ep().read_timeout;
            let drop = format!("DROP TABLE {old}");
            let swapped = swap::rename(self.control(), &sql, &drop, &name, wait, answer);
            match swapped {
                Ok(swap::Swapped::Yes) => {}
                // The new table is in place: a failing DROP of the old one is a leftover for
                // the next run to clean, not a failed run.
                Ok(swap::Swapped::OldKept(e)) => {
                    let setting = self.swap_setting(wait);
                    let why = self
                        .given_up(e, wait + answer, &setting)
                        .unwrap_or_else(|e| e.to_string());
                    log::warn!(
                        "the target was replaced, but the old table `{}` could not be dropped, or \
                         its DROP did not answer in time, and may be left behind; the next run \
                         drops it (or drop it by hand): {}",
                        self.old,
                        crate::connect::redact(&why, self.ep())
                    )
                }
                Err(swap::Failed::Refused(e)) => {
                    return Err(self.err("swapping in the new table", e))
                }
                // Running again is safe: it drops whichever of the two tables is left over.
                Err(swap::Failed::Unknown(e)) => {
                    let setting = self.swap_setting(wait);
                    let why = self
                        .given_up(e, wait + answer, &setting)
                        .unwrap_or_else(|e| e.to_string());
                    return Err(self.err(
                        "swapping in the new table (the connection failed after the RENAME was \
                         sent, so whether it happened is unknown; the target holds the old rows \
                         or the new ones, whole)",
                        why,
                    ));
                }
            }
            Ok(replaced)
        } else {
            self.exec(
                "renaming the new table",
                &format!("RENAME TABLE {staging} TO {table}"),
            )?;
            Ok(replaced)
        }
    }

    fn abort(&mut self) {
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
