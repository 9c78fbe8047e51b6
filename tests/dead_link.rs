//! A target link that dies mid-run, through the project's TCP proxy: each dead connection
//! costs one timeout, never more; the error names the step, the connection, the wait and
//! the setting; cleanup happens on a fresh connection or is left to the next run; the
//! target stays whole. And `[general] run_timeout` bounds the whole run. The issue's
//! goals, with its own settings, are measured in `dead_link_goals.rs`.
//!
//! Timeouts are short (`read_timeout = 3`) so each test takes seconds; each time bound
//! sits between what the fixed code takes and what waiting again on a dead connection
//! (the old behaviour) took.

mod common;
#[path = "common/links.rs"]
mod links;
use common::proxy::{Proxy, Scope, Trigger};
use common::*;
use links::*;
use mysql::prelude::Queryable;
use std::time::{Duration, Instant};

/// The `[azure_mysql_db] read_timeout` of these tests.
const READ_TIMEOUT: u64 = 3;
/// `cfg` with the target reached through `proxy`, the short read_timeout, and `general`
/// lines added to `[general]`.
fn via(cfg: &str, proxy: &Proxy, general: &str) -> String {
    via_with(cfg, proxy, READ_TIMEOUT, general)
}

/// The error says what waited and under which setting, in words, never the raw I/O text.
fn assert_named(text: &str, connection: &str, setting: &str) {
    assert!(text.contains(connection), "names {connection:?}: {text}");
    assert!(text.contains(setting), "names {setting:?}: {text}");
    assert_no_raw(text);
}

/// The next run, the link healthy again: loads everything, with nothing left to clean
/// unless `leftover_expected`.
fn next_run_is_clean(db: &str, cfg: &str, rows: u64, leftover_expected: bool) {
    let t0 = Instant::now();
    wait_until("the dead run's lock released", || lock_free(db));
    let t1 = Instant::now();
    let next = Job::new(cfg);
    let run = run_within(&mut next.cmd(&[]), HANG).expect(0);
    let err = run.stderr();
    eprintln!(
        "next run: lock free after {:?}, run took {:?}\n{err}",
        t1 - t0,
        t1.elapsed()
    );
    if !leftover_expected {
        assert!(!err.contains("left by an earlier run"), "{err}");
    }
    assert_eq!(target_rows(db), rows);
    assert!(leftovers(db).is_empty(), "{:?}", leftovers(db));
}

#[test]
fn a_load_whose_link_goes_silent_costs_one_timeout_and_is_cleaned_up_at_once() {
    let db = "dl_mid_load";
    let cfg = loaded(db, 200_000, 500);
    let proxy = start_proxy();
    // The LOAD DATA stream's flow dies after 4 MB; other connections live on.
    proxy.silence_when(Trigger::Bytes(4 << 20), Scope::Connection);
    let job = Job::new(&via(&cfg, &proxy, "retries = 0"));
    let (run, took) = finish(spawn(&job), &proxy);
    let run = run.expect(1);
    eprintln!("mid-load: ended {took:?} after the silence");
    let err = run.stderr();
    let error = summary(&run)["error"].as_str().unwrap().to_string();
    assert_named(&error, "writer 1 of 1", "[azure_mysql_db] read_timeout = 3");
    assert_no_raw(&err);
    // One timeout, then a cleanup on a fresh connection: never a second timeout.
    assert!(
        took < Duration::from_secs(2 * READ_TIMEOUT - 1),
        "{took:?}\n{err}"
    );
    assert_eq!(target_rows(db), 500, "the target is whole");
    // Cleaned up by this run, the dead flow still open: staging dropped, lock released.
    assert!(leftovers(db).is_empty(), "{:?}\n{err}", leftovers(db));
    assert!(lock_free(db), "{err}");
    proxy.speak_again();
    next_run_is_clean(db, &job_config(&job), 200_000, false);
}

