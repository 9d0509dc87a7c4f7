//! How candidates are scored and combined: the errors of a rolling-origin validation, the
//! weights they earn, and the conformal quantile of the interval.

use super::*;

/// 2|y - f| / (|y| + |f|), 0 when both are 0: the sMAPE term of one point.
pub(super) fn symmetric_relative_error(actual: f64, forecast: f64) -> f64 {
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
pub(super) fn owa_like(absolute: &[f64], relative: &[f64]) -> Vec<f64> {
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
pub(super) fn weights_from_errors(errors: &[f64]) -> Vec<f64> {
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

/// Weights for members grouped into families (`families[m]` is member `m`'s): each family
/// competes as one candidate, scored by its best member, and shares the weight it earns among
/// its members as [`weights_from_errors`] would share it among them alone. Why: members of one
/// family move together (the trend forms of exponential smoothing share one level and the same
/// profiles; seasonal naive repeats the same cycles for every period), so counted as separate
/// candidates they are several votes in the weighted median, and a disturbance that drags one
/// family (a day that skipped its peak pulls every smoothing level down) outvotes every other
/// method however the methods scored.
pub(super) fn weights_by_family<F: PartialEq>(errors: &[f64], families: &[F]) -> Vec<f64> {
    // Each family once, in order of first appearance.
    let mut distinct: Vec<&F> = Vec::new();
    for family in families {
        if !distinct.contains(&family) {
            distinct.push(family);
        }
    }
    let members_of = |family: &F| {
        (0..errors.len())
            .filter(|&m| families.get(m) == Some(family))
            .collect::<Vec<_>>()
    };
    let best: Vec<f64> = distinct
        .iter()
        .map(|family| {
            members_of(family)
                .into_iter()
                .map(|m| errors[m])
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    let outer = weights_from_errors(&best);
    let mut weights = vec![0.0; errors.len()];
    for (family, family_weight) in distinct.into_iter().zip(outer) {
        let members = members_of(family);
        let own: Vec<f64> = members.iter().map(|&m| errors[m]).collect();
        for (m, w) in members.into_iter().zip(weights_from_errors(&own)) {
            weights[m] = w * family_weight;
        }
    }
    weights
}

/// The weighted mean of the finite forecasts, the weights of the others spread over them;
/// `None` when no weighted member has a forecast.
pub(super) fn combine(weights: &[f64], forecasts: impl Iterator<Item = f64>) -> Option<f64> {
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
pub(super) fn conformal_quantile(scores: &mut [f64], coverage: Coverage) -> f64 {
    scores.sort_by(f64::total_cmp);
    let n = scores.len();
    let rank = ((n + 1) as f64 * coverage.get()).ceil() as usize;
    scores[rank.clamp(1, n) - 1]
}
