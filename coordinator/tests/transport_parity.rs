//! The same perspectives behind both remote transports: each perspective runs the worker
//! crate's NATS service loop and its HTTP endpoints, both signing replies, against one DNS
//! authority. One coordinator reaches them over NATS, another over HTTP, and every request
//! must get the same verdict and the same evidence from each perspective either way.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use hickory_proto::rr::RecordType;
use mpic_coordinator::api::{self, AppState};
use mpic_coordinator::config::{CoordinatorConfig, EMBEDDED_CATALOGUE};
use mpic_coordinator::transport::Transports;
use mpic_shared::appconf::AppConf;
use mpic_shared::catalogue::Catalogue;
use mpic_testkit::dns::{Behavior, TestDns, Zone};
use mpic_testkit::nats::NatsServer;
use mpic_worker::config::WorkerConfig;
use mpic_worker::handler::Checker;
use mpic_worker::http_api;
use mpic_worker::service::{self, NatsService};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

/// The deployed perspectives, one per RIR.
const PERSPECTIVES: [&str; 3] = ["us-east-1", "eu-west-2", "ap-southeast-1"];

/// The key authorization hash published for the acme-dns-01 checks.
const KEY_AUTHORIZATION_HASH: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";

/// The two coordinators and everything behind them. Dropping it stops the workers.
struct Deployment {
    _dns: TestDns,
    _nats: NatsServer,
    _keys: TempDirectory,
    _workers: Vec<oneshot::Sender<()>>,
    over_nats: Router,
    over_http: Router,
}

async fn deploy() -> Deployment {
    let dns = TestDns::start([
        Zone::new(
            "example.com.",
            &format!(
                "permit CAA 0 issue \"ca.example\"\n\
                 deny CAA 0 issue \"other.example\"\n\
                 servfail CAA 0 issue \"ca.example\"\n\
                 _acme-challenge.dns TXT \"{KEY_AUTHORIZATION_HASH}\"\n"
            ),
        ),
        Zone::new("com.", ""),
    ])
    .await;
    dns.set_behavior(
        "servfail.example.com.",
        Some(RecordType::CAA),
        Behavior::ServFail,
    );
    let nats = NatsServer::start();
    let keys = TempDirectory::new();
    let public_keys = keys.path.join("public");
    std::fs::create_dir(&public_keys).unwrap();

    let mut workers = Vec::new();
    let mut http_perspectives = serde_json::Map::new();
    for code in PERSPECTIVES {
        let key_file = write_key_pair(&keys.path, &public_keys, code);
        let settings = format!(
            "perspective_code={code}\nnats_url={}\nnameservers={}\n\
             default_caa_domains=ca.example\nreply_signing_key_file={}\n",
            nats.url(),
            dns.addr(),
            key_file.display()
        );
        let config = WorkerConfig::from_appconf(&AppConf::parse(&settings).unwrap()).unwrap();
        workers.push(start_nats_worker(&config).await);
        let base_url = start_http_worker(&config).await;
        http_perspectives.insert(
            code.to_owned(),
            json!({"caa_endpoint_info": {"url": format!("{base_url}/caa")},
                   "dcv_endpoint_info": {"url": format!("{base_url}/dcv")}}),
        );
    }

    let codes: Vec<String> = PERSPECTIVES.iter().map(|c| format!("\"{c}\"")).collect();
    let common = format!(
        "default_perspective_count=3\nhash_secret=parity\nabsolute_max_attempts=1\n\
         http_client_timeout_seconds=5\nreply_verification_keys_dir={}\n",
        public_keys.display()
    );
    let over_nats = coordinator(&format!(
        "perspectives=[{}]\nnats_url={}\n{common}",
        codes.join(","),
        nats.url()
    ))
    .await;
    let over_http = coordinator(&format!(
        "perspectives={}\n{common}",
        Value::Object(http_perspectives)
    ))
    .await;

    Deployment {
        _dns: dns,
        _nats: nats,
        _keys: keys,
        _workers: workers,
        over_nats,
        over_http,
    }
}

/// Builds a coordinator's API from `settings` and the catalogue built into the binary.
async fn coordinator(settings: &str) -> Router {
    let conf = AppConf::parse(settings).unwrap();
    let catalogue = Catalogue::from_yaml(EMBEDDED_CATALOGUE).unwrap();
    let (config, _) =
        CoordinatorConfig::from_app_conf(&conf, catalogue, "embedded".to_owned()).unwrap();
    let transports = Transports::connect(&config, None).await.unwrap();
    api::app(AppState::new(&config, transports).unwrap())
}

