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
use url::Url;

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

#[derive(Clone, Debug, PartialEq)]
pub struct GraphRequest {
    pub source: Source,
    /// Labels the series must have (a subset is enough when it singles one series out).
    pub series: Labels,
    pub range: Duration,
    /// Pixels wide (`width=`, for pages that show the chart wider or narrower).
    pub width: u32,
    /// `sig`: the signature of an `expr` link foretell made ([`link`]).
    pub signature: Option<String>,
}

/// Why no chart was drawn; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Prometheus could not evaluate the chart's expression: {0}")]
    Upstream(String),
    #[error("{0}")]
    NotEnoughData(String),
    #[error("too many charts are being drawn; try again in a moment")]
    Busy,
    #[error("{0}")]
    Forbidden(String),
}

impl GraphError {
    pub fn status(&self) -> http::StatusCode {
        match self {
            GraphError::BadRequest(_) => http::StatusCode::BAD_REQUEST,
            GraphError::NotFound(_) => http::StatusCode::NOT_FOUND,
            GraphError::Upstream(_) => http::StatusCode::BAD_GATEWAY,
            GraphError::NotEnoughData(_) => http::StatusCode::UNPROCESSABLE_ENTITY,
            GraphError::Busy => http::StatusCode::SERVICE_UNAVAILABLE,
            GraphError::Forbidden(_) => http::StatusCode::FORBIDDEN,
        }
    }
}

/// Reads `query=NAME` or `expr=PROMQL`, `series={name="value", ...}` and `range=6h`.
pub fn parse_request(query_string: &str) -> Result<GraphRequest, GraphError> {
    let bad = |message: String| GraphError::BadRequest(message);
    let mut query = None;
    let mut expr = None;
    let mut series = Labels::default();
    let mut range = DEFAULT_RANGE;
    let mut width = svg::DEFAULT_WIDTH;
    let mut signature = None;
    for (name, value) in url::form_urlencoded::parse(query_string.as_bytes()) {
        match name.as_ref() {
            "query" => query = Some(value.into_owned()),
            "sig" => signature = Some(value.into_owned()),
            "expr" => expr = Some(value.into_owned()),
            "series" => {
                series = Labels::parse_selector(&value)
                    .map_err(|e| bad(format!("parameter `series`: {e}")))?;
            }
            "range" => {
                range = duration::parse(&value)
                    .ok()
                    .filter(|r| !r.is_zero())
                    .ok_or_else(|| {
                        bad(format!(
                            "parameter `range`: `{value}` is not a positive duration such as 6h"
                        ))
                    })?;
            }
            "width" => {
                width = value
                    .parse()
                    .ok()
                    .filter(|w| (svg::MIN_WIDTH..=svg::MAX_WIDTH).contains(w))
                    .ok_or_else(|| {
                        bad(format!(
                            "parameter `width`: `{}` is not a number of pixels from {} to {}",
                            value.chars().take(16).collect::<String>(),
                            svg::MIN_WIDTH,
                            svg::MAX_WIDTH
                        ))
                    })?;
            }
            other => {
                return Err(bad(format!(
                    "unknown parameter `{}` (known: query, expr, sig, series, range, width)",
                    other.chars().take(64).collect::<String>()
                )))
            }
        }
    }
    let source = match (query, expr) {
        (Some(query), None) => Source::Query(query),
        (None, Some(expr)) if !expr.trim().is_empty() => Source::Expr(expr),
        (Some(_), Some(_)) => return Err(bad("give `query` or `expr`, not both".into())),
        _ => {
            return Err(bad(
                "name the series: `query=NAME` (a configured query) or `expr=PROMQL`, with `series={label=\"value\", ...}`".into(),
            ))
        }
    };
    Ok(GraphRequest {
        source,
        series,
        range,
        width,
        signature,
    })
}

