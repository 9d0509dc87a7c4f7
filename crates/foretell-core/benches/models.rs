//! Model throughput: `cargo bench -p foretell-core --bench models`.
//!
//! Measures, on 2,016-point series (7 days at 5 minutes, a daily cycle, noise and a trend):
//! augurs AutoETS fitted from scratch (the reference), foretell's cold fit, its warm refit
//! (what the sidecar does every `refit_interval`), and one online update plus score and
//! probability (what it does for every new point between refits). Wall-clock on one core; the
//! machine's other core should be idle.

// A benchmark is a stopwatch around the core: it reads the clock the core itself never does.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use augurs_core::Fit;
use foretell_core::model::{
    familiarity, Coverage, ForecastModel, ProbabilitySettings, SeasonSpec, SurpriseHistory,
};
use foretell_core::synthetic::uniform_noise;

const POINTS: usize = 2016;
const SERIES: usize = 40;

fn series(seed: usize, len: usize) -> Vec<f64> {
    (0..len)
        .map(|i| {
            let phase = (i % 288) as f64 / 288.0;
            100.0
                + 0.01 * i as f64
                + 30.0 * (std::f64::consts::TAU * phase).sin()
                + 6.0 * uniform_noise(i, seed)
        })
        .collect()
}

fn time_per(label: &str, count: usize, mut run: impl FnMut(usize)) -> Duration {
    let start = Instant::now();
    for i in 0..count {
        run(i);
    }
    let per = start.elapsed() / count as u32;
    println!(
        "{label:<58} {:>10.3} ms  {:>9.1} /s",
        per.as_secs_f64() * 1e3,
        1.0 / per.as_secs_f64()
    );
    per
}

fn main() {
    let data: Vec<Vec<f64>> = (0..SERIES).map(|s| series(s, POINTS + 288)).collect();
    let model = |season| ForecastModel {
        coverage: Coverage::new(0.99).unwrap_or_else(|_| unreachable!()),
        min_points: 30,
        season,
        // The sidecar's default horizon, an hour at 5 minutes: refits validate their model
        // choice there.
        horizon_steps: 12,
    };
    println!("{SERIES} series of {POINTS} points; per series:");
    let augurs = time_per(
        "augurs AutoETS, non-seasonal, from scratch (reference)",
        SERIES,
        |s| {
            black_box(
                augurs_ets::AutoETS::non_seasonal()
                    .fit(&data[s][..POINTS])
                    .ok(),
            );
        },
    );
    let none = model(SeasonSpec::None);
    let cold = time_per(
        "foretell ETS, cold fit (trend form selected by AICc)",
        SERIES,
        |s| {
            black_box(none.fit(&data[s][..POINTS], None).ok());
        },
    );
    let fitted: Vec<_> = data
        .iter()
        .filter_map(|d| none.fit(&d[..POINTS - 12], None).ok())
        .collect();
    let warm = time_per(
        "foretell ETS, warm refit (the sidecar's hourly refit)",
        SERIES,
        |s| {
            black_box(none.fit(&data[s][12..POINTS], Some(&fitted[s].model)).ok());
        },
    );
    let seasonal = model(SeasonSpec::Periods(vec![288]));
    let seasonal_fitted: Vec<_> = data
        .iter()
        .filter_map(|d| seasonal.fit(&d[..POINTS - 12], None).ok())
        .collect();
    let mstl = time_per("foretell MSTL(288) + ETS, warm refit", SERIES, |s| {
        black_box(
            seasonal
                .fit(&data[s][12..POINTS], Some(&seasonal_fitted[s].model))
                .ok(),
        );
    });
    let detect = model(SeasonSpec::Auto(vec![288]));
    time_per(
        "foretell auto season (detect + MSTL + ETS), cold fit",
        SERIES,
        |s| {
            black_box(detect.fit(&data[s][..POINTS], None).ok());
        },
    );
    println!(
        "refit throughput vs augurs from scratch: ETS warm {:.1}x, MSTL+ETS warm {:.1}x, ETS cold {:.1}x",
        augurs.as_secs_f64() / warm.as_secs_f64(),
        augurs.as_secs_f64() / mstl.as_secs_f64(),
        augurs.as_secs_f64() / cold.as_secs_f64()
    );
    // What the tracker does per new point: predict, score, update the state, and update the
    // anomaly probability and its flat-line evidence (warmed up on the fit's in-sample
    // surprises and values, as the tracker does).
    let mut online: Vec<_> = seasonal_fitted
        .into_iter()
        .zip(&data)
        .map(|(fit, values)| {
            let mut probability = SurpriseHistory::new(ProbabilitySettings::default());
            fit.in_sample_surprises
                .iter()
                .for_each(|s| probability.learn(*s));
            values[..POINTS - 12]
                .iter()
                .for_each(|v| probability.learn_value(*v));
            (fit.model, probability)
        })
        .collect();
    let updates = 288usize;
    let start = Instant::now();
    let mut checksum = 0.0;
    for k in 0..updates {
        for (s, (model, probability)) in online.iter_mut().enumerate() {
            let value = data[s][POINTS - 12 + k];
            let observation = model.observe(value);
            checksum += observation.score.unwrap_or(0.0) + probability.observe(&observation, value);
        }
    }
    let per = start.elapsed().as_secs_f64() / (updates * online.len()) as f64;
    black_box(checksum);
    println!(
        "online update + score + probability (MSTL + ETS), per point: {:>7.3} µs",
        per * 1e6
    );
    // At an onset only (at most once per anomaly episode of 200 points): is the stretch that
    // opened it a familiar one? Over a window of two days at one minute and of 15 days at five
    // (`detect`'s), with a daily season.
    for (label, len, period) in [("2 days at 1m", 2880, 1440), ("15 days at 5m", 4320, 288)] {
        let windows: Vec<Vec<f64>> = (0..SERIES).map(|s| series(s, len)).collect();
        let rounds = 20;
        let start = Instant::now();
        let mut total = 0.0;
        for _ in 0..rounds {
            for window in &windows {
                total += familiarity::onset_factor(window, Some(period));
            }
        }
        black_box(total);
        let per = start.elapsed().as_secs_f64() / (rounds * windows.len()) as f64;
        println!(
            "familiarity check at an onset, window of {label}: {:>7.1} µs ({:.3} µs a point over an episode)",
            per * 1e6,
            per * 1e6 / 200.0
        );
    }
}
