//! Model choice by out-of-sample error, and forecast intervals from the same errors.
//!
//! At a refit the newest part of the window is held out. The candidates (the seasonal profiles
//! plus exponential smoothing without trend, with a damped trend and with a linear trend, and
//! seasonal naive for each season the window holds) are fitted on the part before it and
//! forecast the held-out part from a rolling origin, every `stride` points, up to the longest
//! horizon the forecasts are read at. Their errors, grouped into horizon buckets (step 1,
//! 2–3, 4–7, ...), weigh them per bucket; the combined forecast's own errors on the same
//! origins give the interval: a per-bucket scale times the split-conformal quantile of the
//! errors divided by it (Lei et al. 2018, "Distribution-free predictive inference for
//! regression", normalised scores), so the interval is as wide as the held-out errors were at
//! that distance and covers what it claims on them.
//!
//! Why not one model chosen by in-sample fit: a trend that fits the window well extrapolates
//! badly (a within-day slope the season did not absorb becomes a two-day fall), and the
//! in-sample one-step errors of a smoothing model say little about its error a day ahead.
//! Why a combination: in every forecasting competition since M3 combinations of simple
//! methods have beaten the selection of one (Makridakis et al. 2020, "The M4 competition"),
//! and inverse-error weights keep a model that lost on the held-out part from dominating.

use super::decompose::{self, SeasonalProfiles};
use super::ets::{self, EtsParams, FittedEts, Trend};
use super::Coverage;

/// The trend forms validated, simplest first (a tie goes to the simplest).
const TRENDS: [Trend; 3] = [Trend::None, Trend::Damped, Trend::Additive];
/// Origins per horizon: the rolling origin moves by `horizon / ORIGINS_PER_HORIZON` points, so
/// the longest step is judged from about this many origins and step 1 from twice as many.
const ORIGINS_PER_HORIZON: usize = 8;
/// Cycles a seasonal median is taken over: enough to outvote two disturbed cycles.
const MEDIAN_CYCLES: usize = 5;
/// The held-out part is at least two horizons and, when the window can spare it, a quarter of
/// the window: a few days of errors rather than two horizons' worth, so the intervals see the
/// series' rarer disturbances too.
const HELD_OUT_SHARE: usize = 4;

/// The seasonal median forecast of grid position `target` from the points before `origin`:
/// the median of the finite values at the same phase in the newest `MEDIAN_CYCLES` cycles
/// before `origin`; NaN when there are none.
fn seasonal_median(window: &[f64], origin: usize, target: usize, period: usize) -> f64 {
    let cycles_back = (target + 1 - origin).div_ceil(period);
    // On the stack: validation asks for one median per origin, step and period.
    let mut values = [0.0; MEDIAN_CYCLES];
    let mut count = 0;
    for k in cycles_back..cycles_back + MEDIAN_CYCLES {
        match target
            .checked_sub(k * period)
            .map(|position| window[position])
        {
            Some(value) if value.is_finite() => {
                values[count] = value;
                count += 1;
            }
            _ => {}
        }
    }
    if count == 0 {
        f64::NAN
    } else {
        super::robust::median(&mut values[..count])
    }
}

/// One forecasting method of the combination, positioned like the forecaster after the newest
/// point it has seen. The seasonal members keep one value per phase of their period as `f32`:
/// a forecast needs seven significant digits, not sixteen, and these slots are what the
/// combination adds to a series' memory (a daily period at one minute: 5.6 KiB each).
#[derive(Clone, Debug, PartialEq)]
pub enum Member {
    /// The forecaster's seasonal profiles plus exponential smoothing of what they leave.
    Smoothing(FittedEts),
    /// Seasonal naive: the newest value seen at the same phase of `period` (a missing point
    /// keeps the older value of its phase).
    SeasonalNaive { period: usize, slots: Vec<f32> },
    /// Seasonal median: per phase, the median of the newest 5 cycles' values
    /// as of the refit (robust to a disturbed cycle; zero for a series that is mostly zero,
    /// where any mean-like forecast misses every ordinary point).
    SeasonalMedian { period: usize, profile: Vec<f32> },
}

