//! The evaluation loop: one task per query, each cycle fetch → evaluate → publish.
//!
//! Fetching is async and cancellable; evaluation (merge, fit, score) is CPU work and runs on
//! the blocking pool. The newest output of each query is published into the [`SnapshotCell`]
//! the exporter reads.

mod health;
pub mod persist;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

use foretell_core::audit::Event;
use foretell_core::labels::Labels;
use foretell_core::model::ProbabilitySettings;
use foretell_core::peers::PeerStats;
use foretell_core::snapshot::{QueryOutput, Snapshot};
use foretell_core::store::Sample;
use foretell_core::tracker::{EvaluationStats, QueryTracker, TrackerSettings};
use futures_util::StreamExt;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::audit::log::AuditLog;
use crate::clock::Clock;
use crate::config::QueryConfig;
use crate::exporter::telemetry::{CycleReport, Telemetry, Warmup};
use crate::reader::{PrometheusReader, RangeAnswer, RangeQuery};
use crate::state::StateStore;
pub use health::{EvaluationFailed, UpstreamHealth, UpstreamStatus};

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
    /// Where queries keep their models across restarts; `None` when `state` is off.
    pub state: Option<Arc<StateStore>>,
}

/// One query's configuration, its tracked series, and where the next fetch starts.
pub struct QueryTask {
    pub config: Arc<QueryConfig>,
    tracker: QueryTracker,
    next_start_ms: Option<i64>,
}

/// The machine's cores: how many fits run side by side. Read here only.
#[allow(clippy::disallowed_methods)]
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
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
        record_points: config.live_record_points(),
        load_threads: cores(),
        first_fit: config.first_fit,
        peers: config.peers.clone(),
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

    /// True before the task has fetched or loaded anything.
    pub fn is_fresh(&self) -> bool {
        self.next_start_ms.is_none() && self.tracker.series_count() == 0
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
    /// last fetch, at most the configured history. The first fetch only discovers the series
    /// (those seen within the freshness window); their history is loaded in batches.
    /// `None` when no new grid point exists yet.
    pub fn next_range(&self, now_ms: i64) -> Option<(i64, i64)> {
        let step = self.config.step_ms();
        let end = now_ms - now_ms.rem_euclid(step);
        let oldest = self.oldest_ms(end);
        let discovery = self.config.freshness.as_millis() as i64;
        let first = (end - (discovery - discovery.rem_euclid(step))).max(oldest);
        let start = self.next_start_ms.map_or(first, |next| next.max(oldest));
        (start <= end).then_some((start, end))
    }

    /// When the wall clock reads earlier than the last evaluated point (it stepped back), the
    /// time evaluation resumes at.
    pub fn clock_behind(&self, now_ms: i64) -> Option<i64> {
        let step = self.config.step_ms();
        let grid = now_ms - now_ms.rem_euclid(step);
        self.next_start_ms.filter(|next| grid < next - step)
    }

    /// The oldest grid point of the history a window holds when its newest point is `end_ms`.
    fn oldest_ms(&self, end_ms: i64) -> i64 {
        let step = self.config.step_ms();
        let history = self.config.history.as_millis() as i64;
        end_ms - (history - history.rem_euclid(step))
    }
}

