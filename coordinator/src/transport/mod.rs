//! How the coordinator reaches a perspective: NATS request-reply, the HTTP endpoints of the
//! existing Python checkers, or in-process checkers. Transports move JSON bodies and know
//! nothing about CAA or DCV.
//!
//! - [`nats`]: `<prefix>.<code>.<caa|dcv>` request-reply, the production transport.
//! - [`http`]: `POST` to a checker's `/caa` or `/dcv` endpoint, for the seed deployment.
//! - [`in_process`]: a checker inside this process, for the quick start and tests.
//!
//! [`Transports`] contains one [`PerspectiveClient`] per deployed perspective, and the
//! orchestration calls it. Every call is bounded by the per-perspective timeout, whatever the
//! transport, and every failure comes back as a [`TransportError`] whose [`kind`](TransportError::kind)
//! keeps "no responders" apart from "timed out".
//!
//! Signed replies (see [`mpic_shared::signing`]): every NATS and HTTP call carries a fresh
//! request identifier (a UUID v4 in [`REQUEST_ID_HEADER`](mpic_shared::signing::REQUEST_ID_HEADER)).
//! A perspective client built with a [`ReplyVerifier`] accepts a reply only when its
//! [`SIGNATURE_HEADER`](mpic_shared::signing::SIGNATURE_HEADER) verifies, with one of the
//! perspective's public keys, over the perspective code, that identifier and the exact reply
//! body. An unsigned, wrongly signed or replayed reply (one signed for an earlier identifier)
//! is a [`TransportError::BadSignature`], so it counts as that perspective's failure and never
//! as its corroboration. [`Transports::connect`] decides which perspectives get a verifier:
//! see [`CoordinatorConfig::reply_signatures`].

pub mod http;
pub mod in_process;
pub mod nats;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mpic_shared::reply::CheckResponse;
use mpic_shared::request::CheckType;
use mpic_shared::signing::{ReplyVerifier, SigningError};
use mpic_worker::config::WorkerConfig;
use mpic_worker::handler::CheckerSetupError;
use tracing::Instrument;

use crate::config::{CoordinatorConfig, DeployedPerspective, PerspectiveEndpoint, ReplySignatures};

/// The reason a perspective call produced no usable reply. The orchestration turns each of these into
/// that perspective's error reply (`check_completed: false`, error type
/// `mpic_error:coordinator:remote_check`), and the audit record keeps the kinds apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No subscriber listens on the perspective's subject, so it has no running workers.
    #[error("perspective {perspective} has no responders on {subject}")]
    NoResponders {
        /// The perspective code.
        perspective: String,
        /// The subject or URL called.
        subject: String,
    },
    /// The perspective did not reply within the per-perspective timeout.
    #[error("perspective {perspective} did not reply within {timeout:?}")]
    TimedOut {
        /// The perspective code.
        perspective: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The reply could not be parsed as a perspective reply.
    #[error("perspective {perspective} sent a reply that is not a valid check response: {reason}")]
    InvalidReply {
        /// The perspective code.
        perspective: String,
        /// The problem with the reply.
        reason: String,
    },
    /// The reply was signed by, or names, another perspective than the one called.
    #[error("reply for perspective {expected} came from {actual:?}")]
    WrongPerspective {
        /// The perspective called.
        expected: String,
        /// The perspective the reply claims, if any.
        actual: Option<String>,
    },
    /// The request could not be sent (connection lost, HTTP error status, ...).
    #[error("request to perspective {perspective} failed: {reason}")]
    RequestFailed {
        /// The perspective code.
        perspective: String,
        /// What failed.
        reason: String,
    },
    /// The reply is unsigned, or its signature does not verify with any of the perspective's
    /// public keys for this call's request identifier: a forged, altered or replayed reply.
    #[error("reply of perspective {perspective} failed signature verification")]
    BadSignature {
        /// The perspective code.
        perspective: String,
        /// The verification error.
        #[source]
        source: SigningError,
    },
}

/// The kind of a [`TransportError`], as recorded in the audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportErrorKind {
    /// See [`TransportError::NoResponders`].
    NoResponders,
    /// See [`TransportError::TimedOut`].
    TimedOut,
    /// See [`TransportError::InvalidReply`].
    InvalidReply,
    /// See [`TransportError::WrongPerspective`].
    WrongPerspective,
    /// See [`TransportError::RequestFailed`].
    RequestFailed,
    /// See [`TransportError::BadSignature`].
    BadSignature,
}

impl TransportError {
    /// Returns the error's kind.
    pub fn kind(&self) -> TransportErrorKind {
        match self {
            TransportError::NoResponders { .. } => TransportErrorKind::NoResponders,
            TransportError::TimedOut { .. } => TransportErrorKind::TimedOut,
            TransportError::InvalidReply { .. } => TransportErrorKind::InvalidReply,
            TransportError::WrongPerspective { .. } => TransportErrorKind::WrongPerspective,
            TransportError::RequestFailed { .. } => TransportErrorKind::RequestFailed,
            TransportError::BadSignature { .. } => TransportErrorKind::BadSignature,
        }
    }
}

