//! `--dry-run` logs in to the target and says whether the run could write it (the login,
//! the rights, the directory and free space, the lock, a name another object holds), exit 1
//! when it could not, changing nothing; with `--summary-json -` the plan stays off stdout.

mod common;
use common::*;
use mysql::prelude::Queryable;
use std::os::fd::AsRawFd;

/// A dry run that could not write: exit 1, the check that failed named in its output.
fn cannot(job: &Job, needle: &str) -> Run {
    let run = job.run(&["--dry-run"]).expect(1);
    let all = run.stdout() + &run.stderr();
    assert!(all.contains(needle), "{needle} not in\n{all}");
    assert!(run.stderr().contains("could not write"), "{}", run.stderr());
    run
}

#[test]
fn a_dry_run_into_sqlite_checks_the_file_the_name_and_the_lock() {
    let db = "i24_dry_sqlite";
    numbers(db, 5);
    let job = Job::new(&sqlite_config(db, "SELECT * FROM n", "n"));
    let run = job.run(&["--dry-run"]).expect(0);
    for line in [
        "could write:",
        "ok   directory data",
        "ok   free space",
        "ok   lock: free",
    ] {
        assert!(run.stdout().contains(line), "{line}:\n{}", run.stdout());
    }
    assert!(!job.path("data").exists(), "a dry run creates nothing");
    job.run(&[]).expect(0);
    // The lock another run holds.
    let lock = std::fs::File::open(job.path("data/out.db.n.dbsync-lock")).unwrap();
    // SAFETY: flock on a descriptor the test owns.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    cannot(&job, "FAIL lock: another run holds it");
    drop(lock);
    job.run(&["--dry-run"]).expect(0);
    // A view under the table's name.
    let c = rusqlite::Connection::open(job.path("data/out.db")).unwrap();
    c.execute_batch("DROP TABLE n; CREATE VIEW n AS SELECT 1 AS id;")
        .unwrap();
    cannot(&job, "FAIL name `n`: the file has a view of that name");
    // A file that is not a database.
    drop(c);
    std::fs::write(job.path("data/out.db"), vec![7u8; 4096]).unwrap();
    for side in ["data/out.db-wal", "data/out.db-shm"] {
        let _ = std::fs::remove_file(job.path(side));
    }
    cannot(&job, "FAIL file data/out.db");
}

#[test]
fn a_dry_run_into_mysql_logs_in_and_checks_rights_names_and_the_lock() {
    let db = "i24_dry_mysql";
    numbers(db, 5);
    drop_target_db(db);
    let cfg = azure_config(db, "SELECT * FROM n", db, "n", &verified("ca.pem"));
    let job = Job::new(&cfg);
    let run = job.run(&["--dry-run"]).expect(0);
    for line in [
        "ok   login: dbsync@localhost",
        "ok   database `i24_dry_mysql`: missing, would be created",
        "ok   rights: SELECT, INSERT, CREATE, DROP, ALTER",
        "ok   lock: free",
    ] {
        assert!(run.stdout().contains(line), "{line}:\n{}", run.stdout());
    }
    let dbs: Vec<String> = tls_root(None).query("SHOW DATABASES").unwrap();
    assert!(!dbs.contains(&db.to_string()), "a dry run creates nothing");
    // A password the server refuses.
    let wrong = Job::new(&cfg.replace(AZURE_PASSWORD, "wrong"));
    cannot(&wrong, "FAIL login:");
    // A user without the rights to replace a table.
    let ro = cfg
        .replace("user = dbsync\n", "user = dbsync_ro\n")
        .replace(AZURE_PASSWORD, "readonly");
    cannot(&Job::new(&ro), "the user lacks CREATE, DROP, ALTER");
    // The lock another run holds.
    job.run(&[]).expect(0);
    let mut holder = tls_root(None);
    let got: Option<i64> = holder
        .query_first(format!("SELECT GET_LOCK('dbsync:{db}.n', 0)"))
        .unwrap();
    assert_eq!(got, Some(1));
    cannot(&job, "FAIL lock: another run holds it");
    drop(holder);
    // A view under the table's name.
    let mut t = tls_root(Some(db));
    t.query_drop("DROP TABLE n").unwrap();
    t.query_drop("CREATE VIEW n AS SELECT 1 AS id").unwrap();
    cannot(&job, "is a view");
}

#[test]
fn a_dry_run_with_the_summary_on_stdout_keeps_the_plan_off_it() {
    let db = "i24_dry_stdout";
    numbers(db, 5);
    let job = Job::new(&sqlite_config(db, "SELECT * FROM n", "n"));
    let run = job.run(&["--dry-run", "--summary-json", "-"]).expect(0);
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim())
        .unwrap_or_else(|e| panic!("{e}: stdout is not the summary alone:\n{}", run.stdout()));
    assert_eq!(summary["action"], "planned");
    assert!(run.stderr().contains("columns:"), "{}", run.stderr());
}
