//! The NATS service loop against a real `nats-server` and a real DNS server on loopback.
//!
//! Each test starts its own `nats-server` (testkit's `NatsServer`) and `TestDns`, runs one or
//! two workers of the perspective `us-east-1` and sends requests the way the coordinator does.
//! CAA checks make the requests real: `example.test` permits `ca.example`, and the DNS server
//! delays the CAA response of `slow.example.test`, so that a check lasts as long as a test needs.
//! Signed replies are verified with the coordinator's `ReplyVerifier` and a key generated per
//! test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, Message, RequestErrorKind};
use bytes::Bytes;
use hickory_proto::rr::RecordType;
use mpic_shared::dcv::ValidationMethod;
use mpic_shared::reply::{CheckDetails, CheckResponse, error_type};
use mpic_shared::request::CheckType;
use mpic_shared::signing::{REQUEST_ID_HEADER, ReplyVerifier, SIGNATURE_HEADER};
use mpic_shared::subject::{PERSPECTIVE_HEADER, TRACE_HEADER, check_subject};
use mpic_testkit::alpn::{AlpnPolicy, AlpnServer};
use mpic_testkit::dns::{Behavior, TestDns, Zone};
use mpic_testkit::http::{ChallengeServer, Reply, Routes};
use mpic_testkit::nats::{NatsConfig as ServerConfig, NatsServer};
use mpic_testkit::tls::{AcmeTlsAlpnCertificate, key_authorization_digest};
use mpic_worker::config::{NatsAuth, NatsConfig, ReplySigningKey, Secret, WorkerConfig};
use mpic_worker::fetch::AddressPolicy;
use mpic_worker::handler::Checker;
use mpic_worker::resolver::NameServers;
use mpic_worker::service::{self, NatsService, ServiceError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const PERSPECTIVE: &str = "us-east-1";

/// How long a test waits for any one reply before it fails.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

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

fn worker_config(nats: &NatsServer, dns: SocketAddr, max_checks_in_flight: usize) -> WorkerConfig {
    let mut config = WorkerConfig::with_defaults(PERSPECTIVE).expect("perspective code is valid");
    config.nats = Some(NatsConfig {
        servers: vec![nats.url()],
        auth: NatsAuth::None,
    });
    config.default_caa_domains = vec!["ca.example".to_owned()];
    config.resolver.name_servers = NameServers::Configured(vec![dns]);
    // Longer than the longest DNS delay of these tests, so a delay is never a timeout.
    config.resolver.query_timeout = Duration::from_secs(3);
    config.resolver.resolution_lifetime = Duration::from_secs(4);
    config.max_checks_in_flight = max_checks_in_flight;
    config
}

/// A worker running in a task, and the means to stop it.
struct RunningWorker {
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServiceError>>,
}

impl RunningWorker {
    /// Starts a worker and waits for the reply to a request sent through the worker's own
    /// connection. The server handles one connection's messages in order, so the reply proves
    /// it registered the subscriptions.
    async fn start(config: &WorkerConfig) -> RunningWorker {
        let nats = config.nats.as_ref().expect("test configs use NATS");
        let client = service::connect_with_tls(nats, &config.nats_tls, "test worker")
            .await
            .expect("worker connects");
        let checker = Checker::new(config).expect("checker builds");
        let service = NatsService::start(
            client.clone(),
            checker,
            &config.subject_prefix,
            config.reply_signing.clone(),
        )
        .await
        .expect("worker subscribes");
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(service.run(async {
            // A dropped sender stops the worker too.
            let _ = stopped.await;
        }));

        let subject = check_subject("mpic", PERSPECTIVE, CheckType::Caa);
        let reply = tokio::time::timeout(REPLY_TIMEOUT, client.request(subject, "{}".into()))
            .await
            .expect("readiness request timed out")
            .expect("readiness request is answered");
        assert!(!reply.payload.is_empty(), "readiness reply is empty");

        RunningWorker {
            shutdown: Some(shutdown),
            task,
        }
    }

    fn request_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            shutdown.send(()).expect("worker is still running");
        }
    }

    async fn stop(mut self) {
        self.request_shutdown();
        tokio::time::timeout(REPLY_TIMEOUT, self.task)
            .await
            .expect("worker stops in time")
            .expect("worker task does not panic")
            .expect("worker stops without error");
    }
}

async fn coordinator(nats: &NatsServer) -> Client {
    async_nats::connect(nats.url())
        .await
        .expect("coordinator connects")
}

