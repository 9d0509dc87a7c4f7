//! Client for Prometheus' `/api/v1/query_range` (and compatible APIs: Thanos, Mimir,
//! VictoriaMetrics).
//!
//! A range is split so that no request asks for more than `max_points_per_request` points per
//! series; requests share a bounded number of permits; connect errors, timeouts, 5xx and 429
//! are retried with jittered exponential backoff, other 4xx never; bodies are capped.

pub use foretell_core::wire;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use foretell_core::store::Sample;
use foretell_core::Labels;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use tokio::sync::Semaphore;
use url::Url;

use crate::config::{Auth, Compression, PrometheusConfig, RetryPolicy};
use crate::error_text::{error_chain, transport_error};
use crate::retry::backoff;
use foretell_core::redact;
use remote_read::RemoteReadClient;
use wire::WireError;

/// One range to fetch, on the grid `start_ms + k * step_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeQuery<'a> {
    pub expr: &'a str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_ms: i64,
}

/// Every series of a range, merged across split requests.
#[derive(Debug, Default)]
pub struct RangeAnswer {
    pub series: Vec<(Labels, Vec<Sample>)>,
    pub warnings: Vec<String>,
    /// Series left out for a label name that cannot be exported (see `wire::decode_range`).
    pub refused: wire::RefusedSeries,
    pub requests: u32,
    pub retries: u32,
    /// Read through remote read rather than `query_range`.
    pub remote_read: bool,
    /// Bytes of the answers (after decompression).
    pub bytes: u64,
}

/// Why a range could not be fetched, classified for self-metrics by [`ReadError::reason`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot build the HTTP client for Prometheus: {0}")]
    Setup(String),
    #[error("cannot resolve the host of {url}: {detail}")]
    Resolve { url: String, detail: String },
    #[error("cannot reach {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("no complete answer from {url} within prometheus.timeout ({timeout:?})")]
    Timeout { url: String, timeout: Duration },
    #[error("{url} answered HTTP {status}: {message}")]
    Rejected {
        url: String,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("{url} answered HTTP {status} but the body is unusable: {source}")]
    Decode {
        url: String,
        status: u16,
        source: WireError,
    },
    #[error("the answer from {url} is larger than prometheus.max_response_bytes ({limit} bytes); narrow the query, shorten the history or raise the limit")]
    TooLarge { url: String, limit: u64 },
    #[error("the remote read answer from {url} is unusable: {source}")]
    Stream {
        url: String,
        source: wire::remote_read::RemoteReadError,
    },
}

/// Bounded set of failure classes, used as a metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    Dns,
    Connect,
    Timeout,
    ServerError,
    BadQuery,
    Unauthorized,
    Throttled,
    ClientError,
    Decode,
    TooLarge,
    Setup,
}

impl FailureReason {
    /// Every reason, so counters can start at 0 for each (a rate over a counter that appears
    /// only at its first failure misses that failure).
    pub const ALL: [FailureReason; 11] = [
        FailureReason::Dns,
        FailureReason::Connect,
        FailureReason::Timeout,
        FailureReason::ServerError,
        FailureReason::BadQuery,
        FailureReason::Unauthorized,
        FailureReason::Throttled,
        FailureReason::ClientError,
        FailureReason::Decode,
        FailureReason::TooLarge,
        FailureReason::Setup,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Dns => "dns",
            FailureReason::Connect => "connect",
            FailureReason::Timeout => "timeout",
            FailureReason::ServerError => "server_error",
            FailureReason::BadQuery => "bad_query",
            FailureReason::Unauthorized => "unauthorized",
            FailureReason::Throttled => "throttled",
            FailureReason::ClientError => "client_error",
            FailureReason::Decode => "decode",
            FailureReason::TooLarge => "too_large",
            FailureReason::Setup => "setup",
        }
    }
}

impl ReadError {
    pub fn reason(&self) -> FailureReason {
        match self {
            ReadError::Setup(_) => FailureReason::Setup,
            ReadError::Resolve { .. } => FailureReason::Dns,
            ReadError::Connect { .. } => FailureReason::Connect,
            ReadError::Timeout { .. } => FailureReason::Timeout,
            ReadError::Rejected { status, .. } => match status {
                400 | 422 => FailureReason::BadQuery,
                401 | 403 => FailureReason::Unauthorized,
                429 => FailureReason::Throttled,
                500..=599 => FailureReason::ServerError,
                _ => FailureReason::ClientError,
            },
            ReadError::Decode { .. } | ReadError::Stream { .. } => FailureReason::Decode,
            ReadError::TooLarge { .. } => FailureReason::TooLarge,
        }
    }

