//! Evidence that a value lies outside everything the series did recently, where its model did
//! not expect it.
//!
//! The surprise judges a point against the forecast, and the forecast is judged against the
//! surprise the series usually shows; on a bursty series (tweet counts, request spikes) the
//! biggest incident and an ordinary burst can have the same surprise. What an operator reads
//! first on a graph is simpler: the line went where it has not been for a week. A value above
//! the highest or below the lowest of the recent range and outside the model's band, while the
//! model expected a value within the range, is such a break. Its *excess* is how far beyond both
//! the range and the band it lies (the part neither the history nor the model accounts for), as
//! a share of the range's width.
//!
//! Breaks are rare by construction (after `n` values the chance that the next exchangeable one
//! is a new extreme is `2 / (n + 1)`), and on labelled incidents they are real far more often
//! than a surprise of the same rank: in the public NAB files, most breaks began inside an
//! anomaly window, against about a quarter of the surprise's onsets (docs/anomaly-probability.md
//! has the figures). The conditions on the band keep a series that trends, and so keeps making
//! new highs the forecast foresaw, from raising one whenever a point of its noise falls outside
//! the band. A break is reported once per `refractory_points`, like an
//! episode of the surprise, and its probability comes from its own calibration.
//!
//! The range is kept as the extremes of `BLOCKS` blocks of `BLOCK_POINTS` values (a week at
//! one-minute steps) plus the block being filled, so the state is fixed in size and each update
//! O(1): the range forgets a block at a time rather than a point at a time, which moves its
//! edges a little later than an exact sliding window would.

use super::probability::Calibration;
use super::Band;

/// Values per block of the range.
const BLOCK_POINTS: u32 = 1_260;

/// Completed blocks the range spans besides the one being filled: the range covers between
/// `BLOCKS` and `BLOCKS + 1` blocks of the newest values.
const BLOCKS: usize = 8;

/// Values the range needs before a break is judged: a series' first values say nothing about
/// where it usually lies.
const WARMUP_VALUES: u32 = 100;

/// Points the largest recent excess is held for ([`RecentRange::recent_excess`]): an alert
/// usually fires a few points into an incident, after the value left the range.
const HOLD_POINTS: u32 = 30;

/// Fitted by `bench/probability_calibration.py --range` on the breaks in the public NAB files
/// of realKnownCause, artificialWithAnomaly and artificialNoAnomaly (real when they fall inside
/// a labelled anomaly window) and checked on the other four categories' files.
pub const RANGE_CALIBRATION: Calibration = Calibration {
    half_at: 0.118,
    steepness: 0.296,
};

/// The highest and lowest value of a stretch of the series.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Extremes {
    highest: f64,
    lowest: f64,
}

impl Extremes {
    const EMPTY: Extremes = Extremes {
        highest: f64::NEG_INFINITY,
        lowest: f64::INFINITY,
    };

    fn include(&mut self, value: f64) {
        self.highest = self.highest.max(value);
        self.lowest = self.lowest.min(value);
    }

    fn merge(self, other: Extremes) -> Extremes {
        Extremes {
            highest: self.highest.max(other.highest),
            lowest: self.lowest.min(other.lowest),
        }
    }
}

/// Per-series state of the range evidence.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RecentRange {
    /// Completed blocks, oldest overwritten first.
    blocks: [Extremes; BLOCKS],
    /// Index in `blocks` the next completed block goes to.
    next_block: usize,
    filling: Extremes,
    filled: u32,
    seen: u32,
    /// Points left before another break may be reported (0: none pending).
    quiet_left: u32,
    refractory_points: u32,
    /// The largest excess of a value over the range alone (band aside) in about the last
    /// `HOLD_POINTS` points, and how long it has been held.
    held_excess: f64,
    held_for: u32,
}

impl RecentRange {
    /// A range that reports at most one break per `refractory_points` points.
    pub fn new(refractory_points: u32) -> Self {
        RecentRange {
            blocks: [Extremes::EMPTY; BLOCKS],
            next_block: 0,
            filling: Extremes::EMPTY,
            filled: 0,
            seen: 0,
            quiet_left: 0,
            refractory_points,
            held_excess: 0.0,
            held_for: 0,
        }
    }

