//! What the live model did at each evaluated point of one series, kept for the charts.
//!
//! The status page and `/graph` draw a tracked series from this record rather than from a
//! model re-fitted on request, so the picture shows the very band, score and probability the
//! sidecar exported. It is a ring of a fixed number of points (the query's `live_record`
//! divided by its step), filled as the tracker takes points in, shared with the web server
//! behind a mutex held only to copy points in or out.
//!
//! A point is 12 bytes (a 6h record at one minute: 4.3 KB; it was 7.2 KB with five `f32`s, then
//! 14 bytes): the value as `f32` (seven significant digits, what a picture and its tooltip
//! need), the expected value as its distance from the value in bfloat16 (the upper half of an
//! `f32`: eight significant bits, so the expected line is drawn within 1/256 of its distance
//! from the point, far below a pixel), the band's two edges as distances from that expected
//! value in bfloat16 rounded outwards (so a point drawn outside the band was outside the band
//! the sidecar judged it by, to `f32` precision), and the probability in 16 bits (rounded up,
//! so a point that reached the onset probability is still marked as one). A gap has no value
//! to measure from: its `f32` holds the expected value instead. The score is recomputed from
//! the value and band on the way out (it is a function of the two, [`anomaly_score`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use super::TracePoint;
use crate::model::{anomaly_score, Band, Observation};

/// One evaluated point: the observed value and the prediction it was judged by, with the
/// probability after it. NaN value for a gap; NaN band where no model was ready.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct RecordedPoint {
    /// The value; for a gap ([`EXPECTED_IN_ANCHOR`]), the expected value.
    anchor: f32,
    /// `value - expected` as a [`to_bf16_nearest`] code; [`BF16_NAN`] without a model;
    /// [`EXPECTED_IN_ANCHOR`] for a gap.
    from_value: u16,
    /// `expected - lower`, then `upper - expected`, as [`to_bf16`] codes.
    below: u16,
    above: u16,
    /// [`probability_code`].
    probability: u16,
}

/// `from_value`'s mark of a gap: the anchor is the expected value (a NaN payload no
/// arithmetic produces).
const EXPECTED_IN_ANCHOR: u16 = 0x7FC1;

impl RecordedPoint {
    const GAP: RecordedPoint = RecordedPoint {
        anchor: f32::NAN,
        from_value: EXPECTED_IN_ANCHOR,
        below: BF16_NAN,
        above: BF16_NAN,
        probability: 0,
    };

    fn new(value: f64, band: &Band, probability: f64) -> RecordedPoint {
        let value_single = value as f32;
        let (anchor, from_value, expected) = if value_single.is_nan() {
            let expected = band.expected as f32;
            (expected, EXPECTED_IN_ANCHOR, f64::from(expected))
        } else {
            let from_value = to_bf16_nearest(f64::from(value_single) - band.expected);
            let expected = f64::from(value_single) - from_bf16(from_value);
            (value_single, from_value, expected)
        };
        RecordedPoint {
            anchor,
            from_value,
            // Edges measured from the expected value as it will be read back.
            below: to_bf16(expected - band.lower),
            above: to_bf16(band.upper - expected),
            probability: probability_code(probability),
        }
    }

    fn value(&self) -> f64 {
        if self.from_value == EXPECTED_IN_ANCHOR {
            f64::NAN
        } else {
            f64::from(self.anchor)
        }
    }

    fn expected(&self) -> f64 {
        if self.from_value == EXPECTED_IN_ANCHOR {
            f64::from(self.anchor)
        } else {
            f64::from(self.anchor) - from_bf16(self.from_value)
        }
    }

    fn band(&self) -> Band {
        let expected = self.expected();
        Band {
            expected,
            lower: expected - from_bf16(self.below),
            upper: expected + from_bf16(self.above),
        }
    }
}

/// A quiet NaN as a [`to_bf16`] code.
const BF16_NAN: u16 = 0x7FC0;

/// The upper 16 bits of `x` as an `f32` (bfloat16), rounded away from zero: a distance from
/// the expected value comes back at least as large (up to the rounding of `x` to `f32`).
fn to_bf16(x: f64) -> u16 {
    bf16_rounded(x, 0xFFFF)
}