impl Member {
    fn seasonal_naive(period: usize) -> Member {
        Member::SeasonalNaive {
            period,
            slots: vec![f32::NAN; period],
        }
    }

    /// The forecast `steps` points after the newest seen, the next point being at grid
    /// `position`; NaN when the member has nothing to say there (a phase never observed).
    fn forecast(&self, steps: u32, position: u64, seasonal: Option<&SeasonalProfiles>) -> f64 {
        let target = position + u64::from(steps.max(1)) - 1;
        match self {
            Member::Smoothing(model) => {
                model.forecast(steps).0 + seasonal.map_or(0.0, |s| s.value_at(target))
            }
            Member::SeasonalNaive { period, slots } => {
                f64::from(slots[(target % *period as u64) as usize])
            }
            Member::SeasonalMedian { period, profile } => {
                f64::from(profile[(target % *period as u64) as usize])
            }
        }
    }

    /// Takes in the point at grid `position` (NaN for a gap).
    fn observe(&mut self, value: f64, position: u64, seasonal: Option<&SeasonalProfiles>) {
        match self {
            Member::Smoothing(model) => {
                model.update(value - seasonal.map_or(0.0, |s| s.value_at(position)));
            }
            Member::SeasonalNaive { period, slots } => {
                if value.is_finite() {
                    slots[(position % *period as u64) as usize] = value as f32;
                }
            }
            // The profile is taken anew at each refit.
            Member::SeasonalMedian { .. } => {}
        }
    }

    /// The kind of forecast the forecaster makes when its model choice could not be validated
    /// (too short a window, or no horizon): its own model alone.
    pub const UNVALIDATED: &'static str = "unvalidated";

    /// The method's kind, a bounded label value: `seasonal_naive`, `seasonal_median`, or
    /// `smoothing_` with `no_trend`, `damped_trend` or `linear_trend`.
    pub fn kind(&self) -> &'static str {
        match self {
            Member::Smoothing(model) => match model.trend() {
                Trend::None => "smoothing_no_trend",
                Trend::Damped => "smoothing_damped_trend",
                Trend::Additive => "smoothing_linear_trend",
            },
            Member::SeasonalNaive { .. } => "seasonal_naive",
            Member::SeasonalMedian { .. } => "seasonal_median",
        }
    }

    /// The method's name, with the season it repeats or is added to.
    pub fn name(&self, periods: &[usize]) -> String {
        match self {
            Member::Smoothing(model) if periods.is_empty() => model.trend().name().to_owned(),
            Member::Smoothing(model) => format!("MSTL{periods:?} + {}", model.trend().name()),
            Member::SeasonalNaive { period, .. } => format!("seasonal naive[{period}]"),
            Member::SeasonalMedian { period, .. } => format!("seasonal median[{period}]"),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Member::Smoothing(_) => 0,
            Member::SeasonalNaive { slots, .. } => slots.capacity() * std::mem::size_of::<f32>(),
            Member::SeasonalMedian { profile, .. } => {
                profile.capacity() * std::mem::size_of::<f32>()
            }
        }
    }
}

/// The combination at a range of horizon steps.
#[derive(Clone, Debug, PartialEq)]
struct Bucket {
    /// The longest step the bucket covers (it starts after the previous bucket's).
    last_step: u32,
    /// One weight per member, summing to 1.
    weights: Vec<f64>,
    /// Mean absolute error of the combination in this bucket on the held-out part (never below
    /// a shorter bucket's: uncertainty does not shrink with distance).
    scale: f64,
}

/// The validated combination of a fitted forecaster.
#[derive(Clone, Debug, PartialEq)]
pub struct Ensemble {
    members: Vec<Member>,
    buckets: Vec<Bucket>,
    /// The conformal quantile of |error| / bucket scale at the forecaster's coverage.
    quantile: f64,
    /// The parameters of every smoothing form validated, to warm-start the next refit.
    warm: Vec<(Trend, EtsParams)>,
    validation: Validation,
}

