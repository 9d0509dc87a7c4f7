//! What foretell records in its audit log: one typed, past-tense event per decision, with the
//! data a reader of the log needs, encoded into an [`Entry`] in one place ([`Event::entry`]).
//!
//! Writers build an [`Event`] and never a record's text: the kind, subject, outcome and details
//! of each kind of record are written here once, so two writers of the same kind cannot drift
//! apart, and a field is added to a record by adding it to its variant. The details are a JSON
//! object with its keys in alphabetical order (serde_json's map), as they always were, so
//! records written by earlier versions read the same.

use serde_json::{json, Value};

use super::anchor::Anchor;
use super::keys::encode_hex;
use super::kind::EventKind;
use super::record::{Entry, MAC_BYTES};

/// Who decides when nobody asked: foretell itself.
pub const FORETELL: &str = "foretell";

/// One decision, in the past tense.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    ProcessStarted {
        version: String,
        pid: u32,
        listen_address: String,
    },
    ProcessStopped {
        version: String,
    },
    /// The configuration `file` in force at the start.
    ConfigLoaded {
        file: String,
        sha256: Option<String>,
        queries: usize,
    },
    ConfigReloaded {
        file: String,
        sha256: Option<String>,
        queries: usize,
    },
    /// A reload refused; the previous configuration kept running.
    ConfigRejected {
        file: String,
        sha256: Option<String>,
        error: String,
    },
    /// A cycle of `query` that refitted models.
    ModelRefit {
        query: String,
        fits: u64,
        series: usize,
        ready: u64,
        seconds: f64,
    },
    /// The newest record was signed with key `from`; records are now signed with `to`.
    KeyRotated {
        from: String,
        to: String,
    },
    /// Records up to the anchor's seq were deleted (`foretell audit prune`).
    AuditPruned(Anchor),
    /// The log's head was found behind what this process had written.
    AuditHeadWentBackwards {
        written_seq: u64,
        written_mac: [u8; MAC_BYTES],
        found_seq: u64,
        found_mac: [u8; MAC_BYTES],
    },
    /// A notification stored in the outbox as `notification`.
    AlertReceived {
        arrived: Arrived,
        notification: i64,
    },
    /// A notification that repeats one stored within the dedupe window.
    AlertDeduplicated {
        arrived: Arrived,
        duplicate_of: i64,
    },
    /// A notification refused because the outbox held `queued` of at most `max_queued`.
    AlertRefused {
        arrived: Arrived,
        queued: i64,
        max_queued: i64,
    },
    /// One alert of a notification, with its evidence and confidence or why it has none.
    AlertEnriched {
        alert: AlertRef,
        notification: i64,
        assessment: Assessed,
    },
    /// The alerts of a notification beyond the ones recorded one by one.
    AlertsEnrichedSummarised(EnrichedSummary),
    /// An alert no route matched.
    AlertUnrouted {
        alert: AlertRef,
        notification: i64,
    },
    /// `alerts` more unrouted alerts of the notification, beyond the ones recorded one by one.
    AlertsUnroutedSummarised {
        group_key: String,
        notification: i64,
        alerts: usize,
    },
    /// An alert a route's confidence threshold kept from `receiver`.
    AlertSuppressed {
        alert: AlertRef,
        notification: i64,
        receiver: String,
        reason: String,
    },
    /// `alerts` more alerts kept from `receiver`, beyond the ones recorded one by one.
    AlertsSuppressedSummarised {
        group_key: String,
        notification: i64,
        receiver: String,
        alerts: usize,
    },
    /// A delivery the receiver accepted.
    AlertForwarded {
        delivery: DeliveryAttempt,
    },
    /// A delivery that failed and is tried again at `next_attempt_ms`.
    AlertRetried {
        delivery: DeliveryAttempt,
        next_attempt_ms: i64,
        error: String,
    },
    /// A delivery given up on; `foretell dead-letters retry` sends it again.
    AlertDeadLettered {
        delivery: DeliveryAttempt,
        error: String,
    },
    /// A dead letter queued again (`foretell dead-letters retry` or the API).
    AlertDeadLetterRetried {
        group_key: String,
        delivery: i64,
        receiver: String,
    },
}

