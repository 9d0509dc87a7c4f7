use super::*;

const WINDOW: usize = 60;

/// Independent noise in [-0.5, 0.5] (splitmix64).
fn noise(i: usize, seed: usize) -> f64 {
    let mut z = (i as u64)
        .wrapping_add((seed as u64).wrapping_mul(0x0001_0000_0001))
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64 - 0.5
}

/// A member of a group: a shared shape around `level`, its own noise.
fn member(level: f64, seed: usize) -> Vec<f64> {
    (0..WINDOW)
        .map(|t| level * (1.0 + 0.2 * (t as f64 / 10.0).sin()) + 0.05 * level * noise(t, seed))
        .collect()
}

fn labels(service: &str, pod: usize) -> Labels {
    Labels::from_pairs([("service", service.to_owned()), ("pod", format!("p{pod}"))])
}

fn settings(method: PeerMethod, by: &[&str]) -> PeerSettings {
    PeerSettings {
        by: by.iter().map(|s| s.to_string()).collect(),
        method,
        window_points: WINDOW,
        sensitivity: 0.5,
    }
}

fn assess_all(
    settings: &PeerSettings,
    rows: Vec<(Labels, Vec<f64>)>,
) -> (Vec<Option<PeerVerdict>>, PeerStats) {
    let series: Vec<(&Labels, Vec<f64>)> = rows.iter().map(|(l, v)| (l, v.clone())).collect();
    assess(settings, &series)
}

#[test]
fn the_one_pod_at_twice_its_siblings_level_is_the_outlier() {
    for method in [PeerMethod::Mad, PeerMethod::Dbscan] {
        let mut rows: Vec<(Labels, Vec<f64>)> = (0..10)
            .map(|i| (labels("api", i), member(100.0, i)))
            .collect();
        rows[3].1 = member(200.0, 3);
        let (verdicts, stats) = assess_all(&settings(method, &["service"]), rows);
        assert_eq!(stats.groups_assessed, 1, "{method:?}");
        assert_eq!(stats.outliers, 1, "{method:?}: {verdicts:?}");
        for (i, verdict) in verdicts.iter().enumerate() {
            let verdict = verdict.expect("assessed");
            assert_eq!(verdict.group_size, 10);
            if i == 3 {
                assert!(
                    verdict.outlier && verdict.score > 1.0,
                    "{method:?}: {verdict:?}"
                );
            } else {
                assert!(
                    !verdict.outlier && verdict.score < 1.0,
                    "{method:?} pod {i}: {verdict:?}"
                );
            }
        }
    }
}

#[test]
fn a_divergence_that_lasts_counts_and_a_spike_does_not() {
    let mut rows: Vec<(Labels, Vec<f64>)> =
        (0..8).map(|i| (labels("db", i), member(50.0, i))).collect();
    // Pod 1 drifts away from the others over the window's second third on.
    for (t, value) in rows[1].1.iter_mut().enumerate() {
        *value += 2.0 * (t as f64 - 20.0).max(0.0);
    }
    // Pod 5 has one wild point.
    rows[5].1[30] = 5_000.0;
    let (verdicts, _) = assess_all(&settings(PeerMethod::Mad, &[]), rows);
    let drifting = verdicts[1].expect("assessed");
    let spiking = verdicts[5].expect("assessed");
    assert!(drifting.outlier, "{drifting:?}");
    assert!(!spiking.outlier && spiking.score < 1.0, "{spiking:?}");
}

#[test]
fn groups_follow_the_by_labels_and_their_scores_compare_across_scales() {
    let mut rows = Vec::new();
    for (service, level) in [("small", 1.0), ("large", 1e6)] {
        for i in 0..6 {
            let factor = if i == 2 { 1.8 } else { 1.0 };
            rows.push((labels(service, i), member(level * factor, i)));
        }
    }
    // A group of two is skipped and counted.
    rows.push((labels("pair", 0), member(3.0, 0)));
    rows.push((labels("pair", 1), member(9.0, 1)));
    let (verdicts, stats) = assess_all(&settings(PeerMethod::Mad, &["service"]), rows);
    assert_eq!(
        stats,
        PeerStats {
            groups_assessed: 2,
            groups_too_small: 1,
            groups_without_spread: 0,
            outliers: 2
        }
    );
    let small = verdicts[2].expect("assessed");
    let large = verdicts[8].expect("assessed");
    assert!(small.outlier && large.outlier);
    // The same shape at a millionfold scale scores alike.
    assert!(
        (small.score - large.score).abs() < 0.1 * small.score,
        "{small:?} vs {large:?}"
    );
    assert!(verdicts[12].is_none() && verdicts[13].is_none());
}

#[test]
fn gaps_and_a_group_without_spread_are_handled() {
    let mut rows: Vec<(Labels, Vec<f64>)> = (0..5)
        .map(|i| (labels("web", i), member(10.0, i)))
        .collect();
    for t in (0..WINDOW).step_by(3) {
        rows[0].1[t] = f64::NAN;
    }
    rows[4].1 = vec![f64::NAN; WINDOW];
    let (verdicts, stats) = assess_all(&settings(PeerMethod::Dbscan, &[]), rows);
    assert_eq!(stats.groups_assessed, 1);
    assert!(!verdicts[0].expect("assessed").outlier);
    // No value at all: nothing to compare, never an outlier.
    assert_eq!(verdicts[4].expect("assessed").score, 0.0);
    // Every value identical: MAD has no spread to measure in and says so.
    let flat: Vec<(Labels, Vec<f64>)> = (0..4)
        .map(|i| (labels("idle", i), vec![0.0; WINDOW]))
        .collect();
    let (verdicts, stats) = assess_all(&settings(PeerMethod::Mad, &[]), flat);
    assert_eq!(stats.groups_without_spread, 1);
    assert!(verdicts.iter().all(Option::is_none));
}
