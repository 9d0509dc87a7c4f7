//! Takes committed notifications from the outbox, assesses every alert, routes it and queues
//! one delivery per receiver, committing the routing with its records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use foretell_core::alerts::confidence::{Confidence, Evidence};
use foretell_core::alerts::lookup::{self, find_tracked};
use foretell_core::alerts::route::{route, Route};
use foretell_core::alerts::webhook::{self, Alert};
use foretell_core::model::{Coverage, ForecastModel, ProbabilitySettings, SeasonSpec};
use foretell_core::snapshot::SeriesState;
use tokio_util::sync::CancellationToken;

use super::outbox::{self, NewDelivery, Received};
use super::{pause, Enrichment};
use crate::reader::RangeQuery;

/// Notifications taken per pass.
const BATCH: usize = 64;
/// How often the outbox is looked at without being woken (work left by a previous run, a
/// failed commit).
const POLL: Duration = Duration::from_secs(1);
/// Points fitted at least before an on-demand replay starts.
const MIN_ON_DEMAND_POINTS: usize = 30;

pub async fn run(enrichment: Arc<Enrichment>, cancel: CancellationToken) {
    let path = enrichment.db_path.clone();
    let reader = match tokio::task::spawn_blocking(move || outbox::open_reader(&path)).await {
        Ok(Ok(connection)) => Arc::new(std::sync::Mutex::new(connection)),
        Ok(Err(error)) => {
            tracing::error!(%error, "the enricher cannot open the outbox; alerts stay queued until restart");
            return;
        }
        Err(_) => return,
    };
    loop {
        let reading = Arc::clone(&reader);
        let read = tokio::task::spawn_blocking(move || {
            let connection = reading.lock().unwrap_or_else(|e| e.into_inner());
            let received = outbox::received(&connection, BATCH)?;
            let backlog = outbox::backlog(&connection)?;
            Ok::<_, rusqlite::Error>((received, backlog))
        })
        .await;
        let mut failed = false;
        match read {
            Ok(Ok((received, (pending, oldest)))) => {
                let now_ms = enrichment.clock.now_ms();
                let age = oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0);
                enrichment.telemetry.backlog(pending, age);
                for notification in received {
                    if cancel.is_cancelled() {
                        return;
                    }
                    if let Err(error) = enrich(&enrichment, notification).await {
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
        let wake = if failed {
            None
        } else {
            Some(&enrichment.received)
        };
        if !pause(wake, &cancel, POLL).await {
            return;
        }
    }
}

/// What was found out about one alert.
struct Assessment {
    confidence: Option<Confidence>,
    annotations: BTreeMap<String, String>,
    details: serde_json::Value,
}

async fn enrich(enrichment: &Enrichment, received: Received) -> Result<(), String> {
    let started = Instant::now();
    let now_ms = enrichment.clock.now_ms();
    let (notification, assessments) = match webhook::parse(&received.body) {
        Ok(notification) => {
            let mut assessments = Vec::with_capacity(notification.alerts.len());
            for alert in &notification.alerts {
                assessments.push(assess(enrichment, alert, now_ms).await);
            }
            (Some(notification), assessments)
        }
        // Checked when it arrived; only a schema change between versions could get here.
        Err(error) => {
            tracing::error!(%error, id = received.id, "a stored notification no longer parses; forwarding it unchanged");
            (None, Vec::new())
        }
    };
    let routes: Vec<Route> = enrichment
        .config
        .routes
        .iter()
        .map(|r| Route {
            receiver: r.receiver.clone(),
            matchers: r.matchers.clone(),
            min_confidence: r.min_confidence,
        })
        .collect();
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
            let (shares, unrouted) = route(&with_confidence, &routes);
            let additions: Vec<BTreeMap<String, String>> =
                assessments.iter().map(|a| a.annotations.clone()).collect();
            for (alert, assessment) in notification.alerts.iter().zip(&assessments) {
                let mut details = assessment.details.clone();
                details["notification"] = received.id.into();
                records.push(outbox::entry(
                    now_ms,
                    "alert.enriched",
                    &alert_subject(alert),
                    if assessment.confidence.is_some() {
                        "ok"
                    } else {
                        "unavailable"
                    },
                    &details,
                ));
            }
            for index in &unrouted {
                let alert = &notification.alerts[*index];
                records.push(outbox::entry(
                    now_ms,
                    "alert.suppressed",
                    &alert_subject(alert),
                    "unrouted",
                    &serde_json::json!({"notification": received.id, "fingerprint": alert.fingerprint, "reason": "no route matched"}),
                ));
            }
            unrouted_count = unrouted.len();
            for (receiver, share) in shares {
                for (index, reason) in &share.suppressed {
                    let alert = &notification.alerts[*index];
                    records.push(outbox::entry(
                        now_ms,
                        "alert.suppressed",
                        &alert_subject(alert),
                        "suppressed",
                        &serde_json::json!({"notification": received.id, "fingerprint": alert.fingerprint, "receiver": receiver, "reason": reason}),
                    ));
                    suppressed_for.push(receiver.clone());
                }
                if !share.forwarded.is_empty() {
                    let body = notification.share(&additions, &share.forwarded);
                    deliveries.push(NewDelivery {
                        receiver,
                        body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
                    });
                }
            }
        }
        None => {
            group_key = String::new();
            for receiver in &enrichment.config.receivers {
                deliveries.push(NewDelivery {
                    receiver: receiver.name.clone(),
                    body: received.body.clone(),
                });
            }
        }
    }
    let (id, received_ms) = (received.id, received.received_ms);
    let queued: Vec<String> = deliveries.iter().map(|d| d.receiver.clone()).collect();
    enrichment
        .audit
        .transact(move |transaction, appender| {
            outbox::route(transaction, id, &group_key, &deliveries, now_ms)?;
            for record in records {
                appender.append(transaction, record)?;
            }
            Ok(())
        })
        .await?;
    let telemetry = &enrichment.telemetry;
    for assessment in &assessments {
        telemetry.enriched(assessment.confidence.map(Confidence::get));
    }
    telemetry.unrouted(unrouted_count);
    for receiver in &suppressed_for {
        telemetry.suppressed(receiver);
    }
    // From the commit that acknowledged it to its deliveries being queued, waiting included.
    let queued_for = (enrichment.clock.now_ms() - received_ms).max(0) as f64 / 1000.0;
    telemetry.enrichment_took(queued_for.max(started.elapsed().as_secs_f64()));
    for receiver in queued {
        if let Some(notify) = enrichment.queued.get(&receiver) {
            notify.notify_one();
        }
    }
    Ok(())
}

/// `HighErrorRate/c6eadffa33fcdf37`: the alert's name and fingerprint.
fn alert_subject(alert: &Alert) -> String {
    format!(
        "{}/{}",
        alert.labels.get("alertname").map_or("", String::as_str),
        alert.fingerprint
    )
}

/// `{job="api", instance="a"}` for annotations and records.
fn describe_labels<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let pairs: Vec<String> = labels
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

async fn assess(enrichment: &Enrichment, alert: &Alert, now_ms: i64) -> Assessment {
    match find_evidence(enrichment, alert, now_ms).await {
        Ok((evidence, series, source)) => {
            let confidence = evidence.confidence();
            let subject = alert
                .labels
                .get("alertname")
                .map_or("the series", String::as_str);
            let mut annotations = BTreeMap::new();
            annotations.insert("foretell_confidence".into(), format!("{confidence}"));
            annotations.insert(
                "foretell_anomaly_score".into(),
                evidence.score.map_or("NaN".into(), |s| format!("{s:.2}")),
            );
            annotations.insert("foretell_baseline".into(), round(evidence.band.expected));
            annotations.insert(
                "foretell_band".into(),
                format!(
                    "{} to {}",
                    round(evidence.band.lower),
                    round(evidence.band.upper)
                ),
            );
            if let Some((label, band)) = &evidence.forecast {
                annotations.insert(
                    "foretell_forecast".into(),
                    format!(
                        "{} in {label} (between {} and {})",
                        round(band.expected),
                        round(band.lower),
                        round(band.upper)
                    ),
                );
            }
            if let Some(trend) = evidence.trend() {
                annotations.insert("foretell_trend".into(), trend.as_str().into());
            }
            annotations.insert("foretell_explanation".into(), evidence.explanation(subject));
            annotations.insert("foretell_series".into(), series.clone());
            let features = evidence.features();
            Assessment {
                confidence: Some(confidence),
                annotations,
                details: serde_json::json!({
                    "fingerprint": alert.fingerprint,
                    "confidence": confidence.get(),
                    "source": source,
                    "series": series,
                    "score": evidence.score,
                    "probability": evidence.probability,
                    "peak_sigmas": evidence.excursion.peak_sigmas,
                    "outside_points": evidence.excursion.outside,
                    "excursion_points": evidence.excursion.length,
                    "missing_points": evidence.excursion.missing,
                    "siblings": evidence.siblings,
                    "siblings_anomalous": evidence.siblings_anomalous,
                    "features": [features.peak, features.peak_probability, features.outside, features.latest],
                }),
            }
        }
        Err(reason) => Assessment {
            confidence: None,
            annotations: BTreeMap::from([
                ("foretell_confidence".into(), "unavailable".into()),
                ("foretell_confidence_reason".into(), reason.clone()),
            ]),
            details: serde_json::json!({"fingerprint": alert.fingerprint, "confidence": null, "reason": reason}),
        },
    }
}

/// Four significant digits: enough for a human, short in a chat message.
fn round(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return format!("{value}");
    }
    let digits = 3 - value.abs().log10().floor() as i32;
    let factor = 10f64.powi(digits.clamp(-12, 12));
    format!("{}", (value * factor).round() / factor)
}

