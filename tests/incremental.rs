//! `[general] strategy = append | merge`: the first run loads everything, later runs read
//! only the rows past the target's largest key and apply them in one transaction, on both
//! targets; the refusals name the setting or `--full-refresh`.

mod common;
use common::jobs::*;
use common::proxy::Proxy;
use common::*;
use mysql::prelude::Queryable;

const ITEMS: &str = "CREATE TABLE items (id INT NOT NULL PRIMARY KEY, name VARCHAR(20), \
    price DECIMAL(10,2), updated_at DATETIME(6) NOT NULL, KEY by_updated (updated_at));
    INSERT INTO items VALUES (1, 'one', 1.10, '2024-01-01 10:00:00.000001'),
        (2, 'two', 2.20, '2024-01-02 10:00:00'), (3, NULL, 3.30, '2024-01-03 10:00:00'),
        (4, 'four', NULL, '2024-01-03 10:00:00');";

const CHANGES: &str = "UPDATE items SET name = 'ONE', updated_at = '2024-01-04 00:00:00' WHERE id = 1;
    UPDATE items SET price = 9.99, updated_at = '2024-01-04 00:00:00.5' WHERE id = 2;
    INSERT INTO items VALUES (5, 'five', 5.50, '2024-01-04 00:00:01'), (6, 'six', 6.60, '2024-01-05 00:00:00');";

/// The rows as both targets hold them: the DECIMAL(10,2) price as a number (SQLite stores
/// it so, `[local_db] decimal = auto`).
const ORDERED: &str = "SELECT id, name, price + 0e0 AS price, updated_at FROM items ORDER BY id";

fn merge(extra: &str) -> String {
    format!("strategy = merge\nincremental_key = updated_at\n{extra}")
}

/// A merge into a target without the primary key: a full replace that makes it, then, after
/// one more change at the source, a merge.
fn rebuilt_then_merged(job: &Job, src: &mut mysql::Conn) {
    let s = run_saying(job, 0, "no primary key on (id)");
    assert_eq!(s["action"], "replaced", "{s}");
    src.query_drop("UPDATE items SET name = 'six!', updated_at = '2024-02-01' WHERE id = 6")
        .unwrap();
    let s = run(job, 0);
    assert_eq!(
        (s["action"].as_str(), s["updated"].as_u64()),
        (Some("merged"), Some(1)),
        "{s}"
    );
}

/// `ITEMS` in a fresh source database `db`, and a merge job from it into the TLS server's
/// database `target` (dropped first).
fn items_into_azure(db: &str, target: &str) -> (mysql::Conn, Job) {
    drop_target_db(target);
    let src = fresh_db(db, ITEMS);
    let cfg = azure_config(
        db,
        "SELECT * FROM items",
        target,
        "items",
        &verified("ca.pem"),
    );
    (src, Job::new(&with_general(&cfg, &merge(""))))
}

/// `ITEMS` in a fresh source database `db`, and a merge job from it into a SQLite file, with
/// these `[general]` lines besides.
fn items_into_sqlite(db: &str, extra: &str) -> (mysql::Conn, Job) {
    let src = fresh_db(db, ITEMS);
    let cfg = sqlite_config(db, "SELECT * FROM items", "items");
    (src, Job::new(&with_general(&cfg, &merge(extra))))
}

