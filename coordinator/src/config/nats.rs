//! The NATS keys of the coordinator's configuration: servers, credentials and TLS.
//!
//! The keys and their meaning are the worker's (see `mpic_worker::config`), so one deployment
//! writes both alike, and the connection itself is made by the worker crate's
//! [`connect_with_tls`](mpic_worker::service::connect_with_tls). Files named by these keys are
//! read and parsed here, at startup, so that a missing or malformed file stops the coordinator
//! with an error naming its key before anything connects.
//!
//! Setting any `nats_tls_*` key makes TLS required: the client then rejects a server that does
//! not offer TLS instead of sending credentials in plain text. BR §3.2.2.9 requires an
//! authenticated and encrypted channel to every remote perspective, so a server reached
//! without required TLS on a non-loopback address is reported as a [`ConfigWarning`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use mpic_shared::appconf::{AppConf, SettingSource};
use mpic_worker::config::{ClientCertificate, NatsAuth, NatsConfig, NatsTls, Secret};
use reqwest::Url;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore};

use super::{ConfigError, ConfigWarning, redacted_url};

/// Reads the NATS servers, credentials and TLS settings. Servers are required when a
/// perspective uses NATS, and credentials or TLS settings without servers are reported as the
/// mistake they are.
pub(super) fn nats_settings(
    conf: &AppConf,
    uses_nats: bool,
) -> Result<(Option<NatsConfig>, NatsTls), ConfigError> {
    let key = "nats_url";
    let auth = nats_auth(conf)?;
    let tls = nats_tls(conf)?;
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

/// Reads the NATS credentials: user and password, a token, an NKey seed file or a credentials
/// file, at most one kind.
fn nats_auth(conf: &AppConf) -> Result<NatsAuth, ConfigError> {
    let user = conf.get("nats_user");
    let password = conf.get("nats_password");
    let token = conf.get("nats_token");
    let nkey_seed_file = conf.get("nats_nkey_seed_file");
    let credentials_file = aliased_setting(conf, "nats_creds_file", "nats_credentials_file")?;

    let credentials_key = credentials_file.map_or("nats_creds_file", |(key, _)| key);
    let kinds_set: Vec<&'static str> = [
        (user.is_some() || password.is_some(), "nats_user"),
        (token.is_some(), "nats_token"),
        (nkey_seed_file.is_some(), "nats_nkey_seed_file"),
        (credentials_file.is_some(), credentials_key),
    ]
    .into_iter()
    .filter_map(|(set, key)| set.then_some(key))
    .collect();
    if let [first, second, ..] = kinds_set.as_slice() {
        return Err(ConfigError::Invalid {
            key: first,
            reason: format!(
                "{second} is also set; set only one kind of NATS credentials: nats_user with \
                 nats_password, nats_token, nats_nkey_seed_file or nats_creds_file"
            ),
        });
    }

    let missing = |key: &'static str, other: &str| ConfigError::Invalid {
        key,
        reason: format!("missing, but {other} is set"),
    };
    match (user, password, token, nkey_seed_file, credentials_file) {
        (Some(user), Some(password), ..) => Ok(NatsAuth::UserPassword {
            user: user.to_owned(),
            password: Secret::new(password),
        }),
        (Some(_), None, ..) => Err(missing("nats_password", "nats_user")),
        (None, Some(_), ..) => Err(missing("nats_user", "nats_password")),
        (None, None, Some(token), ..) => Ok(NatsAuth::Token(Secret::new(token))),
        (None, None, None, Some(seed_file), _) => {
            // The worker's reader names the key and the file, never the seed.
            NatsAuth::from_nkey_seed_file(Path::new(seed_file)).map_err(ConfigError::Worker)
        }
        (None, None, None, None, Some((key, file))) => {
            check_credentials_file(key, Path::new(file))?;
            Ok(NatsAuth::CredentialsFile(PathBuf::from(file)))
        }
        (None, None, None, None, None) => Ok(NatsAuth::None),
    }
}

/// Returns the key that supplies a setting spelled two ways, and its value. When the two
/// spellings have different values, the one from the environment wins over the file, as for
/// every other key. Two different values from the same source are an error.
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
                _ => Err(ConfigError::Invalid {
                    key,
                    reason: format!(
                        "{:?} differs from {alias} {:?}; set only one of the two keys",
                        setting.value, alias_setting.value
                    ),
                }),
            }
        }
        (Some(setting), _) => Ok(Some((key, &setting.value))),
        (None, Some(alias_setting)) => Ok(Some((alias, &alias_setting.value))),
        (None, None) => Ok(None),
    }
}

