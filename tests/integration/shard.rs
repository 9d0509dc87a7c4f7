//! Three replicas sharing one real Prometheus: together they track every series exactly once,
//! and a replica's restart brings back the same series and moves none of the others'. One
//! replica also pushes its predictions back into that Prometheus by remote write (nothing
//! scrapes the replicas), and they are queryable there with their labels. Ignored by default;
//! run by `.ci/run`'s end-to-end stage.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::*;

const INSTANCES: usize = 24;

fn config(prometheus: &str, port: u16, remote_write: bool) -> String {
    let push = if remote_write {
        format!("remote_write:\n  url: {prometheus}/api/v1/write\n  timeout: 5s\n  interval: 2s\n")
    } else {
        String::new()
    };
    format!(
        "prometheus:\n  url: {prometheus}\n  timeout: 1s\n\
         server:\n  listen_address: 127.0.0.1:{port}\n  shutdown_grace: 5s\n{push}\
         queries:\n  - name: demo\n    expr: demo_requests_per_second\n    step: 1m\n    history: 1d\n    evaluation_interval: 2s\n    model:\n      seasonality: none\n      horizons: [30m]\n"
    )
}

/// The instances whose model-readiness series a replica exports.
async fn instances(port: u16) -> Option<BTreeSet<String>> {
    let (_, body) = get(&format!("http://127.0.0.1:{port}/metrics")).await?;
    let found: BTreeSet<String> = body
        .lines()
        .filter(|l| l.starts_with("foretell_model_ready{"))
        .filter_map(|l| {
            l.split("instance=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned)
        })
        .collect();
    (!found.is_empty()).then_some(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Debian prometheus package; run by .ci/run's end-to-end stage"]
async fn three_replicas_cover_every_series_once_and_a_restart_moves_only_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Prometheus scrapes nothing here; the replicas only read from it.
    let history = dir.path().join("history.om");
    let rules = dir.path().join("live-rules.yml");
    let now = now_secs();
    run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_foretell"))
            .arg("sample-data")
            .arg("--history-out")
            .arg(&history)
            .arg("--rules-out")
            .arg(&rules)
            .args(["--instances", &INSTANCES.to_string()])
            .args([
                "--end",
                // On the minute: the harness' Prometheus looks back only 20s, so history off
                // the replicas' 1m grid would be invisible to their range queries.
                &((now - 30) / 60 * 60).to_string(),
                "--span",
                "1d",
                "--step",
                "1m",
            ]),
    );
    run_ok(
        std::process::Command::new(require_binary("promtool"))
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&history)
            .arg(dir.path().join("data")),
    );
    let mut prometheus = Prometheus {
        port: free_port(),
        dir: dir.path().to_owned(),
        process: None,
    };
    prometheus.configure(&[rules], free_port(), None);
    prometheus.start();
    prometheus.wait_ready().await;
    // The backfilled history is queryable before any replica starts.
    eventually(
        "Prometheus serves the backfilled series",
        Duration::from_secs(60),
        || async {
            let (ok, result) = prometheus
                .try_query("count(count_over_time(demo_requests_per_second[1h]))")
                .await;
            (ok && result.first().and_then(|r| r["value"][1].as_str()) == Some("24")).then_some(())
        },
    )
    .await;

    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let start = |index: usize, round: usize| {
        let path = dir.path().join(format!("foretell-{index}.yml"));
        std::fs::write(&path, config(&prometheus.url(), ports[index], index == 0)).expect("config");
        Process::spawn(
            "foretell replica",
            std::process::Command::new(env!("CARGO_BIN_EXE_foretell"))
                .args(["run", "--config"])
                .arg(&path)
                .args(["--shard", &format!("{index}/3")]),
            dir.path().join(format!("foretell-{index}-{round}.log")),
        )
    };
    let mut replicas: Vec<Process> = (0..3).map(|i| start(i, 0)).collect();
    let mut owned: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (index, port) in ports.iter().enumerate() {
        let found = eventually(
            "a replica exports its shard",
            Duration::from_secs(90),
            || instances(*port),
        )
        .await;
        owned.insert(index, found);
    }
    let mut union = BTreeSet::new();
    for (index, found) in &owned {
        for instance in found {
            assert!(
                union.insert(instance.clone()),
                "{instance} is tracked twice (again by replica {index}): {owned:?}"
            );
        }
        // A fair share each: 24 series, 3 replicas.
        assert!((3..=15).contains(&found.len()), "{owned:?}");
    }
    assert_eq!(union.len(), INSTANCES, "every series is tracked: {owned:?}");
    let metrics = get(&format!("http://127.0.0.1:{}/metrics", ports[1]))
        .await
        .expect("metrics")
        .1;
    assert!(
        metrics.contains("\nforetell_shard_index 1\n")
            && metrics.contains("\nforetell_shard_replicas 3\n")
    );

    // Replica 0's predictions arrived by remote write, with the series' labels and foretell's.
    let pushed = eventually(
        "replica 0's predictions are queryable in Prometheus",
        Duration::from_secs(60),
        || async {
            let (ok, result) = prometheus
                .try_query(
                    "foretell_baseline{query=\"demo\",source_metric=\"demo_requests_per_second\"}",
                )
                .await;
            let found: BTreeSet<String> = result
                .iter()
                .filter_map(|r| r["metric"]["instance"].as_str().map(str::to_owned))
                .collect();
            (ok && found == owned[&0]).then_some(result)
        },
    )
    .await;
    let now = now_secs() as f64;
    for series in &pushed {
        let stamped = series["value"][0].as_f64().expect("timestamp");
        assert!(stamped <= now + 1.0, "never in the future: {series}");
    }
    let (ok, forecasts) = prometheus
        .try_query("foretell_forecast{query=\"demo\",horizon=\"30m\"}")
        .await;
    assert!(ok && forecasts.len() == owned[&0].len(), "{forecasts:?}");
    let replica_metrics = get(&format!("http://127.0.0.1:{}/metrics", ports[0]))
        .await
        .expect("metrics")
        .1;
    let sent: f64 = replica_metrics
        .lines()
        .find_map(|l| l.strip_prefix("foretell_remote_write_samples_total{outcome=\"sent\"} "))
        .and_then(|v| v.parse().ok())
        .expect("remote-write counter");
    assert!(sent > 0.0, "{replica_metrics}");
    assert!(
        replica_metrics.contains("foretell_remote_write_samples_total{outcome=\"rejected\"} 0"),
        "{replica_metrics}"
    );

    // Replica 1 restarts: it comes back with the same series; the others keep theirs.
    assert!(replicas[1].terminate(Duration::from_secs(20)).is_some());
    replicas[1] = start(1, 1);
    let again = eventually(
        "the restarted replica exports its shard",
        Duration::from_secs(60),
        || instances(ports[1]),
    )
    .await;
    assert_eq!(again, owned[&1]);
    for index in [0, 2] {
        assert_eq!(instances(ports[index]).await.as_ref(), Some(&owned[&index]));
    }
    for replica in &mut replicas {
        assert!(replica.terminate(Duration::from_secs(20)).is_some());
    }
}
