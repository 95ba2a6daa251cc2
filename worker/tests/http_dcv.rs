//! HTTP-based DCV checks against the testkit challenge server and DNS authority, filed by the
//! rule each test checks: RFC 8555 §8.3 for acme-http-01 and BR §3.2.2.4.18 for
//! website-change.
//!
//! Loopback is the only reachable place, so the checks run with
//! `AddressPolicy::AllowNonPublic` unless a test proves that the guard refuses a target.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use mpic_shared::dcv::{AcmeHttp01Parameters, HttpHeaders, UrlScheme, WebsiteChangeParameters};
use mpic_shared::reply::{CheckDetails, CheckResponse, HttpDetails, RedirectHop};
use mpic_testkit::dns::{TestDns, Zone};
use mpic_testkit::http::{ChallengeServer, Reply, Routes};
use mpic_worker::checks::http::{HttpChecker, Verdict, error_type};
use mpic_worker::fetch::{AddressGuard, AddressPolicy, FetchSettings, Fetcher};
use mpic_worker::resolver::{NameServers, ResolverFactory, ResolverSettings};

/// The fetch budget of these tests: long enough for a loaded CI machine.
const FETCH_BUDGET: Duration = Duration::from_secs(10);

const TOKEN: &str = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
const KEY_AUTHORIZATION: &str =
    "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

/// RFC 8555 §8.3, HTTP challenge.
mod rfc8555_8_3 {
    use super::*;

    const CHALLENGE_PATH: &str =
        "/.well-known/acme-challenge/evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";

    #[tokio::test]
    async fn key_authorization_with_trailing_newline_passes() {
        let server = ChallengeServer::start(
            Routes::new().route(CHALLENGE_PATH, Reply::ok(format!("{KEY_AUTHORIZATION}\n"))),
        )
        .await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;

        let outcome = harness
            .checker
            .acme_http_01("challenge.http.test", &acme())
            .await;

        assert!(
            matches!(outcome.verdict, Verdict::Passed),
            "unexpected verdict {:?}",
            outcome.verdict
        );
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].path, CHALLENGE_PATH);
        assert_eq!(
            requests[0].host.as_deref(),
            Some(format!("challenge.http.test:{}", server.port()).as_str()),
            "the request names the target as host"
        );

        let reply = outcome.into_check_response();
        assert!(reply.check_completed);
        assert!(reply.check_passed);
        let details = http_details(reply);
        assert_eq!(
            details.response_url,
            Some(format!(
                "http://challenge.http.test:{}{CHALLENGE_PATH}",
                server.port()
            ))
        );
        assert_eq!(details.response_status_code, Some(200));
        assert_eq!(details.resolved_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(details.response_history, None);
    }

    #[tokio::test]
    async fn other_body_fails() {
        let server = ChallengeServer::start(
            Routes::new().route(CHALLENGE_PATH, Reply::ok(format!(" {KEY_AUTHORIZATION}"))),
        )
        .await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;

        let reply = harness
            .checker
            .acme_http_01("challenge.http.test", &acme())
            .await
            .into_check_response();

        assert!(
            reply.check_completed,
            "the server responded: the check decided"
        );
        assert!(!reply.check_passed);
        assert_eq!(first_error_type(&reply), error_type::CONTENT_MISMATCH);
    }

    #[tokio::test]
    async fn not_found_fails_with_status_error() {
        let server = ChallengeServer::start(Routes::new()).await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;

        let reply = harness
            .checker
            .acme_http_01("challenge.http.test", &acme())
            .await
            .into_check_response();

        assert!(reply.check_completed);
        assert!(!reply.check_passed);
        assert_eq!(first_error_type(&reply), "mpic_error:http");
        assert_eq!(http_details(reply).response_status_code, Some(404));
    }

    #[tokio::test]
    async fn allowed_redirect_followed() {
        let server =
            ChallengeServer::start(Routes::new().route("/elsewhere", Reply::ok(KEY_AUTHORIZATION)))
                .await;
        server.set_route(CHALLENGE_PATH, Reply::redirect(302, "/elsewhere"));
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;

        let reply = harness
            .checker
            .acme_http_01("challenge.http.test", &acme())
            .await
            .into_check_response();

        assert!(reply.check_passed, "unexpected reply {reply:?}");
        let details = http_details(reply);
        let challenge_url = format!(
            "http://challenge.http.test:{}{CHALLENGE_PATH}",
            server.port()
        );
        assert_eq!(
            details.response_history,
            Some(vec![RedirectHop {
                status_code: 302,
                url: challenge_url,
            }])
        );
        assert_eq!(
            details.response_url,
            Some(format!(
                "http://challenge.http.test:{}/elsewhere",
                server.port()
            ))
        );
    }

    #[tokio::test]
    async fn see_other_redirect_fails() {
        let server = ChallengeServer::start(
            Routes::new()
                .route(CHALLENGE_PATH, Reply::redirect(303, "/elsewhere"))
                .route("/elsewhere", Reply::ok(KEY_AUTHORIZATION)),
        )
        .await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;

        let reply = harness
            .checker
            .acme_http_01("challenge.http.test", &acme())
            .await
            .into_check_response();

        assert!(
            reply.check_completed,
            "the server responded: the check decided"
        );
        assert!(!reply.check_passed);
        assert_eq!(first_error_type(&reply), error_type::REDIRECT);
        assert_eq!(server.requests().len(), 1, "the 303 must not be followed");
    }

    #[tokio::test]
    async fn ip_address_target_passes() {
        let server = ChallengeServer::start(
            Routes::new().route(CHALLENGE_PATH, Reply::ok(KEY_AUTHORIZATION)),
        )
        .await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;

        let outcome = harness.checker.acme_http_01("127.0.0.1", &acme()).await;

        assert!(
            matches!(outcome.verdict, Verdict::Passed),
            "unexpected verdict {:?}",
            outcome.verdict
        );
        assert_eq!(
            server.requests()[0].host.as_deref(),
            Some(format!("127.0.0.1:{}", server.port()).as_str())
        );
    }

    #[tokio::test]
    async fn blocked_target_not_completed() {
        let server = ChallengeServer::start(
            Routes::new().route(CHALLENGE_PATH, Reply::ok(KEY_AUTHORIZATION)),
        )
        .await;
        let harness = Harness::start(AddressPolicy::PublicOnly, &server).await;

        let reply = harness
            .checker
            .acme_http_01("challenge.http.test", &acme())
            .await
            .into_check_response();

        assert!(!reply.check_completed);
        assert!(!reply.check_passed);
        assert_eq!(first_error_type(&reply), error_type::BLOCKED_ADDRESS);
        let message = &reply.errors.as_ref().expect("errors present")[0].error_message;
        for part in ["challenge.http.test", "127.0.0.1", "loopback"] {
            assert!(
                message.contains(part),
                "the message must name {part}: {message}"
            );
        }
        assert_eq!(server.connection_count(), 0, "no connection may be made");
    }

    #[tokio::test]
    async fn unknown_name_not_completed() {
        let server = ChallengeServer::start(Routes::new()).await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;

        let reply = harness
            .checker
            .acme_http_01("missing.http.test", &acme())
            .await
            .into_check_response();

        assert!(!reply.check_completed);
        assert_eq!(first_error_type(&reply), error_type::LOOKUP);
        assert_eq!(
            http_details(reply),
            HttpDetails::empty(mpic_shared::dcv::ValidationMethod::AcmeHttp01)
        );
    }

    #[tokio::test]
    async fn wildcard_target_rejected() {
        let server = ChallengeServer::start(Routes::new()).await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;

        let reply = harness
            .checker
            .acme_http_01("*.http.test", &acme())
            .await
            .into_check_response();

        assert!(!reply.check_completed);
        assert_eq!(first_error_type(&reply), error_type::WILDCARD_TARGET);
        assert_eq!(server.connection_count(), 0);
    }

    fn acme() -> AcmeHttp01Parameters {
        AcmeHttp01Parameters {
            token: TOKEN.to_owned(),
            key_authorization: KEY_AUTHORIZATION.to_owned(),
            http_headers: None,
        }
    }
}

