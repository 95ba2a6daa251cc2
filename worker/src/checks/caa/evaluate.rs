//! Decides whether the relevant RRset permits the calling CA to issue.
//!
//! Pure policy, no I/O. The rules, in order:
//!
//! 1. A critical property with a tag this checker does not know forbids issuance
//!    ([RFC 8659 §4.1](https://www.rfc-editor.org/rfc/rfc8659#section-4.1)). Flags 128 and 64
//!    both count as critical (see [`CaaRecord::is_critical`]).
//! 2. The governing tag is chosen by certificate type and target: `issue` for a TLS name
//!    (§4.2); `issuewild` for a TLS wildcard when the RRset has any, else `issue` (§4.3);
//!    `issuemail` for S/MIME ([RFC 9495](https://www.rfc-editor.org/rfc/rfc9495)),
//!    whatever the target's form. Tags of the other certificate type are ignored.
//! 3. No record with the governing tag: issuance is permitted.
//! 4. Otherwise a record permits issuance when its value parses, names one of the CA's issuer
//!    domain names (ASCII case-insensitive) and its RFC 8657 parameters match the request.
//!    A malformed value, or one without an issuer domain name (`;`), permits no one. Records
//!    are additive: one permitting record is enough.
//!
//! RFC 8657 parameters, matched strictly:
//!
//! - `accounturi` ([§3](https://www.rfc-editor.org/rfc/rfc8657#section-3)): the request's
//!   `account_uri` must equal the value exactly (byte for byte).
//! - `validationmethods` ([§4](https://www.rfc-editor.org/rfc/rfc8657#section-4)): the
//!   request's method, as an ACME method name, must be one of the listed labels. Open MPIC
//!   names map to ACME names: `acme-http-01` → `http-01`, `acme-dns-01` → `dns-01`,
//!   `acme-tls-alpn-01` → `tls-alpn-01`. Any other method name is compared as given, so a CA
//!   can pass its own `ca-` label.
//! - A request without `account_uri` (or without `validation_method`) never matches a record
//!   that carries `accounturi` (or `validationmethods`). The Python implementation ignores both
//!   parameters; we refuse instead, because a record that names an account or a method permits
//!   nothing to an applicant we cannot tie to that account or method.
//! - An empty `accounturi` value names no account and matches no request.
//! - Parameter tags match case-insensitively, so `AccountURI=` narrows too. A record with
//!   the same one of these parameters twice, or with a `validationmethods` value outside the
//!   RFC 8657 grammar, permits no one. Unknown parameters are ignored (RFC 8659 §4.2 leaves
//!   their meaning to the issuer they name).

use mpic_shared::request::CertificateType;

use super::property::{CaaRecord, PropertyTag, parse_issuer_value, parse_validation_methods};

/// The request side of the evaluation: the certificate, the target's form and the applicant.
#[derive(Debug, Clone, Copy)]
pub struct IssuanceRequest<'a> {
    /// The certificate type, which selects the governing property.
    pub certificate_type: CertificateType,
    /// Whether the target was a wildcard name.
    pub name_kind: NameKind,
    /// The calling CA's issuer domain names, lower case, without a trailing dot.
    pub issuer_domain_names: &'a [String],
    /// The applicant's ACME account URI, for `accounturi`.
    pub account_uri: Option<&'a str>,
    /// The validation method as the request named it, for `validationmethods`.
    pub validation_method: Option<&'a str>,
}

/// The form of a domain target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A plain name such as `www.example.com`.
    Exact,
    /// A wildcard such as `*.example.com`.
    Wildcard,
}

/// The outcome of evaluating a relevant RRset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No record with the governing tag exists, so the RRset does not restrict this issuance.
    NoRestriction {
        /// The tag that would have governed.
        governing_tag: PropertyTag,
    },
    /// A record with the governing tag names the CA and its parameters match.
    Authorized {
        /// Index in the RRset of the first record that permits issuance.
        record: usize,
    },
    /// A critical property with an unknown tag forbids all issuance.
    CriticalUnknownProperty {
        /// Index in the RRset of the first such record.
        record: usize,
    },
    /// Records with the governing tag exist, but none permits this CA and request.
    NotAuthorized {
        /// The tag that governed.
        governing_tag: PropertyTag,
    },
}