/// The link to a chart, relative to foretell's external URL. A link to an expression's chart
/// carries its signature when there is a signer: only such links are drawn by default.
pub fn link(base: &Url, source: &Source, series: &Labels, signer: Option<&LinkSigner>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    match source {
        Source::Query(name) => query.append_pair("query", name),
        Source::Expr(expr) => {
            query.append_pair("expr", expr);
            if let Some(signer) = signer {
                query.append_pair("sig", &signer.sign(expr));
            }
            &mut query
        }
    };
    let shown: Vec<(&str, &str)> = series.iter().filter(|(n, _)| *n != METRIC_NAME).collect();
    query.append_pair("series", &Labels::from_pairs(shown).to_string());
    format!(
        "{}{GRAPH_PATH}?{}",
        base.as_str().trim_end_matches('/'),
        query.finish()
    )
}

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
                title_of(&series.labels)
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
        let labels = match series.labels.get(SOURCE_METRIC_LABEL) {
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
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_with_defaults_and_errors_say_which_parameter() {
        let request = parse_request("query=demo&series=%7Binstance%3D%22a%22%7D").expect("valid");
        assert_eq!(request.source, Source::Query("demo".into()));
        assert_eq!(request.series, Labels::from_pairs([("instance", "a")]));
        assert_eq!(request.range, DEFAULT_RANGE);
        let request = parse_request("expr=rate(x%5B5m%5D)&range=1h").expect("valid");
        assert_eq!(request.source, Source::Expr("rate(x[5m])".into()));
        assert_eq!(request.range, Duration::from_secs(3600));
        for (query, says) in [
            ("", "name the series"),
            ("query=a&expr=b", "not both"),
            ("query=a&range=0s", "`range`"),
            ("query=a&range=soon", "`range`"),
            ("query=a&series=%7Bjob%3D~%22a%22%7D", "`series`"),
            ("query=a&colour=red", "unknown parameter `colour`"),
        ] {
            let error = parse_request(query).expect_err(query).to_string();
            assert!(error.contains(says), "{query}: {error}");
        }
    }

    #[test]
    fn links_read_back_as_the_same_request() {
        let base = Url::parse("http://foretell.example:9896/").expect("url");
        let labels = Labels::from_pairs([
            ("__name__", "up"),
            ("job", "a&b=\"c\""),
            ("instance", "x y"),
        ]);
        let signer = signer();
        let link = link(
            &base,
            &Source::Expr("sum(rate(x[5m])) > 1".into()),
            &labels,
            Some(&signer),
        );
        assert!(
            link.starts_with("http://foretell.example:9896/graph?expr="),
            "{link}"
        );
        let request = parse_request(link.split_once('?').expect("query").1).expect("parses");
        assert_eq!(request.source, Source::Expr("sum(rate(x[5m])) > 1".into()));
        assert!(signer.verify(
            "sum(rate(x[5m])) > 1",
            request.signature.as_deref().expect("signed")
        ));
        assert_eq!(
            request.series,
            Labels::from_pairs([("job", "a&b=\"c\""), ("instance", "x y")])
        );
        let prefixed = Url::parse("https://ops.example/foretell").expect("url");
        assert!(link_for_query(&prefixed).starts_with("https://ops.example/foretell/graph?query=q"));
    }

    fn link_for_query(base: &Url) -> String {
        link(base, &Source::Query("q".into()), &Labels::default(), None)
    }

    fn signer() -> LinkSigner {
        LinkSigner::new(
            &foretell_core::audit::KeyRing::parse(&format!("k1:{}", "5a".repeat(32)))
                .expect("keys"),
        )
    }

    fn grapher(prometheus: &str, on_demand: bool, now_ms: i64) -> Grapher {
        grapher_with(
            prometheus,
            on_demand.then_some(GraphExpressions::Any),
            now_ms,
        )
    }

    fn grapher_with(
        prometheus: &str,
        expressions: Option<GraphExpressions>,
        now_ms: i64,
    ) -> Grapher {
        let text = format!(
            "prometheus:\n  url: {prometheus}\n  timeout: 2s\n  retry:\n    max_attempts: 1\nqueries:\n  - name: demo\n    expr: up\n    step: 1m\n    history: 6h\n"
        );
        let config = crate::config::parse(
            &text,
            std::path::Path::new("test.yml"),
            &crate::config::SystemEnvironment,
        )
        .expect("config");
        Grapher::new(
            PrometheusReader::new(&config.prometheus).expect("client"),
            &config.queries,
            expressions.map(|graph_expressions| ExpressionCharts {
                settings: OnDemandConfig {
                    history: Duration::from_secs(6 * 3600),
                    step: Duration::from_secs(60),
                    timeout: Duration::from_secs(2),
                    graph_expressions,
                },
                signer: signer(),
            }),
            Arc::new(crate::clock::ManualClock::new(now_ms)),
        )
    }

    /// Eight hours of a noisy series at 1m ending at `end_s`, with a spike near the end.
    fn history(end_s: i64) -> String {
        let points: Vec<(i64, String)> = (0..480)
            .map(|i| {
                let value =
                    50.0 + ((i * 7919) % 17) as f64 / 4.0 + if i == 470 { 60.0 } else { 0.0 };
                (end_s - (479 - i) * 60, value.to_string())
            })
            .collect();
        let borrowed: Vec<(i64, &str)> = points.iter().map(|(t, v)| (*t, v.as_str())).collect();
        foretell_testing::matrix(&[("a", &borrowed)])
    }

    #[tokio::test]
    async fn a_tracked_series_is_fetched_alone_and_drawn() {
        let end_s = 1_800_000_000;
        let prometheus = foretell_testing::FakeUpstream::start(vec![foretell_testing::json(
            200,
            &history(end_s),
        )])
        .await;
        let grapher = grapher(&prometheus.url, false, end_s * 1000 + 5_000);
        let request =
            parse_request("query=demo&series=%7Binstance%3D%22a%22%7D&range=2h").expect("valid");
        let svg = grapher
            .render(&request, &Snapshot::default())
            .await
            .expect("drawn");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains(r#"<title>up{instance=&quot;a&quot;}</title>"#),
            "{svg}"
        );
        assert!(svg.contains("class=\"anomalous\"") || svg.contains("class=\"outside\""));
        let requests = prometheus.requests();
        assert_eq!(requests.len(), 2, "a probe, then the range: {requests:?}");
        // Restricted to the one series (a selector gets a matcher); the newest point first,
        // then 6h fitted before the 2h shown, ending on the grid.
        for request in &requests {
            assert!(
                request.contains("query=up%7Binstance%3D%22a%22%7D&"),
                "{request}"
            );
            assert!(request.contains(&format!("end={end_s}")), "{request}");
        }
        assert!(
            requests[0].contains(&format!("start={end_s}&")),
            "{}",
            requests[0]
        );
        assert!(
            requests[1].contains(&format!("start={}", end_s - (360 + 120 - 1) * 60)),
            "{}",
            requests[1]
        );
    }

    /// A snapshot of query `demo` tracking `up{instance="a"}`, whose live record holds
    /// `recorded` points at 1m ending at `end_s` with an incident of three points near the end,
    /// and a 1h forecast.
    fn tracked(end_s: i64, recorded: usize) -> Snapshot {
        use foretell_core::chart::record::{LiveRecord, SharedRecord};
        use foretell_core::model::{Band, Observation};
        use foretell_core::snapshot::{export_labels, QueryOutput};
        let record = SharedRecord::new(LiveRecord::new(60_000, 360));
        let band = Band {
            expected: 50.0,
            lower: 45.0,
            upper: 55.0,
        };
        for i in 0..recorded {
            let incident = i + 10 >= recorded && i + 7 < recorded;
            let value = if incident {
                90.0
            } else {
                50.0 + (i % 5) as f64
            };
            let observation = Observation {
                band,
                score: foretell_core::model::anomaly_score(&band, value),
                surprise: 0.0,
            };
            let at_ms = (end_s - (recorded - 1 - i) as i64 * 60) * 1000;
            record.with(|r| r.push(at_ms, &observation, value, if incident { 0.9 } else { 0.0 }));
        }
        let labels = Labels::from_pairs([("__name__", "up"), ("instance", "a")]);
        let state = SeriesState::Ready {
            band,
            score: Some(0.2),
            probability: 0.0,
            forecasts: vec![Band {
                expected: 51.0,
                lower: 40.0,
                upper: 62.0,
            }],
            threshold_eta_seconds: None,
            excursion: Default::default(),
        };
        Snapshot::default().with_query(QueryOutput {
            query: "demo".into(),
            evaluated_at_ms: end_s * 1000,
            horizons: vec!["1h".into()],
            series: vec![
                SeriesOutput::new(export_labels("demo", &labels), state).with_record(record)
            ],
        })
    }

    /// Issue 19, item 1: a tracked series is drawn from what the live model did, with the
    /// forecast it exports; Prometheus is not asked.
    #[tokio::test]
    async fn a_tracked_series_is_drawn_from_its_live_record() {
        let end_s = 1_800_000_000;
        let down = grapher("http://127.0.0.1:9", false, end_s * 1000 + 20_000);
        let svg = down
            .render(
                &parse_request("query=demo&series=%7Binstance%3D%22a%22%7D&range=2h&width=1200")
                    .expect("valid"),
                &tracked(end_s, 300),
            )
            .await
            .expect("drawn without Prometheus");
        assert!(svg.contains("width=\"1200\""), "{svg}");
        assert!(
            svg.contains("<title>up{instance=&quot;a&quot;}</title>"),
            "{svg}"
        );
        assert!(svg.contains("live record"), "{svg}");
        assert!(!svg.contains("class=\"replayed\""), "{svg}");
        // 120 points, the incident's three outside the band, one episode.
        assert!(svg.contains("<desc>120 points, 3 outside the 99% band, 1 anomaly episode(s); forecast for 1 steps.</desc>"), "{svg}");
        assert_eq!(svg.matches("class=\"episode\"").count(), 1);
        assert!(svg.contains("class=\"forecast\" d=\"M"), "{svg}");
    }

    /// Issue 19, item 1: a range longer than the record replays the rest from Prometheus,
    /// labelled; when Prometheus cannot be asked, the live part is still drawn.
    #[tokio::test]
    async fn a_range_beyond_the_record_is_replayed_and_labelled() {
        let end_s = 1_800_000_000;
        let request =
            parse_request("query=demo&series=%7Binstance%3D%22a%22%7D&range=6h").expect("valid");
        let down = grapher("http://127.0.0.1:9", false, end_s * 1000);
        let svg = down
            .render(&request, &tracked(end_s, 100))
            .await
            .expect("the live part is drawn");
        assert!(svg.contains("could not be replayed"), "{svg}");
        assert!(svg.contains("<desc>100 points"), "{svg}");
        let prometheus = foretell_testing::FakeUpstream::start(vec![foretell_testing::json(
            200,
            &history(end_s),
        )])
        .await;
        let up = grapher(&prometheus.url, false, end_s * 1000);
        let svg = up
            .render(&request, &tracked(end_s, 100))
            .await
            .expect("drawn");
        assert!(svg.contains("class=\"replayed\""), "{svg}");
        assert!(svg.contains("live record since"), "{svg}");
        assert!(svg.contains("<desc>360 points"), "{svg}");
        let requests = prometheus.requests();
        // Only the part before the record: it ends the step before the record's first point.
        let last_replayed = end_s - 100 * 60;
        assert!(
            requests
                .iter()
                .all(|r| r.contains(&format!("end={last_replayed}"))),
            "{requests:?}"
        );
    }

    /// Issue 19, item 1: the quickstart's 1d chart marked nearly every point outside a band
    /// that was not drawn. The chart's model was fitted on the history before the range, which
    /// Prometheus held only partly: without two daily cycles the model lost its season (and
    /// with exactly two its band was far too narrow). A replay now starts where Prometheus
    /// holds the live model's window, and shows the values before it without a band.
    #[tokio::test]
    async fn a_replay_does_not_fit_a_model_the_live_one_never_was() {
        let end_s: i64 = 1_800_000_000;
        let day = 1440;
        // 2.5 days at 1m of a daily cycle with noise; the query keeps 2 days of history.
        let points: Vec<(i64, String)> = (0..day * 5 / 2)
            .map(|i| {
                let t = end_s - (day * 5 / 2 - 1 - i) as i64 * 60;
                let phase = (t.rem_euclid(86_400)) as f64 / 86_400.0 * std::f64::consts::TAU;
                let noise = foretell_core::synthetic::uniform_noise(i, 3) * 4.0;
                (t, format!("{:.3}", 100.0 + 40.0 * phase.sin() + noise))
            })
            .collect();
        let borrowed: Vec<(i64, &str)> = points.iter().map(|(t, v)| (*t, v.as_str())).collect();
        let prometheus = foretell_testing::FakeUpstream::start(vec![foretell_testing::json(
            200,
            &foretell_testing::matrix(&[("a", &borrowed)]),
        )])
        .await;
        let text = format!(
            "prometheus:\n  url: {}\nqueries:\n  - name: demo\n    expr: up\n    step: 1m\n    history: 2d\n    model:\n      seasonality: 1d\n",
            prometheus.url
        );
        let config = crate::config::parse(
            &text,
            std::path::Path::new("t.yml"),
            &crate::config::SystemEnvironment,
        )
        .expect("config");
        let grapher = Grapher::new(
            PrometheusReader::new(&config.prometheus).expect("client"),
            &config.queries,
            None,
            Arc::new(crate::clock::ManualClock::new(end_s * 1000)),
        );
        let svg = grapher
            .render(
                &parse_request("query=demo&series=%7Binstance%3D%22a%22%7D&range=1d")
                    .expect("valid"),
                &Snapshot::default(),
            )
            .await
            .expect("drawn");
        assert!(svg.contains("no band before"), "{svg}");
        let desc = svg
            .split("<desc>")
            .nth(1)
            .and_then(|d| d.split(' ').nth(2))
            .expect("desc");
        let outside: usize = desc.parse().expect("a count");
        // Half a day has a band (720 points): at 99 %, a handful outside, not most.
        assert!(outside <= 10, "{outside} outside: {svg}");
        assert!(svg.contains("class=\"band\" d=\"M"), "the band is drawn");
    }

    #[tokio::test]
    async fn unknown_queries_expressions_when_off_and_failures_say_so() {
        let end_s = 1_800_000_000;
        let down = grapher("http://127.0.0.1:9", false, end_s * 1000);
        let request = |q: &str| parse_request(q).expect("valid");
        let error = down
            .render(&request("query=nope"), &Snapshot::default())
            .await
            .expect_err("unknown");
        assert!(matches!(error, GraphError::NotFound(_)), "{error}");
        let error = down
            .render(&request("expr=up"), &Snapshot::default())
            .await
            .expect_err("off");
        assert!(error.to_string().contains("alerts.on_demand"), "{error}");
        let error = down
            .render(&request("query=demo"), &Snapshot::default())
            .await
            .expect_err("down");
        assert_eq!(error.status(), http::StatusCode::BAD_GATEWAY, "{error}");
        let error = down
            .render(&request("query=demo&range=30d"), &Snapshot::default())
            .await
            .expect_err("too long");
        assert!(error.to_string().contains("at most 5000"), "{error}");
        let prometheus = foretell_testing::FakeUpstream::start(vec![foretell_testing::json(
            200,
            &history(end_s),
        )])
        .await;
        let up = grapher(&prometheus.url, true, end_s * 1000);
        let error = up
            .render(
                &request("expr=up&series=%7Binstance%3D%22b%22%7D"),
                &Snapshot::default(),
            )
            .await
            .expect_err("no such series");
        assert!(
            error.to_string().contains("no series with the labels"),
            "{error}"
        );
        let svg = up
            .render(&request("expr=up"), &Snapshot::default())
            .await
            .expect("the only series");
        assert!(svg.contains("expression up"), "{svg}");
    }

    /// Issue 16, item 3: `/graph?expr=` sent any expression to Prometheus with foretell's
    /// credentials. By default only the expressions of links foretell signed are drawn.
    #[tokio::test]
    async fn expressions_are_drawn_only_from_signed_links_unless_any_is_allowed() {
        let end_s = 1_800_000_000;
        let prometheus = foretell_testing::FakeUpstream::start(vec![foretell_testing::json(
            200,
            &history(end_s),
        )])
        .await;
        let linked = grapher_with(
            &prometheus.url,
            Some(GraphExpressions::Linked),
            end_s * 1000,
        );
        let request = |q: &str| parse_request(q).expect("valid");
        for unsigned in [
            "expr=secret_metric%7Btenant%3D%22other%22%7D",
            "expr=secret_metric&sig=00112233445566778899aabbccddeeff",
        ] {
            let error = linked
                .render(&request(unsigned), &Snapshot::default())
                .await
                .expect_err("refused");
            assert_eq!(error.status(), http::StatusCode::FORBIDDEN, "{error}");
            assert!(error.to_string().contains("graph_expressions"), "{error}");
        }
        assert!(
            prometheus.requests().is_empty(),
            "nothing reached Prometheus"
        );
        let base = Url::parse("http://foretell.example/").expect("url");
        let signed = link(
            &base,
            &Source::Expr("up".into()),
            &Labels::default(),
            Some(&signer()),
        );
        let svg = linked
            .render(
                &request(signed.split_once('?').expect("query").1),
                &Snapshot::default(),
            )
            .await
            .expect("a link foretell made is drawn");
        assert!(svg.starts_with("<svg"));
        // A signature is for its expression only.
        let moved = signed.replace("expr=up", "expr=secret_metric");
        let error = linked
            .render(
                &request(moved.split_once('?').expect("query").1),
                &Snapshot::default(),
            )
            .await
            .expect_err("refused");
        assert_eq!(error.status(), http::StatusCode::FORBIDDEN);
    }

    /// Issue 16, item 3: two charts of a 300,000-series expression took RSS to 1.56 GB. The
    /// newest point is probed first; more than MAX_CHART_SERIES series is refused before any
    /// history is fetched.
    #[tokio::test]
    async fn an_expression_of_too_many_series_is_refused_after_one_point() {
        let end_s = 1_800_000_000;
        let many: Vec<(String, Vec<(i64, &str)>)> = (0..=MAX_CHART_SERIES)
            .map(|i| (format!("i{i}"), vec![(end_s, "1")]))
            .collect();
        let borrowed: Vec<(&str, &[(i64, &str)])> = many
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_slice()))
            .collect();
        let prometheus = foretell_testing::FakeUpstream::start(vec![foretell_testing::json(
            200,
            &foretell_testing::matrix(&borrowed),
        )])
        .await;
        let any = grapher(&prometheus.url, true, end_s * 1000);
        let error = any
            .render(
                &parse_request("expr=up").expect("valid"),
                &Snapshot::default(),
            )
            .await
            .expect_err("too many");
        assert_eq!(error.status(), http::StatusCode::BAD_REQUEST);
        assert!(error.to_string().contains("returns 101 series"), "{error}");
        let requests = prometheus.requests();
        assert_eq!(requests.len(), 1, "only the probe: {requests:?}");
        assert!(requests[0].contains(&format!("start={end_s}&")));
    }

    #[test]
    fn the_series_is_singled_out_or_the_ambiguity_reported() {
        let results = vec![
            (Labels::from_pairs([("instance", "a"), ("job", "x")]), ()),
            (Labels::from_pairs([("instance", "b"), ("job", "x")]), ()),
            (Labels::from_pairs([("job", "x")]), ()),
        ];
        let one = pick(&results, &Labels::from_pairs([("instance", "b")])).expect("one");
        assert_eq!(one.0.get("instance"), Some("b"));
        let exact = pick(&results, &Labels::from_pairs([("job", "x")])).expect("exact");
        assert_eq!(exact.0.len(), 1);
        let results = &results[..2];
        let error = pick(results, &Labels::from_pairs([("job", "x")])).expect_err("two");
        assert!(error.to_string().contains("2 series carry"), "{error}");
        let error = pick(results, &Labels::from_pairs([("job", "y")])).expect_err("none");
        assert!(matches!(error, GraphError::NotFound(_)));
    }
}
