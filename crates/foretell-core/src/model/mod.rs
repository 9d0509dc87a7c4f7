//! Models: a slice of points in, a fitted model out; a fitted model gives a band at any time.
//!
//! Unfitted settings ([`BaselineModel`]) and fitted state ([`FittedBaseline`]) are different
//! types, so nothing can score with a model that was never fitted. Forecasting models slot in
//! beside the baseline by producing a [`Band`] for a timestamp the same way.

mod robust;
pub mod score;
mod seasonal;

use std::fmt;

use statrs::distribution::{ContinuousCDF, Normal};

pub use score::anomaly_score;
pub use seasonal::SeasonalProfile;

/// Two-sided coverage of a band, strictly between 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Coverage(f64);

/// A value outside (0, 1) was given as coverage.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("coverage must be strictly between 0 and 1 (for example 0.99), got {0}")]
pub struct InvalidCoverage(pub f64);

impl Coverage {
    pub fn new(value: f64) -> Result<Self, InvalidCoverage> {
        if value > 0.0 && value < 1.0 {
            Ok(Coverage(value))
        } else {
            Err(InvalidCoverage(value))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }

    /// The standard normal quantile `z` such that `P(|Z| <= z) = coverage`.
    pub fn normal_quantile(self) -> f64 {
        // Normal::new(0, 1) cannot fail; the fallback keeps this total anyway.
        Normal::new(0.0, 1.0)
            .map(|n| n.inverse_cdf((1.0 + self.0) / 2.0))
            .unwrap_or(2.575_829_303_548_901)
    }
}

/// Expected value and band for one timestamp.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Band {
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
}

/// How the baseline follows the calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seasonality {
    /// A level baseline: the median of the most recent `window_points` points.
    None { window_points: usize },
    /// A profile over one period (for example a day), `buckets` points of resolution.
    Periodic { period_ms: i64, buckets: usize },
}

/// Settings of the robust baseline, validated by the caller.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BaselineModel {
    pub coverage: Coverage,
    /// Finite points needed before the model is ready.
    pub min_points: usize,
    pub seasonality: Seasonality,
}

/// Why a series has no model yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    TooFewPoints { have: usize, need: usize },
    HistoryShorterThanPeriod { span_ms: i64, period_ms: i64 },
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::TooFewPoints { have, need } => {
                write!(f, "{have} finite points, the model needs {need}")
            }
            NotReady::HistoryShorterThanPeriod { span_ms, period_ms } => write!(
                f,
                "history spans {}s, the seasonal model needs one full period of {}s",
                span_ms / 1000,
                period_ms / 1000
            ),
        }
    }
}

/// A fitted baseline: centre and robust scale, plus the seasonal profile where configured.
#[derive(Clone, Debug, PartialEq)]
pub struct FittedBaseline {
    shape: Shape,
    /// Robust estimate of the residual standard deviation (1.4826 × MAD, floored).
    scale: f64,
    /// Band half-width: `z(coverage) × scale`.
    half_width: f64,
}

#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Level(f64),
    Seasonal(SeasonalProfile),
}

impl BaselineModel {
    /// Fits on `points` (timestamp ms, finite value), oldest first.
    pub fn fit(&self, points: &[(i64, f64)]) -> Result<FittedBaseline, NotReady> {
        if points.len() < self.min_points.max(2) {
            return Err(NotReady::TooFewPoints {
                have: points.len(),
                need: self.min_points.max(2),
            });
        }
        let z = self.coverage.normal_quantile();
        match self.seasonality {
            Seasonality::None { window_points } => {
                let recent = &points[points.len().saturating_sub(window_points.max(2))..];
                let mut values: Vec<f64> = recent.iter().map(|p| p.1).collect();
                let (level, mad) = robust::median_and_mad(&mut values);
                let scale = robust::scale_from(mad, &values, level);
                Ok(FittedBaseline {
                    shape: Shape::Level(level),
                    scale,
                    half_width: z * scale,
                })
            }
            Seasonality::Periodic { period_ms, buckets } => {
                let span_ms = points[points.len() - 1].0 - points[0].0;
                if span_ms < period_ms {
                    return Err(NotReady::HistoryShorterThanPeriod { span_ms, period_ms });
                }
                let profile = SeasonalProfile::fit(points, period_ms, buckets);
                let mut residuals: Vec<f64> = points
                    .iter()
                    .map(|&(t, v)| v - profile.value_at(t))
                    .collect();
                let (centre, mad) = robust::median_and_mad(&mut residuals);
                let scale = robust::scale_from(mad, &residuals, centre);
                Ok(FittedBaseline {
                    shape: Shape::Seasonal(profile.shifted(centre)),
                    scale,
                    half_width: z * scale,
                })
            }
        }
    }
}

impl FittedBaseline {
    pub fn band_at(&self, timestamp_ms: i64) -> Band {
        let expected = match &self.shape {
            Shape::Level(level) => *level,
            Shape::Seasonal(profile) => profile.value_at(timestamp_ms),
        };
        Band {
            expected,
            lower: expected - self.half_width,
            upper: expected + self.half_width,
        }
    }

