//! The whole issue path on one machine: the coordinator's REST API over a real listener, a
//! real `nats-server`, six worker service loops (two perspectives in each of ARIN, RIPE NCC
//! and APNIC) and a DNS authority serving the test zones. The workers sign their replies with
//! keys generated for the test, and the coordinator verifies them. Requests replay the Python
//! reference exchanges, so verdicts, `found_at` and the JSON field set are compared with what
//! the Python service answered for the same DNS data.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use hickory_proto::rr::RecordType;
use mpic_coordinator::api::{self, AppState};
use mpic_coordinator::config::CoordinatorConfig;
use mpic_coordinator::transport::Transports;
use mpic_shared::appconf::AppConf;
use mpic_testkit::alpn::{AlpnPolicy, AlpnServer};
use mpic_testkit::dns::{Behavior, TestDns, Zone};
use mpic_testkit::http::{ChallengeServer, Reply, Routes};
use mpic_testkit::nats::NatsServer;
use mpic_testkit::tls::{AcmeTlsAlpnCertificate, key_authorization_digest};
use mpic_worker::config::WorkerConfig;
use mpic_worker::handler::Checker;
use mpic_worker::service::{self, NatsService};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The deployed perspectives: two per RIR, no two closer than 500 km.
const PERSPECTIVES: [&str; 6] = [
    "us-east-1",
    "us-west-2",
    "eu-west-2",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-1",
];

/// Per-perspective timeout of the coordinator: short, since every server is local.
const PERSPECTIVE_TIMEOUT_SECONDS: u32 = 2;

/// The key authorization hash of the dns-01 reference exchange.
const KEY_AUTHORIZATION_HASH: &str = "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo";

/// Returns the DNS data behind the reference exchanges, rebuilt under the same names.
fn zones() -> Vec<Zone> {
    vec![
        Zone::new("com.", ""),
        Zone::new("example.com.", ""),
        Zone::new(
            "basic.caatestsuite.com.",
            r#"
            deny            CAA 0 issue "caatestsuite.com"
            deny-wild       CAA 0 issuewild "caatestsuite.com"
            "#,
        ),
        Zone::new(
            "caatestsuite-dnssec.com.",
            "servfail CAA 0 issue \"x.example\"",
        ),
        Zone::new("e2e.example.", "http A 127.0.0.1\nalpn A 127.0.0.1\n"),
        Zone::new(
            "integration-testing.open-mpic.org.",
            &format!(
                "_acme-challenge.dns-01-cname CNAME dns-01-cname-landing\n\
                 dns-01-cname-landing TXT \"{KEY_AUTHORIZATION_HASH}\"\n"
            ),
        ),
    ]
}

/// Everything the tests run against. Dropping it stops the workers, the servers and the API.
struct Deployment {
    dns: TestDns,
    nats: NatsServer,
    /// Sends the shutdown signal to each worker when dropped or sent.
    workers: Vec<(String, oneshot::Sender<()>)>,
    base_url: String,
    client: reqwest::Client,
    _config_directory: TempDirectory,
}

async fn deploy(extra_settings: &str) -> Deployment {
    deploy_with(extra_settings, "").await
}

