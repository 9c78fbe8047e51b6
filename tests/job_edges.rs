//! A job at its edges: its source down (every table from the fallback file), a table another
//! run holds (exit 4, nothing changed), and an incremental table inside a snapshot.

mod common;
use common::app::*;
use common::*;
use mysql::prelude::Queryable;
use std::os::fd::AsRawFd;

/// A job of the shop schema into MySQL database `target` with `[local_db]` as its fallback
/// file (`data/local.db`); the job's first run fills that file (`--target local_sqlite`).
fn with_fallback(db: &str, target: &str) -> Job {
    let cfg = job_config(db, Some(target), "")
        .replace(
            "fallback_to_local_source_on_failure = false",
            "fallback_to_local_source_on_failure = true",
        )
        .replace("db_path = data/out.db", "db_path = data/local.db");
    let job = Job::new(&cfg);
    job.run(&["--target", "local_sqlite"]).expect(0);
    job
}

#[test]
fn a_job_whose_source_is_down_loads_every_table_from_the_fallback_file() {
    let (db, target) = ("jobedge_fb", "jobedge_fb_t");
    seed(db, 8_000);
    drop_target_db(target);
    let job = with_fallback(db, target);
    let local = sqlite_counts(&job.path("data/local.db"));
    assert_eq!(local.len(), 28);
    let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
    std::fs::write(job.path("config.ini"), primary_down(&cfg)).unwrap();
    let out = job.run(&["--summary-json", "-"]).expect(3);
    let s = summary_of(&out);
    assert_eq!(s["exit_code"], 3, "{s}");
    for t in s["tables"].as_array().unwrap() {
        assert_eq!(t["exit_code"], 3, "{t}");
        assert_eq!(t["source"], "fallback", "{t}");
    }
    assert_eq!(mysql_counts(&mut tls_root(None), target), local);
    assert!(out.stderr().contains("fallback file"), "{}", out.stderr());
    // A table the file does not hold fails, and under snapshot nothing changes.
    root(Some(db))
        .query_drop("INSERT INTO actor (first_name, last_name) VALUES ('Not', 'Copied')")
        .unwrap();
    let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
    std::fs::write(
        job.path("config.ini"),
        format!("{cfg}\n[table.top_films]\nquery = SELECT film_id, title FROM film\n"),
    )
    .unwrap();
    let out = job.run(&["--summary-json", "-"]).expect(1);
    let s = summary_of(&out);
    let err = s["error"].as_str().unwrap();
    assert!(err.contains("top_films"), "{s}");
    assert_eq!(mysql_counts(&mut tls_root(None), target), local);
    // A table named outright that the file lacks fails too: it is not left out unsaid.
    std::fs::write(
        job.path("config.ini"),
        cfg.replace("tables = *", "tables = actor, gone_table"),
    )
    .unwrap();
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(1));
    let gone = s["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "gone_table");
    assert!(gone.is_some_and(|t| t["exit_code"] == 1), "{s}");
    assert_eq!(mysql_counts(&mut tls_root(None), target), local);
}

/// Holds the SQLite target's lock of one table (the flock dbsync takes beside the file).
fn hold_sqlite_lock(db_path: &std::path::Path, table: &str) -> std::fs::File {
    let path = format!("{}.{table}.dbsync-lock", db_path.display());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: flock on a descriptor this test owns.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(rc, 0);
    file
}