/// The upper 16 bits of `x` as an `f32`, rounded to the nearest (ties away from zero).
fn to_bf16_nearest(x: f64) -> u16 {
    bf16_rounded(x, 0x8000)
}

/// The upper half of `x` as an `f32`, one more (away from zero) when the lower half has a bit
/// of `round_up_bits`: every bit for rounding away from zero, the top bit for the nearest.
fn bf16_rounded(x: f64, round_up_bits: u32) -> u16 {
    let single = x as f32;
    if single.is_nan() {
        return BF16_NAN;
    }
    let bits = single.to_bits();
    let upper = (bits >> 16) as u16;
    // Rounding away from zero cannot overflow into NaN: the largest finite f32's upper half
    // plus one is infinity.
    if bits & round_up_bits != 0 && (upper & 0x7F80) != 0x7F80 {
        upper + 1
    } else {
        upper
    }
}

fn from_bf16(half: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(half) << 16))
}

/// A probability in 16 bits, rounded up (0 stays 0, 1 stays 1).
fn probability_code(p: f64) -> u16 {
    (p.clamp(0.0, 1.0) * f64::from(u16::MAX)).ceil() as u16
}

fn probability_of(code: u16) -> f64 {
    f64::from(code) / f64::from(u16::MAX)
}

/// The newest `capacity` evaluated points of one series, on its grid.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LiveRecord {
    step_ms: i64,
    capacity: usize,
    /// Grid time of the newest point; meaningless while `points` is empty.
    newest_ms: i64,
    points: VecDeque<RecordedPoint>,
}

impl LiveRecord {
    /// An empty record of at most `capacity` points `step_ms` apart. Nothing is allocated
    /// until the first point.
    pub fn new(step_ms: i64, capacity: usize) -> Self {
        LiveRecord {
            step_ms: step_ms.max(1),
            capacity,
            newest_ms: i64::MIN,
            points: VecDeque::new(),
        }
    }

    /// At most how many points it keeps.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends what the model did at `timestamp_ms`. Grid points skipped since the newest are
    /// recorded as gaps; a point not after the newest is ignored (the model never goes back).
    pub fn push(&mut self, timestamp_ms: i64, observation: &Observation, value: f64, p: f64) {
        if self.capacity == 0 {
            return;
        }
        if !self.points.is_empty() {
            if timestamp_ms <= self.newest_ms {
                return;
            }
            let skipped = ((timestamp_ms - self.newest_ms) / self.step_ms - 1).max(0) as usize;
            if skipped >= self.capacity {
                self.points.clear();
            } else {
                for _ in 0..skipped {
                    self.append(RecordedPoint::GAP);
                }
            }
        }
        self.append(RecordedPoint::new(value, &observation.band, p));
        self.newest_ms = timestamp_ms;
    }

    fn append(&mut self, point: RecordedPoint) {
        if self.points.capacity() == 0 {
            // Exactly the configured size: a growing deque would double past it.
            self.points.reserve_exact(self.capacity);
        }
        if self.points.len() == self.capacity {
            self.points.pop_front();
        }
        self.points.push_back(point);
    }

    /// Grid time of the oldest and newest recorded points; `None` while empty.
    pub fn span_ms(&self) -> Option<(i64, i64)> {
        (!self.points.is_empty()).then(|| {
            (
                self.newest_ms - (self.points.len() as i64 - 1) * self.step_ms,
                self.newest_ms,
            )
        })
    }

    /// The recorded points at or after `from_ms`, oldest first, as the charts draw them.
    pub fn points_since(&self, from_ms: i64) -> Vec<TracePoint> {
        let Some((oldest_ms, _)) = self.span_ms() else {
            return Vec::new();
        };
        let skip = if from_ms <= oldest_ms {
            0
        } else {
            ((from_ms - oldest_ms + self.step_ms - 1) / self.step_ms) as usize
        };
        self.points
            .iter()
            .enumerate()
            .skip(skip)
            .map(|(i, p)| {
                let band = p.band();
                let value = p.value();
                TracePoint {
                    timestamp_ms: oldest_ms + i as i64 * self.step_ms,
                    value,
                    band,
                    score: if band.expected.is_finite() {
                        anomaly_score(&band, value)
                    } else {
                        None
                    },
                    probability: probability_of(p.probability),
                }
            })
            .collect()
    }