    /// Robust residual standard deviation, for explanations ("4.1σ above baseline").
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level_model(min_points: usize) -> BaselineModel {
        BaselineModel {
            coverage: Coverage::new(0.99).expect("valid"),
            min_points,
            seasonality: Seasonality::None {
                window_points: 1000,
            },
        }
    }

    #[test]
    fn coverage_outside_the_open_unit_interval_is_rejected() {
        assert!(Coverage::new(0.0).is_err());
        assert!(Coverage::new(1.0).is_err());
        assert!(Coverage::new(f64::NAN).is_err());
        let message = Coverage::new(1.5).expect_err("invalid").to_string();
        assert!(message.contains("1.5"), "{message}");
    }

    #[test]
    fn normal_quantile_matches_reference_values() {
        // Reference: scipy.stats.norm.ppf(0.995) = 2.5758293035489004, ppf(0.975) = 1.959963984540054
        let z99 = Coverage::new(0.99).expect("valid").normal_quantile();
        let z95 = Coverage::new(0.95).expect("valid").normal_quantile();
        assert!((z99 - 2.575_829_303_548_9).abs() < 1e-6, "{z99}");
        assert!((z95 - 1.959_963_984_540_054).abs() < 1e-6, "{z95}");
    }

    #[test]
    fn short_history_is_not_ready() {
        let points: Vec<_> = (0..5).map(|i| (i * 1000, 1.0)).collect();
        assert_eq!(
            level_model(10).fit(&points),
            Err(NotReady::TooFewPoints { have: 5, need: 10 })
        );
    }

    #[test]
    fn level_band_is_median_plus_minus_z_times_robust_sigma() {
        // values 1..=9: median 5, MAD 2 -> sigma 2.9652, half width 2.5758 * 2.9652
        let points: Vec<_> = (1..=9).map(|i| (i * 1000, i as f64)).collect();
        let fitted = level_model(5).fit(&points).expect("ready");
        let band = fitted.band_at(0);
        let half = 2.575_829_303_548_9 * 1.4826 * 2.0;
        assert!((band.expected - 5.0).abs() < 1e-12);
        assert!((band.upper - (5.0 + half)).abs() < 1e-6, "{band:?}");
        assert!((band.lower - (5.0 - half)).abs() < 1e-6, "{band:?}");
    }

    #[test]
    fn an_outlier_in_training_barely_moves_the_level() {
        let mut points: Vec<_> = (0..100)
            .map(|i| (i * 1000, 10.0 + (i % 5) as f64 * 0.1))
            .collect();
        points[50].1 = 10_000.0;
        let fitted = level_model(10).fit(&points).expect("ready");
        let band = fitted.band_at(0);
        assert!((band.expected - 10.2).abs() < 0.11, "{band:?}");
        assert!(band.upper < 11.0, "{band:?}");
    }

    #[test]
    fn seasonal_model_needs_a_full_period() {
        let model = BaselineModel {
            seasonality: Seasonality::Periodic {
                period_ms: 100_000,
                buckets: 10,
            },
            ..level_model(3)
        };
        let points: Vec<_> = (0..50).map(|i| (i * 1000, 1.0)).collect();
        assert_eq!(
            model.fit(&points),
            Err(NotReady::HistoryShorterThanPeriod {
                span_ms: 49_000,
                period_ms: 100_000
            })
        );
    }

    #[test]
    fn seasonal_model_follows_the_cycle_where_a_level_model_cannot() {
        let period_ms = 86_400_000;
        let step = 300_000;
        let value = |t: i64| {
            let phase = (t % period_ms) as f64 / period_ms as f64;
            100.0 + 50.0 * (std::f64::consts::TAU * phase).sin() + ((t / step) % 3) as f64
        };
        let points: Vec<_> = (0..(3 * 288))
            .map(|i| (i * step, value(i * step)))
            .collect();
        let seasonal = BaselineModel {
            seasonality: Seasonality::Periodic {
                period_ms,
                buckets: 96,
            },
            ..level_model(10)
        }
        .fit(&points)
        .expect("ready");
        let level = level_model(10).fit(&points).expect("ready");
        // At the daily peak (a quarter period in), the seasonal expectation tracks ~150.
        let peak = 3 * period_ms + period_ms / 4;
        let seasonal_band = seasonal.band_at(peak);
        assert!(
            (seasonal_band.expected - value(peak)).abs() < 2.5,
            "{seasonal_band:?}"
        );
        assert!(anomaly_score(&seasonal_band, value(peak)).expect("finite") < 1.0);
        assert!(anomaly_score(&seasonal_band, value(peak) + 40.0).expect("finite") > 1.0);
        // The level model cannot tell the peak from an anomaly of the same size.
        let level_band = level.band_at(peak);
        assert!(level_band.upper - level_band.lower > 80.0, "{level_band:?}");
    }
}
