//! `GET /graph`: one series drawn with the band each point was judged by and the forecast after
//! it, as SVG. Linked from enriched alerts (`foretell_graph_url`) and the status page.
//!
//! A tracked series is drawn from its live record (what the live model did at each point, kept
//! by the tracker: `queries[].live_record`) with the forecasts it exports, so the chart agrees
//! with `/metrics` and the status page. What the record does not hold (a range longer than it,
//! the time before the series was first evaluated, a series of another shard, an alert rule's
//! expression) is *replayed*: its history is fetched from Prometheus, a model of the same
//! settings fitted on the older part and the shown points taken in one by one
//! ([`foretell_core::chart::trace`]); the chart labels that part.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use foretell_core::alerts::lookup;
use foretell_core::chart::{self, Grid};

use crate::views::chart as svg;
use foretell_core::labels::METRIC_NAME;
use foretell_core::model::{Coverage, ForecastModel, ProbabilitySettings, SeasonSpec};
use foretell_core::snapshot::{SeriesOutput, SeriesState, Snapshot, SOURCE_METRIC_LABEL};
use foretell_core::Labels;
use tokio::sync::Semaphore;

use crate::clock::Clock;
use crate::config::{duration, GraphExpressions, OnDemandConfig, QueryConfig};
use crate::reader::{PrometheusReader, RangeQuery};
use foretell_core::chart::link::LinkSigner;

pub const GRAPH_PATH: &str = "/graph";

/// Shown when the request names no range.
const DEFAULT_RANGE: Duration = Duration::from_secs(6 * 3600);
/// More points than this would make a chart nobody can read and a large body.
pub const MAX_SHOWN_POINTS: i64 = 5_000;
/// History fitted before the shown range, at most (enough for two daily cycles).
const MAX_FIT_SPAN: Duration = Duration::from_secs(3 * 86_400);
/// Charts drawn at once; more wait (fits are CPU work on two cores).
const CONCURRENT_CHARTS: usize = 2;
/// A chart that cannot start and finish within this is abandoned.
const CHART_TIMEOUT: Duration = Duration::from_secs(20);
/// Points fitted at least before the shown range starts.
const MIN_FIT_POINTS: usize = 30;
/// Band coverage of charts for expressions foretell does not track (as on-demand enrichment).
const EXPR_COVERAGE: f64 = 0.99;
/// A chart draws one series; an expression returning more than this at the newest point is
/// refused before its history is fetched (a 300,000-series expression took 1.2 GB).
pub const MAX_CHART_SERIES: usize = 100;
/// Bytes of one Prometheus answer a chart reads at most (its history: 100 series of 5,000
/// points fit; the configured `prometheus.max_response_bytes` applies when lower).
pub const MAX_CHART_RESPONSE_BYTES: u64 = 16 << 20;

/// How charts of expressions (`expr=`) are allowed: their settings and what signs links.
#[derive(Clone, Debug)]
pub struct ExpressionCharts {
    pub settings: OnDemandConfig,
    pub signer: LinkSigner,
}

/// What to draw: a tracked query's series, or a series of an alert rule's expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Query(String),
    Expr(String),
}

mod request;
pub use request::{link, parse_request, GraphError, GraphRequest};

/// How a tracked query's charts are made (replaced on reload).
#[derive(Clone, Debug)]
struct QuerySource {
    expr: String,
    step: Duration,
    history: Duration,
    model: ForecastModel,
    /// Steps ahead of each exported forecast, in the order of the query's horizons.
    horizon_steps: Vec<u32>,
    unit: String,
}

/// A replay's settings: what to fetch, how to fit it, and which points to show.
struct Replay<'a> {
    expr: &'a str,
    step_ms: i64,
    fit_span: Duration,
    model: &'a ForecastModel,
    series: &'a Labels,
    /// The first and last grid points shown.
    first_ms: i64,
    last_ms: i64,
    /// Forecast steps drawn after the last point.
    horizon_steps: u32,
}

/// A replayed chart: the series it found, the points, and what the subtitle should say.
struct Replayed {
    labels: Labels,
    trace: chart::Trace,
    /// How much history the model was fitted on, and from when the replay starts if
    /// Prometheus held too little history for the requested start.
    note: String,
}

/// Draws charts; shared by the routes.
pub struct Grapher {
    reader: RwLock<Arc<PrometheusReader>>,
    queries: RwLock<BTreeMap<String, QuerySource>>,
    /// Charts of expressions follow `alerts.on_demand`; `None`: not allowed.
    expressions: Option<ExpressionCharts>,
    permits: Semaphore,
    clock: Arc<dyn Clock>,
}

