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
    let db = &db_name("dl_mid_load");
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
    let db = &db_name("dl_mid_commit");
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

/// Returns once the swap's RENAME in `db` waits for a reader (see `hold_target`).
fn swap_waiting(db: &str) {
    wait_until("the swap waiting for the reader", || {
        waiting_for_lock(db, "RENAME TABLE")
    });
}

/// A reader's open transaction on the target: the swap's RENAME waits for it (commit it
/// to let the RENAME through).
fn hold_target(db: &str) -> mysql::Conn {
    let mut reader = tls_root(Some(db));
    reader.query_drop("BEGIN").unwrap();
    let _: Vec<u64> = reader.query("SELECT id FROM vehicles_stock").unwrap();
    reader
}

/// A run through the proxy (one retry) of a target loaded with 500 of 2,000 rows, caught
/// with its swap's RENAME waiting for a reader's open transaction: the database, the
/// proxy, the job, the reader (commit it to let the RENAME through) and the run.
fn swap_held(name: &str) -> (String, Proxy, Job, mysql::Conn, std::process::Child) {
    let db = db_name(name);
    let cfg = loaded(&db, 2_000, 500);
    let proxy = start_proxy();
    let job = Job::new(&via(&cfg, &proxy, "retries = 1"));
    let reader = hold_target(&db);
    let child = spawn(&job);
    swap_waiting(&db);
    (db, proxy, job, reader, child)
}

#[test]
fn a_link_silent_during_the_swap_leaves_the_target_whole_and_is_not_retried() {
    // A reader's open transaction makes the RENAME wait; the link dies while it waits,
    // then the reader lets go, so the server swaps but its answer is lost, and no fresh
    // connection can find out.
    let (db, proxy, job, mut reader, child) = swap_held("dl_swap");
    let db = &db;
    proxy.go_silent();
    reader.query_drop("COMMIT").unwrap();
    let (run, took) = finish(child, &proxy);
    let run = run.expect(1);
    eprintln!("swap: ended {took:?} after the silence");
    let err = run.stderr();
    let s = summary(&run);
    // Not retried: a retry that failed would report "target unchanged" over a target that
    // may hold the new rows.
    assert_eq!(s["attempts"], 1, "{s}");
    let error = s["error"].as_str().unwrap();
    assert_named(
        error,
        "control connection",
        "[azure_mysql_db] read_timeout = 3",
    );
    assert!(error.contains("swap's RENAME got no answer"), "{error}");
    assert!(
        error.contains("the target holds the old rows or the new ones, whole"),
        "{error}"
    );
    assert!(!err.contains("dropped the staging table"), "{err}");
    assert_no_raw(&err);
    // The swap's try (its 3 s lock wait and the answer's read_timeout), then a cleanup
    // whose handshake waits at most 3 s.
    assert!(took < Duration::from_secs(14), "{took:?}\n{err}");
    let rows = target_rows(db);
    assert!(rows == 500 || rows == 2_000, "whole: {rows}");
    proxy.speak_again();
    next_run_is_clean(db, &job_config(&job), 2_000, true);
}

#[test]
fn a_swap_whose_answer_is_lost_is_settled_on_a_fresh_connection() {
    let (db, proxy, _job, mut reader, child) = swap_held("dl_swap_settled");
    let db = &db;
    // Only the control connection (the run's second to the target, after the lock's)
    // dies; the server swaps once the reader lets go, and the answer is lost.
    proxy.silence_connection(1);
    reader.query_drop("COMMIT").unwrap();
    let (run, took) = finish(child, &proxy);
    let err = run.stderr();
    let run = run.expect(0);
    eprintln!("swap settled: ended {took:?} after the silence");
    let s = summary(&run);
    // Settled: the swap happened, so the run succeeded, in one attempt (a retry would
    // drop the old table and, if it failed, report "target unchanged").
    assert_eq!(s["attempts"], 1, "{s}");
    assert!(
        err.contains("confirmed that it happened: the target holds the new rows"),
        "{err}"
    );
    assert!(!err.contains("dropped the staging table"), "{err}");
    assert_eq!(target_rows(db), 2_000);
    assert!(leftovers(db).is_empty(), "{:?}", leftovers(db));
    assert!(took < Duration::from_secs(14), "{took:?}\n{err}");
    assert!(lock_free(db), "{err}");
}

