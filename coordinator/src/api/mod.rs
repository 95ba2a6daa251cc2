//! The REST API: `POST /mpic` (Open MPIC API 3.5) and `GET /healthz`.
//!
//! [`app`] builds the axum router from an [`AppState`], so tests drive the same router
//! in-process or through a real listener, and [`serve`] runs it until a shutdown signal.
//!
//! - [`auth`]: API key authentication of the calling CA ([`ApiKeys`]).
//! - [`error`]: [`error::ApiError`], the one error type, rendering the Open MPIC
//!   error bodies.
//! - [`extract`]: [`ApiJson`](extract::ApiJson), the JSON extractor whose rejections use those
//!   bodies.
//! - [`mpic`]: the `POST /mpic` handler: validation, orchestration, deadline.
//!
//! Every request runs in one span with the method, the matched route and a request identifier,
//! and the `POST /mpic` handler adds the caller's trace identifier to it. With API keys
//! configured, every request except `GET /healthz` needs one (see [`auth`]). Bodies are limited
//! to [`MAX_BODY_BYTES`].
//!
//! Not handled here: TLS termination (put the coordinator behind a proxy that does it).

pub mod auth;
pub mod error;
pub mod extract;
pub mod mpic;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::json;
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::api::auth::{ApiKeys, RejectionLog};
use crate::api::error::ApiError;
use crate::config::CoordinatorConfig;
use crate::orchestration::{Orchestrator, SetupError};
use crate::transport::Transports;

/// Shared state of the handlers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Validates requests, chooses cohorts and applies the quorum rules.
    pub orchestrator: Arc<Orchestrator>,
    /// The clients of the deployed perspectives.
    pub transports: Arc<Transports>,
    /// Deadline of one `POST /mpic` request (`request_timeout_seconds`).
    pub request_timeout: Duration,
    /// The keys a caller must present (`api_keys_file`, `api_keys`); `None` leaves the API
    /// open, which configuration validation allows only on loopback or when
    /// `allow_unauthenticated_api` is set.
    pub api_keys: Option<Arc<ApiKeys>>,
    /// Rate-limited log of requests rejected for want of a valid key.
    pub rejections: Arc<RejectionLog>,
}

impl AppState {
    /// Builds the orchestrator from the configuration and bundles it with the transports.
    pub fn new(config: &CoordinatorConfig, transports: Transports) -> Result<Self, SetupError> {
        let orchestrator = Orchestrator::new(config.orchestration_settings(), &config.catalogue)?;
        Ok(Self {
            orchestrator: Arc::new(orchestrator),
            transports: Arc::new(transports),
            request_timeout: config.request_timeout,
            api_keys: config.api_keys.clone().map(Arc::new),
            rejections: Arc::default(),
        })
    }
}

/// Builds the router: the routes, the body limit, the JSON fallbacks, API key authentication
/// and the request span.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/mpic", post(mpic::post_mpic))
        .route("/healthz", get(healthz))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ))
        .layer(middleware::from_fn(request_span))
        .with_state(state)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets requests in flight finish.
/// Handlers see the caller's address as [`ConnectInfo`](axum::extract::ConnectInfo).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Completes on Ctrl-C or, on Unix, SIGTERM, whichever comes first.
///
/// If a handler cannot be installed, that signal is logged and then waited for no longer, so
/// the other one still works.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "failed to listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "failed to listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Liveness: the process runs and serves HTTP.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Runs the request in a span with the method, the matched route (the path for unmatched
/// requests) and a fresh request identifier, and logs its status and latency.
async fn request_span(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = route.as_deref().unwrap_or("<unmatched>"),
        request_id = %uuid::Uuid::new_v4(),
        trace_identifier = tracing::field::Empty,
    );

    let started = std::time::Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            latency_ms,
            "request finished"
        );
    });
    response
}

/// Largest accepted request body: 64 KiB. A real request is well under 4 KiB; the limit only
/// bounds what a client can make the coordinator buffer.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
