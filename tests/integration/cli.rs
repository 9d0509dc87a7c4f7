//! The real binary's command line: exit codes and messages, no Prometheus needed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

fn foretell() -> Command {
    Command::new(env!("CARGO_BIN_EXE_foretell"))
}

/// Stops a sidecar that must still be running with SIGTERM, expects a clean exit, and returns
/// its log.
fn stop_running_and_read_log(process: &mut Process, log: &std::path::Path) -> String {
    assert!(process.is_running());
    let exit = process
        .terminate(Duration::from_secs(15))
        .expect("stops on SIGTERM");
    assert!(exit.success(), "{exit}");
    std::fs::read_to_string(log).unwrap()
}

fn run(command: &mut Command) -> (i32, String, String) {
    let output = command.output().expect("foretell runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn version_names_the_release() {
    let (code, stdout, _) = run(foretell().arg("--version"));
    assert_eq!(code, 0);
    assert_eq!(
        stdout.trim(),
        format!("foretell {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_documented_example_config_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/foretell.example.yml");
    let (code, stdout, stderr) = run(foretell().arg("check-config").arg(&example));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with("valid, 7 queries\n"), "{stdout}");
}

#[test]
fn check_config_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        "prometheus:\n  url: http://127.0.0.1:9090\nqueries:\n  - name: a\n    expr: up\n    step: 0s\n  - name: b\n    expr: up\n    model:\n      coverage: 2\n",
    )
    .unwrap();
    let (code, _, stderr) = run(foretell().arg("check-config").arg(&file));
    assert_eq!(code, 2);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("{}: queries[0].step: must be > 0, got 0s", file.display()),
            format!("{}: queries[1].model.coverage: coverage must be strictly between 0 and 1 (for example 0.99), got 2", file.display()),
        ]
    );
}

#[test]
fn yaml_errors_and_unknown_keys_point_at_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typo.yml");
    std::fs::write(
        &file,
        "prometheus:\n  url: http://127.0.0.1:9090\n  timout: 5s\nqueries: []\n",
    )
    .unwrap();
    let (code, _, stderr) = run(foretell().arg("check-config").arg(&file));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("prometheus.timout: unknown key at line 3 column 3"),
        "{stderr}"
    );

    let (code, _, stderr) = run(foretell().args(["run", "--config", "/nonexistent/foretell.yml"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("/nonexistent/foretell.yml: cannot read: No such file"),
        "{stderr}"
    );
}

#[test]
fn bad_flags_are_usage_errors() {
    let (code, _, stderr) =
        run(foretell().args(["run", "--config", "x.yml", "--log.format", "xml"]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid value 'xml' for '--log.format"),
        "{stderr}"
    );
}

/// `forecast` writes the forecast as CSV and says on stderr what forecast it: the weights of the
/// candidates chosen on held-out points, their error against seasonal naive's, and the model of
/// the next-point band.
#[test]
fn forecast_prints_the_validated_model_choice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("daily.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..288 * 8 {
        let phase = (i % 288) as f64 / 288.0;
        let value =
            100.0 + 40.0 * (std::f64::consts::TAU * phase).sin() + (i * 7919 % 13) as f64 * 0.3;
        text.push_str(&format!("{},{value}\n", 1_700_000_000 + i * 300));
    }
    std::fs::write(&input, text).expect("csv");
    let (code, stdout, stderr) = run(foretell().arg("forecast").arg("--input").arg(&input).args([
        "--horizon",
        "1d",
        "--coverage",
        "0.95",
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 289, "{stdout}");
    assert!(
        stdout.starts_with("step,timestamp,forecast,lower,upper\n1,"),
        "{stdout}"
    );
    for part in [
        "weights at 288 steps",
        "x seasonal naive's",
        "seasonal naive[288]",
        "next-point band: MSTL[288]",
    ] {
        assert!(stderr.contains(part), "`{part}` missing from {stderr}");
    }
}

/// With nothing listening where Prometheus should be, foretell starts anyway, reports the
/// upstream as down, and stops cleanly on SIGTERM; with `--log.format json` every log line is
/// a JSON object.
#[tokio::test]
async fn an_unreachable_prometheus_does_not_stop_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dead_port = free_port();
    let config = dir.path().join("foretell.yml");
    std::fs::write(
        &config,
        format!("prometheus:\n  url: http://127.0.0.1:{dead_port}\n  timeout: 500ms\n  retry:\n    max_attempts: 1\nserver:\n  listen_address: 127.0.0.1:{port}\nqueries:\n  - name: up\n    expr: up\n    evaluation_interval: 1s\n"),
    )
    .unwrap();
    let log = dir.path().join("foretell.log");
    let mut process = Process::spawn(
        "foretell",
        foretell()
            .args(["--log.format", "json", "run", "--config"])
            .arg(&config),
        log.clone(),
    );
    let (status, body) = eventually(
        "readiness to report the upstream",
        Duration::from_secs(20),
        || async {
            get(&format!("http://127.0.0.1:{port}/-/ready"))
                .await
                .filter(|(_, body)| body.contains("down"))
        },
    )
    .await;
    assert_eq!(status, 503);
    assert!(
        body.contains(&format!(
            "cannot reach http://127.0.0.1:{dead_port}/api/v1/query_range"
        )),
        "{body}"
    );
    let (_, metrics) = get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert!(metrics.contains("\nforetell_upstream_up 0\n"), "{metrics}");
    assert!(
        metrics.contains("foretell_query_failures_total{query=\"up\",reason=\"connect\"}"),
        "{metrics}"
    );
    let logs = stop_running_and_read_log(&mut process, &log);
    let events: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["level"] == "warn" && e["reason"] == "connect"),
        "{logs}"
    );
    assert!(
        events.iter().any(|e| e["msg"] == "foretell stopped"),
        "{logs}"
    );
}

