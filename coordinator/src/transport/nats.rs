//! NATS request-reply to a perspective's workers.
//!
//! A check is published on `<prefix>.<code>.caa` or `<prefix>.<code>.dcv` (see
//! [`check_subject`]) with the JSON body and the caller's trace identifier in [`TRACE_HEADER`].
//! One worker of the perspective's queue group replies with the check response and names its
//! perspective in [`PERSPECTIVE_HEADER`]. A reply that names no perspective or another one is
//! counted as that perspective's failure, because a misrouted or impersonated reply must never
//! corroborate.
//!
//! Every request also carries a fresh request identifier in [`REQUEST_ID_HEADER`]. A
//! [`NatsPerspective`] with a [`ReplyVerifier`] accepts only a reply whose
//! [`SIGNATURE_HEADER`] verifies for that identifier, the perspective code and the exact reply
//! body. The signature is checked before anything else in the reply is believed, including the
//! perspective header, because it is the only part a holder of NATS credentials cannot forge.
//!
//! Each request carries its own timeout (the per-perspective timeout) instead of the client's
//! default. The NATS server's "no responders" status is kept apart from a timeout, because the
//! first means the perspective has no running workers and the second that they are slow.
//!
//! The connection's credentials and TLS (CA bundle, client certificate for mutual TLS) are set
//! up by the worker crate's [`service::connect_with_tls`], so both binaries read the `nats_*`
//! keys alike.

use std::sync::Arc;
use std::time::Duration;

use async_nats::client::{RequestError, RequestErrorKind};
use async_nats::{Client, HeaderMap, Request};
use bytes::Bytes;
use mpic_shared::reply::CheckResponse;
use mpic_shared::request::CheckType;
use mpic_shared::signing::{REQUEST_ID_HEADER, ReplyVerifier, SIGNATURE_HEADER};
use mpic_shared::subject::{PERSPECTIVE_HEADER, TRACE_HEADER, check_subject};
use mpic_worker::config::{NatsConfig, NatsTls};
use mpic_worker::service;

use crate::transport::{
    MAX_REPLY_BYTES, TransportError, TransportSetupError, new_request_id, parse_reply,
    verify_signature,
};

/// A NATS connection shared by every NATS perspective. Cloning is cheap: clones share the
/// connection.
#[derive(Debug, Clone)]
pub struct NatsTransport {
    client: Client,
    subject_prefix: String,
    /// Per-request timeout (`http_client_timeout_seconds`), replacing the client's default.
    timeout: Duration,
}

impl NatsTransport {
    /// Connects to the NATS servers with the configured credentials and TLS settings; with
    /// any TLS setting, TLS is required. Connection events (disconnects, reconnects) are logged
    /// by the worker crate's connection setup, which the coordinator shares so both sides treat
    /// `nats_*` keys alike.
    pub async fn connect(
        config: &NatsConfig,
        tls: &NatsTls,
        subject_prefix: &str,
        timeout: Duration,
    ) -> Result<Self, TransportSetupError> {
        let client = service::connect_with_tls(config, tls, CONNECTION_NAME)
            .await
            .map_err(TransportSetupError::Nats)?;
        Ok(Self::from_client(client, subject_prefix, timeout))
    }

    /// Wraps a connected client.
    pub fn from_client(client: Client, subject_prefix: &str, timeout: Duration) -> Self {
        Self {
            client,
            subject_prefix: subject_prefix.to_owned(),
            timeout,
        }
    }

    /// Returns the client of one perspective. With `verifier`, its replies must carry a valid
    /// signature; with `None`, unsigned replies are accepted.
    pub fn perspective(&self, verifier: Option<Arc<ReplyVerifier>>) -> NatsPerspective {
        NatsPerspective {
            transport: self.clone(),
            verifier,
        }
    }

    /// Sends one check to `perspective` and waits for one reply. With `verifier`, the reply
    /// must carry a signature that verifies for this call's request identifier.
    pub async fn call(
        &self,
        perspective: &str,
        check_type: CheckType,
        body: Bytes,
        trace_identifier: Option<&str>,
        verifier: Option<&ReplyVerifier>,
    ) -> Result<CheckResponse, TransportError> {
        let subject = check_subject(&self.subject_prefix, perspective, check_type);
        let request_id = new_request_id();
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, request_id.as_str());
        if let Some(trace_identifier) = trace_identifier {
            // The `&str` conversion replaces CR and LF, so a caller's identifier cannot inject
            // header lines.
            headers.insert(TRACE_HEADER, trace_identifier);
        }
        let request = Request::new()
            .headers(headers)
            .payload(body)
            .timeout(Some(self.timeout));

        let message = self
            .client
            .send_request(subject.clone(), request)
            .await
            .map_err(|error| self.request_error(perspective, &subject, error))?;

        if message.payload.len() > MAX_REPLY_BYTES {
            return Err(TransportError::InvalidReply {
                perspective: perspective.to_owned(),
                reason: format!(
                    "the reply has {} bytes, more than the {MAX_REPLY_BYTES} accepted",
                    message.payload.len()
                ),
            });
        }
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|headers| headers.get(name))
                .map(|value| value.as_str().to_owned())
        };
        verify_signature(
            perspective,
            verifier,
            &request_id,
            &message.payload,
            header(SIGNATURE_HEADER).as_deref(),
        )?;
        let replied_for = header(PERSPECTIVE_HEADER);
        if replied_for.as_deref() != Some(perspective) {
            return Err(TransportError::WrongPerspective {
                expected: perspective.to_owned(),
                actual: replied_for,
            });
        }
        parse_reply(perspective, check_type, &message.payload)
    }

    fn request_error(
        &self,
        perspective: &str,
        subject: &str,
        error: RequestError,
    ) -> TransportError {
        match error.kind() {
            RequestErrorKind::NoResponders => TransportError::NoResponders {
                perspective: perspective.to_owned(),
                subject: subject.to_owned(),
            },
            RequestErrorKind::TimedOut => TransportError::TimedOut {
                perspective: perspective.to_owned(),
                timeout: self.timeout,
            },
            RequestErrorKind::InvalidSubject
            | RequestErrorKind::MaxPayloadExceeded
            | RequestErrorKind::Other => TransportError::RequestFailed {
                perspective: perspective.to_owned(),
                reason: format!("NATS request on {subject} failed: {error}"),
            },
        }
    }
}

/// One NATS perspective: the shared connection and, when its replies must be signed, the
/// perspective's public keys.
#[derive(Debug, Clone)]
pub struct NatsPerspective {
    transport: NatsTransport,
    verifier: Option<Arc<ReplyVerifier>>,
}

impl NatsPerspective {
    /// Sends one check to the perspective's subject and returns the verified reply.
    pub async fn call(
        &self,
        perspective: &str,
        check_type: CheckType,
        body: Bytes,
        trace_identifier: Option<&str>,
    ) -> Result<CheckResponse, TransportError> {
        self.transport
            .call(
                perspective,
                check_type,
                body,
                trace_identifier,
                self.verifier.as_deref(),
            )
            .await
    }
}

/// The client name the coordinator announces to the NATS server.
const CONNECTION_NAME: &str = "mpic-coordinator";
