//! `foretell bench scale`: foretell's own cost of tracking many series, without Prometheus.
//!
//! Synthetic series (the demo set: daily cycles, noise) are split among queries, loaded with
//! their history a batch at a time as the pipeline loads them, then driven through steady
//! cycles of one new point each (scoring, the refits that fall due, the query outputs) with a
//! `/metrics` render per cycle. Reported: load time, per-cycle wall and CPU time, RSS and the
//! bytes each series holds, by part. The real fetch from Prometheus is measured separately
//! (`bench/cycle.sh`).

use std::time::Duration;

use crate::clock::Stopwatch;

use foretell_core::labels::Labels;
use foretell_core::model::{Coverage, ForecastModel, ProbabilitySettings, SeasonSpec};
use foretell_core::peers::{PeerMethod, PeerSettings, PeerStats};
use foretell_core::snapshot::Snapshot;
use foretell_core::store::{Sample, StoreLimits};
use foretell_core::synthetic::{demo_set, DemoSeries};
use foretell_core::tracker::{FirstFit, Horizon, QueryTracker, TrackerMemory, TrackerSettings};

/// What to run, from the command line.
#[derive(Clone, Debug)]
pub struct ScaleSettings {
    pub series: usize,
    pub queries: usize,
    pub history: Duration,
    pub step: Duration,
    /// The seasonal period models look for; `None`: no season.
    pub season: Option<Duration>,
    pub refit_interval: Duration,
    /// As `queries[].live_record`; zero keeps none.
    pub live_record: Duration,
    pub cycles: usize,
    pub threads: usize,
    /// Where to write every query's state file and restore it from (`--state`): measures a
    /// restart with `state` on.
    pub state_dir: Option<std::path::PathBuf>,
    /// How each series' first model is fitted.
    pub first_fit: FirstFit,
    /// Peer outliers over groups of this many series (`--peers`), MAD over the newest hour;
    /// `None`: off.
    pub peer_group: Option<usize>,
}

/// The label `--peers` groups the synthetic series by.
const PEER_GROUP_LABEL: &str = "group";

/// What writing every query's state file and restoring from it cost.
#[derive(Clone, Copy, Debug)]
pub struct StateCost {
    pub bytes: u64,
    pub write: Duration,
    pub restore: Duration,
    /// Series ready on the first cycle after the restore (every one, when it resumed).
    pub ready_after: usize,
    /// Refits on that cycle: none beyond the schedule when the models resumed.
    pub fits_after: usize,
}

/// What one steady cycle cost.
#[derive(Clone, Copy, Debug)]
pub struct CycleCost {
    pub wall: Duration,
    pub cpu: Duration,
    pub fits: usize,
    pub render: Duration,
    pub rendered_bytes: usize,
}

#[derive(Clone, Debug)]
pub struct ScaleReport {
    pub settings: ScaleSettings,
    pub load_wall: Duration,
    pub load_cpu: Duration,
    pub load_fits: usize,
    pub ready: usize,
    pub cycles: Vec<CycleCost>,
    pub rss_after_load: Option<u64>,
    pub rss_at_end: Option<u64>,
    pub memory: TrackerMemory,
    pub state: Option<StateCost>,
    /// Peer groups of the last cycle, summed over the queries (all zero without `--peers`).
    pub peers: PeerStats,
}

const BATCH: usize = 100;