#[test]
fn audit_commands_tell_bad_flags_from_a_missing_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    std::fs::write(&keys, format!("k1:{}\n", "ab".repeat(32))).expect("keys");
    let missing_db = dir.path().join("nope.db");
    let (code, _, stderr) = run(foretell()
        .args(["audit", "verify", "--db"])
        .arg(&missing_db)
        .arg("--key-file")
        .arg(dir.path().join("no-keys")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("cannot read the key file"), "{stderr}");
    let (code, _, stderr) = run(foretell()
        .args(["audit", "verify", "--db"])
        .arg(&missing_db)
        .arg("--key-file")
        .arg(&keys)
        .env_remove("FORETELL_AUDIT_KEYS"));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no audit database at"), "{stderr}");
    let (code, _, stderr) = run(foretell()
        .args(["audit", "show", "--since", "soon", "--db"])
        .arg(&missing_db));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--since: `soon` is not a timestamp"),
        "{stderr}"
    );
}

/// Issue 21, item 1: Prometheus' flags beside the YAML keys, the flag winning, and logs in
/// logfmt by default.
#[tokio::test]
async fn prometheus_style_flags_override_the_file_and_logs_are_logfmt() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, flag_port, dead_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("foretell.yml");
    std::fs::write(
        &config,
        format!("prometheus:\n  url: http://127.0.0.1:{dead_port}\n  timeout: 500ms\nserver:\n  listen_address: 127.0.0.1:{file_port}\n  enable_lifecycle: false\nqueries:\n  - name: up\n    expr: up\n"),
    )
    .unwrap();
    let log = dir.path().join("foretell.log");
    let mut process = Process::spawn(
        "foretell",
        foretell()
            .args(["run", "--config.file"])
            .arg(&config)
            .args(["--web.listen-address", &format!("127.0.0.1:{flag_port}")])
            .arg("--web.enable-lifecycle")
            .args(["--web.external-url", "https://foretell.example/"]),
        log.clone(),
    );
    let base = format!("http://127.0.0.1:{flag_port}");
    eventually(
        "foretell on the flag's address",
        Duration::from_secs(20),
        || async { get(&format!("{base}/-/healthy")).await },
    )
    .await;
    assert!(
        get(&format!("http://127.0.0.1:{file_port}/-/healthy"))
            .await
            .is_none(),
        "the file's address is not used"
    );
    let reload = http()
        .post(format!("{base}/-/reload"))
        .send()
        .await
        .expect("answered");
    assert_eq!(reload.status(), 200, "the flag enables the lifecycle API");
    let logs = stop_running_and_read_log(&mut process, &log);
    for line in logs.lines() {
        assert!(
            line.starts_with("ts=") && line.contains(" level=") && line.contains(" msg="),
            "not logfmt: {line}"
        );
    }
    let started = logs
        .lines()
        .find(|line| line.contains("msg=\"foretell started\""))
        .expect("a start line");
    assert!(
        started.contains(&format!("address=127.0.0.1:{flag_port}"))
            && started.contains("external_url=https://foretell.example/"),
        "{started}"
    );
    assert!(logs.contains("msg=\"configuration reloaded\""), "{logs}");
}

