//! Shared harness for the end-to-end tests: real `prometheus` and `foretell` processes on
//! 127.0.0.1, killed when their guards drop, every wait bounded.

#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// Fails with an install hint when a binary the end-to-end stage needs is missing.
pub fn require_binary(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is not on PATH; the end-to-end tests need Debian's `prometheus` package (apt-get install prometheus), which .ci/run installs")
    })
}

/// Runs a command to completion, panicking with its output when it fails.
pub fn run_ok(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A child process killed on drop, with its log file kept for failure messages.
pub struct Process {
    pub name: &'static str,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Process {
        let file = std::fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file");
        let child = command
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            name,
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn signal(&self, signal: &str) {
        run_ok(
            Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(self.pid().to_string()),
        );
    }

    /// Sends SIGTERM and waits up to `within` for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        self.wait_exit(within)
    }

    /// Waits for the process to exit on its own; `None` when it is still running after
    /// `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Waits until `url` answers 200, failing at once if the process exits.
    pub async fn wait_http_ok(&mut self, url: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if get(url).await.is_some_and(|(status, _)| status == 200) {
                return;
            }
            assert!(
                self.is_running(),
                "{} exited before {url} answered 200",
                self.name
            );
            assert!(
                Instant::now() < deadline,
                "{url} did not answer 200 within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Process {
    /// Kills the process; when a test is failing, shows the end of its log first.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- last lines of {} ({}) ---\n{}",
                self.name,
                self.log.display(),
                self.log_tail()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The one bounded wait of every test (also the unit tests'): polls until a value comes.
pub use foretell_testing::eventually;

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .expect("client")
}

/// GET a URL; `None` on transport errors.
pub async fn get(url: &str) -> Option<(u16, String)> {
    let response = http().get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// A Prometheus server with its data directory, config and port.
pub struct Prometheus {
    pub port: u16,
    pub dir: PathBuf,
    pub process: Option<Process>,
}

impl Prometheus {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let binary = require_binary("prometheus");
        let log = self.dir.join(format!("prometheus-{}.log", now_secs()));
        self.process = Some(Process::spawn(
            "prometheus",
            Command::new(binary)
                .arg(format!(
                    "--config.file={}",
                    self.dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    self.dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
                .arg("--storage.tsdb.retention.time=30d")
                // foretell's remote-write output is tested against the real receiver.
                .arg("--web.enable-remote-write-receiver")
                // Between the end of the backfill and the first live rule evaluation there is
                // no data. With the default 5m lookback, Prometheus would paint that gap with
                // the last backfilled value and the live series would jump back onto its
                // curve, a discontinuity the models rightly score. 20s (two steps) keeps the
                // gap a gap, as it would be for a real series.
                .arg("--query.lookback-delta=20s"),
            log,
        ));
    }

    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            assert!(
                process.terminate(Duration::from_secs(30)).is_some(),
                "prometheus did not stop"
            );
        }
    }

    pub async fn wait_ready(&mut self) {
        let url = format!("{}/-/ready", self.url());
        let process = self.process.as_mut().expect("prometheus was started");
        process.wait_http_ok(&url, Duration::from_secs(60)).await;
    }

    /// Runs an instant query and returns the `data.result` array.
    pub async fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let response = http()
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", expr)])
            .send()
            .await
            .expect("prometheus query");
        let body: serde_json::Value =
            serde_json::from_str(&response.text().await.expect("body")).expect("json");
        assert_eq!(body["status"], "success", "query {expr} failed: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Runs an instant query; `(succeeded, data.result)`, without failing the test.
    pub async fn try_query(&self, expr: &str) -> (bool, Vec<serde_json::Value>) {
        let Ok(response) = http()
            .get(format!("{}/api/v1/query", self.url()))
            .query(&[("query", expr)])
            .send()
            .await
        else {
            return (false, Vec::new());
        };
        let body: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or_default();
        (
            body["status"] == "success",
            body["data"]["result"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        )
    }

    /// Runs a range query and returns `(labels, [(t, value)])` per series.
    pub async fn query_range(
        &self,
        expr: &str,
        start: i64,
        end: i64,
        step: &str,
    ) -> Vec<(serde_json::Value, Vec<(f64, f64)>)> {
        let response = http()
            .get(format!("{}/api/v1/query_range", self.url()))
            .query(&[
                ("query", expr),
                ("start", &start.to_string()),
                ("end", &end.to_string()),
                ("step", step),
            ])
            .send()
            .await
            .expect("prometheus query_range");
        let body: serde_json::Value =
            serde_json::from_str(&response.text().await.expect("body")).expect("json");
        assert_eq!(
            body["status"], "success",
            "query_range {expr} failed: {body}"
        );
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|series| {
                let values = series["values"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|p| {
                        (
                            p[0].as_f64().unwrap_or(0.0),
                            p[1].as_str()
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(f64::NAN),
                        )
                    })
                    .collect();
                (series["metric"].clone(), values)
            })
            .collect()
    }
}

/// Writes the demo history and live rules with `foretell sample-data`, backfills the history
/// with promtool, and writes a Prometheus config that evaluates the rules every second and
/// scrapes foretell at `foretell_port` with `honor_labels: true`.
pub fn prepare_prometheus(
    dir: &Path,
    history_end: i64,
    spike_at: Option<(i64, u32)>,
    foretell_port: u16,
) -> Prometheus {
    std::fs::create_dir_all(dir).expect("dir");
    let history = dir.join("history.om");
    let rules = dir.join("live-rules.yml");
    let mut sample = Command::new(env!("CARGO_BIN_EXE_foretell"));
    sample
        .arg("sample-data")
        .arg("--history-out")
        .arg(&history)
        .arg("--rules-out")
        .arg(&rules)
        .arg("--end")
        .arg(history_end.to_string())
        .args(["--span", "3d", "--step", "10s"]);
    if let Some((at, secs)) = spike_at {
        sample
            .arg("--spike-at")
            .arg(at.to_string())
            .arg("--spike-secs")
            .arg(secs.to_string());
    }
    run_ok(&mut sample);
    run_ok(
        Command::new(require_binary("promtool"))
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&history)
            .arg(dir.join("data")),
    );
    let prometheus = Prometheus {
        port: free_port(),
        dir: dir.to_owned(),
        process: None,
    };
    prometheus.configure(&[rules], foretell_port, None);
    prometheus
}

impl Prometheus {
    /// (Re)writes prometheus.yml: `rule_files`, evaluated every second, a scrape of foretell at
    /// `foretell_port` with `honor_labels: true`, and alerts sent to an Alertmanager on
    /// `alertmanager_port` when given.
    pub fn configure(
        &self,
        rule_files: &[PathBuf],
        foretell_port: u16,
        alertmanager_port: Option<u16>,
    ) {
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n",
        );
        for file in rule_files {
            config.push_str(&format!("  - {}\n", file.display()));
        }
        config.push_str(&format!(
            "scrape_configs:\n  - job_name: foretell\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{foretell_port}']\n"
        ));
        if let Some(port) = alertmanager_port {
            config.push_str(&format!(
                "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{port}']\n"
            ));
        }
        std::fs::write(self.dir.join("prometheus.yml"), config).expect("prometheus.yml");
    }

    pub fn live_rules(&self) -> PathBuf {
        self.dir.join("live-rules.yml")
    }
}

pub fn start_foretell(config: &Path, log: PathBuf) -> Process {
    Process::spawn(
        "foretell",
        Command::new(env!("CARGO_BIN_EXE_foretell"))
            .args(["run", "--config"])
            .arg(config)
            .args(["--log.level", "debug"]),
        log,
    )
}

/// An alert receiver: the shared scripted fake, answering with a status tests can change;
/// what it took (answered 2xx) is read back as JSON.
pub struct Recorder {
    pub url: String,
    fake: foretell_testing::FakeUpstream,
}

impl Recorder {
    pub async fn start() -> Recorder {
        let fake = foretell_testing::FakeUpstream::start(vec![empty_answer(200)]).await;
        Recorder {
            url: format!("{}/hook", fake.url),
            fake,
        }
    }

    /// Answers every later request with `status`.
    pub fn answer(&self, status: u16) {
        self.fake.rescript(vec![empty_answer(status)]);
    }

    /// Request heads and JSON bodies of what was taken, oldest first.
    fn taken(&self) -> Vec<(String, serde_json::Value)> {
        self.fake
            .accepted()
            .into_iter()
            .map(|(head, body)| {
                let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                (head, body)
            })
            .collect()
    }

    /// Bodies received so far, oldest first.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.taken().into_iter().map(|(_, body)| body).collect()
    }

    /// The fingerprints of every alert received so far.
    pub fn fingerprints(&self) -> std::collections::BTreeSet<String> {
        self.bodies()
            .iter()
            .flat_map(|body| body["alerts"].as_array().cloned().unwrap_or_default())
            .filter_map(|alert| alert["fingerprint"].as_str().map(str::to_owned))
            .collect()
    }

    /// Alerts received so far: (alertname, annotations, request head).
    pub fn alerts(&self) -> Vec<(String, serde_json::Value, String)> {
        self.taken()
            .into_iter()
            .flat_map(|(head, body)| {
                body["alerts"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |alert| {
                        (
                            alert["labels"]["alertname"]
                                .as_str()
                                .unwrap_or("")
                                .to_owned(),
                            alert["annotations"].clone(),
                            head.clone(),
                        )
                    })
            })
            .collect()
    }

    pub fn got(&self, alertname: &str) -> bool {
        self.alerts().iter().any(|(name, _, _)| name == alertname)
    }
}

/// Starts Debian's `prometheus-alertmanager` with `config` on `port` (no clustering) and waits
/// until it is ready; returns its URL and process.
pub async fn start_alertmanager(dir: &Path, config: &Path, port: u16) -> (String, Process) {
    let url = format!("http://127.0.0.1:{port}");
    let mut alertmanager = Process::spawn(
        "alertmanager",
        Command::new(require_binary("prometheus-alertmanager"))
            .current_dir(dir)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address="),
        dir.join("alertmanager.log"),
    );
    alertmanager
        .wait_http_ok(&format!("{url}/-/ready"), Duration::from_secs(30))
        .await;
    (url, alertmanager)
}

/// Runs `foretell audit verify` on `audit.db` with `audit.keys` in `dir` and asserts the log
/// verifies (`why` says what the test expects of it).
pub fn assert_audit_verifies(dir: &Path, why: &str) {
    let verify = Command::new(env!("CARGO_BIN_EXE_foretell"))
        .current_dir(dir)
        .args([
            "audit",
            "verify",
            "--db",
            "audit.db",
            "--key-file",
            "audit.keys",
        ])
        .output()
        .expect("verify");
    assert!(
        verify.status.success(),
        "{why}: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// How many records of `kind` `foretell audit show` lists from `audit.db` in `dir`.
pub fn audit_records_of_kind(dir: &Path, kind: &str) -> usize {
    let shown = Command::new(env!("CARGO_BIN_EXE_foretell"))
        .current_dir(dir)
        .args(["audit", "show", "--db", "audit.db", "--kind", kind])
        .output()
        .expect("show");
    String::from_utf8_lossy(&shown.stdout).matches(kind).count()
}

/// An Alertmanager notification (webhook version 4) of one firing alert.
pub fn one_alert_notification(
    group_key: &str,
    labels: serde_json::Value,
    starts_at: &str,
    fingerprint: &str,
) -> String {
    serde_json::json!({
        "version": "4", "status": "firing", "receiver": "foretell",
        "groupKey": group_key,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
        "alerts": [{
            "status": "firing",
            "labels": labels,
            "annotations": {},
            "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "", "fingerprint": fingerprint
        }]
    })
    .to_string()
}

/// A configuration for the alert path alone: Prometheus unreachable (port 9), so alerts are
/// forwarded with confidence unavailable; one receiver; audit log `audit.db` signed with
/// `audit.keys` in the working directory.
pub fn alert_path_config(port: u16, receiver: &str) -> String {
    format!(
        "prometheus:\n  url: http://127.0.0.1:9\n  timeout: 500ms\n  retry:\n    max_attempts: 1\n\
         server:\n  listen_address: 127.0.0.1:{port}\n  shutdown_grace: 5s\n\
         audit:\n  path: audit.db\n  key_file: audit.keys\n  verify_interval: 'off'\n\
         alerts:\n  on_demand:\n    timeout: 200ms\n  retry:\n    initial_backoff: 100ms\n    max_backoff: 500ms\n\
         \x20 receivers:\n    - name: recorder\n      url: {receiver}\n      timeout: 2s\n  routes:\n    - receiver: recorder\n\
         queries:\n  - name: demo\n    expr: up\n    evaluation_interval: 5s\n"
    )
}

/// Writes what `foretell run` needs in its working directory `dir`: `foretell.yml` holding
/// `config` and the key its audit log is signed with (`audit.keys`).
pub fn write_run_files(dir: &Path, config: &str) {
    std::fs::write(dir.join("audit.keys"), format!("k1:{}\n", "5a".repeat(32))).expect("keys");
    std::fs::write(dir.join("foretell.yml"), config).expect("config");
}

/// A fresh working directory with [`write_run_files`]' files.
pub fn run_dir(config: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    write_run_files(dir.path(), config);
    dir
}

/// Starts `foretell run` in `dir` (its log in `dir/foretell.log`) and waits until
/// `http://127.0.0.1:{port}{path}` answers 200.
pub async fn start_in(dir: &Path, port: u16, path: &str, within: Duration) -> Process {
    let mut foretell = Process::spawn("foretell", &mut foretell_run(dir), dir.join("foretell.log"));
    foretell
        .wait_http_ok(&format!("http://127.0.0.1:{port}{path}"), within)
        .await;
    foretell
}

/// `foretell run --config foretell.yml` in `dir`.
pub fn foretell_run(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_foretell"));
    command
        .current_dir(dir)
        .args(["run", "--config"])
        .arg(dir.join("foretell.yml"));
    command
}

/// Posts a webhook notification as Alertmanager does (JSON, no token).
pub async fn post_notification(
    client: &reqwest::Client,
    url: &str,
    body: String,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
}

fn empty_answer(status: u16) -> foretell_testing::Canned {
    foretell_testing::Canned::Status(status)
}
