//! The forecasting model of a series: MSTL seasonal profiles (where the series has a season)
//! plus exponential smoothing of what is left, with prediction intervals.
//!
//! [`ForecastModel`] holds settings; [`ForecastModel::fit`] turns a window into a
//! [`FittedForecaster`], which predicts the next point, scores it when it arrives and takes it
//! into its state in O(1) ([`FittedForecaster::observe`]), and forecasts any number of steps
//! ahead. The live pipeline and the offline commands both drive this type.

use super::decompose::{self, SeasonalProfiles};
use super::ensemble::{self, Ensemble};
use super::ets::{self, FittedEts, Start};
use super::{anomaly_score, robust, Band, Coverage, NotReady};

/// Which seasonal periods to model, in grid points.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SeasonSpec {
    /// No season: exponential smoothing of the raw series.
    None,
    /// These periods, each used once the window holds two full cycles of it.
    Periods(Vec<usize>),
    /// Each candidate is kept when the window holds two cycles of it and its seasonal strength
    /// is clear; re-decided at every refit.
    Auto(Vec<usize>),
}

/// Settings of the forecasting model, validated by the caller.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ForecastModel {
    pub coverage: Coverage,
    /// Finite points needed before the model is fitted at all.
    pub min_points: usize,
    pub season: SeasonSpec,
    /// The longest horizon, in grid steps, forecasts are read at. Refits validate the
    /// candidate models up to it (see [`ensemble`]); 0 when only the next point is scored,
    /// which needs no model choice.
    pub horizon_steps: u32,
}

/// What one observed point looked like to the model.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Observation {
    /// The prediction for this point, made before it arrived.
    pub band: Band,
    /// See [`anomaly_score`]; `None` for a missing point.
    pub score: Option<f64>,
    /// The one-step error in robust standard deviations; NaN for a missing point.
    pub surprise: f64,
}

/// A fitted model positioned just after the newest point it has seen.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FittedForecaster {
    ets: FittedEts,
    seasonal: Option<SeasonalProfiles>,
    /// Grid position of the next point, counted from the first point of the fitted window.
    position: u64,
    /// Half-width of the one-step band at the configured coverage.
    half_width: f64,
    /// The coverage quantile of the whole window's one-step errors (widened for the fit's
    /// optimism, without the normal floor of `half_width`): the narrowest half-width a
    /// validated interval gets.
    interval_floor: f64,
    /// Robust standard deviation of one-step errors, widened for the fit's optimism: the
    /// scale of the next points' errors, in which their surprise is measured.
    sigma: f64,
    coverage: Coverage,
    /// Every point the model was fitted on was >= 0 (a count, a rate, bytes, a utilisation):
    /// forecasts and their intervals stop at 0.
    nonnegative: bool,
    /// The combination chosen on held-out points, which makes the forecasts and their
    /// intervals; `None` when the window could not spare a held-out part (then the model above
    /// forecasts alone). The model above still scores each new point: its one-step band is the
    /// one the anomaly probability is calibrated on.
    ensemble: Option<Ensemble>,
    /// A cheap first model ([`ForecastModel::fit_quick`]), to be replaced by the full fit at
    /// the series' first scheduled refit.
    first_fit: bool,
}

/// A fit and the standardised in-sample one-step errors, oldest first (for warming up the
/// anomaly probability); the first errors, still dominated by the starting state, are left out.
#[derive(Clone, Debug)]
pub struct Fit {
    pub model: FittedForecaster,
    pub in_sample_surprises: Vec<f64>,
}

/// [`FittedForecaster::forecast_method`] of a cheap first model awaiting its full fit.
pub const FIRST_FIT: &str = "first_fit";

/// One-step errors before this many points are left out of the scale and the band: the
/// starting state is a guess whose error takes a few steps to fade.
const BURN_IN_POINTS: usize = 10;
/// The error scale is at least this share of the mean-absolute-deviation estimate. The MAD
/// alone collapses on intermittent series (mostly zeros, where most errors are a decaying
/// level's tiny remainder) and would make every ordinary burst a million-sigma surprise.
const MEAN_ABS_FLOOR: f64 = 0.5;
/// The empirical quantile is used for the band once the tail beyond it holds this many errors;
/// with fewer, the normal quantile of the robust scale is steadier.
const MIN_TAIL_ERRORS: f64 = 5.0;

impl ForecastModel {
    /// Fits on `window` (grid values, oldest first, NaN for gaps). `previous` (the model being
    /// replaced) warm-starts the smoothing parameters when the seasonal structure is unchanged
    /// and it was not a [first fit](Self::fit_quick).
    pub fn fit(
        &self,
        window: &[f64],
        previous: Option<&FittedForecaster>,
    ) -> Result<Fit, NotReady> {
        let need = self.points_needed(window)?;
        let decomposition = match &self.season {
            SeasonSpec::None => None,
            SeasonSpec::Periods(periods) => decompose::decompose(window, periods),
            SeasonSpec::Auto(candidates) => decompose::decompose_detected(window, candidates),
        };
        let (target, seasonal) = match decomposition {
            Some(d) => (d.deseasonalised, Some(d.profiles)),
            None => (window.to_vec(), None),
        };
        let periods = seasonal
            .as_ref()
            .map(SeasonalProfiles::periods)
            .unwrap_or_default();
        let naive_periods: Vec<usize> = match &self.season {
            SeasonSpec::None => Vec::new(),
            SeasonSpec::Periods(candidates) | SeasonSpec::Auto(candidates) => candidates
                .iter()
                .copied()
                .filter(|&p| p >= 2 && 2 * p <= window.len())
                .collect(),
        };
        // A first fit's parameters were picked from a coarse grid without a trend form: nothing
        // to start from.
        let previous = previous.filter(|p| !p.first_fit);
        let ensemble = (self.horizon_steps > 0)
            .then(|| {
                ensemble::validate(&ensemble::Plan {
                    window,
                    periods: &periods,
                    naive_periods: &naive_periods,
                    horizon: self.horizon_steps as usize,
                    min_points: need,
                    coverage: self.coverage,
                    previous: previous.and_then(|p| p.ensemble.as_ref()),
                })
            })
            .flatten()
            .and_then(|e| e.position_at_end(window, &target));
        let same_structure = previous.is_some_and(|p| {
            p.seasonal.as_ref().map(SeasonalProfiles::periods)
                == seasonal.as_ref().map(SeasonalProfiles::periods)
        });
        let start = match previous {
            Some(p) if same_structure => p.ets.warm_start(),
            _ => Start::Cold,
        };
        let fitted = ets::fit(&target, start)
            .or_else(|| ets::fit(&target, Start::Cold))
            .ok_or(NotReady::TooFewPoints {
                have: finite_points(window),
                need,
            })?;
        Ok(self.assemble(window, target, seasonal, fitted, ensemble, false))
    }

