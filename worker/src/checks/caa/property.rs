//! CAA properties as received, and the grammar of their values.
//!
//! - [`CaaRecord`] keeps one record's flags, tag and value bytes exactly as they came off the
//!   wire ([RFC 8659 §4.1](https://www.rfc-editor.org/rfc/rfc8659#section-4.1)) and prints them
//!   in presentation format (§4.1.1).
//! - [`parse_issuer_value`] parses an `issue`, `issuewild` or `issuemail` value with the
//!   `issue-value` grammar of [RFC 8659 §4.2](https://www.rfc-editor.org/rfc/rfc8659#section-4.2).
//! - [`parse_validation_methods`] parses the `validationmethods` parameter of
//!   [RFC 8657 §4](https://www.rfc-editor.org/rfc/rfc8657#section-4).
//!
//! Parsing is strict: anything outside the grammar is a [`MalformedValue`], and the caller
//! treats such a record as permitting no issuer (RFC 8659 §4.2). There is no leniency for
//! a trailing dot on the issuer domain name, spaces inside a parameter value or a trailing `;`.

use std::fmt;

use hickory_resolver::proto::rr::rdata::CAA;

/// One CAA resource record's property, exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaRecord {
    flags: u8,
    tag: String,
    value: Vec<u8>,
}

/// The property tags this checker recognizes (RFC 8659 §4.2–4.4, RFC 9495, BR Appendix A).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyTag {
    /// `issue`: which issuers may issue for the name (RFC 8659 §4.2).
    Issue,
    /// `issuewild`: which issuers may issue wildcard certificates (RFC 8659 §4.3).
    IssueWild,
    /// `issuemail`: which issuers may issue S/MIME certificates (RFC 9495).
    IssueMail,
    /// `iodef`: where to report invalid requests (RFC 8659 §4.4); it does not restrict issuance.
    Iodef,
    /// `contactemail`: a contact for domain validation (BR Appendix A.1.1).
    ContactEmail,
    /// `contactphone`: a contact for domain validation (BR Appendix A.1.2).
    ContactPhone,
    /// Any other tag.
    Unknown,
}

/// A parsed `issue`, `issuewild` or `issuemail` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerValue {
    issuer_domain_name: Option<String>,
    parameters: Vec<Parameter>,
}

/// One `tag=value` parameter of an issuer value, as written in the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    tag: String,
    value: String,
}

/// A property value that does not match its grammar, by the first rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedValue {
    /// The value contains a byte outside printable ASCII, space and tab.
    #[error("the value contains a byte that is not printable ASCII (0x{byte:02x})")]
    NotAscii {
        /// The first offending byte.
        byte: u8,
    },
    /// The part before the first `;` is not an LDH domain name.
    #[error("{name:?} is not a valid issuer domain name")]
    InvalidIssuerDomainName {
        /// The text found where the issuer domain name belongs.
        name: String,
    },
    /// A `;` is not followed by a parameter, e.g. a trailing `;` or `;;`.
    #[error("a \";\" is not followed by a parameter")]
    EmptyParameter,
    /// A parameter has no `=`.
    #[error("parameter {parameter:?} has no \"=\"")]
    MissingEquals {
        /// The parameter as written.
        parameter: String,
    },
    /// A parameter tag is not letters, digits and inner hyphens.
    #[error("{tag:?} is not a valid parameter tag")]
    InvalidParameterTag {
        /// The tag as written.
        tag: String,
    },
    /// A parameter value contains a space, a tab or a `;`.
    #[error("the value of parameter {tag:?} contains whitespace")]
    InvalidParameterValue {
        /// The tag of the parameter.
        tag: String,
    },
    /// A `validationmethods` list is not comma-separated method labels.
    #[error("{value:?} is not a comma-separated list of validation method names")]
    InvalidValidationMethods {
        /// The parameter value.
        value: String,
    },
}

