//! Address guard: decides whether the worker may open a connection to an IP address.
//!
//! Targets, URLs and redirect locations come from certificate applicants. Without this guard an
//! applicant could point a check at the CA's own network (server-side request forgery): a
//! loopback admin port, a private service, or the cloud metadata endpoint `169.254.169.254`.
//! Every HTTP fetch and every TLS-ALPN connection checks each resolved address with the guard
//! before it connects.
//!
//! Under [`AddressPolicy::PublicOnly`] the guard rejects every address that the IANA
//! special-purpose address registries mark as not globally reachable, plus multicast, plus the
//! IPv6 space that IANA has not allocated for global unicast (everything outside `2000::/3`):
//!
//! - RFC 6890, "Special-Purpose IP Address Registries", defines the registries and their
//!   "Globally Reachable" column.
//! - IANA IPv4 Special-Purpose Address Registry:
//!   <https://www.iana.org/assignments/iana-ipv4-special-registry/>
//! - IANA IPv6 Special-Purpose Address Registry:
//!   <https://www.iana.org/assignments/iana-ipv6-special-registry/>
//! - Multicast (`224.0.0.0/4`, RFC 5771; `ff00::/8`, RFC 4291 §2.7) and the unallocated IPv6
//!   space come from the IANA IPv4 and IPv6 address space registries.
//!
//! IPv6 addresses that carry an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4,
//! Teredo) reach that IPv4 host through a translator or tunnel, so the guard judges the embedded
//! IPv4 address. A NAT64 address of a public IPv4 address passes, and `::ffff:127.0.0.1` does not.
//!
//! Deliberate departures from the registry, all in the rejecting direction:
//!
//! - `192.0.0.0/24` and `2001::/23` (IETF protocol assignments) are rejected whole, including
//!   the few anycast, AMT and AS112 sub-blocks the registry marks as globally reachable. No
//!   DCV target is served from them, and one entry per block is easier to audit.
//! - ORCHIDv2 (`2001:20::/28`) is rejected although the registry marks it reachable: RFC 7343
//!   §2 defines ORCHIDs as identifiers that are not routable at the IP layer.
//! - In the local-use NAT64 prefix `64:ff9b:1::/48` (RFC 8215) the position of the IPv4 address
//!   depends on the prefix length the local operator chose. The guard judges the embedded
//!   address only in the `/96` layout (bits 48 to 95 zero) and rejects the rest of the block.
//!
//! [`AddressPolicy::AllowNonPublic`] is for private deployments and tests that talk to servers
//! on loopback. It still rejects the unspecified address, multicast and the limited broadcast
//! address, because none of them names a single host to connect to (Linux connects to the
//! local host when asked for `0.0.0.0`).
//!
//! The guard only classifies addresses. It does not resolve names, and it does not know which
//! ports a check may use: the callers pin the connection to the addresses the guard accepted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Decides, under one [`AddressPolicy`], whether the worker may connect to an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressGuard {
    policy: AddressPolicy,
}

/// The set of destination addresses a worker may connect to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AddressPolicy {
    /// Only globally reachable unicast addresses. The default, and the only safe setting for a
    /// perspective that checks targets named by certificate applicants.
    #[default]
    PublicOnly,
    /// Any unicast address, including loopback and private ranges. For private deployments
    /// whose targets live on an internal network, and for tests against loopback servers.
    AllowNonPublic,
}

/// An address the guard rejected, with the name of the range it falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "address {address} is not allowed: it is in the {range} range{}",
    embedded_ipv4_note(*.address)
)]
pub struct BlockedAddress {
    /// The address that was checked, as given to [`AddressGuard::check`].
    pub address: IpAddr,
    /// The special-purpose range that contains the address, e.g. `"loopback"` or
    /// `"private (RFC 1918)"`. For an IPv6 address that embeds an IPv4 address this names the
    /// embedding form, and the error message also names the range of the embedded address.
    pub range: &'static str,
}

impl AddressGuard {
    /// Creates a guard that applies `policy`.
    pub fn new(policy: AddressPolicy) -> Self {
        Self { policy }
    }

    /// Returns the policy this guard applies.
    pub fn policy(&self) -> AddressPolicy {
        self.policy
    }

