//! Challenge HTTP server for HTTP-based domain control validation tests.
//!
//! [`ChallengeServer`] serves HTTP/1.1 on a loopback address with a fixed [`Reply`] per
//! request path. A reply can be a status with headers and a body, a redirect with any
//! status and `Location`, a large body streamed in chunks, a body that drips one byte at a
//! time, or no response at all. The server records every request it receives and counts
//! every TCP connection it accepts, so a test can check what a client sent and prove that
//! a client never connected.
//!
//! [`ChallengeServer::start_https`] serves the same routes over TLS with a certificate
//! from [`crate::tls`], such as one issued by a [`crate::tls::TestCa`], a self-signed one
//! or one for the wrong name. The server owns its accept loop, never sends a response
//! before a request is read and does not speak HTTP/2.
//!
//! # Example
//!
//! ```no_run
//! use std::net::{Ipv4Addr, SocketAddr};
//! use std::time::Duration;
//!
//! use mpic_testkit::http::{ChallengeServer, Reply, Routes};
//!
//! # async fn example() {
//! let target = ChallengeServer::start_on(
//!     SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0)),
//!     Routes::new().route("/.well-known/acme-challenge/token", Reply::ok("token.thumbprint")),
//! )
//! .await;
//! let server = ChallengeServer::start(
//!     Routes::new()
//!         .route("/moved", Reply::redirect(308, &target.url("/.well-known/acme-challenge/token")))
//!         .route("/slow", Reply::drip(Duration::from_secs(1)))
//!         .route("/huge", Reply::large_body(10 * 1024 * 1024)),
//! )
//! .await;
//! // Point the HTTP client under test at `server.url("/moved")`, then:
//! assert_eq!(target.requests()[0].host.as_deref(), Some("127.0.0.2"));
//! # }
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::header::{HeaderName, HeaderValue, LOCATION};
use http::{HeaderMap, Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::lock;
use crate::loopback::{bind_tcp, local_addr};
use crate::tls::ServerCertificate;

/// An HTTP/1.1 server on a loopback address that responds to each path with a fixed
/// [`Reply`].
///
/// The server stops, and closes every open connection, when this value is dropped.
pub struct ChallengeServer {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
    accept_task: JoinHandle<()>,
}

impl ChallengeServer {
    /// Starts a server for `routes` on a free port of `127.0.0.1`.
    ///
    /// # Panics
    ///
    /// Panics if no port can be bound.
    pub async fn start(routes: Routes) -> ChallengeServer {
        ChallengeServer::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), routes).await
    }

    /// Starts a server for `routes` on `addr`, such as `127.0.0.2:0` or `[::1]:0`.
    ///
    /// # Panics
    ///
    /// Panics if `addr` is not a loopback address or cannot be bound.
    pub async fn start_on(addr: SocketAddr, routes: Routes) -> ChallengeServer {
        let listener = bind_tcp(addr).await;
        ChallengeServer::serve(listener, routes, Transport::Plain)
    }

    /// Starts an HTTPS server for `routes` on a free port of `127.0.0.1`, presenting
    /// `certificate` and negotiating ALPN `http/1.1`.
    ///
    /// # Panics
    ///
    /// Panics if no port can be bound or rustls rejects the certificate.
    pub async fn start_https(routes: Routes, certificate: &ServerCertificate) -> ChallengeServer {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        ChallengeServer::start_https_on(addr, routes, certificate).await
    }

    /// Starts an HTTPS server for `routes` on `addr`, presenting `certificate` and
    /// negotiating ALPN `http/1.1`.
    ///
    /// # Panics
    ///
    /// Panics if `addr` is not a loopback address or cannot be bound, or if rustls rejects
    /// the certificate.
    pub async fn start_https_on(
        addr: SocketAddr,
        routes: Routes,
        certificate: &ServerCertificate,
    ) -> ChallengeServer {
        let config = certificate.server_config(vec![b"http/1.1".to_vec()]);
        let listener = bind_tcp(addr).await;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        ChallengeServer::serve(listener, routes, Transport::Tls(acceptor))
    }

    /// Starts the accept loop on `listener` with `transport` for each connection.
    fn serve(listener: TcpListener, routes: Routes, transport: Transport) -> ChallengeServer {
        let addr = local_addr(&listener.local_addr());
        let scheme = match transport {
            Transport::Plain => "http",
            Transport::Tls(_) => "https",
        };
        let state = Arc::new(State {
            routes: Mutex::new(routes.routes),
            requests: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let accept_task = tokio::spawn(accept_loop(listener, transport, state.clone()));
        ChallengeServer {
            addr,
            scheme,
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

    /// Returns the URL of `path` on this server, such as `http://127.0.0.1:PORT/path` or
    /// `https://[::1]:PORT/path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Sets the reply for `path`, replacing any earlier one, while the server runs.
    ///
    /// Use it for a route that needs the server's own address, such as a redirect to
    /// itself.
    pub fn set_route(&self, path: &str, reply: Reply) {
        lock(&self.state.routes).insert(path.to_owned(), reply);
    }

    /// Returns every request received so far, oldest first.
    ///
    /// A request is recorded when its head has been read, before the reply is sent.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// Returns how many TCP connections the server accepted, counted before any TLS
    /// handshake or request is read.
    pub fn connection_count(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for ChallengeServer {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.accept_task.abort();
    }
}

/// The replies of a [`ChallengeServer`], by request path.
///
/// A path matches exactly and without the query string. A path without a route gets
/// `404 Not Found` with an empty body.
#[derive(Clone, Debug, Default)]
pub struct Routes {
    routes: HashMap<String, Reply>,
}

impl Routes {
    /// Creates an empty set of routes.
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Adds `reply` for `path`, replacing any earlier reply for it.
    pub fn route(mut self, path: &str, reply: Reply) -> Routes {
        self.routes.insert(path.to_owned(), reply);
        self
    }
}

/// The response a [`ChallengeServer`] sends for one path.
#[derive(Clone, Debug)]
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: ReplyBody,
}

impl Reply {
    /// Creates a `200 OK` reply with `body`.
    pub fn ok(body: impl Into<Bytes>) -> Reply {
        Reply {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: ReplyBody::Bytes(body.into()),
        }
    }

    /// Creates a reply with `status` and an empty body.
    ///
    /// # Panics
    ///
    /// Panics if `status` is outside 100 to 999.
    pub fn status(status: u16) -> Reply {
        Reply::ok(Bytes::new()).with_status(status)
    }

    /// Creates a reply with `status`, a `Location: location` header and an empty body.
    ///
    /// Any status and any location are allowed, such as 303, 200 or a URL with a port
    /// or scheme a client must reject, so a test can check the client's redirect rules.
    ///
    /// # Panics
    ///
    /// Panics if `status` is outside 100 to 999 or `location` contains a control
    /// character.
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::status(status).with_header(LOCATION.as_str(), location)
    }

    /// Creates a `200 OK` reply whose body is `length` bytes of `x`, streamed in 64 KiB
    /// chunks with chunked transfer encoding and no `Content-Length`.
    ///
    /// Add a `Content-Length` header with [`Reply::with_header`] to announce the length.
    pub fn large_body(length: u64) -> Reply {
        Reply {
            body: ReplyBody::Filler(length),
            ..Reply::ok(Bytes::new())
        }
    }

    /// Creates a `200 OK` reply that sends its headers, then one byte of body per
    /// `interval`.
    ///
    /// The body ends when the client closes the connection, or after 10 minutes so that
    /// the fixture's work stays bounded.
    pub fn drip(interval: Duration) -> Reply {
        Reply {
            body: ReplyBody::Drip(interval),
            ..Reply::ok(Bytes::new())
        }
    }

    /// Creates a reply that reads the request and then sends nothing, keeping the
    /// connection open until the client closes it or the server is dropped.
    pub fn no_response() -> Reply {
        Reply {
            body: ReplyBody::Silent,
            ..Reply::ok(Bytes::new())
        }
    }

    /// Sets the status code.
    ///
    /// # Panics
    ///
    /// Panics if `status` is outside 100 to 999.
    pub fn with_status(mut self, status: u16) -> Reply {
        self.status = StatusCode::from_u16(status)
            .unwrap_or_else(|error| panic!("HTTP status {status} is not valid: {error}"));
        self
    }

    /// Adds a header. Adding the same name twice sends both values.
    ///
    /// # Panics
    ///
    /// Panics if `name` is not a valid header name or `value` contains a control
    /// character.
    pub fn with_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Reply {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|error| panic!("{name:?} is not a valid header name: {error}"));
        let value = value.as_ref();
        let header_value = HeaderValue::from_bytes(value).unwrap_or_else(|error| {
            panic!("{value:?} is not a valid value for header {name}: {error}")
        });
        self.headers.push((header_name, header_value));
        self
    }

    /// Replaces the body with `body`.
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = ReplyBody::Bytes(body.into());
        self
    }
}