    /// Transient failures worth another attempt. A 4xx other than 429 says the request itself
    /// is wrong, so repeating it would only add load.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.reason(),
            FailureReason::Dns
                | FailureReason::Connect
                | FailureReason::Timeout
                | FailureReason::ServerError
                | FailureReason::Throttled
        )
    }

    /// True when the failure says the upstream as a whole is unusable, rather than one query
    /// being wrong or too large.
    pub fn means_upstream_down(&self) -> bool {
        matches!(
            self.reason(),
            FailureReason::Dns
                | FailureReason::Connect
                | FailureReason::Timeout
                | FailureReason::ServerError
                | FailureReason::Unauthorized
                | FailureReason::Decode
                | FailureReason::Setup
        )
    }
}

/// Splits a range into sub-ranges of at most `max_points` grid points each, in order.
pub fn split_range(start_ms: i64, end_ms: i64, step_ms: i64, max_points: u64) -> Vec<(i64, i64)> {
    let span = (max_points.max(1) as i64 - 1) * step_ms;
    let mut chunks = Vec::new();
    let mut chunk_start = start_ms;
    while chunk_start <= end_ms {
        let chunk_end = (chunk_start + span).min(end_ms);
        chunks.push((chunk_start, chunk_end));
        chunk_start = chunk_end + step_ms;
    }
    chunks
}

pub struct PrometheusReader {
    client: reqwest::Client,
    endpoint: Url,
    auth: Option<Auth>,
    headers: HeaderMap,
    timeout: Duration,
    max_response_bytes: u64,
    max_points_per_request: u64,
    history_batch_series: usize,
    retry: RetryPolicy,
    permits: Arc<Semaphore>,
    partial_response: Option<bool>,
    remote_read: RemoteReadClient,
}

impl PrometheusReader {
    pub fn new(config: &PrometheusConfig) -> Result<Self, ReadError> {
        PrometheusReader::build(config, reqwest::Client::builder())
    }

    /// The same reader with answers capped at `bytes` (or the configured cap, when lower).
    pub fn with_max_response_bytes(mut self, bytes: u64) -> Self {
        self.max_response_bytes = self.max_response_bytes.min(bytes);
        self
    }

