//! DNS-based DCV methods against a real authoritative DNS server on loopback.
//!
//! Each test starts its own `TestDns` with the zones below and points the worker's resolver at
//! it. The zone `test.` plays the TLD so that CAA tree climbs end at a name the server is
//! authoritative for. The test server sets no AD bit, so every answer reports `ad_flag: false`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use mpic_shared::dcv::{
    ChallengeValueParameters, DcvCheckParameters, DnsAccount01Parameters, DnsChangeParameters,
    DnsChangeRecordType, DnsPersistentParameters, IpAddressParameters, IpRecordType,
    KeyAuthorizationHashParameters, ValidationMethod,
};
use mpic_shared::reply::{CheckDetails, CheckResponse, DcvCheckRequest, DnsDetails, error_type};
use mpic_testkit::dns::{Behavior, TestDns, Zone};
use mpic_worker::checks::dns::check;
use mpic_worker::resolver::{NameServers, ResolverFactory, ResolverSettings};

/// A key authorization digest (base64url SHA-256, RFC 8555 §8.4).
const HASH: &str = "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo";
const ACCOUNT: &str = "https://ca.example/acct/1";
const ISSUER: &str = "authority.example";

fn zones() -> Vec<Zone> {
    vec![
        Zone::new("test.", ""),
        Zone::new(
            "example.test.",
            r#"
            _acme-challenge.valid      TXT "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo"
            _acme-challenge.several    TXT "an old token"
                                       TXT "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo"
            _acme-challenge.wrong      TXT "not the digest"
            _acme-challenge.space      TXT " 7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo"
            _acme-challenge.lower      TXT "7fwkjpskf-th54wu4eiifa3nhzyaevsl7953ihy-tpo"
            _acme-challenge.split      TXT "7FwkJPsKf-TH54wu4" "eiIFA3nhzYaevsL7953ihy-tpo"
            _acme-challenge.split-gap  TXT "7FwkJPsKf-TH54wu4 " "eiIFA3nhzYaevsL7953ihy-tpo"
            _acme-challenge.alias      CNAME landing
            landing                    TXT "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo"
            _acme-challenge.delegated  CNAME hop.other.test.
            _acme-challenge.dangling   CNAME nothing.other.test.
            _acme-challenge.nodata     A   192.0.2.1
            _acme-challenge.broken     TXT "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo"
            _acme-challenge.silent     TXT "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo"

            _ujmmovf2vn55tgye._acme-challenge.acct TXT "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo"
            _acme-challenge.acct       TXT "the dns-01 record is not the dns-account-01 record"

            _dcv.change                TXT "prefix-TOKEN123-suffix"
            _dcv.exact                 TXT "TOKEN123"
            change-bare                TXT "TOKEN123"
            _dcv.cname                 CNAME token123.dcv.other.test.
            _dcv.caa                   CAA 0 issue "ca.example"
                                       CAA 0 tbs "TOKEN123"

            _validation-persist.persist   TXT "other-ca.example; accounturi=https://ca.example/acct/1"
                                          TXT "authority.example; accounturi=https://ca.example/acct/1"
            _validation-persist.future    TXT "authority.example; accounturi=https://ca.example/acct/1; persistUntil=4102444800"
            _validation-persist.past      TXT "authority.example; accounturi=https://ca.example/acct/1; persistUntil=1000000000"
            _validation-persist.dup       TXT "authority.example; accounturi=https://ca.example/acct/1; accounturi=https://ca.example/acct/1"
            _validation-persist.other     TXT "authority.example; accounturi=https://ca.example/acct/2"
            _validation-persist.upper     TXT "AUTHORITY.Example.; accounturi=https://ca.example/acct/1"
            _validation-persist.split     TXT "authority.example;" " accounturi=https://ca.example/acct/1"
            _validation-persist.unknown   TXT "authority.example; accounturi=https://ca.example/acct/1; color=blue"
            _validation-persist.wild      TXT "authority.example; accounturi=https://ca.example/acct/1; policy=wildcard"

            _validation-contactemail.contact TXT "admin@example.test"
            _validation-contactemail.padded  TXT " admin@example.test"
            _validation-contactphone.contact TXT "+1 555 0100"

            caa-contact                CAA 0 issue "ca.example"
                                       CAA 0 contactemail "caa.contact@example.test"
                                       CAA 0 contactphone "+1 555 0101"
            caa-issue-only             CAA 0 issue "ca.example"
            caa-alias                  CNAME caa-contact

            v4                         A    192.0.2.10
                                       A    192.0.2.11
            v6                         AAAA 2001:4860:4860::8888
            v6-alias                   CNAME v6
            "#,
        ),
        Zone::new(
            "other.test.",
            r#"
            hop                        CNAME final
            final                      TXT "7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo"
            "#,
        ),
        Zone::new(
            "2.0.192.in-addr.arpa.",
            r#"
            10                         PTR host.example.test.
            11                         CNAME 11.0-63
            11.0-63                    PTR classless.example.test.
            "#,
        ),
        Zone::new(
            "8.b.d.0.1.0.0.2.ip6.arpa.",
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 PTR v6host.example.test.",
        ),
    ]
}