/// What the webhook saw of a notification as it arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct Arrived {
    pub group_key: String,
    /// Alertmanager's receiver name, as the notification states it.
    pub receiver: String,
    /// `firing` or `resolved`.
    pub status: String,
    pub alerts: usize,
    /// The first few alerts' fingerprints.
    pub fingerprints: Vec<String>,
    pub bytes: usize,
}

/// An alert as records name it: `alertname/fingerprint` and its fingerprint.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRef {
    pub subject: String,
    pub fingerprint: String,
}

/// What enrichment concluded about one alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Assessed {
    Confident(Box<ConfidentAssessment>),
    /// No confidence, and why (the model is still learning, no series matched, ...).
    Unavailable {
        reason: String,
    },
}

/// The evidence behind a confidence, as the alert's record keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfidentAssessment {
    pub confidence: f64,
    /// `tracked` or `on_demand`.
    pub source: String,
    /// The series, described for people.
    pub series: String,
    pub score: Option<f64>,
    pub probability: f64,
    pub peak_sigmas: f64,
    pub outside_points: u32,
    pub excursion_points: u32,
    pub missing_points: u32,
    pub siblings: usize,
    pub siblings_anomalous: usize,
    pub range_excess: f64,
    /// The calibrated model's inputs, in its order.
    pub features: [f64; 5],
    pub graph: Option<String>,
}

/// The alerts of one notification beyond those recorded one by one, summed up: how many,
/// their confidences, and a digest of every fingerprint with its confidence.
#[derive(Clone, Debug, PartialEq)]
pub struct EnrichedSummary {
    pub notification: i64,
    pub alerts: usize,
    pub with_confidence: usize,
    pub unavailable: usize,
    pub confidence_min: Option<f64>,
    pub confidence_mean: Option<f64>,
    pub confidence_max: Option<f64>,
    pub fingerprints_and_confidences_sha256: String,
}

/// One attempt at delivering a notification's share to a receiver.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryAttempt {
    pub group_key: String,
    pub delivery: i64,
    pub notification: i64,
    pub receiver: String,
    pub attempts: u32,
    /// The receiver's HTTP status; none when it could not be reached.
    pub status: Option<u16>,
}

