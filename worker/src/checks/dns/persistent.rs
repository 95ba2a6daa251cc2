//! The `dns-persistent` record: parsing and evaluation. Pure, no I/O.
//!
//! BR §3.2.2.4.22 ("DNS TXT Record with Persistent Value") and draft-ietf-acme-dns-persist
//! define a TXT record at `_validation-persist.<ADN>` whose RDATA is an RFC 8659 §4.2
//! `issue-value`:
//!
//! ```text
//! issue-value = *WSP [issuer-domain-name *WSP] [";" *WSP [parameters *WSP]]
//! issuer-domain-name = label *("." label)
//! label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))
//! parameters = (parameter *WSP ";" *WSP parameters) / parameter
//! parameter = parameter-tag *WSP "=" *WSP parameter-value
//! parameter-tag = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))
//! parameter-value = *(%x21-3A / %x3C-7E)
//! ```
//!
//! A record authorizes the request when all of these hold:
//!
//! - it parses with the grammar above; a record that does not is malformed and ignored;
//! - its `issuer-domain-name` is one of the CA's issuer domain names, compared without ASCII
//!   case and without a trailing dot on either side (the draft's normalization: lower case,
//!   A-labels, no trailing dot). One trailing dot on the record's name is tolerated although
//!   the grammar has none;
//! - it has an `accounturi` parameter equal to the expected account URI under RFC 3986 §6.2.1
//!   Simple String Comparison (byte for byte, no case folding or normalization);
//! - a `persistUntil` parameter, if present, is a base-10 integer of Unix seconds, and the
//!   time of the check is not after it (BR: "If the time of the check is after the time
//!   specified [...] the CA MUST NOT use the record"). A value that is not such an integer
//!   makes the record malformed;
//! - for a wildcard target, a `policy` parameter equals `wildcard` without case, because the
//!   draft says a record without it "MUST NOT" count for wildcard certificates.
//!
//! Parameter tags are matched without ASCII case, as RFC 8659 §4.1 does for property tags, so
//! `persistuntil=` cannot slip past the expiry check. A recognized tag (`accounturi`,
//! `persistUntil`, `policy`) that appears twice makes the record malformed (the draft lists
//! duplicate parameters as a syntax error). Unknown tags are ignored, as the BR and the draft
//! require, even when repeated.

/// The CA's expectations of a persistent record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistCriteria {
    /// The CA's issuer domain names, normalized with [`normalize_issuer_domain_name`].
    pub issuer_domain_names: Vec<String>,
    /// The `accounturi` the record must carry.
    pub account_uri: String,
    /// Whether the record must also allow wildcard certificates.
    pub scope: PersistScope,
}

/// The names a persistent record must cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistScope {
    /// Only the validated FQDN itself.
    ExactName,
    /// A wildcard name: the record must carry `policy=wildcard`.
    Wildcard,
}

/// The decision for one TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordVerdict {
    /// The record authorizes the request.
    Authorizes,
    /// The record does not follow the `issue-value` syntax or repeats a parameter.
    Malformed(String),
    /// The record names another issuer (or none) and is ignored.
    OtherIssuer,
    /// The record has no `accounturi` parameter.
    MissingAccountUri,
    /// The record's `accounturi` is not the expected one.
    OtherAccount,
    /// The record's `persistUntil` lies before the time of the check.
    Expired {
        /// The record's `persistUntil`, in Unix seconds.
        persist_until: u64,
    },
    /// The target is a wildcard name and the record has no `policy=wildcard`.
    NotForWildcard,
}

