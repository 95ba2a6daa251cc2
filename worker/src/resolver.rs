//! DNS resolver setup for the checks of one perspective.
//!
//! [`ResolverSettings`] is the typed form of the worker's DNS configuration
//! (`dns_timeout_seconds`, `dns_resolution_lifetime_seconds`, the name servers). The worker's
//! configuration loader fills it; this module parses no files.
//! [`ResolverFactory`] turns it into a hickory [`TokioResolver`], a fresh one for every check:
//!
//! - No response cache. A resolver with `cache_size` 0 is built per check, so a record published
//!   a second ago is seen by the next check, and no answer is ever reused by another check or
//!   another perspective (BR §3.2.2.9 requires each perspective to resolve on its own).
//! - Names are always queried as fully-qualified names (with the trailing dot), and the resolver
//!   has no search domains, so `ndots` never appends a suffix.
//! - EDNS(0) is on. A truncated UDP answer is retried over TCP by hickory's name server pool,
//!   which is why every name server gets both a UDP and a TCP connection.
//! - `/etc/hosts` is never consulted.
//!
//! hickory 0.26 bounds each query (`timeout`) and the number of retries (`attempts`) but has no
//! budget for a whole resolution. The caller enforces [`ResolverFactory::resolution_lifetime`]
//! with a Tokio deadline around everything a check resolves.
//!
//! Not handled here: DNSSEC validation (the upstream resolver is trusted to validate), DNS over
//! TLS or HTTPS, and the address guard for HTTP fetches (see `fetch`).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;

/// DNS settings of a worker, as its configuration states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSettings {
    /// The name servers queries go to. Default: the system's name servers from `/etc/resolv.conf`.
    pub name_servers: NameServers,
    /// How long one query may wait for an answer before it is retried
    /// (`dns_timeout_seconds`). Default: [`DEFAULT_QUERY_TIMEOUT`], 2 seconds.
    pub query_timeout: Duration,
    /// How long all the queries of one check may take together, retries included
    /// (`dns_resolution_lifetime_seconds`). Default: [`DEFAULT_RESOLUTION_LIFETIME`], 5 seconds.
    pub resolution_lifetime: Duration,
    /// How many times a failed query is retried: after a timeout, a network error, SERVFAIL,
    /// REFUSED or an undecodable answer. NXDOMAIN and empty answers are never retried.
    /// Default: [`DEFAULT_ATTEMPTS`], 2, so a failing query is sent up to three times.
    /// Must be at least 1, because BR §3.2.2.8 lets a CA treat a CAA lookup failure as
    /// permission only after the lookup has been retried.
    pub attempts: usize,
}

/// The name servers a worker sends its queries to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NameServers {
    /// The `nameserver` lines of `/etc/resolv.conf`, read when the factory is built. Its
    /// `search`, `domain` and `options` lines are ignored.
    #[default]
    System,
    /// Explicit recursive resolvers, each reached over UDP and TCP at the given address and port.
    Configured(Vec<SocketAddr>),
}

