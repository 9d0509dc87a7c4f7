//! Familiar shapes: whether the stretch of values that opened an anomaly episode is one the
//! series has shown on several earlier occasions, at times of its season (the longest one it
//! has: the week where there is one) that usually look the same.
//!
//! Most false alarms on real series repeat something the series does: the nightly batch job's
//! burst, the Monday-morning ramp a day late, the tweet storm of an ordinary news day. Measured
//! at the onsets of the public NAB files, the last four values of a false onset lay a median 0.7
//! noise scales from the nearest earlier stretch of the series, those of a real one 2.6 (the
//! novelty CAD OSE and ARTime, the benchmark's best detectors, reward). The forecaster misses
//! such a burst every time (it is not regular enough to be in the seasonal profile), so its
//! surprise alone cannot tell the tenth occurrence from the first.
//!
//! The comparison is made on two things at once: the values, and the values less the usual
//! value at their phase of the season (the median of the window's values at that phase). A
//! daily peak that did not come (traffic at its night level at noon) is made of familiar
//! values, but noon usually looks nothing like night: against every earlier night the second
//! part differs by the height of the peak, so the stretch is novel and the alarm stands. A
//! burst seen on four earlier occasions at times that usually look alike is familiar. The
//! usual value is a median rather than the model's seasonal profile because a profile fitted
//! on two or three cycles can carry one cycle's burst, which would make every ordinary value at
//! that phase look out of place.
//!
//! Distances are root mean squares per point. A stretch counts as seen before when at least
//! [`OCCASIONS`] earlier stretches, none overlapping another, lie within the tolerance of it:
//! [`TOLERANCE`] times the robust scale of the window's one-step differences (the series' own
//! noise), or [`RELATIVE_TOLERANCE`] times the stretch's own size if that is larger (a nightly
//! job that lifts a quiet series far above its noise differs from night to night by more
//! than the noise, and is still the same job);
//! the onset's probability is then scaled by how close the last of those occasions is (0 for an
//! exact repeat, 1 at the tolerance). A stretch of one repeated value (a stuck series) counts
//! only earlier runs of one value as occasions: noise passes near any level now and then, but
//! what is unusual about a stuck series is that it stopped moving. This runs only at an onset
//! (at most once per anomaly episode), over the window the model keeps: O(window) then,
//! nothing on ordinary points.

use super::robust;

/// Points in a compared stretch, the onset point last.
pub const STRETCH_POINTS: usize = 4;
/// Distance (root mean square per point, in noise scales) within which an earlier stretch
/// counts as the same: half the noise, so the repeat is the same shape, not merely close.
pub const TOLERANCE: f64 = 0.5;
/// Earlier occasions that make a stretch familiar: once or twice may be the same incident
/// seen before, four times is how the series behaves.
pub const OCCASIONS: usize = 4;
/// The tolerance is also at least this share of the stretch's own size (its root mean square
/// distance from the usual values): a job that lifts a quiet series a hundred noise scales
/// every night never repeats to half a noise scale, yet each night is the same event. A tenth:
/// a burst a fifth larger or smaller than the earlier ones is not the same; at a quarter,
/// bursts that grew denser (NAB's load-balancer spikes) or a failure that began like an
/// ordinary swing read as familiar (docs/benchmarks.md, "Familiar within a tenth of its size").
pub const RELATIVE_TOLERANCE: f64 = 0.1;

