//! Peer outliers: the series of a group that behave unlike the others.
//!
//! A per-series baseline learns a slow divergence as normal: one pod of a deployment drifting
//! to twice its siblings' latency looks fine against its own history. Here the series of a
//! query that share the values of some labels (`by`) form a group, and over the newest window of
//! grid points the group's outliers are found with augurs' detectors (`augurs-outlier`, what
//! Grafana's outlier detection uses): MAD (each value's distance from the group's median in
//! robust standard deviations, with separate scales above and below) or DBSCAN (per timestamp,
//! the values that fall outside the cluster holding most of the group).
//!
//! Both detectors answer per timestamp with a band: the range of values the group considers
//! normal. A series' **score** is the median over the window of its distance from the group's
//! median at each timestamp, in units of the distance from that median to the band's edge on
//! the same side: 0 on the median, 1 on the boundary. It is an **outlier** when the score is
//! above 1, that is when it was beyond the boundary for more than half of the window: a spike
//! is the per-series detector's business, a divergence that lasts is this one's. The score is
//! comparable across groups because each group's band is scaled by its own spread.

use std::collections::BTreeMap;

use augurs_outlier::{DbscanDetector, MADDetector, OutlierDetector, OutlierOutput};

use crate::Labels;

/// Groups with fewer series are not assessed: with two, neither is "the odd one out".
pub const MIN_GROUP_SIZE: usize = 3;

/// Which of augurs' detectors finds a group's outliers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PeerMethod {
    Mad,
    Dbscan,
}

impl PeerMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerMethod::Mad => "mad",
            PeerMethod::Dbscan => "dbscan",
        }
    }
}

/// `queries[].peers`, validated.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PeerSettings {
    /// Labels whose values define a group; empty: every series of the query is one group.
    pub by: Vec<String>,
    pub method: PeerMethod,
    /// Grid points of the newest window compared.
    pub window_points: usize,
    /// In (0, 1): higher finds more outliers (augurs' sensitivity: for MAD, the boundary in
    /// robust standard deviations falls from 7.9 at 0 to 0.84 at 1; for DBSCAN, the distance that
    /// joins two values to the cluster shrinks from the group's whole span at 0 to nothing).
    pub sensitivity: f64,
}

/// How one series compares with its group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PeerVerdict {
    /// The median over the window of the series' distance from the group's median, in units
    /// of the boundary's distance: 1 is the detector's boundary.
    pub score: f64,
    /// Beyond the boundary for more than half of the window.
    pub outlier: bool,
    /// Series in the group, this one included.
    pub group_size: usize,
}

/// What one assessment did, for the self-metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub groups_assessed: usize,
    /// Groups of fewer than [`MIN_GROUP_SIZE`] series.
    pub groups_too_small: usize,
    /// Groups the detector could not assess (for MAD: half the group's values identical, so
    /// there is no spread to measure distances in).
    pub groups_without_spread: usize,
    pub outliers: usize,
}

/// Assesses every group among `series` (each: its labels and its newest `window_points` grid
/// values, oldest first, NaN for gaps, every window ending at the same grid point). Returns one
/// verdict per series, `None` where its group was not assessed.
pub fn assess(
    settings: &PeerSettings,
    series: &[(&Labels, Vec<f64>)],
) -> (Vec<Option<PeerVerdict>>, PeerStats) {
    let mut groups: BTreeMap<Vec<&str>, Vec<usize>> = BTreeMap::new();
    for (index, (labels, _)) in series.iter().enumerate() {
        let key = settings
            .by
            .iter()
            .map(|name| labels.get(name).unwrap_or(""))
            .collect();
        groups.entry(key).or_default().push(index);
    }
    let mut verdicts = vec![None; series.len()];
    let mut stats = PeerStats::default();
    for members in groups.values() {
        if members.len() < MIN_GROUP_SIZE {
            stats.groups_too_small += 1;
            continue;
        }
        let rows: Vec<&[f64]> = members.iter().map(|&i| series[i].1.as_slice()).collect();
        let Some(scores) = group_scores(settings, &rows) else {
            stats.groups_without_spread += 1;
            continue;
        };
        stats.groups_assessed += 1;
        for (&index, score) in members.iter().zip(scores) {
            let outlier = score > 1.0;
            stats.outliers += usize::from(outlier);
            verdicts[index] = Some(PeerVerdict {
                score,
                outlier,
                group_size: members.len(),
            });
        }
    }
    (verdicts, stats)
}

/// Each row's score against the group's band, or `None` when the detector failed.
///
/// The detectors see each value minus the group's median at its timestamp: peers share their
/// daily shape, and what is compared is how far each strays from the group, not how far the
/// shape moves within the window (MAD pools the window's values, so the shape itself would
/// otherwise count as spread and hide a divergence).
fn group_scores(settings: &PeerSettings, rows: &[&[f64]]) -> Option<Vec<f64>> {
    let timestamps = rows.iter().map(|r| r.len()).min().unwrap_or(0);
    let centres: Vec<f64> = (0..timestamps)
        .map(|t| median(rows.iter().map(|row| row[t])))
        .collect();
    let residuals: Vec<Vec<f64>> = rows
        .iter()
        .map(|row| (0..timestamps).map(|t| row[t] - centres[t]).collect())
        .collect();
    let rows: Vec<&[f64]> = residuals.iter().map(Vec::as_slice).collect();
    let output = run_detector(settings, &rows)?;
    let band = output.cluster_band?;
    let medians: Vec<f64> = (0..timestamps)
        .map(|t| median(rows.iter().map(|row| row[t])))
        .collect();
    Some(
        rows.iter()
            .map(|row| {
                let distances = (0..timestamps).filter_map(|t| {
                    let (value, centre) = (row[t], medians[t]);
                    let edge = if value >= centre {
                        band.max.get(t)?
                    } else {
                        band.min.get(t)?
                    };
                    let reach = (edge - centre).abs();
                    let distance = (value - centre).abs();
                    if !value.is_finite() || !centre.is_finite() || !reach.is_finite() {
                        return None;
                    }
                    // A band of no width (every value equal): on it is 0, off it is beyond.
                    Some(if reach > 0.0 {
                        distance / reach
                    } else if distance > 0.0 {
                        f64::INFINITY
                    } else {
                        0.0
                    })
                });
                let score = median(distances);
                if score.is_finite() {
                    score
                } else if score.is_nan() {
                    0.0
                } else {
                    f64::MAX
                }
            })
            .collect(),
    )
}

fn run_detector(settings: &PeerSettings, rows: &[&[f64]]) -> Option<OutlierOutput> {
    match settings.method {
        PeerMethod::Mad => {
            let detector = MADDetector::with_sensitivity(settings.sensitivity).ok()?;
            let data = detector.preprocess(rows).ok()?;
            detector.detect(&data).ok()
        }
        PeerMethod::Dbscan => {
            let detector = DbscanDetector::with_sensitivity(settings.sensitivity).ok()?;
            let data = detector.preprocess(rows).ok()?;
            detector.detect(&data).ok()
        }
    }
}

/// The median of the finite values (infinities count as large values); NaN when none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.filter(|v| !v.is_nan()).collect();
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        let (low, high) = (values[middle - 1], values[middle]);
        if low.is_infinite() || high.is_infinite() {
            high
        } else {
            (low + high) / 2.0
        }
    }
}

#[cfg(test)]
mod tests;
