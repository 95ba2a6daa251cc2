//! The coordinator's configuration: one typed [`CoordinatorConfig`], loaded from the seed
//! deployment's `app.conf` (`KEY=VALUE` lines, see [`mpic_shared::appconf`]) and the environment,
//! and validated before any port is bound.
//!
//! Keys of the seed deployment keep their meaning, so its files work unchanged:
//!
//! | Key | Unit | Default | Meaning |
//! |---|---|---|---|
//! | `perspectives` | JSON | required | The deployed perspectives (see below). |
//! | `default_perspective_count` | count | required | Cohort size when a request sets none; 2 up to the number of deployed perspectives. |
//! | `hash_secret` | text | required | Secret that seeds the cohort selection; never logged. |
//! | `absolute_max_attempts` | count | no cap | Upper bound on a request's `max_attempts`. |
//! | `http_client_timeout_seconds` | seconds | 5 | Per-perspective call timeout, for every transport. |
//! | `http_client_keepalive_timeout_seconds` | seconds | 15 | How long an idle HTTP connection to a perspective stays in the pool. |
//!
//! Keys this implementation adds:
//!
//! | Key | Unit | Default | Meaning |
//! |---|---|---|---|
//! | `nats_url` | URL list | required with NATS perspectives | NATS server(s), comma-separated (`nats://`, `tls://`). |
//! | `nats_user`, `nats_password` | text | unset | NATS user and password (both or neither). |
//! | `nats_token` | text | unset | NATS authentication token. |
//! | `nats_nkey_seed_file` | path | unset | File holding an NKey user seed (`SU...`). |
//! | `nats_creds_file` (alias `nats_credentials_file`) | path | unset | NATS `.creds` file (user JWT and NKey seed). |
//! | `nats_tls_ca_file` | path | unset: system roots | PEM CA bundle that verifies the NATS server. |
//! | `nats_tls_cert_file`, `nats_tls_key_file` | paths | unset | PEM client certificate and key for mutual TLS (both or neither). |
//! | `reply_signatures` | `required` or `off` | `required` | Whether perspective replies must carry a valid signature. |
//! | `reply_verification_keys_dir` | path | unset | Directory of the perspectives' Ed25519 public keys (`<code>.pub`, `<code>.<suffix>.pub`); required with NATS perspectives unless `reply_signatures=off`. |
//! | `api_keys_file` | path | unset | API keys of the REST API, one per line (`#` comments). |
//! | `api_keys` | text list | unset | API keys, comma-separated, for the environment. |
//! | `allow_unauthenticated_api` | boolean | `false` | Let a coordinator without API keys listen on a non-loopback address, for deployments that authenticate callers in a proxy. |
//! | `subject_prefix` | subject | `mpic` | First tokens of every perspective subject. |
//! | `perspective_catalogue` | path | the built-in catalogue | The catalogue; relative paths start at the configuration file's directory (the working directory without a file). Unset, the repository's `available_perspectives.yaml` as built into the binary is used. |
//! | `listen_address` | address:port | `127.0.0.1:8080` | Where the REST API listens; a non-loopback address needs API keys. |
//! | `request_timeout_seconds` | seconds | see [`CoordinatorConfig::request_timeout`] | Deadline for a whole `POST /mpic` request. |
//! | `log_format` | `text` or `json` | `text` | Log line format. |
//! | `log_level` | filter | `info` | `tracing` filter directives, e.g. `info,mpic_coordinator=debug`. |
//!
//! `perspectives` takes one of two JSON forms. An array of codes (`["us-east-1","eu-west-2"]`)
//! deploys perspectives reached over NATS. An object maps each code to its endpoints, as the
//! seed deployment writes it for the HTTP checkers:
//! `{"us-east-1": {"caa_endpoint_info": {"url": "https://...", "headers": {...}},
//! "dcv_endpoint_info": {...}}}`. An object entry without endpoint information (`{}`) is reached
//! over NATS, so one deployment may mix both.
//!
//! Every key may also come from the environment (`hash_secret` or `HASH_SECRET`), which wins over
//! the file; without a file the environment alone is read. Keys the coordinator does not know are reported as warnings, because existing
//! deployments carry keys of other services.
//!
//! The NATS keys are the worker's, with the same meaning: at most one kind of
//! credentials may be set, and any `nats_tls_*` key makes TLS required. Paths other than
//! `perspective_catalogue` are used as given, relative to the working directory. Every file
//! named by a key is read and checked here, so a missing or malformed file stops the start
//! with an error naming the key.
//!
//! Secure defaults, each with a way out that is logged as a warning at startup:
//! - Reply signatures are required ([`ReplySignatures`], see [`reply_keys`] for generating
//!   and rotating keys). Every NATS perspective needs a public key, or the start fails naming
//!   it. HTTP perspectives are verified when they have a key and are otherwise accepted
//!   unsigned, because the seed deployment's Python checkers cannot sign. In-process
//!   perspectives need no key.
//! - The REST API needs an API key (see [`crate::api::auth`]) whenever it listens on a
//!   non-loopback address, unless `allow_unauthenticated_api=true`.
//!
//! Not handled here: reloading the configuration or the keys while running.

mod api_keys;
mod nats;
pub mod reply_keys;
#[cfg(test)]
mod test_files;

pub use api_keys::MIN_API_KEY_LENGTH;
pub use reply_keys::{ReplySignatures, ReplyVerificationKeys};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use mpic_shared::appconf::{AppConf, AppConfError};
use mpic_shared::catalogue::{Catalogue, CatalogueError, Rir};
use mpic_shared::subject::{
    DEFAULT_SUBJECT_PREFIX, is_valid_subject_prefix, is_valid_subject_token,
};
use mpic_worker::config::{NatsAuth, NatsConfig, NatsTls};

use crate::api::auth::ApiKeys;
use crate::orchestration::{HashSecret, OrchestrationSettings, Orchestrator, SetupError};
use reqwest::Url;
use serde::Deserialize;