/// Sends one request and returns the reply body and its perspective header.
async fn call(
    client: &Client,
    check_type: CheckType,
    body: &str,
) -> Result<(CheckResponse, Option<String>), async_nats::RequestError> {
    let subject = check_subject("mpic", PERSPECTIVE, check_type);
    let mut headers = HeaderMap::new();
    headers.insert(TRACE_HEADER, "trace-service-test");
    let request = async_nats::Request::new()
        .payload(Bytes::from(body.to_owned()))
        .headers(headers)
        .timeout(Some(REPLY_TIMEOUT));
    let message = client.send_request(subject, request).await?;
    let reply: CheckResponse =
        serde_json::from_slice(&message.payload).expect("reply is a CheckResponse");
    let perspective = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(PERSPECTIVE_HEADER))
        .map(|value| value.as_str().to_owned());
    Ok((reply, perspective))
}

fn caa_request(target: &str) -> String {
    serde_json::json!({
        "domain_or_ip_target": target,
        "trace_identifier": "trace-service-test",
        "caa_check_parameters": {"certificate_type": "tls-server"},
    })
    .to_string()
}

fn first_error_type(reply: &CheckResponse) -> Option<&str> {
    reply
        .errors
        .as_ref()
        .and_then(|errors| errors.first())
        .map(|error| error.error_type.as_str())
}

#[tokio::test]
async fn caa_round_trip_carries_perspective_header() {
    let nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    let worker = RunningWorker::start(&worker_config(&nats, dns.addr(), 4)).await;
    let client = coordinator(&nats).await;

    let cases = [
        ("permitted name", "example.test", true, Some("example.test")),
        (
            "forbidden name",
            "deny.example.test",
            false,
            Some("deny.example.test"),
        ),
        ("IP address needs no DNS", "192.0.2.1", true, None),
    ];
    for (name, target, passed, found_at) in cases {
        let (reply, perspective) = call(&client, CheckType::Caa, &caa_request(target))
            .await
            .unwrap_or_else(|error| panic!("{name}: request failed: {error}"));
        assert_eq!(
            perspective.as_deref(),
            Some(PERSPECTIVE),
            "{name}: perspective header"
        );
        assert_eq!(reply.check_type, CheckType::Caa, "{name}: check type");
        assert!(
            reply.check_completed,
            "{name}: not completed: {:?}",
            reply.errors
        );
        assert_eq!(reply.check_passed, passed, "{name}: passed");
        let CheckDetails::Caa(details) = &reply.details else {
            panic!("{name}: details are not CAA details: {:?}", reply.details);
        };
        assert_eq!(details.found_at.as_deref(), found_at, "{name}: found_at");
    }

    worker.stop().await;
}

#[tokio::test]
async fn dcv_round_trip_carries_perspective_header() {
    let nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    let challenge_server = ChallengeServer::start(Routes::new().route(
        "/.well-known/acme-challenge/token-1",
        Reply::ok("token-1.thumbprint\n"),
    ))
    .await;
    let alpn_server = AlpnServer::start(
        AcmeTlsAlpnCertificate::new("token-2.thumbprint", &["127.0.0.1"]).build(),
        AlpnPolicy::NegotiateAcmeTls1,
    )
    .await;
    let mut config = worker_config(&nats, dns.addr(), 4);
    config.address_policy = AddressPolicy::AllowNonPublic;
    config.challenge_ports.http = challenge_server.port();
    config.challenge_ports.tls_alpn = alpn_server.port();
    let worker = RunningWorker::start(&config).await;
    let client = coordinator(&nats).await;

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
        let (reply, perspective) = call(&client, CheckType::Dcv, &body.to_string())
            .await
            .unwrap_or_else(|error| panic!("{name}: request failed: {error}"));
        assert_eq!(
            perspective.as_deref(),
            Some(PERSPECTIVE),
            "{name}: perspective header"
        );
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

    worker.stop().await;
}

#[tokio::test]
async fn dcv_checks_apply_configured_address_policy() {
    let nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    let challenge_server = ChallengeServer::start(Routes::new().route(
        "/.well-known/acme-challenge/token-1",
        Reply::ok("token-1.thumbprint"),
    ))
    .await;
    // The default policy admits only globally reachable addresses, so the loopback challenge
    // server must never see a connection.
    let mut config = worker_config(&nats, dns.addr(), 4);
    config.challenge_ports.http = challenge_server.port();
    let worker = RunningWorker::start(&config).await;
    let client = coordinator(&nats).await;

    let body = serde_json::json!({
        "domain_or_ip_target": "127.0.0.1",
        "dcv_check_parameters": {
            "validation_method": "acme-http-01",
            "token": "token-1",
            "key_authorization": "token-1.thumbprint",
        },
    });
    let (reply, _) = call(&client, CheckType::Dcv, &body.to_string())
        .await
        .expect("request is answered");

    assert!(!reply.check_passed, "a loopback target passed: {reply:?}");
    assert_eq!(
        challenge_server.connection_count(),
        0,
        "the worker connected to loopback"
    );

    worker.stop().await;
}