/// Checks that a `.creds` file parses the way the NATS client parses it when it connects.
fn check_credentials_file(key: &'static str, file: &Path) -> Result<(), ConfigError> {
    let text = read_setting_file(key, file)?;
    let text = String::from_utf8(text).map_err(|_| ConfigError::Invalid {
        key,
        reason: format!("{} is not a text file", file.display()),
    })?;
    // The client's error names the missing part without quoting the file.
    async_nats::ConnectOptions::with_credentials(&text).map_err(|error| ConfigError::Invalid {
        key,
        reason: format!("{} is not a NATS credentials file: {error}", file.display()),
    })?;
    Ok(())
}

fn nats_tls(conf: &AppConf) -> Result<NatsTls, ConfigError> {
    let ca_file = conf.get("nats_tls_ca_file").map(PathBuf::from);
    if let Some(file) = &ca_file {
        check_ca_file(file)?;
    }

    let client_certificate = match (
        conf.get("nats_tls_cert_file"),
        conf.get("nats_tls_key_file"),
    ) {
        (Some(cert_file), Some(key_file)) => {
            let client_certificate = ClientCertificate {
                cert_file: PathBuf::from(cert_file),
                key_file: PathBuf::from(key_file),
            };
            check_client_certificate(&client_certificate)?;
            Some(client_certificate)
        }
        (Some(_), None) => {
            return Err(ConfigError::Invalid {
                key: "nats_tls_key_file",
                reason: "missing, but nats_tls_cert_file is set; mutual TLS needs the \
                         certificate's key"
                    .to_owned(),
            });
        }
        (None, Some(_)) => {
            return Err(ConfigError::Invalid {
                key: "nats_tls_cert_file",
                reason: "missing, but nats_tls_key_file is set; mutual TLS needs the key's \
                         certificate"
                    .to_owned(),
            });
        }
        (None, None) => None,
    };
    Ok(NatsTls {
        ca_file,
        client_certificate,
    })
}

/// Checks that the CA bundle contains at least one certificate and that rustls accepts each as
/// a trust anchor, as the NATS client requires when it connects.
fn check_ca_file(file: &Path) -> Result<(), ConfigError> {
    const KEY: &str = "nats_tls_ca_file";
    let certificates = pem_certificates(KEY, file, &read_setting_file(KEY, file)?)?;
    let mut roots = RootCertStore::empty();
    for (index, certificate) in certificates.into_iter().enumerate() {
        roots
            .add(certificate)
            .map_err(|error| ConfigError::Invalid {
                key: KEY,
                reason: format!(
                    "certificate {} of {} is not usable as a trust anchor: {error}",
                    index + 1,
                    file.display()
                ),
            })?;
    }
    Ok(())
}

/// Checks that the certificate chain and the key parse, that rustls can sign with the key, and
/// that the key belongs to the end-entity certificate.
fn check_client_certificate(client: &ClientCertificate) -> Result<(), ConfigError> {
    const CERT_KEY: &str = "nats_tls_cert_file";
    const KEY_KEY: &str = "nats_tls_key_file";
    let chain = pem_certificates(
        CERT_KEY,
        &client.cert_file,
        &read_setting_file(CERT_KEY, &client.cert_file)?,
    )?;
    let key_pem = read_setting_file(KEY_KEY, &client.key_file)?;
    let key_file = client.key_file.display();
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| ConfigError::Invalid {
        key: KEY_KEY,
        reason: format!("{key_file} holds no PEM private key: {error}"),
    })?;

    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| ConfigError::Invalid {
            key: KEY_KEY,
            reason: format!("{key_file} holds a private key TLS cannot sign with: {error}"),
        })?;
    match CertifiedKey::new(chain, signing_key).keys_match() {
        // rustls cannot compare keys of every type; the server then decides at the handshake.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(()),
        Err(error) => Err(ConfigError::Invalid {
            key: KEY_KEY,
            reason: format!(
                "{key_file} is not the key of the certificate in {}: {error}",
                client.cert_file.display()
            ),
        }),
    }
}

