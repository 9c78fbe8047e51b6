//! Running a job and reading what it said: its summary, its log, its config's `[general]`
//! lines.

use super::Job;

/// The `[general]` lines added to a config.
pub fn with_general(cfg: &str, lines: &str) -> String {
    cfg.replacen("[external_db]", &format!("{lines}\n[external_db]"), 1)
}

/// Adds these `[general]` lines to the job's config file.
pub fn add_general(job: &Job, lines: &str) {
    let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
    std::fs::write(job.path("config.ini"), with_general(&cfg, lines)).unwrap();
}

pub fn summary(job: &Job) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(job.path("summary.json")).unwrap()).unwrap()
}

pub fn run(job: &Job, code: i32) -> serde_json::Value {
    run_with(job, &[], code)
}

/// A run whose log says `text`; its summary.
pub fn run_saying(job: &Job, code: i32, text: &str) -> serde_json::Value {
    let out = job.run(&["--summary-json", "summary.json"]).expect(code);
    assert!(out.stderr().contains(text), "{}", out.stderr());
    summary(job)
}

pub fn run_with(job: &Job, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = vec!["--summary-json", "summary.json"];
    all.extend_from_slice(args);
    job.run(&all).expect(code);
    summary(job)
}

/// A one-query config reading `query` from `db` into table `t`, with these `[general]`
/// lines: into the TLS server's database `db` (dropped first) when `azure`, else SQLite.
pub fn either_config(db: &str, query: &str, azure: bool, general: &str) -> String {
    let cfg = match azure {
        true => {
            super::drop_target_db(db);
            super::azure_config(db, query, db, "t", &super::verified("ca.pem"))
        }
        false => super::sqlite_config(db, query, "t"),
    };
    with_general(&cfg, general)
}

/// The rows of table `t` in the target `either_config` writes.
pub fn either_count(job: &Job, db: &str, azure: bool) -> i64 {
    use mysql::prelude::Queryable;
    match azure {
        true => super::tls_root(Some(db))
            .query_first("SELECT COUNT(*) FROM t")
            .unwrap()
            .unwrap(),
        false => super::sqlite_count(&job.path("data/out.db"), "t"),
    }
}
