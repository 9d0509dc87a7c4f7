//! `POST /alertmanager/webhook`: checks, bounds and commits a notification before answering.
//!
//! Answers: 200 once committed (or recognised as an HA duplicate of a committed one); 400 with
//! the reason for a body that is not a version-4 payload; 401 without the configured bearer
//! token; 408 when the body does not arrive within `body_read_timeout`; 413 for a body over
//! `max_body_bytes`, decided from `Content-Length` before reading and enforced while reading;
//! 415 for a body that is not `application/json`; 429 past the address's rate limit (requests
//! with a wrong token draw on a bucket of their own, so a flood of them cannot lock out the
//! real Alertmanager at the same address); 503 when the commit fails (disk full, database
//! locked), so Alertmanager retries.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use foretell_core::alerts::rate_limit::{Admission, RateLimit, RateLimiter};
use foretell_core::alerts::webhook;
use foretell_core::audit::Arrived;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use tokio::sync::Notify;

use super::metrics::AlertTelemetry;
use super::outbox::{self, Accepted, Arrival, Outbox};
use crate::clock::Clock;
use crate::config::{AlertsConfig, Secret};

/// Every status the webhook answers with, so `foretell_webhook_requests_total{code}` starts at 0
/// for each: a rate over a counter that appears only with its first 503 misses that burst.
pub const ANSWERED_CODES: [u16; 8] = [200, 400, 401, 408, 413, 415, 429, 503];

/// Client addresses whose webhook rate is remembered at once.
const MAX_RATE_LIMITED_CLIENTS: usize = 10_000;

/// Requests with a missing or wrong token an address may make: a burst of 10, then one a
/// second. They never draw on the bucket of the notifications the same address sends with
/// the right token.
const AUTH_FAILURES: RateLimit = RateLimit {
    per_second: 1.0,
    burst: 10.0,
};

/// The inbound stage: what it checks a request against and where it commits it.
pub struct Webhook {
    bearer_token: Option<Secret>,
    max_body_bytes: u64,
    body_read_timeout: Duration,
    admission: outbox::Admission,
    outbox: Outbox,
    telemetry: Arc<AlertTelemetry>,
    clock: Arc<dyn Clock>,
    /// Wakes the router when a notification was committed.
    received: Arc<Notify>,
    /// Per-client token buckets, refilled on the monotonic clock.
    limiter: Mutex<RateLimiter<IpAddr>>,
    /// Per-client buckets of requests with a missing or wrong token, apart from `limiter`.
    auth_failures: Mutex<RateLimiter<IpAddr>>,
}

impl Webhook {
    pub fn new(
        config: &AlertsConfig,
        outbox: Outbox,
        telemetry: Arc<AlertTelemetry>,
        clock: Arc<dyn Clock>,
        received: Arc<Notify>,
    ) -> Webhook {
        Webhook {
            bearer_token: config.bearer_token.clone(),
            max_body_bytes: config.max_body_bytes,
            body_read_timeout: config.body_read_timeout,
            admission: outbox::Admission {
                dedupe_window_ms: config.dedupe_window.as_millis() as i64,
                max_queued: config.max_queued,
            },
            outbox,
            telemetry,
            clock,
            received,
            limiter: Mutex::new(RateLimiter::new(
                config.rate_limit,
                MAX_RATE_LIMITED_CLIENTS,
            )),
            auth_failures: Mutex::new(RateLimiter::new(AUTH_FAILURES, MAX_RATE_LIMITED_CLIENTS)),
        }
    }

    /// Whether requests must carry the bearer token (they need no basic auth then).
    pub fn has_token(&self) -> bool {
        self.bearer_token.is_some()
    }

    /// `None` when `client` may post now; otherwise how long it should wait. Requests that
    /// failed authentication are limited on their own buckets.
    fn rate_limited(&self, client: IpAddr, authenticated: bool) -> Option<Duration> {
        let now_ms = self.clock.monotonic_ms();
        let limiter = if authenticated {
            &self.limiter
        } else {
            &self.auth_failures
        };
        match limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(&client, now_ms)
        {
            Admission::Allowed => None,
            Admission::RetryAfterMs(ms) => Some(Duration::from_millis(ms as u64)),
        }
    }
}

/// Fingerprints listed in the `alert.received` record; the count is always there.
const MAX_FINGERPRINTS_RECORDED: usize = 1_000;

/// The status, a short plain-text reason and, with 429, the seconds to wait.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub reason: String,
    pub retry_after_seconds: Option<u64>,
}

impl From<(StatusCode, String)> for Answer {
    fn from((status, reason): (StatusCode, String)) -> Answer {
        Answer {
            status,
            reason,
            retry_after_seconds: None,
        }
    }
}