#[test]
fn merge_into_sqlite_applies_updates_and_inserts() {
    let db = "inc_merge_sqlite";
    let (mut src, job) = items_into_sqlite(db, "");
    let s = run(&job, 0);
    assert_eq!(s["action"], "replaced", "{s}");
    assert_eq!(s["strategy"], "merge");
    assert_eq!(s["rows"], 4);

    run_all(&mut src, CHANGES);
    let s = run(&job, 0);
    assert_eq!(s["action"], "merged", "{s}");
    assert_eq!(s["incremental_from"], "2024-01-03 10:00:00.000000");
    // Rows 3 and 4 share the old maximum: read again, unchanged (NULLs among their values),
    // so not counted as updated; row 1's change is one of case only.
    assert_eq!(
        (
            s["rows"].as_u64(),
            s["inserted"].as_u64(),
            s["updated"].as_u64()
        ),
        (Some(6), Some(2), Some(2))
    );
    let want = mysql_rows(&mut src, ORDERED);
    let path = job.path("data/out.db");
    assert_eq!(sqlite_rows(&path, "items", "id"), want);

    // Nothing new: a quiet night reads only the rows at the maximum and changes nothing.
    let s = run(&job, 0);
    assert_eq!(
        (s["rows"].as_u64(), s["inserted"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    assert_eq!(sqlite_rows(&path, "items", "id"), want);

    // The key is indexed, so the maximum is cheap.
    let c = rusqlite::Connection::open(&path).unwrap();
    let plan: String = c
        .query_row(
            "EXPLAIN QUERY PLAN SELECT max(updated_at) FROM items",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("INDEX"), "{plan}");
}

#[test]
fn a_target_made_before_it_was_incremental_gets_the_key_indexed_once() {
    // Loaded under `replace` from a table without an index on the key, then switched to merge.
    let (db, target) = ("inc_late_index", "inc_late_index_t");
    drop_target_db(target);
    let mut src = fresh_db(db, &ITEMS.replace(", KEY by_updated (updated_at)", ""));
    let local = Job::new(&sqlite_config(db, "SELECT * FROM items", "items"));
    let azure = Job::new(&azure_config(
        db,
        "SELECT * FROM items",
        target,
        "items",
        &verified("ca.pem"),
    ));
    let path = local.path("data/out.db");
    let sqlite_plan = || -> String {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.query_row(
            "EXPLAIN QUERY PLAN SELECT max(updated_at) FROM items",
            [],
            |r| r.get(3),
        )
        .unwrap()
    };
    let mysql_indexed = || {
        mysql_rows(
            &mut tls_root(Some(target)),
            "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = 'items' AND COLUMN_NAME = 'updated_at' AND SEQ_IN_INDEX = 1",
        )
    };
    for job in [&local, &azure] {
        job.run(&[]).expect(0);
    }
    assert!(!sqlite_plan().contains("INDEX"), "{}", sqlite_plan());
    assert_eq!(mysql_indexed(), [[Some("0".to_string())]]);
    run_all(&mut src, CHANGES);
    for job in [&local, &azure] {
        add_general(job, &merge(""));
    }
    // MySQL: a session in a transaction that read the table holds a metadata lock the ALTER
    // needs: it waits a few seconds and gives up; the rows are applied all the same.
    let mut reader = tls_root(Some(target));
    run_all(&mut reader, "START TRANSACTION; SELECT COUNT(*) FROM items");
    assert_eq!(
        run_saying(&azure, 0, "could not be indexed")["action"],
        "merged"
    );
    assert_eq!(mysql_indexed(), [[Some("0".to_string())]]);
    drop(reader);
    for job in [&local, &azure] {
        assert_eq!(
            run_saying(job, 0, "indexed `updated_at`")["action"],
            "merged"
        );
        // Once: the next run finds it.
        let out = job.run(&[]).expect(0);
        assert!(!out.stderr().contains("indexed `"), "{}", out.stderr());
    }
    assert!(sqlite_plan().contains("INDEX"), "{}", sqlite_plan());
    assert_eq!(mysql_indexed(), [[Some("1".to_string())]]);
    assert_eq!(
        sqlite_rows(&path, "items", "id").len(),
        6,
        "the merge applied the changes too"
    );
}

#[test]
fn merge_into_mysql_applies_updates_and_inserts() {
    let (db, target) = ("inc_merge_mysql", "inc_merge_mysql_t");
    let (mut src, job) = items_into_azure(db, target);
    assert_eq!(run(&job, 0)["action"], "replaced");
    // A column the server hides (as Azure's generated invisible primary keys are) is not
    // one of the table's columns for the comparison with the query's.
    tls_root(Some(target))
        .query_drop("ALTER TABLE items ADD hidden INT INVISIBLE")
        .unwrap();
    run_all(&mut src, CHANGES);
    let s = run(&job, 0);
    assert_eq!(s["action"], "merged", "{s}");
    // Rows 3 and 4 were read again unchanged: updated counts the two that changed.
    assert_eq!(
        (s["inserted"].as_u64(), s["updated"].as_u64()),
        (Some(2), Some(2)),
        "{s}"
    );
    let want = mysql_rows(&mut src, ORDERED);
    let mut t = tls_root(Some(target));
    assert_eq!(mysql_rows(&mut t, ORDERED), want);
    let s = run(&job, 0);
    assert_eq!(
        (s["rows"].as_u64(), s["inserted"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    assert_eq!(mysql_rows(&mut t, ORDERED), want);
    let leftovers: Vec<String> = t.query("SHOW TABLES LIKE 'items\\_\\_%'").unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_mysql_target_whose_columns_or_key_changed_is_refused_or_rebuilt() {
    let (db, target) = ("inc_mysql_shape", "inc_mysql_shape_t");
    let (mut src, job) = items_into_azure(db, target);
    assert_eq!(run(&job, 0)["action"], "replaced");
    let held = |t: &mut mysql::Conn| mysql_rows(t, "SELECT * FROM items ORDER BY id");
    // A column renamed on the target (by a person, or another tool): rows cannot be added.
    let mut t = tls_root(Some(target));
    t.query_drop("ALTER TABLE items RENAME COLUMN name TO title")
        .unwrap();
    run_all(&mut src, CHANGES);
    let before = held(&mut t);
    let err = job.run(&[]).expect(1).stderr();
    assert!(
        err.contains("--full-refresh") && err.contains("title"),
        "{err}"
    );
    assert_eq!(held(&mut t), before);
    // The columns are back, the primary key is gone: a full replace makes it again.
    run_all(
        &mut t,
        "ALTER TABLE items RENAME COLUMN title TO name; ALTER TABLE items DROP PRIMARY KEY",
    );
    rebuilt_then_merged(&job, &mut src);
    assert_eq!(mysql_rows(&mut t, ORDERED), mysql_rows(&mut src, ORDERED));
}

#[test]
fn append_adds_only_the_new_rows_on_both_targets() {
    let db = "inc_append";
    let target = "inc_append_t";
    drop_target_db(target);
    let mut src = fresh_db(
        db,
        "CREATE TABLE ev (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, what VARCHAR(10));
         INSERT INTO ev (what) VALUES ('a'), ('b'), ('c');",
    );
    let general = "strategy = append\nincremental_key = id";
    let local = Job::new(&with_general(
        &sqlite_config(db, "SELECT * FROM ev", "ev"),
        general,
    ));
    let azure = Job::new(&with_general(
        &azure_config(db, "SELECT * FROM ev", target, "ev", &verified("ca.pem")),
        general,
    ));
    for job in [&local, &azure] {
        assert_eq!(run(job, 0)["rows"], 3);
    }
    src.query_drop("INSERT INTO ev (what) VALUES ('d'), ('e')")
        .unwrap();
    for job in [&local, &azure] {
        let s = run(job, 0);
        assert_eq!(s["action"], "appended", "{s}");
        assert_eq!(
            (s["rows"].as_u64(), s["inserted"].as_u64()),
            (Some(2), Some(2))
        );
        assert_eq!(s["incremental_from"], "3");
        // Nothing new: no rows, exit 0; the empty-source guard is for replacing runs.
        let s = run(job, 0);
        assert_eq!(
            (s["action"].as_str(), s["rows"].as_u64()),
            (Some("appended"), Some(0))
        );
    }
    let want = mysql_rows(&mut src, "SELECT id, what FROM ev ORDER BY id");
    assert_eq!(sqlite_rows(&local.path("data/out.db"), "ev", "id"), want);
    assert_eq!(
        mysql_rows(
            &mut tls_root(Some(target)),
            "SELECT id, what FROM ev ORDER BY id"
        ),
        want
    );
}

#[test]
fn the_placeholder_takes_the_start_value_and_dry_run_shows_the_plan() {
    let db = "inc_placeholder";
    let mut src = fresh_db(db, ITEMS);
    // Enough older rows that the server prefers the index to a scan.
    src.query_drop(
        "INSERT INTO items SELECT seq + 100, 'old', 0, '2023-01-01' + INTERVAL seq MINUTE FROM seq_1_to_500",
    )
    .unwrap();
    src.query_drop("ANALYZE TABLE items").unwrap();
    let query = "SELECT * FROM items WHERE updated_at >= {incremental_value}";
    let job = Job::new(&with_general(
        &sqlite_config(db, query, "items"),
        &merge(""),
    ));
    assert_eq!(run(&job, 0)["rows"], 504);
    run_all(&mut src, CHANGES);
    let out = job.run(&["--dry-run"]).expect(0).stdout();
    assert!(
        out.contains("reads:    rows with `updated_at` >= 2024-01-03 10:00:00.000000"),
        "{out}"
    );
    assert!(
        out.contains("EXPLAIN") && out.contains("key=by_updated"),
        "{out}"
    );
    let s = run(&job, 0);
    assert_eq!(
        (s["rows"].as_u64(), s["inserted"].as_u64()),
        (Some(6), Some(2)),
        "{s}"
    );
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "items", "id"),
        mysql_rows(&mut src, ORDERED)
    );
    // Without strategy, the placeholder cannot be filled in.
    let plain = Job::new(&sqlite_config(db, query, "items"));
    let err = plain.run(&[]).expect(2).stderr();
    assert!(
        err.contains("{incremental_value}") && err.contains("strategy"),
        "{err}"
    );
}

#[test]
fn timestamps_compare_as_instants_whatever_the_zones() {
    // The target server runs at +02:00; a key read or compared in a local zone would start
    // two hours off, and read no row or three.
    let (db, target) = ("inc_ts", "inc_ts_t");
    drop_target_db(target);
    let mut src = fresh_db(
        db,
        "CREATE TABLE t (id INT PRIMARY KEY, ts TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3));
         INSERT INTO t VALUES (1, '2024-06-01 10:00:00'), (2, '2024-06-01 11:00:00'), (3, '2024-06-01 12:00:00.250');",
    );
    let general = "strategy = merge\nincremental_key = ts";
    let azure = Job::new(&with_general(
        &azure_config(db, "SELECT * FROM t", target, "t", &verified("ca.pem")),
        general,
    ));
    let local = Job::new(&with_general(
        &sqlite_config(db, "SELECT * FROM t", "t"),
        general,
    ));
    for job in [&azure, &local] {
        run(job, 0);
        let s = run(job, 0);
        assert_eq!(
            (s["action"].as_str(), s["rows"].as_u64()),
            (Some("merged"), Some(1)),
            "{s}"
        );
        assert_eq!(s["incremental_from"], "2024-06-01 12:00:00.250000");
    }
    src.query_drop("INSERT INTO t VALUES (4, '2024-06-01 12:00:00.251')")
        .unwrap();
    for job in [&azure, &local] {
        let s = run(job, 0);
        assert_eq!(
            (s["rows"].as_u64(), s["inserted"].as_u64()),
            (Some(2), Some(1)),
            "{s}"
        );
    }
}

#[test]
#[allow(clippy::too_many_lines)] // a table of refusals, one after another
fn refusals_name_the_setting_or_full_refresh() {
    let db = "inc_refusals";
    fresh_db(
        db,
        &format!("{ITEMS}\nCREATE TABLE loose (k INT NOT NULL, at DATETIME); INSERT INTO loose VALUES (1, NOW());\n\
            CREATE TABLE days (id INT PRIMARY KEY, day DATE NOT NULL);"),
    );
    let cfg = |query: &str, general: &str| {
        Job::new(&with_general(&sqlite_config(db, query, "t"), general))
    };

    let err = cfg(
        "SELECT * FROM items",
        &merge("").replace("updated_at", "changed"),
    )
    .run(&[])
    .expect(2)
    .stderr();
    assert!(
        err.contains("incremental_key") && err.contains("updated_at"),
        "{err}"
    );
    let err = cfg(
        "SELECT * FROM loose",
        "strategy = append\nincremental_key = at",
    )
    .run(&[])
    .expect(2)
    .stderr();
    assert!(err.contains("NULL"), "{err}");
    let err = cfg(
        "SELECT * FROM items",
        "strategy = merge\nincremental_key = price",
    )
    .run(&[])
    .expect(2)
    .stderr();
    assert!(
        err.contains("decimal(10,2)") || err.contains("DECIMAL"),
        "{err}"
    );
    let err = cfg(
        "SELECT * FROM loose",
        "strategy = merge\nincremental_key = k",
    )
    .run(&[])
    .expect(2)
    .stderr();
    assert!(err.contains("primary_key"), "{err}");
    let err = cfg("SELECT * FROM items", "strategy = append")
        .run(&[])
        .expect(2)
        .stderr();
    assert!(err.contains("incremental_key"), "{err}");
    let err = cfg(
        "SELECT * FROM items",
        "strategy = append\nincremental_key = id\nincremental_lookback = 5",
    )
    .run(&[])
    .expect(2)
    .stderr();
    assert!(err.contains("incremental_lookback"), "{err}");

    // The query's columns changed since the target was made: only a full refresh fits.
    let job = cfg("SELECT id, name, updated_at FROM items", &merge(""));
    job.run(&[]).expect(0);
    std::fs::write(
        job.path("config.ini"),
        with_general(&sqlite_config(db, "SELECT * FROM items", "t"), &merge("")),
    )
    .unwrap();
    let err = job.run(&[]).expect(1).stderr();
    assert!(
        err.contains("--full-refresh") && err.contains("price"),
        "{err}"
    );
    assert_eq!(sqlite_count(&job.path("data/out.db"), "t"), 4);
    let s = {
        job.run(&["--full-refresh", "--summary-json", "summary.json"])
            .expect(0);
        summary(&job)
    };
    assert_eq!(
        (s["action"].as_str(), s["rows"].as_u64()),
        (Some("replaced"), Some(4))
    );
    // Refused before the first run too (nothing to start from yet).
    let err = cfg("SELECT * FROM items", &merge("incremental_lookback = 10"))
        .run(&[])
        .expect(2)
        .stderr();
    assert!(
        err.contains("incremental_lookback") && err.contains("unit"),
        "{err}"
    );
    // Rows added later to the last day loaded would never be read.
    let err = cfg(
        "SELECT * FROM days",
        "strategy = append\nincremental_key = day",
    )
    .run(&[])
    .expect(2)
    .stderr();
    assert!(err.contains("merge") && err.contains("DATE"), "{err}");
    // The query's own LIMIT would apply before the filter.
    let err = cfg(
        "SELECT * FROM items ORDER BY id LIMIT 1000",
        "strategy = append\nincremental_key = id",
    )
    .run(&[])
    .expect(2)
    .stderr();
    assert!(
        err.contains("LIMIT") && err.contains("{incremental_value}"),
        "{err}"
    );
}

#[test]
fn a_changed_column_type_is_refused_naming_full_refresh() {
    let (db, target) = ("inc_types", "inc_types_t");
    let (mut src, azure) = items_into_azure(db, target);
    let local = Job::new(&with_general(
        &sqlite_config(db, "SELECT * FROM items", "items"),
        &merge(""),
    ));
    run(&azure, 0);
    run(&local, 0);
    // DECIMAL(10,2) -> DECIMAL(12,4): INSERT ... SELECT would round quietly.
    run_all(&mut src, "ALTER TABLE items MODIFY price DECIMAL(12,4);");
    run_all(&mut src, CHANGES);
    let err = azure.run(&[]).expect(1).stderr();
    assert!(
        err.contains("--full-refresh")
            && err.contains("decimal(10,2)")
            && err.contains("decimal(12,4)"),
        "{err}"
    );
    // DECIMAL (kept as text) -> DOUBLE: another SQLite affinity.
    run_all(&mut src, "ALTER TABLE items MODIFY price DOUBLE;");
    let err = local.run(&[]).expect(1).stderr();
    assert!(
        err.contains("--full-refresh") && err.contains("REAL"),
        "{err}"
    );
    let mut t = tls_root(Some(target));
    assert_eq!(
        mysql_rows(&mut t, "SELECT COUNT(*) FROM items"),
        [[Some("4".to_string())]]
    );
    azure.run(&["--full-refresh"]).expect(0);
    assert_eq!(run(&azure, 0)["action"], "merged");
}

#[test]
fn a_mysql_target_that_cannot_roll_back_is_refused() {
    let (db, target) = ("inc_engine", "inc_engine_t");
    let (mut src, azure) = items_into_azure(db, target);
    run(&azure, 0);
    let mut t = tls_root(Some(target));
    t.query_drop("ALTER TABLE items ENGINE=MyISAM").unwrap();
    run_all(&mut src, CHANGES);
    let err = azure.run(&[]).expect(1).stderr();
    assert!(
        err.contains("storage engine is MyISAM") && err.contains("--full-refresh"),
        "{err}"
    );
    assert_eq!(
        mysql_rows(&mut t, "SELECT COUNT(*) FROM items"),
        [[Some("4".to_string())]]
    );
    t.query_drop("ALTER TABLE items ENGINE=InnoDB").unwrap();
    assert_eq!(run(&azure, 0)["action"], "merged");
}

#[test]
fn a_merge_that_finds_the_source_behind_the_target_warns_and_changes_nothing() {
    let db = "inc_behind";
    let (mut src, job) = items_into_sqlite(db, "");
    run(&job, 0);
    let before = sqlite_rows(&job.path("data/out.db"), "items", "id");
    // The rows at the target's largest key are gone (deleted, or a restored backup).
    src.query_drop("DELETE FROM items WHERE id >= 3").unwrap();
    let out = job.run(&["--summary-json", "summary.json"]).expect(0);
    let err = out.stderr();
    assert!(
        err.contains("no row with `updated_at` >= 2024-01-03 10:00:00.000000")
            && err.contains("--full-refresh"),
        "{err}"
    );
    assert_eq!(summary(&job)["rows"], 0);
    assert_eq!(sqlite_rows(&job.path("data/out.db"), "items", "id"), before);
}

#[test]
fn a_merge_key_that_may_be_null_is_refused() {
    let db = "inc_null_key";
    fresh_db(
        db,
        "CREATE TABLE n (a INT NOT NULL, b INT NULL, at DATETIME NOT NULL, UNIQUE KEY (a, b));
         INSERT INTO n VALUES (1, NULL, '2024-01-01');",
    );
    let err = Job::new(&with_general(
        &sqlite_config(db, "SELECT * FROM n", "n"),
        "strategy = merge\nincremental_key = at\nprimary_key = a, b",
    ))
    .run(&[])
    .expect(2)
    .stderr();
    assert!(
        err.contains("`b` may be NULL") && err.contains("primary_key"),
        "{err}"
    );
}

#[test]
fn a_text_key_compared_without_case_is_not_merged_into_sqlite() {
    let db = "inc_ci_key";
    fresh_db(
        db,
        "CREATE TABLE c (code VARCHAR(10) COLLATE utf8mb4_general_ci PRIMARY KEY, at DATETIME NOT NULL);
         INSERT INTO c VALUES ('abc', '2024-01-01');
         CREATE TABLE b (code VARCHAR(10) COLLATE utf8mb4_bin PRIMARY KEY, at DATETIME NOT NULL);
         INSERT INTO b VALUES ('abc', '2024-01-01');",
    );
    let general = "strategy = merge\nincremental_key = at";
    let err = Job::new(&with_general(
        &sqlite_config(db, "SELECT * FROM c", "c"),
        general,
    ))
    .run(&[])
    .expect(2)
    .stderr();
    assert!(
        err.contains("utf8mb4_general_ci") && err.contains("code"),
        "{err}"
    );
    Job::new(&with_general(
        &sqlite_config(db, "SELECT * FROM b", "b"),
        general,
    ))
    .run(&[])
    .expect(0);
}

#[test]
fn lookback_rereads_late_rows() {
    let db = "inc_lookback";
    let (mut src, job) = items_into_sqlite(db, "incremental_lookback = 1d");
    run(&job, 0);
    // A row that committed late, with a key below the target's maximum.
    src.query_drop("INSERT INTO items VALUES (7, 'late', 7.70, '2024-01-02 12:00:00')")
        .unwrap();
    let s = run(&job, 0);
    assert_eq!(s["incremental_from"], "2024-01-02 10:00:00.000000", "{s}");
    assert_eq!(
        (s["rows"].as_u64(), s["inserted"].as_u64()),
        (Some(4), Some(1)),
        "{s}"
    );
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "items", "id"),
        mysql_rows(&mut src, ORDERED)
    );
}

#[test]
fn a_merge_killed_while_applying_leaves_the_target_as_before() {
    let (db, target) = ("inc_kill", "inc_kill_t");
    let (mut src, job) = items_into_azure(db, target);
    run(&job, 0);
    let mut t = tls_root(Some(target));
    let before = mysql_rows(&mut t, ORDERED);
    run_all(&mut src, CHANGES);
    // A reader's lock on row 3 holds the merge's DELETE mid-transaction.
    let mut holder = tls_root(Some(target));
    holder.query_drop("START TRANSACTION").unwrap();
    holder
        .query_drop("SELECT * FROM items WHERE id = 3 FOR UPDATE")
        .unwrap();
    let mut child = job
        .cmd(&[])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the merge waiting on the lock", || {
        let n: Option<u64> = t
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'DELETE%items%'",
            )
            .unwrap();
        n == Some(1)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    holder.query_drop("ROLLBACK").unwrap();
    wait_until("the killed run's session to end", || {
        let n: Option<u64> = t
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'dbsync'",
            )
            .unwrap();
        n == Some(0)
    });
    assert_eq!(mysql_rows(&mut t, ORDERED), before);
    let s = run(&job, 0);
    assert_eq!(s["action"], "merged", "{s}");
    assert_eq!(mysql_rows(&mut t, ORDERED), mysql_rows(&mut src, ORDERED));
}

#[test]
fn a_merge_whose_insert_fails_leaves_the_target_as_before() {
    let (db, target) = ("inc_apply_fails", "inc_apply_fails_t");
    let (mut src, job) = items_into_azure(db, target);
    run(&job, 0);
    let mut t = tls_root(Some(target));
    // A unique index of the target's own that a new row breaks: the DELETE of the rows
    // that come again has run when the INSERT fails, in the same transaction.
    t.query_drop("ALTER TABLE items ADD UNIQUE INDEX by_name (name)")
        .unwrap();
    let before = mysql_rows(&mut t, ORDERED);
    run_all(&mut src, CHANGES);
    src.query_drop("UPDATE items SET name = 'four' WHERE id = 6")
        .unwrap();
    let err = job.run(&[]).expect(1).stderr();
    assert!(err.contains("applying the new rows"), "{err}");
    assert!(err.contains("Duplicate entry"), "{err}");
    assert_eq!(mysql_rows(&mut t, ORDERED), before);
    let leftovers: Vec<String> = t.query("SHOW TABLES LIKE 'items\\_\\_%'").unwrap();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Without the clash the same merge goes through.
    t.query_drop("ALTER TABLE items DROP INDEX by_name")
        .unwrap();
    let s = run(&job, 0);
    assert_eq!(s["action"], "merged", "{s}");
    assert_eq!(mysql_rows(&mut t, ORDERED), mysql_rows(&mut src, ORDERED));
}

/// A merge job into the TLS server's database `target` whose primary is down: its
/// fallback file holds an older and a newer row than the target's one row, whose `id`
/// column is declared `id_def`; `general` adds [general] lines.
fn fallback_merge(target: &str, id_def: &str, general: &str) -> Job {
    let (job, _local) = fallback_to_azure(
        target,
        "items",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT);
         INSERT INTO items VALUES (1, 'stale', '2024-01-01 00:00:00'), (2, 'new', '2024-02-01 00:00:00');",
    );
    let mut t = tls_root(None);
    t.query_drop(format!("CREATE DATABASE `{target}`")).unwrap();
    run_all(
        &mut t,
        &format!(
            "CREATE TABLE `{target}`.items ({id_def}, name VARCHAR(10), updated_at DATETIME NOT NULL);
             INSERT INTO `{target}`.items VALUES (1, 'current', '2024-01-15 00:00:00');"
        ),
    );
    add_general(&job, &format!("{}\n{general}", merge("").trim_end()));
    job
}

