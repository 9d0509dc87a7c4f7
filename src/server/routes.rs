//! Request routing. [`handle`] needs no socket, so tests call it directly.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::sync::oneshot;

use super::{status, AppState, ReloadRequest};
use crate::exporter::scrape::{self, Scrape};
use crate::exporter::telemetry::Warmup;
use crate::graph::{self, GRAPH_PATH};
use crate::pipeline::UpstreamStatus;

type Reply = Response<Full<Bytes>>;

/// Where Alertmanager's webhook_config points.
pub const WEBHOOK_PATH: &str = "/alertmanager/webhook";

/// Dead letters: list (GET, JSON lines) and retry (POST, `?id=N&id=M` or `?all`).
pub const DEAD_LETTERS_PATH: &str = "/api/v1/dead-letters";
pub const DEAD_LETTERS_RETRY_PATH: &str = "/api/v1/dead-letters/retry";

/// How long `POST /-/reload` waits for the reload to finish.
const RELOAD_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn handle<B>(state: &AppState, request: Request<B>) -> Reply
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let method = request.method().clone();
    match (request.uri().path(), method) {
        (WEBHOOK_PATH, Method::POST) => match &state.alerts {
            Some(alerts) => {
                let peer = request.extensions().get::<super::Peer>().map(|p| p.0.ip());
                let answer = crate::alerts::webhook::receive(alerts.webhook(), peer, request).await;
                let mut response = text(answer.status, answer.reason);
                if let Some(seconds) = answer.retry_after_seconds {
                    response.headers_mut().insert(
                        hyper::header::RETRY_AFTER,
                        hyper::header::HeaderValue::from(seconds),
                    );
                }
                response
            }
            None => text(
                StatusCode::NOT_FOUND,
                "the Alertmanager webhook receiver is off (configure `alerts`)\n",
            ),
        },
        (WEBHOOK_PATH, _) => method_not_allowed("POST"),
        (DEAD_LETTERS_PATH, Method::GET) => dead_letters(state).await,
        (DEAD_LETTERS_RETRY_PATH, Method::POST) => {
            let query = request.uri().query().unwrap_or("").to_owned();
            let actor = super::http_actor(DEAD_LETTERS_RETRY_PATH, &request);
            retry_dead_letters(state, &query, &actor).await
        }
        (DEAD_LETTERS_PATH, _) => method_not_allowed("GET"),
        (DEAD_LETTERS_RETRY_PATH, _) => method_not_allowed("POST"),
        (GRAPH_PATH, Method::GET | Method::HEAD) => {
            graph(state, request.uri().query().unwrap_or("")).await
        }
        (GRAPH_PATH, _) => method_not_allowed("GET, HEAD"),
        ("/metrics", Method::GET | Method::HEAD) => {
            metrics(state, Scrape::of(request.headers())).await
        }
        ("/-/healthy", Method::GET | Method::HEAD) => {
            text(StatusCode::OK, "foretell is Healthy.\n")
        }
        ("/-/ready", Method::GET | Method::HEAD) => ready(state),
        ("/-/reload", Method::POST | Method::PUT) => {
            reload(state, super::http_actor("/-/reload", &request)).await
        }
        ("/", Method::GET | Method::HEAD) => {
            let (code, page) = status::overview(state).await;
            html(code, page)
        }
        (status::QUERY_PATH, Method::GET | Method::HEAD) => {
            let (code, page) = status::query(state, request.uri().query().unwrap_or(""));
            html(code, page)
        }
        (status::SERIES_PATH, Method::GET | Method::HEAD) => {
            let (code, page) = status::series(state, request.uri().query().unwrap_or(""));
            html(code, page)
        }
        (status::QUERY_PATH | status::SERIES_PATH, _) => method_not_allowed("GET, HEAD"),
        ("/api", Method::GET | Method::HEAD) => text(StatusCode::OK, INDEX),
        ("/metrics" | "/-/healthy" | "/-/ready" | "/" | "/api", _) => {
            method_not_allowed("GET, HEAD")
        }
        ("/-/reload", _) => method_not_allowed("POST, PUT"),
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
    }
}

