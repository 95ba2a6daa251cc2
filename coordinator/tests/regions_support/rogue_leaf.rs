//! A leafnode connection to the hub made by hand, as a region whose leaf node is
//! compromised could make it. It has the region's valid credentials and certificate, but no
//! nats-server runs on the region's side, so nothing there enforces the permissions that
//! the hub sends back.
//!
//! It speaks the nats-server 2.9 leafnode protocol: the hub greets with a plaintext `INFO`
//! line, the client upgrades to TLS and sends `CONNECT`, then `LS+ <subject>` registers
//! interest and `LMSG <subject> <size>` publishes.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

/// How long to wait for the hub's greeting and for the `PONG` after a `PING`.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The granularity of reads while collecting what the hub sends.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A leafnode connection to the hub that ignores every permission the hub sends.
pub struct RogueLeaf {
    stream: StreamOwned<ClientConnection, TcpStream>,
    /// Everything the hub sent after `CONNECT`, as text.
    received: String,
    /// Set once the hub closed the connection.
    closed: bool,
}

impl RogueLeaf {
    /// Connects to the hub's leafnode listener on `port` and logs in as `user`.
    ///
    /// # Panics
    ///
    /// Panics if the connection, the TLS handshake or the login fails.
    pub fn connect(port: u16, user: &str, password: &str, tls: ClientConfig) -> RogueLeaf {
        let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .unwrap_or_else(|error| panic!("cannot connect to the hub leafnode port: {error}"));
        tcp.set_read_timeout(Some(READ_TIMEOUT))
            .unwrap_or_else(|error| panic!("cannot set a read timeout: {error}"));
        let greeting = read_plaintext_line(&tcp);
        assert!(greeting.starts_with("INFO "), "hub greeting: {greeting:?}");

        let server_name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
        let connection = ClientConnection::new(Arc::new(tls), server_name)
            .unwrap_or_else(|error| panic!("cannot start a TLS client: {error}"));
        let mut leaf = RogueLeaf {
            stream: StreamOwned::new(connection, tcp),
            received: String::new(),
            closed: false,
        };
        let connect = serde_json::json!({
            "user": user,
            "pass": password,
            "name": "rogue-leaf",
            "headers": true,
            "tls_required": true,
        });
        leaf.send(&format!("CONNECT {connect}\r\n"));
        leaf.ping();
        assert!(
            !leaf.closed,
            "the hub closed the rogue leaf connection at login: {}",
            leaf.received
        );
        leaf
    }

    /// Registers interest in `subject`, as a leaf node does for its local subscriptions.
    pub fn subscribe(&mut self, subject: &str) {
        self.send(&format!("LS+ {subject}\r\n"));
    }

    /// Publishes `payload` on `subject` into the hub.
    pub fn publish(&mut self, subject: &str, payload: &str) {
        self.send(&format!(
            "LMSG {subject} {}\r\n{payload}\r\n",
            payload.len()
        ));
    }

    /// Publishes `payload` on `subject` for the members of `queue_group`. The hub hands a
    /// message from a leaf connection to queue subscribers only when it names their group.
    pub fn publish_to_queue(&mut self, subject: &str, queue_group: &str, payload: &str) {
        let length = payload.len();
        self.send(&format!(
            "LMSG {subject} | {queue_group} {length}\r\n{payload}\r\n"
        ));
    }

    /// Sends `PING` and collects what the hub sends until its `PONG`, so that the hub has
    /// processed every line sent before. Stops early if the hub closes the connection.
    pub fn ping(&mut self) {
        self.send("PING\r\n");
        let deadline = Instant::now() + READ_TIMEOUT;
        while !self.closed && !self.received.contains("PONG\r\n") {
            assert!(
                Instant::now() < deadline,
                "no PONG from the hub within {READ_TIMEOUT:?}; received: {}",
                self.received
            );
            self.read_available();
        }
        self.received = self.received.replacen("PONG\r\n", "", 1);
    }

    /// Collects what the hub sends during `duration` and returns everything received since
    /// the login.
    pub fn received_after(&mut self, duration: Duration) -> &str {
        let deadline = Instant::now() + duration;
        while !self.closed && Instant::now() < deadline {
            self.read_available();
        }
        &self.received
    }

    /// Reports whether the hub has closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn send(&mut self, text: &str) {
        if self.closed {
            return;
        }
        let written = self
            .stream
            .write_all(text.as_bytes())
            .and_then(|()| self.stream.flush());
        if written.is_err() {
            self.closed = true;
        }
    }

    /// Reads what arrives within [`POLL_INTERVAL`] into `received`.
    fn read_available(&mut self) {
        let set_timeout = self.stream.sock.set_read_timeout(Some(POLL_INTERVAL));
        set_timeout.unwrap_or_else(|error| panic!("cannot set a read timeout: {error}"));
        let mut buffer = [0_u8; 16 * 1024];
        match self.stream.read(&mut buffer) {
            Ok(0) => self.closed = true,
            Ok(count) => self
                .received
                .push_str(&String::from_utf8_lossy(&buffer[..count])),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => self.closed = true,
        }
    }
}

/// Reads one `\r\n`-terminated line before TLS starts, byte by byte so that no TLS data is
/// consumed.
fn read_plaintext_line(mut tcp: &TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0_u8; 1];
    while !line.ends_with(b"\r\n") {
        match tcp.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            Ok(_) => panic!("the hub closed the connection before its greeting"),
            Err(error) => panic!("cannot read the hub greeting: {error}"),
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}
