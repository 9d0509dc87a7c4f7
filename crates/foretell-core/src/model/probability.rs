//! The anomaly probability: how likely it is that the newest point opens a real anomaly,
//! judged by how unusual the recent surprise of the series is compared with the surprise that
//! series usually shows.
//!
//! Every observation has a surprise `|z|`, its one-step forecast error in robust standard
//! deviations. One series' surprises are not comparable with another's (heavy tails, model
//! misfit), so a fixed cut on `|z|` either floods noisy series with alerts or misses subtle
//! ones. As in Numenta's "anomaly likelihood" (Ahmad et al. 2017), a short-term average of the
//! surprise is compared with the long-term distribution of that same series' surprise: the
//! **deviation** `d = (short - long_mean) / long_sd`. Both averages are exponentially weighted.
//!
//! The deviation is turned into a probability by a calibration learnt from labelled incidents
//! ([`Calibration`]): of the alerts that a deviation `d` would open, the share that were real.
//! It is 0 when the recent surprise is no larger than usual (`d <= 0`), small for ordinary
//! noise, about 0.22 at the onset level (three long-run standard deviations) and 0.5 at 8.5.
//! `bench/probability_calibration.py` measures and refits it on files the fit never saw.
//!
//! The probability marks the *onset* of an anomaly. Once the deviation passes the onset level,
//! the series is in a known episode for `refractory_points`: the probability then stays at 0
//! unless the episode escalates (the surprise's deviation reaches `escalation` times the one
//! that opened it, which opens a new episode). Without this, the aftermath of every incident
//! (the model re-learning a new level, a burst of odd points) reads as a stream of new
//! anomalies; `foretell_anomaly_score` still shows how far outside the band each point is. The
//! state is a handful of numbers per series and each update is O(1).
//!
//! A series that stops moving (a stuck exporter, a rate that fell to exactly 0) is not
//! surprising point by point; the run of repeated values is what is unusual. Its own deviation
//! ([`FlatLine`]) joins the surprise's: the larger of the two goes through the episodes and the
//! calibration.
//!
//! A value outside everything the series did in the last week, where the model's band did not
//! expect it, is evidence of its own ([`RecentRange`]), with its own calibration and its own
//! quiet period: the probability is the larger of the two. Breaks of the range are rarer than
//! the surprise's onsets and, on labelled incidents, real more often.

use super::flatline::FlatLine;
use super::forecaster::Observation;
use super::range::RecentRange;

/// Surprises are capped so that one absurd point (a counter glitch) cannot dominate the
/// long-term statistics for thousands of points.
const SURPRISE_CAP: f64 = 30.0;

/// Tuning of the probability, validated by construction.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProbabilitySettings {
    /// Weight of the newest surprise in the short-term average (1 = the point alone).
    pub short_weight: f64,
    /// Weight of the newest surprise in the long-term mean and variance.
    pub long_weight: f64,
    /// Surprises the long-term statistics need before any probability is given.
    pub warmup: u32,
    /// Deviation (the short-term average against the long-term statistics, in long-term
    /// standard deviations) at which an anomaly episode opens.
    pub onset_sigmas: f64,
    /// Points an episode lasts once opened (0 turns episodes off).
    pub refractory_points: u32,
    /// Within an episode, a deviation this many times the opening one opens a new episode.
    pub escalation: f64,
    /// Deviation to probability.
    pub calibration: Calibration,
}

impl Default for ProbabilitySettings {
    fn default() -> Self {
        ProbabilitySettings {
            short_weight: 0.35,
            long_weight: 1.0 / 1000.0,
            warmup: 50,
            onset_sigmas: 3.0,
            refractory_points: 200,
            escalation: 2.0,
            calibration: Calibration::default(),
        }
    }
}

impl ProbabilitySettings {
    /// The probability at which an episode opens.
    pub fn onset_probability(&self) -> f64 {
        self.calibration.probability(self.onset_sigmas)
    }
}

