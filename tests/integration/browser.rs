//! `foretell demo` from nothing, looked at in a real browser: headless Chromium (Debian's
//! `chromium`) loads the status pages, their content is checked in the DOM it built, and
//! screenshots are kept in `target/screenshots/`. Ignored by default; run by `.ci/run`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn chromium(args: &[&str], profile: &Path) -> std::process::Output {
    Command::new(require_binary("chromium"))
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

/// The DOM Chromium built from `url`, as HTML.
fn dom(url: &str, profile: &Path) -> String {
    let output = chromium(&["--virtual-time-budget=3000", "--dump-dom", url], profile);
    assert!(output.status.success(), "chromium failed on {url}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A PNG of `url`, saved for people to look at; returns its path.
fn screenshot(url: &str, name: &str, profile: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let path = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&path);
    let output = chromium(
        &[
            "--window-size=1280,1000",
            "--virtual-time-budget=3000",
            &format!("--screenshot={}", path.display()),
            url,
        ],
        profile,
    );
    assert!(
        output.status.success(),
        "chromium failed to screenshot {url}"
    );
    path
}

/// (points, points outside the band, anomaly episodes) from a chart's description.
fn chart_counts(svg: &str) -> (usize, usize, usize) {
    let desc = svg
        .split("<desc>")
        .nth(1)
        .and_then(|d| d.split("</desc>").next())
        .unwrap_or_default();
    let numbers: Vec<usize> = desc
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    // "N points, K outside the 99% band, E anomaly episode(s); ..."
    match numbers.as_slice() {
        [points, outside, _coverage, episodes, ..] => (*points, *outside, *episodes),
        _ => (0, 0, 0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium; run by .ci/run's end-to-end stage"]
async fn the_demo_runs_from_nothing_and_its_status_pages_render_in_a_browser() {
    let dir = tempfile::tempdir().expect("tempdir");
    let profile = dir.path().join("chromium-profile");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut demo = Process::spawn(
        "foretell demo",
        Command::new(env!("CARGO_BIN_EXE_foretell"))
            .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--dir"])
            .arg(dir.path().join("demo")),
        dir.path().join("demo.log"),
    );
    demo.wait_http_ok(&format!("{base}/-/ready"), Duration::from_secs(60))
        .await;
    // Within a minute: every series has a model and the sample alert came back enriched.
    eventually(
        "the demo's models are ready",
        Duration::from_secs(60),
        || async {
            get(&format!("{base}/metrics"))
                .await
                .filter(|(_, body)| body.contains("foretell_series_ready{query=\"demo\"} 12\n"))
        },
    )
    .await;
    let metrics = get(&format!("{base}/metrics")).await.expect("metrics").1;
    assert!(
        metrics.contains("foretell_forecast{instance=\"web-a\",job=\"demo\",query=\"demo\",source_metric=\"demo_requests_per_second\",horizon=\"1h\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("foretell_anomaly_score{instance=\"web-b\""));
    // Issue 23, item 6: the latency of api-4 drifts away from its four siblings; the peers see
    // it from the first cycle, the others are not outliers.
    let outliers = eventually(
        "the drifting instance is a peer outlier",
        Duration::from_secs(30),
        || async {
            get(&format!("{base}/metrics")).await.map(|(_, body)| body).filter(|body| {
                body.contains("foretell_peer_outlier{instance=\"api-4\",job=\"demo\",query=\"latency\",source_metric=\"demo_request_latency_seconds\"} 1\n")
            })
        },
    )
    .await;
    for sibling in ["api-1", "api-2", "api-3", "api-5"] {
        assert!(
            outliers.contains(&format!("foretell_peer_outlier{{instance=\"{sibling}\",job=\"demo\",query=\"latency\",source_metric=\"demo_request_latency_seconds\"}} 0\n")),
            "{sibling} is not an outlier:\n{outliers}"
        );
    }
    let log = eventually(
        "the demo receiver prints the enriched sample alert",
        Duration::from_secs(30),
        || async {
            let log = std::fs::read_to_string(&demo.log).unwrap_or_default();
            log.contains("[demo receiver] firing DemoTrafficHigh (web-a)")
                .then_some(log)
        },
    )
    .await;
    assert!(log.contains("  confidence:  0."), "{log}");
    assert!(log.contains("  chart:       http://127.0.0.1:"), "{log}");

    // The overview: queries, what is anomalous now (the sample alert comes before the
    // incident, so nothing yet: the overview lists only series outside their band), the alert
    // with its evidence and outcome.
    let overview = dom(&format!("{base}/"), &profile);
    for expected in [
        "<h2>Queries</h2>",
        "demo_requests_per_second",
        "Anomalous now",
        "{instance=\"web-a\", job=\"demo\", query=\"demo\"",
        "DemoTrafficHigh",
        "delivered to demo-receiver",
        "Outliers among their peers now",
        "demo_request_latency_seconds{instance=\"api-4\", job=\"demo\"}</a></td><td class=\"num bad\">",
    ] {
        assert!(
            overview.contains(expected),
            "{expected} missing:\n{overview}"
        );
    }
    // A series page with its chart, which the browser loads from /graph.
    let series_url = format!(
        "{base}/status/series?query=demo&series=%7Binstance%3D%22web-a%22%2C+job%3D%22demo%22%7D"
    );
    let series = dom(&series_url, &profile);
    assert!(series.contains("<img class=\"chart\""), "{series}");
    assert!(
        series.contains("Forecasts") && series.contains("<td>1h</td>"),
        "{series}"
    );
    let chart = get(&format!(
        "{base}/graph?query=demo&series=%7Binstance%3D%22web-a%22%2C+job%3D%22demo%22%7D"
    ))
    .await
    .expect("chart");
    assert_eq!(chart.0, 200);
    assert!(chart.1.contains("class=\"band\""), "{}", chart.1);
    for (url, name) in [
        (format!("{base}/"), "status"),
        (series_url.clone(), "series"),
    ] {
        let png = screenshot(&url, name, &profile);
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 20_000, "{} is only {size} bytes", png.display());
    }

    // Issue 19, item 6: during the demo's incident (it starts at the first whole minute 90 s
    // after the start), the pages and charts tell the story: the incident series shows one
    // anomaly episode, a healthy one its band with its points inside it.
    let chart_of = |instance: &str, range: &str| {
        format!("{base}/graph?query=demo&series=%7Binstance%3D%22{instance}%22%2C+job%3D%22demo%22%7D&range={range}")
    };
    let incident_chart = eventually(
        "the incident shows on web-a's chart as one anomaly episode",
        Duration::from_secs(240),
        || async {
            get(&chart_of("web-a", "1h"))
                .await
                .filter(|(status, svg)| *status == 200 && chart_counts(svg).2 == 1)
                .map(|(_, svg)| svg)
        },
    )
    .await;
    assert!(
        incident_chart.contains("class=\"episode-peak\""),
        "{incident_chart}"
    );
    assert!(incident_chart.contains("live record"), "{incident_chart}");
    let overview = dom(&format!("{base}/"), &profile);
    let anomalous = overview
        .split("Anomalous now")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .expect("the anomalous-now table");
    assert!(anomalous.contains("instance=\"web-a\""), "{anomalous}");
    let query_page = dom(&format!("{base}/status/query?name=demo"), &profile);
    assert!(query_page.contains("web-b"), "{query_page}");
    let series = dom(&series_url, &profile);
    assert!(
        series.contains("<picture><source media=\"(min-width: 1500px)\""),
        "the chart is drawn at the window's width: {series}"
    );
    let healthy = get(&chart_of("web-b", "6h"))
        .await
        .expect("web-b's chart")
        .1;
    let (points, outside, episodes) = chart_counts(&healthy);
    assert!(healthy.contains("class=\"band\" d=\"M"), "{healthy}");
    assert!(points >= 300, "{healthy}");
    assert!(
        outside * 100 <= points && episodes == 0,
        "web-b is healthy: {outside} of {points} points outside its band, {episodes} episodes"
    );
    for (url, name) in [
        (format!("{base}/"), "incident-status"),
        (format!("{base}/status/query?name=demo"), "incident-query"),
        (series_url.clone(), "incident-series"),
        (
            format!("{base}/status/series?query=demo&series=%7Binstance%3D%22web-b%22%2C+job%3D%22demo%22%7D"),
            "healthy-series",
        ),
    ] {
        let png = screenshot(&url, name, &profile);
        let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
        assert!(size > 20_000, "{} is only {size} bytes", png.display());
    }

    assert!(
        demo.terminate(Duration::from_secs(20))
            .is_some_and(|status| status.success()),
        "the demo stops cleanly on SIGTERM"
    );
}
