//! NATS connection settings of the worker: server URLs, credentials and TLS files, read from
//! the `nats_*` configuration keys. Files named by keys are read and parsed here, so a missing
//! or malformed file stops the worker at startup with an error naming its key. The coordinator
//! reads the same keys through [`nats_auth_from`] and [`nats_tls_from`].
//!
//! Not handled here: NATS over WebSocket (`ws://`, `wss://`). This build of the NATS client
//! does not include it, so such URLs are rejected.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use mpic_shared::appconf::AppConf;
use rustls::InconsistentKeys;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::{ConfigError, aliased_setting, invalid, read_setting_text};

/// NATS connection settings. Their `Debug` output redacts passwords in the URLs.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// The server URLs from `nats_url`, comma-separated. Each is `nats://` or `tls://`, and
    /// `nats://` and port 4222 apply when omitted.
    pub servers: Vec<String>,
    /// The credentials sent when connecting.
    pub auth: NatsAuth,
}

/// NATS credentials. At most one kind may be configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsAuth {
    /// No credentials, or credentials inside the URL.
    None,
    /// `nats_user` and `nats_password`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: Secret,
    },
    /// `nats_token`.
    Token(Secret),
    /// `nats_nkey_seed_file`: an NKey user seed, which signs the server's nonce. The server
    /// lists the matching public key (`U...`) as an `nkey` user.
    NkeySeed {
        /// The file the seed was read from.
        seed_file: PathBuf,
        /// The seed (`SU...`).
        seed: Secret,
    },
    /// `nats_creds_file` (or `nats_credentials_file`): a `.creds` file containing a user JWT and
    /// NKey seed, for servers in operator mode. The client reads it again when it connects.
    CredentialsFile(PathBuf),
}

/// TLS settings of the NATS connection. Any setting makes TLS required: the client then
/// rejects a server that does not offer TLS instead of falling back to plain text.
///
/// The client (async-nats 0.52) reads the files again whenever it connects or reconnects, so renewed
/// certificates take effect at the next reconnect without a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// PEM bundle of the CA certificates that verify the server's certificate
    /// (`nats_tls_ca_file`). They replace the system's root certificates. Default: unset, and
    /// the system's roots verify the server.
    pub ca_file: Option<PathBuf>,
    /// The certificate the worker presents for mutual TLS (`nats_tls_cert_file` and
    /// `nats_tls_key_file`). Default: unset, no client certificate.
    pub client_certificate: Option<ClientCertificate>,
}

/// A client certificate for mutual TLS with the NATS server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// PEM certificate chain, end-entity certificate first (`nats_tls_cert_file`).
    pub cert_file: PathBuf,
    /// PEM private key of the end-entity certificate, PKCS#8, PKCS#1 (RSA) or SEC1 (EC)
    /// (`nats_tls_key_file`).
    pub key_file: PathBuf,
}

/// A secret configuration value. Its `Debug` and `Display` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl NatsConfig {
    /// Returns the server URLs with any password replaced by `[redacted]`, for logs and errors.
    pub fn redacted_servers(&self) -> Vec<String> {
        self.servers.iter().map(|url| redact_url(url)).collect()
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("servers", &self.redacted_servers())
            .field("auth", &self.auth)
            .finish()
    }
}

impl NatsAuth {
    /// Returns the kind of credentials, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            NatsAuth::None => "none",
            NatsAuth::UserPassword { .. } => "user_password",
            NatsAuth::Token(_) => "token",
            NatsAuth::NkeySeed { .. } => "nkey_seed",
            NatsAuth::CredentialsFile(_) => "credentials_file",
        }
    }

    /// Reads an NKey user seed from `seed_file` (`nats_nkey_seed_file`).
    ///
    /// The seed is the first line that starts with `S`, so the file may contain the seed alone,
    /// the seed followed by its public key (`nk -gen user -pubout`) or a decorated seed
    /// between `-----BEGIN USER NKEY SEED-----` lines. It must be a user seed (`SU...`),
    /// because only user keys authenticate clients.
    pub fn from_nkey_seed_file(seed_file: &Path) -> Result<NatsAuth, ConfigError> {
        const KEY: &str = "nats_nkey_seed_file";
        let text = read_setting_text(KEY, seed_file)?;
        let Some(seed) = text
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with('S'))
        else {
            return Err(invalid(
                KEY,
                format!(
                    "{} contains no NKey seed (a line starting with SU); generate one with \
                     `nk -gen user`",
                    seed_file.display()
                ),
            ));
        };
        // The parser's message names the problem without quoting the seed.
        let key_pair = nkeys::KeyPair::from_seed(seed).map_err(|error| {
            invalid(
                KEY,
                format!(
                    "{} contains no valid NKey seed: {error}",
                    seed_file.display()
                ),
            )
        })?;
        if key_pair.key_pair_type() != nkeys::KeyPairType::User {
            return Err(invalid(
                KEY,
                format!(
                    "{} contains an NKey seed of type {:?}; NATS clients authenticate with a user \
                     seed (SU...)",
                    seed_file.display(),
                    key_pair.key_pair_type()
                ),
            ));
        }
        Ok(NatsAuth::NkeySeed {
            seed_file: seed_file.to_owned(),
            seed: Secret::new(seed),
        })
    }
}