#[test]
fn a_swap_not_done_when_its_answer_was_lost_is_retried_target_unchanged() {
    let (db, proxy, _job, mut reader, child) = swap_held("dl_swap_not_done");
    let db = &db;
    // The control connection dies while its RENAME waits; the reader keeps the table until
    // the cleanup has ended that session (the RENAME with it) and dropped the staging table.
    proxy.silence_connection(1);
    wait_until("the staging table dropped", || leftovers(db).is_empty());
    reader.query_drop("COMMIT").unwrap();
    let (run, _) = finish(child, &proxy);
    let err = run.stderr();
    let run = run.expect(0);
    let s = summary(&run);
    assert_eq!(s["attempts"], 2, "{s}");
    let first = s["retried"][0].as_str().unwrap();
    assert!(
        first.contains("the swap did not happen, the target is unchanged"),
        "{first}"
    );
    assert_no_raw(&err);
    assert_eq!(target_rows(db), 2_000);
    assert!(leftovers(db).is_empty(), "{:?}", leftovers(db));
}

#[test]
fn a_silent_lock_connection_is_given_up_and_its_lock_taken_again() {
    let db = &db_name("dl_lock");
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
    let db = &db_name("dl_refused");
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
    let db = &db_name("dl_deadline_wait");
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
    let db = &db_name("dl_deadline_slow");
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
    let db = &db_name("dl_deadline_retry");
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

/// Whether a statement of a session in `db` starting with `sql` waits for a metadata lock
/// (tests run side by side: another test's statement must not count).
fn waiting_for_lock(db: &str, sql: &str) -> bool {
    let waiting: Option<u64> = tls_root(None)
        .query_first(format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '{sql}%' \
             AND DB = '{db}' AND STATE LIKE 'Waiting for table metadata lock%'"
        ))
        .unwrap();
    waiting.unwrap_or(0) > 0
}

/// The run's run_timeout in the index-build tests.
const LIMIT: u64 = 9;

/// What an index-build test holds: the target's reader and the staging table's, whose
/// open transactions make the swap and the index build wait.
struct Held {
    target_reader: mysql::Conn,
    staging_reader: mysql::Conn,
    t0: Instant,
}

/// A run into `db`.`n` (its source has a secondary index, so the staging table gets an
/// index build before the swap), reading for about 4 s, under `run_timeout = LIMIT`;
/// returns once the index build waits for a reader of the staging table, before LIMIT.
fn index_build_waiting(db: &str) -> (Job, std::process::Child, Held) {
    let mut c = fresh_db(
        db,
        "CREATE TABLE n (id INT PRIMARY KEY, label VARCHAR(10), KEY (label))",
    );
    c.query_drop("INSERT INTO n SELECT seq, CONCAT('r', seq) FROM seq_1_to_2000")
        .unwrap();
    drop_target_db(db);
    let first = "SELECT id, label FROM n WHERE id <= 5";
    let cfg = azure_config(db, first, db, "n", &verified("ca.pem"));
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    let slow = cfg
        .replace(first, "SELECT id, label FROM n WHERE SLEEP(0.002) = 0")
        .replace(
            "[external_db]",
            &format!("run_timeout = {LIMIT}\n[external_db]"),
        );
    std::fs::write(job.path("config.ini"), slow).unwrap();
    let mut target_reader = tls_root(Some(db));
    target_reader.query_drop("BEGIN").unwrap();
    let _: Vec<u64> = target_reader.query("SELECT id FROM n").unwrap();
    let t0 = Instant::now();
    let child = spawn(&job);
    let mut staging_reader = tls_root(Some(db));
    staging_reader.query_drop("BEGIN").unwrap();
    wait_until("the staging table", || {
        staging_reader
            .query_first::<u64, _>("SELECT id FROM n__dbsync_new LIMIT 1")
            .is_ok()
    });
    wait_until("the index build waiting", || {
        waiting_for_lock(db, "ALTER TABLE")
    });
    assert!(
        t0.elapsed() < Duration::from_secs(LIMIT),
        "too slow a setup"
    );
    let held = Held {
        target_reader,
        staging_reader,
        t0,
    };
    (job, child, held)
}