fn settings(name_server: SocketAddr) -> ResolverSettings {
    ResolverSettings {
        name_servers: NameServers::Configured(vec![name_server]),
        query_timeout: Duration::from_secs(2),
        resolution_lifetime: Duration::from_secs(4),
        attempts: 1,
    }
}

async fn run(
    settings: &ResolverSettings,
    target: &str,
    parameters: DcvCheckParameters,
) -> CheckResponse {
    let factory = ResolverFactory::new(settings).expect("resolver settings are valid");
    let request = DcvCheckRequest {
        domain_or_ip_target: target.to_owned(),
        trace_identifier: None,
        dcv_check_parameters: parameters,
    };
    check(&factory, &request).await
}

/// The reply fields a case expects.
#[derive(Debug)]
struct Expected {
    completed: bool,
    passed: bool,
    /// `None` expects null details (and then no error type is checked here but `error`).
    found_at: Option<&'static str>,
    records: Vec<&'static str>,
    cname_chain: Vec<&'static str>,
    /// The error type of the single expected error, if any.
    error: Option<&'static str>,
}

fn passed(found_at: &'static str, records: Vec<&'static str>) -> Expected {
    Expected {
        completed: true,
        passed: true,
        found_at: Some(found_at),
        records,
        cname_chain: vec![],
        error: None,
    }
}

fn failed(found_at: &'static str, records: Vec<&'static str>) -> Expected {
    Expected {
        passed: false,
        ..passed(found_at, records)
    }
}

fn via(chain: Vec<&'static str>, expected: Expected) -> Expected {
    Expected {
        cname_chain: chain,
        ..expected
    }
}

/// NXDOMAIN or an empty answer: completed, failed, null details, a lookup error.
fn not_found() -> Expected {
    Expected {
        completed: true,
        passed: false,
        found_at: None,
        records: vec![],
        cname_chain: vec![],
        error: Some(error_type::DCV_LOOKUP),
    }
}

fn not_completed(error: &'static str) -> Expected {
    Expected {
        completed: false,
        error: Some(error),
        ..not_found()
    }
}

fn assert_reply(
    case: &str,
    method: ValidationMethod,
    response: &CheckResponse,
    expected: &Expected,
) {
    assert_eq!(
        response.check_completed, expected.completed,
        "case {case:?}: check_completed ({response:?})"
    );
    assert_eq!(
        response.check_passed, expected.passed,
        "case {case:?}: check_passed ({response:?})"
    );
    let error_types: Vec<&str> = response
        .errors
        .iter()
        .flatten()
        .map(|error| error.error_type.as_str())
        .collect();
    assert_eq!(
        error_types,
        expected.error.into_iter().collect::<Vec<_>>(),
        "case {case:?}: errors ({response:?})"
    );

    let CheckDetails::Dns(details) = &response.details else {
        panic!("case {case:?}: details are not DNS details: {response:?}");
    };
    assert_eq!(
        details.validation_method, method,
        "case {case:?}: validation_method"
    );
    let Some(found_at) = expected.found_at else {
        assert_eq!(
            *details,
            DnsDetails::empty(method),
            "case {case:?}: details must be null"
        );
        return;
    };
    assert_eq!(
        details.found_at.as_deref(),
        Some(found_at),
        "case {case:?}: found_at"
    );
    assert_eq!(
        details.response_code,
        Some(0),
        "case {case:?}: response_code"
    );
    let seen = details.records_seen.clone().unwrap_or_default();
    let expected_seen = expected.records.iter().map(|r| (*r).to_owned()).collect();
    assert_eq!(
        sorted(seen),
        sorted(expected_seen),
        "case {case:?}: records_seen"
    );
    assert_eq!(details.ad_flag, Some(false), "case {case:?}: ad_flag");
    let chain: Vec<String> = expected
        .cname_chain
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    assert_eq!(
        details.cname_chain,
        Some(chain),
        "case {case:?}: cname_chain"
    );
}

