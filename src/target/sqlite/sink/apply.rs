//! The new rows put in: a replaced table's indexes, or an incremental load applied to the
//! existing table (its declared types checked first), inside the run's one transaction.

use super::SqliteSink;
use crate::incremental::{Applied, Apply};
use crate::target::staging::{self, Declared, SQLITE};
use crate::target::{Sink, SinkError};
use crate::transform::{self, quote_sqlite, DecimalMode, SourceColumn, SqlType};

impl SqliteSink {
    /// Puts the staged rows into the existing table, inside the load's transaction: a merge
    /// updates the rows whose key comes again with other values (in place: cheaper than
    /// delete and insert), leaves those that come again as they are, and adds the others.
    /// Drops the staging table.
    pub(super) fn apply_staged(&self, staged: u64) -> Result<Applied, SinkError> {
        let mut deleted = 0;
        for cond in &self.deletion.conditions {
            let sql = format!("DELETE FROM {} WHERE {cond}", quote_sqlite(&self.table));
            deleted += self
                .conn()
                .execute(&sql, [])
                .map_err(|e| self.err("deleting the rows the source no longer has", e))?
                as u64;
        }
        let (updated, unchanged, only_new) = match &self.apply {
            Apply::Merge(key) => self.update_rows_that_came_again(key)?,
            _ => (0, 0, String::new()),
        };
        let sql = SQLITE.insert_select(&self.table, &self.staging, &self.columns, &only_new);
        let inserted = self
            .conn()
            .execute(&sql, [])
            .map_err(|e| self.err("adding the new rows", e))? as u64;
        if inserted + updated + unchanged != staged {
            return Err(SinkError::Count {
                staged: inserted + updated + unchanged,
                read: staged,
            });
        }
        let drop = format!("DROP TABLE {}", quote_sqlite(&self.staging));
        self.conn()
            .execute_batch(&drop)
            .map_err(|e| self.err("dropping the staging table", e))?;
        Ok(Applied {
            inserted,
            updated,
            deleted,
        })
    }

