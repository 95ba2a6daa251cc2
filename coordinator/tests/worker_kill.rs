//! Losing a worker under load. Perspective us-east-1 runs two `mpic-worker` processes in its
//! queue group, the other perspectives one each, all signing their replies, behind a real
//! `nats-server`. A DNS authority delays the CAA answers of the targets, so that many checks
//! are in flight when one of the two us-east-1 processes is killed with SIGKILL.
//!
//! What must hold: the killed process loses only the checks it held. Those come back as
//! us-east-1's not-completed perspective (`mpic_error:coordinator:remote_check`, timed out)
//! within the per-perspective timeout, every other check of the same requests succeeds, and
//! the surviving process keeps serving us-east-1.
//!
//! The worker binary comes from the same target directory as this test: `cargo test
//! --workspace` builds it, and `cargo build -p mpic-worker` does so on its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use hickory_proto::rr::RecordType;
use mpic_coordinator::api::{self, AppState};
use mpic_coordinator::config::CoordinatorConfig;
use mpic_coordinator::transport::Transports;
use mpic_testkit::dns::{Behavior, TestDns, Zone};
use mpic_testkit::nats::NatsServer;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The perspective that loses one of its two workers.
const REGION: &str = "us-east-1";

/// The other perspectives, one worker each.
const OTHERS: [&str; 2] = ["eu-west-2", "ap-southeast-1"];

/// The coordinator's per-perspective timeout (`http_client_timeout_seconds`).
const PERSPECTIVE_TIMEOUT: Duration = Duration::from_secs(6);

/// How long the DNS authority delays each target's CAA answer: long enough to kill a worker
/// while every check waits for it, and well inside [`PERSPECTIVE_TIMEOUT`].
const DNS_DELAY: Duration = Duration::from_secs(3);

/// Time a response may take beyond [`PERSPECTIVE_TIMEOUT`], for the coordinator's own work
/// on a loaded machine.
const RESPONSE_MARGIN: Duration = Duration::from_secs(3);

/// Requests in flight when the worker is killed.
const REQUESTS: usize = 24;

/// Requests sent after the kill, to the surviving worker.
const LATER_REQUESTS: usize = 6;

/// The log line a worker writes once it is subscribed.
const SUBSCRIBED_LOG: &str = "subscribed to the perspective's subjects";

