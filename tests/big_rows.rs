//! Rows of 1 MiB: batches are cut by bytes as well as rows, so a copy holds a few batches
//! of them, not thousands of rows. Peak RSS of each copy is printed (the memory goal
//! itself is measured by scripts/bench.sh, on a release build).

mod common;
use common::*;
use mysql::prelude::Queryable;
use std::io::Read;
use std::process::{Command, Stdio};

/// Runs `cmd` to its end; (exit code, stderr, peak RSS in MB). Reaped by wait4, which
/// reports the child's peak RSS; `Child::wait` would not.
#[allow(clippy::zombie_processes)]
fn run_measured(mut cmd: Command) -> (i32, String, u64) {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut status = 0;
    // SAFETY: waits for our own child; rusage is zeroed and filled by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, reader.join().unwrap(), usage.ru_maxrss as u64 / 1024)
}

#[test]
fn rows_of_a_mib_copy_in_a_few_batches_into_both_targets() {
    let db = "dbsync_b_big";
    let mut c = fresh_db(
        db,
        "CREATE TABLE big (id INT PRIMARY KEY, body LONGTEXT, raw LONGBLOB)",
    );
    c.query_drop(
        "INSERT INTO big SELECT seq, CONCAT(seq, REPEAT(CHAR(65 + seq % 26), 524288)), \
         REPEAT(UNHEX(LPAD(HEX(seq % 256), 2, '0')), 524288) FROM seq_1_to_120",
    )
    .unwrap();
    let expected: Vec<(u64, String)> = c
        .query("SELECT id, MD5(CONCAT(body, HEX(raw))) FROM big ORDER BY id")
        .unwrap();

    let job = Job::new(&sqlite_config(db, "SELECT * FROM big", "big"));
    let (code, err, rss) = run_measured(job.cmd(&[]));
    assert_eq!(code, 0, "{err}");
    eprintln!("120 rows of 1 MiB into SQLite: peak RSS {rss} MB (debug build)");
    let conn = rusqlite::Connection::open(job.path("data/out.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT id, body, raw FROM big ORDER BY id")
        .unwrap();
    let got: Vec<(u64, String)> = stmt
        .query_map([], |r| {
            let body: String = r.get(1)?;
            let raw: Vec<u8> = r.get(2)?;
            let hex: String = raw.iter().map(|b| format!("{b:02X}")).collect();
            Ok((r.get::<_, i64>(0)? as u64, md5_of(&format!("{body}{hex}"))))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got.len(), 120);
    assert!(got == expected, "SQLite holds other values than the source");

    tls_root(None)
        .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .unwrap();
    let job = Job::new(&azure_config(
        db,
        "SELECT * FROM big",
        db,
        "big",
        &verified("ca.pem"),
    ));
    let (code, err, rss) = run_measured(job.cmd(&[]));
    assert_eq!(code, 0, "{err}");
    eprintln!("120 rows of 1 MiB into MariaDB: peak RSS {rss} MB (debug build)");
    let got: Vec<(u64, String)> = tls_root(Some(db))
        .query("SELECT id, MD5(CONCAT(body, HEX(raw))) FROM big ORDER BY id")
        .unwrap();
    assert!(
        got == expected,
        "MariaDB holds other values than the source"
    );
}

/// MD5 through the source server, which has it; values here are a few MB.
fn md5_of(s: &str) -> String {
    thread_local!(static CONN: std::cell::RefCell<mysql::Conn> = std::cell::RefCell::new(root(None)));
    CONN.with(|c| {
        c.borrow_mut()
            .exec_first("SELECT MD5(?)", (s,))
            .unwrap()
            .unwrap()
    })
}
