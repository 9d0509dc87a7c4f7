//! `foretell bench peers`: how well peer outliers find the one series that leaves its group,
//! against the per-series detector alone, on generated groups.
//!
//! Each case is a group of N series at 5-minute steps over three days: a shared daily shape
//! (level 100, amplitude 20), each series its own noise (standard deviation 1). In the third day
//! one series diverges, four hours in, in one of five ways ([`Divergence`]), and stays diverged.
//! The first two days are the history the models load; the third is evaluated step by step as
//! the sidecar would: every series through its own model (anomaly probability), and the group
//! through [`peers::assess`] over the newest hour.
//!
//! A detector "flags" a series when, at some step of the evaluated day, the per-series
//! probability reaches the onset level 0.2 (the level the shipped rules alert on) or the peer
//! verdict says outlier. The diverging series flagged after its divergence began is a true
//! positive; any other series flagged during the day is a false positive. Per kind, recall is
//! the share of cases whose diverging series was flagged, precision the share of flagged series
//! that were the diverging one.

use std::time::Duration;

use foretell_core::labels::Labels;
use foretell_core::model::{Coverage, ForecastModel, ProbabilitySettings, SeasonSpec};
use foretell_core::peers::{PeerMethod, PeerSettings};
use foretell_core::snapshot::SeriesState;
use foretell_core::store::{Sample, StoreLimits};
use foretell_core::tracker::{FirstFit, QueryTracker, TrackerSettings};

pub(super) const STEP_MS: i64 = 300_000;
pub(super) const DAY: usize = 288;
pub(super) const HISTORY: usize = 2 * DAY;
const EVALUATED: usize = DAY;
/// The divergence begins this far into the evaluated day.
const ONSET: usize = 48;
/// The newest hour, in steps.
pub(super) const PEER_WINDOW: usize = 12;
/// The onset level the shipped rules use.
pub(super) const ONSET_PROBABILITY: f64 = 0.2;

/// How the diverging series leaves its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Divergence {
    /// Five noise standard deviations above the others from the onset on.
    Level,
    /// A ramp of half a standard deviation an hour (ten by the end of the day).
    Slope,
    /// Its daily shape two hours late.
    Shape,
    /// Four times the noise.
    Variance,
    /// Stuck at its value at the onset.
    Stuck,
}

impl Divergence {
    pub const ALL: [Divergence; 5] = [
        Divergence::Level,
        Divergence::Slope,
        Divergence::Shape,
        Divergence::Variance,
        Divergence::Stuck,
    ];

    fn name(self) -> &'static str {
        match self {
            Divergence::Level => "level",
            Divergence::Slope => "slope",
            Divergence::Shape => "shape",
            Divergence::Variance => "variance",
            Divergence::Stuck => "stuck",
        }
    }
}

/// What to run, from the command line.
#[derive(Clone, Debug)]
pub struct PeerBenchSettings {
    pub group_sizes: Vec<usize>,
    /// Cases per group size and kind, each with its own noise.
    pub seeds: usize,
    pub method: PeerMethod,
    pub sensitivity: f64,
}

/// Flags counted over the cases of one kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub cases: usize,
    pub true_positives: usize,
    pub false_positives: usize,
}

impl Counts {
    pub fn recall(&self) -> f64 {
        self.true_positives as f64 / self.cases.max(1) as f64
    }

    pub fn precision(&self) -> f64 {
        let flagged = self.true_positives + self.false_positives;
        if flagged == 0 {
            f64::NAN
        } else {
            self.true_positives as f64 / flagged as f64
        }
    }

    fn add(&mut self, true_positive: bool, false_positives: usize) {
        self.cases += 1;
        self.true_positives += usize::from(true_positive);
        self.false_positives += false_positives;
    }
}

/// One row of the report: a group size and a kind, both detectors.
#[derive(Clone, Debug)]
pub struct Row {
    pub group_size: usize,
    pub kind: Divergence,
    pub peers: Counts,
    pub per_series: Counts,
    /// Either detector.
    pub combined: Counts,
}

#[derive(Clone, Debug)]
pub struct PeerBenchReport {
    pub settings: PeerBenchSettings,
    pub rows: Vec<Row>,
    pub elapsed: Duration,
}

/// Independent noise in [-0.5, 0.5) (splitmix64).
fn noise(i: usize, seed: u64) -> f64 {
    let mut z = (i as u64)
        .wrapping_add(seed.wrapping_mul(0x0001_0000_0001))
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64 - 0.5
}

