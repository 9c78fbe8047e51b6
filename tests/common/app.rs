//! The application-shaped schema of `scripts/seed_app.sh`: seeding it, a job of its tables,
//! and the row counts a copy holds.

use super::*;
use mysql::prelude::Queryable;
use std::collections::BTreeMap;
use std::process::Command;

/// Seeds database `db` with the shop schema (`scripts/seed_app.sh`), `rows` stock rows.
/// Seeding is set-up, not what a test checks: a failure (the server busy with other
/// tests' seeds) is tried once more, and told.
pub fn seed(db: &str, rows: u32) {
    let once = || {
        Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/seed_app.sh"))
            .args([db, &rows.to_string()])
            .env("MYSQL_PORT", mysql_port().to_string())
            .output()
            .unwrap()
    };
    let mut out = once();
    if !out.status.success() {
        eprintln!(
            "seeding {db} failed, trying again: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out = once();
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A job of `tables` from source `db` into SQLite (`data/out.db`) and, with `target`, into
/// the TLS server's database `target`; `general` adds [general] lines.
pub fn job_config(db: &str, target: Option<&str>, general: &str) -> String {
    let base = match target {
        Some(t) => azure_config(db, "SELECT 1", t, "unused", &verified("ca.pem")),
        None => sqlite_config(db, "SELECT 1", "unused"),
    };
    base.replace("query = SELECT 1\n", "")
        .replacen(
            "[external_db]",
            &format!("tables = *\n{general}\n[external_db]"),
            1,
        )
        .replace(
            "fallback_to_local_source_on_failure = true",
            "fallback_to_local_source_on_failure = false",
        )
}

pub fn summary_of(out: &Run) -> serde_json::Value {
    serde_json::from_str(out.stdout().trim()).unwrap()
}

/// Each base table's row count in MySQL database `db`.
pub fn mysql_counts(c: &mut mysql::Conn, db: &str) -> BTreeMap<String, u64> {
    let tables: Vec<String> = c
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? \
             AND TABLE_TYPE = 'BASE TABLE'",
            (db,),
        )
        .unwrap();
    tables
        .into_iter()
        .map(|t| {
            let n: u64 = c
                .query_first(format!("SELECT COUNT(*) FROM `{db}`.`{t}`"))
                .unwrap()
                .unwrap();
            (t, n)
        })
        .collect()
}

/// Each table's row count in the SQLite file (dbsync's own tables left out).
pub fn sqlite_counts(path: &std::path::Path) -> BTreeMap<String, u64> {
    let c = rusqlite::Connection::open(path).unwrap();
    let names: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'dbsync_loads'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    names
        .into_iter()
        .map(|t| (t.clone(), sqlite_count(path, &t) as u64))
        .collect()
}

/// Each table's row count in the job's target: its SQLite file, or MySQL database `target`.
pub fn counts(job: &Job, target: Option<&str>) -> BTreeMap<String, u64> {
    match target {
        None => sqlite_counts(&job.path("data/out.db")),
        Some(t) => mysql_counts(&mut tls_root(None), t),
    }
}
