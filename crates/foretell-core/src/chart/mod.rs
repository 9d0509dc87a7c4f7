//! A series' recent past as its model saw it, point by point, and the forecast after it: what
//! the status page and the graph links of enriched alerts draw (the binary's `views::chart`
//! renders it as SVG).
//!
//! A tracked series is drawn from its [`record::LiveRecord`]: what the live model did at each
//! point. Where a chart reaches further back than the record, or for a series foretell does
//! not track, the points are *replayed* ([`trace`]): a model of the same settings is fitted on
//! the older part of a window fetched from Prometheus, then takes the newer points in one by
//! one, each scored against the prediction made before it arrived, as the sidecar does. Either
//! way the band drawn at a point is the band that point was judged by; the chart labels the
//! replayed part.

pub mod link;
pub mod record;

use crate::model::excursion::QUIET_POINTS;
use crate::model::{
    Band, Excursion, ForecastModel, NotReady, Observation, ProbabilitySettings, SurpriseHistory,
};

/// One replayed point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TracePoint {
    pub timestamp_ms: i64,
    /// The observed value; NaN for a gap.
    pub value: f64,
    /// The prediction for this point, made before it arrived.
    pub band: Band,
    /// `None` for a gap; above 1 outside the band.
    pub score: Option<f64>,
    /// The anomaly probability after this point.
    pub probability: f64,
}

/// Replayed points, the excursion open at the end, and the forecast for each step after the
/// newest point.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    pub points: Vec<TracePoint>,
    pub excursion: Excursion,
    pub forecast: Vec<(i64, Band)>,
    /// Two-sided coverage of the bands, for the legend.
    pub coverage: f64,
    /// The probability at which an anomaly episode opens (points at or above it are marked).
    pub onset_probability: f64,
    /// Points at or before this time were replayed from history, not recorded live; `None`
    /// when none were (or the whole trace is a replay: see `all_replayed`).
    pub replayed_through_ms: Option<i64>,
}

impl Trace {
    /// The newest point.
    pub fn last(&self) -> Option<&TracePoint> {
        self.points.last()
    }

    /// A tracked series' chart: `replayed` (the part of the range before its record, replayed
    /// from history; may be absent) followed by the `live` points of its record, with the
    /// forecast the live model exported. Replayed points that overlap the record are dropped:
    /// the record is what happened.
    pub fn live(
        replayed: Option<Trace>,
        live: Vec<TracePoint>,
        forecast: Vec<(i64, Band)>,
        excursion: Excursion,
        coverage: f64,
        onset_probability: f64,
    ) -> Trace {
        let first_live_ms = live.first().map_or(i64::MAX, |p| p.timestamp_ms);
        let mut points: Vec<TracePoint> = replayed
            .map(|r| r.points)
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p.timestamp_ms < first_live_ms)
            .collect();
        let replayed_through_ms = points.last().map(|p| p.timestamp_ms);
        points.extend(live);
        Trace {
            points,
            excursion,
            forecast,
            coverage,
            onset_probability,
            replayed_through_ms,
        }
    }

    /// The anomaly episodes among the points (see [`episodes`]).
    pub fn episodes(&self) -> Vec<Episode> {
        episodes(&self.points, self.onset_probability)
    }
}

/// A run of points outside the band (or at an anomaly onset) that reached the onset
/// probability: what one anomaly looks like on a chart. Indices into the points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Episode {
    pub first: usize,
    pub last: usize,
    /// The point of the highest probability (the first, among equals).
    pub peak: usize,
}

/// Groups points the way the live excursion does ([`Excursion`]): a run opens at a point
/// outside the band, goes on through gaps and through fewer than [`QUIET_POINTS`] points back
/// inside, and is an episode when its probability reached `onset_probability` somewhere in it.
/// One marker per episode, not per point: a minutes-long incident is one event.
pub fn episodes(points: &[TracePoint], onset_probability: f64) -> Vec<Episode> {
    let mut found = Vec::new();
    // (first, last outside, peak, peak probability)
    let mut open: Option<(usize, usize, usize, f64)> = None;
    let mut quiet = 0u32;
    let close = |run: Option<(usize, usize, usize, f64)>, found: &mut Vec<Episode>| {
        if let Some((first, last, peak, p)) = run {
            if p >= onset_probability {
                found.push(Episode {
                    first,
                    last: last.max(peak),
                    peak,
                });
            }
        }
    };
    for (i, point) in points.iter().enumerate() {
        let active = point.score.is_some_and(|s| s > 1.0)
            || (point.score.is_some() && point.probability >= onset_probability);
        match (&mut open, active) {
            (None, true) => {
                open = Some((i, i, i, point.probability));
                quiet = 0;
            }
            (Some((_, last, peak, peak_p)), true) => {
                *last = i;
                quiet = 0;
                if point.probability > *peak_p {
                    *peak = i;
                    *peak_p = point.probability;
                }
            }
            (Some((_, _, peak, peak_p)), false) => {
                if point.score.is_some() {
                    quiet += 1;
                }
                // The probability after a point counts while the run is open.
                if point.probability > *peak_p {
                    *peak = i;
                    *peak_p = point.probability;
                }
                if quiet >= QUIET_POINTS {
                    close(open.take(), &mut found);
                }
            }
            (None, false) => {}
        }
    }
    close(open, &mut found);
    found
}

