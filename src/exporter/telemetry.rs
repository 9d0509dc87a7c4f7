//! foretell's own metrics: one [`Telemetry`] value passed to each stage, no global registry.
//!
//! Label values are bounded: query names come from the config, failure reasons from
//! [`FailureReason`], reload results from a fixed pair.

use std::collections::BTreeMap;
use std::sync::Mutex;

use foretell_core::audit::{mac_prefix_value, MAC_BYTES};
use foretell_core::exposition::{Format, HistogramValues, MetricType, TextWriter};
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
    warnings: u64,
    cycles: u64,
    cycles_skipped: u64,
    samples: u64,
    series_tracked: Option<u64>,
    series_ready: Option<u64>,
    forecast_methods: BTreeMap<&'static str, u64>,
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

    pub fn cycles_skipped(&self, query: &str, skipped: u64) {
        self.with(|s| {
            s.queries
                .entry(query.to_owned())
                .or_default()
                .cycles_skipped += skipped
        });
    }

    /// Appends the self-metrics in `format`.
    pub fn render(&self, out: &mut String, format: Format) {
        let state = self.with(|s| {
            (
                s.queries.clone(),
                s.upstream_up,
                s.reload_successful,
                s.last_reload_success_seconds,
                s.reloads,
                s.audit,
                s.shard,
                s.remote_write,
                s.series_not_exported,
                s.query_expressions.clone(),
            )
        });
        let (
            queries,
            upstream_up,
            reload_ok,
            reload_at,
            reloads,
            audit,
            shard,
            remote_write,
            not_exported,
            query_expressions,
        ) = state;
        let mut w = TextWriter::with_format(out, format);
        w.family(
            "foretell_build_info",
            "Build information; the value is always 1.",
            MetricType::Gauge,
        );
        w.sample(
            "foretell_build_info",
            &[
                ("version", self.version),
                ("revision", env!("FORETELL_REVISION")),
                ("branch", env!("FORETELL_BRANCH")),
                ("rustversion", env!("FORETELL_RUSTC_VERSION")),
            ],
            1.0,
        );
        crate::exporter::process::render(&crate::exporter::process::read(), &mut w);
        w.family(
            "foretell_config_last_reload_successful",
            "Whether the last configuration load or reload succeeded.",
            MetricType::Gauge,
        );
        w.sample(
            "foretell_config_last_reload_successful",
            &[],
            f64::from(u8::from(reload_ok)),
        );
        w.family(
            "foretell_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
            MetricType::Gauge,
        );
        w.sample(
            "foretell_config_last_reload_success_timestamp_seconds",
            &[],
            reload_at,
        );
        w.family(
            "foretell_config_reloads_total",
            "Configuration loads and reloads by result.",
            MetricType::Counter,
        );
        w.sample(
            "foretell_config_reloads_total",
            &[("result", "success")],
            reloads[0] as f64,
        );
        w.sample(
            "foretell_config_reloads_total",
            &[("result", "failure")],
            reloads[1] as f64,
        );
        if let Some(audit) = audit {
            w.family(
                "foretell_audit_records_total",
                "Audit records committed to the log.",
                MetricType::Counter,
            );
            w.sample("foretell_audit_records_total", &[], audit.written as f64);
            w.family(
                "foretell_audit_write_errors_total",
                "Audit records that could not be committed (disk full, database locked or damaged, queue full).",
                MetricType::Counter,
            );
            w.sample(
                "foretell_audit_write_errors_total",
                &[],
                audit.write_errors as f64,
            );
            w.family(
                "foretell_audit_head_seq",
                "Sequence number of the newest committed audit record; kept by Prometheus as an independent record of the head for `foretell audit verify --expect-head`.",
                MetricType::Gauge,
            );
            w.sample("foretell_audit_head_seq", &[], audit.head_seq as f64);
            w.family(
                "foretell_audit_head_mac_prefix",
                "The first 6 bytes of the newest audit record's MAC as an integer; with foretell_audit_head_seq, pins the head for `foretell audit verify --expect-head SEQ:MAC`, so a log rolled back and written again is caught.",
                MetricType::Gauge,
            );
            w.sample(
                "foretell_audit_head_mac_prefix",
                &[],
                audit.head_mac_prefix as f64,
            );
            w.family(
                "foretell_audit_head_went_backwards",
                "1 when the audit log was opened with its head behind the newest head written to it (records removed or an older copy restored); recorded in the log as audit.head_went_backwards.",
                MetricType::Gauge,
            );
            w.sample(
                "foretell_audit_head_went_backwards",
                &[],
                f64::from(u8::from(audit.head_went_backwards)),
            );
            if let Some((ok, checked, at)) = audit.last_verify {
                w.family(
                    "foretell_audit_last_verify_successful",
                    "1 when the newest periodic self-verification of the audit log found every record valid and the chain unbroken up to the head.",
                    MetricType::Gauge,
                );
                w.sample(
                    "foretell_audit_last_verify_successful",
                    &[],
                    f64::from(u8::from(ok)),
                );
                w.family(
                    "foretell_audit_last_verify_timestamp_seconds",
                    "Unix time of the newest periodic self-verification.",
                    MetricType::Gauge,
                );
                w.sample("foretell_audit_last_verify_timestamp_seconds", &[], at);
                w.family(
                    "foretell_audit_last_verify_records",
                    "Records the newest self-verification checked.",
                    MetricType::Gauge,
                );
                w.sample("foretell_audit_last_verify_records", &[], checked as f64);
            }
        }
        if !query_expressions.is_empty() {
            w.family(
                "foretell_query_info",
                "Each configured query's PromQL expression; the value is always 1. Dashboards read `expr` to draw the observed values of a query of any shape.",
                MetricType::Gauge,
            );
            for (name, expr) in &query_expressions {
                w.sample(
                    "foretell_query_info",
                    &[("query", name), ("expr", expr)],
                    1.0,
                );
            }
        }
        w.family(
            "foretell_shard_index",
            "This replica's shard: it tracks the series whose label hash modulo foretell_shard_replicas equals this.",
            MetricType::Gauge,
        );
        w.sample("foretell_shard_index", &[], f64::from(shard.0));
        w.family(
            "foretell_shard_replicas",
            "Replicas the series are split among (1: this one tracks them all).",
            MetricType::Gauge,
        );
        w.sample("foretell_shard_replicas", &[], f64::from(shard.1));
        w.family(
            "foretell_series_not_exported",
            "Tracked series the newest /metrics render left out because there were more than server.max_exported_series.",
            MetricType::Gauge,
        );
        w.sample("foretell_series_not_exported", &[], not_exported as f64);
        if let Some(remote) = remote_write {
            w.family(
                "foretell_remote_write_samples_total",
                "Prediction samples pushed by remote write, by outcome: sent, rejected (a 4xx, never retried) or failed (dropped after the last retry).",
                MetricType::Counter,
            );
            for (outcome, samples) in RemoteWriteOutcome::ALL.iter().zip(remote.samples) {
                w.sample(
                    "foretell_remote_write_samples_total",
                    &[("outcome", outcome.as_str())],
                    samples as f64,
                );
            }
            w.family(
                "foretell_remote_write_retries_total",
                "Remote-write requests retried after a 5xx, a 429 or a transport error.",
                MetricType::Counter,
            );
            w.sample(
                "foretell_remote_write_retries_total",
                &[],
                remote.retries as f64,
            );
            if let Some(at) = remote.last_success_seconds {
                w.family(
                    "foretell_remote_write_last_success_timestamp_seconds",
                    "Unix time of the newest remote-write request the receiver accepted.",
                    MetricType::Gauge,
                );
                w.sample(
                    "foretell_remote_write_last_success_timestamp_seconds",
                    &[],
                    at,
                );
            }
        }
        w.family("foretell_upstream_up", "1 when the last request to the Prometheus API got a usable answer, 0 when it was unreachable, failing or unusable.", MetricType::Gauge);
        w.sample(
            "foretell_upstream_up",
            &[],
            f64::from(u8::from(upstream_up)),
        );

        type Counter = fn(&QueryStats) -> f64;
        let counters: [(&str, &str, Counter); 9] = [
            ("foretell_cycles_total", "Evaluation cycles completed per query.", |s| s.cycles as f64),
            ("foretell_cycles_skipped_total", "Evaluation ticks skipped because the previous cycle of the query was still running.", |s| s.cycles_skipped as f64),
            ("foretell_query_retries_total", "Requests to Prometheus retried after a transient failure.", |s| s.retries as f64),
            ("foretell_upstream_warnings_total", "Warnings returned in Prometheus API answers (Thanos and Mimir partial responses).", |s| s.warnings as f64),
            ("foretell_samples_fetched_total", "Samples fetched from Prometheus.", |s| s.samples as f64),
            ("foretell_series_rejected_total", "New series refused because the query already tracks max_series.", |s| s.series_rejected as f64),
            ("foretell_model_updates_total", "Points scored and taken into a model's state between refits (O(1) each).", |s| s.updates as f64),
            ("foretell_series_expired_total", "Series dropped because the source returned nothing for them within the freshness window.", |s| s.series_expired as f64),
            ("foretell_evaluation_failures_total", "Evaluations that failed (a model fault); the query's series were loaded afresh and /-/ready answers 503 until an evaluation succeeds.", |s| s.evaluation_failures as f64),
        ];
        for (name, help, pick) in counters {
            w.family(name, help, MetricType::Counter);
            for (query, stats) in &queries {
                w.sample(name, &[("query", query)], pick(stats));
            }
        }
        w.family(
            "foretell_series_refused_total",
            "Series left out of Prometheus answers because a label name cannot be exported: empty, reserved (`__` prefix) or a UTF-8 name outside [a-zA-Z_][a-zA-Z0-9_]*.",
            MetricType::Counter,
        );
        for (query, stats) in &queries {
            for problem in LabelNameProblem::ALL {
                let count = stats.series_refused.get(&problem).copied().unwrap_or(0);
                w.sample(
                    "foretell_series_refused_total",
                    &[("query", query), ("reason", problem.as_str())],
                    count as f64,
                );
            }
        }
        w.family(
            "foretell_model_fits_total",
            "Model fits per query.",
            MetricType::Counter,
        );
        for (query, stats) in &queries {
            w.sample(
                "foretell_model_fits_total",
                &[("query", query)],
                stats.fits as f64,
            );
        }
        w.family(
            "foretell_query_failures_total",
            "Failed range queries by query and reason.",
            MetricType::Counter,
        );
        for (query, stats) in &queries {
            for reason in FailureReason::ALL {
                let count = stats.failures.get(&reason).copied().unwrap_or(0);
                w.sample(
                    "foretell_query_failures_total",
                    &[("query", query), ("reason", reason.as_str())],
                    count as f64,
                );
            }
        }
        w.family(
            "foretell_series_tracked",
            "Series currently tracked per query.",
            MetricType::Gauge,
        );
        for (query, stats) in &queries {
            if let Some(tracked) = stats.series_tracked {
                w.sample(
                    "foretell_series_tracked",
                    &[("query", query)],
                    tracked as f64,
                );
            }
        }
        w.family(
            "foretell_series_ready",
            "Tracked series whose model has enough history.",
            MetricType::Gauge,
        );
        for (query, stats) in &queries {
            if let Some(ready) = stats.series_ready {
                w.sample("foretell_series_ready", &[("query", query)], ready as f64);
            }
        }
        w.family(
            "foretell_forecast_method_series",
            "Ready series per query by the forecast method with the most weight at the longest horizon, as chosen on held-out points at the last refit (unvalidated: the window could not spare them, the in-sample model forecasts alone).",
            MetricType::Gauge,
        );
        for (query, stats) in &queries {
            for (method, count) in &stats.forecast_methods {
                w.sample(
                    "foretell_forecast_method_series",
                    &[("query", query), ("method", method)],
                    *count as f64,
                );
            }
        }
        w.family(
            "foretell_last_cycle_success_timestamp_seconds",
            "Unix time of the last completed cycle per query.",
            MetricType::Gauge,
        );
        for (query, stats) in &queries {
            if let Some(at) = stats.last_success_seconds {
                w.sample(
                    "foretell_last_cycle_success_timestamp_seconds",
                    &[("query", query)],
                    at,
                );
            }
        }
        w.family(
            "foretell_query_duration_seconds",
            "Time to fetch one query's range from Prometheus, retries included.",
            MetricType::Histogram,
        );
        for (query, stats) in &queries {
            w.histogram(
                "foretell_query_duration_seconds",
                &[("query", query)],
                &stats.query_duration.values(),
            );
        }
        w.family(
            "foretell_cycle_duration_seconds",
            "Time of one successful evaluation cycle: fetch, merge, fit, score and publish.",
            MetricType::Histogram,
        );
        for (query, stats) in &queries {
            w.histogram(
                "foretell_cycle_duration_seconds",
                &[("query", query)],
                &stats.cycle_duration.values(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_histograms_that_parse() {
        let telemetry = Telemetry::new("1.2.3");
        telemetry.config_loaded(true, 100.0);
        telemetry.set_upstream_up(true);
        telemetry.query_finished("load", 0.02, None);
        telemetry.query_finished("load", 0.2, Some(FailureReason::Timeout));
        telemetry.cycle_finished(
            "load",
            0.3,
            CycleReport {
                samples: 10,
                series_tracked: 4,
                series_ready: 3,
                forecast_methods: [("seasonal_naive", 1), ("smoothing_no_trend", 2)].into(),
                fits: 2,
                updates: 7,
                ..CycleReport::default()
            },
            200.0,
        );
        let mut out = String::new();
        telemetry.render(&mut out, Format::Text);
        let build_info = format!(
            "foretell_build_info{{version=\"1.2.3\",revision=\"{}\",branch=\"{}\",rustversion=\"{}\"}} 1",
            env!("FORETELL_REVISION"),
            env!("FORETELL_BRANCH"),
            env!("FORETELL_RUSTC_VERSION")
        );
        assert!(out.contains(&build_info), "{out}");
        assert_ne!(env!("FORETELL_RUSTC_VERSION"), "unknown");
        assert!(out.contains("\nprocess_resident_memory_bytes "), "{out}");
        for line in [
            "foretell_config_last_reload_successful 1",
            "foretell_config_reloads_total{result=\"success\"} 1",
            "foretell_upstream_up 1",
            "foretell_query_failures_total{query=\"load\",reason=\"timeout\"} 1",
            "foretell_series_tracked{query=\"load\"} 4",
            "foretell_series_ready{query=\"load\"} 3",
            "foretell_forecast_method_series{query=\"load\",method=\"seasonal_naive\"} 1",
            "foretell_forecast_method_series{query=\"load\",method=\"smoothing_no_trend\"} 2",
            "foretell_query_duration_seconds_bucket{query=\"load\",le=\"0.025\"} 1",
            "foretell_query_duration_seconds_bucket{query=\"load\",le=\"0.25\"} 2",
            "foretell_query_duration_seconds_count{query=\"load\"} 2",
            "foretell_samples_fetched_total{query=\"load\"} 10",
            "foretell_model_fits_total{query=\"load\"} 2",
            "foretell_model_updates_total{query=\"load\"} 7",
        ] {
            assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
        }
        let scrape =
            prometheus_parse::Scrape::parse(out.lines().map(|l| Ok(l.to_owned()))).expect("parses");
        assert!(scrape
            .samples
            .iter()
            .any(|s| s.metric == "foretell_cycle_duration_seconds"));
    }

    /// Dashboards read each query's expression from `foretell_query_info`; quotes and
    /// backslashes in it are escaped, and a reload replaces the list.
    #[test]
    fn query_info_carries_each_expression() {
        let telemetry = Telemetry::new("0");
        telemetry.set_query_expressions(vec![
            (
                "requests".into(),
                r#"sum by (job) (rate(x{code=~"5.."}[5m]))"#.into(),
            ),
            ("load".into(), "node_load1".into()),
        ]);
        let mut out = String::new();
        telemetry.render(&mut out, Format::Text);
        assert!(
            out.contains(
                "foretell_query_info{query=\"requests\",expr=\"sum by (job) (rate(x{code=~\\\"5..\\\"}[5m]))\"} 1\n"
            ),
            "{out}"
        );
        assert!(out.contains("foretell_query_info{query=\"load\",expr=\"node_load1\"} 1\n"));
        telemetry.set_query_expressions(vec![("load".into(), "node_load1".into())]);
        let mut out = String::new();
        telemetry.render(&mut out, Format::Text);
        assert!(!out.contains("query=\"requests\",expr"), "{out}");
    }

    #[test]
    fn removed_queries_stop_reporting_gauges_but_keep_counters() {
        let telemetry = Telemetry::new("0");
        telemetry.cycle_finished(
            "old",
            0.1,
            CycleReport {
                series_tracked: 2,
                ..CycleReport::default()
            },
            1.0,
        );
        telemetry.retain_queries(&["new".to_owned()]);
        let mut out = String::new();
        telemetry.render(&mut out, Format::Text);
        assert!(
            !out.contains("foretell_series_tracked{query=\"old\"}"),
            "{out}"
        );
        assert!(
            out.contains("foretell_cycles_total{query=\"old\"} 1"),
            "{out}"
        );
    }
}