/// Runs one cycle. Returns the task, whatever happened; failures are logged and counted.
///
/// Series the query returned before are scored on the new points and published at once.
/// Series seen for the first time are then loaded: their history is fetched in batches and
/// each batch fitted while the next one is fetched; they are published when all have loaded.
pub async fn run_cycle(
    ctx: &Context,
    mut task: QueryTask,
    cancel: &CancellationToken,
) -> QueryTask {
    let cycle_started = crate::clock::Stopwatch::start();
    let name = task.config.name.clone();
    let now_ms = ctx.clock.now_ms();
    let Some((start_ms, end_ms)) = task.next_range(now_ms) else {
        // No new grid point yet; or the wall clock stepped back behind the last evaluated
        // point: Prometheus has nothing newer either, and evaluation resumes once the clock
        // passes that point.
        if let Some(next_start_ms) = task.clock_behind(now_ms) {
            tracing::warn!(
                query = %name,
                resumes_at = %foretell_core::timestamp::format_rfc3339(next_start_ms),
                "the wall clock is behind the last evaluated point (stepped back?); cycle skipped"
            );
        }
        return task;
    };
    let query = RangeQuery {
        expr: &task.config.expr,
        start_ms,
        end_ms,
        step_ms: task.config.step_ms(),
    };
    let mut answer = tokio::select! {
        _ = cancel.cancelled() => return task,
        answer = fetch(ctx, &name, &query, Purpose::Newest) => match answer {
            Some(answer) => answer,
            None => {
                expire_if_stale(ctx, &task, end_ms);
                return task;
            }
        },
    };
    // Other replicas track the other shards' series (Prometheus cannot hash label sets, so
    // every replica fetches them all and keeps its own).
    answer.series.retain(|(labels, _)| ctx.shard.owns(labels));
    let (known, new): (Vec<_>, Vec<_>) = answer
        .series
        .into_iter()
        .partition(|(labels, _)| task.tracker.tracks(labels));
    let mut new: Vec<Labels> = new.into_iter().map(|(labels, _)| labels).collect();
    // Series beyond the limit are not worth their history.
    new.sort();
    let room = task
        .config
        .max_series
        .saturating_sub(task.tracker.series_count());
    let refused = new.len().saturating_sub(room);
    new.truncate(room);
    let mut report = CycleReport {
        samples: known.iter().map(|(_, s)| s.len() as u64).sum(),
        retries: u64::from(answer.retries),
        warnings: answer.warnings.len() as u64,
        series_rejected: refused as u64,
        ..CycleReport::default()
    };
    let config = Arc::clone(&task.config);
    task = match evaluate(task, known, end_ms).await {
        Ok((task, output, stats)) => {
            ctx.snapshot.publish(output);
            count(&mut report, &stats);
            task
        }
        Err(panic) => {
            // A model bug must not take the query down for good: start it afresh, and say so
            // in readiness and self-metrics until an evaluation succeeds again.
            tracing::error!(query = %name, error = %panic, "evaluation panicked; the query's series are reloaded from scratch");
            ctx.upstream
                .record_evaluation(&name, Err(EvaluationFailed::scoring(&panic)));
            return QueryTask::new(config);
        }
    };
    task.next_start_ms = Some(end_ms + task.config.step_ms());
    if !new.is_empty() {
        let history = (task.oldest_ms(end_ms), end_ms);
        let wanted = new.len();
        let loading = load_history(ctx, task, new, history, cancel).await;
        let all_loaded = loading.stats.merge.series_added >= wanted;
        let loading_failure = loading.failure;
        task = loading.task;
        report.samples += loading.samples;
        report.retries += loading.retries;
        report.warnings += loading.warnings;
        count(&mut report, &loading.stats);
        match evaluate(task, Vec::new(), end_ms).await {
            Ok((evaluated, output, stats)) => {
                ctx.snapshot.publish(output);
                count(&mut report, &stats);
                task = evaluated;
            }
            Err(panic) => {
                tracing::error!(query = %name, error = %panic, "evaluation panicked; the query's series are reloaded from scratch");
                ctx.upstream
                    .record_evaluation(&name, Err(EvaluationFailed::scoring(&panic)));
                return QueryTask::new(config);
            }
        }
        if let Some(error) = loading_failure {
            ctx.upstream.record_evaluation(&name, Err(error));
            return task;
        }
        if all_loaded {
            ctx.telemetry.history_loaded(&name);
        }
    }
    ctx.upstream.record_evaluation(&name, Ok(()));
    report.series_tracked = task.tracker.series_count() as u64;
    if report.series_rejected > 0 {
        tracing::warn!(query = %name, rejected = report.series_rejected, max_series = task.config.max_series, "new series refused: the query already tracks max_series");
    }
    ctx.telemetry.cycle_finished(
        &name,
        cycle_started.elapsed().as_secs_f64(),
        report.clone(),
        ctx.clock.now_ms() as f64 / 1000.0,
    );
    if let (Some(audit), true) = (&ctx.audit, report.fits > 0) {
        audit.record(
            Event::ModelRefit {
                query: name.clone(),
                fits: report.fits,
                series: task.tracker.series_count(),
                ready: report.series_ready,
                seconds: cycle_started.elapsed().as_secs_f64(),
            }
            .entry(ctx.clock.now_ms()),
        );
    }
    tracing::debug!(
        query = %name,
        series = task.tracker.series_count(),
        samples = report.samples,
        fits = report.fits,
        updates = report.updates,
        seconds = cycle_started.elapsed().as_secs_f64(),
        "cycle finished"
    );
    task
}

/// While Prometheus fails, the last output keeps being served only within the query's
/// freshness window; after that its series leave `/metrics`, so they go stale in Prometheus
/// instead of repeating old predictions. The loaded series stay in the tracker for when
/// Prometheus answers again.
fn expire_if_stale(ctx: &Context, task: &QueryTask, end_ms: i64) {
    let Some(next_start_ms) = task.next_start_ms else {
        return;
    };
    let last_evaluated_ms = next_start_ms - task.config.step_ms();
    let freshness_ms = task.config.freshness.as_millis() as i64;
    let name = &task.config.name;
    let serving = ctx
        .snapshot
        .load()
        .queries()
        .any(|output| &output.query == name && !output.series.is_empty());
    if serving && end_ms - last_evaluated_ms > freshness_ms {
        tracing::warn!(query = %name, "no fresh data for longer than the freshness window: the query's series are withdrawn from /metrics until Prometheus answers again");
        ctx.snapshot.publish(QueryOutput {
            query: name.clone(),
            evaluated_at_ms: last_evaluated_ms,
            horizons: Vec::new(),
            series: Vec::new(),
        });
    }
}

