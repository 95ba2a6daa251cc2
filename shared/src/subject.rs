//! NATS subject names and the headers that travel with a perspective call.
//!
//! A perspective's checks are published on `<prefix>.<perspective code>.caa` and
//! `<prefix>.<perspective code>.dcv`; the default prefix is `mpic`. All workers of one
//! perspective subscribe in the queue group [`QUEUE_GROUP`], so NATS hands each request to one of
//! them and a region scales by adding workers.

use crate::request::CheckType;

/// The subject prefix used when the configuration sets none.
pub const DEFAULT_SUBJECT_PREFIX: &str = "mpic";

/// The queue group every worker joins on its perspective's subjects.
pub const QUEUE_GROUP: &str = "mpic-workers";

/// Reply header naming the perspective that answered. The coordinator counts a reply whose
/// header names another perspective as that perspective's failure.
pub const PERSPECTIVE_HEADER: &str = "Mpic-Perspective";

/// Request header carrying the caller's trace identifier, so worker logs can be joined with the
/// coordinator's.
pub const TRACE_HEADER: &str = "Mpic-Trace-Identifier";

/// Returns the subject a perspective's checks of one type are published on.
pub fn check_subject(prefix: &str, perspective_code: &str, check_type: CheckType) -> String {
    format!("{prefix}.{perspective_code}.{}", check_type.as_str())
}

/// Returns the wildcard subject covering all of a perspective's checks (`<prefix>.<code>.>`),
/// as NATS permissions for a region's workers are written.
pub fn perspective_wildcard(prefix: &str, perspective_code: &str) -> String {
    format!("{prefix}.{perspective_code}.>")
}

/// Reports whether `token` can be one token of a subject. We accept ASCII letters, digits, `-`
/// and `_`, which is stricter than NATS (it also rejects `.`, `*`, `>` and whitespace) and keeps
/// codes safe in file names, environment variables and Kubernetes object names.
pub fn is_valid_subject_token(token: &str) -> bool {
    !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reports whether `prefix` is one or more valid tokens separated by dots.
pub fn is_valid_subject_prefix(prefix: &str) -> bool {
    prefix.split('.').all(is_valid_subject_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_documented_pattern() {
        assert_eq!(
            check_subject("mpic", "us-east-1", CheckType::Caa),
            "mpic.us-east-1.caa"
        );
        assert_eq!(
            check_subject("ca1.mpic", "eu-west-2", CheckType::Dcv),
            "ca1.mpic.eu-west-2.dcv"
        );
        assert_eq!(
            perspective_wildcard("mpic", "ap-south-1"),
            "mpic.ap-south-1.>"
        );
    }

    #[test]
    fn subject_tokens_reject_nats_metacharacters() {
        for good in ["us-east-1", "eu_west_2", "A1"] {
            assert!(is_valid_subject_token(good), "{good:?} should be valid");
        }
        for bad in ["", "eu.west", "us east", "*", ">", "us-east-1>", "é"] {
            assert!(!is_valid_subject_token(bad), "{bad:?} should be invalid");
        }
        assert!(is_valid_subject_prefix("ca1.mpic"));
        assert!(!is_valid_subject_prefix("mpic."));
        assert!(!is_valid_subject_prefix(""));
    }
}
