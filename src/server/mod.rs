//! The HTTP listener: `/metrics`, health, readiness and the lifecycle API, on hyper 1.

mod routes;
mod status;

use std::convert::Infallible;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::pipeline::{SnapshotCell, UpstreamHealth};
use crate::telemetry::Telemetry;
pub use routes::{handle, DEAD_LETTERS_PATH, DEAD_LETTERS_RETRY_PATH, WEBHOOK_PATH};

/// A request to reload the configuration file, answered with the outcome.
pub struct ReloadRequest {
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// Everything the routes read.
pub struct AppState {
    pub snapshot: Arc<SnapshotCell>,
    pub telemetry: Arc<Telemetry>,
    pub upstream: Arc<UpstreamHealth>,
    pub lifecycle_enabled: AtomicBool,
    pub reload: mpsc::Sender<ReloadRequest>,
    pub shutting_down: AtomicBool,
    /// The Alertmanager webhook receiver, when `alerts` is configured.
    pub alerts: Option<Arc<crate::enrichment::Enrichment>>,
    /// Charts of series (`/graph`).
    pub graphs: Arc<crate::graph::Grapher>,
    /// What the status page says about the configuration; replaced on reload.
    pub info: std::sync::RwLock<StatusInfo>,
    /// Bytes of the last `/metrics` body: the next one starts with that much room.
    pub metrics_capacity: std::sync::atomic::AtomicUsize,
}

/// The configuration as the status page shows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusInfo {
    pub prometheus_url: String,
    pub queries: Vec<QueryInfo>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueryInfo {
    pub name: String,
    pub expr: String,
    pub step: Duration,
    pub history: Duration,
}

impl StatusInfo {
    pub fn of(config: &crate::config::Config) -> StatusInfo {
        let mut url = config.prometheus.url.clone();
        // Never show credentials (the loader refuses them, but a URL is a URL).
        let _ = url.set_password(None);
        let _ = url.set_username("");
        StatusInfo {
            prometheus_url: url.to_string(),
            queries: config
                .queries
                .iter()
                .map(|q| QueryInfo {
                    name: q.name.clone(),
                    expr: q.expr.clone(),
                    step: q.step,
                    history: q.history,
                })
                .collect(),
        }
    }
}

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `stop` is cancelled, then lets in-flight requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    stop: CancellationToken,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        let service = service_fn(move |request| {
            let state = Arc::clone(&state);
            async move { Ok::<_, Infallible>(handle(&state, request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = watched.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::debug!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(?grace, "connections still open after the shutdown grace period; closing them"),
    }
}
