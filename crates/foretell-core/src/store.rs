//! Per-series windows on the query's evaluation grid, keyed by the full label set.
//!
//! `query_range` answers on a regular grid (`start + k * step`), so a window stores only
//! values, one slot per grid point, with the timestamp implied by the slot. Missing points are
//! NaN. Memory per series is bounded by `capacity_points` slots; the number of series by
//! `max_series`. The values are kept packed ([`PackedValues`]): completed blocks of 64 as 16-bit
//! steps from a base, exact for whole numbers and within a tiny share of the block's spread
//! otherwise.

use crate::labels::Labels;
use packed::PackedValues;

pub mod packed;
use std::collections::hash_map::Entry;
use std::collections::HashMap;

/// One sample as the reader delivers it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub timestamp_ms: i64,
    pub value: f64,
}

/// Limits of one query's store, validated by the caller (all > 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    pub step_ms: i64,
    pub capacity_points: usize,
    pub max_series: usize,
    /// A series whose newest sample is older than this (relative to the evaluation time) is
    /// dropped, so that its exported series disappear and go stale in Prometheus.
    pub freshness_ms: i64,
}

/// Values of one series on the grid, newest last.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SeriesWindow {
    step_ms: i64,
    capacity: usize,
    /// Timestamp of the newest slot; meaningless while `values` is empty.
    newest_ms: i64,
    values: PackedValues,
    /// Newest timestamp at which the upstream returned a sample for this series.
    last_seen_ms: i64,
}

impl SeriesWindow {
    fn new(step_ms: i64, capacity: usize) -> Self {
        SeriesWindow {
            step_ms,
            capacity,
            newest_ms: i64::MIN,
            values: PackedValues::default(),
            last_seen_ms: i64::MIN,
        }
    }

    /// Places a sample in its slot. Off-grid timestamps snap down to the grid; samples older
    /// than the window are ignored; a re-delivered point overwrites its slot.
    fn insert(&mut self, sample: Sample) {
        // Decoders refuse such timestamps; a window still ignores them rather than overflow.
        if !(0..=MAX_TIMESTAMP_MS).contains(&sample.timestamp_ms) {
            return;
        }
        let ts = sample.timestamp_ms - sample.timestamp_ms.rem_euclid(self.step_ms);
        self.last_seen_ms = self.last_seen_ms.max(ts);
        if self.values.is_empty() {
            self.values.push_back(sample.value);
            self.newest_ms = ts;
            return;
        }
        if ts > self.newest_ms {
            let ahead = steps_between(self.newest_ms, ts, self.step_ms);
            if ahead > self.capacity {
                self.values.clear();
                self.values.push_back(sample.value);
            } else {
                for _ in 1..ahead {
                    self.values.push_back(f64::NAN);
                }
                self.values.push_back(sample.value);
            }
            self.newest_ms = ts;
            while self.values.len() > self.capacity {
                self.values.pop_front();
            }
        } else {
            let behind = steps_between(ts, self.newest_ms, self.step_ms);
            if behind < self.values.len() {
                let index = self.values.len() - 1 - behind;
                self.values.set(index, sample.value);
            }
        }
    }

    /// Gives back what the deque's doubling allocated beyond the window's capacity.
    fn trim_allocation(&mut self) {
        self.values.shrink_to(self.capacity);
    }

    /// Finite points, oldest first, as `(timestamp_ms, value)`.
    pub fn finite_points(&self) -> Vec<(i64, f64)> {
        let oldest = self.oldest_ms();
        self.values
            .iter()
            .enumerate()
            .filter(|(_, v)| v.is_finite())
            .map(|(i, v)| (oldest + i as i64 * self.step_ms, v))
            .collect()
    }

    /// Every slot's value, oldest first (NaN for gaps): the grid the models fit on.
    pub fn values(&self) -> Vec<f64> {
        self.values.iter().collect()
    }

    /// The value of the slot at `timestamp_ms`: NaN for a gap or a timestamp outside the window.
    pub fn value_at(&self, timestamp_ms: i64) -> f64 {
        if self.values.is_empty() || timestamp_ms > self.newest_ms {
            return f64::NAN;
        }
        let behind = steps_between(timestamp_ms, self.newest_ms, self.step_ms);
        if behind < self.values.len() {
            self.values
                .get(self.values.len() - 1 - behind)
                .unwrap_or(f64::NAN)
        } else {
            f64::NAN
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn step_ms(&self) -> i64 {
        self.step_ms
    }

    /// The newest slot, which may hold NaN when the upstream had no value there.
    pub fn newest(&self) -> Option<Sample> {
        self.values.back().map(|value| Sample {
            timestamp_ms: self.newest_ms,
            value,
        })
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn last_seen_ms(&self) -> i64 {
        self.last_seen_ms
    }

    fn oldest_ms(&self) -> i64 {
        self.newest_ms - (self.values.len() as i64 - 1) * self.step_ms
    }

    /// Bytes held for values, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.values.heap_bytes()
    }
}

/// A tracked series: its window and whatever per-series state the model keeps.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TrackedSeries<M> {
    pub window: SeriesWindow,
    /// Boxed: the series live inline in a hash table that is up to half empty after it
    /// grows, and a model's state is most of a series' fixed size (about 750 bytes), so a
    /// free slot costs a pointer instead.
    pub model: Option<Box<M>>,
}

/// What one merge did, for self-metrics and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    pub samples_added: usize,
    pub series_added: usize,
    /// New series refused because the store already holds `max_series`.
    pub series_rejected: usize,
    /// Series dropped because nothing fresher than `freshness_ms` was seen.
    pub series_expired: usize,
}

