//! A small userspace TCP proxy standing in for a real network (these sandboxes have no
//! tc/netem): it forwards every connection to one upstream address, optionally delaying
//! each direction by a fixed latency (a delay line: bytes are held for the latency, not
//! rate-limited), and on demand goes silent both ways (sockets stay open, nothing moves:
//! a NAT or gateway that dropped the flow) or cuts every connection.
//!
//! Silence can also strike one connection at a time, as a NAT that drops one flow does:
//! after a number of bytes, when the server answers a long upload (a load's final answer),
//! or by the order in which connections were made. And the link can refuse new
//! connections (its listener closed: a failover, a firewall), then accept them again.
//!
//! Shared by the fault tests and, through `examples/latency_proxy.rs`, the WAN benchmark.
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When one connection goes silent by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Once it has carried this many bytes, both ways counted.
    Bytes(u64),
    /// When the server speaks after the client sent at least this many bytes: the answer
    /// to an upload (a LOAD DATA stream's final OK) is lost, and nothing moves after it.
    AnswerAfter(u64),
    /// When the client sends a packet holding these bytes (a statement's text, on a link
    /// without TLS): that statement is lost, and nothing moves after it.
    Sends(&'static [u8]),
}

/// What a trigger silences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The connection that met it.
    Connection,
    /// The whole link: every connection, and those made later.
    Link,
}

#[derive(Default)]
struct Flow {
    silent: AtomicBool,
    up: AtomicU64,
    down: AtomicU64,
}

#[derive(Default)]
struct State {
    silent: AtomicBool,
    stopped: AtomicBool,
    refusing: AtomicBool,
    accepted: AtomicUsize,
    streams: Mutex<Vec<TcpStream>>,
    flows: Mutex<Vec<Arc<Flow>>>,
    rule: Mutex<Option<(Trigger, Scope)>>,
    /// When the first trigger fired.
    fired: Mutex<Option<Instant>>,
}

impl State {
    fn silent(&self, flow: &Flow) -> bool {
        (self.silent.load(Ordering::SeqCst) || flow.silent.load(Ordering::SeqCst))
            && !self.stopped.load(Ordering::SeqCst)
    }

    /// Applies the rule after `n` bytes moved on `flow` (`up`: client to server); true when
    /// the bytes must not be forwarded.
    fn count(&self, flow: &Flow, up: bool, bytes: &[u8]) -> bool {
        let counter = if up { &flow.up } else { &flow.down };
        counter.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        let Some((trigger, scope)) = *self.rule.lock().unwrap() else {
            return false;
        };
        let sent = flow.up.load(Ordering::SeqCst);
        let (hit, drop_these) = match trigger {
            Trigger::Bytes(limit) => (sent + flow.down.load(Ordering::SeqCst) >= limit, false),
            Trigger::AnswerAfter(limit) => (!up && sent >= limit, true),
            Trigger::Sends(pattern) => (
                up && bytes.windows(pattern.len()).any(|w| w == pattern),
                true,
            ),
        };
        if !hit {
            return false;
        }
        match scope {
            Scope::Connection => flow.silent.store(true, Ordering::SeqCst),
            Scope::Link => self.silent.store(true, Ordering::SeqCst),
        }
        self.fired.lock().unwrap().get_or_insert_with(Instant::now);
        drop_these
    }
}