    /// Checks whether the worker may connect to `addr`.
    ///
    /// # Errors
    ///
    /// Returns [`BlockedAddress`] naming the range when the policy forbids the address.
    pub fn check(&self, addr: IpAddr) -> Result<(), BlockedAddress> {
        let blocked_range = match self.policy {
            AddressPolicy::PublicOnly => non_public_range(addr),
            AddressPolicy::AllowNonPublic => non_unicast_range(addr),
        };

        match blocked_range {
            Some(range) => Err(BlockedAddress {
                address: addr,
                range,
            }),
            None => Ok(()),
        }
    }
}

/// Returns the name of the range that makes `addr` not globally reachable, or `None` for a
/// public unicast address.
fn non_public_range(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => ipv4_non_public_range(v4),
        IpAddr::V6(v6) => ipv6_non_public_range(v6),
    }
}

fn ipv4_non_public_range(addr: Ipv4Addr) -> Option<&'static str> {
    let bits = addr.to_bits();
    IPV4_NON_PUBLIC
        .iter()
        .find(|range| range.contains(bits))
        .map(|range| range.name)
}

fn ipv6_non_public_range(addr: Ipv6Addr) -> Option<&'static str> {
    let bits = addr.to_bits();
    let Some(range) = IPV6_SPECIAL.iter().find(|range| range.contains(bits)) else {
        return (!GLOBAL_UNICAST.contains(bits)).then_some(GLOBAL_UNICAST.name);
    };

    match range.kind {
        Ipv6RangeKind::NonPublic => Some(range.name),
        Ipv6RangeKind::EmbedsIpv4(form) => {
            let public = form
                .embedded_ipv4(bits)
                .is_some_and(|embedded| embedded.all_public());
            (!public).then_some(range.name)
        }
    }
}

/// Returns the name of the range when `addr` does not name a single host: unspecified,
/// multicast or limited broadcast. IPv4-mapped forms are judged as their IPv4 address.
fn non_unicast_range(addr: IpAddr) -> Option<&'static str> {
    match addr.to_canonical() {
        IpAddr::V4(v4) if v4.is_unspecified() => Some(UNSPECIFIED),
        IpAddr::V4(v4) if v4.is_multicast() => Some(IPV4_MULTICAST),
        IpAddr::V4(v4) if v4.is_broadcast() => Some(LIMITED_BROADCAST),
        IpAddr::V6(v6) if v6.is_unspecified() => Some(UNSPECIFIED),
        IpAddr::V6(v6) if v6.is_multicast() => Some(IPV6_MULTICAST),
        _ => None,
    }
}

/// Builds the part of the error message that names the embedded IPv4 address and its range.
fn embedded_ipv4_note(address: IpAddr) -> String {
    let IpAddr::V6(v6) = address else {
        return String::new();
    };
    let bits = v6.to_bits();
    let form = IPV6_SPECIAL
        .iter()
        .find(|range| range.contains(bits))
        .and_then(|range| match range.kind {
            Ipv6RangeKind::EmbedsIpv4(form) => Some(form),
            Ipv6RangeKind::NonPublic => None,
        });
    let Some(form) = form else {
        return String::new();
    };

    match form.embedded_ipv4(bits) {
        None => " (no embedded IPv4 address can be located in this layout)".to_owned(),
        Some(embedded) => embedded
            .all()
            .find_map(|v4| ipv4_non_public_range(v4).map(|range| (v4, range)))
            .map(|(v4, range)| format!(" (embedded IPv4 address {v4} is {range})"))
            .unwrap_or_default(),
    }
}

/// An IPv4 prefix from the special-purpose tables.
struct Ipv4Range {
    network: u32,
    prefix_len: u32,
    name: &'static str,
}

impl Ipv4Range {
    const fn new(network: Ipv4Addr, prefix_len: u32, name: &'static str) -> Self {
        Self {
            network: network.to_bits(),
            prefix_len,
            name,
        }
    }

    fn contains(&self, bits: u32) -> bool {
        let mask = u32::MAX.checked_shl(32 - self.prefix_len).unwrap_or(0);
        bits & mask == self.network
    }
}

/// An IPv6 prefix from the special-purpose tables.
struct Ipv6Range {
    network: u128,
    prefix_len: u32,
    name: &'static str,
    kind: Ipv6RangeKind,
}

#[derive(Clone, Copy)]
enum Ipv6RangeKind {
    /// Every address in the range is rejected.
    NonPublic,
    /// The range carries an IPv4 address, which decides.
    EmbedsIpv4(Embedding),
}

impl Ipv6Range {
    const fn new(network: Ipv6Addr, prefix_len: u32, name: &'static str) -> Self {
        Self {
            network: network.to_bits(),
            prefix_len,
            name,
            kind: Ipv6RangeKind::NonPublic,
        }
    }

