//! `--verify` on the type suite, into both targets: equal right after a load, and one
//! changed value of each type, a missing row and an extra row each found by its key.

mod common;
use common::*;
use mysql::prelude::Queryable;

const TYPES: &str = r#"
SET SESSION sql_mode = '';
CREATE TABLE vt (
  k INT PRIMARY KEY,
  ti TINYINT, biu BIGINT UNSIGNED, d DECIMAL(12,2), d40 DECIMAL(40,20),
  f FLOAT, dbl DOUBLE, b7 BIT(7), b64 BIT(64), bo BOOL,
  dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL,
  tm TIME, tm6 TIME(6), yr YEAR,
  vc VARCHAR(50), l1 VARCHAR(20) CHARACTER SET latin1, tx TEXT, bn BINARY(3), bl BLOB,
  j JSON, e ENUM('a','b c','ü'), st SET('x','y','z'), g GEOMETRY
) CHARACTER SET utf8mb4;
INSERT INTO vt VALUES
 (1, -128, 0, -9999999999.99, '-99999999999999999999.99999999999999999999',
  -3.40282e38, -1.7976931348623157e308, b'0', b'0', 0,
  '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01',
  '-838:59:59', '-838:59:59.000000', 1901, '', '', '', X'000000', X'', '{}', 'a', '', POINT(0, 0)),
 (2, 5, 18446744073709551615, 1234.56, '1.00000000000000000001', 1.5, 0.1,
  b'1010101', b'1111111111111111111111111111111111111111111111111111111111111111', 1,
  '2024-02-29', '2024-01-01 10:00:00', '2024-01-01 10:00:00.000001', '2024-03-01 12:00:00.5',
  '-838:59:59', '12:00:00.000001', 2024, 'abc', 'café', 'a\nb', X'616263', X'00FF',
  '{"a": 1}', 'b c', 'x,z', POINT(1, 2)),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, 0, 9223372036854775808, 0.01, '0.00000000000000000001', 1.17549e-38,
  2.2250738585072014e-308, b'1', b'1000000000000000000000000000000000000000000000000000000000000001', 0,
  '0000-00-00', '0000-00-00 00:00:00', '2024-02-29 23:59:59.999999', '2038-01-19 03:14:07.999999',
  '00:00:00', '-00:00:00.000001', 0, 'N', '1:x', 'NULL', X'000001', X'00', '[]', 'ü', 'y',
  ST_GeomFromText('LINESTRING(0 0, 1 1)')),
 (5, 127, 1, 0, '0', 3.40282e38, 1.7976931348623157e308, b'1111111', b'1', 1,
  '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999999', '2001-01-01 00:00:00',
  '838:59:59', '838:59:59.999999', 2155, '🚗 x', 'Ñ', REPEAT('long ', 3000), X'FFFFFF',
  REPEAT(X'00FE', 3000), '{"b": [1, 2, {"c": null}], "s": "ü\\"q"}', 'a', 'x,y,z', POINT(-1.5, 2.5));
"#;

