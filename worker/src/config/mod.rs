//! The worker's configuration: one typed [`WorkerConfig`], loaded from an `app.conf` file and the
//! environment, and validated before anything is bound or connected.
//!
//! The file uses the seed deployment's `KEY=VALUE` format (see [`mpic_shared::appconf`]). Every
//! key may also come from the environment, under its own name or in upper case
//! (`dns_timeout_seconds` or `DNS_TIMEOUT_SECONDS`), and the environment wins. The Python
//! checkers' keys (`code`, `default_caa_domains`, `dns_timeout_seconds`,
//! `dns_resolution_lifetime_seconds`, `verify_ssl`, `http_client_timeout_seconds`) keep their
//! meaning, so their files work unchanged once `nats_url` or `http_listen` is added.
//! A key the worker does not know is reported by [`LoadedConfig::unknown_keys`] so that the
//! caller can log a warning naming it; it is never an error, because existing files carry
//! keys such as `log_level` handlers or `uvicorn_server_timeout_keep_alive`.
//!
//! | key | unit, default | meaning |
//! |---|---|---|
//! | `perspective_code` (alias `code`) | required | the perspective this worker serves; a subject token |
//! | `subject_prefix` | `mpic` | first tokens of the NATS subjects |
//! | `nats_url` | unset | NATS server URLs (`nats://` or `tls://`), comma-separated; unset: no NATS service |
//! | `nats_user`, `nats_password` | unset | NATS user and password (both or neither) |
//! | `nats_token` | unset | NATS authentication token |
//! | `nats_nkey_seed_file` | path, unset | file holding an NKey user seed (`SU...`) |
//! | `nats_creds_file` (alias `nats_credentials_file`) | path, unset | NATS `.creds` file (user JWT and NKey seed) |
//! | `nats_tls_ca_file` | path, unset | PEM CA bundle that verifies the NATS server; unset: system roots |
//! | `nats_tls_cert_file`, `nats_tls_key_file` | paths, unset | PEM client certificate and key for mutual TLS (both or neither) |
//! | `reply_signing_key_file` | path, unset | Ed25519 PKCS#8 PEM key that signs replies; unset: unsigned replies |
//! | `http_listen` | unset | `ip:port` of the HTTP endpoints; unset: no HTTP endpoints |
//! | `default_caa_domains` | empty | issuer domain names, `\|`-separated |
//! | `nameservers` | `/etc/resolv.conf` | recursive resolvers, comma-separated `ip[:port]` |
//! | `dns_timeout_seconds` | seconds, 2 | one DNS query |
//! | `dns_resolution_lifetime_seconds` | seconds, 5 | all DNS queries of one check |
//! | `verify_ssl` | boolean, true | verify HTTPS certificates of challenge servers |
//! | `http_client_timeout_seconds` | seconds, 30 | one HTTP or TLS-ALPN fetch |
//! | `check_timeout_seconds` | seconds, derived | whole-check deadline |
//! | `max_checks_in_flight` | count, 64 | checks run at the same time |
//! | `allow_non_public_addresses` | boolean, false | let checks connect to non-public addresses |
//! | `http_port`, `https_port`, `tls_alpn_port` | 80, 443, 443 | challenge ports |
//! | `log_format` | `text` | `text` or `json` |
//! | `log_level` | `info` | tracing filter directives |
//!
//! At most one kind of NATS credentials may be set. Setting any `nats_tls_*` key makes the
//! worker require TLS on every NATS connection. Files named by keys are read and parsed here,
//! so that a missing or malformed file stops the start with an error naming its key.
//!
//! Each field of [`WorkerConfig`] documents its key in full. Not handled here: NATS over
//! WebSocket (`ws://`, `wss://`), which this build of the NATS client does not include.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mpic_shared::appconf::{AppConf, AppConfError, SettingSource};
use mpic_shared::subject::{
    DEFAULT_SUBJECT_PREFIX, is_valid_subject_prefix, is_valid_subject_token,
};
use mpic_shared::target::Target;
use serde::Serialize;

use crate::fetch::{AddressPolicy, TlsVerification};
use crate::resolver::{
    DEFAULT_ATTEMPTS, DEFAULT_QUERY_TIMEOUT, DEFAULT_RESOLUTION_LIFETIME, NameServers,
    ResolverSettings,
};

mod nats;
mod signing;

pub use self::nats::{
    ClientCertificate, NatsAuth, NatsConfig, NatsTls, Secret, nats_auth_from, nats_tls_from,
};
pub use self::signing::ReplySigningKey;

use self::nats::{is_loopback_host, nats_config, redact_url};