    /// A cheap first model of a series, for the sidecar's cold start: the classical
    /// decomposition of [`decompose::decompose_quick`] and simple exponential smoothing with a
    /// level constant from a coarse grid ([`ets::fit_quick`]), with the same band, intervals and
    /// in-sample surprises as a full fit but no model choice on held-out points. About a
    /// twentieth of [`fit`](Self::fit)'s cost on a two-day window of one-minute points, so a
    /// restart without state is ready when the history is loaded; the series' first scheduled
    /// refit replaces it with the full fit.
    pub fn fit_quick(&self, window: &[f64]) -> Result<Fit, NotReady> {
        let need = self.points_needed(window)?;
        let decomposition = match &self.season {
            SeasonSpec::None => None,
            SeasonSpec::Periods(periods) => decompose::decompose_quick(window, periods, false),
            SeasonSpec::Auto(candidates) => decompose::decompose_quick(window, candidates, true),
        };
        let (target, seasonal) = match decomposition {
            Some(d) => (d.deseasonalised, Some(d.profiles)),
            None => (window.to_vec(), None),
        };
        let fitted = ets::fit_quick(&target).ok_or(NotReady::TooFewPoints {
            have: finite_points(window),
            need,
        })?;
        Ok(self.assemble(window, target, seasonal, fitted, None, true))
    }

    /// The points a fit needs; an error when `window` has fewer finite ones.
    fn points_needed(&self, window: &[f64]) -> Result<usize, NotReady> {
        let have = finite_points(window);
        let need = self.min_points.max(8);
        if have < need {
            return Err(NotReady::TooFewPoints { have, need });
        }
        Ok(need)
    }

    /// The fitted forecaster from its parts: the band and the interval floor from the fit's
    /// one-step errors, widened for its optimism.
    fn assemble(
        &self,
        window: &[f64],
        target: Vec<f64>,
        seasonal: Option<SeasonalProfiles>,
        fitted: ets::EtsFit,
        ensemble: Option<Ensemble>,
        first_fit: bool,
    ) -> Fit {
        let errors: Vec<f64> = fitted
            .residuals
            .iter()
            .skip(BURN_IN_POINTS.min(finite_points(window) / 4))
            .copied()
            .filter(|e| e.is_finite())
            .collect();
        let parameters = fitted.model.trend().parameter_count()
            + seasonal
                .as_ref()
                .map_or(0, |s| s.periods().iter().sum::<usize>());
        // The band and the intervals promise out-of-sample coverage, so they are widened for
        // the fit's optimism; so is the scale surprises are measured in. The probability
        // judges surprises against the series' own history of them, where a constant factor
        // would cancel out, but the factor is not constant: it jumps when a refit adds a season
        // seen only twice (about 1.4 for a day of 5-minute points) and fades as cycles pile
        // up, and each jump would make ordinary points read as a run of large surprises.
        let sigma = robust_sigma(&errors, &target);
        // Never narrower than the normal band of the robust scale: the empirical quantile of
        // in-sample errors is what a fit shrinks most when it spends most of the window on its
        // profile (a season seen exactly twice: on the demo's series the 99 % band then missed
        // one point in six of the next day).
        let optimism = in_sample_optimism(errors.len(), parameters);
        let empirical = band_half_width(&errors, sigma, self.coverage);
        let half_width = optimism * empirical.max(self.coverage.normal_quantile() * sigma);
        // The fit's own errors in its own scale (unit spread), as the next points' will be in
        // the widened one.
        let in_sample_surprises = errors.iter().map(|e| e / sigma).collect();
        Fit {
            model: FittedForecaster {
                ets: fitted.model,
                seasonal,
                position: window.len() as u64,
                half_width,
                interval_floor: optimism * empirical,
                sigma: optimism * sigma,
                coverage: self.coverage,
                nonnegative: window.iter().filter(|v| v.is_finite()).all(|v| *v >= 0.0),
                ensemble,
                first_fit,
            },
            in_sample_surprises,
        }
    }
}

fn finite_points(window: &[f64]) -> usize {
    window.iter().filter(|v| v.is_finite()).count()
}

/// How much larger out-of-sample errors are than the in-sample errors of a fit with
/// `parameters` free values (each seasonal profile has one per slot): `sqrt(n / (n - k))`, the
/// degrees-of-freedom correction of a residual variance, capped at 2 for fits that spend most of
/// the window on parameters (a weekly season seen twice).
fn in_sample_optimism(errors: usize, parameters: usize) -> f64 {
    let n = errors as f64;
    let free = (n - parameters as f64).max(n / 4.0);
    if n <= 0.0 {
        1.0
    } else {
        (n / free).sqrt()
    }
}

