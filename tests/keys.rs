//! The target keeps the source table's keys when the query reads that one table without
//! multiplying rows, on both targets; `[general] primary_key` and `indexes` decide
//! otherwise.

mod common;
use common::*;
use mysql::prelude::Queryable;

const TABLE: &str = "CREATE TABLE stock (id INT NOT NULL PRIMARY KEY, vin CHAR(17) NOT NULL, \
    lot VARCHAR(20), made DATE, UNIQUE KEY u_vin (vin), KEY by_lot_made (lot, made), \
    KEY by_lot_prefix (lot(4)));
    INSERT INTO stock VALUES (1, 'VIN00000000000001', 'lot #4', '2024-01-01'),
                             (2, 'VIN00000000000002', 'lot #4', NULL),
                             (3, 'VIN00000000000003', NULL, '2023-05-05');
    CREATE TABLE lots (lot VARCHAR(20)); INSERT INTO lots VALUES ('lot #4'), ('lot #4');";

/// (index name, unique, columns) of a SQLite table, primary key as `pk`.
fn sqlite_keys(path: &std::path::Path, table: &str) -> Vec<(String, bool, String)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut out: Vec<(String, bool, String)> = Vec::new();
    let pk: Vec<String> = c
        .prepare(&format!(
            "SELECT name FROM pragma_table_info('{table}') WHERE pk > 0 ORDER BY pk"
        ))
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    if !pk.is_empty() {
        out.push(("pk".into(), true, pk.join(",")));
    }
    let idx: Vec<(String, bool)> = c
        .prepare(&format!(
            "SELECT name, \"unique\" FROM pragma_index_list('{table}') WHERE origin = 'c'"
        ))
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (name, unique) in idx {
        let cols: Vec<String> = c
            .prepare(&format!(
                "SELECT name FROM pragma_index_info('{name}') ORDER BY seqno"
            ))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        out.push((name, unique, cols.join(",")));
    }
    out.sort();
    out
}

fn mysql_keys(db: &str, table: &str) -> Vec<(String, bool, String)> {
    let rows: Vec<(String, i64, String)> = tls_root(None)
        .exec(
            "SELECT INDEX_NAME, NON_UNIQUE, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) \
             FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             GROUP BY INDEX_NAME, NON_UNIQUE ORDER BY INDEX_NAME",
            (db, table),
        )
        .unwrap();
    rows.into_iter()
        .map(|(n, nu, c)| (if n == "PRIMARY" { "pk".into() } else { n }, nu == 0, c))
        .collect()
}

fn s(n: &str, u: bool, c: &str) -> (String, bool, String) {
    (n.into(), u, c.into())
}

#[test]
fn a_one_table_query_keeps_its_keys_on_both_targets() {
    let db = "dbsync_k_keep";
    fresh_db(db, TABLE);
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    let query = "SELECT id, vin, lot AS lot, made FROM stock WHERE id > 0";
    let cfg = azure_config(db, query, db, "stock", &verified("ca.pem"));
    let job = Job::new(&cfg);
    let run = job.run(&["--target", "local_sqlite"]).expect(0);
    assert!(
        run.stderr().contains("indexes built in"),
        "{}",
        run.stderr()
    );
    // SQLite's index names are per file: each carries its table's name.
    let want_sqlite = vec![
        s("pk", true, "id"),
        s("stock__by_lot_made", false, "lot,made"),
        s("stock__by_lot_prefix", false, "lot"),
        s("stock__u_vin", true, "vin"),
    ];
    assert_eq!(
        sqlite_keys(&job.path("data/local.db"), "stock"),
        want_sqlite
    );
    // Again: the old table's index names are free for the new one.
    job.run(&["--target", "local_sqlite"]).expect(0);
    assert_eq!(
        sqlite_keys(&job.path("data/local.db"), "stock"),
        want_sqlite
    );
    job.run(&[]).expect(0);
    let want_mysql = vec![
        s("by_lot_made", false, "lot,made"),
        s("by_lot_prefix", false, "lot"),
        s("pk", true, "id"),
        s("u_vin", true, "vin"),
    ];
    assert_eq!(mysql_keys(db, "stock"), want_mysql);
    // --dry-run shows them.
    let plan = job.run(&["--dry-run"]).expect(0);
    assert!(
        plan.stdout().contains("primary key: (id)"),
        "{}",
        plan.stdout()
    );
}