impl Decision {
    /// Returns true when issuance is permitted.
    pub fn permits_issuance(self) -> bool {
        matches!(self, Self::NoRestriction { .. } | Self::Authorized { .. })
    }
}

/// Evaluates a relevant RRset (never empty: an absent RRset is handled before) for a request.
pub fn evaluate(records: &[CaaRecord], request: &IssuanceRequest<'_>) -> Decision {
    if let Some(record) = records
        .iter()
        .position(|record| record.is_critical() && record.property() == PropertyTag::Unknown)
    {
        return Decision::CriticalUnknownProperty { record };
    }

    let governing_tag = governing_tag(records, request);
    let mut governing = records
        .iter()
        .enumerate()
        .filter(|(_, record)| record.property() == governing_tag)
        .peekable();
    if governing.peek().is_none() {
        return Decision::NoRestriction { governing_tag };
    }

    governing
        .find(|(_, record)| permits(record, request))
        .map_or(Decision::NotAuthorized { governing_tag }, |(record, _)| {
            Decision::Authorized { record }
        })
}

/// Returns the ACME challenge type name for an Open MPIC validation method name, or the name
/// unchanged when it is not an ACME method.
pub fn acme_method_name(validation_method: &str) -> &str {
    match validation_method {
        "acme-http-01" => "http-01",
        "acme-dns-01" => "dns-01",
        "acme-tls-alpn-01" => "tls-alpn-01",
        other => other,
    }
}

fn governing_tag(records: &[CaaRecord], request: &IssuanceRequest<'_>) -> PropertyTag {
    match (request.certificate_type, request.name_kind) {
        (CertificateType::SMime, _) => PropertyTag::IssueMail,
        (CertificateType::TlsServer, NameKind::Exact) => PropertyTag::Issue,
        (CertificateType::TlsServer, NameKind::Wildcard) => {
            if records
                .iter()
                .any(|record| record.property() == PropertyTag::IssueWild)
            {
                PropertyTag::IssueWild
            } else {
                PropertyTag::Issue
            }
        }
    }
}

/// Returns true when one record with the governing tag permits this request.
fn permits(record: &CaaRecord, request: &IssuanceRequest<'_>) -> bool {
    let Ok(value) = parse_issuer_value(record.value()) else {
        return false;
    };
    let Some(issuer) = value.issuer_domain_name() else {
        return false;
    };
    if !request
        .issuer_domain_names
        .iter()
        .any(|name| name.eq_ignore_ascii_case(issuer))
    {
        return false;
    }

    let account_uris: Vec<&str> = value.parameter_values(ACCOUNT_URI).collect();
    let account_matches = match account_uris.as_slice() {
        [] => true,
        // An empty value names no account (RFC 8657 §3 requires a URI), so it matches none,
        // not even an empty `account_uri` in the request.
        [expected] => !expected.is_empty() && request.account_uri == Some(*expected),
        _ => false,
    };

    let method_lists: Vec<&str> = value.parameter_values(VALIDATION_METHODS).collect();
    let method_matches = match method_lists.as_slice() {
        [] => true,
        [list] => match (
            parse_validation_methods(list),
            request.validation_method.map(acme_method_name),
        ) {
            (Ok(methods), Some(method)) => methods.contains(&method),
            _ => false,
        },
        _ => false,
    };

    account_matches && method_matches
}

/// RFC 8657 §3 parameter tag.
const ACCOUNT_URI: &str = "accounturi";