impl Grapher {
    pub fn new(
        reader: PrometheusReader,
        queries: &[QueryConfig],
        expressions: Option<ExpressionCharts>,
        clock: Arc<dyn Clock>,
    ) -> Grapher {
        let grapher = Grapher {
            reader: RwLock::new(Arc::new(
                reader.with_max_response_bytes(MAX_CHART_RESPONSE_BYTES),
            )),
            queries: RwLock::new(BTreeMap::new()),
            expressions,
            permits: Semaphore::new(CONCURRENT_CHARTS),
            clock,
        };
        grapher.set_queries(queries, None);
        grapher
    }

    /// Follows a reload: new queries, and the new Prometheus client when it changed.
    pub fn set_queries(&self, queries: &[QueryConfig], reader: Option<PrometheusReader>) {
        let sources = queries
            .iter()
            .map(|q| {
                (
                    q.name.clone(),
                    QuerySource {
                        expr: q.expr.clone(),
                        step: q.step,
                        history: q.history,
                        model: q.model.clone(),
                        horizon_steps: q.horizons.iter().map(|h| h.steps).collect(),
                        unit: q.unit.clone(),
                    },
                )
            })
            .collect();
        *self.queries.write().unwrap_or_else(|e| e.into_inner()) = sources;
        if let Some(reader) = reader {
            *self.reader.write().unwrap_or_else(|e| e.into_inner()) =
                Arc::new(reader.with_max_response_bytes(MAX_CHART_RESPONSE_BYTES));
        }
    }

    /// Draws the chart `request` asks for, ending now. A tracked series of `snapshot` is drawn
    /// from its live record, replaying from Prometheus only what the record does not hold.
    pub async fn render(
        &self,
        request: &GraphRequest,
        snapshot: &Snapshot,
    ) -> Result<String, GraphError> {
        let now_ms = self.clock.now_ms();
        let _permit = tokio::time::timeout(CHART_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| GraphError::Busy)?
            .map_err(|_| GraphError::Busy)?;
        tokio::time::timeout(CHART_TIMEOUT, self.draw(request, now_ms, snapshot))
            .await
            .map_err(|_| {
                GraphError::Upstream(format!(
                    "no chart within {CHART_TIMEOUT:?} (Prometheus slow or the expression heavy)"
                ))
            })?
    }

