//! The alert path end to end in-process: the webhook handler, real SQLite, the router and a
//! forwarder posting to a scripted receiver on 127.0.0.1.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use foretell_core::audit::{verify, KeyRing};
use foretell_core::model::{Band, Excursion};
use foretell_core::snapshot::{export_labels, QueryOutput, SeriesOutput, SeriesState};
use foretell_core::Labels;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::audit::store;
use crate::config::{BreakerConfig, ReceiverConfig, RouteConfig, Secret};
use crate::exporter::telemetry::Telemetry;
use crate::reader::PrometheusReader;
use crate::server::{handle, AppState};
use foretell_core::alerts::confidence::Confidence;
use foretell_core::alerts::delivery::RetrySchedule;
use foretell_testing::{eventually, eventually_true, json, matrix, Canned, FakeUpstream};

const FIRING: &str = r#"{
  "receiver": "foretell", "status": "firing", "version": "4", "truncatedAlerts": 0,
  "groupKey": "{}:{alertname=\"HighErrors\"}", "groupLabels": {"alertname": "HighErrors"},
  "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am:9093",
  "alerts": [
    {"status": "firing", "labels": {"alertname": "HighErrors", "job": "api", "instance": "a", "severity": "critical"},
     "annotations": {"summary": "errors up"}, "startsAt": "2026-11-22T09:00:00Z",
     "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "f1"},
    {"status": "firing", "labels": {"alertname": "HighErrors", "job": "api", "instance": "zz", "severity": "critical"},
     "annotations": {}, "startsAt": "2026-11-22T09:00:00Z",
     "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "f2"}
  ]
}"#;

fn keys() -> KeyRing {
    KeyRing::parse(&format!("k1:{}", "05".repeat(32))).expect("keys")
}

fn config(receiver_url: &str, min_confidence: Option<f64>) -> AlertsConfig {
    AlertsConfig {
        max_body_bytes: 64 * 1024,
        body_read_timeout: Duration::from_secs(2),
        bearer_token: Some(Secret::new("s3cret".into())),
        dedupe_window: Duration::from_secs(60),
        max_queued: 10_000,
        rate_limit: foretell_core::alerts::rate_limit::RateLimit {
            per_second: 1000.0,
            burst: 1000.0,
        },
        retry: RetrySchedule {
            initial_backoff_ms: 10,
            max_backoff_ms: 40,
            give_up_after_ms: 60_000,
        },
        circuit_breaker: BreakerConfig {
            failures: 100,
            cooldown: Duration::from_millis(50),
            max_cooldown: Duration::from_millis(100),
        },
        on_demand: None,
        receivers: vec![ReceiverConfig {
            name: "pager".into(),
            url: crate::config::SecretUrl::new(
                url::Url::parse(receiver_url).expect("url"),
                foretell_core::redact::Path::Hidden,
            ),
            timeout: Duration::from_secs(2),
            auth: None,
            headers: vec![],
        }],
        routes: vec![RouteConfig {
            receiver: "pager".into(),
            matchers: vec![("severity".into(), "critical".into())],
            min_confidence: min_confidence.and_then(|c| Confidence::new(c).ok()),
        }],
    }
}

/// A tracked series for instance `a` with an open excursion of 6σ for 10 points.
fn tracked_snapshot() -> QueryOutput {
    QueryOutput {
        query: "errors".into(),
        evaluated_at_ms: 0,
        horizons: vec![],
        series: vec![SeriesOutput::new(
            export_labels(
                "errors",
                &Labels::from_pairs([("__name__", "errors"), ("job", "api"), ("instance", "a")]),
            ),
            SeriesState::Ready {
                band: Band {
                    expected: 10.0,
                    lower: 8.0,
                    upper: 12.0,
                },
                score: Some(6.0),
                probability: 0.4,
                forecasts: vec![],
                threshold_eta_seconds: None,
                excursion: Excursion {
                    length: 10,
                    outside: 10,
                    peak_sigmas: 12.0,
                    peak_probability: 0.99,
                    latest_sigmas: 12.0,
                    direction: 1,
                    ..Excursion::default()
                },
            },
        )],
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    database: Arc<crate::db::Writer>,
    state: AppState,
    alerts: Arc<AlertPath>,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _reload: mpsc::Receiver<crate::server::ReloadRequest>,
}

impl Harness {
    fn start(alerts: AlertsConfig) -> Harness {
        Harness::start_with(alerts, None)
    }

    fn start_with(alerts: AlertsConfig, prometheus: Option<PrometheusReader>) -> Harness {
        Harness::start_on(alerts, prometheus, crate::clock::system())
    }

    fn start_on(
        alerts: AlertsConfig,
        prometheus: Option<PrometheusReader>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.db");
        let telemetry = Arc::new(Telemetry::new("test"));
        let registry = Arc::new(crate::exporter::registry::Registry::with(telemetry.clone()));
        let database = Arc::new(
            crate::audit::log::start_writer(&path, keys(), Arc::clone(&telemetry), 0)
                .expect("audit"),
        );
        let snapshot = Arc::new(SnapshotCell::default());
        snapshot.publish(tracked_snapshot());
        let alerts_path = Arc::new(AlertPath::new(
            alerts,
            Arc::clone(&database),
            path.clone(),
            clock,
            Arc::clone(&snapshot),
            &[],
            prometheus,
            GraphLinks {
                base: url::Url::parse("https://foretell.example/").ok(),
                signer: Some(foretell_core::chart::link::LinkSigner::new(&keys())),
            },
            &registry,
        ));
        let cancel = CancellationToken::new();
        let tasks = alerts_path.start(&cancel);
        let (reload, reload_requests) = mpsc::channel(1);
        let state = AppState {
            lifecycle_enabled: AtomicBool::new(true),
            alerts: Some(Arc::clone(&alerts_path)),
            registry: Arc::clone(&registry),
            ..AppState::new(
                snapshot,
                telemetry,
                reload,
                Arc::new(crate::graph::Grapher::new(
                    prometheus_at("http://127.0.0.1:9"),
                    &[],
                    None,
                    crate::clock::system(),
                )),
            )
        };
        Harness {
            _dir: dir,
            path,
            database,
            state,
            alerts: alerts_path,
            cancel,
            tasks,
            _reload: reload_requests,
        }
    }

    async fn post(&self, body: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/alertmanager/webhook")
            .header("content-type", "application/json");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.send(request, Bytes::from(body.to_owned())).await
    }

    async fn request(&self, method: Method, uri: &str) -> (StatusCode, String) {
        let request = Request::builder().method(method).uri(uri);
        self.send(request, Bytes::new()).await
    }

    async fn send(&self, request: http::request::Builder, body: Bytes) -> (StatusCode, String) {
        let request = request.body(Full::new(body)).expect("request");
        let response = handle(&self.state, request).await;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Kinds of the audit records so far; a log holding any verifies.
    fn records(&self) -> Vec<(String, String)> {
        let connection = crate::db::open_read_only(&self.path).expect("open");
        let stored = store::read_log(&connection, &self.path).expect("read");
        if !stored.records.is_empty() {
            let outcome = verify(&stored.log_id, &stored.records, &keys(), stored.start, None);
            assert_eq!(outcome.problem, None, "the log verifies");
        }
        stored
            .records
            .iter()
            .map(|r| (r.entry.kind.clone(), r.entry.outcome.clone()))
            .collect()
    }

    /// The self-metrics as a scrape renders them: the alert path's come from its
    /// registration in the registry.
    fn metrics(&self) -> String {
        let mut out = String::new();
        self.state
            .registry
            .collect(&mut out, foretell_core::exposition::Format::Text);
        out
    }

    async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            task.await.expect("task");
        }
        self.database.close();
    }
}

/// Issue 21: the shipped ForetellWebhookRejecting rates the 503 counter, which must exist at 0
/// before the first 503 for the rate to see that burst.
#[tokio::test]
async fn every_webhook_answer_code_is_counted_from_zero() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    let metrics = harness.metrics();
    for code in webhook::ANSWERED_CODES {
        assert!(
            metrics.contains(&format!(
                "foretell_webhook_requests_total{{code=\"{code}\"}} 0\n"
            )),
            "{code}: {metrics}"
        );
    }
    harness.stop().await;
}

