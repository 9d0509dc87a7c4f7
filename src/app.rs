//! Wires the stages together for `foretell run`: server, pipeline, reloads and shutdown.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use foretell_core::audit::Event;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::alerts::{AlertPath, GraphLinks};
use crate::audit::log::AuditLog;
use crate::clock::Clock;
use crate::config::{self, Config, ServerConfig, SystemEnvironment};
use crate::db::{DbError, Writer};
use crate::exporter::registry::Registry;
use crate::exporter::telemetry::Telemetry;
use crate::graph::{ExpressionCharts, Grapher};
use crate::pipeline::{carry_over, Context, Pipeline, QueryTask, SnapshotCell};
use crate::reader::{PrometheusReader, ReadError};
use crate::server::{self, AppState, ReloadError, ReloadRequest};
use crate::shutdown::{SignalEvent, Signals};
use crate::state::StateStore;
use foretell_core::chart::link::LinkSigner;

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
    #[error("cannot open the audit log: {0}")]
    Audit(#[from] DbError),
    #[error("remote_write: {0}")]
    RemoteWrite(#[from] crate::exporter::remote_write::ClientSetupError),
    #[error(transparent)]
    Pipeline(#[from] ReloadError),
}

struct Running {
    overrides: Overrides,
    config_path: PathBuf,
    config: Config,
    pipeline: Pipeline,
    state: Arc<AppState>,
    clock: Arc<dyn Clock>,
    audit: Option<Arc<AuditLog>>,
    /// The writer of the audit database, closed last at shutdown.
    database: Option<Arc<Writer>>,
    /// SHA-256 of the file as last loaded or tried, so the auto-reload tries a changed file
    /// once (a broken edit is reported once, not at every check).
    loaded_hash: Option<String>,
}

fn context(
    config: &Config,
    state: &AppState,
    clock: &Arc<dyn Clock>,
    audit: &Option<Arc<AuditLog>>,
) -> Result<Arc<Context>, ReloadError> {
    let state_store = match &config.state {
        Some(settings) => Some(Arc::new(StateStore::open(settings, config.shard).map_err(
            |source| ReloadError::StateFolder {
                path: settings.path.clone(),
                source,
            },
        )?)),
        None => None,
    };
    Ok(Arc::new(Context {
        reader: PrometheusReader::new(&config.prometheus)?,
        audit: audit.clone(),
        telemetry: Arc::clone(&state.telemetry),
        snapshot: Arc::clone(&state.snapshot),
        upstream: Arc::clone(&state.upstream),
        clock: Arc::clone(clock),
        shard: config.shard,
        state: state_store,
    }))
}

/// Where users reach foretell, for links: `server.external_url`, else the listen address (this
/// host's name when listening on all interfaces), the way Prometheus derives its own.
/// Charts of expressions follow on-demand assessment, with links signed by the audit keys
/// (alerts need an audit log, so there always are keys when there are alerts).
fn expression_charts(config: &Config) -> Option<ExpressionCharts> {
    let settings = config.alerts.as_ref()?.on_demand?;
    let keys = &config.audit.as_ref()?.keys;
    Some(ExpressionCharts {
        settings,
        signer: LinkSigner::new(keys),
    })
}

/// The URL foretell's links start with: `server.external_url`, or the listen address with the
/// scheme it is served with.
fn external_url(server: &ServerConfig, tls: bool) -> Option<Url> {
    if let Some(url) = &server.external_url {
        return Some(url.clone());
    }
    let address = server.listen_address;
    let host = if address.ip().is_unspecified() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_owned())
    } else {
        match address.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    };
    let scheme = if tls { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{}/", address.port());
    match Url::parse(&url) {
        Ok(url) => Some(url),
        Err(error) => {
            tracing::warn!(%url, %error, "no graph links in enriched alerts: set server.external_url");
            None
        }
    }
}

/// Each query's name and expression, for `foretell_query_info`.
fn query_expressions(config: &Config) -> Vec<(String, String)> {
    config
        .queries
        .iter()
        .map(|q| (q.name.clone(), q.expr.clone()))
        .collect()
}

/// The next tick of the auto-reload check; never when it is off.
async fn next_tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// SHA-256 of the configuration file as read, so a record names exactly which file was in force
/// (`None` when it cannot be read again).
fn config_hash(path: &Path) -> Option<String> {
    let bytes = config::read_bounded(path, config::MAX_FILE_BYTES).ok()?;
    Some(foretell_core::audit::keys::encode_hex(&Sha256::digest(
        bytes,
    )))
}

/// What the command line sets over the configuration file, on every load and reload.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub shard: Option<foretell_core::shard::Shard>,
    /// `--web.listen-address`.
    pub listen_address: Option<std::net::SocketAddr>,
    /// `--web.enable-lifecycle`: on when given; the file decides when not.
    pub enable_lifecycle: bool,
    /// `--web.external-url`.
    pub external_url: Option<url::Url>,
    /// `--config.auto-reload-interval`: how often the file is checked for a change (not a
    /// key of the file: it says how the file is read).
    pub auto_reload_interval: Option<std::time::Duration>,
}