/// Every endpoint, for `GET /api`. `the_api_index_names_every_endpoint` checks it against the
/// paths routed above.
const INDEX: &str = "foretell: forecasts, baselines and anomaly scores for Prometheus series\n\n\
    GET  /                      status page (HTML): queries, series anomalous now, recent alerts\n\
    GET  /status/query          every series of a query (?name=NAME), most anomalous first\n\
    GET  /status/series         one series: numbers, forecasts, chart (?query=NAME&series={...})\n\
    GET  /graph                 a series with its band and forecast as SVG (?query=NAME&series={...}&range=6h)\n\
    GET  /metrics               predictions and self-metrics (Prometheus text format, or OpenMetrics when asked)\n\
    GET  /-/healthy             liveness\n\
    GET  /-/ready               readiness: 200 once Prometheus answered, 503 while it is unreachable or a query's evaluation fails\n\
    POST /-/reload              reload the configuration (server.enable_lifecycle)\n\
    POST /alertmanager/webhook  Alertmanager webhook receiver (alerts)\n\
    GET  /api/v1/dead-letters   dead-lettered deliveries, JSON lines (alerts)\n\
    POST /api/v1/dead-letters/retry  requeue dead letters (?id=N, repeatable, or ?all; server.enable_lifecycle)\n\
    GET  /api                   this list\n";

fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A status page; a failure is answered as text. No script may run from a page that shows
/// label values, so none is allowed at all.
fn html(status: StatusCode, body: String) -> Reply {
    if !status.is_success() {
        return text(status, body);
    }
    let mut response = text(status, body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    response
}

async fn graph(state: &AppState, query: &str) -> Reply {
    let request = match graph::parse_request(query) {
        Ok(request) => request,
        Err(error) => return text(error.status(), format!("{error}\n")),
    };
    match state.graphs.render(&request, &state.snapshot.load()).await {
        Ok(svg) => {
            let mut response = text(StatusCode::OK, svg);
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("image/svg+xml; charset=utf-8"),
            );
            headers.insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            // Label values end up in the picture: no script may ever run from it.
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            );
            response
        }
        Err(error) => text(error.status(), format!("{error}\n")),
    }
}

/// Renders (and compresses) on the blocking pool: 100,000 series are a hundred megabytes, and
/// the runtime must keep answering the webhook and health checks meanwhile. The buffers are
/// kept from one scrape to the next ([`scrape::ScrapeBuffers`]).
async fn metrics(state: &AppState, scrape: Scrape) -> Reply {
    let snapshot = state.snapshot.load();
    let telemetry = Arc::clone(&state.telemetry);
    let registry = Arc::clone(&state.registry);
    let buffers = Arc::clone(&state.scrape_buffers);
    let max_series = state.max_exported_series.load(Ordering::Relaxed);
    let rendered = tokio::task::spawn_blocking(move || {
        scrape::render(
            &snapshot, &telemetry, &registry, max_series, scrape, &buffers,
        )
    })
    .await;
    match rendered {
        Ok(Ok(body)) => {
            let mut response = text(StatusCode::OK, body);
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(scrape.format.content_type()),
            );
            headers.insert(
                header::VARY,
                header::HeaderValue::from_static("Accept, Accept-Encoding"),
            );
            if scrape.gzip {
                headers.insert(
                    header::CONTENT_ENCODING,
                    header::HeaderValue::from_static("gzip"),
                );
            }
            response
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "cannot compress /metrics");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot compress the metrics\n",
            )
        }
        Err(error) => {
            tracing::error!(%error, "rendering /metrics failed");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render the metrics\n",
            )
        }
    }
}

