//! Signed perspective replies.
//!
//! Every reply a worker sends can carry an Ed25519 signature made with its perspective's key.
//! The coordinator holds each perspective's public keys, so a compromised region holding valid
//! NATS credentials still cannot answer for another region, and a reply recorded earlier cannot
//! be played back: the signature covers a request identifier that the coordinator makes fresh
//! for every call.
//!
//! The signed message is `mpic-reply-v1 NUL <perspective code> NUL <request id> NUL
//! SHA-256(reply body)`. The signature travels base64-encoded in [`SIGNATURE_HEADER`] and the
//! request identifier in [`REQUEST_ID_HEADER`] (both NATS headers and HTTP headers).
//!
//! Keys are PKCS#8 PEM files as `openssl genpkey -algorithm ed25519` writes them; public keys
//! are SubjectPublicKeyInfo PEM (`openssl pkey -pubout`). A perspective may have several public
//! keys at once, which is how keys are rotated without downtime.

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Header carrying the coordinator's fresh identifier for one perspective call.
pub const REQUEST_ID_HEADER: &str = "Mpic-Request-Id";

/// Header carrying the base64 Ed25519 signature of a reply.
pub const SIGNATURE_HEADER: &str = "Mpic-Signature";

/// Domain-separation label, so these signatures can never be mistaken for another protocol's.
const SIGNATURE_CONTEXT: &[u8] = b"mpic-reply-v1";

/// Maximum length of a request identifier; ours are UUIDs (36 characters).
const MAX_REQUEST_ID_LEN: usize = 128;

/// The reason a key could not be loaded or a reply not verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// The private key is not an Ed25519 PKCS#8 PEM document.
    #[error("invalid Ed25519 private key (expected PKCS#8 PEM): {0}")]
    InvalidPrivateKey(String),
    /// The public key is not an Ed25519 SubjectPublicKeyInfo PEM document.
    #[error("invalid Ed25519 public key (expected SubjectPublicKeyInfo PEM): {0}")]
    InvalidPublicKey(String),
    /// The reply carries no signature.
    #[error("the reply is not signed")]
    MissingSignature,
    /// The signature header is not base64 of 64 bytes.
    #[error("the reply signature is malformed")]
    MalformedSignature,
    /// No configured key of the perspective verifies the signature.
    #[error("the reply signature does not verify with any key of perspective {perspective}")]
    BadSignature {
        /// The perspective whose keys were tried.
        perspective: String,
    },
    /// The request identifier is empty, too long or contains a NUL byte.
    #[error("invalid request identifier")]
    InvalidRequestId,
}

/// Signs the replies of one perspective.
pub struct ReplySigner {
    perspective_code: String,
    key: SigningKey,
}

impl std::fmt::Debug for ReplySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplySigner")
            .field("perspective_code", &self.perspective_code)
            .field(
                "public_key",
                &BASE64.encode(self.key.verifying_key().as_bytes()),
            )
            .finish_non_exhaustive()
    }
}

impl ReplySigner {
    /// Loads a PKCS#8 PEM private key for a perspective.
    pub fn from_pem(perspective_code: &str, pem: &str) -> Result<Self, SigningError> {
        let key = SigningKey::from_pkcs8_pem(pem)
            .map_err(|error| SigningError::InvalidPrivateKey(error.to_string()))?;
        Ok(Self::new(perspective_code, key))
    }

    /// Wraps an existing key.
    pub fn new(perspective_code: &str, key: SigningKey) -> Self {
        Self {
            perspective_code: perspective_code.to_owned(),
            key,
        }
    }

    /// Returns the public key that verifies this signer's replies.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs a reply body for the request with the given identifier; returns the header value.
    pub fn sign(&self, request_id: &str, body: &[u8]) -> Result<String, SigningError> {
        let message = signed_message(&self.perspective_code, request_id, body)?;
        Ok(BASE64.encode(self.key.sign(&message).to_bytes()))
    }
}

/// Verifies replies of one perspective against its configured public keys.
#[derive(Debug, Clone)]
pub struct ReplyVerifier {
    perspective_code: String,
    keys: Vec<VerifyingKey>,
}

