//! The request of an HTTP-based check: the challenge URL, the request headers, and what the
//! final response must contain. Building it is pure, so every rule has a unit test.

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};
use mpic_shared::dcv::{AcmeHttp01Parameters, HttpHeaders, UrlScheme, WebsiteChangeParameters};
use mpic_shared::target::Target;
use regex::{Regex, RegexBuilder};
use url::Url;

use super::error::InvalidRequest;

/// One challenge fetch: where to fetch it, with which headers, and the expectation the final
/// response must meet.
#[derive(Debug)]
pub struct ChallengeRequest {
    /// The challenge URL, with the configured port of its scheme.
    pub url: Url,
    /// Extra request headers from the request parameters.
    pub headers: HeaderMap,
    /// The condition the body of the final response must meet.
    pub expectation: Expectation,
}

/// The condition the body of the final response must meet.
#[derive(Debug)]
pub enum Expectation {
    /// website-change: the body contains the challenge value and matches the pattern, if any.
    ContainsValue {
        /// The value to find.
        challenge_value: String,
        /// Whether letter case must match.
        case: LetterCase,
        /// A regular expression the body must also match.
        pattern: Option<Regex>,
    },
    /// acme-http-01: the body, with trailing whitespace removed, is the key authorization.
    KeyAuthorization(String),
}

/// The letter-case rule for finding a challenge value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LetterCase {
    /// Letters must match exactly (`require_exact_case: true`, the default).
    Exact,
    /// Letters are compared after Unicode lower-casing of both sides.
    Insensitive,
}

/// The ports challenge URLs use, one per scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChallengePorts {
    /// The port of `http` URLs.
    pub http: u16,
    /// The port of `https` URLs.
    pub https: u16,
}

impl ChallengeRequest {
    /// Builds the website-change request (BR §3.2.2.4.18):
    /// `<scheme>://<target>/.well-known/pki-validation/<http_token_path>`.
    ///
    /// # Errors
    ///
    /// Returns [`InvalidRequest`] for a blank challenge value, a wildcard target, a token path
    /// that leaves the `pki-validation` directory, an invalid or forbidden header, or an
    /// invalid pattern.
    pub fn website_change(
        target: &Target,
        parameters: &WebsiteChangeParameters,
        ports: ChallengePorts,
    ) -> Result<Self, InvalidRequest> {
        check_not_blank(&parameters.challenge_value, "challenge_value")?;
        let (scheme, port) = match parameters.url_scheme {
            UrlScheme::Http => ("http", ports.http),
            UrlScheme::Https => ("https", ports.https),
        };
        let directory = directory_url(target, scheme, port, PKI_VALIDATION_DIRECTORY)?;
        let url = token_path_url(&directory, &parameters.http_token_path)?;

        let pattern = parameters
            .match_regex
            .as_deref()
            .map(compile_pattern)
            .transpose()?;
        let case = if parameters.require_exact_case {
            LetterCase::Exact
        } else {
            LetterCase::Insensitive
        };

        Ok(Self {
            url,
            headers: request_headers(parameters.http_headers.as_ref())?,
            expectation: Expectation::ContainsValue {
                challenge_value: parameters.challenge_value.clone(),
                case,
                pattern,
            },
        })
    }

    /// Builds the acme-http-01 request: `http://<target>/.well-known/acme-challenge/<token>`
    /// (RFC 8555 §8.3, RFC 8738 §3 for IP addresses).
    ///
    /// # Errors
    ///
    /// Returns [`InvalidRequest`] for a wildcard target, a token outside the base64url
    /// alphabet, a blank key authorization, or an invalid or forbidden header.
    pub fn acme_http_01(
        target: &Target,
        parameters: &AcmeHttp01Parameters,
        ports: ChallengePorts,
    ) -> Result<Self, InvalidRequest> {
        check_token(&parameters.token)?;
        check_not_blank(&parameters.key_authorization, "key_authorization")?;
        let directory = directory_url(target, "http", ports.http, ACME_CHALLENGE_DIRECTORY)?;
        let url = directory
            .join(&parameters.token)
            .map_err(|_| InvalidRequest::InvalidToken {
                token: parameters.token.clone(),
            })?;

        Ok(Self {
            url,
            headers: request_headers(parameters.http_headers.as_ref())?,
            expectation: Expectation::KeyAuthorization(parameters.key_authorization.clone()),
        })
    }
}

/// Rejects a blank expected value. The coordinator rejects it as `empty-challenge-value`, but
/// the worker's own endpoints take requests directly, and an empty value is contained in every
/// body, while a blank key authorization equals every blank body after trimming.
fn check_not_blank(value: &str, field: &'static str) -> Result<(), InvalidRequest> {
    if value.trim().is_empty() {
        return Err(InvalidRequest::BlankChallengeValue { field });
    }
    Ok(())
}