/// Records of one RRset come in the server's order, so they are compared as sets.
fn sorted(mut records: Vec<String>) -> Vec<String> {
    records.sort();
    records
}

async fn run_cases(cases: Vec<(&str, &str, DcvCheckParameters, Expected)>) {
    let dns = TestDns::start(zones()).await;
    dns.set_behavior(
        "_acme-challenge.broken.example.test.",
        None,
        Behavior::ServFail,
    );
    dns.set_behavior(
        "_acme-challenge.refused.example.test.",
        None,
        Behavior::Refused,
    );
    dns.set_behavior(
        "caa-broken.example.test.",
        Some(RecordType::CAA),
        Behavior::ServFail,
    );
    let settings = settings(dns.addr());
    for (case, target, parameters, expected) in cases {
        let method = parameters.method();
        let response = run(&settings, target, parameters).await;
        assert_reply(case, method, &response, &expected);
    }
}

fn acme(hash: &str) -> DcvCheckParameters {
    DcvCheckParameters::AcmeDns01(KeyAuthorizationHashParameters {
        key_authorization_hash: hash.to_owned(),
    })
}

fn account(hash: &str, account_uri: &str) -> DcvCheckParameters {
    DcvCheckParameters::DnsAccount01(DnsAccount01Parameters {
        key_authorization_hash: hash.to_owned(),
        account_uri: account_uri.to_owned(),
    })
}

fn change(
    record_type: DnsChangeRecordType,
    prefix: Option<&str>,
    value: &str,
    exact_match: bool,
    exact_case: bool,
) -> DcvCheckParameters {
    DcvCheckParameters::DnsChange(DnsChangeParameters {
        challenge_value: value.to_owned(),
        dns_record_type: record_type,
        dns_name_prefix: prefix.map(str::to_owned),
        require_exact_match: exact_match,
        require_exact_case: exact_case,
    })
}

fn persistent(issuer: &str) -> DcvCheckParameters {
    DcvCheckParameters::DnsPersistent(DnsPersistentParameters {
        issuer_domain_names: vec!["unrelated.example".to_owned(), issuer.to_owned()],
        expected_account_uri: ACCOUNT.to_owned(),
    })
}

fn challenge(value: &str) -> ChallengeValueParameters {
    ChallengeValueParameters {
        challenge_value: value.to_owned(),
    }
}

fn address(value: &str, record_type: IpRecordType) -> DcvCheckParameters {
    DcvCheckParameters::IpAddress(IpAddressParameters {
        challenge_value: value.to_owned(),
        dns_record_type: record_type,
    })
}

fn reverse(value: &str) -> DcvCheckParameters {
    DcvCheckParameters::ReverseAddressLookup(challenge(value))
}