/// What the held-out part said, for `describe` and the model metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct Validation {
    /// Held-out mean absolute error of the combination over every step validated, divided by
    /// the best seasonal naive candidate's (below 1 beats repeating the last season); `None`
    /// without a seasonal naive candidate.
    pub error_vs_seasonal_naive: Option<f64>,
    /// The longest step validated.
    pub horizon: u32,
}

/// What a refit hands the validation: the window, the seasons of the forecaster and the
/// settings.
pub(super) struct Plan<'a> {
    pub window: &'a [f64],
    /// The seasonal periods the forecaster models (decomposed again on the training part).
    pub periods: &'a [usize],
    /// Periods seasonal naive repeats (each one the window holds twice).
    pub naive_periods: &'a [usize],
    /// The longest step forecasts are read at.
    pub horizon: usize,
    /// Finite points a fit needs.
    pub min_points: usize,
    pub coverage: Coverage,
    pub previous: Option<&'a Ensemble>,
}

/// Forecasts of every member from every origin, in one flat table.
struct Table {
    horizon: usize,
    members: usize,
    /// `(origin position, steps held out after it)`.
    origins: Vec<(usize, usize)>,
    /// `[origin][step - 1][member]`.
    forecasts: Vec<f64>,
}

impl Table {
    fn at(&self, origin: usize, step: usize, member: usize) -> f64 {
        self.forecasts[(origin * self.horizon + step - 1) * self.members + member]
    }
}

/// Bucket `k` covers steps `2^k ..= 2^(k+1) - 1`, the last one ending at `horizon`.
fn bucket_ends(horizon: usize) -> Vec<u32> {
    let mut ends = Vec::new();
    let mut end = 1usize;
    while end < horizon {
        ends.push(end as u32);
        end = end * 2 + 1;
    }
    ends.push(horizon as u32);
    ends
}

fn bucket_of(ends: &[u32], step: u32) -> usize {
    ends.iter()
        .position(|&end| step <= end)
        .unwrap_or(ends.len() - 1)
}

/// Points the part before the held-out one needs: two cycles of every modelled season (as the
/// full fit does), one of every season seasonal naive repeats, and what a fit needs.
pub fn training_points_needed(
    periods: &[usize],
    naive_periods: &[usize],
    min_points: usize,
) -> usize {
    let longest_season = periods.iter().copied().max().unwrap_or(0);
    let longest_naive = naive_periods.iter().copied().max().unwrap_or(0);
    (2 * longest_season)
        .max(longest_naive)
        .max(min_points)
        .max(30)
}

/// The longest step a window of `window_points` validates the model choice at, for forecasts
/// read up to `horizon` steps: two of them must be held out after the training part. 0 when
/// the window cannot spare even two points (the model fitted in-sample then forecasts alone).
pub fn validated_horizon(
    window_points: usize,
    periods: &[usize],
    naive_periods: &[usize],
    min_points: usize,
    horizon: usize,
) -> usize {
    let spare =
        window_points.saturating_sub(training_points_needed(periods, naive_periods, min_points));
    horizon.min(spare / 2)
}

