//! The alert path: Alertmanager's webhook in ([`receiver`]), evidence and confidence
//! ([`assess`]), routing ([`enricher`]), delivery out ([`forwarder`]), all through the durable [`outbox`] in the
//! audit database.
//!
//! A notification is committed with its `alert.received` record before Alertmanager hears 2xx;
//! every later step (routed, forwarded, retried, dead-lettered, suppressed) commits its state
//! change with its record. A crash at any point leaves work the next start picks up.

pub mod assess;
pub mod bench;
pub mod enricher;
pub mod forwarder;
pub mod metrics;
pub mod outbox;
pub mod receiver;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use foretell_core::alerts::rate_limit::{Admission, RateLimiter};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{AlertsConfig, QueryConfig};
use crate::db::Writer;
use crate::pipeline::SnapshotCell;
use crate::reader::PrometheusReader;
use metrics::AlertTelemetry;

/// What enrichment needs to know about a tracked query.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryShape {
    pub step_ms: i64,
    /// `(label, steps)` of each forecast horizon.
    pub horizons: Vec<(String, u32)>,
}

impl QueryShape {
    pub fn of(query: &QueryConfig) -> QueryShape {
        QueryShape {
            step_ms: query.step_ms(),
            horizons: query
                .horizons
                .iter()
                .map(|h| (h.label.clone(), h.steps))
                .collect(),
        }
    }
}

fn shapes(queries: &[QueryConfig]) -> BTreeMap<String, QueryShape> {
    queries
        .iter()
        .map(|q| (q.name.clone(), QueryShape::of(q)))
        .collect()
}

/// Shared by the webhook handler and the alert tasks.
pub struct Enrichment {
    pub config: AlertsConfig,
    /// The database writer: the outbox's state changes commit with their audit records.
    pub database: Arc<Writer>,
    pub db_path: PathBuf,
    pub telemetry: Arc<AlertTelemetry>,
    pub clock: Arc<dyn Clock>,
    pub snapshot: Arc<SnapshotCell>,
    /// Shapes (step, horizons) of the queries running now; replaced on reload.
    queries: std::sync::RwLock<BTreeMap<String, QueryShape>>,
    /// For alerts on series foretell does not track; `None` when on-demand is off.
    pub prometheus: Option<PrometheusReader>,
    /// Wakes the enricher when a notification was committed.
    pub received: Notify,
    /// Wakes each receiver's forwarder when deliveries were queued.
    pub queued: BTreeMap<String, Notify>,
    /// foretell's external URL: enriched alerts link to `/graph` under it.
    pub graph_base: Option<url::Url>,
    /// Signs links to charts of rule expressions, the only ones `/graph` draws by default.
    pub graph_signer: Option<foretell_core::chart::link::LinkSigner>,
    /// On-demand ranges shared across notifications within one step.
    ranges: assess::RangeCache,
    /// Per-client token buckets of the webhook, refilled on the monotonic clock.
    limiter: std::sync::Mutex<RateLimiter<std::net::IpAddr>>,
    /// Per-client buckets of requests with a missing or wrong token, apart from `limiter`.
    auth_failures: std::sync::Mutex<RateLimiter<std::net::IpAddr>>,
}

/// Client addresses whose webhook rate is remembered at once.
const MAX_RATE_LIMITED_CLIENTS: usize = 10_000;

/// Requests with a missing or wrong token an address may make: a burst of 10, then one a
/// second. They never draw on the bucket of the notifications the same address sends with
/// the right token.
const AUTH_FAILURES: foretell_core::alerts::rate_limit::RateLimit =
    foretell_core::alerts::rate_limit::RateLimit {
        per_second: 1.0,
        burst: 10.0,
    };

impl Enrichment {
    /// `None` when `client` may post now; otherwise how long it should wait. Requests that
    /// failed authentication are limited on their own buckets.
    pub fn rate_limited(
        &self,
        client: std::net::IpAddr,
        authenticated: bool,
    ) -> Option<std::time::Duration> {
        let now_ms = self.clock.monotonic_ms();
        let limiter = if authenticated {
            &self.limiter
        } else {
            &self.auth_failures
        };
        match limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(&client, now_ms)
        {
            Admission::Allowed => None,
            Admission::RetryAfterMs(ms) => Some(std::time::Duration::from_millis(ms as u64)),
        }
    }

