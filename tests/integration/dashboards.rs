//! Runs every PromQL expression of the shipped Grafana dashboards (panels and variables)
//! against a real Prometheus holding foretell's data. Called by the end-to-end test that has
//! all of it: predictions, self-metrics, the alert path and the recording rules.

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
pub async fn check_all(prometheus: &Prometheus) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("grafana/dashboards")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "four dashboards ship: {files:?}");
    let mut failures = Vec::new();
    let mut checked = 0;
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
        for (place, expr) in expressions(&dashboard) {
            checked += 1;
            let query = substitute(&expr);
            let (ok, result) = prometheus.try_query(&query).await;
            let empty_filter = ok && result.is_empty() && without_filter(&query).is_some();
            let data = if empty_filter {
                let under = without_filter(&query).unwrap_or_default().to_owned();
                prometheus.try_query(&under).await
            } else {
                (ok, result)
            };
            if !data.0 || data.1.is_empty() {
                failures.push(format!(
                    "{} {place}: `{query}` {}",
                    file.file_name().unwrap_or_default().to_string_lossy(),
                    if data.0 { "returned no data" } else { "failed" }
                ));
            }
        }
    }
    assert!(checked > 40, "only {checked} expressions found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
