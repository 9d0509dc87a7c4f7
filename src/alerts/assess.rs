//! The evidence behind an alert and the annotations it becomes: from the tracked series that
//! matches the alert, or from the alert rule's expression fetched from Prometheus and replayed
//! through a model fitted on the fly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use foretell_core::alerts::confidence::{Confidence, Evidence};
use foretell_core::alerts::lookup::{self, find_tracked};
use foretell_core::alerts::related;
use foretell_core::alerts::webhook::Alert;
use foretell_core::audit::{Assessed, ConfidentAssessment};
use foretell_core::model::{Coverage, ForecastModel, ProbabilitySettings, SeasonSpec};
use foretell_core::peers::PeerVerdict;
use foretell_core::snapshot::SeriesState;
use foretell_core::store::Sample;
use foretell_core::Labels;

use super::QueryShape;
use crate::config::{OnDemandConfig, QueryConfig};
use crate::graph::Source;
use crate::pipeline::SnapshotCell;
use crate::reader::PrometheusReader;
use crate::reader::RangeQuery;

/// A rule with at most this many series is fetched whole, once per step, for all its alerts.
/// A larger one would cost a day of every series per step: its alerts fetch only their own
/// series, found in a one-point probe of the rule.
const WHOLE_RULE_SERIES: usize = 100;

/// Points fitted at least before an on-demand replay starts.
const MIN_ON_DEMAND_POINTS: usize = 30;
/// Band coverage of on-demand models: the queries' default, at which the confidence weights were
/// fitted (`foretell detect` defaults to it too), so `outside` means the same on both paths.
const ON_DEMAND_COVERAGE: f64 = 0.99;

/// What was found out about one alert.
pub struct Assessment {
    pub confidence: Option<Confidence>,
    pub annotations: BTreeMap<String, String>,
    /// What its `alert.enriched` record keeps; `None` past the alerts recorded one by one
    /// (they are summarised in one record, see `router::MAX_ALERTS_AUDITED`).
    pub assessed: Option<Assessed>,
}

/// One on-demand range, shared by the alerts that come from the same rule within one step
/// (see [`RangeCache`]).
pub struct Fetched {
    start_ms: i64,
    step_ms: i64,
    points: usize,
    series: Vec<(Labels, Vec<Sample>)>,
}

type SharedRange = Arc<tokio::sync::OnceCell<Result<Arc<Fetched>, NoEvidence>>>;

/// A cached range: its expression, span and grid end.
type RangeKey = (String, Span, i64);

/// The on-demand history, or its newest point only (the probe of a rule's series).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Span {
    History,
    Probe,
}

/// On-demand ranges by expression, span and grid end. Until the grid moves on (one on-demand step),
/// every alert of a rule, across notifications, uses one answer: an alert storm from one rule
/// costs Prometheus one query per step, not one per notification. Single flight: alerts that
/// arrive while the query is out wait for it (each within its own budget). An error answer is
/// shared the same way until the step ends (the step's alerts say why at once instead of each
/// asking a failing Prometheus again); a query abandoned at a notification's deadline is not
/// kept, so the next alert asks again.
#[derive(Default)]
pub struct RangeCache {
    /// Slots in the order they were made, the newest last.
    ranges: std::sync::Mutex<Vec<(RangeKey, SharedRange)>>,
}

/// Ranges kept at most: each can hold a day of every series of a rule, so many rules alerting
/// at once must not keep them all.
const CACHED_RANGES: usize = 16;

impl RangeCache {
    /// The slot of `expr` for the grid ending at `end_ms`; older grids and, past
    /// [`CACHED_RANGES`], the oldest slots are dropped.
    fn slot(&self, expr: &str, span: Span, end_ms: i64) -> SharedRange {
        let mut ranges = self.ranges.lock().unwrap_or_else(|e| e.into_inner());
        ranges.retain(|((_, _, end), _)| *end >= end_ms);
        if let Some((_, slot)) = ranges
            .iter()
            .find(|((cached, kind, end), _)| cached == expr && *kind == span && *end == end_ms)
        {
            return Arc::clone(slot);
        }
        if ranges.len() >= CACHED_RANGES {
            ranges.remove(0);
        }
        let slot = SharedRange::default();
        ranges.push(((expr.to_owned(), span, end_ms), Arc::clone(&slot)));
        slot
    }
}

