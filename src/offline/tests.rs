use super::csv::{parse, Disorder};
use super::*;
use foretell_core::synthetic::uniform_noise;

const STEP_S: i64 = 300;

/// A daily cycle at 5-minute steps, `days` long, with `spike_at` raised by 80.
fn daily_csv(days: usize, spike_at: Option<usize>) -> String {
    let per_day = 288;
    let mut text = String::from("timestamp,value\n");
    for i in 0..days * per_day {
        let phase = (i % per_day) as f64 / per_day as f64;
        let mut value =
            100.0 + 40.0 * (std::f64::consts::TAU * phase).sin() + 3.0 * uniform_noise(i, 0);
        if spike_at == Some(i) {
            value += 80.0;
        }
        text.push_str(&format!(
            "{},{value:.3}\n",
            1_700_000_100 + i as i64 * STEP_S
        ));
    }
    text
}

fn options(season: SeasonChoice) -> DetectOptions {
    DetectOptions {
        model: ModelOptions {
            season,
            coverage: Coverage::new(0.99).expect("valid"),
            history: None,
            min_points: 30,
        },
        refit_interval: Duration::from_secs(3600),
    }
}

#[test]
fn detect_scores_every_row_and_flags_the_spike() {
    let spike = 288 * 3 + 100;
    let rows = parse(&daily_csv(4, Some(spike)), Disorder::Reject).expect("valid");
    let detections = detect(&rows, &options(SeasonChoice::Auto)).expect("runs");
    assert_eq!(detections.len(), rows.len());
    // Before the model is ready: no score, probability 0.
    assert_eq!(detections[5].score, None);
    assert_eq!(detections[5].probability, 0.0);
    let at_spike = &detections[spike];
    assert!(at_spike.score.expect("scored") > 3.0, "{at_spike:?}");
    assert!(at_spike.probability > 0.5, "{at_spike:?}");
    // Ordinary rows of the days before it carry almost no probability.
    let ordinary: Vec<f64> = detections[288..spike - 12]
        .iter()
        .map(|d| d.probability)
        .collect();
    let mean = ordinary.iter().sum::<f64>() / ordinary.len() as f64;
    assert!(mean < 0.05, "mean probability on ordinary rows {mean}");
    // Ordinary rows of the last day stay mostly inside the band (99% coverage).
    let last_day = &detections[288 * 3..];
    let outside = last_day
        .iter()
        .filter(|d| d.score.is_some_and(|s| s > 1.0))
        .count();
    assert!(
        outside <= 10,
        "{outside} of {} rows outside",
        last_day.len()
    );
    let rendered = render_detections(&detections, false);
    assert!(rendered.starts_with("timestamp,value,anomaly_score,anomaly_probability\n1700000100,"));
    assert_eq!(rendered.lines().count(), rows.len() + 1);
    // With the evidence: the excursion, the confidence and the band, empty before the model is
    // ready; the band holds the expected value, and the spike lies above it.
    let rendered = render_detections(&detections, true);
    let lines: Vec<Vec<&str>> = rendered.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        lines[0][4..],
        [
            "excursion_points",
            "outside_points",
            "peak_sigmas",
            "peak_probability",
            "latest_sigmas",
            "range_excess",
            "familiarity",
            "confidence",
            "expected",
            "lower",
            "upper"
        ]
    );
    assert!(lines[1 + 5][4..].iter().all(|field| field.is_empty()));
    let band = |line: &[&str]| -> [f64; 3] {
        [12, 13, 14].map(|i| line[i].parse::<f64>().expect("a number"))
    };
    let [expected, lower, upper] = band(&lines[1 + spike - 1]);
    assert!(lower < expected && expected < upper, "{:?}", lines[spike]);
    let spike_value: f64 = lines[1 + spike][1].parse().expect("a number");
    assert!(
        spike_value > band(&lines[1 + spike])[2],
        "{:?}",
        lines[1 + spike]
    );
}

#[test]
fn detect_uses_only_the_rows_up_to_each_row() {
    let text = daily_csv(3, None);
    let rows = parse(&text, Disorder::Reject).expect("valid");
    let mut altered = rows.clone();
    let k = 700;
    for row in altered.iter_mut().skip(k) {
        row.value *= 3.0;
    }
    let original = detect(&rows, &options(SeasonChoice::Auto)).expect("runs");
    let changed = detect(&altered, &options(SeasonChoice::Auto)).expect("runs");
    for i in 0..k {
        assert_eq!(original[i].score, changed[i].score, "row {i}");
        assert_eq!(original[i].probability, changed[i].probability, "row {i}");
    }
    assert_ne!(original[k].score, changed[k].score);
}

