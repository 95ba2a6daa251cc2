//! The REST API driven in-process (`tower::ServiceExt::oneshot`) and through a real listener,
//! with in-process perspectives whose resolvers point at a local DNS authority.

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use mpic_coordinator::api::{self, AppState, MAX_BODY_BYTES};
use mpic_coordinator::config::{CoordinatorConfig, DEFAULT_LISTEN_ADDRESS};
use mpic_coordinator::orchestration::HashSecret;
use mpic_coordinator::transport::Transports;
use mpic_shared::appconf::AppConf;
use mpic_testkit::dns::{Behavior, TestDns, Zone};
use mpic_worker::config::WorkerConfig;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

/// The CA's issuer domain name in the test zones.
const CA: &str = "ca.example";

/// Starts a DNS authority for `example.com.` (CAA names [`CA`]) and `com.` (no CAA), and
/// builds the quick-start perspectives (ten, in process) against it.
async fn fixture() -> (TestDns, Router) {
    let dns = TestDns::start([
        Zone::new("example.com.", &format!("@ CAA 0 issue \"{CA}\"")),
        Zone::new("com.", ""),
    ])
    .await;
    let config =
        CoordinatorConfig::quick_start(DEFAULT_LISTEN_ADDRESS, HashSecret::new(b"s").unwrap())
            .unwrap();
    let worker = worker_config(&dns);
    let transports = Transports::connect(&config, Some(&worker)).await.unwrap();
    (dns, api::app(AppState::new(&config, transports).unwrap()))
}

fn worker_config(dns: &TestDns) -> WorkerConfig {
    let settings = format!(
        "perspective_code=test\nhttp_listen=127.0.0.1:0\nnameservers={}\n",
        dns.addr()
    );
    let config = WorkerConfig::from_appconf(&AppConf::parse(&settings).unwrap()).unwrap();
    WorkerConfig {
        http_listen: None,
        ..config
    }
}

