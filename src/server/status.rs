//! The status pages: what foretell knows (the snapshot, its self-metrics, the outbox) put into
//! the views (`crate::views::status`), with the links between them built here.

use std::collections::BTreeMap;

use crate::views::status::{
    self, AlertRow, AnomalyRow, Overview, PeerOutlierRow, QueryPage, QueryRow, SeriesNumbers,
    SeriesPage, SeriesRow, Upstream,
};
use foretell_core::alerts::{lookup, related};
use foretell_core::labels::METRIC_NAME;
use foretell_core::model::ProbabilitySettings;
use foretell_core::peers::PeerVerdict;
use foretell_core::snapshot::{SeriesOutput, SeriesState, Snapshot, SOURCE_METRIC_LABEL};
use foretell_core::Labels;
use http::StatusCode;

use super::AppState;
use crate::config::duration;
use crate::exporter::telemetry::Warmup;
use crate::pipeline::UpstreamStatus;

pub const QUERY_PATH: &str = "/status/query";
pub const SERIES_PATH: &str = "/status/series";

/// Rows in "anomalous now", "outliers among their peers now" and "recent alerts".
const OVERVIEW_ROWS: usize = 15;
/// Series listed on a query's page (the most anomalous first).
const QUERY_PAGE_ROWS: usize = 500;
/// Ranges a series' chart can be shown over.
const CHART_RANGES: [&str; 4] = ["1h", "6h", "1d", "3d"];

/// Whether a chart over `range` can be drawn at `step` (`/graph` draws at most
/// [`crate::graph::MAX_SHOWN_POINTS`] points): the series page offers only those ranges.
fn drawable(range: &str, step: std::time::Duration) -> bool {
    duration::parse(range).is_ok_and(|range| {
        range.as_millis() / step.as_millis().max(1) <= crate::graph::MAX_SHOWN_POINTS as u128
    })
}

/// The source labels of an exported series (what foretell adds left out) and its metric name.
fn source_of(series: &SeriesOutput) -> (Option<&str>, Labels) {
    (
        series.labels().get(SOURCE_METRIC_LABEL),
        Labels::from_pairs(lookup::source_labels(series)),
    )
}

/// The series a selector names: the one with exactly its labels, else the most specific one
/// whose labels all appear in it with the same values (a Grafana data link sends every label
/// of the panel's series: `query`, `horizon`, and the `instance` Prometheus attached to an
/// aggregated one). `None` when none matches or two match equally well.
fn find_series<'a>(series: &'a [SeriesOutput], wanted: &Labels) -> Option<&'a SeriesOutput> {
    if let Some(exact) = series.iter().find(|s| source_of(s).1 == *wanted) {
        return Some(exact);
    }
    let mut best: Option<(usize, &SeriesOutput)> = None;
    let mut tied = false;
    for candidate in series {
        let labels = source_of(candidate).1;
        if !labels
            .iter()
            .all(|(name, value)| wanted.get(name) == Some(value))
        {
            continue;
        }
        match best {
            Some((size, _)) if size > labels.len() => {}
            Some((size, _)) if size == labels.len() => tied = true,
            _ => {
                best = Some((labels.len(), candidate));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, found)| found)
}

fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    format!("{path}?{}", query.finish())
}

fn series_link(query: &str, labels: &Labels) -> String {
    link(
        SERIES_PATH,
        &[("query", query), ("series", &labels.to_string())],
    )
}

/// The probability a person should see: the newest point's, or while an excursion outside the
/// band is open, the largest of it. The probability marks an anomaly's onset and reads 0 through
/// the episode after it, so the newest point alone would show a series in the middle of an
/// incident as calm.
fn shown_probability(state: &SeriesState) -> f64 {
    match state {
        SeriesState::Ready {
            probability,
            excursion,
            ..
        } if excursion.is_open() => probability.max(excursion.peak_probability),
        SeriesState::Ready { probability, .. } => *probability,
        SeriesState::NotReady => 0.0,
    }
}

