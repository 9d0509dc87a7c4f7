//! Robust location and scale.

/// Consistency constant: 1.4826 × MAD estimates the standard deviation of normal data.
pub(crate) const MAD_TO_SIGMA: f64 = 1.4826;
/// sqrt(pi/2): mean absolute deviation × this estimates the standard deviation of normal data.
const MEAN_ABS_TO_SIGMA: f64 = 1.253_314_137_315_500_3;

/// Median of `values`, reordering them. `values` must be non-empty and finite.
pub fn median(values: &mut [f64]) -> f64 {
    let n = values.len();
    let mid = n / 2;
    let (_, upper_mid, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    let upper_mid = *upper_mid;
    if n % 2 == 1 {
        upper_mid
    } else {
        let lower_mid = values[..mid]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        (lower_mid + upper_mid) / 2.0
    }
}

/// Median and median absolute deviation. `values` is reordered but keeps its contents.
pub fn median_and_mad(values: &mut [f64]) -> (f64, f64) {
    let centre = median(values);
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    (centre, median(&mut deviations))
}

/// The smallest error scale of a series: a relative sliver (1e-9) of its newest finite value
/// (at least of 1), so a series forecast perfectly still has a band of nonzero width.
pub(crate) fn scale_floor(series: &[f64]) -> f64 {
    let level = series
        .iter()
        .rev()
        .copied()
        .find(|v| v.is_finite())
        .unwrap_or(0.0);
    1e-9 * level.abs().max(1.0)
}

/// Robust standard deviation: 1.4826 × MAD. When more than half the values sit exactly on the
/// median (MAD = 0, common for counters that rarely move), falls back to the mean absolute
/// deviation, and for a constant series to a tiny floor relative to its level, so that any
/// change from a constant scores as anomalous instead of dividing by zero.
pub fn scale_from(mad: f64, values: &[f64], centre: f64) -> f64 {
    let from_mad = MAD_TO_SIGMA * mad;
    if from_mad > 0.0 {
        return from_mad;
    }
    let floor = 1e-9 * centre.abs().max(1.0);
    mean_abs_sigma(values, centre).max(floor)
}

/// The standard deviation estimated from the mean absolute deviation around `centre`
/// (exact for normal data; inflated by outliers, unlike the MAD).
pub(crate) fn mean_abs_sigma(values: &[f64], centre: f64) -> f64 {
    let mean_abs =
        values.iter().map(|v| (v - centre).abs()).sum::<f64>() / values.len().max(1) as f64;
    MEAN_ABS_TO_SIGMA * mean_abs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_lengths() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [7.0]), 7.0);
    }

    #[test]
    fn mad_of_known_values() {
        // |x - 3| for 1..5 = 2,1,0,1,2 -> MAD 1
        assert_eq!(median_and_mad(&mut [1.0, 2.0, 3.0, 4.0, 5.0]), (3.0, 1.0));
    }

    #[test]
    fn scale_falls_back_when_mad_is_zero() {
        let values = [0.0, 0.0, 0.0, 0.0, 4.0];
        let scale = scale_from(0.0, &values, 0.0);
        assert!((scale - MEAN_ABS_TO_SIGMA * 0.8).abs() < 1e-12, "{scale}");
        let constant = [5.0; 4];
        assert_eq!(scale_from(0.0, &constant, 5.0), 5e-9);
    }
}