impl NatsTls {
    /// Returns whether any TLS setting is present, which makes TLS required.
    pub fn requires_tls(&self) -> bool {
        self.ca_file.is_some() || self.client_certificate.is_some()
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Returns the secret value, to hand it to the client that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

pub(super) fn nats_config(
    conf: &AppConf,
    tls: &NatsTls,
) -> Result<Option<NatsConfig>, ConfigError> {
    let auth = nats_auth_from(conf)?;
    let Some(urls) = conf.get("nats_url").filter(|urls| !urls.trim().is_empty()) else {
        if auth != NatsAuth::None {
            return Err(invalid(
                "nats_url",
                format!("missing, but NATS credentials ({}) are set", auth.kind()),
            ));
        }
        if tls.requires_tls() {
            return Err(invalid("nats_url", "missing, but nats_tls_* keys are set"));
        }
        return Ok(None);
    };

    let mut servers = Vec::new();
    for url in urls.split(',').map(str::trim) {
        let address = match url.parse::<async_nats::ServerAddr>() {
            Ok(address) => address,
            Err(error) => {
                return Err(invalid(
                    "nats_url",
                    format!("{} is not a NATS server URL: {error}", redact_url(url)),
                ));
            }
        };
        // Without the client's WebSocket support, a ws:// or wss:// URL would be dialled as
        // plain TCP and TLS skipped, so credentials would cross the network in clear text.
        if address.is_websocket() {
            return Err(invalid(
                "nats_url",
                format!(
                    "{}: WebSocket URLs are not supported; use nats:// or tls://",
                    redact_url(url)
                ),
            ));
        }
        servers.push(url.to_owned());
    }
    Ok(Some(NatsConfig { servers, auth }))
}

/// Reads the NATS credentials: `nats_user` with `nats_password`, `nats_token`,
/// `nats_nkey_seed_file` or `nats_creds_file` (alias `nats_credentials_file`). At most one kind
/// may be set, and a file named by a key is read and parsed here, so a missing or malformed
/// file is an error naming its key. The coordinator reads the same keys with this function.
pub fn nats_auth_from(conf: &AppConf) -> Result<NatsAuth, ConfigError> {
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
        return Err(invalid(
            first,
            format!(
                "{second} is also set; set only one kind of NATS credentials: nats_user with \
                 nats_password, nats_token, nats_nkey_seed_file or nats_creds_file"
            ),
        ));
    }

    match (user, password, token, nkey_seed_file, credentials_file) {
        (Some(user), Some(password), ..) => Ok(NatsAuth::UserPassword {
            user: user.to_owned(),
            password: Secret::new(password),
        }),
        (Some(_), None, ..) => Err(invalid("nats_password", "missing, but nats_user is set")),
        (None, Some(_), ..) => Err(invalid("nats_user", "missing, but nats_password is set")),
        (None, None, Some(token), ..) => Ok(NatsAuth::Token(Secret::new(token))),
        (None, None, None, Some(seed_file), _) => {
            NatsAuth::from_nkey_seed_file(Path::new(seed_file))
        }
        (None, None, None, None, Some((key, file))) => {
            check_credentials_file(key, Path::new(file))?;
            Ok(NatsAuth::CredentialsFile(PathBuf::from(file)))
        }
        (None, None, None, None, None) => Ok(NatsAuth::None),
    }
}

/// Checks that a `.creds` file parses the way the NATS client will parse it when connecting.
fn check_credentials_file(key: &'static str, file: &Path) -> Result<(), ConfigError> {
    let text = read_setting_text(key, file)?;
    // The client's error names the missing part without quoting the file.
    async_nats::ConnectOptions::with_credentials(&text).map_err(|error| {
        invalid(
            key,
            format!("{} is not a NATS credentials file: {error}", file.display()),
        )
    })?;
    Ok(())
}

/// Reads the TLS settings of the NATS connection: `nats_tls_ca_file`, and
/// `nats_tls_cert_file` with `nats_tls_key_file`. The files are parsed here: the CA bundle must
/// contain usable trust anchors, and the key must be able to sign and belong to the client
/// certificate. The coordinator reads the same keys with this function.
pub fn nats_tls_from(conf: &AppConf) -> Result<NatsTls, ConfigError> {
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
            return Err(invalid(
                "nats_tls_key_file",
                "missing, but nats_tls_cert_file is set; mutual TLS needs the certificate's key",
            ));
        }
        (None, Some(_)) => {
            return Err(invalid(
                "nats_tls_cert_file",
                "missing, but nats_tls_key_file is set; mutual TLS needs the key's certificate",
            ));
        }
        (None, None) => None,
    };
    Ok(NatsTls {
        ca_file,
        client_certificate,
    })
}

