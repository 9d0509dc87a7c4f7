//! The `prometheus` section: where series are read from and how hard foretell may press it.

use std::time::Duration;

use foretell_core::redact;
use http::{HeaderName, HeaderValue};

use super::http::{Auth, RetryPolicy};
use super::raw::RawPrometheus;
use super::secret::SecretUrl;
use super::validator::Validator;

/// Prometheus refuses `query_range` requests for more than 11,000 points per series.
pub const PROMETHEUS_MAX_POINTS: u64 = 11_000;
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusConfig {
    pub url: SecretUrl,
    pub timeout: Duration,
    pub auth: Option<Auth>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// PEM bytes of extra CA certificates.
    pub ca_pem: Option<Vec<u8>>,
    pub insecure_skip_verify: bool,
    pub max_concurrent_requests: usize,
    pub max_response_bytes: u64,
    pub max_points_per_request: u64,
    /// Series whose history one request loads, when new series appear.
    pub history_batch_series: usize,
    pub retry: RetryPolicy,
    /// Thanos Query's `partial_response`, sent with every range query when set.
    pub partial_response: Option<bool>,
    pub compression: Compression,
    /// Whether the history of plain selectors may be read through remote read.
    pub remote_read: RemoteRead,
}

/// Whether history loads may use Prometheus' remote read API (`/api/v1/read`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemoteRead {
    /// For plain selectors, when the server is a Prometheus that reports its lookback and
    /// version (so that its grid can be reproduced exactly); `query_range` otherwise.
    #[default]
    Auto,
    /// Always `query_range`.
    Off,
}

/// Whether answers from Prometheus are asked for compressed (`Accept-Encoding`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compression {
    /// Plain JSON: on a fast network the quickest, since Prometheus compresses slower than
    /// it serves (`docs/benchmarks.md`).
    #[default]
    None,
    /// gzip: several times fewer bytes on the wire, for a slow or metered link.
    Gzip,
}

impl Validator<'_> {
    pub(super) fn prometheus(&mut self, raw: &RawPrometheus) -> Option<PrometheusConfig> {
        let before = self.errors.len();
        let url = self.http_url("prometheus.url", &raw.url, redact::Path::Shown);
        let timeout = self.positive_duration(
            "prometheus.timeout",
            raw.timeout.as_deref(),
            DEFAULT_TIMEOUT,
        );
        let auth = self.auth(
            "prometheus",
            raw.bearer_token_file.as_deref(),
            raw.bearer_token_env.as_deref(),
            raw.basic_auth.as_ref(),
        );
        let headers = self.headers("prometheus.headers", &raw.headers);
        let (ca_pem, insecure_skip_verify) = match &raw.tls {
            None => (None, false),
            Some(tls) => {
                let pem = tls.ca_file.as_deref().and_then(|file| {
                    let bytes = self.read_file("prometheus.tls.ca_file", file)?;
                    match reqwest::Certificate::from_pem_bundle(&bytes) {
                        Ok(certs) if !certs.is_empty() => Some(bytes),
                        _ => {
                            self.fail(
                                "prometheus.tls.ca_file",
                                format!("`{file}` holds no PEM certificate"),
                            );
                            None
                        }
                    }
                });
                (pem, tls.insecure_skip_verify)
            }
        };
        let max_concurrent_requests = raw.max_concurrent_requests.unwrap_or(4);
        if !(1..=64).contains(&max_concurrent_requests) {
            self.fail(
                "prometheus.max_concurrent_requests",
                format!("must be between 1 and 64, got {max_concurrent_requests}"),
            );
        }
        let max_response_bytes = raw.max_response_bytes.unwrap_or(64 << 20);
        if max_response_bytes < 1024 {
            self.fail(
                "prometheus.max_response_bytes",
                format!("must be at least 1024, got {max_response_bytes}"),
            );
        }
        let max_points_per_request = raw.max_points_per_request.unwrap_or(PROMETHEUS_MAX_POINTS);
        if !(2..=PROMETHEUS_MAX_POINTS).contains(&max_points_per_request) {
            self.fail(
                "prometheus.max_points_per_request",
                format!("must be between 2 and {PROMETHEUS_MAX_POINTS} (Prometheus' own limit), got {max_points_per_request}"),
            );
        }
        let history_batch_series = raw.history_batch_series.unwrap_or(100);
        if !(1..=10_000).contains(&history_batch_series) {
            self.fail(
                "prometheus.history_batch_series",
                format!("must be between 1 and 10000, got {history_batch_series}"),
            );
        }
        let compression = match raw.compression.as_deref() {
            None | Some("none") => Compression::None,
            Some("gzip") => Compression::Gzip,
            Some(other) => {
                self.fail(
                    "prometheus.compression",
                    format!("must be none or gzip, got {other:?}"),
                );
                Compression::None
            }
        };
        let remote_read = match raw.remote_read.as_deref() {
            None | Some("auto") => RemoteRead::Auto,
            Some("off") => RemoteRead::Off,
            Some(other) => {
                self.fail(
                    "prometheus.remote_read",
                    format!("must be auto or off, got {other:?}"),
                );
                RemoteRead::Auto
            }
        };
        let retry = self.retry("prometheus.retry", raw.retry.as_ref(), 3);
        if self.errors.len() > before {
            return None;
        }
        Some(PrometheusConfig {
            url: url?,
            timeout: timeout?,
            auth,
            headers,
            ca_pem,
            insecure_skip_verify,
            max_concurrent_requests,
            max_response_bytes,
            max_points_per_request,
            history_batch_series,
            retry: retry?,
            partial_response: raw.partial_response,
            compression,
            remote_read,
        })
    }
}
