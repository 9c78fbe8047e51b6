//! A whole night in one run: every table of an application-shaped schema
//! (`scripts/seed_app.sh`) into one SQLite file or one MySQL database, read in one
//! snapshot and swapped in at once; a failed table changes none; one summary.

mod common;
use common::app::*;
use common::*;
use mysql::prelude::Queryable;
use std::process::Command;

#[test]
fn a_schema_lands_whole_in_one_sqlite_file_and_one_mysql_database() {
    let (db, target) = ("jobs_whole", "jobs_whole_t");
    seed(db, 16_000);
    drop_target_db(target);
    let want = mysql_counts(&mut root(None), db);
    assert_eq!(want.len(), 28);
    let local = Job::new(&job_config(db, None, ""));
    let out = local.run(&["--summary-json", "-"]).expect(0);
    let s = summary_of(&out);
    assert_eq!(s["tables"].as_array().unwrap().len(), 28, "{s}");
    assert_eq!(s["exit_code"], 0);
    let err = out.stderr();
    assert!(
        err.contains("[film] ") && err.contains("[stock_7] "),
        "{err}"
    );
    assert!(
        err.contains("FULLTEXT index `idx_title_description`"),
        "{err}"
    );
    assert!(err.contains("film_text (MyISAM)"), "{err}");
    assert_eq!(sqlite_counts(&local.path("data/out.db")), want);
    // The indexes a schema names alike on several tables all land.
    let c = rusqlite::Connection::open(local.path("data/out.db")).unwrap();
    let reused: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name LIKE '%\\_\\_idx\\_last\\_update' ESCAPE '\\'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reused, 6);
    let azure = Job::new(&job_config(db, Some(target), ""));
    let s = summary_of(&azure.run(&["--summary-json", "-"]).expect(0));
    assert_eq!(s["exit_code"], 0, "{s}");
    assert_eq!(mysql_counts(&mut tls_root(None), target), want);
    for table in ["payment", "invoice", "film_actor", "rental"] {
        let q = format!("SELECT * FROM {table} ORDER BY 1, 2");
        assert_eq!(
            mysql_rows(&mut tls_root(Some(target)), &q),
            mysql_rows(&mut root(Some(db)), &q),
            "{table}"
        );
    }
}

/// The writer's pairs in a copy: (writer parents, writer children, orphans).
fn pairs_in_sqlite(path: &std::path::Path) -> (i64, i64, i64) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(&pairs_sql(), [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
}

fn pairs_sql() -> String {
    "SELECT (SELECT COUNT(*) FROM invoice WHERE note LIKE 'writer %'), \
            (SELECT COUNT(*) FROM invoice_line WHERE description LIKE 'writer %'), \
            (SELECT COUNT(*) FROM invoice_line l LEFT JOIN invoice i ON i.invoice_id = l.invoice_id \
             WHERE i.invoice_id IS NULL)"
        .into()
}

#[test]
fn a_snapshot_job_copies_a_night_that_is_being_written_as_of_one_moment() {
    let (db, target) = ("jobs_snap", "jobs_snap_t");
    seed(db, 80_000);
    drop_target_db(target);
    let ready = std::env::temp_dir().join(format!("jobs_snap_{}.ready", std::process::id()));
    let _ = std::fs::remove_file(&ready);
    let mut writer = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/app_writer.py"
        ))
        .args(["--db", db, "--ready-file"])
        .arg(&ready)
        .env("MYSQL_PORT", mysql_port().to_string())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the writer's first pair", || ready.exists());
    let local = Job::new(&job_config(db, None, ""));
    let azure = Job::new(&job_config(db, Some(target), ""));
    local.run(&[]).expect(0);
    azure.run(&[]).expect(0);
    unsafe { libc::kill(writer.id() as i32, libc::SIGTERM) };
    writer.wait().unwrap();
    let (parents, children, orphans) = pairs_in_sqlite(&local.path("data/out.db"));
    assert!(parents > 0, "the writer ran during the read");
    assert_eq!((parents, orphans), (children, 0), "SQLite");
    let row: (i64, i64, i64) = tls_root(Some(target))
        .query_first(pairs_sql())
        .unwrap()
        .unwrap();
    assert!(row.0 > 0, "the writer ran during the read");
    assert_eq!((row.0, row.2), (row.1, 0), "MySQL");
}

