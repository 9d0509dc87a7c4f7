//! Runs every PromQL expression of the shipped Grafana dashboards (panels and variables)
//! against a real Prometheus holding foretell's data. Called by the end-to-end test that has
//! all of it: predictions, self-metrics, the alert path and the recording rules.

use std::time::Duration;

use crate::support::Prometheus;

/// What Grafana would put in place of each variable, for the data the tests create (a few
/// minutes of it: the shortest horizon, so `offset $horizon` reaches back into data).
const SUBSTITUTIONS: [(&str, &str); 9] = [
    ("$__rate_interval", "1m"),
    ("$__range", "5m"),
    ("$__interval", "15s"),
    ("$source_metric", "demo_requests_per_second"),
    ("$instance", ".*"),
    ("$horizon", "1m"),
    ("$query", "demo"),
    ("$job", ".*"),
    ("${datasource}", ""),
];

fn substitute(expr: &str) -> String {
    SUBSTITUTIONS
        .iter()
        .fold(expr.to_owned(), |text, (variable, value)| {
            text.replace(variable, value)
        })
}

/// Every expression of a dashboard: `(where, expr)`, with `label_values(selector, label)`
/// variables turned into the query Grafana makes of them.
pub fn expressions(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                found.push((
                    format!("panel \"{}\"", panel["title"].as_str().unwrap_or("?")),
                    expr.to_owned(),
                ));
            }
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

/// Checks every dashboard in `grafana/dashboards/`: each expression parses and returns data.
/// An expression without data is asked again for up to [`SETTLE`]: a panel over
/// `offset 1m` has data only once foretell has been scraped for a minute, and the test's
/// timeline leaves that to the scheduler's mood, not to foretell.
pub async fn check_all(prometheus: &Prometheus) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("grafana/dashboards")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "four dashboards ship: {files:?}");
    let mut pending = Vec::new();
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
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for (place, expr) in expressions(&dashboard) {
            pending.push((format!("{name} {place}"), substitute(&expr)));
        }
    }
    assert!(
        pending.len() > 40,
        "only {} expressions found",
        pending.len()
    );
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let mut failures = Vec::new();
        for (place, query) in pending {
            if let Some(problem) = without_data(prometheus, &query).await {
                failures.push((place, query, problem));
            }
        }
        if failures.is_empty() {
            return;
        }
        if std::time::Instant::now() >= deadline {
            let report: Vec<String> = failures
                .iter()
                .map(|(place, query, problem)| format!("{place}: `{query}` {problem}"))
                .collect();
            panic!("{}", report.join("\n"));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        pending = failures
            .into_iter()
            .map(|(place, query, _)| (place, query))
            .collect();
    }
}

/// How long an expression may take to return data.
const SETTLE: Duration = Duration::from_secs(30);

/// Why `query` has no data (it failed, or it and the expression under its filter returned
/// nothing); `None` when it has data.
async fn without_data(prometheus: &Prometheus, query: &str) -> Option<&'static str> {
    let (ok, result) = prometheus.try_query(query).await;
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
        "templating": {"list": [{"name": "query", "definition": "label_values(foretell_model_ready, query)"}]}
    });
    let found = expressions(&dashboard);
    assert_eq!(found.len(), 3);
    assert_eq!(found[2].1, "count by (query) (foretell_model_ready)");
    assert_eq!(without_filter("a{b=\"c\"} >= 0.99"), Some("a{b=\"c\"}"));
    assert_eq!(without_filter("topk(10, a)"), None);
    assert_eq!(substitute("rate(x[$__rate_interval])"), "rate(x[1m])");
}