/// The state of every notification in the outbox, oldest first, and the number of deliveries.
fn outbox_rows(path: &std::path::Path) -> (Vec<String>, i64) {
    let connection = crate::db::open_read_only(path).expect("open");
    let mut statement = connection
        .prepare("SELECT state FROM notifications ORDER BY id")
        .expect("prepare");
    let states = statement
        .query_map([], |row| row.get(0))
        .expect("query")
        .collect::<Result<Vec<String>, _>>()
        .expect("rows");
    let deliveries = connection
        .query_row("SELECT count(*) FROM deliveries", [], |row| row.get(0))
        .expect("count");
    (states, deliveries)
}

fn body_of(request: &str) -> serde_json::Value {
    let body = request.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).expect("json body")
}

#[tokio::test]
async fn an_accepted_notification_is_enriched_and_forwarded_with_its_records() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    let (status, reason) = harness.post(FIRING, Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{reason}");
    eventually_true("delivered", Duration::from_secs(3), || {
        receiver.requests().len() == 1
    })
    .await;
    let request = &receiver.requests()[0];
    assert!(
        request.to_ascii_lowercase().contains("idempotency-key: "),
        "{request}"
    );
    let body = body_of(request);
    assert_eq!(body["version"], "4");
    assert_eq!(body["truncatedAlerts"], 0, "fields pass through");
    let tracked = &body["alerts"][0]["annotations"];
    assert_eq!(tracked["summary"], "errors up", "existing annotations kept");
    let confidence: f64 = tracked["foretell_confidence"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .expect("a number");
    assert!((0.0..=1.0).contains(&confidence));
    assert_eq!(tracked["foretell_baseline"], "10");
    assert_eq!(tracked["foretell_anomaly_score"], "6.00");
    assert!(
        tracked["foretell_explanation"]
            .as_str()
            .is_some_and(|e| e.starts_with("HighErrors 12.0σ above its baseline")),
        "{tracked}"
    );
    assert_eq!(
        tracked["foretell_graph_url"],
        "https://foretell.example/graph?query=errors&series=%7Binstance%3D%22a%22%2C+job%3D%22api%22%7D"
    );
    let untracked = &body["alerts"][1]["annotations"];
    assert_eq!(untracked["foretell_confidence"], "unavailable");
    assert!(untracked.get("foretell_graph_url").is_none(), "{untracked}");
    assert!(untracked["foretell_confidence_reason"]
        .as_str()
        .is_some_and(|r| r.contains("no tracked series")));
    eventually_true("an alert.forwarded record", Duration::from_secs(3), || {
        harness
            .records()
            .iter()
            .any(|(kind, _)| kind == "alert.forwarded")
    })
    .await;
    let kinds: Vec<String> = harness.records().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds,
        [
            "alert.received",
            "alert.enriched",
            "alert.enriched",
            "alert.forwarded"
        ]
    );
    // The delivery is counted once its audit record has committed, a moment later.
    let delivered = "foretell_deliveries_total{receiver=\"pager\",outcome=\"delivered\"} 1\n";
    eventually_true(
        "harness.metrics().contains(delivered)",
        Duration::from_secs(3),
        || harness.metrics().contains(delivered),
    )
    .await;
    let metrics = harness.metrics();
    assert!(
        metrics.contains("foretell_alerts_received_total 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains("foretell_alerts_enriched_total{confidence=\"unavailable\"} 1\n"));
    assert!(
        metrics.contains("foretell_alert_confidence_count 1\n")
            && metrics.contains("foretell_alert_confidence_bucket{le=\"1\"} 1\n"),
        "{metrics}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn failures_are_retried_until_delivered_and_duplicates_are_not_forwarded_again() {
    let receiver =
        FakeUpstream::start(vec![json(503, "{}"), json(502, "{}"), json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    assert_eq!(harness.post(FIRING, Some("s3cret")).await.0, StatusCode::OK);
    let (status, reason) = harness.post(FIRING, Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(reason.contains("duplicate of notification 1"), "{reason}");
    eventually_true("an alert.forwarded record", Duration::from_secs(3), || {
        harness
            .records()
            .iter()
            .any(|(kind, _)| kind == "alert.forwarded")
    })
    .await;
    let outcomes: Vec<(String, String)> = harness
        .records()
        .into_iter()
        .filter(|(kind, _)| kind.starts_with("alert.") && kind != "alert.enriched")
        .collect();
    let expected: Vec<(String, String)> = [
        ("alert.received", "ok"),
        ("alert.deduplicated", "ok"),
        ("alert.retried", "failed"),
        ("alert.retried", "failed"),
        ("alert.forwarded", "ok"),
    ]
    .iter()
    .map(|(k, o)| (k.to_string(), o.to_string()))
    .collect();
    assert_eq!(outcomes, expected);
    let keys: Vec<String> = receiver
        .requests()
        .iter()
        .filter_map(|r| {
            r.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("idempotency-key: ")
                    .map(str::to_owned)
            })
        })
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter().all(|k| *k == keys[0]),
        "the same key on every attempt: {keys:?}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_rejected_delivery_is_dead_lettered_and_can_be_retried() {
    let receiver = FakeUpstream::start(vec![json(400, "{}"), json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    assert_eq!(harness.post(FIRING, Some("s3cret")).await.0, StatusCode::OK);
    eventually_true(
        "an alert.dead_lettered record",
        Duration::from_secs(3),
        || {
            harness
                .records()
                .iter()
                .any(|(kind, _)| kind == "alert.dead_lettered")
        },
    )
    .await;
    let (status, listed) = harness.request(Method::GET, "/api/v1/dead-letters").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        listed.contains("\"receiver\":\"pager\"") && listed.contains("HTTP 400"),
        "{listed}"
    );
    let (status, answer) = harness
        .request(Method::POST, "/api/v1/dead-letters/retry?id=1")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    eventually_true("an alert.forwarded record", Duration::from_secs(3), || {
        harness
            .records()
            .iter()
            .any(|(kind, _)| kind == "alert.forwarded")
    })
    .await;
    let kinds: Vec<String> = harness
        .records()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k != "alert.enriched")
        .collect();
    assert_eq!(
        kinds,
        [
            "alert.received",
            "alert.dead_lettered",
            "alert.dead_letter_retried",
            "alert.forwarded"
        ]
    );
    let (status, _) = harness
        .request(Method::POST, "/api/v1/dead-letters/retry?id=x")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    harness.stop().await;
}

#[tokio::test]
async fn unconfident_alerts_are_suppressed_for_a_demanding_route_and_recorded() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, Some(0.99)));
    assert_eq!(harness.post(FIRING, Some("s3cret")).await.0, StatusCode::OK);
    eventually_true(
        "receiver.requests().len() == 1",
        Duration::from_secs(3),
        || receiver.requests().len() == 1,
    )
    .await;
    let body = body_of(&receiver.requests()[0]);
    let fingerprints: Vec<&str> = body["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["fingerprint"].as_str())
        .collect();
    assert_eq!(
        fingerprints,
        ["f2"],
        "the assessed alert is held back, the unassessed one is not"
    );
    assert!(harness
        .records()
        .iter()
        .any(|(kind, outcome)| kind == "alert.suppressed" && outcome == "suppressed"));
    assert!(harness
        .metrics()
        .contains("foretell_alerts_suppressed_total{receiver=\"pager\"} 1\n"));
    // The status page's view: the held-back alert and the delivered one, each with its outcome.
    let alerts = &harness.alerts;
    let recent = eventually(
        "the delivered alert on the status page",
        Duration::from_secs(2),
        move || async move {
            let recent = alerts.recent_alerts(10).await.ok()?;
            recent
                .iter()
                .any(|a| a.outcome == "delivered to pager")
                .then_some(recent)
        },
    )
    .await;
    assert_eq!(recent.len(), 2, "{recent:?}");
    let assessed = recent.iter().find(|a| a.confidence.is_some()).expect("f1");
    assert_eq!(assessed.outcome, "suppressed for pager", "{recent:?}");
    assert_eq!(assessed.alertname, "HighErrors");
    assert!(assessed.detail.contains("instance=\"a\""), "{recent:?}");
    assert!(assessed
        .chart
        .as_deref()
        .is_some_and(|c| c.contains("/graph?query=errors")));
    let unassessed = recent.iter().find(|a| a.confidence.is_none()).expect("f2");
    assert_eq!(unassessed.outcome, "delivered to pager", "{recent:?}");
    assert!(
        unassessed.detail.contains("no tracked series"),
        "{recent:?}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn bad_requests_get_a_defined_answer_and_nothing_is_stored() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    let (status, _) = harness.post(FIRING, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        harness.post(FIRING, Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, reason) = harness.post("{not json", Some("s3cret")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.starts_with("the body is not JSON"), "{reason}");
    let wrong_version = FIRING.replace("\"version\": \"4\"", "\"version\": \"3\"");
    let (status, reason) = harness.post(&wrong_version, Some("s3cret")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.contains("version"), "{reason}");
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let (status, reason) = harness.post(&huge, Some("s3cret")).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reason.contains("alerts.max_body_bytes"), "{reason}");
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        harness.post(&nested, Some("s3cret")).await.0,
        StatusCode::BAD_REQUEST
    );
    let lone_surrogate = FIRING.replace("errors up", "errors \\ud800 up");
    let (status, reason) = harness.post(&lone_surrogate, Some("s3cret")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");
    assert!(reason.contains("hex escape"), "{reason}");
    let mut invalid_utf8 = FIRING.as_bytes().to_vec();
    let at = FIRING.find("errors up").expect("summary");
    invalid_utf8[at] = 0xff;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/alertmanager/webhook")
        .header("content-type", "application/json")
        .header("authorization", "Bearer s3cret");
    let (status, reason) = harness.send(request, Bytes::from(invalid_utf8)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reason}");
    assert!(reason.contains("invalid unicode"), "{reason}");
    // 50,000 alerts are far over the body cap: refused before being read whole.
    let one = r#"{"status":"firing","labels":{"alertname":"A"},"startsAt":"2024-05-01T12:00:00Z"}"#;
    let many = FIRING.replace(
        &FIRING[FIRING.find("\"alerts\": [").expect("alerts")..FIRING.rfind(']').expect("end") + 1],
        &format!("\"alerts\": [{}]", vec![one; 50_000].join(",")),
    );
    assert_eq!(
        harness.post(&many, Some("s3cret")).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let (status, _) = harness.request(Method::GET, "/alertmanager/webhook").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // Issue 16, item 8: any Content-Type was accepted, and a 3 MB `version` was echoed whole.
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/alertmanager/webhook")
            .header("authorization", "Bearer s3cret");
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let (status, reason) = harness.send(request, Bytes::from(FIRING)).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}"
        );
        assert!(reason.contains("application/json"), "{reason}");
    }
    let long_version = FIRING.replace(
        "\"version\": \"4\"",
        &format!("\"version\": \"{}\"", "9".repeat(60_000)),
    );
    let (status, reason) = harness.post(&long_version, Some("s3cret")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(reason.len() < 1_000, "{} bytes echoed", reason.len());
    let metrics = harness.metrics();
    assert!(
        metrics.contains("foretell_webhook_requests_total{code=\"401\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("foretell_webhook_requests_total{code=\"413\"} 2\n"),
        "{metrics}"
    );
    assert!(harness.records().is_empty(), "nothing was accepted");
    assert!(receiver.requests().is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn an_empty_alert_list_is_acknowledged_and_recorded_and_nothing_is_sent() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    let empty = r#"{"version":"4","receiver":"foretell","status":"resolved","groupKey":"{}:{}","groupLabels":{},"alerts":[]}"#;
    let (status, reason) = harness.post(empty, Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{reason}");
    eventually_true("an alert.received record", Duration::from_secs(3), || {
        harness
            .records()
            .iter()
            .any(|(kind, _)| kind == "alert.received")
    })
    .await;
    // Routing commits the deliveries with the routed state: once routed with none, nothing
    // will ever be sent.
    eventually_true("the notification routed", Duration::from_secs(3), || {
        outbox_rows(&harness.path) == (vec!["routed".to_owned()], 0)
    })
    .await;
    assert!(receiver.requests().is_empty(), "no alert, no delivery");
    harness.stop().await;
}

#[tokio::test]
async fn a_notification_that_cannot_be_committed_gets_503() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    let raw = rusqlite::Connection::open(&harness.path).expect("raw");
    raw.execute_batch("DROP TABLE deliveries; DROP TABLE notifications;")
        .expect("drop");
    let (status, reason) = harness.post(FIRING, Some("s3cret")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reason}");
    assert!(
        harness.records().is_empty(),
        "no record without its outbox row"
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_full_disk_gets_503_and_acceptance_resumes_when_space_returns() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    let page_size: i64 = harness
        .database
        .transact(|transaction, _| transaction.query_row("PRAGMA page_size", [], |row| row.get(0)))
        .await
        .expect("page size");
    let pages: i64 = harness
        .database
        .transact(|transaction, _| transaction.query_row("PRAGMA page_count", [], |row| row.get(0)))
        .await
        .expect("page count");
    // The disk is full: the database may not grow beyond its current pages.
    harness
        .database
        .transact(move |transaction, _| {
            transaction.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
        })
        .await
        .expect("limit");
    let mut refused = 0;
    for n in 0..200 {
        let body = FIRING.replace("\"f1\"", &format!("\"full-{n}\""));
        let padded = body.replace(
            "\"errors up\"",
            &format!("\"{}\"", "x".repeat(page_size as usize)),
        );
        match harness.post(&padded, Some("s3cret")).await.0 {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                refused += 1;
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(refused, 1, "a full database refuses with 503");
    harness
        .database
        .transact(|transaction, _| {
            transaction.query_row("PRAGMA max_page_count = 1073741823", [], |_| Ok(()))
        })
        .await
        .expect("space returns");
    let (status, reason) = harness.post(FIRING, Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{reason}");
    harness.records();
    harness.stop().await;
}

fn prometheus_at(url: &str) -> PrometheusReader {
    let text = format!(
        "prometheus:\n  url: {url}\n  timeout: 5s\n  retry:\n    max_attempts: 1\nqueries:\n  - name: q\n    expr: up\n"
    );
    let config = crate::config::parse(
        &text,
        std::path::Path::new("test.yml"),
        &crate::config::SystemEnvironment,
    )
    .expect("valid config");
    PrometheusReader::new(&config.prometheus).expect("client")
}

/// A notification of alerts from one rule (`up > 0`) on untracked series, started 15 minutes
/// ago: relative to now, so that the history before the start always holds enough for a model.
fn untracked(instances: &[&str], generator_exprs: &[&str]) -> String {
    let starts_at =
        foretell_core::timestamp::format_rfc3339(crate::clock::system().now_ms() - 15 * 60_000);
    let alerts: Vec<serde_json::Value> = instances
        .iter()
        .zip(generator_exprs)
        .map(|(instance, expr)| {
            serde_json::json!({
                "status": "firing",
                "labels": {"alertname": "Up", "instance": instance, "severity": "critical"},
                "annotations": {},
                "startsAt": starts_at,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": format!("http://p/graph?g0.expr={expr}&g0.tab=1"),
                "fingerprint": instance,
            })
        })
        .collect();
    serde_json::json!({
        "receiver": "foretell", "status": "firing", "version": "4", "groupKey": "{}:{alertname=\"Up\"}",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "", "alerts": alerts
    })
    .to_string()
}

fn annotations_of(receiver: &FakeUpstream) -> Vec<serde_json::Value> {
    receiver
        .requests()
        .iter()
        .flat_map(|r| body_of(r)["alerts"].as_array().cloned().unwrap_or_default())
        .map(|alert| alert["annotations"].clone())
        .collect()
}

/// Four hours at 1m ending before `now_s`, noisy around 10, the last quarter hour 30 higher.
fn spiking_minutes(now_s: i64) -> Vec<(i64, String)> {
    (0..240)
        .map(|i| {
            let t = now_s - (240 - i) * 60;
            let value = 10.0 + ((i * 7919) % 13) as f64 / 13.0 + if i > 225 { 30.0 } else { 0.0 };
            (t, value.to_string())
        })
        .collect()
}

/// A recording receiver and the alert path assessing on demand (a day at 1m) against
/// `prometheus` within `timeout` per notification.
async fn on_demand_harness(
    prometheus: &FakeUpstream,
    timeout: Duration,
) -> (FakeUpstream, Harness) {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let mut alerts = config(&receiver.url, None);
    alerts.on_demand = Some(crate::config::OnDemandConfig {
        history: Duration::from_secs(86_400),
        step: Duration::from_secs(60),
        timeout,
        graph_expressions: crate::config::GraphExpressions::Linked,
    });
    let harness = Harness::start_with(alerts, Some(prometheus_at(&prometheus.url)));
    (receiver, harness)
}

#[tokio::test]
async fn alerts_of_one_rule_share_one_probe_and_one_history_query() {
    let now_s = crate::clock::system().now_ms() / 1000;
    let points = spiking_minutes(now_s);
    let borrowed: Vec<(i64, &str)> = points.iter().map(|(t, v)| (*t, v.as_str())).collect();
    let prometheus = FakeUpstream::start(vec![json(
        200,
        &matrix(&[("x", &borrowed), ("y", &borrowed)]),
    )])
    .await;
    let (receiver, harness) = on_demand_harness(&prometheus, Duration::from_secs(5)).await;
    let body = untracked(&["x", "y"], &["up+%3E+0", "up+%3E+0"]);
    assert_eq!(harness.post(&body, Some("s3cret")).await.0, StatusCode::OK);
    eventually_true(
        "receiver.requests().len() == 1",
        Duration::from_secs(3),
        || receiver.requests().len() == 1,
    )
    .await;
    // A later notification of the same rule within the step reuses the answer.
    let later = body.replace("\"groupKey\":\"", "\"groupKey\":\"later-");
    assert_ne!(later, body);
    assert_eq!(harness.post(&later, Some("s3cret")).await.0, StatusCode::OK);
    eventually_true(
        "receiver.requests().len() == 2",
        Duration::from_secs(3),
        || receiver.requests().len() == 2,
    )
    .await;
    // An alert older than the series' history: the model is fitted on the series' first samples.
    let long_firing = later
        .replace("\"groupKey\":\"", "\"groupKey\":\"old-")
        .replace(
            "\"startsAt\":\"",
            "\"startsAt\":\"2020-01-01T00:00:00Z\",\"ignored\":\"",
        );
    assert!(long_firing.contains("2020-01-01") && long_firing.contains("old-"));
    assert_eq!(
        harness.post(&long_firing, Some("s3cret")).await.0,
        StatusCode::OK
    );
    eventually_true(
        "receiver.requests().len() == 3",
        Duration::from_secs(3),
        || receiver.requests().len() == 3,
    )
    .await;
    let requests = prometheus.requests();
    assert_eq!(
        requests.len(),
        2,
        "one probe and one history query for every alert and notification: {requests:?}"
    );
    for request in &requests {
        assert!(
            request.contains("query=up&"),
            "the threshold is taken off, a small rule is fetched whole: {request}"
        );
    }
    let span = |request: &str| {
        let form = request.rsplit("\r\n\r\n").next().unwrap_or_default();
        let value = |name: &str| -> i64 {
            url::form_urlencoded::parse(form.as_bytes())
                .find(|(key, _)| key == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or_default()
        };
        value("end") - value("start")
    };
    assert_eq!(span(&requests[0]), 0, "the probe asks for one point");
    assert_eq!(span(&requests[1]), 86_400, "the history is a day");
    for annotations in annotations_of(&receiver) {
        let confidence: Option<f64> = annotations["foretell_confidence"]
            .as_str()
            .and_then(|c| c.parse().ok());
        assert!(confidence.is_some(), "{annotations}");
        assert!(
            annotations["foretell_series"]
                .as_str()
                .is_some_and(|s| s.contains("instance=")),
            "{annotations}"
        );
        assert!(
            annotations["foretell_explanation"]
                .as_str()
                .is_some_and(|e| e.starts_with("Up ") && e.contains("above its baseline")),
            "the replay found the spike: {annotations}"
        );
        assert!(
            annotations["foretell_graph_url"].as_str().is_some_and(|u| u
                .starts_with("https://foretell.example/graph?expr=up&sig=")
                && u.contains("&series=")),
            "{annotations}"
        );
    }
    harness.stop().await;
}

#[tokio::test]
async fn an_alert_of_a_rule_over_many_series_fetches_only_its_own_history() {
    let now_s = crate::clock::system().now_ms() / 1000;
    let newest = [(now_s, "1")];
    let instances: Vec<String> = (0..150).map(|i| format!("host-{i}")).collect();
    let probe: Vec<(&str, &[(i64, &str)])> = instances
        .iter()
        .map(|instance| (instance.as_str(), &newest[..]))
        .collect();
    let points = spiking_minutes(now_s);
    let borrowed: Vec<(i64, &str)> = points.iter().map(|(t, v)| (*t, v.as_str())).collect();
    let prometheus = FakeUpstream::start(vec![
        json(200, &matrix(&probe)),
        json(200, &matrix(&[("host-7", &borrowed)])),
    ])
    .await;
    let (receiver, harness) = on_demand_harness(&prometheus, Duration::from_secs(5)).await;
    let body = untracked(&["host-7"], &["up+%3E+0"]);
    assert_eq!(harness.post(&body, Some("s3cret")).await.0, StatusCode::OK);
    eventually_true(
        "receiver.requests().len() == 1",
        Duration::from_secs(3),
        || receiver.requests().len() == 1,
    )
    .await;
    let requests = prometheus.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(
        requests[1].contains("query=up%7Binstance%3D%22host-7%22%7D&"),
        "the history of the alert's series only: {}",
        requests[1]
    );
    let annotations = &annotations_of(&receiver)[0];
    assert!(
        annotations["foretell_confidence"]
            .as_str()
            .is_some_and(|c| c.parse::<f64>().is_ok()),
        "{annotations}"
    );
    assert!(
        annotations["foretell_explanation"]
            .as_str()
            .is_some_and(|e| e.contains("above its baseline")),
        "{annotations}"
    );
    harness.stop().await;
}

/// A notification's alerts share one on-demand budget: four rules on a Prometheus that never
/// answers cost one budget, not four. Measured on the runtime's paused clock, which jumps to
/// the next timer whenever every task waits (here on the hung requests), so the figure does
/// not depend on how busy the machine is.
#[tokio::test(start_paused = true)]
async fn a_hanging_prometheus_delays_a_notification_by_one_budget_at_most() {
    let prometheus = FakeUpstream::start(vec![Canned::Hang]).await;
    let budget = Duration::from_millis(300);
    let sources = assess::Sources::new(
        Arc::new(SnapshotCell::default()),
        &[],
        Some((
            crate::config::OnDemandConfig {
                history: Duration::from_secs(86_400),
                step: Duration::from_secs(60),
                timeout: budget,
                graph_expressions: crate::config::GraphExpressions::Linked,
            },
            prometheus_at(&prometheus.url),
        )),
        GraphLinks::default(),
    );
    let body = untracked(&["a1", "a2", "a3", "a4"], &["e1", "e2", "e3", "e4"]);
    let notification = foretell_core::alerts::webhook::parse(body.as_bytes()).expect("valid");
    #[allow(clippy::disallowed_methods)] // the runtime's paused clock, not the wall clock
    let started = tokio::time::Instant::now();
    let mut assessor = assess::Assessor::new(&sources, crate::clock::system().now_ms());
    for alert in &notification.alerts {
        let assessment = assessor.assess(alert).await;
        assert_eq!(assessment.confidence, None);
        assert!(
            assessment.annotations["foretell_confidence_reason"].contains("on-demand budget"),
            "{:?}",
            assessment.annotations
        );
    }
    let spent = started.elapsed();
    assert!(
        spent >= budget && spent < budget * 2,
        "four alerts took {spent:?} of the runtime's clock; one budget is {budget:?}"
    );
}

#[tokio::test]
async fn a_reload_gives_tracked_queries_their_new_step_and_horizons() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    let reloaded = crate::config::parse(
        "prometheus:\n  url: http://127.0.0.1:9\nqueries:\n  - name: errors\n    expr: errors\n    step: 5m\n    history: 3d\n    model:\n      horizons: [1h, 1d]\n",
        std::path::Path::new("test.yml"),
        &crate::config::SystemEnvironment,
    )
    .expect("valid");
    harness.alerts.set_queries(&reloaded.queries);
    let mut output = tracked_snapshot();
    output.horizons = vec!["1h".into(), "1d".into()];
    if let SeriesState::Ready { forecasts, .. } = &mut output.series[0].state {
        let band = |expected: f64| Band {
            expected,
            lower: expected - 1.0,
            upper: expected + 1.0,
        };
        *forecasts = vec![band(40.0), band(90.0)];
    }
    harness.state.snapshot.publish(output);
    assert_eq!(harness.post(FIRING, Some("s3cret")).await.0, StatusCode::OK);
    eventually_true(
        "receiver.requests().len() == 1",
        Duration::from_secs(3),
        || receiver.requests().len() == 1,
    )
    .await;
    let annotations = &annotations_of(&receiver)[0];
    assert_eq!(
        annotations["foretell_forecast"],
        "40 in 1h (between 39 and 41)"
    );
    assert!(
        annotations["foretell_explanation"]
            .as_str()
            .is_some_and(|e| e.contains(" for 50m;")),
        "10 points of 5m: {annotations}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn each_address_gets_its_burst_then_waits_its_turn() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let mut alerts = config(&receiver.url, None);
    alerts.rate_limit = foretell_core::alerts::rate_limit::RateLimit {
        per_second: 0.5,
        burst: 2.0,
    };
    let clock = Arc::new(crate::clock::ManualClock::new(
        crate::clock::system().now_ms(),
    ));
    let harness = Harness::start_on(
        alerts,
        None,
        Arc::clone(&clock) as Arc<dyn crate::clock::Clock>,
    );
    let post = |peer: &str, n: usize| {
        let body = FIRING.replace("\"f1\"", &format!("\"rate-{n}\""));
        Request::builder()
            .method(Method::POST)
            .uri("/alertmanager/webhook")
            .header("authorization", "Bearer s3cret")
            .header("content-type", "application/json")
            .extension(crate::server::Peer(peer.parse().expect("address")))
            .body(Full::new(Bytes::from(body)))
            .expect("request")
    };
    for n in 0..2 {
        let response = handle(&harness.state, post("10.0.0.1:5000", n)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let refused = handle(&harness.state, post("10.0.0.1:5001", 2)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "2");
    // Another Alertmanager has its own bucket.
    let other = handle(&harness.state, post("10.0.0.2:5000", 3)).await;
    assert_eq!(other.status(), StatusCode::OK);
    // A wall clock stepping forward refills nothing; time passing does.
    clock.step_wall(3_600_000);
    let stepped = handle(&harness.state, post("10.0.0.1:5000", 4)).await;
    assert_eq!(stepped.status(), StatusCode::TOO_MANY_REQUESTS);
    clock.advance(2_000);
    let refilled = handle(&harness.state, post("10.0.0.1:5000", 5)).await;
    assert_eq!(refilled.status(), StatusCode::OK);
    // Issue 16, item 8: a flood with a wrong token from the same address used to take the
    // real Alertmanager's tokens; it has a bucket of its own.
    clock.advance(10_000);
    let wrong_token = |n: usize| {
        Request::builder()
            .method(Method::POST)
            .uri("/alertmanager/webhook")
            .header("authorization", "Bearer guessed")
            .header("content-type", "application/json")
            .extension(crate::server::Peer(
                "10.0.0.1:6000".parse().expect("address"),
            ))
            .body(Full::new(Bytes::from(
                FIRING.replace("\"f1\"", &format!("\"bad-{n}\"")),
            )))
            .expect("request")
    };
    let mut flood = Vec::new();
    for n in 0..30 {
        flood.push(handle(&harness.state, wrong_token(n)).await.status());
    }
    assert_eq!(flood[0], StatusCode::UNAUTHORIZED);
    assert_eq!(flood[29], StatusCode::TOO_MANY_REQUESTS, "{flood:?}");
    let real = handle(&harness.state, post("10.0.0.1:5000", 6)).await;
    assert_eq!(
        real.status(),
        StatusCode::OK,
        "the flood took no notification tokens"
    );
    let metrics = harness.metrics();
    assert!(
        metrics.contains("foretell_webhook_requests_total{code=\"429\"} 22\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("foretell_notifications_received_total 5\n"),
        "{metrics}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_locked_or_read_only_database_gets_503_and_nothing_goes_out_without_its_record() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    // Another process holds the write lock: the commit waits out the busy timeout, then 503.
    let blocker = rusqlite::Connection::open(&harness.path).expect("open");
    blocker.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let (status, reason) = harness.post(FIRING, Some("s3cret")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reason}");
    blocker.execute_batch("COMMIT").expect("unlock");
    // The database turns read-only (as a remount would make it): 503 again.
    harness
        .database
        .transact(|transaction, _| transaction.execute_batch("PRAGMA query_only = ON"))
        .await
        .expect("read-only");
    let other = FIRING.replace("\"f1\"", "\"read-only\"");
    let (status, reason) = harness.post(&other, Some("s3cret")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reason}");
    // Refused means never stored, so there is nothing the forwarder could send.
    assert_eq!(
        outbox_rows(&harness.path),
        (Vec::new(), 0),
        "nothing refused was stored"
    );
    assert!(
        receiver.requests().is_empty(),
        "nothing refused was forwarded"
    );
    harness
        .database
        .transact(|transaction, _| transaction.execute_batch("PRAGMA query_only = OFF"))
        .await
        .expect("writable");
    // Both come back once Alertmanager retries.
    for body in [FIRING.to_owned(), other] {
        let (status, reason) = harness.post(&body, Some("s3cret")).await;
        assert_eq!(status, StatusCode::OK, "{reason}");
    }
    eventually_true(
        "receiver.requests().len() == 2",
        Duration::from_secs(3),
        || receiver.requests().len() == 2,
    )
    .await;
    harness.records();
    harness.stop().await;
}

#[tokio::test]
async fn a_full_outbox_refuses_new_notifications_until_deliveries_drain_in_order() {
    // The receiver fails a while, then recovers.
    const FAILURES: usize = 3;
    let mut script = vec![json(503, "{}"); FAILURES];
    script.push(json(200, "{}"));
    let receiver = FakeUpstream::start(script).await;
    let mut alerts = config(&receiver.url, None);
    alerts.max_queued = 3;
    let harness = Harness::start(alerts);
    let numbered = |n: usize| FIRING.replace("\"f1\"", &format!("\"queued-{n}\""));
    for n in 0..3 {
        let (status, reason) = harness.post(&numbered(n), Some("s3cret")).await;
        assert_eq!(status, StatusCode::OK, "{reason}");
    }
    let (status, reason) = harness.post(&numbered(3), Some("s3cret")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reason.contains("alerts.max_queued is 3"), "{reason}");
    // Once the receiver is back the queue drains, oldest first within the group, and the
    // refused notification is accepted when Alertmanager retries it.
    eventually_true("FAILURES + 3 requests", Duration::from_secs(15), || {
        receiver.requests().len() >= FAILURES + 3
    })
    .await;
    let (status, reason) = harness.post(&numbered(3), Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{reason}");
    eventually_true(
        "receiver.requests().len() == FAILURES + 4",
        Duration::from_secs(15),
        || receiver.requests().len() == FAILURES + 4,
    )
    .await;
    let delivered: Vec<String> = receiver.requests()[FAILURES..]
        .iter()
        .map(|request| {
            let body = body_of(request);
            body["alerts"][0]["fingerprint"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        delivered,
        vec!["queued-0", "queued-1", "queued-2", "queued-3"]
    );
    let kinds: Vec<(String, String)> = harness
        .records()
        .into_iter()
        .filter(|(kind, _)| kind == "alert.refused")
        .collect();
    assert_eq!(
        kinds,
        vec![("alert.refused".to_owned(), "overflow".to_owned())]
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_backlog_drains_at_the_receivers_pace_not_one_per_group_per_poll() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let harness = Harness::start(config(&receiver.url, None));
    // Forty notifications of one group, queued faster than they are forwarded.
    for n in 0..40 {
        let body = FIRING.replace("\"f1\"", &format!("\"backlog-{n}\""));
        assert_eq!(harness.post(&body, Some("s3cret")).await.0, StatusCode::OK);
    }
    // One delivery per group per one-second poll would take forty seconds.
    eventually_true(
        "receiver.requests().len() == 40",
        Duration::from_secs(3),
        || receiver.requests().len() == 40,
    )
    .await;
    harness.stop().await;
}

/// The request's `Idempotency-Key`, its group and its first alert's fingerprint.
fn delivery_of(request: &str) -> (String, String, String) {
    let key = request
        .lines()
        .find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("idempotency-key:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    let body = body_of(request);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    (
        key,
        text(&body["groupKey"]),
        text(&body["alerts"][0]["fingerprint"]),
    )
}

#[tokio::test]
async fn a_receiver_down_for_an_hour_and_wall_clock_steps_lose_nothing_and_keep_group_order() {
    use crate::clock::{Clock, ManualClock};
    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;
    // Real defaults' shape: backoff to 5 min, give up after a day, breaker cooling to 5 min.
    let receiver = FakeUpstream::start(vec![Canned::Close]).await;
    let mut alerts = config(&receiver.url, None);
    alerts.retry = RetrySchedule {
        initial_backoff_ms: 1_000,
        max_backoff_ms: 5 * MINUTE,
        give_up_after_ms: 24 * HOUR,
    };
    alerts.circuit_breaker = BreakerConfig {
        failures: 5,
        cooldown: Duration::from_secs(10),
        max_cooldown: Duration::from_secs(300),
    };
    let clock = Arc::new(ManualClock::new(crate::clock::system().now_ms()));
    let harness = Harness::start_on(alerts, None, Arc::clone(&clock) as Arc<dyn Clock>);
    let mut posted: Vec<(String, String)> = Vec::new();
    let post = |n: usize| {
        let group = format!("group-{}", n % 3);
        let fingerprint = format!("outage-{n}");
        let body = FIRING
            .replace("\"groupKey\": \"{}:", &format!("\"groupKey\": \"{group}:"))
            .replace("\"f1\"", &format!("\"{fingerprint}\""));
        (body, group, fingerprint)
    };
    let pending_due = |path: &std::path::Path| -> (i64, i64) {
        let connection = rusqlite::Connection::open(path).expect("open");
        connection
            .query_row(
                "SELECT count(*), coalesce(max(next_attempt_ms), 0) FROM deliveries WHERE state = 'pending'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("query")
    };

    // An hour of a dead receiver in 30-second steps, a notification each step.
    for n in 0..120 {
        clock.advance(30_000);
        let (body, group, fingerprint) = post(n);
        let (status, reason) = harness.post(&body, Some("s3cret")).await;
        assert_eq!(status, StatusCode::OK, "minute {}: {reason}", n / 2);
        posted.push((group, fingerprint));
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let attempts_in_the_hour = receiver.requests().len();
    assert!(
        (3..=240).contains(&attempts_in_the_hour),
        "tried, but the breaker keeps it from hammering: {attempts_in_the_hour} attempts"
    );
    let (pending, latest_due) = pending_due(&harness.path);
    assert_eq!(pending, 120, "everything accepted is still queued");
    assert!(
        latest_due <= clock.now_ms() + 5 * MINUTE,
        "backoff capped at 5 min: due {} ms ahead",
        latest_due - clock.now_ms()
    );

    // The wall clock steps back an hour: acceptance goes on, and retries scheduled before the
    // step are not pushed an hour out.
    clock.step_wall(-HOUR);
    let (body, group, fingerprint) = post(120);
    assert_eq!(harness.post(&body, Some("s3cret")).await.0, StatusCode::OK);
    posted.push((group, fingerprint));
    clock.advance(6 * MINUTE);
    let before = receiver.requests().len();
    eventually_true(
        "attempts go on after the clock stepped back",
        Duration::from_secs(3),
        || receiver.requests().len() > before,
    )
    .await;
    // Then forward a day: the queue looks a day old but was not tried through a day.
    clock.step_wall(24 * HOUR + HOUR);
    clock.advance(6 * MINUTE);
    let before = receiver.requests().len();
    eventually_true(
        "receiver.requests().len() > before",
        Duration::from_secs(3),
        || receiver.requests().len() > before,
    )
    .await;

    // The receiver recovers: everything arrives, each group in the order it was accepted.
    receiver.rescript(vec![json(200, "{}")]);
    clock.advance(6 * MINUTE);
    eventually_true("no pending delivery", Duration::from_secs(20), || {
        pending_due(&harness.path).0 == 0
    })
    .await;
    let kinds = harness.records();
    let count = |kind: &str| kinds.iter().filter(|(k, _)| k == kind).count();
    assert_eq!(count("alert.forwarded"), 121);
    assert_eq!(
        count("alert.dead_lettered"),
        0,
        "the day's step gave up nothing"
    );
    // Each delivery's last request is its successful one.
    let requests = receiver.requests();
    let mut last_seen: Vec<(String, String, String)> = Vec::new();
    for request in requests.iter().rev() {
        let delivery = delivery_of(request);
        if !last_seen.iter().any(|(key, _, _)| *key == delivery.0) {
            last_seen.push(delivery);
        }
    }
    last_seen.reverse();
    assert_eq!(last_seen.len(), 121, "one key per delivery");
    for group in ["group-0", "group-1", "group-2"] {
        let arrived: Vec<&str> = last_seen
            .iter()
            .filter(|(_, g, _)| g.starts_with(group))
            .map(|(_, _, fingerprint)| fingerprint.as_str())
            .collect();
        let accepted: Vec<&str> = posted
            .iter()
            .filter(|(g, _)| g == group)
            .map(|(_, fingerprint)| fingerprint.as_str())
            .collect();
        assert_eq!(arrived, accepted, "{group} in acceptance order");
    }
    let metrics = harness.metrics();
    assert!(
        !metrics
            .lines()
            .filter(|line| !line.starts_with('#'))
            .any(|line| line.rsplit(' ').next().is_some_and(|v| v.starts_with('-'))),
        "no negative age or duration after the steps:\n{metrics}"
    );
    harness.stop().await;
}

/// Issue 16, item 4: one notification of 60,000 alerts wrote 60,011 audit records. Past
/// MAX_ALERTS_AUDITED the alerts share one summary record; every alert is still enriched and
/// delivered.
#[tokio::test]
async fn alerts_past_the_audited_number_share_one_summary_record() {
    let receiver = FakeUpstream::start(vec![json(200, "{}")]).await;
    let mut settings = config(&receiver.url, None);
    settings.max_body_bytes = 4 << 20;
    let harness = Harness::start(settings);
    let count = crate::alerts::router::MAX_ALERTS_AUDITED + 50;
    let alerts: Vec<String> = (0..count)
        .map(|i| {
            format!(
                r#"{{"status": "firing", "labels": {{"alertname": "Many", "job": "api", "severity": "critical", "instance": "i{i}"}}, "annotations": {{}}, "startsAt": "2026-11-22T09:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "m{i}"}}"#
            )
        })
        .collect();
    let start = FIRING.find("\"alerts\": [").expect("alerts");
    let end = FIRING.rfind(']').expect("end") + 1;
    let body = format!(
        "{}\"alerts\": [{}]{}",
        &FIRING[..start],
        alerts.join(","),
        &FIRING[end..]
    );
    let (status, reason) = harness.post(&body, Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{reason}");
    eventually_true("an alert.forwarded record", Duration::from_secs(20), || {
        harness
            .records()
            .iter()
            .any(|(kind, _)| kind == "alert.forwarded")
    })
    .await;
    let records = harness.records();
    let enriched: Vec<&(String, String)> = records
        .iter()
        .filter(|(kind, _)| kind == "alert.enriched")
        .collect();
    assert_eq!(
        enriched.len(),
        crate::alerts::router::MAX_ALERTS_AUDITED + 1,
        "one each, then one summary"
    );
    assert_eq!(enriched.last().map(|(_, o)| o.as_str()), Some("summarised"));
    assert_eq!(
        annotations_of(&receiver).len(),
        count,
        "every alert delivered"
    );
    assert!(annotations_of(&receiver)
        .iter()
        .all(|a| a.get("foretell_confidence").is_some()));
    // No route for any of them: one `alert.suppressed` record each up to the limit, then one.
    let unrouted = body
        .replace("\"job\": \"api\", \"severity\": \"critical\", ", "")
        .replace("\"fingerprint\": \"m", "\"fingerprint\": \"u");
    let (status, reason) = harness.post(&unrouted, Some("s3cret")).await;
    assert_eq!(status, StatusCode::OK, "{reason}");
    let limit = crate::alerts::router::MAX_ALERTS_AUDITED;
    eventually_true(
        "limit + 1 alert.suppressed records",
        Duration::from_secs(20),
        || {
            harness
                .records()
                .iter()
                .filter(|(kind, _)| kind == "alert.suppressed")
                .count()
                == limit + 1
        },
    )
    .await;
    harness.stop().await;
}

/// Issue 23, item 4: an alert carries the same target's other unusual signals, and its own
/// series' peer verdict.
#[tokio::test]
async fn an_alert_lists_the_same_instance_s_other_unusual_signals_and_its_peer_verdict() {
    let mut errors = tracked_snapshot();
    errors.series[0].peer = Some(foretell_core::peers::PeerVerdict {
        score: 2.4,
        outlier: true,
        group_size: 12,
    });
    let mut cpu = tracked_snapshot();
    cpu.query = "cpu".into();
    cpu.series = ["a", "b"]
        .iter()
        .map(|instance| {
            SeriesOutput::new(
                export_labels(
                    "cpu",
                    &Labels::from_pairs([
                        ("__name__", "node_cpu_utilisation"),
                        ("instance", instance),
                    ]),
                ),
                tracked_snapshot().series.remove(0).state,
            )
        })
        .collect();
    let snapshot = Arc::new(SnapshotCell::default());
    snapshot.publish(errors);
    snapshot.publish(cpu);
    let sources = assess::Sources::new(snapshot, &[], None, GraphLinks::default());
    let alert = foretell_core::alerts::webhook::Alert {
        status: foretell_core::alerts::webhook::AlertStatus::Firing,
        labels: [
            ("alertname", "HighErrors"),
            ("job", "api"),
            ("instance", "a"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        annotations: BTreeMap::new(),
        starts_at_ms: 0,
        ends_at_ms: None,
        generator_url: String::new(),
        fingerprint: "f".into(),
    };
    let mut assessor = assess::Assessor::new(&sources, crate::clock::system().now_ms());
    let annotations = assessor.assess(&alert).await.annotations;
    assert_eq!(
        annotations.get("foretell_related").map(String::as_str),
        Some("also unusual on instance=\"a\": node_cpu_utilisation (query cpu) 12.0σ above its baseline"),
        "{annotations:?}"
    );
    assert_eq!(
        annotations.get("foretell_peer_outlier").map(String::as_str),
        Some("an outlier among 12 peers (score 2.4; 1 is the group's boundary)")
    );
}
