//! The query means what it means in the mysql client: the server's time zone, every form
//! of SELECT the client runs, no library warnings in the log, and partitioned reads only
//! for queries whose rows cannot change between runs.

mod common;
use common::*;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};

const EXIT_OK: i32 = 0;
const EXIT_FAILED: i32 = 1;

/// Root on the TLS server (time zone +02:00) as the mysql client connects: nothing set.
fn server_zone_root(db: &str) -> Conn {
    let opts = OptsBuilder::new()
        .socket(Some(tls_dir().join("mysqld.sock").display().to_string()))
        .user(Some("root"))
        .db_name(Some(db));
    Conn::new(opts).expect("the TLS MariaDB (scripts/test.sh starts it)")
}

/// A fresh database on the TLS server, filled by a UTC session, so TIMESTAMP literals
/// are UTC.
fn fresh_tls_db(db: &str, sql: &str) {
    let mut c = tls_root(None);
    c.query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    c.query_drop(format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4"))
        .unwrap();
    run_all(&mut tls_root(Some(db)), sql);
}

/// `[external_db]` on the TLS server as `dbsync`; the target is SQLite, or `[azure_mysql_db]`
/// database `target_db` on the same server.
fn tls_source_config(db: &str, target_db: Option<&str>, table: &str) -> String {
    let tls = format!(
        "port = {}\nuser = dbsync\npassword = {AZURE_PASSWORD}\n{}",
        tls_port(),
        verified("ca.pem")
    );
    let target = match target_db {
        Some(t) => format!(
            "[azure_mysql_db]\ntype = mysql\nhost = localhost\n{tls}\ndatabase = {t}\ntable_name = {table}\n"
        ),
        None => String::new(),
    };
    format!(
        "[general]\ndefault_target = {}\ntarget_argument_enabled = true\n\
         fallback_to_local_source_on_failure = false\n\n\
         [external_db]\ntype = mysql\nhost = localhost\n{tls}\ndatabase = {db}\n\
         query = SELECT 1 -- set by DBSYNC_EXTERNAL_DB_QUERY\n\n\
         [local_db]\ndb_path = data/out.db\ntable_name = {table}\n\n{target}",
        if target_db.is_some() {
            "azure"
        } else {
            "local_sqlite"
        }
    )
}

/// Runs the job with `query` as the environment gives it: verbatim, comments and all.
fn run_query(job: &Job, query: &str, args: &[&str]) -> Run {
    Run(job
        .cmd(args)
        .env("DBSYNC_EXTERNAL_DB_QUERY", query)
        .output()
        .unwrap())
}

/// Events on the TLS server: TIMESTAMPs written in UTC, DATETIMEs in the server's zone.
fn events(db: &str) {
    fresh_tls_db(
        db,
        "SET SESSION sql_mode = '';
         CREATE TABLE ev (id INT PRIMARY KEY, ts TIMESTAMP NULL, ts6 TIMESTAMP(6) NULL, dt DATETIME NULL);
         INSERT INTO ev VALUES
           (1, '2024-01-01 23:30:00', '2024-01-01 23:30:00.123456', NULL),
           (2, NULL, NULL, NULL),
           (3, 0, 0, NULL),
           (4, '2038-01-19 03:14:07', '1970-01-01 00:00:01.000001', NULL);",
    );
    // Half an hour and two and a half hours ago, by the server's clock.
    server_zone_root(db)
        .query_drop(
            "INSERT INTO ev VALUES (5, NULL, NULL, NOW() - INTERVAL 30 MINUTE),
                                   (6, NULL, NULL, NOW() - INTERVAL 150 MINUTE)",
        )
        .unwrap();
}

#[test]
fn the_query_runs_in_the_servers_time_zone() {
    let db = "dbsync_q_zone";
    events(db);
    let query = "SELECT id, DATE(ts) AS day, HOUR(ts6) AS h, CURDATE() AS today, dt FROM ev \
                 WHERE dt >= NOW() - INTERVAL 1 HOUR OR DATE(ts) = '2024-01-02'";
    let job = Job::new(&tls_source_config(db, None, "ev"));
    run_query(&job, query, &[]).expect(EXIT_OK);
    let want = mysql_rows(&mut server_zone_root(db), &format!("{query} ORDER BY id"));
    assert_eq!(want.len(), 2, "rows 1 and 5 in +02:00: {want:?}");
    assert_eq!(sqlite_rows(&job.path("data/out.db"), "ev", "id"), want);

    // TIMESTAMPs themselves arrive as UTC text, whatever the session's zone.
    let job = Job::new(&tls_source_config(db, None, "ev"));
    run_query(&job, "SELECT id, ts, ts6 FROM ev WHERE id <= 4", &[]).expect(EXIT_OK);
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "ev", "id"),
        vec![
            vec![
                s("1"),
                s("2024-01-01 23:30:00"),
                s("2024-01-01 23:30:00.123456")
            ],
            vec![s("2"), None, None],
            vec![
                s("3"),
                s("0000-00-00 00:00:00"),
                s("0000-00-00 00:00:00.000000")
            ],
            vec![
                s("4"),
                s("2038-01-19 03:14:07"),
                s("1970-01-01 00:00:01.000001")
            ],
        ]
    );
    // The zero timestamp is a zero date to the zero_dates policy.
    let cfg =
        tls_source_config(db, None, "ev").replace("[local_db]", "zero_dates = null\n\n[local_db]");
    let job = Job::new(&cfg);
    run_query(&job, "SELECT id, ts, ts6 FROM ev WHERE id = 3", &[]).expect(EXIT_OK);
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "ev", "id"),
        vec![vec![s("3"), None, None]]
    );
}

