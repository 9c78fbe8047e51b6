//! The tests' TCP proxy as a program, for the WAN rows of scripts/bench.sh:
//! `latency_proxy LISTEN_PORT UPSTREAM_PORT ONE_WAY_MS` forwards 127.0.0.1:LISTEN_PORT to
//! 127.0.0.1:UPSTREAM_PORT, delaying each direction by ONE_WAY_MS (a delay line, no
//! throughput cap), until killed.

#[path = "../tests/common/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::time::Duration;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| {
            a.parse()
                .expect("usage: latency_proxy LISTEN_PORT UPSTREAM_PORT ONE_WAY_MS")
        })
        .collect();
    let [listen, upstream, ms] = args[..] else {
        panic!("usage: latency_proxy LISTEN_PORT UPSTREAM_PORT ONE_WAY_MS");
    };
    let p = proxy::Proxy::start_on(
        listen as u16,
        SocketAddr::from(([127, 0, 0, 1], upstream as u16)),
        Duration::from_millis(ms),
    );
    eprintln!(
        "proxy 127.0.0.1:{} -> 127.0.0.1:{upstream}, {ms} ms each way",
        p.port
    );
    p.serve_forever();
}
