//! Deterministic demo series with a daily cycle, for the quickstart and the end-to-end tests.
//!
//! Each series has the same formula twice: evaluated here for backfilled history
//! (OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`), and as a PromQL
//! expression for a recording rule that continues the series live in Prometheus. The noise is
//! a product of two short sines, so both forms agree without a shared random generator; a
//! series' noise phase shifts both sines, so siblings get noise of their own.

use std::f64::consts::TAU;
use std::fmt::Write as _;

use crate::exposition::format_value;

const DAY_SECS: f64 = 86_400.0;
const NOISE_PERIODS_SECS: (f64, f64) = (97.0, 31.0);

/// Deterministic pseudo-random noise, uniform in [-0.5, 0.5): the `i`-th value of stream `seed`
/// (SplitMix64's output function on the stream's counter). Tests, benchmarks and evaluations
/// use it so their series are the same on every run and machine. A plain multiplicative step of
/// the index is not noise: neighbouring values then differ by a constant modulo 1, a sawtooth
/// that a model can learn and a test can pass on for the wrong reason.
pub fn uniform_noise(i: usize, seed: usize) -> f64 {
    let mut z = (i as u64)
        .wrapping_add((seed as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) - 0.5
}

/// A bump added to a series between two instants (seconds since the epoch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spike {
    pub start_secs: f64,
    pub end_secs: f64,
    pub height: f64,
}

/// A slow divergence: from `start_secs` on, the series climbs by `per_hour` every hour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Drift {
    pub start_secs: f64,
    pub per_hour: f64,
}

/// One synthetic series: `base + daily_amplitude·sin(2π(t + phase)/1d) + noise + spikes +
/// drift`.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoSeries {
    pub metric: String,
    pub labels: Vec<(String, String)>,
    pub base: f64,
    pub daily_amplitude: f64,
    pub phase_secs: f64,
    pub noise_amplitude: f64,
    /// Shifts the noise's two sines: series with different phases have different noise.
    pub noise_phase_secs: f64,
    pub spikes: Vec<Spike>,
    pub drift: Option<Drift>,
}

impl DemoSeries {
    pub fn value_at(&self, t_secs: f64) -> f64 {
        let daily = self.daily_amplitude * (TAU * (t_secs + self.phase_secs) / DAY_SECS).sin();
        let noisy_t = t_secs + self.noise_phase_secs;
        let noise = self.noise_amplitude
            * (TAU * noisy_t / NOISE_PERIODS_SECS.0).sin()
            * (TAU * noisy_t / NOISE_PERIODS_SECS.1).sin();
        let spikes: f64 = self
            .spikes
            .iter()
            .filter(|s| t_secs >= s.start_secs && t_secs < s.end_secs)
            .map(|s| s.height)
            .sum();
        let drift = self.drift.map_or(0.0, |d| {
            d.per_hour * (t_secs - d.start_secs).max(0.0) / 3600.0
        });
        self.base + daily + noise + spikes + drift
    }

    /// A PromQL expression returning this series' value at evaluation time, as a vector
    /// (PromQL's `sin` takes a vector, hence the `vector(...)` wrappers).
    pub fn promql(&self) -> String {
        let mut expr = format!(
            "{} + {} * sin(vector(2 * pi() * (time() + {}) / {})) + {} * sin(vector(2 * pi() * (time() + {}) / {})) * sin(vector(2 * pi() * (time() + {}) / {}))",
            format_value(self.base),
            format_value(self.daily_amplitude),
            format_value(self.phase_secs),
            format_value(DAY_SECS),
            format_value(self.noise_amplitude),
            format_value(self.noise_phase_secs),
            format_value(NOISE_PERIODS_SECS.0),
            format_value(self.noise_phase_secs),
            format_value(NOISE_PERIODS_SECS.1),
        );
        for spike in &self.spikes {
            let _ = write!(
                expr,
                " + {} * (vector(time()) >= bool {}) * (vector(time()) < bool {})",
                format_value(spike.height),
                format_value(spike.start_secs),
                format_value(spike.end_secs)
            );
        }
        if let Some(drift) = self.drift {
            let _ = write!(
                expr,
                " + {} * clamp_min(vector(time()) - {}, 0) / 3600",
                format_value(drift.per_hour),
                format_value(drift.start_secs)
            );
        }
        expr
    }