/// The validated configuration of one worker process.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// The perspective this worker serves (`perspective_code`, or `code` as the Python checkers
    /// spell it). Required. It is the middle token of the NATS subjects and the value of the
    /// perspective reply header, so it must be a valid subject token: ASCII letters, digits,
    /// `-` and `_`.
    pub perspective_code: String,
    /// The first token or tokens of the NATS subjects, `<prefix>.<perspective code>.caa` and
    /// `.dcv` (`subject_prefix`). Default: `mpic`.
    pub subject_prefix: String,
    /// How to reach NATS (`nats_url` and the `nats_*` credentials). `None` when `nats_url` is
    /// unset: the worker then serves only the HTTP endpoints.
    pub nats: Option<NatsConfig>,
    /// TLS settings of the NATS connection (`nats_tls_ca_file`, `nats_tls_cert_file`,
    /// `nats_tls_key_file`). Default: none of them, so the connection uses TLS only for
    /// `tls://` URLs or when the server demands it. Setting a key without `nats_url` is an
    /// error.
    pub nats_tls: NatsTls,
    /// The key that signs every reply (`reply_signing_key_file`). Default: unset, and replies
    /// carry no signature.
    pub reply_signing: Option<ReplySigningKey>,
    /// Listen address of the HTTP endpoints (`POST /caa`, `POST /dcv`, `GET /healthz`,
    /// `GET /configz`) (`http_listen`, `ip:port`). Default: unset, no HTTP endpoints. At least one of
    /// `nats_url` and `http_listen` must be set.
    pub http_listen: Option<SocketAddr>,
    /// Issuer domain names of the CA, used when a CAA request names none
    /// (`default_caa_domains`, `|`-separated, as the Python CAA checker reads them). Stored as
    /// A-labels in lower case without a trailing dot. Default: empty, so a request without
    /// `caa_domains` is permitted only where no `issue` property applies.
    pub default_caa_domains: Vec<String>,
    /// DNS settings from three keys. `nameservers` lists recursive resolvers as comma-separated
    /// `ip[:port]`, with port 53 when absent; the default is the `nameserver` lines of
    /// `/etc/resolv.conf`. `dns_timeout_seconds` bounds one query (seconds, default 2), and
    /// `dns_resolution_lifetime_seconds` bounds all queries of one check (seconds, default 5).
    /// Both defaults are dnspython's, which the Python checkers use.
    pub resolver: ResolverSettings,
    /// Whether HTTPS challenge servers must present a certificate that verifies
    /// (`verify_ssl`, boolean). Default: true. The Python DCV checker reads the same key.
    pub tls_verification: TlsVerification,
    /// Time limit of one HTTP fetch (redirects included) and of one TLS-ALPN handshake
    /// (`http_client_timeout_seconds`, seconds). Default: [`DEFAULT_HTTP_CLIENT_TIMEOUT`], 30.
    pub http_client_timeout: Duration,
    /// Deadline of a whole check, from parsing the request to the reply
    /// (`check_timeout_seconds`, seconds). Default: `http_client_timeout_seconds` plus
    /// `dns_resolution_lifetime_seconds` plus [`CHECK_TIMEOUT_MARGIN`] (40 with the other
    /// defaults), so that the checks' own time limits fire first and report what timed out.
    /// A value set explicitly must not be shorter than either of those two limits.
    pub check_timeout: Duration,
    /// How many checks run at the same time (`max_checks_in_flight`, count). Default:
    /// [`DEFAULT_MAX_CHECKS_IN_FLIGHT`], 64. Requests beyond it wait for a free slot.
    pub max_checks_in_flight: usize,
    /// Address policy of HTTP and TLS-ALPN checks (`allow_non_public_addresses`, boolean). Default:
    /// false, so HTTP and TLS-ALPN checks connect only to globally reachable addresses. Set it
    /// only for tests and private deployments.
    pub address_policy: AddressPolicy,
    /// The ports challenges are fetched from (`http_port`, `https_port`, `tls_alpn_port`).
    pub challenge_ports: ChallengePorts,
    /// Format of log lines (`log_format`, `text` or `json`). Default: `text`.
    pub log_format: LogFormat,
    /// Log filter (`log_level`): a level such as `info` or `debug`, or
    /// tracing filter directives such as `info,mpic_worker=debug`. Default: `info`.
    pub log_level: String,
}

/// The ports challenges are fetched from.
///
/// The protocols fix them; an override exists for tests and private deployments, and
/// [`WorkerConfig::port_overrides`] lists the overrides so they can be logged at startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChallengePorts {
    /// Port of `http://` challenge URLs (`http_port`). Default: [`DEFAULT_HTTP_PORT`], 80.
    pub http: u16,
    /// Port of `https://` challenge URLs (`https_port`). Default: [`DEFAULT_HTTPS_PORT`], 443.
    pub https: u16,
    /// Port of the acme-tls-alpn-01 handshake (`tls_alpn_port`). Default:
    /// [`DEFAULT_TLS_ALPN_PORT`], 443.
    pub tls_alpn: u16,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A configuration that passed validation, with the keys it did not recognise.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The validated configuration.
    pub config: WorkerConfig,
    /// Keys set in the file that the worker does not use; the caller logs a warning per key.
    pub unknown_keys: Vec<String>,
}

/// A challenge port that differs from the protocol's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortOverride {
    /// The configuration key.
    pub key: &'static str,
    /// The configured port.
    pub port: u16,
    /// The port the protocol fixes.
    pub standard_port: u16,
    /// The standard that defines the port.
    pub citation: &'static str,
}

/// Errors of loading and validating the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("failed to read the configuration file {path}")]
    ReadFile {
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not in `KEY=VALUE` form, a required key is missing or a value does not
    /// parse.
    #[error(transparent)]
    AppConf(#[from] AppConfError),
    /// A file named by a key, such as a certificate or key file, could not be read.
    #[error("{key}: failed to read {path}")]
    ReadSettingFile {
        /// The configuration key.
        key: &'static str,
        /// The file's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A value parsed but is not acceptable, or a file it names has unusable contents.
    #[error("{key}: {problem}")]
    Invalid {
        /// The configuration key.
        key: &'static str,
        /// The problem, quoting the value.
        problem: String,
    },
    /// Neither NATS nor the HTTP endpoints are configured.
    #[error(
        "nats_url and http_listen are both unset: set at least one so the worker serves requests"
    )]
    NothingToServe,
}

