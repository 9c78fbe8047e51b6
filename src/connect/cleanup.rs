//! After a connection was given up (silent, cut): its server session may live on, still
//! holding what it held (the run's named lock, a LOAD DATA's metadata lock on the staging
//! table, an open transaction), because a dropped flow never delivers our close. Nothing
//! waits on the dead connection again; instead a fresh connection with a short bound ends
//! those sessions (`KILL`, only on the server instance they were made on) and does the
//! cleanup, best effort. When even that cannot reach the server, the link is noted as down
//! (the lock's check then does not wait on its own connection either), and the next
//! attempt or run cleans up, as it already does.

use super::wait::{broken, secs, Waiting};
use super::{Endpoint, Setup};
use mysql::prelude::Queryable;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The bound of a cleanup's connect, handshake and statements: a few seconds, so a dead
/// link costs little more than the one timeout that found it dead.
pub const QUICK: Duration = Duration::from_secs(3);

/// One run of a server: connection ids are unique only within it, and a new instance
/// (a restart, a failover) hands the same ids out again, to other clients. Known by its
/// host name, port and start time (from `Uptime`, to the second).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    host: String,
    port: u64,
    started: i64,
}

impl Instance {
    /// The same run of the same server: the start time, derived from two statements a
    /// moment apart (each reads the clock in whole seconds), may differ by a second; a
    /// server restarted within a second of its start is taken for the same one.
    fn same(&self, other: &Instance) -> bool {
        self.host == other.host
            && self.port == other.port
            && (self.started - other.started).abs() <= 1
    }

    /// The statements that tell it, in one round trip (MySQL and MariaDB alike; MariaDB
    /// has no `server_uuid`).
    pub fn statements() -> [String; 2] {
        [
            "SELECT @@hostname, @@port, UNIX_TIMESTAMP()".to_string(),
            "SHOW GLOBAL STATUS LIKE 'Uptime'".to_string(),
        ]
    }

    /// From the answers of `statements`.
    pub fn from_rows(rows: &[Vec<mysql::Row>]) -> Option<Instance> {
        let first = rows.first()?.first()?.clone();
        let (host, port, now): (String, u64, i64) = mysql::from_row_opt(first).ok()?;
        let uptime = rows.get(1)?.first()?.clone();
        let (_, uptime): (String, String) = mysql::from_row_opt(uptime).ok()?;
        let uptime: i64 = uptime.trim().parse().ok()?;
        Some(Instance {
            host,
            port,
            started: now - uptime,
        })
    }

    /// Asks `conn` which instance it is on.
    pub fn of(conn: &mut mysql::Conn) -> Option<Instance> {
        super::batch(conn, &Instance::statements())
            .ok()
            .and_then(|rows| Instance::from_rows(&rows))
    }
}

/// A given-up connection whose server session may still be alive.
struct GivenUp {
    origin: String,
    user: String,
    id: u32,
    /// The instance it was made on, if known; never ended elsewhere.
    instance: Option<Instance>,
}

static GIVEN_UP: Mutex<Vec<GivenUp>> = Mutex::new(Vec::new());
/// Servers (`host:port`) a fresh connection could not reach since one last did.
static DOWN: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The instance each server (`host:port`) was last seen to be.
static INSTANCES: Mutex<Vec<(String, Instance)>> = Mutex::new(Vec::new());

/// Notes the session `id` of a connection given up, to be ended by the next cleanup.
pub(super) fn record(origin: &str, user: &str, id: u32, instance: Option<Instance>) {
    let mut all = GIVEN_UP.lock().unwrap_or_else(|p| p.into_inner());
    if !all.iter().any(|g| g.origin == origin && g.id == id) {
        all.push(GivenUp {
            origin: origin.to_string(),
            user: user.to_string(),
            id,
            instance,
        });
    }
}

/// The instance `origin` was last seen to be.
pub(super) fn known_instance(origin: &str) -> Option<Instance> {
    let all = INSTANCES.lock().unwrap_or_else(|p| p.into_inner());
    all.iter()
        .find(|(o, _)| o == origin)
        .map(|(_, i)| i.clone())
}