/// The validated configuration of a running coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// The perspectives this deployment calls, ordered by code. Never empty, codes unique and in
    /// the catalogue.
    pub perspectives: Vec<DeployedPerspective>,
    /// The perspective catalogue, for RIRs and too-close pairs.
    pub catalogue: Catalogue,
    /// Source of the catalogue (its path), for the startup log.
    pub catalogue_source: String,
    /// Cohort size when a request sets none (`default_perspective_count`). At least 2 and at
    /// most the number of deployed perspectives.
    pub default_perspective_count: usize,
    /// Key of the cohort selection (`hash_secret`). Its `Debug` output is redacted.
    pub hash_secret: HashSecret,
    /// Upper bound on a request's `max_attempts` (`absolute_max_attempts`). With `None` a
    /// request makes at most one attempt per cohort.
    pub absolute_max_attempts: Option<NonZeroU32>,
    /// Timeout of one perspective call, whatever the transport
    /// (`http_client_timeout_seconds`). Default: [`DEFAULT_PERSPECTIVE_TIMEOUT`], 5 seconds.
    pub perspective_timeout: Duration,
    /// Idle time after which a pooled connection to an HTTP perspective is closed
    /// (`http_client_keepalive_timeout_seconds`). Default: [`DEFAULT_HTTP_POOL_IDLE_TIMEOUT`].
    pub http_pool_idle_timeout: Duration,
    /// NATS servers and credentials (`nats_url`, `nats_user`, `nats_password`, `nats_token`,
    /// `nats_nkey_seed_file`, `nats_creds_file`). Set whenever a perspective uses NATS.
    pub nats: Option<NatsConfig>,
    /// TLS settings of the NATS connection (`nats_tls_ca_file`, `nats_tls_cert_file`,
    /// `nats_tls_key_file`). Any of them makes TLS required. Default: none, so TLS is used for
    /// `tls://` URLs or when the server demands it.
    pub nats_tls: NatsTls,
    /// Whether replies must be signed (`reply_signatures`). Default: required.
    pub reply_signatures: ReplySignatures,
    /// The perspectives' public keys (`reply_verification_keys_dir`). Default: none, which
    /// validation accepts only without NATS perspectives or with `reply_signatures=off`.
    pub reply_verification_keys: ReplyVerificationKeys,
    /// The keys callers must present (`api_keys_file` and `api_keys`). Default: none, and the
    /// API is open, which validation accepts only on a loopback `listen_address` or with
    /// `allow_unauthenticated_api`.
    pub api_keys: Option<ApiKeys>,
    /// Whether a coordinator without API keys may listen on a non-loopback address
    /// (`allow_unauthenticated_api`). Default: false.
    pub allow_unauthenticated_api: bool,
    /// Prefix of the perspective subjects (`subject_prefix`). Default: `mpic`.
    pub subject_prefix: String,
    /// Socket address of the REST API (`listen_address`). Default: [`DEFAULT_LISTEN_ADDRESS`].
    /// A non-loopback address needs API keys or `allow_unauthenticated_api`; change it with
    /// [`CoordinatorConfig::override_listen_address`], which checks that again.
    pub listen_address: SocketAddr,
    /// Deadline for one whole `POST /mpic` request (`request_timeout_seconds`). It is always
    /// longer than `perspective_timeout` times the most attempts a request can make:
    /// `absolute_max_attempts`, or without it one per cohort, at most the number of deployed
    /// perspectives divided by two. Default: that product plus [`REQUEST_TIMEOUT_MARGIN`], but
    /// at least [`MIN_DEFAULT_REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// Log line format (`log_format`). Default: text.
    pub log_format: LogFormat,
    /// `tracing` filter directives (`log_level`). Default: `info`.
    pub log_level: String,
}

/// A perspective this deployment calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedPerspective {
    /// The catalogue code, also the NATS subject token.
    pub code: String,
    /// The perspective's RIR, from the catalogue.
    pub rir: Rir,
    /// The transport that reaches it.
    pub endpoint: PerspectiveEndpoint,
}

/// The transport that reaches a perspective.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PerspectiveEndpoint {
    /// NATS request-reply on `<prefix>.<code>.caa` and `<prefix>.<code>.dcv`.
    Nats,
    /// The HTTP endpoints of a checker (the seed deployment's Python checkers or our worker's
    /// HTTP API).
    Http(Box<HttpEndpoints>),
    /// Checkers running inside the coordinator process (quick start only, never from a file).
    InProcess,
}

impl PerspectiveEndpoint {
    /// Returns a short name of the transport, for logs.
    pub fn transport_name(&self) -> &'static str {
        match self {
            PerspectiveEndpoint::Nats => "nats",
            PerspectiveEndpoint::Http(_) => "http",
            PerspectiveEndpoint::InProcess => "in-process",
        }
    }
}

/// The two HTTP endpoints of a perspective.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpoints {
    /// Endpoint of CAA checks (`caa_endpoint_info`).
    pub caa: HttpEndpoint,
    /// Endpoint of DCV checks (`dcv_endpoint_info`).
    pub dcv: HttpEndpoint,
}

/// One HTTP endpoint and the headers sent with every call, such as an API key.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpEndpoint {
    /// The URL posted to; `http` or `https`.
    pub url: Url,
    /// Extra request headers. Their values may be credentials and are never logged.
    pub headers: HeaderMap,
}

impl fmt::Debug for HttpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("HttpEndpoint")
            .field("url", &redacted_url(&self.url))
            .field("header_names", &header_names)
            .finish()
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".to_owned()),
        }
    }
}