impl CaaRecord {
    /// Creates a record from its three fields.
    pub fn new(flags: u8, tag: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            flags,
            tag: tag.into(),
            value: value.into(),
        }
    }

    /// Copies a record out of hickory's CAA RDATA. hickory 0.26 keeps all eight flag bits,
    /// the tag's case and the raw value bytes, which the integration tests check.
    pub fn from_rdata(rdata: &CAA) -> Self {
        Self::new(rdata.flags(), rdata.tag.clone(), rdata.value.clone())
    }

    /// Returns the flags octet.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Returns the tag as written in the record.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Returns the raw value.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Returns the property tag, matched case-insensitively (RFC 8659 §4.1).
    pub fn property(&self) -> PropertyTag {
        PropertyTag::from_tag(&self.tag)
    }

    /// Returns true when the issuer critical flag (value 128) or the next flag bit (value 64)
    /// is set.
    ///
    /// RFC 8659 §4.1 defines only value 128 and requires the reserved bits to be ignored. Treating
    /// value 64 as critical too is a deliberate departure: it can only forbid more issuance,
    /// never permit more.
    pub fn is_critical(&self) -> bool {
        self.flags & CRITICAL_FLAGS != 0
    }

    /// Formats the record as `flags tag "value"` (RFC 8659 §4.1.1). In the value, `"` and `\`
    /// are escaped with a backslash and bytes outside printable ASCII as `\DDD` (RFC 1035 §5.1).
    pub fn presentation(&self) -> String {
        let mut text = format!("{} {} \"", self.flags, self.tag);
        for &byte in &self.value {
            match byte {
                b'"' | b'\\' => {
                    text.push('\\');
                    text.push(char::from(byte));
                }
                0x20..=0x7e => text.push(char::from(byte)),
                _ => text.push_str(&format!("\\{byte:03}")),
            }
        }
        text.push('"');
        text
    }
}

impl fmt::Display for CaaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.presentation())
    }
}

impl PropertyTag {
    /// Classifies a tag, ignoring case.
    pub fn from_tag(tag: &str) -> Self {
        const TAGS: [(&str, PropertyTag); 6] = [
            ("issue", PropertyTag::Issue),
            ("issuewild", PropertyTag::IssueWild),
            ("issuemail", PropertyTag::IssueMail),
            ("iodef", PropertyTag::Iodef),
            ("contactemail", PropertyTag::ContactEmail),
            ("contactphone", PropertyTag::ContactPhone),
        ];
        TAGS.iter()
            .find(|(known, _)| tag.eq_ignore_ascii_case(known))
            .map_or(PropertyTag::Unknown, |(_, property)| *property)
    }
}

impl IssuerValue {
    /// Returns the issuer domain name in lower case, or `None` when the value names no issuer
    /// (`;`, an empty value or only parameters), which forbids issuance (RFC 8659 §4.2).
    pub fn issuer_domain_name(&self) -> Option<&str> {
        self.issuer_domain_name.as_deref()
    }

    /// Returns the values of every parameter whose tag matches `tag`, ignoring case.
    pub fn parameter_values<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.parameters
            .iter()
            .filter(move |parameter| parameter.tag.eq_ignore_ascii_case(tag))
            .map(|parameter| parameter.value.as_str())
    }
}

/// Parses an issuer value with the RFC 8659 §4.2 grammar:
///
/// ```text
/// issue-value = *WSP [issuer-domain-name *WSP] [";" *WSP [parameters *WSP]]
/// parameters = (parameter *WSP ";" *WSP parameters) / parameter
/// parameter = parameter-tag *WSP "=" *WSP parameter-value
/// parameter-value = *(%x21-3A / %x3C-7E)
/// ```
///
/// The issuer domain name is returned in lower case. Parameter tags and values keep their case.
pub fn parse_issuer_value(value: &[u8]) -> Result<IssuerValue, MalformedValue> {
    if let Some(&byte) = value
        .iter()
        .find(|&&byte| !(byte.is_ascii_graphic() || is_wsp(byte)))
    {
        return Err(MalformedValue::NotAscii { byte });
    }
    // Every byte is printable ASCII, space or tab, so the value is valid UTF-8.
    let text: String = value.iter().map(|&byte| char::from(byte)).collect();

    let (name_part, parameters_part) = match text.split_once(';') {
        Some((name, parameters)) => (name, Some(parameters)),
        None => (text.as_str(), None),
    };

    let name = trim_wsp(name_part);
    let issuer_domain_name = if name.is_empty() {
        None
    } else if is_issuer_domain_name(name) {
        Some(name.to_ascii_lowercase())
    } else {
        return Err(MalformedValue::InvalidIssuerDomainName {
            name: name.to_owned(),
        });
    };

    let parameters = match parameters_part.map(trim_wsp) {
        None | Some("") => Vec::new(),
        Some(list) => list
            .split(';')
            .map(parse_parameter)
            .collect::<Result<_, _>>()?,
    };

    Ok(IssuerValue {
        issuer_domain_name,
        parameters,
    })
}

