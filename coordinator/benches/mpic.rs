//! Load benchmark of the coordinator: `POST /mpic` through the whole stack, on loopback.
//!
//! Run it with `cargo bench -p mpic-coordinator --bench mpic`. Each scenario runs in a child
//! process of its own (this binary with `--scenario NAME`), so that its peak RSS is not
//! inflated by the memory an earlier scenario left with the allocator. A child starts:
//!
//! - a `nats-server` on a free `127.0.0.1` port ([`NatsServer`]);
//! - a DNS authority ([`TestDns`]) whose CAA RRset sits two labels above the target, so a CAA
//!   check of `www.shop.example.com` queries four names in parallel;
//! - six worker service loops, one per perspective, two in each of ARIN, RIPE NCC and APNIC,
//!   each signing its replies with its own Ed25519 key;
//! - two coordinators on their own listeners, both requiring an API key: one calls the workers
//!   over NATS and verifies their signatures, the other runs in-process checkers;
//! - a load generator (reqwest over keep-alive connections) that sends a bounded number of
//!   requests at a fixed concurrency.
//!
//! Every row is bounded in count and in time ([`ROW_TIME_LIMIT`]), and a row cut off by the
//! time limit is marked `(time limit)`. Each child is bounded by [`SCENARIO_TIME_LIMIT`].
//!
//! How the columns are measured:
//! - latency percentiles are nearest-rank over every measured request;
//! - peak RSS is `VmHWM` of the child, reset before each row through `/proc/self/clear_refs`.
//!   It covers the coordinators, the workers, the DNS authority and the load generator, but not
//!   `nats-server`;
//! - CPU times come from `/proc/<pid>/stat` and `/proc/stat` in units of `USER_HZ` (10 ms).
//!   "Other load" is the host's busy time minus this process and `nats-server`, so a row
//!   measured while other programs ran shows it;
//! - UDP drops are the host's `RcvbufErrors` counter from `/proc/net/snmp`, so drops of other
//!   programs count too.
//!
//! Without the `--bench` argument (as under `cargo test --benches`), each scenario sends a few
//! requests only, to show that the bench still works. Its numbers mean nothing.
//!
//! The measured numbers and what they mean are in `docs/benchmarks.md`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use mpic_coordinator::api::{self, AppState};
use mpic_coordinator::config::CoordinatorConfig;
use mpic_coordinator::orchestration::Orchestrator;
use mpic_coordinator::transport::in_process::InProcessPerspective;
use mpic_coordinator::transport::nats::NatsTransport;
use mpic_coordinator::transport::{PerspectiveClient, Transports};
use mpic_shared::appconf::AppConf;
use mpic_shared::catalogue::Catalogue;
use mpic_shared::reply::CheckResponse;
use mpic_shared::request::{CheckType, MpicRequest};
use mpic_shared::response::MpicResponse;
use mpic_shared::signing::{ReplySigner, ReplyVerifier};
use mpic_testkit::dns::{TestDns, Transport, Zone};
use mpic_testkit::nats::NatsServer;
use mpic_worker::config::WorkerConfig;
use mpic_worker::handler::Checker;
use mpic_worker::resolver::{NameServers, ResolverFactory, ResolverSettings};
use mpic_worker::service::{self, NatsService};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let plan = if arguments.iter().any(|argument| argument == "--bench") {
        Plan::measure()
    } else {
        Plan::smoke()
    };
    let scenario = arguments
        .iter()
        .position(|argument| argument == "--scenario")
        .and_then(|index| arguments.get(index + 1));
    match scenario {
        Some(name) => run_scenario(&plan, Scenario::parse(name)?),
        None => run_all(&plan),
    }
}

/// One child process's work.
#[derive(Clone, Copy)]
enum Scenario {
    /// `POST /mpic` CAA, perspectives over NATS.
    CaaOverNats,
    /// `POST /mpic` acme-dns-01, perspectives over NATS.
    Dns01OverNats,
    /// `POST /mpic` CAA, perspectives in process.
    CaaInProcess,
    /// One perspective call through NATS, in process, and the CAA check alone.
    PerspectiveCall,
    /// JSON, orchestration and resolver construction, one at a time.
    CpuSteps,
}

impl Scenario {
    const ALL: [Scenario; 5] = [
        Scenario::CaaOverNats,
        Scenario::Dns01OverNats,
        Scenario::CaaInProcess,
        Scenario::PerspectiveCall,
        Scenario::CpuSteps,
    ];

    fn name(self) -> &'static str {
        match self {
            Scenario::CaaOverNats => "caa-nats",
            Scenario::Dns01OverNats => "dns-01-nats",
            Scenario::CaaInProcess => "caa-in-process",
            Scenario::PerspectiveCall => "perspective-call",
            Scenario::CpuSteps => "cpu-steps",
        }
    }

    fn parse(name: &str) -> anyhow::Result<Scenario> {
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.name() == name)
            .with_context(|| format!("unknown scenario {name:?}"))
    }
}

/// How much work each row does.
struct Plan {
    /// Measured requests or calls per row.
    requests: usize,
    /// Requests or calls sent before a row's measurement starts, so that connections, pools
    /// and allocator arenas exist.
    warm_up: usize,
    /// Concurrency levels of the `POST /mpic` rows.
    concurrency_levels: Vec<usize>,
    /// Concurrency levels of the single-perspective rows.
    call_concurrency_levels: Vec<usize>,
    /// Iterations of each CPU-only row.
    iterations: usize,
    /// Whether the numbers are meant to be read.
    measuring: bool,
}

