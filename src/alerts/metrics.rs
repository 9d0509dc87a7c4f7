//! Self-metrics of the alert path. Label values are bounded: receivers come from the config,
//! outcomes and response codes from fixed sets.

use std::collections::BTreeMap;
use std::sync::Mutex;

use foretell_core::exposition::{Format, MetricType, TextWriter};

use crate::exporter::registry::Collector;
use crate::exporter::telemetry::Histogram;

const CONFIDENCE_BUCKETS: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Delivery outcomes counted per receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryOutcome {
    Delivered,
    Retried,
    DeadLettered,
}

impl DeliveryOutcome {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Retried => "retried",
            DeliveryOutcome::DeadLettered => "dead_lettered",
        }
    }
}

#[derive(Clone, Debug, Default)]
struct State {
    webhook_requests: BTreeMap<u16, u64>,
    notifications: u64,
    alerts: u64,
    deduplicated: u64,
    enriched: [u64; 2],
    unrouted: u64,
    suppressed: BTreeMap<String, u64>,
    deliveries: BTreeMap<(String, DeliveryOutcome), u64>,
    circuit_open: BTreeMap<String, bool>,
    backlog: u64,
    oldest_pending_seconds: f64,
    confidence: Histogram,
    enrichment_seconds: Histogram,
}

#[derive(Debug)]
pub struct AlertTelemetry {
    state: Mutex<State>,
}

impl AlertTelemetry {
    pub fn new(receivers: &[String]) -> Self {
        let telemetry = AlertTelemetry {
            state: Mutex::new(State {
                confidence: Histogram::new(&CONFIDENCE_BUCKETS),
                enrichment_seconds: Histogram::new(&LATENCY_BUCKETS),
                ..State::default()
            }),
        };
        telemetry.with(|s| {
            for code in super::webhook::ANSWERED_CODES {
                s.webhook_requests.insert(code, 0);
            }
            for receiver in receivers {
                s.circuit_open.insert(receiver.clone(), false);
                s.suppressed.insert(receiver.clone(), 0);
                for outcome in [
                    DeliveryOutcome::Delivered,
                    DeliveryOutcome::Retried,
                    DeliveryOutcome::DeadLettered,
                ] {
                    s.deliveries.insert((receiver.clone(), outcome), 0);
                }
            }
        });
        telemetry
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub fn webhook_answered(&self, status: u16) {
        self.with(|s| *s.webhook_requests.entry(status).or_default() += 1);
    }

    pub fn received(&self, alerts: usize, duplicate: bool) {
        self.with(|s| {
            if duplicate {
                s.deduplicated += 1;
            } else {
                s.notifications += 1;
                s.alerts += alerts as u64;
            }
        });
    }

    /// One alert enriched: its confidence, or `None` when unavailable.
    pub fn enriched(&self, confidence: Option<f64>) {
        self.with(|s| match confidence {
            Some(value) => {
                s.enriched[0] += 1;
                s.confidence.observe(value);
            }
            None => s.enriched[1] += 1,
        });
    }

    pub fn enrichment_took(&self, seconds: f64) {
        self.with(|s| s.enrichment_seconds.observe(seconds));
    }

    pub fn unrouted(&self, alerts: usize) {
        self.with(|s| s.unrouted += alerts as u64);
    }

    pub fn suppressed(&self, receiver: &str) {
        self.with(|s| *s.suppressed.entry(receiver.to_owned()).or_default() += 1);
    }

    pub fn delivery(&self, receiver: &str, outcome: DeliveryOutcome) {
        self.with(|s| {
            *s.deliveries
                .entry((receiver.to_owned(), outcome))
                .or_default() += 1
        });
    }

    pub fn circuit(&self, receiver: &str, open: bool) {
        self.with(|s| {
            s.circuit_open.insert(receiver.to_owned(), open);
        });
    }

    pub fn backlog(&self, pending: u64, oldest_age_seconds: f64) {
        self.with(|s| {
            s.backlog = pending;
            s.oldest_pending_seconds = oldest_age_seconds;
        });
    }
}

impl Collector for AlertTelemetry {
    /// Appends the alert path's metrics in `format`.
    fn collect(&self, out: &mut String, format: Format) {
        let s = self.with(|s| s.clone());
        let mut w = TextWriter::with_format(out, format);
        w.family(
            "foretell_webhook_requests_total",
            "Requests to the Alertmanager webhook endpoint by HTTP status answered.",
            MetricType::Counter,
        );
        for (code, count) in &s.webhook_requests {
            w.value(&[("code", &code.to_string())], *count as f64);
        }
        w.family(
            "foretell_notifications_received_total",
            "Notifications from Alertmanager committed to the outbox.",
            MetricType::Counter,
        );
        w.value(&[], s.notifications as f64);
        w.family(
            "foretell_alerts_received_total",
            "Alerts in the notifications committed to the outbox.",
            MetricType::Counter,
        );
        w.value(&[], s.alerts as f64);
        w.family(
            "foretell_notifications_deduplicated_total",
            "Notifications acknowledged but not forwarded again: the same notification (Alertmanager HA peer) arrived within alerts.dedupe_window.",
            MetricType::Counter,
        );
        w.value(&[], s.deduplicated as f64);
        w.family(
            "foretell_alerts_enriched_total",
            "Alerts enriched, by whether a confidence could be computed.",
            MetricType::Counter,
        );
        w.value(&[("confidence", "available")], s.enriched[0] as f64);
        w.value(&[("confidence", "unavailable")], s.enriched[1] as f64);
        w.family(
            "foretell_alert_confidence",
            "Confidence given to enriched alerts.",
            MetricType::Histogram,
        );
        w.histogram(&[], &s.confidence.values());
        w.family(
            "foretell_enrichment_duration_seconds",
            "Time from a notification's commit to the outbox to its deliveries being queued (assessment, routing, commit).",
            MetricType::Histogram,
        );
        w.histogram(&[], &s.enrichment_seconds.values());
        w.family(
            "foretell_alerts_unrouted_total",
            "Alerts no route matched (recorded in the audit log, sent nowhere).",
            MetricType::Counter,
        );
        w.value(&[], s.unrouted as f64);
        w.family(
            "foretell_alerts_suppressed_total",
            "Firing alerts held back from a receiver because their confidence was below the route's min_confidence.",
            MetricType::Counter,
        );
        for (receiver, count) in &s.suppressed {
            w.value(&[("receiver", receiver)], *count as f64);
        }
        w.family(
            "foretell_deliveries_total",
            "Delivery attempts to receivers by outcome: delivered, retried (failed, scheduled again) or dead_lettered (not retried).",
            MetricType::Counter,
        );
        for ((receiver, outcome), count) in &s.deliveries {
            w.value(
                &[("receiver", receiver), ("outcome", outcome.as_str())],
                *count as f64,
            );
        }
        w.family(
            "foretell_receiver_circuit_open",
            "1 while the receiver's circuit breaker holds deliveries back after consecutive failures.",
            MetricType::Gauge,
        );
        for (receiver, open) in &s.circuit_open {
            w.value(&[("receiver", receiver)], f64::from(u8::from(*open)));
        }
        w.family(
            "foretell_outbox_pending_deliveries",
            "Deliveries waiting in the outbox (not yet delivered or dead-lettered).",
            MetricType::Gauge,
        );
        w.value(&[], s.backlog as f64);
        w.family(
            "foretell_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending delivery (0 when none is pending).",
            MetricType::Gauge,
        );
        w.value(&[], s.oldest_pending_seconds);
    }
}
