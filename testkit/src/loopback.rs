//! Binding fixture sockets on loopback addresses only.
//!
//! Every fixture in this crate listens on `127.0.0.0/8` or `::1`, because tests must not
//! open ports that other hosts can reach.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::net::{TcpListener, UdpSocket};

/// Binds a TCP listener on `addr`, which must be a loopback address.
///
/// # Panics
///
/// Panics if `addr` is not a loopback address or cannot be bound.
pub(crate) async fn bind_tcp(addr: SocketAddr) -> TcpListener {
    assert_loopback(addr);
    TcpListener::bind(addr)
        .await
        .unwrap_or_else(|error| panic!("cannot bind a TCP listener on {addr}: {error}"))
}

/// Binds a UDP socket and a TCP listener on the same free `127.0.0.1` port.
///
/// # Panics
///
/// Panics if no port is free for both in a bounded number of attempts.
pub(crate) async fn bind_udp_and_tcp() -> (UdpSocket, TcpListener) {
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap_or_else(|error| panic!("cannot bind a UDP socket on 127.0.0.1: {error}"));
        let addr = local_addr(&udp.local_addr());
        // The TCP port with the same number may be taken by another test, so try a new one.
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("found no port free for both UDP and TCP on 127.0.0.1 in {BIND_ATTEMPTS} attempts");
}

/// Unwraps the result of `local_addr()` on a socket that was bound successfully.
pub(crate) fn local_addr(result: &std::io::Result<SocketAddr>) -> SocketAddr {
    match result {
        Ok(addr) => *addr,
        Err(error) => panic!("a bound socket has no local address: {error}"),
    }
}

/// Panics unless `addr` is on `127.0.0.0/8` or is `::1`.
pub(crate) fn assert_loopback(addr: SocketAddr) {
    assert!(
        addr.ip().is_loopback(),
        "test fixtures listen only on loopback addresses, not on {addr}"
    );
}

/// Attempts at finding a port free for both UDP and TCP.
const BIND_ATTEMPTS: usize = 20;