#[test]
fn a_fallback_merge_applies_only_rows_past_the_target() {
    // The target was loaded from the primary; the fallback file holds older and newer rows.
    let target = "inc_fallback_t";
    let job = fallback_merge(target, "id INT PRIMARY KEY", "incremental_lookback = 60d");
    // The lookback is for late rows of the primary: fallback rows never go back.
    let s = run(&job, 3);
    assert_eq!(
        (s["action"].as_str(), s["rows"].as_u64()),
        (Some("merged"), Some(1)),
        "{s}"
    );
    assert_eq!(
        mysql_rows(
            &mut tls_root(Some(target)),
            "SELECT id, name, updated_at FROM items ORDER BY id"
        ),
        [
            [
                Some("1".into()),
                Some("current".into()),
                Some("2024-01-15 00:00:00".into())
            ],
            [
                Some("2".into()),
                Some("new".into()),
                Some("2024-02-01 00:00:00".into())
            ]
        ]
    );
}

#[test]
fn a_fallback_run_never_replaces_a_target_that_holds_rows() {
    // A target whose primary key is not the merge's (a full replace would make it), and a
    // --full-refresh: from the fallback's older rows, both would move the target backwards.
    let target = "inc_fallback_keep";
    let job = fallback_merge(target, "id INT NOT NULL", "primary_key = id");
    let held =
        |t: &mut mysql::Conn| mysql_rows(t, "SELECT id, name, updated_at FROM items ORDER BY id");
    let before = held(&mut tls_root(Some(target)));
    run_saying(&job, 1, "not made from the fallback's rows");
    assert_eq!(held(&mut tls_root(Some(target))), before);

    let out = job
        .run(&["--full-refresh", "--summary-json", "summary.json"])
        .expect(1);
    assert!(
        out.stderr()
            .contains("--full-refresh reloads it from the primary"),
        "{}",
        out.stderr()
    );
    assert_eq!(held(&mut tls_root(Some(target))), before);

    // Rows whose keys are all NULL: no maximum, yet not an empty table.
    run_all(
        &mut tls_root(Some(target)),
        "ALTER TABLE items MODIFY updated_at DATETIME NULL; UPDATE items SET updated_at = NULL",
    );
    let before = held(&mut tls_root(Some(target)));
    run_saying(&job, 1, "its rows all have a NULL `updated_at`");
    assert_eq!(held(&mut tls_root(Some(target))), before);

    // An empty target has nothing to lose: --full-refresh loads the fallback's rows.
    run_all(&mut tls_root(Some(target)), "DELETE FROM items");
    let s = run_with(&job, &["--full-refresh"], 3);
    assert_eq!(
        (s["action"].as_str(), s["rows"].as_u64()),
        (Some("replaced"), Some(2)),
        "{s}"
    );
    assert_eq!(held(&mut tls_root(Some(target))).len(), 2);
}

