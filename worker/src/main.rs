//! `mpic-worker`: serves one perspective's CAA and DCV checks over NATS and/or HTTP.
//!
//! Startup: parse the arguments, load and validate the configuration (exiting non-zero with a
//! message naming the key before anything is bound), set up logging, log the effective
//! configuration, then bind the HTTP endpoints and subscribe on NATS as configured. On SIGTERM
//! or SIGINT both stop taking requests, finish the checks in flight and the process exits 0.
//! If one of them fails, the other is shut down the same way and the process exits non-zero.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use mpic_worker::config::{LogFormat, WorkerConfig};
use mpic_worker::fetch::AddressPolicy;
use mpic_worker::handler::Checker;
use mpic_worker::{http_api, service};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

/// Open MPIC perspective worker: runs CAA and DCV checks for one perspective.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Path of the `app.conf` file (`KEY=VALUE` lines). Every key may also be set in the
    /// environment, which wins over the file. Without a file the environment alone is read.
    #[arg(long, value_name = "PATH", env = "MPIC_WORKER_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report_failure(&error);
            ExitCode::FAILURE
        }
    }
}

/// Reports why the worker stopped: in the log once logging is set up, else on standard error,
/// because a configuration error happens before the log format is known.
fn report_failure(error: &anyhow::Error) {
    let message = format!("{error:#}");
    if tracing::dispatcher::has_been_set() {
        error!(error = %message, "mpic-worker stopped with an error");
    } else {
        eprintln!("mpic-worker: {message}");
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let loaded = WorkerConfig::load(args.config.as_deref(), |name| std::env::var(name).ok())
        .context("invalid worker configuration")?;
    let config = loaded.config;
    init_tracing(&config)?;
    log_startup(&config, &loaded.unknown_keys)?;

    let checker = Checker::new(&config).context("failed to set up the checks")?;
    let (shutdown_sender, shutdown) = watch::channel(false);
    let shutdown_sender = Arc::new(shutdown_sender);
    let mut signals = ShutdownSignals::install()?;

    let mut servers: JoinSet<anyhow::Result<()>> = JoinSet::new();
    if let Some(address) = config.http_listen {
        let listener = TcpListener::bind(address).await.with_context(|| {
            format!("failed to bind the HTTP endpoints to {address} (http_listen)")
        })?;
        info!(%address, "serving the HTTP endpoints");
        let router = http_api::router(
            checker.clone(),
            config.effective(),
            config.reply_signing.clone(),
        );
        let stopped = wait_for_shutdown(shutdown.clone());
        servers.spawn(async move {
            http_api::serve(listener, router, stopped)
                .await
                .context("the HTTP endpoints failed")
        });
    }
    if let Some(nats) = &config.nats {
        let client_name = format!("mpic-worker {}", config.perspective_code);
        let client = service::connect_with_tls(nats, &config.nats_tls, &client_name)
            .await
            .context("failed to start the NATS service")?;
        let nats_service = service::NatsService::start(
            client,
            checker.clone(),
            &config.subject_prefix,
            config.reply_signing.clone(),
        )
        .await
        .context("failed to start the NATS service")?;
        let stopped = wait_for_shutdown(shutdown.clone());
        servers.spawn(async move {
            nats_service
                .run(stopped)
                .await
                .context("the NATS service failed")
        });
    }

    let signal_sender = Arc::clone(&shutdown_sender);
    tokio::spawn(async move {
        let name = signals.wait().await;
        info!(
            signal = name,
            "shutting down: finishing the checks in flight"
        );
        signal_sender.send_replace(true);
    });

    let mut outcome = Ok(());
    while let Some(joined) = servers.join_next().await {
        let result = joined
            .context("a server task panicked")
            .and_then(|result| result);
        if let Err(failure) = result {
            // Stop the other server too; the failure is logged once, by main.
            shutdown_sender.send_replace(true);
            if outcome.is_ok() {
                outcome = Err(failure);
            }
        }
    }
    if outcome.is_ok() {
        info!("worker stopped");
    }
    outcome
}

fn init_tracing(config: &WorkerConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid log_level {:?}", config.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    installed
        .map_err(|error| anyhow::anyhow!(error))
        .context("failed to set up logging")
}

fn log_startup(config: &WorkerConfig, unknown_keys: &[String]) -> anyhow::Result<()> {
    let effective = serde_json::to_string(&config.effective())
        .context("failed to encode the effective configuration")?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %effective,
        "starting mpic-worker"
    );
    for key in unknown_keys {
        warn!(key, "ignoring an unknown configuration key");
    }
    for port_override in config.port_overrides() {
        warn!(
            key = port_override.key,
            port = port_override.port,
            standard_port = port_override.standard_port,
            standard = port_override.citation,
            "challenge port overridden; use this only for tests and private deployments"
        );
    }
    for server in config.nats_servers_without_tls() {
        warn!(
            %server,
            "TLS is not required for this NATS server, so messages may cross the network \
             unencrypted: set nats_tls_ca_file or use a tls:// URL"
        );
    }
    if config.nats.is_some() && config.reply_signing.is_none() {
        warn!(
            "reply_signing_key_file is unset: replies are not signed, so the coordinator cannot \
             tell them from replies forged by another holder of NATS credentials"
        );
    }
    if config.address_policy == AddressPolicy::AllowNonPublic {
        warn!(
            "allow_non_public_addresses is set: checks may connect to private and loopback addresses"
        );
    }
    if config.default_caa_domains.is_empty() {
        warn!(
            "default_caa_domains is empty: a CAA check without caa_domains fails wherever an \
             issue property applies"
        );
    }
    Ok(())
}

/// Completes once shutdown has been requested, or when the sender is gone.
async fn wait_for_shutdown(mut shutdown: watch::Receiver<bool>) {
    // An error means the sender was dropped, which only happens when main is returning: that
    // is a shutdown too.
    let _ = shutdown.wait_for(|requested| *requested).await;
}

/// SIGTERM and SIGINT, installed before anything is served so that a failure to install
/// them stops the start.
struct ShutdownSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        Ok(ShutdownSignals {
            terminate: signal(SignalKind::terminate())
                .context("failed to install the SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt())
                .context("failed to install the SIGINT handler")?,
        })
    }

    /// Waits for the first signal and returns its name.
    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}