    const fn embedding(
        network: Ipv6Addr,
        prefix_len: u32,
        name: &'static str,
        form: Embedding,
    ) -> Self {
        Self {
            network: network.to_bits(),
            prefix_len,
            name,
            kind: Ipv6RangeKind::EmbedsIpv4(form),
        }
    }

    fn contains(&self, bits: u128) -> bool {
        let mask = u128::MAX.checked_shl(128 - self.prefix_len).unwrap_or(0);
        bits & mask == self.network
    }
}

/// The position of the IPv4 address inside an IPv6 address form.
#[derive(Clone, Copy)]
enum Embedding {
    /// The last 32 bits: IPv4-mapped, IPv4-compatible and NAT64 `/96` (RFC 6052 §2.2).
    Low32,
    /// The local-use NAT64 prefix: the last 32 bits when bits 48 to 95 are zero (the `/96`
    /// layout), otherwise no address can be located.
    LocalUseNat64,
    /// 6to4: bits 16 to 47 (RFC 3056 §2).
    SixToFour,
    /// Teredo: the server in bits 32 to 63, the client in the last 32 bits with every bit
    /// inverted (RFC 4380 §4).
    Teredo,
}

/// The IPv4 addresses that traffic to an IPv6 address reaches.
struct EmbeddedIpv4 {
    destination: Ipv4Addr,
    /// A Teredo client sends its first packets to a peer through the peer's Teredo server
    /// (RFC 4380 §5.2.4), so that address is contacted too.
    teredo_server: Option<Ipv4Addr>,
}

impl EmbeddedIpv4 {
    fn all(&self) -> impl Iterator<Item = Ipv4Addr> {
        std::iter::once(self.destination).chain(self.teredo_server)
    }

    fn all_public(&self) -> bool {
        self.all().all(|v4| ipv4_non_public_range(v4).is_none())
    }
}

impl Embedding {
    fn embedded_ipv4(self, bits: u128) -> Option<EmbeddedIpv4> {
        // Truncating casts pick the low 32 bits on purpose: each shift first moves the wanted
        // field into the low bits.
        let low32 = Ipv4Addr::from_bits(bits as u32);
        match self {
            Self::Low32 => Some(EmbeddedIpv4 {
                destination: low32,
                teredo_server: None,
            }),
            Self::LocalUseNat64 => {
                let middle_is_zero = (bits >> 32) & ((1u128 << 48) - 1) == 0;
                middle_is_zero.then_some(EmbeddedIpv4 {
                    destination: low32,
                    teredo_server: None,
                })
            }
            Self::SixToFour => Some(EmbeddedIpv4 {
                destination: Ipv4Addr::from_bits((bits >> 80) as u32),
                teredo_server: None,
            }),
            Self::Teredo => Some(EmbeddedIpv4 {
                destination: Ipv4Addr::from_bits(!(bits as u32)),
                teredo_server: Some(Ipv4Addr::from_bits((bits >> 64) as u32)),
            }),
        }
    }
}

const UNSPECIFIED: &str = "unspecified";
const IPV4_MULTICAST: &str = "multicast (RFC 5771)";
const IPV6_MULTICAST: &str = "multicast (RFC 4291)";
const LIMITED_BROADCAST: &str = "limited broadcast (RFC 919)";
const PRIVATE: &str = "private (RFC 1918)";
const IPV4_DOCUMENTATION: &str = "documentation (RFC 5737)";