/// Roughly normal noise of standard deviation 1 (the sum of 12 uniforms).
fn normal(i: usize, seed: u64) -> f64 {
    (0..12).map(|k| noise(i * 12 + k, seed)).sum::<f64>()
}

fn shape(t: usize) -> f64 {
    100.0 + 20.0 * (std::f64::consts::TAU * (t % DAY) as f64 / DAY as f64).sin()
}

/// The values of one member over the three days; `diverging` applies `kind` from the onset.
fn member(seed: u64, kind: Option<Divergence>) -> Vec<f64> {
    let onset = HISTORY + ONSET;
    let mut values: Vec<f64> = (0..HISTORY + EVALUATED)
        .map(|t| shape(t) + normal(t, seed))
        .collect();
    if let Some(kind) = kind {
        for t in onset..values.len() {
            let since = (t - onset) as f64;
            values[t] = match kind {
                Divergence::Level => values[t] + 5.0,
                Divergence::Slope => values[t] + 0.5 * since / 12.0,
                Divergence::Shape => shape(t + DAY - 24) + normal(t, seed),
                Divergence::Variance => shape(t) + 4.0 * normal(t, seed),
                Divergence::Stuck => values[onset - 1],
            };
        }
    }
    values
}

/// A tracker of series at 5-minute steps with a daily season and two days of history, its
/// peers compared over the newest hour.
pub(super) fn tracker(
    method: PeerMethod,
    sensitivity: f64,
    refit_interval_ms: i64,
) -> QueryTracker {
    QueryTracker::new(TrackerSettings {
        query: "peers".into(),
        limits: StoreLimits {
            step_ms: STEP_MS,
            capacity_points: HISTORY + 1,
            max_series: 10_000,
            freshness_ms: 10 * STEP_MS,
        },
        model: ForecastModel {
            coverage: Coverage::DEFAULT,
            min_points: 30,
            season: SeasonSpec::Periods(vec![DAY]),
            horizon_steps: 12,
        },
        probability: ProbabilitySettings::default(),
        refit_interval_ms,
        horizons: vec![],
        threshold: None,
        record_points: 0,
        load_threads: crate::pipeline::cores(),
        first_fit: FirstFit::Full,
        peers: Some(PeerSettings {
            by: vec![],
            method,
            window_points: PEER_WINDOW,
            sensitivity,
        }),
    })
}

/// Loads the first `history` values of each series into `tracker` (every series on the same
/// grid of `step_ms`, labels told apart by their `key` label), then evaluates the rest step by
/// step as the sidecar would. Per series and evaluated step: whether its peers found it an
/// outlier, and whether its own probability reached the onset level.
pub(super) fn replay(
    tracker: &mut QueryTracker,
    labels: &[Labels],
    key: &str,
    values: &[Vec<f64>],
    history: usize,
    step_ms: i64,
) -> Vec<Vec<[bool; 2]>> {
    let length = values.iter().map(Vec::len).min().unwrap_or(0);
    let at = |t: usize| t as i64 * step_ms;
    let sample = |v: &[f64], t: usize| Sample {
        timestamp_ms: at(t),
        value: v[t],
    };
    tracker.load(
        labels
            .iter()
            .zip(values)
            .map(|(l, v)| (l.clone(), (0..history).map(|t| sample(v, t)).collect()))
            .collect(),
        at(history - 1),
    );
    let mut flags = vec![vec![[false; 2]; length.saturating_sub(history)]; labels.len()];
    for t in history..length {
        let fetched = labels
            .iter()
            .zip(values)
            .map(|(l, v)| (l.clone(), vec![sample(v, t)]))
            .collect();
        let (output, _) = tracker.evaluate(fetched, at(t));
        for series in &output.series {
            let Some(index) = labels
                .iter()
                .position(|l| l.get(key) == series.labels().get(key))
            else {
                continue;
            };
            let peer = series.peer.is_some_and(|p| p.outlier);
            let own = matches!(series.state, SeriesState::Ready { probability, .. } if probability >= ONSET_PROBABILITY);
            flags[index][t - history] = [peer, own];
        }
    }
    flags
}

