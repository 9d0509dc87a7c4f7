//! A small Nelder-Mead minimiser for the few smoothing parameters of an ETS model.
//!
//! The parameters are optimised in an unconstrained space (the caller maps them into their
//! bounds), so the simplex never needs projecting. Dimensions are 1 to 3 here, where
//! Nelder-Mead converges in tens of evaluations.

/// Where and how hard to search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Search {
    /// Length of the initial simplex's edges.
    pub initial_step: f64,
    pub max_evaluations: usize,
    /// Stop when the objective differs by less than this (relative) across the simplex.
    pub tolerance: f64,
}

/// Minimises `objective` from `start`; returns the best point and its value.
pub(crate) fn minimise(
    start: &[f64],
    search: Search,
    mut objective: impl FnMut(&[f64]) -> f64,
) -> (Vec<f64>, f64) {
    let dims = start.len();
    let mut evaluate = |x: &[f64]| {
        let value = objective(x);
        if value.is_finite() {
            value
        } else {
            f64::MAX
        }
    };
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(dims + 1);
    simplex.push((start.to_vec(), evaluate(start)));
    for axis in 0..dims {
        let mut vertex = start.to_vec();
        vertex[axis] += search.initial_step;
        let value = evaluate(&vertex);
        simplex.push((vertex, value));
    }
    let mut evaluations = dims + 1;
    while evaluations < search.max_evaluations {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let best = simplex[0].1;
        let worst = simplex[dims].1;
        if (worst - best).abs() <= search.tolerance * (best.abs() + 1e-12) {
            break;
        }
        let centroid: Vec<f64> = (0..dims)
            .map(|d| simplex[..dims].iter().map(|v| v.0[d]).sum::<f64>() / dims as f64)
            .collect();
        let towards = |factor: f64| -> Vec<f64> {
            (0..dims)
                .map(|d| centroid[d] + factor * (simplex[dims].0[d] - centroid[d]))
                .collect()
        };
        let reflected = towards(-1.0);
        let reflected_value = evaluate(&reflected);
        evaluations += 1;
        if reflected_value < best {
            let expanded = towards(-2.0);
            let expanded_value = evaluate(&expanded);
            evaluations += 1;
            simplex[dims] = if expanded_value < reflected_value {
                (expanded, expanded_value)
            } else {
                (reflected, reflected_value)
            };
            continue;
        }
        if reflected_value < simplex[dims - 1].1 {
            simplex[dims] = (reflected, reflected_value);
            continue;
        }
        let contracted = if reflected_value < worst {
            towards(-0.5)
        } else {
            towards(0.5)
        };
        let contracted_value = evaluate(&contracted);
        evaluations += 1;
        if contracted_value < worst.min(reflected_value) {
            simplex[dims] = (contracted, contracted_value);
            continue;
        }
        // Shrink every vertex towards the best one.
        let best_point = simplex[0].0.clone();
        for vertex in simplex.iter_mut().skip(1) {
            for (coordinate, best) in vertex.0.iter_mut().zip(&best_point) {
                *coordinate = best + 0.5 * (*coordinate - best);
            }
            vertex.1 = evaluate(&vertex.0);
            evaluations += 1;
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (point, value) = simplex.swap_remove(0);
    (point, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_a_shifted_quadratic() {
        let search = Search {
            initial_step: 0.5,
            max_evaluations: 500,
            tolerance: 1e-12,
        };
        let (point, value) = minimise(&[0.0, 0.0], search, |x| {
            (x[0] - 1.5).powi(2) + 3.0 * (x[1] + 0.5).powi(2) + 2.0
        });
        assert!((point[0] - 1.5).abs() < 1e-3, "{point:?}");
        assert!((point[1] + 0.5).abs() < 1e-3, "{point:?}");
        assert!((value - 2.0).abs() < 1e-6, "{value}");
    }

    #[test]
    fn non_finite_objective_values_are_avoided() {
        let search = Search {
            initial_step: 1.0,
            max_evaluations: 200,
            tolerance: 1e-10,
        };
        let (point, _) = minimise(&[0.5], search, |x| {
            if x[0] < 0.0 {
                f64::NAN
            } else {
                (x[0] - 2.0).powi(2)
            }
        });
        assert!((point[0] - 2.0).abs() < 1e-3, "{point:?}");
    }
}
