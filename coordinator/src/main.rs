//! `mpic-coordinator`: the Open MPIC REST API in front of the deployed perspectives.
//!
//! Startup: parse the arguments, load and validate the configuration (exiting non-zero with a
//! message naming the key, before any port is bound), set up logging, log the effective
//! configuration, connect the transports, then serve `POST /mpic` until SIGTERM or Ctrl-C.
//! Requests in flight finish before the process exits.
//!
//! `--in-process` starts the quick start instead: ten perspectives run inside this process with
//! the system resolver, a random `hash_secret` and the catalogue built into the binary. It needs
//! no configuration file and is not multi-perspective corroboration in the sense of BR §3.2.2.9,
//! because every perspective shares this host's network location.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use mpic_coordinator::api::{self, AppState};
use mpic_coordinator::config::{
    ConfigWarning, CoordinatorConfig, DEFAULT_LISTEN_ADDRESS, LogFormat,
};
use mpic_coordinator::orchestration::HashSecret;
use mpic_coordinator::transport::Transports;
use mpic_coordinator::transport::in_process::quick_start_worker_config;
use mpic_worker::config::WorkerConfig;
use tokio::net::TcpListener;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// Open MPIC coordinator: serves POST /mpic by running the check from a cohort of network
/// perspectives and applying the quorum rules.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Path of the `app.conf` file (`KEY=VALUE` lines). Every key may also be set in the
    /// environment, which wins over the file. Without a file the environment alone is read.
    #[arg(long, value_name = "PATH", env = "MPIC_COORDINATOR_CONFIG")]
    config: Option<PathBuf>,

    /// Run the quick start: perspectives inside this process, no configuration file. For
    /// trying the API only; it is not BR-compliant multi-perspective corroboration.
    #[arg(long, conflicts_with = "config")]
    in_process: bool,

    /// Address and port to listen on, overriding `listen_address` (default 127.0.0.1:8080). A
    /// non-loopback address needs API keys, so the quick start accepts only loopback.
    #[arg(long, value_name = "ADDRESS:PORT")]
    listen: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let startup = load(&args)?;
    init_tracing(&startup.config)?;
    log_startup(&startup);

    let transports = Transports::connect(&startup.config, startup.in_process.as_ref())
        .await
        .context("failed to set up the perspective transports")?;
    let address = startup.config.listen_address;
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to listen on {address} (listen_address)"))?;
    info!(%address, "serving POST /mpic");

    let state =
        AppState::new(&startup.config, transports).context("invalid orchestration settings")?;
    let app = api::app(state);
    api::serve(listener, app, api::shutdown_signal())
        .await
        .context("the REST API failed")?;
    info!("stopped");
    Ok(())
}

/// Everything startup decides before logging is set up.
struct Startup {
    config: CoordinatorConfig,
    warnings: Vec<ConfigWarning>,
    /// The worker configuration the in-process checkers are built from; quick start only.
    in_process: Option<WorkerConfig>,
}

fn load(args: &Args) -> anyhow::Result<Startup> {
    if args.in_process {
        let listen_address = args.listen.unwrap_or(DEFAULT_LISTEN_ADDRESS);
        if !listen_address.ip().is_loopback() {
            anyhow::bail!(
                "--listen {listen_address}: the quick start has no API keys, so it listens only \
                 on loopback addresses; use a configuration file with api_keys_file to serve \
                 other hosts"
            );
        }
        let secret = HashSecret::new(&rand::random::<[u8; 32]>())
            .context("failed to key the cohort selection with a random secret")?;
        let config = CoordinatorConfig::quick_start(listen_address, secret)
            .context("invalid built-in quick-start configuration")?;
        let worker = quick_start_worker_config()
            .context("invalid built-in quick-start worker configuration")?;
        return Ok(Startup {
            config,
            warnings: Vec::new(),
            in_process: Some(worker),
        });
    }

    let path = args.config.as_deref();
    let (mut config, warnings) = CoordinatorConfig::load(path, |name| std::env::var(name).ok())
        .with_context(|| match path {
            Some(path) => format!("invalid coordinator configuration in {}", path.display()),
            None => "invalid coordinator configuration: no --config file or \
                     MPIC_COORDINATOR_CONFIG, so only the environment was read; pass \
                     --in-process for the quick start"
                .to_owned(),
        })?;
    let mut warnings = warnings;
    if let Some(listen) = args.listen {
        let warning = config
            .override_listen_address(listen)
            .context("invalid --listen address")?;
        warnings.extend(warning);
    }
    Ok(Startup {
        config,
        warnings,
        in_process: None,
    })
}

fn init_tracing(config: &CoordinatorConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid log_level {:?}", config.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed
        .map_err(|error| anyhow::anyhow!(error))
        .context("failed to set up logging")
}

fn log_startup(startup: &Startup) {
    info!(
        version = env!("CARGO_PKG_VERSION"),
        "mpic-coordinator starting"
    );
    for warning in &startup.warnings {
        warn!("{warning}");
    }
    if startup.in_process.is_some() {
        warn!(
            "IN-PROCESS QUICK START: every perspective runs inside this process and shares one \
             network location. This is NOT multi-perspective issuance corroboration as the \
             Baseline Requirements (section 3.2.2.9) define it; do not use it to issue \
             certificates."
        );
        warn!(
            "hash_secret was generated at random for this run, so the cohort chosen for a \
             target changes on every restart"
        );
        warn!(
            "no issuer domain names are configured for the in-process perspectives: a CAA \
             check passes only for targets without a relevant CAA RRset unless the request \
             names the CA in caa_check_parameters.caa_domains"
        );
    }
    startup.config.log_effective();
}