#[test]
fn repeated_timestamps_repeat_the_previous_output_when_tolerated() {
    let mut text = daily_csv(1, None);
    let last_line = text.lines().last().expect("rows").to_owned();
    text.push_str(&last_line);
    text.push('\n');
    let error = parse(&text, Disorder::Reject).expect_err("duplicate");
    assert!(
        error.to_string().starts_with("line 290: timestamp"),
        "{error}"
    );
    let rows = parse(&text, Disorder::Tolerate).expect("tolerated");
    let detections = detect(&rows, &options(SeasonChoice::None)).expect("runs");
    let n = detections.len();
    assert_eq!(detections[n - 1].score, detections[n - 2].score);
    assert_eq!(detections[n - 1].probability, detections[n - 2].probability);
}

#[test]
fn forecast_follows_the_daily_cycle() {
    let rows = parse(&daily_csv(4, None), Disorder::Reject).expect("valid");
    let model = options(SeasonChoice::Period(Duration::from_secs(86_400))).model;
    let (forecast_rows, description) = forecast(&rows, &model, 288).expect("forecasts");
    assert_eq!(forecast_rows.len(), 288);
    assert!(description.contains("MSTL[288]"), "{description}");
    for row in forecast_rows.iter().step_by(24) {
        let i = 288 * 4 + row.step as usize - 1;
        let phase = (i % 288) as f64 / 288.0;
        let truth = 100.0 + 40.0 * (std::f64::consts::TAU * phase).sin();
        assert!((row.forecast - truth).abs() < 5.0, "{row:?} vs {truth}");
        assert!(row.lower < truth && truth < row.upper, "{row:?} vs {truth}");
    }
    // Each step is dated: the newest row's time plus that many 5-minute steps, in UTC.
    let newest_s = 1_700_000_100 + (288 * 4 - 1) * STEP_S;
    assert_eq!(forecast_rows[0].timestamp_ms, (newest_s + STEP_S) * 1000);
    assert_eq!(
        forecast_rows[11].timestamp_ms,
        (newest_s + 12 * STEP_S) * 1000
    );
    let text = render_forecast(&forecast_rows[..1]);
    assert!(
        text.starts_with("step,timestamp,forecast,lower,upper\n1,2023-11-18T22:15:00Z,"),
        "{text}"
    );
}

#[test]
fn impossible_seasons_and_horizons_are_flag_errors() {
    let rows = parse(&daily_csv(1, None), Disorder::Reject).expect("valid");
    let model = options(SeasonChoice::Period(Duration::from_secs(86_400))).model;
    let error = forecast(&rows, &model, 10).expect_err("one day cannot hold two daily cycles");
    assert!(
        error
            .to_string()
            .starts_with("--season: a season of 288 steps needs a history of two periods"),
        "{error}"
    );
    assert_eq!(SeasonChoice::parse("48"), Ok(SeasonChoice::Points(48)));
    assert_eq!(
        SeasonChoice::parse("1d"),
        Ok(SeasonChoice::Period(Duration::from_secs(86_400)))
    );
    assert!(SeasonChoice::parse("1").is_err());
    assert!(SeasonChoice::parse("daily")
        .expect_err("bad")
        .to_string()
        .contains("`auto`, `none`"));
    assert_eq!(horizon_steps("12", &rows), Ok(12));
    assert_eq!(horizon_steps("1h", &rows), Ok(12));
    assert!(horizon_steps("0", &rows).is_err());
    let one_row = parse("timestamp,value\n1,1", Disorder::Reject).expect("valid");
    assert_eq!(
        detect(&one_row, &options(SeasonChoice::Auto)).err(),
        Some(OfflineError::NoStep)
    );
}

#[test]
fn a_row_belongs_to_the_nearest_grid_point() {
    let step = 300_000;
    assert_eq!(nearest_slot(600_000, step), 600_000);
    assert_eq!(
        nearest_slot(600_000 - 60_000, step),
        600_000,
        "a minute early"
    );
    assert_eq!(
        nearest_slot(600_000 + 60_000, step),
        600_000,
        "a minute late"
    );
    assert_eq!(
        nearest_slot(600_000 + 150_000, step),
        900_000,
        "half a step rounds up"
    );
    assert_eq!(nearest_slot(-60_000, step), 0, "before 1970 too");
    assert_eq!(nearest_slot(-200_000, step), -300_000);
}

