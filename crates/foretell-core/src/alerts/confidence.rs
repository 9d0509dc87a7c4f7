//! How sure foretell is that an alert reflects a real anomaly of its series.
//!
//! The model of the series supplies the evidence ([`Evidence`]): how far the series is from
//! its baseline now and at the peak of the current excursion, how long it has been outside the
//! band, the anomaly probability, the forecast, how many sibling series are anomalous too and
//! how complete the data is. A logistic model over four of these ([`Features`]) turns them into
//! a [`Confidence`]; its weights are fitted on alerts simulated over labelled series and
//! checked for calibration (reliability table, expected calibration error) by
//! `bench/confidence_eval.py`, as `docs/confidence.md` describes.

use std::fmt;

use crate::model::{Band, Excursion};

/// A probability in [0, 1] that an alert is real.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Confidence(f64);

/// A value outside [0, 1] (or NaN) was given as a confidence.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("a confidence must be between 0 and 1, got {0}")]
pub struct InvalidConfidence(pub f64);

impl Confidence {
    pub fn new(value: f64) -> Result<Self, InvalidConfidence> {
        if (0.0..=1.0).contains(&value) {
            Ok(Confidence(value))
        } else {
            Err(InvalidConfidence(value))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Confidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}", self.0)
    }
}

/// Where the forecast says the series is heading, relative to how far it is from its baseline
/// now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trend {
    /// The forecast is further from the baseline than the newest value, on the same side.
    Worsening,
    /// The forecast stays about as far away.
    Steady,
    /// The forecast is back within half the current distance.
    Recovering,
}

impl Trend {
    pub fn as_str(self) -> &'static str {
        match self {
            Trend::Worsening => "worsening",
            Trend::Steady => "steady",
            Trend::Recovering => "recovering",
        }
    }

    /// Compares the forecast's expected value with the newest value, both measured from the
    /// newest baseline.
    pub fn between(baseline: f64, newest: f64, forecast: f64) -> Trend {
        let now = newest - baseline;
        let ahead = forecast - baseline;
        if now == 0.0 || !now.is_finite() || !ahead.is_finite() {
            return Trend::Steady;
        }
        let ratio = ahead / now;
        if ratio > 1.2 {
            Trend::Worsening
        } else if ratio < 0.5 {
            Trend::Recovering
        } else {
            Trend::Steady
        }
    }
}

/// Everything the model of one series says about an alert on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    /// The band predicted for the newest point: its expected value is the baseline.
    pub band: Band,
    /// The newest point's anomaly score (`None` for a gap).
    pub score: Option<f64>,
    /// The anomaly probability after the newest point.
    pub probability: f64,
    /// The open excursion outside the band (all zero when there is none).
    pub excursion: Excursion,
    /// Grid step of the series, to turn points into durations.
    pub step_ms: i64,
    /// The forecast closest to one hour ahead, with its horizon label (`1h`).
    pub forecast: Option<(String, Band)>,
    /// Sibling series of the same query (this one excluded) and how many of them have an
    /// excursion open.
    pub siblings: usize,
    pub siblings_anomalous: usize,
}

/// The inputs of the calibrated model, each a plain number so that the evaluation script
/// can recompute and refit them from `foretell detect --evidence` output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Features {
    /// ln(1 + largest |one-step error| of the excursion, in robust standard deviations).
    pub peak: f64,
    /// Largest anomaly probability of the excursion.
    pub peak_probability: f64,
    /// ln(1 + minutes of the excursion spent outside the band).
    pub outside: f64,
    /// ln(1 + |newest one-step error|, in robust standard deviations).
    pub latest: f64,
    /// ln(1 + how far, in percent of the range's width, the series went beyond its range of
    /// about the last week in the last 30 points): evidence that does not come from the
    /// model's errors.
    pub range_excess: f64,
}

/// Logistic weights: intercept, then one per feature in [`Features`] order. Fitted with
/// `python3 bench/confidence_eval.py --fit` on the alerts of the fit group's files and
/// measured on the others (see docs/confidence.md for the data, the held-out calibration error
/// and AUC).
pub const WEIGHTS: [f64; 6] = [-3.0670, -0.4809, 0.6286, 0.4637, 0.7134, 0.4036];

impl Features {
    pub fn of(excursion: &Excursion, step_ms: i64) -> Features {
        let minutes = f64::from(excursion.outside) * step_ms as f64 / 60_000.0;
        Features {
            peak: excursion.peak_sigmas.abs().ln_1p(),
            peak_probability: excursion.peak_probability.clamp(0.0, 1.0),
            outside: minutes.max(0.0).ln_1p(),
            latest: excursion.latest_sigmas.abs().ln_1p(),
            range_excess: (100.0 * excursion.range_excess.max(0.0)).ln_1p(),
        }
    }

