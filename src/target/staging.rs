//! The staging SQL both targets share, each in its own quoting: the new table's primary
//! key clause and which indexes it gets, how staged rows are applied to the table (the
//! match on the merge's key, `INSERT … SELECT`), and the refusal when the table's columns
//! are no longer the query's.

use crate::incremental::Apply;
use crate::target::SinkError;
use crate::transform::keys::{Index, Keys};
use crate::transform::{quote_mysql, quote_sqlite};

/// How a target writes identifiers.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    quote: fn(&str) -> String,
    /// Put before the staging side of `key_match`: SQLite's unary `+`, which keeps the
    /// staging table's key from being an index to probe. Without statistics SQLite would
    /// rather scan the whole table, through any covering index, and look each row up in
    /// the staging table: 0.22 s for 11,000 rows into 1M measured, against 0.015 s looking
    /// each staged row up in the table. (On MySQL a `+` would make a text key a number.)
    probe: &'static str,
}

pub const MYSQL: Dialect = Dialect {
    quote: quote_mysql,
    probe: "",
};
pub const SQLITE: Dialect = Dialect {
    quote: quote_sqlite,
    probe: "+",
};

impl Dialect {
    pub fn quote(&self, name: &str) -> String {
        (self.quote)(name)
    }

    /// `a, b, c`, each quoted.
    pub fn list(&self, names: &[String]) -> String {
        let quoted: Vec<String> = names.iter().map(|n| self.quote(n)).collect();
        quoted.join(", ")
    }

    /// `PRIMARY KEY (a, b)` for the new table, when it has one.
    pub fn primary_key(&self, keys: &Keys) -> Option<String> {
        keys.primary
            .as_ref()
            .map(|cols| format!("PRIMARY KEY ({})", self.list(cols)))
    }

    /// `t.k = s.k AND …`: a staged row matching a table row by the merge's key. The table
    /// is the left operand: SQLite compares by its column's affinity and collation (RTRIM
    /// for a key the source compares ignoring trailing spaces).
    pub fn key_match(&self, table: &str, staging: &str, key: &[String]) -> String {
        let (t, s, p) = (self.quote(table), self.quote(staging), self.probe);
        let on: Vec<String> = key
            .iter()
            .map(|k| format!("{t}.{k} = {p}{s}.{k}", k = self.quote(k)))
            .collect();
        on.join(" AND ")
    }

    /// `INSERT INTO table (cols) SELECT cols FROM staging` and `tail` (a WHERE).
    pub fn insert_select(
        &self,
        table: &str,
        staging: &str,
        columns: &[String],
        tail: &str,
    ) -> String {
        let cols = self.list(columns);
        format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {}{tail}",
            self.quote(table),
            self.quote(staging)
        )
    }
}

/// The secondary indexes the new table gets: a replace builds the source's; applied rows
/// go into a table that has its indexes already.
pub fn indexes(apply: &Apply, keys: &Keys) -> Vec<Index> {
    match apply {
        Apply::Replace => keys.indexes.clone(),
        _ => Vec::new(),
    }
}

/// One column as a target declares it: its name and type (with whatever else decides how
/// a value is stored, e.g. a character set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub name: String,
    pub ty: String,
}

/// Refuses to add rows to a table whose columns are not those the query's now get (the
/// staging table's), naming the first that differs; `stored`: what adding rows would do
/// to them ("convert them", "store them by another affinity").
pub fn same_columns(
    target: String,
    have: &[Declared],
    want: &[Declared],
    stored: &str,
) -> Result<(), SinkError> {
    let differ = have
        .iter()
        .zip(want)
        .find(|(h, w)| !h.name.eq_ignore_ascii_case(&w.name) || !h.ty.eq_ignore_ascii_case(&w.ty));
    let why = match differ {
        None if have.len() == want.len() => return Ok(()),
        None => "its columns are not the query's: run once with --full-refresh to replace it"
            .to_string(),
        Some((h, w)) => format!(
            "column `{}` is {} there, but the query's `{}` is now {}: adding rows would {stored}; \
             run once with --full-refresh to replace the table",
            h.name, h.ty, w.name, w.ty
        ),
    };
    Err(SinkError::Refused { target, why })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_target_quotes_its_own_way() {
        let key = names(&["id", "a`b"]);
        assert_eq!(
            MYSQL.key_match("t", "t__new", &key),
            "`t`.`id` = `t__new`.`id` AND `t`.`a``b` = `t__new`.`a``b`"
        );
        // SQLite's staging side is no index to probe.
        assert_eq!(
            SQLITE.key_match("t", "s", &names(&["id"])),
            "\"t\".\"id\" = +\"s\".\"id\""
        );
        assert_eq!(
            SQLITE.insert_select("t", "s", &names(&["x", "y\""]), " WHERE 1"),
            "INSERT INTO \"t\" (\"x\", \"y\"\"\") SELECT \"x\", \"y\"\"\" FROM \"s\" WHERE 1"
        );
        let keys = Keys {
            primary: Some(key),
            indexes: Vec::new(),
        };
        assert_eq!(
            SQLITE.primary_key(&keys).unwrap(),
            "PRIMARY KEY (\"id\", \"a`b\")"
        );
        assert_eq!(SQLITE.primary_key(&Keys::default()), None);
    }

    #[test]
    fn a_changed_column_is_refused_by_name() {
        let d = |name: &str, ty: &str| Declared {
            name: name.into(),
            ty: ty.into(),
        };
        let have = [d("id", "INTEGER"), d("price", "TEXT")];
        assert!(same_columns("t".into(), &have, &have, "x").is_ok());
        let want = [d("ID", "integer"), d("price", "REAL")];
        let e = same_columns("t".into(), &have, &want, "store them otherwise")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("column `price` is TEXT there, but the query's `price` is now REAL")
                && e.contains("--full-refresh"),
            "{e}"
        );
        let e = same_columns("t".into(), &have, &want[..1], "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("its columns are not the query's"), "{e}");
    }
}
