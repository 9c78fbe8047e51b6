//! A write that the peer stopped acknowledging. A socket's send timeout bounds each
//! `send` call, not a write: a call that found room for part of its bytes returns that
//! part when its timeout expires, and the next call waits a whole timeout again, so one
//! stall of a large write (a LOAD DATA chunk, a 16 MiB INSERT) cost two timeouts or more.
//! Here a watcher reads each socket's TCP state instead: bytes waiting to be sent, and no
//! byte acknowledged for the bound, is a silent link (a flow dropped on the way, or a peer
//! that stopped reading and holds its window shut), and the socket is shut down at once.

use super::{shutdown, Abandon};
use std::collections::HashMap;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the send queues are read.
const POLL: Duration = Duration::from_millis(100);

/// Watches the sockets of an `Abandon` until dropped.
pub struct StallWatch {
    stop: Arc<AtomicBool>,
    stalled: Stalled,
    handle: Option<JoinHandle<()>>,
}

/// The sockets a `StallWatch` shut down.
#[derive(Clone, Default)]
pub struct Stalled(Arc<Mutex<Vec<RawFd>>>);

impl Abandon {
    /// Shuts down any socket registered here whose send queue holds bytes that nothing
    /// was acknowledged of for `bound`.
    pub fn cut_stalled(&self, bound: Duration) -> StallWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stalled = Stalled::default();
        let (sockets, stop_w, stalled_w) = (self.clone(), Arc::clone(&stop), stalled.clone());
        let handle = std::thread::Builder::new()
            .name("dbsync-stall-watch".into())
            .spawn(move || {
                // Per socket: the bytes acknowledged when last seen, and since when.
                let mut seen: HashMap<RawFd, (u64, Instant)> = HashMap::new();
                while !stop_w.load(Ordering::SeqCst) {
                    // Woken at once when the watch is dropped.
                    std::thread::park_timeout(POLL);
                    if stop_w.load(Ordering::SeqCst) {
                        break;
                    }
                    // Under the lock: a socket cannot be unregistered (and its descriptor
                    // reused) while it is looked at.
                    let state = sockets.0.lock().unwrap_or_else(|p| p.into_inner());
                    seen.retain(|fd, _| state.fds.contains(fd));
                    for &fd in &state.fds {
                        let Some((queued, acked)) = progress(fd) else {
                            continue;
                        };
                        let entry = seen.entry(fd).or_insert((acked, Instant::now()));
                        if queued == 0 || acked != entry.0 {
                            *entry = (acked, Instant::now());
                        } else if entry.1.elapsed() >= bound {
                            // Told before the cut, which the writer finds out at once.
                            stalled_w
                                .0
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(fd);
                            shutdown(fd);
                            entry.1 = Instant::now();
                        }
                    }
                }
            })
            .expect("spawning the stall watcher");
        StallWatch {
            stop,
            stalled,
            handle: Some(handle),
        }
    }
}

impl StallWatch {
    pub fn stalled(&self) -> Stalled {
        self.stalled.clone()
    }
}

impl Stalled {
    /// Whether the watch shut `fd` down (ask before the connection is dropped).
    pub fn cut(&self, fd: Option<RawFd>) -> bool {
        fd.is_some_and(|fd| {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&fd)
        })
    }
}

impl Drop for StallWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// Bytes in the socket's send queue (sent or not) that the peer has not acknowledged, and
/// the bytes it acknowledged so far; `None` where the kernel does not tell.
fn progress(fd: RawFd) -> Option<(i32, u64)> {
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int; the descriptor is registered, so it is live.
    if unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) } != 0 {
        return None;
    }
    // SAFETY: tcp_info is plain data; getsockopt fills at most `len` bytes of it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // Kernels before 4.1 do not count acknowledged bytes.
    let known = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + 8;
    (rc == 0 && len as usize >= known).then_some((queued, info.tcpi_bytes_acked))
}