impl Plan {
    fn measure() -> Self {
        Self {
            requests: 2_000,
            warm_up: 100,
            concurrency_levels: vec![1, 16, 64],
            call_concurrency_levels: vec![1, 16],
            iterations: 20_000,
            measuring: true,
        }
    }

    fn smoke() -> Self {
        Self {
            requests: 5,
            warm_up: 1,
            concurrency_levels: vec![1, 2],
            call_concurrency_levels: vec![1],
            iterations: 5,
            measuring: false,
        }
    }
}

/// Prints the machine and runs every scenario in its own child process, one after another.
fn run_all(plan: &Plan) -> anyhow::Result<()> {
    print_machine(plan);
    let executable = std::env::current_exe().context("failed to find the bench executable")?;
    for scenario in Scenario::ALL {
        let mut command = Command::new(&executable);
        command.args(["--scenario", scenario.name()]);
        if plan.measuring {
            command.arg("--bench");
        }
        let status = wait_bounded(&mut command, SCENARIO_TIME_LIMIT)
            .with_context(|| format!("scenario {}", scenario.name()))?;
        if !status.success() {
            bail!("scenario {} failed: {status}", scenario.name());
        }
    }
    if !plan.measuring {
        println!("Smoke run only: pass --bench (cargo bench) for numbers.");
    }
    Ok(())
}

/// Runs `command` and waits for it, killing it after `limit`.
fn wait_bounded(command: &mut Command, limit: Duration) -> anyhow::Result<ExitStatus> {
    let mut child = command
        .spawn()
        .context("failed to start the child process")?;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(CHILD_POLL_INTERVAL);
    }
    child.kill().context("failed to kill the child process")?;
    child.wait()?;
    bail!("did not finish within {limit:?} and was killed")
}

/// Runs one scenario in this process and prints its table.
fn run_scenario(plan: &Plan, scenario: Scenario) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to build the Tokio runtime")?;
    let result = runtime.block_on(async {
        if !matches!(scenario, Scenario::CpuSteps) {
            install_log_sink()?;
        }
        let stack = Stack::start().await?;
        let result = match scenario {
            Scenario::CaaOverNats => {
                let url = stack.nats_url.clone();
                http_rows(plan, &stack, "CAA over NATS", &url, caa_request()).await
            }
            Scenario::Dns01OverNats => {
                let url = stack.nats_url.clone();
                http_rows(
                    plan,
                    &stack,
                    "acme-dns-01 over NATS",
                    &url,
                    dns_01_request(),
                )
                .await
            }
            Scenario::CaaInProcess => {
                let url = stack.in_process_url.clone();
                http_rows(plan, &stack, "CAA in process", &url, caa_request()).await
            }
            Scenario::PerspectiveCall => call_rows(plan, &stack).await,
            Scenario::CpuSteps => cpu_rows(plan, &stack).await,
        };
        stack.stop().await;
        result
    });
    runtime.shutdown_timeout(SHUTDOWN_TIMEOUT);
    result
}

/// Sends `POST /mpic` rows for one request at each concurrency level.
async fn http_rows(
    plan: &Plan,
    stack: &Stack,
    title: &str,
    base_url: &str,
    request: serde_json::Value,
) -> anyhow::Result<()> {
    let url = format!("{base_url}/mpic");
    let body = Bytes::from(serde_json::to_vec(&request)?);
    let (status, response) = stack.post_once(&url, body.clone()).await?;
    let response: MpicResponse = serde_json::from_slice(&response)
        .with_context(|| format!("{title}: status {status}, body {response:?}"))?;
    if !response.is_valid {
        bail!("{title}: the benchmark request did not pass: {response:?}");
    }

    println!("### POST /mpic: {title}, 6 perspectives\n");
    println!("{TABLE_HEADER}");
    let mut peaks = Vec::new();
    for &concurrency in &plan.concurrency_levels {
        let call = {
            let (client, url, body) = (stack.client.clone(), url.clone(), body.clone());
            move || post_mpic(client.clone(), url.clone(), body.clone())
        };
        let measured = warm_up_and_measure(plan, stack, concurrency, call).await;
        println!("{}", measured.row(title, concurrency));
        peaks.push((concurrency, measured.peak_rss_kib));
    }
    print_rss_per_request(&peaks);
    Ok(())
}

/// Prints how much the peak RSS grew per additional request in flight, from the lowest to the
/// highest concurrency level.
fn print_rss_per_request(peaks: &[(usize, Option<u64>)]) {
    let (Some((low, Some(low_peak))), Some((high, Some(high_peak)))) =
        (peaks.first(), peaks.last())
    else {
        return;
    };
    if high <= low {
        return;
    }
    let growth = high_peak.saturating_sub(*low_peak) as f64 / (high - low) as f64;
    println!(
        "\nPeak RSS grew by {growth:.0} KiB per additional request in flight \
         (concurrency {low} to {high}).\n"
    );
}