/// A rejected configuration. Every message starts with the key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("failed to read the configuration file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed, a required key is missing or a value does not parse.
    #[error(transparent)]
    AppConf(#[from] AppConfError),
    /// The perspective catalogue could not be read.
    #[error("perspective_catalogue: failed to read {path}: {source}")]
    ReadCatalogue {
        /// The catalogue file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The perspective catalogue is invalid (bad YAML, unknown RIR, invalid or repeated code).
    #[error("perspective_catalogue: {source} (in {catalogue})")]
    Catalogue {
        /// The catalogue's file, or the built-in catalogue.
        catalogue: String,
        /// The problem with the catalogue.
        #[source]
        source: CatalogueError,
    },
    /// The orchestration rejected the deployment, for example because no cohort of
    /// `default_perspective_count` perspectives exists. The message starts with the key.
    #[error(transparent)]
    Orchestration(#[from] SetupError),
    /// A value parses but is not acceptable.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key at fault.
        key: &'static str,
        /// The problem and the expected value.
        reason: String,
    },
    /// A file named by a key (certificate, key, credentials, key directory) could not be read.
    #[error("{key}: failed to read {path}: {source}")]
    ReadSettingFile {
        /// The key that names the file.
        key: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The worker crate rejected a NATS credentials or TLS setting, which it reads for both
    /// binaries. The message is the worker's, which starts with the key.
    #[error(transparent)]
    Worker(#[from] mpic_worker::config::ConfigError),
}

/// Something in the configuration that works but deserves an operator's attention.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigWarning {
    /// A key the coordinator does not use.
    UnknownKey {
        /// The key.
        key: String,
    },
    /// An HTTP perspective endpoint without TLS. BR §3.2.2.9 requires an authenticated and
    /// encrypted channel between the CA and each remote perspective.
    PlaintextEndpoint {
        /// The perspective.
        perspective: String,
        /// The endpoint, without credentials.
        url: String,
    },
    /// A NATS server on a non-loopback host reached without required TLS, for the same
    /// reason as [`ConfigWarning::PlaintextEndpoint`].
    NatsWithoutTls {
        /// The server URL, password redacted.
        server: String,
    },
    /// `reply_signatures=off`: any holder of NATS credentials can reply on behalf of any
    /// perspective.
    ReplySignaturesOff,
    /// HTTP perspectives without a public key, whose responses are accepted unsigned.
    UnsignedHttpPerspectives {
        /// The perspective codes.
        perspectives: Vec<String>,
    },
    /// A file in `reply_verification_keys_dir` that was skipped.
    IgnoredKeyFile {
        /// The file.
        path: String,
        /// The reason the file was skipped.
        reason: &'static str,
    },
    /// The REST API listens on a non-loopback address without API keys, because
    /// `allow_unauthenticated_api` is set.
    UnauthenticatedApi {
        /// The listen address.
        listen_address: SocketAddr,
    },
    /// `default_perspective_count` is below the five remote perspectives that BR §3.2.2.9
    /// requires from 2026-12-15.
    FewPerspectives {
        /// The configured default count.
        default_perspective_count: usize,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::UnknownKey { key } => {
                write!(f, "{key}: unknown configuration key, ignored")
            }
            ConfigWarning::PlaintextEndpoint { perspective, url } => write!(
                f,
                "perspectives: {perspective} is called over plain HTTP ({url}); the Baseline \
                 Requirements need an authenticated and encrypted channel, so put TLS in front \
                 of it"
            ),
            ConfigWarning::NatsWithoutTls { server } => write!(
                f,
                "nats_url: TLS is not required for {server}, so checks and replies may cross the \
                 network unencrypted; set nats_tls_ca_file or use a tls:// URL"
            ),
            ConfigWarning::ReplySignaturesOff => f.write_str(
                "reply_signatures: off, so replies are not verified and anyone holding NATS \
                 credentials can reply on behalf of any perspective; use this only for tests",
            ),
            ConfigWarning::UnsignedHttpPerspectives { perspectives } => write!(
                f,
                "reply_verification_keys_dir: no public key for the HTTP perspective(s) {}, so \
                 their responses are accepted unsigned",
                perspectives.join(", ")
            ),
            ConfigWarning::IgnoredKeyFile { path, reason } => {
                write!(f, "reply_verification_keys_dir: ignored {path}: {reason}")
            }
            ConfigWarning::UnauthenticatedApi { listen_address } => write!(
                f,
                "allow_unauthenticated_api: the REST API listens on {listen_address} without API \
                 keys; anyone who reaches it can request validations unless a proxy in front \
                 authenticates callers"
            ),
            ConfigWarning::FewPerspectives {
                default_perspective_count,
            } => write!(
                f,
                "default_perspective_count: {default_perspective_count} is below 5; from \
                 2026-12-15 the Baseline Requirements (section 3.2.2.9) require at least five \
                 remote network perspectives"
            ),
        }
    }
}

/// Every key the coordinator reads. Other keys in the file are reported as unknown.
pub const KNOWN_KEYS: &[&str] = &[
    "perspectives",
    "default_perspective_count",
    "hash_secret",
    "absolute_max_attempts",
    "http_client_timeout_seconds",
    "http_client_keepalive_timeout_seconds",
    "nats_url",
    "nats_user",
    "nats_password",
    "nats_token",
    "nats_nkey_seed_file",
    "nats_creds_file",
    "nats_credentials_file",
    "nats_tls_ca_file",
    "nats_tls_cert_file",
    "nats_tls_key_file",
    "reply_signatures",
    "reply_verification_keys_dir",
    "api_keys_file",
    "api_keys",
    "allow_unauthenticated_api",
    "subject_prefix",
    "perspective_catalogue",
    "listen_address",
    "request_timeout_seconds",
    "log_format",
    "log_level",
];

impl CoordinatorConfig {
    /// Loads the configuration file at `path`, if any, applies the environment through `env`
    /// (normally `|name| std::env::var(name).ok()`), reads the catalogue and validates
    /// everything. Without a file the environment alone must provide the required keys.
    ///
    /// Returns the configuration and the warnings for the caller to log.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        let text = match path {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                        path: path.to_owned(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let conf = AppConf::load(text.as_deref(), KNOWN_KEYS, env)?;
        // Checked before the catalogue is read, so an empty environment reports this key.
        conf.require("perspectives")?;

        let (catalogue, catalogue_source) = match catalogue_path(&conf, path) {
            Some(catalogue_path) => {
                let catalogue_text =
                    std::fs::read_to_string(&catalogue_path).map_err(|source| {
                        ConfigError::ReadCatalogue {
                            path: catalogue_path.clone(),
                            source,
                        }
                    })?;
                let catalogue_source = catalogue_path.display().to_string();
                let catalogue = parse_catalogue(&catalogue_text, &catalogue_source)?;
                (catalogue, catalogue_source)
            }
            None => {
                let catalogue_source = EMBEDDED_CATALOGUE_SOURCE.to_owned();
                let catalogue = parse_catalogue(EMBEDDED_CATALOGUE, &catalogue_source)?;
                (catalogue, catalogue_source)
            }
        };

        Self::from_app_conf(&conf, catalogue, catalogue_source)
    }

    /// Validates settings that are already parsed, against a catalogue that is already loaded.
    pub fn from_app_conf(
        conf: &AppConf,
        catalogue: Catalogue,
        catalogue_source: String,
    ) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        let mut warnings: Vec<ConfigWarning> = conf
            .unknown_keys(KNOWN_KEYS)
            .into_iter()
            .map(|key| ConfigWarning::UnknownKey {
                key: key.to_owned(),
            })
            .collect();

        let perspectives = parse_perspectives(conf.require("perspectives")?, &catalogue)?;
        warnings.extend(plaintext_endpoints(&perspectives));
        let default_perspective_count = default_perspective_count(conf, &perspectives)?;
        if default_perspective_count < BR_MIN_REMOTE_PERSPECTIVES {
            warnings.push(ConfigWarning::FewPerspectives {
                default_perspective_count,
            });
        }
        let hash_secret = hash_secret(conf)?;
        let absolute_max_attempts = absolute_max_attempts(conf)?;
        let perspective_timeout =
            seconds(conf, "http_client_timeout_seconds")?.unwrap_or(DEFAULT_PERSPECTIVE_TIMEOUT);
        let http_pool_idle_timeout = seconds(conf, "http_client_keepalive_timeout_seconds")?
            .unwrap_or(DEFAULT_HTTP_POOL_IDLE_TIMEOUT);
        let uses_nats = perspectives
            .iter()
            .any(|p| p.endpoint == PerspectiveEndpoint::Nats);
        let (nats, nats_tls) = nats::nats_settings(conf, uses_nats)?;
        if let Some(nats) = &nats {
            warnings.extend(nats::unencrypted_servers(nats, &nats_tls));
        }
        let (reply_signatures, reply_verification_keys) =
            reply_verification(conf, &perspectives, &mut warnings)?;
        let subject_prefix = subject_prefix(conf)?;
        let listen_address = conf
            .parse_value("listen_address")?
            .unwrap_or(DEFAULT_LISTEN_ADDRESS);
        let api_keys = api_keys::api_keys(conf)?;
        let allow_unauthenticated_api = conf
            .parse_bool("allow_unauthenticated_api")?
            .unwrap_or(false);
        warnings.extend(api_keys::check_api_exposure(
            listen_address,
            api_keys.as_ref(),
            allow_unauthenticated_api,
        )?);
        let request_timeout = request_timeout(
            seconds(conf, "request_timeout_seconds")?,
            perspective_timeout,
            max_attempts(absolute_max_attempts, perspectives.len()),
        )?;
        let log_format = conf.parse_value("log_format")?.unwrap_or_default();
        let log_level = log_level(conf)?;

        let config = Self {
            perspectives,
            catalogue,
            catalogue_source,
            default_perspective_count,
            hash_secret,
            absolute_max_attempts,
            perspective_timeout,
            http_pool_idle_timeout,
            nats,
            nats_tls,
            reply_signatures,
            reply_verification_keys,
            api_keys,
            allow_unauthenticated_api,
            subject_prefix,
            listen_address,
            request_timeout,
            log_format,
            log_level,
        };
        config.check_orchestration()?;
        Ok((config, warnings))
    }

    /// Replaces the listen address (the `--listen` argument) and checks again that an API
    /// without keys stays on loopback. Returns the warning when `allow_unauthenticated_api`
    /// opens it.
    pub fn override_listen_address(
        &mut self,
        listen_address: SocketAddr,
    ) -> Result<Option<ConfigWarning>, ConfigError> {
        let warning = api_keys::check_api_exposure(
            listen_address,
            self.api_keys.as_ref(),
            self.allow_unauthenticated_api,
        )?;
        self.listen_address = listen_address;
        Ok(warning)
    }

    /// Builds the quick-start configuration: every perspective of [`QUICK_START_PERSPECTIVES`]
    /// runs in process, against the catalogue compiled into the binary. Nothing is read from
    /// files or the environment.
    ///
    /// In-process perspectives all share the host's network location, so this is a way to try
    /// the API, not multi-perspective corroboration in the sense of BR §3.2.2.9. The quick
    /// start has no API keys, so `listen_address` must be a loopback address.
    pub fn quick_start(
        listen_address: SocketAddr,
        hash_secret: HashSecret,
    ) -> Result<Self, ConfigError> {
        api_keys::check_api_exposure(listen_address, None, false)?;
        let catalogue_source = EMBEDDED_CATALOGUE_SOURCE.to_owned();
        let catalogue = parse_catalogue(EMBEDDED_CATALOGUE, &catalogue_source)?;
        let perspectives = QUICK_START_PERSPECTIVES
            .iter()
            .map(|code| deployed(code, PerspectiveEndpoint::InProcess, &catalogue))
            .collect::<Result<Vec<_>, _>>()?;
        let request_timeout = request_timeout(
            None,
            DEFAULT_PERSPECTIVE_TIMEOUT,
            max_attempts(None, perspectives.len()),
        )?;

        let config = Self {
            perspectives,
            catalogue,
            catalogue_source,
            default_perspective_count: QUICK_START_PERSPECTIVE_COUNT,
            hash_secret,
            absolute_max_attempts: None,
            perspective_timeout: DEFAULT_PERSPECTIVE_TIMEOUT,
            http_pool_idle_timeout: DEFAULT_HTTP_POOL_IDLE_TIMEOUT,
            nats: None,
            nats_tls: NatsTls::default(),
            // In-process perspectives are never verified, so the setting has no effect.
            reply_signatures: ReplySignatures::Required,
            reply_verification_keys: ReplyVerificationKeys::default(),
            api_keys: None,
            allow_unauthenticated_api: false,
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
            listen_address,
            request_timeout,
            log_format: LogFormat::Text,
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
        };
        config.check_orchestration()?;
        Ok(config)
    }

    /// Returns the settings the [`Orchestrator`] is built from.
    pub fn orchestration_settings(&self) -> OrchestrationSettings {
        OrchestrationSettings {
            perspectives: self.perspectives.iter().map(|p| p.code.clone()).collect(),
            default_perspective_count: self.default_perspective_count,
            absolute_max_attempts: self.absolute_max_attempts,
            hash_secret: self.hash_secret.clone(),
        }
    }

    /// Builds the orchestrator once, so that a default perspective count for which no cohort
    /// exists (too-close pairs, a single RIR) fails at startup and not on the first request.
    fn check_orchestration(&self) -> Result<(), ConfigError> {
        Orchestrator::new(self.orchestration_settings(), &self.catalogue)?;
        Ok(())
    }

    /// Reports whether any perspective is reached over NATS.
    pub fn uses_nats(&self) -> bool {
        self.perspectives
            .iter()
            .any(|perspective| perspective.endpoint == PerspectiveEndpoint::Nats)
    }

    /// Logs the effective configuration at `info`, with the hash secret, API keys, header
    /// values and URL credentials left out.
    pub fn log_effective(&self) {
        let perspectives: Vec<String> = self
            .perspectives
            .iter()
            .map(|perspective| describe(perspective, &self.reply_verification_keys))
            .collect();
        let (nats_servers, nats_auth) = match &self.nats {
            Some(nats) => (nats.redacted_servers().join(","), nats.auth.kind()),
            None => (String::new(), NatsAuth::None.kind()),
        };
        let client_certificate = self.nats_tls.client_certificate.as_ref();
        tracing::info!(
            perspectives = %perspectives.join(", "),
            perspective_catalogue = %self.catalogue_source,
            catalogue_entries = self.catalogue.len(),
            default_perspective_count = self.default_perspective_count,
            hash_secret = "<redacted>",
            absolute_max_attempts = ?self.absolute_max_attempts,
            perspective_timeout_ms = duration_ms(self.perspective_timeout),
            http_pool_idle_timeout_ms = duration_ms(self.http_pool_idle_timeout),
            nats_servers = %nats_servers,
            nats_auth,
            nats_tls_required = self.nats_tls.requires_tls(),
            nats_tls_ca_file = self.nats_tls.ca_file.as_ref().map(|path| path.display().to_string()),
            nats_tls_cert_file = client_certificate.map(|c| c.cert_file.display().to_string()),
            reply_signatures = self.reply_signatures.as_str(),
            reply_verification_keys_dir = self
                .reply_verification_keys
                .directory
                .as_ref()
                .map(|path| path.display().to_string()),
            api_keys = self.api_keys.as_ref().map_or(0, ApiKeys::count),
            allow_unauthenticated_api = self.allow_unauthenticated_api,
            subject_prefix = %self.subject_prefix,
            listen_address = %self.listen_address,
            request_timeout_ms = duration_ms(self.request_timeout),
            log_format = ?self.log_format,
            log_level = %self.log_level,
            "effective configuration"
        );
    }
}

