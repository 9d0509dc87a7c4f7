use std::io::Write;

use foretell_core::labels::Labels;
use foretell_core::model::{Coverage, ForecastModel, ProbabilitySettings, SeasonSpec};
use foretell_core::shard::Shard;
use foretell_core::store::{Sample, StoreLimits};
use foretell_core::tracker::{FirstFit, QueryTracker, TrackerSettings};

use super::file::{self, Header, StateFileError, FORMAT_VERSION};
use super::{StateStore, Unusable};
use crate::config::StateConfig;

const STEP: i64 = 60_000;

fn settings() -> TrackerSettings {
    TrackerSettings {
        query: "load".into(),
        limits: StoreLimits {
            step_ms: STEP,
            capacity_points: 500,
            max_series: 10,
            freshness_ms: 5 * STEP,
        },
        model: ForecastModel {
            coverage: Coverage::new(0.99).expect("valid"),
            min_points: 20,
            season: SeasonSpec::None,
            horizon_steps: 10,
        },
        probability: ProbabilitySettings::default(),
        refit_interval_ms: 10 * STEP,
        horizons: Vec::new(),
        threshold: None,
        record_points: 30,
        load_threads: 1,
        first_fit: FirstFit::Full,
        peers: None,
    }
}

fn tracker() -> QueryTracker {
    let mut tracker = QueryTracker::new(settings());
    let fetched = ["a", "b", "c"]
        .iter()
        .map(|instance| {
            (
                Labels::from_pairs([("instance", *instance)]),
                (0..120)
                    .map(|i| Sample {
                        timestamp_ms: i * STEP,
                        value: 10.0 + (i % 7) as f64 * 0.3,
                    })
                    .collect(),
            )
        })
        .collect();
    tracker.evaluate(fetched, 119 * STEP);
    tracker
}

fn header(series: u64) -> Header {
    let settings = settings();
    Header {
        query: "load".into(),
        expr: "node_load1".into(),
        step_ms: STEP,
        history_ms: 500 * STEP,
        max_series: 10,
        freshness_ms: 5 * STEP,
        model: settings.model,
        probability: settings.probability,
        shard: (0, 1),
        written_at_ms: 119 * STEP,
        next_start_ms: Some(120 * STEP),
        series,
    }
}

fn written(dir: &tempfile::TempDir) -> (std::path::PathBuf, QueryTracker) {
    let path = dir.path().join("load.state");
    let tracker = tracker();
    let bytes = file::write(&path, &header(3), tracker.saved()).expect("write");
    assert_eq!(bytes, std::fs::metadata(&path).expect("written").len());
    (path, tracker)
}

#[test]
fn a_written_file_reads_back_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, tracker) = written(&dir);
    let saved = file::read(&path, 10).expect("read");
    assert_eq!(saved.header, header(3));
    assert_eq!(saved.series.len(), 3);
    let mut labels: Vec<String> = saved
        .series
        .iter()
        .map(|(l, _)| l.get("instance").unwrap_or_default().to_owned())
        .collect();
    labels.sort();
    assert_eq!(labels, ["a", "b", "c"]);
    // Byte for byte what the tracker holds: encoding each series again gives the same bytes.
    for (labels, tracked) in &saved.series {
        let original = tracker
            .saved()
            .find(|(l, _)| *l == labels)
            .map(|(_, t)| postcard::to_stdvec(t).expect("encode"))
            .expect("present");
        assert_eq!(postcard::to_stdvec(tracked).expect("encode"), original);
    }
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["load.state"]);
}

#[test]
fn damaged_files_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = written(&dir);
    let good = std::fs::read(&path).expect("read");
    let reason = |bytes: &[u8]| {
        std::fs::write(&path, bytes).expect("write");
        match file::read(&path, 10) {
            Ok(_) => "read",
            Err(error) => error.reason(),
        }
    };
    // Every cut is caught: in the magic, the header, a series, the checksum.
    for cut in [3, 20, good.len() / 2, good.len() - 10, good.len() - 1] {
        let expected = if cut < 15 { "foreign" } else { "truncated" };
        assert_eq!(reason(&good[..cut]), expected, "cut at {cut}");
    }
    // A flipped bit anywhere after the version is caught (the checksum, or a length bound).
    for at in [25, good.len() / 3, good.len() / 2, good.len() - 5] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        let got = reason(&bad);
        assert!(
            ["corrupt", "truncated"].contains(&got),
            "bit flipped at {at}: {got}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(reason(&longer), "corrupt");
    assert_eq!(reason(b"{\"not\": \"a state file\"}"), "foreign");
    assert_eq!(reason(b""), "foreign");
    let mut newer = good.clone();
    newer[15..19].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    assert_eq!(reason(&newer), "version");
    assert_eq!(reason(&good), "read");
    // More series than the query may track now: refused before any is read.
    assert!(matches!(
        file::read(&path, 2),
        Err(StateFileError::Corrupt { .. })
    ));
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(
        file::read(&path, 10).err().map(|e| e.reason()),
        Some("missing")
    );
}

/// A crash mid-write (kill -9) leaves a partial temporary file beside the last good one: the
/// good one is read, and the next write replaces both.
#[test]
fn a_write_cut_short_leaves_the_previous_file_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, tracker) = written(&dir);
    let temporary = path.with_extension("state.tmp");
    let mut partial = std::fs::File::create(&temporary).expect("tmp");
    partial
        .write_all(&std::fs::read(&path).expect("read")[..100])
        .expect("write");
    drop(partial);
    assert_eq!(file::read(&path, 10).expect("previous").series.len(), 3);
    file::write(&path, &header(3), tracker.saved()).expect("write again");
    assert!(!temporary.exists());
    assert_eq!(file::read(&path, 10).expect("new").series.len(), 3);
    // A header that miscounts its series is never renamed into place.
    assert!(file::write(&path, &header(4), tracker.saved()).is_err());
    assert_eq!(
        file::read(&path, 10)
            .expect("still the last good one")
            .header,
        header(3)
    );
}

#[test]
fn a_file_is_restored_only_for_the_same_data_shard_and_a_window_still_in_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = StateConfig {
        path: dir.path().join("state"),
        interval: std::time::Duration::from_secs(60),
    };
    let store = StateStore::open(&config, Shard::default()).expect("open");
    assert!(config.path.is_dir());
    let saved = header(3);
    let now = 130 * STEP;
    assert_eq!(store.check(&saved, &header(0), now), Ok(()));
    let mut other_model = header(0);
    other_model.model.min_points = 30;
    assert_eq!(
        store.check(&saved, &other_model, now),
        Ok(()),
        "model settings may differ"
    );
    let mut other_expr = header(0);
    other_expr.expr = "node_load5".into();
    assert_eq!(
        store.check(&saved, &other_expr, now),
        Err(Unusable::Changed)
    );
    let mut other_step = header(0);
    other_step.step_ms = 2 * STEP;
    assert_eq!(
        store.check(&saved, &other_step, now),
        Err(Unusable::Changed)
    );
    let sharded = StateStore::open(&config, Shard::new(1, 2).expect("shard")).expect("open");
    assert_eq!(sharded.check(&saved, &header(0), now), Err(Unusable::Shard));
    assert_eq!(
        store.check(&saved, &header(0), 120 * STEP + 500 * STEP + 1),
        Err(Unusable::Stale)
    );
    // Names that differ only in characters a file name cannot hold get different files.
    assert_ne!(store.path("a/b"), store.path("a_b"));
    assert!(store
        .path("http_requests:rate5m")
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("http_requests_rate5m-") && n.ends_with(".state")));
}
