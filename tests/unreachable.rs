//! Only a source that cannot be reached lets the fallback serve. A login the client cannot
//! perform, or a peer that does not speak MySQL, fails the run and keeps the target; an
//! unknown host falls back and says which host; `ssl_mode = preferred` that ends in
//! plaintext says so.

mod common;
use common::*;
use mysql::prelude::Queryable;
use std::io::Write;
use std::time::Duration;

const EXIT_OK: i32 = 0;
const EXIT_FAILED: i32 = 1;
const EXIT_FALLBACK: i32 = 3;

/// A job whose target (the `[local_db]` table, which is also the fallback) holds one row
/// copied from the primary, ready for a second run with the source changed.
fn loaded_job(db: &str) -> Job {
    fresh_db(db, "CREATE TABLE s (id INT); INSERT INTO s VALUES (1);");
    let job = Job::new(&sqlite_config(db, "SELECT * FROM s", "s"));
    job.run(&[]).expect(EXIT_OK);
    root(Some(db))
        .query_drop("INSERT INTO s VALUES (2)")
        .unwrap();
    job
}

fn rewrite_source(job: &Job, db: &str, from: &str, to: &str) {
    let cfg = sqlite_config(db, "SELECT * FROM s", "s").replace(from, to);
    assert_ne!(
        cfg,
        sqlite_config(db, "SELECT * FROM s", "s"),
        "{from} not found"
    );
    std::fs::write(job.path("config.ini"), cfg).unwrap();
}

/// The run failed on its own error: no fallback, the target as it was.
fn assert_failed_without_fallback(job: &Job, run: &Run) {
    let err = run.stderr();
    assert!(
        !err.contains("unreachable") && !err.contains("fallback"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(summary["source"], "none", "{summary}");
    assert_eq!(sqlite_count(&job.path("data/out.db"), "s"), 1);
}

#[test]
fn a_login_the_client_cannot_perform_never_falls_back() {
    let db = "dbsync_u_ed25519";
    let job = loaded_job(db);
    let mut c = root(None);
    let installed: Option<String> = c
        .query_first(
            "SELECT plugin_status FROM information_schema.plugins WHERE plugin_name = 'ed25519'",
        )
        .unwrap();
    if installed.is_none() {
        // Another test may install it at the same moment: "already installed" is fine.
        if let Err(e) = c.query_drop("INSTALL SONAME 'auth_ed25519'") {
            assert!(e.to_string().contains("already"), "{e}");
        }
    }
    c.query_drop("DROP USER IF EXISTS dbsync_u_ed25519")
        .unwrap();
    c.query_drop("CREATE USER dbsync_u_ed25519 IDENTIFIED VIA ed25519 USING PASSWORD('ed-pw')")
        .unwrap();
    c.query_drop(format!("GRANT SELECT ON `{db}`.* TO dbsync_u_ed25519"))
        .unwrap();
    let cfg = sqlite_config(db, "SELECT * FROM s", "s").replace(
        "user = root\npassword =",
        "user = dbsync_u_ed25519\npassword = ed-pw",
    );
    std::fs::write(job.path("config.ini"), cfg).unwrap();
    let run = job.run(&["--summary-json", "-"]).expect(EXIT_FAILED);
    let err = run.stderr();
    assert!(
        err.contains("wants a login dbsync cannot perform ([external_db] user)")
            && err.contains("authentication plugin `client_ed25519`")
            && err.contains("user `dbsync_u_ed25519`")
            && err.contains("[external_db] user"),
        "{err}"
    );
    assert!(!err.contains("ed-pw"), "{err}");
    assert_failed_without_fallback(&job, &run);
}

/// A TCP server on 127.0.0.1 that answers every connection with `reply` (then keeps it
/// open a while, or closes it at once when `reply` is empty).
fn fake_server(reply: &'static [u8]) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            if reply.is_empty() {
                continue; // dropped: closed before any handshake
            }
            let _ = s.write_all(reply);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(5));
                drop(s);
            });
        }
    });
    port
}