/// Returns the URL of `directory` (which ends with `/`) on the target.
///
/// File-based methods cannot validate a Wildcard Domain Name: CA/Browser Forum ballot SC45
/// removed that use, and `*` is no host to connect to.
fn directory_url(
    target: &Target,
    scheme: &str,
    port: u16,
    directory: &str,
) -> Result<Url, InvalidRequest> {
    let host = match target {
        Target::Domain(domain) if domain.wildcard => {
            return Err(InvalidRequest::WildcardTarget {
                target: format!("*.{}", domain.name),
            });
        }
        Target::Domain(domain) => domain.name.clone(),
        Target::Ip(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Target::Ip(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
    };

    let text = format!("{scheme}://{host}:{port}{directory}");
    Url::parse(&text).map_err(|source| InvalidRequest::InvalidUrl { url: text, source })
}

/// Appends the token path to the `pki-validation` directory URL and checks that the result
/// still lies inside that directory.
fn token_path_url(directory: &Url, token_path: &str) -> Result<Url, InvalidRequest> {
    let invalid = |reason: TokenPathProblem| InvalidRequest::InvalidTokenPath {
        path: token_path.to_owned(),
        reason,
    };
    if token_path.is_empty() {
        return Err(invalid(TokenPathProblem::Empty));
    }
    if token_path.contains('#') {
        return Err(invalid(TokenPathProblem::Fragment));
    }

    let url = directory
        .join(token_path)
        .map_err(|_| invalid(TokenPathProblem::Unparsable))?;
    let inside = url.host() == directory.host()
        && url.port() == directory.port()
        && url.path().starts_with(directory.path())
        && url.path() != directory.path();
    if !inside {
        return Err(invalid(TokenPathProblem::OutsideDirectory));
    }
    Ok(url)
}

/// The rule an `http_token_path` breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenPathProblem {
    /// The path is empty.
    Empty,
    /// The path contains `#`, which would cut it short.
    Fragment,
    /// The path is not a valid URL reference.
    Unparsable,
    /// The path leads outside `/.well-known/pki-validation/` (BR §3.2.2.4.18 requires the file
    /// to be under that directory), or to the directory itself.
    OutsideDirectory,
}

impl fmt::Display for TokenPathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "it is empty",
            Self::Fragment => "it contains '#'",
            Self::Unparsable => "it is not a valid URL path",
            Self::OutsideDirectory => "it leads outside /.well-known/pki-validation/",
        })
    }
}

/// Checks that an ACME token is non-empty base64url without padding. RFC 8555 §8.3: the
/// token "MUST NOT contain any characters outside the base64url alphabet".
fn check_token(token: &str) -> Result<(), InvalidRequest> {
    let base64url = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_';
    if token.is_empty() || !token.bytes().all(base64url) {
        return Err(InvalidRequest::InvalidToken {
            token: token.to_owned(),
        });
    }
    Ok(())
}

/// Converts the request's extra headers, rejecting the ones the fetcher must control.
fn request_headers(headers: Option<&HttpHeaders>) -> Result<HeaderMap, InvalidRequest> {
    let mut map = HeaderMap::new();
    for (name, value) in headers.into_iter().flatten() {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| InvalidRequest::InvalidHeader { name: name.clone() })?;
        if FORBIDDEN_HEADERS.contains(&header_name.as_str()) {
            return Err(InvalidRequest::ForbiddenHeader { name: name.clone() });
        }
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| InvalidRequest::InvalidHeader { name: name.clone() })?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

fn compile_pattern(pattern: &str) -> Result<Regex, InvalidRequest> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|source| InvalidRequest::InvalidPattern {
            pattern: pattern.to_owned(),
            source,
        })
}

/// The directory of website-change files (BR §3.2.2.4.18).
const PKI_VALIDATION_DIRECTORY: &str = "/.well-known/pki-validation/";

/// The directory of ACME HTTP challenge files (RFC 8555 §8.3).
const ACME_CHALLENGE_DIRECTORY: &str = "/.well-known/acme-challenge/";

/// Request headers a caller may not set, in lower case.
///
/// `host` would let the request name another site on the same server, while the BR require the
/// file to be on the Authorization Domain Name itself (§3.2.2.4.18). The others control message
/// framing and the connection, which belong to the HTTP client.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "proxy-connection",
];