/// Where an alert's evidence comes from: the live snapshot of the tracked queries, or the alert
/// rule's expression fetched from Prometheus on demand; and where its chart is.
pub struct Sources {
    snapshot: Arc<SnapshotCell>,
    /// Shapes (step, horizons) of the queries running now; replaced on reload.
    queries: std::sync::RwLock<BTreeMap<String, QueryShape>>,
    /// `None` when on-demand assessment is off.
    on_demand: Option<(OnDemandConfig, PrometheusReader)>,
    /// On-demand ranges shared across notifications within one step.
    ranges: RangeCache,
    /// foretell's external URL: enriched alerts link to `/graph` under it.
    graph_base: Option<url::Url>,
    /// Signs links to charts of rule expressions, the only ones `/graph` draws by default.
    graph_signer: Option<foretell_core::chart::link::LinkSigner>,
}

impl Sources {
    pub fn new(
        snapshot: Arc<SnapshotCell>,
        queries: &[QueryConfig],
        on_demand: Option<(OnDemandConfig, PrometheusReader)>,
        links: super::GraphLinks,
    ) -> Sources {
        Sources {
            snapshot,
            queries: std::sync::RwLock::new(super::shapes(queries)),
            on_demand,
            ranges: RangeCache::default(),
            graph_base: links.base,
            graph_signer: links.signer,
        }
    }

    /// Follows a reload: alerts on series of new or changed queries use their new step and
    /// horizons.
    pub fn set_queries(&self, queries: &[QueryConfig]) {
        *self.queries.write().unwrap_or_else(|e| e.into_inner()) = super::shapes(queries);
    }

    fn query_shape(&self, query: &str) -> Option<QueryShape> {
        self.queries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(query)
            .cloned()
    }
}

/// Assesses the alerts of one notification. On-demand queries are shared (see [`RangeCache`])
/// and all of a notification's waits share one deadline (`alerts.on_demand.timeout` from the
/// start), so a slow Prometheus delays a notification by that much at most, however many
/// alerts it holds.
pub struct Assessor<'a> {
    sources: &'a Sources,
    now_ms: i64,
    deadline: tokio::time::Instant,
}

impl<'a> Assessor<'a> {
    pub fn new(sources: &'a Sources, now_ms: i64) -> Self {
        let budget = sources
            .on_demand
            .as_ref()
            .map_or(Duration::ZERO, |(settings, _)| settings.timeout);
        Assessor {
            sources,
            now_ms,
            deadline: crate::clock::deadline_after(budget),
        }
    }
}

/// `{job="api", instance="a"}` for annotations and records.
fn describe_labels<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let pairs: Vec<String> = labels
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

