//! A reload storm under load against a real Prometheus: valid and invalid configuration files
//! reloaded back to back (HTTP and SIGHUP) while Alertmanager-like clients post notifications
//! and a scraper reads /metrics. Every invalid reload is refused with its reason and the running
//! configuration keeps serving; acceptance and scrapes never fail; nothing acknowledged is lost;
//! the process neither leaks threads nor grows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

const SOURCE: &str = "demo_requests_per_second";

fn config(prometheus: &str, port: u16, receiver: &str, with_second_query: bool) -> String {
    let mut text = format!(
        "prometheus:\n  url: {prometheus}\n  timeout: 900ms\n\
         server:\n  listen_address: 127.0.0.1:{port}\n  shutdown_grace: 5s\n  enable_lifecycle: true\n\
         audit:\n  path: audit.db\n  key_file: audit.keys\n  verify_interval: 'off'\n\
         alerts:\n  on_demand:\n    timeout: 200ms\n  retry:\n    initial_backoff: 100ms\n    max_backoff: 500ms\n\
         \x20 receivers:\n    - name: recorder\n      url: {receiver}\n      timeout: 2s\n  routes:\n    - receiver: recorder\n\
         queries:\n  - name: demo\n    expr: {SOURCE}\n    step: 10s\n    history: 2h\n    evaluation_interval: 1s\n    model:\n      seasonality: none\n"
    );
    if with_second_query {
        text.push_str(&format!(
            "  - name: demo_total\n    expr: sum by (job) ({SOURCE})\n    step: 10s\n    history: 2h\n    evaluation_interval: 1s\n    model:\n      seasonality: none\n"
        ));
    }
    text
}

/// Files a reload must refuse, each with a word its reason has to contain.
fn invalid_configs(valid: &str) -> Vec<(String, &'static str)> {
    vec![
        (format!("{valid}  - name: [unclosed\n"), "line"),
        (
            valid.replace("  shutdown_grace", "  shutdown_grase"),
            "shutdown_grase",
        ),
        (valid.replace("step: 10s", "step: 0s"), "step"),
        (String::new(), "prometheus"),
    ]
}

fn notification(client: usize, n: usize) -> String {
    one_alert_notification(
        &format!("{{}}:{{client=\"{client}\"}}"),
        serde_json::json!({"alertname": "Storm", "client": client.to_string()}),
        "2026-11-22T00:00:00Z",
        &format!("c{client}-n{n}"),
    )
}

/// Threads and resident memory (KiB) of a process, from /proc.
fn threads_and_rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Threads:"), field("VmRSS:"))
}

