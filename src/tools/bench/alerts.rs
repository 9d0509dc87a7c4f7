//! `foretell bench enrichment`: what enrichment adds to an alert's way through foretell, under
//! a steady load, measured on the real path (HTTP webhook, durable outbox, router, forwarder,
//! HTTP receiver), all on 127.0.0.1.
//!
//! Four phases send the same number of notifications at the same rate, each to a fresh
//! outbox: **baseline** (alerts on series foretell cannot find: assessed as `unavailable` at
//! once, so everything but the assessment is measured), **tracked** (alerts on series of a
//! snapshot of `tracked_series` series), **on-demand** (alerts on series foretell does not
//! track, each from a rule of its own: every alert makes foretell query Prometheus, fit a model
//! and replay it), **one-rule** (the same, all alerts from one rule: within a step they share
//! one query, as in an alert storm; each alert still gets its own fit). The
//! latency of a notification is from its POST to its arrival at the receiver; what enrichment
//! adds is a phase's percentile minus the baseline's. Bounded: `notifications` per phase and
//! `time_limit` per phase.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use foretell_core::labels::METRIC_NAME;
use foretell_core::model::{Band, Excursion};
use foretell_core::snapshot::{export_labels, QueryOutput, SeriesOutput, SeriesState};
use foretell_core::Labels;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::alerts::{AlertPath, GraphLinks};
use crate::clock::{Clock, Stopwatch};
use crate::exporter::telemetry::Telemetry;
use crate::graph::Grapher;
use crate::pipeline::SnapshotCell;
use crate::reader::{PrometheusReader, RangeQuery};
use crate::server::{self, AppState};

/// Series the fake Prometheus returns for the on-demand expression; alerts pick one each.
const ON_DEMAND_SERIES: usize = 20;
const METRIC: &str = "bench_errors";
const ANY_LOOPBACK_PORT: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

#[derive(Clone, Debug)]
pub struct BenchSettings {
    /// Folder for the scratch outboxes (use the disk the real one will live on).
    pub dir: PathBuf,
    pub notifications: usize,
    /// Notifications sent per second (open loop: sent on schedule, whatever the answers).
    pub rate: f64,
    pub tracked_series: usize,
    /// A real Prometheus for the on-demand phase, with the expression to ask it; `None`: an
    /// in-process one answering at once (foretell's own cost only).
    pub prometheus: Option<(String, String)>,
    pub time_limit: Duration,
}

/// Latency percentiles of one phase, in milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct PhaseReport {
    pub name: &'static str,
    pub sent: usize,
    pub delivered: usize,
    pub acknowledged_p50_ms: f64,
    pub acknowledged_p99_ms: f64,
    pub delivered_p50_ms: f64,
    pub delivered_p99_ms: f64,
    pub delivered_max_ms: f64,
    /// Alerts that came out with a number as confidence (the rest: `unavailable`).
    pub with_confidence: usize,
    /// Why the first alert without a confidence had none.
    pub unavailable_reason: Option<String>,
}

/// The `p`-th percentile (0..=100) of `values` by the nearest-rank method; NaN when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A tracked snapshot of `count` series of `bench_errors`, a tenth of them in an excursion.
pub(crate) fn tracked_snapshot(count: usize, now_ms: i64) -> QueryOutput {
    let series = (0..count)
        .map(|i| {
            let source = Labels::from_pairs([
                ("__name__", METRIC.to_owned()),
                ("instance", format!("t{i}")),
                ("job", "bench".to_owned()),
            ]);
            let excursion = if i % 10 == 0 {
                Excursion {
                    length: 12,
                    outside: 10,
                    peak_sigmas: 7.5,
                    peak_probability: 0.999,
                    latest_sigmas: 6.0,
                    direction: 1,
                    ..Excursion::default()
                }
            } else {
                Excursion::default()
            };
            SeriesOutput::new(
                export_labels("bench", &source),
                SeriesState::Ready {
                    band: Band {
                        expected: 10.0,
                        lower: 8.0,
                        upper: 12.0,
                    },
                    score: Some(if i % 10 == 0 { 4.0 } else { 0.3 }),
                    probability: if i % 10 == 0 { 0.999 } else { 0.2 },
                    forecasts: vec![Band {
                        expected: 10.5,
                        lower: 7.0,
                        upper: 14.0,
                    }],
                    threshold_eta_seconds: None,
                    excursion,
                },
            )
        })
        .collect();
    QueryOutput {
        query: "bench".into(),
        evaluated_at_ms: now_ms,
        horizons: vec!["1h".into()],
        series,
    }
}