/// Parses a `validationmethods` parameter value (RFC 8657 §4):
///
/// ```text
/// value = [*(label ",") label]
/// label = 1*(ALPHA / DIGIT / "-")
/// ```
///
/// An empty value is an empty list, which permits no validation method.
pub fn parse_validation_methods(value: &str) -> Result<Vec<&str>, MalformedValue> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let labels: Vec<&str> = value.split(',').collect();
    let valid = labels.iter().all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
    });
    if !valid {
        return Err(MalformedValue::InvalidValidationMethods {
            value: value.to_owned(),
        });
    }
    Ok(labels)
}

fn parse_parameter(text: &str) -> Result<Parameter, MalformedValue> {
    let text = trim_wsp(text);
    if text.is_empty() {
        return Err(MalformedValue::EmptyParameter);
    }
    let Some((tag, value)) = text.split_once('=') else {
        return Err(MalformedValue::MissingEquals {
            parameter: text.to_owned(),
        });
    };

    let tag = trim_wsp(tag);
    if !is_ldh_label(tag) {
        return Err(MalformedValue::InvalidParameterTag {
            tag: tag.to_owned(),
        });
    }
    let value = trim_wsp(value);
    if value.bytes().any(is_wsp) {
        return Err(MalformedValue::InvalidParameterValue {
            tag: tag.to_owned(),
        });
    }

    Ok(Parameter {
        tag: tag.to_owned(),
        value: value.to_owned(),
    })
}

/// `issuer-domain-name = label *("." label)`; no empty label, no trailing dot.
fn is_issuer_domain_name(name: &str) -> bool {
    name.split('.').all(is_ldh_label)
}

/// `label = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT))`: letters, digits and inner hyphens.
/// RFC 8659 §4.2 uses the same rule for parameter tags.
fn is_ldh_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || *byte == b'-')
}