#[test]
fn progress_knows_the_total_when_the_server_can_estimate_it() {
    let db = "inc_progress";
    fresh_db(db, ITEMS);
    let job = Job::new(&sqlite_config(db, "SELECT * FROM items", "items"));
    let err = job.run(&["--progress", "log", "-v"]).expect(0).stderr();
    assert!(err.contains("the server estimates"), "{err}");
    let grouped = Job::new(&sqlite_config(
        db,
        "SELECT name, COUNT(*) AS n FROM items GROUP BY name",
        "items",
    ));
    let err = grouped.run(&["--progress", "log", "-v"]).expect(0).stderr();
    assert!(err.contains("no row estimate"), "{err}");
}

#[test]
fn a_merge_killed_mid_way_leaves_the_sqlite_target_as_before() {
    let db = "inc_kill_sqlite";
    let (mut src, job) = items_into_sqlite(db, "");
    run(&job, 0);
    let path = job.path("data/out.db");
    let before = sqlite_rows(&path, "items", "id");
    // Enough new rows that the read is still under way when the link goes silent.
    run_all(&mut src, CHANGES);
    src.query_drop(
        "INSERT INTO items SELECT seq + 100, REPEAT('x', 20), seq, '2024-02-01' + INTERVAL seq SECOND \
         FROM seq_1_to_300000",
    )
    .unwrap();
    let proxy = Proxy::start(
        format!("127.0.0.1:{}", mysql_port()).parse().unwrap(),
        std::time::Duration::ZERO,
    );
    let cfg = std::fs::read_to_string(job.path("config.ini"))
        .unwrap()
        .replace(
            &format!("port = {}", mysql_port()),
            &format!("port = {}", proxy.port),
        )
        .replace(
            "password =\n",
            "password =\nssl_mode = disabled\nbatch_rows = 1000\n",
        );
    std::fs::write(job.path("config.ini"), cfg).unwrap();
    let mut child = job
        .cmd(&[])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wal = job.path("data/out.db-wal");
    wait_until("rows going into the file", || {
        std::fs::metadata(&wal).map_or(0, |m| m.len()) > 1 << 20
    });
    proxy.go_silent();
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(sqlite_rows(&path, "items", "id"), before);
    let c = rusqlite::Connection::open(&path).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    proxy.speak_again();
    let s = run(&job, 0);
    assert_eq!(s["action"], "merged", "{s}");
    assert_eq!(
        sqlite_rows(&path, "items", "id"),
        mysql_rows(&mut src, ORDERED)
    );
}