#[tokio::test]
async fn credentials_reach_the_server() {
    let cases = [
        (
            "user and password",
            "authorization { user: worker, password: s3cret }",
            NatsAuth::UserPassword {
                user: "worker".to_owned(),
                password: Secret::new("s3cret"),
            },
        ),
        (
            "token",
            "authorization { token: t0ken }",
            NatsAuth::Token(Secret::new("t0ken")),
        ),
    ];
    for (name, server_config, auth) in cases {
        let nats = NatsServer::start_with_config(ServerConfig::new(server_config));
        let dns = TestDns::start(zones()).await;
        let mut config = worker_config(&nats, dns.addr(), 4);

        // The readiness round trip in `start` proves the worker is connected and subscribed.
        config.nats = Some(NatsConfig {
            servers: vec![nats.url()],
            auth,
        });
        RunningWorker::start(&config).await.stop().await;

        config.nats = Some(NatsConfig {
            servers: vec![nats.url()],
            auth: NatsAuth::None,
        });
        let nats_config = config.nats.as_ref().expect("set above");
        let error = service::connect(nats_config, "worker without credentials")
            .await
            .expect_err(&format!(
                "{name}: the server accepted a worker without credentials"
            ));
        assert!(
            matches!(error, ServiceError::Connect { .. }),
            "{name}: unexpected error {error}"
        );
    }
}