#[tokio::test]
async fn acme_dns_01() {
    run_cases(vec![
        (
            "digest present: passed",
            "valid.example.test",
            acme(HASH),
            passed("_acme-challenge.valid.example.test", vec![HASH]),
        ),
        (
            "digest among other records: passed",
            "several.example.test",
            acme(HASH),
            passed(
                "_acme-challenge.several.example.test",
                vec!["an old token", HASH],
            ),
        ),
        (
            "wildcard target uses the base name: passed",
            "*.valid.example.test",
            acme(HASH),
            passed("_acme-challenge.valid.example.test", vec![HASH]),
        ),
        (
            "upper-case target: passed",
            "VALID.Example.TEST",
            acme(HASH),
            passed("_acme-challenge.valid.example.test", vec![HASH]),
        ),
        (
            "wrong token: failed",
            "wrong.example.test",
            acme(HASH),
            failed("_acme-challenge.wrong.example.test", vec!["not the digest"]),
        ),
        (
            "leading space: failed",
            "space.example.test",
            acme(HASH),
            failed(
                "_acme-challenge.space.example.test",
                vec![" 7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo"],
            ),
        ),
        (
            "other case: failed",
            "lower.example.test",
            acme(HASH),
            failed(
                "_acme-challenge.lower.example.test",
                vec!["7fwkjpskf-th54wu4eiifa3nhzyaevsl7953ihy-tpo"],
            ),
        ),
        (
            "multi-string TXT joined: passed",
            "split.example.test",
            acme(HASH),
            passed("_acme-challenge.split.example.test", vec![HASH]),
        ),
        (
            "multi-string TXT with a space: failed",
            "split-gap.example.test",
            acme(HASH),
            failed(
                "_acme-challenge.split-gap.example.test",
                vec!["7FwkJPsKf-TH54wu4 eiIFA3nhzYaevsL7953ihy-tpo"],
            ),
        ),
        (
            "CNAME in the zone: passed",
            "alias.example.test",
            acme(HASH),
            via(
                vec!["landing.example.test."],
                passed("_acme-challenge.alias.example.test", vec![HASH]),
            ),
        ),
        (
            "CNAME chain into another zone: passed",
            "delegated.example.test",
            acme(HASH),
            via(
                vec!["hop.other.test.", "final.other.test."],
                passed("_acme-challenge.delegated.example.test", vec![HASH]),
            ),
        ),
        (
            "NXDOMAIN: failed",
            "missing.example.test",
            acme(HASH),
            not_found(),
        ),
        (
            "CNAME to a missing name: failed",
            "dangling.example.test",
            acme(HASH),
            not_found(),
        ),
        (
            "no TXT data: failed",
            "nodata.example.test",
            acme(HASH),
            not_found(),
        ),
        (
            "SERVFAIL: not completed",
            "broken.example.test",
            acme(HASH),
            not_completed(error_type::DCV_LOOKUP),
        ),
        (
            "REFUSED: not completed",
            "refused.example.test",
            acme(HASH),
            not_completed(error_type::DCV_LOOKUP),
        ),
        (
            "IP target: invalid request",
            "192.0.2.1",
            acme(HASH),
            not_completed(error_type::INVALID_REQUEST),
        ),
        (
            "unparsable target: invalid request",
            "exa mple.test",
            acme(HASH),
            not_completed(error_type::INVALID_REQUEST),
        ),
    ])
    .await;
}

#[tokio::test]
async fn lookup_error_messages_name_the_problem() {
    let dns = TestDns::start(zones()).await;
    dns.set_behavior(
        "_acme-challenge.broken.example.test.",
        None,
        Behavior::ServFail,
    );
    let settings = settings(dns.addr());
    let cases = [
        (
            "NXDOMAIN",
            "missing.example.test",
            "_acme-challenge.missing.example.test does not exist (NXDOMAIN)",
        ),
        (
            "NXDOMAIN at the end of a CNAME",
            "dangling.example.test",
            "nothing.other.test does not exist (NXDOMAIN)",
        ),
        (
            "no data",
            "nodata.example.test",
            "_acme-challenge.nodata.example.test has no TXT records (NOERROR, empty answer)",
        ),
        (
            "SERVFAIL",
            "broken.example.test",
            "the resolver answered SERVFAIL for _acme-challenge.broken.example.test TXT",
        ),
    ];
    for (case, target, expected) in cases {
        let response = run(&settings, target, acme(HASH)).await;
        let messages: Vec<&str> = response
            .errors
            .iter()
            .flatten()
            .map(|error| error.error_message.as_str())
            .collect();
        assert_eq!(messages, [expected], "case {case:?}");
    }
}

#[tokio::test]
async fn dns_account_01() {
    // The account URI and label of the draft's example.
    let draft_account = "https://example.com/acme/acct/ExampleAccount";
    run_cases(vec![
        (
            "label of the draft example: passed",
            "acct.example.test",
            account(HASH, draft_account),
            passed(
                "_ujmmovf2vn55tgye._acme-challenge.acct.example.test",
                vec![HASH],
            ),
        ),
        (
            "wildcard target uses the base name: passed",
            "*.acct.example.test",
            account(HASH, draft_account),
            passed(
                "_ujmmovf2vn55tgye._acme-challenge.acct.example.test",
                vec![HASH],
            ),
        ),
        (
            "wrong token: failed",
            "acct.example.test",
            account("other", draft_account),
            failed(
                "_ujmmovf2vn55tgye._acme-challenge.acct.example.test",
                vec![HASH],
            ),
        ),
        (
            "other account has another label: failed",
            "acct.example.test",
            account(HASH, "https://example.com/acme/acct/Other"),
            not_found(),
        ),
        (
            "IP target: invalid request",
            "2001:db8::1",
            account(HASH, draft_account),
            not_completed(error_type::INVALID_REQUEST),
        ),
    ])
    .await;
}

