//! History through Prometheus' remote read API (`/api/v1/read`, streamed XOR chunks), for
//! queries that are a plain selector.
//!
//! A cold load of thousands of series costs Prometheus more through `query_range` than
//! foretell's own fitting: the query engine evaluates every grid point and writes every value
//! as JSON. Remote read sends the chunks Prometheus has stored, and foretell puts them on the
//! grid itself (`foretell_core::wire::remote_read::on_grid`), exactly as the query engine
//! would, which needs the server's `--query.lookback-delta` and its major version (whether a
//! sample exactly that old still counts). So remote read is used only where the server says
//! both (`/api/v1/status/flags` and `/api/v1/status/buildinfo`: Prometheus itself); Thanos,
//! Mimir and VictoriaMetrics, and any server that refuses the read, get `query_range`.

use std::sync::Mutex;
use std::time::Duration;

use foretell_core::selector::{self, Matcher};
use foretell_core::wire::remote_read::{self, Grid};
use url::Url;

use super::{retry_after, PrometheusReader, RangeAnswer, RangeQuery, ReadError};
use crate::clock::Stopwatch;
use crate::config::RemoteRead;
use foretell_core::redact;

/// What foretell knows of the server's remote read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Support {
    /// Not asked yet, or the last asking failed in transit (asked again next time).
    Unknown,
    /// Prometheus, with the lookback its query engine uses.
    Available {
        lookback_ms: i64,
        lookback_inclusive: bool,
    },
    /// Configured off, or the server cannot serve it exactly: `query_range` until asked again.
    Unavailable,
}

/// What the server said is asked again after this long (at the next history load): a
/// Prometheus restarted with another `--query.lookback-delta` or version, or a proxy that
/// started or stopped passing the read, is then followed without restarting foretell.
const ASK_AGAIN_AFTER: Duration = Duration::from_secs(600);

/// The remote read side of a reader.
pub(super) struct RemoteReadClient {
    read: Url,
    flags: Url,
    buildinfo: Url,
    /// What is known, and since when (`None`: configured, never asked again).
    support: Mutex<(Support, Option<Stopwatch>)>,
    ask_again_after: Duration,
    /// Held while the server is asked, so that requests in flight together ask once.
    asking: tokio::sync::Mutex<()>,
}

impl RemoteReadClient {
    pub(super) fn new(base: &Url, setting: RemoteRead) -> Self {
        let at = |path: &str| {
            let mut url = base.clone();
            url.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
            url
        };
        RemoteReadClient {
            read: at("/api/v1/read"),
            flags: at("/api/v1/status/flags"),
            buildinfo: at("/api/v1/status/buildinfo"),
            support: Mutex::new(match setting {
                RemoteRead::Auto => (Support::Unknown, Some(Stopwatch::start())),
                RemoteRead::Off => (Support::Unavailable, None),
            }),
            ask_again_after: ASK_AGAIN_AFTER,
            asking: tokio::sync::Mutex::new(()),
        }
    }

    /// Asks the server again after `after` (tests).
    #[cfg(test)]
    pub(super) fn ask_again_after(&mut self, after: Duration) {
        self.ask_again_after = after;
    }

    fn support(&self) -> Support {
        let (support, since) = &*self.support.lock().unwrap_or_else(|e| e.into_inner());
        match since {
            Some(since) if since.elapsed() >= self.ask_again_after => Support::Unknown,
            _ => *support,
        }
    }

    /// Records what the server said (a configured `off` stays); returns what was known.
    fn set_support(&self, support: Support) -> Support {
        let mut known = self.support.lock().unwrap_or_else(|e| e.into_inner());
        let before = known.0;
        if known.1.is_some() {
            *known = (support, Some(Stopwatch::start()));
        }
        before
    }
}

/// How a remote read attempt ended, when it did not give the series.
enum NotRead {
    /// The server cannot serve remote read (or not this request): ask `query_range`.
    FallBack(String),
    /// A failure `query_range` would meet too (unreachable, timed out, overloaded).
    Failed(ReadError),
}

