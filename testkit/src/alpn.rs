//! TLS server for RFC 8737 tls-alpn-01 validation tests.
//!
//! [`AlpnServer`] completes TLS handshakes on a loopback address with a certificate the
//! test gives it, usually one built by [`crate::tls::AcmeTlsAlpnCertificate`]. An
//! [`AlpnPolicy`] decides whether the server negotiates the `acme-tls/1` protocol (RFC
//! 8737 §6.2), negotiates no protocol, or rejects a client that offers only
//! `acme-tls/1`. The server records each ClientHello's server name (SNI) and offered
//! protocols, so a test can check that the validator sent the target's name, or the
//! reverse-mapping name for an IP target (RFC 8738 §6).
//!
//! After a handshake the server reads until the client closes the connection and sends
//! no application data, as RFC 8737 §3 expects of the exchange.
//!
//! # Example
//!
//! ```no_run
//! use mpic_testkit::alpn::{AlpnPolicy, AlpnServer};
//! use mpic_testkit::tls::AcmeTlsAlpnCertificate;
//!
//! # async fn example() {
//! let certificate = AcmeTlsAlpnCertificate::new("token.thumbprint", &["example.com"]).build();
//! let server = AlpnServer::start(certificate, AlpnPolicy::NegotiateAcmeTls1).await;
//! // Point the validator under test at `server.addr()` for example.com, then:
//! assert_eq!(server.client_hellos()[0].server_name.as_deref(), Some("example.com"));
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::LazyConfigAcceptor;

use crate::lock;
use crate::loopback::{bind_tcp, local_addr};
use crate::tls::ServerCertificate;

/// The ALPN protocol of tls-alpn-01 (RFC 8737 §6.2).
pub const ACME_TLS_1: &[u8] = b"acme-tls/1";

/// A TLS server on a loopback address for tls-alpn-01 tests.
///
/// The server stops, and closes every open connection, when this value is dropped.
pub struct AlpnServer {
    addr: SocketAddr,
    state: Arc<State>,
    accept_task: JoinHandle<()>,
}

impl AlpnServer {
    /// Starts a server on a free port of `127.0.0.1`.
    ///
    /// # Panics
    ///
    /// Panics if no port can be bound or rustls rejects the certificate.
    pub async fn start(certificate: ServerCertificate, policy: AlpnPolicy) -> AlpnServer {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        AlpnServer::start_on(addr, certificate, policy).await
    }

    /// Starts a server on `addr`, such as `[::1]:0`.
    ///
    /// # Panics
    ///
    /// Panics if `addr` is not a loopback address or cannot be bound, or if rustls rejects
    /// the certificate.
    pub async fn start_on(
        addr: SocketAddr,
        certificate: ServerCertificate,
        policy: AlpnPolicy,
    ) -> AlpnServer {
        AlpnServer::start_with_config(addr, server_config(&certificate, policy)).await
    }

