//! End-to-end with every real part: Prometheus holds backfilled history, evaluates the shipped
//! `rules/foretell.rules.yml` on what it scrapes from foretell and a fixed-threshold rule on the
//! source series, and sends both alerts to a real Alertmanager, which sends them to foretell,
//! which forwards them enriched to a recording receiver. The injected incident must come out
//! with a higher confidence than the threshold alert on a series doing nothing unusual, and its
//! chart link must draw from the same Prometheus. Ignored by default; run by `.ci/run`.

use std::time::Duration;

use crate::support::*;

const SOURCE: &str = "demo_requests_per_second";
/// A second query of another shape, one series per job, for the dashboards' check.
const AGGREGATED_QUERY: &str = "demo_by_job";
const AGGREGATED_EXPR: &str = "sum by (job) (demo_requests_per_second)";

/// The shipped rule waits 10 minutes before firing; the injected incident lasts one. The test
/// keeps the rule's expression and labels and only shortens its `for`.
fn shipped_rules_for_the_test(dir: &std::path::Path) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/rules/foretell.rules.yml"
    ))
    .expect("rules/foretell.rules.yml");
    let marker = "      - alert: ForetellSeriesOutsideBaseline\n";
    let start = shipped.find(marker).expect("the shipped rule exists");
    let for_at = start + shipped[start..].find("for: 10m").expect("its `for`");
    let mut copy = shipped.clone();
    copy.replace_range(for_at..for_at + "for: 10m".len(), "for: 5s");
    let path = dir.join("foretell.rules.yml");
    std::fs::write(&path, copy).expect("rules copy");
    path
}

/// A static threshold an operator might set on web-b, low enough that it always holds: an
/// alert on a series that is doing nothing unusual.
fn threshold_rule(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("threshold.rules.yml");
    std::fs::write(
        &path,
        format!(
            "groups:\n  - name: static-thresholds\n    rules:\n      - alert: DemoTrafficHigh\n        expr: {SOURCE}{{instance=\"web-b\"}} > 1\n        labels:\n          severity: warning\n        annotations:\n          summary: traffic above 1 rps\n"
        ),
    )
    .expect("threshold rule");
    path
}

fn foretell_config(prometheus: &str, port: u16, receiver: &str) -> String {
    format!(
        "prometheus:\n  url: {prometheus}\n  timeout: 1s\n  retry:\n    max_attempts: 2\n    initial_backoff: 100ms\n    max_backoff: 500ms\n\
         server:\n  listen_address: 127.0.0.1:{port}\n  shutdown_grace: 5s\n\
         audit:\n  path: audit.db\n  key_file: audit.keys\n  verify_interval: 'off'\n\
         alerts:\n  retry:\n    initial_backoff: 100ms\n    max_backoff: 500ms\n  on_demand:\n    timeout: 2s\n\
         \x20 receivers:\n    - name: recorder\n      url: {receiver}\n      timeout: 2s\n  routes:\n    - receiver: recorder\n\
         queries:\n  - name: demo\n    expr: {SOURCE}\n    step: 10s\n    history: 3d\n    evaluation_interval: 2s\n    model:\n      seasonality: 1d\n      refit_interval: 1m\n      horizons: [1m, 1h]\n    threshold:\n      value: 1\n    peers:\n      window: 5m\n\
         \x20 - name: {AGGREGATED_QUERY}\n    expr: {AGGREGATED_EXPR}\n    step: 10s\n    history: 3d\n    evaluation_interval: 2s\n    model:\n      seasonality: 1d\n      refit_interval: 1m\n      horizons: [1m, 1h]\n    threshold:\n      value: 1\n"
    )
}

fn alertmanager_config(foretell_port: u16) -> String {
    format!(
        "route:\n  receiver: foretell\n  group_by: [alertname, instance]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
         receivers:\n  - name: foretell\n    webhook_configs:\n      - url: http://127.0.0.1:{foretell_port}/alertmanager/webhook\n        send_resolved: true\n        max_alerts: 0\n"
    )
}