/// All series of one query.
#[derive(Debug)]
pub struct QueryStore<M> {
    limits: StoreLimits,
    series: HashMap<Labels, TrackedSeries<M>>,
}

impl<M> QueryStore<M> {
    pub fn new(limits: StoreLimits) -> Self {
        QueryStore {
            limits,
            series: HashMap::new(),
        }
    }

    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Merges one fetch result and expires series not seen within the freshness window of
    /// `evaluated_at_ms` (the end of the range just fetched).
    pub fn merge(
        &mut self,
        fetched: Vec<(Labels, Vec<Sample>)>,
        evaluated_at_ms: i64,
    ) -> MergeOutcome {
        let mut outcome = MergeOutcome::default();
        for (labels, samples) in fetched {
            if samples.is_empty() {
                continue;
            }
            let at_capacity = self.series.len() >= self.limits.max_series;
            let tracked = match self.series.entry(labels) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(_) if at_capacity => {
                    outcome.series_rejected += 1;
                    continue;
                }
                Entry::Vacant(entry) => {
                    outcome.series_added += 1;
                    entry.insert(TrackedSeries {
                        window: SeriesWindow::new(self.limits.step_ms, self.limits.capacity_points),
                        model: None,
                    })
                }
            };
            outcome.samples_added += samples.len();
            for sample in samples {
                tracked.window.insert(sample);
            }
            tracked.window.trim_allocation();
        }
        let oldest_fresh = evaluated_at_ms.saturating_sub(self.limits.freshness_ms);
        let before = self.series.len();
        self.series
            .retain(|_, tracked| tracked.window.last_seen_ms() >= oldest_fresh);
        outcome.series_expired = before - self.series.len();
        outcome
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn get(&self, labels: &Labels) -> Option<&TrackedSeries<M>> {
        self.series.get(labels)
    }

    /// Removes a series to work on it elsewhere; [`QueryStore::put_back`] returns it.
    pub fn take(&mut self, labels: &Labels) -> Option<TrackedSeries<M>> {
        self.series.remove(labels)
    }

    /// Returns a series [`QueryStore::take`] removed (the limits were checked when it came in).
    pub fn put_back(&mut self, labels: Labels, tracked: TrackedSeries<M>) {
        self.series.insert(labels, tracked);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Labels, &TrackedSeries<M>)> {
        self.series.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&Labels, &mut TrackedSeries<M>)> {
        self.series.iter_mut()
    }

    /// Bytes held by labels and windows (not model state) and by the hash table's slots, free
    /// ones included, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.series.capacity() * std::mem::size_of::<(Labels, TrackedSeries<M>)>()
            + self
                .series
                .iter()
                .map(|(labels, tracked)| labels.heap_bytes() + tracked.window.heap_bytes())
                .sum::<usize>()
    }
}

/// The newest timestamp a window holds: the end of the year 9999.
const MAX_TIMESTAMP_MS: i64 = crate::timestamp::MAX_UNIX_SECONDS as i64 * 1000 + 999;