/// How a deviation becomes a probability: `p = d^s / (d^s + h^s)` for `d > 0`, else 0, with
/// `h` the deviation at which half the alerts opened are real and `s` the steepness. This is
/// a logistic regression on `ln d`. A logistic in `d` itself predicted held-out incidents about
/// as well (docs/anomaly-probability.md), but it gives every ordinary point the share of real
/// alerts among candidate onsets (about 0.06), while `ln d` goes to 0 as the excess surprise
/// does, which is what a point with no excess surprise should read.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Calibration {
    /// The deviation at which the probability is one half.
    pub half_at: f64,
    /// How fast the probability rises around `half_at` (the logistic slope on `ln d`).
    pub steepness: f64,
}

/// Fitted by `bench/probability_calibration.py` on the public NAB files of realKnownCause,
/// artificialWithAnomaly and artificialNoAnomaly (alerts opened at a deviation of 2 or more,
/// real when they begin inside a labelled anomaly window) and checked on the other four
/// categories' files.
pub const CALIBRATION: Calibration = Calibration {
    half_at: 8.48,
    steepness: 1.24,
};

impl Default for Calibration {
    fn default() -> Self {
        CALIBRATION
    }
}

impl Calibration {
    /// The probability for a deviation (0 for a deviation at or below 0, or NaN).
    pub fn probability(&self, deviation: f64) -> f64 {
        if deviation.is_nan() || deviation <= 0.0 {
            return 0.0;
        }
        // (h / d)^s, computed in logs so that huge deviations give exactly 1, not NaN.
        let odds_against = (self.steepness * (self.half_at.ln() - deviation.ln())).exp();
        (1.0 / (1.0 + odds_against)).clamp(0.0, 1.0)
    }
}

/// Per-series state of the anomaly probability.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SurpriseHistory {
    settings: ProbabilitySettings,
    short: f64,
    long_mean: f64,
    long_variance: f64,
    seen: u32,
    /// Points left in the current episode (0: none open).
    episode_left: u32,
    /// The deviation that opened the current episode.
    episode_deviation: f64,
    /// Runs of repeated values.
    flat: FlatLine,
    /// Breaks of the recent range.
    range: RecentRange,
}

impl SurpriseHistory {
    pub fn new(settings: ProbabilitySettings) -> Self {
        SurpriseHistory {
            settings,
            short: 0.0,
            long_mean: 0.0,
            long_variance: 0.0,
            seen: 0,
            episode_left: 0,
            episode_deviation: 0.0,
            flat: FlatLine::default(),
            range: RecentRange::new(settings.refractory_points),
        }
    }

    /// Adds a surprise without producing a probability (used to warm up from a fit's in-sample
    /// errors, which are all in the past).
    pub fn learn(&mut self, surprise: f64) {
        if surprise.is_nan() {
            return;
        }
        let s = surprise.abs().min(SURPRISE_CAP);
        let short_weight = if self.seen == 0 {
            1.0
        } else {
            self.settings.short_weight
        };
        self.short += short_weight * (s - self.short);
        // Until the long window is full, weight like a plain mean so early values count fully.
        let long_weight = self
            .settings
            .long_weight
            .max(1.0 / (f64::from(self.seen) + 1.0));
        let delta = s - self.long_mean;
        self.long_mean += long_weight * delta;
        self.long_variance =
            (1.0 - long_weight) * (self.long_variance + long_weight * delta * delta);
        self.seen = self.seen.saturating_add(1);
    }

    /// Adds a value of the series to the flat-line statistics and the recent range without
    /// producing a probability (used to warm up from the window a first fit learnt from).
    pub fn learn_value(&mut self, value: f64) {
        self.flat.observe(value);
        self.range.learn(value);
    }

