//! What `deploy/` ships: the Kubernetes manifests hold a foretell configuration foretell
//! accepts and a Prometheus configuration that scrapes it with `honor_labels: true`; the KEDA
//! example reads what foretell exports; the systemd unit verifies. The checks that need
//! `promtool` or `systemd-analyze` run in `.ci/run`'s end-to-end stage.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{require_binary, run_ok};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn documents(path: &str) -> Vec<serde_norway::Value> {
    let text = std::fs::read_to_string(repo(path)).expect("manifest");
    serde_norway::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("YAML document"))
        .collect()
}

fn find<'a>(docs: &'a [serde_norway::Value], kind: &str, name: &str) -> &'a serde_norway::Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn config_map_file(docs: &[serde_norway::Value], name: &str, key: &str) -> String {
    find(docs, "ConfigMap", name)["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {name} has no {key}"))
        .to_owned()
}

#[test]
fn the_kubernetes_sidecar_runs_a_valid_configuration_scraped_with_honor_labels() {
    let docs = documents("deploy/kubernetes/prometheus-with-foretell.yaml");
    for doc in &docs {
        assert!(
            doc["apiVersion"].is_string() && doc["kind"].is_string(),
            "{doc:?}"
        );
        assert!(doc["metadata"]["name"].is_string(), "{doc:?}");
    }
    // foretell's configuration, with the Secret's files made up, passes check-config.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("audit.keys"),
        format!("k1:{}\n", "ab".repeat(32)),
    )
    .expect("keys");
    std::fs::write(dir.path().join("webhook.token"), "token\n").expect("token");
    let foretell = config_map_file(&docs, "foretell-config", "foretell.yml")
        .replace("/etc/foretell/keys", &dir.path().display().to_string())
        .replace("/var/lib/foretell", &dir.path().display().to_string());
    let config = dir.path().join("foretell.yml");
    std::fs::write(&config, foretell).expect("config");
    let checked = run_ok(
        Command::new(env!("CARGO_BIN_EXE_foretell"))
            .arg("check-config")
            .arg(&config),
    );
    assert!(checked.contains("valid, 2 queries"), "{checked}");

    // Prometheus scrapes foretell in the same pod, keeping the source labels.
    let prometheus: serde_norway::Value = serde_norway::from_str(&config_map_file(
        &docs,
        "prometheus-config",
        "prometheus.yml",
    ))
    .expect("prometheus.yml");
    let job = prometheus["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .find(|job| job["job_name"].as_str() == Some("foretell"))
        .expect("a foretell job");
    assert_eq!(job["honor_labels"].as_bool(), Some(true));
    assert_eq!(
        job["static_configs"][0]["targets"][0].as_str(),
        Some("localhost:9896")
    );

    // The foretell container runs that file, as a non-root user, with its state on a volume.
    let statefulset = find(&docs, "StatefulSet", "prometheus");
    let containers = statefulset["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers");
    let container = containers
        .iter()
        .find(|c| c["name"].as_str() == Some("foretell"))
        .expect("foretell container");
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(
        &args[..3],
        ["run", "--config.file", "/etc/foretell/foretell.yml"]
    );
    assert_eq!(
        container["securityContext"]["runAsUser"].as_u64(),
        Some(65532)
    );
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for path in [
        "/etc/foretell/foretell.yml",
        "/etc/foretell/keys",
        "/var/lib/foretell",
    ] {
        assert!(mounts.contains(&path), "{path} not mounted: {mounts:?}");
    }
    let service = find(&docs, "Service", "foretell");
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(9896));
}

#[test]
fn the_keda_example_scales_on_a_forecast_foretell_exports() {
    let docs = documents("deploy/kubernetes/keda-scaledobject.yaml");
    let scaled = find(&docs, "ScaledObject", "api");
    let triggers = scaled["spec"]["triggers"].as_sequence().expect("triggers");
    let forecast = &triggers[0]["metadata"];
    let query = forecast["query"].as_str().expect("query");
    assert!(
        query.contains("foretell_forecast_upper{query=\"requests\"")
            && query.contains("horizon=\"15m\""),
        "{query}"
    );
    assert_eq!(
        forecast["serverAddress"].as_str(),
        Some("http://prometheus.monitoring.svc:9090"),
        "the Prometheus Service of prometheus-with-foretell.yaml"
    );
    // The query it reads exists, with that horizon, in the sidecar's configuration.
    let sidecar = documents("deploy/kubernetes/prometheus-with-foretell.yaml");
    let foretell = config_map_file(&sidecar, "foretell-config", "foretell.yml");
    assert!(foretell.contains("- name: requests") && foretell.contains("horizons: [15m, 1h]"));
}

#[test]
#[ignore = "needs promtool and systemd-analyze; run by .ci/run's end-to-end stage"]
fn the_shipped_prometheus_configuration_and_systemd_unit_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = documents("deploy/kubernetes/prometheus-with-foretell.yaml");
    let prometheus = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus,
        config_map_file(&docs, "prometheus-config", "prometheus.yml").replace(
            "/etc/prometheus/rules/*.yml",
            &repo("rules/*.yml").display().to_string(),
        ),
    )
    .expect("prometheus.yml");
    run_ok(
        Command::new(require_binary("promtool"))
            .args(["check", "config"])
            .arg(&prometheus),
    );
    // The unit, pointing at the binary just built.
    let unit = std::fs::read_to_string(repo("deploy/systemd/foretell.service"))
        .expect("unit")
        .replace("/usr/local/bin/foretell", env!("CARGO_BIN_EXE_foretell"));
    let path = dir.path().join("foretell.service");
    std::fs::write(&path, unit).expect("unit");
    let output = Command::new(require_binary("systemd-analyze"))
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    // systemd-analyze exits 0 on unknown keys and bad values and only prints them: any output
    // is a problem.
    let complaints = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && complaints.trim().is_empty(),
        "{complaints}"
    );
}

/// Issue 21, item 3: every alert links its runbook, and the runbook has its section.
#[test]
fn every_shipped_alert_links_a_runbook_section_that_exists() {
    let runbooks = std::fs::read_to_string(repo("docs/runbooks.md")).expect("runbooks");
    let headings: std::collections::BTreeSet<String> = runbooks
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(|name| name.trim().to_lowercase())
        .collect();
    let mut files: Vec<PathBuf> = ["rules", "rules/examples"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo(dir)).expect("rules dir"))
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".rules.yml"))
        .collect();
    files.sort();
    let mut alerts = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("rules");
        let rules: serde_norway::Value = serde_norway::from_str(&text).expect("yaml");
        for group in rules["groups"].as_sequence().expect("groups") {
            for rule in group["rules"].as_sequence().expect("rules") {
                let Some(name) = rule["alert"].as_str() else {
                    continue;
                };
                alerts += 1;
                let url = rule["annotations"]["runbook_url"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} in {file:?} has no runbook_url"));
                let anchor = url
                    .strip_prefix(
                        "https://github.com/foretell/foretell/blob/main/docs/runbooks.md#",
                    )
                    .unwrap_or_else(|| panic!("{name}: {url} is not a docs/runbooks.md link"));
                assert_eq!(anchor, name.to_lowercase(), "{name}");
                assert!(
                    headings.contains(anchor),
                    "docs/runbooks.md has no section {name}"
                );
            }
        }
    }
    assert_eq!(alerts, 28, "every shipped alert was looked at");
}