/// Validates the candidates on the newest part of the window and returns the combination, its
/// members positioned after the training part (the caller moves them to the window's end).
/// `None` when the window cannot spare a held-out part (then the forecaster's own model is
/// used alone) or no candidate could be fitted.
pub(super) fn validate(plan: &Plan<'_>) -> Option<Ensemble> {
    let n = plan.window.len();
    let train_min = training_points_needed(plan.periods, plan.naive_periods, plan.min_points);
    let spare = n.saturating_sub(train_min);
    let horizon = validated_horizon(
        n,
        plan.periods,
        plan.naive_periods,
        plan.min_points,
        plan.horizon,
    );
    if horizon == 0 {
        return None;
    }
    // At least two horizons held out, more when the window can spare them (up to a quarter of
    // it): the intervals are only as good as the variety of errors they are calibrated on.
    let held_out = (2 * horizon).max((n / HELD_OUT_SHARE).min(spare));
    let train_len = n - held_out;
    let training = &plan.window[..train_len];
    let decomposition = if plan.periods.is_empty() {
        None
    } else {
        Some(decompose::decompose(training, plan.periods)?)
    };
    let (profiles, deseasonalised) = match &decomposition {
        Some(d) => (Some(&d.profiles), d.deseasonalised.as_slice()),
        None => (None, training),
    };
    let warm_of = |trend: Trend| {
        plan.previous
            .and_then(|e| e.warm.iter().find(|(t, _)| *t == trend))
            .map(|(_, params)| *params)
    };
    let mut members: Vec<Member> = TRENDS
        .iter()
        .filter_map(|&trend| ets::fit_form(deseasonalised, trend, warm_of(trend)))
        .map(|fit| Member::Smoothing(fit.model))
        .collect();
    if members.is_empty() {
        return None;
    }
    let smoothing = members.len();
    for &period in plan.naive_periods {
        let mut naive = Member::seasonal_naive(period);
        for (position, &value) in training.iter().enumerate() {
            naive.observe(value, position as u64, None);
        }
        members.push(naive);
    }
    let naive_end = members.len();
    for &period in plan.naive_periods {
        members.push(Member::SeasonalMedian {
            period,
            profile: Vec::new(),
        });
    }
    let table = roll(
        plan.window,
        train_len,
        horizon,
        &mut members,
        smoothing,
        profiles,
    );
    let ends = bucket_ends(horizon);
    let mut buckets: Vec<Bucket> = ends
        .iter()
        .map(|&last_step| Bucket {
            last_step,
            weights: vec![0.0; members.len()],
            scale: 0.0,
        })
        .collect();
    // Per bucket: each member's absolute and symmetric relative errors where every member had
    // a forecast.
    let mut absolute = vec![vec![0.0; members.len()]; ends.len()];
    let mut relative = vec![vec![0.0; members.len()]; ends.len()];
    let mut counts = vec![0usize; ends.len()];
    // The weights come from the newest two horizons of origins: the members' recent skill.
    let recent = n - 2 * horizon;
    for_each_point(&table, plan.window, |origin, step, actual| {
        let b = bucket_of(&ends, step as u32);
        let all = (0..members.len()).all(|m| table.at(origin, step, m).is_finite());
        if all && table.origins[origin].0 >= recent {
            for m in 0..members.len() {
                let forecast = table.at(origin, step, m);
                absolute[b][m] += (actual - forecast).abs();
                relative[b][m] += symmetric_relative_error(actual, forecast);
            }
            counts[b] += 1;
        }
    });
    for (b, bucket) in buckets.iter_mut().enumerate() {
        bucket.weights = if counts[b] == 0 {
            // Nothing to compare on: the simplest smoothing form alone.
            (0..members.len()).map(|m| f64::from(m == 0)).collect()
        } else {
            weights_from_errors(&owa_like(&absolute[b], &relative[b]))
        };
    }
    // The combination's own signed errors, per bucket.
    let mut bucket_errors: Vec<Vec<f64>> = vec![Vec::new(); ends.len()];
    let mut naive_sums = vec![0.0; members.len()];
    let mut combined_total = 0.0;
    for_each_point(&table, plan.window, |origin, step, actual| {
        let b = bucket_of(&ends, step as u32);
        let forecasts = (0..members.len()).map(|m| table.at(origin, step, m));
        let Some(expected) = combine(&buckets[b].weights, forecasts) else {
            return;
        };
        let error = actual - expected;
        bucket_errors[b].push(error);
        if (0..members.len()).all(|m| table.at(origin, step, m).is_finite()) {
            combined_total += error.abs();
            for (m, sum) in naive_sums
                .iter_mut()
                .enumerate()
                .take(naive_end)
                .skip(smoothing)
            {
                *sum += (actual - table.at(origin, step, m)).abs();
            }
        }
    });
    if bucket_errors.iter().all(Vec::is_empty) {
        return None;
    }
    // Per bucket the scale is the mean absolute error; the scores are the errors in scales.
    let floor = super::robust::scale_floor(plan.window);
    let mut running = floor;
    let mut scores = Vec::new();
    for (bucket, errors) in buckets.iter_mut().zip(&bucket_errors) {
        if !errors.is_empty() {
            running =
                running.max(errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len() as f64);
        }
        bucket.scale = running;
        scores.extend(errors.iter().map(|e| e.abs() / bucket.scale));
    }
    let quantile = conformal_quantile(&mut scores, plan.coverage);
    let best_naive = naive_sums[smoothing..naive_end]
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let error_vs_seasonal_naive =
        (best_naive.is_finite() && best_naive > 0.0).then(|| combined_total / best_naive);
    let warm = members
        .iter()
        .filter_map(|m| match m {
            Member::Smoothing(model) => Some((model.trend(), model.params())),
            Member::SeasonalNaive { .. } | Member::SeasonalMedian { .. } => None,
        })
        .collect();
    Some(Ensemble {
        members,
        buckets,
        quantile,
        warm,
        validation: Validation {
            error_vs_seasonal_naive,
            horizon: horizon as u32,
        },
    })
}