/// What "anomalous now" on the overview means: outside the band now, in an excursion outside
/// it that has not ended yet, or at an anomaly onset.
fn is_anomalous_now(state: &SeriesState, onset_probability: f64) -> bool {
    match state {
        SeriesState::Ready {
            score,
            probability,
            excursion,
            ..
        } => {
            score.is_some_and(|s| s > 1.0)
                || excursion.is_open()
                || *probability >= onset_probability
        }
        SeriesState::NotReady => false,
    }
}

fn numbers(state: &SeriesState) -> Option<SeriesNumbers> {
    match state {
        SeriesState::Ready { band, score, .. } => Some(SeriesNumbers {
            score: *score,
            probability: shown_probability(state),
            baseline: band.expected,
            lower: band.lower,
            upper: band.upper,
        }),
        SeriesState::NotReady => None,
    }
}

/// The newest score, for ranking; `-inf` when there is none (a gap, a model still learning).
fn score_of(series: &SeriesOutput) -> f64 {
    match &series.state {
        SeriesState::Ready {
            score: Some(score), ..
        } if !score.is_nan() => *score,
        _ => f64::NEG_INFINITY,
    }
}

fn now_ms() -> i64 {
    crate::clock::system().now_ms()
}

pub async fn overview(state: &AppState) -> (StatusCode, String) {
    let info = state.info.read().unwrap_or_else(|e| e.into_inner()).clone();
    let summaries = state.telemetry.query_summaries();
    let snapshot = state.snapshot.load();
    let queries = info
        .queries
        .iter()
        .map(|q| {
            let summary = summaries.get(&q.name).cloned().unwrap_or_default();
            let output = snapshot.queries().find(|o| o.query == q.name);
            QueryRow {
                name: q.name.clone(),
                expr: q.expr.clone(),
                step: duration::format(q.step),
                history: duration::format(q.history),
                interval_ms: q.evaluation_interval.as_millis() as i64,
                tracked: output.map_or(0, |o| o.series.len()),
                ready: output.map_or(0, |o| {
                    o.series
                        .iter()
                        .filter(|s| matches!(s.state, SeriesState::Ready { .. }))
                        .count()
                }),
                last_cycle_seconds: summary.last_cycle_seconds,
                last_success_ms: summary.last_success_seconds.map(|s| (s * 1000.0) as i64),
                cycles: summary.cycles,
                skipped: summary.cycles_skipped,
                failures: summary.failures,
                warmup: summary.warmup.as_ref().map(|warmup| {
                    let class = match warmup {
                        Warmup::Restored { .. } | Warmup::Refitted { .. } => "ok",
                        Warmup::Loading { .. } => "warn",
                        Warmup::Loaded => "muted",
                    };
                    (warmup.describe(), class)
                }),
                href: link(QUERY_PATH, &[("name", &q.name)]),
            }
        })
        .collect();
    let onset = ProbabilitySettings::default().onset_probability();
    let step_ms = |query: &str| {
        info.queries
            .iter()
            .find(|q| q.name == query)
            .map_or(0, |q| q.step.as_millis() as i64)
    };
    let mut ranked: Vec<(&str, i64, &SeriesOutput)> = snapshot
        .queries()
        .flat_map(|o| {
            o.series
                .iter()
                .map(move |s| (o.query.as_str(), o.evaluated_at_ms, s))
        })
        .filter(|(_, _, s)| is_anomalous_now(&s.state, onset))
        .collect();
    ranked.sort_by(|a, b| score_of(b.2).total_cmp(&score_of(a.2)));
    let anomalies = ranked
        .into_iter()
        .take(OVERVIEW_ROWS)
        .map(|(query, evaluated_at_ms, series)| {
            let (metric, labels) = source_of(series);
            let (since_ms, peak_sigmas) = match &series.state {
                SeriesState::Ready { excursion, .. } if excursion.is_open() => (
                    Some(
                        evaluated_at_ms
                            - i64::from(excursion.length.saturating_sub(1)) * step_ms(query),
                    ),
                    excursion.peak_sigmas,
                ),
                _ => (None, 0.0),
            };
            let range_excess = match &series.state {
                SeriesState::Ready { excursion, .. } => excursion.range_excess,
                SeriesState::NotReady => 0.0,
            };
            AnomalyRow {
                query: query.to_owned(),
                series: status::describe_series(metric, &labels),
                score: score_of(series),
                probability: shown_probability(&series.state),
                since_ms,
                peak_sigmas,
                range_excess,
                href: series_link(query, &labels),
            }
        })
        .collect();
    let alerts = match &state.alerts {
        None => None,
        Some(alerts) => Some(match alerts.recent_alerts(OVERVIEW_ROWS).await {
            Ok(recent) => recent
                .into_iter()
                .map(|a| AlertRow {
                    at_ms: a.at_ms,
                    subject: a.alertname,
                    confidence: a.confidence,
                    detail: a.detail,
                    outcome: a.outcome,
                    chart_href: a.chart,
                })
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "the status page cannot read the outbox");
                Vec::new()
            }
        }),
    };
    let upstream = match state.upstream.status() {
        UpstreamStatus::Unknown => Upstream::Waiting,
        UpstreamStatus::Up { .. } => Upstream::Up,
        UpstreamStatus::Down { error, .. } => Upstream::Down(error),
    };
    let peer_outliers = info
        .queries
        .iter()
        .any(|q| q.peers)
        .then(|| peer_outliers(&snapshot));
    let view = Overview {
        version: format!("version {}", state.telemetry.version()),
        now_ms: now_ms(),
        prometheus_url: info.prometheus_url,
        upstream,
        queries,
        anomalies,
        peer_outliers,
        alerts,
    };
    (StatusCode::OK, status::overview(&view))
}