#[tokio::test]
async fn dns_change() {
    use DnsChangeRecordType::{Caa, Cname, Txt};
    run_cases(vec![
        (
            "TXT contains the value: passed",
            "change.example.test",
            change(Txt, Some("_dcv"), "TOKEN123", false, true),
            passed("_dcv.change.example.test", vec!["prefix-TOKEN123-suffix"]),
        ),
        (
            "TXT value in other case: failed",
            "change.example.test",
            change(Txt, Some("_dcv"), "token123", false, true),
            failed("_dcv.change.example.test", vec!["prefix-TOKEN123-suffix"]),
        ),
        (
            "TXT other case allowed: passed",
            "change.example.test",
            change(Txt, Some("_dcv"), "token123", false, false),
            passed("_dcv.change.example.test", vec!["prefix-TOKEN123-suffix"]),
        ),
        (
            "TXT exact match of a longer record: failed",
            "change.example.test",
            change(Txt, Some("_dcv"), "TOKEN123", true, true),
            failed("_dcv.change.example.test", vec!["prefix-TOKEN123-suffix"]),
        ),
        (
            "TXT exact match: passed",
            "exact.example.test",
            change(Txt, Some("_dcv"), "TOKEN123", true, true),
            passed("_dcv.exact.example.test", vec!["TOKEN123"]),
        ),
        (
            "no prefix queries the target: passed",
            "change-bare.example.test",
            change(Txt, None, "TOKEN123", true, true),
            passed("change-bare.example.test", vec!["TOKEN123"]),
        ),
        (
            "empty prefix queries the target: passed",
            "change-bare.example.test",
            change(Txt, Some(""), "TOKEN123", false, true),
            passed("change-bare.example.test", vec!["TOKEN123"]),
        ),
        (
            "CNAME target contains the value: passed",
            "cname.example.test",
            change(Cname, Some("_dcv"), "token123", false, true),
            passed("_dcv.cname.example.test", vec!["token123.dcv.other.test."]),
        ),
        (
            "CNAME target equals the value: passed",
            "cname.example.test",
            change(Cname, Some("_dcv"), "TOKEN123.dcv.other.test.", true, true),
            passed("_dcv.cname.example.test", vec!["token123.dcv.other.test."]),
        ),
        (
            "CNAME target is another name: failed",
            "cname.example.test",
            change(
                Cname,
                Some("_dcv"),
                "token123.dcv.other.test.evil",
                true,
                true,
            ),
            failed("_dcv.cname.example.test", vec!["token123.dcv.other.test."]),
        ),
        (
            "CAA value equals without case: passed",
            "caa.example.test",
            change(Caa, Some("_dcv"), "token123", true, true),
            passed("_dcv.caa.example.test", vec!["ca.example", "TOKEN123"]),
        ),
        (
            "CAA value not present: failed",
            "caa.example.test",
            change(Caa, Some("_dcv"), "token999", false, true),
            failed("_dcv.caa.example.test", vec!["ca.example", "TOKEN123"]),
        ),
        (
            "no TXT at the prefixed name: failed",
            "exact.example.test",
            change(Txt, Some("_other"), "TOKEN123", false, true),
            not_found(),
        ),
        (
            "prefix without underscore: invalid request",
            "change.example.test",
            change(Txt, Some("dcv"), "TOKEN123", false, true),
            not_completed(error_type::INVALID_REQUEST),
        ),
        (
            "prefix of two labels: invalid request",
            "change.example.test",
            change(Txt, Some("_dcv.x"), "TOKEN123", false, true),
            not_completed(error_type::INVALID_REQUEST),
        ),
    ])
    .await;
}

