//! The `alerts` section: the Alertmanager webhook receiver, enrichment and forwarding.

use std::collections::BTreeSet;
use std::time::Duration;

use foretell_core::alerts::confidence::Confidence;
use foretell_core::alerts::delivery::{RetrySchedule, GIVE_UP_ATTEMPT_SPACING_MS};
use foretell_core::alerts::rate_limit::RateLimit;
use http::{HeaderName, HeaderValue};

use super::raw::{RawAlerts, RawReceiver, RawRoute};
use super::validator::Validator;
use super::{duration, Auth, Secret};

/// Alertmanager sends 64 alerts at most per notification by default (`max_alerts: 0` is
/// unlimited); 4 MiB holds thousands of alerts with long annotations.
const DEFAULT_MAX_BODY_BYTES: u64 = 4 << 20;

/// A validated `alerts` section.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// Webhook bodies larger than this are refused with 413 before they are read.
    pub max_body_bytes: u64,
    /// Time a client has to send the whole body.
    pub body_read_timeout: Duration,
    /// When set, Alertmanager must send `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// A notification identical to one received this recently (Alertmanager HA peers send
    /// the same notification each) is acknowledged and not forwarded again.
    pub dedupe_window: Duration,
    /// Notifications waiting to be routed plus deliveries waiting to go out, beyond which new
    /// notifications are refused with 503 (and audited).
    pub max_queued: u64,
    /// Webhook notifications each client address may send: `burst` at once, `per_second` on
    /// average; beyond, 429 with `Retry-After`.
    pub rate_limit: RateLimit,
    pub retry: RetrySchedule,
    pub circuit_breaker: BreakerConfig,
    pub on_demand: Option<OnDemandConfig>,
    pub receivers: Vec<ReceiverConfig>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures (connect errors, timeouts, 429, 5xx) that open the breaker.
    pub failures: u32,
    pub cooldown: Duration,
    pub max_cooldown: Duration,
}

/// How an alert on a series foretell does not track is assessed: its rule's expression is
/// fetched from Prometheus over `history` at `step` and a model fitted on the fly, all within
/// `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnDemandConfig {
    pub history: Duration,
    pub step: Duration,
    pub timeout: Duration,
    /// Which expressions `/graph?expr=` draws.
    pub graph_expressions: GraphExpressions,
}

/// Which expressions `/graph?expr=` draws (`alerts.on_demand.graph_expressions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphExpressions {
    /// Only those of links foretell signed: the rule expressions of the alerts it enriched.
    Linked,
    /// Any expression anyone who reaches `/graph` sends: foretell evaluates it in Prometheus
    /// with its own credentials. Opt in only behind authentication.
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReceiverConfig {
    pub name: String,
    pub url: super::SecretUrl,
    pub timeout: Duration,
    pub auth: Option<Auth>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// Alerts whose labels equal every matcher go to `receiver`, firing ones only when their
/// confidence is at least `min_confidence` (or unavailable).
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub receiver: String,
    pub matchers: Vec<(String, String)>,
    pub min_confidence: Option<Confidence>,
}

