//! DECIMAL in SQLite: a number that compares as one up to 15 digits (`[local_db] decimal =
//! auto`), exact text beyond, as configured otherwise; existing targets keep their text
//! columns until a full refresh; the fallback gives the numbers back at their scale.

mod common;
use common::jobs::*;
use common::*;
use mysql::prelude::Queryable;

/// Amounts whose text order differs from their numeric order (9.99 > 11.99 as text).
const PAYMENTS: &str = "CREATE TABLE payment (id INT PRIMARY KEY, amount DECIMAL(5,2) NOT NULL,
        big DECIMAL(30,10), at DATETIME NOT NULL, KEY(at));
    INSERT INTO payment VALUES (1, 9.99, 12345678901234567890.0123456789, '2024-01-01'),
        (2, 11.99, NULL, '2024-01-01'), (3, 0.99, -1, '2024-01-01'), (4, 5.00, 0, '2024-01-01'),
        (5, 5.01, 0.0000000001, '2024-01-01');";

fn sqlite_value(job: &Job, sql: &str) -> String {
    rusqlite::Connection::open(job.path("data/out.db"))
        .unwrap()
        .query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0))
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Real(f) => f.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
}

fn mysql_value(c: &mut mysql::Conn, sql: &str) -> String {
    mysql_rows(c, sql)[0][0].clone().unwrap_or_default()
}

#[test]
fn decimals_compare_as_numbers_in_sqlite() {
    let db = "dec_auto";
    let mut src = fresh_db(db, PAYMENTS);
    let job = Job::new(&sqlite_config(db, "SELECT * FROM payment", "payment"));
    job.run(&[]).expect(0);
    assert_eq!(
        sqlite_value(&job, "SELECT max(amount) FROM payment"),
        "11.99"
    );
    for sql in [
        "SELECT count(*) FROM payment WHERE amount > 5",
        "SELECT count(*) FROM payment WHERE amount >= 5.00",
        "SELECT count(*) FROM payment WHERE amount = 5",
    ] {
        assert_eq!(sqlite_value(&job, sql), mysql_value(&mut src, sql), "{sql}");
    }
    // Every value prints back at its scale; a whole one is stored as an integer.
    let printed = |sql: &str| -> Vec<String> {
        rusqlite::Connection::open(job.path("data/out.db"))
            .unwrap()
            .prepare(sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let want: Vec<String> = mysql_rows(&mut src, "SELECT amount FROM payment ORDER BY id")
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    assert_eq!(
        printed("SELECT printf('%.2f', amount) FROM payment ORDER BY id"),
        want
    );
    assert_eq!(
        sqlite_value(&job, "SELECT typeof(amount) FROM payment WHERE id = 4"),
        "integer"
    );
    // Wider than 15 digits: exact text.
    assert_eq!(
        sqlite_value(&job, "SELECT big FROM payment WHERE id = 1"),
        "12345678901234567890.0123456789"
    );
    let plan = job.run(&["--dry-run"]).expect(0).stdout();
    assert!(
        plan.lines()
            .any(|l| l.contains("amount") && l.ends_with("-> DECIMAL(5,2)")),
        "{plan}"
    );
    assert!(
        plan.lines()
            .any(|l| l.contains("big") && l.ends_with("-> TEXT")),
        "{plan}"
    );
}

#[test]
fn decimal_text_keeps_todays_text_and_real_warns_of_lost_digits() {
    let db = "dec_modes";
    fresh_db(db, PAYMENTS);
    let job = Job::new(&sqlite_config(db, "SELECT * FROM payment", "payment"));
    add_local(&job, "decimal = text");
    job.run(&[]).expect(0);
    assert_eq!(
        sqlite_value(
            &job,
            "SELECT typeof(amount) || amount FROM payment WHERE id = 4"
        ),
        "text5.00"
    );
    add_local(&job, "decimal = real");
    let err = job.run(&[]).expect(0).stderr();
    assert!(
        err.contains("decimal = real") && err.contains("big") && err.contains("15 digits"),
        "{err}"
    );
    assert_eq!(
        sqlite_value(&job, "SELECT typeof(big) FROM payment WHERE id = 1"),
        "real"
    );
    add_local(&job, "decimal = exact");
    let err = job.run(&[]).expect(2).stderr();
    assert!(err.contains("auto, real or text"), "{err}");
}

/// Sets `[local_db]` line `line` (replacing an earlier `decimal = ...`).
fn add_local(job: &Job, line: &str) {
    let cfg = std::fs::read_to_string(job.path("config.ini")).unwrap();
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.starts_with("decimal = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let cfg = cfg.replacen("[local_db]\n", &format!("[local_db]\n{line}\n"), 1);
    std::fs::write(job.path("config.ini"), cfg).unwrap();
}

#[test]
fn an_incremental_target_keeps_its_text_decimals_until_a_full_refresh() {
    let db = "dec_kept";
    let mut src = fresh_db(db, PAYMENTS);
    let job = Job::new(&with_general(
        &sqlite_config(db, "SELECT * FROM payment", "payment"),
        "strategy = merge\nincremental_key = at",
    ));
    // Made by an earlier dbsync, which kept DECIMAL as text.
    add_local(&job, "decimal = text");
    job.run(&[]).expect(0);
    add_local(&job, "decimal = auto");
    src.query_drop("UPDATE payment SET amount = 7.50, at = '2024-01-02' WHERE id = 3")
        .unwrap();
    let s = run_saying(&job, 0, "stay exact text in the existing table");
    assert_eq!(s["action"], "merged", "{s}");
    assert_eq!(
        sqlite_value(
            &job,
            "SELECT typeof(amount) || amount FROM payment WHERE id = 3"
        ),
        "text7.50"
    );
    let s = run_with(&job, &["--full-refresh"], 0);
    assert_eq!(s["action"], "replaced", "{s}");
    assert_eq!(
        sqlite_value(
            &job,
            "SELECT typeof(amount) || amount FROM payment WHERE id = 3"
        ),
        "real7.5"
    );
    // From then on the merge adds numbers to a numeric column.
    src.query_drop("UPDATE payment SET amount = 8.25, at = '2024-01-03' WHERE id = 3")
        .unwrap();
    let out = job.run(&[]).expect(0).stderr();
    assert!(!out.contains("stay exact text"), "{out}");
    assert_eq!(
        sqlite_value(
            &job,
            "SELECT typeof(amount) || amount FROM payment WHERE id = 3"
        ),
        "real8.25"
    );
}

#[test]
fn the_fallback_gives_decimals_back_at_their_scale() {
    let target = "dec_fallback_t";
    let (job, _local) = fallback_to_azure(
        target,
        "payment",
        "CREATE TABLE payment (id INTEGER PRIMARY KEY, amount DECIMAL(5,2), big TEXT);
         INSERT INTO payment VALUES (1, 9.99, '12345678901234567890.0123456789'), (2, 5, NULL),
             (3, 0.1, '-1.0000000000'), (4, NULL, NULL);",
    );
    job.run(&[]).expect(3);
    let mut t = tls_root(Some(target));
    assert_eq!(
        mysql_rows(&mut t, "SELECT amount, big FROM payment ORDER BY id"),
        [
            [Some("9.99"), Some("12345678901234567890.0123456789")],
            [Some("5.00"), None],
            [Some("0.10"), Some("-1.0000000000")],
            [None, None]
        ]
        .map(|r| r.map(|v| v.map(String::from)))
    );
    assert_eq!(
        mysql_value(
            &mut t,
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() \
             AND TABLE_NAME = 'payment' AND COLUMN_NAME = 'amount'"
        ),
        "decimal(5,2)"
    );
}
