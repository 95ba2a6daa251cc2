//! Redirect and destination rules, as pure functions of URLs and status codes.
//!
//! The rules come from the CA/Browser Forum Baseline Requirements, §3.2.2.4.18 ("Agreed-Upon
//! Change to Website v2") and §3.2.2.4.19 ("Agreed-Upon Change to Website - ACME"). A CA may
//! follow a redirect only when a 301, 302, 307 or 308 response initiates it at the HTTP layer.
//! The redirect goes to the final value of the `Location` header, must use the `http` or
//! `https` scheme and must reach an Authorized Port. Here the Authorized Port of each scheme is
//! the one in [`Destinations`], so tests and private deployments can move it.

use http::StatusCode;
use url::Url;

use super::error::{FetchError, UrlProblem};

/// The ports a fetch may connect to, one per scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Destinations {
    pub(crate) http_port: u16,
    pub(crate) https_port: u16,
}

/// The step that follows a response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NextStep {
    /// The response is the final one: read its body.
    Finish,
    /// Request this URL next.
    Follow(Url),
}

impl Destinations {
    /// Checks that `url` uses a supported scheme, has a host and uses the port of its scheme.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), UrlProblem> {
        let Some(allowed_port) = self.port_for(url.scheme()) else {
            return Err(UrlProblem::UnsupportedScheme);
        };
        if url.host().is_none() {
            return Err(UrlProblem::MissingHost);
        }

        // `port_or_known_default` is `Some` for http and https, the only schemes left here.
        let port = url.port_or_known_default().unwrap_or(0);
        if port != allowed_port {
            return Err(UrlProblem::DisallowedPort { port, allowed_port });
        }
        Ok(())
    }

    fn port_for(&self, scheme: &str) -> Option<u16> {
        match scheme {
            "http" => Some(self.http_port),
            "https" => Some(self.https_port),
            _ => None,
        }
    }
}

/// Decides whether the response of `current` ends the fetch or redirects to another URL.
///
/// `requested` lists every URL this fetch has requested so far, including `current`; its length
/// minus one is the number of redirects already followed.
///
/// # Errors
///
/// Returns the [`FetchError`] redirect variant that names the broken rule.
pub(crate) fn next_step(
    current: &Url,
    status: StatusCode,
    location: Option<&[u8]>,
    destinations: &Destinations,
    requested: &[Url],
    max_redirects: usize,
) -> Result<NextStep, FetchError> {
    if !status.is_redirection() {
        return Ok(NextStep::Finish);
    }
    if !FOLLOWED_STATUSES.contains(&status) {
        return Err(FetchError::DisallowedRedirectStatus {
            url: Box::new(current.clone()),
            status,
        });
    }

    let Some(location) = location else {
        return Err(FetchError::MissingLocation {
            url: Box::new(current.clone()),
            status,
        });
    };
    let target = resolve_location(current, location)?;

    check_redirect_target(current, &target, destinations)?;

    let redirects_followed = requested.len().saturating_sub(1);
    if redirects_followed >= max_redirects {
        return Err(FetchError::TooManyRedirects {
            url: Box::new(current.clone()),
            max_redirects,
        });
    }
    if requested.contains(&target) {
        return Err(FetchError::RedirectLoop {
            url: Box::new(current.clone()),
            location: Box::new(target),
        });
    }
    Ok(NextStep::Follow(target))
}

/// Resolves a `Location` value against the URL that sent it (RFC 9110 §10.2.2 allows a
/// relative reference). The fragment is dropped because it is never sent to a server.
fn resolve_location(current: &Url, location: &[u8]) -> Result<Url, FetchError> {
    let text = std::str::from_utf8(location).map_err(|_| FetchError::InvalidLocation {
        url: Box::new(current.clone()),
        location: String::from_utf8_lossy(location).into_owned(),
        source: None,
    })?;

    let mut target = current
        .join(text)
        .map_err(|error| FetchError::InvalidLocation {
            url: Box::new(current.clone()),
            location: text.to_owned(),
            source: Some(error),
        })?;
    target.set_fragment(None);
    Ok(target)
}

fn check_redirect_target(
    current: &Url,
    target: &Url,
    destinations: &Destinations,
) -> Result<(), FetchError> {
    match destinations.check_url(target) {
        Ok(()) => Ok(()),
        Err(UrlProblem::DisallowedPort { port, allowed_port }) => {
            Err(FetchError::DisallowedRedirectPort {
                url: Box::new(current.clone()),
                location: Box::new(target.clone()),
                port,
                allowed_port,
            })
        }
        // An http or https URL always has a host, so only the scheme can be wrong here.
        Err(UrlProblem::UnsupportedScheme | UrlProblem::MissingHost) => {
            Err(FetchError::DisallowedRedirectScheme {
                url: Box::new(current.clone()),
                location: Box::new(target.clone()),
            })
        }
    }
}