/// Runs the benchmark; takes minutes at 100,000 series (every series is fitted once).
pub fn run(settings: &ScaleSettings) -> ScaleReport {
    let step_ms = settings.step.as_millis() as i64;
    let capacity = (settings.history.as_millis() as i64 / step_ms) as usize + 1;
    let now_ms = crate::clock::system().now_ms();
    let end_ms = now_ms - now_ms.rem_euclid(step_ms) - settings.cycles as i64 * step_ms;
    let all = demo_set(settings.series.max(3), end_ms / 1000, None);
    let mut queries: Vec<(QueryTracker, Vec<(Labels, DemoSeries)>)> = (0..settings.queries)
        .map(|q| {
            let tracker = QueryTracker::new(tracker_settings(settings, q, capacity));
            (tracker, Vec::new())
        })
        .collect();
    for (i, series) in all.into_iter().take(settings.series).enumerate() {
        let mut pairs = vec![("__name__".to_owned(), series.metric.clone())];
        pairs.extend(series.labels.iter().cloned());
        if let Some(size) = settings.peer_group {
            // Consecutive series of a query share a group.
            let position = i / settings.queries;
            pairs.push((
                PEER_GROUP_LABEL.to_owned(),
                format!("g{}", position / size.max(1)),
            ));
        }
        queries[i % settings.queries]
            .1
            .push((Labels::from_pairs(pairs), series));
    }
    let cpu_before = super::process_cpu();
    let started = Stopwatch::start();
    let fits: usize = in_parallel(&mut queries, settings.threads, |(tracker, series)| {
        let first_ms = end_ms - (capacity as i64 - 1) * step_ms;
        let mut fits = 0;
        for batch in series.chunks(BATCH) {
            let fetched = batch
                .iter()
                .map(|(labels, demo)| (labels.clone(), samples(demo, first_ms, end_ms, step_ms)))
                .collect();
            fits += tracker.load(fetched, end_ms).fits;
        }
        fits
    })
    .into_iter()
    .sum();
    let load_wall = started.elapsed();
    let load_cpu = super::process_cpu().saturating_sub(cpu_before);
    let rss_after_load = crate::exporter::process::resident_bytes();
    let mut cycles = Vec::with_capacity(settings.cycles);
    let mut ready = 0;
    let mut peers = PeerStats::default();
    let mut renderer = foretell_core::exposition::ScrapeRenderer::default();
    for cycle in 1..=settings.cycles as i64 {
        let at_ms = end_ms + cycle * step_ms;
        let cpu_before = super::process_cpu();
        let started = Stopwatch::start();
        let results = in_parallel(&mut queries, settings.threads, |(tracker, series)| {
            let fetched = series
                .iter()
                .map(|(labels, demo)| (labels.clone(), samples(demo, at_ms, at_ms, step_ms)))
                .collect();
            tracker.evaluate(fetched, at_ms)
        });
        let mut snapshot = Snapshot::default();
        let mut fits = 0;
        ready = 0;
        peers = PeerStats::default();
        for (output, stats) in results {
            fits += stats.fits;
            ready += stats.ready;
            peers.groups_assessed += stats.peers.groups_assessed;
            peers.groups_too_small += stats.peers.groups_too_small;
            peers.groups_without_spread += stats.peers.groups_without_spread;
            peers.outliers += stats.peers.outliers;
            snapshot = snapshot.with_query(output);
        }
        let wall = started.elapsed();
        let render_started = Stopwatch::start();
        // As the server renders a scrape, with the renderer's buffers kept between scrapes;
        // the text is counted, not kept (a compressed scrape hands each piece to the encoder,
        // whose time is not counted here).
        let mut rendered_bytes = 0;
        let counted = renderer.render(
            &snapshot,
            usize::MAX,
            foretell_core::exposition::Format::Text,
            &mut |piece| {
                rendered_bytes += piece.len();
                Ok::<(), std::convert::Infallible>(())
            },
        );
        if let Err(never) = counted {
            match never {}
        }
        let render = render_started.elapsed();
        cycles.push(CycleCost {
            wall,
            cpu: super::process_cpu().saturating_sub(cpu_before),
            fits,
            render,
            rendered_bytes,
        });
    }
    let mut memory = TrackerMemory::default();
    for (tracker, _) in &queries {
        memory.add(&tracker.memory());
    }
    let rss_at_end = crate::exporter::process::resident_bytes();
    let state = settings.state_dir.as_ref().map(|dir| {
        restart_with_state(
            dir,
            &mut queries,
            settings,
            end_ms + (settings.cycles as i64 + 1) * step_ms,
        )
    });
    ScaleReport {
        settings: settings.clone(),
        load_wall,
        load_cpu,
        load_fits: fits,
        ready,
        cycles,
        rss_after_load,
        rss_at_end,
        memory,
        state,
        peers,
    }
}