impl WorkerConfig {
    /// Reads the file at `path` (if any) and the environment through `env`, then validates,
    /// as the worker binary does: besides [`WorkerConfig::from_appconf`]'s checks, at least one
    /// of `nats_url` and `http_listen` must be set.
    ///
    /// `env` is normally `|name| std::env::var(name).ok()`; tests pass a map.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<LoadedConfig, ConfigError> {
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
        let config = WorkerConfig::from_appconf(&conf)?;
        if config.nats.is_none() && config.http_listen.is_none() {
            return Err(ConfigError::NothingToServe);
        }
        let unknown_keys = conf
            .unknown_keys(KNOWN_KEYS)
            .into_iter()
            .map(str::to_owned)
            .collect();
        Ok(LoadedConfig {
            config,
            unknown_keys,
        })
    }

    /// Returns the configuration of `perspective_code` with every other key at its default:
    /// no NATS, no HTTP endpoints, the system's name servers. For checkers run inside another
    /// process, such as the coordinator's in-process perspectives and tests.
    pub fn with_defaults(perspective_code: &str) -> Result<WorkerConfig, ConfigError> {
        // Checked before it goes into the file text, where a line break would add keys.
        if !is_valid_subject_token(perspective_code) {
            return Err(invalid_perspective_code(perspective_code));
        }
        let conf = AppConf::parse(&format!("perspective_code={perspective_code}"))?;
        WorkerConfig::from_appconf(&conf)
    }

    /// Turns loaded settings into a validated configuration. Unlike [`WorkerConfig::load`], it
    /// accepts a configuration that serves neither NATS nor HTTP, for checkers embedded in
    /// another process.
    pub fn from_appconf(conf: &AppConf) -> Result<WorkerConfig, ConfigError> {
        let perspective_code = perspective_code(conf)?;
        let subject_prefix = subject_prefix(conf)?;
        let nats_tls = nats_tls_from(conf)?;
        let nats = nats_config(conf, &nats_tls)?;
        let http_listen = conf.parse_value::<SocketAddr>("http_listen")?;
        let reply_signing = conf
            .get("reply_signing_key_file")
            .map(|file| ReplySigningKey::from_file(Path::new(file), &perspective_code))
            .transpose()?;

        let resolver = ResolverSettings {
            name_servers: name_servers(conf)?,
            query_timeout: seconds(conf, "dns_timeout_seconds", DEFAULT_QUERY_TIMEOUT)?,
            resolution_lifetime: seconds(
                conf,
                "dns_resolution_lifetime_seconds",
                DEFAULT_RESOLUTION_LIFETIME,
            )?,
            attempts: DEFAULT_ATTEMPTS,
        };
        let http_client_timeout = seconds(
            conf,
            "http_client_timeout_seconds",
            DEFAULT_HTTP_CLIENT_TIMEOUT,
        )?;
        let check_timeout = check_timeout(conf, &resolver, http_client_timeout)?;

        let tls_verification = match conf.parse_bool("verify_ssl")? {
            Some(false) => TlsVerification::AcceptAnyCertificate,
            Some(true) | None => TlsVerification::VerifyCertificates,
        };
        let address_policy = match conf.parse_bool("allow_non_public_addresses")? {
            Some(true) => AddressPolicy::AllowNonPublic,
            Some(false) | None => AddressPolicy::PublicOnly,
        };

        Ok(WorkerConfig {
            perspective_code,
            subject_prefix,
            nats,
            nats_tls,
            reply_signing,
            http_listen,
            default_caa_domains: default_caa_domains(conf)?,
            resolver,
            tls_verification,
            http_client_timeout,
            check_timeout,
            max_checks_in_flight: max_checks_in_flight(conf)?,
            address_policy,
            challenge_ports: ChallengePorts {
                http: port(conf, "http_port", DEFAULT_HTTP_PORT)?,
                https: port(conf, "https_port", DEFAULT_HTTPS_PORT)?,
                tls_alpn: port(conf, "tls_alpn_port", DEFAULT_TLS_ALPN_PORT)?,
            },
            log_format: log_format(conf)?,
            log_level: log_level(conf)?,
        })
    }

    /// Lists the challenge ports that differ from the protocols' ports.
    pub fn port_overrides(&self) -> Vec<PortOverride> {
        let ports = self.challenge_ports;
        [
            ("http_port", ports.http, DEFAULT_HTTP_PORT, "RFC 8555 §8.3"),
            (
                "https_port",
                ports.https,
                DEFAULT_HTTPS_PORT,
                "RFC 2818 §2.3",
            ),
            (
                "tls_alpn_port",
                ports.tls_alpn,
                DEFAULT_TLS_ALPN_PORT,
                "RFC 8737 §3",
            ),
        ]
        .into_iter()
        .filter(|(_, port, standard_port, _)| port != standard_port)
        .map(|(key, port, standard_port, citation)| PortOverride {
            key,
            port,
            standard_port,
            citation,
        })
        .collect()
    }

    /// Lists the NATS servers, passwords redacted, that the worker reaches over a network
    /// without requiring TLS: `nats://` URLs of hosts other than loopback while no
    /// `nats_tls_*` key is set. The startup log warns about each, because messages between the
    /// coordinator and a perspective must be authenticated and encrypted (BR §3.2.2.9).
    pub fn nats_servers_without_tls(&self) -> Vec<String> {
        let Some(nats) = &self.nats else {
            return Vec::new();
        };
        if self.nats_tls.requires_tls() {
            return Vec::new();
        }
        nats.servers
            .iter()
            .filter(|url| match url.parse::<async_nats::ServerAddr>() {
                Ok(address) => !address.tls_required() && !is_loopback_host(address.host()),
                // Validation parsed every URL, so this branch is not reached. A URL that fails
                // to parse would count as unprotected.
                Err(_) => true,
            })
            .map(|url| redact_url(url))
            .collect()
    }

    /// Returns the configuration keyed by configuration key, with secrets redacted, for the
    /// startup log and `GET /configz`.
    pub fn effective(&self) -> EffectiveConfig {
        let (nats_url, nats_auth) = match &self.nats {
            Some(nats) => (Some(nats.redacted_servers()), nats.auth.kind()),
            None => (None, "none"),
        };
        let auth = self.nats.as_ref().map(|nats| &nats.auth);
        let nats_nkey_seed_file = match auth {
            Some(NatsAuth::NkeySeed { seed_file, .. }) => Some(path_text(seed_file)),
            _ => None,
        };
        let nats_creds_file = match auth {
            Some(NatsAuth::CredentialsFile(file)) => Some(path_text(file)),
            _ => None,
        };
        let client_certificate = self.nats_tls.client_certificate.as_ref();
        let nameservers = match &self.resolver.name_servers {
            NameServers::System => vec![SYSTEM_NAME_SERVERS.to_owned()],
            NameServers::Configured(addresses) => {
                addresses.iter().map(ToString::to_string).collect()
            }
        };
        EffectiveConfig {
            perspective_code: self.perspective_code.clone(),
            subject_prefix: self.subject_prefix.clone(),
            nats_url,
            nats_auth,
            nats_nkey_seed_file,
            nats_creds_file,
            nats_tls_ca_file: self.nats_tls.ca_file.as_deref().map(path_text),
            nats_tls_cert_file: client_certificate.map(|client| path_text(&client.cert_file)),
            nats_tls_key_file: client_certificate.map(|client| path_text(&client.key_file)),
            reply_signing_key_file: self.reply_signing.as_ref().map(|key| path_text(key.file())),
            reply_signing_public_key: self.reply_signing.as_ref().map(ReplySigningKey::public_key),
            http_listen: self.http_listen.map(|address| address.to_string()),
            default_caa_domains: self.default_caa_domains.clone(),
            nameservers,
            dns_timeout_seconds: self.resolver.query_timeout.as_secs_f64(),
            dns_resolution_lifetime_seconds: self.resolver.resolution_lifetime.as_secs_f64(),
            verify_ssl: self.tls_verification == TlsVerification::VerifyCertificates,
            http_client_timeout_seconds: self.http_client_timeout.as_secs_f64(),
            check_timeout_seconds: self.check_timeout.as_secs_f64(),
            max_checks_in_flight: self.max_checks_in_flight,
            allow_non_public_addresses: self.address_policy == AddressPolicy::AllowNonPublic,
            http_port: self.challenge_ports.http,
            https_port: self.challenge_ports.https,
            tls_alpn_port: self.challenge_ports.tls_alpn,
            log_format: self.log_format,
            log_level: self.log_level.clone(),
        }
    }
}

