//! The Open MPIC coordinator: it accepts `POST /mpic` from a certificate authority, picks a
//! cohort of network perspectives for the target, sends each the CAA or DCV check, applies the
//! quorum rules of BR §3.2.2.9 and responds with the verdict and every perspective's evidence.
//!
//! | Module | What it holds |
//! |---|---|
//! | [`config`] | [`CoordinatorConfig`](config::CoordinatorConfig): the seed deployment's `app.conf` keys and ours, validated at startup, plus the built-in quick-start configuration. |
//! | [`api`] | The axum router ([`api::app`]), the JSON extractor and [`ApiError`](api::error::ApiError), which renders the Open MPIC error bodies; graceful shutdown. |
//! | [`orchestration`] | Request validation, cohorts, attempts, quorum and the audit event. |
//! | [`transport`] | [`Transports`](transport::Transports): one client per perspective over NATS, HTTP or in process. |
//!
//! A request flows `api` → `orchestration` → `transport` and back. The orchestration never
//! sees NATS or HTTP: the API layer hands it a function that calls one perspective through
//! [`Transports`](transport::Transports). The binary (`src/main.rs`) only parses arguments,
//! loads the configuration, sets up logging and wires these pieces together.
//!
//! Security: callers authenticate with API keys ([`api::auth`]), replies of remote
//! perspectives are verified against each perspective's Ed25519 public keys
//! ([`config::reply_keys`], [`transport`]), and the NATS connection takes the worker's
//! credential and TLS keys.
//!
//! What the crate does not do: it runs no checks itself (the workers of `mpic-worker` do, and
//! the in-process quick start embeds them), and it does not terminate TLS for the REST API (put
//! it behind a proxy that does).

#![warn(missing_docs)]

pub mod api;
pub mod config;
pub mod orchestration;
pub mod transport;
