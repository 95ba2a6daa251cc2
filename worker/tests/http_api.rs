//! The HTTP endpoints over a real listener on `127.0.0.1:0`, with a real DNS server behind the
//! checks.
//!
//! Requests are written as raw HTTP/1.1 with `Connection: close`, so the tests read exactly the
//! status line, headers and body the server sends, which signatures cover byte for byte.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::rr::RecordType;
use mpic_shared::dcv::ValidationMethod;
use mpic_shared::reply::{CheckDetails, CheckResponse};
use mpic_shared::request::CheckType;
use mpic_shared::signing::{REQUEST_ID_HEADER, ReplyVerifier, SIGNATURE_HEADER};
use mpic_shared::subject::PERSPECTIVE_HEADER;
use mpic_testkit::alpn::{AlpnPolicy, AlpnServer};
use mpic_testkit::dns::{Behavior, TestDns, Zone};
use mpic_testkit::http::{ChallengeServer, Reply, Routes};
use mpic_testkit::tls::{AcmeTlsAlpnCertificate, key_authorization_digest};
use mpic_worker::config::{NatsAuth, NatsConfig, ReplySigningKey, Secret, WorkerConfig};
use mpic_worker::fetch::AddressPolicy;
use mpic_worker::handler::{Checker, MAX_REQUEST_BYTES};
use mpic_worker::http_api;
use mpic_worker::resolver::NameServers;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const PERSPECTIVE: &str = "eu-west-1";

/// How long a test waits for one response before it fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

fn zones() -> Vec<Zone> {
    vec![
        Zone::new("test.", ""),
        Zone::new(
            "example.test.",
            r#"
            @                 CAA 0 issue "ca.example"
            deny              CAA 0 issue "other-ca.example"
            slow              CAA 0 issue "ca.example"
            _acme-challenge   TXT "key-authorization-hash"
            "#,
        ),
    ]
}

fn worker_config(dns: SocketAddr) -> WorkerConfig {
    let mut config = WorkerConfig::with_defaults(PERSPECTIVE).expect("perspective code is valid");
    config.default_caa_domains = vec!["ca.example".to_owned()];
    config.resolver.name_servers = NameServers::Configured(vec![dns]);
    config.resolver.query_timeout = Duration::from_secs(3);
    config.resolver.resolution_lifetime = Duration::from_secs(4);
    config
}

/// The endpoints served on a loopback listener.
struct Endpoints {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Endpoints {
    async fn start(config: &WorkerConfig) -> Endpoints {
        // Bound before serving, so requests never race the listener.
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("listener address");
        let checker = Checker::new(config).expect("checker builds");
        let router = http_api::router(checker, config.effective(), config.reply_signing.clone());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(http_api::serve(listener, router, async {
            // A dropped sender stops the server too.
            let _ = stopped.await;
        }));
        Endpoints {
            addr,
            shutdown: Some(shutdown),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.send(()).expect("server is still running");
        }
        tokio::time::timeout(RESPONSE_TIMEOUT, self.task)
            .await
            .expect("server stops in time")
            .expect("server task does not panic")
            .expect("server stops without error");
    }
}

/// A response as read off the wire.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not JSON ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn check_response(&self) -> CheckResponse {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body is not a CheckResponse ({error}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends one request over a fresh connection and reads the whole response.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra_headers: &str,
    body: &[u8],
) -> Response {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .expect("connect to the endpoints");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n{extra_headers}\r\n",
            body.len()
        );
        stream
            .write_all(head.as_bytes())
            .await
            .expect("write request head");
        stream.write_all(body).await.expect("write request body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read response");
        raw
    };
    let raw = tokio::time::timeout(RESPONSE_TIMEOUT, exchange)
        .await
        .expect("response arrives in time");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("response has a header section");
    let head = std::str::from_utf8(&raw[..split]).expect("response head is text");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("malformed status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("header line has a colon");
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let response = Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    assert_eq!(
        response.header("transfer-encoding"),
        None,
        "this reader expects bodies with a Content-Length"
    );
    response
}