/// Sends single perspective calls through NATS and in process, and runs the CAA check alone.
async fn call_rows(plan: &Plan, stack: &Stack) -> anyhow::Result<()> {
    let nats = NatsTransport::from_client(
        async_nats::connect(stack.nats.url())
            .await
            .context("failed to connect the round-trip client to nats-server")?,
        SUBJECT_PREFIX,
        PERSPECTIVE_TIMEOUT,
    );
    let in_process = InProcessPerspective::build(
        ROUND_TRIP_PERSPECTIVE,
        &stack.worker_config,
        PERSPECTIVE_TIMEOUT,
    )?;
    let checker = Checker::new(&WorkerConfig {
        perspective_code: ROUND_TRIP_PERSPECTIVE.to_owned(),
        ..stack.worker_config.clone()
    })?;
    let signing_key = stack.keys.signing_key(ROUND_TRIP_PERSPECTIVE)?;
    let verifier = ReplyVerifier::new(ROUND_TRIP_PERSPECTIVE, vec![signing_key.verifying_key()]);
    let ip_body = Bytes::from(serde_json::to_vec(&caa_check_body(IP_TARGET))?);
    let in_process_body = ip_body.clone();
    let domain_body = Bytes::from(serde_json::to_vec(&caa_check_body(CAA_TARGET))?);

    let nats_call = move || {
        let (nats, body, verifier) = (nats.clone(), ip_body.clone(), verifier.clone());
        async move {
            let reply = nats.call(
                ROUND_TRIP_PERSPECTIVE,
                CheckType::Caa,
                body,
                None,
                Some(&verifier),
            );
            outcome_of(reply.await)
        }
    };
    let in_process_call = move || {
        let (in_process, body) = (in_process.clone(), in_process_body.clone());
        async move {
            let reply = in_process.call(ROUND_TRIP_PERSPECTIVE, CheckType::Caa, body);
            outcome_of(reply.await)
        }
    };
    let check_call = move || {
        let (checker, body) = (checker.clone(), domain_body.clone());
        async move { outcome_of::<()>(Ok(checker.handle(CheckType::Caa, &body).await)) }
    };

    println!("### One perspective call ({ROUND_TRIP_PERSPECTIVE}, CAA)\n");
    println!("{TABLE_HEADER}");
    for &concurrency in &plan.call_concurrency_levels {
        let row = warm_up_and_measure(plan, stack, concurrency, nats_call.clone()).await;
        println!(
            "{}",
            row.row("NATS request-reply, signed, IP target", concurrency)
        );
        let row = warm_up_and_measure(plan, stack, concurrency, in_process_call.clone()).await;
        println!("{}", row.row("in process, IP target", concurrency));
        let row = warm_up_and_measure(plan, stack, concurrency, check_call.clone()).await;
        println!("{}", row.row("CAA check alone, domain target", concurrency));
    }
    println!();
    Ok(())
}

