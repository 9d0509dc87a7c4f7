//! One seasonal profile, in as few bits a phase as the series' noise allows.
//!
//! A daily profile at one-minute steps has 1,440 phases; kept as `f32` it was 5.6 KB, the
//! second largest part of a tracked series after its window. A profile learnt from noisy
//! cycles carries no information in its seventh significant digit. So when the series' noise
//! allows it, each phase is a code from the profile's lowest value in steps of 2 % of the
//! cycle-to-cycle noise (never finer than the profile's range over 65,534): a phase is then
//! within 1 % of the noise of what the decomposition computed, which adds a
//! thirty-thousandth to the variance a model sees, and the codes take as few bits as the
//! profile's range needs (a profile swinging over 20 times the noise: 10 bits a phase, a
//! daily profile at `1m` 1.8 KB). A series too regular for that (a noiseless synthetic
//! shape, a square wave: its range is more than 65,534 × 2 % of its noise) keeps `f32`
//! phases: rounding would give it errors of its own, which its anomaly scoring would read as
//! surprise. Forecasts and scores read the decoded value, always the same one, so a model
//! stays consistent with what it was fitted on.

use crate::bitpack;

/// The largest code of a value (the widest codes are 16 bits, the all-ones one is a missing
/// phase's).
const TOP: u64 = u16::MAX as u64 - 1;

/// The coarsest step, as a share of the noise: phases move by at most half of it.
const NOISE_STEP: f64 = 0.02;

/// A seasonal profile: `value(k)` is the seasonal value at phase `k`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Profile {
    /// `f32` phases, for series too regular to round.
    Exact(Box<[f32]>),
    /// `base + code × step`, `width`-bit codes packed in `words` ([`bitpack`]); the all-ones
    /// code for a phase without a value.
    Coded {
        base: f64,
        step: f64,
        width: u8,
        phases: u32,
        words: Box<[u64]>,
    },
}

impl Profile {
    /// The profile of `values` (one per phase), coded within 1 % of `noise` (the series'
    /// typical deviation from its profile, in its unit) when 16-bit codes suffice for that,
    /// else as `f32`. Non-finite values, which no decomposition produces, read as NaN.
    pub fn new(values: &[f64], noise: f64) -> Profile {
        let finite = || values.iter().copied().filter(|v| v.is_finite());
        let lowest = finite().fold(f64::INFINITY, f64::min);
        let highest = finite().fold(f64::NEG_INFINITY, f64::max);
        let range = highest - lowest;
        let finest = range / TOP as f64;
        let coarsest = NOISE_STEP * noise;
        // Unknown noise (infinite, NaN: one cycle seen) or too little of it for 16 bits.
        let codable = lowest.is_finite() && coarsest.is_finite() && coarsest >= finest;
        if !codable || values.len() > u32::MAX as usize {
            return Profile::exact(values);
        }
        // A flat profile has one code (a step of 0 reads every phase as the base).
        let step = if range > 0.0 { coarsest } else { 0.0 };
        let code = |v: f64| {
            if step > 0.0 {
                ((v - lowest) / step).round().clamp(0.0, TOP as f64) as u64
            } else {
                0
            }
        };
        let largest = code(highest);
        // The missing code is all ones, above every value's.
        let width = u64::BITS - (largest + 1).leading_zeros();
        let missing = (1 << width) - 1;
        let mut words = Vec::with_capacity(bitpack::words_for(values.len(), width));
        bitpack::pack(
            values
                .iter()
                .map(|&v| if v.is_finite() { code(v) } else { missing }),
            width,
            &mut words,
        );
        Profile::Coded {
            base: lowest,
            step,
            width: width as u8,
            phases: values.len() as u32,
            words: words.into_boxed_slice(),
        }
    }

    /// `f32` phases, whatever the noise (a profile that is not kept needs no coding).
    pub fn exact(values: &[f64]) -> Profile {
        Profile::Exact(
            values
                .iter()
                .map(|&v| if v.is_finite() { v as f32 } else { f32::NAN })
                .collect(),
        )
    }

    /// Phases in the profile (its period).
    pub fn len(&self) -> usize {
        match self {
            Profile::Exact(values) => values.len(),
            Profile::Coded { phases, .. } => *phases as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value at `phase` (NaN where none was given).
    pub fn value(&self, phase: usize) -> f64 {
        match self {
            Profile::Exact(values) => f64::from(values[phase]),
            Profile::Coded {
                base,
                step,
                width,
                words,
                ..
            } => {
                let width = u32::from(*width);
                match bitpack::read(words, width, phase) {
                    code if code == (1 << width) - 1 => f64::NAN,
                    code => base + code as f64 * step,
                }
            }
        }
    }

    /// Bytes on the heap.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Profile::Exact(values) => std::mem::size_of_val(&**values),
            Profile::Coded { words, .. } => std::mem::size_of_val(&**words),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_is_within_one_percent_of_the_noise_in_few_bits() {
        let values: Vec<f64> = (0..1440)
            .map(|k| 10.0 * (k as f64 * std::f64::consts::TAU / 1440.0).sin() + 0.123_456_789)
            .collect();
        // A swing of 20 over a noise of 1: steps of 0.02, 1,001 codes, 10 bits.
        let profile = Profile::new(&values, 1.0);
        assert!(
            matches!(profile, Profile::Coded { width: 10, .. }),
            "{profile:?}"
        );
        assert_eq!(profile.len(), 1440);
        for (k, v) in values.iter().enumerate() {
            assert!(
                (profile.value(k) - v).abs() <= 0.01 * 1.000_001,
                "phase {k}: {} against {v}",
                profile.value(k)
            );
        }
        // The lowest value is the base, exactly.
        let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
        let at_lowest = values.iter().position(|&v| v == lowest).unwrap();
        assert_eq!(profile.value(at_lowest), lowest);
        assert_eq!(profile.heap_bytes(), 1440 * 10 / 8);
        // Less noise, finer steps, more bits (steps of 0.0004: 50,000 codes).
        let quieter = Profile::new(&values, 0.02);
        assert!(
            matches!(quieter, Profile::Coded { width: 16, .. }),
            "{quieter:?}"
        );
    }

    #[test]
    fn a_flat_profile_is_exact_and_missing_phases_stay_missing() {
        let profile = Profile::new(&[2.5, 2.5, f64::NAN, 2.5], 1.0);
        assert!(matches!(profile, Profile::Coded { width: 1, .. }));
        assert_eq!(profile.value(0), 2.5);
        assert_eq!(profile.value(3), 2.5);
        assert!(profile.value(2).is_nan());
        // Noise that could not be measured keeps single precision.
        let unknown = Profile::new(&[1.0, 2.0, 3.0], f64::INFINITY);
        assert!(matches!(unknown, Profile::Exact(_)));
        assert_eq!(unknown.value(1), 2.0);
        assert!(matches!(
            Profile::new(&[1.0, 2.0], f64::NAN),
            Profile::Exact(_)
        ));
        let nothing = Profile::new(&[f64::NAN, f64::INFINITY], 1.0);
        assert!(nothing.value(0).is_nan() && nothing.value(1).is_nan());
        assert!(Profile::new(&[], 1.0).is_empty());
    }

    #[test]
    fn a_coded_profile_is_stable_when_coded_again() {
        // A refit that keeps a phase keeps its decoded value: coding decoded values gives
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
        // Noise well above 160 / 65,534 / 2 %: coded.
        assert!(matches!(Profile::new(&values, 0.5), Profile::Coded { .. }));
        // Noise of the same order as the finest rounding: not.
        assert!(matches!(Profile::new(&values, 0.05), Profile::Exact(_)));
    }
}
