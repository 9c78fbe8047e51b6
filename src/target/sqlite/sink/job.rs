//! A job's tables put in place at once: each was staged, and committed, as its own staging
//! table; one transaction then replaces them all (or applies a merge's rows), so readers
//! see the whole old night or the whole new one.

use super::super::busy;
use super::SqliteSink;
use crate::incremental::Applied;
use crate::target::{Sink, SinkError};
use std::time::Duration;

/// Swaps every staged table of `sinks` (all of one file) in, in one transaction; another
/// writer of the file is waited for up to 30 s and `wait` (`[general] lock_wait`).
pub fn swap_all(sinks: &mut [Box<dyn Sink>], wait: Duration) -> Result<Vec<Applied>, SinkError> {
    let mut typed: Vec<&mut SqliteSink> = sinks
        .iter_mut()
        .map(|s| {
            s.as_any_mut()
                .downcast_mut::<SqliteSink>()
                .expect("a SQLite target's sinks are SqliteSinks")
        })
        .collect();
    let Some(first) = typed.first_mut() else {
        return Ok(Vec::new());
    };
    first.begin_swap(wait)?;
    let mut conn = first.conn.take();
    let mut applied = Vec::with_capacity(typed.len());
    for sink in typed.iter_mut() {
        // One connection, so one transaction, for every table.
        std::mem::swap(&mut sink.conn, &mut conn);
        let done = sink.swap_in_place();
        std::mem::swap(&mut sink.conn, &mut conn);
        match done {
            Ok(a) => applied.push(a),
            Err(e) => {
                if let Some(c) = &conn {
                    let _ = c.execute_batch("ROLLBACK");
                }
                typed[0].conn = conn;
                return Err(e);
            }
        }
    }
    typed[0].conn = conn;
    typed[0].finish()?;
    Ok(applied)
}

impl SqliteSink {
    /// The swap's transaction begun. Another writer of the file (another job, staging its
    /// tables) is waited for as a staging table waits, and `wait` longer.
    fn begin_swap(&self, wait: Duration) -> Result<(), SinkError> {
        let limit = busy::FILE_WAIT + wait;
        // The staging commits did not wait for the disk (synchronous = NORMAL); the swap's
        // commit does, so a power cut after it keeps the new night.
        self.conn()
            .execute_batch("PRAGMA synchronous = FULL")
            .map_err(|e| self.err("setting synchronous", e))?;
        let begun = busy::waiting_up_to(limit, || self.conn().execute_batch("BEGIN IMMEDIATE"));
        begun.map_err(|e| self.busy_or_err(e, limit, "beginning the swap"))
    }
}
