//! The public keys that verify perspective replies (`reply_verification_keys_dir`) and the
//! switch that requires them (`reply_signatures`).
//!
//! Each perspective signs its replies with an Ed25519 key (the worker's
//! `reply_signing_key_file`), and the coordinator has the matching public keys, so a region
//! with valid NATS credentials still cannot reply on behalf of another region (see
//! [`mpic_shared::signing`]). The directory holds one SubjectPublicKeyInfo PEM file per key,
//! named `<code>.pub` or `<code>.<suffix>.pub`. Every key of a perspective is accepted, which is
//! how a key is rotated without failed checks.
//!
//! Generating a perspective's key pair (the private key stays with the region's workers):
//!
//! ```text
//! openssl genpkey -algorithm ed25519 -out us-east-1.key
//! openssl pkey -in us-east-1.key -pubout -out us-east-1.pub
//! ```
//!
//! Rotating it:
//!
//! 1. Generate the new pair and add the new public key next to the old one, for example as
//!    `us-east-1.2027-01.pub`. Restart the coordinator, which then accepts both keys.
//! 2. Switch the region's workers to the new private key and restart them.
//! 3. Remove the old public key and restart the coordinator again.
//!
//! The directory is read once at startup. Files whose names start with `.` and
//! subdirectories are skipped without a word, because Kubernetes mounts a ConfigMap with
//! such entries. Other files not ending in `.pub`, and keys of codes this coordinator does not
//! deploy, are skipped with a [`ConfigWarning`]. A `.pub` file that is not an Ed25519 public
//! key stops the start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use mpic_shared::signing::ReplyVerifier;
use mpic_shared::subject::is_valid_subject_token;

use super::nats::read_setting_file;
use super::{ConfigError, ConfigWarning, DeployedPerspective, PerspectiveEndpoint};

/// Whether the coordinator verifies reply signatures (`reply_signatures`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReplySignatures {
    /// Every NATS perspective must have a public key, and every reply of a perspective with
    /// a key must verify (the default).
    #[default]
    Required,
    /// No reply is verified. For tests and migrations only, because any holder of NATS
    /// credentials can then reply on behalf of any perspective.
    Off,
}

impl ReplySignatures {
    /// Returns the configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplySignatures::Required => "required",
            ReplySignatures::Off => "off",
        }
    }
}

impl FromStr for ReplySignatures {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "required" => Ok(ReplySignatures::Required),
            "off" => Ok(ReplySignatures::Off),
            _ => Err("expected required or off".to_owned()),
        }
    }
}

/// The public keys of each perspective, read from `reply_verification_keys_dir`.
#[derive(Debug, Clone, Default)]
pub struct ReplyVerificationKeys {
    /// The directory the keys were read from; `None` when the key is unset.
    pub directory: Option<PathBuf>,
    /// The verifier and key files of each perspective code with at least one key.
    perspectives: BTreeMap<String, PerspectiveKeys>,
}

#[derive(Debug, Clone)]
struct PerspectiveKeys {
    files: Vec<PathBuf>,
    verifier: ReplyVerifier,
}

impl ReplyVerificationKeys {
    /// Reads every `.pub` file in `directory`. Keys of codes not in `deployed` are left out
    /// with a warning.
    pub fn load(
        directory: &Path,
        deployed: &[DeployedPerspective],
    ) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        let mut warnings = Vec::new();
        let mut files_by_code: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for path in key_directory_files(directory)? {
            let Some(code) = key_file_code(&path) else {
                warnings.push(ConfigWarning::IgnoredKeyFile {
                    path: path.display().to_string(),
                    reason: "not named <code>.pub or <code>.<suffix>.pub",
                });
                continue;
            };
            if !deployed.iter().any(|perspective| perspective.code == code) {
                warnings.push(ConfigWarning::IgnoredKeyFile {
                    path: path.display().to_string(),
                    reason: "no deployed perspective has this code",
                });
                continue;
            }
            files_by_code.entry(code.to_owned()).or_default().push(path);
        }

        let mut perspectives = BTreeMap::new();
        for (code, files) in files_by_code {
            let verifier = load_verifier(&code, &files)?;
            perspectives.insert(code, PerspectiveKeys { files, verifier });
        }
        let keys = ReplyVerificationKeys {
            directory: Some(directory.to_owned()),
            perspectives,
        };
        Ok((keys, warnings))
    }

    /// Returns the verifier of a perspective's replies, if the perspective has a key.
    pub fn verifier(&self, code: &str) -> Option<&ReplyVerifier> {
        self.perspectives
            .get(code)
            .map(|perspective| &perspective.verifier)
    }

    /// Returns the key files of a perspective, for the startup log.
    pub fn key_files(&self, code: &str) -> &[PathBuf] {
        self.perspectives
            .get(code)
            .map_or(&[], |perspective| perspective.files.as_slice())
    }
}

