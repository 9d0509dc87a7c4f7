//! foretell's own metrics: one [`Telemetry`] value passed to each stage, no global registry.
//!
//! Label values are bounded: query names come from the config, failure reasons from
//! [`FailureReason`], reload results from a fixed pair.

use std::collections::BTreeMap;
use std::sync::Mutex;

use foretell_core::audit::{mac_prefix_value, MAC_BYTES};
use foretell_core::exposition::HistogramValues;
use foretell_core::labels::LabelNameProblem;
use foretell_core::wire::RefusedSeries;

use crate::reader::FailureReason;

const DURATION_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Counts of observations per bucket; each metric family picks its bucket bounds.
#[derive(Clone, Debug)]
pub struct Histogram {
    upper_bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(upper_bounds: &'static [f64]) -> Self {
        Histogram {
            upper_bounds,
            counts: vec![0; upper_bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, value: f64) {
        if let Some(i) = self.upper_bounds.iter().position(|bound| value <= *bound) {
            self.counts[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    pub fn values(&self) -> HistogramValues<'_> {
        HistogramValues {
            upper_bounds: self.upper_bounds,
            bucket_counts: &self.counts,
            sum: self.sum,
            count: self.count,
        }
    }
}

/// Durations in seconds, the common case.
impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(&DURATION_BUCKETS)
    }
}

/// Per-query counters and gauges.
#[derive(Clone, Debug, Default)]
struct QueryStats {
    query_duration: Histogram,
    cycle_duration: Histogram,
    failures: BTreeMap<FailureReason, u64>,
    retries: u64,
    /// History requests answered, through remote read and through `query_range`.
    history_remote_read: u64,
    history_query_range: u64,
    warnings: u64,
    cycles: u64,
    cycles_skipped: u64,
    samples: u64,
    series_tracked: Option<u64>,
    series_ready: Option<u64>,
    forecast_methods: BTreeMap<&'static str, u64>,
    /// Peer groups of the last cycle by outcome (empty: peers off).
    peer_groups: BTreeMap<&'static str, u64>,
    series_rejected: u64,
    series_expired: u64,
    /// Series left out of answers for their label names, by problem.
    series_refused: BTreeMap<LabelNameProblem, u64>,
    /// Evaluations or history loads that failed (a model panicked); the query restarted.
    evaluation_failures: u64,
    fits: u64,
    updates: u64,
    last_success_seconds: Option<f64>,
    last_cycle_seconds: Option<f64>,
    /// What the state file did for the query; `None` while `state` is off.
    state: Option<StateStats>,
    warmup: Option<Warmup>,
}

/// How a query came up after a start, for the status page and `/-/ready`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warmup {
    /// Resumed from its state file: the models as they were, only the gap fetched.
    Restored { series: usize },
    /// Its windows came from the state file and its models are refitted from them (the model
    /// settings changed).
    Refitted { series: usize },
    /// Loading its history from Prometheus; why the state file was not used (`None` when
    /// `state` is off).
    Loading { state: Option<&'static str> },
    /// Its history has loaded.
    Loaded,
}

impl Warmup {
    /// For people: `restored from its state file (12 series)`.
    pub fn describe(&self) -> String {
        match self {
            Warmup::Restored { series } => format!("restored from its state file ({series} series)"),
            Warmup::Refitted { series } => format!(
                "restored from its state file ({series} series), models refitted for changed settings"
            ),
            Warmup::Loading { state: None } => "loading its history".into(),
            Warmup::Loading { state: Some(reason) } => {
                format!("loading its history (state file not used: {reason})")
            }
            Warmup::Loaded => "history loaded".into(),
        }
    }

    /// True while the query still waits for its history.
    pub fn is_loading(&self) -> bool {
        matches!(self, Warmup::Loading { .. })
    }
}

/// One query's state file: how its restores went and its writes.
#[derive(Clone, Debug, Default)]
struct StateStats {
    /// Starts by outcome: `restored`, `refitted` (windows kept, models refitted) or why the
    /// history was loaded afresh.
    restores: BTreeMap<&'static str, u64>,
    writes_ok: u64,
    writes_failed: u64,
    last_write_seconds: Option<f64>,
    bytes: Option<u64>,
}

/// What the status page shows of one query's cycles.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuerySummary {
    pub cycles: u64,
    pub cycles_skipped: u64,
    /// Failed range requests, every reason.
    pub failures: u64,
    pub series_tracked: Option<u64>,
    pub series_ready: Option<u64>,
    pub last_cycle_seconds: Option<f64>,
    pub last_success_seconds: Option<f64>,
    pub warmup: Option<Warmup>,
}

#[derive(Debug)]
struct State {
    queries: BTreeMap<String, QueryStats>,
    upstream_up: bool,
    reload_successful: bool,
    last_reload_success_seconds: f64,
    reloads: [u64; 2],
    audit: Option<AuditStats>,
    /// `(index, count)` of this replica's shard.
    shard: (u32, u32),
    /// Each configured query's name and PromQL expression, for `foretell_query_info`.
    query_expressions: Vec<(String, String)>,
    /// Series the newest `/metrics` render left out for `server.max_exported_series`.
    series_not_exported: usize,
    remote_write: Option<RemoteWriteStats>,
}

/// What happened to the samples pushed by remote write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteWriteOutcome {
    Sent,
    /// Refused with a 4xx other than 429; never retried.
    Rejected,
    /// Still failing after the last retry; dropped.
    Failed,
}