#[tokio::test]
async fn messages_without_reply_subject_are_ignored() {
    let nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    let worker = RunningWorker::start(&worker_config(&nats, dns.addr(), 4)).await;
    let client = coordinator(&nats).await;
    dns.clear_queries();

    let subject = check_subject("mpic", PERSPECTIVE, CheckType::Caa);
    client
        .publish(subject, Bytes::from(caa_request("example.test")))
        .await
        .expect("publish without reply subject");
    // The worker handles its messages in order, and this test runs every task on one thread
    // in spawn order, so a check for the first message would query DNS before this one does.
    let (reply, _) = call(&client, CheckType::Caa, &caa_request("example.test"))
        .await
        .expect("the request after it is answered");

    assert!(reply.check_passed, "second request: {reply:?}");
    assert_eq!(
        dns.query_count_for("example.test.", RecordType::CAA),
        1,
        "the message without a reply subject ran a check"
    );

    worker.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_invalid_request_replies() {
    let nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    let worker = RunningWorker::start(&worker_config(&nats, dns.addr(), 4)).await;
    let client = coordinator(&nats).await;

    let cases = [
        (
            "not JSON",
            CheckType::Caa,
            "caa, please",
            "invalid request body",
        ),
        (
            "missing target",
            CheckType::Caa,
            "{}",
            "domain_or_ip_target",
        ),
        (
            "target of wrong type",
            CheckType::Caa,
            r#"{"domain_or_ip_target": ["example.test"]}"#,
            "domain_or_ip_target",
        ),
        (
            "DCV method without its field",
            CheckType::Dcv,
            r#"{"domain_or_ip_target": "example.test", "dcv_check_parameters": {"validation_method": "acme-dns-01"}}"#,
            "key_authorization_hash",
        ),
        (
            "unknown DCV method",
            CheckType::Dcv,
            r#"{"domain_or_ip_target": "example.test", "dcv_check_parameters": {"validation_method": "fax"}}"#,
            "dcv_check_parameters",
        ),
    ];
    for (name, check_type, body, field) in cases {
        let (reply, perspective) = call(&client, check_type, body)
            .await
            .unwrap_or_else(|error| panic!("{name}: no reply: {error}"));
        assert_eq!(
            perspective.as_deref(),
            Some(PERSPECTIVE),
            "{name}: perspective header"
        );
        assert_eq!(reply.check_type, check_type, "{name}: check type");
        assert!(!reply.check_completed, "{name}: completed");
        assert!(!reply.check_passed, "{name}: passed");
        assert_eq!(
            first_error_type(&reply),
            Some(error_type::INVALID_REQUEST),
            "{name}: error type"
        );
        let message = &reply.errors.as_ref().expect("errors are present")[0].error_message;
        assert!(
            message.contains(field),
            "{name}: message {message:?} does not name {field}"
        );
    }

    worker.stop().await;
}

#[tokio::test]
async fn queue_group_answers_each_request_once() {
    const REQUESTS: usize = 20;
    let nats = NatsServer::start();
    // Each worker resolves through its own DNS server, so the query counts show which worker
    // ran each check.
    let dns_a = TestDns::start(zones()).await;
    let dns_b = TestDns::start(zones()).await;
    let worker_a = RunningWorker::start(&worker_config(&nats, dns_a.addr(), 4)).await;
    let worker_b = RunningWorker::start(&worker_config(&nats, dns_b.addr(), 4)).await;
    dns_a.clear_queries();
    dns_b.clear_queries();
    let client = coordinator(&nats).await;

    let body = caa_request("example.test");
    let requests = (0..REQUESTS).map(|_| call(&client, CheckType::Caa, &body));
    let replies = futures::future::join_all(requests).await;
    for (index, reply) in replies.into_iter().enumerate() {
        let (reply, _) = reply.unwrap_or_else(|error| panic!("request {index}: {error}"));
        assert!(reply.check_passed, "request {index}: not passed: {reply:?}");
    }

    let ran_on_a = dns_a.query_count_for("example.test.", RecordType::CAA);
    let ran_on_b = dns_b.query_count_for("example.test.", RecordType::CAA);
    assert_eq!(
        ran_on_a + ran_on_b,
        REQUESTS,
        "each request must run exactly once (worker A ran {ran_on_a}, worker B {ran_on_b})"
    );
    // With random queue selection both workers get none of 20 requests with probability 2^-19.
    assert!(ran_on_a > 0, "worker A ran no check");
    assert!(ran_on_b > 0, "worker B ran no check");

    worker_a.stop().await;
    worker_b.stop().await;
}

#[tokio::test]
async fn shutdown_drains_in_flight_checks() {
    let nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    let slow_answer = Duration::from_millis(1500);
    dns.set_behavior(
        "slow.example.test.",
        Some(RecordType::CAA),
        Behavior::Delay(slow_answer),
    );
    // One slot: the first slow check runs and the second waits for it inside the worker.
    let mut worker = RunningWorker::start(&worker_config(&nats, dns.addr(), 1)).await;
    let client = coordinator(&nats).await;

    let mut slow = Vec::new();
    for _ in 0..2 {
        let slow_client = client.clone();
        slow.push(tokio::spawn(async move {
            let body = caa_request("slow.example.test");
            let reply = call(&slow_client, CheckType::Caa, &body).await;
            (reply, Instant::now())
        }));
    }
    // Both requests were published before the first reached the worker and queried DNS, so
    // the server has delivered both by now.
    wait_until("the first slow check queries DNS", || {
        dns.query_count_for("slow.example.test.", RecordType::CAA) > 0
    })
    .await;

    worker.request_shutdown();
    let shutdown_started = Instant::now();

    // Requests published after the drain find no worker. The drain reaches the server a moment
    // after it is requested, and a request delivered in between waits for the busy slot, so
    // such a request is abandoned after a short timeout. The worker must drain while its
    // slot is still busy, long before the first slow check ends.
    let mut no_responders = false;
    while !no_responders && shutdown_started.elapsed() < slow_answer * 2 / 3 {
        let request = async_nats::Request::new()
            .payload(Bytes::from(caa_request("192.0.2.1")))
            .timeout(Some(Duration::from_millis(100)));
        let subject = check_subject("mpic", PERSPECTIVE, CheckType::Caa);
        match client.send_request(subject, request).await {
            Err(error) if error.kind() == RequestErrorKind::NoResponders => no_responders = true,
            Err(error) if error.kind() == RequestErrorKind::TimedOut => {}
            Err(error) => panic!("unexpected request error during the drain: {error}"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert!(
        no_responders,
        "requests still reached the worker after shutdown started"
    );
    assert!(
        !worker.task.is_finished(),
        "worker stopped before its checks finished"
    );

    for (index, task) in slow.into_iter().enumerate() {
        let (reply, answered_at) = tokio::time::timeout(REPLY_TIMEOUT, task)
            .await
            .expect("slow reply arrives in time")
            .expect("slow request task does not panic");
        let (reply, perspective) =
            reply.unwrap_or_else(|error| panic!("slow check {index} is not answered: {error}"));
        assert!(
            answered_at > shutdown_started,
            "slow check {index}: reply came before shutdown started"
        );
        assert_eq!(
            perspective.as_deref(),
            Some(PERSPECTIVE),
            "slow check {index}: perspective header"
        );
        assert!(
            reply.check_completed,
            "slow check {index}: not completed: {:?}",
            reply.errors
        );
        assert!(
            reply.check_passed,
            "slow check {index}: not passed: {reply:?}"
        );
    }

    worker.stop().await;
}

#[tokio::test]
async fn in_flight_bound_holds() {
    const REQUESTS: u32 = 6;
    let delay = Duration::from_millis(400);
    let nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    dns.set_behavior(
        "slow.example.test.",
        Some(RecordType::CAA),
        Behavior::Delay(delay),
    );
    let client = coordinator(&nats).await;
    let body = caa_request("slow.example.test");

    // (case name, max_checks_in_flight)
    let cases = [
        ("two slots", 2_usize),
        ("a slot per request", REQUESTS as usize),
    ];
    let mut elapsed_by_case = Vec::new();
    for (name, bound) in cases {
        let worker = RunningWorker::start(&worker_config(&nats, dns.addr(), bound)).await;
        let started = Instant::now();
        let requests = (0..REQUESTS).map(|_| call(&client, CheckType::Caa, &body));
        for (index, reply) in futures::future::join_all(requests)
            .await
            .into_iter()
            .enumerate()
        {
            let (reply, _) =
                reply.unwrap_or_else(|error| panic!("{name}: request {index}: {error}"));
            assert!(
                reply.check_passed,
                "{name}: request {index} not passed: {reply:?}"
            );
        }
        elapsed_by_case.push((name, bound, started.elapsed()));
        worker.stop().await;
    }

    let (name, bound, elapsed) = elapsed_by_case[0];
    let rounds = REQUESTS / u32::try_from(bound).expect("small bound");
    assert!(
        elapsed >= delay * rounds,
        "{name}: {REQUESTS} checks of {delay:?} with {bound} slots took only {elapsed:?}"
    );
    // Without the bound the checks overlap, which shows the DNS server answers concurrently
    // and the time above comes from the bound.
    let (name, _, elapsed) = elapsed_by_case[1];
    assert!(
        elapsed < delay * rounds,
        "{name}: {REQUESTS} concurrent checks of {delay:?} took {elapsed:?}"
    );
}

/// Waits until `condition` holds, checking every 10 ms for at most 5 seconds.
/// Regression: with the NATS server gone, a worker told to stop waited forever for the
/// server to end its drained subscriptions.
#[tokio::test]
async fn shutdown_finishes_without_the_server() {
    let mut nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    let config = worker_config(&nats, dns.addr(), 4);
    let client = service::connect_with_tls(config.nats.as_ref().unwrap(), &config.nats_tls, "test")
        .await
        .expect("worker connects");
    let service = NatsService::start(
        client,
        Checker::new(&config).expect("checker builds"),
        &config.subject_prefix,
        None,
    )
    .await
    .expect("worker subscribes")
    .with_shutdown_step_timeout(Duration::from_millis(300));
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));

    nats.kill();
    shutdown.send(()).expect("worker is still running");
    let result = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("worker stops although the server is gone")
        .expect("worker task does not panic");

    assert!(
        matches!(result, Ok(()) | Err(ServiceError::FlushTimedOut { .. })),
        "unexpected result: {result:?}"
    );
}

async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn signed_replies_verify_only_for_their_request() {
    let nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    let keys = TempDirectory::new("signed-nats");
    let (signing_key, public_pem) = reply_signing_key(&keys);
    let mut config = worker_config(&nats, dns.addr(), 4);
    config.reply_signing = Some(signing_key);
    let worker = RunningWorker::start(&config).await;
    let client = coordinator(&nats).await;

    let verifier =
        ReplyVerifier::from_pems(PERSPECTIVE, [public_pem.as_str()]).expect("public key parses");
    let other_perspective =
        ReplyVerifier::from_pems("eu-west-1", [public_pem.as_str()]).expect("public key parses");
    let cases = [
        ("passed check", caa_request("example.test"), true),
        ("malformed request", "{}".to_owned(), false),
    ];
    for (index, (name, body, completed)) in cases.into_iter().enumerate() {
        let request_id = format!("request-{index}");
        let message = call_with_request_id(&client, &body, Some(&request_id)).await;
        let reply: CheckResponse =
            serde_json::from_slice(&message.payload).expect("reply is a CheckResponse");
        assert_eq!(reply.check_completed, completed, "{name}: completed");
        assert_eq!(
            header(&message, PERSPECTIVE_HEADER).as_deref(),
            Some(PERSPECTIVE),
            "{name}: perspective header"
        );
        let signature = header(&message, SIGNATURE_HEADER);
        assert!(signature.is_some(), "{name}: reply is not signed");
        let signature = signature.as_deref();

        let verified = verifier.verify(&request_id, &message.payload, signature);
        assert!(verified.is_ok(), "{name}: signature rejected: {verified:?}");
        assert!(
            verifier
                .verify("request-other", &message.payload, signature)
                .is_err(),
            "{name}: verified for another request id"
        );
        assert!(
            other_perspective
                .verify(&request_id, &message.payload, signature)
                .is_err(),
            "{name}: verified as another perspective"
        );
        let mut changed = message.payload.to_vec();
        changed.push(b' ');
        assert!(
            verifier.verify(&request_id, &changed, signature).is_err(),
            "{name}: verified a changed body"
        );
    }

    worker.stop().await;
}

#[tokio::test]
async fn signing_worker_rejects_requests_without_usable_id() {
    let nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    let keys = TempDirectory::new("signed-nats-no-id");
    let (signing_key, _) = reply_signing_key(&keys);
    let mut config = worker_config(&nats, dns.addr(), 4);
    config.reply_signing = Some(signing_key);
    let worker = RunningWorker::start(&config).await;
    let client = coordinator(&nats).await;
    dns.clear_queries();

    let too_long = "x".repeat(129);
    let cases = [
        ("no request id", None),
        ("request id too long", Some(too_long.as_str())),
    ];
    for (name, request_id) in cases {
        let message = call_with_request_id(&client, &caa_request("example.test"), request_id).await;
        let reply: CheckResponse =
            serde_json::from_slice(&message.payload).expect("reply is a CheckResponse");

        assert!(!reply.check_completed, "{name}: completed");
        assert!(!reply.check_passed, "{name}: passed");
        assert_eq!(
            first_error_type(&reply),
            Some(error_type::INVALID_REQUEST),
            "{name}: error type"
        );
        let message_text = &reply.errors.as_ref().expect("errors are present")[0].error_message;
        assert!(
            message_text.contains(REQUEST_ID_HEADER),
            "{name}: message {message_text:?} does not name the header"
        );
        assert_eq!(
            header(&message, SIGNATURE_HEADER),
            None,
            "{name}: reply is signed"
        );
        assert_eq!(
            header(&message, PERSPECTIVE_HEADER).as_deref(),
            Some(PERSPECTIVE),
            "{name}: perspective header"
        );
    }
    assert_eq!(
        dns.query_count_for("example.test.", RecordType::CAA),
        0,
        "a request that cannot be signed for ran its check"
    );

    worker.stop().await;
}

#[tokio::test]
async fn worker_without_key_replies_unsigned() {
    let nats = NatsServer::start();
    let dns = TestDns::start(zones()).await;
    let worker = RunningWorker::start(&worker_config(&nats, dns.addr(), 4)).await;
    let client = coordinator(&nats).await;

    let message =
        call_with_request_id(&client, &caa_request("example.test"), Some("request-1")).await;
    let reply: CheckResponse =
        serde_json::from_slice(&message.payload).expect("reply is a CheckResponse");

    assert!(reply.check_passed, "check not passed: {reply:?}");
    assert_eq!(header(&message, SIGNATURE_HEADER), None, "reply is signed");

    worker.stop().await;
}

/// Sends one CAA request with an optional request id and returns the raw reply.
async fn call_with_request_id(client: &Client, body: &str, request_id: Option<&str>) -> Message {
    let subject = check_subject("mpic", PERSPECTIVE, CheckType::Caa);
    let mut headers = HeaderMap::new();
    headers.insert(TRACE_HEADER, "trace-service-test");
    if let Some(request_id) = request_id {
        headers.insert(REQUEST_ID_HEADER, request_id);
    }
    let request = async_nats::Request::new()
        .payload(Bytes::from(body.to_owned()))
        .headers(headers)
        .timeout(Some(REPLY_TIMEOUT));
    client
        .send_request(subject, request)
        .await
        .expect("request is answered")
}

fn header(message: &Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(name))
        .map(|value| value.as_str().to_owned())
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
