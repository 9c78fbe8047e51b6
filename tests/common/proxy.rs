//! A small userspace TCP proxy standing in for a real network (these sandboxes have no
//! tc/netem): it forwards every connection to one upstream address, optionally delaying
//! each direction by a fixed latency (a delay line: bytes are held for the latency, not
//! rate-limited), and on demand goes silent both ways (sockets stay open, nothing moves:
//! a NAT or gateway that dropped the flow) or cuts every connection.
//!
//! Shared by the fault tests and, through `examples/latency_proxy.rs`, the WAN benchmark.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    silent: AtomicBool,
    stopped: AtomicBool,
    accepted: AtomicUsize,
    streams: Mutex<Vec<TcpStream>>,
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
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                st.accepted.fetch_add(1, Ordering::SeqCst);
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
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    &st,
                    latency,
                );
                pipe(server, client, &st, latency);
            }
        });
        Proxy { port, state }
    }

    /// From now on nothing moves in either direction; connections stay open.
    pub fn go_silent(&self) {
        self.state.silent.store(true, Ordering::SeqCst);
    }

    pub fn speak_again(&self) {
        self.state.silent.store(false, Ordering::SeqCst);
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
        // Wakes the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` → `to` through a delay line: a reader thread stamps each chunk with its
/// arrival time, a writer thread sends it `latency` later. While silent, neither moves.
fn pipe(mut from: TcpStream, mut to: TcpStream, st: &Arc<State>, latency: Duration) {
    let (tx, rx): (Sender<(Instant, Vec<u8>)>, Receiver<_>) = channel();
    let st_r = Arc::clone(st);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            while st_r.silent.load(Ordering::SeqCst) && !st_r.stopped.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
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
    let st_w = Arc::clone(st);
    std::thread::spawn(move || loop {
        let (due, data) = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(item) => item,
            Err(RecvTimeoutError::Timeout) if !st_w.stopped.load(Ordering::SeqCst) => continue,
            Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        while st_w.silent.load(Ordering::SeqCst) && !st_w.stopped.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if to.write_all(&data).is_err() {
            return;
        }
    });
}
