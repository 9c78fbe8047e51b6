//! A row that leaves the query's result (`WHERE status = 'active'`, and it became inactive)
//! is, to a merge under `deletes = apply`, a row the source no longer has: removed from the
//! target, on both targets. Under `keep` the target holds it as it was (the README says so).

mod common;
use common::app::summary_of;
use common::jobs::{either_config, either_count};
use common::*;
use mysql::prelude::Queryable;

const QUERY: &str = "SELECT id, status, updated_at FROM t WHERE status = 'active'";

fn source(db: &str) {
    let mut c = fresh_db(
        db,
        "CREATE TABLE t (id INT PRIMARY KEY, status VARCHAR(10) NOT NULL, \
         updated_at DATETIME(6) NOT NULL)",
    );
    c.query_drop(
        "INSERT INTO t SELECT seq, 'active', '2024-01-01' + INTERVAL seq SECOND \
         FROM seq_1_to_5000",
    )
    .unwrap();
}

fn config(db: &str, azure: bool, deletes: &str) -> String {
    let general = format!("strategy = merge\nincremental_key = updated_at\ndeletes = {deletes}");
    either_config(db, QUERY, azure, &general)
}

fn a_row_that_left_the_query(db: &str, azure: bool) {
    for (deletes, after) in [("keep", 5000), ("apply", 4999)] {
        source(db);
        let job = Job::new(&config(db, azure, deletes));
        job.run(&[]).expect(0);
        root(Some(db))
            .query_drop("UPDATE t SET status = 'inactive', updated_at = NOW(6) WHERE id = 1234")
            .unwrap();
        let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
        assert_eq!(
            either_count(&job, db, azure),
            after,
            "deletes = {deletes}: {s}"
        );
        if deletes == "apply" {
            assert_eq!(s["deleted"], 1, "{s}");
            let v = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
            assert_eq!(v["verify"]["equal"], true, "{v}");
        }
    }
}

#[test]
fn a_row_that_left_the_query_is_deleted_under_apply_in_sqlite() {
    a_row_that_left_the_query("ltq_sqlite", false);
}

#[test]
fn a_row_that_left_the_query_is_deleted_under_apply_in_mysql() {
    a_row_that_left_the_query("ltq_mysql", true);
}
