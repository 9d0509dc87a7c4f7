//! Takes committed notifications from the outbox, assesses every alert, routes it (routes and
//! their confidence thresholds) and queues one delivery per receiver, committing the routing
//! with its records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Stopwatch;

use foretell_core::alerts::confidence::Confidence;
use foretell_core::alerts::route::{route, Route};
use foretell_core::alerts::webhook::{self, Alert, Notification};
use foretell_core::audit::{AlertRef, EnrichedSummary, Event};
use tokio_util::sync::CancellationToken;

use futures_util::StreamExt;

use super::assess::{Assessment, Assessor, Sources};
use super::metrics::AlertTelemetry;
use super::outbox::{self, NewDelivery, Outbox, Received};
use super::pause;
use crate::clock::Clock;
use crate::config::AlertsConfig;
use crate::db::DbError;
use tokio::sync::Notify;

/// Notifications taken per pass.
const BATCH: usize = 64;
/// How often the outbox is looked at without being woken (work left by a previous run, a
/// failed commit).
const POLL: Duration = Duration::from_secs(1);
/// Notifications fully delivered are kept this long (for `GET /api/v1/dead-letters` context
/// and inspection), then deleted; their audit records stay.
pub const SETTLED_RETENTION: Duration = Duration::from_secs(7 * 86_400);
/// How often settled notifications are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// The routing stage: its routes, where evidence comes from, and whom to wake.
pub struct Router {
    routes: Vec<Route>,
    /// Every receiver: a notification that no longer parses goes to all of them unchanged.
    receivers: Vec<String>,
    outbox: Outbox,
    sources: Arc<Sources>,
    telemetry: Arc<AlertTelemetry>,
    clock: Arc<dyn Clock>,
    /// Woken by the webhook when a notification was committed.
    received: Arc<Notify>,
    /// Wakes each receiver's forwarder when deliveries were queued.
    queued: BTreeMap<String, Arc<Notify>>,
}

impl Router {
    pub fn new(
        config: &AlertsConfig,
        outbox: Outbox,
        sources: Arc<Sources>,
        telemetry: Arc<AlertTelemetry>,
        clock: Arc<dyn Clock>,
        received: Arc<Notify>,
        queued: BTreeMap<String, Arc<Notify>>,
    ) -> Router {
        Router {
            routes: config
                .routes
                .iter()
                .map(|r| Route {
                    receiver: r.receiver.clone(),
                    matchers: r.matchers.clone(),
                    min_confidence: r.min_confidence,
                })
                .collect(),
            receivers: config.receivers.iter().map(|r| r.name.clone()).collect(),
            outbox,
            sources,
            telemetry,
            clock,
            received,
            queued,
        }
    }
}

pub async fn run(router: Arc<Router>, cancel: CancellationToken) {
    let outbox = router.outbox.clone();
    let reader = match tokio::task::spawn_blocking(move || outbox.open_reader()).await {
        Ok(Ok(connection)) => Arc::new(std::sync::Mutex::new(connection)),
        Ok(Err(error)) => {
            tracing::error!(%error, "the router cannot open the outbox; alerts stay queued until restart");
            return;
        }
        Err(_) => return,
    };
    let mut last_purge: Option<Stopwatch> = None;
    loop {
        if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
            last_purge = Some(Stopwatch::start());
            purge(&router).await;
        }
        let reading = Arc::clone(&reader);
        let read = tokio::task::spawn_blocking(move || {
            let connection = reading.lock().unwrap_or_else(|e| e.into_inner());
            let received = outbox::received(&connection, BATCH)?;
            let backlog = outbox::backlog(&connection)?;
            Ok::<_, rusqlite::Error>((received, backlog))
        })
        .await;
        let mut failed = false;
        let mut full_batch = false;
        match read {
            Ok(Ok((received, (pending, oldest)))) => {
                // A full batch means more wait: read again at once instead of after a poll.
                full_batch = received.len() == BATCH;
                let now_ms = router.clock.now_ms();
                let age = oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
                router.telemetry.backlog(pending, age);
                // Assessments (on-demand fits are CPU work) run side by side; routing commits
                // in arrival order, so deliveries of a group keep their order.
                let mut assessed = futures_util::stream::iter(
                    received
                        .into_iter()
                        .map(|notification| assess(&router, notification)),
                )
                .buffered(concurrent_assessments());
                while let Some(assessed) = assessed.next().await {
                    if cancel.is_cancelled() {
                        return;
                    }
                    if let Err(error) = route_and_commit(&router, assessed).await {
                        tracing::error!(%error, "routing a notification could not be committed; it is retried");
                        failed = true;
                        break;
                    }
                }
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot read the outbox");
                failed = true;
            }
            Err(_) => failed = true,
        }
        if full_batch && !failed {
            if cancel.is_cancelled() {
                return;
            }
            continue;
        }
        let wake = if failed {
            None
        } else {
            Some(router.received.as_ref())
        };
        if !pause(wake, &cancel, POLL).await {
            return;
        }
    }
}

