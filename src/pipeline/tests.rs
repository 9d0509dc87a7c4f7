use std::path::Path;

use foretell_core::snapshot::SeriesState;

use super::*;
use crate::clock::ManualClock;
use crate::config::{self, Config, SystemEnvironment};
use foretell_testing::{json, matrix, Canned, FakeUpstream};

const STEP_MS: i64 = 60_000;

/// The fake upstream speaks `query_range` only (remote read is the reader's to test).
fn config(url: &str, expr: &str) -> Config {
    let text = format!(
        "prometheus:\n  url: {url}\n  timeout: 1s\n  remote_read: off\n  retry:\n    max_attempts: 1\nqueries:\n  - name: up\n    expr: {expr}\n    step: 1m\n    history: 1h\n    model:\n      min_history_points: 8\n"
    );
    config::parse(&text, Path::new("t.yml"), &SystemEnvironment).expect("valid")
}

struct Harness {
    ctx: Context,
    clock: Arc<ManualClock>,
}

impl Harness {
    /// The first cycle of the config's first query.
    async fn first_cycle(&self, config: &Config) -> QueryTask {
        self.cycle(QueryTask::new(Arc::new(config.queries[0].clone())))
            .await
    }

    async fn cycle(&self, task: QueryTask) -> QueryTask {
        run_cycle(&self.ctx, task, &CancellationToken::new()).await
    }
}

fn harness(config: &Config, now_ms: i64) -> Harness {
    let telemetry = Arc::new(Telemetry::new("test"));
    let clock = Arc::new(ManualClock::new(now_ms));
    Harness {
        ctx: Context {
            reader: PrometheusReader::new(&config.prometheus).expect("client"),
            audit: None,
            telemetry: Arc::clone(&telemetry),
            snapshot: Arc::new(SnapshotCell::default()),
            upstream: Arc::new(UpstreamHealth::new(telemetry)),
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            shard: config.shard,
            state: None,
        },
        clock,
    }
}

fn points(first_s: i64, values: &[&'static str]) -> Vec<(i64, &'static str)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (first_s + 60 * i as i64, *v))
        .collect()
}

#[test]
fn ranges_cover_history_then_only_new_grid_points() {
    let config = config("http://127.0.0.1:1", "up");
    let mut task = QueryTask::new(Arc::new(config.queries[0].clone()));
    let now = 10 * 3_600_000 + 30_000;
    let end = 10 * 3_600_000;
    assert_eq!(
        task.next_range(now),
        Some((end - 300_000, end)),
        "the first fetch discovers the series seen within the freshness window"
    );
    assert_eq!(task.oldest_ms(end), end - 3_600_000);
    task.next_start_ms = Some(end + STEP_MS);
    assert_eq!(task.next_range(now + 10_000), None, "no new grid point yet");
    assert_eq!(
        task.clock_behind(now + 10_000),
        None,
        "which is no clock step"
    );
    assert_eq!(task.clock_behind(now - 3_600_000), Some(end + STEP_MS));
    assert_eq!(
        task.next_range(now + 40_000),
        Some((end + STEP_MS, end + STEP_MS))
    );
    // After an outage longer than the history, the fetch is capped at the history.
    let later = end + 5 * 3_600_000;
    assert_eq!(task.next_range(later), Some((later - 3_600_000, later)));
}