impl std::fmt::Display for TransportErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TransportErrorKind::NoResponders => "no_responders",
            TransportErrorKind::TimedOut => "timed_out",
            TransportErrorKind::InvalidReply => "invalid_reply",
            TransportErrorKind::WrongPerspective => "wrong_perspective",
            TransportErrorKind::RequestFailed => "request_failed",
            TransportErrorKind::BadSignature => "bad_signature",
        })
    }
}

/// The reason the transports could not be set up at startup.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportSetupError {
    /// The NATS connection failed, or the credentials file could not be read.
    #[error("failed to connect to NATS")]
    Nats(#[source] mpic_worker::service::ServiceError),
    /// The HTTP client could not be built, for example without any root certificate.
    #[error("failed to build the HTTP client for the HTTP perspectives: {0}")]
    Http(#[from] http::HttpSetupError),
    /// An in-process checker could not be built, or no worker configuration was given for it.
    #[error("failed to build the in-process checker of perspective {perspective}")]
    InProcess {
        /// The perspective.
        perspective: String,
        /// The checker's setup error; `None` when no worker configuration was given.
        #[source]
        source: Option<CheckerSetupError>,
    },
    /// Signatures are required but no public key verifies the replies of a NATS perspective.
    /// Configuration validation prevents this; it guards configurations built in code.
    #[error(
        "no reply verification key for NATS perspective {perspective}, but reply_signatures \
         is required"
    )]
    MissingVerificationKey {
        /// The perspective.
        perspective: String,
    },
}

/// The client of one deployed perspective.
#[derive(Debug, Clone)]
pub enum PerspectiveClient {
    /// NATS request-reply on the perspective's subjects.
    Nats(nats::NatsPerspective),
    /// The perspective's HTTP endpoints.
    Http(http::HttpPerspective),
    /// A checker in this process.
    InProcess(in_process::InProcessPerspective),
}

impl PerspectiveClient {
    /// Sends one check to the perspective and returns its parsed reply.
    pub async fn call(
        &self,
        perspective: &str,
        check_type: CheckType,
        body: Bytes,
        trace_identifier: Option<&str>,
    ) -> Result<CheckResponse, TransportError> {
        match self {
            PerspectiveClient::Nats(transport) => {
                transport
                    .call(perspective, check_type, body, trace_identifier)
                    .await
            }
            PerspectiveClient::Http(client) => {
                client
                    .call(perspective, check_type, body, trace_identifier)
                    .await
            }
            PerspectiveClient::InProcess(checker) => {
                checker.call(perspective, check_type, body).await
            }
        }
    }

    /// Returns the transport's name, for logs.
    pub fn transport_name(&self) -> &'static str {
        match self {
            PerspectiveClient::Nats(_) => "nats",
            PerspectiveClient::Http(_) => "http",
            PerspectiveClient::InProcess(_) => "in-process",
        }
    }
}

/// The clients of every deployed perspective, keyed by perspective code.
#[derive(Debug, Clone, Default)]
pub struct Transports {
    clients: BTreeMap<String, PerspectiveClient>,
}

impl Transports {
    /// Builds a client for every perspective of `config`: one shared NATS connection, one
    /// shared HTTP client, and for each in-process perspective its own checker, built from
    /// `in_process` with the perspective's code. NATS and HTTP clients verify reply
    /// signatures as [`CoordinatorConfig::reply_signatures`] and the perspective's keys decide.
    pub async fn connect(
        config: &CoordinatorConfig,
        in_process: Option<&WorkerConfig>,
    ) -> Result<Self, TransportSetupError> {
        let mut nats = None;
        if let Some(nats_config) = config.nats.as_ref().filter(|_| config.uses_nats()) {
            let transport = nats::NatsTransport::connect(
                nats_config,
                &config.nats_tls,
                &config.subject_prefix,
                config.perspective_timeout,
            )
            .await?;
            nats = Some(transport);
        }
        let mut http = None;

        let mut clients = BTreeMap::new();
        for perspective in &config.perspectives {
            let code = &perspective.code;
            let client = match &perspective.endpoint {
                PerspectiveEndpoint::Nats => match &nats {
                    Some(transport) => PerspectiveClient::Nats(
                        transport.perspective(reply_verifier(config, perspective)?),
                    ),
                    // Validation requires `nats_url` whenever a NATS perspective exists, so
                    // the connection was made above.
                    None => continue,
                },
                PerspectiveEndpoint::Http(endpoints) => {
                    let transport = match &http {
                        Some(transport) => transport,
                        None => http.insert(http::HttpTransport::new(
                            config.perspective_timeout,
                            config.http_pool_idle_timeout,
                        )?),
                    };
                    PerspectiveClient::Http(
                        transport.perspective(
                            (**endpoints).clone(),
                            reply_verifier(config, perspective)?,
                        ),
                    )
                }
                PerspectiveEndpoint::InProcess => {
                    let base = in_process.ok_or_else(|| TransportSetupError::InProcess {
                        perspective: code.clone(),
                        source: None,
                    })?;
                    let client = in_process::InProcessPerspective::build(
                        code,
                        base,
                        config.perspective_timeout,
                    )
                    .map_err(|source| TransportSetupError::InProcess {
                        perspective: code.clone(),
                        source: Some(source),
                    })?;
                    PerspectiveClient::InProcess(client)
                }
            };
            clients.insert(code.clone(), client);
        }
        Ok(Self { clients })
    }

