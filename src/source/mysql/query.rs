//! The user's query as the server reads it: a small lexer that knows strings, quoted
//! identifiers and comments, so dbsync can drop a trailing `;`, wrap the query in a derived
//! table without breaking it, and find what makes a partitioned read unsafe.
//!
//! Executable comments (`/*! ... */`, `/*!40001 ... */`, MariaDB's `/*M! ... */`) are read
//! as SQL, because the server runs their content: `SELECT /*!40001 SQL_NO_CACHE */ ...`, as
//! mysqldump writes it, is a modifier like any other. Their version number is not judged
//! (MariaDB skips MySQL's 50700..99999, MySQL runs them); a modifier lifted out of one is
//! put back on the outer SELECT inside the same opener, so the server judges it as before.
//! Optimizer hints (`/*+ ... */`) stay where they are, as comments.

use mysql::prelude::Queryable;
use mysql::Conn;

/// How the server lexes strings: with `NO_BACKSLASH_ESCAPES` a backslash is an ordinary
/// character, so `'C:\'` is a whole string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialect {
    pub backslash_escapes: bool,
    /// MariaDB rather than MySQL: how a statement's running time is bounded on the server.
    pub mariadb: bool,
}

impl Default for Dialect {
    fn default() -> Self {
        Dialect {
            backslash_escapes: true,
            mariadb: false,
        }
    }
}

impl Dialect {
    /// The session's own rules; the server's default when they cannot be read, unless
    /// the connection broke (returned, so nothing waits on it again).
    pub fn of(conn: &mut Conn) -> Result<Dialect, mysql::Error> {
        let (mode, version): (String, String) =
            match conn.query_first("SELECT @@SESSION.sql_mode, VERSION()") {
                Ok(found) => found.unwrap_or_default(),
                Err(e) if crate::connect::wait::broken(&e).is_some() => return Err(e),
                Err(_) => Default::default(),
            };
        Ok(Dialect {
            backslash_escapes: !mode.to_ascii_uppercase().contains("NO_BACKSLASH_ESCAPES"),
            mariadb: version.to_ascii_lowercase().contains("mariadb"),
        })
    }

    /// `select` (a SELECT) bounded to `secs` seconds on the server itself, so a check given
    /// up on the client does not run on there.
    pub fn bounded(self, select: &str, secs: u64) -> String {
        match self.mariadb {
            true => format!("SET STATEMENT max_statement_time = {secs} FOR {select}"),
            false => match select.strip_prefix("SELECT ") {
                Some(rest) => format!("SELECT /*+ MAX_EXECUTION_TIME({}) */ {rest}", secs * 1000),
                None => select.to_string(),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A keyword, an unquoted identifier or a number.
    Word,
    /// A `backtick` identifier.
    Quoted,
    /// A '...' or "..." literal.
    Str,
    /// Any other single character.
    Punct,
    Space,
    /// `-- `, `#` and `/* */` comments, optimizer hints included.
    Comment,
    /// `/*!`, `/*!NNNNN`, `/*M!NNNNNN`: what follows is SQL up to the closing `*/`.
    ExecOpen,
    ExecClose,
}

#[derive(Debug, Clone, Copy)]
pub struct Token<'a> {
    kind: Kind,
    pub text: &'a str,
}

impl Token<'_> {
    fn significant(&self) -> bool {
        matches!(
            self.kind,
            Kind::Word | Kind::Quoted | Kind::Str | Kind::Punct
        )
    }

    /// A keyword, unquoted name or number.
    pub fn is_bare_word(&self) -> bool {
        self.kind == Kind::Word
    }

    pub fn is_word(&self, w: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(w)
    }

    pub fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct && self.text.starts_with(c)
    }
}

/// The tokens the server acts on: no space or comment, and executable comments opened up.
pub fn significant(q: &str, d: Dialect) -> Vec<Token<'_>> {
    tokens(q, d)
        .into_iter()
        .filter(Token::significant)
        .collect()
}