/// Whole steps from `from_ms` to `to_ms` (`to_ms >= from_ms`), saturating: timestamps are
/// checked where they enter, but a window must not overflow whatever it is given.
fn steps_between(from_ms: i64, to_ms: i64, step_ms: i64) -> usize {
    let steps = (i128::from(to_ms) - i128::from(from_ms)) / i128::from(step_ms.max(1));
    usize::try_from(steps).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: i64 = 10_000;

    fn limits() -> StoreLimits {
        StoreLimits {
            step_ms: STEP,
            capacity_points: 5,
            max_series: 2,
            freshness_ms: 30_000,
        }
    }

    fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(t, v)| Sample {
                timestamp_ms: t,
                value: v,
            })
            .collect()
    }

    fn series(name: &str) -> Labels {
        Labels::from_pairs([("instance", name)])
    }

    /// Issue 16, item 2: `1e300` and `-1e18` seconds panicked with "capacity overflow".
    #[test]
    fn absurd_timestamps_are_ignored_without_overflow() {
        let mut store: QueryStore<()> = QueryStore::new(limits());
        let absurd = [i64::MAX, i64::MIN, i64::MIN + 1, -1, i64::MAX - 1];
        for (round, &at) in absurd.iter().enumerate() {
            let normal = 10 * STEP + round as i64 * STEP;
            store.merge(
                vec![(
                    series("a"),
                    samples(&[(normal, 1.0), (at, 2.0), (normal + STEP, 3.0)]),
                )],
                normal + STEP,
            );
        }
        let (_, tracked) = store.iter().next().expect("one series");
        assert_eq!(tracked.window.value_at(15 * STEP), 3.0);
        assert!(tracked.window.value_at(i64::MIN).is_nan());
        assert!(tracked.window.value_at(i64::MAX).is_nan());
        assert!(tracked.window.len() <= 5);
    }

    #[test]
    fn window_keeps_only_capacity_newest_points() {
        let mut store: QueryStore<()> = QueryStore::new(limits());
        let points: Vec<_> = (0..8).map(|i| (i * STEP, i as f64)).collect();
        store.merge(vec![(series("a"), samples(&points))], 7 * STEP);
        let (_, tracked) = store.iter().next().expect("one series");
        let values: Vec<f64> = tracked.window.finite_points().iter().map(|p| p.1).collect();
        assert_eq!(values, vec![3.0, 4.0, 5.0, 6.0, 7.0]);
        assert_eq!(tracked.window.finite_points()[0].0, 3 * STEP);
    }

    #[test]
    fn a_full_window_holds_its_capacity_in_well_under_the_bytes_of_doubles() {
        let mut store: QueryStore<()> = QueryStore::new(StoreLimits {
            capacity_points: 2_881,
            ..limits()
        });
        let points: Vec<_> = (0..3_000).map(|i| (i * STEP, i as f64)).collect();
        store.merge(vec![(series("a"), samples(&points))], 2_999 * STEP);
        let (_, tracked) = store.iter().next().expect("one series");
        assert_eq!(tracked.window.len(), 2_881);
        // 45 blocks of 64 (160 B each), a spare block's room and the open block's 64 doubles.
        assert!(
            tracked.window.heap_bytes() <= 2_881 * 8 * 2 / 5,
            "{} B",
            tracked.window.heap_bytes()
        );
        // Whole numbers come back exactly.
        assert_eq!(tracked.window.values()[0], 119.0);
        assert_eq!(tracked.window.newest().map(|s| s.value), Some(2_999.0));
    }

    #[test]
    fn gaps_become_missing_slots_and_redelivery_overwrites() {
        let mut store: QueryStore<()> = QueryStore::new(limits());
        store.merge(
            vec![(series("a"), samples(&[(0, 1.0), (3 * STEP, 4.0)]))],
            3 * STEP,
        );
        store.merge(vec![(series("a"), samples(&[(0, 9.0)]))], 3 * STEP);
        let (_, tracked) = store.iter().next().expect("one series");
        assert_eq!(tracked.window.len(), 4);
        let values = tracked.window.values();
        assert_eq!(values[0], 9.0);
        assert!(values[1].is_nan() && values[2].is_nan());
        assert_eq!(values[3], 4.0);
        assert_eq!(tracked.window.value_at(3 * STEP), 4.0);
        assert!(tracked.window.value_at(STEP).is_nan());
        assert!(
            tracked.window.value_at(4 * STEP).is_nan(),
            "after the newest"
        );
        assert!(tracked.window.value_at(-STEP).is_nan(), "before the oldest");
        assert_eq!(
            tracked.window.finite_points(),
            vec![(0, 9.0), (3 * STEP, 4.0)]
        );
        assert_eq!(
            tracked.window.newest(),
            Some(Sample {
                timestamp_ms: 3 * STEP,
                value: 4.0
            })
        );
    }

    #[test]
    fn a_jump_longer_than_the_window_restarts_it() {
        let mut store: QueryStore<()> = QueryStore::new(limits());
        store.merge(vec![(series("a"), samples(&[(0, 1.0)]))], 0);
        store.merge(
            vec![(series("a"), samples(&[(100 * STEP, 2.0)]))],
            100 * STEP,
        );
        let (_, tracked) = store.iter().next().expect("one series");
        assert_eq!(tracked.window.finite_points(), vec![(100 * STEP, 2.0)]);
    }

    #[test]
    fn series_beyond_the_limit_are_rejected_and_counted() {
        let mut store: QueryStore<()> = QueryStore::new(limits());
        let fetched = ["a", "b", "c"]
            .iter()
            .map(|name| (series(name), samples(&[(0, 1.0)])))
            .collect();
        let outcome = store.merge(fetched, 0);
        assert_eq!(outcome.series_added, 2);
        assert_eq!(outcome.series_rejected, 1);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn series_not_seen_within_freshness_expire() {
        let mut store: QueryStore<()> = QueryStore::new(limits());
        store.merge(
            vec![
                (series("a"), samples(&[(0, 1.0)])),
                (series("b"), samples(&[(0, 1.0)])),
            ],
            0,
        );
        let outcome = store.merge(vec![(series("a"), samples(&[(40_000, 1.0)]))], 40_000);
        assert_eq!(outcome.series_expired, 1);
        let names: Vec<_> = store.iter().map(|(l, _)| l.get("instance")).collect();
        assert_eq!(names, vec![Some("a")]);
    }
}
