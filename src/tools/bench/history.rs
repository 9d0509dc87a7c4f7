//! `foretell bench history`: one query's cold history load against a real Prometheus, through
//! remote read and through `query_range`, in alternating rounds of the same run: wall time,
//! foretell's CPU and Prometheus' own CPU (from its `/metrics`) for each, and whether the two
//! gave exactly the same series and samples.
//!
//! The requests are the sidecar's: the query's series found with one step, then their history
//! in `prometheus.history_batch_series` batches, two in flight, each through
//! `PrometheusReader::history_counting`.

use std::collections::BTreeMap;
use std::time::Duration;

use foretell_core::batch;
use foretell_core::store::Sample;
use foretell_core::Labels;
use futures_util::StreamExt;

use crate::config::{PrometheusConfig, QueryConfig, RemoteRead};
use crate::reader::{PrometheusReader, RangeQuery};

pub struct HistorySettings {
    pub prometheus: PrometheusConfig,
    pub query: QueryConfig,
    /// History to load (the query's own by default).
    pub history: Duration,
    /// Rounds of both protocols, alternating which goes first.
    pub rounds: usize,
    pub now_ms: i64,
}

/// One protocol's load.
#[derive(Clone, Debug)]
pub struct Load {
    pub remote_read: bool,
    pub wall: Duration,
    pub foretell_cpu: Duration,
    /// `None` when the server's `/metrics` does not say `process_cpu_seconds_total`.
    pub prometheus_cpu: Option<f64>,
    pub requests: usize,
    /// Requests that went through remote read.
    pub read_remotely: usize,
    pub series: usize,
    pub samples: u64,
    /// Bytes of the answers.
    pub bytes: u64,
}

#[derive(Clone, Debug)]
pub struct HistoryReport {
    pub query: String,
    pub series: usize,
    pub points: i64,
    pub loads: Vec<Load>,
    /// Series that differ between the two protocols' last loads, with the first one.
    pub differences: usize,
    pub first_difference: Option<String>,
}

type Loaded = BTreeMap<Labels, Vec<Sample>>;

pub async fn run(settings: &HistorySettings) -> Result<HistoryReport, String> {
    let reader = |remote_read| {
        let config = PrometheusConfig {
            remote_read,
            ..settings.prometheus.clone()
        };
        PrometheusReader::new(&config).map_err(|e| e.to_string())
    };
    let readers = [reader(RemoteRead::Off)?, reader(RemoteRead::Auto)?];
    let step_ms = settings.query.step_ms();
    let end_ms = settings.now_ms / step_ms * step_ms;
    let start_ms = end_ms - settings.history.as_millis() as i64;
    let newest = readers[0]
        .query_range(&RangeQuery {
            expr: &settings.query.expr,
            start_ms: end_ms - 5 * step_ms,
            end_ms,
            step_ms,
        })
        .await
        .map_err(|e| e.to_string())?;
    let series: Vec<Labels> = newest
        .series
        .into_iter()
        .map(|(labels, _)| labels)
        .collect();
    if series.is_empty() {
        return Err(format!(
            "`{}` has no series in its last five steps",
            settings.query.expr
        ));
    }
    let requests = batch::history_requests(
        &settings.query.expr,
        series.clone(),
        0,
        settings.prometheus.history_batch_series,
    );
    let metrics_url = {
        let mut url = settings.prometheus.url.expose().clone();
        url.set_path(&format!("{}/metrics", url.path().trim_end_matches('/')));
        url
    };
    let mut loads = Vec::new();
    let mut last: [Loaded; 2] = [Loaded::new(), Loaded::new()];
    for round in 0..settings.rounds.max(1) {
        for which in [round % 2, 1 - round % 2] {
            let prometheus_before = prometheus_cpu(&metrics_url).await;
            let cpu_before = super::process_cpu();
            let started = crate::clock::Stopwatch::start();
            let mut loaded = Loaded::new();
            let mut read_remotely = 0;
            let mut bytes = 0;
            let mut answers = futures_util::stream::iter(&requests)
                .map(|request| {
                    let reader = &readers[which];
                    async move {
                        reader
                            .history_counting(
                                &RangeQuery {
                                    expr: &request.expr,
                                    start_ms,
                                    end_ms,
                                    step_ms,
                                },
                                &mut 0,
                            )
                            .await
                    }
                })
                .buffered(2);
            while let Some(answer) = answers.next().await {
                let answer = answer.map_err(|e| e.to_string())?;
                read_remotely += usize::from(answer.remote_read);
                bytes += answer.bytes;
                loaded.extend(answer.series);
            }
            let wall = started.elapsed();
            let foretell_cpu = super::process_cpu().saturating_sub(cpu_before);
            let prometheus_after = prometheus_cpu(&metrics_url).await;
            loads.push(Load {
                remote_read: which == 1,
                wall,
                foretell_cpu,
                prometheus_cpu: prometheus_before
                    .zip(prometheus_after)
                    .map(|(before, after)| after - before),
                requests: requests.len(),
                read_remotely,
                series: loaded.len(),
                samples: loaded.values().map(|s| s.len() as u64).sum(),
                bytes,
            });
            last[which] = loaded;
        }
    }
    let (differences, first_difference) = compare(&last[0], &last[1]);
    Ok(HistoryReport {
        query: settings.query.name.clone(),
        series: series.len(),
        points: (end_ms - start_ms) / step_ms + 1,
        loads,
        differences,
        first_difference,
    })
}

