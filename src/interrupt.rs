//! Stopping a run before its end: SIGTERM and SIGINT (systemd, Kubernetes, a CI
//! cancelling, Ctrl-C), or `[general] run_timeout` running out. Either way the run stops
//! within seconds, drops its staging table or rolls back, and writes its summary; a signal
//! exits 128 + the signal, run_timeout exits 1. A second signal ends the process at once
//! (the target is still whole: SQLite rolls back on the next open, and the next MySQL run
//! drops the leftover staging table).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// When `[general] run_timeout` runs out, and its value.
static DEADLINE: OnceLock<(Instant, Duration)> = OnceLock::new();

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap, and _exit on the second signal.
    if RECEIVED.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// After a stop, how long the run gets to stop by itself (it checks between batches and
/// statements) before every connection's socket is shut down under whatever statement
/// is still waiting on the server (a long sort, a swap waiting for a lock). The target is
/// whole either way; what such a cut leaves (a staging table) the next run drops.
pub const GRACE: Duration = Duration::from_secs(3);

/// Installs the handlers for SIGTERM and SIGINT, and the watcher that enforces `GRACE` by
/// calling `cut` (which shuts down every connection's socket).
pub fn install(cut: fn()) {
    std::thread::Builder::new()
        .name("dbsync-stop-watcher".into())
        .spawn(move || {
            while stopping().is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(GRACE);
            cut();
        })
        .expect("spawning the stop watcher");
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a plain handler that only touches an atomic (see `on_signal`); the
        // sigaction struct is zeroed, then filled, before use.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Starts the clock of `[general] run_timeout`: the run, retries and pauses included,
/// stops `limit` after `start`. Once per process.
pub fn set_run_timeout(start: Instant, limit: Duration) {
    let _ = DEADLINE.set((start + limit, limit));
}

/// Why a run stops early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Signal(i32),
    /// `[general] run_timeout` ran out (its value).
    RunTimeout(Duration),
}

/// The signal received, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// A signal received, or else run_timeout run out, if either.
pub fn stopping() -> Option<Stop> {
    if let Some(sig) = received() {
        return Some(Stop::Signal(sig));
    }
    match DEADLINE.get() {
        Some((at, limit)) if Instant::now() >= *at => Some(Stop::RunTimeout(*limit)),
        _ => None,
    }
}

/// Time left before run_timeout runs out; `None` without one.
pub fn left() -> Option<Duration> {
    DEADLINE
        .get()
        .map(|(at, _)| at.saturating_duration_since(Instant::now()))
}

/// `wait`, shortened so that a wait starting now ends by the deadline plus `GRACE`: for
/// the waits a stop's shutdown cannot reach (a connection being made), so that none
/// overruns run_timeout by more than a few seconds. Never for a wait whose outcome must be
/// known (the swap, a COMMIT: see `Session::shielded`): those are not started when they
/// cannot end in time (`room_for`). A wait cut short is remembered on this thread, so its
/// error names the wait that happened (`cut_short`).
pub fn cap(wait: Duration) -> Duration {
    let capped = match DEADLINE.get() {
        None => wait,
        Some((at, _)) => {
            // A moment before the stop's cut of every socket (`install`), so that the wait
            // ends by its own timeout, and its error names the wait it had.
            let until = (*at + GRACE - AHEAD).saturating_duration_since(Instant::now());
            // Never zero: a socket timeout of zero waits forever.
            wait.min(until).max(Duration::from_millis(100))
        }
    };
    LAST_CUT.with(|c| c.set((capped < wait).then_some((wait, capped))));
    capped
}

/// How much earlier than the stop's cut a wait shortened by `cap` ends.
const AHEAD: Duration = Duration::from_millis(300);

thread_local! {
    /// The last wait `cap` shortened on this thread: (the bound asked for, the one used).
    static LAST_CUT: std::cell::Cell<Option<(Duration, Duration)>> =
        const { std::cell::Cell::new(None) };
}

/// When the last wait this thread started under `bound` was cut short by run_timeout: the
/// bound it really had, and the setting that cut it, for its error message.
pub fn cut_short(bound: Duration) -> Option<(Duration, String)> {
    let (asked, used) = LAST_CUT.with(|c| c.get())?;
    let (_, limit) = DEADLINE.get()?;
    (asked == bound).then(|| (used, run_timeout_setting(*limit)))
}

/// Whether a wait of `wait` that must not be cut (the swap's try, a COMMIT) can start now
/// and still end by run_timeout plus `GRACE`; always without run_timeout.
pub fn room_for(wait: Duration) -> bool {
    match DEADLINE.get() {
        None => true,
        Some((at, _)) => Instant::now() + wait <= *at + GRACE,
    }
}

/// `SIGTERM`, `SIGINT`, or the number.
pub fn name(sig: i32) -> String {
    match sig {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        n => format!("signal {n}"),
    }
}

/// `[general] run_timeout = 1h30m`.
pub fn run_timeout_setting(limit: Duration) -> String {
    let s = limit.as_secs();
    let mut text = String::new();
    for (n, unit) in [(s / 3_600, 'h'), (s / 60 % 60, 'm'), (s % 60, 's')] {
        if n > 0 {
            text.push_str(&format!("{n}{unit}"));
        }
    }
    format!("[general] run_timeout = {text}")
}

/// What the first `check` that finds the run stopping does first, once (see `on_stop`).
static ON_STOP: std::sync::Mutex<Vec<fn()>> = std::sync::Mutex::new(Vec::new());

/// Runs `f` once, at the first `check` that finds the run stopping: on the thread that
/// stops the run (the main one), before the process ends, where work another thread
/// would not finish in time (ending a source statement on the server) gets done.
pub fn on_stop(f: fn()) {
    ON_STOP.lock().unwrap_or_else(|p| p.into_inner()).push(f);
}

/// Fails with `Interrupted` once a signal has arrived or run_timeout has run out (the
/// first time, after running what `on_stop` asked for).
pub fn check() -> Result<(), Interrupted> {
    let stop = match stopping() {
        None => return Ok(()),
        Some(stop) => stop,
    };
    let hooks = std::mem::take(&mut *ON_STOP.lock().unwrap_or_else(|p| p.into_inner()));
    for hook in hooks {
        hook();
    }
    Err(Interrupted(stop))
}

#[derive(Debug)]
pub struct Interrupted(pub Stop);

impl std::error::Error for Interrupted {}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Stop::Signal(sig) => write!(
                f,
                "interrupted by {}: the run stopped and the target is unchanged",
                name(sig)
            ),
            Stop::RunTimeout(limit) => write!(
                f,
                "stopped by {}: the run lasted that long, retries and pauses included; the \
                 target is unchanged",
                run_timeout_setting(limit)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_timeout_is_shown_as_written() {
        let show = |s| run_timeout_setting(Duration::from_secs(s));
        assert_eq!(show(25), "[general] run_timeout = 25s");
        assert_eq!(show(5_400), "[general] run_timeout = 1h30m");
        assert_eq!(show(90_005), "[general] run_timeout = 25h5s");
    }

    #[test]
    fn a_wait_is_cut_short_only_under_run_timeout() {
        // No run_timeout in unit tests: nothing is cut, and nothing is remembered.
        assert_eq!(cap(Duration::from_secs(13)), Duration::from_secs(13));
        assert!(cut_short(Duration::from_secs(13)).is_none());
        assert!(room_for(Duration::from_secs(3_600)));
    }
}
