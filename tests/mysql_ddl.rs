//! The MySQL target's table means what the source's does: character sets, collations,
//! NULL-ness under the zero-date policy, TIMESTAMP defaults, and a fallback run keeping
//! the target's own column definitions.

mod common;
use common::*;
use mysql::prelude::Queryable;

/// (name, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME) of the target table.
type Def = (String, String, String, Option<String>, Option<String>);

fn target_columns(db: &str, table: &str) -> Vec<Def> {
    tls_root(None)
        .exec(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLLATION_NAME \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (db, table),
        )
        .unwrap()
}

#[test]
fn charsets_collations_zero_dates_and_timestamps_keep_their_meaning() {
    let db = "dbsync_d_meaning";
    fresh_db(
        db,
        "CREATE TABLE d (
           id INT PRIMARY KEY,
           code VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
           note VARCHAR(20000) CHARACTER SET latin1,
           sens VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_uca1400_as_cs,
           born DATE NOT NULL,
           seen TIMESTAMP NOT NULL DEFAULT '2020-01-01 00:00:00'
         );
         INSERT INTO d VALUES (1, 'abc', 'caf\u{e9} latin1', 'Abc', '0000-00-00', '2024-05-01 10:00:00'),
                              (2, 'ABD', NULL, 'abc', '2024-02-29', '2024-05-02 10:00:00');",
    );
    drop_target_db(db);
    let cfg = azure_config(db, "SELECT * FROM d", db, "d", &verified("ca.pem"))
        .replace("[local_db]", "zero_dates = null\n\n[local_db]");
    Job::new(&cfg).run(&[]).expect(0);
    let cols = target_columns(db, "d");
    let find = |n: &str| cols.iter().find(|c| c.0 == n).unwrap().clone();
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        (find("code").1, find("code").3, find("code").4),
        ("varchar(10)".into(), s("utf8mb4"), s("utf8mb4_bin"))
    );
    assert_eq!(
        (find("note").1, find("note").3),
        ("varchar(20000)".into(), s("latin1"))
    );
    assert_eq!(find("sens").4, s("utf8mb4_uca1400_as_cs"));
    assert_eq!(find("born").2, "YES", "zero dates are written as NULL");
    let mut t = tls_root(Some(db));
    // Comparisons behave as on the source: _bin and _cs are case-sensitive.
    let hits: Option<u64> = t
        .query_first("SELECT COUNT(*) FROM d WHERE code = 'ABC' OR sens = 'ABC'")
        .unwrap();
    assert_eq!(hits, Some(0));
    let got = mysql_rows(&mut t, "SELECT id, note, born FROM d ORDER BY id");
    assert_eq!(
        got,
        vec![
            vec![s("1"), s("caf\u{e9} latin1"), None],
            vec![s("2"), None, s("2024-02-29")]
        ]
    );
    // The server runs with explicit_defaults_for_timestamp=OFF: no implicit ON UPDATE.
    let (_, create): (String, String) = t.query_first("SHOW CREATE TABLE d").unwrap().unwrap();
    assert!(
        !create.to_lowercase().contains("on update"),
        "the copy must not start rewriting `seen` on every UPDATE: {create}"
    );
}

#[test]
fn a_cte_named_like_a_table_never_takes_that_tables_definitions() {
    let db = "dbsync_d_alias";
    fresh_db(
        db,
        "CREATE TABLE c (v DECIMAL(10,0), e ENUM('x','y'));
         CREATE TABLE src (v DECIMAL(10,2), e VARCHAR(5));
         INSERT INTO src VALUES (1.25, 'zzz');",
    );
    drop_target_db(db);
    let query = "WITH c AS (SELECT v, e FROM src) SELECT * FROM c";
    let run = Job::new(&azure_config(db, query, db, "out", &verified("ca.pem"))).run(&[]);
    let run = run.expect(0);
    let got = mysql_rows(&mut tls_root(Some(db)), "SELECT v, e FROM `out`");
    assert_eq!(
        got,
        vec![vec![Some("1.25".into()), Some("zzz".into())]],
        "not rounded, not refused"
    );
    // What the target cannot keep for a CTE's text column is said.
    assert!(
        run.stderr().contains("`e` (from `c`)") && run.stderr().contains("collations"),
        "{}",
        run.stderr()
    );

    // Same kind and length, other collation: still not the real table's definition.
    let mut c = root(Some(db));
    c.query_drop(
        "CREATE TABLE names (name VARCHAR(10) CHARACTER SET latin1 COLLATE latin1_bin);
         CREATE TABLE people (name VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci);
         INSERT INTO people VALUES ('Alpha'), ('alpha');",
    )
    .unwrap();
    let query = "WITH names AS (SELECT name FROM people) SELECT * FROM names";
    Job::new(&azure_config(db, query, db, "ppl", &verified("ca.pem")))
        .run(&[])
        .expect(0);
    let hits: Option<u64> = tls_root(Some(db))
        .query_first("SELECT COUNT(*) FROM ppl WHERE name = 'alpha'")
        .unwrap();
    assert_eq!(
        hits,
        Some(2),
        "compares as the source does (case-insensitive)"
    );
}

