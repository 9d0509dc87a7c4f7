//! Non-seasonal exponential smoothing, ETS(A,N,N), ETS(A,A,N) and ETS(A,Ad,N), with the state
//! kept by this crate so that each new point updates it in O(1).
//!
//! augurs-ets' AutoETS selects among the same models by AICc, but its fitted state and
//! parameters are private, so a model fitted there can only be refitted from scratch, never
//! updated point by point or warm-started. This module implements the same state-space
//! recursions (Hyndman et al., *Forecasting with Exponential Smoothing*, 2008, ch. 2 and 6)
//! and is checked against AutoETS in the tests. Multiplicative-error models give the same point
//! forecasts as their additive twins for these trends, so they are not fitted separately.
//!
//! Missing points (NaN) advance the state without an update, the standard state-space
//! treatment, so gaps widen the next prediction's interval instead of being invented.

use super::optimize::{minimise, Search};

/// Trend component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Trend {
    None,
    Additive,
    Damped,
}

impl Trend {
    /// Free parameters counted by AICc: smoothing parameters and initial states.
    pub fn parameter_count(self) -> usize {
        match self {
            Trend::None => 2,
            Trend::Additive => 4,
            Trend::Damped => 5,
        }
    }

    fn dimensions(self) -> usize {
        match self {
            Trend::None => 1,
            Trend::Additive => 2,
            Trend::Damped => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Trend::None => "ETS(A,N,N)",
            Trend::Additive => "ETS(A,A,N)",
            Trend::Damped => "ETS(A,Ad,N)",
        }
    }
}

/// Smoothing parameters: `alpha` for the level, `beta` for the slope, `phi` for damping.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EtsParams {
    pub alpha: f64,
    pub beta: f64,
    pub phi: f64,
}

/// Bounds follow R's `forecast::ets` (restricted to invertible models): 0 < beta < alpha < 1,
/// 0.8 <= phi <= 0.98, widened to 0.995 because steps here are often a minute, where 0.98
/// would flatten any trend within an hour.
const ALPHA_RANGE: (f64, f64) = (1e-4, 0.9999);
const PHI_RANGE: (f64, f64) = (0.8, 0.995);

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-9, 1.0 - 1e-9);
    (p / (1.0 - p)).ln()
}

fn within(range: (f64, f64), unit: f64) -> f64 {
    range.0 + (range.1 - range.0) * unit
}

fn unit_within(range: (f64, f64), value: f64) -> f64 {
    (value - range.0) / (range.1 - range.0)
}

impl EtsParams {
    fn from_unconstrained(trend: Trend, x: &[f64]) -> Self {
        let alpha = within(ALPHA_RANGE, logistic(x[0]));
        let beta = match trend {
            Trend::None => 0.0,
            _ => alpha * within((1e-4, 0.9999), logistic(x[1])),
        };
        let phi = match trend {
            Trend::Damped => within(PHI_RANGE, logistic(x[2])),
            _ => 1.0,
        };
        EtsParams { alpha, beta, phi }
    }

    fn to_unconstrained(self, trend: Trend) -> Vec<f64> {
        let mut x = vec![logit(unit_within(ALPHA_RANGE, self.alpha))];
        if trend != Trend::None {
            x.push(logit(unit_within((1e-4, 0.9999), self.beta / self.alpha)));
        }
        if trend == Trend::Damped {
            x.push(logit(unit_within(PHI_RANGE, self.phi)));
        }
        x
    }

    /// Sum of `phi^1 + ... + phi^h`: how many slopes an h-step forecast adds.
    fn slope_multiplier(&self, trend: Trend, h: f64) -> f64 {
        match trend {
            Trend::None => 0.0,
            Trend::Additive => h,
            Trend::Damped => self.phi * (1.0 - self.phi.powf(h)) / (1.0 - self.phi),
        }
    }