    /// Scores a new point, given what the forecaster observed of it and its value (NaN for a
    /// missing point; a surprise of +Inf, a change of a constant series, counts as the cap), and
    /// then learns it. The probability is judged against the statistics from before this point,
    /// so a sudden jump is not diluted by itself. The surprise's deviation is the larger of the
    /// surprise's own and that of a run of repeated values ([`FlatLine`]), so a series that stops
    /// moving opens an episode too; a break of the recent range outside the band
    /// ([`RecentRange`]) is judged beside it, and the larger probability is returned.
    pub fn observe(&mut self, observation: &Observation, value: f64) -> f64 {
        let range = self.range.observe(value, &observation.band);
        range.max(self.observe_surprise(observation.surprise, value))
    }

    /// The probability at which an episode opens (see [`ProbabilitySettings`]).
    pub fn onset_probability(&self) -> f64 {
        self.settings.onset_probability()
    }

    /// See [`RecentRange::recent_excess`].
    pub fn recent_range_excess(&self) -> f64 {
        self.range.recent_excess()
    }

    fn observe_surprise(&mut self, surprise: f64, value: f64) -> f64 {
        let flat = self.flat.observe(value);
        if surprise.is_nan() {
            self.episode_left = self.episode_left.saturating_sub(1);
            return 0.0;
        }
        let s = surprise.abs().min(SURPRISE_CAP);
        let warm = self.seen >= self.settings.warmup;
        let short = self.short + self.settings.short_weight * (s - self.short);
        let (mean, sd) = (self.long_mean, self.long_variance.sqrt());
        self.learn(surprise);
        if !warm {
            return 0.0;
        }
        // A floor on the spread: a series that was perfectly predictable still needs a real
        // surprise (a tenth of a standard deviation) before it is called anomalous.
        let deviation = self.through_episodes((short - mean) / sd.max(0.1), flat);
        self.settings.calibration.probability(deviation)
    }

    /// Opens, escalates or ages the anomaly episode; returns the deviation to report. Either
    /// kind of evidence opens an episode; only the surprise escalates one, because a run of
    /// repeated values grows more unusual with every repeat while it is still the same incident.
    fn through_episodes(&mut self, surprise: f64, flat: f64) -> f64 {
        let settings = &self.settings;
        let deviation = surprise.max(flat);
        if self.episode_left > 0 {
            self.episode_left -= 1;
            if surprise >= settings.escalation * self.episode_deviation {
                self.open_episode(surprise);
                return surprise;
            }
            return deviation.min(0.0);
        }
        if settings.refractory_points > 0 && deviation >= settings.onset_sigmas {
            self.open_episode(deviation);
        }
        deviation
    }

