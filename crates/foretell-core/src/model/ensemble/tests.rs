use super::scoring::weights_from_errors;
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
fn a_family_of_members_competes_as_one_candidate() {
    let close = |weights: &[f64], expected: &[f64]| {
        weights.len() == expected.len()
            && weights
                .iter()
                .zip(expected)
                .all(|(w, e)| (w - e).abs() < 1e-12)
    };
    // Three near-copies (family 0) and two other methods: the family earns one third, shared
    // equally, instead of three fifths.
    let weights = weights_by_family(&[1.0; 5], &[0, 0, 0, 1, 2]);
    let ninth = 1.0 / 9.0;
    assert!(
        close(&weights, &[ninth, ninth, ninth, 1.0 / 3.0, 1.0 / 3.0]),
        "{weights:?}"
    );
    // Inside a family the weights still fall with the square of the error, and the family is
    // scored by its best member: here it is as good as the other candidate. Members of one
    // family need not be next to each other.
    let weights = weights_by_family(&[1.0, 1.0, 2.0], &[0, 1, 0]);
    assert!(close(&weights, &[0.4, 0.5, 0.1]), "{weights:?}");
    // One family is the plain inverse squared weights.
    assert_eq!(
        weights_by_family(&[1.0, 2.0], &[0, 0]),
        weights_from_errors(&[1.0, 2.0])
    );
    // The weighted median of three copies and two others follows the others.
    let forecast = combine(
        &weights_by_family(&[1.0; 5], &[0, 0, 0, 1, 2]),
        [-30.0, -31.0, -29.0, 20.0, 21.0].into_iter(),
    );
    assert_eq!(forecast, Some(20.0));
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

#[test]
fn the_leading_method_is_the_heaviest_family_s_heaviest_member() {
    let ensemble = |weights: Vec<f64>| Ensemble {
        members: vec![
            Member::seasonal_naive(24),
            Member::SeasonalMedian {
                period: 24,
                profile: vec![0.0; 24],
            },
            Member::SeasonalMedian {
                period: 168,
                profile: vec![0.0; 168],
            },
        ],
        buckets: vec![Bucket {
            last_step: 24,
            weights,
            scale: 1.0,
        }],
        quantile: 1.0,
        warm: Vec::new(),
        validation: Validation {
            error_vs_seasonal_naive: None,
            horizon: 24,
        },
    };
    // Seasonal naive is the heaviest member, but the two medians together outweigh it.
    assert_eq!(
        ensemble(vec![0.4, 0.3, 0.3]).leading_kind(),
        "seasonal_median"
    );
    assert_eq!(
        ensemble(vec![0.6, 0.2, 0.2]).leading_kind(),
        "seasonal_naive"
    );
}
