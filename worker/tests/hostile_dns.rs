//! CAA checks against zones that are broken or built to mislead: CNAME loops and long chains,
//! aliases to failing names, odd tags and values. None of them may end in a wrong "permitted".
//!
//! Each test starts its own `TestDns` on loopback and points a `CaaChecker` at it. The zones
//! `a.test.` and `b.test.` are separate, so a CNAME from one to the other makes the resolver
//! send a new query for the target, as it would with two real authoritative servers.

use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use mpic_shared::reply::{CheckDetails, CheckResponse};
use mpic_shared::request::{CaaCheckParameters, CertificateType};
use mpic_testkit::dns::{Behavior, TestDns, Zone, caa_record};
use mpic_worker::checks::caa::CaaChecker;
use mpic_worker::resolver::{NameServers, ResolverFactory, ResolverSettings};

const CA: &str = "ca.example";

/// Builds the zones. Every name under `a.test.` and `b.test.` inherits `issue "ca.example"`
/// from the zone apex, so an alias wrongly read as "no CAA records" climbs to a permitting RRset.
fn zones() -> Vec<Zone> {
    let mut a = String::from(
        r#"
        @             CAA 0 issue "ca.example"
        loop          CNAME loop.b.test.
        self-loop     CNAME self-loop.a.test.
        to-servfail   CNAME broken.b.test.
        to-forbidden  CNAME forbidden.b.test.
        odd-case      CAA 0 IsSuE "other-ca.example"
        space-inside  CAA 0 issue "ca. example"
        empty-account CAA 0 issue "ca.example; accounturi="
        bad-param     CAA 0 issue "ca.example; accounturi"
        wild-deny     CAA 0 issue "ca.example"
                      CAA 0 issuewild ";"
        issue-only    CAA 0 issue ";"
        "#,
    );
    let mut b = String::from(
        r#"
        @             CAA 0 issue "ca.example"
        loop          CNAME loop.a.test.
        forbidden     CAA 0 issue ";"
        "#,
    );
    // A chain of `CHAIN_HOPS` aliases that alternates between the zones and ends at an RRset
    // that forbids everyone.
    for hop in 0..CHAIN_HOPS {
        let (zone, next_zone) = if hop % 2 == 0 {
            (&mut a, "b.test.")
        } else {
            (&mut b, "a.test.")
        };
        zone.push_str(&format!(
            "\n        chain{hop} CNAME chain{}.{next_zone}\n",
            hop + 1
        ));
    }
    let last_zone = if CHAIN_HOPS.is_multiple_of(2) {
        &mut a
    } else {
        &mut b
    };
    last_zone.push_str(&format!("\n        chain{CHAIN_HOPS} CAA 0 issue \";\""));

    vec![
        Zone::new("test.", ""),
        Zone::new("a.test.", &a).with_record(caa_record(
            "nul.a.test.",
            300,
            0,
            "issue",
            b"ca.example\0other",
        )),
        Zone::new("b.test.", &b),
    ]
}

/// Number of CNAME hops in the `chain0.a.test` alias chain, more than hickory 0.26 follows (8).
const CHAIN_HOPS: usize = 12;

async fn start() -> (TestDns, CaaChecker) {
    let dns = TestDns::start(zones()).await;
    let settings = ResolverSettings {
        name_servers: NameServers::Configured(vec![dns.addr()]),
        query_timeout: Duration::from_secs(1),
        resolution_lifetime: Duration::from_secs(3),
        attempts: 1,
    };
    let factory = ResolverFactory::new(&settings).expect("resolver settings are valid");
    (dns, CaaChecker::new(factory, [CA]))
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

fn found_at(response: &CheckResponse) -> Option<String> {
    match &response.details {
        CheckDetails::Caa(details) => details.found_at.clone(),
        _ => None,
    }
}

#[tokio::test]
async fn cname_loop_is_not_permission() {
    let (_dns, checker) = start().await;
    let started = Instant::now();
    let response = check(&checker, "loop.a.test", &CaaCheckParameters::default()).await;
    assert!(
        !response.check_passed,
        "a CNAME loop must not climb to the permitting parent: found_at {:?}, errors {:?}",
        found_at(&response),
        response.errors
    );
    assert!(
        !response.check_completed,
        "a CNAME loop leaves the relevant RRset unknown: {response:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "loop ends quickly"
    );
}

#[tokio::test]
async fn cname_to_itself_is_not_permission() {
    let (_dns, checker) = start().await;
    let response = check(&checker, "self-loop.a.test", &CaaCheckParameters::default()).await;
    assert!(
        !response.check_passed,
        "a name that aliases itself must not climb to the permitting parent: found_at {:?}",
        found_at(&response)
    );
    assert!(!response.check_completed, "self-loop: {response:?}");
}

#[tokio::test]
async fn long_cname_chain_is_not_permission() {
    let (_dns, checker) = start().await;
    let response = check(&checker, "chain0.a.test", &CaaCheckParameters::default()).await;
    assert!(
        !response.check_passed,
        "the chain ends at issue \";\", so the alias must not be permitted: found_at {:?}, \
         errors {:?}",
        found_at(&response),
        response.errors
    );
}

#[tokio::test]
async fn cname_to_servfail_is_not_completed() {
    let (dns, checker) = start().await;
    dns.set_behavior("broken.b.test.", Some(RecordType::CAA), Behavior::ServFail);
    let response = check(
        &checker,
        "to-servfail.a.test",
        &CaaCheckParameters::default(),
    )
    .await;
    assert!(
        !response.check_passed,
        "SERVFAIL at the alias target: {response:?}"
    );
    assert!(
        !response.check_completed,
        "SERVFAIL at the alias target: {response:?}"
    );
}

#[tokio::test]
async fn odd_records_never_permit() {
    let (_dns, checker) = start().await;
    let tls = CaaCheckParameters::default();
    let with_empty_account = CaaCheckParameters {
        account_uri: Some(String::new()),
        ..CaaCheckParameters::default()
    };
    let smime = CaaCheckParameters {
        certificate_type: CertificateType::SMime,
        ..CaaCheckParameters::default()
    };
    let cases = [
        ("CNAME to issue \";\"", "to-forbidden.a.test", &tls, false),
        (
            "mixed-case tag names another CA",
            "odd-case.a.test",
            &tls,
            false,
        ),
        (
            "space inside the issuer",
            "space-inside.a.test",
            &tls,
            false,
        ),
        ("NUL inside the value", "nul.a.test", &tls, false),
        (
            "empty accounturi, no account",
            "empty-account.a.test",
            &tls,
            false,
        ),
        (
            "empty accounturi, empty account",
            "empty-account.a.test",
            &with_empty_account,
            false,
        ),
        ("parameter without \"=\"", "bad-param.a.test", &tls, false),
        (
            "wildcard, issuewild \";\"",
            "*.wild-deny.a.test",
            &tls,
            false,
        ),
        (
            "plain name beside issuewild \";\"",
            "wild-deny.a.test",
            &tls,
            true,
        ),
        ("S/MIME with issue only", "issue-only.a.test", &smime, true),
    ];
    for (case, target, parameters, passed) in cases {
        let response = check(&checker, target, parameters).await;
        assert!(
            response.check_completed,
            "case {case:?}: completed, {response:?}"
        );
        assert_eq!(
            response.check_passed,
            passed,
            "case {case:?}: passed, found_at {:?}",
            found_at(&response)
        );
    }
}
