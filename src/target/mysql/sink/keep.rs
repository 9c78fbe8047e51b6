//! A fallback load into an existing table keeps what the fallback file cannot tell: the
//! table's column definitions (SQLite knows only integers, reals, text and blobs) and its
//! primary key and indexes (the file's table has none of the source's).

use super::super::failure::Bound;
use super::MySqlSink;
use crate::target::SinkError;
use crate::transform::keys::{Index, KeyPart, Keys};
use crate::transform::{self, mysql_literal, SourceColumn};
use mysql::prelude::Queryable;

impl MySqlSink {
    /// The columns to create: the source's, or, when keeping definitions and the target has
    /// exactly these columns (same names, same order), the target's own types, NULL-ness,
    /// character sets and collations. `true` when the target's were taken.
    pub(super) fn definitions(
        &mut self,
        columns: &[SourceColumn],
    ) -> Result<(Vec<SourceColumn>, bool), SinkError> {
        let mut out = columns.to_vec();
        if !self.keep_definitions || !self.target_exists()? {
            return Ok((out, false));
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
                 are derived from the fallback's values instead, and it gets no keys but \
                 [general] primary_key",
                self.target.table
            );
            return Ok((out, false));
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
        Ok((out, true))
    }

    /// The existing target's primary key and indexes, named by `columns` (the load's
    /// names, which `definitions` found to be the table's); a `[general] primary_key` in
    /// `load` still decides the primary key. FULLTEXT and SPATIAL indexes are not rebuilt.
    pub(super) fn kept_keys(
        &mut self,
        columns: &[SourceColumn],
        load: &Keys,
    ) -> Result<Keys, SinkError> {
        let sql = format!(
            "SELECT INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, INDEX_TYPE \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} \
             ORDER BY INDEX_NAME <> 'PRIMARY', INDEX_NAME, SEQ_IN_INDEX",
            mysql_literal(&self.ep().database),
            mysql_literal(&self.target.table)
        );
        let parts: Result<Vec<Result<KeyPart, _>>, _> = self
            .control()
            .query_map(sql, mysql::from_row_opt::<KeyPart>);
        let parts = parts.map_err(|e| self.fail("reading the target's indexes", e, Bound::Read))?;
        let parts: Vec<KeyPart> = parts.into_iter().filter_map(Result::ok).collect();
        let (keys, skipped) = keys_of(parts, columns);
        for name in skipped {
            log::warn!(
                "the index `{name}` of `{}` is not rebuilt by a fallback load (FULLTEXT, \
                 SPATIAL and functional indexes, those on invisible or generated-key columns \
                 and prefixed primary keys are not); the next run from the primary source \
                 builds the source's",
                self.target.table
            );
        }
        let keys = Keys {
            primary: load.primary.clone().or(keys.primary),
            indexes: keys.indexes,
        };
        log::info!(
            "the new table keeps the keys of `{}` ({} primary key, {} indexes)",
            self.target.table,
            if keys.primary.is_some() { "a" } else { "no" },
            keys.indexes.len()
        );
        Ok(keys)
    }
}

/// The keys `parts` describe, their columns named as in `columns`; and the names of the
/// indexes that cannot be declared again: FULLTEXT and SPATIAL, a part that is an expression
/// (no column) or a column the load does not have (invisible, such as an Azure generated
/// primary key's `my_row_id`), a prefixed primary key part.
fn keys_of(parts: Vec<KeyPart>, columns: &[SourceColumn]) -> (Keys, Vec<String>) {
    let name_of = |c: &str| {
        columns
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(c))
            .map(|s| s.name.clone())
    };
    let mut keys = Keys::default();
    let mut skipped: Vec<String> = Vec::new();
    let mut grouped: Vec<(String, Vec<KeyPart>)> = Vec::new();
    for part in parts {
        match grouped.last_mut() {
            Some((name, all)) if *name == part.0 => all.push(part),
            _ => grouped.push((part.0.clone(), vec![part])),
        }
    }
    for (index, parts) in grouped {
        let primary = index == "PRIMARY";
        let named: Option<Vec<(String, Option<u64>)>> = parts
            .iter()
            .map(|(_, _, column, prefix, kind)| {
                let plain = !matches!(kind.to_ascii_uppercase().as_str(), "FULLTEXT" | "SPATIAL");
                let whole = !(primary && prefix.is_some());
                let column = column.as_deref().and_then(name_of)?;
                (plain && whole).then_some((column, *prefix))
            })
            .collect();
        match (named, primary) {
            (None, _) => skipped.push(index),
            (Some(cols), true) => keys.primary = Some(cols.into_iter().map(|c| c.0).collect()),
            (Some(cols), false) => keys.indexes.push(Index {
                name: index,
                unique: parts[0].1 == 0,
                columns: cols,
            }),
        }
    }
    (keys, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::SqlType;

    fn col(name: &str) -> SourceColumn {
        SourceColumn {
            name: name.into(),
            ty: SqlType::Bool,
            nullable: true,
            exact_mysql_type: None,
            collation: None,
        }
    }

    #[test]
    fn the_statistics_rows_become_the_keys_named_as_the_load_names_them() {
        let p = |i: &str, nu: i64, c: &str, sub: Option<u64>, k: &str| {
            let c = (!c.is_empty()).then(|| c.to_string());
            (i.to_string(), nu, c, sub, k.to_string())
        };
        let parts = vec![
            p("PRIMARY", 0, "ID", None, "BTREE"),
            p("PRIMARY", 0, "part", None, "BTREE"),
            p("by_name", 1, "name", Some(10), "BTREE"),
            p("by_name", 1, "id", None, "BTREE"),
            p("ft", 1, "name", None, "FULLTEXT"),
            p("uniq", 0, "code", None, "BTREE"),
            p("by_expr", 1, "", None, "BTREE"),
            p("on_hidden", 1, "my_row_id", None, "BTREE"),
        ];
        let cols = [col("id"), col("part"), col("name"), col("code")];
        let (keys, skipped) = keys_of(parts, &cols);
        assert_eq!(keys.primary, Some(vec!["id".into(), "part".into()]));
        assert_eq!(
            keys.indexes,
            vec![
                Index {
                    name: "by_name".into(),
                    unique: false,
                    columns: vec![("name".into(), Some(10)), ("id".into(), None)],
                },
                Index {
                    name: "uniq".into(),
                    unique: true,
                    columns: vec![("code".into(), None)],
                },
            ]
        );
        assert_eq!(skipped, ["ft", "by_expr", "on_hidden"]);
    }
}
