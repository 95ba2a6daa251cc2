//! The NATS service loop: receives check requests for one perspective and replies to each.
//!
//! A worker subscribes to `<prefix>.<perspective code>.caa` and `<prefix>.<perspective
//! code>.dcv` in the queue group [`QUEUE_GROUP`], so NATS hands every request to exactly one
//! of the perspective's workers and a region scales by adding workers. Each request runs in
//! its own task once a check slot is free ([`Checker::acquire`]). While every slot is taken,
//! the loop stops reading and requests wait in the client's subscription buffer. The reply is
//! the JSON [`mpic_shared::reply::CheckResponse`] with the header
//! [`PERSPECTIVE_HEADER`] naming the perspective, because the coordinator rejects replies
//! without it. The request header [`TRACE_HEADER`] goes into the request's span. A message
//! without a reply subject cannot be answered and is ignored.
//!
//! With a reply signing key ([`ReplySigningKey`]), every reply also carries
//! [`SIGNATURE_HEADER`]: the Ed25519 signature over the perspective code, the request's
//! [`REQUEST_ID_HEADER`] and the exact reply body bytes (see [`mpic_shared::signing`]). The
//! reply does not repeat the request identifier: the coordinator verifies with the one it
//! sent, so a reply recorded for another request never verifies. A request without a valid
//! request identifier cannot be signed for. It gets a not-completed reply with error type
//! [`error_type::INVALID_REQUEST`], unsigned and without running the check, because a
//! coordinator that verifies signatures sends an identifier with every request.
//!
//! Shutdown drains instead of dropping work: when the shutdown future completes, both
//! subscriptions are drained (the server stops sending, and messages already delivered to the
//! client are still processed), the loop waits for every check in flight to reply, flushes the
//! connection and closes it. Requests published after the drain reach other workers of the
//! perspective, or get "no responders" when there are none.
//!
//! [`connect_with_tls`] sets up the connection's credentials and TLS: with any TLS setting the
//! client requires TLS, verifies the server against the configured CA bundle and presents the
//! client certificate, so the server can authenticate the worker (mutual TLS).

use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::{Client, ConnectOptions, Event, HeaderMap, Message, Subscriber};
use bytes::Bytes;
use futures::StreamExt;
use mpic_shared::reply::{CheckError, CheckResponse, error_type};
use mpic_shared::request::CheckType;
use mpic_shared::signing::{REQUEST_ID_HEADER, SIGNATURE_HEADER, validate_request_id};
use mpic_shared::subject::{PERSPECTIVE_HEADER, QUEUE_GROUP, TRACE_HEADER, check_subject};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, error, info, warn};

use crate::config::{NatsAuth, NatsConfig, NatsTls, ReplySigningKey};
use crate::handler::{CheckPermit, Checker};

/// A worker subscribed to its perspective's subjects, ready to [`run`](NatsService::run).
#[derive(Debug)]
pub struct NatsService {
    client: Client,
    checker: Checker,
    /// Signs every reply when set.
    reply_signing: Option<ReplySigningKey>,
    caa: Subscription,
    dcv: Subscription,
    /// Bound on each shutdown step that needs the server (see [`SHUTDOWN_STEP_TIMEOUT`]).
    shutdown_step_timeout: Duration,
}

#[derive(Debug)]
struct Subscription {
    check_type: CheckType,
    subject: String,
    subscriber: Subscriber,
    open: bool,
}

