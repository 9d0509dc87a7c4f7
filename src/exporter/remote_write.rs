//! Pushes each query's newest predictions to a remote-write receiver (Prometheus started with
//! `--web.enable-remote-write-receiver`, Mimir, Thanos Receive, VictoriaMetrics), for setups
//! where nothing scrapes foretell.
//!
//! Protocol 1.0: a snappy-compressed (block format) protobuf `WriteRequest` per request, at
//! most `max_samples_per_request` samples each. Every `interval` the current predictions are
//! pushed stamped with the time of the push, as a scrape would store them (never a future
//! time: forecasts are present-time series with a `horizon` label). 5xx, 429 and transport errors are retried with capped, jittered
//! backoff (a 429's `Retry-After` honoured); other 4xx are counted as rejected and never
//! retried. A request that still fails is dropped and counted: the next cycle's predictions
//! supersede it, and `/metrics` keeps serving them meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use foretell_core::remote_write::{encode, series_of};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::RemoteWriteConfig;
use crate::error_text::{error_chain, transport_error};
use crate::exporter::telemetry::{RemoteWriteOutcome, Telemetry};
use crate::pipeline::SnapshotCell;
use crate::retry::backoff;

/// What one request came to after its retries.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Sent {
    Accepted,
    /// A 4xx other than 429: the receiver will not take these samples as they are.
    Rejected(String),
    /// Still failing after the last retry.
    Failed(String),
}

pub struct RemoteWriter {
    client: reqwest::Client,
    config: RemoteWriteConfig,
    headers: HeaderMap,
    telemetry: Arc<Telemetry>,
    clock: Arc<dyn Clock>,
}

/// The HTTP client for remote write could not be built (the TLS backend failed to start).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the remote-write HTTP client: {0}")]
pub struct ClientSetupError(String);

impl RemoteWriter {
    pub fn new(
        config: RemoteWriteConfig,
        telemetry: Arc<Telemetry>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ClientSetupError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("foretell/", env!("CARGO_PKG_VERSION")))
            .redirect(crate::reader::same_origin_redirects())
            .build()
            .map_err(|e| ClientSetupError(error_chain(&e)))?;
        let mut headers: HeaderMap = config.headers.iter().cloned().collect();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("snappy"));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            "X-Prometheus-Remote-Write-Version",
            HeaderValue::from_static("0.1.0"),
        );
        telemetry.remote_write_enabled();
        Ok(RemoteWriter {
            client,
            config,
            headers,
            telemetry,
            clock,
        })
    }

    /// Every `interval`, pushes every series of the current snapshot stamped with the time of
    /// the push (what a scrape would store), until cancelled; at most `max_series` series
    /// (`server.max_exported_series`, followed on reload) in query order, as a scrape.
    pub async fn run(
        self,
        snapshot: Arc<SnapshotCell>,
        max_series: Arc<AtomicUsize>,
        cancel: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(self.config.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let current = snapshot.load();
            let now_ms = self.clock.now_ms();
            let mut series_left = max_series.load(Ordering::Relaxed);
            for output in current.queries() {
                let allowed = series_left;
                series_left = series_left.saturating_sub(output.series.len());
                if allowed == 0 {
                    break;
                }
                let shared = Arc::clone(&current);
                let query = output.query.clone();
                let max = self.config.max_samples_per_request;
                // Labels, protobuf and snappy for every exported sample: CPU work.
                let bodies = tokio::task::spawn_blocking(move || {
                    let Some(output) = shared.queries().find(|o| o.query == query) else {
                        return Vec::new();
                    };
                    series_of(output, now_ms, allowed)
                        .chunks(max)
                        .map(|chunk| {
                            let compressed = snap::raw::Encoder::new()
                                .compress_vec(&encode(chunk))
                                .map_err(|e| format!("snappy compression failed: {e}"));
                            (chunk.len() as u64, compressed)
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                for (samples, body) in bodies {
                    let sent = match body {
                        Ok(body) => tokio::select! {
                            _ = cancel.cancelled() => return,
                            sent = self.send(body) => sent,
                        },
                        Err(reason) => Sent::Failed(reason),
                    };
                    let outcome = match &sent {
                        Sent::Accepted => RemoteWriteOutcome::Sent,
                        Sent::Rejected(reason) => {
                            tracing::warn!(query = %output.query, samples, %reason, "the remote-write receiver rejected predictions; not retried");
                            RemoteWriteOutcome::Rejected
                        }
                        Sent::Failed(reason) => {
                            tracing::warn!(query = %output.query, samples, %reason, "remote write failed after retries; the next push follows");
                            RemoteWriteOutcome::Failed
                        }
                    };
                    self.telemetry.remote_written(
                        outcome,
                        samples,
                        self.clock.now_ms() as f64 / 1000.0,
                    );
                }
            }
        }
    }

    /// One request with its retries.
    async fn send(&self, body: Vec<u8>) -> Sent {
        // Shared, not copied, by each attempt.
        let body = bytes::Bytes::from(body);
        let mut attempt = 1;
        loop {
            let (reason, retry_after) = match self.send_once(body.clone()).await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        return Sent::Accepted;
                    }
                    let retry_after = response
                        .headers()
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| {
                            foretell_core::timestamp::retry_after_ms(v, self.clock.now_ms())
                        })
                        .map(|ms| Duration::from_millis(ms.max(0) as u64));
                    let text = response.text().await.unwrap_or_default();
                    let reason = format!(
                        "HTTP {}: {}",
                        status.as_u16(),
                        text.trim().chars().take(300).collect::<String>()
                    );
                    if status.as_u16() != 429 && !status.is_server_error() {
                        return Sent::Rejected(reason);
                    }
                    (reason, retry_after)
                }
                Err(error) => (transport_error(error), None),
            };
            if attempt >= self.config.retry.max_attempts {
                return Sent::Failed(reason);
            }
            self.telemetry.remote_write_retried();
            let delay = backoff(&self.config.retry, attempt, retry_after, fastrand::f64());
            tracing::debug!(%reason, attempt, ?delay, "retrying remote write");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, body: bytes::Bytes) -> Result<reqwest::Response, reqwest::Error> {
        let request = self
            .client
            .post(self.config.url.expose().clone())
            .headers(self.headers.clone())
            .body(body);
        let request = crate::auth::authorize(request, self.config.auth.as_ref());
        request.send().await
    }
}