/// The series that are outliers among their peers now, the farthest first.
fn peer_outliers(snapshot: &Snapshot) -> Vec<PeerOutlierRow> {
    let mut outliers: Vec<(&str, &SeriesOutput, PeerVerdict)> = snapshot
        .queries()
        .flat_map(|o| {
            o.series.iter().filter_map(move |s| {
                s.peer
                    .filter(|p| p.outlier)
                    .map(|p| (o.query.as_str(), s, p))
            })
        })
        .collect();
    outliers.sort_by(|a, b| b.2.score.total_cmp(&a.2.score));
    outliers
        .into_iter()
        .take(OVERVIEW_ROWS)
        .map(|(query, series, verdict)| {
            let (metric, labels) = source_of(series);
            PeerOutlierRow {
                query: query.to_owned(),
                series: status::describe_series(metric, &labels),
                score: verdict.score,
                group_size: verdict.group_size,
                href: series_link(query, &labels),
            }
        })
        .collect()
}

fn parameters(query_string: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query_string.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn query(state: &AppState, query_string: &str) -> (StatusCode, String) {
    let parameters = parameters(query_string);
    let Some(name) = parameters.get("name") else {
        return (
            StatusCode::BAD_REQUEST,
            "name the query: /status/query?name=NAME\n".into(),
        );
    };
    let info = state.info.read().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(config) = info.queries.iter().find(|q| &q.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("no query named `{name}` is configured\n"),
        );
    };
    let snapshot = state.snapshot.load();
    let mut series: Vec<&SeriesOutput> = snapshot
        .queries()
        .find(|o| &o.query == name)
        .map(|o| o.series.iter().collect())
        .unwrap_or_default();
    series.sort_by(|a, b| score_of(b).total_cmp(&score_of(a)));
    let hidden = series.len().saturating_sub(QUERY_PAGE_ROWS);
    let rows = series
        .into_iter()
        .take(QUERY_PAGE_ROWS)
        .map(|s| {
            let (metric, labels) = source_of(s);
            SeriesRow {
                series: status::describe_series(metric, &labels),
                ready: numbers(&s.state),
                href: series_link(name, &labels),
            }
        })
        .collect();
    let view = QueryPage {
        version: format!("version {}", state.telemetry.version()),
        name: name.clone(),
        expr: config.expr.clone(),
        rows,
        hidden,
    };
    (StatusCode::OK, status::query_page(&view))
}

