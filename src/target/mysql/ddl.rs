//! The staging table's column definitions, fitted to the target server: the source's type,
//! character set and collation (or the nearest the server has), and NULL-ness that never
//! refuses a value the run writes.

use crate::transform::{self, quote_mysql, Collation, SourceColumn, SqlType};
use mysql::prelude::Queryable;
use mysql::Conn;
use std::collections::HashMap;

/// What the target server is, as far as DDL cares.
#[derive(Debug, Default)]
pub struct Server {
    pub mariadb: bool,
    /// `explicit_defaults_for_timestamp` is off and could not be turned on for the session:
    /// a NOT NULL TIMESTAMP then needs an explicit DEFAULT, or the server would add
    /// `DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP` to it.
    pub implicit_timestamp_defaults: bool,
    /// `sql_require_primary_key` (MySQL 8) or `innodb_force_primary_key` (MariaDB) is on.
    pub requires_primary_key: bool,
    /// Each source collation → the one used here (`None`: the character set is missing
    /// too, the column becomes utf8mb4 with its default collation).
    pub collations: HashMap<Collation, Option<Collation>>,
}

/// Asks the session for explicit TIMESTAMP defaults: sent last in a batch, as the server
/// may refuse it (a user without the right to set it).
pub const EXPLICIT_DEFAULTS: &str = "SET SESSION explicit_defaults_for_timestamp = ON";

/// A table this small (the source's estimate) gets its secondary indexes in its CREATE
/// TABLE: kept up during the load, they cost less than the ALTER TABLE after it (a DDL,
/// and a round trip on a remote link, per table of a job).
pub const INDEXES_WITH_THE_TABLE: u64 = 50_000;

/// An index as CREATE TABLE declares it (and ALTER TABLE ... ADD does).
pub fn index_def(i: &crate::transform::keys::Index) -> String {
    let cols: Vec<String> = i
        .columns
        .iter()
        .map(|(c, p)| match p {
            Some(n) => format!("{}({n})", quote_mysql(c)),
            None => quote_mysql(c),
        })
        .collect();
    let kind = if i.unique { "UNIQUE INDEX" } else { "INDEX" };
    format!("{kind} {} ({})", quote_mysql(&i.name), cols.join(", "))
}

impl Server {
    /// The lookups `settle` reads, in this order: sent with the sink's other lookups, one
    /// round trip for all. The collations `columns` need, and their replacements, are looked
    /// up by name; one the server spells otherwise is tried by `settle` itself.
    pub fn lookups(columns: &[SourceColumn]) -> Vec<String> {
        let mut out = vec![
            "SELECT VERSION(), @@explicit_defaults_for_timestamp".to_string(),
            // Each exists on one kind of server only.
            "SHOW VARIABLES WHERE Variable_name IN ('sql_require_primary_key', 'innodb_force_primary_key')"
                .to_string(),
        ];
        let mut names: Vec<String> = columns
            .iter()
            .filter_map(|c| c.collation.as_ref())
            .flat_map(candidates)
            .map(|c| transform::mysql_literal(&c.name))
            .collect();
        names.sort();
        names.dedup();
        if !names.is_empty() {
            // MariaDB 10.10+ lists its UCA 14 collations without the character set
            // (`uca1400_ai_ci`): both spellings are matched.
            let names = names.join(", ");
            out.push(format!(
                "SELECT CHARACTER_SET_NAME, CONCAT(CHARACTER_SET_NAME, '_', COLLATION_NAME) FROM \
                 information_schema.COLLATION_CHARACTER_SET_APPLICABILITY \
                 WHERE CONCAT(CHARACTER_SET_NAME, '_', COLLATION_NAME) IN ({names}) UNION ALL SELECT CHARACTER_SET_NAME, COLLATION_NAME FROM \
                 information_schema.COLLATION_CHARACTER_SET_APPLICABILITY WHERE COLLATION_NAME IN ({names})"
            ));
        }
        out
    }