/// Runs one case: which series each detector flagged, as (diverging series flagged, others).
fn case(
    settings: &PeerBenchSettings,
    size: usize,
    kind: Divergence,
    seed: u64,
) -> [(bool, usize); 3] {
    let diverging = (seed as usize * 7) % size;
    let labels: Vec<Labels> = (0..size)
        .map(|i| Labels::from_pairs([("instance", format!("i{i:04}"))]))
        .collect();
    let values: Vec<Vec<f64>> = (0..size)
        .map(|i| member(seed * 100_003 + i as u64, (i == diverging).then_some(kind)))
        .collect();
    // No refit within the evaluated day: the day is scored by the models the history made.
    let mut tracker = tracker(
        settings.method,
        settings.sensitivity,
        2 * DAY as i64 * STEP_MS,
    );
    let flags = replay(&mut tracker, &labels, "instance", &values, HISTORY, STEP_MS);
    // Per detector (peers, per series, either): flagged after the onset, and flagged at all.
    let mut flagged = vec![[false; 3]; size];
    let mut caught = [false; 3];
    for (index, steps) in flags.iter().enumerate() {
        for (step, &[peer, own]) in steps.iter().enumerate() {
            for (k, hit) in [peer, own, peer || own].into_iter().enumerate() {
                if hit {
                    if index == diverging && step >= ONSET {
                        caught[k] = true;
                    } else if index != diverging {
                        flagged[index][k] = true;
                    }
                }
            }
        }
    }
    std::array::from_fn(|k| (caught[k], flagged.iter().filter(|f| f[k]).count()))
}

/// Runs every group size and kind; minutes for groups of 500.
pub fn run(settings: &PeerBenchSettings) -> PeerBenchReport {
    let started = crate::clock::Stopwatch::start();
    let mut rows = Vec::new();
    for &size in &settings.group_sizes {
        for kind in Divergence::ALL {
            let mut row = Row {
                group_size: size,
                kind,
                peers: Counts::default(),
                per_series: Counts::default(),
                combined: Counts::default(),
            };
            for seed in 1..=settings.seeds as u64 {
                let [peer, own, either] = case(settings, size.max(3), kind, seed);
                row.peers.add(peer.0, peer.1);
                row.per_series.add(own.0, own.1);
                row.combined.add(either.0, either.1);
            }
            rows.push(row);
        }
    }
    PeerBenchReport {
        settings: settings.clone(),
        rows,
        elapsed: started.elapsed(),
    }
}

pub fn render(report: &PeerBenchReport) -> String {
    let s = &report.settings;
    let mut out = format!(
        "peer outliers ({}, sensitivity {}, newest hour) against the per-series detector (probability >= {ONSET_PROBABILITY}); {} cases per row, {:.0} s\n",
        s.method.as_str(),
        s.sensitivity,
        s.seeds,
        report.elapsed.as_secs_f64()
    );
    out += "| group | divergence | peers: recall | peers: precision | per series: recall | per series: precision | either: recall | either: precision |\n";
    out += "|---|---|---|---|---|---|---|---|\n";
    let percent = |v: f64| {
        if v.is_nan() {
            "-".to_owned()
        } else {
            format!("{:.0} %", 100.0 * v)
        }
    };
    for row in &report.rows {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            row.group_size,
            row.kind.name(),
            percent(row.peers.recall()),
            percent(row.peers.precision()),
            percent(row.per_series.recall()),
            percent(row.per_series.precision()),
            percent(row.combined.recall()),
            percent(row.combined.precision()),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_shift_in_a_small_group_is_found_by_its_peers() {
        let settings = PeerBenchSettings {
            group_sizes: vec![5],
            seeds: 1,
            method: PeerMethod::Mad,
            sensitivity: 0.5,
        };
        let [peer, _, either] = case(&settings, 5, Divergence::Level, 1);
        assert!(peer.0, "the diverging series was not flagged by its peers");
        assert!(either.0);
        let report = PeerBenchReport {
            settings,
            rows: vec![],
            elapsed: Duration::ZERO,
        };
        assert!(render(&report).contains("| group | divergence |"));
    }

    #[test]
    fn divergences_start_at_the_onset_and_last() {
        let plain = member(3, None);
        for kind in Divergence::ALL {
            let diverged = member(3, Some(kind));
            assert_eq!(
                plain[..HISTORY + ONSET],
                diverged[..HISTORY + ONSET],
                "{kind:?}"
            );
            assert_ne!(
                plain[HISTORY + ONSET + 20],
                diverged[HISTORY + ONSET + 20],
                "{kind:?}"
            );
        }
    }
}