impl PrometheusReader {
    /// The history of `query`: through remote read when its expression is a plain selector
    /// and the server serves remote read exactly (see the module's documentation), otherwise
    /// through `query_range`; retries are counted as there.
    pub async fn history_counting(
        &self,
        query: &RangeQuery<'_>,
        retries: &mut u32,
    ) -> Result<RangeAnswer, ReadError> {
        if let Some(matchers) = selector::matchers(query.expr) {
            if let Some(grid) = self.remote_read_grid(query).await {
                match self.remote_read(&matchers, &grid, retries).await {
                    Ok(answer) => return Ok(answer),
                    Err(NotRead::Failed(error)) => return Err(error),
                    Err(NotRead::FallBack(reason)) => {
                        tracing::debug!(%reason, "this history request goes through query_range");
                    }
                }
            }
        }
        self.query_range_counting(query, retries).await
    }

    /// The grid of `query` with the server's lookback, asking the server once; `None` when
    /// remote read is not to be used.
    async fn remote_read_grid(&self, query: &RangeQuery<'_>) -> Option<Grid> {
        let client = &self.remote_read;
        let mut support = client.support();
        if support == Support::Unknown {
            let _asking = client.asking.lock().await;
            // Another request may have asked while this one waited.
            support = client.support();
            if support == Support::Unknown {
                support = self.ask().await;
            }
        }
        match support {
            Support::Available {
                lookback_ms,
                lookback_inclusive,
            } => Some(Grid {
                start_ms: query.start_ms,
                end_ms: query.end_ms,
                step_ms: query.step_ms,
                lookback_ms,
                lookback_inclusive,
            }),
            Support::Unknown | Support::Unavailable => None,
        }
    }

    /// Asks the server and records the answer, saying so when it changed.
    async fn ask(&self) -> Support {
        match self.discover().await {
            Ok((support, why)) => {
                // Said once when it changes, not at every asking again.
                if self.remote_read.set_support(support) != support {
                    match (support, why) {
                        (Support::Available { lookback_ms, .. }, _) => tracing::info!(
                            lookback = %crate::config::duration::format(Duration::from_millis(lookback_ms as u64)),
                            "history of plain selectors is read through Prometheus' remote read API"
                        ),
                        (_, why) => tracing::info!(
                            reason = why.unwrap_or_default(),
                            "history is read through query_range (remote read needs a Prometheus server that reports its lookback and version)"
                        ),
                    }
                }
                support
            }
            Err(reason) => {
                tracing::debug!(%reason, "cannot tell whether the server serves remote read; asking again next time");
                Support::Unknown
            }
        }
    }

