//! One seasonal profile, in 16 bits a phase when the series' noise allows it.
//!
//! A daily profile at one-minute steps has 1,440 phases; kept as `f32` it was 5.6 KB, the
//! second largest part of a tracked series after its window. A profile learnt from noisy
//! cycles carries no information in its seventh significant digit, so each phase is kept as a
//! 16-bit step from the profile's lowest value, the step being the profile's range over
//! 65,534 (a phase is within 1/131,068 of that range of what the decomposition computed) —
//! but only when that error is at most 1 % of the series' cycle-to-cycle noise, which adds a
//! three-thousandth of a percent to the variance a model sees. A series regular enough to
//! notice (a noiseless synthetic shape, a square wave) keeps `f32` phases: rounding would give
//! it errors of its own, which its anomaly scoring would read as surprise. Forecasts and
//! scores read the decoded value, always the same one, so a model stays consistent with what
//! it was fitted on.

/// The code of a phase that has no value (a NaN from the decomposition).
const MISSING: u16 = u16::MAX;
/// The largest code of a value.
const TOP: u16 = u16::MAX - 1;

/// The largest rounding error allowed, as a share of the noise.
const NOISE_SHARE: f64 = 0.01;

/// A seasonal profile: `value(k)` is the seasonal value at phase `k`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Profile {
    /// `f32` phases, for series too regular to round.
    Exact(Box<[f32]>),
    /// `base + code × step`; [`MISSING`] for a phase without a value.
    Coded {
        base: f64,
        step: f64,
        codes: Box<[u16]>,
    },
}

impl Profile {
    /// The profile of `values` (one per phase), coded in 16 bits when the rounding stays
    /// within 1 % of `noise` (the series' typical deviation from its profile, in its unit),
    /// else as `f32`. Non-finite values, which no decomposition produces, read as NaN.
    pub fn new(values: &[f64], noise: f64) -> Profile {
        let coded = Profile::coded(values);
        let fine_enough = match &coded {
            Profile::Coded { step, .. } => *step / 2.0 <= NOISE_SHARE * noise,
            Profile::Exact(_) => false,
        };
        if fine_enough {
            coded
        } else {
            Profile::exact(values)
        }
    }

    /// `f32` phases, whatever the noise (a profile that is not kept needs no coding).
    pub fn exact(values: &[f64]) -> Profile {
        Profile::Exact(values.iter().map(|&v| v as f32).collect())
    }

    /// 16-bit phases, whatever the noise.
    fn coded(values: &[f64]) -> Profile {
        let finite = || values.iter().copied().filter(|v| v.is_finite());
        let lowest = finite().fold(f64::INFINITY, f64::min);
        let highest = finite().fold(f64::NEG_INFINITY, f64::max);
        let (base, step) = if lowest.is_finite() && highest > lowest {
            (lowest, (highest - lowest) / f64::from(TOP))
        } else if lowest.is_finite() {
            (lowest, 0.0)
        } else {
            (0.0, 0.0)
        };
        let codes = values
            .iter()
            .map(|&v| {
                if !v.is_finite() {
                    MISSING
                } else if step > 0.0 {
                    ((v - base) / step).round().clamp(0.0, f64::from(TOP)) as u16
                } else {
                    0
                }
            })
            .collect();
        Profile::Coded { base, step, codes }
    }

    /// Phases in the profile (its period).
    pub fn len(&self) -> usize {
        match self {
            Profile::Exact(values) => values.len(),
            Profile::Coded { codes, .. } => codes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `phase` (NaN where none was given).
    pub fn value(&self, phase: usize) -> f64 {
        match self {
            Profile::Exact(values) => f64::from(values[phase]),
            Profile::Coded { base, step, codes } => match codes[phase] {
                MISSING => f64::NAN,
                code => base + f64::from(code) * step,
            },
        }
    }

    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Profile::Exact(values) => std::mem::size_of_val(&**values),
            Profile::Coded { codes, .. } => std::mem::size_of_val(&**codes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_is_within_half_a_step_of_what_was_given() {
        let values: Vec<f64> = (0..1440)
            .map(|k| 100.0 * (k as f64 * std::f64::consts::TAU / 1440.0).sin() + 0.123_456_789)
            .collect();
        // Noise of 1 allows a rounding of 0.01; the step here is 200 / 65,534.
        let profile = Profile::new(&values, 1.0);
        assert!(matches!(profile, Profile::Coded { .. }));
        assert_eq!(profile.len(), 1440);
        let half_step = 200.0 / f64::from(TOP) / 2.0;
        for (k, v) in values.iter().enumerate() {
            assert!(
                (profile.value(k) - v).abs() <= half_step * 1.000_001,
                "phase {k}: {} against {v}",
                profile.value(k)
            );
        }
        // The extremes are exact: the base is the lowest value, the top code the highest.
        let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
        let at_lowest = values.iter().position(|&v| v == lowest).unwrap();
        assert_eq!(profile.value(at_lowest), lowest);
        assert_eq!(profile.heap_bytes(), 2 * 1440, "two bytes a phase");
    }

    #[test]
    fn a_flat_profile_is_exact_and_missing_phases_stay_missing() {
        let profile = Profile::new(&[2.5, 2.5, f64::NAN, 2.5], 0.0);
        assert_eq!(profile.value(0), 2.5);
        assert_eq!(profile.value(3), 2.5);
        assert!(profile.value(2).is_nan());
        let nothing = Profile::coded(&[f64::NAN, f64::INFINITY]);
        assert!(nothing.value(0).is_nan() && nothing.value(1).is_nan());
        assert!(Profile::new(&[], 1.0).is_empty());
    }

    #[test]
    fn a_quantised_profile_is_stable_when_quantised_again() {
        // A refit that keeps a phase keeps its decoded value: quantising decoded values gives
        // the same codes back.
        let values: Vec<f64> = (0..288)
            .map(|k| ((k * 37) % 101) as f64 * 0.37 - 5.0)
            .collect();
        let once = Profile::new(&values, 10.0);
        assert!(matches!(once, Profile::Coded { .. }));
        let decoded: Vec<f64> = (0..once.len()).map(|k| once.value(k)).collect();
        assert_eq!(Profile::new(&decoded, 10.0), once);
    }

    #[test]
    fn a_series_too_regular_to_round_keeps_single_precision() {
        // A square wave with no noise: any rounding would be an error of its own.
        let values: Vec<f64> = (0..288)
            .map(|k| if k < 144 { 80.0 } else { -80.0 })
            .collect();
        let profile = Profile::new(&values, 0.0);
        assert!(matches!(profile, Profile::Exact(_)));
        assert_eq!(profile.value(0), 80.0);
        assert_eq!(profile.heap_bytes(), 4 * 288);
        // Noise well above the rounding (160 / 131,068 = 0.0012): coded.
        assert!(matches!(Profile::new(&values, 0.5), Profile::Coded { .. }));
        // Noise of the same order as the rounding: not.
        assert!(matches!(Profile::new(&values, 0.05), Profile::Exact(_)));
    }
}
