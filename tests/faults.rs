//! Links that go silent mid-run, through the project's TCP proxy: nothing waits forever,
//! the target stays whole, and a silent source is a failure, never a fallback.

mod common;
use common::proxy::Proxy;
use common::*;
use mysql::prelude::Queryable;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn a_silent_target_link_ends_the_run_within_read_timeout() {
    let db = "dbsync_f_silent_target";
    fixture_db(db, 300_000);
    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    let first = "SELECT * FROM vehicles_stock WHERE id <= 500";
    let direct = azure_config(db, first, db, "vehicles_stock", &verified("ca.pem"));
    Job::new(&direct).run(&[]).expect(0);
    let proxy = Proxy::start(addr(tls_port()), Duration::ZERO);
    let cfg = direct
        .replace(first, "SELECT * FROM vehicles_stock")
        .replace("host = localhost", "host = 127.0.0.1")
        .replace(
            &format!("port = {}\nuser = dbsync", tls_port()),
            &format!("port = {}\nuser = dbsync", proxy.port),
        )
        .replace(
            "table_name = vehicles_stock\nssl_mode",
            "table_name = vehicles_stock\nread_timeout = 2\nssl_mode",
        )
        .replace("[external_db]", "retries = 0\n[external_db]");
    let job = Job::new(&cfg);
    let child = job
        .cmd(&[])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("rows flowing to the target", || {
        let n: Option<u64> = tls_root(None)
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'vehicles_stock__dbsync_new'",
                (db,),
            )
            .unwrap_or(None);
        n.is_some()
    });
    std::thread::sleep(Duration::from_millis(300));
    let silent_at = Instant::now();
    proxy.go_silent();
    let out = child.wait_with_output().unwrap();
    let took = silent_at.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        took < Duration::from_secs(20),
        "ended {took:?} after the link went silent"
    );
    eprintln!("silent target link: the run ended {took:?} after the silence began");
    let count: Option<u64> = tls_root(Some(db))
        .query_first("SELECT COUNT(*) FROM vehicles_stock")
        .unwrap();
    assert_eq!(count, Some(500), "the old table is kept");
    // The link is back: the next run cleans up what the silent one left, and loads (once
    // the proxy has passed the dead run's close on and the server has let its lock go).
    proxy.speak_again();
    wait_until("the silent run's lock released", || {
        let free: Option<Option<i64>> = tls_root(None)
            .query_first(format!("SELECT IS_FREE_LOCK('dbsync:{db}.vehicles_stock')"))
            .unwrap();
        free == Some(Some(1))
    });
    let t = Instant::now();
    let next = job.run(&[]).expect(0);
    eprintln!("the next run took {:?}:\n{}", t.elapsed(), next.stderr());
    let count: Option<u64> = tls_root(Some(db))
        .query_first("SELECT COUNT(*) FROM vehicles_stock")
        .unwrap();
    assert_eq!(count, Some(300_000));
}

#[test]
fn a_silent_source_link_is_a_failure_never_a_fallback() {
    let db = "dbsync_f_silent_source";
    // Large enough that the rows still to come outlast what socket buffers hold, even
    // when the machine is busy and the silence begins late.
    fixture_db(db, 600_000);
    let first = "SELECT * FROM vehicles_stock WHERE id <= 500";
    let job = Job::new(&sqlite_config(db, first, "vehicles_stock"));
    job.run(&[]).expect(0);
    let proxy = Proxy::start(addr(mysql_port()), Duration::ZERO);
    let cfg = sqlite_config(db, "SELECT * FROM vehicles_stock", "vehicles_stock")
        .replace(
            &format!("port = {}", mysql_port()),
            &format!("port = {}", proxy.port),
        )
        .replace(
            "[external_db]",
            "retries = 0\nstatement_timeout = 3\n[external_db]\nread_timeout = 2",
        )
        .replace("password =\n", "password =\nssl_mode = disabled\n");
    std::fs::write(job.path("config.ini"), cfg).unwrap();
    let mut child = job
        .cmd(&["--summary-json", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wal = job.path("data/out.db-wal");
    wait_until("rows flowing into the file", || {
        std::fs::metadata(&wal).map_or(0, |m| m.len()) > 1 << 20
            || child.try_wait().unwrap().is_some()
    });
    let silent_at = Instant::now();
    proxy.go_silent();
    let out = child.wait_with_output().unwrap();
    let took = silent_at.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a read failure, not a fallback: {err}"
    );
    assert!(
        err.contains("the source's reading connection got no answer for 2 s")
            && err.contains("[external_db] read_timeout = 2 s"),
        "{err}"
    );
    assert!(
        !err.contains("os error"),
        "the driver's words stay out: {err}"
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    eprintln!("silent source link: the run ended {took:?} after the silence began");
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(summary["source"], "primary", "{summary}");
    assert_eq!(
        sqlite_count(&job.path("data/out.db"), "vehicles_stock"),
        500
    );
}

#[test]
fn a_source_connection_killed_mid_read_is_retried() {
    let db = "dbsync_f_killed_source";
    fixture_db(db, 300_000);
    let job = Job::new(&sqlite_config(
        db,
        "SELECT * FROM vehicles_stock",
        "vehicles_stock",
    ));
    let child = job
        .cmd(&["--summary-json", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once rows stream (the server waits on the socket: the client holds rows it has yet
    // to take), kill the connection executing the read. Watching the file's WAL instead
    // raced: a loaded machine let the server send every row before the WAL grew.
    let mut root = root(None);
    let mut killed = false;
    let start = Instant::now();
    while !killed && start.elapsed() < Duration::from_secs(30) {
        let ids: Vec<u64> = root
            .exec(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? \
                 AND COMMAND = 'Execute' AND STATE = 'Writing to net' \
                 AND INFO LIKE 'SELECT%vehicles_stock%'",
                (db,),
            )
            .unwrap();
        for id in ids {
            killed |= root.query_drop(format!("KILL CONNECTION {id}")).is_ok();
        }
    }
    assert!(killed, "the reader was never seen");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(summary["attempts"], 2, "{summary}");
    assert_eq!(
        sqlite_count(&job.path("data/out.db"), "vehicles_stock"),
        300_000
    );
}