impl RemoteWriteOutcome {
    const ALL: [RemoteWriteOutcome; 3] = [
        RemoteWriteOutcome::Sent,
        RemoteWriteOutcome::Rejected,
        RemoteWriteOutcome::Failed,
    ];

    fn as_str(self) -> &'static str {
        match self {
            RemoteWriteOutcome::Sent => "sent",
            RemoteWriteOutcome::Rejected => "rejected",
            RemoteWriteOutcome::Failed => "failed",
        }
    }
}

/// Counters of remote write, present when it is configured.
#[derive(Clone, Copy, Debug, Default)]
struct RemoteWriteStats {
    /// Samples by [`RemoteWriteOutcome`], in the order of `ALL`.
    samples: [u64; 3],
    retries: u64,
    last_success_seconds: Option<f64>,
}

impl Default for State {
    fn default() -> Self {
        State {
            queries: BTreeMap::new(),
            upstream_up: false,
            reload_successful: false,
            last_reload_success_seconds: 0.0,
            reloads: [0; 2],
            audit: None,
            shard: (0, 1),
            query_expressions: Vec::new(),
            remote_write: None,
            series_not_exported: 0,
        }
    }
}

/// Counters of the audit log, present once a log is open.
#[derive(Clone, Copy, Debug, Default)]
struct AuditStats {
    written: u64,
    write_errors: u64,
    head_seq: u64,
    /// The first bytes of the head's MAC (`foretell_core::audit::mac_prefix_value`).
    head_mac_prefix: u64,
    /// Set when the log was opened with its head behind the newest head written to it.
    head_went_backwards: bool,
    /// `(successful, records checked, Unix time)` of the newest self-verification.
    last_verify: Option<(bool, u64, f64)>,
}

/// What one finished cycle reports.
#[derive(Clone, Debug, Default)]
pub struct CycleReport {
    pub samples: u64,
    pub series_tracked: u64,
    pub series_ready: u64,
    /// Ready series per kind of forecast leading at the longest validated horizon.
    pub forecast_methods: BTreeMap<&'static str, u64>,
    /// Peer groups by outcome (`assessed`, `too_small`, `no_spread`); empty: peers off.
    pub peer_groups: BTreeMap<&'static str, u64>,
    pub series_rejected: u64,
    pub series_expired: u64,
    pub fits: u64,
    pub updates: u64,
    pub retries: u64,
    pub warnings: u64,
}

pub struct Telemetry {
    version: &'static str,
    state: Mutex<State>,
}