impl Assessor<'_> {
    /// The evidence and confidence for `alert`, or why there is none, as annotations and the
    /// details of its `alert.enriched` record.
    pub async fn assess(&mut self, alert: &Alert) -> Assessment {
        match self.find_evidence(alert).await {
            Ok(Found {
                evidence,
                series,
                source,
                graph,
                peer,
                own_exported,
            }) => {
                let confidence = evidence.confidence();
                let subject = alert
                    .labels
                    .get("alertname")
                    .map_or("the series", String::as_str);
                let mut annotations = BTreeMap::new();
                annotations.insert("foretell_confidence".into(), format!("{confidence}"));
                annotations.insert(
                    "foretell_anomaly_score".into(),
                    evidence.score.map_or("NaN".into(), |s| format!("{s:.2}")),
                );
                annotations.insert("foretell_baseline".into(), round(evidence.band.expected));
                annotations.insert(
                    "foretell_band".into(),
                    format!(
                        "{} to {}",
                        round(evidence.band.lower),
                        round(evidence.band.upper)
                    ),
                );
                if let Some((label, band)) = &evidence.forecast {
                    annotations.insert(
                        "foretell_forecast".into(),
                        format!(
                            "{} in {label} (between {} and {})",
                            round(band.expected),
                            round(band.lower),
                            round(band.upper)
                        ),
                    );
                }
                if let Some(trend) = evidence.trend() {
                    annotations.insert("foretell_trend".into(), trend.as_str().into());
                }
                annotations.insert("foretell_explanation".into(), evidence.explanation(subject));
                if let Some(peer) = peer.filter(|p| p.outlier) {
                    annotations.insert(
                        "foretell_peer_outlier".into(),
                        format!(
                            "an outlier among {} peers (score {:.1}; 1 is the group's boundary)",
                            peer.group_size, peer.score
                        ),
                    );
                }
                // The same target's other signals: its other metrics anomalous, or outliers
                // among their peers, right now.
                let identity = related::identifying(&alert.labels);
                let snapshot = self.sources.snapshot.load();
                let own = match &graph.0 {
                    Source::Query(query) => Some(query.as_str()),
                    _ => None,
                };
                let own_labels = own_exported.as_ref();
                let signals =
                    related::related_signals(snapshot.queries(), &identity, own.zip(own_labels));
                if let Some(sentence) = related::sentence(&identity, &signals) {
                    annotations.insert("foretell_related".into(), sentence);
                }
                annotations.insert("foretell_series".into(), series.clone());
                if let Some(base) = &self.sources.graph_base {
                    annotations.insert(
                        "foretell_graph_url".into(),
                        crate::graph::link(
                            base,
                            &graph.0,
                            &graph.1,
                            self.sources.graph_signer.as_ref(),
                        ),
                    );
                }
                let features = evidence.features();
                let graph = annotations.get("foretell_graph_url").cloned();
                Assessment {
                    confidence: Some(confidence),
                    annotations,
                    assessed: Some(Assessed::Confident(Box::new(ConfidentAssessment {
                        confidence: confidence.get(),
                        source: source.to_owned(),
                        series,
                        score: evidence.score,
                        probability: evidence.probability,
                        peak_sigmas: evidence.excursion.peak_sigmas,
                        outside_points: evidence.excursion.outside,
                        excursion_points: evidence.excursion.length,
                        missing_points: evidence.excursion.missing,
                        siblings: evidence.siblings,
                        siblings_anomalous: evidence.siblings_anomalous,
                        range_excess: evidence.excursion.range_excess,
                        features: [
                            features.peak,
                            features.peak_probability,
                            features.outside,
                            features.latest,
                            features.range_excess,
                        ],
                        graph,
                    }))),
                }
            }
            Err(reason) => Assessment {
                confidence: None,
                annotations: BTreeMap::from([
                    ("foretell_confidence".into(), "unavailable".into()),
                    ("foretell_confidence_reason".into(), reason.to_string()),
                ]),
                assessed: Some(Assessed::Unavailable {
                    reason: reason.to_string(),
                }),
            },
        }
    }
}

/// Why an alert gets no confidence; the message goes into the alert
/// (`foretell_confidence_reason`) and its audit record.
#[derive(Clone, Debug, thiserror::Error)]
pub enum NoEvidence {
    #[error("the model of {series} (query {query}) is still learning its history")]
    StillLearning { series: String, query: String },
    #[error("no tracked series matches the alert's labels (on-demand assessment is off)")]
    UntrackedAndOnDemandOff,
    #[error("no tracked series matches the alert's labels and the alert carries no expression (generatorURL g0.expr or a foretell_expr annotation)")]
    UntrackedWithoutExpression,
    #[error("on-demand assessment is off")]
    OnDemandOff,
    #[error("`{expr}` returned no series matching the alert's labels")]
    NoMatchingSeries { expr: String },
    #[error("none of the {series} series `{expr}` returns now matches the alert's labels")]
    NoneOfSeriesMatch { expr: String, series: usize },
    #[error("Prometheus could not evaluate `{expr}`: {error}")]
    QueryFailed { expr: String, error: String },
    #[error("Prometheus did not answer `{expr}` within this notification's on-demand budget of {budget:?} (alerts.on_demand.timeout)")]
    OverBudget { expr: String, budget: Duration },
    #[error("the model fit for `{expr}` failed: {reason}")]
    FitFailed { expr: String, reason: String },
    #[error("`{expr}` has too little history for a model: {reason}")]
    TooLittleHistory { expr: String, reason: String },
}