/// The catalogue at the repository root, compiled in for the quick start.
pub const EMBEDDED_CATALOGUE: &str = include_str!("../../available_perspectives.yaml");

/// Perspectives of the quick start: ten codes over four RIRs, no two of them closer than
/// 500 km, so that two disjoint cohorts of five exist.
pub const QUICK_START_PERSPECTIVES: &[&str] = &[
    "us-east-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-2",
    "eu-central-1",
    "eu-north-1",
    "ap-northeast-1",
    "ap-southeast-1",
    "ap-south-1",
];

/// Cohort size of the quick start: five, the minimum the Baseline Requirements set from
/// 2026-12-15 on.
pub const QUICK_START_PERSPECTIVE_COUNT: usize = 5;

/// Default per-perspective timeout: 5 seconds, enough for a check that needs a few DNS round
/// trips and one HTTP fetch, while a request with several attempts stays well under a minute.
pub const DEFAULT_PERSPECTIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Default idle time of a pooled HTTP connection. Short enough that a checker restarted behind a
/// load balancer is not called on a dead connection for long.
pub const DEFAULT_HTTP_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Default listen address: loopback, so that a coordinator started by mistake is not reachable
/// from the network. Deployments set `listen_address=0.0.0.0:8080` behind their own access
/// control.
pub const DEFAULT_LISTEN_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// Time added to the worst case of all attempts timing out, for the coordinator's own work and
/// the response, when `request_timeout_seconds` is not set.
pub const REQUEST_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// Smallest default request deadline: 30 seconds, a common HTTP client timeout.
pub const MIN_DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The startup log's name for the catalogue built into the binary.
const EMBEDDED_CATALOGUE_SOURCE: &str = "the catalogue built into the binary";

/// Default `log_level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// Smallest cohort the API accepts: with one perspective there is nothing to corroborate.
const MIN_PERSPECTIVE_COUNT: usize = 2;

/// Remote network perspectives a CA must use from 2026-12-15 (BR §3.2.2.9). A smaller
/// `default_perspective_count` still starts, with a warning.
pub const BR_MIN_REMOTE_PERSPECTIVES: usize = 5;

/// Resolves `perspective_catalogue` against the directory of the configuration file, or the
/// working directory when there is no file. Returns `None` when the key is unset, which means
/// the catalogue built into the binary.
fn catalogue_path(conf: &AppConf, config_path: Option<&Path>) -> Option<PathBuf> {
    let configured = Path::new(conf.get("perspective_catalogue")?);
    let resolved = match config_path.and_then(Path::parent) {
        Some(directory) if configured.is_relative() => directory.join(configured),
        _ => configured.to_owned(),
    };
    Some(resolved)
}

fn parse_catalogue(text: &str, source: &str) -> Result<Catalogue, ConfigError> {
    Catalogue::from_yaml(text).map_err(|error| ConfigError::Catalogue {
        catalogue: source.to_owned(),
        source: error,
    })
}

/// One object entry of `perspectives`.
#[derive(Deserialize)]
struct RawPerspective {
    #[serde(default)]
    caa_endpoint_info: Option<RawEndpoint>,
    #[serde(default)]
    dcv_endpoint_info: Option<RawEndpoint>,
}

