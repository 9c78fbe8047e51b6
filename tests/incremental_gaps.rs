//! Incremental runs that used to exit 0 or 3 with a target that differs from the source, or
//! stall without a word: each is refused, copied right, or warned of, on both targets.

mod common;
use common::jobs::*;
use common::*;
use mysql::prelude::Queryable;

/// A job from `query` in source database `db` into SQLite, and one into the TLS server's
/// database `target` (dropped first), both with these `[general]` lines.
fn both(db: &str, target: &str, query: &str, table: &str, general: &str) -> [Job; 2] {
    drop_target_db(target);
    let sqlite = sqlite_config(db, query, table);
    let azure = azure_config(db, query, target, table, &verified("ca.pem"));
    [sqlite, azure].map(|cfg| private(Job::new(&with_general(&cfg, general))))
}

/// The job with its config readable by its owner only, so the run warns of nothing else.
fn private(job: Job) -> Job {
    use std::os::unix::fs::PermissionsExt;
    let perms = std::fs::Permissions::from_mode(0o600);
    std::fs::set_permissions(job.path("config.ini"), perms).unwrap();
    job
}

fn sqlite_table(job: &Job, table: &str, order_by: &str) -> Vec<Vec<Option<String>>> {
    sqlite_rows(&job.path("data/out.db"), table, order_by)
}

#[test]
fn a_key_that_may_be_null_is_refused_whatever_its_type() {
    let db = "gap_null_int";
    let mut src = fresh_db(
        db,
        "CREATE TABLE r (id INT PRIMARY KEY, v VARCHAR(9), k INT NULL, y YEAR NULL, KEY(k));
         INSERT INTO r VALUES (1, 'a', 1, 2001), (2, 'b', 2, 2002);",
    );
    for (strategy, key) in [("append", "k"), ("merge", "k"), ("merge", "y")] {
        let general = format!("strategy = {strategy}\nincremental_key = {key}");
        for job in both(db, "gap_null_int_t", "SELECT * FROM r", "r", &general) {
            let err = job.run(&[]).expect(2).stderr();
            assert!(
                err.contains(&format!("`{key}` may be NULL")) && err.contains("incremental_key"),
                "{err}"
            );
        }
    }
    // With the NULLs made impossible, the run goes on.
    src.query_drop("ALTER TABLE r MODIFY k INT NOT NULL")
        .unwrap();
    for job in both(
        db,
        "gap_null_int_t",
        "SELECT * FROM r",
        "r",
        "strategy = append\nincremental_key = k",
    ) {
        job.run(&[]).expect(0);
    }
}

#[test]
fn append_by_a_year_is_refused_as_append_by_a_date_is() {
    let db = "gap_year";
    fresh_db(
        db,
        "CREATE TABLE y (id INT PRIMARY KEY, made YEAR NOT NULL, KEY(made));
         INSERT INTO y VALUES (1, 2020), (2, 2021);",
    );
    let cfg = |strategy: &str| {
        Job::new(&with_general(
            &sqlite_config(db, "SELECT * FROM y", "y"),
            &format!("strategy = {strategy}\nincremental_key = made"),
        ))
    };
    let err = cfg("append").run(&[]).expect(2).stderr();
    assert!(
        err.contains("merge for a YEAR key") && err.contains("every row of a year"),
        "{err}"
    );
    cfg("merge").run(&[]).expect(0);
}

#[test]
fn a_lookback_of_the_wrong_kind_names_the_value_given() {
    let db = "gap_lookback";
    fresh_db(
        db,
        "CREATE TABLE t (id INT PRIMARY KEY, at DATETIME NOT NULL);
         INSERT INTO t VALUES (1, '2024-01-01');",
    );
    for (key, lookback) in [("at", "500"), ("id", "2h")] {
        let err = Job::new(&with_general(
            &sqlite_config(db, "SELECT * FROM t", "t"),
            &format!(
                "strategy = merge\nincremental_key = {key}\nincremental_lookback = {lookback}"
            ),
        ))
        .run(&[])
        .expect(2)
        .stderr();
        assert!(
            err.contains(&format!("incremental_lookback = \"{lookback}\"")),
            "{err}"
        );
    }
}

