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

/// A YAML sequence of strings (a container's args, say).
fn strings(sequence: &serde_norway::Value) -> Vec<&str> {
    sequence
        .as_sequence()
        .expect("a sequence")
        .iter()
        .filter_map(|a| a.as_str())
        .collect()
}

fn config_map_file(docs: &[serde_norway::Value], name: &str, key: &str) -> String {
    find(docs, "ConfigMap", name)["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {name} has no {key}"))
        .to_owned()
}

/// The `foretell-config` ConfigMap's file, with the Secret's files made up and paths moved to
/// a temporary directory, passes `check-config` with `queries` queries.
fn assert_shipped_config_is_valid(docs: &[serde_norway::Value], queries: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("audit.keys"),
        format!("k1:{}\n", "ab".repeat(32)),
    )
    .expect("keys");
    std::fs::write(dir.path().join("webhook.token"), "token\n").expect("token");
    let foretell = config_map_file(docs, "foretell-config", "foretell.yml")
        .replace("/etc/foretell/keys", &dir.path().display().to_string())
        .replace("/var/lib/foretell", &dir.path().display().to_string());
    let config = dir.path().join("foretell.yml");
    std::fs::write(&config, foretell).expect("config");
    let checked = run_ok(
        Command::new(env!("CARGO_BIN_EXE_foretell"))
            .arg("check-config")
            .arg(&config),
    );
    assert!(
        checked.contains(&format!("valid, {queries} queries")),
        "{checked}"
    );
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
    assert_shipped_config_is_valid(&docs, 2);

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
    let args = strings(&container["args"]);
    assert_eq!(
        &args[..3],
        [
            "run",
            "--config.file=/etc/foretell/config/foretell.yml",
            "--config.auto-reload-interval=30s"
        ]
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
        "/etc/foretell/config",
        "/etc/foretell/keys",
        "/var/lib/foretell",
    ] {
        assert!(mounts.contains(&path), "{path} not mounted: {mounts:?}");
    }
    let service = find(&docs, "Service", "foretell");
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(9896));
}

/// Every container's mounts in the documents: none may use `subPath`, with which a ConfigMap
/// or Secret edit never reaches the pod.
fn assert_no_sub_path(path: &str, docs: &[serde_norway::Value]) {
    for doc in docs {
        let containers = doc["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        for container in containers {
            for mount in container["volumeMounts"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                assert!(mount.get("subPath").is_none(), "{path}: {mount:?}");
            }
        }
    }
}

/// The files a kustomization lists, which must be every manifest beside it except those left
/// out on purpose.
fn kustomized(dir: &str, left_out: &[&str]) -> Vec<String> {
    let kustomization = documents(&format!("{dir}/kustomization.yaml"));
    assert_eq!(kustomization.len(), 1);
    assert_eq!(kustomization[0]["kind"].as_str(), Some("Kustomization"));
    let listed: Vec<String> = kustomization[0]["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("a file").to_owned())
        .collect();
    let mut present: Vec<String> = std::fs::read_dir(repo(dir))
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .filter(|name| !left_out.contains(&name.as_str()))
        .collect();
    present.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, present, "{dir}/kustomization.yaml");
    listed
}

/// Issue 21, item 5: `kubectl apply -k` on either directory, configuration mounted as
/// directories so edits reach the pods.
#[test]
fn the_manifests_apply_with_kustomize_and_mount_configuration_as_directories() {
    for (dir, left_out) in [
        ("deploy/kubernetes", &["keda-scaledobject.yaml"][..]),
        ("deploy/kubernetes/sharded", &[][..]),
    ] {
        for resource in kustomized(dir, left_out) {
            let path = format!("{dir}/{resource}");
            assert_no_sub_path(&path, &documents(&path));
        }
    }
}

