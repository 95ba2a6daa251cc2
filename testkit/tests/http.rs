//! Tests of the challenge HTTP server: each one sends raw HTTP/1.1 over a TCP connection,
//! so the bytes on the wire are what the test checks.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mpic_testkit::http::{ChallengeServer, Reply, Routes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/token";

#[tokio::test]
async fn fixed_reply_sends_status_headers_body() {
    let reply = Reply::ok("token.thumbprint")
        .with_status(201)
        .with_header("X-Test", "one")
        .with_header("x-test", "two");
    let server = ChallengeServer::start(Routes::new().route(CHALLENGE_PATH, reply)).await;

    let response = get(server.addr(), CHALLENGE_PATH, "example.com").await;

    assert!(
        response.head.starts_with("HTTP/1.1 201 Created\r\n"),
        "{}",
        response.head
    );
    assert!(
        response.head.contains("x-test: one\r\n"),
        "{}",
        response.head
    );
    assert!(
        response.head.contains("x-test: two\r\n"),
        "{}",
        response.head
    );
    assert_eq!(response.body, b"token.thumbprint");
}

#[tokio::test]
async fn unknown_path_gets_not_found() {
    let server = ChallengeServer::start(Routes::new()).await;

    let response = get(server.addr(), "/missing", "example.com").await;

    assert!(
        response.head.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{}",
        response.head
    );
    assert!(response.body.is_empty(), "404 has a body");
}

#[tokio::test]
async fn redirect_uses_any_status_and_location() {
    let routes = Routes::new()
        .route(
            "/permanent",
            Reply::redirect(308, "http://127.0.0.2:8080/next"),
        )
        .route("/odd", Reply::redirect(200, "ftp://example.com/file"));
    let server = ChallengeServer::start(routes).await;

    let permanent = get(server.addr(), "/permanent", "example.com").await;
    let odd = get(server.addr(), "/odd", "example.com").await;

    assert!(
        permanent.head.starts_with("HTTP/1.1 308 "),
        "{}",
        permanent.head
    );
    assert!(
        permanent
            .head
            .contains("location: http://127.0.0.2:8080/next\r\n"),
        "{}",
        permanent.head
    );
    assert!(odd.head.starts_with("HTTP/1.1 200 OK\r\n"), "{}", odd.head);
    assert!(
        odd.head.contains("location: ftp://example.com/file\r\n"),
        "{}",
        odd.head
    );
}

#[tokio::test]
async fn route_set_while_running_redirects_to_self() {
    let server = ChallengeServer::start(Routes::new()).await;
    let loop_url = server.url("/loop");
    server.set_route("/loop", Reply::redirect(302, &loop_url));

    let response = get(server.addr(), "/loop", "example.com").await;

    assert!(
        response.head.starts_with("HTTP/1.1 302 Found\r\n"),
        "{}",
        response.head
    );
    assert!(
        response.head.contains(&format!("location: {loop_url}\r\n")),
        "{}",
        response.head
    );
}

#[tokio::test]
async fn large_body_streams_every_byte() {
    let length = 10 * 1024 * 1024 + 7;
    let server =
        ChallengeServer::start(Routes::new().route("/huge", Reply::large_body(length))).await;

    let response = get(server.addr(), "/huge", "example.com").await;

    assert!(
        response.head.contains("transfer-encoding: chunked\r\n"),
        "{}",
        response.head
    );
    assert_eq!(response.body.len() as u64, length);
    assert!(
        response.body.iter().all(|byte| *byte == b'x'),
        "body is not all x"
    );
}