/// Series that are not identical (bit for bit, NaN included) in the two loads.
fn compare(range: &Loaded, remote: &Loaded) -> (usize, Option<String>) {
    let mut differences = 0;
    let mut first = None;
    let names: std::collections::BTreeSet<&Labels> = range.keys().chain(remote.keys()).collect();
    for labels in names {
        let (a, b) = (range.get(labels), remote.get(labels));
        let describe = || match (a, b) {
            (None, _) => format!("{labels}: only remote read has it"),
            (_, None) => format!("{labels}: only query_range has it"),
            (Some(a), Some(b)) => {
                let at = a
                    .iter()
                    .zip(b.iter())
                    .position(|(x, y)| !same(x, y))
                    .unwrap_or(a.len().min(b.len()));
                format!(
                    "{labels}: {} points through query_range, {} through remote read, first differing at point {at}: {:?} against {:?}",
                    a.len(),
                    b.len(),
                    a.get(at).map(|s| (s.timestamp_ms, s.value)),
                    b.get(at).map(|s| (s.timestamp_ms, s.value)),
                )
            }
        };
        let equal = match (a, b) {
            (Some(a), Some(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y)),
            _ => false,
        };
        if !equal {
            differences += 1;
            first.get_or_insert_with(describe);
        }
    }
    (differences, first)
}

fn same(a: &Sample, b: &Sample) -> bool {
    a.timestamp_ms == b.timestamp_ms && a.value.to_bits() == b.value.to_bits()
}

/// Prometheus' `process_cpu_seconds_total` from its own `/metrics`.
async fn prometheus_cpu(url: &url::Url) -> Option<f64> {
    let response = reqwest::get(url.clone()).await.ok()?;
    let text = response.text().await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("process_cpu_seconds_total "))
        .and_then(|value| value.trim().parse().ok())
}

pub fn render(report: &HistoryReport) -> String {
    let mut out = format!(
        "history of query {:?}: {} series x {} points, {} requests per load\n\n",
        report.query,
        report.series,
        report.points,
        report.loads.first().map_or(0, |l| l.requests)
    );
    out.push_str("| round | protocol | wall s | foretell CPU s | Prometheus CPU s | series | samples | MB |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for (i, load) in report.loads.iter().enumerate() {
        let protocol = if load.remote_read {
            if load.read_remotely == load.requests {
                "remote_read".to_owned()
            } else {
                format!(
                    "remote_read ({} of {} fell back to query_range)",
                    load.requests - load.read_remotely,
                    load.requests
                )
            }
        } else {
            "query_range".to_owned()
        };
        out.push_str(&format!(
            "| {} | {protocol} | {:.2} | {:.2} | {} | {} | {} | {:.1} |\n",
            i / 2 + 1,
            load.wall.as_secs_f64(),
            load.foretell_cpu.as_secs_f64(),
            load.prometheus_cpu
                .map_or("-".to_owned(), |cpu| format!("{cpu:.2}")),
            load.series,
            load.samples,
            load.bytes as f64 / 1e6
        ));
    }
    let mean = |remote_read: bool, pick: fn(&Load) -> f64| {
        let picked: Vec<f64> = report
            .loads
            .iter()
            .filter(|l| l.remote_read == remote_read)
            .map(pick)
            .collect();
        picked.iter().sum::<f64>() / picked.len().max(1) as f64
    };
    // Too short a load to measure (CPU is counted in ticks of 10 ms) has no ratio.
    let ratio = |pick: fn(&Load) -> f64| {
        let value = mean(true, pick) / mean(false, pick);
        if value.is_finite() && value > 0.0 {
            format!("{value:.2}x")
        } else {
            "n/a".to_owned()
        }
    };
    out.push_str(&format!(
        "\nremote read against query_range (means): wall {}, foretell CPU {}",
        ratio(|l| l.wall.as_secs_f64()),
        ratio(|l| l.foretell_cpu.as_secs_f64()),
    ));
    if report.loads.iter().all(|l| l.prometheus_cpu.is_some()) {
        out.push_str(&format!(
            ", Prometheus CPU {}",
            ratio(|l| l.prometheus_cpu.unwrap_or(0.0))
        ));
    }
    out.push('\n');
    match &report.first_difference {
        None => {
            out.push_str("identical: every series and sample is the same through both protocols\n")
        }
        Some(first) => out.push_str(&format!(
            "DIFFERENT: {} series differ; first: {first}\n",
            report.differences
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(pairs: &[(&str, &[(i64, f64)])]) -> Loaded {
        pairs
            .iter()
            .map(|(instance, samples)| {
                (
                    Labels::from_pairs([("instance", *instance)]),
                    samples
                        .iter()
                        .map(|&(timestamp_ms, value)| Sample {
                            timestamp_ms,
                            value,
                        })
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn loads_compare_bit_for_bit_and_name_the_first_difference() {
        let a = loaded(&[("a", &[(0, 1.0), (60, f64::NAN)]), ("b", &[(0, 2.0)])]);
        assert_eq!(compare(&a, &a.clone()), (0, None));
        let b = loaded(&[("a", &[(0, 1.0), (60, 3.0)]), ("c", &[(0, 2.0)])]);
        let (count, first) = compare(&a, &b);
        assert_eq!(count, 3);
        let first = first.expect("a difference");
        assert!(first.contains("first differing at point 1"), "{first}");
    }
}