/// The sharded StatefulSet: each pod's shard from its ordinal through the downward API (no
/// shell), as many shards as replicas, its state on a claim, scraped with honorLabels, and a
/// configuration foretell accepts.
#[test]
fn the_sharded_statefulset_takes_its_shard_from_the_pod_ordinal() {
    let docs = documents("deploy/kubernetes/sharded/foretell.yaml");
    let statefulset = find(&docs, "StatefulSet", "foretell");
    let replicas = statefulset["spec"]["replicas"].as_u64().expect("replicas");
    let container = &statefulset["spec"]["template"]["spec"]["containers"][0];
    assert!(container.get("command").is_none(), "no shell wrapper");
    let args = strings(&container["args"]);
    let shard = format!("--shard=$(POD_INDEX)/{replicas}");
    assert!(args.contains(&shard.as_str()), "{args:?}");
    assert!(args.contains(&"--config.file=/etc/foretell/config/foretell.yml"));
    let index = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .find(|e| e["name"].as_str() == Some("POD_INDEX"))
        .expect("POD_INDEX");
    assert_eq!(
        index["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.labels['apps.kubernetes.io/pod-index']")
    );
    let claim = &statefulset["spec"]["volumeClaimTemplates"][0];
    let state = claim["metadata"]["name"].as_str().expect("claim name");
    let on_claim = container["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .any(|m| {
            m["name"].as_str() == Some(state)
                && m["mountPath"].as_str() == Some("/var/lib/foretell")
        });
    assert!(on_claim, "the audit log and outbox live on the claim");

    // The configuration passes check-config; and the args as Kubernetes expands them for the
    // last pod are flags foretell takes (`run --help` exits 0 only when every flag before it
    // parses).
    assert_shipped_config_is_valid(&docs, 2);
    let last = (replicas - 1).to_string();
    let expanded: Vec<String> = args
        .iter()
        .map(|a| a.replace("$(POD_INDEX)", &last))
        .collect();
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_foretell"))
            .args(&expanded)
            .arg("--help"),
    );

    let monitors = documents("deploy/kubernetes/sharded/servicemonitor.yaml");
    let monitor = find(&monitors, "ServiceMonitor", "foretell");
    let service = find(&docs, "Service", "foretell");
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        service["metadata"]["labels"]
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["honorLabels"].as_bool(), Some(true));
    assert_eq!(endpoint["port"], service["spec"]["ports"][0]["name"]);
}

/// The PrometheusRule holds exactly the groups of `rules/*.yml` (scripts/kubernetes-rules.sh
/// writes it; `.ci/run` also checks the file is what the script writes now).
#[test]
fn the_prometheus_rule_carries_the_shipped_rule_groups() {
    let docs = documents("deploy/kubernetes/sharded/prometheusrule.yaml");
    let rule = find(&docs, "PrometheusRule", "foretell");
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("rules"))
        .expect("rules")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    let groups: Vec<serde_norway::Value> = files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).expect("rules file");
            let parsed: serde_norway::Value = serde_norway::from_str(&text).expect("YAML");
            parsed["groups"].as_sequence().cloned().unwrap_or_default()
        })
        .collect();
    assert!(groups.len() >= 3, "{groups:?}");
    assert_eq!(rule["spec"]["groups"].as_sequence(), Some(&groups));
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
    assert_eq!(alerts, 29, "every shipped alert was looked at");
}

/// The Dockerfile, checked by the rules a Dockerfile linter applies (hadolint is not packaged
/// in Debian, and no image can be built here: the base images' registry is out of reach), with
/// the OCI labels issue 21 asks for.
#[test]
fn the_dockerfile_follows_the_usual_lint_rules() {
    let text = std::fs::read_to_string(repo("Dockerfile")).expect("Dockerfile");
    // Instructions with their continuation lines joined, comments dropped.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let of = |keyword: &str| -> Vec<&String> {
        instructions
            .iter()
            .filter(|i| i.split_whitespace().next() == Some(keyword))
            .collect()
    };
    for from in of("FROM") {
        let image = from.split_whitespace().nth(1).expect("an image");
        let tag = image.split_once(':').map(|(_, tag)| tag);
        assert!(
            tag.is_some_and(|t| t != "latest"),
            "pin the base image's tag: {from}"
        );
    }
    assert!(of("ADD").is_empty(), "COPY, not ADD");
    for run in of("RUN") {
        if run.contains("apt-get install") {
            assert!(
                run.contains(" -y ") && run.contains("--no-install-recommends"),
                "{run}"
            );
            assert!(run.contains("rm -rf /var/lib/apt/lists/*"), "{run}");
        }
    }
    let user = of("USER").last().expect("a USER").to_string();
    let uid = user.split_whitespace().nth(1).expect("a user");
    assert!(
        uid.split(':')
            .next()
            .is_some_and(|u| u != "0" && u != "root"),
        "{user}"
    );
    for exec in of("ENTRYPOINT").into_iter().chain(of("CMD")) {
        assert!(
            exec.split_once(' ')
                .is_some_and(|(_, form)| form.trim_start().starts_with('[')),
            "exec form: {exec}"
        );
    }
    let labels = of("LABEL")
        .iter()
        .map(|l| l.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for key in [
        "title",
        "description",
        "version",
        "revision",
        "source",
        "licenses",
    ] {
        assert!(
            labels.contains(&format!("org.opencontainers.image.{key}=")),
            "OCI label {key} missing: {labels}"
        );
    }
    let cargo = std::fs::read_to_string(repo("Cargo.toml")).expect("Cargo.toml");
    let license = cargo
        .lines()
        .find_map(|l| l.strip_prefix("license = "))
        .expect("a licence")
        .trim_matches('"');
    assert!(
        labels.contains(&format!("org.opencontainers.image.licenses=\"{license}\"")),
        "{labels}"
    );
}