#[test]
fn a_target_without_the_key_gets_a_full_replace_that_creates_it() {
    let db = "inc_no_key";
    let mut src = fresh_db(db, ITEMS);
    let cfg = sqlite_config(db, "SELECT * FROM items", "items");
    let job = Job::new(&with_general(&cfg, "primary_key = none"));
    run(&job, 0);
    std::fs::write(job.path("config.ini"), with_general(&cfg, &merge(""))).unwrap();
    run_all(&mut src, CHANGES);
    rebuilt_then_merged(&job, &mut src);
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "items", "id"),
        mysql_rows(&mut src, ORDERED)
    );
}

#[test]
fn a_sqlite_target_with_a_partial_index_or_only_null_keys_is_handled() {
    let db = "inc_sqlite_odd";
    let (mut src, job) = items_into_sqlite(db, "");
    run(&job, 0);
    let path = job.path("data/out.db");
    let sqlite = |sql: &str| {
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(sql)
            .unwrap()
    };
    // A partial index covers only some rows: it does not make the maximum cheap, so the
    // key gets a whole one.
    let made: Vec<String> = {
        let c = rusqlite::Connection::open(&path).unwrap();
        let mut st = c
            .prepare("SELECT name FROM pragma_index_list('items') WHERE origin = 'c'")
            .unwrap();
        let names = st.query_map([], |r| r.get(0)).unwrap();
        names.map(Result::unwrap).collect()
    };
    assert!(!made.is_empty());
    for name in made {
        sqlite(&format!("DROP INDEX \"{name}\""));
    }
    sqlite("CREATE INDEX some_rows ON items (updated_at) WHERE id > 100");
    run_all(&mut src, CHANGES);
    assert_eq!(
        run_saying(&job, 0, "indexed `updated_at`")["action"],
        "merged"
    );

    // Rows whose keys are all NULL tell nothing of where to start: a full replace.
    sqlite(
        "CREATE TABLE nulls AS SELECT id, name, price, NULL AS updated_at FROM items; \
         DROP TABLE items; ALTER TABLE nulls RENAME TO items",
    );
    assert_eq!(
        run_saying(&job, 0, "the target's rows all have a NULL `updated_at`")["action"],
        "replaced"
    );
    assert_eq!(
        sqlite_rows(&path, "items", "id"),
        mysql_rows(&mut src, ORDERED)
    );
}

