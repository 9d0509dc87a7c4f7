//! Evidence that a series has stopped moving: a run of identical values where the series
//! rarely repeats itself.
//!
//! A stuck exporter, a frozen gauge or a counter whose rate fell to exactly 0 produces values
//! the forecaster finds unsurprising (each is close to the one before), so the surprise never
//! rises on a series without a cycle. What is unusual is the repetition itself. The series' own
//! history says how often a value repeats the one before: after a change (`start`) and after a
//! repeat (`carry_on`), each an exponentially weighted share (about the last thousand
//! transitions) with a prior, so that a piecewise-constant series (repeats are normal and come
//! in runs) and a noisy float series (repeats almost never happen) are each judged by their own
//! habit. Under that two-state chain, a run of `L` repeats has probability
//! `start * carry_on^(L-1)`. Some run somewhere in a long series is bound to be the rarest one,
//! so the probability is multiplied by the number of transitions it was chosen from (a
//! Bonferroni bound over a hundred windows) before its one-sided normal quantile becomes the
//! run's *deviation*, on the same scale as the surprise's, so that the episode rules and the
//! calibration of the probability treat both alike. The state is six numbers and each update is
//! O(1).

use statrs::distribution::{ContinuousCDF, Normal};

/// Weight of the newest transition in the shares: about the last thousand transitions.
const WEIGHT: f64 = 1.0 / 1000.0;

/// Transitions the shares need before a run is judged: a series' first runs say nothing about
/// its habit yet.
const WARMUP_TRANSITIONS: f64 = 100.0;

/// A run counts as evidence only if one as rare would happen less than once in this many
/// windows of the transitions the shares hold (a Bonferroni bound over a long stretch of the
/// series, not only the newest window): stuck values of a noisy series still stand out by the
/// third repeat, while count series that repeat small values at night stay quiet.
const WINDOWS_JUDGED: f64 = 100.0;

/// An exponentially weighted count of how often something happened, out of how many chances.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Share {
    happened: f64,
    chances: f64,
}

impl Share {
    fn record(&mut self, happened: bool) {
        self.record_many(happened, 1);
    }

    /// `times` records of the same outcome at once (in closed form, so a run of any length
    /// costs O(1)).
    fn record_many(&mut self, happened: bool, times: u32) {
        let keep = (1.0 - WEIGHT).powi(times.min(i32::MAX as u32) as i32);
        let added = (1.0 - keep) / WEIGHT;
        self.happened = self.happened * keep + if happened { added } else { 0.0 };
        self.chances = self.chances * keep + added;
    }

    /// The share with `prior` happenings in one chance added, so that a never-seen event is
    /// rare but not impossible.
    fn estimate(&self, prior: f64) -> f64 {
        (self.happened + prior) / (self.chances + 1.0)
    }
}

/// Per-series state of the flat-line evidence.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlatLine {
    previous: Option<f64>,
    /// Repeats of `previous` so far (0: the newest value differs from the one before).
    run: u32,
    start: Share,
    carry_on: Share,
}

impl FlatLine {
    /// Takes in the next value (NaN for a gap, which neither breaks nor extends a run) and
    /// returns the deviation of the run it ends on: 0 unless the value repeats the previous one.
    pub fn observe(&mut self, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        if let Some(previous) = self.previous {
            if previous == value {
                self.run = self.run.saturating_add(1);
            } else {
                self.end_run();
            }
        }
        self.previous = Some(value);
        self.deviation()
    }

    /// Learns a change: the run before it (if any) goes into the shares only now, so that a
    /// run is always judged by the series' habits from before it, not by its own repeats.
    fn end_run(&mut self) {
        if self.run == 0 {
            self.start.record(false);
        } else {
            self.start.record(true);
            self.carry_on.record_many(true, self.run - 1);
            self.carry_on.record(false);
        }
        self.run = 0;
    }