#[test]
fn timestamps_are_the_same_instant_in_a_mysql_target() {
    let db = "dbsync_q_zone_mysql";
    let target = "dbsync_q_zone_mysql_t";
    events(db);
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{target}`"))
        .unwrap();
    let job = Job::new(&tls_source_config(db, Some(target), "ev"));
    let query = "SELECT id, ts, ts6, DATE(ts) AS day FROM ev WHERE id <= 4";
    run_query(&job, query, &[]).expect(EXIT_OK);
    // Read back in UTC on both sides: the same instants.
    let got = mysql_rows(
        &mut tls_root(Some(target)),
        "SELECT id, ts, ts6, UNIX_TIMESTAMP(ts), UNIX_TIMESTAMP(ts6) FROM ev ORDER BY id",
    );
    let want = mysql_rows(
        &mut tls_root(Some(db)),
        "SELECT id, ts, ts6, UNIX_TIMESTAMP(ts), UNIX_TIMESTAMP(ts6) FROM ev WHERE id <= 4 ORDER BY id",
    );
    assert_eq!(got, want);
    assert_eq!(got[2][1].as_deref(), Some("0000-00-00 00:00:00"));
    // And the day as the mysql client sees it, in the server's zone.
    assert_eq!(
        mysql_rows(
            &mut tls_root(Some(target)),
            "SELECT id, day FROM ev ORDER BY id"
        ),
        mysql_rows(
            &mut server_zone_root(db),
            "SELECT id, DATE(ts) FROM ev WHERE id <= 4 ORDER BY id"
        )
    );
}

#[test]
fn every_select_the_mysql_client_runs_is_copied_as_it_is() {
    let db = "dbsync_q_forms";
    let mut c = fresh_db(
        db,
        "CREATE TABLE m (id INT PRIMARY KEY, d DATETIME NULL, note VARCHAR(40));
         INSERT INTO m VALUES (1, '2024-01-01 10:00:00', '-- not a comment'),
           (2, '2024-02-29 23:59:59', '# nor this'), (3, NULL, '/* nor */ this'),
           (4, '2000-01-01 00:00:00', 'it''s; \"fine\" `too`');",
    );
    let want = mysql_rows(&mut c, "SELECT id, d, note FROM m ORDER BY id");
    let mut queries: Vec<String> = [
        "SQL_NO_CACHE",
        "SQL_CACHE",
        "HIGH_PRIORITY",
        "STRAIGHT_JOIN",
        "SQL_CALC_FOUND_ROWS",
        "SQL_BUFFER_RESULT",
        "SQL_SMALL_RESULT",
        "SQL_BIG_RESULT",
        "DISTINCT",
        "DISTINCTROW",
        "ALL",
        "/*!40001 SQL_NO_CACHE */",
        "/*M!100000 HIGH_PRIORITY */",
        "DISTINCT SQL_NO_CACHE HIGH_PRIORITY SQL_BUFFER_RESULT SQL_CALC_FOUND_ROWS",
    ]
    .iter()
    .map(|m| format!("SELECT {m} id, d, note FROM m -- note"))
    .collect();
    queries.extend(
        [
            "SELECT * FROM m -- note",
            "SELECT * FROM m # note",
            "SELECT * FROM m /* note */",
            "SELECT * FROM m\n-- note",
            "SELECT * FROM m\n# note\n",
            "/* lead */ SELECT /* a */ id, -- b\n d, # c\n note FROM m /* d */ WHERE note <> '-- x' -- e",
            "SELECT * FROM m;",
            "SELECT * FROM m ; -- done",
            "SELECT * FROM m -- done;",
            "SELECT * FROM m WHERE note <> 'x\\' -- y' # a quote escaped by a backslash",
            "WITH c AS (SELECT * FROM m) SELECT SQL_NO_CACHE * FROM c -- cte",
            "WITH RECURSIVE n AS (SELECT 1 AS i UNION ALL SELECT i + 1 FROM n WHERE i < 4) \
             SELECT m.* FROM n JOIN m ON m.id = n.i",
            "SELECT HIGH_PRIORITY * FROM m WHERE id <= 2 UNION SELECT * FROM m WHERE id > 2 # union",
            "(SELECT SQL_NO_CACHE * FROM m WHERE id <= 2) UNION ALL (SELECT * FROM m WHERE id > 2) -- both",
            "SELECT * FROM (SELECT * FROM m) AS `dbsync_src` -- our own alias",
        ]
        .iter()
        .map(|q| q.to_string()),
    );
    for query in &queries {
        let job = Job::new(&sqlite_config(db, "SELECT 1", "m"));
        let run = run_query(&job, query, &[]);
        assert_eq!(run.code(), EXIT_OK, "{query}\n{}", run.stderr());
        assert_eq!(
            sqlite_rows(&job.path("data/out.db"), "m", "id"),
            want,
            "{query}"
        );
    }
}

#[test]
fn library_warnings_stay_out_of_the_log() {
    let db = "dbsync_q_warnings";
    fresh_db(db, "CREATE TABLE w (id INT);");
    // SHOW's DATETIME columns need the wrap, which a SHOW cannot take. connectorx's
    // metadata fallback used to parse it and warn; its warnings must never reach the log.
    let job = Job::new(&sqlite_config(db, "SHOW TABLE STATUS", "w"));
    let run = job.run(&[]).expect(EXIT_FAILED);
    let err = run.stderr();
    assert!(err.contains("dbsync: error:"), "{err}");
    for leak in ["manually compose query string", "switch to limit 0"] {
        assert!(!err.contains(leak), "{leak} in\n{err}");
    }
}

#[test]
fn partitioned_reads_refuse_queries_that_may_change_between_runs() {
    let db = "dbsync_q_partitions";
    let mut c = fresh_db(
        db,
        "CREATE TABLE p (k INT, d DATETIME, v VARCHAR(20));
         INSERT INTO p VALUES (1, '2024-01-01 00:00:00', 'LIMIT 1'), (2, NULL, 'NOW()'),
           (3, '2030-01-01 00:00:00', 'c'), (40, NULL, 'd');",
    );
    let cfg = sqlite_config(db, "SELECT 1", "p").replace(
        "[local_db]",
        "partition_column = k\npartitions = 3\n\n[local_db]",
    );
    for (query, token) in [
        ("SELECT * FROM p ORDER BY k LIMIT 2", "LIMIT"),
        ("SELECT k, RAND() AS r FROM p", "RAND()"),
        ("SELECT * FROM p WHERE d < NOW()", "NOW()"),
        ("SELECT k, UUID() AS u FROM p", "UUID()"),
        (
            "SELECT * FROM p WHERE d < CURRENT_TIMESTAMP -- until now",
            "CURRENT_TIMESTAMP",
        ),
    ] {
        let job = Job::new(&cfg);
        let run = run_query(&job, query, &[]).expect(EXIT_FAILED);
        let err = run.stderr();
        assert!(
            err.contains("partition_column = k")
                && err.contains(&format!("uses {token},"))
                && err.contains("remove partitions"),
            "{query}:\n{err}"
        );
        assert!(!job.path("data/out.db").exists(), "{query}");
    }
    // The same words in strings, comments and names are no reason to refuse.
    let query = "SELECT p.k, p.d, v FROM p WHERE v <> 'RAND()' -- no LIMIT here\n# nor NOW()";
    let job = Job::new(&cfg);
    run_query(&job, query, &[]).expect(EXIT_OK);
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "p", "k"),
        mysql_rows(
            &mut c,
            "SELECT k, d, v FROM p WHERE v <> 'RAND()' ORDER BY k"
        )
    );
}