/// Evaluates one joined TXT record at `now` (Unix seconds).
pub fn evaluate_record(record: &str, criteria: &PersistCriteria, now: u64) -> RecordVerdict {
    let issue_value = match parse_issue_value(record) {
        Ok(issue_value) => issue_value,
        Err(reason) => return RecordVerdict::Malformed(reason),
    };
    let names_this_ca = issue_value
        .issuer_domain_name
        .map(normalize_issuer_domain_name)
        .is_some_and(|name| criteria.issuer_domain_names.contains(&name));
    if !names_this_ca {
        return RecordVerdict::OtherIssuer;
    }

    let parameters = match PersistParameters::from_issue_value(&issue_value.parameters) {
        Ok(parameters) => parameters,
        Err(reason) => return RecordVerdict::Malformed(reason),
    };
    let Some(account_uri) = parameters.account_uri else {
        return RecordVerdict::MissingAccountUri;
    };
    if account_uri != criteria.account_uri {
        return RecordVerdict::OtherAccount;
    }
    // BR §3.2.2.4.22: the record is unusable only when the check is *after* persistUntil.
    if let Some(persist_until) = parameters.persist_until.filter(|&until| now > until) {
        return RecordVerdict::Expired { persist_until };
    }
    let allows_wildcard = parameters
        .policy
        .is_some_and(|policy| policy.eq_ignore_ascii_case(WILDCARD_POLICY));
    if criteria.scope == PersistScope::Wildcard && !allows_wildcard {
        return RecordVerdict::NotForWildcard;
    }
    RecordVerdict::Authorizes
}

/// Normalizes an issuer domain name for comparison: UTS 46 mapping to lower-case A-labels
/// where the name allows it (ASCII lower case otherwise), then no trailing dot.
pub fn normalize_issuer_domain_name(name: &str) -> String {
    let mapped = idna::domain_to_ascii(name).unwrap_or_else(|_| name.to_ascii_lowercase());
    match mapped.strip_suffix('.') {
        Some(without_dot) => without_dot.to_owned(),
        None => mapped,
    }
}

/// An `issue-value` split into its parts, with tags and values as written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IssueValue<'a> {
    issuer_domain_name: Option<&'a str>,
    parameters: Vec<(&'a str, &'a str)>,
}

/// The parameters `dns-persistent` recognizes.
#[derive(Debug, Default)]
struct PersistParameters<'a> {
    account_uri: Option<&'a str>,
    persist_until: Option<u64>,
    policy: Option<&'a str>,
}

impl<'a> PersistParameters<'a> {
    fn from_issue_value(parameters: &[(&'a str, &'a str)]) -> Result<Self, String> {
        let mut recognized = PersistParameters::default();
        for &(tag, value) in parameters {
            if tag.eq_ignore_ascii_case(ACCOUNT_URI_TAG) {
                set_once(&mut recognized.account_uri, tag, value)?;
            } else if tag.eq_ignore_ascii_case(PERSIST_UNTIL_TAG) {
                let seconds = parse_unix_seconds(value)?;
                set_once(&mut recognized.persist_until, tag, seconds)?;
            } else if tag.eq_ignore_ascii_case(POLICY_TAG) {
                set_once(&mut recognized.policy, tag, value)?;
            }
        }
        Ok(recognized)
    }
}

fn set_once<T>(slot: &mut Option<T>, tag: &str, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("the parameter {tag:?} appears more than once"));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses a `persistUntil` value: one or more ASCII digits, read as Unix seconds.
fn parse_unix_seconds(value: &str) -> Result<u64, String> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("persistUntil {value:?} is not a base-10 integer"));
    }
    // NOTE: a value beyond u64 seconds is a valid integer in the draft's grammar, but it is
    // treated as malformed here rather than as "never expires".
    value
        .parse::<u64>()
        .map_err(|_| format!("persistUntil {value:?} is too large"))
}

/// Parses an RFC 8659 §4.2 `issue-value`, tolerating one trailing dot on the issuer name.
fn parse_issue_value(text: &str) -> Result<IssueValue<'_>, String> {
    if !text.is_ascii() {
        return Err("the record contains non-ASCII characters".to_owned());
    }
    let mut cursor = Cursor { text, position: 0 };

    cursor.skip_whitespace();
    let issuer_domain_name =
        cursor.take_while(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let issuer_domain_name = match issuer_domain_name {
        "" => None,
        name => Some(check_issuer_domain_name(name)?),
    };
    cursor.skip_whitespace();
    if cursor.at_end() {
        return Ok(IssueValue {
            issuer_domain_name,
            parameters: Vec::new(),
        });
    }
    cursor.expect(b';')?;
    cursor.skip_whitespace();

    let mut parameters = Vec::new();
    while !cursor.at_end() {
        parameters.push(cursor.parameter()?);
        cursor.skip_whitespace();
        if cursor.at_end() {
            break;
        }
        cursor.expect(b';')?;
        cursor.skip_whitespace();
        // `parameters` needs another parameter after a ";": a trailing ";" is malformed.
        if cursor.at_end() {
            return Err("the record ends with \";\" after a parameter".to_owned());
        }
    }
    Ok(IssueValue {
        issuer_domain_name,
        parameters,
    })
}

