//! MySQL → "Azure" (the TLS-only MariaDB that scripts/test.sh starts), through the binary.

mod common;
use common::*;
use mysql::prelude::Queryable;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Tests that change a global of the TLS server hold this for writing; the rest for reading.
static SERVER_GLOBALS: RwLock<()> = RwLock::new(());

fn target_rows(db: &str, query: &str) -> Vec<Vec<Option<String>>> {
    mysql_rows(&mut tls_root(Some(db)), query)
}

#[test]
fn copies_the_fixture_over_verified_tls_with_a_ca_bundle() {
    let _g = SERVER_GLOBALS.read().unwrap();
    let db = "dbsync_a_fixture";
    let mut src = fixture_db(db, 5000);
    drop_target_db(db);
    let job = Job::new(&azure_config(
        db,
        "SELECT * FROM vehicles_stock",
        db,
        "vehicles_stock",
        &verified("bundle.pem"),
    ));
    let run = job.run(&["--summary-json", "-"]).expect(0);
    assert!(!run.stderr().contains("not verified"), "{}", run.stderr());
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(
        (summary["target"].as_str(), summary["rows"].as_u64()),
        (Some("azure"), Some(5000))
    );
    let want = mysql_rows(&mut src, "SELECT * FROM vehicles_stock ORDER BY id");
    assert_eq!(
        target_rows(db, "SELECT * FROM vehicles_stock ORDER BY id"),
        want
    );
    // The DDL keeps the source's types.
    let ddl: (String, String) = tls_root(Some(db))
        .query_first("SHOW CREATE TABLE vehicles_stock")
        .unwrap()
        .unwrap();
    for piece in [
        "`pvp_api` decimal(12,2)",
        "`id` int(10) unsigned NOT NULL",
        "`vin` char(17)",
        "`fecha_matriculacion` datetime",
        "`disponible` tinyint(1) NOT NULL",
    ] {
        assert!(ddl.1.contains(piece), "{piece} missing in\n{}", ddl.1);
    }
    // Nothing left behind.
    let left: Vec<String> = tls_root(Some(db)).query("SHOW TABLES").unwrap();
    assert_eq!(left, vec!["vehicles_stock".to_string()]);
}

#[test]
fn every_ssl_mode_succeeds_or_refuses_as_mysql_does() {
    let _g = SERVER_GLOBALS.read().unwrap();
    let db = "dbsync_a_modes";
    fresh_db(
        db,
        "CREATE TABLE m (id INT); INSERT INTO m VALUES (1), (2);",
    );
    drop_target_db(db);
    let ok: &[(&str, &str)] = &[
        ("", "not verified"), // no ssl_mode: required, as the Python tool did
        ("ssl_mode = preferred", "not verified"),
        ("ssl_mode = REQUIRED", "not verified"),
        ("ssl_mode = require", "not verified"),
        (
            &format!("ssl_mode = verify-ca\nssl_ca = {}", cert("ca.pem")),
            "",
        ),
        (
            &format!(
                "ssl_mode = VERIFY_IDENTITY\nssl_ca = {}",
                cert("bundle.pem")
            ),
            "",
        ),
    ];
    for (extra, warning) in ok {
        let job = Job::new(&azure_config(db, "SELECT * FROM m", db, "m", extra));
        let run = job.run(&[]).expect(0);
        assert_eq!(
            run.stderr().contains("not verified"),
            !warning.is_empty(),
            "{extra}: {}",
            run.stderr()
        );
        assert_eq!(
            target_rows(db, "SELECT count(*) FROM m"),
            vec![vec![Some("2".into())]]
        );
    }
    let refused: &[(String, &str)] = &[
        (
            "ssl_mode = disabled".into(),
            "refuses every plaintext login",
        ),
        (
            format!("ssl_mode = verify_ca\nssl_ca = {}", cert("other-ca.pem")),
            "does not chain to ssl_ca",
        ),
    ];
    for (extra, needle) in refused {
        let job = Job::new(&azure_config(db, "SELECT * FROM m", db, "m", extra));
        let run = job.run(&[]).expect(1);
        assert!(run.stderr().contains(needle), "{extra}: {}", run.stderr());
    }
    // Host name not in the certificate (it names localhost and 127.0.0.1 only).
    let cfg = azure_config(db, "SELECT * FROM m", db, "m", &verified("ca.pem"))
        .replace("host = localhost", "host = 127.0.0.2");
    let run = Job::new(&cfg).run(&[]).expect(1);
    assert!(
        run.stderr().contains("TLS with dbsync@127.0.0.2"),
        "{}",
        run.stderr()
    );
    // The same address under verify_ca is fine: the chain is checked, the name is not.
    let cfg = cfg.replace("verify_identity", "verify_ca");
    Job::new(&cfg).run(&[]).expect(0);
}