/// 1.4826 × MAD of the errors (robust to the anomalies they contain), with the fallbacks of
/// [`robust::scale_from`] when most errors are exactly zero.
fn robust_sigma(errors: &[f64], target: &[f64]) -> f64 {
    let floor = robust::scale_floor(target);
    if errors.is_empty() {
        return floor;
    }
    let mut values = errors.to_vec();
    let (centre, mad) = robust::median_and_mad(&mut values);
    let scale = robust::scale_from(mad, &values, centre);
    let mean_abs = robust::mean_abs_sigma(&values, centre);
    scale.max(MEAN_ABS_FLOOR * mean_abs).max(floor)
}

/// The coverage quantile of |error| when the errors have enough tail, else z × sigma. The
/// empirical quantile keeps heavy-tailed series honest: their bands cover what they claim.
fn band_half_width(errors: &[f64], sigma: f64, coverage: Coverage) -> f64 {
    let normal = coverage.normal_quantile() * sigma;
    let tail = errors.len() as f64 * (1.0 - coverage.get());
    if tail < MIN_TAIL_ERRORS {
        return normal;
    }
    let mut magnitudes: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
    let rank = coverage.get() * (magnitudes.len() - 1) as f64;
    let lower = rank.floor() as usize;
    let fraction = rank - lower as f64;
    magnitudes.select_nth_unstable_by(lower, f64::total_cmp);
    let below = magnitudes[lower];
    let above = magnitudes[lower + 1..]
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let quantile = if above.is_finite() {
        below + fraction * (above - below)
    } else {
        below
    };
    quantile.max(1e-9 * sigma.max(f64::MIN_POSITIVE))
}

impl FittedForecaster {
    /// Bytes held on the heap (the seasonal profiles; the rest is inline), for memory
    /// accounting.
    pub fn heap_bytes(&self) -> usize {
        self.seasonal
            .as_ref()
            .map_or(0, SeasonalProfiles::heap_bytes)
            + self.ensemble.as_ref().map_or(0, Ensemble::heap_bytes)
    }

    fn seasonal_at(&self, position: u64) -> f64 {
        self.seasonal.as_ref().map_or(0.0, |s| s.value_at(position))
    }

    /// The band `steps` grid points after the newest point seen (`steps >= 1`). A series that
    /// was never below zero is not forecast below zero: for any value it can take, the clipped
    /// forecast is closer and the clipped interval narrower with the same coverage.
    pub fn forecast(&self, steps: u32) -> Band {
        let band = self
            .combined_forecast(steps)
            .unwrap_or_else(|| self.unclipped_forecast(steps));
        if !self.nonnegative {
            return band;
        }
        Band {
            expected: band.expected.max(0.0),
            lower: band.lower.max(0.0),
            upper: band.upper.max(0.0),
        }
    }

    /// The validated combination's forecast and interval; beyond the longest step validated the
    /// interval keeps widening as the model's own error variance grows. The interval is at least
    /// as wide as the whole window's one-step errors.
    fn combined_forecast(&self, steps: u32) -> Option<Band> {
        let ensemble = self.ensemble.as_ref()?;
        let steps = steps.max(1);
        let (expected, below, above) =
            ensemble.forecast(steps, self.position, self.seasonal.as_ref())?;
        let validated = ensemble.horizon();
        let growth = if steps > validated {
            (self.ets.forecast(steps).1 / self.ets.forecast(validated).1)
                .sqrt()
                .max(1.0)
        } else {
            1.0
        };
        // Never narrower than the whole window's one-step errors say: uncertainty does not
        // shrink with distance, and the held-out part (a quarter of the window) may have missed
        // the series' rarer disturbances.
        Some(Band {
            expected,
            lower: expected - (below * growth).max(self.interval_floor),
            upper: expected + (above * growth).max(self.interval_floor),
        })
    }

    /// The band of the model itself, for scoring points: a surprise is measured against what the
    /// model expected, clipped or not.
    fn unclipped_forecast(&self, steps: u32) -> Band {
        let steps = steps.max(1);
        let (mean, variance_multiplier) = self.ets.forecast(steps);
        let expected = mean + self.seasonal_at(self.position + u64::from(steps) - 1);
        let half = self.half_width * variance_multiplier.sqrt();
        Band {
            expected,
            lower: expected - half,
            upper: expected + half,
        }
    }

    /// Scores the next grid point (NaN for a gap) against the prediction made before it, then
    /// takes it into the state.
    pub fn observe(&mut self, value: f64) -> Observation {
        let (_, variance_multiplier) = self.ets.forecast(1);
        let band = self.unclipped_forecast(1);
        let seasonal = self.seasonal_at(self.position);
        self.ets.update(value - seasonal);
        if let Some(ensemble) = &mut self.ensemble {
            ensemble.observe(value, self.position, self.seasonal.as_ref());
        }
        self.position += 1;
        let surprise = if value.is_finite() {
            (value - band.expected) / (self.sigma * variance_multiplier.sqrt())
        } else {
            f64::NAN
        };
        Observation {
            band,
            score: anomaly_score(&band, value),
            surprise,
        }
    }

    /// Steps (at most `max_steps`, probed at no more than `max_probes` evenly spaced steps) until
    /// `pick(band)` first crosses `threshold` in the direction given; `None` if it does not.
    pub fn steps_until(
        &self,
        threshold: f64,
        rising: bool,
        pick: impl Fn(&Band) -> f64,
        max_steps: u32,
        max_probes: u32,
    ) -> Option<u32> {
        let stride = max_steps.div_ceil(max_probes.max(1)).max(1);
        (1..=max_steps.div_ceil(stride))
            .map(|k| (k * stride).min(max_steps))
            .find(|&steps| {
                let value = pick(&self.forecast(steps));
                if rising {
                    value >= threshold
                } else {
                    value <= threshold
                }
            })
    }

