//! Waiting for another writer of the file. SQLite's own busy timeout polls more and more
//! slowly (every 100 ms after the first half second), so a writer that commits and at once
//! begins again (another job staging its tables one after the other) keeps the file from a
//! waiter that only looks now and then. This handler looks every millisecond.

use rusqlite::Connection;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// How long a write waits for the file by default: another run's transaction on other
/// tables (a staging table being loaded) ends on its own.
pub const FILE_WAIT: Duration = Duration::from_secs(30);

thread_local! {
    /// How long the current wait may last, and when it began.
    static WAIT: Cell<(Duration, Option<Instant>)> = const { Cell::new((FILE_WAIT, None)) };
}

/// Writes on `conn` wait for the file up to `FILE_WAIT` (or what `waiting_up_to` says).
pub fn install(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(on_busy))
}

/// Runs `f` with writes on this thread waiting up to `limit` for the file.
pub fn waiting_up_to<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    WAIT.with(|w| w.set((limit, None)));
    let out = f();
    WAIT.with(|w| w.set((FILE_WAIT, None)));
    out
}

/// SQLite's busy callback: `n` is how many times it was called for this wait.
fn on_busy(n: i32) -> bool {
    WAIT.with(|w| {
        let (limit, began) = w.get();
        let began = match (n, began) {
            (0, _) | (_, None) => Instant::now(),
            (_, Some(t)) => t,
        };
        w.set((limit, Some(began)));
        // A stop asked for ends the wait: the write fails, the run stops.
        if began.elapsed() >= limit || crate::interrupt::stopping().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// How long `waiter` took to get the file from a writer whose transactions of 150 ms
    /// follow each other 1 ms apart (another job staging its tables); `None`: not in 1.5 s.
    fn wait_beside_a_busy_writer(ours: bool) -> Option<Duration> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let setup = Connection::open(&path).unwrap();
        setup
            .execute_batch("PRAGMA journal_mode = wal; CREATE TABLE t (x)")
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let busy = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let c = Connection::open(&path).unwrap();
                install(&c).unwrap();
                while !stop.load(Ordering::SeqCst) {
                    c.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(150));
                    c.execute_batch("COMMIT").unwrap();
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let waiter = Connection::open(&path).unwrap();
        match ours {
            true => install(&waiter).unwrap(),
            false => waiter.busy_timeout(Duration::from_millis(1500)).unwrap(),
        }
        let t0 = Instant::now();
        let got = waiting_up_to(Duration::from_millis(1500), || {
            waiter.execute_batch("BEGIN IMMEDIATE; COMMIT")
        });
        let took = t0.elapsed();
        stop.store(true, Ordering::SeqCst);
        busy.join().unwrap();
        got.ok().map(|()| took)
    }

    #[test]
    fn a_waiter_gets_the_file_between_two_transactions_of_a_busy_writer() {
        let took = wait_beside_a_busy_writer(true);
        assert!(took.is_some_and(|t| t < Duration::from_secs(1)), "{took:?}");
        // SQLite's own busy timeout, polling every 100 ms, mostly misses the gaps.
        let default = (0..2)
            .filter_map(|_| wait_beside_a_busy_writer(false))
            .count();
        assert!(default < 2, "the default handler got the file every time");
    }
}