#[test]
fn command_line_times_are_relative_to_now_or_absolute() {
    let now = 1_700_000_000_000;
    assert_eq!(parse_instant("now", now), Ok(now));
    assert_eq!(parse_instant(" now-2h ", now), Ok(now - 7_200_000));
    assert_eq!(parse_instant("1700000000", now), Ok(now));
    assert_eq!(parse_instant("2023-11-14T22:13:20Z", now), Ok(now));
    assert_eq!(
        parse_instant("now+1h", now),
        Err("`now+1h`: write now or now-DURATION, e.g. now-7d".to_owned())
    );
    let error = parse_instant("yesterday", now).expect_err("not a time");
    assert!(error.ends_with(", or now-DURATION"), "{error}");
}

/// Regression cases of the anomalies issue, each on small generated series: one anomaly
/// injected at `ANOMALY_AT` into four days of 5-minute data that are ordinary before it.
///
/// Each case runs on [`SEEDS`] series that differ only in their noise. The anomaly must be
/// found early on every one of them; on the ordinary rows an onset is a matter of chance (noise
/// occasionally sets a new high of a young series, or lines up three large errors), so those
/// are counted over all the series and held to a rate.
mod anomaly_cases {
    use super::*;
    use foretell_core::model::ProbabilitySettings;

    const PER_DAY: usize = 288;
    const ANOMALY_AT: usize = 3 * PER_DAY + 100;
    /// Noise streams per case.
    const SEEDS: usize = 8;
    /// Ordinary rows judged per series: from the end of the first day (the model's first
    /// cycle) to the anomaly.
    const ORDINARY_ROWS: usize = ANOMALY_AT - PER_DAY;
    /// At most one onset by chance per this many ordinary rows, about a week of 5-minute points
    /// (two over a case's eight series).
    const ORDINARY_ROWS_PER_CHANCE_ONSET: usize = 2_000;

    /// The noise stream `stream` of series `seed`: seed 0 is each case's original series.
    fn noise(i: usize, stream: usize, seed: usize) -> f64 {
        uniform_noise(i, stream + 1_000 * seed)
    }

    fn daily(i: usize) -> f64 {
        let phase = (i % PER_DAY) as f64 / PER_DAY as f64;
        100.0 + 40.0 * (std::f64::consts::TAU * phase).sin()
    }

    fn csv_of(points: &[(i64, f64)]) -> String {
        let mut text = String::from("timestamp,value\n");
        for (t, v) in points {
            text.push_str(&format!("{t},{v:.4}\n"));
        }
        text
    }

    fn regular(values: impl Iterator<Item = f64>) -> Vec<(i64, f64)> {
        values
            .enumerate()
            .map(|(i, v)| (1_700_000_100 + i as i64 * STEP_S, v))
            .collect()
    }

    /// Rows (by index) whose probability reached the onset level.
    fn onsets(text: &str) -> Vec<usize> {
        let rows = parse(text, Disorder::Tolerate).expect("valid");
        let detections = detect(&rows, &options(SeasonChoice::Auto)).expect("runs");
        let onset = ProbabilitySettings::default().onset_probability();
        detections
            .iter()
            .enumerate()
            .filter(|(_, d)| d.probability >= onset)
            .map(|(i, _)| i)
            .collect()
    }

    /// Onsets on the ordinary rows of one series.
    fn ordinary(found: &[usize]) -> Vec<usize> {
        found
            .iter()
            .copied()
            .filter(|i| (PER_DAY..ANOMALY_AT).contains(i))
            .collect()
    }

    /// Every series has an onset within `within` rows of the anomaly and at most two in the 200
    /// rows after it (one incident, one alarm: the aftermath is one episode, not a stream);
    /// onsets on ordinary rows are rare ([`assert_ordinary_rate`]).
    fn assert_one_early_onset(series: impl Fn(usize) -> String, within: usize) {
        let mut by_chance = Vec::new();
        for seed in 0..SEEDS {
            let found = onsets(&series(seed));
            let after: Vec<usize> = found.iter().copied().filter(|i| *i >= ANOMALY_AT).collect();
            assert!(
                after.first().is_some_and(|i| *i < ANOMALY_AT + within),
                "series {seed}: no onset within {within} rows of the anomaly: {after:?}"
            );
            let soon = after.iter().filter(|i| **i < ANOMALY_AT + 200).count();
            assert!(
                soon <= 2,
                "series {seed}: {soon} onsets for one incident: {after:?}"
            );
            by_chance.extend(ordinary(&found).into_iter().map(|i| (seed, i)));
        }
        assert_ordinary_rate(&by_chance);
    }

