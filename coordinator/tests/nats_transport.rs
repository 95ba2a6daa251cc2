//! The NATS transport against a real `nats-server`, with responders written here on
//! async-nats directly, so each failure a perspective can cause is produced on the wire.

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use mpic_coordinator::transport::nats::NatsTransport;
use mpic_coordinator::transport::{
    PerspectiveClient, TransportError, TransportErrorKind, Transports,
};
use mpic_shared::dcv::ValidationMethod;
use mpic_shared::reply::{CaaDetails, CheckDetails, CheckResponse, DnsDetails};
use mpic_shared::request::CheckType;
use mpic_shared::subject::{PERSPECTIVE_HEADER, QUEUE_GROUP, TRACE_HEADER};
use mpic_testkit::nats::{NatsConfig as ServerConfig, NatsServer};
use mpic_worker::config::{NatsAuth, NatsConfig, NatsTls, Secret};
use tokio::sync::mpsc;

/// The per-call timeout under test. It is long enough for a loaded machine to reply to a local
/// request and short enough to keep the slow case quick.
const TIMEOUT: Duration = Duration::from_millis(1500);

/// How long the slow responder waits before it replies: well past [`TIMEOUT`].
const SLOW_REPLY_DELAY: Duration = Duration::from_secs(5);

/// What a responder sends back.
#[derive(Clone, Copy)]
enum Behaviour {
    /// A CAA reply naming this perspective.
    Good,
    /// A CAA reply naming another perspective.
    NamesOtherPerspective,
    /// A CAA reply without the perspective header.
    NoPerspectiveHeader,
    /// Bytes that are not JSON.
    Unparsable,
    /// A DCV reply to a CAA check.
    WrongCheckType,
    /// A good reply after [`SLOW_REPLY_DELAY`].
    Slow,
}

fn caa_reply() -> Bytes {
    let reply = CheckResponse::completed(
        CheckType::Caa,
        true,
        CheckDetails::Caa(CaaDetails {
            caa_record_present: Some(false),
            found_at: None,
            records_seen: None,
        }),
    );
    serde_json::to_vec(&reply).unwrap().into()
}

fn dcv_reply() -> Bytes {
    let reply = CheckResponse::completed(
        CheckType::Dcv,
        true,
        CheckDetails::Dns(DnsDetails::empty(ValidationMethod::AcmeDns01)),
    );
    serde_json::to_vec(&reply).unwrap().into()
}

/// Starts a responder for `perspective`'s CAA subject that forwards each request's trace
/// header to `traces`. It runs until the test's runtime shuts down.
async fn spawn_responder(
    client: &async_nats::Client,
    perspective: &'static str,
    behaviour: Behaviour,
    traces: mpsc::UnboundedSender<Option<String>>,
) {
    let subject = format!("mpic.{perspective}.caa");
    let mut subscriber = client
        .queue_subscribe(subject, QUEUE_GROUP.to_owned())
        .await
        .unwrap();
    // The subscription must reach the server before any request is sent.
    client.flush().await.unwrap();

    let client = client.clone();
    tokio::spawn(async move {
        while let Some(message) = subscriber.next().await {
            let trace = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(TRACE_HEADER))
                .map(|value| value.as_str().to_owned());
            let _ = traces.send(trace);
            let Some(reply_to) = message.reply else {
                continue;
            };

            let mut headers = HeaderMap::new();
            let payload = match behaviour {
                Behaviour::Good | Behaviour::Slow => {
                    headers.insert(PERSPECTIVE_HEADER, perspective);
                    caa_reply()
                }
                Behaviour::NamesOtherPerspective => {
                    headers.insert(PERSPECTIVE_HEADER, "eu-west-2");
                    caa_reply()
                }
                Behaviour::NoPerspectiveHeader => caa_reply(),
                Behaviour::Unparsable => {
                    headers.insert(PERSPECTIVE_HEADER, perspective);
                    Bytes::from_static(b"not json")
                }
                Behaviour::WrongCheckType => {
                    headers.insert(PERSPECTIVE_HEADER, perspective);
                    dcv_reply()
                }
            };
            if matches!(behaviour, Behaviour::Slow) {
                tokio::time::sleep(SLOW_REPLY_DELAY).await;
            }
            client
                .publish_with_headers(reply_to, headers, payload)
                .await
                .unwrap();
        }
    });
}

struct Fixture {
    _server: NatsServer,
    transport: NatsTransport,
    traces: mpsc::UnboundedReceiver<Option<String>>,
}

