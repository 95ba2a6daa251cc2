//! NATS connection security against a real `nats-server` on loopback: TLS with client
//! certificates (mutual TLS) and NKey authentication.
//!
//! Each worker is configured through `KEY=VALUE` text as an `app.conf` file would configure
//! it, so the tests also cover the key names. Certificates come from testkit's `TestCa` and
//! NKeys are generated per test. The checks run on an IP target, whose CAA check needs no DNS.

use std::error::Error;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::{Client, ConnectOptions};
use mpic_shared::appconf::AppConf;
use mpic_shared::reply::CheckResponse;
use mpic_shared::request::CheckType;
use mpic_shared::subject::{PERSPECTIVE_HEADER, check_subject};
use mpic_testkit::nats::{NatsConfig as ServerConfig, NatsServer};
use mpic_testkit::tls::{CertificateUsage, ServerCertificate, TestCa};
use mpic_worker::config::WorkerConfig;
use mpic_worker::handler::Checker;
use mpic_worker::service::{self, NatsService, ServiceError};
use tokio::sync::oneshot;

const PERSPECTIVE: &str = "ap-south-1";

/// How long a test waits for a connection or a reply before it fails.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A server that accepts only TLS clients presenting a certificate from `{{ca}}`.
const MUTUAL_TLS_SERVER: &str = r#"
tls {
  cert_file: "{{server_cert}}"
  key_file: "{{server_key}}"
  ca_file: "{{ca}}"
  verify: true
  timeout: 5
}
"#;

#[tokio::test]
async fn mutual_tls_worker_answers() {
    let ca = TestCa::new();
    let nats = mutual_tls_server(&ca);
    let files = TempDirectory::new("mutual-tls");
    let client_certificate = ca.issue_with_usage(&[], CertificateUsage::Client);
    let settings = format!(
        "nats_url={}\n{}{}",
        nats.url(),
        ca_setting(&files, &ca),
        client_certificate_settings(&files, "worker", &client_certificate)
    );
    let config = worker_config(&settings);

    let coordinator_certificate = ca.issue_with_usage(&[], CertificateUsage::Client);
    let coordinator = ConnectOptions::new()
        .add_root_certificates(files.write("coordinator-ca.pem", &ca.cert_pem()))
        .add_client_certificate(
            files.write("coordinator.pem", coordinator_certificate.chain_pem()),
            files.write("coordinator.key", coordinator_certificate.key_pem()),
        )
        .require_tls(true);
    assert_worker_answers(&config, coordinator, &nats).await;
}

#[tokio::test]
async fn mutual_tls_rejects_bad_peers() {
    let ca = TestCa::new();
    let other_ca = TestCa::new();
    let nats = mutual_tls_server(&ca);
    let files = TempDirectory::new("mutual-tls-rejects");
    let certificate = ca.issue_with_usage(&[], CertificateUsage::Client);
    let foreign_certificate = other_ca.issue_with_usage(&[], CertificateUsage::Client);

    let url = format!("nats_url={}\n", nats.url());
    // (case name, settings, texts the error chain must contain)
    let cases: [(&str, String, &[&str]); 3] = [
        (
            "no client certificate",
            format!("{url}{}", ca_setting(&files, &ca)),
            &["TLS required", "no client certificate", "BadCertificate"],
        ),
        (
            "client certificate from another CA",
            format!(
                "{url}{}{}",
                ca_setting(&files, &ca),
                client_certificate_settings(&files, "foreign", &foreign_certificate)
            ),
            &["client certificate", "foreign.pem", "BadCertificate"],
        ),
        (
            "server certificate from another CA",
            format!(
                "{url}{}{}",
                ca_setting(&files, &other_ca),
                client_certificate_settings(&files, "worker", &certificate)
            ),
            &["server verified with", "invalid peer certificate"],
        ),
    ];
    for (name, settings, expected) in cases {
        let config = worker_config(&settings);
        let message = connect_error(&config).await;
        for text in expected {
            assert!(
                message.contains(text),
                "{name}: error {message:?} does not contain {text:?}"
            );
        }
    }
}

#[tokio::test]
async fn required_tls_refuses_plain_server() {
    let ca = TestCa::new();
    let nats = NatsServer::start();
    let files = TempDirectory::new("plain-server");

    let config = worker_config(&format!(
        "nats_url={}\n{}",
        nats.url(),
        ca_setting(&files, &ca)
    ));
    let message = connect_error(&config).await;

    assert!(
        message.contains("TLS required"),
        "error {message:?} does not say that TLS was required"
    );
}

#[tokio::test]
async fn nkey_worker_answers() {
    let worker_key = nkeys::KeyPair::new_user();
    let coordinator_key = nkeys::KeyPair::new_user();
    let stranger_key = nkeys::KeyPair::new_user();
    let nats = NatsServer::start_with_config(
        ServerConfig::new(
            r#"authorization { users = [ { nkey: "{{worker}}" }, { nkey: "{{coordinator}}" } ] }"#,
        )
        .with_value("worker", worker_key.public_key())
        .with_value("coordinator", coordinator_key.public_key()),
    );
    let files = TempDirectory::new("nkey");
    let seed_setting = |name: &str, key: &nkeys::KeyPair| {
        let seed = key.seed().expect("a generated key has a seed");
        let file = files.write(&format!("{name}.nk"), &format!("{seed}\n"));
        format!(
            "nats_url={}\nnats_nkey_seed_file={}\n",
            nats.url(),
            file.display()
        )
    };

    let config = worker_config(&seed_setting("worker", &worker_key));
    let coordinator =
        ConnectOptions::with_nkey(coordinator_key.seed().expect("a generated key has a seed"));
    assert_worker_answers(&config, coordinator, &nats).await;

    let stranger = worker_config(&seed_setting("stranger", &stranger_key));
    let message = connect_error(&stranger).await;
    for text in ["credentials: nkey_seed", "authorization violation"] {
        assert!(
            message.contains(text),
            "unknown NKey: error {message:?} does not contain {text:?}"
        );
    }
}