/// Runs every member over the held-out part (positions `train_len..`), recording its
/// forecasts from an origin every `horizon / ORIGINS_PER_HORIZON` points.
fn roll(
    window: &[f64],
    train_len: usize,
    horizon: usize,
    members: &mut [Member],
    smoothing: usize,
    profiles: Option<&SeasonalProfiles>,
) -> Table {
    let stride = (horizon / ORIGINS_PER_HORIZON).max(1);
    let mut table = Table {
        horizon,
        members: members.len(),
        origins: Vec::new(),
        forecasts: Vec::new(),
    };
    // Seasonal naive members ignore the profiles; smoothing members forecast on them.
    let seasonal_of = |m: usize| if m < smoothing { profiles } else { None };
    for (position, &value) in window.iter().enumerate().skip(train_len) {
        if (position - train_len).is_multiple_of(stride) {
            let ahead = horizon.min(window.len() - position);
            table.origins.push((position, ahead));
            for step in 1..=horizon {
                for (m, member) in members.iter().enumerate() {
                    table.forecasts.push(match member {
                        _ if step > ahead => f64::NAN,
                        // Its profile is taken anew from the data before each origin, as a refit
                        // there would take it.
                        Member::SeasonalMedian { period, .. } => {
                            seasonal_median(window, position, position + step - 1, *period)
                        }
                        _ => member.forecast(step as u32, position as u64, seasonal_of(m)),
                    });
                }
            }
        }
        for (m, member) in members.iter_mut().enumerate() {
            member.observe(value, position as u64, seasonal_of(m));
        }
    }
    table
}

/// Calls `visit(origin index, step, actual)` for every held-out point with a finite value.
fn for_each_point(table: &Table, window: &[f64], mut visit: impl FnMut(usize, usize, f64)) {
    for (index, &(position, ahead)) in table.origins.iter().enumerate() {
        for step in 1..=ahead {
            let actual = window[position + step - 1];
            if actual.is_finite() {
                visit(index, step, actual);
            }
        }
    }
}

/// 2|y - f| / (|y| + |f|), 0 when both are 0: the sMAPE term of one point.
fn symmetric_relative_error(actual: f64, forecast: f64) -> f64 {
    let denominator = actual.abs() + forecast.abs();
    if denominator > 0.0 {
        2.0 * (actual - forecast).abs() / denominator
    } else {
        0.0
    }
}

/// Each member's absolute error relative to the best member's plus its symmetric relative
/// error relative to the best's: the two halves of the M4 competition's OWA, taken against the
/// best candidate instead of a fixed benchmark, so the weights judge a member the way its
/// forecasts are judged (the absolute error alone cannot tell a forecast of 0.1 from one of 0
/// on a series that is mostly exactly 0; the relative error can).
fn owa_like(absolute: &[f64], relative: &[f64]) -> Vec<f64> {
    let best = |errors: &[f64]| errors.iter().copied().fold(f64::INFINITY, f64::min);
    let (best_absolute, best_relative) = (best(absolute), best(relative));
    absolute
        .iter()
        .zip(relative)
        .map(|(a, r)| {
            // Against a perfect best: 0 for the perfect members, 1 for the others.
            let a = if best_absolute > 0.0 {
                a / best_absolute
            } else {
                f64::from(*a > 0.0)
            };
            let r = if best_relative > 0.0 {
                r / best_relative
            } else {
                f64::from(*r > 0.0)
            };
            (a + r) / 2.0
        })
        .collect()
}