/// Notifications assessed at once: one per core, at least two (an on-demand query waiting on
/// Prometheus leaves its core free).
fn concurrent_assessments() -> usize {
    crate::pipeline::cores().clamp(2, 8)
}

/// A notification with the assessment of each of its alerts.
struct Assessed {
    received: Received,
    started: Stopwatch,
    now_ms: i64,
    /// `None` when the stored body no longer parses (forwarded unchanged).
    notification: Option<Notification>,
    assessments: Vec<Assessment>,
}

async fn assess(router: &Router, received: Received) -> Assessed {
    let started = Stopwatch::start();
    let now_ms = router.clock.now_ms();
    let (notification, assessments) = match webhook::parse(&received.body) {
        Ok(notification) => {
            let mut assessor = Assessor::new(&router.sources, now_ms);
            let mut assessments = Vec::with_capacity(notification.alerts.len());
            for (index, alert) in notification.alerts.iter().enumerate() {
                let mut assessment = assessor.assess(alert).await;
                if index >= MAX_ALERTS_AUDITED {
                    // Summarised in one record: its details are not kept.
                    assessment.assessed = None;
                }
                assessments.push(assessment);
            }
            (Some(notification), assessments)
        }
        // Checked when it arrived; only a schema change between versions could get here.
        Err(error) => {
            tracing::error!(%error, id = received.id, "a stored notification no longer parses; forwarding it unchanged");
            (None, Vec::new())
        }
    };
    Assessed {
        received,
        started,
        now_ms,
        notification,
        assessments,
    }
}

/// Why a routed notification could not be committed (it stays received and is routed again).
#[derive(Debug, thiserror::Error)]
enum CommitError {
    #[error("a receiver's share of the notification could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Db(#[from] DbError),
}

async fn route_and_commit(router: &Router, assessed: Assessed) -> Result<(), CommitError> {
    let Assessed {
        received,
        started,
        now_ms,
        notification,
        mut assessments,
    } = assessed;
    let mut deliveries = Vec::new();
    let mut records = Vec::new();
    let mut suppressed_for = Vec::new();
    let mut unrouted_count = 0;
    let group_key;
    match &notification {
        Some(notification) => {
            group_key = notification.group_key.clone();
            let with_confidence: Vec<(&Alert, Option<Confidence>)> = notification
                .alerts
                .iter()
                .zip(&assessments)
                .map(|(alert, a)| (alert, a.confidence))
                .collect();
            let (shares, unrouted) = route(&with_confidence, &router.routes);
            // Moved out, not copied: only the deliveries need them from here on.
            let additions: Vec<BTreeMap<String, String>> = assessments
                .iter_mut()
                .map(|a| std::mem::take(&mut a.annotations))
                .collect();
            let audited = notification.alerts.len().min(MAX_ALERTS_AUDITED);
            for (alert, assessment) in notification.alerts.iter().zip(&assessments).take(audited) {
                if let Some(assessed) = &assessment.assessed {
                    records.push(
                        Event::AlertEnriched {
                            alert: alert_ref(alert),
                            notification: received.id,
                            assessment: assessed.clone(),
                        }
                        .entry(now_ms),
                    );
                }
            }
            if notification.alerts.len() > audited {
                records.push(summary(
                    now_ms,
                    received.id,
                    &notification.alerts[audited..],
                    &assessments[audited..],
                ));
            }
            for index in unrouted.iter().filter(|i| **i < audited) {
                let alert = &notification.alerts[*index];
                records.push(
                    Event::AlertUnrouted {
                        alert: alert_ref(alert),
                        notification: received.id,
                    }
                    .entry(now_ms),
                );
            }
            let unrouted_beyond = unrouted.iter().filter(|i| **i >= audited).count();
            if unrouted_beyond > 0 {
                records.push(
                    Event::AlertsUnroutedSummarised {
                        group_key: group_key.clone(),
                        notification: received.id,
                        alerts: unrouted_beyond,
                    }
                    .entry(now_ms),
                );
            }
            unrouted_count = unrouted.len();
            for (receiver, share) in shares {
                let mut beyond = 0usize;
                for (index, reason) in &share.suppressed {
                    suppressed_for.push(receiver.clone());
                    if *index >= audited {
                        beyond += 1;
                        continue;
                    }
                    let alert = &notification.alerts[*index];
                    records.push(
                        Event::AlertSuppressed {
                            alert: alert_ref(alert),
                            notification: received.id,
                            receiver: receiver.clone(),
                            reason: reason.clone(),
                        }
                        .entry(now_ms),
                    );
                }
                if beyond > 0 {
                    records.push(
                        Event::AlertsSuppressedSummarised {
                            group_key: group_key.clone(),
                            notification: received.id,
                            receiver: receiver.clone(),
                            alerts: beyond,
                        }
                        .entry(now_ms),
                    );
                }
                if !share.forwarded.is_empty() {
                    deliveries.push(NewDelivery {
                        receiver,
                        body: notification.share_json(&additions, &share.forwarded)?,
                    });
                }
            }
        }
        None => {
            group_key = String::new();
            for receiver in &router.receivers {
                deliveries.push(NewDelivery {
                    receiver: receiver.clone(),
                    body: received.body.clone(),
                });
            }
        }
    }
    let (id, received_ms) = (received.id, received.received_ms);
    let queued: Vec<String> = deliveries.iter().map(|d| d.receiver.clone()).collect();
    router
        .outbox
        .route(id, group_key, deliveries, records, now_ms)
        .await?;
    let telemetry = &router.telemetry;
    for assessment in &assessments {
        telemetry.enriched(assessment.confidence.map(Confidence::get));
    }
    telemetry.unrouted(unrouted_count);
    for receiver in &suppressed_for {
        telemetry.suppressed(receiver);
    }
    // From the commit that acknowledged it to its deliveries being queued, waiting included.
    let queued_for = (router.clock.now_ms() - received_ms).max(0) as f64 / 1000.0;
    telemetry.enrichment_took(queued_for.max(started.elapsed().as_secs_f64()));
    for receiver in queued {
        if let Some(notify) = router.queued.get(&receiver) {
            notify.notify_one();
        }
    }
    Ok(())
}