/// The effective configuration as `GET /configz` returns it and the startup log writes it:
/// one field per configuration key, durations in seconds, no secret values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectiveConfig {
    /// `perspective_code`.
    pub perspective_code: String,
    /// `subject_prefix`.
    pub subject_prefix: String,
    /// `nats_url`, with any password in the URLs replaced by `[redacted]`.
    pub nats_url: Option<Vec<String>>,
    /// Kind of NATS credentials: `none`, `user_password`, `token`, `nkey_seed` or
    /// `credentials_file`. The credentials themselves are left out.
    pub nats_auth: &'static str,
    /// `nats_nkey_seed_file`: the path only.
    pub nats_nkey_seed_file: Option<String>,
    /// `nats_creds_file` or its alias `nats_credentials_file`: the path only.
    pub nats_creds_file: Option<String>,
    /// `nats_tls_ca_file`.
    pub nats_tls_ca_file: Option<String>,
    /// `nats_tls_cert_file`.
    pub nats_tls_cert_file: Option<String>,
    /// `nats_tls_key_file`: the path only.
    pub nats_tls_key_file: Option<String>,
    /// `reply_signing_key_file`: the path only.
    pub reply_signing_key_file: Option<String>,
    /// The public key of `reply_signing_key_file`: base64 of its SubjectPublicKeyInfo, the
    /// line between the PEM markers that `openssl pkey -pubout` writes. The coordinator must
    /// have this key for the perspective.
    pub reply_signing_public_key: Option<String>,
    /// `http_listen`.
    pub http_listen: Option<String>,
    /// `default_caa_domains`.
    pub default_caa_domains: Vec<String>,
    /// `nameservers`, or `system (/etc/resolv.conf)`.
    pub nameservers: Vec<String>,
    /// `dns_timeout_seconds`.
    pub dns_timeout_seconds: f64,
    /// `dns_resolution_lifetime_seconds`.
    pub dns_resolution_lifetime_seconds: f64,
    /// `verify_ssl`.
    pub verify_ssl: bool,
    /// `http_client_timeout_seconds`.
    pub http_client_timeout_seconds: f64,
    /// `check_timeout_seconds`.
    pub check_timeout_seconds: f64,
    /// `max_checks_in_flight`.
    pub max_checks_in_flight: usize,
    /// `allow_non_public_addresses`.
    pub allow_non_public_addresses: bool,
    /// `http_port`.
    pub http_port: u16,
    /// `https_port`.
    pub https_port: u16,
    /// `tls_alpn_port`.
    pub tls_alpn_port: u16,
    /// `log_format`.
    pub log_format: LogFormat,
    /// `log_level`.
    pub log_level: String,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

fn perspective_code(conf: &AppConf) -> Result<String, ConfigError> {
    let code = match aliased_setting(conf, "perspective_code", "code")? {
        Some((_, code)) => code,
        None => conf.require("perspective_code")?,
    };
    if !is_valid_subject_token(code) {
        return Err(invalid_perspective_code(code));
    }
    Ok(code.to_owned())
}

/// Returns the key that supplies a setting spelled two ways, and its value. When both
/// spellings are set to different values, the one from the environment wins over the file,
/// as it does for every other key. Two different values from the same source are an error.
fn aliased_setting<'a>(
    conf: &'a AppConf,
    key: &'static str,
    alias: &'static str,
) -> Result<Option<(&'static str, &'a str)>, ConfigError> {
    match (conf.setting(key), conf.setting(alias)) {
        (Some(setting), Some(alias_setting)) if setting.value != alias_setting.value => {
            match (&setting.source, &alias_setting.source) {
                (SettingSource::Environment { .. }, SettingSource::File { .. }) => {
                    Ok(Some((key, &setting.value)))
                }
                (SettingSource::File { .. }, SettingSource::Environment { .. }) => {
                    Ok(Some((alias, &alias_setting.value)))
                }
                _ => Err(invalid(
                    key,
                    format!(
                        "{:?} differs from {alias} {:?}; set only one of the two keys",
                        setting.value, alias_setting.value
                    ),
                )),
            }
        }
        (Some(setting), _) => Ok(Some((key, &setting.value))),
        (None, Some(alias_setting)) => Ok(Some((alias, &alias_setting.value))),
        (None, None) => Ok(None),
    }
}

fn invalid_perspective_code(code: &str) -> ConfigError {
    invalid(
        "perspective_code",
        format!("{code:?} is not a valid subject token: use ASCII letters, digits, '-' and '_'"),
    )
}

fn subject_prefix(conf: &AppConf) -> Result<String, ConfigError> {
    let prefix = conf.get("subject_prefix").unwrap_or(DEFAULT_SUBJECT_PREFIX);
    if !is_valid_subject_prefix(prefix) {
        return Err(invalid(
            "subject_prefix",
            format!(
                "{prefix:?} is not a valid subject prefix: use dot-separated tokens of ASCII \
                 letters, digits, '-' and '_'"
            ),
        ));
    }
    Ok(prefix.to_owned())
}

fn read_setting_text(key: &'static str, file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|source| ConfigError::ReadSettingFile {
        key,
        path: file.to_owned(),
        source,
    })
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

fn default_caa_domains(conf: &AppConf) -> Result<Vec<String>, ConfigError> {
    let Some(list) = conf.get("default_caa_domains") else {
        return Ok(Vec::new());
    };
    let mut domains: Vec<String> = Vec::new();
    for entry in list
        .split('|')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let name = match Target::parse(entry) {
            Ok(Target::Domain(domain)) if !domain.wildcard => domain.name,
            Ok(_) => {
                return Err(invalid(
                    "default_caa_domains",
                    format!("{entry:?} is not an issuer domain name (RFC 8659 §4.2)"),
                ));
            }
            Err(error) => return Err(invalid("default_caa_domains", error.to_string())),
        };
        if !domains.contains(&name) {
            domains.push(name);
        }
    }
    Ok(domains)
}