/// Inverse squared error weights (Bates & Granger 1969, with the covariances left out, as
/// Stock & Watson found best in practice): a member twice as wrong weighs a quarter. A member
/// with no error takes all the weight.
fn weights_from_errors(errors: &[f64]) -> Vec<f64> {
    let best = errors.iter().copied().fold(f64::INFINITY, f64::min);
    if best <= 0.0 {
        let winner = errors.iter().position(|e| *e <= 0.0).unwrap_or(0);
        return (0..errors.len()).map(|m| f64::from(m == winner)).collect();
    }
    let inverse: Vec<f64> = errors
        .iter()
        .map(|e| {
            if e.is_finite() {
                (best / e).powi(2)
            } else {
                0.0
            }
        })
        .collect();
    let total: f64 = inverse.iter().sum();
    inverse.iter().map(|w| w / total).collect()
}

/// The weighted mean of the finite forecasts, the weights of the others spread over them;
/// `None` when no weighted member has a forecast.
fn combine(weights: &[f64], forecasts: impl Iterator<Item = f64>) -> Option<f64> {
    let mut pairs: Vec<(f64, f64)> = weights
        .iter()
        .zip(forecasts)
        .filter(|(w, f)| **w > 0.0 && f.is_finite())
        .map(|(w, f)| (f, *w))
        .collect();
    let total: f64 = pairs.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut cumulative = 0.0;
    for (f, w) in &pairs {
        cumulative += w;
        if cumulative >= total / 2.0 {
            return Some(*f);
        }
    }
    pairs.last().map(|(f, _)| *f)
}

/// The split-conformal quantile of the scores at `coverage`: the `ceil((n + 1) coverage)`-th
/// smallest, the finite-sample rank that makes the coverage hold for exchangeable errors (the
/// largest score when there are too few for that rank).
fn conformal_quantile(scores: &mut [f64], coverage: Coverage) -> f64 {
    scores.sort_by(f64::total_cmp);
    let n = scores.len();
    let rank = ((n + 1) as f64 * coverage.get()).ceil() as usize;
    scores[rank.clamp(1, n) - 1]
}

impl Ensemble {
    /// Replaces each member with its state after the whole window: smoothing members are run
    /// with their validated parameters over `deseasonalised` (the window without the
    /// forecaster's profiles), seasonal naive members over the window itself. Members without
    /// weight in any bucket are dropped.
    pub(super) fn position_at_end(
        mut self,
        window: &[f64],
        deseasonalised: &[f64],
    ) -> Option<Ensemble> {
        let keep: Vec<bool> = (0..self.members.len())
            .map(|m| self.buckets.iter().any(|b| b.weights[m] > 0.0))
            .collect();
        let mut members = Vec::with_capacity(self.members.len());
        for (member, kept) in std::mem::take(&mut self.members).into_iter().zip(&keep) {
            if !kept {
                continue;
            }
            members.push(match member {
                Member::Smoothing(model) => Member::Smoothing(ets::with_params(
                    deseasonalised,
                    model.trend(),
                    model.params(),
                )?),
                Member::SeasonalNaive { period, .. } => {
                    let mut naive = Member::seasonal_naive(period);
                    for (position, &value) in window.iter().enumerate() {
                        naive.observe(value, position as u64, None);
                    }
                    naive
                }
                Member::SeasonalMedian { period, .. } => {
                    let n = window.len();
                    let mut profile = vec![f32::NAN; period];
                    for target in n..n + period {
                        profile[target % period] =
                            seasonal_median(window, n, target, period) as f32;
                    }
                    Member::SeasonalMedian { period, profile }
                }
            });
        }
        for bucket in &mut self.buckets {
            bucket.weights = bucket
                .weights
                .iter()
                .zip(&keep)
                .filter(|(_, kept)| **kept)
                .map(|(w, _)| *w)
                .collect();
        }
        self.members = members;
        Some(self)
    }

