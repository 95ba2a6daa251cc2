//! Local fixtures for the Open MPIC tests: real servers on loopback, started in-process
//! or as child processes, that the tests of every other crate point their clients at.
//!
//! | Module | Fixture | Used for |
//! |---|---|---|
//! | [`dns`] | [`dns::TestDns`], an authoritative DNS server over UDP and TCP | CAA and DNS-based DCV checks |
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
pub mod nats;
pub mod silent;

mod loopback;
