//! Decides a check from the records found. Pure, no I/O.
//!
//! The records arrive as [`RecordValue`]s: TXT character-strings already joined, names in
//! A-label form with their trailing dot, CAA properties as tag and raw value. A value that is
//! not valid UTF-8 is shown with replacement characters in `records_seen` and never matches,
//! except for the key authorization digest, which is compared as bytes.

use std::net::IpAddr;

use super::matching::{
    CaseRule, ChangeRule, MatchExtent, address_matches, change_value_matches,
    contact_email_matches, contact_phone_matches, key_authorization_matches, name_matches,
};
use super::persistent::{RecordVerdict, evaluate_record};
use super::plan::Expectation;

/// One record of the answer, reduced to what the methods compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordValue {
    /// A TXT record with its character-strings joined without separator.
    Text(Vec<u8>),
    /// A CNAME target or PTR name, in A-labels with a trailing dot.
    Name(String),
    /// A CAA property.
    Caa {
        /// The property tag as written.
        tag: String,
        /// The raw property value.
        value: Vec<u8>,
    },
    /// An A or AAAA address.
    Address(IpAddr),
}

/// The outcome of comparing the records with the expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Whether a record satisfies the expectation.
    pub passed: bool,
    /// The records the method looked at, in presentation form, for `records_seen`.
    pub records_seen: Vec<String>,
    /// Reasons for rejecting records, where the method gives them (`dns-persistent`), for logs.
    pub rejections: Vec<String>,
}

/// Compares `records` with `expectation`; `now` (Unix seconds) serves `persistUntil`.
pub fn evaluate(expectation: &Expectation, records: &[RecordValue], now: u64) -> Evaluation {
    let relevant: Vec<&RecordValue> = records
        .iter()
        .filter(|record| is_relevant(expectation, record))
        .collect();
    let records_seen = relevant.iter().map(|record| presentation(record)).collect();

    if let Expectation::Persistent(criteria) = expectation {
        let verdicts: Vec<RecordVerdict> = relevant
            .iter()
            .filter_map(|record| text_of(record))
            .map(|text| evaluate_record(text, criteria, now))
            .collect();
        return Evaluation {
            passed: verdicts.contains(&RecordVerdict::Authorizes),
            records_seen,
            rejections: verdicts
                .iter()
                .map(|verdict| format!("{verdict:?}"))
                .collect(),
        };
    }

    Evaluation {
        passed: relevant.iter().any(|record| satisfies(expectation, record)),
        records_seen,
        rejections: Vec::new(),
    }
}

/// Returns whether the method looks at this record at all: CAA contact methods read only
/// their own property (RFC 8659 §4.1: tags compare without case), the rest their record type.
fn is_relevant(expectation: &Expectation, record: &RecordValue) -> bool {
    match (expectation, record) {
        (Expectation::ContactEmail(_), RecordValue::Caa { tag, .. }) => {
            tag.eq_ignore_ascii_case(CONTACT_EMAIL_TAG)
        }
        (Expectation::ContactPhone(_), RecordValue::Caa { tag, .. }) => {
            tag.eq_ignore_ascii_case(CONTACT_PHONE_TAG)
        }
        (
            Expectation::KeyAuthorization(_)
            | Expectation::ChangeText { .. }
            | Expectation::ContactEmail(_)
            | Expectation::ContactPhone(_)
            | Expectation::Persistent(_),
            RecordValue::Text(_),
        ) => true,
        (Expectation::ChangeName { .. } | Expectation::ReverseName(_), RecordValue::Name(_)) => {
            true
        }
        (Expectation::ChangeCaaValue { .. }, RecordValue::Caa { .. }) => true,
        (Expectation::Address(_), RecordValue::Address(_)) => true,
        _ => false,
    }
}

