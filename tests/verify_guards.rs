//! What verify and `deletes = apply` must never do: empty a target because the source
//! answered with nothing, delete by a `rowid` column that hides SQLite's rowid, or call an
//! emptied target equal because every source row looks newer than its (absent) largest key.

mod common;
use common::app::summary_of;
use common::jobs::{either_config, either_count};
use common::*;
use mysql::prelude::Queryable;

const MERGE: &str = "strategy = merge\nincremental_key = updated_at\ndeletes = apply";

fn config(db: &str, azure: bool, general: &str) -> String {
    either_config(db, "SELECT * FROM t", azure, general)
}

fn source(db: &str) -> mysql::Conn {
    let mut c = fresh_db(
        db,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(9), updated_at DATETIME(6) NOT NULL)",
    );
    c.query_drop(
        "INSERT INTO t SELECT seq, 'v', '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_3000",
    )
    .unwrap();
    c
}

fn an_emptied_source(db: &str, azure: bool) {
    let mut c = source(db);
    let job = Job::new(&config(db, azure, MERGE));
    job.run(&[]).expect(0);
    c.query_drop("DELETE FROM t").unwrap();
    let out = job.run(&[]).expect(1);
    assert!(out.stderr().contains("allow_empty"), "{}", out.stderr());
    assert_eq!(either_count(&job, db, azure), 3000, "the target is kept");
    // Allowed, it is not refused as a shrink either: as a replace that reads no rows.
    let general = format!("{MERGE}\nallow_empty = true\nmax_shrink_percent = 20");
    let cfg = config(db, azure, &general);
    std::fs::write(job.path("config.ini"), cfg).unwrap();
    if azure {
        // config() dropped the target database: load it again, then empty the source.
        source(db);
        job.run(&[]).expect(0);
        root(Some(db)).query_drop("DELETE FROM t").unwrap();
    }
    job.run(&[]).expect(0);
    assert_eq!(either_count(&job, db, azure), 0);
}

#[test]
fn an_emptied_source_does_not_empty_the_target_unless_allowed_in_sqlite() {
    an_emptied_source("vg_empty_sqlite", false);
}

#[test]
fn an_emptied_source_does_not_empty_the_target_unless_allowed_in_mysql() {
    an_emptied_source("vg_empty_mysql", true);
}

#[test]
fn a_column_named_rowid_does_not_steer_sqlite_deletes() {
    let db = "vg_rowid";
    let mut c = fresh_db(
        db,
        "CREATE TABLE t (id INT PRIMARY KEY, `rowid` INT, updated_at DATETIME(6) NOT NULL)",
    );
    c.query_drop(
        "INSERT INTO t VALUES (1, 7, '2024-01-01'), (2, 7, '2024-01-02'), (3, 1, '2024-01-03')",
    )
    .unwrap();
    let job = Job::new(&config(db, false, MERGE));
    job.run(&[]).expect(0);
    c.query_drop("DELETE FROM t WHERE id = 1").unwrap();
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    assert_eq!(s["deleted"], 1, "{s}");
    let ids: Vec<_> = sqlite_rows(&job.path("data/out.db"), "t", "id")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    assert_eq!(ids, ["2", "3"]);
}

fn an_emptied_target(db: &str, azure: bool) {
    source(db);
    let job = Job::new(&config(
        db,
        azure,
        "strategy = merge\nincremental_key = updated_at",
    ));
    job.run(&[]).expect(0);
    match azure {
        true => tls_root(Some(db)).query_drop("DELETE FROM t").unwrap(),
        false => {
            let f = rusqlite::Connection::open(job.path("data/out.db")).unwrap();
            f.execute("DELETE FROM t", []).unwrap();
        }
    }
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(5));
    assert_eq!(v["verify"]["equal"], false, "{v}");
}

#[test]
fn an_emptied_incremental_target_differs_in_sqlite() {
    an_emptied_target("vg_gone_sqlite", false);
}

#[test]
fn an_emptied_incremental_target_differs_in_mysql() {
    an_emptied_target("vg_gone_mysql", true);
}

fn extreme_keys(db: &str, azure: bool) {
    let mut c = fresh_db(db, "CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(9))");
    c.query_drop(
        "INSERT INTO t VALUES (-9223372036854775808, 'min'), (-1, 'a'), (0, 'b'), \
         (1, 'c'), (9223372036854775807, 'max')",
    )
    .unwrap();
    c.query_drop("INSERT INTO t SELECT seq * 1000003, 'n' FROM seq_2_to_6000")
        .unwrap();
    let job = Job::new(&config(db, azure, ""));
    job.run(&[]).expect(0);
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
    assert_eq!(v["verify"]["equal"], true, "{v}");
    c.query_drop("UPDATE t SET v = 'moved' WHERE id = -9223372036854775808")
        .unwrap();
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(5));
    assert_eq!(v["verify"]["changed"], 1, "{v}");
}

#[test]
fn keys_at_both_ends_of_bigint_verify_in_mysql() {
    extreme_keys("vg_ends_mysql", true);
}

