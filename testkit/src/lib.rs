//! Local fixtures for the Open MPIC tests: real servers on loopback, started in-process
//! or as child processes, that the tests of every other crate point their clients at.
//!
//! | Module | Fixture | Used for |
//! |---|---|---|
//! | [`alpn`] | [`alpn::AlpnServer`], a TLS server that offers `acme-tls/1` and records SNI | tls-alpn-01 checks |
//! | [`dns`] | [`dns::TestDns`], an authoritative DNS server over UDP and TCP | CAA and DNS-based DCV checks |
//! | [`http`] | [`http::ChallengeServer`], an HTTP/1.1 server with a reply per path, plain or over TLS | HTTP-based DCV checks, redirects, limits, timeouts and certificate checks |
//! | [`nats`] | [`nats::NatsServer`], a `nats-server` child process killed on drop | transport tests, hub and leaf-node setups |
//! | [`silent`] | [`silent::SilentServer`], UDP and TCP that never answer | resolver and client timeouts |
//! | [`tls`] | [`tls::TestCa`], [`tls::ServerCertificate`] and [`tls::AcmeTlsAlpnCertificate`], generated at test time | the certificates the TLS fixtures present |
//!
//! Fixtures panic when they cannot start, with a message that names the cause, because
//! they run only inside tests and a panic is how a test reports a broken setup. No
//! fixture skips a test silently.
//!
//! What this crate does not do: it never sends traffic beyond loopback (`127.0.0.0/8`
//! and `::1`), it does not mock our own code, and it keeps no key material on disk.
//! It is a dev-dependency only.

#![warn(missing_docs)]

pub mod alpn;
pub mod dns;
pub mod http;
pub mod nats;
pub mod silent;
pub mod tls;

mod loopback;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poisoning: a panicking test thread must not hide the recorded
/// queries and requests from the assertions that report them.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
