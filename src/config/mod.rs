//! Configuration: YAML text in, a validated [`Config`] out.
//!
//! Loading runs in three passes: strict deserialisation (syntax errors and unknown keys, with
//! line and column), one validation pass that collects every semantic problem with its path
//! (`queries[1].step: must be > 0, got 0s`), and secret resolution through an [`Environment`]
//! so files and variables are read in one place and tests can pass maps.

mod alerts;
pub mod duration;
mod locate;
pub(crate) mod nesting;
mod raw;
mod secret;

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use promql_parser::parser::value::ValueType;

use foretell_core::audit::KeyRing;
use foretell_core::model::{ensemble, Coverage, ForecastModel, SeasonSpec};
use foretell_core::redact;
use foretell_core::store::StoreLimits;
use foretell_core::tracker::{Horizon, ThresholdBound, ThresholdSettings};
use http::{HeaderName, HeaderValue};
use url::Url;

#[cfg(test)]
pub use alerts::RouteConfig;
pub use alerts::{AlertsConfig, BreakerConfig, GraphExpressions, OnDemandConfig, ReceiverConfig};
use raw::{
    RawAudit, RawConfig, RawModel, RawPrometheus, RawQuery, RawRemoteWrite, RawRetry,
    RawSeasonality, RawServer, RawThreshold,
};
pub use secret::{read_bounded, Environment, Secret, SecretUrl, SystemEnvironment, MAX_FILE_BYTES};

/// Prometheus refuses `query_range` requests for more than 11,000 points per series.
pub const PROMETHEUS_MAX_POINTS: u64 = 11_000;
const MAX_POINTS_PER_SERIES: u64 = 1_000_000;
/// Charts show the 6h view from the live record by default.
const DEFAULT_LIVE_RECORD: Duration = Duration::from_secs(6 * 3600);
/// A live record longer than this would cost more memory than the window itself at common
/// steps; longer ranges are replayed.
const MAX_LIVE_RECORD_POINTS: usize = 20_000;
/// Chart axes show the unit in a few characters.
const MAX_UNIT_CHARS: usize = 32;
pub const DEFAULT_LISTEN_ADDRESS: &str = "0.0.0.0:9896";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_AUDIT_VERIFY_INTERVAL: Duration = Duration::from_secs(3600);

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub prometheus: PrometheusConfig,
    pub server: ServerConfig,
    /// `None`: no audit log is kept.
    pub audit: Option<AuditConfig>,
    /// `None`: the Alertmanager webhook receiver is off.
    pub alerts: Option<AlertsConfig>,
    /// This replica's share of every query's series (default: all of them).
    pub shard: foretell_core::shard::Shard,
    /// `None`: predictions are only served on `/metrics`.
    pub remote_write: Option<RemoteWriteConfig>,
    pub queries: Vec<QueryConfig>,
    /// Settings that work but are risky (a world-readable key file, a webhook without a
    /// token), as `path: what and the fix`; `check-config` prints them and `run` logs them.
    pub warnings: Vec<String>,
}

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

/// Where the signed audit log lives and the keys that sign it (the last one signs; the
/// earlier ones verify records written before a rotation).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditConfig {
    pub path: PathBuf,
    pub keys: KeyRing,
    /// How often the sidecar verifies its own log (`None`: never).
    pub verify_interval: Option<Duration>,
}

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
}

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen_address: SocketAddr,
    pub shutdown_grace: Duration,
    pub enable_lifecycle: bool,
    /// The URL users reach foretell at, for links (graph links in enriched alerts); `None`:
    /// derived from the listen address at start.
    pub external_url: Option<Url>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryConfig {
    pub name: String,
    pub expr: String,
    pub step: Duration,
    pub history: Duration,
    pub evaluation_interval: Duration,
    pub freshness: Duration,
    pub max_series: usize,
    pub model: ForecastModel,
    pub refit_interval: Duration,
    pub horizons: Vec<Horizon>,
    pub threshold: Option<ThresholdSettings>,
    /// How far back each series keeps what the live model did, for the charts (`0s`: none;
    /// charts are then replayed from Prometheus).
    pub live_record: Duration,
    /// The unit of the query's values, for chart axes (`requests/s`, `bytes`); empty: none.
    pub unit: String,
}

