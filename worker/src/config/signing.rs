//! The Ed25519 key that signs the worker's replies (`reply_signing_key_file`). The signature
//! format is defined in [`mpic_shared::signing`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use mpic_shared::signing::{ReplySigner, SigningError};

use super::{ConfigError, invalid, read_setting_text};

/// The Ed25519 key that signs this worker's replies (`reply_signing_key_file`).
///
/// The file is a PKCS#8 PEM private key. Generate one per perspective, and give the coordinator
/// its public key:
///
/// ```text
/// openssl genpkey -algorithm ed25519 -out reply-signing.key
/// openssl pkey -in reply-signing.key -pubout -out reply-signing.pub
/// ```
///
/// The signature covers the perspective code, the request's `Mpic-Request-Id` and the reply
/// body (see [`mpic_shared::signing`]). `Debug` output and the effective configuration show
/// only the public key.
#[derive(Clone)]
pub struct ReplySigningKey {
    file: PathBuf,
    signer: Arc<ReplySigner>,
}

impl ReplySigningKey {
    /// Reads the Ed25519 PKCS#8 PEM key in `file` (`reply_signing_key_file`) to sign the replies
    /// of `perspective_code`.
    pub fn from_file(file: &Path, perspective_code: &str) -> Result<ReplySigningKey, ConfigError> {
        const KEY: &str = "reply_signing_key_file";
        let pem = read_setting_text(KEY, file)?;
        let signer = ReplySigner::from_pem(perspective_code, &pem).map_err(|error| {
            invalid(
                KEY,
                format!(
                    "{}: {error}; generate one with `openssl genpkey -algorithm ed25519`",
                    file.display()
                ),
            )
        })?;
        Ok(ReplySigningKey {
            file: file.to_owned(),
            signer: Arc::new(signer),
        })
    }

    /// Returns the file the key was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Returns the public key as base64 of its SubjectPublicKeyInfo (RFC 8410 §4), the text
    /// between the PEM markers of `openssl pkey -pubout`.
    pub fn public_key(&self) -> String {
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(self.signer.verifying_key().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(spki)
    }

    /// Signs a reply `body` for the request `request_id` and returns the value of the
    /// `Mpic-Signature` header.
    pub fn sign(&self, request_id: &str, body: &[u8]) -> Result<String, SigningError> {
        self.signer.sign(request_id, body)
    }
}

impl PartialEq for ReplySigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file && self.signer.verifying_key() == other.signer.verifying_key()
    }
}

impl fmt::Debug for ReplySigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplySigningKey")
            .field("file", &self.file)
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// The DER bytes that precede the 32-byte public key in an Ed25519 SubjectPublicKeyInfo
/// (RFC 8410 §4): SEQUENCE, AlgorithmIdentifier with OID 1.3.101.112, BIT STRING header.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