/// How long a worker process may take to subscribe.
const WORKER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The error message of a perspective that did not reply in time.
const TIMED_OUT_MESSAGE: &str = "The perspective did not reply in time.";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_loses_only_its_checks() {
    let directory = TempDirectory::new();
    let dns = TestDns::start([
        Zone::new("example.com.", "@ CAA 0 issue \"ca.example\""),
        Zone::new("com.", ""),
    ])
    .await;
    for index in 0..REQUESTS {
        dns.set_behavior(
            &held_target(index),
            Some(RecordType::CAA),
            Behavior::Delay(DNS_DELAY),
        );
    }
    let nats = NatsServer::start();
    let public_keys = directory.path.join("reply-keys");
    std::fs::create_dir(&public_keys).unwrap();

    let binary = worker_binary();
    let mut region_workers = Vec::new();
    for name in ["a", "b"] {
        region_workers.push(WorkerProcess::spawn(
            &binary,
            &directory.path,
            &public_keys,
            REGION,
            name,
            &nats,
            &dns,
        ));
    }
    let mut other_workers = Vec::new();
    for code in OTHERS {
        other_workers.push(WorkerProcess::spawn(
            &binary,
            &directory.path,
            &public_keys,
            code,
            "a",
            &nats,
            &dns,
        ));
    }
    for worker in region_workers.iter_mut().chain(&mut other_workers) {
        worker.wait_until_subscribed();
    }
    let base_url = start_coordinator(&directory.path, &public_keys, &nats).await;
    let client = plain_http_client();

    let started = Instant::now();
    let requests: Vec<_> = (0..REQUESTS)
        .map(|index| {
            let client = client.clone();
            let url = format!("{base_url}/mpic");
            tokio::spawn(async move {
                let response = post_caa(&client, &url, &held_target(index)).await;
                (response, started.elapsed())
            })
        })
        .collect();
    wait_until_every_check_is_held(&dns, started).await;
    region_workers[0].kill();
    assert!(
        started.elapsed() < DNS_DELAY,
        "the worker was killed {:?} after the requests, after the DNS answers were sent; \
         the machine is too slow for this test",
        started.elapsed()
    );

    let mut lost = 0;
    for request in requests {
        let (response, elapsed) = request.await.unwrap();
        let target = response["domain_or_ip_target"].clone();
        assert!(
            elapsed < PERSPECTIVE_TIMEOUT + RESPONSE_MARGIN,
            "{target}: the response took {elapsed:?}"
        );
        assert_eq!(response["is_valid"], true, "{target}: {response}");
        assert_eq!(response["mpic_completed"], true, "{target}: {response}");
        for code in OTHERS {
            assert_eq!(
                check_response(&response, code)["check_passed"],
                true,
                "{target}: {code} in {response}"
            );
        }

        let region = check_response(&response, REGION);
        if region["check_passed"] == true {
            continue;
        }
        lost += 1;
        assert_eq!(region["check_completed"], false, "{target}: {response}");
        assert_eq!(
            region["errors"][0]["error_type"], "mpic_error:coordinator:remote_check",
            "{target}: {response}"
        );
        assert_eq!(
            region["errors"][0]["error_message"], TIMED_OUT_MESSAGE,
            "{target}: a held check is lost, so it times out: {response}"
        );
        assert!(
            elapsed >= PERSPECTIVE_TIMEOUT,
            "{target}: a lost check ended after {elapsed:?}, before the timeout"
        );
    }
    assert!(
        lost > 0,
        "no check of {REGION} was lost, so the killed worker held none"
    );
    assert!(
        lost < REQUESTS,
        "every check of {REGION} was lost, so the surviving worker served none"
    );

    assert!(
        region_workers[1].is_running(),
        "the surviving worker stopped"
    );
    for index in 0..LATER_REQUESTS {
        let target = format!("later-{index}.example.com");
        let response = post_caa(&client, &format!("{base_url}/mpic"), &target).await;
        assert_eq!(
            check_response(&response, REGION)["check_passed"],
            true,
            "{target}: the surviving worker replies: {response}"
        );
        assert_eq!(response["is_valid"], true, "{target}: {response}");
    }
}

/// Returns the target of the `index`-th request held by the DNS delay.
fn held_target(index: usize) -> String {
    format!("held-{index}.example.com")
}

