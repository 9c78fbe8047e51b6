//! The keys a target table gets: the source table's PRIMARY KEY and indexes when the query
//! reads that one table without multiplying its rows, or what `[general] primary_key` and
//! `indexes` say. Column names are the query's result names.

/// One row of MySQL's `information_schema.STATISTICS`, as both the source's keys and a
/// fallback load's kept keys read it: index, non-unique, column (NULL for a part that is
/// an expression), prefix length, index type.
pub type KeyPart = (String, i64, Option<String>, Option<u64>, String);

/// One index of the target table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    /// Result column names, with a MySQL prefix length where the source index has one.
    pub columns: Vec<(String, Option<u64>)>,
}

/// The target table's primary key and secondary indexes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keys {
    pub primary: Option<Vec<String>>,
    pub indexes: Vec<Index>,
}

/// Whether the source compares this text column as if shorter values were padded with
/// spaces (PAD SPACE: every MySQL and MariaDB collation but the `_nopad_` and `_0900_` ones,
/// and not binary strings), so `'abc'` and `'abc '` are one key there. SQLite's BINARY
/// compares them apart; its RTRIM collation, which ignores trailing spaces, agrees with the
/// source for equality.
pub fn pads_trailing_spaces(col: &super::SourceColumn) -> bool {
    use super::SqlType;
    let text = matches!(col.ty, SqlType::Text { .. } | SqlType::Enum | SqlType::Set);
    text && col.collation.as_ref().is_some_and(|k| {
        let name = k.name.to_ascii_lowercase();
        k.charset != "binary" && !name.contains("_nopad") && !name.contains("_0900_")
    })
}

/// `[general] indexes`: which of the source's indexes the target gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexPolicy {
    All,
    Primary,
    None,
}

impl IndexPolicy {
    pub fn parse(s: &str) -> Option<IndexPolicy> {
        match s.to_ascii_lowercase().as_str() {
            "all" => Some(IndexPolicy::All),
            "primary" => Some(IndexPolicy::Primary),
            "none" => Some(IndexPolicy::None),
            _ => None,
        }
    }
}

/// `[general] primary_key`: the source's, these columns, or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryKey {
    Source,
    Columns(Vec<String>),
    None,
}

impl PrimaryKey {
    pub fn parse(s: &str) -> Option<PrimaryKey> {
        if s.trim().eq_ignore_ascii_case("none") {
            return Some(PrimaryKey::None);
        }
        let cols: Vec<String> = s
            .split(',')
            .map(|c| c.trim().trim_matches('`').to_string())
            .collect();
        (!cols.iter().any(String::is_empty)).then_some(PrimaryKey::Columns(cols))
    }
}

impl Keys {
    /// The source's keys as the settings shape them. `Err` names a `primary_key` column
    /// the query does not return.
    pub fn settle(
        self,
        primary: &PrimaryKey,
        policy: IndexPolicy,
        names: &[String],
    ) -> Result<Keys, String> {
        let mut keys = self;
        match primary {
            PrimaryKey::Source => {}
            PrimaryKey::None => keys.primary = None,
            PrimaryKey::Columns(cols) => {
                let mut resolved = Vec::new();
                for c in cols {
                    let found = names.iter().find(|n| n.eq_ignore_ascii_case(c));
                    match found {
                        Some(n) => resolved.push(n.clone()),
                        None => return Err(format!("`{c}` is not a column of the query")),
                    }
                }
                keys.primary = Some(resolved);
            }
        }
        match policy {
            IndexPolicy::All => {}
            IndexPolicy::Primary => keys.indexes.clear(),
            IndexPolicy::None => {
                keys.indexes.clear();
                if *primary == PrimaryKey::Source {
                    keys.primary = None;
                }
            }
        }
        Ok(keys)
    }

    /// One line per key, as the log and `--dry-run` show them.
    pub fn lines(&self) -> Vec<String> {
        let pk = self
            .primary
            .iter()
            .map(|pk| format!("primary key: ({})", pk.join(", ")));
        let indexes = self.indexes.iter().map(|i| {
            let cols: Vec<&str> = i.columns.iter().map(|(c, _)| c.as_str()).collect();
            let kind = if i.unique { "unique index" } else { "index" };
            format!("{kind} {}: ({})", i.name, cols.join(", "))
        });
        pk.chain(indexes).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Keys {
        Keys {
            primary: Some(vec!["id".into()]),
            indexes: vec![Index {
                name: "by_lot".into(),
                unique: false,
                columns: vec![("lot".into(), None)],
            }],
        }
    }

    #[test]
    fn only_pad_space_text_ignores_trailing_spaces() {
        use crate::transform::{Collation, SourceColumn, SqlType};
        let col = |ty: SqlType, charset: &str, name: &str| SourceColumn {
            name: "k".into(),
            ty,
            nullable: false,
            exact_mysql_type: None,
            collation: Some(Collation {
                charset: charset.into(),
                name: name.into(),
            }),
        };
        let text = SqlType::Text {
            max_chars: 9,
            fixed: false,
        };
        assert!(pads_trailing_spaces(&col(
            text.clone(),
            "utf8mb4",
            "utf8mb4_bin"
        )));
        assert!(pads_trailing_spaces(&col(
            SqlType::Enum,
            "latin1",
            "latin1_bin"
        )));
        assert!(!pads_trailing_spaces(&col(
            text.clone(),
            "utf8mb4",
            "utf8mb4_nopad_bin"
        )));
        assert!(!pads_trailing_spaces(&col(
            text.clone(),
            "utf8mb4",
            "utf8mb4_0900_bin"
        )));
        assert!(!pads_trailing_spaces(&col(
            text.clone(),
            "binary",
            "binary"
        )));
        let int = SqlType::Int {
            bytes: 4,
            unsigned: false,
        };
        assert!(!pads_trailing_spaces(&col(int, "utf8mb4", "utf8mb4_bin")));
        let unknown = SourceColumn {
            collation: None,
            ..col(text, "", "")
        };
        assert!(!pads_trailing_spaces(&unknown));
    }

    #[test]
    fn settings_shape_the_source_keys() {
        let names = ["id".to_string(), "Lot".to_string()];
        let all = source()
            .settle(&PrimaryKey::Source, IndexPolicy::All, &names)
            .unwrap();
        assert_eq!(all, source());
        let primary = source()
            .settle(&PrimaryKey::Source, IndexPolicy::Primary, &names)
            .unwrap();
        assert!(primary.indexes.is_empty() && primary.primary.is_some());
        assert_eq!(
            source()
                .settle(&PrimaryKey::Source, IndexPolicy::None, &names)
                .unwrap(),
            Keys::default()
        );
        assert_eq!(
            source().lines(),
            ["primary key: (id)", "index by_lot: (lot)"]
        );
        let mine = source()
            .settle(
                &PrimaryKey::parse("lot").unwrap(),
                IndexPolicy::None,
                &names,
            )
            .unwrap();
        assert_eq!(mine.primary, Some(vec!["Lot".to_string()]));
        let e = source()
            .settle(
                &PrimaryKey::parse("id, nope").unwrap(),
                IndexPolicy::All,
                &names,
            )
            .unwrap_err();
        assert!(e.contains("`nope`"), "{e}");
        assert_eq!(PrimaryKey::parse("None"), Some(PrimaryKey::None));
        assert_eq!(PrimaryKey::parse("a,,b"), None);
    }
}