/// The redirect statuses the Baseline Requirements allow a CA to follow (§3.2.2.4.18 and
/// §3.2.2.4.19, from 1 July 2021 on).
const FOLLOWED_STATUSES: [StatusCode; 4] = [
    StatusCode::MOVED_PERMANENTLY,
    StatusCode::FOUND,
    StatusCode::TEMPORARY_REDIRECT,
    StatusCode::PERMANENT_REDIRECT,
];

#[cfg(test)]
mod tests {
    use super::*;

    const DESTINATIONS: Destinations = Destinations {
        http_port: 80,
        https_port: 443,
    };
    const MAX_REDIRECTS: usize = 10;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|error| panic!("test URL {text} is invalid: {error}"))
    }

    fn step(status: u16, location: Option<&str>) -> Result<NextStep, FetchError> {
        let current = url("http://example.com/.well-known/pki-validation/token.txt");
        step_from(&current, status, location, std::slice::from_ref(&current))
    }

    fn step_from(
        current: &Url,
        status: u16,
        location: Option<&str>,
        requested: &[Url],
    ) -> Result<NextStep, FetchError> {
        let status = StatusCode::from_u16(status).expect("test status is valid");
        next_step(
            current,
            status,
            location.map(str::as_bytes),
            &DESTINATIONS,
            requested,
            MAX_REDIRECTS,
        )
    }

    #[test]
    fn followed_statuses() {
        for status in [301, 302, 307, 308] {
            let result = step(status, Some("https://example.net/next"));
            assert!(
                matches!(&result, Ok(NextStep::Follow(target)) if target.as_str() == "https://example.net/next"),
                "status {status}: expected to follow, got {result:?}"
            );
        }
    }

    #[test]
    fn other_redirect_statuses_fail() {
        for status in [300, 303, 304, 305, 306, 309, 399] {
            let result = step(status, Some("https://example.net/next"));
            assert!(
                matches!(
                    &result,
                    Err(FetchError::DisallowedRedirectStatus { status: got, .. }) if got.as_u16() == status
                ),
                "status {status}: expected a disallowed redirect status, got {result:?}"
            );
        }
    }

    #[test]
    fn non_redirect_statuses_finish() {
        for status in [200, 204, 299, 400, 404, 500, 599] {
            let result = step(status, Some("https://example.net/next"));
            assert!(
                matches!(result, Ok(NextStep::Finish)),
                "status {status}: expected the fetch to finish, got {result:?}"
            );
        }
    }

    #[test]
    fn location_resolution() {
        struct Case {
            name: &'static str,
            location: &'static str,
            expected: &'static str,
        }
        let cases = [
            Case {
                name: "absolute path",
                location: "/other/file.txt",
                expected: "http://example.com/other/file.txt",
            },
            Case {
                name: "relative path",
                location: "renamed.txt",
                expected: "http://example.com/.well-known/pki-validation/renamed.txt",
            },
            Case {
                name: "parent path",
                location: "../acme-challenge/abc",
                expected: "http://example.com/.well-known/acme-challenge/abc",
            },
            Case {
                name: "scheme-relative",
                location: "//www.example.com/x",
                expected: "http://www.example.com/x",
            },
            Case {
                name: "query only",
                location: "?v=2",
                expected: "http://example.com/.well-known/pki-validation/token.txt?v=2",
            },
            Case {
                name: "fragment dropped",
                location: "https://example.net/a#section",
                expected: "https://example.net/a",
            },
            Case {
                name: "explicit default port",
                location: "https://example.net:443/a",
                expected: "https://example.net/a",
            },
        ];
        for case in cases {
            let result = step(302, Some(case.location));
            match result {
                Ok(NextStep::Follow(target)) => assert_eq!(
                    target.as_str(),
                    case.expected,
                    "{}: wrong redirect target",
                    case.name
                ),
                other => panic!("{}: expected to follow, got {other:?}", case.name),
            }
        }
    }

    #[test]
    fn disallowed_schemes_fail() {
        for location in [
            "ftp://example.net/file",
            "file:///etc/passwd",
            "gopher://example.net/",
            "data:text/plain,hello",
            "javascript:alert(1)",
        ] {
            let result = step(302, Some(location));
            assert!(
                matches!(result, Err(FetchError::DisallowedRedirectScheme { .. })),
                "{location}: expected a disallowed scheme, got {result:?}"
            );
        }
    }

    #[test]
    fn disallowed_ports_fail() {
        struct Case {
            name: &'static str,
            location: &'static str,
            port: u16,
            allowed_port: u16,
        }
        let cases = [
            Case {
                name: "http on 8081",
                location: "http://example.net:8081/",
                port: 8081,
                allowed_port: 80,
            },
            Case {
                name: "http on the https port",
                location: "http://example.net:443/",
                port: 443,
                allowed_port: 80,
            },
            Case {
                name: "https on the http port",
                location: "https://example.net:80/",
                port: 80,
                allowed_port: 443,
            },
            Case {
                name: "https on 8443",
                location: "https://example.net:8443/",
                port: 8443,
                allowed_port: 443,
            },
        ];
        for case in cases {
            let result = step(301, Some(case.location));
            match result {
                Err(FetchError::DisallowedRedirectPort {
                    port, allowed_port, ..
                }) => {
                    assert_eq!(port, case.port, "{}: wrong port", case.name);
                    assert_eq!(
                        allowed_port, case.allowed_port,
                        "{}: wrong allowed port",
                        case.name
                    );
                }
                other => panic!("{}: expected a disallowed port, got {other:?}", case.name),
            }
        }
    }

    #[test]
    fn configured_ports_replace_defaults() {
        let destinations = Destinations {
            http_port: 8080,
            https_port: 8443,
        };
        let current = url("http://127.0.0.1:8080/start");
        let follow = |location: &str| {
            next_step(
                &current,
                StatusCode::FOUND,
                Some(location.as_bytes()),
                &destinations,
                std::slice::from_ref(&current),
                MAX_REDIRECTS,
            )
        };

        let to_https = follow("https://127.0.0.1:8443/next");
        assert!(
            matches!(to_https, Ok(NextStep::Follow(_))),
            "configured https port: expected to follow, got {to_https:?}"
        );
        let to_default = follow("http://127.0.0.1/next");
        assert!(
            matches!(
                to_default,
                Err(FetchError::DisallowedRedirectPort {
                    port: 80,
                    allowed_port: 8080,
                    ..
                })
            ),
            "default http port: expected a disallowed port, got {to_default:?}"
        );
    }

    #[test]
    fn missing_location_fails() {
        let result = step(302, None);
        assert!(
            matches!(result, Err(FetchError::MissingLocation { .. })),
            "expected a missing location, got {result:?}"
        );
    }

    #[test]
    fn invalid_locations_fail() {
        let current = url("http://example.com/start");
        let requested = [current.clone()];
        let status = StatusCode::FOUND;

        let not_utf8 = next_step(
            &current,
            status,
            Some(b"/caf\xe9"),
            &DESTINATIONS,
            &requested,
            MAX_REDIRECTS,
        );
        assert!(
            matches!(
                not_utf8,
                Err(FetchError::InvalidLocation { source: None, .. })
            ),
            "non-UTF-8 location: expected an invalid location, got {not_utf8:?}"
        );

        let bad_port = step_from(&current, 302, Some("http://example.com:99999/"), &requested);
        assert!(
            matches!(
                bad_port,
                Err(FetchError::InvalidLocation {
                    source: Some(_),
                    ..
                })
            ),
            "out-of-range port: expected an invalid location, got {bad_port:?}"
        );
    }

    #[test]
    fn redirect_count_limit() {
        let current = url("http://example.com/hop");
        let mut requested: Vec<Url> = (0..MAX_REDIRECTS)
            .map(|hop| url(&format!("http://example.com/{hop}")))
            .collect();
        requested.push(current.clone());

        // Ten redirects followed so far: the eleventh is refused.
        let eleventh = step_from(&current, 302, Some("/next"), &requested);
        assert!(
            matches!(
                eleventh,
                Err(FetchError::TooManyRedirects {
                    max_redirects: MAX_REDIRECTS,
                    ..
                })
            ),
            "eleventh redirect: expected too many redirects, got {eleventh:?}"
        );

        // Nine redirects followed so far: the tenth is still followed.
        requested.remove(0);
        let tenth = step_from(&current, 302, Some("/next"), &requested);
        assert!(
            matches!(tenth, Ok(NextStep::Follow(_))),
            "tenth redirect: expected to follow, got {tenth:?}"
        );
    }

    #[test]
    fn redirect_loops_fail() {
        let start = url("http://example.com/a");
        let middle = url("http://example.com/b");

        let to_self = step_from(&start, 302, Some("/a"), std::slice::from_ref(&start));
        assert!(
            matches!(to_self, Err(FetchError::RedirectLoop { .. })),
            "redirect to itself: expected a loop, got {to_self:?}"
        );

        let back_to_start = step_from(
            &middle,
            301,
            Some("http://example.com/a#top"),
            &[start.clone(), middle.clone()],
        );
        assert!(
            matches!(back_to_start, Err(FetchError::RedirectLoop { .. })),
            "redirect back to the first URL: expected a loop, got {back_to_start:?}"
        );

        let new_query = step_from(
            &start,
            302,
            Some("/a?retry=1"),
            std::slice::from_ref(&start),
        );
        assert!(
            matches!(new_query, Ok(NextStep::Follow(_))),
            "same path with a new query: expected to follow, got {new_query:?}"
        );
    }

    #[test]
    fn check_url_rules() {
        let cases = [
            ("http://example.com/", Ok(())),
            ("https://example.com/", Ok(())),
            ("http://[2001:db8::1]/", Ok(())),
            ("ftp://example.com/", Err(UrlProblem::UnsupportedScheme)),
            ("file:///etc/hosts", Err(UrlProblem::UnsupportedScheme)),
            (
                "http://example.com:8081/",
                Err(UrlProblem::DisallowedPort {
                    port: 8081,
                    allowed_port: 80,
                }),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(DESTINATIONS.check_url(&url(text)), expected, "{text}");
        }
    }
}
