//! Local fixtures for the Open MPIC tests: real servers on loopback, started in-process
//! or as child processes, that the tests of every other crate point their clients at.
//!
//! | Module | Fixture | Used for |
//! |---|---|---|
//! | [`dns`] | [`dns::TestDns`], an authoritative DNS server over UDP and TCP | CAA and DNS-based DCV checks |
//! | [`http`] | [`http::ChallengeServer`], an HTTP/1.1 server with a reply per path | HTTP-based DCV checks, redirects, limits and timeouts |
//! | [`nats`] | [`nats::NatsServer`], a `nats-server` child process killed on drop | transport tests, hub and leaf-node setups |
//! | [`silent`] | [`silent::SilentServer`], UDP and TCP that never answer | resolver and client timeouts |
//!
//! Fixtures panic when they cannot start, with a message that names the cause, because
//! they run only inside tests and a panic is how a test reports a broken setup. No
//! fixture skips a test silently.
//!
//! What this crate does not do: it never sends traffic beyond loopback (`127.0.0.0/8`
//! and `::1`), it does not mock our own code, and it keeps no key material on disk.
//! It is a dev-dependency only.

#![warn(missing_docs)]

pub mod dns;
pub mod http;
pub mod nats;
pub mod silent;

mod loopback;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poisoning: a panicking test thread must not hide the recorded
/// queries and requests from the assertions that report them.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
