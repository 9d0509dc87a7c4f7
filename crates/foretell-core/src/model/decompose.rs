//! Seasonal decomposition with MSTL (the `stlrs` implementation that augurs-mstl uses), and
//! the seasonal profiles that carry the decomposition forward in time.
//!
//! MSTL splits a window into trend, one seasonal component per period, and remainder. Each
//! period becomes a profile carried forward: at each phase, the newest cycle of its seasonal
//! component (as augurs-mstl repeats it), except at the phases where that misses the data's
//! median over the newest cycles (seasonal plus remainder) by far more than the data vary from
//! cycle to cycle; there the data's median is carried forward instead. The window itself is
//! deseasonalised with the newest cycle throughout, and left to the ETS model.
//!
//! Why the exception: with the few cycles a window holds, STL's cycle-subseries smoothing
//! spreads a one-off incident into the seasonal component of every cycle (its robustness weights
//! never see it, the remainder being already small), so without it the incident came back as a
//! predicted spike at the same time of day after every refit: a false anomaly one period after
//! each real one. The median over cycles keeps what recurs and drops what happened once; of two
//! cycles (the mean of the middle two would carry half of a one-off) see `recurring`.

use super::profile::Profile;
use augurs_mstl::stlrs::{MstlParams, MstlResult, StlParams};

/// Seasonal strength (Wang, Smith & Hyndman 2006: `1 - var(R) / var(S + R)`) a detected
/// period needs before it is kept. 0.4 keeps the daily cycles of real traffic and rejects the
/// faint structure MSTL finds in noise.
const MIN_SEASONAL_STRENGTH: f64 = 0.4;
/// Newest cycles a profile is the median of: enough to outvote disturbed cycles, few enough to
/// follow a season that changes over the weeks.
const PROFILE_CYCLES: usize = 5;
/// Robust standard deviations of the data's cycle-to-cycle spread by which the smooth component
/// must miss the data's median at a phase before the profile follows the data there: far more
/// than noise, so ordinary phases keep the smooth component.
const DISAGREEMENT: f64 = 5.0;

/// Repeating seasonal profiles, indexed by grid position.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeasonalProfiles {
    /// One profile per period (its length): phase `k` is the seasonal value at positions `p`
    /// with `p mod period == k`, in 16 bits a phase ([`Profile`]: a daily profile at one-minute
    /// steps is 2.8 KB, not 11.3 KB as `f64`).
    components: Vec<Profile>,
}

impl SeasonalProfiles {
    /// Bytes held by the profiles, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.components.capacity() * std::mem::size_of::<Profile>()
            + self
                .components
                .iter()
                .map(Profile::heap_bytes)
                .sum::<usize>()
    }

    /// Sum of the seasonal components at grid `position` (counted from the fitted window's
    /// first point).
    pub fn value_at(&self, position: u64) -> f64 {
        self.components
            .iter()
            .map(|profile| profile.value((position % profile.len() as u64) as usize))
            .sum()
    }

    pub fn periods(&self) -> Vec<usize> {
        self.components.iter().map(Profile::len).collect()
    }
}

/// The result of a decomposition: the profiles and `y` with them removed (NaN kept where `y`
/// had gaps).
#[derive(Clone, Debug)]
pub struct Decomposition {
    pub profiles: SeasonalProfiles,
    pub deseasonalised: Vec<f64>,
}

/// Decomposes `y` (NaN for gaps) with the given periods (in points). Periods needing more than
/// half of the window (MSTL needs two full cycles) are left out; `None` when none remains, no
/// finite point exists, or MSTL fails.
pub fn decompose(y: &[f64], periods: &[usize]) -> Option<Decomposition> {
    let (usable, result) = robust_mstl(y, periods)?;
    Some(decomposition(y, &usable, &result))
}

