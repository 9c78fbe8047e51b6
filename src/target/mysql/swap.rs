//! The swap: one `RENAME TABLE` that waits for other sessions' metadata locks on the target
//! only briefly. By default the server would wait `lock_wait_timeout` (a year on MySQL, a
//! day on MariaDB), and while it waits every new reader of the table queues behind it. So
//! each try waits a few seconds, a few tries are made, and then the run fails, target
//! unchanged, naming the sessions that may hold the table.
//!
//! A try is never cut short, and none starts after a stop or when it could not end by
//! run_timeout. When a try's answer is lost anyway (the link died), the outcome is settled
//! on a fresh connection once the run's session is known to be gone: the RENAME moves both
//! tables at once, so a staging table still there means no swap, and none means the swap.

use crate::connect::{cleanup, Endpoint, Session};
use crate::interrupt;
use crate::transform::mysql_literal;
use mysql::prelude::Queryable;
use std::time::Duration;

/// Tries the swap.
const TRIES: u32 = 5;
/// The longest a try waits on the server for other sessions' locks.
pub const LOCK_WAIT: Duration = Duration::from_secs(3);

/// A swap that happened.
pub enum Swapped {
    Yes,
    /// The new table is in place, but the old one's DROP failed or did not answer (why).
    OldKept(mysql::Error),
}

/// A swap that did not happen, or may have.
pub enum Failed {
    /// The server said no (or other sessions kept the table busy): the target is as it was.
    Refused(String),
    /// No try was started (a stop, or no time left for one): the target is as it was.
    NotTried(String),
    /// The connection failed after the RENAME may have reached the server.
    Unknown(mysql::Error),
}

/// Why no try may start now: a stop, or too little of run_timeout left for one.
fn no_try(wait: Duration) -> Option<String> {
    if let Some(stop) = interrupt::stopping() {
        return Some(interrupt::Interrupted(stop).to_string());
    }
    if !interrupt::room_for(wait) {
        return Some(format!(
            "its wait for other sessions' locks (up to {}) could not end by [general] \
             run_timeout, and a swap is never cut short",
            crate::connect::wait::secs(wait)
        ));
    }
    None
}

/// Runs `rename` (a `RENAME TABLE` naming `table`), each try waiting at most `wait` for
/// metadata locks, then `drop` (the old table's), each try one round trip.
pub fn rename(
    conn: &mut Session,
    rename: &str,
    drop: &str,
    table: &str,
    wait: Duration,
    answer: Duration,
) -> Result<Swapped, Failed> {
    let secs = wait.as_secs().max(1);
    let statements = [
        format!("SET SESSION lock_wait_timeout = {secs}"),
        rename.to_string(),
        drop.to_string(),
        // The session may serve a job's next table, whose statements wait as usual.
        "SET SESSION lock_wait_timeout = DEFAULT".to_string(),
    ];
    let mut last = String::new();
    for attempt in 1..=TRIES {
        // A stop stops the swap before a try, the first one too; nor does a try start that
        // could not end by run_timeout.
        if let Some(why) = no_try(wait) {
            let before = match last.as_str() {
                "" => String::new(),
                l => format!("{l}; "),
            };
            return Err(Failed::NotTried(format!(
                "{before}the swap was not tried (try {attempt}): {why}"
            )));
        }
        // The server answers after up to `wait` of waiting: the socket must not give up
        // first, or the answer would be read by the next statement.
        let (done, failed) = conn.shielded(wait + answer, |c| {
            crate::connect::batch_until_error(c, &statements)
        });
        let tried = match (done.len(), failed) {
            (_, None) | (3, Some(_)) => return Ok(Swapped::Yes),
            // Swapped; the DROP failed.
            (2, Some(e)) => return Ok(Swapped::OldKept(e)),
            (_, Some(e)) => e,
        };
        match tried {
            mysql::Error::MySqlError(e) if e.code == 1205 => {
                log::warn!(
                    "the swap waited {secs} s for other sessions' locks on `{table}` (try {attempt} of {TRIES})"
                );
                last = e.to_string();
                std::thread::sleep(Duration::from_secs(1));
            }
            // The server's own answer: nothing was swapped.
            e @ mysql::Error::MySqlError(_) => return Err(Failed::Refused(e.to_string())),
            // The statements were sent and no answer came back for the RENAME.
            e => return Err(Failed::Unknown(e)),
        }
    }
    // Bounded: the connection answered a moment ago, but must not be waited on for long.
    let blockers = conn.with_timeout(cleanup::QUICK, blockers);
    Err(Failed::Refused(format!(
        "{last}: other sessions kept `{table}` in use for {TRIES} tries of {secs} s each \
         (a reader holding a transaction open?); {blockers}"
    )))
}

