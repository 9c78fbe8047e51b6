//! The swap: one `RENAME TABLE` that waits for other sessions' metadata locks on the target
//! only briefly. By default the server would wait `lock_wait_timeout` (a year on MySQL, a
//! day on MariaDB), and while it waits every new reader of the table queues behind it. So
//! each try waits a few seconds, a few tries are made, and then the run fails, target
//! unchanged, naming the sessions that may hold the table.

use crate::connect::Session;
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
    /// The connection failed after the RENAME may have reached the server.
    Unknown(mysql::Error),
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
    ];
    let mut last = String::new();
    for attempt in 1..=TRIES {
        // A stop that came while waiting between tries stops the swap before the next.
        if let Some(stop) = crate::interrupt::stopping().filter(|_| attempt > 1) {
            let why = crate::interrupt::Interrupted(stop);
            return Err(Failed::Refused(format!(
                "{last} ({why}: the swap was not tried again before try {attempt})"
            )));
        }
        // The server answers after up to `wait` of waiting: the socket must not give up
        // first, or the answer would be read by the next statement.
        let (done, failed) = conn.shielded(wait + answer, |c| {
            crate::connect::batch_until_error(c, &statements)
        });
        let tried = match (done.len(), failed) {
            (_, None) => return Ok(Swapped::Yes),
            // Swapped; the DROP failed.
            (2, Some(e)) => return Ok(Swapped::OldKept(e)),
            (_, Some(e)) => e,
        };
        match tried {
            mysql::Error::MySqlError(e) if e.code == 1205 => {
                if crate::interrupt::stopping().is_some() {
                    return Err(Failed::Refused(e.to_string()));
                }
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
    Err(Failed::Refused(format!(
        "{last}: other sessions kept `{table}` in use for {TRIES} tries of {secs} s each \
         (a reader holding a transaction open?); {}",
        blockers(conn)
    )))
}

/// Sessions with a transaction open (the usual holders of a table's metadata lock), as far
/// as the server lets this user see them.
fn blockers(conn: &mut Session) -> String {
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
