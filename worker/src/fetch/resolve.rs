//! Looking up the addresses of a hop's host and checking every one with the address guard.
//!
//! The lookup (I/O) and the decision ([`merge_lookups`], [`guard_all`]) are separate, so the
//! decision has unit tests without a DNS server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData};
use url::{Host, Url};

use super::error::FetchError;
use super::guard::AddressGuard;

/// Returns the addresses of the host of `url`, each accepted by `guard`.
///
/// An IP literal is checked as it is. A domain name is looked up as a fully qualified name, so
/// the resolver's search list never turns an applicant's name into a name of the CA's own
/// network, and both its A and AAAA records are looked up.
///
/// # Errors
///
/// Returns [`FetchError::BlockedAddress`] if any address is rejected, even when others would
/// pass, and the DNS variants when the lookup yields no address.
pub(crate) async fn guarded_addresses(
    resolver: &TokioResolver,
    guard: &AddressGuard,
    url: &Url,
) -> Result<Vec<IpAddr>, FetchError> {
    let host_text = url.host_str().unwrap_or_default().to_owned();
    let addresses = match url.host() {
        Some(Host::Ipv4(v4)) => vec![IpAddr::V4(v4)],
        Some(Host::Ipv6(v6)) => vec![IpAddr::V6(v6)],
        Some(Host::Domain(domain)) => lookup(resolver, url, domain).await?,
        // `Destinations::check_url` has rejected URLs without a host before any hop starts.
        None => Vec::new(),
    };

    guard_all(guard, url, &host_text, addresses)
}

async fn lookup(
    resolver: &TokioResolver,
    url: &Url,
    domain: &str,
) -> Result<Vec<IpAddr>, FetchError> {
    let dns_error = |source: NetError| FetchError::DnsLookup {
        url: Box::new(url.clone()),
        host: domain.to_owned(),
        source: Box::new(source),
    };
    let mut name = Name::from_ascii(domain).map_err(|error| dns_error(error.into()))?;
    name.set_fqdn(true);

    let (v4, v6) = tokio::join!(
        resolver.ipv4_lookup(name.clone()),
        resolver.ipv6_lookup(name)
    );
    let v4 = v4.map(|lookup| {
        lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(a) => Some(Ipv4Addr::from(*a)),
                _ => None,
            })
            .collect()
    });
    let v6 = v6.map(|lookup| {
        lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::AAAA(aaaa) => Some(Ipv6Addr::from(*aaaa)),
                _ => None,
            })
            .collect()
    });

    match merge_lookups(v4, v6) {
        LookupOutcome::Addresses(addresses) => Ok(addresses),
        LookupOutcome::NoAddresses => Err(FetchError::NoAddresses {
            url: Box::new(url.clone()),
            host: domain.to_owned(),
        }),
        LookupOutcome::Failed(source) => Err(dns_error(source)),
    }
}

/// The combined result of the A and AAAA lookups of one name.
#[derive(Debug)]
enum LookupOutcome {
    Addresses(Vec<IpAddr>),
    NoAddresses,
    Failed(NetError),
}

/// Combines the A and AAAA lookups of one name.
///
/// "No records" of one family is normal and ignored. A failed lookup of one family (SERVFAIL,
/// timeout) is ignored when the other family returned addresses, because the fetch connects only
/// to addresses it has checked. Some hosts have only A records behind name servers that handle
/// AAAA queries badly. With no address at all, a failure wins over "no records", because the
/// failure means the records are unknown.
fn merge_lookups(
    v4: Result<Vec<Ipv4Addr>, NetError>,
    v6: Result<Vec<Ipv6Addr>, NetError>,
) -> LookupOutcome {
    let mut addresses = Vec::new();
    let mut failure = None;

    match v4 {
        Ok(found) => addresses.extend(found.into_iter().map(IpAddr::V4)),
        Err(error) if error.is_no_records_found() => {}
        Err(error) => failure = Some(error),
    }
    match v6 {
        Ok(found) => addresses.extend(found.into_iter().map(IpAddr::V6)),
        Err(error) if error.is_no_records_found() => {}
        Err(error) => failure = failure.or(Some(error)),
    }

    match (addresses.is_empty(), failure) {
        (false, _) => LookupOutcome::Addresses(addresses),
        (true, Some(error)) => LookupOutcome::Failed(error),
        (true, None) => LookupOutcome::NoAddresses,
    }
}