#[tokio::test]
async fn dns_persistent() {
    let ours = "authority.example; accounturi=https://ca.example/acct/1";
    run_cases(vec![
        ("record for our issuer among others: passed", "persist.example.test", persistent(ISSUER), passed("_validation-persist.persist.example.test", vec!["other-ca.example; accounturi=https://ca.example/acct/1", ours])),
        ("issuer name in the request in other case: passed", "persist.example.test", persistent("Authority.EXAMPLE."), passed("_validation-persist.persist.example.test", vec!["other-ca.example; accounturi=https://ca.example/acct/1", ours])),
        ("not our issuer: failed", "persist.example.test", persistent("third.example"), failed("_validation-persist.persist.example.test", vec!["other-ca.example; accounturi=https://ca.example/acct/1", ours])),
        ("persistUntil in the future: passed", "future.example.test", persistent(ISSUER), passed("_validation-persist.future.example.test", vec!["authority.example; accounturi=https://ca.example/acct/1; persistUntil=4102444800"])),
        ("persistUntil in the past: failed", "past.example.test", persistent(ISSUER), failed("_validation-persist.past.example.test", vec!["authority.example; accounturi=https://ca.example/acct/1; persistUntil=1000000000"])),
        ("duplicate accounturi: failed", "dup.example.test", persistent(ISSUER), failed("_validation-persist.dup.example.test", vec!["authority.example; accounturi=https://ca.example/acct/1; accounturi=https://ca.example/acct/1"])),
        ("other account: failed", "other.example.test", persistent(ISSUER), failed("_validation-persist.other.example.test", vec!["authority.example; accounturi=https://ca.example/acct/2"])),
        ("issuer in the record in other case: passed", "upper.example.test", persistent(ISSUER), passed("_validation-persist.upper.example.test", vec!["AUTHORITY.Example.; accounturi=https://ca.example/acct/1"])),
        ("multi-string record joined: passed", "split.example.test", persistent(ISSUER), passed("_validation-persist.split.example.test", vec![ours])),
        ("unknown parameter ignored: passed", "unknown.example.test", persistent(ISSUER), passed("_validation-persist.unknown.example.test", vec!["authority.example; accounturi=https://ca.example/acct/1; color=blue"])),
        ("wildcard without policy=wildcard: failed", "*.future.example.test", persistent(ISSUER), failed("_validation-persist.future.example.test", vec!["authority.example; accounturi=https://ca.example/acct/1; persistUntil=4102444800"])),
        ("wildcard with policy=wildcard: passed", "*.wild.example.test", persistent(ISSUER), passed("_validation-persist.wild.example.test", vec!["authority.example; accounturi=https://ca.example/acct/1; policy=wildcard"])),
        ("no record: failed", "missing.example.test", persistent(ISSUER), not_found()),
    ])
    .await;
}

#[tokio::test]
async fn contact_txt() {
    let email = |value: &str| DcvCheckParameters::ContactEmailTxt(challenge(value));
    let phone = |value: &str| DcvCheckParameters::ContactPhoneTxt(challenge(value));
    run_cases(vec![
        (
            "email equal: passed",
            "contact.example.test",
            email("admin@example.test"),
            passed(
                "_validation-contactemail.contact.example.test",
                vec!["admin@example.test"],
            ),
        ),
        (
            "email domain in other case: passed",
            "contact.example.test",
            email("admin@EXAMPLE.Test"),
            passed(
                "_validation-contactemail.contact.example.test",
                vec!["admin@example.test"],
            ),
        ),
        (
            "email local part in other case: failed",
            "contact.example.test",
            email("Admin@example.test"),
            failed(
                "_validation-contactemail.contact.example.test",
                vec!["admin@example.test"],
            ),
        ),
        (
            "email record with padding: failed",
            "padded.example.test",
            email("admin@example.test"),
            failed(
                "_validation-contactemail.padded.example.test",
                vec![" admin@example.test"],
            ),
        ),
        (
            "email wildcard target: passed",
            "*.contact.example.test",
            email("admin@example.test"),
            passed(
                "_validation-contactemail.contact.example.test",
                vec!["admin@example.test"],
            ),
        ),
        (
            "email record missing: failed",
            "missing.example.test",
            email("admin@example.test"),
            not_found(),
        ),
        (
            "phone equal: passed",
            "contact.example.test",
            phone("+1 555 0100"),
            passed(
                "_validation-contactphone.contact.example.test",
                vec!["+1 555 0100"],
            ),
        ),
        (
            "phone without separators: failed",
            "contact.example.test",
            phone("+15550100"),
            failed(
                "_validation-contactphone.contact.example.test",
                vec!["+1 555 0100"],
            ),
        ),
    ])
    .await;
}

