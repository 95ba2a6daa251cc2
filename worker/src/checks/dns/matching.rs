//! Comparisons between a record value and the value the CA expects. Pure, no I/O.
//!
//! Every comparison rejects an empty expected value, so a request that slipped past the
//! API's `empty-challenge-value` check can never pass on a substring match of nothing.

use std::net::IpAddr;

/// The comparison rule of a `dns-change` value. BR §3.2.2.4.7 leaves the rule to the CA, and
/// the API's `require_exact_match` and `require_exact_case` choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeRule {
    /// Whether the record must equal the value or only contain it.
    pub extent: MatchExtent,
    /// Whether letter case must match.
    pub case: CaseRule,
}

/// Whether a record must equal the expected value or only contain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchExtent {
    /// The whole record equals the value (`require_exact_match`).
    Whole,
    /// The value appears somewhere in the record (the API's default).
    Substring,
}

/// Whether letter case takes part in a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseRule {
    /// Case must match (`require_exact_case`, the API's default for TXT).
    Sensitive,
    /// Case is ignored (Unicode lower-casing of both sides).
    Insensitive,
}

/// Returns whether a joined TXT record is byte-for-byte the key authorization digest
/// (RFC 8555 §8.4: "verify that the contents of one of the TXT records match the digest value").
pub fn key_authorization_matches(record: &[u8], key_authorization_hash: &str) -> bool {
    !key_authorization_hash.is_empty() && record == key_authorization_hash.as_bytes()
}

/// Returns whether a `dns-change` record value satisfies `rule` for `expected`.
pub fn change_value_matches(record: &str, expected: &str, rule: ChangeRule) -> bool {
    if expected.is_empty() {
        return false;
    }
    let (record, expected) = match rule.case {
        CaseRule::Sensitive => (record.to_owned(), expected.to_owned()),
        CaseRule::Insensitive => (record.to_lowercase(), expected.to_lowercase()),
    };
    match rule.extent {
        MatchExtent::Whole => record == expected,
        MatchExtent::Substring => record.contains(&expected),
    }
}

/// Returns whether a domain name from a record (a CNAME target or a PTR name) satisfies `rule`.
///
/// Names are compared without case and without one trailing dot on either side, because DNS
/// names are case-insensitive (RFC 4343) and the dot only marks the name as absolute.
pub fn name_matches(record_name: &str, expected: &str, extent: MatchExtent) -> bool {
    let rule = ChangeRule {
        extent,
        case: CaseRule::Insensitive,
    };
    change_value_matches(
        without_trailing_dot(record_name),
        without_trailing_dot(expected),
        rule,
    )
}

/// Returns whether a contact email record (TXT or CAA `contactemail`) names `expected`.
///
/// The BR (Appendix A.1.1, A.2.1) require the entire value to be an email address "with no
/// additional padding or structure", so nothing is trimmed. The local part is compared
/// exactly, because RFC 5321 §2.4 makes it case-sensitive; the domain part is compared
/// without ASCII case, as DNS names are. A value that does not look like an address (no `@`,
/// an empty part, white space or control characters) is never usable.
pub fn contact_email_matches(record: &str, expected: &str) -> bool {
    let (Some((record_local, record_domain)), Some((local, domain))) =
        (split_email_address(record), split_email_address(expected))
    else {
        return false;
    };
    record_local == local && record_domain.eq_ignore_ascii_case(domain)
}

/// Returns whether a contact phone record (TXT or CAA `contactphone`) is `expected`.
///
/// The value must be a Global Number (RFC 3966 §5.1.4, as the BR Appendix A.1.2 and A.2.2
/// require): a `+`, then digits, with visual separators (`-`, `.`, `(`, `)`, and the spaces the
/// BR allow). It must equal `expected` exactly; separators are not normalized away.
pub fn contact_phone_matches(record: &str, expected: &str) -> bool {
    is_global_number(record) && record == expected
}

/// Returns whether an address record contains `expected`, compared as addresses so that every
/// textual form of an IPv6 address (RFC 4291 §2.2, RFC 5952) is the same address.
pub fn address_matches(record: IpAddr, expected: IpAddr) -> bool {
    record == expected
}

/// Splits an email address at its last `@`, or returns `None` if it cannot be one.
fn split_email_address(address: &str) -> Option<(&str, &str)> {
    if address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Some((local, domain))
}