/// A running proxy; stops (and cuts its connections) when dropped.
pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`, adding `latency`
    /// in each direction.
    pub fn start(upstream: SocketAddr, latency: Duration) -> Proxy {
        Self::start_on(0, upstream, latency)
    }

    pub fn start_on(port: u16, upstream: SocketAddr, latency: Duration) -> Proxy {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("proxy port");
        small_window(&listener);
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        std::thread::spawn(move || accept_loop(Some(listener), port, upstream, latency, &st));
        Proxy { port, state }
    }

    /// From now on nothing moves in either direction; connections stay open.
    pub fn go_silent(&self) {
        self.state.silent.store(true, Ordering::SeqCst);
        self.state
            .fired
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
    }

    /// The link moves bytes again (connections silenced one by one stay silent: their
    /// flow is gone), and no rule silences any more.
    pub fn speak_again(&self) {
        *self.state.rule.lock().unwrap() = None;
        self.state.silent.store(false, Ordering::SeqCst);
    }

    /// Silences connections, or the link, when `trigger` is met on a connection.
    pub fn silence_when(&self, trigger: Trigger, scope: Scope) {
        *self.state.rule.lock().unwrap() = Some((trigger, scope));
    }

    /// Silences the `index`th connection made (0: the first), for good.
    pub fn silence_connection(&self, index: usize) {
        let flows = self.state.flows.lock().unwrap();
        flows[index].silent.store(true, Ordering::SeqCst);
        self.state
            .fired
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
    }

    /// When silence first struck (by a trigger or a call), if it did.
    pub fn silent_since(&self) -> Option<Instant> {
        *self.state.fired.lock().unwrap()
    }

    /// New connections are refused (the listener is closed) until `accept_again`; those
    /// made before are not touched.
    pub fn refuse_new(&self) {
        self.state.refusing.store(true, Ordering::SeqCst);
        // The accept loop notices within its poll interval.
        std::thread::sleep(Duration::from_millis(50));
    }

    pub fn accept_again(&self) {
        self.state.refusing.store(false, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
    }

    /// Closes every connection made so far (new ones are still accepted).
    pub fn cut(&self) {
        for s in self.state.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Blocks the calling thread forever (for a proxy run as a program).
    pub fn serve_forever(&self) -> ! {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.cut();
    }
}

/// A small receive buffer for the connections the listener accepts: the proxy reads
/// everything at once while it forwards, but once a flow is silent, its sender stops after
/// a window's worth (as over a dropped flow), not after the megabytes loopback would hold.
fn small_window(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    let bytes: libc::c_int = 128 << 10;
    // SAFETY: setsockopt with a valid int on a live socket.
    unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Accepts connections (polling, so the listener can be closed to refuse them and opened
/// again on the same port) and starts a pair of pipes for each.
fn accept_loop(
    mut listener: Option<TcpListener>,
    port: u16,
    upstream: SocketAddr,
    latency: Duration,
    st: &Arc<State>,
) {
    while !st.stopped.load(Ordering::SeqCst) {
        let refusing = st.refusing.load(Ordering::SeqCst);
        if refusing {
            listener = None;
        } else if listener.is_none() {
            listener = TcpListener::bind(("127.0.0.1", port)).ok();
            listener.as_ref().map(small_window);
        }
        let Some(l) = &listener else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        l.set_nonblocking(true).expect("a non-blocking listener");
        let client = match l.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(_) => continue,
        };
        let _ = client.set_nonblocking(false);
        st.accepted.fetch_add(1, Ordering::SeqCst);
        let flow = Arc::new(Flow::default());
        st.flows.lock().unwrap().push(Arc::clone(&flow));
        // A link silent as a whole does not even pass a new connection's handshake.
        let Ok(server) = TcpStream::connect(upstream) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        {
            let mut all = st.streams.lock().unwrap();
            all.push(client.try_clone().unwrap());
            all.push(server.try_clone().unwrap());
        }
        let ends = (client.try_clone().unwrap(), server.try_clone().unwrap());
        pipe(ends.0, ends.1, st, &flow, true, latency);
        pipe(server, client, st, &flow, false, latency);
    }
}

/// Copies `from` → `to` through a delay line: a reader thread stamps each chunk with its
/// arrival time, a writer thread sends it `latency` later. While silent, neither moves:
/// the sender's buffers fill and its writes block, as over a dropped flow.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    st: &Arc<State>,
    flow: &Arc<Flow>,
    up: bool,
    latency: Duration,
) {
    let (tx, rx): (Sender<(Instant, Vec<u8>)>, Receiver<_>) = channel();
    let (st_r, flow_r) = (Arc::clone(st), Arc::clone(flow));
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while st_r.silent(&flow_r) {
                std::thread::sleep(Duration::from_millis(20));
            }
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if st_r.count(&flow_r, up, &buf[..n]) || st_r.silent(&flow_r) {
                        continue;
                    }
                    if tx
                        .send((Instant::now() + latency, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    let (st_w, flow_w) = (Arc::clone(st), Arc::clone(flow));
    std::thread::spawn(move || loop {
        let (due, data) = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) if !st_w.stopped.load(Ordering::SeqCst) => continue,
            Err(_) => {
                // A silent flow passes no close on either: the far end never learns.
                while st_w.silent(&flow_w) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        while st_w.silent(&flow_w) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if to.write_all(&data).is_err() {
            return;
        }
    });
}