/// What a fresh connection found out about a swap whose answer was lost.
pub enum Settled {
    /// The new table is in place (the old one dropped, or left for the next run).
    Swapped,
    /// The staging table is still there: no swap; it was dropped, or left for the next run.
    NotSwapped,
    /// It could not be told (why).
    Unknown(String),
}

/// Settles a swap whose answer was lost, on a fresh connection bounded to a few seconds,
/// once the run's own session (whose RENAME may still be waiting) is ended and gone.
pub fn settle(ep: &Endpoint, table: &str, staging: &str, old: &str) -> Settled {
    let (mut conn, gone) = match cleanup::fresh(ep) {
        Ok(c) => c,
        Err(why) => return Settled::Unknown(format!("a fresh connection could not tell: {why}")),
    };
    if !gone {
        return Settled::Unknown(
            "the run's session could not be confirmed ended, so its RENAME may still run".into(),
        );
    }
    let sql = format!(
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {} \
         AND TABLE_NAME IN ({}, {})",
        mysql_literal(&ep.database),
        mysql_literal(table),
        mysql_literal(staging)
    );
    let names: Vec<String> = match conn.query(sql) {
        Ok(n) => n,
        Err(e) => {
            let why = cleanup::failed(&mut conn, ep, "looking up the tables", e);
            return Settled::Unknown(format!("a fresh connection could not tell: {why}"));
        }
    };
    // Without case: under lower_case_table_names the server lists them in lower case.
    let has = |t: &str| names.iter().any(|n| n.eq_ignore_ascii_case(t));
    let (settled, leftover) = match (has(staging), has(table)) {
        (true, _) => (Settled::NotSwapped, staging),
        (false, true) => (Settled::Swapped, old),
        (false, false) => {
            return Settled::Unknown(format!(
                "neither `{table}` nor `{staging}` is there (changed by someone else?)"
            ))
        }
    };
    if let Err(e) = conn.query_drop(cleanup::drop_table(ep, leftover)) {
        let why = cleanup::failed(&mut conn, ep, "dropping the table left over", e);
        log::warn!("could not drop `{leftover}` (the next run will): {why}");
    }
    settled
}

/// Sessions with a transaction open (the usual holders of a table's metadata lock), as far
/// as the server lets this user see them.
fn blockers(conn: &mut mysql::Conn) -> String {
    let rows: Result<Vec<(u64, String, String, u64)>, _> = conn.query(
        "SELECT p.ID, p.USER, p.HOST, p.TIME FROM information_schema.INNODB_TRX t \
         JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
         WHERE p.ID <> CONNECTION_ID() ORDER BY t.trx_started LIMIT 5",
    );
    match rows {
        Ok(rows) if !rows.is_empty() => {
            let list: Vec<String> = rows
                .iter()
                .map(|(id, user, host, secs)| {
                    format!("connection {id} of user {user} from {host} ({secs} s)")
                })
                .collect();
            format!("sessions with open transactions: {}", list.join(", "))
        }
        _ => "the blocking session is not visible to this user (SHOW PROCESSLIST with PROCESS rights tells)".into(),
    }
}
