//! Perspectives whose checker runs inside the coordinator process: the quick start and tests.
//!
//! Each in-process perspective gets its own [`Checker`], built from a worker configuration
//! with the perspective's code, so no resolver, cache or connection pool is shared between
//! perspectives. A call goes through the same JSON as over NATS: the request body bytes go in,
//! and the reply is serialized and parsed back, so a field that does not survive the wire does
//! not survive here either.
//!
//! All in-process perspectives share the host's network location. They exercise the API and the
//! orchestration, but they are not the distinct network perspectives that BR §3.2.2.9
//! requires.

use std::time::Duration;

use bytes::Bytes;
use mpic_shared::appconf::AppConf;
use mpic_shared::reply::CheckResponse;
use mpic_shared::request::CheckType;
use mpic_worker::config::{ConfigError, WorkerConfig};
use mpic_worker::handler::{Checker, CheckerSetupError};

use crate::transport::{TransportError, parse_reply};

/// One perspective's checker in this process.
#[derive(Debug, Clone)]
pub struct InProcessPerspective {
    checker: Checker,
    /// Per-call timeout (`http_client_timeout_seconds`), as for the remote transports.
    timeout: Duration,
}

impl InProcessPerspective {
    /// Builds a checker for `perspective` from `base`, with the perspective code replaced.
    pub fn build(
        perspective: &str,
        base: &WorkerConfig,
        timeout: Duration,
    ) -> Result<Self, CheckerSetupError> {
        let config = WorkerConfig {
            perspective_code: perspective.to_owned(),
            ..base.clone()
        };
        Ok(Self::new(Checker::new(&config)?, timeout))
    }

    /// Wraps a checker built by the caller.
    pub fn new(checker: Checker, timeout: Duration) -> Self {
        Self { checker, timeout }
    }

    /// Runs one check and returns the reply after a JSON round trip.
    pub async fn call(
        &self,
        perspective: &str,
        check_type: CheckType,
        body: Bytes,
    ) -> Result<CheckResponse, TransportError> {
        if self.checker.perspective_code() != perspective {
            return Err(TransportError::WrongPerspective {
                expected: perspective.to_owned(),
                actual: Some(self.checker.perspective_code().to_owned()),
            });
        }
        let reply = tokio::time::timeout(self.timeout, self.checker.handle(check_type, &body))
            .await
            .map_err(|_elapsed| TransportError::TimedOut {
                perspective: perspective.to_owned(),
                timeout: self.timeout,
            })?;

        let payload = serde_json::to_vec(&reply).map_err(|error| TransportError::InvalidReply {
            perspective: perspective.to_owned(),
            reason: format!("the reply could not be serialized: {error}"),
        })?;
        parse_reply(perspective, check_type, &payload)
    }
}

/// Returns the worker configuration of the quick start: the worker's defaults (system resolver,
/// public addresses only, no default CAA issuer domain names), for the perspective code
/// [`QUICK_START_CODE`] that [`InProcessPerspective::build`] replaces.
pub fn quick_start_worker_config() -> Result<WorkerConfig, ConfigError> {
    // The worker's validation requires something to serve, NATS or an HTTP listener. In-process
    // checkers serve the coordinator directly, so a loopback listener passes validation and is
    // removed again: nothing is ever bound to it.
    let settings = format!("perspective_code={QUICK_START_CODE}\nhttp_listen=127.0.0.1:0\n");
    let conf = AppConf::parse(&settings)?;
    let config = WorkerConfig::from_appconf(&conf)?;
    Ok(WorkerConfig {
        http_listen: None,
        ..config
    })
}

/// Placeholder perspective code of [`quick_start_worker_config`], replaced per perspective.
pub const QUICK_START_CODE: &str = "quick-start";