/// Decomposes `y` with those `candidates` whose seasonal strength reaches the threshold;
/// `None` when none does. One MSTL fit serves both the detection and, when every usable
/// candidate is kept (the usual case at a refit), the decomposition itself.
pub fn decompose_detected(y: &[f64], candidates: &[usize]) -> Option<Decomposition> {
    let (usable, result) = robust_mstl(y, candidates)?;
    let kept: Vec<usize> = usable
        .iter()
        .zip(result.seasonal_strength())
        .filter(|(_, strength)| *strength >= MIN_SEASONAL_STRENGTH)
        .map(|(period, _)| *period)
        .collect();
    if kept.is_empty() {
        None
    } else if kept == usable {
        Some(decomposition(y, &usable, &result))
    } else {
        decompose(y, &kept)
    }
}

/// A cheap decomposition for a series' first fit (the sidecar's cold start), a small fraction
/// of MSTL's cost: per period, shortest first, the trend is a moving average over one period
/// (the classical decomposition's), and the profile is the median over the newest cycles (at
/// most 5) of what is left at each phase, centred on zero. The median keeps
/// what recurs, as the full decomposition's profiles do. With `detect`, a period is kept only
/// when its seasonal strength reaches the threshold of [`decompose_detected`]. `None` when no
/// period fits twice or is kept, or nothing is finite. The series' first scheduled refit
/// replaces it with the full decomposition.
pub fn decompose_quick(y: &[f64], periods: &[usize], detect: bool) -> Option<Decomposition> {
    let n = y.len();
    let mut usable: Vec<usize> = periods
        .iter()
        .copied()
        .filter(|&p| p >= 2 && p <= n / 2)
        .collect();
    usable.sort_unstable();
    usable.dedup();
    let mut remaining = interpolate_gaps(y)?;
    let mut components = Vec::with_capacity(usable.len());
    for period in usable {
        let trend = moving_average(&remaining, period);
        let detrended: Vec<f64> = remaining.iter().zip(&trend).map(|(v, t)| v - t).collect();
        let cycles = (n / period).clamp(1, PROFILE_CYCLES);
        let first = n - cycles * period;
        // The cycle-to-cycle noise: mean absolute deviation from each slot's median, pooled.
        let (mut deviation_sum, mut deviations) = (0.0, 0usize);
        // At most PROFILE_CYCLES values a slot, sorted in a fixed array rather than a Vec each;
        // the noise over all slots decides which value each carries, so they are kept.
        let slots: Vec<([f64; PROFILE_CYCLES], usize)> = (0..period)
            .map(|slot| {
                let start = first + (slot + period - first % period) % period;
                let mut values = [0.0; PROFILE_CYCLES];
                let mut count = 0;
                for (value, &v) in values
                    .iter_mut()
                    .zip(detrended[start..].iter().step_by(period))
                {
                    *value = v;
                    count += 1;
                }
                let sorted = &mut values[..count];
                sorted.sort_unstable_by(f64::total_cmp);
                if let Some(median) = median_of_sorted(sorted) {
                    if count > 1 {
                        deviation_sum += sorted.iter().map(|v| (v - median).abs()).sum::<f64>();
                        deviations += count;
                    }
                }
                (values, count)
            })
            .collect();
        // (1.25 times the mean absolute deviation is the standard deviation of normal noise.)
        let noise = 1.2533 * deviation_sum / deviations.max(1) as f64;
        let mut profile: Vec<f64> = slots
            .iter()
            .map(|(values, count)| recurring(&values[..*count], noise).unwrap_or(0.0))
            .collect();
        let mean = profile.iter().sum::<f64>() / period as f64;
        for value in &mut profile {
            *value -= mean;
        }
        if detect && seasonal_strength(&detrended, &profile) < MIN_SEASONAL_STRENGTH {
            continue;
        }
        // What is removed is what the forecaster will add back: the stored profile.
        let profile = Profile::new(&profile, noise);
        for (position, value) in remaining.iter_mut().enumerate() {
            *value -= profile.value(position % period);
        }
        components.push(profile);
    }
    if components.is_empty() {
        return None;
    }
    let profiles = SeasonalProfiles { components };
    let deseasonalised = y
        .iter()
        .enumerate()
        .map(|(position, v)| v - profiles.value_at(position as u64))
        .collect();
    Some(Decomposition {
        profiles,
        deseasonalised,
    })
}

