//! Which receivers get which alerts of a notification.
//!
//! Every route whose matchers all equal the alert's labels sends the alert to its receiver
//! (a receiver gets an alert once, however many of its routes match). A firing alert whose
//! confidence is below the route's `min_confidence` is suppressed for that receiver — recorded,
//! not dropped silently. Alerts without a confidence (no series found, Prometheus down) and
//! resolved alerts are never held back by `min_confidence`: a missing assessment must not
//! hide an alert, and a receiver that got the firing alert must hear that it resolved.

use std::collections::BTreeMap;

use super::confidence::Confidence;
use super::webhook::{Alert, AlertStatus};

#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub receiver: String,
    pub matchers: Vec<(String, String)>,
    pub min_confidence: Option<Confidence>,
}

impl Route {
    fn matches(&self, alert: &Alert) -> bool {
        self.matchers
            .iter()
            .all(|(name, value)| alert.labels.get(name).is_some_and(|v| v == value))
    }
}

/// What one receiver gets from a notification.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReceiverShare {
    /// Indices of the alerts it is sent, in notification order.
    pub forwarded: Vec<usize>,
    /// Indices of the alerts held back from it, with the reason.
    pub suppressed: Vec<(usize, String)>,
}

/// Routes the alerts (each with its confidence, when one could be computed). Returns each
/// receiver's share and the indices of alerts no route matched.
pub fn route(
    alerts: &[(&Alert, Option<Confidence>)],
    routes: &[Route],
) -> (BTreeMap<String, ReceiverShare>, Vec<usize>) {
    let mut shares: BTreeMap<String, ReceiverShare> = BTreeMap::new();
    let mut unrouted = Vec::new();
    for (index, (alert, confidence)) in alerts.iter().enumerate() {
        // Per receiver: forwarded by some route, or the reason every matching route gave.
        let mut decided: BTreeMap<&str, Result<(), String>> = BTreeMap::new();
        for route in routes.iter().filter(|r| r.matches(alert)) {
            let verdict = match (route.min_confidence, confidence, alert.status) {
                (Some(min), Some(confidence), AlertStatus::Firing) if *confidence < min => Err(
                    format!("confidence {confidence} below min_confidence {min}"),
                ),
                _ => Ok(()),
            };
            let entry = decided
                .entry(route.receiver.as_str())
                .or_insert(verdict.clone());
            if verdict.is_ok() {
                *entry = Ok(());
            }
        }
        if decided.is_empty() {
            unrouted.push(index);
        }
        for (receiver, verdict) in decided {
            let share = shares.entry(receiver.to_owned()).or_default();
            match verdict {
                Ok(()) => share.forwarded.push(index),
                Err(reason) => share.suppressed.push((index, reason)),
            }
        }
    }
    (shares, unrouted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(status: AlertStatus, severity: &str) -> Alert {
        Alert {
            status,
            labels: [("alertname", "HighErrors"), ("severity", severity)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            annotations: BTreeMap::new(),
            starts_at_ms: 0,
            ends_at_ms: None,
            generator_url: String::new(),
            fingerprint: severity.to_owned(),
        }
    }

    fn confidence(value: f64) -> Option<Confidence> {
        Confidence::new(value).ok()
    }

    fn routes() -> Vec<Route> {
        vec![
            Route {
                receiver: "pager".into(),
                matchers: vec![("severity".into(), "critical".into())],
                min_confidence: confidence(0.7),
            },
            Route {
                receiver: "tickets".into(),
                matchers: vec![],
                min_confidence: None,
            },
        ]
    }

    #[test]
    fn confident_critical_alerts_page_and_everything_makes_a_ticket() {
        let (critical, warning) = (
            alert(AlertStatus::Firing, "critical"),
            alert(AlertStatus::Firing, "warning"),
        );
        let (shares, unrouted) = route(
            &[(&critical, confidence(0.9)), (&warning, confidence(0.9))],
            &routes(),
        );
        assert!(unrouted.is_empty());
        assert_eq!(shares["pager"].forwarded, vec![0]);
        assert_eq!(shares["tickets"].forwarded, vec![0, 1]);
    }

    #[test]
    fn unconfident_firing_alerts_are_suppressed_with_the_reason() {
        let critical = alert(AlertStatus::Firing, "critical");
        let (shares, _) = route(&[(&critical, confidence(0.3))], &routes());
        assert_eq!(shares["pager"].forwarded, Vec::<usize>::new());
        assert_eq!(
            shares["pager"].suppressed,
            vec![(0, "confidence 0.30 below min_confidence 0.70".to_owned())]
        );
        assert_eq!(shares["tickets"].forwarded, vec![0]);
    }

    #[test]
    fn unassessed_and_resolved_alerts_are_never_held_back() {
        let firing = alert(AlertStatus::Firing, "critical");
        let resolved = alert(AlertStatus::Resolved, "critical");
        let (shares, _) = route(&[(&firing, None), (&resolved, confidence(0.1))], &routes());
        assert_eq!(shares["pager"].forwarded, vec![0, 1]);
    }

    #[test]
    fn alerts_no_route_matches_are_reported() {
        let only_pager = vec![routes().remove(0)];
        let warning = alert(AlertStatus::Firing, "warning");
        let (shares, unrouted) = route(&[(&warning, confidence(0.9))], &only_pager);
        assert!(shares.is_empty());
        assert_eq!(unrouted, vec![0]);
    }

    #[test]
    fn a_receiver_gets_an_alert_once_when_several_routes_match() {
        let mut twice = routes();
        twice.push(Route {
            receiver: "tickets".into(),
            matchers: vec![("alertname".into(), "HighErrors".into())],
            min_confidence: None,
        });
        let critical = alert(AlertStatus::Firing, "critical");
        let (shares, _) = route(&[(&critical, confidence(0.9))], &twice);
        assert_eq!(shares["tickets"].forwarded, vec![0]);
    }
}
