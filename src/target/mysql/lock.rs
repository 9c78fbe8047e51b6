//! The MySQL target's lock: a named lock (`GET_LOCK`) held by a connection of its own for
//! the whole run. It dies with that connection, so it is checked again right before the
//! swap. A lock connection that went silent is given up, not waited on again; its server
//! session, which still holds the lock when the flow was dropped without a close, is ended
//! (`KILL`) by the connection that takes the lock again.

use crate::connect::wait::{broken, secs, Waiting};
use crate::connect::{cleanup, Endpoint, Session, Setup};
use crate::target::{LockError, TargetLock};
use crate::transform::mysql_literal;
use mysql::prelude::Queryable;
use mysql::Conn;
use std::time::{Duration, Instant};

/// The named lock a run holds, on the connection holding it.
pub struct NamedLock {
    conn: Session,
    name: String,
    target: String,
    ep: Box<Endpoint>,
}

const WHO: &str = "the lock connection";

impl NamedLock {
    /// Fails when the lock was lost (the connection holding it died), so a run never
    /// swaps in its table unprotected. `quick`: at a retry's start, where a lost lock is
    /// only taken again, the answer is awaited a few seconds, not a whole read_timeout.
    pub fn still_held(&mut self, quick: bool) -> Result<(), LockError> {
        let NamedLock {
            conn,
            name,
            target,
            ep,
        } = self;
        let lost = |why: String| LockError::Failed {
            target: target.clone(),
            message: format!("the run's lock was lost: {why}; the target is kept"),
        };
        if conn.is_dead() {
            return Err(lost(format!("{WHO} was given up before")));
        }
        if cleanup::link_down(ep) {
            // The cleanup after a failure could not reach the server: this connection is
            // as dead, most likely, and waiting to find out would cost a whole timeout.
            conn.give_up();
            return Err(lost(format!(
                "a fresh connection to the server could not be made after a failure, so {WHO} \
                 was given up without a wait"
            )));
        }
        let sql = format!(
            "SELECT IS_USED_LOCK({}) = CONNECTION_ID()",
            mysql_literal(name)
        );
        let (bound, setting) = match quick {
            true => (
                cleanup::QUICK,
                format!(
                    "a retry's lock check waits at most {}",
                    secs(cleanup::QUICK)
                ),
            ),
            false => (ep.read_timeout, ep.read_timeout_setting()),
        };
        let held: Result<Option<Option<i64>>, _> = conn.with_timeout(bound, |c| c.query_first(sql));
        let what = "checking that the run still holds it";
        match held {
            Ok(Some(Some(1))) => Ok(()),
            Ok(_) => Err(lost("the server no longer counts it as this run's".into())),
            Err(e) => Err(lost(words(
                conn,
                ep,
                &Wait {
                    what,
                    bound,
                    setting: &setting,
                },
                e,
            ))),
        }
    }
}

/// What a lock connection waited for.
struct Wait<'a> {
    what: &'a str,
    bound: Duration,
    setting: &'a str,
}

/// A lock connection's failure in words; a broken connection is given up first.
fn words(conn: &mut Session, ep: &Endpoint, wait: &Wait, e: mysql::Error) -> String {
    let Some(how) = broken(&e) else {
        return crate::connect::redact(&e.to_string(), ep);
    };
    conn.give_up();
    Waiting {
        who: WHO,
        what: wait.what,
        bound: wait.bound,
        setting: wait.setting,
    }
    .failed(how)
}

/// The lock's name: one per database and table, within MySQL's 64 characters.
pub fn lock_name(database: &str, table: &str) -> String {
    // Lower-cased: servers with lower_case_table_names treat `T` and `t` as one table, and
    // elsewhere locking two tables as one only makes runs wait for each other.
    let full = format!("dbsync:{database}.{table}").to_lowercase();
    if full.chars().count() <= 64 {
        return full;
    }
    let hash = crate::transform::fnv1a(full.as_bytes());
    let keep: String = full.chars().take(47).collect();
    format!("{keep}#{hash:016x}")
}

/// Takes the lock, waiting up to `wait` for another run to finish.
pub fn lock(ep: &Endpoint, table: &str, wait: Duration) -> Result<TargetLock, LockError> {
    let target = format!("MySQL {} table {table}", ep.describe());
    let failed = |message: String| LockError::Failed {
        target: target.clone(),
        message: crate::connect::redact(&message, ep),
    };
    let (mut conn, _) = ep
        .connect_with(false, None, &Setup::staying_open())
        .map_err(|e| failed(e.to_string()))?;
    // An earlier attempt's lock connection, given up, may still hold the lock.
    cleanup::end_given_up(&mut conn, ep);
    let name = lock_name(&ep.database, table);
    let start = Instant::now();
    loop {
        // In slices of at most a second, so a signal is noticed while waiting.
        let left = wait
            .saturating_sub(start.elapsed())
            .min(Duration::from_secs(1));
        // A plain query, not a prepared one: one round trip instead of two.
        let got: Result<Option<Option<i64>>, _> = conn.query_first(format!(
            "SELECT GET_LOCK({}, {:.3})",
            mysql_literal(&name),
            left.as_secs_f64()
        ));
        let got = got.map_err(|e| {
            let setting = ep.read_timeout_setting();
            let what = "taking the run's lock";
            let wait = Wait {
                what,
                bound: ep.read_timeout,
                setting: &setting,
            };
            failed(words(&mut conn, ep, &wait, e))
        })?;
        if got.flatten() == Some(1) {
            let ep = Box::new(ep.clone());
            return Ok(TargetLock::MySql(NamedLock {
                conn,
                name,
                target,
                ep,
            }));
        }
        if crate::interrupt::stopping().is_some() || start.elapsed() >= wait {
            break;
        }
    }
    let holder = holder(&mut conn, &name);
    Err(LockError::Held {
        target,
        holder,
        waited: start.elapsed().as_secs(),
    })
}

/// Who holds the lock, as far as the server lets this user see.
fn holder(conn: &mut Conn, name: &str) -> String {
    let id: Option<Option<u64>> = conn
        .exec_first("SELECT IS_USED_LOCK(?)", (name,))
        .ok()
        .flatten();
    let Some(Some(id)) = id else {
        return format!("named lock `{name}`");
    };
    let who: Option<(String, String, u64)> = conn
        .exec_first(
            "SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = ?",
            (id,),
        )
        .ok()
        .flatten();
    match who {
        Some((user, host, secs)) => format!(
            "connection {id} of user {user} from {host}, connected for {secs} s; named lock `{name}`"
        ),
        None => format!("connection {id}; named lock `{name}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_mysql() {
        assert_eq!(lock_name("db", "t"), "dbsync:db.t");
        assert_eq!(lock_name("db", "T"), "dbsync:db.t");
        let long = lock_name(&"d".repeat(64), &"t".repeat(64));
        assert_eq!(long.chars().count(), 64);
        assert_ne!(long, lock_name(&"d".repeat(64), &"u".repeat(64)));
    }
}