#[test]
fn a_join_that_multiplies_rows_gets_no_keys_unless_named() {
    let db = "dbsync_k_join";
    fresh_db(db, TABLE);
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    // Only `stock` columns, but each row once per matching lot: ids repeat.
    let query = "SELECT s.* FROM stock s JOIN lots l ON l.lot = s.lot";
    let job = Job::new(&azure_config(db, query, db, "j", &verified("ca.pem")));
    job.run(&[]).expect(0);
    assert_eq!(mysql_keys(db, "j"), vec![]);
    let count: Option<u64> = tls_root(Some(db))
        .query_first("SELECT COUNT(*) FROM j")
        .unwrap();
    assert_eq!(count, Some(4));
    job.run(&["--target", "local_sqlite"]).expect(0);
    assert_eq!(sqlite_keys(&job.path("data/local.db"), "j"), vec![]);

    // Named keys, for any query; `none` and `primary` shape the source's.
    let named = azure_config(
        db,
        "SELECT id * 10 AS k, vin FROM stock",
        db,
        "named",
        &verified("ca.pem"),
    )
    .replace("[external_db]", "primary_key = k\n[external_db]");
    Job::new(&named).run(&[]).expect(0);
    assert_eq!(mysql_keys(db, "named"), vec![s("pk", true, "k")]);
    let none = azure_config(db, "SELECT * FROM stock", db, "bare", &verified("ca.pem")).replace(
        "[external_db]",
        "primary_key = none\nindexes = primary\n[external_db]",
    );
    Job::new(&none).run(&[]).expect(0);
    assert_eq!(mysql_keys(db, "bare"), vec![]);
    let only_pk = azure_config(db, "SELECT * FROM stock", db, "pkonly", &verified("ca.pem"))
        .replace("[external_db]", "indexes = primary\n[external_db]");
    Job::new(&only_pk).run(&[]).expect(0);
    assert_eq!(mysql_keys(db, "pkonly"), vec![s("pk", true, "id")]);
    let wrong = azure_config(db, "SELECT * FROM stock", db, "w", &verified("ca.pem"))
        .replace("[external_db]", "primary_key = nope\n[external_db]");
    let run = Job::new(&wrong).run(&[]).expect(2);
    assert!(
        run.stderr().contains("primary_key") && run.stderr().contains("`nope`"),
        "{}",
        run.stderr()
    );
}

#[test]
fn two_tables_with_an_index_of_the_same_name_share_one_sqlite_file() {
    let db = "dbsync_k_shared_name";
    fresh_db(
        db,
        "CREATE TABLE film_actor (actor_id INT, film_id INT, PRIMARY KEY (actor_id, film_id),
             KEY idx_fk_film_id (film_id));
         CREATE TABLE inventory (id INT PRIMARY KEY, film_id INT, KEY idx_fk_film_id (film_id));
         INSERT INTO film_actor VALUES (1, 10), (2, 10); INSERT INTO inventory VALUES (1, 10);",
    );
    // Two configs loading two tables into one file, each run twice, in turn.
    let first = Job::new(&sqlite_config(db, "SELECT * FROM film_actor", "film_actor"));
    let second = sqlite_config(db, "SELECT * FROM inventory", "inventory");
    std::fs::write(first.path("second.ini"), second).unwrap();
    for _ in 0..2 {
        first.run(&[]).expect(0);
        first.run(&["--config", "second.ini"]).expect(0);
    }
    let path = first.path("data/out.db");
    assert_eq!(
        sqlite_keys(&path, "film_actor"),
        vec![
            s("film_actor__idx_fk_film_id", false, "film_id"),
            s("pk", true, "actor_id,film_id")
        ]
    );
    assert_eq!(
        sqlite_keys(&path, "inventory"),
        vec![
            s("inventory__idx_fk_film_id", false, "film_id"),
            s("pk", true, "id")
        ]
    );
}