#[derive(Deserialize)]
struct RawEndpoint {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Parses `perspectives` in either of its forms and checks every code against the catalogue.
fn parse_perspectives(
    value: &str,
    catalogue: &Catalogue,
) -> Result<Vec<DeployedPerspective>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        key: "perspectives",
        reason,
    };

    let entries: Vec<(String, PerspectiveEndpoint)> = match value.trim_start().chars().next() {
        Some('[') => {
            let codes: Vec<String> = serde_json::from_str(value)
                .map_err(|error| invalid(format!("not a JSON array of codes: {error}")))?;
            let mut seen = BTreeSet::new();
            if let Some(repeated) = codes.iter().find(|code| !seen.insert(code.as_str())) {
                return Err(invalid(format!("{repeated:?} is listed more than once")));
            }
            codes
                .into_iter()
                .map(|code| (code, PerspectiveEndpoint::Nats))
                .collect()
        }
        Some('{') => {
            let raw: BTreeMap<String, RawPerspective> = serde_json::from_str(value)
                .map_err(|error| invalid(format!("not a JSON object of perspectives: {error}")))?;
            raw.into_iter()
                .map(|(code, entry)| {
                    let endpoint = endpoint(&code, entry).map_err(invalid)?;
                    Ok((code, endpoint))
                })
                .collect::<Result<_, ConfigError>>()?
        }
        _ => {
            return Err(invalid(
                "expected a JSON array of codes or a JSON object of endpoints".to_owned(),
            ));
        }
    };
    if entries.is_empty() {
        return Err(invalid("no perspective is deployed".to_owned()));
    }

    let mut perspectives = entries
        .into_iter()
        .map(|(code, endpoint)| deployed(&code, endpoint, catalogue))
        .collect::<Result<Vec<_>, _>>()?;
    perspectives.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(perspectives)
}

/// Checks a deployed code against the subject rules and the catalogue.
fn deployed(
    code: &str,
    endpoint: PerspectiveEndpoint,
    catalogue: &Catalogue,
) -> Result<DeployedPerspective, ConfigError> {
    if !is_valid_subject_token(code) {
        return Err(ConfigError::Invalid {
            key: "perspectives",
            reason: format!(
                "{code:?} is not a valid subject token: use ASCII letters, digits, '-' and '_'"
            ),
        });
    }
    let Some(info) = catalogue.get(code) else {
        return Err(ConfigError::Invalid {
            key: "perspectives",
            reason: format!(
                "{code:?} is not in the perspective catalogue; add it to the catalogue or remove \
                 it from the deployment"
            ),
        });
    };
    Ok(DeployedPerspective {
        code: code.to_owned(),
        rir: info.rir,
        endpoint,
    })
}

/// Turns an object entry into an endpoint: both endpoint infos mean HTTP, neither means NATS.
fn endpoint(code: &str, entry: RawPerspective) -> Result<PerspectiveEndpoint, String> {
    match (entry.caa_endpoint_info, entry.dcv_endpoint_info) {
        (None, None) => Ok(PerspectiveEndpoint::Nats),
        (Some(caa), Some(dcv)) => Ok(PerspectiveEndpoint::Http(Box::new(HttpEndpoints {
            caa: http_endpoint(code, "caa_endpoint_info", caa)?,
            dcv: http_endpoint(code, "dcv_endpoint_info", dcv)?,
        }))),
        (Some(_), None) | (None, Some(_)) => Err(format!(
            "{code:?} has only one of caa_endpoint_info and dcv_endpoint_info; give both for an \
             HTTP perspective or neither for NATS"
        )),
    }
}

fn http_endpoint(code: &str, field: &str, raw: RawEndpoint) -> Result<HttpEndpoint, String> {
    let url = Url::parse(&raw.url)
        .map_err(|error| format!("{code}.{field}.url {:?} is not a URL: {error}", raw.url))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{code}.{field}.url must use http or https, not {:?}",
            url.scheme()
        ));
    }

    let mut headers = HeaderMap::new();
    for (name, value) in raw.headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{code}.{field}.headers: {name:?} is not a valid header name"))?;
        // The value may be a credential, so the message names only the header.
        let mut header_value = HeaderValue::from_str(&value)
            .map_err(|_| format!("{code}.{field}.headers: the value of {name:?} is not valid"))?;
        header_value.set_sensitive(true);
        headers.insert(header_name, header_value);
    }
    Ok(HttpEndpoint { url, headers })
}

fn plaintext_endpoints(perspectives: &[DeployedPerspective]) -> Vec<ConfigWarning> {
    let mut warnings = Vec::new();
    for perspective in perspectives {
        let PerspectiveEndpoint::Http(endpoints) = &perspective.endpoint else {
            continue;
        };
        for endpoint in [&endpoints.caa, &endpoints.dcv] {
            if endpoint.url.scheme() == "http" {
                warnings.push(ConfigWarning::PlaintextEndpoint {
                    perspective: perspective.code.clone(),
                    url: redacted_url(&endpoint.url),
                });
            }
        }
    }
    warnings
}

/// Checks that `default_perspective_count` is between 2 and the number of deployed
/// perspectives. Whether a cohort of that size exists is the orchestration's check.
fn default_perspective_count(
    conf: &AppConf,
    perspectives: &[DeployedPerspective],
) -> Result<usize, ConfigError> {
    let key = "default_perspective_count";
    let count: usize = conf
        .parse_value(key)?
        .ok_or_else(|| AppConfError::Missing {
            key: key.to_owned(),
        })?;
    if count < MIN_PERSPECTIVE_COUNT || count > perspectives.len() {
        return Err(ConfigError::Invalid {
            key,
            reason: format!(
                "{count} is out of range: it must be between {MIN_PERSPECTIVE_COUNT} and the \
                 number of deployed perspectives ({})",
                perspectives.len()
            ),
        });
    }

    Ok(count)
}

fn hash_secret(conf: &AppConf) -> Result<HashSecret, ConfigError> {
    let secret = conf.require("hash_secret")?;
    if secret.is_empty() {
        return Err(ConfigError::Invalid {
            key: "hash_secret",
            reason: "must not be empty; set it to a long random value".to_owned(),
        });
    }
    HashSecret::new(secret.as_bytes()).map_err(|error| ConfigError::Invalid {
        key: "hash_secret",
        reason: error.to_string(),
    })
}

fn absolute_max_attempts(conf: &AppConf) -> Result<Option<NonZeroU32>, ConfigError> {
    let key = "absolute_max_attempts";
    match conf.parse_value::<u32>(key)? {
        None => Ok(None),
        Some(attempts) => NonZeroU32::new(attempts)
            .map(Some)
            .ok_or_else(|| ConfigError::Invalid {
                key,
                reason: "must be at least 1".to_owned(),
            }),
    }
}

/// Returns the most attempts a request can make: `absolute_max_attempts`, or without it one per
/// cohort, and there are at most `deployed / 2` cohorts because a cohort has two or more members.
fn max_attempts(absolute_max_attempts: Option<NonZeroU32>, deployed: usize) -> u32 {
    match absolute_max_attempts {
        Some(attempts) => attempts.get(),
        None => u32::try_from(deployed / MIN_PERSPECTIVE_COUNT)
            .unwrap_or(u32::MAX)
            .max(1),
    }
}

/// Parses a positive number of seconds (fractions allowed).
fn seconds(conf: &AppConf, key: &'static str) -> Result<Option<Duration>, ConfigError> {
    let Some(value) = conf.parse_value::<f64>(key)? else {
        return Ok(None);
    };
    match Duration::try_from_secs_f64(value) {
        Ok(duration) if !duration.is_zero() => Ok(Some(duration)),
        _ => Err(ConfigError::Invalid {
            key,
            reason: format!("{value} is not a positive number of seconds"),
        }),
    }
}

