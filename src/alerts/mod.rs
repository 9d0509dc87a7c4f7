//! The alert path, along its data flow: Alertmanager's notifications come in at the
//! [`webhook`], wait in the durable [`outbox`] in the audit database, are assessed
//! ([`assess`]: evidence and confidence) and routed ([`router`]: routes and confidence
//! thresholds), then delivered by one [`forwarder`] per receiver (retries, circuit breaker,
//! dead letters).
//!
//! A notification is committed with its `alert.received` record before Alertmanager hears 2xx;
//! every later step (routed, forwarded, retried, dead-lettered, suppressed) commits its state
//! change with its record. A crash at any point leaves work the next start picks up. Each
//! stage holds what it needs: the settings of its part, the outbox handle, the self-metrics
//! and the clock; they wake each other with `Notify`s.

pub mod assess;
pub mod forwarder;
pub mod metrics;
pub mod outbox;
pub mod router;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::{AlertsConfig, QueryConfig};
use crate::db::{DbError, Writer};
use crate::exporter::registry::Registry;
use crate::pipeline::SnapshotCell;
use crate::reader::PrometheusReader;
use metrics::AlertTelemetry;

/// What assessment needs to know about a tracked query.
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

/// Links from enriched alerts to foretell's charts.
#[derive(Clone, Default)]
pub struct GraphLinks {
    /// foretell's external URL: enriched alerts link to `/graph` under it.
    pub base: Option<url::Url>,
    /// Signs links to charts of rule expressions, the only ones `/graph` draws by default.
    pub signer: Option<foretell_core::chart::link::LinkSigner>,
}

/// The alert path of a running sidecar: its stages, each built with what it needs.
pub struct AlertPath {
    webhook: webhook::Webhook,
    router: Arc<router::Router>,
    forwarders: Vec<Arc<forwarder::Forwarder>>,
    outbox: outbox::Outbox,
    sources: Arc<assess::Sources>,
    clock: Arc<dyn Clock>,
    /// Wakes each receiver's forwarder when deliveries were queued.
    queued: Vec<Arc<Notify>>,
}

impl AlertPath {
    /// The stages for `config`, writing to the database at `db_path` through `database`.
    /// `prometheus` serves on-demand assessment when `config.on_demand` is set. The alert
    /// path's self-metrics are registered in `registry`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: AlertsConfig,
        database: Arc<Writer>,
        db_path: PathBuf,
        clock: Arc<dyn Clock>,
        snapshot: Arc<SnapshotCell>,
        queries: &[QueryConfig],
        prometheus: Option<PrometheusReader>,
        links: GraphLinks,
        registry: &Registry,
    ) -> AlertPath {
        let receivers: Vec<String> = config.receivers.iter().map(|r| r.name.clone()).collect();
        let telemetry = Arc::new(AlertTelemetry::new(&receivers));
        registry.register(telemetry.clone());
        let outbox = outbox::Outbox::new(database, db_path);
        let received = Arc::new(Notify::new());
        let queued: BTreeMap<String, Arc<Notify>> = receivers
            .iter()
            .map(|r| (r.clone(), Arc::new(Notify::new())))
            .collect();
        let sources = Arc::new(assess::Sources::new(
            snapshot,
            queries,
            config.on_demand.zip(prometheus),
            links,
        ));
        let webhook = webhook::Webhook::new(
            &config,
            outbox.clone(),
            Arc::clone(&telemetry),
            Arc::clone(&clock),
            Arc::clone(&received),
        );
        let router = Arc::new(router::Router::new(
            &config,
            outbox.clone(),
            Arc::clone(&sources),
            Arc::clone(&telemetry),
            Arc::clone(&clock),
            received,
            queued.clone(),
        ));
        let forwarders = config
            .receivers
            .iter()
            .map(|receiver| {
                Arc::new(forwarder::Forwarder::new(
                    receiver.clone(),
                    &config,
                    outbox.clone(),
                    Arc::clone(&telemetry),
                    Arc::clone(&clock),
                    Arc::clone(&queued[&receiver.name]),
                ))
            })
            .collect();
        AlertPath {
            webhook,
            router,
            forwarders,
            outbox,
            sources,
            clock,
            queued: queued.into_values().collect(),
        }
    }

    /// The inbound stage, for `POST /alertmanager/webhook`.
    pub fn webhook(&self) -> &webhook::Webhook {
        &self.webhook
    }

    /// Follows a reload: alerts on series of new or changed queries use their new step and
    /// horizons.
    pub fn set_queries(&self, queries: &[QueryConfig]) {
        self.sources.set_queries(queries);
    }

    /// Starts the router and one forwarder per receiver; they run until `cancel`.
    pub fn start(&self, cancel: &CancellationToken) -> Vec<JoinHandle<()>> {
        let mut tasks = vec![tokio::spawn(router::run(
            Arc::clone(&self.router),
            cancel.clone(),
        ))];
        for forwarder in &self.forwarders {
            tasks.push(tokio::spawn(forwarder::run(
                Arc::clone(forwarder),
                cancel.clone(),
            )));
        }
        tasks
    }

    /// The newest `limit` alerts with their confidence and outcome, for the status page.
    pub async fn recent_alerts(&self, limit: usize) -> Result<Vec<outbox::RecentAlert>, DbError> {
        self.outbox.recent_alerts(limit).await
    }

    /// Dead letters, oldest first.
    pub async fn dead_letters(&self) -> Result<Vec<outbox::DeadLetter>, DbError> {
        self.outbox.dead_letters().await
    }

    /// Puts dead letters back in the queue (`None`: all of them); returns the ids requeued.
    pub async fn retry_dead_letters(
        &self,
        ids: Option<Vec<i64>>,
        actor: &str,
    ) -> Result<Vec<i64>, DbError> {
        let requeued = self
            .outbox
            .requeue_dead_letters(ids, actor.to_owned(), self.clock.now_ms())
            .await?;
        for notify in &self.queued {
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