    /// Starts a server on `addr` that handshakes with `config`, for cases that a certificate
    /// and an [`AlpnPolicy`] cannot describe: a single TLS version, a signing key that does
    /// not match the certificate, or a malformed or empty certificate chain.
    ///
    /// # Panics
    ///
    /// Panics if `addr` is not a loopback address or cannot be bound.
    pub async fn start_with_config(addr: SocketAddr, config: ServerConfig) -> AlpnServer {
        let listener = bind_tcp(addr).await;
        let addr = local_addr(&listener.local_addr());
        let state = Arc::new(State {
            config: Mutex::new(Arc::new(config)),
            client_hellos: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let accept_task = tokio::spawn(accept_loop(listener, state.clone()));
        AlpnServer {
            addr,
            state,
            accept_task,
        }
    }

    /// Returns the address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Replaces the certificate and policy for handshakes that start after this call.
    ///
    /// # Panics
    ///
    /// Panics if rustls rejects the certificate.
    pub fn set_certificate(&self, certificate: ServerCertificate, policy: AlpnPolicy) {
        *lock(&self.state.config) = Arc::new(server_config(&certificate, policy));
    }

    /// Returns every ClientHello received so far, oldest first.
    ///
    /// A ClientHello is recorded before the server responds to it, so once a client's
    /// handshake has ended, successfully or not, its ClientHello is in the list.
    pub fn client_hellos(&self) -> Vec<ClientHelloRecord> {
        lock(&self.state.client_hellos).clone()
    }

    /// Returns how many TCP connections the server accepted.
    pub fn connection_count(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for AlpnServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.accept_task.abort();
    }
}

/// The server's response to the ALPN extension of a ClientHello (RFC 7301 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlpnPolicy {
    /// The server supports only `acme-tls/1`. It negotiates that protocol when the client
    /// offers it, rejects a client that offers only other protocols, and negotiates none
    /// with a client that sends no ALPN extension.
    NegotiateAcmeTls1,
    /// The server has no ALPN support, so the handshake succeeds with no protocol
    /// negotiated whatever the client offers.
    NegotiateNothing,
    /// The server supports only `http/1.1`, so a client that offers only `acme-tls/1`
    /// gets a `no_application_protocol` alert (RFC 7301 §3.2).
    RejectAcmeTls1,
}

/// The parts of one ClientHello that a tls-alpn-01 test checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHelloRecord {
    /// The server name from the SNI extension, if the client sent one.
    pub server_name: Option<String>,
    /// The protocols from the ALPN extension, in the client's order. Empty if the client
    /// sent no ALPN extension.
    pub alpn_protocols: Vec<Vec<u8>>,
    /// The client's address.
    pub peer: SocketAddr,
}

struct State {
    /// The configuration for new handshakes, replaced by `set_certificate`.
    config: Mutex<Arc<ServerConfig>>,
    client_hellos: Mutex<Vec<ClientHelloRecord>>,
    connections: AtomicUsize,
}

fn server_config(certificate: &ServerCertificate, policy: AlpnPolicy) -> ServerConfig {
    let protocols = match policy {
        AlpnPolicy::NegotiateAcmeTls1 => vec![ACME_TLS_1.to_vec()],
        AlpnPolicy::NegotiateNothing => Vec::new(),
        AlpnPolicy::RejectAcmeTls1 => vec![b"http/1.1".to_vec()],
    };
    certificate.server_config(protocols)
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "ALPN server failed to accept a connection");
                continue;
            }
        };
        state.connections.fetch_add(1, Ordering::SeqCst);
        while connections.try_join_next().is_some() {}
        // Past the cap a new connection is closed at once, which bounds the tasks a
        // runaway client can make the fixture run.
        if connections.len() >= MAX_OPEN_CONNECTIONS {
            continue;
        }
        connections.spawn(handshake(stream, peer, state.clone()));
    }
}

async fn handshake(stream: TcpStream, peer: SocketAddr, state: Arc<State>) {
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match acceptor.await {
        Ok(start) => start,
        Err(error) => {
            tracing::debug!(%error, %peer, "ALPN server read no valid ClientHello");
            return;
        }
    };

    let hello = start.client_hello();
    let record = ClientHelloRecord {
        server_name: hello.server_name().map(str::to_owned),
        alpn_protocols: hello
            .alpn()
            .map(|protocols| protocols.map(<[u8]>::to_vec).collect())
            .unwrap_or_default(),
        peer,
    };
    lock(&state.client_hellos).push(record);

    let config = lock(&state.config).clone();
    let mut tls_stream = match start.into_stream(config).await {
        Ok(tls_stream) => tls_stream,
        Err(error) => {
            tracing::debug!(%error, %peer, "ALPN server handshake failed");
            return;
        }
    };

    // Wait for the client to close, bounded so an idle client cannot hold the task.
    let mut buffer = [0_u8; 1024];
    let drain = async {
        while let Ok(count) = tls_stream.read(&mut buffer).await {
            if count == 0 {
                break;
            }
        }
    };
    if tokio::time::timeout(IDLE_TIMEOUT, drain).await.is_err() {
        tracing::debug!(%peer, "ALPN server closes an idle connection");
    }
}

/// How long the server keeps a connection open after the handshake while the client
/// neither sends nor closes.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once at most; later ones are accepted, counted and closed.
const MAX_OPEN_CONNECTIONS: usize = 1024;