/// Reads `reply_signatures` and, when set, the keys of `reply_verification_keys_dir`, checks
/// them against the deployment, and adds the warnings.
fn reply_verification(
    conf: &AppConf,
    perspectives: &[DeployedPerspective],
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(ReplySignatures, ReplyVerificationKeys), ConfigError> {
    let mode: ReplySignatures = conf.parse_value("reply_signatures")?.unwrap_or_default();
    let keys = match conf.get("reply_verification_keys_dir") {
        Some(directory) => {
            let (keys, key_warnings) =
                ReplyVerificationKeys::load(Path::new(directory), perspectives)?;
            warnings.extend(key_warnings);
            keys
        }
        None => ReplyVerificationKeys::default(),
    };
    warnings.extend(reply_keys::check_reply_keys(mode, &keys, perspectives)?);
    Ok((mode, keys))
}

fn subject_prefix(conf: &AppConf) -> Result<String, ConfigError> {
    let prefix = conf.get("subject_prefix").unwrap_or(DEFAULT_SUBJECT_PREFIX);
    if !is_valid_subject_prefix(prefix) {
        return Err(ConfigError::Invalid {
            key: "subject_prefix",
            reason: format!(
                "{prefix:?} is not a valid subject prefix: use dot-separated tokens of ASCII \
                 letters, digits, '-' and '_'"
            ),
        });
    }
    Ok(prefix.to_owned())
}

/// Chooses or checks the request deadline. A deadline shorter than the attempts it has to cover
/// would end requests while perspectives are still within their timeout.
fn request_timeout(
    configured: Option<Duration>,
    perspective_timeout: Duration,
    max_attempts: u32,
) -> Result<Duration, ConfigError> {
    let worst_case = perspective_timeout.saturating_mul(max_attempts);
    let Some(configured) = configured else {
        return Ok((worst_case + REQUEST_TIMEOUT_MARGIN).max(MIN_DEFAULT_REQUEST_TIMEOUT));
    };
    if configured <= worst_case {
        return Err(ConfigError::Invalid {
            key: "request_timeout_seconds",
            reason: format!(
                "{} s does not exceed http_client_timeout_seconds times the most attempts a \
                 request can make ({} s); raise it, or lower those or absolute_max_attempts",
                configured.as_secs_f64(),
                worst_case.as_secs_f64()
            ),
        });
    }
    Ok(configured)
}

fn log_level(conf: &AppConf) -> Result<String, ConfigError> {
    let level = conf.get("log_level").unwrap_or(DEFAULT_LOG_LEVEL);
    tracing_subscriber::EnvFilter::try_new(level).map_err(|error| ConfigError::Invalid {
        key: "log_level",
        reason: format!("{level:?} is not a valid filter: {error}"),
    })?;
    Ok(level.to_owned())
}

/// Describes a deployed perspective for the startup log, without credentials, with the
/// number of its reply verification keys.
fn describe(perspective: &DeployedPerspective, keys: &ReplyVerificationKeys) -> String {
    let key_count = keys.key_files(&perspective.code).len();
    match &perspective.endpoint {
        PerspectiveEndpoint::Http(endpoints) => format!(
            "{} ({}, http: caa={}, dcv={}, verification keys: {key_count})",
            perspective.code,
            perspective.rir,
            redacted_url(&endpoints.caa.url),
            redacted_url(&endpoints.dcv.url)
        ),
        PerspectiveEndpoint::Nats => format!(
            "{} ({}, nats, verification keys: {key_count})",
            perspective.code, perspective.rir
        ),
        PerspectiveEndpoint::InProcess => {
            format!("{} ({}, in-process)", perspective.code, perspective.rir)
        }
    }
}

/// Returns the URL with any user name and password removed.
fn redacted_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both setters fail only for URLs that cannot carry credentials, which then have none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOGUE: &str = r#"
available_regions:
  - {code: us-east-1, rir: ARIN, too_close_codes: [us-east-2]}
  - {code: us-east-2, rir: ARIN}
  - {code: us-west-2, rir: ARIN}
  - {code: eu-west-2, rir: RIPE NCC}
  - {code: ap-southeast-1, rir: APNIC}
"#;

    fn build(file: &str) -> Result<(CoordinatorConfig, Vec<ConfigWarning>), ConfigError> {
        let conf = AppConf::parse(file).unwrap();
        let catalogue = Catalogue::from_yaml(CATALOGUE).unwrap();
        CoordinatorConfig::from_app_conf(&conf, catalogue, "test catalogue".to_owned())
    }

    const NATS_BASE: &str = "perspectives=[\"us-east-1\",\"eu-west-2\",\"ap-southeast-1\"]\n\
                             default_perspective_count=3\nhash_secret=s3cret\n\
                             nats_url=nats://127.0.0.1:4222\nreply_signatures=off\n";

    #[test]
    fn good_configurations_load() {
        struct Case {
            name: &'static str,
            file: String,
            check: fn(&CoordinatorConfig) -> bool,
        }
        let http_seed = "perspectives={\"us-east-1\":{\"caa_endpoint_info\":{\"url\":\
            \"http://caa-1:80/caa\",\"headers\":{\"x-api-key\":\"k1\"}},\"dcv_endpoint_info\":\
            {\"url\":\"http://dcv-1:80/dcv\"}},\"eu-west-2\":{\"caa_endpoint_info\":{\"url\":\
            \"https://caa-2/caa\"},\"dcv_endpoint_info\":{\"url\":\"https://dcv-2/dcv\"}}}\n\
            default_perspective_count=2\nhash_secret=\"seed secret\"\nabsolute_max_attempts=3\n\
            http_client_timeout_seconds=30\nhttp_client_keepalive_timeout_seconds=60\n";
        let cases = [
            Case {
                name: "NATS array with defaults",
                file: NATS_BASE.to_owned(),
                check: |c| {
                    c.perspectives.len() == 3
                        && c.perspectives
                            .iter()
                            .all(|p| p.endpoint == PerspectiveEndpoint::Nats)
                        && c.perspective_timeout == Duration::from_secs(5)
                        && c.http_pool_idle_timeout == Duration::from_secs(15)
                        && c.subject_prefix == "mpic"
                        && c.listen_address == DEFAULT_LISTEN_ADDRESS
                        && c.request_timeout == MIN_DEFAULT_REQUEST_TIMEOUT
                        && c.default_perspective_count == 3
                        && c.log_format == LogFormat::Text
                        && c.absolute_max_attempts.is_none()
                },
            },
            Case {
                name: "seed HTTP object without nats_url",
                file: http_seed.to_owned(),
                check: |c| {
                    let PerspectiveEndpoint::Http(endpoints) = &c.perspectives[1].endpoint else {
                        return false;
                    };
                    endpoints.caa.url.as_str() == "http://caa-1/caa"
                        && endpoints.caa.headers.get("x-api-key").unwrap() == "k1"
                        && c.nats.is_none()
                        && c.absolute_max_attempts == NonZeroU32::new(3)
                        && c.perspective_timeout == Duration::from_secs(30)
                        && c.http_pool_idle_timeout == Duration::from_secs(60)
                        && c.request_timeout == Duration::from_secs(95)
                },
            },
            Case {
                name: "mixed object: empty entry uses NATS",
                file: "perspectives={\"us-east-1\":{},\"eu-west-2\":{\"caa_endpoint_info\":\
                       {\"url\":\"https://c/caa\"},\"dcv_endpoint_info\":{\"url\":\"https://c/dcv\"}}}\n\
                       default_perspective_count=2\nhash_secret=x\nnats_url=tls://127.0.0.1:4222\n\
                       reply_signatures=off\n"
                    .to_owned(),
                check: |c| {
                    c.perspectives[1].endpoint == PerspectiveEndpoint::Nats
                        && matches!(c.perspectives[0].endpoint, PerspectiveEndpoint::Http(_))
                        && c.nats.as_ref().unwrap().servers.len() == 1
                },
            },
            Case {
                name: "our keys override defaults",
                file: format!(
                    "{NATS_BASE}subject_prefix=ca1.mpic\nlisten_address=0.0.0.0:9000\n\
                     api_keys=first-api-key-0123456789\n\
                     request_timeout_seconds=12.5\nlog_format=JSON\nlog_level=debug\n\
                     nats_url=nats://127.0.0.1:4222, nats://127.0.0.1:4223\nnats_token=t0ken\n"
                ),
                check: |c| {
                    c.subject_prefix == "ca1.mpic"
                        && c.listen_address.port() == 9000
                        && c.request_timeout == Duration::from_millis(12_500)
                        && c.log_format == LogFormat::Json
                        && c.log_level == "debug"
                        && c.nats.as_ref().unwrap().servers.len() == 2
                        && c.nats.as_ref().unwrap().auth.kind() == "token"
                },
            },
        ];
        for case in cases {
            let (config, _) = build(&case.file)
                .unwrap_or_else(|error| panic!("case {:?} failed: {error}", case.name));
            assert!((case.check)(&config), "case {:?}: {config:?}", case.name);
        }
    }

    #[test]
    fn bad_configurations_name_the_key() {
        let without = |key: &str| {
            NATS_BASE
                .lines()
                .filter(|line| !line.starts_with(key))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let cases: Vec<(&str, String, &str)> = vec![
            (
                "missing perspectives",
                without("perspectives"),
                "perspectives: missing",
            ),
            (
                "missing default count",
                without("default_perspective_count"),
                "default_perspective_count: missing",
            ),
            (
                "missing hash secret",
                without("hash_secret"),
                "hash_secret: missing",
            ),
            (
                "missing nats_url for NATS perspectives",
                without("nats_url"),
                "nats_url: missing",
            ),
            (
                "code not in the catalogue",
                NATS_BASE.replace("ap-southeast-1", "mars-1"),
                "perspectives: \"mars-1\" is not in the perspective catalogue",
            ),
            (
                "code that is not a subject token",
                NATS_BASE.replace("ap-southeast-1", "eu.west"),
                "perspectives: \"eu.west\" is not a valid subject token",
            ),
            (
                "repeated code",
                NATS_BASE.replace("ap-southeast-1", "us-east-1"),
                "perspectives: \"us-east-1\" is listed more than once",
            ),
            (
                "empty array",
                NATS_BASE.replace("[\"us-east-1\",\"eu-west-2\",\"ap-southeast-1\"]", "[]"),
                "perspectives: no perspective",
            ),
            (
                "not JSON",
                NATS_BASE.replace("[\"us-east-1\"", "us-east-1[\""),
                "perspectives: expected a JSON array",
            ),
            (
                "only one endpoint info",
                "perspectives={\"us-east-1\":{\"caa_endpoint_info\":{\"url\":\"https://c/caa\"}},\
                 \"eu-west-2\":{}}\ndefault_perspective_count=2\nhash_secret=x\nnats_url=n:4222\n"
                    .to_owned(),
                "perspectives: \"us-east-1\" has only one of",
            ),
            (
                "endpoint URL with another scheme",
                "perspectives={\"us-east-1\":{\"caa_endpoint_info\":{\"url\":\"ftp://c/caa\"},\
                 \"dcv_endpoint_info\":{\"url\":\"https://c/dcv\"}}}\n\
                 default_perspective_count=2\nhash_secret=x\n"
                    .to_owned(),
                "perspectives: us-east-1.caa_endpoint_info.url must use http or https",
            ),
            (
                "default count above the deployment",
                NATS_BASE.replace("default_perspective_count=3", "default_perspective_count=4"),
                "default_perspective_count: 4 is out of range",
            ),
            (
                "default count of one",
                NATS_BASE.replace("default_perspective_count=3", "default_perspective_count=1"),
                "default_perspective_count: 1 is out of range",
            ),
            (
                "default count not a number",
                NATS_BASE.replace(
                    "default_perspective_count=3",
                    "default_perspective_count=three",
                ),
                "default_perspective_count: invalid value \"three\"",
            ),
            (
                "three perspectives in one RIR",
                NATS_BASE
                    .replace("eu-west-2", "us-east-2")
                    .replace("ap-southeast-1", "us-west-2"),
                "default_perspective_count: no cohort of 3 deployed perspectives spans two RIRs",
            ),
            (
                "empty hash secret",
                NATS_BASE.replace("hash_secret=s3cret", "hash_secret=\"\""),
                "hash_secret: must not be empty",
            ),
            (
                "zero attempts",
                format!("{NATS_BASE}absolute_max_attempts=0\n"),
                "absolute_max_attempts: must be at least 1",
            ),
            (
                "zero timeout",
                format!("{NATS_BASE}http_client_timeout_seconds=0\n"),
                "http_client_timeout_seconds: 0 is not a positive number of seconds",
            ),
            (
                "negative keepalive",
                format!("{NATS_BASE}http_client_keepalive_timeout_seconds=-1\n"),
                "http_client_keepalive_timeout_seconds: -1 is not a positive",
            ),
            (
                "request deadline shorter than the attempts",
                format!(
                    "{NATS_BASE}absolute_max_attempts=3\nhttp_client_timeout_seconds=5\n\
                     request_timeout_seconds=15\n"
                ),
                "request_timeout_seconds: 15 s does not exceed",
            ),
            (
                "bad NATS URL",
                NATS_BASE.replace("nats://127.0.0.1:4222", "http://127.0.0.1:4222"),
                "nats_url: \"http://127.0.0.1:4222/\" is not a NATS server URL",
            ),
            (
                "two kinds of NATS credentials",
                format!("{NATS_BASE}nats_token=t\nnats_credentials_file=/c.creds\n"),
                "nats_token: nats_credentials_file is also set; set only one kind",
            ),
            (
                "NATS password without user",
                format!("{NATS_BASE}nats_password=p\n"),
                "nats_user: missing, but nats_password is set",
            ),
            (
                "NATS credentials without server",
                "perspectives={\"us-east-1\":{\"caa_endpoint_info\":{\"url\":\"https://c/caa\"},\
                 \"dcv_endpoint_info\":{\"url\":\"https://c/dcv\"}},\"eu-west-2\":\
                 {\"caa_endpoint_info\":{\"url\":\"https://d/caa\"},\"dcv_endpoint_info\":\
                 {\"url\":\"https://d/dcv\"}}}\n\
                 default_perspective_count=2\nhash_secret=x\nnats_token=t\n"
                    .to_owned(),
                "nats_url: missing, but NATS credentials (token) are set",
            ),
            (
                "bad subject prefix",
                format!("{NATS_BASE}subject_prefix=mpic.>\n"),
                "subject_prefix: \"mpic.>\" is not a valid subject prefix",
            ),
            (
                "bad listen address",
                format!("{NATS_BASE}listen_address=localhost\n"),
                "listen_address: invalid value \"localhost\"",
            ),
            (
                "bad log format",
                format!("{NATS_BASE}log_format=xml\n"),
                "log_format: invalid value \"xml\"",
            ),
            (
                "bad log level",
                format!("{NATS_BASE}log_level=info,=[\n"),
                "log_level: \"info,=[\" is not a valid filter",
            ),
        ];
        for (name, file, expected) in cases {
            let error = match build(&file) {
                Ok(_) => panic!("case {name:?} was accepted"),
                Err(error) => error.to_string(),
            };
            assert!(
                error.starts_with(expected),
                "case {name:?}: {error:?} does not start with {expected:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_plaintext_endpoints_warn() {
        let file = "perspectives={\"us-east-1\":{\"caa_endpoint_info\":{\"url\":\
                    \"http://user:pw@caa-1/caa\"},\"dcv_endpoint_info\":{\"url\":\"https://d/dcv\"}},\
                    \"eu-west-2\":{}}\ndefault_perspective_count=2\nhash_secret=x\n\
                    nats_url=127.0.0.1\nverify_ssl=False\nreply_signatures=off\n";
        let (_, warnings) = build(file).unwrap();
        assert_eq!(
            warnings,
            vec![
                ConfigWarning::UnknownKey {
                    key: "verify_ssl".to_owned()
                },
                ConfigWarning::PlaintextEndpoint {
                    perspective: "us-east-1".to_owned(),
                    url: "http://caa-1/caa".to_owned()
                },
                ConfigWarning::FewPerspectives {
                    default_perspective_count: 2
                },
                ConfigWarning::ReplySignaturesOff,
            ]
        );
    }

    #[test]
    fn default_count_below_five_warns() {
        let catalogue = Catalogue::from_yaml(EMBEDDED_CATALOGUE).unwrap();
        let perspectives = "perspectives=[\"us-east-1\",\"us-west-2\",\"eu-west-2\",\
                            \"eu-central-1\",\"ap-southeast-1\"]\nhash_secret=x\n\
                            nats_url=nats://127.0.0.1:4222\nreply_signatures=off\n";
        for (count, warns) in [(4, true), (5, false)] {
            let file = format!("{perspectives}default_perspective_count={count}\n");
            let conf = AppConf::parse(&file).unwrap();
            let (_, warnings) =
                CoordinatorConfig::from_app_conf(&conf, catalogue.clone(), "embedded".to_owned())
                    .unwrap();
            let warned = warnings.contains(&ConfigWarning::FewPerspectives {
                default_perspective_count: count,
            });
            assert_eq!(warned, warns, "count {count}: {warnings:?}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let file = "perspectives={\"us-east-1\":{\"caa_endpoint_info\":{\"url\":\
                    \"https://user:pw@caa-1/caa\",\"headers\":{\"x-api-key\":\"key-value\"}},\
                    \"dcv_endpoint_info\":{\"url\":\"https://d/dcv\"}},\"eu-west-2\":{}}\n\
                    default_perspective_count=2\nhash_secret=top-secret\n\
                    nats_url=nats://nats-user:nats-pw@127.0.0.1\nnats_user=u\n\
                    nats_password=second-pw\nreply_signatures=off\n\
                    api_keys=first-api-key-0123456789\n";
        let (config, _) = build(file).unwrap();
        let debug = format!("{config:?}");
        for secret in [
            "top-secret",
            "key-value",
            "pw@",
            "nats-pw",
            "second-pw",
            "first-api-key",
        ] {
            assert!(!debug.contains(secret), "{secret:?} leaked into {debug}");
        }
        assert!(
            debug.contains("x-api-key"),
            "header names are shown: {debug}"
        );
    }

    #[test]
    fn load_reads_the_catalogue_next_to_the_file() {
        let directory = std::env::temp_dir().join(format!("mpic-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join("test-catalogue.yaml"), CATALOGUE).unwrap();
        let path = directory.join("app.conf");
        std::fs::write(
            &path,
            format!("{NATS_BASE}perspective_catalogue=test-catalogue.yaml\n"),
        )
        .unwrap();

        let env = |name: &str| (name == "DEFAULT_PERSPECTIVE_COUNT").then(|| "2".to_owned());
        let (config, _) = CoordinatorConfig::load(Some(&path), env).unwrap();
        assert_eq!(config.default_perspective_count, 2, "environment wins");
        assert_eq!(config.catalogue.len(), 5);

        std::fs::write(&path, NATS_BASE).unwrap();
        let (config, _) = CoordinatorConfig::load(Some(&path), |_| None).unwrap();
        assert_eq!(
            config.catalogue_source, EMBEDDED_CATALOGUE_SOURCE,
            "without the key the built-in catalogue is used"
        );
        assert!(config.catalogue.len() > 5);

        std::fs::write(
            &path,
            format!("{NATS_BASE}perspective_catalogue=missing.yaml\n"),
        )
        .unwrap();
        let error = CoordinatorConfig::load(Some(&path), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("perspective_catalogue: failed to read"),
            "{error}"
        );

        std::fs::write(
            directory.join("bad.yaml"),
            "available_regions:\n  - {code: a, rir: RIPE}\n",
        )
        .unwrap();
        std::fs::write(
            &path,
            format!("{NATS_BASE}perspective_catalogue=bad.yaml\n"),
        )
        .unwrap();
        let error = CoordinatorConfig::load(Some(&path), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("perspective_catalogue: unknown RIR \"RIPE\""),
            "{error}"
        );
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn environment_alone_is_a_configuration() {
        let directory = std::env::temp_dir().join(format!("mpic-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&directory).unwrap();
        let catalogue = directory.join("catalogue.yaml");
        std::fs::write(&catalogue, CATALOGUE).unwrap();
        let catalogue_text = catalogue.display().to_string();
        let env = |name: &str| match name {
            "PERSPECTIVES" => Some(r#"["us-east-1","eu-west-2"]"#.to_owned()),
            "default_perspective_count" => Some("2".to_owned()),
            "HASH_SECRET" => Some("from-env".to_owned()),
            "NATS_URL" => Some("nats://127.0.0.1:4222".to_owned()),
            "PERSPECTIVE_CATALOGUE" => Some(catalogue_text.clone()),
            "REPLY_SIGNATURES" => Some("off".to_owned()),
            _ => None,
        };

        let (config, warnings) = CoordinatorConfig::load(None, env).unwrap();
        assert_eq!(config.perspectives.len(), 2);
        assert_eq!(config.reply_signatures, ReplySignatures::Off);
        assert_eq!(
            warnings,
            [
                ConfigWarning::FewPerspectives {
                    default_perspective_count: 2
                },
                ConfigWarning::ReplySignaturesOff
            ]
        );

        let error = CoordinatorConfig::load(None, |_| None)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("perspectives: missing"), "{error}");
        std::fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn embedded_catalogue_serves_the_quick_start() {
        let config =
            CoordinatorConfig::quick_start(DEFAULT_LISTEN_ADDRESS, HashSecret::new(b"x").unwrap())
                .unwrap();
        let rirs: BTreeSet<Rir> = config.perspectives.iter().map(|p| p.rir).collect();
        assert!(rirs.len() >= 3, "quick start spans {rirs:?}");
        assert!(config.perspectives.len() >= 6);
        for a in QUICK_START_PERSPECTIVES {
            for b in QUICK_START_PERSPECTIVES {
                assert!(
                    !config.catalogue.are_too_close(a, b),
                    "{a} and {b} are too close for the quick start"
                );
            }
        }
    }

    #[test]
    fn embedded_catalogue_is_realistic() {
        let catalogue = Catalogue::from_yaml(EMBEDDED_CATALOGUE).unwrap();
        let rirs: BTreeSet<Rir> = catalogue.iter().map(|p| p.rir).collect();
        assert!(catalogue.len() >= 12);
        assert_eq!(rirs.len(), 5, "every RIR is represented");
        assert!(catalogue.are_too_close("us-east-1", "us-east-2"));
        assert!(catalogue.are_too_close("ap-northeast-1", "ap-northeast-3"));
        for entry in catalogue.iter() {
            for other in &entry.too_close_codes {
                assert!(
                    catalogue.get(other).is_some(),
                    "{} lists unknown {other}",
                    entry.code
                );
            }
        }
    }
}