/// Checks the deployment against the signature setting: with signatures required, every NATS
/// perspective needs a key. Returns the warnings for the operator: signatures off, and HTTP
/// perspectives that are accepted unsigned because they have no key.
pub(super) fn check_reply_keys(
    mode: ReplySignatures,
    keys: &ReplyVerificationKeys,
    perspectives: &[DeployedPerspective],
) -> Result<Vec<ConfigWarning>, ConfigError> {
    if mode == ReplySignatures::Off {
        return Ok(vec![ConfigWarning::ReplySignaturesOff]);
    }

    let unverifiable_nats = perspectives
        .iter()
        .filter(|p| p.endpoint == PerspectiveEndpoint::Nats && keys.verifier(&p.code).is_none());
    let missing: Vec<&str> = unverifiable_nats.map(|p| p.code.as_str()).collect();
    if let Some(first) = missing.first() {
        let reason = match &keys.directory {
            None => format!(
                "missing, but reply_signatures is required and perspectives are reached over \
                 NATS ({}); set it to the directory of the perspectives' public keys, or set \
                 reply_signatures=off for a test deployment",
                missing.join(", ")
            ),
            Some(directory) => format!(
                "no public key for the NATS perspective(s) {} in {}; add {first}.pub (the \
                 worker's reply_signing_key_file, through `openssl pkey -pubout`)",
                missing.join(", "),
                directory.display()
            ),
        };
        return Err(ConfigError::Invalid {
            key: "reply_verification_keys_dir",
            reason,
        });
    }

    let unsigned_http: Vec<String> = perspectives
        .iter()
        .filter(|p| matches!(p.endpoint, PerspectiveEndpoint::Http(_)))
        .filter(|p| keys.verifier(&p.code).is_none())
        .map(|p| p.code.clone())
        .collect();
    if unsigned_http.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![ConfigWarning::UnsignedHttpPerspectives {
        perspectives: unsigned_http,
    }])
}

