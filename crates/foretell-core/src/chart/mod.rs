//! A series' recent past as its model saw it, point by point, and the forecast after it: what
//! the status page and the graph links of enriched alerts draw ([`svg`]).
//!
//! The trace is made the way the sidecar scores a tracked series: fit on the older part of a
//! window, then take the newer points in one by one, each scored against the prediction made
//! before it arrived. So the band drawn at a point is the band that point was judged by.

pub mod link;
pub mod svg;

use crate::model::{
    Band, Excursion, ForecastModel, NotReady, Observation, ProbabilitySettings, SurpriseHistory,
};

/// One replayed point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TracePoint {
    pub timestamp_ms: i64,
    /// The observed value; NaN for a gap.
    pub value: f64,
    /// The prediction for this point, made before it arrived.
    pub band: Band,
    /// `None` for a gap; above 1 outside the band.
    pub score: Option<f64>,
    /// The anomaly probability after this point.
    pub probability: f64,
}

/// Replayed points, the excursion open at the end, and the forecast for each step after the
/// newest point.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub points: Vec<TracePoint>,
    pub excursion: Excursion,
    pub forecast: Vec<(i64, Band)>,
    /// Two-sided coverage of the bands, for the legend.
    pub coverage: f64,
    /// The probability at which an anomaly episode opens (points at or above it are marked).
    pub onset_probability: f64,
}

impl Trace {
    /// The newest replayed point.
    pub fn last(&self) -> Option<&TracePoint> {
        self.points.last()
    }
}

/// A regular grid of points: the first point's time and the spacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub start_ms: i64,
    pub step_ms: i64,
}

/// Fits `model` on `values[..replay_from]`, replays the rest one point at a time, and forecasts
/// `horizon_steps` steps past the newest point. `values` are on `grid`, NaN for gaps.
pub fn trace(
    values: &[f64],
    grid: Grid,
    replay_from: usize,
    model: &ForecastModel,
    probability: ProbabilitySettings,
    horizon_steps: u32,
) -> Result<Trace, NotReady> {
    let replay_from = replay_from.clamp(1, values.len().max(1));
    let fit = model.fit(&values[..replay_from.min(values.len())], None)?;
    let mut surprise = SurpriseHistory::new(probability);
    for s in &fit.in_sample_surprises {
        surprise.learn(*s);
    }
    for value in &values[..replay_from.min(values.len())] {
        surprise.learn_value(*value);
    }
    let mut fitted = fit.model;
    let mut excursion = Excursion::default();
    let mut points = Vec::with_capacity(values.len().saturating_sub(replay_from));
    for (offset, value) in values.iter().enumerate().skip(replay_from) {
        let observation: Observation = fitted.observe(*value);
        let p = surprise.observe(&observation, *value);
        excursion.observe(&observation, p);
        excursion.range_excess = surprise.recent_range_excess();
        points.push(TracePoint {
            timestamp_ms: grid.start_ms + offset as i64 * grid.step_ms,
            value: *value,
            band: observation.band,
            score: observation.score,
            probability: p,
        });
    }
    if points.is_empty() {
        return Err(NotReady::TooFewPoints {
            have: values.len(),
            need: values.len() + 1,
        });
    }
    let newest_ms = grid.start_ms + (values.len() as i64 - 1) * grid.step_ms;
    let forecast = (1..=horizon_steps.max(1))
        .map(|steps| {
            (
                newest_ms + i64::from(steps) * grid.step_ms,
                fitted.forecast(steps),
            )
        })
        .collect();
    Ok(Trace {
        points,
        excursion,
        forecast,
        coverage: fitted.coverage().get(),
        onset_probability: probability.onset_probability(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Coverage, SeasonSpec};

    fn model() -> ForecastModel {
        ForecastModel {
            coverage: Coverage::new(0.99).expect("valid"),
            min_points: 30,
            season: SeasonSpec::None,
            horizon_steps: 12,
        }
    }

    fn noisy(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 100.0 + ((i * 7919) % 13) as f64 * 0.5)
            .collect()
    }

    #[test]
    fn replayed_points_sit_on_the_grid_and_the_forecast_follows_the_newest() {
        let values = noisy(200);
        let grid = Grid {
            start_ms: 1_000_000,
            step_ms: 60_000,
        };
        let trace = trace(
            &values,
            grid,
            150,
            &model(),
            ProbabilitySettings::default(),
            10,
        )
        .expect("fits");
        assert_eq!(trace.points.len(), 50);
        assert_eq!(trace.points[0].timestamp_ms, 1_000_000 + 150 * 60_000);
        let newest = trace.last().expect("points").timestamp_ms;
        assert_eq!(newest, 1_000_000 + 199 * 60_000);
        assert_eq!(trace.forecast.len(), 10);
        assert_eq!(trace.forecast[0].0, newest + 60_000);
        assert_eq!(trace.forecast[9].0, newest + 600_000);
        assert!((trace.coverage - 0.99).abs() < 1e-12);
        assert!(trace
            .points
            .iter()
            .all(|p| p.band.lower <= p.band.expected && p.band.expected <= p.band.upper));
    }

    #[test]
    fn a_spike_is_scored_outside_its_band_and_a_gap_has_no_score() {
        let mut values = noisy(200);
        values[197] = 500.0;
        values[195] = f64::NAN;
        let grid = Grid {
            start_ms: 0,
            step_ms: 1000,
        };
        let trace = trace(
            &values,
            grid,
            150,
            &model(),
            ProbabilitySettings::default(),
            1,
        )
        .expect("fits");
        let spike = trace.points[47];
        assert_eq!(spike.value, 500.0);
        assert!(spike.score.is_some_and(|s| s > 1.0), "{spike:?}");
        assert_eq!(trace.points[45].score, None);
        assert!(trace.excursion.peak_sigmas > 5.0, "{:?}", trace.excursion);
    }

    #[test]
    fn too_little_history_is_not_ready() {
        let values = noisy(10);
        let result = trace(
            &values,
            Grid {
                start_ms: 0,
                step_ms: 1000,
            },
            5,
            &model(),
            ProbabilitySettings::default(),
            1,
        );
        assert!(matches!(result, Err(NotReady::TooFewPoints { .. })));
    }
}
