//! The self-metrics of the series path as text: every family, in a fixed order, from one
//! consistent copy of the state.

use foretell_core::exposition::{Format, MetricType, TextWriter};

use super::{QueryStats, RemoteWriteOutcome, Telemetry};
use crate::exporter::registry::Collector;
use crate::reader::FailureReason;
use foretell_core::labels::LabelNameProblem;

impl Collector for Telemetry {
    fn collect(&self, out: &mut String, format: Format) {
        self.render(out, format);
    }
}

impl Telemetry {
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
        w.value(
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
        w.value(&[], f64::from(u8::from(reload_ok)));
        w.family(
            "foretell_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration load.",
            MetricType::Gauge,
        );
        w.value(&[], reload_at);
        w.family(
            "foretell_config_reloads_total",
            "Configuration loads and reloads by result.",
            MetricType::Counter,
        );
        w.value(&[("result", "success")], reloads[0] as f64);
        w.value(&[("result", "failure")], reloads[1] as f64);
        if let Some(audit) = audit {
            w.family(
                "foretell_audit_records_total",
                "Audit records committed to the log.",
                MetricType::Counter,
            );
            w.value(&[], audit.written as f64);
            w.family(
                "foretell_audit_write_errors_total",
                "Audit records that could not be committed (disk full, database locked or damaged, queue full).",
                MetricType::Counter,
            );
            w.value(&[], audit.write_errors as f64);
            w.family(
                "foretell_audit_head_seq",
                "Sequence number of the newest committed audit record; kept by Prometheus as an independent record of the head for `foretell audit verify --expect-head`.",
                MetricType::Gauge,
            );
            w.value(&[], audit.head_seq as f64);
            w.family(
                "foretell_audit_head_mac_prefix",
                "The first 6 bytes of the newest audit record's MAC as an integer; with foretell_audit_head_seq, pins the head for `foretell audit verify --expect-head SEQ:MAC`, so a log rolled back and written again is caught.",
                MetricType::Gauge,
            );
            w.value(&[], audit.head_mac_prefix as f64);
            w.family(
                "foretell_audit_head_went_backwards",
                "1 when the audit log was opened with its head behind the newest head written to it (records removed or an older copy restored); recorded in the log as audit.head_went_backwards.",
                MetricType::Gauge,
            );
            w.value(&[], f64::from(u8::from(audit.head_went_backwards)));
            if let Some((ok, checked, at)) = audit.last_verify {
                w.family(
                    "foretell_audit_last_verify_successful",
                    "1 when the newest periodic self-verification of the audit log found every record valid and the chain unbroken up to the head.",
                    MetricType::Gauge,
                );
                w.value(&[], f64::from(u8::from(ok)));
                w.family(
                    "foretell_audit_last_verify_timestamp_seconds",
                    "Unix time of the newest periodic self-verification.",
                    MetricType::Gauge,
                );
                w.value(&[], at);
                w.family(
                    "foretell_audit_last_verify_records",
                    "Records the newest self-verification checked.",
                    MetricType::Gauge,
                );
                w.value(&[], checked as f64);
            }
        }
        if !query_expressions.is_empty() {
            w.family(
                "foretell_query_info",
                "Each configured query's PromQL expression; the value is always 1. Dashboards read `expr` to draw the observed values of a query of any shape.",
                MetricType::Gauge,
            );
            for (name, expr) in &query_expressions {
                w.value(&[("query", name), ("expr", expr)], 1.0);
            }
        }
        w.family(
            "foretell_shard_index",
            "This replica's shard: it tracks the series whose label hash modulo foretell_shard_replicas equals this.",
            MetricType::Gauge,
        );
        w.value(&[], f64::from(shard.0));
        w.family(
            "foretell_shard_replicas",
            "Replicas the series are split among (1: this one tracks them all).",
            MetricType::Gauge,
        );
        w.value(&[], f64::from(shard.1));
        w.family(
            "foretell_series_not_exported",
            "Tracked series the newest /metrics render left out because there were more than server.max_exported_series.",
            MetricType::Gauge,
        );
        w.value(&[], not_exported as f64);
        if let Some(remote) = remote_write {
            w.family(
                "foretell_remote_write_samples_total",
                "Prediction samples pushed by remote write, by outcome: sent, rejected (a 4xx, never retried) or failed (dropped after the last retry).",
                MetricType::Counter,
            );
            for (outcome, samples) in RemoteWriteOutcome::ALL.iter().zip(remote.samples) {
                w.value(&[("outcome", outcome.as_str())], samples as f64);
            }
            w.family(
                "foretell_remote_write_retries_total",
                "Remote-write requests retried after a 5xx, a 429 or a transport error.",
                MetricType::Counter,
            );
            w.value(&[], remote.retries as f64);
            if let Some(at) = remote.last_success_seconds {
                w.family(
                    "foretell_remote_write_last_success_timestamp_seconds",
                    "Unix time of the newest remote-write request the receiver accepted.",
                    MetricType::Gauge,
                );
                w.value(&[], at);
            }
        }
        w.family("foretell_upstream_up", "1 when the last request to the Prometheus API got a usable answer, 0 when it was unreachable, failing or unusable.", MetricType::Gauge);
        w.value(&[], f64::from(u8::from(upstream_up)));

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
                w.value(&[("query", query)], pick(stats));
            }
        }
        w.family(
            "foretell_history_requests_total",
            "Requests that loaded the history of new series, by protocol: remote_read (stored chunks of a plain selector, put on the grid by foretell) or query_range.",
            MetricType::Counter,
        );
        for (query, stats) in &queries {
            w.value(
                &[("query", query), ("protocol", "remote_read")],
                stats.history_remote_read as f64,
            );
            w.value(
                &[("query", query), ("protocol", "query_range")],
                stats.history_query_range as f64,
            );
        }
        let with_state: Vec<(&String, &super::StateStats)> = queries
            .iter()
            .filter_map(|(query, stats)| stats.state.as_ref().map(|state| (query, state)))
            .collect();
        if !with_state.is_empty() {
            w.family(
                "foretell_state_restores_total",
                "Starts of a query by what its state file gave: restored (models resumed), refitted (windows kept, models refitted for changed settings), or why its history was loaded afresh (missing, changed, shard, stale, foreign, version, truncated, corrupt, unreadable).",
                MetricType::Counter,
            );
            for (query, state) in &with_state {
                for (outcome, count) in &state.restores {
                    w.value(&[("query", query), ("outcome", outcome)], *count as f64);
                }
            }
            w.family(
                "foretell_state_writes_total",
                "Writes of a query's state file, by outcome (ok, failed).",
                MetricType::Counter,
            );
            for (query, state) in &with_state {
                w.value(
                    &[("query", query), ("outcome", "ok")],
                    state.writes_ok as f64,
                );
                w.value(
                    &[("query", query), ("outcome", "failed")],
                    state.writes_failed as f64,
                );
            }
            w.family(
                "foretell_state_last_write_timestamp_seconds",
                "Unix time of the newest successful write of a query's state file.",
                MetricType::Gauge,
            );
            for (query, state) in &with_state {
                if let Some(at) = state.last_write_seconds {
                    w.value(&[("query", query)], at);
                }
            }
            w.family(
                "foretell_state_bytes",
                "Size of a query's newest state file.",
                MetricType::Gauge,
            );
            for (query, state) in &with_state {
                if let Some(bytes) = state.bytes {
                    w.value(&[("query", query)], bytes as f64);
                }
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
                w.value(
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
            w.value(&[("query", query)], stats.fits as f64);
        }
        w.family(
            "foretell_query_failures_total",
            "Failed range queries by query and reason.",
            MetricType::Counter,
        );
        for (query, stats) in &queries {
            for reason in FailureReason::ALL {
                let count = stats.failures.get(&reason).copied().unwrap_or(0);
                w.value(
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
                w.value(&[("query", query)], tracked as f64);
            }
        }
        w.family(
            "foretell_series_ready",
            "Tracked series whose model has enough history.",
            MetricType::Gauge,
        );
        for (query, stats) in &queries {
            if let Some(ready) = stats.series_ready {
                w.value(&[("query", query)], ready as f64);
            }
        }
        w.family(
            "foretell_forecast_method_series",
            "Ready series per query by the forecast method with the most weight at the longest horizon, as chosen on held-out points at the last refit (unvalidated: the window could not spare them, the in-sample model forecasts alone).",
            MetricType::Gauge,
        );
        for (query, stats) in &queries {
            for (method, count) in &stats.forecast_methods {
                w.value(&[("query", query), ("method", method)], *count as f64);
            }
        }
        if queries
            .iter()
            .any(|(_, stats)| !stats.peer_groups.is_empty())
        {
            w.family(
                "foretell_peer_groups",
                "Peer groups per query at the last cycle by outcome: assessed, too_small (fewer than 3 series, skipped), no_spread (the detector found no spread to measure in).",
                MetricType::Gauge,
            );
            for (query, stats) in &queries {
                for (outcome, count) in &stats.peer_groups {
                    w.value(&[("query", query), ("outcome", outcome)], *count as f64);
                }
            }
        }
        w.family(
            "foretell_last_cycle_success_timestamp_seconds",
            "Unix time of the last completed cycle per query.",
            MetricType::Gauge,
        );
        for (query, stats) in &queries {
            if let Some(at) = stats.last_success_seconds {
                w.value(&[("query", query)], at);
            }
        }
        w.family(
            "foretell_query_duration_seconds",
            "Time to fetch one query's range from Prometheus, retries included.",
            MetricType::Histogram,
        );
        for (query, stats) in &queries {
            w.histogram(&[("query", query)], &stats.query_duration.values());
        }
        w.family(
            "foretell_cycle_duration_seconds",
            "Time of one successful evaluation cycle: fetch, merge, fit, score and publish.",
            MetricType::Histogram,
        );
        for (query, stats) in &queries {
            w.histogram(&[("query", query)], &stats.cycle_duration.values());
        }
    }
}