/// Returns whether `value` is an RFC 3966 `global-number-digits`, with spaces allowed as the
/// BR allow them: `"+" *phonedigit DIGIT *phonedigit`.
fn is_global_number(value: &str) -> bool {
    let Some(digits) = value.strip_prefix('+') else {
        return false;
    };
    let mut has_digit = false;
    for c in digits.chars() {
        match c {
            '0'..='9' => has_digit = true,
            '-' | '.' | '(' | ')' | ' ' => {}
            _ => return false,
        }
    }
    has_digit
}

fn without_trailing_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXACT_CASE: CaseRule = CaseRule::Sensitive;
    const ANY_CASE: CaseRule = CaseRule::Insensitive;

    #[test]
    fn key_authorization_is_byte_for_byte() {
        let hash = "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo";
        let cases: [(&str, &[u8], bool); 6] = [
            ("equal: passes", hash.as_bytes(), true),
            (
                "lower case: fails",
                b"7fwkjpskf-th54wu4eiifa3nhzyaevsl7953ihy-tpo",
                false,
            ),
            (
                "leading space: fails",
                b" 7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo",
                false,
            ),
            (
                "trailing space: fails",
                b"7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo ",
                false,
            ),
            ("prefix only: fails", b"7FwkJPsKf", false),
            ("empty record: fails", b"", false),
        ];
        for (name, record, expected) in cases {
            assert_eq!(
                key_authorization_matches(record, hash),
                expected,
                "case {name:?}"
            );
        }
        assert!(
            !key_authorization_matches(b"", ""),
            "empty expected hash must never match"
        );
    }

    #[test]
    fn change_value_rules() {
        let rule = |extent, case| ChangeRule { extent, case };
        let cases = [
            (
                "substring found: passes",
                "x-token-y",
                "token",
                rule(MatchExtent::Substring, EXACT_CASE),
                true,
            ),
            (
                "substring other case, sensitive: fails",
                "x-TOKEN-y",
                "token",
                rule(MatchExtent::Substring, EXACT_CASE),
                false,
            ),
            (
                "substring other case, insensitive: passes",
                "x-TOKEN-y",
                "token",
                rule(MatchExtent::Substring, ANY_CASE),
                true,
            ),
            (
                "whole equal: passes",
                "token",
                "token",
                rule(MatchExtent::Whole, EXACT_CASE),
                true,
            ),
            (
                "whole with extra text: fails",
                "x-token",
                "token",
                rule(MatchExtent::Whole, EXACT_CASE),
                false,
            ),
            (
                "whole with trailing space: fails",
                "token ",
                "token",
                rule(MatchExtent::Whole, ANY_CASE),
                false,
            ),
            (
                "whole other case, insensitive: passes",
                "ToKeN",
                "token",
                rule(MatchExtent::Whole, ANY_CASE),
                true,
            ),
            (
                "whole other case, sensitive: fails",
                "ToKeN",
                "token",
                rule(MatchExtent::Whole, EXACT_CASE),
                false,
            ),
            (
                "empty expected, substring: fails",
                "token",
                "",
                rule(MatchExtent::Substring, ANY_CASE),
                false,
            ),
            (
                "empty expected and record, whole: fails",
                "",
                "",
                rule(MatchExtent::Whole, EXACT_CASE),
                false,
            ),
        ];
        for (name, record, expected, rule, outcome) in cases {
            assert_eq!(
                change_value_matches(record, expected, rule),
                outcome,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn name_comparison_ignores_case_and_trailing_dot() {
        let cases = [
            (
                "same name: passes",
                "host.example.com.",
                "host.example.com.",
                MatchExtent::Whole,
                true,
            ),
            (
                "expected without dot: passes",
                "host.example.com.",
                "host.example.com",
                MatchExtent::Whole,
                true,
            ),
            (
                "record without dot: passes",
                "host.example.com",
                "host.example.com.",
                MatchExtent::Whole,
                true,
            ),
            (
                "other case: passes",
                "HOST.Example.COM.",
                "host.example.com",
                MatchExtent::Whole,
                true,
            ),
            (
                "parent name: fails",
                "example.com.",
                "host.example.com",
                MatchExtent::Whole,
                false,
            ),
            (
                "child name: fails",
                "a.host.example.com.",
                "host.example.com",
                MatchExtent::Whole,
                false,
            ),
            (
                "two trailing dots: fails",
                "host.example.com.",
                "host.example.com..",
                MatchExtent::Whole,
                false,
            ),
            (
                "label in substring: passes",
                "token123.dcv.example.net.",
                "TOKEN123",
                MatchExtent::Substring,
                true,
            ),
            (
                "empty expected: fails",
                "host.example.com.",
                ".",
                MatchExtent::Whole,
                false,
            ),
        ];
        for (name, record, expected, extent, outcome) in cases {
            assert_eq!(
                name_matches(record, expected, extent),
                outcome,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn contact_email_rules() {
        let cases = [
            (
                "equal: passes",
                "admin@example.com",
                "admin@example.com",
                true,
            ),
            (
                "domain case differs: passes",
                "admin@EXAMPLE.com",
                "admin@example.com",
                true,
            ),
            (
                "local part case differs: fails",
                "Admin@example.com",
                "admin@example.com",
                false,
            ),
            (
                "leading space in record: fails",
                " admin@example.com",
                "admin@example.com",
                false,
            ),
            (
                "trailing space in record: fails",
                "admin@example.com ",
                "admin@example.com",
                false,
            ),
            (
                "other domain: fails",
                "admin@example.net",
                "admin@example.com",
                false,
            ),
            (
                "no at sign: fails",
                "admin.example.com",
                "admin.example.com",
                false,
            ),
            (
                "empty local part: fails",
                "@example.com",
                "@example.com",
                false,
            ),
            ("empty domain: fails", "admin@", "admin@", false),
            (
                "mailto URI is extra structure: fails",
                "mailto:admin@example.com",
                "admin@example.com",
                false,
            ),
            (
                "at sign in quoted local part: passes",
                "\"a@b\"@example.com",
                "\"a@b\"@example.com",
                true,
            ),
            (
                "UTF-8 local part: passes",
                "josé@example.com",
                "josé@example.com",
                true,
            ),
            (
                "control character: fails",
                "admin\u{7}@example.com",
                "admin\u{7}@example.com",
                false,
            ),
            ("empty expected: fails", "", "", false),
        ];
        for (name, record, expected, outcome) in cases {
            assert_eq!(
                contact_email_matches(record, expected),
                outcome,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn contact_phone_rules() {
        let cases = [
            ("equal digits: passes", "+15551234567", "+15551234567", true),
            (
                "equal with spaces: passes",
                "+1 555 123 4567",
                "+1 555 123 4567",
                true,
            ),
            (
                "equal with RFC 3966 separators: passes",
                "+1-555-(123).4567",
                "+1-555-(123).4567",
                true,
            ),
            (
                "separators differ: fails",
                "+1 555 123 4567",
                "+15551234567",
                false,
            ),
            ("no plus sign: fails", "15551234567", "15551234567", false),
            ("plus sign only: fails", "+", "+", false),
            ("separators only: fails", "+ - .", "+ - .", false),
            ("letters: fails", "+1555CALLNOW", "+1555CALLNOW", false),
            (
                "extension parameter: fails",
                "+15551234567;ext=1",
                "+15551234567;ext=1",
                false,
            ),
            ("other number: fails", "+15551234568", "+15551234567", false),
        ];
        for (name, record, expected, outcome) in cases {
            assert_eq!(
                contact_phone_matches(record, expected),
                outcome,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn addresses_compare_as_addresses() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let cases = [
            (
                "IPv6 long form equals short form: passes",
                "2001:4860:4860:0:00:000:0000:8888",
                "2001:4860:4860::8888",
                true,
            ),
            (
                "IPv6 upper case hex: passes",
                "2001:DB8::A",
                "2001:db8::a",
                true,
            ),
            (
                "IPv6 other address: fails",
                "2001:db8::1",
                "2001:db8::2",
                false,
            ),
            ("IPv4 equal: passes", "192.0.2.1", "192.0.2.1", true),
            (
                "IPv4-mapped IPv6 is not the IPv4 address: fails",
                "::ffff:192.0.2.1",
                "192.0.2.1",
                false,
            ),
        ];
        for (name, record, expected, outcome) in cases {
            assert_eq!(
                address_matches(ip(record), ip(expected)),
                outcome,
                "case {name:?}"
            );
        }
    }
}
