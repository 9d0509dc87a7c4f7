//! Runs every PromQL expression of the shipped Grafana dashboards (panels, variables and
//! annotations) against a real Prometheus holding foretell's data, once for each query shape
//! the caller has (per instance, aggregated), and follows the panels' data links to foretell's
//! series pages. Called by the end-to-end test that has all of it: predictions, self-metrics,
//! the alert path and the recording rules.

use std::time::Duration;

use crate::support::Prometheus;

/// What Grafana would put in place of each variable, for the data the tests create (a few
/// minutes of it: the shortest horizon, so `offset $horizon` reaches back into data), besides
/// `$query` and `$expr`, which come from the query checked.
const SUBSTITUTIONS: [(&str, &str); 7] = [
    ("$__rate_interval", "1m"),
    ("$__range", "5m"),
    ("$__interval", "15s"),
    ("$horizon", "1m"),
    ("$job", ".*"),
    ("${datasource}", ""),
    ("$instance", ".*"),
];

fn substitute(expr: &str, query: &str, query_expr: &str) -> String {
    SUBSTITUTIONS
        .iter()
        .fold(expr.to_owned(), |text, (variable, value)| {
            text.replace(variable, value)
        })
        .replace("$expr", query_expr)
        .replace("$query", query)
}

/// Where an expression sits: a panel or variable must return data; an annotation only has to
/// be a valid query (no alert may be firing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Data,
    Annotation,
}

/// Every expression of a dashboard: `(where, kind, expr)`, with `label_values(selector,
/// label)` variables turned into the query Grafana makes of them.
pub fn expressions(dashboard: &serde_json::Value) -> Vec<(String, Place, String)> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                found.push((
                    format!("panel \"{}\"", panel["title"].as_str().unwrap_or("?")),
                    Place::Data,
                    expr.to_owned(),
                ));
            }
        }
    }
    for annotation in dashboard["annotations"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(expr) = annotation["expr"].as_str() {
            found.push((
                format!(
                    "annotation \"{}\"",
                    annotation["name"].as_str().unwrap_or("?")
                ),
                Place::Annotation,
                expr.to_owned(),
            ));
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(definition) = variable["definition"].as_str() else {
            continue;
        };
        let inner = definition
            .strip_prefix("label_values(")
            .and_then(|rest| rest.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable {definition} is not label_values(...)"));
        let (selector, label) = inner
            .rsplit_once(',')
            .unwrap_or_else(|| panic!("variable {definition} names no label"));
        found.push((
            format!("variable ${}", variable["name"].as_str().unwrap_or("?")),
            Place::Data,
            format!("count by ({}) ({selector})", label.trim()),
        ));
    }
    found
}

/// A filter (`expr > 1`, `expr >= 0.99`) may be empty by design; the expression under it may
/// not. Returns the expression without a final comparison to a number, if it has one.
fn without_filter(expr: &str) -> Option<&str> {
    let trimmed = expr.trim_end();
    let cut = trimmed.rfind(['>', '<'])?;
    let number = trimmed[cut + 1..].trim_start_matches('=').trim();
    number.parse::<f64>().ok()?;
    Some(trimmed[..cut].trim_end())
}

/// Checks every dashboard in `grafana/dashboards/` for each `(query, expr)` foretell runs: each
/// expression parses and returns data (annotations only parse), and the Forecasts dashboard's
/// data links, filled in as Grafana fills them, open foretell's page of the series.
/// An expression without data is asked again for up to [`SETTLE`]: a panel over
/// `offset 1m` has data only once foretell has been scraped for a minute, and the test's
/// timeline leaves that to the scheduler's mood, not to foretell.
pub async fn check_all(prometheus: &Prometheus, foretell_port: u16, queries: &[(&str, &str)]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("grafana/dashboards")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "four dashboards ship: {files:?}");
    let mut pending = Vec::new();
    let mut links = Vec::new();
    for file in files {
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
        assert!(
            dashboard["uid"]
                .as_str()
                .is_some_and(|u| u.starts_with("foretell")),
            "{}",
            file.display()
        );
        for link in dashboard["links"].as_array().into_iter().flatten() {
            assert_eq!(link["keepTime"], true, "{}: {link}", file.display());
            assert_eq!(link["includeVars"], true, "{}: {link}", file.display());
        }
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for (query, query_expr) in queries {
            for (place, kind, expr) in expressions(&dashboard) {
                pending.push((
                    format!("{name} {place} (query {query})"),
                    kind,
                    substitute(&expr, query, query_expr),
                ));
            }
        }
        if name == "foretell-forecasts.json" {
            links = data_links(&dashboard);
        }
    }
    assert!(
        pending.len() > 80,
        "only {} expressions found",
        pending.len()
    );
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let mut failures = Vec::new();
        for (place, kind, query) in pending {
            if let Some(problem) = without_data(prometheus, &query, kind).await {
                failures.push((place, kind, query, problem));
            }
        }
        if failures.is_empty() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            let report: Vec<String> = failures
                .iter()
                .map(|(place, _, query, problem)| format!("{place}: `{query}` {problem}"))
                .collect();
            panic!("{}", report.join("\n"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        pending = failures
            .into_iter()
            .map(|(place, kind, query, _)| (place, kind, query))
            .collect();
    }
    follow_data_links(prometheus, foretell_port, queries, &links).await;
}

/// The data link URLs of a dashboard's panels.
fn data_links(dashboard: &serde_json::Value) -> Vec<String> {
    let mut urls = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for link in panel["fieldConfig"]["defaults"]["links"]
            .as_array()
            .into_iter()
            .flatten()
        {
            urls.extend(link["url"].as_str().map(str::to_owned));
        }
    }
    urls
}

