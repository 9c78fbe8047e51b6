//! `[general] verify = after`: every load verified right after, in the same summary; the
//! fallback's tables are not (`"skipped": "fallback"`).

mod common;
use common::app::*;
use common::jobs::{add_general, with_general};
use common::*;

#[test]
fn a_load_is_verified_right_after() {
    let db = "vf_after_one";
    numbers(db, 3000);
    let cfg = with_general(&sqlite_config(db, "SELECT * FROM n", "n"), "verify = after");
    let job = Job::new(&cfg);
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    assert_eq!(s["action"], "replaced", "{s}");
    assert_eq!(s["verify"]["equal"], true, "{s}");
    assert_eq!(s["verify"]["source_rows"], 3000, "{s}");
    assert_eq!(
        (&s["source_rows"], &s["target_rows"]),
        (&3000.into(), &3000.into()),
        "{s}"
    );
}

#[test]
fn each_table_of_a_snapshot_job_is_verified_after_the_swap() {
    let (db, target) = ("vf_after_job", "vf_after_job_t");
    seed(db, 1000);
    drop_target_db(target);
    let job = Job::new(&job_config(db, Some(target), "verify = after"));
    let s = summary_of(
        &job.run(&["--only", "payment,rental,film_actor", "--summary-json", "-"])
            .expect(0),
    );
    let tables = s["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 3);
    for t in tables {
        assert_eq!(t["verify"]["equal"], true, "{t}");
    }
}

#[test]
fn the_fallback_is_not_verified_and_says_so() {
    let (job, _local) = fallback_to_azure(
        "vf_after_fallback",
        "t",
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a');",
    );
    add_general(&job, "verify = after");
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(3));
    assert_eq!(
        s["verify"],
        serde_json::json!({"skipped": "fallback"}),
        "{s}"
    );
}

#[test]
fn verify_takes_off_or_after() {
    let job = Job::new(&with_general(
        &sqlite_config("vf_none", "SELECT 1", "t"),
        "verify = sometimes",
    ));
    let out = job.run(&[]).expect(2);
    assert!(out.stderr().contains("off or after"), "{}", out.stderr());
}

/// Rows written at the source after the load carry an incremental key above the target's
/// largest: counted apart (`newer`), not as differences; a change that does not move the
/// key is a difference.
fn newer_rows_are_told_apart(db: &str, azure: bool) {
    let mut src = fresh_db(
        db,
        "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20), updated_at DATETIME(6) NOT NULL);
         INSERT INTO t SELECT seq, CONCAT('v', seq), '2024-01-01' + INTERVAL seq SECOND
         FROM seq_1_to_5000;",
    );
    let cfg = match azure {
        true => {
            drop_target_db(db);
            azure_config(db, "SELECT * FROM t", db, "t", &verified("ca.pem"))
        }
        false => sqlite_config(db, "SELECT * FROM t", "t"),
    };
    let general = "strategy = merge\nincremental_key = updated_at\nverify = after";
    let job = Job::new(&with_general(&cfg, general));
    job.run(&[]).expect(0);
    run_all(
        &mut src,
        "INSERT INTO t VALUES (9001, 'new', NOW(6));
         UPDATE t SET v = 'moved', updated_at = NOW(6) WHERE id = 5;",
    );
    let s = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
    let v = &s["verify"];
    assert_eq!(v["newer"], 2, "{v}");
    assert_eq!(v["newer_keys"], serde_json::json!(["5", "9001"]), "{v}");
    assert_eq!(v["equal"], true, "{v}");
    run_all(&mut src, "UPDATE t SET v = 'silent' WHERE id = 6;");
    let s = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(5));
    assert_eq!(s["verify"]["changed_keys"], serde_json::json!(["6"]), "{s}");
}

#[test]
fn newer_rows_are_told_apart_in_sqlite() {
    newer_rows_are_told_apart("vf_newer_sqlite", false);
}

#[test]
fn newer_rows_are_told_apart_in_mysql() {
    newer_rows_are_told_apart("vf_newer_mysql", true);
}
