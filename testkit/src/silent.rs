//! A server that accepts traffic and never answers, for timeout tests.
//!
//! [`SilentServer`] binds a UDP socket and a TCP listener on the same `127.0.0.1` port. It
//! reads and discards every UDP datagram and accepts every TCP connection, then keeps the
//! connection open without reading or writing. A DNS resolver, HTTP client or TLS client
//! pointed at it waits until its own timeout fires, which is what a test of that timeout
//! needs. Counters tell the test that the client did reach the server.
//!
//! # Example
//!
//! ```no_run
//! use mpic_testkit::silent::SilentServer;
//!
//! # async fn example() {
//! let silent = SilentServer::start().await;
//! // Point the resolver under test at `silent.addr()` and expect a timeout, then:
//! assert!(silent.datagram_count() > 0);
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

use crate::loopback::{bind_udp_and_tcp, local_addr};

/// A UDP and TCP server on one `127.0.0.1` port that never sends anything.
///
/// Dropping it closes the socket, the listener and every held connection.
pub struct SilentServer {
    addr: SocketAddr,
    counters: Arc<Counters>,
    /// Owns the receive and accept tasks, so dropping it aborts them.
    _tasks: JoinSet<()>,
}

impl SilentServer {
    /// Starts the server on a free `127.0.0.1` port, UDP and TCP on the same number.
    ///
    /// # Panics
    ///
    /// Panics if no port is free for both UDP and TCP.
    pub async fn start() -> SilentServer {
        let (udp, tcp) = bind_udp_and_tcp().await;
        let addr = local_addr(&udp.local_addr());
        let counters = Arc::new(Counters::default());

        let mut tasks = JoinSet::new();
        tasks.spawn(discard_datagrams(udp, counters.clone()));
        tasks.spawn(hold_connections(tcp, counters.clone()));
        SilentServer {
            addr,
            counters,
            _tasks: tasks,
        }
    }

    /// Returns the address the server listens on, for both UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns how many UDP datagrams arrived.
    pub fn datagram_count(&self) -> usize {
        self.counters.datagrams.load(Ordering::SeqCst)
    }

    /// Returns how many TCP connections were accepted.
    pub fn connection_count(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct Counters {
    datagrams: AtomicUsize,
    connections: AtomicUsize,
}

async fn discard_datagrams(socket: UdpSocket, counters: Arc<Counters>) {
    let mut buffer = vec![0_u8; 65_535];
    loop {
        match socket.recv_from(&mut buffer).await {
            Ok(_) => {
                counters.datagrams.fetch_add(1, Ordering::SeqCst);
            }
            Err(error) => {
                tracing::debug!(%error, "silent server stops receiving datagrams");
                return;
            }
        }
    }
}

async fn hold_connections(listener: TcpListener, counters: Arc<Counters>) {
    let mut held: Vec<TcpStream> = Vec::new();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                counters.connections.fetch_add(1, Ordering::SeqCst);
                // Past the cap a new connection is closed at once, which bounds the memory
                // a runaway client can make the fixture hold.
                if held.len() < MAX_HELD_CONNECTIONS {
                    held.push(stream);
                }
            }
            Err(error) => {
                tracing::debug!(%error, "silent server stops accepting connections");
                return;
            }
        }
    }
}

/// Connections held open at most; later ones are accepted, counted and closed.
const MAX_HELD_CONNECTIONS: usize = 1024;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::net::Ipv4Addr;

    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn silent_server_counts_and_never_answers() {
        let silent = SilentServer::start().await;

        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        client.send_to(b"query", silent.addr()).await.unwrap();
        let mut buffer = [0_u8; 512];
        let udp_answer =
            tokio::time::timeout(Duration::from_millis(200), client.recv_from(&mut buffer)).await;
        assert!(udp_answer.is_err(), "silent server answered over UDP");

        let mut stream = TcpStream::connect(silent.addr()).await.unwrap();
        let tcp_answer =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buffer)).await;
        assert!(tcp_answer.is_err(), "silent server sent or closed over TCP");

        assert_eq!(silent.datagram_count(), 1, "datagram count");
        assert_eq!(silent.connection_count(), 1, "connection count");
    }
}
