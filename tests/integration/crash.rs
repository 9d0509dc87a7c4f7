//! `kill -9` at random moments while Alertmanager-like clients post notifications, 100 rounds
//! on the same audit database: the log verifies after every tenth round and at the end, and a
//! last start delivers every notification that was ever acknowledged with 200. Bounded: each
//! round posts for at most 130 ms.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

const ROUNDS: u64 = 100;

fn notification(round: u64, client: usize, n: usize) -> String {
    one_alert_notification(
        &format!("{{}}:{{client=\"{client}\"}}"),
        serde_json::json!({"alertname": "Crash", "client": client.to_string()}),
        "2026-11-22T00:00:00Z",
        &format!("r{round}-c{client}-n{n}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "100 starts and kills of the real binary (about a minute); run by .ci/run's end-to-end stage"]
async fn sigkill_during_webhook_handling_loses_nothing_acknowledged() {
    let recorder = Recorder::start().await;
    let port = free_port();
    let dir = run_dir(&alert_path_config(port, &recorder.url));
    let start = || {
        Process::spawn(
            "foretell",
            &mut foretell_run(dir.path()),
            dir.path().join("foretell.log"),
        )
    };
    let base = format!("http://127.0.0.1:{port}");
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let odd_answers = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut killed_with_requests_in_flight = 0;
    for round in 0..ROUNDS {
        let mut foretell = start();
        foretell
            .wait_http_ok(&format!("{base}/-/healthy"), Duration::from_secs(30))
            .await;
        let stop = Arc::new(AtomicBool::new(false));
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let clients: Vec<_> = (0..2)
            .map(|client| {
                let (acknowledged, odd_answers, stop, in_flight) = (
                    Arc::clone(&acknowledged),
                    Arc::clone(&odd_answers),
                    Arc::clone(&stop),
                    Arc::clone(&in_flight),
                );
                let url = format!("{base}/alertmanager/webhook");
                tokio::spawn(async move {
                    let http = http();
                    for n in 0..1_000 {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        let answer =
                            post_notification(&http, &url, notification(round, client, n)).await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        match answer {
                            Ok(response) if response.status() == 200 => acknowledged
                                .lock()
                                .expect("lock")
                                .push(format!("r{round}-c{client}-n{n}")),
                            Ok(response) => odd_answers
                                .lock()
                                .expect("lock")
                                .push(format!("round {round}: HTTP {}", response.status())),
                            // Killed: this one was never acknowledged, and neither is any later.
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        // A pseudo-random moment: early in the first request, between commits, or mid-burst.
        let delay = 5 + (round * 7919 + 13) % 125;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        killed_with_requests_in_flight += u32::from(in_flight.load(Ordering::SeqCst) > 0);
        foretell.signal("KILL");
        assert!(
            foretell.wait_exit(Duration::from_secs(5)).is_some(),
            "round {round}: still running after SIGKILL"
        );
        stop.store(true, Ordering::SeqCst);
        for client in clients {
            client.await.expect("client");
        }
        if round % 10 == 9 {
            assert_audit_verifies(dir.path(), &format!("round {round}"));
        }
    }
    let odd = odd_answers.lock().expect("lock").clone();
    assert!(odd.is_empty(), "every answer was 200 or none: {odd:?}");
    assert!(
        killed_with_requests_in_flight >= ROUNDS as u32 / 2,
        "only {killed_with_requests_in_flight} kills hit a request in flight"
    );

    // One more start: whatever was acknowledged and not yet delivered goes out now.
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(acknowledged.len() >= ROUNDS as usize, "the load ran");
    let mut foretell = start();
    let started = Instant::now();
    let missing = eventually(
        "every acknowledged notification delivered after the last restart",
        Duration::from_secs(120),
        || async {
            let delivered = recorder.fingerprints();
            let missing = acknowledged
                .iter()
                .filter(|fingerprint| !delivered.contains(*fingerprint))
                .count();
            (missing == 0).then_some(missing)
        },
    )
    .await;
    assert_eq!(missing, 0);
    let deliveries = recorder.bodies().len();
    println!(
        "kill -9: {ROUNDS} rounds, {killed_with_requests_in_flight} with requests in flight; {} notifications acknowledged, all delivered ({deliveries} deliveries in all, counting those committed but killed before their answer and repeats after a kill between sending and recording), drained {:?} after the last start",
        acknowledged.len(),
        started.elapsed()
    );
    assert!(foretell.terminate(Duration::from_secs(10)).is_some());
    assert_audit_verifies(dir.path(), "the log verifies after 100 kills");
}