    fn open_episode(&mut self, deviation: f64) {
        self.episode_left = self.settings.refractory_points;
        self.episode_deviation = deviation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The surprise tests call `observe_surprise` with no values (NaN): the flat-line evidence
    // stays silent and the range is not consulted.
    fn warmed(surprises: impl Iterator<Item = f64>) -> SurpriseHistory {
        let mut history = SurpriseHistory::new(ProbabilitySettings::default());
        for s in surprises {
            history.learn(s);
        }
        history
    }

    #[test]
    fn nothing_before_warmup_and_nothing_for_gaps() {
        let mut history = SurpriseHistory::new(ProbabilitySettings::default());
        assert_eq!(history.observe_surprise(50.0, f64::NAN), 0.0);
        let mut history = warmed((0..100).map(|i| (i % 3) as f64 * 0.5));
        assert_eq!(history.observe_surprise(f64::NAN, f64::NAN), 0.0);
    }

    fn onset() -> f64 {
        ProbabilitySettings::default().onset_probability()
    }

    #[test]
    fn a_large_surprise_is_probable_and_an_ordinary_one_is_not() {
        let mut history = warmed(ordinary());
        let usual = history.observe_surprise(0.7, f64::NAN);
        assert!(usual < 0.05, "{usual}");
        let mut history = warmed(ordinary());
        let spike = history.observe_surprise(8.0, f64::NAN);
        assert!(spike >= onset(), "{spike}");
    }

    #[test]
    fn a_sustained_moderate_surprise_builds_up() {
        let mut history = warmed(ordinary());
        let first = history.observe_surprise(2.5, f64::NAN);
        let mut last = first;
        for _ in 0..5 {
            last = history.observe_surprise(2.5, f64::NAN).max(last);
        }
        assert!(last > first, "{first} -> {last}");
        assert!(last >= onset(), "{last}");
    }

    #[test]
    fn probabilities_stay_in_the_unit_interval() {
        let mut history = warmed((0..100).map(|_| 0.0));
        for s in [0.0, 1e300, f64::INFINITY, -5.0, 3.0] {
            let p = history.observe_surprise(s, f64::NAN);
            assert!((0.0..=1.0).contains(&p), "{s} -> {p}");
        }
    }

    #[test]
    fn the_calibration_is_zero_without_excess_surprise_one_half_at_its_midpoint_and_rises() {
        let calibration = Calibration::default();
        assert_eq!(calibration.probability(0.0), 0.0);
        assert_eq!(calibration.probability(-3.0), 0.0);
        assert_eq!(calibration.probability(f64::NAN), 0.0);
        assert!((calibration.probability(calibration.half_at) - 0.5).abs() < 1e-12);
        assert_eq!(calibration.probability(f64::INFINITY), 1.0);
        assert_eq!(calibration.probability(1e300), 1.0);
        let curve: Vec<f64> = (1..=60)
            .map(|d| calibration.probability(f64::from(d) * 0.25))
            .collect();
        assert!(curve.windows(2).all(|w| w[0] < w[1]), "{curve:?}");
        // The onset level (three long-run standard deviations) is an alert that is real about
        // one time in five, not a near-certainty.
        let at_onset = onset();
        assert!((0.15..0.35).contains(&at_onset), "{at_onset}");
    }

    /// A deterministic stream of |N(0, 1)| surprises (Box-Muller on a linear congruential
    /// generator), so the test needs no random crate and never flakes.
    fn gaussian_surprises(n: usize) -> Vec<f64> {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut uniform = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (uniform(), uniform());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()).abs()
            })
            .collect()
    }

    #[test]
    fn ordinary_points_sit_near_zero_and_injected_incidents_stand_out() {
        let mut surprises = gaussian_surprises(6_000);
        let incidents: Vec<usize> = (1..=10).map(|k| k * 500 + 250).collect();
        for &at in &incidents {
            surprises[at] = 15.0;
        }
        let mut history = SurpriseHistory::new(ProbabilitySettings::default());
        surprises[..1_000].iter().for_each(|s| history.learn(*s));
        let probabilities: Vec<f64> = surprises[1_000..]
            .iter()
            .map(|s| history.observe_surprise(*s, f64::NAN))
            .collect();
        let (mut ordinary_sum, mut ordinary_count) = (0.0, 0);
        for (k, p) in probabilities.iter().enumerate() {
            let at = k + 1_000;
            if incidents.contains(&at) {
                assert!(*p >= onset(), "incident at {at}: {p}");
            } else if incidents.iter().all(|i| at < *i || at > i + 200) {
                ordinary_sum += p;
                ordinary_count += 1;
            }
        }
        let mean = ordinary_sum / f64::from(ordinary_count);
        assert!(mean < 0.02, "mean probability on ordinary points {mean}");
        let loud = probabilities.iter().filter(|p| **p >= onset()).count();
        assert!(
            loud <= incidents.len() + 3,
            "{loud} onsets for {} incidents",
            incidents.len()
        );
    }

    #[test]
    fn a_series_that_stops_moving_opens_one_episode_that_its_growing_run_does_not_escalate() {
        let mut history = SurpriseHistory::new(ProbabilitySettings::default());
        // A noisy series: every value differs from the one before, surprises are ordinary.
        let values = gaussian_surprises(2_000);
        for (s, v) in ordinary().zip(values.iter()) {
            history.learn(s);
            history.learn_value(*v);
        }
        let quiet: Vec<f64> = ordinary()
            .zip(values[500..].iter())
            .take(300)
            .map(|(s, v)| history.observe_surprise(s, *v + 10.0))
            .collect();
        assert!(quiet.iter().all(|p| *p < onset()), "{quiet:?}");
        // Stuck: the value repeats and the surprise stays ordinary (the forecast follows it).
        let stuck: Vec<f64> = ordinary()
            .take(60)
            .map(|s| history.observe_surprise(s, 42.0))
            .collect();
        let onsets: Vec<usize> = (0..stuck.len()).filter(|i| stuck[*i] >= onset()).collect();
        assert_eq!(onsets.len(), 1, "{stuck:?}");
        assert!(onsets[0] <= 3, "{onsets:?}");
    }

    /// An observation with an ordinary surprise for a series that wanders between 10 and 20.
    fn observed(surprise: f64, expected: f64, half_width: f64) -> Observation {
        Observation {
            band: crate::model::Band {
                expected,
                lower: expected - half_width,
                upper: expected + half_width,
            },
            score: Some(1.0),
            surprise,
        }
    }

    #[test]
    fn a_break_of_the_recent_range_outside_the_band_is_probable_on_its_own() {
        // A bursty series whose surprises are ordinary: the values wander between 10 and 20.
        let mut history = warmed(ordinary());
        let values = gaussian_surprises(1_000);
        values
            .iter()
            .for_each(|v| history.learn_value(10.0 + 3.0 * v));
        // An ordinary surprise, but a value far above anything seen and outside the band.
        let unexpected = history.observe(&observed(0.9, 15.0, 10.0), 60.0);
        assert!(unexpected >= onset(), "{unexpected}");
        // The same value inside the band (a trend the model foresaw) is not evidence.
        let mut history = warmed(ordinary());
        values
            .iter()
            .for_each(|v| history.learn_value(10.0 + 3.0 * v));
        let foreseen = history.observe(&observed(0.9, 55.0, 10.0), 60.0);
        assert!(foreseen < onset(), "{foreseen}");
    }

    fn ordinary() -> impl Iterator<Item = f64> + Clone {
        (0..500).map(|i| [0.2, 0.9, 0.5, 1.4, 0.1, 0.7][i % 6])
    }

    #[test]
    fn an_episode_reports_its_onset_once_then_stays_quiet_until_it_ends() {
        let settings = ProbabilitySettings {
            refractory_points: 20,
            ..ProbabilitySettings::default()
        };
        let mut history = SurpriseHistory::new(settings);
        ordinary().for_each(|s| history.learn(s));
        assert!(history.observe_surprise(8.0, f64::NAN) >= onset());
        // The same surprise again belongs to the open episode.
        let during: Vec<f64> = (0..19)
            .map(|_| history.observe_surprise(8.0, f64::NAN))
            .collect();
        assert!(during.iter().all(|p| *p == 0.0), "{during:?}");
        // The episode is over: quiet points, then a new incident is an onset again.
        ordinary().take(300).for_each(|s| {
            history.observe_surprise(s, f64::NAN);
        });
        assert!(history.observe_surprise(20.0, f64::NAN) >= onset());
    }

    #[test]
    fn an_escalating_episode_reports_again() {
        let mut history = warmed(ordinary());
        let opening = history.observe_surprise(5.0, f64::NAN);
        assert!(opening >= onset(), "{opening}");
        assert_eq!(history.observe_surprise(5.0, f64::NAN), 0.0);
        let escalation = history.observe_surprise(30.0, f64::NAN);
        assert!(escalation > opening, "{escalation}");
    }

    #[test]
    fn without_a_refractory_period_every_unusual_point_is_reported() {
        let settings = ProbabilitySettings {
            refractory_points: 0,
            ..ProbabilitySettings::default()
        };
        let mut history = SurpriseHistory::new(settings);
        ordinary().for_each(|s| history.learn(s));
        let reports: Vec<f64> = (0..5)
            .map(|_| history.observe_surprise(8.0, f64::NAN))
            .collect();
        assert!(reports.iter().all(|p| *p >= onset()), "{reports:?}");
    }
}
