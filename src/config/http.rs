//! What every outgoing HTTP connection is configured with (Prometheus, remote write, alert
//! receivers): credentials, extra headers, URLs and retries.

use std::time::Duration;

use foretell_core::redact;
use http::{HeaderName, HeaderValue};
use url::Url;

use super::raw::{self, RawRetry};
use super::secret::{Secret, SecretUrl};
use super::validator::Validator;

#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    Bearer(Secret),
    Basic { username: String, password: Secret },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request including the first.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

/// Headers that carry credentials: never written inline in a configuration file, which is
/// read, diffed and shown far more widely than a secret file.
const CREDENTIAL_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "x-auth-token",
];

impl Validator<'_> {
    /// A bearer token or basic auth (at most one) for an HTTP client at `path`.
    pub(super) fn auth(
        &mut self,
        path: &str,
        bearer_token_file: Option<&str>,
        bearer_token_env: Option<&str>,
        basic_auth: Option<&raw::RawBasicAuth>,
    ) -> Option<Auth> {
        let bearer = self.secret(
            &format!("{path}.bearer_token"),
            bearer_token_file,
            bearer_token_env,
        );
        let basic = basic_auth.and_then(|b| {
            if b.username.is_empty() {
                self.fail(format!("{path}.basic_auth.username"), "must not be empty");
            }
            if b.password_file.is_none() && b.password_env.is_none() {
                self.fail(
                    format!("{path}.basic_auth"),
                    "needs `password_file` or `password_env` (passwords are never written inline)",
                );
            }
            let password = self.secret(
                &format!("{path}.basic_auth.password"),
                b.password_file.as_deref(),
                b.password_env.as_deref(),
            )?;
            Some(Auth::Basic {
                username: b.username.clone(),
                password,
            })
        });
        match (bearer, basic) {
            (Some(_), Some(_)) => {
                self.fail(path, "set either a bearer token or basic_auth, not both");
                None
            }
            (Some(token), None) => Some(Auth::Bearer(token)),
            (None, basic) => basic,
        }
    }

    /// An http(s) URL with a host and without credentials (those belong in the auth settings).
    /// Errors show the text redacted: a URL that fails to parse can still hold a password.
    pub(super) fn http_url(
        &mut self,
        path: &str,
        text: &str,
        url_path: redact::Path,
    ) -> Option<SecretUrl> {
        let shown = redact::url(text, url_path);
        match Url::parse(text) {
            Ok(url) if url.password().is_some() || !url.username().is_empty() => {
                self.fail(
                    path,
                    "must not carry credentials; use basic_auth with password_file or password_env, or a bearer token file",
                );
                None
            }
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                Some(SecretUrl::new(url, url_path))
            }
            Ok(_) => {
                self.fail(
                    path,
                    format!("must be an http:// or https:// URL with a host, got `{shown}`"),
                );
                None
            }
            Err(e) => {
                self.fail(path, format!("`{shown}` is not a URL: {e}"));
                None
            }
        }
    }

    /// Extra request headers at `path`; credentials belong in the auth settings instead.
    /// Extra HTTP headers; those that carry credentials are refused (see
    /// [`CREDENTIAL_HEADERS`]).
    pub(super) fn headers(
        &mut self,
        path: &str,
        raw: &std::collections::BTreeMap<String, String>,
    ) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::new();
        for (name, value) in raw {
            let path = format!("{path}.{name}");
            match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
                (Ok(n), _) if CREDENTIAL_HEADERS.contains(&n.as_str()) => self.fail(
                    path,
                    "carries credentials: set them with bearer_token_file/_env or basic_auth, so they stay out of the config file",
                ),
                (Ok(n), Ok(mut v)) => {
                    v.set_sensitive(true);
                    headers.push((n, v));
                }
                (Err(_), _) => self.fail(path, "is not a valid HTTP header name"),
                (_, Err(_)) => self.fail(path, "value has characters not allowed in an HTTP header"),
            }
        }
        headers
    }

    pub(super) fn retry(
        &mut self,
        path: &str,
        retry: Option<&RawRetry>,
        default_attempts: u32,
    ) -> Option<RetryPolicy> {
        let max_attempts = retry
            .and_then(|r| r.max_attempts)
            .unwrap_or(default_attempts);
        if !(1..=10).contains(&max_attempts) {
            self.fail(
                format!("{path}.max_attempts"),
                format!("must be between 1 and 10, got {max_attempts}"),
            );
        }
        let initial_path = format!("{path}.initial_backoff");
        let max_path = format!("{path}.max_backoff");
        let (initial, max) = self.ordered_durations(
            (
                &initial_path,
                retry.and_then(|r| r.initial_backoff.as_deref()),
                Duration::from_millis(250),
            ),
            (
                &max_path,
                retry.and_then(|r| r.max_backoff.as_deref()),
                Duration::from_secs(5),
            ),
        )?;
        Some(RetryPolicy {
            max_attempts,
            initial_backoff: initial,
            max_backoff: max,
        })
    }
}