#[tokio::test]
async fn a_cycle_publishes_scores_and_a_failed_cycle_keeps_the_last_output() {
    let first_s = 1_700_000_040 - 59 * 60;
    let mut values = ["10", "10.5", "9.5", "10.2", "9.8"].repeat(12);
    values[59] = "50";
    let upstream = FakeUpstream::start(vec![
        json(200, &matrix(&[("a", &points(first_s, &values))])),
        json(200, &matrix(&[("a", &points(first_s, &values))])),
        Canned::Reply {
            status: 503,
            content_type: "text/plain",
            body: "down for maintenance".into(),
        },
    ])
    .await;
    let config = config(&upstream.url, "up");
    let h = harness(&config, 1_700_000_040_000 + 5_000);
    let task = h.first_cycle(&config).await;

    let snapshot = h.ctx.snapshot.load();
    let series: Vec<_> = snapshot.series().collect();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].labels().get("instance"), Some("a"));
    assert_eq!(series[0].labels().get("query"), Some("up"));
    match &series[0].state {
        SeriesState::Ready {
            score: Some(score), ..
        } => assert!(*score > 1.0, "{score}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(h.ctx.upstream.status(), UpstreamStatus::Up { .. }));
    assert_eq!(task.next_start_ms, Some(1_700_000_040_000 + STEP_MS));

    h.clock.set(1_700_000_040_000 + STEP_MS + 1_000);
    let task = h.cycle(task).await;
    match h.ctx.upstream.status() {
        UpstreamStatus::Down { error, .. } => assert!(error.contains("HTTP 503"), "{error}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.ctx.snapshot.load().series().count(),
        1,
        "last output still served"
    );
    assert_eq!(
        task.next_start_ms,
        Some(1_700_000_040_000 + STEP_MS),
        "the missed range is fetched next time"
    );
    // Still failing past the freshness window (5m): the series leave /metrics and go stale.
    h.clock.set(1_700_000_040_000 + 6 * STEP_MS + 1_000);
    let task = h.cycle(task).await;
    assert_eq!(h.ctx.snapshot.load().series().count(), 0, "withdrawn");
    assert_eq!(
        task.tracker.series_count(),
        1,
        "but kept for when Prometheus returns"
    );
    let mut metrics = String::new();
    h.ctx
        .telemetry
        .render(&mut metrics, foretell_core::exposition::Format::Text);
    assert!(metrics.contains("foretell_upstream_up 0"), "{metrics}");
    assert!(
        metrics.contains("foretell_query_failures_total{query=\"up\",reason=\"server_error\"} 2"),
        "{metrics}"
    );
}

fn request_exprs(upstream: &FakeUpstream) -> Vec<String> {
    request_params(upstream, "query")
}

/// The form parameter `key` of every request the upstream got, in order.
fn request_params(upstream: &FakeUpstream, key: &str) -> Vec<String> {
    upstream
        .requests()
        .iter()
        .map(|request| {
            let body = request.rsplit("\r\n\r\n").next().unwrap_or_default();
            url::form_urlencoded::parse(body.as_bytes())
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default()
        })
        .collect()
}

#[tokio::test]
async fn new_series_load_their_history_in_batches_also_when_they_appear_later() {
    let end_s = 1_700_000_040;
    let first_s = end_s - 59 * 60;
    let values = ["10", "10.5", "9.5", "10.2", "9.8"].repeat(12);
    let history = points(first_s, &values);
    let newest = points(end_s, &["10"]);
    let later = points(end_s + 60, &["10.1"]);
    let upstream = FakeUpstream::start(vec![
        // Discovery: two series.
        json(200, &matrix(&[("a", &newest), ("b", &newest)])),
        // Their histories, one batch each (either order: both answers hold both).
        json(200, &matrix(&[("a", &history), ("b", &history)])),
        json(200, &matrix(&[("a", &history), ("b", &history)])),
        // Next cycle: a third series appears.
        json(200, &matrix(&[("a", &later), ("b", &later), ("c", &later)])),
        json(200, &matrix(&[("c", &points(first_s + 60, &values))])),
    ])
    .await;
    let mut config = config(&upstream.url, "up");
    config.prometheus.history_batch_series = 1;
    let h = harness(&config, end_s * 1000 + 5_000);
    let task = h.first_cycle(&config).await;
    let mut exprs = request_exprs(&upstream);
    exprs[1..].sort();
    assert_eq!(
        exprs,
        vec!["up", r#"up{instance=~"a"}"#, r#"up{instance=~"b"}"#]
    );
    let ready = |h: &Harness| {
        h.ctx
            .snapshot
            .load()
            .series()
            .filter(|s| matches!(s.state, SeriesState::Ready { .. }))
            .filter_map(|s| s.labels().get("instance").map(str::to_owned))
            .collect::<Vec<_>>()
    };
    assert_eq!(ready(&h), vec!["a", "b"], "both fitted on their history");

    h.clock.set((end_s + 60) * 1000 + 5_000);
    let task = h.cycle(task).await;
    let exprs = request_exprs(&upstream);
    assert_eq!(exprs.len(), 5, "{exprs:?}");
    assert_eq!(
        exprs[4], r#"up{instance=~"c"}"#,
        "only the new series' history"
    );
    assert_eq!(ready(&h), vec!["a", "b", "c"]);
    assert_eq!(task.tracker.series_count(), 3);
    let mut metrics = String::new();
    h.ctx
        .telemetry
        .render(&mut metrics, foretell_core::exposition::Format::Text);
    assert!(
        metrics.contains("foretell_query_failures_total{query=\"up\",reason=\"server_error\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_rejected_query_does_not_mark_the_upstream_down() {
    let upstream = FakeUpstream::start(vec![json(
        400,
        r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
    )])
    .await;
    // The configuration only admits expressions that parse, but Prometheus still rejects some
    // (a function it is too old to know, a query over its limits); the fake rejects this one.
    let config = config(&upstream.url, "up");
    let h = harness(&config, 1_700_000_000_000);
    h.first_cycle(&config).await;
    assert!(matches!(h.ctx.upstream.status(), UpstreamStatus::Up { .. }));
}

#[tokio::test]
async fn a_stuck_fetch_is_abandoned_on_cancel() {
    let upstream = FakeUpstream::start(vec![Canned::Hang]).await;
    let config = config(&upstream.url, "up");
    let h = harness(&config, 1_700_000_000_000);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let task = run_cycle(
        &h.ctx,
        QueryTask::new(Arc::new(config.queries[0].clone())),
        &cancel,
    )
    .await;
    assert_eq!(task.next_start_ms, None);
    assert_eq!(h.ctx.upstream.status(), UpstreamStatus::Unknown);
}

#[test]
fn reload_keeps_series_only_for_queries_fetching_the_same_data() {
    let old = config("http://127.0.0.1:1", "up");
    let mut task = QueryTask::new(Arc::new(old.queries[0].clone()));
    task.next_start_ms = Some(42);
    let same = carry_over(vec![task], &old.queries);
    assert_eq!(same[0].next_start_ms, Some(42));
    let changed = config("http://127.0.0.1:1", "node_load1");
    let fresh = carry_over(same, &changed.queries);
    assert_eq!(fresh[0].next_start_ms, None);
    assert_eq!(fresh[0].config.expr, "node_load1");
}

fn request_parameter(request: &str, name: &str) -> String {
    let body = request.rsplit("\r\n\r\n").next().unwrap_or_default();
    url::form_urlencoded::parse(body.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn wall_clock_steps_skip_cycles_going_back_and_fetch_at_most_the_history_going_forward() {
    const HOUR: i64 = 3_600_000;
    let first_s = 1_700_000_040 - 59 * 60;
    let values = ["10", "10.5", "9.5", "10.2", "9.8"].repeat(12);
    let day_later_s = first_s + 24 * 3600;
    let upstream = FakeUpstream::start(vec![
        json(200, &matrix(&[("a", &points(first_s, &values))])),
        json(200, &matrix(&[("a", &points(first_s, &values))])),
        json(200, &matrix(&[("a", &points(day_later_s, &values))])),
    ])
    .await;
    let config = config(&upstream.url, "up");
    let now = 1_700_000_040_000 + 5_000;
    let h = harness(&config, now);
    let task = h.first_cycle(&config).await;
    assert_eq!(h.ctx.snapshot.load().series().count(), 1);
    let requests = upstream.requests().len();
    let next_start = task.next_start_ms;

    // Back an hour: nothing newer can exist, so no request, and the output stays.
    h.clock.step_wall(-HOUR);
    let task = h.cycle(task).await;
    assert_eq!(upstream.requests().len(), requests, "no request");
    assert_eq!(task.next_start_ms, next_start, "resumes where it stopped");
    assert_eq!(h.ctx.snapshot.load().series().count(), 1);

    // Forward a day: one fetch of at most the history, and the series scored on its points.
    h.clock.step_wall(HOUR + 24 * HOUR);
    let task = h.cycle(task).await;
    let last = upstream.requests().last().cloned().unwrap_or_default();
    let start: f64 = request_parameter(&last, "start").parse().expect("start");
    let end: f64 = request_parameter(&last, "end").parse().expect("end");
    assert!(end * 1000.0 <= h.clock.now_ms() as f64);
    assert!(
        end - start <= 3600.0,
        "the gap is not fetched beyond the 1h history: {start}..{end}"
    );
    assert_eq!(task.tracker.series_count(), 1);
    let snapshot = h.ctx.snapshot.load();
    let series: Vec<_> = snapshot.series().collect();
    assert_eq!(series.len(), 1, "published after the step");
    assert!(
        matches!(series[0].state, SeriesState::Ready { .. }),
        "{:?}",
        series[0].state
    );
    assert!(matches!(h.ctx.upstream.status(), UpstreamStatus::Up { .. }));
}

/// Issue 16, item 1: a label name that forged a sample in `/metrics`, and names that made the
/// whole exposition unparsable, are left out and counted; the other series are served.
#[tokio::test]
async fn series_with_hostile_label_names_never_reach_metrics() {
    let first_s = 1_700_000_040 - 59 * 60;
    let values = ["10", "10.5", "9.5", "10.2", "9.8"].repeat(12);
    let injected = r#""zz=\"1\"} 1\nforetell_anomaly_score{query=\"payments\",instance=\"db-1\",injected=\"yes\"} 999\nx{a":"v""#;
    let body = matrix(&[
        ("a", &points(first_s, &values)),
        ("b", &points(first_s, &values)),
        ("c", &points(first_s, &values)),
    ])
    .replace(
        r#""instance":"b""#,
        &format!(r#""instance":"b",{injected}"#),
    )
    .replace(
        r#""instance":"c""#,
        r#""instance":"c","":"empty","bad name":"x""#,
    );
    let upstream = FakeUpstream::start(vec![json(200, &body), json(200, &body)]).await;
    let config = config(&upstream.url, "up");
    let h = harness(&config, 1_700_000_040_000 + 5_000);
    h.first_cycle(&config).await;

    let snapshot = h.ctx.snapshot.load();
    let instances: Vec<_> = snapshot
        .series()
        .map(|s| s.labels().get("instance").unwrap_or_default().to_owned())
        .collect();
    assert_eq!(instances, vec!["a"]);
    let mut exposition = String::new();
    foretell_core::exposition::render_snapshot(&snapshot, &mut exposition);
    h.ctx
        .telemetry
        .render(&mut exposition, foretell_core::exposition::Format::Text);
    assert!(!exposition.contains("injected"), "{exposition}");
    let parsed = prometheus_parse::Scrape::parse(exposition.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses");
    assert!(parsed
        .samples
        .iter()
        .all(|s| s.labels.get("injected").is_none()));
    assert!(parsed
        .samples
        .iter()
        .any(|s| s.metric == "foretell_baseline" && s.labels.get("instance") == Some("a")));
    assert!(
        exposition.contains(
            r#"foretell_series_refused_total{query="up",reason="label_name_not_classic"} 2"#
        ),
        "{exposition}"
    );
}

/// Issue 16, item 2: samples at `1e300` and `-1e18` seconds panicked the pipeline every cycle
/// while readiness stayed 200. Such an answer now fails to decode, which self-metrics and
/// readiness show, and the series already tracked keep their models.
#[tokio::test]
async fn absurd_timestamps_fail_the_answer_visibly_and_keep_the_tracked_series() {
    let first_s = 1_700_000_040 - 59 * 60;
    let values = ["10", "10.5", "9.5", "10.2", "9.8"].repeat(12);
    let good = matrix(&[("a", &points(first_s, &values))]);
    let absurd = |at: &str| {
        json(
            200,
            &matrix(&[("a", &[(1_700_000_100, "1")])]).replace("1700000100", at),
        )
    };
    let upstream = FakeUpstream::start(vec![
        json(200, &good),
        json(200, &good),
        absurd("1e300"),
        absurd("-1e18"),
    ])
    .await;
    let config = config(&upstream.url, "up");
    let h = harness(&config, 1_700_000_040_000 + 5_000);
    let mut task = h.first_cycle(&config).await;
    assert_eq!(task.tracker.series_count(), 1);
    for minutes in [1, 2] {
        h.clock.set(1_700_000_040_000 + minutes * STEP_MS + 1_000);
        task = h.cycle(task).await;
        assert_eq!(task.tracker.series_count(), 1, "still tracked");
        match h.ctx.upstream.status() {
            UpstreamStatus::Down { error, .. } => {
                assert!(error.contains("sample timestamp"), "{error}")
            }
            other => panic!("{other:?}"),
        }
    }
    let mut metrics = String::new();
    h.ctx
        .telemetry
        .render(&mut metrics, foretell_core::exposition::Format::Text);
    assert!(metrics.contains("foretell_upstream_up 0"), "{metrics}");
    assert!(
        metrics.contains(r#"foretell_query_failures_total{query="up",reason="decode"} 2"#),
        "{metrics}"
    );
}

/// Issue 22: a query saved to its state file and restored into a fresh task resumes where it
/// was: the next cycle fetches only the gap and publishes what an uninterrupted task does.
#[tokio::test]
async fn a_restored_task_fetches_the_gap_and_publishes_what_an_uninterrupted_one_does() {
    let first_s = 1_700_000_040 - 59 * 60;
    let values = ["10", "10.5", "9.5", "10.2", "9.8"].repeat(12);
    let gap = points(first_s + 60 * 60, &["10.1", "30", "9.9"]);
    let upstream = FakeUpstream::start(vec![
        json(200, &matrix(&[("a", &points(first_s, &values))])),
        json(200, &matrix(&[("a", &points(first_s, &values))])),
        json(200, &matrix(&[("a", &gap)])),
        json(200, &matrix(&[("a", &gap)])),
    ])
    .await;
    let config = config(&upstream.url, "up");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut h = harness(&config, 1_700_000_040_000 + 5_000);
    let store = Arc::new(
        StateStore::open(
            &crate::config::StateConfig {
                path: dir.path().join("state"),
                interval: std::time::Duration::from_secs(300),
            },
            config.shard,
        )
        .expect("state folder"),
    );
    h.ctx.state = Some(Arc::clone(&store));
    let uninterrupted = h.first_cycle(&config).await;
    let published: Vec<_> = h.ctx.snapshot.load().series().cloned().collect();
    let uninterrupted = persist::save(&h.ctx, &store, uninterrupted).await;
    assert_eq!(uninterrupted.next_start_ms, Some(1_700_000_100_000));
    assert!(store.path("up").is_file());

    let fresh = QueryTask::new(Arc::new(config.queries[0].clone()));
    assert!(fresh.is_fresh());
    h.ctx
        .snapshot
        .publish(foretell_core::snapshot::QueryOutput {
            query: "up".into(),
            evaluated_at_ms: 0,
            horizons: Vec::new(),
            series: Vec::new(),
        });
    assert_eq!(h.ctx.snapshot.load().series().count(), 0);
    let restarted = persist::restore(&h.ctx, &store, fresh).await;
    assert!(!restarted.is_fresh());
    // Published at once, before any new point: what the query showed when it stopped.
    let republished: Vec<_> = h.ctx.snapshot.load().series().cloned().collect();
    assert_eq!(republished, published);
    assert_eq!(restarted.next_start_ms, uninterrupted.next_start_ms);
    assert_eq!(restarted.tracker.series_count(), 1);

    h.clock.set(1_700_000_040_000 + 3 * STEP_MS + 1_000);
    let _uninterrupted = h.cycle(uninterrupted).await;
    let expected: Vec<_> = h.ctx.snapshot.load().series().cloned().collect();
    let _restarted = h.cycle(restarted).await;
    let got: Vec<_> = h.ctx.snapshot.load().series().cloned().collect();
    assert_eq!(got, expected);
    assert!(
        matches!(&got[0].state, SeriesState::Ready { score: Some(s), .. } if *s < 1.0),
        "the newest gap point is ordinary: {got:?}"
    );
    // Discovery and history, then one range each: the restored task asked for the gap only
    // (from the point after the newest evaluated one), never for the history again.
    let starts = request_params(&upstream, "start");
    assert_eq!(starts.len(), 4, "{starts:?}");
    assert_eq!(starts[3], starts[2], "{starts:?}");
    assert_eq!(
        starts[3].parse::<f64>().ok(),
        Some(1_700_000_100.0),
        "{starts:?}"
    );

    let mut metrics = String::new();
    h.ctx
        .telemetry
        .render(&mut metrics, foretell_core::exposition::Format::Text);
    for line in [
        "foretell_state_restores_total{query=\"up\",outcome=\"restored\"} 1",
        "foretell_state_writes_total{query=\"up\",outcome=\"ok\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }

    // A damaged file is not restored: the query starts afresh and says why.
    let path = store.path("up");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
    let fresh = QueryTask::new(Arc::new(config.queries[0].clone()));
    assert!(persist::restore(&h.ctx, &store, fresh).await.is_fresh());
    let mut metrics = String::new();
    h.ctx
        .telemetry
        .render(&mut metrics, foretell_core::exposition::Format::Text);
    assert!(
        metrics.contains("foretell_state_restores_total{query=\"up\",outcome=\"truncated\"} 1"),
        "{metrics}"
    );
}
