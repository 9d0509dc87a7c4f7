//! `foretell demo`: the main job on a fresh machine with nothing to set up. foretell runs for
//! real (the same `run` as in production) against a built-in Prometheus API serving a bundled
//! synthetic dataset: twelve `demo_requests_per_second` series of a web service with daily
//! cycles and three days of history, one of which (`web-a`) gets an incident at the first whole
//! minute at least a minute and a half after the start (the demo prints when), and five
//! `demo_request_latency_seconds` series of sibling instances compared as peers, one of which
//! (`api-4`) slowly drifts away from the others. The alert path is on: a sample alert is posted
//! to foretell's webhook as Alertmanager would post it, and a built-in receiver prints what
//! comes back enriched.
//!
//! The built-in API answers `query_range` for expressions naming one of the two metrics (every
//! series of it; foretell picks what it needs) and nothing else: it is a data source for the
//! demo, not a PromQL engine. `scripts/quickstart.sh` shows the same with Debian's Prometheus.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use foretell_core::exposition::format_value;
use foretell_core::synthetic::{self, DemoSeries, Spike, DRIFTING_INSTANCE, PEER_METRIC};
use tokio_util::sync::CancellationToken;

use crate::clock::{self, Stopwatch};

const METRIC: &str = "demo_requests_per_second";
const SERIES: usize = 12;
/// The incident on web-a: at least how long after the demo starts it begins, how long it lasts
/// and how high it goes. It begins on the query's grid ([`STEP_SECS`]), so the first evaluation
/// after that instant, within `evaluation_interval` (15 s), sees it: the time printed at the
/// start is the time it shows.
const INCIDENT_AFTER_SECS: i64 = 90;
/// The demo query's step.
const STEP_SECS: i64 = 60;
const INCIDENT_SECS: i64 = 600;
const INCIDENT_HEIGHT: f64 = 60.0;
const ANY_LOOPBACK_PORT: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

pub struct DemoSettings {
    pub listen: SocketAddr,
    /// Where the configuration, keys and audit log go (a fresh temporary folder by default).
    pub dir: Option<PathBuf>,
}

/// When the incident begins for a demo started at `started_secs`: the first grid instant at
/// least `INCIDENT_AFTER_SECS` later.
fn incident_start_secs(started_secs: i64) -> i64 {
    (started_secs + INCIDENT_AFTER_SECS + STEP_SECS - 1).div_euclid(STEP_SECS) * STEP_SECS
}

/// The demo's series, with the incident placed relative to `started_secs`.
fn dataset(started_secs: i64) -> Vec<DemoSeries> {
    let start = incident_start_secs(started_secs);
    let incident = Spike {
        start_secs: start as f64,
        end_secs: (start + INCIDENT_SECS) as f64,
        height: INCIDENT_HEIGHT,
    };
    let mut set = synthetic::demo_set(SERIES, started_secs, Some(incident));
    set.extend(synthetic::demo_peer_set(started_secs));
    set
}

/// Answers `query_range` (GET or POST form) with every demo series of the metric the
/// expression names on the asked grid, the way Prometheus would for that metric's selector;
/// other expressions get an empty result, other paths 404.
fn answer(series: &[DemoSeries], request: &http::Request<Bytes>) -> (u16, String) {
    if request.uri().path() != "/api/v1/query_range" {
        return (
            404,
            r#"{"status":"error","errorType":"not_found","error":"the demo serves only /api/v1/query_range"}"#.into(),
        );
    }
    let parameters = crate::tools::loopback::parameters(request);
    let number = |name: &str| parameters.get(name).and_then(|v| v.parse::<f64>().ok());
    let (Some(start), Some(end), Some(step)) = (number("start"), number("end"), number("step"))
    else {
        return (
            400,
            r#"{"status":"error","errorType":"bad_data","error":"start, end and step are needed"}"#
                .into(),
        );
    };
    let expr = parameters.get("query").map_or("", String::as_str);
    let points = ((end - start) / step.max(1.0)).floor() as i64 + 1;
    if !(1..=11_000).contains(&points) {
        return (
            400,
            r#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries"}"#.into(),
        );
    }
    let mut result = Vec::new();
    for s in series.iter().filter(|s| expr.contains(s.metric.as_str())) {
        let labels: Vec<String> = std::iter::once(format!("\"__name__\":\"{}\"", s.metric))
            .chain(
                s.labels
                    .iter()
                    .map(|(name, value)| format!("\"{name}\":\"{value}\"")),
            )
            .collect();
        let values: Vec<String> = (0..points)
            .map(|i| {
                let t = start + i as f64 * step;
                format!("[{},\"{}\"]", format_value(t), format_value(s.value_at(t)))
            })
            .collect();
        result.push(format!(
            "{{\"metric\":{{{}}},\"values\":[{}]}}",
            labels.join(","),
            values.join(",")
        ));
    }
    (
        200,
        format!(
            "{{\"status\":\"success\",\"data\":{{\"resultType\":\"matrix\",\"result\":[{}]}}}}",
            result.join(",")
        ),
    )
}

