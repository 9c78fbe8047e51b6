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
