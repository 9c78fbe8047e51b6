//! A MySQL connection together with its socket. The mysql crate sets one read timeout per
//! connection and drains a result when it is dropped; knowing the socket lets a run bound
//! each wait by what the statement is doing (`read_timeout` while rows stream,
//! `statement_timeout` while the server computes), and end a read at once after a failure
//! elsewhere (`Abandon`), instead of draining millions of rows first.
//!
//! The crate does not expose the socket, so it is found at connect time: under one
//! process-wide lock, the socket descriptors present before and after the connect are
//! compared; the one that appeared is this connection's. Every connection dbsync makes
//! goes through here, and nothing else in the process opens sockets meanwhile.

mod stall;

pub use stall::{StallWatch, Stalled};

use mysql::{Conn, OptsBuilder};
use std::collections::BTreeSet;
use std::ops::{Deref, DerefMut};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every open connection's socket, so a signal can end statements that would otherwise
/// keep the process waiting (see `interrupt`).
pub static ALL: std::sync::LazyLock<Abandon> = std::sync::LazyLock::new(Abandon::default);

/// A connection and, when it could be found, its socket.
pub struct Session {
    /// Declared before `conn`, so it is dropped (unregistered) first.
    registered: Registered,
    /// A second registration, with an `Abandon` of the caller's (see `also_in`).
    also: Option<Registered>,
    conn: Conn,
    fd: Option<RawFd>,
    /// The read timeout of the connection's ordinary statements.
    read_timeout: Option<Duration>,
    /// The server (`host:port`) and user, for ending the session after a `give_up`.
    origin: String,
    user: String,
    /// The server instance this session belongs to, as far as known (see
    /// `cleanup::Instance`): a session is ended only on the instance it was made on.
    instance: Option<super::cleanup::Instance>,
    /// Given up: timed out or cut once, so never waited on again.
    dead: bool,
}

impl Deref for Session {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

static CONNECTING: Mutex<()> = Mutex::new(());

/// Socket descriptors open in this process, with their inode: a descriptor number that
/// another thread closed and a new connection reused is still told apart.
fn sockets() -> BTreeSet<(RawFd, String)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return BTreeSet::new();
    };
    dir.filter_map(|e| {
        let e = e.ok()?;
        let target = std::fs::read_link(e.path())
            .ok()?
            .to_string_lossy()
            .into_owned();
        let fd: RawFd = e.file_name().to_string_lossy().parse().ok()?;
        target.starts_with("socket:").then_some((fd, target))
    })
    .collect()
}

impl Session {
    /// Connects with `opts`, whose read timeout is the one of ordinary statements.
    pub fn open(
        opts: OptsBuilder,
        read_timeout: Option<Duration>,
    ) -> Result<Session, mysql::Error> {
        let _one_at_a_time = CONNECTING.lock().unwrap_or_else(|p| p.into_inner());
        let before = sockets();
        let conn = Conn::new(opts)?;
        let new: Vec<RawFd> = sockets().difference(&before).map(|(fd, _)| *fd).collect();
        let fd = match new.as_slice() {
            [fd] => Some(*fd),
            _ => {
                log::debug!("the connection's socket could not be told apart ({new:?})");
                None
            }
        };
        Ok(Session {
            registered: ALL.register(fd),
            also: None,
            conn,
            fd,
            read_timeout,
            origin: String::new(),
            user: String::new(),
            instance: None,
            dead: false,
        })
    }

    /// Names the server and user this session belongs to (see `give_up`).
    pub(super) fn of(mut self, origin: String, user: &str) -> Session {
        super::cleanup::reached(&origin);
        // The instance last seen there; a session that learns its own says so
        // (`instance_is`). One made after an unnoticed restart carries the old one, so it is
        // never ended by mistake: only not ended.
        self.instance = super::cleanup::known_instance(&origin);
        self.origin = origin;
        self.user = user.to_string();
        self
    }

