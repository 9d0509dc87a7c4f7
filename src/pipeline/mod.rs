//! The evaluation loop: one task per query, each cycle fetch → evaluate → publish.
//!
//! Fetching is async and cancellable; evaluation (merge, fit, score) is CPU work and runs on
//! the blocking pool. The newest output of each query is published into the [`SnapshotCell`]
//! the exporter reads.

mod health;

use std::sync::{Arc, RwLock};
use std::time::Instant;

use foretell_core::audit::Entry;
use foretell_core::model::ProbabilitySettings;
use foretell_core::snapshot::{QueryOutput, Snapshot};
use foretell_core::tracker::{QueryTracker, TrackerSettings};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::audit::log::AuditLog;
use crate::clock::Clock;
use crate::config::QueryConfig;
use crate::reader::{PrometheusReader, RangeQuery};
use crate::telemetry::{CycleReport, Telemetry};
pub use health::{UpstreamHealth, UpstreamStatus};

/// The snapshot the exporter serves, swapped whole after every cycle.
#[derive(Default)]
pub struct SnapshotCell(RwLock<Arc<Snapshot>>);

impl SnapshotCell {
    pub fn load(&self) -> Arc<Snapshot> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn update(&self, change: impl FnOnce(&Snapshot) -> Snapshot) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        *guard = Arc::new(change(&guard));
    }

    pub fn publish(&self, output: QueryOutput) {
        self.update(|current| current.with_query(output));
    }

    /// Drops the outputs of queries no longer configured, so their series go stale.
    pub fn retain_queries(&self, names: &[String]) {
        self.update(|current| current.retaining(|name| names.iter().any(|n| n == name)));
    }
}

/// What every query task shares.
pub struct Context {
    pub reader: PrometheusReader,
    /// Where refit cycles are recorded; `None` without an audit log.
    pub audit: Option<Arc<AuditLog>>,
    pub telemetry: Arc<Telemetry>,
    pub snapshot: Arc<SnapshotCell>,
    pub upstream: Arc<UpstreamHealth>,
    pub clock: Arc<dyn Clock>,
    /// The series of each query this replica tracks.
    pub shard: foretell_core::shard::Shard,
}

/// One query's configuration, its tracked series, and where the next fetch starts.
pub struct QueryTask {
    pub config: Arc<QueryConfig>,
    tracker: QueryTracker,
    next_start_ms: Option<i64>,
}

pub(crate) fn tracker_settings(config: &QueryConfig) -> TrackerSettings {
    TrackerSettings {
        query: config.name.clone(),
        limits: config.store_limits(),
        model: config.model.clone(),
        probability: ProbabilitySettings::default(),
        refit_interval_ms: config.refit_interval.as_millis() as i64,
        horizons: config.horizons.clone(),
        threshold: config.threshold,
    }
}

impl QueryTask {
    pub fn new(config: Arc<QueryConfig>) -> Self {
        QueryTask {
            tracker: QueryTracker::new(tracker_settings(&config)),
            config,
            next_start_ms: None,
        }
    }

    /// Carries this task's loaded series into `config` when it fetches the same data;
    /// otherwise starts afresh.
    pub fn reconfigured(self, config: Arc<QueryConfig>) -> Self {
        if self.config.same_data_as(&config) {
            QueryTask {
                tracker: self.tracker.with_settings(tracker_settings(&config)),
                config,
                next_start_ms: self.next_start_ms,
            }
        } else {
            QueryTask::new(config)
        }
    }

    /// The range the next cycle fetches at `now_ms`: everything new on the grid since the
    /// last fetch, at most the configured history. `None` when no new grid point exists yet.
    pub fn next_range(&self, now_ms: i64) -> Option<(i64, i64)> {
        let step = self.config.step_ms();
        let end = now_ms - now_ms.rem_euclid(step);
        let history = self.config.history.as_millis() as i64;
        let oldest = end - (history - history.rem_euclid(step));
        let start = self.next_start_ms.map_or(oldest, |next| next.max(oldest));
        (start <= end).then_some((start, end))
    }
}