/// The mean of the `period` points around each point (the window is kept inside `values`
/// at the ends). Sums are taken relative to the first value, so a large offset (bytes,
/// timestamps) costs no precision.
fn moving_average(values: &[f64], period: usize) -> Vec<f64> {
    let n = values.len();
    let offset = values.first().copied().unwrap_or(0.0);
    let mut prefix = Vec::with_capacity(n + 1);
    let mut sum = 0.0;
    prefix.push(sum);
    for v in values {
        sum += v - offset;
        prefix.push(sum);
    }
    (0..n)
        .map(|i| {
            let start = i.saturating_sub(period / 2).min(n - period);
            offset + (prefix[start + period] - prefix[start]) / period as f64
        })
        .collect()
}

/// `1 - var(remainder) / var(season + remainder)` (Wang, Smith & Hyndman 2006) of a detrended
/// series and the profile of one period.
fn seasonal_strength(detrended: &[f64], profile: &[f64]) -> f64 {
    let period = profile.len();
    let variance = |values: &mut dyn Iterator<Item = f64>| {
        let (mut count, mut sum, mut squares) = (0.0, 0.0, 0.0);
        for v in values {
            count += 1.0;
            sum += v;
            squares += v * v;
        }
        if count < 2.0 {
            0.0
        } else {
            (squares - sum * sum / count) / (count - 1.0)
        }
    };
    let total = variance(&mut detrended.iter().copied());
    let remainder = variance(
        &mut detrended
            .iter()
            .enumerate()
            .map(|(position, v)| v - profile[position % period]),
    );
    if total > 0.0 {
        (1.0 - remainder / total).max(0.0)
    } else {
        0.0
    }
}

/// Robustness passes of each STL fit (the default of 15 is the full convergence of R's `stl`;
/// the weights of outliers settle in the first few passes, at a third of the cost).
const ROBUSTNESS_ITERATIONS: usize = 5;

/// Robust MSTL (the anomalies in the window must not become part of the season) with the
/// periods that fit twice in `y`, gaps interpolated. Returns those periods and the fit.
fn robust_mstl(y: &[f64], periods: &[usize]) -> Option<(Vec<usize>, MstlResult<f32>)> {
    let usable: Vec<usize> = periods
        .iter()
        .copied()
        .filter(|&p| p >= 2 && p <= y.len() / 2)
        .collect();
    if usable.is_empty() {
        return None;
    }
    let filled = interpolate_gaps(y)?;
    let series: Vec<f32> = filled.iter().map(|&v| v as f32).collect();
    let mut stl = StlParams::new();
    stl.robust(true).outer_loops(ROBUSTNESS_ITERATIONS);
    let result = MstlParams::new()
        .stl_params(stl)
        .fit(&series, &usable)
        .ok()?;
    Some((usable, result))
}