/// Adds what an evaluation or a load did to the cycle's report.
fn count(report: &mut CycleReport, stats: &EvaluationStats) {
    report.series_rejected += stats.merge.series_rejected as u64;
    report.series_expired += stats.merge.series_expired as u64;
    report.fits += stats.fits as u64;
    report.updates += stats.updates as u64;
    report.series_ready = stats.ready as u64;
    report.forecast_methods = stats
        .forecast_methods
        .iter()
        .map(|(method, count)| (*method, *count as u64))
        .collect();
    report.peer_groups = if stats.peers == PeerStats::default() {
        BTreeMap::new()
    } else {
        [
            ("assessed", stats.peers.groups_assessed as u64),
            ("too_small", stats.peers.groups_too_small as u64),
            ("no_spread", stats.peers.groups_without_spread as u64),
        ]
        .into()
    };
}

/// What a fetch is for: the newest points go through `query_range`; the history of new series
/// may go through remote read (`PrometheusReader::history_counting`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Newest,
    History,
}

/// Fetches one range, recording the outcome in self-metrics and upstream health; `None` when
/// it failed (logged).
async fn fetch(
    ctx: &Context,
    name: &str,
    query: &RangeQuery<'_>,
    purpose: Purpose,
) -> Option<RangeAnswer> {
    let started = crate::clock::Stopwatch::start();
    let mut retries = 0;
    let result = match purpose {
        Purpose::Newest => ctx.reader.query_range_counting(query, &mut retries).await,
        Purpose::History => ctx.reader.history_counting(query, &mut retries).await,
    };
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(answer) => {
            ctx.telemetry.query_finished(name, seconds, None);
            if purpose == Purpose::History {
                ctx.telemetry.history_fetched(name, answer.remote_read);
            }
            ctx.upstream.record_up(ctx.clock.now_ms());
            if answer.refused.total() > 0 {
                ctx.telemetry.series_refused(name, &answer.refused);
                tracing::warn!(
                    query = %name,
                    series = answer.refused.total(),
                    example = answer.refused.example.as_deref().unwrap_or_default(),
                    "series left out: a label name cannot be exported (empty, `__` prefix, or outside [a-zA-Z_][a-zA-Z0-9_]*)"
                );
            }
            for warning in &answer.warnings {
                tracing::warn!(query = %name, %warning, "Prometheus answered with a warning");
            }
            Some(answer)
        }
        Err(error) => {
            ctx.telemetry
                .query_finished(name, seconds, Some(error.reason()));
            // A successful cycle reports its answer's retries; a failed one has only these.
            ctx.telemetry.query_retried(name, retries);
            if error.means_upstream_down() {
                ctx.upstream
                    .record_down(&error.to_string(), ctx.clock.now_ms());
            } else {
                ctx.upstream.record_up(ctx.clock.now_ms());
            }
            tracing::warn!(query = %name, reason = error.reason().as_str(), %error, "range query failed");
            None
        }
    }
}

/// Merges `fetched` and scores every series on the blocking pool (CPU work).
async fn evaluate(
    mut task: QueryTask,
    fetched: Vec<(Labels, Vec<Sample>)>,
    end_ms: i64,
) -> Result<(QueryTask, QueryOutput, EvaluationStats), tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || {
        let (output, stats) = task.tracker.evaluate(fetched, end_ms);
        (task, output, stats)
    })
    .await
}

/// What loading the history of new series did.
struct Loading {
    task: QueryTask,
    /// Why loading stopped when fitting the history failed (the task then starts afresh).
    failure: Option<EvaluationFailed>,
    stats: EvaluationStats,
    samples: u64,
    retries: u64,
    warnings: u64,
}