#[cfg(test)]
mod tests {
    use foretell_core::labels::Labels;
    use foretell_core::model::{Band, Excursion};
    use foretell_core::remote_write::WriteSeries;
    use foretell_core::snapshot::{export_labels, QueryOutput, SeriesOutput, SeriesState};

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::RetryPolicy;
    use foretell_testing::{json, Canned, FakeUpstream};

    const NOW_MS: i64 = 1_700_000_000_000;

    fn writer(url: &str, telemetry: &Arc<Telemetry>) -> RemoteWriter {
        let config = RemoteWriteConfig {
            url: crate::config::SecretUrl::new(
                url::Url::parse(&format!("{url}/api/v1/write")).expect("url"),
                foretell_core::redact::Path::Shown,
            ),
            timeout: Duration::from_secs(2),
            auth: None,
            headers: vec![(
                http::HeaderName::from_static("x-scope-orgid"),
                HeaderValue::from_static("team-a"),
            )],
            max_samples_per_request: 4,
            interval: Duration::from_millis(20),
            retry: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(5),
            },
        };
        RemoteWriter::new(
            config,
            Arc::clone(telemetry),
            Arc::new(ManualClock::new(NOW_MS)),
        )
        .expect("writer")
    }

    fn output(evaluated_at_ms: i64) -> QueryOutput {
        let band = Band {
            expected: 1.0,
            lower: 0.5,
            upper: 1.5,
        };
        QueryOutput {
            query: "q".into(),
            evaluated_at_ms,
            horizons: Vec::new(),
            series: vec![SeriesOutput::new(
                export_labels(
                    "q",
                    &Labels::from_pairs([("__name__", "m"), ("instance", "a")]),
                ),
                SeriesState::Ready {
                    band,
                    score: Some(0.2),
                    probability: 0.01,
                    forecasts: Vec::new(),
                    threshold_eta_seconds: None,
                    excursion: Excursion::default(),
                },
            )],
        }
    }

    fn metric(telemetry: &Telemetry, line_start: &str) -> Option<String> {
        let mut out = String::new();
        telemetry.render(&mut out, foretell_core::exposition::Format::Text);
        out.lines()
            .find_map(|l| l.strip_prefix(line_start).map(str::to_owned))
    }

    async fn until(mut done: impl FnMut() -> bool) {
        for _ in 0..200 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out");
    }

    #[tokio::test]
    async fn predictions_are_pushed_every_interval_as_snappy_protobuf_in_bounded_requests() {
        let receiver = FakeUpstream::start(vec![json(204, "")]).await;
        let telemetry = Arc::new(Telemetry::new("test"));
        let snapshot = Arc::new(SnapshotCell::default());
        snapshot.publish(output(NOW_MS - 60_000));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(writer(&receiver.url, &telemetry).run(
            Arc::clone(&snapshot),
            Arc::new(AtomicUsize::new(usize::MAX)),
            cancel.clone(),
        ));
        // A ready series without horizons exports six samples; at most four per request.
        let expected: Vec<WriteSeries> =
            foretell_core::remote_write::series_of(&output(NOW_MS - 60_000), NOW_MS, usize::MAX);
        let requests = expected.len().div_ceil(4);
        // The upstream holds a request before the writer has read its answer and counted the
        // samples sent: wait for both, or a cancel between the two loses the count.
        let sent_count = || {
            metric(
                &telemetry,
                "foretell_remote_write_samples_total{outcome=\"sent\"} ",
            )
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
        };
        until(|| {
            receiver.requests().len() >= 2 * requests && sent_count() >= 2 * expected.len() as u64
        })
        .await;
        cancel.cancel();
        task.await.expect("stops");
        let head = &receiver.requests()[0];
        for header in [
            "content-encoding: snappy",
            "content-type: application/x-protobuf",
            "x-prometheus-remote-write-version: 0.1.0",
            "x-scope-orgid: team-a",
        ] {
            assert!(
                head.to_ascii_lowercase().contains(header),
                "{header}: {head}"
            );
        }
        let decoded: Vec<Vec<u8>> = receiver
            .bodies()
            .iter()
            .map(|body| {
                snap::raw::Decoder::new()
                    .decompress_vec(body)
                    .expect("snappy")
            })
            .collect();
        // Stamped with the (manual) clock's now, not the evaluation time; pushed again next
        // interval like a scrape.
        assert_eq!(decoded[0], encode(&expected[..4]));
        assert_eq!(decoded[1], encode(&expected[4..]));
        assert_eq!(decoded[2], decoded[0]);
        assert_eq!(
            metric(
                &telemetry,
                "foretell_remote_write_samples_total{outcome=\"failed\"} "
            )
            .and_then(|v| v.parse::<f64>().ok()),
            Some(0.0),
            "no sample failed"
        );
    }

    #[tokio::test]
    async fn a_4xx_is_never_retried_and_5xx_is_until_it_passes() {
        let telemetry = Arc::new(Telemetry::new("test"));
        let rejecting = FakeUpstream::start(vec![json(400, "out of order sample")]).await;
        let sent = writer(&rejecting.url, &telemetry).send(vec![1, 2, 3]).await;
        assert!(
            matches!(&sent, Sent::Rejected(reason) if reason.contains("HTTP 400: out of order sample")),
            "{sent:?}"
        );
        assert_eq!(rejecting.requests().len(), 1);

        let flaky = FakeUpstream::start(vec![
            json(503, "busy"),
            json(429, "slow down"),
            json(200, ""),
        ])
        .await;
        assert_eq!(
            writer(&flaky.url, &telemetry).send(vec![1]).await,
            Sent::Accepted
        );
        assert_eq!(flaky.requests().len(), 3);

        let down = FakeUpstream::start(vec![json(500, "broken")]).await;
        let sent = writer(&down.url, &telemetry).send(vec![1]).await;
        assert!(
            matches!(&sent, Sent::Failed(reason) if reason.contains("HTTP 500")),
            "{sent:?}"
        );
        assert_eq!(down.requests().len(), 3, "max_attempts");
        assert_eq!(
            metric(&telemetry, "foretell_remote_write_retries_total "),
            Some("4".to_owned())
        );
        let hanging = FakeUpstream::start(vec![Canned::Hang]).await;
        let mut slow = writer(&hanging.url, &telemetry);
        slow.config.retry.max_attempts = 1;
        slow.client = reqwest::Client::builder()
            .timeout(Duration::from_millis(100))
            .build()
            .expect("client");
        assert!(matches!(slow.send(vec![1]).await, Sent::Failed(_)));
    }
}