    /// The largest excess of the values over their recent range, as a share of its width, in
    /// about the last 30 points (a peak is held that long unless a larger one comes): how far
    /// the series went where it had not been for a week, whatever the model expected. 0 when
    /// it stayed inside; evidence for the alert confidence.
    pub fn recent_excess(&self) -> f64 {
        self.held_excess
    }

    fn hold(&mut self, excess: f64) {
        let excess = if excess.is_finite() { excess } else { 0.0 };
        if excess >= self.held_excess || self.held_for >= HOLD_POINTS {
            self.held_excess = excess;
            self.held_for = 0;
        } else {
            self.held_for += 1;
        }
    }

    /// Adds a value to the range without judging it (non-finite values are gaps).
    pub fn learn(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        self.filling.include(value);
        self.filled += 1;
        self.seen = self.seen.saturating_add(1);
        if self.filled == BLOCK_POINTS {
            self.blocks[self.next_block] = self.filling;
            self.next_block = (self.next_block + 1) % BLOCKS;
            self.filling = Extremes::EMPTY;
            self.filled = 0;
        }
    }

    /// The extremes of the values learnt so far (the blocks kept and the one being filled).
    fn range(&self) -> Extremes {
        self.blocks
            .iter()
            .fold(self.filling, |range, block| range.merge(*block))
    }

    /// How far `value` lies beyond both `range` and `band`, as a share of the range's width: the
    /// part of it that neither the recent history nor the model accounts for. 0 within either,
    /// and 0 when the model expected a value beyond the range on that side (a series that
    /// trends to new highs is forecast there). NaN before the warm-up, for a gap, or for a range
    /// of zero width (a constant series, whose first change the surprise already reports).
    fn excess(&self, range: Extremes, band: &Band, value: f64) -> f64 {
        if self.seen < WARMUP_VALUES || !value.is_finite() {
            return f64::NAN;
        }
        let width = range.highest - range.lowest;
        if !(width > 0.0 && width.is_finite()) {
            return f64::NAN;
        }
        let beyond = if value > range.highest && band.expected <= range.highest {
            value - range.highest.max(band.upper)
        } else if value < range.lowest && band.expected >= range.lowest {
            range.lowest.min(band.lower) - value
        } else {
            0.0
        };
        // NaN bands (a model without one) give no break.
        if beyond > 0.0 {
            beyond / width
        } else {
            0.0
        }
    }

    /// Judges the next value against the range of the values before it and `band`, what the
    /// model predicted for it, then learns it. Returns the probability that a break here opens
    /// a real anomaly: 0 when there is none, during the quiet period after a reported break,
    /// and for gaps.
    pub fn observe(&mut self, value: f64, band: &Band) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let range = self.range();
        let excess = self.excess(range, band, value);
        if self.seen >= WARMUP_VALUES && range.highest > range.lowest {
            let beyond = (value - range.highest).max(range.lowest - value).max(0.0);
            self.hold(beyond / (range.highest - range.lowest));
        }
        self.learn(value);
        if self.quiet_left > 0 {
            self.quiet_left -= 1;
            return 0.0;
        }
        // NaN (not judged) is no break either.
        if excess.is_nan() || excess <= 0.0 {
            return 0.0;
        }
        self.quiet_left = self.refractory_points;
        RANGE_CALIBRATION.probability(excess)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value between 10 and 20 that never repeats a pattern the test could depend on.
    fn ordinary(i: u32) -> f64 {
        15.0 + 5.0 * (f64::from(i) * 0.7).sin()
    }

    /// What the model predicts for the series of `ordinary`.
    const ORDINARY: Band = Band {
        expected: 15.0,
        lower: 12.0,
        upper: 18.0,
    };

    fn band(expected: f64, lower: f64, upper: f64) -> Band {
        Band {
            expected,
            lower,
            upper,
        }
    }

    fn warmed(points: u32) -> RecentRange {
        let mut range = RecentRange::new(200);
        (0..points).for_each(|i| range.learn(ordinary(i)));
        range
    }