/// Runs one cycle. Returns the task, whatever happened; failures are logged and counted.
pub async fn run_cycle(
    ctx: &Context,
    mut task: QueryTask,
    cancel: &CancellationToken,
) -> QueryTask {
    let cycle_started = Instant::now();
    let name = task.config.name.clone();
    let Some((start_ms, end_ms)) = task.next_range(ctx.clock.now_ms()) else {
        return task;
    };
    let query = RangeQuery {
        expr: &task.config.expr,
        start_ms,
        end_ms,
        step_ms: task.config.step_ms(),
    };
    let fetch_started = Instant::now();
    let result = tokio::select! {
        _ = cancel.cancelled() => return task,
        result = ctx.reader.query_range(&query) => result,
    };
    let fetch_seconds = fetch_started.elapsed().as_secs_f64();
    let mut answer = match result {
        Ok(answer) => answer,
        Err(error) => {
            ctx.telemetry
                .query_finished(&name, fetch_seconds, Some(error.reason()));
            if error.means_upstream_down() {
                ctx.upstream
                    .record_down(&error.to_string(), ctx.clock.now_ms());
            } else {
                ctx.upstream.record_up(ctx.clock.now_ms());
            }
            tracing::warn!(query = %name, reason = error.reason().as_str(), %error, "range query failed");
            return task;
        }
    };
    ctx.telemetry.query_finished(&name, fetch_seconds, None);
    ctx.upstream.record_up(ctx.clock.now_ms());
    // Other replicas track the other shards' series (Prometheus cannot hash label sets, so
    // every replica fetches them all and keeps its own).
    answer.series.retain(|(labels, _)| ctx.shard.owns(labels));
    for warning in &answer.warnings {
        tracing::warn!(query = %name, %warning, "Prometheus answered with a warning");
    }
    let samples = answer.series.iter().map(|(_, s)| s.len() as u64).sum();
    let (retries, warnings) = (answer.retries, answer.warnings.len());
    let config = Arc::clone(&task.config);
    let evaluated = tokio::task::spawn_blocking(move || {
        let (output, stats) = task.tracker.evaluate(answer.series, end_ms);
        (task, output, stats)
    })
    .await;
    let (mut task, output, stats) = match evaluated {
        Ok(done) => done,
        Err(panic) => {
            // A model bug must not take the query down for good: start it afresh.
            tracing::error!(query = %name, error = %panic, "evaluation panicked; the query's series are reloaded from scratch");
            return QueryTask::new(config);
        }
    };
    task.next_start_ms = Some(end_ms + task.config.step_ms());
    if stats.merge.series_rejected > 0 {
        tracing::warn!(query = %name, rejected = stats.merge.series_rejected, max_series = task.config.max_series, "new series refused: the query already tracks max_series");
    }
    ctx.snapshot.publish(output);
    ctx.telemetry.cycle_finished(
        &name,
        cycle_started.elapsed().as_secs_f64(),
        CycleReport {
            samples,
            series_tracked: task.tracker.series_count() as u64,
            series_ready: stats.ready as u64,
            series_rejected: stats.merge.series_rejected as u64,
            series_expired: stats.merge.series_expired as u64,
            fits: stats.fits as u64,
            updates: stats.updates as u64,
            retries: u64::from(retries),
            warnings: warnings as u64,
        },
        ctx.clock.now_ms() as f64 / 1000.0,
    );
    if let (Some(audit), true) = (&ctx.audit, stats.fits > 0) {
        audit.record(Entry {
            timestamp_ms: ctx.clock.now_ms(),
            kind: "model.refit".into(),
            actor: "foretell".into(),
            subject: name.clone(),
            outcome: "ok".into(),
            details: serde_json::json!({
                "fits": stats.fits,
                "series": task.tracker.series_count(),
                "ready": stats.ready,
                "seconds": cycle_started.elapsed().as_secs_f64(),
            })
            .to_string(),
        });
    }
    tracing::debug!(
        query = %name,
        series = task.tracker.series_count(),
        samples,
        fits = stats.fits,
        updates = stats.updates,
        fetch_seconds,
        seconds = cycle_started.elapsed().as_secs_f64(),
        "cycle finished"
    );
    task
}

/// Runs cycles every evaluation interval until cancelled; returns the task for reuse.
async fn run_query(ctx: Arc<Context>, mut task: QueryTask, cancel: CancellationToken) -> QueryTask {
    let period = task.config.evaluation_interval;
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut last_tick: Option<tokio::time::Instant> = None;
    loop {
        let tick = tokio::select! {
            _ = cancel.cancelled() => return task,
            tick = ticker.tick() => tick,
        };
        if let Some(last) = last_tick {
            let periods = (tick - last).as_secs_f64() / period.as_secs_f64();
            if periods >= 1.5 {
                ctx.telemetry
                    .cycles_skipped(&task.config.name, periods.round() as u64 - 1);
            }
        }
        last_tick = Some(tick);
        task = run_cycle(&ctx, task, &cancel).await;
    }
}

/// The running query tasks of one configuration.
pub struct Pipeline {
    cancel: CancellationToken,
    running: Vec<(Arc<QueryConfig>, JoinHandle<QueryTask>)>,
}

impl Pipeline {
    /// A pipeline running nothing, to stand in while tasks move between configurations.
    pub fn idle() -> Self {
        Pipeline {
            cancel: CancellationToken::new(),
            running: Vec::new(),
        }
    }

    pub fn start(ctx: Arc<Context>, tasks: Vec<QueryTask>) -> Self {
        let cancel = CancellationToken::new();
        let running = tasks
            .into_iter()
            .map(|task| {
                let config = Arc::clone(&task.config);
                let handle = tokio::spawn(run_query(Arc::clone(&ctx), task, cancel.child_token()));
                (config, handle)
            })
            .collect();
        Pipeline { cancel, running }
    }

    /// Stops every task (an in-flight fetch is abandoned, an in-flight evaluation finishes)
    /// and returns their state.
    pub async fn stop(self) -> Vec<QueryTask> {
        self.cancel.cancel();
        let mut tasks = Vec::with_capacity(self.running.len());
        for (config, handle) in self.running {
            match handle.await {
                Ok(task) => tasks.push(task),
                Err(error) => {
                    tracing::error!(query = %config.name, %error, "query task ended abnormally");
                    tasks.push(QueryTask::new(config));
                }
            }
        }
        tasks
    }
}

/// Tasks for `configs`, reusing the loaded series of `previous` tasks that fetch the same data.
pub fn carry_over(previous: Vec<QueryTask>, configs: &[QueryConfig]) -> Vec<QueryTask> {
    let mut previous = previous;
    configs
        .iter()
        .map(|config| {
            let config = Arc::new(config.clone());
            match previous.iter().position(|t| t.config.name == config.name) {
                Some(i) => previous.swap_remove(i).reconfigured(config),
                None => QueryTask::new(config),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
