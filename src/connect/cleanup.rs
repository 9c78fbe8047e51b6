//! After a connection was given up (silent, cut): its server session may live on, still
//! holding what it held (the run's named lock, a LOAD DATA's metadata lock on the staging
//! table, an open transaction), because a dropped flow never delivers our close. Nothing
//! waits on the dead connection again; instead a fresh connection with a short bound ends
//! those sessions (`KILL`) and does the cleanup, best effort. When even that cannot
//! connect, the link is noted as down (the lock's check then does not wait on its own
//! connection either), and the next attempt or run cleans up, as it already does.

use super::wait::{broken, secs, Waiting};
use super::{Endpoint, Setup};
use mysql::prelude::Queryable;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The bound of a cleanup's connect, handshake and statements: a few seconds, so a dead
/// link costs little more than the one timeout that found it dead.
pub const QUICK: Duration = Duration::from_secs(3);

/// A given-up connection whose server session may still be alive.
struct GivenUp {
    origin: String,
    user: String,
    id: u32,
    at: Instant,
}

static GIVEN_UP: Mutex<Vec<GivenUp>> = Mutex::new(Vec::new());
/// Servers (`host:port`) a fresh connection could not reach since one last did.
static DOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Notes the session `id` of a connection given up, to be ended by the next cleanup.
pub(super) fn record(origin: &str, user: &str, id: u32) {
    let mut all = GIVEN_UP.lock().unwrap_or_else(|p| p.into_inner());
    if !all.iter().any(|g| g.origin == origin && g.id == id) {
        all.push(GivenUp {
            origin: origin.to_string(),
            user: user.to_string(),
            id,
            at: Instant::now(),
        });
    }
}

/// A connection to `origin` worked: it is not down.
pub(super) fn reached(origin: &str) {
    DOWN.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|o| o != origin);
}

fn note_down(origin: &str) {
    let mut down = DOWN.lock().unwrap_or_else(|p| p.into_inner());
    if !down.iter().any(|o| o == origin) {
        down.push(origin.to_string());
    }
}

/// Whether the last fresh connection to `ep` failed: its other connections are then
/// taken for dead without a wait.
pub fn link_down(ep: &Endpoint) -> bool {
    let origin = ep.origin();
    DOWN.lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&origin)
}

/// Whether a connection to `ep` was given up and its session not ended yet.
pub fn any_given_up(ep: &Endpoint) -> bool {
    let origin = ep.origin();
    GIVEN_UP
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .any(|g| g.origin == origin)
}

/// Ends the server sessions of `ep`'s given-up connections, on `conn` (a live connection
/// to that server), and waits briefly for them to go, so what they held is free. Only a
/// session of the same user that has been in its state since before it was given up is
/// killed: after a failover the same number may be another client's session.
pub fn end_given_up(conn: &mut mysql::Conn, ep: &Endpoint) {
    let origin = ep.origin();
    let mine: Vec<GivenUp> = {
        let mut all = GIVEN_UP.lock().unwrap_or_else(|p| p.into_inner());
        let (mine, rest) = all.drain(..).partition(|g| g.origin == origin);
        *all = rest;
        mine
    };
    if mine.is_empty() {
        return;
    }
    let ids: Vec<String> = mine.iter().map(|g| g.id.to_string()).collect();
    let ids = ids.join(", ");
    let alive: Vec<(u32, String, u64)> = conn
        .query(format!(
            "SELECT ID, USER, TIME FROM information_schema.PROCESSLIST WHERE ID IN ({ids})"
        ))
        .unwrap_or_default();
    let mut killed = Vec::new();
    for (id, user, secs) in alive {
        let ours = mine
            .iter()
            .any(|g| g.id == id && g.user == user && secs + 1 >= g.at.elapsed().as_secs());
        if ours && conn.query_drop(format!("KILL CONNECTION {id}")).is_ok() {
            killed.push(id.to_string());
        }
    }
    if killed.is_empty() {
        return;
    }
    log::debug!("ended the server sessions of given-up connections: {killed:?}");
    // KILL returns before the session has rolled back and let go of its locks.
    let sql = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN ({})",
        killed.join(", ")
    );
    let t0 = Instant::now();
    while t0.elapsed() < QUICK {
        let left: Option<u64> = conn.query_first(&sql).unwrap_or(None);
        if left.unwrap_or(0) == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// On a fresh connection bounded by `QUICK`: ends the given-up sessions, then runs
/// `statements` (each waiting at most a second for another session's locks). Best effort:
/// a failure is returned, for the caller to log once.
pub fn on_fresh_connection(ep: &Endpoint, statements: &[String]) -> Result<(), String> {
    let mut quick = ep.clone();
    quick.connect_timeout = ep.connect_timeout.min(QUICK);
    let setting = format!("a cleanup waits at most {}", secs(QUICK));
    let bound = ep.read_timeout.min(QUICK);
    let (mut conn, _) = match quick.connect_bounded(false, bound, &setting, &Setup::default()) {
        Ok(c) => c,
        Err(e) => {
            note_down(&ep.origin());
            return Err(crate::connect::redact(&e.to_string(), ep));
        }
    };
    end_given_up(&mut conn, ep);
    let mut all = vec!["SET SESSION lock_wait_timeout = 1".to_string()];
    all.extend(statements.iter().cloned());
    match super::batch(&mut conn, &all) {
        Ok(_) => Ok(()),
        Err((i, e)) => Err(match broken(&e) {
            Some(how) => {
                // Its own session is ended by the next cleanup.
                conn.give_up();
                Waiting {
                    who: "the cleanup's fresh connection",
                    what: all[i].as_str(),
                    bound: QUICK,
                    setting: &setting,
                }
                .failed(how)
            }
            None => crate::connect::redact(&e.to_string(), ep),
        }),
    }
}

/// `DROP TABLE IF EXISTS` of a table of `ep`'s database (qualified: a sink's `begin` may
/// have failed before its `USE`).
pub fn drop_table(ep: &Endpoint, table: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {}.{}",
        crate::transform::quote_mysql(&ep.database),
        crate::transform::quote_mysql(table)
    )
}