fn caa_body(target: &str) -> Vec<u8> {
    serde_json::json!({
        "domain_or_ip_target": target,
        "caa_check_parameters": {"certificate_type": "tls-server"},
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn caa_endpoint_returns_check_reply() {
    let dns = TestDns::start(zones()).await;
    let endpoints = Endpoints::start(&worker_config(dns.addr())).await;

    let cases = [
        ("permitted name", "example.test", true),
        ("forbidden name", "deny.example.test", false),
        ("IP address", "192.0.2.1", true),
    ];
    for (name, target, passed) in cases {
        let response = send(endpoints.addr, "POST", "/caa", "", &caa_body(target)).await;
        assert_eq!(response.status, 200, "{name}: status");
        assert_eq!(
            response.header(PERSPECTIVE_HEADER),
            Some(PERSPECTIVE),
            "{name}: header"
        );
        let reply = response.check_response();
        assert_eq!(reply.check_type, CheckType::Caa, "{name}: check type");
        assert!(
            reply.check_completed,
            "{name}: not completed: {:?}",
            reply.errors
        );
        assert_eq!(reply.check_passed, passed, "{name}: passed");
    }

    endpoints.stop().await;
}

#[tokio::test]
async fn dcv_endpoint_returns_check_reply() {
    let dns = TestDns::start(zones()).await;
    let challenge_server = ChallengeServer::start(Routes::new().route(
        "/.well-known/acme-challenge/token-1",
        Reply::ok("token-1.thumbprint"),
    ))
    .await;
    let alpn_server = AlpnServer::start(
        AcmeTlsAlpnCertificate::new("token-2.thumbprint", &["127.0.0.1"]).build(),
        AlpnPolicy::NegotiateAcmeTls1,
    )
    .await;
    let mut config = worker_config(dns.addr());
    config.address_policy = AddressPolicy::AllowNonPublic;
    config.challenge_ports.http = challenge_server.port();
    config.challenge_ports.tls_alpn = alpn_server.port();
    let endpoints = Endpoints::start(&config).await;

    let cases = [
        (
            "acme-dns-01",
            serde_json::json!({
                "domain_or_ip_target": "example.test",
                "dcv_check_parameters": {
                    "validation_method": "acme-dns-01",
                    "key_authorization_hash": "key-authorization-hash",
                },
            }),
            ValidationMethod::AcmeDns01,
        ),
        (
            "acme-http-01",
            serde_json::json!({
                "domain_or_ip_target": "127.0.0.1",
                "dcv_check_parameters": {
                    "validation_method": "acme-http-01",
                    "token": "token-1",
                    "key_authorization": "token-1.thumbprint",
                },
            }),
            ValidationMethod::AcmeHttp01,
        ),
        (
            "acme-tls-alpn-01",
            serde_json::json!({
                "domain_or_ip_target": "127.0.0.1",
                "dcv_check_parameters": {
                    "validation_method": "acme-tls-alpn-01",
                    "key_authorization_hash": hex::encode(key_authorization_digest("token-2.thumbprint")),
                },
            }),
            ValidationMethod::AcmeTlsAlpn01,
        ),
    ];
    for (name, body, method) in cases {
        let response = send(
            endpoints.addr,
            "POST",
            "/dcv",
            "",
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(response.status, 200, "{name}: status");
        assert_eq!(
            response.header(PERSPECTIVE_HEADER),
            Some(PERSPECTIVE),
            "{name}: header"
        );
        let reply = response.check_response();
        assert_eq!(reply.check_type, CheckType::Dcv, "{name}: check type");
        assert!(
            reply.check_completed,
            "{name}: not completed: {:?}",
            reply.errors
        );
        assert!(
            reply.check_passed,
            "{name}: challenge is in place but the check failed: {reply:?}"
        );
        let reported_method = match &reply.details {
            CheckDetails::Dns(details) => details.validation_method,
            CheckDetails::Http(details) => details.validation_method,
            CheckDetails::TlsAlpn(details) => details.validation_method,
            other => panic!("{name}: unexpected details {other:?}"),
        };
        assert_eq!(reported_method, method, "{name}: validation method");
    }

    endpoints.stop().await;
}

#[tokio::test]
async fn every_validation_method_reaches_its_check() {
    let dns = TestDns::start(zones()).await;
    let endpoints = Endpoints::start(&worker_config(dns.addr())).await;
    let hash = "0".repeat(64);

    // Minimal valid parameters for each method. The challenges are not in place, so most
    // checks fail or do not complete; what matters is that each reply comes from its method.
    let cases = [
        (
            "example.test",
            serde_json::json!({"validation_method": "website-change", "challenge_value": "v", "http_token_path": "t"}),
        ),
        (
            "example.test",
            serde_json::json!({"validation_method": "acme-http-01", "token": "t", "key_authorization": "t.k"}),
        ),
        (
            "example.test",
            serde_json::json!({"validation_method": "acme-dns-01", "key_authorization_hash": "h"}),
        ),
        (
            "example.test",
            serde_json::json!({"validation_method": "acme-tls-alpn-01", "key_authorization_hash": hash}),
        ),
        (
            "example.test",
            serde_json::json!({"validation_method": "dns-change", "challenge_value": "v", "dns_record_type": "TXT"}),
        ),
        (
            "example.test",
            serde_json::json!({
                "validation_method": "dns-persistent",
                "issuer_domain_names": ["ca.example"],
                "expected_account_uri": "https://ca.example/acct/1",
            }),
        ),
        (
            "example.test",
            serde_json::json!({"validation_method": "contact-email-txt", "challenge_value": "a@example.test"}),
        ),
        (
            "example.test",
            serde_json::json!({"validation_method": "contact-email-caa", "challenge_value": "a@example.test"}),
        ),
        (
            "example.test",
            serde_json::json!({"validation_method": "contact-phone-txt", "challenge_value": "+1-555-0100"}),
        ),
        (
            "example.test",
            serde_json::json!({"validation_method": "contact-phone-caa", "challenge_value": "+1-555-0100"}),
        ),
        (
            "example.test",
            serde_json::json!({"validation_method": "ip-address", "challenge_value": "192.0.2.1", "dns_record_type": "A"}),
        ),
        (
            "192.0.2.1",
            serde_json::json!({"validation_method": "reverse-address-lookup", "challenge_value": "example.test"}),
        ),
        (
            "example.test",
            serde_json::json!({
                "validation_method": "dns-account-01",
                "key_authorization_hash": "h",
                "account_uri": "https://ca.example/acct/1",
            }),
        ),
    ];
    for (target, parameters) in cases {
        let name = parameters["validation_method"]
            .as_str()
            .expect("method name")
            .to_owned();
        let body = serde_json::json!({
            "domain_or_ip_target": target,
            "dcv_check_parameters": parameters,
        });
        let response = send(
            endpoints.addr,
            "POST",
            "/dcv",
            "",
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(response.status, 200, "{name}: status");
        let reply = response.check_response();
        assert_eq!(reply.check_type, CheckType::Dcv, "{name}: check type");
        let reported_method = match &reply.details {
            CheckDetails::Dns(details) => details.validation_method,
            CheckDetails::Http(details) => details.validation_method,
            CheckDetails::TlsAlpn(details) => details.validation_method,
            other => panic!("{name}: unexpected details {other:?}"),
        };
        assert_eq!(
            reported_method.as_str(),
            name,
            "{name}: validation method in details"
        );
        for error in reply.errors.iter().flatten() {
            assert!(
                !error.error_type.starts_with("mpic_error:worker:"),
                "{name}: the worker did not run the check: {error:?}"
            );
        }
    }

    endpoints.stop().await;
}

#[tokio::test]
async fn malformed_bodies_get_open_mpic_400() {
    let dns = TestDns::start(zones()).await;
    let endpoints = Endpoints::start(&worker_config(dns.addr())).await;

    let oversized = vec![b' '; MAX_REQUEST_BYTES + 1];
    let cases: [(&str, &str, &[u8], &str); 5] = [
        ("not JSON", "/caa", b"caa, please", "invalid request body"),
        ("missing target", "/caa", b"{}", "domain_or_ip_target"),
        (
            "DCV method without its field",
            "/dcv",
            br#"{"domain_or_ip_target": "example.test", "dcv_check_parameters": {"validation_method": "acme-dns-01"}}"#,
            "key_authorization_hash",
        ),
        (
            "DCV without parameters",
            "/dcv",
            br#"{"domain_or_ip_target": "example.test"}"#,
            "dcv_check_parameters",
        ),
        ("oversized body", "/dcv", &oversized, "exceeds the maximum of 65536 bytes"),
    ];
    for (name, path, body, expected) in cases {
        let response = send(endpoints.addr, "POST", path, "", body).await;
        assert_eq!(response.status, 400, "{name}: status");
        let json = response.json();
        assert_eq!(json["error"], "request-validation-failed", "{name}: error");
        let issues = json["validation_issues"]
            .as_array()
            .expect("validation_issues is a list");
        assert_eq!(issues.len(), 1, "{name}: issues {issues:?}");
        assert_eq!(
            issues[0]["issue_type"], "invalid-request-body",
            "{name}: issue type"
        );
        let message = issues[0]["message"].as_str().expect("message is text");
        assert!(
            message.contains(expected),
            "{name}: message {message:?} lacks {expected:?}"
        );
    }

    // A body that parses is the check's to judge: an invalid target is a not-completed reply.
    let response = send(
        endpoints.addr,
        "POST",
        "/caa",
        "",
        br#"{"domain_or_ip_target": "bad..name"}"#,
    )
    .await;
    assert_eq!(response.status, 200, "invalid target: status");
    let reply = response.check_response();
    assert!(!reply.check_completed, "invalid target: completed");
    let errors = reply.errors.expect("invalid target: errors are present");
    assert!(
        errors[0].error_message.contains("bad..name"),
        "invalid target: message {:?}",
        errors[0].error_message
    );

    endpoints.stop().await;
}

#[tokio::test]
async fn health_and_unknown_routes() {
    let dns = TestDns::start(zones()).await;
    let endpoints = Endpoints::start(&worker_config(dns.addr())).await;

    let health = send(endpoints.addr, "GET", "/healthz", "", b"").await;
    assert_eq!(health.status, 200, "healthz status");
    assert_eq!(
        health.json(),
        serde_json::json!({"status": "healthy"}),
        "healthz body"
    );

    let cases = [
        ("unknown route", "GET", "/mpic", 404),
        ("GET on a check route", "GET", "/caa", 405),
        ("POST on healthz", "POST", "/healthz", 405),
    ];
    for (name, method, path, status) in cases {
        let response = send(endpoints.addr, method, path, "", b"").await;
        assert_eq!(response.status, status, "{name}: status");
    }

    endpoints.stop().await;
}

#[tokio::test]
async fn configz_shows_effective_config_without_secrets() {
    let dns = TestDns::start(zones()).await;
    let mut config = worker_config(dns.addr());
    config.nats = Some(NatsConfig {
        servers: vec!["nats://worker:url-secret@127.0.0.1:4222".to_owned()],
        auth: NatsAuth::UserPassword {
            user: "worker".to_owned(),
            password: Secret::new("key-secret"),
        },
    });
    let endpoints = Endpoints::start(&config).await;

    let response = send(endpoints.addr, "GET", "/configz", "", b"").await;
    assert_eq!(response.status, 200, "status");
    let text = String::from_utf8_lossy(&response.body).into_owned();
    assert!(
        !text.contains("url-secret"),
        "password from the URL leaked: {text}"
    );
    assert!(!text.contains("key-secret"), "nats_password leaked: {text}");
    let json = response.json();
    assert_eq!(json["perspective_code"], PERSPECTIVE);
    assert_eq!(json["app_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["nats_auth"], "user_password");
    assert_eq!(
        json["nats_url"][0],
        "nats://worker:[redacted]@127.0.0.1:4222"
    );
    assert_eq!(
        json["default_caa_domains"],
        serde_json::json!(["ca.example"])
    );
    assert_eq!(json["nameservers"][0], dns.addr().to_string());
    assert_eq!(json["http_client_timeout_seconds"], 30.0);
    assert_eq!(json["max_checks_in_flight"], 64);

    endpoints.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_request_in_progress() {
    let dns = TestDns::start(zones()).await;
    dns.set_behavior(
        "slow.example.test.",
        Some(RecordType::CAA),
        Behavior::Delay(Duration::from_millis(1000)),
    );
    let endpoints = Endpoints::start(&worker_config(dns.addr())).await;

    let addr = endpoints.addr;
    let slow = tokio::spawn(async move {
        send(
            addr,
            "POST",
            "/caa",
            "Mpic-Trace-Identifier: trace-http-test\r\n",
            &caa_body("slow.example.test"),
        )
        .await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while dns.query_count_for("slow.example.test.", RecordType::CAA) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow check never queried DNS"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    endpoints.stop().await;

    let response = slow.await.expect("slow request task does not panic");
    assert_eq!(response.status, 200, "status");
    let reply = response.check_response();
    assert!(
        reply.check_completed,
        "slow check not completed: {:?}",
        reply.errors
    );
    assert!(reply.check_passed, "slow check not passed: {reply:?}");
}

#[tokio::test]
async fn signed_responses_verify_only_for_their_request() {
    let dns = TestDns::start(zones()).await;
    let keys = TempDirectory::new("signed-http");
    let (signing_key, public_pem) = reply_signing_key(&keys);
    let mut config = worker_config(dns.addr());
    config.reply_signing = Some(signing_key);
    let endpoints = Endpoints::start(&config).await;

    let verifier =
        ReplyVerifier::from_pems(PERSPECTIVE, [public_pem.as_str()]).expect("public key parses");
    let other_perspective =
        ReplyVerifier::from_pems("us-east-1", [public_pem.as_str()]).expect("public key parses");
    let cases = [
        ("passed check", caa_body("example.test"), 200),
        ("malformed body", b"{}".to_vec(), 400),
    ];
    for (index, (name, body, status)) in cases.into_iter().enumerate() {
        let request_id = format!("request-{index}");
        let response = send(
            endpoints.addr,
            "POST",
            "/caa",
            &format!("{REQUEST_ID_HEADER}: {request_id}\r\n"),
            &body,
        )
        .await;
        assert_eq!(response.status, status, "{name}: status");
        assert_eq!(
            response.header(PERSPECTIVE_HEADER),
            Some(PERSPECTIVE),
            "{name}: perspective header"
        );
        let signature = response.header(SIGNATURE_HEADER);
        assert!(signature.is_some(), "{name}: response is not signed");

        let verified = verifier.verify(&request_id, &response.body, signature);
        assert!(verified.is_ok(), "{name}: signature rejected: {verified:?}");
        assert!(
            verifier
                .verify("request-other", &response.body, signature)
                .is_err(),
            "{name}: verified for another request id"
        );
        assert!(
            other_perspective
                .verify(&request_id, &response.body, signature)
                .is_err(),
            "{name}: verified as another perspective"
        );
    }

    let configz = send(endpoints.addr, "GET", "/configz", "", b"").await;
    let public_key_body: String = public_pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    assert_eq!(
        configz.json()["reply_signing_public_key"],
        public_key_body.as_str(),
        "configz public key"
    );

    endpoints.stop().await;
}

#[tokio::test]
async fn request_ids_that_cannot_be_signed_for() {
    let dns = TestDns::start(zones()).await;
    let keys = TempDirectory::new("signed-http-ids");
    let (signing_key, _) = reply_signing_key(&keys);
    let mut signing_config = worker_config(dns.addr());
    signing_config.reply_signing = Some(signing_key);
    let signing = Endpoints::start(&signing_config).await;
    let unsigned = Endpoints::start(&worker_config(dns.addr())).await;

    let too_long = format!("{REQUEST_ID_HEADER}: {}\r\n", "x".repeat(129));
    let not_ascii = format!("{REQUEST_ID_HEADER}: caf\u{e9}\r\n");
    let with_id = format!("{REQUEST_ID_HEADER}: request-1\r\n");
    // (case name, endpoints, extra request headers, expected status)
    let cases = [
        (
            "no header: unsigned for old coordinators",
            &signing,
            "",
            200,
        ),
        ("id too long", &signing, too_long.as_str(), 400),
        ("id not ASCII", &signing, not_ascii.as_str(), 400),
        ("worker without key", &unsigned, with_id.as_str(), 200),
    ];
    for (name, endpoints, extra_headers, status) in cases {
        dns.clear_queries();
        let response = send(
            endpoints.addr,
            "POST",
            "/caa",
            extra_headers,
            &caa_body("example.test"),
        )
        .await;

        assert_eq!(response.status, status, "{name}: status");
        assert_eq!(
            response.header(SIGNATURE_HEADER),
            None,
            "{name}: response is signed"
        );
        assert_eq!(
            response.header(PERSPECTIVE_HEADER),
            Some(PERSPECTIVE),
            "{name}: perspective header"
        );
        if status == 200 {
            assert!(
                response.check_response().check_passed,
                "{name}: check not passed"
            );
            continue;
        }
        let json = response.json();
        assert_eq!(
            json["validation_issues"][0]["issue_type"], "invalid-request-id",
            "{name}: issue type"
        );
        assert_eq!(
            dns.query_count_for("example.test.", RecordType::CAA),
            0,
            "{name}: the check ran"
        );
    }

    signing.stop().await;
    unsigned.stop().await;
}

/// Generates an Ed25519 key, writes it as PKCS#8 PEM into `directory` and returns it loaded
/// for [`PERSPECTIVE`], with its public key in SubjectPublicKeyInfo PEM.
fn reply_signing_key(directory: &TempDirectory) -> (ReplySigningKey, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("generate Ed25519 key");
    let file = directory.write("reply-signing.key", &key.serialize_pem());
    let signing_key = ReplySigningKey::from_file(&file, PERSPECTIVE).expect("key file loads");
    (signing_key, key.public_key_pem())
}

/// A directory under the system temporary directory, removed on drop.
struct TempDirectory {
    path: PathBuf,
}

impl TempDirectory {
    fn new(name: &str) -> TempDirectory {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mpic-worker-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temporary directory");
        TempDirectory { path }
    }

    fn write(&self, file_name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(file_name);
        std::fs::write(&path, contents).expect("write temporary file");
        path
    }
}

impl Drop for TempDirectory {
    fn drop(&mut self) {
        // A directory left behind holds only test keys and is harmless.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