    /// What the server is, from the rows of `lookups` (`explicit_set`: the session took
    /// `EXPLICIT_DEFAULTS`), settling the collations `columns` need and warning for each one
    /// that has to be replaced.
    pub fn settle(
        conn: &mut Conn,
        columns: &[SourceColumn],
        rows: &[Vec<mysql::Row>],
        explicit_set: bool,
    ) -> Result<Server, mysql::Error> {
        let first = |i: usize| rows.get(i).and_then(|r| r.first()).cloned();
        let (version, explicit): (String, i64) = first(0)
            .map(mysql::from_row_opt)
            .transpose()
            .map_err(|e| mysql::Error::FromRowError(e.0))?
            .unwrap_or_default();
        let mut server = Server {
            mariadb: version.to_ascii_lowercase().contains("mariadb"),
            implicit_timestamp_defaults: explicit == 0 && !explicit_set,
            ..Server::default()
        };
        let vars: Vec<(String, String)> = rows
            .get(1)
            .map(|r| r.iter().cloned().map(mysql::from_row_opt).collect())
            .transpose()
            .map_err(|e| mysql::Error::FromRowError(e.0))?
            .unwrap_or_default();
        server.requires_primary_key = vars
            .iter()
            .any(|(_, v)| v.eq_ignore_ascii_case("ON") || v == "1");
        let known: Vec<(String, String)> = rows
            .get(2)
            .map(|r| r.iter().cloned().map(mysql::from_row_opt).collect())
            .transpose()
            .map_err(|e| mysql::Error::FromRowError(e.0))?
            .unwrap_or_default();
        let listed = |c: &Collation| {
            known.iter().any(|(cs, name)| {
                cs.eq_ignore_ascii_case(&c.charset) && name.eq_ignore_ascii_case(&c.name)
            })
        };
        for c in columns {
            let Some(wanted) = &c.collation else { continue };
            if server.collations.contains_key(wanted) {
                continue;
            }
            // In order: listed by name, or else accepted by the server under that name.
            let found = candidates(wanted)
                .into_iter()
                .find(|cand| listed(cand) || exists(conn, cand));
            match &found {
                Some(f) if f == wanted => {}
                Some(f) => log::warn!(
                    "the target server has no collation {}; columns with it get {} instead{}",
                    wanted.name,
                    f.name,
                    if f.name.ends_with("_bin") && !wanted.name.ends_with("_bin") {
                        " (case- and accent-sensitive like the original, but ordered by code point)"
                    } else {
                        ""
                    }
                ),
                None => log::warn!(
                    "the target server has neither collation {} nor character set {}; \
                     columns with it are utf8mb4 (every character fits)",
                    wanted.name,
                    wanted.charset
                ),
            }
            server.collations.insert(wanted.clone(), found);
        }
        Ok(server)
    }

    /// One column of the CREATE TABLE.
    pub fn column_def(&self, c: &SourceColumn) -> String {
        let ty = self.column_type(c);
        let text = match c.collation.as_ref().map(|w| self.collations.get(w)) {
            Some(Some(Some(have))) => {
                format!(" CHARACTER SET {} COLLATE {}", have.charset, have.name)
            }
            Some(_) => " CHARACTER SET utf8mb4".to_string(),
            None => charset_clause(&ty).to_string(),
        };
        let null = match (c.nullable, &c.ty) {
            (false, SqlType::Timestamp { fsp }) if self.implicit_timestamp_defaults => {
                let fsp = if *fsp > 0 {
                    format!("({fsp})")
                } else {
                    String::new()
                };
                format!(" NOT NULL DEFAULT CURRENT_TIMESTAMP{fsp}")
            }
            (false, _) => " NOT NULL".to_string(),
            // Explicit, or servers without explicit_defaults_for_timestamp would make the
            // column NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE ...
            (true, SqlType::Timestamp { .. }) => " NULL DEFAULT NULL".to_string(),
            (true, _) => String::new(),
        };
        format!("{} {ty}{text}{null}", quote_mysql(&c.name))
    }

    /// The source's type, except MariaDB-only types on other servers: their values arrive
    /// as text, so they get a text column wide enough for it.
    fn column_type(&self, c: &SourceColumn) -> String {
        let ty = transform::mysql_target_type(c);
        if self.mariadb {
            return ty;
        }
        match ty.to_ascii_lowercase().as_str() {
            "inet4" => "VARCHAR(15) CHARACTER SET ascii".into(),
            "inet6" => "VARCHAR(39) CHARACTER SET ascii".into(),
            "uuid" => "CHAR(36) CHARACTER SET ascii".into(),
            _ => ty,
        }
    }
}

/// ` CHARACTER SET utf8mb4` for text column types whose source collation is unknown
/// (computed columns), so every source text fits.
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

