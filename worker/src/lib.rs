//! Open MPIC perspective worker: runs the CAA and DCV checks of one network perspective and
//! answers the coordinator over NATS request-reply or HTTP.
//!
//! A perspective is a named network location (BR §3.2.2.9). Each worker process serves exactly
//! one, named by `perspective_code`; a region runs as many workers of its perspective as it
//! needs, and NATS spreads the requests over them.
//!
//! Modules:
//!
//! - [`config`]: the typed [`config::WorkerConfig`], loaded from `app.conf` and the environment
//!   and validated at startup.
//! - [`handler`]: [`handler::Checker`], the single entry point from a JSON request body to a
//!   perspective reply, with the in-flight bound and the whole-check deadline. The NATS service,
//!   the HTTP endpoints and the coordinator's in-process transport all call it.
//! - [`checks`]: the checks themselves (CAA, DNS-based DCV, HTTP-based DCV, acme-tls-alpn-01),
//!   with no knowledge of NATS or HTTP serving.
//! - [`resolver`]: the cache-free DNS resolver each check gets.
//! - [`fetch`]: HTTP fetches of challenge URLs and the address guard against server-side
//!   request forgery.
//! - [`service`]: the NATS service loop: queue subscriptions, one task per request, drain on
//!   shutdown.
//! - [`http_api`]: `POST /caa`, `POST /dcv`, `GET /healthz` and `GET /configz`, compatible with
//!   the Python checkers.
//!
//! What the crate does not do: choose perspectives, count corroborations or apply a quorum
//! (the coordinator does), cache DNS answers between checks, validate DNSSEC itself, or
//! terminate TLS for its HTTP endpoints.

#![warn(missing_docs)]

pub mod checks;
pub mod config;
pub mod fetch;
pub mod handler;
pub mod http_api;
pub mod resolver;
pub mod service;
