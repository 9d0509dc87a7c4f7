//! The YAML file as written, before validation. Unknown keys are not rejected here but
//! collected while deserialising (`serde_ignored`, in `config::parse`), so that every one is
//! reported with its line and column, not only the first, and a typo is never a silently
//! ignored setting.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct RawConfig {
    pub prometheus: RawPrometheus,
    #[serde(default)]
    pub server: RawServer,
    pub audit: Option<RawAudit>,
    pub alerts: Option<RawAlerts>,
    pub shard: Option<RawShard>,
    pub remote_write: Option<RawRemoteWrite>,
    pub state: Option<RawState>,
    pub queries: Vec<RawQuery>,
}

#[derive(Debug, Deserialize)]
pub struct RawState {
    pub path: Option<String>,
    pub interval: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawRemoteWrite {
    pub url: String,
    pub timeout: Option<String>,
    pub bearer_token_file: Option<String>,
    pub bearer_token_env: Option<String>,
    pub basic_auth: Option<RawBasicAuth>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub max_samples_per_request: Option<usize>,
    pub interval: Option<String>,
    pub retry: Option<RawRetry>,
}

#[derive(Debug, Deserialize)]
pub struct RawShard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, Deserialize)]
pub struct RawRateLimit {
    pub per_second: Option<f64>,
    pub burst: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct RawAlerts {
    pub max_body_bytes: Option<u64>,
    pub body_read_timeout: Option<String>,
    pub bearer_token_file: Option<String>,
    pub bearer_token_env: Option<String>,
    pub dedupe_window: Option<String>,
    pub max_queued: Option<u64>,
    pub rate_limit: Option<RawRateLimit>,
    pub retry: Option<RawDeliveryRetry>,
    pub circuit_breaker: Option<RawCircuitBreaker>,
    pub on_demand: Option<RawOnDemand>,
    #[serde(default)]
    pub receivers: Vec<RawReceiver>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
pub struct RawDeliveryRetry {
    pub initial_backoff: Option<String>,
    pub max_backoff: Option<String>,
    pub give_up_after: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawCircuitBreaker {
    pub failures: Option<u32>,
    pub cooldown: Option<String>,
    pub max_cooldown: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawOnDemand {
    #[serde(default = "enabled")]
    pub enabled: bool,
    pub history: Option<String>,
    pub step: Option<String>,
    pub timeout: Option<String>,
    pub graph_expressions: Option<String>,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct RawReceiver {
    pub name: String,
    pub url: String,
    pub timeout: Option<String>,
    pub bearer_token_file: Option<String>,
    pub bearer_token_env: Option<String>,
    pub basic_auth: Option<RawBasicAuth>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
pub struct RawRoute {
    pub receiver: String,
    #[serde(default, rename = "match")]
    pub matchers: BTreeMap<String, String>,
    pub min_confidence: Option<f64>,
}

#[derive(Debug, Deserialize)]
pub struct RawAudit {
    pub path: String,
    pub key_file: Option<String>,
    pub key_env: Option<String>,
    pub verify_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawPrometheus {
    pub url: String,
    pub timeout: Option<String>,
    pub bearer_token_file: Option<String>,
    pub bearer_token_env: Option<String>,
    pub basic_auth: Option<RawBasicAuth>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub tls: Option<RawTls>,
    pub max_concurrent_requests: Option<usize>,
    pub max_response_bytes: Option<u64>,
    pub max_points_per_request: Option<u64>,
    pub history_batch_series: Option<usize>,
    pub retry: Option<RawRetry>,
    pub partial_response: Option<bool>,
    pub compression: Option<String>,
    pub remote_read: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawBasicAuth {
    pub username: String,
    pub password_file: Option<String>,
    pub password_env: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct RawTls {
    pub ca_file: Option<String>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Deserialize)]
pub struct RawRetry {
    pub max_attempts: Option<u32>,
    pub initial_backoff: Option<String>,
    pub max_backoff: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawServer {
    pub listen_address: Option<String>,
    pub shutdown_grace: Option<String>,
    #[serde(default)]
    pub enable_lifecycle: bool,
    pub external_url: Option<String>,
    pub max_exported_series: Option<usize>,
}

#[derive(Debug, Deserialize)]
pub struct RawQuery {
    pub name: String,
    pub expr: String,
    pub step: Option<String>,
    pub history: Option<String>,
    pub evaluation_interval: Option<String>,
    pub freshness: Option<String>,
    pub max_series: Option<usize>,
    #[serde(default)]
    pub model: RawModel,
    pub threshold: Option<RawThreshold>,
    pub live_record: Option<String>,
    pub unit: Option<String>,
    pub peers: Option<RawPeers>,
}

/// `queries[].peers`: peer outlier detection.
#[derive(Debug, Deserialize)]
pub struct RawPeers {
    #[serde(default)]
    pub by: Vec<String>,
    pub method: Option<String>,
    pub window: Option<String>,
    pub sensitivity: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawModel {
    pub coverage: Option<f64>,
    pub min_history_points: Option<usize>,
    pub seasonality: Option<RawSeasonality>,
    pub refit_interval: Option<String>,
    pub horizons: Option<Vec<String>>,
    pub first_fit: Option<String>,
}

/// `seasonality: auto`, `seasonality: 1d` or `seasonality: [1d, 1w]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSeasonality {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub struct RawThreshold {
    pub value: f64,
    pub direction: Option<String>,
    pub bound: Option<String>,
    pub within: Option<String>,
}
