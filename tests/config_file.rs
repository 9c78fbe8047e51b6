//! The config file and the environment read as the Python tool's users expect: the query
//! as configparser gives it, an environment that need not be UTF-8, and a warning when a
//! password sits in a file other users can read.

mod common;
use common::*;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;

const EXIT_OK: i32 = 0;
const EXIT_USAGE: i32 = 2;

fn bytes(b: &[u8]) -> std::ffi::OsString {
    std::ffi::OsString::from_vec(b.to_vec())
}

#[test]
fn a_comment_line_inside_the_query_drops_only_that_line() {
    let db = "dbsync_c_comment";
    fresh_db(
        db,
        "CREATE TABLE s (id INT, active INT); INSERT INTO s VALUES (1, 1), (2, 0), (3, 1);",
    );
    let query = "SELECT id FROM s\n    # only active rows\n    WHERE active = 1\n    ORDER BY id";
    let job = Job::new(&sqlite_config(db, query, "s"));
    job.run(&[]).expect(EXIT_OK);
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "s", "id"),
        vec![vec![Some("1".into())], vec![Some("3".into())]]
    );
}

#[test]
fn a_hash_inside_a_string_of_the_query_is_kept() {
    let db = "dbsync_c_lot";
    fresh_db(
        db,
        "CREATE TABLE s (id INT, lot VARCHAR(10)); INSERT INTO s VALUES (1, 'lot #4'), (2, 'lot'), (3, 'lot 5');",
    );
    let job = Job::new(&sqlite_config(
        db,
        "SELECT id FROM s WHERE lot = 'lot #4'",
        "s",
    ));
    job.run(&[]).expect(EXIT_OK);
    assert_eq!(
        sqlite_rows(&job.path("data/out.db"), "s", "id"),
        vec![vec![Some("1".into())]]
    );
}

#[test]
fn a_variable_that_is_not_utf8_elsewhere_in_the_environment_is_ignored() {
    let db = "dbsync_c_envother";
    fresh_db(
        db,
        "CREATE TABLE s (id INT); INSERT INTO s VALUES (1), (2);",
    );
    let job = Job::new(&sqlite_config(db, "SELECT * FROM s", "s"));
    let out = job
        .cmd(&[])
        .env(bytes(b"SOME_TOKEN"), bytes(b"hunter\xff2"))
        .output()
        .unwrap();
    let run = Run(out).expect(EXIT_OK);
    assert!(!run.stderr().contains("hunter"), "{}", run.stderr());
    assert_eq!(sqlite_count(&job.path("data/out.db"), "s"), 2);
}

#[test]
fn a_dbsync_variable_that_is_not_utf8_is_refused_without_its_value() {
    let db = "dbsync_c_envown";
    fresh_db(db, "CREATE TABLE s (id INT); INSERT INTO s VALUES (1);");
    let job = Job::new(&sqlite_config(db, "SELECT * FROM s", "s"));
    let out = job
        .cmd(&["--summary-json", "-"])
        .env(bytes(b"DBSYNC_EXTERNAL_DB_PASSWORD"), bytes(b"hunter\xff2"))
        .output()
        .unwrap();
    let run = Run(out).expect(EXIT_USAGE);
    let err = run.stderr();
    assert!(
        err.contains("environment variable DBSYNC_EXTERNAL_DB_PASSWORD is not valid UTF-8"),
        "{err}"
    );
    assert!(
        !err.contains("hunter") && !run.stdout().contains("hunter"),
        "{err}"
    );
    assert!(!job.path("data/out.db").exists(), "nothing is touched");
}