/// IPv4 ranges that are not globally reachable. The first match names the range, so a more
/// specific prefix comes before the prefix that contains it.
const IPV4_NON_PUBLIC: &[Ipv4Range] = &[
    Ipv4Range::new(Ipv4Addr::new(0, 0, 0, 0), 32, UNSPECIFIED),
    Ipv4Range::new(Ipv4Addr::new(0, 0, 0, 0), 8, "this network (RFC 791)"),
    Ipv4Range::new(Ipv4Addr::new(10, 0, 0, 0), 8, PRIVATE),
    Ipv4Range::new(
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared address space (RFC 6598)",
    ),
    Ipv4Range::new(Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    Ipv4Range::new(Ipv4Addr::new(169, 254, 0, 0), 16, "link-local (RFC 3927)"),
    Ipv4Range::new(Ipv4Addr::new(172, 16, 0, 0), 12, PRIVATE),
    Ipv4Range::new(
        Ipv4Addr::new(192, 0, 0, 0),
        24,
        "IETF protocol assignments (RFC 6890)",
    ),
    Ipv4Range::new(Ipv4Addr::new(192, 0, 2, 0), 24, IPV4_DOCUMENTATION),
    Ipv4Range::new(
        Ipv4Addr::new(192, 88, 99, 0),
        24,
        "deprecated 6to4 relay anycast (RFC 7526)",
    ),
    Ipv4Range::new(Ipv4Addr::new(192, 168, 0, 0), 16, PRIVATE),
    Ipv4Range::new(Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking (RFC 2544)"),
    Ipv4Range::new(Ipv4Addr::new(198, 51, 100, 0), 24, IPV4_DOCUMENTATION),
    Ipv4Range::new(Ipv4Addr::new(203, 0, 113, 0), 24, IPV4_DOCUMENTATION),
    Ipv4Range::new(Ipv4Addr::new(224, 0, 0, 0), 4, IPV4_MULTICAST),
    Ipv4Range::new(Ipv4Addr::new(255, 255, 255, 255), 32, LIMITED_BROADCAST),
    Ipv4Range::new(Ipv4Addr::new(240, 0, 0, 0), 4, "reserved (RFC 1112)"),
];

/// IPv6 ranges that are rejected or carry an IPv4 address. The first match decides, so a more
/// specific prefix comes before the prefix that contains it.
const IPV6_SPECIAL: &[Ipv6Range] = &[
    Ipv6Range::new(Ipv6Addr::UNSPECIFIED, 128, UNSPECIFIED),
    Ipv6Range::new(Ipv6Addr::LOCALHOST, 128, "loopback"),
    Ipv6Range::embedding(
        Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0),
        96,
        "IPv4-mapped (RFC 4291)",
        Embedding::Low32,
    ),
    Ipv6Range::embedding(
        Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0),
        96,
        "IPv4-compatible, deprecated (RFC 4291)",
        Embedding::Low32,
    ),
    Ipv6Range::embedding(
        Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0),
        96,
        "NAT64 well-known prefix (RFC 6052)",
        Embedding::Low32,
    ),
    Ipv6Range::embedding(
        Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0),
        48,
        "NAT64 local-use prefix (RFC 8215)",
        Embedding::LocalUseNat64,
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0),
        64,
        "discard-only (RFC 6666)",
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0x100, 0, 0, 1, 0, 0, 0, 0),
        64,
        "dummy prefix (RFC 9780)",
    ),
    Ipv6Range::embedding(
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        32,
        "Teredo (RFC 4380)",
        Embedding::Teredo,
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0),
        48,
        "benchmarking (RFC 5180)",
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0x2001, 0x10, 0, 0, 0, 0, 0, 0),
        28,
        "ORCHID, deprecated (RFC 4843)",
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0x2001, 0x20, 0, 0, 0, 0, 0, 0),
        28,
        "ORCHIDv2 (RFC 7343)",
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignments (RFC 2928)",
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation (RFC 3849)",
    ),
    Ipv6Range::embedding(
        Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
        16,
        "6to4 (RFC 3056)",
        Embedding::SixToFour,
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation (RFC 9637)",
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0),
        16,
        "segment routing SIDs (RFC 9602)",
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
        7,
        "unique local (RFC 4193)",
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
        10,
        "link-local (RFC 4291)",
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0),
        10,
        "site-local, deprecated (RFC 3879)",
    ),
    Ipv6Range::new(
        Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0),
        8,
        IPV6_MULTICAST,
    ),
];

/// The only IPv6 block IANA has allocated for global unicast (IANA IPv6 Address Space
/// registry). Addresses outside it and outside [`IPV6_SPECIAL`] are reserved by the IETF.
const GLOBAL_UNICAST: Ipv6Range = Ipv6Range::new(
    Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0),
    3,
    "reserved by the IETF, outside global unicast 2000::/3",
);

#[cfg(test)]
mod tests {
    use super::*;

    /// One table row: a named address and the range the guard must report, or `None` when the
    /// address must pass.
    struct Case {
        name: &'static str,
        address: &'static str,
        expected: Option<&'static str>,
    }

    const fn blocked(name: &'static str, address: &'static str, range: &'static str) -> Case {
        Case {
            name,
            address,
            expected: Some(range),
        }
    }

    const fn public(name: &'static str, address: &'static str) -> Case {
        Case {
            name,
            address,
            expected: None,
        }
    }