/// The profiles of an MSTL fit and `y` with them removed.
///
/// The window is deseasonalised with the newest cycles of the smooth components, as before any
/// correction, so the ETS fit sees what it always saw; only the profiles carried forward take
/// the corrected phases, so what did not recur is not predicted again.
fn decomposition(y: &[f64], periods: &[usize], result: &MstlResult<f32>) -> Decomposition {
    let n = y.len();
    let seasonal = result.seasonal();
    let remainder = result.remainder();
    let mut smooth_components = Vec::with_capacity(periods.len());
    let components: Vec<Profile> = periods
        .iter()
        .enumerate()
        .map(|(index, &period)| {
            // Position p (0 = first point) maps to slot p mod period. Per slot: the newest cycle
            // of the smooth seasonal component, and the median over the newest complete cycles
            // of what the period accounts for in the data (seasonal plus remainder, observed
            // points only). The smooth one is kept unless it misses the data by far more than
            // the data vary from cycle to cycle: then it carries something that did not recur.
            let cycles = (n / period).clamp(1, PROFILE_CYCLES);
            let first = n - cycles * period;
            let mut smooth = vec![0.0; period];
            for position in n - period..n {
                smooth[position % period] = f64::from(seasonal[index][position]);
            }
            let mut observed: Vec<Vec<f64>> = vec![Vec::with_capacity(cycles); period];
            for position in first..n {
                if y[position].is_finite() {
                    let own = f64::from(seasonal[index][position]) + f64::from(remainder[position]);
                    observed[position % period].push(own);
                }
            }
            // The data's own cycle-to-cycle spread at a phase, pooled over the phases.
            let mut deviations = Vec::with_capacity(cycles * period);
            for values in &mut observed {
                values.sort_by(f64::total_cmp);
                if let Some(centre) = median_of_sorted(values) {
                    if values.len() > 1 {
                        deviations.extend(values.iter().map(|v| (v - centre).abs()));
                    }
                }
            }
            let noise = 1.4826 * median(deviations).unwrap_or(f64::INFINITY);
            let observed: Vec<Option<f64>> = observed
                .iter()
                .map(|values| recurring(values, noise))
                .collect();
            let profile: Vec<f64> = smooth
                .iter()
                .zip(&observed)
                .map(|(smooth, observed)| match observed {
                    Some(data) if (data - smooth).abs() > DISAGREEMENT * noise => *data,
                    _ => *smooth,
                })
                .collect();
            smooth_components.push(Profile::exact(&smooth));
            Profile::new(&profile, noise)
        })
        .collect();
    let profiles = SeasonalProfiles { components };
    let in_window = SeasonalProfiles {
        components: smooth_components,
    };
    let deseasonalised = y
        .iter()
        .enumerate()
        .map(|(position, v)| v - in_window.value_at(position as u64))
        .collect();
    Decomposition {
        profiles,
        deseasonalised,
    }
}

/// What a phase's values over the newest cycles (sorted) say recurs there: their median,
/// except where an even count's middle two disagree by more than [`DISAGREEMENT`] times the
/// cycle-to-cycle `noise` (a standard deviation): then the one nearer zero (no seasonal effect)
/// rather than their mean. With two cycles, the common case (two days of history and a daily
/// season, or 15 days and a weekly one), the mean carried half of a one-off burst of either
/// cycle into every later cycle's forecast, as if it recurred at half its size; what one of two
/// cycles shows far beyond the noise and the other does not has not recurred. Cycles that agree
/// within the noise keep their mean. `None` when empty.
fn recurring(sorted: &[f64], noise: f64) -> Option<f64> {
    let count = sorted.len();
    if count == 0 {
        return None;
    }
    let middle = count / 2;
    if count % 2 == 1 {
        return Some(sorted[middle]);
    }
    let (lower, upper) = (sorted[middle - 1], sorted[middle]);
    Some(if upper - lower <= DISAGREEMENT * noise {
        (lower + upper) / 2.0
    } else if lower.abs() <= upper.abs() {
        lower
    } else {
        upper
    })
}