/// Measures the CPU-only steps one at a time: JSON, orchestration with canned replies, and the
/// construction of a resolver.
async fn cpu_rows(plan: &Plan, stack: &Stack) -> anyhow::Result<()> {
    let url = format!("{}/mpic", stack.nats_url);
    let (_, response_body) = stack
        .post_once(&url, Bytes::from(serde_json::to_vec(&caa_request())?))
        .await?;
    let response: MpicResponse =
        serde_json::from_slice(&response_body).context("failed to parse the CAA response")?;
    let reply = &response
        .perspectives
        .first()
        .context("the CAA response has no perspectives")?
        .check_response;
    let reply_body = serde_json::to_vec(reply)?;
    let resolvers = ResolverFactory::new(&ResolverSettings {
        name_servers: NameServers::Configured(vec![stack.dns.addr()]),
        ..ResolverSettings::default()
    })?;

    println!(
        "### CPU-only steps, one at a time ({} bytes of response JSON)\n",
        response_body.len()
    );
    println!("| step | iterations | p50 (µs) | p90 (µs) | p99 (µs) | max (µs) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let parse_response = || serde_json::from_slice::<MpicResponse>(&response_body).is_ok();
    let serialize_response = || serde_json::to_vec(&response).is_ok();
    let parse_reply = || serde_json::from_slice::<CheckResponse>(&reply_body).is_ok();
    let build_resolver = || resolvers.resolver().is_ok();
    let signing_key = stack.keys.signing_key(ROUND_TRIP_PERSPECTIVE)?;
    let signer = ReplySigner::new(ROUND_TRIP_PERSPECTIVE, signing_key.clone());
    let verifier = ReplyVerifier::new(ROUND_TRIP_PERSPECTIVE, vec![signing_key.verifying_key()]);
    let signature = signer.sign(REQUEST_ID, &reply_body)?;
    let sign_reply = || signer.sign(REQUEST_ID, &reply_body).is_ok();
    let verify_reply = || {
        verifier
            .verify(REQUEST_ID, &reply_body, Some(&signature))
            .is_ok()
    };
    let rows: [(&str, &dyn Fn() -> bool); 6] = [
        ("parse MpicResponse (6 perspectives)", &parse_response),
        (
            "serialize MpicResponse (6 perspectives)",
            &serialize_response,
        ),
        ("parse one perspective reply", &parse_reply),
        ("sign one perspective reply (Ed25519)", &sign_reply),
        ("verify one perspective reply (Ed25519)", &verify_reply),
        ("build one cache-free resolver", &build_resolver),
    ];
    for (name, step) in rows {
        println!("{}", micro_row(name, &time_sync(plan.iterations, step)?));
    }

    let orchestrator = &stack.nats_state.orchestrator;
    let request: MpicRequest = serde_json::from_value(caa_request())?;
    let quiet = orchestrate(plan, orchestrator, &request, reply).await?;
    println!(
        "{}",
        micro_row("orchestrate 6 canned replies, no log subscriber", &quiet)
    );
    let _sink = tracing::subscriber::set_default(log_sink());
    let logged = orchestrate(plan, orchestrator, &request, reply).await?;
    println!(
        "{}",
        micro_row("orchestrate 6 canned replies, JSON log subscriber", &logged)
    );
    print_resolver_memory(&resolvers)?;
    println!();
    Ok(())
}

/// Prints how much the RSS grows per resolver while [`HELD_RESOLVERS`] of them exist at once,
/// none of which has sent a query.
fn print_resolver_memory(resolvers: &ResolverFactory) -> anyhow::Result<()> {
    let before = read_status_kib("self", "VmRSS");
    let held = (0..HELD_RESOLVERS)
        .map(|_| resolvers.resolver())
        .collect::<Result<Vec<_>, _>>()?;
    let after = read_status_kib("self", "VmRSS");
    drop(held);
    if let (Some(before), Some(after)) = (before, after) {
        let each = after.saturating_sub(before) as f64 / HELD_RESOLVERS as f64;
        println!("\nRSS growth per resolver, {HELD_RESOLVERS} held at once: {each:.1} KiB.");
    }
    Ok(())
}

/// Times [`Orchestrator::handle`] with calls that return `reply` at once. The calls never
/// yield, so the whole request runs on this thread.
async fn orchestrate(
    plan: &Plan,
    orchestrator: &Orchestrator,
    request: &MpicRequest,
    reply: &CheckResponse,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(plan.iterations);
    let deadline = Instant::now() + ROW_TIME_LIMIT;
    for _ in 0..plan.iterations {
        let started = Instant::now();
        let handled = orchestrator
            .handle(request, |_, _, _| std::future::ready(Ok(reply.clone())))
            .await;
        latencies.push(started.elapsed());
        if handled.is_err() {
            bail!("the orchestrator rejected the benchmark request");
        }
        if Instant::now() > deadline {
            break;
        }
    }
    Ok(latencies)
}

/// Everything a scenario runs against. [`Stack::stop`] shuts the workers down.
struct Stack {
    dns: Arc<TestDns>,
    nats: NatsServer,
    /// Stops the worker service loops when set to true.
    stop_workers: watch::Sender<bool>,
    workers: JoinSet<anyhow::Result<()>>,
    /// The configuration of the in-process checkers, pointed at the DNS authority.
    worker_config: WorkerConfig,
    /// The workers' reply signing keys, with the directory the coordinator reads the public
    /// keys from.
    keys: KeyDirectory,
    nats_url: String,
    in_process_url: String,
    nats_state: AppState,
    client: reqwest::Client,
}

impl Stack {
    async fn start() -> anyhow::Result<Self> {
        let dns = Arc::new(TestDns::start(zones()).await);
        let nats = NatsServer::start();
        let keys = KeyDirectory::create()?;
        let in_process_config = worker_config(&nats, &dns, PERSPECTIVES[0], None)?;

        let (stop_workers, stopped) = watch::channel(false);
        let mut workers = JoinSet::new();
        for code in PERSPECTIVES {
            let key_file = keys.private_key_file(code);
            let config = worker_config(&nats, &dns, code, Some(&key_file))?;
            let service = start_worker(&config).await?;
            let mut stopped = stopped.clone();
            workers.spawn(async move {
                let shutdown = async move {
                    // A closed channel means the stack is gone, which also means stop.
                    let _closed = stopped.wait_for(|stop| *stop).await;
                };
                service
                    .run(shutdown)
                    .await
                    .context("a worker service loop failed")
            });
        }

        let config = coordinator_config(&nats, &keys.public_directory())?;
        let nats_transports = Transports::connect(&config, None).await?;
        let nats_state = AppState::new(&config, nats_transports)?;
        let nats_url = serve(nats_state.clone()).await?;
        let in_process_state = AppState::new(&config, in_process_transports(&in_process_config)?)?;
        let in_process_url = serve(in_process_state).await?;

        Ok(Self {
            dns,
            nats,
            stop_workers,
            workers,
            worker_config: in_process_config,
            keys,
            nats_url,
            in_process_url,
            nats_state,
            client: http_client()?,
        })
    }

    /// Sends one `POST /mpic` and returns the status and body.
    async fn post_once(&self, url: &str, body: Bytes) -> anyhow::Result<(u16, Bytes)> {
        let response = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-api-key", API_KEY)
            .body(body)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?))
    }

    async fn stop(mut self) {
        self.stop_workers.send_replace(true);
        let stopped = async {
            while let Some(joined) = self.workers.join_next().await {
                match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => eprintln!("worker: {error:#}"),
                    Err(error) => eprintln!("worker task: {error}"),
                }
            }
        };
        if tokio::time::timeout(SHUTDOWN_TIMEOUT, stopped)
            .await
            .is_err()
        {
            eprintln!("the workers did not stop within {SHUTDOWN_TIMEOUT:?}");
        }
    }
}