impl Event {
    /// The record's kind.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::ProcessStarted { .. } => EventKind::ProcessStarted,
            Event::ProcessStopped { .. } => EventKind::ProcessStopped,
            Event::ConfigLoaded { .. } => EventKind::ConfigLoaded,
            Event::ConfigReloaded { .. } => EventKind::ConfigReloaded,
            Event::ConfigRejected { .. } => EventKind::ConfigRejected,
            Event::ModelRefit { .. } => EventKind::ModelRefit,
            Event::KeyRotated { .. } => EventKind::KeyRotated,
            Event::AuditPruned(_) => EventKind::AuditPruned,
            Event::AuditHeadWentBackwards { .. } => EventKind::AuditHeadWentBackwards,
            Event::AlertReceived { .. } => EventKind::AlertReceived,
            Event::AlertDeduplicated { .. } => EventKind::AlertDeduplicated,
            Event::AlertRefused { .. } => EventKind::AlertRefused,
            Event::AlertEnriched { .. } | Event::AlertsEnrichedSummarised(_) => {
                EventKind::AlertEnriched
            }
            Event::AlertUnrouted { .. }
            | Event::AlertsUnroutedSummarised { .. }
            | Event::AlertSuppressed { .. }
            | Event::AlertsSuppressedSummarised { .. } => EventKind::AlertSuppressed,
            Event::AlertForwarded { .. } => EventKind::AlertForwarded,
            Event::AlertRetried { .. } => EventKind::AlertRetried,
            Event::AlertDeadLettered { .. } => EventKind::AlertDeadLettered,
            Event::AlertDeadLetterRetried { .. } => EventKind::AlertDeadLetterRetried,
        }
    }

    /// The record foretell itself decided at `timestamp_ms`.
    pub fn entry(&self, timestamp_ms: i64) -> Entry {
        self.entry_by(timestamp_ms, FORETELL)
    }

    /// The record of a decision `actor` asked for (`admin:127.0.0.1`, `signal:SIGHUP`).
    pub fn entry_by(&self, timestamp_ms: i64, actor: &str) -> Entry {
        if let Event::AuditPruned(anchor) = self {
            // Its details have a fixed form that verification parses back.
            return anchor.entry(timestamp_ms, actor);
        }
        let (subject, outcome, details) = self.parts();
        Entry {
            timestamp_ms,
            kind: self.kind().to_string(),
            actor: actor.to_owned(),
            subject,
            outcome: outcome.to_owned(),
            details: details.to_string(),
        }
    }

    /// What the record is about, how it ended, and its details.
    fn parts(&self) -> (String, &'static str, Value) {
        const NO_ROUTE: &str = "no route matched";
        match self {
            Event::ProcessStarted {
                version,
                pid,
                listen_address,
            } => (
                FORETELL.into(),
                "ok",
                json!({"version": version, "pid": pid, "listen_address": listen_address}),
            ),
            Event::ProcessStopped { version } => {
                (FORETELL.into(), "ok", json!({"version": version}))
            }
            Event::ConfigLoaded {
                file,
                sha256,
                queries,
            }
            | Event::ConfigReloaded {
                file,
                sha256,
                queries,
            } => (
                file.clone(),
                "ok",
                json!({"sha256": sha256, "queries": queries}),
            ),
            Event::ConfigRejected {
                file,
                sha256,
                error,
            } => (
                file.clone(),
                "rejected",
                json!({"sha256": sha256, "error": error}),
            ),
            Event::ModelRefit {
                query,
                fits,
                series,
                ready,
                seconds,
            } => (
                query.clone(),
                "ok",
                json!({"fits": fits, "series": series, "ready": ready, "seconds": seconds}),
            ),
            Event::KeyRotated { from, to } => (to.clone(), "ok", json!({"from": from, "to": to})),
            Event::AuditPruned(_) => unreachable!("encoded by its anchor"),
            Event::AuditHeadWentBackwards {
                written_seq,
                written_mac,
                found_seq,
                found_mac,
            } => (
                "audit log".into(),
                "failed",
                json!({
                    "written_seq": written_seq,
                    "written_mac": encode_hex(written_mac),
                    "found_seq": found_seq,
                    "found_mac": encode_hex(found_mac),
                }),
            ),
            Event::AlertReceived {
                arrived,
                notification,
            } => {
                let mut details = arrived.details();
                details["notification"] = (*notification).into();
                (arrived.group_key.clone(), "ok", details)
            }
            Event::AlertDeduplicated {
                arrived,
                duplicate_of,
            } => {
                let mut details = arrived.details();
                details["duplicate_of"] = (*duplicate_of).into();
                (arrived.group_key.clone(), "ok", details)
            }
            Event::AlertRefused {
                arrived,
                queued,
                max_queued,
            } => {
                let mut details = arrived.details();
                details["queued"] = (*queued).into();
                details["max_queued"] = (*max_queued).into();
                (arrived.group_key.clone(), "overflow", details)
            }
            Event::AlertEnriched {
                alert,
                notification,
                assessment,
            } => {
                let (outcome, details) = match assessment {
                    Assessed::Confident(a) => (
                        "ok",
                        json!({
                            "fingerprint": alert.fingerprint,
                            "notification": notification,
                            "confidence": a.confidence,
                            "source": a.source,
                            "series": a.series,
                            "score": a.score,
                            "probability": a.probability,
                            "peak_sigmas": a.peak_sigmas,
                            "outside_points": a.outside_points,
                            "excursion_points": a.excursion_points,
                            "missing_points": a.missing_points,
                            "siblings": a.siblings,
                            "siblings_anomalous": a.siblings_anomalous,
                            "range_excess": a.range_excess,
                            "features": a.features,
                            "graph": a.graph,
                        }),
                    ),
                    Assessed::Unavailable { reason } => (
                        "unavailable",
                        json!({
                            "fingerprint": alert.fingerprint,
                            "notification": notification,
                            "confidence": null,
                            "reason": reason,
                        }),
                    ),
                };
                (alert.subject.clone(), outcome, details)
            }
            Event::AlertsEnrichedSummarised(summary) => (
                format!("{} more alerts", summary.alerts),
                "summarised",
                json!({
                    "notification": summary.notification,
                    "summarised": true,
                    "alerts": summary.alerts,
                    "with_confidence": summary.with_confidence,
                    "unavailable": summary.unavailable,
                    "confidence_min": summary.confidence_min,
                    "confidence_mean": summary.confidence_mean,
                    "confidence_max": summary.confidence_max,
                    "fingerprints_and_confidences_sha256":
                        summary.fingerprints_and_confidences_sha256,
                }),
            ),
            Event::AlertUnrouted {
                alert,
                notification,
            } => (
                alert.subject.clone(),
                "unrouted",
                json!({"notification": notification, "fingerprint": alert.fingerprint, "reason": NO_ROUTE}),
            ),
            Event::AlertsUnroutedSummarised {
                group_key,
                notification,
                alerts,
            } => (
                group_key.clone(),
                "unrouted",
                json!({"notification": notification, "alerts": alerts, "reason": NO_ROUTE, "summarised": true}),
            ),
            Event::AlertSuppressed {
                alert,
                notification,
                receiver,
                reason,
            } => (
                alert.subject.clone(),
                "suppressed",
                json!({"notification": notification, "fingerprint": alert.fingerprint, "receiver": receiver, "reason": reason}),
            ),
            Event::AlertsSuppressedSummarised {
                group_key,
                notification,
                receiver,
                alerts,
            } => (
                group_key.clone(),
                "suppressed",
                json!({"notification": notification, "alerts": alerts, "receiver": receiver, "summarised": true}),
            ),
            Event::AlertForwarded { delivery } => {
                (delivery.group_key.clone(), "ok", delivery.details())
            }
            Event::AlertRetried {
                delivery,
                next_attempt_ms,
                error,
            } => {
                let mut details = delivery.details();
                details["next_attempt_ms"] = (*next_attempt_ms).into();
                details["error"] = error.as_str().into();
                (delivery.group_key.clone(), "failed", details)
            }
            Event::AlertDeadLettered { delivery, error } => {
                let mut details = delivery.details();
                details["error"] = error.as_str().into();
                (delivery.group_key.clone(), "failed", details)
            }
            Event::AlertDeadLetterRetried {
                group_key,
                delivery,
                receiver,
            } => (
                group_key.clone(),
                "ok",
                json!({"delivery": delivery, "receiver": receiver}),
            ),
        }
    }
}

