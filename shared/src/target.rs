//! Parsing of `domain_or_ip_target`.
//!
//! A target is an IPv4 address, an IPv6 address (with or without brackets) or a domain name.
//! Domain names are converted to A-labels with UTS 46 (non-transitional processing, STD3 rules,
//! as IDNA2008 certificates require), lower-cased and stripped of one trailing dot. A leading
//! `*.` marks a wildcard; the wildcard label must be the whole leftmost label.
//!
//! Single-label names (`localhost`, `com`) are rejected: no publicly-trusted certificate can
//! name them (BR §7.1.2.7.12 requires a fully-qualified domain name).

use std::fmt;
use std::net::IpAddr;

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A domain name, possibly a wildcard.
    Domain(DomainTarget),
    /// An IP address.
    Ip(IpAddr),
}

/// A domain name in A-label form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainTarget {
    /// The name without the wildcard label and without a trailing dot, e.g. `example.com`.
    pub name: String,
    /// True when the target was `*.<name>`.
    pub wildcard: bool,
}

/// The reason a target was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The target is empty.
    #[error("the target is empty")]
    Empty,
    /// UTS 46 processing rejected the name.
    #[error("{target:?} is not a valid domain name or IP address")]
    InvalidName {
        /// The target as given.
        target: String,
    },
    /// The target contains a character that UTS 46 would drop silently, such as a zero-width
    /// space, so the name checked would differ from the name the caller sent.
    #[error(
        "{target:?} contains an invisible character (U+{code_point:04X}) that domain name \
         processing would drop: remove it"
    )]
    InvisibleCharacter {
        /// The target as given.
        target: String,
        /// The offending code point.
        code_point: u32,
    },
    /// The name is under a special-use domain that is never resolved in the DNS (RFC 6761
    /// §6.3 `localhost`, §6.4 `invalid`); resolvers answer such names themselves.
    #[error(
        "{target:?} is under the special-use domain {domain:?}, which is never resolved in the DNS"
    )]
    SpecialUse {
        /// The target as given.
        target: String,
        /// The special-use domain.
        domain: &'static str,
    },
    /// A `*` appears anywhere but as the whole leftmost label.
    #[error("{target:?} has a misplaced wildcard: only a leading \"*.\" is allowed")]
    MisplacedWildcard {
        /// The target as given.
        target: String,
    },
    /// The name has a single label.
    #[error("{target:?} is not a fully-qualified domain name")]
    SingleLabel {
        /// The target as given.
        target: String,
    },
    /// A label or the whole name is too long (RFC 1035 §2.3.4).
    #[error("{target:?} is too long: labels are at most 63 octets and names at most 253")]
    TooLong {
        /// The target as given.
        target: String,
    },
}

const MAX_LABEL_OCTETS: usize = 63;

/// Top-level special-use domains that resolvers must answer without asking the DNS (RFC 6761).
const NEVER_RESOLVED_DOMAINS: [&str; 2] = ["localhost", "invalid"];
const MAX_NAME_OCTETS: usize = 253;

impl Target {
    /// Parses a target as the API receives it.
    pub fn parse(input: &str) -> Result<Self, TargetError> {
        if input.is_empty() {
            return Err(TargetError::Empty);
        }
        let unbracketed = input
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(input);
        if let Ok(address) = unbracketed.parse::<IpAddr>() {
            return Ok(Target::Ip(address));
        }

        if let Some(invisible) = input.chars().find(|&c| is_default_ignorable(c)) {
            return Err(TargetError::InvisibleCharacter {
                target: input.to_owned(),
                code_point: u32::from(invisible),
            });
        }

        let (wildcard, rest) = match input.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        if rest.contains('*') {
            return Err(TargetError::MisplacedWildcard {
                target: input.to_owned(),
            });
        }
        let rest = rest.strip_suffix('.').unwrap_or(rest);
        let name = idna::domain_to_ascii_strict(rest).map_err(|_| TargetError::InvalidName {
            target: input.to_owned(),
        })?;
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err(TargetError::InvalidName {
                target: input.to_owned(),
            });
        }
        // An all-numeric last label is no top-level domain (RFC 3696 §2); such a name is an
        // IPv4 address with a trailing dot or a typo, and must not be looked up as a name.
        if name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(TargetError::InvalidName {
                target: input.to_owned(),
            });
        }
        if let Some(domain) = NEVER_RESOLVED_DOMAINS
            .iter()
            .find(|domain| name.rsplit('.').next() == Some(**domain))
        {
            return Err(TargetError::SpecialUse {
                target: input.to_owned(),
                domain,
            });
        }
        if !name.contains('.') {
            return Err(TargetError::SingleLabel {
                target: input.to_owned(),
            });
        }
        if name.len() > MAX_NAME_OCTETS || name.split('.').any(|l| l.len() > MAX_LABEL_OCTETS) {
            return Err(TargetError::TooLong {
                target: input.to_owned(),
            });
        }
        Ok(Target::Domain(DomainTarget { name, wildcard }))
    }

    /// Returns the domain name, or `None` for an IP address.
    pub fn domain(&self) -> Option<&DomainTarget> {
        match self {
            Target::Domain(domain) => Some(domain),
            Target::Ip(_) => None,
        }
    }
}

