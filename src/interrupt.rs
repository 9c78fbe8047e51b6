//! SIGTERM and SIGINT (systemd, Kubernetes, a CI cancelling, Ctrl-C): the run stops within
//! seconds, drops its staging table or rolls back, writes its summary and exits 128 +
//! the signal. A second signal ends the process at once (the target is still whole: SQLite
//! rolls back on the next open, and the next MySQL run drops the leftover staging table).

use std::sync::atomic::{AtomicI32, Ordering};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here: an atomic swap, and _exit on the second signal.
    if RECEIVED.swap(sig, Ordering::SeqCst) != 0 {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) };
    }
}

/// After a signal, how long the run gets to stop by itself (it checks between batches and
/// statements) before every connection's socket is shut down under whatever statement
/// is still waiting on the server (a long sort, a swap waiting for a lock). The target is
/// whole either way; what such a cut leaves (a staging table) the next run drops.
const GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// Installs the handlers for SIGTERM and SIGINT, and the watcher that enforces `GRACE`.
pub fn install() {
    std::thread::Builder::new()
        .name("dbsync-signal-watcher".into())
        .spawn(|| {
            while received().is_none() {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            std::thread::sleep(GRACE);
            crate::connect::session::ALL.abandon();
        })
        .expect("spawning the signal watcher");
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

/// The signal received, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
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

/// Fails with `Interrupted` once a signal has arrived.
pub fn check() -> Result<(), Interrupted> {
    received().map_or(Ok(()), |sig| Err(Interrupted(sig)))
}

#[derive(Debug, thiserror::Error)]
#[error("interrupted by {}: the run stopped and the target is unchanged", name(*.0))]
pub struct Interrupted(pub i32);