async fn dead_letters(state: &AppState) -> Reply {
    let Some(alerts) = &state.alerts else {
        return text(
            StatusCode::NOT_FOUND,
            "the alert path is off (configure `alerts`)\n",
        );
    };
    match alerts.dead_letters().await {
        Ok(letters) => {
            let mut body = String::new();
            for letter in letters {
                body.push_str(&serde_json::to_string(&letter).unwrap_or_default());
                body.push('\n');
            }
            let mut response = text(StatusCode::OK, body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/x-ndjson"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "cannot list dead letters");
            text(StatusCode::SERVICE_UNAVAILABLE, "cannot read the outbox\n")
        }
    }
}

/// Requeues dead letters; an admin action, so it needs `server.enable_lifecycle` like reload.
async fn retry_dead_letters(state: &AppState, query: &str, actor: &str) -> Reply {
    if !state.lifecycle_enabled.load(Ordering::SeqCst) {
        return text(
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled (set server.enable_lifecycle: true).\n",
        );
    }
    let Some(alerts) = &state.alerts else {
        return text(
            StatusCode::NOT_FOUND,
            "the alert path is off (configure `alerts`)\n",
        );
    };
    let mut ids = Vec::new();
    let mut all = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("id", value)) => match value.parse::<i64>() {
                Ok(id) => ids.push(id),
                Err(_) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("id: `{value}` is not a delivery id\n"),
                    )
                }
            },
            None if pair == "all" => all = true,
            _ => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("unknown parameter `{pair}`; use id=N (repeatable) or all\n"),
                )
            }
        }
    }
    if ids.is_empty() && !all {
        return text(
            StatusCode::BAD_REQUEST,
            "name the dead letters: id=N (repeatable) or all\n",
        );
    }
    match alerts
        .retry_dead_letters((!all).then_some(ids), actor)
        .await
    {
        Ok(requeued) => text(
            StatusCode::OK,
            format!("requeued {} dead letter(s): {requeued:?}\n", requeued.len()),
        ),
        Err(error) => {
            tracing::error!(%error, "cannot requeue dead letters");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "the outbox could not be updated; retry later\n",
            )
        }
    }
}

/// "foretell is Ready." and, per query still coming up or brought back from its state file,
/// how (restored, loading its history and why): a restart's progress at a glance.
fn ready_text(state: &AppState) -> String {
    let mut text = String::from("foretell is Ready.\n");
    for (query, summary) in state.telemetry.query_summaries() {
        if let Some(warmup) = summary.warmup.filter(|w| *w != Warmup::Loaded) {
            text.push_str(&format!("query {query:?}: {}\n", warmup.describe()));
        }
    }
    text
}

fn ready(state: &AppState) -> Reply {
    if state.shutting_down.load(Ordering::SeqCst) {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "foretell is shutting down.\n",
        );
    }
    match state.upstream.status() {
        UpstreamStatus::Up { .. } => match state.upstream.failing_evaluations().first() {
            None => text(StatusCode::OK, ready_text(state)),
            Some((query, error)) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "foretell is not ready: the evaluation of query {query:?} failed: {error}\n"
                ),
            ),
        },
        UpstreamStatus::Unknown => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "foretell is not ready: no answer from Prometheus yet.\n",
        ),
        UpstreamStatus::Down { error, .. } => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("foretell is not ready: upstream Prometheus is down: {error}\n"),
        ),
    }
}

