//! Model choice by out-of-sample error, and forecast intervals from the same errors.
//!
//! At a refit the newest part of the window is held out. The candidates (the seasonal profiles
//! plus exponential smoothing without trend, with a damped trend and with a linear trend, and
//! seasonal naive and seasonal median for each season the window holds) are fitted on the part
//! before it and forecast the held-out part from a rolling origin, every `stride` points, up to
//! the longest horizon the forecasts are read at. Their errors, grouped into horizon buckets
//! (step 1, 2–3, 4–7, ...), weigh them per bucket, each family of candidates (the smoothing
//! forms, seasonal naive, seasonal median) competing as one; the combined forecast's own errors
//! on the same origins give the interval: a per-bucket scale times the split-conformal
//! quantile of the errors divided by it (Lei et al. 2018, "Distribution-free predictive
//! inference for regression", normalised scores), so the interval is as wide as the held-out
//! errors were at that distance and covers what it claims on them.
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

mod members;
mod scoring;

pub use members::Member;
use members::{seasonal_median, Family};
use scoring::{combine, conformal_quantile, owa_like, symmetric_relative_error, weights_by_family};

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

/// The combination at a range of horizon steps.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
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
    let families: Vec<Family> = members.iter().map(Member::family).collect();
    for (b, bucket) in buckets.iter_mut().enumerate() {
        bucket.weights = if counts[b] == 0 {
            // Nothing to compare on: the simplest smoothing form alone.
            (0..members.len()).map(|m| f64::from(m == 0)).collect()
        } else {
            weights_by_family(&owa_like(&absolute[b], &relative[b]), &families)
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

    /// The kind of the heaviest member of the heaviest family at the longest validated horizon
    /// (see [`Member::kind`]): a family's members share the weight it earned, so the family
    /// with the most weight is the method the forecast follows, even when a single member of
    /// another family weighs more than each of its members.
    pub fn leading_kind(&self) -> &'static str {
        let Some(last) = self.buckets.last() else {
            return Member::UNVALIDATED;
        };
        let weighted = || self.members.iter().zip(&last.weights);
        let family_weight = |family: Family| -> f64 {
            weighted()
                .filter(|(m, _)| m.family() == family)
                .map(|(_, w)| *w)
                .sum()
        };
        let Some(leading) = self
            .members
            .iter()
            .map(Member::family)
            .max_by(|a, b| family_weight(*a).total_cmp(&family_weight(*b)))
        else {
            return Member::UNVALIDATED;
        };
        weighted()
            .filter(|(m, _)| m.family() == leading)
            .max_by(|a, b| a.1.total_cmp(b.1))
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
mod tests;