fn trim_wsp(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

fn is_wsp(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Flag bits that make a property critical: the issuer critical flag (128, RFC 8659 §4.1) and
/// the bit after it (64), see [`CaaRecord::is_critical`].
const CRITICAL_FLAGS: u8 = 0b1100_0000;

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(tag: &str, value: &str) -> Parameter {
        Parameter {
            tag: tag.to_owned(),
            value: value.to_owned(),
        }
    }

    fn issuer(name: Option<&str>, parameters: Vec<Parameter>) -> IssuerValue {
        IssuerValue {
            issuer_domain_name: name.map(str::to_owned),
            parameters,
        }
    }

    #[test]
    fn parse_issuer_value_accepts_the_grammar() {
        let cases = [
            (
                "bare issuer",
                "ca.example",
                issuer(Some("ca.example"), vec![]),
            ),
            (
                "issuer is lower-cased",
                "CA.Example.NET",
                issuer(Some("ca.example.net"), vec![]),
            ),
            (
                "surrounding whitespace",
                " \tca.example \t",
                issuer(Some("ca.example"), vec![]),
            ),
            ("semicolon only: no issuer", ";", issuer(None, vec![])),
            ("empty value: no issuer", "", issuer(None, vec![])),
            ("whitespace only: no issuer", "  ", issuer(None, vec![])),
            (
                "issuer with empty parameter list",
                "ca.example;",
                issuer(Some("ca.example"), vec![]),
            ),
            (
                "one parameter",
                "ca.example; account=230123",
                issuer(Some("ca.example"), vec![parameter("account", "230123")]),
            ),
            (
                "whitespace around equals and semicolons",
                "ca.example ;  a = 1 ;\tb=2 ",
                issuer(
                    Some("ca.example"),
                    vec![parameter("a", "1"), parameter("b", "2")],
                ),
            ),
            (
                "parameters without issuer",
                "; accounturi=https://ca.example/acct/1",
                issuer(
                    None,
                    vec![parameter("accounturi", "https://ca.example/acct/1")],
                ),
            ),
            (
                "empty parameter value",
                "ca.example; a=",
                issuer(Some("ca.example"), vec![parameter("a", "")]),
            ),
            (
                "equals inside a value",
                "ca.example; a=b=c",
                issuer(Some("ca.example"), vec![parameter("a", "b=c")]),
            ),
            (
                "hyphenated labels and tags",
                "ca-1.ex--ample.net; policy-id=ev",
                issuer(
                    Some("ca-1.ex--ample.net"),
                    vec![parameter("policy-id", "ev")],
                ),
            ),
            (
                "parameter tag keeps its case",
                "ca.example; AccountURI=x",
                issuer(Some("ca.example"), vec![parameter("AccountURI", "x")]),
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(
                parse_issuer_value(input.as_bytes()),
                Ok(expected),
                "case {name:?}"
            );
        }
    }

    #[test]
    fn parse_issuer_value_rejects_malformed_values() {
        let cases: [(&str, &[u8]); 15] = [
            ("percent signs from RFC 8659 example", b"%%%%%"),
            ("trailing dot on issuer", b"ca.example."),
            ("leading dot", b".ca.example"),
            ("empty label", b"ca..example"),
            ("leading hyphen in label", b"-ca.example"),
            ("trailing hyphen in label", b"ca-.example"),
            ("space inside issuer", b"ca example"),
            ("underscore in issuer", b"ca_1.example"),
            ("U-label issuer", "bücher.example".as_bytes()),
            ("control byte", b"ca.example\x00"),
            ("trailing semicolon after parameter", b"ca.example; a=1;"),
            ("double semicolon", b"ca.example; a=1;; b=2"),
            ("parameter without equals", b"ca.example; account"),
            ("space inside parameter value", b"ca.example; a=1 2"),
            ("invalid parameter tag", b"ca.example; a_b=1"),
        ];
        for (name, input) in cases {
            assert!(
                parse_issuer_value(input).is_err(),
                "case {name:?}: {input:?} was accepted"
            );
        }
    }

    #[test]
    fn parse_validation_methods_follows_rfc_8657() {
        let cases: [(&str, &str, Option<Vec<&str>>); 7] = [
            ("one method", "dns-01", Some(vec!["dns-01"])),
            (
                "several methods",
                "dns-01,http-01,ca-custom",
                Some(vec!["dns-01", "http-01", "ca-custom"]),
            ),
            ("empty list", "", Some(vec![])),
            ("empty label", "dns-01,,http-01", None),
            ("trailing comma", "dns-01,", None),
            ("space after comma", "dns-01, http-01", None),
            ("underscore", "dns_01", None),
        ];
        for (name, input, expected) in cases {
            assert_eq!(
                parse_validation_methods(input).ok(),
                expected,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn presentation_escapes_the_value() {
        let cases = [
            (
                "plain issue",
                CaaRecord::new(0, "issue", "ca.example"),
                r#"0 issue "ca.example""#,
            ),
            (
                "empty issuer",
                CaaRecord::new(0, "issue", ";"),
                r#"0 issue ";""#,
            ),
            (
                "tag case kept",
                CaaRecord::new(128, "IsSuE", "x"),
                r#"128 IsSuE "x""#,
            ),
            (
                "quote and backslash",
                CaaRecord::new(0, "tbs", br#"a"b\c"#.to_vec()),
                r#"0 tbs "a\"b\\c""#,
            ),
            (
                "non-printable bytes",
                CaaRecord::new(64, "issue", b"\x00\tca\xff".to_vec()),
                r#"64 issue "\000\009ca\255""#,
            ),
            (
                "empty value",
                CaaRecord::new(0, "issue", ""),
                r#"0 issue """#,
            ),
        ];
        for (name, record, expected) in cases {
            assert_eq!(record.presentation(), expected, "case {name:?}");
        }
    }

    #[test]
    fn critical_flag_bits() {
        let cases = [
            ("no flags", 0, false),
            ("issuer critical flag 128", 128, true),
            ("bit 1, value 64", 64, true),
            ("both", 192, true),
            ("other reserved bits are ignored", 0b0011_1111, false),
        ];
        for (name, flags, expected) in cases {
            assert_eq!(
                CaaRecord::new(flags, "tbs", "x").is_critical(),
                expected,
                "case {name:?}"
            );
        }
    }

    #[test]
    fn property_tags_match_case_insensitively() {
        let cases = [
            ("issue", "issue", PropertyTag::Issue),
            ("upper-case issue", "ISSUE", PropertyTag::Issue),
            ("mixed-case issuewild", "IssueWild", PropertyTag::IssueWild),
            ("issuemail", "issuemail", PropertyTag::IssueMail),
            ("iodef", "IODEF", PropertyTag::Iodef),
            ("contactemail", "contactemail", PropertyTag::ContactEmail),
            ("contactphone", "ContactPhone", PropertyTag::ContactPhone),
            ("unknown", "tbs", PropertyTag::Unknown),
            ("prefix of a known tag", "issu", PropertyTag::Unknown),
        ];
        for (name, tag, expected) in cases {
            assert_eq!(PropertyTag::from_tag(tag), expected, "case {name:?}");
        }
    }
}