impl Validator<'_> {
    pub(super) fn alerts(
        &mut self,
        raw: &RawAlerts,
        audit_configured: bool,
    ) -> Option<AlertsConfig> {
        let before = self.errors.len();
        if !audit_configured {
            self.fail(
                "alerts",
                "needs the `audit` section: accepted notifications are kept in the audit database's outbox, beside the records of what was done with them",
            );
        }
        let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            self.fail(
                "alerts.max_body_bytes",
                format!("must be at least 1024, got {max_body_bytes}"),
            );
        }
        let body_read_timeout = self.positive_duration(
            "alerts.body_read_timeout",
            raw.body_read_timeout.as_deref(),
            Duration::from_secs(10),
        );
        let bearer_token = self.secret(
            "alerts.bearer_token",
            raw.bearer_token_file.as_deref(),
            raw.bearer_token_env.as_deref(),
        );
        if raw.bearer_token_file.is_none() && raw.bearer_token_env.is_none() {
            self.warnings.push(
                "alerts: the webhook accepts notifications from anyone who reaches it; set alerts.bearer_token_file (and the same token in Alertmanager's http_config)".into(),
            );
        }
        let dedupe_window = self.duration(
            "alerts.dedupe_window",
            raw.dedupe_window.as_deref(),
            Duration::from_secs(120),
        );
        let max_queued = raw.max_queued.unwrap_or(10_000);
        if !(1..=1_000_000).contains(&max_queued) {
            self.fail(
                "alerts.max_queued",
                format!("must be between 1 and 1000000, got {max_queued}"),
            );
        }
        let rate_limit = RateLimit {
            per_second: raw
                .rate_limit
                .as_ref()
                .and_then(|r| r.per_second)
                .unwrap_or(100.0),
            burst: raw
                .rate_limit
                .as_ref()
                .and_then(|r| r.burst)
                .unwrap_or(1000.0),
        };
        for (field, value) in [
            ("per_second", rate_limit.per_second),
            ("burst", rate_limit.burst),
        ] {
            if !(value.is_finite() && value >= 1.0) {
                self.fail(
                    format!("alerts.rate_limit.{field}"),
                    format!("must be at least 1, got {value}"),
                );
            }
        }
        let retry = self.delivery_retry(raw);
        let circuit_breaker = self.circuit_breaker(raw);
        let on_demand = self.on_demand(raw);
        let receivers = self.receivers(&raw.receivers);
        let names: BTreeSet<&str> = raw.receivers.iter().map(|r| r.name.as_str()).collect();
        let routes = self.routes(&raw.routes, &names);
        if self.errors.len() > before {
            return None;
        }
        Some(AlertsConfig {
            max_body_bytes,
            body_read_timeout: body_read_timeout?,
            bearer_token,
            dedupe_window: dedupe_window?,
            max_queued,
            rate_limit,
            retry: retry?,
            circuit_breaker: circuit_breaker?,
            on_demand: on_demand?,
            receivers,
            routes,
        })
    }

    fn delivery_retry(&mut self, raw: &RawAlerts) -> Option<RetrySchedule> {
        let retry = raw.retry.as_ref();
        let (initial, max) = self.ordered_durations(
            (
                "alerts.retry.initial_backoff",
                retry.and_then(|r| r.initial_backoff.as_deref()),
                Duration::from_secs(1),
            ),
            (
                "alerts.retry.max_backoff",
                retry.and_then(|r| r.max_backoff.as_deref()),
                Duration::from_secs(300),
            ),
        )?;
        self.at_most_an_hour("alerts.retry.max_backoff", max);
        let give_up = self.positive_duration(
            "alerts.retry.give_up_after",
            retry.and_then(|r| r.give_up_after.as_deref()),
            Duration::from_secs(86_400),
        )?;
        Some(RetrySchedule {
            initial_backoff_ms: initial.as_millis() as i64,
            max_backoff_ms: max.as_millis() as i64,
            give_up_after_ms: give_up.as_millis() as i64,
        })
    }

    fn circuit_breaker(&mut self, raw: &RawAlerts) -> Option<BreakerConfig> {
        let breaker = raw.circuit_breaker.as_ref();
        let failures = breaker.and_then(|b| b.failures).unwrap_or(5);
        if failures == 0 {
            self.fail("alerts.circuit_breaker.failures", "must be > 0, got 0");
        }
        let (cooldown, max_cooldown) = self.ordered_durations(
            (
                "alerts.circuit_breaker.cooldown",
                breaker.and_then(|b| b.cooldown.as_deref()),
                Duration::from_secs(30),
            ),
            (
                "alerts.circuit_breaker.max_cooldown",
                breaker.and_then(|b| b.max_cooldown.as_deref()),
                Duration::from_secs(600),
            ),
        )?;
        self.at_most_an_hour("alerts.circuit_breaker.max_cooldown", max_cooldown);
        (failures > 0).then_some(BreakerConfig {
            failures,
            cooldown,
            max_cooldown,
        })
    }

    /// A delivery is given up only after an attempt per hour of its age (so that a wall
    /// clock stepping forward gives nothing up); a wait between attempts longer than an hour
    /// would keep a failing delivery forever.
    fn at_most_an_hour(&mut self, path: &str, wait: Duration) {
        let hour = Duration::from_millis(GIVE_UP_ATTEMPT_SPACING_MS as u64);
        if wait > hour {
            self.fail(
                path,
                format!(
                    "must be at most {} (a delivery is given up only after an attempt per hour of its age), got {}",
                    duration::format(hour),
                    duration::format(wait)
                ),
            );
        }
    }

    /// `Some(None)`: on-demand assessment switched off.
    fn on_demand(&mut self, raw: &RawAlerts) -> Option<Option<OnDemandConfig>> {
        let on_demand = raw.on_demand.as_ref();
        if on_demand.is_some_and(|o| !o.enabled) {
            return Some(None);
        }
        let history = self.positive_duration(
            "alerts.on_demand.history",
            on_demand.and_then(|o| o.history.as_deref()),
            Duration::from_secs(86_400),
        )?;
        let step = self.positive_duration(
            "alerts.on_demand.step",
            on_demand.and_then(|o| o.step.as_deref()),
            Duration::from_secs(60),
        )?;
        let timeout = self.positive_duration(
            "alerts.on_demand.timeout",
            on_demand.and_then(|o| o.timeout.as_deref()),
            Duration::from_secs(2),
        )?;
        let points = history.as_millis() / step.as_millis().max(1);
        if !(10..=super::PROMETHEUS_MAX_POINTS as u128).contains(&points) {
            self.fail(
                "alerts.on_demand.history",
                format!(
                    "{} at step {} is {points} points; between 10 and {} fit in one request",
                    duration::format(history),
                    duration::format(step),
                    super::PROMETHEUS_MAX_POINTS
                ),
            );
            return None;
        }
        let graph_expressions = match on_demand.and_then(|o| o.graph_expressions.as_deref()) {
            None | Some("linked") => GraphExpressions::Linked,
            Some("any") => GraphExpressions::Any,
            Some(other) => {
                self.fail(
                    "alerts.on_demand.graph_expressions",
                    format!(
                        "`{}` is neither `linked` (only the expressions of chart links foretell signed, the default) nor `any`",
                        other.chars().take(64).collect::<String>()
                    ),
                );
                return None;
            }
        };
        Some(Some(OnDemandConfig {
            history,
            step,
            timeout,
            graph_expressions,
        }))
    }

    fn receivers(&mut self, raw: &[RawReceiver]) -> Vec<ReceiverConfig> {
        let mut seen = BTreeSet::new();
        let mut receivers = Vec::new();
        for (i, receiver) in raw.iter().enumerate() {
            let path = format!("alerts.receivers[{i}]");
            let name_ok = !receiver.name.is_empty()
                && receiver
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !name_ok {
                self.fail(
                    format!("{path}.name"),
                    format!(
                        "`{}` must be non-empty and use only letters, digits, `_`, `-` and `.`",
                        receiver.name
                    ),
                );
            } else if !seen.insert(receiver.name.as_str()) {
                self.fail(
                    format!("{path}.name"),
                    format!("`{}` is used by an earlier receiver", receiver.name),
                );
            }
            let url = self.http_url(
                &format!("{path}.url"),
                &receiver.url,
                foretell_core::redact::Path::Hidden,
            );
            let timeout = self.positive_duration(
                &format!("{path}.timeout"),
                receiver.timeout.as_deref(),
                Duration::from_secs(10),
            );
            let auth = self.auth(
                &path,
                receiver.bearer_token_file.as_deref(),
                receiver.bearer_token_env.as_deref(),
                receiver.basic_auth.as_ref(),
            );
            let headers = self.headers(&format!("{path}.headers"), &receiver.headers);
            if let (Some(url), Some(timeout), true) = (url, timeout, name_ok) {
                receivers.push(ReceiverConfig {
                    name: receiver.name.clone(),
                    url,
                    timeout,
                    auth,
                    headers,
                });
            }
        }
        receivers
    }

    fn routes(&mut self, raw: &[RawRoute], receivers: &BTreeSet<&str>) -> Vec<RouteConfig> {
        if raw.is_empty() && !receivers.is_empty() {
            self.fail(
                "alerts.routes",
                "needs at least one route; `- receiver: NAME` sends every alert to NAME",
            );
        }
        let mut routes = Vec::new();
        for (i, route) in raw.iter().enumerate() {
            let path = format!("alerts.routes[{i}]");
            if !receivers.contains(route.receiver.as_str()) {
                self.fail(
                    format!("{path}.receiver"),
                    format!(
                        "`{}` is not a receiver; known: {}",
                        route.receiver,
                        receivers.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            let min_confidence = match route.min_confidence.map(Confidence::new) {
                None => None,
                Some(Ok(confidence)) => Some(confidence),
                Some(Err(error)) => {
                    self.fail(format!("{path}.min_confidence"), error.to_string());
                    None
                }
            };
            routes.push(RouteConfig {
                receiver: route.receiver.clone(),
                matchers: route
                    .matchers
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
                min_confidence,
            });
        }
        routes
    }
}