#[test]
fn tls_refusal_never_falls_back() {
    let _g = SERVER_GLOBALS.read().unwrap();
    // The *source* is the TLS server here, reached with the wrong CA; a fallback table exists.
    let job = Job::new(&format!(
        "[general]\ndefault_target = local_sqlite\nfallback_to_local_source_on_failure = true\n\
         [external_db]\nhost = localhost\nport = {}\nuser = dbsync\npassword = {AZURE_PASSWORD}\ndatabase = mysql\n\
         query = SELECT 1 AS one\nssl_mode = verify_ca\nssl_ca = {}\n\
         [local_db]\ndb_path = local.db\ntable_name = t\n",
        tls_port(),
        cert("other-ca.pem")
    ));
    rusqlite::Connection::open(job.path("local.db"))
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let run = job.run(&[]).expect(1);
    assert!(
        run.stderr().contains("TLS with dbsync@localhost"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("fallback"), "{}", run.stderr());
}

#[test]
fn client_certificate_user() {
    let _g = SERVER_GLOBALS.read().unwrap();
    let db = "dbsync_a_x509";
    fresh_db(db, "CREATE TABLE x (id INT); INSERT INTO x VALUES (7);");
    drop_target_db(db);
    let base = azure_config(db, "SELECT * FROM x", db, "x", &verified("ca.pem"))
        .replace("user = dbsync\n", "user = dbsync_x509\n")
        .replace(&format!("password = {AZURE_PASSWORD}"), "password =");
    let run = Job::new(&base).run(&[]).expect(1);
    assert!(
        run.stderr().contains("refused the login"),
        "without a certificate: {}",
        run.stderr()
    );
    let with_cert = format!(
        "{base}ssl_cert = {}\nssl_key = {}\n",
        cert("client-cert.pem"),
        cert("client-key.pem")
    );
    // The PKCS#12 made from the key never appears as a file, even for a moment.
    let job = Job::new(&with_cert);
    let tmp = job.path("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut cmd = job.cmd(&[]);
    cmd.env("TMPDIR", &tmp);
    Run(cmd.output().unwrap()).expect(0);
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "no key file left"
    );
    assert_eq!(
        target_rows(db, "SELECT * FROM x"),
        vec![vec![Some("7".into())]]
    );
}

#[test]
fn a_source_certificate_reaches_the_reader() {
    let db = "dbsync_a_x509_source";
    let mut t = tls_root(None);
    t.query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    t.query_drop(format!("CREATE DATABASE `{db}`")).unwrap();
    t.query_drop(format!(
        "CREATE TABLE `{db}`.s (id INT, at DATETIME); INSERT INTO `{db}`.s VALUES (1, '2024-01-02 03:04:05')"
    ))
    .unwrap();
    let cfg = sqlite_config(db, "SELECT * FROM s", "s").replace(
        &format!("host = 127.0.0.1\nport = {}\nuser = root\npassword =\n", mysql_port()),
        &format!(
            "host = localhost\nport = {}\nuser = dbsync_x509\npassword =\nssl_mode = verify_identity\n\
             ssl_ca = {}\nssl_cert = {}\nssl_key = {}\n",
            tls_port(),
            cert("ca.pem"),
            cert("client-cert.pem"),
            cert("client-key.pem")
        ),
    );
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "s", "id"),
        vec![vec![Some("1".into()), Some("2024-01-02 03:04:05".into())]]
    );
}

#[test]
fn password_from_environment_and_wrong_password() {
    let _g = SERVER_GLOBALS.read().unwrap();
    let db = "dbsync_a_pass";
    fresh_db(db, "CREATE TABLE p (id INT); INSERT INTO p VALUES (1);");
    drop_target_db(db);
    let cfg = azure_config(db, "SELECT * FROM p", db, "p", &verified("ca.pem"));
    let no_pass = cfg.replace(&format!("password = {AZURE_PASSWORD}"), "password = wrong");
    let job = Job::new(&no_pass);
    let run = job.run(&["-vv"]).expect(1);
    assert!(
        run.stderr()
            .contains("refused the login ([azure_mysql_db] user / password)"),
        "{}",
        run.stderr()
    );
    let run = Run(job
        .cmd(&["-vv"])
        .env("DBSYNC_AZURE_MYSQL_DB_PASSWORD", AZURE_PASSWORD)
        .output()
        .unwrap())
    .expect(0);
    assert!(!run.stderr().contains(AZURE_PASSWORD));
}

