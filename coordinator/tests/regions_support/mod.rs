//! A hub and two region leaf nodes started from the shipped configurations (`nats/hub.conf`,
//! `nats/hub-accounts.conf` and `nats/leaf.conf`), for `tests/nats_regions.rs`.
//!
//! The files run unchanged: every setting reaches nats-server through the environment
//! variables the files document, with loopback ports, and certificates that a [`TestCa`]
//! generates for each test. [`RogueLeaf`] speaks the leafnode protocol to the hub directly,
//! for checks that must hold even when a region's leaf node ignores its own configuration.

mod rogue_leaf;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, Message, ServerError};
use bytes::Bytes;
use mpic_shared::request::CheckType;
use mpic_shared::subject::{QUEUE_GROUP, check_subject, perspective_wildcard};
use mpic_testkit::nats::{NatsConfig, NatsServer};
use mpic_testkit::tls::{CertificateUsage, ServerCertificate, TestCa};
use rustls::ClientConfig;
use tokio::sync::mpsc;

pub use rogue_leaf::RogueLeaf;

/// The region whose workers the tests connect as.
pub const REGION_A: &str = "us-east-1";

/// The other region, whose requests region A must never see.
pub const REGION_B: &str = "eu-west-2";

/// The subject prefix of the shipped configurations.
pub const PREFIX: &str = "mpic";

/// How long one request may wait for its reply before it is sent again. A reply on
/// loopback takes milliseconds; the rest is room for a loaded machine.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times a request is sent while the region's subscriptions reach the hub. The
/// hub drops a request for which no interest has arrived yet, so the first one may
/// time out. 10 sends of 1 second bound the wait at 10 seconds.
const REQUEST_ATTEMPTS: usize = 10;

/// How long a leaf node may take to connect to the hub.
const LEAF_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The log line nats-server 2.9 writes when a leafnode connection is up.
const LEAF_CONNECTED_LOG: &str = "Leafnode connection created";

/// The coordinator's password in the hub configuration.
const COORDINATOR_PASSWORD: &str = "coordinator-test-password";

/// The `worker` user's password on every leaf node.
const WORKER_PASSWORD: &str = "worker-test-password";

/// A hub with the leaf nodes of [`REGION_A`] and [`REGION_B`] connected to it.
pub struct Regions {
    /// The CA that issued every certificate of this deployment.
    pub ca: TestCa,
    /// The hub, from `nats/hub.conf`.
    pub hub: NatsServer,
    /// Region A's leaf node, from `nats/leaf.conf`.
    pub leaf_a: NatsServer,
    /// Region B's leaf node, from `nats/leaf.conf`.
    pub leaf_b: NatsServer,
    /// The certificate both leaf nodes present, to the workers and to the hub.
    leaf_certificate: ServerCertificate,
}

impl Regions {
    /// Starts the hub, then both leaf nodes, and waits until both leaf nodes are connected.
    pub fn start() -> Regions {
        let ca = TestCa::new();
        let hub = start_hub(&ca);
        let leaf_certificate = ca.issue_with_usage(
            &["localhost", "127.0.0.1"],
            CertificateUsage::ServerAndClient,
        );
        let queue_subscription = |code| {
            // nats-server parses the variable as a configuration value, so the quotes keep
            // the subject and the queue group together as one string.
            format!("\"{} {QUEUE_GROUP}\"", perspective_wildcard(PREFIX, code))
        };
        let leaf_a = start_leaf(
            &ca,
            &leaf_certificate,
            &hub,
            REGION_A,
            &queue_subscription(REGION_A),
        );
        let leaf_b = start_leaf(
            &ca,
            &leaf_certificate,
            &hub,
            REGION_B,
            &queue_subscription(REGION_B),
        );
        Regions {
            ca,
            hub,
            leaf_a,
            leaf_b,
            leaf_certificate,
        }
    }

    /// Starts another leaf node of `code` from the shipped `nats/leaf.conf`, with the
    /// region's correct hub credentials but `worker_subscription` as the workers'
    /// subscribe permission: a region that changed its own configuration.
    pub fn start_altered_leaf(&self, code: &str, worker_subscription: &str) -> NatsServer {
        start_leaf(
            &self.ca,
            &self.leaf_certificate,
            &self.hub,
            code,
            worker_subscription,
        )
    }

