//! One query's series and their models: fetched samples in, a [`QueryOutput`] out.
//!
//! Refits are scheduled per series: a model is refitted when it is older than the refit
//! interval, and each series' schedule is offset by a hash of its labels so that refits of
//! many series spread across the interval instead of landing in the same cycle.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use crate::labels::Labels;
use crate::model::{anomaly_score, BaselineModel, FittedBaseline, NotReady};
use crate::snapshot::{export_labels, QueryOutput, SeriesOutput, SeriesState};
use crate::store::{MergeOutcome, QueryStore, Sample, StoreLimits};

/// Settings of one query's tracker, validated by the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackerSettings {
    pub query: String,
    pub limits: StoreLimits,
    pub model: BaselineModel,
    pub refit_interval_ms: i64,
}

/// Per-series model state.
#[derive(Debug)]
pub struct SeriesModel {
    exported: Labels,
    fitted: Result<FittedBaseline, NotReady>,
    fitted_at_ms: i64,
}

/// What one evaluation did, for self-metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvaluationStats {
    pub merge: MergeOutcome,
    pub fits: usize,
    pub ready: usize,
}

#[derive(Debug)]
pub struct QueryTracker {
    settings: TrackerSettings,
    store: QueryStore<SeriesModel>,
}

impl QueryTracker {
    pub fn new(settings: TrackerSettings) -> Self {
        QueryTracker {
            store: QueryStore::new(settings.limits),
            settings,
        }
    }

    pub fn settings(&self) -> &TrackerSettings {
        &self.settings
    }

    /// Keeps the loaded windows under new settings with the same store limits; models are
    /// dropped (and refitted next cycle) when the model settings changed.
    pub fn with_settings(mut self, settings: TrackerSettings) -> Self {
        if settings.model != self.settings.model || settings.query != self.settings.query {
            for (_, tracked) in self.store.iter_mut() {
                tracked.model = None;
            }
        }
        self.settings = settings;
        self
    }

    pub fn series_count(&self) -> usize {
        self.store.len()
    }

    /// Merges `fetched`, refits the models that are due and scores each series' newest point.
    /// `evaluated_at_ms` is the end of the range just fetched.
    pub fn evaluate(
        &mut self,
        fetched: Vec<(Labels, Vec<Sample>)>,
        evaluated_at_ms: i64,
    ) -> (QueryOutput, EvaluationStats) {
        let mut stats = EvaluationStats {
            merge: self.store.merge(fetched, evaluated_at_ms),
            ..EvaluationStats::default()
        };
        let settings = &self.settings;
        let mut series = Vec::with_capacity(self.store.len());
        for (labels, tracked) in self.store.iter_mut() {
            let Some(newest) = tracked.window.newest() else {
                continue;
            };
            let due = match &tracked.model {
                None => true,
                Some(m) => {
                    m.fitted.is_err()
                        || evaluated_at_ms - m.fitted_at_ms >= settings.refit_interval_ms
                }
            };
            if due {
                let training: Vec<(i64, f64)> = tracked
                    .window
                    .finite_points()
                    .into_iter()
                    .filter(|(t, _)| *t < newest.timestamp_ms)
                    .collect();
                let fitted = settings.model.fit(&training);
                stats.fits += 1;
                let previous = tracked.model.take();
                // Only a series' first usable fit is backdated; later refits then keep the
                // staggered phase by running exactly one interval apart.
                let was_ready = previous.as_ref().is_some_and(|m| m.fitted.is_ok());
                let fitted_at_ms = if was_ready {
                    evaluated_at_ms
                } else {
                    staggered(evaluated_at_ms, labels, settings.refit_interval_ms)
                };
                let exported = match previous {
                    Some(previous) => previous.exported,
                    None => export_labels(&settings.query, labels),
                };
                tracked.model = Some(SeriesModel {
                    exported,
                    fitted,
                    fitted_at_ms,
                });
            }
            let Some(model) = &tracked.model else {
                continue;
            };
            let state = match &model.fitted {
                Ok(fitted) => {
                    stats.ready += 1;
                    let band = fitted.band_at(newest.timestamp_ms);
                    SeriesState::Ready {
                        band,
                        score: anomaly_score(&band, newest.value),
                    }
                }
                Err(_) => SeriesState::NotReady,
            };
            series.push(SeriesOutput::new(model.exported.clone(), state));
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        (
            QueryOutput {
                query: settings.query.clone(),
                evaluated_at_ms,
                series,
            },
            stats,
        )
    }

    /// Why each series that is not ready is not, for status output and logs.
    pub fn not_ready(&self) -> impl Iterator<Item = (&Labels, NotReady)> {
        self.store.iter().filter_map(|(labels, tracked)| {
            match tracked.model.as_ref().map(|m| &m.fitted) {
                Some(Err(reason)) => Some((labels, *reason)),
                _ => None,
            }
        })
    }
}

/// Backdates a fit by a stable, label-derived fraction of the refit interval, so the next refit
/// of each series falls at a different cycle.
fn staggered(now_ms: i64, labels: &Labels, refit_interval_ms: i64) -> i64 {
    if refit_interval_ms <= 0 {
        return now_ms;
    }
    let mut hasher = DefaultHasher::new();
    labels.hash(&mut hasher);
    now_ms - (hasher.finish() % refit_interval_ms as u64) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Coverage, Seasonality};

    const STEP: i64 = 60_000;

