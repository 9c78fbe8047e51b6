//! SIGTERM and SIGINT mid-load stop the run within seconds, restore the target, and say so
//! in the summary and the exit code (128 + signal); a SIGKILLed run's summary file never
//! shows the previous run's result.

mod common;
use common::*;
use mysql::prelude::Queryable;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A source whose read takes about `rows` × 10 ms; the target first gets `old` rows of it.
fn slow_job(db: &str, rows: u32, old: u32, azure: bool) -> (Job, String) {
    let mut c = fresh_db(db, "CREATE TABLE n (id INT PRIMARY KEY, label VARCHAR(10))");
    c.query_drop(format!(
        "INSERT INTO n SELECT seq, CONCAT('r', seq) FROM seq_1_to_{rows}"
    ))
    .unwrap();
    let first = format!("SELECT id, label FROM n WHERE id <= {old}");
    let slow = "SELECT id, label, SLEEP(0.01) AS pause FROM n";
    let cfg = if azure {
        tls_root(None)
            .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
            .unwrap();
        azure_config(db, &first, db, "n", &verified("ca.pem"))
    } else {
        sqlite_config(db, &first, "n")
    };
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    let cfg = cfg.replace(&first, slow);
    std::fs::write(job.path("config.ini"), &cfg).unwrap();
    (job, cfg)
}

fn spawn(job: &Job) -> Child {
    job.cmd(&["--summary-json", "summary.json"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the run is loading (the summary file says running, and rows flow).
fn wait_loading(job: &Job) {
    let start = Instant::now();
    while !std::fs::read_to_string(job.path("summary.json")).is_ok_and(|s| s.contains("running")) {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

fn summary(job: &Job) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(job.path("summary.json")).unwrap()).unwrap()
}

#[test]
fn sigterm_mid_load_into_sqlite_rolls_back_and_exits_143() {
    let (job, _) = slow_job("dbsync_s_term_sqlite", 1000, 5, false);
    let child = spawn(&job);
    wait_loading(&job);
    let t = Instant::now();
    signal(&child, libc::SIGTERM);
    let run = Run(child.wait_with_output().unwrap());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let run = run.expect(143);
    assert!(
        run.stderr().contains("interrupted by SIGTERM"),
        "{}",
        run.stderr()
    );
    let s = summary(&job);
    assert_eq!(s["exit_code"], 143);
    assert!(s["error"].as_str().unwrap().contains("SIGTERM"), "{s}");
    let out = job.path("data/out.db");
    assert_eq!(sqlite_count(&out, "n"), 5);
    let tables: i64 = rusqlite::Connection::open(&out)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '%dbsync_new%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "no staging table left");
}

#[test]
fn sigint_mid_load_into_mysql_drops_staging_and_exits_130() {
    let db = "dbsync_s_int_mysql";
    let (job, _) = slow_job(db, 1000, 7, true);
    let child = spawn(&job);
    wait_loading(&job);
    let t = Instant::now();
    signal(&child, libc::SIGINT);
    let run = Run(child.wait_with_output().unwrap());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    let run = run.expect(130);
    assert!(
        run.stderr().contains("interrupted by SIGINT"),
        "{}",
        run.stderr()
    );
    let mut c = tls_root(Some(db));
    let count: Option<u64> = c.query_first("SELECT COUNT(*) FROM n").unwrap();
    assert_eq!(count, Some(7));
    let staging: Vec<String> = c.query("SHOW TABLES LIKE '%dbsync%'").unwrap();
    assert!(staging.is_empty(), "{staging:?}");
}

#[test]
fn a_killed_run_leaves_a_running_summary_not_the_last_success() {
    let (job, _) = slow_job("dbsync_s_kill", 1000, 5, false);
    job.run(&["--summary-json", "summary.json"]).expect(0);
    assert_eq!(summary(&job)["exit_code"], 0);
    let mut child = spawn(&job);
    wait_loading(&job);
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    let s = summary(&job);
    assert_eq!(s["action"], "running", "{s}");
    assert!(s["exit_code"].is_null(), "{s}");
    assert_eq!(sqlite_count(&job.path("data/out.db"), "n"), 1000);
}

#[test]
fn sigterm_while_a_statement_waits_on_the_server_ends_the_run_within_seconds() {
    let db = "dbsync_s_term_blocked";
    let (job, _) = slow_job(db, 10, 5, true);
    std::fs::write(
        job.path("config.ini"),
        std::fs::read_to_string(job.path("config.ini"))
            .unwrap()
            .replace(", SLEEP(0.01) AS pause", ""),
    )
    .unwrap();
    // A reader's open transaction holds the target: the swap waits on the server (3 s a
    // try), the main thread blocked in it, with no batch loop to notice the signal.
    let mut reader = tls_root(Some(db));
    reader.query_drop("BEGIN").unwrap();
    let _: Vec<u64> = reader.query("SELECT id FROM n").unwrap();
    let child = spawn(&job);
    let start = Instant::now();
    loop {
        let waiting: Option<u64> = tls_root(None)
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE STATE LIKE 'Waiting for table metadata lock%'",
            )
            .unwrap();
        if waiting.unwrap_or(0) > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the swap never waited"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t = Instant::now();
    signal(&child, libc::SIGTERM);
    let run = Run(child.wait_with_output().unwrap());
    let took = t.elapsed();
    reader.query_drop("COMMIT").unwrap();
    assert!(took < Duration::from_secs(7), "{took:?}");
    run.expect(143);
    let count: Option<u64> = tls_root(Some(db))
        .query_first("SELECT COUNT(*) FROM n")
        .unwrap();
    assert_eq!(count, Some(5), "the target is unchanged");
}

#[test]
fn sigterm_during_a_long_source_statement_ends_it_on_the_server() {
    // Named per checkout: the source server is shared by every checkout on the machine.
    let db = &format!(
        "dbsync_s_term_sort_{:x}",
        env!("CARGO_MANIFEST_DIR").len() * 7919
            + env!("CARGO_MANIFEST_DIR")
                .bytes()
                .map(usize::from)
                .sum::<usize>()
    );
    fresh_db(
        db,
        "CREATE TABLE n (id INT PRIMARY KEY, label VARCHAR(10)); INSERT INTO n VALUES (1, 'a');",
    );
    // The server computes for 30 s before the first row, as a long sort does.
    let query = "SELECT id, label FROM n WHERE SLEEP(30) = 0";
    let job = Job::new(&sqlite_config(db, query, "n"));
    let running = || {
        let n: Option<u64> = root(None)
            .query_first(format!(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = '{db}' \
                 AND INFO LIKE 'SELECT id, label FROM n WHERE SLEEP%'"
            ))
            .unwrap();
        n.unwrap_or(0) > 0
    };
    let child = spawn(&job);
    wait_until("the source's statement running", running);
    signal(&child, libc::SIGTERM);
    let run = Run(child.wait_with_output().unwrap());
    run.expect(143);
    // Ended on the server, not left to run its 30 s after the run ended.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !running(),
        "the source's statement still runs on the server"
    );
}