/// Writes each query's state file into `dir` (side by side, as the sidecar's query tasks do),
/// replaces every tracker by one restored from its file, and runs one cycle at `at_ms`.
fn restart_with_state(
    dir: &std::path::Path,
    queries: &mut [(QueryTracker, Vec<(Labels, DemoSeries)>)],
    settings: &ScaleSettings,
    at_ms: i64,
) -> StateCost {
    use crate::state::file;
    let step_ms = settings.step.as_millis() as i64;
    let path = |tracker: &QueryTracker| dir.join(format!("{}.state", tracker.settings().query));
    let header = |tracker: &QueryTracker| file::Header {
        query: tracker.settings().query.clone(),
        expr: "demo".into(),
        step_ms,
        history_ms: settings.history.as_millis() as i64,
        max_series: tracker.settings().limits.max_series,
        freshness_ms: tracker.settings().limits.freshness_ms,
        model: tracker.settings().model.clone(),
        probability: tracker.settings().probability,
        shard: (0, 1),
        written_at_ms: at_ms,
        next_start_ms: Some(at_ms),
        series: tracker.series_count() as u64,
    };
    let _ = std::fs::create_dir_all(dir);
    let started = Stopwatch::start();
    let bytes: u64 = in_parallel(queries, settings.threads, |(tracker, _)| {
        file::write(&path(tracker), &header(tracker), tracker.saved()).unwrap_or_else(|error| {
            eprintln!("{error}");
            0
        })
    })
    .into_iter()
    .sum();
    let write = started.elapsed();
    // A restart: the running trackers are gone before the new ones read their files.
    for (tracker, _) in queries.iter_mut() {
        *tracker = QueryTracker::new(tracker.settings().clone());
    }
    let started = Stopwatch::start();
    in_parallel(queries, settings.threads, |(tracker, _)| {
        match file::read(&path(tracker), tracker.settings().limits.max_series) {
            Ok(saved) => {
                let valid =
                    tracker.models_valid_for(&saved.header.model, &saved.header.probability);
                for (labels, tracked) in saved.series {
                    tracker.restore(labels, tracked, valid);
                }
            }
            Err(error) => eprintln!("{error}"),
        }
    });
    let restore = started.elapsed();
    let results = in_parallel(queries, settings.threads, |(tracker, series)| {
        let fetched = series
            .iter()
            .map(|(labels, demo)| (labels.clone(), samples(demo, at_ms, at_ms, step_ms)))
            .collect();
        tracker.evaluate(fetched, at_ms).1
    });
    for (tracker, _) in queries.iter() {
        let _ = std::fs::remove_file(path(tracker));
    }
    StateCost {
        bytes,
        write,
        restore,
        ready_after: results.iter().map(|stats| stats.ready).sum(),
        fits_after: results.iter().map(|stats| stats.fits).sum(),
    }
}