    /// `(series, row)` of the onsets on the ordinary rows of all series: at most one per
    /// [`ORDINARY_ROWS_PER_CHANCE_ONSET`]. A model whose surprise changes scale when a refit
    /// adds a season (two days in) opens one on most series at once.
    fn assert_ordinary_rate(by_chance: &[(usize, usize)]) {
        let max_ordinary = SEEDS * ORDINARY_ROWS / ORDINARY_ROWS_PER_CHANCE_ONSET;
        assert!(
            by_chance.len() <= max_ordinary,
            "{} onsets on {} ordinary rows (at most {max_ordinary}): {by_chance:?}",
            by_chance.len(),
            SEEDS * ORDINARY_ROWS
        );
    }

    #[test]
    fn a_level_shift_is_one_early_onset() {
        let series = |seed| {
            csv_of(&regular((0..4 * PER_DAY).map(|i| {
                let shift = if i >= ANOMALY_AT { -15.0 } else { 0.0 };
                daily(i) + 3.0 * noise(i, 1, seed) + shift
            })))
        };
        assert_one_early_onset(series, 6);
    }

    #[test]
    fn a_variance_change_is_one_early_onset() {
        let series = |seed| {
            csv_of(&regular((0..4 * PER_DAY).map(|i| {
                let amplitude = if i >= ANOMALY_AT { 30.0 } else { 3.0 };
                daily(i) + amplitude * noise(i, 2, seed)
            })))
        };
        assert_one_early_onset(series, 24);
    }

    /// `ordinary`, except that for four hours from `ANOMALY_AT` it repeats the value before.
    fn stuck_for_four_hours(ordinary: impl Fn(usize) -> f64) -> String {
        let stuck = ordinary(ANOMALY_AT - 1);
        let values = (0..4 * PER_DAY).map(|i| {
            if (ANOMALY_AT..ANOMALY_AT + 48).contains(&i) {
                stuck
            } else {
                ordinary(i)
            }
        });
        csv_of(&regular(values))
    }

    #[test]
    fn a_series_stuck_at_one_value_is_one_early_onset() {
        let series = |seed| stuck_for_four_hours(|i| daily(i) + 3.0 * noise(i, 3, seed));
        assert_one_early_onset(series, 24);
    }

    #[test]
    fn a_noisy_series_without_a_cycle_that_flatlines_is_one_early_onset() {
        // Without a cycle the forecast follows the stuck value: only the repetition is odd.
        let series = |seed| stuck_for_four_hours(|i| 50.0 + 8.0 * noise(i, 8, seed));
        assert_one_early_onset(series, 24);
    }

    /// A count-like series with a burst every few hours, of one of five heights up to three
    /// times the base: the surprise learns that bursts are common, and the tallest comes in
    /// the first hours, so the range is known before the incident.
    fn bursty(i: usize, seed: usize) -> f64 {
        const HEIGHTS: [f64; 5] = [30.0, 100.0, 60.0, 80.0, 45.0];
        let base = 50.0 + 5.0 * noise(i, 9, seed);
        let burst_at = i.is_multiple_of(37) || i.is_multiple_of(53);
        if burst_at {
            base + HEIGHTS[(i / 37 + i / 53) % HEIGHTS.len()]
        } else {
            base
        }
    }

    #[test]
    fn a_burst_taller_than_any_of_the_week_is_one_early_onset() {
        // Ordinary bursts reach up to 152.5; the incident is one burst to 200, half the range's
        // width beyond it. Its surprise is only about 1.5 times an ordinary burst's, which the
        // surprise's long-term statistics have learnt to expect.
        let series = |seed| {
            csv_of(&regular((0..4 * PER_DAY).map(|i| {
                if i == ANOMALY_AT {
                    200.0
                } else {
                    bursty(i, seed)
                }
            })))
        };
        assert_one_early_onset(series, 1);
    }