async fn start_worker(config: &WorkerConfig) -> anyhow::Result<NatsService> {
    let nats_config = config
        .nats
        .clone()
        .context("the worker configuration has no NATS settings")?;
    let checker = Checker::new(config)?;
    let client = service::connect(&nats_config, &config.perspective_code).await?;
    let service = NatsService::start(
        client,
        checker,
        &config.subject_prefix,
        config.reply_signing.clone(),
    )
    .await?;
    Ok(service)
}

/// Returns the configuration of perspective `code`'s worker, signing its replies with the key
/// in `signing_key_file` when one is given.
fn worker_config(
    nats: &NatsServer,
    dns: &TestDns,
    code: &str,
    signing_key_file: Option<&Path>,
) -> anyhow::Result<WorkerConfig> {
    let mut settings = format!(
        "perspective_code={code}\nnats_url={}\nnameservers={}\n\
         default_caa_domains={ISSUER_DOMAIN_NAME}\n",
        nats.url(),
        dns.addr()
    );
    if let Some(file) = signing_key_file {
        settings.push_str(&format!("reply_signing_key_file={}\n", file.display()));
    }
    Ok(WorkerConfig::from_appconf(&AppConf::parse(&settings)?)?)
}

fn coordinator_config(nats: &NatsServer, public_keys: &Path) -> anyhow::Result<CoordinatorConfig> {
    let codes: Vec<String> = PERSPECTIVES
        .iter()
        .map(|code| format!("\"{code}\""))
        .collect();
    let settings = format!(
        "perspectives=[{}]\ndefault_perspective_count=6\nhash_secret=bench\nnats_url={}\n\
         reply_verification_keys_dir={}\napi_keys={API_KEY}\n",
        codes.join(","),
        nats.url(),
        public_keys.display(),
    );
    let catalogue_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../available_perspectives.yaml"
    );
    let catalogue_text = std::fs::read_to_string(catalogue_path)
        .with_context(|| format!("failed to read {catalogue_path}"))?;
    let catalogue = Catalogue::from_yaml(&catalogue_text)?;
    let (config, warnings) = CoordinatorConfig::from_app_conf(
        &AppConf::parse(&settings)?,
        catalogue,
        catalogue_path.to_owned(),
    )?;
    if !warnings.is_empty() {
        bail!("the bench configuration has warnings: {warnings:?}");
    }
    Ok(config)
}

fn in_process_transports(base: &WorkerConfig) -> anyhow::Result<Transports> {
    let mut clients = Vec::new();
    for code in PERSPECTIVES {
        let perspective = InProcessPerspective::build(code, base, PERSPECTIVE_TIMEOUT)?;
        clients.push((code.to_owned(), PerspectiveClient::InProcess(perspective)));
    }
    Ok(Transports::from_clients(clients))
}

/// A temporary directory with a reply signing key per perspective: `<code>.key` (PKCS#8) and
/// `public/<code>.pub` (SubjectPublicKeyInfo), removed on drop.
struct KeyDirectory {
    path: PathBuf,
    signing_keys: Vec<(String, SigningKey)>,
}

impl KeyDirectory {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("mpic-bench-{}", uuid::Uuid::new_v4()));
        let directory = Self {
            path,
            signing_keys: Vec::new(),
        };
        std::fs::create_dir_all(directory.public_directory())
            .with_context(|| format!("failed to create {}", directory.path.display()))?;
        let mut directory = directory;
        for code in PERSPECTIVES {
            let key = SigningKey::from_bytes(&rand::random());
            let private_pem = key.to_pkcs8_pem(LineEnding::LF)?;
            std::fs::write(directory.private_key_file(code), private_pem.as_bytes())?;
            let public_pem = key.verifying_key().to_public_key_pem(LineEnding::LF)?;
            let public_file = directory.public_directory().join(format!("{code}.pub"));
            std::fs::write(public_file, public_pem)?;
            directory.signing_keys.push((code.to_owned(), key));
        }
        Ok(directory)
    }

    fn private_key_file(&self, code: &str) -> PathBuf {
        self.path.join(format!("{code}.key"))
    }

    fn public_directory(&self) -> PathBuf {
        self.path.join("public")
    }

    fn signing_key(&self, code: &str) -> anyhow::Result<&SigningKey> {
        self.signing_keys
            .iter()
            .find(|(known, _)| known == code)
            .map(|(_, key)| key)
            .with_context(|| format!("no signing key for {code}"))
    }
}

impl Drop for KeyDirectory {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            eprintln!("failed to remove {}: {error}", self.path.display());
        }
    }
}

/// Serves the API on a free loopback port until the process ends and returns its base URL.
async fn serve(state: AppState) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let app = api::app(state);
    tokio::spawn(async move {
        if let Err(error) = api::serve(listener, app, std::future::pending()).await {
            eprintln!("the API server stopped: {error}");
        }
    });
    Ok(base_url)
}

/// Returns a reqwest client for the plain-HTTP loopback API. reqwest is built without a
/// default crypto provider, so even a client that never uses TLS needs a rustls configuration.
fn http_client() -> anyhow::Result<reqwest::Client> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()?)
}

/// Installs [`log_sink`] for the whole process.
fn install_log_sink() -> anyhow::Result<()> {
    tracing::subscriber::set_global_default(log_sink())
        .context("failed to install the log subscriber")
}

