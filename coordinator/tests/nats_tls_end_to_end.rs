//! The coordinator and the workers over the shipped NATS topology, configured only through
//! their `app.conf` keys. A hub (`nats/hub.conf`, `nats/hub-accounts.conf`) and one leaf node
//! per region (`nats/leaf.conf`) run as real nats-server processes with mutual TLS. The
//! certificates come from a CA generated for the test, clients log in with user and password,
//! and the workers sign their replies.
//!
//! What must hold: the coordinator's `nats_tls_*` and credential keys get it through the
//! hub's mutual TLS, each request travels coordinator → hub → region leaf → worker, and the
//! signed replies come back and verify.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use mpic_coordinator::api::{self, AppState};
use mpic_coordinator::config::{ConfigWarning, CoordinatorConfig};
use mpic_coordinator::transport::Transports;
use mpic_shared::appconf::AppConf;
use mpic_shared::subject::{QUEUE_GROUP, perspective_wildcard};
use mpic_testkit::dns::{TestDns, Zone};
use mpic_testkit::nats::{NatsConfig, NatsServer};
use mpic_testkit::tls::{CertificateUsage, TestCa};
use mpic_worker::config::WorkerConfig;
use mpic_worker::handler::Checker;
use mpic_worker::service::{self, NatsService};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The regions, one per RIR; `nats/hub-accounts.conf` defines an account for each.
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-2", "ap-southeast-1"];

/// The coordinator's password on the hub.
const COORDINATOR_PASSWORD: &str = "coordinator-end-to-end-password";

/// The `worker` user's password on every leaf node.
const WORKER_PASSWORD: &str = "worker-end-to-end-password";

/// The log line nats-server 2.9 writes when a leafnode connection is up.
const LEAF_CONNECTED_LOG: &str = "Leafnode connection created";

/// How long a leaf node may take to connect to the hub.
const LEAF_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How many requests are sent until the regions' subscriptions have reached the hub, which
/// drops requests for subjects without a subscriber. Each takes at most the
/// coordinator's per-perspective timeout of 2 seconds.
const REQUEST_ATTEMPTS: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_crosses_hub_and_leaf_with_tls() {
    let directory = TempDirectory::new();
    let ca = TestCa::new();
    let ca_file = directory.write("ca.pem", ca.cert_pem());
    let dns = TestDns::start([
        Zone::new("example.com.", "@ CAA 0 issue \"ca.example\""),
        Zone::new("com.", ""),
    ])
    .await;
    let hub = start_hub(&ca);
    let public_keys = directory.path.join("reply-keys");
    std::fs::create_dir(&public_keys).unwrap();

    let mut leaves = Vec::new();
    let mut workers = Vec::new();
    for code in REGIONS {
        let leaf = start_leaf(&ca, &hub, code);
        let settings = format!(
            "perspective_code={code}\nnats_url=tls://127.0.0.1:{}\nnats_user=worker\n\
             nats_password={WORKER_PASSWORD}\n{}nameservers={}\n\
             default_caa_domains=ca.example\nreply_signing_key_file={}\n",
            leaf.port(),
            client_tls_settings(&directory, &ca, &ca_file, code),
            dns.addr(),
            write_key_pair(&directory.path, &public_keys, code).display()
        );
        workers.push(start_worker(&settings).await);
        leaves.push(leaf);
    }

    let codes: Vec<String> = REGIONS.iter().map(|code| format!("\"{code}\"")).collect();
    let settings = format!(
        "perspectives=[{}]\ndefault_perspective_count=3\nhash_secret=end-to-end\n\
         nats_url=tls://127.0.0.1:{}\nnats_user=coordinator\n\
         nats_password={COORDINATOR_PASSWORD}\n{}\
         reply_verification_keys_dir={}\nhttp_client_timeout_seconds=2\n\
         absolute_max_attempts=1\nperspective_catalogue={}/../available_perspectives.yaml\n",
        codes.join(","),
        hub.port(),
        client_tls_settings(&directory, &ca, &ca_file, "coordinator"),
        public_keys.display(),
        env!("CARGO_MANIFEST_DIR"),
    );
    let config_path = PathBuf::from(directory.write("coordinator.conf", settings));
    let (config, warnings) = CoordinatorConfig::load(Some(&config_path), |_| None).unwrap();
    assert_eq!(
        warnings,
        [ConfigWarning::FewPerspectives {
            default_perspective_count: 3
        }],
        "TLS to the hub and a key per region leave only the cohort size to warn about"
    );
    assert!(config.nats_tls.requires_tls());
    let base_url = start_coordinator(&config).await;

    let response = post_until_every_region_replies(&base_url).await;

    assert_eq!(response["is_valid"], true, "{response}");
    for perspective in response["perspectives"].as_array().unwrap() {
        let code = &perspective["perspective_code"];
        let reply = &perspective["check_response"];
        assert_eq!(reply["check_passed"], true, "{code}: {response}");
        assert_eq!(
            reply["details"]["found_at"], "example.com",
            "{code}: the worker resolved the target: {response}"
        );
    }
    drop(workers);
}

