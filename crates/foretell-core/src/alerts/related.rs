//! The other signals of the same target: series of any query that share an alert's identifying
//! labels (its `instance`, `pod`, `node` or `host`) and are anomalous, or outliers among their
//! peers, right now. "Latency and CPU of web-3 both anomalous; web-3 is an outlier among 12
//! peers" is stronger evidence, and a better first clue, than either signal alone.

use std::collections::BTreeMap;

use crate::labels::Labels;
use crate::snapshot::{QueryOutput, SeriesOutput, SeriesState, SOURCE_METRIC_LABEL};

/// Labels that name one target (a scrape target, a pod, a machine) across metrics, in the
/// conventions of Prometheus' exporters and service discovery.
pub const IDENTIFYING_LABELS: [&str; 4] = ["instance", "pod", "node", "host"];
/// At most this many related series are listed (the most anomalous first).
pub const MAX_RELATED: usize = 5;

/// One related series and what is unusual about it.
#[derive(Clone, Debug, PartialEq)]
pub struct RelatedSignal {
    pub query: String,
    /// The source metric's name, or the query's name when the expression has none.
    pub metric: String,
    /// Signed distance of the newest point from its baseline, in robust standard deviations,
    /// when the series is outside its band now.
    pub sigmas: Option<f64>,
    /// `(score, group size)` when the series is an outlier among its peers.
    pub peer: Option<(f64, usize)>,
}

impl RelatedSignal {
    fn strength(&self) -> f64 {
        self.sigmas.map_or(0.0, f64::abs) + self.peer.map_or(0.0, |(score, _)| 3.0 * score)
    }

    /// `node_cpu_utilisation (query cpu) 4.2σ above its baseline, an outlier among 12 peers`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(sigmas) = self.sigmas {
            let side = if sigmas >= 0.0 { "above" } else { "below" };
            parts.push(format!("{:.1}σ {side} its baseline", sigmas.abs()));
        }
        if let Some((score, size)) = self.peer {
            parts.push(format!("an outlier among {size} peers (score {score:.1})"));
        }
        format!(
            "{} (query {}) {}",
            self.metric,
            self.query,
            parts.join(", ")
        )
    }
}

/// The alert's identifying labels: those of [`IDENTIFYING_LABELS`] it carries.
pub fn identifying(labels: &BTreeMap<String, String>) -> Vec<(&'static str, &str)> {
    IDENTIFYING_LABELS
        .iter()
        .filter_map(|name| labels.get(*name).map(|value| (*name, value.as_str())))
        .collect()
}

/// Series of `queries` that carry every one of `identity`'s labels with the same value, other
/// than `exclude` (the alert's own series), and are outside their band now or peer outliers;
/// the most anomalous first, at most [`MAX_RELATED`]. Empty without identifying labels.
pub fn related_signals<'a>(
    queries: impl Iterator<Item = &'a QueryOutput>,
    identity: &[(&str, &str)],
    exclude: Option<(&str, &Labels)>,
) -> Vec<RelatedSignal> {
    if identity.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    for query in queries {
        for series in &query.series {
            if exclude.is_some_and(|(q, labels)| q == query.query && *labels == *series.labels()) {
                continue;
            }
            let same_target = identity
                .iter()
                .all(|(name, value)| series.labels().get(name) == Some(*value));
            if !same_target {
                continue;
            }
            if let Some(signal) = signal(query, series) {
                found.push(signal);
            }
        }
    }
    found.sort_by(|a, b| b.strength().total_cmp(&a.strength()));
    found.truncate(MAX_RELATED);
    found
}

fn signal(query: &QueryOutput, series: &SeriesOutput) -> Option<RelatedSignal> {
    let sigmas = match &series.state {
        SeriesState::Ready {
            score: Some(score),
            excursion,
            ..
        } if *score > 1.0 && excursion.length > 0 => Some(excursion.latest_sigmas),
        _ => None,
    };
    let peer = series
        .peer
        .filter(|p| p.outlier)
        .map(|p| (p.score, p.group_size));
    if sigmas.is_none() && peer.is_none() {
        return None;
    }
    Some(RelatedSignal {
        query: query.query.clone(),
        metric: series
            .labels()
            .get(SOURCE_METRIC_LABEL)
            .unwrap_or(&query.query)
            .to_owned(),
        sigmas,
        peer,
    })
}

