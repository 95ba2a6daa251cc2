//! Fetcher tests against real HTTP and HTTPS servers on loopback and an in-process DNS
//! authority.
//!
//! The servers below are written on raw TCP so a test controls every byte: redirects with any
//! `Location`, a body that drips, a server that never responds, a 10 MiB body. Each server counts
//! the connections it accepted, which is how the guard tests prove that a refused fetch never
//! connected.
//!
//! Loopback is the only place a test may connect to, so every test that expects a response runs
//! with `AddressPolicy::AllowNonPublic`. The `PublicOnly` tests can only show refusals: they
//! check the error and that no connection arrived.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;
use http::{HeaderMap, HeaderValue, StatusCode};
use mpic_testkit::dns::{Behavior, TestDns, Zone};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use url::Url;

use mpic_worker::fetch::{
    AddressGuard, AddressPolicy, BODY_LIMIT, FetchError, FetchOutcome, FetchSettings, Fetcher,
    TimeLimit, TlsVerification, UrlProblem,
};

/// The total budget of tests that expect a response: long enough for a loaded CI machine.
const RELAXED_BUDGET: Duration = Duration::from_secs(10);

/// How much later than its budget a timed-out fetch may return in these tests, to absorb
/// scheduling delays on a loaded machine.
const TIMING_SLACK: Duration = Duration::from_millis(1500);

// ---------------------------------------------------------------------------------------------
// Normal responses

