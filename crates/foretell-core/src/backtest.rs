//! Backtesting a query's models on past data: how accurate the forecasts were and how often
//! the series was called anomalous.
//!
//! Two passes over one series' grid values, both with the code the sidecar runs:
//! - **Rolling origin.** At `origins` evenly spaced points of the range, the model is fitted on
//!   the `history` before the origin (as a refit would see it) and forecasts `horizon` steps;
//!   the forecasts are compared with what happened. MASE divides the mean absolute error by
//!   the in-sample mean absolute error of the seasonal naive forecast (lag: the model's
//!   shortest season, else one step) of the same training window, so below 1 beats that naive
//!   forecast's typical one-step error. The seasonal naive forecast from the same origins is
//!   scored the same way (`naive_mase`): the model earns its keep when its MASE is lower.
//! - **Online.** A [`QueryTracker`] loads the first `history` at once (a cold start), then
//!   takes the rest one point per evaluation, refitting on its schedule, exactly as the
//!   sidecar would have. Every point after the cold start is scored: the anomaly rate is the
//!   share outside the band (score above 1), and onsets count the points whose probability
//!   reached the onset level.

use crate::labels::Labels;
use crate::model::{FittedForecaster, ForecastModel};
use crate::snapshot::SeriesState;
use crate::store::Sample;
use crate::tracker::{QueryTracker, TrackerSettings};

/// What to backtest, validated by the caller.
#[derive(Clone, Debug)]
pub struct BacktestSettings {
    /// The query's tracker settings (model, window, refit schedule, probability).
    pub tracker: TrackerSettings,
    /// Forecast steps compared at each origin.
    pub horizon_steps: u32,
    /// Forecast origins per series.
    pub origins: usize,
}

/// Sums over the forecast points of one series (or of many, pooled).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ForecastTally {
    pub origins: usize,
    pub points: usize,
    /// Sum of |actual - forecast| / scale.
    scaled_error: f64,
    /// Sum of |actual - seasonal naive| / scale.
    naive_scaled_error: f64,
    /// Sum of 2|actual - forecast| / (|actual| + |forecast|) and how many points it covers
    /// (points where both are zero are left out).
    smape_sum: f64,
    smape_points: usize,
    inside: usize,
}

impl ForecastTally {
    pub fn merge(&mut self, other: &ForecastTally) {
        self.origins += other.origins;
        self.points += other.points;
        self.scaled_error += other.scaled_error;
        self.naive_scaled_error += other.naive_scaled_error;
        self.smape_sum += other.smape_sum;
        self.smape_points += other.smape_points;
        self.inside += other.inside;
    }

    pub fn mase(&self) -> Option<f64> {
        ratio(self.scaled_error, self.points)
    }

    pub fn naive_mase(&self) -> Option<f64> {
        ratio(self.naive_scaled_error, self.points)
    }

    /// Symmetric MAPE in percent (0 to 200).
    pub fn smape_percent(&self) -> Option<f64> {
        ratio(100.0 * self.smape_sum, self.smape_points)
    }

    /// Share of actual values inside the forecast interval, 0 to 1.
    pub fn coverage(&self) -> Option<f64> {
        ratio(self.inside as f64, self.points)
    }
}

/// Counts over the online pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnomalyTally {
    /// Points scored after the cold start.
    pub scored: usize,
    /// Of those, outside the band.
    pub outside: usize,
    /// Points whose probability reached the onset level.
    pub onsets: usize,
}

impl AnomalyTally {
    pub fn merge(&mut self, other: &AnomalyTally) {
        self.scored += other.scored;
        self.outside += other.outside;
        self.onsets += other.onsets;
    }

    pub fn rate(&self) -> Option<f64> {
        ratio(self.outside as f64, self.scored)
    }
}

fn ratio(sum: f64, count: usize) -> Option<f64> {
    (count > 0).then(|| sum / count as f64)
}

/// The backtest of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesBacktest {
    pub forecast: ForecastTally,
    pub anomalies: AnomalyTally,
    /// The model fitted at the last origin (`MSTL[1440] + ETS(A,N,N)`), or why none was.
    pub model: String,
}