impl QueryConfig {
    pub fn step_ms(&self) -> i64 {
        self.step.as_millis() as i64
    }

    /// Points each series' live record holds.
    pub fn live_record_points(&self) -> usize {
        (self.live_record.as_millis() / self.step.as_millis().max(1)) as usize
    }

    pub fn store_limits(&self) -> StoreLimits {
        StoreLimits {
            step_ms: self.step_ms(),
            capacity_points: (self.history.as_millis() / self.step.as_millis().max(1)) as usize + 1,
            max_series: self.max_series,
            freshness_ms: self.freshness.as_millis() as i64,
        }
    }

    /// True when `other` fetches the same data into the same windows, so a reload can keep
    /// the series already loaded.
    pub fn same_data_as(&self, other: &QueryConfig) -> bool {
        self.expr == other.expr
            && self.step == other.step
            && self.history == other.history
            && self.max_series == other.max_series
            && self.freshness == other.freshness
    }
}

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path to the field, e.g. `queries[1].step`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// YAML syntax errors and unknown or mistyped keys; serde_yaml's message carries the line
    /// and column.
    #[error("{file}: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: {} problem(s):\n{}", .errors.len(), render_list(.errors))]
    Invalid {
        file: PathBuf,
        errors: Vec<FieldError>,
    },
}

fn render_list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// One line per problem, each prefixed with the file, for `check-config` output.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { file, errors } => errors
                .iter()
                .map(|e| format!("{}: {e}", file.display()))
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Reads and validates the file at `path`.
pub fn load_file(path: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
    let bytes = env.read_file(path).map_err(|source| ConfigError::Read {
        file: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
        file: path.to_owned(),
        message: format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
    })?;
    parse(&text, path, env)
}

/// Parses and validates `text`; `origin` names the file in messages and anchors relative
/// paths (token files, CA files) like Prometheus does.
pub fn parse(text: &str, origin: &Path, env: &dyn Environment) -> Result<Config, ConfigError> {
    if let Err(message) = nesting::check(text) {
        return Err(ConfigError::Syntax {
            file: origin.to_owned(),
            message,
        });
    }
    // Unknown keys do not stop the parse: every one is collected and reported with the other
    // problems, with its line and column.
    let mut unknown_keys = Vec::new();
    let raw: RawConfig =
        serde_ignored::deserialize(serde_yaml::Deserializer::from_str(text), |path| {
            unknown_keys.push(locate::ignored_path(&path))
        })
        .map_err(|e| ConfigError::Syntax {
            file: origin.to_owned(),
            message: e.to_string(),
        })?;
    let locations = locate::Locations::of(text);
    let base_dir = origin.parent().unwrap_or(Path::new("."));
    let mut v = Validator {
        errors: Vec::new(),
        warnings: Vec::new(),
        env,
        base_dir,
        locations: &locations,
    };
    for path in unknown_keys {
        let at = v.at(locations.key(&path));
        v.fail(
            path,
            format!("unknown key{at}; README.md's configuration reference lists the keys"),
        );
    }
    let prometheus = v.prometheus(&raw.prometheus);
    let server = v.server(&raw.server);
    let audit = raw.audit.as_ref().map(|a| v.audit(a));
    let alerts = raw
        .alerts
        .as_ref()
        .map(|a| v.alerts(a, raw.audit.is_some()));
    // The timeout is checked against each query even when another prometheus field is wrong.
    let timeout = raw
        .prometheus
        .timeout
        .as_deref()
        .map_or(Ok(DEFAULT_TIMEOUT), duration::parse)
        .ok()
        .filter(|t| !t.is_zero());
    let queries = v.queries(&raw.queries, timeout);
    let remote_write = raw.remote_write.as_ref().map(|r| v.remote_write(r));
    let shard = match &raw.shard {
        None => Some(foretell_core::shard::Shard::default()),
        Some(shard) => match foretell_core::shard::Shard::new(shard.index, shard.count) {
            Ok(shard) => Some(shard),
            Err(message) => {
                v.fail("shard", message);
                None
            }
        },
    };
    match (prometheus, server, shard, v.errors.is_empty()) {
        (Some(prometheus), Some(server), Some(shard), true) => Ok(Config {
            prometheus,
            server,
            audit: audit.flatten(),
            alerts: alerts.flatten(),
            shard,
            remote_write: remote_write.flatten(),
            queries,
            warnings: v.warnings,
        }),
        _ => Err(ConfigError::Invalid {
            file: origin.to_owned(),
            errors: v.errors,
        }),
    }
}