    /// The calibrated probability that an alert with these features is real.
    pub fn confidence(&self) -> Confidence {
        let [intercept, peak, peak_probability, outside, latest, range_excess] = WEIGHTS;
        let logit = intercept
            + peak * self.peak
            + peak_probability * self.peak_probability
            + outside * self.outside
            + latest * self.latest
            + range_excess * self.range_excess;
        let value = 1.0 / (1.0 + (-logit).exp());
        Confidence(if value.is_finite() { value } else { 0.5 })
    }
}

impl Evidence {
    pub fn features(&self) -> Features {
        Features::of(&self.excursion, self.step_ms)
    }

    pub fn confidence(&self) -> Confidence {
        self.features().confidence()
    }

    /// The newest value, recovered from the band and the score (`None` for a gap).
    pub fn newest_value(&self) -> Option<f64> {
        let score = self.score?;
        let side = if self.excursion.latest_sigmas >= 0.0 {
            self.band.upper - self.band.expected
        } else {
            self.band.lower - self.band.expected
        };
        let value = self.band.expected + score * side;
        value.is_finite().then_some(value)
    }

    pub fn trend(&self) -> Option<Trend> {
        let (_, forecast) = self.forecast.as_ref()?;
        let newest = self.newest_value()?;
        Some(Trend::between(
            self.band.expected,
            newest,
            forecast.expected,
        ))
    }

    /// How long the open excursion has lasted.
    pub fn excursion_ms(&self) -> i64 {
        i64::from(self.excursion.length).saturating_mul(self.step_ms)
    }

    /// Share of the excursion's points that are missing, plus the gap at the end now.
    pub fn missing_share(&self) -> f64 {
        let length = self.excursion.length.max(1);
        f64::from(self.excursion.missing) / f64::from(length)
    }

    /// One sentence for a human: `4.1σ above its baseline for 25m; forecast keeps rising;
    /// 2 of 9 sibling series also anomalous`.
    pub fn explanation(&self, subject: &str) -> String {
        let sigmas = self.excursion.latest_sigmas;
        let mut sentence = if self.excursion.is_open() {
            let side = if self.excursion.direction >= 0 {
                "above"
            } else {
                "below"
            };
            format!(
                "{subject} {:.1}σ {side} its baseline (peak {:.1}σ) for {}",
                sigmas.abs(),
                self.excursion.peak_sigmas,
                human_duration(self.excursion_ms())
            )
        } else {
            format!(
                "{subject} is within its expected band ({:.1}σ from the baseline)",
                sigmas.abs()
            )
        };
        let excess = self.excursion.range_excess;
        if excess > 0.0 && excess.is_finite() {
            // Whole percent of the range's width; under 1 % still says that it happened.
            sentence.push_str(&format!(
                "; beyond its range of the last week by {:.0}%",
                (100.0 * excess).max(1.0)
            ));
        }
        if self.excursion.familiarity > 0.0 {
            sentence.push_str("; a shape the series has shown on several earlier occasions");
        }
        if let Some(trend) = self.trend() {
            sentence.push_str(match trend {
                Trend::Worsening => "; forecast keeps moving away",
                Trend::Steady => "; forecast stays there",
                Trend::Recovering => "; forecast recovering",
            });
        }
        if self.siblings > 0 {
            sentence.push_str(&format!(
                "; {} of {} sibling series also anomalous",
                self.siblings_anomalous, self.siblings
            ));
        }
        if self.excursion.trailing_missing > 0 {
            sentence.push_str(&format!(
                "; the newest {} points are missing",
                self.excursion.trailing_missing
            ));
        }
        sentence
    }
}

