//! The NATS keys of the coordinator's configuration: servers, credentials and TLS.
//!
//! The keys and their meaning are the worker's, so one deployment writes both alike. The
//! credentials and TLS keys are read by the worker crate's
//! [`nats_auth_from`](mpic_worker::config::nats_auth_from) and
//! [`nats_tls_from`](mpic_worker::config::nats_tls_from), which parse the files they name at
//! startup, so a missing or malformed file stops the coordinator with an error naming its key
//! before anything connects. The connection itself is made by the worker crate's
//! [`connect_with_tls`](mpic_worker::service::connect_with_tls). This module adds what only the
//! coordinator needs: `nats_url` is required when a perspective is reached over NATS, and a
//! server reached without TLS is reported.
//!
//! Setting any `nats_tls_*` key makes TLS required: the client then rejects a server that does
//! not offer TLS instead of sending credentials in plain text. BR §3.2.2.9 requires an
//! authenticated and encrypted channel to every remote perspective, so a server reached
//! without required TLS on a non-loopback address is reported as a [`ConfigWarning`].

use std::net::IpAddr;
use std::path::Path;

use mpic_shared::appconf::AppConf;
use mpic_worker::config::{NatsAuth, NatsConfig, NatsTls, nats_auth_from, nats_tls_from};
use reqwest::Url;

use super::{ConfigError, ConfigWarning, redacted_url};

/// Reads the NATS servers, credentials and TLS settings. Servers are required when a
/// perspective uses NATS, and credentials or TLS settings without servers are reported as the
/// mistake they are.
pub(super) fn nats_settings(
    conf: &AppConf,
    uses_nats: bool,
) -> Result<(Option<NatsConfig>, NatsTls), ConfigError> {
    let key = "nats_url";
    let auth = nats_auth_from(conf)?;
    let tls = nats_tls_from(conf)?;
    let Some(value) = conf.get(key).filter(|value| !value.trim().is_empty()) else {
        if uses_nats {
            return Err(ConfigError::Invalid {
                key,
                reason: "missing, but perspectives reached over NATS are deployed; set it to \
                         the NATS server URL, e.g. tls://nats.example:4222"
                    .to_owned(),
            });
        }
        if auth != NatsAuth::None {
            return Err(ConfigError::Invalid {
                key,
                reason: format!("missing, but NATS credentials ({}) are set", auth.kind()),
            });
        }
        if tls.requires_tls() {
            return Err(ConfigError::Invalid {
                key,
                reason: "missing, but nats_tls_* keys are set".to_owned(),
            });
        }
        return Ok((None, tls));
    };

    let mut servers = Vec::new();
    for server in value.split(',').map(str::trim) {
        let redacted_server = || {
            Url::parse(server)
                .map(|url| redacted_url(&url))
                .unwrap_or_else(|_| server.to_owned())
        };
        let address = match server.parse::<async_nats::ServerAddr>() {
            Ok(address) => address,
            Err(error) => {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("{:?} is not a NATS server URL: {error}", redacted_server()),
                });
            }
        };
        // This build of the NATS client has no WebSocket support, so it would dial a ws:// or
        // wss:// URL as plain TCP and skip TLS.
        if address.is_websocket() {
            return Err(ConfigError::Invalid {
                key,
                reason: format!(
                    "{:?}: WebSocket URLs are not supported; use nats:// or tls://",
                    redacted_server()
                ),
            });
        }
        servers.push(server.to_owned());
    }
    Ok((Some(NatsConfig { servers, auth }), tls))
}

/// Returns a warning for each NATS server, password redacted, that the coordinator reaches
/// over a network without requiring TLS: a `nats://` URL whose host is not loopback while no
/// `nats_tls_*` key is set.
pub(super) fn unencrypted_servers(nats: &NatsConfig, tls: &NatsTls) -> Vec<ConfigWarning> {
    if tls.requires_tls() {
        return Vec::new();
    }
    nats.servers
        .iter()
        .zip(nats.redacted_servers())
        .filter(
            |(server, _)| match server.parse::<async_nats::ServerAddr>() {
                Ok(address) => !address.tls_required() && !is_loopback_host(address.host()),
                // Validation parsed every URL; one that fails now is reported as unprotected.
                Err(_) => true,
            },
        )
        .map(|(_, redacted)| ConfigWarning::NatsWithoutTls { server: redacted })
        .collect()
}

/// Reads a file named by `key`, with an error that names the key and the path.
pub(super) fn read_setting_file(key: &'static str, file: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(file).map_err(|source| ConfigError::ReadSettingFile {
        key,
        path: file.to_owned(),
        source,
    })
}

/// Returns whether a NATS server host names this machine: `localhost` or a loopback address.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

#[cfg(test)]
mod tests {
    use mpic_testkit::tls::{CertificateUsage, TestCa};

    use super::*;
    use crate::config::test_files::TempDirectory;

