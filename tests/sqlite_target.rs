//! MySQL → SQLite end to end, through the built binary, against the real MariaDB.

mod common;
use common::*;
use mysql::prelude::Queryable;

const EXIT_OK: i32 = 0;
const EXIT_FAILED: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_FALLBACK: i32 = 3;

#[test]
fn copies_the_fixture_exactly_with_the_original_config() {
    let db = "dbsync_t_fixture";
    let mut c = fixture_db(db, 3000);
    let job = Job::new(&sqlite_config(
        db,
        "SELECT * FROM vehicles_stock",
        "vehicles_stock",
    ));
    let run = job.run(&["--summary-json", "summary.json"]).expect(EXIT_OK);
    assert!(
        run.stderr().contains("replaced with 3000 rows"),
        "{}",
        run.stderr()
    );

    // The DECIMAL(12,2) price is a number in SQLite (`[local_db] decimal = auto`).
    let want = mysql_rows(
        &mut c,
        "SELECT id, marca, modelo, color, tipo_transmision, kms, pvp_api + 0e0, \
         fecha_matriculacion, vin, disponible, notas FROM vehicles_stock ORDER BY id",
    );
    let got = sqlite_rows(&job.path("data/out.db"), "vehicles_stock", "id");
    assert_eq!(got.len(), 3000);
    assert_eq!(got, want);

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(job.path("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["source"], "primary");
    assert_eq!(summary["target"], "local_sqlite");
    assert_eq!(summary["table"], "vehicles_stock");
    assert_eq!(summary["rows"], 3000);
    assert_eq!(summary["exit_code"], 0);
    assert!(summary["error"].is_null());
    assert!(summary["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn integer_text_and_temporal_edges_arrive_exactly() {
    let db = "dbsync_t_edges";
    let mut c = fresh_db(
        db,
        "CREATE TABLE e (
            k INT PRIMARY KEY,
            i INT, iu INT UNSIGNED, b BIGINT, bu BIGINT UNSIGNED,
            v VARCHAR(50), t TEXT, d DOUBLE, dec18 DECIMAL(18,4), dec0 DECIMAL(10,0),
            dt DATE, dtm DATETIME, flag TINYINT(1));
         INSERT INTO e VALUES
          (1, -2147483648, 0, -9223372036854775808, 0, '', '', -1.5e300, -99999999999999.9999, -9999999999,
             '1000-01-01', '1000-01-01 00:00:00', 0),
          (2, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
             '🚗 emoji 𝄞 ñ', 'tab\there\nnewline \"q\" \\\\ back', 2.2250738585072014e-308, 99999999999999.9999, 9999999999,
             '9999-12-31', '9999-12-31 23:59:59', 1),
          (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
          (4, 0, 4000000000, 9007199254740993, 9007199254740993, '0012', '1.10', 0.1, 0.0001, 0,
             '2024-02-29', '2024-02-29 12:34:56', 1);",
    );
    let job = Job::new(&sqlite_config(db, "SELECT * FROM e", "e"));
    job.run(&[]).expect(EXIT_OK);
    let want = mysql_rows(&mut c, "SELECT * FROM e ORDER BY k");
    assert_eq!(want.len(), 4);
    let mut got = sqlite_rows(&job.path("data/out.db"), "e", "k");
    // DOUBLE: compare the numbers, as MySQL and Rust spell exponents differently.
    for (g, w) in got.iter_mut().zip(&want) {
        let (gd, wd) = (
            g[7].as_deref().map(|s| s.parse::<f64>().unwrap()),
            w[7].as_deref().map(|s| s.parse::<f64>().unwrap()),
        );
        assert_eq!(gd, wd);
        g[7] = w[7].clone();
    }
    assert_eq!(got, want);
    // SQLite kept the text exactly: not '12', not 1.1.
    let conn = rusqlite::Connection::open(job.path("data/out.db")).unwrap();
    let (v, t): (String, String) = conn
        .query_row("SELECT v, t FROM e WHERE k = 4", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((v.as_str(), t.as_str()), ("0012", "1.10"));
    let typ: String = conn
        .query_row("SELECT typeof(bu) FROM e WHERE k = 2", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        typ, "text",
        "BIGINT UNSIGNED above 2^63 must stay exact text"
    );
    let typ: String = conn
        .query_row("SELECT typeof(bu) FROM e WHERE k = 4", [], |r| r.get(0))
        .unwrap();
    assert_eq!(typ, "integer");
}

#[test]
fn empty_result_creates_the_table_with_its_columns() {
    let db = "dbsync_t_empty";
    fresh_db(
        db,
        "CREATE TABLE e (id INT, name VARCHAR(10), price DECIMAL(9,2));",
    );
    let job = Job::new(&sqlite_config(db, "SELECT * FROM e", "e"));
    job.run(&[]).expect(EXIT_OK);
    let conn = rusqlite::Connection::open(job.path("data/out.db")).unwrap();
    let cols: Vec<(String, String)> = conn
        .prepare("SELECT name, type FROM pragma_table_info('e')")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected = [
        ("id", "INTEGER"),
        ("name", "TEXT"),
        ("price", "DECIMAL(9,2)"),
    ];
    assert_eq!(cols, expected.map(|(a, b)| (a.to_string(), b.to_string())));
    assert_eq!(sqlite_count(&job.path("data/out.db"), "e"), 0);
}

#[test]
fn second_run_replaces_the_rows() {
    let db = "dbsync_t_replace";
    let mut c = fresh_db(
        db,
        "CREATE TABLE r (id INT); INSERT INTO r VALUES (1),(2),(3);",
    );
    let job = Job::new(&sqlite_config(db, "SELECT * FROM r", "r"));
    job.run(&[]).expect(EXIT_OK);
    c.query_drop("DELETE FROM r WHERE id < 3; INSERT INTO r VALUES (7)")
        .unwrap();
    job.run(&[]).expect(EXIT_OK);
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "r", "id"),
        vec![vec![Some("3".into())], vec![Some("7".into())]]
    );
}

#[test]
fn hostile_table_name_is_quoted_never_executed() {
    let db = "dbsync_t_hostile";
    fresh_db(db, "CREATE TABLE s (id INT); INSERT INTO s VALUES (1);");
    let name = "we\"ird `name`; DROP TABLE keepme; --";
    let job = Job::new(&sqlite_config(db, "SELECT * FROM s", name));
    std::fs::create_dir_all(job.path("data")).unwrap();
    let conn = rusqlite::Connection::open(job.path("data/out.db")).unwrap();
    conn.execute_batch("CREATE TABLE keepme (x); INSERT INTO keepme VALUES (42);")
        .unwrap();
    drop(conn);
    job.run(&[]).expect(EXIT_OK);
    assert_eq!(sqlite_count(&job.path("data/out.db"), name), 1);
    assert_eq!(sqlite_count(&job.path("data/out.db"), "keepme"), 1);
}

#[test]
fn sql_error_shows_the_server_message_and_keeps_the_target() {
    let db = "dbsync_t_sqlerr";
    fresh_db(
        db,
        "CREATE TABLE s (id INT); INSERT INTO s VALUES (1), (2);",
    );
    let job = Job::new(&sqlite_config(db, "SELECT * FROM s", "s"));
    job.run(&[]).expect(EXIT_OK);
    std::fs::write(
        job.path("config.ini"),
        sqlite_config(db, "SELEC * FROM s", "s"),
    )
    .unwrap();
    let run = job.run(&[]).expect(EXIT_FAILED);
    assert!(
        run.stderr()
            .contains("You have an error in your SQL syntax"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("[external_db] query"),
        "{}",
        run.stderr()
    );
    assert_eq!(sqlite_count(&job.path("data/out.db"), "s"), 2);
}

#[test]
fn unreachable_source_without_fallback_fails_and_keeps_the_target() {
    let db = "dbsync_t_nofallback";
    fresh_db(db, "CREATE TABLE s (id INT); INSERT INTO s VALUES (1);");
    let job = Job::new(&sqlite_config(db, "SELECT * FROM s", "s"));
    job.run(&[]).expect(EXIT_OK);
    let port = closed_port();
    let cfg = sqlite_config(db, "SELECT * FROM s", "s")
        .replace(
            &format!("port = {}", mysql_port()),
            &format!("port = {port}"),
        )
        .replace(
            "fallback_to_local_source_on_failure = true",
            "fallback_to_local_source_on_failure = false",
        );
    std::fs::write(job.path("config.ini"), cfg).unwrap();
    let run = job.run(&["--summary-json", "-"]).expect(EXIT_FAILED);
    assert!(
        run.stderr()
            .contains(&format!("cannot reach root@127.0.0.1:{port}")),
        "{}",
        run.stderr()
    );
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(summary["exit_code"], 1);
    assert!(summary["error"].as_str().unwrap().contains("cannot reach"));
    assert_eq!(sqlite_count(&job.path("data/out.db"), "s"), 1);
}

#[test]
fn fallback_onto_the_same_table_keeps_it_and_says_so() {
    let db = "dbsync_t_sametable";
    fresh_db(
        db,
        "CREATE TABLE s (id INT); INSERT INTO s VALUES (1), (2);",
    );
    let job = Job::new(&sqlite_config(db, "SELECT * FROM s", "s"));
    job.run(&[]).expect(EXIT_OK);
    let port = closed_port();
    let cfg = sqlite_config(db, "SELECT * FROM s", "s").replace(
        &format!("port = {}", mysql_port()),
        &format!("port = {port}"),
    );
    std::fs::write(job.path("config.ini"), cfg).unwrap();
    let run = job.run(&["--summary-json", "-"]).expect(EXIT_FALLBACK);
    assert!(
        run.stderr().contains("kept as it is (2 rows)"),
        "{}",
        run.stderr()
    );
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(summary["source"], "fallback");
    assert_eq!(summary["action"], "kept");
    assert_eq!(summary["exit_code"], 3);
    assert_eq!(sqlite_count(&job.path("data/out.db"), "s"), 2);
}

#[test]
fn fallback_table_missing_is_a_failure_naming_it() {
    let cfg = sqlite_config("nowhere", "SELECT 1", "never_made").replace(
        &format!("port = {}", mysql_port()),
        &format!("port = {}", closed_port()),
    );
    let job = Job::new(&cfg);
    let run = job.run(&[]).expect(EXIT_FAILED);
    assert!(
        run.stderr().contains("fallback table never_made"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("db_path"), "{}", run.stderr());
}

#[test]
fn authentication_failure_does_not_fall_back() {
    let db = "dbsync_t_auth";
    fresh_db(db, "CREATE TABLE s (id INT); INSERT INTO s VALUES (1);");
    let job = Job::new(&sqlite_config(db, "SELECT * FROM s", "s"));
    job.run(&[]).expect(EXIT_OK);
    let cfg = sqlite_config(db, "SELECT * FROM s", "s")
        .replace("user = root", "user = no_such_user_dbsync");
    std::fs::write(job.path("config.ini"), cfg).unwrap();
    let run = job.run(&[]).expect(EXIT_FAILED);
    assert!(
        run.stderr()
            .contains("refused the login ([external_db] user / password)"),
        "{}",
        run.stderr()
    );
}

#[test]
fn sqlite_path_not_writable_fails_naming_it() {
    let db = "dbsync_t_unwritable";
    fresh_db(db, "CREATE TABLE s (id INT);");
    let job = Job::new(
        &sqlite_config(db, "SELECT * FROM s", "s").replace("data/out.db", "blocker/out.db"),
    );
    std::fs::write(job.path("blocker"), "a file where a directory should be").unwrap();
    let run = job.run(&[]).expect(EXIT_FAILED);
    assert!(
        run.stderr().contains("blocker/out.db") && run.stderr().contains("db_path"),
        "{}",
        run.stderr()
    );
}

#[test]
fn config_errors_exit_2_naming_the_fix() {
    let good = sqlite_config("dbsync_t_cfg", "SELECT 1", "t");
    let cases: Vec<(String, Vec<&str>, &str)> = vec![
        (
            good.replace("[local_db]", "[elsewhere]"),
            vec![],
            "section [elsewhere], which dbsync does not read",
        ),
        (
            good.replace("query = SELECT 1", ""),
            vec![],
            "key `query` in section [external_db]",
        ),
        (
            good.replace("type = mysql", "type = oracle"),
            vec![],
            "[external_db] type = \"oracle\"",
        ),
        (
            good.replace(&format!("port = {}", mysql_port()), "port = 33o6"),
            vec![],
            "port = \"33o6\"",
        ),
        (
            good.replace(
                "target_argument_enabled = true",
                "target_argument_enabled = false",
            ),
            vec!["--target", "azure"],
            "target_argument_enabled",
        ),
        (good.clone(), vec!["--target", "s3"], "invalid value 's3'"),
    ];
    for (cfg, args, needle) in cases {
        let job = Job::new(&cfg);
        let run = job.run(&args).expect(EXIT_USAGE);
        assert!(
            run.stderr().contains(needle),
            "want {needle:?} in:\n{}",
            run.stderr()
        );
        assert!(
            !job.path("data").exists(),
            "nothing may be created on a config error"
        );
    }
    let job = Job::new("");
    let run = job.run(&["--config", "missing.ini"]).expect(EXIT_USAGE);
    assert!(
        run.stderr().contains("cannot read config file missing.ini"),
        "{}",
        run.stderr()
    );
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let db = "dbsync_t_dryrun";
    fresh_db(db, "CREATE TABLE s (id INT UNSIGNED, price DECIMAL(12,2), at DATETIME); INSERT INTO s VALUES (1, 2.5, NOW());");
    let job = Job::new(&sqlite_config(db, "SELECT * FROM s", "s"));
    let run = job.run(&["--dry-run"]).expect(EXIT_OK);
    let out = run.stdout();
    assert!(out.contains("source:   MySQL root@127.0.0.1"), "{out}");
    assert!(
        out.contains("fallback: SQLite data/out.db table s"),
        "{out}"
    );
    assert!(
        out.contains("target:   SQLite data/out.db table s"),
        "{out}"
    );
    assert!(
        out.contains("DECIMAL(12,2)") && out.contains("-> TEXT"),
        "{out}"
    );
    assert!(!job.path("data").exists());
}

#[test]
fn environment_overrides_config_and_password_never_shows() {
    let db = "dbsync_t_env";
    let mut c = fresh_db(db, "CREATE TABLE s (id INT); INSERT INTO s VALUES (5);");
    let pass = "Env;#=\"\\'Pass9";
    c.query_drop("DROP USER IF EXISTS 'dbsync_env'@'%'")
        .unwrap();
    let quoted = pass.replace('\\', "\\\\").replace('\'', "\\'");
    c.query_drop(format!(
        "CREATE USER 'dbsync_env'@'%' IDENTIFIED BY '{quoted}'"
    ))
    .unwrap();
    c.query_drop(format!("GRANT SELECT ON `{db}`.* TO 'dbsync_env'@'%'"))
        .unwrap();
    let job = Job::new(
        &sqlite_config(db, "SELECT * FROM s", "s").replace("user = root", "user = dbsync_env"),
    );
    let run = job.run(&[]);
    assert_eq!(
        run.code(),
        EXIT_FAILED,
        "no password in the file: the login fails"
    );
    let run = Run(job
        .cmd(&["-vv", "--summary-json", "-"])
        .env("DBSYNC_EXTERNAL_DB_PASSWORD", pass)
        .output()
        .unwrap())
    .expect(EXIT_OK);
    assert!(!run.stderr().contains(pass) && !run.stdout().contains(pass));
    // A failing run with the password set still never prints it.
    let run = Run(job
        .cmd(&["-vv"])
        .env("DBSYNC_EXTERNAL_DB_PASSWORD", pass)
        .env("DBSYNC_EXTERNAL_DB_QUERY", "SELECT * FROM nope")
        .output()
        .unwrap())
    .expect(EXIT_FAILED);
    assert!(run.stderr().contains("doesn't exist"), "{}", run.stderr());
    assert!(!run.stderr().contains(pass));
    assert_eq!(sqlite_count(&job.path("data/out.db"), "s"), 1);
}

#[test]
fn sigkill_mid_load_leaves_the_old_table_intact() {
    let db = "dbsync_t_sigkill";
    fixture_db(db, 400_000);
    let job = Job::new(&sqlite_config(
        db,
        "SELECT * FROM vehicles_stock WHERE id <= 1000",
        "vehicles_stock",
    ));
    job.run(&[]).expect(EXIT_OK);
    let before = sqlite_rows(&job.path("data/out.db"), "vehicles_stock", "id");
    std::fs::write(
        job.path("config.ini"),
        sqlite_config(db, "SELECT * FROM vehicles_stock", "vehicles_stock"),
    )
    .unwrap();

    let mut child = job.cmd(&["-q"]).spawn().unwrap();
    // The write-ahead log grows once rows are being written into the new table.
    let wal = job.path("data/out.db-wal");
    let t0 = std::time::Instant::now();
    while std::fs::metadata(&wal).map_or(0, |m| m.len()) < 1 << 20 {
        assert!(t0.elapsed().as_secs() < 60, "the load never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "dbsync ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none(),
        "dbsync finished before the kill: make the table larger"
    );

    let conn = rusqlite::Connection::open(job.path("data/out.db")).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "vehicles_stock", "id"),
        before
    );
    // And the next run succeeds.
    job.run(&["-q"]).expect(EXIT_OK);
    assert_eq!(
        sqlite_count(&job.path("data/out.db"), "vehicles_stock"),
        400_000
    );
}

#[test]
fn help_explains_every_flag() {
    let job = Job::new("");
    let run = job.run(&["--help"]).expect(EXIT_OK);
    for flag in [
        "--config",
        "--target",
        "--dry-run",
        "--summary-json",
        "--verbose",
        "--quiet",
        "Exit codes",
    ] {
        assert!(
            run.stdout().contains(flag),
            "{flag} missing from --help:\n{}",
            run.stdout()
        );
    }
}

#[test]
fn partitioned_reads_keep_every_row_with_nulls_and_gaps() {
    let db = "dbsync_t_partitions";
    let mut c = fresh_db(
        db,
        "CREATE TABLE p (k INT, v VARCHAR(10));
         INSERT INTO p VALUES (-5, 'neg'), (1, 'a'), (2, 'b'), (1000, 'gap'), (1001, 'c'), (NULL, 'null1'),
           (999999, 'far'), (NULL, 'null2'), (7, NULL);",
    );
    let want = mysql_rows(&mut c, "SELECT * FROM p ORDER BY v");
    for partitions in [2, 3, 7, 16] {
        let cfg = sqlite_config(db, "SELECT * FROM p", "p").replace(
            "[local_db]",
            &format!("partition_column = k\npartitions = {partitions}\n\n[local_db]"),
        );
        let job = Job::new(&cfg);
        job.run(&[]).expect(EXIT_OK);
        assert_eq!(
            sqlite_rows(&job.path("data/out.db"), "p", "v"),
            want,
            "partitions = {partitions}"
        );
    }
    // A column that cannot be split is refused, naming it; so is a missing one.
    for (column, needle) in [("v", "only integer columns"), ("nope", "no such column")] {
        let cfg = sqlite_config(db, "SELECT * FROM p", "p").replace(
            "[local_db]",
            &format!("partition_column = {column}\npartitions = 2\n\n[local_db]"),
        );
        let run = Job::new(&cfg).run(&[]).expect(EXIT_FAILED);
        assert!(
            run.stderr()
                .contains(&format!("partition_column = {column}"))
                && run.stderr().contains(needle),
            "{}",
            run.stderr()
        );
    }
    let cfg = sqlite_config(db, "SELECT * FROM p", "p")
        .replace("[local_db]", "partitions = 2\n\n[local_db]");
    let run = Job::new(&cfg).run(&[]).expect(EXIT_USAGE);
    assert!(
        run.stderr().contains("partition_column"),
        "{}",
        run.stderr()
    );
}

#[test]
fn progress_line_only_on_a_terminal() {
    let db = "dbsync_t_progress";
    fixture_db(db, 200_000);
    let job = Job::new(&sqlite_config(
        db,
        "SELECT * FROM vehicles_stock",
        "vehicles_stock",
    ));
    let run = job.run(&[]).expect(EXIT_OK);
    assert!(
        !run.stderr().contains('\r'),
        "no progress line when stderr is not a terminal"
    );
    // `script` gives the run a terminal; its output is what the terminal showed.
    let bin = env!("CARGO_BIN_EXE_dbsync");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{bin} --config config.ini"), "/dev/null"])
        .current_dir(job.dir.path())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains(" rows/s") && shown.contains("%") && shown.contains("ETA"),
        "{shown}"
    );
    let quiet = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{bin} --config config.ini -q"),
            "/dev/null",
        ])
        .current_dir(job.dir.path())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&quiet.stdout).contains("rows/s"));
}