/// Checks that the CA bundle contains at least one certificate and that each can be a trust
/// anchor, as the NATS client requires when it connects.
fn check_ca_file(file: &Path) -> Result<(), ConfigError> {
    const KEY: &str = "nats_tls_ca_file";
    let pem = read_setting_file(KEY, file)?;
    let certificates = pem_certificates(KEY, file, &pem)?;
    for (index, certificate) in certificates.iter().enumerate() {
        if let Err(error) = webpki::anchor_from_trusted_cert(certificate) {
            return Err(invalid(
                KEY,
                format!(
                    "certificate {} of {} is not usable as a trust anchor: {error}",
                    index + 1,
                    file.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that the certificate chain and key parse, that rustls can sign with the key and
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
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        invalid(
            KEY_KEY,
            format!("{key_file} contains no PEM private key: {error}"),
        )
    })?;

    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| {
            invalid(
                KEY_KEY,
                format!("{key_file} contains a private key that TLS cannot sign with: {error}"),
            )
        })?;
    match CertifiedKey::new(chain, signing_key).keys_match() {
        // rustls cannot compare keys of every type, so the server decides at the handshake.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(()),
        Err(error) => Err(invalid(
            KEY_KEY,
            format!(
                "{key_file} is not the key of the certificate in {}: {error}",
                client.cert_file.display()
            ),
        )),
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
        .map_err(|error| {
            invalid(
                key,
                format!("{} is not a valid PEM file: {error}", file.display()),
            )
        })?;
    if certificates.is_empty() {
        return Err(invalid(
            key,
            format!(
                "{} contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
                file.display()
            ),
        ));
    }
    Ok(certificates)
}

fn read_setting_file(key: &'static str, file: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(file).map_err(|source| ConfigError::ReadSettingFile {
        key,
        path: file.to_owned(),
        source,
    })
}

/// Returns whether a NATS server host names this machine: `localhost` or a loopback address.
pub(super) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// Replaces the password in a URL's user information with `[redacted]`; other URLs and
/// strings that are no URL at all come back unchanged.
pub(super) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_user_info(url);
    };
    format!("{scheme}://{}", redact_user_info(rest))
}

fn redact_user_info(authority_and_path: &str) -> String {
    let authority_end = authority_and_path
        .find(['/', '?', '#'])
        .unwrap_or(authority_and_path.len());
    let (authority, path) = authority_and_path.split_at(authority_end);
    let Some((user_info, host)) = authority.rsplit_once('@') else {
        return authority_and_path.to_owned();
    };
    let user = user_info
        .split_once(':')
        .map_or(user_info, |(user, _)| user);
    if user == user_info {
        // A bare token in the user part is the secret itself.
        return format!("{REDACTED}@{host}{path}");
    }
    format!("{user}:{REDACTED}@{host}{path}")
}

const REDACTED: &str = "[redacted]";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_cases() {
        let cases = [
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            ("nats://u:p@host:4222", "nats://u:[redacted]@host:4222"),
            ("nats://token@host", "nats://[redacted]@host"),
            ("u:p@host:4222", "u:[redacted]@host:4222"),
            ("tls://host/path@x", "tls://host/path@x"),
        ];
        for (input, expected) in cases {
            assert_eq!(redact_url(input), expected, "input {input:?}");
        }
    }
}
