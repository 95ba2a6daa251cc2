//! Port and time limits of the check.

use std::time::Duration;

/// The TCP port of the validation connection. RFC 8737 §3: "This connection MUST use TCP port
/// 443."
pub const ACME_TLS_ALPN_PORT: u16 = 443;

/// Default limit for one TCP connection attempt.
///
/// Linux retransmits an unanswered SYN after 1 s and again 2 s later, because its initial
/// retransmission timeout is 1 s (RFC 6298) and doubles each time. So 5 s allows two
/// retransmissions before the check moves on to the next address.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default limit for the TLS handshake once TCP is connected.
///
/// A handshake takes one or two round trips plus the server's signing operation. 10 s leaves
/// room for slow and distant servers, while the check budget still bounds the whole check.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The maximum number of addresses the check tries to connect to.
///
/// Three covers a dual-stack name whose first address family is unreachable from the
/// perspective, with one spare. The check budget still bounds the total time.
pub const MAX_ADDRESSES_TRIED: usize = 3;

/// Port and time limits of the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsAlpnSettings {
    /// TCP port to connect to. Default [`ACME_TLS_ALPN_PORT`] (443). Any other value breaks
    /// RFC 8737 and is only for tests and private deployments.
    pub port: u16,
    /// Limit for one TCP connection attempt. Default [`DEFAULT_CONNECT_TIMEOUT`] (5 s).
    pub connect_timeout: Duration,
    /// Limit for the TLS handshake. Default [`DEFAULT_HANDSHAKE_TIMEOUT`] (10 s).
    pub handshake_timeout: Duration,
    /// Limit for the whole check, DNS lookup included: the worker's
    /// `http_client_timeout_seconds`.
    pub check_timeout: Duration,
}

impl TlsAlpnSettings {
    /// Returns the defaults with `check_timeout` as the budget of the whole check.
    pub fn new(check_timeout: Duration) -> Self {
        Self {
            port: ACME_TLS_ALPN_PORT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            check_timeout,
        }
    }
}