/// `UPDATE` at the source that changes only trailing spaces of a `_bin` (PAD SPACE) key.
const PADDED: &str = "CREATE TABLE b (code VARCHAR(10) COLLATE utf8mb4_bin PRIMARY KEY, \
    v VARCHAR(10), at DATETIME NOT NULL, KEY(at));
    INSERT INTO b VALUES ('abc', 'x', '2024-01-01'), ('zzz', 'y', '2024-01-01');";

#[test]
fn a_key_that_differs_only_in_trailing_spaces_stays_one_row_on_both_targets() {
    let (db, target) = ("gap_pad", "gap_pad_t");
    let mut src = fresh_db(db, PADDED);
    let jobs = both(
        db,
        target,
        "SELECT * FROM b",
        "b",
        "strategy = merge\nincremental_key = at",
    );
    for job in &jobs {
        assert_eq!(run(job, 0)["action"], "replaced");
    }
    src.query_drop("UPDATE b SET code = 'abc ', v = 'x2', at = '2024-01-02' WHERE code = 'abc'")
        .unwrap();
    let want = mysql_rows(&mut src, "SELECT code, v, at FROM b ORDER BY code");
    assert_eq!(want.len(), 2);
    for job in &jobs {
        assert_eq!(run(job, 0)["action"], "merged");
    }
    assert_eq!(sqlite_table(&jobs[0], "b", "code"), want);
    let held = mysql_rows(
        &mut tls_root(Some(target)),
        "SELECT code, v, at FROM b ORDER BY code",
    );
    assert_eq!(held, want);
}

#[test]
fn a_sqlite_target_whose_key_compares_trailing_spaces_is_rebuilt_once() {
    // Made before dbsync declared such keys COLLATE RTRIM (or by another tool).
    let db = "gap_pad_old";
    let mut src = fresh_db(db, PADDED);
    let job = Job::new(&with_general(
        &sqlite_config(db, "SELECT * FROM b", "b"),
        "strategy = merge\nincremental_key = at",
    ));
    std::fs::create_dir_all(job.path("data")).unwrap();
    rusqlite::Connection::open(job.path("data/out.db"))
        .unwrap()
        .execute_batch(
            "CREATE TABLE b (code TEXT, v TEXT, at TEXT, PRIMARY KEY (code));
             INSERT INTO b VALUES ('abc', 'x', '2024-01-01 00:00:00'), ('zzz', 'y', '2024-01-01 00:00:00');",
        )
        .unwrap();
    src.query_drop("UPDATE b SET code = 'abc ', at = '2024-01-02' WHERE code = 'abc'")
        .unwrap();
    let s = run_saying(&job, 0, "compares its key column `code` by BINARY");
    assert_eq!(s["action"], "replaced", "{s}");
    src.query_drop("UPDATE b SET code = 'abc', v = 'x3', at = '2024-01-03' WHERE code = 'abc '")
        .unwrap();
    assert_eq!(run(&job, 0)["action"], "merged");
    assert_eq!(
        sqlite_table(&job, "b", "code"),
        mysql_rows(&mut src, "SELECT code, v, at FROM b ORDER BY code")
    );
}

