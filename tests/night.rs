//! What a production night brings to the targets: readers during a load, a file left with
//! a hot journal by a killed load, leftovers and tables that cannot be replaced.

mod common;
use common::*;
use mysql::prelude::Queryable;
use std::time::{Duration, Instant};

const SLOW: &str = "SELECT id, label, SLEEP(0.005) AS pause FROM n";

#[test]
fn sqlite_readers_keep_reading_the_old_rows_during_a_load() {
    let db = "dbsync_n_readers";
    numbers(db, 600);
    let cfg = sqlite_config(db, "SELECT id, label FROM n WHERE id <= 10", "n");
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    std::fs::write(
        job.path("config.ini"),
        cfg.replace("SELECT id, label FROM n WHERE id <= 10", SLOW),
    )
    .unwrap();
    let out = job.path("data/out.db");
    // A reader that holds one transaction open over the whole load and its commit.
    let long = rusqlite::Connection::open(&out).unwrap();
    long.execute_batch("BEGIN").unwrap();
    let held: i64 = long
        .query_row("SELECT count(*) FROM n", [], |r| r.get(0))
        .unwrap();
    assert_eq!(held, 10);
    let mut child = job.cmd(&[]).spawn().unwrap();
    let poller = rusqlite::Connection::open(&out).unwrap();
    let start = Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(60));
        let n: i64 = poller
            .query_row("SELECT count(*) FROM n", [], |r| r.get(0))
            .expect("readers never get 'database is locked' during a load");
        seen.insert(n);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        child.wait().unwrap().success(),
        "a long reader does not fail the load"
    );
    assert!(seen.iter().all(|n| *n == 10 || *n == 600), "{seen:?}");
    assert!(seen.contains(&10), "the poller read during the load");
    // The long reader still sees its snapshot; a new one sees the new rows.
    let still: i64 = long
        .query_row("SELECT count(*) FROM n", [], |r| r.get(0))
        .unwrap();
    assert_eq!(still, 10);
    long.execute_batch("COMMIT").unwrap();
    assert_eq!(sqlite_count(&out, "n"), 600);
}

/// Kills a load into `job`'s SQLite file once it is writing, leaving its journal behind.
fn kill_mid_load(job: &Job, journal: &str) {
    let mut child = job.cmd(&["-q"]).spawn().unwrap();
    let path = job.path(journal);
    let start = Instant::now();
    while std::fs::metadata(&path).map_or(0, |m| m.len()) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the load never wrote"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    assert!(child.wait().unwrap().code().is_none(), "killed mid-load");
}

#[test]
fn the_fallback_reads_a_file_a_killed_load_left_behind() {
    for (mode, journal) in [
        ("delete", "data/local.db-journal"),
        ("wal", "data/local.db-wal"),
    ] {
        let db = format!("dbsync_n_hot_{mode}");
        fixture_db(&db, 200_000);
        let target = format!("{db}_t");
        tls_root(None)
            .query_drop(format!("DROP DATABASE IF EXISTS `{target}`"))
            .unwrap();
        let first = "SELECT * FROM vehicles_stock WHERE id <= 100";
        let cfg = azure_config(&db, first, &target, "vehicles_stock", &verified("ca.pem")).replace(
            "[azure_mysql_db]",
            &format!("journal_mode = {mode}\n\n[azure_mysql_db]"),
        );
        let job = Job::new(&cfg);
        job.run(&["--target", "local_sqlite"]).expect(0);
        let all = cfg.replace(first, "SELECT * FROM vehicles_stock");
        // kill_mid_load runs the default target: the local file, for this once.
        std::fs::write(
            job.path("config.ini"),
            all.replace("default_target = azure", "default_target = local_sqlite"),
        )
        .unwrap();
        kill_mid_load(&job, journal);
        assert!(job.path(journal).exists(), "{mode}: the journal is left");
        // The primary is down: the fallback must read the old 100 rows.
        std::fs::write(job.path("config.ini"), primary_down(&all)).unwrap();
        let run = job.run(&[]).expect(3);
        assert!(!run.stderr().contains("readonly"), "{}", run.stderr());
        let count: Option<u64> = tls_root(Some(&target))
            .query_first("SELECT COUNT(*) FROM vehicles_stock")
            .unwrap();
        assert_eq!(count, Some(100), "{mode}");
    }
}

#[test]
fn views_and_referenced_tables_are_refused_before_loading() {
    let db = "dbsync_n_refuse";
    numbers(db, 5);
    let target = "dbsync_n_refuse_t";
    let mut t = fresh_tls_db(target);
    t.query_drop(
        "CREATE TABLE base (id INT PRIMARY KEY); INSERT INTO base VALUES (1);
         CREATE VIEW v AS SELECT * FROM base;
         CREATE TABLE n (id INT PRIMARY KEY, label VARCHAR(10)); INSERT INTO n VALUES (1, 'old');
         CREATE TABLE child (n_id INT, FOREIGN KEY fk_n (n_id) REFERENCES n (id));
         INSERT INTO child VALUES (1);",
    )
    .unwrap();
    let run = Job::new(&azure_config(
        db,
        "SELECT * FROM n",
        target,
        "v",
        &verified("ca.pem"),
    ))
    .run(&[])
    .expect(1);
    assert!(run.stderr().contains("`v` is a view"), "{}", run.stderr());
    // Refused before the session chose its database: the cleanup still finds it.
    assert!(!run.stderr().contains("could not drop"), "{}", run.stderr());
    let run = Job::new(&azure_config(
        db,
        "SELECT * FROM n",
        target,
        "n",
        &verified("ca.pem"),
    ))
    .run(&[])
    .expect(1);
    assert!(
        run.stderr().contains("foreign keys") && run.stderr().contains("`child`"),
        "{}",
        run.stderr()
    );
    let rows = mysql_rows(&mut t, "SELECT label FROM n");
    assert_eq!(rows, vec![vec![Some("old".to_string())]]);
    let tables: Vec<String> = t.query("SHOW TABLES LIKE '%dbsync%'").unwrap();
    assert!(tables.is_empty(), "nothing created: {tables:?}");

    // SQLite: a view under the table's name.
    let job = Job::new(&sqlite_config(db, "SELECT * FROM n", "v"));
    std::fs::create_dir_all(job.path("data")).unwrap();
    rusqlite::Connection::open(job.path("data/out.db"))
        .unwrap()
        .execute_batch("CREATE TABLE b (x); CREATE VIEW v AS SELECT * FROM b;")
        .unwrap();
    let run = job.run(&[]).expect(1);
    assert!(run.stderr().contains("`v` is a view"), "{}", run.stderr());
}

