use std::path::Path;

use super::*;
use crate::config::{self, SystemEnvironment};
use foretell_testing::{json, matrix, FakeUpstream};

const HOUR_MS: i64 = 3_600_000;
/// 2023-11-14T22:00:00Z, on the hour.
const NOW_MS: i64 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS;

/// The fake upstream speaks `query_range` only (remote read is the reader's to test).
fn config(url: &str) -> Config {
    let text = format!(
        "prometheus:\n  url: {url}\n  timeout: 2s\n  remote_read: off\n  retry:\n    max_attempts: 1\nqueries:\n  - name: load\n    expr: up\n    step: 1m\n    history: 2h\n    model:\n      min_history_points: 20\n      seasonality: none\n      horizons: [15m, 30m]\n  - name: disk\n    expr: node_filesystem_avail_bytes\n    step: 5m\n    history: 1d\n"
    );
    config::parse(&text, Path::new("t.yml"), &SystemEnvironment).expect("valid")
}

fn flags(query: &str) -> BacktestFlags<'_> {
    BacktestFlags {
        query,
        from: None,
        to: None,
        horizon: None,
        origins: 4,
    }
}

#[test]
fn defaults_are_two_histories_up_to_now_and_the_longest_horizon() {
    let plan = plan(
        &config("http://127.0.0.1:1"),
        &flags("load"),
        NOW_MS + 10_000,
    )
    .expect("plan");
    assert_eq!(plan.end_ms, NOW_MS);
    assert_eq!(plan.start_ms, NOW_MS - 4 * HOUR_MS);
    assert_eq!(plan.settings.horizon_steps, 30);
    assert_eq!(plan.settings.origins, 4);
    assert_eq!(plan.horizon, Duration::from_secs(1800));
}

#[test]
fn explicit_ranges_accept_relative_absolute_and_unix_forms() {
    let config = config("http://127.0.0.1:1");
    let mut flags = flags("load");
    flags.from = Some("now-3h");
    flags.to = Some("now-1h");
    flags.horizon = Some("10m");
    let plan = plan(&config, &flags, NOW_MS).expect("plan");
    assert_eq!(
        (plan.start_ms, plan.end_ms),
        (NOW_MS - 3 * HOUR_MS, NOW_MS - HOUR_MS)
    );
    assert_eq!(plan.settings.horizon_steps, 10);
    flags.from = Some("2023-11-14T18:00:30Z");
    flags.to = Some("1700000000");
    let plan = super::plan(&config, &flags, NOW_MS).expect("plan");
    // Both ends move onto the step grid, inside the range asked for.
    assert_eq!(plan.start_ms, NOW_MS - 4 * HOUR_MS + 60_000);
    assert_eq!(plan.end_ms, 1_700_000_000_000 - 1_700_000_000_000 % 60_000);
}

