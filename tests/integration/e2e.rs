//! End-to-end: real Prometheus (Debian package) with backfilled history, real foretell
//! process, Prometheus scraping foretell back. Ignored by default; run by `.ci/run`'s
//! end-to-end stage: `cargo test --test integration -- --ignored`.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

const QUERY_NAME: &str = "demo";
const SOURCE: &str = "demo_requests_per_second";
/// The demo's sibling latencies (`foretell sample-data`), `api-4` drifting from the others.
const PEER_SOURCE: &str = "demo_request_latency_seconds";

/// Three queries: the demo series; `latency`, the demo's five sibling latencies compared as
/// peers (one drifts away from the others); and `broken`, a valid instant-vector expression (so
/// the configuration admits it) that Prometheus cannot evaluate: `on()` matches every demo
/// series with every other, many-to-many (422, `execution`).
fn foretell_config(prometheus_url: &str, port: u16, step: &str) -> String {
    format!(
        "prometheus:\n  url: {prometheus_url}\n  timeout: 1s\n  retry:\n    max_attempts: 2\n    initial_backoff: 100ms\n    max_backoff: 500ms\n\
         server:\n  listen_address: 127.0.0.1:{port}\n  shutdown_grace: 5s\n  enable_lifecycle: true\n\
         audit:\n  path: audit.db\n  key_file: audit.keys\n\
         queries:\n  - name: {QUERY_NAME}\n    expr: {SOURCE}\n    step: {step}\n    history: 3d\n    evaluation_interval: 2s\n    model:\n      coverage: 0.999\n      seasonality: 1d\n      refit_interval: 1m\n      horizons: [1m, 1h]\n    peers:\n      window: 5m\n  - name: latency\n    expr: {PEER_SOURCE}\n    step: {step}\n    history: 3d\n    evaluation_interval: 2s\n    model:\n      seasonality: 1d\n    peers:\n      by: [job]\n      window: 1h\n  - name: broken\n    expr: '{SOURCE} + on() {SOURCE}'\n    step: {step}\n    history: 1h\n    evaluation_interval: 2s\n"
    )
}