#[test]
fn not_null_timestamps_get_no_implicit_on_update() {
    let db = "dbsync_d_ts";
    fresh_db(
        db,
        "CREATE TABLE t (id INT, seen TIMESTAMP NOT NULL DEFAULT '2020-01-01 00:00:00', \
         later TIMESTAMP(3) NOT NULL DEFAULT '2020-01-01 00:00:00');
         INSERT INTO t VALUES (1, '2024-05-01 10:00:00', '2024-05-01 10:00:00.123');",
    );
    drop_target_db(db);
    Job::new(&azure_config(
        db,
        "SELECT * FROM t",
        db,
        "t",
        &verified("ca.pem"),
    ))
    .run(&[])
    .expect(0);
    let mut t = tls_root(Some(db));
    let (_, create): (String, String) = t.query_first("SHOW CREATE TABLE t").unwrap().unwrap();
    assert!(
        !create.to_lowercase().contains("on update") && create.contains("NOT NULL"),
        "the server runs explicit_defaults_for_timestamp=OFF: {create}"
    );
    t.query_drop("UPDATE t SET id = 2").unwrap();
    let seen: Vec<String> = t.query("SELECT CAST(seen AS CHAR) FROM t").unwrap();
    assert_eq!(seen, ["2024-05-01 10:00:00"], "an UPDATE leaves it alone");
}

#[test]
fn a_fallback_run_keeps_the_target_tables_definitions() {
    let db = "dbsync_d_fallback";
    fresh_db(
        db,
        "CREATE TABLE f (id INT NOT NULL, price DECIMAL(10,2), at DATETIME(3), kind ENUM('new','used'));
         INSERT INTO f VALUES (1, 12.50, '2024-01-02 03:04:05.678', 'used'), (2, NULL, NULL, NULL);",
    );
    drop_target_db(db);
    let cfg = azure_config(db, "SELECT * FROM f", db, "f", &verified("ca.pem"));
    let job = Job::new(&cfg);
    job.run(&["--target", "local_sqlite"]).expect(0);
    job.run(&[]).expect(0);
    let before = target_columns(db, "f");
    assert_eq!(before[1].1, "decimal(10,2)");
    std::fs::write(job.path("config.ini"), primary_down(&cfg)).unwrap();
    job.run(&[]).expect(3);
    assert_eq!(
        target_columns(db, "f"),
        before,
        "DECIMAL, DATETIME, ENUM kept"
    );
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        mysql_rows(&mut tls_root(Some(db)), "SELECT * FROM f ORDER BY id"),
        vec![
            vec![s("1"), s("12.50"), s("2024-01-02 03:04:05.678"), s("used")],
            vec![s("2"), None, None, None]
        ]
    );
}

#[test]
fn fallback_reals_in_text_columns_read_as_sqlite_shows_them() {
    let db = "dbsync_d_reals";
    let (job, _) = fallback_to_azure(
        db,
        "r",
        "CREATE TABLE r (id INTEGER, mixed);
             INSERT INTO r VALUES (1, 0.1 + 0.2), (2, 'text'), (3, 1e20), (4, 2.0);",
    );
    job.run(&[]).expect(3);
    let got: Vec<String> = tls_root(Some(db))
        .query("SELECT mixed FROM r ORDER BY id")
        .unwrap();
    assert_eq!(got, ["0.3", "text", "1.0e+20", "2.0"]);
}
