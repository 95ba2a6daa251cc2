//! How the coordinator reaches a perspective: NATS request-reply, the HTTP endpoints of the
//! existing Python checkers, or in-process checkers. Transports move JSON bodies and know
//! nothing about CAA or DCV.

use std::time::Duration;

/// Why a perspective call produced no usable reply. The orchestration turns each of these into
/// that perspective's error reply (`check_completed: false`, error type
/// `mpic_error:coordinator:remote_check`), and the audit record keeps the kinds apart.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// Nobody listens on the perspective's subject: it has no running workers.
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
        /// What was wrong with it.
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
        }
    }
}