/// Fills each data link in as Grafana does for a `foretell_forecast` series of each query
/// (`${__field.labels}` is every label of the series, `name="value"` joined by `, `) and
/// expects foretell to answer it with that series' page.
async fn follow_data_links(
    prometheus: &Prometheus,
    foretell_port: u16,
    queries: &[(&str, &str)],
    links: &[String],
) {
    assert!(
        links.iter().any(|l| l.contains("/status/series?")),
        "a data link to the series page: {links:?}"
    );
    for (query, _) in queries {
        let series = prometheus
            .query(&format!(
                "foretell_forecast{{query=\"{query}\", horizon=\"1m\"}}"
            ))
            .await;
        let first = series
            .first()
            .unwrap_or_else(|| panic!("no forecast of {query}"));
        let mut labels: Vec<(String, String)> = first["metric"]
            .as_object()
            .expect("labels")
            .iter()
            .filter(|(name, _)| *name != "__name__")
            .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
            .collect();
        labels.sort();
        let rendered = labels
            .iter()
            .map(|(name, value)| format!("{name}=\"{value}\""))
            .collect::<Vec<_>>()
            .join(", ");
        for link in links {
            let url = link
                .replace(
                    "${foretell_url}",
                    &format!("http://127.0.0.1:{foretell_port}"),
                )
                .replace("${__field.labels}", &rendered)
                .replace("${__field.labels.query}", query)
                .replace("$query", query);
            let encoded = reqwest::Url::parse(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
            let (status, body) = crate::support::get(encoded.as_str())
                .await
                .unwrap_or_else(|| panic!("{url}: no answer"));
            assert_eq!(status, 200, "{url}: {body}");
        }
    }
}

/// How long an expression may take to return data.
const SETTLE: Duration = Duration::from_secs(30);

/// Why `query` has no data (it failed, or it and the expression under its filter returned
/// nothing); `None` when it has data.
async fn without_data(prometheus: &Prometheus, query: &str, kind: Place) -> Option<&'static str> {
    let (ok, result) = prometheus.try_query(query).await;
    if kind == Place::Annotation {
        return (!ok).then_some("failed");
    }
    let empty_filter = ok && result.is_empty() && without_filter(query).is_some();
    let (ok, result) = if empty_filter {
        let under = without_filter(query).unwrap_or_default().to_owned();
        prometheus.try_query(&under).await
    } else {
        (ok, result)
    };
    if !ok {
        Some("failed")
    } else if result.is_empty() {
        Some("returned no data")
    } else {
        None
    }
}

#[test]
fn expressions_are_found_and_filters_recognised() {
    let dashboard = serde_json::json!({
        "panels": [{"title": "p", "targets": [{"expr": "up > 0"}, {"expr": "rate(x[$__rate_interval])"}]}],
        "templating": {"list": [{"name": "query", "definition": "label_values(foretell_model_ready, query)"}]},
        "annotations": {"list": [{"name": "a", "expr": "ALERTS"}]}
    });
    let found = expressions(&dashboard);
    assert_eq!(found.len(), 4);
    assert_eq!(
        found[2],
        (
            "annotation \"a\"".into(),
            Place::Annotation,
            "ALERTS".into()
        )
    );
    assert_eq!(found[3].2, "count by (query) (foretell_model_ready)");
    assert_eq!(without_filter("a{b=\"c\"} >= 0.99"), Some("a{b=\"c\"}"));
    assert_eq!(without_filter("topk(10, a)"), None);
    assert_eq!(
        substitute("rate(x[$__rate_interval])", "q", "e"),
        "rate(x[1m])"
    );
    assert_eq!(
        substitute(
            "$expr or foretell_baseline{query=\"$query\"}",
            "q",
            "sum(up)"
        ),
        "sum(up) or foretell_baseline{query=\"q\"}"
    );
}