/// A fresh database on the TLS server, as root.
fn fresh_tls_db(name: &str) -> mysql::Conn {
    let mut c = tls_root(None);
    c.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
        .unwrap();
    c.query_drop(format!("CREATE DATABASE `{name}`")).unwrap();
    tls_root(Some(name))
}

#[test]
fn an_old_table_that_cannot_be_dropped_is_a_warning_then_named_with_the_fix() {
    let db = "dbsync_n_leftover";
    numbers(db, 5);
    let target = "dbsync_n_leftover_t";
    fresh_tls_db(target);
    // A user who may replace `n` but not drop the renamed old table.
    let mut root = tls_root(None);
    root.query_drop("DROP USER IF EXISTS 'dbsync_lo'@'%'")
        .unwrap();
    root.query_drop("CREATE USER 'dbsync_lo'@'%' IDENTIFIED BY 'leftover'")
        .unwrap();
    for (table, rights) in [
        ("n", "SELECT, INSERT, CREATE, DROP, ALTER"),
        ("n__dbsync_new", "SELECT, INSERT, CREATE, DROP, ALTER"),
        ("n__dbsync_old", "SELECT, INSERT, CREATE, ALTER"),
    ] {
        root.query_drop(format!(
            "GRANT {rights} ON `{target}`.`{table}` TO 'dbsync_lo'@'%'"
        ))
        .unwrap();
    }
    let cfg = azure_config(db, "SELECT * FROM n", target, "n", &verified("ca.pem"))
        .replace("user = dbsync\n", "user = dbsync_lo\n")
        .replace(
            &format!("password = {AZURE_PASSWORD}"),
            "password = leftover",
        );
    let job = Job::new(&cfg);
    job.run(&[]).expect(0); // creates n
    let run = job.run(&[]).expect(0); // replaces n; the old table stays
    assert!(
        run.stderr().contains("n__dbsync_old") && run.stderr().contains("left behind"),
        "{}",
        run.stderr()
    );
    let run = job.run(&[]).expect(1);
    assert!(
        run.stderr().contains("drop it by hand") && run.stderr().contains("n__dbsync_old"),
        "{}",
        run.stderr()
    );
    let count: Option<u64> = tls_root(Some(target))
        .query_first("SELECT COUNT(*) FROM n")
        .unwrap();
    assert_eq!(count, Some(5), "the target is intact");
    tls_root(Some(target))
        .query_drop("DROP TABLE n__dbsync_old")
        .unwrap();
    job.run(&[]).expect(0);
    root.query_drop("DROP USER 'dbsync_lo'@'%'").unwrap();
}

#[test]
fn a_swap_blocked_by_a_reader_waits_briefly_then_fails_naming_it() {
    let db = "dbsync_n_mdl";
    numbers(db, 5);
    let target = "dbsync_n_mdl_t";
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{target}`"))
        .unwrap();
    let cfg = azure_config(
        db,
        "SELECT * FROM n WHERE id <= 3",
        target,
        "n",
        &verified("ca.pem"),
    )
    .replace(
        "table_name = n\nssl_mode",
        "table_name = n\nread_timeout = 2\nssl_mode",
    )
    .replace("[external_db]", "retries = 0\n[external_db]");
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    // A reader in the middle of a transaction on the target holds its metadata lock.
    let mut reader = tls_root(Some(target));
    reader.query_drop("BEGIN").unwrap();
    let _: Vec<u64> = reader.query("SELECT id FROM n").unwrap();
    let reader_id: u64 = reader
        .query_first("SELECT CONNECTION_ID()")
        .unwrap()
        .unwrap();
    std::fs::write(job.path("config.ini"), cfg.replace(" WHERE id <= 3", "")).unwrap();
    let t = Instant::now();
    let run = job.run(&[]).expect(1);
    let took = t.elapsed();
    assert!(took < Duration::from_secs(30), "{took:?}");
    let err = run.stderr();
    assert!(
        err.contains("swapping in the new table")
            && err.contains(&format!("connection {reader_id}")),
        "{err}"
    );
    let _: Vec<u64> = reader.query("SELECT id FROM n").unwrap();
    reader.query_drop("COMMIT").unwrap();
    let count: Option<u64> = tls_root(Some(target))
        .query_first("SELECT COUNT(*) FROM n")
        .unwrap();
    assert_eq!(count, Some(3), "the target is unchanged");
    job.run(&[]).expect(0);
    let count: Option<u64> = tls_root(Some(target))
        .query_first("SELECT COUNT(*) FROM n")
        .unwrap();
    assert_eq!(count, Some(5));
}