    /// This connection timed out or was cut: nothing may wait on it again. Its socket is
    /// shut down, so any later use (the driver's own goodbye, a statement's close) fails at
    /// once instead of waiting; its server session, which may live on (a dropped flow
    /// delivers no close), is noted for a cleanup on a fresh connection to end.
    pub fn give_up(&mut self) {
        if self.dead {
            return;
        }
        self.dead = true;
        if let Some(fd) = self.fd {
            shutdown(fd);
        }
        if !self.origin.is_empty() {
            let id = self.conn.connection_id();
            super::cleanup::record(&self.origin, &self.user, id, self.instance.clone());
        }
    }

    /// The server instance this session asked about and got (its own, exactly).
    pub fn instance_is(&mut self, instance: super::cleanup::Instance) {
        super::cleanup::learn(&self.origin, &instance);
        self.instance = Some(instance);
    }

    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// The socket, when it could be found (see `StallWatch::cut`).
    pub fn fd(&self) -> Option<RawFd> {
        self.fd
    }

    /// Registers the socket with `abandon` too, for as long as the session lives: a group
    /// of connections (the writers) can then be cut at once.
    pub fn also_in(&mut self, abandon: &Abandon) {
        self.also = Some(abandon.register(self.fd));
    }

    /// Leaves the group `also_in` registered it with (its work there ended well).
    pub fn alone(&mut self) {
        self.also = None;
    }

    /// Runs `f` with the socket's read timeout raised (or lowered) to `timeout`: for a
    /// statement that rightly computes for long before it answers.
    /// Near `[general] run_timeout` the wait is cut short (see `interrupt::cap`).
    pub fn with_timeout<T>(&mut self, timeout: Duration, f: impl FnOnce(&mut Conn) -> T) -> T {
        set_read_timeout(self.fd, Some(crate::interrupt::cap(timeout)));
        let out = f(&mut self.conn);
        set_read_timeout(self.fd, self.read_timeout);
        out
    }

    /// As `with_timeout`, and out of the reach of a signal's shutdown (`ALL`): for a
    /// statement whose outcome must be known, such as the swap. A socket cut under a
    /// waiting RENAME does not cancel it on the server, which may then swap the tables
    /// after the run said it had not; a statement bounded on the server (its
    /// lock_wait_timeout) ends by itself, and the run reports what really happened.
    /// Nor is its wait cut short near run_timeout (a RENAME whose answer is not awaited
    /// is as unknown as a cut one): callers start it only when it can end in time
    /// (`interrupt::room_for`).
    pub fn shielded<T>(&mut self, timeout: Duration, f: impl FnOnce(&mut Conn) -> T) -> T {
        self.registered = ALL.register(None);
        set_read_timeout(self.fd, Some(timeout));
        let out = f(&mut self.conn);
        set_read_timeout(self.fd, self.read_timeout);
        self.registered = ALL.register(self.fd);
        out
    }

    /// Splits the session into the connection, its socket and its registration, for code
    /// that must hold the `Conn` itself (a result borrowing it); `set_read_timeout` and
    /// `Abandon` take the fd. Keep the registration, and drop it before the connection.
    pub fn into_parts(self) -> (Conn, Option<RawFd>, Registered) {
        (self.conn, self.fd, self.registered)
    }
}

/// Sets SO_RCVTIMEO (`None`: wait forever) on a socket, if known.
pub fn set_read_timeout(fd: Option<RawFd>, timeout: Option<Duration>) {
    let Some(fd) = fd else { return };
    let t = timeout.unwrap_or(Duration::ZERO);
    let tv = libc::timeval {
        tv_sec: t.as_secs() as libc::time_t,
        tv_usec: t.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: setsockopt with a valid timeval on a descriptor owned by a live Conn.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
}

/// Ends reads on other threads' connections at once: their sockets are shut down, so a
/// blocked read returns and a dropped result does not drain what the server still sends.
/// A connection registers its socket for as long as it lives (`register` → `Registered`,
/// dropped before the connection), so a descriptor is never shut down after it was reused.
#[derive(Clone, Default)]
pub struct Abandon(Arc<Mutex<AbandonState>>);

#[derive(Default)]
struct AbandonState {
    abandoned: bool,
    fds: Vec<RawFd>,
}

/// Keeps a socket registered with an `Abandon` until dropped.
pub struct Registered {
    abandon: Abandon,
    fd: Option<RawFd>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(fd) = self.fd {
            let mut s = self.abandon.0.lock().unwrap_or_else(|p| p.into_inner());
            s.fds.retain(|f| *f != fd);
        }
    }
}