/// BR §3.2.2.4.18, Agreed-Upon Change to Website v2.
mod br_3_2_2_4_18 {
    use super::*;

    const FILE_PATH: &str = "/.well-known/pki-validation/validation-doc.txt";

    #[tokio::test]
    async fn value_in_page_passes() {
        let page = format!(
            "<html><body>{}test-validation</body></html>",
            "x".repeat(120)
        );
        let server =
            ChallengeServer::start(Routes::new().route(FILE_PATH, Reply::ok(page.clone()))).await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;

        let reply = harness
            .checker
            .website_change("challenge.http.test", &website_change("test-validation"))
            .await
            .into_check_response();

        assert!(reply.check_passed, "unexpected reply {reply:?}");
        let details = http_details(reply);
        let page_start = BASE64
            .decode(details.response_page.expect("page present"))
            .expect("page is base64");
        assert_eq!(
            page_start,
            page.as_bytes()[..100],
            "the first 100 bytes of the page"
        );
    }

    #[tokio::test]
    async fn letter_case_rules() {
        let server =
            ChallengeServer::start(Routes::new().route(FILE_PATH, Reply::ok("TEST-Validation")))
                .await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;
        let mut parameters = website_change("test-validation");

        let exact = harness
            .checker
            .website_change("challenge.http.test", &parameters)
            .await;
        assert!(
            matches!(exact.verdict, Verdict::Failed(_)),
            "exact case: unexpected verdict {:?}",
            exact.verdict
        );

        parameters.require_exact_case = false;
        let ignored = harness
            .checker
            .website_change("challenge.http.test", &parameters)
            .await;
        assert!(
            matches!(ignored.verdict, Verdict::Passed),
            "case ignored: unexpected verdict {:?}",
            ignored.verdict
        );
    }