/// Errors of starting or running the NATS service.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The credentials file could not be read.
    #[error("failed to read the NATS credentials file {path}")]
    CredentialsFile {
        /// The file's path.
        path: std::path::PathBuf,
        /// The I/O or parse error.
        #[source]
        source: std::io::Error,
    },
    /// No connection to any of the servers could be established.
    #[error("failed to connect to NATS at {servers} ({security})")]
    Connect {
        /// The configured server URLs, comma-separated, without passwords.
        servers: String,
        /// The TLS settings and kind of credentials used, so that a handshake or
        /// authorization failure can be traced to its setting.
        security: String,
        /// The client's error.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A subscription could not be created.
    #[error("failed to subscribe to {subject}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// The client's error.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// A subscription ended although no shutdown was requested: the connection was closed.
    #[error("the subscription to {subject} ended unexpectedly; the NATS connection is closed")]
    SubscriptionEnded {
        /// The subject.
        subject: String,
    },
    /// The replies still buffered at shutdown could not be flushed to the server.
    #[error("failed to flush the NATS connection at shutdown")]
    Flush(#[source] async_nats::client::FlushError),
    /// The server did not confirm the final flush in time, so replies may be lost; the server
    /// is usually gone.
    #[error("the NATS server did not confirm the final flush within {timeout:?}")]
    FlushTimedOut {
        /// The bound that expired.
        timeout: Duration,
    },
}

/// How long shutdown waits for each step that needs the NATS server: the server's end of the
/// drained subscriptions, then the final flush. Checks in flight are bounded by their own
/// deadline; these steps would otherwise wait forever for a server that has gone away.
pub const SHUTDOWN_STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to NATS with the configured servers and credentials and no TLS settings, for
/// callers that have none: TLS is then used only for `tls://` URLs or when the server demands
/// it, and the system's root certificates verify the server.
pub async fn connect(config: &NatsConfig, client_name: &str) -> Result<Client, ServiceError> {
    connect_with_tls(config, &NatsTls::default(), client_name).await
}

/// Connects to NATS with the configured servers, credentials and TLS settings.
///
/// With any TLS setting, TLS is required: a server that does not offer it fails the
/// connection instead of receiving credentials in plain text. Connection events
/// (disconnects, reconnects, slow consumers, server errors) are logged.
pub async fn connect_with_tls(
    config: &NatsConfig,
    tls: &NatsTls,
    client_name: &str,
) -> Result<Client, ServiceError> {
    let mut options = match &config.auth {
        NatsAuth::None => ConnectOptions::new(),
        NatsAuth::UserPassword { user, password } => {
            ConnectOptions::with_user_and_password(user.clone(), password.expose().to_owned())
        }
        NatsAuth::Token(token) => ConnectOptions::with_token(token.expose().to_owned()),
        NatsAuth::NkeySeed { seed, .. } => ConnectOptions::with_nkey(seed.expose().to_owned()),
        NatsAuth::CredentialsFile(path) => ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|source| ServiceError::CredentialsFile {
                path: path.clone(),
                source,
            })?,
    };
    if let Some(ca_file) = &tls.ca_file {
        options = options.add_root_certificates(ca_file.clone());
    }
    if let Some(client) = &tls.client_certificate {
        options = options.add_client_certificate(client.cert_file.clone(), client.key_file.clone());
    }
    if tls.requires_tls() {
        options = options.require_tls(true);
    }
    let options = options
        .name(client_name)
        .event_callback(|event| async move {
            log_connection_event(&event);
        });

    options
        .connect(config.servers.as_slice())
        .await
        .map_err(|source| ServiceError::Connect {
            servers: config.redacted_servers().join(","),
            security: describe_security(&config.auth, tls),
            source,
        })
}

/// Describes the TLS settings and kind of credentials of a connection, without secrets.
fn describe_security(auth: &NatsAuth, tls: &NatsTls) -> String {
    if !tls.requires_tls() {
        return format!("TLS not required; credentials: {}", auth.kind());
    }
    let roots = match &tls.ca_file {
        Some(ca_file) => format!("server verified with {}", ca_file.display()),
        None => "server verified with the system's root certificates".to_owned(),
    };
    let client = match &tls.client_certificate {
        Some(client) => format!("client certificate {}", client.cert_file.display()),
        None => "no client certificate".to_owned(),
    };
    format!(
        "TLS required; {roots}; {client}; credentials: {}",
        auth.kind()
    )
}

impl NatsService {
    /// Subscribes to the perspective's CAA and DCV subjects in the queue group. With
    /// `reply_signing`, every reply is signed.
    ///
    /// Returns once both subscriptions have been sent to the server.
    pub async fn start(
        client: Client,
        checker: Checker,
        subject_prefix: &str,
        reply_signing: Option<ReplySigningKey>,
    ) -> Result<NatsService, ServiceError> {
        let perspective = checker.perspective_code().to_owned();
        let caa = Subscription::open(&client, subject_prefix, &perspective, CheckType::Caa).await?;
        let dcv = Subscription::open(&client, subject_prefix, &perspective, CheckType::Dcv).await?;
        if let Err(error) = client.flush().await {
            // The subscriptions are queued and go out when the connection is back; the
            // client reconnects by itself, so this is not fatal.
            warn!(%error, "failed to flush the subscriptions to the NATS server");
        }
        info!(
            caa_subject = %caa.subject,
            dcv_subject = %dcv.subject,
            queue_group = QUEUE_GROUP,
            signed_replies = reply_signing.is_some(),
            "subscribed to the perspective's subjects"
        );
        Ok(NatsService {
            client,
            checker,
            reply_signing,
            caa,
            dcv,
            shutdown_step_timeout: SHUTDOWN_STEP_TIMEOUT,
        })
    }

    /// Replaces [`SHUTDOWN_STEP_TIMEOUT`], for tests that stop the server.
    pub fn with_shutdown_step_timeout(mut self, timeout: Duration) -> NatsService {
        self.shutdown_step_timeout = timeout;
        self
    }