/// The evidence for an alert and where it came from.
struct Found {
    evidence: Evidence,
    /// The series, described for people.
    series: String,
    /// `tracked` or `on_demand`.
    source: &'static str,
    /// What `/graph` needs to draw the series.
    graph: (Source, Labels),
    /// How a tracked series compares with its peers (`None`: on demand, or peers off).
    peer: Option<PeerVerdict>,
    /// A tracked series' exported labels (left out of its related signals).
    own_exported: Option<Labels>,
}

impl Assessor<'_> {
    /// The evidence for `alert`, the series it came from and whether that series is tracked or
    /// was fetched on demand; or why there is none.
    async fn find_evidence(&mut self, alert: &Alert) -> Result<Found, NoEvidence> {
        let sources = self.sources;
        let snapshot = sources.snapshot.load();
        let only_query = alert.annotations.get("foretell_query").map(String::as_str);
        if let Some(tracked) = find_tracked(snapshot.queries(), &alert.labels, only_query) {
            let series = describe_labels(tracked.series.labels().iter());
            let shape = sources.query_shape(&tracked.query.query);
            let step_ms = shape.as_ref().map_or(60_000, |s| s.step_ms);
            return match &tracked.series.state {
                SeriesState::Ready {
                    band,
                    score,
                    probability,
                    forecasts,
                    excursion,
                    ..
                } => {
                    let forecast = shape
                        .as_ref()
                        .and_then(|s| hour_horizon(&s.horizons, step_ms))
                        .and_then(|(label, _)| {
                            let at = tracked.query.horizons.iter().position(|h| h == label)?;
                            Some((label.clone(), *forecasts.get(at)?))
                        });
                    Ok(Found {
                        evidence: Evidence {
                            band: *band,
                            score: *score,
                            probability: *probability,
                            excursion: *excursion,
                            step_ms,
                            forecast,
                            siblings: tracked.siblings,
                            siblings_anomalous: tracked.siblings_anomalous,
                        },
                        series,
                        source: "tracked",
                        graph: (
                            Source::Query(tracked.query.query.clone()),
                            Labels::from_pairs(lookup::source_labels(tracked.series)),
                        ),
                        peer: tracked.series.peer,
                        own_exported: Some(tracked.series.labels().clone()),
                    })
                }
                SeriesState::NotReady => Err(NoEvidence::StillLearning {
                    series,
                    query: tracked.query.query.clone(),
                }),
            };
        }
        self.on_demand(alert).await
    }

    /// The alert's rule expression, fetched (once per notification) and the series matching the
    /// alert replayed through a model fitted on the fly.
    async fn on_demand(&mut self, alert: &Alert) -> Result<Found, NoEvidence> {
        let sources = self.sources;
        let Some((settings, _)) = &sources.on_demand else {
            return Err(NoEvidence::UntrackedAndOnDemandOff);
        };
        let expr = alert
            .annotations
            .get("foretell_expr")
            .cloned()
            .or_else(|| lookup::rule_expression(&alert.generator_url))
            .ok_or(NoEvidence::UntrackedWithoutExpression)?;
        let expr = lookup::without_threshold(&expr).to_owned();
        let fetched = self.fetch_series_of(&expr, alert, settings).await?;
        let (labels, samples) = lookup::pick_series(&fetched.series, &alert.labels)
            .ok_or_else(|| NoEvidence::NoMatchingSeries { expr: expr.clone() })?;
        let (start_ms, step_ms, points) = (fetched.start_ms, fetched.step_ms, fetched.points);
        let mut values = vec![f64::NAN; points];
        for sample in samples {
            let slot = (sample.timestamp_ms - start_ms) / step_ms;
            if (0..points as i64).contains(&slot) {
                values[slot as usize] = sample.value;
            }
        }
        // Fit on what came before the alert (with half an hour of lead, so the excursion's onset
        // is replayed), replay the rest. A series younger than that (or one with gaps) is fitted
        // on its first samples instead: a model on the alert's own early data still says more
        // than no model.
        let lead_ms = 1_800_000.max(5 * step_ms);
        let starts = ((alert.starts_at_ms - lead_ms - start_ms) / step_ms).max(0) as usize;
        let replay_from = starts
            .max(index_after_finite(&values, MIN_ON_DEMAND_POINTS))
            .min(points.saturating_sub(1));
        let horizon_steps = (3_600_000 / step_ms).max(1) as u32;
        let model = ForecastModel {
            coverage: Coverage::new(ON_DEMAND_COVERAGE).map_err(|e| NoEvidence::FitFailed {
                expr: expr.clone(),
                reason: e.to_string(),
            })?,
            min_points: MIN_ON_DEMAND_POINTS,
            season: match crate::config::auto_season_candidates(settings.step, settings.history) {
                candidates if candidates.is_empty() => SeasonSpec::None,
                candidates => SeasonSpec::Auto(candidates),
            },
            horizon_steps,
        };
        // A fit is CPU work: off the async runtime.
        let replayed = tokio::task::spawn_blocking(move || {
            lookup::replay(
                &values,
                replay_from,
                &model,
                ProbabilitySettings::default(),
                horizon_steps,
            )
        })
        .await
        .map_err(|e| NoEvidence::FitFailed {
            expr: expr.clone(),
            reason: e.to_string(),
        })?
        .map_err(|reason| NoEvidence::TooLittleHistory {
            expr: expr.clone(),
            reason: reason.to_string(),
        })?;
        let series = describe_labels(labels.iter());
        let forecast_label = crate::config::duration::format(Duration::from_millis(
            (i64::from(horizon_steps) * step_ms) as u64,
        ));
        Ok(Found {
            evidence: Evidence {
                band: replayed.band,
                score: replayed.score,
                probability: replayed.probability,
                excursion: replayed.excursion,
                step_ms,
                forecast: Some((forecast_label, replayed.forecast)),
                siblings: 0,
                siblings_anomalous: 0,
            },
            series,
            source: "on_demand",
            graph: (Source::Expr(expr), labels.clone()),
            peer: None,
            own_exported: None,
        })
    }

    /// The on-demand history of the rule `expr` holding the alert's series: the whole rule's
    /// when it has at most [`WHOLE_RULE_SERIES`] series (shared by all its alerts), otherwise
    /// only the series the probe finds for the alert's labels.
    async fn fetch_series_of(
        &self,
        expr: &str,
        alert: &Alert,
        settings: &OnDemandConfig,
    ) -> Result<Arc<Fetched>, NoEvidence> {
        let probe = self.fetch(expr, Span::Probe, settings).await?;
        if probe.series.len() <= WHOLE_RULE_SERIES {
            return self.fetch(expr, Span::History, settings).await;
        }
        let (labels, _) = lookup::pick_series(&probe.series, &alert.labels).ok_or_else(|| {
            NoEvidence::NoneOfSeriesMatch {
                expr: expr.to_owned(),
                series: probe.series.len(),
            }
        })?;
        let restricted = foretell_core::batch::restrict_to_series(expr, labels);
        self.fetch(&restricted, Span::History, settings).await
    }

    /// `expr` over the on-demand history ending at the current grid point, or at that point
    /// only: from the cache, or fetched, within what is left of the notification's budget.
    async fn fetch(
        &self,
        expr: &str,
        span: Span,
        settings: &OnDemandConfig,
    ) -> Result<Arc<Fetched>, NoEvidence> {
        let Some((_, prometheus)) = &self.sources.on_demand else {
            return Err(NoEvidence::OnDemandOff);
        };
        let step_ms = settings.step.as_millis() as i64;
        let end_ms = self.now_ms - self.now_ms.rem_euclid(step_ms);
        let start_ms = match span {
            Span::History => end_ms - settings.history.as_millis() as i64,
            Span::Probe => end_ms,
        };
        let slot = self.sources.ranges.slot(expr, span, end_ms);
        let query = RangeQuery {
            expr,
            start_ms,
            end_ms,
            step_ms,
        };
        let fetch = slot.get_or_init(|| async {
            prometheus
                .query_range(&query)
                .await
                .map(|answer| {
                    Arc::new(Fetched {
                        start_ms,
                        step_ms,
                        points: ((end_ms - start_ms) / step_ms + 1) as usize,
                        series: answer.series,
                    })
                })
                .map_err(|error| NoEvidence::QueryFailed {
                    expr: expr.to_owned(),
                    error: error.to_string(),
                })
        });
        tokio::time::timeout_at(self.deadline, fetch)
            .await
            .map_err(|_| NoEvidence::OverBudget {
                expr: expr.to_owned(),
                budget: settings.timeout,
            })?
            .clone()
    }
}

