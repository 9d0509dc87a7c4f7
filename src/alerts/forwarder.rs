//! Delivers queued notifications to one receiver, oldest first per group, with retries,
//! dead letters and a circuit breaker; each outcome commits with its audit record.

use std::sync::Arc;
use std::time::Duration;

use foretell_core::alerts::delivery::{is_due, judge, Attempt, CircuitBreaker, Verdict};
use foretell_core::audit::{DeliveryAttempt, Event};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use tokio_util::sync::CancellationToken;

use foretell_core::alerts::delivery::RetrySchedule;
use tokio::sync::Notify;

use super::metrics::{AlertTelemetry, DeliveryOutcome};
use super::outbox::{self, Delivery, Outbox, Settled};
use super::pause;
use crate::clock::Clock;
use crate::config::{AlertsConfig, BreakerConfig, ReceiverConfig};
use crate::db::DbError;
use crate::error_text::transport_error;

/// Deliveries looked at per pass.
const BATCH: usize = 32;
/// Longest sleep between looks at the outbox, also while the circuit is open: the due times
/// are wall-clock times (they survive restarts), and a wall clock that steps is noticed
/// within a poll instead of after a sleep computed before the step.
const POLL: Duration = Duration::from_secs(1);

/// The delivery stage of one receiver.
pub struct Forwarder {
    receiver: ReceiverConfig,
    breaker: BreakerConfig,
    retry: RetrySchedule,
    outbox: Outbox,
    telemetry: Arc<AlertTelemetry>,
    clock: Arc<dyn Clock>,
    /// Woken by the router when deliveries to this receiver were queued.
    queued: Arc<Notify>,
}

impl Forwarder {
    pub fn new(
        receiver: ReceiverConfig,
        config: &AlertsConfig,
        outbox: Outbox,
        telemetry: Arc<AlertTelemetry>,
        clock: Arc<dyn Clock>,
        queued: Arc<Notify>,
    ) -> Forwarder {
        Forwarder {
            receiver,
            breaker: config.circuit_breaker,
            retry: config.retry,
            outbox,
            telemetry,
            clock,
            queued,
        }
    }
}

pub async fn run(forwarder: Arc<Forwarder>, cancel: CancellationToken) {
    let receiver = &forwarder.receiver;
    let outbox = forwarder.outbox.clone();
    let opened = tokio::task::spawn_blocking(move || {
        let connection = outbox.open_reader()?;
        let log_id = crate::db::meta_value(&connection, "log_id")
            .ok()
            .flatten()
            .unwrap_or_default();
        Ok::<_, crate::db::DbError>((connection, log_id))
    })
    .await;
    let (connection, log_id) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => {
            tracing::error!(%error, receiver = %receiver.name, "the forwarder cannot open the outbox; deliveries wait until restart");
            return;
        }
        Err(_) => return,
    };
    let reader = Arc::new(std::sync::Mutex::new(connection));
    let client = match reqwest::Client::builder()
        .timeout(receiver.timeout)
        .connect_timeout(receiver.timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("foretell/", env!("CARGO_PKG_VERSION")))
        .redirect(crate::reader::same_origin_redirects())
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, receiver = %receiver.name, "cannot build the HTTP client");
            return;
        }
    };
    let breaker_config = forwarder.breaker;
    let mut breaker = CircuitBreaker::new(
        breaker_config.failures,
        breaker_config.cooldown.as_millis() as i64,
        breaker_config.max_cooldown.as_millis() as i64,
    );
    let wake = Some(forwarder.queued.as_ref());
    let log_prefix: String = log_id.chars().take(16).collect();
    let retry = forwarder.retry;
    loop {
        // The breaker's cooldowns run on the monotonic clock: a wall clock stepping back an
        // hour must not keep a recovered receiver blocked for that hour.
        let monotonic_ms = forwarder.clock.monotonic_ms();
        if let Some(until) = breaker.blocked_until(monotonic_ms) {
            forwarder.telemetry.circuit(&receiver.name, true);
            let wait = Duration::from_millis(
                (until - monotonic_ms).clamp(1, POLL.as_millis() as i64) as u64,
            );
            if !pause(wake, &cancel, wait).await {
                return;
            }
            continue;
        }
        forwarder.telemetry.circuit(&receiver.name, false);
        let reading = Arc::clone(&reader);
        let name = receiver.name.clone();
        let now_ms = forwarder.clock.now_ms();
        let heads = tokio::task::spawn_blocking(move || {
            let connection = reading.lock().unwrap_or_else(|e| e.into_inner());
            outbox::heads(&connection, &name, now_ms, &retry, BATCH)
        })
        .await;
        let heads = match heads {
            Ok(Ok(heads)) => heads,
            Ok(Err(error)) => {
                tracing::error!(%error, receiver = %receiver.name, "cannot read the outbox");
                Vec::new()
            }
            Err(_) => Vec::new(),
        };
        let mut next_due: Option<i64> = None;
        // A settled head uncovers the next delivery of its group: look again at once, so a
        // backlog drains at the receiver's pace, not one delivery per group per poll.
        let mut progressed = false;
        for delivery in heads {
            if cancel.is_cancelled() {
                return;
            }
            let now_ms = forwarder.clock.now_ms();
            if !is_due(
                delivery.next_attempt_ms,
                delivery.scheduled_ms,
                now_ms,
                &retry,
            ) {
                next_due = Some(next_due.map_or(delivery.next_attempt_ms, |d: i64| {
                    d.min(delivery.next_attempt_ms)
                }));
                continue;
            }
            if breaker.is_open(forwarder.clock.monotonic_ms()) {
                break;
            }
            let idempotency_key = format!("{log_prefix}-{}", delivery.id);
            let attempt = send(
                &client,
                receiver,
                &delivery,
                &idempotency_key,
                forwarder.clock.as_ref(),
            )
            .await;
            breaker.record(&attempt, forwarder.clock.monotonic_ms());
            let now_ms = forwarder.clock.now_ms();
            let attempts = delivery.attempts.saturating_add(1);
            let verdict = judge(
                &attempt,
                attempts,
                delivery.created_ms,
                now_ms,
                fastrand::f64(),
                &retry,
            );
            // A retry due before the next poll is waited for, not the whole poll.
            match &verdict {
                Verdict::RetryAt { at_ms, .. } => {
                    next_due = Some(next_due.map_or(*at_ms, |d: i64| d.min(*at_ms)));
                }
                Verdict::Delivered | Verdict::DeadLetter { .. } => progressed = true,
            }
            if let Err(error) =
                settle(&forwarder, &delivery, &verdict, &attempt, attempts, now_ms).await
            {
                // Not recorded, so not settled: the same delivery is attempted again (the
                // receiver drops the repeat by its Idempotency-Key).
                tracing::error!(%error, receiver = %receiver.name, delivery = delivery.id, "the delivery outcome could not be committed");
                break;
            }
        }
        if progressed {
            if cancel.is_cancelled() {
                return;
            }
            continue;
        }
        let now_ms = forwarder.clock.now_ms();
        let wait = next_due
            .map(|due| {
                Duration::from_millis((due - now_ms).clamp(1, POLL.as_millis() as i64) as u64)
            })
            .unwrap_or(POLL);
        if !pause(wake, &cancel, wait).await {
            return;
        }
    }
}