/// Checks the RFC 8659 `issuer-domain-name` syntax and returns the name.
fn check_issuer_domain_name(name: &str) -> Result<&str, String> {
    let labels = name.strip_suffix('.').unwrap_or(name);
    if labels.split('.').all(is_ldh_label) {
        Ok(name)
    } else {
        Err(format!("{name:?} is not a valid issuer-domain-name"))
    }
}

/// Returns whether `label` is `(ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))`; tags share it.
fn is_ldh_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// A position in the record text. The text is ASCII, so byte positions are char boundaries.
struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.position >= self.text.len()
    }

    fn skip_whitespace(&mut self) {
        self.take_while(|b| b == b' ' || b == b'\t');
    }

    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a str {
        let start = self.position;
        let rest = &self.text.as_bytes()[start..];
        let length = rest.iter().take_while(|&&b| accept(b)).count();
        self.position += length;
        &self.text[start..self.position]
    }

    fn expect(&mut self, expected: u8) -> Result<(), String> {
        match self.text.as_bytes().get(self.position) {
            Some(&found) if found == expected => {
                self.position += 1;
                Ok(())
            }
            Some(&found) => Err(format!(
                "expected {:?} at offset {} but found {:?}",
                char::from(expected),
                self.position,
                char::from(found)
            )),
            None => Err(format!(
                "expected {:?} at the end of the record",
                char::from(expected)
            )),
        }
    }

    /// Reads `parameter-tag *WSP "=" *WSP parameter-value`.
    fn parameter(&mut self) -> Result<(&'a str, &'a str), String> {
        let tag = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !is_ldh_label(tag) {
            return Err(format!(
                "expected a parameter tag at offset {}",
                self.position - tag.len()
            ));
        }
        self.skip_whitespace();
        self.expect(b'=')?;
        self.skip_whitespace();
        let value = self.take_while(|b| matches!(b, 0x21..=0x3a | 0x3c..=0x7e));
        Ok((tag, value))
    }
}