/// Starts everything with extra coordinator settings and extra settings for every worker.
async fn deploy_with(extra_settings: &str, worker_settings: &str) -> Deployment {
    let dns = TestDns::start(zones()).await;
    dns.set_behavior(
        "servfail.caatestsuite-dnssec.com.",
        Some(RecordType::CAA),
        Behavior::ServFail,
    );
    let nats = NatsServer::start();
    let config_directory = TempDirectory::new();
    let public_keys = config_directory.path.join("reply-keys");
    std::fs::create_dir(&public_keys).unwrap();

    let mut workers = Vec::new();
    for code in PERSPECTIVES {
        let signing_key = write_signing_key(&config_directory.path, &public_keys, code);
        let worker = start_worker(code, &nats, &dns, &signing_key, worker_settings).await;
        workers.push((code.to_owned(), worker));
    }

    let config_path = config_directory.path.join("app.conf");
    let codes: Vec<String> = PERSPECTIVES
        .iter()
        .map(|code| format!("\"{code}\""))
        .collect();
    let settings = format!(
        "perspectives=[{}]\ndefault_perspective_count=6\nhash_secret=end-to-end\n\
         nats_url={}\nperspective_catalogue={}\nhttp_client_timeout_seconds={}\n\
         absolute_max_attempts=3\nreply_verification_keys_dir={}\n{extra_settings}",
        codes.join(","),
        nats.url(),
        catalogue_path().display(),
        PERSPECTIVE_TIMEOUT_SECONDS,
        public_keys.display(),
    );
    std::fs::write(&config_path, settings).unwrap();
    let (config, warnings) = CoordinatorConfig::load(Some(&config_path), |_| None).unwrap();
    assert_eq!(warnings, [], "the test configuration is clean");

    let transports = Transports::connect(&config, None).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let app = api::app(AppState::new(&config, transports).unwrap());
    tokio::spawn(async move {
        api::serve(listener, app, std::future::pending())
            .await
            .unwrap()
    });

    Deployment {
        dns,
        nats,
        workers,
        base_url,
        client: plain_http_client(),
        _config_directory: config_directory,
    }
}

/// Generates a reply signing key for `code`, writes the private key to `directory` and the
/// public key to `public_keys` as `<code>.pub`, and returns the private key's path.
fn write_signing_key(directory: &Path, public_keys: &Path, code: &str) -> PathBuf {
    let key = SigningKey::from_bytes(&rand::random());
    let private_path = directory.join(format!("{code}.key"));
    std::fs::write(
        &private_path,
        key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    std::fs::write(public_keys.join(format!("{code}.pub")), public_pem).unwrap();
    private_path
}

/// Starts one perspective's NATS service loop, signing replies with the key in
/// `signing_key`; it drains and stops when the sender is used or dropped.
async fn start_worker(
    code: &str,
    nats: &NatsServer,
    dns: &TestDns,
    signing_key: &Path,
    extra_settings: &str,
) -> oneshot::Sender<()> {
    let settings = format!(
        "perspective_code={code}\nnats_url={}\nnameservers={}\ndefault_caa_domains=ca.example\n\
         reply_signing_key_file={}\n{extra_settings}",
        nats.url(),
        dns.addr(),
        signing_key.display()
    );
    let config = WorkerConfig::from_appconf(&AppConf::parse(&settings).unwrap()).unwrap();
    let nats_config = config.nats.clone().unwrap();
    let checker = Checker::new(&config).unwrap();
    let client = service::connect(&nats_config, code).await.unwrap();
    let nats_service = NatsService::start(
        client,
        checker,
        &config.subject_prefix,
        config.reply_signing.clone(),
    )
    .await
    .unwrap();

    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let shutdown = async {
            // Either a value or a dropped sender means stop.
            let _ = stopped.await;
        };
        nats_service.run(shutdown).await.unwrap();
    });
    stop
}

/// Returns a reqwest client for the plain-HTTP loopback API. reqwest is built without a
/// default crypto provider, so even a client that never uses TLS needs a rustls configuration.
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

fn catalogue_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../available_perspectives.yaml")
}