async fn foretell_metrics(port: u16) -> String {
    get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// Runs a checker with `input` on its standard input; panics with what it printed unless it
/// succeeds, else returns its standard output.
fn accepted_on_stdin(command: &mut Command, input: &str) -> String {
    use std::io::Write;
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{command:?} rejected its input:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn instance(labels: &serde_json::Value) -> String {
    labels["instance"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Debian prometheus package; run by .ci/run's end-to-end stage"]
async fn sidecar_loop_against_real_prometheus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let foretell_port = free_port();
    let t0 = now_secs();
    let spike_at = t0 + 60;
    let spike_secs = 40;
    let mut prometheus = prepare_prometheus(
        dir.path(),
        t0 - 30,
        Some((spike_at, spike_secs)),
        foretell_port,
    );
    prometheus.start();
    prometheus.wait_ready().await;

    let config_path = dir.path().join("foretell.yml");
    let key_file = dir.path().join("audit.keys");
    std::fs::write(&key_file, format!("e2e:{}\n", "5a".repeat(32))).expect("keys");
    std::fs::write(
        &config_path,
        foretell_config(&prometheus.url(), foretell_port, "10s"),
    )
    .expect("config");
    let mut foretell = start_foretell(&config_path, dir.path().join("foretell.log"));
    let ready_url = format!("http://127.0.0.1:{foretell_port}/-/ready");

    {
        foretell
            .wait_http_ok(&ready_url, Duration::from_secs(60))
            .await;

        // 1. Every source series has a score in Prometheus with the source's own labels.
        let scores = eventually(
            "foretell_anomaly_score scraped into Prometheus",
            Duration::from_secs(60),
            || async {
                let scores = prometheus
                    .query(&format!("foretell_anomaly_score{{query=\"{QUERY_NAME}\"}}"))
                    .await;
                (scores.len() == 3).then_some(scores)
            },
        )
        .await;
        let sources = prometheus.query(SOURCE).await;
        assert_eq!(sources.len(), 3, "{sources:?}");
        for source in &sources {
            let labels = &source["metric"];
            let matching: Vec<_> = scores
                .iter()
                .filter(|s| {
                    s["metric"]["instance"] == labels["instance"]
                        && s["metric"]["job"] == labels["job"]
                })
                .collect();
            assert_eq!(
                matching.len(),
                1,
                "no score with the labels of {labels}: {scores:?}"
            );
            let exported = &matching[0]["metric"];
            assert_eq!(exported["source_metric"], SOURCE);
            assert_eq!(exported["query"], QUERY_NAME);
        }

        // The three demo series form one peer group (`peers` without `by`): each has a peer
        // score and a 0/1 verdict with the source labels, and the group is counted.
        let peer_scores = eventually(
            "foretell_peer_outlier_score scraped into Prometheus",
            Duration::from_secs(30),
            || async {
                let scores = prometheus
                    .query(&format!(
                        "foretell_peer_outlier_score{{query=\"{QUERY_NAME}\"}} >= 0"
                    ))
                    .await;
                (scores.len() == 3).then_some(scores)
            },
        )
        .await;
        for score in &peer_scores {
            assert_eq!(score["metric"]["source_metric"], SOURCE, "{score}");
            assert!(!instance(&score["metric"]).is_empty(), "{score}");
        }
        let verdicts = prometheus
            .query(&format!(
                "foretell_peer_outlier{{query=\"{QUERY_NAME}\"}} == 0 or foretell_peer_outlier{{query=\"{QUERY_NAME}\"}} == 1"
            ))
            .await;
        assert_eq!(verdicts.len(), 3, "{verdicts:?}");
        let groups = eventually(
            "foretell_peer_groups in Prometheus",
            Duration::from_secs(30),
            || async {
                let groups = prometheus
                    .query(&format!(
                        "foretell_peer_groups{{query=\"{QUERY_NAME}\",outcome=\"assessed\"}} == 1"
                    ))
                    .await;
                (groups.len() == 1).then_some(groups)
            },
        )
        .await;
        assert_eq!(groups.len(), 1);
        // Among the five sibling latencies, the drifting one and only it is an outlier, in
        // Prometheus with its source labels.
        let outliers = eventually(
            "the drifting latency is the one peer outlier in Prometheus",
            Duration::from_secs(30),
            || async {
                let outliers = prometheus
                    .query("foretell_peer_outlier{query=\"latency\"} == 1")
                    .await;
                let assessed = prometheus
                    .query("foretell_peer_outlier{query=\"latency\"}")
                    .await;
                (assessed.len() == 5).then_some(outliers)
            },
        )
        .await;
        assert_eq!(outliers.len(), 1, "{outliers:?}");
        assert_eq!(instance(&outliers[0]["metric"]), "api-4", "{outliers:?}");
        assert_eq!(outliers[0]["metric"]["source_metric"], PEER_SOURCE);

        // Forecasts (one per horizon, with the source labels) and probabilities are there too,
        // and the one-hour forecast of each series lies inside its own interval.
        let within_interval = prometheus
            .query(&format!(
                "foretell_forecast{{query=\"{QUERY_NAME}\",horizon=\"1h\"}} <= foretell_forecast_upper and foretell_forecast >= foretell_forecast_lower"
            ))
            .await;
        assert_eq!(within_interval.len(), 3, "{within_interval:?}");
        let horizons = prometheus
            .query(&format!(
                "count by (horizon) (foretell_forecast{{query=\"{QUERY_NAME}\"}})"
            ))
            .await;
        let mut labels: Vec<String> = horizons
            .iter()
            .map(|h| {
                h["metric"]["horizon"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        labels.sort();
        assert_eq!(labels, vec!["1h", "1m"], "{horizons:?}");
        let probabilities = prometheus
            .query(&format!(
                "foretell_anomaly_probability{{query=\"{QUERY_NAME}\"}} >= 0 <= 1"
            ))
            .await;
        assert_eq!(probabilities.len(), 3, "{probabilities:?}");

        // 2. What foretell serves passes promtool's own parser and linter; the query that
        //    Prometheus rejects is counted as such and does not mark the upstream down.
        let metrics = foretell_metrics(foretell_port).await;
        assert!(
            metrics
                .contains("foretell_query_failures_total{query=\"broken\",reason=\"bad_query\"}"),
            "{metrics}"
        );
        assert!(metrics.contains("\nforetell_upstream_up 1\n"), "{metrics}");
        // The plain selectors' history came through remote read, none through query_range.
        for query in [QUERY_NAME, "latency"] {
            let count = |protocol: &str| {
                let prefix = format!(
                    "foretell_history_requests_total{{query=\"{query}\",protocol=\"{protocol}\"}} "
                );
                metrics
                    .lines()
                    .find_map(|line| line.strip_prefix(prefix.as_str()))
                    .and_then(|value| value.parse::<f64>().ok())
            };
            assert!(count("remote_read") >= Some(1.0), "{query}: {metrics}");
            assert_eq!(count("query_range"), Some(0.0), "{query}: {metrics}");
        }
        accepted_on_stdin(
            Command::new(require_binary("promtool")).args(["check", "metrics"]),
            &metrics,
        );

        // 2a. Asked for OpenMetrics, as Prometheus asks first, the same exposition is read by
        //     the strict OpenMetrics parser of Debian's python3-prometheus-client (promtool
        //     2.42 lints only the text format), and the real Prometheus scraping foretell took
        //     it as OpenMetrics: its metadata knows the counter by the family's name, without
        //     `_total`, which only an OpenMetrics scrape reports.
        let response = http()
            .get(format!("http://127.0.0.1:{foretell_port}/metrics"))
            .header(
                "Accept",
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            )
            .send()
            .await
            .expect("OpenMetrics scrape");
        assert_eq!(
            response.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let open_metrics = response.text().await.expect("body");
        assert!(open_metrics.ends_with("# EOF\n"), "{open_metrics}");
        let parse = "import sys\n\
            from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
            families = list(text_string_to_metric_families(sys.stdin.read()))\n\
            print(len(families), sum(len(f.samples) for f in families))\n";
        // Debian's python3, which has python3-prometheus-client (not a virtualenv's).
        let counted = accepted_on_stdin(
            Command::new("/usr/bin/python3").args(["-c", parse]),
            &open_metrics,
        );
        let families: usize = counted
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(families > 20, "{counted}");
        let metadata_of = |metric: &'static str| {
            let url = format!("{}/api/v1/metadata?metric={metric}", prometheus.url());
            async move {
                get(&url)
                    .await
                    .and_then(|(_, body)| serde_json::from_str::<serde_json::Value>(&body).ok())
                    .map(|answer| answer["data"][metric].clone())
                    .unwrap_or_default()
            }
        };
        let reloads = eventually(
            "Prometheus' metadata of foretell_config_reloads (an OpenMetrics scrape)",
            Duration::from_secs(30),
            || async {
                let found = metadata_of("foretell_config_reloads").await;
                found.is_array().then_some(found)
            },
        )
        .await;
        assert_eq!(reloads[0]["type"], "counter", "{reloads}");
        assert!(
            metadata_of("foretell_config_reloads_total").await.is_null(),
            "Prometheus took the text format"
        );

        // 2b. `foretell backtest` replays a query's models on the backfilled history in the
        //     same Prometheus: every series gets forecast accuracy and an online anomaly rate.
        let backtest_config = dir.path().join("backtest.yml");
        std::fs::write(
            &backtest_config,
            format!(
                "prometheus:\n  url: {}\nqueries:\n  - name: hourly\n    expr: {SOURCE}\n    step: 5m\n    history: 1d\n    model:\n      seasonality: none\n      horizons: [1h]\n",
                prometheus.url()
            ),
        )
        .expect("backtest config");
        let backtest = |extra: &[&str]| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_foretell"));
            command
                .arg("backtest")
                .arg("--config")
                .arg(&backtest_config)
                .args(["--query", "hourly", "--from", "now-2d", "--origins", "5"])
                .args(extra);
            command
        };
        let report: serde_json::Value =
            serde_json::from_str(&run_ok(&mut backtest(&["--format", "json"]))).expect("JSON");
        let series = report["series"].as_array().expect("series");
        assert_eq!(series.len(), 3, "{report}");
        for entry in series {
            assert_eq!(entry["origins"], 5, "{entry}");
            // 12 five-minute steps per origin; the newest may fall in the gap between the
            // backfill and the live recording rules.
            let points = entry["forecast_points"].as_u64().expect("points");
            assert!((5 * 12 - 2..=5 * 12).contains(&points), "{entry}");
            let mase = entry["mase"].as_f64().expect("mase");
            assert!(mase.is_finite() && mase > 0.0, "{entry}");
            let coverage = entry["coverage"].as_f64().expect("coverage");
            assert!(coverage >= 0.5, "{entry}");
            assert!(
                entry["scored_points"].as_u64().expect("scored") > 200,
                "{entry}"
            );
        }
        let table = run_ok(&mut backtest(&[]));
        assert!(table.contains("all 3 series (pooled)"), "{table}");
        let unknown = Command::new(env!("CARGO_BIN_EXE_foretell"))
            .arg("backtest")
            .arg("--config")
            .arg(&backtest_config)
            .args(["--query", "nope"])
            .output()
            .expect("backtest");
        assert_eq!(unknown.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&unknown.stderr).contains("no query named `nope`"));

        // 3. PromQL joins between a source series and its band.
        let within_band = prometheus
            .query(&format!(
                "{SOURCE} <= on(instance, job) foretell_baseline_upper{{query=\"{QUERY_NAME}\"}}"
            ))
            .await;
        let joined = prometheus
            .query(&format!(
                "{SOURCE} - on(instance, job) foretell_baseline{{query=\"{QUERY_NAME}\"}}"
            ))
            .await;
        assert_eq!(joined.len(), 3, "join returned {joined:?}");
        assert!(
            !within_band.is_empty(),
            "no source series inside its band before the spike"
        );

        // 4. The live spike on web-a scores above 1 while it lasts, below 1 before it and
        //    again once it has passed; the other series stay below 1 throughout.
        let spike_end = spike_at + i64::from(spike_secs);
        // A forecasting model needs a few steps (10s each here) to settle after a 40s spike;
        // the last score is read a minute after it ended.
        let wait = (spike_end + 60 - now_secs()).max(0) as u64;
        tokio::time::sleep(Duration::from_secs(wait)).await;
        let series = prometheus
            .query_range(
                &format!("foretell_anomaly_score{{query=\"{QUERY_NAME}\"}}"),
                t0,
                now_secs(),
                "1s",
            )
            .await;
        assert_eq!(series.len(), 3);
        for (labels, values) in &series {
            let max_in = |from: i64, to: i64| {
                values
                    .iter()
                    .filter(|(t, _)| *t >= from as f64 && *t <= to as f64)
                    .map(|(_, v)| *v)
                    .fold(f64::NEG_INFINITY, f64::max)
            };
            let before = max_in(t0, spike_at - 1);
            assert!(
                before.is_finite() && before < 1.0,
                "{}: score before the spike reached {before}",
                instance(labels)
            );
            let during = max_in(spike_at, spike_end + 20);
            if instance(labels) == "web-a" {
                assert!(during > 1.0, "web-a: the spike scored only {during}");
                let after = values.last().map(|(_, v)| *v).unwrap_or(f64::NAN);
                assert!(
                    after < 1.0,
                    "web-a: score stayed at {after} after the spike ended"
                );
            } else {
                assert!(
                    during < 1.0,
                    "{}: scored {during} without an anomaly",
                    instance(labels)
                );
            }
        }

        // 5. A bad config on SIGHUP is rejected and the old one keeps running.
        std::fs::write(&config_path, "prometheus:\n  url: http://x\nqueries: []\n")
            .expect("config");
        foretell.signal("HUP");
        eventually(
            "the failed reload to show",
            Duration::from_secs(20),
            || async {
                foretell_metrics(foretell_port)
                    .await
                    .contains("foretell_config_last_reload_successful 0")
                    .then_some(())
            },
        )
        .await;
        assert!(foretell.is_running(), "foretell died on a bad reload");
        std::fs::write(
            &config_path,
            foretell_config(&prometheus.url(), foretell_port, "10s"),
        )
        .expect("config");
        let reloaded = http()
            .post(format!("http://127.0.0.1:{foretell_port}/-/reload"))
            .send()
            .await
            .expect("reload");
        assert_eq!(
            reloaded.status().as_u16(),
            200,
            "{:?}",
            reloaded.text().await
        );
        assert!(foretell_metrics(foretell_port)
            .await
            .contains("foretell_config_last_reload_successful 1"));
        assert!(
            foretell_metrics(foretell_port).await.contains(&format!("foretell_model_ready{{instance=\"web-a\",job=\"demo\",query=\"{QUERY_NAME}\",source_metric=\"{SOURCE}\"}} 1")),
            "series kept across a reload that changed nothing they depend on"
        );

        // 6. Prometheus goes away: foretell stays up, reports it, and recovers by itself.
        prometheus.stop();
        let (status, body) = eventually(
            "foretell to notice the upstream is down",
            Duration::from_secs(30),
            || async { get(&ready_url).await.filter(|(s, _)| *s == 503) },
        )
        .await;
        assert_eq!(status, 503);
        assert!(body.contains("upstream Prometheus is down"), "{body}");
        assert!(foretell_metrics(foretell_port)
            .await
            .contains("\nforetell_upstream_up 0\n"));
        assert!(
            foretell.is_running(),
            "foretell exited while Prometheus was down"
        );
        prometheus.start();
        prometheus.wait_ready().await;
        eventually("foretell to recover", Duration::from_secs(60), || async {
            get(&ready_url).await.filter(|(s, _)| *s == 200)
        })
        .await;
        assert!(foretell_metrics(foretell_port)
            .await
            .contains("\nforetell_upstream_up 1\n"));

        // 7. SIGTERM drains and exits cleanly.
        let head_in_prometheus = eventually(
            "foretell_audit_head_seq scraped into Prometheus",
            Duration::from_secs(30),
            || async {
                prometheus
                    .query("max_over_time(foretell_audit_head_seq[1h])")
                    .await
                    .first()
                    .and_then(|s| s["value"][1].as_str().map(str::to_owned))
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| *v >= 4.0)
            },
        )
        .await as u64;

        let status = foretell
            .terminate(Duration::from_secs(10))
            .expect("foretell stops within its grace period");
        assert!(status.success(), "foretell exited with {status}");

        // 8. The audit log holds the run's decisions, verifies against the head Prometheus
        //    recorded independently, and a head beyond it is reported as a cut tail.
        let db = dir.path().join("audit.db");
        let audit = |args: &[&str]| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_foretell"));
            command.arg("audit").args(args).arg("--db").arg(&db);
            command
        };
        let expect = head_in_prometheus.to_string();
        let report = run_ok(
            audit(&["verify", "--expect-head", &expect])
                .arg("--key-file")
                .arg(&key_file),
        );
        assert!(report.contains("\nOK: every record verifies"), "{report}");
        let beyond = (head_in_prometheus + 1000).to_string();
        let cut = audit(&["verify", "--expect-head", &beyond])
            .arg("--key-file")
            .arg(&key_file)
            .output()
            .expect("verify");
        assert_eq!(cut.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&cut.stdout).contains("PROBLEM truncated"));
        let kinds: Vec<String> = run_ok(&mut audit(&["show", "--format", "jsonl"]))
            .lines()
            .map(|line| {
                let record: serde_json::Value = serde_json::from_str(line).expect("JSON line");
                record["kind"].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        for kind in [
            "process.started",
            "config.loaded",
            "model.refit",
            "config.rejected",
            "config.reloaded",
        ] {
            assert!(
                kinds.iter().any(|k| k == kind),
                "no {kind} record in {kinds:?}"
            );
        }
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("process.stopped"),
            "{kinds:?}"
        );
    }
}