    async fn draw(
        &self,
        request: &GraphRequest,
        now_ms: i64,
        snapshot: &Snapshot,
    ) -> Result<String, GraphError> {
        let name = match &request.source {
            Source::Query(name) => name,
            Source::Expr(expr) => return self.draw_expression(request, expr, now_ms).await,
        };
        let source = self
            .queries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| {
                GraphError::NotFound(format!("no query named `{name}` is configured"))
            })?;
        let step_ms = (source.step.as_millis() as i64).max(1);
        let shown_points = shown_points(request.range, step_ms)?;
        let tracked = snapshot
            .queries()
            .find(|output| &output.query == name)
            .and_then(|output| pick_tracked(&output.series, &request.series));
        let frame_subtitle = |note: &str| {
            format!(
                "query {name}: {} · step {}{note}",
                source.expr,
                duration::format(source.step)
            )
        };
        let coverage = source.model.coverage.get();
        let onset = ProbabilitySettings::default().onset_probability();
        let recorded = tracked.and_then(|series| series.record.as_ref().map(|r| (series, r)));
        let Some((series, record)) = recorded else {
            // Not tracked here (another shard, not yet loaded, or no record kept): replay all.
            let end_ms = now_ms - now_ms.rem_euclid(step_ms);
            let replayed = self
                .replay(Replay {
                    expr: &source.expr,
                    step_ms,
                    fit_span: source.history.min(MAX_FIT_SPAN),
                    model: &source.model,
                    series: &request.series,
                    first_ms: end_ms - (shown_points - 1) * step_ms,
                    last_ms: end_ms,
                    horizon_steps: chart_horizon(step_ms, shown_points),
                })
                .await?;
            let subtitle = frame_subtitle(&format!(" · replayed: {}", replayed.note));
            let trace = chart::Trace {
                replayed_through_ms: replayed.trace.last().map(|p| p.timestamp_ms),
                ..replayed.trace
            };
            return Ok(render_svg(
                &trace,
                &title_of(&replayed.labels),
                &subtitle,
                &source.unit,
                request.width,
            ));
        };
        let Some((_, newest_ms)) = record.with(|r| r.span_ms()) else {
            return Err(GraphError::NotEnoughData(format!(
                "{} has no evaluated point yet; try again after its first cycle",
                title_of(series.labels())
            )));
        };
        let first_ms = newest_ms - (shown_points - 1) * step_ms;
        let live = record.with(|r| r.points_since(first_ms));
        let first_live_ms = live.first().map_or(newest_ms, |p| p.timestamp_ms);
        let (forecast, excursion) = match &series.state {
            SeriesState::Ready {
                forecasts,
                excursion,
                ..
            } => {
                // Horizons beyond a third of the range would squeeze the past into a corner;
                // the shortest is always drawn.
                let reach_steps = shown_points / 3;
                let drawn = source
                    .horizon_steps
                    .iter()
                    .zip(forecasts)
                    .enumerate()
                    .filter(|(i, (steps, _))| *i == 0 || i64::from(**steps) <= reach_steps)
                    .map(|(_, (steps, band))| (newest_ms + i64::from(*steps) * step_ms, *band))
                    .collect();
                (drawn, *excursion)
            }
            SeriesState::NotReady => (Vec::new(), Default::default()),
        };
        let source_labels = Labels::from_pairs(lookup::source_labels(series));
        let labels = match series.labels().get(SOURCE_METRIC_LABEL) {
            Some(metric) => Labels::from_pairs(
                std::iter::once((METRIC_NAME, metric)).chain(source_labels.iter()),
            ),
            None => source_labels.clone(),
        };
        // The part of the range before the record is replayed; if that fails the live part
        // is still drawn, and the subtitle says why the rest is missing.
        let (replayed, note) = if first_live_ms > first_ms {
            match self
                .replay(Replay {
                    expr: &source.expr,
                    step_ms,
                    fit_span: source.history.min(MAX_FIT_SPAN),
                    model: &source.model,
                    series: &source_labels,
                    first_ms,
                    last_ms: first_live_ms - step_ms,
                    horizon_steps: 1,
                })
                .await
            {
                Ok(replayed) => (
                    Some(replayed.trace),
                    format!(
                        " · live record since {} · before it replayed: {}",
                        clock_time(first_live_ms),
                        replayed.note
                    ),
                ),
                Err(error) => (
                    None,
                    format!(
                        " · live record since {}; the older part could not be replayed: {error}",
                        clock_time(first_live_ms)
                    ),
                ),
            }
        } else {
            (None, " · live record".to_owned())
        };
        let trace = chart::Trace::live(replayed, live, forecast, excursion, coverage, onset);
        Ok(render_svg(
            &trace,
            &title_of(&labels),
            &frame_subtitle(&note),
            &source.unit,
            request.width,
        ))
    }

    /// A chart of an alert rule's expression: always replayed (foretell does not track it).
    async fn draw_expression(
        &self,
        request: &GraphRequest,
        expr: &str,
        now_ms: i64,
    ) -> Result<String, GraphError> {
        let charts = self.expressions.as_ref().ok_or_else(|| {
            GraphError::NotFound(
                "charts of expressions are off (they follow alerts.on_demand); chart a configured query with `query=NAME`".into(),
            )
        })?;
        let settings = charts.settings;
        let signed = request
            .signature
            .as_deref()
            .is_some_and(|sig| charts.signer.verify(expr, sig));
        if settings.graph_expressions == GraphExpressions::Linked && !signed {
            return Err(GraphError::Forbidden(
                "charts of expressions are drawn only from the links foretell puts on the alerts it enriches (alerts.on_demand.graph_expressions: linked); chart a configured query with `query=NAME`".into(),
            ));
        }
        let model = ForecastModel {
            coverage: Coverage::new(EXPR_COVERAGE)
                .map_err(|e| GraphError::BadRequest(e.to_string()))?,
            min_points: MIN_FIT_POINTS,
            season: match crate::config::auto_season_candidates(settings.step, settings.history) {
                candidates if candidates.is_empty() => SeasonSpec::None,
                candidates => SeasonSpec::Auto(candidates),
            },
            // The chart draws an hour ahead.
            horizon_steps: (3_600_000 / settings.step.as_millis().max(1)).max(1) as u32,
        };
        let step_ms = (settings.step.as_millis() as i64).max(1);
        let shown_points = shown_points(request.range, step_ms)?;
        let end_ms = now_ms - now_ms.rem_euclid(step_ms);
        let replayed = self
            .replay(Replay {
                expr,
                step_ms,
                fit_span: settings.history,
                model: &model,
                series: &request.series,
                first_ms: end_ms - (shown_points - 1) * step_ms,
                last_ms: end_ms,
                horizon_steps: chart_horizon(step_ms, shown_points),
            })
            .await?;
        let subtitle = format!(
            "expression {expr} · step {} · replayed: {}",
            duration::format(settings.step),
            replayed.note
        );
        let trace = chart::Trace {
            replayed_through_ms: replayed.trace.last().map(|p| p.timestamp_ms),
            ..replayed.trace
        };
        Ok(render_svg(
            &trace,
            &title_of(&replayed.labels),
            &subtitle,
            "",
            request.width,
        ))
    }

    /// Fetches the shown points and the history before them, fits the model on that history
    /// and replays the shown points through it. When Prometheus holds less history than the
    /// fit needs ([`replay_start`]), the points before the replay are drawn without a band,
    /// rather than judged by a model the live one never was.
    async fn replay(&self, replay: Replay<'_>) -> Result<Replayed, GraphError> {
        let Replay {
            expr,
            step_ms,
            fit_span,
            model,
            series,
            first_ms,
            last_ms,
            horizon_steps,
        } = replay;
        let fit_points = (fit_span.as_millis() as i64 / step_ms).max(MIN_FIT_POINTS as i64);
        let start_ms = first_ms - fit_points * step_ms;
        let reader = Arc::clone(&self.reader.read().unwrap_or_else(|e| e.into_inner()));
        let fetched_expr = foretell_core::batch::restrict_to_series(expr, series);
        // The newest point first: an expression of thousands of series is refused for the
        // price of one point, not fetched whole.
        let probe = reader
            .query_range(&RangeQuery {
                expr: &fetched_expr,
                start_ms: last_ms,
                end_ms: last_ms,
                step_ms,
            })
            .await
            .map_err(|e| GraphError::Upstream(e.to_string()))?;
        if probe.series.len() > MAX_CHART_SERIES {
            return Err(GraphError::BadRequest(format!(
                "the expression returns {} series; a chart draws one: name it with `series={{label=\"value\", ...}}` (at most {MAX_CHART_SERIES} may match)",
                probe.series.len()
            )));
        }
        drop(probe);
        let answer = reader
            .query_range(&RangeQuery {
                expr: &fetched_expr,
                start_ms,
                end_ms: last_ms,
                step_ms,
            })
            .await
            .map_err(|e| GraphError::Upstream(e.to_string()))?;
        let (labels, samples) = pick(&answer.series, series)?;
        let points = ((last_ms - start_ms) / step_ms + 1) as usize;
        let mut values = vec![f64::NAN; points];
        for sample in samples {
            let slot = (sample.timestamp_ms - start_ms) / step_ms;
            if (0..points as i64).contains(&slot) {
                values[slot as usize] = sample.value;
            }
        }
        let requested_from = fit_points as usize;
        let replay_from = replay_start(&values, requested_from);
        let title = title_of(labels);
        let at = move |slot: usize| start_ms + slot as i64 * step_ms;
        // Points before the replay can start are drawn as values alone.
        let unjudged: Vec<chart::TracePoint> = (requested_from..replay_from.min(points))
            .map(|slot| chart::TracePoint {
                timestamp_ms: at(slot),
                value: values[slot],
                band: NO_BAND,
                score: None,
                probability: 0.0,
            })
            .collect();
        let no_band_note = format!(
            "no band before {}: Prometheus holds less than the model's {} of history before it",
            clock_time(at(replay_from.min(points))),
            duration::format(fit_span)
        );
        if replay_from >= points {
            return Ok(Replayed {
                labels: labels.clone(),
                trace: chart::Trace {
                    points: unjudged,
                    excursion: Default::default(),
                    forecast: Vec::new(),
                    coverage: model.coverage.get(),
                    onset_probability: ProbabilitySettings::default().onset_probability(),
                    replayed_through_ms: None,
                },
                note: no_band_note,
            });
        }
        let fit_from = replay_from.saturating_sub(fit_points as usize);
        let fitted_on = values[fit_from..replay_from]
            .iter()
            .skip_while(|v| v.is_nan())
            .count();
        let mut note = format!(
            "band fitted on the {} before",
            duration::format(Duration::from_millis(fitted_on as u64 * step_ms as u64))
        );
        if !unjudged.is_empty() {
            note = format!("{note}; {no_band_note}");
        }
        let model = model.clone();
        let labels = labels.clone();
        tokio::task::spawn_blocking(move || {
            let mut trace = chart::trace(
                &values[fit_from..],
                Grid {
                    start_ms: at(fit_from),
                    step_ms,
                },
                replay_from - fit_from,
                &model,
                ProbabilitySettings::default(),
                horizon_steps,
            )
            .map_err(|reason| {
                GraphError::NotEnoughData(format!("no model for {title} yet: {reason}"))
            })?;
            trace.points.splice(0..0, unjudged);
            Ok(Replayed {
                labels,
                trace,
                note,
            })
        })
        .await
        .map_err(|e| GraphError::Upstream(format!("the chart's model fit failed: {e}")))?
    }
}