    /// Connects to the hub as the coordinator does: TLS with a client certificate, as the
    /// `coordinator` user.
    pub async fn coordinator(&self) -> (Client, ServerErrors) {
        self.connect(self.hub.port(), "coordinator", COORDINATOR_PASSWORD)
            .await
    }

    /// Connects to `leaf` as a worker does: TLS with a client certificate, as the `worker`
    /// user.
    pub async fn worker(&self, leaf: &NatsServer) -> (Client, ServerErrors) {
        self.connect(leaf.port(), "worker", WORKER_PASSWORD).await
    }

    /// Opens a leafnode connection to the hub with region `code`'s hub credentials and
    /// leaf certificate, outside any nats-server.
    pub fn rogue_leaf(&self, code: &str) -> RogueLeaf {
        RogueLeaf::connect(
            self.hub.named_port("leafnode_port"),
            &leaf_user(code),
            &leaf_password(code),
            client_tls(&self.ca, &self.leaf_certificate),
        )
    }

    /// Connects to the hub with the coordinator's user and password over `tls`, which
    /// trusts the deployment's CA and presents a client certificate only if `certificate`
    /// is [`ClientCertificate::Issued`].
    pub async fn connect_coordinator_with(
        &self,
        certificate: ClientCertificate,
    ) -> Result<Client, async_nats::ConnectError> {
        let tls = match certificate {
            ClientCertificate::Issued => {
                let issued = self.ca.issue_with_usage(&[], CertificateUsage::Client);
                client_tls(&self.ca, &issued)
            }
            ClientCertificate::Missing => self.ca.client_config(),
        };
        connect_options(tls, "coordinator", COORDINATOR_PASSWORD)
            .connect(tls_url(self.hub.port()))
            .await
    }

    async fn connect(&self, port: u16, user: &str, password: &str) -> (Client, ServerErrors) {
        let certificate = self.ca.issue_with_usage(&[], CertificateUsage::Client);
        let (sender, receiver) = mpsc::unbounded_channel();
        let client = connect_options(client_tls(&self.ca, &certificate), user, password)
            .event_callback(move |event| {
                let sender = sender.clone();
                async move {
                    if let Event::ServerError(error) = event {
                        // The test may have stopped listening; the error is then of no use.
                        let _ = sender.send(error);
                    }
                }
            })
            .connect(tls_url(port))
            .await
            .unwrap_or_else(|error| panic!("cannot connect as {user} to port {port}: {error}"));
        (client, ServerErrors { receiver })
    }
}

/// Whether a client presents a certificate from the deployment's CA.
pub enum ClientCertificate {
    /// A client certificate issued by the deployment's CA.
    Issued,
    /// No client certificate.
    Missing,
}

/// The errors a server sent to one client connection, such as permission violations.
pub struct ServerErrors {
    receiver: mpsc::UnboundedReceiver<ServerError>,
}

impl ServerErrors {
    /// Waits until the server reports an error whose text contains `expected` and returns
    /// that text.
    ///
    /// # Panics
    ///
    /// Panics with the errors seen so far if none matches within 5 seconds.
    pub async fn wait_for(&mut self, expected: &str) -> String {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let next = tokio::time::timeout_at(deadline, self.receiver.recv()).await;
            match next {
                // async-nats hands permission violations over as free text only.
                Ok(Some(error)) if error.to_string().contains(expected) => {
                    return error.to_string();
                }
                Ok(Some(error)) => seen.push(error.to_string()),
                Ok(None) | Err(_) => {
                    panic!("no server error containing {expected:?} within 5 s; seen: {seen:?}")
                }
            }
        }
    }

    /// Returns the errors received so far without waiting.
    pub fn received(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        while let Ok(error) = self.receiver.try_recv() {
            errors.push(error.to_string());
        }
        errors
    }
}