#[test]
fn a_fallback_merge_rereads_the_rows_at_the_largest_key() {
    // The target was loaded from the primary; since then a row at its largest key changed
    // and a newer one arrived, and the fallback file has both.
    let target = "gap_fallback_t";
    let (job, _local) = fallback_to_azure(
        target,
        "items",
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT);
         INSERT INTO items VALUES (1, 'older', '2024-01-10 00:00:00'),
             (2, 'TWO', '2024-01-20 00:00:00'), (3, 'three', '2024-01-25 00:00:00');",
    );
    let mut t = tls_root(None);
    run_all(
        &mut t,
        &format!(
            "CREATE DATABASE `{target}`;
             CREATE TABLE `{target}`.items (id INT PRIMARY KEY, name VARCHAR(10), updated_at DATETIME NOT NULL);
             INSERT INTO `{target}`.items VALUES (1, 'one', '2024-01-15 00:00:00'), (2, 'two', '2024-01-20 00:00:00');"
        ),
    );
    add_general(
        &job,
        "strategy = merge\nincremental_key = updated_at\nincremental_lookback = 60d",
    );
    let s = run(&job, 3);
    assert_eq!(
        (
            s["action"].as_str(),
            s["rows"].as_u64(),
            s["updated"].as_u64()
        ),
        (Some("merged"), Some(2), Some(1)),
        "{s}"
    );
    // Row 1 is older in the file than in the target: the lookback does not reach it.
    assert_eq!(
        mysql_rows(
            &mut tls_root(Some(target)),
            "SELECT id, name FROM items ORDER BY id"
        ),
        [
            [Some("1".to_string()), Some("one".to_string())],
            [Some("2".to_string()), Some("TWO".to_string())],
            [Some("3".to_string()), Some("three".to_string())]
        ]
    );
}

#[test]
fn a_largest_key_from_the_future_warns_in_the_log_the_summary_and_the_dry_run() {
    let (db, target) = ("gap_future", "gap_future_t");
    let mut src = fresh_db(
        db,
        "CREATE TABLE e (id INT PRIMARY KEY, at DATETIME NOT NULL, KEY(at));
         INSERT INTO e VALUES (1, '2024-01-01'), (2, '2099-01-01');",
    );
    let jobs = both(
        db,
        target,
        "SELECT * FROM e",
        "e",
        "strategy = merge\nincremental_key = at",
    );
    for job in &jobs {
        let s = run(job, 0);
        assert!(!s["warnings"].to_string().contains("ahead"), "{s}");
    }
    src.query_drop("INSERT INTO e VALUES (3, NOW())").unwrap();
    for job in &jobs {
        let s = run_saying(job, 0, "lies ahead of the source's clock");
        let warnings = s["warnings"].to_string();
        assert!(
            warnings.contains("`at`, '2099-01-01 00:00:00.000000', lies ahead")
                && warnings.contains("--full-refresh"),
            "{s}"
        );
        assert_eq!(s["inserted"], 0, "row 3 is not read: {s}");
        let plan = job.run(&["--dry-run"]).expect(0).stdout();
        assert!(
            plan.lines()
                .any(|l| l.starts_with("warning:") && l.contains("ahead of the source's clock")),
            "{plan}"
        );
    }
}

#[test]
fn an_append_whose_largest_id_left_the_source_warns() {
    let (db, target) = ("gap_stray", "gap_stray_t");
    let mut src = fresh_db(
        db,
        "CREATE TABLE n (id INT PRIMARY KEY, label VARCHAR(10));
         INSERT INTO n VALUES (1, 'a'), (2, 'b'), (1000000, 'stray');",
    );
    let jobs = both(
        db,
        target,
        "SELECT * FROM n",
        "n",
        "strategy = append\nincremental_key = id",
    );
    for job in &jobs {
        run(job, 0);
    }
    // Nothing wrong while the largest id is still there.
    src.query_drop("INSERT INTO n VALUES (1000001, 'c')")
        .unwrap();
    for job in &jobs {
        let s = run(job, 0);
        assert_eq!(s["inserted"], 1, "{s}");
        assert!(!s["warnings"].to_string().contains("no longer"), "{s}");
    }
    run_all(
        &mut src,
        "DELETE FROM n WHERE id >= 1000000; INSERT INTO n VALUES (3, 'd')",
    );
    for job in &jobs {
        let s = run_saying(job, 0, "`id`, 1000001, is no longer in the source");
        assert_eq!(s["inserted"], 0, "{s}");
        assert!(s["warnings"].to_string().contains("--full-refresh"), "{s}");
    }
}