async fn settle(
    forwarder: &Forwarder,
    delivery: &Delivery,
    verdict: &Verdict,
    attempt: &Attempt,
    attempts: u32,
    now_ms: i64,
) -> Result<(), DbError> {
    let receiver = &forwarder.receiver;
    let status = match attempt {
        Attempt::Answered { status, .. } => Some(*status),
        Attempt::Transport(_) => None,
    };
    let tried = DeliveryAttempt {
        group_key: delivery.group_key.clone(),
        delivery: delivery.id,
        notification: delivery.notification_id,
        receiver: receiver.name.clone(),
        attempts,
        status,
    };
    let (state, next_ms, error, event, counted) = match verdict {
        Verdict::Delivered => (
            outbox::DELIVERED,
            now_ms,
            None,
            Event::AlertForwarded { delivery: tried },
            DeliveryOutcome::Delivered,
        ),
        Verdict::RetryAt { at_ms, reason } => (
            outbox::PENDING,
            *at_ms,
            Some(reason.clone()),
            Event::AlertRetried {
                delivery: tried,
                next_attempt_ms: *at_ms,
                error: reason.clone(),
            },
            DeliveryOutcome::Retried,
        ),
        Verdict::DeadLetter { reason } => (
            outbox::DEAD,
            now_ms,
            Some(reason.clone()),
            Event::AlertDeadLettered {
                delivery: tried,
                error: reason.clone(),
            },
            DeliveryOutcome::DeadLettered,
        ),
    };
    let settled = Settled {
        delivery_id: delivery.id,
        state,
        next_attempt_ms: next_ms,
        now_ms,
        error,
    };
    forwarder
        .outbox
        .settle(settled, event.entry(now_ms))
        .await?;
    forwarder.telemetry.delivery(&receiver.name, counted);
    match verdict {
        Verdict::Delivered => {}
        Verdict::RetryAt { reason, .. } => {
            tracing::warn!(receiver = %receiver.name, delivery = delivery.id, attempts, %reason, "delivery failed; retrying later")
        }
        Verdict::DeadLetter { reason } => {
            tracing::error!(receiver = %receiver.name, delivery = delivery.id, attempts, %reason, "delivery dead-lettered; list it with `foretell dead-letters list` and resend it with `foretell dead-letters retry`")
        }
    }
    Ok(())
}

async fn send(
    client: &reqwest::Client,
    receiver: &ReceiverConfig,
    delivery: &Delivery,
    idempotency_key: &str,
    clock: &dyn crate::clock::Clock,
) -> Attempt {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(key) = HeaderValue::from_str(idempotency_key) {
        headers.insert("idempotency-key", key);
    }
    for (name, value) in &receiver.headers {
        headers.insert(name.clone(), value.clone());
    }
    let mut request = client
        .post(receiver.url.expose().clone())
        .headers(headers)
        .body(delivery.body.clone());
    request = crate::auth::authorize(request, receiver.auth.as_ref());
    match request.send().await {
        Ok(response) => {
            let now_ms = clock.now_ms();
            let retry_after_ms = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| foretell_core::timestamp::retry_after_ms(v, now_ms));
            Attempt::Answered {
                status: response.status().as_u16(),
                retry_after_ms,
            }
        }
        Err(error) => Attempt::Transport(transport_error(error)),
    }
}