    fn settings(text: &str) -> Result<(Option<NatsConfig>, NatsTls), ConfigError> {
        nats_settings(&AppConf::parse(text).unwrap(), true)
    }

    fn error_of(text: &str) -> String {
        match settings(text) {
            Ok(settings) => panic!("accepted {text:?}: {settings:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn tls_settings_come_with_a_server() {
        let directory = TempDirectory::new();
        let ca = TestCa::new();
        let client = ca.issue_with_usage(&[], CertificateUsage::Client);
        let ca_file = directory.write("ca.pem", ca.cert_pem());
        let cert_file = directory.write("client.pem", client.chain_pem());
        let key_file = directory.write("client.key", client.key_pem());
        let missing = directory.path().join("missing.pem").display().to_string();
        let url = "nats_url=tls://127.0.0.1:4222\n";

        let (nats, tls) = settings(&format!(
            "{url}nats_tls_ca_file={ca_file}\nnats_tls_cert_file={cert_file}\n\
             nats_tls_key_file={key_file}\n"
        ))
        .unwrap();
        assert!(nats.is_some());
        assert!(tls.requires_tls(), "TLS keys make TLS required");
        assert_eq!(tls.ca_file.as_deref(), Some(Path::new(&ca_file)));

        let cases = [
            (
                "missing CA file",
                format!("{url}nats_tls_ca_file={missing}\n"),
                "nats_tls_ca_file: failed to read",
            ),
            (
                "TLS without a server",
                format!("nats_tls_ca_file={ca_file}\n"),
                "nats_url: missing, but perspectives reached over NATS",
            ),
            (
                "WebSocket URL",
                "nats_url=ws://127.0.0.1:8080\n".to_owned(),
                "nats_url: \"ws://127.0.0.1:8080/\": WebSocket URLs are not supported",
            ),
        ];
        for (name, text, expected) in cases {
            let error = error_of(&text);
            assert!(
                error.starts_with(expected),
                "{name}: {error:?} does not start with {expected:?}"
            );
        }
    }

    #[test]
    fn worker_errors_keep_their_cause() {
        let directory = TempDirectory::new();
        let missing = directory.path().join("missing.creds").display().to_string();
        let error = settings(&format!(
            "nats_url=nats://127.0.0.1:4222\nnats_creds_file={missing}\n"
        ))
        .unwrap_err();

        assert!(
            matches!(error, ConfigError::Worker(_)),
            "the worker's error is kept: {error:?}"
        );
        assert!(
            error
                .to_string()
                .starts_with(&format!("nats_creds_file: failed to read {missing}")),
            "the message names the key and the file: {error}"
        );
        let cause = std::error::Error::source(&error);
        assert!(
            cause.is_some_and(|cause| cause.is::<std::io::Error>()),
            "the I/O error is the cause: {error:?}"
        );
    }

    #[test]
    fn tls_settings_without_nats_perspectives_need_a_server() {
        let directory = TempDirectory::new();
        let ca_file = directory.write("ca.pem", TestCa::new().cert_pem());
        let conf = AppConf::parse(&format!("nats_tls_ca_file={ca_file}\n")).unwrap();
        let error = nats_settings(&conf, false).unwrap_err().to_string();
        assert!(
            error.starts_with("nats_url: missing, but nats_tls_* keys are set"),
            "{error}"
        );
    }

    #[test]
    fn servers_reached_without_tls_are_reported() {
        let directory = TempDirectory::new();
        let ca_file = directory.write("ca.pem", TestCa::new().cert_pem());
        let cases = [
            (
                "plain remote server",
                "nats_url=nats://user:pw@nats.example:4222\n".to_owned(),
                vec!["nats://user:[redacted]@nats.example:4222"],
            ),
            (
                "tls URL",
                "nats_url=tls://nats.example:4222\n".to_owned(),
                vec![],
            ),
            (
                "loopback",
                "nats_url=nats://127.0.0.1:4222,nats://localhost:4223,nats://[::1]:4224\n"
                    .to_owned(),
                vec![],
            ),
            (
                "TLS required by a CA file",
                format!("nats_url=nats://nats.example:4222\nnats_tls_ca_file={ca_file}\n"),
                vec![],
            ),
            (
                "one of two servers",
                "nats_url=tls://a.example:4222,nats://b.example:4222\n".to_owned(),
                vec!["nats://b.example:4222"],
            ),
        ];
        for (name, text, expected) in cases {
            let (nats, tls) = settings(&text).unwrap();
            let warnings = unencrypted_servers(&nats.unwrap(), &tls);
            let servers: Vec<String> = warnings
                .into_iter()
                .map(|warning| match warning {
                    ConfigWarning::NatsWithoutTls { server } => server,
                    other => panic!("{name}: unexpected warning {other:?}"),
                })
                .collect();
            assert_eq!(servers, expected, "{name}");
        }
    }
}