    #[test]
    fn nothing_before_the_warm_up_for_gaps_or_inside_the_range() {
        let mut range = warmed(WARMUP_VALUES - 1);
        assert_eq!(range.observe(100.0, &ORDINARY), 0.0);
        let mut range = warmed(500);
        assert_eq!(range.observe(f64::NAN, &ORDINARY), 0.0);
        assert_eq!(range.observe(f64::INFINITY, &ORDINARY), 0.0);
        assert_eq!(range.observe(15.0, &ORDINARY), 0.0);
    }

    #[test]
    fn a_break_outside_the_band_is_reported_once_and_one_the_model_expected_is_not() {
        let mut range = warmed(500);
        assert_eq!(
            range.observe(40.0, &band(38.0, 30.0, 50.0)),
            0.0,
            "inside the band"
        );
        let mut range = warmed(500);
        let first = range.observe(40.0, &ORDINARY);
        assert!(first > 0.5, "{first}");
        // Further breaks belong to the same incident until the quiet period is over.
        let during: Vec<f64> = (0..200).map(|_| range.observe(60.0, &ORDINARY)).collect();
        assert!(during.iter().all(|p| *p == 0.0), "{during:?}");
        assert!(range.observe(90.0, &ORDINARY) > 0.0);
    }

    #[test]
    fn a_new_extreme_the_model_expected_is_not_a_break() {
        // A trend the forecast follows: it expected 35, above the range's top of 20, and a
        // point of noise fell outside its band.
        assert_eq!(warmed(500).observe(40.0, &band(35.0, 30.0, 38.0)), 0.0);
        assert_eq!(warmed(500).observe(-20.0, &band(-15.0, -18.0, -12.0)), 0.0);
        // The same values when the model expected the usual level are breaks.
        assert!(warmed(500).observe(40.0, &ORDINARY) > 0.0);
        assert!(warmed(500).observe(-20.0, &ORDINARY) > 0.0);
    }

    #[test]
    fn a_larger_excess_is_more_probable_and_a_drop_counts_like_a_rise() {
        // The warm-up values span [10, 20] to within a thousandth.
        let small = warmed(500).observe(20.5, &ORDINARY);
        let large = warmed(500).observe(40.0, &ORDINARY);
        let drop = warmed(500).observe(-10.0, &ORDINARY);
        assert!(0.0 < small && small < large, "{small} {large}");
        assert!((drop - large).abs() < 1e-4, "{drop} {large}");
    }

    #[test]
    fn the_recent_excess_is_held_for_a_while_whatever_the_band_said() {
        let mut range = warmed(500);
        // Inside the band (the model expected it), but 10 above a range 10 wide.
        range.observe(30.0, &band(30.0, 25.0, 35.0));
        assert!(
            (range.recent_excess() - 1.0).abs() < 1e-3,
            "{}",
            range.recent_excess()
        );
        (0..HOLD_POINTS - 1).for_each(|i| {
            range.observe(ordinary(i), &ORDINARY);
        });
        assert!(range.recent_excess() > 0.99);
        (0..2).for_each(|i| {
            range.observe(ordinary(i), &ORDINARY);
        });
        assert_eq!(range.recent_excess(), 0.0);
    }

    #[test]
    fn a_constant_series_leaves_its_first_change_to_the_surprise() {
        let mut range = RecentRange::new(200);
        (0..500).for_each(|_| range.learn(7.0));
        assert_eq!(range.observe(8.0, &ORDINARY), 0.0);
    }

    #[test]
    fn the_range_forgets_old_blocks() {
        // An old spike to 1000, then more than the range spans of ordinary values: a return to
        // 100 is a break again.
        let mut range = RecentRange::new(200);
        range.learn(1_000.0);
        let span = BLOCK_POINTS * (BLOCKS as u32 + 1);
        (0..span).for_each(|i| range.learn(ordinary(i)));
        assert!(range.observe(100.0, &ORDINARY) > 0.0);
        // Within the span the spike still sets the top of the range.
        let mut range = RecentRange::new(200);
        range.learn(1_000.0);
        (0..BLOCK_POINTS * 4).for_each(|i| range.learn(ordinary(i)));
        assert_eq!(range.observe(100.0, &ORDINARY), 0.0);
    }
}
