//! The HTTP transport against a local axum server that plays a checker's endpoints, including
//! the ways a checker can fail and the ways a response's signature can be wrong.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::post;
use ed25519_dalek::SigningKey;
use mpic_coordinator::config::{HttpEndpoint, HttpEndpoints};
use mpic_coordinator::transport::http::HttpTransport;
use mpic_coordinator::transport::{MAX_REPLY_BYTES, TransportErrorKind};
use mpic_shared::reply::{CaaDetails, CheckDetails, CheckResponse};
use mpic_shared::request::CheckType;
use mpic_shared::signing::{REQUEST_ID_HEADER, ReplySigner, ReplyVerifier, SIGNATURE_HEADER};
use mpic_shared::subject::TRACE_HEADER;
use reqwest::Url;
use tokio::net::TcpListener;

const TIMEOUT: Duration = Duration::from_millis(1500);

/// How long the slow endpoint waits: well past [`TIMEOUT`].
const SLOW_REPLY_DELAY: Duration = Duration::from_secs(5);

const API_KEY: &str = "test-api-key";

fn caa_reply() -> Vec<u8> {
    let reply = CheckResponse::completed(
        CheckType::Caa,
        false,
        CheckDetails::Caa(CaaDetails {
            caa_record_present: Some(true),
            found_at: Some("example.com".to_owned()),
            records_seen: Some(vec!["0 issue \"other.example\"".to_owned()]),
        }),
    );
    serde_json::to_vec(&reply).unwrap()
}

/// One request as `/caa` received it.
#[derive(Debug, Clone)]
struct Received {
    trace: Option<String>,
    request_id: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// `/caa` replies only to requests with the API key, and logs what it received.
async fn caa(State(log): State<Log>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    if text("x-api-key").as_deref() != Some(API_KEY) {
        return (StatusCode::UNAUTHORIZED, Vec::new());
    }
    log.lock().unwrap().push(Received {
        trace: text(TRACE_HEADER),
        request_id: text(REQUEST_ID_HEADER),
        content_type: text("content-type"),
        body: body.to_vec(),
    });
    (StatusCode::OK, caa_reply())
}

/// Starts the checker on a free loopback port and returns its base URL and request log.
async fn start_checker() -> (String, Log) {
    let log = Log::default();
    let app = Router::new()
        .route("/caa", post(caa))
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(SLOW_REPLY_DELAY).await;
                caa_reply()
            }),
        )
        .route(
            "/unavailable",
            post(|| async { StatusCode::SERVICE_UNAVAILABLE }),
        )
        .route("/garbled", post(|| async { "not json" }))
        .route("/huge", post(|| async { vec![b' '; MAX_REPLY_BYTES + 1] }))
        .route("/redirect", post(|| async { Redirect::temporary("/caa") }))
        .route("/signed", post(signed_reply(Signing::Good)))
        .route("/replayed", post(signed_reply(Signing::Replayed)))
        .route("/other-key", post(signed_reply(Signing::OtherKey)))
        .route(
            "/other-perspective",
            post(signed_reply(Signing::OtherPerspective)),
        )
        .route("/unsigned", post(signed_reply(Signing::Unsigned)))
        .with_state(log.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), log)
}

/// How a signing endpoint signs its reply.
#[derive(Clone, Copy, Debug)]
enum Signing {
    /// With us-east-1's key, for the request's identifier.
    Good,
    /// With us-east-1's key, for an earlier request's identifier.
    Replayed,
    /// With another key, as us-east-1.
    OtherKey,
    /// With us-east-1's key, as eu-west-2.
    OtherPerspective,
    /// Not at all.
    Unsigned,
}

/// Returns the key of perspective `seed`: 1 is us-east-1's.
fn signing_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Returns the verifier the coordinator holds for us-east-1.
fn us_east_verifier() -> Arc<ReplyVerifier> {
    Arc::new(ReplyVerifier::new(
        "us-east-1",
        vec![signing_key(1).verifying_key()],
    ))
}

/// Returns a handler that replies with a CAA reply, signed as `signing` specifies.
fn signed_reply(
    signing: Signing,
) -> impl Fn(HeaderMap) -> std::future::Ready<axum::response::Response> + Clone {
    move |headers: HeaderMap| {
        let request_id = headers
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("none")
            .to_owned();
        let body = caa_reply();
        let (code, key, signed_id) = match signing {
            Signing::Good => ("us-east-1", 1, request_id),
            Signing::Replayed => ("us-east-1", 1, "earlier-request".to_owned()),
            Signing::OtherKey => ("us-east-1", 2, request_id),
            Signing::OtherPerspective => ("eu-west-2", 1, request_id),
            Signing::Unsigned => {
                return std::future::ready((StatusCode::OK, body).into_response());
            }
        };
        let signature = ReplySigner::new(code, signing_key(key))
            .sign(&signed_id, &body)
            .unwrap();
        std::future::ready((StatusCode::OK, [(SIGNATURE_HEADER, signature)], body).into_response())
    }
}

fn endpoint(url: &str) -> HttpEndpoint {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-api-key", API_KEY.parse().unwrap());
    HttpEndpoint {
        url: Url::parse(url).unwrap(),
        headers,
    }
}

fn transport() -> HttpTransport {
    HttpTransport::new(TIMEOUT, Duration::from_secs(15)).unwrap()
}

const BODY: &[u8] = br#"{"domain_or_ip_target":"example.com"}"#;