/// Waits until the DNS authority has received the CAA query of every perspective for every
/// held target, so that every check is in flight.
///
/// # Panics
///
/// Panics if that takes longer than [`DNS_DELAY`], because the first answers are then sent.
async fn wait_until_every_check_is_held(dns: &TestDns, started: Instant) {
    let perspectives = 1 + OTHERS.len();
    loop {
        let held = (0..REQUESTS)
            .filter(|index| {
                let name = format!("{}.", held_target(*index));
                dns.query_count_for(&name, RecordType::CAA) >= perspectives
            })
            .count();
        if held == REQUESTS {
            return;
        }
        assert!(
            started.elapsed() < DNS_DELAY,
            "only {held} of {REQUESTS} targets were queried by every perspective after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Posts the CAA check of `target` and returns the response body.
async fn post_caa(client: &reqwest::Client, url: &str, target: &str) -> Value {
    let body = json!({"check_type": "caa", "domain_or_ip_target": target,
                      "caa_check_parameters": {"caa_domains": ["ca.example"]}});
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(PERSPECTIVE_TIMEOUT * 3)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{target}");
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
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

/// Starts the coordinator's API on a free loopback port and returns its base URL.
async fn start_coordinator(directory: &Path, public_keys: &Path, nats: &NatsServer) -> String {
    let codes: Vec<String> = std::iter::once(REGION)
        .chain(OTHERS)
        .map(|code| format!("\"{code}\""))
        .collect();
    let settings = format!(
        "perspectives=[{}]\ndefault_perspective_count=3\nhash_secret=worker-kill\n\
         nats_url={}\nperspective_catalogue={}/../available_perspectives.yaml\n\
         http_client_timeout_seconds={}\nabsolute_max_attempts=1\n\
         reply_verification_keys_dir={}\n",
        codes.join(","),
        nats.url(),
        env!("CARGO_MANIFEST_DIR"),
        PERSPECTIVE_TIMEOUT.as_secs(),
        public_keys.display()
    );
    let path = directory.join("coordinator.conf");
    std::fs::write(&path, settings).unwrap();
    let (config, _) = CoordinatorConfig::load(Some(&path), |_| None).unwrap();

    let transports = Transports::connect(&config, None).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let app = api::app(AppState::new(&config, transports).unwrap());
    tokio::spawn(async move {
        api::serve(listener, app, std::future::pending())
            .await
            .unwrap()
    });
    base_url
}

/// Returns the `mpic-worker` binary next to this test's target directory.
///
/// # Panics
///
/// Panics with the build command if the binary is missing.
fn worker_binary() -> PathBuf {
    let test_binary = std::env::current_exe().unwrap();
    // The test runs as target/<profile>/deps/worker_kill-<hash>.
    let profile_directory = test_binary
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lies in target/<profile>/deps");
    let binary = profile_directory.join("mpic-worker");
    assert!(
        binary.is_file(),
        "{} is missing: run `cargo build -p mpic-worker` (or `cargo test --workspace`) with \
         the same target directory first",
        binary.display()
    );
    binary
}

/// An `mpic-worker` child process, killed and reaped on drop.
struct WorkerProcess {
    child: Child,
    name: String,
    log: PathBuf,
}

impl WorkerProcess {
    /// Writes a configuration and a fresh signing key for perspective `code` (its public key
    /// into `public_keys`, once per code) and starts the worker.
    fn spawn(
        binary: &Path,
        directory: &Path,
        public_keys: &Path,
        code: &str,
        name: &str,
        nats: &NatsServer,
        dns: &TestDns,
    ) -> WorkerProcess {
        let name = format!("{code}-{name}");
        let key_file = directory.join(format!("{code}.key"));
        if !key_file.exists() {
            let key = SigningKey::from_bytes(&rand::random());
            let private_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
            std::fs::write(&key_file, private_pem.as_bytes()).unwrap();
            let public_pem = key
                .verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap();
            std::fs::write(public_keys.join(format!("{code}.pub")), public_pem).unwrap();
        }
        // The DNS timeouts exceed DNS_DELAY, so a held answer is waited for, not retried.
        let settings = format!(
            "perspective_code={code}\nnats_url={}\nnameservers={}\n\
             default_caa_domains=ca.example\nreply_signing_key_file={}\n\
             dns_timeout_seconds=5\ndns_resolution_lifetime_seconds=10\n",
            nats.url(),
            dns.addr(),
            key_file.display()
        );
        let config = directory.join(format!("{name}.conf"));
        std::fs::write(&config, settings).unwrap();

        let log = directory.join(format!("{name}.log"));
        let stdout = std::fs::File::create(&log).unwrap();
        let stderr = stdout.try_clone().unwrap();
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .env_remove("MPIC_WORKER_CONFIG")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
        WorkerProcess { child, name, log }
    }

    /// Waits until the worker logs that it is subscribed.
    ///
    /// # Panics
    ///
    /// Panics with the worker's log if it exits or takes longer than
    /// [`WORKER_START_TIMEOUT`].
    fn wait_until_subscribed(&mut self) {
        let started = Instant::now();
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if log.contains(SUBSCRIBED_LOG) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("worker {} exited with {status}:\n{log}", self.name);
            }
            assert!(
                started.elapsed() < WORKER_START_TIMEOUT,
                "worker {} did not subscribe within {WORKER_START_TIMEOUT:?}:\n{log}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process with SIGKILL, so it finishes nothing, and reaps it.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // The process may have exited already; then there is nothing to kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        let path = std::env::temp_dir().join(format!("mpic-worker-kill-{}", uuid::Uuid::new_v4()));
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