    /// The combined forecast `steps` after the newest point (the next point at `position`) and
    /// how far its interval reaches below and above it before any growth beyond the validated
    /// horizon; `None` when no weighted member has a forecast there.
    pub(super) fn forecast(
        &self,
        steps: u32,
        position: u64,
        seasonal: Option<&SeasonalProfiles>,
    ) -> Option<(f64, f64, f64)> {
        // The first bucket reaching `steps`, else the last (no allocation: this runs for every
        // exported horizon of every series at every cycle).
        let bucket = self
            .buckets
            .iter()
            .find(|b| steps <= b.last_step)
            .or(self.buckets.last())?;
        let forecasts = self.members.iter().map(|m| {
            let own = match m {
                Member::Smoothing(_) => seasonal,
                Member::SeasonalNaive { .. } | Member::SeasonalMedian { .. } => None,
            };
            m.forecast(steps, position, own)
        });
        let expected = combine(&bucket.weights, forecasts)?;
        let half = self.quantile * bucket.scale;
        Some((expected, half, half))
    }

    /// Takes in the point at grid `position`.
    pub(super) fn observe(
        &mut self,
        value: f64,
        position: u64,
        seasonal: Option<&SeasonalProfiles>,
    ) {
        for member in &mut self.members {
            let own = match member {
                Member::Smoothing(_) => seasonal,
                Member::SeasonalNaive { .. } | Member::SeasonalMedian { .. } => None,
            };
            member.observe(value, position, own);
        }
    }