    /// Serves requests until `shutdown` completes, then drains: stops receiving, waits for the
    /// checks in flight to reply, flushes and closes the connection.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServiceError> {
        let mut tasks = JoinSet::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut draining = false;
        // A received request waiting for a check slot. No message is read while one waits, so
        // a worker with every slot taken leaves further requests in the subscription buffer,
        // and a shutdown is still noticed at once.
        let mut waiting: Option<Request> = None;
        // Set at shutdown: when the server has not ended both subscriptions by then, the loop
        // stops waiting for it.
        let mut drain_deadline: Option<tokio::time::Instant> = None;

        while self.caa.open || self.dcv.open || waiting.is_some() {
            let drain_expiry =
                tokio::time::sleep_until(drain_deadline.unwrap_or_else(tokio::time::Instant::now));
            tokio::select! {
                () = &mut shutdown, if !draining => {
                    draining = true;
                    drain_deadline =
                        Some(tokio::time::Instant::now() + self.shutdown_step_timeout);
                    info!(in_flight = tasks.len(), "shutdown requested: draining NATS subscriptions");
                    self.caa.drain().await;
                    self.dcv.drain().await;
                }
                () = drain_expiry, if drain_deadline.is_some() && waiting.is_none() => {
                    warn!(
                        timeout = ?self.shutdown_step_timeout,
                        "the NATS server did not end the drained subscriptions in time; \
                         stopping without it"
                    );
                    break;
                }
                permit = self.checker.acquire(), if waiting.is_some() => {
                    if let Some(request) = waiting.take() {
                        let span = request.span();
                        let task = serve(
                            request,
                            permit,
                            self.client.clone(),
                            self.checker.clone(),
                            self.reply_signing.clone(),
                        );
                        tasks.spawn(task.instrument(span));
                    }
                }
                message = self.caa.subscriber.next(), if self.caa.open && waiting.is_none() => {
                    waiting = self.caa.receive(message, draining)?;
                }
                message = self.dcv.subscriber.next(), if self.dcv.open && waiting.is_none() => {
                    waiting = self.dcv.receive(message, draining)?;
                }
                Some(joined) = tasks.join_next(), if !tasks.is_empty() => log_task_end(joined),
            }
        }

        if !tasks.is_empty() {
            info!(in_flight = tasks.len(), "waiting for the checks in flight");
        }
        while let Some(joined) = tasks.join_next().await {
            log_task_end(joined);
        }
        let timeout = self.shutdown_step_timeout;
        tokio::time::timeout(timeout, self.client.flush())
            .await
            .map_err(|_| ServiceError::FlushTimedOut { timeout })?
            .map_err(ServiceError::Flush)?;
        match tokio::time::timeout(timeout, self.client.drain()).await {
            Ok(Ok(())) => {}
            // Every reply has been flushed; closing the connection is a courtesy to the server.
            Ok(Err(error)) => debug!(%error, "failed to close the NATS connection"),
            Err(_) => debug!("the NATS server did not confirm closing the connection"),
        }
        info!("NATS service stopped");
        Ok(())
    }
}

impl Subscription {
    async fn open(
        client: &Client,
        prefix: &str,
        perspective: &str,
        check_type: CheckType,
    ) -> Result<Subscription, ServiceError> {
        let subject = check_subject(prefix, perspective, check_type);
        let subscriber = client
            .queue_subscribe(subject.clone(), QUEUE_GROUP.to_owned())
            .await
            .map_err(|source| ServiceError::Subscribe {
                subject: subject.clone(),
                source,
            })?;
        Ok(Subscription {
            check_type,
            subject,
            subscriber,
            open: true,
        })
    }

    async fn drain(&mut self) {
        if let Err(error) = self.subscriber.drain().await {
            // The client's command channel is gone, so the connection is closed and the
            // subscription ends by itself.
            warn!(subject = %self.subject, %error, "failed to drain the subscription");
        }
    }

    /// Takes the next item of the subscription: the request of a message that can be answered,
    /// or nothing. Marks the subscription closed when it ended.
    fn receive(
        &mut self,
        message: Option<Message>,
        draining: bool,
    ) -> Result<Option<Request>, ServiceError> {
        let Some(message) = message else {
            self.open = false;
            if draining {
                return Ok(None);
            }
            return Err(ServiceError::SubscriptionEnded {
                subject: self.subject.clone(),
            });
        };
        let Some(reply_subject) = message.reply else {
            debug!(subject = %message.subject, "ignoring a message without a reply subject");
            return Ok(None);
        };

        Ok(Some(Request {
            check_type: self.check_type,
            subject: message.subject.to_string(),
            reply_subject: reply_subject.to_string(),
            trace_identifier: header_value(message.headers.as_ref(), TRACE_HEADER),
            request_id: header_value(message.headers.as_ref(), REQUEST_ID_HEADER),
            payload: message.payload,
        }))
    }
}

