//! The configuration keys that name files: NATS TLS certificates and keys, NKey seeds,
//! credentials files and the reply signing key. Each file is written by the test, and the
//! configuration is loaded from `KEY=VALUE` text as the worker binary loads it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mpic_shared::appconf::AppConf;
use mpic_shared::signing::ReplyVerifier;
use mpic_testkit::tls::{CertificateUsage, TestCa};
use mpic_worker::config::{ClientCertificate, ConfigError, NatsAuth, WorkerConfig};

const BASE: &str = "perspective_code=us-east-1\nnats_url=nats://127.0.0.1:4222\n";

#[test]
fn valid_files_load() {
    let files = TempDirectory::new("valid-files");
    let ca = TestCa::new();
    let second_ca = TestCa::new();
    let client = ca.issue_with_usage(&[], CertificateUsage::Client);
    let bundle = files.write(
        "bundle.pem",
        &format!("{}{}", ca.cert_pem(), second_ca.cert_pem()),
    );
    let cert_file = files.write("tls.pem", client.chain_pem());
    let key_file = files.write("tls.key", client.key_pem());
    let seed = user_seed();
    let seed_file = files.write("worker.nk", &format!("{seed}\n"));
    let creds_file = files.write("worker.creds", &credentials(&user_seed()));

    let config = load(&format!(
        "{BASE}nats_tls_ca_file={}\nnats_tls_cert_file={}\nnats_tls_key_file={}\n\
         nats_nkey_seed_file={}\n",
        bundle.display(),
        cert_file.display(),
        key_file.display(),
        seed_file.display()
    ))
    .expect("valid files load");

    assert_eq!(config.nats_tls.ca_file.as_deref(), Some(bundle.as_path()));
    assert_eq!(
        config.nats_tls.client_certificate,
        Some(ClientCertificate {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        })
    );
    assert!(config.nats_tls.requires_tls(), "TLS is not required");
    assert!(
        config.nats_servers_without_tls().is_empty(),
        "servers listed as without TLS"
    );
    let auth = &config.nats.as_ref().expect("NATS is configured").auth;
    let NatsAuth::NkeySeed {
        seed_file: read_from,
        seed: read_seed,
    } = auth
    else {
        panic!("unexpected credentials {auth:?}");
    };
    assert_eq!(read_from, &seed_file);
    assert_eq!(read_seed.expose(), seed);

    let effective = serde_json::to_value(config.effective()).expect("serializes");
    assert_eq!(effective["nats_auth"], "nkey_seed");
    assert_eq!(
        effective["nats_nkey_seed_file"],
        seed_file.display().to_string()
    );
    assert_eq!(
        effective["nats_tls_key_file"],
        key_file.display().to_string()
    );
    let shown = format!("{effective} {config:?}");
    assert!(!shown.contains(&seed), "the NKey seed is shown: {shown}");

    for key in ["nats_creds_file", "nats_credentials_file"] {
        let config = load(&format!("{BASE}{key}={}\n", creds_file.display()))
            .unwrap_or_else(|error| panic!("{key}: rejected: {error}"));
        let auth = &config.nats.as_ref().expect("NATS is configured").auth;
        assert_eq!(
            auth,
            &NatsAuth::CredentialsFile(creds_file.clone()),
            "{key}"
        );
        let effective = serde_json::to_value(config.effective()).expect("serializes");
        assert_eq!(
            effective["nats_creds_file"],
            creds_file.display().to_string(),
            "{key}: effective configuration"
        );
    }
}

#[test]
fn nkey_seed_file_layouts() {
    let files = TempDirectory::new("seed-layouts");
    let key = nkeys::KeyPair::new_user();
    let seed = key.seed().expect("a generated key has a seed");
    let cases = [
        ("seed alone", format!("{seed}\n")),
        (
            "seed and public key",
            format!("{seed}\n{}\n", key.public_key()),
        ),
        (
            "decorated seed",
            format!("-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"),
        ),
    ];
    for (name, text) in cases {
        let file = files.write("layout.nk", &text);
        let config = load(&format!("{BASE}nats_nkey_seed_file={}\n", file.display()))
            .unwrap_or_else(|error| panic!("{name}: rejected: {error}"));
        let auth = &config.nats.as_ref().expect("NATS is configured").auth;
        let NatsAuth::NkeySeed {
            seed: read_seed, ..
        } = auth
        else {
            panic!("{name}: unexpected credentials {auth:?}");
        };
        assert_eq!(read_seed.expose(), seed, "{name}");
    }
}