    /// Variance of the h-step forecast error in units of the one-step variance:
    /// `1 + sum_{j=1}^{h-1} c_j^2` with `c_j = alpha + beta (phi + ... + phi^j)`, in closed form
    /// (Hyndman et al. 2008, table 6.1).
    fn variance_multiplier(&self, trend: Trend, h: f64) -> f64 {
        let m = (h - 1.0).max(0.0);
        let EtsParams { alpha, beta, phi } = *self;
        let sum = match trend {
            Trend::None => m * alpha * alpha,
            Trend::Additive => {
                let s1 = m * (m + 1.0) / 2.0;
                let s2 = m * (m + 1.0) * (2.0 * m + 1.0) / 6.0;
                m * alpha * alpha + 2.0 * alpha * beta * s1 + beta * beta * s2
            }
            Trend::Damped => {
                // c_j = a - b phi^j with a = alpha + beta phi/(1-phi), b = beta phi/(1-phi).
                let b = beta * phi / (1.0 - phi);
                let a = alpha + b;
                let geometric = phi * (1.0 - phi.powf(m)) / (1.0 - phi);
                let geometric_sq = phi * phi * (1.0 - phi.powf(2.0 * m)) / (1.0 - phi * phi);
                m * a * a - 2.0 * a * b * geometric + b * b * geometric_sq
            }
        };
        1.0 + sum.max(0.0)
    }
}

/// An error beyond this many robust standard deviations moves the state only as far as the
/// bound (Gelper, Fried & Croux 2010, "Robust forecasting with exponential and Holt-Winters
/// smoothing"), so a spike does not drag the level along and the return to normal after it is
/// not scored as a second anomaly.
const OUTLIER_SIGMAS: f64 = 4.0;
/// ...unless it persists: after this many out-of-bound errors in a row the change is taken as
/// the new normal (a level shift) and errors are used in full until one falls inside the bound
/// again. This also keeps a misfit state from being held off its data indefinitely.
const LEVEL_SHIFT_RUN: u32 = 3;

/// The bound on errors fed to the state, and the current run of out-of-bound errors.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Guard {
    bound: f64,
    run: u32,
}

impl Guard {
    fn unbounded() -> Self {
        Guard {
            bound: f64::INFINITY,
            run: 0,
        }
    }

    /// The error the state update uses.
    fn admit(&mut self, error: f64) -> f64 {
        if error.abs() <= self.bound {
            self.run = 0;
            return error;
        }
        self.run = self.run.saturating_add(1);
        if self.run >= LEVEL_SHIFT_RUN {
            error
        } else {
            error.clamp(-self.bound, self.bound)
        }
    }
}

/// Level and slope after the newest observation.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    level: f64,
    slope: f64,
}

impl State {
    /// Starting state from the first finite values: the first value as level, no slope.
    /// Its error decays as `(1 - alpha)^t`, negligible against a window of thousands of points.
    fn initial(y: &[f64]) -> Option<State> {
        let first = y.iter().copied().find(|v| v.is_finite())?;
        Some(State {
            level: first,
            slope: 0.0,
        })
    }

    fn predict(&self, params: &EtsParams) -> f64 {
        self.level + params.phi * self.slope
    }

    /// One step of the recursion. Returns the one-step error, NaN for a missing value.
    fn step(&mut self, params: &EtsParams, y: f64, guard: &mut Guard) -> f64 {
        let predicted = self.predict(params);
        if y.is_finite() {
            let error = y - predicted;
            let used = guard.admit(error);
            self.level = predicted + params.alpha * used;
            self.slope = params.phi * self.slope + params.beta * used;
            error
        } else {
            self.level = predicted;
            self.slope *= params.phi;
            f64::NAN
        }
    }
}

/// A fitted model: trend form, parameters and the state after the newest point.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FittedEts {
    trend: Trend,
    params: EtsParams,
    state: State,
    /// Steps since the last finite observation (0 right after one).
    steps_since_observation: u32,
    guard: Guard,
    aicc: f64,
}

/// A fit and the in-sample one-step errors it produced (NaN where the input was missing).
#[derive(Clone, Debug)]
pub struct EtsFit {
    pub model: FittedEts,
    pub residuals: Vec<f64>,
}

/// How hard to search: a cold fit selects the trend form and searches widely; a warm refit
/// keeps the form and starts from the previous parameters.
#[derive(Clone, Copy, Debug)]
pub enum Start {
    Cold,
    Warm { trend: Trend, params: EtsParams },
}

const COLD: Search = Search {
    initial_step: 1.0,
    max_evaluations: 120,
    tolerance: 1e-7,
};
const WARM: Search = Search {
    initial_step: 0.25,
    max_evaluations: 40,
    tolerance: 1e-6,
};

