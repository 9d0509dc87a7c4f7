//! The anomaly score.
//!
//! `score = |y - expected| / h`, where `h` is the band's half-width on the side of `y`
//! (`upper - expected` above, `expected - lower` below). So the score is 0 at the expected value,
//! below 1 inside the band, exactly 1 on its edge, and grows linearly with the distance outside
//! it: a score of 3 is three half-widths away. This is the convention vmanomaly users know
//! ("above 1 is anomalous").

use super::Band;

/// Scores `value` against `band`. `None` when the value is not finite (a gap, NaN or ±Inf from
/// the source): no score is better than a made-up one.
pub fn anomaly_score(band: &Band, value: f64) -> Option<f64> {
    if !value.is_finite() {
        return None;
    }
    let distance = value - band.expected;
    let half_width = if distance >= 0.0 {
        band.upper - band.expected
    } else {
        band.expected - band.lower
    };
    if half_width > 0.0 {
        Some(distance.abs() / half_width)
    } else if distance == 0.0 {
        Some(0.0)
    } else {
        Some(f64::INFINITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAND: Band = Band {
        expected: 10.0,
        lower: 6.0,
        upper: 12.0,
    };

    #[test]
    fn zero_at_expected_one_on_each_edge() {
        assert_eq!(anomaly_score(&BAND, 10.0), Some(0.0));
        assert_eq!(anomaly_score(&BAND, 12.0), Some(1.0));
        assert_eq!(anomaly_score(&BAND, 6.0), Some(1.0));
    }

    #[test]
    fn grows_linearly_outside_using_the_half_width_of_its_side() {
        assert_eq!(anomaly_score(&BAND, 11.0), Some(0.5));
        assert_eq!(anomaly_score(&BAND, 16.0), Some(3.0));
        assert_eq!(anomaly_score(&BAND, 2.0), Some(2.0));
    }

    #[test]
    fn non_finite_values_get_no_score() {
        assert_eq!(anomaly_score(&BAND, f64::NAN), None);
        assert_eq!(anomaly_score(&BAND, f64::INFINITY), None);
    }

    #[test]
    fn a_zero_width_band_scores_any_change_as_infinite() {
        let flat = Band {
            expected: 1.0,
            lower: 1.0,
            upper: 1.0,
        };
        assert_eq!(anomaly_score(&flat, 1.0), Some(0.0));
        assert_eq!(anomaly_score(&flat, 2.0), Some(f64::INFINITY));
    }
}