    #[test]
    fn a_burst_the_series_has_shown_on_four_earlier_occasions_is_no_new_incident() {
        // A queue that is mostly empty (a fifth of the time 1 to 3 items) and a batch job that
        // fills it through the same four lengths every seven hours or so from the second day
        // (once the surprise's statistics have a day behind them), at no fixed time of day (so
        // no seasonal profile learns it).
        const JOB: [f64; 4] = [40.0, 70.0, 55.0, 30.0];
        let starts: Vec<usize> = (0..10).map(|k| PER_DAY + k * 83 + (k * k) % 11).collect();
        let series = |seed| {
            csv_of(&regular((0..4 * PER_DAY).map(|i| {
                match starts.iter().find(|&&s| (s..s + JOB.len()).contains(&i)) {
                    Some(&s) => JOB[i - s],
                    None if noise(i, 13, seed) > 0.3 => {
                        (1.0 + 3.0 * (noise(i, 14, seed) + 0.5)).floor()
                    }
                    None => 0.0,
                }
            })))
        };
        let mut familiar_onsets = Vec::new();
        for seed in 0..SEEDS {
            let text = series(seed);
            let found = onsets(&text);
            let opened = |s: usize| found.iter().any(|i| (s..s + JOB.len()).contains(i));
            // The job's burst opens an episode while it is new...
            let first = starts[0];
            assert!(
                opened(first),
                "series {seed}: no onset at the first burst, {first}: {found:?}"
            );
            // ...and no longer once it has been seen on four earlier occasions.
            familiar_onsets.extend(
                starts[4..]
                    .iter()
                    .filter(|&&s| opened(s))
                    .map(|&s| (seed, s)),
            );
            // The evidence says why: the excursion of a late burst records its familiarity.
            let rows = parse(&text, Disorder::Tolerate).expect("valid");
            let detections = detect(&rows, &options(SeasonChoice::Auto)).expect("runs");
            let most_familiar = |s: usize| {
                detections[s..s + JOB.len()]
                    .iter()
                    .map(|d| d.excursion.familiarity)
                    .fold(0.0, f64::max)
            };
            let recorded = starts[4..].iter().map(|&s| most_familiar(s));
            assert!(
                recorded.clone().any(|f| f > 0.5),
                "series {seed}: no late burst records its familiarity: {:?}",
                recorded.collect::<Vec<_>>()
            );
            assert_eq!(most_familiar(first), 0.0, "series {seed}");
        }
        assert!(
            familiar_onsets.is_empty(),
            "onsets at familiar bursts: {familiar_onsets:?}"
        );
    }

    #[test]
    fn a_series_that_trends_to_new_highs_the_model_foresaw_raises_no_onset() {
        // A daily cycle on a steady rise: every day's peak is the highest so far, as forecast.
        let mut by_chance = Vec::new();
        for seed in 0..SEEDS {
            let values =
                (0..4 * PER_DAY).map(|i| daily(i) + 0.1 * i as f64 + 3.0 * noise(i, 12, seed));
            let found = onsets(&csv_of(&regular(values)));
            by_chance.extend(
                found
                    .into_iter()
                    .filter(|i| *i >= PER_DAY)
                    .map(|i| (seed, i)),
            );
        }
        // Strict, not a rate: on these eight series neither the range (every peak is a new high)
        // nor the noise opens one.
        assert!(
            by_chance.is_empty(),
            "onsets on ordinary rows: {by_chance:?}"
        );
    }

    #[test]
    fn irregular_steps_gaps_and_repeated_timestamps_are_ordinary_input() {
        let anomaly_ms = 1_700_000_100_000 + ANOMALY_AT as i64 * STEP_S * 1000;
        let first_day_ms = 1_700_000_100_000 + PER_DAY as i64 * STEP_S * 1000;
        let mut by_chance = Vec::new();
        for seed in 0..SEEDS {
            let mut points = Vec::new();
            for i in 0..4 * PER_DAY {
                // About one row in twelve is missing; the others arrive up to a minute late or
                // early (so two rows may fall in one step's slot), and about one in twenty is
                // sent twice.
                if noise(i, 4, seed) > 0.42 && i != ANOMALY_AT {
                    continue;
                }
                let jitter = (noise(i, 5, seed) * 120.0) as i64;
                let t = 1_700_000_100 + i as i64 * STEP_S + jitter;
                let mut value = daily(i) + 3.0 * noise(i, 6, seed);
                if i == ANOMALY_AT {
                    value += 60.0;
                }
                points.push((t, value));
                if noise(i, 7, seed) > 0.45 {
                    points.push((t, value));
                }
            }
            let text = csv_of(&points);
            let rows = parse(&text, Disorder::Tolerate).expect("valid");
            let found = onsets(&text);
            let spike_row = rows
                .iter()
                .position(|r| r.value > daily(ANOMALY_AT) + 50.0)
                .expect("the spike's row");
            assert!(
                found.contains(&spike_row),
                "series {seed}: the spike at row {spike_row} is no onset: {found:?}"
            );
            // Ordinary rows: after the first day, up to a minute (the jitter) before the spike.
            by_chance.extend(
                found
                    .iter()
                    .filter(|i| {
                        let t = rows[**i].timestamp_ms;
                        t > first_day_ms && t < anomaly_ms - 60_000
                    })
                    .map(|i| (seed, *i)),
            );
        }
        assert_ordinary_rate(&by_chance);
    }
}