/// Fits on `y` (NaN for gaps). `None` when fewer than `trend.parameter_count() + 4` finite
/// points exist for every candidate.
pub fn fit(y: &[f64], start: Start) -> Option<EtsFit> {
    let finite = y.iter().filter(|v| v.is_finite()).count();
    let candidates: Vec<(Trend, Option<EtsParams>)> = match start {
        Start::Cold => vec![
            (Trend::None, None),
            (Trend::Additive, None),
            (Trend::Damped, None),
        ],
        Start::Warm { trend, params } => vec![(trend, Some(params))],
    };
    candidates
        .into_iter()
        .filter(|(trend, _)| finite > trend.parameter_count() + 4)
        .filter_map(|(trend, warm)| fit_one(y, trend, warm, finite))
        .min_by(|a, b| a.model.aicc.total_cmp(&b.model.aicc))
}

fn sum_of_squares(y: &[f64], params: &EtsParams) -> f64 {
    let Some(mut state) = State::initial(y) else {
        return f64::NAN;
    };
    let mut sse = 0.0;
    let mut guard = Guard::unbounded();
    for &value in y {
        let error = state.step(params, value, &mut guard);
        if error.is_finite() {
            sse += error * error;
        }
    }
    sse
}

/// Fits one trend form on `y` (NaN for gaps), warm-started from `warm` when given. `None` when
/// `y` has too few finite points for the form.
pub fn fit_form(y: &[f64], trend: Trend, warm: Option<EtsParams>) -> Option<EtsFit> {
    let finite = y.iter().filter(|v| v.is_finite()).count();
    if finite <= trend.parameter_count() + 4 {
        return None;
    }
    fit_one(y, trend, warm, finite)
}

/// The model of this form with these parameters (fitted elsewhere) run over `y`: its state
/// after the newest point, as an online model that had seen `y` would hold it.
pub fn with_params(y: &[f64], trend: Trend, params: EtsParams) -> Option<FittedEts> {
    let finite = y.iter().filter(|v| v.is_finite()).count();
    assemble(y, trend, params, finite).map(|fit| fit.model)
}

/// Level smoothing constants a quick fit chooses among: from a level that follows the series
/// slowly to one that almost repeats the newest point.
const QUICK_ALPHAS: [f64; 6] = [0.02, 0.1, 0.25, 0.5, 0.75, 0.95];

/// A cheap fit for a series' first model (the sidecar's cold start): simple exponential
/// smoothing (no trend) with the level constant of six (0.02 to 0.95) that has the least squared
/// one-step error. Eight passes over `y` instead of the optimiser's hundreds for each of three
/// trend forms; the full fit replaces it at the series' first scheduled refit. `None` when `y`
/// has too few finite points.
pub fn fit_quick(y: &[f64]) -> Option<EtsFit> {
    let finite = y.iter().filter(|v| v.is_finite()).count();
    if finite <= Trend::None.parameter_count() + 4 {
        return None;
    }
    // All constants in one pass: the level recursions are independent, so they run side by
    // side instead of reading the window six times.
    let start = State::initial(y)?;
    let mut levels = [start.level; QUICK_ALPHAS.len()];
    let mut sums = [0.0; QUICK_ALPHAS.len()];
    for &value in y.iter().filter(|v| v.is_finite()) {
        for ((level, sum), alpha) in levels.iter_mut().zip(&mut sums).zip(QUICK_ALPHAS) {
            let error = value - *level;
            *level += alpha * error;
            *sum += error * error;
        }
    }
    let (_, alpha) = sums
        .iter()
        .zip(QUICK_ALPHAS)
        .filter(|(sum, _)| sum.is_finite())
        .min_by(|a, b| a.0.total_cmp(b.0))?;
    let params = EtsParams {
        alpha,
        beta: 0.0,
        phi: 1.0,
    };
    assemble(y, Trend::None, params, finite)
}

fn fit_one(y: &[f64], trend: Trend, warm: Option<EtsParams>, finite: usize) -> Option<EtsFit> {
    let (start, search) = match warm {
        Some(params) => (params.to_unconstrained(trend), WARM),
        None => {
            // alpha 0.5, beta 0.05 alpha, phi 0.95: mid-range starting points.
            let default = EtsParams {
                alpha: 0.5,
                beta: 0.025,
                phi: 0.95,
            };
            (default.to_unconstrained(trend), COLD)
        }
    };
    let (best, _) = minimise(&start[..trend.dimensions()], search, |x| {
        sum_of_squares(y, &EtsParams::from_unconstrained(trend, x))
    });
    let params = EtsParams::from_unconstrained(trend, &best);
    assemble(y, trend, params, finite)
}

