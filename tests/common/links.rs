//! Helpers of the dead-link tests: a target already loaded, a job whose target is reached
//! through the tests' TCP proxy, a run timed from the moment the link died, and what the
//! target and its lock look like afterwards.
#![allow(dead_code)]

use super::common::proxy::Proxy;
use super::common::*;
use mysql::prelude::Queryable;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// `name`, made this checkout's own: the source server is shared by every checkout on the
/// machine, and two checkouts running the same test must not share its database.
pub fn db_name(name: &str) -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let hash = dir.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{name}_{:06x}", hash & 0xff_ffff)
}

/// A limit no run here may reach: a hung run fails its test instead of hanging it.
pub const HANG: Duration = Duration::from_secs(120);

/// A source of `rows` fixture rows, and a target already holding its first `old` rows,
/// loaded directly. Returns the direct config.
pub fn loaded(db: &str, rows: u64, old: u64) -> String {
    fixture_db(db, rows);
    drop_target_db(db);
    let first = format!("SELECT * FROM vehicles_stock WHERE id <= {old}");
    let direct = azure_config(db, &first, db, "vehicles_stock", &verified("ca.pem"));
    Job::new(&direct).run(&[]).expect(0);
    direct.replace(&first, "SELECT * FROM vehicles_stock")
}

/// `cfg` with the target reached through `proxy`, its `read_timeout`, and `general` lines
/// added to `[general]`.
pub fn via_with(cfg: &str, proxy: &Proxy, read_timeout: u64, general: &str) -> String {
    let out = cfg
        .replace("host = localhost", "host = 127.0.0.1")
        .replace(
            &format!("port = {}\nuser = dbsync", tls_port()),
            &format!("port = {}\nuser = dbsync", proxy.port),
        )
        .replace(
            "table_name = vehicles_stock\nssl_mode",
            &format!("table_name = vehicles_stock\nread_timeout = {read_timeout}\nssl_mode"),
        )
        .replace("[external_db]", &format!("{general}\n[external_db]"));
    assert!(out.contains(&format!("port = {}\n", proxy.port)), "{out}");
    out
}

pub fn start_proxy() -> Proxy {
    Proxy::start(
        SocketAddr::from(([127, 0, 0, 1], tls_port())),
        Duration::ZERO,
    )
}

pub fn spawn(job: &Job) -> Child {
    job.cmd(&["--summary-json", "-", "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the run's end; its output, and how long after the silence began it ended.
pub fn finish(mut child: Child, proxy: &Proxy) -> (Run, Duration) {
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t0.elapsed() > HANG {
            let _ = child.kill();
            panic!("still running after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ended = Instant::now();
    let run = Run(child.wait_with_output().unwrap());
    let since = proxy.silent_since().expect("the link went silent");
    // Shown when the test fails.
    eprintln!("{}", run.stderr());
    (run, ended - since)
}

pub fn summary(run: &Run) -> serde_json::Value {
    serde_json::from_str(run.stdout().trim()).unwrap()
}

pub fn assert_no_raw(text: &str) {
    for raw in [
        "os error 11)",
        "os error 11 ",
        "Resource temporarily unavailable",
        "out of sync",
        "IoError",
        "CodecError",
    ] {
        assert!(!text.contains(raw), "shows {raw:?}: {text}");
    }
}

pub fn target_rows(db: &str) -> u64 {
    let n: Option<u64> = tls_root(Some(db))
        .query_first("SELECT COUNT(*) FROM vehicles_stock")
        .unwrap();
    n.unwrap()
}

pub fn leftovers(db: &str) -> Vec<String> {
    leftovers_of(db, "vehicles_stock")
}

/// The staging or old tables of `table` in `db`.
pub fn leftovers_of(db: &str, table: &str) -> Vec<String> {
    tls_root(Some(db))
        .query(format!(r"SHOW TABLES LIKE '{table}\_\_dbsync\_%'"))
        .unwrap()
}

pub fn lock_free(db: &str) -> bool {
    let free: Option<Option<i64>> = tls_root(None)
        .query_first(format!("SELECT IS_FREE_LOCK('dbsync:{db}.vehicles_stock')"))
        .unwrap();
    free == Some(Some(1))
}

pub fn job_config(job: &Job) -> String {
    std::fs::read_to_string(job.path("config.ini")).unwrap()
}