#[test]
fn a_source_that_accepts_but_never_answers_is_unreachable() {
    let db = "dbsync_t_silent";
    fresh_db(db, "CREATE TABLE s (id INT); INSERT INTO s VALUES (1);");
    let job = Job::new(&sqlite_config(db, "SELECT * FROM s", "s"));
    job.run(&[]).expect(EXIT_OK);
    // The kernel completes the TCP handshake for a listener that never accepts.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let cfg = sqlite_config(db, "SELECT * FROM s", "s").replace(
        &format!("port = {}", mysql_port()),
        &format!("port = {port}\nconnect_timeout = 1"),
    );
    std::fs::write(job.path("config.ini"), cfg).unwrap();
    let t0 = std::time::Instant::now();
    let run = job.run(&[]).expect(EXIT_FALLBACK);
    assert!(t0.elapsed().as_secs() < 30, "took {:?}", t0.elapsed());
    assert!(
        run.stderr().contains("primary source unreachable"),
        "{}",
        run.stderr()
    );
    drop(silent);
}

#[test]
fn duplicate_result_columns_are_refused_naming_the_fix() {
    let db = "dbsync_t_dupcols";
    fresh_db(db, "CREATE TABLE a (id INT); CREATE TABLE b (id INT);");
    let job = Job::new(&sqlite_config(
        db,
        "SELECT a.id, b.id FROM a JOIN b ON a.id = b.id",
        "j",
    ));
    let run = job.run(&[]).expect(EXIT_FAILED);
    assert!(
        run.stderr().contains("column `id` more than once") && run.stderr().contains("alias"),
        "{}",
        run.stderr()
    );
    assert!(!job.path("data/out.db").exists());
}