fn satisfies(expectation: &Expectation, record: &RecordValue) -> bool {
    match (expectation, record) {
        (Expectation::KeyAuthorization(hash), RecordValue::Text(bytes)) => {
            key_authorization_matches(bytes, hash)
        }
        (Expectation::ChangeText { expected, rule }, record) => {
            text_of(record).is_some_and(|text| change_value_matches(text, expected, *rule))
        }
        (Expectation::ChangeName { expected, extent }, RecordValue::Name(name)) => {
            name_matches(name, expected, *extent)
        }
        (Expectation::ChangeCaaValue { expected, extent }, record) => {
            let rule = ChangeRule {
                extent: *extent,
                case: CaseRule::Insensitive,
            };
            text_of(record).is_some_and(|value| change_value_matches(value, expected, rule))
        }
        (Expectation::ContactEmail(expected), record) => {
            text_of(record).is_some_and(|value| contact_email_matches(value, expected))
        }
        (Expectation::ContactPhone(expected), record) => {
            text_of(record).is_some_and(|value| contact_phone_matches(value, expected))
        }
        (Expectation::Address(expected), RecordValue::Address(address)) => {
            address_matches(*address, *expected)
        }
        (Expectation::ReverseName(expected), RecordValue::Name(name)) => {
            name_matches(name, expected, MatchExtent::Whole)
        }
        _ => false,
    }
}

/// Returns the text of a TXT record or the value of a CAA property, if it is UTF-8.
fn text_of(record: &RecordValue) -> Option<&str> {
    match record {
        RecordValue::Text(bytes) | RecordValue::Caa { value: bytes, .. } => {
            std::str::from_utf8(bytes).ok()
        }
        RecordValue::Name(_) | RecordValue::Address(_) => None,
    }
}

/// Formats a record for `records_seen` the way the Python implementation does: the joined
/// TXT text, the name, the CAA property value alone, the canonical address (RFC 5952).
fn presentation(record: &RecordValue) -> String {
    match record {
        RecordValue::Text(bytes) | RecordValue::Caa { value: bytes, .. } => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        RecordValue::Name(name) => name.clone(),
        RecordValue::Address(address) => address.to_string(),
    }
}

/// The CAA property of a DNS CAA Email Contact (BR Appendix A.1.1).
const CONTACT_EMAIL_TAG: &str = "contactemail";

/// The CAA property of a DNS CAA Phone Contact (BR Appendix A.1.2).
const CONTACT_PHONE_TAG: &str = "contactphone";

#[cfg(test)]
mod tests {
    use super::super::persistent::{PersistCriteria, PersistScope};
    use super::*;

    const NOW: u64 = 1_750_000_000;

    fn text(value: &str) -> RecordValue {
        RecordValue::Text(value.as_bytes().to_vec())
    }

    fn caa(tag: &str, value: &str) -> RecordValue {
        RecordValue::Caa {
            tag: tag.to_owned(),
            value: value.as_bytes().to_vec(),
        }
    }

    fn name(value: &str) -> RecordValue {
        RecordValue::Name(value.to_owned())
    }

    fn address(value: &str) -> RecordValue {
        RecordValue::Address(value.parse().unwrap())
    }

    fn persistent(scope: PersistScope) -> Expectation {
        Expectation::Persistent(PersistCriteria {
            issuer_domain_names: vec!["ca.example".to_owned()],
            account_uri: "https://ca.example/acct/1".to_owned(),
            scope,
        })
    }

    /// Name, expectation, records, expected `passed`, expected `records_seen`.
    type Case = (
        &'static str,
        Expectation,
        Vec<RecordValue>,
        bool,
        Vec<&'static str>,
    );

