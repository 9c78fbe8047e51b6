//! What an existing target table holds, for an incremental run: its columns, its primary
//! key and how it compares, whether its key is indexed, its largest key.

use super::SqliteSink;
use crate::incremental::{TargetMax, TargetState};
use crate::target::schema::{self, Change, OnSchemaChange};
use crate::target::staging::Declared;
use crate::target::{Sink, SinkError};
use crate::transform::{quote_sqlite, SourceColumn, SqlType};
use rusqlite::{Connection, OpenFlags};
use std::time::Duration;

impl SqliteSink {
    /// The largest value of `key` in the table. Integers above 2^63 are held as their
    /// digits (text, which SQLite orders after every integer): the longest, then largest.
    pub(super) fn max_of(
        &self,
        conn: &Connection,
        key: &str,
    ) -> Result<Option<TargetMax>, SinkError> {
        let (t, k) = (quote_sqlite(&self.table), quote_sqlite(key));
        let err = |e| self.err("reading the largest incremental_key", e);
        let v: rusqlite::types::Value = conn
            .query_row(&format!("SELECT max({k}) FROM {t}"), [], |r| r.get(0))
            .map_err(err)?;
        use rusqlite::types::Value;
        Ok(match v {
            Value::Null => None,
            Value::Integer(n) => Some(TargetMax::Int(n.into())),
            Value::Real(f) => Some(TargetMax::Text(f.to_string())),
            Value::Text(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                let sql = format!(
                    "SELECT {k} FROM {t} WHERE typeof({k}) = 'text' ORDER BY length({k}) DESC, {k} DESC LIMIT 1"
                );
                let s: String = conn.query_row(&sql, [], |r| r.get(0)).map_err(err)?;
                Some(TargetMax::Text(s))
            }
            Value::Text(s) => Some(TargetMax::Text(s)),
            Value::Blob(b) => Some(TargetMax::Text(String::from_utf8_lossy(&b).into_owned())),
        })
    }

    /// True when the file holds a `kind` ('table' or 'view') under the target's name
    /// (compared as SQLite compares names: without case).
    pub(super) fn has(&self, conn: &Connection, kind: &str) -> Result<bool, SinkError> {
        crate::target::sqlite::holds(conn, kind, &self.table)
            .map_err(|e| self.err("looking up the table", e))
    }

    /// What the table holds (see `Sink::inspect`).
    pub(super) fn inspect_table(
        &mut self,
        key: &str,
        read_max: bool,
    ) -> Result<Option<TargetState>, SinkError> {
        if !self.path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .or_else(|_| Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY))
            .map_err(|e| self.err("opening", e))?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(|e| self.err("setting busy_timeout", e))?;
        if !self.has(&conn, "table")? {
            return Ok(None);
        }
        let info: Vec<(String, i64)> = conn
            .prepare(&format!("PRAGMA table_info({})", quote_sqlite(&self.table)))
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))?
                    .collect()
            })
            .map_err(|e| self.err("reading the table's columns", e))?;
        let columns: Vec<String> = info.iter().map(|(n, _)| n.clone()).collect();
        let mut pk: Vec<&(String, i64)> = info.iter().filter(|(_, p)| *p > 0).collect();
        pk.sort_by_key(|(_, p)| *p);
        let has_key = columns.iter().any(|c| c.eq_ignore_ascii_case(key));
        let max = if has_key && read_max {
            self.max_of(&conn, key)?
        } else {
            None
        };
        // The first column of the primary key (the rowid, or a table ordered by it) or of
        // an index makes the maximum a lookup rather than a scan.
        let leads = pk.first().is_some_and(|(n, _)| n.eq_ignore_ascii_case(key))
            || conn
                .query_row(
                    "SELECT count(*) > 0 FROM pragma_index_list(?1) l, pragma_index_info(l.name) i \
                     WHERE l.partial = 0 AND i.seqno = 0 AND i.name = ?2 COLLATE NOCASE",
                    [self.table.as_str(), key],
                    |r| r.get::<_, bool>(0),
                )
                .map_err(|e| self.err("reading the table's indexes", e))?;
        self.unindexed_key = (has_key && !leads).then(|| key.to_string());
        let has_rows = match max {
            Some(_) => true,
            None => conn
                .query_row(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM {})",
                        quote_sqlite(&self.table)
                    ),
                    [],
                    |r| r.get::<_, bool>(0),
                )
                .map_err(|e| self.err("reading whether the table has rows", e))?,
        };
        // The primary key's index (none for an INTEGER PRIMARY KEY) says how it compares.
        let key_collations: Vec<(String, String)> = conn
            .prepare(
                "SELECT i.name, i.coll FROM pragma_index_list(?1) l, pragma_index_xinfo(l.name) i \
                 WHERE l.origin = 'pk' AND i.key = 1 ORDER BY i.seqno",
            )
            .and_then(|mut st| {
                st.query_map([self.table.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect()
            })
            .map_err(|e| self.err("reading the primary key's collations", e))?;
        Ok(Some(TargetState {
            columns,
            primary_key: pk.into_iter().map(|(n, _)| n.clone()).collect(),
            max,
            has_rows,
            key_collations,
        }))
    }
}

impl SqliteSink {
    /// `[general] on_schema_change` for a replace of an existing table: its columns and
    /// the staging table's, as declared. A DECIMAL column declared TEXT in one and
    /// DECIMAL(p,s) in the other is the same column (`[local_db] decimal`, or a table made
    /// before it), not a change.
    pub(super) fn judge_schema_change(
        &self,
        columns: &[SourceColumn],
        policy: OnSchemaChange,
    ) -> Result<(), SinkError> {
        if !self.has(self.conn(), "table")? {
            return Ok(());
        }
        let decimal = |name: &str| {
            columns.iter().any(|c| {
                c.name.eq_ignore_ascii_case(name) && matches!(c.ty, SqlType::Decimal { .. })
            })
        };
        let declared = |table: &str| -> Result<Vec<Declared>, SinkError> {
            let types = self.table_types(table)?;
            Ok(types
                .into_iter()
                .map(|(name, ty)| Declared { name, ty })
                .collect())
        };
        let want = declared(&self.staging)?;
        // A DECIMAL column held as TEXT on one side and declared DECIMAL(p,s) on the other
        // is the same column under another `[local_db] decimal`: not a change. Its precision
        // changing still is.
        let is_text = |ty: &str| ty.trim().eq_ignore_ascii_case("TEXT");
        let as_new = |d: Declared| -> Declared {
            let new = want.iter().find(|w| w.name.eq_ignore_ascii_case(&d.name));
            match new {
                Some(w) if decimal(&d.name) && (is_text(&d.ty) || is_text(&w.ty)) => Declared {
                    name: d.name,
                    ty: w.ty.clone(),
                },
                _ => d,
            }
        };
        let have: Vec<Declared> = declared(&self.table)?.into_iter().map(as_new).collect();
        let change = Change::between(&have, &want);
        schema::judge(policy, self.describe(), change)
    }
}