/// The reason a resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolverError {
    /// `/etc/resolv.conf` could not be read or parsed.
    #[error("failed to read the system resolver configuration (/etc/resolv.conf): {0}")]
    SystemConfig(#[source] NetError),
    /// No name server is configured, so no query could be sent.
    #[error("no DNS name server is configured")]
    NoNameServers,
    /// A duration setting is zero.
    #[error("{setting} must be greater than zero")]
    ZeroDuration {
        /// The setting's configuration key.
        setting: &'static str,
    },
    /// `attempts` is zero.
    #[error("DNS attempts must be at least 1 so that a failed query is retried")]
    NoRetry,
    /// hickory rejected the configuration.
    #[error("failed to build the DNS resolver: {0}")]
    Build(#[source] NetError),
}

/// Builds a fresh, cache-free resolver for every check from validated settings.
#[derive(Debug, Clone)]
pub struct ResolverFactory {
    config: ResolverConfig,
    options: ResolverOpts,
    resolution_lifetime: Duration,
}

impl ResolverFactory {
    /// Validates the settings and reads the system name servers if the settings ask for them.
    pub fn new(settings: &ResolverSettings) -> Result<Self, ResolverError> {
        if settings.query_timeout.is_zero() {
            return Err(ResolverError::ZeroDuration {
                setting: "dns_timeout_seconds",
            });
        }
        if settings.resolution_lifetime.is_zero() {
            return Err(ResolverError::ZeroDuration {
                setting: "dns_resolution_lifetime_seconds",
            });
        }
        if settings.attempts == 0 {
            return Err(ResolverError::NoRetry);
        }

        let name_servers = match &settings.name_servers {
            NameServers::System => system_name_servers()?,
            NameServers::Configured(addresses) => {
                addresses.iter().copied().map(udp_and_tcp).collect()
            }
        };
        if name_servers.is_empty() {
            return Err(ResolverError::NoNameServers);
        }

        // `ResolverConfig` is non-exhaustive: start from the default (no search domain) and
        // set the name servers.
        let mut config = ResolverConfig::default();
        config.name_servers = name_servers;

        Ok(Self {
            config,
            options: resolver_options(settings),
            resolution_lifetime: settings.resolution_lifetime,
        })
    }

    /// Builds a new resolver with an empty cache and no connection shared with any other.
    pub fn resolver(&self) -> Result<TokioResolver, ResolverError> {
        TokioResolver::builder_with_config(self.config.clone(), TokioRuntimeProvider::default())
            .with_options(self.options.clone())
            .build()
            .map_err(ResolverError::Build)
    }

    /// Returns the budget for all the queries of one check.
    pub fn resolution_lifetime(&self) -> Duration {
        self.resolution_lifetime
    }

    /// Returns the name servers queries go to, for the startup log and the audit record.
    pub fn name_server_addresses(&self) -> Vec<SocketAddr> {
        self.config
            .name_servers
            .iter()
            .flat_map(|server| {
                server
                    .connections
                    .iter()
                    .map(move |connection| SocketAddr::new(server.ip, connection.port))
            })
            .fold(Vec::new(), |mut addresses, address| {
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
                addresses
            })
    }
}

impl Default for ResolverSettings {
    fn default() -> Self {
        Self {
            name_servers: NameServers::System,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
            resolution_lifetime: DEFAULT_RESOLUTION_LIFETIME,
            attempts: DEFAULT_ATTEMPTS,
        }
    }
}

fn system_name_servers() -> Result<Vec<NameServerConfig>, ResolverError> {
    let (system, _ignored_options) =
        hickory_resolver::system_conf::read_system_conf().map_err(ResolverError::SystemConfig)?;
    // Rebuild each entry so that every server has both transports, whatever the system
    // configuration said, because truncated answers must be retried over TCP.
    Ok(system
        .name_servers
        .iter()
        .map(|server| {
            let port = server
                .connections
                .first()
                .map_or(DNS_PORT, |connection| connection.port);
            udp_and_tcp(SocketAddr::new(server.ip, port))
        })
        .fold(Vec::new(), |mut servers: Vec<NameServerConfig>, server| {
            if !servers.iter().any(|known| known.ip == server.ip) {
                servers.push(server);
            }
            servers
        }))
}

fn udp_and_tcp(address: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = address.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = address.port();
    NameServerConfig::new(address.ip(), true, vec![udp, tcp])
}

fn resolver_options(settings: &ResolverSettings) -> ResolverOpts {
    let mut options = ResolverOpts::default();
    options.timeout = settings.query_timeout;
    options.attempts = settings.attempts;
    options.cache_size = 0;
    options.edns0 = true;
    options.ndots = 1;
    options.use_hosts_file = ResolveHosts::Never;
    options.recursion_desired = true;
    // Keep the CNAME records of a chain in the answer, so that the CAA code can check that
    // the records it uses belong to the end of the chain.
    options.preserve_intermediates = true;
    options
}

/// Default for [`ResolverSettings::query_timeout`]: dnspython's per-server timeout, which the
/// Python implementation uses when `dns_timeout_seconds` is unset.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Default for [`ResolverSettings::resolution_lifetime`]: dnspython's resolution lifetime,
/// which the Python implementation uses when `dns_resolution_lifetime_seconds` is unset.
pub const DEFAULT_RESOLUTION_LIFETIME: Duration = Duration::from_secs(5);

/// Default for [`ResolverSettings::attempts`]: hickory's default, one more than the single
/// retry that BR §3.2.2.8 asks for.
pub const DEFAULT_ATTEMPTS: usize = 2;

/// The DNS port (RFC 1035 §4.2), used when `/etc/resolv.conf` gives none.
const DNS_PORT: u16 = 53;

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(addresses: &[&str]) -> ResolverSettings {
        ResolverSettings {
            name_servers: NameServers::Configured(
                addresses.iter().map(|a| a.parse().unwrap()).collect(),
            ),
            ..ResolverSettings::default()
        }
    }

    #[test]
    fn new_rejects_invalid_settings() {
        let cases = [
            (
                "zero query timeout",
                ResolverSettings {
                    query_timeout: Duration::ZERO,
                    ..configured(&["127.0.0.1:53"])
                },
            ),
            (
                "zero resolution lifetime",
                ResolverSettings {
                    resolution_lifetime: Duration::ZERO,
                    ..configured(&["127.0.0.1:53"])
                },
            ),
            (
                "no retry",
                ResolverSettings {
                    attempts: 0,
                    ..configured(&["127.0.0.1:53"])
                },
            ),
            ("no name server", configured(&[])),
        ];
        for (name, settings) in cases {
            assert!(
                ResolverFactory::new(&settings).is_err(),
                "case {name:?}: settings were accepted"
            );
        }
    }

    #[test]
    fn options_disable_cache_and_hosts() {
        let factory = ResolverFactory::new(&configured(&["127.0.0.1:5353"])).unwrap();
        assert_eq!(factory.options.cache_size, 0, "cache must be off");
        assert_eq!(
            factory.options.use_hosts_file,
            ResolveHosts::Never,
            "hosts file used"
        );
        assert!(factory.options.edns0, "EDNS(0) must be on");
        assert_eq!(
            factory.options.timeout, DEFAULT_QUERY_TIMEOUT,
            "query timeout"
        );
        assert_eq!(factory.options.attempts, DEFAULT_ATTEMPTS, "attempts");
        assert!(factory.config.search.is_empty(), "search domains present");
        assert!(factory.config.domain.is_none(), "local domain present");
    }

    #[test]
    fn configured_servers_get_udp_and_tcp_on_their_port() {
        let factory = ResolverFactory::new(&configured(&["127.0.0.1:5353", "[::1]:53"])).unwrap();
        let expected: Vec<SocketAddr> = vec![
            "127.0.0.1:5353".parse().unwrap(),
            "[::1]:53".parse().unwrap(),
        ];
        assert_eq!(factory.name_server_addresses(), expected);
        for server in &factory.config.name_servers {
            let protocols: Vec<_> = server
                .connections
                .iter()
                .map(|connection| connection.protocol.to_protocol().to_string())
                .collect();
            assert_eq!(protocols, ["udp", "tcp"], "server {}", server.ip);
        }
    }
}
