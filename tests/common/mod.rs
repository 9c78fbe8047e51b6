//! Helpers for the integration tests: a database per test on the real MariaDB, a temp dir
//! per test with a config file, and the built binary run in it.
#![allow(dead_code)]

pub mod app;
pub mod jobs;
pub mod proxy;

use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const FIXTURE: &str = include_str!("../../scripts/fixtures/vehicles_stock.sql");

pub fn mysql_port() -> u16 {
    std::env::var("TEST_MYSQL_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3306)
}

/// A root connection to the test MariaDB, optionally in `db`.
pub fn root(db: Option<&str>) -> Conn {
    let opts = OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(mysql_port())
        .user(Some("root"))
        .prefer_socket(false)
        .db_name(db)
        .init(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"]);
    Conn::new(opts).expect("the test MariaDB at 127.0.0.1 (scripts/test.sh starts it)")
}

/// A fresh database named after the test, with `sql` run in it.
pub fn fresh_db(name: &str, sql: &str) -> Conn {
    let mut c = root(None);
    c.query_drop(format!("DROP DATABASE IF EXISTS `{name}`"))
        .unwrap();
    c.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .unwrap();
    let mut c = root(Some(name));
    if !sql.is_empty() {
        run_all(&mut c, sql);
    }
    c
}

/// Runs a multi-statement script, failing on the first statement that fails (a plain
/// `query_drop` can lose the error of a statement after the first).
pub fn run_all(c: &mut Conn, sql: &str) {
    let mut result = c.query_iter(sql).unwrap();
    while let Some(set) = result.iter() {
        for row in set {
            row.unwrap();
        }
    }
}

/// The benchmark fixture with `rows` rows, in a fresh database.
pub fn fixture_db(name: &str, rows: u64) -> Conn {
    fresh_db(name, &FIXTURE.replace("@ROWS@", &rows.to_string()))
}

/// A temp dir holding `config.ini`.
pub struct Job {
    pub dir: tempfile::TempDir,
}

impl Job {
    pub fn new(config: &str) -> Job {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.ini"), config).unwrap();
        Job { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dbsync"));
        cmd.current_dir(self.dir.path())
            .args(args)
            .env_remove("RUST_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("DBSYNC_") {
                cmd.env_remove(k);
            }
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.cmd(args).output().unwrap())
    }
}

pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("exited, not killed")
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    /// Asserts the exit code, showing the output when it differs.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}

/// A config for the local SQLite target reading `query` from database `db`.
pub fn sqlite_config(db: &str, query: &str, table: &str) -> String {
    format!(
        "[general]\ndefault_target = local_sqlite ; azure | local_sqlite\ntarget_argument_enabled = true\n\
         fallback_to_local_source_on_failure = true\n\n\
         [external_db]\ntype = mysql\nhost = 127.0.0.1\nport = {port}\nuser = root\npassword =\n\
         database = {db}\nquery = {query}\n\n\
         [local_db]\ndb_path = data/out.db\ntable_name = {table}\n",
        port = mysql_port()
    )
}

/// A TCP port on 127.0.0.1 with nothing listening.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Every row of `table` in the SQLite file, each value rendered as text (None for NULL).
pub fn sqlite_rows(path: &Path, table: &str, order_by: &str) -> Vec<Vec<Option<String>>> {
    let c = rusqlite::Connection::open(path).unwrap();
    let sql = format!(
        "SELECT * FROM \"{}\" ORDER BY {order_by}",
        table.replace('"', "\"\"")
    );
    let mut stmt = c.prepare(&sql).unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            Ok((0..n)
                .map(|i| match r.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Null => None,
                    rusqlite::types::ValueRef::Integer(v) => Some(v.to_string()),
                    rusqlite::types::ValueRef::Real(v) => Some(v.to_string()),
                    rusqlite::types::ValueRef::Text(t) => {
                        Some(String::from_utf8(t.to_vec()).unwrap())
                    }
                    rusqlite::types::ValueRef::Blob(b) => Some(format!("blob:{}", hex(b))),
                })
                .collect())
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every row of `query` as MySQL renders it (text protocol), None for NULL.
pub fn mysql_rows(c: &mut Conn, query: &str) -> Vec<Vec<Option<String>>> {
    let rows: Vec<mysql::Row> = c.query(query).unwrap();
    rows.into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql::Value::NULL => None,
                    mysql::Value::Bytes(b) => Some(String::from_utf8(b).unwrap()),
                    other => Some(other.as_sql(true)),
                })
                .collect()
        })
        .collect()
}

