//! `--verify` of a job (the shop schema of `scripts/seed_app.sh`: composite and text keys,
//! tables without a key), `--only`, rows without a key, a text key, and a source that
//! cannot be reached.

mod common;
use common::app::*;
use common::*;
use mysql::prelude::Queryable;

fn verdicts(s: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    s["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                t["verify"].clone(),
            )
        })
        .collect()
}

fn whole_schema(db: &str, target: Option<&str>) {
    if let Some(t) = target {
        drop_target_db(t);
    }
    let job = Job::new(&job_config(db, target, ""));
    job.run(&[]).expect(0);
    let out = job.run(&["--verify", "--summary-json", "-"]).expect(0);
    let s = summary_of(&out);
    let all = verdicts(&s);
    assert_eq!(all.len(), 28, "{s}");
    for (table, v) in &all {
        assert_eq!(v["equal"], true, "{table}: {v}");
    }
    // One row gone from one table: that table differs (exit 5), by its key.
    let delete = "DELETE FROM payment WHERE payment_id = 7";
    match target {
        Some(t) => tls_root(Some(t)).query_drop(delete).unwrap(),
        None => {
            rusqlite::Connection::open(job.path("data/out.db"))
                .unwrap()
                .execute_batch(delete)
                .unwrap();
        }
    }
    let s = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(5));
    assert_eq!(s["exit_code"], 5);
    for (table, v) in verdicts(&s) {
        let differs = table == "payment";
        assert_eq!(v["equal"], !differs, "{table}: {v}");
        if differs {
            assert_eq!(v["missing_keys"], serde_json::json!(["7"]), "{v}");
        }
        let own = s["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == table.as_str());
        let warned = own.unwrap()["warnings"]
            .to_string()
            .contains("verify: differs");
        assert_eq!(warned, differs, "{table}");
    }
    // --only the others: all equal.
    let s = summary_of(
        &job.run(&[
            "--verify",
            "--only",
            "rental,film_actor",
            "--summary-json",
            "-",
        ])
        .expect(0),
    );
    assert_eq!(verdicts(&s).len(), 2);
}

#[test]
fn a_whole_schema_verifies_equal_then_one_deleted_row_differs() {
    let db = "vf_app";
    seed(db, 2000);
    whole_schema(db, None);
    whole_schema(db, Some("vf_app_t"));
}

const PAIRS: &str = "CREATE TABLE a (id INT PRIMARY KEY, x VARCHAR(10));
CREATE TABLE b (id INT, y DECIMAL(8,3));
INSERT INTO a SELECT seq, CONCAT('x', seq) FROM seq_1_to_50;
INSERT INTO b SELECT seq % 20, seq / 7 FROM seq_1_to_60;";

/// A join has no key: the rows are compared as a multiset, and the log says so.
fn multiset(db: &str, azure: bool) {
    fresh_db(db, PAIRS);
    let query = "SELECT a.id, a.x, b.y FROM a JOIN b ON b.id = a.id";
    let cfg = match azure {
        true => {
            drop_target_db(db);
            azure_config(db, query, db, "ab", &verified("ca.pem"))
        }
        false => sqlite_config(db, query, "ab"),
    };
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    let out = job.run(&["--verify", "--summary-json", "-"]).expect(0);
    assert!(
        out.stderr().contains("multiset of row hashes"),
        "{}",
        out.stderr()
    );
    let s = summary_of(&out);
    assert_eq!(s["verify"]["by"], "row_hash", "{s}");
    root(Some(db))
        .query_drop("UPDATE b SET y = y + 0.001 WHERE id = 3 LIMIT 1")
        .unwrap();
    let s = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(5));
    let v = &s["verify"];
    assert_eq!(
        (v["missing"].as_u64(), v["extra"].as_u64()),
        (Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(v["source_rows"], v["target_rows"]);
}

#[test]
fn rows_without_a_key_are_a_multiset_in_sqlite() {
    multiset("vf_multiset_sqlite", false);
}

#[test]
fn rows_without_a_key_are_a_multiset_in_mysql() {
    multiset("vf_multiset_mysql", true);
}

/// A text key is chunked by a hash of the key on MySQL (its collation's order is not
/// SQLite's bytes'); a composite key the same.
#[test]
fn text_and_composite_keys_are_found_in_mysql() {
    let db = "vf_textkey";
    fresh_db(
        db,
        "CREATE TABLE t (code VARCHAR(20) COLLATE utf8mb4_general_ci, n INT, v TEXT, PRIMARY KEY (code, n));
         INSERT INTO t SELECT CONCAT('Code-', seq), seq % 3, REPEAT('v', seq) FROM seq_1_to_9000;",
    );
    drop_target_db(db);
    let job = Job::new(&azure_config(
        db,
        "SELECT * FROM t",
        db,
        "t",
        &verified("ca.pem"),
    ));
    job.run(&[]).expect(0);
    let s = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(0));
    // About 4096 rows a chunk (sized by the server's estimate of the rows).
    let chunks = s["verify"]["chunks"].as_u64().unwrap();
    assert!((2..=4).contains(&chunks), "{s}");
    tls_root(Some(db))
        .query_drop("UPDATE t SET v = 'changed' WHERE code = 'Code-4444'")
        .unwrap();
    let s = summary_of(&job.run(&["--verify", "--summary-json", "-"]).expect(5));
    assert_eq!(
        s["verify"]["changed_keys"],
        serde_json::json!(["Code-4444, 1"]),
        "{s}"
    );
    assert_eq!(s["verify"]["differing_chunks"].as_u64(), Some(1), "{s}");
}

#[test]
fn a_source_that_cannot_be_reached_is_exit_1() {
    let db = "vf_down";
    numbers(db, 10);
    let job = Job::new(&sqlite_config(db, "SELECT * FROM n", "n"));
    job.run(&[]).expect(0);
    std::fs::write(
        job.path("config.ini"),
        primary_down(&std::fs::read_to_string(job.path("config.ini")).unwrap()),
    )
    .unwrap();
    let out = job.run(&["--verify", "--summary-json", "-"]).expect(1);
    assert!(
        out.stderr().contains("verify: could not run"),
        "{}",
        out.stderr()
    );
}