/// The maximum size of a compiled `match_regex`: 1 MiB. The regex crate matches in linear time,
/// so the size of the compiled program is what bounds the cost of a pattern from a request.
/// Patterns for validation pages are short, far below this.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: ChallengePorts = ChallengePorts {
        http: 80,
        https: 443,
    };

    fn target(text: &str) -> Target {
        Target::parse(text).unwrap_or_else(|error| panic!("test target {text}: {error}"))
    }

    fn website_change(token_path: &str) -> WebsiteChangeParameters {
        WebsiteChangeParameters {
            challenge_value: "value".to_owned(),
            http_token_path: token_path.to_owned(),
            url_scheme: UrlScheme::Http,
            http_headers: None,
            match_regex: None,
            require_exact_case: true,
        }
    }

    fn acme(token: &str) -> AcmeHttp01Parameters {
        AcmeHttp01Parameters {
            token: token.to_owned(),
            key_authorization: format!("{token}.thumbprint"),
            http_headers: None,
        }
    }

    #[test]
    fn website_change_urls() {
        struct Case {
            name: &'static str,
            target: &'static str,
            token_path: &'static str,
            scheme: UrlScheme,
            ports: ChallengePorts,
            expected: &'static str,
        }
        let cases = [
            Case {
                name: "http default port",
                target: "example.com",
                token_path: "token.txt",
                scheme: UrlScheme::Http,
                ports: PORTS,
                expected: "http://example.com/.well-known/pki-validation/token.txt",
            },
            Case {
                name: "https default port",
                target: "example.com",
                token_path: "token.txt",
                scheme: UrlScheme::Https,
                ports: PORTS,
                expected: "https://example.com/.well-known/pki-validation/token.txt",
            },
            Case {
                name: "configured http port",
                target: "example.com",
                token_path: "token.txt",
                scheme: UrlScheme::Http,
                ports: ChallengePorts {
                    http: 8080,
                    https: 8443,
                },
                expected: "http://example.com:8080/.well-known/pki-validation/token.txt",
            },
            Case {
                name: "IPv4 target",
                target: "192.0.2.7",
                token_path: "t",
                scheme: UrlScheme::Http,
                ports: PORTS,
                expected: "http://192.0.2.7/.well-known/pki-validation/t",
            },
            Case {
                name: "IPv6 target",
                target: "2001:db8::7",
                token_path: "t",
                scheme: UrlScheme::Https,
                ports: PORTS,
                expected: "https://[2001:db8::7]/.well-known/pki-validation/t",
            },
            Case {
                name: "internationalized name in A-labels",
                target: "bücher.example",
                token_path: "t",
                scheme: UrlScheme::Http,
                ports: PORTS,
                expected: "http://xn--bcher-kva.example/.well-known/pki-validation/t",
            },
            Case {
                name: "subdirectory and query",
                target: "example.com",
                token_path: "sub/file.txt?v=1",
                scheme: UrlScheme::Http,
                ports: PORTS,
                expected: "http://example.com/.well-known/pki-validation/sub/file.txt?v=1",
            },
        ];

        for case in cases {
            let mut parameters = website_change(case.token_path);
            parameters.url_scheme = case.scheme;
            let request =
                ChallengeRequest::website_change(&target(case.target), &parameters, case.ports)
                    .unwrap_or_else(|error| panic!("{}: {error}", case.name));
            assert_eq!(request.url.as_str(), case.expected, "{}", case.name);
        }
    }

    #[test]
    fn token_paths_outside_directory_rejected() {
        let cases = [
            ("", TokenPathProblem::Empty),
            ("file#frag", TokenPathProblem::Fragment),
            ("../secret", TokenPathProblem::OutsideDirectory),
            ("/admin", TokenPathProblem::OutsideDirectory),
            ("%2e%2e/secret", TokenPathProblem::OutsideDirectory),
            ("sub/../../secret", TokenPathProblem::OutsideDirectory),
            ("//other.example/file", TokenPathProblem::OutsideDirectory),
            (
                "http://other.example/.well-known/pki-validation/f",
                TokenPathProblem::OutsideDirectory,
            ),
            (".", TokenPathProblem::OutsideDirectory),
        ];
        for (token_path, expected) in cases {
            let result = ChallengeRequest::website_change(
                &target("example.com"),
                &website_change(token_path),
                PORTS,
            );
            assert!(
                matches!(&result, Err(InvalidRequest::InvalidTokenPath { reason, .. }) if *reason == expected),
                "{token_path:?}: expected {expected:?}, got {result:?}"
            );
        }
    }

    #[test]
    fn acme_urls() {
        let request =
            ChallengeRequest::acme_http_01(&target("example.com"), &acme("abc_-XYZ09"), PORTS)
                .expect("valid request");
        assert_eq!(
            request.url.as_str(),
            "http://example.com/.well-known/acme-challenge/abc_-XYZ09"
        );

        let on_test_port = ChallengeRequest::acme_http_01(
            &target("2001:db8::1"),
            &acme("t"),
            ChallengePorts {
                http: 5002,
                https: 5001,
            },
        )
        .expect("valid request");
        assert_eq!(
            on_test_port.url.as_str(),
            "http://[2001:db8::1]:5002/.well-known/acme-challenge/t"
        );
    }

    #[test]
    fn acme_tokens_outside_base64url_rejected() {
        for token in ["", "a/b", "a.b", "abc=", "../x", "a b", "a?b", "a%2Fb", "ü"] {
            let result =
                ChallengeRequest::acme_http_01(&target("example.com"), &acme(token), PORTS);
            assert!(
                matches!(result, Err(InvalidRequest::InvalidToken { .. })),
                "{token:?}: expected an invalid token, got {result:?}"
            );
        }
    }

    #[test]
    fn wildcard_targets_rejected() {
        let wildcard = target("*.example.com");
        let website = ChallengeRequest::website_change(&wildcard, &website_change("t"), PORTS);
        assert!(
            matches!(&website, Err(InvalidRequest::WildcardTarget { target }) if target == "*.example.com"),
            "website-change: got {website:?}"
        );
        let acme_request = ChallengeRequest::acme_http_01(&wildcard, &acme("t"), PORTS);
        assert!(
            matches!(acme_request, Err(InvalidRequest::WildcardTarget { .. })),
            "acme-http-01: got {acme_request:?}"
        );
    }

    #[test]
    fn extra_headers() {
        let mut parameters = acme("t");
        parameters.http_headers = Some(HttpHeaders::from([
            ("X-Validation".to_owned(), "yes".to_owned()),
            ("User-Agent".to_owned(), "custom".to_owned()),
        ]));
        let request = ChallengeRequest::acme_http_01(&target("example.com"), &parameters, PORTS)
            .expect("valid request");
        assert_eq!(
            request
                .headers
                .get("x-validation")
                .map(HeaderValue::as_bytes),
            Some(&b"yes"[..])
        );
        assert_eq!(
            request.headers.get("user-agent").map(HeaderValue::as_bytes),
            Some(&b"custom"[..])
        );
    }

    #[test]
    fn bad_headers_rejected() {
        let cases = [
            ("Host", "other.example", "forbidden"),
            ("host", "other.example", "forbidden"),
            ("Transfer-Encoding", "chunked", "forbidden"),
            ("Content-Length", "5", "forbidden"),
            ("Connection", "keep-alive", "forbidden"),
            ("Bad Name", "x", "invalid"),
            ("X-Test", "line\nbreak", "invalid"),
        ];
        for (name, value, expected) in cases {
            let mut parameters = acme("t");
            parameters.http_headers =
                Some(HttpHeaders::from([(name.to_owned(), value.to_owned())]));
            let result = ChallengeRequest::acme_http_01(&target("example.com"), &parameters, PORTS);
            let matched = match expected {
                "forbidden" => matches!(result, Err(InvalidRequest::ForbiddenHeader { .. })),
                _ => matches!(result, Err(InvalidRequest::InvalidHeader { .. })),
            };
            assert!(
                matched,
                "{name}: expected a {expected} header, got {result:?}"
            );
        }
    }

    #[test]
    fn patterns_compiled() {
        let mut parameters = website_change("t");
        parameters.match_regex = Some("^value-[0-9]+$".to_owned());
        let request = ChallengeRequest::website_change(&target("example.com"), &parameters, PORTS)
            .expect("valid pattern");
        assert!(
            matches!(
                request.expectation,
                Expectation::ContainsValue {
                    pattern: Some(_),
                    ..
                }
            ),
            "the pattern must be kept"
        );

        parameters.match_regex = Some("(unclosed".to_owned());
        let result = ChallengeRequest::website_change(&target("example.com"), &parameters, PORTS);
        assert!(
            matches!(result, Err(InvalidRequest::InvalidPattern { .. })),
            "invalid pattern: got {result:?}"
        );

        parameters.match_regex = Some("a{1000}{1000}".to_owned());
        let result = ChallengeRequest::website_change(&target("example.com"), &parameters, PORTS);
        assert!(
            matches!(result, Err(InvalidRequest::InvalidPattern { .. })),
            "oversized pattern: got {result:?}"
        );
    }

    #[test]
    fn letter_case_setting() {
        let mut parameters = website_change("t");
        parameters.require_exact_case = false;
        let request = ChallengeRequest::website_change(&target("example.com"), &parameters, PORTS)
            .expect("valid request");
        assert!(matches!(
            request.expectation,
            Expectation::ContainsValue {
                case: LetterCase::Insensitive,
                ..
            }
        ));
    }
}