/// One sentence for the alert: `also unusual on instance="web-3": ...; ...`; `None` when
/// nothing is.
pub fn sentence(identity: &[(&str, &str)], signals: &[RelatedSignal]) -> Option<String> {
    if signals.is_empty() {
        return None;
    }
    let target = identity
        .iter()
        .map(|(name, value)| format!("{name}=\"{value}\""))
        .collect::<Vec<_>>()
        .join(",");
    let list = signals
        .iter()
        .map(RelatedSignal::describe)
        .collect::<Vec<_>>()
        .join("; ");
    Some(format!("also unusual on {target}: {list}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Band, Excursion};
    use crate::peers::PeerVerdict;
    use crate::snapshot::export_labels;

    fn ready(score: f64, latest_sigmas: f64) -> SeriesState {
        SeriesState::Ready {
            band: Band {
                expected: 1.0,
                lower: 0.0,
                upper: 2.0,
            },
            score: Some(score),
            probability: 0.0,
            forecasts: vec![],
            threshold_eta_seconds: None,
            excursion: Excursion {
                length: u32::from(score > 1.0) * 5,
                outside: u32::from(score > 1.0) * 5,
                latest_sigmas,
                ..Excursion::default()
            },
        }
    }

    fn output(query: &str, metric: &str, series: Vec<(&str, SeriesState)>) -> QueryOutput {
        QueryOutput {
            query: query.into(),
            evaluated_at_ms: 0,
            horizons: vec![],
            series: series
                .into_iter()
                .map(|(instance, state)| {
                    SeriesOutput::new(
                        export_labels(
                            query,
                            &Labels::from_pairs([("__name__", metric), ("instance", instance)]),
                        ),
                        state,
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn the_other_anomalous_signals_of_the_same_instance_are_listed_strongest_first() {
        let latency = output(
            "latency",
            "http_latency_seconds",
            vec![("web-3", ready(4.0, 6.0)), ("web-1", ready(0.2, 0.1))],
        );
        let mut cpu = output(
            "cpu",
            "node_cpu_utilisation",
            vec![("web-3", ready(2.0, 3.5)), ("web-1", ready(5.0, 9.0))],
        );
        let memory = output(
            "memory",
            "node_memory_utilisation",
            vec![("web-3", ready(0.5, 0.2))],
        );
        let mut errors = output("errors", "http_errors", vec![("web-3", ready(0.3, 0.1))]);
        errors.series[0].peer = Some(PeerVerdict {
            score: 2.5,
            outlier: true,
            group_size: 12,
        });
        cpu.series[1].peer = None;
        let alert: BTreeMap<String, String> = [
            ("alertname".to_owned(), "HighLatency".to_owned()),
            ("instance".to_owned(), "web-3".to_owned()),
        ]
        .into();
        let identity = identifying(&alert);
        assert_eq!(identity, vec![("instance", "web-3")]);
        let own = latency.series[0].labels().clone();
        let queries = [latency, cpu, memory, errors];
        let signals = related_signals(queries.iter(), &identity, Some(("latency", &own)));
        // web-1's CPU is another target; memory is normal; the alert's own series is left out.
        assert_eq!(signals.len(), 2, "{signals:?}");
        assert_eq!(signals[0].query, "errors");
        assert_eq!(signals[1].query, "cpu");
        assert_eq!(
            sentence(&identity, &signals).as_deref(),
            Some("also unusual on instance=\"web-3\": http_errors (query errors) an outlier among 12 peers (score 2.5); node_cpu_utilisation (query cpu) 3.5σ above its baseline")
        );
    }

    #[test]
    fn an_alert_without_identifying_labels_has_no_related_signals() {
        let cpu = output(
            "cpu",
            "node_cpu_utilisation",
            vec![("web-3", ready(2.0, 3.5))],
        );
        let alert: BTreeMap<String, String> = [("job".to_owned(), "api".to_owned())].into();
        let identity = identifying(&alert);
        assert!(related_signals([cpu].iter(), &identity, None).is_empty());
        assert_eq!(sentence(&identity, &[]), None);
    }
}