async fn fixture(responders: &[(&'static str, Behaviour)]) -> Fixture {
    let server = NatsServer::start();
    let responder_client = async_nats::connect(server.url()).await.unwrap();
    let (sender, traces) = mpsc::unbounded_channel();
    for (perspective, behaviour) in responders {
        spawn_responder(&responder_client, perspective, *behaviour, sender.clone()).await;
    }
    let config = NatsConfig {
        servers: vec![server.url()],
        auth: NatsAuth::None,
    };
    let transport = NatsTransport::connect(&config, &NatsTls::default(), "mpic", TIMEOUT)
        .await
        .unwrap();
    Fixture {
        _server: server,
        transport,
        traces,
    }
}

async fn call(
    transport: &NatsTransport,
    perspective: &str,
) -> Result<CheckResponse, TransportError> {
    transport
        .call(
            perspective,
            CheckType::Caa,
            Bytes::from_static(br#"{"domain_or_ip_target":"example.com"}"#),
            Some("trace-1"),
            None,
        )
        .await
}

#[tokio::test]
async fn good_reply_is_parsed_and_trace_travels() {
    let mut fixture = fixture(&[("us-east-1", Behaviour::Good)]).await;

    let reply = call(&fixture.transport, "us-east-1").await.unwrap();

    assert!(reply.check_completed, "{reply:?}");
    assert!(reply.check_passed, "{reply:?}");
    assert_eq!(reply.check_type, CheckType::Caa);
    assert_eq!(
        fixture.traces.recv().await.unwrap().as_deref(),
        Some("trace-1"),
        "the trace identifier travels in the request header"
    );
}

#[tokio::test]
async fn bad_replies_map_to_their_error_kinds() {
    let fixture = fixture(&[
        ("impostor-1", Behaviour::NamesOtherPerspective),
        ("anonymous-1", Behaviour::NoPerspectiveHeader),
        ("garbled-1", Behaviour::Unparsable),
        ("confused-1", Behaviour::WrongCheckType),
    ])
    .await;

    let cases = [
        ("absent-1", TransportErrorKind::NoResponders),
        ("impostor-1", TransportErrorKind::WrongPerspective),
        ("anonymous-1", TransportErrorKind::WrongPerspective),
        ("garbled-1", TransportErrorKind::InvalidReply),
        ("confused-1", TransportErrorKind::InvalidReply),
    ];
    for (perspective, expected) in cases {
        let error = call(&fixture.transport, perspective).await.unwrap_err();
        assert_eq!(error.kind(), expected, "{perspective}: {error}");
    }

    let error = call(&fixture.transport, "impostor-1").await.unwrap_err();
    let TransportError::WrongPerspective { expected, actual } = error else {
        panic!("impostor-1: {error:?}");
    };
    assert_eq!(expected, "impostor-1");
    assert_eq!(
        actual.as_deref(),
        Some("eu-west-2"),
        "the claimed perspective is kept"
    );
}

#[tokio::test]
async fn slow_perspective_times_out_without_delaying_others() {
    let fixture = fixture(&[("slow-1", Behaviour::Slow), ("fast-1", Behaviour::Good)]).await;
    let transports = Transports::from_clients([
        (
            "slow-1".to_owned(),
            PerspectiveClient::Nats(fixture.transport.perspective(None)),
        ),
        (
            "fast-1".to_owned(),
            PerspectiveClient::Nats(fixture.transport.perspective(None)),
        ),
    ]);
    let body = Bytes::from_static(br#"{"domain_or_ip_target":"example.com"}"#);

    let started = Instant::now();
    let slow = async {
        let result = transports
            .call("slow-1", CheckType::Caa, body.clone(), None)
            .await;
        (result, started.elapsed())
    };
    let fast = async {
        let result = transports
            .call("fast-1", CheckType::Caa, body.clone(), None)
            .await;
        (result, started.elapsed())
    };
    let ((slow_result, slow_elapsed), (fast_result, fast_elapsed)) = tokio::join!(slow, fast);

    let error = slow_result.unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::TimedOut, "{error}");
    assert!(
        slow_elapsed >= TIMEOUT && slow_elapsed < SLOW_REPLY_DELAY,
        "the slow call ended after {slow_elapsed:?}, not at the {TIMEOUT:?} timeout"
    );
    assert!(fast_result.unwrap().check_passed);
    assert!(
        fast_elapsed < TIMEOUT,
        "the fast call took {fast_elapsed:?}, so it waited for the slow one"
    );
}

#[tokio::test]
async fn undeployed_perspective_is_a_failed_request() {
    let transports = Transports::default();
    let error = transports
        .call("us-east-1", CheckType::Caa, Bytes::new(), None)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), TransportErrorKind::RequestFailed, "{error}");
}

#[tokio::test]
async fn token_authenticates_the_connection() {
    let server = NatsServer::start_with_config(ServerConfig::new(
        "authorization { token: \"s3cret-token\" }",
    ));
    let with_token = |token: &str| NatsConfig {
        servers: vec![server.url()],
        auth: NatsAuth::Token(Secret::new(token)),
    };

    let responder = async_nats::ConnectOptions::with_token("s3cret-token".to_owned())
        .connect(server.url())
        .await
        .unwrap();
    let (sender, _traces) = mpsc::unbounded_channel();
    spawn_responder(&responder, "us-east-1", Behaviour::Good, sender).await;

    let transport = NatsTransport::connect(
        &with_token("s3cret-token"),
        &NatsTls::default(),
        "mpic",
        TIMEOUT,
    )
    .await
    .unwrap();
    let reply = call(&transport, "us-east-1").await.unwrap();
    assert!(reply.check_passed, "{reply:?}");

    let refused = NatsTransport::connect(
        &with_token("wrong-token"),
        &NatsTls::default(),
        "mpic",
        TIMEOUT,
    )
    .await;
    assert!(refused.is_err(), "a wrong token is refused");
}