/// Issue 21, item 5: a ConfigMap mounted as a directory (no `subPath`) changes by an atomic
/// swap of the kubelet's `..data` link; `--config.auto-reload-interval` loads the change
/// without a restart, tries a broken edit once (the running configuration keeps serving) and
/// takes the next good one.
#[tokio::test]
async fn a_changed_configuration_file_is_reloaded_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let (port, dead_port) = (free_port(), free_port());
    let mount = dir.path().join("config");
    std::fs::create_dir(&mount).unwrap();
    let config_text = |queries: &[&str]| {
        let mut text = format!("prometheus:\n  url: http://127.0.0.1:{dead_port}\n  timeout: 500ms\n  retry:\n    max_attempts: 1\nserver:\n  listen_address: 127.0.0.1:{port}\nqueries:\n");
        for name in queries {
            text.push_str(&format!(
                "  - name: {name}\n    expr: up\n    evaluation_interval: 1s\n"
            ));
        }
        text
    };
    // What the kubelet does: each version in its own directory, `..data` pointing at the
    // current one, the file a link through `..data`.
    let publish = |version: usize, text: &str| {
        let versioned = mount.join(format!("..v{version}"));
        std::fs::create_dir(&versioned).unwrap();
        std::fs::write(versioned.join("foretell.yml"), text).unwrap();
        let next = mount.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{version}"), &next).unwrap();
        std::fs::rename(&next, mount.join("..data")).unwrap();
    };
    publish(1, &config_text(&["first"]));
    std::os::unix::fs::symlink("..data/foretell.yml", mount.join("foretell.yml")).unwrap();
    let log = dir.path().join("foretell.log");
    let mut process = Process::spawn(
        "foretell",
        foretell()
            .args(["run", "--config.file"])
            .arg(mount.join("foretell.yml"))
            .args(["--config.auto-reload-interval", "200ms"]),
        log.clone(),
    );
    let metrics_with = |needle: String| {
        let url = format!("http://127.0.0.1:{port}/metrics");
        async move {
            eventually(&needle.clone(), Duration::from_secs(20), || {
                let (url, needle) = (url.clone(), needle.clone());
                async move { get(&url).await.filter(|(_, body)| body.contains(&needle)) }
            })
            .await
            .1
        }
    };
    let failures_of = |query: &str| format!("foretell_query_failures_total{{query=\"{query}\"");
    metrics_with(failures_of("first")).await;

    publish(2, &config_text(&["first", "second"]));
    let metrics = metrics_with(failures_of("second")).await;
    assert!(
        metrics.contains("foretell_config_reloads_total{result=\"success\"} 2\n"),
        "{metrics}"
    );

    // A broken edit is refused once, however many checks follow; the running one stays.
    publish(3, "queries: [unclosed\n");
    let metrics =
        metrics_with("foretell_config_reloads_total{result=\"failure\"} 1\n".to_owned()).await;
    assert!(metrics.contains(&failures_of("second")), "{metrics}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, metrics) = get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert!(
        metrics.contains("foretell_config_reloads_total{result=\"failure\"} 1\n")
            && metrics.contains("\nforetell_config_last_reload_successful 0\n"),
        "{metrics}"
    );

    publish(4, &config_text(&["third"]));
    metrics_with(failures_of("third")).await;
    // Counters of a removed query stay (they never go back); the status page lists only the
    // queries running now.
    let (_, page) = get(&format!("http://127.0.0.1:{port}/")).await.unwrap();
    assert!(
        page.contains("/status/query?name=third") && !page.contains("/status/query?name=second"),
        "{page}"
    );
    let logs = stop_running_and_read_log(&mut process, &log);
    assert_eq!(
        logs.matches("configuration file changed").count(),
        3,
        "{logs}"
    );
}

/// The configuration docs/migrating-from-vmanomaly.md translates is valid as printed.
#[test]
fn the_translated_vmanomaly_configuration_is_valid() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/migrating-from-vmanomaly.md"),
    )
    .unwrap();
    let after = doc
        .split_once("foretell (`foretell check-config` validates it):")
        .expect("the translated configuration")
        .1;
    let yaml = after
        .split_once("```yaml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a yaml block")
        .0;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("foretell.yml");
    std::fs::write(&file, yaml).unwrap();
    let (code, stdout, stderr) = run(foretell().arg("check-config").arg(&file));
    assert_eq!(code, 0, "{stdout}{stderr}");
}
