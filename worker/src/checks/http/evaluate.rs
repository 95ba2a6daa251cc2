//! The decision of an HTTP-based check: does the final response prove control?

use http::StatusCode;

use super::error::Rejection;
use super::request::{Expectation, LetterCase};

/// Decides whether a final response with `status` and `body` meets `expectation`.
///
/// Both methods require status 200. BR §3.2.2.4.18 and §3.2.2.4.19 ask for a 2xx response;
/// requiring 200 meets that and matches the Open MPIC contract. `truncated` is true when the
/// body was cut at the fetcher's cap, so a rejection can report that only a prefix was searched.
///
/// The body is decoded as UTF-8 for website-change, with invalid sequences replaced by U+FFFD.
/// A `charset` in `Content-Type` is not applied.
///
/// # Errors
///
/// Returns the [`Rejection`] that names the first unmet condition.
pub(crate) fn evaluate(
    expectation: &Expectation,
    status: StatusCode,
    body: &[u8],
    truncated: bool,
) -> Result<(), Rejection> {
    if status != StatusCode::OK {
        return Err(Rejection::Status { status });
    }

    match expectation {
        Expectation::ContainsValue {
            challenge_value,
            case,
            pattern,
        } => {
            let text = String::from_utf8_lossy(body);
            if !contains(&text, challenge_value, *case) {
                return Err(Rejection::ChallengeValueNotFound {
                    searched_bytes: body.len(),
                    truncated,
                });
            }
            match pattern {
                Some(pattern) if !pattern.is_match(&text) => Err(Rejection::PatternNotMatched {
                    pattern: pattern.as_str().to_owned(),
                    searched_bytes: body.len(),
                    truncated,
                }),
                _ => Ok(()),
            }
        }
        Expectation::KeyAuthorization(key_authorization) => {
            // RFC 8555 §8.3: "The server SHOULD ignore whitespace characters at the end of
            // the body." Leading whitespace is kept, so " token.thumbprint" fails.
            if body.trim_ascii_end() != key_authorization.as_bytes() {
                return Err(Rejection::KeyAuthorizationMismatch {
                    searched_bytes: body.len(),
                    truncated,
                });
            }
            Ok(())
        }
    }
}