/// Deletes what is settled and old, so the outbox does not grow without bound.
async fn purge(router: &Router) {
    let before_ms = router.clock.now_ms() - SETTLED_RETENTION.as_millis() as i64;
    match router.outbox.purge_settled(before_ms).await {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "settled notifications purged from the outbox"),
        Err(error) => tracing::warn!(%error, "settled notifications could not be purged"),
    }
}

/// Alerts of one notification that get an audit record each; the rest are summarised in one
/// `alert.enriched` record (a notification of 60,000 alerts wrote 60,011 records, 83 MB).
pub const MAX_ALERTS_AUDITED: usize = 100;

/// One record for the alerts past [`MAX_ALERTS_AUDITED`]: how many, how their confidence fell
/// out, and the SHA-256 of their fingerprints and confidences in order, so the record still
/// pins exactly what was decided.
fn summary(
    now_ms: i64,
    notification: i64,
    alerts: &[Alert],
    assessments: &[Assessment],
) -> foretell_core::audit::Entry {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    let mut confidences = Vec::with_capacity(assessments.len());
    for (alert, assessment) in alerts.iter().zip(assessments) {
        let confidence = assessment.confidence.map(Confidence::get);
        digest.update(alert.fingerprint.as_bytes());
        digest.update(b"=");
        digest.update(
            confidence
                .map_or("-".to_owned(), |c| format!("{c:.4}"))
                .as_bytes(),
        );
        digest.update(b"\n");
        confidences.extend(confidence);
    }
    let unavailable = assessments.len() - confidences.len();
    let mean = (!confidences.is_empty())
        .then(|| confidences.iter().sum::<f64>() / confidences.len() as f64);
    let min = confidences.iter().copied().reduce(f64::min);
    let max = confidences.iter().copied().reduce(f64::max);
    Event::AlertsEnrichedSummarised(EnrichedSummary {
        notification,
        alerts: alerts.len(),
        with_confidence: confidences.len(),
        unavailable,
        confidence_min: min,
        confidence_mean: mean,
        confidence_max: max,
        fingerprints_and_confidences_sha256: foretell_core::audit::keys::encode_hex(
            &digest.finalize(),
        ),
    })
    .entry(now_ms)
}

/// An alert as its records name it: subject `HighErrorRate/c6eadffa33fcdf37` (its name and
/// fingerprint) and its fingerprint.
fn alert_ref(alert: &Alert) -> AlertRef {
    AlertRef {
        subject: format!(
            "{}/{}",
            alert.labels.get("alertname").map_or("", String::as_str),
            alert.fingerprint
        ),
        fingerprint: alert.fingerprint.clone(),
    }
}
