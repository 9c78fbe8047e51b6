//! One run per target at a time. Two runs of the same job (a slow night and the next cron
//! tick, a manual rerun) would drop each other's staging tables, or swap in a half-filled
//! one; the second run instead waits up to `[general] lock_wait`, then stops untouched.
//! Each target kind locks in its own way (`sqlite::lock`, `mysql::lock`).

use std::fs::File;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LockError {
    #[error(
        "another run holds {target} ({holder}); waited {waited} s ([general] lock_wait): nothing was touched"
    )]
    Held {
        target: String,
        holder: String,
        waited: u64,
    },
    #[error("cannot lock {target}: {message}")]
    Failed { target: String, message: String },
}

/// The lock a run holds on its target until it is dropped.
pub enum TargetLock {
    /// SQLite: the flock on the lock file; closing the file releases it.
    File(File),
    /// MySQL: a named lock held by a connection of the run.
    MySql(super::mysql::NamedLock),
}

impl TargetLock {
    /// Fails when the lock was lost (the MySQL connection holding it died), so a run never
    /// swaps in its table unprotected. `quick`: at a retry's start, where a lost lock is
    /// only taken again, the answer is awaited a few seconds, not a whole read_timeout.
    pub fn still_held(&mut self, quick: bool) -> Result<(), LockError> {
        match self {
            TargetLock::File(_) => Ok(()),
            TargetLock::MySql(named) => named.still_held(quick),
        }
    }
}