#[test]
fn a_link_silent_from_the_loads_answer_on_fails_each_attempt_once() {
    let db = "dl_mid_commit";
    let cfg = loaded(db, 20_000, 500);
    let proxy = start_proxy();
    // Every row reaches the server; its answer, and everything after it, is lost.
    proxy.silence_when(Trigger::AnswerAfter(1 << 20), Scope::Link);
    let job = Job::new(&via(&cfg, &proxy, "retries = 1"));
    let (run, took) = finish(spawn(&job), &proxy);
    let run = run.expect(1);
    eprintln!("mid-commit: ended {took:?} after the silence");
    let err = run.stderr();
    let s = summary(&run);
    assert_eq!(s["attempts"], 2, "{s}");
    let first = s["retried"][0].as_str().unwrap();
    assert_named(first, "writer 1 of 1", "[azure_mysql_db] read_timeout = 3");
    assert!(first.contains("after all rows were sent"), "{first}");
    assert_named(
        s["error"].as_str().unwrap(),
        "handshake",
        "[azure_mysql_db] read_timeout = 3",
    );
    assert_no_raw(&err);
    // Attempt 1: the answer's timeout and a cleanup bounded to a few seconds; a 5 s pause;
    // attempt 2: the new connection's handshake timeout, the old lock connection given up
    // without a wait.
    assert!(took < Duration::from_secs(17), "{took:?}\n{err}");
    assert_eq!(target_rows(db), 500, "the target is whole");
    proxy.speak_again();
    next_run_is_clean(db, &job_config(&job), 20_000, true);
}

#[test]
fn a_link_silent_during_the_swap_leaves_the_target_whole() {
    let db = "dl_swap";
    let cfg = loaded(db, 2_000, 500);
    let proxy = start_proxy();
    let job = Job::new(&via(&cfg, &proxy, "retries = 1"));
    // A reader's open transaction makes the RENAME wait; the link dies while it waits,
    // then the reader lets go, so the server swaps but its answer is lost.
    let mut reader = tls_root(Some(db));
    reader.query_drop("BEGIN").unwrap();
    let _: Vec<u64> = reader.query("SELECT id FROM vehicles_stock").unwrap();
    let child = spawn(&job);
    wait_until("the swap waiting for the reader", || {
        let waiting: Option<u64> = tls_root(None)
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE 'RENAME TABLE%' AND STATE LIKE 'Waiting for table metadata lock%'",
            )
            .unwrap();
        waiting.unwrap_or(0) > 0
    });
    proxy.go_silent();
    reader.query_drop("COMMIT").unwrap();
    let (run, took) = finish(child, &proxy);
    let run = run.expect(1);
    eprintln!("swap: ended {took:?} after the silence");
    let err = run.stderr();
    let s = summary(&run);
    let first = s["retried"][0].as_str().unwrap();
    assert_named(
        first,
        "control connection",
        "[azure_mysql_db] read_timeout = 3",
    );
    assert!(first.contains("swapping in the new table"), "{first}");
    assert!(first.contains("unknown"), "{first}");
    assert_no_raw(&err);
    // The swap's try (its 3 s lock wait and the answer's read_timeout), a cleanup bounded
    // to a few seconds, a 5 s pause, then one handshake timeout.
    assert!(took < Duration::from_secs(20), "{took:?}\n{err}");
    let rows = target_rows(db);
    assert!(rows == 500 || rows == 2_000, "whole: {rows}");
    proxy.speak_again();
    next_run_is_clean(db, &job_config(&job), 2_000, true);
}

#[test]
fn a_silent_lock_connection_is_given_up_and_its_lock_taken_again() {
    let db = "dl_lock";
    let cfg = loaded(db, 100_000, 500);
    let proxy = start_proxy();
    let job = Job::new(&via(&cfg, &proxy, "retries = 1"));
    let child = spawn(&job);
    wait_until("the run holds its lock", || !lock_free(db));
    // The run's first connection to the target is its lock's.
    proxy.silence_connection(0);
    let (run, took) = finish(child, &proxy);
    let err = run.stderr();
    let run = run.expect(0);
    eprintln!("lock connection: ended {took:?} after the silence");
    let s = summary(&run);
    assert_eq!(s["attempts"], 2, "{s}");
    let first = s["retried"][0].as_str().unwrap();
    assert_named(
        first,
        "the lock connection",
        "[azure_mysql_db] read_timeout = 3",
    );
    assert_no_raw(&err);
    // One timeout on the lock connection, a 5 s pause, the second attempt's load.
    assert!(took < Duration::from_secs(20), "{took:?}\n{err}");
    assert_eq!(target_rows(db), 100_000);
    assert!(leftovers(db).is_empty(), "{:?}", leftovers(db));
    // The dead lock session was ended on the server, not left holding the lock.
    assert!(lock_free(db), "{err}");
}