/// Backtests one series. `values` are its points on the grid `start_ms + k * step_ms` (NaN for
/// gaps), oldest first.
pub fn backtest_series(
    settings: &BacktestSettings,
    labels: &Labels,
    start_ms: i64,
    values: &[f64],
) -> SeriesBacktest {
    let (forecast, model) = rolling_origin(settings, values);
    SeriesBacktest {
        forecast,
        anomalies: online_pass(&settings.tracker, labels, start_ms, values),
        model,
    }
}

/// The origins: evenly spaced from the first point with a full window before it (or, on a
/// short range, with the minimum the model needs) to the last point with a whole horizon after.
pub fn origins(
    values_len: usize,
    window: usize,
    min_points: usize,
    horizon: usize,
    count: usize,
) -> Vec<usize> {
    if count == 0 || values_len < horizon + min_points.max(1) {
        return Vec::new();
    }
    let last = values_len - horizon;
    let first = if window <= last {
        window
    } else {
        min_points.max(1)
    };
    if count == 1 || first == last {
        return vec![last];
    }
    let span = (last - first) as f64;
    let mut points: Vec<usize> = (0..count)
        .map(|k| first + (span * k as f64 / (count - 1) as f64).round() as usize)
        .collect();
    points.dedup();
    points
}

fn rolling_origin(settings: &BacktestSettings, values: &[f64]) -> (ForecastTally, String) {
    let window = settings.tracker.limits.capacity_points;
    let horizon = settings.horizon_steps.max(1) as usize;
    // The model choice is validated at the horizon the backtest scores.
    let model = &ForecastModel {
        horizon_steps: horizon as u32,
        ..settings.tracker.model.clone()
    };
    let mut tally = ForecastTally::default();
    let mut description = String::from("not fitted: too few points before every origin");
    for origin in origins(
        values.len(),
        window,
        model.min_points,
        horizon,
        settings.origins,
    ) {
        let training = &values[origin.saturating_sub(window)..origin];
        let Some(fitted) = fit(model, training) else {
            continue;
        };
        description = fitted.describe();
        let lag = fitted.periods().into_iter().min().unwrap_or(1);
        let Some(scale) = naive_scale(training, lag) else {
            continue;
        };
        tally.origins += 1;
        for step in 1..=horizon {
            let actual = values[origin + step - 1];
            // The seasonal naive forecast repeats the newest full season (or the last point).
            let naive_index = training.len() as isize - lag as isize + ((step - 1) % lag) as isize;
            let naive = usize::try_from(naive_index)
                .ok()
                .and_then(|i| training.get(i))
                .copied()
                .unwrap_or(f64::NAN);
            if !actual.is_finite() || !naive.is_finite() {
                continue;
            }
            let band = fitted.forecast(step as u32);
            tally.points += 1;
            tally.scaled_error += (actual - band.expected).abs() / scale;
            tally.naive_scaled_error += (actual - naive).abs() / scale;
            let denominator = actual.abs() + band.expected.abs();
            if denominator > 0.0 {
                tally.smape_sum += 2.0 * (actual - band.expected).abs() / denominator;
                tally.smape_points += 1;
            }
            if band.lower <= actual && actual <= band.upper {
                tally.inside += 1;
            }
        }
    }
    (tally, description)
}

fn fit(model: &ForecastModel, training: &[f64]) -> Option<FittedForecaster> {
    model.fit(training, None).ok().map(|fit| fit.model)
}

/// Mean absolute difference between points `lag` apart (both finite). `None` when there is
/// no such pair or the series never changes at that lag (MASE is then undefined).
fn naive_scale(training: &[f64], lag: usize) -> Option<f64> {
    let (sum, count) = training
        .iter()
        .zip(training.iter().skip(lag))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .fold((0.0, 0usize), |(sum, count), (a, b)| {
            (sum + (b - a).abs(), count + 1)
        });
    let scale = ratio(sum, count)?;
    (scale > 0.0).then_some(scale)
}

