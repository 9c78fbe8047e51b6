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