async fn reload(state: &AppState, actor: String) -> Reply {
    if !state.lifecycle_enabled.load(Ordering::SeqCst) {
        return text(
            StatusCode::FORBIDDEN,
            "Lifecycle API is not enabled (set server.enable_lifecycle: true, or send SIGHUP).\n",
        );
    }
    let (reply, answer) = oneshot::channel();
    if state
        .reload
        .send(ReloadRequest { actor, reply })
        .await
        .is_err()
    {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "foretell is shutting down.\n",
        );
    }
    match tokio::time::timeout(RELOAD_ANSWER_TIMEOUT, answer).await {
        Ok(Ok(Ok(()))) => text(StatusCode::OK, "configuration reloaded\n"),
        Ok(Ok(Err(message))) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("failed to reload config: {message}\n"),
        ),
        Ok(Err(_)) | Err(_) => {
            tracing::error!("reload request got no answer");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reload did not complete\n",
            )
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use foretell_core::model::Band;
    use foretell_core::snapshot::{export_labels, QueryOutput, SeriesOutput, SeriesState};
    use foretell_core::Labels;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    use super::*;
    use crate::exporter::telemetry::Telemetry;
    use crate::pipeline::{EvaluationFailed, SnapshotCell};

    fn unreachable_prometheus() -> crate::reader::PrometheusReader {
        let config = crate::config::parse(
            "prometheus:\n  url: http://127.0.0.1:9\nqueries:\n  - name: q\n    expr: up\n",
            std::path::Path::new("test.yml"),
            &crate::config::SystemEnvironment,
        )
        .expect("config");
        crate::reader::PrometheusReader::new(&config.prometheus).expect("client")
    }

    pub(in crate::server) fn state(lifecycle: bool) -> (AppState, mpsc::Receiver<ReloadRequest>) {
        let telemetry = Arc::new(Telemetry::new("test"));
        let (reload, requests) = mpsc::channel(1);
        (
            AppState {
                lifecycle_enabled: AtomicBool::new(lifecycle),
                ..AppState::new(
                    Arc::new(SnapshotCell::default()),
                    telemetry,
                    reload,
                    Arc::new(crate::graph::Grapher::new(
                        unreachable_prometheus(),
                        &[],
                        None,
                        crate::clock::system(),
                    )),
                )
            },
            requests,
        )
    }

    fn request(method: Method, path: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::new()))
            .expect("request")
    }

    async fn body_of(response: Reply) -> String {
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        String::from_utf8(bytes.to_vec()).expect("utf8")
    }

    /// A ready series of query `load` on `instance`, scored 0.5.
    fn ready_series(instance: &str) -> SeriesOutput {
        SeriesOutput::new(
            export_labels("load", &Labels::from_pairs([("instance", instance)])),
            SeriesState::Ready {
                band: Band {
                    expected: 1.0,
                    lower: 0.0,
                    upper: 2.0,
                },
                score: Some(0.5),
                probability: 0.0,
                forecasts: vec![],
                threshold_eta_seconds: None,
                excursion: Default::default(),
            },
        )
    }

    /// Issue 21, item 2: one scrape carries at most server.max_exported_series series; the
    /// rest are left out and counted.
    #[tokio::test]
    async fn metrics_carry_at_most_the_global_cap_of_series() {
        let (state, _requests) = state(false);
        state.snapshot.publish(QueryOutput {
            query: "load".into(),
            evaluated_at_ms: 0,
            horizons: vec![],
            series: vec![ready_series("a"), ready_series("b"), ready_series("c")],
        });
        state.max_exported_series.store(2, Ordering::SeqCst);
        let body = body_of(handle(&state, request(Method::GET, "/metrics")).await).await;
        let scores = body
            .lines()
            .filter(|l| l.starts_with("foretell_anomaly_score{"))
            .count();
        assert_eq!(scores, 2, "{body}");
        assert!(!body.contains("instance=\"c\""), "{body}");
        assert!(
            body.contains("\nforetell_series_not_exported 1\n"),
            "{body}"
        );
        state.max_exported_series.store(10, Ordering::SeqCst);
        let body = body_of(handle(&state, request(Method::GET, "/metrics")).await).await;
        assert!(body.contains("instance=\"c\""), "{body}");
        assert!(
            body.contains("\nforetell_series_not_exported 0\n"),
            "{body}"
        );
    }

    /// A server whose snapshot holds one ready series, `instance="a"` of query `load`.
    fn state_with_one_series() -> AppState {
        let (state, _requests) = state(false);
        state.snapshot.publish(QueryOutput {
            query: "load".into(),
            evaluated_at_ms: 0,
            horizons: vec![],
            series: vec![ready_series("a")],
        });
        state
    }

    #[tokio::test]
    async fn metrics_serve_the_snapshot_and_self_metrics() {
        let state = state_with_one_series();
        let response = handle(&state, request(Method::GET, "/metrics")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            foretell_core::exposition::CONTENT_TYPE
        );
        let body = body_of(response).await;
        assert!(!body.contains("# EOF"), "{body}");
        assert!(
            body.contains("foretell_anomaly_score{instance=\"a\",query=\"load\"} 0.5\n"),
            "{body}"
        );
        assert!(
            body.contains("foretell_build_info{version=\"test\",revision=\""),
            "{body}"
        );
        assert!(body.contains("\nprocess_open_fds "), "{body}");
    }

    /// A scrape that asks for OpenMetrics (Prometheus does, first) gets it: counter families
    /// named without `_total`, and `# EOF` at the end. The end-to-end stage has the real
    /// Prometheus scrape it and an OpenMetrics parser read it.
    #[tokio::test]
    async fn metrics_speak_openmetrics_when_asked() {
        let state = state_with_one_series();
        let mut scrape = request(Method::GET, "/metrics");
        scrape.headers_mut().insert(
            header::ACCEPT,
            header::HeaderValue::from_static(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            ),
        );
        let response = handle(&state, scrape).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert_eq!(response.headers()[header::VARY], "Accept, Accept-Encoding");
        let body = body_of(response).await;
        assert!(body.ends_with("\n# EOF\n"), "{body}");
        assert_eq!(body.matches("# EOF").count(), 1);
        assert!(
            body.contains("# TYPE foretell_config_reloads counter\nforetell_config_reloads_total{result=\"success\"} "),
            "{body}"
        );
        assert!(
            body.contains("foretell_anomaly_score{instance=\"a\",query=\"load\"} 0.5\n"),
            "{body}"
        );
        // Every counter family's samples are its name plus `_total`, as OpenMetrics requires.
        let counters: Vec<&str> = body
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|line| line.strip_suffix(" counter"))
            .collect();
        assert!(counters.len() >= 5, "{counters:?}");
        for family in counters {
            assert!(!family.ends_with("_total"), "{family}");
            let samples = body.lines().filter(|l| !l.starts_with('#')).filter(|l| {
                l.starts_with(family) && l[family.len()..].starts_with(['_', '{', ' '])
            });
            for sample in samples {
                assert!(sample.starts_with(&format!("{family}_total")), "{sample}");
            }
        }
    }

    #[tokio::test]
    async fn the_status_pages_show_queries_series_and_link_the_chart() {
        let (state, _requests) = state(false);
        *state.info.write().expect("lock") = crate::server::StatusInfo {
            prometheus_url: "http://prometheus:9090/".into(),
            queries: vec![crate::server::QueryInfo {
                name: "load".into(),
                expr: "node_load1".into(),
                step: Duration::from_secs(60),
                history: Duration::from_secs(7 * 86_400),
                evaluation_interval: Duration::from_secs(15),
                peers: false,
            }],
        };
        let ready = |instance: &str, score: f64| {
            SeriesOutput::new(
                export_labels(
                    "load",
                    &Labels::from_pairs([("__name__", "node_load1"), ("instance", instance)]),
                ),
                SeriesState::Ready {
                    band: Band {
                        expected: 1.0,
                        lower: 0.5,
                        upper: 1.5,
                    },
                    score: Some(score),
                    probability: if score > 1.0 { 0.3 } else { 0.01 },
                    forecasts: vec![],
                    threshold_eta_seconds: None,
                    excursion: Default::default(),
                },
            )
        };
        state.snapshot.publish(QueryOutput {
            query: "load".into(),
            evaluated_at_ms: 0,
            horizons: vec![],
            series: vec![
                ready("calm", 0.2),
                ready("warm", 2.0),
                ready("<b>hot</b>", 4.0),
            ],
        });
        let response = handle(&state, request(Method::GET, "/")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii")
            .starts_with("default-src 'none'"));
        let page = body_of(response).await;
        assert!(
            page.contains("<a href=\"/status/query?name=load\">load</a>"),
            "{page}"
        );
        assert!(page.contains("http://prometheus:9090/"));
        // Only what is anomalous now, the hottest first (its label escaped); not the calm one.
        let hot = page
            .find("&lt;b&gt;hot&lt;/b&gt;")
            .expect("hot series listed");
        let warm = page.find("warm").expect("warm series listed");
        assert!(hot < warm, "most anomalous first");
        assert!(!page.contains("calm"), "{page}");
        assert!(page.contains("The Alertmanager receiver is off"));

        let page =
            body_of(handle(&state, request(Method::GET, "/status/query?name=load")).await).await;
        assert!(
            page.contains("node_load1{instance=&quot;calm&quot;}"),
            "{page}"
        );
        let href = "/status/series?query=load&amp;series=%7Binstance%3D%22calm%22%7D";
        assert!(page.contains(href), "{page}");

        let response = handle(
            &state,
            request(
                Method::GET,
                "/status/series?query=load&series=%7Binstance%3D%22calm%22%7D&range=1d",
            ),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        let page = body_of(response).await;
        assert!(
            page.contains(
                "src=\"/graph?query=load&amp;series=%7Binstance%3D%22calm%22%7D&amp;range=1d&amp;width=800\""
            ),
            "{page}"
        );
        for (path, code) in [
            ("/status/query?name=nope", StatusCode::NOT_FOUND),
            ("/status/query", StatusCode::BAD_REQUEST),
            (
                "/status/series?query=load&series=%7Binstance%3D%22gone%22%7D",
                StatusCode::NOT_FOUND,
            ),
            (
                "/status/series?query=load&series=%7Bbroken",
                StatusCode::BAD_REQUEST,
            ),
            (
                "/status/series?query=load&series=%7B%7D&range=soon",
                StatusCode::BAD_REQUEST,
            ),
        ] {
            let response = handle(&state, request(Method::GET, path)).await;
            assert_eq!(response.status(), code, "{path}");
        }
        let api = body_of(handle(&state, request(Method::GET, "/api")).await).await;
        assert!(api.contains("/graph"), "{api}");
    }

    #[test]
    fn the_api_index_names_every_endpoint() {
        for path in [
            "/",
            status::QUERY_PATH,
            status::SERIES_PATH,
            GRAPH_PATH,
            "/metrics",
            "/-/healthy",
            "/-/ready",
            "/-/reload",
            WEBHOOK_PATH,
            DEAD_LETTERS_PATH,
            DEAD_LETTERS_RETRY_PATH,
            "/api",
        ] {
            assert!(
                INDEX.contains(&format!(" {path} ")),
                "{path} missing from /api"
            );
        }
    }

    #[tokio::test]
    async fn graph_requests_are_checked_and_failures_answered_in_text() {
        let (state, _requests) = state(false);
        let response = handle(&state, request(Method::GET, "/graph?colour=red")).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(body_of(response)
            .await
            .contains("unknown parameter `colour`"));
        let response = handle(&state, request(Method::GET, "/graph?query=missing")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = handle(&state, request(Method::POST, "/graph?query=q")).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn metrics_are_gzipped_when_the_scraper_asks() {
        let (state, _requests) = state(false);
        let plain = handle(&state, request(Method::GET, "/metrics")).await;
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::VARY], "Accept, Accept-Encoding");
        let plain = body_of(plain).await;
        let gzip_request = Request::builder()
            .method(Method::GET)
            .uri("/metrics")
            .header(header::ACCEPT_ENCODING, "gzip, deflate")
            .body(Full::new(Bytes::new()))
            .expect("request");
        let response = handle(&state, gzip_request).await;
        assert_eq!(response.headers()[header::CONTENT_ENCODING], "gzip");
        let compressed = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let mut unpacked = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&compressed[..]),
            &mut unpacked,
        )
        .expect("valid gzip");
        // The same families (the counters of the two scrapes themselves aside).
        let families = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("# TYPE"))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(families(&unpacked), families(&plain));
    }

    #[tokio::test]
    async fn readiness_follows_the_upstream_and_shutdown() {
        let (state, _requests) = state(false);
        let response = handle(&state, request(Method::GET, "/-/ready")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body_of(response)
            .await
            .contains("no answer from Prometheus yet"));

        state.upstream.record_down(
            "cannot reach http://p:9090/api/v1/query_range: connection refused",
            1,
        );
        let response = handle(&state, request(Method::GET, "/-/ready")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body_of(response)
            .await
            .contains("upstream Prometheus is down: cannot reach"));

        state.upstream.record_up(2);
        assert_eq!(
            handle(&state, request(Method::GET, "/-/ready"))
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            handle(&state, request(Method::GET, "/-/healthy"))
                .await
                .status(),
            StatusCode::OK
        );

        state.shutting_down.store(true, Ordering::SeqCst);
        assert_eq!(
            handle(&state, request(Method::GET, "/-/ready"))
                .await
                .status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    /// Issue 22: readiness says which queries came back from their state files and which
    /// still load their history, and forgets a query once its history has loaded.
    #[tokio::test]
    async fn readiness_says_how_each_query_came_up() {
        let (state, _requests) = state(false);
        state.upstream.record_up(1);
        state
            .telemetry
            .warmup("payments", Warmup::Restored { series: 3 });
        state.telemetry.warmup(
            "checkout",
            Warmup::Loading {
                state: Some("changed"),
            },
        );
        state
            .telemetry
            .warmup("search", Warmup::Loading { state: None });
        state.telemetry.history_loaded("search");
        state.telemetry.history_loaded("payments");
        let response = handle(&state, request(Method::GET, "/-/ready")).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            body_of(response).await,
            "foretell is Ready.\n\
             query \"checkout\": loading its history (state file not used: changed)\n\
             query \"payments\": restored from its state file (3 series)\n"
        );
    }

    /// Issue 16, item 2: a query whose evaluation failed every cycle left readiness at 200.
    #[tokio::test]
    async fn a_failing_evaluation_shows_in_readiness_and_self_metrics() {
        let (state, _requests) = state(false);
        state.upstream.record_up(1);
        state.upstream.record_evaluation(
            "payments",
            Err(EvaluationFailed::Scoring(
                "task 7 panicked with message \"capacity overflow\"".into(),
            )),
        );
        let response = handle(&state, request(Method::GET, "/-/ready")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(body_of(response)
            .await
            .contains(r#"the evaluation of query "payments" failed: task 7 panicked"#));
        let metrics = body_of(handle(&state, request(Method::GET, "/metrics")).await).await;
        assert!(
            metrics.contains(r#"foretell_evaluation_failures_total{query="payments"} 1"#),
            "{metrics}"
        );

        state.upstream.record_evaluation("payments", Ok(()));
        assert_eq!(
            handle(&state, request(Method::GET, "/-/ready"))
                .await
                .status(),
            StatusCode::OK
        );
        state
            .upstream
            .record_evaluation("gone", Err(EvaluationFailed::Scoring("panicked".into())));
        state.upstream.retain_queries(&["payments".to_owned()]);
        assert_eq!(
            handle(&state, request(Method::GET, "/-/ready"))
                .await
                .status(),
            StatusCode::OK
        );
    }

    #[tokio::test]
    async fn reload_is_forbidden_unless_enabled() {
        let (state, _requests) = state(false);
        let response = handle(&state, request(Method::POST, "/-/reload")).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn reload_reports_the_outcome() {
        let (state, mut requests) = state(true);
        tokio::spawn(async move {
            let first = requests.recv().await.expect("request");
            let _ = first.reply.send(Ok(()));
            let second = requests.recv().await.expect("request");
            let _ = second
                .reply
                .send(Err(crate::server::ReloadError::Prometheus(
                    crate::reader::ReadError::Setup(
                        "prometheus.tls.ca_file: no certificate".into(),
                    ),
                )));
        });
        assert_eq!(
            handle(&state, request(Method::POST, "/-/reload"))
                .await
                .status(),
            StatusCode::OK
        );
        let response = handle(&state, request(Method::POST, "/-/reload")).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body_of(response).await,
            "failed to reload config: cannot build the HTTP client for Prometheus: prometheus.tls.ca_file: no certificate\n"
        );
    }

    #[tokio::test]
    async fn unknown_paths_and_wrong_methods() {
        let (state, _requests) = state(true);
        assert_eq!(
            handle(&state, request(Method::GET, "/nope")).await.status(),
            StatusCode::NOT_FOUND
        );
        let response = handle(&state, request(Method::POST, "/metrics")).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
        assert_eq!(
            handle(&state, request(Method::GET, "/-/reload"))
                .await
                .status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