/// Sends a request through the router without a listener and returns status and JSON body.
async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        content_type.as_ref().map(|value| value.to_str().unwrap()),
        Some("application/json"),
        "every answer is JSON, status {status}"
    );
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn post_json(body: impl Into<Body>) -> Request<Body> {
    Request::post("/mpic")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn fixture_exchange(name: &str) -> Value {
    let path = format!(
        "{}/../shared/tests/fixtures/python-reference/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).unwrap()
}

/// Returns the issue types of a 400 body, after checking its shape.
fn issue_types(name: &str, status: StatusCode, body: &Value) -> Vec<String> {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
    assert_eq!(body["error"], "request-validation-failed", "{name}: {body}");
    let object = body.as_object().unwrap();
    assert_eq!(
        object.len(),
        2,
        "{name}: only error and validation_issues: {body}"
    );
    body["validation_issues"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no validation_issues: {body}"))
        .iter()
        .map(|issue| {
            assert_eq!(issue.as_object().unwrap().len(), 2, "{name}: {issue}");
            assert!(issue["message"].is_string(), "{name}: {issue}");
            issue["issue_type"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_invalid_request_gets_its_issue() {
    let (_dns, app) = fixture().await;
    let caa = |orchestration: Value| {
        json!({"check_type": "caa", "domain_or_ip_target": "example.com",
               "orchestration_parameters": orchestration})
    };
    let dcv = |parameters: Value| {
        json!({"check_type": "dcv", "domain_or_ip_target": "example.com",
               "dcv_check_parameters": parameters})
    };
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "perspective count of one",
            caa(json!({"perspective_count": 1})),
            vec!["invalid-perspective-count"],
        ),
        (
            "perspective count above the deployment",
            caa(json!({"perspective_count": 11})),
            vec!["invalid-perspective-count"],
        ),
        (
            "negative perspective count",
            caa(json!({"perspective_count": -3})),
            vec!["invalid-perspective-count"],
        ),
        (
            "quorum above the count",
            caa(json!({"perspective_count": 3, "quorum_count": 5})),
            vec!["invalid-quorum-count"],
        ),
        (
            "quorum below the BR minimum",
            caa(json!({"perspective_count": 6, "quorum_count": 3})),
            vec!["invalid-quorum-count"],
        ),
        (
            "zero attempts",
            caa(json!({"max_attempts": 0})),
            vec!["invalid-max-attempts"],
        ),
        (
            "cohort number zero",
            caa(json!({"cohort_for_single_attempt": 0})),
            vec!["invalid-cohort-for-single-attempt"],
        ),
        (
            "unknown certificate type",
            json!({"check_type": "caa", "domain_or_ip_target": "example.com",
                   "caa_check_parameters": {"certificate_type": "code-signing"}}),
            vec!["invalid-certificate-type"],
        ),
        (
            "record type the method cannot query",
            dcv(
                json!({"validation_method": "dns-change", "challenge_value": "x",
                       "dns_record_type": "MX"}),
            ),
            vec!["invalid-validation-method-record-type-combination"],
        ),
        (
            "empty challenge value",
            dcv(json!({"validation_method": "acme-dns-01", "key_authorization_hash": ""})),
            vec!["empty-challenge-value"],
        ),
        (
            "DCV without parameters",
            json!({"check_type": "dcv", "domain_or_ip_target": "example.com"}),
            vec!["missing-dcv-check-parameters"],
        ),
        (
            "target that is no name",
            json!({"check_type": "caa", "domain_or_ip_target": "not a name!"}),
            vec!["invalid-target"],
        ),
        (
            "unknown validation method",
            dcv(json!({"validation_method": "carrier-pigeon"})),
            vec!["invalid-validation-method"],
        ),
        (
            "missing target",
            json!({"check_type": "caa"}),
            vec!["invalid-request-schema"],
        ),
        (
            "two problems at once",
            json!({"check_type": "dcv", "domain_or_ip_target": "example.com",
                   "orchestration_parameters": {"perspective_count": 1},
                   "dcv_check_parameters": {"validation_method": "acme-dns-01",
                                            "key_authorization_hash": " "}}),
            vec!["invalid-perspective-count", "empty-challenge-value"],
        ),
    ];
    for (name, body, expected) in cases {
        let (status, answer) = send(&app, post_json(body.to_string())).await;
        assert_eq!(
            issue_types(name, status, &answer),
            expected,
            "{name}: {answer}"
        );
    }
}

#[tokio::test]
async fn quorum_error_matches_python_reference() {
    let (_dns, app) = fixture().await;
    let exchange = fixture_exchange("mpic-400-quorum.json");

    let (status, body) = send(&app, post_json(exchange["request"].to_string())).await;

    assert_eq!(status.as_u16(), exchange["status"]);
    assert_eq!(body, exchange["response"]);
}

#[tokio::test]
async fn schema_errors_keep_the_reference_shape() {
    let (_dns, app) = fixture().await;
    let cases = [
        (
            "mpic-400-schema.json",
            "invalid-request-schema",
            "dcv_check_parameters: missing field `key_authorization_hash`",
        ),
        (
            "mpic-400-bad-check-type.json",
            "invalid-check-type",
            "check_type: unknown variant `nope`, expected `caa` or `dcv`",
        ),
    ];
    for (name, issue_type, message) in cases {
        let exchange = fixture_exchange(name);
        let (status, body) = send(&app, post_json(exchange["request"].to_string())).await;
        assert_eq!(status.as_u16(), exchange["status"], "{name}");
        assert_eq!(body["error"], exchange["response"]["error"], "{name}");
        assert_eq!(
            body["validation_issues"],
            json!([{"issue_type": issue_type, "message": message}]),
            "{name}"
        );
    }
}

#[tokio::test]
async fn malformed_bodies_are_rejected_as_json() {
    let (_dns, app) = fixture().await;
    let cases = [
        ("truncated", r#"{"check_type": "caa""#),
        ("not JSON", "check_type=caa"),
        ("empty", ""),
        (
            "trailing data",
            r#"{"check_type":"caa","domain_or_ip_target":"a.example"} x"#,
        ),
    ];
    for (name, body) in cases {
        let (status, answer) = send(&app, post_json(body)).await;
        assert_eq!(
            issue_types(name, status, &answer),
            ["invalid-json"],
            "{name}"
        );
    }
}

#[tokio::test]
async fn content_type_and_size_are_enforced() {
    let (_dns, app) = fixture().await;
    // A valid JSON body whose validation fails, so an accepted media type shows as a 400.
    let invalid = json!({"check_type": "caa", "domain_or_ip_target": "example.com",
                         "orchestration_parameters": {"perspective_count": 1}})
    .to_string();

    let with_type = |content_type: Option<&str>| {
        let mut request = Request::post("/mpic");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.body(Body::from(invalid.clone())).unwrap()
    };
    let cases = [
        (
            "text/plain",
            Some("text/plain"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "XML",
            Some("application/xml"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "curl -d default",
            Some("application/x-www-form-urlencoded"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "JSON with charset",
            Some("application/json; charset=utf-8"),
            StatusCode::BAD_REQUEST,
        ),
        ("no content type", None, StatusCode::BAD_REQUEST),
    ];
    for (name, content_type, expected) in cases {
        let (status, body) = send(&app, with_type(content_type)).await;
        assert_eq!(status, expected, "{name}: {body}");
        assert!(body["error"].is_string(), "{name}: {body}");
    }

    let oversized = format!(
        r#"{{"check_type":"caa","domain_or_ip_target":"example.com","trace_identifier":"{}"}}"#,
        "x".repeat(MAX_BODY_BYTES)
    );
    let (status, body) = send(&app, post_json(oversized)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let (_dns, app) = fixture().await;
    let cases = [
        ("healthz", Request::get("/healthz"), StatusCode::OK),
        ("unknown path", Request::get("/nope"), StatusCode::NOT_FOUND),
        (
            "GET /mpic",
            Request::get("/mpic"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "POST /healthz",
            Request::post("/healthz"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (name, request, expected) in cases {
        let (status, body) = send(&app, request.body(Body::empty()).unwrap()).await;
        assert_eq!(status, expected, "{name}: {body}");
    }
}

#[tokio::test]
async fn valid_request_runs_every_cohort_member() {
    let (_dns, app) = fixture().await;
    let request = json!({"check_type": "caa", "domain_or_ip_target": "www.example.com",
                         "trace_identifier": "api-200",
                         "caa_check_parameters": {"caa_domains": [CA]}});

    let (status, body) = send(&app, post_json(request.to_string())).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["is_valid"], true, "{body}");
    assert_eq!(body["trace_identifier"], "api-200");
    assert_eq!(
        body["actual_orchestration_parameters"],
        json!({"perspective_count": 5, "quorum_count": 4, "attempt_count": 1})
    );
    let perspectives = body["perspectives"].as_array().unwrap();
    assert_eq!(perspectives.len(), 5, "{body}");
    for perspective in perspectives {
        let details = &perspective["check_response"]["details"];
        assert_eq!(details["found_at"], "example.com", "{perspective}");
    }
}

#[tokio::test]
async fn cohort_error_matches_python_reference() {
    let (_dns, app) = fixture().await;
    let exchange = fixture_exchange("mpic-500-cohort.json");

    let (status, body) = send(&app, post_json(exchange["request"].to_string())).await;

    assert_eq!(status.as_u16(), exchange["status"]);
    assert_eq!(body, exchange["response"]);
}

#[tokio::test]
async fn deadline_cuts_off_slow_requests() {
    let dns = TestDns::start([Zone::new(
        "example.com.",
        &format!("@ CAA 0 issue \"{CA}\""),
    )])
    .await;
    dns.set_behavior(
        "example.com.",
        None,
        Behavior::Delay(Duration::from_secs(3)),
    );
    let config =
        CoordinatorConfig::quick_start(DEFAULT_LISTEN_ADDRESS, HashSecret::new(b"s").unwrap())
            .unwrap();
    let transports = Transports::connect(&config, Some(&worker_config(&dns)))
        .await
        .unwrap();
    let mut state = AppState::new(&config, transports).unwrap();
    state.request_timeout = Duration::from_millis(300);
    let app = api::app(state);

    let started = Instant::now();
    let request = json!({"check_type": "caa", "domain_or_ip_target": "example.com"});
    let (status, body) = send(&app, post_json(request.to_string())).await;

    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the answer came after {:?}, not at the deadline",
        started.elapsed()
    );
}

#[tokio::test]
async fn served_through_a_real_listener() {
    let (_dns, app) = fixture().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(api::serve(listener, app, async {
        let _ = stopped.await;
    }));
    let client = plain_http_client();

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);

    let request = json!({"check_type": "caa", "domain_or_ip_target": "example.com",
                         "caa_check_parameters": {"caa_domains": ["other.example"]}});
    let answer = client
        .post(format!("{base}/mpic"))
        .header("content-type", "application/json")
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    let body: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(body["is_valid"], false, "another CA is named: {body}");
    assert_eq!(body["mpic_completed"], true, "{body}");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// Returns a reqwest client for plain HTTP on loopback. reqwest is built without a default
/// crypto provider, so even a client that never uses TLS needs a rustls configuration.
fn plain_http_client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap()
}
