//! Two runs of the same job at once: the second waits up to `lock_wait`, then stops with
//! exit 4, naming the run that holds the target, and touches nothing.

mod common;
use common::*;
use mysql::prelude::Queryable;
use std::time::{Duration, Instant};

/// A source table whose full read takes about `rows` × 10 ms (SLEEP per row).
fn slow_source(db: &str, rows: u32) -> &'static str {
    let mut c = fresh_db(db, "CREATE TABLE n (id INT PRIMARY KEY, label VARCHAR(10))");
    c.query_drop(format!(
        "INSERT INTO n SELECT seq, CONCAT('r', seq) FROM seq_1_to_{rows}"
    ))
    .unwrap();
    "SELECT id, label, SLEEP(0.01) AS pause FROM n"
}

#[test]
fn a_second_run_on_a_sqlite_target_stops_with_exit_4_or_waits() {
    let db = "dbsync_o_sqlite";
    let query = slow_source(db, 300);
    let job = Job::new(&sqlite_config(db, query, "n"));
    let mut first = job.cmd(&[]).spawn().unwrap();
    let lock = job.path("data/out.db.n.dbsync-lock");
    wait_until("the first run holds the lock", || {
        std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("pid"))
    });
    let t = Instant::now();
    let second = job.run(&["--summary-json", "-"]).expect(4);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "lock_wait = 0 stops at once"
    );
    let err = second.stderr();
    assert!(
        err.contains("another run holds") && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_str(second.stdout().trim()).unwrap();
    assert_eq!(summary["exit_code"], 4);
    // With lock_wait the next run waits for the first, then does its own load.
    let mut cmd = job.cmd(&[]);
    cmd.env("DBSYNC_GENERAL_LOCK_WAIT", "60");
    let waited = Run(cmd.output().unwrap()).expect(0);
    assert!(first.wait().unwrap().success(), "{}", waited.stderr());
    assert_eq!(sqlite_count(&job.path("data/out.db"), "n"), 300);
}

#[test]
fn a_second_run_on_a_mysql_target_stops_with_exit_4_naming_the_holder() {
    let db = "dbsync_o_mysql";
    let query = slow_source(db, 300);
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    let cfg = azure_config(db, query, db, "n", &verified("ca.pem"));
    let job = Job::new(&cfg);
    let mut first = job.cmd(&[]).spawn().unwrap();
    let lock = format!("dbsync:{db}.n");
    wait_until("the first run holds the named lock", || {
        let used: Option<Option<u64>> = tls_root(None)
            .exec_first("SELECT IS_USED_LOCK(?)", (&lock,))
            .unwrap();
        used.flatten().is_some()
    });
    let second = Job::new(&cfg).run(&[]).expect(4);
    let err = second.stderr();
    assert!(
        err.contains("another run holds") && err.contains("user dbsync") && err.contains(&lock),
        "{err}"
    );
    assert!(first.wait().unwrap().success());
    let count: Option<u64> = tls_root(Some(db))
        .query_first("SELECT COUNT(*) FROM n")
        .unwrap();
    assert_eq!(count, Some(300));
}

#[test]
fn a_run_whose_lock_was_lost_never_swaps() {
    let db = "dbsync_o_lost";
    let query = slow_source(db, 300);
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    let cfg = azure_config(
        db,
        "SELECT id, label FROM n WHERE id <= 7",
        db,
        "n",
        &verified("ca.pem"),
    );
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    std::fs::write(
        job.path("config.ini"),
        cfg.replace("SELECT id, label FROM n WHERE id <= 7", query),
    )
    .unwrap();
    // Without retries the run that lost its lock fails, target kept; with them, the next
    // attempt takes the lock again.
    let first = job
        .cmd(&[])
        .env("DBSYNC_GENERAL_RETRIES", "0")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lock = format!("dbsync:{db}.n");
    let mut holder = None;
    wait_until("the run holds the named lock", || {
        let used: Option<Option<u64>> = tls_root(None)
            .exec_first("SELECT IS_USED_LOCK(?)", (&lock,))
            .unwrap();
        holder = used.flatten();
        holder.is_some()
    });
    tls_root(None)
        .query_drop(format!("KILL {}", holder.unwrap()))
        .unwrap();
    let out = first.wait_with_output().unwrap();
    let run = Run(out).expect(1);
    assert!(run.stderr().contains("lock"), "{}", run.stderr());
    let count: Option<u64> = tls_root(Some(db))
        .query_first("SELECT COUNT(*) FROM n")
        .unwrap();
    assert_eq!(count, Some(7), "the old table is kept");
}