/// RFC 8657 §4 parameter tag.
const VALIDATION_METHODS: &str = "validationmethods";

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "ca.example";
    const ACCOUNT: &str = "https://ca.example/acct/42";

    fn issue(value: &str) -> CaaRecord {
        CaaRecord::new(0, "issue", value)
    }

    fn record(flags: u8, tag: &str, value: &str) -> CaaRecord {
        CaaRecord::new(flags, tag, value)
    }

    struct Case {
        name: &'static str,
        records: Vec<CaaRecord>,
        certificate_type: CertificateType,
        name_kind: NameKind,
        account_uri: Option<&'static str>,
        validation_method: Option<&'static str>,
        expected: Decision,
    }

    impl Case {
        fn tls(name: &'static str, records: Vec<CaaRecord>, expected: Decision) -> Self {
            Self {
                name,
                records,
                certificate_type: CertificateType::TlsServer,
                name_kind: NameKind::Exact,
                account_uri: None,
                validation_method: None,
                expected,
            }
        }

        fn wildcard(mut self) -> Self {
            self.name_kind = NameKind::Wildcard;
            self
        }

        fn smime(mut self) -> Self {
            self.certificate_type = CertificateType::SMime;
            self
        }

        fn account(mut self, account_uri: &'static str) -> Self {
            self.account_uri = Some(account_uri);
            self
        }

        fn method(mut self, validation_method: &'static str) -> Self {
            self.validation_method = Some(validation_method);
            self
        }
    }

    fn authorized(record: usize) -> Decision {
        Decision::Authorized { record }
    }

    fn not_authorized(governing_tag: PropertyTag) -> Decision {
        Decision::NotAuthorized { governing_tag }
    }

    fn no_restriction(governing_tag: PropertyTag) -> Decision {
        Decision::NoRestriction { governing_tag }
    }

    fn run(cases: Vec<Case>) {
        let issuer_domain_names = vec![CA.to_owned(), "other-ca.example".to_owned()];
        for case in cases {
            let request = IssuanceRequest {
                certificate_type: case.certificate_type,
                name_kind: case.name_kind,
                issuer_domain_names: &issuer_domain_names,
                account_uri: case.account_uri,
                validation_method: case.validation_method,
            };
            let decision = evaluate(&case.records, &request);
            assert_eq!(decision, case.expected, "case {:?}", case.name);
            assert_eq!(
                decision.permits_issuance(),
                matches!(
                    case.expected,
                    Decision::Authorized { .. } | Decision::NoRestriction { .. }
                ),
                "case {:?}: permits_issuance",
                case.name
            );
        }
    }

    #[test]
    fn issue_rules() {
        use PropertyTag::*;
        run(vec![
            Case::tls("issue names us: valid", vec![issue(CA)], authorized(0)),
            Case::tls(
                "issue names another CA: invalid",
                vec![issue("elsewhere.example")],
                not_authorized(Issue),
            ),
            Case::tls(
                "second issue record names us: valid",
                vec![issue("elsewhere.example"), issue(CA)],
                authorized(1),
            ),
            Case::tls(
                "issuer name differs in case: valid",
                vec![issue("CA.Example")],
                authorized(0),
            ),
            Case::tls(
                "tag differs in case: valid",
                vec![record(0, "ISSUE", CA)],
                authorized(0),
            ),
            Case::tls(
                "empty issuer: invalid",
                vec![issue(";")],
                not_authorized(Issue),
            ),
            Case::tls(
                "empty value: invalid",
                vec![issue("")],
                not_authorized(Issue),
            ),
            Case::tls(
                "empty issuer next to ours: valid (authorizations are additive)",
                vec![issue(";"), issue(CA)],
                authorized(1),
            ),
            Case::tls(
                "malformed value: invalid",
                vec![issue("%%%%%")],
                not_authorized(Issue),
            ),
            Case::tls(
                "malformed value naming us: invalid",
                vec![issue("ca.example; a=1;")],
                not_authorized(Issue),
            ),
            Case::tls(
                "trailing dot on issuer is malformed: invalid",
                vec![issue("ca.example.")],
                not_authorized(Issue),
            ),
            Case::tls(
                "only iodef: valid",
                vec![record(0, "iodef", "mailto:security@example.com")],
                no_restriction(Issue),
            ),
            Case::tls(
                "unknown non-critical tag: valid",
                vec![record(0, "tbs", "x"), issue(CA)],
                authorized(1),
            ),
            Case::tls(
                "unknown tag with flag 128: invalid",
                vec![record(128, "tbs", "x"), issue(CA)],
                Decision::CriticalUnknownProperty { record: 0 },
            ),
            Case::tls(
                "unknown tag with flag 64: invalid",
                vec![issue(CA), record(64, "tbs", "x")],
                Decision::CriticalUnknownProperty { record: 1 },
            ),
            Case::tls(
                "known tag with critical flag: valid",
                vec![record(128, "issue", CA)],
                authorized(0),
            ),
            Case::tls(
                "critical iodef is known: valid",
                vec![record(128, "iodef", "mailto:a@example.com")],
                no_restriction(Issue),
            ),
            Case::tls(
                "other reserved flag bits are ignored: valid",
                vec![record(1, "tbs", "x"), issue(CA)],
                authorized(1),
            ),
            Case::tls(
                "issuewild does not govern a plain name: valid",
                vec![record(0, "issuewild", ";")],
                no_restriction(Issue),
            ),
            Case::tls(
                "issuemail does not govern TLS: valid",
                vec![record(0, "issuemail", ";")],
                no_restriction(Issue),
            ),
            Case::tls(
                "unknown parameter is ignored: valid",
                vec![issue("ca.example; policy=ev")],
                authorized(0),
            ),
        ]);
    }

    #[test]
    fn issuewild_rules() {
        use PropertyTag::*;
        run(vec![
            Case::tls(
                "issuewild names us: valid",
                vec![record(0, "issuewild", CA), issue(";")],
                authorized(0),
            )
            .wildcard(),
            Case::tls(
                "issuewild forbids although issue names us: invalid",
                vec![issue(CA), record(0, "issuewild", ";")],
                not_authorized(IssueWild),
            )
            .wildcard(),
            Case::tls(
                "no issuewild, issue names us: valid",
                vec![issue(CA)],
                authorized(0),
            )
            .wildcard(),
            Case::tls(
                "no issuewild, issue forbids: invalid",
                vec![issue(";")],
                not_authorized(Issue),
            )
            .wildcard(),
            Case::tls(
                "upper-case ISSUEWILD still wins: invalid",
                vec![issue(CA), record(0, "ISSUEWILD", "elsewhere.example")],
                not_authorized(IssueWild),
            )
            .wildcard(),
            Case::tls(
                "only iodef for a wildcard: valid",
                vec![record(0, "iodef", "mailto:a@example.com")],
                no_restriction(Issue),
            )
            .wildcard(),
        ]);
    }

    #[test]
    fn issuemail_rules() {
        use PropertyTag::*;
        run(vec![
            Case::tls(
                "issuemail names us for S/MIME: valid",
                vec![record(0, "issuemail", CA), issue(";")],
                authorized(0),
            )
            .smime(),
            Case::tls(
                "issuemail names another CA for S/MIME: invalid",
                vec![record(0, "issuemail", "elsewhere.example"), issue(CA)],
                not_authorized(IssueMail),
            )
            .smime(),
            Case::tls(
                "S/MIME ignores issue: valid",
                vec![issue(";")],
                no_restriction(IssueMail),
            )
            .smime(),
            Case::tls(
                "S/MIME with critical unknown tag: invalid",
                vec![record(128, "tbs", "x"), record(0, "issuemail", CA)],
                Decision::CriticalUnknownProperty { record: 0 },
            )
            .smime(),
            Case::tls(
                "S/MIME wildcard target still uses issuemail: valid",
                vec![record(0, "issuewild", ";"), record(0, "issuemail", CA)],
                authorized(1),
            )
            .smime()
            .wildcard(),
        ]);
    }

    #[test]
    fn rfc8657_parameters() {
        use PropertyTag::*;
        let with_account = format!("{CA}; accounturi={ACCOUNT}");
        let with_methods = format!("{CA}; validationmethods=dns-01,http-01");
        let with_both = format!("{CA}; accounturi={ACCOUNT}; validationmethods=tls-alpn-01");
        let record_for = |value: &str| vec![issue(value)];
        run(vec![
            Case::tls(
                "accounturi matches: valid",
                record_for(&with_account),
                authorized(0),
            )
            .account(ACCOUNT),
            Case::tls(
                "accounturi mismatch: invalid",
                record_for(&with_account),
                not_authorized(Issue),
            )
            .account("https://ca.example/acct/43"),
            Case::tls(
                "accounturi differs only in case: invalid",
                record_for(&with_account),
                not_authorized(Issue),
            )
            .account("HTTPS://ca.example/acct/42"),
            Case::tls(
                "accounturi absent from request: invalid",
                record_for(&with_account),
                not_authorized(Issue),
            ),
            Case::tls(
                "accounturi tag in upper case still narrows: invalid",
                record_for(&format!("{CA}; AccountURI={ACCOUNT}")),
                not_authorized(Issue),
            )
            .account("https://ca.example/acct/43"),
            Case::tls(
                "accounturi given twice: invalid",
                record_for(&format!("{CA}; accounturi={ACCOUNT}; accounturi={ACCOUNT}")),
                not_authorized(Issue),
            )
            .account(ACCOUNT),
            Case::tls(
                "second record without accounturi: valid",
                vec![issue(&with_account), issue(CA)],
                authorized(1),
            )
            .account("https://ca.example/acct/43"),
            Case::tls(
                "validationmethods lists the ACME name: valid",
                record_for(&with_methods),
                authorized(0),
            )
            .method("acme-dns-01"),
            Case::tls(
                "validationmethods given as ACME name in request: valid",
                record_for(&with_methods),
                authorized(0),
            )
            .method("http-01"),
            Case::tls(
                "validationmethods mismatch: invalid",
                record_for(&with_methods),
                not_authorized(Issue),
            )
            .method("acme-tls-alpn-01"),
            Case::tls(
                "validationmethods absent from request: invalid",
                record_for(&with_methods),
                not_authorized(Issue),
            ),
            Case::tls(
                "non-ACME method against ACME list: invalid",
                record_for(&with_methods),
                not_authorized(Issue),
            )
            .method("website-change"),
            Case::tls(
                "CA-specific label: valid",
                record_for(&format!("{CA}; validationmethods=ca-website-change")),
                authorized(0),
            )
            .method("ca-website-change"),
            Case::tls(
                "empty validationmethods: invalid",
                record_for(&format!("{CA}; validationmethods=")),
                not_authorized(Issue),
            )
            .method("acme-dns-01"),
            Case::tls(
                "malformed validationmethods: invalid",
                record_for(&format!("{CA}; validationmethods=dns-01,,http-01")),
                not_authorized(Issue),
            )
            .method("acme-dns-01"),
            Case::tls(
                "both parameters match: valid",
                record_for(&with_both),
                authorized(0),
            )
            .account(ACCOUNT)
            .method("acme-tls-alpn-01"),
            Case::tls(
                "account matches, method does not: invalid",
                record_for(&with_both),
                not_authorized(Issue),
            )
            .account(ACCOUNT)
            .method("acme-dns-01"),
            Case::tls(
                "parameters on another CA's record do not matter: invalid",
                record_for(&format!("elsewhere.example; accounturi={ACCOUNT}")),
                not_authorized(Issue),
            )
            .account(ACCOUNT),
            Case::tls(
                "issuewild accounturi applies to wildcards: invalid",
                vec![record(0, "issuewild", &with_account)],
                not_authorized(IssueWild),
            )
            .wildcard()
            .account("https://ca.example/acct/1"),
        ]);
    }

    #[test]
    fn acme_method_names() {
        let cases = [
            ("http-01 from Open MPIC", "acme-http-01", "http-01"),
            ("dns-01 from Open MPIC", "acme-dns-01", "dns-01"),
            (
                "tls-alpn-01 from Open MPIC",
                "acme-tls-alpn-01",
                "tls-alpn-01",
            ),
            (
                "dns-account-01 unchanged",
                "dns-account-01",
                "dns-account-01",
            ),
            ("ACME name unchanged", "dns-01", "dns-01"),
            (
                "non-ACME method unchanged",
                "website-change",
                "website-change",
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(acme_method_name(input), expected, "case {name:?}");
        }
    }
}
