//! HTTP-based DCV checks against servers that misbehave on purpose: endless interim responses,
//! headers that never end, HTTP/0.9 replies, bodies that never stop, and requests whose
//! challenge value is blank. None of them may pass, and each must end within the fetch budget.
//!
//! The servers listen on loopback, so the checks run with `AddressPolicy::AllowNonPublic`. The
//! test of disguised internal addresses only parses URLs and checks their addresses with the
//! guard, so it opens no connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mpic_shared::dcv::{AcmeHttp01Parameters, UrlScheme, WebsiteChangeParameters};
use mpic_shared::reply::CheckResponse;
use mpic_testkit::dns::{TestDns, Zone};
use mpic_testkit::http::{ChallengeServer, Reply, Routes};
use mpic_worker::checks::http::HttpChecker;
use mpic_worker::fetch::{AddressGuard, AddressPolicy, FetchSettings, Fetcher};
use mpic_worker::resolver::{NameServers, ResolverFactory, ResolverSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::{Host, Url};

/// The whole-fetch budget of these tests. A misbehaving server must be cut off by it.
const FETCH_BUDGET: Duration = Duration::from_secs(1);

/// The maximum time a check may take: the budget plus room for a loaded machine.
const CHECK_BOUND: Duration = Duration::from_secs(3);

const TOKEN: &str = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
const CHALLENGE_VALUE: &str = "challenge-value-4711";

#[tokio::test]
async fn blank_challenge_value_never_passes() {
    let server = ChallengeServer::start(
        Routes::new()
            .route(
                "/.well-known/pki-validation/doc.txt",
                Reply::ok("any page at all"),
            )
            .route(
                &format!("/.well-known/acme-challenge/{TOKEN}"),
                Reply::ok("  \n"),
            ),
    )
    .await;
    let harness = Harness::start(server.port()).await;

    for value in ["", "   "] {
        let reply = harness
            .checker
            .website_change("challenge.http.test", &website_change(value))
            .await
            .into_check_response();
        assert!(
            !reply.check_passed,
            "website-change with challenge value {value:?} passed on any page"
        );
        assert!(
            !reply.check_completed,
            "website-change with challenge value {value:?} is an invalid request"
        );

        let reply = harness
            .checker
            .acme_http_01("challenge.http.test", &acme_http_01(value))
            .await
            .into_check_response();
        assert!(
            !reply.check_passed,
            "acme-http-01 with key authorization {value:?} passed on a blank body"
        );
    }
}

#[test]
fn disguised_internal_literals_blocked() {
    let guard = AddressGuard::new(AddressPolicy::PublicOnly);
    let urls = [
        "http://0x7f000001/",
        "http://2130706433/",
        "http://017700000001/",
        "http://127.1/",
        "http://0/",
        "http://127.0.0.1./",
        "http://user:password@127.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[0:0:0:0:0:ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://[fe80::1]/",
        "http://[::]/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://169.254.43518/",
        "http://%31%36%39.254.169.254/",
    ];
    for text in urls {
        let url = Url::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
        let address = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            other => panic!("{text}: parsed as {other:?}, not as an IP literal"),
        };
        assert!(
            guard.check(address).is_err(),
            "{text} (address {address}) passes the guard"
        );
    }
}