#[test]
fn a_password_in_a_file_others_can_read_gets_a_chmod_warning() {
    let db = "dbsync_c_chmod";
    fresh_db(db, "CREATE TABLE s (id INT); INSERT INTO s VALUES (1);");
    // The azure section is not used by this run, but its password is in the file.
    let cfg = format!(
        "{}\n[azure_mysql_db]\nhost = h\nuser = u\npassword = s3cret\ndatabase = d\ntable_name = s\n",
        sqlite_config(db, "SELECT * FROM s", "s")
    );
    let job = Job::new(&cfg);
    let config = job.path("config.ini");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = job.run(&[]).expect(EXIT_OK);
    let err = run.stderr();
    assert!(
        err.contains("config file config.ini holds a password")
            && err.contains("chmod 600 config.ini"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = job.run(&[]).expect(EXIT_OK);
    assert!(!run.stderr().contains("chmod 600"), "{}", run.stderr());
    // No password in the file (only in the environment): nothing to warn about.
    let cfg = cfg.replace("password = s3cret", "password =");
    std::fs::write(&config, cfg).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = Run(job
        .cmd(&[])
        .env("DBSYNC_AZURE_MYSQL_DB_PASSWORD", "s3cret")
        .output()
        .unwrap())
    .expect(EXIT_OK);
    assert!(!run.stderr().contains("chmod 600"), "{}", run.stderr());
}

/// A config whose source cannot be reached and that has no fallback: a run that got as far
/// as connecting would fail with exit 1, not 2.
fn nowhere_config() -> String {
    sqlite_config("nowhere", "SELECT 1", "s")
        .replace(
            &format!("port = {}", mysql_port()),
            &format!("port = {}", closed_port()),
        )
        .replace(
            "fallback_to_local_source_on_failure = true",
            "fallback_to_local_source_on_failure = false",
        )
}

#[test]
fn a_misspelt_key_section_or_variable_is_a_config_error_naming_the_one_meant() {
    for (typo, meant) in [
        ("password =\n", "pasword = x\n"),
        (
            "fallback_to_local_source_on_failure = false",
            "fallback_to_local_source_on_falure = true",
        ),
        ("[local_db]", "[local_db]\nssl_mod = verify_identity"),
        ("[local_db]", "[locl_db]\ndb_path = x\n[local_db]"),
    ] {
        let job = Job::new(&nowhere_config().replacen(typo, meant, 1));
        let err = job
            .run(&["--summary-json", "-"])
            .expect(EXIT_USAGE)
            .stderr();
        let want = match meant.split([' ', '\n']).find(|w| !w.is_empty()) {
            Some("pasword") => "did you mean `password`?",
            Some("fallback_to_local_source_on_falure") => {
                "did you mean `fallback_to_local_source_on_failure`?"
            }
            Some("[local_db]") => "[local_db] ssl_mod is not a setting dbsync reads",
            _ => "did you mean [local_db]?",
        };
        assert!(err.contains(want), "{meant}: {err}");
        assert!(!err.contains("Connection refused"), "{err}");
    }
    let job = Job::new(&nowhere_config());
    let out = job
        .cmd(&[])
        .env("DBSYNC_EXTERNAL_DB_PASWORD", "secret")
        .output()
        .unwrap();
    let err = Run(out).expect(EXIT_USAGE).stderr();
    assert!(
        err.contains("DBSYNC_EXTERNAL_DB_PASWORD")
            && err.contains("did you mean DBSYNC_EXTERNAL_DB_PASSWORD?")
            && !err.contains("secret"),
        "{err}"
    );
}

#[test]
fn default_keys_count_for_every_section() {
    let db = "dbsync_c_default";
    fresh_db(db, "CREATE TABLE s (id INT); INSERT INTO s VALUES (1);");
    // configparser gives [DEFAULT]'s keys to every section; dbsync reads them so too.
    let cfg = sqlite_config(db, "SELECT * FROM s", "s")
        .replace(&format!("port = {}\n", mysql_port()), "");
    let cfg = format!("[DEFAULT]\nport = {}\n\n{cfg}", mysql_port());
    let job = Job::new(&cfg);
    job.run(&[]).expect(EXIT_OK);
    assert_eq!(sqlite_count(&job.path("data/out.db"), "s"), 1);
    std::fs::write(
        job.path("config.ini"),
        cfg.replace("[DEFAULT]\n", "[DEFAULT]\nprot = 1\n"),
    )
    .unwrap();
    let err = job.run(&[]).expect(EXIT_USAGE).stderr();
    assert!(
        err.contains("[DEFAULT] prot") && err.contains("`port`"),
        "{err}"
    );
}

#[test]
fn a_login_without_a_password_is_told_so_not_about_tls() {
    let db = "dbsync_c_nopass";
    let mut c = fresh_db(db, "CREATE TABLE s (id INT); INSERT INTO s VALUES (1);");
    use mysql::prelude::Queryable;
    c.query_drop("CREATE USER IF NOT EXISTS 'dbsync_c_nopass'@'%' IDENTIFIED BY 'pw1'")
        .unwrap();
    let cfg = sqlite_config(db, "SELECT * FROM s", "s")
        .replace("user = root", "user = dbsync_c_nopass\nssl_mode = disabled");
    let err = Job::new(&cfg).run(&[]).expect(1).stderr();
    assert!(
        err.contains("using password: NO")
            && err.contains("no password was sent")
            && err.contains("DBSYNC_EXTERNAL_DB_PASSWORD")
            && !err.contains("secure transport"),
        "{err}"
    );
}