impl Overrides {
    /// The configuration with the flags in place of the keys they name: a flag wins, on every
    /// reload too.
    fn apply(&self, mut config: Config) -> Config {
        if let Some(shard) = self.shard {
            config.shard = shard;
        }
        if let Some(address) = self.listen_address {
            config.server.listen_address = address;
        }
        config.server.enable_lifecycle |= self.enable_lifecycle;
        if let Some(url) = &self.external_url {
            config.server.external_url = Some(url.clone());
        }
        config
    }
}

/// Runs until SIGTERM or SIGINT, then drains within `server.shutdown_grace`.
/// `web`: TLS and basic auth of the listener (`--web.config.file`); restart to change.
pub async fn run(
    config_path: &Path,
    config: Config,
    overrides: Overrides,
    web: crate::server::web_config::WebConfig,
) -> Result<(), AppError> {
    let config = overrides.apply(config);
    let loaded_hash = config_hash(config_path);
    for warning in &config.warnings {
        tracing::warn!(%warning, "configuration");
    }
    let clock: Arc<dyn Clock> = crate::clock::system();
    let telemetry = Arc::new(Telemetry::new(VERSION));
    // Each stage registers its self-metrics here as it is built; `/metrics` renders them all.
    let registry = Arc::new(Registry::with(telemetry.clone()));
    telemetry.config_loaded(true, clock.now_ms() as f64 / 1000.0);
    telemetry.set_shard(config.shard.index(), config.shard.count());
    telemetry.set_query_expressions(query_expressions(&config));
    let database = match &config.audit {
        Some(settings) => Some(Arc::new(crate::audit::log::start_writer(
            &settings.path,
            settings.keys.clone(),
            Arc::clone(&telemetry),
            clock.now_ms(),
        )?)),
        None => {
            tracing::warn!(
                "no audit log: decisions are not recorded (set audit.path and audit.key_file)"
            );
            None
        }
    };
    let audit = database
        .as_ref()
        .map(|writer| Arc::new(AuditLog::new(Arc::clone(writer))));
    let stop_verifying = CancellationToken::new();
    let mut verifying = None;
    if let (Some(audit), Some(settings)) = (&audit, &config.audit) {
        if let Some(interval) = settings.verify_interval {
            verifying = Some(tokio::spawn(crate::audit::log::self_verify(
                Arc::clone(audit),
                settings.path.clone(),
                settings.keys.clone(),
                interval,
                Arc::clone(&clock),
                stop_verifying.clone(),
            )));
        }
    }
    if let Some(audit) = &audit {
        let now_ms = clock.now_ms();
        audit.record(
            Event::ProcessStarted {
                version: VERSION.into(),
                pid: std::process::id(),
                listen_address: config.server.listen_address.to_string(),
            }
            .entry(now_ms),
        );
        audit.record(
            Event::ConfigLoaded {
                file: config_path.display().to_string(),
                sha256: loaded_hash.clone(),
                queries: config.queries.len(),
            }
            .entry(now_ms),
        );
    }
    let address = config.server.listen_address;
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| AppError::Bind { address, source })?;
    let mut signals = Signals::install().map_err(AppError::Signals)?;
    let (reload_sender, mut reload_requests) = mpsc::channel::<ReloadRequest>(4);
    let snapshot = Arc::new(SnapshotCell::default());
    let external_url = external_url(&config.server, web.tls.is_some());
    let base = external_url
        .as_ref()
        .map_or_else(String::new, |url| url.to_string());
    let alerts = match (&config.alerts, &database, &config.audit) {
        (Some(settings), Some(database), Some(audit_settings)) => Some(Arc::new(AlertPath::new(
            settings.clone(),
            Arc::clone(database),
            audit_settings.path.clone(),
            Arc::clone(&clock),
            Arc::clone(&snapshot),
            &config.queries,
            Some(PrometheusReader::new(&config.prometheus)?),
            GraphLinks {
                base: external_url,
                signer: Some(LinkSigner::new(&audit_settings.keys)),
            },
            &registry,
        ))),
        _ => None,
    };
    let graphs = Arc::new(Grapher::new(
        PrometheusReader::new(&config.prometheus)?,
        &config.queries,
        expression_charts(&config),
        Arc::clone(&clock),
    ));
    let state = Arc::new(AppState {
        lifecycle_enabled: AtomicBool::new(config.server.enable_lifecycle),
        max_exported_series: Arc::new(std::sync::atomic::AtomicUsize::new(
            config.server.max_exported_series,
        )),
        alerts: alerts.clone(),
        registry,
        info: std::sync::RwLock::new(server::StatusInfo::of(&config)),
        ..AppState::new(snapshot, telemetry, reload_sender, graphs)
    });
    let stop_alerts = CancellationToken::new();
    let alert_tasks = alerts
        .as_ref()
        .map(|alerts| alerts.start(&stop_alerts))
        .unwrap_or_default();
    let stop_serving = CancellationToken::new();
    let grace = config.server.shutdown_grace;
    let scheme = if web.tls.is_some() { "https" } else { "http" };
    let server = tokio::spawn(server::serve(
        listener,
        Arc::clone(&state),
        web,
        stop_serving.clone(),
        grace,
    ));
    let stop_pushing = CancellationToken::new();
    let pushing = match &config.remote_write {
        Some(settings) => {
            let writer = crate::exporter::remote_write::RemoteWriter::new(
                settings.clone(),
                Arc::clone(&state.telemetry),
                Arc::clone(&clock),
            )
            .map_err(AppError::RemoteWrite)?;
            tracing::info!(
                url = %settings.url,
                "pushing predictions by remote write"
            );
            Some(tokio::spawn(writer.run(
                Arc::clone(&state.snapshot),
                Arc::clone(&state.max_exported_series),
                stop_pushing.clone(),
            )))
        }
        None => None,
    };
    let tasks = carry_over(Vec::new(), &config.queries);
    let pipeline = Pipeline::start(context(&config, &state, &clock, &audit)?, tasks);
    tracing::info!(version = VERSION, %address, scheme, external_url = %base, queries = config.queries.len(), prometheus = %config.prometheus.url, "foretell started");

    let mut running = Running {
        overrides,
        config_path: config_path.to_owned(),
        config,
        pipeline,
        state: Arc::clone(&state),
        clock,
        audit,
        database,
        loaded_hash,
    };
    let mut auto_reload = running.overrides.auto_reload_interval.map(|every| {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        tokio::select! {
            () = next_tick(&mut auto_reload) => {
                if config_hash(&running.config_path) != running.loaded_hash {
                    tracing::info!(path = %running.config_path.display(), "configuration file changed");
                    let _ = running.reload("config:auto-reload").await;
                }
            }
            event = signals.next() => match event {
                SignalEvent::Terminate(name) => {
                    tracing::info!(signal = name, "shutting down");
                    break;
                }
                SignalEvent::Reload => {
                    let _ = running.reload("signal:SIGHUP").await;
                }
            },
            Some(request) = reload_requests.recv() => {
                let outcome = running.reload(&request.actor).await;
                let _ = request.reply.send(outcome);
            }
        }
    }

    state.shutting_down.store(true, Ordering::SeqCst);
    // Every stage drains within one `shutdown_grace`, counted from the signal: a stage that
    // overruns takes from the ones after it, never adds a grace of its own.
    let deadline = crate::clock::deadline_after(grace);
    stop_serving.cancel();
    let (pipeline_stopped, server_stopped) = tokio::join!(
        tokio::time::timeout_at(deadline, running.pipeline.shutdown()),
        tokio::time::timeout_at(deadline, server),
    );
    if pipeline_stopped.is_err() {
        tracing::warn!(
            ?grace,
            "query tasks did not stop (and write their state files) within the grace period"
        );
    }
    if server_stopped.is_err() {
        tracing::warn!(?grace, "HTTP server did not stop within the grace period");
    }
    // The server has drained, so no notification is being accepted any more; deliveries in
    // flight finish or stay queued for the next start. Pushing is abandoned mid-request (the
    // predictions are derived data); a check of the log in progress finishes first.
    stop_alerts.cancel();
    stop_pushing.cancel();
    stop_verifying.cancel();
    let background = alert_tasks.into_iter().chain(pushing).chain(verifying);
    let stopped = futures_util::future::join_all(
        background.map(|task| tokio::time::timeout_at(deadline, task)),
    )
    .await;
    if stopped.iter().any(Result::is_err) {
        tracing::warn!(
            ?grace,
            "alert, push or verify tasks did not stop within the grace period"
        );
    }
    if let Some(audit) = running.audit.take() {
        let stopped = Event::ProcessStopped {
            version: VERSION.into(),
        }
        .entry(running.clock.now_ms());
        if let Err(error) = audit.record_durably(stopped).await {
            tracing::error!(%error, "the stop could not be recorded in the audit log");
        }
    }
    if let Some(database) = running.database.take() {
        // Everything that records has stopped; closing flushes the writer.
        database.close();
    }
    tracing::info!("foretell stopped");
    Ok(())
}

