//! The account label of `dns-account-01` (BR §3.2.2.4.21, draft-ietf-acme-dns-account-label).
//!
//! The draft builds the validation domain name by prepending two labels to the domain name
//! being validated: `"_" || base32(SHA-256(<ACCOUNT_URL>)[0:10]) || "._acme-challenge"`, where
//! `ACCOUNT_URL` is the account URL of RFC 8555 §7.3 (the `Location` of the new-account
//! response) and base32 is RFC 4648 §6. Ten bytes are 80 bits, so the encoding is exactly 16
//! characters and never padded. It is written in lower case, as the draft's example shows; DNS
//! compares labels without case anyway.

use sha2::{Digest, Sha256};

/// Returns the account label for `account_uri`, without the leading underscore.
///
/// The draft's example: `https://example.com/acme/acct/ExampleAccount` gives `ujmmovf2vn55tgye`.
pub fn account_label(account_uri: &str) -> String {
    let digest = Sha256::digest(account_uri.as_bytes());
    base32_lower(&digest[..LABEL_DIGEST_BYTES])
}

/// Encodes `bytes` in RFC 4648 §6 base32 with the lower-case alphabet and no padding.
fn base32_lower(bytes: &[u8]) -> String {
    let mut encoded = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u16 = 0;
    let mut buffered_bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        buffered_bits += 8;
        while buffered_bits >= 5 {
            buffered_bits -= 5;
            encoded.push(BASE32_LOWER[usize::from((buffer >> buffered_bits) & 0x1f)] as char);
        }
        // Keep only the bits not yet encoded: at most 4 stay, so 12 of the 16 bits are ever used.
        buffer &= (1 << buffered_bits) - 1;
    }
    if buffered_bits > 0 {
        let index = (buffer << (5 - buffered_bits)) & 0x1f;
        encoded.push(BASE32_LOWER[usize::from(index)] as char);
    }
    encoded
}

/// How many leading bytes of the SHA-256 digest the label encodes (`[0:10]` in the draft).
const LABEL_DIGEST_BYTES: usize = 10;

/// The RFC 4648 §6 alphabet, lower-cased.
const BASE32_LOWER: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_label_matches_draft_example() {
        // The example of draft-ietf-acme-dns-account-label.
        assert_eq!(
            account_label("https://example.com/acme/acct/ExampleAccount"),
            "ujmmovf2vn55tgye"
        );
    }

    #[test]
    fn account_label_shape() {
        let cases = [
            ("short URI", "https://ca.example/acct/1"),
            ("empty path", "https://ca.example/"),
            (
                "long URI",
                "https://ca.example/acme/acct/0123456789abcdef0123456789abcdef",
            ),
        ];
        for (name, uri) in cases {
            let label = account_label(uri);
            assert_eq!(label.len(), 16, "case {name:?}: length of {label:?}");
            assert!(
                label.bytes().all(|c| BASE32_LOWER.contains(&c)),
                "case {name:?}: {label:?} has a character outside the alphabet"
            );
        }
    }

    #[test]
    fn account_label_differs_per_uri() {
        assert_ne!(
            account_label("https://ca.example/acct/1"),
            account_label("https://ca.example/acct/2"),
            "different URIs gave the same label"
        );
        assert_ne!(
            account_label("https://ca.example/acct/A"),
            account_label("https://ca.example/acct/a"),
            "the URI is compared without case"
        );
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        // RFC 4648 §10 test vectors, lower-cased and without padding.
        let cases = [
            ("empty", "", ""),
            ("one byte", "f", "my"),
            ("two bytes", "fo", "mzxq"),
            ("three bytes", "foo", "mzxw6"),
            ("four bytes", "foob", "mzxw6yq"),
            ("five bytes", "fooba", "mzxw6ytb"),
            ("six bytes", "foobar", "mzxw6ytboi"),
        ];
        for (name, input, expected) in cases {
            assert_eq!(base32_lower(input.as_bytes()), expected, "case {name:?}");
        }
    }
}