/// One change to the default flags.
type FlagChange = dyn Fn(&mut BacktestFlags<'static>);

#[test]
fn bad_flags_say_which_flag_and_why() {
    let config = config("http://127.0.0.1:1");
    let error = plan(&config, &flags("nope"), NOW_MS).expect_err("unknown");
    assert_eq!(
        error.to_string(),
        "no query named `nope` in the configuration (queries: `load`, `disk`)"
    );
    let cases: [(&str, Box<FlagChange>, &str); 5] = [
        (
            "--from",
            Box::new(|f| f.from = Some("yesterday")),
            "--from: `yesterday` is not a timestamp",
        ),
        (
            "--to",
            Box::new(|f| f.to = Some("now+1h")),
            "--to: `now+1h`: write now or now-DURATION",
        ),
        (
            "--from",
            Box::new(|f| f.from = Some("now")),
            "--from: must be before --to",
        ),
        (
            "--horizon",
            Box::new(|f| f.horizon = Some("90s")),
            "--horizon: must be a positive multiple of the query's step (1m), got 90s",
        ),
        (
            "--origins",
            Box::new(|f| f.origins = 0),
            "--origins: must be at least 1",
        ),
    ];
    for (flag, set, expected) in cases {
        let mut flags = flags("load");
        set(&mut flags);
        let error = plan(&config, &flags, NOW_MS).expect_err(flag).to_string();
        assert!(error.starts_with(expected), "{flag}: {error}");
    }
}

/// `count` one-minute points from `first_ms`: a slow ramp with alternating noise and a spike
/// near the end.
fn history(first_ms: i64, count: usize) -> Vec<(i64, String)> {
    (0..count)
        .map(|i| {
            let mut value = 100.0 + 0.01 * i as f64 + if i % 2 == 0 { 0.5 } else { -0.5 };
            if i == count - 20 {
                value += 40.0;
            }
            ((first_ms / 1000) + 60 * i as i64, format!("{value}"))
        })
        .collect()
}

#[tokio::test]
async fn a_fetched_range_is_laid_on_the_grid_and_reported() {
    let start_ms = NOW_MS - 4 * HOUR_MS;
    let full = history(start_ms, 241);
    // Series b misses two points: they become gaps, not shifted values.
    let mut gappy = full.clone();
    gappy.remove(100);
    gappy.remove(100);
    fn as_refs(points: &[(i64, String)]) -> Vec<(i64, &str)> {
        points.iter().map(|(t, v)| (*t, v.as_str())).collect()
    }
    let (a, b) = (as_refs(&full), as_refs(&gappy));
    let upstream = FakeUpstream::start(vec![json(200, &matrix(&[("b", &b), ("a", &a)]))]).await;
    let config = config(&upstream.url);
    let plan = plan(&config, &flags("load"), NOW_MS).expect("plan");
    let reader = PrometheusReader::new(&config.prometheus).expect("client");
    let (series, warnings) = fetch(&reader, &plan).await.expect("fetched");
    assert!(warnings.is_empty());
    let request = &upstream.requests()[0];
    assert!(
        request.contains(&format!("start={}", start_ms / 1000)),
        "{request}"
    );
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].0.get("instance"), Some("a"), "label order");
    assert_eq!(series[1].1.len(), 241);
    assert!(series[1].1[100].is_nan() && series[1].1[101].is_nan());
    assert_eq!(series[1].1[102], series[0].1[102]);

    let report = run(&plan, &series);
    let a = &report.series[0].1;
    assert_eq!(a.forecast.origins, 4);
    assert_eq!(a.forecast.points, 4 * 30);
    assert!(a.forecast.mase().expect("points") < 5.0, "{a:?}");
    // The online pass scores the second half (the first history is the cold start).
    assert_eq!(a.anomalies.scored, 120);
    assert!(a.anomalies.outside >= 1 && a.anomalies.onsets >= 1, "{a:?}");
    // The gaps fall in series b's training data only.
    assert_eq!(report.forecast.points, 2 * a.forecast.points);

    let table = render_table(&plan, &report);
    assert!(table.starts_with("query load from 2023-11-14T18:00:00Z to 2023-11-14T22:00:00Z (step 1m, horizon 30m, 4 origins, interval 99%)"), "{table}");
    assert!(
        table.contains(r#" {__name__="up", instance="a"}"#),
        "{table}"
    );
    assert!(table.contains("all 2 series (pooled)"), "{table}");

    let document: serde_json::Value =
        serde_json::from_str(&render_json(&plan, &report)).expect("JSON");
    assert_eq!(document["query"], "load");
    assert_eq!(document["series"][0]["labels"]["instance"], "a");
    assert_eq!(document["series"][0]["origins"], 4);
    // The gaps fall in the cold-start window, which is not scored.
    assert_eq!(document["pooled"]["scored_points"], 2 * 120);
    assert!(document["pooled"]["coverage"].as_f64().is_some());
    assert!(document["series"][0]["model"]
        .as_str()
        .expect("model")
        .contains("ETS"));
}

#[tokio::test]
async fn prometheus_errors_are_reported_not_swallowed() {
    let upstream = FakeUpstream::start(vec![json(
        400,
        r#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
    )])
    .await;
    let config = config(&upstream.url);
    let plan = plan(&config, &flags("load"), NOW_MS).expect("plan");
    let reader = PrometheusReader::new(&config.prometheus).expect("client");
    let error = fetch(&reader, &plan).await.expect_err("400");
    let text = error.to_string();
    assert!(
        text.contains("HTTP 400") && text.contains("parse error at char 3"),
        "{text}"
    );
}
