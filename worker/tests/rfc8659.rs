//! CAA conformance tests (RFC 8659, with the RFC 8657 parameters and the RFC 9495 `issuemail`
//! property), run against a real authoritative DNS server on loopback.
//!
//! Each test starts its own `TestDns` with the zones below and points a `CaaChecker` at it.
//! The zone `test.` plays the TLD, so every climb ends at a name the server is authoritative for.
//! The calling CA is `ca.example`.

use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use mpic_shared::reply::{CaaDetails, CheckDetails, CheckResponse, error_type};
use mpic_shared::request::{CaaCheckParameters, CertificateType};
use mpic_testkit::dns::{Behavior, TestDns, Transport, Zone, caa_record};
use mpic_testkit::silent::SilentServer;
use mpic_worker::checks::caa::{CaaChecker, CaaOutcome, LookupError};
use mpic_worker::resolver::{NameServers, ResolverFactory, ResolverSettings};

const CA: &str = "ca.example";

/// Builds the zone data every test starts from.
fn zones() -> Vec<Zone> {
    vec![
        Zone::new("test.", ""),
        Zone::new(
            "example.test.",
            r#"
            @                  CAA 0 issue "ca.example"
            deny               CAA 0 issue "other-ca.example"
            www.deny           A   127.0.0.1
            empty              CAA 0 issue ";"
            empty-value        CAA 0 issue ""
            malformed          CAA 0 issue "%%%%%"
            malformed-and-ours CAA 0 issue "%%%%%"
                               CAA 0 issue "ca.example"
            case               CAA 0 ISSUE "CA.Example"
            critical           CAA 128 tbs "unknown critical property"
                               CAA 0 issue "ca.example"
            critical-known     CAA 128 issue "ca.example"
            bit1               CAA 64 tbs "flag 64"
                               CAA 0 issue "ca.example"
            reserved-bit       CAA 1 tbs "flag 1"
                               CAA 0 issue "ca.example"
            noncritical        CAA 0 tbs "unknown property"
                               CAA 0 issue "ca.example"
            iodef-only         CAA 0 iodef "mailto:security@example.test"
            wild               CAA 0 issue "ca.example"
                               CAA 0 issuewild "other-ca.example"
            wild-ours          CAA 0 issue ";"
                               CAA 0 issuewild "ca.example"
            wild-issue         CAA 0 issue "ca.example"
            mail               CAA 0 issuemail "ca.example"
                               CAA 0 issue ";"
            mail-other         CAA 0 issuemail "other-ca.example"
                               CAA 0 issue "ca.example"
            account            CAA 0 issue "ca.example; accounturi=https://ca.example/acct/1"
            methods            CAA 0 issue "ca.example; validationmethods=dns-01,tls-alpn-01"
            alias              CNAME alias2
            alias2             CNAME target.other.test.
            alias-none         CNAME nothing.other.test.
            xn--bcher-kva      CAA 0 issue "other-ca.example"
            "#,
        )
        .with_record(caa_record(
            "bad-tag.example.test.",
            300,
            0,
            "issue-x",
            b"ca.example",
        ))
        .with_record(caa_record(
            "binary.example.test.",
            300,
            0,
            "issue",
            b"ca.example\xff",
        )),
        Zone::new(
            "other.test.",
            r#"
            target             CAA 0 issue "other-ca.example"
            a.b                A   127.0.0.1
            "#,
        ),
    ]
}

fn settings(name_server: std::net::SocketAddr) -> ResolverSettings {
    ResolverSettings {
        name_servers: NameServers::Configured(vec![name_server]),
        query_timeout: Duration::from_secs(2),
        resolution_lifetime: Duration::from_secs(4),
        attempts: 1,
    }
}

fn checker_for(settings: &ResolverSettings) -> CaaChecker {
    let factory = ResolverFactory::new(settings).expect("resolver settings are valid");
    CaaChecker::new(factory, [CA])
}

async fn start() -> (TestDns, CaaChecker) {
    let dns = TestDns::start(zones()).await;
    let checker = checker_for(&settings(dns.addr()));
    (dns, checker)
}

fn tls() -> CaaCheckParameters {
    CaaCheckParameters::default()
}

/// The reply fields a case expects.
struct Expected {
    completed: bool,
    passed: bool,
    present: Option<bool>,
    found_at: Option<&'static str>,
    records: Option<Vec<&'static str>>,
}

