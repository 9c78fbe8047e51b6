//! The MySQL target's lock: a named lock (`GET_LOCK`) held by a connection of its own for
//! the whole run. It dies with that connection, so it is checked again right before the
//! swap. A lock connection that went silent is given up, not waited on again; its server
//! session, which still holds the lock when the flow was dropped without a close, is ended
//! (`KILL`) by the connection that takes the lock again, on the same server instance only.
//!
//! The connection is kept busy by a ping every few seconds, and its session's
//! `wait_timeout` is three pings long: when the run's side of the link dies silently (the
//! run killed, the network gone, and no cleanup can reach the server), the server ends the
//! session, and frees the lock, within a minute or two instead of at TCP keepalive's two
//! hours. A ping that fails marks the lock lost: the check before the swap then fails the
//! run, the target kept.

use crate::connect::cleanup::{self, Instance};
use crate::connect::wait::{broken, secs, Waiting};
use crate::connect::{Endpoint, Session, Setup};
use crate::target::{LockError, TargetLock};
use crate::transform::mysql_literal;
use mysql::prelude::Queryable;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The named locks a run holds (one per table: a job's tables share one connection), on
/// the connection holding them.
pub struct NamedLock {
    conn: Arc<Mutex<Session>>,
    names: Vec<String>,
    target: String,
    ep: Box<Endpoint>,
    /// Tells the pinger to stop (it holds the connection until it does).
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// The connection's socket, to cut a ping waiting on a link known dead.
    fd: Option<std::os::fd::RawFd>,
}

const WHO: &str = "the lock connection";

/// How often the lock connection is pinged: its read_timeout, at most 30 s. Its session
/// may stay idle three times that long.
fn ping_every(ep: &Endpoint) -> Duration {
    ep.read_timeout
        .clamp(Duration::from_secs(1), Duration::from_secs(30))
}

impl NamedLock {
    /// Fails when the lock was lost (the connection holding it died), so a run never
    /// swaps in its table unprotected. `quick`: at a retry's start, where a lost lock is
    /// only taken again, the answer is awaited a few seconds, not a whole read_timeout.
    pub fn still_held(&mut self, quick: bool) -> Result<(), LockError> {
        let NamedLock {
            conn,
            names,
            target,
            ep,
            fd,
            ..
        } = self;
        let lost = |why: String| LockError::Failed {
            target: target.clone(),
            message: format!("the run's lock was lost: {why}; the target is kept"),
        };
        if cleanup::link_down(ep) {
            // A ping may be waiting on it, holding the connection: it fails at once.
            crate::connect::session::cut(*fd);
        }
        let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        if conn.is_dead() {
            return Err(lost(format!(
                "{WHO} was given up before (it timed out or was cut, maybe under its ping)"
            )));
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
        // Every lock in one round trip (the connection holds them all, or none).
        let held: Vec<String> = names
            .iter()
            .map(|n| format!("IS_USED_LOCK({}) = CONNECTION_ID()", mysql_literal(n)))
            .collect();
        let sql = format!("SELECT {}", held.join(" AND "));
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
                &mut conn,
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

    /// Pings the lock connection every `ping_every` until the lock is dropped; a ping
    /// that fails gives the connection up (the lock is then lost).
    fn keep_alive(&self) {
        let (conn, stop, ep) = (
            Arc::clone(&self.conn),
            Arc::clone(&self.stop),
            self.ep.clone(),
        );
        let every = ping_every(&ep);
        let spawned = std::thread::Builder::new()
            .name("dbsync-lock-ping".into())
            .spawn(move || loop {
                {
                    let (stopped, wake) = &*stop;
                    let guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
                    let (guard, _) = wake
                        .wait_timeout_while(guard, every, |s| !*s)
                        .unwrap_or_else(|p| p.into_inner());
                    if *guard {
                        return;
                    }
                }
                let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
                if conn.is_dead() {
                    return;
                }
                if let Err(e) = conn.query_drop("DO 1") {
                    let wait = Wait {
                        what: "keeping the lock alive (a ping)",
                        bound: ep.read_timeout,
                        setting: &ep.read_timeout_setting(),
                    };
                    let why = words(&mut conn, &ep, &wait, e);
                    // A stop cuts every connection: the run is ending anyway.
                    match crate::interrupt::stopping() {
                        Some(_) => log::debug!("the lock connection's ping: {why}"),
                        None => log::warn!("the run's lock may be lost: {why}"),
                    }
                    if conn.is_dead() {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            log::warn!("the lock connection is not pinged ({e}): it may time out while idle");
        }
    }
}

impl Drop for NamedLock {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
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
    lock_tables(ep, &[table.to_string()], wait).map_err(|(_, e)| e)
}

/// Takes the locks of these tables on one connection (a job's: one login, one round trip
/// when none is held elsewhere), waiting up to `wait` for other runs; on failure, which
/// table's lock could not be taken.
pub fn lock_tables(
    ep: &Endpoint,
    tables: &[String],
    wait: Duration,
) -> Result<TargetLock, (usize, LockError)> {
    let describe = |table: &str| format!("MySQL {} table {table}", ep.describe());
    let target = match tables {
        [one] => describe(one),
        _ => format!("MySQL {} tables {}", ep.describe(), tables.join(", ")),
    };
    let failed = |message: String| {
        (
            0,
            LockError::Failed {
                target: target.clone(),
                message: crate::connect::redact(&message, ep),
            },
        )
    };
    let names: Vec<String> = tables.iter().map(|t| lock_name(&ep.database, t)).collect();
    let mut conn = lock_session(ep, &names).map_err(failed)?;
    let mut held = vec![false; names.len()];
    let start = Instant::now();
    loop {
        // In slices of at most a second, so a signal is noticed while waiting; the first
        // lock not held yet waits, the others are only tried.
        let left = wait
            .saturating_sub(start.elapsed())
            .min(Duration::from_secs(1));
        let rows = try_locks(&mut conn, ep, &names, &mut held, left).map_err(failed)?;
        if held.iter().all(|h| *h) {
            if let Some(instance) = Instance::from_rows(&rows[1..]) {
                conn.instance_is(instance);
            }
            let lock = NamedLock {
                fd: conn.fd(),
                conn: Arc::new(Mutex::new(conn)),
                names,
                target,
                ep: Box::new(ep.clone()),
                stop: Arc::new((Mutex::new(false), Condvar::new())),
            };
            lock.keep_alive();
            return Ok(TargetLock::MySql(lock));
        }
        if crate::interrupt::stopping().is_some() || start.elapsed() >= wait {
            break;
        }
    }
    // The first missing in the order is the one waited for (those after it were let go).
    let first = in_order(&names)
        .into_iter()
        .find(|&i| !held[i])
        .unwrap_or(0);
    // Bounded: a connection that goes silent now must not hold up the answer.
    let holder = conn.with_timeout(cleanup::QUICK, |c| holder(c, &names[first]));
    Err((
        first,
        LockError::Held {
            target: describe(&tables[first]),
            holder,
            waited: start.elapsed().as_secs(),
        },
    ))
}

/// A lock connection: idle between pings, never longer, so a server outlives a dead run's
/// session by this; an earlier attempt's lock connection, given up, is ended first.
fn lock_session(ep: &Endpoint, names: &[String]) -> Result<Session, String> {
    let idle = ping_every(ep).as_secs() * 3;
    let setup = Setup {
        settings: vec![format!(
            "SESSION wait_timeout = {idle}, interactive_timeout = {idle}"
        )],
        max_packet: Some(1 << 30),
    };
    let (mut conn, _) = ep
        .connect_with(false, None, &setup)
        .map_err(|e| e.to_string())?;
    cleanup::end_given_up_holding(&mut conn, ep, names);
    Ok(conn)
}

/// One round of GET_LOCK for the locks not held yet: the first waits up to `left`, the
/// others are only tried. Plain queries, not prepared ones, in one round trip: the locks,
/// and which server instance holds them (so a later cleanup ends this session only there).
fn try_locks(
    conn: &mut Session,
    ep: &Endpoint,
    names: &[String],
    held: &mut [bool],
    left: Duration,
) -> Result<Vec<Vec<mysql::Row>>, String> {
    // In the names' order, the same for every run: a run never holds a later lock while
    // it waits for an earlier one (two jobs each holding what the other waits for).
    let order = in_order(names);
    let asked: Vec<usize> = order.iter().copied().filter(|&i| !held[i]).collect();
    let tries: Vec<String> = asked
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let secs = if k == 0 { left.as_secs_f64() } else { 0.0 };
            format!("GET_LOCK({}, {secs:.3})", mysql_literal(&names[i]))
        })
        .collect();
    let mut statements = vec![format!("SELECT {}", tries.join(", "))];
    statements.extend(Instance::statements());
    let rows = crate::connect::batch(conn, &statements).map_err(|(_, e)| {
        let setting = ep.read_timeout_setting();
        let wait = Wait {
            what: "taking the run's lock",
            bound: ep.read_timeout,
            setting: &setting,
        };
        words(conn, ep, &wait, e)
    })?;
    for (k, &i) in asked.iter().enumerate() {
        let got: Option<Option<i64>> = rows[0].first().and_then(|r| r.get(k));
        held[i] = got.flatten() == Some(1);
    }
    let missing = order.iter().position(|&i| !held[i]);
    let later: Vec<usize> = match missing {
        Some(m) => order[m..].iter().copied().filter(|&i| held[i]).collect(),
        None => Vec::new(),
    };
    if !later.is_empty() {
        let releases: Vec<String> = later
            .iter()
            .map(|&i| format!("RELEASE_LOCK({})", mysql_literal(&names[i])))
            .collect();
        let sql = format!("DO {}", releases.join(", "));
        conn.query_drop(sql).map_err(|e| e.to_string())?;
        later.iter().for_each(|&i| held[i] = false);
    }
    Ok(rows)
}

/// The locks' indexes in the order every run takes them: by name.
fn in_order(names: &[String]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by(|&a, &b| names[a].cmp(&names[b]));
    order
}

/// Who holds the lock, as far as the server lets this user see.
pub(super) fn holder(conn: &mut mysql::Conn, name: &str) -> String {
    type Who = (u64, Option<String>, Option<String>, Option<u64>);
    let who: Option<Who> = conn
        .query_first(format!(
            "SELECT l.id, p.USER, p.HOST, p.TIME FROM (SELECT IS_USED_LOCK({}) AS id) l \
             LEFT JOIN information_schema.PROCESSLIST p ON p.ID = l.id WHERE l.id IS NOT NULL",
            mysql_literal(name)
        ))
        .ok()
        .flatten();
    match who {
        None => format!("named lock `{name}`"),
        Some((id, Some(user), Some(host), Some(secs))) => format!(
            "connection {id} of user {user} from {host}, connected for {secs} s; named lock `{name}`"
        ),
        Some((id, ..)) => format!("connection {id}; named lock `{name}`"),
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