/// The median of sorted values (the mean of the middle two for an even count); `None` when
/// empty.
fn median_of_sorted(sorted: &[f64]) -> Option<f64> {
    let count = sorted.len();
    let middle = count / 2;
    match count {
        0 => None,
        _ if count % 2 == 1 => Some(sorted[middle]),
        _ => Some((sorted[middle - 1] + sorted[middle]) / 2.0),
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    median_of_sorted(&values)
}

/// Fills NaN gaps by linear interpolation between the nearest finite neighbours (the ends take
/// the nearest finite value). `None` when nothing is finite.
pub fn interpolate_gaps(y: &[f64]) -> Option<Vec<f64>> {
    let first = y.iter().position(|v| v.is_finite())?;
    let mut filled = y.to_vec();
    let mut previous = first;
    for slot in filled.iter_mut().take(first) {
        *slot = y[first];
    }
    for i in first + 1..y.len() {
        if !y[i].is_finite() {
            continue;
        }
        let gap = i - previous;
        for k in 1..gap {
            let fraction = k as f64 / gap as f64;
            filled[previous + k] = y[previous] + (y[i] - y[previous]) * fraction;
        }
        previous = i;
    }
    for slot in filled.iter_mut().skip(previous + 1) {
        *slot = y[previous];
    }
    Some(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daily(n: usize, period: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let phase = (i % period) as f64 / period as f64;
                100.0
                    + 30.0 * (std::f64::consts::TAU * phase).sin()
                    + ((i * 7919) % 13) as f64 * 0.2
            })
            .collect()
    }

    #[test]
    fn gaps_are_interpolated_and_ends_extended() {
        let y = [f64::NAN, 1.0, f64::NAN, f64::NAN, 4.0, f64::NAN];
        assert_eq!(
            interpolate_gaps(&y),
            Some(vec![1.0, 1.0, 2.0, 3.0, 4.0, 4.0])
        );
        assert_eq!(interpolate_gaps(&[f64::NAN, f64::NAN]), None);
    }

    #[test]
    fn a_daily_cycle_is_found_and_removed() {
        let period = 48;
        let y = daily(period * 6, period);
        // The weekly candidate does not fit twice in 6 days; the daily one is detected.
        let detected = decompose_detected(&y, &[period, period * 7]).expect("a season");
        assert_eq!(detected.profiles.periods(), vec![period]);
        let decomposition = decompose(&y, &[period]).expect("decomposes");
        assert_eq!(detected.profiles, decomposition.profiles);
        // The profile carries the cycle into the next period.
        let next_peak = (period * 6 + period / 4) as u64;
        let expected_peak = decomposition.profiles.value_at(next_peak);
        assert!((expected_peak - 30.0).abs() < 3.0, "{expected_peak}");
        let spread = |v: &[f64]| {
            let max = v.iter().copied().fold(f64::MIN, f64::max);
            let min = v.iter().copied().fold(f64::MAX, f64::min);
            max - min
        };
        assert!(spread(&decomposition.deseasonalised) < 10.0);
    }

    #[test]
    fn an_incident_one_period_back_does_not_come_back_in_the_profile() {
        let period = 96;
        let mut y = daily(4 * period, period);
        // A large burst at the start of the newest cycle.
        for value in &mut y[3 * period..3 * period + 4] {
            *value += 60.0;
        }
        let decomposition = decompose(&y, &[period]).expect("seasonal");
        let clean = decompose(&daily(4 * period, period), &[period]).expect("seasonal");
        let next = (4 * period) as u64;
        let leaked = decomposition.profiles.value_at(next) - clean.profiles.value_at(next);
        assert!(
            leaked.abs() < 5.0,
            "the burst leaks {leaked} into the next cycle"
        );
    }

    #[test]
    fn with_two_cycles_a_burst_of_either_does_not_come_back_at_half_its_size() {
        // Two days of history and a daily season: the common first window of the sidecar.
        let period = 96;
        for burst_cycle in [0, 1] {
            let mut y = daily(2 * period, period);
            let at = burst_cycle * period + 40;
            for value in &mut y[at..at + 3] {
                *value += 400.0;
            }
            let next = (2 * period + 41) as u64;
            let full = decompose(&y, &[period]).expect("seasonal");
            let clean = decompose(&daily(2 * period, period), &[period]).expect("seasonal");
            let leaked = full.profiles.value_at(next) - clean.profiles.value_at(next);
            assert!(
                leaked.abs() < 20.0,
                "cycle {burst_cycle}: the burst leaks {leaked} into the full profile"
            );
            let quick = decompose_quick(&y, &[period], false).expect("seasonal");
            let clean =
                decompose_quick(&daily(2 * period, period), &[period], false).expect("seasonal");
            let leaked = quick.profiles.value_at(next) - clean.profiles.value_at(next);
            assert!(
                leaked.abs() < 20.0,
                "cycle {burst_cycle}: the burst leaks {leaked} into the quick profile"
            );
        }
        // A phase's recurring value: the median; of two far apart, the one nearer zero.
        assert_eq!(recurring(&[], 1.0), None);
        assert_eq!(recurring(&[-1.0, 2.0, 9.0], 1.0), Some(2.0));
        assert_eq!(recurring(&[1.0, 200.0], 1.0), Some(1.0));
        assert_eq!(recurring(&[-200.0, -1.0], 1.0), Some(-1.0));
        assert_eq!(recurring(&[28.0, 31.0], 1.0), Some(29.5));
    }

    #[test]
    fn the_quick_decomposition_finds_the_cycle_and_drops_a_one_off_incident() {
        let period = 96;
        let mut y = daily(4 * period, period);
        // A drift the moving average takes out, and a burst in the newest cycle.
        for (i, value) in y.iter_mut().enumerate() {
            *value += 0.05 * i as f64;
        }
        for value in &mut y[3 * period + 10..3 * period + 14] {
            *value += 60.0;
        }
        let quick = decompose_quick(&y, &[period], true).expect("a season");
        assert_eq!(quick.profiles.periods(), vec![period]);
        for phase in [0, period / 4, period / 2, 3 * period / 4, 12] {
            let expected = 30.0 * (std::f64::consts::TAU * phase as f64 / period as f64).sin();
            let got = quick.profiles.value_at((4 * period + phase) as u64);
            assert!(
                (got - expected).abs() < 4.0,
                "phase {phase}: {got} vs {expected}"
            );
        }
        // Gaps stay gaps; elsewhere the cycle is gone.
        assert_eq!(quick.deseasonalised.len(), y.len());
        let calm = &quick.deseasonalised[..3 * period];
        let spread = calm.iter().copied().fold(f64::MIN, f64::max)
            - calm.iter().copied().fold(f64::MAX, f64::min);
        assert!(spread < 30.0, "{spread}");
    }

    #[test]
    fn the_quick_decomposition_keeps_only_clear_seasons_when_detecting() {
        let noise: Vec<f64> = (0..600).map(|i| ((i * 7919) % 101) as f64).collect();
        assert!(decompose_quick(&noise, &[48], true).is_none());
        // Asked for, a period is modelled whatever its strength; one that does not fit twice
        // is left out.
        assert!(decompose_quick(&noise, &[48], false).is_some());
        assert!(decompose_quick(&noise, &[400], false).is_none());
        // Two periods, shortest first, whatever order they are given in.
        let y: Vec<f64> = (0..7 * 96)
            .map(|i| {
                let tau = std::f64::consts::TAU;
                10.0 * (tau * (i % 24) as f64 / 24.0).sin()
                    + 20.0 * (tau * (i % 96) as f64 / 96.0).cos()
            })
            .collect();
        let both = decompose_quick(&y, &[96, 24], true).expect("seasonal");
        assert_eq!(both.profiles.periods(), vec![24, 96]);
        let worst = both
            .deseasonalised
            .iter()
            .fold(0.0_f64, |worst, v| worst.max(v.abs()));
        assert!(worst < 5.0, "{worst}");
    }

    #[test]
    fn the_moving_average_keeps_its_precision_far_from_zero() {
        let y: Vec<f64> = (0..100).map(|i| 1e12 + (i % 4) as f64).collect();
        let average = moving_average(&y, 4);
        assert!(average.iter().all(|a| (a - (1e12 + 1.5)).abs() < 1e-3));
    }

    #[test]
    fn noise_has_no_season() {
        let y: Vec<f64> = (0..600).map(|i| ((i * 7919) % 101) as f64).collect();
        assert!(decompose_detected(&y, &[48]).is_none());
    }

    #[test]
    fn periods_without_two_cycles_are_left_out() {
        let y = daily(100, 48);
        assert!(decompose(&y, &[60]).is_none());
        assert!(decompose_detected(&y, &[60]).is_none());
    }
}
