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

/// Installs the handlers for SIGTERM and SIGINT.
pub fn install() {
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