impl Arrived {
    fn details(&self) -> Value {
        json!({
            "receiver": self.receiver,
            "status": self.status,
            "alerts": self.alerts,
            "fingerprints": self.fingerprints,
            "bytes": self.bytes,
        })
    }
}

impl DeliveryAttempt {
    fn details(&self) -> Value {
        json!({
            "delivery": self.delivery,
            "notification": self.notification,
            "receiver": self.receiver,
            "attempts": self.attempts,
            "status": self.status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery() -> DeliveryAttempt {
        DeliveryAttempt {
            group_key: "{}:{alertname=\"A\"}".into(),
            delivery: 7,
            notification: 3,
            receiver: "pager".into(),
            attempts: 2,
            status: Some(503),
        }
    }

    fn arrived() -> Arrived {
        Arrived {
            group_key: "g".into(),
            receiver: "foretell".into(),
            status: "firing".into(),
            alerts: 2,
            fingerprints: vec!["a1".into(), "b2".into()],
            bytes: 812,
        }
    }

    fn alert() -> AlertRef {
        AlertRef {
            subject: "HighLatency/a1".into(),
            fingerprint: "a1".into(),
        }
    }

    /// One of each shape, for the tests that go through them all.
    fn one_of_each() -> Vec<Event> {
        vec![
            Event::ProcessStarted {
                version: "0.1.0".into(),
                pid: 42,
                listen_address: "127.0.0.1:9896".into(),
            },
            Event::ProcessStopped {
                version: "0.1.0".into(),
            },
            Event::ConfigLoaded {
                file: "/etc/foretell.yml".into(),
                sha256: Some("ab".into()),
                queries: 3,
            },
            Event::ConfigReloaded {
                file: "/etc/foretell.yml".into(),
                sha256: None,
                queries: 3,
            },
            Event::ConfigRejected {
                file: "/etc/foretell.yml".into(),
                sha256: Some("cd".into()),
                error: "queries[0].step: not a duration".into(),
            },
            Event::ModelRefit {
                query: "cpu".into(),
                fits: 4,
                series: 10,
                ready: 9,
                seconds: 0.5,
            },
            Event::KeyRotated {
                from: "k1".into(),
                to: "k2".into(),
            },
            Event::AuditPruned(Anchor {
                through_seq: 9,
                through_mac: [1; MAC_BYTES],
                removed: 9,
            }),
            Event::AuditHeadWentBackwards {
                written_seq: 10,
                written_mac: [2; MAC_BYTES],
                found_seq: 8,
                found_mac: [3; MAC_BYTES],
            },
            Event::AlertReceived {
                arrived: arrived(),
                notification: 5,
            },
            Event::AlertDeduplicated {
                arrived: arrived(),
                duplicate_of: 4,
            },
            Event::AlertRefused {
                arrived: arrived(),
                queued: 100,
                max_queued: 100,
            },
            Event::AlertEnriched {
                alert: alert(),
                notification: 5,
                assessment: Assessed::Confident(Box::new(ConfidentAssessment {
                    confidence: 0.8,
                    source: "tracked".into(),
                    series: "{instance=\"a\"}".into(),
                    score: None,
                    probability: f64::NAN,
                    peak_sigmas: 6.5,
                    outside_points: 4,
                    excursion_points: 5,
                    missing_points: 1,
                    siblings: 3,
                    siblings_anomalous: 0,
                    range_excess: 0.1,
                    features: [1.0, 0.5, 0.8, 1.2, 0.1],
                    graph: None,
                })),
            },
            Event::AlertEnriched {
                alert: alert(),
                notification: 5,
                assessment: Assessed::Unavailable {
                    reason: "still learning".into(),
                },
            },
            Event::AlertsEnrichedSummarised(EnrichedSummary {
                notification: 5,
                alerts: 12,
                with_confidence: 10,
                unavailable: 2,
                confidence_min: Some(0.1),
                confidence_mean: Some(0.4),
                confidence_max: Some(0.9),
                fingerprints_and_confidences_sha256: "ff".into(),
            }),
            Event::AlertUnrouted {
                alert: alert(),
                notification: 5,
            },
            Event::AlertsUnroutedSummarised {
                group_key: "g".into(),
                notification: 5,
                alerts: 7,
            },
            Event::AlertSuppressed {
                alert: alert(),
                notification: 5,
                receiver: "pager".into(),
                reason: "confidence 0.20 below 0.50".into(),
            },
            Event::AlertsSuppressedSummarised {
                group_key: "g".into(),
                notification: 5,
                receiver: "pager".into(),
                alerts: 7,
            },
            Event::AlertForwarded {
                delivery: delivery(),
            },
            Event::AlertRetried {
                delivery: delivery(),
                next_attempt_ms: 2_000,
                error: "HTTP 503".into(),
            },
            Event::AlertDeadLettered {
                delivery: delivery(),
                error: "HTTP 400".into(),
            },
            Event::AlertDeadLetterRetried {
                group_key: "g".into(),
                delivery: 7,
                receiver: "pager".into(),
            },
        ]
    }

    #[test]
    fn every_kind_has_an_event_and_every_record_has_object_details() {
        let events = one_of_each();
        for kind in EventKind::ALL {
            assert!(
                events.iter().any(|e| e.kind() == kind),
                "no event writes {kind}"
            );
        }
        for event in &events {
            let entry = event.entry(1_000);
            assert_eq!(entry.kind, event.kind().as_str());
            assert_eq!(entry.actor, FORETELL);
            assert_eq!(entry.timestamp_ms, 1_000);
            assert!(
                !entry.subject.is_empty() && !entry.outcome.is_empty(),
                "{entry:?}"
            );
            let details: Value = serde_json::from_str(&entry.details).expect("JSON");
            assert!(details.is_object(), "{entry:?}");
        }
    }

    #[test]
    fn records_keep_the_text_earlier_versions_wrote() {
        // The exact text of records as foretell wrote them before events were typed: `audit
        // list` readers and scripts keep working, and the keys stay in alphabetical order.
        let entry = Event::AlertRetried {
            delivery: delivery(),
            next_attempt_ms: 2_000,
            error: "HTTP 503".into(),
        }
        .entry(1_000);
        assert_eq!(
            (entry.subject.as_str(), entry.outcome.as_str()),
            ("{}:{alertname=\"A\"}", "failed")
        );
        assert_eq!(
            entry.details,
            r#"{"attempts":2,"delivery":7,"error":"HTTP 503","next_attempt_ms":2000,"notification":3,"receiver":"pager","status":503}"#
        );
        let entry = Event::AlertRefused {
            arrived: arrived(),
            queued: 100,
            max_queued: 100,
        }
        .entry(1_000);
        assert_eq!(entry.outcome, "overflow");
        assert_eq!(
            entry.details,
            r#"{"alerts":2,"bytes":812,"fingerprints":["a1","b2"],"max_queued":100,"queued":100,"receiver":"foretell","status":"firing"}"#
        );
        let entry = Event::AlertUnrouted {
            alert: alert(),
            notification: 5,
        }
        .entry(1_000);
        assert_eq!(
            (
                entry.kind.as_str(),
                entry.subject.as_str(),
                entry.outcome.as_str()
            ),
            ("alert.suppressed", "HighLatency/a1", "unrouted")
        );
        assert_eq!(
            entry.details,
            r#"{"fingerprint":"a1","notification":5,"reason":"no route matched"}"#
        );
        // Not-a-number evidence is written as null, never as invalid JSON.
        let enriched = &one_of_each()[12];
        let details: Value = serde_json::from_str(&enriched.entry(0).details).unwrap();
        assert!(details["probability"].is_null() && details["score"].is_null());
        assert_eq!(details["features"].as_array().map(Vec::len), Some(5));
    }

    #[test]
    fn a_pruned_log_s_anchor_reads_back_and_an_actor_is_named() {
        let anchor = Anchor {
            through_seq: 9,
            through_mac: [1; MAC_BYTES],
            removed: 9,
        };
        let entry = Event::AuditPruned(anchor).entry_by(5, "admin");
        assert_eq!(entry.actor, "admin");
        assert_eq!(Anchor::parse(&entry), Some(anchor));
        let entry = Event::ConfigReloaded {
            file: "f.yml".into(),
            sha256: None,
            queries: 1,
        }
        .entry_by(5, "signal:SIGHUP");
        assert_eq!(
            (entry.actor.as_str(), entry.subject.as_str()),
            ("signal:SIGHUP", "f.yml")
        );
        assert_eq!(entry.details, r#"{"queries":1,"sha256":null}"#);
    }
}