/// The confidence the newest forwarded firing alert with this name and instance carries, among
/// the notifications the receiver got after the first `skip`.
fn confidence(
    recorder: &Recorder,
    skip: usize,
    alertname: &str,
    instance: &str,
) -> Option<(f64, serde_json::Value)> {
    recorder
        .bodies()
        .into_iter()
        .skip(skip)
        .rev()
        .find_map(|body| {
            body["alerts"].as_array()?.iter().find_map(|alert| {
                let labels = &alert["labels"];
                (labels["alertname"] == alertname
                    && labels["instance"] == instance
                    && alert["status"] == "firing")
                    .then(|| alert["annotations"].clone())
                    .and_then(|annotations| {
                        let value = annotations["foretell_confidence"].as_str()?.parse().ok()?;
                        Some((value, annotations))
                    })
            })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's prometheus and prometheus-alertmanager; run by .ci/run's end-to-end stage"]
async fn a_real_incident_gets_more_confidence_than_a_threshold_alert_on_a_quiet_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Recorder::start().await;
    let foretell_port = free_port();
    let am_port = free_port();
    let t0 = now_secs();
    // Late enough for the models to be fitted on the backfilled history before it starts.
    let incident_at = t0 + 75;
    let mut prometheus =
        prepare_prometheus(dir.path(), t0 - 30, Some((incident_at, 60)), foretell_port);
    prometheus.configure(
        &[
            prometheus.live_rules(),
            shipped_rules_for_the_test(dir.path()),
            threshold_rule(dir.path()),
        ],
        foretell_port,
        Some(am_port),
    );
    run_ok(
        std::process::Command::new(require_binary("promtool"))
            .args(["check", "config"])
            .arg(dir.path().join("prometheus.yml")),
    );
    std::fs::write(
        dir.path().join("audit.keys"),
        format!("e2e:{}\n", "7d".repeat(32)),
    )
    .expect("keys");
    let config = dir.path().join("foretell.yml");
    std::fs::write(
        &config,
        foretell_config(&prometheus.url(), foretell_port, &recorder.url),
    )
    .expect("config");
    let am_config = dir.path().join("alertmanager.yml");
    std::fs::write(&am_config, alertmanager_config(foretell_port)).expect("am config");
    let (_, _alertmanager) = start_alertmanager(dir.path(), &am_config, am_port).await;
    prometheus.start();
    prometheus.wait_ready().await;
    let mut foretell = start_foretell(&config, dir.path().join("foretell.log"));
    foretell
        .wait_http_ok(
            &format!("http://127.0.0.1:{foretell_port}/-/ready"),
            Duration::from_secs(60),
        )
        .await;
    eventually(
        "every demo series has a model before the incident",
        Duration::from_secs(60),
        || async {
            let ready = prometheus
                .query("foretell_model_ready{query=\"demo\"} == 1")
                .await;
            (ready.len() == 3).then_some(())
        },
    )
    .await;
    assert!(
        now_secs() < incident_at,
        "the models took too long: the incident began before they were ready"
    );

    // The static threshold fires at once on web-b, which is doing nothing unusual.
    let (noise, noise_annotations) = eventually(
        "the threshold alert arrives enriched",
        Duration::from_secs(60),
        || async { confidence(&recorder, 0, "DemoTrafficHigh", "web-b") },
    )
    .await;
    // The shipped anomaly rule fires on web-a once the incident starts. With `for: 5s` it may
    // also fire before, on a point of noise just outside the 99 % band: only notifications sent
    // after the incident began are about it.
    while now_secs() < incident_at {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let before_the_incident = recorder.bodies().len();
    let (incident, annotations) = eventually(
        "the anomaly alert on the incident arrives enriched",
        Duration::from_secs(150),
        || async {
            confidence(
                &recorder,
                before_the_incident,
                "ForetellSeriesOutsideBaseline",
                "web-a",
            )
        },
    )
    .await;
    eprintln!("confidence: incident {incident}, threshold alert on a quiet series {noise}");
    assert!(
        incident > noise,
        "the incident ({incident}) must score above the threshold alert on a quiet series ({noise})\nincident: {annotations}\nnoise: {noise_annotations}"
    );
    assert_eq!(
        annotations["summary"].as_str().map(|s| s.contains(SOURCE)),
        Some(true),
        "{annotations}"
    );
    let explanation = annotations["foretell_explanation"]
        .as_str()
        .unwrap_or_default();
    assert!(explanation.contains("above its baseline"), "{annotations}");
    let score: f64 = annotations["foretell_anomaly_score"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a score");
    assert!(score.is_finite(), "{annotations}");
    for key in [
        "foretell_baseline",
        "foretell_band",
        "foretell_forecast",
        "foretell_series",
    ] {
        assert!(annotations[key].is_string(), "{key} missing: {annotations}");
    }

    // The chart link draws the incident from the same Prometheus.
    let link = annotations["foretell_graph_url"]
        .as_str()
        .expect("a graph link");
    assert!(
        link.starts_with(&format!(
            "http://127.0.0.1:{foretell_port}/graph?query=demo&series="
        )),
        "{link}"
    );
    let response = http().get(link).send().await.expect("graph");
    assert_eq!(response.status(), 200, "{link}");
    assert_eq!(
        response.headers()["content-type"],
        "image/svg+xml; charset=utf-8"
    );
    let svg = response.text().await.expect("svg");
    assert!(svg.contains("<title>demo_requests_per_second{instance=&quot;web-a&quot;, job=&quot;demo&quot;}</title>"), "{svg}");
    assert!(
        svg.contains("class=\"episode\"") || svg.contains("class=\"outside\""),
        "the incident is marked"
    );
    // Every dashboard query runs on what this Prometheus now holds.
    crate::dashboards::check_all(
        &prometheus,
        foretell_port,
        &[("demo", SOURCE), (AGGREGATED_QUERY, AGGREGATED_EXPR)],
    )
    .await;
    assert!(
        foretell.terminate(Duration::from_secs(20)).is_some(),
        "stops on SIGTERM"
    );
}
