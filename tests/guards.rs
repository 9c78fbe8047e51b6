//! Runs that would end "successful" with the wrong rows: an empty or shrunken source
//! replacing a full target, and fallback rows of unknown or excessive age.

mod common;
use common::*;
use mysql::prelude::Queryable;

#[test]
fn an_empty_source_never_empties_a_full_sqlite_target() {
    let db = "dbsync_g_empty_sqlite";
    numbers(db, 10);
    let job = Job::new(&sqlite_config(db, "SELECT * FROM n", "n"));
    job.run(&[]).expect(0);
    let out = job.path("data/out.db");
    assert_eq!(sqlite_count(&out, "n"), 10);

    let empty = Job::new(&sqlite_config(db, "SELECT * FROM n WHERE id > 100", "n"));
    std::fs::create_dir_all(empty.path("data")).unwrap();
    std::fs::copy(&out, empty.path("data/out.db")).unwrap();
    let run = empty.run(&["--summary-json", "-"]).expect(1);
    assert!(
        run.stderr().contains("no rows") && run.stderr().contains("allow_empty"),
        "{}",
        run.stderr()
    );
    assert_eq!(sqlite_count(&empty.path("data/out.db"), "n"), 10);
    // SQLite names are case-insensitive: `N` is the same table, and just as guarded.
    let upper = sqlite_config(db, "SELECT * FROM n WHERE id > 100", "N");
    std::fs::write(empty.path("config.ini"), upper).unwrap();
    empty.run(&[]).expect(1);
    assert_eq!(sqlite_count(&empty.path("data/out.db"), "n"), 10);
    std::fs::write(
        empty.path("config.ini"),
        sqlite_config(db, "SELECT * FROM n WHERE id > 100", "n"),
    )
    .unwrap();

    // Allowed explicitly: the target becomes empty.
    let mut cmd = empty.cmd(&[]);
    cmd.env("DBSYNC_GENERAL_ALLOW_EMPTY", "true");
    Run(cmd.output().unwrap()).expect(0);
    assert_eq!(sqlite_count(&empty.path("data/out.db"), "n"), 0);
    // An empty target may be loaded from an empty source without any setting.
    let again = empty.run(&[]).expect(0);
    assert!(
        !again.stderr().contains("allow_empty"),
        "{}",
        again.stderr()
    );
}

#[test]
fn a_shrinking_source_is_refused_beyond_max_shrink_percent() {
    let db = "dbsync_g_shrink";
    numbers(db, 100);
    let cfg = |query: &str| {
        sqlite_config(db, query, "n").replace(
            "[external_db]",
            "max_shrink_percent = 20 ; refuse losing more than a fifth\n[external_db]",
        )
    };
    let job = Job::new(&cfg("SELECT * FROM n"));
    job.run(&[]).expect(0);
    std::fs::write(
        job.path("config.ini"),
        cfg("SELECT * FROM n WHERE id <= 50"),
    )
    .unwrap();
    let run = job.run(&[]).expect(1);
    let err = run.stderr();
    assert!(
        err.contains("max_shrink_percent = 20") && err.contains("50 rows") && err.contains("100"),
        "{err}"
    );
    assert_eq!(sqlite_count(&job.path("data/out.db"), "n"), 100);
    std::fs::write(
        job.path("config.ini"),
        cfg("SELECT * FROM n WHERE id <= 85"),
    )
    .unwrap();
    job.run(&[]).expect(0);
    assert_eq!(sqlite_count(&job.path("data/out.db"), "n"), 85);
}

#[test]
fn an_empty_source_never_empties_a_full_mysql_target() {
    let db = "dbsync_g_empty_mysql";
    numbers(db, 10);
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    let cfg = azure_config(db, "SELECT * FROM n", db, "n", &verified("ca.pem"));
    Job::new(&cfg).run(&[]).expect(0);
    let empty = cfg.replace("SELECT * FROM n", "SELECT * FROM n WHERE id < 0");
    let run = Job::new(&empty).run(&[]).expect(1);
    assert!(run.stderr().contains("allow_empty"), "{}", run.stderr());
    let count: Option<u64> = tls_root(Some(db))
        .query_first("SELECT COUNT(*) FROM n")
        .unwrap();
    assert_eq!(count, Some(10));
    let shrink = cfg
        .replace("SELECT * FROM n", "SELECT * FROM n WHERE id <= 2")
        .replace("[external_db]", "max_shrink_percent = 50\n[external_db]");
    let run = Job::new(&shrink).run(&[]).expect(1);
    assert!(
        run.stderr().contains("max_shrink_percent"),
        "{}",
        run.stderr()
    );
    let count: Option<u64> = tls_root(Some(db))
        .query_first("SELECT COUNT(*) FROM n")
        .unwrap();
    assert_eq!(count, Some(10));
}