impl Abandon {
    /// Registers a connection's socket; shuts it down at once if already abandoned. Drop
    /// the returned guard before the connection.
    pub fn register(&self, fd: Option<RawFd>) -> Registered {
        if let Some(fd) = fd {
            let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
            if s.abandoned {
                shutdown(fd);
            }
            s.fds.push(fd);
        }
        Registered {
            abandon: self.clone(),
            fd,
        }
    }

    /// Shuts down every registered socket, and any registered later.
    pub fn abandon(&self) {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.abandoned = true;
        for fd in &s.fds {
            shutdown(*fd);
        }
    }
}

/// Ends the traffic of a live session's socket from another thread (a wait on it, such as
/// a ping, then fails at once): for a connection known dead that another thread may be
/// waiting on. The session stays the owner; its own `give_up` follows.
pub fn cut(fd: Option<RawFd>) {
    if let Some(fd) = fd {
        shutdown(fd);
    }
}

/// Ends a connection's traffic. Its close, later, resets the connection rather than
/// closing it in order: the server may be blocked sending a result nobody reads (an
/// abandoned read), and an orderly close would leave it waiting its net_write_timeout,
/// holding the source table, instead of failing at once.
fn shutdown(fd: RawFd) {
    let abort = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the descriptor belongs to a live connection (see `Registered`); setsockopt
    // reads a valid linger struct.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&abort as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Runs `statements` as one multi-statement query, one round trip for all: each one's rows
/// (none for a statement without a result set), or the index of the one that failed and its
/// error (the server runs none after it). Unlike `query_drop`, which drops later results
/// unread, every statement's outcome is checked.
pub fn batch(
    conn: &mut mysql::Conn,
    statements: &[String],
) -> Result<Vec<Vec<mysql::Row>>, (usize, mysql::Error)> {
    match batch_until_error(conn, statements) {
        (rows, None) => Ok(rows),
        (rows, Some(e)) => Err((rows.len(), e)),
    }
}

/// As `batch`, keeping the rows of the statements that ran before one failed: the error
/// belongs to the statement after them.
pub fn batch_until_error(
    conn: &mut mysql::Conn,
    statements: &[String],
) -> (Vec<Vec<mysql::Row>>, Option<mysql::Error>) {
    let mut out: Vec<Vec<mysql::Row>> = Vec::with_capacity(statements.len());
    let failed = each_answer(conn, statements, |rows, _| out.push(rows));
    (out, failed)
}

/// Statements that return no rows, sent as one multi-statement query: the rows each one
/// that ran changed, and the error of the one after them, if any.
pub fn batch_changes(
    conn: &mut mysql::Conn,
    statements: &[String],
) -> (Vec<u64>, Option<mysql::Error>) {
    let mut out = Vec::with_capacity(statements.len());
    let failed = each_answer(conn, statements, |_, affected| out.push(affected));
    (out, failed)
}

/// Sends `statements` as one query and hands each answer (its rows and affected-row
/// count) to `keep`, in order, until one fails; a short answer is an error too.
fn each_answer(
    conn: &mut mysql::Conn,
    statements: &[String],
    mut keep: impl FnMut(Vec<mysql::Row>, u64),
) -> Option<mysql::Error> {
    use mysql::prelude::Queryable;
    for s in statements {
        log::debug!("target: {s}");
    }
    let mut result = match conn.query_iter(statements.join(";\n")) {
        Ok(r) => r,
        Err(e) => return Some(e),
    };
    let mut answered = 0;
    while let Some(mut set) = result.iter() {
        let affected = set.affected_rows();
        match set.by_ref().collect::<Result<Vec<_>, _>>() {
            Ok(rows) => keep(rows, affected),
            Err(e) => return Some(e),
        }
        answered += 1;
    }
    if answered != statements.len() {
        // The server answered fewer statements than were sent: never taken as success.
        return Some(mysql::Error::DriverError(
            mysql::DriverError::UnexpectedPacket,
        ));
    }
    None
}