#[tokio::test]
async fn drip_sends_one_byte_per_interval() {
    let reply = Reply::drip(Duration::from_millis(50));
    let server = ChallengeServer::start(Routes::new().route("/slow", reply)).await;
    let mut stream = send_request(server.addr(), "/slow", "example.com").await;

    let mut received = Vec::new();
    let mut buffer = [0_u8; 1024];
    let reading = async {
        loop {
            let count = stream.read(&mut buffer).await.unwrap();
            assert_ne!(count, 0, "server closed a dripping response");
            received.extend_from_slice(&buffer[..count]);
        }
    };
    let stopped = tokio::time::timeout(Duration::from_millis(500), reading).await;

    assert!(stopped.is_err(), "drip ended before the client gave up");
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("no response head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let drops = body.matches("1\r\nx\r\n").count();
    // At most one byte per interval; the lower bound is loose so a loaded machine passes.
    assert!(
        (2..=11).contains(&drops),
        "{drops} bytes in 500 ms at one per 50 ms"
    );
}

#[tokio::test]
async fn no_response_keeps_connection_silent() {
    let server = ChallengeServer::start(Routes::new().route("/hang", Reply::no_response())).await;
    let mut stream = send_request(server.addr(), "/hang", "example.com").await;

    let mut buffer = [0_u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await;

    assert!(
        read.is_err(),
        "server sent or closed instead of staying silent"
    );
    assert_eq!(server.requests().len(), 1, "request not recorded");
}

#[tokio::test]
async fn requests_recorded_with_host_and_headers() {
    let server = ChallengeServer::start(Routes::new()).await;
    let request = format!(
        "GET {CHALLENGE_PATH}?query=1 HTTP/1.1\r\nHost: Example.COM:8080\r\n\
         User-Agent: mpic-test\r\nConnection: close\r\n\r\n"
    );

    exchange(server.addr(), &request).await;

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let recorded = &requests[0];
    assert_eq!(recorded.method, http::Method::GET);
    assert_eq!(recorded.target, format!("{CHALLENGE_PATH}?query=1"));
    assert_eq!(recorded.path, CHALLENGE_PATH);
    assert_eq!(recorded.host.as_deref(), Some("Example.COM:8080"));
    assert_eq!(recorded.headers["user-agent"], "mpic-test");
    assert_eq!(recorded.version, http::Version::HTTP_11);
    assert_eq!(recorded.peer.ip(), Ipv4Addr::LOCALHOST);
}

#[tokio::test]
async fn connections_counted_before_requests() {
    let contacted = ChallengeServer::start(Routes::new()).await;
    let untouched = ChallengeServer::start(Routes::new()).await;

    let stream = TcpStream::connect(contacted.addr()).await.unwrap();
    get(contacted.addr(), "/", "example.com").await;
    drop(stream);

    assert_eq!(contacted.connection_count(), 2);
    assert_eq!(contacted.requests().len(), 1);
    assert_eq!(untouched.connection_count(), 0);
}

#[tokio::test]
async fn binds_other_loopback_addresses() {
    let second = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0));
    let ipv6 = SocketAddr::from((Ipv6Addr::LOCALHOST, 0));
    let routes = Routes::new().route("/", Reply::ok("here"));
    let on_second = ChallengeServer::start_on(second, routes.clone()).await;
    let on_ipv6 = ChallengeServer::start_on(ipv6, routes).await;

    let from_second = get(on_second.addr(), "/", "127.0.0.2").await;
    let from_ipv6 = get(on_ipv6.addr(), "/", "[::1]").await;

    assert_eq!(on_second.addr().ip(), second.ip());
    assert_eq!(
        on_second.url("/a"),
        format!("http://127.0.0.2:{}/a", on_second.port())
    );
    assert_eq!(
        on_ipv6.url("/a"),
        format!("http://[::1]:{}/a", on_ipv6.port())
    );
    assert_eq!(from_second.body, b"here");
    assert_eq!(from_ipv6.body, b"here");
}

#[tokio::test]
#[should_panic(expected = "only on loopback addresses")]
async fn non_loopback_address_rejected() {
    ChallengeServer::start_on(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)), Routes::new()).await;
}

struct RawResponse {
    head: String,
    body: Vec<u8>,
}

async fn get(addr: SocketAddr, path: &str, host: &str) -> RawResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    exchange(addr, &request).await
}

/// Sends `request` and reads the response until the server closes the connection.
async fn exchange(addr: SocketAddr, request: &str) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut bytes))
        .await
        .expect("response timed out")
        .unwrap();

    let split = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("no end of response head");
    let head = String::from_utf8(bytes[..split + 2].to_vec()).unwrap();
    let raw_body = &bytes[split + 4..];
    let body = if head.contains("transfer-encoding: chunked\r\n") {
        decode_chunked(raw_body)
    } else {
        raw_body.to_vec()
    };
    RawResponse { head, body }
}

async fn send_request(addr: SocketAddr, path: &str, host: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}

/// Decodes a chunked body (RFC 9112 §7.1) that has no chunk extensions or trailers.
fn decode_chunked(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|window| window == b"\r\n")
            .expect("chunk size line without CRLF");
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text, 16).unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