/// Lists the regular files of the key directory in name order, leaving out names that start
/// with `.` and subdirectories.
fn key_directory_files(directory: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    const KEY: &str = "reply_verification_keys_dir";
    let read_error = |source| ConfigError::ReadSettingFile {
        key: KEY,
        path: directory.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symbolic links, as mounted ConfigMap entries are.
        let metadata = std::fs::metadata(&path).map_err(|source| ConfigError::ReadSettingFile {
            key: KEY,
            path: path.clone(),
            source,
        })?;
        if metadata.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Returns the perspective code of a key file named `<code>.pub` or `<code>.<suffix>.pub`.
fn key_file_code(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".pub")?;
    let code = stem.split('.').next()?;
    is_valid_subject_token(code).then_some(code)
}

/// Parses each key file of a perspective, so that an error names the file at fault.
fn load_verifier(code: &str, files: &[PathBuf]) -> Result<ReplyVerifier, ConfigError> {
    const KEY: &str = "reply_verification_keys_dir";
    let mut pems = Vec::new();
    for file in files {
        let bytes = read_setting_file(KEY, file)?;
        let pem = String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
            key: KEY,
            reason: format!("{} is not a PEM text file", file.display()),
        })?;
        ReplyVerifier::from_pems(code, [pem.as_str()]).map_err(|error| ConfigError::Invalid {
            key: KEY,
            reason: format!(
                "{}: {error}; write it with `openssl pkey -in <private key> -pubout`",
                file.display()
            ),
        })?;
        pems.push(pem);
    }
    ReplyVerifier::from_pems(code, pems.iter().map(String::as_str)).map_err(|error| {
        ConfigError::Invalid {
            key: KEY,
            reason: format!("the keys of {code}: {error}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::EncodePublicKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use mpic_shared::catalogue::Rir;
    use mpic_shared::signing::ReplySigner;
    use reqwest::Url;

    use super::*;
    use crate::config::test_files::TempDirectory;
    use crate::config::{HttpEndpoint, HttpEndpoints};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn public_pem(seed: u8) -> String {
        key(seed)
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    fn nats(code: &str) -> DeployedPerspective {
        DeployedPerspective {
            code: code.to_owned(),
            rir: Rir::Arin,
            endpoint: PerspectiveEndpoint::Nats,
        }
    }

    fn http(code: &str) -> DeployedPerspective {
        let endpoint = |path: &str| HttpEndpoint {
            url: Url::parse(&format!("https://checker.example/{path}")).unwrap(),
            headers: http::HeaderMap::new(),
        };
        DeployedPerspective {
            code: code.to_owned(),
            rir: Rir::RipeNcc,
            endpoint: PerspectiveEndpoint::Http(Box::new(HttpEndpoints {
                caa: endpoint("caa"),
                dcv: endpoint("dcv"),
            })),
        }
    }

    /// Reports whether `code`'s keys verify a reply signed with the key of `seed`.
    fn verifies(keys: &ReplyVerificationKeys, code: &str, seed: u8) -> bool {
        let signature = ReplySigner::new(code, key(seed))
            .sign("request-1", b"{}")
            .unwrap();
        keys.verifier(code).is_some_and(|verifier| {
            verifier
                .verify("request-1", b"{}", Some(&signature))
                .is_ok()
        })
    }

    #[test]
    fn directory_keys_are_grouped_by_code() {
        let directory = TempDirectory::new();
        directory.write("us-east-1.pub", public_pem(1));
        directory.write("us-east-1.2027-01.pub", public_pem(2));
        directory.write("eu-west-2.pub", public_pem(3));
        directory.write("ap-south-1.pub", public_pem(4));
        directory.write("README.md", "keys of the perspectives");
        directory.write(".hidden.pub", "not read");
        std::fs::create_dir(directory.path().join("..data")).unwrap();
        let deployed = [nats("us-east-1"), nats("eu-west-2")];

        let (keys, warnings) = ReplyVerificationKeys::load(directory.path(), &deployed).unwrap();

        assert!(verifies(&keys, "us-east-1", 1), "first key of us-east-1");
        assert!(verifies(&keys, "us-east-1", 2), "rotation key of us-east-1");
        assert!(!verifies(&keys, "us-east-1", 3), "eu-west-2's key");
        assert!(verifies(&keys, "eu-west-2", 3));
        assert!(keys.verifier("ap-south-1").is_none(), "not deployed");
        assert_eq!(keys.key_files("us-east-1").len(), 2);
        let ignored: Vec<String> = warnings
            .iter()
            .map(|warning| match warning {
                ConfigWarning::IgnoredKeyFile { path, .. } => Path::new(path)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                other => panic!("unexpected warning {other:?}"),
            })
            .collect();
        assert_eq!(ignored, ["README.md", "ap-south-1.pub"]);
    }

    #[test]
    fn bad_key_directories_name_the_problem() {
        let directory = TempDirectory::new();
        directory.write(
            "us-east-1.pub",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        );
        let error = ReplyVerificationKeys::load(directory.path(), &[nats("us-east-1")])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("reply_verification_keys_dir: ") && error.contains("us-east-1.pub"),
            "{error}"
        );

        let missing = directory.path().join("missing");
        let error = ReplyVerificationKeys::load(&missing, &[nats("us-east-1")])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("reply_verification_keys_dir: failed to read"),
            "{error}"
        );
    }

    #[test]
    fn required_signatures_need_a_key_per_nats_perspective() {
        let directory = TempDirectory::new();
        directory.write("us-east-1.pub", public_pem(1));
        directory.write("ap-southeast-1.pub", public_pem(5));
        let deployed = [
            nats("us-east-1"),
            nats("eu-west-2"),
            http("eu-central-1"),
            http("ap-southeast-1"),
        ];
        let (keys, _) = ReplyVerificationKeys::load(directory.path(), &deployed).unwrap();

        let error = check_reply_keys(ReplySignatures::Required, &keys, &deployed)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "reply_verification_keys_dir: no public key for the NATS perspective(s) eu-west-2"
            ),
            "{error}"
        );
        let error = check_reply_keys(
            ReplySignatures::Required,
            &ReplyVerificationKeys::default(),
            &deployed,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with(
                "reply_verification_keys_dir: missing, but reply_signatures is required"
            ),
            "{error}"
        );

        let signed_nats = [
            nats("us-east-1"),
            http("eu-central-1"),
            http("ap-southeast-1"),
        ];
        let warnings = check_reply_keys(ReplySignatures::Required, &keys, &signed_nats).unwrap();
        assert_eq!(
            warnings,
            [ConfigWarning::UnsignedHttpPerspectives {
                perspectives: vec!["eu-central-1".to_owned()]
            }],
            "only the HTTP perspective without a key is accepted unsigned"
        );
        let warnings = check_reply_keys(ReplySignatures::Off, &keys, &deployed).unwrap();
        assert_eq!(warnings, [ConfigWarning::ReplySignaturesOff]);
    }

    #[test]
    fn signature_setting_parses() {
        assert_eq!("required".parse(), Ok(ReplySignatures::Required));
        assert_eq!("OFF".parse(), Ok(ReplySignatures::Off));
        assert!("optional".parse::<ReplySignatures>().is_err());
        assert_eq!(ReplySignatures::default(), ReplySignatures::Required);
    }
}