/// Posts a CAA check until every region passes, and returns the last response.
///
/// # Panics
///
/// Panics with the last response after [`REQUEST_ATTEMPTS`] requests.
async fn post_until_every_region_replies(base_url: &str) -> Value {
    let client = plain_http_client();
    let body = json!({"check_type": "caa", "domain_or_ip_target": "example.com",
                      "caa_check_parameters": {"caa_domains": ["ca.example"]}});
    let mut response = Value::Null;
    for _ in 0..REQUEST_ATTEMPTS {
        let answer = client
            .post(format!("{base_url}/mpic"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        response = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
        let every_region_passed = response["perspectives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|perspective| perspective["check_response"]["check_passed"] == true);
        if every_region_passed {
            return response;
        }
    }
    panic!("not every region passed after {REQUEST_ATTEMPTS} requests: {response}")
}

/// Writes a client certificate for `name` and returns the `nats_tls_*` settings that use it.
fn client_tls_settings(
    directory: &TempDirectory,
    ca: &TestCa,
    ca_file: &str,
    name: &str,
) -> String {
    let certificate = ca.issue_with_usage(&[], CertificateUsage::Client);
    let cert_file = directory.write(&format!("{name}.pem"), certificate.chain_pem());
    let key_file = directory.write(&format!("{name}-tls.key"), certificate.key_pem());
    format!(
        "nats_tls_ca_file={ca_file}\nnats_tls_cert_file={cert_file}\nnats_tls_key_file={key_file}\n"
    )
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

/// Starts a worker's NATS service loop from its settings, connected with its TLS keys; it
/// stops when the returned sender is used or dropped.
async fn start_worker(settings: &str) -> oneshot::Sender<()> {
    let config = WorkerConfig::from_appconf(&AppConf::parse(settings).unwrap()).unwrap();
    let client = service::connect_with_tls(
        config.nats.as_ref().unwrap(),
        &config.nats_tls,
        &config.perspective_code,
    )
    .await
    .unwrap();
    let checker = Checker::new(&config).unwrap();
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

/// Starts the coordinator's API on a free loopback port and returns its base URL.
async fn start_coordinator(config: &CoordinatorConfig) -> String {
    let transports = Transports::connect(config, None).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let app = api::app(AppState::new(config, transports).unwrap());
    tokio::spawn(async move {
        api::serve(listener, app, std::future::pending())
            .await
            .unwrap()
    });
    base_url
}

/// Starts the hub from the shipped files, with every setting in the environment variables
/// the files read.
fn start_hub(ca: &TestCa) -> NatsServer {
    let certificate = ca.issue_with_usage(&["localhost", "127.0.0.1"], CertificateUsage::Server);
    let mut config = NatsConfig::from_file(shipped("hub.conf"))
        .with_file(
            "hub_accounts",
            "hub-accounts.conf",
            std::fs::read_to_string(shipped("hub-accounts.conf")).unwrap(),
        )
        .with_file("ca", "ca.pem", ca.cert_pem())
        .with_file("hub_cert", "hub.pem", certificate.chain_pem())
        .with_file("hub_key", "hub.key", certificate.key_pem())
        .with_env("MPIC_HUB_SERVER_NAME", "hub")
        .with_env("MPIC_HUB_CLIENT_LISTEN", "127.0.0.1:{{port}}")
        .with_env("MPIC_HUB_LEAFNODE_LISTEN", "127.0.0.1:{{leafnode_port}}")
        .with_env("MPIC_HUB_MONITOR_LISTEN", "127.0.0.1:{{monitor_port}}")
        .with_env("MPIC_NATS_TLS_CA_FILE", "{{ca}}")
        .with_env("MPIC_HUB_TLS_CERT_FILE", "{{hub_cert}}")
        .with_env("MPIC_HUB_TLS_KEY_FILE", "{{hub_key}}")
        .with_env("MPIC_COORDINATOR_NATS_PASSWORD", COORDINATOR_PASSWORD);
    for code in REGIONS {
        config = config.with_env(&leaf_password_variable(code), leaf_password(code));
    }
    NatsServer::start_with_config(config)
}

/// Starts `code`'s leaf node from the shipped file and waits until it is connected to the
/// hub.
fn start_leaf(ca: &TestCa, hub: &NatsServer, code: &str) -> NatsServer {
    let certificate = ca.issue_with_usage(
        &["localhost", "127.0.0.1"],
        CertificateUsage::ServerAndClient,
    );
    let hub_url = format!(
        "tls://leaf-{code}:{}@127.0.0.1:{}",
        leaf_password(code),
        hub.named_port("leafnode_port")
    );
    // nats-server parses the variable as a configuration value, so the quotes keep the
    // subject and the queue group together as one string.
    let queue_subscription = format!("\"{} {QUEUE_GROUP}\"", perspective_wildcard("mpic", code));
    let config = NatsConfig::from_file(shipped("leaf.conf"))
        .with_file("ca", "ca.pem", ca.cert_pem())
        .with_file("leaf_cert", "leaf.pem", certificate.chain_pem())
        .with_file("leaf_key", "leaf.key", certificate.key_pem())
        .with_env("MPIC_LEAF_SERVER_NAME", format!("leaf-{code}"))
        .with_env("MPIC_LEAF_CLIENT_LISTEN", "127.0.0.1:{{port}}")
        .with_env("MPIC_LEAF_MONITOR_LISTEN", "127.0.0.1:{{monitor_port}}")
        .with_env("MPIC_NATS_TLS_CA_FILE", "{{ca}}")
        .with_env("MPIC_LEAF_TLS_CERT_FILE", "{{leaf_cert}}")
        .with_env("MPIC_LEAF_TLS_KEY_FILE", "{{leaf_key}}")
        .with_env("MPIC_WORKER_NATS_PASSWORD", WORKER_PASSWORD)
        .with_env("MPIC_WORKER_QUEUE_SUBSCRIPTION", queue_subscription)
        .with_env("MPIC_HUB_LEAFNODE_URL", hub_url);
    let leaf = NatsServer::start_with_config(config);
    leaf.wait_for_log(LEAF_CONNECTED_LOG, LEAF_CONNECT_TIMEOUT);
    leaf
}

fn leaf_password(code: &str) -> String {
    format!("hub-password-of-{code}")
}

/// Returns the variable that `nats/hub-accounts.conf` reads for `code`'s hub password.
fn leaf_password_variable(code: &str) -> String {
    format!(
        "MPIC_LEAF_{}_PASSWORD",
        code.to_ascii_uppercase().replace('-', "_")
    )
}

fn shipped(file_name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../nats")
        .join(file_name)
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

/// A directory under the system temporary directory, removed on drop.
struct TempDirectory {
    path: PathBuf,
}

impl TempDirectory {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("mpic-nats-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    /// Writes `contents` to `name` in the directory and returns the file's path as text.
    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path.join(name);
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }
}

impl Drop for TempDirectory {
    fn drop(&mut self) {
        // A directory left behind in the temporary directory harms nothing.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
