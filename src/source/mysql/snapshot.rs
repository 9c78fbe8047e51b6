//! One consistent snapshot of the source (`START TRANSACTION WITH CONSISTENT SNAPSHOT`,
//! REPEATABLE READ) on one connection, which reads every table of a job in turn: every
//! table as it was at one moment.
//!
//! The tables take turns in the order they were given the snapshot (`turn`): the next
//! table's reader may start (and wait) while the previous table is still being read, and
//! never goes first.

use super::SourceError;
use crate::connect::{Endpoint, Session};
use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Clone)]
pub struct Snapshot(Arc<Shared>);

struct Shared {
    session: Mutex<Session>,
    order: Mutex<Order>,
    turned: Condvar,
}

/// Whose turn it is to read.
#[derive(Default)]
struct Order {
    issued: u64,
    serving: u64,
    /// Turns ended ahead of their time (their table was dropped unread).
    ended: BTreeSet<u64>,
}

/// A table's place in the snapshot's order; ended when dropped, read or not.
pub struct Turn {
    snapshot: Snapshot,
    number: u64,
}

impl Snapshot {
    pub fn start(ep: &Endpoint) -> Result<Snapshot, SourceError> {
        let (mut session, _) = ep.connect(true, None)?;
        // Each statement checked on its own (a multi-statement query_drop drops the second
        // one's error: a snapshot that did not start would read every table in autocommit).
        // The server waits for this client as long as a lane takes to stage another table
        // (an index build can take minutes): net_write_timeout's 60 s would cut it mid-read.
        let statements = [
            "SET SESSION net_write_timeout = 28800, net_read_timeout = 28800".to_string(),
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_string(),
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY".to_string(),
        ];
        crate::connect::batch(&mut session, &statements).map_err(|(_, e)| SourceError::Query {
            section: ep.section,
            message: format!(
                "starting a consistent snapshot: {}",
                crate::connect::redact(&e.to_string(), ep)
            ),
        })?;
        Ok(Snapshot(Arc::new(Shared {
            session: Mutex::new(session),
            order: Mutex::new(Order::default()),
            turned: Condvar::new(),
        })))
    }

    /// The next place in the order.
    pub fn turn(&self) -> Turn {
        let mut order = self.order();
        let number = order.issued;
        order.issued += 1;
        Turn {
            snapshot: self.clone(),
            number,
        }
    }

    fn order(&self) -> MutexGuard<'_, Order> {
        self.0.order.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn end(&self, number: u64) {
        self.order().end(number);
        self.0.turned.notify_all();
    }
}

impl Order {
    /// Turn `number` is over (again, or ahead of its time): the first turn not over serves.
    fn end(&mut self, number: u64) {
        if number < self.serving {
            return;
        }
        self.ended.insert(number);
        while self.ended.remove(&self.serving) {
            self.serving += 1;
        }
    }
}

impl Turn {
    /// The snapshot's connection, once every earlier turn has ended.
    pub fn wait(&self) -> MutexGuard<'_, Session> {
        let shared = &self.snapshot.0;
        let mut order = self.snapshot.order();
        while order.serving < self.number {
            order = shared.turned.wait(order).unwrap_or_else(|p| p.into_inner());
        }
        drop(order);
        shared.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next turn may read.
    pub fn end(&self) {
        self.snapshot.end(self.number);
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_ended_early_waits_for_the_earlier_ones_and_ending_twice_is_harmless() {
        let mut o = Order {
            issued: 4,
            ..Order::default()
        };
        o.end(2);
        assert_eq!(o.serving, 0);
        o.end(0);
        assert_eq!(o.serving, 1);
        o.end(0);
        assert_eq!(o.serving, 1);
        o.end(1);
        assert_eq!(o.serving, 3);
        assert!(o.ended.is_empty());
    }
}