/// The band of a point drawn without one.
const NO_BAND: foretell_core::model::Band = foretell_core::model::Band {
    expected: f64::NAN,
    lower: f64::NAN,
    upper: f64::NAN,
};

/// Where a replay can start: at `requested` (the first shown point, after the fit window) when
/// Prometheus holds that window, else as soon after its first value as it does. A model fitted
/// on less than the live model's window is not the live model: with a season seen only twice
/// its band came out far too narrow, and with less, the season was dropped and most points
/// were marked outside a band that followed the data an hour late. A twentieth of the window
/// may be missing at its start (a late first scrape).
fn replay_start(values: &[f64], requested: usize) -> usize {
    match values.iter().position(|v| v.is_finite()) {
        Some(first_value) => requested.max(first_value + requested - requested / 20),
        None => values.len(),
    }
}

/// Points shown for `range` at `step_ms`, refused beyond what a chart can draw.
fn shown_points(range: Duration, step_ms: i64) -> Result<i64, GraphError> {
    let shown = range.as_millis() as i64 / step_ms;
    if shown > MAX_SHOWN_POINTS {
        return Err(GraphError::BadRequest(format!(
            "range {} at step {} is {shown} points; at most {MAX_SHOWN_POINTS} are drawn",
            duration::format(range),
            duration::format(Duration::from_millis(step_ms as u64))
        )));
    }
    Ok(shown.max(10))
}