/// One request received by a [`ChallengeServer`].
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The request method.
    pub method: Method,
    /// The request target as sent, usually the path and query.
    pub target: String,
    /// The path of the request target, without the query.
    pub path: String,
    /// The `Host` header, if present and valid UTF-8.
    pub host: Option<String>,
    /// All request headers, `Host` included.
    pub headers: HeaderMap,
    /// The HTTP version of the request.
    pub version: Version,
    /// The client's address.
    pub peer: SocketAddr,
}

/// The layer between an accepted TCP connection and HTTP.
enum Transport {
    Plain,
    Tls(TlsAcceptor),
}

#[derive(Clone, Debug)]
enum ReplyBody {
    Bytes(Bytes),
    Filler(u64),
    Drip(Duration),
    Silent,
}

struct State {
    routes: Mutex<HashMap<String, Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    connections: AtomicUsize,
}

type ResponseBody = BoxBody<Bytes, Infallible>;

async fn accept_loop(listener: TcpListener, transport: Transport, state: Arc<State>) {
    let transport = Arc::new(transport);
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "challenge server failed to accept a connection");
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
        connections.spawn(serve_connection(
            stream,
            peer,
            transport.clone(),
            state.clone(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    transport: Arc<Transport>,
    state: Arc<State>,
) {
    match transport.as_ref() {
        Transport::Plain => serve_http(stream, peer, state).await,
        Transport::Tls(acceptor) => match acceptor.accept(stream).await {
            Ok(tls_stream) => serve_http(tls_stream, peer, state).await,
            Err(error) => {
                tracing::debug!(%error, %peer, "challenge server TLS handshake failed");
            }
        },
    }
}

async fn serve_http<S>(stream: S, peer: SocketAddr, state: Arc<State>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| respond(request, peer, state.clone()));
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, %peer, "challenge server connection ended with an error");
    }
}