/// Reports whether UTS 46 maps `c` to nothing: the soft hyphen, combining grapheme joiner,
/// Mongolian variation selectors, zero-width and directional format characters, word joiners,
/// variation selectors and the byte order mark (Unicode default-ignorable code points).
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Domain(DomainTarget {
                name,
                wildcard: true,
            }) => write!(f, "*.{name}"),
            Target::Domain(DomainTarget {
                name,
                wildcard: false,
            }) => f.write_str(name),
            Target::Ip(address) => write!(f, "{address}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str, wildcard: bool) -> Target {
        Target::Domain(DomainTarget {
            name: name.to_owned(),
            wildcard,
        })
    }

    #[test]
    fn parse_accepts_valid_targets() {
        let cases = [
            ("plain name", "example.com", domain("example.com", false)),
            (
                "upper case is lowered",
                "WWW.Example.COM",
                domain("www.example.com", false),
            ),
            (
                "trailing dot dropped",
                "example.com.",
                domain("example.com", false),
            ),
            ("wildcard", "*.example.com", domain("example.com", true)),
            (
                "IDN to A-labels",
                "bücher.example",
                domain("xn--bcher-kva.example", false),
            ),
            (
                "IDN wildcard",
                "*.Bücher.example",
                domain("xn--bcher-kva.example", true),
            ),
            (
                "IPv4",
                "192.0.2.1",
                Target::Ip("192.0.2.1".parse().unwrap()),
            ),
            (
                "IPv6",
                "2001:db8::1",
                Target::Ip("2001:db8::1".parse().unwrap()),
            ),
            (
                "bracketed IPv6",
                "[2001:db8::1]",
                Target::Ip("2001:db8::1".parse().unwrap()),
            ),
        ];
        for (name, input, expected) in cases {
            assert_eq!(Target::parse(input), Ok(expected), "case {name:?}");
        }
    }

    #[test]
    fn parse_rejects_invalid_targets() {
        let long_label = format!("{}.example", "a".repeat(64));
        let long_name = format!("{}example", "abcdefghi.".repeat(25));
        let cases = [
            ("empty", ""),
            ("single label", "localhost"),
            ("inner wildcard", "a.*.example.com"),
            ("partial wildcard label", "a*.example.com"),
            ("double wildcard", "*.*.example.com"),
            ("space", "exa mple.com"),
            ("empty label", "a..example.com"),
            ("underscore is not STD3", "_acme.example.com"),
            ("label over 63 octets", long_label.as_str()),
            ("name over 253 octets", long_name.as_str()),
            ("bracketed name", "[example.com]"),
            ("IPv4 with trailing dot", "192.0.2.1."),
            ("zero-width space", "exa\u{200B}mple.com"),
            ("under localhost", "ca.localhost"),
            ("under invalid", "*.host.INVALID"),
            ("soft hyphen", "exam\u{00AD}ple.com"),
            ("byte order mark", "\u{FEFF}example.com"),
            ("numeric top-level label", "example.123"),
        ];
        for (name, input) in cases {
            assert!(
                Target::parse(input).is_err(),
                "case {name:?}: {input:?} was accepted"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for input in ["*.example.com", "example.com", "2001:db8::1"] {
            assert_eq!(Target::parse(input).unwrap().to_string(), input);
        }
    }
}