fn passed_at(found_at: &'static str, records: Vec<&'static str>) -> Expected {
    Expected {
        completed: true,
        passed: true,
        present: Some(true),
        found_at: Some(found_at),
        records: Some(records),
    }
}

fn failed_at(found_at: &'static str, records: Vec<&'static str>) -> Expected {
    Expected {
        passed: false,
        ..passed_at(found_at, records)
    }
}

fn passed_without_records() -> Expected {
    Expected {
        completed: true,
        passed: true,
        present: Some(false),
        found_at: None,
        records: None,
    }
}

fn not_completed() -> Expected {
    Expected {
        completed: false,
        passed: false,
        present: None,
        found_at: None,
        records: None,
    }
}

fn details(case: &str, response: &CheckResponse) -> CaaDetails {
    match &response.details {
        CheckDetails::Caa(details) => details.clone(),
        other => panic!("case {case:?}: details are not CAA details: {other:?}"),
    }
}

fn assert_reply(case: &str, response: &CheckResponse, expected: &Expected) {
    let details = details(case, response);
    assert_eq!(
        response.check_completed, expected.completed,
        "case {case:?}: check_completed, errors {:?}",
        response.errors
    );
    assert_eq!(
        response.check_passed, expected.passed,
        "case {case:?}: check_passed, details {details:?}"
    );
    assert_eq!(
        details.caa_record_present, expected.present,
        "case {case:?}: caa_record_present"
    );
    assert_eq!(
        details.found_at.as_deref(),
        expected.found_at,
        "case {case:?}: found_at"
    );
    let records = expected
        .records
        .as_ref()
        .map(|records| records.iter().map(|r| r.to_string()).collect::<Vec<_>>());
    assert_eq!(details.records_seen, records, "case {case:?}: records_seen");
    if !expected.completed {
        let errors = response.errors.as_deref().unwrap_or_default();
        assert!(
            !errors.is_empty(),
            "case {case:?}: a check that is not completed must say why"
        );
    }
}

async fn check(
    checker: &CaaChecker,
    target: &str,
    parameters: &CaaCheckParameters,
) -> CheckResponse {
    checker
        .check(target, parameters)
        .await
        .into_check_response()
}

/// RFC 8659 §3: the relevant RRset is found by climbing from the name towards the TLD.
mod section_3_relevant_rrset {
    use super::*;