    /// The deviation of the current run, judged by the shares learnt before it.
    fn deviation(&self) -> f64 {
        if self.run == 0 {
            return 0.0;
        }
        // Half a repeat in one chance for a start never seen; a repeat after a repeat never
        // seen is taken to be as likely as one after a change.
        let start = self.start.estimate(0.5);
        let carry_on = self.carry_on.estimate(start);
        let transitions = self.start.chances + self.carry_on.chances;
        if transitions < WARMUP_TRANSITIONS {
            return 0.0;
        }
        let ln_tail = start.ln()
            + f64::from(self.run - 1) * carry_on.ln()
            + (transitions * WINDOWS_JUDGED).ln();
        deviation_of_tail(ln_tail)
    }
}

/// The one-sided standard normal quantile of a tail probability given by its logarithm: the `z`
/// with `P(Z > z) = exp(ln_tail)`. Beyond what `f64` holds, the asymptote `sqrt(-2 ln p)`.
fn deviation_of_tail(ln_tail: f64) -> f64 {
    if ln_tail >= 0.0 {
        return 0.0;
    }
    if ln_tail > -700.0 {
        if let Ok(normal) = Normal::new(0.0, 1.0) {
            return -normal.inverse_cdf(ln_tail.exp());
        }
    }
    (-2.0 * ln_tail).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform noise in [-0.5, 0.5) from splitmix64, whose consecutive outputs are independent
    /// (`synthetic::uniform_noise` is a Weyl sequence: consecutive values are spread evenly, so
    /// they almost never repeat once rounded, which is what this test needs them to do).
    fn uniform_noise(i: usize, seed: u64) -> f64 {
        let mut z = (i as u64)
            .wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }

    #[test]
    fn a_noisy_series_that_repeats_itself_is_unusual_at_once() {
        let mut flat = FlatLine::default();
        for i in 0..2_000 {
            assert_eq!(flat.observe(50.0 + uniform_noise(i, 1)), 0.0);
        }
        let value = 50.3;
        flat.observe(value);
        let first = flat.observe(value);
        let second = flat.observe(value);
        let third = flat.observe(value);
        // One or two exact repeats of a noisy float can be chance; three are past the onset
        // level.
        assert!(first < 3.0 && second < 3.0, "{first} {second}");
        assert!(third > 3.0 && third > second, "{second} -> {third}");
    }

    #[test]
    fn a_series_that_often_repeats_needs_a_long_run() {
        // Values rounded to whole numbers: a repeat now and then is ordinary.
        let mut flat = FlatLine::default();
        let mut largest: f64 = 0.0;
        for i in 0..3_000 {
            largest = largest.max(flat.observe((10.0 + 3.0 * uniform_noise(i, 2)).round()));
        }
        assert!(largest < 3.0, "an ordinary repeat scored {largest}");
        // A third of all values repeat the one before: it takes a run of about 18 before one
        // as long is rarer than once in a hundred windows.
        let runs: Vec<f64> = (0..24).map(|_| flat.observe(11.0)).collect();
        assert!(runs[9] < 3.0, "{runs:?}");
        assert!(runs[23] > 3.0, "{runs:?}");
    }

    #[test]
    fn a_piecewise_constant_series_is_never_flagged_for_holding_its_value() {
        let mut flat = FlatLine::default();
        let mut largest: f64 = 0.0;
        for i in 0..5_000 {
            largest = largest.max(flat.observe(f64::from((i / 60) as u32 % 3)));
        }
        assert!(largest < 3.0, "{largest}");
    }

    #[test]
    fn gaps_neither_break_nor_extend_a_run_and_a_change_ends_it() {
        let mut flat = FlatLine::default();
        for i in 0..2_000 {
            flat.observe(uniform_noise(i, 3));
        }
        flat.observe(7.0);
        let one = flat.observe(7.0);
        assert_eq!(flat.observe(f64::NAN), 0.0);
        let two = flat.observe(7.0);
        assert!(two > one, "{one} -> {two}");
        assert_eq!(flat.observe(8.0), 0.0);
    }

    #[test]
    fn extreme_tails_stay_finite_and_ordered() {
        assert_eq!(deviation_of_tail(0.0), 0.0);
        let ordinary = deviation_of_tail((0.5f64).ln());
        let rare = deviation_of_tail(-50.0);
        let absurd = deviation_of_tail(-5_000.0);
        assert!(ordinary.abs() < 1e-9, "{ordinary}");
        assert!(
            rare > 9.0 && absurd > rare && absurd.is_finite(),
            "{rare} {absurd}"
        );
    }
}