async fn respond(
    request: Request<Incoming>,
    peer: SocketAddr,
    state: Arc<State>,
) -> Result<Response<ResponseBody>, Infallible> {
    let path = request.uri().path().to_owned();
    lock(&state.requests).push(record(&request, peer));
    let reply = lock(&state.routes).get(&path).cloned();
    let Some(reply) = reply else {
        return Ok(build_response(StatusCode::NOT_FOUND, &[], empty_body()));
    };

    let body = match reply.body {
        ReplyBody::Bytes(bytes) => Full::new(bytes).boxed(),
        ReplyBody::Filler(length) => filler_body(length),
        ReplyBody::Drip(interval) => drip_body(interval),
        ReplyBody::Silent => return std::future::pending().await,
    };
    Ok(build_response(reply.status, &reply.headers, body))
}

fn record(request: &Request<Incoming>, peer: SocketAddr) -> RecordedRequest {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    RecordedRequest {
        method: request.method().clone(),
        target: request.uri().to_string(),
        path: request.uri().path().to_owned(),
        host,
        headers: request.headers().clone(),
        version: request.version(),
        peer,
    }
}

fn build_response(
    status: StatusCode,
    headers: &[(HeaderName, HeaderValue)],
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in headers {
        response.headers_mut().append(name.clone(), value.clone());
    }
    response
}

fn empty_body() -> ResponseBody {
    Empty::new().boxed()
}

/// Streams `length` bytes of `x` in chunks of at most [`CHUNK_SIZE`] bytes.
fn filler_body(length: u64) -> ResponseBody {
    static CHUNK: [u8; CHUNK_SIZE] = [b'x'; CHUNK_SIZE];
    let chunk_size = CHUNK_SIZE as u64;
    let chunk_count = length.div_ceil(chunk_size);
    let chunks = futures::stream::iter(0..chunk_count).map(move |index| {
        let remaining = length - index * chunk_size;
        // The chunk is at most CHUNK_SIZE bytes, which fits in usize.
        let size = remaining.min(chunk_size) as usize;
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(&CHUNK[..size])))
    });
    BodyExt::boxed(StreamBody::new(chunks))
}

/// Streams one byte of `x` per `interval`, for at most [`DRIP_LIMIT`].
fn drip_body(interval: Duration) -> ResponseBody {
    let deadline = Instant::now() + DRIP_LIMIT;
    let drops = futures::stream::unfold((), move |()| async move {
        tokio::time::sleep(interval).await;
        if Instant::now() >= deadline {
            return None;
        }
        Some((
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"x"))),
            (),
        ))
    });
    BodyExt::boxed(StreamBody::new(drops))
}

/// The size of each chunk of a [`Reply::large_body`].
const CHUNK_SIZE: usize = 64 * 1024;

/// How long a [`Reply::drip`] body lasts at most.
const DRIP_LIMIT: Duration = Duration::from_secs(600);

/// Connections served at once at most; later ones are accepted, counted and closed.
const MAX_OPEN_CONNECTIONS: usize = 1024;