#[tokio::test]
async fn misbehaving_servers_never_pass() {
    let endless_interim = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(64);
    let cases: [(&str, Script); 7] = [
        (
            "endless 100 Continue",
            Script::Repeat {
                chunk: endless_interim,
                interval: Duration::from_millis(20),
            },
        ),
        (
            "HTTP/0.9 reply",
            Script::Once(format!("{CHALLENGE_VALUE}\r\n").into_bytes()),
        ),
        (
            "headers that drip",
            Script::Repeat {
                chunk: [b"HTTP/1.1 200 OK\r\n".as_slice(), b"X-Slow: 1\r\n"].concat(),
                interval: Duration::from_millis(50),
            },
        ),
        (
            "header flood",
            Script::Repeat {
                chunk: b"X-Flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
                    .repeat(512),
                interval: Duration::from_millis(1),
            },
        ),
        (
            "folded Location on a redirect",
            Script::Once(
                b"HTTP/1.1 302 Found\r\nLocation: /a\r\n http://0.0.0.0/\r\n\
                  Content-Length: 0\r\n\r\n"
                    .to_vec(),
            ),
        ),
        (
            "second response smuggled after an empty body",
            Script::Once(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\
                     HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{CHALLENGE_VALUE}",
                    CHALLENGE_VALUE.len()
                )
                .into_bytes(),
            ),
        ),
        (
            "chunked body that never ends, value past the cap",
            Script::Repeat {
                chunk: b"400\r\n"
                    .iter()
                    .copied()
                    .chain([b'x'; 0x400])
                    .chain(*b"\r\n")
                    .collect(),
                interval: Duration::from_millis(1),
            },
        ),
    ];

    for (case, script) in cases {
        let server = RawServer::start(script).await;
        let harness = Harness::start(server.addr.port()).await;
        let started = Instant::now();

        let reply: CheckResponse = harness
            .checker
            .website_change("challenge.http.test", &website_change(CHALLENGE_VALUE))
            .await
            .into_check_response();

        assert!(!reply.check_passed, "case {case:?}: passed, {reply:?}");
        assert!(
            started.elapsed() < CHECK_BOUND,
            "case {case:?}: took {:?}",
            started.elapsed()
        );
        assert!(
            server.connections() <= 1,
            "case {case:?}: {} connections, a redirect was followed",
            server.connections()
        );
    }
}

fn website_change(challenge_value: &str) -> WebsiteChangeParameters {
    WebsiteChangeParameters {
        challenge_value: challenge_value.to_owned(),
        http_token_path: "doc.txt".to_owned(),
        url_scheme: UrlScheme::Http,
        http_headers: None,
        match_regex: None,
        require_exact_case: true,
    }
}

fn acme_http_01(key_authorization: &str) -> AcmeHttp01Parameters {
    AcmeHttp01Parameters {
        token: TOKEN.to_owned(),
        key_authorization: key_authorization.to_owned(),
        http_headers: None,
    }
}

/// A checker whose resolver maps `challenge.http.test` to 127.0.0.1 and whose HTTP port is the
/// test server's.
struct Harness {
    checker: HttpChecker,
    /// Keeps the DNS server running for the checker's lookups.
    _dns: TestDns,
}

impl Harness {
    async fn start(http_port: u16) -> Harness {
        let dns = TestDns::start([Zone::new("http.test.", "challenge  A  127.0.0.1")]).await;
        let resolver_settings = ResolverSettings {
            name_servers: NameServers::Configured(vec![dns.addr()]),
            ..ResolverSettings::default()
        };
        let resolvers =
            ResolverFactory::new(&resolver_settings).expect("resolver settings are valid");

        let mut settings = FetchSettings::new(FETCH_BUDGET);
        settings.http_port = http_port;
        let fetcher = Fetcher::new(AddressGuard::new(AddressPolicy::AllowNonPublic), settings)
            .expect("fetcher setup must succeed");

        Harness {
            checker: HttpChecker::new(resolvers, fetcher),
            _dns: dns,
        }
    }
}

/// What a [`RawServer`] writes after it has read the request head.
#[derive(Clone)]
enum Script {
    /// These bytes, then the connection is closed.
    Once(Vec<u8>),
    /// This chunk again and again, with a pause between, until the client goes away.
    Repeat { chunk: Vec<u8>, interval: Duration },
}

/// A TCP server on 127.0.0.1 that replies to every connection with a [`Script`], byte for byte.
/// It stops when dropped.
struct RawServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl RawServer {
    async fn start(script: Script) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("listener has an address");
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(play(stream, script.clone()));
            }
        });
        RawServer {
            addr,
            connections,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads the request head, then plays the script. A repeating script stops after
/// [`MAX_REPEATS`] chunks or [`CHECK_BOUND`], whichever comes first.
async fn play(mut stream: tokio::net::TcpStream, script: Script) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
    }

    match script {
        Script::Once(bytes) => {
            // The client may have given up already, which is what some cases test.
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Script::Repeat { chunk, interval } => {
            let started = Instant::now();
            for _ in 0..MAX_REPEATS {
                if started.elapsed() > CHECK_BOUND || stream.write_all(&chunk).await.is_err() {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        }
    }
}

/// Upper bound on the chunks a repeating script writes to one connection.
const MAX_REPEATS: usize = 10_000;