struct Validator<'a> {
    errors: Vec<FieldError>,
    /// Settings that work but are risky, as `path: what and the fix`.
    warnings: Vec<String>,
    env: &'a dyn Environment,
    base_dir: &'a Path,
    /// Where each key and value is written, for the problems that name a line.
    locations: &'a locate::Locations,
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
    /// ` at line L column C`, or nothing when the position is unknown.
    fn at(&self, position: Option<locate::Position>) -> String {
        position.map(|p| format!(" at {p}")).unwrap_or_default()
    }

    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, path: &str, text: Option<&str>, default: Duration) -> Option<Duration> {
        match text {
            None => Some(default),
            Some(text) => match duration::parse(text) {
                Ok(d) => Some(d),
                Err(message) => {
                    self.fail(path, message);
                    None
                }
            },
        }
    }

    fn positive_duration(
        &mut self,
        path: &str,
        text: Option<&str>,
        default: Duration,
    ) -> Option<Duration> {
        let d = self.duration(path, text, default)?;
        if d.is_zero() {
            self.fail(path, "must be > 0, got 0s");
            return None;
        }
        Some(d)
    }

    fn read_file(&mut self, path: &str, file: &str) -> Option<Vec<u8>> {
        let resolved = self.base_dir.join(file);
        match self.env.read_file(&resolved) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.fail(path, format!("cannot read `{}`: {e}", resolved.display()));
                None
            }
        }
    }

    /// A file holding a secret: read like any other, with a warning when every user of the
    /// machine may read it.
    fn read_secret_file(&mut self, path: &str, file: &str) -> Option<Vec<u8>> {
        let bytes = self.read_file(path, file)?;
        let resolved = self.base_dir.join(file);
        if self.env.world_readable(&resolved) {
            self.warnings.push(format!(
                "{path}: `{}` is readable by every user of this machine; `chmod 600` it (or `chmod 640` with foretell's group)",
                resolved.display()
            ));
        }
        Some(bytes)
    }

    /// Two durations of which the first may not exceed the second (a backoff and its cap),
    /// each given as `(path, text, default)`.
    fn ordered_durations(
        &mut self,
        low: (&str, Option<&str>, Duration),
        high: (&str, Option<&str>, Duration),
    ) -> Option<(Duration, Duration)> {
        let first = self.positive_duration(low.0, low.1, low.2);
        let second = self.positive_duration(high.0, high.1, high.2);
        let (first, second) = (first?, second?);
        if first > second {
            let name = high.0.rsplit('.').next().unwrap_or(high.0);
            self.fail(
                low.0,
                format!("must not exceed {name} ({})", duration::format(second)),
            );
            return None;
        }
        Some((first, second))
    }

    /// A secret from exactly one of a file or an environment variable.
    fn secret(&mut self, path: &str, file: Option<&str>, env_var: Option<&str>) -> Option<Secret> {
        match (file, env_var) {
            (Some(_), Some(_)) => {
                self.fail(path, "set either the `_file` or the `_env` form, not both");
                None
            }
            (Some(file), None) => {
                let bytes = self.read_secret_file(&format!("{path}_file"), file)?;
                match String::from_utf8(bytes) {
                    Ok(text) if !text.trim().is_empty() => {
                        Some(Secret::new(text.trim().to_owned()))
                    }
                    Ok(_) => {
                        self.fail(format!("{path}_file"), format!("`{file}` is empty"));
                        None
                    }
                    Err(_) => {
                        self.fail(
                            format!("{path}_file"),
                            format!("`{file}` is not UTF-8 text"),
                        );
                        None
                    }
                }
            }
            (None, Some(var)) => match self.env.var(var) {
                Some(value) if !value.trim().is_empty() => {
                    Some(Secret::new(value.trim().to_owned()))
                }
                _ => {
                    self.fail(
                        format!("{path}_env"),
                        format!("environment variable `{var}` is not set or empty"),
                    );
                    None
                }
            },
            (None, None) => None,
        }
    }

    fn audit(&mut self, raw: &RawAudit) -> Option<AuditConfig> {
        if raw.path.trim().is_empty() {
            self.fail("audit.path", "must name the SQLite file of the audit log");
        }
        let (origin, text) = match (&raw.key_file, &raw.key_env) {
            (Some(_), Some(_)) => {
                self.fail("audit", "set either key_file or key_env, not both");
                return None;
            }
            (None, None) => {
                self.fail(
                    "audit",
                    "needs key_file or key_env: the keys that sign the log (KEY_ID:HEX_SECRET per line)",
                );
                return None;
            }
            (Some(file), None) => {
                let bytes = self.read_secret_file("audit.key_file", file)?;
                match String::from_utf8(bytes) {
                    Ok(text) => ("audit.key_file", text),
                    Err(_) => {
                        self.fail("audit.key_file", format!("`{file}` is not UTF-8 text"));
                        return None;
                    }
                }
            }
            (None, Some(var)) => match self.env.var(var) {
                Some(text) => ("audit.key_env", text),
                None => {
                    self.fail(
                        "audit.key_env",
                        format!("environment variable `{var}` is not set"),
                    );
                    return None;
                }
            },
        };
        let keys = match KeyRing::parse(&text) {
            Ok(keys) => keys,
            Err(error) => {
                self.fail(origin, error.to_string());
                return None;
            }
        };
        let verify_interval = match raw.verify_interval.as_deref() {
            None => Some(DEFAULT_AUDIT_VERIFY_INTERVAL),
            Some("off") => None,
            Some(text) => Some(self.positive_duration(
                "audit.verify_interval",
                Some(text),
                DEFAULT_AUDIT_VERIFY_INTERVAL,
            )?),
        };
        (!raw.path.trim().is_empty()).then(|| AuditConfig {
            path: self.base_dir.join(&raw.path),
            keys,
            verify_interval,
        })
    }

    /// A bearer token or basic auth (at most one) for an HTTP client at `path`.
    fn auth(
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
    fn http_url(&mut self, path: &str, text: &str, url_path: redact::Path) -> Option<SecretUrl> {
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
    fn headers(
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

    fn prometheus(&mut self, raw: &RawPrometheus) -> Option<PrometheusConfig> {
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
        })
    }

    fn retry(
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

    fn remote_write(&mut self, raw: &RawRemoteWrite) -> Option<RemoteWriteConfig> {
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

    fn server(&mut self, raw: &RawServer) -> Option<ServerConfig> {
        let text = raw
            .listen_address
            .as_deref()
            .unwrap_or(DEFAULT_LISTEN_ADDRESS);
        // Accept Prometheus' `:9896` shorthand for all interfaces.
        let normalised = if text.starts_with(':') {
            format!("0.0.0.0{text}")
        } else {
            text.to_owned()
        };
        let listen_address = match normalised.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.fail(
                    "server.listen_address",
                    format!("`{text}` is not HOST:PORT with a numeric host, e.g. `0.0.0.0:9896` or `127.0.0.1:9896`"),
                );
                None
            }
        };
        let shutdown_grace = self.positive_duration(
            "server.shutdown_grace",
            raw.shutdown_grace.as_deref(),
            Duration::from_secs(10),
        );
        let external_url = match raw.external_url.as_deref().map(Url::parse) {
            None => Some(None),
            Some(Ok(url)) if matches!(url.scheme(), "http" | "https") && url.has_host() => {
                Some(Some(url))
            }
            Some(Ok(url)) => {
                self.fail(
                    "server.external_url",
                    format!(
                        "`{}` is not an http:// or https:// URL with a host",
                        redact::url(url.as_str(), redact::Path::Shown)
                    ),
                );
                None
            }
            Some(Err(error)) => {
                self.fail(
                    "server.external_url",
                    format!(
                        "`{}` is not a URL ({error}); for example https://foretell.example.com",
                        redact::url(
                            raw.external_url.as_deref().unwrap_or_default(),
                            redact::Path::Shown
                        )
                    ),
                );
                None
            }
        };
        Some(ServerConfig {
            listen_address: listen_address?,
            shutdown_grace: shutdown_grace?,
            enable_lifecycle: raw.enable_lifecycle,
            external_url: external_url?,
        })
    }

    fn queries(&mut self, raw: &[RawQuery], timeout: Option<Duration>) -> Vec<QueryConfig> {
        if raw.is_empty() {
            self.fail("queries", "needs at least one query");
        }
        let mut names = BTreeSet::new();
        raw.iter()
            .enumerate()
            .filter_map(|(i, q)| {
                let path = format!("queries[{i}]");
                if !names.insert(q.name.as_str()) {
                    self.fail(
                        format!("{path}.name"),
                        format!(
                            "`{}` is used by an earlier query; names must be unique",
                            q.name
                        ),
                    );
                }
                self.query(&path, q, timeout)
            })
            .collect()
    }

    fn query(
        &mut self,
        path: &str,
        raw: &RawQuery,
        timeout: Option<Duration>,
    ) -> Option<QueryConfig> {
        let before = self.errors.len();
        let name_ok = !raw.name.is_empty()
            && raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
        if !name_ok {
            self.fail(
                format!("{path}.name"),
                format!(
                    "`{}` must be non-empty and use only letters, digits, `_`, `-`, `.` and `:`",
                    raw.name
                ),
            );
        }
        if raw.expr.trim().is_empty() {
            self.fail(
                format!("{path}.expr"),
                "must be a PromQL expression, got an empty string",
            );
        } else {
            let expr_path = format!("{path}.expr");
            match promql_parser::parser::parse(&raw.expr) {
                Err(reason) => {
                    // The parser's own words, on one bounded line: they name the token and the
                    // position within the expression.
                    let reason: String = reason
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                        .chars()
                        .take(200)
                        .collect();
                    let at = self.at(self.locations.value(&expr_path));
                    self.fail(expr_path, format!("not valid PromQL{at}: {reason}"));
                }
                // A range query evaluates an instant vector (or a scalar) at each step; a
                // range vector or a string is refused by Prometheus on every cycle.
                Ok(parsed) => match parsed.value_type() {
                    ValueType::Vector | ValueType::Scalar => {}
                    other => {
                        let at = self.at(self.locations.value(&expr_path));
                        self.fail(
                            expr_path,
                            format!(
                                "must return an instant vector{at}, got a {other}: foretell evaluates it as a range query at each step (for a range vector such as `x[5m]`, wrap it: `rate(x[5m])`, `avg_over_time(x[5m])`)"
                            ),
                        );
                    }
                },
            }
        }
        let step = self.positive_duration(
            &format!("{path}.step"),
            raw.step.as_deref(),
            Duration::from_secs(60),
        );
        let history = self.positive_duration(
            &format!("{path}.history"),
            raw.history.as_deref(),
            Duration::from_secs(7 * 86_400),
        );
        let interval = self.positive_duration(
            &format!("{path}.evaluation_interval"),
            raw.evaluation_interval.as_deref(),
            Duration::from_secs(60),
        );
        if let (Some(interval), Some(timeout)) = (interval, timeout) {
            if timeout >= interval {
                self.fail(
                    format!("{path}.evaluation_interval"),
                    format!(
                        "must be longer than prometheus.timeout ({}), got {}; a slow Prometheus would otherwise make cycles overlap",
                        duration::format(timeout),
                        duration::format(interval)
                    ),
                );
            }
        }
        let max_series = raw.max_series.unwrap_or(10_000);
        if max_series == 0 {
            self.fail(format!("{path}.max_series"), "must be > 0, got 0");
        }
        let (step, history) = (step?, history?);
        let points = (history.as_millis() / step.as_millis().max(1)) as u64;
        if points < 2 {
            self.fail(
                format!("{path}.history"),
                format!(
                    "must cover at least 2 steps of {}, got {}",
                    duration::format(step),
                    duration::format(history)
                ),
            );
        } else if points > MAX_POINTS_PER_SERIES {
            self.fail(
                format!("{path}.history"),
                format!(
                    "{} at step {} is {points} points per series; at most {MAX_POINTS_PER_SERIES} (raise step or shorten history)",
                    duration::format(history),
                    duration::format(step)
                ),
            );
        }
        let freshness = self.duration(
            &format!("{path}.freshness"),
            raw.freshness.as_deref(),
            (step * 2).max(Duration::from_secs(300)),
        );
        if let Some(f) = freshness {
            if f < step {
                self.fail(
                    format!("{path}.freshness"),
                    format!(
                        "must be at least one step ({}), got {}",
                        duration::format(step),
                        duration::format(f)
                    ),
                );
            }
        }
        let model = self.model(&format!("{path}.model"), &raw.model, step, history);
        let refit_interval = self.positive_duration(
            &format!("{path}.model.refit_interval"),
            raw.model.refit_interval.as_deref(),
            Duration::from_secs(3600),
        );
        let horizons = self.horizons(
            &format!("{path}.model.horizons"),
            raw.model.horizons.as_deref(),
            step,
        );
        let threshold = match &raw.threshold {
            Some(t) => self
                .threshold(&format!("{path}.threshold"), t, step)
                .map(Some),
            None => Some(None),
        };
        let live_record = self.live_record(path, raw.live_record.as_deref(), step);
        let unit = self.unit(path, raw.unit.as_deref());
        if self.errors.len() > before {
            return None;
        }
        if let (Some(model), Some(horizons)) = (&model, &horizons) {
            self.warn_unvalidated_horizons(path, model, horizons, step, history);
        }
        Some(QueryConfig {
            name: raw.name.clone(),
            expr: raw.expr.clone(),
            step,
            history,
            evaluation_interval: interval?,
            freshness: freshness?,
            max_series,
            model: ForecastModel {
                // Refits validate their model choice at the exported horizons.
                horizon_steps: horizons
                    .iter()
                    .flatten()
                    .map(|h| h.steps)
                    .max()
                    .unwrap_or(0),
                ..model?
            },
            refit_interval: refit_interval?,
            horizons: horizons?,
            threshold: threshold?,
            live_record: live_record?,
            unit: unit?,
        })
    }

    /// `live_record`: a duration of at most [`MAX_LIVE_RECORD_POINTS`] steps, `0s` for none.
    fn live_record(&mut self, path: &str, text: Option<&str>, step: Duration) -> Option<Duration> {
        let path = format!("{path}.live_record");
        let record = self.duration(&path, text, DEFAULT_LIVE_RECORD)?;
        let points = record.as_millis() / step.as_millis().max(1);
        if points > MAX_LIVE_RECORD_POINTS as u128 {
            self.fail(
                path,
                format!(
                    "{} at step {} is {points} points per series; at most {MAX_LIVE_RECORD_POINTS} (20 bytes each): shorten it, charts replay older ranges from Prometheus",
                    duration::format(record),
                    duration::format(step)
                ),
            );
            return None;
        }
        Some(record)
    }

    /// `unit`: short printable text for chart axes.
    fn unit(&mut self, path: &str, text: Option<&str>) -> Option<String> {
        let unit = text.unwrap_or_default().trim();
        if unit.chars().count() > MAX_UNIT_CHARS || unit.chars().any(char::is_control) {
            self.fail(
                format!("{path}.unit"),
                format!("must be at most {MAX_UNIT_CHARS} printable characters (for example `requests/s` or `bytes`)"),
            );
            return None;
        }
        Some(unit.to_owned())
    }

    fn model(
        &mut self,
        path: &str,
        raw: &RawModel,
        step: Duration,
        history: Duration,
    ) -> Option<ForecastModel> {
        let coverage = match Coverage::new(raw.coverage.unwrap_or(Coverage::DEFAULT.get())) {
            Ok(c) => Some(c),
            Err(e) => {
                self.fail(format!("{path}.coverage"), e.to_string());
                None
            }
        };
        let history_points = (history.as_millis() / step.as_millis().max(1)) as usize + 1;
        let min_points = raw.min_history_points.unwrap_or(30.min(history_points));
        if min_points < 8 || min_points > history_points {
            self.fail(
                format!("{path}.min_history_points"),
                format!("must be between 8 and the {history_points} points the history holds, got {min_points}"),
            );
        }
        let season = match &raw.seasonality {
            None => SeasonSpec::Auto(auto_season_candidates(step, history)),
            Some(RawSeasonality::One(word)) if word == "auto" => {
                SeasonSpec::Auto(auto_season_candidates(step, history))
            }
            Some(RawSeasonality::One(word)) if word == "none" => SeasonSpec::None,
            Some(RawSeasonality::One(period)) => SeasonSpec::Periods(vec![self.season_period(
                &format!("{path}.seasonality"),
                period,
                step,
                history,
            )?]),
            Some(RawSeasonality::Many(periods)) => {
                if periods.is_empty() {
                    self.fail(
                        format!("{path}.seasonality"),
                        "an empty list; write `none` for no season",
                    );
                }
                let mut steps = Vec::new();
                for (i, period) in periods.iter().enumerate() {
                    if let Some(p) = self.season_period(
                        &format!("{path}.seasonality[{i}]"),
                        period,
                        step,
                        history,
                    ) {
                        if steps.contains(&p) {
                            self.fail(
                                format!("{path}.seasonality[{i}]"),
                                format!("{period} is listed twice"),
                            );
                        }
                        steps.push(p);
                    }
                }
                steps.sort_unstable();
                SeasonSpec::Periods(steps)
            }
        };
        Some(ForecastModel {
            coverage: coverage?,
            min_points,
            season,
            horizon_steps: 0,
        })
    }

    /// Warns when the history cannot spare a held-out part for the forecasts' model choice at
    /// the longest horizon (README, "How the model works", item 4): the forecasts then come
    /// from the in-sample model alone, or are validated at a shorter horizon only. With
    /// `seasonality: auto` the daily cycle is assumed kept, the usual case.
    fn warn_unvalidated_horizons(
        &mut self,
        path: &str,
        model: &ForecastModel,
        horizons: &[Horizon],
        step: Duration,
        history: Duration,
    ) {
        let Some(longest) = horizons.iter().map(|h| h.steps as usize).max() else {
            return;
        };
        let window = (history.as_millis() / step.as_millis().max(1)) as usize + 1;
        let fitting = |periods: &[usize]| -> Vec<usize> {
            periods
                .iter()
                .copied()
                .filter(|&p| p >= 2 && 2 * p <= window)
                .collect()
        };
        let (periods, naive) = match &model.season {
            SeasonSpec::None => (Vec::new(), Vec::new()),
            SeasonSpec::Periods(periods) => (fitting(periods), fitting(periods)),
            SeasonSpec::Auto(candidates) => {
                let naive = fitting(candidates);
                (naive.iter().copied().min().into_iter().collect(), naive)
            }
        };
        let validated =
            ensemble::validated_horizon(window, &periods, &naive, model.min_points, longest);
        if validated >= longest {
            return;
        }
        let needed =
            ensemble::training_points_needed(&periods, &naive, model.min_points) + 2 * longest;
        // Rounded up to whole hours (or steps, when longer), as a person would write it.
        let unit = step.max(Duration::from_secs(3600)).as_millis();
        let points_span = step.as_millis() * (needed as u128 - 1);
        let suggested = duration::format(Duration::from_millis(
            (points_span.div_ceil(unit) * unit) as u64,
        ));
        let horizon = duration::format(step * longest as u32);
        let consequence = if validated == 0 {
            "leaves no held-out part for the forecasts' model choice, so the in-sample model forecasts alone (intervals from its in-sample errors)".to_owned()
        } else {
            format!(
                "validates the forecasts' model choice up to {} only; longer horizons reuse its weights",
                duration::format(step * validated as u32)
            )
        };
        self.warnings.push(format!(
            "{path}.history: {} at step {} {consequence}; a history of at least {suggested} validates the {horizon} horizon",
            duration::format(history),
            duration::format(step),
        ));
    }

    /// One configured season period, in steps. MSTL needs two full cycles in the window.
    fn season_period(
        &mut self,
        path: &str,
        text: &str,
        step: Duration,
        history: Duration,
    ) -> Option<usize> {
        let period = match duration::parse(text) {
            Ok(p) => p,
            Err(message) => {
                self.fail(path.to_owned(), format!("{message}, or `auto` or `none`"));
                return None;
            }
        };
        if period * 2 > history {
            self.fail(
                path.to_owned(),
                format!(
                    "a season of {} needs a history of at least two periods ({}) for MSTL to separate it, got {} (raise `history`)",
                    duration::format(period),
                    duration::format(period * 2),
                    duration::format(history)
                ),
            );
            return None;
        }
        if period < step * 2 {
            self.fail(
                path.to_owned(),
                format!(
                    "a season must span at least two steps ({}), got {}",
                    duration::format(step * 2),
                    duration::format(period)
                ),
            );
            return None;
        }
        Some((period.as_millis() / step.as_millis().max(1)) as usize)
    }

    fn horizons(
        &mut self,
        path: &str,
        raw: Option<&[String]>,
        step: Duration,
    ) -> Option<Vec<Horizon>> {
        let default = [String::from("1h")];
        let raw = raw.unwrap_or(&default);
        let before = self.errors.len();
        let mut horizons: Vec<(Duration, Horizon)> = Vec::new();
        for (i, text) in raw.iter().enumerate() {
            let item = format!("{path}[{i}]");
            let Some(horizon) = self.positive_duration(&item, Some(text), step) else {
                continue;
            };
            if horizon > MAX_HORIZON {
                self.fail(
                    item,
                    format!(
                        "at most {}, got {}",
                        duration::format(MAX_HORIZON),
                        duration::format(horizon)
                    ),
                );
                continue;
            }
            let steps = horizon.as_millis().div_ceil(step.as_millis().max(1)).max(1);
            let label = duration::format(horizon);
            if horizons.iter().any(|(_, h)| h.label == label) {
                self.fail(item, format!("{label} is listed twice"));
                continue;
            }
            horizons.push((
                horizon,
                Horizon {
                    label,
                    steps: u32::try_from(steps).unwrap_or(u32::MAX),
                },
            ));
        }
        if self.errors.len() > before {
            return None;
        }
        horizons.sort_by_key(|(d, _)| *d);
        Some(horizons.into_iter().map(|(_, h)| h).collect())
    }

    fn threshold(
        &mut self,
        path: &str,
        raw: &RawThreshold,
        step: Duration,
    ) -> Option<ThresholdSettings> {
        let before = self.errors.len();
        if !raw.value.is_finite() {
            self.fail(
                format!("{path}.value"),
                format!("must be a finite number, got {}", raw.value),
            );
        }
        let rising = match raw.direction.as_deref() {
            None | Some("above") => true,
            Some("below") => false,
            Some(other) => {
                self.fail(format!("{path}.direction"), format!("must be `above` (the series rising past the value is the event) or `below`, got `{other}`"));
                true
            }
        };
        let bound = match raw.bound.as_deref() {
            None | Some("expected") => ThresholdBound::Expected,
            Some("band") => ThresholdBound::Band,
            Some(other) => {
                self.fail(format!("{path}.bound"), format!("must be `expected` (the forecast itself) or `band` (its interval edge: the earlier, pessimistic time), got `{other}`"));
                ThresholdBound::Expected
            }
        };
        let within = self.positive_duration(
            &format!("{path}.within"),
            raw.within.as_deref(),
            Duration::from_secs(7 * 86_400),
        );
        if let Some(w) = within {
            if w > MAX_HORIZON || w < step {
                self.fail(
                    format!("{path}.within"),
                    format!(
                        "must be between one step ({}) and {}, got {}",
                        duration::format(step),
                        duration::format(MAX_HORIZON),
                        duration::format(w)
                    ),
                );
            }
        }
        if self.errors.len() > before {
            return None;
        }
        let steps = within?.as_millis().div_ceil(step.as_millis().max(1)).max(1);
        Some(ThresholdSettings {
            value: raw.value,
            rising,
            bound,
            within_steps: u32::try_from(steps).unwrap_or(u32::MAX),
        })
    }
}

/// Forecasts further out than this say more about the model than about the series.
const MAX_HORIZON: Duration = Duration::from_secs(90 * 86_400);

/// Calendar periods `seasonality: auto` tries: a day and a week, where a period spans at
/// least 4 steps and two cycles fit in the history. Each is kept only when the series shows it.
pub(crate) fn auto_season_candidates(step: Duration, history: Duration) -> Vec<usize> {
    [Duration::from_secs(86_400), Duration::from_secs(7 * 86_400)]
        .into_iter()
        .filter(|period| *period * 2 <= history && *period >= step * 4)
        .map(|period| (period.as_millis() / step.as_millis().max(1)) as usize)
        .collect()
}

#[cfg(test)]
mod tests;