    fn settings(min_points: usize) -> TrackerSettings {
        TrackerSettings {
            query: "load".into(),
            limits: StoreLimits {
                step_ms: STEP,
                capacity_points: 1000,
                max_series: 100,
                freshness_ms: 5 * STEP,
            },
            model: BaselineModel {
                coverage: Coverage::new(0.99).expect("valid"),
                min_points,
                seasonality: Seasonality::None {
                    window_points: 1000,
                },
            },
            refit_interval_ms: 10 * STEP,
        }
    }

    fn series(instance: &str, values: &[f64], first_ms: i64) -> (Labels, Vec<Sample>) {
        (
            Labels::from_pairs([("__name__", "node_load1"), ("instance", instance)]),
            values
                .iter()
                .enumerate()
                .map(|(i, v)| Sample {
                    timestamp_ms: first_ms + i as i64 * STEP,
                    value: *v,
                })
                .collect(),
        )
    }

    fn noisy(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 10.0 + [0.0, 0.3, -0.2, 0.1, -0.3][i % 5])
            .collect()
    }

    #[test]
    fn spike_scores_above_one_and_normal_points_below() {
        let mut tracker = QueryTracker::new(settings(20));
        let mut spiky = noisy(100);
        spiky[99] = 30.0;
        let fetched = vec![series("spiky", &spiky, 0), series("calm", &noisy(100), 0)];
        let (output, stats) = tracker.evaluate(fetched, 99 * STEP);
        assert_eq!(stats.fits, 2);
        assert_eq!(stats.ready, 2);
        let score = |instance: &str| match &output
            .series
            .iter()
            .find(|s| s.labels.get("instance") == Some(instance))
            .expect("present")
            .state
        {
            SeriesState::Ready { score, .. } => score.expect("finite"),
            SeriesState::NotReady => panic!("not ready"),
        };
        assert!(score("spiky") > 1.0, "{}", score("spiky"));
        assert!(score("calm") < 1.0, "{}", score("calm"));
        assert_eq!(output.series[0].labels.get("query"), Some("load"));
        assert_eq!(
            output.series[0].labels.get("source_metric"),
            Some("node_load1")
        );
    }

    #[test]
    fn short_history_is_not_ready_until_enough_points_arrive() {
        let mut tracker = QueryTracker::new(settings(20));
        let (output, stats) = tracker.evaluate(vec![series("a", &noisy(10), 0)], 9 * STEP);
        assert_eq!(output.series[0].state, SeriesState::NotReady);
        assert_eq!(stats.ready, 0);
        assert_eq!(tracker.not_ready().count(), 1);
        let (output, _) = tracker.evaluate(vec![series("a", &noisy(15), 10 * STEP)], 24 * STEP);
        assert!(matches!(output.series[0].state, SeriesState::Ready { .. }));
    }

    #[test]
    fn models_are_refitted_only_when_due() {
        let mut tracker = QueryTracker::new(settings(5));
        tracker.evaluate(vec![series("a", &noisy(50), 0)], 49 * STEP);
        let (_, stats) = tracker.evaluate(vec![series("a", &[10.0], 50 * STEP)], 50 * STEP);
        assert_eq!(stats.fits, 0, "fitted one step ago");
        let (_, stats) = tracker.evaluate(vec![series("a", &[10.0], 61 * STEP)], 61 * STEP);
        assert_eq!(stats.fits, 1, "older than the refit interval");
    }

    #[test]
    fn a_gap_at_the_newest_point_keeps_the_band_but_drops_the_score() {
        let mut tracker = QueryTracker::new(settings(5));
        let mut values = noisy(30);
        values[29] = f64::NAN;
        let (output, _) = tracker.evaluate(vec![series("a", &values, 0)], 29 * STEP);
        assert!(matches!(
            output.series[0].state,
            SeriesState::Ready { score: None, .. }
        ));
    }

    #[test]
    fn changed_model_settings_force_a_refit_but_keep_the_data() {
        let mut tracker = QueryTracker::new(settings(5));
        tracker.evaluate(vec![series("a", &noisy(50), 0)], 49 * STEP);
        let mut tracker = tracker.with_settings(settings(6));
        assert_eq!(tracker.series_count(), 1);
        let (_, stats) = tracker.evaluate(vec![], 49 * STEP);
        assert_eq!(stats.fits, 1);
    }

    #[test]
    fn refits_of_many_series_spread_over_the_interval() {
        let mut tracker = QueryTracker::new(settings(5));
        // 100 series: the store's max_series.
        let fetched: Vec<_> = (0..100)
            .map(|i| series(&format!("s{i}"), &noisy(30), 0))
            .collect();
        tracker.evaluate(fetched, 29 * STEP);
        let mut fits_per_cycle = Vec::new();
        for cycle in 30..40 {
            let fetched: Vec<_> = (0..100)
                .map(|i| series(&format!("s{i}"), &[10.0], cycle * STEP))
                .collect();
            fits_per_cycle.push(tracker.evaluate(fetched, cycle * STEP).1.fits);
        }
        // Each series refits exactly once per interval, and no cycle takes a herd.
        assert_eq!(
            fits_per_cycle.iter().sum::<usize>(),
            100,
            "{fits_per_cycle:?}"
        );
        assert!(
            fits_per_cycle.iter().all(|&n| n < 30),
            "herd: {fits_per_cycle:?}"
        );
    }
}
