//! A merge tells a changed value from an unchanged one exactly: a FLOAT that changes in its
//! seventh digit (a cast to text shows six) in a row the merge reads again (its key at the
//! target's largest) is updated in MySQL. SQLite holds a FLOAT as MySQL shows it (six
//! digits), so there the two values are one.

mod common;
use common::app::summary_of;
use common::jobs::either_config;
use common::*;
use mysql::prelude::Queryable;

fn merge_sees(db: &str, azure: bool) {
    let mut c = fresh_db(db, "CREATE TABLE t (id INT PRIMARY KEY, f FLOAT NOT NULL)");
    c.query_drop("INSERT INTO t VALUES (1, 5), (2, 1234567)")
        .unwrap();
    let cfg = either_config(
        db,
        "SELECT * FROM t",
        azure,
        "strategy = merge\nincremental_key = id",
    );
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    c.query_drop("UPDATE t SET f = 1234568 WHERE id = 2")
        .unwrap();
    let s = summary_of(&job.run(&["--summary-json", "-"]).expect(0));
    let (updated, want) = if azure {
        (1, "1234568")
    } else {
        (0, "1234570")
    };
    assert_eq!(s["updated"], updated, "{s}");
    let f = match azure {
        true => mysql_rows(
            &mut tls_root(Some(db)),
            "SELECT f + 0e0 FROM t WHERE id = 2",
        ),
        false => sqlite_rows(&job.path("data/out.db"), "t", "id")[1..2]
            .iter()
            .map(|r| vec![r[1].clone()])
            .collect(),
    };
    let got = f[0][0].clone().unwrap_or_default();
    assert!(got.starts_with(want), "{got}");
}

#[test]
fn a_float_changed_in_its_seventh_digit_is_merged_in_mysql() {
    merge_sees("mx_float_mysql", true);
}

#[test]
fn a_float_changed_in_its_seventh_digit_is_one_value_in_sqlite() {
    merge_sees("mx_float_sqlite", false);
}
