//! SIGTERM while Alertmanager-like clients post notifications as fast as they can: readiness
//! drops at once, requests in flight are answered, the process exits 0 within its grace period
//! with a stop record, and every notification acknowledged with 200 reaches the receiver (after
//! a restart when the receiver had not got it yet). No external binary needed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

fn notification(client: usize, n: usize) -> String {
    one_alert_notification(
        &format!("{{}}:{{client=\"{client}\"}}"),
        serde_json::json!({"alertname": "Load", "client": client.to_string(), "n": n.to_string()}),
        "2026-11-22T00:00:00Z",
        &format!("c{client}-n{n}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_loses_nothing_acknowledged() {
    let recorder = Recorder::start().await;
    let port = free_port();
    // The four clients share 127.0.0.1, and on a fast machine they exceed the default
    // per-address rate limit (a burst of 1,000) within the first second; 429s are not what this
    // test is about, so the limit is raised out of the way.
    let config = alert_path_config(port, &recorder.url).replacen(
        "alerts:\n",
        "alerts:\n  rate_limit:\n    per_second: 100000\n    burst: 100000\n",
        1,
    );
    assert!(config.contains("burst: 100000"), "{config}");
    let dir = run_dir(&config);
    let start = |round: usize| {
        Process::spawn(
            "foretell",
            &mut foretell_run(dir.path()),
            dir.path().join(format!("foretell-{round}.log")),
        )
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut foretell = start(0);
    foretell
        .wait_http_ok(&format!("{base}/-/healthy"), Duration::from_secs(30))
        .await;

    // Four clients post back to back, at most 400 notifications each, until told to stop.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let odd_answers = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (acknowledged, odd_answers, stop, dropped) = (
                Arc::clone(&acknowledged),
                Arc::clone(&odd_answers),
                Arc::clone(&stop),
                Arc::clone(&dropped),
            );
            let url = format!("{base}/alertmanager/webhook");
            tokio::spawn(async move {
                let http = http();
                for n in 0..400 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match post_notification(&http, &url, notification(client, n)).await {
                        Ok(response) if response.status() == 200 => acknowledged
                            .lock()
                            .expect("lock")
                            .push(format!("c{client}-n{n}")),
                        // Refused during shutdown: Alertmanager would retry it elsewhere.
                        Ok(response) if response.status() == 503 => {}
                        Ok(response) => odd_answers
                            .lock()
                            .expect("lock")
                            .push(format!("HTTP {}", response.status())),
                        // The listener has closed: nothing was sent.
                        Err(error) if error.is_connect() => {}
                        // A request on a keep-alive connection the server was closing as
                        // idle: never read, so never acknowledged; a client retries it.
                        Err(_) => {
                            dropped.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !acknowledged.lock().expect("lock").is_empty(),
        "the load is running"
    );
    // Readiness over a connection opened before the signal answers 503 at once.
    let prober = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    let ready = format!("{base}/-/ready");
    let _ = prober.get(&ready).send().await;
    foretell.signal("TERM");
    let signalled = Instant::now();
    // Never ready again after the signal: the open connection is answered 503, or the server
    // has already closed it as idle (an error on the connection, never a 200 and never a hang).
    match prober.get(&ready).send().await {
        Ok(response) => assert_eq!(response.status(), 503, "ready right after SIGTERM"),
        Err(error) => assert!(
            !error.is_timeout() && (error.is_connect() || error.is_request()),
            "readiness after SIGTERM: {error}"
        ),
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = foretell.wait_exit(Duration::from_secs(10));
        (status, foretell)
    })
    .await
    .expect("join");
    let (exit, _stopped) = status;
    let exit = exit.expect("exits within the grace period");
    assert!(exit.success(), "exit 0: {exit:?}");
    assert!(signalled.elapsed() < Duration::from_secs(10));
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.expect("client");
    }
    let odd = odd_answers.lock().expect("lock").clone();
    assert!(odd.is_empty(), "every answer was 200 or 503: {odd:?}");
    assert!(
        dropped.load(Ordering::SeqCst) <= 4,
        "at most one closing keep-alive connection per client"
    );

    // What was acknowledged and not yet delivered goes out after a restart.
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let mut restarted = start(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = recorder.fingerprints();
        let missing: Vec<&String> = acknowledged.iter().filter(|a| !got.contains(*a)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} acknowledged notifications never arrived (delivered {}), e.g. {:?}; log: {}",
            missing.len(),
            acknowledged.len(),
            got.len(),
            &missing[..missing.len().min(5)],
            restarted.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(restarted.terminate(Duration::from_secs(10)).is_some());
    assert_audit_verifies(dir.path(), "the log verifies after SIGTERM and a restart");
    assert_eq!(
        audit_records_of_kind(dir.path(), "process.stopped"),
        2,
        "a stop record per run"
    );
}

/// Issue 20, item 7: every stage busy at once (a query waiting on a Prometheus that never
/// answers, a delivery waiting on a receiver that never answers, a webhook client that never
/// finishes its body) and foretell still exits 0 within one `shutdown_grace` of SIGTERM, not
/// one grace per stage, so Kubernetes' grace period is never overrun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_every_stage_stuck_exits_within_one_grace() {
    use tokio::io::AsyncWriteExt as _;
    let grace = Duration::from_secs(4);
    let prometheus =
        foretell_testing::FakeUpstream::start(vec![foretell_testing::Canned::Hang]).await;
    let receiver =
        foretell_testing::FakeUpstream::start(vec![foretell_testing::Canned::Hang]).await;
    let port = free_port();
    let config = alert_path_config(port, &format!("{}/hook", receiver.url))
        .replace(
            "url: http://127.0.0.1:9\n  timeout: 500ms",
            &format!("url: {}\n  timeout: 20s", prometheus.url),
        )
        .replace("shutdown_grace: 5s", "shutdown_grace: 4s")
        .replace("timeout: 2s\n  routes:", "timeout: 20s\n  routes:")
        .replace("evaluation_interval: 5s", "evaluation_interval: 21s");
    assert!(
        config.contains("timeout: 20s\n  routes:") && config.contains("shutdown_grace: 4s"),
        "{config}"
    );
    let dir = run_dir(&config);
    let mut foretell = start_in(dir.path(), port, "/-/healthy", Duration::from_secs(30)).await;
    let base = format!("http://127.0.0.1:{port}");
    // An alert accepted, whose delivery then hangs on the receiver.
    let accepted = post_notification(
        &http(),
        &format!("{base}/alertmanager/webhook"),
        notification(0, 0),
    )
    .await
    .expect("posted");
    assert_eq!(accepted.status(), 200);
    eventually(
        "the delivery to reach the receiver",
        Duration::from_secs(10),
        || std::future::ready((!receiver.requests().is_empty()).then_some(())),
    )
    .await;
    assert!(
        !prometheus.requests().is_empty(),
        "the query is waiting on Prometheus"
    );
    // A webhook request whose body never completes.
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stalled
        .write_all(b"POST /alertmanager/webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"version\":")
        .await
        .expect("write");
    // Connections are accepted in order: once one opened after the stalled one is answered, the
    // server holds the stalled request. Without this, SIGTERM could close the listener before it
    // accepted the stalled connection, leaving nothing in flight for the server to wait on.
    let later = http()
        .get(format!("{base}/-/healthy"))
        .send()
        .await
        .expect("answered");
    assert!(later.status().is_success(), "{later:?}");

    foretell.signal("TERM");
    let signalled = Instant::now();
    let (exit, foretell) = tokio::task::spawn_blocking(move || {
        let exit = foretell.wait_exit(grace + grace / 2);
        (exit, foretell)
    })
    .await
    .expect("join");
    let exit = exit.unwrap_or_else(|| {
        panic!(
            "still running 1.5 graces after SIGTERM: {}",
            foretell.log_tail()
        )
    });
    assert!(exit.success(), "exit 0: {exit:?}");
    let took = signalled.elapsed();
    let log = std::fs::read_to_string(dir.path().join("foretell.log")).expect("log");
    // The stages were really stuck: the server (the stalled request) and the forwarder (the
    // hanging delivery) each gave up at the shared deadline; the query task is cancelled
    // mid-request, so it may stop at once. The server's own timer and the shared deadline end
    // in the same timer tick, so which of the two says so first is a race: either line shows
    // the server held on to the stalled connection until the grace was up.
    let server_stuck = [
        "HTTP server did not stop within the grace period",
        "connections still open after the shutdown grace period",
    ];
    assert!(
        server_stuck.iter().any(|line| log.contains(line)),
        "the server was stuck (took {took:?}): {log}"
    );
    let forwarder_stuck = "alert, push or verify tasks did not stop within the grace period";
    assert!(
        log.contains(forwarder_stuck),
        "{forwarder_stuck} (took {took:?}): {log}"
    );
    assert!(
        took >= grace - Duration::from_millis(500),
        "waited for the grace: {took:?}"
    );
    drop(stalled);
}