fn tracker_settings(settings: &ScaleSettings, query: usize, capacity: usize) -> TrackerSettings {
    let step_ms = settings.step.as_millis() as i64;
    TrackerSettings {
        query: format!("scale{query}"),
        limits: StoreLimits {
            step_ms,
            capacity_points: capacity,
            max_series: settings.series,
            freshness_ms: 10 * step_ms,
        },
        model: ForecastModel {
            coverage: Coverage::DEFAULT,
            min_points: 30,
            season: match settings.season {
                Some(period) => {
                    SeasonSpec::Periods(vec![(period.as_millis() as i64 / step_ms).max(2) as usize])
                }
                None => SeasonSpec::None,
            },
            horizon_steps: (3_600_000 / step_ms).max(1) as u32,
        },
        probability: ProbabilitySettings::default(),
        refit_interval_ms: settings.refit_interval.as_millis() as i64,
        horizons: vec![Horizon {
            label: "1h".to_owned(),
            steps: (3_600_000 / step_ms).max(1) as u32,
        }],
        threshold: None,
        record_points: (settings.live_record.as_millis() as i64 / step_ms) as usize,
        load_threads: crate::pipeline::cores(),
        first_fit: settings.first_fit,
        peers: settings.peer_group.map(|_| PeerSettings {
            by: vec![PEER_GROUP_LABEL.to_owned()],
            method: PeerMethod::Mad,
            window_points: (3_600_000 / step_ms).max(3) as usize,
            sensitivity: 0.5,
        }),
    }
}

fn samples(demo: &DemoSeries, first_ms: i64, last_ms: i64, step_ms: i64) -> Vec<Sample> {
    (first_ms..=last_ms)
        .step_by(step_ms as usize)
        .map(|t| Sample {
            timestamp_ms: t,
            value: demo.value_at(t as f64 / 1000.0),
        })
        .collect()
}

/// Runs `work` on every item, `threads` items at a time, as the pipeline's blocking pool runs
/// one evaluation per query; results in the items' order.
fn in_parallel<T: Send, R: Send>(
    items: &mut [T],
    threads: usize,
    work: impl Fn(&mut T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.max(1);
    let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let mut lanes: Vec<Vec<(usize, &mut T, &mut Option<R>)>> =
            (0..threads).map(|_| Vec::new()).collect();
        for (i, (item, result)) in items.iter_mut().zip(results.iter_mut()).enumerate() {
            lanes[i % threads].push((i, item, result));
        }
        let work = &work;
        for lane in lanes {
            scope.spawn(move || {
                for (_, item, result) in lane {
                    *result = Some(work(item));
                }
            });
        }
    });
    results.into_iter().flatten().collect()
}

