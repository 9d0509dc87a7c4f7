//! The status pages foretell serves at `/`: plain HTML and CSS, no script, every text from the
//! outside escaped (label values, expressions and alert names are written by other people).
//! The views are filled by the server, which also builds every link; this module only renders.

use std::fmt::Write as _;

use foretell_core::timestamp::format_rfc3339;
use foretell_core::Labels;

use super::markup::escape;

/// One configured query on the overview.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryRow {
    pub name: String,
    pub expr: String,
    pub step: String,
    pub history: String,
    pub tracked: usize,
    pub ready: usize,
    /// How often the query is evaluated, for judging the age of the newest cycle.
    pub interval_ms: i64,
    /// Seconds the newest completed cycle took.
    pub last_cycle_seconds: Option<f64>,
    /// Unix milliseconds the newest cycle completed.
    pub last_success_ms: Option<i64>,
    pub cycles: u64,
    pub skipped: u64,
    pub failures: u64,
    /// How the query came up after the start (restored from its state file, loading its
    /// history), with the class it is shown in (`ok`, `warn`, `muted`).
    pub warmup: Option<(String, &'static str)>,
    pub href: String,
}

/// A series that is anomalous now: outside its band, in an open excursion, or at an onset.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyRow {
    pub query: String,
    pub series: String,
    pub score: f64,
    pub probability: f64,
    /// Unix milliseconds of the open excursion's first point outside the band (`None` when no
    /// excursion is open: an onset inside the band).
    pub since_ms: Option<i64>,
    /// The excursion's largest one-step error, signed, in robust standard deviations.
    pub peak_sigmas: f64,
    /// How far the series went beyond its range of the last week lately, as a share of the
    /// range's width (0 inside it).
    pub range_excess: f64,
    pub href: String,
}

/// A series that is an outlier among its peers now (`queries[].peers`).
#[derive(Clone, Debug, PartialEq)]
pub struct PeerOutlierRow {
    pub query: String,
    pub series: String,
    /// 1 is the group's boundary.
    pub score: f64,
    /// Series in its group, itself included.
    pub group_size: usize,
    pub href: String,
}

/// An alert foretell received, with what it made of it.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRow {
    pub at_ms: i64,
    pub subject: String,
    pub confidence: Option<f64>,
    /// Why there is no confidence, or the series it was assessed on.
    pub detail: String,
    /// `delivered to pager`, `pending for tickets`, `suppressed`, ...
    pub outcome: String,
    pub chart_href: Option<String>,
}