/// The horizon closest to one hour, among `(label, steps)` at `step_ms`.
fn hour_horizon(horizons: &[(String, u32)], step_ms: i64) -> Option<&(String, u32)> {
    horizons
        .iter()
        .min_by_key(|(_, steps)| (i64::from(*steps) * step_ms - 3_600_000).abs())
}

/// The evidence for `alert`, the series it came from and whether that series is tracked or
/// was fetched on demand; or why there is none.
async fn find_evidence(
    enrichment: &Enrichment,
    alert: &Alert,
    now_ms: i64,
) -> Result<(Evidence, String, &'static str), String> {
    let snapshot = enrichment.snapshot.load();
    let only_query = alert.annotations.get("foretell_query").map(String::as_str);
    if let Some(tracked) = find_tracked(snapshot.queries(), &alert.labels, only_query) {
        let series = describe_labels(tracked.series.labels.iter());
        let shape = enrichment.queries.get(&tracked.query.query);
        let step_ms = shape.map_or(60_000, |s| s.step_ms);
        return match &tracked.series.state {
            SeriesState::Ready {
                band,
                score,
                probability,
                forecasts,
                excursion,
                ..
            } => {
                let forecast = shape
                    .and_then(|s| hour_horizon(&s.horizons, step_ms))
                    .and_then(|(label, _)| {
                        let at = tracked.query.horizons.iter().position(|h| h == label)?;
                        Some((label.clone(), *forecasts.get(at)?))
                    });
                Ok((
                    Evidence {
                        band: *band,
                        score: *score,
                        probability: *probability,
                        excursion: *excursion,
                        step_ms,
                        forecast,
                        siblings: tracked.siblings,
                        siblings_anomalous: tracked.siblings_anomalous,
                    },
                    series,
                    "tracked",
                ))
            }
            SeriesState::NotReady => Err(format!(
                "the model of {series} (query {}) is still learning its history",
                tracked.query.query
            )),
        };
    }
    let (Some(settings), Some(prometheus)) = (&enrichment.config.on_demand, &enrichment.prometheus)
    else {
        return Err(
            "no tracked series matches the alert's labels (on-demand assessment is off)".into(),
        );
    };
    let expr = alert
        .annotations
        .get("foretell_expr")
        .cloned()
        .or_else(|| lookup::rule_expression(&alert.generator_url))
        .ok_or_else(|| {
            "no tracked series matches the alert's labels and the alert carries no expression (generatorURL g0.expr or a foretell_expr annotation)".to_owned()
        })?;
    let expr = lookup::without_threshold(&expr).to_owned();
    let step_ms = settings.step.as_millis() as i64;
    let end_ms = now_ms - now_ms.rem_euclid(step_ms);
    let start_ms = end_ms - settings.history.as_millis() as i64;
    let query = RangeQuery {
        expr: &expr,
        start_ms,
        end_ms,
        step_ms,
    };
    let answer = tokio::time::timeout(settings.timeout, prometheus.query_range(&query))
        .await
        .map_err(|_| {
            format!(
                "Prometheus did not answer `{expr}` within {:?} (alerts.on_demand.timeout)",
                settings.timeout
            )
        })?
        .map_err(|error| format!("Prometheus could not evaluate `{expr}`: {error}"))?;
    let (labels, samples) = lookup::pick_series(&answer.series, &alert.labels)
        .ok_or_else(|| format!("`{expr}` returned no series matching the alert's labels"))?;
    let points = ((end_ms - start_ms) / step_ms + 1) as usize;
    let mut values = vec![f64::NAN; points];
    for sample in samples {
        let slot = (sample.timestamp_ms - start_ms) / step_ms;
        if (0..points as i64).contains(&slot) {
            values[slot as usize] = sample.value;
        }
    }
    // Fit on what came before the alert (with half an hour of lead, so the excursion's onset
    // is replayed), replay the rest.
    let lead_ms = 1_800_000.max(5 * step_ms);
    let starts = ((alert.starts_at_ms - lead_ms - start_ms) / step_ms).max(0) as usize;
    let replay_from = starts.clamp(MIN_ON_DEMAND_POINTS.min(points), points.saturating_sub(1));
    let history = settings.history;
    let model = ForecastModel {
        coverage: Coverage::new(0.95).map_err(|e| e.to_string())?,
        min_points: MIN_ON_DEMAND_POINTS,
        season: match crate::config::auto_season_candidates(settings.step, history) {
            candidates if candidates.is_empty() => SeasonSpec::None,
            candidates => SeasonSpec::Auto(candidates),
        },
    };
    let horizon_steps = (3_600_000 / step_ms).max(1) as u32;
    let replayed = lookup::replay(
        &values,
        replay_from,
        &model,
        ProbabilitySettings::default(),
        horizon_steps,
    )
    .map_err(|reason| format!("`{expr}` has too little history for a model: {reason}"))?;
    let series = describe_labels(labels.iter());
    let forecast_label = crate::config::duration::format(Duration::from_millis(
        (i64::from(horizon_steps) * step_ms) as u64,
    ));
    Ok((
        Evidence {
            band: replayed.band,
            score: replayed.score,
            probability: replayed.probability,
            excursion: replayed.excursion,
            step_ms,
            forecast: Some((forecast_label, replayed.forecast)),
            siblings: 0,
            siblings_anomalous: 0,
        },
        series,
        "on_demand",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(round(1234.5678), "1235");
        assert_eq!(round(0.012345), "0.01235");
        assert_eq!(round(-98.7654), "-98.77");
        assert_eq!(round(0.0), "0");
        assert_eq!(round(f64::NAN), "NaN");
    }

    #[test]
    fn the_horizon_nearest_an_hour_is_chosen() {
        let horizons = vec![
            ("15m".to_owned(), 15),
            ("2h".to_owned(), 120),
            ("1d".to_owned(), 1440),
        ];
        assert_eq!(
            hour_horizon(&horizons, 60_000).map(|h| h.0.as_str()),
            Some("15m")
        );
        let coarse = vec![("50m".to_owned(), 10), ("1d".to_owned(), 288)];
        assert_eq!(
            hour_horizon(&coarse, 300_000).map(|h| h.0.as_str()),
            Some("50m")
        );
        assert_eq!(hour_horizon(&[], 60_000), None);
    }
}