fn online_pass(
    settings: &TrackerSettings,
    labels: &Labels,
    start_ms: i64,
    values: &[f64],
) -> AnomalyTally {
    let step_ms = settings.limits.step_ms.max(1);
    let onset = settings.probability.onset_probability();
    let sample = |k: usize| Sample {
        timestamp_ms: start_ms + k as i64 * step_ms,
        value: values[k],
    };
    let cold = settings.limits.capacity_points.min(values.len());
    let mut tracker = QueryTracker::new(settings.clone());
    let mut tally = AnomalyTally::default();
    if cold == 0 {
        return tally;
    }
    let first: Vec<Sample> = (0..cold).map(sample).collect();
    tracker.evaluate(vec![(labels.clone(), first)], sample(cold - 1).timestamp_ms);
    for k in cold..values.len() {
        let point = sample(k);
        if !point.value.is_finite() {
            // A gap: Prometheus returns nothing for it, and the tracker sees it as one.
            continue;
        }
        let (output, _) = tracker.evaluate(vec![(labels.clone(), vec![point])], point.timestamp_ms);
        if let Some(SeriesState::Ready {
            score: Some(score),
            probability,
            ..
        }) = output.series.first().map(|s| &s.state)
        {
            tally.scored += 1;
            tally.outside += usize::from(*score > 1.0);
            tally.onsets += usize::from(*probability >= onset);
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Coverage, ProbabilitySettings, SeasonSpec};
    use crate::store::StoreLimits;
    use crate::synthetic::uniform_noise;
    use crate::tracker::FirstFit;

    const STEP: i64 = 60_000;
    const DAY: usize = 48;

    fn settings(
        season: SeasonSpec,
        window: usize,
        horizon: u32,
        origins: usize,
    ) -> BacktestSettings {
        BacktestSettings {
            tracker: TrackerSettings {
                query: "load".into(),
                limits: StoreLimits {
                    step_ms: STEP,
                    capacity_points: window,
                    max_series: 10,
                    freshness_ms: 10 * STEP,
                },
                model: ForecastModel {
                    coverage: Coverage::new(0.9).expect("valid"),
                    min_points: 30,
                    season,
                    horizon_steps: 0,
                },
                probability: ProbabilitySettings::default(),
                refit_interval_ms: 50 * STEP,
                horizons: Vec::new(),
                threshold: None,
                record_points: 0,
                load_threads: 1,
                first_fit: FirstFit::Full,
                peers: None,
            },
            horizon_steps: horizon,
            origins,
        }
    }

    /// A daily cycle of `DAY` points with noise of amplitude 1.
    fn seasonal(points: usize) -> Vec<f64> {
        (0..points)
            .map(|i| {
                let phase = std::f64::consts::TAU * (i % DAY) as f64 / DAY as f64;
                50.0 + 20.0 * phase.sin() + 2.0 * (uniform_noise(i, 7) - 0.5)
            })
            .collect()
    }

    fn labels() -> Labels {
        Labels::from_pairs([("__name__", "load"), ("instance", "a")])
    }

    #[test]
    fn origins_are_spread_from_the_first_full_window_to_the_last_whole_horizon() {
        assert_eq!(origins(100, 40, 10, 10, 4), vec![40, 57, 73, 90]);
        // A range shorter than window + horizon starts as early as the model allows.
        assert_eq!(origins(50, 100, 10, 10, 3), vec![10, 25, 40]);
        assert_eq!(origins(100, 40, 10, 10, 1), vec![90]);
        // More origins than points collapse to distinct ones.
        assert_eq!(origins(13, 40, 10, 2, 10), vec![10, 11]);
        assert!(origins(15, 40, 10, 10, 3).is_empty());
        assert!(origins(100, 40, 10, 10, 0).is_empty());
    }

    #[test]
    fn a_seasonal_model_beats_seasonal_naive_and_its_interval_covers() {
        let values = seasonal(12 * DAY);
        let settings = settings(SeasonSpec::Periods(vec![DAY]), 6 * DAY, 24, 8);
        let result = backtest_series(&settings, &labels(), 0, &values);
        let forecast = result.forecast;
        assert_eq!(forecast.origins, 8);
        assert_eq!(forecast.points, 8 * 24);
        let (mase, naive) = (
            forecast.mase().expect("points"),
            forecast.naive_mase().expect("points"),
        );
        assert!(mase < naive, "model {mase} vs naive {naive}");
        // Uniform noise of width 2 around a known cycle: errors are about 0.5 on average.
        let smape = forecast.smape_percent().expect("points");
        assert!(smape < 3.0, "{smape}");
        // The 90% interval, widened for the 50 values the fit spent on its season (without
        // that, in-sample errors understate these by a third and coverage is about 70%).
        let coverage = forecast.coverage().expect("points");
        assert!((0.8..=1.0).contains(&coverage), "{coverage}");
        assert!(result.model.contains("MSTL[48]"), "{}", result.model);
    }

    #[test]
    fn metrics_match_a_hand_computed_example() {
        // actual 10, forecast 8, naive 11, scale 2: |10-8|/2 = 1, |10-11|/2 = 0.5,
        // sMAPE 2*2/18; actual 0 with forecast 0 counts for MASE but not sMAPE.
        let tally = ForecastTally {
            points: 2,
            scaled_error: 1.0,
            naive_scaled_error: 0.5,
            smape_sum: 4.0 / 18.0,
            smape_points: 1,
            inside: 1,
            ..ForecastTally::default()
        };
        assert_eq!(tally.mase(), Some(0.5));
        assert_eq!(tally.naive_mase(), Some(0.25));
        assert!((tally.smape_percent().expect("one") - 400.0 / 18.0).abs() < 1e-12);
        assert_eq!(tally.coverage(), Some(0.5));
        assert_eq!(naive_scale(&[1.0, 3.0, f64::NAN, 4.0, 8.0], 1), Some(3.0));
        assert_eq!(naive_scale(&[5.0; 10], 1), None);
        assert_eq!(ForecastTally::default().mase(), None);
    }

    #[test]
    fn the_online_pass_scores_every_point_after_the_cold_start() {
        let mut values = seasonal(8 * DAY);
        let spike_at = 7 * DAY;
        values[spike_at] += 60.0;
        values[spike_at + 5] = f64::NAN;
        let settings = settings(SeasonSpec::Periods(vec![DAY]), 4 * DAY, 12, 3);
        let result = backtest_series(&settings, &labels(), 1_000 * STEP, &values);
        let anomalies = result.anomalies;
        // Everything after the cold window except the gap.
        assert_eq!(anomalies.scored, 4 * DAY - 1);
        assert!(anomalies.outside >= 1, "{anomalies:?}");
        assert!(anomalies.onsets >= 1, "{anomalies:?}");
        // About 10% outside a 90% band; the spike and its aftermath add a few points.
        let rate = anomalies.rate().expect("scored");
        assert!(rate < 0.2, "{rate}");
    }

    #[test]
    fn a_range_too_short_for_the_model_reports_why() {
        let values = seasonal(20);
        let result = backtest_series(
            &settings(SeasonSpec::None, 100, 10, 3),
            &labels(),
            0,
            &values,
        );
        assert_eq!(result.forecast.origins, 0);
        assert_eq!(result.forecast.mase(), None);
        assert_eq!(result.anomalies.scored, 0);
        assert!(result.model.starts_with("not fitted"), "{}", result.model);
    }

    #[test]
    fn tallies_pool_by_merging() {
        let values = seasonal(10 * DAY);
        let settings = settings(SeasonSpec::None, 4 * DAY, 6, 4);
        let one = backtest_series(&settings, &labels(), 0, &values);
        let mut pooled = ForecastTally::default();
        pooled.merge(&one.forecast);
        pooled.merge(&one.forecast);
        assert_eq!(pooled.points, 2 * one.forecast.points);
        assert_eq!(pooled.mase(), one.forecast.mase());
        let mut anomalies = AnomalyTally::default();
        anomalies.merge(&one.anomalies);
        assert_eq!(anomalies, one.anomalies);
    }
}