fn assemble(y: &[f64], trend: Trend, params: EtsParams, finite: usize) -> Option<EtsFit> {
    // The parameters come from the plain squared error (what AICc compares); the state is then
    // replayed with errors bounded at OUTLIER_SIGMAS robust standard deviations of that fit, so
    // that it evolves exactly as the online updates will make it evolve.
    let (_, plain_residuals, sse, _) = replay(y, &params, Guard::unbounded())?;
    let bound = OUTLIER_SIGMAS * robust_scale(&plain_residuals);
    let guard = Guard { bound, run: 0 };
    let (state, residuals, _, (steps_since_observation, guard)) = replay(y, &params, guard)?;
    let n = finite as f64;
    let k = trend.parameter_count() as f64;
    // A perfectly fitted (constant) series has SSE 0; a floor keeps the AICc finite so the
    // simplest form still wins by its smaller penalty.
    let mean_square = (sse / n).max(1e-300);
    let aicc = n * mean_square.ln() + 2.0 * k + 2.0 * k * (k + 1.0) / (n - k - 1.0).max(1.0);
    Some(EtsFit {
        model: FittedEts {
            trend,
            params,
            state,
            steps_since_observation,
            guard,
            aicc,
        },
        residuals,
    })
}

type Replay = (State, Vec<f64>, f64, (u32, Guard));

/// Runs the recursion over `y`: final state, one-step errors, their sum of squares, and the
/// steps since the last observation with the guard's final run.
fn replay(y: &[f64], params: &EtsParams, guard: Guard) -> Option<Replay> {
    let mut state = State::initial(y)?;
    let mut residuals = Vec::with_capacity(y.len());
    let mut sse = 0.0;
    let mut steps_since_observation = 0;
    // The starting state is a guess (no slope); its first errors are real and must be taken in
    // full, or a trending series would be held off its data.
    let burn_in = (y.len() / 10).max(20);
    let mut unbounded = Guard::unbounded();
    let mut guard = guard;
    for (i, &value) in y.iter().enumerate() {
        let active = if i < burn_in {
            &mut unbounded
        } else {
            &mut guard
        };
        let error = state.step(params, value, active);
        if error.is_finite() {
            sse += error * error;
            steps_since_observation = 0;
        } else {
            steps_since_observation += 1;
        }
        residuals.push(error);
    }
    Some((state, residuals, sse, (steps_since_observation, guard)))
}

/// 1.4826 × MAD of the finite errors; infinite (no bound) when there are none or they are all
/// zero, so a perfectly predictable series is never clipped into a wrong state.
fn robust_scale(errors: &[f64]) -> f64 {
    let mut finite: Vec<f64> = errors.iter().copied().filter(|e| e.is_finite()).collect();
    if finite.is_empty() {
        return f64::INFINITY;
    }
    let (_, mad) = super::robust::median_and_mad(&mut finite);
    let scale = super::robust::MAD_TO_SIGMA * mad;
    if scale > 0.0 {
        scale
    } else {
        f64::INFINITY
    }
}

impl FittedEts {
    pub fn trend(&self) -> Trend {
        self.trend
    }

    pub fn params(&self) -> EtsParams {
        self.params
    }

    /// Forecast mean `h` steps after the newest point (h >= 1), and the variance of its error
    /// in units of the one-step error variance. Gaps since the last observation count as steps.
    pub fn forecast(&self, h: u32) -> (f64, f64) {
        let h = f64::from(h);
        let mean =
            self.state.level + self.params.slope_multiplier(self.trend, h) * self.state.slope;
        let ahead = h + f64::from(self.steps_since_observation);
        (mean, self.params.variance_multiplier(self.trend, ahead))
    }

    /// Updates the state with the next point on the grid (NaN for a gap) in O(1). Returns the
    /// one-step error, NaN for a gap.
    pub fn update(&mut self, y: f64) -> f64 {
        let error = self.state.step(&self.params, y, &mut self.guard);
        if error.is_finite() {
            self.steps_since_observation = 0;
        } else {
            self.steps_since_observation = self.steps_since_observation.saturating_add(1);
        }
        error
    }