/// Prints each enriched alert as it arrives, the way a chat message would show it.
fn receive(request: &http::Request<Bytes>) -> (u16, String) {
    let body: serde_json::Value = serde_json::from_slice(request.body()).unwrap_or_default();
    for alert in body["alerts"].as_array().into_iter().flatten() {
        let annotations = &alert["annotations"];
        let get = |name: &str| annotations[name].as_str().unwrap_or("-").to_owned();
        println!(
            "\n[demo receiver] {} {} ({})\n  confidence:  {}\n  explanation: {}\n  baseline:    {} (band {})\n  forecast:    {}\n  chart:       {}",
            alert["status"].as_str().unwrap_or(""),
            alert["labels"]["alertname"].as_str().unwrap_or(""),
            alert["labels"]["instance"].as_str().unwrap_or(""),
            get("foretell_confidence"),
            annotations["foretell_explanation"]
                .as_str()
                .or_else(|| annotations["foretell_confidence_reason"].as_str())
                .unwrap_or("-"),
            get("foretell_baseline"),
            get("foretell_band"),
            get("foretell_forecast"),
            get("foretell_graph_url"),
        );
    }
    (200, String::new())
}

/// The configuration the demo runs with (through the real loader).
fn config_text(
    dir: &Path,
    prometheus: SocketAddr,
    listen: SocketAddr,
    receiver: SocketAddr,
) -> String {
    format!(
        "# Written by `foretell demo`.\n\
         prometheus:\n  url: http://{prometheus}\n  timeout: 5s\n\
         server:\n  listen_address: {listen}\n  enable_lifecycle: true\n\
         audit:\n  path: {}\n  key_file: {}\n\
         alerts:\n  on_demand:\n    history: 1d\n  receivers:\n    - name: demo-receiver\n      url: http://{receiver}/\n  routes:\n    - receiver: demo-receiver\n\
         queries:\n  - name: demo\n    expr: {METRIC}\n    step: {STEP_SECS}s\n    history: 3d\n    evaluation_interval: 15s\n    unit: requests/s\n    model:\n      seasonality: 1d\n      horizons: [15m, 1h]\n\
         \x20 - name: latency\n    expr: {PEER_METRIC}\n    step: {STEP_SECS}s\n    history: 3d\n    evaluation_interval: 15s\n    unit: seconds\n    model:\n      seasonality: 1d\n    peers:\n      by: [job]\n      method: mad\n      window: 1h\n",
        dir.join("audit.db").display(),
        dir.join("audit.keys").display(),
    )
}

/// A notification as Alertmanager sends it, for an alert on web-a.
pub fn sample_alert(now_ms: i64, starts_ms: i64) -> String {
    let starts = foretell_core::timestamp::format_rfc3339(starts_ms);
    serde_json::json!({
        "version": "4",
        "receiver": "foretell",
        "status": "firing",
        "groupKey": format!("{{}}:{{alertname=\"DemoTrafficHigh\"}}/{now_ms}"),
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": "DemoTrafficHigh"},
        "commonLabels": {"alertname": "DemoTrafficHigh", "job": "demo"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.demo:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "DemoTrafficHigh", "instance": "web-a", "job": "demo", "severity": "page"},
            "annotations": {"summary": "web-a serves more requests than usual"},
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.demo:9090/graph?g0.expr=demo_requests_per_second+%3E+80&g0.tab=1",
            "fingerprint": format!("{:016x}", now_ms),
        }],
    })
    .to_string()
}

/// Posts the sample alert to foretell's webhook; the demo receiver prints the result.
async fn post_sample(listen: SocketAddr, starts_ms: i64) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .post(format!("http://{listen}/alertmanager/webhook"))
        .header("content-type", "application/json")
        .body(sample_alert(clock::system().now_ms(), starts_ms))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {}", response.status()))
    }
}