    /// A short description of the fitted form, for logs and the `forecast` command.
    pub fn describe(&self) -> String {
        let own = match &self.seasonal {
            Some(s) if self.first_fit => format!(
                "first fit: classical decomposition{:?} + {}",
                s.periods(),
                self.ets.trend().name()
            ),
            Some(s) => format!("MSTL{:?} + {}", s.periods(), self.ets.trend().name()),
            None if self.first_fit => format!("first fit: {}", self.ets.trend().name()),
            None => self.ets.trend().name().to_owned(),
        };
        let Some(ensemble) = &self.ensemble else {
            return own;
        };
        let weights = ensemble
            .weights_at_horizon(&self.periods())
            .iter()
            .map(|(name, weight)| format!("{name} {weight:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        let against = ensemble
            .validation()
            .error_vs_seasonal_naive
            .map(|ratio| format!(", held-out error {ratio:.2} x seasonal naive's"))
            .unwrap_or_default();
        format!(
            "{weights} (weights at {} steps{against}); next-point band: {own}",
            ensemble.horizon()
        )
    }

    /// What leads the forecast at the longest validated horizon, as a bounded label value
    /// (`seasonal_naive`, `smoothing_damped_trend`, ...; `unvalidated` without a model choice).
    pub fn forecast_method(&self) -> &'static str {
        if self.first_fit {
            return FIRST_FIT;
        }
        self.ensemble
            .as_ref()
            .map_or(ensemble::Member::UNVALIDATED, Ensemble::leading_kind)
    }

    /// True for a cheap first model that awaits its full fit ([`ForecastModel::fit_quick`]).
    pub fn is_first_fit(&self) -> bool {
        self.first_fit
    }

    /// The seasonal periods modelled, in grid points (empty without a season).
    pub fn periods(&self) -> Vec<usize> {
        self.seasonal
            .as_ref()
            .map(SeasonalProfiles::periods)
            .unwrap_or_default()
    }

    pub fn coverage(&self) -> Coverage {
        self.coverage
    }

    /// The robust standard deviation of one-step errors out of sample (the fit's, widened for
    /// its optimism).
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::uniform_noise;

    fn model(season: SeasonSpec) -> ForecastModel {
        ForecastModel {
            coverage: Coverage::new(0.95).expect("valid"),
            min_points: 30,
            season,
            horizon_steps: 0,
        }
    }

    fn seasonal_series(n: usize, period: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let phase = (i % period) as f64 / period as f64;
                200.0 + 50.0 * (std::f64::consts::TAU * phase).sin() + 4.0 * uniform_noise(i, 0)
            })
            .collect()
    }

    #[test]
    fn too_little_history_is_not_ready() {
        let window = vec![1.0; 10];
        assert_eq!(
            model(SeasonSpec::None).fit(&window, None).map(|f| f.model),
            Err(NotReady::TooFewPoints { have: 10, need: 30 })
        );
    }

    #[test]
    fn a_quick_first_fit_covers_the_next_cycle_and_the_full_refit_replaces_it() {
        let period = 96;
        // Two cycles, as a two-day window holds a daily season, then a slow rise.
        // Independent noise (splitmix64): `uniform_noise` steps through a lattice a smoother
        // can partly predict, which would flatter both bands.
        let noise = |i: u64| {
            let mut z = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as f64 / u64::MAX as f64 - 0.5
        };
        let y: Vec<f64> = (0..3 * period)
            .map(|i| {
                let phase = (i % period) as f64 / period as f64;
                200.0
                    + 50.0 * (std::f64::consts::TAU * phase).sin()
                    + 8.0 * noise(i as u64)
                    + 0.02 * i as f64
            })
            .collect();
        let settings = ForecastModel {
            coverage: Coverage::new(0.99).expect("valid"),
            horizon_steps: 12,
            ..model(SeasonSpec::Periods(vec![period]))
        };
        let quick = settings.fit_quick(&y[..2 * period]).expect("ready");
        let full = settings.fit(&y[..2 * period], None).expect("ready");
        assert!(quick.model.is_first_fit() && !full.model.is_first_fit());
        assert_eq!(quick.model.forecast_method(), FIRST_FIT);
        assert!(
            quick
                .model
                .describe()
                .starts_with("first fit: classical decomposition[96]"),
            "{}",
            quick.model.describe()
        );
        assert_eq!(
            quick.in_sample_surprises.len(),
            full.in_sample_surprises.len()
        );
        // Run online over the next cycle, both bands hold nearly every point, and the quick
        // one is not much wider.
        let cover = |mut fitted: FittedForecaster| {
            let mut inside = 0;
            let mut width = 0.0;
            for &value in &y[2 * period..] {
                let observation = fitted.observe(value);
                width += observation.band.upper - observation.band.lower;
                inside += usize::from(observation.score.is_some_and(|s| s <= 1.0));
            }
            (inside, width / period as f64)
        };
        let (quick_inside, quick_width) = cover(quick.model.clone());
        let (full_inside, full_width) = cover(full.model);
        // Two cycles leave each profile slot the mean of two points, so neither band quite
        // reaches 99 % here; the quick one does as well as the full one.
        assert!(quick_inside >= 90, "{quick_inside} of {period}");
        assert!(
            quick_inside + 2 >= full_inside,
            "{quick_inside} vs {full_inside}"
        );
        assert!(
            quick_width < 1.5 * full_width,
            "{quick_width} vs {full_width}"
        );
        // The full refit starts cold, as if there were no first fit: the coarse level constant
        // and the missing trend form are nothing to start from.
        let refit = settings.fit(&y, Some(&quick.model)).expect("ready").model;
        assert_eq!(refit, settings.fit(&y, None).expect("ready").model);
        assert!(!refit.is_first_fit());
        assert_ne!(refit.forecast_method(), FIRST_FIT);
        assert!(
            refit.describe().contains("MSTL[96]"),
            "{}",
            refit.describe()
        );
    }

    #[test]
    fn a_seasonal_series_is_forecast_along_its_cycle() {
        let period = 96;
        let y = seasonal_series(period * 5, period);
        let fitted = model(SeasonSpec::Auto(vec![period]))
            .fit(&y, None)
            .expect("ready")
            .model;
        assert!(
            fitted.describe().starts_with("MSTL[96]"),
            "{}",
            fitted.describe()
        );
        let truth = seasonal_series(period * 6, period);
        for steps in [1u32, 24, 48, 95] {
            let band = fitted.forecast(steps);
            let actual = truth[period * 5 + steps as usize - 1];
            assert!(
                (band.expected - actual).abs() < 6.0,
                "step {steps}: {band:?} vs {actual}"
            );
            assert!(
                band.lower <= actual && actual <= band.upper,
                "{band:?} vs {actual}"
            );
        }
        // Without the season the same series gets a flat forecast and a wide band.
        let flat = model(SeasonSpec::None).fit(&y, None).expect("ready").model;
        assert!(
            flat.forecast(24).upper - flat.forecast(24).lower
                > 3.0 * (fitted.forecast(24).upper - fitted.forecast(24).lower)
        );
    }

    #[test]
    fn configured_period_longer_than_half_the_window_falls_back_to_no_season() {
        let y = seasonal_series(150, 96);
        let fitted = model(SeasonSpec::Periods(vec![96]))
            .fit(&y, None)
            .expect("ready")
            .model;
        assert!(
            fitted.describe().starts_with("ETS"),
            "{}",
            fitted.describe()
        );
    }

    /// Issue 19: fitted on exactly two cycles of its season (a daily season, `history: 2d`),
    /// the band of bounded noise was far too narrow (here 15 of the next 288 points fell
    /// outside a 99 % band; on the demo's series one in six).
    #[test]
    fn two_cycles_of_a_season_give_a_band_that_holds_on_the_next() {
        let period = 288;
        let value = |i: usize| {
            let phase = (i % period) as f64 / period as f64 * std::f64::consts::TAU;
            100.0 + 30.0 * phase.sin() + 4.0 * crate::synthetic::uniform_noise(i, 11)
        };
        let window: Vec<f64> = (0..2 * period).map(value).collect();
        let model = ForecastModel {
            coverage: Coverage::new(0.99).expect("valid"),
            min_points: 30,
            season: SeasonSpec::Periods(vec![period]),
            horizon_steps: 0,
        };
        let mut fitted = model.fit(&window, None).expect("fits").model;
        let outside = (2 * period..3 * period)
            .filter(|i| fitted.observe(value(*i)).score.is_some_and(|s| s > 1.0))
            .count();
        assert!(
            outside <= 3 * period / 100,
            "{outside} of {period} outside a 99% band"
        );
    }

    #[test]
    fn a_spike_scores_above_one_and_ordinary_points_below() {
        let y: Vec<f64> = (0..400).map(|i| 10.0 + uniform_noise(i, 0)).collect();
        let mut fitted = model(SeasonSpec::None).fit(&y, None).expect("ready").model;
        let ordinary = fitted.observe(10.1);
        assert!(ordinary.score.expect("finite") < 1.0, "{ordinary:?}");
        let spike = fitted.observe(25.0);
        assert!(spike.score.expect("finite") > 3.0, "{spike:?}");
        assert!(spike.surprise > 10.0, "{spike:?}");
        let gap = fitted.observe(f64::NAN);
        assert_eq!(gap.score, None);
        assert!(gap.surprise.is_nan());
    }

    #[test]
    fn a_constant_series_scores_any_change_as_anomalous() {
        let y = vec![5.0; 100];
        let mut fitted = model(SeasonSpec::None).fit(&y, None).expect("ready").model;
        assert_eq!(fitted.observe(5.0).score, Some(0.0));
        assert!(fitted.observe(5.5).score.expect("finite") > 1e6);
    }

    #[test]
    fn time_to_threshold_follows_the_trend() {
        // Disk filling by 1 unit per step, at 399 on the newest point: 500 is ~101 steps away.
        let y: Vec<f64> = (0..300)
            .map(|i| 100.0 + i as f64 * 1.0 + 0.2 * uniform_noise(i, 0))
            .collect();
        let fitted = model(SeasonSpec::None).fit(&y, None).expect("ready").model;
        let eta = fitted
            .steps_until(500.0, true, |b| b.expected, 10_000, 10_000)
            .expect("crosses");
        assert!((95..=110).contains(&eta), "{eta}");
        // Not before the first step found, however finely probed.
        assert_eq!(
            fitted.steps_until(500.0, true, |b| b.expected, eta - 1, eta - 1),
            None
        );
        let coarse = fitted
            .steps_until(500.0, true, |b| b.expected, 10_000, 100)
            .expect("crosses");
        assert_eq!(coarse, eta.div_ceil(100) * 100, "probes every 100 steps");
        let upper_eta = fitted
            .steps_until(500.0, true, |b| b.upper, 10_000, 10_000)
            .expect("crosses");
        assert!(upper_eta <= eta);
    }

    #[test]
    fn refits_warm_start_with_the_same_structure() {
        let y: Vec<f64> = (0..500).map(|i| 10.0 + uniform_noise(i, 0)).collect();
        let first = model(SeasonSpec::None)
            .fit(&y[..400], None)
            .expect("ready")
            .model;
        let second = model(SeasonSpec::None)
            .fit(&y, Some(&first))
            .expect("ready")
            .model;
        assert_eq!(second.position, 500);
        assert!((second.forecast(1).expected - 10.0).abs() < 0.5);
    }

    #[test]
    fn in_sample_surprises_skip_the_burn_in_and_are_standardised() {
        let y: Vec<f64> = (0..400).map(|i| 10.0 + uniform_noise(i, 0)).collect();
        let fit = model(SeasonSpec::None).fit(&y, None).expect("ready");
        assert_eq!(fit.in_sample_surprises.len(), 400 - BURN_IN_POINTS);
        let mut magnitudes: Vec<f64> = fit.in_sample_surprises.iter().map(|s| s.abs()).collect();
        let median = robust::median(&mut magnitudes);
        // |z| of a standard normal has median 0.674.
        assert!((median - 0.674).abs() < 0.1, "{median}");
    }

    /// A profile fitted on two cycles absorbs half of each phase's noise, so the fit's own
    /// errors understate the next cycle's by the optimism the band is widened for. The surprise
    /// is measured in the next cycle's units: otherwise every refit that adds a season (two
    /// days into a series' life) makes ordinary points read larger than the history the
    /// probability judges them against, and opens onsets on many series at once.
    #[test]
    fn surprises_out_of_sample_are_on_the_scale_of_the_fit_s_own() {
        let period = 48;
        let y: Vec<f64> = (0..5 * period)
            .map(|i| {
                let phase = (i % period) as f64 / period as f64;
                100.0 + 30.0 * (std::f64::consts::TAU * phase).sin() + 4.0 * uniform_noise(i, 21)
            })
            .collect();
        let fit = model(SeasonSpec::Periods(vec![period]))
            .fit(&y[..2 * period + 5], None)
            .expect("ready");
        let mean_abs = |v: &mut dyn Iterator<Item = f64>| {
            let (sum, count) = v.fold((0.0, 0), |(s, c), z| (s + z.abs(), c + 1));
            sum / count as f64
        };
        let in_sample = mean_abs(&mut fit.in_sample_surprises.iter().copied());
        let mut fitted = fit.model;
        let out_of_sample = mean_abs(
            &mut y[2 * period + 5..]
                .iter()
                .map(|v| fitted.observe(*v).surprise),
        );
        let ratio = out_of_sample / in_sample;
        assert!(
            (0.8..1.25).contains(&ratio),
            "{out_of_sample} against {in_sample}"
        );
    }

    #[test]
    fn an_intermittent_series_keeps_a_usable_error_scale() {
        // Mostly zeros with a short burst every 60 points (error counts, queue drops): most
        // one-step errors are a decaying level's tiny remainder, so the MAD alone collapses.
        let burst = |i: usize| {
            if i % 60 < 3 {
                4.0 + (i % 60) as f64
            } else {
                0.0
            }
        };
        let window: Vec<f64> = (0..600).map(burst).collect();
        let mut fitted = model(SeasonSpec::None)
            .fit(&window, None)
            .expect("fit")
            .model;
        let surprises: Vec<f64> = (600..720)
            .map(|i| fitted.observe(burst(i)).surprise.abs())
            .collect();
        let largest = surprises.iter().copied().fold(0.0, f64::max);
        // An ordinary burst is surprising, but on the scale of the bursts seen before, not a
        // million standard deviations.
        assert!(largest > 1.0 && largest < 50.0, "{surprises:?}");
    }

    #[test]
    fn the_band_is_widened_for_the_parameters_the_fit_spent() {
        assert_eq!(in_sample_optimism(1000, 0), 1.0);
        assert!((in_sample_optimism(400, 100) - (4.0f64 / 3.0).sqrt()).abs() < 1e-12);
        // A fit that spends nearly every point on parameters is capped at twice the width.
        assert_eq!(in_sample_optimism(100, 95), 2.0);
        assert_eq!(in_sample_optimism(0, 5), 1.0);
    }

    /// A series that was never below zero (a rate falling towards zero, a count) is not
    /// forecast below zero; the scoring band of the next point stays the model's own.
    #[test]
    fn forecasts_of_a_series_never_below_zero_stop_at_zero() {
        let falling: Vec<f64> = (0..200)
            .map(|i| (40.0 - 0.2 * i as f64).max(0.0) + 0.5 + 0.3 * uniform_noise(i, 1).abs())
            .collect();
        let fit = model(SeasonSpec::None).fit(&falling, None).expect("fits");
        let mut model_fitted = fit.model.clone();
        for steps in [1, 10, 100, 500] {
            let band = fit.model.forecast(steps);
            assert!(
                band.lower >= 0.0 && band.expected >= 0.0,
                "{steps}: {band:?}"
            );
            assert!(band.upper >= band.expected);
        }
        let unclipped = fit.model.unclipped_forecast(500);
        assert!(
            unclipped.lower < 0.0,
            "the model itself reaches below zero: {unclipped:?}"
        );
        let observed = model_fitted.observe(0.5);
        assert_eq!(observed.band, fit.model.unclipped_forecast(1));
        // A series that has been negative is forecast as the model says.
        let shifted: Vec<f64> = falling.iter().map(|v| v - 1.0).collect();
        let fit = model(SeasonSpec::None).fit(&shifted, None).expect("fits");
        assert_eq!(fit.model.forecast(500), fit.model.unclipped_forecast(500));
    }

    /// Fits on all but the last `horizon` points with the model choice validated at `horizon`
    /// and the seasons `seasonality: auto` would try, and returns the model's and seasonal
    /// naive's mean absolute errors on those points, and the forecasts.
    fn against_seasonal_naive(series: &[f64], horizon: usize, day: usize) -> (f64, f64, Vec<Band>) {
        against_seasonal_naive_with(series, horizon, day, SeasonSpec::Auto(vec![day, 7 * day]))
    }

    fn against_seasonal_naive_with(
        series: &[f64],
        horizon: usize,
        day: usize,
        season: SeasonSpec,
    ) -> (f64, f64, Vec<Band>) {
        let train = series.len() - horizon;
        let model = ForecastModel {
            horizon_steps: horizon as u32,
            ..model(season)
        };
        let fitted = model.fit(&series[..train], None).expect("fits").model;
        assert!(
            fitted.ensemble.is_some(),
            "validated: {}",
            fitted.describe()
        );
        let bands: Vec<Band> = (1..=horizon as u32).map(|h| fitted.forecast(h)).collect();
        let truth = &series[train..];
        let model_error = truth
            .iter()
            .zip(&bands)
            .map(|(y, b)| (y - b.expected).abs())
            .sum::<f64>()
            / horizon as f64;
        let naive_error = truth
            .iter()
            .enumerate()
            .map(|(h, y)| (y - series[train - day + h % day]).abs())
            .sum::<f64>()
            / horizon as f64;
        (model_error, naive_error, bands)
    }

    fn daily_shape(i: usize, day: usize) -> f64 {
        let phase = (i % day) as f64 / day as f64;
        5.0 * (std::f64::consts::TAU * phase).sin()
            + 2.0 * (2.0 * std::f64::consts::TAU * phase).cos()
    }

    /// The case behind issue 17: a clean daily shape with a slow drift (+0.1 a day), where a
    /// trend fitted to the within-day slope ran the forecast down for two days. Hourly and
    /// 5-minute steps, 29 and 40 days, two days ahead.
    #[test]
    fn a_slow_drift_under_a_daily_shape_does_not_run_away() {
        for (day, days) in [(24, 29), (24, 40), (288, 29)] {
            let series: Vec<f64> = (0..day * days)
                .map(|i| {
                    19.0 + daily_shape(i, day)
                        + 0.1 * i as f64 / day as f64
                        + 0.3 * uniform_noise(i, 3)
                })
                .collect();
            let (model_error, naive_error, bands) = against_seasonal_naive(&series, 2 * day, day);
            assert!(
                model_error <= naive_error,
                "{day}x{days}: {model_error} vs naive {naive_error}"
            );
            let recent = &series[series.len() - 4 * day..series.len() - 2 * day];
            let low = recent.iter().copied().fold(f64::INFINITY, f64::min);
            let high = recent.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            for band in &bands {
                assert!(
                    band.expected > low - 1.0 && band.expected < high + 1.0,
                    "{day}x{days}: {band:?} outside {low}..{high}"
                );
            }
        }
    }

    #[test]
    fn a_square_wave_is_forecast_along_its_steps() {
        let day = 24;
        let series: Vec<f64> = (0..20 * day)
            .map(|i| if i % day < 12 { 50.0 } else { 10.0 } + 0.5 * uniform_noise(i, 4))
            .collect();
        let (model_error, naive_error, bands) = against_seasonal_naive(&series, day, day);
        assert!(
            model_error <= 1.1 * naive_error,
            "{model_error} vs naive {naive_error}"
        );
        let train = series.len() - day;
        for (h, band) in bands.iter().enumerate() {
            let high = (train + h) % day < 12;
            assert!(
                if high {
                    band.expected > 40.0
                } else {
                    band.expected < 20.0
                },
                "step {}: {band:?}",
                h + 1
            );
        }
    }

    #[test]
    fn a_counter_that_resets_stays_near_seasonal_naive_and_above_zero() {
        let day = 288;
        let mut total = 0.0;
        let series: Vec<f64> = (0..20 * day)
            .map(|i| {
                if i % 700 == 0 {
                    total = 0.0;
                }
                total += 1.0 + 0.5 * uniform_noise(i, 5);
                total
            })
            .collect();
        let (model_error, naive_error, bands) = against_seasonal_naive(&series, day, day);
        assert!(
            model_error <= 1.5 * naive_error,
            "{model_error} vs naive {naive_error}"
        );
        assert!(bands.iter().all(|b| b.lower >= 0.0 && b.expected >= 0.0));
    }

    #[test]
    fn a_series_at_zero_most_of_the_time_is_forecast_at_zero() {
        let day = 288;
        // A short burst every 97 points (not a daily rhythm): error counts, queue drops.
        let series: Vec<f64> = (0..10 * day)
            .map(|i| {
                if i % 97 < 3 {
                    8.0 + uniform_noise(i, 6)
                } else {
                    0.0
                }
            })
            .collect();
        let (model_error, naive_error, bands) = against_seasonal_naive(&series, day, day);
        assert!(
            model_error <= naive_error,
            "{model_error} vs naive {naive_error}"
        );
        let zeros = bands.iter().filter(|b| b.expected == 0.0).count();
        assert!(
            zeros >= bands.len() * 8 / 10,
            "{zeros} of {} forecasts at 0",
            bands.len()
        );
    }

    #[test]
    fn a_level_shift_two_days_before_the_end_is_followed() {
        let day = 24;
        let days = 30;
        let shift_at = (days - 3) * day;
        let series: Vec<f64> = (0..days * day)
            .map(|i| {
                let level = if i >= shift_at { 80.0 } else { 50.0 };
                level + daily_shape(i, day) + 0.5 * uniform_noise(i, 7)
            })
            .collect();
        // The configured daily season: `auto` misses it here (a shift in the window's newest
        // days inflates MSTL's remainder and so lowers the seasonal strength it is judged by).
        let (model_error, naive_error, bands) =
            against_seasonal_naive_with(&series, day, day, SeasonSpec::Periods(vec![day]));
        assert!(
            model_error <= 1.5 * naive_error.max(1.0),
            "{model_error} vs naive {naive_error}"
        );
        let mean = bands.iter().map(|b| b.expected).sum::<f64>() / bands.len() as f64;
        assert!((mean - 80.0).abs() < 5.0, "forecast mean {mean}");
    }

    /// NAB's art_daily_nojump: a day skips its peak, and the refit comes while the peak is
    /// missing. Every trend form of the smoothing drags its level down with the missing peak;
    /// counted as three candidates they outvoted the seasonal methods in the weighted median
    /// and forecast the whole next night at 0 instead of 20.
    #[test]
    fn a_day_that_skipped_its_peak_does_not_drag_the_next_day_down() {
        let day = 288;
        let days = 14;
        let skipped = days - 1;
        let peak_hours = 9..18;
        let hour_of = |i: usize| (i % day) / 12;
        let series: Vec<f64> = (0..days * day)
            .map(|i| {
                let peak = peak_hours.contains(&hour_of(i)) && i / day != skipped;
                let level = if peak { 80.0 } else { 20.0 };
                level + 2.0 * uniform_noise(i, 9)
            })
            .collect();
        // The refit comes at 16:00 of the day without a peak; forecasts for the next 24 hours.
        let train = skipped * day + 16 * 12;
        let model = ForecastModel {
            horizon_steps: day as u32,
            ..model(SeasonSpec::Auto(vec![day, 7 * day]))
        };
        let fitted = model.fit(&series[..train], None).expect("fits").model;
        for h in 1..=day as u32 {
            let hour = hour_of(train + h as usize - 1);
            let band = fitted.forecast(h);
            // The first hour after the peak would have ended still follows the smoothing's
            // level (at two hours ahead it was the best on the held-out part); from the next
            // hour the seasonal methods outvote it.
            if !peak_hours.contains(&hour) && hour != peak_hours.end {
                assert!(
                    (band.expected - 20.0).abs() < 8.0,
                    "{hour}:00 off peak: {band:?}; {}",
                    fitted.describe()
                );
            }
        }
    }

    /// The intervals come from the held-out errors: on a regular series they cover about what
    /// they claim at every distance, and the description names the combination.
    #[test]
    fn validated_intervals_cover_held_out_points() {
        let day = 48;
        let series: Vec<f64> = (0..14 * day)
            .map(|i| 100.0 + 4.0 * daily_shape(i, day) + 3.0 * uniform_noise(i, 8))
            .collect();
        let mut inside = 0;
        let mut total = 0;
        for origin in (8 * day..13 * day).step_by(day / 4) {
            let fitted = ForecastModel {
                horizon_steps: day as u32,
                ..model(SeasonSpec::Auto(vec![day]))
            }
            .fit(&series[..origin], None)
            .expect("fits")
            .model;
            for h in 1..=day {
                let band = fitted.forecast(h as u32);
                inside += usize::from(
                    band.lower <= series[origin + h - 1] && series[origin + h - 1] <= band.upper,
                );
                total += 1;
            }
            let description = fitted.describe();
            assert!(
                description.contains("held-out error")
                    && description.contains("next-point band: MSTL[48]"),
                "{description}"
            );
        }
        let coverage = inside as f64 / total as f64;
        assert!((0.9..=0.99).contains(&coverage), "{coverage}");
    }

    /// The held-out part (the newest quarter) can miss the disturbances the rest of the
    /// window had; the intervals then stay at least as wide as the quantile of the whole
    /// window's one-step errors, bursts included.
    #[test]
    fn intervals_are_never_narrower_than_the_window_s_one_step_errors() {
        let day = 48;
        let days = 12;
        let calm_from = days * day * 3 / 4;
        let series: Vec<f64> = (0..days * day)
            .map(|i| {
                let burst = if i < calm_from && i % 7 == 0 {
                    25.0 * uniform_noise(i, 9)
                } else {
                    0.0
                };
                100.0 + 4.0 * daily_shape(i, day) + uniform_noise(i, 10) + burst
            })
            .collect();
        let fitted = ForecastModel {
            horizon_steps: day as u32,
            ..model(SeasonSpec::Auto(vec![day]))
        }
        .fit(&series, None)
        .expect("fits")
        .model;
        assert!(fitted.ensemble.is_some(), "{}", fitted.describe());
        // The bursts, one point in seven of the older three quarters, are in the quantile.
        let floor = fitted.interval_floor;
        assert!(floor > 5.0, "{floor}");
        for steps in 1..=day as u32 {
            let band = fitted.forecast(steps);
            assert!(
                band.upper - band.expected >= floor - 1e-9
                    && band.expected - band.lower >= floor - 1e-9,
                "step {steps}: {band:?}, floor {floor}"
            );
        }
    }

    #[test]
    fn without_a_horizon_no_model_choice_is_made() {
        let series: Vec<f64> = (0..400).map(|i| 10.0 + uniform_noise(i, 0)).collect();
        let fitted = model(SeasonSpec::None)
            .fit(&series, None)
            .expect("fits")
            .model;
        assert!(fitted.ensemble.is_none());
        assert_eq!(fitted.describe(), "ETS(A,N,N)");
    }
}