#[test]
fn reply_signing_key_in_openssl_format() {
    let files = TempDirectory::new("openssl-key");
    // `openssl genpkey -algorithm ed25519` writes PKCS#8 version 1: this DER prefix
    // (RFC 8410 §7) followed by the 32-byte private key.
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&[7; 32]);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        BASE64.encode(&der)
    );
    let file = files.write("reply-signing.key", &pem);

    let config = load(&format!(
        "{BASE}reply_signing_key_file={}\n",
        file.display()
    ))
    .expect("the key loads");
    let key = config.reply_signing.as_ref().expect("signing key is set");
    assert_eq!(key.file(), file.as_path());

    // The public key the configuration shows verifies what the key signs.
    let public_key = key.public_key();
    let public_pem =
        format!("-----BEGIN PUBLIC KEY-----\n{public_key}\n-----END PUBLIC KEY-----\n");
    let verifier =
        ReplyVerifier::from_pems("us-east-1", [public_pem.as_str()]).expect("public key parses");
    let signature = key.sign("request-1", b"{}").expect("signs");
    assert!(
        verifier
            .verify("request-1", b"{}", Some(&signature))
            .is_ok(),
        "signature does not verify with the shown public key"
    );

    let effective = serde_json::to_value(config.effective()).expect("serializes");
    assert_eq!(effective["reply_signing_public_key"], public_key.as_str());
    assert_eq!(
        effective["reply_signing_key_file"],
        file.display().to_string()
    );
    let private_base64 = BASE64.encode(&der);
    let shown = format!("{effective} {config:?}");
    assert!(
        !shown.contains(&private_base64),
        "the private key is shown: {shown}"
    );
}

