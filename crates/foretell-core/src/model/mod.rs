//! Models: a window of points in, a fitted model out; a fitted model predicts, scores and
//! forecasts.
//!
//! Unfitted settings ([`ForecastModel`]) and fitted state ([`FittedForecaster`]) are different
//! types, so nothing can score with a model that was never fitted. The pieces, in the order a
//! fit uses them: [`decompose`] (MSTL seasonal profiles), [`ets`] (exponential smoothing of
//! the rest, updated in O(1) per point), [`score`] (the band convention) and [`probability`]
//! (how unusual the recent surprise is for this series).

pub mod decompose;
pub mod ensemble;
pub mod ets;
pub mod excursion;
pub mod familiarity;
pub mod flatline;
pub mod forecaster;
mod optimize;
pub mod probability;
pub mod profile;
pub mod range;
pub mod robust;
pub mod score;

use std::fmt;

use statrs::distribution::{ContinuousCDF, Normal};

pub use excursion::Excursion;
pub use forecaster::{FittedForecaster, ForecastModel, Observation, SeasonSpec, FIRST_FIT};
pub use probability::{Calibration, ProbabilitySettings, SurpriseHistory, CALIBRATION};
pub use score::anomaly_score;

/// Two-sided coverage of a band, strictly between 0 and 1.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, serde::Serialize, serde::Deserialize)]
pub struct Coverage(f64);

/// A value outside (0, 1) was given as coverage.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("coverage must be strictly between 0 and 1 (for example 0.99), got {0}")]
pub struct InvalidCoverage(pub f64);

impl Coverage {
    /// The default coverage of bands and intervals: 99 %.
    pub const DEFAULT: Coverage = Coverage(0.99);

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
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Band {
    pub expected: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Why a series has no model yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NotReady {
    TooFewPoints {
        have: usize,
        need: usize,
    },
    /// More points arrived since the model last saw the series than the window holds (a long
    /// outage): the model cannot be brought up to date and is refitted from the window.
    FellBehind {
        missed: usize,
    },
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::TooFewPoints { have, need } => {
                write!(f, "{have} finite points, the model needs {need}")
            }
            NotReady::FellBehind { missed } => write!(
                f,
                "{missed} points arrived since the model last saw the series, more than the window holds; refitting"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