/// Per column: the new value of row 2, as MySQL and as SQLite hold it (`None`: the same).
const CHANGES: &[(&str, &str, Option<&str>)] = &[
    ("ti", "6", None),
    (
        "biu",
        "18446744073709551614",
        Some("'18446744073709551614'"),
    ),
    ("d", "1234.57", None),
    ("d40", "'1.00000000000000000002'", None),
    ("f", "1.25", None),
    ("dbl", "0.30000000000000004", None),
    ("b7", "b'1010100'", Some("84")),
    (
        "b64",
        "b'1111111111111111111111111111111111111111111111111111111111111110'",
        Some("X'FFFFFFFFFFFFFFFE'"),
    ),
    ("bo", "0", None),
    ("dt", "'2024-02-28'", None),
    ("dtm", "'2024-01-01 10:00:01'", None),
    ("dtm6", "'2024-01-01 10:00:00.000002'", None),
    (
        "ts",
        "'2024-03-01 12:00:01.5'",
        Some("'2024-03-01 12:00:01.500000'"),
    ),
    ("tm", "'-838:59:58'", None),
    ("tm6", "'12:00:00.000002'", None),
    ("yr", "2023", None),
    ("vc", "'abd'", None),
    ("l1", "'cafe'", None),
    ("tx", "'a\\nc'", Some("'a'||char(10)||'c'")),
    ("bn", "X'616264'", None),
    ("bl", "X'00FE'", None),
    ("j", "'{\"a\": 2}'", None),
    ("e", "'a'", None),
    ("st", "'x'", None),
    (
        "g",
        "ST_AsBinary(POINT(1, 3))",
        Some("X'0101000000000000000000F03F0000000000000840'"),
    ),
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum To {
    Sqlite,
    Azure,
}

struct Case {
    to: To,
    job: Job,
    db: String,
}

impl Case {
    /// The source database `db` made by `sql`, loaded by dbsync into the target.
    fn loaded(db: &str, to: To, sql: &str, query: &str, general: &str) -> Case {
        fresh_db(db, sql);
        let cfg = match to {
            To::Sqlite => sqlite_config(db, query, "vt"),
            To::Azure => {
                drop_target_db(db);
                azure_config(db, query, db, "vt", &verified("ca.pem"))
            }
        };
        let job = Job::new(&common::jobs::with_general(&cfg, general));
        job.run(&[]).expect(0);
        Case {
            to,
            job,
            db: db.to_string(),
        }
    }

    /// Runs SQL on the target (MySQL's, or SQLite's when given).
    fn target(&self, mysql: &str, sqlite: &str) {
        match self.to {
            To::Sqlite => rusqlite::Connection::open(self.job.path("data/out.db"))
                .unwrap()
                .execute_batch(sqlite)
                .unwrap(),
            To::Azure => run_all(&mut tls_root(Some(&self.db)), mysql),
        }
    }

    /// `--verify`'s summary, expecting `code`.
    fn verify(&self, code: i32) -> serde_json::Value {
        let out = self
            .job
            .run(&["--verify", "--summary-json", "-"])
            .expect(code);
        let s: serde_json::Value = serde_json::from_str(out.stdout().trim()).unwrap();
        s["verify"].clone()
    }
}

fn keys(v: &serde_json::Value, kind: &str) -> Vec<String> {
    v[kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

fn counts(v: &serde_json::Value) -> (u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap();
    (n("missing"), n("extra"), n("changed"))
}

fn each_type_found(db: &str, to: To) {
    let case = Case::loaded(db, to, TYPES, "SELECT * FROM vt", "");
    let v = case.verify(0);
    assert_eq!(v["equal"], true, "{v}");
    assert_eq!(
        (v["source_rows"].as_u64(), v["target_rows"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(counts(&v), (0, 0, 0));
    case.target(
        "CREATE TABLE bak AS SELECT * FROM vt",
        "CREATE TABLE bak AS SELECT * FROM vt",
    );
    for (col, mysql, sqlite) in CHANGES {
        let sqlite = sqlite.unwrap_or(mysql);
        case.target(
            &format!("UPDATE vt SET `{col}` = {mysql} WHERE k = 2"),
            &format!("UPDATE vt SET \"{col}\" = {sqlite} WHERE k = 2"),
        );
        let v = case.verify(5);
        assert_eq!(counts(&v), (0, 0, 1), "{col}: {v}");
        assert_eq!(keys(&v, "changed_keys"), vec!["2"], "{col}");
        case.target(
            &format!("UPDATE vt JOIN bak USING (k) SET vt.`{col}` = bak.`{col}` WHERE k = 2"),
            &format!(
                "UPDATE vt SET \"{col}\" = (SELECT \"{col}\" FROM bak WHERE k = 2) WHERE k = 2"
            ),
        );
    }
    assert_eq!(case.verify(0)["equal"], true);
    // A row missing, a row extra: each by its key.
    case.target(
        "DELETE FROM vt WHERE k = 4; INSERT INTO vt (k, vc) VALUES (77, 'new')",
        "DELETE FROM vt WHERE k = 4; INSERT INTO vt (k, vc) VALUES (77, 'new')",
    );
    let v = case.verify(5);
    assert_eq!(counts(&v), (1, 1, 0), "{v}");
    assert_eq!(keys(&v, "missing_keys"), vec!["4"]);
    assert_eq!(keys(&v, "extra_keys"), vec!["77"]);
}

#[test]
fn each_type_into_sqlite() {
    each_type_found("vf_types_sqlite", To::Sqlite);
}

#[test]
fn each_type_into_mysql() {
    each_type_found("vf_types_mysql", To::Azure);
}

/// A row of the source changed after the load is found too (the source side's hash).
fn source_change_found(db: &str, to: To) {
    let case = Case::loaded(db, to, TYPES, "SELECT * FROM vt", "");
    root(Some(db))
        .query_drop("UPDATE vt SET d = 1234.55 WHERE k = 2")
        .unwrap();
    let v = case.verify(5);
    assert_eq!(counts(&v), (0, 0, 1), "{v}");
    assert_eq!(keys(&v, "changed_keys"), vec!["2"]);
    if to == To::Azure {
        // The one chunk whose sums differ, by its key range.
        let ranges = v["ranges"].as_array().unwrap();
        assert_eq!(ranges.len(), 1, "{v}");
        assert!(ranges[0].as_str().unwrap().starts_with("k "), "{v}");
    }
}

#[test]
fn a_source_change_is_found_in_sqlite() {
    source_change_found("vf_src_sqlite", To::Sqlite);
}

#[test]
fn a_source_change_is_found_in_mysql() {
    source_change_found("vf_src_mysql", To::Azure);
}

/// The source database `db` made by `sql` (a table `vt`), loaded with
/// `zero_dates = null`, and found equal right after.
fn nulled_zero_dates_loaded(db: &str, to: To, sql: &str) -> Job {
    fresh_db(db, sql);
    let query = "SELECT * FROM vt";
    let cfg = match to {
        To::Sqlite => sqlite_config(db, query, "vt"),
        To::Azure => {
            drop_target_db(db);
            azure_config(db, query, db, "vt", &verified("ca.pem"))
        }
    };
    let job = Job::new(&cfg.replacen("[local_db]", "zero_dates = null\n\n[local_db]", 1));
    job.run(&[]).expect(0);
    let out = job.run(&["--verify", "--summary-json", "-"]).expect(0);
    let s: serde_json::Value = serde_json::from_str(out.stdout().trim()).unwrap();
    assert_eq!(s["verify"]["equal"], true, "{s}");
    job
}

/// Zero dates written as NULL (`zero_dates = null`) are no difference.
fn zero_dates_nulled(db: &str, to: To) {
    nulled_zero_dates_loaded(db, to, TYPES);
}

#[test]
fn nulled_zero_dates_are_equal_in_sqlite() {
    zero_dates_nulled("vf_zero_sqlite", To::Sqlite);
}

#[test]
fn nulled_zero_dates_are_equal_in_mysql() {
    zero_dates_nulled("vf_zero_mysql", To::Azure);
}

/// NOT NULL date and time columns holding zero dates, read as NULL (`zero_dates = null`)
/// into columns made nullable: equal on both sides, and a real change still found.
fn not_null_zero_dates(db: &str, to: To) {
    let sql = "SET SESSION sql_mode = '';
         CREATE TABLE vt (k INT PRIMARY KEY, d DATE NOT NULL, t DATETIME(6) NOT NULL,
           ts TIMESTAMP NOT NULL DEFAULT '2001-01-01 00:00:00', n INT);
         INSERT INTO vt VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', 1),
           (2, '2024-02-29', '2024-01-01 10:00:00.5', '2024-03-01 12:00:00', 2);";
    let job = nulled_zero_dates_loaded(db, to, sql);
    root(Some(db))
        .query_drop("UPDATE vt SET n = 3 WHERE k = 1")
        .unwrap();
    let out = job.run(&["--verify", "--summary-json", "-"]).expect(5);
    let s: serde_json::Value = serde_json::from_str(out.stdout().trim()).unwrap();
    assert_eq!(keys(&s["verify"], "changed_keys"), vec!["1"], "{s}");
}

#[test]
fn not_null_zero_dates_are_equal_in_sqlite() {
    not_null_zero_dates("vf_zero_nn_sqlite", To::Sqlite);
}

#[test]
fn not_null_zero_dates_are_equal_in_mysql() {
    not_null_zero_dates("vf_zero_nn_mysql", To::Azure);
}

/// `decimal = real` keeps 15 significant digits in SQLite: compared to those, equal after
/// a load; a change within them is found. `decimal = text`: exact.
#[test]
fn sqlite_decimal_modes_compare_as_stored() {
    for (mode, db) in [("real", "vf_dec_real"), ("text", "vf_dec_text")] {
        fresh_db(
            db,
            "CREATE TABLE m (id INT PRIMARY KEY, wide DECIMAL(30,10), cents DECIMAL(12,2));
             INSERT INTO m VALUES (1, 12345678901234567890.0123456789, 10.10),
                                  (2, -0.0000000001, 0), (3, NULL, -99999999.99);",
        );
        let cfg = sqlite_config(db, "SELECT * FROM m", "m") + &format!("decimal = {mode}\n");
        let job = Job::new(&cfg);
        job.run(&[]).expect(0);
        job.run(&["--verify"]).expect(0);
        root(Some(db))
            .query_drop("UPDATE m SET cents = 10.11 WHERE id = 1")
            .unwrap();
        let out = job.run(&["--verify"]).expect(5);
        assert!(out.stderr().contains("changed keys: 1"), "{}", out.stderr());
    }
}

/// Two values of equal length swapped between two rows of one chunk: each row is found
/// (the checksum is not linear, as an XOR of CRCs would be).
fn swap_found(db: &str, to: To) {
    let case = Case::loaded(db, to, TYPES, "SELECT * FROM vt", "");
    // BINARY(3): X'616263' and X'000001' trade places.
    case.target(
        "UPDATE vt SET bn = IF(k = 2, X'000001', X'616263') WHERE k IN (2, 4)",
        "UPDATE vt SET bn = CASE k WHEN 2 THEN X'000001' ELSE X'616263' END WHERE k IN (2, 4)",
    );
    let v = case.verify(5);
    assert_eq!(counts(&v), (0, 0, 2), "{v}");
    assert_eq!(keys(&v, "changed_keys"), vec!["2", "4"]);
}

#[test]
fn a_swap_between_rows_is_found_in_sqlite() {
    swap_found("vf_swap_sqlite", To::Sqlite);
}

#[test]
fn a_swap_between_rows_is_found_in_mysql() {
    swap_found("vf_swap_mysql", To::Azure);
}

/// Bytes moved from one text column to the next, a text made NULL where it was `N`, and
/// an empty text where it was NULL: each is a changed row (the row's text keeps its
/// values apart without a length before each text, on MySQL).
fn boundary_found(db: &str, to: To) {
    let case = Case::loaded(db, to, TYPES, "SELECT * FROM vt", "");
    let change = "UPDATE vt SET vc = 'ab', l1 = 'ccafé' WHERE k = 2;
        UPDATE vt SET vc = NULL WHERE k = 4; UPDATE vt SET tx = '' WHERE k = 3;";
    case.target(change, change);
    let v = case.verify(5);
    assert_eq!(counts(&v), (0, 0, 3), "{v}");
    assert_eq!(keys(&v, "changed_keys"), vec!["2", "3", "4"]);
    // Bytes moved between binary values, which may hold the separator's byte (their
    // length keeps them apart), and between texts around a `#`.
    let case = Case::loaded(
        &format!("{db}_b"),
        to,
        "CREATE TABLE b (k INT PRIMARY KEY, x BLOB, y BLOB, s VARCHAR(9), u VARCHAR(9));
         INSERT INTO b VALUES (1, X'61FF62', X'63', 'c', 'd'), (2, X'FF', X'', 'a#', 'b');",
        "SELECT * FROM b",
        "",
    );
    // (The target's table is `vt`, whatever the source's.)
    let change = "UPDATE vt SET x = X'61', y = X'62FF63' WHERE k = 1;
        UPDATE vt SET s = 'a', u = '#b' WHERE k = 2;";
    case.target(change, change);
    let v = case.verify(5);
    assert_eq!(keys(&v, "changed_keys"), vec!["1", "2"], "{v}");
}

#[test]
fn bytes_moved_between_columns_are_found_in_sqlite() {
    boundary_found("vf_bound_sqlite", To::Sqlite);
}

#[test]
fn bytes_moved_between_columns_are_found_in_mysql() {
    boundary_found("vf_bound_mysql", To::Azure);
}

/// Into SQLite the sides' rows are paired off in the order they come, and rows out of
/// step wait for their twins: a file whose rows lie in the reverse order of the source's
/// (past the rows that may wait, so the waiting ones are hashed too) is equal, and a
/// changed, a missing and an extra row are each still found by their key.
#[test]
fn rows_in_another_order_in_the_file_compare_equal() {
    let db = "vf_order_sqlite";
    fresh_db(
        db,
        "CREATE TABLE o (name VARCHAR(20) PRIMARY KEY, n INT, note VARCHAR(30));
         INSERT INTO o SELECT CONCAT('k', LPAD(seq, 6, '0')), seq, REPEAT('x', seq % 30)
           FROM seq_1_to_40000;",
    );
    let job = Job::new(&sqlite_config(db, "SELECT * FROM o", "o"));
    job.run(&[]).expect(0);
    let file = rusqlite::Connection::open(job.path("data/out.db")).unwrap();
    file.execute_batch(
        "CREATE TABLE r AS SELECT * FROM o ORDER BY name DESC;
         DELETE FROM o; INSERT INTO o SELECT * FROM r ORDER BY name DESC; DROP TABLE r;",
    )
    .unwrap();
    let first: String = file
        .query_row("SELECT name FROM o ORDER BY rowid LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(first, "k040000", "the file's rows are reversed");
    let out = job.run(&["--verify", "--summary-json", "-"]).expect(0);
    assert!(out.stdout().contains("\"equal\":true"), "{}", out.stdout());
    file.execute_batch(
        "UPDATE o SET n = -1 WHERE name = 'k020000';
         DELETE FROM o WHERE name = 'k000007';
         INSERT INTO o VALUES ('k999999', 1, '');",
    )
    .unwrap();
    let out = job.run(&["--verify", "--summary-json", "-"]).expect(5);
    let s: serde_json::Value = serde_json::from_str(out.stdout().trim()).unwrap();
    let v = &s["verify"];
    assert_eq!(counts(v), (1, 1, 1), "{v}");
    assert_eq!(keys(v, "missing_keys"), vec!["k000007"]);
    assert_eq!(keys(v, "extra_keys"), vec!["k999999"]);
    assert_eq!(keys(v, "changed_keys"), vec!["k020000"]);
}