fn contains(text: &str, value: &str, case: LetterCase) -> bool {
    match case {
        LetterCase::Exact => text.contains(value),
        LetterCase::Insensitive => text.to_lowercase().contains(&value.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;

    fn contains_value(value: &str, case: LetterCase, pattern: Option<&str>) -> Expectation {
        Expectation::ContainsValue {
            challenge_value: value.to_owned(),
            case,
            pattern: pattern.map(|text| Regex::new(text).expect("test pattern is valid")),
        }
    }

    /// One table row: an expectation, a response, and whether it must pass. A failing row
    /// names the rejection it must produce.
    struct Case {
        name: &'static str,
        expectation: Expectation,
        status: u16,
        body: &'static [u8],
        expected: Expected,
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Expected {
        Pass,
        Status,
        ValueNotFound,
        PatternNotMatched,
        KeyAuthorizationMismatch,
    }

    fn run(cases: Vec<Case>) {
        for case in cases {
            let status = StatusCode::from_u16(case.status).expect("test status is valid");
            let result = evaluate(&case.expectation, status, case.body, false);
            let got = match &result {
                Ok(()) => Expected::Pass,
                Err(Rejection::Status { .. }) => Expected::Status,
                Err(Rejection::ChallengeValueNotFound { .. }) => Expected::ValueNotFound,
                Err(Rejection::PatternNotMatched { .. }) => Expected::PatternNotMatched,
                Err(Rejection::KeyAuthorizationMismatch { .. }) => {
                    Expected::KeyAuthorizationMismatch
                }
                Err(other) => panic!("{}: unexpected rejection {other:?}", case.name),
            };
            assert_eq!(got, case.expected, "{}: got {result:?}", case.name);
        }
    }

    #[test]
    fn website_change_rules() {
        run(vec![
            Case {
                name: "value alone: pass",
                expectation: contains_value("token-123", LetterCase::Exact, None),
                status: 200,
                body: b"token-123",
                expected: Expected::Pass,
            },
            Case {
                name: "value inside a page: pass",
                expectation: contains_value("token-123", LetterCase::Exact, None),
                status: 200,
                body: b"<html><body>token-123</body></html>",
                expected: Expected::Pass,
            },
            Case {
                name: "value missing: fail",
                expectation: contains_value("token-123", LetterCase::Exact, None),
                status: 200,
                body: b"token-124",
                expected: Expected::ValueNotFound,
            },
            Case {
                name: "empty body: fail",
                expectation: contains_value("token-123", LetterCase::Exact, None),
                status: 200,
                body: b"",
                expected: Expected::ValueNotFound,
            },
            Case {
                name: "other case with exact case: fail",
                expectation: contains_value("Token-ABC", LetterCase::Exact, None),
                status: 200,
                body: b"token-abc",
                expected: Expected::ValueNotFound,
            },
            Case {
                name: "other case with case ignored: pass",
                expectation: contains_value("Token-ABC", LetterCase::Insensitive, None),
                status: 200,
                body: b"TOKEN-abc",
                expected: Expected::Pass,
            },
            Case {
                name: "non-ASCII letters with case ignored: pass",
                expectation: contains_value("ÄRGER", LetterCase::Insensitive, None),
                status: 200,
                body: "ärger".as_bytes(),
                expected: Expected::Pass,
            },
            Case {
                name: "value and matching pattern: pass",
                expectation: contains_value("abc", LetterCase::Exact, Some(r"^abc-\d+$")),
                status: 200,
                body: b"abc-42",
                expected: Expected::Pass,
            },
            Case {
                name: "value without matching pattern: fail",
                expectation: contains_value("abc", LetterCase::Exact, Some(r"^abc-\d+$")),
                status: 200,
                body: b"abc-x",
                expected: Expected::PatternNotMatched,
            },
            Case {
                name: "pattern matches but value missing: fail on the value",
                expectation: contains_value("zzz", LetterCase::Exact, Some("abc")),
                status: 200,
                body: b"abc",
                expected: Expected::ValueNotFound,
            },
            Case {
                name: "invalid UTF-8 around the value: pass",
                expectation: contains_value("token", LetterCase::Exact, None),
                status: 200,
                body: b"\xff\xfetoken\xff",
                expected: Expected::Pass,
            },
            Case {
                name: "status 404 with the value: fail",
                expectation: contains_value("token", LetterCase::Exact, None),
                status: 404,
                body: b"token",
                expected: Expected::Status,
            },
            Case {
                name: "status 204: fail",
                expectation: contains_value("token", LetterCase::Exact, None),
                status: 204,
                body: b"",
                expected: Expected::Status,
            },
            Case {
                name: "status 203 with the value: fail",
                expectation: contains_value("token", LetterCase::Exact, None),
                status: 203,
                body: b"token",
                expected: Expected::Status,
            },
        ]);
    }

    #[test]
    fn acme_http_01_rules() {
        let key_authorization = || Expectation::KeyAuthorization("tok.thumb".to_owned());
        run(vec![
            Case {
                name: "exact key authorization: pass",
                expectation: key_authorization(),
                status: 200,
                body: b"tok.thumb",
                expected: Expected::Pass,
            },
            Case {
                name: "trailing newline: pass",
                expectation: key_authorization(),
                status: 200,
                body: b"tok.thumb\n",
                expected: Expected::Pass,
            },
            Case {
                name: "trailing CRLF, spaces and tabs: pass",
                expectation: key_authorization(),
                status: 200,
                body: b"tok.thumb \t\r\n",
                expected: Expected::Pass,
            },
            Case {
                name: "leading whitespace: fail",
                expectation: key_authorization(),
                status: 200,
                body: b" tok.thumb",
                expected: Expected::KeyAuthorizationMismatch,
            },
            Case {
                name: "extra text: fail",
                expectation: key_authorization(),
                status: 200,
                body: b"tok.thumb.extra",
                expected: Expected::KeyAuthorizationMismatch,
            },
            Case {
                name: "prefix only: fail",
                expectation: key_authorization(),
                status: 200,
                body: b"tok.thu",
                expected: Expected::KeyAuthorizationMismatch,
            },
            Case {
                name: "other case: fail",
                expectation: key_authorization(),
                status: 200,
                body: b"TOK.THUMB",
                expected: Expected::KeyAuthorizationMismatch,
            },
            Case {
                name: "page containing it: fail",
                expectation: key_authorization(),
                status: 200,
                body: b"<p>tok.thumb</p>",
                expected: Expected::KeyAuthorizationMismatch,
            },
            Case {
                name: "status 500 with the key authorization: fail",
                expectation: key_authorization(),
                status: 500,
                body: b"tok.thumb",
                expected: Expected::Status,
            },
        ]);
    }

    #[test]
    fn rejection_reports_truncation() {
        let expectation = contains_value("missing", LetterCase::Exact, None);
        let error = evaluate(&expectation, StatusCode::OK, b"0123456789", true)
            .expect_err("the value is missing");
        assert_eq!(
            error.to_string(),
            "the response body does not contain the challenge value (only the first 10 bytes \
             were read)"
        );
    }
}