#[test]
fn detect_reports_its_progress_in_order_and_once_at_the_end() {
    let rows = parse(&daily_csv(8, None), Disorder::Reject).expect("valid");
    let mut calls = Vec::new();
    let detections = detect_reporting(&rows, &options(SeasonChoice::Auto), &mut |done, total| {
        calls.push((done, total))
    })
    .expect("runs");
    assert_eq!(detections.len(), rows.len());
    assert_eq!(calls.first(), Some(&(0, rows.len())));
    assert_eq!(calls.last(), Some(&(rows.len(), rows.len())));
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0), "{calls:?}");
    // Every thousand rows: a 2,304-row file reports at 0, 1,000, 2,000 and its end.
    assert_eq!(calls.len(), 4, "{calls:?}");
}

mod plots {
    use super::*;
    use crate::views::chart as svg;

    fn frame(subtitle: &str) -> svg::Frame<'_> {
        svg::Frame {
            title: "daily.csv",
            subtitle,
            unit: "",
            width: svg::DEFAULT_WIDTH,
        }
    }

    #[test]
    fn a_detect_plot_shows_every_judged_row_its_band_and_the_onset() {
        let spike = 288 * 3 + 100;
        let rows = parse(&daily_csv(4, Some(spike)), Disorder::Reject).expect("valid");
        let detections = detect(&rows, &options(SeasonChoice::Auto)).expect("runs");
        let trace = plot::detection_trace(&detections, 0.99);
        let judged = detections.iter().filter(|d| d.band.is_some()).count();
        assert_eq!(trace.points.len(), judged);
        assert!(judged > rows.len() - 100, "{judged} of {}", rows.len());
        let at_spike = trace
            .points
            .iter()
            .find(|p| p.timestamp_ms == rows[spike].timestamp_ms)
            .expect("the spike is drawn");
        assert!(at_spike.probability >= trace.onset_probability);
        let drawn = svg::render(&trace, &frame("foretell detect"));
        assert!(drawn.contains(r#"class="band" d="M"#), "no band");
        assert_eq!(drawn.matches(r#"class="episode""#).count(), 1, "{drawn}");
    }

    #[test]
    fn a_detect_plot_leaves_out_rows_that_repeat_a_timestamp() {
        let mut text = daily_csv(2, None);
        let last = text.lines().last().expect("rows").to_owned();
        text.push_str(&format!("{last}\n"));
        let rows = parse(&text, Disorder::Tolerate).expect("valid");
        let detections = detect(&rows, &options(SeasonChoice::Auto)).expect("runs");
        let trace = plot::detection_trace(&detections, 0.99);
        let times: Vec<i64> = trace.points.iter().map(|p| p.timestamp_ms).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        // The repeated row carries the previous row's output, band included, but is no point.
        let judged = detections.iter().filter(|d| d.band.is_some()).count();
        assert_eq!(trace.points.len(), judged - 1);
    }

    #[test]
    fn a_forecast_plot_shows_the_newest_rows_and_the_forecast_with_its_interval() {
        let rows = parse(&daily_csv(4, None), Disorder::Reject).expect("valid");
        let model = options(SeasonChoice::Auto).model;
        let (forecast_rows, _) = forecast(&rows, &model, 288).expect("forecasts");
        let trace = plot::forecast_trace(&rows, &forecast_rows, 0.99, 600);
        assert_eq!(trace.points.len(), 600);
        assert_eq!(
            trace.points.last().map(|p| p.timestamp_ms),
            rows.last().map(|r| r.timestamp_ms)
        );
        assert_eq!(trace.forecast.len(), 288);
        let drawn = svg::render(&trace, &frame("foretell forecast"));
        assert!(
            drawn.contains(r#"class="forecast-band" d="M"#),
            "no interval"
        );
        assert!(
            drawn.contains(r#"class="forecast" d="M"#),
            "no forecast line"
        );
        // The history has no band of its own to draw.
        assert!(drawn.contains(r#"class="band" d="""#), "{drawn}");
    }
}