/// Forecast steps a replayed chart draws: an hour, at most a quarter of the shown points.
fn chart_horizon(step_ms: i64, shown_points: i64) -> u32 {
    (3_600_000 / step_ms).clamp(1, (shown_points / 4).max(1)) as u32
}

/// `metric{labels}` of a series.
fn title_of(labels: &Labels) -> String {
    match labels.get(METRIC_NAME) {
        Some(name) => format!(
            "{name}{}",
            Labels::from_pairs(labels.iter().filter(|(n, _)| *n != METRIC_NAME))
        ),
        None => labels.to_string(),
    }
}

/// `MM-DD HH:MM UTC`.
fn clock_time(timestamp_ms: i64) -> String {
    let text = foretell_core::timestamp::format_rfc3339(timestamp_ms);
    format!("{} UTC", text[5..16].replace('T', " "))
}

fn render_svg(trace: &chart::Trace, title: &str, subtitle: &str, unit: &str, width: u32) -> String {
    svg::render(
        trace,
        &svg::Frame {
            title,
            subtitle,
            unit,
            width,
        },
    )
}

/// The tracked series with every label of `wanted` among its source labels (an exact match
/// wins over a wider one); `None` when none or several.
fn pick_tracked<'a>(series: &'a [SeriesOutput], wanted: &Labels) -> Option<&'a SeriesOutput> {
    let sources: Vec<(Labels, &SeriesOutput)> = series
        .iter()
        .map(|s| (Labels::from_pairs(lookup::source_labels(s)), s))
        .collect();
    pick(&sources, wanted).ok().map(|(_, s)| *s)
}

/// The one series carrying every label of `wanted` (an exact match wins over a wider one).
fn pick<'a, T>(results: &'a [(Labels, T)], wanted: &Labels) -> Result<&'a (Labels, T), GraphError> {
    let carries = |labels: &Labels| wanted.iter().all(|(n, v)| labels.get(n) == Some(v));
    let matching: Vec<&(Labels, T)> = results.iter().filter(|(l, _)| carries(l)).collect();
    let exact = |labels: &Labels| {
        labels.iter().filter(|(n, _)| *n != METRIC_NAME).count()
            == wanted.iter().filter(|(n, _)| *n != METRIC_NAME).count()
    };
    match matching.as_slice() {
        [] => Err(GraphError::NotFound(format!(
            "no series with the labels {wanted} in the range"
        ))),
        [one] => Ok(one),
        many => match many.iter().find(|(labels, _)| exact(labels)) {
            Some(one) => Ok(one),
            None => Err(GraphError::BadRequest(format!(
                "{} series carry the labels {wanted}; add labels to single one out (for example {})",
                many.len(),
                many[0].0
            ))),
        },
    }
}

#[cfg(test)]
mod tests;