    fn selector_labels(&self) -> String {
        self.labels
            .iter()
            .map(|(name, value)| {
                format!(
                    "{name}=\"{}\"",
                    value.replace('\\', "\\\\").replace('"', "\\\"")
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// OpenMetrics text with every series sampled every `step_secs` in `[start_secs, end_secs]`,
/// in time order, as `promtool tsdb create-blocks-from openmetrics` reads it.
pub fn openmetrics_history(
    series: &[DemoSeries],
    start_secs: i64,
    end_secs: i64,
    step_secs: i64,
) -> String {
    let mut out = String::new();
    let mut metrics: Vec<&str> = series.iter().map(|s| s.metric.as_str()).collect();
    metrics.dedup();
    for metric in &metrics {
        let _ = writeln!(out, "# TYPE {metric} gauge");
    }
    let mut t = start_secs;
    while t <= end_secs {
        for s in series {
            let _ = writeln!(
                out,
                "{}{{{}}} {} {}",
                s.metric,
                s.selector_labels(),
                format_value(s.value_at(t as f64)),
                t
            );
        }
        t += step_secs.max(1);
    }
    out.push_str("# EOF\n");
    out
}

/// A Prometheus rules file with one recording rule per series, evaluated every
/// `interval_secs`, so the series continue live after the backfilled history.
pub fn recording_rules(series: &[DemoSeries], interval_secs: u32) -> String {
    let mut out = format!(
        "groups:\n  - name: foretell-demo-source\n    interval: {interval_secs}s\n    rules:\n"
    );
    for s in series {
        let _ = writeln!(out, "      - record: {}", s.metric);
        let _ = writeln!(out, "        expr: '{}'", s.promql());
        out.push_str("        labels:\n");
        for (name, value) in &s.labels {
            let _ = writeln!(out, "          {name}: '{}'", value.replace('\'', "''"));
        }
    }
    out
}

/// The demo set: `count` (at least 3) `demo_requests_per_second` series of a web service with
/// phase-shifted daily cycles. The first three are `web-a`, `web-b`, `web-c`; `web-a` has a
/// past spike 30 hours before `history_end_secs` and optionally a live one. Further series,
/// `web-0003` on, get levels, amplitudes and phases spread deterministically by their index.
pub fn demo_set(count: usize, history_end_secs: i64, live_spike: Option<Spike>) -> Vec<DemoSeries> {
    let series = |instance: &str, base: f64, amplitude: f64, phase: f64| DemoSeries {
        metric: "demo_requests_per_second".to_owned(),
        labels: vec![
            ("instance".to_owned(), instance.to_owned()),
            ("job".to_owned(), "demo".to_owned()),
        ],
        base,
        daily_amplitude: amplitude,
        phase_secs: phase,
        noise_amplitude: 2.0,
        noise_phase_secs: 0.0,
        spikes: Vec::new(),
        drift: None,
    };
    let mut a = series("web-a", 50.0, 20.0, 0.0);
    // A past blip, 30 hours back: in the history the baseline must shrug off, and at a
    // different time of day than the end of the history, where live checks happen. It is less
    // than half the height of the demo's live incident: an outage bigger than anything the
    // week held is what the demo shows (an incident no higher than last week's range gets
    // less confidence, by design: see docs/confidence.md).
    let past_spike = (history_end_secs - 30 * 3600) as f64;
    a.spikes.push(Spike {
        start_secs: past_spike,
        end_secs: past_spike + 300.0,
        height: 25.0,
    });
    a.spikes.extend(live_spike);
    let mut set = vec![
        a,
        series("web-b", 80.0, 30.0, 21_600.0),
        series("web-c", 20.0, 5.0, 43_200.0),
    ];
    for i in 3..count {
        let spread = (i as f64 * 0.618_033_988_75).fract();
        set.push(series(
            &format!("web-{i:04}"),
            20.0 + 100.0 * spread,
            5.0 + 25.0 * (1.0 - spread),
            DAY_SECS * spread,
        ));
    }
    set
}

/// The metric of [`demo_peer_set`].
pub const PEER_METRIC: &str = "demo_request_latency_seconds";

/// The instance of [`demo_peer_set`] that drifts away from its peers.
pub const DRIFTING_INSTANCE: &str = "api-4";

/// Siblings for peer outliers: `demo_request_latency_seconds` of five instances `api-1` to
/// `api-5` of one service, sharing a daily shape (120 ms ± 40 ms) with noise of their own. One,
/// `api-4`, has been drifting up by 12 ms an hour since two hours before `history_end_secs`,
/// and keeps drifting: slowly enough that its own baseline takes it for a trend, while next to
/// its peers it is the odd one out from the start.
pub fn demo_peer_set(history_end_secs: i64) -> Vec<DemoSeries> {
    (1..=5)
        .map(|i| {
            let instance = format!("api-{i}");
            let drift = (instance == DRIFTING_INSTANCE).then(|| Drift {
                start_secs: (history_end_secs - 2 * 3600) as f64,
                per_hour: 0.012,
            });
            DemoSeries {
                metric: PEER_METRIC.to_owned(),
                labels: vec![
                    ("instance".to_owned(), instance),
                    ("job".to_owned(), "demo".to_owned()),
                ],
                base: 0.12,
                daily_amplitude: 0.04,
                phase_secs: 0.0,
                noise_amplitude: 0.006,
                // Unrelated offsets (in seconds) within the noise's periods.
                noise_phase_secs: 13.7 * i as f64,
                spikes: Vec::new(),
                drift,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one() -> DemoSeries {
        DemoSeries {
            metric: "m".into(),
            labels: vec![("instance".into(), "a".into())],
            base: 10.0,
            daily_amplitude: 2.0,
            phase_secs: 0.0,
            noise_amplitude: 0.0,
            noise_phase_secs: 0.0,
            spikes: vec![Spike {
                start_secs: 100.0,
                end_secs: 200.0,
                height: 5.0,
            }],
            drift: None,
        }
    }

    /// The noise the tests' series are made of must be noise: a stream whose neighbours are
    /// related (the multiplicative step this replaced had a lag-3 autocorrelation of 0.80) is a
    /// pattern a model can learn, and a test then passes for the wrong reason.
    #[test]
    fn uniform_noise_is_uniform_and_uncorrelated_within_and_across_streams() {
        const N: usize = 20_000;
        let stream = |seed: usize| -> Vec<f64> { (0..N).map(|i| uniform_noise(i, seed)).collect() };
        let correlation = |a: &[f64], b: &[f64]| -> f64 {
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let (ma, mb) = (mean(a), mean(b));
            let covariance: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
            let spread = |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>().sqrt();
            covariance / (spread(a, ma) * spread(b, mb))
        };
        // Four standard errors of a correlation over this many pairs.
        let bound = 4.0 / (N as f64).sqrt();
        for seed in 0..3 {
            let values = stream(seed);
            assert!(values.iter().all(|v| (-0.5..0.5).contains(v)));
            let mean = values.iter().sum::<f64>() / N as f64;
            let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / N as f64;
            assert!(mean.abs() < 0.01, "seed {seed}: mean {mean}");
            assert!(
                (variance - 1.0 / 12.0).abs() < 0.003,
                "seed {seed}: variance {variance}"
            );
            // A tenth of the range in each tenth: uniform.
            for decile in 0..10 {
                let low = -0.5 + decile as f64 / 10.0;
                let share = values
                    .iter()
                    .filter(|v| (low..low + 0.1).contains(*v))
                    .count();
                let share = share as f64 / N as f64;
                assert!(
                    (share - 0.1).abs() < 0.01,
                    "seed {seed}, decile {decile}: {share}"
                );
            }
            for lag in 1..=12 {
                let r = correlation(&values[..N - lag], &values[lag..]);
                assert!(
                    r.abs() < bound,
                    "seed {seed}, lag {lag}: autocorrelation {r}"
                );
            }
        }
        let r = correlation(&stream(0), &stream(1));
        assert!(r.abs() < bound, "streams 0 and 1: correlation {r}");
    }

    #[test]
    fn value_follows_the_formula() {
        let s = one();
        assert!((s.value_at(0.0) - 10.0).abs() < 1e-12);
        assert!((s.value_at(21_600.0) - 12.0).abs() < 1e-9);
        assert!((s.value_at(150.0) - s.value_at(250.0) - 5.0).abs() < 0.02);
    }

    #[test]
    fn promql_twin_names_every_term() {
        let expr = one().promql();
        assert_eq!(
            expr,
            "10 + 2 * sin(vector(2 * pi() * (time() + 0) / 86400)) + 0 * sin(vector(2 * pi() * (time() + 0) / 97)) * sin(vector(2 * pi() * (time() + 0) / 31)) + 5 * (vector(time()) >= bool 100) * (vector(time()) < bool 200)"
        );
        let mut drifting = one();
        drifting.noise_phase_secs = 5.5;
        drifting.drift = Some(Drift {
            start_secs: 1000.0,
            per_hour: 0.25,
        });
        let expr = drifting.promql();
        assert!(
            expr.contains("* sin(vector(2 * pi() * (time() + 5.5) / 97)) * sin(vector(2 * pi() * (time() + 5.5) / 31))"),
            "{expr}"
        );
        assert!(
            expr.ends_with(" + 0.25 * clamp_min(vector(time()) - 1000, 0) / 3600"),
            "{expr}"
        );
    }

    #[test]
    fn a_drift_starts_at_its_instant_and_climbs_by_the_hour() {
        let mut s = one();
        s.spikes.clear();
        let plain = s.clone();
        s.drift = Some(Drift {
            start_secs: 3600.0,
            per_hour: 2.0,
        });
        assert_eq!(s.value_at(1800.0), plain.value_at(1800.0));
        assert!((s.value_at(3600.0 + 5400.0) - plain.value_at(9000.0) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn the_peer_set_has_siblings_with_their_own_noise_and_one_drifting() {
        let end = 1_000_000;
        let set = demo_peer_set(end);
        assert_eq!(set.len(), 5);
        assert!(set.iter().all(|s| s.metric == PEER_METRIC));
        let at = |instance: &str, t: i64| {
            set.iter()
                .find(|s| s.labels[0].1 == instance)
                .expect("instance")
                .value_at(t as f64)
        };
        // Same shape, different noise.
        let t = end - 5 * 3600 + 7;
        assert_ne!(at("api-1", t), at("api-2", t));
        assert!((at("api-1", t) - at("api-2", t)).abs() < 0.012);
        // api-4 leaves the others two hours before the end, and keeps going.
        let spread = |t: i64| at(DRIFTING_INSTANCE, t) - at("api-1", t);
        assert!(spread(end - 3 * 3600).abs() < 0.012);
        assert!(spread(end) > 0.012);
        assert!(spread(end + 3600) > spread(end) + 0.006);
    }

    #[test]
    fn openmetrics_is_time_ordered_and_terminated() {
        let text = openmetrics_history(&[one()], 0, 20, 10);
        let at = |t: f64| format_value(10.0 + 2.0 * (TAU * t / DAY_SECS).sin());
        assert_eq!(
            text,
            format!(
                "# TYPE m gauge\nm{{instance=\"a\"}} 10 0\nm{{instance=\"a\"}} {} 10\nm{{instance=\"a\"}} {} 20\n# EOF\n",
                at(10.0),
                at(20.0)
            )
        );
    }

    #[test]
    fn larger_sets_get_distinct_instances() {
        let set = demo_set(1000, 1_000_000, None);
        assert_eq!(set.len(), 1000);
        let mut instances: Vec<&str> = set.iter().map(|s| s.labels[0].1.as_str()).collect();
        instances.sort_unstable();
        instances.dedup();
        assert_eq!(instances.len(), 1000);
        assert_eq!(set[999].labels[0].1, "web-0999");
    }

    #[test]
    fn rules_file_has_one_rule_per_series() {
        let rules = recording_rules(&demo_set(3, 1_000_000, None), 1);
        assert_eq!(
            rules.matches("- record: demo_requests_per_second").count(),
            3
        );
        assert!(rules.contains("interval: 1s"));
        assert!(rules.contains("instance: 'web-b'"));
    }
}