    const TEREDO: &str = "Teredo (RFC 4380)";
    const SIX_TO_FOUR: &str = "6to4 (RFC 3056)";
    const MAPPED: &str = "IPv4-mapped (RFC 4291)";
    const COMPATIBLE: &str = "IPv4-compatible, deprecated (RFC 4291)";
    const NAT64: &str = "NAT64 well-known prefix (RFC 6052)";
    const NAT64_LOCAL: &str = "NAT64 local-use prefix (RFC 8215)";
    const IETF_V4: &str = "IETF protocol assignments (RFC 6890)";
    const IETF_V6: &str = "IETF protocol assignments (RFC 2928)";
    const RESERVED_V6: &str = "reserved by the IETF, outside global unicast 2000::/3";

    const IPV4_CASES: &[Case] = &[
        blocked("unspecified 0.0.0.0", "0.0.0.0", UNSPECIFIED),
        blocked(
            "this network first after 0.0.0.0",
            "0.0.0.1",
            "this network (RFC 791)",
        ),
        blocked(
            "this network last",
            "0.255.255.255",
            "this network (RFC 791)",
        ),
        public("public after this network", "1.0.0.0"),
        public("public before 10/8", "9.255.255.255"),
        blocked("private 10/8 first", "10.0.0.0", PRIVATE),
        blocked("private 10.0.0.1", "10.0.0.1", PRIVATE),
        blocked("private 10/8 last", "10.255.255.255", PRIVATE),
        public("public after 10/8", "11.0.0.0"),
        public("public before shared space", "100.63.255.255"),
        blocked(
            "shared space first",
            "100.64.0.0",
            "shared address space (RFC 6598)",
        ),
        blocked(
            "shared space last",
            "100.127.255.255",
            "shared address space (RFC 6598)",
        ),
        public("public after shared space", "100.128.0.0"),
        public("public before loopback", "126.255.255.255"),
        blocked("loopback first", "127.0.0.0", "loopback"),
        blocked("loopback 127.0.0.1", "127.0.0.1", "loopback"),
        blocked("loopback last", "127.255.255.255", "loopback"),
        public("public after loopback", "128.0.0.0"),
        public("public before link-local", "169.253.255.255"),
        blocked("link-local first", "169.254.0.0", "link-local (RFC 3927)"),
        blocked(
            "metadata endpoint",
            "169.254.169.254",
            "link-local (RFC 3927)",
        ),
        blocked(
            "link-local last",
            "169.254.255.255",
            "link-local (RFC 3927)",
        ),
        public("public after link-local", "169.255.0.0"),
        public("public before 172.16/12", "172.15.255.255"),
        blocked("private 172.16/12 first", "172.16.0.0", PRIVATE),
        blocked("private 172.16/12 last", "172.31.255.255", PRIVATE),
        public("public after 172.16/12", "172.32.0.0"),
        public("public before 192.0.0/24", "191.255.255.255"),
        blocked("IETF assignments first", "192.0.0.0", IETF_V4),
        blocked("IETF assignments PCP anycast", "192.0.0.9", IETF_V4),
        blocked("IETF assignments last", "192.0.0.255", IETF_V4),
        public("public between 192.0.0/24 and TEST-NET-1", "192.0.1.0"),
        blocked("TEST-NET-1 first", "192.0.2.0", IPV4_DOCUMENTATION),
        blocked("TEST-NET-1 last", "192.0.2.255", IPV4_DOCUMENTATION),
        public("public after TEST-NET-1", "192.0.3.0"),
        public("public before 6to4 relay", "192.88.98.255"),
        blocked(
            "6to4 relay first",
            "192.88.99.0",
            "deprecated 6to4 relay anycast (RFC 7526)",
        ),
        blocked(
            "6to4 relay last",
            "192.88.99.255",
            "deprecated 6to4 relay anycast (RFC 7526)",
        ),
        public("public after 6to4 relay", "192.88.100.0"),
        public("public before 192.168/16", "192.167.255.255"),
        blocked("private 192.168/16 first", "192.168.0.0", PRIVATE),
        blocked("private 192.168/16 last", "192.168.255.255", PRIVATE),
        public("public after 192.168/16", "192.169.0.0"),
        public("public before benchmarking", "198.17.255.255"),
        blocked(
            "benchmarking first",
            "198.18.0.0",
            "benchmarking (RFC 2544)",
        ),
        blocked(
            "benchmarking last",
            "198.19.255.255",
            "benchmarking (RFC 2544)",
        ),
        public("public after benchmarking", "198.20.0.0"),
        public("public before TEST-NET-2", "198.51.99.255"),
        blocked("TEST-NET-2 first", "198.51.100.0", IPV4_DOCUMENTATION),
        blocked("TEST-NET-2 last", "198.51.100.255", IPV4_DOCUMENTATION),
        public("public after TEST-NET-2", "198.51.101.0"),
        public("public before TEST-NET-3", "203.0.112.255"),
        blocked("TEST-NET-3 first", "203.0.113.0", IPV4_DOCUMENTATION),
        blocked("TEST-NET-3 last", "203.0.113.255", IPV4_DOCUMENTATION),
        public("public after TEST-NET-3", "203.0.114.0"),
        public("public before multicast", "223.255.255.255"),
        blocked("multicast first", "224.0.0.0", IPV4_MULTICAST),
        blocked("multicast last", "239.255.255.255", IPV4_MULTICAST),
        blocked("reserved first", "240.0.0.0", "reserved (RFC 1112)"),
        blocked(
            "reserved last before broadcast",
            "255.255.255.254",
            "reserved (RFC 1112)",
        ),
        blocked("limited broadcast", "255.255.255.255", LIMITED_BROADCAST),
        public("public AS112-v4, reachable per registry", "192.31.196.1"),
        public("public AMT, reachable per registry", "192.52.193.1"),
        public("public resolver address", "8.8.8.8"),
    ];