/// Checks every address with the guard, in order, and rejects the host at the first blocked one.
fn guard_all(
    guard: &AddressGuard,
    url: &Url,
    host: &str,
    addresses: Vec<IpAddr>,
) -> Result<Vec<IpAddr>, FetchError> {
    for address in &addresses {
        guard
            .check(*address)
            .map_err(|blocked| FetchError::BlockedAddress {
                url: Box::new(url.clone()),
                host: host.to_owned(),
                blocked,
            })?;
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use hickory_resolver::net::{DnsError, NoRecords};
    use hickory_resolver::proto::op::{Query, ResponseCode};
    use hickory_resolver::proto::rr::RecordType;

    use super::*;
    use crate::fetch::guard::AddressPolicy;

    fn no_records() -> NetError {
        let query = Query::query(Name::root(), RecordType::A);
        NetError::Dns(DnsError::NoRecordsFound(NoRecords::new(
            query,
            ResponseCode::NXDomain,
        )))
    }

    fn v4(text: &str) -> Ipv4Addr {
        text.parse().expect("test address is valid")
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().expect("test address is valid")
    }

    #[test]
    fn merge_both_families() {
        let outcome = merge_lookups(Ok(vec![v4("192.0.2.1")]), Ok(vec![v6("2001:db8::1")]));
        let LookupOutcome::Addresses(addresses) = outcome else {
            panic!("expected addresses, got {outcome:?}");
        };
        assert_eq!(
            addresses,
            vec![IpAddr::V4(v4("192.0.2.1")), IpAddr::V6(v6("2001:db8::1"))]
        );
    }

    #[test]
    fn merge_one_family_without_records() {
        let outcome = merge_lookups(Ok(vec![v4("192.0.2.1")]), Err(no_records()));
        assert!(
            matches!(&outcome, LookupOutcome::Addresses(found) if found.len() == 1),
            "A only: expected one address, got {outcome:?}"
        );

        let outcome = merge_lookups(Err(no_records()), Ok(vec![v6("2001:db8::1")]));
        assert!(
            matches!(&outcome, LookupOutcome::Addresses(found) if found.len() == 1),
            "AAAA only: expected one address, got {outcome:?}"
        );
    }

    #[test]
    fn merge_failure_beside_addresses() {
        let outcome = merge_lookups(Ok(vec![v4("192.0.2.1")]), Err(NetError::Timeout));
        assert!(
            matches!(&outcome, LookupOutcome::Addresses(found) if found.len() == 1),
            "AAAA timeout: expected the A address, got {outcome:?}"
        );
    }

    #[test]
    fn merge_no_records_anywhere() {
        let outcome = merge_lookups(Err(no_records()), Err(no_records()));
        assert!(
            matches!(outcome, LookupOutcome::NoAddresses),
            "expected no addresses, got {outcome:?}"
        );

        let outcome = merge_lookups(Ok(Vec::new()), Ok(Vec::new()));
        assert!(
            matches!(outcome, LookupOutcome::NoAddresses),
            "empty answers: expected no addresses, got {outcome:?}"
        );
    }

    #[test]
    fn merge_failure_without_addresses() {
        let outcome = merge_lookups(Err(no_records()), Err(NetError::Timeout));
        assert!(
            matches!(outcome, LookupOutcome::Failed(NetError::Timeout)),
            "AAAA timeout, no A: expected a failure, got {outcome:?}"
        );

        let outcome = merge_lookups(Err(NetError::Timeout), Err(no_records()));
        assert!(
            matches!(outcome, LookupOutcome::Failed(NetError::Timeout)),
            "A timeout, no AAAA: expected a failure, got {outcome:?}"
        );
    }

    #[test]
    fn guard_rejects_host_with_one_blocked_address() {
        let guard = AddressGuard::new(AddressPolicy::PublicOnly);
        let url = Url::parse("http://mixed.example/").expect("test URL is valid");
        let addresses = vec![
            IpAddr::V4(v4("8.8.8.8")),
            IpAddr::V4(v4("10.0.0.1")),
            IpAddr::V6(v6("2001:4860:4860::8888")),
        ];

        let result = guard_all(&guard, &url, "mixed.example", addresses);
        match result {
            Err(FetchError::BlockedAddress { host, blocked, .. }) => {
                assert_eq!(host, "mixed.example");
                assert_eq!(blocked.address, IpAddr::V4(v4("10.0.0.1")));
                assert_eq!(blocked.range, "private (RFC 1918)");
            }
            other => panic!("expected a blocked address, got {other:?}"),
        }
    }

    #[test]
    fn guard_keeps_all_public_addresses() {
        let guard = AddressGuard::new(AddressPolicy::PublicOnly);
        let url = Url::parse("http://public.example/").expect("test URL is valid");
        let addresses = vec![
            IpAddr::V4(v4("8.8.8.8")),
            IpAddr::V6(v6("2001:4860:4860::8888")),
        ];

        let result = guard_all(&guard, &url, "public.example", addresses.clone());
        assert_eq!(
            result.expect("public addresses must pass"),
            addresses,
            "every public address must be kept, in order"
        );
    }
}
