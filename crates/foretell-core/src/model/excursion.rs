//! The current excursion of a series outside its band: when it began, how far it went, how
//! much of it is missing. Kept online per series in constant space, so an alert on a tracked
//! series finds its evidence without replaying history.

use super::Observation;

/// Consecutive points back inside the band that end an excursion. Shorter dips keep it open,
/// so a flapping series is one excursion, as an alert on it is one alert.
pub const QUIET_POINTS: u32 = 5;

/// The newest excursion of one series; all zero while the series is inside its band.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Excursion {
    /// Points since the excursion's first point outside the band, that point included (0: no
    /// excursion is open).
    pub length: u32,
    /// Points of it that were outside the band.
    pub outside: u32,
    /// Points of it that were missing (gaps, NaN).
    pub missing: u32,
    /// Largest |one-step error| in it, in robust standard deviations.
    pub peak_sigmas: f64,
    /// Largest anomaly probability in it.
    pub peak_probability: f64,
    /// One-step error of the newest finite point, signed, in robust standard deviations.
    pub latest_sigmas: f64,
    /// Missing points at the end of the series right now (the series has gone quiet).
    pub trailing_missing: u32,
    /// Sign of the excursion's largest deviation: +1 above the band, -1 below, 0 none.
    pub direction: i8,
    /// Points back inside the band since the last one outside it.
    pub quiet: u32,
    /// How far the series went beyond its recent range lately, as a share of the range's width
    /// (`SurpriseHistory::recent_range_excess`, set by whoever feeds both; 0 inside it).
    pub range_excess: f64,
    /// How familiar the stretch of values that opened an anomaly episode during this excursion
    /// was (the most familiar, if several did; outside an excursion, at the newest point only): 0 never seen, 1 an exact repeat of what the
    /// series did on several earlier occasions ([`familiarity`](super::familiarity)); the
    /// probability of that onset was scaled by one minus this. Set by whoever applies it.
    pub familiarity: f64,
}

impl Excursion {
    /// Takes in the next point's observation and the anomaly probability after it.
    pub fn observe(&mut self, observation: &Observation, probability: f64) {
        if !self.is_open() {
            self.familiarity = 0.0;
        }
        let Some(score) = observation.score else {
            self.trailing_missing = self.trailing_missing.saturating_add(1);
            if self.length > 0 {
                self.length = self.length.saturating_add(1);
                self.missing = self.missing.saturating_add(1);
            }
            return;
        };
        self.trailing_missing = 0;
        let sigmas = if observation.surprise.is_finite() {
            observation.surprise
        } else {
            0.0
        };
        self.latest_sigmas = sigmas;
        if score > 1.0 {
            if self.length == 0 {
                *self = Excursion {
                    latest_sigmas: sigmas,
                    ..Excursion::default()
                };
            }
            self.length = self.length.saturating_add(1);
            self.outside = self.outside.saturating_add(1);
            self.quiet = 0;
            if sigmas.abs() >= self.peak_sigmas {
                self.peak_sigmas = sigmas.abs();
                self.direction = if sigmas >= 0.0 { 1 } else { -1 };
            }
            self.peak_probability = self.peak_probability.max(probability);
        } else if self.length > 0 {
            self.quiet += 1;
            if self.quiet >= QUIET_POINTS {
                *self = Excursion {
                    latest_sigmas: sigmas,
                    ..Excursion::default()
                };
            } else {
                self.length = self.length.saturating_add(1);
                self.peak_probability = self.peak_probability.max(probability);
            }
        }
    }

    /// True while an excursion is open.
    pub fn is_open(&self) -> bool {
        self.length > 0
    }