    /// A merge's update of the rows whose key came again: those whose every value is the
    /// table's (compared as stored: byte for byte, NULL as NULL) are taken out of the staging
    /// table, the others update theirs. How many were updated and how many were the same,
    /// and the WHERE that leaves only the new rows for the INSERT.
    fn update_rows_that_came_again(&self, key: &[String]) -> Result<(u64, u64, String), SinkError> {
        let (table, staging) = (quote_sqlite(&self.table), quote_sqlite(&self.staging));
        // A key column compared without trailing spaces is set too: the source's 'abc '
        // replaces the target's 'abc', as it does on MySQL.
        let is_key = |c: &String| {
            key.iter().any(|k| k.eq_ignore_ascii_case(c))
                && !self.rtrim_keys.iter().any(|k| k.eq_ignore_ascii_case(c))
        };
        let on = SQLITE.key_match(&self.table, &self.staging, key);
        let set: Vec<String> = self
            .columns
            .iter()
            .filter(|c| !is_key(c))
            .map(|c| format!("{q} = {staging}.{q}", q = quote_sqlite(c)))
            .collect();
        let same: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{table}.{q} IS {staging}.{q} COLLATE BINARY",
                    q = quote_sqlite(c)
                )
            })
            .collect();
        let sql = format!(
            "DELETE FROM {staging} WHERE EXISTS (SELECT 1 FROM {table} WHERE {on} AND {})",
            same.join(" AND ")
        );
        let unchanged = self
            .conn()
            .execute(&sql, [])
            .map_err(|e| self.err("finding the rows that came again unchanged", e))?;
        // Only key columns: a row that comes again is already there as it is.
        let updated = match set.is_empty() {
            true => 0,
            false => {
                let sql = format!(
                    "UPDATE {table} SET {} FROM {staging} WHERE {on}",
                    set.join(", ")
                );
                self.conn()
                    .execute(&sql, [])
                    .map_err(|e| self.err("replacing the rows that came again", e))?
            }
        };
        let only_new = format!(" WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {on})");
        Ok((updated as u64, unchanged as u64, only_new))
    }

    /// Refuses to add rows to a table whose declared column types are not those the query's
    /// columns now get (the staging table's): SQLite would store them by another affinity.
    pub(super) fn check_types(&self) -> Result<(), SinkError> {
        let declared = |table: &str| -> Result<Vec<Declared>, SinkError> {
            Ok(self
                .table_types(table)?
                .into_iter()
                .map(|(name, ty)| Declared {
                    name,
                    ty: format!("declared {ty:?}"),
                })
                .collect())
        };
        let (have, want) = (declared(&self.table)?, declared(&self.staging)?);
        staging::same_columns(self.describe(), &have, &want, "store them otherwise")
    }

    /// Each column's declared type. Rows added to an existing table keep its DECIMAL
    /// columns as they are declared there when that is TEXT (made before `decimal = auto`,
    /// or under `decimal = text`): until a full replace, which declares them anew.
    pub(super) fn declared_types(
        &self,
        columns: &[SourceColumn],
    ) -> Result<Vec<String>, SinkError> {
        let mut types: Vec<String> = columns
            .iter()
            .map(|c| transform::sqlite_decl(&c.ty, self.decimal))
            .collect();
        let wide: Vec<&str> = columns
            .iter()
            .filter(|c| {
                matches!(c.ty, SqlType::Decimal { precision, .. } if precision > transform::REAL_DIGITS)
            })
            .map(|c| c.name.as_str())
            .collect();
        if self.decimal == DecimalMode::Real && !wide.is_empty() {
            log::warn!(
                "[local_db] decimal = real: {} hold(s) more than {} digits, which SQLite's REAL \
                 rounds (decimal = auto keeps them exact, as text)",
                wide.join(", "),
                transform::REAL_DIGITS
            );
        }
        if self.apply == Apply::Replace || !self.has(self.conn(), "table")? {
            return Ok(types);
        }
        let have = self.table_types(&self.table)?;
        let mut kept = Vec::new();
        for (c, ty) in columns.iter().zip(types.iter_mut()) {
            let text = have
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&c.name))
                .is_some_and(|(_, t)| t.eq_ignore_ascii_case("TEXT"));
            if matches!(c.ty, SqlType::Decimal { .. }) && text && ty.as_str() != "TEXT" {
                kept.push(format!("`{}` (would be {ty})", c.name));
                *ty = "TEXT".into();
            }
        }
        if !kept.is_empty() {
            log::info!(
                "DECIMAL columns stay exact text in the existing table until a --full-refresh \
                 declares them as numbers: {}",
                kept.join(", ")
            );
        }
        Ok(types)
    }

    /// Each column's name and declared type.
    pub(super) fn table_types(&self, table: &str) -> Result<Vec<(String, String)>, SinkError> {
        self.conn()
            .prepare(&format!("PRAGMA table_info({})", quote_sqlite(table)))
            .and_then(|mut st| st.query_map([], |r| Ok((r.get(1)?, r.get(2)?)))?.collect())
            .map_err(|e| self.err("reading the column types", e))
    }

    /// Indexes the incremental key of a table made before it was one (under `replace`, or
    /// by another tool), inside the run's transaction: once, then every maximum is cheap.
    pub(super) fn index_key(&self, key: &str) -> Result<(), SinkError> {
        let t0 = std::time::Instant::now();
        let name = crate::incremental::key_index_name(&self.table, key);
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
            quote_sqlite(&name),
            quote_sqlite(&self.table),
            quote_sqlite(key)
        );
        self.conn()
            .execute_batch(&sql)
            .map_err(|e| self.err(format!("indexing `{key}`"), e))?;
        log::info!(
            "indexed `{key}` ({name}) in {:.2} s, once: each run reads its largest value",
            t0.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The secondary indexes, on the renamed table, each named `<table>__<index>` (SQLite's
    /// index names are per file and schemas reuse theirs across tables; the old table's went
    /// with it), inside the load's transaction.
    pub(super) fn build_indexes(&self) -> Result<(), SinkError> {
        let t0 = std::time::Instant::now();
        for i in &self.indexes {
            let cols: Vec<String> = i.columns.iter().map(|(c, _)| quote_sqlite(c)).collect();
            let sql = format!(
                "CREATE {}INDEX {} ON {} ({})",
                if i.unique { "UNIQUE " } else { "" },
                quote_sqlite(&index_name(&self.table, &i.name)),
                quote_sqlite(&self.table),
                cols.join(", ")
            );
            self.conn()
                .execute_batch(&sql)
                .map_err(|e| self.err(format!("building index {}", i.name), e))?;
        }
        if !self.indexes.is_empty() {
            log::info!(
                "{} indexes built in {:.2} s",
                self.indexes.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }
}

/// The SQLite name of the source's index `index` on `table`. SQLite's index names are one
/// namespace per file, and schemas reuse names across tables (`idx_fk_film_id` on two of
/// them): the table's name keeps them apart, the same every run, and a replaced table's
/// old indexes go with it.
pub fn index_name(table: &str, index: &str) -> String {
    format!("{table}__{index}")
}
