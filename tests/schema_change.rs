//! `[general] on_schema_change`: a replace whose query lost, gained or changed columns
//! warns naming them (`warn`, the default), says nothing (`allow`), or fails with exit 1
//! keeping the target (`fail`, also per table in a job); on both targets. The DECIMAL
//! columns `[local_db] decimal` declares as numbers or as text never count.

mod common;
use common::app::job_config;
use common::jobs::with_general;
use common::*;

const SOURCE: &str = "CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(10,2), \
                      gone INT); INSERT INTO t VALUES (1, 'a', 1.50, 7), (2, 'b', 2.25, 8);";
/// The source's table, its columns changed: `gone` lost, `added` gained, `id` now BIGINT.
const CHANGED: &str = "ALTER TABLE t DROP COLUMN gone, ADD COLUMN added INT, MODIFY id VARCHAR(10)";

/// The lines naming the change, as a warning or as the refusal.
fn names_the_change(err: &str) -> bool {
    err.contains("lost `gone`") && err.contains("gained `added`") && err.contains("changed `id`")
}

/// Runs the replace of both checks (warn, then fail) against `cfg`'s target; `columns`
/// reads the target table's column names, `rows` its row count.
fn warn_then_fail(db: &str, cfg: &str, columns: &dyn Fn() -> Vec<String>, rows: &dyn Fn() -> i64) {
    let mut src = fresh_db(db, SOURCE);
    let warned = Job::new(cfg);
    let quiet = warned.run(&[]).expect(0);
    assert!(
        !quiet.stderr().contains("on_schema_change"),
        "{}",
        quiet.stderr()
    );
    use mysql::prelude::Queryable;
    src.query_drop(CHANGED).unwrap();
    let run = warned.run(&[]).expect(0);
    assert!(
        names_the_change(&run.stderr()) && run.stderr().contains("WARN"),
        "{}",
        run.stderr()
    );
    assert!(columns().contains(&"added".to_string()));
    // The same change again under fail: exit 1, the table kept.
    src.query_drop("ALTER TABLE t ADD COLUMN gone INT, DROP COLUMN added, MODIFY id INT")
        .unwrap();
    warned.run(&[]).expect(0);
    let before = columns();
    src.query_drop(CHANGED).unwrap();
    src.query_drop("INSERT INTO t (id, name) VALUES (3, 'c')")
        .unwrap();
    let failing = Job::new(&with_general(cfg, "on_schema_change = fail"));
    let run = failing.run(&[]).expect(1);
    assert!(names_the_change(&run.stderr()), "{}", run.stderr());
    assert!(
        run.stderr().contains("on_schema_change = fail"),
        "{}",
        run.stderr()
    );
    assert_eq!((columns(), rows()), (before, 2), "the target is kept");
    // allow: replaced, no warning (an INFO line tells the change).
    let allowed = Job::new(&with_general(cfg, "on_schema_change = allow"));
    let run = allowed.run(&[]).expect(0);
    assert!(
        !run.stderr().contains("WARN ] the query's columns"),
        "{}",
        run.stderr()
    );
    assert_eq!(rows(), 3);
}

#[test]
fn a_changed_query_warns_or_fails_in_sqlite() {
    let db = "i24_schema_sqlite";
    let cfg = sqlite_config(db, "SELECT * FROM t", "t");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.db");
    let cfg = cfg.replace(
        "db_path = data/out.db",
        &format!("db_path = {}", path.display()),
    );
    let columns = || {
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut st = c
            .prepare("SELECT name FROM pragma_table_info('t')")
            .unwrap();
        let names: Vec<String> = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        names
    };
    warn_then_fail(db, &cfg, &columns, &|| sqlite_count(&path, "t"));
}

#[test]
fn a_changed_query_warns_or_fails_in_mysql() {
    let db = "i24_schema_mysql";
    drop_target_db(db);
    let cfg = azure_config(db, "SELECT * FROM t", db, "t", &verified("ca.pem"));
    let columns = || {
        use mysql::prelude::Queryable;
        let names: Vec<String> = tls_root(None)
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                 AND TABLE_NAME = 't' ORDER BY ORDINAL_POSITION",
                (db,),
            )
            .unwrap();
        names
    };
    let rows = || {
        use mysql::prelude::Queryable;
        let n: Option<i64> = tls_root(Some(db))
            .query_first("SELECT COUNT(*) FROM t")
            .unwrap();
        n.unwrap()
    };
    warn_then_fail(db, &cfg, &columns, &rows);
    let left: Vec<String> = {
        use mysql::prelude::Queryable;
        tls_root(Some(db)).query("SHOW TABLES").unwrap()
    };
    assert_eq!(left, ["t"], "no staging table left");
}

#[test]
fn decimal_declared_anew_is_not_a_schema_change() {
    let db = "i24_schema_decimal";
    fresh_db(db, SOURCE);
    let cfg = with_general(
        &sqlite_config(db, "SELECT * FROM t", "t"),
        "on_schema_change = fail",
    );
    let job = Job::new(&cfg.replace("[local_db]\n", "[local_db]\ndecimal = text\n"));
    job.run(&[]).expect(0);
    std::fs::write(job.path("config.ini"), &cfg).unwrap();
    let run = job.run(&[]).expect(0);
    assert!(
        !run.stderr().contains("on_schema_change"),
        "{}",
        run.stderr()
    );
    let c = rusqlite::Connection::open(job.path("data/out.db")).unwrap();
    let ty: String = c
        .query_row(
            "SELECT type FROM pragma_table_info('t') WHERE name = 'price'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ty, "DECIMAL(10,2)");
    // And back to text.
    let job_text = cfg.replace("[local_db]\n", "[local_db]\ndecimal = text\n");
    std::fs::write(job.path("config.ini"), job_text).unwrap();
    job.run(&[]).expect(0);
}

#[test]
fn a_table_of_a_job_may_fail_on_its_own() {
    let db = "i24_schema_job";
    let mut src = fresh_db(db, SOURCE);
    let cfg = job_config(db, None, "") + "\n[table.t]\non_schema_change = fail\n";
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    use mysql::prelude::Queryable;
    src.query_drop(CHANGED).unwrap();
    let run = job.run(&[]).expect(1);
    assert!(names_the_change(&run.stderr()), "{}", run.stderr());
    let bad = Job::new(&(job_config(db, None, "") + "\n[table.t]\non_schema_change = maybe\n"));
    let run = bad.run(&[]).expect(2);
    assert!(
        run.stderr().contains("allow, warn or fail"),
        "{}",
        run.stderr()
    );
}
