//! The `remote_write` section: where predictions are pushed besides `/metrics`.

use std::time::Duration;

use foretell_core::redact;
use http::{HeaderName, HeaderValue};

use super::http::{Auth, RetryPolicy};
use super::prometheus::DEFAULT_TIMEOUT;
use super::raw::RawRemoteWrite;
use super::secret::SecretUrl;
use super::validator::Validator;

/// Where predictions are pushed with the remote-write 1.0 protocol, besides `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteWriteConfig {
    pub url: SecretUrl,
    pub timeout: Duration,
    pub auth: Option<Auth>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub max_samples_per_request: usize,
    /// How often the current predictions are pushed.
    pub interval: Duration,
    /// Retries of 5xx, 429 and transport errors; other 4xx are never retried.
    pub retry: RetryPolicy,
}

impl Validator<'_> {
    pub(super) fn remote_write(&mut self, raw: &RawRemoteWrite) -> Option<RemoteWriteConfig> {
        let before = self.errors.len();
        let url = self.http_url("remote_write.url", &raw.url, redact::Path::Shown);
        let timeout = self.positive_duration(
            "remote_write.timeout",
            raw.timeout.as_deref(),
            DEFAULT_TIMEOUT,
        );
        let auth = self.auth(
            "remote_write",
            raw.bearer_token_file.as_deref(),
            raw.bearer_token_env.as_deref(),
            raw.basic_auth.as_ref(),
        );
        let headers = self.headers("remote_write.headers", &raw.headers);
        let max_samples_per_request = raw.max_samples_per_request.unwrap_or(2_000);
        if !(1..=100_000).contains(&max_samples_per_request) {
            self.fail(
                "remote_write.max_samples_per_request",
                format!("must be between 1 and 100000, got {max_samples_per_request}"),
            );
        }
        let interval = self.positive_duration(
            "remote_write.interval",
            raw.interval.as_deref(),
            Duration::from_secs(30),
        );
        let retry = self.retry("remote_write.retry", raw.retry.as_ref(), 5);
        if self.errors.len() > before {
            return None;
        }
        Some(RemoteWriteConfig {
            url: url?,
            timeout: timeout?,
            auth,
            headers,
            max_samples_per_request,
            interval: interval?,
            retry: retry?,
        })
    }
}