#[test]
fn a_query_that_repeats_a_key_is_named_as_such_on_both_targets() {
    let (db, target) = ("gap_fanout", "gap_fanout_t");
    let mut src = fresh_db(
        db,
        "CREATE TABLE p (id INT PRIMARY KEY, name VARCHAR(10), at DATETIME NOT NULL);
         CREATE TABLE c (id INT PRIMARY KEY, pid INT NOT NULL, note VARCHAR(10));
         INSERT INTO p VALUES (1, 'one', '2024-01-01'), (2, 'two', '2024-01-02');
         INSERT INTO c VALUES (1, 1, 'a'), (2, 2, 'b');",
    );
    let query = "SELECT p.id, p.name, p.at, c.note FROM p JOIN c ON c.pid = p.id";
    let general = "strategy = merge\nincremental_key = at\nprimary_key = id";
    let [sqlite, azure] = both(db, target, query, "pc", general);
    let inserting = Job::new(&with_general(
        &azure_config(
            db,
            query,
            "gap_fanout_i",
            "pc",
            &format!("{}\nload_method = insert", verified("ca.pem")),
        ),
        general,
    ));
    drop_target_db("gap_fanout_i");
    let jobs = [sqlite, azure, inserting];
    for job in &jobs {
        run(job, 0);
    }
    // A second child of the newest parent: the JOIN returns its id twice.
    src.query_drop("INSERT INTO c VALUES (3, 2, 'c')").unwrap();
    for job in &jobs {
        let err = job.run(&[]).expect(1).stderr();
        assert!(
            err.contains("returns the same primary key (id) more than once")
                && err.contains("[general] primary_key"),
            "{err}"
        );
    }
    assert_eq!(
        sqlite_table(&jobs[0], "pc", "id"),
        [
            [
                Some("1"),
                Some("one"),
                Some("2024-01-01 00:00:00"),
                Some("a")
            ],
            [
                Some("2"),
                Some("two"),
                Some("2024-01-02 00:00:00"),
                Some("b")
            ]
        ]
        .map(|r| r.map(|v| v.map(String::from)))
    );
}

#[test]
fn rows_keyed_by_a_zero_date_are_warned_of() {
    let (db, target) = ("gap_zero", "gap_zero_t");
    let mut src = fresh_db(
        db,
        "SET SESSION sql_mode = '';
         CREATE TABLE z (id INT PRIMARY KEY, at DATETIME NOT NULL, KEY(at));
         INSERT INTO z VALUES (1, '2024-01-01'), (2, '0000-00-00 00:00:00');",
    );
    let jobs = both(
        db,
        target,
        "SELECT * FROM z",
        "z",
        "strategy = merge\nincremental_key = at",
    );
    for job in &jobs {
        run(job, 0);
        let s = run_saying(job, 0, "is a zero date (0000-00-00), which sorts below");
        assert!(s["warnings"].to_string().contains("COALESCE"), "{s}");
    }
    src.query_drop("UPDATE z SET at = '2024-01-02' WHERE id = 2")
        .unwrap();
    for job in &jobs {
        let s = run(job, 0);
        assert!(!s["warnings"].to_string().contains("zero date"), "{s}");
    }
}

#[test]
fn a_query_with_its_own_start_and_limit_is_not_warned_of() {
    // Catching up in chunks: the placeholder's WHERE and LIMIT leave rows out at any start,
    // so the source's rows are not asked about.
    let db = "gap_chunks";
    numbers(db, 5);
    let query = "SELECT * FROM n WHERE id > {incremental_value} ORDER BY id LIMIT 2";
    let [sqlite, _] = both(
        db,
        "gap_chunks_t",
        query,
        "n",
        "strategy = append\nincremental_key = id",
    );
    for rows in [2, 4, 5, 5] {
        let s = run(&sqlite, 0);
        assert!(!s["warnings"].to_string().contains("no longer"), "{s}");
        assert_eq!(sqlite_count(&sqlite.path("data/out.db"), "n"), rows);
    }
}