/// Four significant digits: enough for a human, short in a chat message.
fn round(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return format!("{value}");
    }
    let digits = 3 - value.abs().log10().floor() as i32;
    let factor = 10f64.powi(digits.clamp(-12, 12));
    format!("{}", (value * factor).round() / factor)
}

/// The horizon closest to one hour, among `(label, steps)` at `step_ms`.
fn hour_horizon(horizons: &[(String, u32)], step_ms: i64) -> Option<&(String, u32)> {
    horizons
        .iter()
        .min_by_key(|(_, steps)| (i64::from(*steps) * step_ms - 3_600_000).abs())
}

/// The index just after the `count`-th finite value, or the length when there are fewer.
fn index_after_finite(values: &[f64], count: usize) -> usize {
    if count == 0 {
        return 0;
    }
    values
        .iter()
        .enumerate()
        .filter(|(_, value)| value.is_finite())
        .nth(count - 1)
        .map_or(values.len(), |(index, _)| index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_starts_after_enough_finite_values() {
        let values = [f64::NAN, 1.0, f64::NAN, 2.0, 3.0, f64::NAN];
        assert_eq!(index_after_finite(&values, 1), 2);
        assert_eq!(index_after_finite(&values, 3), 5);
        assert_eq!(index_after_finite(&values, 4), values.len());
        assert_eq!(index_after_finite(&values, 0), 0);
    }

    #[test]
    fn the_range_cache_shares_a_slot_per_rule_and_grid_and_stays_bounded() {
        let cache = RangeCache::default();
        let first = cache.slot("up", Span::History, 60_000);
        assert!(Arc::ptr_eq(
            &first,
            &cache.slot("up", Span::History, 60_000)
        ));
        assert!(!Arc::ptr_eq(
            &first,
            &cache.slot("down", Span::History, 60_000)
        ));
        assert!(!Arc::ptr_eq(&first, &cache.slot("up", Span::Probe, 60_000)));
        // The grid moved on: a new slot, and the old ones are gone.
        assert!(!Arc::ptr_eq(
            &first,
            &cache.slot("up", Span::History, 120_000)
        ));
        let held = |cache: &RangeCache| cache.ranges.lock().expect("lock").len();
        assert_eq!(held(&cache), 1);
        for rule in 0..100 {
            cache.slot(&format!("rule{rule}"), Span::History, 120_000);
        }
        assert_eq!(held(&cache), CACHED_RANGES);
    }

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(round(1234.5678), "1235");
        assert_eq!(round(0.012345), "0.01235");
        assert_eq!(round(-98.7654), "-98.77");
        assert_eq!(round(0.0), "0");
        assert_eq!(round(f64::NAN), "NaN");
    }

    #[test]
    fn the_horizon_nearest_an_hour_is_chosen() {
        let horizons = vec![
            ("15m".to_owned(), 15),
            ("2h".to_owned(), 120),
            ("1d".to_owned(), 1440),
        ];
        assert_eq!(
            hour_horizon(&horizons, 60_000).map(|h| h.0.as_str()),
            Some("15m")
        );
        let coarse = vec![("50m".to_owned(), 10), ("1d".to_owned(), 288)];
        assert_eq!(
            hour_horizon(&coarse, 300_000).map(|h| h.0.as_str()),
            Some("50m")
        );
        assert_eq!(hour_horizon(&[], 60_000), None);
    }
}