impl ReplyVerifier {
    /// Builds a verifier from one or more SubjectPublicKeyInfo PEM documents.
    pub fn from_pems<'a>(
        perspective_code: &str,
        pems: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, SigningError> {
        let keys = pems
            .into_iter()
            .map(|pem| {
                VerifyingKey::from_public_key_pem(pem)
                    .map_err(|error| SigningError::InvalidPublicKey(error.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(perspective_code, keys))
    }

    /// Builds a verifier from keys already parsed.
    pub fn new(perspective_code: &str, keys: Vec<VerifyingKey>) -> Self {
        Self {
            perspective_code: perspective_code.to_owned(),
            keys,
        }
    }

    /// Checks a reply's signature for the request with the given identifier.
    pub fn verify(
        &self,
        request_id: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<(), SigningError> {
        let encoded = signature.ok_or(SigningError::MissingSignature)?;
        let bytes = BASE64
            .decode(encoded.trim())
            .map_err(|_| SigningError::MalformedSignature)?;
        let signature =
            Signature::from_slice(&bytes).map_err(|_| SigningError::MalformedSignature)?;
        let message = signed_message(&self.perspective_code, request_id, body)?;
        if self
            .keys
            .iter()
            .any(|key| key.verify(&message, &signature).is_ok())
        {
            return Ok(());
        }
        Err(SigningError::BadSignature {
            perspective: self.perspective_code.clone(),
        })
    }
}

/// Checks that a request identifier can be signed: 1 to 128 bytes without a NUL byte.
///
/// A worker calls it before running a check, so that a request it could not sign is rejected
/// without doing the work.
pub fn validate_request_id(request_id: &str) -> Result<(), SigningError> {
    if request_id.is_empty() || request_id.len() > MAX_REQUEST_ID_LEN || request_id.contains('\0') {
        return Err(SigningError::InvalidRequestId);
    }
    Ok(())
}

fn signed_message(
    perspective_code: &str,
    request_id: &str,
    body: &[u8],
) -> Result<Vec<u8>, SigningError> {
    validate_request_id(request_id)?;
    let digest = Sha256::digest(body);
    let mut message = Vec::with_capacity(
        SIGNATURE_CONTEXT.len() + perspective_code.len() + request_id.len() + 35,
    );
    message.extend_from_slice(SIGNATURE_CONTEXT);
    message.push(0);
    message.extend_from_slice(perspective_code.as_bytes());
    message.push(0);
    message.extend_from_slice(request_id.as_bytes());
    message.push(0);
    message.extend_from_slice(&digest);
    Ok(message)
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};

    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn signed_reply_verifies() {
        let signer = ReplySigner::new("us-east-1", key(1));
        let verifier = ReplyVerifier::new("us-east-1", vec![signer.verifying_key()]);
        let signature = signer.sign("req-1", b"{}").unwrap();
        assert!(verifier.verify("req-1", b"{}", Some(&signature)).is_ok());
    }

    #[test]
    fn tampered_or_foreign_replies_are_rejected() {
        let signer = ReplySigner::new("us-east-1", key(1));
        let signature = signer.sign("req-1", b"{\"check_passed\":false}").unwrap();
        let verifier = ReplyVerifier::new("us-east-1", vec![signer.verifying_key()]);
        let other_region = ReplyVerifier::new("eu-west-2", vec![signer.verifying_key()]);
        let wrong_key = ReplyVerifier::new("us-east-1", vec![key(2).verifying_key()]);

        struct Case<'a> {
            name: &'a str,
            verifier: &'a ReplyVerifier,
            request_id: &'a str,
            body: &'a [u8],
            signature: Option<&'a str>,
        }
        let original: &[u8] = b"{\"check_passed\":false}";
        let cases = [
            Case {
                name: "changed body",
                verifier: &verifier,
                request_id: "req-1",
                body: b"{\"check_passed\":true}",
                signature: Some(&signature),
            },
            Case {
                name: "replayed for another request",
                verifier: &verifier,
                request_id: "req-2",
                body: original,
                signature: Some(&signature),
            },
            Case {
                name: "answered as another perspective",
                verifier: &other_region,
                request_id: "req-1",
                body: original,
                signature: Some(&signature),
            },
            Case {
                name: "unknown key",
                verifier: &wrong_key,
                request_id: "req-1",
                body: original,
                signature: Some(&signature),
            },
            Case {
                name: "unsigned",
                verifier: &verifier,
                request_id: "req-1",
                body: original,
                signature: None,
            },
            Case {
                name: "not base64",
                verifier: &verifier,
                request_id: "req-1",
                body: original,
                signature: Some("%%%"),
            },
        ];
        for case in cases {
            assert!(
                case.verifier
                    .verify(case.request_id, case.body, case.signature)
                    .is_err(),
                "case {:?} was accepted",
                case.name
            );
        }
    }

    #[test]
    fn rotation_accepts_old_and_new_keys() {
        let old = ReplySigner::new("ap-south-1", key(3));
        let new = ReplySigner::new("ap-south-1", key(4));
        let verifier =
            ReplyVerifier::new("ap-south-1", vec![old.verifying_key(), new.verifying_key()]);
        for signer in [&old, &new] {
            let signature = signer.sign("req", b"x").unwrap();
            assert!(verifier.verify("req", b"x", Some(&signature)).is_ok());
        }
    }

    #[test]
    fn pem_keys_load() {
        let private_pem = key(5).to_pkcs8_pem(LineEnding::LF).unwrap();
        let public_pem = key(5)
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let signer = ReplySigner::from_pem("sa-east-1", &private_pem).unwrap();
        let verifier = ReplyVerifier::from_pems("sa-east-1", [public_pem.as_str()]).unwrap();
        let signature = signer.sign("req", b"body").unwrap();
        assert!(verifier.verify("req", b"body", Some(&signature)).is_ok());
        assert!(ReplySigner::from_pem("x", "not a key").is_err());
        assert!(ReplyVerifier::from_pems("x", ["not a key"]).is_err());
    }

    #[test]
    fn request_ids_are_bounded() {
        let signer = ReplySigner::new("a", key(6));
        assert!(signer.sign("", b"").is_err());
        assert!(signer.sign("a\0b", b"").is_err());
        assert!(signer.sign(&"x".repeat(129), b"").is_err());
        assert!(validate_request_id(&"x".repeat(128)).is_ok());
        assert!(validate_request_id(&"x".repeat(129)).is_err());
        assert!(validate_request_id("").is_err());
    }
}