/// Parses every certificate of a PEM file, requiring at least one.
fn pem_certificates(
    key: &'static str,
    file: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| ConfigError::Invalid {
            key,
            reason: format!("{} is not a valid PEM file: {error}", file.display()),
        })?;
    if certificates.is_empty() {
        return Err(ConfigError::Invalid {
            key,
            reason: format!(
                "{} contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
                file.display()
            ),
        });
    }
    Ok(certificates)
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
    fn tls_files_are_checked_at_startup() {
        let directory = TempDirectory::new();
        let ca = TestCa::new();
        let client = ca.issue_with_usage(&[], CertificateUsage::Client);
        let other = ca.issue_with_usage(&[], CertificateUsage::Client);
        let ca_file = directory.write("ca.pem", ca.cert_pem());
        let cert_file = directory.write("client.pem", client.chain_pem());
        let key_file = directory.write("client.key", client.key_pem());
        let other_key_file = directory.write("other.key", other.key_pem());
        let not_pem = directory.write("not.pem", "not a certificate");
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
                "CA file without certificate",
                format!("{url}nats_tls_ca_file={not_pem}\n"),
                "nats_tls_ca_file: ",
            ),
            (
                "certificate without key",
                format!("{url}nats_tls_cert_file={cert_file}\n"),
                "nats_tls_key_file: missing, but nats_tls_cert_file is set",
            ),
            (
                "key without certificate",
                format!("{url}nats_tls_key_file={key_file}\n"),
                "nats_tls_cert_file: missing, but nats_tls_key_file is set",
            ),
            (
                "key of another certificate",
                format!(
                    "{url}nats_tls_cert_file={cert_file}\nnats_tls_key_file={other_key_file}\n"
                ),
                "nats_tls_key_file: ",
            ),
            (
                "key file that is no key",
                format!("{url}nats_tls_cert_file={cert_file}\nnats_tls_key_file={not_pem}\n"),
                "nats_tls_key_file: ",
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
        assert!(
            error_of(&format!(
                "{url}nats_tls_cert_file={cert_file}\nnats_tls_key_file={other_key_file}\n"
            ))
            .contains("is not the key of the certificate"),
            "a mismatched key is named as such"
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
    fn credential_files_are_checked_at_startup() {
        let directory = TempDirectory::new();
        let seed = nkeys::KeyPair::new_user().seed().unwrap();
        let account_seed = nkeys::KeyPair::new_account().seed().unwrap();
        let seed_file = directory.write("user.nk", format!("{seed}\n"));
        let account_file = directory.write("account.nk", format!("{account_seed}\n"));
        let not_creds = directory.write("bad.creds", "no JWT here\n");
        let url = "nats_url=nats://127.0.0.1:4222\n";

        let (nats, _) = settings(&format!("{url}nats_nkey_seed_file={seed_file}\n")).unwrap();
        let auth = nats.unwrap().auth;
        assert_eq!(auth.kind(), "nkey_seed");
        assert!(
            !format!("{auth:?}").contains(&seed),
            "the seed stays out of debug output"
        );

        let cases = [
            (
                "account seed",
                format!("{url}nats_nkey_seed_file={account_file}\n"),
                "nats_nkey_seed_file: ",
            ),
            (
                "creds file without JWT",
                format!("{url}nats_creds_file={not_creds}\n"),
                "nats_creds_file: ",
            ),
            (
                "creds file under its alias",
                format!("{url}nats_credentials_file={not_creds}\n"),
                "nats_credentials_file: ",
            ),
            (
                "missing creds file",
                format!("{url}nats_creds_file=/nonexistent/user.creds\n"),
                "nats_creds_file: failed to read /nonexistent/user.creds",
            ),
            (
                "seed and creds file",
                format!("{url}nats_nkey_seed_file={seed_file}\nnats_creds_file={not_creds}\n"),
                "nats_nkey_seed_file: nats_creds_file is also set",
            ),
            (
                "both spellings with different files",
                format!("{url}nats_creds_file=/a.creds\nnats_credentials_file=/b.creds\n"),
                "nats_creds_file: \"/a.creds\" differs from nats_credentials_file",
            ),
        ];
        for (name, text, expected) in cases {
            let error = error_of(&text);
            assert!(
                error.starts_with(expected),
                "{name}: {error:?} does not start with {expected:?}"
            );
            assert!(!error.contains(&seed), "{name}: the seed leaked: {error}");
        }
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
