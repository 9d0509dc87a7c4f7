//! Wires the stages together for `foretell run`: server, pipeline, reloads and shutdown.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, SystemEnvironment};
use crate::pipeline::{carry_over, Context, Pipeline, QueryTask, SnapshotCell, UpstreamHealth};
use crate::reader::{PrometheusReader, ReadError};
use crate::server::{self, AppState, ReloadRequest};
use crate::shutdown::{SignalEvent, Signals};
use crate::telemetry::Telemetry;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {address}: {source} (set server.listen_address)")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Reader(#[from] ReadError),
}

struct Running {
    config_path: PathBuf,
    config: Config,
    pipeline: Pipeline,
    state: Arc<AppState>,
    clock: Arc<dyn Clock>,
}

fn context(
    config: &Config,
    state: &AppState,
    clock: &Arc<dyn Clock>,
) -> Result<Arc<Context>, ReadError> {
    Ok(Arc::new(Context {
        reader: PrometheusReader::new(&config.prometheus)?,
        telemetry: Arc::clone(&state.telemetry),
        snapshot: Arc::clone(&state.snapshot),
        upstream: Arc::clone(&state.upstream),
        clock: Arc::clone(clock),
    }))
}

/// Runs until SIGTERM or SIGINT, then drains within `server.shutdown_grace`.
pub async fn run(config_path: &Path, config: Config) -> Result<(), AppError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let telemetry = Arc::new(Telemetry::new(VERSION));
    telemetry.config_loaded(true, clock.now_ms() as f64 / 1000.0);
    let address = config.server.listen_address;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| AppError::Bind { address, source })?;
    let mut signals = Signals::install().map_err(AppError::Signals)?;
    let (reload_sender, mut reload_requests) = mpsc::channel::<ReloadRequest>(4);
    let state = Arc::new(AppState {
        snapshot: Arc::new(SnapshotCell::default()),
        upstream: Arc::new(UpstreamHealth::new(Arc::clone(&telemetry))),
        telemetry,
        lifecycle_enabled: AtomicBool::new(config.server.enable_lifecycle),
        reload: reload_sender,
        shutting_down: AtomicBool::new(false),
    });
    let stop_serving = CancellationToken::new();
    let grace = config.server.shutdown_grace;
    let server = tokio::spawn(server::serve(
        listener,
        Arc::clone(&state),
        stop_serving.clone(),
        grace,
    ));
    let tasks = carry_over(Vec::new(), &config.queries);
    let pipeline = Pipeline::start(context(&config, &state, &clock)?, tasks);
    tracing::info!(version = VERSION, %address, queries = config.queries.len(), prometheus = %config.prometheus.url, "foretell started");

    let mut running = Running {
        config_path: config_path.to_owned(),
        config,
        pipeline,
        state: Arc::clone(&state),
        clock,
    };
    loop {
        tokio::select! {
            event = signals.next() => match event {
                SignalEvent::Terminate(name) => {
                    tracing::info!(signal = name, "shutting down");
                    break;
                }
                SignalEvent::Reload => {
                    let _ = running.reload().await;
                }
            },
            Some(request) = reload_requests.recv() => {
                let outcome = running.reload().await;
                let _ = request.reply.send(outcome);
            }
        }
    }

    state.shutting_down.store(true, Ordering::SeqCst);
    stop_serving.cancel();
    if tokio::time::timeout(grace, running.pipeline.stop())
        .await
        .is_err()
    {
        tracing::warn!(?grace, "query tasks did not stop within the grace period");
    }
    if tokio::time::timeout(grace + Duration::from_secs(1), server)
        .await
        .is_err()
    {
        tracing::warn!("HTTP server did not stop within the grace period");
    }
    tracing::info!("foretell stopped");
    Ok(())
}

impl Running {
    /// Loads the file again; a valid config replaces the running one (keeping loaded series of
    /// unchanged queries), an invalid one is rejected and the old one keeps running.
    async fn reload(&mut self) -> Result<(), String> {
        let now_seconds = self.clock.now_ms() as f64 / 1000.0;
        let telemetry = Arc::clone(&self.state.telemetry);
        let new = match config::load_file(&self.config_path, &SystemEnvironment) {
            Ok(new) => new,
            Err(error) => {
                telemetry.config_loaded(false, now_seconds);
                tracing::error!(%error, "configuration reload rejected; the previous configuration keeps running");
                return Err(error.to_string());
            }
        };
        if new.server.listen_address != self.config.server.listen_address
            || new.server.shutdown_grace != self.config.server.shutdown_grace
        {
            tracing::warn!(
                "server.listen_address and server.shutdown_grace take effect after a restart"
            );
        }
        let ctx = match context(&new, &self.state, &self.clock) {
            Ok(ctx) => ctx,
            Err(error) => {
                telemetry.config_loaded(false, now_seconds);
                tracing::error!(%error, "configuration reload rejected; the previous configuration keeps running");
                return Err(error.to_string());
            }
        };
        let old_tasks: Vec<QueryTask> = std::mem::replace(&mut self.pipeline, Pipeline::idle())
            .stop()
            .await;
        let names: Vec<String> = new.queries.iter().map(|q| q.name.clone()).collect();
        self.state.snapshot.retain_queries(&names);
        telemetry.retain_queries(&names);
        self.pipeline = Pipeline::start(ctx, carry_over(old_tasks, &new.queries));
        self.state
            .lifecycle_enabled
            .store(new.server.enable_lifecycle, Ordering::SeqCst);
        self.config = new;
        telemetry.config_loaded(true, now_seconds);
        tracing::info!(queries = names.len(), "configuration reloaded");
        Ok(())
    }
}