/// Generates `code`'s reply signing key pair; returns the private key's path.
fn write_key_pair(directory: &Path, public_keys: &Path, code: &str) -> PathBuf {
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

/// Starts the perspective's NATS service loop with a checker of its own; it stops when the
/// returned sender is used or dropped.
async fn start_nats_worker(config: &WorkerConfig) -> oneshot::Sender<()> {
    let client = service::connect(config.nats.as_ref().unwrap(), &config.perspective_code)
        .await
        .unwrap();
    let checker = Checker::new(config).unwrap();
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

/// Serves the perspective's HTTP endpoints, with a checker of its own so that no resolver
/// cache is shared with the NATS worker, and returns their base URL.
async fn start_http_worker(config: &WorkerConfig) -> String {
    let checker = Checker::new(config).unwrap();
    let router = http_api::router(checker, config.effective(), config.reply_signing.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        http_api::serve(listener, router, std::future::pending())
            .await
            .unwrap();
    });
    base_url
}

async fn post(app: &Router, body: &Value) -> Value {
    let request = Request::post("/mpic")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Returns a perspective's reply without what differs between two runs of the same check:
/// the timestamp and the free-text error messages.
fn comparable(check_response: &Value) -> Value {
    let mut reply = check_response.clone();
    let object = reply.as_object_mut().unwrap();
    object.remove("timestamp_ns");
    if let Some(errors) = object.get_mut("errors").and_then(Value::as_array_mut) {
        for error in errors {
            error.as_object_mut().unwrap().remove("error_message");
        }
    }
    reply
}

/// One request and the verdict both coordinators must reach.
struct Case {
    name: &'static str,
    request: Value,
    is_valid: bool,
    mpic_completed: bool,
}

fn cases() -> Vec<Case> {
    let caa = |target: &str| {
        json!({"check_type": "caa", "domain_or_ip_target": target,
               "caa_check_parameters": {"caa_domains": ["ca.example"]}})
    };
    let dns_01 = |hash: &str| {
        json!({"check_type": "dcv", "domain_or_ip_target": "dns.example.com",
               "dcv_check_parameters": {"validation_method": "acme-dns-01",
                                        "key_authorization_hash": hash}})
    };
    vec![
        Case {
            name: "CAA permits",
            request: caa("permit.example.com"),
            is_valid: true,
            mpic_completed: true,
        },
        Case {
            name: "CAA denies",
            request: caa("deny.example.com"),
            is_valid: false,
            mpic_completed: true,
        },
        Case {
            name: "CAA lookup fails",
            request: caa("servfail.example.com"),
            is_valid: false,
            mpic_completed: false,
        },
        Case {
            name: "acme-dns-01 passes",
            request: dns_01(KEY_AUTHORIZATION_HASH),
            is_valid: true,
            mpic_completed: true,
        },
        Case {
            name: "acme-dns-01 fails",
            request: dns_01("another-key-authorization-hash-000000000000"),
            is_valid: false,
            mpic_completed: true,
        },
    ]
}

#[tokio::test]
async fn http_and_nats_give_same_verdicts() {
    let deployment = deploy().await;

    for case in cases() {
        let name = case.name;
        let over_nats = post(&deployment.over_nats, &case.request).await;
        let over_http = post(&deployment.over_http, &case.request).await;

        assert_eq!(over_nats["is_valid"], case.is_valid, "{name}: {over_nats}");
        assert_eq!(
            over_nats["mpic_completed"], case.mpic_completed,
            "{name}: {over_nats}"
        );
        for field in [
            "is_valid",
            "mpic_completed",
            "actual_orchestration_parameters",
            "previous_attempt_results",
        ] {
            assert_eq!(
                over_http[field], over_nats[field],
                "{name}: {field} over HTTP {over_http} and over NATS {over_nats}"
            );
        }

        let nats_perspectives = over_nats["perspectives"].as_array().unwrap();
        let http_perspectives = over_http["perspectives"].as_array().unwrap();
        assert_eq!(nats_perspectives.len(), PERSPECTIVES.len(), "{name}");
        assert_eq!(http_perspectives.len(), PERSPECTIVES.len(), "{name}");
        for (from_http, from_nats) in http_perspectives.iter().zip(nats_perspectives) {
            let code = &from_nats["perspective_code"];
            assert_eq!(from_http["perspective_code"], *code, "{name}: cohort order");
            assert_eq!(
                comparable(&from_http["check_response"]),
                comparable(&from_nats["check_response"]),
                "{name} {code}: the perspective's reply differs between HTTP and NATS"
            );
        }
    }
}

/// A directory under the system temporary directory, removed on drop.
struct TempDirectory {
    path: PathBuf,
}

impl TempDirectory {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("mpic-parity-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }
}

impl Drop for TempDirectory {
    fn drop(&mut self) {
        // A directory left behind in the temporary directory harms nothing.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