    pub fn new(
        config: AlertsConfig,
        database: Arc<Writer>,
        db_path: PathBuf,
        clock: Arc<dyn Clock>,
        snapshot: Arc<SnapshotCell>,
        queries: &[QueryConfig],
        prometheus: Option<PrometheusReader>,
    ) -> Enrichment {
        let config_rate_limit = config.rate_limit;
        let receivers: Vec<String> = config.receivers.iter().map(|r| r.name.clone()).collect();
        Enrichment {
            telemetry: Arc::new(AlertTelemetry::new(&receivers)),
            queued: receivers
                .iter()
                .map(|r| (r.clone(), Notify::new()))
                .collect(),
            queries: std::sync::RwLock::new(shapes(queries)),
            prometheus: if config.on_demand.is_some() {
                prometheus
            } else {
                None
            },
            config,
            database,
            db_path,
            clock,
            snapshot,
            received: Notify::new(),
            graph_base: None,
            graph_signer: None,
            ranges: assess::RangeCache::default(),
            limiter: std::sync::Mutex::new(RateLimiter::new(
                config_rate_limit,
                MAX_RATE_LIMITED_CLIENTS,
            )),
            auth_failures: std::sync::Mutex::new(RateLimiter::new(
                AUTH_FAILURES,
                MAX_RATE_LIMITED_CLIENTS,
            )),
        }
    }

    /// Enriched alerts get a `foretell_graph_url` annotation under `base`, links to charts of
    /// expressions signed by `signer`.
    pub fn with_graph_links(
        mut self,
        base: Option<url::Url>,
        signer: Option<foretell_core::chart::link::LinkSigner>,
    ) -> Enrichment {
        self.graph_base = base;
        self.graph_signer = signer;
        self
    }

    /// Follows a reload: alerts on series of new or changed queries use their new step and
    /// horizons.
    pub fn set_queries(&self, queries: &[QueryConfig]) {
        *self.queries.write().unwrap_or_else(|e| e.into_inner()) = shapes(queries);
    }

    pub fn query_shape(&self, query: &str) -> Option<QueryShape> {
        self.queries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(query)
            .cloned()
    }

    /// Starts the enricher and one forwarder per receiver; they run until `cancel`.
    pub fn start(self: &Arc<Self>, cancel: &CancellationToken) -> Vec<JoinHandle<()>> {
        let mut tasks = vec![tokio::spawn(enricher::run(
            Arc::clone(self),
            cancel.clone(),
        ))];
        for receiver in &self.config.receivers {
            tasks.push(tokio::spawn(forwarder::run(
                Arc::clone(self),
                receiver.clone(),
                cancel.clone(),
            )));
        }
        tasks
    }
}

impl Enrichment {
    /// The newest `limit` alerts with their confidence and outcome, for the status page.
    pub async fn recent_alerts(&self, limit: usize) -> Result<Vec<outbox::RecentAlert>, String> {
        let path = self.db_path.clone();
        tokio::task::spawn_blocking(move || {
            let connection = outbox::open_reader(&path).map_err(|e| e.to_string())?;
            outbox::recent_alerts(&connection, limit).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Dead letters as JSON lines, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<outbox::DeadLetter>, String> {
        let path = self.db_path.clone();
        tokio::task::spawn_blocking(move || {
            let connection = outbox::open_reader(&path).map_err(|e| e.to_string())?;
            outbox::dead_letters(&connection).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Puts dead letters back in the queue (`None`: all of them); returns the ids requeued.
    pub async fn retry_dead_letters(
        &self,
        ids: Option<Vec<i64>>,
        actor: &str,
    ) -> Result<Vec<i64>, crate::db::DbError> {
        let now_ms = self.clock.now_ms();
        let actor = actor.to_owned();
        let requeued = self
            .database
            .transact(move |transaction, appender| {
                outbox::requeue_dead_letters(transaction, appender, ids.as_deref(), &actor, now_ms)
            })
            .await?;
        for notify in self.queued.values() {
            notify.notify_one();
        }
        Ok(requeued)
    }
}

/// Waits for `notify`, `cancel` or `timeout`, whichever comes first; false when cancelled.
async fn pause(notify: Option<&Notify>, cancel: &CancellationToken, timeout: Duration) -> bool {
    let notified = async {
        match notify {
            Some(notify) => notify.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = notified => true,
        _ = tokio::time::sleep(timeout) => true,
    }
}

#[cfg(test)]
mod tests;
