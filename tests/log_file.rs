//! `[general] log_file` / `--log-file` append the run's log with timestamps; `--progress
//! log` writes a plain progress line every few seconds.

mod common;
use common::*;

#[test]
fn the_log_is_appended_to_a_file_with_progress_lines() {
    let db = "dbsync_l_log";
    numbers(db, 600);
    let query = "SELECT id, label, SLEEP(0.01) AS pause FROM n";
    let cfg = sqlite_config(db, query, "n")
        .replace("[external_db]", "log_file = logs/dbsync.log\n[external_db]");
    let job = Job::new(&cfg);
    let run = job.run(&["--progress", "log"]).expect(0);
    assert!(run.stderr().contains("progress: "), "{}", run.stderr());
    job.run(&["--progress", "off", "-q"]).expect(0);
    let log = std::fs::read_to_string(job.path("logs/dbsync.log")).unwrap();
    assert_eq!(log.matches("dbsync: exit 0").count(), 2, "appended: {log}");
    assert!(
        log.contains("progress: ") && log.contains("replaced with 600 rows"),
        "{log}"
    );
    assert!(
        log.lines().all(|l| l.starts_with("[20")),
        "every line has a timestamp: {log}"
    );
    // --log-file wins over the config.
    job.run(&["--log-file", "other.log", "-q"]).expect(0);
    assert!(job.path("other.log").exists());
}

#[test]
fn a_source_slow_to_answer_still_shows_in_the_progress_log() {
    // The first row comes after 6 s: the log says the run is alive before it does.
    let db = "dbsync_l_slow";
    numbers(db, 3);
    let query = "SELECT id, label, SLEEP(IF(id = 1, 6, 0)) AS pause FROM n";
    let job = Job::new(&sqlite_config(db, query, "n"));
    let err = job.run(&["--progress", "log"]).expect(0).stderr();
    assert!(err.contains("progress: 0 rows"), "{err}");
    assert!(
        err.contains("progress: all 3 rows read in ") && err.contains(" s; committing"),
        "{err}"
    );
}

#[test]
fn a_run_that_fails_after_a_slow_read_never_says_committing() {
    // The third row fails after 6 s of reading: the log says so, not "committing".
    let db = "dbsync_l_slow_fail";
    numbers(db, 3);
    let query = "SELECT id, label, SLEEP(IF(id = 1, 6, 0)) AS pause, \
                 IF(id = 3, (SELECT 1 UNION SELECT 2), 0) AS bad FROM n";
    let job = Job::new(&sqlite_config(db, query, "n"));
    let err = job.run(&["--progress", "log"]).expect(1).stderr();
    assert!(err.contains("progress: 0 rows"), "{err}");
    assert!(!err.contains("committing"), "{err}");
    assert!(err.contains("more than 1 row"), "{err}");
}

#[test]
fn a_config_error_reaches_the_log_file_too() {
    let cfg = sqlite_config("dbsync_l_cfg", "SELECT 1 AS one", "t").replace(
        "[external_db]",
        "log_file = logs/dbsync.log\nretries = many\n[external_db]",
    );
    let job = Job::new(&cfg);
    job.run(&[]).expect(2);
    let log = std::fs::read_to_string(job.path("logs/dbsync.log")).unwrap();
    assert!(log.contains("retries") && log.contains("exit 2"), "{log}");
}

#[test]
fn the_log_file_keeps_its_own_level_whatever_the_terminal_shows() {
    let db = "dbsync_l_level";
    numbers(db, 5);
    let cfg = sqlite_config(db, "SELECT * FROM n", "n")
        .replace("[external_db]", "log_file = run.log\n[external_db]");
    let job = Job::new(&cfg);
    // -q: the terminal shows no INFO line, the file keeps them.
    let run = job.run(&["-q"]).expect(0);
    assert!(!run.stderr().contains("replaced with"), "{}", run.stderr());
    let log = std::fs::read_to_string(job.path("run.log")).unwrap();
    assert!(
        log.contains("INFO") && log.contains("replaced with 5 rows"),
        "{log}"
    );
    assert!(!log.contains("DEBUG"), "{log}");
    // log_level = warn: the file keeps warnings and the exit line only; -v does not change it.
    std::fs::remove_file(job.path("run.log")).unwrap();
    add_log_level(&job, "warn");
    let run = job.run(&["-v"]).expect(0);
    assert!(run.stderr().contains("DEBUG"), "{}", run.stderr());
    let log = std::fs::read_to_string(job.path("run.log")).unwrap();
    assert!(!log.contains("INFO") && !log.contains("DEBUG"), "{log}");
    assert!(log.contains("dbsync: exit 0"), "{log}");
    // debug: the file has what -v shows, the terminal stays at its own level.
    add_log_level(&job, "debug");
    let run = job.run(&[]).expect(0);
    assert!(!run.stderr().contains("DEBUG"), "{}", run.stderr());
    let log = std::fs::read_to_string(job.path("run.log")).unwrap();
    assert!(log.contains("DEBUG"), "{log}");
    add_log_level(&job, "loud");
    let err = job.run(&[]).expect(2).stderr();
    assert!(err.contains("log_level") && err.contains("debug"), "{err}");
}

fn add_log_level(job: &Job, level: &str) {
    let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("log_level"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = cfg.replacen("log_file", &format!("log_level = {level}\nlog_file"), 1);
    std::fs::write(job.path("config.ini"), cfg).unwrap();
}