/// The factor in [0, 1] the probability of an onset at the newest point is multiplied by: 1 for
/// a stretch never seen, towards 0 for one seen on [`OCCASIONS`] earlier occasions.
///
/// `values` is the window, oldest first, ending with the onset point (NaN for gaps); `period`
/// the seasonal period in points whose phases say what is usual, if the series has one (the
/// tracker passes the longest: a weekday holiday that looks like a Sunday is new against the
/// week and familiar against the day).
pub fn onset_factor(values: &[f64], period: Option<usize>) -> f64 {
    let n = values.len();
    let m = STRETCH_POINTS;
    // Too short a window to have seen anything several times: every stretch is new.
    if n < (OCCASIONS + 1) * m {
        return 1.0;
    }
    let Some(scale) = noise_scale(&values[..n]) else {
        return 1.0;
    };
    let query = n - m;
    let usual = usual_by_phase(values, period);
    let deseasoned = |i: usize| match &usual {
        Some((period, usual)) => values[i] - usual[i % period],
        None => values[i],
    };
    if (query..n).any(|i| !deseasoned(i).is_finite()) {
        return 1.0;
    }
    let size = stretch_size(values, query, &deseasoned, usual.is_some());
    let tolerance = (TOLERANCE * scale).max(RELATIVE_TOLERANCE * size);
    // A stretch of one repeated value (a stuck series) is unusual for not moving, which its
    // distance from a noisy stretch at the same level does not show: only earlier runs of one
    // value are the same thing seen before.
    let constant = |start: usize| values[start..start + m].windows(2).all(|w| w[0] == w[1]);
    let stuck = constant(query);
    // Squared distance of the stretch starting at `start` from the onset's, summed over both
    // parts; None when it has a gap.
    let limit = tolerance * tolerance * (2 * m) as f64;
    let distance = |start: usize| -> Option<f64> {
        if stuck && !constant(start) {
            return None;
        }
        let mut sum = 0.0;
        for k in 0..m {
            let (past, now) = (start + k, query + k);
            let raw = values[past] - values[now];
            let other = deseasoned(past) - deseasoned(now);
            sum += raw * raw + other * other;
            // Most stretches are far: stop as soon as this one is out of reach (or has a gap).
            if sum.is_nan() || sum > limit {
                return None;
            }
        }
        Some(sum)
    };
    // Stretches that end before the onset's begins; the close ones are few.
    let mut close: Vec<(f64, usize)> = (0..=query - m)
        .filter_map(|start| distance(start).map(|d| (d, start)))
        .collect();
    if close.len() < OCCASIONS {
        return 1.0;
    }
    close.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Occasions, nearest first; a stretch overlapping one already taken is the same occasion.
    let mut taken: Vec<usize> = Vec::with_capacity(OCCASIONS);
    for (squared, start) in close {
        if taken.iter().all(|&t| t.abs_diff(start) >= m) {
            taken.push(start);
            if taken.len() == OCCASIONS {
                let distance = (squared / (2 * m) as f64).sqrt();
                return (distance / tolerance).clamp(0.0, 1.0);
            }
        }
    }
    1.0
}

/// The size of the onset's stretch (starting at `query`) in the distance's own terms: the root
/// mean square, over both parts, of its values less the window's median and of its deseasoned
/// values (less that median too when there is no season, where they are the values).
fn stretch_size(
    values: &[f64],
    query: usize,
    deseasoned: &dyn Fn(usize) -> f64,
    seasonal: bool,
) -> f64 {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let median = robust::median(&mut finite);
    let centre = if seasonal { 0.0 } else { median };
    let stretch = query..values.len();
    let squares: f64 = stretch
        .clone()
        .map(|i| (values[i] - median).powi(2) + (deseasoned(i) - centre).powi(2))
        .sum();
    (squares / (2 * stretch.len()) as f64).sqrt()
}

/// The median of the finite values at each phase of `period` (indexed from the window's first
/// point), with the period; `None` without a period or with fewer than two cycles of it.
fn usual_by_phase(values: &[f64], period: Option<usize>) -> Option<(usize, Vec<f64>)> {
    let period = period.filter(|&p| p >= 2 && values.len() >= 2 * p)?;
    let mut at_phase: Vec<f64> = Vec::with_capacity(values.len() / period + 1);
    let usual = (0..period)
        .map(|phase| {
            at_phase.clear();
            at_phase.extend(
                values[phase..]
                    .iter()
                    .step_by(period)
                    .filter(|v| v.is_finite()),
            );
            if at_phase.is_empty() {
                0.0
            } else {
                robust::median(&mut at_phase)
            }
        })
        .collect();
    Some((period, usual))
}