/// Waits until `url` answers 200 with a body containing `wanted`, at most `within`.
async fn wait_for(url: &str, wanted: &str, within: Duration) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .no_proxy()
        .build();
    let Ok(client) = client else { return false };
    let waiting = Stopwatch::start();
    while waiting.elapsed() < within {
        if let Ok(response) = client.get(url).send().await {
            if response.status().is_success()
                && response
                    .text()
                    .await
                    .is_ok_and(|body| body.contains(wanted))
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

/// Runs the demo until Ctrl-C (foretell's own signal handling ends it).
pub async fn run(settings: DemoSettings) -> Result<(), String> {
    let started_ms = clock::system().now_ms();
    let stop = CancellationToken::new();
    let series = Arc::new(dataset(started_ms / 1000));
    let data = Arc::clone(&series);
    let prometheus = crate::tools::loopback::serve(
        move |request| answer(&data, &request),
        stop.clone(),
        ANY_LOOPBACK_PORT,
    )
    .await
    .map_err(|e| format!("cannot start the demo data source: {e}"))?;
    let receiver =
        crate::tools::loopback::serve(|request| receive(&request), stop.clone(), ANY_LOOPBACK_PORT)
            .await
            .map_err(|e| format!("cannot start the demo receiver: {e}"))?;
    let (dir, _temporary) = match settings.dir {
        Some(dir) => (dir, None),
        None => {
            let temporary =
                tempfile::tempdir().map_err(|e| format!("cannot make a folder: {e}"))?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let keys = dir.join("audit.keys");
    if !keys.exists() {
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", fastrand::u8(..)))
            .collect();
        std::fs::write(&keys, format!("demo:{secret}\n"))
            .map_err(|e| format!("cannot write {}: {e}", keys.display()))?;
    }
    let config_path = dir.join("foretell.yml");
    std::fs::write(
        &config_path,
        config_text(&dir, prometheus, settings.listen, receiver),
    )
    .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let config = crate::config::load_file(&config_path, &crate::config::SystemEnvironment)
        .map_err(|e| e.to_string())?;
    let listen = settings.listen;
    let audit_db = dir.join("audit.db").display().to_string();
    let audit_keys = keys.display().to_string();
    let incident_secs = incident_start_secs(started_ms / 1000);
    println!(
        "foretell demo: {SERIES} series of {METRIC} and 5 of {PEER_METRIC} (3 days of history, daily cycle) from a built-in data source;\n\
         an incident starts on instance web-a at {} UTC, {} s from now, and lasts {} minutes;\n\
         the latency of instance {DRIFTING_INSTANCE} has been drifting away from its 4 peers for two hours.\n\
         configuration and audit log: {}\n",
        &foretell_core::timestamp::format_rfc3339(incident_secs * 1000)[11..19],
        (incident_secs * 1000 - started_ms).div_euclid(1000),
        INCIDENT_SECS / 60,
        dir.display()
    );
    let guide = tokio::spawn(async move {
        let base = format!("http://{listen}");
        // Ready, and every series has its model: the first cycle loaded and fitted them.
        let all_ready = format!("foretell_series_ready{{query=\"demo\"}} {SERIES}\n");
        if !wait_for(
            &format!("{base}/metrics"),
            &all_ready,
            Duration::from_secs(90),
        )
        .await
        {
            eprintln!("foretell demo: the models were not ready within 90 s; see the log above");
            return;
        }
        println!(
            "\nforetell is ready:\n  status page   {base}/\n  predictions   {base}/metrics\n  a chart       {base}/graph?query=demo&series=%7Binstance%3D%22web-a%22%2C+job%3D%22demo%22%7D\n  peer outlier  {base}/status/series?query=latency&series=%7Binstance%3D%22{DRIFTING_INSTANCE}%22%2C+job%3D%22demo%22%7D\n  audit log     foretell audit verify --db {} --key-file {}\n\nPosting a sample alert on web-a to {base}/alertmanager/webhook; the demo receiver prints it enriched.",
            audit_db, audit_keys,
        );
        if let Err(error) = post_sample(listen, clock::system().now_ms() - 60_000).await {
            eprintln!("foretell demo: the sample alert was not accepted: {error}");
        }
        // Again once the incident is on, so the two confidences can be compared.
        let incident_ms = (incident_secs + 150) * 1000;
        let wait = (incident_ms - clock::system().now_ms()).max(0) as u64;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        println!("\nThe incident on web-a is under way; posting the sample alert again.");
        if let Err(error) = post_sample(listen, clock::system().now_ms() - 120_000).await {
            eprintln!("foretell demo: the sample alert was not accepted: {error}");
        }
    });
    let outcome = crate::app::run(
        &config_path,
        config,
        crate::app::Overrides::default(),
        crate::server::web_config::WebConfig::default(),
    )
    .await
    .map_err(|e| e.to_string());
    guide.abort();
    stop.cancel();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str, body: &str) -> http::Request<Bytes> {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Bytes::from(body.to_owned()))
            .expect("request")
    }

    #[test]
    fn the_data_source_answers_range_queries_on_the_grid() {
        let series = dataset(1_800_000_000);
        let (status, body) = answer(
            &series,
            &request(
                "POST",
                "/api/v1/query_range",
                "query=demo_requests_per_second&start=1799999880&end=1800000000&step=60",
            ),
        );
        assert_eq!(status, 200, "{body}");
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("json");
        let result = parsed["data"]["result"].as_array().expect("result");
        assert_eq!(result.len(), SERIES);
        assert_eq!(result[0]["metric"]["instance"], "web-a");
        assert_eq!(result[0]["values"].as_array().expect("values").len(), 3);
        assert_eq!(result[0]["values"][2][0], 1_800_000_000.0);
        // The reader of the real thing decodes it.
        assert!(crate::reader::wire::decode_range(body.as_bytes()).is_ok());
        let (_, other) = answer(
            &series,
            &request(
                "GET",
                "/api/v1/query_range?query=up&start=0&end=60&step=60",
                "",
            ),
        );
        assert!(other.contains("\"result\":[]"), "{other}");
        // The latency query gets the five siblings and nothing else.
        let (_, latency) = answer(
            &series,
            &request(
                "GET",
                &format!("/api/v1/query_range?query={PEER_METRIC}&start=1799999880&end=1800000000&step=60"),
                "",
            ),
        );
        let parsed: serde_json::Value = serde_json::from_str(&latency).expect("json");
        let result = parsed["data"]["result"].as_array().expect("result");
        assert_eq!(result.len(), 5, "{latency}");
        assert!(result
            .iter()
            .all(|r| r["metric"]["__name__"] == PEER_METRIC));
        assert_eq!(answer(&series, &request("GET", "/api/v1/query", "")).0, 404);
        assert_eq!(
            answer(&series, &request("GET", "/api/v1/query_range?query=x", "")).0,
            400
        );
    }

    #[test]
    fn the_incident_is_on_web_a_after_the_start() {
        let started = 1_800_000_000;
        let series = dataset(started);
        let web_a = &series[0];
        let before = web_a.value_at((started + 60) as f64);
        let during = web_a.value_at((started + INCIDENT_AFTER_SECS + 60) as f64);
        assert!(
            during - before > INCIDENT_HEIGHT * 0.8,
            "{before} -> {during}"
        );
    }

    #[test]
    fn the_incident_begins_on_the_first_grid_instant_after_the_announced_delay() {
        // 1_800_000_000 is a whole minute: 90 s later is half past, so the next minute.
        assert_eq!(incident_start_secs(1_800_000_000), 1_800_000_120);
        assert_eq!(incident_start_secs(1_800_000_030), 1_800_000_120);
        assert_eq!(incident_start_secs(1_800_000_031), 1_800_000_180);
        // The grid point at that instant carries the incident; the one before does not.
        let started = 1_800_000_031;
        let web_a = &dataset(started)[0];
        let at = incident_start_secs(started) as f64;
        assert!(web_a.value_at(at) - web_a.value_at(at - 60.0) > INCIDENT_HEIGHT * 0.8);
    }

    #[test]
    fn the_demo_configuration_and_sample_alert_are_valid() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("audit.keys"),
            format!("demo:{}\n", "ab".repeat(32)),
        )
        .expect("keys");
        let text = config_text(
            dir.path(),
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
            "127.0.0.1:3".parse().expect("addr"),
        );
        let config = crate::config::parse(
            &text,
            &dir.path().join("foretell.yml"),
            &crate::config::SystemEnvironment,
        )
        .expect("valid");
        assert_eq!(config.queries.len(), 2);
        let latency = &config.queries[1];
        assert_eq!(latency.expr, PEER_METRIC);
        assert!(
            latency.peers.is_some(),
            "the latency query compares its series with their peers"
        );
        assert!(config.alerts.is_some());
        let alert = sample_alert(1_800_000_000_000, 1_799_999_940_000);
        let parsed =
            foretell_core::alerts::webhook::parse(alert.as_bytes()).expect("valid payload");
        assert_eq!(parsed.alerts[0].labels["instance"], "web-a");
    }
}