impl Running {
    /// Loads the file again; a valid config replaces the running one (keeping loaded series of
    /// unchanged queries), an invalid one is rejected and the old one keeps running.
    async fn reload(&mut self, actor: &str) -> Result<(), ReloadError> {
        let outcome = self.apply_reload().await;
        let hash = config_hash(&self.config_path);
        self.loaded_hash.clone_from(&hash);
        if let Some(audit) = &self.audit {
            let file = self.config_path.display().to_string();
            let event = match &outcome {
                Ok(queries) => Event::ConfigReloaded {
                    file,
                    sha256: hash,
                    queries: *queries,
                },
                Err(error) => Event::ConfigRejected {
                    file,
                    sha256: hash,
                    error: error.to_string(),
                },
            };
            audit.record(event.entry_by(self.clock.now_ms(), actor));
        }
        outcome.map(|_| ())
    }

    /// The reload itself; the number of queries now running on success.
    async fn apply_reload(&mut self) -> Result<usize, ReloadError> {
        let now_seconds = self.clock.now_ms() as f64 / 1000.0;
        let telemetry = Arc::clone(&self.state.telemetry);
        let new = match config::load_file(&self.config_path, &SystemEnvironment) {
            Ok(new) => {
                for warning in &new.warnings {
                    tracing::warn!(%warning, "configuration");
                }
                self.overrides.apply(new)
            }
            Err(error) => {
                telemetry.config_loaded(false, now_seconds);
                tracing::error!(%error, "configuration reload rejected; the previous configuration keeps running");
                return Err(error.into());
            }
        };
        if new.audit != self.config.audit {
            tracing::warn!("audit.path and audit keys take effect after a restart");
        }
        if new.alerts != self.config.alerts {
            tracing::warn!(
                "changes to `alerts` (receivers, routes, limits) take effect after a restart"
            );
        }
        if new.server.listen_address != self.config.server.listen_address
            || new.server.shutdown_grace != self.config.server.shutdown_grace
        {
            tracing::warn!(
                "server.listen_address and server.shutdown_grace take effect after a restart"
            );
        }
        let ctx = match context(&new, &self.state, &self.clock, &self.audit) {
            Ok(ctx) => ctx,
            Err(error) => {
                telemetry.config_loaded(false, now_seconds);
                tracing::error!(%error, "configuration reload rejected; the previous configuration keeps running");
                return Err(error);
            }
        };
        let old_tasks: Vec<QueryTask> = std::mem::replace(&mut self.pipeline, Pipeline::idle())
            .stop()
            .await;
        let names: Vec<String> = new.queries.iter().map(|q| q.name.clone()).collect();
        self.state.snapshot.retain_queries(&names);
        telemetry.retain_queries(&names);
        self.state.upstream.retain_queries(&names);
        self.pipeline = Pipeline::start(ctx, carry_over(old_tasks, &new.queries));
        self.state
            .lifecycle_enabled
            .store(new.server.enable_lifecycle, Ordering::SeqCst);
        self.state
            .max_exported_series
            .store(new.server.max_exported_series, Ordering::SeqCst);
        if let Some(alerts) = &self.state.alerts {
            alerts.set_queries(&new.queries);
        }
        *self.state.info.write().unwrap_or_else(|e| e.into_inner()) = server::StatusInfo::of(&new);
        match PrometheusReader::new(&new.prometheus) {
            Ok(reader) => self.state.graphs.set_queries(&new.queries, Some(reader)),
            // `context` above built the same client without error.
            Err(error) => tracing::warn!(%error, "charts keep the previous Prometheus client"),
        }
        telemetry.set_shard(new.shard.index(), new.shard.count());
        telemetry.set_query_expressions(query_expressions(&new));
        self.config = new;
        telemetry.config_loaded(true, now_seconds);
        tracing::info!(queries = names.len(), "configuration reloaded");
        Ok(names.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21, item 1: a flag wins over its key; `--web.enable-lifecycle` only turns the API
    /// on, as in Prometheus; without flags the file decides.
    #[test]
    fn flags_win_over_the_keys_they_name() {
        let text = "prometheus:\n  url: http://127.0.0.1:9\nserver:\n  listen_address: 127.0.0.1:9000\n  enable_lifecycle: true\n  external_url: https://file.example/\nqueries:\n  - name: q\n    expr: up\n";
        let config = crate::config::parse(
            text,
            Path::new("test.yml"),
            &crate::config::SystemEnvironment,
        )
        .expect("valid");
        let untouched = Overrides::default().apply(config.clone());
        assert_eq!(untouched, config);
        let flags = Overrides {
            shard: None,
            listen_address: Some("0.0.0.0:9999".parse().expect("address")),
            enable_lifecycle: false,
            external_url: Some(url::Url::parse("https://flag.example/").expect("url")),
            auto_reload_interval: None,
        };
        let applied = flags.apply(config.clone());
        assert_eq!(applied.server.listen_address.port(), 9999);
        assert_eq!(
            applied.server.external_url.as_ref().map(url::Url::as_str),
            Some("https://flag.example/")
        );
        assert!(applied.server.enable_lifecycle, "the file's true stays");
        let mut off = config;
        off.server.enable_lifecycle = false;
        let on = Overrides {
            enable_lifecycle: true,
            ..Overrides::default()
        };
        assert!(on.apply(off).server.enable_lifecycle);
    }

    /// Issue 16, item 8: with TLS on, links defaulted to `http://`.
    #[test]
    fn the_default_external_url_has_the_scheme_foretell_serves() {
        let server = ServerConfig {
            listen_address: "127.0.0.1:9896".parse().expect("address"),
            shutdown_grace: std::time::Duration::from_secs(1),
            enable_lifecycle: false,
            external_url: None,
            max_exported_series: crate::config::DEFAULT_MAX_EXPORTED_SERIES,
        };
        assert_eq!(
            external_url(&server, true).map(|u| u.to_string()),
            Some("https://127.0.0.1:9896/".to_owned())
        );
        assert_eq!(
            external_url(&server, false).map(|u| u.to_string()),
            Some("http://127.0.0.1:9896/".to_owned())
        );
        let configured = ServerConfig {
            external_url: Url::parse("https://ops.example/foretell/").ok(),
            ..server
        };
        assert_eq!(
            external_url(&configured, false).map(|u| u.to_string()),
            Some("https://ops.example/foretell/".to_owned())
        );
    }
}