    /// Asks the server for its lookback and version. `Err` when the asking failed in transit
    /// (to be repeated); a server that answers but is not a Prometheus that says both is
    /// [`Support::Unavailable`], with the reason.
    async fn discover(&self) -> Result<(Support, Option<&'static str>), String> {
        let client = &self.remote_read;
        let flags = self.status_data(&client.flags).await?;
        let buildinfo = self.status_data(&client.buildinfo).await?;
        let unavailable = |why: &'static str| Ok((Support::Unavailable, Some(why)));
        let (Some(flags), Some(buildinfo)) = (flags, buildinfo) else {
            return unavailable("the server has no /api/v1/status/flags or buildinfo");
        };
        let Some(lookback) = flags
            .get("query.lookback-delta")
            .and_then(|v| v.as_str())
            .and_then(|text| crate::config::duration::parse(text).ok())
            .filter(|d| !d.is_zero())
        else {
            return unavailable("the server's flags do not say query.lookback-delta");
        };
        let Some(major) = buildinfo
            .get("version")
            .and_then(|v| v.as_str())
            .and_then(|v| {
                v.trim_start_matches('v')
                    .split('.')
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
        else {
            return unavailable("the server's buildinfo has no version");
        };
        if major < 2 {
            return unavailable("Prometheus 1 has no streamed remote read");
        }
        Ok((
            Support::Available {
                lookback_ms: lookback.as_millis() as i64,
                // Prometheus 3 made the lookback window open at its old end.
                lookback_inclusive: major < 3,
            },
            None,
        ))
    }

    /// `data` of a status endpoint: `Ok(None)` when the server answers without it (not
    /// Prometheus, or not allowed), `Err` when the request failed in transit.
    async fn status_data(
        &self,
        url: &Url,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
        let shown = redact::url(url.as_str(), redact::Path::Shown);
        let request = self.client.get(url.clone()).headers(self.headers.clone());
        let request = crate::auth::authorize(request, self.auth.as_ref());
        let response = request
            .send()
            .await
            .map_err(|e| self.transport(&shown, e).to_string())?;
        let status = response.status().as_u16();
        if status == 429 || status >= 500 {
            return Err(format!("{shown} answered HTTP {status}"));
        }
        if !response.status().is_success() {
            return Ok(None);
        }
        let body = self
            .capped_body(&shown, response)
            .await
            .map_err(|e| e.to_string())?;
        let parsed: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(_) => return Ok(None),
        };
        Ok(parsed.get("data").and_then(|d| d.as_object()).cloned())
    }

    async fn remote_read(
        &self,
        matchers: &[Matcher],
        grid: &Grid,
        retries: &mut u32,
    ) -> Result<RangeAnswer, NotRead> {
        let request = remote_read::encode_request(matchers, grid.first_needed_ms(), grid.end_ms);
        let compressed = snap::raw::Encoder::new()
            .compress_vec(&request)
            .map_err(|e| NotRead::FallBack(format!("cannot compress the request: {e}")))?;
        let mut attempt_retries = 0;
        let result = self
            .with_retries(&mut attempt_retries, || self.remote_read_once(&compressed))
            .await;
        *retries += attempt_retries;
        let stored = match result {
            Ok(Ok(stored)) => stored,
            Ok(Err(fall_back)) => return Err(fall_back),
            Err(error @ ReadError::TooLarge { .. }) => {
                // `query_range` splits a range whose answer is too large; remote read cannot.
                return Err(NotRead::FallBack(error.to_string()));
            }
            Err(error) => return Err(NotRead::Failed(error)),
        };
        let (stored, bytes) = stored;
        let body = remote_read::on_grid(stored, grid);
        Ok(RangeAnswer {
            series: body.series,
            warnings: Vec::new(),
            refused: body.refused,
            requests: 1,
            retries: attempt_retries,
            remote_read: true,
            bytes,
        })
    }

    /// One remote read request: the stored series and the answer's size. The outer `Result`
    /// holds failures worth retrying and failures `query_range` would meet too; the inner
    /// `Err` says to fall back.
    async fn remote_read_once(
        &self,
        compressed: &[u8],
    ) -> Result<Result<(Vec<remote_read::StoredSeries>, u64), NotRead>, ReadError> {
        let client = &self.remote_read;
        let url = redact::url(client.read.as_str(), redact::Path::Shown);
        let request = self
            .client
            .post(client.read.clone())
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Read-Version", "0.1.0")
            .body(compressed.to_vec());
        let request = crate::auth::authorize(request, self.auth.as_ref());
        let response = request.send().await.map_err(|e| self.transport(&url, e))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if status == 429 || status >= 500 {
            let retry_after = retry_after(response.headers());
            let body = self.capped_body(&url, response).await.unwrap_or_default();
            return Err(ReadError::Rejected {
                url,
                status,
                message: super::wire::excerpt(&body),
                retry_after,
            });
        }
        if !(200..300).contains(&status) {
            let body = self.capped_body(&url, response).await.unwrap_or_default();
            let reason = format!(
                "{url} answered HTTP {status}: {}",
                super::wire::excerpt(&body)
            );
            // A request Prometheus finds wrong (400: a bad regular expression) would fail
            // through query_range too, with a clearer message; a refused endpoint (401, 403,
            // 404, 405 ...) will not start working soon, so loads ask query_range until the
            // server is asked again.
            if status != 400 {
                tracing::warn!(%reason, "remote read refused; history is read through query_range (the server is asked again in 10 minutes)");
                self.remote_read.set_support(Support::Unavailable);
            }
            return Ok(Err(NotRead::FallBack(reason)));
        }
        if !content_type.starts_with("application/x-streamed-protobuf") {
            let reason =
                format!("{url} answered remote read with {content_type:?}, not streamed chunks");
            tracing::warn!(%reason, "history is read through query_range (the server is asked again in 10 minutes)");
            self.remote_read.set_support(Support::Unavailable);
            return Ok(Err(NotRead::FallBack(reason)));
        }
        let body = self.capped_body(&url, response).await?;
        // The unpacked samples (16 bytes each) are held to the memory the response cap allows
        // a `query_range` answer; a denser answer is fetched through `query_range`, which
        // splits the range.
        let max_samples = usize::try_from(self.max_response_bytes / 16).unwrap_or(usize::MAX);
        match remote_read::decode_stream(&body, max_samples) {
            Ok(stored) => Ok(Ok((stored, body.len() as u64))),
            Err(source @ remote_read::RemoteReadError::TooManySamples { .. }) => {
                Ok(Err(NotRead::FallBack(format!("{url}: {source}"))))
            }
            Err(source) => Err(ReadError::Stream {
                url: url.clone(),
                source,
            }),
        }
    }
}