/// `origin` is (now) `instance`.
pub(super) fn learn(origin: &str, instance: &Instance) {
    let mut all = INSTANCES.lock().unwrap_or_else(|p| p.into_inner());
    all.retain(|(o, _)| o != origin);
    all.push((origin.to_string(), instance.clone()));
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
/// session made on the instance `conn` is on, of the same user, is killed: after a restart
/// or a failover the same number is another client's session (another run's lock, say),
/// and a session of another instance is left alone (the lock it held is then not
/// retaken: the run stops, exit 4, rather than load unprotected). True when every one of
/// them is known to be gone from this server (ended, or not there).
pub fn end_given_up(conn: &mut mysql::Conn, ep: &Endpoint) -> bool {
    end_given_up_holding(conn, ep, &[])
}

/// As `end_given_up`; a given-up session whose instance is not known (its first answer was
/// lost) is ended too when it holds one of the named `locks`: only a run of ours takes them,
/// so the session holding one under its number is the one given up.
pub fn end_given_up_holding(conn: &mut mysql::Conn, ep: &Endpoint, locks: &[String]) -> bool {
    let origin = ep.origin();
    let mine: Vec<GivenUp> = {
        let mut all = GIVEN_UP.lock().unwrap_or_else(|p| p.into_inner());
        let (mine, rest) = all.drain(..).partition(|g| g.origin == origin);
        *all = rest;
        mine
    };
    if mine.is_empty() {
        return true;
    }
    let here = Instance::of(conn);
    if let Some(here) = &here {
        learn(&origin, here);
    }
    let holders = match mine.iter().any(|g| g.instance.is_none()) {
        true => lock_holders(conn, locks),
        false => Vec::new(),
    };
    let (ours, others): (Vec<GivenUp>, Vec<GivenUp>) =
        mine.into_iter().partition(|g| match (&g.instance, &here) {
            (Some(made), Some(here)) => made.same(here),
            (None, _) => holders.contains(&g.id),
            _ => false,
        });
    let elsewhere: Vec<u32> = others
        .iter()
        .filter(|g| g.instance.is_some() && here.is_some())
        .map(|g| g.id)
        .collect();
    if !elsewhere.is_empty() {
        log::warn!(
            "the sessions of given-up connections {elsewhere:?} are not ended: they were made \
             on another instance of {origin} than the one answering now (it restarted or \
             failed over since), where the same numbers may be other clients' sessions; what \
             they held there is gone with that instance"
        );
    } else if !others.is_empty() {
        log::debug!("given-up sessions of {origin} not ended: their server instance is not known");
    }
    others.is_empty() && kill(conn, &ours)
}

/// The sessions holding these named locks now.
fn lock_holders(conn: &mut mysql::Conn, locks: &[String]) -> Vec<u32> {
    if locks.is_empty() {
        return Vec::new();
    }
    let used: Vec<String> = locks
        .iter()
        .map(|n| format!("IS_USED_LOCK({})", crate::transform::mysql_literal(n)))
        .collect();
    let row: Option<mysql::Row> = conn
        .query_first(format!("SELECT {}", used.join(", ")))
        .ok()
        .flatten();
    let Some(row) = row else { return Vec::new() };
    (0..locks.len())
        .filter_map(|i| row.get::<Option<u32>, _>(i).flatten())
        .collect()
}

/// Kills those of `ours` still on the server (same user), and waits up to `QUICK` for them
/// to go. True when none is left.
fn kill(conn: &mut mysql::Conn, ours: &[GivenUp]) -> bool {
    if ours.is_empty() {
        return true;
    }
    let ids: Vec<String> = ours.iter().map(|g| g.id.to_string()).collect();
    let ids = ids.join(", ");
    let Ok(alive) = conn.query::<(u32, String), _>(format!(
        "SELECT ID, USER FROM information_schema.PROCESSLIST WHERE ID IN ({ids})"
    )) else {
        return false;
    };
    let mut killed = Vec::new();
    for (id, user) in alive {
        // Another user's session under that number: ours is gone already.
        if !ours.iter().any(|g| g.id == id && g.user == user) {
            continue;
        }
        if conn.query_drop(format!("KILL CONNECTION {id}")).is_err() {
            return false;
        }
        killed.push(id.to_string());
    }
    if killed.is_empty() {
        return true;
    }
    log::debug!("ended the server sessions of given-up connections: {killed:?}");
    // KILL returns before the session has rolled back and let go of its locks.
    let sql = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN ({})",
        killed.join(", ")
    );
    let t0 = Instant::now();
    while t0.elapsed() < QUICK {
        match conn.query_first::<u64, _>(&sql) {
            Ok(Some(0)) => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => return false,
        }
    }
    false
}