    const IPV6_CASES: &[Case] = &[
        blocked("unspecified ::", "::", UNSPECIFIED),
        blocked("loopback ::1", "::1", "loopback"),
        // IPv4-compatible (::/96) covers everything from ::2 to ::ffff:ffff.
        blocked("compatible embedding 0.0.0.2", "::2", COMPATIBLE),
        blocked("compatible embedding loopback", "::127.0.0.1", COMPATIBLE),
        blocked("compatible embedding private", "::10.0.0.1", COMPATIBLE),
        public("compatible embedding public", "::8.8.8.8"),
        blocked(
            "compatible last, embedding broadcast",
            "::255.255.255.255",
            COMPATIBLE,
        ),
        blocked("reserved after compatible", "::1:0:0", RESERVED_V6),
        blocked("reserved before mapped", "::fffe:ffff:ffff", RESERVED_V6),
        blocked("mapped first, embedding 0.0.0.0", "::ffff:0.0.0.0", MAPPED),
        blocked("mapped loopback", "::ffff:127.0.0.1", MAPPED),
        blocked("mapped metadata endpoint", "::ffff:169.254.169.254", MAPPED),
        blocked("mapped private", "::ffff:192.168.1.1", MAPPED),
        public("mapped public", "::ffff:8.8.8.8"),
        blocked(
            "mapped last, embedding broadcast",
            "::ffff:255.255.255.255",
            MAPPED,
        ),
        blocked("reserved after mapped", "::1:0:0:0", RESERVED_V6),
        blocked(
            "reserved before NAT64",
            "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff",
            RESERVED_V6,
        ),
        blocked("NAT64 first, embedding 0.0.0.0", "64:ff9b::", NAT64),
        blocked("NAT64 loopback", "64:ff9b::127.0.0.1", NAT64),
        blocked("NAT64 private", "64:ff9b::10.0.0.1", NAT64),
        public("NAT64 public", "64:ff9b::8.8.8.8"),
        blocked(
            "NAT64 last, embedding broadcast",
            "64:ff9b::255.255.255.255",
            NAT64,
        ),
        blocked("reserved after NAT64", "64:ff9b::1:0:0", RESERVED_V6),
        blocked("NAT64 local first", "64:ff9b:1::", NAT64_LOCAL),
        public("NAT64 local /96 public", "64:ff9b:1::8.8.8.8"),
        blocked(
            "NAT64 local /96 private",
            "64:ff9b:1::172.16.0.1",
            NAT64_LOCAL,
        ),
        blocked(
            "NAT64 local other layout",
            "64:ff9b:1:808:800::",
            NAT64_LOCAL,
        ),
        blocked(
            "NAT64 local last",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
            NAT64_LOCAL,
        ),
        blocked("reserved after NAT64 local", "64:ff9b:2::", RESERVED_V6),
        blocked("discard-only first", "100::", "discard-only (RFC 6666)"),
        blocked(
            "discard-only last",
            "100::ffff:ffff:ffff:ffff",
            "discard-only (RFC 6666)",
        ),
        blocked(
            "dummy prefix first",
            "100:0:0:1::",
            "dummy prefix (RFC 9780)",
        ),
        blocked(
            "dummy prefix last",
            "100:0:0:1:ffff:ffff:ffff:ffff",
            "dummy prefix (RFC 9780)",
        ),
        blocked("reserved after dummy prefix", "100:0:0:2::", RESERVED_V6),
        blocked(
            "reserved before 2000::/3",
            "1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            RESERVED_V6,
        ),
        public("global unicast first", "2000::"),
        public(
            "public before IETF assignments",
            "2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        // Teredo: server 65.54.227.120, flags 0x8000, obfuscated port 40000, then the obfuscated
        // client (RFC 4380 §4 layout). Client 192.0.2.45 is 3fff:fdd2, 8.8.8.8 is f7f7:f7f7.
        blocked("Teredo first", "2001::", TEREDO),
        public(
            "Teredo public server and client",
            "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        ),
        blocked(
            "Teredo client documentation",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            TEREDO,
        ),
        blocked(
            "Teredo client loopback",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            TEREDO,
        ),
        blocked(
            "Teredo server private, client public",
            "2001:0:a00:1:8000:63bf:f7f7:f7f7",
            TEREDO,
        ),
        blocked(
            "Teredo last",
            "2001:0:ffff:ffff:ffff:ffff:ffff:ffff",
            TEREDO,
        ),
        blocked("IETF assignments after Teredo", "2001:1::1", IETF_V6),
        blocked("benchmarking first", "2001:2::", "benchmarking (RFC 5180)"),
        blocked(
            "benchmarking last",
            "2001:2:0:ffff:ffff:ffff:ffff:ffff",
            "benchmarking (RFC 5180)",
        ),
        blocked("IETF assignments after benchmarking", "2001:2:1::", IETF_V6),
        blocked(
            "IETF assignments before ORCHID",
            "2001:f:ffff:ffff:ffff:ffff:ffff:ffff",
            IETF_V6,
        ),
        blocked("ORCHID first", "2001:10::", "ORCHID, deprecated (RFC 4843)"),
        blocked(
            "ORCHID last",
            "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff",
            "ORCHID, deprecated (RFC 4843)",
        ),
        blocked("ORCHIDv2 first", "2001:20::", "ORCHIDv2 (RFC 7343)"),
        blocked(
            "ORCHIDv2 last",
            "2001:2f:ffff:ffff:ffff:ffff:ffff:ffff",
            "ORCHIDv2 (RFC 7343)",
        ),
        blocked("IETF assignments after ORCHIDv2", "2001:30::", IETF_V6),
        blocked(
            "IETF assignments last",
            "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff",
            IETF_V6,
        ),
        public("public after IETF assignments", "2001:200::"),
        public(
            "public before documentation",
            "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        blocked(
            "documentation first",
            "2001:db8::",
            "documentation (RFC 3849)",
        ),
        blocked(
            "documentation last",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "documentation (RFC 3849)",
        ),
        public("public after documentation", "2001:db9::"),
        public(
            "public before 6to4",
            "2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        blocked("6to4 first, embedding 0.0.0.0", "2002::", SIX_TO_FOUR),
        public("6to4 public", "2002:808:808::1"),
        blocked("6to4 private", "2002:a00:1::1", SIX_TO_FOUR),
        blocked("6to4 loopback", "2002:7f00:1::1", SIX_TO_FOUR),
        blocked("6to4 metadata endpoint", "2002:a9fe:a9fe::1", SIX_TO_FOUR),
        blocked(
            "6to4 last, embedding broadcast",
            "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            SIX_TO_FOUR,
        ),
        public("public after 6to4", "2003::"),
        public("public resolver address", "2001:4860:4860::8888"),
        public(
            "public before documentation 3fff::/20",
            "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        blocked(
            "documentation 3fff first",
            "3fff::",
            "documentation (RFC 9637)",
        ),
        blocked(
            "documentation 3fff last",
            "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
            "documentation (RFC 9637)",
        ),
        public("public after documentation 3fff::/20", "3fff:1000::"),
        public(
            "global unicast last",
            "3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        blocked("reserved after 2000::/3", "4000::", RESERVED_V6),
        blocked(
            "segment routing first",
            "5f00::",
            "segment routing SIDs (RFC 9602)",
        ),
        blocked(
            "segment routing last",
            "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "segment routing SIDs (RFC 9602)",
        ),
        blocked(
            "reserved before unique local",
            "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            RESERVED_V6,
        ),
        blocked("unique local first", "fc00::", "unique local (RFC 4193)"),
        blocked("unique local fc00::1", "fc00::1", "unique local (RFC 4193)"),
        blocked(
            "unique local last",
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "unique local (RFC 4193)",
        ),
        blocked(
            "reserved before link-local",
            "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            RESERVED_V6,
        ),
        blocked("link-local first", "fe80::", "link-local (RFC 4291)"),
        blocked(
            "link-local last",
            "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "link-local (RFC 4291)",
        ),
        blocked(
            "site-local first",
            "fec0::",
            "site-local, deprecated (RFC 3879)",
        ),
        blocked(
            "site-local last",
            "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "site-local, deprecated (RFC 3879)",
        ),
        blocked("multicast first", "ff00::", IPV6_MULTICAST),
        blocked(
            "multicast last",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            IPV6_MULTICAST,
        ),
    ];

    fn assert_cases(cases: &[Case]) {
        let guard = AddressGuard::new(AddressPolicy::PublicOnly);
        for case in cases {
            let address: IpAddr = case.address.parse().unwrap_or_else(|error| {
                panic!(
                    "{}: test address {} is invalid: {error}",
                    case.name, case.address
                )
            });
            let verdict = guard.check(address);
            match case.expected {
                None => assert_eq!(verdict, Ok(()), "{}: expected {address} to pass", case.name),
                Some(range) => assert_eq!(
                    verdict,
                    Err(BlockedAddress { address, range }),
                    "{}: expected {address} to be rejected as {range}",
                    case.name
                ),
            }
        }
    }

    #[test]
    fn public_only_ipv4_ranges() {
        assert_cases(IPV4_CASES);
    }

    #[test]
    fn public_only_ipv6_ranges() {
        assert_cases(IPV6_CASES);
    }

    #[test]
    fn default_policy_is_public_only() {
        assert_eq!(AddressPolicy::default(), AddressPolicy::PublicOnly);
    }

    #[test]
    fn allow_non_public_accepts_internal_unicast() {
        let guard = AddressGuard::new(AddressPolicy::AllowNonPublic);
        for address in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "169.254.169.254",
            "fc00::1",
            "8.8.8.8",
        ] {
            let parsed: IpAddr = address.parse().expect("test address is valid");
            assert_eq!(guard.check(parsed), Ok(()), "expected {address} to pass");
        }
    }

    #[test]
    fn allow_non_public_rejects_non_unicast() {
        let guard = AddressGuard::new(AddressPolicy::AllowNonPublic);
        let cases = [
            ("0.0.0.0", UNSPECIFIED),
            ("::", UNSPECIFIED),
            ("::ffff:0.0.0.0", UNSPECIFIED),
            ("224.0.0.1", IPV4_MULTICAST),
            ("ff02::1", IPV6_MULTICAST),
            ("255.255.255.255", LIMITED_BROADCAST),
        ];
        for (address, range) in cases {
            let parsed: IpAddr = address.parse().expect("test address is valid");
            assert_eq!(
                guard.check(parsed),
                Err(BlockedAddress {
                    address: parsed,
                    range
                }),
                "expected {address} to be rejected as {range}"
            );
        }
    }

    #[test]
    fn error_message_names_address_and_range() {
        let guard = AddressGuard::new(AddressPolicy::PublicOnly);
        let error = guard
            .check("10.0.0.1".parse().expect("test address is valid"))
            .expect_err("private address must be rejected");
        assert_eq!(
            error.to_string(),
            "address 10.0.0.1 is not allowed: it is in the private (RFC 1918) range"
        );
    }

    #[test]
    fn error_message_names_embedded_address() {
        let guard = AddressGuard::new(AddressPolicy::PublicOnly);
        let error = guard
            .check(
                "::ffff:169.254.169.254"
                    .parse()
                    .expect("test address is valid"),
            )
            .expect_err("mapped metadata address must be rejected");
        assert_eq!(
            error.to_string(),
            "address ::ffff:169.254.169.254 is not allowed: it is in the IPv4-mapped (RFC 4291) \
             range (embedded IPv4 address 169.254.169.254 is link-local (RFC 3927))"
        );
    }

    #[test]
    fn error_message_for_unlocatable_embedding() {
        let guard = AddressGuard::new(AddressPolicy::PublicOnly);
        let error = guard
            .check(
                "64:ff9b:1:808:800::"
                    .parse()
                    .expect("test address is valid"),
            )
            .expect_err("local-use NAT64 outside the /96 layout must be rejected");
        assert!(
            error
                .to_string()
                .contains("no embedded IPv4 address can be located"),
            "unexpected message: {error}"
        );
    }
}