/// Returns a subscriber that formats events at `info` and above as JSON, as a deployment logs
/// them, and writes them nowhere. The audit event of every request is built and formatted, but
/// the cost of writing the log out is left out.
fn log_sink() -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::sink)
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .finish()
}

/// Returns the DNS zones: the relevant CAA RRset at `example.com`, two labels above the CAA
/// target, and the dns-01 TXT record of the same target.
fn zones() -> Vec<Zone> {
    vec![
        Zone::new("com.", ""),
        Zone::new(
            "example.com.",
            &format!(
                "@ CAA 0 issue \"{ISSUER_DOMAIN_NAME}\"\n\
                 @ CAA 0 issuewild \";\"\n\
                 @ CAA 0 iodef \"mailto:security@example.com\"\n\
                 shop A 127.0.0.1\n\
                 _acme-challenge.www.shop TXT \"{KEY_AUTHORIZATION_HASH}\"\n"
            ),
        ),
    ]
}

fn caa_request() -> serde_json::Value {
    json!({
        "check_type": "caa",
        "domain_or_ip_target": CAA_TARGET,
        "trace_identifier": "bench",
        "orchestration_parameters": {"perspective_count": 6},
        "caa_check_parameters": {
            "certificate_type": "tls-server",
            "caa_domains": [ISSUER_DOMAIN_NAME],
        },
    })
}

fn dns_01_request() -> serde_json::Value {
    json!({
        "check_type": "dcv",
        "domain_or_ip_target": CAA_TARGET,
        "trace_identifier": "bench",
        "orchestration_parameters": {"perspective_count": 6},
        "dcv_check_parameters": {
            "validation_method": "acme-dns-01",
            "key_authorization_hash": KEY_AUTHORIZATION_HASH,
        },
    })
}

/// Returns the body of a CAA perspective call.
fn caa_check_body(target: &str) -> serde_json::Value {
    json!({
        "domain_or_ip_target": target,
        "trace_identifier": "bench",
        "caa_check_parameters": {"caa_domains": [ISSUER_DOMAIN_NAME]},
    })
}

/// The outcome of one request or call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A 200 response with `is_valid: true`, or a perspective reply with `check_passed`.
    Passed,
    /// Anything else: an error status, a failed check, a transport error.
    Failed,
}

async fn post_mpic(client: reqwest::Client, url: String, body: Bytes) -> Outcome {
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-api-key", API_KEY)
        .body(body)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await;
    let Ok(response) = sent else {
        return Outcome::Failed;
    };
    if response.status() != reqwest::StatusCode::OK {
        return Outcome::Failed;
    }
    match response.bytes().await {
        // A substring search instead of a parse keeps the load generator's CPU share small.
        // serde_json writes no spaces, so the field reads exactly like this.
        Ok(body) if contains(&body, b"\"is_valid\":true") => Outcome::Passed,
        _ => Outcome::Failed,
    }
}

fn outcome_of<E>(reply: Result<CheckResponse, E>) -> Outcome {
    match reply {
        Ok(reply) if reply.check_passed => Outcome::Passed,
        _ => Outcome::Failed,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The latencies and outcomes of one row.
struct Driven {
    latencies: Vec<Duration>,
    failed: usize,
    elapsed: Duration,
    cut_off: bool,
}

/// Sends `plan.warm_up` calls, then measures `plan.requests` calls.
async fn warm_up_and_measure<F, Fut>(
    plan: &Plan,
    stack: &Stack,
    concurrency: usize,
    call: F,
) -> Measured
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    drive(call.clone(), plan.warm_up, concurrency).await;
    measure(stack, || drive(call, plan.requests, concurrency)).await
}

/// Runs `call` `requests` times with `concurrency` calls in flight, for at most
/// [`ROW_TIME_LIMIT`].
async fn drive<F, Fut>(call: F, requests: usize, concurrency: usize) -> Driven
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + ROW_TIME_LIMIT;
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (call, next) = (call.clone(), next.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0;
            while next.fetch_add(1, Ordering::Relaxed) < requests && Instant::now() < deadline {
                let sent = Instant::now();
                if call().await == Outcome::Failed {
                    failed += 1;
                }
                latencies.push(sent.elapsed());
            }
            (latencies, failed)
        });
    }

    let mut latencies = Vec::with_capacity(requests);
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        // The tasks do not panic: every error becomes an `Outcome`.
        if let Ok((task_latencies, task_failed)) = joined {
            latencies.extend(task_latencies);
            failed += task_failed;
        }
    }
    Driven {
        cut_off: latencies.len() < requests,
        latencies,
        failed,
        elapsed: started.elapsed(),
    }
}

/// A row's numbers: its latencies plus memory, CPU and DNS counts around it.
struct Measured {
    driven: Driven,
    peak_rss_kib: Option<u64>,
    cpu_ms: Option<f64>,
    nats_cpu_ms: Option<f64>,
    /// CPU time that other processes used during the row, in milliseconds.
    other_cpu_ms: Option<f64>,
    dns: DnsCounts,
    udp_drops: Option<u64>,
}

/// Queries the DNS authority received during a row, by transport.
#[derive(Default)]
struct DnsCounts {
    udp: usize,
    tcp: usize,
}