/// The robust standard deviation of the one-step differences between finite neighbours (their
/// mean absolute size where more than half are equal, as for a count that mostly repeats);
/// `None` for a series that never moved.
fn noise_scale(values: &[f64]) -> Option<f64> {
    let mut differences: Vec<f64> = values
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .filter(|d| d.is_finite())
        .collect();
    if differences.iter().all(|d| *d == 0.0) {
        return None;
    }
    let (centre, mad) = robust::median_and_mad(&mut differences);
    let scale = robust::scale_from(mad, &differences, centre);
    (scale.is_finite() && scale > 0.0).then_some(scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::uniform_noise;

    /// Noise around 10 with the same burst, `[16, 19, 17, 15]` (a batch job's exact output),
    /// ending at each of `ends`.
    fn noise_with_bursts(len: usize, ends: &[usize]) -> Vec<f64> {
        let mut values: Vec<f64> = (0..len).map(|i| 10.0 + uniform_noise(i, 7)).collect();
        for &end in ends {
            values[end + 1 - STRETCH_POINTS..=end].copy_from_slice(&[16.0, 19.0, 17.0, 15.0]);
        }
        values
    }

    #[test]
    fn a_burst_seen_on_four_earlier_occasions_is_familiar_and_on_three_is_not() {
        let four = noise_with_bursts(600, &[100, 220, 330, 470, 599]);
        let factor = onset_factor(&four, None);
        assert!(factor < 0.5, "{factor}");
        let three = noise_with_bursts(600, &[100, 220, 330, 599]);
        assert_eq!(onset_factor(&three, None), 1.0);
        // Never seen: the burst alone.
        assert_eq!(onset_factor(&noise_with_bursts(600, &[599]), None), 1.0);
    }

    #[test]
    fn a_nightly_burst_of_varying_height_on_a_quiet_series_is_familiar_and_a_larger_one_is_not() {
        // Noise of about 0.01 around 0.07; a one-point burst to 1.4-1.6 every 288 points (a
        // nightly job on a 5-minute CPU series): the heights differ by several noise scales,
        // four of them by less than a tenth of the burst from the newest.
        // Earlier nights' bursts come a few points early or late.
        let burst_at = [103, 383, 676, 971, 1250, 1540];
        let heights = [1.40, 1.48, 1.60, 1.43, 1.47, 1.45];
        let series = |last_height: f64| {
            let mut values: Vec<f64> = (0..=1540)
                .map(|i| 0.07 + 0.01 * uniform_noise(i, 3))
                .collect();
            for (&at, &height) in burst_at.iter().zip(&heights) {
                values[at] = height;
            }
            values[1540] = last_height;
            values
        };
        let factor = onset_factor(&series(1.45), Some(288));
        assert!(factor < 0.5, "the sixth night's burst: {factor}");
        // Three times the usual burst is a new event.
        assert_eq!(onset_factor(&series(4.5), Some(288)), 1.0);
    }

    /// A series stuck at a value its noise passes near now and then: four noisy values close
    /// to it are not the same thing as four equal ones, which only earlier runs of one value
    /// are.
    #[test]
    fn a_stuck_stretch_is_familiar_only_after_earlier_runs_of_one_value() {
        let noisy = |len: usize| -> Vec<f64> {
            (0..len).map(|i| 50.0 + 8.0 * uniform_noise(i, 8)).collect()
        };
        let mut stuck_once = noisy(1_000);
        stuck_once[996..].fill(50.0);
        // Noise alone has stretches within the tolerance of four values at 50...
        let mut near = stuck_once.clone();
        near[996..].copy_from_slice(&[50.4, 49.7, 50.2, 49.9]);
        assert!(
            onset_factor(&near, None) < 1.0,
            "{}",
            onset_factor(&near, None)
        );
        // ...but never stood still: the stuck stretch is new.
        assert_eq!(onset_factor(&stuck_once, None), 1.0);
        // Stuck at 50 on four earlier occasions: the fifth is familiar.
        let mut stuck_before = stuck_once.clone();
        for start in [150, 380, 600, 820] {
            stuck_before[start..start + 6].fill(50.0);
        }
        assert!(
            onset_factor(&stuck_before, None) < 0.5,
            "{}",
            onset_factor(&stuck_before, None)
        );
    }

    #[test]
    fn an_exact_repeat_is_fully_familiar_and_overlaps_count_once() {
        let mut values = vec![0.0; 200];
        // A slow ramp: every stretch of four is new except where the pattern repeats.
        for (i, v) in values.iter_mut().enumerate() {
            *v = i as f64 * 0.01;
        }
        let pattern = [5.0, 8.0, 6.0, 5.0];
        for end in [40, 80, 120, 160, 199] {
            values[end + 1 - 4..=end].copy_from_slice(&pattern);
        }
        assert_eq!(onset_factor(&values, None), 0.0);
        // Four matching stretches that overlap (a level held for seven points) are one
        // occasion.
        let mut held = vec![0.0; 200];
        for (i, v) in held.iter_mut().enumerate() {
            *v = i as f64 * 0.01;
        }
        for v in &mut held[40..47] {
            *v = 5.0;
        }
        for v in &mut held[196..200] {
            *v = 5.0;
        }
        assert_eq!(onset_factor(&held, None), 1.0);
    }

    #[test]
    fn familiar_values_where_the_season_expected_otherwise_are_new() {
        // A daily cycle of 48 points: 0 at night, 20 at the peak; the last day's peak is
        // missing (the values stay at the night level).
        let period = 48;
        let days = 6;
        let season: Vec<f64> = (0..period)
            .map(|p| if (20..28).contains(&p) { 10.0 } else { -10.0 })
            .collect();
        let mut values: Vec<f64> = (0..period * days)
            .map(|i| 10.0 + season[i % period])
            .collect();
        let end = period * (days - 1) + 23;
        for v in &mut values[period * (days - 1) + 20..=end] {
            *v = 0.0;
        }
        let window = &values[..=end];
        // The values alone were seen every night...
        assert_eq!(onset_factor(window, None), 0.0);
        // ...but never at the time of day of the peak.
        assert_eq!(onset_factor(window, Some(period)), 1.0);
        // And a nightly job's burst, seen on every earlier day at the same hour, is familiar.
        let mut nightly = values.clone();
        for day in 0..days {
            nightly[day * period + 4..day * period + 8].copy_from_slice(&[9.0, 14.0, 11.0, 8.0]);
        }
        let end = period * (days - 1) + 7;
        assert_eq!(onset_factor(&nightly[..=end], Some(period)), 0.0);
    }

    #[test]
    fn a_weekday_that_looks_like_a_weekend_is_familiar_against_the_day_and_new_against_the_week() {
        // Hourly points, three weeks: weekdays run at 100 by day and 40 by night, the weekend
        // (days 5 and 6 of each week) at 30 all day. The last Thursday is a holiday that looks
        // like a weekend day; the onset is its 10:00-13:00.
        let (day, week) = (24, 168);
        let level = |i: usize| {
            let (weekday, hour) = ((i / day) % 7, i % day);
            if weekday >= 5 {
                30.0
            } else if (8..20).contains(&hour) {
                100.0
            } else {
                40.0
            }
        };
        let mut values: Vec<f64> = (0..3 * week).map(level).collect();
        let holiday = 2 * week + 3 * day;
        for v in &mut values[holiday..holiday + day] {
            *v = 30.0;
        }
        let window = &values[..=holiday + 13];
        // Against the day, the usual value at 13:00 is the weekdays' 100 and every earlier
        // weekend day is as far below it as the holiday: seen many times.
        assert_eq!(onset_factor(window, Some(day)), 0.0);
        // Against the week, the usual Thursday 13:00 is 100 while a Saturday's is 30: the
        // holiday's shortfall has no earlier occasion.
        assert_eq!(onset_factor(window, Some(week)), 1.0);
    }

    #[test]
    fn gaps_short_windows_and_still_series_leave_the_probability_alone() {
        let mut values = noise_with_bursts(600, &[100, 220, 330, 470, 599]);
        values[598] = f64::NAN;
        assert_eq!(onset_factor(&values, None), 1.0);
        assert_eq!(onset_factor(&values[..12], None), 1.0);
        assert_eq!(onset_factor(&[3.0; 100], None), 1.0);
        // Gaps in the past are skipped, not matched.
        let mut gappy = noise_with_bursts(600, &[100, 220, 330, 470, 599]);
        for v in &mut gappy[90..110] {
            *v = f64::NAN;
        }
        assert_eq!(onset_factor(&gappy, None), 1.0);
    }
}