/// A fresh connection to `ep`, bounded by `QUICK`, its statements waiting at most a
/// second for other sessions' locks, after it ended the given-up sessions; and whether
/// they are known to be gone. A link that cannot be reached is noted as down (not a
/// refused login or too many connections: those say nothing of the link).
pub fn fresh(ep: &Endpoint) -> Result<(super::Session, bool), String> {
    let mut quick = ep.clone();
    quick.connect_timeout = ep.connect_timeout.min(QUICK);
    let bound = ep.read_timeout.min(QUICK);
    let setup = Setup {
        settings: vec!["SESSION lock_wait_timeout = 1".into()],
        max_packet: None,
    };
    let (mut conn, _) = match quick.connect_bounded(false, bound, &setting(), &setup) {
        Ok(c) => c,
        Err(e) => {
            if e.is_unreachable() {
                note_down(&ep.origin());
            }
            return Err(crate::connect::redact(&e.to_string(), ep));
        }
    };
    let gone = end_given_up(&mut conn, ep);
    Ok((conn, gone))
}

/// What bounds a cleanup, in words.
fn setting() -> String {
    format!("a cleanup waits at most {}", secs(QUICK))
}

/// The words for a cleanup connection that failed under `what`; a broken one is given up
/// (its own session is ended by the next cleanup).
pub fn failed(conn: &mut super::Session, ep: &Endpoint, what: &str, e: mysql::Error) -> String {
    match broken(&e) {
        Some(how) => {
            conn.give_up();
            Waiting {
                who: "the cleanup's fresh connection",
                what,
                bound: QUICK,
                setting: &setting(),
            }
            .failed(how)
        }
        None => crate::connect::redact(&e.to_string(), ep),
    }
}

/// On a fresh connection bounded by `QUICK`: ends the given-up sessions, then runs
/// `statements` (each waiting at most a second for another session's locks). Best effort:
/// a failure is returned, for the caller to log once.
pub fn on_fresh_connection(ep: &Endpoint, statements: &[String]) -> Result<(), String> {
    let (mut conn, _) = fresh(ep)?;
    match super::batch(&mut conn, statements) {
        Ok(_) => Ok(()),
        Err((i, e)) => Err(failed(&mut conn, ep, &statements[i], e)),
    }
}

/// A source statement under way, ended on the server if the run stops meanwhile (see
/// `running`); dropped when it is done.
pub struct Running(u64);

/// Statements under way: a token, the server, the session and its statement.
type Statement = (u64, Endpoint, u32, String);
static RUNNING: Mutex<Vec<Statement>> = Mutex::new(Vec::new());

/// Notes that session `id` of `ep` runs `sql` until the returned guard is dropped: a stop
/// meanwhile ends it on the server (`KILL QUERY`), from the thread that stops the run.
pub fn running(ep: &Endpoint, id: u32, sql: &str) -> Running {
    static HOOKED: std::sync::Once = std::sync::Once::new();
    HOOKED.call_once(|| crate::interrupt::on_stop(end_running));
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let token = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let mut all = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    all.push((token, ep.clone(), id, sql.to_string()));
    Running(token)
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut all = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|(token, ..)| *token != self.0);
    }
}

/// Ends every statement under way (`running`) on its server.
fn end_running() {
    let all = std::mem::take(&mut *RUNNING.lock().unwrap_or_else(|p| p.into_inner()));
    for (_, ep, id, sql) in all {
        kill_query(&ep, id, &sql);
    }
}

/// Ends the statement session `id` of user `user` runs, if it still runs `sql`, on a fresh
/// connection bounded by `QUICK`: a stopped run's read (a long sort) would otherwise go on
/// on the server after the run ended. Best effort.
pub fn kill_query(ep: &Endpoint, id: u32, sql: &str) {
    let Ok((mut conn, _)) = fresh(ep) else {
        return;
    };
    // The session, checked by its user and statement: never another client's.
    let start: String = sql.chars().take(64).collect();
    let check = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = {id} AND USER = {} \
         AND LEFT(INFO, {}) = {}",
        crate::transform::mysql_literal(&ep.user),
        start.chars().count(),
        crate::transform::mysql_literal(&start)
    );
    if let Ok(Some(1)) = conn.query_first::<u64, _>(check) {
        match conn.query_drop(format!("KILL QUERY {id}")) {
            Ok(()) => log::info!("ended the source's statement on the server (KILL QUERY {id})"),
            Err(e) => log::debug!("KILL QUERY {id}: {e}"),
        }
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