/// `25m`, `3h10m`, `2d4h`: coarse enough to read at a glance.
pub fn human_duration(ms: i64) -> String {
    let minutes = (ms.max(0) + 30_000) / 60_000;
    match minutes {
        m if m < 60 => format!("{m}m"),
        m if m < 1440 => match m % 60 {
            0 => format!("{}h", m / 60),
            rest => format!("{}h{rest}m", m / 60),
        },
        m => match (m % 1440) / 60 {
            0 => format!("{}d", m / 1440),
            hours => format!("{}d{hours}h", m / 1440),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(excursion: Excursion) -> Evidence {
        Evidence {
            band: Band {
                expected: 100.0,
                lower: 90.0,
                upper: 110.0,
            },
            score: Some(4.0),
            probability: 0.9,
            excursion,
            step_ms: 60_000,
            forecast: Some((
                "1h".into(),
                Band {
                    expected: 160.0,
                    lower: 140.0,
                    upper: 180.0,
                },
            )),
            siblings: 9,
            siblings_anomalous: 2,
        }
    }

    fn open(peak: f64, outside: u32) -> Excursion {
        Excursion {
            length: outside,
            outside,
            peak_sigmas: peak,
            peak_probability: 0.9,
            latest_sigmas: peak,
            direction: 1,
            ..Excursion::default()
        }
    }

    #[test]
    fn confidence_is_bounded_and_validated() {
        assert!(Confidence::new(0.0).is_ok());
        assert!(Confidence::new(1.0).is_ok());
        assert_eq!(Confidence::new(1.5), Err(InvalidConfidence(1.5)));
        assert!(Confidence::new(f64::NAN).is_err());
        assert_eq!(
            Confidence::new(0.834).map(|c| c.to_string()),
            Ok("0.83".into())
        );
    }

    #[test]
    fn more_and_longer_deviation_means_more_confidence() {
        let quiet = evidence(Excursion::default()).confidence().get();
        let brief = evidence(open(3.0, 1)).confidence().get();
        let strong = evidence(open(8.0, 1)).confidence().get();
        let long = evidence(open(8.0, 60)).confidence().get();
        assert!(
            quiet < brief && brief < strong && strong < long,
            "{quiet} {brief} {strong} {long}"
        );
        assert!(long < 1.0 && quiet > 0.0);
    }

    #[test]
    fn the_newest_value_is_recovered_from_band_and_score() {
        let mut above = evidence(open(4.0, 5));
        assert_eq!(above.newest_value(), Some(140.0));
        above.excursion.latest_sigmas = -4.0;
        assert_eq!(above.newest_value(), Some(60.0));
        above.score = None;
        assert_eq!(above.newest_value(), None);
    }

    #[test]
    fn trend_compares_the_forecast_with_the_newest_distance() {
        assert_eq!(Trend::between(100.0, 140.0, 160.0), Trend::Worsening);
        assert_eq!(Trend::between(100.0, 140.0, 135.0), Trend::Steady);
        assert_eq!(Trend::between(100.0, 140.0, 110.0), Trend::Recovering);
        assert_eq!(
            Trend::between(100.0, 60.0, 40.0),
            Trend::Worsening,
            "below works the same"
        );
        assert_eq!(
            Trend::between(100.0, 100.0, 140.0),
            Trend::Steady,
            "no deviation, no trend"
        );
    }

    #[test]
    fn leaving_the_weeks_range_raises_the_confidence() {
        let inside = evidence(open(4.1, 25));
        let mut beyond = evidence(open(4.1, 25));
        beyond.excursion.range_excess = 0.5;
        let (inside, beyond) = (inside.confidence().get(), beyond.confidence().get());
        assert!(beyond > inside + 0.1, "{inside} -> {beyond}");
    }

    #[test]
    fn the_explanation_reads_as_one_sentence() {
        let text = evidence(open(4.1, 25)).explanation("error rate");
        assert_eq!(
            text,
            "error rate 4.1σ above its baseline (peak 4.1σ) for 25m; forecast keeps moving away; \
             2 of 9 sibling series also anomalous"
        );
        let mut beyond = evidence(open(4.1, 25));
        beyond.excursion.range_excess = 0.456;
        assert!(
            beyond
                .explanation("error rate")
                .contains("for 25m; beyond its range of the last week by 46%; forecast"),
            "{}",
            beyond.explanation("error rate")
        );
        let mut familiar = evidence(open(4.1, 25));
        familiar.excursion.familiarity = 0.8;
        assert!(
            familiar.explanation("error rate").contains(
                "for 25m; a shape the series has shown on several earlier occasions; forecast"
            ),
            "{}",
            familiar.explanation("error rate")
        );
        let mut quiet = evidence(Excursion::default());
        quiet.siblings = 0;
        quiet.forecast = None;
        assert_eq!(
            quiet.explanation("load"),
            "load is within its expected band (0.0σ from the baseline)"
        );
    }

    #[test]
    fn durations_are_coarse() {
        assert_eq!(human_duration(25 * 60_000), "25m");
        assert_eq!(human_duration(190 * 60_000), "3h10m");
        assert_eq!(human_duration(120 * 60_000), "2h");
        assert_eq!(human_duration((2 * 1440 + 4 * 60) * 60_000), "2d4h");
        assert_eq!(human_duration(-5), "0m");
    }
}