#[test]
fn invalid_files_name_the_key() {
    let files = TempDirectory::new("invalid-files");
    let ca = TestCa::new();
    let client = ca.issue_with_usage(&[], CertificateUsage::Client);
    let other = ca.issue_with_usage(&[], CertificateUsage::Client);
    let ca_file = files.write("ca.pem", &ca.cert_pem());
    let cert_file = files.write("tls.pem", client.chain_pem());
    let key_file = files.write("tls.key", client.key_pem());
    let other_key_file = files.write("other.key", other.key_pem());
    let not_pem = files.write("not-pem.txt", "this is not PEM\n");
    let corrupt_pem = files.write(
        "corrupt.pem",
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let seed = user_seed();
    let mut broken_seed = seed.clone();
    let last = broken_seed.pop().expect("a seed is not empty");
    broken_seed.push(if last == 'A' { 'B' } else { 'A' });
    let broken_seed_file = files.write("broken.nk", &broken_seed);
    let account_seed = nkeys::KeyPair::new_account()
        .seed()
        .expect("a generated key has a seed");
    let account_seed_file = files.write("account.nk", &account_seed);
    let creds_without_jwt = files.write(
        "no-jwt.creds",
        &format!("-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"),
    );
    let ec_key_file = key_file.clone();
    let creds_file = files.write("worker.creds", &credentials(&user_seed()));

    let cases: Vec<(&str, String, String)> = vec![
        (
            "CA file without PEM",
            format!("nats_tls_ca_file={}", not_pem.display()),
            format!(
                "nats_tls_ca_file: {} contains no PEM certificate",
                not_pem.display()
            ),
        ),
        (
            "CA file with a key only",
            format!("nats_tls_ca_file={}", key_file.display()),
            format!(
                "nats_tls_ca_file: {} contains no PEM certificate",
                key_file.display()
            ),
        ),
        (
            "CA file with bad base64",
            format!("nats_tls_ca_file={}", corrupt_pem.display()),
            format!(
                "nats_tls_ca_file: {} is not a valid PEM file",
                corrupt_pem.display()
            ),
        ),
        (
            "certificate file without certificate",
            pair(&key_file, &key_file),
            format!(
                "nats_tls_cert_file: {} contains no PEM certificate",
                key_file.display()
            ),
        ),
        (
            "key file without key",
            pair(&cert_file, &ca_file),
            format!(
                "nats_tls_key_file: {} contains no PEM private key",
                ca_file.display()
            ),
        ),
        (
            "key of another certificate",
            pair(&cert_file, &other_key_file),
            format!(
                "nats_tls_key_file: {} is not the key of the certificate in {}",
                other_key_file.display(),
                cert_file.display()
            ),
        ),
        (
            "missing key file",
            pair(&cert_file, Path::new("/nonexistent/tls.key")),
            "nats_tls_key_file: failed to read /nonexistent/tls.key".to_owned(),
        ),
        (
            "NKey seed file without seed",
            format!("nats_nkey_seed_file={}", not_pem.display()),
            format!(
                "nats_nkey_seed_file: {} contains no NKey seed",
                not_pem.display()
            ),
        ),
        (
            "NKey seed with a wrong checksum",
            format!("nats_nkey_seed_file={}", broken_seed_file.display()),
            format!(
                "nats_nkey_seed_file: {} contains no valid NKey seed",
                broken_seed_file.display()
            ),
        ),
        (
            "account seed",
            format!("nats_nkey_seed_file={}", account_seed_file.display()),
            format!(
                "nats_nkey_seed_file: {} contains an NKey seed of type Account",
                account_seed_file.display()
            ),
        ),
        (
            "credentials file without JWT",
            format!("nats_creds_file={}", creds_without_jwt.display()),
            format!(
                "nats_creds_file: {} is not a NATS credentials file",
                creds_without_jwt.display()
            ),
        ),
        (
            "alias names itself",
            format!("nats_credentials_file={}", creds_without_jwt.display()),
            format!(
                "nats_credentials_file: {} is not a NATS credentials file",
                creds_without_jwt.display()
            ),
        ),
        (
            "two kinds of credentials with valid files",
            format!("nats_token=t0ken\nnats_creds_file={}", creds_file.display()),
            "nats_token: nats_creds_file is also set; set only one kind".to_owned(),
        ),
        (
            "reply signing key of another algorithm",
            format!("reply_signing_key_file={}", ec_key_file.display()),
            format!(
                "reply_signing_key_file: {}: invalid Ed25519 private key",
                ec_key_file.display()
            ),
        ),
    ];
    for (name, lines, expected) in cases {
        let message = error_message(&format!("{BASE}{lines}\n"));
        assert!(
            message.starts_with(&expected),
            "{name}: expected a message starting with {expected:?}, got {message:?}"
        );
        assert!(
            !message.contains(&seed) && !message.contains(&broken_seed),
            "{name}: the message quotes a seed: {message}"
        );
    }
}

#[test]
fn files_without_nats_url_are_rejected() {
    let files = TempDirectory::new("no-url");
    let ca = TestCa::new();
    let ca_file = files.write("ca.pem", &ca.cert_pem());
    let seed_file = files.write("worker.nk", &user_seed());
    let cases = [
        (
            "CA file",
            format!("nats_tls_ca_file={}", ca_file.display()),
            "nats_url: missing, but nats_tls_* keys are set",
        ),
        (
            "NKey seed",
            format!("nats_nkey_seed_file={}", seed_file.display()),
            "nats_url: missing, but NATS credentials (nkey_seed) are set",
        ),
    ];
    for (name, line, expected) in cases {
        let message = error_message(&format!(
            "perspective_code=us-east-1\nhttp_listen=127.0.0.1:8080\n{line}\n"
        ));
        assert!(
            message.starts_with(expected),
            "{name}: expected a message starting with {expected:?}, got {message:?}"
        );
    }
}

#[test]
fn unreadable_file_keeps_its_cause() {
    let error = load(&format!("{BASE}nats_tls_ca_file=/nonexistent/ca.pem\n"))
        .expect_err("the file is missing");
    let ConfigError::ReadSettingFile { key, path, source } = &error else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!(*key, "nats_tls_ca_file");
    assert_eq!(path, Path::new("/nonexistent/ca.pem"));
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
}

fn load(text: &str) -> Result<WorkerConfig, ConfigError> {
    let conf = AppConf::parse(text).expect("test text is KEY=VALUE");
    WorkerConfig::from_appconf(&conf)
}

fn error_message(text: &str) -> String {
    match load(text) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(error) => error.to_string(),
    }
}

fn pair(cert_file: &Path, key_file: &Path) -> String {
    format!(
        "nats_tls_cert_file={}\nnats_tls_key_file={}",
        cert_file.display(),
        key_file.display()
    )
}

fn user_seed() -> String {
    nkeys::KeyPair::new_user()
        .seed()
        .expect("a generated key has a seed")
}

/// Returns a `.creds` file in the layout `nsc` writes. The client does not check the JWT
/// before connecting, so a placeholder token replaces it.
fn credentials(seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n\
         eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2lnbmF0dXJl\n\
         ------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
    )
}

/// A directory under the system temporary directory, removed on drop.
struct TempDirectory {
    path: PathBuf,
}

impl TempDirectory {
    fn new(name: &str) -> TempDirectory {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "mpic-worker-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temporary directory");
        TempDirectory { path }
    }

    fn write(&self, file_name: &str, contents: &str) -> PathBuf {
        let path = self.path.join(file_name);
        std::fs::write(&path, contents).expect("write temporary file");
        path
    }
}

impl Drop for TempDirectory {
    fn drop(&mut self) {
        // A directory left behind holds only test certificates and keys.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
