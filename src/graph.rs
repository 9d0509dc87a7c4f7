//! `GET /graph`: one series drawn with the band each point was judged by and the forecast after
//! it, as SVG. Linked from enriched alerts (`foretell_graph_url`) and the status page.
//!
//! The chart is made from Prometheus, not from the sidecar's memory, so that it works for any
//! series (tracked, or only named by an alert rule's expression) and costs nothing until asked
//! for: the series' history is fetched, a model of the same settings is fitted on the older part
//! and the shown range replayed through it point by point ([`foretell_core::chart::trace`]).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use foretell_core::chart::{self, Grid};
use foretell_core::labels::METRIC_NAME;
use foretell_core::model::{Coverage, ForecastModel, ProbabilitySettings, SeasonSpec};
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
const MAX_SHOWN_POINTS: i64 = 5_000;
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
            other => {
                return Err(bad(format!(
                    "unknown parameter `{}` (known: query, expr, sig, series, range)",
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

    /// Draws the chart `request` asks for, ending now.
    pub async fn render(&self, request: &GraphRequest) -> Result<String, GraphError> {
        let now_ms = self.clock.now_ms();
        let _permit = tokio::time::timeout(CHART_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| GraphError::Busy)?
            .map_err(|_| GraphError::Busy)?;
        tokio::time::timeout(CHART_TIMEOUT, self.draw(request, now_ms))
            .await
            .map_err(|_| {
                GraphError::Upstream(format!(
                    "no chart within {CHART_TIMEOUT:?} (Prometheus slow or the expression heavy)"
                ))
            })?
    }

    async fn draw(&self, request: &GraphRequest, now_ms: i64) -> Result<String, GraphError> {
        let (expr, step, fit_span, model, subtitle) = match &request.source {
            Source::Query(name) => {
                let source = self
                    .queries
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(name)
                    .cloned()
                    .ok_or_else(|| {
                        GraphError::NotFound(format!("no query named `{name}` is configured"))
                    })?;
                let subtitle = format!("query {name}: {}", source.expr);
                (
                    source.expr,
                    source.step,
                    source.history.min(MAX_FIT_SPAN),
                    source.model,
                    subtitle,
                )
            }
            Source::Expr(expr) => {
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
                    season: match crate::config::auto_season_candidates(
                        settings.step,
                        settings.history,
                    ) {
                        candidates if candidates.is_empty() => SeasonSpec::None,
                        candidates => SeasonSpec::Auto(candidates),
                    },
                    // The chart draws an hour ahead.
                    horizon_steps: (3_600_000 / settings.step.as_millis().max(1)).max(1) as u32,
                };
                (
                    expr.clone(),
                    settings.step,
                    settings.history,
                    model,
                    format!("expression {expr}"),
                )
            }
        };
        let step_ms = (step.as_millis() as i64).max(1);
        let shown_points = request.range.as_millis() as i64 / step_ms;
        if shown_points > MAX_SHOWN_POINTS {
            return Err(GraphError::BadRequest(format!(
                "range {} at step {} is {shown_points} points; at most {MAX_SHOWN_POINTS} are drawn",
                duration::format(request.range),
                duration::format(step)
            )));
        }
        let shown_points = shown_points.max(10);
        let end_ms = now_ms - now_ms.rem_euclid(step_ms);
        let fit_points = (fit_span.as_millis() as i64 / step_ms).max(MIN_FIT_POINTS as i64);
        let start_ms = end_ms - (fit_points + shown_points - 1) * step_ms;
        let reader = Arc::clone(&self.reader.read().unwrap_or_else(|e| e.into_inner()));
        let fetched_expr = foretell_core::batch::restrict_to_series(&expr, &request.series);
        // The newest point first: an expression of thousands of series is refused for the
        // price of one point, not fetched whole.
        let probe = reader
            .query_range(&RangeQuery {
                expr: &fetched_expr,
                start_ms: end_ms,
                end_ms,
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
                end_ms,
                step_ms,
            })
            .await
            .map_err(|e| GraphError::Upstream(e.to_string()))?;
        let (labels, samples) = pick(&answer.series, &request.series)?;
        let points = ((end_ms - start_ms) / step_ms + 1) as usize;
        let mut values = vec![f64::NAN; points];
        for sample in samples {
            let slot = (sample.timestamp_ms - start_ms) / step_ms;
            if (0..points as i64).contains(&slot) {
                values[slot as usize] = sample.value;
            }
        }
        let replay_from = points - shown_points as usize;
        let horizon_steps = (3_600_000 / step_ms).clamp(1, (shown_points / 4).max(1)) as u32;
        let title = match labels.get(METRIC_NAME) {
            Some(name) => format!(
                "{name}{}",
                Labels::from_pairs(labels.iter().filter(|(n, _)| *n != METRIC_NAME))
            ),
            None => labels.to_string(),
        };
        let subtitle = format!(
            "{subtitle} · step {} · band fitted on the {} before the range",
            duration::format(step),
            duration::format(Duration::from_millis((fit_points * step_ms) as u64))
        );
        tokio::task::spawn_blocking(move || {
            let trace = chart::trace(
                &values,
                Grid { start_ms, step_ms },
                replay_from,
                &model,
                ProbabilitySettings::default(),
                horizon_steps,
            )
            .map_err(|reason| {
                GraphError::NotEnoughData(format!("no model for {title} yet: {reason}"))
            })?;
            Ok(chart::svg::render(&trace, &title, &subtitle))
        })
        .await
        .map_err(|e| GraphError::Upstream(format!("the chart's model fit failed: {e}")))?
    }
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
        crate::testing::matrix(&[("a", &borrowed)])
    }

    #[tokio::test]
    async fn a_tracked_series_is_fetched_alone_and_drawn() {
        let end_s = 1_800_000_000;
        let prometheus =
            crate::testing::FakeUpstream::start(vec![crate::testing::json(200, &history(end_s))])
                .await;
        let grapher = grapher(&prometheus.url, false, end_s * 1000 + 5_000);
        let request =
            parse_request("query=demo&series=%7Binstance%3D%22a%22%7D&range=2h").expect("valid");
        let svg = grapher.render(&request).await.expect("drawn");
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

    #[tokio::test]
    async fn unknown_queries_expressions_when_off_and_failures_say_so() {
        let end_s = 1_800_000_000;
        let down = grapher("http://127.0.0.1:9", false, end_s * 1000);
        let request = |q: &str| parse_request(q).expect("valid");
        let error = down
            .render(&request("query=nope"))
            .await
            .expect_err("unknown");
        assert!(matches!(error, GraphError::NotFound(_)), "{error}");
        let error = down.render(&request("expr=up")).await.expect_err("off");
        assert!(error.to_string().contains("alerts.on_demand"), "{error}");
        let error = down.render(&request("query=demo")).await.expect_err("down");
        assert_eq!(error.status(), http::StatusCode::BAD_GATEWAY, "{error}");
        let error = down
            .render(&request("query=demo&range=30d"))
            .await
            .expect_err("too long");
        assert!(error.to_string().contains("at most 5000"), "{error}");
        let prometheus =
            crate::testing::FakeUpstream::start(vec![crate::testing::json(200, &history(end_s))])
                .await;
        let up = grapher(&prometheus.url, true, end_s * 1000);
        let error = up
            .render(&request("expr=up&series=%7Binstance%3D%22b%22%7D"))
            .await
            .expect_err("no such series");
        assert!(
            error.to_string().contains("no series with the labels"),
            "{error}"
        );
        let svg = up
            .render(&request("expr=up"))
            .await
            .expect("the only series");
        assert!(svg.contains("expression up"), "{svg}");
    }

    /// Issue 16, item 3: `/graph?expr=` sent any expression to Prometheus with foretell's
    /// credentials. By default only the expressions of links foretell signed are drawn.
    #[tokio::test]
    async fn expressions_are_drawn_only_from_signed_links_unless_any_is_allowed() {
        let end_s = 1_800_000_000;
        let prometheus =
            crate::testing::FakeUpstream::start(vec![crate::testing::json(200, &history(end_s))])
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
                .render(&request(unsigned))
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
            .render(&request(signed.split_once('?').expect("query").1))
            .await
            .expect("a link foretell made is drawn");
        assert!(svg.starts_with("<svg"));
        // A signature is for its expression only.
        let moved = signed.replace("expr=up", "expr=secret_metric");
        let error = linked
            .render(&request(moved.split_once('?').expect("query").1))
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
        let prometheus = crate::testing::FakeUpstream::start(vec![crate::testing::json(
            200,
            &crate::testing::matrix(&borrowed),
        )])
        .await;
        let any = grapher(&prometheus.url, true, end_s * 1000);
        let error = any
            .render(&parse_request("expr=up").expect("valid"))
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