#[tokio::test]
async fn plain_200_by_ip_literal() {
    let server = TestServer::start(|_| Reply::ok("challenge-value")).await;
    let harness = Harness::allow_non_public(&server).await;
    let url = server.url("/.well-known/pki-validation/token.txt");

    let outcome = harness.fetch(&url).await.expect("fetch must succeed");

    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.body, b"challenge-value");
    assert!(!outcome.truncated, "a short body is not truncated");
    assert!(outcome.history.is_empty(), "no redirect was followed");
    assert_eq!(outcome.final_url, url);
    assert_eq!(outcome.resolved_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn plain_200_by_name() {
    let server = TestServer::start(|_| Reply::ok("by name")).await;
    let harness = Harness::allow_non_public(&server).await;
    let url = harness.named_url("www", &server, "/file");

    let outcome = harness.fetch(&url).await.expect("fetch must succeed");

    assert_eq!(outcome.status, StatusCode::OK);
    assert_eq!(outcome.body, b"by name");
    assert_eq!(outcome.resolved_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("host"),
        Some(format!("www.fetch.test:{}", server.addr.port()).as_str()),
        "the Host header must name the host of the URL, not the address"
    );
}

#[tokio::test]
async fn non_success_status_is_an_outcome() {
    let server = TestServer::start(|_| Reply::status(404, "not here")).await;
    let harness = Harness::allow_non_public(&server).await;

    let outcome = harness
        .fetch(&server.url("/missing"))
        .await
        .expect("a 404 is an outcome, not an error");

    assert_eq!(outcome.status, StatusCode::NOT_FOUND);
    assert_eq!(outcome.body, b"not here");
}

#[tokio::test]
async fn request_headers_sent() {
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let harness = Harness::allow_non_public(&server).await;
    let mut headers = HeaderMap::new();
    headers.insert("x-validation", HeaderValue::from_static("yes"));

    harness
        .fetcher
        .fetch(&harness.resolver, &server.url("/"), &headers)
        .await
        .expect("fetch must succeed");

    let requests = server.requests();
    let request = &requests[0];
    assert_eq!(request.method, "GET");
    assert_eq!(request.header("x-validation"), Some("yes"));
    assert_eq!(
        request.header("user-agent"),
        Some(mpic_worker::fetch::USER_AGENT)
    );
    assert_eq!(
        request.header("accept-encoding"),
        None,
        "the fetcher must not ask for compressed content"
    );
    assert_eq!(request.header("cookie"), None);
    assert_eq!(request.header("referer"), None);
}

#[tokio::test]
async fn caller_user_agent_replaces_default() {
    let server = TestServer::start(|_| Reply::ok("ok")).await;
    let harness = Harness::allow_non_public(&server).await;
    let mut headers = HeaderMap::new();
    headers.insert("user-agent", HeaderValue::from_static("applicant-agent"));

    harness
        .fetcher
        .fetch(&harness.resolver, &server.url("/"), &headers)
        .await
        .expect("fetch must succeed");

    let requests = server.requests();
    assert_eq!(requests[0].header("user-agent"), Some("applicant-agent"));
}

// ---------------------------------------------------------------------------------------------
// Redirects

#[tokio::test]
async fn allowed_redirect_statuses_followed() {
    for status in [301, 302, 307, 308] {
        let server = TestServer::start(move |request| match request.path.as_str() {
            "/start" => Reply::redirect(status, "/final"),
            _ => Reply::ok("arrived"),
        })
        .await;
        let harness = Harness::allow_non_public(&server).await;
        let start = server.url("/start");

        let outcome = harness
            .fetch(&start)
            .await
            .unwrap_or_else(|error| panic!("status {status}: fetch failed: {error}"));

        assert_eq!(outcome.status, StatusCode::OK, "status {status}");
        assert_eq!(outcome.body, b"arrived", "status {status}");
        assert_eq!(outcome.final_url, server.url("/final"), "status {status}");
        assert_eq!(outcome.history.len(), 1, "status {status}");
        assert_eq!(
            outcome.history[0].status.as_u16(),
            status,
            "status {status}"
        );
        assert_eq!(outcome.history[0].url, start, "status {status}");
        assert_eq!(
            server.accepted(),
            2,
            "status {status}: each hop uses a fresh connection"
        );
    }
}

#[tokio::test]
async fn other_redirect_statuses_rejected() {
    for status in [300, 303, 304, 305] {
        let server = TestServer::start(move |request| match request.path.as_str() {
            "/start" => Reply::redirect(status, "/final"),
            _ => Reply::ok("must not be reached"),
        })
        .await;
        let harness = Harness::allow_non_public(&server).await;

        let error = harness
            .fetch(&server.url("/start"))
            .await
            .expect_err("the redirect must not be followed");

        assert!(
            matches!(&error, FetchError::DisallowedRedirectStatus { status: got, .. } if got.as_u16() == status),
            "status {status}: unexpected error {error:?}"
        );
        assert_eq!(server.paths(), ["/start"], "status {status}");
    }
}

#[tokio::test]
async fn relative_location_resolved() {
    let server = TestServer::start(|request| match request.path.as_str() {
        "/dir/start" => Reply::redirect(302, "next?x=1"),
        "/dir/next?x=1" => Reply::redirect(301, "../other"),
        _ => Reply::ok("done"),
    })
    .await;
    let harness = Harness::allow_non_public(&server).await;

    let outcome = harness
        .fetch(&server.url("/dir/start"))
        .await
        .expect("fetch must succeed");

    assert_eq!(outcome.final_url, server.url("/other"));
    assert_eq!(server.paths(), ["/dir/start", "/dir/next?x=1", "/other"]);
}

#[tokio::test]
async fn redirect_to_other_host_resolved() {
    let server = TestServer::start(|request| match request.path.as_str() {
        "/start" => Reply::redirect_to_host("www.fetch.test", "/final"),
        _ => Reply::ok("other host"),
    })
    .await;
    let harness = Harness::allow_non_public(&server).await;

    let outcome = harness
        .fetch(&server.url("/start"))
        .await
        .expect("fetch must succeed");

    assert_eq!(
        outcome.final_url,
        harness.named_url("www", &server, "/final")
    );
    assert_eq!(outcome.body, b"other host");
    assert_eq!(
        harness
            .dns
            .query_count_for("www.fetch.test.", RecordType::A),
        1,
        "the redirect target must be looked up"
    );
}

#[tokio::test]
async fn redirect_to_ftp_rejected() {
    let server = TestServer::start(|_| Reply::redirect(302, "ftp://127.0.0.1/file")).await;
    let harness = Harness::allow_non_public(&server).await;

    let error = harness
        .fetch(&server.url("/start"))
        .await
        .expect_err("an ftp redirect must fail");

    assert!(
        matches!(error, FetchError::DisallowedRedirectScheme { .. }),
        "unexpected error {error:?}"
    );
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn redirect_to_other_port_rejected() {
    let server = TestServer::start(|_| Reply::redirect(302, "http://127.0.0.1:8081/next")).await;
    let harness = Harness::allow_non_public(&server).await;

    let error = harness
        .fetch(&server.url("/start"))
        .await
        .expect_err("a redirect to port 8081 must fail");

    match error {
        FetchError::DisallowedRedirectPort {
            port, allowed_port, ..
        } => {
            assert_eq!(port, 8081);
            assert_eq!(allowed_port, server.addr.port());
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn redirect_loop_detected() {
    let server = TestServer::start(|request| match request.path.as_str() {
        "/a" => Reply::redirect(302, "/b"),
        _ => Reply::redirect(302, "/a"),
    })
    .await;
    let harness = Harness::allow_non_public(&server).await;

    let error = harness
        .fetch(&server.url("/a"))
        .await
        .expect_err("a loop must fail");

    match error {
        FetchError::RedirectLoop { url, location } => {
            assert_eq!(*url, server.url("/b"));
            assert_eq!(*location, server.url("/a"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(server.paths(), ["/a", "/b"]);
}

#[tokio::test]
async fn ten_redirects_followed() {
    let server = TestServer::start(|request| redirect_chain(request, 10)).await;
    let harness = Harness::allow_non_public(&server).await;

    let outcome = harness
        .fetch(&server.url("/hop/0"))
        .await
        .expect("ten redirects are allowed");

    assert_eq!(outcome.history.len(), 10);
    assert_eq!(outcome.final_url, server.url("/hop/10"));
    assert_eq!(server.accepted(), 11);
}

#[tokio::test]
async fn eleven_redirects_rejected() {
    let server = TestServer::start(|request| redirect_chain(request, 11)).await;
    let harness = Harness::allow_non_public(&server).await;

    let error = harness
        .fetch(&server.url("/hop/0"))
        .await
        .expect_err("the eleventh redirect must fail");

    assert!(
        matches!(
            error,
            FetchError::TooManyRedirects {
                max_redirects: 10,
                ..
            }
        ),
        "unexpected error {error:?}"
    );
    assert_eq!(
        server.accepted(),
        11,
        "the first request and ten redirects reach the server, the eleventh target does not"
    );
}

#[tokio::test]
async fn redirect_drops_cookies() {
    let server = TestServer::start(|request| match request.path.as_str() {
        "/start" => Reply::Full {
            status: 302,
            headers: vec![
                ("Location", "/final".to_owned()),
                ("Set-Cookie", "session=secret; Path=/".to_owned()),
            ],
            body: Vec::new(),
        },
        _ => Reply::ok("final"),
    })
    .await;
    let harness = Harness::allow_non_public(&server).await;

    harness
        .fetch(&server.url("/start"))
        .await
        .expect("fetch must succeed");

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].header("cookie"), None, "no cookie is stored");
}

#[tokio::test]
async fn redirect_from_http_to_https() {
    let tls_server = TestServer::start_tls(|_| Reply::ok("secure")).await;
    let tls_port = tls_server.addr.port();
    let server = TestServer::start(move |_| {
        Reply::redirect(302, &format!("https://127.0.0.1:{tls_port}/secure"))
    })
    .await;
    let mut settings = relaxed_settings(&server);
    settings.https_port = tls_port;
    settings.tls_verification = TlsVerification::AcceptAnyCertificate;
    let harness = Harness::new(AddressPolicy::AllowNonPublic, settings).await;

    let outcome = harness
        .fetch(&server.url("/start"))
        .await
        .expect("fetch must succeed");

    assert_eq!(outcome.body, b"secure");
    assert_eq!(outcome.final_url.scheme(), "https");
    assert_eq!(tls_server.accepted(), 1);
}

// ---------------------------------------------------------------------------------------------
// Body size and time limits

#[tokio::test]
async fn large_body_truncated() {
    let server = TestServer::start(|_| Reply::Large {
        length: 10 * 1024 * 1024,
    })
    .await;
    let harness = Harness::allow_non_public(&server).await;

    let outcome = harness
        .fetch(&server.url("/big"))
        .await
        .expect("fetch must succeed");

    assert_eq!(outcome.body.len(), BODY_LIMIT);
    assert!(
        outcome.truncated,
        "a 10 MiB body must be reported as truncated"
    );
    assert!(outcome.body.iter().all(|byte| *byte == b'a'));
}

#[tokio::test]
async fn body_at_cap_with_length() {
    let server = TestServer::start(|request| match request.path.as_str() {
        "/exact" => Reply::ok("12345"),
        _ => Reply::ok("123456"),
    })
    .await;
    let mut settings = relaxed_settings(&server);
    settings.body_limit = 5;
    let harness = Harness::new(AddressPolicy::AllowNonPublic, settings).await;

    let exact = harness
        .fetch(&server.url("/exact"))
        .await
        .expect("fetch must succeed");
    assert_eq!(exact.body, b"12345");
    assert!(!exact.truncated, "a body of exactly the cap is complete");

    let longer = harness
        .fetch(&server.url("/longer"))
        .await
        .expect("fetch must succeed");
    assert_eq!(longer.body, b"12345");
    assert!(
        longer.truncated,
        "a body one byte over the cap is truncated"
    );
}

#[tokio::test]
async fn dripping_body_bounded_by_budget() {
    let server = TestServer::start(|_| Reply::Drip {
        interval: Duration::from_millis(20),
    })
    .await;
    let budget = Duration::from_millis(600);
    let mut settings = relaxed_settings(&server);
    settings.total_timeout = budget;
    let harness = Harness::new(AddressPolicy::AllowNonPublic, settings).await;

    let started = Instant::now();
    let error = harness
        .fetch(&server.url("/drip"))
        .await
        .expect_err("a dripping body must time out");

    assert!(
        matches!(error, FetchError::TimedOut { limit: TimeLimit::Total(limit), .. } if limit == budget),
        "unexpected error {error:?}"
    );
    assert!(
        started.elapsed() < budget + TIMING_SLACK,
        "the fetch took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn silent_server_hits_head_timeout() {
    let server = TestServer::start(|_| Reply::Silent).await;
    let head_timeout = Duration::from_millis(300);
    let mut settings = relaxed_settings(&server);
    settings.response_head_timeout = head_timeout;
    let harness = Harness::new(AddressPolicy::AllowNonPublic, settings).await;

    let started = Instant::now();
    let error = harness
        .fetch(&server.url("/"))
        .await
        .expect_err("a silent server must time out");

    assert!(
        matches!(error, FetchError::TimedOut { limit: TimeLimit::ResponseHead(limit), .. } if limit == head_timeout),
        "unexpected error {error:?}"
    );
    assert!(
        started.elapsed() < head_timeout + TIMING_SLACK,
        "the fetch took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn silent_server_hits_total_budget() {
    let server = TestServer::start(|_| Reply::Silent).await;
    let budget = Duration::from_millis(300);
    let mut settings = relaxed_settings(&server);
    settings.total_timeout = budget;
    let harness = Harness::new(AddressPolicy::AllowNonPublic, settings).await;

    let started = Instant::now();
    let error = harness
        .fetch(&server.url("/"))
        .await
        .expect_err("a silent server must time out");

    assert!(
        matches!(error, FetchError::TimedOut { limit: TimeLimit::Total(limit), .. } if limit == budget),
        "unexpected error {error:?}"
    );
    assert!(
        started.elapsed() < budget + TIMING_SLACK,
        "the fetch took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn slow_dns_bounded_by_budget() {
    let server = TestServer::start(|_| Reply::ok("unreached")).await;
    let budget = Duration::from_millis(300);
    let mut settings = relaxed_settings(&server);
    settings.total_timeout = budget;
    let harness = Harness::new(AddressPolicy::AllowNonPublic, settings).await;
    harness
        .dns
        .set_behavior("www.fetch.test.", None, Behavior::Drop);

    let started = Instant::now();
    let error = harness
        .fetch(&harness.named_url("www", &server, "/"))
        .await
        .expect_err("an unanswered lookup must time out");

    assert!(
        matches!(
            error,
            FetchError::TimedOut {
                limit: TimeLimit::Total(_),
                ..
            }
        ),
        "unexpected error {error:?}"
    );
    assert!(started.elapsed() < budget + TIMING_SLACK);
    assert_eq!(server.accepted(), 0);
}

#[tokio::test]
async fn slow_dns_hits_lookup_timeout() {
    let server = TestServer::start(|_| Reply::ok("unreached")).await;
    let lookup_timeout = Duration::from_millis(300);
    let mut settings = relaxed_settings(&server);
    settings.lookup_timeout = lookup_timeout;
    let harness = Harness::new(AddressPolicy::AllowNonPublic, settings).await;
    harness
        .dns
        .set_behavior("www.fetch.test.", None, Behavior::Drop);

    let started = Instant::now();
    let error = harness
        .fetch(&harness.named_url("www", &server, "/"))
        .await
        .expect_err("an unanswered lookup must time out");

    assert!(
        matches!(error, FetchError::TimedOut { limit: TimeLimit::Lookup(limit), .. } if limit == lookup_timeout),
        "unexpected error {error:?}"
    );
    assert!(started.elapsed() < lookup_timeout + TIMING_SLACK);
    assert_eq!(server.accepted(), 0);
}

// ---------------------------------------------------------------------------------------------
// Connection, TLS and DNS failures

#[tokio::test]
async fn refused_connection_reported() {
    // Bind and release a port so that nothing listens on it.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);

    let mut settings = FetchSettings::new(RELAXED_BUDGET);
    settings.http_port = port;
    let harness = Harness::new(AddressPolicy::AllowNonPublic, settings).await;
    let url = Url::parse(&format!("http://127.0.0.1:{port}/")).expect("valid URL");

    let error = harness.fetch(&url).await.expect_err("nothing listens");

    match error {
        FetchError::Connect { addresses, .. } => {
            assert_eq!(addresses, [IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[tokio::test]
async fn untrusted_certificate_rejected() {
    let server = TestServer::start_tls(|_| Reply::ok("secure")).await;
    let mut settings = FetchSettings::new(RELAXED_BUDGET);
    settings.https_port = server.addr.port();
    settings.tls_verification = TlsVerification::VerifyCertificates;
    let harness = Harness::new(AddressPolicy::AllowNonPublic, settings).await;
    let error = harness
        .fetch(&server.url("/"))
        .await
        .expect_err("a self-signed certificate is not trusted");

    assert!(
        matches!(error, FetchError::Tls { .. }),
        "unexpected error {error:?}"
    );
    assert!(
        server.requests().is_empty(),
        "no request may be sent over an unverified connection"
    );
}

#[tokio::test]
async fn name_without_addresses_reported() {
    let server = TestServer::start(|_| Reply::ok("unreached")).await;
    let harness = Harness::allow_non_public(&server).await;

    for label in ["text-only", "does-not-exist"] {
        let error = harness
            .fetch(&harness.named_url(label, &server, "/"))
            .await
            .expect_err("no address to connect to");
        match error {
            FetchError::NoAddresses { host, .. } => {
                assert_eq!(host, format!("{label}.fetch.test"), "{label}");
            }
            other => panic!("{label}: unexpected error {other:?}"),
        }
    }
}

#[tokio::test]
async fn dns_failure_reported() {
    let server = TestServer::start(|_| Reply::ok("unreached")).await;
    let harness = Harness::allow_non_public(&server).await;
    harness
        .dns
        .set_behavior("www.fetch.test.", None, Behavior::ServFail);

    let error = harness
        .fetch(&harness.named_url("www", &server, "/"))
        .await
        .expect_err("SERVFAIL gives no address");

    assert!(
        matches!(&error, FetchError::DnsLookup { host, .. } if host == "www.fetch.test"),
        "unexpected error {error:?}"
    );
    assert_eq!(server.accepted(), 0);
}

#[tokio::test]
async fn invalid_urls_rejected() {
    let server = TestServer::start(|_| Reply::ok("unreached")).await;
    let harness = Harness::allow_non_public(&server).await;
    let cases = [
        ("ftp://127.0.0.1/file", UrlProblem::UnsupportedScheme),
        (
            "http://127.0.0.1:8081/",
            UrlProblem::DisallowedPort {
                port: 8081,
                allowed_port: server.addr.port(),
            },
        ),
    ];

    for (text, expected) in cases {
        let url = Url::parse(text).expect("valid URL");
        let error = harness.fetch(&url).await.expect_err("invalid URL");
        assert!(
            matches!(&error, FetchError::InvalidUrl { problem, .. } if *problem == expected),
            "{text}: unexpected error {error:?}"
        );
    }
    assert_eq!(server.accepted(), 0);
}

// ---------------------------------------------------------------------------------------------
// Address guard

#[tokio::test]
async fn guard_rejects_loopback_literals() {
    let v4_server = TestServer::start(|_| Reply::ok("unreached")).await;
    let v6_server =
        TestServer::start_on(Ipv6Addr::LOCALHOST.into(), |_| Reply::ok("unreached")).await;

    for server in [&v4_server, &v6_server] {
        let harness = Harness::new(AddressPolicy::PublicOnly, relaxed_settings(server)).await;
        let url = server.url("/");

        let error = harness.fetch(&url).await.expect_err("loopback is blocked");

        match error {
            FetchError::BlockedAddress { blocked, .. } => {
                assert_eq!(blocked.address, server.addr.ip(), "{url}");
                assert_eq!(blocked.range, "loopback", "{url}");
            }
            other => panic!("{url}: unexpected error {other:?}"),
        }
        assert_eq!(server.accepted(), 0, "{url}: no connection may be made");
    }
}

#[tokio::test]
async fn guard_rejects_names_of_internal_addresses() {
    let v4_server = TestServer::start(|_| Reply::ok("unreached")).await;
    let v6_server =
        TestServer::start_on(Ipv6Addr::LOCALHOST.into(), |_| Reply::ok("unreached")).await;
    // Each URL carries the port of the listener its address would reach, so a connection that
    // got past the guard would be counted.
    let cases: [(&str, &str, &TestServer, &str); 5] = [
        ("loopback", "127.0.0.1", &v4_server, "loopback"),
        (
            "metadata",
            "169.254.169.254",
            &v4_server,
            "link-local (RFC 3927)",
        ),
        ("private", "10.0.0.1", &v4_server, "private (RFC 1918)"),
        ("loopback6", "::1", &v6_server, "loopback"),
        (
            "unique-local",
            "fc00::1",
            &v6_server,
            "unique local (RFC 4193)",
        ),
    ];

    for (label, address, server, range) in cases {
        let harness = Harness::new(AddressPolicy::PublicOnly, relaxed_settings(server)).await;
        let url = harness.named_url(label, server, "/");

        let error = harness
            .fetch(&url)
            .await
            .expect_err("internal address is blocked");

        match error {
            FetchError::BlockedAddress { host, blocked, .. } => {
                assert_eq!(host, format!("{label}.fetch.test"), "{label}");
                assert_eq!(blocked.address.to_string(), address, "{label}");
                assert_eq!(blocked.range, range, "{label}");
            }
            other => panic!("{label}: unexpected error {other:?}"),
        }
    }
    assert_eq!(v4_server.accepted(), 0, "no IPv4 connection may be made");
    assert_eq!(v6_server.accepted(), 0, "no IPv6 connection may be made");
}

#[tokio::test]
async fn guard_rejects_literal_metadata_address() {
    let mut settings = FetchSettings::new(RELAXED_BUDGET);
    settings.connect_timeout = Duration::from_millis(100);
    let harness = Harness::new(AddressPolicy::PublicOnly, settings).await;

    for text in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[fc00::1]/",
        "http://[::ffff:169.254.169.254]/",
    ] {
        let url = Url::parse(text).expect("valid URL");

        let error = harness
            .fetch(&url)
            .await
            .expect_err("blocked before connecting");

        // Only the check before the connection produces this error. Had a connection been
        // tried, the short connect timeout would have ended it with another error.
        assert!(
            matches!(error, FetchError::BlockedAddress { .. }),
            "{text}: unexpected error {error:?}"
        );
    }
}

#[tokio::test]
async fn one_blocked_address_rejects_host() {
    let server = TestServer::start(|_| Reply::ok("unreached")).await;
    let harness = Harness::allow_non_public(&server).await;

    // `mixed` has A records 127.0.0.1 and 0.0.0.0. Even the permissive policy rejects the
    // unspecified address, and one rejected address rejects the host.
    let error = harness
        .fetch(&harness.named_url("mixed", &server, "/"))
        .await
        .expect_err("one address is blocked");

    match error {
        FetchError::BlockedAddress { blocked, .. } => {
            assert_eq!(blocked.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(server.accepted(), 0);
}

#[tokio::test]
async fn redirect_to_blocked_address_rejected() {
    // Loopback is the only reachable place, so the redirect target must be one that even the
    // permissive policy rejects: the unspecified address, which Linux would connect to the
    // local host, and a name that resolves to it.
    let server = TestServer::start(|request| match request.path.as_str() {
        "/to-literal" => Reply::redirect_to_host("0.0.0.0", "/inside"),
        "/to-name" => Reply::redirect_to_host("unspecified.fetch.test", "/inside"),
        _ => Reply::ok("must not be reached"),
    })
    .await;
    let harness = Harness::allow_non_public(&server).await;

    for path in ["/to-literal", "/to-name"] {
        let error = harness
            .fetch(&server.url(path))
            .await
            .expect_err("the redirect target is blocked");

        match error {
            FetchError::BlockedAddress { url, blocked, .. } => {
                assert_eq!(url.path(), "/inside", "{path}");
                assert_eq!(blocked.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED), "{path}");
                assert_eq!(blocked.range, "unspecified", "{path}");
            }
            other => panic!("{path}: unexpected error {other:?}"),
        }
    }
    assert_eq!(
        server.paths(),
        ["/to-literal", "/to-name"],
        "only the first hop of each fetch may reach the server"
    );
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A fetcher, the DNS authority for `fetch.test` and a resolver pointed at it.
struct Harness {
    fetcher: Fetcher,
    resolver: TokioResolver,
    dns: TestDns,
}

impl Harness {
    async fn allow_non_public(server: &TestServer) -> Harness {
        Harness::new(AddressPolicy::AllowNonPublic, relaxed_settings(server)).await
    }

    async fn new(policy: AddressPolicy, settings: FetchSettings) -> Harness {
        let dns = TestDns::start([Zone::new(
            "fetch.test.",
            r#"
            www           A     127.0.0.1
            www           AAAA  ::1
            loopback      A     127.0.0.1
            metadata      A     169.254.169.254
            private       A     10.0.0.1
            loopback6     AAAA  ::1
            unique-local  AAAA  fc00::1
            mixed         A     127.0.0.1
            mixed         A     0.0.0.0
            unspecified   A     0.0.0.0
            text-only     TXT   "no address here"
            "#,
        )])
        .await;
        let resolver = resolver_for(dns.addr());
        let fetcher =
            Fetcher::new(AddressGuard::new(policy), settings).expect("fetcher setup must succeed");
        Harness {
            fetcher,
            resolver,
            dns,
        }
    }

    async fn fetch(&self, url: &Url) -> Result<FetchOutcome, FetchError> {
        self.fetcher
            .fetch(&self.resolver, url, &HeaderMap::new())
            .await
    }

    /// Returns `http://<label>.fetch.test:<port of server><path>`.
    fn named_url(&self, label: &str, server: &TestServer, path: &str) -> Url {
        let text = format!("http://{label}.fetch.test:{}{path}", server.addr.port());
        Url::parse(&text).expect("valid URL")
    }
}

/// Settings whose HTTP port is the port of `server`, with a generous budget.
fn relaxed_settings(server: &TestServer) -> FetchSettings {
    let mut settings = FetchSettings::new(RELAXED_BUDGET);
    settings.http_port = server.addr.port();
    settings
}

fn resolver_for(dns: SocketAddr) -> TokioResolver {
    let mut connection = ConnectionConfig::udp();
    connection.port = dns.port();
    let name_server = NameServerConfig::new(dns.ip(), true, vec![connection]);
    let config = ResolverConfig::from_name_servers(vec![name_server]);

    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    builder.options_mut().timeout = Duration::from_secs(2);
    builder.options_mut().attempts = 1;
    builder.build().expect("resolver setup must succeed")
}

/// Serves `/hop/N` as a 302 to `/hop/N+1` until `N` reaches `redirects`, then a 200.
fn redirect_chain(request: &SeenRequest, redirects: usize) -> Reply {
    let hop: usize = request
        .path
        .strip_prefix("/hop/")
        .and_then(|number| number.parse().ok())
        .unwrap_or(usize::MAX);
    if hop < redirects {
        Reply::redirect(302, &format!("/hop/{}", hop + 1))
    } else {
        Reply::ok("end of chain")
    }
}

/// What a test server sends for one request.
enum Reply {
    /// A complete response with `Content-Length`.
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// A response head announcing 100 000 bytes, then one byte per interval.
    Drip { interval: Duration },
    /// Nothing at all: the connection stays open until the server stops.
    Silent,
    /// A response of `length` bytes of `a`, written as fast as the client reads.
    Large { length: usize },
}

impl Reply {
    fn ok(body: &str) -> Reply {
        Reply::status(200, body)
    }

    fn status(status: u16, body: &str) -> Reply {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn redirect(status: u16, location: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Location", location.to_owned())],
            body: Vec::new(),
        }
    }

    /// Builds a 302 to `path` on `host`, keeping the port the request arrived on.
    fn redirect_to_host(host: &str, path: &str) -> Reply {
        Reply::Full {
            status: 302,
            headers: vec![("Location", format!("http://{host}:{{port}}{path}"))],
            body: Vec::new(),
        }
    }
}

/// A request as the test server received it.
#[derive(Clone, Debug)]
struct SeenRequest {
    method: String,
    path: String,
    /// Header names in lower case, with their values.
    headers: Vec<(String, String)>,
}

impl SeenRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, value)| value.as_str())
    }
}

type Routes = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

struct ServerState {
    accepted: AtomicUsize,
    requests: Mutex<Vec<SeenRequest>>,
    routes: Box<Routes>,
}

/// An HTTP/1.1 server on loopback that sends one response per connection and closes it.
///
/// Dropping it stops the accept loop and every open connection.
struct TestServer {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<ServerState>,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(routes: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> TestServer {
        TestServer::start_on(Ipv4Addr::LOCALHOST.into(), routes).await
    }

    async fn start_on(
        ip: IpAddr,
        routes: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        TestServer::spawn(ip, None, Box::new(routes)).await
    }

    /// Starts an HTTPS server with a fresh self-signed certificate for `127.0.0.1`.
    async fn start_tls(
        routes: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("generate a certificate");
        let certificate: CertificateDer<'static> = certified.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![certificate], key)
            .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        TestServer::spawn(Ipv4Addr::LOCALHOST.into(), Some(acceptor), Box::new(routes)).await
    }

    async fn spawn(
        ip: IpAddr,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        routes: Box<Routes>,
    ) -> TestServer {
        let listener = TcpListener::bind((ip, 0))
            .await
            .unwrap_or_else(|error| panic!("bind a test server on {ip}: {error}"));
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(ServerState {
            accepted: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            routes,
        });
        let scheme = if acceptor.is_some() { "https" } else { "http" };

        let loop_state = state.clone();
        let task = tokio::spawn(async move {
            // Owning the connections here means aborting this task closes them all.
            let mut connections = JoinSet::new();
            while let Ok((stream, _peer)) = listener.accept().await {
                loop_state.accepted.fetch_add(1, Ordering::SeqCst);
                let state = loop_state.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    match acceptor {
                        None => serve(stream, addr.port(), &state).await,
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                serve(tls, addr.port(), &state).await;
                            }
                        }
                    }
                });
            }
        });

        TestServer {
            addr,
            scheme,
            state,
            task,
        }
    }

    fn url(&self, path: &str) -> Url {
        let host = match self.addr.ip() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        Url::parse(&format!(
            "{}://{host}:{}{path}",
            self.scheme,
            self.addr.port()
        ))
        .expect("valid URL")
    }

    fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<SeenRequest> {
        self.state.requests.lock().expect("request log").clone()
    }

    fn paths(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .map(|request| request.path)
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, port: u16, state: &ServerState) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let reply = (state.routes)(&request);
    state.requests.lock().expect("request log").push(request);

    // Write errors mean the client went away, which several tests provoke on purpose.
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} Test\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                let value = value.replace("{port}", &port.to_string());
                head.push_str(&format!("{name}: {value}\r\n"));
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        }
        Reply::Drip { interval } => {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..100_000 {
                if stream.write_all(b"x").await.is_err() || stream.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        }
        Reply::Silent => {
            // Held open until the test drops the server; the bound only caps a leaked task.
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Reply::Large { length } => {
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'a'; 64 * 1024];
            let mut written = 0;
            while written < length {
                let size = chunk.len().min(length - written);
                if stream.write_all(&chunk[..size]).await.is_err() {
                    return;
                }
                written += size;
            }
        }
    }
}

/// Reads one request head (at most 16 KiB) and parses its request line and headers.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<SeenRequest> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buffer.windows(4).any(|window| window == b"\r\n\r\n") {
        if buffer.len() > 16 * 1024 {
            return None;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }

    let text = String::from_utf8_lossy(&buffer);
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let headers = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Some(SeenRequest {
        method,
        path,
        headers,
    })
}