    /// The longest step validated; forecasts beyond it use its combination and a widening
    /// interval.
    pub fn horizon(&self) -> u32 {
        self.validation.horizon
    }

    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// The kind of the heaviest member at the longest validated horizon (see
    /// [`Member::kind`]).
    pub fn leading_kind(&self) -> &'static str {
        self.buckets
            .last()
            .and_then(|last| {
                self.members
                    .iter()
                    .zip(&last.weights)
                    .max_by(|a, b| a.1.total_cmp(b.1))
            })
            .map_or(Member::UNVALIDATED, |(member, _)| member.kind())
    }

    /// Members and their weights at the longest validated horizon, heaviest first.
    pub fn weights_at_horizon(&self, periods: &[usize]) -> Vec<(String, f64)> {
        let Some(last) = self.buckets.last() else {
            return Vec::new();
        };
        let mut named: Vec<(String, f64)> = self
            .members
            .iter()
            .zip(&last.weights)
            .filter(|(_, w)| **w > 0.0)
            .map(|(m, w)| (m.name(periods), *w))
            .collect();
        named.sort_by(|a, b| b.1.total_cmp(&a.1));
        named
    }

    pub fn heap_bytes(&self) -> usize {
        self.members.capacity() * std::mem::size_of::<Member>()
            + self.members.iter().map(Member::heap_bytes).sum::<usize>()
            + self
                .buckets
                .iter()
                .map(|b| std::mem::size_of::<Bucket>() + b.weights.capacity() * 8)
                .sum::<usize>()
            + self.warm.capacity() * std::mem::size_of::<(Trend, EtsParams)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_validated_horizon_is_what_the_window_spares_after_training() {
        // Two days at one minute with a daily season: two cycles and nothing to spare.
        assert_eq!(validated_horizon(2881, &[1440], &[1440], 30, 60), 0);
        // Seven days: the hour is validated in full.
        assert_eq!(validated_horizon(10_081, &[1440], &[1440], 30, 60), 60);
        // A week at 5 minutes, asked for 3 days: as much as the window spares.
        assert_eq!(training_points_needed(&[288], &[288, 2016], 30), 2016);
        assert_eq!(
            validated_horizon(2016 + 400, &[288], &[288, 2016], 30, 864),
            200
        );
        // No season: the fit's own minimum.
        assert_eq!(validated_horizon(100, &[], &[], 30, 10), 10);
    }

    #[test]
    fn buckets_double_and_end_at_the_horizon() {
        assert_eq!(bucket_ends(1), vec![1]);
        assert_eq!(bucket_ends(12), vec![1, 3, 7, 12]);
        assert_eq!(bucket_ends(15), vec![1, 3, 7, 15]);
        let ends = bucket_ends(48);
        assert_eq!(ends, vec![1, 3, 7, 15, 31, 48]);
        assert_eq!(bucket_of(&ends, 1), 0);
        assert_eq!(bucket_of(&ends, 2), 1);
        assert_eq!(bucket_of(&ends, 48), 5);
        // Beyond the horizon: the last bucket.
        assert_eq!(bucket_of(&ends, 500), 5);
    }

    #[test]
    fn the_conformal_quantile_takes_the_finite_sample_rank() {
        let coverage = Coverage::new(0.9).expect("valid");
        // 19 scores: rank ceil(20 * 0.9) = 18.
        let mut scores: Vec<f64> = (1..=19).rev().map(f64::from).collect();
        assert_eq!(conformal_quantile(&mut scores, coverage), 18.0);
        // Too few scores for the rank: the largest.
        let mut few = vec![3.0, 1.0];
        assert_eq!(conformal_quantile(&mut few, coverage), 3.0);
    }

    #[test]
    fn weights_fall_with_the_square_of_the_error() {
        let weights = weights_from_errors(&[1.0, 2.0]);
        assert!((weights[0] - 0.8).abs() < 1e-12 && (weights[1] - 0.2).abs() < 1e-12);
        assert_eq!(weights_from_errors(&[0.5, 0.0, 0.0]), vec![0.0, 1.0, 0.0]);
        assert_eq!(weights_from_errors(&[1.0, f64::INFINITY]), vec![1.0, 0.0]);
    }

    #[test]
    fn the_combination_is_the_weighted_median_of_the_forecasts_it_has() {
        let forecast = |weights: &[f64], values: &[f64]| combine(weights, values.iter().copied());
        assert_eq!(forecast(&[0.3, 0.3, 0.4], &[1.0, 5.0, 0.0]), Some(1.0));
        assert_eq!(forecast(&[0.2, 0.2, 0.6], &[1.0, 5.0, 0.0]), Some(0.0));
        // A member without a forecast gives its weight to the others.
        assert_eq!(forecast(&[0.6, 0.4], &[f64::NAN, 7.0]), Some(7.0));
        assert_eq!(forecast(&[1.0, 0.0], &[f64::NAN, 7.0]), None);
    }

    #[test]
    fn owa_like_errors_count_misses_of_exact_zeros() {
        // Same absolute error, but the second member never hits the zeros exactly.
        let errors = owa_like(&[10.0, 10.0], &[0.5, 1.0]);
        assert_eq!(errors, vec![1.0, 1.5]);
        // A perfect member takes all the weight.
        assert_eq!(owa_like(&[0.0, 1.0], &[0.0, 1.0]), vec![0.0, 1.0]);
        assert_eq!(
            weights_from_errors(&owa_like(&[0.0, 1.0], &[0.0, 1.0])),
            vec![1.0, 0.0]
        );
        assert_eq!(symmetric_relative_error(0.0, 0.0), 0.0);
        assert_eq!(symmetric_relative_error(0.0, 0.1), 2.0);
    }

    #[test]
    fn the_seasonal_median_outvotes_one_disturbed_cycle() {
        let period = 4;
        let mut window: Vec<f64> = (0..5 * period).map(|i| (i % period) as f64).collect();
        window[4 * period + 1] = 100.0;
        let n = window.len();
        // Phase 1 of the next cycle: 1 in four cycles, 100 in the newest.
        assert_eq!(seasonal_median(&window, n, n + 1, period), 1.0);
        // Only the cycles before the origin count: from position 9 the phase-1 values before
        // it are at 5 and 1.
        assert_eq!(seasonal_median(&window, 9, 13, period), 1.0);
        assert!(seasonal_median(&window, 2, 2, period).is_nan());
    }
}