#[test]
fn keys_at_both_ends_of_bigint_verify_in_sqlite() {
    extreme_keys("vg_ends_sqlite", false);
}

/// A table keyed by `ty`, 6,000 rows a second (or a day) apart.
fn temporal_source(db: &str, ty: &str, step: &str) -> mysql::Conn {
    let mut c = fresh_db(
        db,
        &format!("CREATE TABLE t (at {ty} NOT NULL PRIMARY KEY, v VARCHAR(9), updated_at DATETIME(6) NOT NULL)"),
    );
    let base = match ty {
        "DATE" => "DATE'2024-01-01'",
        _ => "TIMESTAMP'2024-01-01 10:00:00.25'",
    };
    c.query_drop(format!(
        "INSERT INTO t SELECT {base} + INTERVAL seq {step}, 'v', \
         '2024-01-01' + INTERVAL seq SECOND FROM seq_1_to_6000"
    ))
    .unwrap();
    c
}

/// A temporal key with a zero date among its values: equal right after the load, then a
/// key moved and the zero date's row changed are found, in chunks shown as spans of the
/// key (`shown`) and the zero dates' own.
fn temporal_keys(db: &str, ty: &str, step: &str, changed: &str, shown: &str) {
    let mut c = temporal_source(db, ty, step);
    // A zero date among the keys (the source allows it; the copy keeps it).
    c.query_drop("SET SESSION sql_mode = ''").unwrap();
    c.query_drop("INSERT INTO t VALUES (0, 'zero', '2024-01-01')")
        .unwrap();
    let job = Job::new(&config(db, true, ""));
    job.run(&[]).expect(0);
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
    assert_eq!(v["verify"]["equal"], true, "{v}");
    c.query_drop(format!("UPDATE t SET at = {changed} WHERE v = 'v' LIMIT 1"))
        .unwrap();
    c.query_drop("UPDATE t SET v = 'zer0' WHERE v = 'zero'")
        .unwrap();
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(5));
    let f = &v["verify"];
    assert_eq!(
        (
            f["missing"].as_u64(),
            f["extra"].as_u64(),
            f["changed"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{v}"
    );
    let ranges = f["ranges"].to_string();
    let zero = match ty.starts_with("TIMESTAMP") {
        true => "at zero timestamps",
        false => "at zero or partial dates",
    };
    assert!(ranges.contains(zero), "{v}");
    assert!(ranges.contains(shown), "{v}");
}

#[test]
fn a_datetime6_key_one_microsecond_off_is_found_in_mysql() {
    temporal_keys(
        "vg_key_dt",
        "DATETIME(6)",
        "SECOND",
        "at + INTERVAL 1 MICROSECOND",
        "at 2024-01-01 ",
    );
}

#[test]
fn a_timestamp_key_is_compared_by_its_instant_in_mysql() {
    temporal_keys(
        "vg_key_ts",
        "TIMESTAMP(3)",
        "SECOND",
        "at + INTERVAL 1001000 MICROSECOND",
        "at 2024-01-01 ",
    );
}

#[test]
fn a_date_key_moved_past_the_targets_last_is_found_in_mysql() {
    temporal_keys(
        "vg_key_date",
        "DATE",
        "DAY",
        "at + INTERVAL 10000 DAY",
        "at 20",
    );
}

#[test]
fn a_merge_deletes_by_a_datetime_key_in_mysql() {
    let db = "vg_range_del";
    let mut c = temporal_source(db, "DATETIME(6)", "SECOND");
    // A zero and a partial date among the keys, which have no position of their own.
    c.query_drop("SET SESSION sql_mode = ''").unwrap();
    c.query_drop(
        "INSERT INTO t VALUES (0, 'zero', '2024-01-01'), ('2024-05-00', 'part', '2024-01-01')",
    )
    .unwrap();
    let job = Job::new(&config(db, true, MERGE));
    job.run(&[]).expect(0);
    c.query_drop(
        "DELETE FROM t WHERE updated_at IN ('2024-01-01 00:00:07', '2024-01-01 01:00:00')",
    )
    .unwrap();
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    assert_eq!(s["deleted"], 2, "{s}");
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
    assert_eq!(v["verify"]["equal"], true, "{v}");
    assert_eq!(either_count(&job, db, true), 6000);
    c.query_drop("DELETE FROM t WHERE v = 'part'").unwrap();
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    assert_eq!(s["deleted"], 1, "{s}");
    let held = mysql_rows(&mut tls_root(Some(db)), "SELECT v FROM t WHERE v <> 'v'");
    assert_eq!(held, vec![vec![Some("zero".to_string())]]);
}

#[test]
fn a_table_named_in_another_case_is_the_same_sqlite_table() {
    let db = "vg_case";
    source(db);
    let job = Job::new(&config(db, false, ""));
    job.run(&[]).expect(0);
    // SQLite compares table names without case, as the copy does: `T` is the table `t`.
    let cfg = config(db, false, "").replace("table_name = t\n", "table_name = T\n");
    std::fs::write(job.path("config.ini"), cfg).unwrap();
    let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
    assert_eq!(v["verify"]["equal"], true, "{v}");
}