#[test]
fn missing_database_is_created_and_missing_rights_are_named() {
    let _g = SERVER_GLOBALS.read().unwrap();
    let db = "dbsync_a_rights";
    fresh_db(db, "CREATE TABLE r (id INT); INSERT INTO r VALUES (1);");
    drop_target_db(db);
    let cfg = azure_config(db, "SELECT * FROM r", db, "r", &verified("ca.pem"));
    Job::new(&cfg).run(&[]).expect(0); // created the database
    let ro = cfg
        .replace("user = dbsync\n", "user = dbsync_ro\n")
        .replace(
            &format!("password = {AZURE_PASSWORD}"),
            "password = readonly",
        );
    let run = Job::new(&ro).run(&[]).expect(1);
    let err = run.stderr();
    assert!(
        err.contains("SELECT, INSERT, CREATE, DROP and ALTER") && err.contains("GRANT"),
        "every right the run needs is named: {err}"
    );
    // The database exists: only a missing database may be called one.
    assert!(!err.contains("does not exist"), "{err}");
    assert_eq!(
        target_rows(db, "SELECT * FROM r"),
        vec![vec![Some("1".into())]]
    );
    let ro_new_db = ro.replace(
        &format!("database = {db}\ntable_name"),
        "database = dbsync_a_never\ntable_name",
    );
    let run = Job::new(&ro_new_db).run(&[]).expect(1);
    assert!(
        run.stderr().contains("could not be created"),
        "{}",
        run.stderr()
    );
}

fn staging_exists(db: &str, table: &str) -> bool {
    let n: Option<u64> = tls_root(None)
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, format!("{table}__dbsync_new")),
        )
        .unwrap();
    n == Some(1)
}