#[tokio::test]
async fn contact_caa() {
    let email = |value: &str| DcvCheckParameters::ContactEmailCaa(challenge(value));
    let phone = |value: &str| DcvCheckParameters::ContactPhoneCaa(challenge(value));
    run_cases(vec![
        (
            "email on the name itself: passed",
            "caa-contact.example.test",
            email("caa.contact@example.test"),
            passed("caa-contact.example.test", vec!["caa.contact@example.test"]),
        ),
        (
            "email found on the parent: passed",
            "sub.caa-contact.example.test",
            email("caa.contact@example.test"),
            passed("caa-contact.example.test", vec!["caa.contact@example.test"]),
        ),
        (
            "email for a wildcard target: passed",
            "*.sub.caa-contact.example.test",
            email("caa.contact@example.test"),
            passed("caa-contact.example.test", vec!["caa.contact@example.test"]),
        ),
        (
            "other email: failed",
            "caa-contact.example.test",
            email("other@example.test"),
            failed("caa-contact.example.test", vec!["caa.contact@example.test"]),
        ),
        (
            "email through a CNAME: passed",
            "caa-alias.example.test",
            email("caa.contact@example.test"),
            via(
                vec!["caa-contact.example.test."],
                passed("caa-alias.example.test", vec!["caa.contact@example.test"]),
            ),
        ),
        (
            "phone found on the parent: passed",
            "sub.caa-contact.example.test",
            phone("+1 555 0101"),
            passed("caa-contact.example.test", vec!["+1 555 0101"]),
        ),
        (
            "relevant RRset without contact property: failed",
            "www.caa-issue-only.example.test",
            email("caa.contact@example.test"),
            failed("caa-issue-only.example.test", vec![]),
        ),
        (
            "no CAA up to the TLD: failed",
            "nothing.example.test",
            email("caa.contact@example.test"),
            not_found(),
        ),
        (
            "SERVFAIL below the relevant RRset: not completed",
            "caa-broken.example.test",
            email("caa.contact@example.test"),
            not_completed(error_type::DCV_LOOKUP),
        ),
        (
            "IP target: invalid request",
            "192.0.2.1",
            email("caa.contact@example.test"),
            not_completed(error_type::INVALID_REQUEST),
        ),
    ])
    .await;
}

#[tokio::test]
async fn contact_caa_queries_the_relevant_name_again() {
    let dns = TestDns::start(zones()).await;
    let parameters = DcvCheckParameters::ContactEmailCaa(challenge("caa.contact@example.test"));
    let response = run(
        &settings(dns.addr()),
        "sub.caa-contact.example.test",
        parameters,
    )
    .await;
    assert!(response.check_passed, "check_passed: {response:?}");

    // The tree climb queries CAA at the target and its parents. The answer whose header the
    // reply reports comes from one more CAA query of the relevant name.
    let cases = [
        ("target", "sub.caa-contact.example.test.", 1),
        ("relevant name", "caa-contact.example.test.", 2),
    ];
    for (case, name, count) in cases {
        assert_eq!(
            dns.query_count_for(name, RecordType::CAA),
            count,
            "case {case:?}: CAA queries for {name}"
        );
    }
}

#[tokio::test]
async fn ip_address() {
    use IpRecordType::{A, Aaaa};
    run_cases(vec![
        (
            "IPv4 among two records: passed",
            "v4.example.test",
            address("192.0.2.11", A),
            passed("v4.example.test", vec!["192.0.2.10", "192.0.2.11"]),
        ),
        (
            "IPv4 not present: failed",
            "v4.example.test",
            address("192.0.2.12", A),
            failed("v4.example.test", vec!["192.0.2.10", "192.0.2.11"]),
        ),
        (
            "IPv6 long form: passed",
            "v6.example.test",
            address("2001:4860:4860:0:00:000:0000:8888", Aaaa),
            passed("v6.example.test", vec!["2001:4860:4860::8888"]),
        ),
        (
            "IPv6 short form: passed",
            "v6.example.test",
            address("2001:4860:4860::8888", Aaaa),
            passed("v6.example.test", vec!["2001:4860:4860::8888"]),
        ),
        (
            "IPv6 other address: failed",
            "v6.example.test",
            address("2001:4860:4860::8889", Aaaa),
            failed("v6.example.test", vec!["2001:4860:4860::8888"]),
        ),
        (
            "IPv6 through a CNAME: passed",
            "v6-alias.example.test",
            address("2001:4860:4860::8888", Aaaa),
            via(
                vec!["v6.example.test."],
                passed("v6-alias.example.test", vec!["2001:4860:4860::8888"]),
            ),
        ),
        (
            "no AAAA records: failed",
            "v4.example.test",
            address("2001:db8::1", Aaaa),
            not_found(),
        ),
        (
            "IP target: invalid request",
            "192.0.2.10",
            address("192.0.2.10", A),
            not_completed(error_type::INVALID_REQUEST),
        ),
        (
            "value of the other family: invalid request",
            "v4.example.test",
            address("2001:db8::1", A),
            not_completed(error_type::INVALID_REQUEST),
        ),
    ])
    .await;
}