#[test]
fn a_peer_that_does_not_speak_mysql_never_falls_back() {
    let db = "dbsync_u_garbage";
    let job = loaded_job(db);
    let peers: [(&[u8], &str); 3] = [
        (
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            "not a MySQL handshake",
        ),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not a MySQL handshake"),
        (b"", "closed the connection during the handshake"),
    ];
    for (reply, needle) in peers {
        let port = fake_server(reply);
        rewrite_source(
            &job,
            db,
            &format!("port = {}", mysql_port()),
            &format!("port = {port}"),
        );
        let run = run_within(
            &mut job.cmd(&["--summary-json", "-"]),
            Duration::from_secs(60),
        )
        .expect(EXIT_FAILED);
        let err = run.stderr();
        assert!(
            err.contains(&format!(
                "root@127.0.0.1:{port}/{db} answered, but not as a MySQL server"
            )) && err.contains(needle),
            "{err}"
        );
        assert_failed_without_fallback(&job, &run);
    }
}

#[test]
fn an_unknown_host_falls_back_and_names_the_host() {
    let db = "dbsync_u_nohost";
    let job = loaded_job(db);
    // `.invalid` never resolves (RFC 2606); resolution fails here within milliseconds,
    // and run_within bounds it anyway.
    let host = "dbsync-u-nohost.invalid";
    rewrite_source(&job, db, "host = 127.0.0.1", &format!("host = {host}"));
    let run = run_within(
        &mut job.cmd(&["--summary-json", "-"]),
        Duration::from_secs(60),
    )
    .expect(EXIT_FALLBACK);
    let err = run.stderr();
    assert!(
        err.contains("primary source unreachable")
            && err.contains(&format!("host `{host}` not found"))
            && err.contains("check the spelling of [external_db] host"),
        "{err}"
    );
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    assert_eq!(summary["source"], "fallback");
    assert_eq!(sqlite_count(&job.path("data/out.db"), "s"), 1);
}

#[test]
fn preferred_that_ends_in_plaintext_warns_on_either_side() {
    // The server on 3306 has no TLS; here it is both the source and a MySQL target.
    let db = "dbsync_u_preferred";
    fresh_db(
        db,
        "CREATE TABLE s (id INT); INSERT INTO s VALUES (1), (2);",
    );
    let cfg = azure_config(db, "SELECT * FROM s", db, "t", "")
        .replace(
            &format!("port = {}\nuser = dbsync", tls_port()),
            &format!("port = {}\nuser = root", mysql_port()),
        )
        .replace(&format!("password = {AZURE_PASSWORD}"), "password =")
        .replace("host = localhost", "host = 127.0.0.1")
        .replace(
            "user = root\npassword =\ndatabase",
            "user = root\npassword =\nssl_mode = preferred\ndatabase",
        );
    // Both sections now name the same server; each says preferred.
    assert_eq!(cfg.matches("ssl_mode = preferred").count(), 2, "{cfg}");
    let run = Job::new(&cfg).run(&[]).expect(EXIT_OK);
    let err = run.stderr();
    for section in ["external_db", "azure_mysql_db"] {
        assert!(
            err.contains(&format!(
                "[{section}] ssl_mode = preferred: 127.0.0.1 does not offer TLS, so queries and rows cross the network unencrypted"
            )),
            "{section}: {err}"
        );
    }
    let n: Option<i64> = root(Some(db))
        .query_first("SELECT COUNT(*) FROM t")
        .unwrap();
    assert_eq!(n, Some(2));
}

#[test]
fn a_target_host_that_is_not_found_is_not_retried() {
    // Nothing is created: the lock, the run's first step, cannot connect.
    let db = format!("dbsync_u_typo_{}", std::process::id());
    let cfg = azure_config(&db, "SELECT 1", &db, "t", &verified("ca.pem"))
        .replace("host = localhost", "host = dbsync-u-typo.invalid");
    let job = Job::new(&cfg);
    let t0 = std::time::Instant::now();
    let run = run_within(
        &mut job.cmd(&["--summary-json", "-"]),
        Duration::from_secs(60),
    )
    .expect(EXIT_FAILED);
    let summary: serde_json::Value = serde_json::from_str(run.stdout().trim()).unwrap();
    // A typo does not heal by waiting: no retry, no pause.
    assert_eq!(summary["attempts"], 1, "{summary}");
    let error = summary["error"].as_str().unwrap();
    assert!(
        error.contains("host `dbsync-u-typo.invalid` not found"),
        "{error}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}