/// Handles one `POST` from `client` (the rate limits are per address).
pub async fn receive<B>(webhook: &Webhook, client: Option<IpAddr>, request: Request<B>) -> Answer
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let answer = handle(webhook, client, request).await;
    webhook.telemetry.webhook_answered(answer.status.as_u16());
    answer
}

async fn handle<B>(webhook: &Webhook, client: Option<IpAddr>, request: Request<B>) -> Answer
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let authenticated = webhook.bearer_token.as_ref().is_none_or(|token| {
        let expected = format!("Bearer {}", token.expose());
        request
            .headers()
            .get(header::AUTHORIZATION)
            .is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
    });
    if let Some(wait) = client.and_then(|ip| webhook.rate_limited(ip, authenticated)) {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let reason = if authenticated {
            format!("too many notifications from this address (alerts.rate_limit); retry in {seconds} s\n")
        } else {
            format!("too many requests with a missing or wrong bearer token from this address; retry in {seconds} s\n")
        };
        return Answer {
            status: StatusCode::TOO_MANY_REQUESTS,
            reason,
            retry_after_seconds: Some(seconds),
        };
    }
    if !authenticated {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (alerts.bearer_token_file)\n".into(),
        )
            .into();
    }
    if !is_json(request.headers().get(header::CONTENT_TYPE)) {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be Alertmanager's JSON (Content-Type: application/json)\n".into(),
        )
            .into();
    }
    let max = webhook.max_body_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max) {
        return too_large(max).into();
    }
    let body = Limited::new(request.into_body(), max as usize);
    let bytes = match tokio::time::timeout(webhook.body_read_timeout, body.collect()).await {
        Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {:?} (alerts.body_read_timeout)\n",
                    webhook.body_read_timeout
                ),
            )
                .into()
        }
        Ok(Err(error))
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large(max).into()
        }
        Ok(Err(error)) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the body could not be read: {error}\n"),
            )
                .into()
        }
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let notification = match webhook::parse(&bytes) {
        Ok(notification) => notification,
        Err(error) => {
            // Bounded: the reason quotes the offending value, which the sender chose.
            return (
                StatusCode::BAD_REQUEST,
                format!("{}\n", bounded(&error.to_string())),
            )
                .into();
        }
    };
    let now_ms = webhook.clock.now_ms();
    let arrived = Arrived {
        group_key: notification.group_key.clone(),
        receiver: notification.receiver.clone(),
        status: outbox::status_text(notification.status).to_owned(),
        alerts: notification.alerts.len(),
        fingerprints: notification
            .alerts
            .iter()
            .take(MAX_FINGERPRINTS_RECORDED)
            .map(|a| a.fingerprint.clone())
            .collect(),
        bytes: bytes.len(),
    };
    let arrival = Arrival {
        dedupe_key: outbox::dedupe_key(&notification),
        body: bytes.to_vec(),
        received_ms: now_ms,
        arrived,
    };
    let alerts = notification.alerts.len();
    let max_queued = webhook.admission.max_queued;
    let committed = webhook.outbox.accept(arrival, webhook.admission).await;
    let answer: (StatusCode, String) = match committed {
        Ok(Accepted::Stored(id)) => {
            webhook.telemetry.received(alerts, false);
            webhook.received.notify_one();
            (StatusCode::OK, format!("accepted as notification {id}\n"))
        }
        Ok(Accepted::Duplicate(id)) => {
            webhook.telemetry.received(alerts, true);
            (
                StatusCode::OK,
                format!(
                    "duplicate of notification {id} (alerts.dedupe_window); not forwarded again\n"
                ),
            )
        }
        Ok(Accepted::Overflow { queued }) => {
            tracing::warn!(
                queued,
                max_queued,
                "outbox full: a notification was refused; Alertmanager keeps it and retries"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("foretell holds {queued} undelivered notifications and deliveries (alerts.max_queued is {max_queued}); retry later\n"),
            )
        }
        Err(error) => {
            tracing::error!(%error, "a notification could not be committed to the outbox; Alertmanager will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the notification could not be stored; retry later\n".into(),
            )
        }
    };
    answer.into()
}

/// Whether a `Content-Type` is JSON (`application/json`, with parameters or not).
fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Characters of an error reason sent back at most: a reason quotes the sender's value (a
/// 3 MB `version` was echoed whole).
const MAX_REASON_CHARS: usize = 300;

fn bounded(reason: &str) -> String {
    let mut shown: String = reason
        .chars()
        .take(MAX_REASON_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if reason.chars().count() > MAX_REASON_CHARS {
        shown.push('…');
    }
    shown
}

fn too_large(max: u64) -> (StatusCode, String) {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body exceeds {max} bytes (alerts.max_body_bytes); lower max_alerts in Alertmanager's webhook_config or raise the cap\n"),
    )
}

/// Compares without returning early, so the time taken does not reveal how much of a guessed
/// token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
