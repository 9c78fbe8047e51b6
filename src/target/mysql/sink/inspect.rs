//! What an existing target table holds, for an incremental run: its columns and primary
//! key, whether its key is indexed, its largest key (one lookup, and the maximum).

use super::super::failure::Bound;
use super::MySqlSink;
use crate::incremental::{TargetMax, TargetState};
use crate::target::schema::{self, Change, OnSchemaChange};
use crate::target::staging::Declared;
use crate::target::{Sink, SinkError};
use crate::transform::{mysql_literal, quote_mysql};
use mysql::prelude::Queryable;

impl MySqlSink {
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

    /// What the table holds (see `Sink::inspect`).
    pub(super) fn inspect_table(
        &mut self,
        key: &str,
        read_max: bool,
    ) -> Result<Option<TargetState>, SinkError> {
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
}

impl MySqlSink {
    /// The existing table's columns and the staging table's, as the server declares them
    /// (for `[general] on_schema_change`).
    pub(super) fn columns_lookup(&self) -> String {
        format!(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = {} AND TABLE_NAME IN ({}, {}) AND EXTRA NOT LIKE '%INVISIBLE%' \
             ORDER BY ORDINAL_POSITION",
            mysql_literal(&self.ep().database),
            mysql_literal(&self.target.table),
            mysql_literal(&self.staging)
        )
    }

    /// `[general] on_schema_change` for a replace of an existing table, from the answer of
    /// `columns_lookup`.
    pub(super) fn judge_schema_change(
        &mut self,
        policy: OnSchemaChange,
        rows: &[mysql::Row],
    ) -> Result<(), SinkError> {
        let (mut have, mut want) = (Vec::new(), Vec::new());
        for row in rows {
            let (table, name, ty): (String, String, String) = mysql::from_row_opt(row.clone())
                .map_err(|e| self.err("reading the tables' columns", e.to_string()))?;
            // Under lower_case_table_names the server may list either name in lower case.
            let staged = table.eq_ignore_ascii_case(&self.staging);
            let list = if staged { &mut want } else { &mut have };
            list.push(Declared { name, ty });
        }
        schema::judge(policy, self.describe(), Change::between(&have, &want))
    }
}