impl Deployment {
    async fn post(&self, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/mpic", self.base_url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// Stops one perspective's worker and waits until NATS reports no responders for it.
    async fn stop_worker(&mut self, code: &str) {
        let index = self.workers.iter().position(|(c, _)| c == code).unwrap();
        let (_, stop) = self.workers.remove(index);
        stop.send(()).unwrap();

        let probe = async_nats::connect(self.nats.url()).await.unwrap();
        let subject = format!("mpic.{code}.caa");
        for _ in 0..50 {
            let request = async_nats::Request::new()
                .payload("{}".into())
                .timeout(Some(Duration::from_secs(1)));
            match probe.send_request(subject.clone(), request).await {
                Err(error)
                    if error.kind() == async_nats::client::RequestErrorKind::NoResponders =>
                {
                    return;
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("the worker of {code} still answers after it was stopped");
    }
}

fn fixture_exchange(name: &str) -> Value {
    let path = format!(
        "{}/../shared/tests/fixtures/python-reference/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).unwrap()
}

/// Returns the keys of a JSON object.
fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

fn perspective_codes(perspectives: &Value) -> BTreeSet<String> {
    perspectives
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["perspective_code"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn reference_exchanges_get_the_same_verdicts() {
    let deployment = deploy("").await;
    let exchanges = [
        "mpic-caa-no-records.json",
        "mpic-caa-deny.json",
        "mpic-caa-permit-wildcard-issuewild.json",
        "mpic-caa-lookup-failure.json",
        "mpic-dcv-acme-dns-01-cname.json",
        "mpic-dcv-acme-dns-01-nxdomain.json",
    ];
    for name in exchanges {
        let exchange = fixture_exchange(name);
        let expected = &exchange["response"];
        let (status, actual) = deployment.post(&exchange["request"]).await;

        assert_eq!(status, 200, "{name}: {actual}");
        assert_eq!(keys(&actual), keys(expected), "{name}: response fields");
        for field in [
            "check_type",
            "domain_or_ip_target",
            "trace_identifier",
            "is_valid",
            "mpic_completed",
            "request_orchestration_parameters",
            "actual_orchestration_parameters",
            "previous_attempt_results",
        ] {
            assert_eq!(actual[field], expected[field], "{name}: {field}");
        }

        let perspectives = actual["perspectives"].as_array().unwrap();
        let reference = &expected["perspectives"][0]["check_response"];
        assert_eq!(
            perspectives.len(),
            expected["perspectives"].as_array().unwrap().len(),
            "{name}: perspective count"
        );
        for perspective in perspectives {
            let code = perspective["perspective_code"].as_str().unwrap();
            assert!(PERSPECTIVES.contains(&code), "{name}: {code}");
            let response = &perspective["check_response"];
            assert_eq!(
                keys(response),
                keys(reference),
                "{name} {code}: reply fields"
            );
            assert_eq!(
                keys(&response["details"]),
                keys(&reference["details"]),
                "{name} {code}: details fields"
            );
            for field in ["check_completed", "check_passed", "check_type"] {
                assert_eq!(response[field], reference[field], "{name} {code}: {field}");
            }
            for field in [
                "found_at",
                "records_seen",
                "caa_record_present",
                "cname_chain",
            ] {
                assert_eq!(
                    response["details"].get(field),
                    reference["details"].get(field),
                    "{name} {code}: details.{field}"
                );
            }
            assert_eq!(
                response["errors"]
                    .as_array()
                    .map(|errors| errors[0]["error_type"].clone()),
                reference["errors"]
                    .as_array()
                    .map(|errors| errors[0]["error_type"].clone()),
                "{name} {code}: error type"
            );
        }
    }
}

#[tokio::test]
async fn retries_use_fresh_disjoint_cohorts() {
    let deployment = deploy("").await;
    let denied = |target: &str, orchestration: Value| {
        json!({"check_type": "caa", "domain_or_ip_target": target,
               "caa_check_parameters": {"caa_domains": ["ca.example"]},
               "orchestration_parameters": orchestration})
    };

    let (status, body) = deployment
        .post(&denied(
            "deny.basic.caatestsuite.com",
            json!({"perspective_count": 3, "max_attempts": 2}),
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_valid"], false);
    assert_eq!(
        body["actual_orchestration_parameters"],
        json!({"perspective_count": 3, "quorum_count": 2, "attempt_count": 2})
    );
    let previous = body["previous_attempt_results"].as_array().unwrap();
    assert_eq!(previous.len(), 1, "one earlier attempt: {body}");
    let first = perspective_codes(&previous[0]);
    let second = perspective_codes(&body["perspectives"]);
    assert_eq!(first.len(), 3);
    assert_eq!(second.len(), 3);
    assert!(
        first.is_disjoint(&second),
        "cohorts {first:?} and {second:?} overlap"
    );

    let (_, again) = deployment
        .post(&denied(
            "deny.basic.caatestsuite.com",
            json!({"perspective_count": 3, "max_attempts": 2}),
        ))
        .await;
    assert_eq!(
        perspective_codes(&again["perspectives"]),
        second,
        "the same target meets the same cohorts"
    );

    let (_, single) = deployment
        .post(&denied(
            "deny.basic.caatestsuite.com",
            json!({"perspective_count": 3, "cohort_for_single_attempt": 1}),
        ))
        .await;
    assert_eq!(
        single["actual_orchestration_parameters"]["attempt_count"],
        1
    );
    assert_eq!(
        perspective_codes(&single["perspectives"]),
        first,
        "cohort 1"
    );

    let (status, error) = deployment
        .post(&denied(
            "deny.basic.caatestsuite.com",
            json!({"perspective_count": 3, "cohort_for_single_attempt": 3}),
        ))
        .await;
    assert_eq!(status, 500, "only two cohorts of three exist: {error}");
    assert_eq!(keys(&error), BTreeSet::from(["error".to_owned()]));
}

#[tokio::test]
async fn quorum_survives_one_perspective_down() {
    let mut deployment = deploy("").await;
    deployment.stop_worker("eu-west-2").await;
    let request = json!({"check_type": "caa", "domain_or_ip_target": "example.com",
                         "trace_identifier": "one-down"});

    let (status, body) = deployment.post(&request).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_valid"], true, "5 of 6 pass with quorum 4: {body}");
    assert_eq!(
        body["mpic_completed"], true,
        "one not completed is allowed: {body}"
    );
    let perspectives = body["perspectives"].as_array().unwrap();
    assert_eq!(perspectives.len(), 6);
    let down: Vec<&Value> = perspectives
        .iter()
        .filter(|p| p["perspective_code"] == "eu-west-2")
        .collect();
    assert_eq!(down.len(), 1);
    let reply = &down[0]["check_response"];
    assert_eq!(reply["check_completed"], false);
    assert_eq!(reply["check_passed"], false);
    assert_eq!(
        reply["errors"][0]["error_type"],
        "mpic_error:coordinator:remote_check"
    );
    assert!(
        deployment.dns.query_count("example.com.") >= 5,
        "every live perspective resolved on its own"
    );

    deployment.stop_worker("ap-northeast-1").await;
    deployment.stop_worker("us-west-2").await;
    let (_, body) = deployment.post(&request).await;
    assert_eq!(body["is_valid"], false, "3 of 6 miss quorum 4: {body}");
    assert_eq!(
        body["mpic_completed"], false,
        "three not completed exceed the two that quorum 4 of 6 allows: {body}"
    );
}

/// Runs one method of the HTTP family and acme-tls-alpn-01 through the coordinator, NATS and the
/// workers, against challenge servers on loopback. The workers may connect to loopback only
/// because the test allows non-public addresses and moves the challenge ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_and_tls_alpn_methods_through_nats() {
    const KEY_AUTHORIZATION: &str = "token-e2e.account-thumbprint";
    let http = ChallengeServer::start(
        Routes::new()
            .route(
                "/.well-known/acme-challenge/token-e2e",
                Reply::ok(format!("{KEY_AUTHORIZATION}\n")),
            )
            .route(
                "/.well-known/pki-validation/doc.txt",
                Reply::ok("before challenge-e2e after"),
            ),
    )
    .await;
    let certificate = AcmeTlsAlpnCertificate::new(KEY_AUTHORIZATION, &["alpn.e2e.example"])
        .with_common_name("alpn.e2e.example")
        .build();
    let alpn = AlpnServer::start(certificate, AlpnPolicy::NegotiateAcmeTls1).await;
    let worker_settings = format!(
        "allow_non_public_addresses=true\nhttp_port={}\ntls_alpn_port={}\n",
        http.port(),
        alpn.port()
    );
    let deployment = deploy_with("", &worker_settings).await;
    let digest = hex::encode(key_authorization_digest(KEY_AUTHORIZATION));

    struct Case {
        name: &'static str,
        target: &'static str,
        parameters: Value,
        valid: bool,
    }
    let cases = [
        Case {
            name: "acme-http-01 with the key authorization: valid",
            target: "http.e2e.example",
            parameters: json!({"validation_method": "acme-http-01", "token": "token-e2e",
                               "key_authorization": KEY_AUTHORIZATION}),
            valid: true,
        },
        Case {
            name: "acme-http-01 with another key authorization: invalid",
            target: "http.e2e.example",
            parameters: json!({"validation_method": "acme-http-01", "token": "token-e2e",
                               "key_authorization": "token-e2e.other-thumbprint"}),
            valid: false,
        },
        Case {
            name: "website-change containing the value: valid",
            target: "http.e2e.example",
            parameters: json!({"validation_method": "website-change", "http_token_path": "doc.txt",
                               "challenge_value": "challenge-e2e"}),
            valid: true,
        },
        Case {
            name: "acme-tls-alpn-01 with the digest: valid",
            target: "alpn.e2e.example",
            parameters: json!({"validation_method": "acme-tls-alpn-01",
                               "key_authorization_hash": digest}),
            valid: true,
        },
        Case {
            name: "acme-tls-alpn-01 with another digest: invalid",
            target: "alpn.e2e.example",
            parameters: json!({"validation_method": "acme-tls-alpn-01",
                               "key_authorization_hash": "00".repeat(32)}),
            valid: false,
        },
    ];

    for case in cases {
        let request = json!({"check_type": "dcv", "domain_or_ip_target": case.target,
                             "dcv_check_parameters": case.parameters});
        let (status, body) = deployment.post(&request).await;

        assert_eq!(status, 200, "{}: {body}", case.name);
        assert_eq!(body["is_valid"], case.valid, "{}: {body}", case.name);
        assert_eq!(body["mpic_completed"], true, "{}: {body}", case.name);
        let perspectives = body["perspectives"].as_array().unwrap();
        assert_eq!(perspectives.len(), 6, "{}", case.name);
        for perspective in perspectives {
            let reply = &perspective["check_response"];
            assert_eq!(reply["check_completed"], true, "{}: {reply}", case.name);
            assert_eq!(reply["check_passed"], case.valid, "{}: {reply}", case.name);
            let details = &reply["details"];
            assert_eq!(
                details["validation_method"], case.parameters["validation_method"],
                "{}: {reply}",
                case.name
            );
            if case.target.starts_with("http") {
                assert_eq!(
                    details["response_status_code"], 200,
                    "{}: {reply}",
                    case.name
                );
                assert_eq!(
                    details["resolved_ip"], "127.0.0.1",
                    "{}: {reply}",
                    case.name
                );
            } else {
                assert_eq!(
                    details["common_name"], "alpn.e2e.example",
                    "{}: {reply}",
                    case.name
                );
            }
        }
    }
    assert!(
        alpn.client_hellos()
            .iter()
            .all(|hello| hello.server_name.as_deref() == Some("alpn.e2e.example")),
        "every TLS-ALPN handshake named the target in SNI"
    );
}

/// A directory under the system temporary directory, removed on drop.
struct TempDirectory {
    path: PathBuf,
}

impl TempDirectory {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("mpic-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for TempDirectory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