/// A regular grid of points: the first point's time and the spacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub start_ms: i64,
    pub step_ms: i64,
}

/// Fits `model` on `values[..replay_from]`, replays the rest one point at a time, and forecasts
/// `horizon_steps` steps past the newest point. `values` are on `grid`, NaN for gaps.
pub fn trace(
    values: &[f64],
    grid: Grid,
    replay_from: usize,
    model: &ForecastModel,
    probability: ProbabilitySettings,
    horizon_steps: u32,
) -> Result<Trace, NotReady> {
    let replay_from = replay_from.clamp(1, values.len().max(1));
    let fit = model.fit(&values[..replay_from.min(values.len())], None)?;
    let mut surprise = SurpriseHistory::new(probability);
    for s in &fit.in_sample_surprises {
        surprise.learn(*s);
    }
    for value in &values[..replay_from.min(values.len())] {
        surprise.learn_value(*value);
    }
    let mut fitted = fit.model;
    let mut excursion = Excursion::default();
    let mut points = Vec::with_capacity(values.len().saturating_sub(replay_from));
    for (offset, value) in values.iter().enumerate().skip(replay_from) {
        let observation: Observation = fitted.observe(*value);
        let p = surprise.observe(&observation, *value);
        excursion.observe(&observation, p);
        excursion.range_excess = surprise.recent_range_excess();
        points.push(TracePoint {
            timestamp_ms: grid.start_ms + offset as i64 * grid.step_ms,
            value: *value,
            band: observation.band,
            score: observation.score,
            probability: p,
        });
    }
    if points.is_empty() {
        return Err(NotReady::TooFewPoints {
            have: values.len(),
            need: values.len() + 1,
        });
    }
    let newest_ms = grid.start_ms + (values.len() as i64 - 1) * grid.step_ms;
    let forecast = (1..=horizon_steps.max(1))
        .map(|steps| {
            (
                newest_ms + i64::from(steps) * grid.step_ms,
                fitted.forecast(steps),
            )
        })
        .collect();
    Ok(Trace {
        points,
        excursion,
        forecast,
        coverage: fitted.coverage().get(),
        onset_probability: probability.onset_probability(),
        replayed_through_ms: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Coverage, SeasonSpec};
    use crate::tracker::FirstFit;

    fn model() -> ForecastModel {
        ForecastModel {
            coverage: Coverage::new(0.99).expect("valid"),
            min_points: 30,
            season: SeasonSpec::None,
            horizon_steps: 12,
        }
    }

    fn noisy(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 100.0 + ((i * 7919) % 13) as f64 * 0.5)
            .collect()
    }

    #[test]
    fn replayed_points_sit_on_the_grid_and_the_forecast_follows_the_newest() {
        let values = noisy(200);
        let grid = Grid {
            start_ms: 1_000_000,
            step_ms: 60_000,
        };
        let trace = trace(
            &values,
            grid,
            150,
            &model(),
            ProbabilitySettings::default(),
            10,
        )
        .expect("fits");
        assert_eq!(trace.points.len(), 50);
        assert_eq!(trace.points[0].timestamp_ms, 1_000_000 + 150 * 60_000);
        let newest = trace.last().expect("points").timestamp_ms;
        assert_eq!(newest, 1_000_000 + 199 * 60_000);
        assert_eq!(trace.forecast.len(), 10);
        assert_eq!(trace.forecast[0].0, newest + 60_000);
        assert_eq!(trace.forecast[9].0, newest + 600_000);
        assert!((trace.coverage - 0.99).abs() < 1e-12);
        assert!(trace
            .points
            .iter()
            .all(|p| p.band.lower <= p.band.expected && p.band.expected <= p.band.upper));
    }

    #[test]
    fn a_spike_is_scored_outside_its_band_and_a_gap_has_no_score() {
        let mut values = noisy(200);
        values[197] = 500.0;
        values[195] = f64::NAN;
        let grid = Grid {
            start_ms: 0,
            step_ms: 1000,
        };
        let trace = trace(
            &values,
            grid,
            150,
            &model(),
            ProbabilitySettings::default(),
            1,
        )
        .expect("fits");
        let spike = trace.points[47];
        assert_eq!(spike.value, 500.0);
        assert!(spike.score.is_some_and(|s| s > 1.0), "{spike:?}");
        assert_eq!(trace.points[45].score, None);
        assert!(trace.excursion.peak_sigmas > 5.0, "{:?}", trace.excursion);
    }

    fn point(i: i64, value: f64, probability: f64) -> TracePoint {
        let band = Band {
            expected: 10.0,
            lower: 8.0,
            upper: 12.0,
        };
        TracePoint {
            timestamp_ms: i * 1000,
            value,
            band,
            score: crate::model::anomaly_score(&band, value),
            probability,
        }
    }

    /// Issue 19, item 2: one marker per anomaly episode, not per point.
    #[test]
    fn an_incident_of_many_points_is_one_episode_and_a_blip_below_the_onset_none() {
        let onset = 0.3;
        let mut points: Vec<TracePoint> = (0..40).map(|i| point(i, 10.0, 0.0)).collect();
        // A blip outside the band that never reaches the onset probability.
        points[5] = point(5, 13.0, 0.1);
        // A minutes-long incident: outside, a gap, two points back inside, outside again.
        for (i, value, p) in [
            (20, 20.0, 0.5),
            (21, 25.0, 0.9),
            (22, f64::NAN, 0.9),
            (23, 11.0, 0.8),
            (24, 11.5, 0.8),
            (25, 19.0, 0.7),
        ] {
            points[i] = point(i as i64, value, p);
        }
        let found = episodes(&points, onset);
        assert_eq!(
            found,
            vec![Episode {
                first: 20,
                last: 25,
                peak: 21
            }]
        );
        // Five points back inside close it: the next excursion is another episode.
        points[31] = point(31, 30.0, 0.95);
        let found = episodes(&points, onset);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[1].first, 31);
        // Quiet all along: none.
        let quiet: Vec<TracePoint> = (0..40).map(|i| point(i, 10.5, 0.0)).collect();
        assert!(episodes(&quiet, onset).is_empty());
    }

    #[test]
    fn a_live_chart_is_the_replay_up_to_the_record_then_the_record() {
        let replayed = Trace {
            points: (0..10).map(|i| point(i, 10.0, 0.0)).collect(),
            excursion: Excursion::default(),
            forecast: vec![],
            coverage: 0.99,
            onset_probability: 0.3,
            replayed_through_ms: None,
        };
        let live: Vec<TracePoint> = (7..15).map(|i| point(i, 11.0, 0.0)).collect();
        let trace = Trace::live(
            Some(replayed),
            live,
            vec![(20_000, point(20, 10.0, 0.0).band)],
            Excursion::default(),
            0.99,
            0.3,
        );
        let times: Vec<i64> = trace.points.iter().map(|p| p.timestamp_ms / 1000).collect();
        assert_eq!(times, (0..15).collect::<Vec<_>>());
        assert_eq!(trace.replayed_through_ms, Some(6000));
        assert_eq!(
            trace.points[7].value, 11.0,
            "the record wins where both have a point"
        );
        let only_live = Trace::live(
            None,
            vec![point(1, 10.0, 0.0)],
            vec![],
            Excursion::default(),
            0.99,
            0.3,
        );
        assert_eq!(only_live.replayed_through_ms, None);
    }

    /// Issue 19, item 1: where a chart replays a range the live record also holds, the two
    /// agree: same expected values within a small share of the band, and the same points
    /// outside it. (They differ in detail: the live model was refitted every hour, the replay
    /// once, before the range.)
    #[test]
    fn the_replay_agrees_with_the_live_record_where_they_overlap() {
        use crate::labels::Labels;
        use crate::store::{Sample, StoreLimits};
        use crate::tracker::{QueryTracker, TrackerSettings};

        const STEP: i64 = 60_000;
        let day = 1440usize;
        // Uniform in [-0.5, 0.5) and independent from one day to the next (splitmix64's
        // finaliser). `synthetic::uniform_noise` is linear in `i` before its bits are taken: a
        // day later it repeats the same noise shifted by a constant, so the two days of this
        // window agreed far more closely than noise allows, and the bounds below held thanks to
        // that (docs/benchmarks.md, "Two cycles do not make a recurrence").
        let independent_noise = |i: usize| {
            let mut x = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            x ^= x >> 31;
            (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let value = |i: usize| {
            let phase = (i % day) as f64 / day as f64 * std::f64::consts::TAU;
            let spike = if (3 * day + 500..3 * day + 505).contains(&i) {
                60.0
            } else {
                0.0
            };
            100.0 + 30.0 * phase.sin() + 4.0 * independent_noise(i) + spike
        };
        let model = ForecastModel {
            coverage: Coverage::new(0.99).expect("valid"),
            min_points: 30,
            season: SeasonSpec::Periods(vec![day]),
            horizon_steps: 60,
        };
        let history = 2 * day;
        let mut tracker = QueryTracker::new(TrackerSettings {
            query: "q".into(),
            limits: StoreLimits {
                step_ms: STEP,
                capacity_points: history + 1,
                max_series: 10,
                freshness_ms: 10 * STEP,
            },
            model: model.clone(),
            probability: ProbabilitySettings::default(),
            refit_interval_ms: 60 * STEP,
            horizons: vec![],
            threshold: None,
            record_points: 360,
            load_threads: 2,
            first_fit: FirstFit::Full,
            peers: None,
        });
        let labels = Labels::from_pairs([("instance", "a")]);
        let samples = |from: usize, to: usize| {
            (from..to)
                .map(|i| Sample {
                    timestamp_ms: i as i64 * STEP,
                    value: value(i),
                })
                .collect::<Vec<_>>()
        };
        tracker.load(
            vec![(labels.clone(), samples(0, history + 1))],
            history as i64 * STEP,
        );
        let end = 3 * day + 720;
        let mut record = None;
        for i in history + 1..=end {
            let (output, _) =
                tracker.evaluate(vec![(labels.clone(), samples(i, i + 1))], i as i64 * STEP);
            record = output.series[0].record.clone();
        }
        let live = record.expect("kept").lock().points_since(i64::MIN);
        assert_eq!(live.len(), 360);
        let first = end + 1 - 360;
        let values: Vec<f64> = (first - history..=end).map(value).collect();
        let replayed = trace(
            &values,
            Grid {
                start_ms: (first - history) as i64 * STEP,
                step_ms: STEP,
            },
            history,
            &model,
            ProbabilitySettings::default(),
            1,
        )
        .expect("fits");
        assert_eq!(replayed.points.len(), 360);
        // Relative to the band: near identical before the spike; apart for about an hour after
        // it and now and then later, the live model having been refitted on a window holding it
        // and the replay not.
        let spike = 3 * day + 500;
        let (mut before, mut after, mut after_close, mut same_side) = (0, 0, 0, 0);
        for (l, r) in live.iter().zip(&replayed.points) {
            assert_eq!(l.timestamp_ms, r.timestamp_ms);
            let i = (l.timestamp_ms / STEP) as usize;
            let half = (l.band.upper - l.band.lower) / 2.0;
            let apart = (l.band.expected - r.band.expected).abs() / half;
            if i < spike {
                before += 1;
                assert!(
                    apart <= 0.1,
                    "{i}: expected values {:.2} live, {:.2} replayed, {apart:.2} of the band apart",
                    l.band.expected,
                    r.band.expected
                );
            } else if i >= spike + 60 {
                after += 1;
                after_close += usize::from(apart <= 0.5);
            }
            if l.score.map(|s| s > 1.0) == r.score.map(|s| s > 1.0) {
                same_side += 1;
            }
        }
        assert_eq!((before, after), (139, 161));
        assert!(
            4 * after_close >= 3 * after,
            "expected values within half the band on {after_close} of the {after} points from an hour after the spike"
        );
        assert!(
            same_side >= 342,
            "outside the band alike on {same_side} of 360 points"
        );
        // The spike inside the overlap is outside the band in both.
        let spike_ms = (3 * day + 500) as i64 * STEP;
        for points in [&live, &replayed.points] {
            let spike = points
                .iter()
                .find(|p| p.timestamp_ms == spike_ms)
                .expect("spike");
            assert!(spike.score.is_some_and(|s| s > 1.0), "{spike:?}");
        }
    }

    #[test]
    fn too_little_history_is_not_ready() {
        let values = noisy(10);
        let result = trace(
            &values,
            Grid {
                start_ms: 0,
                step_ms: 1000,
            },
            5,
            &model(),
            ProbabilitySettings::default(),
            1,
        );
        assert!(matches!(result, Err(NotReady::TooFewPoints { .. })));
    }
}