/// Whether Prometheus answers, and why not.
#[derive(Clone, Debug, PartialEq)]
pub enum Upstream {
    Waiting,
    Up,
    Down(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Overview {
    pub version: String,
    pub now_ms: i64,
    pub prometheus_url: String,
    pub upstream: Upstream,
    pub queries: Vec<QueryRow>,
    pub anomalies: Vec<AnomalyRow>,
    /// `None` when no query compares its series with their peers.
    pub peer_outliers: Option<Vec<PeerOutlierRow>>,
    /// `None` when the alert path is off.
    pub alerts: Option<Vec<AlertRow>>,
}

/// One series of a query.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesRow {
    pub series: String,
    /// `None` while the model is learning.
    pub ready: Option<SeriesNumbers>,
    pub href: String,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesNumbers {
    pub score: Option<f64>,
    pub probability: f64,
    pub baseline: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct QueryPage {
    pub version: String,
    pub name: String,
    pub expr: String,
    pub rows: Vec<SeriesRow>,
    /// Series left out of the table (it shows the most anomalous first).
    pub hidden: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SeriesPage {
    pub version: String,
    pub query: String,
    pub query_href: String,
    pub series: String,
    pub numbers: Option<SeriesNumbers>,
    /// Forecasts by horizon label: (horizon, expected, lower, upper).
    pub forecasts: Vec<(String, f64, f64, f64)>,
    /// The chart to show and the other ranges it can be shown over: (label, page link).
    pub chart_src: String,
    pub ranges: Vec<(String, String)>,
    /// Its peer verdict (`queries[].peers`): score, outlier, group size.
    pub peer: Option<(f64, bool, usize)>,
    /// The same target's other unusual signals now (`alerts::related`), described.
    pub related: Vec<String>,
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fafafa}\
header{background:#1f2d3d;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:baseline;flex-wrap:wrap}\
header a{color:#fff;text-decoration:none}header h1{font-size:20px;margin:0}\
main{padding:10px 20px}h2{font-size:16px;margin:24px 0 8px}\
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}\
th,td{border-bottom:1px solid #e5e5e5;padding:5px 8px;text-align:left;vertical-align:top}\
th{background:#f0f3f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}\
code{font-size:12px;background:#f0f0f0;padding:1px 4px;border-radius:3px;word-break:break-all}\
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}.muted{color:#666}\
.pill{padding:2px 8px;border-radius:10px;background:#fff;color:#222;font-size:12px}\
.pill.ok{background:#dafbe1;color:#1a7f37}.pill.bad{background:#cf222e;color:#fff;font-weight:600}\
.pill.warn{background:#fff8c5;color:#9a6700}\
img.chart{max-width:100%;height:auto;border:1px solid #ddd;background:#fff}\
footer{padding:20px;color:#666;font-size:12px}";

/// Chart widths by window width, widest first; narrower windows get [`DEFAULT_CHART_WIDTH`]
/// scaled down.
const CHART_WIDTHS: [(&str, u32); 3] = [
    ("(min-width: 1500px)", 1400),
    ("(min-width: 1100px)", 1040),
    ("(max-width: 700px)", 480),
];
const DEFAULT_CHART_WIDTH: u32 = 800;

fn page(title: &str, version: &str, refresh: bool, header_extra: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 4096);
    out.push_str("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    if refresh {
        out.push_str("<meta http-equiv=\"refresh\" content=\"30\">");
    }
    let _ = write!(
        out,
        "<title>{} · foretell</title><style>{STYLE}</style></head><body>",
        escape(title)
    );
    let _ = write!(
        out,
        "<header><h1><a href=\"/\">foretell</a></h1><span class=\"muted\">{}</span>{header_extra}</header><main>{body}</main>",
        escape(version)
    );
    out.push_str("<footer><a href=\"/metrics\">/metrics</a> · <a href=\"/-/ready\">/-/ready</a> · <a href=\"/-/healthy\">/-/healthy</a> · charts: <code>/graph?query=NAME&amp;series={...}</code></footer></body></html>");
    out
}

fn number(value: f64) -> String {
    if !value.is_finite() {
        return format!("{value}");
    }
    if value == 0.0 {
        return "0".into();
    }
    let digits = (3 - value.abs().log10().floor() as i32).clamp(0, 9) as usize;
    let text = format!("{value:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn age(now_ms: i64, at_ms: i64) -> String {
    format!("{} ago", span((now_ms - at_ms).max(0)))
}

fn span(ms: i64) -> String {
    let seconds = (ms as f64 / 1000.0).round() as i64;
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// How worrying the age of the newest cycle is: within two intervals is on time (a cycle may be
/// running now), up to five is late, beyond that the query is stalled.
fn cycle_age_class(age_ms: i64, interval_ms: i64) -> &'static str {
    let interval_ms = interval_ms.max(1);
    if age_ms <= 2 * interval_ms {
        "ok"
    } else if age_ms <= 5 * interval_ms {
        "warn"
    } else {
        "bad"
    }
}

/// `/`: what foretell sees now.
pub fn overview(view: &Overview) -> String {
    let upstream = match &view.upstream {
        Upstream::Up => "<span class=\"pill ok\">Prometheus up</span>".to_owned(),
        Upstream::Waiting => {
            "<span class=\"pill warn\">waiting for Prometheus' first answer</span>".to_owned()
        }
        Upstream::Down(reason) => format!(
            "<span class=\"pill bad\" title=\"{}\">Prometheus down</span>",
            escape(reason)
        ),
    };
    let header = format!(
        "{upstream}<span class=\"muted\">{}</span>",
        escape(&view.prometheus_url)
    );
    let mut body = String::new();
    if let Upstream::Down(reason) = &view.upstream {
        let _ = write!(body, "<p class=\"bad\">{}</p>", escape(reason));
    }
    body.push_str("<h2>Queries</h2><table><tr><th>query</th><th>expression</th><th>step</th><th>history</th><th>series</th><th>models ready</th><th>last cycle</th><th>cycles</th><th>skipped</th><th>failed requests</th><th>since the start</th></tr>");
    for q in &view.queries {
        let last = match (q.last_cycle_seconds, q.last_success_ms) {
            (Some(seconds), Some(at)) => format!(
                "<span class=\"{}\">{}</span> (took {}; every {})",
                cycle_age_class(view.now_ms - at, q.interval_ms),
                age(view.now_ms, at),
                if seconds < 1.0 {
                    format!("{:.0} ms", seconds * 1000.0)
                } else {
                    format!("{seconds:.1} s")
                },
                span(q.interval_ms)
            ),
            _ => "<span class=\"muted\">none yet</span>".to_owned(),
        };
        // No series yet, or some still learning, is not healthy: only all ready is green.
        let ready_class = if q.tracked > 0 && q.ready == q.tracked {
            "ok"
        } else {
            "warn"
        };
        let warmup = q.warmup.as_ref().map_or_else(String::new, |(text, class)| {
            format!("<span class=\"{class}\">{}</span>", escape(text))
        });
        let _ = write!(
            body,
            "<tr><td><a href=\"{}\">{}</a></td><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num {ready_class}\">{}</td><td>{last}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{warmup}</td></tr>",
            escape(&q.href),
            escape(&q.name),
            escape(&q.expr),
            escape(&q.step),
            escape(&q.history),
            q.tracked,
            q.ready,
            q.cycles,
            q.skipped,
            q.failures
        );
    }
    body.push_str("</table>");
    body.push_str("<h2>Anomalous now</h2>");
    if view.anomalies.is_empty() {
        body.push_str(
            "<p class=\"ok\">No series is outside its band or at an anomaly onset now.</p>",
        );
    } else {
        body.push_str("<table><tr><th>query</th><th>series</th><th>anomaly score</th><th>outside the band since</th><th>peak</th><th title=\"how far the values went beyond their range of about the last week, in the last 30 points, as a share of its width\">beyond the week's range</th><th title=\"calibrated chance that the anomaly opened in the current excursion is real (its largest while the excursion is open)\">anomaly probability</th></tr>");
        for a in &view.anomalies {
            let class = if a.score > 1.0 { "bad" } else { "" };
            let since = match a.since_ms {
                Some(at) => format!(
                    "{} ({})",
                    format_rfc3339(at),
                    span((view.now_ms - at).max(0))
                ),
                None if a.score > 1.0 => "now".to_owned(),
                None => "<span class=\"muted\">inside the band</span>".to_owned(),
            };
            let beyond = if a.range_excess > 0.0 && a.range_excess.is_finite() {
                format!("{:.0}%", (100.0 * a.range_excess).max(1.0))
            } else {
                "<span class=\"muted\">no</span>".to_owned()
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td class=\"num {class}\">{}</td><td>{since}</td><td class=\"num\">{}σ</td><td class=\"num\">{beyond}</td><td class=\"num\">{}</td></tr>",
                escape(&a.query),
                escape(&a.href),
                escape(&a.series),
                number(a.score),
                number(a.peak_sigmas),
                number(a.probability)
            );
        }
        body.push_str("</table>");
    }
    if let Some(outliers) = &view.peer_outliers {
        body.push_str("<h2>Outliers among their peers now</h2>");
        if outliers.is_empty() {
            body.push_str("<p class=\"ok\">No series is an outlier among its peers now.</p>");
        } else {
            body.push_str("<table><tr><th>query</th><th>series</th><th title=\"the median over the peer window of the series' distance from its group's median, in units of the group's boundary: above 1 is an outlier\">peer outlier score</th><th>peers</th></tr>");
            for o in outliers {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td class=\"num bad\">{}</td><td class=\"num\">{}</td></tr>",
                    escape(&o.query),
                    escape(&o.href),
                    escape(&o.series),
                    number(o.score),
                    o.group_size
                );
            }
            body.push_str("</table>");
        }
    }
    match &view.alerts {
        None => body.push_str(
            "<h2>Recent alerts</h2><p class=\"muted\">The Alertmanager receiver is off (configure <code>alerts</code>).</p>",
        ),
        Some(alerts) if alerts.is_empty() => body.push_str(
            "<h2>Recent alerts</h2><p class=\"muted\">No alert received yet.</p>",
        ),
        Some(alerts) => {
            body.push_str("<h2>Recent alerts</h2><table><tr><th>received</th><th>alert</th><th>confidence</th><th>evidence</th><th>outcome</th></tr>");
            for a in alerts {
                let confidence = a.confidence.map_or_else(
                    || "<span class=\"muted\">unavailable</span>".to_owned(),
                    |c| format!("{c:.2}"),
                );
                let detail = match &a.chart_href {
                    Some(href) => format!(
                        "<a href=\"{}\">{}</a>",
                        escape(href),
                        escape(&a.detail)
                    ),
                    None => escape(&a.detail),
                };
                let _ = write!(
                    body,
                    "<tr><td title=\"{}\">{}</td><td>{}</td><td class=\"num\">{confidence}</td><td>{detail}</td><td>{}</td></tr>",
                    format_rfc3339(a.at_ms),
                    age(view.now_ms, a.at_ms),
                    escape(&a.subject),
                    escape(&a.outcome)
                );
            }
            body.push_str("</table>");
        }
    }
    page("status", &view.version, true, &header, &body)
}

fn numbers_cells(numbers: &Option<SeriesNumbers>) -> String {
    match numbers {
        None => "<td colspan=\"4\" class=\"muted\">model still learning</td>".to_owned(),
        Some(n) => {
            let score = n.score.map_or("–".to_owned(), number);
            let class = if n.score.is_some_and(|s| s > 1.0) {
                "bad"
            } else {
                ""
            };
            format!(
                "<td class=\"num {class}\">{score}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{} to {}</td>",
                number(n.probability),
                number(n.baseline),
                number(n.lower),
                number(n.upper)
            )
        }
    }
}

/// `/status/query`: every series of one query, the most anomalous first.
pub fn query_page(view: &QueryPage) -> String {
    let mut body = format!(
        "<h2>Query {}</h2><p><code>{}</code></p><table><tr><th>series</th><th>anomaly score</th><th title=\"calibrated chance that the anomaly opened in the current excursion is real (its largest while the excursion is open)\">anomaly probability</th><th>baseline</th><th>band</th></tr>",
        escape(&view.name),
        escape(&view.expr)
    );
    for row in &view.rows {
        let _ = write!(
            body,
            "<tr><td><a href=\"{}\">{}</a></td>{}</tr>",
            escape(&row.href),
            escape(&row.series),
            numbers_cells(&row.ready)
        );
    }
    body.push_str("</table>");
    if view.rows.is_empty() {
        body.push_str("<p class=\"muted\">No series yet.</p>");
    }
    if view.hidden > 0 {
        let _ = write!(
            body,
            "<p class=\"muted\">{} more series not shown.</p>",
            view.hidden
        );
    }
    page(&view.name, &view.version, true, "", &body)
}

/// `/status/series`: one series, its numbers and its chart.
pub fn series_page(view: &SeriesPage) -> String {
    let mut body = format!(
        "<h2><a href=\"{}\">{}</a> · {}</h2><table><tr><th>anomaly score</th><th title=\"calibrated chance that the anomaly opened in the current excursion is real (its largest while the excursion is open)\">anomaly probability</th><th>baseline</th><th>band</th></tr><tr>{}</tr></table>",
        escape(&view.query_href),
        escape(&view.query),
        escape(&view.series),
        numbers_cells(&view.numbers)
    );
    if !view.forecasts.is_empty() {
        body.push_str(
            "<h2>Forecasts</h2><table><tr><th>horizon</th><th>expected</th><th>interval</th></tr>",
        );
        for (horizon, expected, lower, upper) in &view.forecasts {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{} to {}</td></tr>",
                escape(horizon),
                number(*expected),
                number(*lower),
                number(*upper)
            );
        }
        body.push_str("</table>");
    }
    if view.peer.is_some() || !view.related.is_empty() {
        body.push_str("<h2>Peers and the same target</h2><ul>");
        if let Some((score, outlier, size)) = view.peer {
            let (class, verdict) = if outlier {
                ("bad", "an outlier among its")
            } else {
                ("ok", "in line with its")
            };
            let _ = write!(
                body,
                "<li class=\"{class}\">{verdict} {size} peers (score {}; 1 is the group's boundary)</li>",
                number(score)
            );
        }
        for signal in &view.related {
            let _ = write!(body, "<li>also unusual: {}</li>", escape(signal));
        }
        body.push_str("</ul>");
    }
    body.push_str("<h2>Chart</h2><p>");
    for (i, (label, href)) in view.ranges.iter().enumerate() {
        if i > 0 {
            body.push_str(" · ");
        }
        let _ = write!(body, "<a href=\"{}\">{}</a>", escape(href), escape(label));
    }
    // The chart is drawn at the width it is shown at, chosen by the browser from the width of
    // its window (no script: the page works with scripts off).
    let sized = |width: u32| escape(&format!("{}&width={width}", view.chart_src));
    body.push_str("</p><p><picture>");
    for (media, width) in CHART_WIDTHS {
        let _ = write!(
            body,
            "<source media=\"{media}\" srcset=\"{}\">",
            sized(width)
        );
    }
    let _ = write!(
        body,
        "<img class=\"chart\" src=\"{}\" alt=\"{} with its band and forecast\"></picture></p>",
        sized(DEFAULT_CHART_WIDTH),
        escape(&view.series)
    );
    page(&view.series, &view.version, false, "", &body)
}

/// Exported labels without the ones foretell adds, as `{name="value", ...}` with the metric
/// name in front when there is one.
pub fn describe_series(source_metric: Option<&str>, labels: &Labels) -> String {
    format!("{}{labels}", source_metric.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overview_view() -> Overview {
        Overview {
            version: "0.1.0".into(),
            now_ms: 1_700_000_100_000,
            prometheus_url: "http://prometheus:9090".into(),
            upstream: Upstream::Down("cannot reach <prometheus>".into()),
            queries: vec![QueryRow {
                name: "load".into(),
                expr: "node_load1{job=\"node\"} > 0 & <b>".into(),
                step: "1m".into(),
                history: "7d".into(),
                tracked: 3,
                ready: 2,
                interval_ms: 15_000,
                last_cycle_seconds: Some(0.25),
                last_success_ms: Some(1_700_000_040_000),
                cycles: 10,
                skipped: 1,
                failures: 2,
                warmup: Some((
                    "loading its history (state file not used: <changed>)".into(),
                    "warn",
                )),
                href: "/status/query?name=load".into(),
            }],
            anomalies: vec![AnomalyRow {
                query: "load".into(),
                series: "node_load1{instance=\"<script>alert(1)</script>\"}".into(),
                score: 4.25,
                probability: 0.72,
                since_ms: Some(1_700_000_040_000),
                peak_sigmas: -7.5,
                range_excess: 0.456,
                href: "/status/series?query=load&series=%7B%7D".into(),
            }],
            peer_outliers: Some(vec![PeerOutlierRow {
                query: "load".into(),
                series: "node_load1{instance=\"web-<4>\"}".into(),
                score: 2.5,
                group_size: 6,
                href: "/status/series?query=load&series=%7Binstance%3D%22web-4%22%7D".into(),
            }]),
            alerts: Some(vec![AlertRow {
                at_ms: 1_700_000_000_000,
                subject: "HighLoad{instance=\"a\"}".into(),
                confidence: Some(0.83),
                detail: "node_load1{instance=\"a\"}".into(),
                outcome: "delivered to pager".into(),
                chart_href: Some("/graph?query=load&series=x".into()),
            }]),
        }
    }

    #[test]
    fn the_overview_shows_queries_anomalies_and_alerts_escaped() {
        let html = overview(&overview_view());
        assert!(html.starts_with("<!doctype html>"));
        assert!(html.contains("<a href=\"/status/query?name=load\">load</a>"));
        assert!(html.contains("node_load1{job=&quot;node&quot;} &gt; 0 &amp; &lt;b&gt;"));
        // Four intervals without a completed cycle: late, not yet stalled.
        assert!(
            html.contains("<span class=\"warn\">60s ago</span> (took 250 ms; every 15s)"),
            "{html}"
        );
        assert!(html.contains("class=\"num warn\">2</td>"), "{html}");
        assert!(
            html.contains(
                "<td><span class=\"warn\">loading its history (state file not used: &lt;changed&gt;)</span></td>"
            ),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("status/series?query=load&amp;series=%7B%7D"));
        assert!(html.contains("<td class=\"num\">46%</td>"), "{html}");
        assert!(
            html.contains(">4.25<") && html.contains(">0.72<") && html.contains(">-7.5σ<"),
            "{html}"
        );
        assert!(html.contains(">0.83<") && html.contains("delivered to pager"));
        assert!(
            html.contains("<h2>Outliers among their peers now</h2>")
                && html.contains("node_load1{instance=&quot;web-&lt;4&gt;&quot;}</a></td><td class=\"num bad\">2.5</td><td class=\"num\">6</td>"),
            "{html}"
        );
        assert!(
            html.contains("Prometheus down") && html.contains("cannot reach &lt;prometheus&gt;")
        );
        assert!(html.contains("http-equiv=\"refresh\""));
    }

    #[test]
    fn health_colours_mean_something() {
        let mut view = overview_view();
        let html = overview(&view);
        // Down is a red pill, and the excursion's start is shown with its age.
        assert!(html.contains("<span class=\"pill bad\""), "{html}");
        assert!(html.contains("2023-11-14T22:14:00Z (60s)"), "{html}");
        // A query with no series yet is not green.
        view.queries[0].tracked = 0;
        view.queries[0].ready = 0;
        assert!(overview(&view).contains("class=\"num warn\">0</td>"));
        view.queries[0].tracked = 2;
        view.queries[0].ready = 2;
        assert!(overview(&view).contains("class=\"num ok\">2</td>"));
        assert_eq!(cycle_age_class(30_000, 15_000), "ok");
        assert_eq!(cycle_age_class(31_000, 15_000), "warn");
        assert_eq!(cycle_age_class(76_000, 15_000), "bad");
        assert_eq!(cycle_age_class(5_000, 0), "bad");
    }

    #[test]
    fn empty_states_say_so() {
        let mut view = overview_view();
        view.anomalies.clear();
        view.alerts = None;
        view.upstream = Upstream::Waiting;
        view.peer_outliers = Some(vec![]);
        let html = overview(&view);
        assert!(html.contains("No series is outside its band or at an anomaly onset now."));
        assert!(html.contains("No series is an outlier among its peers now."));
        // Without a query that has peers, the section is not there at all.
        view.peer_outliers = None;
        assert!(!overview(&view).contains("among their peers"));
        assert!(html.contains("The Alertmanager receiver is off"));
        assert!(html.contains("waiting for Prometheus"));
        view.alerts = Some(vec![]);
        assert!(overview(&view).contains("No alert received yet."));
    }

    #[test]
    fn query_and_series_pages_show_numbers_and_the_chart() {
        let numbers = SeriesNumbers {
            score: Some(1.5),
            probability: 0.2,
            baseline: 10.0,
            lower: 8.0,
            upper: 12.0,
        };
        let html = query_page(&QueryPage {
            version: "v".into(),
            name: "load".into(),
            expr: "node_load1".into(),
            rows: vec![
                SeriesRow {
                    series: "{instance=\"a\"}".into(),
                    ready: Some(numbers),
                    href: "/s?a".into(),
                },
                SeriesRow {
                    series: "{instance=\"b\"}".into(),
                    ready: None,
                    href: "/s?b".into(),
                },
            ],
            hidden: 5,
        });
        assert!(html.contains("<td class=\"num bad\">1.5</td>"), "{html}");
        assert!(html.contains("8 to 12"));
        assert!(html.contains("model still learning"));
        assert!(html.contains("5 more series not shown."));
        let html = series_page(&SeriesPage {
            version: "v".into(),
            query: "load".into(),
            query_href: "/status/query?name=load".into(),
            series: "node_load1{instance=\"a\"}".into(),
            numbers: Some(numbers),
            forecasts: vec![("1h".into(), 11.0, 7.5, 14.5)],
            chart_src: "/graph?query=load&series=%7B%7D&range=6h".into(),
            ranges: vec![("1h".into(), "/status/series?range=1h".into())],
            peer: Some((2.44, true, 12)),
            related: vec!["node_cpu_utilisation (query cpu) 4.2σ above <its> baseline".into()],
        });
        assert!(
            html.contains("<li class=\"bad\">an outlier among its 12 peers (score 2.44; 1 is the group's boundary)</li><li>also unusual: node_cpu_utilisation (query cpu) 4.2σ above &lt;its&gt; baseline</li>"),
            "{html}"
        );
        assert!(
            html.contains(
                "<img class=\"chart\" src=\"/graph?query=load&amp;series=%7B%7D&amp;range=6h&amp;width=800\""
            ),
            "{html}"
        );
        assert!(html.contains(
            "<source media=\"(min-width: 1500px)\" srcset=\"/graph?query=load&amp;series=%7B%7D&amp;range=6h&amp;width=1400\">"
        ));
        assert!(
            html.contains("<td>1h</td><td class=\"num\">11</td><td class=\"num\">7.5 to 14.5</td>"),
            "{html}"
        );
        assert!(
            !html.contains("http-equiv=\"refresh\""),
            "a chart page does not reload itself"
        );
    }

    #[test]
    fn numbers_are_short_and_ages_readable() {
        assert_eq!(number(1234.5678), "1235");
        assert_eq!(number(0.000123456), "0.0001235");
        assert_eq!(number(f64::INFINITY), "inf");
        assert_eq!(age(10_000, 4_000), "6s ago");
        assert_eq!(age(1_000_000, 0), "16m ago");
        assert_eq!(age(100_000_000, 0), "27h ago");
        assert_eq!(
            describe_series(Some("up"), &Labels::from_pairs([("a", "b")])),
            "up{a=\"b\"}"
        );
    }
}