#[test]
fn a_failed_table_changes_none_under_snapshot_and_only_itself_per_table() {
    let (db, target) = ("jobs_fail", "jobs_fail_t");
    seed(db, 8_000);
    drop_target_db(target);
    let broken = "[table.film]\nquery = SELECT * FROM no_such_table\n";
    for t in [None, Some(target)] {
        let job = Job::new(&job_config(db, t, ""));
        job.run(&[]).expect(0);
        let before = counts(&job, t);
        root(Some(db))
            .query_drop("INSERT INTO actor (first_name, last_name) VALUES ('New', 'Actor')")
            .unwrap();
        let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
        std::fs::write(job.path("config.ini"), format!("{cfg}\n{broken}")).unwrap();
        let out = job.run(&["--summary-json", "-"]).expect(1);
        let s = summary_of(&out);
        assert!(s["error"].as_str().unwrap().contains("table `film`"), "{s}");
        assert_eq!(counts(&job, t), before, "no table changed");
        // per_table: the others are loaded; the failed one is kept.
        let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
        std::fs::write(
            job.path("config.ini"),
            cfg.replacen("tables = *\n", "tables = *\nconsistency = per_table\n", 1),
        )
        .unwrap();
        let s = summary_of(&job.run(&["--summary-json", "-"]).expect(1));
        let after = counts(&job, t);
        assert_eq!(after["actor"], before["actor"] + 1, "{s}");
        assert_eq!(after["film"], before["film"]);
        let film = s["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == "film")
            .unwrap()
            .clone();
        assert_eq!(film["exit_code"], 1, "{s}");
        root(Some(db))
            .query_drop("DELETE FROM actor WHERE first_name = 'New'")
            .unwrap();
    }
}

#[test]
fn only_dry_run_and_config_errors() {
    let db = "jobs_only";
    seed(db, 8_000);
    let job = Job::new(&job_config(db, None, ""));
    let s = summary_of(
        &job.run(&["--only", "payment,staff", "--summary-json", "-"])
            .expect(0),
    );
    let names: Vec<&str> = s["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["payment", "staff"]);
    assert_eq!(
        sqlite_counts(&job.path("data/out.db"))
            .keys()
            .collect::<Vec<_>>(),
        ["payment", "staff"]
    );
    let plan = job
        .run(&["--dry-run", "--only", "film,actor"])
        .expect(0)
        .stdout();
    assert!(
        plan.contains("== table actor") && plan.contains("== table film"),
        "{plan}"
    );
    // partitions under snapshot: said, not silently dropped.
    let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
    let split = cfg.replacen(
        "[external_db]",
        "[external_db]\npartitions = 2\npartition_column = id",
        1,
    );
    std::fs::write(job.path("config.ini"), split).unwrap();
    let said = job.run(&["--only", "staff"]).expect(0).stderr();
    assert!(said.contains("partitions does not apply"), "{said}");
    std::fs::write(job.path("config.ini"), cfg).unwrap();
    let err = job.run(&["--only", "films"]).expect(2).stderr();
    assert!(
        err.contains("--only") && err.contains("film,") || err.contains("film, "),
        "{err}"
    );
    let cfg = job_config(db, None, "").replace(
        "database = jobs_only\n",
        "database = jobs_only\nquery = SELECT 1\n",
    );
    let err = Job::new(&cfg).run(&[]).expect(2).stderr();
    assert!(err.contains("[table.NAME]"), "{err}");
    let cfg = format!(
        "{}\n[table.payment]\nstrategy = mrege\n",
        job_config(db, None, "")
    );
    let err = Job::new(&cfg).run(&[]).expect(2).stderr();
    assert!(
        err.contains("[table.payment] strategy = \"mrege\""),
        "{err}"
    );
    let cfg = format!(
        "{}\n[table.payment]\nincremental_kye = x\n",
        job_config(db, None, "")
    );
    let err = Job::new(&cfg).run(&[]).expect(2).stderr();
    assert!(err.contains("did you mean `incremental_key`?"), "{err}");
    let out = job
        .cmd(&[])
        .env("DBSYNC_TABLE__PAYMENT__STRATEGY", "mrege")
        .output()
        .unwrap();
    let err = Run(out).expect(2).stderr();
    assert!(err.contains("[table.payment] strategy"), "{err}");
}

#[test]
fn two_jobs_on_other_tables_of_one_file_do_not_wait_for_each_other() {
    let db = "jobs_locks";
    seed(db, 8_000);
    let a = Job::new(&job_config(db, None, "").replace("tables = *", "tables = stock_*"));
    let b_cfg = job_config(db, None, "").replace("tables = *", "tables = *, !stock_*");
    std::fs::write(a.path("other.ini"), b_cfg).unwrap();
    let mut first = a.cmd(&[]).spawn().unwrap();
    let second = a.run(&["--config", "other.ini"]);
    assert!(first.wait().unwrap().success());
    second.expect(0);
    assert_eq!(sqlite_counts(&a.path("data/out.db")).len(), 28);
}