#[test]
fn readers_see_the_old_table_during_the_load_and_a_kill_leaves_it() {
    let _g = SERVER_GLOBALS.read().unwrap();
    let db = "dbsync_a_swap";
    fixture_db(db, 300_000);
    drop_target_db(db);
    let small = azure_config(
        db,
        "SELECT * FROM vehicles_stock WHERE id <= 1000",
        db,
        "vehicles_stock",
        &verified("ca.pem"),
    );
    let job = Job::new(&small);
    job.run(&[]).expect(0);
    let before = target_rows(db, "SELECT * FROM vehicles_stock ORDER BY id");
    std::fs::write(
        job.path("config.ini"),
        small.replace(" WHERE id <= 1000", ""),
    )
    .unwrap();

    // A reader polls while the load runs: it must only ever see the old 1000 rows or all 300000.
    let mut child = job.cmd(&["-q"]).spawn().unwrap();
    let mut reader = tls_root(Some(db));
    let mut seen = std::collections::BTreeSet::new();
    while child.try_wait().unwrap().is_none() {
        let n: Option<u64> = reader
            .query_first("SELECT COUNT(*) FROM vehicles_stock")
            .unwrap();
        seen.insert(n.unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    assert!(
        seen.iter().all(|n| *n == 1000 || *n == 300_000),
        "a reader saw {seen:?}"
    );
    assert!(
        seen.contains(&1000),
        "the reader never saw the old table during the load"
    );

    // SIGKILL mid-load: the old (now 300000-row) table is untouched, the next run cleans up.
    let full = target_rows(db, "SELECT COUNT(*), SUM(id), MAX(vin) FROM vehicles_stock");
    let mut child = job.cmd(&["-q"]).spawn().unwrap();
    wait_until("the staging table", || staging_exists(db, "vehicles_stock"));
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    assert!(
        child.wait().unwrap().code().is_none(),
        "dbsync finished before the kill"
    );
    assert_eq!(
        target_rows(db, "SELECT COUNT(*), SUM(id), MAX(vin) FROM vehicles_stock"),
        full
    );
    let run = job.run(&[]).expect(0);
    assert!(
        run.stderr().contains("left by an earlier run"),
        "{}",
        run.stderr()
    );
    assert!(!staging_exists(db, "vehicles_stock"));
    std::fs::write(job.path("config.ini"), small).unwrap();
    job.run(&[]).expect(0);
    assert_eq!(
        target_rows(db, "SELECT * FROM vehicles_stock ORDER BY id"),
        before
    );
}

#[test]
fn connection_cut_mid_load_keeps_the_old_table() {
    let _g = SERVER_GLOBALS.read().unwrap();
    let db = "dbsync_a_cut";
    fixture_db(db, 300_000);
    drop_target_db(db);
    let cfg = azure_config(
        db,
        "SELECT * FROM vehicles_stock WHERE id <= 500",
        db,
        "vehicles_stock",
        &verified("ca.pem"),
    );
    let job = Job::new(&cfg);
    job.run(&[]).expect(0);
    std::fs::write(job.path("config.ini"), cfg.replace(" WHERE id <= 500", "")).unwrap();
    // Without retries the run fails and the old table stays.
    let mut cmd = job.cmd(&[]);
    cmd.env("DBSYNC_GENERAL_RETRIES", "0");
    let out = cut_connections_mid_load(db, cmd);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        target_rows(db, "SELECT COUNT(*) FROM vehicles_stock"),
        vec![vec![Some("500".into())]]
    );
    // With the default retries, the copy is tried again and succeeds; the summary says so.
    let out = cut_connections_mid_load(db, job.cmd(&["--summary-json", "-"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("attempt 1 failed"), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(summary["attempts"], 2, "{summary}");
    assert_eq!(summary["retried"].as_array().unwrap().len(), 1);
    assert_eq!(
        target_rows(db, "SELECT COUNT(*) FROM vehicles_stock"),
        vec![vec![Some("300000".into())]]
    );
}

/// Runs `cmd`, and once its staging table exists, kills every connection of the dbsync
/// user to `db` on the target once, as a network failure would.
fn cut_connections_mid_load(db: &str, mut cmd: std::process::Command) -> std::process::Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the staging table", || staging_exists(db, "vehicles_stock"));
    let mut root = tls_root(None);
    let mut killed = 0;
    let t0 = Instant::now();
    while killed == 0 && t0.elapsed() < Duration::from_secs(30) {
        let ids: Vec<u64> = root
            .query(format!("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'dbsync' AND DB = '{db}'"))
            .unwrap();
        for id in ids {
            if root.query_drop(format!("KILL CONNECTION {id}")).is_ok() {
                killed += 1;
            }
        }
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_row_larger_than_max_allowed_packet_is_named() {
    let _g = SERVER_GLOBALS.write().unwrap();
    let db = "dbsync_a_packet";
    fresh_db(db, "CREATE TABLE big (id INT, payload LONGBLOB); INSERT INTO big VALUES (1, 'small'), (2, REPEAT('x', 3000000)), (3, 'small');");
    drop_target_db(db);
    // INSERTs are bounded by the packet; a LOAD DATA stream is not (tested below).
    let cfg = azure_config(
        db,
        "SELECT * FROM big",
        db,
        "big",
        &format!("{}\nload_method = insert", verified("ca.pem")),
    );
    let mut root = tls_root(None);
    root.query_drop("SET GLOBAL max_allowed_packet = 2097152")
        .unwrap();
    let run = Job::new(&cfg).run(&[]);
    root.query_drop("SET GLOBAL max_allowed_packet = 67108864")
        .unwrap();
    let run = run.expect(1);
    let err = run.stderr();
    assert!(
        err.contains("row 2 of batch 1, column `payload`")
            && err.contains("max_allowed_packet is 2097152"),
        "{err}"
    );
    // With the server's usual limit the same rows go through.
    Job::new(&cfg).run(&[]).expect(0);
    assert_eq!(
        target_rows(db, "SELECT id, LENGTH(payload) FROM big ORDER BY id")[1],
        vec![Some("2".into()), Some("3000000".into())]
    );
    // A LOAD DATA stream carries the row under the small packet too.
    drop_target_db(db);
    let streamed = cfg.replace("load_method = insert", "load_method = load_data");
    root.query_drop("SET GLOBAL max_allowed_packet = 2097152")
        .unwrap();
    let run = Job::new(&streamed).run(&[]);
    root.query_drop("SET GLOBAL max_allowed_packet = 67108864")
        .unwrap();
    run.expect(0);
    assert_eq!(
        target_rows(db, "SELECT id, LENGTH(payload) FROM big ORDER BY id")[1],
        vec![Some("2".into()), Some("3000000".into())]
    );
}

#[test]
fn fallback_sqlite_table_goes_to_azure_with_exact_values() {
    let _g = SERVER_GLOBALS.read().unwrap();
    let db = "dbsync_a_fallback";
    let (job, _) = fallback_to_azure(
        db,
        "stock",
        "CREATE TABLE stock (id INTEGER, name TEXT, price REAL, mixed, late_int INTEGER, raw BLOB);
             INSERT INTO stock VALUES (1, 'Seat 🚗', 12.5, 'text', NULL, x'00ff00');
             INSERT INTO stock VALUES (2, NULL, NULL, 42, NULL, NULL);
             INSERT INTO stock VALUES (3, 'it''s', -0.25, 1.5, 9223372036854775807, x'');",
    );
    let run = job.run(&["--summary-json", "-"]).expect(3);
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(
        (summary["source"].as_str(), summary["rows"].as_u64()),
        (Some("fallback"), Some(3))
    );
    let got = target_rows(
        db,
        "SELECT id, name, price, mixed, late_int, HEX(raw) FROM stock ORDER BY id",
    );
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        got,
        vec![
            vec![
                s("1"),
                s("Seat 🚗"),
                s("12.5"),
                s("text"),
                None,
                s("00FF00")
            ],
            vec![s("2"), None, None, s("42"), None, None],
            vec![
                s("3"),
                s("it's"),
                s("-0.25"),
                s("1.5"),
                s("9223372036854775807"),
                s("")
            ],
        ]
    );
}

#[test]
fn a_value_mysql_cannot_hold_fails_naming_it_and_keeps_the_target() {
    let _g = SERVER_GLOBALS.read().unwrap();
    let db = "dbsync_a_infinite";
    let (job, local) = fallback_to_azure(
        db,
        "r",
        "CREATE TABLE r (id INTEGER, x REAL); INSERT INTO r VALUES (1, 1.5), (2, 2.5);",
    );
    job.run(&[]).expect(3);
    local
        .execute_batch("INSERT INTO r VALUES (3, 1e999);")
        .unwrap();
    let run = job.run(&[]).expect(1);
    let err = run.stderr();
    assert!(
        err.contains("row 3 of batch 1, column `x`") && err.contains("the value inf"),
        "{err}"
    );
    assert_eq!(
        target_rows(db, "SELECT COUNT(*) FROM r"),
        vec![vec![Some("2".into())]]
    );
}

#[test]
fn a_target_that_requires_primary_keys_gets_one_or_a_clear_refusal() {
    let _g = SERVER_GLOBALS.write().unwrap();
    let db = "dbsync_a_force_pk";
    fresh_db(
        db,
        "CREATE TABLE k (id INT PRIMARY KEY, v INT); INSERT INTO k VALUES (1, 10), (2, 20);",
    );
    drop_target_db(db);
    let mut root = tls_root(None);
    root.query_drop("SET GLOBAL innodb_force_primary_key = ON")
        .unwrap();
    let keyed = Job::new(&azure_config(
        db,
        "SELECT * FROM k",
        db,
        "k",
        &verified("ca.pem"),
    ))
    .run(&[]);
    let keyless_cfg = azure_config(
        db,
        "SELECT v, COUNT(*) AS n FROM k GROUP BY v",
        db,
        "g",
        &verified("ca.pem"),
    );
    let keyless = Job::new(&keyless_cfg).run(&[]);
    let after_refusal: Vec<String> = tls_root(Some(db)).query("SHOW TABLES").unwrap();
    let named =
        Job::new(&keyless_cfg.replace("[external_db]", "primary_key = v\n[external_db]")).run(&[]);
    root.query_drop("SET GLOBAL innodb_force_primary_key = OFF")
        .unwrap();
    keyed.expect(0);
    let run = keyless.expect(1);
    assert!(
        run.stderr().contains("requires a primary key") && run.stderr().contains("primary_key"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        after_refusal,
        ["k"],
        "refused before loading: no staging table"
    );
    named.expect(0);
    let pk: Vec<String> = tls_root(None)
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? \
             AND TABLE_NAME = 'g' AND INDEX_NAME = 'PRIMARY'",
            (db,),
        )
        .unwrap();
    assert_eq!(pk, ["v"]);
}