/// One received request, taken apart from its NATS message.
struct Request {
    check_type: CheckType,
    subject: String,
    reply_subject: String,
    trace_identifier: Option<String>,
    /// The coordinator's identifier of this call, which a signature covers.
    request_id: Option<String>,
    payload: Bytes,
}

impl Request {
    /// Returns the span the request's task runs in.
    fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "nats_request",
            subject = %self.subject,
            trace_identifier = self.trace_identifier.as_deref(),
            request_id = self.request_id.as_deref(),
        )
    }
}

/// Runs one check and publishes its reply, signed when the worker has a signing key.
async fn serve(
    request: Request,
    permit: CheckPermit,
    client: Client,
    checker: Checker,
    reply_signing: Option<ReplySigningKey>,
) {
    let started = Instant::now();
    let (reply, signer) = match signer_for(reply_signing.as_ref(), request.request_id.as_deref()) {
        Ok(signer) => {
            let reply = checker
                .handle_with_permit(permit, request.check_type, &request.payload)
                .await;
            (reply, signer)
        }
        Err(problem) => {
            debug!(%problem, "rejected a request that cannot be signed for");
            let error = CheckError::new(error_type::INVALID_REQUEST, problem);
            (
                CheckResponse::not_completed(request.check_type, None, error),
                None,
            )
        }
    };
    let body = match serde_json::to_vec(&reply) {
        Ok(body) => body,
        Err(error) => {
            // A `CheckResponse` holds only strings, numbers, booleans and lists, so this
            // would be a bug in the reply types; the requester times out.
            error!(%error, "failed to encode the check reply");
            return;
        }
    };

    let mut headers = HeaderMap::new();
    headers.insert(PERSPECTIVE_HEADER, checker.perspective_code());
    if let Some((key, request_id)) = signer {
        match key.sign(request_id, &body) {
            Ok(signature) => headers.insert(SIGNATURE_HEADER, signature.as_str()),
            // `signer_for` validated the identifier, the only input signing rejects. A
            // coordinator that verifies signatures rejects the unsigned reply.
            Err(error) => error!(%error, "failed to sign the check reply"),
        }
    }
    let published = client
        .publish_with_headers(request.reply_subject, headers, Bytes::from(body))
        .await;
    match published {
        Ok(()) => debug!(
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "reply published"
        ),
        // The requester times out and the coordinator records this perspective as not
        // completed; the worker itself keeps serving.
        Err(error) => warn!(%error, "failed to publish the check reply"),
    }
}

/// Returns the key and request identifier to sign the reply with, or `None` when the worker
/// does not sign. A signing worker needs a valid request identifier. Without one this returns
/// the problem, which becomes the reply's error message.
fn signer_for<'a>(
    reply_signing: Option<&'a ReplySigningKey>,
    request_id: Option<&'a str>,
) -> Result<Option<(&'a ReplySigningKey, &'a str)>, String> {
    let Some(key) = reply_signing else {
        return Ok(None);
    };
    let Some(request_id) = request_id else {
        return Err(format!(
            "the request has no {REQUEST_ID_HEADER} header; this perspective signs its replies \
             and needs the request identifier to sign"
        ));
    };
    if let Err(error) = validate_request_id(request_id) {
        return Err(format!(
            "the {REQUEST_ID_HEADER} header cannot be signed for ({error}); send 1 to 128 bytes \
             without NUL"
        ));
    }
    Ok(Some((key, request_id)))
}

fn header_value(headers: Option<&HeaderMap>, name: &str) -> Option<String> {
    headers
        .and_then(|headers| headers.get(name))
        .map(|value| value.as_str().to_owned())
}

fn log_task_end(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined {
        // A panic inside a check: the requester gets no reply and times out.
        error!(%error, "a check task failed");
    }
}

fn log_connection_event(event: &Event) {
    match event {
        Event::Connected => info!("connected to NATS"),
        Event::Disconnected => warn!("disconnected from NATS; reconnecting"),
        Event::LameDuckMode => warn!("the NATS server entered lame duck mode"),
        Event::Draining | Event::Closed => debug!(%event, "NATS connection event"),
        Event::SlowConsumer(sid) => {
            warn!(
                subscription = sid,
                "NATS dropped messages: the worker cannot keep up"
            );
        }
        Event::ServerError(error) => warn!(%error, "NATS server error"),
        Event::ClientError(error) => warn!(%error, "NATS client error"),
    }
}
