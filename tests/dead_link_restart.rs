//! A target server that restarts under a run: connection ids start again from the same
//! numbers, so a given-up connection's id may now belong to another client's session,
//! another run's lock connection among them. The run's cleanup must never end such a
//! session: here a run A loses its link while the server restarts, a run B then takes the
//! lock on a connection with the id A's lock connection had, and A's retry must stop
//! (exit 4) instead of killing B's session and loading the target at the same time.
//!
//! The server is a MariaDB of the test's own (its own data directory and port, no TLS),
//! killed and started again on the same data; the tests' TCP proxy stands between A and it.

mod common;
#[path = "common/links.rs"]
mod links;
use common::proxy::Proxy;
use common::*;
use links::*;
use mysql::prelude::Queryable;
use mysql::{Conn, OptsBuilder};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A MariaDB of this test's own; killed when dropped.
struct Server {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn new() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mariadb-install-db")
            .args([
                "--no-defaults",
                "--user=root",
                "--auth-root-authentication-method=socket",
            ])
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("mariadb-install-db (scripts/lib.sh installs mariadb-server)");
        assert!(status.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Server {
            dir,
            port,
            child: None,
        };
        server.start();
        let mut root = server.root();
        root.query_drop(
            "CREATE USER 'dbsync'@'%' IDENTIFIED BY 'secret'; GRANT ALL ON *.* TO 'dbsync'@'%'",
        )
        .unwrap();
        server
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&mut self) {
        let child = Command::new("/usr/sbin/mariadbd")
            .args(["--no-defaults", "--user=root", "--bind-address=127.0.0.1"])
            .args(["--skip-name-resolve", "--innodb-buffer-pool-size=32M"])
            .arg(format!("--datadir={}", self.path("data").display()))
            .arg(format!("--socket={}", self.path("sock").display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--log-error={}", self.path("error.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t0 = Instant::now();
        while self.try_root().is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the test's MariaDB did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A crash and a restart on the same data: a new instance of the same server.
    fn restart(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.start();
    }

    fn try_root(&self) -> Option<Conn> {
        let sock = self.path("sock");
        if !Path::new(&sock).exists() {
            return None;
        }
        let opts = OptsBuilder::new()
            .socket(Some(sock.display().to_string()))
            .user(Some("root"));
        Conn::new(opts).ok()
    }

    fn root(&self) -> Conn {
        self.try_root().expect("the test's MariaDB")
    }

    /// The connection id holding the lock of `db`.`table`, if any.
    fn lock_holder(&self, db: &str, table: &str) -> Option<u64> {
        self.root()
            .query_first::<Option<u64>, _>(format!("SELECT IS_USED_LOCK('dbsync:{db}.{table}')"))
            .unwrap()
            .flatten()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A job copying the slow query of `db` into `db`.`n` on the server at `port`.
fn job(db: &str, port: u16, general: &str) -> Job {
    Job::new(&format!(
        "[general]\ndefault_target = azure\nfallback_to_local_source_on_failure = false\n\
         {general}\n\n\
         [external_db]\ntype = mysql\nhost = 127.0.0.1\nport = {src}\nuser = root\npassword =\n\
         database = {db}\nquery = SELECT id, label FROM n WHERE SLEEP(0.005) = 0\n\n\
         [local_db]\ndb_path = data/local.db\ntable_name = n\n\n\
         [azure_mysql_db]\ntype = mysql\nhost = 127.0.0.1\nport = {port}\nuser = dbsync\n\
         password = secret\ndatabase = {db}\ntable_name = n\nssl_mode = disabled\n\
         read_timeout = 10\n",
        src = mysql_port()
    ))
}

fn wait_for(child: &mut Child, limit: Duration) -> Run {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = std::mem::replace(child, Command::new("true").spawn().unwrap());
    Run(out.wait_with_output().unwrap())
}

#[test]
fn after_a_restart_a_given_up_session_id_is_never_killed_on_the_new_instance() {
    let db = &db_name("dlr_restart");
    // About 10 s of reading for each run.
    numbers(db, 2_000);
    let mut server = Server::new();
    // An instance is known by its start time, to the second: the restart comes later.
    std::thread::sleep(Duration::from_millis(2_500));
    // Ids high enough that the restarted server can be brought to the same one.
    for _ in 0..30 {
        drop(server.root());
    }
    let proxy = Proxy::start(
        SocketAddr::from(([127, 0, 0, 1], server.port)),
        Duration::ZERO,
    );
    let a = job(db, proxy.port, "retries = 1");
    let mut run_a = spawn(&a);
    wait_until("run A holds its lock", || {
        server.lock_holder(db, "n").is_some()
    });
    let id = server.lock_holder(db, "n").unwrap();
    // A's link goes silent; the server restarts, a new instance handing out ids afresh.
    proxy.go_silent();
    server.restart();
    loop {
        let next: u64 = server
            .root()
            .query_first("SELECT CONNECTION_ID()")
            .unwrap()
            .unwrap();
        assert!(
            next < id,
            "the restarted server is past id {id} already ({next})"
        );
        if next + 1 == id {
            break;
        }
    }
    // Run B, straight to the server: its lock connection gets A's lock connection's id.
    let b = job(db, server.port, "retries = 0");
    let mut run_b = spawn(&b);
    // Not asked before B connected: each question is a connection, and takes an id.
    std::thread::sleep(Duration::from_secs(2));
    wait_until("run B holds the lock", || {
        server.lock_holder(db, "n").is_some()
    });
    assert_eq!(
        server.lock_holder(db, "n"),
        Some(id),
        "B's lock on A's old id"
    );
    // A's link moves again: its old connections find the server gone, its retry finds B.
    proxy.speak_again();
    let a_out = wait_for(&mut run_a, HANG);
    let a_err = a_out.stderr();
    eprintln!("run A:\n{a_err}");
    let b_out = wait_for(&mut run_b, HANG);
    eprintln!("run B:\n{}", b_out.stderr());
    // A never ended B's session: it stopped, naming the holder, and B loaded alone.
    b_out.expect(0);
    let a_out = a_out.expect(4);
    let error = summary(&a_out)["error"].as_str().unwrap().to_string();
    assert!(error.contains("another run holds"), "{error}");
    let n: Option<u64> = server
        .root()
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.n"))
        .unwrap();
    assert_eq!(n, Some(2_000));
}
