//! `foretell bench metrics`: scrapers hammering the real listener's `/metrics` while it serves
//! a snapshot of many series, for a bounded time. Reports scrapes per second, latency
//! percentiles, the size of a scrape and the process' memory (server and scrapers share it).

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Stopwatch;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::alerts::{percentile, tracked_snapshot};
use crate::exporter::process::resident_bytes as rss_bytes;
use crate::exporter::telemetry::Telemetry;
use crate::pipeline::SnapshotCell;
use crate::server::{serve, AppState};

#[derive(Clone, Debug)]
pub struct MetricsLoadSettings {
    pub series: usize,
    pub clients: usize,
    pub duration: Duration,
    pub gzip: bool,
}

#[derive(Clone, Debug)]
pub struct MetricsLoadReport {
    pub settings: MetricsLoadSettings,
    pub scrapes: usize,
    pub failures: usize,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub bytes_per_scrape: usize,
    pub rss_before: Option<u64>,
    pub rss_peak: Option<u64>,
}

pub async fn run(settings: &MetricsLoadSettings) -> Result<MetricsLoadReport, String> {
    let now_ms = crate::clock::system().now_ms();
    let snapshot = Arc::new(SnapshotCell::default());
    snapshot.publish(tracked_snapshot(settings.series, now_ms));
    let telemetry = Arc::new(Telemetry::new(env!("CARGO_PKG_VERSION")));
    let config = crate::config::parse(
        "prometheus:\n  url: http://127.0.0.1:9\nqueries:\n  - name: bench\n    expr: up\n",
        std::path::Path::new("bench.yml"),
        &crate::config::SystemEnvironment,
    )
    .map_err(|e| e.to_string())?;
    let reader =
        crate::reader::PrometheusReader::new(&config.prometheus).map_err(|e| e.to_string())?;
    let (reload, _reload_requests) = tokio::sync::mpsc::channel(1);
    let state = Arc::new(AppState::new(
        snapshot,
        telemetry,
        reload,
        Arc::new(crate::graph::Grapher::new(
            reader,
            &config.queries,
            None,
            crate::clock::system(),
        )),
    ));
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    let url = format!(
        "http://{}/metrics",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let stop = CancellationToken::new();
    let serving = tokio::spawn(serve(
        listener,
        state,
        crate::server::web_config::WebConfig::default(),
        stop.clone(),
        Duration::from_secs(1),
    ));
    let rss_before = rss_bytes();
    let sampling = CancellationToken::new();
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = rss_bytes().unwrap_or(0);
            while !sampling.is_cancelled() {
                peak = peak.max(rss_bytes().unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_gzip()
        .build()
        .map_err(|e| e.to_string())?;
    let started = Stopwatch::start();
    let duration = settings.duration;
    let scrapers: Vec<_> = (0..settings.clients.max(1))
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            let gzip = settings.gzip;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let (mut failures, mut bytes) = (0, 0);
                while started.elapsed() < duration {
                    let began = Stopwatch::start();
                    let mut request = client.get(&url);
                    if gzip {
                        request = request.header("accept-encoding", "gzip");
                    }
                    match request.send().await {
                        Ok(response) if response.status().is_success() => {
                            match response.bytes().await {
                                Ok(body) => {
                                    bytes = body.len();
                                    latencies.push(began.elapsed().as_secs_f64() * 1000.0);
                                }
                                Err(_) => failures += 1,
                            }
                        }
                        _ => failures += 1,
                    }
                }
                (latencies, failures, bytes)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let (mut failures, mut bytes_per_scrape) = (0, 0);
    for scraper in scrapers {
        let (own, failed, bytes) = scraper.await.map_err(|e| e.to_string())?;
        latencies.extend(own);
        failures += failed;
        bytes_per_scrape = bytes_per_scrape.max(bytes);
    }
    let seconds = started.elapsed().as_secs_f64();
    sampling.cancel();
    let rss_peak = sampler.await.ok();
    stop.cancel();
    let _ = serving.await;
    Ok(MetricsLoadReport {
        settings: settings.clone(),
        scrapes: latencies.len(),
        failures,
        seconds,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: percentile(&latencies, 100.0),
        bytes_per_scrape,
        rss_before,
        rss_peak,
    })
}

pub fn render(report: &MetricsLoadReport) -> String {
    let s = &report.settings;
    let mib = |b: Option<u64>| {
        b.map_or("?".to_owned(), |b| {
            format!("{:.0}", b as f64 / (1 << 20) as f64)
        })
    };
    format!(
        "/metrics of {} series, {} concurrent scrapers{}, {:.0} s: {} scrapes ({:.1}/s), {} failed; latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {:.1} MB per scrape; RSS {} MiB before, {} MiB at the peak\n",
        s.series,
        s.clients,
        if s.gzip { " asking for gzip" } else { "" },
        report.seconds,
        report.scrapes,
        report.scrapes as f64 / report.seconds.max(1e-9),
        report.failures,
        report.p50_ms,
        report.p99_ms,
        report.max_ms,
        report.bytes_per_scrape as f64 / 1e6,
        mib(report.rss_before),
        mib(report.rss_peak),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_short_load_scrapes_without_failures() {
        let settings = MetricsLoadSettings {
            series: 200,
            clients: 2,
            duration: Duration::from_millis(300),
            gzip: true,
        };
        let report = run(&settings).await.expect("runs");
        assert!(report.scrapes > 0);
        assert_eq!(report.failures, 0);
        assert!(report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
        assert!(report.bytes_per_scrape > 0);
        assert!(render(&report).contains("200 series, 2 concurrent scrapers asking for gzip"));
    }
}