pub fn sqlite_count(path: &Path, table: &str) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(
        &format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\"")),
        [],
        |r| r.get(0),
    )
    .unwrap()
}

// ---- the TLS-only MariaDB standing in for Azure (scripts/lib.sh ensure_tls_mariadb) ----

pub fn tls_port() -> u16 {
    std::env::var("TEST_TLS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3307)
}

pub fn tls_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".test-servers/tls")
}

pub fn cert(name: &str) -> String {
    tls_dir().join("certs").join(name).display().to_string()
}

/// The password of the TLS server's `dbsync` user, as written in a config file.
pub const AZURE_PASSWORD: &str = "Azure;#=pa\"ss\\w'rd";

/// Root on the TLS server, over its unix socket.
pub fn tls_root(db: Option<&str>) -> Conn {
    let opts = OptsBuilder::new()
        .socket(Some(tls_dir().join("mysqld.sock").display().to_string()))
        .user(Some("root"))
        .db_name(db)
        .init(vec!["SET NAMES utf8mb4", "SET time_zone = '+00:00'"]);
    Conn::new(opts).expect("the TLS MariaDB (scripts/test.sh starts it)")
}

/// A config reading `query` from database `db` on the source and writing `[azure_mysql_db]`
/// database `target_db`, table `table`, with the given extra lines in that section.
pub fn azure_config(
    db: &str,
    query: &str,
    target_db: &str,
    table: &str,
    azure_extra: &str,
) -> String {
    format!(
        "[general]\ndefault_target = azure\ntarget_argument_enabled = true\n\
         fallback_to_local_source_on_failure = true\n\n\
         [external_db]\ntype = mysql\nhost = 127.0.0.1\nport = {port}\nuser = root\npassword =\n\
         database = {db}\nquery = {query}\n\n\
         [local_db]\ndb_path = data/local.db\ntable_name = {table}\n\n\
         [azure_mysql_db]\ntype = mysql\nhost = localhost\nport = {tls}\nuser = dbsync\npassword = {AZURE_PASSWORD}\n\
         database = {target_db}\ntable_name = {table}\n{azure_extra}\n",
        port = mysql_port(),
        tls = tls_port()
    )
}

pub fn verified(ca: &str) -> String {
    format!("ssl_mode = verify_identity\nssl_ca = {}", cert(ca))
}

/// Runs `cmd` to its end, killing it (and failing the test) if it takes longer than
/// `limit`: for runs that must not hang whatever the network does.
pub fn run_within(cmd: &mut Command, limit: std::time::Duration) -> Run {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Run(child.wait_with_output().unwrap())
}

/// Waits until `cond` holds, polling; panics after 60 s.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Drops database `db` on the TLS server (the "Azure" target).
pub fn drop_target_db(db: &str) {
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
}

/// A fresh database `db` on the source with table `n` (id, label) of `rows` rows.
pub fn numbers(db: &str, rows: u32) {
    let mut c = fresh_db(db, "CREATE TABLE n (id INT PRIMARY KEY, label VARCHAR(10))");
    c.query_drop(format!(
        "INSERT INTO n SELECT seq, CONCAT('r', seq) FROM seq_1_to_{rows}"
    ))
    .unwrap();
}

/// `cfg` with its primary source (`[external_db]` root on the test MariaDB) pointed at a
/// closed port: unreachable, so the fallback serves.
pub fn primary_down(cfg: &str) -> String {
    cfg.replace(
        &format!("port = {}\nuser = root", mysql_port()),
        &format!("port = {}\nuser = root", closed_port()),
    )
}

/// A job into the "Azure" database `db`, table `table`, whose primary source is down, so the
/// fallback serves: its `data/local.db` is made by `sqlite_sql`. Returns the job and the
/// open fallback file, for tests that change it between runs.
pub fn fallback_to_azure(db: &str, table: &str, sqlite_sql: &str) -> (Job, rusqlite::Connection) {
    drop_target_db(db);
    let cfg = primary_down(&azure_config(
        "nowhere",
        "SELECT 1",
        db,
        table,
        &verified("ca.pem"),
    ));
    let job = Job::new(&cfg);
    std::fs::create_dir_all(job.path("data")).unwrap();
    let local = rusqlite::Connection::open(job.path("data/local.db")).unwrap();
    local.execute_batch(sqlite_sql).unwrap();
    (job, local)
}