/// A Prometheus answering every range query with [`ON_DEMAND_SERIES`] noisy series on the
/// asked grid, each ending in a step up (the incident the alerts are about).
fn fake_prometheus(request: http::Request<Bytes>) -> (u16, String) {
    let parameters = crate::tools::loopback::parameters(&request);
    let number = |name: &str| parameters.get(name).and_then(|v| v.parse::<f64>().ok());
    let (start, end) = (number("start").unwrap_or(0.0), number("end").unwrap_or(0.0));
    let step = number("step").unwrap_or(60.0).max(1.0);
    let points = (((end - start) / step).floor() as usize + 1).min(11_000);
    let result: Vec<String> = (0..ON_DEMAND_SERIES)
        .map(|s| {
            let values: Vec<String> = (0..points)
                .map(|i| {
                    let noise = ((i * 7919 + s * 104_729) % 23) as f64 / 23.0;
                    let incident = if i + 10 >= points { 8.0 } else { 0.0 };
                    format!("[{},\"{}\"]", start + i as f64 * step, 10.0 + noise + incident)
                })
                .collect();
            format!(
                r#"{{"metric":{{"__name__":"{METRIC}","instance":"d{s}","job":"bench"}},"values":[{}]}}"#,
                values.join(",")
            )
        })
        .collect();
    (
        200,
        format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{}]}}}}"#,
            result.join(",")
        ),
    )
}

/// When a notification reached the receiver (since the phase began), and its confidence or why
/// it had none.
type Arrival = (Duration, Result<(), String>);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Baseline,
    Tracked,
    OnDemand,
    OneRule,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Baseline => "baseline",
            Phase::Tracked => "tracked",
            Phase::OnDemand => "on-demand",
            Phase::OneRule => "one-rule",
        }
    }

    /// One alert on the series this phase is about, as Alertmanager sends it; on-demand alerts
    /// take the labels of `on_demand` in turn.
    fn notification(
        self,
        index: usize,
        tracked: usize,
        expr: &str,
        on_demand: &[Labels],
    ) -> String {
        let mut labels = serde_json::Map::new();
        let instance = match self {
            Phase::Baseline => format!("nowhere{index}"),
            Phase::Tracked => format!("t{}", (index * 7) % tracked.max(1)),
            Phase::OnDemand | Phase::OneRule => {
                let series = &on_demand[index % on_demand.len().max(1)];
                for (name, value) in series.iter().filter(|(n, _)| *n != METRIC_NAME) {
                    labels.insert(name.to_owned(), value.into());
                }
                series.get("instance").unwrap_or_default().to_owned()
            }
        };
        labels.insert("alertname".into(), "BenchErrors".into());
        labels.insert("instance".into(), instance.into());
        labels.entry("job").or_insert_with(|| "bench".into());
        labels.insert("severity".into(), "page".into());
        // `+ 0 * N` changes nothing but the text: a rule of its own, a query of its own.
        let rule = match self {
            Phase::OneRule => format!("{expr} > 10"),
            _ => format!("{expr} + 0 * {index} > 10"),
        };
        let generator: String = url::form_urlencoded::byte_serialize(rule.as_bytes()).collect();
        serde_json::json!({
            "version": "4",
            "status": "firing",
            "receiver": "foretell",
            "groupKey": format!("{{}}:{{bench=\"{}-{index}\"}}", self.name()),
            "truncatedAlerts": 0,
            "groupLabels": {"alertname": "BenchErrors"},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.bench:9093",
            "alerts": [{
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": "errors up"},
                "startsAt": foretell_core::timestamp::format_rfc3339(crate::clock::system().now_ms() - 300_000),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": format!("http://prometheus.bench:9090/graph?g0.expr={generator}&g0.tab=1"),
                "fingerprint": format!("{index:016x}"),
            }],
        })
        .to_string()
    }
}

/// Runs the three phases and reports each.
pub async fn run(settings: &BenchSettings) -> Result<Vec<PhaseReport>, String> {
    let mut reports = Vec::new();
    for phase in [
        Phase::Baseline,
        Phase::Tracked,
        Phase::OnDemand,
        Phase::OneRule,
    ] {
        reports.push(run_phase(settings, phase).await?);
    }
    Ok(reports)
}