/// Ages the load record of `table` in `file` by `secs`, or deletes it (`None`).
fn age_record(file: &std::path::Path, table: &str, secs: Option<i64>) {
    let c = rusqlite::Connection::open(file).unwrap();
    match secs {
        Some(s) => c
            .execute(
                "UPDATE dbsync_loads SET loaded_at_unix = loaded_at_unix - ?1 WHERE table_name = ?2",
                rusqlite::params![s, table],
            )
            .unwrap(),
        None => c.execute("DELETE FROM dbsync_loads", []).unwrap(),
    };
}

#[test]
fn every_local_load_is_recorded_and_the_fallback_tells_and_bounds_its_age() {
    let db = "dbsync_g_fresh";
    numbers(db, 5);
    let target_db = "dbsync_g_fresh_t";
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{target_db}`"))
        .unwrap();
    let cfg = azure_config(db, "SELECT * FROM n", target_db, "n", &verified("ca.pem"));
    let job = Job::new(&cfg);
    // The local load records when, how many and from where.
    job.run(&["--target", "local_sqlite"]).expect(0);
    let local = job.path("data/local.db");
    let (rows, source, at): (i64, String, i64) = rusqlite::Connection::open(&local)
        .unwrap()
        .query_row(
            "SELECT rows, source, loaded_at_unix FROM dbsync_loads WHERE table_name = 'n'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(rows, 5);
    assert!(
        source.contains(&format!("127.0.0.1:{}/{db}", mysql_port())),
        "{source}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - at).abs() < 120, "{at} vs {now}");
    Job::new(&cfg).run(&[]).expect(0); // the Azure target holds the primary's 5 rows

    // The primary becomes unreachable: the fallback serves and says how old its rows are.
    let down = primary_down(&cfg);
    std::fs::write(job.path("config.ini"), &down).unwrap();
    age_record(&local, "n", Some(3 * 86_400));
    let run = job.run(&["--summary-json", "-"]).expect(3);
    assert!(run.stderr().contains("3d old"), "{}", run.stderr());
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    let age = summary["fallback_age_seconds"].as_u64().unwrap();
    assert!((3 * 86_400..3 * 86_400 + 120).contains(&age), "{summary}");
    assert!(summary["fallback_loaded_at"]
        .as_str()
        .unwrap()
        .ends_with("UTC"));

    // Older than fallback_max_age: refused, the target kept.
    tls_root(Some(target_db))
        .query_drop("DELETE FROM n WHERE id > 3")
        .unwrap();
    let strict = down.replace("[external_db]", "fallback_max_age = 2d\n[external_db]");
    std::fs::write(job.path("config.ini"), &strict).unwrap();
    let run = job.run(&[]).expect(1);
    let err = run.stderr();
    assert!(
        err.contains("fallback_max_age = 2d") && err.contains("3d") && err.contains("local_sqlite"),
        "{err}"
    );
    let count: Option<u64> = tls_root(Some(target_db))
        .query_first("SELECT COUNT(*) FROM n")
        .unwrap();
    assert_eq!(count, Some(3), "target untouched");

    // Within the limit it serves.
    std::fs::write(
        job.path("config.ini"),
        down.replace("[external_db]", "fallback_max_age = 4d\n[external_db]"),
    )
    .unwrap();
    job.run(&[]).expect(3);

    // No record: unknown age, refused while a maximum is set, with the way to refresh it.
    age_record(&local, "n", None);
    std::fs::write(job.path("config.ini"), &strict).unwrap();
    let run = job.run(&[]).expect(1);
    assert!(
        run.stderr().contains("unknown") && run.stderr().contains("local_sqlite"),
        "{}",
        run.stderr()
    );
}

#[test]
fn the_fallback_kept_as_target_only_reports_its_age() {
    let db = "dbsync_g_kept";
    numbers(db, 4);
    let cfg = sqlite_config(db, "SELECT * FROM n", "n");
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    age_record(&job.path("data/out.db"), "n", Some(10 * 86_400));
    let down = cfg
        .replace(
            &format!("port = {}", mysql_port()),
            &format!("port = {}", closed_port()),
        )
        .replace("[external_db]", "fallback_max_age = 1d\n[external_db]");
    std::fs::write(job.path("config.ini"), down).unwrap();
    let run = job.run(&["--summary-json", "-"]).expect(3);
    assert!(run.stderr().contains("10d old"), "{}", run.stderr());
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(summary["action"], "kept");
    assert!(summary["fallback_age_seconds"].as_u64().unwrap() >= 10 * 86_400);
}
