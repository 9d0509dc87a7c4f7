//! History through remote read gives exactly what `query_range` gives, on a real Prometheus:
//! `foretell bench history` loads one query both ways and compares every sample.

use std::fmt::Write as _;
use std::process::Command;

use crate::support::{free_port, now_secs, require_binary, run_ok, Prometheus};

/// Two hours of four series that exercise what the grid must reproduce: jittered scrape
/// times, gaps shorter and longer than the lookback, NaN samples, a sample exactly the lookback
/// old at every grid point, repeated values and jumps of every size.
fn irregular_history(end: i64) -> String {
    let start = end - 2 * 3600;
    let mut text = String::from("# HELP rr_test A remote read test gauge\n# TYPE rr_test gauge\n");
    let mut line = |instance: &str, t_ms: i64, value: String| {
        writeln!(
            text,
            "rr_test{{instance=\"{instance}\"}} {value} {}.{:03}",
            t_ms / 1000,
            t_ms % 1000
        )
        .expect("write");
    };
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut walk = 0.0f64;
    for k in 0..(2 * 3600 / 15) {
        walk += (random() % 2001) as f64 / 1000.0 - 1.0;
        // Jitter of up to 2.5 s, at millisecond precision.
        let t_ms = (start + 15 * k) * 1000 + (random() % 2500) as i64;
        line("jittered", t_ms, format!("{walk}"));
    }
    for k in 0..(2 * 3600 / 15) {
        let t = start + 15 * k;
        // Gaps of 3 and of 10 minutes, both longer than the lookback.
        if (1800..1980).contains(&(t - start)) || (3600..4200).contains(&(t - start)) {
            continue;
        }
        let value = if random() % 50 == 0 {
            "NaN".to_owned()
        } else {
            format!("{}", (random() % 10_000) as f64 / 100.0)
        };
        line("gaps", t * 1000, value);
    }
    // Once a minute at second 40: every grid point (a whole minute) finds its newest sample
    // exactly 20 s old, the harness' lookback, which Prometheus 2 still counts.
    for (i, minute) in (start - start % 60..end - 60).step_by(60).enumerate() {
        line("at_lookback", (minute + 40) * 1000, format!("{i}"));
    }
    let mut value = 5.0f64;
    for k in 0..(2 * 3600 / 10) {
        if random() % 20 == 0 {
            value = match random() % 5 {
                0 => value * 1000.0,
                1 => -value,
                2 => 0.0,
                3 => 1e-300,
                _ => 3.5,
            };
        }
        line("jumps", (start + 10 * k) * 1000, format!("{value:e}"));
    }
    text.push_str("# EOF\n");
    text
}

#[test]
#[ignore = "needs the Debian prometheus package; run by .ci/run's end-to-end stage"]
fn remote_read_history_is_identical_to_query_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let end = now_secs() - 60;
    let history = dir.path().join("history.om");
    std::fs::write(&history, irregular_history(end)).expect("history");
    run_ok(
        Command::new(require_binary("promtool"))
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&history)
            .arg(dir.path().join("data")),
    );
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global:\n  scrape_interval: 15s\n",
    )
    .expect("prometheus.yml");
    let mut prometheus = Prometheus {
        port: free_port(),
        dir: dir.path().to_owned(),
        process: None,
    };
    prometheus.start();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(prometheus.wait_ready());
    let config = dir.path().join("foretell.yml");
    // Batches of two series: the history requests carry the batching matcher, as the
    // sidecar's do.
    std::fs::write(
        &config,
        format!(
            "prometheus:\n  url: {}\n  history_batch_series: 2\nqueries:\n  - name: rr\n    expr: rr_test\n    step: 1m\n    history: 3h\n  - name: computed\n    expr: rr_test * 2\n    step: 1m\n    history: 3h\n",
            prometheus.url()
        ),
    )
    .expect("config");
    let bench = |query: &str| {
        Command::new(env!("CARGO_BIN_EXE_foretell"))
            .args([
                "bench", "history", "--rounds", "1", "--query", query, "--config",
            ])
            .arg(&config)
            .output()
            .expect("foretell bench history runs")
    };
    let output = bench("rr");
    let report = String::from_utf8_lossy(&output.stdout);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{report}\n{log}");
    assert!(
        report.contains("identical: every series and sample"),
        "{report}"
    );
    assert!(
        report.contains("| remote_read | ") && !report.contains("fell back"),
        "every request went through remote read: {report}"
    );
    assert!(
        report.contains("4 series x 181 points, 2 requests per load"),
        "{report}"
    );
    assert!(
        log.contains("lookback=20s"),
        "the server's lookback was found: {log}"
    );

    // An expression that is not a plain selector goes through query_range either way.
    let output = bench("computed");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(
        report.contains("remote_read (1 of 1 fell back to query_range)"),
        "{report}"
    );
    prometheus.stop();
}