fn series_of(metrics: &str, query: &str) -> usize {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("foretell_anomaly_score{")
                && line.contains(&format!("query=\"{query}\""))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Debian prometheus package; run by .ci/run's end-to-end stage"]
async fn a_reload_storm_under_load_keeps_the_running_configuration_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut prometheus = prepare_prometheus(dir.path(), now_secs() - 30, None, port);
    prometheus.start();
    prometheus.wait_ready().await;
    let recorder = Recorder::start().await;
    let config_path = dir.path().join("foretell.yml");
    let one_query = config(&prometheus.url(), port, &recorder.url, false);
    let two_queries = config(&prometheus.url(), port, &recorder.url, true);
    write_run_files(dir.path(), &one_query);
    let mut foretell = start_in(dir.path(), port, "/-/ready", Duration::from_secs(60)).await;
    let base = format!("http://127.0.0.1:{port}");
    eventually(
        "the demo series are scored",
        Duration::from_secs(60),
        || async {
            let (_, metrics) = get(&format!("{base}/metrics")).await.unwrap_or_default();
            (series_of(&metrics, "demo") == 3).then_some(())
        },
    )
    .await;
    let (threads_before, rss_before) = threads_and_rss(foretell.pid());

    // The load: two webhook clients and a scraper, bounded in count, until the storm ends.
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut load = Vec::new();
    for client in 0..2 {
        let (stop, acknowledged, failures) = (
            Arc::clone(&stop),
            Arc::clone(&acknowledged),
            Arc::clone(&failures),
        );
        let url = format!("{base}/alertmanager/webhook");
        load.push(tokio::spawn(async move {
            let http = http();
            for n in 0..2_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match post_notification(&http, &url, notification(client, n)).await {
                    Ok(response) if response.status() == 200 => acknowledged
                        .lock()
                        .expect("lock")
                        .push(format!("c{client}-n{n}")),
                    Ok(response) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("webhook: HTTP {}", response.status())),
                    Err(error) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("webhook: {error}")),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let scrapes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let (stop, failures, scrapes) = (
            Arc::clone(&stop),
            Arc::clone(&failures),
            Arc::clone(&scrapes),
        );
        let url = format!("{base}/metrics");
        load.push(tokio::spawn(async move {
            let http = http();
            for _ in 0..5_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match http.get(&url).send().await {
                    Ok(response) if response.status() == 200 => {
                        let body = response.text().await.unwrap_or_default();
                        if !body.contains("foretell_config_last_reload_successful") {
                            failures
                                .lock()
                                .expect("lock")
                                .push("a scrape without the self-metrics".into());
                        }
                        scrapes.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(response) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("scrape: HTTP {}", response.status())),
                    Err(error) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("scrape: {error}")),
                }
            }
        }));
    }

    // The storm: 300 reloads back to back, every fourth by SIGHUP; valid files alternate
    // between one and two queries, every other reload is an invalid file.
    let http = http();
    let reload_url = format!("{base}/-/reload");
    let invalid = invalid_configs(&one_query);
    let started = Instant::now();
    let mut answered = 0;
    for round in 0..300 {
        let (text, expect_ok, reason) = if round % 2 == 1 {
            let (text, reason) = &invalid[(round / 2) % invalid.len()];
            (text.clone(), false, *reason)
        } else if round % 4 == 0 {
            (two_queries.clone(), true, "")
        } else {
            (one_query.clone(), true, "")
        };
        std::fs::write(&config_path, &text).expect("config");
        if round % 4 == 3 {
            foretell.signal("HUP");
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let response = http
            .post(&reload_url)
            .send()
            .await
            .expect("reload answered");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        answered += 1;
        if expect_ok {
            assert_eq!(status, 200, "round {round}: {body}");
        } else {
            assert_eq!(status, 500, "round {round}: {body}");
            assert!(
                body.starts_with("failed to reload config:") && body.contains(reason),
                "round {round}: the reason names what is wrong ({reason}): {body}"
            );
            // The configuration that was running still runs.
            let (_, metrics) = get(&format!("{base}/metrics")).await.unwrap_or_default();
            assert!(
                metrics.contains("foretell_config_last_reload_successful 0"),
                "round {round}"
            );
            assert!(series_of(&metrics, "demo") == 3, "round {round}: {metrics}");
        }
        assert!(
            foretell.is_running(),
            "round {round}: {}",
            foretell.log_tail()
        );
    }
    let storm = started.elapsed();
    assert!(storm < Duration::from_secs(120), "storm took {storm:?}");

    // Settle on two queries: both are served.
    std::fs::write(&config_path, &two_queries).expect("config");
    let response = http.post(&reload_url).send().await.expect("reload");
    assert_eq!(response.status(), 200);
    eventually(
        "both queries served after the storm",
        Duration::from_secs(60),
        || async {
            let (_, metrics) = get(&format!("{base}/metrics")).await.unwrap_or_default();
            (series_of(&metrics, "demo") == 3
                && series_of(&metrics, "demo_total") >= 1
                && metrics.contains("foretell_config_last_reload_successful 1"))
            .then_some(())
        },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.expect("load task");
    }
    let failures = failures.lock().expect("lock").clone();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(scrapes.load(Ordering::SeqCst) > 0);

    // Nothing acknowledged is lost.
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() > 50,
        "the load ran: {}",
        acknowledged.len()
    );
    eventually(
        "every acknowledged notification delivered",
        Duration::from_secs(60),
        || async {
            let delivered = recorder.fingerprints();
            acknowledged
                .iter()
                .all(|fingerprint| delivered.contains(fingerprint))
                .then_some(())
        },
    )
    .await;

    // No thread or memory left behind by 300 pipeline restarts. The blocking pool keeps a
    // few threads for the load's database writes; one per reload would be hundreds.
    let (threads_after, rss_after) = threads_and_rss(foretell.pid());
    assert!(
        threads_after <= threads_before + 12,
        "threads {threads_before} -> {threads_after}"
    );
    assert!(
        rss_after <= rss_before + 64 * 1024,
        "RSS {rss_before} KiB -> {rss_after} KiB"
    );
    println!(
        "reload storm: {answered} HTTP reloads and 75 SIGHUPs in {storm:?}; {} notifications acknowledged and delivered; {} scrapes; threads {threads_before} -> {threads_after}; RSS {rss_before} -> {rss_after} KiB",
        acknowledged.len(),
        scrapes.load(Ordering::SeqCst)
    );

    assert!(foretell.terminate(Duration::from_secs(10)).is_some());
    assert_audit_verifies(dir.path(), "the log verifies after the storm");
    let rejected = audit_records_of_kind(dir.path(), "config.rejected");
    assert!(
        rejected >= 75,
        "each refused reload recorded (SIGHUPs may coalesce): {rejected}"
    );
    prometheus.stop();
}