pub fn series(state: &AppState, query_string: &str) -> (StatusCode, String) {
    let parameters = parameters(query_string);
    let (Some(name), Some(selector)) = (parameters.get("query"), parameters.get("series")) else {
        return (
            StatusCode::BAD_REQUEST,
            "name the series: /status/series?query=NAME&series={label=\"value\", ...}\n".into(),
        );
    };
    let wanted = match Labels::parse_selector(selector) {
        Ok(labels) => labels,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("series: {error}\n")),
    };
    let range = parameters.get("range").map_or("6h", String::as_str);
    if duration::parse(range).is_err() {
        return (
            StatusCode::BAD_REQUEST,
            format!("range: `{range}` is not a duration such as 6h\n"),
        );
    }
    let snapshot = state.snapshot.load();
    let Some(output) = snapshot.queries().find(|o| &o.query == name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("query `{name}` has no results yet\n"),
        );
    };
    let Some(found) = find_series(&output.series, &wanted) else {
        return (
            StatusCode::NOT_FOUND,
            format!("query `{name}` tracks no series {wanted}\n"),
        );
    };
    let (metric, labels) = source_of(found);
    let forecasts = match &found.state {
        SeriesState::Ready { forecasts, .. } => output
            .horizons
            .iter()
            .zip(forecasts)
            .map(|(h, b)| (h.clone(), b.expected, b.lower, b.upper))
            .collect(),
        SeriesState::NotReady => Vec::new(),
    };
    let chart_labels: Labels = Labels::from_pairs(labels.iter().filter(|(n, _)| *n != METRIC_NAME));
    let own_labels: BTreeMap<String, String> = found
        .labels()
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let identity = related::identifying(&own_labels);
    let related = related::related_signals(
        snapshot.queries(),
        &identity,
        Some((name.as_str(), found.labels())),
    )
    .iter()
    .map(related::RelatedSignal::describe)
    .collect();
    let selector = chart_labels.to_string();
    let view = SeriesPage {
        version: format!("version {}", state.telemetry.version()),
        query: name.clone(),
        query_href: link(QUERY_PATH, &[("name", name)]),
        series: status::describe_series(metric, &labels),
        numbers: numbers(&found.state),
        forecasts,
        chart_src: link(
            crate::graph::GRAPH_PATH,
            &[("query", name), ("series", &selector), ("range", range)],
        ),
        ranges: CHART_RANGES
            .iter()
            .filter(|r| {
                let step = state
                    .info
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .queries
                    .iter()
                    .find(|q| &q.name == name)
                    .map(|q| q.step);
                step.is_none_or(|step| drawable(r, step))
            })
            .map(|r| {
                (
                    (*r).to_owned(),
                    link(
                        SERIES_PATH,
                        &[("query", name), ("series", &selector), ("range", r)],
                    ),
                )
            })
            .collect(),
        peer: found.peer.map(|p| (p.score, p.outlier, p.group_size)),
        related,
    };
    (StatusCode::OK, status::series_page(&view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use foretell_core::model::{Band, Excursion};
    use foretell_core::snapshot::export_labels;

    fn ready(probability: f64, excursion: Excursion) -> SeriesState {
        SeriesState::Ready {
            band: Band {
                expected: 1.0,
                lower: 0.0,
                upper: 2.0,
            },
            score: Some(3.0),
            probability,
            forecasts: Vec::new(),
            threshold_eta_seconds: None,
            excursion,
        }
    }

    #[test]
    fn the_series_page_offers_only_ranges_a_chart_can_draw() {
        let offered = |step_secs: u64| -> Vec<&str> {
            CHART_RANGES
                .iter()
                .copied()
                .filter(|r| drawable(r, std::time::Duration::from_secs(step_secs)))
                .collect()
        };
        assert_eq!(offered(60), ["1h", "6h", "1d", "3d"]);
        assert_eq!(offered(30), ["1h", "6h", "1d"], "3d at 30s is 8,640 points");
        assert_eq!(offered(10), ["1h", "6h"]);
    }

    #[test]
    fn a_series_in_an_open_excursion_shows_the_probability_of_its_onset() {
        let open = Excursion {
            length: 12,
            outside: 12,
            peak_probability: 0.7,
            ..Excursion::default()
        };
        // In the episode after its onset the newest point reads 0; the page keeps the onset's.
        assert_eq!(shown_probability(&ready(0.0, open)), 0.7);
        assert_eq!(shown_probability(&ready(0.9, open)), 0.9);
        // No excursion open: the newest point's own.
        let closed = Excursion {
            peak_probability: 0.7,
            ..Excursion::default()
        };
        assert_eq!(shown_probability(&ready(0.01, closed)), 0.01);
        assert_eq!(shown_probability(&SeriesState::NotReady), 0.0);
    }

    #[test]
    fn anomalous_now_means_outside_the_band_in_an_open_excursion_or_at_an_onset() {
        let calm = |score: f64, probability: f64, excursion: Excursion| {
            let mut state = ready(probability, excursion);
            if let SeriesState::Ready { score: s, .. } = &mut state {
                *s = Some(score);
            }
            state
        };
        let open = Excursion {
            length: 3,
            ..Excursion::default()
        };
        assert!(!is_anomalous_now(
            &calm(0.5, 0.01, Excursion::default()),
            0.26
        ));
        assert!(is_anomalous_now(
            &calm(1.5, 0.01, Excursion::default()),
            0.26
        ));
        // Back inside the band for a point or two: the excursion is still open.
        assert!(is_anomalous_now(&calm(0.5, 0.0, open), 0.26));
        assert!(is_anomalous_now(
            &calm(0.5, 0.3, Excursion::default()),
            0.26
        ));
        assert!(!is_anomalous_now(&SeriesState::NotReady, 0.26));
    }

    fn series(pairs: &[(&str, &str)]) -> SeriesOutput {
        SeriesOutput::new(
            export_labels("q", &Labels::from_pairs(pairs.iter().copied())),
            SeriesState::NotReady,
        )
    }

    fn found(all: &[SeriesOutput], selector: &str) -> Option<String> {
        let wanted = Labels::parse_selector(selector).expect("selector");
        find_series(all, &wanted).map(|s| source_of(s).1.to_string())
    }

    #[test]
    fn a_data_link_with_every_label_of_the_panel_finds_its_series() {
        let per_instance = [
            series(&[("__name__", "up"), ("instance", "a"), ("job", "api")]),
            series(&[("__name__", "up"), ("instance", "b"), ("job", "api")]),
        ];
        assert_eq!(
            found(&per_instance, r#"{instance="a", job="api"}"#).as_deref(),
            Some(r#"{instance="a", job="api"}"#)
        );
        // What Grafana sends for foretell_forecast of that series.
        assert_eq!(
            found(
                &per_instance,
                r#"{horizon="1h", instance="b", job="api", query="q", source_metric="up"}"#
            )
            .as_deref(),
            Some(r#"{instance="b", job="api"}"#)
        );
        // An aggregated series, with the instance Prometheus attached to foretell's output.
        let aggregated = [series(&[("job", "api")]), series(&[("job", "web")])];
        assert_eq!(
            found(
                &aggregated,
                r#"{instance="foretell:9896", job="web", query="q"}"#
            )
            .as_deref(),
            Some(r#"{job="web"}"#)
        );
        // Too little to tell two series apart, or nothing that fits.
        assert_eq!(found(&per_instance, r#"{job="api"}"#), None);
        assert_eq!(found(&per_instance, r#"{instance="c", job="api"}"#), None);
        // The most specific wins over a series with fewer labels.
        let nested = [
            series(&[("job", "api")]),
            series(&[("job", "api"), ("instance", "a")]),
        ];
        assert_eq!(
            found(&nested, r#"{instance="a", job="api", query="q"}"#).as_deref(),
            Some(r#"{instance="a", job="api"}"#)
        );
    }
}
