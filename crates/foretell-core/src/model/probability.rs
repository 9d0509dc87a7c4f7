//! The anomaly probability: how unusual the recent surprise of a series is, compared with the
//! surprise that series usually shows.
//!
//! Every observation has a surprise `|z|`, its one-step forecast error in robust standard
//! deviations. One series' surprises are not comparable with another's (heavy tails, model
//! misfit), so a fixed cut on `|z|` either floods noisy series with alerts or misses subtle
//! ones. As in Numenta's "anomaly likelihood" (Ahmad et al. 2017), the probability compares a
//! short-term average of the surprise with the long-term distribution of that same series'
//! surprise: `p = Φ((short - long_mean) / long_sd)`. Both averages are exponentially weighted.
//!
//! The probability marks the *onset* of an anomaly. Once it passes the onset level, the series
//! is in a known episode for `refractory_points`: the probability then stays at or below one
//! half unless the episode escalates (its standardised surprise reaches `escalation` times the
//! one that opened it, which opens a new episode). Without this, the aftermath of every
//! incident (the model re-learning a new level, a burst of odd points) reads as a stream of new
//! anomalies; `foretell_anomaly_score` still shows how far outside the band each point is. The
//! state is a handful of numbers per series and each update is O(1).

use statrs::distribution::{ContinuousCDF, Normal};

/// Surprises are capped so that one absurd point (a counter glitch) cannot dominate the
/// long-term statistics for thousands of points.
const SURPRISE_CAP: f64 = 30.0;

/// Tuning of the probability, validated by construction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbabilitySettings {
    /// Weight of the newest surprise in the short-term average (1 = the point alone).
    pub short_weight: f64,
    /// Weight of the newest surprise in the long-term mean and variance.
    pub long_weight: f64,
    /// Surprises the long-term statistics need before any probability is given.
    pub warmup: u32,
    /// Standard deviations (of the short-term average against the long-term statistics) at
    /// which an anomaly episode opens: 3 is a probability of 0.99865.
    pub onset_sigmas: f64,
    /// Points an episode lasts once opened (0 turns episodes off).
    pub refractory_points: u32,
    /// Within an episode, a deviation this many times the opening one opens a new episode.
    pub escalation: f64,
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
        }
    }
}

impl ProbabilitySettings {
    /// The probability at which an episode opens.
    pub fn onset_probability(&self) -> f64 {
        Normal::new(0.0, 1.0)
            .map(|n| n.cdf(self.onset_sigmas))
            .unwrap_or(1.0)
    }
}

/// Per-series state of the anomaly probability.
#[derive(Clone, Debug, PartialEq)]
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

    /// Scores a new surprise (NaN for a missing point; +Inf, a change of a constant series, counts
    /// as the cap) and then learns it. The probability is judged against the statistics from
    /// before this point, so a sudden jump is not diluted by itself.
    pub fn observe(&mut self, surprise: f64) -> f64 {
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
        let deviation = (short - mean) / sd.max(0.1);
        let deviation = self.through_episodes(deviation);
        let standard = Normal::new(0.0, 1.0).map(|n| n.cdf(deviation));
        standard.unwrap_or(0.0).clamp(0.0, 1.0)
    }

    /// Opens, escalates or ages the anomaly episode; returns the deviation to report.
    fn through_episodes(&mut self, deviation: f64) -> f64 {
        let settings = &self.settings;
        if self.episode_left > 0 {
            self.episode_left -= 1;
            if deviation >= settings.escalation * self.episode_deviation {
                self.open_episode(deviation);
                return deviation;
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
        assert_eq!(history.observe(50.0), 0.0);
        let mut history = warmed((0..100).map(|i| (i % 3) as f64 * 0.5));
        assert_eq!(history.observe(f64::NAN), 0.0);
    }

    #[test]
    fn a_large_surprise_is_probable_and_an_ordinary_one_is_not() {
        let normal = (0..500).map(|i| [0.2, 0.9, 0.5, 1.4, 0.1, 0.7][i % 6]);
        let mut history = warmed(normal.clone());
        let ordinary = history.observe(0.7);
        assert!(ordinary < 0.9, "{ordinary}");
        let mut history = warmed(normal);
        let spike = history.observe(8.0);
        assert!(spike > 0.99, "{spike}");
    }

    #[test]
    fn a_sustained_moderate_surprise_builds_up() {
        let mut history = warmed((0..500).map(|i| [0.2, 0.9, 0.5, 1.4, 0.1, 0.7][i % 6]));
        let first = history.observe(2.0);
        let mut last = first;
        for _ in 0..5 {
            last = history.observe(2.0);
        }
        assert!(last > first, "{first} -> {last}");
        assert!(last > 0.99, "{last}");
    }

    #[test]
    fn probabilities_stay_in_the_unit_interval() {
        let mut history = warmed((0..100).map(|_| 0.0));
        for s in [0.0, 1e300, f64::INFINITY, -5.0, 3.0] {
            let p = history.observe(s);
            assert!((0.0..=1.0).contains(&p), "{s} -> {p}");
        }
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
        assert!(history.observe(8.0) > 0.999);
        // The same surprise again belongs to the open episode.
        let during: Vec<f64> = (0..19).map(|_| history.observe(8.0)).collect();
        assert!(during.iter().all(|p| *p <= 0.5), "{during:?}");
        // The episode is over: quiet points, then a new incident is an onset again.
        ordinary().take(300).for_each(|s| {
            history.observe(s);
        });
        assert!(history.observe(20.0) > 0.999);
    }

    #[test]
    fn an_escalating_episode_reports_again() {
        let mut history = warmed(ordinary());
        let onset = history.observe(5.0);
        assert!(onset > 0.999, "{onset}");
        assert!(history.observe(5.0) <= 0.5);
        let escalation = history.observe(30.0);
        assert!(escalation > 0.999, "{escalation}");
    }

    #[test]
    fn without_a_refractory_period_every_unusual_point_is_reported() {
        let settings = ProbabilitySettings {
            refractory_points: 0,
            ..ProbabilitySettings::default()
        };
        let mut history = SurpriseHistory::new(settings);
        ordinary().for_each(|s| history.learn(s));
        let reports: Vec<f64> = (0..5).map(|_| history.observe(8.0)).collect();
        assert!(reports.iter().all(|p| *p > 0.99), "{reports:?}");
    }
}