/// The collations to try for `c`, best first: itself, its twin under the other server's
/// naming (MySQL 8's `utf8mb4_0900_*` is MariaDB's `utf8mb4_uca1400_*`), then the nearest
/// that compares alike (`_bin` for case-sensitive ones), then older Unicode ones.
pub fn candidates(c: &Collation) -> Vec<Collation> {
    let charsets: Vec<&str> = match c.charset.as_str() {
        // MySQL 5.7 and MariaDB before 10.6 call it utf8.
        "utf8mb3" => vec!["utf8mb3", "utf8"],
        "utf8" => vec!["utf8", "utf8mb3"],
        other => vec![other],
    };
    let mut out = Vec::new();
    for cs in charsets {
        let suffix = c
            .name
            .strip_prefix(&format!("{}_", c.charset))
            .unwrap_or(&c.name);
        let same = |name: String| Collation {
            charset: cs.to_string(),
            name,
        };
        out.push(same(format!("{cs}_{suffix}")));
        if suffix.contains("0900") {
            out.push(same(format!("{cs}_{}", suffix.replace("0900", "uca1400"))));
        }
        if suffix.contains("uca1400") {
            out.push(same(format!("{cs}_{}", suffix.replace("uca1400", "0900"))));
        }
        let sensitive = suffix.ends_with("_bin") || suffix.ends_with("_cs");
        if sensitive {
            out.push(same(format!("{cs}_bin")));
        } else {
            out.push(same(format!("{cs}_unicode_520_ci")));
            out.push(same(format!("{cs}_unicode_ci")));
            out.push(same(format!("{cs}_general_ci")));
        }
    }
    out.dedup();
    out
}

/// True when the server knows the character set and the collation, and they go together.
fn exists(conn: &mut Conn, c: &Collation) -> bool {
    let plain =
        |s: &str| !s.is_empty() && s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !plain(&c.charset) || !plain(&c.name) {
        return false;
    }
    conn.query_drop(format!(
        "SELECT CONVERT('' USING {}) COLLATE {}",
        c.charset, c.name
    ))
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coll(charset: &str, name: &str) -> Collation {
        Collation {
            charset: charset.into(),
            name: name.into(),
        }
    }

    fn names(c: &Collation) -> Vec<String> {
        candidates(c).into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn mysql8_collations_map_to_mariadb_twins_then_alike_ones() {
        assert_eq!(
            names(&coll("utf8mb4", "utf8mb4_0900_ai_ci"))[..3],
            [
                "utf8mb4_0900_ai_ci",
                "utf8mb4_uca1400_ai_ci",
                "utf8mb4_unicode_520_ci"
            ]
        );
        let cs = names(&coll("utf8mb4", "utf8mb4_0900_as_cs"));
        assert_eq!(cs[1], "utf8mb4_uca1400_as_cs");
        assert_eq!(cs[2], "utf8mb4_bin", "case-sensitive stays case-sensitive");
        assert_eq!(
            names(&coll("utf8mb4", "utf8mb4_uca1400_ai_ci"))[1],
            "utf8mb4_0900_ai_ci"
        );
        let old = candidates(&coll("utf8mb3", "utf8mb3_bin"));
        assert!(old.contains(&coll("utf8", "utf8_bin")), "{old:?}");
    }

    fn col(ty: SqlType, exact: Option<&str>, collation: Option<Collation>) -> SourceColumn {
        SourceColumn {
            name: "c`1".into(),
            ty,
            nullable: false,
            exact_mysql_type: exact.map(str::to_string),
            collation,
        }
    }

    #[test]
    fn column_definitions_keep_charset_collation_and_null() {
        let latin = coll("latin1", "latin1_bin");
        let mut server = Server::default();
        server.collations.insert(latin.clone(), Some(latin.clone()));
        let text = SqlType::Text {
            max_chars: 20_000,
            fixed: false,
        };
        assert_eq!(
            server.column_def(&col(text.clone(), Some("varchar(20000)"), Some(latin))),
            "`c``1` varchar(20000) CHARACTER SET latin1 COLLATE latin1_bin NOT NULL"
        );
        let missing = coll("koi9", "koi9_ci");
        server.collations.insert(missing.clone(), None);
        assert_eq!(
            server.column_def(&col(text, Some("varchar(5)"), Some(missing))),
            "`c``1` varchar(5) CHARACTER SET utf8mb4 NOT NULL"
        );
        let ts = col(SqlType::Timestamp { fsp: 3 }, Some("timestamp(3)"), None);
        assert_eq!(server.column_def(&ts), "`c``1` timestamp(3) NOT NULL");
        server.implicit_timestamp_defaults = true;
        assert_eq!(
            server.column_def(&ts),
            "`c``1` timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)"
        );
    }

    #[test]
    fn mariadb_only_types_are_portable_elsewhere() {
        let text = SqlType::Text {
            max_chars: 39,
            fixed: false,
        };
        let inet6 = col(text, Some("inet6"), None);
        let mut server = Server {
            mariadb: true,
            ..Server::default()
        };
        assert_eq!(server.column_def(&inet6), "`c``1` inet6 NOT NULL");
        server.mariadb = false;
        assert_eq!(
            server.column_def(&inet6),
            "`c``1` VARCHAR(39) CHARACTER SET ascii NOT NULL"
        );
    }
}
