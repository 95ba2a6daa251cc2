//! Signed replies end to end: a real `nats-server`, the worker crate's NATS service loops
//! signing with Ed25519 keys generated for each test, and the coordinator's REST API verifying
//! them with the public keys in `reply_verification_keys_dir`.
//!
//! What must hold: signed replies corroborate. A reply that is unsigned, signed with another
//! perspective's key, or replayed from an earlier call counts as the perspective's failure,
//! and the audit record names the failure `bad_signature`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_nats::HeaderMap;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use futures::StreamExt;
use mpic_coordinator::api::{self, AppState};
use mpic_coordinator::config::CoordinatorConfig;
use mpic_coordinator::orchestration::audit::AUDIT_TARGET;
use mpic_coordinator::transport::Transports;
use mpic_shared::appconf::AppConf;
use mpic_shared::signing::{REQUEST_ID_HEADER, ReplyVerifier, SIGNATURE_HEADER};
use mpic_shared::subject::QUEUE_GROUP;
use mpic_testkit::dns::{TestDns, Zone};
use mpic_testkit::nats::NatsServer;
use mpic_worker::config::WorkerConfig;
use mpic_worker::handler::Checker;
use mpic_worker::service::{self, NatsService};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// The deployed perspectives, one per RIR, so that any two of them meet the quorum of 2.
const PERSPECTIVES: [&str; 3] = ["us-east-1", "eu-west-2", "ap-southeast-1"];

/// The perspective whose replies each test tampers with.
const TAMPERED: &str = "eu-west-2";

/// The perspective request a coordinator sends for the CAA check of `example.com`.
const CHECK_BODY: &str = r#"{"domain_or_ip_target":"example.com","caa_check_parameters":{"caa_domains":["ca.example"]}}"#;