#[tokio::test]
async fn reverse_address_lookup() {
    run_cases(vec![
        (
            "IPv4 PTR without trailing dot: passed",
            "192.0.2.10",
            reverse("host.example.test"),
            passed("10.2.0.192.in-addr.arpa", vec!["host.example.test."]),
        ),
        (
            "IPv4 PTR with trailing dot: passed",
            "192.0.2.10",
            reverse("host.example.test."),
            passed("10.2.0.192.in-addr.arpa", vec!["host.example.test."]),
        ),
        (
            "IPv4 PTR in other case: passed",
            "192.0.2.10",
            reverse("HOST.Example.TEST"),
            passed("10.2.0.192.in-addr.arpa", vec!["host.example.test."]),
        ),
        (
            "IPv4 PTR is another host: failed",
            "192.0.2.10",
            reverse("other.example.test"),
            failed("10.2.0.192.in-addr.arpa", vec!["host.example.test."]),
        ),
        (
            "classless delegation CNAME (RFC 2317): passed",
            "192.0.2.11",
            reverse("classless.example.test"),
            via(
                vec!["11.0-63.2.0.192.in-addr.arpa."],
                passed("11.2.0.192.in-addr.arpa", vec!["classless.example.test."]),
            ),
        ),
        (
            "IPv6 PTR: passed",
            "2001:db8::1",
            reverse("v6host.example.test"),
            passed(
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
                vec!["v6host.example.test."],
            ),
        ),
        (
            "IPv6 target in long form: passed",
            "2001:0DB8:0:0:0:0:0:0001",
            reverse("v6host.example.test"),
            passed(
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
                vec!["v6host.example.test."],
            ),
        ),
        (
            "no PTR: failed",
            "192.0.2.99",
            reverse("host.example.test"),
            not_found(),
        ),
        (
            "domain target: invalid request",
            "host.example.test",
            reverse("host.example.test"),
            not_completed(error_type::INVALID_REQUEST),
        ),
    ])
    .await;
}

#[tokio::test]
async fn silent_server_times_out_within_the_bound() {
    let dns = TestDns::start(zones()).await;
    dns.set_behavior("_acme-challenge.silent.example.test.", None, Behavior::Drop);
    let cases = [
        (
            "query timeout",
            ResolverSettings {
                query_timeout: Duration::from_millis(200),
                resolution_lifetime: Duration::from_secs(5),
                ..settings(dns.addr())
            },
            "within the DNS query timeout",
            Duration::from_secs(3),
        ),
        (
            "resolution lifetime",
            ResolverSettings {
                query_timeout: Duration::from_secs(2),
                resolution_lifetime: Duration::from_millis(300),
                ..settings(dns.addr())
            },
            "within the resolution lifetime",
            Duration::from_secs(1),
        ),
    ];
    for (case, settings, message, bound) in cases {
        let started = Instant::now();
        let response = run(&settings, "silent.example.test", acme(HASH)).await;
        let elapsed = started.elapsed();
        let expected = not_completed(error_type::DCV_LOOKUP);
        assert_reply(case, ValidationMethod::AcmeDns01, &response, &expected);
        let error = &response.errors.as_ref().expect("an error is reported")[0];
        assert!(
            error.error_message.contains(message),
            "case {case:?}: message {:?}",
            error.error_message
        );
        assert!(elapsed < bound, "case {case:?}: took {elapsed:?}");
    }
}

#[tokio::test]
async fn runtime_change_seen_next_check() {
    let dns = TestDns::start(zones()).await;
    let settings = settings(dns.addr());
    let first = run(&settings, "wrong.example.test", acme(HASH)).await;
    assert!(!first.check_passed, "before the change: {first:?}");

    dns.add_records_from_text(
        "example.test.",
        "_acme-challenge.wrong TXT \"7FwkJPsKf-TH54wu4eiIFA3nhzYaevsL7953ihy-tpo\"",
    )
    .await;
    let second = run(&settings, "wrong.example.test", acme(HASH)).await;
    assert!(second.check_passed, "after the change: {second:?}");
}