    #[tokio::test]
    async fn climbing_finds_the_closest_rrset() {
        let (dns, checker) = start().await;
        let cases = [
            (
                "RRset at the name itself: valid",
                "example.test",
                passed_at("example.test", vec![r#"0 issue "ca.example""#]),
            ),
            (
                "RRset on the parent: valid",
                "sub.example.test",
                passed_at("example.test", vec![r#"0 issue "ca.example""#]),
            ),
            (
                "RRset two levels up, name does not exist: valid",
                "a.b.c.example.test",
                passed_at("example.test", vec![r#"0 issue "ca.example""#]),
            ),
            (
                "closer RRset names another CA: invalid",
                "www.deny.example.test",
                failed_at("deny.example.test", vec![r#"0 issue "other-ca.example""#]),
            ),
            (
                "no RRset up to the TLD: valid, no record",
                "a.b.other.test",
                passed_without_records(),
            ),
            (
                "trailing dot and upper case in the target: valid",
                "SUB.Example.Test.",
                passed_at("example.test", vec![r#"0 issue "ca.example""#]),
            ),
        ];
        for (case, target, expected) in cases {
            let response = check(&checker, target, &tls()).await;
            assert_reply(case, &response, &expected);
        }
        drop(dns);
    }

    #[tokio::test]
    async fn climb_stops_before_the_root() {
        let (dns, checker) = start().await;
        let response = check(&checker, "a.b.other.test", &tls()).await;
        assert_reply("no RRset anywhere", &response, &passed_without_records());

        for name in ["a.b.other.test.", "b.other.test.", "other.test.", "test."] {
            assert_eq!(
                dns.query_count_for(name, RecordType::CAA),
                1,
                "{name} must be queried once for CAA"
            );
        }
        let root_queries = dns
            .queries()
            .iter()
            .filter(|query| query.name.is_root())
            .count();
        assert_eq!(root_queries, 0, "the root must never be queried");
    }

    #[tokio::test]
    async fn rrset_at_the_tld_is_relevant() {
        let (dns, checker) = start().await;
        dns.add_records_from_text("test.", r#"@ CAA 0 issue "other-ca.example""#)
            .await;
        let response = check(&checker, "a.b.other.test", &tls()).await;
        assert_reply(
            "RRset at the TLD names another CA: invalid",
            &response,
            &failed_at("test", vec![r#"0 issue "other-ca.example""#]),
        );
    }

    #[tokio::test]
    async fn cname_target_rrset_counts_for_the_alias() {
        let (_dns, checker) = start().await;
        let cases = [
            (
                "two-hop CNAME to a name that names another CA: invalid",
                "alias.example.test",
                failed_at("alias.example.test", vec![r#"0 issue "other-ca.example""#]),
            ),
            (
                "CNAME to a name without CAA: climb from the alias's parent, valid",
                "alias-none.example.test",
                passed_at("example.test", vec![r#"0 issue "ca.example""#]),
            ),
        ];
        for (case, target, expected) in cases {
            let response = check(&checker, target, &tls()).await;
            assert_reply(case, &response, &expected);
        }
    }

    #[tokio::test]
    async fn servfail_below_rrset_not_completed() {
        let (dns, checker) = start().await;
        dns.set_behavior(
            "broken.example.test.",
            Some(RecordType::CAA),
            Behavior::ServFail,
        );
        dns.set_behavior(
            "mid.example.test.",
            Some(RecordType::CAA),
            Behavior::ServFail,
        );
        dns.set_behavior("refused.example.test.", None, Behavior::Refused);

        let cases = [
            (
                "SERVFAIL at the name, parent permits: not completed",
                "broken.example.test",
            ),
            (
                "SERVFAIL at a parent below the RRset: not completed",
                "x.mid.example.test",
            ),
            ("REFUSED at the name: not completed", "refused.example.test"),
        ];
        for (case, target) in cases {
            let response = check(&checker, target, &tls()).await;
            assert_reply(case, &response, &not_completed());
            let errors = response.errors.unwrap_or_default();
            assert_eq!(errors.len(), 1, "case {case:?}: one error");
            assert_eq!(
                errors[0].error_type,
                error_type::CAA_LOOKUP,
                "case {case:?}: error type"
            );
        }

        let outcome = checker.check("x.mid.example.test", &tls()).await;
        let CaaOutcome::LookupFailed(failure) = outcome else {
            panic!("SERVFAIL at a parent: expected a lookup failure, got {outcome:?}");
        };
        assert_eq!(
            failure.name, "mid.example.test",
            "the failing name is reported"
        );
        assert_eq!(
            failure.error,
            LookupError::ResponseCode {
                code: "SERVFAIL".to_owned()
            },
            "the response code is reported"
        );
    }

    #[tokio::test]
    async fn failures_above_the_rrset_do_not_matter() {
        let (dns, checker) = start().await;
        dns.set_behavior("test.", None, Behavior::ServFail);
        dns.set_behavior("example.test.", Some(RecordType::CAA), Behavior::Drop);
        let response = check(&checker, "www.deny.example.test", &tls()).await;
        assert_reply(
            "SERVFAIL at the TLD, no answer from a parent above the RRset: decided",
            &response,
            &failed_at("deny.example.test", vec![r#"0 issue "other-ca.example""#]),
        );
    }

    #[tokio::test]
    async fn decision_skips_lookups_above_rrset() {
        let dns = TestDns::start(zones()).await;
        dns.set_behavior("example.test.", Some(RecordType::CAA), Behavior::Drop);
        dns.set_behavior("test.", Some(RecordType::CAA), Behavior::Drop);
        let checker = checker_for(&ResolverSettings {
            query_timeout: Duration::from_secs(3),
            resolution_lifetime: Duration::from_secs(10),
            ..settings(dns.addr())
        });

        let started = Instant::now();
        let response = check(&checker, "deny.example.test", &tls()).await;
        let elapsed = started.elapsed();

        assert_reply(
            "RRset at the name while parents never answer: decided",
            &response,
            &failed_at("deny.example.test", vec![r#"0 issue "other-ca.example""#]),
        );
        assert!(
            elapsed < Duration::from_secs(2),
            "the check waited {elapsed:?} for lookups it did not need"
        );
    }

    #[tokio::test]
    async fn silent_server_hits_query_timeout() {
        let silent = SilentServer::start().await;
        let checker = checker_for(&ResolverSettings {
            query_timeout: Duration::from_millis(300),
            resolution_lifetime: Duration::from_secs(10),
            attempts: 1,
            ..settings(silent.addr())
        });

        let started = Instant::now();
        let outcome = checker.check("www.example.test", &tls()).await;
        let elapsed = started.elapsed();

        let CaaOutcome::LookupFailed(failure) = &outcome else {
            panic!("silent server: expected a lookup failure, got {outcome:?}");
        };
        assert_eq!(
            failure.name, "www.example.test",
            "the target name failed first"
        );
        assert_eq!(
            failure.error,
            LookupError::TimedOut,
            "a timeout is reported"
        );
        assert!(
            elapsed < Duration::from_secs(3),
            "two tries of 300 ms took {elapsed:?}"
        );
        assert!(
            silent.datagram_count() > 0,
            "the resolver reached the server"
        );
        assert_reply(
            "silent server: not completed",
            &outcome.into_check_response(),
            &not_completed(),
        );
    }

    #[tokio::test]
    async fn silent_server_hits_resolution_lifetime() {
        let silent = SilentServer::start().await;
        let lifetime = Duration::from_millis(500);
        let checker = checker_for(&ResolverSettings {
            query_timeout: Duration::from_secs(2),
            resolution_lifetime: lifetime,
            attempts: 2,
            ..settings(silent.addr())
        });

        let started = Instant::now();
        let outcome = checker.check("www.example.test", &tls()).await;
        let elapsed = started.elapsed();

        let CaaOutcome::LookupFailed(failure) = &outcome else {
            panic!("silent server: expected a lookup failure, got {outcome:?}");
        };
        assert_eq!(
            failure.error,
            LookupError::LifetimeExceeded { lifetime },
            "the lifetime is reported"
        );
        assert!(
            elapsed < Duration::from_millis(1500),
            "a 500 ms lifetime took {elapsed:?}"
        );
    }

    #[tokio::test]
    async fn allowed_failure_counts_as_empty() {
        let (dns, checker) = start().await;
        dns.set_behavior(
            "flaky.example.test.",
            Some(RecordType::CAA),
            Behavior::ServFail,
        );
        dns.set_behavior(
            "flaky.deny.example.test.",
            Some(RecordType::CAA),
            Behavior::ServFail,
        );
        let allow = CaaCheckParameters {
            allow_lookup_failure: true,
            ..tls()
        };

        let cases = [
            (
                "failed name, parent permits: valid",
                "flaky.example.test",
                &allow,
                passed_at("example.test", vec![r#"0 issue "ca.example""#]),
            ),
            (
                "failed name, parent forbids: invalid",
                "flaky.deny.example.test",
                &allow,
                failed_at("deny.example.test", vec![r#"0 issue "other-ca.example""#]),
            ),
            (
                "same failure without the flag: not completed",
                "flaky.example.test",
                &tls(),
                not_completed(),
            ),
        ];
        for (case, target, parameters, expected) in cases {
            let response = check(&checker, target, parameters).await;
            assert_reply(case, &response, &expected);
            let errors = response.errors.unwrap_or_default();
            assert_eq!(errors.len(), 1, "case {case:?}: the failure is listed");
            assert_eq!(
                errors[0].error_type,
                error_type::CAA_LOOKUP,
                "case {case:?}: error type"
            );
        }
    }

    #[tokio::test]
    async fn allowed_failures_everywhere_permit() {
        let silent = SilentServer::start().await;
        let checker = checker_for(&ResolverSettings {
            query_timeout: Duration::from_millis(200),
            resolution_lifetime: Duration::from_secs(5),
            attempts: 1,
            ..settings(silent.addr())
        });
        let allow = CaaCheckParameters {
            allow_lookup_failure: true,
            ..tls()
        };
        let response = check(&checker, "www.example.test", &allow).await;
        assert_reply(
            "every lookup timed out with allow_lookup_failure: valid, no record",
            &response,
            &passed_without_records(),
        );
        let errors = response.errors.unwrap_or_default();
        assert_eq!(errors.len(), 3, "one error per failed name: {errors:?}");
    }

    #[tokio::test]
    async fn new_record_seen_by_next_check() {
        let (dns, checker) = start().await;
        let before = check(&checker, "fresh.example.test", &tls()).await;
        assert_reply(
            "before the change: parent permits",
            &before,
            &passed_at("example.test", vec![r#"0 issue "ca.example""#]),
        );

        dns.add_records_from_text("example.test.", r#"fresh CAA 0 issue ";""#)
            .await;
        let after = check(&checker, "fresh.example.test", &tls()).await;
        assert_reply(
            "after the change: the new empty issuer forbids",
            &after,
            &failed_at("fresh.example.test", vec![r#"0 issue ";""#]),
        );
    }

    #[tokio::test]
    async fn large_rrset_is_fetched_over_tcp() {
        let mut text = String::from("big CAA 0 issue \"ca.example\"\n");
        for index in 0..999 {
            text.push_str(&format!("big CAA 0 issue \"ca{index:04}.example\"\n"));
        }
        let mut zones = zones();
        zones.push(Zone::new("large.test.", &text));
        let dns = TestDns::start(zones).await;
        let checker = checker_for(&settings(dns.addr()));

        let response = check(&checker, "big.large.test", &tls()).await;
        let details = details("1,000-record RRset", &response);
        assert!(response.check_completed, "1,000-record RRset: completed");
        assert!(
            response.check_passed,
            "1,000-record RRset: ca.example is listed"
        );
        assert_eq!(
            details.records_seen.map(|records| records.len()),
            Some(1000),
            "1,000-record RRset: every record is seen"
        );
        let transports: Vec<Transport> = dns
            .queries()
            .iter()
            .filter(|query| query.name.to_ascii() == "big.large.test.")
            .map(|query| query.transport)
            .collect();
        assert!(
            transports.contains(&Transport::Udp) && transports.contains(&Transport::Tcp),
            "1,000-record RRset: truncated UDP answer retried over TCP, got {transports:?}"
        );
    }

    #[tokio::test]
    async fn ip_targets_send_no_query() {
        let (dns, checker) = start().await;
        for target in ["127.0.0.1", "2001:db8::1", "[2001:db8::2]"] {
            let response = check(&checker, target, &tls()).await;
            assert_reply(target, &response, &passed_without_records());
            assert_eq!(response.errors, None, "{target}: no error");
        }
        assert_eq!(dns.queries(), Vec::new(), "no DNS query for IP targets");
    }

    #[tokio::test]
    async fn idn_target_is_queried_as_a_labels() {
        let (dns, checker) = start().await;
        let response = check(&checker, "Bücher.example.test", &tls()).await;
        assert_reply(
            "U-label target maps to its A-label RRset: invalid",
            &response,
            &failed_at(
                "xn--bcher-kva.example.test",
                vec![r#"0 issue "other-ca.example""#],
            ),
        );
        assert_eq!(
            dns.query_count_for("xn--bcher-kva.example.test.", RecordType::CAA),
            1,
            "the A-label name is queried"
        );
    }

    #[tokio::test]
    async fn invalid_target_sends_no_query() {
        let (dns, checker) = start().await;
        let response = check(&checker, "a.*.example.test", &tls()).await;
        assert_reply("misplaced wildcard", &response, &not_completed());
        assert_eq!(
            response.errors.unwrap_or_default()[0].error_type,
            error_type::INVALID_REQUEST,
            "misplaced wildcard: error type"
        );
        assert_eq!(
            dns.queries(),
            Vec::new(),
            "no DNS query for an invalid target"
        );
    }
}

/// RFC 8659 §4.1: flags, tags and the presentation format.
mod section_4_1_syntax {
    use super::*;

    #[tokio::test]
    async fn flags_and_tags() {
        let (_dns, checker) = start().await;
        let cases = [
            (
                "unknown tag with the critical flag 128: invalid",
                "critical.example.test",
                failed_at(
                    "critical.example.test",
                    vec![
                        r#"128 tbs "unknown critical property""#,
                        r#"0 issue "ca.example""#,
                    ],
                ),
            ),
            (
                "unknown tag with flag 64: invalid",
                "bit1.example.test",
                failed_at(
                    "bit1.example.test",
                    vec![r#"64 tbs "flag 64""#, r#"0 issue "ca.example""#],
                ),
            ),
            (
                "unknown tag with reserved flag 1: valid",
                "reserved-bit.example.test",
                passed_at(
                    "reserved-bit.example.test",
                    vec![r#"1 tbs "flag 1""#, r#"0 issue "ca.example""#],
                ),
            ),
            (
                "unknown tag without flags: valid",
                "noncritical.example.test",
                passed_at(
                    "noncritical.example.test",
                    vec![r#"0 tbs "unknown property""#, r#"0 issue "ca.example""#],
                ),
            ),
            (
                "known tag with the critical flag: valid",
                "critical-known.example.test",
                passed_at(
                    "critical-known.example.test",
                    vec![r#"128 issue "ca.example""#],
                ),
            ),
            (
                "tag and issuer in other case: valid, case kept in records_seen",
                "case.example.test",
                passed_at("case.example.test", vec![r#"0 ISSUE "CA.Example""#]),
            ),
            (
                "value that is not UTF-8 is escaped and permits no one: invalid",
                "binary.example.test",
                failed_at("binary.example.test", vec![r#"0 issue "ca.example\255""#]),
            ),
        ];
        for (case, target, expected) in cases {
            let response = check(&checker, target, &tls()).await;
            let mut records = details(case, &response).records_seen.unwrap_or_default();
            records.sort();
            let mut expected_records = expected.records.clone().unwrap_or_default();
            expected_records.sort();
            assert_eq!(
                records, expected_records,
                "case {case:?}: records_seen as a set"
            );
            assert_eq!(
                response.check_completed, expected.completed,
                "case {case:?}"
            );
            assert_eq!(response.check_passed, expected.passed, "case {case:?}");
            assert_eq!(
                details(case, &response).found_at.as_deref(),
                expected.found_at,
                "case {case:?}: found_at"
            );
        }
    }

    #[tokio::test]
    async fn tag_hickory_cannot_decode_fails_closed() {
        // hickory 0.26 rejects a tag with a hyphen (RFC 8659 §4.1 forbids it, too), and with it
        // the whole DNS message. The check must then be not completed, never passed.
        let (_dns, checker) = start().await;
        let response = check(&checker, "bad-tag.example.test", &tls()).await;
        assert_reply("tag with a hyphen", &response, &not_completed());
    }
}

/// RFC 8659 §4.2: the `issue` property, with the RFC 8657 parameters.
mod section_4_2_issue {
    use super::*;

    #[tokio::test]
    async fn issue_values() {
        let (_dns, checker) = start().await;
        let cases = [
            (
                "empty issuer \";\": invalid",
                "empty.example.test",
                failed_at("empty.example.test", vec![r#"0 issue ";""#]),
            ),
            (
                "empty value: invalid",
                "empty-value.example.test",
                failed_at("empty-value.example.test", vec![r#"0 issue """#]),
            ),
            (
                "malformed value: invalid",
                "malformed.example.test",
                failed_at("malformed.example.test", vec![r#"0 issue "%%%%%""#]),
            ),
            (
                "only iodef: valid",
                "iodef-only.example.test",
                passed_at(
                    "iodef-only.example.test",
                    vec![r#"0 iodef "mailto:security@example.test""#],
                ),
            ),
        ];
        for (case, target, expected) in cases {
            let response = check(&checker, target, &tls()).await;
            assert_reply(case, &response, &expected);
        }

        let response = check(&checker, "malformed-and-ours.example.test", &tls()).await;
        assert!(
            response.check_passed,
            "malformed record next to ours: valid (authorizations are additive)"
        );
    }

    #[tokio::test]
    async fn caa_domains_from_the_request_replace_the_defaults() {
        let (_dns, checker) = start().await;
        let other = CaaCheckParameters {
            caa_domains: Some(vec!["Other-CA.Example.".to_owned()]),
            ..tls()
        };
        let cases = [
            (
                "request names the other CA: valid",
                "deny.example.test",
                true,
            ),
            (
                "request names the other CA only: invalid",
                "example.test",
                false,
            ),
        ];
        for (case, target, passed) in cases {
            let response = check(&checker, target, &other).await;
            assert!(response.check_completed, "case {case:?}: completed");
            assert_eq!(response.check_passed, passed, "case {case:?}");
        }
    }

    #[tokio::test]
    async fn rfc8657_parameters() {
        let (_dns, checker) = start().await;
        let with =
            |account_uri: Option<&str>, validation_method: Option<&str>| CaaCheckParameters {
                account_uri: account_uri.map(str::to_owned),
                validation_method: validation_method.map(str::to_owned),
                ..tls()
            };
        let cases = [
            (
                "accounturi matches: valid",
                "account.example.test",
                with(Some("https://ca.example/acct/1"), None),
                true,
            ),
            (
                "accounturi mismatch: invalid",
                "account.example.test",
                with(Some("https://ca.example/acct/2"), None),
                false,
            ),
            (
                "accounturi absent from the request: invalid",
                "account.example.test",
                with(None, Some("acme-dns-01")),
                false,
            ),
            (
                "validationmethods lists the method: valid",
                "methods.example.test",
                with(None, Some("acme-dns-01")),
                true,
            ),
            (
                "validationmethods lists tls-alpn-01: valid",
                "methods.example.test",
                with(None, Some("acme-tls-alpn-01")),
                true,
            ),
            (
                "validationmethods mismatch: invalid",
                "methods.example.test",
                with(None, Some("acme-http-01")),
                false,
            ),
            (
                "validationmethods absent from the request: invalid",
                "methods.example.test",
                with(Some("https://ca.example/acct/1"), None),
                false,
            ),
        ];
        for (case, target, parameters, passed) in cases {
            let response = check(&checker, target, &parameters).await;
            assert!(response.check_completed, "case {case:?}: completed");
            assert_eq!(response.check_passed, passed, "case {case:?}");
        }
    }
}

/// RFC 8659 §4.3: the `issuewild` property for wildcard names.
mod section_4_3_issuewild {
    use super::*;

    #[tokio::test]
    async fn wildcards() {
        let (dns, checker) = start().await;
        let cases = [
            (
                "issuewild names another CA: invalid",
                "*.wild.example.test",
                false,
            ),
            (
                "plain name ignores issuewild: valid",
                "wild.example.test",
                true,
            ),
            (
                "issuewild names us, issue forbids: valid",
                "*.wild-ours.example.test",
                true,
            ),
            (
                "no issuewild, issue names us: valid",
                "*.wild-issue.example.test",
                true,
            ),
            (
                "no issuewild, issue forbids: invalid",
                "*.empty.example.test",
                false,
            ),
            (
                "wildcard climbs like its base name: valid",
                "*.sub.example.test",
                true,
            ),
        ];
        for (case, target, passed) in cases {
            let response = check(&checker, target, &tls()).await;
            assert!(response.check_completed, "case {case:?}: completed");
            assert_eq!(response.check_passed, passed, "case {case:?}");
        }

        let wildcard_queries = dns
            .queries()
            .iter()
            .filter(|query| query.name.to_ascii().starts_with('*'))
            .count();
        assert_eq!(wildcard_queries, 0, "the \"*\" label is never queried");
        assert_eq!(
            dns.query_count_for("wild.example.test.", RecordType::CAA),
            2,
            "the wildcard's base name is queried"
        );
    }
}

/// RFC 9495: the `issuemail` property governs S/MIME certificates only.
mod rfc9495_issuemail {
    use super::*;

    #[tokio::test]
    async fn issuemail() {
        let (_dns, checker) = start().await;
        let smime = CaaCheckParameters {
            certificate_type: CertificateType::SMime,
            ..tls()
        };
        let cases = [
            (
                "S/MIME, issuemail names us: valid",
                "mail.example.test",
                &smime,
                true,
            ),
            (
                "S/MIME, issuemail names another CA: invalid",
                "mail-other.example.test",
                &smime,
                false,
            ),
            (
                "S/MIME ignores issue: valid",
                "empty.example.test",
                &smime,
                true,
            ),
            (
                "TLS ignores issuemail, issue forbids: invalid",
                "mail.example.test",
                &tls(),
                false,
            ),
            (
                "TLS ignores issuemail, issue names us: valid",
                "mail-other.example.test",
                &tls(),
                true,
            ),
        ];
        for (case, target, parameters, passed) in cases {
            let response = check(&checker, target, parameters).await;
            assert!(response.check_completed, "case {case:?}: completed");
            assert_eq!(response.check_passed, passed, "case {case:?}");
        }
    }
}