#[test]
fn a_wait_run_timeout_cut_short_names_the_wait_it_had() {
    let db = &db_name("dl_deadline_cut");
    let (_job, child, mut held) = index_build_waiting(db);
    // The index build waits on: run_timeout cuts it, an hour's statement_timeout short.
    let run = Run(child.wait_with_output().unwrap());
    held.staging_reader.query_drop("COMMIT").unwrap();
    held.target_reader.query_drop("COMMIT").unwrap();
    let run = run.expect(1);
    let error = summary(&run)["error"].as_str().unwrap().to_string();
    eprintln!("{error}");
    assert!(error.contains("[general] run_timeout = 9s"), "{error}");
    // The wait it had, not the hour it was allowed, and what cut it.
    assert!(!error.contains("no answer for 3600 s"), "{error}");
    assert!(
        error.contains("statement_timeout = 3600 s, cut to"),
        "{error}"
    );
    assert!(error.contains("by [general] run_timeout = 9s"), "{error}");
    assert!(held.t0.elapsed() < Duration::from_secs(LIMIT + 5));
}

#[test]
fn run_timeout_never_cuts_a_waiting_swap_nor_starts_one_after_it() {
    let db = &db_name("dl_deadline_swap");
    // run_timeout runs out while the index build waits for a reader of the staging table;
    // the swap comes after.
    let (_job, child, held) = index_build_waiting(db);
    let Held {
        mut target_reader,
        mut staging_reader,
        t0,
    } = held;
    // The index build ends just after run_timeout ran out: the swap would start now.
    std::thread::sleep(Duration::from_secs(LIMIT) + Duration::from_millis(700) - t0.elapsed());
    staging_reader.query_drop("COMMIT").unwrap();
    let run = Run(child.wait_with_output().unwrap());
    let took = t0.elapsed();
    target_reader.query_drop("COMMIT").unwrap();
    let err = run.stderr();
    let run = run.expect(1);
    let error = summary(&run)["error"].as_str().unwrap().to_string();
    assert!(error.contains("[general] run_timeout = 9s"), "{error}");
    // Not a RENAME cut short on the client (whose outcome would be unknown, and whose
    // session the cleanup would kill): no try was started.
    assert!(error.contains("the swap was not tried"), "{error}");
    assert!(!error.contains("unknown"), "{error}");
    assert!(took < Duration::from_secs(LIMIT + 5), "{took:?}\n{err}");
    let mut c = tls_root(Some(db));
    let count: Option<u64> = c.query_first("SELECT COUNT(*) FROM n").unwrap();
    assert_eq!(count, Some(5), "the target is unchanged");
    assert!(leftovers_of(db, "n").is_empty(), "{err}");
}