async fn run_phase(settings: &BenchSettings, phase: Phase) -> Result<PhaseReport, String> {
    let stop = CancellationToken::new();
    let arrivals: Arc<Mutex<HashMap<String, Arrival>>> = Arc::default();
    // Every time of the phase is measured from here.
    let epoch = Stopwatch::start();
    let sink = {
        let arrivals = Arc::clone(&arrivals);
        crate::tools::loopback::serve(
            move |request| {
                let body: serde_json::Value =
                    serde_json::from_slice(request.body()).unwrap_or_default();
                let key = body["groupKey"].as_str().unwrap_or_default().to_owned();
                let annotations = &body["alerts"][0]["annotations"];
                let numeric = match annotations["foretell_confidence"].as_str() {
                    Some(c) if c.parse::<f64>().is_ok() => Ok(()),
                    _ => Err(annotations["foretell_confidence_reason"]
                        .as_str()
                        .unwrap_or("no foretell_confidence annotation")
                        .to_owned()),
                };
                arrivals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(key)
                    .or_insert((epoch.elapsed(), numeric));
                (200, String::new())
            },
            stop.clone(),
            ANY_LOOPBACK_PORT,
        )
        .await
        .map_err(|e| format!("cannot start the receiver: {e}"))?
    };
    let (prometheus_url, expr) = match &settings.prometheus {
        Some((url, expr)) => (url.clone(), expr.clone()),
        None => {
            let address =
                crate::tools::loopback::serve(fake_prometheus, stop.clone(), ANY_LOOPBACK_PORT)
                    .await
                    .map_err(|e| format!("cannot start the fake Prometheus: {e}"))?;
            (format!("http://{address}"), METRIC.to_owned())
        }
    };
    let phase_dir = settings.dir.join(phase.name());
    // A fresh outbox per phase: one phase's backlog must not slow the next.
    let _ = std::fs::remove_dir_all(&phase_dir);
    std::fs::create_dir_all(&phase_dir)
        .map_err(|e| format!("cannot create {}: {e}", phase_dir.display()))?;
    let config = bench_config(&phase_dir, &prometheus_url, &sink, phase)?;
    let clock: Arc<dyn Clock> = crate::clock::system();
    let telemetry = Arc::new(Telemetry::new("bench"));
    let registry = Arc::new(crate::exporter::registry::Registry::with(telemetry.clone()));
    let audit_settings = config
        .audit
        .clone()
        .ok_or("the bench config has no audit")?;
    let database = Arc::new(
        crate::audit::log::start_writer(
            &audit_settings.path,
            audit_settings.keys.clone(),
            Arc::clone(&telemetry),
            clock.now_ms(),
        )
        .map_err(|e| e.to_string())?,
    );
    let snapshot = Arc::new(SnapshotCell::default());
    if phase == Phase::Tracked {
        snapshot.publish(tracked_snapshot(settings.tracked_series, clock.now_ms()));
    }
    let reader = || PrometheusReader::new(&config.prometheus).map_err(|e| e.to_string());
    let alerts_config = config
        .alerts
        .clone()
        .ok_or("the bench config has no alerts")?;
    let alerts = Arc::new(AlertPath::new(
        alerts_config,
        Arc::clone(&database),
        audit_settings.path.clone(),
        Arc::clone(&clock),
        Arc::clone(&snapshot),
        &config.queries,
        Some(reader()?),
        GraphLinks {
            base: url::Url::parse("http://foretell.bench:9896/").ok(),
            signer: Some(foretell_core::chart::link::LinkSigner::new(
                &audit_settings.keys,
            )),
        },
        &registry,
    ));
    let on_demand = if matches!(phase, Phase::OnDemand | Phase::OneRule) {
        on_demand_series(&reader()?, &expr, clock.now_ms()).await?
    } else {
        Vec::new()
    };
    let tasks = alerts.start(&stop);
    let (reload, _reload_requests) = tokio::sync::mpsc::channel(1);
    let state = Arc::new(AppState {
        alerts: Some(Arc::clone(&alerts)),
        registry: Arc::clone(&registry),
        ..AppState::new(
            snapshot,
            telemetry,
            reload,
            Arc::new(Grapher::new(
                reader()?,
                &config.queries,
                None,
                Arc::clone(&clock),
            )),
        )
    });
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    let webhook = format!(
        "http://{}{}",
        listener.local_addr().map_err(|e| e.to_string())?,
        server::WEBHOOK_PATH
    );
    let serving = tokio::spawn(server::serve(
        listener,
        Arc::clone(&state),
        server::web_config::WebConfig::default(),
        stop.clone(),
        Duration::from_secs(1),
    ));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let started = epoch.elapsed();
    let deadline = started + settings.time_limit;
    let interval = Duration::from_secs_f64(1.0 / settings.rate.max(0.001));
    let mut sends = Vec::new();
    for index in 0..settings.notifications {
        let due = started + interval.mul_f64(index as f64);
        if due >= deadline {
            break;
        }
        tokio::time::sleep(due.saturating_sub(epoch.elapsed())).await;
        let body = phase.notification(index, settings.tracked_series, &expr, &on_demand);
        let key = format!("{{}}:{{bench=\"{}-{index}\"}}", phase.name());
        let request = client
            .post(&webhook)
            .header("content-type", "application/json")
            .header("authorization", "Bearer bench")
            .body(body);
        sends.push(tokio::spawn(async move {
            let sent = epoch.elapsed();
            let ok = request
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            (key, sent, ok.then(|| epoch.elapsed().saturating_sub(sent)))
        }));
    }
    let mut sent_at = HashMap::new();
    let mut acknowledged = Vec::new();
    for send in sends {
        if let Ok((key, sent, Some(ack))) = send.await {
            acknowledged.push(ack.as_secs_f64() * 1000.0);
            sent_at.insert(key, sent);
        }
    }
    // Wait for the deliveries, bounded by the phase's time limit (and a few seconds more).
    let wait_until = deadline.max(epoch.elapsed()) + Duration::from_secs(5);
    while epoch.elapsed() < wait_until {
        let arrived = arrivals.lock().unwrap_or_else(|e| e.into_inner()).len();
        if arrived >= sent_at.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let arrived = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let delivered: Vec<f64> = sent_at
        .iter()
        .filter_map(|(key, sent)| {
            arrived
                .get(key)
                .map(|(at, _)| at.saturating_sub(*sent).as_secs_f64() * 1000.0)
        })
        .collect();
    let with_confidence = arrived
        .values()
        .filter(|(_, numeric)| numeric.is_ok())
        .count();
    let unavailable_reason = arrived
        .values()
        .find_map(|(_, numeric)| numeric.clone().err());
    stop.cancel();
    let _ = serving.await;
    for task in tasks {
        let _ = task.await;
    }
    database.close();
    Ok(PhaseReport {
        name: phase.name(),
        sent: sent_at.len(),
        delivered: delivered.len(),
        acknowledged_p50_ms: percentile(&acknowledged, 50.0),
        acknowledged_p99_ms: percentile(&acknowledged, 99.0),
        delivered_p50_ms: percentile(&delivered, 50.0),
        delivered_p99_ms: percentile(&delivered, 99.0),
        delivered_max_ms: percentile(&delivered, 100.0),
        with_confidence,
        unavailable_reason,
    })
}

/// The series the on-demand alerts are about: up to [`ON_DEMAND_SERIES`] of what `expr`
/// returns now.
async fn on_demand_series(
    reader: &PrometheusReader,
    expr: &str,
    now_ms: i64,
) -> Result<Vec<Labels>, String> {
    let step_ms = 60_000;
    let end_ms = now_ms - now_ms.rem_euclid(step_ms);
    let answer = reader
        .query_range(&RangeQuery {
            expr,
            start_ms: end_ms - 5 * step_ms,
            end_ms,
            step_ms,
        })
        .await
        .map_err(|e| format!("cannot list the series of `{expr}`: {e}"))?;
    let series: Vec<Labels> = answer
        .series
        .into_iter()
        .take(ON_DEMAND_SERIES)
        .map(|(labels, _)| labels)
        .collect();
    if series.is_empty() {
        return Err(format!(
            "`{expr}` returns no series now; on-demand alerts need some"
        ));
    }
    Ok(series)
}

/// The configuration of one phase, through the real loader (so it is validated as users' is).
fn bench_config(
    dir: &Path,
    prometheus: &str,
    sink: &SocketAddr,
    phase: Phase,
) -> Result<crate::config::Config, String> {
    let keys = dir.join("audit.keys");
    std::fs::write(&keys, format!("bench:{}\n", "42".repeat(32)))
        .map_err(|e| format!("cannot write {}: {e}", keys.display()))?;
    let token = dir.join("webhook.token");
    std::fs::write(&token, "bench\n")
        .map_err(|e| format!("cannot write {}: {e}", token.display()))?;
    let on_demand = if matches!(phase, Phase::OnDemand | Phase::OneRule) {
        "  on_demand:\n    timeout: 2s\n"
    } else {
        "  on_demand:\n    enabled: false\n"
    };
    let text = format!(
        "prometheus:\n  url: {prometheus}\n  timeout: 5s\n\
         audit:\n  path: {}\n  key_file: {}\n  verify_interval: 'off'\n\
         alerts:\n  bearer_token_file: {}\n{on_demand}  receivers:\n    - name: sink\n      url: http://{sink}/hook\n  routes:\n    - receiver: sink\n\
         queries:\n  - name: bench\n    expr: {METRIC}\n",
        dir.join("audit.db").display(),
        keys.display(),
        token.display(),
    );
    crate::config::parse(
        &text,
        &dir.join("bench.yml"),
        &crate::config::SystemEnvironment,
    )
    .map_err(|e| format!("the bench configuration is invalid: {e}"))
}

/// The report as a table, with what each phase adds to the baseline.
pub fn render(reports: &[PhaseReport]) -> String {
    let mut out = format!(
        "{:<10} {:>6} {:>9} {:>9} {:>9} {:>11} {:>11} {:>11} {:>12}\n",
        "phase",
        "sent",
        "delivered",
        "ack p50",
        "ack p99",
        "deliv. p50",
        "deliv. p99",
        "deliv. max",
        "p99 - base"
    );
    let base = reports
        .iter()
        .find(|r| r.name == "baseline")
        .map_or(f64::NAN, |r| r.delivered_p99_ms);
    for r in reports {
        let reason = match (&r.unavailable_reason, r.with_confidence) {
            (Some(reason), 1..) => format!("; others unavailable: {reason}"),
            (Some(reason), 0) => format!("; unavailable: {reason}"),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:<10} {:>6} {:>9} {:>7.1}ms {:>7.1}ms {:>9.1}ms {:>9.1}ms {:>9.1}ms {:>10.1}ms   ({} with a confidence{reason})\n",
            r.name,
            r.sent,
            r.delivered,
            r.acknowledged_p50_ms,
            r.acknowledged_p99_ms,
            r.delivered_p50_ms,
            r.delivered_p99_ms,
            r.delivered_max_ms,
            r.delivered_p99_ms - base,
            r.with_confidence
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.0), 1.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[tokio::test]
    async fn a_short_run_delivers_every_notification_of_every_phase() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = BenchSettings {
            dir: dir.path().to_owned(),
            notifications: 6,
            rate: 50.0,
            tracked_series: 100,
            prometheus: None,
            time_limit: Duration::from_secs(20),
        };
        let reports = run(&settings).await.expect("runs");
        let names: Vec<&str> = reports.iter().map(|r| r.name).collect();
        assert_eq!(names, ["baseline", "tracked", "on-demand", "one-rule"]);
        for report in &reports {
            assert_eq!((report.sent, report.delivered), (6, 6), "{report:?}");
            assert!(
                report.delivered_p99_ms >= report.delivered_p50_ms,
                "{report:?}"
            );
        }
        // Only the tracked and on-demand phases find a series to assess.
        assert_eq!(reports[0].with_confidence, 0, "{:?}", reports[0]);
        assert_eq!(reports[1].with_confidence, 6, "{:?}", reports[1]);
        assert_eq!(reports[2].with_confidence, 6, "{:?}", reports[2]);
        assert_eq!(reports[3].with_confidence, 6, "{:?}", reports[3]);
        assert!(
            reports[0]
                .unavailable_reason
                .as_deref()
                .is_some_and(|r| r.contains("no tracked series")),
            "{:?}",
            reports[0]
        );
        let table = render(&reports);
        assert_eq!(table.lines().count(), 5, "{table}");
    }
}