#[tokio::test]
async fn good_reply_is_parsed() {
    let (base, _log) = start_checker().await;
    let transport = transport();
    let caa = endpoint(&format!("{base}/caa"));
    let dcv = endpoint(&format!("{base}/unavailable"));
    let perspective = transport.perspective(HttpEndpoints { caa, dcv }, None);

    let reply = perspective
        .call(
            "us-east-1",
            CheckType::Caa,
            Bytes::from_static(BODY),
            Some("trace-7"),
        )
        .await
        .unwrap();

    assert!(reply.check_completed, "{reply:?}");
    assert!(!reply.check_passed, "{reply:?}");
    let CheckDetails::Caa(details) = reply.details else {
        panic!("not CAA details: {:?}", reply.details);
    };
    assert_eq!(details.found_at.as_deref(), Some("example.com"));

    let error = perspective
        .call("us-east-1", CheckType::Dcv, Bytes::from_static(BODY), None)
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        TransportErrorKind::RequestFailed,
        "a DCV check goes to the DCV endpoint: {error}"
    );
}

#[tokio::test]
async fn headers_body_and_trace_reach_the_checker() {
    let (base, log) = start_checker().await;
    transport()
        .call(
            "us-east-1",
            &endpoint(&format!("{base}/caa")),
            CheckType::Caa,
            Bytes::from_static(BODY),
            Some("trace-7"),
            None,
        )
        .await
        .unwrap();

    let received = log.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].trace.as_deref(), Some("trace-7"));
    let request_id = received[0].request_id.as_deref().unwrap();
    assert_eq!(
        uuid::Uuid::parse_str(request_id).unwrap().get_version_num(),
        4,
        "the request identifier is a random UUID: {request_id}"
    );
    assert_eq!(
        received[0].content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(received[0].body, BODY);

    let mut without_key = endpoint(&format!("{base}/caa"));
    without_key.headers.clear();
    let error = transport()
        .call(
            "us-east-1",
            &without_key,
            CheckType::Caa,
            Bytes::from_static(BODY),
            None,
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        TransportErrorKind::RequestFailed,
        "without the configured header the checker answers 401: {error}"
    );
}

#[tokio::test]
async fn failures_map_to_their_error_kinds() {
    let (base, _log) = start_checker().await;
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let cases = [
        (
            "unavailable",
            format!("{base}/unavailable"),
            TransportErrorKind::RequestFailed,
        ),
        (
            "garbled",
            format!("{base}/garbled"),
            TransportErrorKind::InvalidReply,
        ),
        (
            "huge",
            format!("{base}/huge"),
            TransportErrorKind::InvalidReply,
        ),
        (
            "redirect not followed",
            format!("{base}/redirect"),
            TransportErrorKind::RequestFailed,
        ),
        (
            "connection refused",
            format!("http://127.0.0.1:{closed_port}/caa"),
            TransportErrorKind::RequestFailed,
        ),
    ];
    let transport = transport();
    for (name, url, expected) in cases {
        let error = transport
            .call(
                "us-east-1",
                &endpoint(&url),
                CheckType::Caa,
                Bytes::from_static(BODY),
                None,
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(error.kind(), expected, "{name}: {error}");
        assert!(
            !error.to_string().contains(API_KEY),
            "{name}: the error leaks the API key: {error}"
        );
    }
}

#[tokio::test]
async fn slow_checker_times_out() {
    let (base, _log) = start_checker().await;
    let started = Instant::now();
    let error = transport()
        .call(
            "us-east-1",
            &endpoint(&format!("{base}/slow")),
            CheckType::Caa,
            Bytes::from_static(BODY),
            None,
            None,
        )
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.kind(), TransportErrorKind::TimedOut, "{error}");
    assert!(
        elapsed >= TIMEOUT && elapsed < SLOW_REPLY_DELAY,
        "the call ended after {elapsed:?}, not at the {TIMEOUT:?} timeout"
    );
}

#[tokio::test]
async fn signed_responses_are_verified() {
    let (base, _log) = start_checker().await;
    let transport = transport();
    let verifier = us_east_verifier();
    let cases = [
        ("signed", "signed", Some(&verifier), None),
        (
            "replayed signature",
            "replayed",
            Some(&verifier),
            Some(TransportErrorKind::BadSignature),
        ),
        (
            "another key",
            "other-key",
            Some(&verifier),
            Some(TransportErrorKind::BadSignature),
        ),
        (
            "signed as another perspective",
            "other-perspective",
            Some(&verifier),
            Some(TransportErrorKind::BadSignature),
        ),
        (
            "unsigned",
            "unsigned",
            Some(&verifier),
            Some(TransportErrorKind::BadSignature),
        ),
        ("unsigned without a key", "unsigned", None, None),
    ];
    for (name, path, verifier, expected) in cases {
        let result = transport
            .call(
                "us-east-1",
                &endpoint(&format!("{base}/{path}")),
                CheckType::Caa,
                Bytes::from_static(BODY),
                None,
                verifier.map(|verifier| verifier.as_ref()),
            )
            .await;
        match (result, expected) {
            (Ok(reply), None) => assert!(reply.check_completed, "{name}: {reply:?}"),
            (Err(error), Some(kind)) => assert_eq!(error.kind(), kind, "{name}: {error}"),
            (result, _) => panic!("{name}: {result:?}"),
        }
    }
}
