//! Kill safety of a job: a `kill -9` at any moment of a snapshot job leaves, on both
//! targets, the whole previous night or the whole new one (once the swap committed), never
//! a mix; the next run cleans up and loads the new night.

mod common;
use common::*;
use mysql::prelude::Queryable;
use std::collections::BTreeSet;
use std::time::Duration;

/// Tables of the job and their rows on the first night (the second has one more each).
const TABLES: [(&str, u32); 6] = [
    ("orders", 60_000),
    ("customers", 8_000),
    ("items", 20_000),
    ("notes", 3_000),
    ("prices", 12_000),
    ("zones", 500),
];

/// The source `db` as it is on night 1: every row says `night = 1`.
fn seed_night_one(db: &str) -> mysql::Conn {
    let ddl: Vec<String> = TABLES
        .iter()
        .map(|(t, n)| {
            format!(
                "CREATE TABLE {t} (id INT PRIMARY KEY, night INT NOT NULL, pad VARCHAR(40), \
                 KEY idx_night (night)); \
                 INSERT INTO {t} SELECT seq, 1, REPEAT('x', 30) FROM seq_1_to_{n}"
            )
        })
        .collect();
    fresh_db(db, &ddl.join("; "))
}

/// Night 2 at the source: every row says so, and every table has one row more.
fn make_night_two(c: &mut mysql::Conn) {
    for (t, n) in TABLES {
        c.query_drop(format!("UPDATE {t} SET night = 2")).unwrap();
        c.query_drop(format!("INSERT INTO {t} VALUES ({}, 2, 'new')", n + 1))
            .unwrap();
    }
}

/// Which night a table holds, from its rows (`None`: a mix, or rows missing).
fn night_of(nights: &BTreeSet<i64>, rows: u64, first: u32) -> Option<i64> {
    match (nights.iter().collect::<Vec<_>>().as_slice(), rows) {
        ([1], r) if r == u64::from(first) => Some(1),
        ([2], r) if r == u64::from(first) + 1 => Some(2),
        _ => None,
    }
}

/// The night the whole target holds; fails on a mix (of tables, or inside one).
fn whole_night(read: &mut dyn FnMut(&str) -> (BTreeSet<i64>, u64)) -> i64 {
    let nights: Vec<(String, Option<i64>)> = TABLES
        .iter()
        .map(|(t, n)| {
            let (seen, rows) = read(t);
            (t.to_string(), night_of(&seen, rows, *n))
        })
        .collect();
    let first = nights[0].1;
    assert!(
        first.is_some() && nights.iter().all(|(_, n)| *n == first),
        "the target holds a mix of nights: {nights:?}"
    );
    first.unwrap()
}

/// Kills a run of `job` at each of `delays` after its start; after each, `check` sees the
/// target whole. Returns how many kills hit a run still under way.
fn kill_at_moments(job: &Job, delays: &[u64], check: &mut dyn FnMut() -> i64) -> usize {
    let mut mid_run = 0;
    for &ms in delays {
        let mut child = job.cmd(&["-q"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        if child.try_wait().unwrap().is_none() {
            mid_run += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        check();
    }
    mid_run
}

/// Delays that cover a run of about `run_ms`, start to end.
fn delays(run_ms: u64) -> Vec<u64> {
    (0..12).map(|i| i * run_ms / 10).collect()
}

fn timed(job: &Job) -> u64 {
    let t0 = std::time::Instant::now();
    job.run(&["-q"]).expect(0);
    t0.elapsed().as_millis() as u64
}

#[test]
fn a_killed_sqlite_job_leaves_one_whole_night() {
    let db = "job_kill_sqlite";
    let mut src = seed_night_one(db);
    let cfg = sqlite_config(db, "SELECT 1", "unused")
        .replace("query = SELECT 1\n", "")
        .replacen("[external_db]", "tables = *\n\n[external_db]", 1);
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    let file = job.path("data/out.db");
    let mut read = |t: &str| {
        let c = rusqlite::Connection::open(&file).unwrap();
        let seen: BTreeSet<i64> = c
            .prepare(&format!("SELECT DISTINCT night FROM \"{t}\""))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (seen, sqlite_count(&file, t) as u64)
    };
    assert_eq!(whole_night(&mut read), 1);
    make_night_two(&mut src);
    let run_ms = timed(&job);
    assert_eq!(whole_night(&mut read), 2);
    // Back to night 1 at the source, then killed at moments across a run: either night,
    // whole, never a mix.
    let mut nights = BTreeSet::new();
    drop(src);
    let _ = seed_night_one(db);
    let mid = kill_at_moments(&job, &delays(run_ms), &mut || {
        let n = whole_night(&mut read);
        nights.insert(n);
        n
    });
    assert!(mid >= 6, "only {mid} kills hit a run under way");
    job.run(&[]).expect(0);
    assert_eq!(whole_night(&mut read), 1);
    let c = rusqlite::Connection::open(&file).unwrap();
    let left: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '%dbsync_new%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0, "staging tables left after a clean run");
}

#[test]
fn a_killed_mysql_job_leaves_one_whole_night() {
    let (db, target) = ("job_kill_mysql", "job_kill_mysql_t");
    let mut src = seed_night_one(db);
    drop_target_db(target);
    let cfg = azure_config(db, "SELECT 1", target, "unused", &verified("ca.pem"))
        .replace("query = SELECT 1\n", "")
        .replacen("[external_db]", "tables = *\n\n[external_db]", 1)
        .replace(
            "fallback_to_local_source_on_failure = true",
            "fallback_to_local_source_on_failure = false",
        );
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    let mut tls = tls_root(Some(target));
    let mut read = |t: &str| {
        let seen: Vec<i64> = tls
            .query(format!("SELECT DISTINCT night FROM `{t}`"))
            .unwrap();
        let rows: Option<u64> = tls
            .query_first(format!("SELECT COUNT(*) FROM `{t}`"))
            .unwrap();
        (seen.into_iter().collect(), rows.unwrap())
    };
    assert_eq!(whole_night(&mut read), 1);
    make_night_two(&mut src);
    let run_ms = timed(&job);
    assert_eq!(whole_night(&mut read), 2);
    drop(src);
    let _ = seed_night_one(db);
    let mid = kill_at_moments(&job, &delays(run_ms), &mut || whole_night(&mut read));
    assert!(mid >= 6, "only {mid} kills hit a run under way");
    job.run(&[]).expect(0);
    assert_eq!(whole_night(&mut read), 1);
    let left: Vec<String> = tls
        .query(format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{target}' \
             AND TABLE_NAME LIKE '%dbsync%'"
        ))
        .unwrap();
    assert!(left.is_empty(), "left after a clean run: {left:?}");
}