/// Returns the subject of `code`'s CAA checks.
pub fn caa_subject(code: &str) -> String {
    check_subject(PREFIX, code, CheckType::Caa)
}

/// Sends `payload` to `subject` until a reply arrives and returns the reply, so a test
/// can wait until a region's subscription has reached the hub.
///
/// # Panics
///
/// Panics if no reply arrives after [`REQUEST_ATTEMPTS`] sends.
pub async fn request_until_answered(client: &Client, subject: &str, payload: &str) -> Message {
    for _ in 0..REQUEST_ATTEMPTS {
        let request = client.request(subject.to_owned(), Bytes::from(payload.to_owned()));
        if let Ok(Ok(reply)) = tokio::time::timeout(REQUEST_TIMEOUT, request).await {
            return reply;
        }
    }
    panic!("no reply on {subject} after {REQUEST_ATTEMPTS} requests")
}

/// Starts a task that forwards each request payload on `subscriber` to the returned
/// channel and then replies `reply: <payload>`, so a payload is in the channel by the time
/// its reply arrives.
pub fn answer_requests(
    client: Client,
    mut subscriber: async_nats::Subscriber,
) -> mpsc::UnboundedReceiver<String> {
    use futures::StreamExt;

    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = subscriber.next().await {
            let payload = String::from_utf8_lossy(&message.payload).into_owned();
            let answer = Bytes::from(format!("reply: {payload}"));
            if sender.send(payload).is_err() {
                return;
            }
            if let Some(reply) = message.reply
                && let Err(error) = client.publish(reply, answer).await
            {
                panic!("cannot publish a reply: {error}");
            }
        }
    });
    receiver
}

fn start_hub(ca: &TestCa) -> NatsServer {
    let certificate = ca.issue_with_usage(&["localhost", "127.0.0.1"], CertificateUsage::Server);
    let mut config = NatsConfig::from_file(shipped("hub.conf"))
        .with_file(
            "hub_accounts",
            "hub-accounts.conf",
            read_shipped("hub-accounts.conf"),
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
    // hub-accounts.conf names every example region; each needs its password.
    for code in ["us-east-1", "eu-west-2", "ap-southeast-1"] {
        config = config.with_env(&leaf_password_variable(code), leaf_password(code));
    }
    NatsServer::start_with_config(config)
}

fn start_leaf(
    ca: &TestCa,
    certificate: &ServerCertificate,
    hub: &NatsServer,
    code: &str,
    worker_subscription: &str,
) -> NatsServer {
    let hub_url = format!(
        "tls://{}:{}@127.0.0.1:{}",
        leaf_user(code),
        leaf_password(code),
        hub.named_port("leafnode_port")
    );
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
        .with_env("MPIC_WORKER_QUEUE_SUBSCRIPTION", worker_subscription)
        .with_env("MPIC_HUB_LEAFNODE_URL", hub_url);
    let leaf = NatsServer::start_with_config(config);
    leaf.wait_for_log(LEAF_CONNECTED_LOG, LEAF_CONNECT_TIMEOUT);
    leaf
}

fn connect_options(tls: ClientConfig, user: &str, password: &str) -> ConnectOptions {
    ConnectOptions::new()
        .user_and_password(user.to_owned(), password.to_owned())
        .tls_client_config(tls)
        .require_tls(true)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .ignore_discovered_servers()
}

/// Returns a rustls configuration with the ring provider that trusts `ca` and presents
/// `certificate` as the client certificate.
fn client_tls(ca: &TestCa, certificate: &ServerCertificate) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|error| panic!("ring supports no default TLS version: {error}"))
        .with_root_certificates(ca.root_store())
        .with_client_auth_cert(certificate.chain().to_vec(), certificate.key_der())
        .unwrap_or_else(|error| panic!("rustls rejects the client certificate: {error}"))
}

fn tls_url(port: u16) -> String {
    format!("tls://127.0.0.1:{port}")
}

/// Returns the hub user of `code`'s leaf node in `nats/hub-accounts.conf`.
fn leaf_user(code: &str) -> String {
    format!("leaf-{code}")
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

fn read_shipped(file_name: &str) -> String {
    let path = shipped(file_name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}