#[test]
fn a_dead_runs_lock_is_freed_by_the_server_within_a_few_pings() {
    let db = &db_name("dl_lock_freed");
    let cfg = loaded(db, 100_000, 500);
    let proxy = start_proxy();
    let job = Job::new(&via(&cfg, &proxy, "retries = 0"));
    let child = spawn(&job);
    wait_until("the run holds its lock", || !lock_free(db));
    // The lock connection's flow dies, and no fresh connection can reach the server: the
    // run cannot end its lock's session; the server must.
    proxy.silence_connection(0);
    proxy.refuse_new();
    let (run, took) = finish(child, &proxy);
    let err = run.stderr();
    run.expect(1);
    eprintln!("lock lost: the run ended {took:?} after the silence");
    let since = proxy.silent_since().unwrap();
    let t0 = Instant::now();
    while !lock_free(db) {
        // Pings every read_timeout (3 s), the session idle at most three of them.
        assert!(
            t0.elapsed() < Duration::from_secs(25),
            "the server still holds the dead run's lock {:?} after the silence\n{err}",
            since.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("lock freed {:?} after the silence", since.elapsed());
    assert_eq!(target_rows(db), 500, "the target is whole");
    proxy.accept_again();
    proxy.speak_again();
    next_run_is_clean(db, &job_config(&job), 100_000, true);
}

/// A config into SQLite whose source is reached through `proxy`, with a short
/// statement_timeout and read_timeout, no fallback and no retry, and `general` lines.
fn source_via(db: &str, proxy: &Proxy, general: &str) -> String {
    sqlite_config(db, "SELECT * FROM vehicles_stock", "vehicles_stock")
        .replace(
            &format!("port = {}\n", mysql_port()),
            &format!("port = {}\nread_timeout = 3\n", proxy.port),
        )
        .replace(
            "fallback_to_local_source_on_failure = true",
            &format!("fallback_to_local_source_on_failure = false\nretries = 0\n{general}"),
        )
}

fn source_proxy() -> Proxy {
    Proxy::start(
        std::net::SocketAddr::from(([127, 0, 0, 1], mysql_port())),
        Duration::ZERO,
    )
}

/// The source's describing connection goes silent when it sends `statement`: one wait,
/// then an error in words.
fn describe_goes_silent(name: &str, statement: &'static [u8]) {
    let db = &db_name(name);
    fixture_db(db, 100);
    let proxy = source_proxy();
    proxy.silence_when(Trigger::Sends(statement), Scope::Connection);
    let job = Job::new(&source_via(db, &proxy, "statement_timeout = 3"));
    let (run, took) = finish(spawn(&job), &proxy);
    let err = run.stderr();
    let run = run.expect(1);
    let error = summary(&run)["error"].as_str().unwrap().to_string();
    assert_named(
        &error,
        "the source's describing connection",
        "[general] statement_timeout = 3 s",
    );
    assert!(!error.contains("failed on the server"), "{error}");
    assert_no_raw(&err);
    // One wait on it, never a second (the next lookup, an EXPLAIN).
    assert!(took < Duration::from_secs(5), "{took:?}\n{err}");
}

#[test]
fn a_source_describe_whose_link_goes_silent_fails_once_in_words() {
    describe_goes_silent("dl_src_prepare", b"SELECT * FROM vehicles_stock");
}

#[test]
fn a_source_column_lookup_whose_link_goes_silent_is_not_waited_on_again() {
    describe_goes_silent("dl_src_lookup", b"information_schema.COLUMNS");
}

#[test]
fn a_wait_cut_short_by_run_timeout_says_so() {
    let db = &db_name("dl_src_cut");
    fixture_db(db, 100);
    let proxy = source_proxy();
    proxy.silence_when(
        Trigger::Sends(b"information_schema.COLUMNS"),
        Scope::Connection,
    );
    // statement_timeout stays an hour: run_timeout cuts the wait.
    let job = Job::new(&source_via(db, &proxy, "run_timeout = 2"));
    let t0 = Instant::now();
    let run = run_within(&mut job.cmd(&["--summary-json", "-"]), HANG).expect(1);
    let took = t0.elapsed();
    let error = summary(&run)["error"].as_str().unwrap().to_string();
    assert!(error.contains("[general] run_timeout = 2s"), "{error}");
    // The wait that happened, not the hour it was allowed.
    assert!(!error.contains("no answer for 3600 s"), "{error}");
    assert!(
        error.contains("statement_timeout = 3600 s, cut to"),
        "{error}"
    );
    assert_no_raw(&run.stderr());
    assert!(took < Duration::from_secs(2 + 5), "{took:?}");
}