fn name_servers(conf: &AppConf) -> Result<NameServers, ConfigError> {
    let Some(list) = conf.get("nameservers") else {
        return Ok(NameServers::System);
    };
    let mut addresses = Vec::new();
    for entry in list
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let address = match entry.parse::<SocketAddr>() {
            Ok(address) => address,
            Err(_) => match entry.parse::<IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, DNS_PORT),
                Err(_) => {
                    return Err(invalid(
                        "nameservers",
                        format!(
                            "{entry:?} is not an IP address with an optional port \
                             (192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:5353)"
                        ),
                    ));
                }
            },
        };
        if address.port() == 0 {
            return Err(invalid("nameservers", format!("{entry:?} has port 0")));
        }
        addresses.push(address);
    }
    if addresses.is_empty() {
        return Err(invalid(
            "nameservers",
            "lists no address; remove the key to use /etc/resolv.conf",
        ));
    }
    Ok(NameServers::Configured(addresses))
}

fn seconds(conf: &AppConf, key: &'static str, default: Duration) -> Result<Duration, ConfigError> {
    let Some(value) = conf.parse_value::<f64>(key)? else {
        return Ok(default);
    };
    if value.is_nan() || value <= 0.0 {
        return Err(invalid(
            key,
            format!("{value} is not a positive number of seconds"),
        ));
    }
    if value > MAX_SECONDS {
        return Err(invalid(
            key,
            format!("{value} seconds is longer than the maximum of {MAX_SECONDS}"),
        ));
    }
    Ok(Duration::from_secs_f64(value))
}

fn check_timeout(
    conf: &AppConf,
    resolver: &ResolverSettings,
    http_client_timeout: Duration,
) -> Result<Duration, ConfigError> {
    let derived = http_client_timeout + resolver.resolution_lifetime + CHECK_TIMEOUT_MARGIN;
    let timeout = seconds(conf, "check_timeout_seconds", derived)?;
    for (key, limit) in [
        ("http_client_timeout_seconds", http_client_timeout),
        (
            "dns_resolution_lifetime_seconds",
            resolver.resolution_lifetime,
        ),
    ] {
        if timeout < limit {
            return Err(invalid(
                "check_timeout_seconds",
                format!(
                    "{} seconds is shorter than {key} ({} seconds), so checks would time out \
                     before their own limit could report the cause",
                    timeout.as_secs_f64(),
                    limit.as_secs_f64()
                ),
            ));
        }
    }
    Ok(timeout)
}

fn max_checks_in_flight(conf: &AppConf) -> Result<usize, ConfigError> {
    let Some(count) = conf.parse_value::<usize>("max_checks_in_flight")? else {
        return Ok(DEFAULT_MAX_CHECKS_IN_FLIGHT);
    };
    if count == 0 {
        return Err(invalid(
            "max_checks_in_flight",
            "0 would never run a check; use 1 or more",
        ));
    }
    // tokio's semaphore holds at most `usize::MAX >> 3` permits.
    if count > MAX_CHECKS_IN_FLIGHT_LIMIT {
        return Err(invalid(
            "max_checks_in_flight",
            format!("{count} is above the maximum of {MAX_CHECKS_IN_FLIGHT_LIMIT}"),
        ));
    }
    Ok(count)
}

fn port(conf: &AppConf, key: &'static str, default: u16) -> Result<u16, ConfigError> {
    match conf.parse_value::<u16>(key)? {
        None => Ok(default),
        Some(0) => Err(invalid(key, "0 is not a port a server can listen on")),
        Some(port) => Ok(port),
    }
}

fn log_format(conf: &AppConf) -> Result<LogFormat, ConfigError> {
    match conf
        .get("log_format")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(invalid(
            "log_format",
            format!("{other:?} is not a log format: use text or json"),
        )),
    }
}

fn log_level(conf: &AppConf) -> Result<String, ConfigError> {
    let Some(directives) = conf.get("log_level") else {
        return Ok(DEFAULT_LOG_LEVEL.to_owned());
    };
    // The Python checkers take level names in upper case; tracing matches them in any case.
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(directives) {
        return Err(invalid(
            "log_level",
            format!("{directives:?} is not a level or tracing filter: {error}"),
        ));
    }
    Ok(directives.to_owned())
}

/// Every key the worker reads. Keys outside this list produce a warning.
pub const KNOWN_KEYS: &[&str] = &[
    "perspective_code",
    "code",
    "subject_prefix",
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
    "reply_signing_key_file",
    "http_listen",
    "default_caa_domains",
    "nameservers",
    "dns_timeout_seconds",
    "dns_resolution_lifetime_seconds",
    "verify_ssl",
    "http_client_timeout_seconds",
    "check_timeout_seconds",
    "max_checks_in_flight",
    "allow_non_public_addresses",
    "http_port",
    "https_port",
    "tls_alpn_port",
    "log_format",
    "log_level",
];

/// Default of [`WorkerConfig::http_client_timeout`], as in the Python DCV service. Its library's
/// default of 300 seconds would let one unresponsive challenge server keep a check slot busy
/// for five minutes, far beyond any coordinator's wait for a perspective.
pub const DEFAULT_HTTP_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Added to the checks' own time limits to form the default [`WorkerConfig::check_timeout`],
/// so that a check's limit fires and reports its cause before the whole-check deadline does.
pub const CHECK_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// Default of [`WorkerConfig::max_checks_in_flight`]. Checks mostly wait on remote servers, so
/// many can run at once. Each uses a few sockets (UDP and TCP per name server, one HTTP or TLS
/// connection), and 64 checks keep that well under the common soft limit of 1024 open files.
pub const DEFAULT_MAX_CHECKS_IN_FLIGHT: usize = 64;

/// Upper bound of [`WorkerConfig::max_checks_in_flight`]; tokio's semaphore holds at most
/// `usize::MAX >> 3` permits, and far fewer sockets are available anyway.
const MAX_CHECKS_IN_FLIGHT_LIMIT: usize = 1 << 20;

/// Default of `http_port`: acme-http-01 fetches `http://` URLs without a port (RFC 8555 §8.3).
pub const DEFAULT_HTTP_PORT: u16 = crate::fetch::HTTP_PORT;

/// Default of `https_port`: the `https` port (RFC 2818 §2.3).
pub const DEFAULT_HTTPS_PORT: u16 = crate::fetch::HTTPS_PORT;

/// Default of `tls_alpn_port`: acme-tls-alpn-01 handshakes use port 443 (RFC 8737 §3).
pub const DEFAULT_TLS_ALPN_PORT: u16 = crate::checks::tls_alpn::ACME_TLS_ALPN_PORT;