    #[test]
    fn decisions_and_records_seen() {
        let sensitive_substring = ChangeRule {
            extent: MatchExtent::Substring,
            case: CaseRule::Sensitive,
        };
        let cases: Vec<Case> = vec![
            (
                "key authorization among several records: passes",
                Expectation::KeyAuthorization("abc".to_owned()),
                vec![text("old"), text("abc")],
                true,
                vec!["old", "abc"],
            ),
            (
                "key authorization only in other case: fails",
                Expectation::KeyAuthorization("abc".to_owned()),
                vec![text("ABC")],
                false,
                vec!["ABC"],
            ),
            (
                "key authorization in non-UTF-8 record compared as bytes: passes",
                Expectation::KeyAuthorization("abc".to_owned()),
                vec![RecordValue::Text(vec![0xff]), text("abc")],
                true,
                vec!["\u{fffd}", "abc"],
            ),
            (
                "dns-change TXT substring: passes",
                Expectation::ChangeText {
                    expected: "tok".to_owned(),
                    rule: sensitive_substring,
                },
                vec![text("a-tok-b")],
                true,
                vec!["a-tok-b"],
            ),
            (
                "dns-change CAA value in other case: passes",
                Expectation::ChangeCaaValue {
                    expected: "token".to_owned(),
                    extent: MatchExtent::Whole,
                },
                vec![caa("issue", "ca.example"), caa("tbs", "TOKEN")],
                true,
                vec!["ca.example", "TOKEN"],
            ),
            (
                "dns-change CNAME target: passes",
                Expectation::ChangeName {
                    expected: "tok.dcv.example.net".to_owned(),
                    extent: MatchExtent::Whole,
                },
                vec![name("tok.dcv.example.net.")],
                true,
                vec!["tok.dcv.example.net."],
            ),
            (
                "contact email in TXT: passes",
                Expectation::ContactEmail("admin@example.com".to_owned()),
                vec![text("admin@example.com")],
                true,
                vec!["admin@example.com"],
            ),
            (
                "contact email reads only contactemail properties: passes",
                Expectation::ContactEmail("admin@example.com".to_owned()),
                vec![
                    caa("issue", "admin@example.com"),
                    caa("ContactEmail", "admin@example.com"),
                ],
                true,
                vec!["admin@example.com"],
            ),
            (
                "contact email only in an issue property: fails",
                Expectation::ContactEmail("admin@example.com".to_owned()),
                vec![caa("issue", "admin@example.com")],
                false,
                vec![],
            ),
            (
                "contact phone reads only contactphone properties: passes",
                Expectation::ContactPhone("+1 555 0100".to_owned()),
                vec![
                    caa("contactemail", "a@example.com"),
                    caa("contactphone", "+1 555 0100"),
                ],
                true,
                vec!["+1 555 0100"],
            ),
            (
                "address in canonical form: passes",
                Expectation::Address("2001:4860:4860::8888".parse().unwrap()),
                vec![address("2001:4860:4860:0:00:000:0000:8888")],
                true,
                vec!["2001:4860:4860::8888"],
            ),
            (
                "reverse name with trailing dot: passes",
                Expectation::ReverseName("host.example.com".to_owned()),
                vec![name("host.example.com.")],
                true,
                vec!["host.example.com."],
            ),
            (
                "reverse name is another host: fails",
                Expectation::ReverseName("host.example.com".to_owned()),
                vec![name("other.example.com.")],
                false,
                vec!["other.example.com."],
            ),
            (
                "persistent record: passes",
                persistent(PersistScope::ExactName),
                vec![
                    text("other.example; accounturi=x"),
                    text("ca.example; accounturi=https://ca.example/acct/1"),
                ],
                true,
                vec![
                    "other.example; accounturi=x",
                    "ca.example; accounturi=https://ca.example/acct/1",
                ],
            ),
            (
                "persistent record without policy for a wildcard: fails",
                persistent(PersistScope::Wildcard),
                vec![text("ca.example; accounturi=https://ca.example/acct/1")],
                false,
                vec!["ca.example; accounturi=https://ca.example/acct/1"],
            ),
        ];
        for (case, expectation, records, passed, seen) in cases {
            let evaluation = evaluate(&expectation, &records, NOW);
            assert_eq!(evaluation.passed, passed, "case {case:?}: passed");
            assert_eq!(evaluation.records_seen, seen, "case {case:?}: records_seen");
        }
    }

    #[test]
    fn persistent_rejections_are_reported() {
        let records = vec![text("ca.example; accounturi=https://ca.example/acct/2")];
        let evaluation = evaluate(&persistent(PersistScope::ExactName), &records, NOW);
        assert!(!evaluation.passed, "other account must not pass");
        assert_eq!(evaluation.rejections, ["OtherAccount"], "rejections");
    }
}
