//! The whole process under a wall clock that steps back an hour and then forward a day, as NTP
//! or an operator may do: Debian's libfaketime shifts what `clock_gettime(CLOCK_REALTIME)`
//! returns in the real binary while the monotonic clock runs on. Alerts keep being accepted,
//! retries go on at their pace (not an hour later), nothing is given up because the clock
//! says a day passed, every group arrives in order, no age goes negative and the audit log,
//! ordered by sequence, verifies.

use std::path::Path;
use std::time::Duration;

use crate::support::*;

/// Debian's libfaketime, under the machine's multiarch directory.
fn libfaketime() -> std::path::PathBuf {
    std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("faketime/libfaketime.so.1"))
        .find(|path| path.exists())
        .expect("libfaketime.so.1 under /usr/lib/*/faketime: apt-get install faketime")
}

fn config(port: u16, receiver: &str) -> String {
    // Prometheus is unreachable (port 9): alerts are forwarded with confidence unavailable.
    format!(
        "prometheus:\n  url: http://127.0.0.1:9\n  timeout: 500ms\n  retry:\n    max_attempts: 1\n\
         server:\n  listen_address: 127.0.0.1:{port}\n  shutdown_grace: 5s\n\
         audit:\n  path: audit.db\n  key_file: audit.keys\n  verify_interval: 'off'\n\
         alerts:\n  on_demand:\n    timeout: 200ms\n  retry:\n    initial_backoff: 200ms\n    max_backoff: 1s\n    give_up_after: 24h\n\
         \x20 circuit_breaker:\n    failures: 3\n    cooldown: 500ms\n    max_cooldown: 1s\n\
         \x20 receivers:\n    - name: recorder\n      url: {receiver}\n      timeout: 2s\n  routes:\n    - receiver: recorder\n\
         queries:\n  - name: demo\n    expr: up\n    evaluation_interval: 5s\n"
    )
}

fn notification(group: usize, n: usize) -> String {
    // Half of them start in the future of the real clock.
    let starts_at = if n.is_multiple_of(2) {
        "2026-11-22T00:00:00Z"
    } else {
        "2099-01-01T00:00:00Z"
    };
    one_alert_notification(
        &format!("{{}}:{{group=\"{group}\"}}"),
        serde_json::json!({"alertname": "Steps", "group": group.to_string()}),
        starts_at,
        &format!("g{group}-n{n}"),
    )
}

/// The sum of a counter's samples whose labels contain `labels`.
fn counter(metrics: &str, name: &str, labels: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")) && line.contains(labels))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn step_wall_clock(file: &Path, offset: &str) {
    std::fs::write(file, format!("{offset}\n")).expect("faketime offset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's faketime package; run by .ci/run's end-to-end stage"]
async fn wall_clock_steps_back_and_forward_lose_and_give_up_nothing() {
    let libfaketime = libfaketime();
    let recorder = Recorder::start().await;
    recorder.answer(503);
    let port = free_port();
    let dir = run_dir(&config(port, &recorder.url));
    let offset_file = dir.path().join("faketime");
    step_wall_clock(&offset_file, "+0");
    let mut foretell = Process::spawn(
        "foretell",
        foretell_run(dir.path())
            .env("LD_PRELOAD", &libfaketime)
            .env("FAKETIME_TIMESTAMP_FILE", &offset_file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        dir.path().join("foretell.log"),
    );
    let base = format!("http://127.0.0.1:{port}");
    foretell
        .wait_http_ok(&format!("{base}/-/healthy"), Duration::from_secs(30))
        .await;
    let http = http();
    let metrics = || async {
        get(&format!("{base}/metrics"))
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    };
    let mut posted: Vec<(usize, String)> = Vec::new();
    let mut n = 0;
    // Ten notifications, then the clock steps back an hour, ten more, then forward a day
    // (from the real time), ten more; the receiver is down throughout.
    for offset in ["+0", "-1h", "+1d"] {
        step_wall_clock(&offset_file, offset);
        let retried_before = counter(
            &metrics().await,
            "foretell_deliveries_total",
            "outcome=\"retried\"",
        );
        for _ in 0..10 {
            let group = n % 2;
            let response = post_notification(
                &http,
                &format!("{base}/alertmanager/webhook"),
                notification(group, n),
            )
            .await
            .expect("webhook answers");
            assert_eq!(response.status(), 200, "clock {offset}");
            posted.push((group, format!("g{group}-n{n}")));
            n += 1;
        }
        // Retries go on at their own pace after the step, not an hour later.
        eventually(
            &format!("retries continue after the clock stepped {offset}"),
            Duration::from_secs(10),
            || async {
                let retried = counter(
                    &metrics().await,
                    "foretell_deliveries_total",
                    "outcome=\"retried\"",
                );
                (retried >= retried_before + 2.0).then_some(())
            },
        )
        .await;
    }

    // The receiver comes back: everything arrives, each group in order, nothing given up.
    recorder.answer(200);
    let arrived = eventually(
        "every notification delivered after the steps",
        Duration::from_secs(30),
        || async {
            let arrived: Vec<String> = recorder
                .bodies()
                .iter()
                .flat_map(|body| body["alerts"].as_array().cloned().unwrap_or_default())
                .filter_map(|alert| alert["fingerprint"].as_str().map(str::to_owned))
                .collect();
            (arrived.len() >= posted.len()).then_some(arrived)
        },
    )
    .await;
    for group in 0..2 {
        let sent: Vec<&String> = posted
            .iter()
            .filter(|(g, _)| *g == group)
            .map(|(_, f)| f)
            .collect();
        let got: Vec<&String> = arrived
            .iter()
            .filter(|f| f.starts_with(&format!("g{group}-")))
            .collect();
        assert_eq!(got, sent, "group {group} in acceptance order, once each");
    }
    let metrics = metrics().await;
    assert_eq!(
        counter(
            &metrics,
            "foretell_deliveries_total",
            "outcome=\"dead_lettered\""
        ),
        0.0,
        "a day's step gave nothing up"
    );
    let negative: Vec<&str> = metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.rsplit(' ').next().is_some_and(|v| v.starts_with('-')))
        .collect();
    assert!(
        negative.is_empty(),
        "no negative age or duration: {negative:?}"
    );
    assert!(foretell.is_running(), "{}", foretell.log_tail());

    assert!(foretell.terminate(Duration::from_secs(10)).is_some());
    assert_audit_verifies(
        dir.path(),
        "the log verifies although its timestamps step back and forward",
    );
}