/// Default of [`WorkerConfig::log_level`].
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// The DNS port (RFC 1035 §4.2), used for a `nameservers` entry without one.
const DNS_PORT: u16 = 53;

/// Maximum of every `*_seconds` key: one day. Longer values are typing mistakes.
const MAX_SECONDS: f64 = 86_400.0;

const SYSTEM_NAME_SERVERS: &str = "system (/etc/resolv.conf)";

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<WorkerConfig, ConfigError> {
        let conf = AppConf::parse(text).expect("test file is KEY=VALUE");
        WorkerConfig::from_appconf(&conf)
    }

    fn error_message(text: &str) -> String {
        match load(text) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    const MINIMAL: &str = "perspective_code=us-east-1\nnats_url=nats://127.0.0.1:4222\n";

    #[test]
    fn minimal_file_takes_defaults() {
        let config = load(MINIMAL).expect("minimal file is valid");
        assert_eq!(config.perspective_code, "us-east-1");
        assert_eq!(config.subject_prefix, "mpic");
        assert_eq!(
            config.nats,
            Some(NatsConfig {
                servers: vec!["nats://127.0.0.1:4222".to_owned()],
                auth: NatsAuth::None,
            })
        );
        assert_eq!(config.http_listen, None);
        assert!(config.default_caa_domains.is_empty());
        assert_eq!(config.resolver, ResolverSettings::default());
        assert_eq!(config.tls_verification, TlsVerification::VerifyCertificates);
        assert_eq!(config.http_client_timeout, Duration::from_secs(30));
        assert_eq!(config.check_timeout, Duration::from_secs(40));
        assert_eq!(config.max_checks_in_flight, 64);
        assert_eq!(config.address_policy, AddressPolicy::PublicOnly);
        assert_eq!(
            config.challenge_ports,
            ChallengePorts {
                http: 80,
                https: 443,
                tls_alpn: 443
            }
        );
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.log_level, "info");
        assert!(config.port_overrides().is_empty());
    }

    #[test]
    fn seed_checker_files_are_accepted() {
        let cases = [
            (
                "kubernetes CAA checker",
                "      code=\"mordor-east-1\"\n      default_caa_domains=\"example.com|example.org\"\n",
            ),
            (
                "compose DCV checker",
                "code=\"test1\"\nverify_ssl=False\nhttp_client_timeout_seconds=5\n",
            ),
        ];
        for (name, text) in cases {
            let text = format!("{text}http_listen=127.0.0.1:8080\n");
            let config = load(&text).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert!(
                is_valid_subject_token(&config.perspective_code),
                "{name}: perspective code"
            );
        }
        let config = load(
            "code=x\nhttp_listen=127.0.0.1:80\nverify_ssl=False\nhttp_client_timeout_seconds=5\n\
             default_caa_domains=\"Example.COM|example.org|example.com.\"",
        )
        .expect("seed keys are valid");
        assert_eq!(
            config.tls_verification,
            TlsVerification::AcceptAnyCertificate
        );
        assert_eq!(config.http_client_timeout, Duration::from_secs(5));
        assert_eq!(config.check_timeout, Duration::from_secs(15));
        assert_eq!(config.default_caa_domains, ["example.com", "example.org"]);
    }

    #[test]
    fn valid_values_parse() {
        struct Case {
            name: &'static str,
            line: &'static str,
            check: fn(&WorkerConfig) -> bool,
        }
        let cases = [
            Case {
                name: "fractional DNS timeout",
                line: "dns_timeout_seconds=0.5",
                check: |c| c.resolver.query_timeout == Duration::from_millis(500),
            },
            Case {
                name: "explicit check timeout",
                line: "check_timeout_seconds=31",
                check: |c| c.check_timeout == Duration::from_secs(31),
            },
            Case {
                name: "name servers with and without port",
                line: "nameservers=127.0.0.1:5353, ::1 ,[::1]:5300,192.0.2.1",
                check: |c| {
                    c.resolver.name_servers
                        == NameServers::Configured(vec![
                            "127.0.0.1:5353".parse().unwrap(),
                            "[::1]:53".parse().unwrap(),
                            "[::1]:5300".parse().unwrap(),
                            "192.0.2.1:53".parse().unwrap(),
                        ])
                },
            },
            Case {
                name: "json logs",
                line: "log_format=JSON",
                check: |c| c.log_format == LogFormat::Json,
            },
            Case {
                name: "upper-case Python log level",
                line: "log_level=DEBUG",
                check: |c| c.log_level == "DEBUG",
            },
            Case {
                name: "non-public addresses allowed",
                line: "allow_non_public_addresses=true",
                check: |c| c.address_policy == AddressPolicy::AllowNonPublic,
            },
            Case {
                name: "multi-token subject prefix",
                line: "subject_prefix=ca1.mpic",
                check: |c| c.subject_prefix == "ca1.mpic",
            },
            Case {
                name: "HTTP endpoints",
                line: "http_listen=[::1]:8080",
                check: |c| c.http_listen == Some("[::1]:8080".parse().unwrap()),
            },
            Case {
                name: "in-flight bound",
                line: "max_checks_in_flight=1",
                check: |c| c.max_checks_in_flight == 1,
            },
            Case {
                name: "user and password",
                line: "nats_user=worker\nnats_password=s3cret",
                check: |c| {
                    c.nats.as_ref().map(|nats| &nats.auth)
                        == Some(&NatsAuth::UserPassword {
                            user: "worker".to_owned(),
                            password: Secret::new("s3cret"),
                        })
                },
            },
            Case {
                name: "several NATS servers",
                line: "nats_url=nats://127.0.0.1:4222, tls://127.0.0.1:4223",
                check: |c| c.nats.as_ref().map(|nats| nats.servers.len()) == Some(2),
            },
        ];
        for case in cases {
            let config = load(&format!("{MINIMAL}{}\n", case.line))
                .unwrap_or_else(|error| panic!("{}: rejected: {error}", case.name));
            assert!(
                (case.check)(&config),
                "{}: unexpected {config:?}",
                case.name
            );
        }
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases = [
            (
                "dotted perspective code",
                "perspective_code=eu.west",
                "perspective_code: \"eu.west\" is not a valid subject token",
            ),
            (
                "code and perspective_code disagree",
                "code=a\nperspective_code=b",
                "perspective_code: \"b\" differs from code \"a\"",
            ),
            (
                "subject prefix with wildcard",
                "subject_prefix=mpic.*",
                "subject_prefix: \"mpic.*\" is not a valid subject prefix",
            ),
            (
                "bad NATS scheme",
                "nats_url=http://127.0.0.1:4222",
                "nats_url: http://127.0.0.1:4222 is not a NATS server URL",
            ),
            (
                "NATS URL password is not echoed",
                "nats_url=http://worker:hunter2@127.0.0.1:4222",
                "nats_url: http://worker:[redacted]@127.0.0.1:4222 is not a NATS server URL",
            ),
            (
                "user without password",
                "nats_user=worker",
                "nats_password: missing, but nats_user is set",
            ),
            (
                "token and credentials file",
                "nats_token=t\nnats_credentials_file=/x.creds",
                "nats_token: nats_credentials_file is also set; set only one kind",
            ),
            (
                "user and NKey seed",
                "nats_user=u\nnats_password=p\nnats_nkey_seed_file=/x.nk",
                "nats_user: nats_nkey_seed_file is also set; set only one kind",
            ),
            (
                "NKey seed and credentials file",
                "nats_nkey_seed_file=/x.nk\nnats_creds_file=/x.creds",
                "nats_nkey_seed_file: nats_creds_file is also set; set only one kind",
            ),
            (
                "both spellings of the credentials file differ",
                "nats_creds_file=/a.creds\nnats_credentials_file=/b.creds",
                "nats_creds_file: \"/a.creds\" differs from nats_credentials_file \"/b.creds\"",
            ),
            (
                "missing credentials file",
                "nats_creds_file=/nonexistent/worker.creds",
                "nats_creds_file: failed to read /nonexistent/worker.creds",
            ),
            (
                "missing NKey seed file",
                "nats_nkey_seed_file=/nonexistent/worker.nk",
                "nats_nkey_seed_file: failed to read /nonexistent/worker.nk",
            ),
            (
                "client certificate without key",
                "nats_tls_cert_file=/nonexistent/tls.pem",
                "nats_tls_key_file: missing, but nats_tls_cert_file is set",
            ),
            (
                "client key without certificate",
                "nats_tls_key_file=/nonexistent/tls.key",
                "nats_tls_cert_file: missing, but nats_tls_key_file is set",
            ),
            (
                "missing CA file",
                "nats_tls_ca_file=/nonexistent/ca.pem",
                "nats_tls_ca_file: failed to read /nonexistent/ca.pem",
            ),
            (
                "missing reply signing key",
                "reply_signing_key_file=/nonexistent/reply-signing.key",
                "reply_signing_key_file: failed to read /nonexistent/reply-signing.key",
            ),
            (
                "WebSocket URL",
                "nats_url=wss://127.0.0.1:443",
                "nats_url: wss://127.0.0.1:443: WebSocket URLs are not supported",
            ),
            (
                "zero DNS timeout",
                "dns_timeout_seconds=0",
                "dns_timeout_seconds: 0 is not a positive number of seconds",
            ),
            (
                "NaN timeout",
                "http_client_timeout_seconds=NaN",
                "http_client_timeout_seconds: NaN is not a positive number of seconds",
            ),
            (
                "timeout of years",
                "dns_resolution_lifetime_seconds=1e9",
                "dns_resolution_lifetime_seconds: 1000000000 seconds is longer than the maximum",
            ),
            (
                "non-numeric timeout",
                "dns_timeout_seconds=two",
                "dns_timeout_seconds: invalid value \"two\"",
            ),
            (
                "check timeout shorter than HTTP timeout",
                "check_timeout_seconds=10",
                "check_timeout_seconds: 10 seconds is shorter than http_client_timeout_seconds",
            ),
            (
                "zero in-flight bound",
                "max_checks_in_flight=0",
                "max_checks_in_flight: 0 would never run a check",
            ),
            (
                "negative in-flight bound",
                "max_checks_in_flight=-1",
                "max_checks_in_flight: invalid value \"-1\"",
            ),
            (
                "name server host name",
                "nameservers=dns.example",
                "nameservers: \"dns.example\" is not an IP address",
            ),
            (
                "empty name server list",
                "nameservers= , ",
                "nameservers: lists no address",
            ),
            ("port zero", "http_port=0", "http_port: 0 is not a port"),
            (
                "port out of range",
                "tls_alpn_port=65536",
                "tls_alpn_port: invalid value \"65536\"",
            ),
            (
                "wildcard issuer domain",
                "default_caa_domains=*.ca.example",
                "default_caa_domains: \"*.ca.example\" is not an issuer domain name",
            ),
            (
                "IP issuer domain",
                "default_caa_domains=ca.example|192.0.2.1",
                "default_caa_domains: \"192.0.2.1\" is not an issuer domain name",
            ),
            (
                "unknown log format",
                "log_format=xml",
                "log_format: \"xml\" is not a log format",
            ),
            (
                "bad log filter",
                "log_level=info,[",
                "log_level: \"info,[\" is not a level or tracing filter",
            ),
            (
                "non-boolean verify_ssl",
                "verify_ssl=maybe",
                "verify_ssl: invalid value \"maybe\"",
            ),
            (
                "bad listen address",
                "http_listen=localhost:80",
                "http_listen: invalid value \"localhost:80\"",
            ),
        ];
        for (name, line, expected) in cases {
            // Later lines replace the minimal file's values.
            let message = error_message(&format!("{MINIMAL}{line}\n"));
            assert!(
                message.starts_with(expected),
                "{name}: expected a message starting with {expected:?}, got {message:?}"
            );
        }
    }

    #[test]
    fn environment_overrides_file() {
        let directory =
            std::env::temp_dir().join(format!("mpic-worker-config-{}", std::process::id()));
        std::fs::create_dir_all(&directory).expect("create temporary directory");
        let path = directory.join("app.conf");
        std::fs::write(
            &path,
            "perspective_code=us-east-1\nhttp_listen=127.0.0.1:8080\nuvicorn_server_timeout_keep_alive=5\n",
        )
        .expect("write test file");

        let env = |name: &str| match name {
            "PERSPECTIVE_CODE" => Some("eu-west-1".to_owned()),
            "max_checks_in_flight" => Some("8".to_owned()),
            _ => None,
        };
        let loaded = WorkerConfig::load(Some(&path), env).expect("configuration loads");
        std::fs::remove_dir_all(&directory).expect("remove temporary directory");

        assert_eq!(loaded.config.perspective_code, "eu-west-1");
        assert_eq!(loaded.config.max_checks_in_flight, 8);
        assert_eq!(loaded.unknown_keys, ["uvicorn_server_timeout_keep_alive"]);
    }

    #[test]
    fn environment_overrides_code_alias() {
        let cases = [
            (
                "file code, environment perspective_code",
                "code=test1",
                "PERSPECTIVE_CODE",
                "eu-west-1",
            ),
            (
                "file perspective_code, environment code",
                "perspective_code=test1",
                "CODE",
                "eu-west-1",
            ),
            ("both in the environment, equal", "", "CODE", "eu-west-1"),
        ];
        for (name, file_line, variable, expected) in cases {
            let text = format!("{file_line}\nhttp_listen=127.0.0.1:8080\n");
            let env = |key: &str| {
                let both = name.starts_with("both") && key == "PERSPECTIVE_CODE";
                (key == variable || both).then(|| expected.to_owned())
            };
            let conf = AppConf::load(Some(&text), KNOWN_KEYS, env).expect("file parses");
            let config = WorkerConfig::from_appconf(&conf)
                .unwrap_or_else(|error| panic!("{name}: rejected: {error}"));
            assert_eq!(config.perspective_code, expected, "{name}");
        }
    }

    #[test]
    fn missing_perspective_code_is_named() {
        let message = error_message("http_listen=127.0.0.1:80\n");
        assert!(
            message.starts_with("perspective_code: missing"),
            "unexpected message: {message}"
        );
    }

    #[test]
    fn load_requires_a_transport() {
        let env = |name: &str| (name == "PERSPECTIVE_CODE").then(|| "us-east-1".to_owned());
        let error = WorkerConfig::load(None, env).expect_err("nothing to serve");
        assert!(
            matches!(error, ConfigError::NothingToServe),
            "unexpected error: {error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("nats_url and http_listen are both unset"),
            "unexpected message: {error}"
        );
    }

    #[test]
    fn with_defaults_serves_nothing() {
        let config = WorkerConfig::with_defaults("us-east-1").expect("valid code");
        assert_eq!(config.perspective_code, "us-east-1");
        assert_eq!(config.nats, None);
        assert_eq!(config.http_listen, None);
        assert_eq!(config.check_timeout, Duration::from_secs(40));

        for code in ["eu.west", "a\nnats_url=nats://127.0.0.1", ""] {
            let error = WorkerConfig::with_defaults(code).expect_err(code);
            assert!(
                error.to_string().starts_with("perspective_code: "),
                "code {code:?}: unexpected message {error}"
            );
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let path = Path::new("/nonexistent/mpic-worker/app.conf");
        let error = WorkerConfig::load(Some(path), |_| None).expect_err("file is missing");
        assert!(
            error.to_string().starts_with(
                "failed to read the configuration file /nonexistent/mpic-worker/app.conf"
            ),
            "unexpected message: {error}"
        );
    }

    #[test]
    fn port_overrides_are_listed() {
        let config = load(&format!("{MINIMAL}http_port=8080\ntls_alpn_port=8443\n"))
            .expect("ports are valid");
        let keys: Vec<_> = config
            .port_overrides()
            .iter()
            .map(|port_override| {
                (
                    port_override.key,
                    port_override.port,
                    port_override.standard_port,
                )
            })
            .collect();
        assert_eq!(
            keys,
            [("http_port", 8080, 80), ("tls_alpn_port", 8443, 443)]
        );
    }

    #[test]
    fn effective_config_redacts_secrets() {
        let cases = [
            (
                "password in key",
                "nats_user=worker\nnats_password=hunter2\n",
                "user_password",
            ),
            ("token in key", "nats_token=hunter2\n", "token"),
            (
                "password in URL",
                "nats_url=nats://worker:hunter2@127.0.0.1:4222\n",
                "none",
            ),
            (
                "token in URL",
                "nats_url=nats://hunter2@127.0.0.1:4222/\n",
                "none",
            ),
        ];
        for (name, lines, auth) in cases {
            let config = load(&format!("{MINIMAL}{lines}")).unwrap_or_else(|error| {
                panic!("{name}: rejected: {error}");
            });
            let effective = config.effective();
            let json = serde_json::to_string(&effective).expect("serializes");
            let debug = format!("{config:?}");
            assert!(!json.contains("hunter2"), "{name}: secret in JSON {json}");
            assert!(
                !debug.contains("hunter2"),
                "{name}: secret in Debug {debug}"
            );
            assert_eq!(effective.nats_auth, auth, "{name}: auth kind");
        }
    }

    #[test]
    fn effective_config_uses_key_names() {
        let config = load(MINIMAL).expect("minimal file is valid");
        let json = serde_json::to_value(config.effective()).expect("serializes");
        let object = json.as_object().expect("an object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut expected: Vec<&str> = KNOWN_KEYS
            .iter()
            .copied()
            .filter(|key| {
                ![
                    "code",
                    "nats_user",
                    "nats_password",
                    "nats_token",
                    "nats_credentials_file",
                ]
                .contains(key)
            })
            .chain(["nats_auth", "reply_signing_public_key"])
            .collect();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(object["dns_timeout_seconds"], 2.0);
        assert_eq!(object["nameservers"][0], "system (/etc/resolv.conf)");
    }

    #[test]
    fn servers_without_tls_are_listed() {
        let cases: [(&str, &str, &[&str]); 6] = [
            ("IPv4 loopback", "nats://127.0.0.1:4222", &[]),
            ("IPv6 loopback", "nats://[::1]:4222", &[]),
            ("localhost", "nats://LOCALHOST:4222", &[]),
            ("tls scheme", "tls://nats.example:4222", &[]),
            (
                "remote host, password redacted",
                "nats://worker:hunter2@nats.example:4222",
                &["nats://worker:[redacted]@nats.example:4222"],
            ),
            (
                "only the remote one of two",
                "nats://127.0.0.1:4222,nats://192.0.2.10:4222",
                &["nats://192.0.2.10:4222"],
            ),
        ];
        for (name, urls, expected) in cases {
            let mut config = load(&format!("{MINIMAL}nats_url={urls}\n"))
                .unwrap_or_else(|error| panic!("{name}: rejected: {error}"));
            assert_eq!(config.nats_servers_without_tls(), expected, "{name}");

            config.nats_tls.ca_file = Some(PathBuf::from("/etc/mpic/ca.pem"));
            assert!(
                config.nats_servers_without_tls().is_empty(),
                "{name}: listed although TLS is required"
            );
        }
    }
}