    /// Records how familiar the stretch that raised the probability at the newest point was
    /// (0 never seen; the probability was scaled by one minus it). An open excursion keeps its
    /// most familiar onset; outside one (an onset the series reached inside its band) it holds
    /// for that point only, so a closed excursion never lends it to a later alert's explanation.
    pub fn note_familiarity(&mut self, familiarity: f64) {
        self.familiarity = self.familiarity.max(familiarity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{anomaly_score, Band};

    const BAND: Band = Band {
        expected: 0.0,
        lower: -2.0,
        upper: 2.0,
    };

    fn observation(value: f64) -> Observation {
        Observation {
            band: BAND,
            score: anomaly_score(&BAND, value),
            // sigma 1: the band is two standard deviations wide on each side.
            surprise: if value.is_finite() { value } else { f64::NAN },
        }
    }

    #[test]
    fn familiarity_lasts_for_an_open_excursion_and_for_one_point_outside_one() {
        let mut excursion = Excursion::default();
        // Inside the band: it holds for the point it was noted at.
        excursion.observe(&observation(0.5), 0.9);
        excursion.note_familiarity(0.7);
        assert_eq!(excursion.familiarity, 0.7);
        excursion.observe(&observation(0.5), 0.9);
        assert_eq!(excursion.familiarity, 0.0);
        // Open: the most familiar onset of the excursion is kept.
        excursion.observe(&observation(5.0), 0.9);
        excursion.note_familiarity(0.4);
        excursion.observe(&observation(5.0), 0.9);
        excursion.note_familiarity(0.0);
        excursion.observe(&observation(0.0), 0.9);
        assert_eq!(excursion.familiarity, 0.4);
        // Closed by enough quiet points: cleared.
        for _ in 1..QUIET_POINTS {
            excursion.observe(&observation(0.0), 0.1);
        }
        assert!(!excursion.is_open());
        assert_eq!(excursion.familiarity, 0.0);
        excursion.observe(&observation(0.0), 0.1);
        assert_eq!(excursion.familiarity, 0.0);
    }

    fn run(values: &[f64]) -> Excursion {
        let mut excursion = Excursion::default();
        for (i, value) in values.iter().enumerate() {
            excursion.observe(&observation(*value), i as f64 / 100.0);
        }
        excursion
    }

    #[test]
    fn stays_closed_inside_the_band() {
        let excursion = run(&[0.5, -1.0, 1.9, 0.0]);
        assert!(!excursion.is_open());
        assert_eq!(excursion.length, 0);
        assert_eq!(excursion.latest_sigmas, 0.0);
    }

    #[test]
    fn opens_outside_and_tracks_its_peak_direction_and_length() {
        let excursion = run(&[0.0, 3.0, -5.0, 4.0, 1.0]);
        assert!(excursion.is_open());
        assert_eq!(excursion.length, 4);
        assert_eq!(excursion.outside, 3);
        assert_eq!(excursion.peak_sigmas, 5.0);
        assert_eq!(excursion.direction, -1);
        assert_eq!(excursion.latest_sigmas, 1.0);
        assert_eq!(
            excursion.peak_probability, 0.04,
            "probability after the last point counts while it is open"
        );
    }

    #[test]
    fn short_dips_keep_it_open_and_quiet_points_close_it() {
        let mut values = vec![3.0, 0.0, 0.0, 3.0];
        assert_eq!(run(&values).length, 4, "a dip of two points keeps it open");
        values.extend([0.0; QUIET_POINTS as usize]);
        let closed = run(&values);
        assert!(!closed.is_open());
        assert_eq!(closed.peak_sigmas, 0.0);
    }

    #[test]
    fn gaps_count_as_missing_inside_an_excursion_and_as_trailing_at_the_end() {
        let excursion = run(&[3.0, f64::NAN, 3.0, f64::NAN, f64::NAN]);
        assert_eq!(
            (
                excursion.length,
                excursion.missing,
                excursion.trailing_missing
            ),
            (5, 3, 2)
        );
        let quiet = run(&[0.0, f64::NAN]);
        assert_eq!(
            (quiet.length, quiet.missing, quiet.trailing_missing),
            (0, 0, 1)
        );
    }
}