    /// How to warm-start the next refit.
    pub fn warm_start(&self) -> Start {
        Start::Warm {
            trend: self.trend,
            params: self.params,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::uniform_noise;

    #[test]
    fn level_series_selects_no_trend_and_forecasts_the_level() {
        let y: Vec<f64> = (0..500).map(|i| 20.0 + uniform_noise(i, 0)).collect();
        let fit = fit(&y, Start::Cold).expect("fits");
        assert_eq!(fit.model.trend(), Trend::None);
        let (mean, variance) = fit.model.forecast(10);
        assert!((mean - 20.0).abs() < 0.2, "{mean}");
        assert!(variance >= 1.0);
    }

    #[test]
    fn a_quick_fit_smooths_noise_and_follows_a_random_walk() {
        // Noise around a level: a slow level constant has the least error.
        let noise: Vec<f64> = (0..500).map(|i| 20.0 + uniform_noise(i, 0)).collect();
        let quick = fit_quick(&noise).expect("fits");
        assert_eq!(quick.model.trend(), Trend::None);
        assert!(quick.model.params().alpha <= 0.1, "{:?}", quick.model);
        assert!((quick.model.forecast(10).0 - 20.0).abs() < 0.3);
        // A random walk: the newest point is the best guess.
        let mut walk = vec![0.0];
        for i in 1..500 {
            walk.push(walk[i - 1] + uniform_noise(i, 1));
        }
        let quick = fit_quick(&walk).expect("fits");
        assert!(quick.model.params().alpha >= 0.75, "{:?}", quick.model);
        // Its in-sample error is close to the optimiser's.
        let full = fit_one(&walk, Trend::None, None, walk.len()).expect("fits");
        let sse = |fit: &EtsFit| fit.residuals.iter().map(|e| e * e).sum::<f64>();
        assert!(
            sse(&quick) < 1.1 * sse(&full),
            "{} vs {}",
            sse(&quick),
            sse(&full)
        );
        assert!(fit_quick(&[1.0, 2.0, f64::NAN, 3.0]).is_none());
    }

    #[test]
    fn linear_growth_selects_a_trend_and_extrapolates_it() {
        let y: Vec<f64> = (0..500)
            .map(|i| 100.0 + 0.5 * i as f64 + 0.1 * uniform_noise(i, 0))
            .collect();
        let fit = fit(&y, Start::Cold).expect("fits");
        assert_ne!(fit.model.trend(), Trend::None);
        let (mean, _) = fit.model.forecast(100);
        // truth at index 599: 399.5
        assert!((mean - 399.5).abs() < 5.0, "{mean} ({:?})", fit.model);
    }

    #[test]
    fn online_updates_match_a_fit_over_the_longer_series() {
        let y: Vec<f64> = (0..300)
            .map(|i| 5.0 + (i as f64 / 40.0).sin() + uniform_noise(i, 0))
            .collect();
        let fitted = fit(&y[..250], Start::Cold).expect("fits");
        let mut online = fitted.model.clone();
        for &value in &y[250..] {
            online.update(value);
        }
        // Replaying the same parameters over the whole series gives the same state.
        let guard = Guard {
            run: 0,
            ..fitted.model.guard
        };
        let (replayed, _, _, _) = replay(&y, &fitted.model.params, guard).expect("finite");
        assert!((online.state.level - replayed.level).abs() < 1e-9);
        assert!((online.state.slope - replayed.slope).abs() < 1e-9);
    }

    #[test]
    fn gaps_advance_the_state_and_widen_the_next_interval() {
        let y: Vec<f64> = (0..200).map(|i| 10.0 + uniform_noise(i, 0)).collect();
        let mut model = fit(&y, Start::Cold).expect("fits").model;
        let (_, before) = model.forecast(1);
        assert!(model.update(f64::NAN).is_nan());
        assert!(model.update(f64::NAN).is_nan());
        let (_, after) = model.forecast(1);
        assert!(after > before, "{before} -> {after}");
        assert!(model.update(10.0).is_finite());
        assert_eq!(model.forecast(1).1, before);
    }

    #[test]
    fn a_spike_does_not_drag_the_level_but_a_lasting_shift_is_followed() {
        let y: Vec<f64> = (0..400).map(|i| 10.0 + uniform_noise(i, 0)).collect();
        let fitted = fit(&y, Start::Cold).expect("fits").model;
        // A spike shorter than a level shift's run: each point moves the state by at most the
        // bound, where the unbounded model takes the whole error.
        let mut spiked = fitted.clone();
        let mut spiked_unbounded = FittedEts {
            guard: Guard::unbounded(),
            ..fitted.clone()
        };
        for _ in 1..LEVEL_SHIFT_RUN {
            spiked.update(60.0);
            spiked_unbounded.update(60.0);
        }
        let (after_spike, _) = spiked.forecast(1);
        let (dragged, _) = spiked_unbounded.forecast(1);
        assert!(
            (after_spike - 10.0).abs() < 1.0,
            "level dragged to {after_spike}"
        );
        assert!(
            dragged - 10.0 > 3.0 * (after_spike - 10.0).abs(),
            "{after_spike} bounded against {dragged} unbounded"
        );
        // A lasting shift is followed as fast as the unbounded model would, a few points later.
        let mut shifted = fitted.clone();
        let mut unbounded = FittedEts {
            guard: Guard::unbounded(),
            ..fitted.clone()
        };
        for _ in 0..200 {
            shifted.update(60.0);
            unbounded.update(60.0);
        }
        let (after_shift, _) = shifted.forecast(1);
        let (reference, _) = unbounded.forecast(1);
        assert!(
            (after_shift - reference).abs() < 0.5,
            "{after_shift} vs {reference}"
        );
        assert!(after_shift > 50.0, "level stuck at {after_shift}");
    }

    #[test]
    fn constant_and_tiny_inputs_do_not_panic() {
        let constant = vec![3.0; 100];
        let fit_constant = fit(&constant, Start::Cold).expect("fits");
        assert_eq!(fit_constant.model.forecast(5).0, 3.0);
        assert!(fit(&[1.0, 2.0], Start::Cold).is_none());
        assert!(fit(&[f64::NAN; 50], Start::Cold).is_none());
        assert!(fit(&[], Start::Cold).is_none());
    }

    #[test]
    fn closed_form_variance_matches_the_sum() {
        let params = EtsParams {
            alpha: 0.4,
            beta: 0.1,
            phi: 0.9,
        };
        for trend in [Trend::None, Trend::Additive, Trend::Damped] {
            let phi = if trend == Trend::Damped { 0.9 } else { 1.0 };
            let beta = if trend == Trend::None { 0.0 } else { 0.1 };
            let p = EtsParams {
                phi,
                beta,
                ..params
            };
            for h in [1u32, 2, 7, 30] {
                let mut sum = 1.0;
                for j in 1..h {
                    let phis: f64 = (1..=j).map(|i| phi.powi(i as i32)).sum();
                    sum += (p.alpha + p.beta * phis).powi(2);
                }
                let closed = p.variance_multiplier(trend, f64::from(h));
                assert!(
                    (closed - sum).abs() < 1e-9 * sum,
                    "{trend:?} h={h}: {closed} vs {sum}"
                );
            }
        }
    }

    #[test]
    fn warm_refit_stays_close_to_the_cold_fit() {
        let y: Vec<f64> = (0..1000)
            .map(|i| 50.0 + 0.01 * i as f64 + uniform_noise(i, 0) * 2.0)
            .collect();
        let cold = fit(&y[..900], Start::Cold).expect("fits");
        let warm = fit(&y, cold.model.warm_start()).expect("fits");
        let full = fit(&y, Start::Cold).expect("fits");
        assert_eq!(warm.model.trend(), cold.model.trend());
        let (warm_mean, _) = warm.model.forecast(10);
        let (full_mean, _) = full.model.forecast(10);
        assert!(
            (warm_mean - full_mean).abs() < 1.0,
            "{warm_mean} vs {full_mean}"
        );
    }

    /// augurs-ets AutoETS (non-seasonal) is the reference: on the same data both select by AICc
    /// among the same additive forms, so their forecasts should agree closely.
    #[test]
    fn forecasts_agree_with_augurs_auto_ets() {
        use augurs_core::{Fit, Predict};
        let y: Vec<f64> = (0..400)
            .map(|i| 30.0 + 0.05 * i as f64 + 3.0 * uniform_noise(i, 0) + (i as f64 / 25.0).sin())
            .collect();
        let ours = fit(&y, Start::Cold).expect("fits").model;
        let reference = augurs_ets::AutoETS::non_seasonal()
            .fit(&y)
            .expect("augurs fits");
        let predicted = reference.predict(20, None).expect("predicts");
        for (h, expected) in predicted.point.iter().enumerate() {
            let (mean, _) = ours.forecast(h as u32 + 1);
            assert!(
                (mean - expected).abs() < 1.0,
                "h={} ours {mean} augurs {expected}",
                h + 1
            );
        }
    }
}