/// Names the query itself defines: CTEs (`name [(cols)] AS (`) and derived tables or
/// aliases after a parenthesis (`) [AS] name`), lower-cased. Result metadata reports a
/// column of a CTE or derived table under that name, which may also be a real table's: its
/// definitions must not be taken from there. Column aliases after a parenthesis
/// (`COUNT(*) AS n`) land here too, which only makes the check more careful.
pub fn local_names(q: &str, d: Dialect) -> std::collections::HashSet<String> {
    let t = significant(q, d);
    let name = |tok: &Token| -> Option<String> {
        match tok.kind {
            Kind::Word => Some(tok.text.to_lowercase()),
            Kind::Quoted => Some(tok.text.trim_matches('`').replace("``", "`").to_lowercase()),
            _ => None,
        }
    };
    let mut out = std::collections::HashSet::new();
    for i in 0..t.len() {
        // `name AS (` or `name (a, b) AS (`: a CTE.
        if let Some(n) = name(&t[i]) {
            let mut j = i + 1;
            if t.get(j).is_some_and(|x| x.is_punct('(')) {
                while j < t.len() && !t[j].is_punct(')') {
                    j += 1;
                }
                j += 1;
            }
            if t.get(j).is_some_and(|x| x.is_word("AS"))
                && t.get(j + 1).is_some_and(|x| x.is_punct('('))
            {
                out.insert(n);
            }
        }
        // `) AS name` or `) name`: a derived table (or a column alias).
        if t[i].is_punct(')') {
            let j = if t.get(i + 1).is_some_and(|x| x.is_word("AS")) {
                i + 2
            } else {
                i + 1
            };
            if let Some(n) = t.get(j).and_then(name) {
                out.insert(n);
            }
        }
    }
    out
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Splits `q` into tokens whose texts, joined, give `q` back. An unterminated string or
/// comment runs to the end (the server then reports the error).
fn tokens(q: &str, d: Dialect) -> Vec<Token<'_>> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_exec = false;
    while i < b.len() {
        let start = i;
        let rest = &b[i..];
        let kind = if rest.starts_with(b"/*!") || rest.starts_with(b"/*M!") {
            i += if rest[2] == b'M' { 4 } else { 3 };
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            in_exec = true;
            Kind::ExecOpen
        } else if in_exec && rest.starts_with(b"*/") {
            i += 2;
            in_exec = false;
            Kind::ExecClose
        } else if rest.starts_with(b"/*") {
            i = q[i + 2..].find("*/").map_or(b.len(), |p| i + 2 + p + 2);
            Kind::Comment
        } else if rest[0] == b'#'
            || (rest.starts_with(b"--")
                && rest
                    .get(2)
                    .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()))
        {
            i = q[i..].find('\n').map_or(b.len(), |p| i + p);
            Kind::Comment
        } else if rest[0] == b'\'' || rest[0] == b'"' || rest[0] == b'`' {
            let quote = rest[0];
            let escapes = d.backslash_escapes && quote != b'`';
            i += 1;
            loop {
                match b.get(i) {
                    None => break,
                    Some(b'\\') if escapes => i += 2,
                    Some(&c) if c == quote && b.get(i + 1) == Some(&quote) => i += 2,
                    Some(&c) if c == quote => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            i = i.min(b.len());
            if quote == b'`' {
                Kind::Quoted
            } else {
                Kind::Str
            }
        } else if rest[0].is_ascii_whitespace() {
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            Kind::Space
        } else if is_word_byte(rest[0]) {
            while i < b.len() && is_word_byte(b[i]) {
                i += 1;
            }
            Kind::Word
        } else {
            i += q[i..].chars().next().map_or(1, char::len_utf8);
            Kind::Punct
        };
        out.push(Token {
            kind,
            text: &q[start..i],
        });
    }
    out
}

/// The user's query without trailing `;` (a derived table cannot hold one), wherever it
/// stands among trailing comments; a `;` inside a string or comment is left alone.
pub fn clean(q: &str, d: Dialect) -> String {
    let mut toks = tokens(q, d);
    while let Some(last) = toks.iter().rposition(Token::significant) {
        if !toks[last].is_punct(';') {
            break;
        }
        toks.remove(last);
    }
    toks.iter()
        .map(|t| t.text)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Modifiers that may only stand on the outermost SELECT: MariaDB refuses them inside a
/// derived table (ERROR 1234), so a wrap moves them out.
const OUTER_ONLY: [&str; 5] = [
    "SQL_NO_CACHE",
    "SQL_CACHE",
    "HIGH_PRIORITY",
    "SQL_BUFFER_RESULT",
    "SQL_CALC_FOUND_ROWS",
];

/// Every word that may stand between SELECT and its select list.
const MODIFIERS: [&str; 11] = [
    "ALL",
    "DISTINCT",
    "DISTINCTROW",
    "STRAIGHT_JOIN",
    "SQL_SMALL_RESULT",
    "SQL_BIG_RESULT",
    "SQL_NO_CACHE",
    "SQL_CACHE",
    "HIGH_PRIORITY",
    "SQL_BUFFER_RESULT",
    "SQL_CALC_FOUND_ROWS",
];

/// `q` without the outer-only modifiers of its SELECTs, and those modifiers as the outer
/// SELECT takes them. Every SELECT is looked at: the server accepts these modifiers only
/// on the top-level SELECTs, so a query that ran holds them nowhere else.
///
/// The cache and priority hints keep their meaning on the outer SELECT, which is the one
/// statement the server runs. SQL_CALC_FOUND_ROWS is dropped: it only makes the server
/// count rows past a LIMIT for a later FOUND_ROWS(), which nothing asks for.
fn lift(q: &str, d: Dialect) -> (String, Vec<String>) {
    let toks = tokens(q, d);
    let mut drop = vec![false; toks.len()];
    let mut lifted: Vec<String> = Vec::new();
    let mut opener: Option<&str> = None;
    let mut prev: Option<Token> = None;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        match t.kind {
            Kind::ExecOpen => opener = Some(t.text),
            Kind::ExecClose => opener = None,
            _ => {}
        }
        let starts_select = t.is_word("SELECT") && !prev.is_some_and(|p| p.is_punct('.'));
        if t.significant() {
            prev = Some(t);
        }
        i += 1;
        if !starts_select {
            continue;
        }
        // The run of modifiers after SELECT, through comments and executable comments.
        while i < toks.len() {
            let m = toks[i];
            match m.kind {
                Kind::ExecOpen => opener = Some(m.text),
                Kind::ExecClose => opener = None,
                Kind::Space | Kind::Comment => {}
                Kind::Word if MODIFIERS.iter().any(|w| m.is_word(w)) => {
                    prev = Some(m);
                    if OUTER_ONLY.iter().any(|w| m.is_word(w)) {
                        drop[i] = true;
                        let word = m.text.to_ascii_uppercase();
                        let outer = match opener {
                            Some(o) => format!("{o} {word} */"),
                            None => word.clone(),
                        };
                        if word != "SQL_CALC_FOUND_ROWS" && !lifted.contains(&outer) {
                            lifted.push(outer);
                        }
                    }
                }
                _ => break,
            }
            i += 1;
        }
    }
    let inner = toks
        .iter()
        .zip(&drop)
        .filter(|(_, &d)| !d)
        .map(|(t, _)| t.text)
        .collect();
    (inner, lifted)
}

/// True when the query ends in a LIMIT of its own (outside any parentheses): a filter put
/// around it would apply to the rows the LIMIT kept, not to the table.
pub fn has_top_level_limit(q: &str) -> bool {
    let mut depth = 0i32;
    let mut after_dot = false;
    for t in significant(q, Dialect::default()) {
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth -= 1;
        } else if depth == 0 && !after_dot && t.is_word("LIMIT") {
            return true;
        }
        after_dot = t.is_punct('.');
    }
    false
}