/// Runs one row with the peak RSS reset before it and the CPU times and counters read around
/// it.
async fn measure<Fut>(stack: &Stack, row: impl FnOnce() -> Fut) -> Measured
where
    Fut: Future<Output = Driven>,
{
    let nats_pid = stack.nats.pid().map(|pid| pid.to_string());
    stack.dns.clear_queries();
    reset_peak_rss();
    let cpu_before = read_cpu_ms("self");
    let nats_cpu_before = nats_pid.as_deref().and_then(read_cpu_ms);
    let udp_drops_before = read_udp_receive_buffer_errors();
    let host_cpu_before = read_host_busy_ms();

    let (stop_counting, counting) = watch::channel(false);
    let counter = tokio::spawn(count_and_trim_queries(stack.dns.clone(), counting));
    let driven = row().await;
    stop_counting.send_replace(true);
    // The counter ends once the stop signal is sent. A join error would mean that it panicked,
    // and the row's other numbers stay valid without its counts.
    let dns = counter.await.unwrap_or_default();

    let since = |after: Option<f64>, before: Option<f64>| {
        after.zip(before).map(|(after, before)| after - before)
    };
    let cpu_ms = since(read_cpu_ms("self"), cpu_before);
    let nats_cpu_ms = since(nats_pid.as_deref().and_then(read_cpu_ms), nats_cpu_before);
    let other_cpu_ms = since(read_host_busy_ms(), host_cpu_before)
        .zip(cpu_ms)
        .map(|(host, own)| (host - own - nats_cpu_ms.unwrap_or(0.0)).max(0.0));
    Measured {
        driven,
        peak_rss_kib: read_status_kib("self", "VmHWM"),
        cpu_ms,
        nats_cpu_ms,
        other_cpu_ms,
        dns,
        udp_drops: read_udp_receive_buffer_errors()
            .zip(udp_drops_before)
            .map(|(after, before)| after.saturating_sub(before)),
    }
}

/// Counts the DNS queries logged every [`TRIM_INTERVAL`] and empties the log, so that it does
/// not add to the RSS, until the stop signal is sent or [`ROW_TIME_LIMIT`] has passed. A query
/// logged between the count and the emptying is lost, so the counts are lower bounds.
async fn count_and_trim_queries(dns: Arc<TestDns>, mut stop: watch::Receiver<bool>) -> DnsCounts {
    let mut counts = DnsCounts::default();
    let rounds = ROW_TIME_LIMIT.as_millis() / TRIM_INTERVAL.as_millis() + 1;
    for _ in 0..rounds {
        let stopped = tokio::time::timeout(TRIM_INTERVAL, stop.wait_for(|stop| *stop))
            .await
            .is_ok();
        for query in dns.queries() {
            match query.transport {
                Transport::Udp => counts.udp += 1,
                Transport::Tcp => counts.tcp += 1,
            }
        }
        dns.clear_queries();
        if stopped {
            break;
        }
    }
    counts
}

impl Measured {
    fn row(&self, name: &str, concurrency: usize) -> String {
        let driven = &self.driven;
        let mut latencies = driven.latencies.clone();
        latencies.sort_unstable();
        let completed = latencies.len();
        let per_request = |total: Option<f64>| total.map(|total| total / completed.max(1) as f64);
        let dns_per_request = |count: usize| count as f64 / completed.max(1) as f64;
        let elapsed_ms = driven.elapsed.as_secs_f64() * 1e3;
        let other_cores = self.other_cpu_ms.map(|other| other / elapsed_ms);
        format!(
            "| {name} | {concurrency} | {completed}{} | {} | {:.0} | {} | {} | {} | {} | {} | {} | \
             {} | {:.1} + {:.1} | {} | {} |",
            if driven.cut_off { " (time limit)" } else { "" },
            driven.failed,
            completed as f64 / driven.elapsed.as_secs_f64(),
            millis(percentile(&latencies, 50)),
            millis(percentile(&latencies, 90)),
            millis(percentile(&latencies, 99)),
            millis(latencies.last().copied()),
            optional(per_request(self.cpu_ms), 2),
            optional(per_request(self.nats_cpu_ms), 2),
            optional(other_cores, 2),
            dns_per_request(self.dns.udp),
            dns_per_request(self.dns.tcp),
            self.udp_drops
                .map_or_else(|| "n/a".to_owned(), |drops| drops.to_string()),
            optional(self.peak_rss_kib.map(|kib| kib as f64 / 1024.0), 1),
        )
    }
}

/// Times `step` once per iteration, for at most [`ROW_TIME_LIMIT`]. Fails if a step fails.
fn time_sync(iterations: usize, step: &dyn Fn() -> bool) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(iterations);
    let deadline = Instant::now() + ROW_TIME_LIMIT;
    for _ in 0..iterations {
        let started = Instant::now();
        let succeeded = step();
        latencies.push(started.elapsed());
        if !succeeded {
            bail!("a CPU-only step failed");
        }
        if Instant::now() > deadline {
            break;
        }
    }
    Ok(latencies)
}

fn micro_row(name: &str, latencies: &[Duration]) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let micros = |latency: Option<Duration>| optional(latency.map(|l| l.as_secs_f64() * 1e6), 1);
    format!(
        "| {name} | {} | {} | {} | {} | {} |",
        sorted.len(),
        micros(percentile(&sorted, 50)),
        micros(percentile(&sorted, 90)),
        micros(percentile(&sorted, 99)),
        micros(sorted.last().copied()),
    )
}