#[test]
fn a_table_another_run_holds_stops_the_job_with_exit_4_and_changes_nothing() {
    let (db, target) = ("jobedge_lock", "jobedge_lock_t");
    seed(db, 8_000);
    drop_target_db(target);
    for t in [None, Some(target)] {
        let job = Job::new(&job_config(db, t, ""));
        job.run(&[]).expect(0);
        let before = counts(&job, t);
        root(Some(db))
            .query_drop("INSERT INTO actor (first_name, last_name) VALUES ('Held', 'Back')")
            .unwrap();
        // Another run holds `payment`.
        let mut tls = tls_root(None);
        let _file;
        match t {
            None => _file = hold_sqlite_lock(&job.path("data/out.db"), "payment"),
            Some(target) => {
                let got: Option<i64> = tls
                    .query_first(format!("SELECT GET_LOCK('dbsync:{target}.payment', 0)"))
                    .unwrap();
                assert_eq!(got, Some(1));
            }
        }
        let out = job.run(&["--summary-json", "-"]).expect(4);
        let s = summary_of(&out);
        assert!(s["error"].as_str().unwrap().contains("payment"), "{s}");
        let payment = s["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["table"] == "payment")
            .unwrap()
            .clone();
        assert_eq!(payment["exit_code"], 4, "{s}");
        assert_eq!(counts(&job, t), before, "nothing changed");
        // The other tables alone go ahead.
        job.run(&["--only", "actor,film"]).expect(0);
        assert_eq!(counts(&job, t)["actor"], before["actor"] + 1);
        root(Some(db))
            .query_drop("DELETE FROM actor WHERE first_name = 'Held'")
            .unwrap();
    }
}

#[test]
fn an_incremental_table_in_a_snapshot_job_goes_in_with_the_swap() {
    let (db, target) = ("jobedge_incr", "jobedge_incr_t");
    seed(db, 8_000);
    drop_target_db(target);
    let incremental = "[table.actor]\nstrategy = append\nincremental_key = actor_id\n";
    let broken = "[table.film]\nquery = SELECT * FROM no_such_table\n";
    for t in [None, Some(target)] {
        let job = Job::new(&format!("{}\n{incremental}", job_config(db, t, "")));
        job.run(&[]).expect(0);
        let before = counts(&job, t);
        root(Some(db))
            .query_drop(
                "INSERT INTO actor (first_name, last_name) VALUES ('New', 'One'), ('New', 'Two')",
            )
            .unwrap();
        let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
        let actor = s["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["table"] == "actor")
            .unwrap()
            .clone();
        assert_eq!(actor["strategy"], "append", "{actor}");
        assert_eq!(actor["rows"], 2, "{actor}");
        let after = counts(&job, t);
        assert_eq!(after["actor"], before["actor"] + 2);
        if t.is_none() {
            // SQLite: the appended rows go in with the swap, so a failed table keeps them out.
            root(Some(db))
                .query_drop("INSERT INTO actor (first_name, last_name) VALUES ('New', 'Three')")
                .unwrap();
            let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
            std::fs::write(job.path("config.ini"), format!("{cfg}\n{broken}")).unwrap();
            job.run(&[]).expect(1);
            assert_eq!(counts(&job, t), after, "nothing changed");
        }
        root(Some(db))
            .query_drop("DELETE FROM actor WHERE first_name = 'New'")
            .unwrap();
    }
}

#[test]
fn a_job_summary_gives_each_table_its_time_and_warnings_and_refuses_two_tables_into_one() {
    let db = "jobedge_sum";
    seed(db, 2_000);
    root(Some(db))
        .query_drop(
            "SET SESSION sql_mode = ''; CREATE TABLE zd (id INT PRIMARY KEY, d DATE); \
             INSERT INTO zd VALUES (1, '0000-00-00'), (2, '2024-01-01')",
        )
        .unwrap();
    let job = Job::new(&job_config(db, None, ""));
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    let tables = s["tables"].as_array().unwrap();
    for t in tables {
        assert!(t["seconds"].as_f64().unwrap() > 0.0, "{t}");
        assert!(t["rows_per_second"].as_f64().unwrap() > 0.0, "{t}");
        let own = format!("[{}] ", t["table"].as_str().unwrap());
        for w in t["warnings"].as_array().unwrap() {
            assert!(w.as_str().unwrap().starts_with(&own), "{t}");
        }
    }
    // The job's warnings that name a table are that table's too.
    for w in s["warnings"].as_array().unwrap() {
        let w = w.as_str().unwrap();
        let Some(name) = w.strip_prefix('[').and_then(|r| r.split(']').next()) else {
            continue;
        };
        // Others name a section: `[external_db] ssl_mode = ...`.
        let Some(t) = tables.iter().find(|t| t["table"] == name) else {
            continue;
        };
        assert!(
            t["warnings"].as_array().unwrap().iter().any(|x| x == w),
            "{t}"
        );
    }
    let zd = tables.iter().find(|t| t["table"] == "zd").unwrap();
    let warned = zd["warnings"][0].as_str().unwrap_or_default();
    assert!(warned.contains("1 zero or partial dates"), "{zd}");
    // A table named outright that the source lacks: a config error naming the nearest.
    let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
    std::fs::write(
        job.path("config.ini"),
        cfg.replace("tables = *", "tables = actor, flim"),
    )
    .unwrap();
    let out = job.run(&[]).expect(2);
    assert!(
        out.stderr().contains("did you mean `film`?"),
        "{}",
        out.stderr()
    );
    std::fs::write(job.path("config.ini"), &cfg).unwrap();
    // Two tables into one target table: a config error before anything is touched.
    let before = sqlite_counts(&job.path("data/out.db"));
    let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
    std::fs::write(
        job.path("config.ini"),
        format!("{cfg}\n[table.film]\ntarget_table = Actor\n"),
    )
    .unwrap();
    // --only on a one-query config would do nothing: a usage error.
    let one = Job::new(&sqlite_config(db, "SELECT 1 AS x", "t"));
    let out = one.run(&["--only", "actor"]).expect(2);
    assert!(out.stderr().contains("--only"), "{}", out.stderr());
    let out = job.run(&[]).expect(2);
    assert!(out.stderr().contains("target_table"), "{}", out.stderr());
    assert!(out.stderr().contains("`actor`"), "{}", out.stderr());
    assert_eq!(sqlite_counts(&job.path("data/out.db")), before);
}
