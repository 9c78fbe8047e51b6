//! Sessions the tables of a job share on one MySQL server: a table's sink takes its
//! control session and its writers' sessions here, and gives them back once its table is
//! staged (or swapped in), so the next table skips their logins (each a TLS handshake, a
//! few round trips on a remote link) and the job holds a few sessions, not a few per table
//! (small Azure tiers allow 50).

use crate::connect::{Session, TlsMode};
use std::sync::Mutex;

#[derive(Default)]
pub struct Pool {
    control: Mutex<Vec<(Session, TlsMode)>>,
    writers: Mutex<Vec<Session>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("control", &lock(&self.control).len())
            .field("writers", &lock(&self.writers).len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pool {
    pub fn take_control(&self) -> Option<(Session, TlsMode)> {
        lock(&self.control).pop()
    }

    /// A session whose work ended well; one given up (dead) is dropped instead.
    pub fn give_control(&self, session: Session, mode: TlsMode) {
        if !session.is_dead() {
            lock(&self.control).push((session, mode));
        }
    }

    pub fn take_writer(&self) -> Option<Session> {
        lock(&self.writers).pop()
    }

    pub fn give_writer(&self, session: Session) {
        if !session.is_dead() {
            lock(&self.writers).push(session);
        }
    }
}
