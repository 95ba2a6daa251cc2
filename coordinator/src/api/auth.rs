//! API key authentication of the calling CA.
//!
//! With API keys configured ([`ApiKeys`]), every request except `GET /healthz` must present one,
//! either as `x-api-key: <key>` or as `Authorization: Bearer <key>` (RFC 6750 §2.1). When both
//! headers are present, `x-api-key` is the one checked. A request without a valid key gets
//! `401` with `{"error": "unauthorized", "message": ...}` and a `WWW-Authenticate: Bearer`
//! header (RFC 9110 §11.6.1), before routing, so an unauthenticated caller learns nothing
//! about the routes.
//!
//! Keys are stored and compared as SHA-256 digests, and every configured digest is compared
//! in constant time ([`subtle::ConstantTimeEq`]) without an early exit. The time a check takes
//! therefore depends neither on the content nor on the length of the presented or configured
//! keys, only on how many keys are configured.
//!
//! Rejections are logged at `info` with the caller's address, at most once per
//! [`REJECTION_LOG_INTERVAL`] with the number of rejections left out since the last line, so a
//! scanner cannot flood the log. Keys are never logged. A rejected request is not a validation
//! request, so it has no audit event.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::api::AppState;
use crate::api::error::{ApiError, Credentials};

/// The API keys a caller may present, kept as SHA-256 digests. Never empty.
#[derive(Clone)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    /// Builds the set from the keys themselves. Returns `None` when `keys` is empty.
    pub fn new<K: AsRef<[u8]>>(keys: impl IntoIterator<Item = K>) -> Option<ApiKeys> {
        let digests: Vec<[u8; 32]> = keys
            .into_iter()
            .map(|key| Sha256::digest(key.as_ref()).into())
            .collect();
        if digests.is_empty() {
            return None;
        }
        Some(ApiKeys { digests })
    }

    /// Returns the number of configured keys, for the startup log.
    pub fn count(&self) -> usize {
        self.digests.len()
    }

    /// Reports whether `presented` is one of the keys, comparing against every key in
    /// constant time.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let matched = self
            .digests
            .iter()
            .fold(Choice::from(0), |matched, digest| {
                matched | digest.ct_eq(&presented)
            });
        matched.into()
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.digests.len())
            .finish_non_exhaustive()
    }
}

/// Counts rejected requests and logs them at most once per [`REJECTION_LOG_INTERVAL`].
#[derive(Debug, Default)]
pub struct RejectionLog {
    state: Mutex<RejectionLogState>,
}

#[derive(Debug, Default)]
struct RejectionLogState {
    last_logged: Option<Instant>,
    /// Rejections since the last log line that were not logged.
    suppressed: u64,
}

impl RejectionLog {
    /// Records one rejection and logs it unless a line was written within the interval.
    fn record(&self, remote_address: Option<SocketAddr>, credentials: Credentials) {
        let now = Instant::now();
        let suppressed = {
            // A panic while the lock was held cannot leave the counters inconsistent.
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let recent = state
                .last_logged
                .is_some_and(|logged| now.duration_since(logged) < REJECTION_LOG_INTERVAL);
            if recent {
                state.suppressed += 1;
                return;
            }
            state.last_logged = Some(now);
            std::mem::take(&mut state.suppressed)
        };
        tracing::info!(
            remote_address = remote_address.map(|address| address.to_string()),
            credentials = credentials.as_str(),
            rejections_not_logged = suppressed,
            "rejected a request without a valid API key"
        );
    }
}

/// Middleware: lets `GET /healthz` and, without configured keys, every request through;
/// otherwise requires a valid API key.
pub(crate) async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(keys) = state.api_keys.as_deref() else {
        return next.run(request).await;
    };
    if request.uri().path() == HEALTH_PATH {
        return next.run(request).await;
    }

    let credentials = match presented_key(request.headers()) {
        None => Credentials::Missing,
        Some(key) if keys.accepts(key.as_bytes()) => return next.run(request).await,
        Some(_) => Credentials::Invalid,
    };
    let remote_address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| *address);
    state.rejections.record(remote_address, credentials);
    ApiError::Unauthorized(credentials).into_response()
}

/// Returns the key the request presents: the `x-api-key` header, else the token of an
/// `Authorization: Bearer` header. A header that is not visible ASCII counts as a key that
/// matches nothing.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(API_KEY_HEADER) {
        return Some(value.to_str().unwrap_or(""));
    }
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().unwrap_or("");
    let (scheme, token) = authorization.trim().split_once(' ')?;
    // RFC 9110 §11.1: the scheme name is case-insensitive.
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The header that carries an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// The path that stays open without a key, for liveness probes.
const HEALTH_PATH: &str = "/healthz";

/// Shortest time between two log lines about rejected requests.
pub const REJECTION_LOG_INTERVAL: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let keys = ApiKeys::new(["first-key-0123456789", "second-key-0123456789"]).unwrap();
        let cases: [(&str, &[u8], bool); 6] = [
            ("first key", b"first-key-0123456789", true),
            ("second key", b"second-key-0123456789", true),
            ("prefix of a key", b"first-key", false),
            ("key with a suffix", b"first-key-0123456789x", false),
            ("other case", b"FIRST-KEY-0123456789", false),
            ("empty", b"", false),
        ];
        for (name, presented, expected) in cases {
            assert_eq!(keys.accepts(presented), expected, "{name}");
        }
        assert_eq!(keys.count(), 2);
    }

    #[test]
    fn empty_key_list_is_no_key_set() {
        assert!(ApiKeys::new(Vec::<String>::new()).is_none());
    }

    #[test]
    fn debug_output_hides_keys() {
        let keys = ApiKeys::new(["secret-key-0123456789"]).unwrap();
        let debug = format!("{keys:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("count: 1"), "{debug}");
    }

    #[test]
    fn rejection_log_counts_lines_left_out() {
        let log = RejectionLog::default();
        for _ in 0..3 {
            log.record(None, Credentials::Invalid);
        }
        let state = log.state.lock().unwrap();
        assert!(state.last_logged.is_some(), "the first rejection is logged");
        assert_eq!(
            state.suppressed, 2,
            "later rejections within the interval are counted"
        );
    }

    #[test]
    fn presented_key_reads_both_headers() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, value.parse().unwrap());
            }
            map
        };
        let cases: [(&str, HeaderMap, Option<&str>); 7] = [
            ("x-api-key", headers(&[("x-api-key", "k1")]), Some("k1")),
            (
                "bearer token",
                headers(&[("authorization", "Bearer k2")]),
                Some("k2"),
            ),
            (
                "bearer in lower case",
                headers(&[("authorization", "bearer k3")]),
                Some("k3"),
            ),
            (
                "x-api-key wins over bearer",
                headers(&[("x-api-key", "k4"), ("authorization", "Bearer k5")]),
                Some("k4"),
            ),
            (
                "basic credentials are no key",
                headers(&[("authorization", "Basic dTpw")]),
                None,
            ),
            (
                "scheme without token",
                headers(&[("authorization", "Bearer")]),
                None,
            ),
            ("no header", HeaderMap::new(), None),
        ];
        for (name, map, expected) in cases {
            assert_eq!(presented_key(&map), expected, "{name}");
        }
    }
}