/// How a perspective's worker signs.
#[derive(Clone, Copy, Debug)]
enum Signer {
    /// With the perspective's own key.
    Own,
    /// With the key of another perspective, as a region replying on behalf of another.
    KeyOf(&'static str),
    /// Not at all.
    Unsigned,
}

/// Key pairs for every perspective, written for the workers and the coordinator.
struct Keys {
    directory: PathBuf,
}

impl Keys {
    fn generate() -> Keys {
        let directory =
            std::env::temp_dir().join(format!("mpic-signatures-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(directory.join("public")).unwrap();
        for code in PERSPECTIVES {
            let key = SigningKey::from_bytes(&rand::random());
            let private_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
            std::fs::write(
                directory.join(format!("{code}.key")),
                private_pem.as_bytes(),
            )
            .unwrap();
            let public_pem = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap();
            std::fs::write(directory.join(format!("public/{code}.pub")), public_pem).unwrap();
        }
        Keys { directory }
    }

    fn private_key(&self, code: &str) -> PathBuf {
        self.directory.join(format!("{code}.key"))
    }

    /// Returns the directory for `reply_verification_keys_dir`.
    fn public_directory(&self) -> PathBuf {
        self.directory.join("public")
    }

    fn verifier(&self, code: &str) -> ReplyVerifier {
        let pem =
            std::fs::read_to_string(self.public_directory().join(format!("{code}.pub"))).unwrap();
        ReplyVerifier::from_pems(code, [pem.as_str()]).unwrap()
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        // A directory left behind in the temporary directory harms nothing.
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// The servers, workers and API of one test. Dropping it stops everything.
struct Deployment {
    dns: TestDns,
    nats: NatsServer,
    keys: Keys,
    /// Sends the shutdown signal to each worker when dropped.
    _workers: Vec<oneshot::Sender<()>>,
    app: Router,
}

/// Starts the DNS authority, `nats-server`, a worker for each entry of `signers` and the
/// coordinator's API in front of them, without a listener.
async fn deploy(signers: &[(&'static str, Signer)]) -> Deployment {
    let dns = TestDns::start([
        Zone::new("example.com.", "@ CAA 0 issue \"ca.example\""),
        Zone::new("com.", ""),
    ])
    .await;
    let nats = NatsServer::start();
    let keys = Keys::generate();

    let mut workers = Vec::new();
    for (code, signer) in signers {
        let key_file = match signer {
            Signer::Own => Some(keys.private_key(code)),
            Signer::KeyOf(other) => Some(keys.private_key(other)),
            Signer::Unsigned => None,
        };
        workers.push(start_worker(code, "mpic", &nats, &dns, key_file.as_deref()).await);
    }

    let codes: Vec<String> = PERSPECTIVES.iter().map(|c| format!("\"{c}\"")).collect();
    let settings = format!(
        "perspectives=[{}]\ndefault_perspective_count=3\nhash_secret=signatures\n\
         nats_url={}\nreply_verification_keys_dir={}\nhttp_client_timeout_seconds=3\n\
         absolute_max_attempts=1\n",
        codes.join(","),
        nats.url(),
        keys.public_directory().display()
    );
    let conf = AppConf::parse(&settings).unwrap();
    let catalogue =
        mpic_shared::catalogue::Catalogue::from_yaml(mpic_coordinator::config::EMBEDDED_CATALOGUE)
            .unwrap();
    let (config, _) =
        CoordinatorConfig::from_app_conf(&conf, catalogue, "embedded".to_owned()).unwrap();
    let transports = Transports::connect(&config, None).await.unwrap();
    let app = api::app(AppState::new(&config, transports).unwrap());

    Deployment {
        dns,
        nats,
        keys,
        _workers: workers,
        app,
    }
}

/// Starts one worker's NATS service loop on `prefix`, signing with `key_file` when given. It
/// drains and stops when the returned sender is used or dropped.
async fn start_worker(
    code: &str,
    prefix: &str,
    nats: &NatsServer,
    dns: &TestDns,
    key_file: Option<&Path>,
) -> oneshot::Sender<()> {
    let mut settings = format!(
        "perspective_code={code}\nsubject_prefix={prefix}\nnats_url={}\nnameservers={}\n",
        nats.url(),
        dns.addr()
    );
    if let Some(key_file) = key_file {
        settings.push_str(&format!("reply_signing_key_file={}\n", key_file.display()));
    }
    let config = WorkerConfig::from_appconf(&AppConf::parse(&settings).unwrap()).unwrap();
    let client = service::connect(config.nats.as_ref().unwrap(), code)
        .await
        .unwrap();
    let checker = Checker::new(&config).unwrap();
    let nats_service = NatsService::start(client, checker, prefix, config.reply_signing.clone())
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

impl Deployment {
    /// Posts the CAA check of `example.com` and returns the response body and the request's
    /// audit record.
    async fn check(&self, trace_identifier: &str) -> (Value, Value) {
        let capture = AuditCapture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let _guard = tracing::subscriber::set_default(subscriber);

        let body = json!({"check_type": "caa", "domain_or_ip_target": "example.com",
                          "trace_identifier": trace_identifier,
                          "caa_check_parameters": {"caa_domains": ["ca.example"]}});
        let request = Request::post("/mpic")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let response: Value = serde_json::from_slice(&bytes).unwrap();

        let records = capture.records();
        assert_eq!(records.len(), 1, "one audit event per request: {records:?}");
        (response, records[0].clone())
    }
}

/// Returns the check response of `code` in a `POST /mpic` response.
fn check_response<'a>(response: &'a Value, code: &str) -> &'a Value {
    response["perspectives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|perspective| perspective["perspective_code"] == code)
        .map(|perspective| &perspective["check_response"])
        .unwrap_or_else(|| panic!("{code} is not in {response}"))
}

/// Returns the audit entry of `code` in the first attempt.
fn audit_entry<'a>(record: &'a Value, code: &str) -> &'a Value {
    record["attempts"][0]["perspectives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["perspective"] == code)
        .unwrap_or_else(|| panic!("{code} is not in {record}"))
}

/// Asserts that [`TAMPERED`] counted as a failed call of kind `bad_signature` while the other
/// perspectives passed.
fn assert_tampered_reply_failed(name: &str, response: &Value, record: &Value) {
    let tampered = check_response(response, TAMPERED);
    assert_eq!(tampered["check_completed"], false, "{name}: {response}");
    assert_eq!(tampered["check_passed"], false, "{name}: {response}");
    assert_eq!(
        tampered["errors"][0]["error_type"], "mpic_error:coordinator:remote_check",
        "{name}: {response}"
    );
    for code in PERSPECTIVES.iter().filter(|code| **code != TAMPERED) {
        assert_eq!(
            check_response(response, code)["check_passed"],
            true,
            "{name}: {code} in {response}"
        );
    }
    assert_eq!(
        response["is_valid"], true,
        "{name}: two signed passes meet the quorum of 2: {response}"
    );

    let entry = audit_entry(record, TAMPERED);
    assert_eq!(
        entry["transport_error"], "bad_signature",
        "{name}: {record}"
    );
    assert_eq!(entry["outcome"], "not_completed", "{name}: {record}");
    assert_eq!(record["attempts"][0]["quorum"], "2/3", "{name}: {record}");
}

#[tokio::test]
async fn signed_replies_corroborate() {
    let deployment = deploy(&[
        ("us-east-1", Signer::Own),
        ("eu-west-2", Signer::Own),
        ("ap-southeast-1", Signer::Own),
    ])
    .await;

    let (response, record) = deployment.check("all-signed").await;

    assert_eq!(response["is_valid"], true, "{response}");
    for code in PERSPECTIVES {
        assert_eq!(
            check_response(&response, code)["check_passed"],
            true,
            "{code}: {response}"
        );
        assert_eq!(audit_entry(&record, code)["transport_error"], Value::Null);
    }
    assert_eq!(record["attempts"][0]["quorum"], "3/3", "{record}");
}

#[tokio::test]
async fn another_perspectives_key_fails() {
    let deployment = deploy(&[
        ("us-east-1", Signer::Own),
        (TAMPERED, Signer::KeyOf("us-east-1")),
        ("ap-southeast-1", Signer::Own),
    ])
    .await;

    let (response, record) = deployment.check("foreign-key").await;

    assert_tampered_reply_failed("us-east-1's key on eu-west-2", &response, &record);
}

#[tokio::test]
async fn unsigned_reply_fails() {
    let deployment = deploy(&[
        ("us-east-1", Signer::Own),
        (TAMPERED, Signer::Unsigned),
        ("ap-southeast-1", Signer::Own),
    ])
    .await;

    let (response, record) = deployment.check("unsigned").await;

    assert_tampered_reply_failed("unsigned", &response, &record);
}

#[tokio::test]
async fn replayed_reply_fails() {
    let deployment = deploy(&[("us-east-1", Signer::Own), ("ap-southeast-1", Signer::Own)]).await;
    let captured = capture_signed_reply(&deployment).await;
    replay_on(&deployment, TAMPERED, captured).await;

    let (response, record) = deployment.check("replayed").await;

    assert_tampered_reply_failed("replayed", &response, &record);
}

/// A reply as it crossed the wire.
#[derive(Clone)]
struct CapturedReply {
    headers: HeaderMap,
    payload: Bytes,
}

/// Runs a genuine, signing worker of [`TAMPERED`] on a subject prefix of its own, sends it
/// one check and returns its signed reply, after checking that the signature is valid for
/// the request identifier it was made for.
async fn capture_signed_reply(deployment: &Deployment) -> CapturedReply {
    let key = deployment.keys.private_key(TAMPERED);
    let stop = start_worker(
        TAMPERED,
        "capture",
        &deployment.nats,
        &deployment.dns,
        Some(&key),
    )
    .await;
    let client = async_nats::connect(deployment.nats.url()).await.unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(REQUEST_ID_HEADER, "captured-request");
    let reply = client
        .request_with_headers(
            format!("capture.{TAMPERED}.caa"),
            headers,
            Bytes::from_static(CHECK_BODY.as_bytes()),
        )
        .await
        .unwrap();
    stop.send(()).unwrap();

    let headers = reply.headers.clone().unwrap();
    let signature = headers.get(SIGNATURE_HEADER).map(|value| value.as_str());
    deployment
        .keys
        .verifier(TAMPERED)
        .verify("captured-request", &reply.payload, signature)
        .expect("the captured reply carries a valid signature for its own request");
    CapturedReply {
        headers,
        payload: reply.payload,
    }
}

/// Replies to every check of `code` with `captured`, headers and all, as an attacker who
/// recorded a genuine reply would.
async fn replay_on(deployment: &Deployment, code: &str, captured: CapturedReply) {
    let client = async_nats::connect(deployment.nats.url()).await.unwrap();
    let mut subscriber = client
        .queue_subscribe(format!("mpic.{code}.caa"), QUEUE_GROUP.to_owned())
        .await
        .unwrap();
    // The subscription must reach the server before the coordinator sends a request.
    client.flush().await.unwrap();
    tokio::spawn(async move {
        while let Some(message) = subscriber.next().await {
            let Some(reply_to) = message.reply else {
                continue;
            };
            client
                .publish_with_headers(reply_to, captured.headers.clone(), captured.payload.clone())
                .await
                .unwrap();
        }
    });
    wait_until_answered(deployment, &format!("mpic.{code}.caa")).await;
}

/// Waits until a request on `subject` from another connection gets a reply. Under a loaded
/// test run a flushed subscription was not always visible to the next request yet.
async fn wait_until_answered(deployment: &Deployment, subject: &str) {
    let probe = async_nats::connect(deployment.nats.url()).await.unwrap();
    for _ in 0..50 {
        let request = async_nats::Request::new()
            .payload(Bytes::from_static(b"{}"))
            .timeout(Some(std::time::Duration::from_secs(1)));
        if probe
            .send_request(subject.to_owned(), request)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nothing answers on {subject}");
}

/// Collects the `record` field of every audit event.
#[derive(Clone, Default)]
struct AuditCapture(Arc<Mutex<Vec<Value>>>);

impl AuditCapture {
    fn records(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }
}

impl<S: tracing::Subscriber> Layer<S> for AuditCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _context: Context<'_, S>) {
        if event.metadata().target() != AUDIT_TARGET {
            return;
        }
        let mut fields = FieldText::default();
        event.record(&mut fields);
        let record = fields
            .0
            .get("record")
            .expect("the audit event has a record");
        let record = serde_json::from_str(record).expect("the audit record is JSON");
        self.0.lock().unwrap().push(record);
    }
}

#[derive(Default)]
struct FieldText(BTreeMap<String, String>);

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}