/// Starts a worker from `config`, sends it one CAA check through a client connected with
/// `coordinator` and checks the reply, then stops the worker.
async fn assert_worker_answers(
    config: &WorkerConfig,
    coordinator: ConnectOptions,
    nats: &NatsServer,
) {
    let nats_config = config.nats.as_ref().expect("settings set nats_url");
    let client = tokio::time::timeout(
        TIMEOUT,
        service::connect_with_tls(nats_config, &config.nats_tls, "test worker"),
    )
    .await
    .expect("worker connects in time")
    .unwrap_or_else(|error| panic!("worker does not connect: {}", error_chain(&error)));
    let checker = Checker::new(config).expect("checker builds");
    let worker = NatsService::start(client, checker, &config.subject_prefix, None)
        .await
        .expect("worker subscribes");
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async {
        // A dropped sender stops the worker too.
        let _ = stopped.await;
    }));

    let coordinator: Client = tokio::time::timeout(TIMEOUT, coordinator.connect(nats.url()))
        .await
        .expect("coordinator connects in time")
        .expect("coordinator connects");
    let body = serde_json::json!({
        "domain_or_ip_target": "192.0.2.1",
        "caa_check_parameters": {"certificate_type": "tls-server"},
    })
    .to_string();
    let subject = check_subject("mpic", PERSPECTIVE, CheckType::Caa);
    let message = tokio::time::timeout(TIMEOUT, coordinator.request(subject, body.into()))
        .await
        .expect("reply arrives in time")
        .expect("request is answered");
    let reply: CheckResponse =
        serde_json::from_slice(&message.payload).expect("reply is a CheckResponse");
    assert!(reply.check_passed, "check not passed: {reply:?}");
    let perspective = message
        .headers
        .as_ref()
        .and_then(|headers| headers.get(PERSPECTIVE_HEADER))
        .map(|value| value.as_str().to_owned());
    assert_eq!(
        perspective.as_deref(),
        Some(PERSPECTIVE),
        "perspective header"
    );

    shutdown.send(()).expect("worker is still running");
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("worker stops in time")
        .expect("worker task does not panic")
        .expect("worker stops without error");
}

/// Connects with `config`, expecting a connection error, and returns the error with its
/// causes.
async fn connect_error(config: &WorkerConfig) -> String {
    let nats_config = config.nats.as_ref().expect("settings set nats_url");
    let connected = tokio::time::timeout(
        TIMEOUT,
        service::connect_with_tls(nats_config, &config.nats_tls, "test worker"),
    )
    .await
    .expect("connection attempt ends in time");
    let error = match connected {
        Ok(_) => panic!("the worker connected"),
        Err(error) => error,
    };
    assert!(
        matches!(error, ServiceError::Connect { .. }),
        "unexpected error {error}"
    );
    error_chain(&error)
}

fn error_chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Builds a worker configuration from `KEY=VALUE` settings added to the perspective code.
fn worker_config(settings: &str) -> WorkerConfig {
    // The checks run on an IP target and never query this address.
    let text = format!("perspective_code={PERSPECTIVE}\nnameservers=127.0.0.1:9\n{settings}");
    let conf = AppConf::parse(&text).expect("settings are KEY=VALUE");
    WorkerConfig::from_appconf(&conf).unwrap_or_else(|error| panic!("{text}: rejected: {error}"))
}

fn mutual_tls_server(ca: &TestCa) -> NatsServer {
    let certificate = ca.issue(&["127.0.0.1"]);
    NatsServer::start_with_config(
        ServerConfig::new(MUTUAL_TLS_SERVER)
            .with_file("server_cert", "server.pem", certificate.chain_pem())
            .with_file("server_key", "server.key", certificate.key_pem())
            .with_file("ca", "ca.pem", ca.cert_pem()),
    )
}

fn ca_setting(files: &TempDirectory, ca: &TestCa) -> String {
    let file = files.write(&format!("ca-{}.pem", files.next_number()), &ca.cert_pem());
    format!("nats_tls_ca_file={}\n", file.display())
}

fn client_certificate_settings(
    files: &TempDirectory,
    name: &str,
    certificate: &ServerCertificate,
) -> String {
    let cert_file = files.write(&format!("{name}.pem"), certificate.chain_pem());
    let key_file = files.write(&format!("{name}.key"), certificate.key_pem());
    format!(
        "nats_tls_cert_file={}\nnats_tls_key_file={}\n",
        cert_file.display(),
        key_file.display()
    )
}

/// A directory under the system temporary directory, removed on drop.
struct TempDirectory {
    path: PathBuf,
    files: AtomicUsize,
}

impl TempDirectory {
    fn new(name: &str) -> TempDirectory {
        let path = std::env::temp_dir().join(format!("mpic-worker-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temporary directory");
        TempDirectory {
            path,
            files: AtomicUsize::new(0),
        }
    }

    fn write(&self, file_name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(file_name);
        std::fs::write(&path, contents).expect("write temporary file");
        path
    }

    fn next_number(&self) -> usize {
        self.files.fetch_add(1, Ordering::Relaxed)
    }
}

impl Drop for TempDirectory {
    fn drop(&mut self) {
        // A directory left behind holds only test certificates and keys.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