    /// Bytes the record holds on the heap (its ring, once allocated).
    pub fn heap_bytes(&self) -> usize {
        self.points.capacity() * std::mem::size_of::<RecordedPoint>()
    }
}

/// A series' record, written by the tracker and read by the web server.
#[derive(Clone, Debug)]
pub struct SharedRecord(Arc<Mutex<LiveRecord>>);

/// A record is saved as the record it holds (the state file), and restored into a new share.
impl serde::Serialize for SharedRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.lock().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for SharedRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        LiveRecord::deserialize(deserializer).map(SharedRecord::new)
    }
}

impl SharedRecord {
    pub fn new(record: LiveRecord) -> Self {
        SharedRecord(Arc::new(Mutex::new(record)))
    }

    /// The record, locked; a panic elsewhere while it was held leaves it usable.
    pub fn lock(&self) -> MutexGuard<'_, LiveRecord> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the record; a panic elsewhere while it was held leaves the record usable
    /// (it holds plain numbers, consistent after every push).
    pub fn with<T>(&self, f: impl FnOnce(&mut LiveRecord) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Two handles are equal when they hold equal points (outputs of two runs are compared).
impl PartialEq for SharedRecord {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || self.with(|a| {
                other.with(|b| {
                    a.span_ms() == b.span_ms()
                        && a.points_since(i64::MIN) == b.points_since(i64::MIN)
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(expected: f64, half: f64, value: f64) -> Observation {
        let band = Band {
            expected,
            lower: expected - half,
            upper: expected + half,
        };
        Observation {
            band,
            score: anomaly_score(&band, value),
            surprise: 0.0,
        }
    }

    fn push(record: &mut LiveRecord, t: i64, value: f64) {
        record.push(t, &observation(10.0, 2.0, value), value, value / 100.0);
    }

    #[test]
    fn the_ring_keeps_the_newest_points_on_the_grid() {
        let mut record = LiveRecord::new(1000, 4);
        assert_eq!(record.span_ms(), None);
        assert!(record.points_since(0).is_empty());
        for (i, value) in [9.0, 10.0, 11.0, 15.0, 10.5, 9.5].iter().enumerate() {
            push(&mut record, 10_000 + i as i64 * 1000, *value);
        }
        assert_eq!(record.span_ms(), Some((12_000, 15_000)));
        let points = record.points_since(i64::MIN);
        let times: Vec<i64> = points.iter().map(|p| p.timestamp_ms).collect();
        assert_eq!(times, [12_000, 13_000, 14_000, 15_000]);
        assert_eq!(points[1].value, 15.0);
        assert_eq!(points[1].score, Some(2.5), "recomputed from value and band");
        assert!(points[1].probability >= 0.15 && points[1].probability - 0.15 <= 1.0 / 65_535.0);
        assert_eq!(points[0].band.upper, 12.0);
        // Only what is asked for, rounding a time between grid points up.
        let recent = record.points_since(13_500);
        assert_eq!(recent.first().map(|p| p.timestamp_ms), Some(14_000));
        assert_eq!(record.heap_bytes(), 4 * 12, "exactly the configured ring");
    }

    #[test]
    fn band_edges_come_back_within_a_fraction_of_the_band_and_never_inside_it() {
        for (expected, half) in [(10.0, 2.0), (1.0e9, 3.7e6), (-5.0, 0.001), (0.0, 1e-12)] {
            let band = Band {
                expected,
                lower: expected - half * 0.8,
                upper: expected + half * 1.3,
            };
            let point = RecordedPoint::new(expected, &band, 0.0);
            let back = point.band();
            let expected32 = f64::from(expected as f32);
            assert!(back.lower <= band.lower + expected32 - expected + 1e-9 * expected.abs());
            assert!(back.upper >= band.upper + expected32 - expected - 1e-9 * expected.abs());
            assert!((back.lower - band.lower).abs() <= 0.8 / 128.0 * half + 1e-6 * expected.abs());
            assert!((back.upper - band.upper).abs() <= 1.3 / 128.0 * half + 1e-6 * expected.abs());
        }
        // A band with no width, an infinite one and none at all.
        let flat = RecordedPoint::new(
            3.0,
            &Band {
                expected: 3.0,
                lower: 3.0,
                upper: 3.0,
            },
            0.0,
        )
        .band();
        assert_eq!((flat.lower, flat.upper), (3.0, 3.0));
        let wide = Band {
            expected: 0.0,
            lower: f64::NEG_INFINITY,
            upper: f64::INFINITY,
        };
        let back = RecordedPoint::new(1.0, &wide, 0.0).band();
        assert_eq!((back.lower, back.upper), (f64::NEG_INFINITY, f64::INFINITY));
        let none = RecordedPoint::GAP.band();
        assert!(none.expected.is_nan() && none.lower.is_nan() && none.upper.is_nan());
        assert_eq!(probability_code(0.0), 0);
        assert_eq!(probability_code(1.0), u16::MAX);
        assert_eq!(probability_of(probability_code(0.27)), 17_695.0 / 65_535.0);
    }

    #[test]
    fn the_value_is_exact_and_the_expected_value_within_its_distance_over_256() {
        let cases = [
            (17.0, 12.3, 1.5),
            (1_234.567, 1_200.0, 10.0),
            (0.0, 4.0e-3, 1e-3),
            (-3.25, 100.0, 20.0),
            (1.0e9, 1.0e9 + 12_345.0, 5_000.0),
        ];
        for (value, expected, half) in cases {
            let band = Band {
                expected,
                lower: expected - half,
                upper: expected + half,
            };
            let point = RecordedPoint::new(value, &band, 0.5);
            assert_eq!(point.value(), f64::from(value as f32));
            let back = point.band();
            let distance = (value - expected).abs();
            assert!(
                (back.expected - expected).abs() <= distance / 256.0 + 1e-6 * expected.abs(),
                "{value} {expected}: {back:?}"
            );
            // Drawn outside the band read back only if it was outside the band judged by.
            let outside = |b: &Band| value > b.upper || value < b.lower;
            if outside(&back) {
                assert!(outside(&band), "{value}: {back:?} against {band:?}");
            }
            assert!(back.lower <= band.lower + 1e-6 * expected.abs());
            assert!(back.upper >= band.upper - 1e-6 * expected.abs());
        }
        // A gap keeps its expected value; a point without a model keeps its value.
        let band = Band {
            expected: 7.5,
            lower: 7.0,
            upper: 8.0,
        };
        let gap = RecordedPoint::new(f64::NAN, &band, 0.0);
        assert!(gap.value().is_nan());
        assert_eq!(gap.band().expected, 7.5);
        let unready = Band {
            expected: f64::NAN,
            lower: f64::NAN,
            upper: f64::NAN,
        };
        let point = RecordedPoint::new(3.0, &unready, 0.0);
        assert_eq!(point.value(), 3.0);
        assert!(point.band().expected.is_nan() && point.band().upper.is_nan());
        assert_eq!(std::mem::size_of::<RecordedPoint>(), 12);
    }

    #[test]
    fn skipped_grid_points_are_gaps_and_older_points_are_ignored() {
        let mut record = LiveRecord::new(1000, 10);
        push(&mut record, 0, 10.0);
        push(&mut record, 3000, 11.0);
        push(&mut record, 2000, 99.0);
        let points = record.points_since(i64::MIN);
        assert_eq!(points.len(), 4);
        assert!(points[1].value.is_nan() && points[2].band.expected.is_nan());
        assert_eq!(points[1].score, None);
        assert_eq!(points[3].value, 11.0);
        // A silence longer than the ring leaves only what follows it.
        push(&mut record, 60_000, 12.0);
        assert_eq!(record.span_ms(), Some((60_000, 60_000)));
    }

    #[test]
    fn a_record_of_no_points_holds_nothing() {
        let mut record = LiveRecord::new(1000, 0);
        push(&mut record, 0, 10.0);
        assert_eq!(record.span_ms(), None);
        assert_eq!(record.heap_bytes(), 0);
    }

    #[test]
    fn shared_handles_compare_by_content() {
        let a = SharedRecord::new(LiveRecord::new(1000, 3));
        let b = SharedRecord::new(LiveRecord::new(1000, 3));
        assert_eq!(a, b);
        a.with(|r| push(r, 0, 10.0));
        assert_ne!(a, b);
        b.with(|r| push(r, 0, 10.0));
        assert_eq!(a, b);
        assert_eq!(a, a.clone());
    }
}