    #[tokio::test]
    async fn pattern_must_match() {
        let server = ChallengeServer::start(
            Routes::new().route(FILE_PATH, Reply::ok("code=test-validation;v=7")),
        )
        .await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;
        let mut parameters = website_change("test-validation");

        parameters.match_regex = Some(r";v=\d+$".to_owned());
        let matching = harness
            .checker
            .website_change("challenge.http.test", &parameters)
            .await;
        assert!(
            matches!(matching.verdict, Verdict::Passed),
            "matching pattern: unexpected verdict {:?}",
            matching.verdict
        );

        parameters.match_regex = Some(r";v=[a-z]+$".to_owned());
        let reply = harness
            .checker
            .website_change("challenge.http.test", &parameters)
            .await
            .into_check_response();
        assert!(reply.check_completed);
        assert!(!reply.check_passed);
        assert_eq!(first_error_type(&reply), error_type::CONTENT_MISMATCH);
    }

    #[tokio::test]
    async fn request_headers_sent() {
        let server =
            ChallengeServer::start(Routes::new().route(FILE_PATH, Reply::ok("test-validation")))
                .await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;
        let mut parameters = website_change("test-validation");
        parameters.http_headers = Some(HttpHeaders::from([(
            "X-Validation-Run".to_owned(),
            "42".to_owned(),
        )]));

        let outcome = harness
            .checker
            .website_change("challenge.http.test", &parameters)
            .await;

        assert!(
            matches!(outcome.verdict, Verdict::Passed),
            "unexpected verdict {:?}",
            outcome.verdict
        );
        let requests = server.requests();
        assert_eq!(
            requests[0]
                .headers
                .get("x-validation-run")
                .map(|value| value.as_bytes()),
            Some(&b"42"[..])
        );
    }

    #[tokio::test]
    async fn host_header_override_rejected() {
        let server =
            ChallengeServer::start(Routes::new().route(FILE_PATH, Reply::ok("test-validation")))
                .await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;
        let mut parameters = website_change("test-validation");
        parameters.http_headers = Some(HttpHeaders::from([(
            "Host".to_owned(),
            "other-site.example".to_owned(),
        )]));

        let reply = harness
            .checker
            .website_change("challenge.http.test", &parameters)
            .await
            .into_check_response();

        assert!(!reply.check_completed);
        assert_eq!(first_error_type(&reply), error_type::INVALID_REQUEST);
        assert_eq!(server.connection_count(), 0);
    }

    #[tokio::test]
    async fn token_path_outside_directory_rejected() {
        let server =
            ChallengeServer::start(Routes::new().route("/secret", Reply::ok("test-validation")))
                .await;
        let harness = Harness::start(AddressPolicy::AllowNonPublic, &server).await;
        let mut parameters = website_change("test-validation");
        parameters.http_token_path = "../../secret".to_owned();

        let reply = harness
            .checker
            .website_change("challenge.http.test", &parameters)
            .await
            .into_check_response();

        assert!(!reply.check_completed);
        assert_eq!(first_error_type(&reply), error_type::INVALID_REQUEST);
        assert_eq!(server.connection_count(), 0);
    }

    fn website_change(challenge_value: &str) -> WebsiteChangeParameters {
        WebsiteChangeParameters {
            challenge_value: challenge_value.to_owned(),
            http_token_path: "validation-doc.txt".to_owned(),
            url_scheme: UrlScheme::Http,
            http_headers: None,
            match_regex: None,
            require_exact_case: true,
        }
    }
}

/// A checker whose resolver queries the DNS authority for `http.test`, where
/// `challenge.http.test` is 127.0.0.1.
struct Harness {
    checker: HttpChecker,
    /// Keeps the DNS server running for the checker's lookups.
    _dns: TestDns,
}

impl Harness {
    async fn start(policy: AddressPolicy, server: &ChallengeServer) -> Harness {
        let dns = TestDns::start([Zone::new("http.test.", "challenge  A  127.0.0.1")]).await;
        let resolvers = resolver_factory(dns.addr());

        let mut settings = FetchSettings::new(FETCH_BUDGET);
        settings.http_port = server.port();
        let fetcher =
            Fetcher::new(AddressGuard::new(policy), settings).expect("fetcher setup must succeed");

        Harness {
            checker: HttpChecker::new(resolvers, fetcher),
            _dns: dns,
        }
    }
}

fn resolver_factory(dns: SocketAddr) -> ResolverFactory {
    let settings = ResolverSettings {
        name_servers: NameServers::Configured(vec![dns]),
        ..ResolverSettings::default()
    };
    ResolverFactory::new(&settings).expect("resolver settings are valid")
}

fn http_details(reply: CheckResponse) -> HttpDetails {
    match reply.details {
        CheckDetails::Http(details) => details,
        other => panic!("expected HTTP details, got {other:?}"),
    }
}

fn first_error_type(reply: &CheckResponse) -> &str {
    let errors = reply
        .errors
        .as_ref()
        .unwrap_or_else(|| panic!("expected an error in {reply:?}"));
    &errors[0].error_type
}