/// Resident memory of this process, from `/proc/self/status`.
pub fn render(report: &ScaleReport) -> String {
    let s = &report.settings;
    let per_series = |bytes: usize| bytes as f64 / report.memory.series.max(1) as f64;
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let mut out = format!(
        "{} series in {} queries, history {} at step {}, season {}, refit every {}, live record {}, {} threads\n",
        s.series,
        s.queries,
        crate::config::duration::format(s.history),
        crate::config::duration::format(s.step),
        s.season
            .map_or_else(|| "none".to_owned(), crate::config::duration::format),
        crate::config::duration::format(s.refit_interval),
        crate::config::duration::format(s.live_record),
        s.threads,
    );
    out += &format!(
        "load (history in batches of {BATCH}, fit): {:.1} s wall, {:.1} s CPU, {} fits\n",
        report.load_wall.as_secs_f64(),
        report.load_cpu.as_secs_f64(),
        report.load_fits
    );
    for (i, cycle) in report.cycles.iter().enumerate() {
        out += &format!(
            "cycle {:>3}: {:>7.0} ms wall, {:>7.0} ms CPU ({:.2} % of one core at a {} interval), {} refits; /metrics render {:.0} ms, {:.0} MB\n",
            i + 1,
            cycle.wall.as_secs_f64() * 1000.0,
            cycle.cpu.as_secs_f64() * 1000.0,
            cycle.cpu.as_secs_f64() / s.step.as_secs_f64() * 100.0,
            crate::config::duration::format(s.step),
            cycle.fits,
            cycle.render.as_secs_f64() * 1000.0,
            cycle.rendered_bytes as f64 / 1e6,
        );
    }
    if !report.cycles.is_empty() {
        let cpu: f64 = report
            .cycles
            .iter()
            .map(|c| c.cpu.as_secs_f64())
            .sum::<f64>()
            / report.cycles.len() as f64;
        out += &format!(
            "steady mean: {:.0} ms CPU per cycle = {:.2} % of one core; {} series ready\n",
            cpu * 1000.0,
            cpu / s.step.as_secs_f64() * 100.0,
            report.ready
        );
    }
    if s.peer_group.is_some() {
        let p = &report.peers;
        out += &format!(
            "peer groups (last cycle): {} assessed, {} too small, {} without spread; {} outliers\n",
            p.groups_assessed, p.groups_too_small, p.groups_without_spread, p.outliers
        );
    }
    let m = &report.memory;
    out += &format!(
        "memory per series: windows, source labels and table slots {:.0} B, seasonal profiles {:.0} B, model state {:.0} B, exported labels and their escaped block {:.0} B, live record for the charts {:.0} B\n",
        per_series(m.windows_and_labels),
        per_series(m.seasonal_profiles),
        per_series(m.model_state),
        per_series(m.exported_labels),
        per_series(m.live_records),
    );
    if let Some(state) = &report.state {
        out += &format!(
            "state files: {:.0} MiB ({:.0} B per series); written in {:.1} s, read and restored in {:.1} s (against {:.1} s to load and fit); first cycle after: {} series ready, {} refits\n",
            mib(state.bytes),
            state.bytes as f64 / report.memory.series.max(1) as f64,
            state.write.as_secs_f64(),
            state.restore.as_secs_f64(),
            report.load_wall.as_secs_f64(),
            state.ready_after,
            state.fits_after,
        );
    }
    if let (Some(load), Some(end)) = (report.rss_after_load, report.rss_at_end) {
        out += &format!(
            "RSS: {:.0} MiB after the load, {:.0} MiB at the end ({:.0} B per series)\n",
            mib(load),
            mib(end),
            end as f64 / m.series.max(1) as f64
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_loads_fits_and_cycles_every_series() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = ScaleSettings {
            series: 40,
            queries: 3,
            history: Duration::from_secs(6 * 3600),
            step: Duration::from_secs(60),
            season: None,
            refit_interval: Duration::from_secs(600),
            live_record: Duration::from_secs(6 * 3600),
            cycles: 12,
            threads: 2,
            state_dir: Some(dir.path().join("state")),
            first_fit: FirstFit::Quick,
            peer_group: Some(5),
        };
        let report = run(&settings);
        assert_eq!(report.load_fits, 40);
        assert_eq!(report.ready, 40);
        assert_eq!(report.memory.series, 40);
        assert_eq!(report.cycles.len(), 12);
        // Every model is refitted within the ten-minute interval, spread over its cycles
        // rather than all at once.
        let refits: Vec<usize> = report.cycles.iter().map(|c| c.fits).collect();
        assert!(refits.iter().sum::<usize>() >= 40, "{refits:?}");
        assert!(refits.iter().all(|&f| f < 20), "{refits:?}");
        assert!(report.cycles.iter().all(|c| c.rendered_bytes > 0));
        // 361 values per window, packed: five blocks of 64 (160 B each) and the open block.
        assert!(report.memory.windows_and_labels >= 40 * 5 * 160);
        assert!(report.memory.windows_and_labels < 40 * 361 * 8);
        // The charts' record: 6h at 1m, 12 bytes a point, allocated at the first point.
        assert!(
            report.memory.live_records >= 40 * 360 * 12,
            "{:?}",
            report.memory
        );
        // Restored from the state files, every series is ready on the next cycle, and its
        // models resumed: at most the scheduled refits, not one per series.
        let state = report.state.expect("measured");
        assert!(state.bytes > 40 * 361 * 2, "{state:?}");
        assert_eq!(state.ready_after, 40, "{state:?}");
        assert!(state.fits_after < 20, "{state:?}");
        let text = render(&report);
        assert!(text.contains("40 series in 3 queries"), "{text}");
        assert!(text.contains("state files:"), "{text}");
        assert!(text.contains("steady mean"), "{text}");
    }
}