impl Telemetry {
    pub fn new(version: &'static str) -> Self {
        Telemetry {
            version,
            state: Mutex::new(State::default()),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A panic while holding the lock leaves plain counters, still consistent enough to
        // serve, so recover the guard instead of poisoning every later scrape.
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub fn set_upstream_up(&self, up: bool) {
        self.with(|s| s.upstream_up = up);
    }

    pub fn config_loaded(&self, success: bool, now_seconds: f64) {
        self.with(|s| {
            s.reload_successful = success;
            s.reloads[usize::from(!success)] += 1;
            if success {
                s.last_reload_success_seconds = now_seconds;
            }
        });
    }

    /// Keeps per-query gauges only for the queries of the current config.
    pub fn retain_queries(&self, names: &[String]) {
        self.with(|s| {
            for (name, stats) in s.queries.iter_mut() {
                if !names.contains(name) {
                    stats.series_tracked = None;
                    stats.series_ready = None;
                    stats.forecast_methods.clear();
                    stats.peer_groups.clear();
                }
            }
        });
    }

    pub fn query_finished(&self, query: &str, seconds: f64, failure: Option<FailureReason>) {
        self.with(|s| {
            let stats = s.queries.entry(query.to_owned()).or_default();
            stats.query_duration.observe(seconds);
            if let Some(reason) = failure {
                *stats.failures.entry(reason).or_default() += 1;
            }
        });
    }

    /// One history request of `query` answered, through remote read or `query_range`.
    pub fn history_fetched(&self, query: &str, remote_read: bool) {
        self.with(|s| {
            let stats = s.queries.entry(query.to_owned()).or_default();
            if remote_read {
                stats.history_remote_read += 1;
            } else {
                stats.history_query_range += 1;
            }
        });
    }

    /// Requests of a failed fetch that were repeated after a transient failure.
    pub fn query_retried(&self, query: &str, retries: u32) {
        if retries > 0 {
            self.with(|s| {
                s.queries.entry(query.to_owned()).or_default().retries += u64::from(retries);
            });
        }
    }

    pub fn cycle_finished(&self, query: &str, seconds: f64, report: CycleReport, now_seconds: f64) {
        self.with(|s| {
            let stats = s.queries.entry(query.to_owned()).or_default();
            stats.cycle_duration.observe(seconds);
            stats.cycles += 1;
            stats.samples += report.samples;
            stats.series_tracked = Some(report.series_tracked);
            stats.series_ready = Some(report.series_ready);
            stats.forecast_methods = report.forecast_methods;
            stats.peer_groups = report.peer_groups;
            stats.series_rejected += report.series_rejected;
            stats.series_expired += report.series_expired;
            stats.fits += report.fits;
            stats.updates += report.updates;
            stats.retries += report.retries;
            stats.warnings += report.warnings;
            stats.last_success_seconds = Some(now_seconds);
            stats.last_cycle_seconds = Some(seconds);
        });
    }

    /// Series an answer left out for their label names.
    pub fn series_refused(&self, query: &str, refused: &RefusedSeries) {
        if refused.total() == 0 {
            return;
        }
        self.with(|s| {
            let stats = s.queries.entry(query.to_owned()).or_default();
            for (problem, count) in &refused.counts {
                *stats.series_refused.entry(*problem).or_default() += count;
            }
        });
    }

    /// An evaluation or a history load of `query` failed; its series are loaded afresh.
    pub fn evaluation_failed(&self, query: &str) {
        self.with(|s| {
            s.queries
                .entry(query.to_owned())
                .or_default()
                .evaluation_failures += 1
        });
    }

    /// Per query: cycles, failures and the newest cycle, for the status page.
    pub fn query_summaries(&self) -> BTreeMap<String, QuerySummary> {
        self.with(|s| {
            s.queries
                .iter()
                .map(|(name, stats)| {
                    (
                        name.clone(),
                        QuerySummary {
                            cycles: stats.cycles,
                            cycles_skipped: stats.cycles_skipped,
                            failures: stats.failures.values().sum(),
                            series_tracked: stats.series_tracked,
                            series_ready: stats.series_ready,
                            last_cycle_seconds: stats.last_cycle_seconds,
                            last_success_seconds: stats.last_success_seconds,
                            warmup: stats.warmup.clone(),
                        },
                    )
                })
                .collect()
        })
    }

    /// How many series the newest `/metrics` render left out; the first time some are, a
    /// warning says why.
    pub fn series_not_exported(&self, count: usize) {
        let before = self.with(|s| std::mem::replace(&mut s.series_not_exported, count));
        if count > 0 && before == 0 {
            tracing::warn!(
                left_out = count,
                "more tracked series than server.max_exported_series: /metrics leaves the rest out (see foretell_series_not_exported)"
            );
        }
    }

    /// The configured queries, `(name, expr)`, for `foretell_query_info`: set at start and on
    /// every reload.
    pub fn set_query_expressions(&self, queries: Vec<(String, String)>) {
        self.with(|s| s.query_expressions = queries);
    }

    /// This replica's shard, for `foretell_shard_index` and `foretell_shard_replicas`.
    pub fn set_shard(&self, index: u32, count: u32) {
        self.with(|s| s.shard = (index, count));
    }

    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The audit log is open with its newest record at `head_seq`, signed `head_mac`.
    pub fn audit_head(&self, head_seq: u64, head_mac: &[u8; MAC_BYTES]) {
        self.with(|s| {
            let audit = s.audit.get_or_insert_with(AuditStats::default);
            audit.head_seq = head_seq;
            audit.head_mac_prefix = mac_prefix_value(head_mac);
        });
    }

    pub fn audit_written(&self, records: u64, head_seq: u64, head_mac: &[u8; MAC_BYTES]) {
        self.with(|s| {
            let audit = s.audit.get_or_insert_with(AuditStats::default);
            audit.written += records;
            audit.head_seq = head_seq;
            audit.head_mac_prefix = mac_prefix_value(head_mac);
        });
    }

    /// The log was opened with its head behind the newest head written to it.
    pub fn audit_head_went_backwards(&self) {
        self.with(|s| {
            s.audit
                .get_or_insert_with(AuditStats::default)
                .head_went_backwards = true
        });
    }

    pub fn audit_verified(&self, ok: bool, checked: u64, now_seconds: f64) {
        self.with(|s| {
            s.audit.get_or_insert_with(AuditStats::default).last_verify =
                Some((ok, checked, now_seconds))
        });
    }

    pub fn audit_write_failed(&self, records: u64) {
        self.with(|s| s.audit.get_or_insert_with(AuditStats::default).write_errors += records);
    }

    pub fn remote_write_enabled(&self) {
        self.with(|s| {
            s.remote_write.get_or_insert_with(RemoteWriteStats::default);
        });
    }

    pub fn remote_written(&self, outcome: RemoteWriteOutcome, samples: u64, now_seconds: f64) {
        self.with(|s| {
            let stats = s.remote_write.get_or_insert_with(RemoteWriteStats::default);
            let index = RemoteWriteOutcome::ALL
                .iter()
                .position(|o| *o == outcome)
                .unwrap_or(0);
            stats.samples[index] += samples;
            if outcome == RemoteWriteOutcome::Sent {
                stats.last_success_seconds = Some(now_seconds);
            }
        });
    }

    pub fn remote_write_retried(&self) {
        self.with(|s| {
            s.remote_write
                .get_or_insert_with(RemoteWriteStats::default)
                .retries += 1;
        });
    }

    /// How the start of `query` used its state file: `restored`, `refitted`, or why not.
    pub fn state_restored(&self, query: &str, outcome: &'static str) {
        self.with(|s| {
            *s.queries
                .entry(query.to_owned())
                .or_default()
                .state
                .get_or_insert_with(StateStats::default)
                .restores
                .entry(outcome)
                .or_default() += 1
        });
    }

    /// A write of `query`'s state file: its size when it succeeded.
    pub fn state_written(&self, query: &str, bytes: Option<u64>, now_seconds: f64) {
        self.with(|s| {
            let state = s
                .queries
                .entry(query.to_owned())
                .or_default()
                .state
                .get_or_insert_with(StateStats::default);
            match bytes {
                Some(bytes) => {
                    state.writes_ok += 1;
                    state.bytes = Some(bytes);
                    state.last_write_seconds = Some(now_seconds);
                }
                None => state.writes_failed += 1,
            }
        });
    }

    /// How `query` is coming up (see [`Warmup`]).
    pub fn warmup(&self, query: &str, warmup: Warmup) {
        self.with(|s| s.queries.entry(query.to_owned()).or_default().warmup = Some(warmup));
    }

    /// The history of `query`'s new series loaded: a query that was loading is now loaded.
    pub fn history_loaded(&self, query: &str) {
        self.with(|s| {
            let stats = s.queries.entry(query.to_owned()).or_default();
            if stats.warmup.as_ref().is_some_and(Warmup::is_loading) {
                stats.warmup = Some(Warmup::Loaded);
            }
        });
    }

    pub fn cycles_skipped(&self, query: &str, skipped: u64) {
        self.with(|s| {
            s.queries
                .entry(query.to_owned())
                .or_default()
                .cycles_skipped += skipped
        });
    }
}

mod render;
#[cfg(test)]
mod tests;
