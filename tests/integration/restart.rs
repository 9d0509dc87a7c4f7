//! Restarts with `state` on, against a real Prometheus (issue 22): a query whose data did not
//! change resumes its models from its state file and fetches only the gap; a query whose
//! history changed loads afresh and says why; a `kill -9` during constant state writes leaves
//! a file that restores; a replica of another shard does not take the file.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::support::*;

const SOURCE: &str = "demo_requests_per_second";

fn config(prometheus: &str, port: u16, total_history: &str, interval: &str, shard: &str) -> String {
    format!(
        "prometheus:\n  url: {prometheus}\n  timeout: 900ms\n\
         server:\n  listen_address: 127.0.0.1:{port}\n  shutdown_grace: 15s\n\
         state:\n  path: state\n  interval: {interval}\n{shard}\
         queries:\n\
         \x20 - name: demo\n    expr: {SOURCE}\n    step: 10s\n    history: 2h\n    evaluation_interval: 1s\n    model:\n      seasonality: none\n\
         \x20 - name: demo_total\n    expr: sum by (job) ({SOURCE})\n    step: 10s\n    history: {total_history}\n    evaluation_interval: 1s\n    model:\n      seasonality: none\n"
    )
}

/// The value of every sample of `family` whose labels contain `query="<query>"`, by its label
/// set.
fn samples(metrics: &str, family: &str, query: &str) -> BTreeMap<String, f64> {
    let marker = format!("query=\"{query}\"");
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{family}{{")) && line.contains(&marker))
        .filter_map(|line| {
            let (labels, value) = line.rsplit_once(' ')?;
            Some((labels.to_owned(), value.parse().ok()?))
        })
        .collect()
}

async fn metrics(port: u16) -> String {
    get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// Starts foretell in `dir` and waits until both queries export forecasts.
async fn start(dir: &Path, port: u16, series: usize) -> (Process, String) {
    let foretell = start_in(dir, port, "/-/healthy", Duration::from_secs(30)).await;
    let text = foretell_testing::eventually(
        "both queries export forecasts",
        Duration::from_secs(60),
        || async {
            let text = metrics(port).await;
            (samples(&text, "foretell_forecast", "demo").len() == series
                && samples(&text, "foretell_forecast", "demo_total").len() == 1)
                .then_some(text)
        },
    )
    .await;
    (foretell, text)
}

fn restores(text: &str, query: &str) -> BTreeMap<String, f64> {
    samples(text, "foretell_state_restores_total", query)
}

fn restored_as(text: &str, query: &str, outcome: &str) -> bool {
    restores(text, query)
        .iter()
        .any(|(labels, count)| labels.contains(&format!("outcome=\"{outcome}\"")) && *count == 1.0)
}

fn fetched(text: &str, query: &str) -> f64 {
    samples(text, "foretell_samples_fetched_total", query)
        .values()
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Debian prometheus package; run by .ci/run's end-to-end stage"]
async fn a_restart_resumes_unchanged_queries_from_their_state_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut prometheus = prepare_prometheus(dir.path(), now_secs() - 30, None, port);
    prometheus.start();
    prometheus.wait_ready().await;
    let url = prometheus.url();
    let series = foretell_testing::eventually(
        "Prometheus serves the backfilled series",
        Duration::from_secs(30),
        || async {
            let n = prometheus.query(SOURCE).await.len();
            (n >= 2).then_some(n)
        },
    )
    .await;
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).expect("run dir");
    write_run_files(&run, &config(&url, port, "2h", "1h", ""));

    // 1. A first start loads the history and writes both files at shutdown.
    let (mut foretell, first) = start(&run, port, series).await;
    assert!(
        restored_as(&first, "demo", "missing"),
        "{:?}",
        restores(&first, "demo")
    );
    let cold_fetched = fetched(&first, "demo");
    assert!(
        cold_fetched >= series as f64 * 600.0,
        "the history: {cold_fetched}"
    );
    let before = samples(&metrics(port).await, "foretell_forecast", "demo");
    let exit = foretell.terminate(Duration::from_secs(20));
    assert!(
        exit.is_some_and(|e| e.success()),
        "{exit:?}: {}",
        foretell.log_tail()
    );
    let files = std::fs::read_dir(run.join("state"))
        .expect("state folder")
        .count();
    assert_eq!(files, 2, "one state file per query");

    // 2. demo_total's history changed: it loads afresh; demo resumes and fetches only the gap.
    // Its state is now written every second, for the kill below.
    write_run_files(&run, &config(&url, port, "3h", "1s", ""));
    let (mut foretell, second) = start(&run, port, series).await;
    assert!(
        restored_as(&second, "demo", "restored"),
        "{:?}",
        restores(&second, "demo")
    );
    assert!(
        restored_as(&second, "demo_total", "changed"),
        "{:?}",
        restores(&second, "demo_total")
    );
    let ready = get(&format!("http://127.0.0.1:{port}/-/ready"))
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    assert!(
        ready.contains(&format!(
            "query \"demo\": restored from its state file ({series} series)"
        )),
        "{ready}"
    );
    let gap_fetched = fetched(&second, "demo");
    assert!(
        gap_fetched < cold_fetched / 10.0,
        "only the gap: {gap_fetched} samples against {cold_fetched} for the history"
    );
    assert!(
        fetched(&second, "demo_total") >= 1000.0,
        "3h of history again"
    );
    // The resumed forecasts are the ones before the stop, moved only by the few new points.
    let after = samples(&second, "foretell_forecast", "demo");
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (labels, was) in &before {
        let now = after[labels];
        assert!(
            (now - was).abs() <= 0.1 * was.abs().max(1.0),
            "{labels}: {was} before the restart, {now} after"
        );
    }

    // 3. kill -9 while the state is written every second: the files left behind restore.
    foretell_testing::eventually("a few state writes", Duration::from_secs(30), || async {
        samples(&metrics(port).await, "foretell_state_writes_total", "demo")
            .iter()
            .any(|(labels, count)| labels.contains("outcome=\"ok\"") && *count >= 3.0)
            .then_some(())
    })
    .await;
    foretell.signal("KILL");
    assert!(foretell.wait_exit(Duration::from_secs(10)).is_some());
    let (mut foretell, third) = start(&run, port, series).await;
    for query in ["demo", "demo_total"] {
        assert!(
            restored_as(&third, query, "restored"),
            "{query}: {:?}",
            restores(&third, query)
        );
    }
    let exit = foretell.terminate(Duration::from_secs(20));
    assert!(exit.is_some_and(|e| e.success()), "{exit:?}");

    // 4. A replica of another shard does not take this one's files.
    write_run_files(
        &run,
        &config(&url, port, "3h", "1h", "shard:\n  index: 0\n  count: 2\n"),
    );
    let mut foretell = start_in(&run, port, "/-/healthy", Duration::from_secs(30)).await;
    let fourth = foretell_testing::eventually(
        "the shard's restores are counted",
        Duration::from_secs(30),
        || async {
            let text = metrics(port).await;
            (restores(&text, "demo").len() == 1 && restores(&text, "demo_total").len() == 1)
                .then_some(text)
        },
    )
    .await;
    for query in ["demo", "demo_total"] {
        assert!(
            restored_as(&fourth, query, "shard"),
            "{query}: {:?}",
            restores(&fourth, query)
        );
    }
    assert!(
        std::fs::read_to_string(run.join("foretell.log"))
            .expect("log")
            .contains("state file not used"),
        "the reason is logged"
    );
    foretell.terminate(Duration::from_secs(20));
    prometheus.stop();
}