const ACCOUNT_URI_TAG: &str = "accounturi";
const PERSIST_UNTIL_TAG: &str = "persistUntil";
const POLICY_TAG: &str = "policy";
const WILDCARD_POLICY: &str = "wildcard";

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_750_000_000;
    const ACCOUNT: &str = "https://ca.example/acct/123";

    fn criteria(scope: PersistScope) -> PersistCriteria {
        PersistCriteria {
            issuer_domain_names: vec![
                normalize_issuer_domain_name("authority.example"),
                normalize_issuer_domain_name("CA.Example.NET."),
            ],
            account_uri: ACCOUNT.to_owned(),
            scope,
        }
    }

    #[test]
    fn records_for_an_exact_name() {
        let cases = [
            (
                "basic record: authorizes",
                "authority.example; accounturi=https://ca.example/acct/123",
                RecordVerdict::Authorizes,
            ),
            (
                "second issuer name: authorizes",
                "ca.example.net; accounturi=https://ca.example/acct/123",
                RecordVerdict::Authorizes,
            ),
            (
                "issuer in upper case: authorizes",
                "AUTHORITY.Example; accounturi=https://ca.example/acct/123",
                RecordVerdict::Authorizes,
            ),
            (
                "issuer with trailing dot: authorizes",
                "authority.example.; accounturi=https://ca.example/acct/123",
                RecordVerdict::Authorizes,
            ),
            (
                "no white space: authorizes",
                "authority.example;accounturi=https://ca.example/acct/123",
                RecordVerdict::Authorizes,
            ),
            (
                "tabs and spaces everywhere: authorizes",
                " \tauthority.example \t; \taccounturi \t= \thttps://ca.example/acct/123 \t",
                RecordVerdict::Authorizes,
            ),
            (
                "persistUntil in the future: authorizes",
                "authority.example; accounturi=https://ca.example/acct/123; persistUntil=1750000001",
                RecordVerdict::Authorizes,
            ),
            (
                "persistUntil equal to now: authorizes",
                "authority.example; accounturi=https://ca.example/acct/123; persistUntil=1750000000",
                RecordVerdict::Authorizes,
            ),
            (
                "persistUntil in the past: expired",
                "authority.example; accounturi=https://ca.example/acct/123; persistUntil=1749999999",
                RecordVerdict::Expired {
                    persist_until: 1_749_999_999,
                },
            ),
            (
                "lower-case persistuntil tag still expires",
                "authority.example; accounturi=https://ca.example/acct/123; persistuntil=1",
                RecordVerdict::Expired { persist_until: 1 },
            ),
            (
                "unknown parameter: ignored, authorizes",
                "authority.example; accounturi=https://ca.example/acct/123; future-thing=x",
                RecordVerdict::Authorizes,
            ),
            (
                "repeated unknown parameter: ignored, authorizes",
                "authority.example; x=1; accounturi=https://ca.example/acct/123; x=2",
                RecordVerdict::Authorizes,
            ),
            (
                "policy without wildcard target: authorizes",
                "authority.example; accounturi=https://ca.example/acct/123; policy=wildcard",
                RecordVerdict::Authorizes,
            ),
            (
                "other issuer: ignored",
                "other.example; accounturi=https://ca.example/acct/123",
                RecordVerdict::OtherIssuer,
            ),
            (
                "issuer is a sub-domain of ours: ignored",
                "sub.authority.example; accounturi=https://ca.example/acct/123",
                RecordVerdict::OtherIssuer,
            ),
            (
                "no issuer: ignored",
                "; accounturi=https://ca.example/acct/123",
                RecordVerdict::OtherIssuer,
            ),
            (
                "issuer only: missing accounturi",
                "authority.example",
                RecordVerdict::MissingAccountUri,
            ),
            (
                "issuer and semicolon only: missing accounturi",
                "authority.example;",
                RecordVerdict::MissingAccountUri,
            ),
            (
                "other account: fails",
                "authority.example; accounturi=https://ca.example/acct/1234",
                RecordVerdict::OtherAccount,
            ),
            (
                "account in other case: fails",
                "authority.example; accounturi=HTTPS://ca.example/acct/123",
                RecordVerdict::OtherAccount,
            ),
            (
                "account with trailing slash: fails",
                "authority.example; accounturi=https://ca.example/acct/123/",
                RecordVerdict::OtherAccount,
            ),
            (
                "empty account: fails",
                "authority.example; accounturi=",
                RecordVerdict::OtherAccount,
            ),
            (
                "account tag in upper case: authorizes",
                "authority.example; AccountURI=https://ca.example/acct/123",
                RecordVerdict::Authorizes,
            ),
        ];
        for (name, record, expected) in cases {
            assert_eq!(
                evaluate_record(record, &criteria(PersistScope::ExactName), NOW),
                expected,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn malformed_records_are_rejected() {
        let cases = [
            (
                "duplicate accounturi",
                "authority.example; accounturi=https://ca.example/acct/123; accounturi=https://ca.example/acct/123",
            ),
            (
                "duplicate accounturi in other case",
                "authority.example; accounturi=https://ca.example/acct/123; ACCOUNTURI=https://evil.example/acct/1",
            ),
            (
                "duplicate persistUntil",
                "authority.example; accounturi=https://ca.example/acct/123; persistUntil=1; persistUntil=9999999999",
            ),
            (
                "duplicate policy",
                "authority.example; accounturi=https://ca.example/acct/123; policy=wildcard; policy=wildcard",
            ),
            (
                "persistUntil not a number",
                "authority.example; accounturi=https://ca.example/acct/123; persistUntil=tomorrow",
            ),
            (
                "persistUntil negative",
                "authority.example; accounturi=https://ca.example/acct/123; persistUntil=-1",
            ),
            (
                "persistUntil with plus sign",
                "authority.example; accounturi=https://ca.example/acct/123; persistUntil=+1750000001",
            ),
            (
                "persistUntil empty",
                "authority.example; accounturi=https://ca.example/acct/123; persistUntil=",
            ),
            (
                "persistUntil beyond u64",
                "authority.example; accounturi=https://ca.example/acct/123; persistUntil=99999999999999999999999",
            ),
            (
                "trailing semicolon",
                "authority.example; accounturi=https://ca.example/acct/123;",
            ),
            (
                "space inside the value",
                "authority.example; accounturi=https://ca.example/acct/ 123",
            ),
            (
                "parameter without equals sign",
                "authority.example; accounturi",
            ),
            (
                "two semicolons",
                "authority.example;; accounturi=https://ca.example/acct/123",
            ),
            (
                "underscore in the issuer",
                "auth_ority.example; accounturi=https://ca.example/acct/123",
            ),
            (
                "issuer label ending in hyphen",
                "authority-.example; accounturi=https://ca.example/acct/123",
            ),
            (
                "empty issuer label",
                "authority..example; accounturi=https://ca.example/acct/123",
            ),
            (
                "two trailing dots on the issuer",
                "authority.example..; accounturi=https://ca.example/acct/123",
            ),
            (
                "text after the issuer",
                "authority.example accounturi=https://ca.example/acct/123",
            ),
            (
                "tag starting with hyphen",
                "authority.example; -tag=1; accounturi=https://ca.example/acct/123",
            ),
            (
                "non-ASCII character",
                "authority.example; accounturi=https://ca.example/acct/123; note=é",
            ),
        ];
        for (name, record) in cases {
            let verdict = evaluate_record(record, &criteria(PersistScope::ExactName), NOW);
            assert!(
                matches!(verdict, RecordVerdict::Malformed(_)),
                "case {name:?}: got {verdict:?}"
            );
        }
    }

    #[test]
    fn records_for_a_wildcard_name() {
        let cases = [
            (
                "policy=wildcard: authorizes",
                "authority.example; accounturi=https://ca.example/acct/123; policy=wildcard",
                RecordVerdict::Authorizes,
            ),
            (
                "policy in upper case: authorizes",
                "authority.example; accounturi=https://ca.example/acct/123; Policy=WILDCARD",
                RecordVerdict::Authorizes,
            ),
            (
                "no policy: not for wildcard",
                "authority.example; accounturi=https://ca.example/acct/123",
                RecordVerdict::NotForWildcard,
            ),
            (
                "other policy value: not for wildcard",
                "authority.example; accounturi=https://ca.example/acct/123; policy=subdomains",
                RecordVerdict::NotForWildcard,
            ),
            (
                "expired wildcard record: expired",
                "authority.example; accounturi=https://ca.example/acct/123; policy=wildcard; persistUntil=1",
                RecordVerdict::Expired { persist_until: 1 },
            ),
        ];
        for (name, record, expected) in cases {
            assert_eq!(
                evaluate_record(record, &criteria(PersistScope::Wildcard), NOW),
                expected,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn issuer_domain_names_normalize() {
        let cases = [
            ("already normal", "authority.example", "authority.example"),
            ("upper case", "Authority.EXAMPLE", "authority.example"),
            ("trailing dot", "authority.example.", "authority.example"),
            (
                "U-label to A-label",
                "bücher.example",
                "xn--bcher-kva.example",
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(
                normalize_issuer_domain_name(input),
                expected,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn issue_value_parts_are_kept_as_written() {
        let parsed =
            parse_issue_value("ca.example; accounturi=https://a/b?c=d; persistUntil=5").unwrap();
        assert_eq!(parsed.issuer_domain_name, Some("ca.example"), "issuer");
        assert_eq!(
            parsed.parameters,
            vec![("accounturi", "https://a/b?c=d"), ("persistUntil", "5")],
            "parameters, with \"=\" inside a value"
        );
    }
}
