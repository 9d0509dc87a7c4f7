use super::*;
use foretell_core::exposition::Format;

#[test]
fn renders_counters_gauges_and_histograms_that_parse() {
    let telemetry = Telemetry::new("1.2.3");
    telemetry.config_loaded(true, 100.0);
    telemetry.set_upstream_up(true);
    telemetry.query_finished("load", 0.02, None);
    telemetry.query_finished("load", 0.2, Some(FailureReason::Timeout));
    telemetry.cycle_finished(
        "load",
        0.3,
        CycleReport {
            samples: 10,
            series_tracked: 4,
            series_ready: 3,
            forecast_methods: [("seasonal_naive", 1), ("smoothing_no_trend", 2)].into(),
            peer_groups: [("assessed", 5), ("too_small", 1), ("no_spread", 0)].into(),
            fits: 2,
            updates: 7,
            ..CycleReport::default()
        },
        200.0,
    );
    let mut out = String::new();
    telemetry.render(&mut out, Format::Text);
    let build_info = format!(
        "foretell_build_info{{version=\"1.2.3\",revision=\"{}\",branch=\"{}\",rustversion=\"{}\"}} 1",
        env!("FORETELL_REVISION"),
        env!("FORETELL_BRANCH"),
        env!("FORETELL_RUSTC_VERSION")
    );
    assert!(out.contains(&build_info), "{out}");
    assert_ne!(env!("FORETELL_RUSTC_VERSION"), "unknown");
    assert!(out.contains("\nprocess_resident_memory_bytes "), "{out}");
    for line in [
        "foretell_config_last_reload_successful 1",
        "foretell_config_reloads_total{result=\"success\"} 1",
        "foretell_upstream_up 1",
        "foretell_query_failures_total{query=\"load\",reason=\"timeout\"} 1",
        "foretell_series_tracked{query=\"load\"} 4",
        "foretell_series_ready{query=\"load\"} 3",
        "foretell_forecast_method_series{query=\"load\",method=\"seasonal_naive\"} 1",
        "foretell_forecast_method_series{query=\"load\",method=\"smoothing_no_trend\"} 2",
        "foretell_peer_groups{query=\"load\",outcome=\"assessed\"} 5",
        "foretell_peer_groups{query=\"load\",outcome=\"too_small\"} 1",
        "foretell_peer_groups{query=\"load\",outcome=\"no_spread\"} 0",
        "foretell_query_duration_seconds_bucket{query=\"load\",le=\"0.025\"} 1",
        "foretell_query_duration_seconds_bucket{query=\"load\",le=\"0.25\"} 2",
        "foretell_query_duration_seconds_count{query=\"load\"} 2",
        "foretell_samples_fetched_total{query=\"load\"} 10",
        "foretell_model_fits_total{query=\"load\"} 2",
        "foretell_model_updates_total{query=\"load\"} 7",
    ] {
        assert!(out.lines().any(|l| l == line), "missing `{line}` in\n{out}");
    }
    let scrape =
        prometheus_parse::Scrape::parse(out.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "foretell_cycle_duration_seconds"));
}

/// Dashboards read each query's expression from `foretell_query_info`; quotes and
/// backslashes in it are escaped, and a reload replaces the list.
#[test]
fn query_info_carries_each_expression() {
    let telemetry = Telemetry::new("0");
    telemetry.set_query_expressions(vec![
        (
            "requests".into(),
            r#"sum by (job) (rate(x{code=~"5.."}[5m]))"#.into(),
        ),
        ("load".into(), "node_load1".into()),
    ]);
    let mut out = String::new();
    telemetry.render(&mut out, Format::Text);
    assert!(
        out.contains(
            "foretell_query_info{query=\"requests\",expr=\"sum by (job) (rate(x{code=~\\\"5..\\\"}[5m]))\"} 1\n"
        ),
        "{out}"
    );
    assert!(out.contains("foretell_query_info{query=\"load\",expr=\"node_load1\"} 1\n"));
    telemetry.set_query_expressions(vec![("load".into(), "node_load1".into())]);
    let mut out = String::new();
    telemetry.render(&mut out, Format::Text);
    assert!(!out.contains("query=\"requests\",expr"), "{out}");
}

#[test]
fn removed_queries_stop_reporting_gauges_but_keep_counters() {
    let telemetry = Telemetry::new("0");
    telemetry.cycle_finished(
        "old",
        0.1,
        CycleReport {
            series_tracked: 2,
            ..CycleReport::default()
        },
        1.0,
    );
    telemetry.retain_queries(&["new".to_owned()]);
    let mut out = String::new();
    telemetry.render(&mut out, Format::Text);
    assert!(
        !out.contains("foretell_series_tracked{query=\"old\"}"),
        "{out}"
    );
    assert!(
        out.contains("foretell_cycles_total{query=\"old\"} 1"),
        "{out}"
    );
}