    /// A reader resolving host names with `resolver` instead of the system's, so tests can
    /// fail a lookup without sending a query to a name server.
    #[cfg(test)]
    pub fn with_resolver<R: reqwest::dns::Resolve + 'static>(
        config: &PrometheusConfig,
        resolver: Arc<R>,
    ) -> Result<Self, ReadError> {
        PrometheusReader::build(config, reqwest::Client::builder().dns_resolver(resolver))
    }

    fn build(
        config: &PrometheusConfig,
        builder: reqwest::ClientBuilder,
    ) -> Result<Self, ReadError> {
        let mut builder = builder
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("foretell/", env!("CARGO_PKG_VERSION")))
            .redirect(same_origin_redirects())
            .danger_accept_invalid_certs(config.insecure_skip_verify)
            // `Accept-Encoding: gzip` and transparent decoding only when configured; the
            // response cap counts decoded bytes either way, so a small compressed answer that
            // inflates beyond it is refused like a large plain one.
            .gzip(config.compression == Compression::Gzip);
        if let Some(pem) = &config.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ReadError::Setup(format!("prometheus.tls.ca_file: {e}")))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| ReadError::Setup(error_chain(&e)))?;
        let base = config.url.expose().clone();
        let mut endpoint = base.clone();
        let path = format!(
            "{}/api/v1/query_range",
            endpoint.path().trim_end_matches('/')
        );
        endpoint.set_path(&path);
        let headers = config.headers.iter().cloned().collect();
        Ok(PrometheusReader {
            client,
            endpoint,
            auth: config.auth.clone(),
            headers,
            timeout: config.timeout,
            max_response_bytes: config.max_response_bytes,
            max_points_per_request: config.max_points_per_request,
            history_batch_series: config.history_batch_series,
            retry: config.retry,
            permits: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            partial_response: config.partial_response,
            remote_read: RemoteReadClient::new(&base, config.remote_read),
        })
    }

    /// Series whose history one request loads.
    pub fn history_batch_series(&self) -> usize {
        self.history_batch_series
    }

    /// Fetches the whole range, split into requests Prometheus accepts, merging series.
    ///
    /// A request whose answer exceeds `max_response_bytes` is split in two halves and each half
    /// fetched instead (down to a single grid point), so a query returning many series still
    /// loads its history in bounded pieces instead of failing forever.
    pub async fn query_range(&self, query: &RangeQuery<'_>) -> Result<RangeAnswer, ReadError> {
        self.query_range_counting(query, &mut 0).await
    }

    /// [`query_range`](Self::query_range), adding to `retries` every request repeated after a
    /// transient failure, also when the range fails in the end (an answer carries its own count).
    pub async fn query_range_counting(
        &self,
        query: &RangeQuery<'_>,
        retries: &mut u32,
    ) -> Result<RangeAnswer, ReadError> {
        let mut answer = RangeAnswer::default();
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut pending: VecDeque<(i64, i64)> = split_range(
            query.start_ms,
            query.end_ms,
            query.step_ms,
            self.max_points_per_request,
        )
        .into();
        while let Some((start_ms, end_ms)) = pending.pop_front() {
            let chunk = RangeQuery {
                start_ms,
                end_ms,
                ..*query
            };
            let mut chunk_retries = 0;
            let fetched = self.fetch_with_retries(&chunk, &mut chunk_retries).await;
            *retries += chunk_retries;
            let body = match fetched {
                Ok((body, bytes)) => {
                    answer.bytes += bytes;
                    body
                }
                Err(ReadError::TooLarge { .. }) if end_ms - start_ms >= query.step_ms => {
                    answer.requests += 1;
                    let points = (end_ms - start_ms) / query.step_ms + 1;
                    let middle = start_ms + (points / 2 - 1) * query.step_ms;
                    tracing::debug!(start_ms, end_ms, "answer too large, splitting the range");
                    pending.push_front((middle + query.step_ms, end_ms));
                    pending.push_front((start_ms, middle));
                    continue;
                }
                Err(error) => return Err(error),
            };
            answer.requests += 1;
            answer.retries += chunk_retries;
            answer.warnings.extend(body.warnings);
            answer.refused.absorb(body.refused);
            for (labels, samples) in body.series {
                match index.get(&labels) {
                    Some(&i) => answer.series[i].1.extend(samples),
                    None => {
                        index.insert(labels.clone(), answer.series.len());
                        answer.series.push((labels, samples));
                    }
                }
            }
        }
        Ok(answer)
    }

    async fn fetch_with_retries(
        &self,
        chunk: &RangeQuery<'_>,
        retries: &mut u32,
    ) -> Result<(wire::RangeBody, u64), ReadError> {
        self.with_retries(retries, || self.fetch_once(chunk)).await
    }

    /// Runs `attempt` (one request) under a permit, again after a transient failure as the
    /// retry policy allows, counting the repeats in `retries`.
    async fn with_retries<T, F, Attempt>(
        &self,
        retries: &mut u32,
        mut attempt: F,
    ) -> Result<T, ReadError>
    where
        F: FnMut() -> Attempt,
        Attempt: std::future::Future<Output = Result<T, ReadError>>,
    {
        let mut attempts = 1;
        loop {
            let result = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| ReadError::Setup("request permits closed".to_owned()))?;
                attempt().await
            };
            match result {
                Ok(body) => return Ok(body),
                Err(error) if error.is_retryable() && attempts < self.retry.max_attempts => {
                    let retry_after = match &error {
                        ReadError::Rejected { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let delay = backoff(&self.retry, attempts, retry_after, fastrand::f64());
                    tracing::debug!(%error, attempt = attempts, ?delay, "retrying Prometheus request");
                    tokio::time::sleep(delay).await;
                    attempts += 1;
                    *retries += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One request: the decoded answer and its size (decoded, when compressed).
    async fn fetch_once(
        &self,
        chunk: &RangeQuery<'_>,
    ) -> Result<(wire::RangeBody, u64), ReadError> {
        let url = redact::url(self.endpoint.as_str(), redact::Path::Shown);
        let form = range_form(chunk, self.partial_response);
        let mut request = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form);
        request = crate::auth::authorize(request, self.auth.as_ref());
        let response = request.send().await.map_err(|e| self.transport(&url, e))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = self.capped_body(&url, response).await?;
        let decoded = wire::decode_range(&body);
        if (200..300).contains(&status) {
            return decoded
                .map(|decoded| (decoded, body.len() as u64))
                .map_err(|source| ReadError::Decode {
                    url: url.clone(),
                    status,
                    source,
                });
        }
        let message = match decoded {
            Err(WireError::Api {
                error_type,
                message,
            }) => format!("{message} (errorType {error_type})"),
            _ => format!(
                "not an API answer; body starts with: {}",
                wire::excerpt(&body)
            ),
        };
        Err(ReadError::Rejected {
            url,
            status,
            message,
            retry_after,
        })
    }

    /// A failure to send a request or read its answer, classified.
    fn transport(&self, url: &str, e: reqwest::Error) -> ReadError {
        let (timed_out, connect) = (e.is_timeout(), e.is_connect());
        let detail = transport_error(e);
        if timed_out {
            ReadError::Timeout {
                url: url.to_owned(),
                timeout: self.timeout,
            }
        } else if connect && detail.contains("dns error") {
            // hyper's connector names a failed lookup so; the system resolver's reason
            // (no such host, no name server answering) follows in the chain.
            ReadError::Resolve {
                url: url.to_owned(),
                detail,
            }
        } else {
            ReadError::Connect {
                url: url.to_owned(),
                detail,
            }
        }
    }

    /// The whole body of `response`, refused as soon as it passes `max_response_bytes`.
    async fn capped_body(
        &self,
        url: &str,
        mut response: reqwest::Response,
    ) -> Result<Vec<u8>, ReadError> {
        let too_large = || ReadError::TooLarge {
            url: url.to_owned(),
            limit: self.max_response_bytes,
        };
        if response
            .content_length()
            .is_some_and(|len| len > self.max_response_bytes)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(url, e))? {
            if (body.len() + chunk.len()) as u64 > self.max_response_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The server's `Retry-After`, as a delay from now.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let now_ms = crate::clock::system().now_ms();
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| foretell_core::timestamp::retry_after_ms(v, now_ms))
        .map(|ms| Duration::from_millis(ms as u64))
}

/// The form body of one `query_range` request.
fn range_form(chunk: &RangeQuery<'_>, partial_response: Option<bool>) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("query", chunk.expr)
        .append_pair("start", &seconds(chunk.start_ms))
        .append_pair("end", &seconds(chunk.end_ms))
        .append_pair("step", &seconds(chunk.step_ms));
    if let Some(partial) = partial_response {
        // Thanos: false fails the query when a store is down, instead of answering with a
        // silent hole that would read as a drop in every series.
        form.append_pair("partial_response", if partial { "true" } else { "false" });
    }
    form.finish()
}

/// Milliseconds as the decimal seconds the API takes.
fn seconds(ms: i64) -> String {
    if ms % 1000 == 0 {
        (ms / 1000).to_string()
    } else {
        format!("{:.3}", ms as f64 / 1000.0)
    }
}

/// Redirects followed at most, within one origin.
const MAX_REDIRECTS: usize = 5;

/// The redirect policy of every client foretell sends credentials or configured headers with
/// (Prometheus, remote write, receivers): redirects within the same origin (scheme, host and
/// port) are followed, a few at most; one to another origin is an error. reqwest drops
/// `Authorization` on a cross-host redirect but would carry `X-Scope-OrgID`, `X-Api-Key` and
/// the other configured headers along.
pub(crate) fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let origin = |url: &Url| {
            (
                url.scheme().to_owned(),
                url.host_str().map(str::to_owned),
                url.port_or_known_default(),
            )
        };
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| origin(first) == origin(attempt.url()));
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else if same {
            attempt.follow()
        } else {
            let to = redact::url(attempt.url().as_str(), redact::Path::Hidden);
            attempt.error(format!(
                "a redirect to another origin ({to}) is not followed: the configured credentials and headers would go along; point the URL at the final address"
            ))
        }
    })
}

mod remote_read;
#[cfg(test)]
mod tests;
