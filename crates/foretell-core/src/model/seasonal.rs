//! A seasonal profile: the median value at each phase of a period, linearly interpolated.

use super::robust;

/// Medians per phase bucket of one period. Bucket `i` covers phases
/// `[i * width, (i + 1) * width)`; its median is placed at the bucket's centre and values
/// between centres are interpolated, wrapping around the period.
#[derive(Clone, Debug, PartialEq)]
pub struct SeasonalProfile {
    period_ms: i64,
    medians: Vec<f64>,
}

impl SeasonalProfile {
    /// Fits on non-empty `points`. `buckets` is clamped to at least 1. Buckets that hold no
    /// point (gaps) take the median of the nearest bucket that does.
    pub fn fit(points: &[(i64, f64)], period_ms: i64, buckets: usize) -> Self {
        let buckets = buckets.max(1);
        let mut per_bucket: Vec<Vec<f64>> = vec![Vec::new(); buckets];
        for &(t, v) in points {
            per_bucket[Self::bucket_of(t, period_ms, buckets)].push(v);
        }
        let filled: Vec<Option<f64>> = per_bucket
            .iter_mut()
            .map(|values| (!values.is_empty()).then(|| robust::median(values)))
            .collect();
        let medians = (0..buckets)
            .map(|i| nearest_filled(&filled, i).unwrap_or(0.0))
            .collect();
        SeasonalProfile { period_ms, medians }
    }

    fn bucket_of(timestamp_ms: i64, period_ms: i64, buckets: usize) -> usize {
        let phase = timestamp_ms.rem_euclid(period_ms) as f64 / period_ms as f64;
        ((phase * buckets as f64) as usize).min(buckets - 1)
    }

    /// Expected value at `timestamp_ms`.
    pub fn value_at(&self, timestamp_ms: i64) -> f64 {
        let buckets = self.medians.len();
        let phase = timestamp_ms.rem_euclid(self.period_ms) as f64 / self.period_ms as f64;
        let position = phase * buckets as f64 - 0.5;
        let below = position.floor();
        let fraction = position - below;
        let below = (below as i64).rem_euclid(buckets as i64) as usize;
        let above = (below + 1) % buckets;
        self.medians[below] * (1.0 - fraction) + self.medians[above] * fraction
    }

    /// The same profile moved by `offset`.
    pub fn shifted(mut self, offset: f64) -> Self {
        for median in &mut self.medians {
            *median += offset;
        }
        self
    }
}

fn nearest_filled(filled: &[Option<f64>], index: usize) -> Option<f64> {
    let n = filled.len();
    (0..=n / 2).find_map(|distance| {
        filled[(index + distance) % n].or(filled[(index + n - distance % n) % n])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_medians_are_interpolated_between_centres() {
        // period 100 ms, 2 buckets: [0,50) holds 10s, [50,100) holds 20s.
        let points = [(10, 10.0), (20, 10.0), (60, 20.0), (70, 20.0)];
        let profile = SeasonalProfile::fit(&points, 100, 2);
        assert_eq!(profile.value_at(25), 10.0);
        assert_eq!(profile.value_at(75), 20.0);
        assert_eq!(profile.value_at(50), 15.0);
        // wraps: phase 0 is halfway between the centre of the last bucket and the first
        assert_eq!(profile.value_at(0), 15.0);
        assert_eq!(profile.value_at(100), 15.0);
    }

    #[test]
    fn empty_buckets_borrow_from_the_nearest_filled_one() {
        let points = [(5, 1.0), (35, 4.0)];
        let profile = SeasonalProfile::fit(&points, 40, 4);
        assert_eq!(profile.medians, vec![1.0, 1.0, 4.0, 4.0]);
    }
}