/// `SELECT {list} FROM (q) AS alias{tail}`, built so that any query the server runs as it
/// is runs the same inside: the outer-only modifiers move to the outer SELECT, and the
/// inner query ends with a newline so a trailing `-- comment` cannot swallow the `)`.
pub fn wrap(q: &str, d: Dialect, list: &str, alias: &str, tail: &str) -> String {
    let (inner, lifted) = lift(q, d);
    let mods: String = lifted.iter().map(|m| format!("{m} ")).collect();
    format!("SELECT {mods}{list} FROM ({inner}\n) AS `{alias}`{tail}")
}

/// As `wrap`, without the outer-only modifiers (cache and priority hints): for a SELECT
/// that goes inside another one, where the server refuses them (ER 1234).
pub fn wrap_nested(q: &str, d: Dialect, list: &str, alias: &str, tail: &str) -> String {
    let (inner, _) = lift(q, d);
    format!("SELECT {list} FROM ({inner}\n) AS `{alias}`{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_query_defines() {
        let d = Dialect::default();
        let n = local_names(
            "WITH c AS (SELECT 1), `D x` (a) AS (SELECT 2) SELECT * FROM (SELECT * FROM t) AS sub JOIN c, (SELECT 3) e",
            d,
        );
        for want in ["c", "d x", "sub", "e"] {
            assert!(n.contains(want), "{want}: {n:?}");
        }
        assert!(!n.contains("t"), "{n:?}");
        assert!(local_names("SELECT * FROM t WHERE a = 'x) AS t'", d).is_empty());
    }

    const D: Dialect = Dialect {
        backslash_escapes: true,
        mariadb: false,
    };

    #[test]
    fn a_check_is_bounded_on_either_server() {
        let mariadb = Dialect { mariadb: true, ..D };
        assert_eq!(
            mariadb.bounded("SELECT 1", 5),
            "SET STATEMENT max_statement_time = 5 FOR SELECT 1"
        );
        assert_eq!(
            D.bounded("SELECT 1", 5),
            "SELECT /*+ MAX_EXECUTION_TIME(5000) */ 1"
        );
    }

    fn kinds(q: &str, d: Dialect) -> Vec<(Kind, &str)> {
        tokens(q, d)
            .into_iter()
            .filter(|t| t.kind != Kind::Space)
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn tokens_rebuild_the_query() {
        for q in [
            "SELECT 'a''b', \"c\\\"d\", `e``f` FROM t -- x\n# y\n/* z */",
            "SELECT /*!40001 SQL_NO_CACHE */ 1 /*+ hint */ ; ",
            "SELECT 'unterminated",
            "SELECT ñ, 1--1, 'é' /* open",
        ] {
            assert_eq!(tokens(q, D).iter().map(|t| t.text).collect::<String>(), q);
        }
    }

    #[test]
    fn comment_markers_inside_strings_and_identifiers_are_text() {
        let q = "SELECT '-- no', \"# no\", '/* no */', `a -- b`, 'it''s -- x', 'a\\' -- y'";
        assert!(kinds(q, D).iter().all(|(k, _)| *k != Kind::Comment));
        // Without backslash escapes 'a\' ends at its second quote, and the rest is a comment.
        let plain = Dialect {
            backslash_escapes: false,
            mariadb: false,
        };
        let k = kinds("SELECT 'a\\' -- y'", plain);
        assert_eq!(k[1], (Kind::Str, "'a\\'"));
        assert_eq!(k[2], (Kind::Comment, "-- y'"));
        // Quotes of the other kind inside a string do not end it.
        assert_eq!(
            kinds("SELECT \"it's\", 'say \"hi\"'", D)[1..],
            [
                (Kind::Str, "\"it's\""),
                (Kind::Punct, ","),
                (Kind::Str, "'say \"hi\"'")
            ]
        );
    }

    #[test]
    fn double_dash_needs_a_space_to_be_a_comment() {
        assert!(kinds("SELECT 1--1", D)
            .iter()
            .all(|(k, _)| *k != Kind::Comment));
        assert_eq!(kinds("SELECT 1 --", D)[2], (Kind::Comment, "--"));
        assert_eq!(kinds("SELECT 1 --\tx", D)[2], (Kind::Comment, "--\tx"));
    }

    #[test]
    fn executable_comments_are_sql() {
        let k = kinds("SELECT /*!40001 SQL_NO_CACHE */ a /*M!100100 , b */", D);
        assert_eq!(
            k,
            [
                (Kind::Word, "SELECT"),
                (Kind::ExecOpen, "/*!40001"),
                (Kind::Word, "SQL_NO_CACHE"),
                (Kind::ExecClose, "*/"),
                (Kind::Word, "a"),
                (Kind::ExecOpen, "/*M!100100"),
                (Kind::Punct, ","),
                (Kind::Word, "b"),
                (Kind::ExecClose, "*/"),
            ]
        );
        // A string inside one may hold `*/`.
        assert_eq!(kinds("/*! '*/' */", D)[1], (Kind::Str, "'*/'"));
    }

    #[test]
    fn clean_drops_only_real_trailing_semicolons() {
        assert_eq!(clean("  SELECT 1 ;; \n", D), "SELECT 1");
        assert_eq!(clean("SELECT 1; -- done", D), "SELECT 1 -- done");
        assert_eq!(clean("SELECT 1 -- done;", D), "SELECT 1 -- done;");
        assert_eq!(clean("SELECT ';'", D), "SELECT ';'");
        assert_eq!(
            clean("SELECT 1 /* ; */ ;\n# end;\n", D),
            "SELECT 1 /* ; */ \n# end;"
        );
    }

    #[test]
    fn finds_only_a_limit_of_the_whole_query() {
        assert!(has_top_level_limit("SELECT * FROM t ORDER BY id LIMIT 10"));
        assert!(has_top_level_limit("select * from t limit 5 offset 2"));
        assert!(!has_top_level_limit(
            "SELECT * FROM (SELECT * FROM t LIMIT 3) AS x"
        ));
        assert!(!has_top_level_limit(
            "SELECT t.limit, 'LIMIT 1' FROM t -- LIMIT 2"
        ));
        assert!(!has_top_level_limit("SELECT `limit` FROM t"));
    }

    #[test]
    fn wrap_lifts_outer_only_modifiers() {
        assert_eq!(
            wrap(
                "SELECT SQL_NO_CACHE DISTINCT high_priority a FROM t -- x",
                D,
                "*",
                "w",
                ""
            ),
            "SELECT SQL_NO_CACHE HIGH_PRIORITY * FROM (SELECT  DISTINCT  a FROM t -- x\n) AS `w`"
        );
        assert_eq!(
            wrap("SELECT /*!40001 SQL_NO_CACHE */ * FROM t", D, "`a`", "w", " LIMIT 0"),
            "SELECT /*!40001 SQL_NO_CACHE */ `a` FROM (SELECT /*!40001  */ * FROM t\n) AS `w` LIMIT 0"
        );
        // SQL_CALC_FOUND_ROWS is dropped; a column named like a modifier elsewhere is kept.
        assert_eq!(
            wrap(
                "(SELECT SQL_CALC_FOUND_ROWS t.select, 'SQL_CACHE' FROM t) UNION (SELECT 1, 2)",
                D,
                "*",
                "w",
                ""
            ),
            "SELECT * FROM ((SELECT  t.select, 'SQL_CACHE' FROM t) UNION (SELECT 1, 2)\n) AS `w`"
        );
        assert_eq!(
            wrap("SELECT /*!40001 SQL_CALC_FOUND_ROWS */ a", D, "*", "w", ""),
            "SELECT * FROM (SELECT /*!40001  */ a\n) AS `w`"
        );
        assert_eq!(
            wrap(
                "WITH c AS (SELECT 1 a) SELECT SQL_BUFFER_RESULT a FROM c",
                D,
                "*",
                "w",
                ""
            ),
            "SELECT SQL_BUFFER_RESULT * FROM (WITH c AS (SELECT 1 a) SELECT  a FROM c\n) AS `w`"
        );
    }
}