#[test]
fn a_full_refresh_does_not_read_the_targets_largest_key() {
    // A target whose largest key is slow to read (a view that takes a second a row, in place
    // of a large table without an index on the key): an incremental run gives up after
    // statement_timeout; --full-refresh does not need it, and goes on to the next check
    // (dbsync replaces tables, not views).
    let (db, target) = ("inc_refresh_slow", "inc_refresh_slow_t");
    let (_src, job) = items_into_azure(db, target);
    add_general(&job, "statement_timeout = 2\nretries = 0");
    let mut t = tls_root(None);
    t.query_drop(format!("CREATE DATABASE `{target}`")).unwrap();
    run_all(
        &mut t,
        &format!(
            "CREATE TABLE `{target}`.base (id INT NOT NULL PRIMARY KEY, name VARCHAR(20), \
             price DECIMAL(10,2), updated_at DATETIME(6) NOT NULL);
             INSERT INTO `{target}`.base SELECT id, name, price, '2023-01-01' FROM (SELECT 1 id, 'a' name, 1.0 price \
             UNION ALL SELECT 2, 'b', 2.0 UNION ALL SELECT 3, 'c', 3.0 UNION ALL SELECT 4, 'd', 4.0) r;
             CREATE VIEW `{target}`.items AS SELECT * FROM `{target}`.base WHERE SLEEP(1) = 0;"
        ),
    );
    run_saying(&job, 1, "reading the largest incremental_key");
    let out = job.run(&["--full-refresh"]).expect(1);
    assert!(
        out.stderr().contains("`items` is a view")
            && !out.stderr().contains("reading the largest incremental_key"),
        "{}",
        out.stderr()
    );
}