/// Loads the history `(start_ms, end_ms)` of `new` series: requests of a batch of series each,
/// two in flight, each answer fitted on the blocking pool while the next ones are fetched.
/// Series whose request fails stay unloaded and are tried again next cycle.
async fn load_history(
    ctx: &Context,
    task: QueryTask,
    new: Vec<Labels>,
    (start_ms, end_ms): (i64, i64),
    cancel: &CancellationToken,
) -> Loading {
    let name = task.config.name.clone();
    let config = Arc::clone(&task.config);
    let step_ms = task.config.step_ms();
    let requests = foretell_core::batch::history_requests(
        &task.config.expr,
        new,
        task.tracker.series_count(),
        ctx.reader.history_batch_series(),
    );
    let started = crate::clock::Stopwatch::start();
    let request_count = requests.len();
    tracing::debug!(query = %name, requests = request_count, "loading the history of new series");
    let (sender, mut receiver) = tokio::sync::mpsc::channel(1);
    let fetching = async move {
        let name = &name;
        let mut answers = futures_util::stream::iter(requests)
            .map(move |request| async move {
                let query = RangeQuery {
                    expr: &request.expr,
                    start_ms,
                    end_ms,
                    step_ms,
                };
                let answer = fetch(ctx, name, &query, Purpose::History).await;
                (request.members, answer)
            })
            .buffered(2);
        while let Some(fetched) = answers.next().await {
            if sender.send(fetched).await.is_err() {
                return;
            }
        }
    };
    let fitting = async move {
        let mut loading = Loading {
            task,
            failure: None,
            stats: EvaluationStats::default(),
            samples: 0,
            retries: 0,
            warnings: 0,
        };
        while let Some((members, answer)) = receiver.recv().await {
            if cancel.is_cancelled() {
                break;
            }
            let Some(answer) = answer else { continue };
            let members: HashSet<Labels> = members.into_iter().collect();
            let mut series = answer.series;
            // A restricted request can return other series sharing the batch's label values.
            series.retain(|(labels, _)| members.contains(labels));
            loading.samples += series.iter().map(|(_, s)| s.len() as u64).sum::<u64>();
            loading.retries += u64::from(answer.retries);
            loading.warnings += answer.warnings.len() as u64;
            let mut task = loading.task;
            let loaded = tokio::task::spawn_blocking(move || {
                let stats = task.tracker.load(series, end_ms);
                (task, stats)
            })
            .await;
            match loaded {
                Ok((task, stats)) => {
                    loading.task = task;
                    loading.stats.merge.series_added += stats.merge.series_added;
                    loading.stats.merge.series_rejected += stats.merge.series_rejected;
                    loading.stats.fits += stats.fits;
                    loading.stats.updates += stats.updates;
                }
                Err(panic) => {
                    tracing::error!(error = %panic, "loading history panicked; the query's series are reloaded from scratch");
                    loading.failure = Some(EvaluationFailed::loading_history(&panic));
                    loading.task = QueryTask::new(config);
                    break;
                }
            }
        }
        loading
    };
    let ((), loading) = tokio::join!(fetching, fitting);
    tracing::debug!(
        query = %loading.task.config.name,
        requests = request_count,
        series = loading.stats.merge.series_added,
        fits = loading.stats.fits,
        seconds = started.elapsed().as_secs_f64(),
        "history loaded"
    );
    loading
}

/// Runs cycles every evaluation interval until cancelled; returns the task for reuse.
async fn run_query(ctx: Arc<Context>, mut task: QueryTask, cancel: CancellationToken) -> QueryTask {
    if task.is_fresh() {
        match &ctx.state {
            Some(store) => task = persist::restore(&ctx, store, task).await,
            None => ctx
                .telemetry
                .warmup(&task.config.name, Warmup::Loading { state: None }),
        }
    }
    let mut saved_at_ms = ctx.clock.now_ms();
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
        if let Some(store) = &ctx.state {
            let now_ms = ctx.clock.now_ms();
            if now_ms - saved_at_ms >= store.interval.as_millis() as i64 {
                saved_at_ms = now_ms;
                task = persist::save(&ctx, store, task).await;
            }
        }
    }
}

/// The running query tasks of one configuration.
pub struct Pipeline {
    cancel: CancellationToken,
    running: Vec<(Arc<QueryConfig>, JoinHandle<QueryTask>)>,
    /// What the tasks run with; `None` for the idle stand-in.
    ctx: Option<Arc<Context>>,
}

impl Pipeline {
    /// A pipeline running nothing, to stand in while tasks move between configurations.
    pub fn idle() -> Self {
        Pipeline {
            cancel: CancellationToken::new(),
            running: Vec::new(),
            ctx: None,
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
        Pipeline {
            cancel,
            running,
            ctx: Some(ctx),
        }
    }

    /// Stops every task and, when `state` is on, writes each query's state file, so the next
    /// start resumes where this one stopped.
    pub async fn shutdown(self) -> Vec<QueryTask> {
        let ctx = self.ctx.clone();
        let mut tasks = self.stop().await;
        if let Some(ctx) = ctx {
            if let Some(store) = &ctx.state {
                let mut saved = Vec::with_capacity(tasks.len());
                for task in tasks {
                    saved.push(persist::save(&ctx, store, task).await);
                }
                tasks = saved;
            }
        }
        tasks
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