    /// Builds the transports from clients made by the caller, for tests and embedders.
    pub fn from_clients(clients: impl IntoIterator<Item = (String, PerspectiveClient)>) -> Self {
        Self {
            clients: clients.into_iter().collect(),
        }
    }

    /// Returns the codes of the perspectives that have a client.
    pub fn perspectives(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }

    /// Sends one check to `perspective` inside a span named after it and returns the reply.
    ///
    /// The body is the perspective request JSON (`CaaCheckRequest` or `DcvCheckRequest`); the
    /// trace identifier also travels as [`TRACE_HEADER`](mpic_shared::subject::TRACE_HEADER)
    /// where the transport has headers.
    pub async fn call(
        &self,
        perspective: &str,
        check_type: CheckType,
        body: Bytes,
        trace_identifier: Option<&str>,
    ) -> Result<CheckResponse, TransportError> {
        let Some(client) = self.clients.get(perspective) else {
            return Err(TransportError::RequestFailed {
                perspective: perspective.to_owned(),
                reason: "the perspective is not deployed in this coordinator".to_owned(),
            });
        };
        let span = tracing::info_span!(
            "perspective_call",
            perspective,
            check_type = %check_type,
            transport = client.transport_name(),
        );
        let started = Instant::now();
        let result = client
            .call(perspective, check_type, body, trace_identifier)
            .instrument(span.clone())
            .await;

        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        span.in_scope(|| match &result {
            Ok(reply) => tracing::debug!(
                latency_ms,
                completed = reply.check_completed,
                passed = reply.check_passed,
                "perspective replied"
            ),
            Err(error) => tracing::debug!(
                latency_ms,
                error_kind = %error.kind(),
                "perspective call failed"
            ),
        });
        result
    }
}

/// Returns the verifier of a perspective's replies, or `None` when its replies are accepted
/// unsigned: with `reply_signatures=off`, for an HTTP perspective without a public key, and
/// for in-process checkers, which never cross a network.
fn reply_verifier(
    config: &CoordinatorConfig,
    perspective: &DeployedPerspective,
) -> Result<Option<Arc<ReplyVerifier>>, TransportSetupError> {
    let code = &perspective.code;
    let verifier = config.reply_verification_keys.verifier(code).cloned();
    match (config.reply_signatures, &perspective.endpoint) {
        (ReplySignatures::Off, _) | (_, PerspectiveEndpoint::InProcess) => Ok(None),
        (ReplySignatures::Required, PerspectiveEndpoint::Http(_)) => Ok(verifier.map(Arc::new)),
        (ReplySignatures::Required, PerspectiveEndpoint::Nats) => match verifier {
            Some(verifier) => Ok(Some(Arc::new(verifier))),
            None => Err(TransportSetupError::MissingVerificationKey {
                perspective: code.clone(),
            }),
        },
    }
}

/// Checks a reply's signature header against the request identifier of the call, when the
/// perspective has a verifier.
pub(crate) fn verify_signature(
    perspective: &str,
    verifier: Option<&ReplyVerifier>,
    request_id: &str,
    payload: &[u8],
    signature: Option<&str>,
) -> Result<(), TransportError> {
    let Some(verifier) = verifier else {
        return Ok(());
    };
    verifier
        .verify(request_id, payload, signature)
        .map_err(|source| TransportError::BadSignature {
            perspective: perspective.to_owned(),
            source,
        })
}

/// Parses a reply body and checks that it replies to the check that was sent.
pub(crate) fn parse_reply(
    perspective: &str,
    check_type: CheckType,
    payload: &[u8],
) -> Result<CheckResponse, TransportError> {
    let reply: CheckResponse =
        serde_json::from_slice(payload).map_err(|error| TransportError::InvalidReply {
            perspective: perspective.to_owned(),
            reason: error.to_string(),
        })?;
    if reply.check_type != check_type {
        return Err(TransportError::InvalidReply {
            perspective: perspective.to_owned(),
            reason: format!(
                "the reply is for a {} check, but a {check_type} check was sent",
                reply.check_type
            ),
        });
    }
    Ok(reply)
}

/// Returns a fresh identifier for one perspective call: a random UUID (version 4), so that a
/// signed reply recorded for one call never verifies for another.
pub(crate) fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Largest reply body accepted from a perspective: 1 MiB, the default NATS `max_payload`. A
/// real reply is a few kilobytes; this only bounds what a broken endpoint can make us buffer.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;
