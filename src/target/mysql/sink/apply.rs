//! An incremental load applied to the existing table in one InnoDB transaction (its column
//! types and engine checked first), the key indexed once, a replaced table's indexes built.

use super::super::ddl;
use super::super::failure::Bound;
use super::{MySqlSink, SQL_MODE};
use crate::connect;
use crate::incremental::{Applied, Apply};
use crate::target::staging::{self, Declared, MYSQL};
use crate::target::{Sink, SinkError};
use crate::transform::{mysql_literal, quote_mysql};
use mysql::prelude::Queryable;

impl MySqlSink {
    /// Refuses to apply rows to a target whose column types are not those the source's
    /// columns now get (the staging table's): INSERT ... SELECT would convert them quietly,
    /// e.g. cut DATETIME(6) to whole seconds.
    pub(super) fn check_types(&mut self) -> Result<(), SinkError> {
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
        let mut defs: [Vec<Declared>; 2] = Default::default();
        let mut engine = None;
        for (which, _, name, ty, charset) in rows {
            // Types and character sets: a collation orders and compares, but keeps every
            // value.
            let ty = match charset {
                Some(c) => format!("{ty} CHARACTER SET {c}"),
                None => ty,
            };
            match which {
                2 => engine = Some(name),
                _ => defs[usize::from(which)].push(Declared { name, ty }),
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
        staging::same_columns(self.describe(), &defs[0], &defs[1], "convert them")
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
        let (statements, gone, merge) = self.apply_statements();
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
        // Every statement answered (else `failed`): what the INSERT added, and (a merge) the
        // rows that came again unchanged and those it replaced.
        let inserted = changed.last().copied().unwrap_or(0);
        let deleted: u64 = changed[2..2 + gone].iter().sum();
        let (unchanged, updated) = if merge {
            (changed[2 + gone], changed[3 + gone])
        } else {
            (0, 0)
        };
        if inserted + unchanged != staged {
            let _ = self.control().query_drop("ROLLBACK");
            return Err(SinkError::Count {
                staged: inserted + unchanged,
                read: staged,
            });
        }
        self.stop_before_commit()?;
        // Its outcome must be known: a COMMIT cut off mid-way may still happen. The DROP
        // runs only if the COMMIT succeeded.
        let s = quote_mysql(&self.staging);
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
            inserted: inserted - updated.min(inserted),
            updated,
            deleted,
        };
        Ok((applied, tidy))
    }

    /// A merge's statements before its INSERT: the rows that come again unchanged (every
    /// value the same, byte for byte, NULL as NULL) taken out of the staging table, then the
    /// table's rows whose key comes again deleted: those are the rows it updates.
    fn merge_statements(&self) -> Vec<String> {
        let Apply::Merge(key) = &self.apply else {
            return Vec::new();
        };
        let (t, s) = (quote_mysql(&self.target.table), quote_mysql(&self.staging));
        let on = MYSQL.key_match(&self.target.table, &self.staging, key);
        let same: Vec<String> = self
            .column_names
            .iter()
            .map(|c| {
                // Both: the bytes catch what a collation calls equal ('a' and 'A'), and the
                // values what a cast to text rounds away (a FLOAT shows 6 digits).
                let q = quote_mysql(c);
                format!(
                    "{t}.{q} <=> {s}.{q} AND CAST({t}.{q} AS BINARY) <=> CAST({s}.{q} AS BINARY)"
                )
            })
            .collect();
        vec![
            format!(
                "DELETE {s} FROM {s} JOIN {t} ON {on} AND {}",
                same.join(" AND ")
            ),
            format!("DELETE {t} FROM {t} JOIN {s} ON {on}"),
        ]
    }

    /// The apply's statements, up to its INSERT: the session's mode, the transaction, the
    /// rows the source no longer has deleted (`deletes = apply`; first, so a row the merge
    /// brings back stays), a merge's statements (`merge_statements`), the INSERT. With how
    /// many deletes of the first kind, and whether it is a merge.
    fn apply_statements(&self) -> (Vec<String>, usize, bool) {
        let t = quote_mysql(&self.target.table);
        let merge_statements = self.merge_statements();
        let insert = MYSQL.insert_select(&self.target.table, &self.staging, &self.column_names, "");
        // One round trip for the transaction's statements (the server stops at the first
        // that fails), one for COMMIT and the staging table's DROP.
        let mut statements = vec![
            format!("SET SESSION sql_mode = '{SQL_MODE}'"),
            "START TRANSACTION".to_string(),
        ];
        let gone = self.deletion.conditions.len();
        for cond in &self.deletion.conditions {
            statements.push(format!("DELETE FROM {t} WHERE {cond}"));
        }
        let merge = !merge_statements.is_empty();
        statements.extend(merge_statements);
        statements.push(insert);
        (statements, gone, merge)
    }

    /// A stop that came during the apply: rolled back, not committed (a COMMIT is never
    /// cut short, so none starts after a stop).
    fn stop_before_commit(&mut self) -> Result<(), SinkError> {
        let Some(stop) = crate::interrupt::stopping() else {
            return Ok(());
        };
        let quick = crate::connect::cleanup::QUICK;
        let r = self
            .control()
            .with_timeout(quick, |c| c.query_drop("ROLLBACK"));
        if r.is_err_and(|e| connect::wait::broken(&e).is_some()) {
            self.control().give_up();
        }
        Err(SinkError::Refused {
            target: self.describe(),
            why: format!(
                "the applied rows were rolled back before the COMMIT: {}",
                crate::interrupt::Interrupted(stop)
            ),
        })
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
            .map(|i| format!("ADD {}", ddl::index_def(i)))
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
}