/// Returns the nearest-rank percentile of sorted latencies.
fn percentile(sorted: &[Duration], percent: usize) -> Option<Duration> {
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn millis(latency: Option<Duration>) -> String {
    optional(latency.map(|latency| latency.as_secs_f64() * 1e3), 2)
}

fn optional(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "n/a".to_owned(), |value| format!("{value:.decimals$}"))
}

fn print_machine(plan: &Plan) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = read_status_kib_from("/proc/meminfo", "MemTotal").map_or_else(
        || "unknown".to_owned(),
        |kib| format!("{} GiB", kib / (1024 * 1024)),
    );
    println!("mpic bench: {cores} cores ({cpu}), {memory} memory");
    println!(
        "{} requests per row after {} warm-up requests, at most {ROW_TIME_LIMIT:?} per row\n",
        plan.requests, plan.warm_up
    );
}

/// Resets `VmHWM` of this process to its current RSS (Linux 4.0 and later).
fn reset_peak_rss() {
    if let Err(error) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("failed to reset the peak RSS, so it covers earlier rows too: {error}");
    }
}

/// Reads a `kB` field such as `VmHWM` from `/proc/<pid>/status`.
fn read_status_kib(pid: &str, field: &str) -> Option<u64> {
    read_status_kib_from(&format!("/proc/{pid}/status"), field)
}

/// Reads a `Name: value kB` field from a file such as `/proc/meminfo`.
fn read_status_kib_from(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?;
    value.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Reads the user and system CPU time of a process from `/proc/<pid>/stat`, in milliseconds.
fn read_cpu_ms(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces, so count fields after its closing
    // parenthesis: utime and stime are fields 14 and 15 of the whole line.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some((user + system) as f64 * 1000.0 / USER_HZ)
}

/// Reads the CPU time all processors of the host spent busy (not idle, not waiting for I/O)
/// from `/proc/stat`, in milliseconds.
fn read_host_busy_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal. Guest time is already in user and nice,
    // and steal counts as busy because it is time this host could not use.
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some(total.saturating_sub(idle) as f64 * 1000.0 / USER_HZ)
}

/// Reads the host's count of UDP datagrams dropped for a full receive buffer.
fn read_udp_receive_buffer_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp_lines = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (names, values) = (udp_lines.next()?, udp_lines.next()?);
    let index = names
        .split_whitespace()
        .position(|name| name == "RcvbufErrors")?;
    values.split_whitespace().nth(index)?.parse().ok()
}

const TABLE_HEADER: &str = "| scenario | concurrency | requests | failed | requests/s | \
     p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | bench CPU (ms/request) | \
     nats-server CPU (ms/request) | other load (cores) | DNS queries/request (UDP + TCP) | \
     UDP drops | peak RSS (MiB) |\n\
     |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// The deployed perspectives: two per RIR, no two closer than 500 km.
const PERSPECTIVES: [&str; 6] = [
    "us-east-1",
    "us-west-2",
    "eu-west-2",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-1",
];

/// The perspective of the single-perspective rows.
const ROUND_TRIP_PERSPECTIVE: &str = "us-east-1";

/// The target of the CAA and dns-01 requests. Its relevant CAA RRset is at `example.com`, so a
/// check queries `www.shop.example.com`, `shop.example.com`, `example.com` and `com`.
const CAA_TARGET: &str = "www.shop.example.com";

/// An IP target: the CAA check of an IP address sends no DNS query (RFC 8659 covers names
/// only), so a call measures the transport and the worker's JSON handling.
const IP_TARGET: &str = "127.0.0.1";

/// The issuer domain name the CAA RRset permits.
const ISSUER_DOMAIN_NAME: &str = "ca.example";

/// The dns-01 key authorization hash published at `_acme-challenge.www.shop.example.com`.
const KEY_AUTHORIZATION_HASH: &str = "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo";

const SUBJECT_PREFIX: &str = "mpic";

/// The API key the load generator sends (`x-api-key`). The coordinators accept no other.
const API_KEY: &str = "bench-api-key-0123456789abcdef0123456789abcdef0123456789abcdef";

/// A request identifier for the signing rows, in the form the coordinator sends.
const REQUEST_ID: &str = "3f2b8c1e-5d4a-4e7b-9c6f-0a1b2c3d4e5f";

/// Per-perspective timeout of the single-perspective rows: the coordinator's default.
const PERSPECTIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Timeout of one `POST /mpic` from the load generator.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Upper bound of one row's duration, for the warm-up and the measurement each.
const ROW_TIME_LIMIT: Duration = Duration::from_secs(30);

/// Upper bound of one scenario's child process: every row at its time limit, plus startup.
const SCENARIO_TIME_LIMIT: Duration = Duration::from_secs(8 * 60);

/// How often the parent checks whether a scenario's child process has ended.
const CHILD_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How often the DNS query log is counted and emptied during a row.
const TRIM_INTERVAL: Duration = Duration::from_millis(200);

/// How long the workers and the runtime get to stop at the end of a scenario.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How many resolvers exist at once when their memory is measured.
const HELD_RESOLVERS: usize = 1_000;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`), which Linux fixes at 100 in the
/// interfaces it exports to user space.
const USER_HZ: f64 = 100.0;