#[test]
fn a_link_that_refuses_new_connections_after_the_first_attempt_ends_the_run_soon() {
    let db = "dl_refused";
    let cfg = loaded(db, 200_000, 500);
    let proxy = start_proxy();
    proxy.silence_when(Trigger::Bytes(4 << 20), Scope::Link);
    let job = Job::new(&via(&cfg, &proxy, "retries = 1"));
    let child = spawn(&job);
    wait_until("the link silent", || proxy.silent_since().is_some());
    proxy.refuse_new();
    let (run, took) = finish(child, &proxy);
    let run = run.expect(1);
    eprintln!("refused: ended {took:?} after the silence");
    let err = run.stderr();
    let s = summary(&run);
    assert_eq!(s["attempts"], 2, "{s}");
    let first = s["retried"][0].as_str().unwrap();
    assert_named(first, "writer 1 of 1", "[azure_mysql_db] read_timeout = 3");
    assert!(
        s["error"].as_str().unwrap().contains("refused"),
        "{}",
        s["error"]
    );
    assert_no_raw(&err);
    // One timeout, a refused cleanup, the pause, a refused connection: nothing else waits.
    assert!(took < Duration::from_secs(12), "{took:?}\n{err}");
    assert_eq!(target_rows(db), 500, "the target is whole");
    proxy.accept_again();
    proxy.speak_again();
    next_run_is_clean(db, &job_config(&job), 200_000, true);
}

#[test]
fn run_timeout_stops_a_run_that_waits_on_a_silent_link() {
    let db = "dl_deadline_wait";
    let cfg = loaded(db, 200_000, 500);
    let proxy = start_proxy();
    proxy.silence_when(Trigger::Bytes(4 << 20), Scope::Link);
    // A read_timeout far longer than the run may last: run_timeout ends it.
    let cfg = via(&cfg, &proxy, "run_timeout = 6s").replace(
        &format!("read_timeout = {READ_TIMEOUT}"),
        "read_timeout = 60",
    );
    let job = Job::new(&cfg);
    let t0 = Instant::now();
    let run = run_within(&mut job.cmd(&["--summary-json", "-"]), HANG);
    let took = t0.elapsed();
    let run = run.expect(1);
    let err = run.stderr();
    let error = summary(&run)["error"].as_str().unwrap().to_string();
    assert!(error.contains("[general] run_timeout = 6s"), "{error}");
    assert_no_raw(&err);
    // The deadline, then at most a few seconds to stop.
    assert!(took < Duration::from_secs(6 + 5), "{took:?}\n{err}");
    assert_eq!(target_rows(db), 500, "the target is whole");
    proxy.speak_again();
    next_run_is_clean(db, &job_config(&job), 200_000, true);
}

#[test]
fn run_timeout_stops_a_slow_load_as_sigterm_would_but_exits_1() {
    let db = "dl_deadline_slow";
    numbers(db, 1_000);
    drop_target_db(db);
    let cfg = azure_config(
        db,
        "SELECT id, label FROM n WHERE id <= 5",
        db,
        "n",
        &verified("ca.pem"),
    );
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    // About 10 s of reading.
    let slow = cfg
        .replace(
            "SELECT id, label FROM n WHERE id <= 5",
            "SELECT id, label, SLEEP(0.01) AS pause FROM n",
        )
        .replace("[external_db]", "run_timeout = 3\n[external_db]");
    std::fs::write(job.path("config.ini"), slow).unwrap();
    let t0 = Instant::now();
    let run = run_within(&mut job.cmd(&["--summary-json", "-"]), HANG).expect(1);
    let took = t0.elapsed();
    let s = summary(&run);
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("[general] run_timeout = 3s"),
        "{s}"
    );
    assert!(took < Duration::from_secs(3 + 5), "{took:?}");
    let mut c = tls_root(Some(db));
    let count: Option<u64> = c.query_first("SELECT COUNT(*) FROM n").unwrap();
    assert_eq!(count, Some(5), "the target is unchanged");
    let staging: Vec<String> = c.query("SHOW TABLES LIKE '%dbsync%'").unwrap();
    assert!(staging.is_empty(), "{staging:?}");
}

#[test]
fn no_retry_starts_when_its_pause_would_cross_run_timeout() {
    let db = "dl_deadline_retry";
    let cfg = loaded(db, 200_000, 500);
    let proxy = start_proxy();
    proxy.silence_when(Trigger::Bytes(4 << 20), Scope::Connection);
    // The first attempt fails after about 4 s; its retry would start 5 s later, past 8 s.
    let job = Job::new(&via(&cfg, &proxy, "retries = 2\nrun_timeout = 8"));
    let t0 = Instant::now();
    let run = run_within(&mut job.cmd(&["--summary-json", "-"]), HANG).expect(1);
    let took = t0.elapsed();
    let s = summary(&run);
    assert_eq!(s["attempts"], 1, "{s}");
    let error = s["error"].as_str().unwrap();
    assert!(error.contains("[general] run_timeout = 8s"), "{error}");
    assert!(error.contains("not retried"), "{error}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(target_rows(db), 500);
}
