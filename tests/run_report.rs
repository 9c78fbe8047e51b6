//! What a run tells of itself (issue 24, item 5): a failed or interrupted copy reports the
//! rows it read so far; server errors in words; `--dry-run` against the target.

mod common;
use common::*;
use mysql::prelude::Queryable;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn summary(job: &Job) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(job.path("summary.json")).unwrap()).unwrap()
}

#[test]
fn a_failed_copy_reports_the_rows_read_before_the_failure() {
    let db = "i24_rows_failed";
    let mut c = fresh_db(
        db,
        "SET SESSION sql_mode = ''; CREATE TABLE d (id INT, day DATE)",
    );
    c.query_drop("SET SESSION sql_mode = ''").unwrap();
    c.query_drop(
        "INSERT INTO d SELECT seq, IF(seq = 45, '0000-00-00', '2024-01-01') FROM seq_1_to_100",
    )
    .unwrap();
    let cfg = sqlite_config(db, "SELECT id, day FROM d ORDER BY id", "d").replace(
        "[local_db]",
        "batch_rows = 10\nzero_dates = error\n\n[local_db]",
    );
    let job = Job::new(&cfg);
    let run = job.run(&["--summary-json", "summary.json"]).expect(1);
    assert!(run.stderr().contains("zero"), "{}", run.stderr());
    let s = summary(&job);
    let rows = s["rows"].as_u64().unwrap();
    assert!(rows > 0 && rows < 45, "{s}");
    let said = format!("{rows} rows were read before the copy stopped");
    assert!(run.stderr().contains(&said), "{}", run.stderr());
}

#[test]
fn an_interrupted_copy_reports_the_rows_read_so_far() {
    let db = "i24_rows_interrupted";
    numbers(db, 2000);
    let cfg = sqlite_config(
        db,
        "SELECT id, RPAD(label, 1000, 'x') AS label, SLEEP(0.002) AS pause FROM n",
        "n",
    )
    .replace("[local_db]", "batch_rows = 20\n\n[local_db]");
    let job = Job::new(&cfg);
    let child = job
        .cmd(&["--summary-json", "summary.json"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !std::fs::read_to_string(job.path("summary.json")).is_ok_and(|s| s.contains("running")) {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: a signal to our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    Run(child.wait_with_output().unwrap()).expect(143);
    let s = summary(&job);
    let rows = s["rows"].as_u64().unwrap();
    assert!(rows > 0 && rows < 2000, "{s}");
}

/// Asserts a failed run's error names the server's error in its words, in stderr and in
/// the summary, without the client library's `MySqlError { … }` wrapper.
fn in_words(job: &Job, code: &str) {
    let run = job.run(&["--summary-json", "summary.json"]).expect(1);
    let s = summary(job);
    let error = s["error"].as_str().unwrap().to_string();
    for text in [run.stderr(), error] {
        assert!(
            text.contains(code) && !text.contains("MySqlError"),
            "{text}"
        );
    }
}

#[test]
fn server_errors_are_told_in_words_not_as_a_debug_dump() {
    let db = "i24_error_words";
    numbers(db, 10);
    // The source's server refuses the query.
    in_words(
        &Job::new(&sqlite_config(db, "SELEC id FROM n", "n")),
        "ERROR 1064 (42000): You have an error in your SQL syntax",
    );
    // The target's server refuses a name.
    let long = "x".repeat(70);
    let cfg = azure_config(db, "SELECT * FROM n", &long, "n", &verified("ca.pem"));
    in_words(
        &Job::new(&cfg),
        "ERROR 1102 (42000): Incorrect database name",
    );
}
