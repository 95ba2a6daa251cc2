//! Types shared by the Open MPIC coordinator and its perspective workers.
//!
//! - [`request`]: the `POST /mpic` request body, its orchestration and CAA parameters.
//! - [`dcv`]: the DCV validation methods and their parameters.
//! - [`reply`]: a perspective's check reply (`check_completed`, `check_passed`, `details`) and
//!   the perspective request body that the coordinator sends to a worker.
//! - [`response`]: the `POST /mpic` response body.
//! - [`target`]: parsing of `domain_or_ip_target` into a domain name (A-labels) or an IP address.
//! - [`catalogue`]: the perspective catalogue (`available_perspectives.yaml`) and RIRs.
//! - [`subject`]: NATS subject names and the headers that travel with a perspective call.
//! - [`signing`]: Ed25519 signatures on perspective replies.
//! - [`appconf`]: the `KEY=VALUE` configuration files of the seed deployment, with environment
//!   overrides.
//!
//! The crate does serde and parsing only: it performs no network I/O and does not depend on
//! NATS clients, HTTP servers or DNS resolvers.

#![warn(missing_docs)]

pub mod appconf;
pub mod catalogue;
pub mod dcv;
pub mod reply;
pub mod request;
pub mod response;
pub mod signing;
pub mod subject;
pub mod target;
